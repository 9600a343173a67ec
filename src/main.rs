//! The binary: reads the command line, finds the configuration, runs the
//! command and turns its outcome into an exit status. Only wiring: what the
//! commands do is in [`commands`], the serving start-up's policy in
//! [`startup`], every failure and its exit status in [`error`].

#![forbid(unsafe_code)]

mod commands;
mod error;
mod startup;

use clap::Parser;
use error::Error;
use std::path::PathBuf;
use std::process::ExitCode;
use xmpp_token_auth::cli::{Cli, Command};
use xmpp_token_auth::config_file;
use xmpp_token_auth::core::config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(unused) = cli.unused_option() {
        return report(Error::UnusedOption(unused));
    }
    let path = config_path(cli.config);
    let outcome = match cli.command {
        // Serving reports its own start-up errors: stderr may be the
        // terminal Prosody reads replies from.
        None => return commands::serve(&path, cli.protocol),
        // Reports its own start-up errors, and stays up through a broken
        // configuration.
        Some(Command::Listen { socket }) => return commands::listen(&path, socket),
        Some(Command::GenSecret) => commands::gen_secret(),
        Some(command) => config_file::load(&path)
            .map_err(Error::from)
            .and_then(|config| {
                for warning in &config.warnings {
                    eprintln!("xmpp-token-auth: warning: {warning}");
                }
                run(command, config)
            }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(error),
    }
}

fn run(command: Command, config: config::Config) -> Result<(), Error> {
    match command {
        Command::Generate { jid, nonce, at } => commands::generate(&config, &jid, nonce, at),
        Command::Verify { jid, token, at } => commands::verify(&config, &jid, &token, at),
        Command::CheckConfig { user, connect } => {
            commands::check_config(&config, user.as_deref(), connect)
        }
        Command::GenSecret => commands::gen_secret(),
        Command::Listen { .. } => unreachable!("main runs listen itself"),
    }
}

/// `--config`, else `$XMPP_TOKEN_AUTH_CONFIG` if set and not empty, else the
/// default path.
fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        std::env::var_os(config::PATH_VARIABLE)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH))
}

/// A refused token is `verify`'s answer, on stdout; anything else is an
/// error, on stderr.
fn report(error: Error) -> ExitCode {
    match &error {
        Error::Invalid { .. } => println!("invalid: {error}"),
        _ => eprintln!("xmpp-token-auth: error: {error}"),
    }
    ExitCode::from(error.exit_code())
}
