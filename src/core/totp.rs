//! TOTP codes (RFC 6238, HMAC-SHA1) and the base32 seeds they are made from.

use data_encoding::{Encoding, Specification};
use hmac::{Hmac, Mac};
use std::sync::{Mutex, OnceLock};
use totp_lite::{Sha1, totp_custom};
use zeroize::{Zeroize, Zeroizing};

/// mod_auth_token's documentation generates 16-character seeds, so 80 bits is
/// the floor we must accept.
pub const MIN_SEED_BITS: usize = 80;

/// A decoded TOTP seed. The bytes are wiped when it is dropped.
///
/// It also holds the seed as HMAC-SHA1 keyed states, hashed once at load so
/// that a code costs two SHA-1 blocks instead of four (like
/// [`crate::core::token::SigningKey`]'s, those states cannot be wiped), and
/// the codes of the steps asked for lately: every token of one step is
/// compared with the same few codes, so they are computed once a step.
pub struct Seed {
    bytes: Zeroizing<Vec<u8>>,
    mac: Hmac<Sha1>,
    recent: Mutex<RecentCodes>,
}

/// Codes by step, in [`RECENT_SLOTS`] slots chosen by the step number: room
/// for the widest window (±10 steps) with no two of its steps in one slot.
/// Wiped when the seed is dropped, like the seed.
#[derive(Default)]
struct RecentCodes {
    slots: [RecentCode; RECENT_SLOTS],
}

impl Drop for RecentCodes {
    fn drop(&mut self) {
        for slot in &mut self.slots {
            slot.code.zeroize();
        }
    }
}

const RECENT_SLOTS: usize = 32;

/// `digits` is 0 in a slot not used yet: codes have 6 to 10 digits.
#[derive(Default, Clone, Copy)]
struct RecentCode {
    step: u64,
    digits: u32,
    code: u64,
}

impl Clone for Seed {
    fn clone(&self) -> Seed {
        Seed {
            bytes: self.bytes.clone(),
            mac: self.mac.clone(),
            recent: Mutex::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SeedError {
    #[error(
        "is not valid base32 (letters A-Z and digits 2-7; case, spaces and '=' padding are ignored)"
    )]
    NotBase32,
    #[error(
        "is only {0} bits long; at least {MIN_SEED_BITS} bits (16 base32 characters) are needed"
    )]
    TooShort(usize),
}

impl std::fmt::Debug for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Seed(<redacted>)")
    }
}

fn base32() -> &'static Encoding {
    static ENCODING: OnceLock<Encoding> = OnceLock::new();
    ENCODING.get_or_init(|| {
        let mut spec = Specification::new();
        spec.symbols.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
        spec.translate.from.push_str("abcdefghijklmnopqrstuvwxyz");
        spec.translate.to.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ");
        // Authenticator apps and mod_auth_token's Lua decoder ignore the bits
        // left over at the end of a seed whose length is not a multiple of 8.
        spec.check_trailing_bits = false;
        spec.encoding()
            .expect("static base32 specification is valid")
    })
}

impl Seed {
    /// Decodes an RFC 4648 base32 seed, case-insensitively, ignoring `=`
    /// padding and spaces.
    pub fn from_base32(text: &str) -> Result<Seed, SeedError> {
        let cleaned: Zeroizing<Vec<u8>> = Zeroizing::new(
            text.bytes()
                .filter(|&b| b != b'=' && !b.is_ascii_whitespace())
                .collect(),
        );
        let bytes = base32()
            .decode(&cleaned)
            .map_err(|_| SeedError::NotBase32)?;
        let bits = bytes.len() * 8;
        if bits < MIN_SEED_BITS {
            return Err(SeedError::TooShort(bits));
        }
        let mac = Hmac::new_from_slice(&bytes).expect("HMAC takes keys of any length");
        Ok(Seed {
            bytes: Zeroizing::new(bytes),
            mac,
            recent: Mutex::default(),
        })
    }

    /// The code for time step `step` with `digits` digits, zero-padded, as
    /// text: what `generate` puts in a token. Computed by totp-lite, so that
    /// the tests that verify generated tokens compare two implementations.
    pub fn code(&self, step: u64, digits: u32) -> Zeroizing<String> {
        // totp_custom divides the time by the step length; passing the step
        // number with a step length of 1 lets callers do the arithmetic once.
        Zeroizing::new(totp_custom::<Sha1>(1, digits, &self.bytes, step))
    }

    /// The code for time step `step` with `digits` digits (at most 10), as a
    /// number: what verification compares. Computed once per step and
    /// digits, and never allocates.
    pub fn code_number(&self, step: u64, digits: u32) -> u64 {
        // A panic cannot leave a slot half written: slots are plain values.
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut recent.slots[(step % RECENT_SLOTS as u64) as usize];
        if slot.step != step || slot.digits != digits {
            *slot = RecentCode {
                step,
                digits,
                code: self.compute_code(step, digits),
            };
        }
        slot.code
    }

    /// RFC 4226 §5.3 dynamic truncation of HMAC-SHA1(seed, step), with the
    /// prepared key.
    fn compute_code(&self, step: u64, digits: u32) -> u64 {
        let mut mac = self.mac.clone();
        mac.update(&step.to_be_bytes());
        let hash = mac.finalize().into_bytes();
        let offset = usize::from(hash[19] & 0x0f);
        let truncated = u32::from_be_bytes([
            hash[offset],
            hash[offset + 1],
            hash[offset + 2],
            hash[offset + 3],
        ]) & 0x7fff_ffff;
        u64::from(truncated) % 10u64.pow(digits)
    }
}

/// Encodes random bytes as an unpadded upper-case base32 seed.
pub fn encode_base32(bytes: &[u8]) -> String {
    base32().encode(bytes)
}

/// The time step that `unix_time` falls in.
pub fn step_at(unix_time: u64, interval: u64) -> u64 {
    unix_time / interval
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_every_rfc6238_vector() {
        let vectors = crate::test_vectors::load();
        assert_eq!(vectors.rfc6238_sha1_8digit.len(), 6);
        for v in vectors.rfc6238_sha1_8digit {
            let seed = Seed::from_base32(&v.key_base32).unwrap();
            assert_eq!(*seed.code(step_at(v.at, 30), 8), v.otp, "at {}", v.at);
        }
    }

    #[test]
    fn eighty_bit_seed_is_accepted_in_any_case_with_padding_and_spaces() {
        let upper = Seed::from_base32("XVGR73KMZH2M4XMY").unwrap();
        let messy = Seed::from_base32("xvgr 73km zh2m 4xmy====").unwrap();
        assert_eq!(upper.bytes, messy.bytes);
        assert_eq!(upper.bytes.len(), 10);
    }

    #[test]
    fn seed_with_leftover_bits_is_accepted() {
        // 26 characters = 130 bits: the two extra bits are ignored.
        assert_eq!(
            Seed::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEH")
                .unwrap()
                .bytes
                .len(),
            16
        );
    }

    #[test]
    fn short_and_invalid_seeds_are_refused() {
        assert_eq!(
            Seed::from_base32("JBSWY3DPEHPK3").unwrap_err(),
            SeedError::TooShort(64)
        );
        assert_eq!(
            Seed::from_base32("JBSWY3DPEHPK3PX1").unwrap_err(),
            SeedError::NotBase32
        );
        assert_eq!(Seed::from_base32("").unwrap_err(), SeedError::TooShort(0));
    }

    #[test]
    fn the_numeric_code_is_totp_lites_code_for_every_length() {
        let seed = Seed::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        for step in (0..2000).chain([u64::MAX - 1, u64::MAX]) {
            for digits in 6..=10 {
                let text = seed.code(step, digits);
                assert_eq!(seed.code_number(step, digits), text.parse::<u64>().unwrap());
            }
        }
    }

    #[test]
    fn a_remembered_code_is_given_only_for_its_own_step_and_length() {
        let seed = Seed::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        let step = 58_810_000;
        let slots = RECENT_SLOTS as u64;
        // Steps that share a slot, asked in turns, and lengths in turn.
        for _ in 0..3 {
            for (step, digits) in [(step, 8), (step + slots, 8), (step, 6), (step - slots, 10)] {
                assert_eq!(
                    seed.code_number(step, digits),
                    seed.code(step, digits).parse::<u64>().unwrap(),
                    "step {step}, {digits} digits"
                );
            }
        }
        // A clone starts with nothing remembered, and agrees.
        assert_eq!(seed.clone().code_number(step, 8), seed.code_number(step, 8));
    }

    #[test]
    fn ten_digit_codes_are_zero_padded() {
        let seed = Seed::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        for step in 0..50 {
            assert_eq!(seed.code(step, 10).len(), 10);
            assert_eq!(seed.code(step, 6).len(), 6);
        }
    }

    #[test]
    fn encode_round_trips() {
        let bytes = [0xA5u8; 20];
        let text = encode_base32(&bytes);
        assert_eq!(text.len(), 32);
        assert_eq!(*Seed::from_base32(&text).unwrap().bytes, bytes);
    }
}
