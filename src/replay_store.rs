//! The replay memory shared by every helper process on one machine
//! (`replay_store`). ejabberd spreads logins over a pool of helpers; a token
//! accepted by one of them must be refused by all.
//!
//! The store is a file: an 8-byte magic, then fixed-size records (a 16-byte
//! token key and its 8-byte expiry). Processes only append to it, holding an
//! exclusive lock on a companion `.lock` file, so two processes racing with
//! one token accept it exactly once. Each process mirrors the records in a
//! [`ReplayCache`], reading only what others appended since its last look;
//! the cache also enforces `replay_cache_size` over the whole store. When
//! most records have expired, the process holding the lock writes the live
//! ones to a new file and renames it over the old one; the others see the
//! path name another file and read it afresh.
//!
//! Every failure refuses the token (fail closed) and is reported as
//! [`ReplayError::Store`]; the helper never exits over it.

use crate::replay::{self, Key, ReplayCache, ReplayError, ReplayMemory, TokenId};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"XTAREPL1";
const HEADER: u64 = MAGIC.len() as u64;
const RECORD: u64 = 24;
/// Below this many records a store is never compacted: not worth a rewrite.
const COMPACT_MIN: u64 = 4096;
/// Every member of the group may use the store (the XMPP servers' users).
const MODE: u32 = 0o660;

#[derive(Debug)]
pub struct SharedStore {
    path: PathBuf,
    lock_path: PathBuf,
    lock: File,
    data: File,
    /// The inode `data` is, to notice a compaction by another process.
    inode: u64,
    /// Bytes of `data` already read into `mirror`.
    offset: u64,
    capacity: usize,
    mirror: ReplayCache,
    /// When this process last counted live records for compaction.
    last_compaction_check: u64,
}

/// Opens `path` for reading and writing, creating it group-writable if it
/// does not exist. An existing file is left as its owner made it.
fn open_shared(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).mode(MODE);
    match options.clone().create_new(true).open(path) {
        Ok(created) => {
            // The umask may have taken group write away: put it back.
            created.set_permissions(std::fs::Permissions::from_mode(MODE))?;
            Ok(created)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => options.open(path),
        Err(e) => Err(e),
    }
}

/// One record as stored: the key, then the expiry big-endian.
fn encode(key: &Key, expires_at: u64) -> [u8; RECORD as usize] {
    let mut record = [0u8; RECORD as usize];
    record[..16].copy_from_slice(key);
    record[16..].copy_from_slice(&expires_at.to_be_bytes());
    record
}

fn decode(record: &[u8]) -> (Key, u64) {
    let (key, until) = record.split_at(16);
    let key = key.try_into().expect("records are 24 bytes");
    (
        key,
        u64::from_be_bytes(until.try_into().expect("records are 24 bytes")),
    )
}

fn io_error(error: io::Error) -> ReplayError {
    ReplayError::Store(error.kind())
}

impl SharedStore {
    /// Opens the store at `path`, creating it (and its lock file) if needed.
    pub fn open(path: &Path, capacity: usize) -> io::Result<SharedStore> {
        let lock_path = lock_path(path);
        let lock = open_shared(&lock_path)?;
        let data = open_shared(path)?;
        let mut store = SharedStore {
            path: path.to_owned(),
            lock_path,
            inode: data.metadata()?.ino(),
            lock,
            data,
            offset: 0,
            capacity,
            mirror: ReplayCache::new(capacity),
            last_compaction_check: 0,
        };
        let result = store.lock().and_then(|()| store.sync());
        store.lock.unlock()?;
        result.map(|()| store)
    }

    /// Brings the mirror up to date with the file. Called with the lock held.
    fn sync(&mut self) -> io::Result<()> {
        // Another inode, or none: compacted by another process, or removed
        // (then it is made anew).
        let on_disk = std::fs::metadata(&self.path).ok().map(|m| m.ino());
        if on_disk != Some(self.inode) {
            self.data = open_shared(&self.path)?;
            self.inode = self.data.metadata()?.ino();
            self.offset = 0;
            self.mirror = ReplayCache::new(self.capacity);
        }
        let len = self.data.metadata()?.len();
        if self.offset == 0 {
            if len == 0 {
                self.data.write_all_at(MAGIC, 0)?;
            } else {
                let mut magic = [0u8; MAGIC.len()];
                self.data.read_exact_at(&mut magic, 0)?;
                if &magic != MAGIC {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{} is not a replay store", self.path.display()),
                    ));
                }
            }
            self.offset = HEADER;
        }
        // A record cut short by a crash is ignored, and overwritten next.
        let end = HEADER + len.saturating_sub(HEADER) / RECORD * RECORD;
        if end > self.offset {
            let mut records = vec![0u8; (end - self.offset) as usize];
            self.data.read_exact_at(&mut records, self.offset)?;
            for record in records.chunks_exact(RECORD as usize) {
                let (key, until) = decode(record);
                self.mirror.remember(key, until);
            }
            self.offset = end;
        }
        Ok(())
    }

    fn append(&mut self, key: Key, expires_at: u64) -> io::Result<()> {
        self.data
            .write_all_at(&encode(&key, expires_at), self.offset)?;
        self.offset += RECORD;
        Ok(())
    }

    /// Rewrites the store with its live records when they are under half of
    /// a large file. Called with the lock held.
    fn compact(&mut self, now: u64) -> io::Result<()> {
        let records = (self.offset - HEADER) / RECORD;
        // Counting live records walks the mirror: once a second is enough.
        if records < COMPACT_MIN || now == self.last_compaction_check {
            return Ok(());
        }
        self.last_compaction_check = now;
        let live = self.mirror.live(now).count() as u64;
        if records < 2 * live {
            return Ok(());
        }
        let fresh = self
            .path
            .with_extension(format!("compact-{}", std::process::id()));
        let mut bytes = Vec::with_capacity((HEADER + RECORD * live) as usize);
        bytes.extend_from_slice(MAGIC);
        for (key, until) in self.mirror.live(now) {
            bytes.extend_from_slice(&encode(key, until));
        }
        let _ = std::fs::remove_file(&fresh);
        let mut file = open_shared(&fresh)?;
        file.write_all(&bytes)?;
        std::fs::rename(&fresh, &self.path)?;
        self.inode = file.metadata()?.ino();
        self.data = file;
        self.offset = bytes.len() as u64;
        Ok(())
    }

    /// Takes the exclusive lock, on the lock file that is at its path now: a
    /// lock on a file someone removed would exclude no one.
    fn lock(&mut self) -> io::Result<()> {
        loop {
            self.lock.lock()?;
            let at_path = std::fs::metadata(&self.lock_path).ok().map(|m| m.ino());
            if at_path == Some(self.lock.metadata()?.ino()) {
                return Ok(());
            }
            self.lock.unlock()?;
            self.lock = open_shared(&self.lock_path)?;
        }
    }
}

impl ReplayMemory for SharedStore {
    fn record(&mut self, id: &TokenId, now: u64, expires_at: u64) -> Result<(), ReplayError> {
        self.lock().map_err(io_error)?;
        let result = self.sync().map_err(io_error).and_then(|()| {
            let key = replay::key(id);
            self.mirror.record_key(key, now, expires_at)?;
            self.append(key, expires_at).map_err(io_error)
        });
        if result.is_ok() {
            // The token is recorded; a failed clean-up is retried next time.
            let _ = self.compact(now);
        }
        let unlocked = self.lock.unlock().map_err(io_error);
        result.and(unlocked)
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id<'a>(user: &'a str, nonce: &'a str) -> TokenId<'a> {
        TokenId {
            user,
            server: "example.org",
            otp: "12345678",
            nonce,
        }
    }

    #[test]
    fn a_token_recorded_by_one_process_is_a_replay_for_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut first = SharedStore::open(&path, 100).unwrap();
        let mut second = SharedStore::open(&path, 100).unwrap();
        assert_eq!(first.record(&id("alice", "1"), 100, 190), Ok(()));
        assert_eq!(
            second.record(&id("alice", "1"), 101, 190),
            Err(ReplayError::Replayed)
        );
        assert_eq!(second.record(&id("alice", "2"), 101, 190), Ok(()));
        assert_eq!(
            first.record(&id("alice", "2"), 102, 190),
            Err(ReplayError::Replayed)
        );
        // A third process starting later sees both.
        let mut third = SharedStore::open(&path, 100).unwrap();
        assert_eq!(
            third.record(&id("alice", "1"), 103, 190),
            Err(ReplayError::Replayed)
        );
        assert_eq!(
            third.record(&id("alice", "2"), 103, 190),
            Err(ReplayError::Replayed)
        );
        // Once expired, the same key may be recorded again.
        assert_eq!(third.record(&id("alice", "1"), 190, 280), Ok(()));
    }

    #[test]
    fn the_cap_counts_every_process_entries_and_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut first = SharedStore::open(&path, 2).unwrap();
        let mut second = SharedStore::open(&path, 2).unwrap();
        first.record(&id("a", "1"), 100, 190).unwrap();
        second.record(&id("b", "1"), 100, 190).unwrap();
        assert_eq!(
            first.record(&id("c", "1"), 100, 190),
            Err(ReplayError::Full(2))
        );
        assert_eq!(second.record(&id("c", "1"), 191, 280), Ok(()));
    }

    #[test]
    fn compaction_keeps_live_tokens_for_every_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut writer = SharedStore::open(&path, 100_000).unwrap();
        let mut reader = SharedStore::open(&path, 100_000).unwrap();
        let nonces: Vec<String> = (0..COMPACT_MIN + 10).map(|n| n.to_string()).collect();
        for nonce in &nonces[..COMPACT_MIN as usize] {
            writer.record(&id("old", nonce), 100, 190).unwrap();
        }
        let before = std::fs::metadata(&path).unwrap().len();
        // Later, the old tokens have expired; the next records trigger compaction.
        for nonce in &nonces[..10] {
            writer.record(&id("new", nonce), 1000, 1090).unwrap();
        }
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(
            after < before / 100,
            "compacted from {before} to {after} bytes"
        );
        assert_eq!(after, HEADER + 10 * RECORD);
        assert_eq!(
            reader.record(&id("new", "3"), 1001, 1090),
            Err(ReplayError::Replayed)
        );
        assert_eq!(reader.record(&id("newer", "1"), 1001, 1090), Ok(()));
        assert_eq!(
            writer.record(&id("newer", "1"), 1002, 1090),
            Err(ReplayError::Replayed)
        );
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_store_is_created_group_writable_and_a_foreign_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        SharedStore::open(&path, 10).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let foreign = dir.path().join("config.toml");
        std::fs::write(&foreign, "token_secret = \"x\"\n").unwrap();
        std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = SharedStore::open(&foreign, 10).unwrap_err();
        let mode = std::fs::metadata(&foreign).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a file that is not a store keeps its mode");
        assert!(
            error.to_string().contains("is not a replay store"),
            "{error}"
        );
        assert_eq!(
            std::fs::read_to_string(&foreign).unwrap(),
            "token_secret = \"x\"\n"
        );
    }

    #[test]
    fn a_removed_store_or_lock_file_is_made_anew_and_still_shared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut first = SharedStore::open(&path, 10).unwrap();
        let mut second = SharedStore::open(&path, 10).unwrap();
        first.record(&id("a", "1"), 100, 190).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(lock_path(&path)).unwrap();
        // What was only in the removed file is forgotten, but the two
        // processes meet again in the new files.
        assert_eq!(second.record(&id("a", "2"), 100, 190), Ok(()));
        assert_eq!(
            first.record(&id("a", "2"), 100, 190),
            Err(ReplayError::Replayed)
        );
        assert_eq!(
            first.lock.metadata().unwrap().ino(),
            second.lock.metadata().unwrap().ino()
        );
    }

    #[test]
    fn a_torn_record_at_the_end_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut store = SharedStore::open(&path, 10).unwrap();
        store.record(&id("a", "1"), 100, 190).unwrap();
        OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&[7; 5])
            .unwrap();
        let mut other = SharedStore::open(&path, 10).unwrap();
        assert_eq!(
            other.record(&id("a", "1"), 100, 190),
            Err(ReplayError::Replayed)
        );
        assert_eq!(other.record(&id("a", "2"), 100, 190), Ok(()));
        assert_eq!(
            store.record(&id("a", "2"), 100, 190),
            Err(ReplayError::Replayed)
        );
    }
}
