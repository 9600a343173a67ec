//! `replay_store = "redis://…"` against a real engine: Debian's
//! redis-server, started here on a loopback port with a password, in the
//! test's own folder, and stopped at the end. `.ci/run` installs it.
#![cfg(feature = "redis")]

mod common;

use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.org";
const PASSWORD: &str = "engine-password-0123456789";

/// One redis-server, killed when dropped.
struct Engine {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Engine {
    fn start() -> Engine {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut engine = Engine {
            dir: tempfile::tempdir().unwrap(),
            port,
            child: None,
        };
        engine.restart();
        engine
    }

    /// Starts it (again) on the same port, empty: no persistence.
    fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--requirepass",
                PASSWORD,
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--daemonize", "no", "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): these tests need it; \
                     install redis-server (apt-get install -y redis-server)"
                )
            });
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < DEADLINE,
                "redis-server did not listen on port {} within {DEADLINE:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Listening is not yet serving: wait for an answer.
        while !self.cli(&["PING"]).contains("PONG") {
            assert!(started.elapsed() < DEADLINE, "redis-server never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// redis-cli's output for one command.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-a", PASSWORD, "--no-auth-warning"])
            .args(args)
            .output()
            .expect("redis-cli (package redis-tools, installed with redis-server)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every key the engine holds.
    fn keys(&self) -> Vec<String> {
        self.cli(&["--scan"])
            .lines()
            .map(str::to_string)
            .filter(|k| !k.is_empty())
            .collect()
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A node's configuration: the engine, its password in a file beside it,
/// and `extra` lines.
fn node(engine: &Engine, password: &str, extra: &str) -> Setup {
    let setup = Setup::new(&format!(
        "replay_store = \"{}\"\nreplay_store_password_file = \"engine-password\"\n{extra}",
        engine.url()
    ));
    let file = setup.dir.path().join("engine-password");
    std::fs::write(&file, format!("{password}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    setup
}

/// A helper answering over pipes, its first request answered.
struct Helper {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
}

impl Helper {
    fn start(setup: &Setup) -> Helper {
        let mut child = setup.spawn(&[]);
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        stdin.write_all(&frame(b"isuser:a:example.org")).unwrap();
        assert_eq!(read_reply(&mut stdout, "the first reply"), TRUE);
        Helper {
            child,
            stdin,
            stdout,
        }
    }

    fn send(&mut self, request: &[u8]) {
        self.stdin.write_all(request).unwrap();
    }

    fn reply(&mut self, what: &str) -> bool {
        let reply = read_reply(&mut self.stdout, what);
        assert!(reply == TRUE || reply == FALSE, "{what}: {reply:?}");
        reply == TRUE
    }

    fn auth(&mut self, token: &str, what: &str) -> bool {
        self.send(&auth(ALICE, token));
        self.reply(what)
    }

    /// Ends it and returns what it wrote on stderr.
    fn stop(self) -> String {
        let Helper {
            mut child,
            stdin,
            stdout,
        } = self;
        drop(stdin);
        drop(stdout);
        let status = wait_with_deadline(&mut child, DEADLINE, "the helper's exit");
        assert_eq!(status.code(), Some(0));
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        stderr
    }
}

#[test]
fn a_token_accepted_on_one_node_is_refused_on_another() {
    let engine = Engine::start();
    let one = node(&engine, PASSWORD, "");
    let two = node(&engine, PASSWORD, "replay_store_timeout_ms = 500\n");
    let token = token(ALICE, "4242");
    let mut first = Helper::start(&one);
    let mut second = Helper::start(&two);
    assert!(first.auth(&token, "node one, first use"));
    assert!(!second.auth(&token, "node two, the same token"));
    assert!(!first.auth(&token, "node one, again"));
    // verify asks the engine, read only.
    let (code, stdout, stderr) = two.run(&["verify", ALICE, &token]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stdout.contains("already used"), "{stdout}");
    let fresh = token_with(SECRET, SEED, ALICE, "4343", now());
    let (code, stdout, stderr) = two.run(&["verify", ALICE, &fresh]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(second.auth(&fresh, "verify recorded nothing"));
    // No token material and no user name in any key; each lives a while.
    let keys = engine.keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for key in &keys {
        let hex = key.strip_prefix("xta:").unwrap_or_else(|| panic!("{key}"));
        assert!(
            hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key}"
        );
        assert!(!key.contains("alice") && !key.contains("4242"), "{key}");
        let ttl: i64 = engine.cli(&["PTTL", key]).trim().parse().unwrap();
        assert!((60_000..=200_000).contains(&ttl), "{key}: PTTL {ttl}");
    }
    first.stop();
    second.stop();
}

#[test]
fn eight_helpers_racing_with_one_token_accept_it_exactly_once() {
    let engine = Engine::start();
    let setup = node(&engine, PASSWORD, "");
    let mut helpers: Vec<Helper> = (0..8).map(|_| Helper::start(&setup)).collect();
    for round in 0..20 {
        let request = auth(ALICE, &token(ALICE, &format!("77{round}")));
        for helper in &mut helpers {
            helper.send(&request);
        }
        let mut accepted = 0;
        for (n, helper) in helpers.iter_mut().enumerate() {
            accepted += usize::from(helper.reply(&format!("round {round}, helper {n}")));
        }
        assert_eq!(accepted, 1, "round {round}");
    }
    for helper in helpers {
        helper.stop();
    }
}

#[test]
fn an_engine_that_stops_is_refused_fast_and_used_again_once_back() {
    let mut engine = Engine::start();
    let setup = node(&engine, PASSWORD, "log = \"stderr\"\n");
    let mut helper = Helper::start(&setup);
    assert!(helper.auth(&token(ALICE, "1"), "engine up"));
    engine.stop();
    for n in 0..20 {
        let started = Instant::now();
        let accepted = helper.auth(&token(ALICE, &format!("2{n}")), "engine down");
        let took = started.elapsed();
        assert!(!accepted, "fail closed");
        // replay_store_timeout_ms = 200 for connecting, once per pause.
        assert!(took < Duration::from_millis(700), "reply {n} took {took:?}");
    }
    engine.restart();
    let started = Instant::now();
    let mut n = 0;
    while !helper.auth(&token(ALICE, &format!("3{n}")), "engine back") {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still refusing 10 s after the engine came back"
        );
        std::thread::sleep(Duration::from_millis(100));
        n += 1;
    }
    assert!(!helper.auth(&token(ALICE, &format!("3{n}")), "and remembers"));
    let log = helper.stop();
    assert!(log.contains("replay store failed"), "{log}");
    assert!(log.contains(&engine.url()), "{log}");
}

#[test]
fn a_wrong_password_is_said_in_words_and_helpers_stay_up_refusing() {
    let engine = Engine::start();
    let right = node(&engine, PASSWORD, "");
    let (code, stdout, stderr) = right.run(&["check-config", "--connect"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("PING answered PONG"), "{stdout}");
    let (code, stdout, _) = right.run(&["check-config"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("not contacted"), "{stdout}");

    let wrong = node(&engine, "not-the-password", "log = \"stderr\"\n");
    let (code, stdout, stderr) = wrong.run(&["check-config", "--connect"]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("refused the user name or password"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"), "{stderr}");
    let mut helper = Helper::start(&wrong);
    for n in 0..3 {
        assert!(!helper.auth(&token(ALICE, &format!("5{n}")), "wrong password"));
    }
    let log = helper.stop();
    assert!(log.contains("refused the user name or password"), "{log}");

    let none = Setup::new(&format!("replay_store = \"{}\"\n", engine.url()));
    let (code, _, stderr) = none.run(&["check-config", "--connect"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("requires a password"), "{stderr}");
}

#[test]
fn a_url_with_a_password_is_refused_naming_the_key_to_use() {
    let setup = Setup::new("replay_store = \"redis://:s3cret@127.0.0.1:6379/0\"\n");
    let (code, _, stderr) = setup.run(&["check-config"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("replay_store_password_file"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn local_fallback_accepts_during_an_outage_and_writes_back_after() {
    let mut engine = Engine::start();
    let setup = node(
        &engine,
        PASSWORD,
        "replay_store_fallback = \"local\"\nlog = \"stderr\"\n",
    );
    let mut helper = Helper::start(&setup);
    engine.stop();
    let during = token(ALICE, "61");
    assert!(helper.auth(&during, "engine down, local memory"));
    assert!(!helper.auth(&during, "a replay on this node"));
    engine.restart();
    assert!(engine.keys().is_empty());
    let started = Instant::now();
    let mut n = 0;
    while !helper.auth(&token(ALICE, &format!("62{n}")), "engine back") {
        assert!(started.elapsed() < Duration::from_secs(10));
        n += 1;
    }
    let later = Instant::now();
    while engine.keys().len() < 2 {
        assert!(
            later.elapsed() < Duration::from_secs(10),
            "{:?}",
            engine.keys()
        );
        assert!(helper.auth(&token(ALICE, &format!("63{n}")), "more"));
        n += 1;
    }
    // Another node now refuses the token accepted during the outage.
    let other = node(&engine, PASSWORD, "");
    let mut second = Helper::start(&other);
    assert!(!second.auth(&during, "written back"));
    second.stop();
    let log = helper.stop();
    assert!(log.contains("cluster replay protection degraded"), "{log}");
    assert!(log.contains("cluster replay protection restored"), "{log}");
}
