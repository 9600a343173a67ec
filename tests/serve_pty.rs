//! The real binary on a pseudo-terminal, as Prosody's mod_auth_external_insecure
//! runs it through lpty: stdin, stdout and stderr all the pty slave, the pty
//! the helper's controlling terminal, and the terminal in cooked mode with
//! only echo turned off.

mod common;

use common::*;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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

impl Pty {
    /// The helper on a terminal set up as lpty does: echo off, the rest of
    /// the kernel's cooked defaults left on.
    fn start(setup: &Setup) -> Pty {
        Pty::start_with(setup, &[], true)
    }

    /// Starts the helper with `leaked` descriptors of ours open in it as well
    /// (and the pty master always), as lpty leaves Prosody's, and with echo
    /// turned off first as lpty does, or left on.
    fn start_with(setup: &Setup, leaked: &[RawFd], echo_off: bool) -> Pty {
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
        let (master, slave) = unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut mode = termios(&master);
        if echo_off {
            mode.c_lflag &= !libc::ECHO; // what lpty changes, and all it changes
        }
        // SAFETY: setting the terminal mode through the master is allowed on Linux.
        assert_eq!(
            unsafe { libc::tcsetattr(master.as_raw_fd(), libc::TCSANOW, &mode) },
            0
        );

        let mut command = setup.command(&[]);
        command
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        let mut leaked = leaked.to_vec();
        leaked.push(master.as_raw_fd());
        // SAFETY: setsid, ioctl and dup2 are async-signal-safe, as pre_exec
        // requires, and `leaked` was allocated before the fork.
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
                Ok(())
            });
        }
        let child = command.spawn().unwrap();
        let pty = Pty { child, master };
        pty.wait_for_raw_mode();
        pty
    }

    /// The helper switches to raw mode as it starts. Requests sent before that
    /// would meet the cooked terminal (Prosody issue 855), which no helper can
    /// prevent, so the test host waits as Prosody in practice does.
    fn wait_for_raw_mode(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while termios(&self.master).c_lflag & libc::ICANON != 0 {
            assert!(
                Instant::now() < deadline,
                "helper never put the terminal in raw mode"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Reads exactly `expected.len()` bytes, then checks nothing else follows.
    fn expect(&mut self, expected: &[u8]) {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < expected.len() && Instant::now() < deadline {
            got.extend(self.read_for(Duration::from_millis(100)));
        }
        got.extend(self.read_for(Duration::from_millis(200)));
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        );
    }

    fn read_for(&mut self, timeout: Duration) -> Vec<u8> {
        let mut poll = libc::pollfd {
            fd: self.master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as i32) };
        if ready <= 0 {
            return Vec::new();
        }
        let mut buffer = [0u8; 4096];
        match self.master.read(&mut buffer) {
            Ok(n) => buffer[..n].to_vec(),
            Err(_) => Vec::new(), // EIO once the helper has gone
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }

    fn assert_alive(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "the helper died");
    }

    /// Prosody going away: the master closes, the helper must exit 0.
    fn hang_up(self) {
        let Pty { mut child, master } = self;
        drop(master);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert_eq!(status.code(), Some(0), "{status:?}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "helper still running after hang-up"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

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
    let token = token("alice@example.org", "4242");

    pty.send(&line("alice@example.org", token.as_bytes()));
    pty.expect(b"1\n");
    pty.send(&line("alice@example.org", token.as_bytes()));
    pty.expect(b"0\n");

    // Each of these would, in cooked mode, kill or freeze the helper, end the
    // line early, or split one request into two.
    for hostile in [
        &b"pa\x03ss"[..],
        b"pa\rss",
        b"a\rauth:alice:example.org:x",
        b"\x1c",
        b"\x1a",
        b"\x04",
        b"\x13",
        b"\x7f\x15\x17",
        "pässwörd€".as_bytes(),
    ] {
        pty.send(&line("alice@example.org", hostile));
        pty.expect(b"0\n");
        pty.assert_alive();
    }
    let fresh = common::token("alice@example.org", "4343");
    pty.send(&line("alice@example.org", fresh.as_bytes()));
    pty.expect(b"1\n");
    pty.send(b"isuser:alice:example.org\r\n");
    pty.expect(b"1\n");
    pty.hang_up();
}

#[test]
fn a_token_with_a_carriage_return_inside_is_refused_not_cut() {
    let setup = Setup::new("");
    let mut pty = Pty::start(&setup);
    let token = token("alice@example.org", "77");
    // With ICRNL on, "\r" would end the line and the valid token after it
    // would be answered as a request of its own.
    let mut password = b"x\r".to_vec();
    password.extend(line("alice@example.org", token.as_bytes()));
    password.pop();
    pty.send(&line("alice@example.org", &password));
    pty.expect(b"0\n");
    pty.send(&line("alice@example.org", token.as_bytes()));
    pty.expect(b"1\n");
    pty.hang_up();
}

#[test]
fn descriptors_leaked_by_the_host_are_closed_so_hang_up_is_seen_and_ports_are_freed() {
    let setup = Setup::new("");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let mut pty = Pty::start_with(&setup, &[listener.as_raw_fd()], true);
    pty.send(b"isuser:alice:example.org\n");
    pty.expect(b"1\n");

    let open: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", pty.child.id()))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(open.len(), 3, "open descriptors: {open:?}");

    // Prosody's listening socket dies with Prosody, not with the helper.
    drop(listener);
    std::net::TcpListener::bind(address).expect("the helper still holds the XMPP port");
    // And the helper sees Prosody go: no copy of the master keeps the pty up.
    pty.hang_up();
}

#[test]
fn a_signalled_helper_exits_zero_so_prosody_would_start_a_fresh_one() {
    let setup = Setup::new("");
    let mut pty = Pty::start(&setup);
    pty.send(b"isuser:alice:example.org\n");
    pty.expect(b"1\n");
    // SAFETY: signalling our own child.
    assert_eq!(
        unsafe { libc::kill(pty.child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = pty.child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "Prosody restarts only after status 0: {status:?}"
    );

    let mut fresh = Pty::start(&setup);
    let token = token("alice@example.org", "9");
    fresh.send(&line("alice@example.org", token.as_bytes()));
    fresh.expect(b"1\n");
    fresh.hang_up();
}

#[test]
fn a_terminal_left_entirely_in_its_default_cooked_mode_is_made_raw_too() {
    let setup = Setup::new("");
    let mut pty = Pty::start_with(&setup, &[], false);
    let token = token("alice@example.org", "55");
    pty.send(&line("alice@example.org", token.as_bytes()));
    pty.expect(b"1\n");
    pty.send(&line("alice@example.org", b"echo\x03me\r"));
    pty.expect(b"0\n");
    pty.assert_alive();
    pty.hang_up();
}
