//! Generated transaction histories, for the benchmark and the property
//! tests: a simulated concurrent execution that is strict-serializable by
//! construction, and ways to plant one anomaly in it.
//!
//! Processes invoke transactions, each transaction takes effect atomically
//! at one point between its invocation and its completion, then completes.
//! A few complete `info` (they took effect or not, at random) and a few
//! `fail` (they did not take effect). Keys are drawn from a small pool of
//! live keys; a key that has had `max_writes_per_key` writes is retired and
//! replaced by a fresh one, so lists stay short however long the history.
//! Values are unique. The result is built directly in compact form
//! ([`Txns`]), so ten million transactions fit in a few GB.

use super::txns::{Mop, MopKind, Names, Status, Txn, TxnModel, Txns, NONE};

/// A small deterministic generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p && p > 0.0
    }
}

/// The shape of a generated history.
#[derive(Clone, Debug)]
pub struct GenOptions {
    pub model: TxnModel,
    pub txns: usize,
    pub processes: usize,
    pub live_keys: usize,
    pub max_writes_per_key: usize,
    /// Micro-ops per transaction: 1 to this.
    pub max_mops: usize,
    /// Probability that a transaction completes `info` / `fail`.
    pub info: f64,
    pub fail: f64,
    pub seed: u64,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            model: TxnModel::ListAppend,
            txns: 1000,
            processes: 5,
            live_keys: 8,
            max_writes_per_key: 16,
            max_mops: 4,
            info: 0.01,
            fail: 0.01,
            seed: 0,
        }
    }
}

#[derive(Clone, Copy)]
enum Proc {
    Idle,
    Invoked(u32),
    Applied(u32),
}

/// Generates a strict-serializable history.
pub fn generate(o: &GenOptions) -> Txns {
    let mut rng = Rng::new(o.seed);
    let list = o.model == TxnModel::ListAppend;
    let mut t = Txns::empty(o.model);
    t.txns.reserve(o.txns);
    t.mops.reserve(o.txns * (o.max_mops + 1) / 2);
    t.events.reserve(o.txns * 2);
    let nproc = o.processes.max(1);
    let mut procs = vec![Proc::Idle; nproc];
    let mut live: Vec<u32> = (0..o.live_keys.max(1) as u32).collect();
    let mut next_key = live.len() as u32;
    let mut writes: Vec<u32> = vec![0; live.len()]; // per live slot
                                                    // Current state per key: the list (list-append) or the value.
    let mut lists: Vec<Vec<u32>> = vec![Vec::new(); live.len()];
    let mut regs: Vec<u32> = vec![NONE; live.len()];
    let mut next_value = 0u32;
    let mut created = 0usize;
    let mut busy = 0usize;
    // Slot of each mop's key at creation time, so that execution finds the
    // state even if the key was retired meanwhile: retired keys keep their
    // state in `retired`.
    let mut retired: crate::model::FxHashMap<u32, (Vec<u32>, u32)> = Default::default();
    let mut slot_of: crate::model::FxHashMap<u32, usize> =
        live.iter().enumerate().map(|(i, &k)| (k, i)).collect();
    while created < o.txns || busy > 0 {
        let p = rng.below(nproc);
        match procs[p] {
            Proc::Idle => {
                if created >= o.txns {
                    continue;
                }
                let x = t.txns.len() as u32;
                let start = t.mops.len() as u32;
                let n = 1 + rng.below(o.max_mops.max(1));
                for _ in 0..n {
                    let s = rng.below(live.len());
                    let key = live[s];
                    let m = if rng.chance(0.5) {
                        Mop {
                            kind: if list {
                                MopKind::ReadList
                            } else {
                                MopKind::ReadReg
                            },
                            key,
                            a: NONE,
                            b: 0,
                        }
                    } else {
                        let v = next_value;
                        next_value += 1;
                        writes[s] += 1;
                        if writes[s] as usize >= o.max_writes_per_key {
                            // Retire the key after this write.
                            live[s] = next_key;
                            slot_of.remove(&key);
                            retired.insert(key, (Vec::new(), NONE));
                            slot_of.insert(next_key, s);
                            next_key += 1;
                            writes[s] = 0;
                            let (l, r) = retired.get_mut(&key).expect("just inserted");
                            std::mem::swap(l, &mut lists[s]);
                            *r = std::mem::replace(&mut regs[s], NONE);
                        }
                        Mop {
                            kind: if list {
                                MopKind::Append
                            } else {
                                MopKind::Write
                            },
                            key,
                            a: v,
                            b: 0,
                        }
                    };
                    t.mops.push(m);
                }
                let at = t.events.len() as u64;
                t.txns.push(Txn {
                    index: at,
                    process: p as u32,
                    status: Status::Info,
                    mop_start: start,
                    mop_len: n as u32,
                    invoke_at: at,
                    complete_at: u64::MAX,
                });
                t.events.push((x as u64) << 1);
                procs[p] = Proc::Invoked(x);
                created += 1;
                busy += 1;
            }
            Proc::Invoked(x) => {
                let status = if rng.chance(o.fail) {
                    Status::Fail
                } else if rng.chance(o.info) {
                    Status::Info
                } else {
                    Status::Ok
                };
                let applied = match status {
                    Status::Ok => true,
                    Status::Fail => false,
                    Status::Info => rng.chance(0.5),
                };
                let tx = &mut t.txns[x as usize];
                tx.status = status;
                let r = tx.mop_start as usize..(tx.mop_start + tx.mop_len) as usize;
                if applied {
                    for i in r {
                        let m = t.mops[i];
                        let (l, reg) = match slot_of.get(&m.key) {
                            Some(&s) => (&mut lists[s], &mut regs[s]),
                            None => {
                                let e = retired.get_mut(&m.key).expect("retired key");
                                (&mut e.0, &mut e.1)
                            }
                        };
                        match m.kind {
                            MopKind::Append => l.push(m.a),
                            MopKind::Write => *reg = m.a,
                            MopKind::ReadList if status == Status::Ok => {
                                let s = t.elems.len() as u32;
                                t.elems.extend_from_slice(l);
                                t.mops[i].a = s;
                                t.mops[i].b = l.len() as u32;
                            }
                            MopKind::ReadReg if status == Status::Ok => {
                                t.mops[i].a = *reg;
                                t.mops[i].b = 1;
                            }
                            _ => {}
                        }
                    }
                }
                procs[p] = Proc::Applied(x);
            }
            Proc::Applied(x) => {
                let at = t.events.len() as u64;
                t.txns[x as usize].complete_at = at;
                t.events.push((x as u64) << 1 | 1);
                procs[p] = Proc::Idle;
                busy -= 1;
            }
        }
    }
    // Retired keys are never touched again once their last transaction
    // has run; dropping them early would save memory but is not needed.
    t.keys = Names::Numbers;
    t.values = Names::Numbers;
    t.processes = Names::Numbers;
    t
}

/// Anomalies that [`plant`] can put into a generated history, each by
/// altering one read (or, for an aborted read, one outcome).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plant {
    /// A read misses the latest write, which completed before the reader
    /// began: G-single-item-realtime.
    StaleRead,
    /// A read shows a write from a transaction that began after the reader
    /// completed: G1c-realtime.
    FutureRead,
    /// A transaction whose write was read is marked failed: G1a.
    AbortedRead,
    /// A read stops at a write its writer overwrote in the same
    /// transaction: G1b.
    IntermediateRead,
    /// A read shows a value nobody wrote: garbage-read.
    Garbage,
    /// A read shows two appends in the opposite order: incompatible-order.
    IncompatibleOrder,
    /// A read shows an element twice: duplicate-elements.
    DuplicateElements,
    /// A transaction's read ignores its own earlier write: internal.
    Internal,
}

impl Plant {
    pub const ALL: [Plant; 8] = [
        Plant::StaleRead,
        Plant::FutureRead,
        Plant::AbortedRead,
        Plant::IntermediateRead,
        Plant::Garbage,
        Plant::IncompatibleOrder,
        Plant::DuplicateElements,
        Plant::Internal,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Plant::StaleRead => "stale-read",
            Plant::FutureRead => "future-read",
            Plant::AbortedRead => "aborted-read",
            Plant::IntermediateRead => "intermediate-read",
            Plant::Garbage => "garbage",
            Plant::IncompatibleOrder => "incompatible-order",
            Plant::DuplicateElements => "duplicate-elements",
            Plant::Internal => "internal",
        }
    }
    pub fn by_name(s: &str) -> Option<Plant> {
        Plant::ALL.into_iter().find(|p| p.name() == s)
    }
    /// The anomaly the checker must then report (or one implying it).
    pub fn expected(self) -> &'static str {
        match self {
            Plant::StaleRead => "G-single-item-realtime",
            Plant::FutureRead => "G1c-realtime",
            Plant::AbortedRead => "G1a",
            Plant::IntermediateRead => "G1b",
            Plant::Garbage => "garbage-read",
            Plant::IncompatibleOrder => "incompatible-order",
            Plant::DuplicateElements => "duplicate-elements",
            Plant::Internal => "internal",
        }
    }
}

/// Who wrote what: (key, value) -> (txn, is the writer's last write of
/// the key).
fn writers(t: &Txns) -> crate::model::FxHashMap<u64, (u32, bool)> {
    let mut w = crate::model::FxHashMap::default();
    for x in 0..t.txns.len() as u32 {
        let ms = t.mops_of(x);
        for (i, m) in ms.iter().enumerate() {
            if m.is_write() {
                let last = !ms[i + 1..].iter().any(|y| y.is_write() && y.key == m.key);
                w.insert((m.key as u64) << 32 | m.a as u64, (x, last));
            }
        }
    }
    w
}

/// Replaces a read's list with `l` (copied to the end of the arena).
fn set_list(t: &mut Txns, mop: usize, l: &[u32]) {
    let s = t.elems.len() as u32;
    t.elems.extend_from_slice(l);
    t.mops[mop].a = s;
    t.mops[mop].b = l.len() as u32;
}

/// Known reads of ok transactions that are their transaction's only
/// operation on the key: (mop position, txn).
fn lone_reads(t: &Txns) -> Vec<(usize, u32)> {
    let mut out = Vec::new();
    for (x, tx) in t.txns.iter().enumerate() {
        if tx.status != Status::Ok {
            continue;
        }
        let r = tx.mop_start as usize..(tx.mop_start + tx.mop_len) as usize;
        for i in r.clone() {
            let m = t.mops[i];
            if m.read_known() && r.clone().filter(|&j| t.mops[j].key == m.key).count() == 1 {
                out.push((i, x as u32));
            }
        }
    }
    out
}

/// Plants one anomaly, chosen with `seed` among the places where it can
/// go. Returns false if the history has no such place.
pub fn plant(t: &mut Txns, kind: Plant, seed: u64) -> bool {
    let mut rng = Rng::new(seed);
    let list = t.model == TxnModel::ListAppend;
    let w = writers(t);
    let wkey = |k: u32, v: u32| (k as u64) << 32 | v as u64;
    let mut candidates: Vec<(usize, u32, Vec<u32>)> = Vec::new(); // (mop, txn, new list or [value])
    let fresh = t
        .mops
        .iter()
        .filter(|m| m.is_write())
        .map(|m| m.a + 1)
        .max()
        .unwrap_or(0)
        + t.elems.iter().map(|&e| e + 1).max().unwrap_or(0)
        + 1;
    // Per key: the longest known read (list-append), how many known reads
    // have two elements or more, and the writes that are their writer's
    // last to the key, by the writer's invocation (registers).
    let mut longest: crate::model::FxHashMap<u32, usize> = Default::default();
    let mut long_reads: crate::model::FxHashMap<u32, usize> = Default::default();
    let mut last_writes: crate::model::FxHashMap<u32, Vec<(u64, u32)>> = Default::default();
    let mut key_writes: crate::model::FxHashMap<u32, Vec<(u64, u32)>> = Default::default();
    for (i, m) in t.mops.iter().enumerate() {
        if m.read_known() {
            let e = longest.entry(m.key).or_insert(i);
            if m.b > t.mops[*e].b {
                *e = i;
            }
            if m.b >= 2 {
                *long_reads.entry(m.key).or_insert(0) += 1;
            }
        }
        if m.is_write() {
            let (o, last) = w[&wkey(m.key, m.a)];
            let at = t.txns[o as usize].invoke_at;
            key_writes.entry(m.key).or_default().push((at, m.a));
            if last {
                last_writes.entry(m.key).or_default().push((at, m.a));
            }
        }
    }
    for v in last_writes.values_mut().chain(key_writes.values_mut()) {
        v.sort_unstable();
    }
    match kind {
        Plant::StaleRead | Plant::FutureRead | Plant::Garbage | Plant::DuplicateElements => {
            // Per key: the order of writes as the longest read shows it
            // (list-append), or the writes in real-time order (registers).
            for (i, x) in lone_reads(t) {
                let m = t.mops[i];
                let tx = &t.txns[x as usize];
                match kind {
                    Plant::StaleRead => {
                        let last = if list {
                            t.list(&m).last().copied()
                        } else {
                            Some(m.a)
                        };
                        let Some(v) = last.filter(|&v| v != NONE) else {
                            continue;
                        };
                        let Some(&(wt, true)) = w.get(&wkey(m.key, v)) else {
                            continue;
                        };
                        let wtx = &t.txns[wt as usize];
                        let single = t.mops_of(wt).iter().filter(|y| y.key == m.key).count() == 1;
                        if wtx.status == Status::Ok && wtx.complete_at < tx.invoke_at && single {
                            let l = if list {
                                let l = t.list(&m);
                                l[..l.len() - 1].to_vec()
                            } else {
                                // A register read goes back to nil only if
                                // nothing else was written before.
                                vec![NONE]
                            };
                            if !list {
                                let ws = key_writes.get(&m.key).map_or(&[][..], Vec::as_slice);
                                let before = ws.partition_point(|&(at, _)| at < tx.invoke_at);
                                if ws[..before].iter().any(|&(_, y)| y != v) {
                                    continue;
                                }
                            }
                            candidates.push((i, x, l));
                        }
                    }
                    Plant::FutureRead => {
                        // A write to the key by a transaction invoked after
                        // this one completed, the very next one in order.
                        let next = if list {
                            let l = t.list(&m);
                            // The next element: from the longest read.
                            let longest = longest
                                .get(&m.key)
                                .map(|&j| t.list(&t.mops[j]).to_vec())
                                .unwrap_or_default();
                            if longest.len() > l.len() && longest[..l.len()] == *l {
                                Some((longest[l.len()], longest[..=l.len()].to_vec()))
                            } else {
                                None
                            }
                        } else {
                            let ws = last_writes.get(&m.key).map_or(&[][..], Vec::as_slice);
                            let after = ws.partition_point(|&(at, _)| at <= tx.complete_at);
                            ws.get(after).map(|&(_, y)| (y, vec![y]))
                        };
                        let Some((v, l)) = next else { continue };
                        let Some(&(wt, true)) = w.get(&wkey(m.key, v)) else {
                            continue;
                        };
                        let wtx = &t.txns[wt as usize];
                        let single = t.mops_of(wt).iter().filter(|y| y.key == m.key).count() == 1;
                        if wtx.status == Status::Ok && wtx.invoke_at > tx.complete_at && single {
                            candidates.push((i, x, l));
                        }
                    }
                    Plant::Garbage => {
                        let mut l = if list {
                            t.list(&m).to_vec()
                        } else {
                            Vec::new()
                        };
                        l.push(fresh);
                        candidates.push((i, x, l));
                    }
                    Plant::DuplicateElements if list && m.b > 0 => {
                        let mut l = t.list(&m).to_vec();
                        l.push(*l.last().expect("non-empty"));
                        candidates.push((i, x, l));
                    }
                    _ => {}
                }
            }
        }
        Plant::IncompatibleOrder => {
            if !list {
                return false;
            }
            for (i, x) in lone_reads(t) {
                let m = t.mops[i];
                let others = long_reads.get(&m.key).copied().unwrap_or(0) - (m.b >= 2) as usize;
                if m.b >= 2 && others > 0 {
                    let mut l = t.list(&m).to_vec();
                    l.swap(0, 1);
                    candidates.push((i, x, l));
                }
            }
        }
        Plant::IntermediateRead => {
            // A writer with two writes to one key; a reader that saw the
            // second is made to see the first.
            for (i, x) in lone_reads(t) {
                let m = t.mops[i];
                let last = if list {
                    t.list(&m).last().copied()
                } else {
                    Some(m.a)
                };
                let Some(v) = last.filter(|&v| v != NONE) else {
                    continue;
                };
                let Some(&(wt, _)) = w.get(&wkey(m.key, v)) else {
                    continue;
                };
                if wt == x || t.txns[wt as usize].status != Status::Ok {
                    continue;
                }
                let ws: Vec<u32> = t
                    .mops_of(wt)
                    .iter()
                    .filter(|y| y.is_write() && y.key == m.key)
                    .map(|y| y.a)
                    .collect();
                if ws.len() >= 2 && ws.last() == Some(&v) {
                    let prev = ws[ws.len() - 2];
                    let l = if list {
                        let l = t.list(&m);
                        l[..l.len() - 1].to_vec()
                    } else {
                        vec![prev]
                    };
                    if !list || l.last() == Some(&prev) {
                        candidates.push((i, x, l));
                    }
                }
            }
        }
        Plant::Internal => {
            // A read after the transaction's own write of the key.
            for (x, tx) in t.txns.iter().enumerate() {
                if tx.status != Status::Ok {
                    continue;
                }
                let r = tx.mop_start as usize..(tx.mop_start + tx.mop_len) as usize;
                for i in r.clone() {
                    let m = t.mops[i];
                    if m.read_known()
                        && r.clone()
                            .take_while(|&j| j < i)
                            .any(|j| t.mops[j].is_write() && t.mops[j].key == m.key)
                    {
                        let l = if list {
                            let l = t.list(&m);
                            l[..l.len().saturating_sub(1)].to_vec()
                        } else {
                            vec![fresh]
                        };
                        candidates.push((i, x as u32, l));
                    }
                }
            }
        }
        Plant::AbortedRead => {
            // An ok writer whose (last) write some ok transaction read.
            let mut seen = Vec::new();
            for (i, x) in lone_reads(t) {
                let m = t.mops[i];
                let last = if list {
                    t.list(&m).last().copied()
                } else {
                    Some(m.a)
                };
                let Some(v) = last.filter(|&v| v != NONE) else {
                    continue;
                };
                if let Some(&(wt, _)) = w.get(&wkey(m.key, v)) {
                    if wt != x && t.txns[wt as usize].status == Status::Ok {
                        seen.push(wt);
                    }
                }
            }
            if seen.is_empty() {
                return false;
            }
            let wt = seen[rng.below(seen.len())];
            t.txns[wt as usize].status = Status::Fail;
            return true;
        }
    }
    if candidates.is_empty() {
        return false;
    }
    let (i, _, l) = candidates.swap_remove(rng.below(candidates.len()));
    if list {
        set_list(t, i, &l);
    } else {
        t.mops[i].a = l[0];
        t.mops[i].b = 1;
    }
    true
}

/// The transactions as a [`History`](crate::history::History) of JSON events (native meaning), as
/// a client would have recorded them: invocations with unknown reads,
/// completions with what was read. Keys, values and processes keep their
/// names (numbers, for generated histories).
pub fn to_history(t: &Txns) -> crate::history::History {
    use crate::history::{History, Op, OpType, Process};
    use serde_json::{json, Value};
    let number = |s: String| -> Value {
        s.parse::<u64>()
            .map(Value::from)
            .unwrap_or(Value::String(s))
    };
    let mop_json = |m: &Mop, known: bool| -> Value {
        let k = number(t.keys.name(m.key));
        match m.kind {
            MopKind::Append => json!(["append", k, number(t.values.name(m.a))]),
            MopKind::Write => json!(["w", k, number(t.values.name(m.a))]),
            MopKind::ReadList if known && m.a != NONE => {
                let l: Vec<Value> = t
                    .list(m)
                    .iter()
                    .map(|&v| number(t.values.name(v)))
                    .collect();
                json!(["r", k, l])
            }
            MopKind::ReadReg if known && m.b != 0 && m.a != NONE => {
                json!(["r", k, number(t.values.name(m.a))])
            }
            _ => json!(["r", k, null]),
        }
    };
    let mut ops = Vec::with_capacity(t.events.len());
    for &e in &t.events {
        let x = (e >> 1) as u32;
        let tx = &t.txns[x as usize];
        let complete = e & 1 == 1;
        let known = complete && tx.status == Status::Ok;
        let kind = match (complete, tx.status) {
            (false, _) => OpType::Invoke,
            (true, Status::Ok) => OpType::Ok,
            (true, Status::Fail) => OpType::Fail,
            (true, Status::Info) => OpType::Info,
        };
        let value = Value::Array(t.mops_of(x).iter().map(|m| mop_json(m, known)).collect());
        let process = match t.processes.name(tx.process).parse::<u64>() {
            Ok(n) => Process::Client(n),
            Err(_) => Process::Named(t.processes.name(tx.process)),
        };
        ops.push(Op {
            index: ops.len(),
            process,
            kind,
            f: "txn".into(),
            key: None,
            value,
            time: None,
            extra: Default::default(),
        });
    }
    History::new(ops)
}
