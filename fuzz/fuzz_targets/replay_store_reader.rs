//! The replay store's file reader (docs/protocol.md §5): any file contents,
//! of any length, read by `StoreSnapshot::read` (and, when asked, opened by
//! `SharedStore::open` and recorded into) never panic; a file larger than
//! `replay_cache_size` could make is refused without being read; what is
//! read allocates no more than the records the bound allows; and what the
//! reader remembers is what a plain reading of the format says: the live
//! records of a valid store, nothing for an empty or header-less one, an
//! error naming the file for anything else. A token recorded is refused as
//! replayed exactly when the file remembers it, accepted only below the
//! bound (the first long run found a way past it, since fixed:
//! fuzz/regressions keeps the input), and is in the file afterwards.
//!
//! Input: a flags byte (bit 0: also open the store and record one of four
//! known tokens; bit 1: extend the file with zeros, sparse; bit 2: large
//! capacity; bits 6-7: which token), a capacity byte, four bytes of
//! extension (in 64-byte units), eight bytes of time, then the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::OnceLock;
use xmpp_token_auth::core::replay::{self, ReplayError, ReplayMemory, TokenId};
use xmpp_token_auth::replay_store::{SharedStore, StoreSnapshot};
use xmpp_token_auth_fuzz::{Bytes, Counting};

#[global_allocator]
static ALLOC: Counting = Counting::new();

const MAGIC: &[u8; 8] = b"XTAREPL1";
const RECORD: u64 = 24;
/// The store's own bound (docs/protocol.md §5): twice the live records
/// twice over, plus the 4096 records below which it is never compacted.
fn max_len(capacity: usize) -> u64 {
    8 + RECORD * (4 * capacity as u64 + 4096)
}
/// What reading may hold besides the records: one chunk of 4096 records,
/// and bookkeeping.
const READ_SLACK: usize = 4096 * 24 + 64 * 1024;
/// What a remembered record may cost in a hash map, growth included.
const PER_RECORD: usize = 128;

/// Four tokens whose keys the seed corpus writes into stores.
const KNOWN: [TokenId<'static>; 4] = [
    TokenId {
        user: "alice",
        server: "example.org",
        otp: "12345678",
        nonce: "1",
    },
    TokenId {
        user: "bob",
        server: "example.org",
        otp: "12345678",
        nonce: "1",
    },
    TokenId {
        user: "alice",
        server: "example.org",
        otp: "87654321",
        nonce: "2",
    },
    TokenId {
        user: "carol",
        server: "example.com",
        otp: "00000000",
        nonce: "3",
    },
];

fn folder() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary folder"))
}

/// What the format says a file holds.
enum Expected {
    TooLarge,
    NotAStore,
    /// No header yet: an empty store.
    Empty,
    /// Key → the latest "remember until" among its records.
    Records(HashMap<[u8; 16], u64>),
}

fn expected(file: &[u8], len: u64, capacity: usize) -> (Expected, u64) {
    if len > max_len(capacity) {
        return (Expected::TooLarge, 0);
    }
    // Bytes past `file` are the zeros of the extension.
    let at = |i: u64| file.get(i as usize).copied().unwrap_or(0);
    let head: Vec<u8> = (0..len.min(8)).map(at).collect();
    if head.len() < 8 {
        let kind = if MAGIC.starts_with(&head) {
            Expected::Empty
        } else {
            Expected::NotAStore
        };
        return (kind, 0);
    }
    if head != MAGIC {
        return (Expected::NotAStore, 0);
    }
    let count = (len - 8) / RECORD;
    let mut records = HashMap::new();
    for i in 0..count {
        let start = 8 + i * RECORD;
        let bytes: Vec<u8> = (start..start + RECORD).map(at).collect();
        let key: [u8; 16] = bytes[..16].try_into().unwrap();
        let until = held(u64::from_be_bytes(bytes[16..].try_into().unwrap()));
        let kept = records.entry(key).or_insert(until);
        *kept = (*kept).max(until);
    }
    (Expected::Records(records), count)
}

/// A time as the replay memory holds it: to the second until 2106, and for
/// ever after, never forgetting a token early.
fn held(until: u64) -> u64 {
    if until >= u64::from(u32::MAX) {
        u64::MAX
    } else {
        until
    }
}

fn live(records: &HashMap<[u8; 16], u64>, now: u64) -> usize {
    records.values().filter(|&&until| now < until).count()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes(data);
    let flags = input.byte();
    let capacity = if flags & 4 == 0 {
        1 + usize::from(input.byte())
    } else {
        1 + usize::from(input.byte()) * 64
    };
    let extension = u64::from(input.u32()) * 64;
    let now = input.in_range(1..=1 << 40);
    let file = input.rest();
    let len = file.len() as u64 + if flags & 2 == 0 { 0 } else { extension };

    let path: PathBuf = folder().path().join("replay");
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, file).expect("write the store");
    if len > file.len() as u64 {
        File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(len))
            .expect("extend the store");
    }
    let (expected, records) = expected(file, len, capacity);
    let bound = READ_SLACK + PER_RECORD * records as usize;

    let baseline = ALLOC.reset_peak();
    let snapshot = StoreSnapshot::read(&path, capacity);
    let peak = ALLOC.peak_above(baseline);
    assert!(
        peak <= bound,
        "reading a {len}-byte store of {records} records allocated {peak} bytes (bound {bound})"
    );
    match (&expected, &snapshot) {
        (Expected::TooLarge | Expected::NotAStore, Err(error)) => {
            let message = error.to_string();
            assert!(message.contains(&*path.to_string_lossy()), "{message}");
        }
        (Expected::Empty, Ok(snapshot)) => {
            assert!(snapshot.exists());
            assert_eq!(snapshot.live_records(now), 0);
        }
        (Expected::Records(records), Ok(snapshot)) => {
            assert!(snapshot.exists());
            assert_eq!(snapshot.live_records(now), live(records, now));
            for id in &KNOWN {
                let remembered = records.get(&replay::key(id));
                assert_eq!(
                    snapshot.was_used(id, now),
                    remembered.is_some_and(|&until| now < until),
                    "{id:?}"
                );
            }
        }
        (_, Err(error)) => panic!("a readable {len}-byte store is refused: {error}"),
        (_, Ok(_)) => panic!("a {len}-byte store that should be refused is read"),
    }

    if flags & 1 == 0 {
        return;
    }
    // The same file opened by a helper, which records one token.
    let id = &KNOWN[usize::from(flags >> 6)];
    let baseline = ALLOC.reset_peak();
    let opened = SharedStore::open(&path, capacity, now);
    let peak = ALLOC.peak_above(baseline);
    assert!(
        peak <= bound,
        "opening a {len}-byte store of {records} records allocated {peak} bytes (bound {bound})"
    );
    let records = match (expected, opened) {
        (Expected::TooLarge | Expected::NotAStore, Err(_)) => return,
        (Expected::Empty, Ok(store)) => (store, HashMap::new()),
        (Expected::Records(records), Ok(store)) => (store, records),
        (_, Err(error)) => panic!("a usable {len}-byte store cannot be opened: {error}"),
        (_, Ok(_)) => panic!("a {len}-byte store that should be refused is opened"),
    };
    let (mut store, records) = records;
    let outcome = store.record(replay::key(id), now, now + 90);
    let in_file = records.get(&replay::key(id));
    let replayed = in_file.is_some_and(|&until| now < until);
    let live = live(&records, now);
    match &outcome {
        Ok(()) => assert!(
            !replayed && live < capacity,
            "{id:?} accepted with {live} live tokens, replay_cache_size {capacity}"
        ),
        Err(ReplayError::Replayed) => assert!(replayed, "{id:?} refused as replayed"),
        Err(ReplayError::Full(_)) => {
            assert!(!replayed && live >= capacity, "{id:?} refused as full")
        }
        Err(other) => panic!("{id:?}: {other}"),
    }
    if outcome.is_ok() {
        let after = StoreSnapshot::read(&path, capacity).expect("the store reads back");
        assert!(
            after.was_used(id, now),
            "{id:?} was recorded but is not stored"
        );
    }
});
