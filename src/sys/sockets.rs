//! What std's Unix sockets lack: waking a thread blocked in `accept`.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;

/// Makes every `accept` on `listener`, waiting now or later, return an
/// error at once (Linux: EINVAL), without closing the descriptor another
/// thread is using.
pub fn stop_accepting(listener: &UnixListener) -> io::Result<()> {
    // SAFETY: shutdown only changes the state of a socket this process owns.
    match unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}
