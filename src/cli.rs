//! The command line (SPEC §7). Kept in the library so that the man page and
//! shell completions are generated from this very definition.

use crate::core::config::ProtocolChoice;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
    max_term_width = 100
)]
pub struct Cli {
    /// Configuration file [default: $XMPP_TOKEN_AUTH_CONFIG, else /etc/xmpp-token-auth/config.toml]
    #[arg(long, short = 'c', value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,

    /// Wire protocol when serving; overrides the `protocol` key of the configuration
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
        /// Nonce digits to use instead of 32 random ones
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
    CheckConfig,
    /// Print a fresh token_secret and otp_seed as TOML lines for the configuration
    GenSecret,
}
