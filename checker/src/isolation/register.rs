//! Read-write register inference, as Elle's `elle/rw_register.clj` does it.
//!
//! A read of a register shows one value, not a history, so far less can be
//! inferred than for lists. Writes are assumed unique per key. What is
//! sound:
//! - `wr`: the transaction whose last write of `k` was `v` precedes every
//!   transaction whose first read of `k` (before writing it) saw `v`;
//! - the initial state `nil` comes before every written value, so a
//!   transaction that read `k = nil` precedes (`rw`) every transaction that
//!   wrote `k`;
//! - assumptions, each off by default as in Elle, that order versions:
//!   [`super::IsoOptions::wfr_keys`] (Elle's `:wfr-keys?`: within a
//!   transaction writes follow reads, so a transaction that read `v1` and
//!   then wrote `v2` orders `v1` before `v2`),
//!   [`super::IsoOptions::sequential_keys`] (`:sequential-keys?`: each
//!   process sees each key's versions in order) and
//!   [`super::IsoOptions::linearizable_keys`] (`:linearizable-keys?`: each
//!   key's versions follow real time). An order `v1 < v2` gives `ww` edges
//!   from `v1`'s writer and `rw` edges from `v1`'s readers to `v2`'s
//!   writer. As in Elle, an assumption whose orders would form a cycle (with
//!   the others, nil first) is not used, and the cycle is reported as
//!   `cyclic-versions`.
//!
//! Unlike Elle at the vendored commit, `info` transactions' writes count as
//! writes: a read may observe them (Elle indexes only `ok` writes, so such
//! a read gives no edge there). Non-cycle anomalies: `internal` (a read
//! that disagrees with the transaction's own earlier read or write), `G1a`
//! (a read of a failed transaction's write), `G1b` (a read of a value its
//! writer overwrote in the same transaction), `garbage-read` (a read of a
//! value nobody wrote), `lost-update`, `duplicate-writes` (the same value
//! written twice to a key: nothing can be inferred, the verdict is unknown).

use crate::model::FxHashMap;

use super::graph::{Edges, Rel};
use super::txns::{MopKind, Status, Txns, NONE};
use super::{Case, Cases};

const F_FAILED: u8 = 1;
const F_INTERMEDIATE: u8 = 2;

#[derive(Clone, Copy)]
struct Write {
    writer: u32,
    flags: u8,
}

/// What explanations need afterwards.
pub(crate) struct RegisterIndex {
    /// Version orders inferred from writes-follow-reads: (key, v1, v2).
    /// Version orders inferred from an assumption: (key, v1, v2) -> why.
    versions: FxHashMap<(u32, u32, u32), &'static str>,
}

fn ek(k: u32, v: u32) -> u64 {
    (k as u64) << 32 | v as u64
}

/// (key, value) pairs.
pub(crate) type KeyValues = Vec<(u32, u32)>;

/// Version orders of keys: (key, earlier value, later value).
type VersionOrders = Vec<(u32, u32, u32)>;

/// External reads (first read of a key, before any write of it) and
/// external writes (last write of a key) of a transaction. Reads are
/// `None` when unknown.
pub(crate) fn ext(t: &Txns, ti: u32) -> (KeyValues, KeyValues) {
    let ms = t.mops_of(ti);
    let mut reads: KeyValues = Vec::new();
    let mut writes: KeyValues = Vec::new();
    for (i, m) in ms.iter().enumerate() {
        let earlier = &ms[..i];
        match m.kind {
            MopKind::ReadReg if m.read_known() && !earlier.iter().any(|x| x.key == m.key) => {
                reads.push((m.key, m.a));
            }
            MopKind::Write
                if !ms[i + 1..]
                    .iter()
                    .any(|x| x.key == m.key && x.kind == MopKind::Write) =>
            {
                writes.push((m.key, m.a));
            }
            _ => {}
        }
    }
    (reads, writes)
}

/// Which assumptions may add version orders (Elle's `:wfr-keys?`,
/// `:sequential-keys?`, `:linearizable-keys?`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Assume {
    pub wfr: bool,
    pub sequential: bool,
    pub linearizable: bool,
}

/// A key's first value in a transaction (its external read, else its
/// external write) and its last (its external write, else its read).
fn first_last(reads: &KeyValues, writes: &KeyValues, k: u32) -> (Option<u32>, Option<u32>) {
    let r = reads.iter().find(|x| x.0 == k).map(|x| x.1);
    let w = writes.iter().find(|x| x.0 == k).map(|x| x.1);
    (r.or(w), w.or(r))
}

/// Sequential keys: each process observes each key's versions in order,
/// so the last value of a key in one of its `ok` transactions precedes the
/// first value of that key in its next one.
fn sequential_versions(t: &Txns) -> Vec<(u32, u32, u32)> {
    let mut last: FxHashMap<(u32, u32), u32> = FxHashMap::default();
    let mut out = Vec::new();
    for &e in &t.events {
        let x = (e >> 1) as u32;
        let tx = &t.txns[x as usize];
        if e & 1 == 0 || tx.status != Status::Ok {
            continue;
        }
        let (reads, writes) = ext(t, x);
        let mut keys: Vec<u32> = reads.iter().chain(&writes).map(|x| x.0).collect();
        keys.sort_unstable();
        keys.dedup();
        for k in keys {
            let (first, final_) = first_last(&reads, &writes, k);
            if let (Some(&v1), Some(v2)) = (last.get(&(tx.process, k)), first) {
                out.push((k, v1, v2));
            }
            if let Some(v) = final_ {
                last.insert((tx.process, k), v);
            }
        }
    }
    out
}

/// Linearizable keys: each key's versions follow real time, so the last
/// value of a key in an `ok` transaction precedes the first value of that
/// key in every transaction that began after it completed (transitively
/// reduced per key, as the real-time edges are).
fn linearizable_versions(t: &Txns) -> Vec<(u32, u32, u32)> {
    // Per key: (sequence, last value) of completed transactions not yet
    // followed by another on the key.
    let mut frontier: FxHashMap<u32, Vec<(u32, u32)>> = FxHashMap::default();
    let mut seq_at_invoke = vec![0u32; t.txns.len()];
    let mut seq = 0u32;
    let mut out = Vec::new();
    for &e in &t.events {
        let x = (e >> 1) as u32;
        let tx = &t.txns[x as usize];
        if tx.status == Status::Fail {
            continue;
        }
        let (reads, writes) = ext(t, x);
        let mut keys: Vec<u32> = reads.iter().chain(&writes).map(|x| x.0).collect();
        keys.sort_unstable();
        keys.dedup();
        if e & 1 == 0 {
            seq_at_invoke[x as usize] = seq;
            for &k in &keys {
                // Reads of transactions that did not complete ok are unknown.
                let first = if tx.status == Status::Ok {
                    first_last(&reads, &writes, k).0
                } else {
                    writes.iter().find(|w| w.0 == k).map(|w| w.1)
                };
                if let (Some(v2), Some(f)) = (first, frontier.get(&k)) {
                    out.extend(f.iter().map(|&(_, v1)| (k, v1, v2)));
                }
            }
        } else if tx.status == Status::Ok {
            let s0 = seq_at_invoke[x as usize];
            for &k in &keys {
                if let Some(v) = first_last(&reads, &writes, k).1 {
                    let f = frontier.entry(k).or_default();
                    f.retain(|&(s, _)| s >= s0);
                    f.push((seq, v));
                }
            }
            seq += 1;
        }
    }
    out
}

pub(crate) fn analyze(
    t: &Txns,
    assume: Assume,
    cases: &mut Cases,
    edges: &mut Edges,
) -> RegisterIndex {
    let wfr_keys = assume.wfr;
    let val = |v: u32| {
        if v == NONE {
            "nil".to_string()
        } else {
            t.values.name(v)
        }
    };
    // 1. Every write, with its writer.
    let mut writes: FxHashMap<u64, Write> = FxHashMap::default();
    for (ti, tx) in t.txns.iter().enumerate() {
        let ti = ti as u32;
        let ms = t.mops_of(ti);
        for (i, m) in ms.iter().enumerate() {
            if m.kind != MopKind::Write {
                continue;
            }
            let later = ms[i + 1..]
                .iter()
                .any(|x| x.key == m.key && x.kind == MopKind::Write);
            let flags = if tx.status == Status::Fail {
                F_FAILED
            } else {
                0
            } | if later { F_INTERMEDIATE } else { 0 };
            match writes.get(&ek(m.key, m.a)) {
                Some(w) if w.writer != ti => {
                    let first = w.writer;
                    cases.add("duplicate-writes", || Case {
                        txns: vec![first, ti],
                        text: format!(
                            "{} was written to {} by two transactions, {} and {}; rw-register \
                             needs every written value to be unique per key",
                            val(m.a),
                            t.keys.name(m.key),
                            t.txn_text(first),
                            t.txn_text(ti)
                        ),
                    });
                }
                _ => {
                    writes.insert(ek(m.key, m.a), Write { writer: ti, flags });
                }
            }
        }
    }

    // 2. Reads of ok transactions: anomalies, wr edges; nil readers and
    // writers per key for the rw edges.
    let mut nil_readers: Vec<(u32, u32)> = Vec::new();
    let mut key_writers: Vec<(u32, u32)> = Vec::new();
    let mut lost: Vec<(u32, u32, u32)> = Vec::new();
    let mut wfr: Vec<(u32, u32, u32)> = Vec::new();
    let mut readers: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
    for (ti, tx) in t.txns.iter().enumerate() {
        let ti = ti as u32;
        if tx.status == Status::Fail {
            continue;
        }
        let (reads, ws) = ext(t, ti);
        for &(k, _) in &ws {
            key_writers.push((k, ti));
        }
        if tx.status != Status::Ok {
            continue;
        }
        let ms = t.mops_of(ti);
        // Internal consistency (Elle's op-internal-case): the first
        // contradiction only.
        let mut state: Vec<(u32, u32)> = Vec::new();
        for m in ms {
            let slot = state.iter().position(|s| s.0 == m.key);
            match m.kind {
                MopKind::Write => match slot {
                    Some(i) => state[i].1 = m.a,
                    None => state.push((m.key, m.a)),
                },
                MopKind::ReadReg => {
                    if let Some(i) = slot {
                        if state[i].1 != m.a {
                            let expected = state[i].1;
                            cases.add("internal", || Case {
                                txns: vec![ti],
                                text: format!(
                                    "{} read {} = {}, but its own earlier operations imply {}",
                                    t.txn_text(ti),
                                    t.keys.name(m.key),
                                    val(m.a),
                                    val(expected)
                                ),
                            });
                            break;
                        }
                    } else {
                        state.push((m.key, m.a));
                    }
                }
                _ => {}
            }
        }
        // What each read saw.
        for m in ms
            .iter()
            .filter(|m| m.kind == MopKind::ReadReg && m.a != NONE)
        {
            match writes.get(&ek(m.key, m.a)) {
                None => cases.add("garbage-read", || Case {
                    txns: vec![ti],
                    text: format!(
                        "{} read {} = {}, a value no transaction wrote to {}",
                        t.txn_text(ti),
                        t.keys.name(m.key),
                        val(m.a),
                        t.keys.name(m.key)
                    ),
                }),
                Some(w) if w.flags & F_FAILED != 0 => {
                    let w = w.writer;
                    cases.add("G1a", || Case {
                        txns: vec![ti, w],
                        text: format!(
                            "{} read {} = {}, written by a transaction that failed: {}",
                            t.txn_text(ti),
                            t.keys.name(m.key),
                            val(m.a),
                            t.txn_text(w)
                        ),
                    })
                }
                Some(w) if w.flags & F_INTERMEDIATE != 0 && w.writer != ti => {
                    let w = w.writer;
                    cases.add("G1b", || Case {
                        txns: vec![ti, w],
                        text: format!(
                            "{} read {} = {}, an intermediate write of {} (it wrote {} again \
                             afterwards)",
                            t.txn_text(ti),
                            t.keys.name(m.key),
                            val(m.a),
                            t.txn_text(w),
                            t.keys.name(m.key)
                        ),
                    })
                }
                _ => {}
            }
        }
        for &(k, v) in &reads {
            if v == NONE {
                nil_readers.push((k, ti));
            } else {
                readers.entry(ek(k, v)).or_default().push(ti);
                if let Some(w) = writes.get(&ek(k, v)) {
                    if w.flags & (F_FAILED | F_INTERMEDIATE) == 0 && w.writer != ti {
                        edges.push(Rel::Wr, w.writer, ti);
                    }
                }
            }
            if let Some(&(_, v2)) = ws.iter().find(|w| w.0 == k) {
                lost.push((k, v, ti));
                if wfr_keys && v != NONE && v != v2 {
                    wfr.push((k, v, v2));
                }
            }
        }
    }

    // 3. rw: nil comes before every write of the key.
    nil_readers.sort_unstable();
    key_writers.sort_unstable();
    let mut j = 0;
    let mut i = 0;
    while i < nil_readers.len() {
        let k = nil_readers[i].0;
        let mut i2 = i;
        while i2 < nil_readers.len() && nil_readers[i2].0 == k {
            i2 += 1;
        }
        while j < key_writers.len() && key_writers[j].0 < k {
            j += 1;
        }
        let mut j2 = j;
        while j2 < key_writers.len() && key_writers[j2].0 == k {
            j2 += 1;
        }
        for &(_, r) in &nil_readers[i..i2] {
            for &(_, w) in &key_writers[j..j2] {
                edges.push(Rel::Rw, r, w);
            }
        }
        i = i2;
    }

    // 4. Version orders from the assumptions asked for, each kept only if
    // it does not contradict the others (with nil first) in a cycle.
    let mut sources: Vec<(&'static str, VersionOrders)> = Vec::new();
    if assume.wfr {
        sources.push(("writes follow reads within a transaction", wfr));
    }
    if assume.sequential {
        sources.push((
            "each process sees each key's versions in order",
            sequential_versions(t),
        ));
    }
    if assume.linearizable {
        sources.push(("each key is linearizable", linearizable_versions(t)));
    }
    let mut index = RegisterIndex {
        versions: FxHashMap::default(),
    };
    let mut used: Vec<(u32, u32, u32)> = Vec::new();
    for (why, mut es) in sources {
        es.retain(|e| e.1 != e.2);
        let mut all: Vec<(u32, u32, u32)> = used.iter().chain(&es).copied().collect();
        // nil comes first.
        let nil: Vec<(u32, u32, u32)> = all
            .iter()
            .flat_map(|&(k, a, b)| [(k, NONE, a), (k, NONE, b)])
            .filter(|e| e.2 != NONE)
            .collect();
        all.extend(nil);
        all.sort_unstable();
        all.dedup();
        if let Some((k, vs)) = cyclic_versions(&all) {
            cases.add("cyclic-versions", || Case {
                txns: Vec::new(),
                text: format!(
                    "assuming {why}, the versions of {} form a cycle ({}), so no version \
                     order exists; the orders this assumption gives were not used",
                    t.keys.name(k),
                    vs.iter().map(|&v| val(v)).collect::<Vec<_>>().join(", ")
                ),
            });
            continue;
        }
        es.sort_unstable();
        es.dedup();
        for &e in &es {
            index.versions.entry(e).or_insert(why);
        }
        used.extend(es);
    }
    used.sort_unstable();
    used.dedup();
    for &(k, v1, v2) in &used {
        if v1 == NONE {
            continue; // Already: every nil reader precedes every writer.
        }
        if let Some(w2) = writes.get(&ek(k, v2)).filter(|w| w.flags & F_FAILED == 0) {
            if let Some(w1) = writes.get(&ek(k, v1)).filter(|w| w.flags == 0) {
                edges.push(Rel::Ww, w1.writer, w2.writer);
            }
            for &r in readers.get(&ek(k, v1)).map_or(&[][..], Vec::as_slice) {
                edges.push(Rel::Rw, r, w2.writer);
            }
        }
    }

    // 5. Lost updates: two transactions read the same value of a key and
    // both wrote it.
    lost.sort_unstable();
    for same in lost.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        if same.len() >= 2 {
            let group: Vec<u32> = same.iter().map(|x| x.2).collect();
            let (k, v) = (same[0].0, same[0].1);
            cases.add("lost-update", || Case {
                txns: group.clone(),
                text: format!(
                    "{} transactions read {} = {} and then each wrote {}, so one overwrote the \
                     other's update: {}",
                    group.len(),
                    t.keys.name(k),
                    val(v),
                    t.keys.name(k),
                    group
                        .iter()
                        .map(|&g| t.txn_text(g))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            });
        }
    }
    index
}

/// A cycle in the version orders of some key, if any: (key, the values).
fn cyclic_versions(edges: &[(u32, u32, u32)]) -> Option<(u32, Vec<u32>)> {
    let mut i = 0;
    while i < edges.len() {
        let k = edges[i].0;
        let mut j = i;
        while j < edges.len() && edges[j].0 == k {
            j += 1;
        }
        let es = &edges[i..j];
        let mut ids: FxHashMap<u32, usize> = FxHashMap::default();
        let mut names = Vec::new();
        for &(_, a, b) in es {
            for v in [a, b] {
                ids.entry(v).or_insert_with(|| {
                    names.push(v);
                    names.len() - 1
                });
            }
        }
        let n = names.len();
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut indeg = vec![0usize; n];
        for &(_, a, b) in es {
            out[ids[&a]].push(ids[&b]);
            indeg[ids[&b]] += 1;
        }
        let mut q: Vec<usize> = (0..n).filter(|&x| indeg[x] == 0).collect();
        while let Some(x) = q.pop() {
            for &y in &out[x] {
                indeg[y] -= 1;
                if indeg[y] == 0 {
                    q.push(y);
                }
            }
        }
        let left: Vec<u32> = (0..n).filter(|&x| indeg[x] > 0).map(|x| names[x]).collect();
        if !left.is_empty() {
            return Some((k, left));
        }
        i = j;
    }
    None
}

impl RegisterIndex {
    /// Why `a -rel-> b`: (key, sentence).
    pub(crate) fn explain(
        &self,
        t: &Txns,
        a: u32,
        b: u32,
        rel: Rel,
        an: &str,
        bn: &str,
    ) -> Option<(String, String)> {
        let val = |v: u32| {
            if v == NONE {
                "nil".to_string()
            } else {
                t.values.name(v)
            }
        };
        let (ra, wa) = ext(t, a);
        let (rb, wb) = ext(t, b);
        match rel {
            Rel::Wr => wa.iter().find(|w| rb.contains(w)).map(|&(k, v)| {
                (
                    t.keys.name(k),
                    format!(
                        "{an} wrote {} = {}, which was read by {bn}",
                        t.keys.name(k),
                        val(v)
                    ),
                )
            }),
            Rel::Rw => {
                for &(k, v) in &ra {
                    for &(k2, v2) in &wb {
                        if k != k2 {
                            continue;
                        }
                        if v == NONE {
                            return Some((
                                t.keys.name(k),
                                format!(
                                    "{an} read {} = nil (the initial state), and {bn} set it to \
                                     {}, which came later in the version order",
                                    t.keys.name(k),
                                    val(v2)
                                ),
                            ));
                        }
                        if let Some(why) = self.versions.get(&(k, v, v2)) {
                            return Some((
                                t.keys.name(k),
                                format!(
                                    "{an} read {} = {}, and {bn} set it to {}, which came later \
                                     in the version order (assuming {why})",
                                    t.keys.name(k),
                                    val(v),
                                    val(v2)
                                ),
                            ));
                        }
                    }
                }
                None
            }
            Rel::Ww => {
                for &(k, v) in &wa {
                    for &(k2, v2) in &wb {
                        if let Some(why) = self.versions.get(&(k, v, v2)).filter(|_| k == k2) {
                            return Some((
                                t.keys.name(k),
                                format!(
                                    "{an} set {} to {}, and {bn} set it to {}, which came later \
                                     in the version order (assuming {why})",
                                    t.keys.name(k),
                                    val(v),
                                    val(v2)
                                ),
                            ));
                        }
                    }
                }
                None
            }
            _ => None,
        }
    }
}
