//! The text of one request: `command:USER:SERVER[:PASSWORD]` (docs/protocol.md §3).

/// A request as the server sent it. Borrowed from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    Auth {
        user: &'a str,
        server: &'a str,
        password: &'a str,
    },
    IsUser {
        user: &'a str,
        server: &'a str,
    },
    /// A command that changes accounts, which this helper never grants
    /// (see [`Command::changes_accounts`]), with the fields it came with.
    Refused {
        command: Command,
        user: &'a str,
        server: &'a str,
    },
    /// Anything that cannot be understood.
    Malformed(Malformed),
}

/// Every command of the protocol, by the name the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Auth,
    IsUser,
    SetPass,
    TryRegister,
    RemoveUser,
    RemoveUser3,
}

impl Command {
    const ALL: [Command; 6] = [
        Command::Auth,
        Command::IsUser,
        Command::SetPass,
        Command::TryRegister,
        Command::RemoveUser,
        Command::RemoveUser3,
    ];

    /// The command's name on the wire and in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Command::Auth => "auth",
            Command::IsUser => "isuser",
            Command::SetPass => "setpass",
            Command::TryRegister => "tryregister",
            Command::RemoveUser => "removeuser",
            Command::RemoveUser3 => "removeuser3",
        }
    }

    /// The command named exactly `name` (names are case-sensitive).
    pub fn from_name(name: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether a password field follows user and server.
    fn takes_password(self) -> bool {
        !matches!(self, Command::IsUser | Command::RemoveUser)
    }

    /// Commands that change accounts: the helper has no accounts to change.
    pub fn changes_accounts(self) -> bool {
        !matches!(self, Command::Auth | Command::IsUser)
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("request is empty")]
    Empty,
    #[error("request is not valid UTF-8")]
    NotUtf8,
    #[error("unknown command")]
    UnknownCommand,
    #[error("wrong number of fields for {0}")]
    FieldCount(Command),
    #[error("empty user or server")]
    EmptyField,
}

impl<'a> Request<'a> {
    pub fn parse(bytes: &'a [u8]) -> Request<'a> {
        match Self::try_parse(bytes) {
            Ok(request) => request,
            Err(malformed) => Request::Malformed(malformed),
        }
    }

    fn try_parse(bytes: &'a [u8]) -> Result<Request<'a>, Malformed> {
        if bytes.is_empty() {
            return Err(Malformed::Empty);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| Malformed::NotUtf8)?;
        // The password is last and may contain ':'; user and server never do.
        let mut fields = text.splitn(4, ':');
        let name = fields.next().unwrap_or_default();
        let command = Command::from_name(name).ok_or(Malformed::UnknownCommand)?;
        let (user, server, password) = (fields.next(), fields.next(), fields.next());
        let (Some(user), Some(server)) = (user, server) else {
            return Err(Malformed::FieldCount(command));
        };
        if password.is_some() != command.takes_password() {
            return Err(Malformed::FieldCount(command));
        }
        if user.is_empty() || server.is_empty() {
            return Err(Malformed::EmptyField);
        }
        Ok(match command {
            Command::Auth => Request::Auth {
                user,
                server,
                password: password.unwrap_or_default(),
            },
            Command::IsUser => Request::IsUser { user, server },
            command => Request::Refused {
                command,
                user,
                server,
            },
        })
    }

    /// The command the request carries, or `None` when it could not be
    /// understood.
    pub fn command(&self) -> Option<Command> {
        match self {
            Request::Auth { .. } => Some(Command::Auth),
            Request::IsUser { .. } => Some(Command::IsUser),
            Request::Refused { command, .. } => Some(*command),
            Request::Malformed(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_keeps_its_colons() {
        assert_eq!(
            Request::parse(b"auth:alice:example.org:a:b::c"),
            Request::Auth {
                user: "alice",
                server: "example.org",
                password: "a:b::c"
            }
        );
    }

    #[test]
    fn empty_password_is_still_an_auth_request() {
        assert_eq!(
            Request::parse(b"auth:alice:example.org:"),
            Request::Auth {
                user: "alice",
                server: "example.org",
                password: ""
            }
        );
    }

    #[test]
    fn every_command_is_recognised() {
        assert_eq!(
            Request::parse(b"isuser:alice:example.org"),
            Request::IsUser {
                user: "alice",
                server: "example.org"
            }
        );
        for (text, command) in [
            (&b"setpass:a:b:p"[..], Command::SetPass),
            (b"tryregister:a:b:p", Command::TryRegister),
            (b"removeuser:a:b", Command::RemoveUser),
            (b"removeuser3:a:b:p", Command::RemoveUser3),
        ] {
            assert_eq!(
                Request::parse(text),
                Request::Refused {
                    command,
                    user: "a",
                    server: "b"
                }
            );
            assert!(command.changes_accounts(), "{command}");
            assert_eq!(Request::parse(text).command(), Some(command));
        }
    }

    #[test]
    fn every_command_is_known_by_its_wire_name_only() {
        for command in Command::ALL {
            assert_eq!(Command::from_name(command.name()), Some(command));
            assert_eq!(command.to_string(), command.name());
            let upper = command.name().to_uppercase();
            assert_eq!(Command::from_name(&upper), None);
        }
        assert!(!Command::Auth.changes_accounts() && !Command::IsUser.changes_accounts());
        assert_eq!(Command::from_name("request"), None);
    }

    #[test]
    fn what_cannot_be_understood_is_malformed() {
        let cases: [(&[u8], Malformed); 9] = [
            (b"", Malformed::Empty),
            (b"auth:a:b:\xff", Malformed::NotUtf8),
            (b"certauth:a:b", Malformed::UnknownCommand),
            (b"AUTH:a:b:c", Malformed::UnknownCommand),
            (b"auth:a:b", Malformed::FieldCount(Command::Auth)),
            (b"isuser:a:b:c", Malformed::FieldCount(Command::IsUser)),
            (b"isuser:a", Malformed::FieldCount(Command::IsUser)),
            (b"auth::b:c", Malformed::EmptyField),
            (b"isuser:a:", Malformed::EmptyField),
        ];
        for (bytes, expected) in cases {
            assert_eq!(
                Request::parse(bytes),
                Request::Malformed(expected),
                "{bytes:?}"
            );
        }
    }
}
