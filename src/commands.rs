//! What each command does, between the command line ([`crate::main`]) and
//! the library: serving, `generate`, `verify`, `check-config` and
//! `gen-secret`. Every failure is an [`Error`], whose exit status is in the
//! one table of [`xmpp_token_auth::cli::EXIT_STATUS`].

use crate::error::Error;
use crate::startup;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use xmpp_token_auth::config_file::{self, Watch};
use xmpp_token_auth::core::config::ConfigError;
use xmpp_token_auth::core::config::PACKAGE_GROUP;
use xmpp_token_auth::core::config::{
    Config, EngineAddress, EngineFallback, ListenSettings, LogTarget, ProtocolChoice, ReplayEngine,
};
use xmpp_token_auth::core::helper::{self, Helper, Reason, Service};
use xmpp_token_auth::core::replay::{ReplayError, ReplayMemory, TokenId};
use xmpp_token_auth::core::{totp, verify};
use xmpp_token_auth::listen;
use xmpp_token_auth::log::{self, Level, Logger};
#[cfg(feature = "redis")]
use xmpp_token_auth::replay_redis::RedisStore;
use xmpp_token_auth::replay_store::{SharedStore, StoreSnapshot};
use xmpp_token_auth::serve::{self, unix_now};
use xmpp_token_auth::sys::{activation, fds, signals, terminal, users};
use xmpp_token_auth::{access, log_socket};

/// Serves until the XMPP server goes away or a signal comes: exit 0.
///
/// A configuration, key file or replay store that cannot be used at start
/// (docs/protocol.md §9): on a terminal (Prosody) one line `error: REASON`
/// on stdout, which Prosody logs, and exit 0, so that Prosody starts a fresh
/// helper at the next login; on pipes (ejabberd) the helper stays up,
/// refuses every request, and heals once the files are fixed, since
/// ejabberd would restart a helper that exits in a loop until it gives up
/// on its whole pool.
pub fn serve(path: &Path, protocol: Option<ProtocolChoice>) -> ExitCode {
    let installed = signals::install();
    let on_terminal = std::io::stdin().is_terminal();
    let early_logger = || {
        Logger::open(
            startup::LOG_BEFORE_CONFIGURATION,
            None,
            startup::stderr_is_free(on_terminal),
        )
    };
    if let Err(e) = installed {
        let error = Error::Signals(e);
        tell(
            &early_logger(),
            on_terminal,
            Level::Error,
            &error.to_string(),
        );
        return ExitCode::from(error.exit_code());
    }
    let notes = prepare_descriptors(on_terminal);
    // The file the start-up error named, to watch for its fix.
    let mut unconfigured_by = None;
    let (service, logger, configured_protocol) = match load_helper(path) {
        Ok(helper) => {
            let config = helper.config();
            let logger = Logger::open(
                startup::log_target(config.log, on_terminal),
                config.log_file.as_deref(),
                startup::stderr_is_free(on_terminal),
            );
            for warning in &config.warnings {
                tell(&logger, on_terminal, Level::Warning, warning);
            }
            let protocol = config.protocol;
            (Service::Ready(helper), logger, protocol)
        }
        Err((error, _)) if on_terminal => {
            early_logger().log(Level::Error, &error.to_string());
            // The one line Prosody reads and logs; then a fresh start.
            println!("error: {error}");
            return ExitCode::SUCCESS;
        }
        Err((error, file)) => {
            let logger = early_logger();
            tell(&logger, on_terminal, Level::Error, &error.to_string());
            unconfigured_by = file;
            (Service::Unconfigured, logger, ProtocolChoice::Auto)
        }
    };
    for (level, note) in &notes {
        logger.log(*level, note);
    }
    let protocol = startup::protocol(protocol, configured_protocol, on_terminal);
    match &service {
        Service::Ready(helper) => logger.log(
            Level::Info,
            &format!(
                "serving {} protocol for {}, configuration {}",
                protocol.name(),
                helper.config().describe_domains(),
                path.display()
            ),
        ),
        Service::Unconfigured => logger.log(
            Level::Error,
            &format!(
                "serving {} protocol, refusing every request until {} can be used; \
                 trying again every {} s and whenever a file changes",
                protocol.name(),
                path.display(),
                serve::RETRY_INTERVAL.as_secs()
            ),
        ),
    }
    let service = Mutex::new(service);
    let mut healer = Healer::new(path, unconfigured_by, &logger);
    serve::serve(&service, protocol.decoder(), &logger, &mut || healer.heal());
    ExitCode::SUCCESS
}

/// Logs a start-up message, and writes it on stderr too where the operator
/// or the XMPP server's log reads it ([`startup::also_to_stderr`]): not on a
/// terminal, and not twice when the log is stderr already.
fn tell(logger: &Logger, on_terminal: bool, level: Level, message: &str) {
    logger.log(level, message);
    if startup::also_to_stderr(on_terminal, logger.target()) {
        log::to_stderr(format_args!("xmpp-token-auth: {}{message}", level.label()));
    }
}

/// A configuration made into a ready helper, its replay store opened; on
/// failure, the error and the file to watch for its fix.
fn load_helper(path: &Path) -> Result<Helper, (Error, Option<PathBuf>)> {
    let config = config_file::load(path).map_err(|e| {
        let file = e.file().to_owned();
        (Error::from(e), Some(file))
    })?;
    build_helper(config)
}

fn build_helper(config: Config) -> Result<Helper, (Error, Option<PathBuf>)> {
    if config.shared_engine().is_some() {
        let engine = open_replay_engine(&config)?;
        return Ok(Helper::with_replay_memory(config, engine));
    }
    let store = open_replay_store(&config).map_err(|e| {
        let file = config.replay_store.as_ref().map(|s| s.path.clone());
        (e, file)
    })?;
    Ok(match store {
        Some(store) => Helper::with_replay_memory(config, Box::new(store)),
        None => Helper::new(config),
    })
}

/// The engine every node shares (`replay_store = "redis://…"`), not
/// connected yet: an engine that is down makes the helper refuse tokens (or
/// fall back), never stop. Degraded protection is logged where the
/// configuration logs.
#[cfg(feature = "redis")]
fn open_replay_engine(
    config: &Config,
) -> Result<Box<dyn ReplayMemory + Send>, (Error, Option<PathBuf>)> {
    let store = connect_replay_engine(config)?;
    let logger = Logger::open(
        startup::log_target(config.log, std::io::stdin().is_terminal()),
        config.log_file.as_deref(),
        false,
    );
    let notices = move |message: &str| {
        let level = match message.starts_with("cluster replay protection degraded") {
            true => Level::Error,
            false => Level::Warning,
        };
        logger.log(level, message);
    };
    Ok(Box::new(store.with_notices(Box::new(notices))))
}

#[cfg(not(feature = "redis"))]
fn open_replay_engine(
    config: &Config,
) -> Result<Box<dyn ReplayMemory + Send>, (Error, Option<PathBuf>)> {
    Err((no_engine_support(config), None))
}

/// The engine's client for `config`; errors name the key to fix and the
/// file to watch.
#[cfg(feature = "redis")]
fn connect_replay_engine(config: &Config) -> Result<RedisStore, (Error, Option<PathBuf>)> {
    let engine = config
        .shared_engine()
        .expect("called only with an engine configured");
    RedisStore::open(engine, config.replay_cache_size).map_err(|e| {
        let error = Error::Config(ConfigError::Invalid {
            path: config.path.clone(),
            line: engine.line,
            key: e.key.unwrap_or("replay_store").to_string(),
            problem: format!("cannot be used: {}", e.message),
        });
        (error, e.file)
    })
}

#[cfg(not(feature = "redis"))]
fn no_engine_support(config: &Config) -> Error {
    Error::Config(ConfigError::Invalid {
        path: config.path.clone(),
        line: config.replay_engine.as_ref().map_or(0, |e| e.line),
        key: "replay_store".into(),
        problem: "names a Redis engine, but this build has no Redis support \
                  (cargo feature \"redis\"): use a file, or a build with it"
            .into(),
    })
}

/// Tries an unconfigured helper's configuration again: every
/// [`serve::RETRY_INTERVAL`], and at once when the configuration or the
/// file its last error named changes. A failure that repeats is logged
/// again only when it changes or once a minute.
struct Healer<'a> {
    path: &'a Path,
    logger: &'a Logger,
    watch: Watch,
    last_try: Instant,
    last_error: Option<(String, Instant)>,
}

impl<'a> Healer<'a> {
    fn new(path: &'a Path, watched: Option<PathBuf>, logger: &'a Logger) -> Healer<'a> {
        Healer {
            path,
            logger,
            watch: Watch::new(std::iter::once(path.to_owned()).chain(watched)),
            last_try: Instant::now(),
            last_error: None,
        }
    }

    fn heal(&mut self) -> Option<Service> {
        if !self.watch.changed() && self.last_try.elapsed() < serve::RETRY_INTERVAL {
            return None;
        }
        self.last_try = Instant::now();
        match load_helper(self.path) {
            Ok(helper) => {
                let config = helper.config();
                self.logger.log(
                    Level::Info,
                    &format!(
                        "configuration {} usable again: serving for {}",
                        self.path.display(),
                        config.describe_domains()
                    ),
                );
                for warning in &config.warnings {
                    self.logger.log(Level::Warning, warning);
                }
                if config.log != startup::LOG_BEFORE_CONFIGURATION {
                    self.logger.log(
                        Level::Notice,
                        &format!(
                            "log = \"{}\" takes effect at the next start; until then the log stays where it is",
                            config.log
                        ),
                    );
                }
                Some(Service::Ready(helper))
            }
            Err((error, file)) => {
                let message = format!("still refusing every request: {error}");
                let repeat = matches!(&self.last_error,
                    Some((last, at)) if *last == message && at.elapsed() < Duration::from_secs(60));
                if !repeat {
                    self.logger.log(Level::Error, &message);
                    self.last_error = Some((message, Instant::now()));
                }
                if let Some(file) = file {
                    self.watch = Watch::new([self.path.to_owned(), file]);
                }
                None
            }
        }
    }
}

/// `listen`: the socket daemon, until SIGTERM or SIGINT. Only a socket
/// that cannot be made ends it at start (exit 2); a configuration that
/// cannot be used is refused request by request until it is fixed, since
/// systemd would otherwise give up restarting it and every Prosody login
/// would fail.
pub fn listen(path: &Path, socket: Option<PathBuf>) -> ExitCode {
    let passed = activation::passed_count();
    let closed = match passed {
        0 => fds::close_inherited(),
        n => fds::close_inherited_but_passed(n),
    };
    // The daemon's stderr is never a reply channel.
    let fail = |logger: &Logger, error: Error| {
        tell(logger, false, Level::Error, &error.to_string());
        ExitCode::from(error.exit_code())
    };
    // Blocked before any thread starts, so that only the daemon's signal
    // thread takes them.
    let signals = match signals::for_threads() {
        Ok(signals) => signals,
        Err(e) => {
            return fail(
                &Logger::open(LogTarget::Syslog, None, true),
                Error::Signals(e),
            );
        }
    };
    let loaded = load_helper(path);
    let logger = match &loaded {
        Ok(helper) => Logger::open(
            helper.config().log,
            helper.config().log_file.as_deref(),
            true,
        ),
        Err(_) => Logger::open(startup::LOG_BEFORE_CONFIGURATION, None, true),
    };
    if let Err(e) = closed {
        logger.log(
            Level::Error,
            &format!("cannot close inherited descriptors: {e}"),
        );
    }
    let (service, mut settings, watched) = match loaded {
        Ok(helper) => {
            for warning in &helper.config().warnings {
                tell(&logger, false, Level::Warning, warning);
            }
            let settings = helper.config().listen.clone();
            (Service::Ready(helper), settings, Vec::new())
        }
        Err((error, file)) => {
            tell(&logger, false, Level::Error, &error.to_string());
            (
                Service::Unconfigured,
                ListenSettings::default(),
                file.into_iter().collect(),
            )
        }
    };
    let socket = match passed {
        0 => {
            if let Some(path) = socket {
                settings.socket = path;
            }
            match listen::make_socket(&settings) {
                Ok(socket) => socket,
                Err(e) => return fail(&logger, e.into()),
            }
        }
        _ => {
            if socket.is_some() {
                logger.log(
                    Level::Warning,
                    "--socket is ignored: systemd passed the socket to listen on",
                );
            }
            match activation::take_listener() {
                Ok(listener) => listen::Socket::Activated(listener),
                Err(e) => return fail(&logger, Error::Activation(e)),
            }
        }
    };
    let state = match &service {
        Service::Ready(helper) => format!("for {}", helper.config().describe_domains()),
        Service::Unconfigured => {
            "refusing every request until the configuration can be used".into()
        }
    };
    logger.log(
        Level::Info,
        &format!(
            "listening on {} {state}, configuration {}",
            socket.describe(),
            path.display()
        ),
    );
    let build = |config: Config| build_helper(config).map_err(|(e, _)| e.to_string());
    listen::run(listen::Daemon {
        socket,
        service,
        settings,
        logger,
        config_path: path,
        watched,
        build: &build,
        signals,
    });
    ExitCode::SUCCESS
}

/// The descriptors' first steps, right after the signal handlers: no leaked
/// descriptor is kept, and on a terminal no byte of a password may be echoed
/// or turned into a signal, nor any request answered that the terminal may
/// have echoed back to Prosody. Returns what to log once the logger is
/// open (nothing may be written to a terminal's stderr).
fn prepare_descriptors(on_terminal: bool) -> Vec<(Level, String)> {
    let mut notes = Vec::new();
    if let Err(e) = fds::close_inherited() {
        notes.push((
            Level::Error,
            format!("cannot close inherited descriptors: {e}"),
        ));
    }
    if !on_terminal {
        return notes;
    }
    let stdin = std::io::stdin();
    let fd = std::os::fd::AsFd::as_fd(&stdin);
    if let Err(e) = terminal::make_raw(fd) {
        notes.push((
            Level::Error,
            format!("cannot make the terminal raw: {e}; passwords may be echoed and requests cut"),
        ));
    }
    match terminal::discard_input(fd) {
        Ok(0) => {}
        Ok(bytes) => notes.push((
            Level::Notice,
            format!(
                "discarded {bytes} bytes of input waiting on the terminal at start, \
                 unanswered: the terminal may have echoed them back as a reply"
            ),
        )),
        Err(e) => notes.push((
            Level::Error,
            format!(
                "cannot discard input waiting on the terminal: {e}; \
                 if it was echoed, replies may be one behind"
            ),
        )),
    }
    notes
}

/// The shared replay store, when the configuration asks for one.
fn open_replay_store(config: &Config) -> Result<Option<SharedStore>, Error> {
    let Some(store) = config.shared_store() else {
        return Ok(None);
    };
    SharedStore::open(&store.path, config.replay_cache_size, unix_now())
        .map(Some)
        .map_err(|cause| Error::ReplayStore {
            config: config.path.clone(),
            line: store.line,
            cause,
        })
}

/// The shared replay store as it is now, read without creating, writing or
/// locking anything (`check-config` and `verify` run as root in a folder the
/// XMPP server's group can write to).
fn read_replay_store(config: &Config) -> Result<Option<StoreSnapshot>, Error> {
    let Some(store) = config.shared_store() else {
        return Ok(None);
    };
    StoreSnapshot::read(&store.path, config.replay_cache_size)
        .map(Some)
        .map_err(|cause| Error::ReplayStore {
            config: config.path.clone(),
            line: store.line,
            cause,
        })
}

/// Splits a bare JID into user and domain.
fn split_jid(jid: &str) -> Result<(&str, &str), Error> {
    jid.split_once('@')
        .filter(|(user, server)| {
            !user.is_empty() && !server.is_empty() && !server.contains(['@', '/'])
        })
        .ok_or_else(|| Error::NotBareJid {
            jid: jid.to_string(),
        })
}

/// Prints a token for `jid`, as the application would mint it.
pub fn generate(
    config: &Config,
    jid: &str,
    nonce: Option<String>,
    at: Option<u64>,
) -> Result<(), Error> {
    let (user, server) = split_jid(jid)?;
    let keys = config
        .keys_for(server)
        .ok_or_else(|| Error::UnknownDomain {
            domain: server.to_string(),
            served: config.describe_domains(),
        })?;
    let nonce_digits = config.tokens.nonce_digits;
    let nonce = match nonce {
        Some(n) if !n.bytes().all(|b| b.is_ascii_digit()) => return Err(Error::NonceNotDigits),
        Some(n) if n.len() != nonce_digits as usize => {
            return Err(Error::NonceLength {
                given: n.len(),
                nonce_digits,
            });
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
    let now = at.unwrap_or_else(unix_now);
    println!(
        "{}",
        verify::generate(keys, config.tokens, user, server, &nonce, now)
    );
    Ok(())
}

/// Says whether `token` is valid for `jid`, as `auth` would decide, without
/// recording it: `valid: …` or [`Error::Invalid`].
pub fn verify(config: &Config, jid: &str, token: &str, at: Option<u64>) -> Result<(), Error> {
    let (user, server) = split_jid(jid)?;
    let now = at.unwrap_or_else(unix_now);
    let verified = helper::check_token(config, user, server, token, now).map_err(|reason| {
        let detail = match reason {
            Reason::UnknownDomain => {
                format!(" {server} (served: {})", config.describe_domains())
            }
            _ => String::new(),
        };
        Error::Invalid { reason, detail }
    })?;
    if config.shared_engine().is_some() {
        let id = TokenId {
            user,
            server,
            otp: verified.otp,
            nonce: verified.nonce,
        };
        if engine_was_used(config, &id)? {
            let engine = config.replay_engine.as_ref().map(|e| e.address.to_string());
            return Err(Error::Invalid {
                reason: Reason::Replay(ReplayError::Replayed),
                detail: engine.map_or(String::new(), |e| format!(" (replay store {e})")),
            });
        }
    }
    if let Some(snapshot) = read_replay_store(config)? {
        let id = TokenId {
            user,
            server,
            otp: verified.otp,
            nonce: verified.nonce,
        };
        if snapshot.was_used(&id, now) {
            let store = config.replay_store.as_ref().map(|s| s.path.display());
            return Err(Error::Invalid {
                reason: Reason::Replay(ReplayError::Replayed),
                detail: store.map_or(String::new(), |path| format!(" (replay store {path})")),
            });
        }
    }
    println!("valid: token for {jid}");
    Ok(())
}

/// Whether the engine remembers `id`: `EXISTS`, read only.
#[cfg(feature = "redis")]
fn engine_was_used(config: &Config, id: &TokenId) -> Result<bool, Error> {
    let mut store = connect_replay_engine(config).map_err(|(e, _)| e)?;
    store
        .was_used(id)
        .map_err(|e| engine_failed(config, e.message))
}

#[cfg(not(feature = "redis"))]
fn engine_was_used(config: &Config, _: &TokenId) -> Result<bool, Error> {
    Err(no_engine_support(config))
}

/// The engine could not be asked: the configuration line and the cause.
#[cfg(feature = "redis")]
fn engine_failed(config: &Config, message: String) -> Error {
    Error::Config(ConfigError::Invalid {
        path: config.path.clone(),
        line: config.replay_engine.as_ref().map_or(0, |e| e.line),
        key: "replay_store".into(),
        problem: format!("does not work: {message}"),
    })
}

/// `check-config --connect`: what the engine said, or why it cannot be
/// used, in words.
#[cfg(feature = "redis")]
fn probe_engine(config: &Config) -> Result<String, Error> {
    let mut store = connect_replay_engine(config).map_err(|(e, _)| e)?;
    store.probe().map_err(|e| engine_failed(config, e.message))
}

#[cfg(not(feature = "redis"))]
fn probe_engine(config: &Config) -> Result<String, Error> {
    Err(no_engine_support(config))
}

/// `check-config` without `--connect`: the engine's client can be made (a
/// CA file that cannot be used is an error), nothing is sent.
#[cfg(feature = "redis")]
fn engine_usable(config: &Config) -> Result<(), Error> {
    connect_replay_engine(config).map(drop).map_err(|(e, _)| e)
}

#[cfg(not(feature = "redis"))]
fn engine_usable(config: &Config) -> Result<(), Error> {
    Err(no_engine_support(config))
}

/// `check-config`'s lines for a Redis engine: where, how, and what a
/// helper does while it is unreachable. The replay memory's size matters
/// only for `replay_store_fallback = "local"`.
fn engine_summary(engine: &ReplayEngine, capacity: usize) -> String {
    let user = engine.username.as_deref().unwrap_or("default");
    let password = match engine.password {
        Some(_) => "with a password",
        None => "without a password",
    };
    let tls = match (&engine.address, &engine.ca_file) {
        (EngineAddress::Tcp { tls: true, .. }, Some(ca)) => {
            format!(", TLS trusting the CA of {}", ca.display())
        }
        (EngineAddress::Tcp { tls: true, .. }, None) => ", TLS trusting the system's CAs".into(),
        _ => String::new(),
    };
    let outage = match engine.fallback {
        EngineFallback::None => "tokens are refused while the engine is unreachable \
                                 (replay_store_fallback = \"none\")"
            .to_string(),
        EngineFallback::Local => format!(
            "while the engine is unreachable, each helper checks tokens against its own memory \
             of up to {capacity} live tokens, so one may be accepted once by each helper, and \
             writes them to the engine once it is back (replay_store_fallback = \"local\")"
        ),
    };
    format!(
        "  replay:   on, in the engine {} shared by every node: keys {}…, timeout {} ms, \
         ACL user {user} {password}{tls}\n  outage:   {outage}",
        engine.address, engine.key_prefix, engine.timeout_ms
    )
}

/// Summarises a valid configuration; the replay store is looked at, never
/// touched. With `connect`, a Redis engine is tried: `PING`, and one probe
/// key that expires in seconds; without, its client is only made (a CA
/// file that cannot be used is said).
pub fn check_config(config: &Config, user: Option<&str>, connect: bool) -> Result<(), Error> {
    let snapshot = read_replay_store(config)?;
    let probed = match config.shared_engine() {
        Some(_) if connect => Some(probe_engine(config)?),
        Some(_) => {
            engine_usable(config)?;
            None
        }
        None => None,
    };
    let tokens = config.tokens;
    println!("{}: OK", config.path.display());
    println!("  domains:  {}", config.describe_domains());
    println!(
        "  tokens:   {} OTP digits, {} s steps, ±{} steps, nonces of {} digits",
        tokens.otp_digits, tokens.otp_interval, tokens.otp_window, tokens.nonce_digits
    );
    match (&config.replay_store, snapshot, config.shared_engine()) {
        _ if !config.replay_protection => {
            println!("  replay:   OFF: a token can be used again until it expires");
        }
        (_, _, Some(engine)) => {
            println!("{}", engine_summary(engine, config.replay_cache_size));
            match &probed {
                Some(said) => println!("  engine:   {said}"),
                None => println!("  engine:   not contacted; `check-config --connect` tries it"),
            }
        }
        (store, snapshot, None) => {
            let memory = match (store, snapshot) {
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
        }
    }
    println!("  isuser:   {}", config.isuser);
    println!("  protocol: {}", config.protocol);
    match &config.log_file {
        Some(file) => println!("  log:      file {}", file.display()),
        None => println!("  log:      {}", config.log),
    }
    let listen = &config.listen;
    println!(
        "  listen:   {} (mode {:04o}, group {}; under systemd socket activation the unit's \
         ListenStream=, SocketMode= and SocketGroup= decide instead), {} connections, \
         {} s request timeout",
        listen.socket.display(),
        listen.socket_mode,
        listen.socket_group,
        listen.max_connections,
        listen.request_timeout
    );
    if config.log == LogTarget::Syslog && !Path::new(log_socket::DEV_LOG).exists() {
        eprintln!(
            "xmpp-token-auth: warning: log = \"syslog\" but no syslog daemon listens on {}: \
             a helper will log to stderr instead (under ejabberdctl start, that is /dev/null); \
             install a syslog daemon, or set log = \"stderr\"",
            log_socket::DEV_LOG
        );
    }
    check_access(config, user)
}

/// `check-config --user NAME`: every file NAME cannot use, and the fix.
/// Without `--user`, as root: what the packages' group cannot use, as
/// warnings (the XMPP server's user is usually a member of that group).
fn check_access(config: &Config, user: Option<&str>) -> Result<(), Error> {
    let account = match user {
        Some(name) => users::account(name)
            .ok()
            .flatten()
            .ok_or_else(|| Error::NoSuchUser(name.to_string()))?,
        None if !users::is_root() => return Ok(()),
        None => match users::group_id(PACKAGE_GROUP) {
            Ok(Some(gid)) => users::Account {
                name: format!("the group {PACKAGE_GROUP}"),
                uid: access::GROUP_ONLY,
                groups: vec![gid],
            },
            _ => {
                println!(
                    "  access:   not checked: there is no group {PACKAGE_GROUP}; \
                     `check-config --user ejabberd` (or prosody) checks the XMPP server's account"
                );
                return Ok(());
            }
        },
    };
    let denied = access::denied(&account, config);
    match (user, denied.is_empty()) {
        (_, true) => {
            println!(
                "  access:   {} can read every file the helper reads and use the replay store",
                account.name
            );
            Ok(())
        }
        (Some(name), false) => {
            for d in &denied {
                eprintln!("xmpp-token-auth: error: {d}");
            }
            Err(Error::Access {
                user: name.to_string(),
                count: denied.len(),
            })
        }
        (None, false) => {
            for d in &denied {
                eprintln!("xmpp-token-auth: warning: {d}");
            }
            Ok(())
        }
    }
}

/// Prints a fresh `token_secret` and `otp_seed` as configuration lines.
pub fn gen_secret() -> Result<(), Error> {
    // 20 bytes = 160 bits = exactly 32 base32 characters.
    let secret = zeroize::Zeroizing::new(random_bytes::<20>());
    let seed = zeroize::Zeroizing::new(random_bytes::<20>());
    println!("token_secret = \"{}\"", totp::encode_base32(&*secret));
    println!("otp_seed = \"{}\"", totp::encode_base32(&*seed));
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_jid_has_a_user_and_a_domain_and_no_resource() {
        assert_eq!(split_jid("a@b").unwrap(), ("a", "b"));
        assert_eq!(split_jid("a@b.example").unwrap(), ("a", "b.example"));
        for jid in ["a", "@b", "a@", "a@b/r", "a@b@c", ""] {
            assert!(
                matches!(split_jid(jid), Err(Error::NotBareJid { .. })),
                "{jid}"
            );
        }
    }

    #[test]
    fn random_digits_are_digits_of_the_length_asked() {
        for count in [0, 1, 32, 64, 200] {
            let digits = random_digits(count);
            assert_eq!(digits.len(), count);
            assert!(digits.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
