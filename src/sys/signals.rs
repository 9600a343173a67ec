//! SIGTERM, SIGINT and SIGHUP end the helper with status 0 (docs/protocol.md §9), but
//! only once every request that was waiting when the signal was taken has
//! been answered, and never between reading a request and writing its reply.
//!
//! Until [`serving`] is called the handler exits at once: no request has
//! been read yet. From then on the three signals are blocked in every
//! thread and taken by a thread of their own, which raises a flag and wakes
//! the serving thread with a real-time signal whose handler does nothing but
//! interrupt the `read` the serving thread sleeps in. So:
//!
//! - a stop never interrupts the answering: a `read` that has returned
//!   requests returns them (a signal only cuts a read short that has read
//!   nothing), and the flag is looked at before the next one;
//! - waiting for input is a plain `read`, one system call a request: no
//!   `ppoll` with the signals let in, no `sigpending` (the round trip of one
//!   request at a time was 1.2 × a plain helper's with them);
//! - a wake-up can come just after the flag was looked at and before the
//!   `read` sleeps, and be lost: the signal thread wakes the serving thread
//!   again every 10 ms until it says it saw the flag, so a stop is
//!   noticed within that at worst;
//! - once the stop is seen, reading no longer waits: it returns what was
//!   waiting then, counted by FIONREAD, for the loop to answer, and then
//!   reports the stop. A host that keeps writing cannot keep the helper.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;

const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

static SERVING: AtomicBool = AtomicBool::new(false);
static STOP: AtomicBool = AtomicBool::new(false);
/// The serving thread saw [`STOP`]: no more wake-ups needed.
static SEEN: AtomicBool = AtomicBool::new(false);

/// How often the serving thread is woken again until it sees the stop.
const WAKE_AGAIN: Duration = Duration::from_millis(10);

/// The signal that cuts the serving thread's `read` short: the first
/// real-time signal free for programs, which no host sends by chance.
fn wake_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

extern "C" fn on_wake(_: libc::c_int) {}

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
        // SAFETY: a zeroed sigaction is a valid "no flags, empty mask"
        // value; the handler only touches atomics and calls _exit.
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

/// Blocks the three signals in this thread and every later one, and starts
/// the thread that takes them and wakes this one (see the module's comment).
pub fn serving() -> io::Result<Serving> {
    // SAFETY: a zeroed sigaction is "no flags (so no SA_RESTART: the read
    // is cut short), empty mask"; the handler does nothing. The sets are
    // local, filled by sigemptyset and sigaddset, read by pthread_sigmask.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_wake as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(wake_signal(), &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut stop: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut stop);
        for signal in STOP_SIGNALS {
            libc::sigaddset(&mut stop, signal);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &stop, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // Let in even if the parent had blocked it.
        let mut wake: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut wake);
        libc::sigaddset(&mut wake, wake_signal());
        let rc = libc::pthread_sigmask(libc::SIG_UNBLOCK, &wake, std::ptr::null_mut());
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        SERVING.store(true, SeqCst);
        let serving_thread = libc::pthread_self();
        // Started with the three blocked, as this thread has them now; the
        // wake signal is for the serving thread only.
        std::thread::Builder::new()
            .name("signals".into())
            .stack_size(64 * 1024)
            .spawn(move || take_stop(stop, wake, serving_thread))?;
        Ok(Serving { owed: None })
    }
}

/// The signal thread: waits for one of the three, raises [`STOP`], and
/// wakes the serving thread until it has seen it.
fn take_stop(stop: libc::sigset_t, wake: libc::sigset_t, serving: libc::pthread_t) {
    // SAFETY: pthread_sigmask reads `wake`; sigwaitinfo reads `stop`, with a
    // null info pointer, which is allowed; pthread_kill signals a thread of
    // this process that lives as long as the process does (the main thread).
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &wake, std::ptr::null_mut());
        // Only EINTR can cut it short: the set is valid.
        while libc::sigwaitinfo(&stop, std::ptr::null_mut()) < 0 {
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return;
            }
        }
        STOP.store(true, SeqCst);
        while !SEEN.load(SeqCst) {
            libc::pthread_kill(serving, wake_signal());
            std::thread::sleep(WAKE_AGAIN);
        }
    }
}

/// The serving loop's way of reading input (see the module's comment).
pub struct Serving {
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
            if self.owed.is_none() && STOP.load(SeqCst) {
                SEEN.store(true, SeqCst);
                self.owed = Some(waiting(input.as_fd()).unwrap_or(buffer.len()));
            }
            match self.owed {
                Some(0) => return Ok(None),
                // It was there when the signal was taken: no sleeping (and
                // the look is only for input that cannot count its bytes).
                Some(owed) => {
                    if poll(input.as_fd(), Some(&NO_TIME))? != Polled::Ready {
                        return Ok(None);
                    }
                    let read = input.read(buffer)?;
                    self.owed = Some(match read {
                        0 => 0,
                        _ => owed.saturating_sub(read),
                    });
                    return Ok(Some(read));
                }
                // Sleeps in the read itself; the wake signal cuts it short.
                None if timeout.is_none() => match input.read(buffer) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    read => return read.map(Some),
                },
                None => match poll(input.as_fd(), timeout.as_ref())? {
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

/// Waits up to `timeout` (forever if none) for `fd` to be readable or hung
/// up.
fn poll(fd: BorrowedFd<'_>, timeout: Option<&libc::timespec>) -> io::Result<Polled> {
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout = timeout.map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: one valid pollfd; the timeout is valid or null, the mask null
    // (the thread's own).
    let ready = unsafe { libc::ppoll(&mut poll, 1, timeout, std::ptr::null()) };
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
