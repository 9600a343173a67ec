//! Closing descriptors inherited from the parent. (A closed descriptor 0, 1
//! or 2 at start is no concern: Rust's runtime opens `/dev/null` on it before
//! `main`, so no file opened later can take its number and receive replies;
//! `a_helper_started_with_stdout_closed_writes_replies_into_no_file` pins it.)

use std::io;

/// Closes every descriptor above 2.
///
/// Prosody's lpty leaks its pty master and listening sockets into the helper;
/// a helper that kept them would hold the XMPP port after Prosody died and
/// never see the terminal hang up.
pub fn close_inherited() -> io::Result<()> {
    close_from(3)
}

/// Closes every descriptor from `first` up: the socket daemon keeps the
/// `keep` sockets systemd passed it as descriptors 3, 4, ….
pub fn close_inherited_but_passed(keep: u32) -> io::Result<()> {
    close_from(3 + keep)
}

fn close_from(first: u32) -> io::Result<()> {
    // SAFETY: close_range only closes descriptors; nothing in this process
    // owns descriptors from `first` up yet (it runs before anything is
    // opened).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) };
    if rc == 0 {
        return Ok(());
    }
    // Kernels before 5.9 lack close_range: close what /proc lists instead.
    let mut open = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        if let Some(fd) = entry?
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<libc::c_int>().ok())
        {
            open.push(fd);
        }
    }
    for fd in open.into_iter().filter(|&fd| fd >= first as libc::c_int) {
        // SAFETY: as above; the read_dir descriptor is already closed, and
        // closing a descriptor that is not open only returns EBADF.
        unsafe { libc::close(fd) };
    }
    Ok(())
}
