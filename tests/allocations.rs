//! A valid token answered from the in-memory replay memory with logging off
//! costs no heap allocation: what the serving loop allocates does not grow
//! with the number of requests (docs/protocol.md, issue "Performance").

mod common;

use common::{SECRET, SEED, auth, now, token};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use xmpp_token_auth::core::config::{Config, LogTarget};
use xmpp_token_auth::core::frame::Protocol;
use xmpp_token_auth::core::helper::{Helper, Service};
use xmpp_token_auth::log::Logger;
use xmpp_token_auth::serve::{self, Ending};

/// Counts every allocation and reallocation of this test binary.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; the
// counter is the only addition.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: the caller's guarantees for `layout` are passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counts true replies without keeping them.
struct Replies {
    accepted: usize,
}

impl Write for Replies {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.accepted += bytes.chunks(4).filter(|r| *r == [0, 2, 0, 1]).count();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Allocations made while the serving loop answers `count` valid tokens,
/// fed as pipe reads of 64 KiB.
fn allocations_serving(count: usize) -> usize {
    let text = format!("token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\nlog = \"none\"\n");
    let config = Config::parse(&text, Path::new("test.toml"), &|_: &Path| unreachable!()).unwrap();
    let service = Mutex::new(Service::Ready(Helper::new(config)));
    let logger = Logger::open(LogTarget::None, None, false);
    let mut decoder = Protocol::Ejabberd.decoder();
    let input: Vec<u8> = (0..count)
        .flat_map(|i| {
            auth(
                "alice@example.org",
                &token("alice@example.org", &i.to_string()),
            )
        })
        .collect();
    let mut chunks = input.chunks(64 * 1024);
    let read = |buffer: &mut [u8]| -> io::Result<Option<usize>> {
        Ok(Some(chunks.next().map_or(0, |chunk| {
            buffer[..chunk.len()].copy_from_slice(chunk);
            chunk.len()
        })))
    };
    let mut replies = Replies { accepted: 0 };
    let mut buffer = vec![0u8; 256 * 1024];
    let before = ALLOCATIONS.load(Relaxed);
    let ending = serve::converse(
        read,
        &mut replies,
        &mut decoder,
        &service,
        &logger,
        &mut buffer,
    );
    let made = ALLOCATIONS.load(Relaxed) - before;
    assert!(matches!(ending, Ending::InputEnded), "{ending:?}");
    assert_eq!(replies.accepted, count, "every valid token accepted");
    made
}

#[test]
fn answering_valid_tokens_allocates_nothing_per_request() {
    let started = now();
    // Past the first reads, which size the decoder's buffer (a read and
    // the start of a request) and the replies'.
    let few = allocations_serving(2_000);
    let many = allocations_serving(40_000);
    // A TOTP step that ends between the two runs costs nothing either (codes
    // are numbers), but say so if it happened.
    assert_eq!(
        few,
        many,
        "2 000 requests: {few} allocations, 40 000: {many} (steps {} to {})",
        started / 30,
        now() / 30
    );
}
