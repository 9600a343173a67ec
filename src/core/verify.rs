//! Deciding whether a password is a valid token for a JID at a given time
//! (docs/protocol.md §4 rules 1–3; replay is [`crate::core::replay`]'s job).

use crate::core::token::{self, SigningKey, Token};
use crate::core::totp::{self, Seed};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater};
use zeroize::Zeroizing;

/// The secrets and seeds of one domain. The first of each is current (used
/// to generate tokens); the others are still accepted, for key rotation.
#[derive(Debug, Clone)]
pub struct Keys {
    pub secrets: Vec<SigningKey>,
    pub seeds: Vec<Seed>,
}

/// The shape and lifetime of tokens, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenParams {
    pub otp_digits: u32,
    /// Seconds per TOTP step.
    pub otp_interval: u64,
    /// Steps accepted on either side of the current one.
    pub otp_window: u64,
    pub nonce_digits: u32,
}

impl Default for TokenParams {
    fn default() -> Self {
        TokenParams {
            otp_digits: 8,
            otp_interval: 30,
            otp_window: 1,
            nonce_digits: 32,
        }
    }
}

impl TokenParams {
    /// The longest a token can verify: every step of the window, in seconds.
    pub fn lifetime(&self) -> u64 {
        self.otp_interval * (2 * self.otp_window + 1)
    }
}

/// Why a token is refused, given the keys of its domain (a domain without
/// keys is [`crate::core::helper::Reason::UnknownDomain`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed token: {0}")]
    Malformed(token::Malformed),
    #[error("OTP outside window")]
    OtpOutsideWindow,
    #[error("bad signature")]
    BadSignature,
}

/// What a valid token tells the replay memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified<'a> {
    pub otp: &'a str,
    pub nonce: &'a str,
    /// The first unix time at which the token can no longer verify.
    pub expires_at: u64,
    /// Until when the replay memory must keep the token: one whole token
    /// lifetime past `expires_at`, so that a clock stepped forward by up to
    /// that much (an NTP step, or another process compacting the store while
    /// this one waited for the lock with an older `now`) never forgets a
    /// token that can still verify once the clock is right again.
    pub remember_until: u64,
}

/// Checks `password` as a token for `user@server` at unix time `now`.
///
/// Every seed, window step and secret is tried and the outcomes are combined
/// without branching, so a refusal takes the same time whichever check failed.
pub fn verify<'a>(
    keys: &Keys,
    params: TokenParams,
    user: &str,
    server: &str,
    password: &'a str,
    now: u64,
) -> Result<Verified<'a>, Refusal> {
    let token = Token::parse(password, params.otp_digits, params.nonce_digits)
        .map_err(Refusal::Malformed)?;
    check(keys, params, &token, user, server, now)
}

/// [`verify`] for a token already parsed (with `params`).
pub fn check<'a>(
    keys: &Keys,
    params: TokenParams,
    token: &Token<'a>,
    user: &str,
    server: &str,
    now: u64,
) -> Result<Verified<'a>, Refusal> {
    let current = totp::step_at(now, params.otp_interval);
    // Numbers, not text: no string is made per step (the grammar checked
    // that the OTP is `otp_digits` ASCII digits, at most 10).
    let otp = token
        .otp()
        .bytes()
        .fold(0u64, |n, digit| n * 10 + u64::from(digit - b'0'));
    let mut otp_ok = Choice::from(0);
    let mut matched_step = 0u64;
    for seed in &keys.seeds {
        for step in current.saturating_sub(params.otp_window)..=current + params.otp_window {
            let equal = seed.code_number(step, params.otp_digits).ct_eq(&otp);
            // The latest matching step, should codes of two steps or seeds
            // coincide: the token stays valid, and remembered, until it ends.
            matched_step.conditional_assign(&step, equal & step.ct_gt(&matched_step));
            otp_ok |= equal;
        }
    }

    let mut signature_ok = Choice::from(0);
    for secret in &keys.secrets {
        let expected = secret.sign(token.digits, user, server);
        signature_ok |= expected[..].ct_eq(&token.signature[..]);
    }

    match (bool::from(otp_ok), bool::from(signature_ok)) {
        (true, true) => {
            // Saturating: `--at` may name the end of time.
            let expires_at = matched_step
                .saturating_add(params.otp_window + 1)
                .saturating_mul(params.otp_interval);
            Ok(Verified {
                otp: token.otp(),
                nonce: token.nonce(),
                expires_at,
                remember_until: expires_at.saturating_add(params.lifetime()),
            })
        }
        (false, _) => Err(Refusal::OtpOutsideWindow),
        (true, false) => Err(Refusal::BadSignature),
    }
}

/// Makes the token that [`verify`] accepts for `user@server` at `now`, with
/// the current seed and secret.
pub fn generate(
    keys: &Keys,
    params: TokenParams,
    user: &str,
    server: &str,
    nonce: &str,
    now: u64,
) -> String {
    let otp = keys.seeds[0].code(totp::step_at(now, params.otp_interval), params.otp_digits);
    let digits = Zeroizing::new(format!("{}{nonce}", otp.as_str()));
    let signature = keys.secrets[0].sign(&digits, user, server);
    token::format(&otp, nonce, &signature)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use crate::test_vectors as vectors;
    use vectors::Settings;

    /// A nonce of the default length.
    pub const NONCE: &str = "12345678901234567890123456789012";

    pub fn keys(secret: &str, seed: &str) -> Keys {
        Keys {
            secrets: vec![SigningKey::new(secret.as_bytes())],
            seeds: vec![Seed::from_base32(seed).unwrap()],
        }
    }

    pub fn params(settings: &Settings) -> TokenParams {
        let d = TokenParams::default();
        TokenParams {
            otp_digits: settings.otp_digits.unwrap_or(d.otp_digits),
            otp_interval: settings.otp_interval.unwrap_or(d.otp_interval),
            otp_window: settings.otp_window.unwrap_or(d.otp_window),
            nonce_digits: settings.nonce_digits.unwrap_or(d.nonce_digits),
        }
    }

    fn reason(refusal: Refusal) -> &'static str {
        match refusal {
            Refusal::Malformed(_) => "malformed",
            Refusal::OtpOutsideWindow => "otp outside window",
            Refusal::BadSignature => "bad signature",
        }
    }

    #[test]
    fn every_vector_gets_its_verdict_and_reason() {
        let (mut valid, mut refused, mut with_reason) = (0, 0, 0);
        for v in vectors::load().tokens {
            let (user, server) = v.user_server();
            let keys = keys(&v.token_secret, &v.otp_seed);
            let result = verify(&keys, params(&v.settings), user, server, &v.token, v.at);
            assert_eq!(result.is_ok(), v.valid, "{}: {result:?}", v.name);
            match (result, &v.reason) {
                (Ok(_), _) => valid += 1,
                (Err(refusal), Some(expected)) => {
                    assert_eq!(reason(refusal), expected, "{}", v.name);
                    with_reason += 1;
                }
                (Err(_), None) => refused += 1,
            }
        }
        assert!(valid >= 10 && with_reason >= 12 && refused >= 2);
    }

    #[test]
    fn a_token_never_logs_in_a_user_whose_name_differs_by_leading_digits() {
        let v = vectors::load()
            .tokens
            .into_iter()
            .find(|v| v.name == "minted-for-42bob")
            .expect("the vector exists");
        let keys = keys(&v.token_secret, &v.otp_seed);
        let p = TokenParams::default();
        let (otp_and_nonce, signature) = v.token.split_once(' ').unwrap();
        assert!(verify(&keys, p, "42bob", "example.com", &v.token, v.at).is_ok());
        // The same signature re-split with "42" moved into the nonce.
        let moved = format!("{otp_and_nonce}42 {signature}");
        for (user, token) in [("bob", &moved), ("2bob", &v.token), ("bob", &v.token)] {
            assert!(
                matches!(
                    verify(&keys, p, user, "example.com", token, v.at),
                    Err(Refusal::Malformed(_) | Refusal::BadSignature)
                ),
                "{user}"
            );
        }
        assert_eq!(
            verify(&keys, p, "bob", "example.com", &moved, v.at)
                .unwrap_err()
                .to_string(),
            "malformed token: nonce has 34 digits, expected 32 (nonce_digits)"
        );
    }

    #[test]
    fn generate_reproduces_every_valid_vector_of_the_current_step() {
        let mut compared = 0;
        for v in vectors::load().tokens.into_iter().filter(|v| v.valid) {
            let (user, server) = v.user_server();
            let keys = keys(&v.token_secret, &v.otp_seed);
            let p = params(&v.settings);
            let parsed = Token::parse(&v.token, p.otp_digits, p.nonce_digits).unwrap();
            // Only current-step vectors can be regenerated at their own `at`.
            let step = totp::step_at(v.at, p.otp_interval);
            if parsed.otp() != keys.seeds[0].code(step, p.otp_digits).as_str() {
                continue;
            }
            let token = generate(&keys, p, user, server, parsed.nonce(), v.at);
            assert_eq!(
                token.trim_end_matches('='),
                v.token.trim_end_matches('='),
                "{}",
                v.name
            );
            compared += 1;
        }
        assert!(compared >= 6, "only {compared} vectors compared");
    }

    #[test]
    fn expiry_is_the_end_of_the_matched_steps_window() {
        let keys = keys("JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7", "XVGR73KMZH2M4XMY");
        let p = TokenParams::default();
        let now = 1_764_300_000; // step 58_810_000, 0 s into it
        let token = generate(&keys, p, "alice", "example.com", NONCE, now - 30);
        let verified = verify(&keys, p, "alice", "example.com", &token, now).unwrap();
        // Made in the previous step: valid until that step + window ends.
        assert_eq!(verified.expires_at, now + 30);
        assert_eq!(verified.remember_until, now + 30 + 90);
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
            secrets: vec![SigningKey::new(b"secret-0123456789abc")],
            seeds: vec![
                Seed::from_base32("XVGR73KMZH2M4XMY").unwrap(),
                Seed::from_base32("AAAAAAAAAPCAKAAA").unwrap(),
            ],
        };
        let p = TokenParams {
            otp_digits: 6,
            nonce_digits: 1,
            ..TokenParams::default()
        };
        let now = 60_647_382 * 30;
        let signature = keys.secrets[0].sign("6875261", "a", "b");
        let token = token::format("687526", "1", &signature);
        let verified = verify(&keys, p, "a", "b", &token, now).unwrap();
        assert_eq!(verified.expires_at, (60_647_383 + 1 + 1) * 30);
    }

    #[test]
    fn a_token_at_the_end_of_time_verifies_without_overflow() {
        let keys = keys("JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7", "XVGR73KMZH2M4XMY");
        let p = TokenParams::default();
        let token = generate(&keys, p, "a", "b", NONCE, u64::MAX);
        let verified = verify(&keys, p, "a", "b", &token, u64::MAX).unwrap();
        assert_eq!(
            (verified.expires_at, verified.remember_until),
            (u64::MAX, u64::MAX)
        );
    }

    #[test]
    fn any_rotated_secret_or_seed_verifies_and_generate_uses_the_first() {
        let old = keys("old-secret-0123456789", "XVGR73KMZH2M4XMY");
        let new = keys("new-secret-0123456789", "E3W374VRSFO4NVKE");
        let both = Keys {
            secrets: vec![new.secrets[0].clone(), old.secrets[0].clone()],
            seeds: vec![new.seeds[0].clone(), old.seeds[0].clone()],
        };
        let p = TokenParams::default();
        let now = 1_764_300_000;
        let by_old = generate(&old, p, "a", "b", NONCE, now);
        let by_new = generate(&new, p, "a", "b", NONCE, now);
        assert!(verify(&both, p, "a", "b", &by_old, now).is_ok());
        assert_eq!(generate(&both, p, "a", "b", NONCE, now), by_new);
        assert_eq!(
            verify(&new, p, "a", "b", &by_old, now),
            Err(Refusal::OtpOutsideWindow)
        );
    }
}
