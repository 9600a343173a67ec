//! Figures of the real binary, as ejabberd and Prosody run it: requests
//! over a pipe, pipelined and one at a time, the replay stores, the socket
//! daemon, start-up and memory, and the helpers it is compared with (an echo
//! helper, a floor helper, and a plain Python helper).
//!
//! Every child runs under a watchdog that kills it at [`DEADLINE`]; a wait
//! on a child then ends, and the bench panics saying so.

use crate::table::{Goal, Row};
use crate::{SECRET, SEED, auth, config_text, median, token};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The bench binary runs again as a comparison helper when this variable
/// names a role: `echo` or `floor`.
const ROLE: &str = "XTA_BENCH_ROLE";

/// The real binary; Cargo builds it, with the bench profile, for benches.
const BINARY: &str = env!("CARGO_BIN_EXE_xmpp-token-auth");

/// How long any child may live before the bench calls it a hang.
const DEADLINE: Duration = Duration::from_secs(60);

/// Requests per pipelined run of the real binary and the floor helper;
/// the figure is timed from the first reply, so start-up is left out.
const PIPELINED: usize = 100_000;
/// Rounds of pipelined runs, each kind once per round (interleaved).
const PIPE_ROUNDS: usize = 5;
/// The Redis engine is asked once per accepted token, one at a time.
const REDIS_REQUESTS: usize = 20_000;
/// Python answers ~30 000 requests a second.
const PYTHON_REQUESTS: usize = 30_000;
/// Ping-pong: rounds, each helper in turn, of this many round trips.
const PING_ROUNDS: usize = 10;
const PING_PER_ROUND: usize = 2_000;
/// Requests through the socket daemon per connection count, in all.
const SOCKET_REQUESTS: usize = 80_000;
const START_UPS: usize = 50;

/// Runs this process as the comparison helper named by [`ROLE`], if any;
/// returns whether it did.
pub fn run_role_if_asked() -> bool {
    let Some(role) = std::env::var_os(ROLE) else {
        return false;
    };
    match role.to_str() {
        Some("echo") => serve_frames(|_| true),
        Some("floor") => {
            let floor = FloorHelper::new();
            serve_frames(|request| floor.check(request, unix_now()))
        }
        _ => panic!("{ROLE}={role:?}: not a role (echo, floor)"),
    }
    true
}

/// Every figure of this module, as rows of the table.
pub fn rows(floor: f64) -> Vec<Row> {
    let mut rows = pipe_rows(floor);
    rows.extend(ping_pong_rows());
    rows.extend(socket_rows());
    rows.extend(start_up_rows());
    rows.push(python_row());
    rows
}

// ----- Requests and replies -----

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Every token of the run has a nonce of its own.
static NONCES: AtomicUsize = AtomicUsize::new(0);

/// `count` valid `auth` requests for alice, at unix time `now`, each with a
/// fresh nonce. A token verifies for at least 30 s after `now`: make them
/// just before use.
fn requests(count: usize, now: u64) -> Vec<Vec<u8>> {
    let first = NONCES.fetch_add(count, Ordering::Relaxed);
    (first..first + count)
        .map(|nonce| auth("alice", &token("alice", nonce, now)))
        .collect()
}

#[derive(Clone, Copy)]
enum Framing {
    /// ejabberd's: 2-byte big-endian length, reply 4 bytes (stdio helpers).
    Ejabberd,
    /// The line protocol (the socket daemon).
    Line,
}

impl Framing {
    fn frame_one(self, request: &[u8]) -> Vec<u8> {
        match self {
            Framing::Ejabberd => [&(request.len() as u16).to_be_bytes()[..], request].concat(),
            Framing::Line => [request, b"\n"].concat(),
        }
    }

    fn frame(self, requests: &[Vec<u8>]) -> Vec<u8> {
        requests.iter().flat_map(|r| self.frame_one(r)).collect()
    }

    /// The reply that accepts.
    fn yes(self) -> &'static [u8] {
        match self {
            Framing::Ejabberd => &[0, 2, 0, 1],
            Framing::Line => b"1\n",
        }
    }

    /// Panics unless `replies` accepts exactly `count` requests.
    fn check(self, what: &str, replies: &[u8], count: usize) {
        let yes = self.yes();
        let accepted = replies.chunks(yes.len()).filter(|r| r == &yes).count();
        assert_eq!(
            (replies.len(), accepted),
            (yes.len() * count, count),
            "{what}: (reply bytes, accepted) for {count} valid tokens"
        );
    }
}

// ----- Children -----

/// A temporary folder with a configuration in it; removed when dropped.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    /// The bench's keys, `log = "none"`, plus `extra` lines.
    fn new(extra: &str) -> Setup {
        let dir = tempfile::Builder::new()
            .prefix("xta-bench")
            .tempdir()
            .unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, config_text(&format!("log = \"none\"\n{extra}"))).unwrap();
        std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        Setup { dir, config }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The real binary on this configuration, talking over pipes.
    fn binary(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BINARY);
        command.arg("--config").arg(&self.config).args(args);
        piped(command)
    }
}

fn piped(mut command: Command) -> Command {
    command.stdin(Stdio::piped()).stdout(Stdio::piped());
    command
}

/// This bench binary again, as the helper `role`.
fn role(role: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.env(ROLE, role);
    piped(command)
}

/// What came back from a child fed its whole input at once.
struct Collected {
    replies: Vec<u8>,
    /// When the first replies arrived, and how many bytes of them.
    first: Instant,
    first_bytes: usize,
    /// When the last reply arrived.
    last: Instant,
}

impl Collected {
    /// Nanoseconds per request answered after the first reply arrived:
    /// start-up and exit are left out.
    fn ns_per_request(&self, what: &str, reply_len: usize) -> f64 {
        let after = (self.replies.len() - self.first_bytes) / reply_len;
        assert!(after > 0, "{what}: every reply came in one read");
        (self.last - self.first).as_nanos() as f64 / after as f64
    }
}

/// A child under a watchdog that kills it at [`DEADLINE`]; killed, if still
/// running, when dropped.
struct Running {
    what: String,
    child: Arc<Mutex<Child>>,
    pid: u32,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    fired: Arc<AtomicBool>,
    /// Dropping the sender disarms the watchdog.
    watchdog: Option<(mpsc::Sender<()>, JoinHandle<()>)>,
}

impl Running {
    fn spawn(what: &str, command: Command) -> Running {
        Running::try_spawn(what, command).unwrap_or_else(|e| panic!("cannot start {what}: {e}"))
    }

    fn try_spawn(what: &str, mut command: Command) -> io::Result<Running> {
        let mut child = command.spawn()?;
        let (stdin, stdout, pid) = (child.stdin.take(), child.stdout.take(), child.id());
        let child = Arc::new(Mutex::new(child));
        let fired = Arc::new(AtomicBool::new(false));
        let (disarm, armed) = mpsc::channel::<()>();
        let watchdog = {
            let (child, fired) = (Arc::clone(&child), Arc::clone(&fired));
            std::thread::spawn(move || {
                if let Err(mpsc::RecvTimeoutError::Timeout) = armed.recv_timeout(DEADLINE) {
                    fired.store(true, Ordering::SeqCst);
                    let _ = child.lock().unwrap().kill();
                }
            })
        };
        Ok(Running {
            what: what.to_string(),
            child,
            pid,
            stdin,
            stdout,
            fired,
            watchdog: Some((disarm, watchdog)),
        })
    }

    /// Panics saying what went wrong with the child, or that it hung.
    fn fail(&self, what: impl std::fmt::Display) -> ! {
        if self.fired.load(Ordering::SeqCst) {
            panic!(
                "{}: {what}: it hung and was killed after {DEADLINE:?}",
                self.what
            );
        }
        let status = self.child.lock().unwrap().try_wait();
        panic!("{}: {what} (exit status: {status:?})", self.what);
    }

    /// Waits until `ready` says the child serves, for at most 10 s.
    fn await_ready(&self, ready: impl Fn() -> bool) {
        let started = Instant::now();
        while !ready() {
            if self.child.lock().unwrap().try_wait().unwrap().is_some() {
                self.fail("ended before serving");
            }
            if started.elapsed() > Duration::from_secs(10) {
                self.fail("not serving after 10 s");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Writes one request and reads its reply, which must be `yes`.
    fn round_trip(&mut self, request: &[u8], yes: &[u8]) {
        let mut reply = [0u8; 4];
        let reply = &mut reply[..yes.len()];
        let result = self.stdin.as_mut().unwrap().write_all(request);
        let result = result.and_then(|()| self.stdout.as_mut().unwrap().read_exact(reply));
        if let Err(e) = result {
            self.fail(format!("no reply: {e}"));
        }
        if reply != yes {
            self.fail(format!("replied {reply:?} to a valid token"));
        }
    }

    /// Writes `input` from a thread of its own, then ends the child's
    /// input, while reading every reply until the child ends them.
    fn feed_and_collect(&mut self, input: Vec<u8>) -> Collected {
        let mut stdin = self.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let stdout = self.stdout.as_mut().unwrap();
        let mut replies = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        let mut first = None;
        let mut last = Instant::now();
        loop {
            match stdout.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => {
                    last = Instant::now();
                    first.get_or_insert((last, read));
                    replies.extend_from_slice(&buffer[..read]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.fail(format!("reading its replies: {e}")),
            }
        }
        if let Err(e) = writer.join().unwrap() {
            self.fail(format!("writing its requests: {e}"));
        }
        let Some((first, first_bytes)) = first else {
            self.fail("no reply at all")
        };
        Collected {
            replies,
            first,
            first_bytes,
            last,
        }
    }

    /// Ends the child's input and waits for it to exit successfully.
    fn finish(mut self) {
        self.stdin = None;
        let status = self.wait();
        if !status.success() {
            self.fail(format!("exited with {status}"));
        }
    }

    fn wait(&self) -> ExitStatus {
        loop {
            if let Some(status) = self.child.lock().unwrap().try_wait().unwrap() {
                return status;
            }
            if self.fired.load(Ordering::SeqCst) {
                self.fail("still running");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Its resident set in KiB, from /proc.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .unwrap_or_else(|e| self.fail(format!("cannot read its /proc status: {e}")));
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| self.fail("no VmRSS in its /proc status"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some((disarm, watchdog)) = self.watchdog.take() {
            drop(disarm);
            let _ = watchdog.join();
        }
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Feeds `input` to a fresh child and returns its replies, checked to
/// accept all `count` requests.
fn run_pipelined(what: &str, command: Command, input: &[u8], count: usize) -> Collected {
    let mut child = Running::spawn(what, command);
    let collected = child.feed_and_collect(input.to_vec());
    child.finish();
    Framing::Ejabberd.check(what, &collected.replies, count);
    collected
}

// ----- Pipelined over a pipe -----

fn pipe_rows(floor: f64) -> Vec<Row> {
    let memory = Setup::new("");
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..PIPE_ROUNDS {
        let input = Framing::Ejabberd.frame(&requests(PIPELINED, unix_now()));
        // A fresh store each round: the same tokens go to every process.
        let file = Setup::new("replay_store = \"replay\"\n");
        let runs = [
            ("real binary, in-memory replay", memory.binary(&[])),
            ("real binary, file store", file.binary(&[])),
            ("floor helper", role("floor")),
        ];
        for (sample, (what, command)) in samples.iter_mut().zip(runs) {
            let collected = run_pipelined(what, command, &input, PIPELINED);
            sample.push(collected.ns_per_request(what, 4));
        }
    }
    let [in_memory, file, floor_helper] = samples.map(median);
    let mut rows = vec![
        Row::time(
            "pipe: valid tokens, pipelined, log none",
            in_memory,
            Goal::new("<= 2 x floor", in_memory <= 2.0 * floor),
        ),
        Row::time(
            "pipe: same, file replay_store",
            file,
            Goal::new(
                format!("{:.2} x in-memory, <= 1.5", file / in_memory),
                file <= 1.5 * in_memory,
            ),
        ),
    ];
    // Once with the helper and the engine on one CPU (what the two
    // programs cost), once where the scheduler puts them (on this virtual
    // machine a wake-up across CPUs costs tens of microseconds).
    rows.extend(on_one_cpu(|| redis_rows(in_memory, file, "one CPU")));
    rows.extend(redis_rows(in_memory, file, "as scheduled"));
    rows.push(Row::time(
        "pipe: floor helper (framing + floor HMACs)",
        floor_helper,
        None,
    ));
    rows
}

/// A redis-server of its own on a free loopback port, in a temporary
/// folder, no persistence; killed and removed when dropped.
struct Redis {
    _dir: tempfile::TempDir,
    _server: Running,
    port: u16,
}

impl Redis {
    /// None when there is no redis-server to run.
    fn start() -> Option<Redis> {
        let dir = tempfile::Builder::new()
            .prefix("xta-bench-redis")
            .tempdir()
            .unwrap();
        let port = TcpListener::bind(("127.0.0.1", 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let server = match Running::try_spawn("redis-server", command) {
            Ok(server) => server,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        server.await_ready(|| Redis::answers(port));
        Some(Redis {
            _dir: dir,
            _server: server,
            port,
        })
    }

    fn answers(port: u16) -> bool {
        let ping = || -> io::Result<bool> {
            let mut stream = TcpStream::connect(("127.0.0.1", port))?;
            stream.set_read_timeout(Some(Duration::from_secs(1)))?;
            stream.write_all(b"PING\r\n")?;
            let mut reply = [0u8; 7];
            stream.read_exact(&mut reply)?;
            Ok(&reply == b"+PONG\r\n")
        };
        ping().unwrap_or(false)
    }
}

/// The cost per accepted token with a Redis engine on loopback (asked one
/// token at a time), and as a multiple of the in-memory and file figures.
fn redis_rows(in_memory: f64, file: f64, placement: &str) -> Vec<Row> {
    let Some(redis) = Redis::start() else {
        return vec![Row::note(
            "pipe, Redis replay_store: skipped, no redis-server on PATH",
        )];
    };
    let setup = Setup::new(&format!(
        "replay_store = \"redis://127.0.0.1:{}/0\"\n",
        redis.port
    ));
    let input = Framing::Ejabberd.frame(&requests(REDIS_REQUESTS, unix_now()));
    let what = "real binary, Redis store";
    let ns = run_pipelined(what, setup.binary(&[]), &input, REDIS_REQUESTS).ns_per_request(what, 4);
    drop(redis);
    vec![
        Row::time(
            format!("pipe: same, Redis on loopback, {placement}"),
            ns,
            None,
        ),
        Row::note(format!(
            "  Redis, {placement}, per accepted token (report only): {:.1} x in-memory, {:.1} x file store",
            ns / in_memory,
            ns / file
        )),
    ]
}

// ----- Ping-pong -----

/// Runs `f` with this thread, and so the children it starts, on one CPU:
/// a round trip then measures the two programs and the kernel's pipe, not
/// where the scheduler happened to wake each side (across CPUs of a
/// virtual machine, a wake-up alone takes tens of microseconds and swamps
/// what is measured).
fn on_one_cpu<T>(f: impl FnOnce() -> T) -> T {
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: an all-zero cpu_set_t is the empty set, a valid value.
    let mut allowed: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `allowed` is a cpu_set_t of `size` bytes, written by the call.
    if unsafe { libc::sched_getaffinity(0, size, &mut allowed) } != 0 {
        return f();
    }
    // SAFETY: as above.
    let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let Some(cpu) = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, within the set.
        .find(|&cpu| unsafe { libc::CPU_ISSET(cpu, &allowed) })
    else {
        return f();
    };
    // SAFETY: `cpu` is below CPU_SETSIZE; both sets are valid cpu_set_t of
    // `size` bytes, only read by the calls.
    unsafe {
        libc::CPU_SET(cpu, &mut one);
        libc::sched_setaffinity(0, size, &one);
    }
    let result = f();
    // SAFETY: as above.
    unsafe { libc::sched_setaffinity(0, size, &allowed) };
    result
}

/// One request, wait for its reply, the next: the real binary, a helper
/// that only echoes true, and the floor helper, all on one CPU with the
/// bench (the goal), then where the scheduler puts them (for scale).
fn ping_pong_rows() -> Vec<Row> {
    let [real, echo, floor_helper] = on_one_cpu(ping_pong);
    let ratio = real / floor_helper;
    let [real_anywhere, _, floor_anywhere] = ping_pong();
    vec![
        Row::time(
            "ping-pong, one CPU: real binary, per round trip",
            real,
            Goal::new(format!("{ratio:.2} x floor helper's, <= 1"), ratio <= 1.0),
        ),
        Row::time("ping-pong, one CPU: echo helper", echo, None),
        Row::time("ping-pong, one CPU: floor helper", floor_helper, None),
        Row::time("ping-pong, as scheduled: real binary", real_anywhere, None),
        Row::time(
            "ping-pong, as scheduled: floor helper",
            floor_anywhere,
            None,
        ),
        Row::note(format!(
            "  as scheduled (report only): {:.2} x the floor helper's; wake-ups across CPUs dominate",
            real_anywhere / floor_anywhere
        )),
    ]
}

/// Median round trips of the real binary, the echo helper and the floor
/// helper, in interleaved rounds.
fn ping_pong() -> [f64; 3] {
    let setup = Setup::new("");
    let requests = requests(PING_ROUNDS * PING_PER_ROUND + 1, unix_now());
    let framed: Vec<Vec<u8>> = requests
        .iter()
        .map(|r| Framing::Ejabberd.frame_one(r))
        .collect();
    let yes = Framing::Ejabberd.yes();
    let mut helpers = [
        Running::spawn("real binary, ping-pong", setup.binary(&[])),
        Running::spawn("echo helper, ping-pong", role("echo")),
        Running::spawn("floor helper, ping-pong", role("floor")),
    ];
    // Started and warm before any timing.
    for helper in &mut helpers {
        helper.round_trip(&framed[0], yes);
    }
    let mut samples = [Vec::new(), Vec::new(), Vec::new()];
    for round in framed[1..].chunks(PING_PER_ROUND) {
        for (helper, sample) in helpers.iter_mut().zip(&mut samples) {
            let start = Instant::now();
            for request in round {
                helper.round_trip(request, yes);
            }
            sample.push(start.elapsed().as_nanos() as f64 / round.len() as f64);
        }
    }
    for helper in helpers {
        helper.finish();
    }
    samples.map(median)
}

// ----- The socket daemon -----

/// The group of this process, for the daemon's `socket_group`.
fn own_group() -> String {
    let mut command = Command::new("id");
    command.arg("-gn");
    let mut id = Running::spawn("id -gn", piped(command));
    let out = id.feed_and_collect(Vec::new());
    id.finish();
    String::from_utf8(out.replies).unwrap().trim().to_string()
}

/// Aggregate cost per request with 1, 2 and 8 connections, each pipelining
/// its share of the requests; a fresh daemon for each count.
fn socket_rows() -> Vec<Row> {
    let group = own_group();
    let mut rows = Vec::new();
    let mut per_request = Vec::new();
    for connections in [1, 2, 8] {
        let setup = Setup::new(&format!("socket_group = \"{group}\"\n"));
        let socket = setup.path("auth.sock");
        let mut command = setup.binary(&["listen", "--socket"]);
        command.arg(&socket);
        let daemon = Running::spawn("socket daemon", command);
        daemon.await_ready(|| UnixStream::connect(&socket).is_ok());
        let requests = requests(SOCKET_REQUESTS, unix_now());
        let barrier = Arc::new(Barrier::new(connections + 1));
        let threads: Vec<_> = requests
            .chunks(SOCKET_REQUESTS / connections)
            .map(|share| {
                let (count, input) = (share.len(), Framing::Line.frame(share));
                let mut stream = UnixStream::connect(&socket).unwrap();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || -> io::Result<(usize, Vec<u8>)> {
                    barrier.wait();
                    let mut writing = stream.try_clone()?;
                    let writer = std::thread::spawn(move || writing.write_all(&input));
                    let mut replies = vec![0u8; Framing::Line.yes().len() * count];
                    stream.read_exact(&mut replies)?;
                    writer.join().unwrap()?;
                    Ok((count, replies))
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for thread in threads {
            match thread.join().unwrap() {
                Ok((count, replies)) => Framing::Line.check("socket daemon", &replies, count),
                Err(e) => daemon.fail(format!("a connection failed: {e}")),
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / SOCKET_REQUESTS as f64;
        drop(daemon);
        per_request.push(ns);
        let plural = if connections == 1 { "" } else { "s" };
        rows.push(Row::time(
            format!("socket: {connections} connection{plural}, pipelined, aggregate"),
            ns,
            None,
        ));
    }
    rows.push(Row::note(format!(
        "  socket daemon scaling (report only): 2 connections {:.2} x, 8 connections {:.2} x the throughput of 1",
        per_request[0] / per_request[1],
        per_request[0] / per_request[2]
    )));
    rows
}

// ----- Start-up and memory -----

/// Spawn to first reply, and the resident set right after it.
fn start_up_rows() -> Vec<Row> {
    let setup = Setup::new("");
    let requests = requests(START_UPS, unix_now());
    let mut times = Vec::new();
    let mut rss = Vec::new();
    for request in &requests {
        let request = Framing::Ejabberd.frame_one(request);
        let start = Instant::now();
        let mut helper = Running::spawn("real binary, start-up", setup.binary(&[]));
        helper.round_trip(&request, Framing::Ejabberd.yes());
        times.push(start.elapsed().as_secs_f64() * 1e3);
        rss.push(helper.rss_kib() as f64);
        helper.finish();
    }
    let ms = median(times);
    let mib = median(rss) / 1024.0;
    vec![
        Row::figure(
            "start-up to first reply (median)",
            format!("{ms:.2} ms"),
            Goal::new("<= 5 ms", ms <= 5.0),
        ),
        Row::figure(
            "RSS serving, empty replay memory (median)",
            format!("{mib:.2} MiB"),
            Goal::new("<= 4 MiB", mib <= 4.0),
        ),
    ]
}

// ----- What users run today -----

fn python_row() -> Row {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/benches/speed/python_helper.py"
    );
    let mut command = piped(Command::new("python3"));
    command
        .arg(script)
        .env("TOKEN_SECRET", SECRET)
        .env("OTP_SEED", SEED);
    let what = "Python helper";
    let mut helper = match Running::try_spawn(what, command) {
        Ok(helper) => helper,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Row::note("python helper: skipped, no python3 on PATH");
        }
        Err(e) => panic!("cannot start python3: {e}"),
    };
    let input = Framing::Ejabberd.frame(&requests(PYTHON_REQUESTS, unix_now()));
    let collected = helper.feed_and_collect(input);
    helper.finish();
    Framing::Ejabberd.check(what, &collected.replies, PYTHON_REQUESTS);
    Row::time(
        "python helper (users run today), pipelined",
        collected.ns_per_request(what, 4),
        None,
    )
}

// ----- The comparison helpers (this binary, re-executed) -----

/// Answers ejabberd-framed requests on stdin with `answer`, each batch read
/// together in one write, until the input ends.
fn serve_frames(mut answer: impl FnMut(&[u8]) -> bool) {
    let own = |fd: std::os::fd::BorrowedFd| std::fs::File::from(fd.try_clone_to_owned().unwrap());
    let mut input = own(io::stdin().as_fd());
    let mut output = own(io::stdout().as_fd());
    // Room for a whole request of the largest length after any leftover.
    let mut buffer = vec![0u8; 256 * 1024];
    let (mut start, mut end) = (0, 0);
    let mut replies = Vec::with_capacity(64 * 1024);
    loop {
        buffer.copy_within(start..end, 0);
        (start, end) = (0, end - start);
        match input.read(&mut buffer[end..]) {
            Ok(0) => return,
            Ok(read) => end += read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("{ROLE}: reading: {e}"),
        }
        while end - start >= 2 {
            let length = u16::from_be_bytes([buffer[start], buffer[start + 1]]) as usize;
            if end - start < 2 + length {
                break;
            }
            let yes = answer(&buffer[start + 2..start + 2 + length]);
            replies.extend_from_slice(&[0, 2, 0, u8::from(yes)]);
            start += 2 + length;
        }
        if let Err(e) = output.write_all(&replies) {
            panic!("{ROLE}: writing: {e}");
        }
        replies.clear();
    }
}

/// The floor as a helper: a default token's HMACs (1 HMAC-SHA256 over the
/// signed text, one HMAC-SHA1 per step of the window), key states prepared
/// once, the results compared; no replay memory.
struct FloorHelper {
    signing: hmac::Hmac<sha2::Sha256>,
    totp: hmac::Hmac<totp_lite::Sha1>,
}

impl FloorHelper {
    fn new() -> FloorHelper {
        use hmac::Mac;
        let seed = data_encoding::BASE32_NOPAD.decode(SEED.as_bytes()).unwrap();
        FloorHelper {
            signing: hmac::Hmac::new_from_slice(SECRET.as_bytes()).unwrap(),
            totp: hmac::Hmac::new_from_slice(&seed).unwrap(),
        }
    }

    /// Whether `request` is `auth:USER:SERVER:TOKEN` with a token that
    /// verifies at `now` (8-digit OTP, 30 s steps, window 1, 32-digit nonce).
    fn check(&self, request: &[u8], now: u64) -> bool {
        use hmac::Mac;
        let mut fields = request.splitn(4, |&b| b == b':');
        let (Some(b"auth"), Some(user), Some(server), Some(password)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        let Some((digits, signature)) = password.split_at_checked(40) else {
            return false;
        };
        let Some(signature) = signature.strip_prefix(b" ") else {
            return false;
        };
        if signature.len() != 44 {
            return false;
        }
        let mut tag = [0u8; 33];
        let tag = match data_encoding::BASE64.decode_mut(signature, &mut tag) {
            Ok(32) => &tag[..32],
            _ => return false,
        };
        let mut mac = self.signing.clone();
        mac.update(digits);
        mac.update(user);
        mac.update(b"@");
        mac.update(server);
        let signed = mac.finalize().into_bytes()[..] == *tag;
        let Some(otp) = std::str::from_utf8(&digits[..8])
            .ok()
            .and_then(|d| d.parse::<u32>().ok())
        else {
            return false;
        };
        let mut in_window = false;
        for step in now / 30 - 1..=now / 30 + 1 {
            let mut mac = self.totp.clone();
            mac.update(&step.to_be_bytes());
            let hash = mac.finalize().into_bytes();
            let offset = usize::from(hash[19] & 0x0f);
            let code = u32::from_be_bytes(hash[offset..offset + 4].try_into().unwrap());
            in_window |= (code & 0x7fff_ffff) % 100_000_000 == otp;
        }
        signed & in_window
    }
}
