//! The application-side token generators in contrib/generators/ mint exactly
//! the shared vectors' tokens, and tokens the real binary accepts.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

/// (name, interpreter, script) of every generator.
const GENERATORS: [(&str, &str, &str); 4] = [
    ("python", "python3", "xmpp_token.py"),
    ("php", "php", "xmpp_token.php"),
    ("node", "node", "xmpp_token.js"),
    ("shell", "sh", "xmpp-token.sh"),
];

struct Params<'a> {
    secret: &'a str,
    seed: &'a str,
    at: u64,
    nonce: Option<&'a str>,
    digits: u64,
    interval: u64,
}

fn mint(interpreter: &str, script: &str, jid: &str, p: &Params) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/generators")
        .join(script);
    let mut command = Command::new(interpreter);
    command
        .arg(path)
        .arg(jid)
        .env("XMPP_TOKEN_SECRET", p.secret)
        .env("XMPP_OTP_SEED", p.seed)
        .env("XMPP_TOKEN_AT", p.at.to_string())
        .env("XMPP_OTP_DIGITS", p.digits.to_string())
        .env("XMPP_OTP_INTERVAL", p.interval.to_string());
    match p.nonce {
        Some(nonce) => command.env("XMPP_TOKEN_NONCE", nonce),
        None => command.env_remove("XMPP_TOKEN_NONCE"),
    };
    let out = command.output().unwrap_or_else(|e| {
        panic!("cannot run {interpreter} ({e}): install it (`bash .ci/run` does) to test the generators")
    });
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end_matches('\n')
        .to_string()
}

#[test]
fn every_generator_reproduces_every_valid_shared_vector() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/vectors/tokens.json"
    ))
    .unwrap();
    let vectors: serde_json::Value = serde_json::from_str(&text).unwrap();
    let valid: Vec<&serde_json::Value> = vectors["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["valid"] == true)
        .collect();
    assert!(valid.len() >= 8);
    for (name, interpreter, script) in GENERATORS {
        for v in &valid {
            let settings = &v["settings"];
            let digits = settings["otp_digits"].as_u64().unwrap_or(8);
            let interval = settings["otp_interval"].as_u64().unwrap_or(30);
            let token = v["token"].as_str().unwrap();
            let nonce = &token[digits as usize..token.find(' ').unwrap()];
            let at = v["at"].as_u64().unwrap();
            // Vectors for the neighbouring steps were minted a step earlier or later.
            let minted: Vec<String> = [at - interval, at, at + interval]
                .into_iter()
                .map(|at| {
                    let params = Params {
                        secret: v["token_secret"].as_str().unwrap(),
                        seed: v["otp_seed"].as_str().unwrap(),
                        at,
                        nonce: Some(nonce),
                        digits,
                        interval,
                    };
                    mint(interpreter, script, v["jid"].as_str().unwrap(), &params)
                })
                .collect();
            let wanted = token.trim_end_matches('=');
            assert!(
                minted.iter().any(|m| m.trim_end_matches('=') == wanted),
                "{name} for vector {}: minted {minted:?}, wanted {token}",
                v["name"]
            );
            assert!(
                minted.iter().all(|m| m.ends_with('=')),
                "{name}: signatures are padded: {minted:?}"
            );
        }
    }
}

#[test]
fn every_generator_mints_tokens_the_helper_accepts_once() {
    let setup = Setup::new("");
    let mut frames = Vec::new();
    for (name, interpreter, script) in GENERATORS {
        let params = Params {
            secret: SECRET,
            seed: SEED,
            at: now(),
            nonce: None,
            digits: 8,
            interval: 30,
        };
        let token = mint(interpreter, script, "alice@example.org", &params);
        let digits = token.split(' ').next().unwrap();
        assert_eq!(digits.len(), 8 + 32, "{name}: {token}");
        let (code, verdict, _) = setup.run(&["verify", "alice@example.org", &token]);
        assert_eq!(
            (code, verdict.as_str()),
            (0, "valid: token for alice@example.org\n"),
            "{name}"
        );
        frames.push(auth("alice@example.org", &token));
        frames.push(auth("alice@example.org", &token));
    }
    let replies = setup.replies(&frames);
    assert_eq!(replies, [TRUE, FALSE].repeat(GENERATORS.len()));
}
