//! The few libc calls the helper needs, each behind a small safe wrapper.
//! Every `unsafe` block of the crate lives below this module.

pub mod activation;
pub mod fds;
pub mod signals;
pub mod sockets;
pub mod stdio;
pub mod terminal;
pub mod users;
