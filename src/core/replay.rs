//! Memory of accepted tokens, so that each one logs in at most once.
//!
//! An entry lives until the token's OTP step has left the acceptance window,
//! and then one whole token lifetime more (`Verified::remember_until`), so a
//! clock stepped forward and back again never re-opens a used token. Keys are a SHA-256 digest of
//! (JID, OTP, nonce), so every entry costs the same whatever the nonce length,
//! and the number of entries is capped: when the cap is reached with live
//! entries only, new tokens are refused (fail closed) instead of forgetting
//! tokens that could still be replayed.

use crate::core::replay_table::Table;
use sha2::{Digest, Sha256};

/// Default cap: about 5 MB at most (see `replay_table`). A token is remembered until its step
/// leaves the window plus one whole lifetime (up to 180 s with the default
/// 30 s steps and ±1 window), so this is room for about 550 logins a second,
/// sustained, before new tokens are refused (fail closed).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// A token's identity in the replay memory: a digest of its [`TokenId`].
pub type Key = crate::core::replay_table::Key;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("token was already used")]
    Replayed,
    #[error(
        "replay cache is full ({0} live tokens): refusing new tokens until some expire; raise replay_cache_size"
    )]
    Full(usize),
    /// The shared store failed; the message names its path and the cause.
    #[error("replay store failed, refusing tokens until it works again: {0}")]
    Store(String),
}

impl ReplayError {
    /// True for failures an operator must act on, not just note.
    pub fn is_alarm(&self) -> bool {
        !matches!(self, ReplayError::Replayed)
    }
}

/// Where accepted tokens are remembered: this process's memory
/// ([`ReplayCache`]), or a store shared by every helper process on the
/// machine (`crate::replay_store`).
pub trait ReplayMemory {
    /// Records the token whose [`key`] is `key`, verified at `now`, to be
    /// remembered until `until`. Fails if it was recorded before and is
    /// still remembered, or if it cannot be remembered.
    fn record(&mut self, key: Key, now: u64, until: u64) -> Result<(), ReplayError>;

    /// Whether `key` is remembered, as far as this process knows without
    /// asking anyone (a shared store's mirror, an engine's nothing): the
    /// look a refused token costs, so that it takes as long as an accepted
    /// one. Never a reason to accept or refuse.
    fn recalls(&self, key: &Key, now: u64) -> bool;

    /// Starts a batch of requests read together: until [`commit`], what
    /// [`record`] accepts may be kept back, to be made lasting all at once
    /// (a shared store takes its lock and writes once a batch).
    ///
    /// [`commit`]: ReplayMemory::commit
    /// [`record`]: ReplayMemory::record
    fn begin(&mut self) {}

    /// Ends the batch. On an error, the tokens recorded since [`begin`]
    /// are not remembered by anyone else and must all be refused.
    ///
    /// [`begin`]: ReplayMemory::begin
    fn commit(&mut self) -> Result<(), ReplayError> {
        Ok(())
    }
}

#[derive(Debug)]
pub struct ReplayCache {
    /// Key → unix time from which the entry may be forgotten, as an
    /// [`Until`]: 20 bytes a slot, a million entries in 42 MB.
    entries: Table,
    capacity: usize,
    /// When expired entries were last swept, so that a full cache under load
    /// is swept at most once a second rather than on every request.
    last_sweep: u64,
}

/// Room a helper's own memory makes at start ([`ReplayCache::reserved`]):
/// entries up to this many are recorded without allocating (a larger
/// `replay_cache_size` grows the table by doubling past it). Memory is
/// resident only as it is used: 5 MB when full.
const RESERVED: usize = DEFAULT_CAPACITY;

/// A unix time as an entry keeps it: seconds fit in 32 bits until 2106;
/// later times are kept as "for ever", which never forgets a token early.
/// Time 0 is not kept: nothing is remembered until then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Until(u32);

impl Until {
    /// `None` for time 0, which the table uses for an empty slot.
    fn new(time: u64) -> Option<Until> {
        (time > 0).then(|| Until(u32::try_from(time).unwrap_or(u32::MAX)))
    }

    fn time(self) -> u64 {
        if self.0 == u32::MAX {
            u64::MAX
        } else {
            u64::from(self.0)
        }
    }
}

/// What makes a token unique: who it is for, and its OTP and nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenId<'a> {
    pub user: &'a str,
    pub server: &'a str,
    pub otp: &'a str,
    pub nonce: &'a str,
}

/// Fields are length-prefixed so that no two different tuples hash alike.
pub fn key(id: &TokenId) -> Key {
    let mut hash = Sha256::new();
    for part in [id.user, id.server, id.otp, id.nonce] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest = hash.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

impl ReplayCache {
    /// A memory of at most `capacity` live tokens, growing as they come:
    /// what it allocates follows what it holds (a shared store's mirror,
    /// read from a file of any size).
    pub fn new(capacity: usize) -> Self {
        ReplayCache::with_room(capacity, 0)
    }

    /// [`ReplayCache::new`] with room for the default cap made at start, so
    /// that a helper's logins allocate nothing.
    pub fn reserved(capacity: usize) -> Self {
        ReplayCache::with_room(capacity, capacity.min(RESERVED))
    }

    fn with_room(capacity: usize, room: usize) -> Self {
        ReplayCache {
            entries: Table::with_room(room),
            capacity,
            last_sweep: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }

    /// The time `key` is remembered until, if it is in the table.
    fn until(&self, key: &Key) -> Option<u64> {
        self.entries.get(key).map(|until| Until(until).time())
    }

    /// [`ReplayMemory::record`].
    pub fn record_key(&mut self, key: Key, now: u64, until: u64) -> Result<(), ReplayError> {
        let mut look = self.entries.look(&key);
        if look
            .until
            .is_some_and(|remembered| now < Until(remembered).time())
        {
            return Err(ReplayError::Replayed);
        }
        // Not remembered any more (or never): a new token as far as the cap
        // is concerned, since a mirror of a shared store may hold stale
        // entries beyond it. A full cache under load is swept at most once
        // a second, not on every request.
        if self.entries.len() >= self.capacity && now != self.last_sweep {
            self.last_sweep = now;
            self.forget_expired(now);
            look = self.entries.look(&key);
        }
        if self.entries.len() >= self.capacity {
            return Err(ReplayError::Full(self.entries.len()));
        }
        // `until` is after `now`, so never 0.
        if let Some(until) = Until::new(until) {
            self.entries.set(look, key, until.0);
        }
        Ok(())
    }

    /// Forgets every entry no longer remembered at `now`.
    pub fn forget_expired(&mut self, now: u64) {
        self.entries.retain(|until| now < Until(until).time());
    }

    /// Whether `key` is remembered as used at `now`.
    pub fn contains(&self, key: &Key, now: u64) -> bool {
        self.until(key).is_some_and(|until| now < until)
    }

    /// Takes in an entry another process recorded, without checks: it was
    /// checked when it was recorded.
    pub fn remember(&mut self, key: Key, expires_at: u64) {
        let look = self.entries.look(&key);
        let remembered = look.until.map_or(0, |until| Until(until).time());
        if let Some(until) = Until::new(remembered.max(expires_at)) {
            self.entries.set(look, key, until.0);
        }
    }

    /// The entries still live at `now`.
    pub fn live(&self, now: u64) -> impl Iterator<Item = (&Key, u64)> {
        self.entries
            .iter()
            .map(|(key, until)| (key, Until(until).time()))
            .filter(move |&(_, until)| now < until)
    }
}

impl ReplayMemory for ReplayCache {
    fn record(&mut self, key: Key, now: u64, until: u64) -> Result<(), ReplayError> {
        self.record_key(key, now, until)
    }

    fn recalls(&self, key: &Key, now: u64) -> bool {
        self.contains(key, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_entries_count_as_recorded_and_live_lists_them() {
        let mut cache = ReplayCache::new(10);
        let one = key(&id("a", "1", "1"));
        cache.remember(one, 190);
        assert_eq!(
            cache.record(key(&id("a", "1", "1")), 100, 190),
            Err(ReplayError::Replayed)
        );
        cache.remember(key(&id("a", "1", "2")), 150);
        let mut live: Vec<u64> = cache.live(160).map(|(_, until)| until).collect();
        live.sort();
        assert_eq!(live, [190]);
    }

    fn id<'a>(user: &'a str, otp: &'a str, nonce: &'a str) -> TokenId<'a> {
        TokenId {
            user,
            server: "b",
            otp,
            nonce,
        }
    }

    #[test]
    fn a_token_is_accepted_once() {
        let mut cache = ReplayCache::new(10);
        assert_eq!(
            cache.record(key(&id("a", "12345678", "1")), 100, 190),
            Ok(())
        );
        assert_eq!(
            cache.record(key(&id("a", "12345678", "1")), 150, 190),
            Err(ReplayError::Replayed)
        );
        assert_eq!(
            cache.record(key(&id("a", "12345678", "1")), 189, 190),
            Err(ReplayError::Replayed)
        );
    }

    #[test]
    fn the_same_token_for_another_jid_or_nonce_is_distinct() {
        let mut cache = ReplayCache::new(10);
        cache
            .record(key(&id("a", "12345678", "1")), 100, 190)
            .unwrap();
        assert_eq!(
            cache.record(key(&id("c", "12345678", "1")), 100, 190),
            Ok(())
        );
        assert_eq!(
            cache.record(key(&id("a", "12345678", "2")), 100, 190),
            Ok(())
        );
        // Field boundaries matter: ("1234567", "81") is not ("12345678", "1"),
        // and user "a@b" on server "c" is not user "a" on server "b@c".
        assert_eq!(
            cache.record(key(&id("a", "1234567", "81")), 100, 190),
            Ok(())
        );
        let one = TokenId {
            user: "a@b",
            server: "c",
            otp: "1",
            nonce: "1",
        };
        let two = TokenId {
            user: "a",
            server: "b@c",
            otp: "1",
            nonce: "1",
        };
        cache.record(key(&one), 100, 190).unwrap();
        assert_eq!(cache.record(key(&two), 100, 190), Ok(()));
    }

    #[test]
    fn an_expired_entry_no_longer_counts() {
        let mut cache = ReplayCache::new(10);
        cache
            .record(key(&id("a", "12345678", "1")), 100, 190)
            .unwrap();
        assert_eq!(
            cache.record(key(&id("a", "12345678", "1")), 190, 280),
            Ok(())
        );
    }

    #[test]
    fn full_of_live_entries_fails_closed() {
        let mut cache = ReplayCache::new(2);
        cache.record(key(&id("a", "1", "1")), 100, 190).unwrap();
        cache.record(key(&id("a", "1", "2")), 100, 190).unwrap();
        assert_eq!(
            cache.record(key(&id("a", "1", "3")), 100, 190),
            Err(ReplayError::Full(2))
        );
        assert_eq!(
            cache.record(key(&id("a", "1", "3")), 101, 190),
            Err(ReplayError::Full(2))
        );
        // Live entries are still refused as replays, not forgotten.
        assert_eq!(
            cache.record(key(&id("a", "1", "1")), 101, 190),
            Err(ReplayError::Replayed)
        );
    }

    #[test]
    fn a_token_used_after_2106_is_remembered_for_ever_not_forgotten_early() {
        let mut cache = ReplayCache::new(10);
        let now = u64::from(u32::MAX) + 1000;
        cache
            .record(key(&id("a", "1", "1")), now, now + 90)
            .unwrap();
        for later in [now + 89, now + 90, u64::MAX - 90] {
            assert_eq!(
                cache.record(key(&id("a", "1", "1")), later, later + 90),
                Err(ReplayError::Replayed)
            );
        }
        // Times before then are kept to the second.
        cache
            .record(key(&id("a", "1", "2")), 100, 4_000_000_000)
            .unwrap();
        assert!(cache.contains(&key(&id("a", "1", "2")), 3_999_999_999));
        assert!(!cache.contains(&key(&id("a", "1", "2")), 4_000_000_000));
    }

    #[test]
    fn expired_entries_make_room() {
        let mut cache = ReplayCache::new(2);
        cache.record(key(&id("a", "1", "1")), 100, 150).unwrap();
        cache.record(key(&id("a", "1", "2")), 100, 190).unwrap();
        assert_eq!(cache.record(key(&id("a", "1", "3")), 160, 250), Ok(()));
        assert_eq!(cache.len(), 2);
    }
}
