//! The replay memory shared by every helper process on one machine
//! (`replay_store`). ejabberd spreads logins over a pool of helpers; a token
//! accepted by one of them must be refused by all.
//!
//! The store is a file: an 8-byte magic, then fixed-size records (a 16-byte
//! token key and its 8-byte "remember until" time). Processes only append to
//! it, holding an exclusive lock on a companion `.lock` file, so two
//! processes racing with one token accept it exactly once. Each process
//! mirrors the records in a [`ReplayCache`], reading only what others
//! appended since its last look; the cache also enforces `replay_cache_size`
//! over the whole store. When most records have expired, the process holding
//! the lock writes the live ones to a new file and renames it over the old
//! one; the others see the path name another file and read it afresh.
//!
//! # Stored format, version 1 (frozen)
//! - magic `XTAREPL1` (the last byte is the version; another version is
//!   refused by name, never read as this one);
//! - records of 24 bytes: the key of [`replay::key`] (the first 16 bytes of
//!   SHA-256 over user, server, OTP and nonce, each preceded by its length as
//!   a big-endian u64), then the unix time until which the token must be
//!   remembered, big-endian u64;
//! - a torn record at the end (a crash mid-write) is ignored and overwritten.
//!
//! Changing any of this is a new version. The `stored_format_is_frozen` test
//! pins it.
//!
//! # What the folder's other users can do
//! The folder is shared with the XMPP server's group, so any member can plant
//! files there. Every store file is opened without following symbolic links
//! and used only if it is a regular file with one link; a store larger than
//! `replay_cache_size` could ever make is refused as damaged, never read
//! whole; compaction writes to an unpredictable name created exclusively.
//! Every failure refuses the token (fail closed) and is reported as
//! [`ReplayError::Store`] naming the path and the cause; the helper never
//! exits over it. A group member can still delete or fill the store, which
//! re-opens tokens of the last window or refuses logins: see the README.

use crate::core::replay::{self, Key, ReplayCache, ReplayError, ReplayMemory, TokenId};
use std::ffi::OsString;
use std::fs::TryLockError;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Names the format and its version (the last byte).
const MAGIC: &[u8; 8] = b"XTAREPL1";
const HEADER: u64 = MAGIC.len() as u64;
const RECORD: u64 = 24;
/// Below this many records a store is never compacted: not worth a rewrite.
const COMPACT_MIN: u64 = 4096;
/// Records read per chunk: memory for reading never depends on the file.
const CHUNK_RECORDS: u64 = 4096;
/// Every member of the group may use the store (the XMPP servers' users).
const MODE: u32 = 0o660;
/// Compaction's temporary files are `NAME.compact-RANDOM`.
const COMPACT_INFIX: &str = ".compact-";

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
    /// The records of the batch of requests being answered.
    batch: Batch,
}

/// A batch ([`ReplayMemory::begin`]): the lock is taken at its first token
/// and held until [`ReplayMemory::commit`] writes its records in one write,
/// so a pool of helpers under load pays one lock and one write per read,
/// not per login. A batch is the requests of one read (256 KiB at most), so
/// the lock is held for a few milliseconds at most.
#[derive(Debug, Default)]
struct Batch {
    open: bool,
    locked: bool,
    /// Why the lock or the look at the file failed, for the rest of the
    /// batch: its other tokens are refused at once, not after another wait.
    failed: Option<String>,
    /// Encoded records not written yet.
    records: Vec<u8>,
    /// The time of its last token, for compaction.
    now: u64,
}

/// A failure with the store, said so that an operator can act on it.
#[derive(Debug)]
pub struct StoreError {
    path: PathBuf,
    problem: Problem,
}

#[derive(Debug)]
enum Problem {
    Io(&'static str, io::Error),
    SymbolicLink,
    NotRegular(&'static str),
    HardLinks(u64),
    TooLarge { len: u64, max: u64 },
    TooManyRecords(u64),
    LockHeld,
    NotAStore,
    Version(u8),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = self.path.display();
        match &self.problem {
            Problem::Io(what, e) => write!(f, "{path}: cannot {what}: {e}"),
            Problem::SymbolicLink => write!(
                f,
                "{path} is a symbolic link; replay store files must be regular files: remove it"
            ),
            Problem::NotRegular(kind) => write!(
                f,
                "{path} is {kind}, not a regular file; remove it and point replay_store at a file in a folder of its own"
            ),
            Problem::HardLinks(n) => write!(
                f,
                "{path} has {n} hard links; a replay store file has one: remove it"
            ),
            Problem::TooLarge { len, max } => write!(
                f,
                "{path} is {len} bytes, more than replay_cache_size could ever need ({max}); \
                 it is damaged or planted: stop the helpers, remove it, and start them again"
            ),
            Problem::TooManyRecords(n) => write!(
                f,
                "{path} and the files that replaced it hold {n} tokens, more than replay_cache_size \
                 could ever need; someone replaced the store with planted ones: stop the helpers, \
                 remove it, and start them again"
            ),
            Problem::LockHeld => write!(
                f,
                "{path} stayed locked by another process for {} s: a helper is stuck, or someone \
                 holds the lock (`fuser -v {path}` names it)",
                LOCK_WAIT.as_secs()
            ),
            Problem::NotAStore => write!(
                f,
                "{path} is not a replay store (no XTAREPL1 header): point replay_store elsewhere or remove it"
            ),
            Problem::Version(v) => write!(
                f,
                "{path} is a replay store of format version {}, this helper reads version 1: \
                 stop every helper of the other version first",
                char::from(*v)
            ),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<StoreError> for ReplayError {
    fn from(e: StoreError) -> ReplayError {
        ReplayError::Store(e.to_string())
    }
}

/// The most bytes a store can hold for `capacity` live tokens: compaction
/// keeps it under twice the live records (checked at least every
/// `2 × capacity` appends), plus the minimum worth compacting.
fn max_len(capacity: usize) -> u64 {
    HEADER + RECORD * max_records(capacity)
}

/// The most records a store (and a helper's mirror of it) can hold.
fn max_records(capacity: usize) -> u64 {
    4 * capacity as u64 + COMPACT_MIN
}

/// How long a helper waits for another to release the store's lock.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Opens a store file without following a symbolic link, without blocking
/// on a FIFO and without taking a terminal, and checks that it is a regular
/// file with a single link. `create` makes a missing file, group-writable;
/// an existing file is left as its owner made it.
fn open_file(path: &Path, write: bool, create: bool) -> Result<File, StoreError> {
    let fail = |problem| StoreError {
        path: path.to_owned(),
        problem,
    };
    let mut options = OpenOptions::new();
    options
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
        .mode(MODE);
    let opened = if create {
        // Creating needs write access even for a file used read-only.
        match options.clone().write(true).create_new(true).open(path) {
            Ok(created) => {
                // The umask may have taken group write away: put it back.
                created
                    .set_permissions(std::fs::Permissions::from_mode(MODE))
                    .map_err(|e| fail(Problem::Io("set its mode", e)))?;
                Ok(created)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => options.open(path),
            Err(e) => Err(e),
        }
    } else {
        options.open(path)
    };
    let file = opened.map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => fail(Problem::SymbolicLink),
        Some(libc::EISDIR) => fail(Problem::NotRegular("a folder")),
        Some(libc::ENXIO) => fail(Problem::NotRegular("a socket or another special file")),
        _ => fail(Problem::Io("open it", e)),
    })?;
    check_file(&file).map_err(fail)?;
    Ok(file)
}

fn check_file(file: &File) -> Result<std::fs::Metadata, Problem> {
    use std::os::unix::fs::FileTypeExt;
    let meta = file.metadata().map_err(|e| Problem::Io("stat it", e))?;
    let kind = meta.file_type();
    let other = if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a folder")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_socket() {
        Some("a socket")
    } else {
        Some("not a file")
    };
    match other {
        Some(kind) => Err(Problem::NotRegular(kind)),
        None if meta.nlink() > 1 => Err(Problem::HardLinks(meta.nlink())),
        None => Ok(meta),
    }
}

/// The inode a path names now, without following a symbolic link.
fn inode_at(path: &Path) -> Option<u64> {
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

/// One record as stored: the key, then the time big-endian.
fn encode(key: &Key, until: u64) -> [u8; RECORD as usize] {
    let mut record = [0u8; RECORD as usize];
    record[..16].copy_from_slice(key);
    record[16..].copy_from_slice(&until.to_be_bytes());
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

/// What a store file holds: how long its header is valid for, or why not.
enum Header {
    /// Empty, or a torn first write: safe to (re)initialise.
    Missing,
    Valid,
}

fn read_header(file: &File, len: u64) -> Result<Header, Problem> {
    let mut head = [0u8; MAGIC.len()];
    let n = (len.min(HEADER)) as usize;
    file.read_exact_at(&mut head[..n], 0)
        .map_err(|e| Problem::Io("read its header", e))?;
    if n < MAGIC.len() {
        return match MAGIC.starts_with(&head[..n]) {
            true => Ok(Header::Missing),
            false => Err(Problem::NotAStore),
        };
    }
    if &head == MAGIC {
        Ok(Header::Valid)
    } else if head[..7] == MAGIC[..7] {
        Err(Problem::Version(head[7]))
    } else {
        Err(Problem::NotAStore)
    }
}

/// Reads the complete records of `file` from `offset` to `end` into
/// `into`, a bounded chunk at a time.
fn read_records(file: &File, mut offset: u64, end: u64, into: &mut ReplayCache) -> io::Result<()> {
    let mut chunk = vec![0u8; (CHUNK_RECORDS * RECORD) as usize];
    while offset < end {
        let n = (end - offset).min(CHUNK_RECORDS * RECORD) as usize;
        file.read_exact_at(&mut chunk[..n], offset)?;
        for record in chunk[..n].chunks_exact(RECORD as usize) {
            let (key, until) = decode(record);
            into.remember(key, until);
        }
        offset += n as u64;
    }
    Ok(())
}

/// The end of the last complete record of a file `len` bytes long.
fn records_end(len: u64) -> u64 {
    HEADER + len.saturating_sub(HEADER) / RECORD * RECORD
}

impl SharedStore {
    /// Opens the store at `path`, creating it (and its lock file) if needed.
    pub fn open(path: &Path, capacity: usize, now: u64) -> Result<SharedStore, StoreError> {
        let lock_path = lock_path(path);
        // flock needs no write access: a lock file read-only to the helper
        // (planted by someone else) still locks.
        let lock = open_file(&lock_path, false, true)?;
        let data = open_file(path, true, true)?;
        let inode = data
            .metadata()
            .map_err(|e| StoreError {
                path: path.to_owned(),
                problem: Problem::Io("stat it", e),
            })?
            .ino();
        let mut store = SharedStore {
            path: path.to_owned(),
            lock_path,
            inode,
            lock,
            data,
            offset: 0,
            capacity,
            mirror: ReplayCache::new(capacity),
            last_compaction_check: 0,
            batch: Batch::default(),
        };
        store.locked(|store| {
            store.remove_stale_compactions();
            store.sync(now)
        })?;
        Ok(store)
    }

    fn fail(&self, problem: Problem) -> StoreError {
        StoreError {
            path: self.path.clone(),
            problem,
        }
    }

    /// Runs `f` holding the exclusive lock.
    fn locked<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.lock()?;
        let result = f(self);
        let unlocked = self.lock.unlock().map_err(|e| StoreError {
            path: self.lock_path.clone(),
            problem: Problem::Io("unlock it", e),
        });
        let value = result?;
        unlocked.map(|()| value)
    }

    /// Takes the exclusive lock, on the lock file that is at its path now: a
    /// lock on a file someone removed would exclude no one.
    fn lock(&mut self) -> Result<(), StoreError> {
        let fail = |what, e| StoreError {
            path: self.lock_path.clone(),
            problem: Problem::Io(what, e),
        };
        loop {
            self.wait_for_lock()?;
            let ours = self.lock.metadata().map_err(|e| fail("stat it", e))?.ino();
            if inode_at(&self.lock_path) == Some(ours) {
                return Ok(());
            }
            self.lock.unlock().map_err(|e| fail("unlock it", e))?;
            self.lock = open_file(&self.lock_path, false, true)?;
        }
    }

    /// Takes the lock, waiting at most [`LOCK_WAIT`]: a helper must answer
    /// (ejabberd waits 30 s, Prosody 5 s), and a lock held that long is a
    /// helper stuck or someone else holding it. Fails closed then.
    fn wait_for_lock(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut pause = Duration::from_micros(50);
        loop {
            match self.lock.try_lock() {
                Ok(()) => return Ok(()),
                Err(TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(StoreError {
                        path: self.lock_path.clone(),
                        problem: Problem::LockHeld,
                    });
                }
                Err(TryLockError::Error(e)) => {
                    return Err(StoreError {
                        path: self.lock_path.clone(),
                        problem: Problem::Io("lock it", e),
                    });
                }
            }
        }
    }

    /// Brings the mirror up to date with the file. Called with the lock held.
    fn sync(&mut self, now: u64) -> Result<(), StoreError> {
        // Another inode, or none: compacted by another process, or removed
        // or replaced. What this process knew stays in its mirror.
        if inode_at(&self.path) != Some(self.inode) {
            self.data = open_file(&self.path, true, true)?;
            self.inode = self
                .data
                .metadata()
                .map_err(|e| self.fail(Problem::Io("stat it", e)))?
                .ino();
            self.offset = 0;
        }
        let len = check_file(&self.data).map_err(|p| self.fail(p))?.len();
        let max = max_len(self.capacity);
        if len > max {
            return Err(self.fail(Problem::TooLarge { len, max }));
        }
        // Shorter than what was read: cut by someone. Read it from the start
        // and write back what this process remembers.
        let shrunk = len < self.offset;
        if shrunk {
            self.offset = 0;
        }
        if self.offset == 0 {
            if let Header::Missing = read_header(&self.data, len).map_err(|p| self.fail(p))? {
                self.data
                    .write_all_at(MAGIC, 0)
                    .map_err(|e| self.fail(Problem::Io("write its header", e)))?;
            }
            self.offset = HEADER;
        }
        let end = records_end(len);
        if end > self.offset {
            // The mirror keeps what earlier files held too: a store swapped
            // for full ones again and again must not grow it without bound.
            // Looked at before reading, so that nothing beyond it is read.
            let incoming = (end - self.offset) / RECORD;
            let bound = max_records(self.capacity);
            if self.mirror.len() as u64 + incoming > bound {
                self.mirror.forget_expired(now);
                let held = self.mirror.len() as u64 + incoming;
                if held > bound {
                    return Err(self.fail(Problem::TooManyRecords(held)));
                }
            }
            read_records(&self.data, self.offset, end, &mut self.mirror)
                .map_err(|e| self.fail(Problem::Io("read it", e)))?;
            self.offset = end;
        }
        if shrunk {
            self.rewrite(now)?;
        }
        Ok(())
    }

    fn append(&mut self, records: &[u8]) -> Result<(), StoreError> {
        if let Err(e) = self.data.write_all_at(records, self.offset) {
            // Some of them may be in the file, and read by others already:
            // what comes next goes after them, never over them. (They are
            // tokens this process refuses: others refusing them too is
            // safe.)
            if let Ok(meta) = self.data.metadata() {
                self.offset = self.offset.max(records_end(meta.len()));
            }
            return Err(self.fail(Problem::Io("append to it", e)));
        }
        self.offset += records.len() as u64;
        Ok(())
    }

    /// The batch's part of [`ReplayMemory::record`]: the lock and the
    /// look at the file once, the write at [`ReplayMemory::commit`].
    fn record_in_batch(&mut self, key: Key, now: u64, until: u64) -> Result<(), ReplayError> {
        if let Some(cause) = &self.batch.failed {
            return Err(ReplayError::Store(cause.clone()));
        }
        if !self.batch.locked {
            let synced = self.lock().and_then(|()| {
                self.sync(now).inspect_err(|_| {
                    let _ = self.lock.unlock();
                })
            });
            if let Err(e) = synced {
                self.batch.failed = Some(e.to_string());
                return Err(e.into());
            }
            self.batch.locked = true;
        }
        self.mirror.record_key(key, now, until)?;
        self.batch.records.extend_from_slice(&encode(&key, until));
        self.batch.now = now;
        Ok(())
    }

    /// Writes the batch's records and lets the lock go.
    fn write_batch(&mut self) -> Result<(), StoreError> {
        let records = std::mem::take(&mut self.batch.records);
        let mut written = Ok(());
        if !records.is_empty() {
            written = self.append(&records);
            if written.is_ok() {
                // A store that cannot be compacted grows until it is
                // refused as too large: say so now, failing closed.
                written = self.compact(self.batch.now);
            }
        }
        // The buffer's room is kept for the next batch.
        self.batch.records = records;
        self.batch.records.clear();
        let unlocked = self.lock.unlock().map_err(|e| StoreError {
            path: self.lock_path.clone(),
            problem: Problem::Io("unlock it", e),
        });
        written.and(unlocked)
    }

    /// Rewrites the store with its live records when they are under half of
    /// a large file. Called with the lock held.
    fn compact(&mut self, now: u64) -> Result<(), StoreError> {
        let records = (self.offset - HEADER) / RECORD;
        // Counting live records walks the mirror: once a second is enough,
        // unless the file nears the most it may hold.
        let due = records >= 2 * self.capacity as u64 || now != self.last_compaction_check;
        if records < COMPACT_MIN || !due {
            return Ok(());
        }
        self.last_compaction_check = now;
        let live = self.mirror.live(now).count() as u64;
        if records < 2 * live {
            return Ok(());
        }
        self.rewrite(now)
    }

    /// Replaces the store by a file of this process's live records, written
    /// under an unpredictable name created exclusively, then renamed over
    /// it. Called with the lock held.
    fn rewrite(&mut self, now: u64) -> Result<(), StoreError> {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(|e| {
            self.fail(Problem::Io(
                "name a compaction file",
                io::Error::other(e.to_string()),
            ))
        })?;
        let fresh = sibling(
            &self.path,
            &format!("{COMPACT_INFIX}{:016x}", u64::from_ne_bytes(random)),
        );
        let mut bytes = Vec::with_capacity(MAGIC.len() + RECORD as usize * self.mirror.len());
        bytes.extend_from_slice(MAGIC);
        for (key, until) in self.mirror.live(now) {
            bytes.extend_from_slice(&encode(key, until));
        }
        // create_new: O_EXCL, which also refuses a symbolic link planted there.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY)
            .mode(MODE)
            .open(&fresh)
            .and_then(|file| {
                file.set_permissions(std::fs::Permissions::from_mode(MODE))?;
                file.write_all_at(&bytes, 0)?;
                std::fs::rename(&fresh, &self.path)?;
                Ok(file)
            });
        let file = match file {
            Ok(file) => file,
            Err(e) => {
                let _ = std::fs::remove_file(&fresh);
                return Err(self.fail(Problem::Io("compact it", e)));
            }
        };
        self.inode = file
            .metadata()
            .map_err(|e| self.fail(Problem::Io("stat it", e)))?
            .ino();
        self.data = file;
        self.offset = bytes.len() as u64;
        Ok(())
    }

    /// Removes compaction files left by a process killed while compacting.
    /// Called with the lock held, when no one can be compacting.
    fn remove_stale_compactions(&self) {
        let (Some(folder), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return;
        };
        let folder = if folder.as_os_str().is_empty() {
            Path::new(".")
        } else {
            folder
        };
        let mut prefix = name.to_owned();
        prefix.push(COMPACT_INFIX);
        let prefix = prefix.as_encoded_bytes();
        let Ok(entries) = std::fs::read_dir(folder) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().as_encoded_bytes().starts_with(prefix) {
                // Removing a planted link removes the link, not its target.
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

impl ReplayMemory for SharedStore {
    fn recalls(&self, key: &Key, now: u64) -> bool {
        self.mirror.contains(key, now)
    }

    fn begin(&mut self) {
        self.batch.open = true;
    }

    fn commit(&mut self) -> Result<(), ReplayError> {
        self.batch.open = false;
        self.batch.failed = None;
        if !std::mem::take(&mut self.batch.locked) {
            return Ok(());
        }
        self.write_batch().map_err(ReplayError::from)
    }

    fn record(&mut self, key: Key, now: u64, until: u64) -> Result<(), ReplayError> {
        if self.batch.open {
            return self.record_in_batch(key, now, until);
        }
        // Outside a batch (verify, tests): a batch of one, lasting when this
        // returns.
        self.begin();
        let recorded = self.record_in_batch(key, now, until);
        let committed = self.commit();
        recorded.and(committed)
    }
}

/// A look at a store without creating, writing or locking anything: for
/// `check-config` and `verify`, which root may run in a folder that other
/// users can write to.
#[derive(Debug)]
pub struct StoreSnapshot {
    /// `None` when the store does not exist yet.
    records: Option<ReplayCache>,
}

impl StoreSnapshot {
    pub fn read(path: &Path, capacity: usize) -> Result<StoreSnapshot, StoreError> {
        let lock_path = lock_path(path);
        for file in [&lock_path, &path.to_path_buf()] {
            match open_file(file, false, false) {
                Err(StoreError {
                    problem: Problem::Io(_, e),
                    ..
                }) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
                Ok(_) => {}
            }
        }
        let fail = |problem| StoreError {
            path: path.to_owned(),
            problem,
        };
        let data = match open_file(path, false, false) {
            Ok(data) => data,
            Err(StoreError {
                problem: Problem::Io(_, e),
                ..
            }) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(StoreSnapshot { records: None });
            }
            Err(e) => return Err(e),
        };
        let len = check_file(&data).map_err(fail)?.len();
        let max = max_len(capacity);
        if len > max {
            return Err(fail(Problem::TooLarge { len, max }));
        }
        let mut records = ReplayCache::new(capacity);
        if let Header::Valid = read_header(&data, len).map_err(fail)? {
            read_records(&data, HEADER, records_end(len), &mut records)
                .map_err(|e| fail(Problem::Io("read it", e)))?;
        }
        Ok(StoreSnapshot {
            records: Some(records),
        })
    }

    pub fn exists(&self) -> bool {
        self.records.is_some()
    }

    /// Whether the token is remembered as used at `now`.
    pub fn was_used(&self, id: &TokenId, now: u64) -> bool {
        self.records
            .as_ref()
            .is_some_and(|records| records.contains(&replay::key(id), now))
    }

    pub fn live_records(&self, now: u64) -> usize {
        self.records
            .as_ref()
            .map_or(0, |records| records.live(now).count())
    }
}

/// The lock file of the store at `path`.
pub fn lock_path(path: &Path) -> PathBuf {
    sibling(path, ".lock")
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
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
    fn a_batch_holds_the_lock_from_its_first_token_and_writes_once_at_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut first = SharedStore::open(&path, 100, 100).unwrap();
        let mut second = SharedStore::open(&path, 100, 100).unwrap();
        let key = |nonce| replay::key(&id("alice", nonce));
        first.begin();
        assert_eq!(first.record(key("1"), 100, 190), Ok(()));
        assert_eq!(first.record(key("1"), 100, 190), Err(ReplayError::Replayed));
        assert_eq!(first.record(key("2"), 100, 190), Ok(()));
        // Nothing written yet, and no one else may look until it is.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), HEADER);
        assert!(matches!(
            second.lock.try_lock(),
            Err(TryLockError::WouldBlock)
        ));
        assert_eq!(first.commit(), Ok(()));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), HEADER + 2 * RECORD);
        assert_eq!(
            second.record(key("2"), 101, 190),
            Err(ReplayError::Replayed)
        );
        // A batch without a token takes no lock; one after it works alike.
        first.begin();
        assert_eq!(first.commit(), Ok(()));
        second.lock.try_lock().unwrap();
        second.lock.unlock().unwrap();
        first.begin();
        assert_eq!(first.record(key("3"), 102, 190), Ok(()));
        assert_eq!(first.commit(), Ok(()));
        assert_eq!(
            second.record(key("3"), 103, 190),
            Err(ReplayError::Replayed)
        );
    }

    #[test]
    fn a_batch_that_could_not_lock_refuses_its_other_tokens_without_waiting_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut first = SharedStore::open(&path, 100, 100).unwrap();
        let holder = SharedStore::open(&path, 100, 100).unwrap();
        holder.lock.try_lock().unwrap();
        let key = |nonce| replay::key(&id("alice", nonce));
        first.begin();
        let waited = Instant::now();
        assert!(matches!(
            first.record(key("1"), 100, 190),
            Err(ReplayError::Store(cause)) if cause.contains("lock")
        ));
        assert!(waited.elapsed() >= LOCK_WAIT);
        let again = Instant::now();
        assert!(matches!(
            first.record(key("2"), 100, 190),
            Err(ReplayError::Store(_))
        ));
        assert!(again.elapsed() < LOCK_WAIT / 4, "{:?}", again.elapsed());
        assert_eq!(first.commit(), Ok(()));
        // The next batch tries again.
        holder.lock.unlock().unwrap();
        first.begin();
        assert_eq!(first.record(key("2"), 101, 190), Ok(()));
        assert_eq!(first.commit(), Ok(()));
    }

    #[test]
    fn a_token_recorded_by_one_process_is_a_replay_for_another() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut first = SharedStore::open(&path, 100, 100).unwrap();
        let mut second = SharedStore::open(&path, 100, 100).unwrap();
        assert_eq!(
            first.record(replay::key(&id("alice", "1")), 100, 190),
            Ok(())
        );
        assert_eq!(
            second.record(replay::key(&id("alice", "1")), 101, 190),
            Err(ReplayError::Replayed)
        );
        assert_eq!(
            second.record(replay::key(&id("alice", "2")), 101, 190),
            Ok(())
        );
        assert_eq!(
            first.record(replay::key(&id("alice", "2")), 102, 190),
            Err(ReplayError::Replayed)
        );
        // A third process starting later sees both.
        let mut third = SharedStore::open(&path, 100, 100).unwrap();
        assert_eq!(
            third.record(replay::key(&id("alice", "1")), 103, 190),
            Err(ReplayError::Replayed)
        );
        assert_eq!(
            third.record(replay::key(&id("alice", "2")), 103, 190),
            Err(ReplayError::Replayed)
        );
        // Once expired, the same key may be recorded again.
        assert_eq!(
            third.record(replay::key(&id("alice", "1")), 190, 280),
            Ok(())
        );
    }

    #[test]
    fn the_cap_counts_every_process_entries_and_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut first = SharedStore::open(&path, 2, 100).unwrap();
        let mut second = SharedStore::open(&path, 2, 100).unwrap();
        first.record(replay::key(&id("a", "1")), 100, 190).unwrap();
        second.record(replay::key(&id("b", "1")), 100, 190).unwrap();
        assert_eq!(
            first.record(replay::key(&id("c", "1")), 100, 190),
            Err(ReplayError::Full(2))
        );
        assert_eq!(second.record(replay::key(&id("c", "1")), 191, 280), Ok(()));
    }

    #[test]
    fn compaction_keeps_live_tokens_for_every_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut writer = SharedStore::open(&path, 100_000, 100).unwrap();
        let mut reader = SharedStore::open(&path, 100_000, 100).unwrap();
        let nonces: Vec<String> = (0..COMPACT_MIN + 10).map(|n| n.to_string()).collect();
        for nonce in &nonces[..COMPACT_MIN as usize] {
            writer
                .record(replay::key(&id("old", nonce)), 100, 190)
                .unwrap();
        }
        let before = std::fs::metadata(&path).unwrap().len();
        // Later, the old tokens have expired; the next records trigger compaction.
        for nonce in &nonces[..10] {
            writer
                .record(replay::key(&id("new", nonce)), 1000, 1090)
                .unwrap();
        }
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(
            after < before / 100,
            "compacted from {before} to {after} bytes"
        );
        assert_eq!(after, HEADER + 10 * RECORD);
        assert_eq!(
            reader.record(replay::key(&id("new", "3")), 1001, 1090),
            Err(ReplayError::Replayed)
        );
        assert_eq!(
            reader.record(replay::key(&id("newer", "1")), 1001, 1090),
            Ok(())
        );
        assert_eq!(
            writer.record(replay::key(&id("newer", "1")), 1002, 1090),
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
        SharedStore::open(&path, 10, 100).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let foreign = dir.path().join("config.toml");
        std::fs::write(&foreign, "token_secret = \"x\"\n").unwrap();
        std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o600)).unwrap();
        let error = SharedStore::open(&foreign, 10, 100).unwrap_err();
        let mode = std::fs::metadata(&foreign).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "a file that is not a store keeps its mode");
        assert!(
            error
                .to_string()
                .contains("config.toml is not a replay store"),
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
        let mut first = SharedStore::open(&path, 10, 100).unwrap();
        let mut second = SharedStore::open(&path, 10, 100).unwrap();
        first.record(replay::key(&id("a", "1")), 100, 190).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_file(sibling(&path, ".lock")).unwrap();
        // What was only in the removed file is forgotten, but the two
        // processes meet again in the new files.
        assert_eq!(second.record(replay::key(&id("a", "2")), 100, 190), Ok(()));
        assert_eq!(
            first.record(replay::key(&id("a", "2")), 100, 190),
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
        let mut store = SharedStore::open(&path, 10, 100).unwrap();
        store.record(replay::key(&id("a", "1")), 100, 190).unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .write_all_at(&[7; 5], len)
            .unwrap();
        let mut other = SharedStore::open(&path, 10, 100).unwrap();
        assert_eq!(
            other.record(replay::key(&id("a", "1")), 100, 190),
            Err(ReplayError::Replayed)
        );
        assert_eq!(other.record(replay::key(&id("a", "2")), 100, 190), Ok(()));
        assert_eq!(
            store.record(replay::key(&id("a", "2")), 100, 190),
            Err(ReplayError::Replayed)
        );
    }

    fn store_error(path: &Path) -> String {
        SharedStore::open(path, 100, 100).unwrap_err().to_string()
    }

    #[test]
    fn stored_format_is_frozen() {
        // Changing the key derivation or the record layout silently misses
        // every entry written by helpers of the previous version: it must be
        // a new format version instead. The key was computed with Python's
        // hashlib: sha256(b"".join(len(f).to_bytes(8, "big") + f for f in
        // (b"alice", b"example.org", b"12345678", b"1")))[:16].
        let key = replay::key(&id("alice", "1"));
        assert_eq!(
            key,
            [
                0x3b, 0x9c, 0xd8, 0xc1, 0x33, 0x74, 0x44, 0xf4, 0xf1, 0x3d, 0xf7, 0xf5, 0x99, 0xf4,
                0xe8, 0x1c
            ]
        );
        let record = encode(&key, 0x0102_0304_0506_0708);
        assert_eq!(&record[..16], &key);
        assert_eq!(&record[16..], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(MAGIC, b"XTAREPL1");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&encode(&key, 1000));
        std::fs::write(&path, &file).unwrap();
        let mut store = SharedStore::open(&path, 100, 100).unwrap();
        assert_eq!(
            store.record(replay::key(&id("alice", "1")), 100, 190),
            Err(ReplayError::Replayed)
        );
    }

    #[test]
    fn another_format_version_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        std::fs::write(&path, b"XTAREPL2").unwrap();
        let error = store_error(&path);
        assert!(error.contains("format version 2"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), b"XTAREPL2");
    }

    #[test]
    fn a_symbolic_link_is_refused_and_its_target_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("someone-elses-file");
        std::fs::write(&target, b"").unwrap();
        for (link, at) in [("replay", "replay"), ("other.lock", "other")] {
            let link = dir.path().join(link);
            std::os::unix::fs::symlink(&target, &link).unwrap();
            let error = store_error(&dir.path().join(at));
            assert!(
                error.contains(&format!("{} is a symbolic link", link.display())),
                "{error}"
            );
            assert_eq!(
                std::fs::read(&target).unwrap(),
                b"",
                "the target is unchanged"
            );
            std::fs::remove_file(&link).unwrap();
        }
    }

    #[test]
    fn a_store_swapped_for_a_link_while_running_fails_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let target = dir.path().join("target");
        std::fs::write(&target, b"").unwrap();
        let mut store = SharedStore::open(&path, 100, 100).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let error = store
            .record(replay::key(&id("a", "1")), 100, 190)
            .unwrap_err();
        assert!(
            matches!(&error, ReplayError::Store(m) if m.contains("is a symbolic link")),
            "{error}"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"");
    }

    #[test]
    fn devices_fifos_and_folders_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let folder = dir.path().join("folder");
        std::fs::create_dir(&folder).unwrap();
        for (path, kind) in [
            (Path::new("/dev/null"), "a character device"),
            (fifo.as_path(), "a FIFO"),
            (folder.as_path(), "a folder"),
        ] {
            // The lock file sits beside the store: use the path itself as
            // the lock file's prefix by checking each file as the store.
            let error = open_file(path, true, true).unwrap_err().to_string();
            assert!(
                error.contains(&format!("is {kind}, not a regular file")),
                "{error}"
            );
        }
    }

    #[test]
    fn a_hard_linked_store_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        SharedStore::open(&path, 100, 100).unwrap();
        std::fs::hard_link(&path, dir.path().join("elsewhere")).unwrap();
        assert!(store_error(&path).contains("has 2 hard links"));
    }

    #[test]
    fn a_huge_sparse_store_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let file = File::create(&path).unwrap();
        file.write_all_at(MAGIC, 0).unwrap();
        file.set_len(200 << 30).unwrap(); // 200 GB, sparse
        let error = store_error(&path);
        assert!(
            error.contains("is 214748364800 bytes, more than replay_cache_size could ever need"),
            "{error}"
        );
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            200 << 30,
            "never rebuilt"
        );
        // Grown that large while a helper runs: refused, not read.
        std::fs::remove_file(&path).unwrap();
        let mut store = SharedStore::open(&path, 100, 100).unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(200 << 30)
            .unwrap();
        assert!(matches!(
            store.record(replay::key(&id("a", "1")), 100, 190),
            Err(ReplayError::Store(m)) if m.contains("more than replay_cache_size")
        ));
    }

    #[test]
    fn a_store_truncated_under_running_helpers_keeps_every_token_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut first = SharedStore::open(&path, 100, 100).unwrap();
        let mut second = SharedStore::open(&path, 100, 100).unwrap();
        first.record(replay::key(&id("a", "1")), 100, 190).unwrap();
        second.record(replay::key(&id("a", "2")), 100, 190).unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        // Both still refuse both tokens, and write what they know back.
        assert_eq!(
            second.record(replay::key(&id("a", "1")), 101, 190),
            Err(ReplayError::Replayed)
        );
        assert_eq!(
            first.record(replay::key(&id("a", "2")), 101, 190),
            Err(ReplayError::Replayed)
        );
        assert_eq!(first.record(replay::key(&id("a", "3")), 101, 190), Ok(()));
        assert_eq!(
            second.record(replay::key(&id("a", "3")), 102, 190),
            Err(ReplayError::Replayed)
        );
        // A helper started afterwards opens the store and knows all three.
        let mut third = SharedStore::open(&path, 100, 103).unwrap();
        for nonce in ["1", "2", "3"] {
            assert_eq!(
                third.record(replay::key(&id("a", nonce)), 103, 190),
                Err(ReplayError::Replayed),
                "{nonce}"
            );
        }
        let header = &std::fs::read(&path).unwrap()[..8];
        assert_eq!(header, MAGIC);
    }

    #[test]
    fn an_empty_or_header_less_store_is_initialised() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        for content in [&b""[..], b"XTAR"] {
            std::fs::write(&path, content).unwrap();
            let mut store = SharedStore::open(&path, 100, 100).unwrap();
            assert_eq!(store.record(replay::key(&id("a", "1")), 100, 190), Ok(()));
            assert_eq!(&std::fs::read(&path).unwrap()[..8], MAGIC);
            std::fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn stale_compaction_files_are_removed_and_a_planted_one_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let stale = dir.path().join("replay.compact-0000000000000001");
        std::fs::write(&stale, b"left by a killed helper").unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let planted = dir.path().join("replay.compact-0000000000000002");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let mut store = SharedStore::open(&path, 100_000, 100).unwrap();
        assert!(!stale.exists() && planted.symlink_metadata().is_err());
        // Compaction itself never writes through a name planted there.
        for nonce in 0..COMPACT_MIN {
            store
                .record(replay::key(&id("old", &nonce.to_string())), 100, 190)
                .unwrap();
        }
        store
            .record(replay::key(&id("new", "1")), 1000, 1090)
            .unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), HEADER + RECORD);
    }

    #[test]
    fn compaction_keeps_tokens_remembered_past_a_forward_clock_step() {
        // Tokens are remembered one lifetime past their expiry
        // (`Verified::remember_until`); a clock stepped forward by less than
        // that and back again must find them still remembered.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut store = SharedStore::open(&path, 100_000, 100).unwrap();
        store
            .record(replay::key(&id("used", "1")), 100, 100 + 60 + 90)
            .unwrap();
        for nonce in 0..COMPACT_MIN {
            store
                .record(replay::key(&id("old", &nonce.to_string())), 100, 101)
                .unwrap();
        }
        // The clock jumps 90 s ahead: compaction runs, then it jumps back.
        store
            .record(replay::key(&id("ahead", "1")), 190, 340)
            .unwrap();
        assert!(std::fs::metadata(&path).unwrap().len() < HEADER + 10 * RECORD);
        let mut other = SharedStore::open(&path, 100_000, 101).unwrap();
        assert_eq!(
            other.record(replay::key(&id("used", "1")), 101, 250),
            Err(ReplayError::Replayed)
        );
    }

    #[test]
    fn a_snapshot_reads_without_creating_writing_or_locking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let snapshot = StoreSnapshot::read(&path, 100).unwrap();
        assert!(!snapshot.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing created"
        );
        let mut store = SharedStore::open(&path, 100, 100).unwrap();
        store.record(replay::key(&id("a", "1")), 100, 190).unwrap();
        let before = std::fs::read(&path).unwrap();
        let snapshot = StoreSnapshot::read(&path, 100).unwrap();
        assert!(snapshot.was_used(&id("a", "1"), 150));
        assert!(!snapshot.was_used(&id("a", "1"), 190));
        assert!(!snapshot.was_used(&id("a", "2"), 150));
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // The snapshot took no lock: the store is free to use meanwhile.
        assert_eq!(store.record(replay::key(&id("a", "2")), 101, 190), Ok(()));
        // A planted device is refused, not opened for writing.
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/dev/null", &path).unwrap();
        let error = StoreSnapshot::read(&path, 100).unwrap_err().to_string();
        assert!(error.contains("is a symbolic link"), "{error}");
    }

    #[test]
    fn a_lock_held_by_someone_else_fails_closed_within_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let mut store = SharedStore::open(&path, 100, 100).unwrap();
        // Another open of the lock file, as another process would hold it.
        let holder = File::open(lock_path(&path)).unwrap();
        holder.lock().unwrap();
        let started = std::time::Instant::now();
        let error = store
            .record(replay::key(&id("a", "1")), 100, 190)
            .unwrap_err();
        assert!(started.elapsed() < LOCK_WAIT + Duration::from_secs(2));
        assert!(
            matches!(&error, ReplayError::Store(m) if m.contains("stayed locked by another process")),
            "{error}"
        );
        holder.unlock().unwrap();
        assert_eq!(store.record(replay::key(&id("a", "1")), 100, 190), Ok(()));
    }

    #[test]
    fn stores_swapped_for_full_ones_again_and_again_cannot_grow_a_helper_without_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let capacity = 10;
        let mut store = SharedStore::open(&path, capacity, 100).unwrap();
        let mut last = Ok(());
        for swap in 0..4u64 {
            // A planted store as large as allowed, of tokens that never expire.
            let mut bytes = MAGIC.to_vec();
            for n in 0..max_records(capacity) {
                let mut key = [0u8; 16];
                key[..8].copy_from_slice(&swap.to_be_bytes());
                key[8..].copy_from_slice(&n.to_be_bytes());
                bytes.extend_from_slice(&encode(&key, u64::MAX));
            }
            let planted = dir.path().join("planted");
            std::fs::write(&planted, &bytes).unwrap();
            std::fs::rename(&planted, &path).unwrap();
            // Refused either way: the cache is full of the planted tokens.
            last = store.record(replay::key(&id("a", &swap.to_string())), 100, 190);
            assert!(last.is_err(), "swap {swap}");
        }
        let error = last.unwrap_err();
        assert!(
            matches!(&error, ReplayError::Store(m) if m.contains("more than replay_cache_size could ever need")),
            "{error}"
        );
        assert!(store.mirror.len() as u64 <= max_records(capacity));
    }
}
