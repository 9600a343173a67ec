//! Runs the shell tests in tests/shell/ against the freshly built binary.

mod common;

use common::*;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

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
    for script in &scripts {
        let child = Command::new("bash")
            .arg(script)
            .env("XMPP_TOKEN_AUTH", env!("CARGO_BIN_EXE_xmpp-token-auth"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A group of its own: a script that hangs is killed with every
            // helper it started.
            .process_group(0)
            .spawn()
            .unwrap();
        let out = collect(child, None, &script.display().to_string());
        let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), out.stderr);
        println!("{}:\n{report}", script.display());
        assert!(
            out.status.success(),
            "{} failed:\n{report}",
            script.display()
        );
        // Every check the script makes has run, and passed: lib.sh's
        // `finish` counts them, and the script calls `check` at least as
        // many times as it is written.
        let passed = report.lines().filter(|l| l.starts_with("ok   ")).count();
        let written = std::fs::read_to_string(script)
            .unwrap()
            .lines()
            .filter(|l| l.trim_start().starts_with("check "))
            .count();
        let name = script.file_name().unwrap().to_string_lossy();
        let summary = format!("{name}: {passed} passed, 0 failed");
        assert!(
            report.lines().any(|l| l == summary),
            "{} did not finish with {summary:?}:\n{report}",
            script.display()
        );
        assert!(
            passed > 0 && passed >= written,
            "{}: {passed} checks passed of the {written} written:\n{report}",
            script.display()
        );
    }
}
