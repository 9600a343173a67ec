//! `log = "file:PATH"`: for hosts with neither a syslog daemon nor a stderr
//! anyone reads (containers, `ejabberdctl start`). Lines are appended with a
//! UTC time stamp; when logrotate moves the file away, the next line (at
//! most a second later) goes to a new file at the path. A line that cannot
//! be written is dropped and counted, and the next one that can says how
//! many were lost: logging never stops or delays a reply.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the path is looked at for a rotation.
const ROTATION_CHECK: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    /// The open file and its inode; `None` while it cannot be opened.
    file: Option<(File, u64)>,
    last_check: Instant,
    dropped: u64,
}

fn open(path: &Path) -> Option<(File, u64)> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        // Never wait on a FIFO someone put there.
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()?;
    let inode = file.metadata().ok()?.ino();
    Some((file, inode))
}

impl LogFile {
    pub fn open(path: &Path) -> LogFile {
        LogFile {
            path: path.to_owned(),
            file: open(path),
            last_check: Instant::now(),
            dropped: 0,
        }
    }

    /// Whether the file could be opened.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Appends one line: `TIME xmpp-token-auth[PID]: LABELmessage`.
    pub fn write(&mut self, label: &str, message: &str) {
        if self.file.is_none() || self.last_check.elapsed() >= ROTATION_CHECK {
            self.last_check = Instant::now();
            let moved = match (&self.file, std::fs::metadata(&self.path)) {
                (Some((_, inode)), Ok(now)) => now.ino() != *inode,
                _ => true,
            };
            if moved {
                self.file = open(&self.path);
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let pid = std::process::id();
        let mut lines = String::new();
        if self.dropped > 0 {
            lines.push_str(&format!(
                "{} xmpp-token-auth[{pid}]: warning: {} log lines were dropped: the log file could not be written\n",
                utc(now),
                self.dropped
            ));
        }
        lines.push_str(&format!(
            "{} xmpp-token-auth[{pid}]: {label}{message}\n",
            utc(now)
        ));
        // One write, so that lines of helpers sharing the file never mix.
        match self
            .file
            .as_mut()
            .map(|(f, _)| f.write_all(lines.as_bytes()))
        {
            Some(Ok(())) => self.dropped = 0,
            _ => self.dropped += 1,
        }
    }
}

/// `2026-11-29T10:47:37Z` for a unix time (the proleptic Gregorian
/// calendar, as `date -u` shows it).
fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let seconds = unix % 86_400;
    // Days to civil date: Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_stamps_are_utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn lines_are_appended_and_a_rotated_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("helper.log");
        let mut log = LogFile::open(&path);
        log.write("", "first");
        std::fs::rename(&path, dir.path().join("helper.log.1")).unwrap();
        log.write("", "second, still to the moved file");
        log.last_check -= ROTATION_CHECK;
        log.write("error: ", "third, to a new file");
        let old = std::fs::read_to_string(dir.path().join("helper.log.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert_eq!(old.lines().count(), 2, "{old}");
        assert!(old.lines().all(|l| l.contains(" xmpp-token-auth[")));
        assert!(new.ends_with("]: error: third, to a new file\n"), "{new}");
    }

    #[test]
    fn a_file_that_cannot_be_opened_costs_lines_and_says_so_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-folder/helper.log");
        let mut log = LogFile::open(&path);
        assert!(!log.is_open());
        log.write("", "lost");
        std::fs::create_dir(dir.path().join("missing-folder")).unwrap();
        log.write("", "kept");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("1 log lines were dropped"), "{text}");
        assert!(text.ends_with("]: kept\n"), "{text}");
    }
}
