//! The C library's syslog: it reconnects by itself after the syslog daemon
//! restarts, which hand-written socket loggers tend not to.

use std::ffi::CString;

pub use libc::{LOG_ERR, LOG_INFO, LOG_NOTICE, LOG_WARNING};

/// Opens the connection now, so that it exists before any request is read.
pub fn open() {
    // SAFETY: the identity string must outlive every later syslog call; a
    // static C string literal does.
    unsafe {
        libc::openlog(
            c"xmpp-token-auth".as_ptr(),
            libc::LOG_PID | libc::LOG_NDELAY,
            libc::LOG_AUTHPRIV,
        )
    };
}

pub fn send(priority: libc::c_int, message: &str) {
    // A NUL cannot be passed to C; messages never carry one on purpose.
    let message = CString::new(message.replace('\0', "\\0")).expect("NULs were replaced");
    // SAFETY: a constant "%s" format with one valid C string argument.
    unsafe { libc::syslog(priority, c"%s".as_ptr(), message.as_ptr()) };
}
