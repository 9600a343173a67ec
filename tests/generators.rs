//! The application-side token generators in contrib/generators/ mint exactly
//! the vectors' tokens and tokens the real binary accepts, use nonces of
//! exactly `nonce_digits` digits, warn about upper case in the JID, and never
//! put a key on any process's command line.
//!
//! A generator whose interpreter (or tools) this machine lacks is skipped,
//! and said so on stderr; with `XMPP_TOKEN_AUTH_REQUIRE_ALL_GENERATORS=1`
//! (CI) a missing one fails the tests instead.

mod common;

use common::vectors::{self, Vector};
use common::*;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

struct Generator {
    language: &'static str,
    interpreter: &'static str,
    script: &'static str,
    /// Every program the generator needs on PATH, the interpreter first.
    needs: &'static [&'static str],
}

const GENERATORS: [Generator; 4] = [
    Generator {
        language: "python",
        interpreter: "python3",
        script: "xmpp_token.py",
        needs: &["python3"],
    },
    Generator {
        language: "php",
        interpreter: "php",
        script: "xmpp_token.php",
        needs: &["php"],
    },
    Generator {
        language: "node",
        interpreter: "node",
        script: "xmpp_token.js",
        needs: &["node"],
    },
    Generator {
        language: "shell",
        interpreter: "sh",
        script: "xmpp-token.sh",
        needs: &["sh", "openssl", "od", "awk", "tr", "cut", "date"],
    },
];

const REQUIRE_ALL: &str = "XMPP_TOKEN_AUTH_REQUIRE_ALL_GENERATORS";

/// Every variable the generators read, removed from the inherited
/// environment so that only what a test sets counts.
const VARIABLES: [&str; 7] = [
    "XMPP_TOKEN_SECRET",
    "XMPP_OTP_SEED",
    "XMPP_OTP_DIGITS",
    "XMPP_OTP_INTERVAL",
    "XMPP_TOKEN_AT",
    "XMPP_TOKEN_NONCE",
    "XMPP_NONCE_DIGITS",
];

const JID: &str = "alice@example.org";

fn on_path(path: &OsStr, program: &str) -> bool {
    std::env::split_paths(path).any(|dir| {
        std::fs::metadata(dir.join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// The generators all of whose programs are on `path`, and for the others
/// a description of what is missing.
fn availability(path: &OsStr) -> (Vec<&'static Generator>, Vec<String>) {
    let mut runnable = Vec::new();
    let mut missing = Vec::new();
    for g in &GENERATORS {
        let absent: Vec<&str> = g
            .needs
            .iter()
            .copied()
            .filter(|program| !on_path(path, program))
            .collect();
        if absent.is_empty() {
            runnable.push(g);
        } else {
            missing.push(format!("{} ({} not found)", g.language, absent.join(", ")));
        }
    }
    (runnable, missing)
}

/// The generators this machine can run, decided once per test binary. The
/// skipped ones are reported on the real stderr, which the test harness
/// does not capture, so that a passing `cargo test` still says what it did
/// not test.
fn runnable() -> &'static [&'static Generator] {
    static RUNNABLE: OnceLock<Vec<&'static Generator>> = OnceLock::new();
    RUNNABLE.get_or_init(|| {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let (runnable, missing) = availability(&path);
        if !missing.is_empty() {
            let missing = missing.join("; ");
            if std::env::var(REQUIRE_ALL).as_deref() == Ok("1") {
                panic!("{REQUIRE_ALL}=1, but these generators cannot run: {missing}");
            }
            let _ = writeln!(
                std::io::stderr(),
                "tests/generators.rs: SKIPPED the generators of {missing}; \
                 set {REQUIRE_ALL}=1 to make this a failure"
            );
        }
        runnable
    })
}

#[test]
fn a_generator_runs_only_with_all_its_programs_on_path() {
    let (runnable, missing) = availability(OsStr::new(""));
    assert!(runnable.is_empty());
    assert_eq!(missing.len(), GENERATORS.len(), "{missing:?}");
    let dir = tempfile::tempdir().unwrap();
    for program in ["python3", "sh", "awk", "od", "tr", "cut", "date"] {
        let path = dir.path().join(program);
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // Not executable: not there.
    std::fs::write(dir.path().join("node"), "").unwrap();
    let (runnable, missing) = availability(dir.path().as_os_str());
    let languages: Vec<&str> = runnable.iter().map(|g| g.language).collect();
    assert_eq!(languages, ["python"]);
    assert_eq!(
        missing,
        [
            "php (php not found)",
            "node (node not found)",
            "shell (openssl not found)"
        ]
    );
}

impl Generator {
    /// The generator run for `jid` with the default keys, the inherited
    /// XMPP_* variables removed, then `env` set.
    fn run(&self, jid: &str, env: &[(&str, &str)]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("contrib/generators")
            .join(self.script);
        let mut command = Command::new(self.interpreter);
        command.arg(script).arg(jid);
        for name in VARIABLES {
            command.env_remove(name);
        }
        command
            .env("XMPP_TOKEN_SECRET", SECRET)
            .env("XMPP_OTP_SEED", SEED);
        for (name, value) in env {
            command.env(name, value);
        }
        command
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} ({e})", self.interpreter))
    }

    /// The token minted, checking a clean exit without any message.
    fn mint(&self, jid: &str, env: &[(&str, &str)]) -> String {
        let out = self.run(jid, env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stderr}", self.language);
        assert_eq!(stderr, "", "{}: nothing on stderr", self.language);
        let stdout = String::from_utf8(out.stdout).unwrap();
        let token = stdout
            .strip_suffix('\n')
            .unwrap_or_else(|| panic!("{}: one line: {stdout:?}", self.language));
        assert!(
            !token.contains('\n'),
            "{}: one line: {stdout:?}",
            self.language
        );
        token.to_string()
    }
}

/// The nonce of `token`, whose OTP has `otp_digits` digits.
fn nonce_of(token: &str, otp_digits: usize) -> &str {
    let (digits, _) = token.split_once(' ').expect("a token has a space");
    assert!(
        digits.bytes().all(|b| b.is_ascii_digit()),
        "only digits before the space: {token}"
    );
    &digits[otp_digits..]
}

#[test]
fn every_generator_reproduces_every_valid_vector() {
    let vectors = vectors::load();
    let valid: Vec<&Vector> = vectors.tokens.iter().filter(|v| v.valid).collect();
    assert!(valid.len() >= 10, "{} valid vectors", valid.len());
    assert!(
        valid.iter().any(|v| v.settings.nonce_digits.is_some())
            && valid.iter().any(|v| v.settings.otp_digits.is_some()),
        "the vectors cover other settings too"
    );
    let mut compared = 0;
    for g in runnable() {
        let mut compared_here = 0;
        for v in &valid {
            let s = v.settings;
            let otp_digits = s.otp_digits.unwrap_or(8);
            let interval = s.otp_interval.unwrap_or(30);
            let nonce = nonce_of(&v.token, otp_digits as usize);
            assert_eq!(
                nonce.len(),
                s.nonce_digits.unwrap_or(32) as usize,
                "vector {}",
                v.name
            );
            let otp_digits = otp_digits.to_string();
            let interval_text = interval.to_string();
            let nonce_digits = s.nonce_digits.map(|n| n.to_string());
            // A vector's `at` is when it is verified: it was minted in that
            // step or a neighbouring one.
            let minted: Vec<String> = [v.at - interval, v.at, v.at + interval]
                .into_iter()
                .map(|at| {
                    let at = at.to_string();
                    let mut env = vec![
                        ("XMPP_TOKEN_SECRET", v.token_secret.as_str()),
                        ("XMPP_OTP_SEED", v.otp_seed.as_str()),
                        ("XMPP_TOKEN_AT", at.as_str()),
                        ("XMPP_TOKEN_NONCE", nonce),
                        ("XMPP_OTP_DIGITS", otp_digits.as_str()),
                        ("XMPP_OTP_INTERVAL", interval_text.as_str()),
                    ];
                    // Without the setting, the default of 32 must apply.
                    if let Some(n) = &nonce_digits {
                        env.push(("XMPP_NONCE_DIGITS", n));
                    }
                    g.mint(&v.jid, &env)
                })
                .collect();
            let wanted = v.token.trim_end_matches('=');
            assert!(
                minted.iter().any(|m| m.trim_end_matches('=') == wanted),
                "{} for vector {}: minted {minted:?}, wanted {}",
                g.language,
                v.name,
                v.token
            );
            assert!(
                minted.iter().all(|m| m.ends_with('=')),
                "{}: signatures are padded: {minted:?}",
                g.language
            );
            compared_here += 1;
        }
        assert_eq!(compared_here, valid.len(), "{}", g.language);
        compared += compared_here;
    }
    assert_eq!(compared, runnable().len() * valid.len());
}

#[test]
fn every_generator_mints_tokens_the_helper_accepts_once() {
    let setup = Setup::new("");
    let mut frames = Vec::new();
    for g in runnable() {
        let token = g.mint(JID, &[]);
        assert_eq!(nonce_of(&token, 8).len(), 32, "{}: {token}", g.language);
        let (code, verdict, _) = setup.run(&["verify", JID, &token]);
        assert_eq!(
            (code, verdict.as_str()),
            (0, "valid: token for alice@example.org\n"),
            "{}",
            g.language
        );
        frames.push(auth(JID, &token));
        frames.push(auth(JID, &token));
    }
    let replies = setup.replies(&frames);
    assert_eq!(replies, [TRUE, FALSE].repeat(runnable().len()));
}

#[test]
fn every_generator_refuses_a_nonce_of_another_length_or_with_non_digits() {
    let digits = "1234567890".repeat(7);
    let cases = [
        ("31 digits", digits[..31].to_string(), "nonce_digits"),
        ("33 digits", digits[..33].to_string(), "nonce_digits"),
        ("1 digit", "7".to_string(), "nonce_digits"),
        ("a letter", format!("{}a", &digits[..31]), "digits"),
        ("a space", format!("{} ", &digits[..31]), "digits"),
        ("a sign", format!("+{}", &digits[..31]), "digits"),
        ("a newline", format!("{}\n", &digits[..31]), "digits"),
        // 32 characters, and a digit to Python's isdigit().
        (
            "an Arabic-Indic digit",
            format!("\u{663}{}", &digits[..31]),
            "digits",
        ),
        (
            "the 42bob digits",
            format!("{}42", &digits[..32]),
            "nonce_digits",
        ),
    ];
    for g in runnable() {
        for (what, nonce, named) in &cases {
            let out = g.run(JID, &[("XMPP_TOKEN_NONCE", nonce)]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success(),
                "{}: a nonce with {what} is refused; it printed {:?}",
                g.language,
                String::from_utf8_lossy(&out.stdout)
            );
            assert_eq!(out.stdout, b"", "{}: no token for {what}", g.language);
            assert!(
                stderr.contains("nonce") && stderr.contains(named),
                "{}: {what}: the message names the rule: {stderr}",
                g.language
            );
        }
        // The same 33 digits are right once nonce_digits says so.
        let token = g.mint(
            JID,
            &[
                ("XMPP_TOKEN_NONCE", &digits[..33]),
                ("XMPP_NONCE_DIGITS", "33"),
            ],
        );
        assert_eq!(nonce_of(&token, 8), &digits[..33], "{}", g.language);
    }
}

#[test]
fn every_generator_refuses_a_nonce_length_out_of_range() {
    for g in runnable() {
        for value in ["0", "65", "100", "-1", "x", "3.5", " 5", "0x10"] {
            let out = g.run(JID, &[("XMPP_NONCE_DIGITS", value)]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && out.stdout.is_empty(),
                "{}: XMPP_NONCE_DIGITS={value:?} is refused",
                g.language
            );
            assert!(
                stderr.contains("nonce_digits") || stderr.contains("XMPP_NONCE_DIGITS"),
                "{}: XMPP_NONCE_DIGITS={value:?}: {stderr}",
                g.language
            );
        }
        for (value, length) in [("1", 1), ("064", 64), ("64", 64), ("", 32)] {
            let token = g.mint(JID, &[("XMPP_NONCE_DIGITS", value)]);
            assert_eq!(
                nonce_of(&token, 8).len(),
                length,
                "{}: XMPP_NONCE_DIGITS={value:?}: {token}",
                g.language
            );
        }
    }
}

#[test]
fn nonce_digits_5_makes_5_digit_nonces_the_helper_configured_so_accepts() {
    let setup = Setup::new("nonce_digits = 5\n");
    for g in runnable() {
        let token = g.mint(JID, &[("XMPP_NONCE_DIGITS", "5")]);
        assert_eq!(nonce_of(&token, 8).len(), 5, "{}: {token}", g.language);
        let (code, verdict, _) = setup.run(&["verify", JID, &token]);
        assert_eq!(
            (code, verdict.as_str()),
            (0, "valid: token for alice@example.org\n"),
            "{}: {token}",
            g.language
        );
        // A default-length token is malformed for this helper.
        let token = g.mint(JID, &[]);
        let (code, verdict, _) = setup.run(&["verify", JID, &token]);
        assert_ne!(code, 0, "{}: {verdict}", g.language);
        // A given 5-digit nonce is used as it is.
        let token = g.mint(
            JID,
            &[("XMPP_NONCE_DIGITS", "5"), ("XMPP_TOKEN_NONCE", "00420")],
        );
        assert_eq!(nonce_of(&token, 8), "00420", "{}", g.language);
        let (code, verdict, _) = setup.run(&["verify", JID, &token]);
        assert_eq!(code, 0, "{}: {verdict}", g.language);
    }
}

#[test]
fn an_empty_nonce_makes_a_fresh_32_digit_one() {
    let setup = Setup::new("");
    for g in runnable() {
        let first = g.mint(JID, &[("XMPP_TOKEN_NONCE", "")]);
        let second = g.mint(JID, &[("XMPP_TOKEN_NONCE", "")]);
        for token in [&first, &second] {
            assert_eq!(nonce_of(token, 8).len(), 32, "{}: {token}", g.language);
            let (code, verdict, _) = setup.run(&["verify", JID, token]);
            assert_eq!(code, 0, "{}: {verdict}", g.language);
        }
        assert_ne!(
            nonce_of(&first, 8),
            nonce_of(&second, 8),
            "{}: fresh nonces",
            g.language
        );
    }
}

#[test]
fn fresh_nonces_use_every_digit_about_equally() {
    // 16 nonces of 64 digits: 1024 digits, about 102 of each (standard
    // deviation about 10); the bounds are more than 5 deviations away.
    for g in runnable() {
        let mut counts = [0usize; 10];
        for _ in 0..16 {
            let token = g.mint(JID, &[("XMPP_NONCE_DIGITS", "64")]);
            for b in nonce_of(&token, 8).bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
        }
        assert_eq!(counts.iter().sum::<usize>(), 1024);
        assert!(
            counts.iter().all(|&n| (50..=155).contains(&n)),
            "{}: digit counts {counts:?}",
            g.language
        );
    }
}

#[test]
fn every_generator_warns_about_upper_case_anywhere_in_the_jid() {
    for g in runnable() {
        for (jid, lower) in [
            ("Alice@example.org", "alice@example.org"),
            ("alice@Example.org", "alice@example.org"),
            ("alice@example.orG", "alice@example.org"),
        ] {
            let out = g.run(jid, &[]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{}: {stderr}", g.language);
            let stdout = String::from_utf8(out.stdout).unwrap();
            assert_eq!(nonce_of(stdout.trim_end(), 8).len(), 32, "{}", g.language);
            let warning = format!(
                "XMPP servers lower-case the JID before asking the helper; \
                 this token is for {jid} exactly and will not log {lower} in"
            );
            assert!(
                stderr.contains("warning") && stderr.contains(&warning),
                "{}: {jid}: {stderr}",
                g.language
            );
            assert_eq!(stderr.lines().count(), 1, "{}: {stderr}", g.language);
        }
        // Lower case, digits and other scripts without case: no warning
        // (g.mint checks that stderr is empty).
        for jid in [
            "alice@example.org",
            "42bob@example.org",
            "jürgen@müller.example",
        ] {
            g.mint(jid, &[]);
        }
    }
}

/// The forms a key could take on a command line.
fn key_forms(name: &str, bytes: &[u8], text: Option<&str>) -> Vec<(String, Vec<u8>)> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let octal =
        |xor: u8| -> String { bytes.iter().map(|b| format!("\\{:03o}", b ^ xor)).collect() };
    let mut forms = vec![
        (format!("the hex of {name}"), hex.clone().into_bytes()),
        (
            format!("the upper-case hex of {name}"),
            hex.to_uppercase().into_bytes(),
        ),
        (format!("{name} in octal escapes"), octal(0).into_bytes()),
        (
            format!("{name} ^ ipad in octal escapes"),
            octal(0x36).into_bytes(),
        ),
        (
            format!("{name} ^ opad in octal escapes"),
            octal(0x5c).into_bytes(),
        ),
    ];
    for (what, xor) in [("ipad", 0x36), ("opad", 0x5c)] {
        let hex: String = bytes.iter().map(|b| format!("{:02x}", b ^ xor)).collect();
        forms.push((format!("the hex of {name} ^ {what}"), hex.into_bytes()));
    }
    if let Some(text) = text {
        forms.push((name.to_string(), text.as_bytes().to_vec()));
        forms.push((
            format!("{name} in lower case"),
            text.to_lowercase().into_bytes(),
        ));
    }
    forms
}

/// What the watcher saw: how often it looked, the command lines and
/// programs it saw, and the keys it found on any command line.
#[derive(Default)]
struct Sightings {
    scans: usize,
    command_lines: BTreeSet<String>,
    programs: BTreeSet<String>,
    leaks: BTreeSet<String>,
}

/// One look at every process's command line.
fn scan(forms: &[(String, Vec<u8>)], seen: &Mutex<Sightings>) {
    let mut found = Sightings::default();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        // Gone already, or a kernel thread: nothing to read.
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let program = cmdline.split(|&b| b == 0).next().unwrap_or_default();
        let program = String::from_utf8_lossy(program);
        let program = program.rsplit('/').next().unwrap_or_default().to_string();
        let mut leaked = false;
        for (what, form) in forms {
            if cmdline.windows(form.len()).any(|w| w == form) {
                // Never the command line itself, which holds the key.
                found
                    .leaks
                    .insert(format!("{what}, in the arguments of {program} (pid {pid})"));
                leaked = true;
            }
        }
        if !leaked {
            let command_line = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            found.command_lines.insert(command_line);
        }
        found.programs.insert(program);
    }
    let mut seen = seen.lock().unwrap();
    seen.scans += 1;
    seen.command_lines.append(&mut found.command_lines);
    seen.programs.append(&mut found.programs);
    seen.leaks.append(&mut found.leaks);
}

/// A thread that scans every process's command line about every
/// millisecond, from `start` until `stop` (or until dropped, should a test
/// fail meanwhile).
struct Watcher {
    seen: Arc<Mutex<Sightings>>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(forms: Vec<(String, Vec<u8>)>) -> Watcher {
        let seen = Arc::new(Mutex::new(Sightings::default()));
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, done) = (seen.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    scan(&forms, &seen);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        Watcher {
            seen,
            done,
            thread: Some(thread),
        }
    }

    fn saw_program(&self, program: &str) -> bool {
        self.seen.lock().unwrap().programs.contains(program)
    }

    fn stop(mut self) -> Sightings {
        self.done.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap();
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

#[test]
fn no_generator_puts_a_key_on_any_command_line() {
    // Fresh keys, so that no other process on this machine can hold them.
    let mut bytes = [0u8; 40];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .unwrap();
    let secret = xmpp_token_auth::core::totp::encode_base32(&bytes[..20]);
    let seed_bytes = &bytes[20..];
    let seed = xmpp_token_auth::core::totp::encode_base32(seed_bytes);
    let mut forms = key_forms("token_secret", secret.as_bytes(), Some(&secret));
    forms.extend(key_forms("the decoded otp_seed", seed_bytes, None));
    forms.extend(key_forms("otp_seed", seed.as_bytes(), Some(&seed)));
    let at = now();
    let nonce = "31415926535897932384626433832795";
    let wanted = format!("{}\n", token_with(&secret, &seed, JID, nonce, at));
    let at = at.to_string();
    let env = [
        ("XMPP_TOKEN_SECRET", secret.as_str()),
        ("XMPP_OTP_SEED", seed.as_str()),
        ("XMPP_TOKEN_AT", at.as_str()),
        ("XMPP_TOKEN_NONCE", nonce),
    ];
    for g in runnable() {
        let watcher = Watcher::start(forms.clone());
        // Several runs, and the shell generator's until the watcher has
        // caught one of its short-lived openssl processes: proof that it
        // looks often enough to see them. (With keys on openssl's command
        // line, as this generator had before, every run shows them to the
        // watcher twice, for a few milliseconds each.)
        let uses_openssl = g.needs.contains(&"openssl");
        let mut runs = 0;
        while runs < 8 || (uses_openssl && !watcher.saw_program("openssl") && runs < 50) {
            let out = g.run(JID, &env);
            assert!(
                out.status.success(),
                "{}: {}",
                g.language,
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                wanted,
                "{}",
                g.language
            );
            runs += 1;
        }
        let seen = watcher.stop();
        assert!(
            seen.leaks.is_empty(),
            "{}: a key on a command line, where every local user can read it \
             (/proc/*/cmdline): {:?}",
            g.language,
            seen.leaks
        );
        assert!(
            seen.command_lines.iter().any(|c| c.contains(g.script)),
            "{}: the watcher saw the generator run ({} scans)",
            g.language,
            seen.scans
        );
        assert!(
            !uses_openssl || seen.programs.contains("openssl"),
            "{}: the watcher saw an openssl process in {runs} runs ({} scans)",
            g.language,
            seen.scans
        );
        eprintln!("{}: {runs} runs, {} scans", g.language, seen.scans);
    }
}

#[test]
fn the_shell_generator_refuses_a_shell_whose_printf_is_not_builtin() {
    // The keys pass through printf: as a program of its own, its arguments
    // would be readable by every local user.
    if !runnable().iter().any(|g| g.language == "shell") {
        return; // reported as skipped by `runnable`
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/generators/xmpp-token.sh");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg("enable -n printf; . \"$0\" \"$@\"")
        .arg(&script)
        .arg("alice@example.org")
        .env("XMPP_TOKEN_SECRET", SECRET)
        .env("XMPP_OTP_SEED", SEED)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no token");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no builtin printf"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
