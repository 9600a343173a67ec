//! Where the helper's log lines go (SPEC §8). Lines never carry a token, a
//! password, a secret or a seed: callers pass [`crate::helper::Decision`]s
//! and messages built from names and reasons only.

use crate::config::LogTarget;
use crate::helper::Decision;
use crate::sys::syslog;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Notice,
    Warning,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logger {
    target: LogTarget,
}

impl Logger {
    pub fn open(target: LogTarget) -> Logger {
        if target == LogTarget::Syslog {
            syslog::open();
        }
        Logger { target }
    }

    pub fn log(&self, level: Level, message: &str) {
        match self.target {
            LogTarget::Syslog => {
                let priority = match level {
                    Level::Info => syslog::LOG_INFO,
                    Level::Notice => syslog::LOG_NOTICE,
                    Level::Warning => syslog::LOG_WARNING,
                    Level::Error => syslog::LOG_ERR,
                };
                syslog::send(priority, message);
            }
            LogTarget::Stderr => {
                let label = match level {
                    Level::Info | Level::Notice => "",
                    Level::Warning => "warning: ",
                    Level::Error => "error: ",
                };
                eprintln!("xmpp-token-auth: {label}{message}");
            }
            LogTarget::None => {}
        }
    }

    pub fn decision(&self, decision: &Decision<'_>) {
        let level = match (decision.verdict(), decision.is_alarm()) {
            (_, true) => Level::Error,
            (true, false) => Level::Info,
            (false, false) => Level::Notice,
        };
        self.log(level, &decision.to_string());
    }
}
