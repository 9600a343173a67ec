//! Property tests of tokens (docs/protocol.md §4): for any JID, keys,
//! settings in their allowed ranges and time, the token `generate` makes
//! verifies at every time inside its window and at none outside it (unless
//! the seed happens to give the same code at a step of that window, which
//! is then checked to be so), and any single byte of it changed makes it
//! invalid.

use proptest::prelude::*;
use xmpp_token_auth::core::token::SigningKey;
use xmpp_token_auth::core::token::Token;
use xmpp_token_auth::core::totp::{self, Seed};
use xmpp_token_auth::core::verify::{self, Keys, Refusal, TokenParams};

/// Every setting in the range the configuration allows (docs/protocol.md §6).
fn params() -> impl Strategy<Value = TokenParams> {
    (6u32..=10, 10u64..=3600, 0u64..=10, 1u32..=64).prop_map(
        |(otp_digits, otp_interval, otp_window, nonce_digits)| TokenParams {
            otp_digits,
            otp_interval,
            otp_window,
            nonce_digits,
        },
    )
}

fn keys() -> impl Strategy<Value = Keys> {
    (prop::collection::vec(any::<u8>(), 10..40), "\\PC{1,40}").prop_map(|(seed, secret)| Keys {
        secrets: vec![SigningKey::new(secret.as_bytes())],
        seeds: vec![Seed::from_base32(&totp::encode_base32(&seed)).unwrap()],
    })
}

/// Any user and server text: the signature covers them as given.
fn jid() -> impl Strategy<Value = (String, String)> {
    ("\\PC{1,24}", "\\PC{1,24}")
}

/// From the epoch to the year 2500.
fn time() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..=1000, 0u64..=16_725_225_600]
}

/// Whether the OTP of `token` is the code of some step of the window
/// around `at`: the rule verification follows (docs/protocol.md §4, 2).
fn otp_in_window(keys: &Keys, p: TokenParams, token: &str, at: u64) -> bool {
    let otp = Token::parse(token, p.otp_digits, p.nonce_digits)
        .unwrap()
        .otp()
        .to_string();
    let current = totp::step_at(at, p.otp_interval);
    (current.saturating_sub(p.otp_window)..=current + p.otp_window)
        .any(|step| *keys.seeds[0].code(step, p.otp_digits) == otp)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_token_is_valid_exactly_inside_its_window(
        keys in keys(),
        p in params(),
        (user, server) in jid(),
        nonce_seed in any::<u64>(),
        made in time(),
        // Steps from the one the token was made in, and seconds into it.
        steps in -14i64..=14,
        into in 0u64..3600,
    ) {
        let nonce: String = (0..p.nonce_digits)
            .map(|i| char::from(b'0' + (nonce_seed.rotate_left(i * 7) % 10) as u8))
            .collect();
        let token = verify::generate(&keys, p, &user, &server, &nonce, made);
        let step = (totp::step_at(made, p.otp_interval) as i64 + steps).max(0) as u64;
        let at = step * p.otp_interval + into % p.otp_interval;
        let inside = steps.unsigned_abs() <= p.otp_window;
        let result = verify::verify(&keys, p, &user, &server, &token, at);
        if inside {
            let verified = result.map_err(|e| TestCaseError::fail(format!("refused inside: {e}")))?;
            prop_assert_eq!(verified.nonce, nonce.as_str());
            prop_assert!(verified.expires_at > at);
            prop_assert_eq!(verified.remember_until, verified.expires_at + p.lifetime());
        } else if otp_in_window(&keys, p, &token, at) {
            // Another step of this window has the same code: valid by rule 2.
            prop_assert!(result.is_ok(), "{result:?}");
        } else {
            prop_assert_eq!(result, Err(Refusal::OtpOutsideWindow));
        }
    }

    #[test]
    fn any_single_byte_changed_is_invalid(
        keys in keys(),
        p in params(),
        (user, server) in jid(),
        made in time(),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let nonce = "7".repeat(p.nonce_digits as usize);
        let token = verify::generate(&keys, p, &user, &server, &nonce, made);
        prop_assert!(verify::verify(&keys, p, &user, &server, &token, made).is_ok());
        let mut changed = token.clone().into_bytes();
        let at = position.index(changed.len());
        prop_assume!(changed[at] != byte);
        changed[at] = byte;
        // A change that is not UTF-8 cannot even be a request's password.
        if let Ok(changed) = std::str::from_utf8(&changed) {
            let result = verify::verify(&keys, p, &user, &server, changed, made);
            prop_assert!(result.is_err(), "{token:?} changed to {changed:?} is accepted");
        }
    }

    #[test]
    fn every_byte_changed_in_turn_is_invalid(
        keys in keys(),
        p in params(),
        (user, server) in jid(),
        made in time(),
        byte in prop::sample::select(&b"0123456789 +/=Aa\x00"[..]),
    ) {
        let nonce = "3".repeat(p.nonce_digits as usize);
        let token = verify::generate(&keys, p, &user, &server, &nonce, made);
        for at in 0..token.len() {
            let mut changed = token.clone().into_bytes();
            if changed[at] == byte {
                continue;
            }
            changed[at] = byte;
            let changed = String::from_utf8(changed).unwrap();
            prop_assert!(
                verify::verify(&keys, p, &user, &server, &changed, made).is_err(),
                "{token:?} changed at {at} to {changed:?} is accepted"
            );
        }
    }
}
