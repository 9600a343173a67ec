//! The serving loop: the only code that reads stdin and writes stdout.

use crate::core::frame::Decoder;
use crate::core::helper::{Decision, Reason, Service};
use crate::core::replay::ReplayError;
use crate::log::{Level, Logger};
use crate::sys::{signals, stdio};
use std::io::{self, Write};
use std::sync::Mutex;
use std::time::Duration;
use std::time::{SystemTime, UNIX_EPOCH};
use zeroize::Zeroize;

/// Enough for several maximal requests per read.
const READ_SIZE: usize = 256 * 1024;

/// The wall clock, read for every request.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How a conversation ended.
#[derive(Debug)]
pub enum Ending {
    /// `read` said stop (a signal), after everything read was answered.
    Stopped,
    /// End of input, or a hang-up.
    InputEnded,
    /// Writing the replies failed: the peer has gone, or worse.
    WriteFailed(io::Error),
    /// Reading failed (also a read time-out); the decoder keeps its state,
    /// so the caller may converse again.
    ReadFailed(io::Error),
}

/// One conversation with one peer, the same for the stdio helper and for
/// each connection of the socket daemon: read requests, answer them in
/// order (holding the service for each batch read together), write each
/// batch of replies in one write, until the input ends, `read` says stop
/// (`Ok(None)`) or something fails.
pub fn converse(
    mut read: impl FnMut(&mut [u8]) -> io::Result<Option<usize>>,
    output: &mut impl Write,
    decoder: &mut Decoder,
    service: &Mutex<Service>,
    logger: &Logger,
    buffer: &mut [u8],
) -> Ending {
    let protocol = decoder.protocol();
    let mut replies = Vec::with_capacity(4096);
    // Where the replies of the batch's logins are, and its log lines.
    let (mut logins, mut lines) = (Vec::new(), Vec::new());
    loop {
        let read = match read(buffer) {
            Ok(None) => return Ending::Stopped,
            Ok(Some(0)) => return Ending::InputEnded,
            Ok(Some(read)) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // EIO is how a terminal says that Prosody has gone.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => return Ending::InputEnded,
            Err(e) => return Ending::ReadFailed(e),
        };
        let committed = {
            // Held for a batch of requests; a panic while answering would be
            // a bug, but the replay memory it guards stays sound: go on.
            let mut service = service.lock().unwrap_or_else(|p| p.into_inner());
            service.begin();
            decoder.feed(&buffer[..read], |frame| {
                let decision = service.answer(frame, unix_now());
                if decision.awaits_commit() {
                    logins.push(replies.len());
                }
                if logger.is_on() {
                    lines.push(Line::of(&decision));
                }
                replies.extend_from_slice(protocol.reply(decision.verdict()));
            });
            service.commit()
        };
        buffer[..read].zeroize(); // the requests' passwords
        if committed.is_err() {
            // The replay memory could not keep the batch's logins: refused.
            let refused = protocol.reply(false);
            for at in logins.drain(..) {
                replies[at..at + refused.len()].copy_from_slice(refused);
            }
        }
        logins.clear();
        // Said once the batch is over, with no lock held: a log that blocks
        // (a full stderr pipe, a slow disk) holds up this conversation only.
        for line in lines.drain(..) {
            line.say(&committed, logger);
        }
        if !replies.is_empty() {
            if let Err(e) = output.write_all(&replies) {
                return Ending::WriteFailed(e);
            }
            replies.clear();
        }
    }
}

/// A batch's log line, written out while its request is at hand.
enum Line {
    Decided {
        alarm: Option<String>,
        accepted: bool,
        text: String,
    },
    /// A login, accepted only if the batch was committed: `auth
    /// alice@example.org`.
    Login(String),
}

impl Line {
    fn of(decision: &Decision<'_>) -> Line {
        if decision.awaits_commit() {
            Line::Login(decision.subject().to_string())
        } else {
            Line::Decided {
                alarm: decision.alarm(),
                accepted: decision.verdict(),
                text: decision.to_string(),
            }
        }
    }

    fn say(self, committed: &Result<(), ReplayError>, logger: &Logger) {
        match (self, committed) {
            (
                Line::Decided {
                    alarm,
                    accepted,
                    text,
                },
                _,
            ) => logger.outcome(alarm.as_deref(), accepted, &text),
            (Line::Login(subject), Ok(())) => {
                logger.log(Level::Info, &format!("{subject}: accepted"))
            }
            (Line::Login(subject), Err(e)) => {
                let reason = Reason::Replay(e.clone());
                let kind = reason.alarm().unwrap_or_default();
                logger.alarm(&kind, &format_args!("{subject}: refused ({reason})"));
            }
        }
    }
}

/// Whether a failed write means only that the server has gone (a closed
/// pipe or socket, a hung-up terminal).
pub fn peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    ) || e.raw_os_error() == Some(libc::EIO)
}

/// How often an unconfigured helper tries its configuration again, at the
/// latest; a change to one of its files is noticed within a second.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(5);
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Answers requests on stdin until end of input, a hang-up, a closed stdout
/// or a signal (after answering every request already waiting, see
/// [`signals`]). Always returns normally: nothing at runtime is worth a
/// non-zero exit, which Prosody would never restart from.
///
/// While the service is [`Service::Unconfigured`], `heal` is called about
/// once a second between requests: it returns a ready service once the
/// configuration can be used again.
pub fn serve(
    service: &Mutex<Service>,
    mut decoder: Decoder,
    logger: &Logger,
    heal: &mut dyn FnMut() -> Option<Service>,
) {
    let (mut input, mut output) = (stdio::input(), stdio::output());
    let mut buffer = vec![0u8; READ_SIZE];
    // Stop signals are blocked from here on, except while waiting for input.
    let mut serving = match signals::serving() {
        Ok(serving) => serving,
        Err(e) => {
            logger.log(Level::Error, &format!("cannot block signals: {e}; exiting"));
            return;
        }
    };
    // While unconfigured: a look before every read, and one a second while
    // no request comes.
    let read = |buffer: &mut [u8]| loop {
        let mut current = service.lock().unwrap_or_else(|p| p.into_inner());
        let unconfigured = matches!(*current, Service::Unconfigured);
        if unconfigured && let Some(healed) = heal() {
            *current = healed;
        }
        let timeout = matches!(*current, Service::Unconfigured).then_some(WATCH_INTERVAL);
        drop(current);
        match serving.read(&mut *input, buffer, timeout) {
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            // A request came: a fix made since the last look is noticed
            // before it is answered.
            Ok(Some(n)) if timeout.is_some() => {
                if let Some(healed) = heal() {
                    *service.lock().unwrap_or_else(|p| p.into_inner()) = healed;
                }
                return Ok(Some(n));
            }
            other => return other,
        }
    };
    match converse(
        read,
        &mut *output,
        &mut decoder,
        service,
        logger,
        &mut buffer,
    ) {
        Ending::Stopped => {}
        Ending::InputEnded => {
            if decoder.is_mid_request() {
                logger.log(Level::Notice, "input ended in the middle of a request");
            }
        }
        Ending::WriteFailed(e) if peer_gone(&e) => {}
        Ending::WriteFailed(e) => {
            logger.log(Level::Error, &format!("cannot write replies: {e}; exiting"));
        }
        Ending::ReadFailed(e) => {
            logger.log(Level::Error, &format!("cannot read requests: {e}; exiting"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::{Config, LogTarget, TextFile};
    use crate::core::frame::Protocol;
    use crate::core::helper::Helper;
    use crate::core::replay::{Key, ReplayMemory};
    use crate::core::verify::{self, TokenParams};
    use std::path::Path;

    /// Accepts every token, and cannot keep the first batch.
    struct FailsOnce {
        failed: bool,
    }

    impl ReplayMemory for FailsOnce {
        fn record(&mut self, _: Key, _: u64, _: u64) -> Result<(), ReplayError> {
            Ok(())
        }

        fn recalls(&self, _: &Key, _: u64) -> bool {
            false
        }

        fn commit(&mut self) -> Result<(), ReplayError> {
            if std::mem::replace(&mut self.failed, true) {
                Ok(())
            } else {
                Err(ReplayError::Store(
                    "replay: cannot append to it: disk full".into(),
                ))
            }
        }
    }

    #[test]
    fn logins_of_a_batch_the_replay_memory_could_not_keep_are_refused() {
        const SECRET: &str = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7";
        const SEED: &str = "XVGR73KMZH2M4XMY";
        let text = format!("token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\n");
        let no_files = |_: &Path| -> Result<TextFile, _> { unreachable!() };
        let config = Config::parse(&text, Path::new("test.toml"), &no_files).unwrap();
        let helper = Helper::with_replay_memory(config, Box::new(FailsOnce { failed: false }));
        let service = Mutex::new(Service::Ready(helper));
        let keys = crate::core::verify::tests::keys(SECRET, SEED);
        let request = |nonce: usize| {
            let token = verify::generate(
                &keys,
                TokenParams::default(),
                "alice",
                "example.org",
                &format!("{nonce:032}"),
                unix_now(),
            );
            format!("auth:alice:example.org:{token}\nisuser:alice:example.org\n")
        };
        // Two reads: two batches.
        let mut reads = [request(1), request(2)].into_iter();
        let read = |buffer: &mut [u8]| -> io::Result<Option<usize>> {
            Ok(Some(reads.next().map_or(0, |text| {
                buffer[..text.len()].copy_from_slice(text.as_bytes());
                text.len()
            })))
        };
        let mut output = Vec::new();
        let ending = converse(
            read,
            &mut output,
            &mut Protocol::Line.decoder(),
            &service,
            &Logger::open(LogTarget::None, None, false),
            &mut [0u8; 4096],
        );
        assert!(matches!(ending, Ending::InputEnded), "{ending:?}");
        // The first login is refused, isuser is not a login; the second
        // batch is kept.
        assert_eq!(String::from_utf8(output).unwrap(), "0\n1\n1\n1\n");
    }
}
