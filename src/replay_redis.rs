//! The replay memory shared by every helper of every node of a cluster,
//! in a Redis or Valkey engine (`replay_store = "redis://…"`).
//!
//! Verification stays offline: the engine is asked only whether a token that
//! otherwise verifies was seen, with one atomic command per accepted token,
//! `SET <prefix><hex key> 1 NX PX <ms>`. The key is the hex of the same
//! 128-bit digest the file store uses ([`replay::key`]): no token material
//! and no user name reach the engine. The lifetime is relative (the token's
//! `until` minus now), never an absolute PXAT, so that clocks of the nodes and
//! of the engine need not agree.
//!
//! Each helper keeps one connection. One request spends at most
//! `replay_store_timeout_ms` on the engine in all, whatever fails: one
//! deadline bounds connecting and the command, and a connection is made on
//! a thread of its own (at most one at a time) that the request waits for
//! only until its deadline, since neither a host name's lookup nor a Unix
//! socket's connection has a timeout of its own. A connection that comes
//! too late is kept for the next request. A failure drops the connection;
//! the next request reconnects, at once the first time (an engine restart
//! closes idle connections), then after a growing pause during which
//! requests are refused at once. While the engine cannot be reached, tokens
//! are refused ([`ReplayError::Store`], an alarm naming the cause), or with
//! `replay_store_fallback = "local"` checked against the process's own
//! [`ReplayCache`] and written to the engine once it is back.

use crate::core::config::{EngineAddress, EngineFallback, ReplayEngine};
use crate::core::replay::{self, Key, ReplayCache, ReplayError, ReplayMemory, TokenId};
use redis::{
    Client, Connection, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, RedisError,
};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

/// First pause after a failed reconnection; it doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(2);
/// The largest CA file read.
const CA_FILE_MAX: u64 = 1 << 20;
/// Lifetime of `check-config --connect`'s probe key.
const PROBE_LIFETIME_MS: u64 = 5000;
/// Keys written back per request once the engine is back.
const WRITE_BACK_BATCH: usize = 1000;
/// Less time than this left: the command is not sent.
const MIN_COMMAND_TIME: Duration = Duration::from_millis(1);
/// How often "degraded" is said again while it lasts.
const NOTICE_INTERVAL: Duration = Duration::from_secs(60);

/// Where the store says what an operator should know that is not a
/// refusal: degraded protection under `replay_store_fallback = "local"`.
pub type Notices = Box<dyn FnMut(&str) + Send>;

/// The engine could not be used; the message names the engine and the cause
/// in words, and the configuration key to look at when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    /// The configuration key the fix is in, for errors found before any
    /// connection (`replay_store_ca_file`).
    pub key: Option<&'static str>,
    /// The file to watch for the fix, if the cause is a file.
    pub file: Option<PathBuf>,
    pub message: String,
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EngineError {}

pub struct RedisStore {
    /// `redis://host:port/db`, for messages (never a credential).
    name: String,
    prefix: String,
    timeout: Duration,
    client: Client,
    /// What error messages need to name the fix.
    context: Context,
    connection: Option<Connection>,
    /// The connection being made, on its own thread.
    connecting: Option<Receiver<Result<Connection, String>>>,
    /// No connection is tried before this, after a failure.
    pause_until: Option<Instant>,
    pause: Duration,
    /// The last failure, said while connections are not tried.
    last_error: Option<String>,
    /// `replay_store_fallback = "local"`.
    local: Option<Local>,
    notices: Option<Notices>,
}

/// What an error message names besides the engine.
#[derive(Debug, Clone)]
struct Context {
    timeout: Duration,
    /// The ACL user: `replay_store_username`, or Redis's `default`.
    user: String,
    prefix: String,
    host: Option<String>,
    ca_file: Option<PathBuf>,
}

/// The command a failure happened in, for messages.
#[derive(Debug, Clone, Copy)]
struct Step<'a> {
    command: &'static str,
    key: Option<&'a str>,
}

impl Step<'_> {
    const CONNECT: Step<'static> = Step {
        command: "AUTH",
        key: None,
    };
}

/// The process's own memory for `replay_store_fallback = "local"`.
struct Local {
    cache: ReplayCache,
    /// Accepted while the engine could not be reached: written to it once
    /// it is back.
    pending: Vec<(Key, u64)>,
    /// Since when, and how many tokens were accepted locally since the last
    /// notice.
    degraded: Option<(Instant, u64)>,
    capacity: usize,
}

impl RedisStore {
    /// A store for `engine`; nothing is connected yet, so an engine that is
    /// down does not stop a helper from starting (it refuses, or falls back,
    /// and connects once the engine is up). Fails only for a CA file that
    /// cannot be used.
    pub fn open(engine: &ReplayEngine, capacity: usize) -> Result<RedisStore, EngineError> {
        let name = engine.address.to_string();
        let addr = match &engine.address {
            EngineAddress::Tcp {
                host,
                port,
                tls: false,
                ..
            } => ConnectionAddr::Tcp(host.clone(), *port),
            EngineAddress::Tcp {
                host,
                port,
                tls: true,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: false,
                tls_params: None,
            },
            EngineAddress::Unix(path) => ConnectionAddr::Unix(path.clone()),
        };
        let db = match engine.address {
            EngineAddress::Tcp { db, .. } => db,
            EngineAddress::Unix(_) => 0,
        };
        let mut settings = RedisConnectionInfo::default()
            .set_db(db)
            .set_skip_set_lib_name();
        if let Some(user) = &engine.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &engine.password {
            settings = settings.set_password(password.as_str());
        }
        let info = addr
            .into_connection_info()
            .map_err(|e| unusable(&name, &e))?
            .set_redis_settings(settings);
        let client = match &engine.ca_file {
            None => Client::open(info),
            Some(path) => {
                let pem = read_ca_file(path)?;
                Client::build_with_tls(
                    info,
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem),
                    },
                )
            }
        }
        .map_err(|e| unusable(&name, &e))?;
        let local = (engine.fallback == EngineFallback::Local).then(|| Local {
            cache: ReplayCache::new(capacity),
            pending: Vec::new(),
            degraded: None,
            capacity,
        });
        let timeout = Duration::from_millis(engine.timeout_ms);
        let context = Context {
            timeout,
            user: engine.username.clone().unwrap_or_else(|| "default".into()),
            prefix: engine.key_prefix.clone(),
            host: match &engine.address {
                EngineAddress::Tcp { host, .. } => Some(host.clone()),
                EngineAddress::Unix(_) => None,
            },
            ca_file: engine.ca_file.clone(),
        };
        Ok(RedisStore {
            name,
            prefix: engine.key_prefix.clone(),
            timeout,
            client,
            context,
            connection: None,
            connecting: None,
            pause_until: None,
            pause: Duration::ZERO,
            last_error: None,
            local,
            notices: None,
        })
    }

    /// Says degraded protection (`replay_store_fallback = "local"`) through
    /// `notices`.
    pub fn with_notices(mut self, notices: Notices) -> RedisStore {
        self.notices = Some(notices);
        self
    }

    /// The engine, for messages: `redis://host:port/db`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The engine's key for a token: the prefix and the digest in hex.
    pub fn key_name(&self, key: &Key) -> String {
        let mut name = String::with_capacity(self.prefix.len() + 32);
        name.push_str(&self.prefix);
        for byte in key {
            let _ = write!(name, "{byte:02x}");
        }
        name
    }

    /// Whether `id` was recorded and is still remembered: `EXISTS`, read
    /// only (`verify`).
    pub fn was_used(&mut self, id: &TokenId) -> Result<bool, EngineError> {
        let key = self.key_name(&replay::key(id));
        let step = Step {
            command: "EXISTS",
            key: Some(&key),
        };
        let deadline = Instant::now() + self.timeout;
        self.run(deadline, step, |c| {
            redis::cmd("EXISTS").arg(&key).query::<i64>(c)
        })
        .map(|n| n > 0)
        .map_err(|message| self.error(message))
    }

    /// `check-config --connect`: `PING`, then a `SET` of a probe key under
    /// the prefix that expires in a few seconds, and an `EXISTS` of it: what
    /// a helper and `verify` need. Returns what was done.
    pub fn probe(&mut self) -> Result<String, EngineError> {
        let started = Instant::now();
        let ping = Step {
            command: "PING",
            key: None,
        };
        let pong = self
            .run(started + self.timeout, ping, |c| {
                redis::cmd("PING").query::<String>(c)
            })
            .map_err(|message| self.error(message))?;
        let ping = started.elapsed();
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| self.error(e.to_string()))?;
        let mut key = format!("{}check-config-", self.prefix);
        for byte in random {
            let _ = write!(key, "{byte:02x}");
        }
        let set = Step {
            command: "SET",
            key: Some(&key),
        };
        let written = self
            .run(Instant::now() + self.timeout, set, |c| {
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(PROBE_LIFETIME_MS)
                    .query::<Option<String>>(c)
            })
            .map_err(|message| self.error(message))?;
        if written.is_none() {
            return Err(self.error(format!(
                "the probe key {key} already existed: another program writes under the prefix"
            )));
        }
        let exists = Step {
            command: "EXISTS",
            key: Some(&key),
        };
        let found = self
            .run(Instant::now() + self.timeout, exists, |c| {
                redis::cmd("EXISTS").arg(&key).query::<i64>(c)
            })
            .map_err(|message| self.error(message))?;
        if found != 1 {
            return Err(self.error(format!(
                "the probe key {key} was written but is not there: the engine drops keys \
                 (maxmemory-policy, or a replica answering): keys must live their whole lifetime"
            )));
        }
        Ok(format!(
            "PING answered {pong} in {} ms; a probe key {key} was written and found (gone in {} s)",
            ping.as_millis(),
            PROBE_LIFETIME_MS / 1000
        ))
    }

    fn error(&self, message: String) -> EngineError {
        EngineError {
            key: None,
            file: None,
            message: format!("{}: {message}", self.name),
        }
    }

    /// Runs one command on the connection, connecting first if needed, by
    /// `deadline`. A failure drops the connection; on a connection that
    /// had worked, a failure other than a timeout or an engine's error is
    /// tried once more on a fresh one (the engine restarted and closed it),
    /// within the same deadline. Returns the cause in words.
    fn run<T>(
        &mut self,
        deadline: Instant,
        step: Step<'_>,
        mut command: impl FnMut(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, String> {
        for attempt in 0..2 {
            let fresh = match self.connection {
                Some(_) => false,
                None => {
                    let (connection, fresh) = self.connect(deadline)?;
                    self.connection = Some(connection);
                    fresh
                }
            };
            let Some(connection) = &mut self.connection else {
                unreachable!("connected above")
            };
            let Some(left) = deadline
                .checked_duration_since(Instant::now())
                .filter(|left| *left >= MIN_COMMAND_TIME)
            else {
                // The connection is good; this request has no time left.
                return Err(self.context.no_answer());
            };
            let timeouts = connection
                .set_read_timeout(Some(left))
                .and_then(|()| connection.set_write_timeout(Some(left)));
            let result = timeouts.and_then(|()| command(connection));
            match result {
                Ok(value) => {
                    self.pause = Duration::ZERO;
                    self.pause_until = None;
                    self.last_error = None;
                    return Ok(value);
                }
                // The engine said no; the connection is in step still.
                Err(e) if is_server_error(&e) => {
                    return Err(self.failed(self.context.explain(&e, step)));
                }
                Err(e) => {
                    self.connection = None;
                    if attempt == 1 || fresh || e.is_timeout() {
                        return Err(self.failed(self.context.explain(&e, step)));
                    }
                }
            }
        }
        unreachable!("the second attempt returns")
    }

    /// A connection by `deadline`, and whether it was made for this
    /// request (rather than by an attempt an earlier request gave up on).
    fn connect(&mut self, deadline: Instant) -> Result<(Connection, bool), String> {
        if let Some(receiver) = &self.connecting {
            match receiver.try_recv() {
                Ok(Ok(connection)) => {
                    self.connecting = None;
                    return Ok((connection, false));
                }
                Ok(Err(message)) => {
                    self.connecting = None;
                    self.failed(message);
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => self.connecting = None,
            }
        }
        if let Some(until) = self.pause_until
            && Instant::now() < until
        {
            return Err(self
                .last_error
                .clone()
                .unwrap_or_else(|| "not connected".into()));
        }
        let receiver = match self.connecting.take() {
            Some(receiver) => receiver,
            None => self.start_connecting()?,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(Ok(connection)) => Ok((connection, true)),
            Ok(Err(message)) => Err(self.failed(message)),
            Err(RecvTimeoutError::Timeout) => {
                self.connecting = Some(receiver);
                Err(self.failed(self.context.no_connection()))
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err(self.failed("the thread connecting to the engine ended without a word".into()))
            }
        }
    }

    /// Connects on a thread of its own, which ends by itself: no later than
    /// the timeout after the host name is looked up.
    fn start_connecting(&mut self) -> Result<Receiver<Result<Connection, String>>, String> {
        let (sender, receiver) = mpsc::sync_channel(1);
        let client = self.client.clone();
        let context = self.context.clone();
        std::thread::Builder::new()
            .name("replay-engine-connect".into())
            .spawn(move || {
                let connection = client
                    .get_connection_with_timeout(context.timeout)
                    .map_err(|e| context.explain(&e, Step::CONNECT));
                let _ = sender.send(connection);
            })
            .map_err(|e| self.failed(format!("cannot start a thread to connect: {e}")))?;
        Ok(receiver)
    }

    /// Notes a failure: no connection is tried again for a while.
    fn failed(&mut self, message: String) -> String {
        self.pause = (self.pause * 2).clamp(FIRST_PAUSE, MAX_PAUSE);
        self.pause_until = Some(Instant::now() + self.pause);
        self.last_error = Some(message.clone());
        message
    }

    fn set(&mut self, deadline: Instant, key: &Key, lifetime_ms: u64) -> Result<bool, String> {
        let name = self.key_name(key);
        // Not the key: a cause naming it would differ for every token, and
        // the log groups repeated alarms by their cause.
        let step = Step {
            command: "SET",
            key: None,
        };
        self.run(deadline, step, |c| {
            redis::cmd("SET")
                .arg(&name)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(lifetime_ms)
                .query::<Option<String>>(c)
        })
        .map(|reply| reply.is_some())
    }

    /// Writes what was accepted locally while the engine was away, in one
    /// round trip of at most [`WRITE_BACK_BATCH`] keys, within what is left
    /// of this request's time; keeps what could not be written.
    fn write_back(&mut self, deadline: Instant, now: u64) {
        let Some(local) = &mut self.local else {
            return;
        };
        local.pending.retain(|&(_, until)| now < until);
        if local.pending.is_empty() {
            return;
        }
        let batch: Vec<(Key, u64)> = local
            .pending
            .iter()
            .take(WRITE_BACK_BATCH)
            .copied()
            .collect();
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for (key, until) in &batch {
            pipe.cmd("SET")
                .arg(self.key_name(key))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg((until - now) * 1000);
        }
        let step = Step {
            command: "SET",
            key: None,
        };
        let Ok(replies) = self.run(deadline, step, |c| {
            pipe.query::<Vec<Result<Option<String>, RedisError>>>(c)
        }) else {
            return;
        };
        let mut done = Vec::new();
        let mut known = 0;
        for ((key, _), reply) in batch.iter().zip(&replies) {
            match reply {
                Ok(Some(_)) => done.push(*key),
                Ok(None) => {
                    known += 1;
                    done.push(*key);
                }
                Err(_) => {}
            }
        }
        let Some(local) = &mut self.local else {
            return;
        };
        local.pending.retain(|(key, _)| !done.contains(key));
        let left = local.pending.len();
        if !done.is_empty() {
            self.notice(&format!(
                "cluster replay protection restored: {} wrote {} tokens accepted \
                 while it was unreachable ({known} of them were already there: accepted \
                 on another node too; {left} left to write)",
                self.name,
                done.len()
            ));
        }
    }

    fn notice(&mut self, message: &str) {
        if let Some(notices) = &mut self.notices {
            notices(message);
        }
    }

    /// `replay_store_fallback = "local"`, engine unreachable: the process's
    /// own memory decides.
    fn record_locally(
        &mut self,
        key: Key,
        now: u64,
        until: u64,
        cause: String,
    ) -> Result<(), ReplayError> {
        let name = self.name.clone();
        let Some(local) = &mut self.local else {
            return Err(ReplayError::Store(format!("{name}: {cause}")));
        };
        local.cache.record_key(key, now, until)?;
        if local.pending.len() >= local.capacity {
            local.pending.retain(|&(_, until)| now < until);
        }
        if local.pending.len() < local.capacity {
            local.pending.push((key, until));
        }
        let say = match &mut local.degraded {
            None => {
                local.degraded = Some((Instant::now(), 0));
                Some(0)
            }
            Some((since, count)) if since.elapsed() >= NOTICE_INTERVAL => {
                let said = *count + 1;
                *since = Instant::now();
                *count = 0;
                Some(said)
            }
            Some((_, count)) => {
                *count += 1;
                None
            }
        };
        if let Some(count) = say {
            self.notice(&format!(
                "cluster replay protection degraded: {name}: {cause}; tokens are checked \
                 against this process's memory only (replay_store_fallback = \"local\"), \
                 so one may be accepted once on each node ({count} accepted so since the \
                 last such line)"
            ));
        }
        Ok(())
    }
}

impl ReplayMemory for RedisStore {
    /// The local memory of `replay_store_fallback = "local"`; an engine is
    /// not asked.
    fn recalls(&self, key: &Key, now: u64) -> bool {
        self.local
            .as_ref()
            .is_some_and(|local| local.cache.contains(key, now))
    }

    fn record(&mut self, key: Key, now: u64, until: u64) -> Result<(), ReplayError> {
        let deadline = Instant::now() + self.timeout;
        if let Some(local) = &self.local
            && local.cache.contains(&key, now)
        {
            // Accepted here while the engine was away, maybe not written yet.
            return Err(ReplayError::Replayed);
        }
        let lifetime_ms = until.saturating_sub(now).max(1) * 1000;
        let verdict = match self.set(deadline, &key, lifetime_ms) {
            Ok(true) => Ok(()),
            Ok(false) => Err(ReplayError::Replayed),
            Err(cause) => return self.record_locally(key, now, until, cause),
        };
        // The engine answers again: what was accepted without it goes to it,
        // with this request's time left.
        if let Some(local) = &mut self.local {
            local.degraded = None;
            if verdict.is_ok() {
                // For an outage to come: what the engine accepted is kept
                // here too, within replay_cache_size (expired tokens make
                // room, at most once a second; a full memory takes no more,
                // and loses nothing the engine does not hold).
                let _ = local.cache.record_key(key, now, until);
            }
            if !local.pending.is_empty() {
                self.write_back(deadline, now);
            }
        }
        verdict
    }
}

/// A failure before any connection, to name the configuration key.
fn unusable(name: &str, e: &RedisError) -> EngineError {
    EngineError {
        key: Some("replay_store"),
        file: None,
        message: format!("{name}: cannot be used: {e}"),
    }
}

fn read_ca_file(path: &Path) -> Result<Vec<u8>, EngineError> {
    let fail = |why: String| EngineError {
        key: Some("replay_store_ca_file"),
        file: Some(path.to_owned()),
        message: format!("{}: {why}", path.display()),
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(fail("is not a regular file".into()));
    }
    if meta.len() > CA_FILE_MAX {
        return Err(fail(format!(
            "is larger than {CA_FILE_MAX} bytes; is it the right file?"
        )));
    }
    let pem = std::fs::read(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(fail(
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(pem)
}

fn is_server_error(e: &RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::Server(_) | redis::ErrorKind::AuthenticationFailed
    ) || e.code().is_some()
}

impl Context {
    fn no_answer(&self) -> String {
        format!(
            "no answer within {} ms (replay_store_timeout_ms): the engine is down, \
             overloaded or unreachable",
            self.timeout.as_millis()
        )
    }

    fn no_connection(&self) -> String {
        let lookup = match &self.host {
            Some(host) if host.parse::<std::net::IpAddr>().is_err() => {
                format!(", or the lookup of {host} is slow")
            }
            _ => String::new(),
        };
        format!(
            "no connection within {} ms (replay_store_timeout_ms): the engine is down, \
             overloaded or unreachable{lookup}",
            self.timeout.as_millis()
        )
    }

    /// A client error in words an operator can act on.
    fn explain(&self, e: &RedisError, step: Step<'_>) -> String {
        let user = &self.user;
        let prefix = &self.prefix;
        if e.is_timeout() {
            return self.no_answer();
        }
        if e.is_connection_refusal() {
            return format!("cannot connect: {e}; is the engine running and listening there?");
        }
        let text = e.to_string();
        match (e.kind(), e.code()) {
            (redis::ErrorKind::AuthenticationFailed, _) | (_, Some("WRONGPASS")) => format!(
                "the engine refused the user name or password (ACL user {user}): check \
                 replay_store_username and the file named by replay_store_password_file"
            ),
            (_, Some("NOAUTH")) => "the engine requires a password: put it in a file named by \
                                    replay_store_password_file"
                .into(),
            (_, Some("NOPERM")) if text.contains("key") => {
                let key = step.key.map_or_else(
                    || format!("the keys under {prefix}"),
                    |key| format!("the key {key}"),
                );
                format!(
                    "the engine's ACL user {user} may not use {key} ({text}): its key patterns \
                     must cover replay_key_prefix \"{prefix}\"; on the engine: \
                     ACL SETUSER {user} ~{prefix}*"
                )
            }
            (_, Some("NOPERM")) => format!(
                "the engine's ACL user {user} may not run {} ({text}): a helper needs SET, and \
                 verify and check-config EXISTS and PING, on the keys under replay_key_prefix \
                 \"{prefix}\"; on the engine: ACL SETUSER {user} +set +exists +ping ~{prefix}*",
                step.command
            ),
            (_, Some("READONLY")) => "the engine is a read-only replica: point replay_store at \
                                      the primary"
                .into(),
            (_, Some("OOM")) => format!(
                "the engine is out of memory: {e}; raise its maxmemory (and keep \
                 maxmemory-policy noeviction, or volatile-ttl)"
            ),
            (_, Some("LOADING")) => {
                "the engine is loading its data set after a restart: wait".into()
            }
            _ if text.contains("certificate") || text.contains("Certificate") => {
                self.explain_tls(&text)
            }
            _ => text,
        }
    }

    fn explain_tls(&self, text: &str) -> String {
        let host = self.host.as_deref().unwrap_or("?");
        let why = if text.contains("UnknownIssuer") {
            match &self.ca_file {
                Some(ca) => format!(
                    "the engine's certificate is not signed by the CA of replay_store_ca_file \
                     ({}): name the CA that signed it",
                    ca.display()
                ),
                None => "the engine's certificate is not signed by a CA of the system's store: \
                         name the CA that signed it in replay_store_ca_file"
                    .into(),
            }
        } else if text.contains("NotValidForName") || text.contains("not valid for name") {
            format!(
                "the engine's certificate does not name {host}, the host of replay_store: \
                 use a name it carries, or give it a certificate for {host}"
            )
        } else if text.contains("Expired") || text.contains("NotValidYet") {
            "the engine's certificate is out of its validity period (or this machine's clock \
             is wrong)"
                .into()
        } else {
            "the engine's certificate must be signed by a CA of the system's store or of \
             replay_store_ca_file, and name the host of the URL"
                .into()
        };
        format!("TLS failed, the engine is not trusted: {why} ({text})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::DEFAULT_KEY_PREFIX;

    fn engine(address: &str) -> ReplayEngine {
        ReplayEngine {
            address: crate::core::config::engine_address(address)
                .unwrap()
                .unwrap(),
            line: 1,
            username: None,
            password: None,
            ca_file: None,
            timeout_ms: 50,
            key_prefix: DEFAULT_KEY_PREFIX.into(),
            fallback: EngineFallback::None,
        }
    }

    fn id<'a>(user: &'a str, nonce: &'a str) -> TokenId<'a> {
        TokenId {
            user,
            server: "example.org",
            otp: "12345678",
            nonce,
        }
    }

    #[test]
    fn keys_are_the_prefix_and_the_digest_in_hex_without_token_or_user() {
        let store = RedisStore::open(&engine("redis://127.0.0.1:1/0"), 10).unwrap();
        let name = store.key_name(&replay::key(&id("alice", "1")));
        // The digest pinned by replay_store's stored_format_is_frozen.
        assert_eq!(name, "xta:3b9cd8c1337444f4f13df7f599f4e81c");
        assert!(!name.contains("alice"));
    }

    /// A port nothing listens on: refused at once, then without even trying
    /// during the pause, and a fallback to local memory.
    #[test]
    fn an_unreachable_engine_fails_closed_fast_or_falls_back_locally() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let url = format!("redis://127.0.0.1:{port}/0");
        let mut store = RedisStore::open(&engine(&url), 10).unwrap();
        let started = Instant::now();
        for _ in 0..100 {
            let error = store
                .record(replay::key(&id("a", "1")), 100, 190)
                .unwrap_err();
            assert!(
                matches!(&error, ReplayError::Store(m) if m.contains(&url) && m.contains("cannot connect")),
                "{error}"
            );
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        let mut local = engine(&url);
        local.fallback = EngineFallback::Local;
        let said = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let sink = said.clone();
        let mut store = RedisStore::open(&local, 10)
            .unwrap()
            .with_notices(Box::new(move |m| sink.lock().unwrap().push(m.into())));
        assert_eq!(store.record(replay::key(&id("a", "1")), 100, 190), Ok(()));
        assert_eq!(
            store.record(replay::key(&id("a", "1")), 101, 190),
            Err(ReplayError::Replayed)
        );
        assert_eq!(store.record(replay::key(&id("a", "2")), 101, 190), Ok(()));
        let said = said.lock().unwrap();
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].starts_with("cluster replay protection degraded"));
    }

    /// A TCP engine that takes `auth_after` to accept the password (none
    /// when `None`), then never answers.
    fn silent_engine(auth_after: Duration) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("redis://{}/0", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                std::thread::spawn(move || {
                    let mut buf = [0; 1024];
                    let _ = stream.read(&mut buf);
                    std::thread::sleep(auth_after);
                    let _ = stream.write_all(b"+OK\r\n");
                    while stream.read(&mut buf).is_ok_and(|n| n > 0) {}
                });
            }
        });
        url
    }

    /// Connecting takes most of the timeout, and the command gets no
    /// answer: the request still ends within the timeout, not after
    /// connecting plus a whole command timeout.
    #[test]
    fn one_request_spends_at_most_the_timeout_on_the_engine() {
        let url = silent_engine(Duration::from_millis(150));
        let mut settings = engine(&url);
        settings.timeout_ms = 200;
        settings.password = Some(zeroize::Zeroizing::new("password".into()));
        let mut store = RedisStore::open(&settings, 10).unwrap();
        for n in 0..3 {
            let started = Instant::now();
            let result = store.record(replay::key(&id("a", &n.to_string())), 100, 190);
            let took = started.elapsed();
            assert!(matches!(&result, Err(ReplayError::Store(_))), "{result:?}");
            assert!(
                took < Duration::from_millis(230),
                "request {n} took {took:?}"
            );
            // After the pause, so that each request tries again.
            std::thread::sleep(MAX_PAUSE.min(Duration::from_millis(300)));
        }
    }

    #[test]
    fn a_ca_file_that_is_no_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let mut settings = engine("rediss://localhost:6380/0");
        settings.ca_file = Some(ca.clone());
        let error = RedisStore::open(&settings, 10).err().unwrap();
        assert_eq!(error.key, Some("replay_store_ca_file"));
        assert_eq!(error.file.as_deref(), Some(ca.as_path()));
        assert!(error.message.contains("holds no PEM certificate"));
    }
}
