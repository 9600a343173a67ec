//! The real binary on a pseudo-terminal, as Prosody's mod_auth_external_insecure
//! runs it through lpty: stdin, stdout and stderr all the pty slave, the pty
//! the helper's controlling terminal, and the terminal in cooked mode with
//! only echo turned off.

mod common;

use common::*;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

struct Pty {
    child: Child,
    master: File,
}

fn termios(fd: &File) -> libc::termios {
    // SAFETY: tcgetattr fills the zeroed termios; the fd is open.
    unsafe {
        let mut mode: libc::termios = std::mem::zeroed();
        assert_eq!(libc::tcgetattr(fd.as_raw_fd(), &mut mode), 0);
        mode
    }
}

fn set_termios(fd: &File, mode: &libc::termios) {
    // SAFETY: setting the terminal mode through the master is allowed on Linux.
    let rc = unsafe { libc::tcsetattr(fd.as_raw_fd(), libc::TCSANOW, mode) };
    assert_eq!(rc, 0);
}

/// How the test host starts the helper.
struct Start<'a> {
    /// Descriptors of ours open in the helper as well (and the pty master
    /// always), as lpty leaves Prosody's.
    leaked: &'a [RawFd],
    /// Echo turned off as lpty does, or left on.
    echo_off: bool,
    /// A request written before the helper runs, as Prosody writes its first
    /// one right after fork() returns, racing with lpty's child: with `true`
    /// while echo is still on (the host then reads the echo back, as Prosody
    /// does, taking its own request for the reply), with `false` after the
    /// child turned echo off.
    early: Option<(&'a [u8], bool)>,
    /// The helper's syslog goes to this socket instead of /dev/log.
    syslog: Option<&'a Syslog>,
    /// The kernel refuses the helper every change of terminal mode and every
    /// way of closing inherited descriptors (needs `syslog`).
    hobbled: bool,
    /// The helper is expected to exit at start: do not wait for it to read.
    exits_at_start: bool,
}

impl Default for Start<'_> {
    fn default() -> Self {
        Start {
            leaked: &[],
            echo_off: true,
            early: None,
            syslog: None,
            hobbled: false,
            exits_at_start: false,
        }
    }
}

impl Pty {
    /// The helper on a terminal set up as lpty does: echo off, the rest of
    /// the kernel's cooked defaults left on.
    fn start(setup: &Setup) -> Pty {
        Pty::try_start(setup, Start::default()).unwrap()
    }

    fn try_start(setup: &Setup, start: Start<'_>) -> std::io::Result<Pty> {
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty writes two descriptors; the null arguments ask for
        // the default name, settings and size.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0);
        // SAFETY: openpty returned these descriptors to us alone.
        let (mut master, slave) =
            unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut mode = termios(&master);
        // Prosody's first request written while echo is still on: the
        // terminal sends it back, and Prosody takes that for the reply.
        if let Some((request, true)) = start.early {
            master.write_all(request).unwrap();
            // The echo, through the kernel's default output processing.
            let mut echo = request.to_vec();
            echo.pop();
            echo.extend_from_slice(b"\r\n");
            let mut got = Vec::new();
            let deadline = Instant::now() + DEADLINE;
            while got.len() < echo.len() && Instant::now() < deadline {
                got.extend(read_for(&mut master, Duration::from_millis(100)));
            }
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&echo),
                "the host reads its request back as the reply"
            );
        }
        if start.echo_off {
            mode.c_lflag &= !libc::ECHO; // what lpty changes, and all it changes
        }
        set_termios(&master, &mode);
        // Written after lpty's child turned echo off, before the helper reads.
        if let Some((request, false)) = start.early {
            master.write_all(request).unwrap();
            assert!(
                read_for(&mut master, Duration::from_millis(100)).is_empty(),
                "nothing is echoed"
            );
        }

        let mut command = setup.command(&[]);
        command
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        let mut leaked = start.leaked.to_vec();
        leaked.push(master.as_raw_fd());
        let isolation = start
            .syslog
            .map(|syslog| Isolation::new(syslog, start.hobbled));
        assert!(
            isolation.is_some() || !start.hobbled,
            "hobbled needs syslog"
        );
        // SAFETY: setsid, ioctl and dup2 are async-signal-safe, as pre_exec
        // requires, `leaked` was allocated before the fork, and so was
        // everything `Isolation::enter` uses.
        unsafe {
            command.pre_exec(move || {
                // Like lpty: a new session whose controlling terminal is the pty,
                // so that a signal character would really signal the helper.
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // Copies without close-on-exec, from descriptor 20 up.
                for (i, &fd) in leaked.iter().enumerate() {
                    if libc::dup2(fd, 20 + i as libc::c_int) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                match &isolation {
                    Some(isolation) => isolation.enter(),
                    None => Ok(()),
                }
            });
        }
        let child = command.spawn()?;
        let mut pty = Pty { child, master };
        if start.exits_at_start {
            return Ok(pty);
        }
        pty.wait_until_reading();
        if !start.hobbled {
            assert!(pty.is_raw(), "helper never put the terminal in raw mode");
        }
        Ok(pty)
    }

    /// Waits until the helper sleeps in the system call that waits for its
    /// first request: it has started, and whatever it does to the terminal
    /// and to input that was waiting there is done. (A real host does not
    /// wait: requests that meet a helper still starting are not answered.)
    fn wait_until_reading(&mut self) {
        let proc = format!("/proc/{}", self.child.id());
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the helper exited while starting: {status}");
            }
            // "running", or the number and arguments of the blocking call.
            let waiting = match std::fs::read_to_string(format!("{proc}/syscall")) {
                Ok(call) => {
                    let mut fields = call.split_whitespace();
                    let number = fields.next().and_then(|n| n.parse::<libc::c_long>().ok());
                    match number {
                        Some(libc::SYS_read) => fields.next() == Some("0x0"),
                        Some(libc::SYS_ppoll) => true,
                        #[cfg(target_arch = "x86_64")]
                        Some(libc::SYS_poll) => true,
                        _ => false,
                    }
                }
                // Where ptrace is restricted: asleep, at least.
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    let stat = std::fs::read_to_string(format!("{proc}/stat")).unwrap();
                    stat.rsplit_once(") ")
                        .is_some_and(|(_, rest)| rest.starts_with('S'))
                }
                Err(_) => false,
            };
            if waiting {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the helper never waited for input within {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn is_raw(&self) -> bool {
        termios(&self.master).c_lflag & (libc::ICANON | libc::ECHO | libc::ISIG) == 0
    }

    /// Reads `len` bytes (or what has come by the deadline, or before the
    /// helper exited), then whatever follows within 200 ms: all the terminal
    /// had to say.
    fn read_answer(&mut self, len: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let deadline = Instant::now() + DEADLINE;
        while got.len() < len && Instant::now() < deadline {
            let more = self.read_for(Duration::from_millis(100));
            if more.is_empty() && self.child.try_wait().unwrap().is_some() {
                break; // nothing more will come
            }
            got.extend(more);
        }
        got.extend(self.read_for(Duration::from_millis(200)));
        got
    }

    /// Reads exactly `expected.len()` bytes, then checks nothing else follows.
    #[track_caller]
    fn expect(&mut self, what: &str, expected: &[u8]) {
        let got = self.read_answer(expected.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "{what}"
        );
    }

    /// Sends the step's request and checks that the reply, and nothing but
    /// the reply, is its verdict, and that the helper is still there.
    #[track_caller]
    fn ask(&mut self, step: &Expect) {
        self.send(&step.request);
        let got = match &self.read_answer(2)[..] {
            b"1\n" => true,
            b"0\n" => false,
            other => panic!(
                "{}: expected {}, got {:?}, which is no reply",
                step.what,
                verdict_name(step.verdict),
                String::from_utf8_lossy(other)
            ),
        };
        assert!(
            got == step.verdict,
            "{}: expected {}, got {}",
            step.what,
            verdict_name(step.verdict),
            verdict_name(got)
        );
        self.assert_alive(&step.what);
    }

    /// Each step in turn, as Prosody asks: a request, then its reply.
    #[track_caller]
    fn expect_verdicts(&mut self, story: &[Expect]) {
        assert!(!story.is_empty(), "a story with nothing to check");
        for step in story {
            self.ask(step);
        }
    }

    fn read_for(&mut self, timeout: Duration) -> Vec<u8> {
        read_for(&mut self.master, timeout)
    }

    fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    /// SIGTERM, as an init system stopping Prosody's process group would.
    fn terminate(self) {
        let Pty { mut child, .. } = self;
        // SAFETY: signalling our own child.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0);
        let status = wait_with_deadline(&mut child, DEADLINE, "the exit on SIGTERM");
        assert_eq!(status.code(), Some(0), "{status:?}");
    }

    #[track_caller]
    fn assert_alive(&mut self, after: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{after}: the helper died: {status}");
        }
    }

    /// Prosody going away: the master closes, the helper must exit 0.
    fn hang_up(self) {
        let Pty { mut child, master } = self;
        drop(master);
        let status = wait_with_deadline(&mut child, DEADLINE, "the exit on hang-up");
        assert_eq!(status.code(), Some(0), "{status:?}");
    }
}

/// A syslog daemon of our own: a datagram socket named `log` in a folder
/// that the helper sees as /dev (see `Isolation`).
struct Syslog {
    dir: tempfile::TempDir,
    socket: UnixDatagram,
}

impl Syslog {
    fn new() -> Syslog {
        let dir = tempfile::tempdir().unwrap();
        let socket = UnixDatagram::bind(dir.path().join("log")).unwrap();
        Syslog { dir, socket }
    }

    /// The messages received until one contains `last` (or the deadline has
    /// passed), and any that follow within 200 ms.
    fn until(&self, last: &str) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        let deadline = Instant::now() + DEADLINE;
        let mut stop = deadline;
        while let Some(left) = stop.checked_duration_since(Instant::now()) {
            self.socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut buffer = [0u8; 4096];
            let Ok(n) = self.socket.recv(&mut buffer) else {
                break;
            };
            let line = String::from_utf8_lossy(&buffer[..n]).into_owned();
            if line.contains(last) && stop == deadline {
                stop = Instant::now() + Duration::from_millis(200);
            }
            lines.push(line);
        }
        lines
    }
}

/// What a child does before exec to log to a `Syslog` and, `hobbled`, to
/// find every way of changing the terminal's mode and of closing inherited
/// descriptors refused: a private mount namespace (in a user namespace of
/// its own unless we are root) with the syslog folder mounted over /dev (and
/// over /proc), and a seccomp filter.
struct Isolation {
    dir: CString,
    root: bool,
    filter: Option<Vec<libc::sock_filter>>,
}

impl Isolation {
    fn new(syslog: &Syslog, hobbled: bool) -> Isolation {
        let dir = CString::new(syslog.dir.path().as_os_str().as_bytes()).unwrap();
        // SAFETY: geteuid cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        Isolation {
            dir,
            root,
            filter: hobbled.then(refuse_raw_mode_and_close_range),
        }
    }

    /// # Safety
    /// Only in a child between fork and exec: it changes the whole process.
    unsafe fn enter(&self) -> std::io::Result<()> {
        let check = |rc: libc::c_int| {
            if rc < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        let null = std::ptr::null();
        // SAFETY: system calls on valid C strings and a filter program that
        // outlives the call; the caller is a child about to exec.
        unsafe {
            let flags = if self.root {
                libc::CLONE_NEWNS
            } else {
                libc::CLONE_NEWNS | libc::CLONE_NEWUSER
            };
            check(libc::unshare(flags))?;
            let private = libc::MS_REC | libc::MS_PRIVATE;
            check(libc::mount(null, c"/".as_ptr(), null, private, null as _))?;
            let dir = self.dir.as_ptr();
            check(libc::mount(
                dir,
                c"/dev".as_ptr(),
                null,
                libc::MS_BIND,
                null as _,
            ))?;
            if let Some(filter) = &self.filter {
                // No /proc/self/fd to list descriptors from.
                check(libc::mount(
                    dir,
                    c"/proc".as_ptr(),
                    null,
                    libc::MS_BIND,
                    null as _,
                ))?;
                check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
                let program = libc::sock_fprog {
                    len: filter.len() as u16,
                    filter: filter.as_ptr().cast_mut(),
                };
                check(libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog,
                ))?;
            }
        }
        Ok(())
    }
}

/// A seccomp program: close_range fails with ENOSYS (as on kernels before
/// 5.9), every ioctl that sets a terminal's mode with EPERM, all else runs.
fn refuse_raw_mode_and_close_range() -> Vec<libc::sock_filter> {
    use libc::{
        BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W, SECCOMP_RET_ALLOW,
        SECCOMP_RET_ERRNO,
    };
    let statement = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump_if = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (BPF_JMP | BPF_JEQ | BPF_K) as u16,
        jt,
        jf,
        k,
    };
    // The low half of the second argument (the ioctl request).
    let request = if cfg!(target_endian = "little") {
        24
    } else {
        28
    };
    let setters = [
        libc::TCSETS,
        libc::TCSETSW,
        libc::TCSETSF,
        libc::TCSETS2,
        libc::TCSETSW2,
        libc::TCSETSF2,
    ];
    let n = setters.len() as u8;
    let mut program = vec![
        statement(BPF_LD | BPF_W | BPF_ABS, 0), // the system call's number
        jump_if(libc::SYS_close_range as u32, 0, 1),
        statement(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        jump_if(libc::SYS_ioctl as u32, 1, 0),
        statement(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        statement(BPF_LD | BPF_W | BPF_ABS, request),
    ];
    for (i, setter) in setters.iter().enumerate() {
        program.push(jump_if(*setter as u32, n - i as u8, 0));
    }
    program.push(statement(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    program.push(statement(
        BPF_RET | BPF_K,
        SECCOMP_RET_ERRNO | libc::EPERM as u32,
    ));
    program
}

fn read_for(master: &mut File, timeout: Duration) -> Vec<u8> {
    let mut poll = libc::pollfd {
        fd: master.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as i32) };
    if ready <= 0 {
        return Vec::new();
    }
    let mut buffer = [0u8; 4096];
    match master.read(&mut buffer) {
        Ok(n) => buffer[..n].to_vec(),
        Err(_) => Vec::new(), // EIO once the helper has gone
    }
}

const ALICE: &str = "alice@example.org";
const ISUSER: &[u8] = b"isuser:alice:example.org\n";

fn line(jid: &str, password: &[u8]) -> Vec<u8> {
    let (user, server) = jid.split_once('@').unwrap();
    let mut out = format!("auth:{user}:{server}:").into_bytes();
    out.extend_from_slice(password);
    out.push(b'\n');
    out
}

#[test]
fn logins_over_a_cooked_pseudo_terminal_get_exact_replies() {
    // A world-readable config and log = "stderr" would both write to stderr,
    // which here is the terminal Prosody reads replies from.
    let setup = Setup::new("log = \"stderr\"\n");
    std::fs::set_permissions(
        &setup.config,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let mut pty = Pty::start(&setup);
    let token = token(ALICE, "4242");
    pty.expect_verdicts(&[
        accepted(
            "alice logs in with a fresh token",
            line(ALICE, token.as_bytes()),
        ),
        refused(
            "the same token again: a replay",
            line(ALICE, token.as_bytes()),
        ),
    ]);
    // Each of these would, in cooked mode, kill or freeze the helper, end the
    // line early, or split one request into two; each gets one reply, false.
    pty.expect_verdicts(&[
        refused(
            "a password with ^C (SIGINT) inside",
            line(ALICE, b"pa\x03ss"),
        ),
        refused(
            "a password with \\r (a line end) inside",
            line(ALICE, b"pa\rss"),
        ),
        refused(
            "a second request after a \\r",
            line(ALICE, b"a\rauth:alice:example.org:x"),
        ),
        refused("^\\ (SIGQUIT)", line(ALICE, b"\x1c")),
        refused("^Z (SIGTSTP)", line(ALICE, b"\x1a")),
        refused("^D (end of file)", line(ALICE, b"\x04")),
        refused("^S (stop output)", line(ALICE, b"\x13")),
        refused("erase, kill and word-erase", line(ALICE, b"\x7f\x15\x17")),
        refused("a password in UTF-8", line(ALICE, "pässwörd€".as_bytes())),
    ]);
    let fresh = common::token(ALICE, "4343");
    pty.expect_verdicts(&[
        accepted(
            "a fresh token after all that",
            line(ALICE, fresh.as_bytes()),
        ),
        accepted(
            "isuser alice, the line ending in \\r\\n",
            b"isuser:alice:example.org\r\n".to_vec(),
        ),
    ]);
    pty.hang_up();
}

#[test]
fn a_token_with_a_carriage_return_inside_is_refused_not_cut() {
    let setup = Setup::new("");
    let mut pty = Pty::start(&setup);
    let token = token(ALICE, "77");
    // With ICRNL on, "\r" would end the line and the valid token after it
    // would be answered as a request of its own.
    let mut password = b"x\r".to_vec();
    password.extend(line(ALICE, token.as_bytes()));
    password.pop();
    pty.expect_verdicts(&[
        refused(
            "a password, \\r, then a request with a valid token",
            line(ALICE, &password),
        ),
        accepted(
            "that token, in a request of its own, unused",
            line(ALICE, token.as_bytes()),
        ),
    ]);
    pty.hang_up();
}

#[test]
fn descriptors_leaked_by_the_host_are_closed_so_hang_up_is_seen_and_ports_are_freed() {
    let setup = Setup::new("");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let mut pty = Pty::try_start(
        &setup,
        Start {
            leaked: &[listener.as_raw_fd()],
            ..Start::default()
        },
    )
    .unwrap();
    pty.expect_verdicts(&[accepted("isuser alice", ISUSER.to_vec())]);

    let open: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", pty.child.id()))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(open.len(), 3, "open descriptors: {open:?}");

    // Prosody's listening socket dies with Prosody, not with the helper.
    // (Another test's child holds a copy from its fork to its exec, which
    // closes it: a moment, so the port is tried again until the deadline.)
    drop(listener);
    let deadline = Instant::now() + DEADLINE;
    while let Err(e) = std::net::TcpListener::bind(address) {
        assert!(
            Instant::now() < deadline,
            "the helper still holds the XMPP port: {e}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // And the helper sees Prosody go: no copy of the master keeps the pty up.
    pty.hang_up();
}

#[test]
fn a_signalled_helper_exits_zero_so_prosody_would_start_a_fresh_one() {
    let setup = Setup::new("");
    let mut pty = Pty::start(&setup);
    pty.expect_verdicts(&[accepted("isuser alice", ISUSER.to_vec())]);
    // SAFETY: signalling our own child.
    let rc = unsafe { libc::kill(pty.child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let status = wait_with_deadline(&mut pty.child, DEADLINE, "the exit on SIGTERM");
    assert_eq!(
        status.code(),
        Some(0),
        "Prosody restarts only after status 0: {status:?}"
    );

    let mut fresh = Pty::start(&setup);
    let token = token(ALICE, "9");
    let login = "alice logs in through the helper started afresh";
    fresh.expect_verdicts(&[accepted(login, line(ALICE, token.as_bytes()))]);
    fresh.hang_up();
}

#[test]
fn a_terminal_left_entirely_in_its_default_cooked_mode_is_made_raw_too() {
    let setup = Setup::new("");
    let mut pty = Pty::try_start(
        &setup,
        Start {
            echo_off: false,
            ..Start::default()
        },
    )
    .unwrap();
    let token = token(ALICE, "55");
    pty.expect_verdicts(&[
        accepted(
            "alice logs in, no echo of it",
            line(ALICE, token.as_bytes()),
        ),
        refused(
            "a password with ^C and \\r inside",
            line(ALICE, b"echo\x03me\r"),
        ),
    ]);
    pty.hang_up();
}

/// The replies Prosody gets after the helper started with `early` (a wrong
/// password) waiting on the terminal. Whatever happened to the early request,
/// no reply may be shifted: had the helper answered it, every reply after it
/// would be one behind, and each wrong password would get the `1` of the
/// valid token before it and log in.
fn replies_after_an_early_request(echoed: bool) {
    let setup = Setup::new("log = \"syslog\"\n");
    let syslog = Syslog::new();
    let early = line("mallory@example.org", b"wrong-password");
    let start = |syslog| Start {
        early: Some((&early, echoed)),
        syslog,
        ..Start::default()
    };
    let (mut pty, logged) = match Pty::try_start(&setup, start(Some(&syslog))) {
        Ok(pty) => (pty, true),
        Err(e) => {
            eprintln!("no syslog of our own ({e}): not checking the log");
            (Pty::try_start(&setup, start(None)).unwrap(), false)
        }
    };
    let valid = token(ALICE, "1");
    let fresh = token(ALICE, "2");
    let mallory = "mallory@example.org";
    pty.expect_verdicts(&[
        accepted("alice logs in", line(ALICE, valid.as_bytes())),
        refused("mallory's wrong password", line(mallory, b"wrong-password")),
        accepted(
            "alice logs in again, a fresh token",
            line(ALICE, fresh.as_bytes()),
        ),
        refused(
            "mallory's next wrong password",
            line(mallory, b"another-wrong-one"),
        ),
    ]);
    pty.hang_up();
    if logged {
        let lines = syslog.until("discarded");
        // LOG_AUTHPRIV | LOG_NOTICE
        assert!(
            lines.iter().any(|l| l.starts_with("<85>")
                && l.contains(&format!("discarded {} bytes", early.len()))),
            "{lines:?}"
        );
    }
}

#[test]
fn a_request_echoed_back_before_the_helper_started_is_never_answered() {
    replies_after_an_early_request(true);
}

#[test]
fn a_request_waiting_unechoed_when_the_helper_starts_is_not_answered_either() {
    replies_after_an_early_request(false);
}

#[test]
fn a_terminal_that_cannot_be_made_raw_is_logged_as_an_error_never_written_to() {
    let setup = Setup::new("log = \"stderr\"\n");
    let syslog = Syslog::new();
    let start = Start {
        syslog: Some(&syslog),
        hobbled: true,
        ..Start::default()
    };
    let mut pty = match Pty::try_start(&setup, start) {
        Ok(pty) => pty,
        Err(e) => {
            eprintln!("skipped: cannot give the helper a syslog of its own: {e}");
            return;
        }
    };
    assert!(!pty.is_raw());
    // The reply passes through the cooked terminal's output processing, and
    // nothing else reaches the terminal: no error text Prosody would read.
    pty.send(ISUSER);
    let cooked = "an isuser answered 1, through the cooked terminal's output processing";
    pty.expect(cooked, b"1\r\n");
    // It still holds the leaked master, so it would never see a hang-up.
    pty.terminate();
    let lines = syslog.until("serving");
    // LOG_AUTHPRIV | LOG_ERR
    for error in [
        "cannot make the terminal raw",
        "cannot close inherited descriptors",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("<83>") && l.contains(error)),
            "{error}: {lines:?}"
        );
    }
}

#[test]
fn a_broken_configuration_on_a_terminal_is_one_error_line_for_prosody_then_exit_zero() {
    // Prosody logs a reply starting with "error:" verbatim, and restarts a
    // helper only after exit status 0: the next login then finds the fix.
    let setup = Setup::new("otp_digits = 5\n");
    let start = Start {
        exits_at_start: true,
        ..Start::default()
    };
    let mut pty = Pty::try_start(&setup, start).unwrap();
    let status = wait_with_deadline(&mut pty.child, DEADLINE, "the exit after the error line");
    assert_eq!(status.code(), Some(0));
    let said = String::from_utf8_lossy(&pty.read_for(Duration::from_millis(500))).into_owned();
    assert!(
        said.starts_with("error: ")
            && said.contains("config.toml:4: otp_digits = 5 is out of range")
            && said.ends_with('\n')
            && said.lines().count() == 1,
        "{said:?}"
    );
}
