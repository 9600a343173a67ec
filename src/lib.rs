//! xmpp-token-auth: an external authentication helper for ejabberd and Prosody
//! that accepts `mod_auth_token` style TOTP + HMAC-SHA256 tokens offline.
//!
//! [`core`] decides: framing, requests, tokens, TOTP, replay memory, policy
//! and configuration text, all pure. Around it, the shell touches the world:
//! [`serve`] reads requests and writes replies, [`config_file`] reads the
//! configuration and key files, [`replay_store`] shares the replay memory
//! through a file (and `replay_redis`, with the `redis` feature, through a
//! Redis or Valkey engine shared by every node), [`log`] writes the log, and [`sys`] holds every libc call
//! (and every `unsafe` block).

#![deny(unsafe_code)]

pub mod access;
pub mod cli;
pub mod config_file;
pub mod core;
pub mod listen;
pub mod log;
pub mod log_file;
pub mod log_socket;
#[cfg(feature = "redis")]
pub mod replay_redis;
pub mod replay_store;
pub mod serve;
#[allow(unsafe_code)] // each block with a SAFETY comment, enforced by clippy
pub mod sys;

/// The token vectors, with the integration tests' own loader.
#[cfg(test)]
#[path = "../tests/common/vectors.rs"]
mod test_vectors;
