//! The token grammar and the token check (docs/protocol.md §4).
//!
//! Every input is used twice:
//! - as a password (after two bytes choosing `otp_digits` 6–10 and
//!   `nonce_digits` 1–64): parsing never panics, and a token that parses
//!   has exactly the digits asked for, one space and a 32-byte signature
//!   whose canonical encoding is what was given (padding optional);
//!   `verify` of it never panics;
//! - as the settings, keys, JID, nonce and time of a token that `generate`
//!   makes: it parses back into the same OTP, nonce and signature, and
//!   `verify` accepts it at the time it was made, with the expiry of its
//!   step.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xmpp_token_auth::core::token::{self, SigningKey, Token};
use xmpp_token_auth::core::totp::{self, Seed};
use xmpp_token_auth::core::verify::{self, Keys, TokenParams};
use xmpp_token_auth_fuzz::Bytes;

/// Any unix time, up to the end of u64 (`--at` reaches the arithmetic).
const LATEST: u64 = u64::MAX;

fn params(input: &mut Bytes) -> TokenParams {
    TokenParams {
        otp_digits: input.in_range(6..=10) as u32,
        otp_interval: input.in_range(10..=3600),
        otp_window: input.in_range(0..=10),
        nonce_digits: input.in_range(1..=64) as u32,
    }
}

fn keys(input: &mut Bytes) -> Keys {
    let mut seed = input.slice(40).to_vec();
    seed.resize(seed.len().max(10), 0x5a);
    let secret = String::from_utf8_lossy(input.slice(64)).into_owned();
    Keys {
        secrets: vec![SigningKey::new(if secret.is_empty() {
            b"s"
        } else {
            secret.as_bytes()
        })],
        seeds: vec![Seed::from_base32(&totp::encode_base32(&seed)).expect("80 bits or more")],
    }
}

fn parse_any_password(data: &[u8]) {
    let mut input = Bytes(data);
    let otp_digits = 6 + u32::from(input.byte() % 5);
    let nonce_digits = 1 + u32::from(input.byte() % 64);
    let raw = input.rest();
    let password = String::from_utf8_lossy(raw);
    let Ok(parsed) = Token::parse(&password, otp_digits, nonce_digits) else {
        return;
    };
    assert!(parsed.digits.bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(parsed.otp().len(), otp_digits as usize);
    assert_eq!(parsed.nonce().len(), nonce_digits as usize);
    assert_eq!(format!("{}{}", parsed.otp(), parsed.nonce()), parsed.digits);
    let canonical = token::format(parsed.otp(), parsed.nonce(), &parsed.signature);
    assert!(
        *password == canonical || *password == *canonical.trim_end_matches('='),
        "{password:?} parsed, but its canonical form is {canonical:?}"
    );
    assert_eq!(
        Token::parse(&canonical, otp_digits, nonce_digits).as_ref(),
        Ok(&parsed)
    );
    let p = TokenParams {
        otp_digits,
        nonce_digits,
        ..TokenParams::default()
    };
    let k = keys(&mut Bytes(raw));
    let now = Bytes(raw).in_range(0..=LATEST);
    let _ = verify::verify(&k, p, "user", "example.org", &password, now);
}

fn generate_and_parse_back(data: &[u8]) {
    let mut input = Bytes(data);
    let p = params(&mut input);
    let k = keys(&mut input);
    let now = input.in_range(0..=LATEST);
    let nonce: String = (0..p.nonce_digits)
        .map(|_| char::from(b'0' + input.byte() % 10))
        .collect();
    let user = String::from_utf8_lossy(input.slice(64)).into_owned();
    let server = String::from_utf8_lossy(input.rest()).into_owned();

    let made = verify::generate(&k, p, &user, &server, &nonce, now);
    let parsed = Token::parse(&made, p.otp_digits, p.nonce_digits)
        .unwrap_or_else(|e| panic!("generate made {made:?}, which does not parse: {e}"));
    let step = totp::step_at(now, p.otp_interval);
    assert_eq!(parsed.otp(), k.seeds[0].code(step, p.otp_digits).as_str());
    assert_eq!(parsed.nonce(), nonce);
    assert_eq!(
        parsed.signature,
        k.secrets[0].sign(parsed.digits, &user, &server)
    );
    let verified = verify::verify(&k, p, &user, &server, &made, now)
        .unwrap_or_else(|e| panic!("{made:?} made at {now} is refused then: {e}"));
    assert_eq!(
        (verified.otp, verified.nonce),
        (parsed.otp(), nonce.as_str())
    );
    // Valid until the end of its step's window at least (a later step of
    // the window may give the same code).
    // (Saturating at the end of time, as verify does.)
    let end = (step.saturating_add(p.otp_window + 1)).saturating_mul(p.otp_interval);
    assert!(verified.expires_at >= end);
    assert!(verified.expires_at > now || verified.expires_at == u64::MAX);
    assert_eq!(
        verified.remember_until,
        verified.expires_at.saturating_add(p.lifetime())
    );
}

fuzz_target!(|data: &[u8]| {
    parse_any_password(data);
    generate_and_parse_back(data);
});
