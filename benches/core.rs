//! `cargo bench`: cost of each kind of request through the pure core, side by
//! side in one run, plus the replay cache's memory per token and the real
//! binary's throughput over a pipe. Ratios matter more than absolute numbers
//! on a noisy machine; in particular the refusal reasons must cost the same
//! (a ratio near 1.00), or timing would tell an attacker which check failed.

use std::hint::black_box;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use xmpp_token_auth::core::config::Config;
use xmpp_token_auth::core::frame::Frame;
use xmpp_token_auth::core::helper::Helper;
use xmpp_token_auth::core::replay::{ReplayCache, ReplayMemory, TokenId};
use xmpp_token_auth::core::totp::Seed;
use xmpp_token_auth::core::verify::{self, Keys, Secret, TokenParams};
use xmpp_token_auth::replay_store::SharedStore;

const SECRET: &str = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7";
const SEED: &str = "XVGR73KMZH2M4XMY";
const NOW: u64 = 1_764_300_000;
const ROUNDS: usize = 15;
const PER_ROUND: usize = 2_000;

fn helper(extra: &str) -> Helper {
    let text = format!(
        "token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\nreplay_cache_size = 10000000\n{extra}"
    );
    Helper::new(Config::parse(&text, Path::new("bench.toml"), &|_: &Path| unreachable!()).unwrap())
}

fn keys() -> Keys {
    Keys {
        secrets: vec![Secret::new(SECRET.into())],
        seeds: vec![Seed::from_base32(SEED).unwrap()],
    }
}

fn token(user: &str, nonce: usize, at: u64) -> String {
    verify::generate(
        &keys(),
        TokenParams::default(),
        user,
        "example.org",
        &format!("{nonce:032}"),
        at,
    )
}

struct Case {
    name: &'static str,
    requests: Vec<Vec<u8>>,
}

fn auth(user: &str, password: &str) -> Vec<u8> {
    format!("auth:{user}:example.org:{password}").into_bytes()
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let total = ROUNDS * PER_ROUND;
    let good: Vec<String> = (0..total).map(|i| token("alice", i, NOW)).collect();
    let mut cases = [
        Case {
            name: "auth, valid token",
            requests: good.iter().map(|t| auth("alice", t)).collect(),
        },
        Case {
            name: "auth, bad signature",
            requests: good.iter().map(|t| auth("bob", t)).collect(),
        },
        Case {
            name: "auth, OTP outside window",
            requests: (0..total)
                .map(|i| auth("alice", &token("alice", i, NOW - 600)))
                .collect(),
        },
        Case {
            name: "auth, replayed token",
            requests: good.iter().map(|t| auth("alice", t)).collect(),
        },
        Case {
            name: "auth, malformed",
            requests: vec![auth("alice", "hunter2"); total],
        },
        Case {
            name: "auth, valid, shared store",
            requests: good.iter().map(|t| auth("alice", t)).collect(),
        },
        Case {
            name: "isuser",
            requests: vec![b"isuser:alice:example.org".to_vec(); total],
        },
    ];

    // Rounds interleave the cases so that machine noise hits them alike. The
    // replayed case runs on the helper that accepted the valid tokens.
    let mut main_helper = helper("");
    let mut other_helper = helper("");
    let store_dir = std::env::temp_dir().join(format!("xta-bench-store-{}", std::process::id()));
    std::fs::create_dir_all(&store_dir).unwrap();
    let store = SharedStore::open(&store_dir.join("replay"), 10_000_000, 0).unwrap();
    let mut store_helper = Helper::with_replay_memory(
        Config::parse(
            &format!("token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\n"),
            Path::new("bench.toml"),
            &|_: &Path| unreachable!(),
        )
        .unwrap(),
        Box::new(store),
    );
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for round in 0..ROUNDS {
        for (index, case) in cases.iter_mut().enumerate() {
            let helper = match index {
                0 | 3 => &mut main_helper,
                5 => &mut store_helper,
                _ => &mut other_helper,
            };
            let batch = &case.requests[round * PER_ROUND..(round + 1) * PER_ROUND];
            let start = Instant::now();
            for request in batch {
                black_box(
                    helper
                        .answer(Frame::Request(black_box(request)), NOW)
                        .verdict(),
                );
            }
            samples[index].push(start.elapsed().as_nanos() as f64 / PER_ROUND as f64);
        }
    }
    std::fs::remove_dir_all(&store_dir).unwrap();
    let medians: Vec<f64> = samples.into_iter().map(median).collect();
    println!("per request through the helper, median of {ROUNDS} rounds of {PER_ROUND}");
    println!(
        "{:<28} {:>10} {:>12} {:>10}",
        "request", "ns/req", "req/s", "vs valid"
    );
    for (case, ns) in cases.iter().zip(&medians) {
        println!(
            "{:<28} {:>10.0} {:>12.0} {:>10.2}",
            case.name,
            ns,
            1e9 / ns,
            ns / medians[0]
        );
    }
    println!(
        "timing leak check: bad signature / OTP outside window = {:.2} (1.00 is ideal)\n",
        medians[1] / medians[2]
    );

    replay_memory();
    pipe_throughput();
}

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn replay_memory() {
    let entries = 100_000;
    let mut cache = ReplayCache::new(entries);
    let nonces: Vec<String> = (0..entries).map(|i| i.to_string()).collect();
    let before = resident_bytes();
    for nonce in &nonces {
        let id = TokenId {
            user: "alice",
            server: "example.org",
            otp: "12345678",
            nonce,
        };
        cache.record(&id, NOW, NOW + 90).unwrap();
    }
    let after = resident_bytes();
    println!(
        "replay cache: {} live tokens (the default cap) add {:.1} MB resident, {:.0} bytes a token\n",
        cache.len(),
        (after - before) as f64 / 1e6,
        (after - before) as f64 / entries as f64
    );
}

/// How long the real binary may take to answer every request before the
/// bench calls it a hang (it needs well under a second).
const PIPE_DEADLINE: Duration = Duration::from_secs(60);

fn pipe_throughput() {
    // Cargo builds the binary, with the bench profile, for bench targets.
    let bin = env!("CARGO_BIN_EXE_xmpp-token-auth");
    let dir = std::env::temp_dir().join(format!("xta-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!("token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\nlog = \"none\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let count = 20_000;
    let mut input = Vec::new();
    for i in 0..count {
        let request = auth("alice", &token("alice", i, now));
        input.extend((request.len() as u16).to_be_bytes());
        input.extend(request);
    }
    let start = Instant::now();
    let mut child = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let mut stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut replies = Vec::new();
        let _ = sender.send(stdout.read_to_end(&mut replies).map(|_| replies));
    });
    let deadline = start + PIPE_DEADLINE;
    let hang = |child: &mut std::process::Child, what: &str| -> ! {
        let _ = child.kill();
        let _ = child.wait();
        panic!("real binary over a pipe: {what} after {PIPE_DEADLINE:?}, so it was killed");
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let Ok(replies) = receiver.recv_timeout(left) else {
        hang(&mut child, "no end of its replies")
    };
    let replies = replies.unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            hang(&mut child, "still running");
        }
        std::thread::sleep(Duration::from_micros(100));
    };
    let elapsed: Duration = start.elapsed();
    writer.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(status.success(), "real binary over a pipe: {status}");
    let accepted = replies.chunks(4).filter(|r| r == &[0, 2, 0, 1]).count();
    assert_eq!(
        (replies.len(), accepted),
        (4 * count, count),
        "real binary over a pipe: every valid token accepted"
    );
    println!(
        "real binary over a pipe: {count} pipelined valid tokens in {:.0} ms ({:.0} req/s), {accepted} accepted",
        elapsed.as_secs_f64() * 1e3,
        count as f64 / elapsed.as_secs_f64()
    );
}
