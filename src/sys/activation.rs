//! systemd socket activation: the listening socket systemd passes as
//! descriptor 3 (`LISTEN_PID`, `LISTEN_FDS`; sd_listen_fds(3)).

use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixListener;

const FIRST: RawFd = 3;

/// How many sockets systemd passed to this very process (0 when none, or
/// when the variables were meant for another process).
pub fn passed_count() -> u32 {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
        == Some(std::process::id());
    match ours {
        true => std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        false => 0,
    }
}

/// Takes the first passed socket, which must be a listening Unix stream
/// socket. Call once, at start, with [`passed_count`] > 0.
pub fn take_listener() -> io::Result<UnixListener> {
    let int_option = |level, name| -> io::Result<libc::c_int> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `value`.
        let rc = unsafe { libc::getsockopt(FIRST, level, name, (&raw mut value).cast(), &mut len) };
        match rc {
            0 => Ok(value),
            _ => Err(io::Error::last_os_error()),
        }
    };
    let domain = int_option(libc::SOL_SOCKET, libc::SO_DOMAIN)?;
    let kind = int_option(libc::SOL_SOCKET, libc::SO_TYPE)?;
    let listening = int_option(libc::SOL_SOCKET, libc::SO_ACCEPTCONN)?;
    if domain != libc::AF_UNIX || kind != libc::SOCK_STREAM || listening != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the socket systemd passed is not a listening Unix stream socket \
             (the .socket unit needs ListenStream=/path)",
        ));
    }
    // SAFETY: descriptor 3 is open (getsockopt succeeded), is the socket
    // systemd passed to this process, and nothing else owns it.
    let listener = unsafe { UnixListener::from_raw_fd(FIRST) };
    // SAFETY: FD_CLOEXEC only changes the descriptor's flags.
    unsafe { libc::fcntl(FIRST, libc::F_SETFD, libc::FD_CLOEXEC) };
    Ok(listener)
}
