//! The `mod_auth_token` token: `OTP NONCE " " base64(HMAC-SHA256)`.
//!
//! The signature covers `OTP NONCE USER "@" SERVER`, keyed with the UTF-8
//! bytes of the `token_secret` string exactly as the operator wrote it.

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const SIGNATURE_LEN: usize = 32;

/// Standard alphabet, `=` padding optional on input, and only the canonical
/// encoding (zero trailing bits) accepted.
const SIGNATURE_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(false),
);

/// A password that has the shape of a token. Nothing about it is checked yet
/// beyond its grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    /// The OTP digits followed by the nonce digits: the part that is signed.
    pub digits: &'a str,
    pub otp_len: usize,
    pub signature: [u8; SIGNATURE_LEN],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("no space between the code and the signature")]
    NoSpace,
    #[error("the code part is not {0} OTP digits followed by nonce digits")]
    BadDigits(u32),
    #[error("nonce has {got} digits, expected {expected} (nonce_digits)")]
    NonceLength { got: usize, expected: u32 },
    #[error("the signature is not the base64 encoding of 32 bytes")]
    BadSignature,
}

impl<'a> Token<'a> {
    /// Checks the grammar: exactly `otp_digits` + `nonce_digits` ASCII
    /// digits, one space, and a canonical base64 32-byte signature.
    ///
    /// The nonce length is fixed because nothing separates the nonce from
    /// the user in the signed bytes: with a free length, `42bob`'s token
    /// re-split with "42" moved into the nonce would be `bob`'s.
    pub fn parse(
        password: &'a str,
        otp_digits: u32,
        nonce_digits: u32,
    ) -> Result<Token<'a>, Malformed> {
        let (digits, signature) = password.split_once(' ').ok_or(Malformed::NoSpace)?;
        let otp_len = otp_digits as usize;
        if digits.len() <= otp_len || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Malformed::BadDigits(otp_digits));
        }
        check_nonce_length(&digits[otp_len..], nonce_digits)?;
        // A second space, a newline or any other stray byte is not in the
        // base64 alphabet, so the decoder refuses it here.
        let mut decoded = [0u8; SIGNATURE_LEN];
        match SIGNATURE_BASE64.decode_slice(signature, &mut decoded) {
            Ok(SIGNATURE_LEN) => Ok(Token {
                digits,
                otp_len,
                signature: decoded,
            }),
            _ => Err(Malformed::BadSignature),
        }
    }

    pub fn otp(&self) -> &'a str {
        &self.digits[..self.otp_len]
    }

    pub fn nonce(&self) -> &'a str {
        &self.digits[self.otp_len..]
    }
}

/// A nonce must have exactly `nonce_digits` digits (see [`Token::parse`]).
pub fn check_nonce_length(nonce: &str, nonce_digits: u32) -> Result<(), Malformed> {
    if nonce.len() == nonce_digits as usize {
        Ok(())
    } else {
        Err(Malformed::NonceLength {
            got: nonce.len(),
            expected: nonce_digits,
        })
    }
}

/// A `token_secret` made ready to sign: HMAC hashes its key into an inner
/// and an outer state before any message, so doing that once, when the
/// configuration is loaded, saves two of the five SHA-256 blocks a token's
/// signature costs.
///
/// The prepared states are as secret as the key. RustCrypto's `hmac` keeps
/// them in private fields without a way to wipe them, so unlike the key's
/// text they are not zeroized when the configuration is dropped.
#[derive(Clone)]
pub struct SigningKey(Hmac<Sha256>);

impl SigningKey {
    /// `secret`'s bytes are the HMAC key, as written (any length).
    pub fn new(secret: &[u8]) -> SigningKey {
        SigningKey(Hmac::new_from_slice(secret).expect("HMAC takes keys of any length"))
    }

    /// HMAC-SHA256 over `digits user "@" server`.
    pub fn sign(&self, digits: &str, user: &str, server: &str) -> [u8; SIGNATURE_LEN] {
        let mut mac = self.0.clone();
        mac.update(digits.as_bytes());
        mac.update(user.as_bytes());
        mac.update(b"@");
        mac.update(server.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// Formats a token the way mod_auth_token's generators write it: padded base64.
pub fn format(otp: &str, nonce: &str, signature: &[u8; SIGNATURE_LEN]) -> String {
    format!("{otp}{nonce} {}", SIGNATURE_BASE64.encode(signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFERENCE: &str =
        "2320461112345678901234567890123456789012 CvG8SD8xBqMAYwUXzRDvurYvL+mmXwWHlRKtckyTHtQ=";

    #[test]
    fn reference_token_parses_into_otp_and_nonce() {
        let token = Token::parse(REFERENCE, 8, 32).unwrap();
        assert_eq!(token.otp(), "23204611");
        assert_eq!(token.nonce(), "12345678901234567890123456789012");
    }

    #[test]
    fn reference_signature_is_reproduced_and_formatted_with_padding() {
        let sig = SigningKey::new(b"JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7").sign(
            "2320461112345678901234567890123456789012",
            "root",
            "localhost",
        );
        assert_eq!(
            format("23204611", "12345678901234567890123456789012", &sig),
            REFERENCE
        );
    }

    #[test]
    fn unpadded_signature_is_accepted() {
        let unpadded = REFERENCE.trim_end_matches('=');
        assert_eq!(
            Token::parse(unpadded, 8, 32).unwrap(),
            Token::parse(REFERENCE, 8, 32).unwrap()
        );
    }

    #[test]
    fn grammar_violations_are_malformed() {
        let sig = "CvG8SD8xBqMAYwUXzRDvurYvL+mmXwWHlRKtckyTHtQ=";
        let cases = [
            ("".to_string(), Malformed::NoSpace),
            ("2320461112345".to_string(), Malformed::NoSpace),
            (format!("23204611 {sig}"), Malformed::BadDigits(8)),
            (format!("2320461 {sig}"), Malformed::BadDigits(8)),
            (format!("2320461112a4 {sig}"), Malformed::BadDigits(8)),
            (format!("+2320461112 {sig}"), Malformed::BadDigits(8)),
            (format!("٢320461112 {sig}"), Malformed::BadDigits(8)),
            (format!("2320461112  {sig}"), Malformed::BadSignature),
            (format!("2320461112 {sig} "), Malformed::BadSignature),
            (format!("2320461112 {sig}\n"), Malformed::BadSignature),
            (format!("2320461112 {sig}="), Malformed::BadSignature),
            (
                "2320461112 CvG8SD8xBqMAYwUXzRDvurYvL+mmXwWHlRKtckyTHt".to_string(),
                Malformed::BadSignature,
            ),
            // Same length, but the last character carries non-zero trailing bits.
            (
                "2320461112 CvG8SD8xBqMAYwUXzRDvurYvL+mmXwWHlRKtckyTHtR=".to_string(),
                Malformed::BadSignature,
            ),
            // URL-safe alphabet is not standard base64.
            (
                "2320461112 CvG8SD8xBqMAYwUXzRDvurYvL-mmXwWHlRKtckyTHtQ=".to_string(),
                Malformed::BadSignature,
            ),
            // 33 bytes.
            (
                "2320461112 CvG8SD8xBqMAYwUXzRDvurYvL+mmXwWHlRKtckyTHtQA".to_string(),
                Malformed::BadSignature,
            ),
        ];
        for (password, expected) in cases {
            assert_eq!(Token::parse(&password, 8, 2), Err(expected), "{password:?}");
        }
    }

    #[test]
    fn otp_length_follows_configured_digits() {
        let sig = "CvG8SD8xBqMAYwUXzRDvurYvL+mmXwWHlRKtckyTHtQ=";
        let password = format!("1234567 {sig}");
        let token = Token::parse(&password, 6, 1).unwrap();
        assert_eq!((token.otp(), token.nonce()), ("123456", "7"));
    }

    #[test]
    fn a_nonce_of_another_length_is_malformed_and_says_what_to_do() {
        let short = REFERENCE.replacen("12345678901234567890123456789012", "1234", 1);
        let error = Token::parse(&short, 8, 32).unwrap_err();
        assert_eq!(
            error,
            Malformed::NonceLength {
                got: 4,
                expected: 32
            }
        );
        assert_eq!(
            error.to_string(),
            "nonce has 4 digits, expected 32 (nonce_digits)"
        );
        // Digits moved from a user name into the nonce make it too long.
        let long = REFERENCE.replacen(' ', "42 ", 1);
        assert_eq!(
            Token::parse(&long, 8, 32),
            Err(Malformed::NonceLength {
                got: 34,
                expected: 32
            })
        );
        assert!(Token::parse(&short, 8, 4).is_ok());
    }
}
