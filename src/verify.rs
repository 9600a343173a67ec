//! Deciding whether a password is a valid token for a JID at a given time
//! (SPEC §4 rules 1–3; replay is [`crate::replay`]'s job).

use crate::token::{self, Token};
use crate::totp::{self, Seed};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater};
use zeroize::Zeroizing;

/// A `token_secret`: its UTF-8 bytes are the HMAC key, as written.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(text: String) -> Secret {
        Secret(Zeroizing::new(text))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The secrets and seeds of one domain. The first of each is current (used
/// to generate tokens); the others are still accepted, for key rotation.
#[derive(Debug, Clone)]
pub struct Keys {
    pub secrets: Vec<Secret>,
    pub seeds: Vec<Seed>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtpParams {
    pub digits: u32,
    pub interval: u64,
    pub window: u64,
}

impl Default for OtpParams {
    fn default() -> Self {
        OtpParams {
            digits: 8,
            interval: 30,
            window: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed token: {0}")]
    Malformed(token::Malformed),
    #[error("OTP outside window")]
    OtpOutsideWindow,
    #[error("bad signature")]
    BadSignature,
    #[error("unknown domain")]
    UnknownDomain,
}

/// What a valid token tells the replay cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified<'a> {
    pub otp: &'a str,
    pub nonce: &'a str,
    /// The first unix time at which the token can no longer verify.
    pub expires_at: u64,
}

/// Checks `password` as a token for `user@server` at unix time `now`.
///
/// Every seed, window step and secret is tried and the outcomes are combined
/// without branching, so a refusal takes the same time whichever check failed.
pub fn verify<'a>(
    keys: &Keys,
    params: OtpParams,
    user: &str,
    server: &str,
    password: &'a str,
    now: u64,
) -> Result<Verified<'a>, Refusal> {
    let token = Token::parse(password, params.digits).map_err(Refusal::Malformed)?;

    let current = totp::step_at(now, params.interval);
    let mut otp_ok = Choice::from(0);
    let mut matched_step = 0u64;
    for seed in &keys.seeds {
        for step in current.saturating_sub(params.window)..=current + params.window {
            let code = seed.code(step, params.digits);
            let equal = code.as_bytes().ct_eq(token.otp().as_bytes());
            // The latest matching step, should codes of two steps or seeds
            // coincide: the token stays valid, and remembered, until it ends.
            matched_step.conditional_assign(&step, equal & step.ct_gt(&matched_step));
            otp_ok |= equal;
        }
    }

    let mut signature_ok = Choice::from(0);
    for secret in &keys.secrets {
        let expected = token::sign(secret.as_bytes(), token.digits, user, server);
        signature_ok |= expected[..].ct_eq(&token.signature[..]);
    }

    match (bool::from(otp_ok), bool::from(signature_ok)) {
        (true, true) => Ok(Verified {
            otp: token.otp(),
            nonce: token.nonce(),
            expires_at: (matched_step + params.window + 1) * params.interval,
        }),
        (false, _) => Err(Refusal::OtpOutsideWindow),
        (true, false) => Err(Refusal::BadSignature),
    }
}

/// Makes the token that [`verify`] accepts for `user@server` at `now`, with
/// the current seed and secret.
pub fn generate(
    keys: &Keys,
    params: OtpParams,
    user: &str,
    server: &str,
    nonce: &str,
    now: u64,
) -> String {
    let otp = keys.seeds[0].code(totp::step_at(now, params.interval), params.digits);
    let digits = Zeroizing::new(format!("{}{nonce}", otp.as_str()));
    let signature = token::sign(keys.secrets[0].as_bytes(), &digits, user, server);
    token::format(&otp, nonce, &signature)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    pub struct Vectors {
        pub tokens: Vec<Vector>,
    }

    #[derive(serde::Deserialize)]
    pub struct Vector {
        pub name: String,
        pub otp_seed: String,
        pub token_secret: String,
        pub jid: String,
        pub token: String,
        pub at: u64,
        pub valid: bool,
        pub reason: Option<String>,
        #[serde(default)]
        pub settings: Settings,
    }

    #[derive(serde::Deserialize, Default)]
    pub struct Settings {
        pub otp_digits: Option<u32>,
        pub otp_interval: Option<u64>,
        pub otp_window: Option<u64>,
    }

    pub fn vectors() -> Vec<Vector> {
        let text = include_str!("../../shared/vectors/tokens.json");
        serde_json::from_str::<Vectors>(text).unwrap().tokens
    }

    pub fn keys(secret: &str, seed: &str) -> Keys {
        Keys {
            secrets: vec![Secret::new(secret.to_string())],
            seeds: vec![Seed::from_base32(seed).unwrap()],
        }
    }

    fn params(settings: &Settings) -> OtpParams {
        let d = OtpParams::default();
        OtpParams {
            digits: settings.otp_digits.unwrap_or(d.digits),
            interval: settings.otp_interval.unwrap_or(d.interval),
            window: settings.otp_window.unwrap_or(d.window),
        }
    }

    fn reason(refusal: Refusal) -> &'static str {
        match refusal {
            Refusal::Malformed(_) => "malformed",
            Refusal::OtpOutsideWindow => "otp outside window",
            Refusal::BadSignature => "bad signature",
            Refusal::UnknownDomain => "unknown domain",
        }
    }

    #[test]
    fn every_shared_vector_gets_its_verdict_and_reason() {
        let vectors = vectors();
        assert!(vectors.len() >= 20);
        for v in vectors {
            let (user, server) = v.jid.split_once('@').unwrap();
            let keys = keys(&v.token_secret, &v.otp_seed);
            let result = verify(&keys, params(&v.settings), user, server, &v.token, v.at);
            assert_eq!(result.is_ok(), v.valid, "{}: {result:?}", v.name);
            if let (Err(refusal), Some(expected)) = (result, &v.reason) {
                assert_eq!(reason(refusal), expected, "{}", v.name);
            }
        }
    }

    #[test]
    fn generate_reproduces_every_valid_default_vector() {
        for v in vectors()
            .into_iter()
            .filter(|v| v.valid && v.settings.otp_window.is_none())
        {
            let (user, server) = v.jid.split_once('@').unwrap();
            let keys = keys(&v.token_secret, &v.otp_seed);
            let p = params(&v.settings);
            let parsed = Token::parse(&v.token, p.digits).unwrap();
            // Only current-step vectors can be regenerated at their own `at`.
            let otp_now = keys.seeds[0].code(totp::step_at(v.at, p.interval), p.digits);
            if parsed.otp() != otp_now.as_str() {
                continue;
            }
            let token = generate(&keys, p, user, server, parsed.nonce(), v.at);
            assert_eq!(
                token.trim_end_matches('='),
                v.token.trim_end_matches('='),
                "{}",
                v.name
            );
        }
    }

    #[test]
    fn expiry_is_the_end_of_the_matched_steps_window() {
        let keys = keys("JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7", "XVGR73KMZH2M4XMY");
        let p = OtpParams::default();
        let now = 1_764_300_000; // step 58_810_000, 0 s into it
        let token = generate(&keys, p, "alice", "example.com", "42", now - 30);
        let verified = verify(&keys, p, "alice", "example.com", &token, now).unwrap();
        // Made in the previous step: valid until that step + window ends.
        assert_eq!(verified.expires_at, now + 30);
        assert!(verify(&keys, p, "alice", "example.com", &token, now + 29).is_ok());
        assert_eq!(
            verify(&keys, p, "alice", "example.com", &token, now + 30),
            Err(Refusal::OtpOutsideWindow)
        );
    }

    #[test]
    fn a_code_that_matches_two_steps_is_remembered_until_the_later_one_ends() {
        // Seed XVGR73KMZH2M4XMY gives 687526 at steps 60647381 and 60647383
        // (6 digits); seed AAAAAAAAAPCAKAAA gives it at 60647381 only. Found
        // by search, and listed so that the earlier match is seen last.
        let keys = Keys {
            secrets: vec![Secret::new("secret-0123456789abc".into())],
            seeds: vec![
                Seed::from_base32("XVGR73KMZH2M4XMY").unwrap(),
                Seed::from_base32("AAAAAAAAAPCAKAAA").unwrap(),
            ],
        };
        let p = OtpParams {
            digits: 6,
            interval: 30,
            window: 1,
        };
        let now = 60_647_382 * 30;
        let signature = token::sign(keys.secrets[0].as_bytes(), "6875261", "a", "b");
        let token = token::format("687526", "1", &signature);
        let verified = verify(&keys, p, "a", "b", &token, now).unwrap();
        assert_eq!(verified.expires_at, (60_647_383 + 1 + 1) * 30);
    }

    #[test]
    fn any_rotated_secret_or_seed_verifies_and_generate_uses_the_first() {
        let old = keys("old-secret-0123456789", "XVGR73KMZH2M4XMY");
        let new = keys("new-secret-0123456789", "E3W374VRSFO4NVKE");
        let both = Keys {
            secrets: vec![new.secrets[0].clone(), old.secrets[0].clone()],
            seeds: vec![new.seeds[0].clone(), old.seeds[0].clone()],
        };
        let p = OtpParams::default();
        let now = 1_764_300_000;
        let by_old = generate(&old, p, "a", "b", "1", now);
        let by_new = generate(&new, p, "a", "b", "1", now);
        assert!(verify(&both, p, "a", "b", &by_old, now).is_ok());
        assert_eq!(generate(&both, p, "a", "b", "1", now), by_new);
        assert_eq!(
            verify(&new, p, "a", "b", &by_old, now),
            Err(Refusal::OtpOutsideWindow)
        );
    }
}
