//! Configuration text (docs/protocol.md §6): `Config::parse` on any text,
//! with key files of any content, never panics; every error names the
//! configuration's path and a line within the text, or the missing key, or
//! the key file that could not be read; a valid configuration has its
//! values in range; and no error or warning ever repeats a secret or a
//! seed, inline or from a key file.
//!
//! Input: a flags byte (bit 0: key files cannot be read; bits 1-3: their
//! permission bits for "other"), then the configuration text, then after
//! the first NUL byte the text of every key file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use xmpp_token_auth::core::config::{Config, ConfigError, TextFile};
use zeroize::Zeroizing;

const CONFIG: &str = "/etc/xmpp-token-auth/config.toml";
/// Starts every key file's text, so that its first line, the secret, can be
/// looked for in messages.
const CANARY: &str = "K3yF1leCanary";
/// Shorter values could appear in a message by chance.
const SHORTEST_CHECKED: usize = 8;

/// The values of secret keys written inline, as text: strings, list
/// entries, and other scalars as TOML writes them.
fn inline_secrets(text: &str) -> Vec<String> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut collect = |table: &toml::Table| {
        for key in ["token_secret", "otp_seed"] {
            let values = match table.get(key) {
                Some(toml::Value::Array(list)) => list.iter().collect(),
                Some(value) => vec![value],
                None => Vec::new(),
            };
            for value in values {
                found.push(match value {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Integer(i) => i.to_string(),
                    other => other.to_string(),
                });
            }
        }
    };
    collect(&table);
    if let Some(toml::Value::Table(domains)) = table.get("domains") {
        for domain in domains.values() {
            if let toml::Value::Table(domain) = domain {
                collect(domain);
            }
        }
    }
    found
}

fn line_count(text: &str) -> usize {
    text.bytes().filter(|&b| b == b'\n').count() + 1
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (text, key_file) = match rest.iter().position(|&b| b == 0) {
        Some(nul) => (&rest[..nul], &rest[nul + 1..]),
        None => (rest, &b""[..]),
    };
    let text = String::from_utf8_lossy(text);
    let key_file = format!("{CANARY}{}", String::from_utf8_lossy(key_file));
    let unreadable = flags & 1 != 0;
    let mode = 0o640 | u32::from((flags >> 1) & 0o7);

    let asked = std::cell::RefCell::new(Vec::<PathBuf>::new());
    let read = |path: &Path| -> Result<TextFile, ConfigError> {
        asked.borrow_mut().push(path.to_owned());
        if unreadable {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            });
        }
        Ok(TextFile {
            text: Zeroizing::new(key_file.clone()),
            mode,
        })
    };
    let result = Config::parse(&text, Path::new(CONFIG), &read);

    let mut messages = Vec::new();
    match &result {
        Ok(config) => {
            let t = config.tokens;
            assert!((6..=10).contains(&t.otp_digits), "{t:?}");
            assert!((10..=3600).contains(&t.otp_interval), "{t:?}");
            assert!((0..=10).contains(&t.otp_window), "{t:?}");
            assert!((1..=64).contains(&t.nonce_digits), "{t:?}");
            assert!((1..=100_000_000).contains(&config.replay_cache_size));
            assert!(config.default_keys.is_some() || !config.domains.is_empty());
            for keys in config.default_keys.iter().chain(config.domains.values()) {
                // (An empty secret is refused by name: a unit test of the
                // parser; a prepared key no longer shows its length.)
                assert!(!keys.secrets.is_empty() && !keys.seeds.is_empty());
            }
            for domain in config.domains.keys() {
                assert_eq!(*domain, domain.to_ascii_lowercase());
            }
            messages.extend(config.warnings.iter().cloned());
        }
        Err(error) => {
            let message = error.to_string();
            match error {
                ConfigError::Syntax { path, line, .. }
                | ConfigError::Invalid { path, line, .. } => {
                    assert_eq!(path, Path::new(CONFIG));
                    assert!(
                        (1..=line_count(&text)).contains(line),
                        "line {line} of a text of {} lines: {message}",
                        line_count(&text)
                    );
                    assert!(
                        message.starts_with(&format!("{CONFIG}:{line}:")),
                        "{message}"
                    );
                }
                ConfigError::Missing { path, key, .. } => {
                    assert_eq!(path, Path::new(CONFIG));
                    assert!(!key.is_empty(), "{message}");
                    assert!(message.contains(key.as_str()), "{message}");
                }
                ConfigError::Read { path, .. } => {
                    // Only key files are read here, and only those asked for.
                    assert!(unreadable, "{message}");
                    assert!(asked.borrow().contains(path), "{message}");
                }
                _ => assert!(!message.is_empty()),
            }
            messages.push(message);
        }
    }

    // Secrets and seeds are never repeated. A value found elsewhere in the
    // text (a file name, a domain) may be named as that.
    let mut secrets = inline_secrets(&text);
    if !text.contains(CANARY) {
        secrets.push(CANARY.to_string());
    }
    for secret in secrets {
        if secret.trim().len() < SHORTEST_CHECKED
            || text.matches(secret.as_str()).count() > 1
            || CONFIG.contains(secret.as_str())
        {
            continue;
        }
        for message in &messages {
            assert!(
                !message.contains(secret.as_str()),
                "a secret value {secret:?} is repeated in: {message}"
            );
        }
    }
});
