//! The table behind [`crate::core::replay::ReplayCache`]: token keys and the
//! time until which each is remembered.
//!
//! Open addressing over 20-byte slots (the 16-byte key, then the time as a
//! little-endian u32, 0 meaning empty), probed one slot after another from
//! a place chosen by the key mixed with a secret of this table. Two
//! properties a general map does not give:
//! - a look and a write go through the same slots, so looking a refused
//!   token up costs what recording an accepted one does (a swiss table
//!   writes a second, cold, array), and timing does not tell them apart;
//! - slots start as zero bytes the kernel has not handed out yet, so room
//!   reserved at start costs no resident memory until it is used.
//!
//! Keys are digests, but a group member can plant records in a shared
//! store file: without the secret they cannot choose keys that crowd one
//! place of the table.

use std::hash::BuildHasher;

pub type Key = [u8; 16];

const SLOT: usize = 20;
/// Fewer than half the slots are used, so that a look ends within a few
/// slots; a million entries take 2^21 slots, 42 MB.
const MAX_LOAD_DIVISOR: usize = 2;
const MIN_SLOTS: usize = 16;

pub struct Table {
    /// The slots, end to end: a `Vec<u8>` of zeros is allocated zeroed (a
    /// `Vec` of arrays is written zero by zero, every page made resident).
    bytes: Vec<u8>,
    len: usize,
    secret: [u64; 2],
}

/// Where a key is, or would go, and its time if it is there.
#[derive(Clone, Copy)]
pub struct Look {
    index: usize,
    pub until: Option<u32>,
}

/// Where a key is, or where it would go.
enum Place {
    Found(usize),
    Vacant(usize),
}

impl Table {
    /// A table with room for `entries` before it first grows.
    pub fn with_room(entries: usize) -> Table {
        let state = std::collections::hash_map::RandomState::new();
        Table {
            bytes: empty_slots(slots_for(entries)),
            len: 0,
            secret: [state.hash_one(0u8), state.hash_one(1u8)],
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn slots(&self) -> &[[u8; SLOT]] {
        self.bytes.as_chunks().0
    }

    fn slots_mut(&mut self) -> &mut [[u8; SLOT]] {
        self.bytes.as_chunks_mut().0
    }

    /// The time stored for `key`, if it is in the table.
    pub fn get(&self, key: &Key) -> Option<u32> {
        self.look(key).until
    }

    /// Where `key` is, and its time if it is there: for [`Table::set`] to
    /// write without looking again.
    pub fn look(&self, key: &Key) -> Look {
        match self.place(key) {
            Place::Found(index) => Look {
                index,
                until: Some(until(&self.slots()[index])),
            },
            Place::Vacant(index) => Look { index, until: None },
        }
    }

    /// Stores `until` (not 0) for `key`, in place of what was there;
    /// `look` is [`Table::look`]'s answer for `key`, with nothing set since.
    pub fn set(&mut self, look: Look, key: Key, until: u32) {
        debug_assert_ne!(until, 0, "0 marks an empty slot");
        let index = match look.until {
            Some(_) => look.index,
            None if (self.len + 1) * MAX_LOAD_DIVISOR > self.slots().len() => {
                self.grow(self.slots().len() * 2);
                self.look(&key).index
            }
            None => look.index,
        };
        let slot = &self.slots()[index];
        debug_assert!(
            until_is_empty(slot) || slot[..16] == key[..],
            "a look made before the table changed"
        );
        if until_is_empty(slot) {
            self.len += 1;
        }
        let slot = &mut self.slots_mut()[index];
        slot[..16].copy_from_slice(&key);
        slot[16..].copy_from_slice(&until.to_le_bytes());
    }

    /// Keeps the entries whose time `keep` accepts; the others are gone.
    /// In place: a sweep of a full memory allocates nothing.
    pub fn retain(&mut self, keep: impl Fn(u32) -> bool) {
        let mut removed = 0;
        for slot in self.slots_mut() {
            if !until_is_empty(slot) && !keep(until(slot)) {
                *slot = [0; SLOT];
                removed += 1;
            }
        }
        if removed == 0 {
            return;
        }
        self.len -= removed;
        // A look stops at the first empty slot, so an entry that now sits
        // past a hole from where its look starts is put again. Cluster by
        // cluster, from just after an empty slot: each entry then moves to
        // the first empty slot of its look, at or before where it was.
        let mask = self.slots().len() - 1;
        let first_empty = (0..=mask)
            .find(|&index| until_is_empty(&self.slots()[index]))
            .expect("under half the slots are used");
        for step in 1..=mask + 1 {
            let index = (first_empty + step) & mask;
            let entry = self.slots()[index];
            if until_is_empty(&entry) {
                continue;
            }
            self.slots_mut()[index] = [0; SLOT];
            let Place::Vacant(place) = self.place(key(&entry)) else {
                unreachable!("keys are unique in the table");
            };
            self.slots_mut()[place] = entry;
        }
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, u32)> {
        self.slots()
            .iter()
            .filter(|slot| !until_is_empty(slot))
            .map(|slot| (key(slot), until(slot)))
    }

    fn place(&self, key: &Key) -> Place {
        let slots = self.slots();
        let mask = slots.len() - 1;
        let mut index = self.start(key) & mask;
        loop {
            let slot = &slots[index];
            if until_is_empty(slot) {
                return Place::Vacant(index);
            }
            if slot[..16] == key[..] {
                return Place::Found(index);
            }
            index = (index + 1) & mask;
        }
    }

    /// The first slot to look at: the key folded with the secret by one
    /// 64 × 64 → 128-bit multiplication (every bit of the key moves it).
    fn start(&self, key: &Key) -> usize {
        let half = |at: usize| u64::from_le_bytes(key[at..at + 8].try_into().expect("8 bytes"));
        let product = u128::from(half(0) ^ self.secret[0]) * u128::from(half(8) ^ self.secret[1]);
        ((product as u64) ^ ((product >> 64) as u64)) as usize
    }

    /// Moves the entries into `slots` fresh slots.
    fn grow(&mut self, slots: usize) {
        let old = std::mem::replace(&mut self.bytes, empty_slots(slots));
        self.len = 0;
        for slot in old.as_chunks::<SLOT>().0 {
            if !until_is_empty(slot) {
                let Place::Vacant(index) = self.place(key(slot)) else {
                    unreachable!("keys are unique in the old table");
                };
                self.slots_mut()[index] = *slot;
                self.len += 1;
            }
        }
    }
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("len", &self.len)
            .field("slots", &self.slots().len())
            .finish()
    }
}

/// A power of two, with fewer than half of them needed for `entries`.
fn slots_for(entries: usize) -> usize {
    (entries.saturating_mul(MAX_LOAD_DIVISOR) + 1)
        .next_power_of_two()
        .max(MIN_SLOTS)
}

/// Zero bytes: `vec!` of zero bytes asks the allocator for zeroed memory,
/// which for a large table is fresh pages not yet resident.
fn empty_slots(count: usize) -> Vec<u8> {
    vec![0u8; count * SLOT]
}

fn key(slot: &[u8; SLOT]) -> &Key {
    slot[..16].try_into().expect("16 bytes")
}

fn until(slot: &[u8; SLOT]) -> u32 {
    u32::from_le_bytes(slot[16..].try_into().expect("4 bytes"))
}

fn until_is_empty(slot: &[u8; SLOT]) -> bool {
    until(slot) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn key_of(n: u32) -> Key {
        let mut key = [0u8; 16];
        key[..4].copy_from_slice(&n.to_le_bytes());
        key
    }

    #[test]
    fn the_table_agrees_with_a_map_through_growth_and_sweeps() {
        let mut table = Table::with_room(4);
        let mut model: HashMap<Key, u32> = HashMap::new();
        for n in 0..5000u32 {
            // Keys that differ in one byte only, written again and again.
            let key = key_of(n % 1500);
            let until = 1 + n % 97;
            table.set(table.look(&key), key, until);
            model.insert(key, until);
            if n % 700 == 699 {
                table.retain(|until| until > 40);
                model.retain(|_, until| *until > 40);
            }
            assert_eq!(table.len(), model.len());
        }
        for n in 0..1600 {
            assert_eq!(table.get(&key_of(n)), model.get(&key_of(n)).copied(), "{n}");
        }
        let mut listed: Vec<(Key, u32)> = table.iter().map(|(k, u)| (*k, u)).collect();
        let mut expected: Vec<(Key, u32)> = model.into_iter().collect();
        listed.sort();
        expected.sort();
        assert_eq!(listed, expected);
    }

    #[test]
    fn a_sweep_in_place_keeps_every_survivor_findable() {
        // A small table, nearly half full, so that looks run through long
        // clusters that wrap around its end; every other entry swept.
        let mut table = Table::with_room(30);
        let keys: Vec<Key> = (0..31).map(key_of).collect();
        for (n, key) in keys.iter().enumerate() {
            table.set(table.look(key), *key, 1 + n as u32);
        }
        let slots = table.slots().len();
        table.retain(|until| until % 2 == 0);
        assert_eq!((table.len(), table.slots().len()), (15, slots));
        for (n, key) in keys.iter().enumerate() {
            let expected = (n % 2 == 1).then_some(1 + n as u32);
            assert_eq!(table.get(key), expected, "key {n}");
        }
    }

    #[test]
    fn room_asked_for_is_room_without_growing() {
        let mut table = Table::with_room(1000);
        let slots = table.slots().len();
        for n in 0..1000 {
            table.set(table.look(&key_of(n)), key_of(n), 5);
        }
        assert_eq!((table.slots().len(), table.len()), (slots, 1000));
        assert!(slots >= 2000 && slots.is_power_of_two());
    }

    #[test]
    fn two_tables_place_the_same_key_apart() {
        // The secret differs per table: what collides in one does not in
        // another, whatever keys a planted store holds.
        let (a, b) = (Table::with_room(1 << 16), Table::with_room(1 << 16));
        let same = (0..64u32)
            .filter(|&n| {
                let key = key_of(n);
                a.start(&key) & 0xffff == b.start(&key) & 0xffff
            })
            .count();
        assert!(same < 8, "{same} of 64 keys start at the same slot");
    }
}
