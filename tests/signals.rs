//! Stop signals while ejabberd keeps the helper busy: SIGTERM, SIGINT and
//! SIGHUP end it with status 0, and never before every request written in
//! full before the signal has its reply.

mod common;

use common::*;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// Requests whose replies tell them apart: an isuser (`TRUE`) and a wrong
/// password (`FALSE`), taking turns.
fn request(i: usize) -> Expect {
    if i.is_multiple_of(2) {
        accepted("an isuser", frame(b"isuser:alice:example.org"))
    } else {
        let wrong = auth("mallory@example.org", "wrong-password");
        refused("a wrong password", wrong)
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
    let first = read_reply(&mut stdout, "the reply to the first request");
    assert_eq!(first, TRUE, "the first request, an isuser, answered true");

    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let written = Arc::clone(&written);
        let stop = Instant::now() + DEADLINE;
        std::thread::spawn(move || {
            for i in 0.. {
                // Fails once the helper has gone (killed at the latest when
                // the wait for it reaches its deadline).
                if Instant::now() > stop || stdin.write_all(&request(i).request).is_err() {
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
    let reader = read_in_background(stdout, "the helper's replies");

    let deadline = Instant::now() + DEADLINE;
    while written.load(SeqCst) < after {
        assert!(Instant::now() < deadline, "the helper stopped reading");
        std::hint::spin_loop();
    }
    // Every request counted here was written in full before the signal.
    let before = written.load(SeqCst);
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);

    let context = format!("signal {signal} after {before} requests, paced: {paced}");
    let status = wait_with_deadline(&mut child, DEADLINE, &format!("{context}: the exit"));
    let replies = joined(reader);
    joined(writer);
    assert_eq!(status.code(), Some(0), "{context}: {status:?}");
    assert_eq!(replies.len() % 4, 0, "{context}: a reply cut short");
    // Every request written before the signal has its reply; those after
    // it may or may not, but those that do have the right one.
    let answered = replies.len() / 4;
    assert!(answered >= before, "{context}: only {answered} replies");
    let story: Vec<Expect> = (0..answered).map(request).collect();
    check_verdicts(&story, Framing::Ejabberd, &replies, &context);
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
        let reply = read_reply(&mut stdout, "the reply to an isuser");
        assert_eq!(reply, TRUE, "an isuser, answered true");
        // Idle, with its input still open: nothing but the signal ends it.
        std::thread::sleep(Duration::from_millis(50));
        let sent = Instant::now();
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
        let what = format!("the exit on signal {signal}");
        let status = wait_with_deadline(&mut child, DEADLINE, &what);
        assert_eq!(status.code(), Some(0), "signal {signal}: {status:?}");
        let took = sent.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "signal {signal}: exit after {took:?}"
        );
        let rest = read_to_end_within(&mut stdout, DEADLINE, "the helper's stdout");
        assert!(
            rest.is_empty(),
            "signal {signal}: output after the signal: {rest:?}"
        );
        drop(stdin);
    }
}
