//! The dependency graph and the search for the shortest cycle of each
//! anomaly class.
//!
//! Edges are collected as packed `(from, to)` pairs per relation and turned
//! into one compressed adjacency array (CSR): about 13 bytes per edge, no
//! allocation per node. A valid history's graph is acyclic, so a linear
//! pass first *trims* it: nodes with no incoming edge, then (on what is
//! left) nodes with no outgoing edge, are removed until none is left. Only
//! the nodes that survive (those on or between cycles) go into a petgraph
//! graph, where Tarjan's algorithm finds the strongly connected components.
//!
//! In each component, as Elle's `elle/txn.clj` does, the anomaly classes are
//! searched from the most to the least severe, skipping a class already
//! implied by one found: G0 (ww edges only), G1c (ww and wr, at least one
//! wr), G-single-item (exactly one rw), G-nonadjacent-item (two or more rw,
//! never two in a row), G2-item (two or more rw), then each with process
//! edges (at least one) and with realtime edges (at least one). For each
//! class the component is first cut down to the edges the class may use,
//! and to the strongly connected parts of that subgraph holding every
//! relation the class needs; then a breadth-first search over (transaction,
//! state) pairs, where the state counts the rw edges and remembers whether
//! the path has the edges the class needs, starting with an edge of the
//! rarest needed relation, finds the shortest cycle of the class (Elle's
//! `bfs.clj` searches the same way, over paths instead of states, and keeps
//! the first cycle it finds rather than the shortest).
//!
//! A budget of search steps per component keeps big components bounded:
//! when it runs out, the component is reported as `cycle-search-timeout`
//! (the verdict becomes unknown unless something else is found) together
//! with one cycle found without constraints, classified as it is; a
//! component of more than 200,000 transactions gets that treatment at once
//! (the search keeps 64 states per transaction).

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use super::models;

/// A dependency between two transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rel {
    /// Write-write: the second overwrote (appended after) the first.
    Ww,
    /// Write-read: the second read what the first wrote.
    Wr,
    /// Read-write (anti-dependency): the first read a state the second
    /// then changed.
    Rw,
    /// Same process, one after the other.
    Process,
    /// The first completed before the second was invoked.
    Realtime,
}

impl Rel {
    pub const ALL: [Rel; 5] = [Rel::Ww, Rel::Wr, Rel::Rw, Rel::Process, Rel::Realtime];
    pub fn bit(self) -> u8 {
        1 << self as u8
    }
    pub fn name(self) -> &'static str {
        match self {
            Rel::Ww => "ww",
            Rel::Wr => "wr",
            Rel::Rw => "rw",
            Rel::Process => "process",
            Rel::Realtime => "realtime",
        }
    }
}

const WW: u8 = 1;
const WR: u8 = 2;
const RW: u8 = 4;
const PROCESS: u8 = 8;
const REALTIME: u8 = 16;

/// Edges as they are found, per relation, packed `from << 32 | to`.
#[derive(Default)]
pub(crate) struct Edges {
    lists: [Vec<u64>; 5],
}

impl Edges {
    #[inline]
    pub(crate) fn push(&mut self, rel: Rel, from: u32, to: u32) {
        if from != to {
            self.lists[rel as usize].push((from as u64) << 32 | to as u64);
        }
    }
    pub(crate) fn len(&self) -> usize {
        self.lists.iter().map(Vec::len).sum()
    }
}

/// Compressed adjacency: the out-edges of `u` are
/// `to[start[u]..start[u+1]]` with relation bits `rel[..]`.
pub(crate) struct Csr {
    start: Vec<usize>,
    to: Vec<u32>,
    rel: Vec<u8>,
}

impl Csr {
    /// Builds the adjacency of `n` nodes, consuming (and freeing) the
    /// edge lists one by one (a counting sort by source: no comparison
    /// sort of tens of millions of edges). An edge found twice (two keys
    /// relating the same pair) stays twice; the search does not mind.
    pub(crate) fn build(n: usize, mut edges: Edges) -> Csr {
        let mut start = vec![0usize; n + 1];
        for l in &edges.lists {
            for &e in l {
                start[(e >> 32) as usize + 1] += 1;
            }
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        let m = start[n];
        let mut fill = start.clone();
        let mut to = vec![0u32; m];
        let mut rel = vec![0u8; m];
        for (r, l) in edges.lists.iter_mut().enumerate() {
            for &e in l.iter() {
                let u = (e >> 32) as usize;
                to[fill[u]] = e as u32;
                rel[fill[u]] = 1 << r;
                fill[u] += 1;
            }
            *l = Vec::new();
        }
        Csr { start, to, rel }
    }

    pub(crate) fn edge_count(&self) -> usize {
        self.to.len()
    }

    fn out(&self, u: u32) -> std::ops::Range<usize> {
        self.start[u as usize]..self.start[u as usize + 1]
    }

    /// Nodes that may lie on a cycle: what is left after repeatedly
    /// removing nodes with no incoming, then no outgoing, edge.
    fn cycle_candidates(&self) -> Vec<u32> {
        let n = self.start.len() - 1;
        let mut indeg = vec![0u32; n];
        for &v in &self.to {
            indeg[v as usize] += 1;
        }
        let mut queue: Vec<u32> = (0..n as u32).filter(|&u| indeg[u as usize] == 0).collect();
        while let Some(u) = queue.pop() {
            for i in self.out(u) {
                let v = self.to[i] as usize;
                indeg[v] -= 1;
                if indeg[v] == 0 {
                    queue.push(v as u32);
                }
            }
        }
        let rest: Vec<u32> = (0..n as u32).filter(|&u| indeg[u as usize] > 0).collect();
        if rest.is_empty() {
            return rest;
        }
        // Backwards, on the rest only.
        let mut local = vec![u32::MAX; n];
        for (i, &u) in rest.iter().enumerate() {
            local[u as usize] = i as u32;
        }
        let mut outdeg = vec![0u32; rest.len()];
        let mut preds: Vec<Vec<u32>> = vec![Vec::new(); rest.len()];
        for (i, &u) in rest.iter().enumerate() {
            for j in self.out(u) {
                let v = local[self.to[j] as usize];
                if v != u32::MAX {
                    outdeg[i] += 1;
                    preds[v as usize].push(i as u32);
                }
            }
        }
        let mut queue: Vec<u32> = (0..rest.len() as u32)
            .filter(|&i| outdeg[i as usize] == 0)
            .collect();
        while let Some(i) = queue.pop() {
            for &p in &preds[i as usize] {
                outdeg[p as usize] -= 1;
                if outdeg[p as usize] == 0 {
                    queue.push(p);
                }
            }
        }
        rest.iter()
            .enumerate()
            .filter(|(i, _)| outdeg[*i] > 0)
            .map(|(_, &u)| u)
            .collect()
    }
}

/// A cycle found: its class and its edges in order (the last edge returns
/// to the first transaction).
#[derive(Clone, Debug)]
pub(crate) struct Cycle {
    pub name: String,
    pub steps: Vec<(u32, u32, Rel)>,
}

/// What the cycle search found.
#[derive(Default)]
pub(crate) struct Search {
    pub cycles: Vec<Cycle>,
    /// Components whose search ran out of budget: (size, class searched).
    pub timeouts: Vec<(usize, String)>,
    /// Nodes left after trimming, and components of two or more.
    pub candidates: usize,
    pub components: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Base {
    G0,
    G1c,
    GSingle,
    GNonadjacent,
    G2Item,
}

#[derive(Clone, Copy)]
struct Spec {
    base: Base,
    variant: u8,
}

impl Spec {
    fn name(&self) -> String {
        let b = match self.base {
            Base::G0 => "G0",
            Base::G1c => "G1c",
            Base::GSingle => "G-single-item",
            Base::GNonadjacent => "G-nonadjacent-item",
            Base::G2Item => "G2-item",
        };
        match self.variant {
            PROCESS => format!("{b}-process"),
            REALTIME => format!("{b}-realtime"),
            _ => b.to_string(),
        }
    }
    fn allowed(&self) -> u8 {
        let data = match self.base {
            Base::G0 => WW,
            Base::G1c => WW | WR,
            _ => WW | WR | RW,
        };
        data | self.variant
    }
}

/// The classes in the order they are searched (most severe first).
fn specs() -> Vec<Spec> {
    let bases = [
        Base::G0,
        Base::G1c,
        Base::GSingle,
        Base::GNonadjacent,
        Base::G2Item,
    ];
    let mut out = Vec::new();
    for variant in [0, PROCESS, REALTIME] {
        for base in bases {
            out.push(Spec { base, variant });
        }
    }
    out
}

/// The class of a cycle from its edges, as Elle's `cycle-explainer` does.
pub(crate) fn classify(steps: &[(u32, u32, Rel)]) -> String {
    let count = |r: Rel| steps.iter().filter(|s| s.2 == r).count();
    let (rw, wr) = (count(Rel::Rw), count(Rel::Wr));
    let n = steps.len();
    let adjacent = (0..n).any(|i| steps[i].2 == Rel::Rw && steps[(i + 1) % n].2 == Rel::Rw);
    let base = if rw == 1 {
        "G-single-item"
    } else if rw > 1 {
        if adjacent {
            "G2-item"
        } else {
            "G-nonadjacent-item"
        }
    } else if wr > 0 {
        "G1c"
    } else {
        "G0"
    };
    if count(Rel::Realtime) > 0 {
        format!("{base}-realtime")
    } else if count(Rel::Process) > 0 {
        format!("{base}-process")
    } else {
        base.to_string()
    }
}

// Search state bits.
const S_RW1: u8 = 1; // one rw so far
const S_RW2: u8 = 2; // two or more
const S_VAR: u8 = 4; // has a variant edge
const S_WR: u8 = 8; // has a wr edge
const S_LAST_RW: u8 = 16;
const S_FIRST_RW: u8 = 32;
const STATES: usize = 64;

fn rel_of_bit(bit: u8) -> Rel {
    Rel::ALL[bit.trailing_zeros() as usize]
}

/// Components larger than this are not searched class by class.
const MAX_SEARCH_NODES: usize = 200_000;

/// One strongly connected component, with local ids.
struct Component {
    /// local -> global
    nodes: Vec<u32>,
    start: Vec<usize>,
    to: Vec<u32>,
    rel: Vec<u8>,
}

struct Searcher<'a> {
    c: &'a Component,
    stamp: Vec<u32>,
    parent: Vec<u32>,
    via: Vec<u8>,
    gen: u32,
    steps: u64,
    budget: u64,
}

enum Outcome {
    Found(Vec<(u32, u32, Rel)>),
    None,
    OutOfBudget,
}

impl<'a> Searcher<'a> {
    fn new(c: &'a Component, budget: u64) -> Searcher<'a> {
        let n = c.nodes.len() * STATES;
        Searcher {
            c,
            stamp: vec![0; n],
            parent: vec![0; n],
            via: vec![0; n],
            gen: 0,
            steps: 0,
            budget,
        }
    }

    fn accepts(spec: &Spec, s: u8) -> bool {
        let rw_ok = match spec.base {
            Base::G0 | Base::G1c => s & (S_RW1 | S_RW2) == 0,
            Base::GSingle => s & S_RW1 != 0 && s & S_RW2 == 0,
            Base::GNonadjacent => s & S_RW2 != 0 && !(s & S_LAST_RW != 0 && s & S_FIRST_RW != 0),
            Base::G2Item => s & S_RW2 != 0,
        };
        rw_ok && (spec.variant == 0 || s & S_VAR != 0) && (spec.base != Base::G1c || s & S_WR != 0)
    }

    /// The next state after taking an edge of relation `bit`, or None if
    /// the class forbids it. `first`: this is the path's first edge.
    fn step(spec: &Spec, s: u8, bit: u8, first: bool) -> Option<u8> {
        if spec.allowed() & bit == 0 {
            return None;
        }
        let mut n = s & !S_LAST_RW;
        if bit == RW {
            if spec.base == Base::GNonadjacent && s & S_LAST_RW != 0 && !first {
                return None;
            }
            if s & S_RW1 != 0 || s & S_RW2 != 0 {
                if spec.base == Base::GSingle {
                    return None;
                }
                n = (n & !S_RW1) | S_RW2;
            } else {
                n |= S_RW1;
            }
            n |= S_LAST_RW;
            if first {
                n |= S_FIRST_RW;
            }
        }
        if bit == spec.variant {
            n |= S_VAR;
        }
        if bit == WR {
            n |= S_WR;
        }
        Some(n)
    }

    /// The shortest cycle of this class through `s` shorter than `bound`,
    /// in `c` (the component filtered for the class), whose first edge is
    /// of relation `need` (if not 0).
    fn from(&mut self, c: &Component, spec: &Spec, s: u32, need: u8, bound: usize) -> Outcome {
        self.gen += 1;
        let gen = self.gen;
        let mut layer: Vec<u32> = vec![s * STATES as u32];
        let root = s * STATES as u32;
        self.stamp[root as usize] = gen;
        let mut depth = 0;
        while !layer.is_empty() && depth + 1 < bound {
            let mut next = Vec::new();
            for &x in &layer {
                let (u, st) = (x / STATES as u32, (x % STATES as u32) as u8);
                for i in c.start[u as usize]..c.start[u as usize + 1] {
                    self.steps += 1;
                    if self.steps > self.budget {
                        return Outcome::OutOfBudget;
                    }
                    let v = c.to[i];
                    if depth == 0 && need != 0 && c.rel[i] != need {
                        continue;
                    }
                    let Some(ns) = Self::step(spec, st, c.rel[i], depth == 0) else {
                        continue;
                    };
                    if v == s {
                        if Self::accepts(spec, ns) {
                            // Walk back.
                            let mut path = vec![(u, v, rel_of_bit(c.rel[i]))];
                            let mut y = x;
                            while y != root {
                                let p = self.parent[y as usize];
                                path.push((
                                    p / STATES as u32,
                                    y / STATES as u32,
                                    rel_of_bit(self.via[y as usize]),
                                ));
                                y = p;
                            }
                            path.reverse();
                            return Outcome::Found(
                                path.into_iter()
                                    .map(|(a, b, r)| (c.nodes[a as usize], c.nodes[b as usize], r))
                                    .collect(),
                            );
                        }
                        continue;
                    }
                    let y = v * STATES as u32 + ns as u32;
                    if self.stamp[y as usize] != gen {
                        self.stamp[y as usize] = gen;
                        self.parent[y as usize] = x;
                        self.via[y as usize] = c.rel[i];
                        next.push(y);
                    }
                }
            }
            layer = next;
            depth += 1;
        }
        Outcome::None
    }

    /// The shortest cycle of this class in the component.
    ///
    /// First the component is cut down to what such a cycle can use: only
    /// the relations the class allows, and only the strongly connected
    /// parts of that subgraph that contain every relation the class needs
    /// (an rw edge, a wr edge for G1c, a process or realtime edge for the
    /// variants). Often nothing is left and no search is needed. Then a
    /// breadth-first search from the source of every edge of the rarest
    /// needed relation, taking that edge first (every cycle of the class
    /// can be rotated to start so), keeps the shortest cycle.
    fn shortest(&mut self, spec: &Spec) -> Outcome {
        let needs_all = spec.variant
            | match spec.base {
                Base::G0 => 0,
                Base::G1c => WR,
                _ => RW,
            };
        let c = self.c;
        let n = c.nodes.len();
        let allowed = spec.allowed();
        let mut pg: DiGraph<(), ()> = DiGraph::with_capacity(n, c.to.len());
        for _ in 0..n {
            pg.add_node(());
        }
        for u in 0..n {
            for i in c.start[u]..c.start[u + 1] {
                if c.rel[i] & allowed != 0 {
                    pg.add_edge(NodeIndex::new(u), NodeIndex::new(c.to[i] as usize), ());
                }
            }
        }
        let mut part = vec![usize::MAX; n];
        for (k, scc) in petgraph::algo::tarjan_scc(&pg).into_iter().enumerate() {
            if scc.len() > 1 {
                for x in scc {
                    part[x.index()] = k;
                }
            }
        }
        let internal = |u: usize, i: usize| {
            c.rel[i] & allowed != 0 && part[u] != usize::MAX && part[u] == part[c.to[i] as usize]
        };
        let mut present: crate::model::FxHashMap<usize, u8> = Default::default();
        for (u, &p) in part.iter().enumerate() {
            for i in c.start[u]..c.start[u + 1] {
                if internal(u, i) {
                    *present.entry(p).or_insert(0) |= c.rel[i];
                }
            }
        }
        let ok = |u: usize| {
            part[u] != usize::MAX
                && present
                    .get(&part[u])
                    .is_some_and(|&p| p & needs_all == needs_all)
        };
        let mut f = Component {
            nodes: c.nodes.clone(),
            start: Vec::with_capacity(n + 1),
            to: Vec::new(),
            rel: Vec::new(),
        };
        for u in 0..n {
            f.start.push(f.to.len());
            if !ok(u) {
                continue;
            }
            for i in c.start[u]..c.start[u + 1] {
                if internal(u, i) {
                    f.to.push(c.to[i]);
                    f.rel.push(c.rel[i]);
                }
            }
        }
        f.start.push(f.to.len());
        if f.to.is_empty() {
            return Outcome::None;
        }
        // Start from the needed relation with the fewest edges.
        let count = |bit: u8| f.rel.iter().filter(|&&r| r == bit).count();
        let need = [WR, RW, PROCESS, REALTIME]
            .into_iter()
            .filter(|&b| needs_all & b != 0)
            .min_by_key(|&b| count(b))
            .unwrap_or(0);
        let mut best: Option<Vec<(u32, u32, Rel)>> = None;
        for u in 0..n as u32 {
            let r = f.start[u as usize]..f.start[u as usize + 1];
            if r.is_empty() || (need != 0 && !f.rel[r].contains(&need)) {
                continue;
            }
            let bound = best.as_ref().map_or(usize::MAX, Vec::len);
            if bound <= 2 {
                break;
            }
            match self.from(&f, spec, u, need, bound) {
                Outcome::Found(p) => best = Some(p),
                Outcome::None => {}
                Outcome::OutOfBudget => return Outcome::OutOfBudget,
            }
        }
        match best {
            Some(p) => Outcome::Found(p),
            None => Outcome::None,
        }
    }

    /// Some cycle of the component, without constraints.
    fn any_cycle(&self) -> Vec<(u32, u32, Rel)> {
        any_cycle(self.c)
    }
}

/// Some cycle of a component, without constraints: a breadth-first search
/// back to its first transaction.
fn any_cycle(c: &Component) -> Vec<(u32, u32, Rel)> {
    let n = c.nodes.len();
    let mut parent = vec![u32::MAX; n];
    let mut via = vec![0u8; n];
    let mut queue = std::collections::VecDeque::from([0u32]);
    while let Some(u) = queue.pop_front() {
        for i in c.start[u as usize]..c.start[u as usize + 1] {
            let v = c.to[i];
            if v == 0 {
                let mut path = vec![(u, 0, rel_of_bit(c.rel[i]))];
                let mut y = u;
                while y != 0 {
                    let p = parent[y as usize];
                    path.push((p, y, rel_of_bit(via[y as usize])));
                    y = p;
                }
                path.reverse();
                return path
                    .into_iter()
                    .map(|(a, b, r)| (c.nodes[a as usize], c.nodes[b as usize], r))
                    .collect();
            }
            if parent[v as usize] == u32::MAX {
                parent[v as usize] = u;
                via[v as usize] = c.rel[i];
                queue.push_back(v);
            }
        }
    }
    Vec::new()
}

/// The same cycle, starting from its earliest transaction (so that T1 is
/// the first in the history).
fn rotate(mut steps: Vec<(u32, u32, Rel)>) -> Vec<(u32, u32, Rel)> {
    if let Some(i) = (0..steps.len()).min_by_key(|&i| steps[i].0) {
        steps.rotate_left(i);
    }
    steps
}

/// Finds the cycles of every class in every strongly connected component.
/// `budget`: search steps allowed per component.
pub(crate) fn search(g: &Csr, budget: u64) -> Search {
    let mut out = Search::default();
    let cand = g.cycle_candidates();
    out.candidates = cand.len();
    if cand.is_empty() {
        return out;
    }
    // petgraph on the candidates only.
    let mut local = crate::model::FxHashMap::default();
    let mut pg: DiGraph<u32, u8> = DiGraph::with_capacity(cand.len(), cand.len() * 2);
    for &u in &cand {
        local.insert(u, pg.add_node(u));
    }
    for &u in &cand {
        for i in g.out(u) {
            if let Some(&v) = local.get(&g.to[i]) {
                pg.add_edge(local[&u], v, g.rel[i]);
            }
        }
    }
    let mut sccs: Vec<Vec<NodeIndex>> = petgraph::algo::tarjan_scc(&pg)
        .into_iter()
        .filter(|c| c.len() > 1)
        .collect();
    // Deterministic order: by smallest transaction.
    for c in &mut sccs {
        c.sort_by_key(|&n| pg[n]);
    }
    sccs.sort_by_key(|c| pg[c[0]]);
    out.components = sccs.len();
    let specs = specs();
    for scc in sccs {
        let mut pos = crate::model::FxHashMap::default();
        for (i, &n) in scc.iter().enumerate() {
            pos.insert(n, i as u32);
        }
        let mut comp = Component {
            nodes: scc.iter().map(|&n| pg[n]).collect(),
            start: Vec::with_capacity(scc.len() + 1),
            to: Vec::new(),
            rel: Vec::new(),
        };
        for &n in &scc {
            comp.start.push(comp.to.len());
            let mut es: Vec<(u32, u8)> = pg
                .edges(n)
                .filter_map(|e| {
                    use petgraph::visit::EdgeRef;
                    pos.get(&e.target()).map(|&t| (t, *e.weight()))
                })
                .collect();
            es.sort_unstable();
            for (t, r) in es {
                comp.to.push(t);
                comp.rel.push(r);
            }
        }
        comp.start.push(comp.to.len());
        if comp.nodes.len() > MAX_SEARCH_NODES {
            // Too big to search class by class (the search keeps 64
            // states per transaction): say so, and show one cycle.
            out.timeouts.push((comp.nodes.len(), "any".to_string()));
            let steps = rotate(any_cycle(&comp));
            out.cycles.push(Cycle {
                name: classify(&steps),
                steps,
            });
            continue;
        }
        let mut s = Searcher::new(&comp, budget);
        let mut found: Vec<String> = Vec::new();
        for spec in &specs {
            let name = spec.name();
            if models::all_implied_anomalies(found.iter().map(String::as_str))
                .contains(name.as_str())
            {
                continue;
            }
            match s.shortest(spec) {
                Outcome::Found(steps) => {
                    found.push(name.clone());
                    out.cycles.push(Cycle {
                        name,
                        steps: rotate(steps),
                    });
                }
                Outcome::None => {}
                Outcome::OutOfBudget => {
                    out.timeouts.push((comp.nodes.len(), name));
                    let steps = rotate(s.any_cycle());
                    let name = classify(&steps);
                    if !found.contains(&name) {
                        out.cycles.push(Cycle { name, steps });
                    }
                    break;
                }
            }
        }
    }
    out
}
