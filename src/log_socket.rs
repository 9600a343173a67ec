//! The syslog transport: one datagram per line to `/dev/log`, never blocking.
//!
//! The C library's `syslog(3)` blocks while the log socket's queue is full (a
//! wedged or stopped syslog daemon), and a helper blocked on its log answers
//! nothing: ejabberd gives up after 30 s, Prosody after 5 s. This writer
//! sends without blocking instead: a line that does not fit is dropped and
//! counted, and the next line that gets through is preceded by one saying
//! how many were lost. The `syslog` crate formats the lines (RFC 3164, as
//! the C library does); it cannot be used for sending, since its socket
//! blocks and does not reconnect. This writer reconnects when the daemon
//! restarts and replaces its socket.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use syslog::{Facility, Formatter3164, LogFormat, Severity};

pub const DEV_LOG: &str = "/dev/log";

#[derive(Debug)]
pub struct LogSocket {
    path: PathBuf,
    /// `None` while no daemon listens; connecting again is tried per line.
    socket: Option<UnixDatagram>,
    format: Formatter3164,
    /// Lines lost since the last one that got through.
    dropped: u64,
}

impl LogSocket {
    /// A writer to the socket at `path`. The daemon need not be there yet.
    pub fn open(path: &Path) -> LogSocket {
        LogSocket {
            path: path.to_owned(),
            socket: connect(path).ok(),
            format: Formatter3164 {
                facility: Facility::LOG_AUTHPRIV,
                hostname: None,
                process: "xmpp-token-auth".into(),
                pid: std::process::id(),
            },
            dropped: 0,
        }
    }

    /// Whether a daemon answered the last attempt to reach it.
    pub fn is_connected(&self) -> bool {
        self.socket.is_some()
    }

    /// Sends one line at `severity`, or counts it as dropped.
    pub fn send(&mut self, severity: Severity, message: &str) {
        if self.dropped > 0 {
            let note = format!(
                "{} log lines were dropped: the log socket was full or gone",
                self.dropped
            );
            if self.send_line(Severity::LOG_WARNING, &note).is_err() {
                self.dropped += 1;
                return;
            }
            self.dropped = 0;
        }
        if self.send_line(severity, message).is_err() {
            self.dropped += 1;
        }
    }

    fn send_line(&mut self, severity: Severity, message: &str) -> io::Result<()> {
        let mut line = Vec::with_capacity(64 + message.len());
        self.format
            .format(&mut line, severity, message)
            .map_err(|e| io::Error::other(e.to_string()))?;
        match self.socket.as_ref().map(|s| s.send(&line)) {
            Some(Ok(_)) => Ok(()),
            // Full: drop the line rather than wait.
            Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => Err(e),
            // Not connected, or the daemon restarted and made a new socket:
            // connect again and try once more.
            _ => {
                self.socket = None;
                let socket = connect(&self.path)?;
                let sent = socket.send(&line);
                self.socket = Some(socket);
                sent.map(|_| ())
            }
        }
    }
}

fn connect(path: &Path) -> io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    socket.connect(path)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon(path: &Path) -> UnixDatagram {
        let _ = std::fs::remove_file(path);
        let daemon = UnixDatagram::bind(path).unwrap();
        daemon
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        daemon
    }

    fn receive(daemon: &UnixDatagram) -> String {
        let mut buffer = [0u8; 4096];
        let n = daemon.recv(&mut buffer).unwrap();
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    }

    #[test]
    fn lines_are_rfc3164_at_authpriv_with_ident_and_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let daemon = daemon(&path);
        let mut log = LogSocket::open(&path);
        log.send(Severity::LOG_NOTICE, "auth a@b: refused (bad signature)");
        let line = receive(&daemon);
        assert!(line.starts_with("<85>"), "{line}");
        let ident = format!(" xmpp-token-auth[{}]: auth a@b", std::process::id());
        assert!(line.contains(&ident), "{line}");
    }

    #[test]
    fn a_full_socket_drops_lines_without_waiting_and_says_so_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let daemon = daemon(&path);
        let mut log = LogSocket::open(&path);
        let start = std::time::Instant::now();
        // Nobody reads: the queue fills after some lines.
        for i in 0..10_000 {
            log.send(Severity::LOG_INFO, &format!("line {i}"));
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        assert!(log.dropped > 0, "the queue never filled");
        let dropped = log.dropped;
        // The daemon catches up; the next line that fits is announced.
        while daemon.set_nonblocking(true).is_ok() && daemon.recv(&mut [0u8; 4096]).is_ok() {}
        daemon.set_nonblocking(false).unwrap();
        log.send(Severity::LOG_INFO, "after");
        assert!(receive(&daemon).ends_with(&format!(
            "{dropped} log lines were dropped: the log socket was full or gone"
        )));
        assert!(receive(&daemon).ends_with("after"));
    }

    #[test]
    fn a_restarted_daemon_gets_the_next_line_and_a_missing_one_costs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut log = LogSocket::open(&path);
        assert!(!log.is_connected());
        log.send(Severity::LOG_INFO, "lost");
        let daemon_1 = daemon(&path);
        log.send(Severity::LOG_INFO, "first");
        assert!(
            receive(&daemon_1)
                .ends_with("1 log lines were dropped: the log socket was full or gone")
        );
        assert!(receive(&daemon_1).ends_with("first"));
        drop(daemon_1);
        let daemon_2 = daemon(&path);
        log.send(Severity::LOG_INFO, "second");
        assert!(receive(&daemon_2).ends_with("second"));
    }
}
