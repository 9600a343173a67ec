//! The subcommands of the real binary, where a test needs code: random
//! output, the token vectors, files made on the fly, the environment. Exact
//! outputs and exit codes of fixed invocations are data, in `tests/cmd/`
//! (run by `tests/golden.rs`).

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

#[test]
fn check_config_user_names_each_file_that_account_cannot_read_and_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let setup = Setup::new("");
    let folder = setup.dir.path();
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The configuration is 0600, as a `chmod` by mistake would leave it.
    let (code, _, stderr) = setup.run(&["check-config", "--user", "nobody"]);
    assert_eq!(code, 2, "{stderr}");
    let config = setup.config.display().to_string();
    assert!(
        stderr.contains(&format!("{config}: nobody cannot read it")),
        "{stderr}"
    );
    assert!(stderr.contains("chmod g+r"), "the fix is given: {stderr}");
    assert!(
        stderr.contains("nobody cannot use 1 of the files the helper needs"),
        "{stderr}"
    );
    std::fs::set_permissions(&setup.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, stdout, _) = setup.run(&["check-config", "--user", "nobody"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("access:   nobody can read every file the helper reads"),
        "{stdout}"
    );
    let (code, _, stderr) = setup.run(&["check-config", "--user", "no-such-account-xta"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("there is no account \"no-such-account-xta\""),
        "{stderr}"
    );
}
