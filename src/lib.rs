//! xmpp-token-auth: an external authentication helper for ejabberd and Prosody
//! that accepts `mod_auth_token` style TOTP + HMAC-SHA256 tokens offline.
//!
//! The data path reads top to bottom: bytes from the server are cut into
//! requests by [`frame`], parsed by [`request`], answered by [`helper`] (which
//! checks [`token`]s against [`totp`] codes and remembers them in [`replay`]),
//! and the reply is encoded by [`frame`] again. Everything but [`serve`],
//! [`log`] and [`sys`] is pure: no I/O, time passed in as an argument.

pub mod cli;
pub mod config;
pub mod frame;
pub mod helper;
pub mod log;
pub mod replay;
pub mod replay_store;
pub mod request;
pub mod serve;
pub mod sys;
pub mod token;
pub mod totp;
pub mod verify;

/// The token vectors, with the integration tests' own loader.
#[cfg(test)]
#[path = "../tests/common/vectors.rs"]
mod test_vectors;
