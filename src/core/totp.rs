//! TOTP codes (RFC 6238, HMAC-SHA1) and the base32 seeds they are made from.

use data_encoding::{Encoding, Specification};
use std::sync::OnceLock;
use totp_lite::{Sha1, totp_custom};
use zeroize::Zeroizing;

/// mod_auth_token's documentation generates 16-character seeds, so 80 bits is
/// the floor we must accept.
pub const MIN_SEED_BITS: usize = 80;

/// A decoded TOTP seed. The bytes are wiped when it is dropped.
#[derive(Clone)]
pub struct Seed(Zeroizing<Vec<u8>>);

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
        Ok(Seed(Zeroizing::new(bytes)))
    }

    /// The code for time step `step` with `digits` digits, zero-padded.
    pub fn code(&self, step: u64, digits: u32) -> Zeroizing<String> {
        // totp_custom divides the time by the step length; passing the step
        // number with a step length of 1 lets callers do the arithmetic once.
        Zeroizing::new(totp_custom::<Sha1>(1, digits, &self.0, step))
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
        assert_eq!(upper.0, messy.0);
        assert_eq!(upper.0.len(), 10);
    }

    #[test]
    fn seed_with_leftover_bits_is_accepted() {
        // 26 characters = 130 bits: the two extra bits are ignored.
        assert_eq!(
            Seed::from_base32("JBSWY3DPEHPK3PXPJBSWY3DPEH")
                .unwrap()
                .0
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
        assert_eq!(*Seed::from_base32(&text).unwrap().0, bytes);
    }
}
