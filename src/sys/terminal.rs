//! Raw mode for the pseudo-terminal Prosody runs the helper on (SPEC §2).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Turns off echo, line editing, signal characters, CR/LF translation, output
/// processing and flow control, so that every byte of a password reaches the
/// helper as sent and a reply leaves as exactly `1\n` or `0\n`.
pub fn make_raw(fd: BorrowedFd<'_>) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: tcgetattr fills the termios it is given, checked by its result;
    // cfmakeraw and tcsetattr only read and write that local value and fd.
    unsafe {
        let mut mode: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut mode) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::cfmakeraw(&mut mode);
        mode.c_iflag &= !(libc::IXOFF | libc::IXANY);
        mode.c_cc[libc::VMIN] = 1;
        mode.c_cc[libc::VTIME] = 0;
        // TCSANOW, not TCSAFLUSH: a request already waiting must not be lost.
        if libc::tcsetattr(fd, libc::TCSANOW, &mode) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
