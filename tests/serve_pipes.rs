//! The real binary serving ejabberd frames and lines over pipes, as ejabberd
//! runs it.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::time::Duration;

#[test]
fn a_valid_token_logs_in_once() {
    let setup = Setup::new("");
    let token = token("alice@example.org", "12345678901234567890123456789012");
    let replies = setup.replies(&[
        auth("alice@example.org", &token),
        auth("alice@example.org", &token),
    ]);
    assert_eq!(replies, [TRUE, FALSE]);
}

#[test]
fn tokens_for_someone_else_or_out_of_time_or_tampered_are_refused() {
    let setup = Setup::new("");
    let now = now();
    let good = token("alice@example.org", "1");
    let mut tampered = good.clone().into_bytes();
    let last = tampered.len() - 2; // inside the signature, before the '='
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let replies = setup.replies(&[
        auth("bob@example.org", &good),
        auth("alice@example.net", &good),
        auth("alice@example.org", &tampered),
        signed("alice@example.org", SECRET, SEED, "2", now - 120),
        signed("alice@example.org", SECRET, SEED, "3", now + 120),
        signed(
            "alice@example.org",
            "another-secret-of-32-characters!",
            SEED,
            "4",
            now,
        ),
        auth("alice@example.org", "hunter2"),
        auth("alice@example.org", ""),
        auth("alice@example.org", &good),
    ]);
    assert_eq!(
        replies,
        [FALSE, FALSE, FALSE, FALSE, FALSE, FALSE, FALSE, FALSE, TRUE]
    );
}

#[test]
fn a_password_with_colons_keeps_the_stream_in_sync() {
    let setup = Setup::new("");
    let token = token("alice@example.org", "7");
    let replies = setup.replies(&[
        auth("alice@example.org", "a:b:c::"),
        auth("alice@example.org", &format!("{token}:extra")),
        auth("alice@example.org", &token),
    ]);
    assert_eq!(replies, [FALSE, FALSE, TRUE]);
}

#[test]
fn requests_written_one_byte_at_a_time_are_answered() {
    let setup = Setup::new("");
    let mut child = setup.spawn(&[]);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    for nonce in ["1", "2"] {
        for byte in auth("alice@example.org", &token("alice@example.org", nonce)) {
            stdin.write_all(&[byte]).unwrap();
            stdin.flush().unwrap();
            std::thread::sleep(Duration::from_micros(300));
        }
        // The reply arrives before any more input: it was flushed.
        let mut reply = [0u8; 4];
        stdout.read_exact(&mut reply).unwrap();
        assert_eq!(reply, TRUE);
    }
    drop(stdin);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn ten_thousand_pipelined_requests_are_answered_in_order() {
    let setup = Setup::new("");
    let now = now();
    let mut frames = Vec::new();
    let mut expected = Vec::new();
    for i in 0..10_000u32 {
        let jid = format!("user{}@example.org", i % 97);
        // Every third request is a token signed for someone else.
        let signed_for = if i % 3 == 0 {
            "mallory@example.org"
        } else {
            &jid
        };
        frames.push(auth(
            &jid,
            &token_with(SECRET, SEED, signed_for, &i.to_string(), now),
        ));
        expected.push(if i % 3 == 0 { FALSE } else { TRUE });
    }
    assert_eq!(setup.replies(&frames), expected);
}

#[test]
fn garbage_frames_are_refused_and_a_valid_one_after_them_still_works() {
    let setup = Setup::new("");
    let token = token("alice@example.org", "99");
    let replies = setup.replies(&[
        frame(b""),
        frame([0xff, 0xfe, 0x00]),
        frame(b"auth"),
        frame(b"auth:alice"),
        frame(b"auth:alice:example.org"),
        frame(b"certauth:alice:example.org"),
        frame(b"AUTH:alice:example.org:x"),
        frame(vec![b'a'; 65535]),
        frame(b"setpass:alice:example.org:x"),
        frame(b"tryregister:alice:example.org:x"),
        frame(b"removeuser:alice:example.org"),
        frame(b"removeuser3:alice:example.org:x"),
        auth("alice@example.org", &token),
    ]);
    let mut expected = vec![FALSE; 12];
    expected.push(TRUE);
    assert_eq!(replies, expected);
}

#[test]
fn end_of_input_in_the_middle_of_a_frame_exits_cleanly() {
    let setup = Setup::new("");
    let mut input = frame(b"isuser:alice:example.org");
    input.extend_from_slice(&[0x00, 0x40, b'a', b'u']);
    let served = setup.serve(&[], input);
    assert_eq!(served.status.code(), Some(0));
    assert_eq!(served.stdout, TRUE);
}

#[test]
fn isuser_answers_by_policy() {
    let served_domain_only = |policy: &str| {
        Setup::with_text(&format!(
            "otp_seed = \"{SEED}\"\nlog = \"none\"\n{policy}[domains.\"a.example\"]\ntoken_secret = \"{SECRET}\"\n"
        ))
    };
    let cases = [
        (Setup::new(""), [TRUE, TRUE]),
        (Setup::new("isuser = \"always\"\n"), [TRUE, TRUE]),
        (Setup::new("isuser = \"never\"\n"), [FALSE, FALSE]),
        (served_domain_only(""), [TRUE, FALSE]),
        (served_domain_only("isuser = \"always\"\n"), [TRUE, TRUE]),
    ];
    for (setup, expected) in cases {
        let replies = setup.replies(&[
            frame(b"isuser:bob:a.example"),
            frame(b"isuser:bob:b.example"),
        ]);
        assert_eq!(
            replies,
            expected,
            "{}",
            std::fs::read_to_string(&setup.config).unwrap()
        );
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
    let replies = setup.replies(&[
        signed("bob@a.example", domain_secret, domain_seed, "1", now),
        signed("bob@a.example", SECRET, SEED, "2", now),
        signed("bob@b.example", SECRET, SEED, "3", now),
        signed("bob@b.example", domain_secret, domain_seed, "4", now),
    ]);
    assert_eq!(replies, [TRUE, FALSE, TRUE, FALSE]);
}

#[test]
fn tokens_under_the_previous_secret_and_seed_still_verify_during_rotation() {
    let (old_secret, old_seed) = ("the-old-secret-still-in-rotation", "E3W374VRSFO4NVKE");
    let setup = Setup::with_text(&format!(
        "log = \"none\"\ntoken_secret = [\"{SECRET}\", \"{old_secret}\"]\notp_seed = [\"{SEED}\", \"{old_seed}\"]\n"
    ));
    let now = now();
    let replies = setup.replies(&[
        signed("bob@x.example", old_secret, old_seed, "1", now),
        signed("bob@x.example", SECRET, SEED, "2", now),
        signed(
            "bob@x.example",
            "never-configured-secret-0123456",
            SEED,
            "3",
            now,
        ),
    ]);
    assert_eq!(replies, [TRUE, TRUE, FALSE]);
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
    let replies = setup.replies(&[
        auth("carol@example.org", token),
        auth("carol@example.org", token),
    ]);
    assert_eq!(replies, [TRUE, FALSE]);
}

#[test]
fn line_protocol_over_pipes() {
    let setup = Setup::new("");
    let token = token("alice@example.org", "5");
    let mut input =
        format!("auth:alice:example.org:{token}\r\nisuser:alice:example.org\n\n").into_bytes();
    input.extend(vec![b'x'; 200_000]);
    input.extend_from_slice(format!("\nauth:alice:example.org:{token}\n").as_bytes());
    let served = setup.serve(&["--protocol", "line"], input);
    assert_eq!(served.status.code(), Some(0));
    assert_eq!(served.stdout, b"1\n1\n0\n0\n0\n");
}

#[test]
fn protocol_key_of_the_configuration_selects_the_framing() {
    let setup = Setup::new("protocol = \"line\"\n");
    let served = setup.serve(&[], b"isuser:a:b\n".to_vec());
    assert_eq!(served.stdout, b"1\n");
    let served = setup.serve(&["--protocol", "ejabberd"], frame(b"isuser:a:b"));
    assert_eq!(served.stdout, TRUE);
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
    let mut reply = [0u8; 4];
    stdout.read_exact(&mut reply).unwrap();
    assert_eq!(reply, TRUE);
    (child, stdin, stdout)
}

#[test]
fn termination_signals_end_the_helper_with_status_zero() {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let setup = Setup::new("");
        let (mut child, _stdin, _stdout) = started(&setup);
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "signal {signal}: {status:?}");
    }
}

#[test]
fn a_closed_stdout_ends_the_helper_with_status_zero() {
    let setup = Setup::new("");
    let (mut child, mut stdin, stdout) = started(&setup);
    drop(stdout);
    // The reply to this request cannot be delivered.
    let _ = stdin.write_all(&frame(b"isuser:a:b"));
    let status = child.wait().unwrap();
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
    let mut reply = [0u8; 4];
    stdout.read_exact(&mut reply).unwrap();
    let open: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", child.id()))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    drop(stdin);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let mut open = open;
    open.sort();
    assert_eq!(open, ["0", "1", "2"]);
}

#[test]
fn log_lines_name_the_decision_but_never_the_token_or_keys() {
    let setup = Setup::new("log = \"stderr\"\n");
    let token = token("alice@example.org", "31337");
    let served = setup.serve(
        &[],
        [
            auth("alice@example.org", &token),
            auth("alice@example.org", &token),
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
    assert_eq!(served.stdout, TRUE);
    assert!(
        served
            .stderr
            .contains("config.toml is readable by every user"),
        "{}",
        served.stderr
    );
}

#[test]
fn a_bad_configuration_stops_the_helper_at_start_with_a_precise_error() {
    let setup = Setup::new("otp_digits = 5\n");
    let served = setup.serve(&[], frame(b"isuser:a:b"));
    assert_eq!(served.status.code(), Some(2));
    assert!(served.stdout.is_empty());
    assert!(
        served
            .stderr
            .contains("config.toml:4: otp_digits = 5 is out of range: allowed 6 to 10 digits"),
        "{}",
        served.stderr
    );
}

#[test]
fn helpers_sharing_a_replay_store_accept_a_token_once_between_them() {
    let setup = Setup::new("replay_store = \"replay\"\n");
    let token = token("alice@example.org", "2024");
    assert_eq!(setup.replies(&[auth("alice@example.org", &token)]), [TRUE]);
    // Another helper process, as in ejabberd's pool, started afterwards.
    assert_eq!(setup.replies(&[auth("alice@example.org", &token)]), [FALSE]);
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
        let token = token("alice@example.org", &format!("77{round}"));
        let request = auth("alice@example.org", &token);
        // All at once: every helper gets the request before any answers.
        for (_, stdin, _) in &mut helpers {
            stdin.write_all(&request).unwrap();
        }
        let mut accepted = 0;
        for (_, _, stdout) in &mut helpers {
            let mut reply = [0u8; 4];
            stdout.read_exact(&mut reply).unwrap();
            accepted += usize::from(reply == TRUE);
        }
        assert_eq!(accepted, 1, "round {round}");
    }
    for (mut child, stdin, _) in helpers {
        drop(stdin);
        assert_eq!(child.wait().unwrap().code(), Some(0));
    }
}

#[test]
fn an_unusable_replay_store_stops_the_helper_at_start_naming_the_line() {
    let setup = Setup::new("\nreplay_store = \"no/such/folder/replay\"\n");
    let served = setup.serve(&[], frame(b"isuser:a:b"));
    assert_eq!(served.status.code(), Some(2));
    assert!(served.stdout.is_empty());
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
    let frames: Vec<Vec<u8>> = (0..500)
        .map(|i| {
            auth(
                "alice@example.org",
                &token("alice@example.org", &i.to_string()),
            )
        })
        .collect();
    let served = setup.serve(&[], frames.concat());
    assert_eq!(served.status.code(), Some(0));
    assert_eq!(served.stdout, [TRUE.to_vec(), FALSE.repeat(499)].concat());
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
    let first = auth("alice@example.org", &token("alice@example.org", "1"));
    stdin.write_all(&first).unwrap();
    let mut reply = [0u8; 4];
    stdout.read_exact(&mut reply).unwrap();
    assert_eq!(reply, TRUE);
    std::fs::remove_file(&store).unwrap();
    std::os::unix::fs::symlink(&target, &store).unwrap();
    let second = auth("alice@example.org", &token("alice@example.org", "2"));
    stdin.write_all(&second).unwrap();
    stdout.read_exact(&mut reply).unwrap();
    assert_eq!(reply, FALSE, "fail closed");
    drop(stdin);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
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
    let login = auth("alice@example.org", &token("alice@example.org", "1"));
    stdin
        .write_all(&[login, frame(b"isuser:a:b")].concat())
        .unwrap();
    drop(stdin);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    // Without care, the store's lock file (the first file opened) became
    // descriptor 1 and received the replies.
    let lock = std::fs::read(setup.dir.path().join("replay.lock")).unwrap();
    assert!(lock.is_empty(), "replies in the lock file: {lock:?}");
    let store = std::fs::read(setup.dir.path().join("replay")).unwrap();
    assert_eq!(store.len(), 8 + 24, "the header and one record: {store:?}");
}
