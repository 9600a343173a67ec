//! Shared set-up for the integration tests: a configuration in a private
//! folder, tokens, frames, the real binary over pipes, verdicts checked by
//! name, and waits on child processes that end at a deadline.
#![allow(dead_code)] // each test file uses its own part of this

pub mod vectors;

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use xmpp_token_auth::core::token::SigningKey;
use xmpp_token_auth::core::totp::Seed;
use xmpp_token_auth::core::verify::{self, Keys, TokenParams};

pub const BIN: &str = env!("CARGO_BIN_EXE_xmpp-token-auth");
pub const SECRET: &str = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7";
pub const SEED: &str = "XVGR73KMZH2M4XMY";
pub const TRUE: [u8; 4] = [0, 2, 0, 1];
pub const FALSE: [u8; 4] = [0, 2, 0, 0];

/// How long a test waits for a child to do what it must (answer, exit)
/// before it calls that a hang and fails. Generous, for slow CI machines: a
/// passing test never waits this long.
pub const DEADLINE: Duration = Duration::from_secs(30);

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
        secrets: vec![SigningKey::new(secret.as_bytes())],
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

/// How the helper frames its replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `00 02 00 01` or `00 02 00 00`.
    Ejabberd,
    /// `1\n` or `0\n`.
    Line,
}

impl Framing {
    /// The verdicts in `output`, in order; whatever is not a whole reply is
    /// an `Err` holding its bytes.
    pub fn verdicts(self, output: &[u8]) -> Vec<Result<bool, Vec<u8>>> {
        let parse = |reply: &[u8]| match (self, reply) {
            (Framing::Ejabberd, [0, 2, 0, 1]) | (Framing::Line, b"1\n") => Ok(true),
            (Framing::Ejabberd, [0, 2, 0, 0]) | (Framing::Line, b"0\n") => Ok(false),
            _ => Err(reply.to_vec()),
        };
        match self {
            Framing::Ejabberd => output.chunks(4).map(parse).collect(),
            Framing::Line => output.split_inclusive(|&b| b == b'\n').map(parse).collect(),
        }
    }
}

/// One step of a test's story: a request, and the verdict the helper must
/// give it, named for the failure message.
#[derive(Debug, Clone)]
pub struct Expect {
    pub what: String,
    pub request: Vec<u8>,
    pub verdict: bool,
}

/// `request` must be answered true: a login accepted, a user who exists.
pub fn accepted(what: impl Into<String>, request: Vec<u8>) -> Expect {
    Expect {
        what: what.into(),
        request,
        verdict: true,
    }
}

/// `request` must be answered false.
pub fn refused(what: impl Into<String>, request: Vec<u8>) -> Expect {
    Expect {
        what: what.into(),
        request,
        verdict: false,
    }
}

/// A verdict as the failure messages put it.
pub fn verdict_name(verdict: bool) -> &'static str {
    if verdict {
        "true (accepted)"
    } else {
        "false (refused)"
    }
}

/// Checks the helper's `output` against a story, one reply per request in
/// order. Every expectation that broke is reported by its name, as in
/// "request 2 of 9, the replay: expected false (refused), got true
/// (accepted)", and so are replies beyond the story. `context` (the
/// helper's stderr, say) follows the report.
#[track_caller]
pub fn check_verdicts(story: &[Expect], framing: Framing, output: &[u8], context: &str) {
    assert!(!story.is_empty(), "a story with nothing to check");
    let verdicts = framing.verdicts(output);
    let mut broken = Vec::new();
    for (i, step) in story.iter().enumerate() {
        let got = match verdicts.get(i) {
            Some(Ok(verdict)) if *verdict == step.verdict => continue,
            Some(Ok(verdict)) => verdict_name(*verdict).to_string(),
            Some(Err(bytes)) => format!("{:?}, which is no reply", String::from_utf8_lossy(bytes)),
            None => "no reply".to_string(),
        };
        broken.push(format!(
            "request {} of {}, {}: expected {}, got {got}",
            i + 1,
            story.len(),
            step.what,
            verdict_name(step.verdict),
        ));
    }
    if verdicts.len() > story.len() {
        broken.push(format!(
            "{} replies to {} requests; the ones too many: {:?}",
            verdicts.len(),
            story.len(),
            &verdicts[story.len()..]
        ));
    }
    if !broken.is_empty() {
        let shown = broken.len().min(20);
        panic!(
            "{} of {} expectations broke:\n  {}{}\n{context}",
            broken.len(),
            story.len(),
            broken[..shown].join("\n  "),
            if broken.len() > shown { "\n  ..." } else { "" },
        );
    }
}

/// The child's exit status if it exits within `limit`; `None` if it is
/// still running then (and it is left running).
pub fn exited_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    let mut pause = Duration::from_micros(50);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Waits for `child` to exit. After `limit`, kills it (its whole process
/// group if it leads one) and fails, naming `what` the test waited for.
#[track_caller]
pub fn wait_with_deadline(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    if let Some(status) = exited_within(child, limit) {
        return status;
    }
    let pid = child.id() as libc::pid_t;
    // SAFETY: plain system calls on our own child, which has not been
    // reaped yet, so that its pid names no other process.
    unsafe {
        if libc::getpgid(pid) == pid {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{what}: process {pid} was still running after {limit:?}, so it was killed");
}

/// Waits until `from` has something to read (or its end), at most until
/// `deadline`; false once the deadline has passed.
fn readable_by(from: &impl AsFd, deadline: Instant) -> bool {
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        let mut poll = libc::pollfd {
            fd: from.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, on a descriptor `from` keeps open.
        let ready = unsafe { libc::poll(&mut poll, 1, millis) };
        if ready > 0 {
            return true;
        }
        if ready < 0 {
            let error = std::io::Error::last_os_error();
            assert_eq!(
                error.kind(),
                std::io::ErrorKind::Interrupted,
                "poll: {error}"
            );
        }
    }
}

/// `read_exact` that fails after `limit`, or at the end of the output,
/// saying what it waited for and what it got.
#[track_caller]
pub fn read_exact_within(
    from: &mut (impl Read + AsFd),
    buf: &mut [u8],
    limit: Duration,
    what: &str,
) {
    let deadline = Instant::now() + limit;
    let mut got = 0;
    while got < buf.len() {
        if !readable_by(from, deadline) {
            panic!(
                "{what}: {got} of {} bytes after {limit:?}: {:?}",
                buf.len(),
                &buf[..got]
            );
        }
        match from.read(&mut buf[got..]) {
            Ok(0) => panic!(
                "{what}: the output ended after {got} of {} bytes: {:?}",
                buf.len(),
                &buf[..got]
            ),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// `read_to_end` that fails if the end has not come after `limit`.
#[track_caller]
pub fn read_to_end_within(from: &mut (impl Read + AsFd), limit: Duration, what: &str) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buffer = [0u8; 65536];
    loop {
        if !readable_by(from, deadline) {
            panic!(
                "{what}: no end of output after {limit:?}, {} bytes so far",
                out.len()
            );
        }
        match from.read(&mut buffer) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// One ejabberd reply, read within the deadline.
#[track_caller]
pub fn read_reply(from: &mut (impl Read + AsFd), what: &str) -> [u8; 4] {
    let mut reply = [0u8; 4];
    read_exact_within(from, &mut reply, DEADLINE, what);
    reply
}

/// Reads `from` to its end in a thread of its own, within the deadline (and
/// a little more, so that a hang is reported by the wait on the child).
pub fn read_in_background(
    mut from: impl Read + AsFd + Send + 'static,
    what: &'static str,
) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        read_to_end_within(&mut from, DEADLINE + Duration::from_secs(5), what)
    })
}

/// What a thread returned; its panic, if it panicked, becomes ours.
pub fn joined<T>(thread: JoinHandle<T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Collects what `child` (stdout and stderr piped) writes while `input` is
/// written to its stdin (then closed), and its exit status, within the
/// deadline; `what` names the child in a failure.
#[track_caller]
pub fn collect(mut child: Child, input: Option<Vec<u8>>, what: &str) -> Served {
    let writer = input.map(|input| {
        let mut stdin = child.stdin.take().unwrap();
        // Fails once the child has gone; then the replies tell.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        })
    });
    let stdout = read_in_background(child.stdout.take().unwrap(), "the child's stdout");
    let stderr = read_in_background(child.stderr.take().unwrap(), "the child's stderr");
    let status = wait_with_deadline(&mut child, DEADLINE, &format!("{what}: the exit"));
    let stdout = joined(stdout);
    let stderr = String::from_utf8(joined(stderr)).expect("stderr is UTF-8");
    if let Some(writer) = writer {
        joined(writer);
    }
    Served {
        status,
        stdout,
        stderr,
    }
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
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = collect(child, None, &format!("xmpp-token-auth {}", args.join(" ")));
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            out.stderr,
        )
    }

    /// Serves `input` (written from another thread, then closed) and returns
    /// everything written to stdout and stderr once the helper has exited.
    #[track_caller]
    pub fn serve(&self, args: &[&str], input: Vec<u8>) -> Served {
        let what = format!("xmpp-token-auth {} serving", args.join(" "));
        collect(self.spawn(args), Some(input), &what)
    }

    /// Serves ejabberd frames and returns the replies, checking a clean exit.
    #[track_caller]
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

    /// Serves the story's requests, ejabberd frames, to one helper and checks
    /// each reply against its named expectation (see `check_verdicts`), and
    /// that the helper exits 0 at the end of its input.
    #[track_caller]
    pub fn expect_verdicts(&self, story: &[Expect]) {
        self.expect_verdicts_over(&[], Framing::Ejabberd, story);
    }

    /// `expect_verdicts` with these arguments, replies framed so.
    #[track_caller]
    pub fn expect_verdicts_over(&self, args: &[&str], framing: Framing, story: &[Expect]) {
        let input = story
            .iter()
            .flat_map(|step| step.request.iter().copied())
            .collect();
        let served = self.serve(args, input);
        let context = format!(
            "the helper's exit: {}; its stderr: {}",
            served.status,
            if served.stderr.is_empty() {
                "(empty)"
            } else {
                &served.stderr
            }
        );
        check_verdicts(story, framing, &served.stdout, &context);
        assert_eq!(
            served.status.code(),
            Some(0),
            "the helper's exit at the end of input; stderr: {}",
            served.stderr
        );
    }
}

pub struct Served {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}
