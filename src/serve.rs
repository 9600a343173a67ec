//! The serving loop: the only code that reads stdin and writes stdout.

use crate::core::frame::Decoder;
use crate::core::helper::Helper;
use crate::log::{Level, Logger};
use crate::sys::{signals, stdio};
use std::io::{self, Write};
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

/// Answers requests until end of input, a hang-up, a closed stdout or a
/// signal (after answering every request already waiting, see
/// [`signals`]). Always returns normally: nothing at runtime is worth a
/// non-zero exit, which Prosody would never restart from.
pub fn serve(helper: &mut Helper, mut decoder: Decoder, logger: &Logger) {
    let (mut input, mut output) = (stdio::input(), stdio::output());
    let protocol = decoder.protocol();
    let mut buffer = vec![0u8; READ_SIZE];
    let mut replies = Vec::with_capacity(4096);
    // Stop signals are blocked from here on, except while waiting for input.
    let mut serving = match signals::serving() {
        Ok(serving) => serving,
        Err(e) => {
            logger.log(Level::Error, &format!("cannot block signals: {e}; exiting"));
            return;
        }
    };
    loop {
        let read = match serving.read(&mut *input, &mut buffer) {
            // A signal, and every request waiting then has been answered.
            Ok(None) => return,
            Ok(Some(0)) => {
                if decoder.is_mid_request() {
                    logger.log(Level::Notice, "input ended in the middle of a request");
                }
                return;
            }
            Ok(Some(read)) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // EIO is how a terminal says that Prosody has gone.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => return,
            Err(e) => {
                logger.log(Level::Error, &format!("cannot read requests: {e}; exiting"));
                return;
            }
        };
        decoder.feed(&buffer[..read], |frame| {
            let decision = helper.answer(frame, unix_now());
            logger.decision(&decision);
            replies.extend_from_slice(protocol.reply(decision.verdict()));
        });
        buffer[..read].zeroize(); // the requests' passwords
        if !replies.is_empty() {
            if let Err(e) = output.write_all(&replies) {
                // A closed pipe or a hung-up terminal: the server has gone.
                let gone =
                    e.kind() == io::ErrorKind::BrokenPipe || e.raw_os_error() == Some(libc::EIO);
                if !gone {
                    logger.log(Level::Error, &format!("cannot write replies: {e}; exiting"));
                }
                return;
            }
            replies.clear();
        }
    }
}
