//! The command line (docs/protocol.md §7). Kept in the library so that the
//! man page and shell completions are generated from this very definition.

use crate::core::config::ProtocolChoice;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Exit status: success; for `verify`, a valid token.
pub const EXIT_SUCCESS: u8 = 0;
/// Exit status of `verify` for a token the helper would refuse.
pub const EXIT_INVALID: u8 = 1;
/// Exit status for a usage or configuration error (clap's usage errors too).
pub const EXIT_USAGE: u8 = 2;

/// The one exit-status table of every command, shown by `--help` and in the
/// man page.
pub const EXIT_STATUS: [(u8, &str); 3] = [
    (
        EXIT_SUCCESS,
        "Success; for verify, the token is valid. Serving ends with 0 on every \
         runtime event (end of input, hang-up, signal, closed stdout).",
    ),
    (
        EXIT_INVALID,
        "verify: the helper would refuse the token (malformed, bad signature, \
         OTP outside window, unknown domain, already used); stdout says why.",
    ),
    (
        EXIT_USAGE,
        "A usage or configuration error; nothing was done: a wrong command line \
         (also an option the command does not use), a JID that is not user@domain, \
         generate for a domain that is not served, a configuration, key file or \
         replay store that cannot be read or is invalid, or serving could not \
         start. stderr says what to fix, naming the file, line and key.",
    ),
];

/// The exit-status table as `--help` shows it, wrapped for a terminal.
fn exit_status_help() -> String {
    const WIDTH: usize = 80;
    let mut help = String::from("Exit status:");
    for (code, meaning) in EXIT_STATUS {
        let mut line = format!("  {code} ");
        for word in meaning.split(' ') {
            if line.chars().count() + 1 + word.chars().count() > WIDTH {
                help.push('\n');
                help.push_str(&line);
                line = String::from("    ");
            }
            line.push(' ');
            line.push_str(word);
        }
        help.push('\n');
        help.push_str(&line);
    }
    help
}

/// External authentication helper for ejabberd and Prosody that accepts
/// short-lived TOTP + HMAC-SHA256 tokens (the format of Prosody's
/// mod_auth_token), checked offline.
///
/// Without a command it serves: the XMPP server writes requests on stdin and
/// reads one boolean reply per request on stdout.
#[derive(Debug, Parser)]
#[command(
    name = "xmpp-token-auth",
    version,
    about,
    long_about,
    after_long_help = exit_status_help(),
    max_term_width = 100
)]
pub struct Cli {
    /// Configuration file [default: $XMPP_TOKEN_AUTH_CONFIG, else /etc/xmpp-token-auth/config.toml]
    #[arg(long, short = 'c', value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,

    /// Wire protocol when serving (no command); overrides the `protocol` key of the configuration
    #[arg(long, value_enum, value_name = "PROTOCOL")]
    pub protocol: Option<ProtocolChoice>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a fresh token for JID, as the application would mint it
    Generate {
        /// Bare JID (user@domain), with the user part as the server sees it (lower case)
        jid: String,
        /// Nonce digits to use instead of nonce_digits (32) random ones
        #[arg(long, value_name = "DIGITS")]
        nonce: Option<String>,
        /// Unix time to make the token for instead of now
        #[arg(long, value_name = "UNIX")]
        at: Option<u64>,
    },
    /// Say whether TOKEN is valid for JID and why (exit 0 valid, 1 invalid); never records it
    Verify {
        /// Bare JID (user@domain) the token is for
        jid: String,
        /// The token, quoted: it contains a space
        token: String,
        /// Unix time to verify at instead of now
        #[arg(long, value_name = "UNIX")]
        at: Option<u64>,
    },
    /// Validate the configuration and summarise it (exit 0 valid, 2 invalid)
    CheckConfig {
        /// Also check that this account (the XMPP server's: ejabberd, prosody) can read
        /// every file the helper reads and use the replay store; exit 2 naming each file
        /// it cannot, with the command that fixes it
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Also connect to a Redis replay_store: PING, then write one probe key that
        /// expires in seconds; exit 2 saying what is wrong
        #[arg(long)]
        connect: bool,
    },
    /// Print a fresh token_secret and otp_seed as TOML lines for the configuration
    GenSecret,
    /// Serve the line protocol on a Unix socket, for Prosody's mod_auth_xmpp_token
    /// (SIGHUP reloads the configuration, SIGTERM stops)
    Listen {
        /// Socket to make [default: the `socket` key, else /run/xmpp-token-auth/auth.sock];
        /// under systemd socket activation the passed socket is used instead
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
}

impl Command {
    /// The command's name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Generate { .. } => "generate",
            Command::Verify { .. } => "verify",
            Command::CheckConfig { .. } => "check-config",
            Command::GenSecret => "gen-secret",
            Command::Listen { .. } => "listen",
        }
    }

    /// Whether the command reads the configuration (`--config`).
    pub fn reads_config(&self) -> bool {
        !matches!(self, Command::GenSecret)
    }
}

/// An option given to a command that has no use for it: refused rather
/// than silently ignored, since whoever typed it expected it to matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnusedOption {
    /// The option as typed, such as `--protocol`.
    pub option: &'static str,
    /// The command that does not use it.
    pub command: &'static str,
    /// What the option is for.
    pub used_by: &'static str,
}

impl Cli {
    /// The first option given that the chosen command does not use.
    pub fn unused_option(&self) -> Option<UnusedOption> {
        let command = self.command.as_ref()?;
        if self.protocol.is_some() {
            return Some(UnusedOption {
                option: "--protocol",
                command: command.name(),
                used_by: "it chooses the wire protocol when serving (without a command)",
            });
        }
        if self.config.is_some() && !command.reads_config() {
            return Some(UnusedOption {
                option: "--config",
                command: command.name(),
                used_by: "it prints lines for a new configuration and reads none",
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("xmpp-token-auth").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn command_names_are_the_ones_clap_parses() {
        let clap = Cli::command();
        let names: Vec<&str> = clap
            .get_subcommands()
            .map(|s| s.get_name())
            .filter(|n| *n != "help")
            .collect();
        assert_eq!(
            names,
            ["generate", "verify", "check-config", "gen-secret", "listen"],
            "a command was added: name it in Command::name"
        );
        for name in names {
            let args: &[&str] = match name {
                "generate" => &["generate", "a@b"],
                "verify" => &["verify", "a@b", "t"],
                _ => &[name],
            };
            assert_eq!(parse(args).command.unwrap().name(), name);
        }
    }

    #[test]
    fn an_option_the_command_does_not_use_is_named() {
        let unused = |args: &[&str]| parse(args).unused_option().map(|u| (u.option, u.command));
        assert_eq!(unused(&["--protocol", "line"]), None);
        assert_eq!(unused(&["--config", "x.toml", "--protocol", "line"]), None);
        assert_eq!(unused(&["--config", "x.toml", "check-config"]), None);
        assert_eq!(unused(&["check-config", "--config", "x.toml"]), None);
        assert_eq!(unused(&["-c", "x.toml", "verify", "a@b", "t"]), None);
        assert_eq!(unused(&["gen-secret"]), None);
        for (args, expected) in [
            (
                &["--protocol", "line", "check-config"][..],
                ("--protocol", "check-config"),
            ),
            (
                &["--protocol", "ejabberd", "generate", "a@b"],
                ("--protocol", "generate"),
            ),
            (
                &["--protocol", "auto", "verify", "a@b", "t"],
                ("--protocol", "verify"),
            ),
            (
                &["--protocol", "line", "gen-secret"],
                ("--protocol", "gen-secret"),
            ),
            (
                &["--config", "x.toml", "gen-secret"],
                ("--config", "gen-secret"),
            ),
            (
                &["gen-secret", "--config", "x.toml"],
                ("--config", "gen-secret"),
            ),
            (&["gen-secret", "-c", "x.toml"], ("--config", "gen-secret")),
        ] {
            assert_eq!(unused(args), Some(expected), "{args:?}");
        }
    }

    #[test]
    fn the_exit_status_help_fits_a_terminal() {
        let help = exit_status_help();
        assert!(help.lines().all(|l| l.chars().count() <= 80), "{help}");
        assert!(
            help.contains("\n  2  A usage or configuration error;"),
            "{help}"
        );
    }

    #[test]
    fn the_exit_status_table_has_each_status_once_in_order() {
        let codes: Vec<u8> = EXIT_STATUS.iter().map(|(code, _)| *code).collect();
        assert_eq!(codes, [EXIT_SUCCESS, EXIT_INVALID, EXIT_USAGE]);
        let clap_usage = Cli::try_parse_from(["xmpp-token-auth", "--bogus"]).unwrap_err();
        assert_eq!(clap_usage.exit_code(), i32::from(EXIT_USAGE));
    }
}
