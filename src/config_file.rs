//! Reading the configuration and the key files it names from disk: the
//! shell around [`Config::parse`], which validates their text.

use crate::core::config::{Config, ConfigError, TextFile, permission_warning};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Reads and validates the file at `path`, and the secret files it names.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let file = read_text_file(path, CONFIG_MAX)?;
    let read_key_file = |path: &Path| read_text_file(path, KEY_FILE_MAX);
    let mut config = Config::parse(&file.text, path, &read_key_file)?;
    if let Some(warning) = permission_warning(path, file.mode) {
        config.warnings.insert(0, warning);
    }
    Ok(config)
}

/// The most a configuration file may hold.
const CONFIG_MAX: u64 = 1 << 20;
/// The most a `*_file` may hold: one key on its first line.
const KEY_FILE_MAX: u64 = 4096;

/// Reads a regular file of at most `max` bytes. Opening never blocks (a
/// FIFO named by mistake would hang start-up) and a device such as
/// `/dev/zero` is refused rather than read until memory runs out.
pub fn read_text_file(path: &Path, max: u64) -> Result<TextFile, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(read_error)?;
    let meta = file.metadata().map_err(read_error)?;
    let kind = meta.file_type();
    let not_regular = |kind| ConfigError::NotRegular {
        path: path.to_owned(),
        kind,
    };
    if kind.is_dir() {
        return Err(not_regular("a folder"));
    } else if kind.is_fifo() {
        return Err(not_regular("a FIFO"));
    } else if kind.is_char_device() || kind.is_block_device() {
        return Err(not_regular("a device"));
    } else if !kind.is_file() {
        return Err(not_regular("not a regular file"));
    }
    let too_large = || ConfigError::TooLarge {
        path: path.to_owned(),
        max,
    };
    if meta.len() > max {
        return Err(too_large());
    }
    let mut text = Zeroizing::new(String::new());
    // One byte more than allowed, to notice a file that grew meanwhile.
    file.take(max + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > max {
        return Err(too_large());
    }
    Ok(TextFile {
        text,
        mode: meta.permissions().mode(),
    })
}

/// Notices when files change, so that a helper waiting for its
/// configuration to be fixed tries again at once. Identity, size and both
/// times are compared: the fix is often a `chmod` of a key file, which
/// changes only its ctime.
#[derive(Debug, Default)]
pub struct Watch {
    files: Vec<(PathBuf, Option<Stamp>)>,
}

type Stamp = (u64, u64, u64, i64, i64, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

impl Watch {
    /// Watches `paths` from their state now.
    pub fn new(paths: impl IntoIterator<Item = PathBuf>) -> Watch {
        Watch {
            files: paths
                .into_iter()
                .map(|path| {
                    let now = stamp(&path);
                    (path, now)
                })
                .collect(),
        }
    }

    /// Whether any file changed (or appeared, or went) since the last look.
    pub fn changed(&mut self) -> bool {
        let mut changed = false;
        for (path, seen) in &mut self.files {
            let now = stamp(path);
            if now != *seen {
                *seen = now;
                changed = true;
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_must_be_small_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'A'; KEY_FILE_MAX as usize + 1]).unwrap();
        for (path, says) in [
            (fifo.as_path(), "it is a FIFO; it must be a regular file"),
            (
                Path::new("/dev/zero"),
                "it is a device; it must be a regular file",
            ),
            (dir.path(), "it is a folder; it must be a regular file"),
            (big.as_path(), "it is larger than 4096 bytes"),
        ] {
            let message = match read_text_file(path, KEY_FILE_MAX) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{} was read", path.display()),
            };
            assert_eq!(
                message
                    .split_once(": ")
                    .map(|(_, rest)| rest.starts_with(says)),
                Some(true),
                "{message}"
            );
            assert!(message.starts_with(&format!("cannot use {}", path.display())));
        }
    }

    #[test]
    fn a_chmod_a_rewrite_or_a_new_file_is_a_change() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("token_secret");
        let missing = dir.path().join("later");
        std::fs::write(&key, "x").unwrap();
        let mut watch = Watch::new([key.clone(), missing.clone()]);
        assert!(!watch.changed());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(watch.changed(), "a chmod changes the ctime");
        assert!(!watch.changed());
        std::fs::write(&missing, "y").unwrap();
        assert!(watch.changed(), "a file that appeared");
    }
}
