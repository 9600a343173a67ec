//! SIGTERM, SIGINT and SIGHUP end the helper with status 0, but never between
//! reading a request and writing its reply (SPEC §9).
//!
//! While the helper waits for input the handler exits at once, so no signal
//! can be lost between checking a flag and blocking in `read`. While a reply
//! is being made it only raises a flag, which the loop checks after writing.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

static BUSY: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, SeqCst);
    if !BUSY.load(SeqCst) {
        // SAFETY: _exit is async-signal-safe; when not busy every reply has
        // been written and there is nothing to flush.
        unsafe { libc::_exit(0) };
    }
}

pub fn install() -> io::Result<()> {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask"
        // value; the handler only touches atomics and calls _exit.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Marks the start (true) or end (false) of answering a batch of requests.
/// Returns true when a signal asked the helper to stop.
pub fn busy(busy: bool) -> bool {
    BUSY.store(busy, SeqCst);
    STOP.load(SeqCst)
}
