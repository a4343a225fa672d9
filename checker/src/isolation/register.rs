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
//! - with [`super::IsoOptions::wfr_keys`] (Elle's `:wfr-keys?`, off by
//!   default as in Elle): within a transaction writes follow reads, so a
//!   transaction that read `v1` and then wrote `v2` orders `v1` before
//!   `v2`, which gives `ww` edges from `v1`'s writer and `rw` edges from
//!   `v1`'s readers to `v2`'s writer. If these orders form a cycle, they
//!   are not used and the cycle is reported as `cyclic-versions`.
//!
//! Unlike Elle at the vendored commit, `info` transactions' writes count as
//! writes: a read may observe them (Elle indexes only `ok` writes, so such
//! a read gives no edge there). Non-cycle anomalies: `internal` (a read
//! that disagrees with the transaction's own earlier read or write), `G1a`
//! (a read of a failed transaction's write), `G1b` (a read of a value its
//! writer overwrote in the same transaction), `garbage-read` (a read of a
//! value nobody wrote), `lost-update`, `duplicate-writes` (the same value
//! written twice to a key: nothing can be inferred, the verdict is unknown).

use crate::model::{FxHashMap, FxHashSet};

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
    wfr: FxHashSet<(u32, u32, u32)>,
}

fn ek(k: u32, v: u32) -> u64 {
    (k as u64) << 32 | v as u64
}

/// (key, value) pairs.
pub(crate) type KeyValues = Vec<(u32, u32)>;

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

pub(crate) fn analyze(
    t: &Txns,
    wfr_keys: bool,
    cases: &mut Cases,
    edges: &mut Edges,
) -> RegisterIndex {
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

    // 4. Writes follow reads: version orders, if acyclic.
    wfr.sort_unstable();
    wfr.dedup();
    let cyclic = cyclic_versions(&wfr);
    let mut index = RegisterIndex {
        wfr: FxHashSet::default(),
    };
    if let Some((k, vs)) = cyclic {
        cases.add("cyclic-versions", || Case {
            txns: Vec::new(),
            text: format!(
                "assuming writes follow reads within a transaction, the versions of {} form a \
                 cycle ({}), so no version order exists; these orders were not used",
                t.keys.name(k),
                vs.iter().map(|&v| val(v)).collect::<Vec<_>>().join(" < ")
            ),
        });
    } else {
        for &(k, v1, v2) in &wfr {
            index.wfr.insert((k, v1, v2));
            if let Some(w2) = writes.get(&ek(k, v2)).filter(|w| w.flags & F_FAILED == 0) {
                if let Some(w1) = writes.get(&ek(k, v1)).filter(|w| w.flags == 0) {
                    edges.push(Rel::Ww, w1.writer, w2.writer);
                }
                for &r in readers.get(&ek(k, v1)).map_or(&[][..], Vec::as_slice) {
                    edges.push(Rel::Rw, r, w2.writer);
                }
            }
        }
    }

    // 5. Lost updates: two transactions read the same value of a key and
    // both wrote it.
    lost.sort_unstable();
    let mut i = 0;
    while i < lost.len() {
        let mut j = i + 1;
        while j < lost.len() && lost[j].0 == lost[i].0 && lost[j].1 == lost[i].1 {
            j += 1;
        }
        if j - i >= 2 {
            let group: Vec<u32> = lost[i..j].iter().map(|x| x.2).collect();
            let (k, v) = (lost[i].0, lost[i].1);
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
        i = j;
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
                        if self.wfr.contains(&(k, v, v2)) {
                            return Some((
                                t.keys.name(k),
                                format!(
                                    "{an} read {} = {}, and {bn} set it to {}, which came later \
                                     in the version order (a transaction read {} and then \
                                     wrote {})",
                                    t.keys.name(k),
                                    val(v),
                                    val(v2),
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
                        if k == k2 && self.wfr.contains(&(k, v, v2)) {
                            return Some((
                                t.keys.name(k),
                                format!(
                                    "{an} set {} to {}, and {bn} set it to {}, which came later \
                                     in the version order (a transaction read {} and then \
                                     wrote {})",
                                    t.keys.name(k),
                                    val(v),
                                    val(v2),
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
