//! The token vectors of `tests/data/tokens.json`, computed with an
//! independent implementation of the token format. The one loader every test
//! uses: the library's unit tests include this file with `#[path]`, the
//! integration tests through `common`.
#![allow(dead_code)] // each user reads its own part

use serde::Deserialize;

#[derive(Deserialize)]
pub struct Vectors {
    pub rfc6238_sha1_8digit: Vec<Rfc6238>,
    pub tokens: Vec<Vector>,
}

#[derive(Deserialize)]
pub struct Rfc6238 {
    pub key_base32: String,
    pub at: u64,
    pub otp: String,
}

#[derive(Deserialize)]
pub struct Vector {
    pub name: String,
    pub otp_seed: String,
    pub token_secret: String,
    pub jid: String,
    pub token: String,
    pub at: u64,
    pub valid: bool,
    /// The refusal reason's class, for invalid vectors that name one.
    pub reason: Option<String>,
    #[serde(default)]
    pub settings: Settings,
}

/// Settings that differ from the defaults, named as the configuration keys.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub otp_digits: Option<u32>,
    pub otp_interval: Option<u64>,
    pub otp_window: Option<u64>,
    pub nonce_digits: Option<u32>,
}

impl Settings {
    /// The settings as lines of a configuration file.
    pub fn as_toml(&self) -> String {
        let mut lines = String::new();
        let keys = [
            ("otp_digits", self.otp_digits.map(u64::from)),
            ("otp_interval", self.otp_interval),
            ("otp_window", self.otp_window),
            ("nonce_digits", self.nonce_digits.map(u64::from)),
        ];
        for (key, value) in keys {
            if let Some(value) = value {
                lines.push_str(&format!("{key} = {value}\n"));
            }
        }
        lines
    }
}

impl Vector {
    pub fn user_server(&self) -> (&str, &str) {
        self.jid.split_once('@').expect("vector JIDs are bare JIDs")
    }
}

pub const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tokens.json");

pub fn load() -> Vectors {
    let text = std::fs::read_to_string(PATH).unwrap_or_else(|e| panic!("{PATH}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{PATH}: {e}"))
}
