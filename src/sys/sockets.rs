//! Accepting connections until told to stop, without touching the listening
//! socket itself: under socket activation it belongs to systemd too, which
//! must still take connections (and start the daemon again) after this
//! process stops.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::{UnixListener, UnixStream};

/// Waits for a connection on `listener`, or for `stop` to become readable
/// (something was written to its pipe): `None` then.
pub fn accept_unless(listener: &UnixListener, stop: &impl AsFd) -> io::Result<Option<UnixStream>> {
    let mut fds = [
        libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: two valid pollfds, and their count.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if fds[1].revents != 0 {
            return Ok(None);
        }
        if fds[0].revents != 0 {
            return listener.accept().map(|(stream, _)| Some(stream));
        }
    }
}

/// A connection already waiting on `listener`, accepted without waiting:
/// `None` when there is none.
pub fn accept_waiting(listener: &UnixListener) -> io::Result<Option<UnixStream>> {
    let mut fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd; a zero timeout never sleeps.
    match unsafe { libc::poll(&mut fd, 1, 0) } {
        1.. => listener.accept().map(|(stream, _)| Some(stream)),
        0 => Ok(None),
        _ => Err(io::Error::last_os_error()),
    }
}
