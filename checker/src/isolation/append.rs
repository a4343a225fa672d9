//! List-append inference, as Elle's `elle/list_append.clj` does it.
//!
//! Every read of a list shows the order of the appends that made it, so:
//! - the *version order* of a key is its longest `ok` read (distinct
//!   elements); every other read must be a prefix of it, else the reads
//!   come from incompatible timelines (`incompatible-order`). A key never
//!   read but appended exactly once has the order `[v]`;
//! - `ww`: the writer of element `i` precedes the writer of element `i+1`;
//!   an append that no read shows came after the last element read;
//! - `wr`: the writer of a read's last element precedes the reader;
//! - `rw`: a reader whose list ends at element `i` (or is empty) precedes
//!   the writer of element `i+1` (or of the first element; or, if it saw the
//!   whole order, every append no read shows).
//!
//! Only `ok` and `info` transactions are nodes (`fail` ones did not
//! happen); only `ok` reads are known. The non-cycle anomalies are found on
//! the way: `internal`, `future-read`, `duplicate-elements`,
//! `duplicate-appends`, `incompatible-order`, `G1a` (a read shows a failed
//! transaction's append), `G1b` (a read ends with an append that was not
//! its writer's last to that key), `dirty-update`, `lost-update` and
//! `garbage-read` (a read shows a value nobody appended; not in Elle).
//!
//! Reads that agree with the version order (almost all of them) cost a
//! comparison with the longest read and a few array lookups; only the
//! others are looked up element by element.

use crate::model::FxHashMap;

use super::graph::{Edges, Rel};
use super::txns::{Mop, MopKind, Status, Txns, NONE};
use super::{Case, Cases};

const F_FAILED: u8 = 1;
const F_INTERMEDIATE: u8 = 2;
const F_POSSIBLE: u8 = 4;

/// What we know of one appended element `(key, value)`.
#[derive(Clone, Copy, Debug)]
struct Elem {
    writer: u32,
    /// Position in the key's version order, or NONE if no read shows it.
    pos: u32,
    flags: u8,
}

/// The inferred version orders, kept to explain edges afterwards.
pub(crate) struct AppendIndex {
    /// `order[order_start[k]..order_start[k+1]]`: key k's version order.
    order_start: Vec<u32>,
    order: Vec<u32>,
    writer: Vec<u32>,
    flags: Vec<u8>,
    /// Positions of the elements of long orders (key, value) -> position;
    /// short orders are scanned instead (faster, and no table to build).
    long: FxHashMap<u64, u32>,
    /// Appends that are in no order (no read shows them, or only reads that
    /// disagree with the order): (key, value) -> writer, flags; sorted.
    others: Vec<(u64, u32, u8)>,
    /// Appends of possible transactions that no read shows, by key.
    unobs_start: Vec<u32>,
    unobs: Vec<u32>,
}

fn ek(k: u32, v: u32) -> u64 {
    (k as u64) << 32 | v as u64
}

fn possible(s: Status) -> bool {
    s != Status::Fail
}

/// Orders up to this long are scanned rather than hashed.
const SCAN: usize = 48;

impl AppendIndex {
    /// Position of element `v` in key `k`'s order.
    fn pos_of(&self, k: u32, v: u32) -> Option<u32> {
        let r = self.order(k);
        if r.len() <= SCAN {
            self.order[r].iter().position(|&e| e == v).map(|p| p as u32)
        } else {
            self.long.get(&ek(k, v)).copied()
        }
    }

    /// What is known of the element `(k, v)`.
    fn elem(&self, k: u32, v: u32) -> Option<Elem> {
        if let Some(p) = self.pos_of(k, v) {
            let gi = self.order(k).start + p as usize;
            return Some(Elem {
                writer: self.writer[gi],
                pos: p,
                flags: self.flags[gi],
            });
        }
        let key = ek(k, v);
        let i = self.others.partition_point(|o| o.0 < key);
        self.others.get(i).filter(|o| o.0 == key).map(|o| Elem {
            writer: o.1,
            pos: NONE,
            flags: o.2,
        })
    }

    fn order(&self, k: u32) -> std::ops::Range<usize> {
        if (k as usize) + 1 >= self.order_start.len() {
            return 0..0;
        }
        self.order_start[k as usize] as usize..self.order_start[k as usize + 1] as usize
    }
    fn unobserved(&self, k: u32) -> &[u32] {
        if (k as usize) + 1 >= self.unobs_start.len() {
            return &[];
        }
        &self.unobs
            [self.unobs_start[k as usize] as usize..self.unobs_start[k as usize + 1] as usize]
    }
    /// Position (in the order) just after a read's last element: 0 for an
    /// empty read; NONE if the last element is not in the order.
    fn read_end(&self, t: &Txns, m: &Mop) -> u32 {
        let l = t.list(m);
        match l.last() {
            None => 0,
            Some(&e) => match self.elem(m.key, e) {
                Some(x) if x.pos != NONE => x.pos + 1,
                _ => NONE,
            },
        }
    }
    /// The possible writer of the element at `end` (the next append after a
    /// read ending there), or, at the end of the order, None with `true`
    /// meaning "every unobserved append".
    fn next_writers(&self, k: u32, end: u32) -> (Option<u32>, bool) {
        let r = self.order(k);
        let len = (r.end - r.start) as u32;
        if end < len {
            let i = r.start + end as usize;
            if self.flags[i] & F_POSSIBLE != 0 {
                (Some(self.writer[i]), false)
            } else {
                (None, false)
            }
        } else if end == len {
            (None, true)
        } else {
            (None, false)
        }
    }

    /// Why `a -rel-> b`: one sentence, with the key.
    pub(crate) fn explain(
        &self,
        t: &Txns,
        a: u32,
        b: u32,
        rel: Rel,
        an: &str,
        bn: &str,
    ) -> Option<(String, String)> {
        let key = |k: u32| t.keys.name(k);
        let val = |v: u32| t.values.name(v);
        match rel {
            Rel::Ww => {
                for m in t.mops_of(b).iter().filter(|m| m.kind == MopKind::Append) {
                    let e = self.elem(m.key, m.a)?;
                    let r = self.order(m.key);
                    let prev = if e.pos != NONE && e.pos > 0 {
                        Some(r.start + e.pos as usize - 1)
                    } else if e.pos == NONE && r.end > r.start {
                        Some(r.end - 1)
                    } else {
                        None
                    };
                    if let Some(p) = prev {
                        if self.writer[p] == a {
                            return Some((
                                key(m.key),
                                format!(
                                    "{bn} appended {} to {} after {an} appended {}{}",
                                    val(m.a),
                                    key(m.key),
                                    val(self.order[p]),
                                    if e.pos == NONE {
                                        " (the last element any read shows)"
                                    } else {
                                        ""
                                    }
                                ),
                            ));
                        }
                    }
                }
                None
            }
            Rel::Wr => {
                for m in t.mops_of(b).iter().filter(|m| m.read_known()) {
                    let l = t.list(m);
                    let Some(&last) = l.last() else { continue };
                    if self.elem(m.key, last).map(|e| e.writer) == Some(a) {
                        return Some((
                            key(m.key),
                            format!(
                                "{bn} read {} = {}, which ends with {an}'s append of {}",
                                key(m.key),
                                t.list_text(l),
                                val(last)
                            ),
                        ));
                    }
                }
                None
            }
            Rel::Rw => {
                for m in t.mops_of(a).iter().filter(|m| m.read_known()) {
                    let end = self.read_end(t, m);
                    if end == NONE {
                        continue;
                    }
                    let l = t.list(m);
                    let (w, all) = self.next_writers(m.key, end);
                    let appended = if w == Some(b) {
                        let r = self.order(m.key);
                        Some(self.order[r.start + end as usize])
                    } else if all {
                        t.mops_of(b)
                            .iter()
                            .find(|x| {
                                x.kind == MopKind::Append
                                    && x.key == m.key
                                    && self.pos_of(x.key, x.a).is_none()
                            })
                            .map(|x| x.a)
                    } else {
                        None
                    };
                    if let Some(v) = appended {
                        let text = if l.is_empty() {
                            format!(
                                "{an} read {} = [] (the initial, empty state), which {bn} changed \
                                 by appending {}",
                                key(m.key),
                                val(v)
                            )
                        } else {
                            format!(
                                "{an} read {} = {}, which does not include {bn}'s append of {} \
                                 (appended after {})",
                                key(m.key),
                                t.list_text(l),
                                val(v),
                                val(*l.last().unwrap_or(&v))
                            )
                        };
                        return Some((key(m.key), text));
                    }
                }
                None
            }
            _ => None,
        }
    }
}

/// Builds the version orders, finds the non-cycle anomalies and emits the
/// ww, wr and rw edges.
pub(crate) fn analyze(t: &Txns, cases: &mut Cases, edges: &mut Edges) -> AppendIndex {
    let nkeys = t.mops.iter().map(|m| m.key as usize + 1).max().unwrap_or(0);

    // 1. The longest ok read of each key, and single appends.
    let mut best: Vec<(u32, u32)> = vec![(NONE, 0); nkeys];
    let mut appends: Vec<(u32, u32)> = vec![(0, 0); nkeys]; // (count, value)
    for tx in &t.txns {
        let ms = &t.mops[tx.mop_start as usize..(tx.mop_start + tx.mop_len) as usize];
        for m in ms {
            match m.kind {
                MopKind::ReadList if tx.status == Status::Ok && m.a != NONE => {
                    let b = &mut best[m.key as usize];
                    if m.b > b.1 || b.0 == NONE {
                        *b = (m.a, m.b);
                    }
                }
                MopKind::Append if possible(tx.status) => {
                    let a = &mut appends[m.key as usize];
                    a.0 = (a.0 + 1).min(2);
                    a.1 = m.a;
                }
                _ => {}
            }
        }
    }

    // 2. Version orders: distinct elements of the longest read.
    let mut order_start = Vec::with_capacity(nkeys + 1);
    let mut order: Vec<u32> = Vec::new();
    let mut first_dup: Vec<u32> = vec![NONE; nkeys];
    let mut seen: crate::model::FxHashSet<u32> = Default::default();
    let mut long: FxHashMap<u64, u32> = FxHashMap::default();
    for k in 0..nkeys {
        let start = order.len();
        order_start.push(start as u32);
        let (s, n) = best[k];
        if s != NONE && n > 0 {
            let l = &t.elems[s as usize..(s + n) as usize];
            let scan = l.len() <= SCAN;
            seen.clear();
            for (i, &e) in l.iter().enumerate() {
                let new = if scan {
                    !order[start..].contains(&e)
                } else {
                    seen.insert(e)
                };
                if new {
                    order.push(e);
                } else if first_dup[k] == NONE {
                    first_dup[k] = i as u32;
                }
            }
            if order.len() - start > SCAN {
                for (p, &e) in order[start..].iter().enumerate() {
                    long.insert(ek(k as u32, e), p as u32);
                }
            }
        } else if appends[k].0 == 1 {
            order.push(appends[k].1);
        }
    }
    order_start.push(order.len() as u32);

    // 3. Writers: straight into the order's arrays, or, for appends in no
    // order, into a sorted list.
    let mut idx = AppendIndex {
        order_start,
        order,
        writer: Vec::new(),
        flags: Vec::new(),
        long,
        others: Vec::new(),
        unobs_start: Vec::new(),
        unobs: Vec::new(),
    };
    let mut writer = vec![NONE; idx.order.len()];
    let mut flag_of = vec![0u8; idx.order.len()];
    let mut others: Vec<(u64, u32, u8)> = Vec::new();
    let dup = |cases: &mut Cases, first: u32, ti: u32, m: &Mop| {
        cases.add("duplicate-appends", || Case {
            txns: vec![first, ti],
            text: format!(
                "{} was appended to {} more than once (by {} and {}); Elle needs every \
                 appended value to be unique per key, so the order of appends cannot be \
                 inferred",
                t.values.name(m.a),
                t.keys.name(m.key),
                t.txn_text(first),
                t.txn_text(ti)
            ),
        });
    };
    for (ti, tx) in t.txns.iter().enumerate() {
        let ti = ti as u32;
        let ms = &t.mops[tx.mop_start as usize..(tx.mop_start + tx.mop_len) as usize];
        for (i, m) in ms.iter().enumerate() {
            if m.kind != MopKind::Append {
                continue;
            }
            let later = ms[i + 1..]
                .iter()
                .any(|x| x.kind == MopKind::Append && x.key == m.key);
            let flags = match tx.status {
                Status::Fail => F_FAILED,
                _ => F_POSSIBLE,
            } | if later { F_INTERMEDIATE } else { 0 };
            match idx.pos_of(m.key, m.a) {
                Some(p) => {
                    let gi = idx.order(m.key).start + p as usize;
                    if writer[gi] != NONE {
                        dup(cases, writer[gi], ti, m);
                    } else {
                        writer[gi] = ti;
                        flag_of[gi] = flags;
                    }
                }
                None => others.push((ek(m.key, m.a), ti, flags)),
            }
        }
    }
    // Appends in no order: the first writer of each value counts.
    others.sort_unstable();
    let mut unobserved: Vec<(u32, u32)> = Vec::new();
    let mut kept: Vec<(u64, u32, u8)> = Vec::with_capacity(others.len());
    for o in others {
        if let Some(prev) = kept.last().filter(|p| p.0 == o.0) {
            let m = Mop {
                kind: MopKind::Append,
                key: (o.0 >> 32) as u32,
                a: o.0 as u32,
                b: 0,
            };
            dup(cases, prev.1, o.1, &m);
            continue;
        }
        if o.2 & F_POSSIBLE != 0 {
            unobserved.push(((o.0 >> 32) as u32, o.1));
        }
        kept.push(o);
    }
    idx.others = kept;
    let flags = flag_of;
    let mut first_failed = vec![NONE; nkeys];
    let mut first_garbage = vec![NONE; nkeys];
    for k in 0..nkeys {
        let r = idx.order(k as u32);
        for i in r.clone() {
            let p = (i - r.start) as u32;
            if writer[i] == NONE && first_garbage[k] == NONE {
                first_garbage[k] = p;
            }
            if flags[i] & F_FAILED != 0 && first_failed[k] == NONE {
                first_failed[k] = p;
            }
        }
    }
    unobserved.sort_unstable();
    let mut unobs_start = Vec::with_capacity(nkeys + 1);
    let mut unobs = Vec::with_capacity(unobserved.len());
    let mut j = 0;
    for k in 0..nkeys as u32 {
        unobs_start.push(unobs.len() as u32);
        while j < unobserved.len() && unobserved[j].0 == k {
            unobs.push(unobserved[j].1);
            j += 1;
        }
    }
    unobs_start.push(unobs.len() as u32);
    idx.writer = writer;
    idx.flags = flags;
    idx.unobs_start = unobs_start;
    idx.unobs = unobs;
    let idx = idx;

    // 4. ww edges along each order, and into unobserved appends.
    for k in 0..nkeys as u32 {
        let r = idx.order(k);
        for i in r.start + 1..r.end {
            let (f0, f1) = (idx.flags[i - 1], idx.flags[i]);
            if f0 & F_POSSIBLE != 0 && f1 & F_POSSIBLE != 0 && idx.writer[i - 1] != idx.writer[i] {
                edges.push(Rel::Ww, idx.writer[i - 1], idx.writer[i]);
            }
        }
        if r.end > r.start && idx.flags[r.end - 1] & F_POSSIBLE != 0 {
            let last = idx.writer[r.end - 1];
            for &u in idx.unobserved(k) {
                if u != last {
                    edges.push(Rel::Ww, last, u);
                }
            }
        }
        if first_failed[k as usize] != NONE {
            dirty_updates(t, &idx, k, cases);
        }
    }

    // 5. Reads: wr and rw edges, and the anomalies reads show.
    let mut incompatible_reported = vec![false; nkeys];
    let mut lost: Vec<(u32, u32, u32)> = Vec::new();
    for (ti, tx) in t.txns.iter().enumerate() {
        if tx.status != Status::Ok {
            continue;
        }
        let ti = ti as u32;
        let ms = &t.mops[tx.mop_start as usize..(tx.mop_start + tx.mop_len) as usize];
        // Does this transaction touch some key twice? Then check it
        // against itself (internal, future-read) and for lost updates.
        let mut twice = false;
        for (i, m) in ms.iter().enumerate() {
            if ms[..i].iter().any(|x| x.key == m.key) {
                twice = true;
                break;
            }
        }
        if twice {
            internal(t, ti, ms, cases);
            for (i, m) in ms.iter().enumerate() {
                let (bs, bn) = best[m.key as usize];
                if m.kind == MopKind::ReadList
                    && m.a != NONE
                    && m.b <= bn
                    && t.list(m) == &t.elems[bs as usize..(bs + m.b) as usize]
                    && !ms[..i].iter().any(|x| x.key == m.key)
                    && ms[i + 1..]
                        .iter()
                        .any(|x| x.key == m.key && x.kind == MopKind::Append)
                {
                    lost.push((m.key, m.b, ti));
                }
            }
        }
        for m in ms {
            if m.kind != MopKind::ReadList || m.a == NONE {
                continue;
            }
            let k = m.key as usize;
            let n = m.b;
            let l = t.list(m);
            let (bs, bn) = best[k];
            let compatible =
                bs == m.a || (n <= bn && l == &t.elems[bs as usize..(bs + n) as usize]);
            let end;
            if compatible && first_dup[k] == NONE {
                // Fast path: the read is the first n elements of the order.
                end = n;
                if first_failed[k] < n {
                    let p = idx.order(m.key).start + first_failed[k] as usize;
                    g1a(t, ti, m, idx.order[p], idx.writer[p], cases);
                }
                if first_garbage[k] < n {
                    let p = idx.order(m.key).start + first_garbage[k] as usize;
                    garbage(t, ti, m, idx.order[p], cases);
                }
                if n > 0 {
                    let p = idx.order(m.key).start + n as usize - 1;
                    wr_and_g1b(
                        t,
                        ti,
                        m,
                        idx.order[p],
                        idx.writer[p],
                        idx.flags[p],
                        edges,
                        cases,
                    );
                }
            } else {
                if !compatible && !incompatible_reported[k] {
                    incompatible_reported[k] = true;
                    let longest = &t.elems[bs as usize..(bs + bn) as usize];
                    cases.add("incompatible-order", || Case {
                        txns: vec![ti],
                        text: format!(
                            "{} read {} = {}, which is not a prefix of the longest read of {}, \
                             {}: no single order of appends explains both",
                            t.txn_text(ti),
                            t.keys.name(m.key),
                            t.list_text(l),
                            t.keys.name(m.key),
                            t.list_text(longest)
                        ),
                    });
                }
                // Slow path: element by element.
                seen.clear();
                let mut dup = false;
                for &e in l {
                    dup |= !seen.insert(e);
                    match idx.elem(m.key, e) {
                        None => garbage(t, ti, m, e, cases),
                        Some(x) if x.writer == NONE => garbage(t, ti, m, e, cases),
                        Some(x) if x.flags & F_FAILED != 0 => g1a(t, ti, m, e, x.writer, cases),
                        _ => {}
                    }
                }
                if dup {
                    duplicates(t, ti, m, cases);
                }
                end = idx.read_end(t, m);
                if let Some(&last) = l.last() {
                    if let Some(x) = idx.elem(m.key, last) {
                        wr_and_g1b(t, ti, m, last, x.writer, x.flags, edges, cases);
                    }
                }
            }
            if compatible && first_dup[k] != NONE && first_dup[k] < n {
                duplicates(t, ti, m, cases);
            }
            // rw: this read precedes whoever appended the next element.
            if end != NONE {
                match idx.next_writers(m.key, end) {
                    (Some(w), _) if w != ti => edges.push(Rel::Rw, ti, w),
                    (_, true) => {
                        for &u in idx.unobserved(m.key) {
                            if u != ti {
                                edges.push(Rel::Rw, ti, u);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    // 6. Lost updates: two committed transactions read the same state of
    // a key and both appended to it.
    lost.sort_unstable();
    for same in lost.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        if same.len() >= 2 {
            let group: Vec<u32> = same.iter().map(|x| x.2).collect();
            let (k, n) = (same[0].0, same[0].1);
            cases.add("lost-update", || Case {
                txns: group.clone(),
                text: format!(
                    "{} transactions read the same state of {} ({}) and then each \
                     appended to it, so one of them overwrote the other's update: {}",
                    group.len(),
                    t.keys.name(k),
                    match n {
                        0 => "empty".to_string(),
                        1 => "1 element".to_string(),
                        n => format!("{n} elements"),
                    },
                    group
                        .iter()
                        .map(|&g| t.txn_text(g))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            });
        }
    }
    idx
}

fn g1a(t: &Txns, ti: u32, m: &Mop, e: u32, w: u32, cases: &mut Cases) {
    cases.add("G1a", || Case {
        txns: vec![ti, w],
        text: format!(
            "{} read {} = {}, which includes {}, appended by a transaction that failed: {}",
            t.txn_text(ti),
            t.keys.name(m.key),
            t.list_text(t.list(m)),
            t.values.name(e),
            t.txn_text(w)
        ),
    });
}

fn garbage(t: &Txns, ti: u32, m: &Mop, e: u32, cases: &mut Cases) {
    cases.add("garbage-read", || Case {
        txns: vec![ti],
        text: format!(
            "{} read {} = {}, which includes {}, a value no transaction appended to {}",
            t.txn_text(ti),
            t.keys.name(m.key),
            t.list_text(t.list(m)),
            t.values.name(e),
            t.keys.name(m.key)
        ),
    });
}

fn duplicates(t: &Txns, ti: u32, m: &Mop, cases: &mut Cases) {
    cases.add("duplicate-elements", || Case {
        txns: vec![ti],
        text: format!(
            "{} read {} = {}, which shows the same appended element more than once",
            t.txn_text(ti),
            t.keys.name(m.key),
            t.list_text(t.list(m))
        ),
    });
}

#[allow(clippy::too_many_arguments)]
fn wr_and_g1b(
    t: &Txns,
    ti: u32,
    m: &Mop,
    last: u32,
    w: u32,
    flags: u8,
    edges: &mut Edges,
    cases: &mut Cases,
) {
    if w == NONE || w == ti {
        return;
    }
    if flags & F_POSSIBLE != 0 {
        edges.push(Rel::Wr, w, ti);
    }
    if flags & F_INTERMEDIATE != 0 {
        cases.add("G1b", || Case {
            txns: vec![ti, w],
            text: format!(
                "{} read {} = {}, which ends with {}, an intermediate append of {} (it appended \
                 to {} again afterwards)",
                t.txn_text(ti),
                t.keys.name(m.key),
                t.list_text(t.list(m)),
                t.values.name(last),
                t.txn_text(w),
                t.keys.name(m.key)
            ),
        });
    }
}

/// Elle's `dirty-update-cases`: along a key's order, a failed append
/// followed by a committed one.
fn dirty_updates(t: &Txns, idx: &AppendIndex, k: u32, cases: &mut Cases) {
    let r = idx.order(k);
    let status = |i: usize| t.txns[idx.writer[i] as usize].status;
    let mut t1: (Status, u32) = (Status::Ok, NONE);
    let mut vs: Vec<u32> = Vec::new();
    for i in r {
        if idx.writer[i] == NONE {
            continue;
        }
        let (s2, w2) = (status(i), idx.writer[i]);
        vs.push(idx.order[i]);
        match (t1.0, s2) {
            (Status::Fail, Status::Ok) => {
                let (w1, values) = (t1.1, vs.clone());
                cases.add("dirty-update", || Case {
                    txns: vec![w1, w2],
                    text: format!(
                        "{} appended {} to {} after the failed {} had appended {}: a committed \
                         write on top of an aborted one",
                        t.txn_text(w2),
                        t.values.name(*values.last().unwrap_or(&0)),
                        t.keys.name(k),
                        t.txn_text(w1),
                        t.list_text(&values[..values.len().saturating_sub(1)])
                    ),
                });
                t1 = (s2, w2);
                vs = vec![idx.order[i]];
            }
            (_, Status::Info) | (Status::Fail, Status::Fail) => {}
            _ => {
                t1 = (s2, w2);
                vs = vec![idx.order[i]];
            }
        }
    }
}

/// Elle's `op-int-case` and `op-future-read-case` for one transaction.
fn internal(t: &Txns, ti: u32, ms: &[Mop], cases: &mut Cases) {
    for (i, m) in ms.iter().enumerate() {
        if m.kind != MopKind::ReadList || m.a == NONE {
            continue;
        }
        let l = t.list(m);
        // Expected state: the last read of the key before this one, plus
        // the appends since; or, with no earlier read, ending with the
        // appends so far.
        let last_read = ms[..i]
            .iter()
            .rposition(|x| x.key == m.key && x.kind == MopKind::ReadList);
        let since = last_read.map_or(0, |j| j + 1);
        let appended: Vec<u32> = ms[since..i]
            .iter()
            .filter(|x| x.key == m.key && x.kind == MopKind::Append)
            .map(|x| x.a)
            .collect();
        let ok = match last_read {
            Some(j) => {
                let p = t.list(&ms[j]);
                l.len() == p.len() + appended.len()
                    && &l[..p.len()] == p
                    && l[p.len()..] == appended[..]
            }
            None => l.len() >= appended.len() && l[l.len() - appended.len()..] == appended[..],
        };
        if !ok {
            let expected = match last_read {
                Some(j) => {
                    let mut e = t.list(&ms[j]).to_vec();
                    e.extend(&appended);
                    t.list_text(&e)
                }
                None => format!("[... {}]", t.list_text(&appended).trim_matches(['[', ']'])),
            };
            cases.add("internal", || Case {
                txns: vec![ti],
                text: format!(
                    "{} read {} = {}, but its own earlier operations imply {}",
                    t.txn_text(ti),
                    t.keys.name(m.key),
                    t.list_text(l),
                    expected
                ),
            });
        }
        // Future read: it shows an element this transaction appends later.
        if let Some(f) = ms[i + 1..]
            .iter()
            .find(|x| x.key == m.key && x.kind == MopKind::Append && l.contains(&x.a))
        {
            cases.add("future-read", || Case {
                txns: vec![ti],
                text: format!(
                    "{} read {} = {}, which includes {}, which it only appends later",
                    t.txn_text(ti),
                    t.keys.name(m.key),
                    t.list_text(l),
                    t.values.name(f.a)
                ),
            });
        }
    }
}
