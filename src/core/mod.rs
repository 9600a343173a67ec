//! The pure core: everything that decides, and nothing that touches the
//! world. Bytes and the time come in as arguments, answers go out as values;
//! no module here reads a file, a clock or a descriptor, so every one of them
//! is unit-tested and fuzzed directly.
//!
//! The data path, top to bottom: [`frame`] cuts the server's byte stream into
//! requests, [`request`] parses one, [`helper`] decides it by the policy over
//! a [`config::Config`], checking the [`token`] against [`totp`] codes with
//! [`verify`] and remembering it in [`replay`]; [`frame`] encodes the reply.
#![forbid(unsafe_code)]

pub mod config;
pub mod frame;
pub mod helper;
pub mod replay;
mod replay_table;
pub mod request;
pub mod token;
pub mod totp;
pub mod verify;
