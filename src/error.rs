//! Every way a command ends without success: one enum, each variant with its
//! exit status (the table is [`xmpp_token_auth::cli::EXIT_STATUS`]) and a
//! message that says what to fix.

use std::path::PathBuf;
use xmpp_token_auth::cli::{EXIT_INVALID, EXIT_USAGE, UnusedOption};
use xmpp_token_auth::core::config::ConfigError;
use xmpp_token_auth::core::helper::Reason;
use xmpp_token_auth::listen::SocketError;
use xmpp_token_auth::replay_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `verify`: the helper would refuse the token. Not an error of the
    /// command: it is printed on stdout as `invalid: REASON`.
    #[error("{reason}{detail}")]
    Invalid {
        reason: Reason,
        /// What the reason refers to, with a leading space: the domain and
        /// the served ones, or the replay store; empty if nothing.
        detail: String,
    },

    /// An option the command does not use.
    #[error(
        "{} is not used by {}: {}; remove it",
        .0.option, .0.command, .0.used_by
    )]
    UnusedOption(UnusedOption),

    #[error(
        "{jid:?} is not a bare JID of the form user@domain; give the user and the domain, without a resource"
    )]
    NotBareJid { jid: String },

    /// `generate` for a domain the configuration has no keys for.
    #[error(
        "unknown domain {domain} (served: {served}); add a [domains.\"{domain}\"] table \
         with its token_secret to the configuration, or a top-level token_secret to serve \
         every domain"
    )]
    UnknownDomain { domain: String, served: String },

    #[error("--nonce must be ASCII digits only")]
    NonceNotDigits,

    #[error(
        "--nonce has {given} digits, but tokens carry exactly {nonce_digits} (nonce_digits); \
         give {nonce_digits} digits, or leave --nonce out for random ones"
    )]
    NonceLength { given: usize, nonce_digits: u32 },

    /// The configuration, or a key file it names: the message names the
    /// file, line and key, and what to change.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// The shared replay store cannot be used (opened when serving, read by
    /// `check-config` and `verify`).
    #[error("{}:{line}: replay_store: {cause}", config.display())]
    ReplayStore {
        /// The configuration file that names the store.
        config: PathBuf,
        /// The line of `replay_store` in it.
        line: usize,
        cause: StoreError,
    },

    #[error("cannot install signal handlers: {0}; the helper could not exit cleanly on SIGTERM")]
    Signals(std::io::Error),

    #[error(
        "there is no account {0:?} on this machine: give the XMPP server's user (ejabberd, prosody)"
    )]
    NoSuchUser(String),

    /// `check-config --user`: files the account cannot use (each named on
    /// stderr before).
    #[error(
        "{user} cannot use {count} of the files the helper needs (listed above); run the commands given, then check again"
    )]
    Access { user: String, count: usize },

    /// `listen`: the socket cannot be made or taken over from systemd.
    #[error(transparent)]
    Socket(#[from] SocketError),

    #[error("the socket systemd passed cannot be used: {0}")]
    Activation(std::io::Error),
}

impl Error {
    /// The process's exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Invalid { .. } => EXIT_INVALID,
            Error::UnusedOption(_)
            | Error::NotBareJid { .. }
            | Error::UnknownDomain { .. }
            | Error::NonceNotDigits
            | Error::NonceLength { .. }
            | Error::Config(_)
            | Error::ReplayStore { .. }
            | Error::Signals(_)
            | Error::Socket(_)
            | Error::NoSuchUser(_)
            | Error::Access { .. }
            | Error::Activation(_) => EXIT_USAGE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xmpp_token_auth::core::replay::ReplayError;
    use xmpp_token_auth::core::verify::Refusal;

    fn invalid(reason: Reason) -> Error {
        Error::Invalid {
            reason,
            detail: String::new(),
        }
    }

    #[test]
    fn refusals_exit_1_and_everything_else_2() {
        let refusals = [
            invalid(Reason::Token(Refusal::BadSignature)),
            invalid(Reason::Token(Refusal::OtpOutsideWindow)),
            Error::Invalid {
                reason: Reason::UnknownDomain,
                detail: " b.example (served: a.example)".into(),
            },
            invalid(Reason::Replay(ReplayError::Replayed)),
        ];
        for refusal in refusals {
            assert_eq!(refusal.exit_code(), 1, "{refusal}");
        }
        let errors = [
            Error::NotBareJid { jid: "root".into() },
            Error::UnknownDomain {
                domain: "b.example".into(),
                served: "a.example".into(),
            },
            Error::NonceNotDigits,
            Error::NonceLength {
                given: 4,
                nonce_digits: 32,
            },
            Error::Config(ConfigError::Missing {
                path: "c.toml".into(),
                key: "otp_seed".into(),
                hint: "set it",
            }),
            Error::Signals(std::io::Error::other("no")),
            Error::UnusedOption(UnusedOption {
                option: "--protocol",
                command: "verify",
                used_by: "it is for serving",
            }),
        ];
        for error in errors {
            assert_eq!(error.exit_code(), 2, "{error}");
        }
    }

    #[test]
    fn messages_say_what_to_do() {
        assert_eq!(
            Error::Invalid {
                reason: Reason::UnknownDomain,
                detail: " b.example (served: a.example)".into(),
            }
            .to_string(),
            "unknown domain b.example (served: a.example)"
        );
        assert_eq!(
            Error::UnusedOption(UnusedOption {
                option: "--config",
                command: "gen-secret",
                used_by: "gen-secret reads no configuration",
            })
            .to_string(),
            "--config is not used by gen-secret: gen-secret reads no configuration; remove it"
        );
        assert!(
            Error::UnknownDomain {
                domain: "b.example".into(),
                served: "a.example".into()
            }
            .to_string()
            .contains("add a [domains.\"b.example\"] table")
        );
    }
}
