//! `cargo bench`: one table of what a request costs, side by side in one run,
//! every time a multiple of the crypto floor (the HMACs a valid token cannot
//! do without), since absolute numbers on a shared machine are noise. It
//! fails when a refusal's cost differs from an acceptance's by more than
//! 10%: timing would then tell an attacker which check failed.

mod process;
mod table;

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;
use table::{Goal, Row};
use xmpp_token_auth::core::config::Config;
use xmpp_token_auth::core::frame::Frame;
use xmpp_token_auth::core::helper::Helper;
use xmpp_token_auth::core::replay::{self, ReplayCache, TokenId};
use xmpp_token_auth::core::token::SigningKey;
use xmpp_token_auth::core::totp::Seed;
use xmpp_token_auth::core::verify::{self, Keys, TokenParams};

pub const SECRET: &str = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7";
pub const SEED: &str = "XVGR73KMZH2M4XMY";
const NOW: u64 = 1_764_300_000;
const ROUNDS: usize = 15;
const PER_ROUND: usize = 2_000;
/// Tokens a helper accepts before the core is measured: with the 30 000
/// measured, under the default cap (100 000).
const WARM_UP: usize = 60_000;

/// The configuration every measurement uses, plus `extra` lines.
pub fn config_text(extra: &str) -> String {
    format!("token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\n{extra}")
}

fn helper() -> Helper {
    let text = config_text("");
    Helper::new(Config::parse(&text, Path::new("bench.toml"), &|_: &Path| unreachable!()).unwrap())
}

fn keys() -> Keys {
    Keys {
        secrets: vec![SigningKey::new(SECRET.as_bytes())],
        seeds: vec![Seed::from_base32(SEED).unwrap()],
    }
}

/// A valid token for `user@example.org` at unix time `at`, with nonce
/// number `nonce`.
pub fn token(user: &str, nonce: usize, at: u64) -> String {
    verify::generate(
        &keys(),
        TokenParams::default(),
        user,
        "example.org",
        &format!("{nonce:032}"),
        at,
    )
}

/// The text of an `auth` request.
pub fn auth(user: &str, password: &str) -> Vec<u8> {
    format!("auth:{user}:example.org:{password}").into_bytes()
}

pub fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    if process::run_role_if_asked() {
        return;
    }
    println!("{}", machine());
    // First, while nothing else has been allocated and freed to reuse.
    let memory = memory_rows();
    let floor = floor_ns();
    let mut rows = vec![Row::time(
        "floor: 1 HMAC-SHA256 + 3 HMAC-SHA1, keys prepared",
        floor,
        None,
    )];
    rows.extend(core_rows(floor));
    rows.extend(process::rows(floor));
    rows.extend(memory);
    print!("{}", table::render(&rows, floor));
    let missed = table::missed(&rows);
    if !missed.is_empty() {
        println!("goals missed: {}", missed.join("; "));
    }
    // Timing is the one goal a bench run fails on: the others are speed,
    // this one is what an attacker can learn.
    let leaks: Vec<&String> = missed.iter().filter(|m| m.contains("refused")).collect();
    assert!(
        leaks.is_empty(),
        "a refusal's cost tells its reason: {leaks:?}"
    );
}

/// The date, the CPU, and whether the SHA extensions are there (sha1 and
/// sha2 detect them at run time and use them when they are).
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let date = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "xmpp-token-auth {} on {date}, {cpu}, {} cores; SHA extensions: {}",
        env!("CARGO_PKG_VERSION"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        sha_extensions()
    )
}

fn sha_extensions() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sha") {
        return "used (x86 SHA-NI)";
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("sha2") {
        return "used (ARMv8 SHA)";
    }
    "not available, software SHA"
}

/// The work a valid default token cannot avoid: one HMAC-SHA256 over its
/// signed text and one HMAC-SHA1 per step of the window, every key's
/// inner and outer states hashed once beforehand.
fn floor_ns() -> f64 {
    use hmac::{Hmac, Mac};
    let signing = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    let seed = data_encoding::BASE32_NOPAD.decode(SEED.as_bytes()).unwrap();
    let totp = Hmac::<totp_lite::Sha1>::new_from_slice(&seed).unwrap();
    let digits = b"1234567812345678901234567890123456789012";
    let mut samples = Vec::new();
    for round in 0..ROUNDS as u64 {
        let start = Instant::now();
        for i in 0..PER_ROUND as u64 {
            let mut mac = signing.clone();
            mac.update(black_box(digits));
            mac.update(black_box(b"alice"));
            mac.update(b"@");
            mac.update(black_box(b"example.org"));
            black_box(mac.finalize().into_bytes());
            for step in 0..3 {
                let mut mac = totp.clone();
                mac.update(&(round * 10_000 + i + step).to_be_bytes());
                black_box(mac.finalize().into_bytes());
            }
        }
        samples.push(start.elapsed().as_nanos() as f64 / PER_ROUND as f64);
    }
    median(samples)
}

struct Case {
    name: &'static str,
    requests: Vec<Vec<u8>>,
}

/// Each kind of request through the pure core (`Helper::answer`, in-memory
/// replay memory), in interleaved rounds so that machine noise hits them
/// alike.
fn core_rows(floor: f64) -> Vec<Row> {
    let total = ROUNDS * PER_ROUND;
    let good: Vec<String> = (0..total).map(|i| token("alice", i, NOW)).collect();
    let cases = [
        Case {
            name: "core: auth, valid token",
            requests: good.iter().map(|t| auth("alice", t)).collect(),
        },
        Case {
            name: "core: auth refused, bad signature",
            // A name as long as "alice": the signed text, and so the SHA-256
            // blocks it takes, must be the same size.
            requests: good.iter().map(|t| auth("carol", t)).collect(),
        },
        Case {
            name: "core: auth refused, OTP outside window",
            requests: (0..total)
                .map(|i| auth("alice", &token("alice", i, NOW - 600)))
                .collect(),
        },
        Case {
            name: "core: auth refused, replayed token",
            requests: good.iter().map(|t| auth("alice", t)).collect(),
        },
        Case {
            name: "core: auth refused, malformed",
            requests: vec![auth("alice", "hunter2"); total],
        },
        Case {
            name: "core: isuser",
            requests: vec![b"isuser:alice:example.org".to_vec(); total],
        },
    ];
    // One helper for all, as in a server: refusals look tokens up in a
    // replay memory that holds the accepted ones. It has accepted others
    // before, as a helper in service has: the first write to each page of
    // its table costs a page fault, once, which would otherwise fall on
    // the valid tokens measured.
    let mut helper = helper();
    for nonce in total..total + WARM_UP {
        let request = auth("alice", &token("alice", nonce, NOW));
        assert!(helper.answer(Frame::Request(&request), NOW).verdict());
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for round in 0..ROUNDS {
        for (index, case) in cases.iter().enumerate() {
            let batch = &case.requests[round * PER_ROUND..(round + 1) * PER_ROUND];
            let start = Instant::now();
            for request in batch {
                let decision = helper.answer(Frame::Request(black_box(request)), NOW);
                assert_eq!(
                    decision.verdict(),
                    index == 0 || index == 5,
                    "{}",
                    case.name
                );
            }
            samples[index].push(start.elapsed().as_nanos() as f64 / PER_ROUND as f64);
        }
    }
    let ns: Vec<f64> = samples.into_iter().map(median).collect();
    let valid = ns[0];
    cases
        .iter()
        .zip(&ns)
        .enumerate()
        .map(|(index, (case, &ns))| {
            let goal = match index {
                0 => Goal::new("<= 1.5 x floor", ns <= 1.5 * floor),
                1 | 2 => {
                    let ratio = ns / valid;
                    Goal::new(
                        format!("{ratio:.2} x valid, 0.9-1.1"),
                        (0.9..=1.1).contains(&ratio),
                    )
                }
                _ => None,
            };
            Row::time(case.name, ns, goal)
        })
        .collect()
}

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// What a remembered token costs in memory, at the default cap and at a
/// million.
fn memory_rows() -> Vec<Row> {
    [100_000, 1_000_000]
        .into_iter()
        .map(|entries| {
            let before = resident_bytes();
            let mut cache = ReplayCache::new(entries);
            for nonce in 0..entries {
                let nonce = nonce.to_string();
                let id = TokenId {
                    user: "alice",
                    server: "example.org",
                    otp: "12345678",
                    nonce: &nonce,
                };
                cache.record_key(replay::key(&id), NOW, NOW + 90).unwrap();
            }
            let per_entry = (resident_bytes() - before) as f64 / entries as f64;
            assert_eq!(cache.len(), entries);
            drop(cache);
            Row::figure(
                format!("replay memory, {entries} live tokens"),
                format!("{per_entry:.0} bytes a token"),
                (entries == 1_000_000)
                    .then(|| Goal::new("<= 48", per_entry <= 48.0))
                    .flatten(),
            )
        })
        .collect()
}
