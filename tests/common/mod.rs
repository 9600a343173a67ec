//! Shared set-up for the integration tests: a configuration in a private
//! folder, tokens, frames, and the real binary over pipes.
#![allow(dead_code)] // each test file uses its own part of this

pub mod vectors;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};
use xmpp_token_auth::core::totp::Seed;
use xmpp_token_auth::core::verify::{self, Keys, Secret, TokenParams};

pub const BIN: &str = env!("CARGO_BIN_EXE_xmpp-token-auth");
pub const SECRET: &str = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7";
pub const SEED: &str = "XVGR73KMZH2M4XMY";
pub const TRUE: [u8; 4] = [0, 2, 0, 1];
pub const FALSE: [u8; 4] = [0, 2, 0, 0];

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token as the application would mint it, with the default settings; the
/// nonce is `nonce` zero-padded to the default 32 digits, so that tests can
/// tell tokens apart by short nonces.
pub fn token_with(secret: &str, seed: &str, jid: &str, nonce: &str, at: u64) -> String {
    let keys = Keys {
        secrets: vec![Secret::new(secret.to_string())],
        seeds: vec![Seed::from_base32(seed).unwrap()],
    };
    let (user, server) = jid.split_once('@').unwrap();
    let nonce = format!("{nonce:0>32}");
    verify::generate(&keys, TokenParams::default(), user, server, &nonce, at)
}

pub fn token(jid: &str, nonce: &str) -> String {
    token_with(SECRET, SEED, jid, nonce, now())
}

/// An `auth` frame for `jid` carrying a token signed with these keys.
pub fn signed(jid: &str, secret: &str, seed: &str, nonce: &str, at: u64) -> Vec<u8> {
    auth(jid, &token_with(secret, seed, jid, nonce, at))
}

/// An ejabberd frame: 2-byte big-endian length, then the bytes.
pub fn frame(body: impl AsRef<[u8]>) -> Vec<u8> {
    let body = body.as_ref();
    let mut out = (body.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

pub fn auth(jid: &str, password: &str) -> Vec<u8> {
    let (user, server) = jid.split_once('@').unwrap();
    frame(format!("auth:{user}:{server}:{password}"))
}

pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Setup {
    /// The default secret and seed, logging off, plus `extra` lines.
    pub fn new(extra: &str) -> Setup {
        let log = if extra.contains("log =") {
            ""
        } else {
            "log = \"none\"\n"
        };
        Setup::with_text(&format!(
            "token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\n{log}{extra}"
        ))
    }

    pub fn with_text(text: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, text).unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        Setup { dir, config }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command.arg("--config").arg(&self.config).args(args);
        command.env_remove("XMPP_TOKEN_AUTH_CONFIG");
        command
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs a subcommand; returns its exit code, stdout and stderr.
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.command(args).stdin(Stdio::null()).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    /// Serves `input` (written from another thread, then closed) and returns
    /// everything written to stdout and stderr once the helper has exited.
    pub fn serve(&self, args: &[&str], input: Vec<u8>) -> Served {
        let mut child = self.spawn(args);
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let mut stdout = Vec::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut stdout)
            .unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        writer.join().unwrap();
        Served {
            status: child.wait().unwrap(),
            stdout,
            stderr,
        }
    }

    /// Serves ejabberd frames and returns the replies, checking a clean exit.
    pub fn replies(&self, frames: &[Vec<u8>]) -> Vec<[u8; 4]> {
        let served = self.serve(&[], frames.concat());
        assert_eq!(served.status.code(), Some(0), "stderr: {}", served.stderr);
        assert_eq!(served.stdout.len() % 4, 0, "replies: {:?}", served.stdout);
        served
            .stdout
            .chunks(4)
            .map(|r| r.try_into().unwrap())
            .collect()
    }
}

pub struct Served {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}
