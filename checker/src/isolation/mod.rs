//! Transactional isolation checking, after Elle (Kingsbury and Alvaro,
//! "Elle: Inferring Isolation Anomalies from Experimental Observations",
//! and jepsen-io/elle).
//!
//! The input is a history of transactions: client operations with
//! `f = "txn"` whose value is a list of micro-operations, either
//! list-append (`["append", k, v]`, `["r", k, [v...]]`) or rw-register
//! (`["w", k, v]`, `["r", k, v]`). From what the reads saw, the checker
//! infers dependencies between transactions (write-write, write-read,
//! read-write, plus process order and real-time order), looks for cycles,
//! classifies each as Adya's anomalies (G0, G1c, G-single, G2...) and tells
//! which consistency models the history rules out. Non-client events and
//! client operations other than `txn` are ignored.
//!
//! ```
//! use checker::history::History;
//! use checker::isolation::{self, Consistency, IsoOptions, IsoVerdict};
//!
//! // T1 appends 1 to x; T2 then reads x and does not see it.
//! let h = History::from_jsonl(
//!     r#"{"process":0,"type":"invoke","f":"txn","value":[["append","x",1]]}
//! {"process":0,"type":"ok","f":"txn","value":[["append","x",1]]}
//! {"process":1,"type":"invoke","f":"txn","value":[["r","x",null]]}
//! {"process":1,"type":"ok","f":"txn","value":[["r","x",[]]]}"#,
//! )
//! .unwrap();
//! let opts = IsoOptions { consistency: Consistency::StrictSerializable, ..IsoOptions::default() };
//! let r = isolation::check(&h, &opts).unwrap();
//! assert_eq!(r.verdict, IsoVerdict::Invalid);
//! assert!(r.has("G-single-item-realtime"));
//! // Serializable allows it (T2 can be ordered first).
//! let opts = IsoOptions { consistency: Consistency::Serializable, ..IsoOptions::default() };
//! assert_eq!(isolation::check(&h, &opts).unwrap().verdict, IsoVerdict::Valid);
//! ```
//!
//! Layout, in data-flow order: [`txns`] (the compact transaction form and
//! the reader), [`append`] and [`register`] (inference per data model),
//! [`graph`] (edges, trimming, components, shortest cycles), [`models`]
//! (Elle's model and anomaly lattices), [`report`] (HTML), [`gen`]
//! (histories for tests and the benchmark).
//!
//! Anomaly names are Elle's: cycles over item reads are `G-single-item`,
//! `G-nonadjacent-item` and `G2-item` (Elle's lattice makes a
//! `G-single-item` also a `G-single`; [`IsoResult::has`] follows these
//! implications).

pub mod append;
pub mod gen;
pub mod graph;
pub mod models;
pub mod register;
pub mod report;
pub mod txns;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::formats::ParseError;
use crate::history::History;
use crate::model::FxHashMap;

pub use graph::Rel;
pub use report::html;
pub use txns::{Status, TxnModel, Txns};

use graph::{Csr, Edges};

/// The consistency models a history can be checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consistency {
    ReadUncommitted,
    ReadCommitted,
    RepeatableRead,
    SnapshotIsolation,
    Serializable,
    StrongSessionSnapshotIsolation,
    StrongSnapshotIsolation,
    StrongSessionSerializable,
    StrictSerializable,
}

impl Consistency {
    pub const ALL: [Consistency; 9] = [
        Consistency::ReadUncommitted,
        Consistency::ReadCommitted,
        Consistency::RepeatableRead,
        Consistency::SnapshotIsolation,
        Consistency::Serializable,
        Consistency::StrongSessionSnapshotIsolation,
        Consistency::StrongSnapshotIsolation,
        Consistency::StrongSessionSerializable,
        Consistency::StrictSerializable,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Consistency::ReadUncommitted => "read-uncommitted",
            Consistency::ReadCommitted => "read-committed",
            Consistency::RepeatableRead => "repeatable-read",
            Consistency::SnapshotIsolation => "snapshot-isolation",
            Consistency::Serializable => "serializable",
            Consistency::StrongSessionSnapshotIsolation => "strong-session-snapshot-isolation",
            Consistency::StrongSnapshotIsolation => "strong-snapshot-isolation",
            Consistency::StrongSessionSerializable => "strong-session-serializable",
            Consistency::StrictSerializable => "strict-serializable",
        }
    }

    /// Accepts the names above and Elle's canonical ones (`PL-2`...).
    pub fn by_name(s: &str) -> Option<Consistency> {
        let s = models::friendly(s);
        let s = if s == "strong-serializable" {
            "strict-serializable"
        } else {
            s
        };
        Consistency::ALL.into_iter().find(|c| c.name() == s)
    }

    /// Anomalies that rule this model out.
    pub fn prohibits(self) -> BTreeSet<&'static str> {
        models::anomalies_prohibited_by(self.name())
    }
}

/// What to check, and the search bound.
#[derive(Clone, Debug)]
pub struct IsoOptions {
    /// The model the history should satisfy. Default: strict-serializable.
    pub consistency: Consistency,
    /// The data model; `None` detects it (list-append if any micro-op is an
    /// append or reads a list, else rw-register).
    pub txn_model: Option<TxnModel>,
    /// rw-register only: assume writes follow reads within a transaction,
    /// to infer more version orders (Elle's `:wfr-keys?`). Default off.
    pub wfr_keys: bool,
    /// rw-register only: assume each process sees each key's versions in
    /// order (Elle's `:sequential-keys?`). Default off.
    pub sequential_keys: bool,
    /// rw-register only: assume each key is linearizable, so its versions
    /// follow real time (Elle's `:linearizable-keys?`). Default off.
    pub linearizable_keys: bool,
    /// Search steps (edges followed) allowed per strongly connected
    /// component before its search gives up as `cycle-search-timeout`
    /// (verdict unknown unless an anomaly is found anyway). A step budget
    /// rather than a time limit, so that results are deterministic.
    pub max_search_steps: u64,
}

impl Default for IsoOptions {
    fn default() -> Self {
        IsoOptions {
            consistency: Consistency::StrictSerializable,
            txn_model: None,
            wfr_keys: false,
            sequential_keys: false,
            linearizable_keys: false,
            max_search_steps: 20_000_000,
        }
    }
}

/// The answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IsoVerdict {
    /// No anomaly the model forbids.
    Valid,
    /// At least one anomaly the model forbids.
    Invalid,
    /// Nothing forbidden found, but the check could not be completed
    /// (`unknown_reason` says why).
    Unknown,
}

impl IsoVerdict {
    pub fn name(self) -> &'static str {
        match self {
            IsoVerdict::Valid => "valid",
            IsoVerdict::Invalid => "invalid",
            IsoVerdict::Unknown => "unknown",
        }
    }
}

/// A transaction as shown in an explanation.
#[derive(Clone, Debug, Serialize)]
pub struct TxnView {
    /// `T1`, `T2`... within one anomaly.
    pub name: String,
    /// The `index` of the invocation event.
    pub index: u64,
    pub process: String,
    pub status: String,
    /// Micro-ops as Elle prints them: `[:append x 1]`, `[:r x [1 2]]`.
    pub mops: Vec<String>,
}

/// One edge of a cycle, and why it exists.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub from: String,
    pub to: String,
    pub rel: Rel,
    pub key: Option<String>,
    pub why: String,
}

/// One anomaly found.
#[derive(Clone, Debug, Serialize)]
pub struct Anomaly {
    /// Elle's name: `G0`, `G1c-process`, `G-single-item-realtime`, `G1a`,
    /// `incompatible-order`...
    pub name: String,
    /// Whether the requested model forbids it.
    pub prohibited: bool,
    pub txns: Vec<TxnView>,
    /// For a cycle: its edges in order (the last returns to the first
    /// transaction). Empty for other anomalies.
    pub steps: Vec<Step>,
    /// The whole explanation, as text.
    pub explanation: String,
}

/// Sizes, for the curious and for the benchmark.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IsoStats {
    pub txns: usize,
    pub ok: usize,
    pub info: usize,
    pub fail: usize,
    pub edges: usize,
    /// Transactions left after trimming the acyclic part of the graph.
    pub cycle_candidates: usize,
    /// Strongly connected components of two or more transactions.
    pub components: usize,
}

/// The result of [`check`].
#[derive(Clone, Debug, Serialize)]
pub struct IsoResult {
    pub verdict: IsoVerdict,
    pub consistency: Consistency,
    pub txn_model: TxnModel,
    /// Anomaly types found that the model forbids, or that make the answer
    /// unknown (Elle's `:anomaly-types`), sorted.
    pub anomaly_types: Vec<String>,
    /// Every anomaly found (at most 8 examples per type; `counts` has the
    /// totals), forbidden ones first.
    pub anomalies: Vec<Anomaly>,
    pub counts: BTreeMap<String, usize>,
    /// The weakest models the anomalies found rule out (Elle's `:not`).
    pub not: Vec<String>,
    /// The stronger models also ruled out (Elle's `:also-not`).
    pub also_not: Vec<String>,
    /// The strongest of [`Consistency::ALL`] that the history is still
    /// consistent with, among those this check could judge (realtime edges
    /// are only inferred when the requested model needs them, process
    /// edges likewise). Empty when the check was incomplete.
    pub consistent_with: Vec<String>,
    pub unknown_reason: Option<String>,
    pub stats: IsoStats,
}

impl IsoResult {
    /// Whether an anomaly of this type was found, or one that implies it
    /// (a `G-single-item` is also a `G-single`, a `G0` also a `G1c`...).
    pub fn has(&self, name: &str) -> bool {
        models::all_implied_anomalies(self.counts.keys().map(String::as_str)).contains(name)
    }

    /// Every anomaly found, explained in words.
    pub fn explain(&self) -> String {
        let mut s = format!(
            "{}: {} ({}, {} transactions: {} ok, {} info, {} fail)\n",
            self.consistency.name(),
            self.verdict.name(),
            self.txn_model.name(),
            self.stats.txns,
            self.stats.ok,
            self.stats.info,
            self.stats.fail
        );
        if let Some(r) = &self.unknown_reason {
            s += &format!("unknown: {r}\n");
        }
        if !self.not.is_empty() {
            s += &format!("not {}", self.not.join(", "));
            if !self.also_not.is_empty() {
                s += &format!("; also not {}", self.also_not.join(", "));
            }
            s += "\n";
        }
        if !self.consistent_with.is_empty() {
            s += &format!("consistent with {}\n", self.consistent_with.join(", "));
        }
        for (name, n) in &self.counts {
            let shown = self.anomalies.iter().filter(|a| &a.name == name).count();
            if *n > shown {
                s += &format!("{name}: {n} found, {shown} shown\n");
            }
        }
        for a in &self.anomalies {
            s += &format!(
                "\n{}{}:\n{}\n",
                a.name,
                if a.prohibited {
                    format!(" (forbidden by {})", self.consistency.name())
                } else {
                    " (allowed by the requested model)".to_string()
                },
                indent(&a.explanation)
            );
        }
        s
    }
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// At most this many examples of each anomaly type are kept.
const MAX_CASES: usize = 8;

/// A non-cycle anomaly while it is being collected.
pub(crate) struct Case {
    pub txns: Vec<u32>,
    pub text: String,
}

#[derive(Default)]
pub(crate) struct Cases {
    list: Vec<(&'static str, Case)>,
    counts: BTreeMap<&'static str, usize>,
}

impl Cases {
    pub(crate) fn add(&mut self, name: &'static str, f: impl FnOnce() -> Case) {
        let n = self.counts.entry(name).or_insert(0);
        *n += 1;
        if *n <= MAX_CASES {
            self.list.push((name, f()));
        }
    }
}

/// Anomalies that make the answer unknown rather than invalid.
const UNKNOWN_TYPES: [&str; 4] = [
    "empty-transaction-graph",
    "cycle-search-timeout",
    "duplicate-appends",
    "duplicate-writes",
];

/// Checks a history (see the module documentation for what is read).
/// Errors: a `txn` whose value is not a list of micro-ops of the data
/// model, or a completion with no invocation.
pub fn check(history: &History, opts: &IsoOptions) -> Result<IsoResult, ParseError> {
    let t = Txns::from_history(history, opts.txn_model)?;
    Ok(check_txns(&t, opts))
}

enum Index {
    Append(append::AppendIndex),
    Register(register::RegisterIndex),
}

/// Checks transactions already in compact form (the benchmark's entry
/// point; [`check`] reads a [`History`] into this form first).
pub fn check_txns(t: &Txns, opts: &IsoOptions) -> IsoResult {
    let prohibited = opts.consistency.prohibits();
    let need_realtime = prohibited.iter().any(|a| a.ends_with("-realtime"));
    let need_process = !need_realtime && prohibited.iter().any(|a| a.ends_with("-process"));

    let mut cases = Cases::default();
    let mut edges = Edges::default();
    let index = match t.model {
        TxnModel::ListAppend => Index::Append(append::analyze(t, &mut cases, &mut edges)),
        TxnModel::RwRegister => {
            let assume = register::Assume {
                wfr: opts.wfr_keys,
                sequential: opts.sequential_keys,
                linearizable: opts.linearizable_keys,
            };
            Index::Register(register::analyze(t, assume, &mut cases, &mut edges))
        }
    };
    if need_realtime {
        realtime_edges(t, &mut edges);
    } else if need_process {
        process_edges(t, &mut edges);
    }
    let mut stats = IsoStats {
        txns: t.txns.len(),
        ok: t.txns.iter().filter(|x| x.status == Status::Ok).count(),
        info: t.txns.iter().filter(|x| x.status == Status::Info).count(),
        fail: t.txns.iter().filter(|x| x.status == Status::Fail).count(),
        edges: edges.len(),
        ..IsoStats::default()
    };
    if edges.len() == 0 {
        cases.add("empty-transaction-graph", || Case {
            txns: Vec::new(),
            text: "no transaction depends on another (no two touch a common key with a read \
                   that shows the order, and no order of processes or real time applies): \
                   there is nothing to check"
                .into(),
        });
    }
    let csr = Csr::build(t.txns.len(), edges);
    stats.edges = csr.edge_count();
    let search = graph::search(&csr, opts.max_search_steps);
    stats.cycle_candidates = search.candidates;
    stats.components = search.components;
    for (size, spec) in &search.timeouts {
        let (size, spec) = (*size, spec.clone());
        cases.add("cycle-search-timeout", || Case {
            txns: Vec::new(),
            text: format!(
                "the search for {spec} cycles in a strongly connected component of {size} \
                 transactions ran out of its budget of {} steps (raise max_search_steps); one \
                 cycle of the component is shown instead",
                opts.max_search_steps
            ),
        });
    }

    // Assemble: counts, anomalies, verdict.
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (name, n) in &cases.counts {
        counts.insert(name.to_string(), *n);
    }
    for c in &search.cycles {
        *counts.entry(c.name.clone()).or_insert(0) += 1;
    }
    let mut anomalies: Vec<Anomaly> = Vec::new();
    for c in &search.cycles {
        anomalies.push(explain_cycle(t, &index, c, &prohibited));
    }
    for (name, case) in &cases.list {
        let txns = case
            .txns
            .iter()
            .enumerate()
            .map(|(i, &x)| view(t, x, &format!("T{}", i + 1)))
            .collect();
        anomalies.push(Anomaly {
            name: name.to_string(),
            prohibited: prohibited.contains(name),
            txns,
            steps: Vec::new(),
            explanation: case.text.clone(),
        });
    }
    // Forbidden first, then by name; stable within a name.
    anomalies.sort_by(|a, b| (!a.prohibited, &a.name).cmp(&(!b.prohibited, &b.name)));

    let found: BTreeSet<&str> = counts.keys().map(String::as_str).collect();
    let bad: Vec<String> = found
        .iter()
        .filter(|a| prohibited.contains(**a))
        .map(|a| a.to_string())
        .collect();
    let unknown: Vec<&str> = found
        .iter()
        .copied()
        .filter(|a| UNKNOWN_TYPES.contains(a))
        .collect();
    let mut anomaly_types: Vec<String> = bad.clone();
    anomaly_types.extend(unknown.iter().map(|s| s.to_string()));
    anomaly_types.sort();
    let verdict = if !bad.is_empty() {
        IsoVerdict::Invalid
    } else if !unknown.is_empty() {
        IsoVerdict::Unknown
    } else {
        IsoVerdict::Valid
    };
    let unknown_reason = if verdict == IsoVerdict::Unknown {
        Some(
            unknown
                .iter()
                .map(|u| match *u {
                    "empty-transaction-graph" => {
                        "no transaction depends on another, there is nothing to check \
                         (empty-transaction-graph)"
                            .to_string()
                    }
                    "cycle-search-timeout" => format!(
                        "the cycle search ran out of budget in {} component(s) \
                         (cycle-search-timeout; raise max_search_steps)",
                        search.timeouts.len()
                    ),
                    other => format!(
                        "{other}: values are not unique per key, so no order can be inferred"
                    ),
                })
                .collect::<Vec<_>>()
                .join("; "),
        )
    } else {
        None
    };
    let (not, also_not) = models::boundary(found.iter().copied());
    let consistent_with = if unknown.is_empty() {
        let judged: Vec<Consistency> = Consistency::ALL
            .into_iter()
            .filter(|c| {
                let p = c.prohibits();
                let needs_rt = p.iter().any(|a| a.ends_with("-realtime"));
                let needs_proc = p.iter().any(|a| a.ends_with("-process"));
                // Process order is part of real-time order, so with
                // realtime edges a process cycle shows as a realtime one:
                // none of those found means none of these either.
                let rt_clean = need_realtime && !found.iter().any(|a| a.ends_with("-realtime"));
                (!needs_rt || need_realtime)
                    && (!needs_proc || need_process || rt_clean)
                    && !found.iter().any(|a| p.contains(a))
            })
            .collect();
        judged
            .iter()
            .filter(|c| {
                !judged
                    .iter()
                    .any(|d| d != *c && models::implies(d.name(), c.name()))
            })
            .map(|c| c.name().to_string())
            .collect()
    } else {
        Vec::new()
    };
    IsoResult {
        verdict,
        consistency: opts.consistency,
        txn_model: t.model,
        anomaly_types,
        anomalies,
        counts,
        not,
        also_not,
        consistent_with,
        unknown_reason,
        stats,
    }
}

fn view(t: &Txns, x: u32, name: &str) -> TxnView {
    let tx = &t.txns[x as usize];
    TxnView {
        name: name.to_string(),
        index: tx.index,
        process: t.processes.name(tx.process),
        status: tx.status.name().to_string(),
        mops: t.mops_of(x).iter().map(|m| t.mop_text(m)).collect(),
    }
}

fn explain_cycle(
    t: &Txns,
    index: &Index,
    c: &graph::Cycle,
    prohibited: &BTreeSet<&'static str>,
) -> Anomaly {
    let mut names: FxHashMap<u32, String> = FxHashMap::default();
    let mut txns = Vec::new();
    for &(a, _, _) in &c.steps {
        let n = format!("T{}", names.len() + 1);
        if let std::collections::hash_map::Entry::Vacant(e) = names.entry(a) {
            e.insert(n.clone());
            txns.push(view(t, a, &n));
        }
    }
    let mut steps = Vec::new();
    for &(a, b, rel) in &c.steps {
        let (an, bn) = (names[&a].clone(), names[&b].clone());
        let (key, why) = match rel {
            Rel::Process => (
                None,
                format!(
                    "process {} executed {an} before {bn}",
                    t.processes.name(t.txns[a as usize].process)
                ),
            ),
            Rel::Realtime => (None, format!("{an} completed before {bn} began")),
            _ => {
                let e = match index {
                    Index::Append(i) => i.explain(t, a, b, rel, &an, &bn),
                    Index::Register(i) => i.explain(t, a, b, rel, &an, &bn),
                };
                match e {
                    Some((k, w)) => (Some(k), w),
                    None => (
                        None,
                        format!("{an} precedes {bn} ({} dependency)", rel.name()),
                    ),
                }
            }
        };
        steps.push(Step {
            from: an,
            to: bn,
            rel,
            key,
            why,
        });
    }
    let mut text = String::from("Let:\n");
    for v in &txns {
        text += &format!(
            "  {} = #{} p{} {} [{}]\n",
            v.name,
            v.index,
            v.process,
            v.status,
            v.mops.join(" ")
        );
    }
    text += "Then:\n";
    let n = steps.len();
    for (i, s) in steps.iter().enumerate() {
        if i + 1 == n {
            text += &format!(
                "  - However, {} < {} ({}), because {}: a contradiction!",
                s.from,
                s.to,
                s.rel.name(),
                s.why
            );
        } else {
            text += &format!(
                "  - {} < {} ({}), because {}.\n",
                s.from,
                s.to,
                s.rel.name(),
                s.why
            );
        }
    }
    Anomaly {
        name: c.name.clone(),
        prohibited: prohibited.contains(c.name.as_str()),
        txns,
        steps,
        explanation: text,
    }
}

/// Process order: each process's `ok` transactions, one after the other
/// (Elle's `process-graph`).
fn process_edges(t: &Txns, edges: &mut Edges) {
    let mut last: FxHashMap<u32, u32> = FxHashMap::default();
    for &e in &t.events {
        let x = (e >> 1) as u32;
        let tx = &t.txns[x as usize];
        if e & 1 == 1 && tx.status == Status::Ok {
            if let Some(p) = last.insert(tx.process, x) {
                edges.push(Rel::Process, p, x);
            }
        }
    }
}

/// Real-time order, transitively reduced as Elle's `realtime-graph` does:
/// every `ok` transaction not yet followed by another is linked to each
/// transaction invoked after it completed.
fn realtime_edges(t: &Txns, edges: &mut Edges) {
    // (insertion sequence, txn) of completed ok transactions not implied
    // by a later one.
    let mut oks: Vec<(u32, u32)> = Vec::new();
    let mut seq_at_invoke = vec![0u32; t.txns.len()];
    let mut seq = 0u32;
    for &e in &t.events {
        let x = (e >> 1) as u32;
        let tx = &t.txns[x as usize];
        if tx.status == Status::Fail {
            continue;
        }
        if e & 1 == 0 {
            seq_at_invoke[x as usize] = seq;
            for &(_, o) in &oks {
                edges.push(Rel::Realtime, o, x);
            }
        } else if tx.status == Status::Ok {
            // Those linked to x at its invocation are now implied by x.
            let s0 = seq_at_invoke[x as usize];
            oks.retain(|&(s, _)| s >= s0);
            oks.push((seq, x));
            seq += 1;
        }
    }
}
