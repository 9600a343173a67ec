//! What the fuzz targets share: an allocator that measures, and small
//! reference models to compare the helper's code against.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use xmpp_token_auth::core::frame::{MAX_REQUEST, Protocol};

/// The system allocator, counting the bytes live now and the most live
/// since [`Counting::reset_peak`]. A target installs it with
/// `#[global_allocator]` and measures what one call allocates at most.
pub struct Counting {
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl Counting {
    pub const fn new() -> Counting {
        Counting {
            live: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Starts a measurement: returns the bytes live now, the baseline.
    pub fn reset_peak(&self) -> usize {
        let live = self.live();
        self.peak.store(live, Ordering::Relaxed);
        live
    }

    /// The most bytes live above `baseline` since [`Counting::reset_peak`].
    pub fn peak_above(&self, baseline: usize) -> usize {
        self.peak.load(Ordering::Relaxed).saturating_sub(baseline)
    }

    fn grew(&self, by: usize) {
        let live = self.live.fetch_add(by, Ordering::Relaxed) + by;
        self.peak.fetch_max(live, Ordering::Relaxed);
    }

    fn shrank(&self, by: usize) {
        self.live.fetch_sub(by, Ordering::Relaxed);
    }
}

impl Default for Counting {
    fn default() -> Self {
        Counting::new()
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator, which
// upholds GlobalAlloc's contract; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            self.grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on as is.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            self.grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (see above).
        unsafe { System.dealloc(ptr, layout) };
        self.shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                self.grew(new_size - layout.size());
            } else {
                self.shrank(layout.size() - new_size);
            }
        }
        new
    }
}

/// What a decoder hands out for one frame, owned: the request's bytes, or
/// `None` for a line longer than [`MAX_REQUEST`].
pub type Owned = Option<Vec<u8>>;

/// The frames of `stream` by docs/protocol.md §2, written as plainly as
/// possible, and whether a frame was left incomplete at the end.
pub fn reference_frames(protocol: Protocol, stream: &[u8]) -> (Vec<Owned>, bool) {
    let mut frames = Vec::new();
    match protocol {
        Protocol::Ejabberd => {
            let mut rest = stream;
            while rest.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
                if rest.len() < 2 + len {
                    break;
                }
                frames.push(Some(rest[2..2 + len].to_vec()));
                rest = &rest[2 + len..];
            }
            (frames, !rest.is_empty())
        }
        Protocol::Line => {
            let mut lines: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
            // What follows the last `\n` is not a line yet.
            let unfinished = lines.pop().is_some_and(|tail| !tail.is_empty());
            for line in lines {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                frames.push((line.len() <= MAX_REQUEST).then(|| line.to_vec()));
            }
            (frames, unfinished)
        }
    }
}

/// A cursor over fuzz input that never fails: past the end it reads zeros.
pub struct Bytes<'a>(pub &'a [u8]);

impl<'a> Bytes<'a> {
    pub fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    pub fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }

    /// A number in `range`, inclusive.
    pub fn in_range(&mut self, range: std::ops::RangeInclusive<u64>) -> u64 {
        let span = range.end() - range.start();
        range.start()
            + if span == u64::MAX {
                self.u64()
            } else {
                self.u64() % (span + 1)
            }
    }

    /// Up to `max` bytes, the count taken from the input first.
    pub fn slice(&mut self, max: usize) -> &'a [u8] {
        let len = (usize::from(self.u16()) % (max + 1)).min(self.0.len());
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        taken
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}
