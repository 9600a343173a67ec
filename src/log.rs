//! Where the helper's log lines go (docs/protocol.md §8). Lines never carry a token, a
//! password, a secret or a seed: callers pass lines written from
//! [`crate::core::helper::Decision`]s and messages built from names and
//! reasons only.

use crate::core::config::LogTarget;
use crate::log_file::LogFile;
use crate::log_socket::{DEV_LOG, LogSocket};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use syslog::Severity;

/// How often an alarm that keeps recurring is logged again.
const ALARM_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Notice,
    Warning,
    Error,
}

/// Writes one line to stderr, in one write: helpers of a pool share their
/// stderr, and a line written in pieces (as `eprintln!` does) can be cut by
/// another's. `eprintln!` also panics when stderr is closed (EPIPE): a
/// helper must not die, nor a daemon's thread, over a log line.
pub fn to_stderr(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let line = format!("{line}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

impl Level {
    /// What a line of this level starts with on stderr or in a file.
    pub fn label(self) -> &'static str {
        match self {
            Level::Info | Level::Notice => "",
            Level::Warning => "warning: ",
            Level::Error => "error: ",
        }
    }
}

#[derive(Debug)]
pub struct Logger {
    target: LogTarget,
    /// Open when the target is syslog.
    syslog: Option<Mutex<LogSocket>>,
    /// Open when the target is a file.
    file: Option<Mutex<LogFile>>,
    alarms: Mutex<AlarmLimiter>,
}

impl Logger {
    /// A logger to `target`. When that is syslog and no syslog daemon
    /// listens (a container, `ejabberdctl start` on a host without one),
    /// every line would be lost: if `stderr_is_free`, say so once and log
    /// to stderr instead.
    /// `file` is where [`LogTarget::File`] writes.
    pub fn open(target: LogTarget, file: Option<&Path>, stderr_is_free: bool) -> Logger {
        // Connected now, so that the socket exists before any request is read.
        let syslog = (target == LogTarget::Syslog).then(|| LogSocket::open(Path::new(DEV_LOG)));
        let file = match (target, file) {
            (LogTarget::File, Some(path)) => {
                let file = LogFile::open(path);
                if !file.is_open() && stderr_is_free {
                    to_stderr(format_args!(
                        "xmpp-token-auth: warning: cannot open the log file {}: lines are dropped \
                         (and counted) until it can be written",
                        path.display()
                    ));
                }
                Some(Mutex::new(file))
            }
            _ => None,
        };
        let target = match &syslog {
            Some(socket) if !socket.is_connected() && stderr_is_free => {
                to_stderr(format_args!(
                    "xmpp-token-auth: warning: no syslog daemon listens on {DEV_LOG}; logging to stderr instead"
                ));
                LogTarget::Stderr
            }
            _ => target,
        };
        Logger {
            target,
            syslog: syslog.map(Mutex::new),
            file,
            alarms: Mutex::new(AlarmLimiter::default()),
        }
    }

    pub fn target(&self) -> LogTarget {
        self.target
    }

    pub fn log(&self, level: Level, message: &str) {
        match self.target {
            LogTarget::Syslog => {
                let severity = match level {
                    Level::Info => Severity::LOG_INFO,
                    Level::Notice => Severity::LOG_NOTICE,
                    Level::Warning => Severity::LOG_WARNING,
                    Level::Error => Severity::LOG_ERR,
                };
                if let Some(socket) = &self.syslog {
                    socket
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .send(severity, message);
                }
            }
            LogTarget::Stderr => {
                to_stderr(format_args!("xmpp-token-auth: {}{message}", level.label()))
            }
            LogTarget::File => {
                if let Some(file) = &self.file {
                    file.lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .write(level.label(), message);
                }
            }
            LogTarget::None => {}
        }
    }

    /// Whether lines go anywhere: with `log = "none"` nothing is even
    /// formatted, so a request costs no allocation.
    pub fn is_on(&self) -> bool {
        self.target != LogTarget::None
    }

    /// Logs a decision, written out: at error when it is an alarm (a full
    /// replay cache, a failing store: they last as long as their cause and
    /// come with every login meanwhile, so the first is logged at once, then
    /// one a minute with a count of the rest), else at info when accepted
    /// and at notice when refused.
    pub fn outcome(&self, alarm: Option<&str>, accepted: bool, line: &str) {
        match alarm {
            Some(kind) => self.alarm(kind, &line),
            None if accepted => self.log(Level::Info, line),
            None => self.log(Level::Notice, line),
        }
    }

    /// Logs `line` at error, rate-limited with the other alarms of `kind`.
    pub fn alarm(&self, kind: &str, line: &dyn std::fmt::Display) {
        let admitted = self
            .alarms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .admit(kind.to_string(), Instant::now());
        match admitted {
            Admit::Log { suppressed: 0 } => self.log(Level::Error, &line.to_string()),
            Admit::Log { suppressed } => self.log(
                Level::Error,
                &format!("{line} (and {suppressed} more like it since the last such line)"),
            ),
            Admit::Suppress => {}
        }
    }
}

impl Drop for Logger {
    /// Counts of alarms left out are not lost when the helper exits.
    fn drop(&mut self) {
        let suppressed = self
            .alarms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take_suppressed();
        for (kind, count) in suppressed {
            self.log(
                Level::Error,
                &format!("{count} more refusals ({kind}) were not logged since the last such line"),
            );
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Admit {
    Log { suppressed: u64 },
    Suppress,
}

/// When each kind of alarm was last logged, and how many were left out
/// since.
#[derive(Debug, Default)]
struct AlarmLimiter {
    kinds: Vec<(String, Instant, u64)>,
}

/// Alarms of this many kinds are remembered; the oldest goes first.
const ALARM_KINDS: usize = 16;

impl AlarmLimiter {
    /// The alarms left out since their last line, to be said at exit.
    fn take_suppressed(&mut self) -> Vec<(String, u64)> {
        self.kinds
            .iter_mut()
            .filter(|(_, _, n)| *n > 0)
            .map(|(kind, _, n)| (kind.clone(), std::mem::take(n)))
            .collect()
    }

    fn admit(&mut self, kind: String, now: Instant) -> Admit {
        match self.kinds.iter_mut().find(|(k, _, _)| *k == kind) {
            None => {
                if self.kinds.len() == ALARM_KINDS {
                    self.kinds.remove(0);
                }
                self.kinds.push((kind, now, 0));
                Admit::Log { suppressed: 0 }
            }
            Some((_, last, suppressed)) if now.duration_since(*last) >= ALARM_INTERVAL => {
                *last = now;
                Admit::Log {
                    suppressed: std::mem::take(suppressed),
                }
            }
            Some((_, _, suppressed)) => {
                *suppressed += 1;
                Admit::Suppress
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recurring_alarm_is_logged_once_a_minute_with_a_count() {
        let mut limiter = AlarmLimiter::default();
        let (full, store) = (
            || "replay memory full".to_string(),
            || "replay store failed".to_string(),
        );
        let start = Instant::now();
        let at = |s| start + Duration::from_secs(s);
        assert_eq!(limiter.admit(full(), at(0)), Admit::Log { suppressed: 0 });
        for s in 0..59 {
            assert_eq!(limiter.admit(full(), at(s)), Admit::Suppress);
        }
        // Another kind of alarm is not held back by the first.
        assert_eq!(limiter.admit(store(), at(30)), Admit::Log { suppressed: 0 });
        assert_eq!(limiter.admit(full(), at(60)), Admit::Log { suppressed: 59 });
        assert_eq!(limiter.admit(full(), at(61)), Admit::Suppress);
        assert_eq!(limiter.admit(full(), at(200)), Admit::Log { suppressed: 1 });
        assert_eq!(limiter.admit(full(), at(201)), Admit::Suppress);
        // What was left out is said at exit.
        assert_eq!(limiter.take_suppressed(), [(full(), 1)]);
    }
}
