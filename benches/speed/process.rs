//! Figures of the real binary, as ejabberd and Prosody run it: requests
//! over a pipe, pipelined and one at a time, and the socket daemon.

use crate::table::{Goal, Row};
use crate::{auth, config_text, token};
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The bench binary runs again as a comparison helper when this variable
/// names a role.
const ROLE: &str = "XTA_BENCH_ROLE";

/// Runs this process as the comparison helper named by [`ROLE`], if any;
/// returns whether it did.
pub fn run_role_if_asked() -> bool {
    std::env::var_os(ROLE).is_some()
}

/// Every figure of this module, as rows of the table.
pub fn rows(floor: f64) -> Vec<Row> {
    let ns = pipe_pipelined("");
    vec![Row::time(
        "pipe: valid tokens, pipelined, log none",
        ns,
        Goal::new("<= 2 x floor", ns <= 2.0 * floor),
    )]
}

/// How long the real binary may take to answer every request before the
/// bench calls it a hang (it needs well under a second).
const PIPE_DEADLINE: Duration = Duration::from_secs(60);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Nanoseconds per request for the real binary answering `count` valid
/// tokens written at once, with `extra` configuration lines.
fn pipe_pipelined(extra: &str) -> f64 {
    // Cargo builds the binary, with the bench profile, for bench targets.
    let bin = env!("CARGO_BIN_EXE_xmpp-token-auth");
    let dir = std::env::temp_dir().join(format!("xta-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.toml");
    std::fs::write(&config, config_text(&format!("log = \"none\"\n{extra}"))).unwrap();
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let now = unix_now();
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
    elapsed.as_nanos() as f64 / count as f64
}
