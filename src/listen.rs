//! The socket daemon (`listen`, docs/protocol.md §11): the line protocol on
//! a Unix stream socket, for Prosody's own module, with no pseudo-terminal.
//!
//! One thread accepts; each connection gets a thread of its own (up to
//! `max_connections`; one more is closed at once), which runs the same
//! conversation as the stdio helper ([`serve::converse`]) against one
//! [`Helper`] shared by all connections, so that there is one replay memory
//! per process (plus `replay_store` when configured). A request left
//! half-sent for `request_timeout` seconds closes its connection.
//!
//! Signals are blocked in every thread and taken by one: SIGHUP reloads the
//! configuration (a bad one is logged and the old one kept; the replay
//! memory stays), SIGTERM and SIGINT stop accepting, let every connection
//! answer what it has read, and end the process with status 0.

use crate::config_file::{self, Watch};
use crate::core::config::{Config, ListenSettings};
use crate::core::frame::Protocol;
use crate::core::helper::{Helper, Service};
use crate::log::{Level, Logger};
use crate::serve::{self, Ending};
use crate::sys::{signals, sockets, users};
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Each connection's read buffer: Prosody's requests are under 1000 bytes.
const CONNECTION_BUFFER: usize = 64 * 1024;

/// Where the listening socket came from.
pub enum Socket {
    /// Passed by systemd: its unit decides path, mode and group.
    Activated(UnixListener),
    /// Made here, at this path, and removed at exit.
    Made(UnixListener, PathBuf),
}

impl Socket {
    /// For the log: the path, or that systemd passed it.
    pub fn describe(&self) -> String {
        match self {
            Socket::Activated(_) => "the socket systemd passed".to_string(),
            Socket::Made(_, path) => path.display().to_string(),
        }
    }

    fn listener(&self) -> &UnixListener {
        match self {
            Socket::Activated(listener) | Socket::Made(listener, _) => listener,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error(
        "another daemon answers on {}; stop it first, or give this one another --socket",
        .0.display()
    )]
    InUse(PathBuf),
    #[error(
        "{} exists and is not a socket; remove it or choose another --socket",
        .0.display()
    )]
    NotASocket(PathBuf),
    #[error(
        "socket_group {0:?} does not exist: create it, or set socket_group to an existing group"
    )]
    NoGroup(String),
    #[error("cannot make the socket {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Makes the listening socket at `settings.socket` with its mode and group.
/// A socket file left by a daemon that died is replaced; one that another
/// daemon still answers on is an error.
pub fn make_socket(settings: &ListenSettings) -> Result<Socket, SocketError> {
    let path = &settings.socket;
    let io_error = |source| SocketError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(SocketError::NotASocket(path.clone()));
        }
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => return Err(SocketError::InUse(path.clone())),
            // Nobody listens: left by a daemon that died.
            Err(_) => std::fs::remove_file(path).map_err(io_error)?,
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(e)),
    }
    let gid = users::group_id(&settings.socket_group)
        .map_err(io_error)?
        .ok_or_else(|| SocketError::NoGroup(settings.socket_group.clone()))?;
    let listener = UnixListener::bind(path).map_err(io_error)?;
    let made = Socket::Made(listener, path.clone());
    std::os::unix::fs::chown(path, None, Some(gid)).map_err(io_error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(settings.socket_mode))
        .map_err(io_error)?;
    Ok(made)
}

/// What every thread shares.
struct Shared<'b> {
    service: Mutex<Service>,
    /// Makes a helper of a configuration: opens its replay memory.
    build: &'b Build,
    logger: Logger,
    settings: Mutex<ListenSettings>,
    stopping: AtomicBool,
    /// Open connections, to wake their readers when stopping.
    connections: Mutex<HashMap<u64, UnixStream>>,
    next_id: AtomicU64,
}

/// Makes a ready helper of a configuration (opening its replay store), or
/// says why it cannot.
pub type Build = dyn Fn(Config) -> Result<Helper, String> + Sync;

/// Everything the daemon starts with.
pub struct Daemon<'a> {
    pub socket: Socket,
    pub service: Service,
    pub settings: ListenSettings,
    pub logger: Logger,
    pub config_path: &'a Path,
    /// Files besides the configuration whose change is worth a retry while
    /// unconfigured (the one the last error named).
    pub watched: Vec<PathBuf>,
    pub build: &'a Build,
    pub signals: signals::DaemonSignals,
}

/// Serves until SIGTERM or SIGINT; always returns normally. An
/// [`Service::Unconfigured`] service is tried again every few seconds, and
/// at once when the configuration file or `watched` files change.
pub fn run(daemon: Daemon<'_>) {
    let Daemon {
        socket,
        service,
        settings,
        logger,
        config_path,
        watched,
        build,
        signals,
    } = daemon;
    let shared = Arc::new(Shared {
        service: Mutex::new(service),
        build,
        logger,
        settings: Mutex::new(settings),
        stopping: AtomicBool::new(false),
        connections: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
    });
    let listener = socket.listener();
    // The signal thread writes here to stop the accepting loop.
    let (stop_reader, stop_writer) = match std::io::pipe() {
        Ok(pipe) => pipe,
        Err(e) => {
            shared
                .logger
                .log(Level::Error, &format!("cannot make a pipe: {e}; exiting"));
            return;
        }
    };
    std::thread::scope(|scope| {
        scope.spawn(|| take_signals(&signals, &shared, stop_writer, config_path, watched));
        loop {
            match sockets::accept_unless(listener, &stop_reader) {
                Ok(None) => {
                    // Connections the kernel took before the stop are owed
                    // their answers too: each answers what it sent, then ends.
                    while let Ok(Some(stream)) = sockets::accept_waiting(listener) {
                        admit(scope, &shared, stream);
                    }
                    break;
                }
                Ok(Some(stream)) => admit(scope, &shared, stream),
                Err(e) => {
                    shared
                        .logger
                        .log(Level::Error, &format!("cannot accept a connection: {e}"));
                    // Out of descriptors or memory: do not spin.
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    });
    if let Socket::Made(_, path) = &socket {
        let _ = std::fs::remove_file(path);
    }
    shared.logger.log(Level::Info, "stopped");
}

/// Starts a thread for `stream`, or closes it when there are too many.
fn admit<'scope, 'b>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    shared: &'scope Arc<Shared<'b>>,
    stream: UnixStream,
) {
    let (max, timeout) = {
        let settings = shared.settings.lock().unwrap_or_else(|p| p.into_inner());
        (settings.max_connections, settings.request_timeout)
    };
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    {
        let mut open = shared.connections.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= max {
            drop(open);
            shared.logger.log(
                Level::Warning,
                &format!("closed a connection: {max} are open already (max_connections)"),
            );
            return; // dropping `stream` closes it
        }
        match stream.try_clone() {
            Ok(handle) => {
                // Stopping meanwhile: the signal thread may have looked at
                // the open connections already.
                if shared.stopping.load(Ordering::SeqCst) {
                    let _ = handle.shutdown(std::net::Shutdown::Read);
                }
                open.insert(id, handle)
            }
            Err(e) => {
                drop(open);
                shared
                    .logger
                    .log(Level::Error, &format!("cannot serve a connection: {e}"));
                return;
            }
        };
    }
    scope.spawn(move || {
        converse(stream, shared, Duration::from_secs(timeout));
        shared
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    });
}

/// One connection, until its peer closes it, it stays half-sent too long,
/// or the daemon stops.
fn converse(mut stream: UnixStream, shared: &Shared<'_>, timeout: Duration) {
    // A peer that stops reading its replies must not hold the thread (and
    // the daemon's exit) forever either.
    let timeouts = stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)));
    if let Err(e) = timeouts {
        shared
            .logger
            .log(Level::Error, &format!("cannot serve a connection: {e}"));
        return;
    }
    let mut decoder = Protocol::Line.decoder();
    let mut buffer = vec![0u8; CONNECTION_BUFFER];
    let mut output = match stream.try_clone() {
        Ok(output) => output,
        Err(e) => {
            shared
                .logger
                .log(Level::Error, &format!("cannot serve a connection: {e}"));
            return;
        }
    };
    loop {
        let read = |buffer: &mut [u8]| io::Read::read(&mut stream, buffer).map(Some);
        let ending = serve::converse(
            read,
            &mut output,
            &mut decoder,
            &shared.service,
            &shared.logger,
            &mut buffer,
        );
        match ending {
            Ending::Stopped | Ending::InputEnded => return,
            // The peer went with replies unread (Prosody's module drops its
            // connection on a timeout): nothing to report.
            Ending::WriteFailed(e) | Ending::ReadFailed(e) if serve::peer_gone(&e) => return,
            Ending::ReadFailed(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if decoder.is_mid_request() {
                    shared.logger.log(
                        Level::Notice,
                        &format!(
                            "closed a connection: a request stayed incomplete for {} s (request_timeout)",
                            timeout.as_secs()
                        ),
                    );
                    return;
                }
                // Idle between requests: Prosody keeps its connection open.
                if shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
            }
            Ending::WriteFailed(e) | Ending::ReadFailed(e) => {
                shared
                    .logger
                    .log(Level::Error, &format!("closed a connection: {e}"));
                return;
            }
        }
    }
}

fn take_signals(
    signals: &signals::DaemonSignals,
    shared: &Shared<'_>,
    mut stop_accepting: std::io::PipeWriter,
    config_path: &Path,
    watched: Vec<PathBuf>,
) {
    let mut watch = Watch::new(std::iter::once(config_path.to_owned()).chain(watched));
    let mut last_try = Instant::now();
    loop {
        match signals.wait_for(Duration::from_secs(1)) {
            Ok(Some(signals::DaemonSignal::Reload)) => reload(shared, config_path),
            Ok(Some(signals::DaemonSignal::Stop)) => break,
            Ok(None) => {
                let unconfigured = matches!(
                    *shared.service.lock().unwrap_or_else(|p| p.into_inner()),
                    Service::Unconfigured
                );
                if unconfigured && (watch.changed() || last_try.elapsed() >= serve::RETRY_INTERVAL)
                {
                    last_try = Instant::now();
                    reload(shared, config_path);
                }
            }
            Err(e) => {
                shared.logger.log(
                    Level::Error,
                    &format!("cannot wait for signals: {e}; stopping"),
                );
                break;
            }
        }
    }
    shared.stopping.store(true, Ordering::SeqCst);
    if let Err(e) = std::io::Write::write_all(&mut stop_accepting, b"x") {
        shared
            .logger
            .log(Level::Error, &format!("cannot stop accepting: {e}"));
    }
    // Every connection reads what was sent before this, answers it, then
    // sees the end of its input.
    for stream in shared
        .connections
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
    {
        let _ = stream.shutdown(std::net::Shutdown::Read);
    }
}

/// SIGHUP, or a retry while unconfigured: the configuration anew, keeping
/// the replay memory; if the new one is bad, the one in force stays.
fn reload(shared: &Shared<'_>, config_path: &Path) {
    let config: Config = match config_file::load(config_path) {
        Ok(config) => config,
        Err(e) => {
            shared.logger.log(
                Level::Error,
                &format!("configuration not loaded, the one in force stays: {e}"),
            );
            return;
        }
    };
    for warning in &config.warnings {
        shared.logger.log(Level::Warning, warning);
    }
    let settings = config.listen.clone();
    let mut service = shared.service.lock().unwrap_or_else(|p| p.into_inner());
    let restart_needs = match &mut *service {
        Service::Ready(helper) => {
            let old = helper.reconfigure(config);
            let new = helper.config();
            let mut changed = Vec::new();
            if new.replay_store != old.replay_store
                || new.replay_engine != old.replay_engine
                || new.replay_protection != old.replay_protection
                || new.replay_cache_size != old.replay_cache_size
            {
                changed.push("the replay memory");
            }
            if new.log != old.log {
                changed.push("log");
            }
            if new.listen.socket != old.listen.socket
                || new.listen.socket_mode != old.listen.socket_mode
                || new.listen.socket_group != old.listen.socket_group
            {
                changed.push("the socket");
            }
            changed
        }
        Service::Unconfigured => match (shared.build)(config) {
            Ok(helper) => {
                *service = Service::Ready(helper);
                Vec::new()
            }
            Err(e) => {
                drop(service);
                shared
                    .logger
                    .log(Level::Error, &format!("still refusing every request: {e}"));
                return;
            }
        },
    };
    drop(service);
    *shared.settings.lock().unwrap_or_else(|p| p.into_inner()) = settings;
    let mut message = format!("loaded {}", config_path.display());
    if !restart_needs.is_empty() {
        message.push_str(&format!(
            "; changes to {} take effect only after a restart",
            restart_needs.join(", ")
        ));
    }
    shared.logger.log(Level::Info, &message);
}
