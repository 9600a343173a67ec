//! The serving start-up's policy: which protocol to speak and where messages
//! go, decided from the configuration and from whether stdin is a terminal.
//!
//! On a terminal the helper runs under Prosody (through lpty), and that
//! terminal is stdin, stdout *and* stderr: every byte written to stderr
//! would be read by Prosody as a reply. Pure functions, so that each rule is
//! a unit test; the shell (`main`) finds out whether stdin is a terminal and
//! acts on their answers.

use xmpp_token_auth::core::config::{LogTarget, ProtocolChoice};
use xmpp_token_auth::core::frame::Protocol;

/// Where messages go before the configuration has said (a start-up error,
/// such as a configuration that cannot be read).
pub const LOG_BEFORE_CONFIGURATION: LogTarget = LogTarget::Syslog;

/// The framing to speak: `--protocol` if given, else the configuration's
/// `protocol`; `auto` is the line protocol on a terminal (Prosody), and
/// ejabberd's framing on pipes.
pub fn protocol(
    flag: Option<ProtocolChoice>,
    configured: ProtocolChoice,
    on_terminal: bool,
) -> Protocol {
    match flag.unwrap_or(configured) {
        ProtocolChoice::Ejabberd => Protocol::Ejabberd,
        ProtocolChoice::Line => Protocol::Line,
        ProtocolChoice::Auto if on_terminal => Protocol::Line,
        ProtocolChoice::Auto => Protocol::Ejabberd,
    }
}

/// Where the log goes: as configured, except that `log = "stderr"` on a
/// terminal goes to syslog, since stderr is the reply channel there.
pub fn log_target(configured: LogTarget, on_terminal: bool) -> LogTarget {
    match configured {
        LogTarget::Stderr if on_terminal => LogTarget::Syslog,
        target => target,
    }
}

/// Whether the log may fall back to stderr when syslog is not there: not on
/// a terminal, where stderr is the reply channel.
pub fn stderr_is_free(on_terminal: bool) -> bool {
    !on_terminal
}

/// Whether warnings and start-up errors are also written to stderr, besides
/// the log `log` (the target [`log_target`] chose): yes, for the XMPP
/// server's own log or the operator's terminal, unless stderr is the reply
/// channel (a terminal) or the log already writes there.
pub fn also_to_stderr(on_terminal: bool, log: LogTarget) -> bool {
    !on_terminal && log != LogTarget::Stderr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_the_line_protocol_on_a_terminal_and_ejabberd_on_pipes() {
        assert_eq!(protocol(None, ProtocolChoice::Auto, true), Protocol::Line);
        assert_eq!(
            protocol(None, ProtocolChoice::Auto, false),
            Protocol::Ejabberd
        );
    }

    #[test]
    fn a_chosen_protocol_is_kept_and_the_flag_overrides_the_configuration() {
        for on_terminal in [true, false] {
            assert_eq!(
                protocol(None, ProtocolChoice::Line, on_terminal),
                Protocol::Line
            );
            assert_eq!(
                protocol(None, ProtocolChoice::Ejabberd, on_terminal),
                Protocol::Ejabberd
            );
            assert_eq!(
                protocol(
                    Some(ProtocolChoice::Ejabberd),
                    ProtocolChoice::Line,
                    on_terminal
                ),
                Protocol::Ejabberd
            );
            assert_eq!(
                protocol(
                    Some(ProtocolChoice::Line),
                    ProtocolChoice::Ejabberd,
                    on_terminal
                ),
                Protocol::Line
            );
        }
        assert_eq!(
            protocol(Some(ProtocolChoice::Auto), ProtocolChoice::Line, false),
            Protocol::Ejabberd
        );
    }

    #[test]
    fn stderr_on_a_terminal_logs_to_syslog_instead() {
        assert_eq!(log_target(LogTarget::Stderr, true), LogTarget::Syslog);
        assert_eq!(log_target(LogTarget::Stderr, false), LogTarget::Stderr);
        for on_terminal in [true, false] {
            assert_eq!(
                log_target(LogTarget::Syslog, on_terminal),
                LogTarget::Syslog
            );
            assert_eq!(log_target(LogTarget::None, on_terminal), LogTarget::None);
        }
    }

    #[test]
    fn stderr_gets_warnings_and_errors_once_and_never_on_a_terminal() {
        assert!(also_to_stderr(false, LogTarget::Syslog));
        assert!(also_to_stderr(false, LogTarget::None));
        assert!(!also_to_stderr(false, LogTarget::Stderr), "already there");
        for log in [LogTarget::Syslog, LogTarget::None, LogTarget::Stderr] {
            assert!(!also_to_stderr(true, log), "{log}: the reply channel");
        }
        assert!(also_to_stderr(false, LOG_BEFORE_CONFIGURATION));
    }
}
