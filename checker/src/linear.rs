//! The linearizability search (Wing & Gong, with Lowe's cache, as in
//! Porcupine's `checker.go`).
//!
//! Each partition's calls become a doubly linked list of call and return
//! entries in real-time order. The search walks the list from the head: a
//! call entry is tried (the model steps from the current state); if the new
//! (set of linearized calls, state) pair was never seen, the call is *lifted*
//! out of the list (its call and return entries are unlinked) and the walk
//! restarts from the head. Reaching a return entry means the call it closes
//! had to be linearized by now: backtrack (pop, *unlift*, try the next call).
//!
//! Unknown outcomes: a call with no (or an `info`) completion returns at
//! +infinity, so it never forces a backtrack; it may be placed anywhere
//! after its invocation, or left out. The search therefore succeeds as soon
//! as every call with a known outcome is linearized. Reads with unknown
//! outcome are omitted entirely (they have no effect).
//!
//! The verdict never depends on time or thread scheduling, except that a
//! time or memory bound may turn it into [`Verdict::Unknown`].

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::formats::ParseError;
use crate::history::{Call, History, Outcome};
use crate::model::{KvModel, Model, ModelKind, MultiRegisterModel, MutexModel, RegisterModel};

/// Search options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Give up with [`Verdict::Unknown`] after this long (per check).
    pub timeout: Option<Duration>,
    /// Worker threads for independent partitions. `1` runs everything on
    /// the calling thread and spawns no thread (required under madsim);
    /// `0` means one per available core.
    pub threads: usize,
    /// Give up with [`Verdict::Unknown`] when a partition's cache of
    /// visited (linearized set, state) pairs reaches this many entries (or
    /// about 1 GiB, whichever comes first).
    pub max_cache_entries: usize,
    /// Initial value of the register (of every key, for `kv`; for
    /// `multi-register`, an object gives each register's).
    pub initial: Value,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: None,
            threads: 1,
            max_cache_entries: 10_000_000,
            initial: Value::Null,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    Linearizable,
    NotLinearizable,
    /// The time or memory bound was hit (or the input was unusable).
    Unknown,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "not-linearizable",
            Verdict::Unknown => "unknown",
        }
    }
}

/// The outcome of a check. Operations are named by the `index` of their
/// invocation event.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    pub verdict: Verdict,
    /// Why the history is not linearizable, in words.
    pub explanation: Option<String>,
    /// For a linearizable history: a valid total order of the operations
    /// that took effect (unknown operations left out are not listed).
    pub linearization: Option<Vec<usize>>,
    /// Operations that cannot be placed after the longest linearizable
    /// prefix.
    pub failing: Vec<usize>,
    /// The longest linearizable prefix of the failing partition, in order.
    pub prefix: Vec<usize>,
    /// The key of the failing partition (kv model).
    pub failing_key: Option<String>,
    /// Why the verdict is unknown.
    pub unknown_reason: Option<String>,
    /// Number of independent partitions checked.
    pub partitions: usize,
}

impl CheckResult {
    fn unknown(reason: String, partitions: usize) -> CheckResult {
        CheckResult {
            verdict: Verdict::Unknown,
            explanation: None,
            linearization: None,
            failing: vec![],
            prefix: vec![],
            failing_key: None,
            unknown_reason: Some(reason),
            partitions,
        }
    }
}

/// Checks `history` against a built-in model. Unusable input (a call the
/// model does not understand, a completion without invocation) gives
/// [`Verdict::Unknown`] with the reason; use [`try_check`] to tell it apart.
pub fn check(history: &History, model: ModelKind, opts: &Options) -> CheckResult {
    match try_check(history, model, opts) {
        Ok(r) => r,
        Err(e) => CheckResult::unknown(format!("bad input: {e}"), 0),
    }
}

/// Like [`check`], but unusable input is an error.
pub fn try_check(
    history: &History,
    model: ModelKind,
    opts: &Options,
) -> Result<CheckResult, ParseError> {
    let init = opts.initial.clone();
    let sem = history.semantics;
    match model {
        ModelKind::Register => check_model(
            history,
            RegisterModel::new(init, false).with_semantics(sem),
            opts,
        ),
        ModelKind::CasRegister => check_model(
            history,
            RegisterModel::new(init, true).with_semantics(sem),
            opts,
        ),
        ModelKind::Kv => check_model(history, KvModel::new(init).with_semantics(sem), opts),
        ModelKind::Mutex => check_model(history, MutexModel, opts),
        ModelKind::MultiRegister => check_model(
            history,
            MultiRegisterModel::new(init).with_semantics(sem),
            opts,
        ),
    }
}

/// Step budget of the first round.
const FIRST_BUDGET: u64 = 1 << 12;

/// One independent part of the history, prepared for the search.
struct Part<M: Model> {
    key: Option<String>,
    model: M,
    /// Global call index (into `History::calls()`) of each local call.
    calls: Vec<usize>,
    ops: Vec<M::Op>,
    call_rank: Vec<u64>,
    /// `u64::MAX` for an unknown outcome.
    ret_rank: Vec<u64>,
}

enum PartOutcome {
    /// Local call indices in linearization order.
    Linearizable(Vec<u32>),
    /// The longest linearizable prefix found.
    NotLinearizable(Vec<u32>),
    Unknown(String),
    /// Stopped because a lower-numbered partition already failed.
    Skipped,
}

/// Checks `history` against any [`Model`].
pub fn check_model<M: Model>(
    history: &History,
    model: M,
    opts: &Options,
) -> Result<CheckResult, ParseError> {
    let calls = history.calls()?;
    let ranks = history.event_ranks();

    // Group by partition, in key order (deterministic).
    let mut groups: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
    for (i, c) in calls.iter().enumerate() {
        groups.entry(model.partition(c)).or_default().push(i);
    }
    let mut parts: Vec<Part<M>> = Vec::new();
    for (key, members) in groups {
        let mut m = model.clone();
        let mut part = Part {
            key,
            model: m.clone(),
            calls: vec![],
            ops: vec![],
            call_rank: vec![],
            ret_rank: vec![],
        };
        for ci in members {
            let c = &calls[ci];
            let op = m.prepare(c).map_err(|msg| ParseError {
                line: c.invoke_pos + 1,
                message: msg,
            })?;
            let Some(op) = op else { continue };
            part.calls.push(ci);
            part.ops.push(op);
            part.call_rank.push(ranks[c.invoke_pos]);
            part.ret_rank.push(match (&c.outcome, c.complete_pos) {
                (Outcome::Unknown, _) | (_, None) => u64::MAX,
                (_, Some(p)) => ranks[p],
            });
        }
        m.prepared(&mut part.ops);
        part.model = m;
        parts.push(part);
    }
    let nparts = parts.len();

    let deadline = opts.timeout.and_then(|t| Instant::now().checked_add(t));
    let first_fail = AtomicUsize::new(usize::MAX);
    let limits = Limits {
        deadline,
        max_cache: opts.max_cache_entries.max(1),
        first_fail: &first_fail,
    };
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let searches: Vec<Mutex<Search<M>>> = parts
        .into_iter()
        .map(|p| Mutex::new(Search::new(p)))
        .collect();
    let mut outcomes: Vec<Option<PartOutcome>> = (0..nparts).map(|_| None).collect();

    // Rounds with growing step budgets: a partition that is cheap to refute
    // is found before an expensive one is searched to the end, and which
    // failure gets reported does not depend on thread timing. A partition
    // out of budget resumes where it stopped in the next round.
    for budget in [FIRST_BUDGET, 1 << 16, 1 << 20, 1 << 24, u64::MAX] {
        let todo: Vec<usize> = (0..nparts).filter(|&i| outcomes[i].is_none()).collect();
        if todo.is_empty() {
            break;
        }
        let results: Vec<Mutex<Option<PartOutcome>>> =
            todo.iter().map(|_| Mutex::new(None)).collect();
        let run = |k: usize| {
            let pi = todo[k];
            let mut search = searches[pi].lock().unwrap_or_else(|e| e.into_inner());
            let out = search.run(budget, pi, &limits);
            *results[k].lock().unwrap_or_else(|e| e.into_inner()) = out;
        };
        // The first round is cheap (a few thousand steps per partition):
        // threads would cost more than they save.
        if threads <= 1 || todo.len() <= 1 || budget <= FIRST_BUDGET {
            // No thread at all: safe inside a deterministic simulator.
            for k in 0..todo.len() {
                run(k);
                if first_fail.load(Ordering::Relaxed) != usize::MAX {
                    break;
                }
            }
        } else {
            let next = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..threads.min(todo.len()) {
                    s.spawn(|| loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= todo.len() {
                            break;
                        }
                        run(k);
                    });
                }
            });
        }
        for (k, r) in results.into_iter().enumerate() {
            outcomes[todo[k]] = r.into_inner().unwrap_or_else(|e| e.into_inner());
        }
        if std::env::var_os("CHECKER_DEBUG").is_some() {
            for &pi in &todo {
                let s = searches[pi].lock().unwrap();
                eprintln!(
                    "budget {budget}: part {pi} key {:?}: {} ops, {} steps, {} cached, done={} {:?}",
                    s.part.key, s.part.ops.len(), s.steps, s.cache.len(), outcomes[pi].is_some(), s.part.model.stats()
                );
            }
        }
        if first_fail.load(Ordering::Relaxed) != usize::MAX {
            break;
        }
    }
    let parts: Vec<Part<M>> = searches
        .into_iter()
        .map(|s| s.into_inner().unwrap_or_else(|e| e.into_inner()).part)
        .collect();

    // A definite failure wins over "unknown": report the lowest failing part.
    let outcomes: Vec<PartOutcome> = outcomes
        .into_iter()
        .map(|o| o.unwrap_or(PartOutcome::Skipped))
        .collect();
    if let Some(pi) = outcomes
        .iter()
        .position(|o| matches!(o, PartOutcome::NotLinearizable(_)))
    {
        let PartOutcome::NotLinearizable(best) = &outcomes[pi] else {
            unreachable!()
        };
        return Ok(explain_failure(&parts[pi], best, &calls, nparts, &model));
    }
    if let Some(PartOutcome::Unknown(reason)) = outcomes
        .iter()
        .find(|o| matches!(o, PartOutcome::Unknown(_)))
    {
        return Ok(CheckResult::unknown(reason.clone(), nparts));
    }

    // Merge the per-partition orders into one global order. Give each call
    // the earliest point consistent with its partition's order
    // (point = max(invocation, previous point)); since the order is valid,
    // every point precedes the call's return, so sorting by point respects
    // real time across partitions too.
    let mut points: Vec<(u64, usize, usize, usize)> = Vec::new();
    for (pi, o) in outcomes.iter().enumerate() {
        let PartOutcome::Linearizable(order) = o else {
            continue;
        };
        let part = &parts[pi];
        let mut p = 0u64;
        for (k, &lc) in order.iter().enumerate() {
            p = p.max(part.call_rank[lc as usize]);
            points.push((p, pi, k, calls[part.calls[lc as usize]].index));
        }
    }
    points.sort_unstable();
    Ok(CheckResult {
        verdict: Verdict::Linearizable,
        explanation: None,
        linearization: Some(points.into_iter().map(|t| t.3).collect()),
        failing: vec![],
        prefix: vec![],
        failing_key: None,
        unknown_reason: None,
        partitions: nparts,
    })
}

fn explain_failure<M: Model>(
    part: &Part<M>,
    best: &[u32],
    calls: &[Call],
    nparts: usize,
    proto: &M,
) -> CheckResult {
    // Re-prepare the partition's calls on a fresh model without the
    // search's simplifications (`Model::prepared`), so that states are
    // described as the values they are. The same prefix is valid there.
    let mut model = proto.clone();
    let ops: Vec<M::Op> = part
        .calls
        .iter()
        .map(|&ci| {
            model
                .prepare(&calls[ci])
                .ok()
                .flatten()
                .expect("prepared before")
        })
        .collect();
    let n = ops.len();
    let mut state = model.init();
    let mut done = vec![false; n];
    for &lc in best {
        state = model
            .step(&state, &ops[lc as usize])
            .expect("the prefix was linearizable");
        done[lc as usize] = true;
    }
    let min_ret = (0..n)
        .filter(|&i| !done[i])
        .map(|i| part.ret_rank[i])
        .min()
        .unwrap_or(u64::MAX);
    let mut failing = Vec::new();
    let mut lines = Vec::new();
    for i in 0..n {
        if done[i] || part.call_rank[i] >= min_ret || part.ret_rank[i] == u64::MAX {
            continue;
        }
        let c = &calls[part.calls[i]];
        failing.push(c.index);
        let why = match model.clone().step(&state, &ops[i]) {
            None => format!("impossible in state {}", model.describe_state(&state)),
            Some(_) => "possible here, but every continuation fails".to_string(),
        };
        lines.push(format!("  {}: {}", c.describe(), why));
    }
    let prefix: Vec<usize> = best
        .iter()
        .map(|&lc| calls[part.calls[lc as usize]].index)
        .collect();
    let key = match &part.key {
        Some(k) => format!(" for key {k:?}"),
        None => String::new(),
    };
    let mut text = format!(
        "not linearizable{key}: the longest linearizable prefix has {} of {} operations and ends in state {}",
        best.len(),
        n,
        model.describe_state(&state)
    );
    let shown = best.len().saturating_sub(8);
    if !best.is_empty() {
        text.push_str(if shown > 0 {
            "; its last operations:\n"
        } else {
            ":\n"
        });
        for &lc in &best[shown..] {
            text.push_str(&format!(
                "  {}\n",
                calls[part.calls[lc as usize]].describe()
            ));
        }
    } else {
        text.push('\n');
    }
    text.push_str("none of these operations can take effect next:\n");
    text.push_str(&lines.join("\n"));
    CheckResult {
        verdict: Verdict::NotLinearizable,
        explanation: Some(text),
        linearization: None,
        failing,
        prefix,
        failing_key: part.key.clone(),
        unknown_reason: None,
        partitions: nparts,
    }
}

struct Limits<'a> {
    deadline: Option<Instant>,
    max_cache: usize,
    first_fail: &'a AtomicUsize,
}

/// A hasher that passes a precomputed 64-bit hash through.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ b as u64).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

use crate::model::FxHasher;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const NONE: u32 = u32::MAX;

/// The set of linearized calls: a bitset with an incremental Zobrist hash,
/// stored compactly in the cache.
///
/// Calls with a known outcome and calls with an unknown outcome get bits in
/// two separate regions, each in invocation order. Within a region, the
/// leading words that are all ones and the trailing words that are all
/// zeros are not stored: a cache entry keeps only the words in between,
/// around the search's frontier. (Known-outcome calls must be linearized by
/// their return, so their region has few holes; an unknown call that is
/// never placed would otherwise pin a long run of words forever.)
struct LinSet {
    bits: Vec<u64>,
    /// Per call: its bit position.
    pos: Vec<u32>,
    zobrist: Vec<u64>,
    hash: u64,
    /// The hash of the known-outcome calls only: the cache key, so that
    /// sets that differ only in unknown-outcome calls meet in one chain.
    dhash: u64,
    /// Per region: first word, end word, first word not all ones, end of
    /// the last nonzero word.
    lo: [usize; 2],
    end: [usize; 2],
    full: [usize; 2],
    hi: [usize; 2],
    /// Trim words at all (not worth it for a few words: then `full` and
    /// `hi` stay at the region bounds).
    compact: bool,
}

impl LinSet {
    fn new(definite: &[bool]) -> LinSet {
        let nd = definite.iter().filter(|&&d| d).count();
        let nu = definite.len() - nd;
        let dw = nd.div_ceil(64);
        let uw = nu.div_ceil(64);
        let (mut kd, mut ku) = (0u32, 0u32);
        let pos = definite
            .iter()
            .map(|&d| {
                if d {
                    kd += 1;
                    kd - 1
                } else {
                    ku += 1;
                    (dw * 64) as u32 + ku - 1
                }
            })
            .collect();
        let compact = dw + uw > 4;
        LinSet {
            compact,
            bits: vec![0; dw + uw],
            pos,
            zobrist: (0..definite.len() as u64)
                .map(|i| splitmix64(i ^ 0x5eed))
                .collect(),
            hash: 0,
            dhash: 0,
            lo: [0, dw],
            end: [dw, dw + uw],
            full: [0, dw],
            hi: if compact { [0, dw] } else { [dw, dw + uw] },
        }
    }

    #[inline(always)]
    fn contains(&self, c: usize) -> bool {
        let p = self.pos[c] as usize;
        self.bits[p >> 6] & (1 << (p & 63)) != 0
    }

    #[inline(always)]
    fn insert(&mut self, c: usize) {
        let p = self.pos[c] as usize;
        let w = p >> 6;
        self.bits[w] |= 1 << (p & 63);
        self.hash ^= self.zobrist[c];
        let r = (w >= self.end[0]) as usize;
        if r == 0 {
            self.dhash ^= self.zobrist[c];
        }
        if !self.compact {
            return;
        }
        if w >= self.hi[r] {
            self.hi[r] = w + 1;
        }
        while self.full[r] < self.end[r] && self.bits[self.full[r]] == u64::MAX {
            self.full[r] += 1;
        }
    }

    #[inline(always)]
    fn remove(&mut self, c: usize) {
        let p = self.pos[c] as usize;
        let w = p >> 6;
        self.bits[w] &= !(1 << (p & 63));
        self.hash ^= self.zobrist[c];
        let r = (w >= self.end[0]) as usize;
        if r == 0 {
            self.dhash ^= self.zobrist[c];
        }
        if !self.compact {
            return;
        }
        if w < self.full[r] {
            self.full[r] = w;
        }
        while self.hi[r] > self.lo[r] && self.bits[self.hi[r] - 1] == 0 {
            self.hi[r] -= 1;
        }
    }

    /// What identifies the set besides the stored words.
    #[inline]
    fn shape(&self) -> [u32; 4] {
        [
            self.full[0] as u32,
            self.hi[0] as u32,
            self.full[1] as u32,
            self.hi[1] as u32,
        ]
    }

    #[inline]
    fn words(&self) -> (&[u64], &[u64]) {
        (
            &self.bits[self.full[0]..self.hi[0].max(self.full[0])],
            &self.bits[self.full[1]..self.hi[1].max(self.full[1])],
        )
    }
}

/// Whatever `max_cache_entries` says, one partition's cache stays under
/// about this many bytes.
const MAX_CACHE_BYTES: usize = 1 << 30;

/// Visited (linearized set, state) pairs. The sets' stored words live in
/// one flat arena. Every entry is in two chains: one of the entries with
/// the same hash of (set, state), to find an equal pair, and one of the
/// entries with the same hash of (known-outcome calls, state), to find a
/// pair that *subsumes* it (see [`Cache::insert`]).
///
/// For a small set (not [`LinSet::compact`]) every entry stores all words at
/// `i * words`; otherwise each entry has its own offset and shape.
struct Cache<S> {
    arena: Vec<u64>,
    /// Per entry: next entry in its equality chain and in its subsumption
    /// chain, and the state.
    entries: Vec<(u32, u32, S)>,
    /// Per entry, compact sets only: arena offset and set shape.
    meta: Vec<(usize, [u32; 4])>,
    heads: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
    sub_heads: HashMap<u64, u32, BuildHasherDefault<IdHasher>>,
}

/// How many of the latest entries with the same state and known-outcome
/// calls an insert looks at for one that subsumes it. Looking at fewer only
/// prunes less (never wrongly); looking at all makes long chains slow.
const SUBSUME_SCAN: usize = 8;

#[inline]
fn same_words(a: &[u64], b: &[u64]) -> bool {
    // Short slices: a plain loop beats a call to memcmp.
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

#[inline]
fn subset_words(stored: &[u64], cur: &[u64]) -> bool {
    stored.iter().zip(cur).all(|(st, c)| st & !c == 0)
}

impl<S: Eq + Clone> Cache<S> {
    fn new() -> Self {
        Cache {
            arena: Vec::new(),
            entries: Vec::new(),
            meta: Vec::new(),
            heads: HashMap::default(),
            sub_heads: HashMap::default(),
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Approximate memory use.
    fn bytes(&self) -> usize {
        self.arena.len() * 8
            + self.len() * (std::mem::size_of::<(u32, u32, S)>() + 28)
            + self.meta.len() * std::mem::size_of::<(usize, [u32; 4])>()
    }

    /// Entry `i` has state `s` and the same known-outcome calls as `set`;
    /// with `exact`, also the same unknown-outcome calls, else a subset.
    #[inline]
    fn matches(&self, i: usize, set: &LinSet, s: &S, exact: bool) -> bool {
        if self.entries[i].2 != *s {
            return false;
        }
        if !set.compact {
            let w = set.bits.len();
            let d = set.end[0];
            let stored = &self.arena[i * w..i * w + w];
            return same_words(&stored[..d], &set.bits[..d])
                && if exact {
                    same_words(&stored[d..], &set.bits[d..])
                } else {
                    subset_words(&stored[d..], &set.bits[d..])
                };
        }
        let (o, shape) = self.meta[i];
        let now = set.shape();
        if exact && shape != now || shape[..2] != now[..2] {
            return false;
        }
        let (a, b) = set.words();
        let mid = o + a.len();
        if !same_words(&self.arena[o..mid], a) {
            return false;
        }
        if exact {
            return same_words(&self.arena[mid..mid + b.len()], b);
        }
        // Unknown region: the stored words below `full` are all ones, so
        // this set's must be too; from `hi` on they are zero.
        let (sfull, shi) = (shape[2] as usize, (shape[3].max(shape[2])) as usize);
        set.full[1] >= sfull
            && subset_words(&self.arena[mid..mid + (shi - sfull)], &set.bits[sfull..shi])
    }

    /// Inserts; false if the pair is already there, or is *subsumed*: an
    /// entry with the same state and the same known-outcome calls, whose
    /// unknown-outcome calls are a subset of this set's, is there. From
    /// such an entry every continuation of this pair is possible too (the
    /// unknown calls linearized here and not there are still free there,
    /// and they never constrain the order, returning at +infinity), so
    /// this pair cannot succeed where that one failed or is being tried.
    ///
    /// `h` hashes the set and the state, `hk` the known-outcome calls of
    /// the set and the state.
    #[inline]
    fn insert(&mut self, h: u64, hk: u64, set: &LinSet, s: &S) -> bool {
        let new = self.entries.len() as u32;
        let mut i = self.heads.get(&h).copied().unwrap_or(NONE);
        while i != NONE {
            if self.matches(i as usize, set, s, true) {
                return false;
            }
            i = self.entries[i as usize].0;
        }
        let mut i = self.sub_heads.get(&hk).copied().unwrap_or(NONE);
        let mut looked = 0;
        while i != NONE && looked < SUBSUME_SCAN {
            if self.matches(i as usize, set, s, false) {
                return false;
            }
            i = self.entries[i as usize].1;
            looked += 1;
        }
        let chain = self.heads.insert(h, new).unwrap_or(NONE);
        let sub_chain = self.sub_heads.insert(hk, new).unwrap_or(NONE);
        self.entries.push((chain, sub_chain, s.clone()));
        if set.compact {
            let (a, b) = set.words();
            self.meta.push((self.arena.len(), set.shape()));
            self.arena.extend_from_slice(a);
            self.arena.extend_from_slice(b);
        } else {
            self.arena.extend_from_slice(&set.bits);
        }
        true
    }
}

/// The search over one partition, resumable: [`Search::run`] stops after a
/// step budget and continues from there on the next call.
struct Search<M: Model> {
    part: Part<M>,
    n_definite: usize,
    next: Vec<u32>,
    prev: Vec<u32>,
    /// For each node: its local call index.
    call_of: Vec<u32>,
    is_call: Vec<bool>,
    /// For each call: the node of its return entry.
    ret_node: Vec<u32>,
    definite: Vec<bool>,
    /// For an unknown-outcome call: the previous-invoked unknown call with
    /// an equal op, or `NONE`. Equal unknown calls are interchangeable, so
    /// the search only linearizes them in invocation order.
    twin_prev: Vec<u32>,
    /// The calls linearized so far.
    set: LinSet,
    cache: Cache<M::State>,
    state: Option<M::State>,
    stack: Vec<(u32, M::State)>,
    best: Vec<u32>,
    n_lin_definite: usize,
    entry: usize,
    steps: u64,
}

impl<M: Model> Search<M> {
    fn new(part: Part<M>) -> Self {
        let n = part.ops.len();
        let n_definite = part.ret_rank.iter().filter(|&&r| r != u64::MAX).count();
        // Nodes: 0 = head, 1..=2n = entries in real-time order, 2n+1 = tail.
        // Unknown returns all sit at +inf, after every call, ordered by call.
        let mut events: Vec<(u64, bool, u32)> = Vec::with_capacity(2 * n);
        for i in 0..n {
            events.push((part.call_rank[i], false, i as u32));
            events.push((part.ret_rank[i], true, i as u32));
        }
        events.sort_unstable();
        let tail = 2 * n + 1;
        let mut next: Vec<u32> = (1..=(tail as u32 + 1)).collect();
        let mut prev: Vec<u32> = (0..=tail as u32).map(|i| i.wrapping_sub(1)).collect();
        next[tail] = NONE;
        prev[0] = NONE;
        let mut call_of = vec![NONE; tail + 1];
        let mut is_call = vec![false; tail + 1];
        let mut ret_node = vec![0u32; n];
        for (k, &(_, is_ret, i)) in events.iter().enumerate() {
            let node = k + 1;
            call_of[node] = i;
            is_call[node] = !is_ret;
            if is_ret {
                ret_node[i as usize] = node as u32;
            }
        }
        let definite: Vec<bool> = part.ret_rank.iter().map(|&r| r != u64::MAX).collect();
        let mut twin_prev = vec![NONE; n];
        let mut unknown: Vec<usize> = (0..n).filter(|&i| !definite[i]).collect();
        unknown.sort_by_key(|&i| part.call_rank[i]);
        for (k, &i) in unknown.iter().enumerate() {
            if let Some(&j) = unknown[..k]
                .iter()
                .rev()
                .find(|&&j| part.ops[j] == part.ops[i])
            {
                twin_prev[i] = j as u32;
            }
        }
        let set = LinSet::new(&definite);
        Search {
            part,
            n_definite,
            entry: next[0] as usize,
            next,
            prev,
            call_of,
            is_call,
            ret_node,
            definite,
            twin_prev,
            set,
            cache: Cache::new(),
            state: None,
            stack: Vec::new(),
            best: Vec::new(),
            n_lin_definite: 0,
            steps: 0,
        }
    }

    /// Runs at most `budget` more steps; `None` if the budget ran out.
    fn run(&mut self, budget: u64, pi: usize, limits: &Limits) -> Option<PartOutcome> {
        if self.n_definite == 0 {
            return Some(PartOutcome::Linearizable(vec![]));
        }
        let Search {
            part,
            n_definite,
            next,
            prev,
            call_of,
            is_call,
            ret_node,
            definite,
            twin_prev,
            set,
            cache,
            state,
            stack,
            best,
            n_lin_definite,
            entry,
            steps,
        } = self;
        let model = &mut part.model;
        let ops = &part.ops;
        let mut st = match state.take() {
            Some(s) => s,
            None => model.init(),
        };
        let stop_at = steps.saturating_add(budget);
        let mut e = *entry;
        let out = loop {
            if *n_lin_definite == *n_definite {
                break Some(PartOutcome::Linearizable(
                    stack.iter().map(|(e, _)| call_of[*e as usize]).collect(),
                ));
            }
            *steps += 1;
            if *steps >= stop_at {
                break None;
            }
            if *steps & 0xfff == 0 {
                if limits.first_fail.load(Ordering::Relaxed) < pi {
                    break Some(PartOutcome::Skipped);
                }
                if let Some(d) = limits.deadline {
                    if Instant::now() >= d {
                        break Some(PartOutcome::Unknown(format!(
                            "time limit reached after {} search steps ({} cache entries); \
                             raise --timeout or check a shorter history",
                            steps,
                            cache.len()
                        )));
                    }
                }
            }
            if is_call[e] {
                let c = call_of[e] as usize;
                let t = twin_prev[c] as usize;
                if t != NONE as usize && !set.contains(t) {
                    // An equal unknown call invoked earlier is still
                    // pending: that one goes first.
                    e = next[e] as usize;
                } else if let Some(ns) = model.step(&st, &ops[c]) {
                    set.insert(c);
                    let mut hs = FxHasher::default();
                    ns.hash(&mut hs);
                    let hs = hs
                        .finish()
                        .rotate_left(32)
                        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
                    if cache.insert(set.hash ^ hs, set.dhash ^ hs, set, &ns) {
                        if cache.len() >= limits.max_cache
                            || (cache.len() & 0x3ff == 0 && cache.bytes() >= MAX_CACHE_BYTES)
                        {
                            break Some(PartOutcome::Unknown(format!(
                                "memory limit reached: {} cached (linearized set, state) pairs in one \
                                 partition (the limit is max_cache_entries / --max-cache, and about \
                                 1 GiB); raise it, or check a shorter history",
                                cache.len()
                            )));
                        }
                        let old = std::mem::replace(&mut st, ns);
                        stack.push((e as u32, old));
                        *n_lin_definite += definite[c] as usize;
                        // Lift: unlink the call and its return.
                        let r = ret_node[c] as usize;
                        let (p, nx) = (prev[e] as usize, next[e]);
                        next[p] = nx;
                        prev[nx as usize] = p as u32;
                        let (p, nx) = (prev[r] as usize, next[r]);
                        next[p] = nx;
                        if nx != NONE {
                            prev[nx as usize] = p as u32;
                        }
                        e = next[0] as usize;
                    } else {
                        set.remove(c);
                        e = next[e] as usize;
                    }
                } else {
                    e = next[e] as usize;
                }
            } else {
                // A return (or the tail): the call it closes should have
                // been linearized by now. Backtrack.
                if stack.len() > best.len() {
                    // A new deepest point: remember it as the longest
                    // linearizable prefix (taken here, when leaving it,
                    // rather than on every push).
                    best.clear();
                    best.extend(stack.iter().map(|(e, _)| call_of[*e as usize]));
                }
                let Some((top, s)) = stack.pop() else {
                    limits.first_fail.fetch_min(pi, Ordering::Relaxed);
                    break Some(PartOutcome::NotLinearizable(best.clone()));
                };
                let top = top as usize;
                st = s;
                let c = call_of[top] as usize;
                set.remove(c);
                *n_lin_definite -= definite[c] as usize;
                // Unlift: relink the return, then the call.
                let r = ret_node[c] as usize;
                next[prev[r] as usize] = r as u32;
                if next[r] != NONE {
                    prev[next[r] as usize] = r as u32;
                }
                next[prev[top] as usize] = top as u32;
                prev[next[top] as usize] = top as u32;
                e = next[top] as usize;
            }
        };
        *entry = e;
        *state = Some(st);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `full`/`hi` must always equal what a scan of the words gives, so
    /// that equal sets have equal shapes and stored words.
    #[test]
    fn linset_trimming_matches_a_full_scan() {
        let mut rng = 0x1234_5678_u64;
        let mut next = || {
            rng = splitmix64(rng);
            rng
        };
        let definite: Vec<bool> = (0..1000).map(|i| i % 7 != 3).collect();
        let mut set = LinSet::new(&definite);
        assert!(set.compact);
        let mut model = vec![false; 1000];
        for step in 0..200_000 {
            // Mostly fill from the front, like the search does.
            let c = if step % 3 == 0 {
                (next() % 1000) as usize
            } else {
                (next() % 200) as usize + (step / 300) % 800
            };
            if model[c] {
                set.remove(c);
            } else {
                set.insert(c);
            }
            model[c] = !model[c];
            for r in 0..2 {
                let mut full = set.lo[r];
                while full < set.end[r] && set.bits[full] == u64::MAX {
                    full += 1;
                }
                let mut hi = set.end[r];
                while hi > set.lo[r] && set.bits[hi - 1] == 0 {
                    hi -= 1;
                }
                assert_eq!(
                    (set.full[r], set.hi[r].max(set.full[r])),
                    (full, hi.max(full)),
                    "step {step}"
                );
            }
            assert_eq!(set.contains(c), model[c]);
        }
    }

    /// The same set reached in two different orders is one cache entry.
    #[test]
    fn cache_finds_equal_sets() {
        let definite = vec![true; 600];
        let mut a = LinSet::new(&definite);
        let mut b = LinSet::new(&definite);
        for c in 0..400 {
            a.insert(c);
        }
        for c in (0..400).rev() {
            b.insert(c);
        }
        b.insert(500);
        b.remove(500);
        assert_eq!(a.hash, b.hash);
        let mut cache: Cache<u32> = Cache::new();
        assert!(cache.insert(a.hash, a.dhash, &a, &7));
        assert!(!cache.insert(b.hash, b.dhash, &b, &7));
        assert!(cache.insert(b.hash, b.dhash, &b, &8));
        b.remove(0);
        assert!(cache.insert(b.hash, b.dhash, &b, &7));
    }
}
