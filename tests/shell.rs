//! Runs the shell tests in tests/shell/ against the freshly built binary.

use std::path::Path;
use std::process::Command;

#[test]
fn shell_tests_pass() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/shell");
    let mut scripts: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh") && !p.ends_with("lib.sh"))
        .collect();
    scripts.sort();
    assert!(
        scripts.len() >= 3,
        "shell tests missing from {}",
        folder.display()
    );
    for script in scripts {
        let out = Command::new("bash")
            .arg(&script)
            .env("XMPP_TOKEN_AUTH", env!("CARGO_BIN_EXE_xmpp-token-auth"))
            .output()
            .unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{}:\n{report}", script.display());
        assert!(
            out.status.success(),
            "{} failed:\n{report}",
            script.display()
        );
        assert!(
            report.contains("ok   "),
            "{} checked nothing:\n{report}",
            script.display()
        );
    }
}
