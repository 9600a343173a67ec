//! The configuration file (docs/protocol.md §6): parsed and validated once at start, so
//! that every mistake is reported with its file, line and key before the
//! helper answers anything.

use crate::core::replay;
use crate::core::token::SigningKey;
use crate::core::totp::Seed;
use crate::core::verify::{Keys, TokenParams};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use toml::Spanned;
use zeroize::{Zeroize, Zeroizing};

pub const DEFAULT_PATH: &str = "/etc/xmpp-token-auth/config.toml";
pub const PATH_VARIABLE: &str = "XMPP_TOKEN_AUTH_CONFIG";

/// Below this many bytes a `token_secret` is accepted with a warning.
const SHORT_SECRET: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IsUserPolicy {
    /// True for every user of a domain that has a secret.
    #[default]
    ServedDomains,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ProtocolChoice {
    /// `line` when stdin is a terminal (Prosody), `ejabberd` otherwise.
    #[default]
    Auto,
    /// 2-byte big-endian length-prefixed frames.
    Ejabberd,
    /// One request per line, replies `1` or `0`.
    Line,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogTarget {
    #[default]
    Syslog,
    Stderr,
    None,
    /// `file:PATH`: appended to; the path is [`Config::log_file`].
    File,
}

/// Shows a setting as it is written in the configuration file.
macro_rules! config_names {
    ($($type:ty { $($variant:ident => $name:literal),+ })+) => {$(
        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $(Self::$variant => $name),+ })
            }
        }
    )+};
}

config_names! {
    IsUserPolicy { ServedDomains => "served-domains", Always => "always", Never => "never" }
    ProtocolChoice { Auto => "auto", Ejabberd => "ejabberd", Line => "line" }
    LogTarget { Syslog => "syslog", Stderr => "stderr", None => "none", File => "file" }
}

/// Where `replay_store` points, and the line that says so (for errors found
/// when the store is opened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayStore {
    pub path: PathBuf,
    pub line: usize,
}

/// A replay memory shared through a key-value engine (Redis, Valkey) by
/// every helper of every node: `replay_store = "redis://…"`.
#[derive(Clone, PartialEq, Eq)]
pub struct ReplayEngine {
    pub address: EngineAddress,
    /// The line of `replay_store`.
    pub line: usize,
    pub username: Option<String>,
    /// From `replay_store_password_file`; never in the configuration text.
    pub password: Option<Zeroizing<String>>,
    /// `replay_store_ca_file`: trust only this CA (PEM) instead of the
    /// system's, for `rediss://`.
    pub ca_file: Option<PathBuf>,
    /// For connecting, and for each command.
    pub timeout_ms: u64,
    /// Prepended to every key the helpers write.
    pub key_prefix: String,
    pub fallback: EngineFallback,
}

/// Never shows the password.
impl fmt::Debug for ReplayEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayEngine")
            .field("address", &self.address)
            .field("line", &self.line)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "(hidden)"))
            .field("ca_file", &self.ca_file)
            .field("timeout_ms", &self.timeout_ms)
            .field("key_prefix", &self.key_prefix)
            .field("fallback", &self.fallback)
            .finish()
    }
}

/// Where the engine listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineAddress {
    /// `redis://HOST:PORT/DB`, or `rediss://…` with `tls`.
    Tcp {
        host: String,
        port: u16,
        db: i64,
        tls: bool,
    },
    /// `unix:///PATH`: database 0.
    Unix(PathBuf),
}

impl fmt::Display for EngineAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineAddress::Tcp {
                host,
                port,
                db,
                tls,
            } => {
                let scheme = if *tls { "rediss" } else { "redis" };
                if host.contains(':') {
                    write!(f, "{scheme}://[{host}]:{port}/{db}")
                } else {
                    write!(f, "{scheme}://{host}:{port}/{db}")
                }
            }
            EngineAddress::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// What a helper does while the engine cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineFallback {
    /// Refuse every token (fail closed).
    #[default]
    None,
    /// Check tokens against the process's own memory, and write them to the
    /// engine once it is back.
    Local,
}

/// The engine's port when a URL names none.
pub const DEFAULT_ENGINE_PORT: u16 = 6379;
/// Default `replay_store_timeout_ms`.
pub const DEFAULT_ENGINE_TIMEOUT_MS: u64 = 200;
/// Default `replay_key_prefix`.
pub const DEFAULT_KEY_PREFIX: &str = "xta:";

/// The engine a `replay_store` value names, `Ok(None)` for a file path, or
/// what is wrong with the URL (never quoting it: it may carry a password).
pub fn engine_address(value: &str) -> Result<Option<EngineAddress>, String> {
    let Some((scheme, rest)) = value.split_once("://") else {
        return Ok(None);
    };
    let is_scheme = !scheme.is_empty()
        && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
    if !is_scheme {
        return Ok(None);
    }
    if rest.contains(['?', '#']) {
        return Err("carries options (after ? or #), which are not supported: \
                    write redis://HOST:PORT/DB, rediss://HOST:PORT/DB or unix:///PATH"
            .into());
    }
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "redis" | "valkey" => false,
        "rediss" | "valkeys" => true,
        "unix" | "redis+unix" => {
            let path = Path::new(rest);
            if !path.is_absolute() {
                return Err(
                    "names no absolute socket path: write unix:///PATH/TO/redis.sock".into(),
                );
            }
            return Ok(Some(EngineAddress::Unix(path.to_owned())));
        }
        _ => {
            return Err(format!(
                "has the scheme {scheme}://; use a file path, or redis://, rediss:// or unix://"
            ));
        }
    };
    let (authority, db) = match rest.split_once('/') {
        Some((authority, db)) => (authority, db.trim_end_matches('/')),
        None => (rest, ""),
    };
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        return Err(if userinfo.contains(':') {
            "carries a password: the configuration is not the place for it; \
             put it alone in a file named by replay_store_password_file"
                .into()
        } else {
            "carries a user name: set replay_store_username instead".into()
        });
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err("has an IPv6 address without its closing ]".into());
        };
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || host.contains(['%', '/', ' ']) {
        return Err("names no usable host: write redis://HOST:PORT/DB".into());
    }
    let port = match port {
        None => DEFAULT_ENGINE_PORT,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or("has a port that is not a number from 1 to 65535")?,
    };
    let db = match db {
        "" => 0,
        digits => digits
            .parse::<i64>()
            .ok()
            .filter(|d| (0..=1_000_000).contains(d) && digits.bytes().all(|b| b.is_ascii_digit()))
            .ok_or("has a database that is not a number (redis://HOST:PORT/DB)")?,
    };
    Ok(Some(EngineAddress::Tcp {
        host: host.to_string(),
        port,
        db,
        tls,
    }))
}

/// Every key of the configuration file and what it holds: the man page's
/// CONFIGURATION section is made from this list, and a test checks that it
/// names exactly the keys the parser reads.
pub const KEYS: &[(&str, &str)] = &[
    (
        "token_secret",
        "The HMAC-SHA256 key shared with the application: the UTF-8 bytes of the string as written \
         (not base32-decoded). A string, or a list for key rotation (the first signs, all verify). \
         Required, or token_secret_file, unless every served domain has its own.",
    ),
    (
        "token_secret_file",
        "A file whose first line is token_secret.",
    ),
    (
        "otp_seed",
        "The TOTP seed: base32, at least 80 bits (16 characters), case and spaces ignored. A \
         string or a list. Required, or otp_seed_file.",
    ),
    ("otp_seed_file", "A file whose first line is otp_seed."),
    ("otp_digits", "Digits of the OTP, 6 to 10. Default 8."),
    (
        "otp_interval",
        "Seconds per TOTP step, 10 to 3600. Default 30.",
    ),
    (
        "otp_window",
        "Steps accepted either side of the current one, 0 to 10. Default 1.",
    ),
    (
        "nonce_digits",
        "The exact number of nonce digits in every token, 1 to 64. Default 32.",
    ),
    (
        "replay_protection",
        "Refuse a token accepted before: true or false. Default true.",
    ),
    (
        "replay_cache_size",
        "Tokens remembered at most, 1 to 100000000; full, new tokens are refused. Default 100000.",
    ),
    (
        "replay_store",
        "A file that every helper on the machine shares as its replay memory, or a Redis or \
         Valkey engine that every helper of every node shares: redis://HOST:PORT/DB, \
         rediss://HOST:PORT/DB (TLS) or unix:///PATH (database 0). Default: none.",
    ),
    (
        "replay_store_username",
        "The engine's ACL user name (redis:// stores). Default: none (the default user).",
    ),
    (
        "replay_store_password_file",
        "A file whose first line is the engine's password; a URL that carries one is refused.",
    ),
    (
        "replay_store_ca_file",
        "rediss://: trust only the CA certificates (PEM) in this file. Default: the system's.",
    ),
    (
        "replay_store_timeout_ms",
        "Milliseconds one request may spend on the engine in all (name lookup, connecting, the command), 10 to 10000. Default 200.",
    ),
    (
        "replay_key_prefix",
        "Prefix of the engine's keys (a digest follows; no token or user name). Default \"xta:\".",
    ),
    (
        "replay_store_fallback",
        "none: refuse tokens while the engine is unreachable (default); local: check them \
         against this process's memory meanwhile (cluster replay protection degraded).",
    ),
    (
        "isuser",
        "served-domains, always or never. Default served-domains.",
    ),
    ("protocol", "auto, ejabberd or line. Default auto."),
    (
        "log",
        "syslog, stderr, none, or file:PATH (appended to, reopened when moved). Default syslog.",
    ),
    (
        "socket",
        "listen: the socket to make. Default /run/xmpp-token-auth/auth.sock.",
    ),
    (
        "socket_mode",
        "listen: the socket's permission bits, in quotes. Default \"0660\".",
    ),
    (
        "socket_group",
        "listen: the socket's group. Default xmpp-token-auth.",
    ),
    (
        "max_connections",
        "listen: connections at once, 1 to 4096. Default 64.",
    ),
    (
        "request_timeout",
        "listen: seconds a request may stay half-sent, 1 to 3600. Default 10.",
    ),
    (
        "domains",
        "[domains.\"NAME\"] tables: token_secret, otp_seed and their _file forms for one domain.",
    ),
];

/// The socket daemon's settings (`listen`), docs/protocol.md §11.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenSettings {
    /// Where to make the socket, unless systemd passes one.
    pub socket: PathBuf,
    /// Permission bits of the socket file made.
    pub socket_mode: u32,
    /// Group of the socket file made.
    pub socket_group: String,
    /// Connections served at once; one more is closed at once.
    pub max_connections: usize,
    /// Seconds a request may stay half-received before its connection is
    /// closed.
    pub request_timeout: u64,
}

pub const DEFAULT_SOCKET: &str = "/run/xmpp-token-auth/auth.sock";
/// The group the packages make: the XMPP servers' users are its members.
pub const PACKAGE_GROUP: &str = "xmpp-token-auth";

impl Default for ListenSettings {
    fn default() -> Self {
        ListenSettings {
            socket: PathBuf::from(DEFAULT_SOCKET),
            socket_mode: 0o660,
            socket_group: PACKAGE_GROUP.to_string(),
            max_connections: 64,
            request_timeout: 10,
        }
    }
}

/// A validated configuration.
#[derive(Debug)]
pub struct Config {
    pub path: PathBuf,
    pub tokens: TokenParams,
    pub replay_protection: bool,
    pub replay_cache_size: usize,
    /// The store shared by all helper processes, if one is configured.
    pub replay_store: Option<ReplayStore>,
    /// The engine shared by every helper of every node, if one is
    /// configured (`replay_store = "redis://…"`); `replay_store` is then
    /// `None`.
    pub replay_engine: Option<ReplayEngine>,
    pub isuser: IsUserPolicy,
    pub protocol: ProtocolChoice,
    pub log: LogTarget,
    /// Where `log = "file:PATH"` writes.
    pub log_file: Option<PathBuf>,
    pub listen: ListenSettings,
    /// Keys for every domain not listed under `[domains]`, if any.
    pub default_keys: Option<Keys>,
    /// Keys by lower-case domain name.
    pub domains: BTreeMap<String, Keys>,
    /// The `*_file` files read, for checking who may read them.
    pub key_files: Vec<PathBuf>,
    /// Problems that do not stop the helper (world-readable files, short
    /// secrets). Never contain secret material.
    pub warnings: Vec<String>,
}

impl Config {
    /// The store shared by every helper, when replay protection uses one.
    pub fn shared_store(&self) -> Option<&ReplayStore> {
        self.replay_store
            .as_ref()
            .filter(|_| self.replay_protection)
    }

    /// The engine shared by every node, when replay protection uses one.
    pub fn shared_engine(&self) -> Option<&ReplayEngine> {
        self.replay_engine
            .as_ref()
            .filter(|_| self.replay_protection)
    }

    /// The keys that sign tokens for `server`, or `None` if it is not served.
    pub fn keys_for(&self, server: &str) -> Option<&Keys> {
        let found = if server.bytes().any(|b| b.is_ascii_uppercase()) {
            self.domains.get(&server.to_ascii_lowercase())
        } else {
            self.domains.get(server)
        };
        found.or(self.default_keys.as_ref())
    }

    /// Validates configuration `text` that came from `path`. `read` fetches
    /// the files named by `*_file` keys (relative to `path`'s folder).
    pub fn parse(
        text: &str,
        path: &Path,
        read: &dyn Fn(&Path) -> Result<TextFile, ConfigError>,
    ) -> Result<Config, ConfigError> {
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let start = e.span().map_or(0, |s| s.start);
            let (line, column) = line_column(text, start);
            let message = without_values(e.message().trim_end())
                .replace("expected i64", "expected an integer");
            ConfigError::Syntax {
                path: path.to_owned(),
                line,
                column,
                message: match key_on_line(text, start) {
                    Some(key) if !message.contains(key) => format!("{key}: {message}"),
                    _ => message,
                },
            }
        })?;
        Parser {
            path,
            text,
            read,
            key_files: Vec::new(),
            warnings: Vec::new(),
        }
        .validate(raw)
    }

    /// The domains this configuration signs tokens for, for humans.
    pub fn describe_domains(&self) -> String {
        let mut listed: Vec<&str> = self.domains.keys().map(String::as_str).collect();
        match (self.default_keys.is_some(), listed.is_empty()) {
            (true, true) => listed.push("every domain"),
            (true, false) => listed.push("every other domain"),
            (false, _) => {}
        }
        listed.join(", ")
    }
}

/// The text of the configuration or of a secret file, and its permission
/// bits.
pub struct TextFile {
    pub text: Zeroizing<String>,
    pub mode: u32,
}

/// A warning for a file of secrets that every user may read or write.
pub fn permission_warning(path: &Path, mode: u32) -> Option<String> {
    let (what, fix) = match (mode & 0o004 != 0, mode & 0o002 != 0) {
        (false, false) => return None,
        (true, false) => ("readable", "o-r"),
        (false, true) => ("writable", "o-w"),
        (true, true) => ("readable and writable", "o-rw"),
    };
    Some(format!(
        "{} is {what} by every user on this machine; it holds secrets: chmod {fix} it",
        path.display()
    ))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot use {}: it is {kind}; it must be a regular file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("cannot use {}: it is larger than {max} bytes; is it the right file?", path.display())]
    TooLarge { path: PathBuf, max: u64 },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}:{line}: {key} {problem}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        problem: String,
    },
    #[error("{}: {key} is missing; {hint}", path.display())]
    Missing {
        path: PathBuf,
        key: String,
        hint: &'static str,
    },
}

impl ConfigError {
    /// The file the error is about: the configuration, or a key file.
    pub fn file(&self) -> &Path {
        match self {
            ConfigError::Read { path, .. }
            | ConfigError::NotRegular { path, .. }
            | ConfigError::TooLarge { path, .. }
            | ConfigError::Syntax { path, .. }
            | ConfigError::Invalid { path, .. }
            | ConfigError::Missing { path, .. } => path,
        }
    }
}

/// A parser message with any value it quotes left out. serde's type errors
/// quote the value (`invalid type: string "…", expected …`), and a value in
/// the wrong place may be a secret (a `[domains]` entry written as
/// `"example.org" = "SECRET"`): the type and what was expected are enough.
fn without_values(message: &str) -> String {
    for lead in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(lead) {
            let kind = rest
                .split([' ', ','])
                .next()
                .filter(|k| !k.is_empty())
                .unwrap_or("value");
            let expected = rest.find(", expected").map_or("", |i| &rest[i..]);
            return format!("{lead}{kind}{expected}");
        }
    }
    message.to_string()
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
    (line, column)
}

/// The key of a `key = value` line, to name it in a type error (the TOML
/// parser's message names the type but not the key).
fn key_on_line(text: &str, offset: usize) -> Option<&str> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let key = line.split_once('=')?.0.trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    (!key.is_empty() && key.chars().all(bare)).then_some(key)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    token_secret: Option<Spanned<Strings>>,
    token_secret_file: Option<Spanned<String>>,
    otp_seed: Option<Spanned<Strings>>,
    otp_seed_file: Option<Spanned<String>>,
    otp_digits: Option<Spanned<i64>>,
    otp_interval: Option<Spanned<i64>>,
    otp_window: Option<Spanned<i64>>,
    nonce_digits: Option<Spanned<i64>>,
    replay_protection: Option<bool>,
    replay_cache_size: Option<Spanned<i64>>,
    replay_store: Option<Spanned<String>>,
    replay_store_username: Option<Spanned<String>>,
    replay_store_password_file: Option<Spanned<String>>,
    replay_store_ca_file: Option<Spanned<String>>,
    replay_store_timeout_ms: Option<Spanned<i64>>,
    replay_key_prefix: Option<Spanned<String>>,
    replay_store_fallback: Option<Spanned<String>>,
    isuser: Option<IsUserPolicy>,
    protocol: Option<ProtocolChoice>,
    log: Option<Spanned<String>>,
    socket: Option<Spanned<String>>,
    socket_mode: Option<Spanned<String>>,
    socket_group: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
    request_timeout: Option<Spanned<i64>>,
    #[serde(default)]
    domains: BTreeMap<String, Spanned<RawDomain>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDomain {
    token_secret: Option<Spanned<Strings>>,
    token_secret_file: Option<Spanned<String>>,
    otp_seed: Option<Spanned<Strings>>,
    otp_seed_file: Option<Spanned<String>>,
}

/// A string or a list of strings (key rotation). Wiped when dropped.
struct Strings(Vec<String>);

impl Drop for Strings {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// What a secret key's value must be. serde's own type errors quote the
/// value (`invalid type: integer `1234…``), which would put a secret written
/// without quotes into the error, on stderr and in syslog: never say it.
const NOT_A_STRING: &str =
    "must be a string in quotes, or a list of them (the value is not shown: it may be a secret)";

/// Refuses every TOML type but a string without quoting the value.
macro_rules! refuse_all_but_strings {
    ($value:ty) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<$value, E> {
            Err(E::custom(NOT_A_STRING))
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<$value, E> {
            Err(E::custom(NOT_A_STRING))
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<$value, E> {
            Err(E::custom(NOT_A_STRING))
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<$value, E> {
            Err(E::custom(NOT_A_STRING))
        }
        // Tables, and dates and times, which TOML hands over as maps.
        fn visit_map<A: serde::de::MapAccess<'de>>(self, _: A) -> Result<$value, A::Error> {
            Err(serde::de::Error::custom(NOT_A_STRING))
        }
    };
}

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Strings;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Strings, E> {
                Ok(Strings(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Strings, A::Error> {
                let mut all = Strings(Vec::new());
                while let Some(one) = seq.next_element::<OneString>()? {
                    all.0.push(one.0);
                }
                Ok(all)
            }
            refuse_all_but_strings!(Strings);
        }
        d.deserialize_any(Visitor)
    }
}

/// One entry of a list of secrets.
struct OneString(String);

impl<'de> Deserialize<'de> for OneString {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OneString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneString, E> {
                Ok(OneString(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<OneString, A::Error> {
                Err(serde::de::Error::custom(NOT_A_STRING))
            }
            refuse_all_but_strings!(OneString);
        }
        d.deserialize_any(Visitor)
    }
}

/// The values of one key, and the line to blame for them.
type Values = (Vec<Zeroizing<String>>, usize);

/// The two ways of giving a secret value: inline, or in a file.
struct Source<'r> {
    inline: &'r Option<Spanned<Strings>>,
    file: &'r Option<Spanned<String>>,
}

struct Parser<'a> {
    path: &'a Path,
    text: &'a str,
    read: &'a dyn Fn(&Path) -> Result<TextFile, ConfigError>,
    key_files: Vec<PathBuf>,
    warnings: Vec<String>,
}

impl Parser<'_> {
    fn invalid(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        problem: impl fmt::Display,
    ) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line: line_column(self.text, span.start).0,
            key: key.to_string(),
            problem: problem.to_string(),
        }
    }

    fn ranged<T: TryFrom<i64>>(
        &self,
        value: &Option<Spanned<i64>>,
        key: &str,
        range: RangeInclusive<i64>,
        default: T,
        unit: &str,
    ) -> Result<T, ConfigError> {
        let Some(value) = value else {
            return Ok(default);
        };
        match T::try_from(*value.get_ref()) {
            Ok(in_range) if range.contains(value.get_ref()) => Ok(in_range),
            _ => Err(self.invalid(
                value.span(),
                key,
                format_args!(
                    "= {} is out of range: allowed {} to {}{unit}",
                    value.get_ref(),
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    fn validate(mut self, raw: Raw) -> Result<Config, ConfigError> {
        let d = TokenParams::default();
        let tokens = TokenParams {
            otp_digits: self.ranged(
                &raw.otp_digits,
                "otp_digits",
                6..=10,
                d.otp_digits,
                " digits",
            )?,
            otp_interval: self.ranged(
                &raw.otp_interval,
                "otp_interval",
                10..=3600,
                d.otp_interval,
                " seconds",
            )?,
            otp_window: self.ranged(
                &raw.otp_window,
                "otp_window",
                0..=10,
                d.otp_window,
                " steps",
            )?,
            nonce_digits: self.ranged(
                &raw.nonce_digits,
                "nonce_digits",
                1..=64,
                d.nonce_digits,
                " digits",
            )?,
        };
        let replay_cache_size = self.ranged(
            &raw.replay_cache_size,
            "replay_cache_size",
            1..=100_000_000,
            replay::DEFAULT_CAPACITY,
            " tokens",
        )?;
        let replay_store = match &raw.replay_store {
            None => None,
            Some(store) if store.get_ref().trim().is_empty() => {
                return Err(self.invalid(
                    store.span(),
                    "replay_store",
                    "is empty; give a file path",
                ));
            }
            Some(store) => Some(ReplayStore {
                path: self.relative_to_config(store.get_ref()),
                line: line_column(self.text, store.span().start).0,
            }),
        };
        let (replay_store, replay_engine) = self.replay_engine(&raw, replay_store)?;
        let listen = self.listen(&raw)?;
        let (log, log_file) = self.log(&raw)?;

        let global_secrets = self.secrets(
            Source {
                inline: &raw.token_secret,
                file: &raw.token_secret_file,
            },
            "token_secret",
        )?;
        let global_seeds = self.seeds(
            Source {
                inline: &raw.otp_seed,
                file: &raw.otp_seed_file,
            },
            "otp_seed",
        )?;

        let mut domains = BTreeMap::new();
        for (name, domain) in &raw.domains {
            let prefix = format!("domains.\"{name}\"");
            // Servers send the domain as they know it: lower case, no
            // spaces, no trailing dot. A table named otherwise never matches
            // and its keys would silently go unused.
            let usable = name.to_lowercase();
            if usable != name.to_ascii_lowercase()
                || name.trim() != name
                || name.ends_with('.')
                || name.is_empty()
            {
                return Err(self.invalid(
                    domain.span(),
                    &prefix,
                    format_args!(
                        "can never match a domain the server sends: write it as {:?}",
                        usable.trim().trim_end_matches('.')
                    ),
                ));
            }
            let table = domain.get_ref();
            let secrets = self.secrets(
                Source {
                    inline: &table.token_secret,
                    file: &table.token_secret_file,
                },
                &format!("{prefix}.token_secret"),
            )?;
            let seeds = self.seeds(
                Source {
                    inline: &table.otp_seed,
                    file: &table.otp_seed_file,
                },
                &format!("{prefix}.otp_seed"),
            )?;
            let inherit = "set it in the domain's table or at the top level";
            let keys = Keys {
                secrets: secrets
                    .or_else(|| global_secrets.clone())
                    .ok_or_else(|| self.missing(format!("{prefix}.token_secret"), inherit))?,
                seeds: seeds
                    .or_else(|| global_seeds.clone())
                    .ok_or_else(|| self.missing(format!("{prefix}.otp_seed"), inherit))?,
            };
            if domains.insert(name.to_ascii_lowercase(), keys).is_some() {
                return Err(self.invalid(
                    domain.span(),
                    &prefix,
                    "is listed twice (domain names are case-insensitive)",
                ));
            }
        }

        let default_keys = match (global_secrets, global_seeds) {
            (Some(secrets), Some(seeds)) => Some(Keys { secrets, seeds }),
            (Some(_), None) => {
                return Err(self.missing(
                    "otp_seed".into(),
                    "set otp_seed or otp_seed_file (`xmpp-token-auth gen-secret` makes one)",
                ));
            }
            (None, _) if domains.is_empty() => {
                return Err(self.missing(
                    "token_secret".into(),
                    "set token_secret or token_secret_file, or add [domains.\"…\"] tables \
                     (`xmpp-token-auth gen-secret` makes a secret)",
                ));
            }
            (None, _) => None,
        };

        Ok(Config {
            path: self.path.to_owned(),
            tokens,
            replay_protection: raw.replay_protection.unwrap_or(true),
            replay_cache_size,
            replay_store,
            replay_engine,
            isuser: raw.isuser.unwrap_or_default(),
            protocol: raw.protocol.unwrap_or_default(),
            log,
            log_file,
            listen,
            default_keys,
            domains,
            key_files: self.key_files,
            warnings: self.warnings,
        })
    }

    /// `replay_store` as a file or as an engine, with the engine's keys; the
    /// engine's keys without an engine are an error (they would do
    /// nothing).
    fn replay_engine(
        &mut self,
        raw: &Raw,
        store: Option<ReplayStore>,
    ) -> Result<(Option<ReplayStore>, Option<ReplayEngine>), ConfigError> {
        let address = match &raw.replay_store {
            Some(value) => engine_address(value.get_ref().trim())
                .map_err(|problem| self.invalid(value.span(), "replay_store", problem))?,
            None => None,
        };
        let engine_keys = [
            (
                "replay_store_username",
                raw.replay_store_username.as_ref().map(|v| v.span()),
            ),
            (
                "replay_store_password_file",
                raw.replay_store_password_file.as_ref().map(|v| v.span()),
            ),
            (
                "replay_store_ca_file",
                raw.replay_store_ca_file.as_ref().map(|v| v.span()),
            ),
            (
                "replay_store_timeout_ms",
                raw.replay_store_timeout_ms.as_ref().map(|v| v.span()),
            ),
            (
                "replay_key_prefix",
                raw.replay_key_prefix.as_ref().map(|v| v.span()),
            ),
            (
                "replay_store_fallback",
                raw.replay_store_fallback.as_ref().map(|v| v.span()),
            ),
        ];
        let Some(address) = address else {
            if let Some((key, Some(span))) = engine_keys.into_iter().find(|(_, s)| s.is_some()) {
                return Err(self.invalid(
                    span,
                    key,
                    "is only used when replay_store is a redis://, rediss:// or unix:// URL; remove it",
                ));
            }
            return Ok((store, None));
        };
        let line = store.map_or(0, |s| s.line);
        let username = match &raw.replay_store_username {
            Some(name)
                if name.get_ref().is_empty() || name.get_ref().contains(char::is_whitespace) =>
            {
                return Err(self.invalid(
                    name.span(),
                    "replay_store_username",
                    "must be a user name without spaces",
                ));
            }
            Some(name) => Some(name.get_ref().clone()),
            None => None,
        };
        let password = self
            .values(
                Source {
                    inline: &None,
                    file: &raw.replay_store_password_file,
                },
                "replay_store_password",
            )?
            .map(|(mut values, _)| values.remove(0));
        let ca_file = match (&raw.replay_store_ca_file, &address) {
            (None, _) => None,
            (Some(file), EngineAddress::Tcp { tls: true, .. })
                if !file.get_ref().trim().is_empty() =>
            {
                Some(self.relative_to_config(file.get_ref()))
            }
            (Some(file), EngineAddress::Tcp { tls: true, .. }) => {
                return Err(self.invalid(
                    file.span(),
                    "replay_store_ca_file",
                    "is empty; give a file path",
                ));
            }
            (Some(file), _) => {
                return Err(self.invalid(
                    file.span(),
                    "replay_store_ca_file",
                    "is only used with TLS (rediss://); remove it, or use rediss://",
                ));
            }
        };
        let timeout_ms = self.ranged(
            &raw.replay_store_timeout_ms,
            "replay_store_timeout_ms",
            10..=10_000,
            DEFAULT_ENGINE_TIMEOUT_MS,
            " milliseconds",
        )?;
        let key_prefix = match &raw.replay_key_prefix {
            None => DEFAULT_KEY_PREFIX.to_string(),
            Some(prefix)
                if prefix.get_ref().len() > 64
                    || !prefix.get_ref().bytes().all(|b| b.is_ascii_graphic()) =>
            {
                return Err(self.invalid(
                    prefix.span(),
                    "replay_key_prefix",
                    "must be at most 64 printable ASCII characters without spaces",
                ));
            }
            Some(prefix) => prefix.get_ref().clone(),
        };
        let fallback = match raw
            .replay_store_fallback
            .as_ref()
            .map(|f| (f, f.get_ref().as_str()))
        {
            None | Some((_, "none")) => EngineFallback::None,
            Some((_, "local")) => EngineFallback::Local,
            Some((value, _)) => {
                return Err(self.invalid(
                    value.span(),
                    "replay_store_fallback",
                    "is not one of \"none\" (refuse tokens while the engine is unreachable) \
                     or \"local\" (check them against this process's memory meanwhile)",
                ));
            }
        };
        Ok((
            None,
            Some(ReplayEngine {
                address,
                line,
                username,
                password,
                ca_file,
                timeout_ms,
                key_prefix,
                fallback,
            }),
        ))
    }

    fn log(&self, raw: &Raw) -> Result<(LogTarget, Option<PathBuf>), ConfigError> {
        let Some(log) = &raw.log else {
            return Ok((LogTarget::default(), None));
        };
        match log.get_ref().as_str() {
            "syslog" => Ok((LogTarget::Syslog, None)),
            "stderr" => Ok((LogTarget::Stderr, None)),
            "none" => Ok((LogTarget::None, None)),
            other => match other.strip_prefix("file:") {
                Some(path) if !path.trim().is_empty() => {
                    Ok((LogTarget::File, Some(self.relative_to_config(path))))
                }
                _ => Err(self.invalid(
                    log.span(),
                    "log",
                    format_args!(
                        "= {other:?} is not one of \"syslog\", \"stderr\", \"none\", \"file:PATH\""
                    ),
                )),
            },
        }
    }

    fn listen(&self, raw: &Raw) -> Result<ListenSettings, ConfigError> {
        let d = ListenSettings::default();
        let socket = match &raw.socket {
            None => d.socket,
            Some(path) if path.get_ref().trim().is_empty() => {
                return Err(self.invalid(path.span(), "socket", "is empty; give a file path"));
            }
            Some(path) => self.relative_to_config(path.get_ref()),
        };
        let socket_mode = match &raw.socket_mode {
            None => d.socket_mode,
            Some(mode) => u32::from_str_radix(mode.get_ref().trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| {
                    self.invalid(
                        mode.span(),
                        "socket_mode",
                        "must be octal permission bits in quotes, such as \"0660\"",
                    )
                })?,
        };
        let socket_group = match &raw.socket_group {
            None => d.socket_group,
            Some(group) if group.get_ref().is_empty() || group.get_ref().contains(':') => {
                return Err(self.invalid(group.span(), "socket_group", "must be a group name"));
            }
            Some(group) => group.get_ref().clone(),
        };
        Ok(ListenSettings {
            socket,
            socket_mode,
            socket_group,
            max_connections: self.ranged(
                &raw.max_connections,
                "max_connections",
                1..=4096,
                d.max_connections,
                " connections",
            )?,
            request_timeout: self.ranged(
                &raw.request_timeout,
                "request_timeout",
                1..=3600,
                d.request_timeout,
                " seconds",
            )?,
        })
    }

    /// A path from the configuration; relative ones are taken from the
    /// configuration file's folder.
    fn relative_to_config(&self, path: &str) -> PathBuf {
        self.path.parent().unwrap_or(Path::new(".")).join(path)
    }

    fn missing(&self, key: String, hint: &'static str) -> ConfigError {
        ConfigError::Missing {
            path: self.path.to_owned(),
            key,
            hint,
        }
    }

    /// The values of a key given inline or through its `*_file` twin, each
    /// non-empty, with the line to blame for them. `None` if neither is set.
    fn values(&mut self, source: Source, key: &str) -> Result<Option<Values>, ConfigError> {
        match (source.inline, source.file) {
            (Some(_), Some(file)) => Err(self.invalid(
                file.span(),
                key,
                format_args!("and {key}_file are both set; keep one"),
            )),
            (None, None) => Ok(None),
            (Some(inline), None) => {
                let line = line_column(self.text, inline.span().start).0;
                let values: Vec<_> = inline
                    .get_ref()
                    .0
                    .iter()
                    .map(|v| Zeroizing::new(v.clone()))
                    .collect();
                if values.is_empty() {
                    return Err(self.invalid(inline.span(), key, "is an empty list"));
                }
                if let Some(i) = values.iter().position(|v| v.is_empty()) {
                    let which = if values.len() > 1 {
                        format!("entry {} of it", i + 1)
                    } else {
                        "it".into()
                    };
                    return Err(self.invalid(
                        inline.span(),
                        key,
                        format_args!("is empty; {which} must be a non-empty string"),
                    ));
                }
                Ok(Some((values, line)))
            }
            (None, Some(file)) => {
                let path = self.relative_to_config(file.get_ref());
                let found = (self.read)(&path).map_err(|e| match e {
                    // The name is not repeated: a secret written into the
                    // wrong key would be shown.
                    ConfigError::Read { source, .. }
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        self.invalid(
                            file.span(),
                            &format!("{key}_file"),
                            "names a file that does not exist (the name is not repeated here, \
                             in case a secret was written into the wrong key)",
                        )
                    }
                    other => other,
                })?;
                self.key_files.push(path.clone());
                if let Some(warning) = permission_warning(&path, found.mode) {
                    self.warnings.push(warning);
                }
                let first = found.text.lines().next().unwrap_or("").trim();
                if first.is_empty() {
                    return Err(self.invalid(
                        file.span(),
                        &format!("{key}_file"),
                        format_args!("names {}, whose first line is empty", path.display()),
                    ));
                }
                Ok(Some((
                    vec![Zeroizing::new(first.to_string())],
                    line_column(self.text, file.span().start).0,
                )))
            }
        }
    }

    fn secrets(
        &mut self,
        source: Source,
        key: &str,
    ) -> Result<Option<Vec<SigningKey>>, ConfigError> {
        let Some((values, line)) = self.values(source, key)? else {
            return Ok(None);
        };
        if values.iter().any(|v| v.len() < SHORT_SECRET) {
            self.warnings.push(format!(
                "{}:{line}: {key} is shorter than {SHORT_SECRET} bytes; `xmpp-token-auth gen-secret` makes a strong one",
                self.path.display()
            ));
        }
        Ok(Some(
            values
                .into_iter()
                .map(|v| SigningKey::new(v.as_bytes()))
                .collect(),
        ))
    }

    fn seeds(&mut self, source: Source, key: &str) -> Result<Option<Vec<Seed>>, ConfigError> {
        let Some((values, line)) = self.values(source, key)? else {
            return Ok(None);
        };
        let several = values.len() > 1;
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                Seed::from_base32(v).map_err(|problem| ConfigError::Invalid {
                    path: self.path.to_owned(),
                    line,
                    key: if several {
                        format!("{key} (entry {})", i + 1)
                    } else {
                        key.to_string()
                    },
                    problem: problem.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `key` was made from `secret`: keys cannot be compared, but
    /// what they sign can.
    fn is_key(key: &SigningKey, secret: &str) -> bool {
        let sign = |key: &SigningKey| key.sign("1", "a", "b");
        sign(key) == sign(&SigningKey::new(secret.as_bytes()))
    }

    const SECRET: &str = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7";
    const SEED: &str = "XVGR73KMZH2M4XMY";

    fn no_files(path: &Path) -> Result<TextFile, ConfigError> {
        Err(ConfigError::Read {
            path: path.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/x/config.toml"), &no_files)
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn minimal_config_takes_the_defaults() {
        let config = parse(&format!(
            "token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\n"
        ))
        .unwrap();
        assert_eq!(config.tokens, TokenParams::default());
        assert!(config.replay_protection);
        assert_eq!(config.replay_cache_size, replay::DEFAULT_CAPACITY);
        assert_eq!(
            (config.isuser, config.protocol, config.log),
            Default::default()
        );
        assert!(config.keys_for("anything.example").is_some());
        assert!(config.warnings.is_empty());
    }

    #[test]
    fn every_key_of_the_spec_example_is_read() {
        let config = parse(&format!(
            "token_secret = [\"{SECRET}\", \"older-secret-0123456789\"]\notp_seed = \"{SEED}\"\n\
             otp_digits = 6\notp_interval = 60\notp_window = 0\nnonce_digits = 20\nreplay_protection = false\n\
             replay_cache_size = 10\nisuser = \"never\"\nprotocol = \"line\"\nlog = \"stderr\"\n\
             [domains.\"Example.ORG\"]\ntoken_secret = \"{SECRET}x\"\notp_seed = \"E3W374VRSFO4NVKE\"\n"
        ))
        .unwrap();
        assert_eq!(
            config.tokens,
            TokenParams {
                otp_digits: 6,
                otp_interval: 60,
                otp_window: 0,
                nonce_digits: 20,
            }
        );
        assert!(!config.replay_protection);
        assert_eq!(config.replay_cache_size, 10);
        assert_eq!(config.isuser, IsUserPolicy::Never);
        assert_eq!(config.protocol, ProtocolChoice::Line);
        assert_eq!(config.log, LogTarget::Stderr);
        assert_eq!(config.default_keys.as_ref().unwrap().secrets.len(), 2);
        let domain = config.keys_for("example.org").unwrap();
        assert!(is_key(&domain.secrets[0], &format!("{SECRET}x")));
        assert!(std::ptr::eq(
            config.keys_for("EXAMPLE.org").unwrap(),
            domain
        ));
        assert_eq!(config.describe_domains(), "example.org, every other domain");
    }

    #[test]
    fn without_a_global_secret_only_listed_domains_are_served() {
        let config = parse(&format!(
            "otp_seed = \"{SEED}\"\n[domains.\"a.example\"]\ntoken_secret = \"{SECRET}\"\n"
        ))
        .unwrap();
        assert!(config.keys_for("a.example").is_some());
        assert!(config.keys_for("b.example").is_none());
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let text = format!("token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\n\notp_digit = 6\n");
        let message = error(&text);
        assert!(message.starts_with("/etc/x/config.toml:4:1: "), "{message}");
        assert!(message.contains("unknown field `otp_digit`"), "{message}");
        let message = error(&format!(
            "token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\n[domains.\"x\"]\nseed = 1\n"
        ));
        assert!(message.starts_with("/etc/x/config.toml:4:"), "{message}");
        assert!(message.contains("`seed`"), "{message}");
    }

    #[test]
    fn out_of_range_values_say_what_is_allowed() {
        let base = format!("token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\n");
        for (line, expected) in [
            (
                "otp_digits = 12",
                "config.toml:3: otp_digits = 12 is out of range: allowed 6 to 10 digits",
            ),
            (
                "otp_interval = 0",
                "config.toml:3: otp_interval = 0 is out of range: allowed 10 to 3600 seconds",
            ),
            (
                "otp_window = 11",
                "config.toml:3: otp_window = 11 is out of range: allowed 0 to 10 steps",
            ),
            (
                "nonce_digits = 0",
                "config.toml:3: nonce_digits = 0 is out of range: allowed 1 to 64 digits",
            ),
            (
                "nonce_digits = 65",
                "config.toml:3: nonce_digits = 65 is out of range: allowed 1 to 64 digits",
            ),
            (
                "replay_cache_size = 0",
                "config.toml:3: replay_cache_size = 0 is out of range",
            ),
        ] {
            let message = error(&format!("{base}{line}\n"));
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn bad_enum_values_list_the_choices() {
        let message = error(&format!(
            "token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\nisuser = \"sometimes\"\n"
        ));
        assert!(message.starts_with("/etc/x/config.toml:3:"), "{message}");
        assert!(
            message.contains("served-domains") && message.contains("never"),
            "{message}"
        );
    }

    #[test]
    fn bad_seeds_are_named_but_never_shown() {
        let message = error(&format!(
            "token_secret = \"{SECRET}\"\notp_seed = \"NOT-BASE32-SEED!\"\n"
        ));
        assert!(
            message.contains("config.toml:2: otp_seed is not valid base32"),
            "{message}"
        );
        assert!(!message.contains("NOT-BASE32"), "{message}");
        let message = error(&format!(
            "token_secret = \"{SECRET}\"\notp_seed = [\"{SEED}\", \"ABCDEFGH\"]\n"
        ));
        assert!(
            message.contains("otp_seed (entry 2) is only 40 bits long"),
            "{message}"
        );
    }

    #[test]
    fn missing_and_empty_secrets_are_errors() {
        assert!(error(&format!("otp_seed = \"{SEED}\"\n")).contains("token_secret is missing"));
        assert!(error(&format!("token_secret = \"{SECRET}\"\n")).contains("otp_seed is missing"));
        assert!(
            error(&format!("token_secret = \"\"\notp_seed = \"{SEED}\"\n"))
                .contains("config.toml:1: token_secret is empty")
        );
        assert!(
            error(&format!("token_secret = []\notp_seed = \"{SEED}\"\n"))
                .contains("token_secret is an empty list")
        );
        let message = error(&format!("otp_seed = \"{SEED}\"\n[domains.\"a.example\"]\n"));
        assert!(
            message.contains("domains.\"a.example\".token_secret is missing"),
            "{message}"
        );
    }

    #[test]
    fn short_secret_is_a_warning_without_the_secret() {
        let config = parse(&format!(
            "token_secret = \"short\"\notp_seed = \"{SEED}\"\n"
        ))
        .unwrap();
        assert_eq!(config.warnings.len(), 1);
        assert!(config.warnings[0].contains("token_secret is shorter than 16 bytes"));
        assert!(!config.warnings[0].contains("short\""));
    }

    #[test]
    fn secret_files_are_read_relative_to_the_config_and_trimmed() {
        let read = |path: &Path| -> Result<TextFile, ConfigError> {
            let text = match path.to_str().unwrap() {
                "/etc/x/secret" => format!("  {SECRET}  \nignored\n"),
                "/srv/seed" => format!("{SEED}\n"),
                _ => return no_files(path),
            };
            Ok(TextFile {
                text: Zeroizing::new(text),
                mode: if path.starts_with("/srv") {
                    0o644
                } else {
                    0o600
                },
            })
        };
        let text = "token_secret_file = \"secret\"\notp_seed_file = \"/srv/seed\"\n";
        let config = Config::parse(text, Path::new("/etc/x/config.toml"), &read).unwrap();
        let keys = config.default_keys.unwrap();
        assert!(is_key(&keys.secrets[0], SECRET));
        assert_eq!(
            config.warnings,
            vec![
                "/srv/seed is readable by every user on this machine; it holds secrets: chmod o-r it"
            ]
        );

        let message = Config::parse(
            "token_secret_file = \"nope\"\n",
            Path::new("/etc/x/config.toml"),
            &read,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            message,
            "/etc/x/config.toml:1: token_secret_file names a file that does not exist \
             (the name is not repeated here, in case a secret was written into the wrong key)"
        );
    }

    #[test]
    fn inline_and_file_together_are_an_error() {
        let message = error(&format!(
            "token_secret = \"{SECRET}\"\ntoken_secret_file = \"x\"\notp_seed = \"{SEED}\"\n"
        ));
        assert!(
            message.contains("config.toml:2: token_secret and token_secret_file are both set"),
            "{message}"
        );
    }

    #[test]
    fn replay_store_urls_name_an_engine_and_never_carry_credentials() {
        let tcp = |host: &str, port, db, tls| EngineAddress::Tcp {
            host: host.into(),
            port,
            db,
            tls,
        };
        for (url, expected) in [
            ("redis://10.0.0.5:6380/2", tcp("10.0.0.5", 6380, 2, false)),
            (
                "redis://cache.example",
                tcp("cache.example", 6379, 0, false),
            ),
            (
                "rediss://cache.example:6390/",
                tcp("cache.example", 6390, 0, true),
            ),
            ("redis://[::1]:7000/1", tcp("::1", 7000, 1, false)),
            (
                "unix:///run/redis/redis.sock",
                EngineAddress::Unix("/run/redis/redis.sock".into()),
            ),
        ] {
            assert_eq!(engine_address(url), Ok(Some(expected.clone())), "{url}");
            assert_eq!(
                engine_address(&expected.to_string()),
                Ok(Some(expected)),
                "{url}"
            );
        }
        assert_eq!(engine_address("/var/lib/x/replay"), Ok(None));
        for (url, says) in [
            ("redis://:s3cret@h:6379/0", "replay_store_password_file"),
            ("redis://u:s3cret@h/0", "replay_store_password_file"),
            ("redis://u@h/0", "replay_store_username"),
            ("rediss://h:6379/#insecure", "not supported"),
            ("redis://h:0/0", "port"),
            ("redis://h:6379/x", "database"),
            ("unix://relative.sock", "absolute"),
            ("http://h/", "scheme"),
        ] {
            let problem = engine_address(url).unwrap_err();
            assert!(problem.contains(says), "{url}: {problem}");
            assert!(!problem.contains("s3cret"), "{url}: {problem}");
        }
        let base = format!("token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\n");
        let config = parse(&format!("{base}replay_store = \"redis://h/3\"\n")).unwrap();
        assert_eq!(config.replay_store, None);
        let engine = config.shared_engine().unwrap();
        assert_eq!(engine.address, tcp("h", 6379, 3, false));
        assert_eq!((engine.line, engine.timeout_ms), (3, 200));
        assert_eq!(engine.key_prefix, "xta:");
        assert_eq!(engine.fallback, EngineFallback::None);
        let message = error(&format!("{base}replay_store = \"redis://:pw@h/0\"\n"));
        assert!(
            message.contains("config.toml:3: replay_store carries a password"),
            "{message}"
        );
        let message = error(&format!(
            "{base}replay_store = \"r\"\nreplay_store_fallback = \"local\"\n"
        ));
        assert!(
            message.contains("config.toml:4: replay_store_fallback is only used"),
            "{message}"
        );
        let message = error(&format!(
            "{base}replay_store = \"redis://h\"\nreplay_store_ca_file = \"ca.pem\"\n"
        ));
        assert!(message.contains("only used with TLS"), "{message}");
    }

    #[test]
    fn replay_store_is_a_path_relative_to_the_configuration() {
        let base = format!("token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\n");
        let config = parse(&format!("{base}replay_store = \"/var/lib/x/replay\"\n")).unwrap();
        let expected = ReplayStore {
            path: "/var/lib/x/replay".into(),
            line: 3,
        };
        assert_eq!(config.replay_store, Some(expected));
        let config = parse(&format!("{base}\nreplay_store = \"replay\"\n")).unwrap();
        let expected = ReplayStore {
            path: "/etc/x/replay".into(),
            line: 4,
        };
        assert_eq!(config.replay_store, Some(expected));
        assert_eq!(parse(&base).unwrap().replay_store, None);
        let message = error(&format!("{base}replay_store = \" \"\n"));
        assert!(
            message.contains("config.toml:3: replay_store is empty"),
            "{message}"
        );
    }

    #[test]
    fn syntax_errors_point_at_the_line() {
        let message = error("token_secret = \"abc\ngarbage");
        assert!(message.starts_with("/etc/x/config.toml:2:"), "{message}");
    }

    #[test]
    fn type_errors_name_the_key() {
        let message = error(&format!(
            "token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\notp_digits = \"8\"\n"
        ));
        assert!(
            message.starts_with("/etc/x/config.toml:3:14: otp_digits: invalid type: string"),
            "{message}"
        );
        assert!(message.ends_with("expected an integer"), "{message}");
    }

    #[test]
    fn files_every_user_may_read_or_write_are_named_in_a_warning() {
        let path = Path::new("/etc/x/secret");
        assert_eq!(permission_warning(path, 0o640), None);
        for (mode, says) in [
            (
                0o644,
                "is readable by every user on this machine; it holds secrets: chmod o-r it",
            ),
            (
                0o602,
                "is writable by every user on this machine; it holds secrets: chmod o-w it",
            ),
            (
                0o666,
                "is readable and writable by every user on this machine; it holds secrets: chmod o-rw it",
            ),
        ] {
            assert_eq!(
                permission_warning(path, mode),
                Some(format!("/etc/x/secret {says}"))
            );
        }
    }

    #[test]
    fn log_is_a_target_or_a_file_relative_to_the_configuration() {
        let base = format!("token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\n");
        let config = parse(&format!("{base}log = \"file:log/helper.log\"\n")).unwrap();
        assert_eq!(config.log, LogTarget::File);
        assert_eq!(
            config.log_file,
            Some(PathBuf::from("/etc/x/log/helper.log"))
        );
        assert_eq!(
            parse(&format!("{base}log = \"none\"\n")).unwrap().log,
            LogTarget::None
        );
        for bad in ["file:", "journal", "File:/x"] {
            let message = error(&format!("{base}log = \"{bad}\"\n"));
            assert!(
                message.contains("config.toml:3: log = ") && message.contains("\"file:PATH\""),
                "{message}"
            );
        }
    }

    #[test]
    fn the_documented_keys_are_exactly_the_keys_read() {
        // The parser lists the keys it knows when it meets another one.
        let message = error(&format!(
            "token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\nno_such_key = 1\n"
        ));
        let known = message
            .split_once("expected one of ")
            .expect("the parser names the keys it knows")
            .1;
        let mut read: Vec<&str> = known.split(", ").map(|k| k.trim_matches('`')).collect();
        let mut documented: Vec<&str> = KEYS.iter().map(|(key, _)| *key).collect();
        read.sort_unstable();
        documented.sort_unstable();
        assert_eq!(read, documented);
    }

    #[test]
    fn the_socket_daemon_settings_have_defaults_and_ranges() {
        let base = format!("token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\n");
        assert_eq!(parse(&base).unwrap().listen, ListenSettings::default());
        let config = parse(&format!(
            "{base}socket = \"run/auth.sock\"\nsocket_mode = \"0600\"\nsocket_group = \"prosody\"\n\
             max_connections = 2\nrequest_timeout = 3\n"
        ))
        .unwrap();
        assert_eq!(
            config.listen,
            ListenSettings {
                socket: PathBuf::from("/etc/x/run/auth.sock"),
                socket_mode: 0o600,
                socket_group: "prosody".into(),
                max_connections: 2,
                request_timeout: 3,
            }
        );
        for (line, expected) in [
            (
                "socket_mode = \"0999\"",
                "config.toml:3: socket_mode must be octal permission bits",
            ),
            (
                "socket_mode = \"1777\"",
                "config.toml:3: socket_mode must be octal permission bits",
            ),
            (
                "max_connections = 0",
                "config.toml:3: max_connections = 0 is out of range: allowed 1 to 4096",
            ),
            (
                "request_timeout = 0",
                "config.toml:3: request_timeout = 0 is out of range: allowed 1 to 3600 seconds",
            ),
            ("socket = \"\"", "config.toml:3: socket is empty"),
        ] {
            let message = error(&format!("{base}{line}\n"));
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn a_secret_in_the_wrong_place_is_never_repeated_either() {
        let base = format!("token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\n");
        for wrong in [
            "[domains]\n\"example.org\" = \"S3CR3T-VALUE-0123456789\"\n",
            "domains = \"S3CR3T-VALUE-0123456789\"\n",
            "[domains]\n\"example.org\" = { token_secret = 1234567890123456 }\n",
            "otp_digits = \"S3CR3T-VALUE-0123456789\"\n",
            "token_secret_file = \"S3CR3T-VALUE-0123456789\"\n",
        ] {
            let text = format!("{base}{wrong}").replacen(
                &format!("token_secret = \"{SECRET}\"\n"),
                "",
                usize::from(wrong.starts_with("token_secret_file")),
            );
            let message = error(&text);
            assert!(
                !message.contains("S3CR3T") && !message.contains("1234567890123456"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_domain_table_that_can_never_match_is_an_error() {
        let base = format!("token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\n");
        for (name, fix) in [
            ("BÜCHER.example", "\"bücher.example\""),
            ("example.org.", "\"example.org\""),
            (" example.org", "\"example.org\""),
        ] {
            let message = error(&format!(
                "{base}[domains.\"{name}\"]\ntoken_secret = \"x\"\n"
            ));
            assert!(
                message.contains("can never match a domain the server sends: write it as ")
                    && message.ends_with(fix),
                "{message}"
            );
        }
        // ASCII upper case is matched case-insensitively, as before.
        assert!(
            parse(&format!(
                "{base}[domains.\"Example.ORG\"]\ntoken_secret = \"x\"\n"
            ))
            .is_ok()
        );
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_never_repeated_in_the_error() {
        let values = [
            "1234567890123456",
            "-1234567890123456",
            "12345.67890123456",
            "true",
            "1979-05-27T07:32:00Z",
            "{ k = \"1234567890123456\" }",
            "[\"ok-secret-0123456789\", 1234567890123456]",
            "[[\"1234567890123456\"]]",
            "1234567890123456abc",
            "\"1234567890123456\\q\"",
        ];
        for key in ["token_secret", "otp_seed"] {
            for value in values {
                for text in [
                    format!("{key} = {value}\n"),
                    format!("[domains.\"a.example\"]\n{key} = {value}\n"),
                ] {
                    let message = error(&text);
                    for secret in [
                        "1234567890123456",
                        "12345.6789",
                        "true",
                        "1979",
                        "ok-secret",
                    ] {
                        assert!(!message.contains(secret), "{text:?}: {message}");
                    }
                    assert!(
                        message.contains(":1:") || message.contains(":2:"),
                        "{message}"
                    );
                }
            }
        }
        let message = error("token_secret = 1234567890123456\n");
        assert!(
            message.ends_with(&format!("config.toml:1:16: token_secret: {NOT_A_STRING}")),
            "{message}"
        );
    }
}
