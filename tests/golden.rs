//! Golden tests of the command line, as data: each `tests/cmd/NAME.toml` is
//! one invocation (arguments, exit status), with the exact output expected
//! in `NAME.stdout` and `NAME.stderr`. They run in `tests/cmd/configs`, whose
//! fixture configurations are named by relative paths, so that every path in
//! the output is the same on every machine.
//!
//! After a deliberate change of output, rewrite the expected files with
//! `TRYCMD=overwrite cargo test --test golden` and review the diff.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[test]
fn cli() {
    fixture_modes(Path::new("tests/cmd/configs"));
    let cases = trycmd::TestCases::new();
    // Empty is unset: the configuration is only ever the one named.
    cases
        .env("XMPP_TOKEN_AUTH_CONFIG", "")
        .case("tests/cmd/*.toml");
    // A build without the Redis client refuses an engine's configuration.
    #[cfg(not(feature = "redis"))]
    cases.skip("tests/cmd/check-config-engine*.toml");
}

/// A checkout's modes follow the umask; secrets readable by every user are
/// a warning. Fixtures are made private, except the one whose warning is
/// under test.
fn fixture_modes(folder: &Path) {
    for entry in std::fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        let mode = match path.file_name().and_then(|n| n.to_str()) {
            Some("world-readable.toml") => 0o644,
            _ => 0o600,
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}
