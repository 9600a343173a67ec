//! The real binary serving ejabberd frames and lines over pipes, as ejabberd
//! runs it.

mod common;

use common::*;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

const ALICE: &str = "alice@example.org";

#[test]
fn a_valid_token_logs_in_once() {
    let setup = Setup::new("");
    let token = token(ALICE, "12345678901234567890123456789012");
    setup.expect_verdicts(&[
        accepted("alice logs in with a fresh token", auth(ALICE, &token)),
        refused("the same token again: a replay", auth(ALICE, &token)),
    ]);
}

#[test]
fn tokens_for_someone_else_or_out_of_time_or_tampered_are_refused() {
    let setup = Setup::new("");
    let now = now();
    let good = token(ALICE, "1");
    // The signature's first character: all six of its bits are signature
    // bits. (The last one before the '=' carries two padding bits, and
    // changing only those makes a token malformed, not wrongly signed.)
    let mut tampered = good.clone().into_bytes();
    let first = good.find(' ').unwrap() + 1;
    tampered[first] = if tampered[first] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let other_secret = "another-secret-of-32-characters!";
    setup.expect_verdicts(&[
        refused(
            "alice's token presented by bob",
            auth("bob@example.org", &good),
        ),
        refused(
            "alice's token at another server",
            auth("alice@example.net", &good),
        ),
        refused(
            "alice's token, its signature tampered with",
            auth(ALICE, &tampered),
        ),
        refused(
            "a token 2 minutes old",
            signed(ALICE, SECRET, SEED, "2", now - 120),
        ),
        refused(
            "a token 2 minutes ahead",
            signed(ALICE, SECRET, SEED, "3", now + 120),
        ),
        refused(
            "a token signed with an unknown secret",
            signed(ALICE, other_secret, SEED, "4", now),
        ),
        refused("a plain password", auth(ALICE, "hunter2")),
        refused("an empty password", auth(ALICE, "")),
        accepted(
            "alice's own token, unused after all that",
            auth(ALICE, &good),
        ),
    ]);
}

#[test]
fn a_password_with_colons_keeps_the_stream_in_sync() {
    let setup = Setup::new("");
    let token = token(ALICE, "7");
    setup.expect_verdicts(&[
        refused("a password of colons", auth(ALICE, "a:b:c::")),
        refused(
            "the token with \":extra\" after it",
            auth(ALICE, &format!("{token}:extra")),
        ),
        accepted(
            "the token itself next: the stream is still in step",
            auth(ALICE, &token),
        ),
    ]);
}

#[test]
fn requests_written_one_byte_at_a_time_are_answered() {
    let setup = Setup::new("");
    let mut child = setup.spawn(&[]);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    for nonce in ["1", "2"] {
        for byte in auth(ALICE, &token(ALICE, nonce)) {
            stdin.write_all(&[byte]).unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(Duration::from_micros(300));
        }
        // The reply arrives before any more input: it was flushed.
        let what = format!("login {nonce}, written a byte at a time");
        let reply = read_reply(&mut stdout, &what);
        assert_eq!(reply, TRUE, "{what}: accepted");
    }
    drop(stdin);
    let status = wait_with_deadline(&mut child, DEADLINE, "the exit at the end of input");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn ten_thousand_pipelined_requests_are_answered_in_order() {
    let setup = Setup::new("");
    let now = now();
    let story: Vec<Expect> = (0..10_000u32)
        .map(|i| {
            let jid = format!("user{}@example.org", i % 97);
            // Every third request is a token signed for someone else.
            if i % 3 == 0 {
                let token = token_with(SECRET, SEED, "mallory@example.org", &i.to_string(), now);
                refused(
                    format!("#{i}: {jid} with mallory's token"),
                    auth(&jid, &token),
                )
            } else {
                let token = token_with(SECRET, SEED, &jid, &i.to_string(), now);
                accepted(
                    format!("#{i}: {jid} with a token of its own"),
                    auth(&jid, &token),
                )
            }
        })
        .collect();
    setup.expect_verdicts(&story);
}

#[test]
fn garbage_frames_are_refused_and_a_valid_one_after_them_still_works() {
    let setup = Setup::new("");
    let token = token(ALICE, "99");
    setup.expect_verdicts(&[
        refused("an empty frame", frame(b"")),
        refused("a frame of invalid UTF-8", frame([0xff, 0xfe, 0x00])),
        refused("\"auth\" alone", frame(b"auth")),
        refused("auth without a server", frame(b"auth:alice")),
        refused("auth without a password", frame(b"auth:alice:example.org")),
        refused("certauth", frame(b"certauth:alice:example.org")),
        refused("AUTH in capitals", frame(b"AUTH:alice:example.org:x")),
        refused(
            "a frame of the greatest length, 65535 bytes",
            frame(vec![b'a'; 65535]),
        ),
        refused("setpass", frame(b"setpass:alice:example.org:x")),
        refused("tryregister", frame(b"tryregister:alice:example.org:x")),
        refused("removeuser", frame(b"removeuser:alice:example.org")),
        refused("removeuser3", frame(b"removeuser3:alice:example.org:x")),
        accepted("a valid token after all that", auth(ALICE, &token)),
    ]);
}

#[test]
fn end_of_input_in_the_middle_of_a_frame_exits_cleanly() {
    let setup = Setup::new("");
    let mut input = frame(b"isuser:alice:example.org");
    input.extend_from_slice(&[0x00, 0x40, b'a', b'u']);
    let served = setup.serve(&[], input);
    assert_eq!(served.status.code(), Some(0), "{}", served.stderr);
    assert_eq!(
        served.stdout, TRUE,
        "one reply, true, to the whole isuser frame and none to the frame cut short"
    );
}

#[test]
fn isuser_answers_by_policy() {
    let served_domain_only = |policy: &str| {
        Setup::with_text(&format!(
            "otp_seed = \"{SEED}\"\nlog = \"none\"\n{policy}[domains.\"a.example\"]\ntoken_secret = \"{SECRET}\"\n"
        ))
    };
    // The policy, then whether bob is a user at a.example, and at b.example.
    let always = "isuser = \"always\"\n";
    let cases = [
        (
            "isuser unset, all domains served",
            Setup::new(""),
            true,
            true,
        ),
        ("isuser = \"always\"", Setup::new(always), true, true),
        (
            "isuser = \"never\"",
            Setup::new("isuser = \"never\"\n"),
            false,
            false,
        ),
        (
            "isuser unset, a.example served",
            served_domain_only(""),
            true,
            false,
        ),
        (
            "isuser = \"always\", a.example served",
            served_domain_only(always),
            true,
            true,
        ),
    ];
    for (policy, setup, at_a, at_b) in cases {
        let at = |verdict: bool, what: &str, request: &[u8]| Expect {
            what: format!("{policy}: {what}"),
            request: frame(request),
            verdict,
        };
        setup.expect_verdicts(&[
            at(at_a, "bob at a.example", b"isuser:bob:a.example"),
            at(at_b, "bob at b.example", b"isuser:bob:b.example"),
        ]);
    }
}

#[test]
fn each_domain_checks_tokens_with_its_own_keys() {
    let domain_secret = "a-different-secret-for-a.example";
    let domain_seed = "E3W374VRSFO4NVKE";
    let setup = Setup::new(&format!(
        "[domains.\"a.example\"]\ntoken_secret = \"{domain_secret}\"\notp_seed = \"{domain_seed}\"\n"
    ));
    let now = now();
    let (a_secret, a_seed) = (domain_secret, domain_seed);
    setup.expect_verdicts(&[
        accepted(
            "a.example, its own keys",
            signed("bob@a.example", a_secret, a_seed, "1", now),
        ),
        refused(
            "a.example, the global keys",
            signed("bob@a.example", SECRET, SEED, "2", now),
        ),
        accepted(
            "b.example, the global keys",
            signed("bob@b.example", SECRET, SEED, "3", now),
        ),
        refused(
            "b.example, a.example's keys",
            signed("bob@b.example", a_secret, a_seed, "4", now),
        ),
    ]);
}

#[test]
fn tokens_under_the_previous_secret_and_seed_still_verify_during_rotation() {
    let (old_secret, old_seed) = ("the-old-secret-still-in-rotation", "E3W374VRSFO4NVKE");
    let setup = Setup::with_text(&format!(
        "log = \"none\"\ntoken_secret = [\"{SECRET}\", \"{old_secret}\"]\notp_seed = [\"{SEED}\", \"{old_seed}\"]\n"
    ));
    let now = now();
    const BOB: &str = "bob@x.example";
    let unknown = "never-configured-secret-0123456";
    setup.expect_verdicts(&[
        accepted(
            "the previous secret and seed",
            signed(BOB, old_secret, old_seed, "1", now),
        ),
        accepted(
            "the current secret and seed",
            signed(BOB, SECRET, SEED, "2", now),
        ),
        refused(
            "a secret never configured",
            signed(BOB, unknown, SEED, "3", now),
        ),
    ]);
}

#[test]
fn generate_then_verify_then_serve_accepts_the_token_once() {
    let setup = Setup::new("");
    let (code, token, _) = setup.run(&["generate", "carol@example.org"]);
    assert_eq!(code, 0);
    let token = token.trim_end();
    let (code, verdict, _) = setup.run(&["verify", "carol@example.org", token]);
    assert_eq!(
        (code, verdict.as_str()),
        (0, "valid: token for carol@example.org\n")
    );
    // verify never records: the token still logs in, once.
    const CAROL: &str = "carol@example.org";
    setup.expect_verdicts(&[
        accepted(
            "carol logs in with the token verify checked",
            auth(CAROL, token),
        ),
        refused("the same token again: a replay", auth(CAROL, token)),
    ]);
}

#[test]
fn line_protocol_over_pipes() {
    let setup = Setup::new("");
    let token = token(ALICE, "5");
    let request = format!("auth:alice:example.org:{token}");
    let line = |text: &str| format!("{text}\n").into_bytes();
    setup.expect_verdicts_over(
        &["--protocol", "line"],
        Framing::Line,
        &[
            accepted(
                "alice logs in, her line ending in \\r\\n",
                line(&format!("{request}\r")),
            ),
            accepted("isuser alice", line("isuser:alice:example.org")),
            refused("an empty line", line("")),
            refused("a line of 200 000 bytes", line(&"x".repeat(200_000))),
            refused("alice's token again: a replay", line(&request)),
        ],
    );
}

#[test]
fn protocol_key_of_the_configuration_selects_the_framing() {
    let setup = Setup::new("protocol = \"line\"\n");
    let isuser = "isuser in a line, as protocol = \"line\" says";
    let story = [accepted(isuser, b"isuser:a:b\n".to_vec())];
    setup.expect_verdicts_over(&[], Framing::Line, &story);
    let isuser = "isuser in a frame, as --protocol ejabberd overrides";
    let story = [accepted(isuser, frame(b"isuser:a:b"))];
    setup.expect_verdicts_over(&["--protocol", "ejabberd"], Framing::Ejabberd, &story);
}

/// Starts the helper and waits until it has answered one request, so that it
/// is idle in `read` when the test goes on.
fn started(
    setup: &Setup,
) -> (
    std::process::Child,
    std::process::ChildStdin,
    std::process::ChildStdout,
) {
    let mut child = setup.spawn(&[]);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(&frame(b"isuser:a:b")).unwrap();
    let reply = read_reply(&mut stdout, "the reply to the first request");
    assert_eq!(reply, TRUE, "the first request, an isuser, answered true");
    (child, stdin, stdout)
}

#[test]
fn termination_signals_end_the_helper_with_status_zero() {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let setup = Setup::new("");
        let (mut child, _stdin, _stdout) = started(&setup);
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
        let status = wait_with_deadline(
            &mut child,
            DEADLINE,
            &format!("the exit on signal {signal}"),
        );
        assert_eq!(status.code(), Some(0), "signal {signal}: {status:?}");
    }
}

#[test]
fn a_closed_stdout_ends_the_helper_with_status_zero() {
    let setup = Setup::new("");
    let (mut child, mut stdin, stdout) = started(&setup);
    drop(stdout);
    // The reply to a request now cannot be delivered, and one request would
    // do; but a child of another test between its fork and its exec holds a
    // copy of this stdout's reading end too, and a reply written then still
    // goes into the pipe. So one more request every 50 ms until the helper
    // has gone. Its stdin stays open: only the closed stdout can end it.
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        let _ = stdin.write_all(&frame(b"isuser:a:b"));
        if exited_within(&mut child, Duration::from_millis(50)).is_some() {
            break;
        }
    }
    let status = wait_with_deadline(&mut child, Duration::ZERO, "the exit once stdout is closed");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn inherited_descriptors_are_closed_at_start() {
    let setup = Setup::new("");
    let leaked = std::fs::File::open(&setup.config).unwrap();
    let leaked_fd = std::os::fd::AsRawFd::as_raw_fd(&leaked);
    let mut command = setup.command(&[]);
    command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    // SAFETY: dup2 and fcntl are async-signal-safe, as pre_exec requires.
    unsafe {
        command.pre_exec(move || {
            // Like lpty: a descriptor without close-on-exec.
            if libc::dup2(leaked_fd, 9) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(&frame(b"isuser:a:b")).unwrap();
    let reply = read_reply(&mut stdout, "the reply to an isuser");
    assert_eq!(reply, TRUE, "an isuser, answered true");
    let open: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", child.id()))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    drop(stdin);
    let status = wait_with_deadline(&mut child, DEADLINE, "the exit at the end of input");
    assert_eq!(status.code(), Some(0));
    let mut open = open;
    open.sort();
    assert_eq!(open, ["0", "1", "2"]);
}

#[test]
fn log_lines_name_the_decision_but_never_the_token_or_keys() {
    let setup = Setup::new("log = \"stderr\"\n");
    let token = token(ALICE, "31337");
    let served = setup.serve(
        &[],
        [
            auth(ALICE, &token),
            auth(ALICE, &token),
            auth("eve@example.org", "hunter2:pass"),
        ]
        .concat(),
    );
    let log = served.stderr;
    assert!(log.contains("auth alice@example.org: accepted"), "{log}");
    assert!(
        log.contains("auth alice@example.org: refused (token was already used)"),
        "{log}"
    );
    assert!(
        log.contains("auth eve@example.org: refused (malformed token"),
        "{log}"
    );
    let signature = token.split_once(' ').unwrap().1;
    for secret in [&token[..8], signature, "hunter2", SECRET, SEED] {
        assert!(!log.contains(secret), "{secret:?} in {log}");
    }
}

#[test]
fn a_world_readable_configuration_is_warned_about_on_stderr() {
    let setup = Setup::new("");
    std::fs::set_permissions(
        &setup.config,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let served = setup.serve(&[], frame(b"isuser:a:b"));
    assert_eq!(served.stdout, TRUE, "an isuser, answered true all the same");
    assert!(
        served
            .stderr
            .contains("config.toml is readable by every user"),
        "{}",
        served.stderr
    );
}

#[test]
fn a_helper_with_a_broken_configuration_stays_up_refusing_and_heals_when_it_is_fixed() {
    // ejabberd restarts a helper that exits at start in a loop, until it
    // gives up on its whole pool: the helper must stay up instead.
    let setup = Setup::with_text(&format!(
        "token_secret_file = \"secret\"\notp_seed = \"{SEED}\"\nlog = \"stderr\"\n"
    ));
    let mut child = setup.spawn(&[]);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut ask = |what: &str, request: &[u8]| {
        stdin.write_all(request).unwrap();
        read_reply(&mut stdout, what)
    };
    let login = || auth(ALICE, &token(ALICE, &now().to_string()));
    assert_eq!(
        ask("a login while the key file is missing", &login()),
        FALSE,
        "refused, and the helper still answers"
    );
    assert_eq!(
        ask("isuser while unconfigured", &frame(b"isuser:a:b")),
        FALSE
    );
    let secret = setup.dir.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // The file appeared: the helper notices within a second or two.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut healed = false;
    while !healed && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        healed = ask("a login once the key file exists", &login()) == TRUE;
    }
    assert!(healed, "never healed");
    drop(stdin);
    let status = wait_with_deadline(
        &mut child,
        Duration::from_secs(30),
        "the exit at end of input",
    );
    assert_eq!(status.code(), Some(0));
    let log = read_to_end_within(
        child.stderr.as_mut().unwrap(),
        Duration::from_secs(30),
        "stderr",
    );
    let log = String::from_utf8_lossy(&log);
    assert!(
        log.contains("token_secret_file names a file that does not exist"),
        "{log}"
    );
    assert!(log.contains("refused (no usable configuration:"), "{log}");
    assert!(
        log.contains("usable again: serving for every domain"),
        "{log}"
    );
}

#[test]
fn helpers_sharing_a_replay_store_accept_a_token_once_between_them() {
    let setup = Setup::new("replay_store = \"replay\"\n");
    let token = token(ALICE, "2024");
    setup.expect_verdicts(&[accepted(
        "alice logs in through one helper",
        auth(ALICE, &token),
    )]);
    // Another helper process, as in ejabberd's pool, started afterwards.
    setup.expect_verdicts(&[refused(
        "the token again, through another helper",
        auth(ALICE, &token),
    )]);
    let (code, stdout, _) = setup.run(&["check-config"]);
    assert_eq!(code, 0);
    let store = setup.dir.path().join("replay");
    assert!(
        stdout.contains(&format!("in shared store {}", store.display())),
        "{stdout}"
    );
}

#[test]
fn helpers_racing_with_one_token_accept_it_exactly_once() {
    let setup = Setup::new("replay_store = \"replay\"\n");
    let mut helpers: Vec<_> = (0..8).map(|_| started(&setup)).collect();
    for round in 0..5 {
        let token = token(ALICE, &format!("77{round}"));
        let request = auth(ALICE, &token);
        // All at once: every helper gets the request before any answers.
        for (_, stdin, _) in &mut helpers {
            stdin.write_all(&request).unwrap();
        }
        let mut accepted = 0;
        for (helper, (_, _, stdout)) in helpers.iter_mut().enumerate() {
            let what = format!("round {round}: helper {helper}'s reply");
            let reply = read_reply(stdout, &what);
            assert!(reply == TRUE || reply == FALSE, "{what}: {reply:?}");
            accepted += usize::from(reply == TRUE);
        }
        assert_eq!(
            accepted, 1,
            "round {round}: helpers that accepted the token"
        );
    }
    for (helper, (mut child, stdin, _)) in helpers.into_iter().enumerate() {
        drop(stdin);
        let status = wait_with_deadline(&mut child, DEADLINE, &format!("helper {helper}'s exit"));
        assert_eq!(status.code(), Some(0), "helper {helper}");
    }
}

#[test]
fn an_unusable_replay_store_is_named_with_its_line_and_every_request_refused() {
    let setup = Setup::new("\nreplay_store = \"no/such/folder/replay\"\n");
    let served = setup.serve(&[], frame(b"isuser:a:b"));
    assert_eq!(
        served.status.code(),
        Some(0),
        "stays up, then ends with its input"
    );
    assert_eq!(
        served.stdout, FALSE,
        "refused while the store cannot be used"
    );
    let expected = "config.toml:5: replay_store: ";
    assert!(served.stderr.contains(expected), "{}", served.stderr);
    assert!(
        served
            .stderr
            .contains("no/such/folder/replay.lock: cannot open it"),
        "{}",
        served.stderr
    );
    assert!(
        served.stderr.contains("No such file or directory"),
        "{}",
        served.stderr
    );
}

#[test]
fn a_full_replay_cache_is_one_alarm_not_one_per_login() {
    let setup = Setup::new("log = \"stderr\"\nreplay_cache_size = 1\n");
    let login = |i: usize| auth(ALICE, &token(ALICE, &i.to_string()));
    let mut story = vec![accepted("login 0, taking the cache's one place", login(0))];
    story.extend((1..500).map(|i| refused(format!("login {i}, the cache full"), login(i))));
    let served = setup.serve(&[], story.iter().flat_map(|s| s.request.clone()).collect());
    assert_eq!(served.status.code(), Some(0));
    check_verdicts(&story, Framing::Ejabberd, &served.stdout, &served.stderr);
    let alarms: Vec<&str> = served
        .stderr
        .lines()
        .filter(|l| l.contains("replay cache is full"))
        .collect();
    assert_eq!(alarms.len(), 1, "{}", served.stderr);
    assert!(
        alarms[0].starts_with("xmpp-token-auth: error: auth alice@example.org: refused"),
        "{}",
        alarms[0]
    );
}

#[test]
fn a_store_replaced_by_a_link_is_an_alarm_naming_the_path_and_refuses() {
    let setup = Setup::new("log = \"stderr\"\nreplay_store = \"replay\"\n");
    let store = setup.dir.path().join("replay");
    let target = setup.dir.path().join("elsewhere");
    std::fs::write(&target, b"").unwrap();
    let (mut child, mut stdin, mut stdout) = started(&setup);
    let first = auth(ALICE, &token(ALICE, "1"));
    stdin.write_all(&first).unwrap();
    let reply = read_reply(&mut stdout, "the reply to a login, the store a file");
    assert_eq!(reply, TRUE, "a login, the store a file, accepted");
    std::fs::remove_file(&store).unwrap();
    std::os::unix::fs::symlink(&target, &store).unwrap();
    let second = auth(ALICE, &token(ALICE, "2"));
    stdin.write_all(&second).unwrap();
    let reply = read_reply(&mut stdout, "the reply to a login, the store a link");
    assert_eq!(
        reply, FALSE,
        "a login, the store a link, refused: fail closed"
    );
    drop(stdin);
    let stderr = read_in_background(child.stderr.take().unwrap(), "the helper's stderr");
    let status = wait_with_deadline(&mut child, DEADLINE, "the exit at the end of input");
    let stderr = String::from_utf8(joined(stderr)).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let expected = format!(
        "xmpp-token-auth: error: auth alice@example.org: refused (replay store failed, refusing tokens until it works again: {} is a symbolic link",
        store.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert_eq!(
        std::fs::read(&target).unwrap(),
        b"",
        "the link's target is untouched"
    );
}

#[test]
fn a_helper_started_with_stdout_closed_writes_replies_into_no_file() {
    let setup = Setup::new("replay_store = \"replay\"\n");
    let mut command = setup.command(&[]);
    command
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    // SAFETY: close is async-signal-safe, as pre_exec requires.
    unsafe {
        command.pre_exec(|| {
            libc::close(1);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let login = auth(ALICE, &token(ALICE, "1"));
    stdin
        .write_all(&[login, frame(b"isuser:a:b")].concat())
        .unwrap();
    drop(stdin);
    let status = wait_with_deadline(&mut child, DEADLINE, "the exit at the end of input");
    assert_eq!(status.code(), Some(0));
    // Without care, the store's lock file (the first file opened) became
    // descriptor 1 and received the replies.
    let lock = std::fs::read(setup.dir.path().join("replay.lock")).unwrap();
    assert!(lock.is_empty(), "replies in the lock file: {lock:?}");
    let store = std::fs::read(setup.dir.path().join("replay")).unwrap();
    assert_eq!(store.len(), 8 + 24, "the header and one record: {store:?}");
}

#[test]
fn a_log_file_gets_every_decision_and_a_new_file_after_logrotate_moves_it() {
    let setup = Setup::new("log = \"file:helper.log\"\n");
    let log = setup.dir.path().join("helper.log");
    let mut child = setup.spawn(&[]);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin
        .write_all(&frame(b"isuser:alice:example.org"))
        .unwrap();
    assert_eq!(read_reply(&mut stdout, "isuser"), TRUE);
    std::fs::rename(&log, setup.dir.path().join("helper.log.1")).unwrap();
    // The move is noticed within a second.
    std::thread::sleep(Duration::from_millis(1100));
    stdin.write_all(&frame(b"isuser:bob:example.org")).unwrap();
    assert_eq!(read_reply(&mut stdout, "isuser"), TRUE);
    drop(stdin);
    let status = wait_with_deadline(&mut child, Duration::from_secs(30), "the exit");
    assert_eq!(status.code(), Some(0));
    let rotated = std::fs::read_to_string(setup.dir.path().join("helper.log.1")).unwrap();
    let current = std::fs::read_to_string(&log).unwrap();
    assert!(
        rotated.contains("isuser alice@example.org: accepted"),
        "{rotated}"
    );
    assert!(
        current.contains("isuser bob@example.org: accepted"),
        "{current}"
    );
    assert!(!current.contains("alice"), "{current}");
}

#[test]
fn a_closed_stderr_never_costs_a_reply() {
    // `log = "stderr"` (or syslog falling back to it) with the XMPP server's
    // end of stderr gone: the log line is lost, the reply is not.
    let setup = Setup::new("log = \"stderr\"\n");
    let mut child = setup.spawn(&[]);
    drop(child.stderr.take());
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    for round in 0..3 {
        stdin
            .write_all(&frame(b"isuser:alice:example.org"))
            .unwrap();
        assert_eq!(
            read_reply(&mut stdout, &format!("isuser, round {round}")),
            TRUE
        );
    }
    drop(stdin);
    let status = wait_with_deadline(&mut child, Duration::from_secs(30), "the exit");
    assert_eq!(status.code(), Some(0), "{status:?}");
}
