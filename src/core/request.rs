//! The text of one request: `command:USER:SERVER[:PASSWORD]` (SPEC §3).

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
    /// A command this helper never grants (`setpass`, `tryregister`,
    /// `removeuser`, `removeuser3`), with the fields it came with.
    Refused {
        command: Command,
        user: &'a str,
        server: &'a str,
    },
    /// Anything that cannot be understood.
    Malformed(Malformed),
}

/// Commands that change accounts: the helper has no accounts to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    SetPass,
    TryRegister,
    RemoveUser,
    RemoveUser3,
}

impl Command {
    pub fn name(self) -> &'static str {
        match self {
            Command::SetPass => "setpass",
            Command::TryRegister => "tryregister",
            Command::RemoveUser => "removeuser",
            Command::RemoveUser3 => "removeuser3",
        }
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
    FieldCount(&'static str),
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
        let fields: Vec<&str> = text.splitn(4, ':').collect();
        let (name, with_password) = match fields[0] {
            "auth" => ("auth", true),
            "isuser" => ("isuser", false),
            "setpass" => ("setpass", true),
            "tryregister" => ("tryregister", true),
            "removeuser" => ("removeuser", false),
            "removeuser3" => ("removeuser3", true),
            _ => return Err(Malformed::UnknownCommand),
        };
        let expected = if with_password { 4 } else { 3 };
        if fields.len() != expected {
            return Err(Malformed::FieldCount(name));
        }
        let (user, server) = (fields[1], fields[2]);
        if user.is_empty() || server.is_empty() {
            return Err(Malformed::EmptyField);
        }
        let refused = |command| {
            Ok(Request::Refused {
                command,
                user,
                server,
            })
        };
        match name {
            "auth" => Ok(Request::Auth {
                user,
                server,
                password: fields[3],
            }),
            "isuser" => Ok(Request::IsUser { user, server }),
            "setpass" => refused(Command::SetPass),
            "tryregister" => refused(Command::TryRegister),
            "removeuser" => refused(Command::RemoveUser),
            _ => refused(Command::RemoveUser3),
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
        }
    }

    #[test]
    fn what_cannot_be_understood_is_malformed() {
        let cases: [(&[u8], Malformed); 9] = [
            (b"", Malformed::Empty),
            (b"auth:a:b:\xff", Malformed::NotUtf8),
            (b"certauth:a:b", Malformed::UnknownCommand),
            (b"AUTH:a:b:c", Malformed::UnknownCommand),
            (b"auth:a:b", Malformed::FieldCount("auth")),
            (b"isuser:a:b:c", Malformed::FieldCount("isuser")),
            (b"isuser:a", Malformed::FieldCount("isuser")),
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
