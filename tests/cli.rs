//! The subcommands of the real binary: exact output and exit codes, as an
//! operator would see them.

mod common;

use common::*;

const REFERENCE: &str =
    "2320461112345678901234567890123456789012 CvG8SD8xBqMAYwUXzRDvurYvL+mmXwWHlRKtckyTHtQ=";

fn reference_setup() -> Setup {
    Setup::with_text(
        "token_secret = \"JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7\"\notp_seed = \"E3W374VRSFO4NVKE\"\n",
    )
}

#[test]
fn generate_reproduces_the_reference_token() {
    let setup = reference_setup();
    let out = setup.run(&[
        "generate",
        "root@localhost",
        "--nonce",
        "12345678901234567890123456789012",
        "--at",
        "1700000000",
    ]);
    assert_eq!(out, (0, format!("{REFERENCE}\n"), String::new()));
}

#[test]
fn generate_makes_nonces_of_nonce_digits() {
    let setup = Setup::with_text(
        "token_secret = \"JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7\"\notp_seed = \"E3W374VRSFO4NVKE\"\nnonce_digits = 5\n",
    );
    let (code, token, _) = setup.run(&["generate", "root@localhost"]);
    assert_eq!(code, 0);
    assert_eq!(token.split(' ').next().unwrap().len(), 8 + 5, "{token}");
    let (code, _, stderr) = setup.run(&["generate", "root@localhost", "--nonce", "123456"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("exactly 5 (nonce_digits)"), "{stderr}");
    let (code, verdict, _) = setup.run(&["verify", "root@localhost", token.trim_end()]);
    assert_eq!(
        (code, verdict.as_str()),
        (0, "valid: token for root@localhost\n")
    );
}

#[test]
fn generate_makes_a_fresh_32_digit_nonce_each_time() {
    let setup = reference_setup();
    let (_, first, _) = setup.run(&["generate", "root@localhost"]);
    let (_, second, _) = setup.run(&["generate", "root@localhost"]);
    let digits = first.split(' ').next().unwrap();
    assert_eq!(digits.len(), 8 + 32);
    assert!(digits.bytes().all(|b| b.is_ascii_digit()));
    assert_ne!(first, second);
    assert!(first.trim_end().ends_with('='), "padded base64: {first}");
}

#[test]
fn generate_refuses_what_no_server_could_accept() {
    let setup = reference_setup();
    for (args, message) in [
        (
            &["generate", "root"][..],
            "\"root\" is not a bare JID of the form user@domain",
        ),
        (&["generate", "root@localhost/res"], "is not a bare JID"),
        (
            &["generate", "root@localhost", "--nonce", "12ab"],
            "--nonce must be ASCII digits only",
        ),
        (
            &["generate", "root@localhost", "--nonce", "1234"],
            "--nonce has 4 digits, but tokens carry exactly 32 (nonce_digits)",
        ),
        (
            &["generate", "root@localhost", "--nonce", ""],
            "--nonce has 0 digits, but tokens carry exactly 32 (nonce_digits)",
        ),
    ] {
        let (code, stdout, stderr) = setup.run(args);
        assert_eq!((code, stdout.as_str()), (2, ""), "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let (code, _, stderr) = setup.run(&["generate", "Root@localhost"]);
    assert_eq!(code, 0);
    assert!(
        stderr.contains("will not log root@localhost in"),
        "{stderr}"
    );
}

#[test]
fn verify_gives_the_verdict_and_the_reason() {
    let setup = reference_setup();
    let cases = [
        (
            "1700000000",
            "root@localhost",
            REFERENCE,
            0,
            "valid: token for root@localhost\n",
        ),
        (
            "1700000100",
            "root@localhost",
            REFERENCE,
            1,
            "invalid: OTP outside window\n",
        ),
        (
            "1700000000",
            "admin@localhost",
            REFERENCE,
            1,
            "invalid: bad signature\n",
        ),
        (
            "1700000000",
            "root@localhost",
            "23204611 CvG8",
            1,
            "invalid: malformed token: the code part is not 8 OTP digits followed by nonce digits\n",
        ),
        (
            "1700000000",
            "root@localhost",
            "2320461112345678901234 CvG8SD8xBqMAYwUXzRDvurYvL+mmXwWHlRKtckyTHtQ=",
            1,
            "invalid: malformed token: nonce has 14 digits, expected 32 (nonce_digits)\n",
        ),
    ];
    for (at, jid, token, code, stdout) in cases {
        let out = setup.run(&["verify", jid, token, "--at", at]);
        assert_eq!(
            out,
            (code, stdout.to_string(), String::new()),
            "{jid} {token} at {at}"
        );
    }
}

#[test]
fn verify_names_an_unknown_domain() {
    let setup = Setup::with_text(&format!(
        "otp_seed = \"{SEED}\"\n[domains.\"a.example\"]\ntoken_secret = \"{SECRET}\"\n"
    ));
    let (code, stdout, _) = setup.run(&["verify", "bob@b.example", REFERENCE]);
    assert_eq!(
        (code, stdout.as_str()),
        (1, "invalid: unknown domain b.example (served: a.example)\n")
    );
}

#[test]
fn verify_agrees_with_every_vector() {
    let vectors = common::vectors::load().tokens;
    assert!(vectors.len() >= 26);
    for v in &vectors {
        let config = format!(
            "token_secret = \"{}\"\notp_seed = \"{}\"\n{}",
            v.token_secret,
            v.otp_seed,
            v.settings.as_toml()
        );
        let setup = Setup::with_text(&config);
        let at = v.at.to_string();
        let (code, stdout, _) = setup.run(&["verify", &v.jid, &v.token, "--at", &at]);
        assert_eq!(code, if v.valid { 0 } else { 1 }, "{}: {stdout}", v.name);
        if let Some(reason) = &v.reason {
            assert!(
                stdout
                    .to_lowercase()
                    .starts_with(&format!("invalid: {reason}")),
                "{}: {stdout}",
                v.name
            );
        }
    }
}

#[test]
fn check_config_summarises_a_valid_configuration() {
    let setup = Setup::new(
        "otp_window = 2\n[domains.\"a.example\"]\ntoken_secret = \"another-secret-for-a.example\"\n",
    );
    let (code, stdout, stderr) = setup.run(&["check-config"]);
    assert_eq!((code, stderr.as_str()), (0, ""));
    let expected = format!(
        "{}: OK\n  domains:  a.example, every other domain\n  tokens:   8 OTP digits, 30 s steps, ±2 steps, nonces of 32 digits\n  \
         replay:   on, up to 100000 live tokens, in this process's memory\n  isuser:   served-domains\n  protocol: auto\n  log:      none\n",
        setup.config.display()
    );
    assert_eq!(stdout, expected);
}

#[test]
fn check_config_reports_problems_with_file_line_and_key() {
    let cases = [
        (
            "otp_digit = 6\n",
            "config.toml:4:1: unknown field `otp_digit`",
        ),
        (
            "otp_interval = 5\n",
            "config.toml:4: otp_interval = 5 is out of range: allowed 10 to 3600 seconds",
        ),
        (
            "isuser = \"maybe\"\n",
            "config.toml:4:10: isuser: unknown variant `maybe`",
        ),
        (
            "[domains.\"x\"]\notp_seed = \"ABC\"\n",
            "config.toml:5: domains.\"x\".otp_seed is not valid base32",
        ),
    ];
    for (extra, message) in cases {
        let setup = Setup::new(extra);
        let (code, stdout, stderr) = setup.run(&["check-config"]);
        assert_eq!((code, stdout.as_str()), (2, ""), "{extra}");
        assert!(stderr.starts_with("xmpp-token-auth: error: "), "{stderr}");
        assert!(stderr.contains(message), "{extra}: {stderr}");
    }
}

#[test]
fn check_config_warns_about_readable_secrets_and_short_secrets() {
    let setup = Setup::with_text(&format!(
        "token_secret_file = \"secret\"\notp_seed = \"{SEED}\"\n"
    ));
    let secret = setup.dir.path().join("secret");
    std::fs::write(&secret, "tooshort\n").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (code, _, stderr) = setup.run(&["check-config"]);
    assert_eq!(code, 0);
    assert!(
        stderr.contains(&format!(
            "warning: {} is readable by every user",
            secret.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("config.toml:1: token_secret is shorter than 16 bytes"),
        "{stderr}"
    );
    assert!(!stderr.contains("tooshort"), "{stderr}");
}

#[test]
fn the_configuration_is_found_through_the_environment() {
    let setup = reference_setup();
    let out = std::process::Command::new(BIN)
        .args(["verify", "root@localhost", REFERENCE, "--at", "1700000000"])
        .env("XMPP_TOKEN_AUTH_CONFIG", &setup.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = std::process::Command::new(BIN)
        .args(["check-config"])
        .env(
            "XMPP_TOKEN_AUTH_CONFIG",
            setup.dir.path().join("missing.toml"),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("cannot read ") && stderr.contains("missing.toml: No such file"),
        "{stderr}"
    );
}

#[test]
fn gen_secret_prints_a_configuration_that_check_config_accepts() {
    let out = std::process::Command::new(BIN)
        .arg("gen-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    for (line, key) in lines.iter().zip(["token_secret", "otp_seed"]) {
        let value = line
            .strip_prefix(&format!("{key} = \""))
            .unwrap()
            .strip_suffix('"')
            .unwrap();
        assert_eq!(value.len(), 32);
        assert!(
            value
                .bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
            "{value}"
        );
    }
    let setup = Setup::with_text(&text);
    assert_eq!(setup.run(&["check-config"]).0, 0);
    let again = std::process::Command::new(BIN)
        .arg("gen-secret")
        .output()
        .unwrap();
    assert_ne!(again.stdout, text.as_bytes());
}
