//! SIGTERM, SIGINT and SIGHUP end the helper with status 0 (docs/protocol.md §9), but
//! only once every request that was waiting when the signal was taken has
//! been answered, and never between reading a request and writing its reply.
//!
//! Until [`serving`] is called the handler exits at once: no request has
//! been read yet. From then on the three signals are blocked, except inside
//! the `ppoll` in which [`Serving::read`] waits for input, which lets them in
//! for exactly as long as it sleeps; and the handler only raises a flag. So:
//!
//! - a signal interrupts nothing but that wait: never a `read` that has
//!   returned requests (a handler that exits would run as that system call
//!   returns, before any "busy" flag could be raised), nor the answering,
//!   nor a `write`;
//! - unblocking and sleeping are one system call, so no signal can slip in
//!   between looking for one and going to sleep, to be noticed only after
//!   the next request; one that comes while the helper is busy stays
//!   pending, and the next read finds it (with `sigpending`, as `ppoll` lets
//!   a pending signal in only when it has to sleep: under a steady stream of
//!   requests it would wait for a pause);
//! - once the signal is taken, reading no longer waits: it returns what was
//!   waiting then, counted by FIONREAD, for the loop to answer, and then
//!   reports the stop. A host that keeps writing cannot keep the helper.
//!
//! The helper runs a single thread, so no other thread can take the signal.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

static SERVING: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    if !SERVING.load(SeqCst) {
        // SAFETY: _exit is async-signal-safe; before serving nothing has been
        // read, so nothing is owed and there is nothing to flush.
        unsafe { libc::_exit(0) };
    }
    STOP.store(true, SeqCst);
}

/// Installs the handler for the three signals.
pub fn install() -> io::Result<()> {
    for signal in STOP_SIGNALS {
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value
        // (without SA_RESTART, though ppoll is never restarted anyway); the
        // handler only touches atomics and calls _exit.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Blocks the three signals, so that from now on they arrive only inside
/// [`Serving::read`].
pub fn serving() -> io::Result<Serving> {
    // SAFETY: sigemptyset, sigaddset and sigdelset fill local sets;
    // pthread_sigmask reads one and writes the other.
    unsafe {
        let mut stop: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut stop);
        for signal in STOP_SIGNALS {
            libc::sigaddset(&mut stop, signal);
        }
        let mut before: libc::sigset_t = std::mem::zeroed();
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &stop, &mut before);
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        SERVING.store(true, SeqCst);
        // The mask to sleep with: as before, but letting the three in even if
        // the parent had blocked them.
        let mut waiting = before;
        for signal in STOP_SIGNALS {
            libc::sigdelset(&mut waiting, signal);
        }
        Ok(Serving {
            waiting,
            owed: None,
        })
    }
}

/// The serving loop's way of reading input (see the module's comment).
pub struct Serving {
    waiting: libc::sigset_t,
    /// Once a stop signal was taken: the bytes still to read of those that
    /// were waiting then.
    owed: Option<usize>,
}

impl Serving {
    /// Reads like [`Read::read`] once `input` has something to report (data,
    /// its end, a hang-up or an error); `Ok(None)` when a stop signal came
    /// and everything that was waiting then has been read: time to exit.
    /// With a `timeout`, an error of kind `TimedOut` when nothing came
    /// within it.
    pub fn read<R: Read + AsFd>(
        &mut self,
        input: &mut R,
        buffer: &mut [u8],
        timeout: Option<std::time::Duration>,
    ) -> io::Result<Option<usize>> {
        let timeout = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs() as libc::time_t,
            tv_nsec: t.subsec_nanos() as libc::c_long,
        });
        loop {
            if self.owed.is_none() && (STOP.load(SeqCst) || stop_pending()?) {
                self.owed = Some(waiting(input.as_fd()).unwrap_or(buffer.len()));
            }
            match self.owed {
                Some(0) => return Ok(None),
                // It was there when the signal was taken: no sleeping (and
                // the look is only for input that cannot count its bytes).
                Some(owed) => {
                    if poll(input.as_fd(), Some(&NO_TIME), None)? != Polled::Ready {
                        return Ok(None);
                    }
                    let read = input.read(buffer)?;
                    self.owed = Some(match read {
                        0 => 0,
                        _ => owed.saturating_sub(read),
                    });
                    return Ok(Some(read));
                }
                // Sleeps with the stop signals let in.
                None => match poll(input.as_fd(), timeout.as_ref(), Some(&self.waiting))? {
                    Polled::Ready => return input.read(buffer).map(Some),
                    Polled::TimedOut => return Err(io::ErrorKind::TimedOut.into()),
                    // A signal: look again.
                    Polled::Interrupted => {}
                },
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Polled {
    Ready,
    TimedOut,
    Interrupted,
}

const NO_TIME: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

/// Waits up to `timeout` (forever if none) with the signal `mask` (the
/// current one if none) for `fd` to be readable or hung up.
fn poll(
    fd: BorrowedFd<'_>,
    timeout: Option<&libc::timespec>,
    mask: Option<&libc::sigset_t>,
) -> io::Result<Polled> {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout = timeout.map_or(std::ptr::null(), |t| t as *const libc::timespec);
    let mask = mask.map_or(std::ptr::null(), |m| m as *const libc::sigset_t);
    // SAFETY: one valid pollfd; the timeout and the mask are valid or null.
    let ready = unsafe { libc::ppoll(&mut poll, 1, timeout, mask) };
    match ready {
        1.. => Ok(Polled::Ready),
        0 => Ok(Polled::TimedOut),
        _ => {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => Ok(Polled::Interrupted),
                _ => Err(e),
            }
        }
    }
}

/// Whether a stop signal is pending. `ppoll` delivers one only when it would
/// sleep: while input keeps coming it returns at once, and the signal would
/// wait for a pause in the input.
fn stop_pending() -> io::Result<bool> {
    // SAFETY: sigpending fills the local set that sigismember then reads.
    unsafe {
        let mut pending: libc::sigset_t = std::mem::zeroed();
        if libc::sigpending(&mut pending) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(STOP_SIGNALS
            .iter()
            .any(|&signal| libc::sigismember(&pending, signal) == 1))
    }
}

/// How many bytes of input are waiting to be read.
fn waiting(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut count: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int, which `count` is.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut count) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(count).unwrap_or(0))
}

/// The socket daemon's signals: SIGHUP reloads, SIGTERM and SIGINT stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonSignal {
    Reload,
    Stop,
}

/// For a program of several threads: blocks the three signals in the
/// calling thread, and so in every thread it starts afterwards, so that only
/// [`DaemonSignals::wait_for`] takes them. Call before starting any thread.
pub fn for_threads() -> io::Result<DaemonSignals> {
    // SAFETY: sigemptyset and sigaddset fill a local set; pthread_sigmask
    // reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in STOP_SIGNALS {
            libc::sigaddset(&mut set, signal);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // From now on a signal stays pending until taken: the handler, which
        // exits at once, never runs.
        SERVING.store(true, SeqCst);
        Ok(DaemonSignals { set })
    }
}

/// The three signals, blocked everywhere, to be taken by one thread.
pub struct DaemonSignals {
    set: libc::sigset_t,
}

impl DaemonSignals {
    /// Sleeps until one of the three signals comes, or `timeout` passes
    /// (`None`).
    pub fn wait_for(&self, timeout: std::time::Duration) -> io::Result<Option<DaemonSignal>> {
        let timeout = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: sigtimedwait reads the set and the timeout; a null info
        // pointer is allowed.
        let signal = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &timeout) };
        match signal {
            libc::SIGHUP => Ok(Some(DaemonSignal::Reload)),
            signal if signal > 0 => Ok(Some(DaemonSignal::Stop)),
            _ => {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
                    _ => Err(e),
                }
            }
        }
    }
}
