//! The socket daemon (`listen`, docs/protocol.md §11): the real binary on a
//! Unix socket in the test's own folder, talked to as Prosody's module talks
//! to it, reloaded and stopped as an operator does, and given its socket as
//! systemd gives it.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.org";

// ----- Requests -----

/// `text` as one request line.
fn line(text: impl AsRef<[u8]>) -> Vec<u8> {
    let mut line = text.as_ref().to_vec();
    line.push(b'\n');
    line
}

/// An `auth` line for `jid` with this password.
fn auth_line(jid: &str, password: &str) -> Vec<u8> {
    let (user, server) = jid.split_once('@').unwrap();
    line(format!("auth:{user}:{server}:{password}"))
}

/// An `auth` line with a fresh token for `jid`, default keys.
fn login(jid: &str, nonce: &str) -> Vec<u8> {
    auth_line(jid, &token(jid, nonce))
}

/// An `auth` line with a fresh token for `jid` signed with `secret`.
fn login_signed(jid: &str, secret: &str, nonce: &str) -> Vec<u8> {
    auth_line(jid, &token_with(secret, SEED, jid, nonce, now()))
}

fn isuser() -> Vec<u8> {
    line("isuser:alice:example.org")
}

// ----- Groups -----

/// Runs a small tool to its end, within the deadline; its stdout.
#[track_caller]
fn tool_output(program: &str, args: &[&str]) -> String {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let what = format!("{program} {}", args.join(" "));
    let out = collect(child, None, &what);
    assert!(out.status.success(), "{what}: {}", out.stderr);
    String::from_utf8(out.stdout).unwrap()
}

/// The test's own group: a socket may always be given it.
fn own_group() -> &'static str {
    static GROUP: OnceLock<String> = OnceLock::new();
    GROUP.get_or_init(|| tool_output("id", &["-gn"]).trim().to_string())
}

/// A group other than the test's own that its socket may be given (any group
/// for root, else one the user is a member of), with its id; the test's own
/// group when there is no other.
fn another_group() -> (String, u32) {
    let own = std::fs::metadata("/proc/self").unwrap().gid();
    let mut groups: Vec<(String, u32)> = Vec::new();
    if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
        for entry in tool_output("getent", &["group"]).lines() {
            let fields: Vec<&str> = entry.split(':').collect();
            if let [name, _, gid, ..] = fields[..] {
                groups.push((name.to_string(), gid.parse().unwrap()));
            }
        }
    } else {
        let ids = tool_output("id", &["-G"]);
        let names = tool_output("id", &["-Gn"]);
        for (gid, name) in ids.split_whitespace().zip(names.split_whitespace()) {
            groups.push((name.to_string(), gid.parse().unwrap()));
        }
    }
    groups
        .into_iter()
        .find(|(_, gid)| *gid != own)
        .unwrap_or_else(|| (own_group().to_string(), own))
}

// ----- Set-up -----

/// The default keys, the log on stderr, the socket `auth.sock` in the
/// test's folder with the test's own group, plus `extra` lines.
fn daemon_setup(extra: &str) -> Setup {
    Setup::with_text(&daemon_config(&format!("\"{SECRET}\""), own_group(), extra))
}

/// A daemon's configuration with this `token_secret` value (TOML) and
/// `socket_group`.
fn daemon_config(token_secret: &str, group: &str, extra: &str) -> String {
    format!(
        "token_secret = {token_secret}\notp_seed = \"{SEED}\"\nlog = \"stderr\"\n\
         socket = \"auth.sock\"\nsocket_group = \"{group}\"\n{extra}"
    )
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

/// A child's stderr, collected as it comes by a thread of its own.
#[derive(Clone)]
struct Log {
    text: Arc<Mutex<Vec<u8>>>,
    ended: Arc<AtomicBool>,
}

impl Log {
    fn collect(mut from: impl Read + Send + 'static) -> Log {
        let log = Log {
            text: Arc::default(),
            ended: Arc::default(),
        };
        let (text, ended) = (Arc::clone(&log.text), Arc::clone(&log.ended));
        // Ends with the child, whose end the tests wait for with deadlines.
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            loop {
                match from.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => text.lock().unwrap().extend_from_slice(&buffer[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            ended.store(true, SeqCst);
        });
        log
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned()
    }

    /// How many lines hold every one of `parts`.
    fn count(&self, parts: &[&str]) -> usize {
        let text = self.text();
        text.lines()
            .filter(|line| parts.iter().all(|part| line.contains(part)))
            .count()
    }

    /// Waits until `n` lines hold every one of `parts`; returns the last.
    #[track_caller]
    fn wait_for_nth(&self, parts: &[&str], n: usize, what: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let ended = self.ended.load(SeqCst);
            let text = self.text();
            let found: Vec<&str> = text
                .lines()
                .filter(|line| parts.iter().all(|part| line.contains(part)))
                .collect();
            if found.len() >= n {
                return found[n - 1].to_string();
            }
            if ended || Instant::now() > deadline {
                panic!(
                    "{what}: no {}line with {parts:?} {}; the log:\n{text}",
                    if n > 1 {
                        format!("{n}th ")
                    } else {
                        String::new()
                    },
                    if ended {
                        "before the log ended".to_string()
                    } else {
                        format!("after {DEADLINE:?}")
                    },
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[track_caller]
    fn wait_for(&self, parts: &[&str], what: &str) -> String {
        self.wait_for_nth(parts, 1, what)
    }

    /// Waits until the child's stderr has ended (once it has exited).
    #[track_caller]
    fn wait_ended(&self, what: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        while !self.ended.load(SeqCst) {
            assert!(
                Instant::now() < deadline,
                "{what}: the log did not end within {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        self.text()
    }
}

/// A running daemon (or `systemd-socket-activate` about to become one) and
/// its log; killed if the test ends without stopping it.
struct Daemon {
    child: Child,
    socket: PathBuf,
    log: Log,
}

impl Daemon {
    /// `listen` with `args` after it, once it says that it listens.
    #[track_caller]
    fn start(setup: &Setup, args: &[&str]) -> Daemon {
        let socket = match args.iter().position(|a| *a == "--socket") {
            Some(i) => PathBuf::from(args[i + 1]),
            None => setup.dir.path().join("auth.sock"),
        };
        let child = setup
            .command(&[&["listen"], args].concat())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let daemon = Daemon::watch(child, socket);
        daemon.log.wait_for(&["listening on"], "the daemon's start");
        daemon
    }

    /// `listen` given `listener` as systemd gives a socket unit's socket to
    /// its service (descriptor 3, `LISTEN_PID`, `LISTEN_FDS`), while the
    /// test keeps it open as systemd does; once it says that it listens.
    #[track_caller]
    fn activated(setup: &Setup, listener: &UnixListener, socket: &Path) -> Daemon {
        let fd = listener.as_raw_fd();
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg("export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" \"$@\"")
            .arg(BIN)
            .arg("--config")
            .arg(&setup.config)
            .arg("listen")
            .env_remove("XMPP_TOKEN_AUTH_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: dup2 and fcntl are async-signal-safe, as pre_exec requires.
        unsafe {
            command.pre_exec(move || {
                // Descriptor 3 without close-on-exec, as systemd passes it.
                let rc = match fd {
                    3 => libc::fcntl(3, libc::F_SETFD, 0),
                    _ => libc::dup2(fd, 3),
                };
                if rc < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let daemon = Daemon::watch(command.spawn().unwrap(), socket.to_path_buf());
        daemon
            .log
            .wait_for(&["listening on"], "the activated daemon's start");
        daemon
    }

    fn watch(mut child: Child, socket: PathBuf) -> Daemon {
        let log = Log::collect(child.stderr.take().unwrap());
        Daemon { child, socket, log }
    }

    #[track_caller]
    fn connect(&self, name: &str) -> Client {
        let stream = UnixStream::connect(&self.socket).unwrap_or_else(|e| {
            panic!(
                "{name}: cannot connect to {}: {e}; the daemon's log:\n{}",
                self.socket.display(),
                self.log.text()
            )
        });
        Client::new(stream, name, self.log.clone())
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: signalling our own child, not reaped yet.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Its exit status and its whole log, once it has exited.
    #[track_caller]
    fn exit(&mut self, what: &str) -> (ExitStatus, String) {
        let status = wait_with_deadline(&mut self.child, DEADLINE, what);
        (status, self.log.wait_ended(what))
    }

    /// Sends `signal`, then [`Daemon::exit`].
    #[track_caller]
    fn stop(&mut self, signal: libc::c_int) -> (ExitStatus, String) {
        self.signal(signal);
        self.exit(&format!("the daemon's exit on signal {signal}"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One connection to the daemon, named for failure messages.
struct Client {
    stream: UnixStream,
    name: String,
    log: Log,
}

impl Client {
    fn new(stream: UnixStream, name: &str, log: Log) -> Client {
        // A daemon that stops reading fails the test instead of hanging it.
        stream.set_write_timeout(Some(DEADLINE)).unwrap();
        Client {
            stream,
            name: name.to_string(),
            log,
        }
    }

    #[track_caller]
    fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes) {
            panic!(
                "{}: sending {} bytes: {e}; the daemon's log:\n{}",
                self.name,
                bytes.len(),
                self.log.text()
            );
        }
    }

    /// Sends the story's requests in one write, then checks its replies.
    #[track_caller]
    fn expect(&mut self, story: &[Expect]) {
        let requests: Vec<u8> = story.iter().flat_map(|s| s.request.clone()).collect();
        self.send(&requests);
        self.check(story);
    }

    /// Reads one reply per request of the story, and checks each against
    /// its named expectation.
    #[track_caller]
    fn check(&mut self, story: &[Expect]) {
        let (replies, ending) = self.replies(story.len());
        let context = format!(
            "{}: {ending}; the daemon's log:\n{}",
            self.name,
            self.log.text()
        );
        check_verdicts(story, Framing::Line, &replies, &context);
    }

    /// Up to `count` replies (two bytes each): what came before the
    /// deadline or the end of the connection, and how the reading ended.
    fn replies(&mut self, count: usize) -> (Vec<u8>, String) {
        let deadline = Instant::now() + DEADLINE;
        let mut got = Vec::new();
        let mut buffer = [0u8; 4096];
        while got.len() < 2 * count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (got, format!("no more replies within {DEADLINE:?}"));
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let want = (2 * count - got.len()).min(buffer.len());
            match self.stream.read(&mut buffer[..want]) {
                Ok(0) => return (got, "the daemon closed the connection".to_string()),
                Ok(n) => got.extend_from_slice(&buffer[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::Interrupted
                            | std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return (got, format!("reading failed: {e}")),
            }
        }
        (got, "every reply came".to_string())
    }

    /// How long until the daemon closes this connection (its end, or a
    /// reset); fails if the daemon sends anything, or keeps it open past
    /// `limit`.
    #[track_caller]
    fn closed_within(&mut self, limit: Duration) -> Duration {
        let start = Instant::now();
        let deadline = start + limit;
        let mut buffer = [0u8; 64];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{}: still open after {limit:?}; the daemon's log:\n{}",
                self.name,
                self.log.text()
            );
            self.stream.set_read_timeout(Some(left)).unwrap();
            match self.stream.read(&mut buffer) {
                Ok(0) => return start.elapsed(),
                Ok(n) => panic!(
                    "{}: expected the connection closed, got {:?}",
                    self.name,
                    String::from_utf8_lossy(&buffer[..n])
                ),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return start.elapsed();
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::Interrupted
                            | std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("{}: reading: {e}", self.name),
            }
        }
    }
}

// ----- Logging in -----

#[test]
fn a_valid_token_logs_in_once_even_across_connections() {
    let setup = daemon_setup("");
    let mut daemon = Daemon::start(&setup, &[]);
    let mut first = daemon.connect("the first connection");
    let mut second = daemon.connect("the second connection");
    let (one, two) = (token(ALICE, "1"), token(ALICE, "2"));
    first.expect(&[
        accepted("alice logs in with a fresh token", auth_line(ALICE, &one)),
        refused(
            "the same token again on the same connection: a replay",
            auth_line(ALICE, &one),
        ),
        accepted("isuser alice", isuser()),
        refused("a plain password", auth_line(ALICE, "hunter2")),
        refused(
            "bob with alice's next token",
            auth_line("bob@example.org", &two),
        ),
    ]);
    second.expect(&[
        refused(
            "the first connection's token on another connection: a replay",
            auth_line(ALICE, &one),
        ),
        accepted("alice's next token", auth_line(ALICE, &two)),
    ]);
    first.expect(&[refused(
        "the second connection's token back on the first: a replay",
        auth_line(ALICE, &two),
    )]);
    let (status, log) = daemon.stop(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("auth alice@example.org: accepted"), "{log}");
    let signature = one.split_once(' ').unwrap().1;
    for secret in [&one[..8], signature, "hunter2", SECRET, SEED] {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
}

#[test]
fn pipelined_requests_on_one_connection_are_answered_in_order() {
    let setup = daemon_setup("");
    let daemon = Daemon::start(&setup, &[]);
    let now = now();
    let story: Vec<Expect> = (0..5_000u32)
        .map(|i| {
            let jid = format!("user{}@example.org", i % 97);
            match i % 4 {
                0 => {
                    let token =
                        token_with(SECRET, SEED, "mallory@example.org", &i.to_string(), now);
                    refused(
                        format!("#{i}: {jid} with mallory's token"),
                        auth_line(&jid, &token),
                    )
                }
                1 => refused(format!("#{i}: garbage"), line("garbage")),
                _ => {
                    let token = token_with(SECRET, SEED, &jid, &i.to_string(), now);
                    accepted(
                        format!("#{i}: {jid} with a token of its own"),
                        auth_line(&jid, &token),
                    )
                }
            }
        })
        .collect();
    let mut client = daemon.connect("one connection, every request in one write");
    let requests: Vec<u8> = story.iter().flat_map(|s| s.request.clone()).collect();
    // Written from a thread while the replies are read, so that neither
    // side waits for the other.
    let mut writer = client.stream.try_clone().unwrap();
    let writing = std::thread::spawn(move || writer.write_all(&requests));
    client.check(&story);
    joined(writing).expect("writing the requests");
}

#[test]
fn twenty_connections_at_once_each_get_their_own_replies() {
    let setup = daemon_setup("");
    let mut daemon = Daemon::start(&setup, &[]);
    let clients: Vec<Client> = (0..20)
        .map(|i| daemon.connect(&format!("connection {i}")))
        .collect();
    let threads: Vec<JoinHandle<()>> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            std::thread::spawn(move || {
                let jid = format!("user{i}@example.org");
                let other = format!("user{}@example.org", (i + 1) % 20);
                // A pattern of verdicts of its own: replies crossed between
                // connections would not match it.
                let pattern = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for round in 0..5 {
                    let story: Vec<Expect> = (0..20)
                        .map(|j| {
                            let n = round * 20 + j;
                            let nonce = format!("{i}{n:04}");
                            if pattern.rotate_left(n as u32) & 1 == 1 {
                                accepted(
                                    format!("round {round}, #{j}: {jid}, a token of its own"),
                                    login(&jid, &nonce),
                                )
                            } else {
                                refused(
                                    format!("round {round}, #{j}: {jid} with {other}'s token"),
                                    auth_line(&jid, &token(&other, &nonce)),
                                )
                            }
                        })
                        .collect();
                    client.expect(&story);
                }
            })
        })
        .collect();
    for thread in threads {
        joined(thread);
    }
    let (status, log) = daemon.stop(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{log}");
}

// ----- Bounds -----

#[test]
fn a_connection_over_max_connections_is_closed_at_once_and_the_others_go_on() {
    let setup = daemon_setup("max_connections = 2\n");
    let daemon = Daemon::start(&setup, &[]);
    let mut first = daemon.connect("the first connection");
    first.expect(&[accepted("isuser on the first connection", isuser())]);
    let mut second = daemon.connect("the second connection");
    second.expect(&[accepted("isuser on the second connection", isuser())]);
    let mut third = daemon.connect("a third connection, over max_connections = 2");
    let took = third.closed_within(DEADLINE);
    assert!(
        took < Duration::from_secs(5),
        "the third connection was closed only after {took:?}"
    );
    let warning = daemon.log.wait_for(
        &["max_connections"],
        "the log line about the third connection",
    );
    assert!(
        warning.starts_with("xmpp-token-auth: warning: ") && warning.contains("2 are open"),
        "{warning}"
    );
    // No stall: the two keep being answered.
    first.expect(&[accepted(
        "a login on the first connection, after the third was closed",
        login(ALICE, "1"),
    )]);
    second.expect(&[accepted(
        "a login on the second connection, after the third was closed",
        login(ALICE, "2"),
    )]);
    // Once one of them closes, its place is free again: as soon as the
    // daemon has seen it close, so tried until then.
    drop(first);
    let deadline = Instant::now() + DEADLINE;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut next = daemon.connect("a connection after the first closed");
        let _ = next.stream.write_all(&isuser());
        match next.replies(1) {
            (reply, _) if reply == b"1\n" => break,
            (reply, ending) => assert!(
                reply.is_empty() && Instant::now() < deadline,
                "attempt {attempts}, a connection after the first closed: {reply:?}, {ending}; the log:\n{}",
                daemon.log.text()
            ),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    second.expect(&[accepted("the second connection still", login(ALICE, "3"))]);
}

#[test]
fn a_line_over_65535_bytes_is_refused_and_the_connection_stays_in_step() {
    let setup = daemon_setup("");
    let daemon = Daemon::start(&setup, &[]);
    let mut client = daemon.connect("a connection sending long lines");
    let token = token(ALICE, "7");
    // If the daemon started a new request after the first 65535 bytes, it
    // would find alice's request in the tail of this line.
    let smuggled = format!("{}auth:alice:example.org:{token}", "x".repeat(65536));
    // A valid login exactly 65535 bytes long, and one a byte longer.
    let prefix = "auth:".len() + ":example.org:".len() + token.len();
    let longest = format!("{}@example.org", "u".repeat(65535 - prefix));
    let too_long = format!("{}@example.org", "v".repeat(65536 - prefix));
    let longest_login = login(&longest, "8");
    let too_long_login = login(&too_long, "9");
    assert_eq!(
        (longest_login.len(), too_long_login.len()),
        (65536, 65537),
        "the two lines with their \\n"
    );
    client.expect(&[
        refused(
            "65536 'x' then alice's request, all one line: too long",
            line(&smuggled),
        ),
        accepted(
            "alice's token next: in step, and the token still unused",
            auth_line(ALICE, &token),
        ),
        refused("a line of 300 000 bytes", line("y".repeat(300_000))),
        accepted("isuser after it", isuser()),
        accepted(
            "a valid login of exactly 65535 bytes",
            longest_login.clone(),
        ),
        refused("a valid login of 65536 bytes", too_long_login),
        refused("the 65535-byte login again: a replay", longest_login),
        accepted("isuser last", isuser()),
    ]);
}

#[test]
fn a_request_left_half_sent_times_out_but_an_idle_connection_stays_open() {
    let setup = daemon_setup("request_timeout = 1\n");
    let daemon = Daemon::start(&setup, &[]);
    let mut idle_after = daemon.connect("a connection idle after a request");
    idle_after.expect(&[accepted("isuser, before idling", isuser())]);
    let mut silent = daemon.connect("a connection that sends nothing for a while");
    let mut half = daemon.connect("a connection leaving half a request");
    let sent = Instant::now();
    half.send(b"auth:alice:example.org:1234");
    half.closed_within(DEADLINE);
    let took = sent.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "the connection with half a request closed after {took:?}, request_timeout = 1"
    );
    let note = daemon
        .log
        .wait_for(&["request_timeout"], "the log line about the time-out");
    assert!(note.contains("closed a connection"), "{note}");
    // The others have been idle for more than the time-out by now.
    std::thread::sleep(Duration::from_millis(2_100).saturating_sub(sent.elapsed()));
    idle_after.expect(&[accepted(
        "a login after more than 2 s idle between requests",
        login(ALICE, "1"),
    )]);
    silent.expect(&[accepted(
        "a login on a connection silent for more than 2 s since it opened",
        login(ALICE, "2"),
    )]);
    assert_eq!(
        daemon.log.count(&["request_timeout"]),
        1,
        "{}",
        daemon.log.text()
    );
}

#[test]
fn bad_input_on_one_connection_never_affects_another() {
    let setup = daemon_setup("");
    let mut daemon = Daemon::start(&setup, &[]);
    let mut bad = daemon.connect("a connection sending garbage");
    let mut good = daemon.connect("alice's connection");
    let token = token(ALICE, "5");
    // Half a request on one connection, then a whole one on the other: the
    // two requests must not be joined.
    bad.send(b"auth:alice:example.org:");
    good.expect(&[accepted(
        "isuser, while another connection has half a request",
        isuser(),
    )]);
    let mut noise: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    noise.retain(|&b| b != b'\n');
    bad.expect(&[
        refused("the end of its half request: an empty password", line("")),
        refused("invalid UTF-8", line([0xff, 0xfe, 0xfd])),
        refused("NUL bytes", line([0, 0, 0])),
        refused(
            "alice's token with a NUL after it",
            auth_line(ALICE, &format!("{token}\0")),
        ),
        refused(
            "alice's token with a NUL in the user",
            auth_line("ali\0ce@example.org", &token),
        ),
        refused("100 000 bytes of binary noise", line(&noise)),
        refused("a bare \\r", line("\r")),
        refused("an unknown command", line("certauth:alice:example.org")),
    ]);
    good.expect(&[
        accepted(
            "alice's token, unharmed by what the other connection sent",
            auth_line(ALICE, &token),
        ),
        refused("the same token again: a replay", auth_line(ALICE, &token)),
    ]);
    bad.expect(&[accepted(
        "a login on the garbage connection: still in step",
        login(ALICE, "6"),
    )]);
    // Gone in the middle of a request, and an abrupt close with unread
    // requests: the daemon and the other connection go on.
    bad.send(b"auth:ali");
    drop(bad);
    let mut abrupt = daemon.connect("a connection closed with requests unanswered");
    abrupt.send(&isuser().repeat(1000));
    drop(abrupt);
    good.expect(&[accepted("alice's next login", login(ALICE, "7"))]);
    let mut later = daemon.connect("a connection opened afterwards");
    later.expect(&[accepted("a login", login(ALICE, "8"))]);
    let (status, log) = daemon.stop(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{log}");
}

// ----- Signals -----

#[test]
fn sighup_rotates_the_keys_keeping_connections_and_the_replay_memory() {
    let old = "the-old-secret-before-rotation-1";
    let new = "the-new-secret-after-rotation-01";
    let group = own_group();
    let setup = Setup::with_text(&daemon_config(&format!("\"{old}\""), group, ""));
    let mut daemon = Daemon::start(&setup, &[]);
    let mut open = daemon.connect("a connection open across the reloads");
    let used = login_signed(ALICE, old, "1");
    let early = login_signed(ALICE, new, "2");
    open.expect(&[
        accepted("a token of the old key", used.clone()),
        refused("a token of the new key, before the reload", early.clone()),
    ]);

    // Rotation: the new key signs, the old one still verifies.
    let rotated = daemon_config(&format!("[\"{new}\", \"{old}\"]"), group, "");
    std::fs::write(&setup.config, rotated).unwrap();
    let config = setup.config.display().to_string();
    let loaded = ["loaded", config.as_str()];
    let before = daemon.log.count(&loaded);
    daemon.signal(libc::SIGHUP);
    daemon
        .log
        .wait_for_nth(&loaded, before + 1, "the log line of the reload");
    open.expect(&[
        accepted(
            "the new key's token refused before the reload, now",
            early.clone(),
        ),
        accepted(
            "a fresh token of the old key",
            login_signed(ALICE, old, "3"),
        ),
        refused(
            "the old key's token used before the reload: a replay",
            used.clone(),
        ),
        accepted(
            "a fresh token of the new key",
            login_signed(ALICE, new, "4"),
        ),
    ]);
    let mut after = daemon.connect("a connection opened after the reload");
    after.expect(&[
        accepted(
            "a token of the new key on it",
            login_signed(ALICE, new, "5"),
        ),
        refused("a token used before the reload: a replay", used.clone()),
        refused("a token used after the reload: a replay", early),
    ]);

    // Broken configurations: logged at error, the one in force stays.
    let broken = [
        format!("token_secret = [\"{new}\"\notp_seed = \"{SEED}\"\n"),
        daemon_config(&format!("\"{new}\""), group, "otp_digits = 5\n"),
    ];
    let refusal = ["error:", "in force stays"];
    for (i, text) in broken.iter().enumerate() {
        std::fs::write(&setup.config, text).unwrap();
        daemon.signal(libc::SIGHUP);
        let error = daemon.log.wait_for_nth(
            &refusal,
            i + 1,
            &format!("the log line refusing broken configuration {i}"),
        );
        assert!(error.contains("config.toml"), "{error}");
        open.expect(&[
            accepted(
                format!("broken configuration {i}: a fresh token of the new key"),
                login_signed(ALICE, new, &format!("{i}6")),
            ),
            accepted(
                format!("broken configuration {i}: a fresh token of the old key"),
                login_signed(ALICE, old, &format!("{i}7")),
            ),
            refused(format!("broken configuration {i}: a replay"), used.clone()),
        ]);
    }
    let mut last = daemon.connect("a connection opened after the broken reloads");
    last.expect(&[accepted(
        "a token of the new key",
        login_signed(ALICE, new, "8"),
    )]);
    let (status, log) = daemon.stop(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{log}");
}

/// Request `i` of a busy connection: isuser (true) and a wrong password
/// (false) taking turns, so that the replies tell them apart.
fn busy_request(i: usize) -> Expect {
    if i.is_multiple_of(2) {
        accepted(format!("#{i}, an isuser"), isuser())
    } else {
        refused(
            format!("#{i}, a wrong password"),
            auth_line("mallory@example.org", "wrong"),
        )
    }
}

/// A connection written flat out from one thread and read from another.
struct Busy {
    name: String,
    written: Arc<AtomicUsize>,
    writer: JoinHandle<()>,
    reader: JoinHandle<Vec<u8>>,
}

impl Busy {
    fn start(client: Client) -> Busy {
        let written = Arc::new(AtomicUsize::new(0));
        let mut stream = client.stream.try_clone().unwrap();
        let writer = {
            let written = Arc::clone(&written);
            let stop = Instant::now() + DEADLINE;
            std::thread::spawn(move || {
                for i in 0.. {
                    // Fails once the daemon stops reading this connection.
                    if Instant::now() > stop || stream.write_all(&busy_request(i).request).is_err()
                    {
                        return;
                    }
                    written.store(i + 1, SeqCst);
                }
            })
        };
        let mut stream = client.stream;
        let reader = std::thread::spawn(move || {
            read_to_end_within(&mut stream, DEADLINE + Duration::from_secs(5), "replies")
        });
        Busy {
            name: client.name,
            written,
            writer,
            reader,
        }
    }
}

#[test]
fn a_stop_signal_answers_every_request_sent_before_it_then_exits_zero() {
    let setup = daemon_setup("");
    for round in 0..6 {
        let signal = [libc::SIGTERM, libc::SIGINT][round % 2];
        let mut daemon = Daemon::start(&setup, &[]);
        // Neither an idle connection nor half a request holds it up.
        let mut idle = daemon.connect("an idle connection");
        idle.expect(&[accepted("isuser, before idling", isuser())]);
        let mut half = daemon.connect("a connection with half a request");
        half.send(b"auth:alice:exa");
        let busy: Vec<Busy> = (0..4)
            .map(|c| {
                let mut client = daemon.connect(&format!("busy connection {c}"));
                // Admitted and served before the flood.
                client.expect(&[accepted("isuser, first", isuser())]);
                Busy::start(client)
            })
            .collect();
        let after = 50 + round * 200;
        let deadline = Instant::now() + DEADLINE;
        while busy.iter().any(|b| b.written.load(SeqCst) < after) {
            assert!(Instant::now() < deadline, "the daemon stopped reading");
            std::thread::sleep(Duration::from_micros(100));
        }
        // Every request counted here was written in full before the signal.
        let before: Vec<usize> = busy.iter().map(|b| b.written.load(SeqCst)).collect();
        let (status, log) = daemon.stop(signal);
        let context = format!("round {round}, signal {signal}");
        for (busy, before) in busy.into_iter().zip(before) {
            let replies = joined(busy.reader);
            joined(busy.writer);
            let answered = replies.len() / 2;
            assert!(
                answered >= before,
                "{context}, {}: {before} requests written before the signal, {answered} answered; the log:\n{log}",
                busy.name
            );
            let story: Vec<Expect> = (0..answered).map(busy_request).collect();
            let context = format!("{context}, {}", busy.name);
            check_verdicts(&story, Framing::Line, &replies, &context);
        }
        assert_eq!(status.code(), Some(0), "{context}: {log}");
        idle.closed_within(DEADLINE);
        half.closed_within(DEADLINE);
        assert!(
            std::fs::symlink_metadata(&daemon.socket).is_err(),
            "{context}: the socket file is left behind"
        );
    }
}

/// Waits until the process is stopped (SIGSTOP), at most until the deadline.
#[track_caller]
fn wait_until_stopped(pid: u32) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // The state follows the command's name in parentheses.
        let state = stat.rsplit_once(") ").unwrap().1.chars().next();
        if state == Some('T') {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "process {pid} not stopped: {stat}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_stop_signal_answers_connections_made_before_it_but_not_yet_accepted() {
    // Room for every connection of the test: none is closed for being one
    // too many.
    let setup = daemon_setup("max_connections = 200\n");
    for round in 0..3 {
        let mut daemon = Daemon::start(&setup, &[]);
        // Frozen, as a busy daemon may be: new connections wait in the
        // socket's backlog, their requests written, until it accepts them.
        daemon.signal(libc::SIGSTOP);
        wait_until_stopped(daemon.child.id());
        let mut waiting: Vec<Client> = (0..100)
            .map(|c| {
                let mut client = daemon.connect(&format!("connection {c}"));
                client.send(&login(ALICE, &format!("{round}{c:03}")));
                client
            })
            .collect();
        daemon.signal(libc::SIGTERM);
        daemon.signal(libc::SIGCONT);
        let (status, log) = daemon.exit("the exit on SIGTERM");
        let unanswered: Vec<String> = waiting
            .iter_mut()
            .filter_map(|client| match client.replies(1) {
                (reply, _) if reply == b"1\n" => None,
                (reply, ending) => Some(format!("{}: {reply:?}, {ending}", client.name)),
            })
            .collect();
        assert!(
            unanswered.is_empty(),
            "round {round}: {} of 100 connections made, each with a valid login written in full, \
             before SIGTERM got no reply (or a wrong one), e.g.\n  {}\nthe daemon's log:\n{log}",
            unanswered.len(),
            unanswered[..unanswered.len().min(5)].join("\n  "),
        );
        assert_eq!(status.code(), Some(0), "{log}");
    }
}

// ----- The socket file -----

#[test]
fn a_stale_socket_file_is_replaced_but_another_file_is_left_alone() {
    let setup = daemon_setup("");
    let path = setup.dir.path().join("auth.sock");
    // A daemon that died leaves its socket file, and nobody listens on it.
    drop(UnixListener::bind(&path).unwrap());
    assert!(is_socket(&path));
    let mut daemon = Daemon::start(&setup, &[]);
    daemon
        .connect("a connection to the replaced socket")
        .expect(&[accepted("a login", login(ALICE, "1"))]);
    let (status, log) = daemon.stop(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{log}");

    std::fs::write(&path, b"not a socket").unwrap();
    let (code, stdout, stderr) = setup.run(&["listen"]);
    assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
    assert!(stderr.contains("is not a socket"), "{stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), b"not a socket");
}

#[test]
fn a_second_daemon_on_a_live_socket_exits_2_and_leaves_the_first_alone() {
    let setup = daemon_setup("");
    let mut daemon = Daemon::start(&setup, &[]);
    let inode = std::fs::metadata(&daemon.socket).unwrap().ino();
    let mut open = daemon.connect("a connection to the first daemon");
    open.expect(&[accepted("isuser", isuser())]);
    let (code, stdout, stderr) = setup.run(&["listen"]);
    assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
    let expected = format!("another daemon answers on {}", daemon.socket.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert_eq!(
        std::fs::metadata(&daemon.socket).unwrap().ino(),
        inode,
        "the first daemon's socket file was replaced"
    );
    open.expect(&[accepted(
        "a login on the open connection",
        login(ALICE, "1"),
    )]);
    daemon
        .connect("a new connection")
        .expect(&[accepted("a login", login(ALICE, "2"))]);
    let (status, log) = daemon.stop(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{log}");
}

#[test]
fn the_socket_file_gets_socket_mode_and_socket_group() {
    let (group, gid) = another_group();
    let setup = Setup::with_text(&daemon_config(
        &format!("\"{SECRET}\""),
        &group,
        "socket_mode = \"0620\"\n",
    ));
    let custom = setup.dir.path().join("custom.sock");
    let mut daemon = Daemon::start(&setup, &["--socket", custom.to_str().unwrap()]);
    let meta = std::fs::symlink_metadata(&custom).unwrap();
    assert!(meta.file_type().is_socket(), "{meta:?}");
    assert_eq!(
        meta.mode() & 0o7777,
        0o620,
        "mode {:o}, socket_mode = \"0620\"",
        meta.mode() & 0o7777
    );
    assert_eq!(meta.gid(), gid, "the group, socket_group = {group:?}");
    assert!(
        !setup.dir.path().join("auth.sock").exists(),
        "--socket overrides the socket key"
    );
    daemon
        .connect("a connection")
        .expect(&[accepted("isuser", isuser())]);
    let (status, log) = daemon.stop(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(!custom.exists(), "the socket file is left behind");
}

// ----- With the other helpers, and systemd -----

#[test]
fn the_daemon_and_an_ejabberd_helper_sharing_a_replay_store_accept_a_token_once() {
    let setup = daemon_setup("replay_store = \"replay\"\n");
    let daemon = Daemon::start(&setup, &[]);
    let mut open = daemon.connect("a connection to the daemon");
    let through_socket = token(ALICE, "1");
    let through_pipes = token(ALICE, "2");
    open.expect(&[accepted(
        "alice logs in through the daemon",
        auth_line(ALICE, &through_socket),
    )]);
    setup.expect_verdicts(&[
        refused(
            "the daemon's token through an ejabberd helper: a replay",
            auth(ALICE, &through_socket),
        ),
        accepted(
            "another token through the ejabberd helper",
            auth(ALICE, &through_pipes),
        ),
    ]);
    open.expect(&[
        refused(
            "the ejabberd helper's token through the daemon: a replay",
            auth_line(ALICE, &through_pipes),
        ),
        refused(
            "the daemon's own token again: a replay",
            auth_line(ALICE, &through_socket),
        ),
    ]);
}

/// The path of `systemd-socket-activate`; fails the test if it is missing.
fn socket_activate() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|folder| folder.join("systemd-socket-activate"))
        .find(|path| path.is_file())
        .expect(
            "systemd-socket-activate is missing: install systemd \
             (apt-get install -y systemd), as .ci/run does",
        )
}

#[test]
fn under_systemd_socket_activation_the_passed_socket_is_served() {
    let tool = socket_activate();
    let setup = daemon_setup("");
    let path = setup.dir.path().join("activated.sock");
    let child = Command::new(&tool)
        .arg("--listen")
        .arg(&path)
        .arg(BIN)
        .arg("--config")
        .arg(&setup.config)
        .arg("listen")
        .env_remove("XMPP_TOKEN_AUTH_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut daemon = Daemon::watch(child, path.clone());
    // systemd-socket-activate listens, and starts the daemon at the first
    // connection.
    let deadline = Instant::now() + DEADLINE;
    let stream = loop {
        match UnixStream::connect(&path) {
            Ok(stream) => break stream,
            Err(e) => assert!(
                Instant::now() < deadline,
                "{}: {e}; its log:\n{}",
                path.display(),
                daemon.log.text()
            ),
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut client = Client::new(stream, "a connection", daemon.log.clone());
    client.expect(&[
        accepted("a login", login(ALICE, "1")),
        refused("the same token again: a replay", login(ALICE, "1")),
        accepted("isuser", isuser()),
    ]);
    daemon
        .connect("a second connection")
        .expect(&[accepted("another login", login(ALICE, "2"))]);
    daemon.log.wait_for(
        &["listening on the socket systemd passed"],
        "the daemon's start",
    );
    assert!(
        !setup.dir.path().join("auth.sock").exists(),
        "the socket key is not used under socket activation"
    );
    let (status, log) = daemon.stop(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(is_socket(&path), "systemd's socket file was removed");
}

#[test]
fn the_socket_systemd_keeps_still_takes_connections_after_the_daemon_stops() {
    let setup = daemon_setup("");
    let path = setup.dir.path().join("systemd.sock");
    // The socket unit's socket: systemd holds it across restarts of the
    // service, and starts the service again at the next connection.
    let listener = UnixListener::bind(&path).unwrap();
    let mut first = Daemon::activated(&setup, &listener, &path);
    first
        .connect("a connection to the first daemon")
        .expect(&[accepted("a login", login(ALICE, "1"))]);
    let (status, log) = first.stop(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(is_socket(&path), "systemd's socket file was removed");
    // `systemctl restart`: the next connection waits for the next daemon.
    let stream = UnixStream::connect(&path).unwrap_or_else(|e| {
        panic!(
            "a connection after the daemon stopped, systemd still holding the socket: {e}; \
             the stopped daemon left the socket unit's socket unable to take connections"
        )
    });
    let mut next = Client::new(
        stream,
        "a connection made between the daemons",
        first.log.clone(),
    );
    next.send(&login(ALICE, "2"));
    let mut second = Daemon::activated(&setup, &listener, &path);
    next.log = second.log.clone();
    next.check(&[accepted(
        "a login sent before the second daemon started",
        login(ALICE, "2"),
    )]);
    let (status, log) = second.stop(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{log}");
}
