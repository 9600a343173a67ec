//! Unbuffered handles on the standard descriptors, so that each batch of
//! replies leaves in exactly one write (std's `Stdout` is line-buffered).

use std::fs::File;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

/// Descriptor 0, unbuffered. Never closed.
pub fn input() -> ManuallyDrop<File> {
    // SAFETY: descriptor 0 is open for the life of the process (Rust's
    // runtime opens /dev/null on it before `main` if the parent closed it),
    // and ManuallyDrop keeps this handle from ever closing it.
    ManuallyDrop::new(unsafe { File::from_raw_fd(0) })
}

/// Descriptor 1, unbuffered. Never closed.
pub fn output() -> ManuallyDrop<File> {
    // SAFETY: as for `input`, with descriptor 1.
    ManuallyDrop::new(unsafe { File::from_raw_fd(1) })
}
