use clap::Parser;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use xmpp_token_auth::cli::{Cli, Command};
use xmpp_token_auth::config_file;
use xmpp_token_auth::core::config::{self, Config, LogTarget, ProtocolChoice};
use xmpp_token_auth::core::frame::Protocol;
use xmpp_token_auth::core::helper::Helper;
use xmpp_token_auth::core::replay::{ReplayError, TokenId};
use xmpp_token_auth::core::totp;
use xmpp_token_auth::core::verify::{self, Keys};
use xmpp_token_auth::log::{Level, Logger};
use xmpp_token_auth::replay_store::{SharedStore, StoreSnapshot};
use xmpp_token_auth::serve::{self, unix_now};
use xmpp_token_auth::sys::{fds, signals, terminal};

/// Exit status for an invalid configuration or command line (clap's too).
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = config_path(cli.config);
    match cli.command {
        None => run_server(&path, cli.protocol),
        Some(Command::GenSecret) => gen_secret(),
        Some(command) => match config_file::load(&path) {
            Err(e) => fail(&e.to_string()),
            Ok(config) => {
                for warning in &config.warnings {
                    eprintln!("xmpp-token-auth: warning: {warning}");
                }
                run_command(command, &config)
            }
        },
    }
}

fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| {
        std::env::var_os(config::PATH_VARIABLE)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
    .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH))
}

fn fail(message: &str) -> ExitCode {
    eprintln!("xmpp-token-auth: error: {message}");
    ExitCode::from(USAGE)
}

/// A start-up error of the server: the XMPP server's log shows stderr, the
/// operator's log shows `logger`.
fn fail_serving(logger: &Logger, message: &str) -> ExitCode {
    logger.log(Level::Error, message);
    fail(message)
}

fn run_server(path: &Path, protocol: Option<ProtocolChoice>) -> ExitCode {
    let (on_terminal, start_log) = match start_up() {
        Ok(started) => started,
        Err(code) => return code,
    };

    let config = match config_file::load(path) {
        Ok(config) => config,
        Err(e) => return fail_serving(&Logger::open(LogTarget::Syslog), &e.to_string()),
    };
    // Under Prosody the terminal is stderr too: a stray line there would be
    // read as a reply, so logs that would go to stderr go to syslog instead.
    let target = match config.log {
        LogTarget::Stderr if on_terminal => LogTarget::Syslog,
        target => target,
    };
    let logger = Logger::open(target);
    start_log.iter().for_each(|(l, m)| logger.log(*l, m));
    for warning in &config.warnings {
        logger.log(Level::Warning, warning);
        if !on_terminal && target != LogTarget::Stderr {
            eprintln!("xmpp-token-auth: warning: {warning}");
        }
    }
    let protocol = match protocol.unwrap_or(config.protocol) {
        ProtocolChoice::Ejabberd => Protocol::Ejabberd,
        ProtocolChoice::Line => Protocol::Line,
        ProtocolChoice::Auto if on_terminal => Protocol::Line,
        ProtocolChoice::Auto => Protocol::Ejabberd,
    };
    let store = match open_replay_store(&config) {
        Ok(store) => store,
        Err(message) => return fail_serving(&logger, &message),
    };
    logger.log(
        Level::Info,
        &format!(
            "serving {} protocol for {}, configuration {}",
            protocol.name(),
            config.describe_domains(),
            config.path.display()
        ),
    );
    let mut helper = match store {
        Some(store) => Helper::with_replay_memory(config, Box::new(store)),
        None => Helper::new(config),
    };
    serve::serve(&mut helper, protocol.decoder(), &logger);
    ExitCode::SUCCESS
}

/// The server's first steps, before anything else: a signal must end the
/// helper with status 0, no leaked descriptor may be kept, and no byte of a
/// password may be echoed or turned into a signal by the terminal, nor any
/// request answered that the terminal may have echoed back to Prosody.
///
/// Returns whether stdin is a terminal, and what to log once the logger is
/// open: on a terminal nothing may be written to stderr, which Prosody reads
/// replies from.
fn start_up() -> Result<(bool, Vec<(Level, String)>), ExitCode> {
    let installed = signals::install();
    let stdin = std::io::stdin();
    let on_terminal = stdin.is_terminal();
    if let Err(e) = installed {
        let message = format!("cannot install signal handlers: {e}");
        if !on_terminal {
            return Err(fail(&message));
        }
        Logger::open(LogTarget::Syslog).log(Level::Error, &message);
        return Err(ExitCode::from(USAGE));
    }
    let mut log = Vec::new();
    if let Err(e) = fds::close_inherited() {
        log.push((
            Level::Error,
            format!("cannot close inherited descriptors: {e}"),
        ));
    }
    if on_terminal {
        let fd = std::os::fd::AsFd::as_fd(&stdin);
        if let Err(e) = terminal::make_raw(fd) {
            log.push((
                Level::Error,
                format!(
                    "cannot make the terminal raw: {e}; passwords may be echoed and requests cut"
                ),
            ));
        }
        match terminal::discard_input(fd) {
            Ok(0) => {}
            Ok(bytes) => log.push((
                Level::Notice,
                format!(
                    "discarded {bytes} bytes of input waiting on the terminal at start, \
                     unanswered: the terminal may have echoed them back as a reply"
                ),
            )),
            Err(e) => log.push((
                Level::Error,
                format!(
                    "cannot discard input waiting on the terminal: {e}; \
                     if it was echoed, replies may be one behind"
                ),
            )),
        }
    }
    Ok((on_terminal, log))
}

/// The shared replay store, when the configuration asks for one; an error
/// names the line of `replay_store` and what went wrong.
fn open_replay_store(config: &Config) -> Result<Option<SharedStore>, String> {
    let Some(store) = config
        .replay_store
        .as_ref()
        .filter(|_| config.replay_protection)
    else {
        return Ok(None);
    };
    SharedStore::open(&store.path, config.replay_cache_size, unix_now())
        .map(Some)
        .map_err(|e| {
            format!(
                "{}:{}: replay_store: {e}",
                config.path.display(),
                store.line
            )
        })
}

/// The shared replay store as it is now, read without creating, writing or
/// locking anything (`check-config` and `verify` run as root in a folder the
/// XMPP server's group can write to).
fn read_replay_store(config: &Config) -> Result<Option<StoreSnapshot>, String> {
    let Some(store) = config
        .replay_store
        .as_ref()
        .filter(|_| config.replay_protection)
    else {
        return Ok(None);
    };
    StoreSnapshot::read(&store.path, config.replay_cache_size)
        .map(Some)
        .map_err(|e| {
            format!(
                "{}:{}: replay_store: {e}",
                config.path.display(),
                store.line
            )
        })
}

/// `verify`'s last check: a token the shared store remembers is refused as
/// the helper would refuse it. Nothing is recorded.
fn used_before(
    config: &Config,
    user: &str,
    server: &str,
    verified: &verify::Verified,
    now: u64,
) -> Result<(), String> {
    let Some(snapshot) = read_replay_store(config)? else {
        return Ok(());
    };
    let id = TokenId {
        user,
        server,
        otp: verified.otp,
        nonce: verified.nonce,
    };
    match snapshot.was_used(&id, now) {
        true => Err(format!(
            "{} (replay store {})",
            ReplayError::Replayed,
            config
                .replay_store
                .as_ref()
                .map_or(Path::new(""), |s| &s.path)
                .display()
        )),
        false => Ok(()),
    }
}

/// Splits a bare JID and finds the keys of its domain.
fn keys_for<'c, 'j>(
    config: &'c Config,
    jid: &'j str,
) -> Result<(&'j str, &'j str, &'c Keys), String> {
    let (user, server) = jid
        .split_once('@')
        .filter(|(user, server)| {
            !user.is_empty() && !server.is_empty() && !server.contains(['@', '/'])
        })
        .ok_or_else(|| format!("{jid:?} is not a bare JID of the form user@domain"))?;
    let keys = config.keys_for(server).ok_or_else(|| {
        format!(
            "unknown domain {server} (served: {})",
            config.describe_domains()
        )
    })?;
    Ok((user, server, keys))
}

fn run_command(command: Command, config: &Config) -> ExitCode {
    match command {
        Command::Generate { jid, nonce, at } => {
            let (user, server, keys) = match keys_for(config, &jid) {
                Ok(found) => found,
                Err(e) => return fail(&e),
            };
            let nonce_digits = config.tokens.nonce_digits;
            let nonce = match nonce {
                Some(n) if !n.bytes().all(|b| b.is_ascii_digit()) => {
                    return fail("--nonce must be ASCII digits only");
                }
                Some(n) if n.len() != nonce_digits as usize => {
                    return fail(&format!(
                        "--nonce has {} digits, but tokens carry exactly {nonce_digits} (nonce_digits)",
                        n.len()
                    ));
                }
                Some(n) => n,
                None => random_digits(nonce_digits as usize),
            };
            if jid.chars().any(char::is_uppercase) {
                eprintln!(
                    "xmpp-token-auth: warning: XMPP servers lower-case the JID before asking the helper; \
                     this token is for {jid} exactly and will not log {} in",
                    jid.to_lowercase()
                );
            }
            println!(
                "{}",
                verify::generate(
                    keys,
                    config.tokens,
                    user,
                    server,
                    &nonce,
                    at.unwrap_or_else(unix_now)
                )
            );
            ExitCode::SUCCESS
        }
        Command::Verify { jid, token, at } => {
            let now = at.unwrap_or_else(unix_now);
            let verdict = keys_for(config, &jid).and_then(|(user, server, keys)| {
                let verified = verify::verify(keys, config.tokens, user, server, &token, now)
                    .map_err(|refusal| refusal.to_string())?;
                used_before(config, user, server, &verified, now)
            });
            match verdict {
                Ok(()) => {
                    println!("valid: token for {jid}");
                    ExitCode::SUCCESS
                }
                Err(reason) => {
                    println!("invalid: {reason}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig => {
            let snapshot = match read_replay_store(config) {
                Ok(snapshot) => snapshot,
                Err(message) => return fail(&message),
            };
            let tokens = config.tokens;
            println!("{}: OK", config.path.display());
            println!("  domains:  {}", config.describe_domains());
            println!(
                "  tokens:   {} OTP digits, {} s steps, ±{} steps, nonces of {} digits",
                tokens.otp_digits, tokens.otp_interval, tokens.otp_window, tokens.nonce_digits
            );
            if config.replay_protection {
                let memory = match (&config.replay_store, snapshot) {
                    (Some(store), Some(snapshot)) if snapshot.exists() => format!(
                        "shared store {} ({} tokens remembered now)",
                        store.path.display(),
                        snapshot.live_records(unix_now())
                    ),
                    (Some(store), _) => format!(
                        "shared store {} (made by the first helper that starts)",
                        store.path.display()
                    ),
                    (None, _) => "this process's memory".to_string(),
                };
                println!(
                    "  replay:   on, up to {} live tokens, in {memory}",
                    config.replay_cache_size
                );
            } else {
                println!("  replay:   OFF: a token can be used again until it expires");
            }
            println!("  isuser:   {}", config.isuser);
            println!("  protocol: {}", config.protocol);
            println!("  log:      {}", config.log);
            ExitCode::SUCCESS
        }
        Command::GenSecret => gen_secret(),
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// Uniform random decimal digits, by rejection sampling.
fn random_digits(count: usize) -> String {
    let mut digits = String::with_capacity(count);
    while digits.len() < count {
        for byte in random_bytes::<64>() {
            if byte < 250 && digits.len() < count {
                digits.push(char::from(b'0' + byte % 10));
            }
        }
    }
    digits
}

fn gen_secret() -> ExitCode {
    // 20 bytes = 160 bits = exactly 32 base32 characters.
    let secret = zeroize::Zeroizing::new(random_bytes::<20>());
    let seed = zeroize::Zeroizing::new(random_bytes::<20>());
    println!("token_secret = \"{}\"", totp::encode_base32(&*secret));
    println!("otp_seed = \"{}\"", totp::encode_base32(&*seed));
    ExitCode::SUCCESS
}
