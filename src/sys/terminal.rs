//! Raw mode for the pseudo-terminal Prosody runs the helper on (docs/protocol.md §2).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Turns off echo, line editing, signal characters, CR/LF translation, output
/// processing and flow control, so that every byte of a password reaches the
/// helper as sent and a reply leaves as exactly `1\n` or `0\n`.
///
/// Input already waiting is kept: call [`discard_input`] right after.
pub fn make_raw(fd: BorrowedFd<'_>) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: tcgetattr fills the termios it is given, checked by its result;
    // cfmakeraw and tcsetattr only read and write that local value and fd.
    let mut mode = unsafe {
        let mut mode: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut mode) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::cfmakeraw(&mut mode);
        mode
    };
    mode.c_iflag &= !(libc::IXOFF | libc::IXANY);
    mode.c_cc[libc::VMIN] = 1;
    mode.c_cc[libc::VTIME] = 0;
    // SAFETY: as above.
    let now = unsafe {
        if libc::tcsetattr(fd, libc::TCSANOW, &mode) != 0 {
            return Err(io::Error::last_os_error());
        }
        // tcsetattr succeeds when any one change was made: look again.
        let mut now: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut now) != 0 {
            return Err(io::Error::last_os_error());
        }
        now
    };
    let cooked = (now.c_lflag
        & (libc::ECHO | libc::ECHONL | libc::ICANON | libc::ISIG | libc::IEXTEN))
        | (now.c_iflag
            & (libc::IGNBRK
                | libc::BRKINT
                | libc::PARMRK
                | libc::ISTRIP
                | libc::INLCR
                | libc::IGNCR
                | libc::ICRNL
                | libc::IXON
                | libc::IXOFF
                | libc::IXANY))
        | (now.c_oflag & libc::OPOST);
    if cooked != 0 || now.c_cc[libc::VMIN] != 1 || now.c_cc[libc::VTIME] != 0 {
        return Err(io::Error::other(
            "the terminal kept part of its cooked mode",
        ));
    }
    Ok(())
}

/// Discards every byte of input waiting on the terminal, also what its line
/// discipline has not processed yet, and returns how many there were (at
/// least; bytes arriving during the call are discarded uncounted).
///
/// Call it after [`make_raw`], never before. Input that arrived before raw
/// mode went through the cooked terminal: it may have been echoed back to
/// the server, which then took its own request for the reply (Prosody
/// issue 855; lpty turns echo off only after fork, while Prosody writes its
/// first request at once), or been cut in two at a `\r`. Answering any of it
/// would leave every later reply one behind. Discarding it first and making
/// the terminal raw second would leave a moment in which a request is still
/// cooked, and kept; in this order a request arriving in between is raw,
/// never echoed, and only lost.
pub fn discard_input(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let fd = fd.as_raw_fd();
    let mut waiting: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int, which `waiting` is; tcflush only
    // takes the descriptor.
    unsafe {
        if libc::ioctl(fd, libc::FIONREAD, &mut waiting) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::tcflush(fd, libc::TCIFLUSH) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(usize::try_from(waiting).unwrap_or(0))
}
