//! Model-based property tests of the replay memory (docs/protocol.md §5):
//! random interleavings of tokens accepted and replayed, time going
//! forward, bursts of logins big enough to make the shared store compact,
//! and more helper processes opening the same store, checked against a
//! plain `HashMap` of what was accepted and until when. At every step: a
//! token remembered is refused as a replay, a fresh token is accepted while
//! fewer than `replay_cache_size` tokens are remembered, and refused as
//! "full" only when that many are; the store's file says the same to a
//! reader that opens it afresh.
//!
//! The model found that a helper sharing a store took a token back in
//! without checking the bound when an expired entry of that very token was
//! still in its memory; `the_shared_store_never_holds_more_live_tokens_than_its_bound`
//! pins the fix.

use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use xmpp_token_auth::core::replay::{self, ReplayCache, ReplayError, ReplayMemory, TokenId};
use xmpp_token_auth::replay_store::{SharedStore, StoreSnapshot};

/// Tokens that come back: two users, a few nonces each.
const USERS: [&str; 2] = ["alice", "bob"];
const NONCES: [&str; 5] = ["1", "2", "3", "4", "5"];
const START: u64 = 1_764_300_000;

#[derive(Debug, Clone)]
enum Op {
    /// Token `token` of the pool, remembered for `lifetime` seconds if
    /// accepted; a replay when it is still remembered.
    Record {
        token: usize,
        lifetime: u64,
        process: prop::sample::Index,
    },
    /// The clock moves forward.
    Advance(u64),
    /// `count` fresh tokens, one every `step` seconds, each remembered for
    /// `lifetime`: enough of them fill the memory, or make the store's file
    /// long enough to be compacted.
    Burst {
        count: usize,
        lifetime: u64,
        step: u64,
        process: prop::sample::Index,
    },
    /// Another helper process opens the store (the shared store only).
    Open,
    /// A helper process goes away (the shared store only; one stays).
    Close(prop::sample::Index),
}

fn op() -> impl Strategy<Value = Op> {
    let burst = prop_oneof![
        4 => 1usize..40,
        // Past the 4096 records below which the store is never compacted.
        1 => 4100usize..4400,
    ];
    prop_oneof![
        12 => (0..USERS.len() * NONCES.len(), 1u64..=300, any::<prop::sample::Index>())
            .prop_map(|(token, lifetime, process)| Op::Record { token, lifetime, process }),
        4 => prop_oneof![0u64..=5, 0u64..=400].prop_map(Op::Advance),
        1 => (burst, 1u64..=3, 0u64..=1, any::<prop::sample::Index>()).prop_map(
            |(count, lifetime, step, process)| Op::Burst { count, lifetime, step, process }
        ),
        2 => Just(Op::Open),
        1 => any::<prop::sample::Index>().prop_map(Op::Close),
    ]
}

fn capacity() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 1usize..=12, 1 => 1000usize..=10_000]
}

/// What was accepted and until when; tokens forgotten as time passes.
struct Model {
    now: u64,
    capacity: usize,
    /// (user, nonce) → remembered until; only live entries are kept.
    live: HashMap<(String, String), u64>,
    /// Every token ever accepted, live or not.
    accepted: HashSet<(String, String)>,
}

impl Model {
    fn advance(&mut self, by: u64) {
        self.now += by;
        let now = self.now;
        self.live.retain(|_, until| now < *until);
    }

    /// What recording `(user, nonce)` must give.
    fn expect(&self, user: &str, nonce: &str) -> Expected {
        let key = (user.to_string(), nonce.to_string());
        if self.live.contains_key(&key) {
            Expected::Replayed
        } else if self.live.len() < self.capacity {
            Expected::Accepted
        } else {
            Expected::Full
        }
    }

    /// Takes in what the memory answered (checked against `expected`).
    fn answered(&mut self, user: &str, nonce: &str, until: u64, got: &Expected) {
        if *got == Expected::Accepted {
            let key = (user.to_string(), nonce.to_string());
            self.live.insert(key.clone(), until);
            self.accepted.insert(key);
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Expected {
    Accepted,
    Replayed,
    Full,
}

impl Expected {
    fn allows(&self, got: &Expected) -> bool {
        self == got
    }
}

fn outcome(result: Result<(), ReplayError>) -> Result<Expected, TestCaseError> {
    match result {
        Ok(()) => Ok(Expected::Accepted),
        Err(ReplayError::Replayed) => Ok(Expected::Replayed),
        Err(ReplayError::Full(_)) => Ok(Expected::Full),
        Err(other) => Err(TestCaseError::fail(format!("the memory failed: {other}"))),
    }
}

fn id<'a>(user: &'a str, nonce: &'a str) -> TokenId<'a> {
    TokenId {
        user,
        server: "example.org",
        otp: "12345678",
        nonce,
    }
}

fn pool(token: usize) -> (&'static str, &'static str) {
    (USERS[token / NONCES.len()], NONCES[token % NONCES.len()])
}

/// Runs `ops` against memories made by `open` (a new one for every
/// [`Op::Open`] when `shared`), checking each answer against the model,
/// and after each step `check` (which sees the model).
fn run<M: ReplayMemory>(
    ops: &[Op],
    capacity: usize,
    shared: bool,
    mut open: impl FnMut(u64) -> M,
    mut check: impl FnMut(&Model) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let mut model = Model {
        now: START,
        capacity,
        live: HashMap::new(),
        accepted: HashSet::new(),
    };
    let mut processes = vec![open(model.now)];
    let mut fresh = 0u64;
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Record {
                token,
                lifetime,
                process,
            } => {
                let (user, nonce) = pool(*token);
                let until = model.now + lifetime;
                let expected = model.expect(user, nonce);
                let which = process.index(processes.len());
                let memory = &mut processes[which];
                let got = outcome(memory.record(replay::key(&id(user, nonce)), model.now, until))?;
                prop_assert!(
                    expected.allows(&got),
                    "step {} ({:?}) at {}: {:?}, expected {:?}",
                    step,
                    op,
                    model.now,
                    got,
                    expected
                );
                model.answered(user, nonce, until, &got);
            }
            Op::Advance(by) => model.advance(*by),
            Op::Burst {
                count,
                lifetime,
                step: every,
                process,
            } => {
                let which = process.index(processes.len());
                let memory = &mut processes[which];
                for _ in 0..*count {
                    fresh += 1;
                    let nonce = format!("burst-{fresh}");
                    let until = model.now + lifetime;
                    let expected = model.expect("burst", &nonce);
                    let got = outcome(memory.record(
                        replay::key(&id("burst", &nonce)),
                        model.now,
                        until,
                    ))?;
                    prop_assert!(
                        expected.allows(&got),
                        "step {} ({:?}), {}: {:?}, expected {:?}",
                        step,
                        op,
                        nonce,
                        got,
                        expected
                    );
                    model.answered("burst", &nonce, until, &got);
                    model.advance(*every);
                }
            }
            Op::Open if shared => processes.push(open(model.now)),
            Op::Close(which) if shared && processes.len() > 1 => {
                processes.remove(which.index(processes.len()));
            }
            Op::Open | Op::Close(_) => {}
        }
        check(&model)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_cache_never_accepts_a_replay_nor_refuses_below_its_bound(
        ops in prop::collection::vec(op(), 1..60),
        capacity in capacity(),
    ) {
        run(&ops, capacity, false, |_| ReplayCache::new(capacity), |_| Ok(()))?;
    }
}

proptest! {
    // Each case makes files and may write thousands of records: fewer cases.
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_shared_store_never_accepts_a_replay_nor_refuses_below_its_bound(
        ops in prop::collection::vec(op(), 1..40),
        capacity in capacity(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay");
        let open = |now| SharedStore::open(&path, capacity, now).expect("the store opens");
        // A reader that opens the file afresh knows every remembered pool
        // token, and no other.
        let check = |model: &Model| {
            let snapshot = StoreSnapshot::read(&path, capacity)
                .map_err(|e| TestCaseError::fail(format!("the store reads: {e}")))?;
            for token in 0..USERS.len() * NONCES.len() {
                let (user, nonce) = pool(token);
                let remembered = model.live.contains_key(&(user.to_string(), nonce.to_string()));
                prop_assert_eq!(
                    snapshot.was_used(&id(user, nonce), model.now),
                    remembered,
                    "{} {} at {}", user, nonce, model.now
                );
            }
            prop_assert_eq!(snapshot.live_records(model.now), model.live.len());
            Ok(())
        };
        run(&ops, capacity, true, open, check)?;
        // Compaction leaves the store and its lock file, nothing else.
        let names = std::fs::read_dir(dir.path()).unwrap().count();
        prop_assert_eq!(names, 2);
    }
}

/// Found by the model test above: three live tokens in a store whose bound
/// was two.
#[test]
fn the_shared_store_never_holds_more_live_tokens_than_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("replay");
    let mut first = SharedStore::open(&path, 2, 100).unwrap();
    let mut second = SharedStore::open(&path, 2, 100).unwrap();
    second
        .record(replay::key(&id("alice", "1")), 100, 101)
        .unwrap();
    second
        .record(replay::key(&id("alice", "2")), 100, 182)
        .unwrap();
    // Both expired by 211: the first helper sweeps them from its memory.
    first
        .record(replay::key(&id("alice", "3")), 211, 287)
        .unwrap();
    // The second still holds them, expired, and takes both back in.
    second
        .record(replay::key(&id("alice", "1")), 211, 339)
        .unwrap();
    let third = second.record(replay::key(&id("alice", "2")), 211, 267);
    let live = StoreSnapshot::read(&path, 2).unwrap().live_records(211);
    assert!(
        matches!(third, Err(ReplayError::Full(_))) && live <= 2,
        "{third:?}: {live} live tokens in a store of replay_cache_size 2"
    );
}
