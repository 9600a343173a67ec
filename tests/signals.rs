//! Stop signals while ejabberd keeps the helper busy: SIGTERM, SIGINT and
//! SIGHUP end it with status 0, and never before every request written in
//! full before the signal has its reply.

mod common;

use common::*;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// Requests whose replies tell them apart: an isuser (`TRUE`) and a wrong
/// password (`FALSE`), taking turns.
fn request(i: usize) -> (Vec<u8>, [u8; 4]) {
    if i.is_multiple_of(2) {
        (frame(b"isuser:alice:example.org"), TRUE)
    } else {
        (auth("mallory@example.org", "wrong-password"), FALSE)
    }
}

/// One helper: requests written one `write` each from a thread (flat out, or
/// `paced` so that the helper is often idle in its wait for input when the
/// next one arrives); once `after` have been written in full, `signal`.
fn signal_under_load(setup: &Setup, signal: libc::c_int, after: usize, paced: bool) {
    let mut child = setup.spawn(&[]);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Up and serving, with its handlers installed.
    stdin.write_all(&frame(b"isuser:a:b")).unwrap();
    let mut first = [0u8; 4];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(first, TRUE);

    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let written = Arc::clone(&written);
        std::thread::spawn(move || {
            for i in 0.. {
                // Fails once the helper has gone.
                if stdin.write_all(&request(i).0).is_err() {
                    return;
                }
                written.store(i + 1, SeqCst);
                if paced {
                    let until = Instant::now() + Duration::from_micros(20 + (i % 7) as u64 * 10);
                    while Instant::now() < until {
                        std::hint::spin_loop();
                    }
                }
            }
        })
    };
    let reader = std::thread::spawn(move || {
        let mut replies = Vec::new();
        stdout.read_to_end(&mut replies).unwrap();
        replies
    });

    let deadline = Instant::now() + Duration::from_secs(10);
    while written.load(SeqCst) < after {
        assert!(Instant::now() < deadline, "the helper stopped reading");
        std::hint::spin_loop();
    }
    // Every request counted here was written in full before the signal.
    let before = written.load(SeqCst);
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);

    let status = child.wait().unwrap();
    let replies = reader.join().unwrap();
    writer.join().unwrap();
    let context = format!("signal {signal} after {before} requests, paced: {paced}");
    assert_eq!(status.code(), Some(0), "{context}: {status:?}");
    assert_eq!(replies.len() % 4, 0, "{context}: a reply cut short");
    let replies: Vec<[u8; 4]> = replies.chunks(4).map(|r| r.try_into().unwrap()).collect();
    assert!(
        replies.len() >= before,
        "{context}: only {} replies",
        replies.len()
    );
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(*reply, request(i).1, "{context}: reply {i}");
    }
}

#[test]
fn requests_written_before_a_stop_signal_are_answered_before_the_helper_exits() {
    let setup = Setup::new("");
    for round in 0..300 {
        let signal = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP][round % 3];
        signal_under_load(&setup, signal, 1 + round * 37 % 500, round % 2 == 1);
    }
}

#[test]
fn a_stop_signal_while_idle_ends_the_helper_at_once() {
    let setup = Setup::new("");
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let mut child = setup.spawn(&[]);
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        stdin.write_all(&frame(b"isuser:a:b")).unwrap();
        let mut reply = [0u8; 4];
        stdout.read_exact(&mut reply).unwrap();
        // Idle, with its input still open: nothing but the signal ends it.
        std::thread::sleep(Duration::from_millis(50));
        let sent = Instant::now();
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "signal {signal}: {status:?}");
        assert!(sent.elapsed() < Duration::from_secs(2));
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{rest:?}");
        drop(stdin);
    }
}
