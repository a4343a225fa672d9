//! Sections of a failing run's report that explain a Raft failure or a
//! replica divergence, drawn from the history alone (node events, nemesis
//! events, the checks' messages):
//!
//! - a per-node log diagram around the violating index, as in the Raft
//!   paper's figures 7 and 8: one row per node, one column per index, each
//!   cell the term of the entry the node held or applied there at the moment
//!   of the violation, with each node's commit and applied index, who led
//!   which term and the faults active meanwhile;
//! - node lanes: each node's role per term over time (follower, candidate,
//!   leader, down), the faults below, the whole run and a zoom on the
//!   violation;
//! - for check `convergence`, the replicas side by side at their applied
//!   index, with the keys and client sessions that differ.
//!
//! The Raft check's messages (`checks.rs`) are parsed back with
//! [`parse_violation`]; their wording is tested against this parser below.
//! The divergence view reads the `divergence` events the kv and txn runs
//! record when replicas differ (`replicas.rs`), else the check's messages.
//! With several Raft groups (the checkout scenario's three stores) the
//! diagram shows the violating group's nodes only ([`sections_in`]).
//! Everything here is deterministic (ordered maps only) and pure: it builds
//! and is tested in both builds.

use checker::history::{History, Process};
use checker::report::escape_html as esc;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// How many indexes the log diagram shows on each side of the violating one.
pub const WINDOW: u64 = 8;

/// What the Raft check reported, parsed back from its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// `leader` was elected in `term` without entry `index` of
    /// `entry_term`, committed before (Leader Completeness).
    LeaderLacks {
        leader: u64,
        term: u64,
        index: u64,
        entry_term: u64,
        applied_by: u64,
    },
    /// `node` applied entry `index` of `term`; `other` had applied one of
    /// `other_term` there.
    Replaced {
        node: u64,
        index: u64,
        term: u64,
        other: u64,
        other_term: u64,
    },
    /// `node` answered a read at `applied`, below `required`.
    StaleRead {
        node: u64,
        applied: u64,
        required: u64,
    },
    TwoLeaders {
        term: u64,
        first: u64,
        second: u64,
    },
    /// `node` came back in `term`, having promised `promised_term`.
    LostPromise {
        node: u64,
        term: u64,
        promised_term: u64,
    },
}

/// Matches `s` against `pattern`, whose `{}` stand for any text up to the
/// literal that follows; returns what each `{}` matched.
fn scan<'a>(s: &'a str, pattern: &str) -> Option<Vec<&'a str>> {
    let lits: Vec<&str> = pattern.split("{}").collect();
    let mut rest = s.strip_prefix(lits[0])?;
    let mut out = Vec::new();
    for lit in &lits[1..] {
        if lit.is_empty() {
            out.push(rest);
            rest = "";
            continue;
        }
        let at = rest.find(lit)?;
        out.push(&rest[..at]);
        rest = &rest[at + lit.len()..];
    }
    Some(out)
}

fn num(s: &str) -> Option<u64> {
    s.trim().parse().ok()
}

/// Parses one message of check `raft` (see `checks.rs`).
pub fn parse_violation(msg: &str) -> Option<Violation> {
    if let Some(p) = scan(
        msg,
        "node {} became leader of term {} with {}, but entry {} of term {} (applied by node {}) was committed before term {}",
    ) {
        return Some(Violation::LeaderLacks {
            leader: num(p[0])?,
            term: num(p[1])?,
            index: num(p[3])?,
            entry_term: num(p[4])?,
            applied_by: num(p[5])?,
        });
    }
    if let Some(p) = scan(
        msg,
        "node {} applied entry {} of term {} (digest {}) but node {} had applied entry {} of term {} (digest {})",
    ) {
        return Some(Violation::Replaced {
            node: num(p[0])?,
            index: num(p[1])?,
            term: num(p[2])?,
            other: num(p[4])?,
            other_term: num(p[6])?,
        });
    }
    if let Some(p) = scan(
        msg,
        "node {} answered a read at applied index {}, but index {} was committed before the read arrived",
    ) {
        return Some(Violation::StaleRead {
            node: num(p[0])?,
            applied: num(p[1])?,
            required: num(p[2])?,
        });
    }
    if let Some(p) = scan(msg, "two leaders in term {}: node {} and node {}") {
        return Some(Violation::TwoLeaders {
            term: num(p[0])?,
            first: num(p[1])?,
            second: num(p[2])?,
        });
    }
    if let Some(p) = scan(
        msg,
        "node {} recovered term {} vote {} after a crash, but before it had sent messages in term {} with vote",
    ) {
        return Some(Violation::LostPromise {
            node: num(p[0])?,
            term: num(p[1])?,
            promised_term: num(p[3])?,
        });
    }
    None
}

impl Violation {
    /// The log index it is about, if any.
    pub fn index(&self) -> Option<u64> {
        match *self {
            Violation::LeaderLacks { index, .. } | Violation::Replaced { index, .. } => Some(index),
            Violation::StaleRead { required, .. } => Some(required),
            _ => None,
        }
    }

    /// The nodes it names.
    pub fn nodes(&self) -> Vec<u64> {
        match *self {
            Violation::LeaderLacks {
                leader, applied_by, ..
            } => vec![leader, applied_by],
            Violation::Replaced { node, other, .. } => vec![node, other],
            Violation::StaleRead { node, .. } | Violation::LostPromise { node, .. } => vec![node],
            Violation::TwoLeaders { first, second, .. } => vec![first, second],
        }
    }

    /// The node event at which the check saw it (a position in `evs`).
    fn moment(&self, evs: &[NodeEv]) -> Option<usize> {
        let find = |from: usize, f: &dyn Fn(&NodeEv) -> bool| {
            evs.iter().skip(from).position(f).map(|p| p + from)
        };
        let u = |e: &NodeEv, k: &str| e.v[k].as_u64();
        match *self {
            Violation::LeaderLacks { leader, term, .. } => find(0, &|e| {
                e.node == leader && e.f == "elected" && u(e, "term") == Some(term)
            }),
            Violation::Replaced {
                node,
                index,
                term,
                other,
                other_term,
            } => {
                let applied = |n: u64, t: u64| {
                    move |e: &NodeEv| {
                        e.node == n
                            && e.f == "applied"
                            && u(e, "index") == Some(index)
                            && u(e, "term") == Some(t)
                    }
                };
                let first = find(0, &applied(other, other_term)).unwrap_or(0);
                find(first, &applied(node, term)).or_else(|| find(0, &applied(node, term)))
            }
            Violation::StaleRead {
                node,
                applied,
                required,
            } => {
                // As the check does: the highest commit index when each
                // read arrived (read ids start again at a restart).
                let mut max_commit = 0;
                let mut reads: BTreeMap<(u64, u64), u64> = BTreeMap::new();
                for (k, e) in evs.iter().enumerate() {
                    match e.f {
                        "commit" => max_commit = max_commit.max(u(e, "index").unwrap_or(0)),
                        "read-arrived" => {
                            reads.insert((e.node, u(e, "id").unwrap_or(0)), max_commit);
                        }
                        "recovered" => reads.retain(|(n, _), _| *n != e.node),
                        "read-served" if e.node == node => {
                            let arrived = reads.remove(&(node, u(e, "id").unwrap_or(0)));
                            if u(e, "applied") == Some(applied) && arrived == Some(required) {
                                return Some(k);
                            }
                        }
                        _ => {}
                    }
                }
                find(0, &|e| {
                    e.node == node && e.f == "read-served" && u(e, "applied") == Some(applied)
                })
            }
            Violation::TwoLeaders { term, second, .. } => find(0, &|e| {
                e.node == second
                    && e.f == "role"
                    && u(e, "term") == Some(term)
                    && e.v["role"] == "Leader"
            }),
            Violation::LostPromise {
                node,
                term,
                promised_term,
            } => {
                let promised = find(0, &|e| {
                    e.node == node && e.f == "promised" && u(e, "term") == Some(promised_term)
                })
                .unwrap_or(0);
                find(promised, &|e| {
                    e.node == node && e.f == "recovered" && u(e, "term") == Some(term)
                })
            }
        }
    }
}

/// A node event of the history (process `n<id>`).
struct NodeEv<'a> {
    /// Position in the history.
    pos: usize,
    time: u64,
    node: u64,
    f: &'a str,
    v: &'a Value,
}

fn node_of(p: &Process) -> Option<u64> {
    match p {
        Process::Named(n) => n.strip_prefix('n')?.parse().ok(),
        Process::Client(_) => None,
    }
}

fn node_events(h: &History) -> Vec<NodeEv<'_>> {
    h.ops
        .iter()
        .enumerate()
        .filter_map(|(pos, op)| {
            Some(NodeEv {
                pos,
                time: op.time.unwrap_or(pos as u64),
                node: node_of(&op.process)?,
                f: op.f.as_str(),
                v: &op.value,
            })
        })
        .collect()
}

/// A fault of the nemesis, from its start to its end (or the end of the run).
#[derive(Clone, Debug)]
struct FaultSpan {
    id: u64,
    part: Option<u64>,
    kind: String,
    what: String,
    start: u64,
    end: Option<u64>,
    /// Nodes it crashes or pauses.
    node: Option<u64>,
    /// The `fault` object of its start event.
    fault: Value,
}

fn fault_spans(h: &History) -> Vec<FaultSpan> {
    let mut open: BTreeMap<(u64, Option<u64>), usize> = BTreeMap::new();
    let mut out: Vec<FaultSpan> = Vec::new();
    for (pos, op) in h.ops.iter().enumerate() {
        if !matches!(&op.process, Process::Named(n) if n == "nemesis") {
            continue;
        }
        let time = op.time.unwrap_or(pos as u64);
        let key = (
            op.value["id"].as_u64().unwrap_or(0),
            op.value["part"].as_u64(),
        );
        match op.f.as_str() {
            "start" => {
                let fault = &op.value["fault"];
                open.insert(key, out.len());
                out.push(FaultSpan {
                    id: key.0,
                    part: key.1,
                    kind: fault["kind"].as_str().unwrap_or("fault").to_string(),
                    what: describe_fault(fault),
                    start: time,
                    end: None,
                    node: fault["node"].as_u64(),
                    fault: fault.clone(),
                });
            }
            "end" => {
                if let Some(i) = open.remove(&key) {
                    out[i].end = Some(time);
                }
            }
            "heal-all" => {
                for (_, i) in std::mem::take(&mut open) {
                    out[i].end = Some(time);
                }
            }
            _ => {}
        }
    }
    out
}

/// A fault in a few words: its kind and what it targets.
fn describe_fault(f: &Value) -> String {
    let kind = f["kind"].as_str().unwrap_or("fault");
    let set = |g: &Value| -> String {
        let ids: Vec<String> = g
            .as_array()
            .map(|a| a.iter().map(|x| x.to_string()).collect())
            .unwrap_or_default();
        format!("{{{}}}", ids.join(","))
    };
    match kind {
        "partition" => {
            let groups: Vec<String> = f["groups"]
                .as_array()
                .map(|gs| gs.iter().map(set).collect())
                .unwrap_or_default();
            if groups.is_empty() {
                "partition".into()
            } else {
                format!("partition {}", groups.join(" | "))
            }
        }
        _ => {
            let mut parts = vec![kind.to_string()];
            if let Some(o) = f.as_object() {
                for (k, v) in o {
                    if k == "kind" || k == "seed" {
                        continue;
                    }
                    let v = match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    parts.push(format!("{k}={v}"));
                }
            }
            parts.join(" ")
        }
    }
}

/// A node's log: (snapshot index, last index, runs of (first index, term)).
type LogShape = (u64, u64, Vec<(u64, u64)>);

/// A node's state as its events show it at one moment.
#[derive(Clone, Debug, Default)]
struct NodeState {
    /// index -> term of the entry last applied there.
    applied_terms: BTreeMap<u64, u64>,
    /// index -> position in the history of that applied event.
    applied_pos: BTreeMap<u64, usize>,
    /// Position in the history of its latest election.
    log_pos: usize,
    applied: u64,
    commit: u64,
    snapshot: u64,
    /// Its log from its latest election since it last started.
    log: Option<LogShape>,
    role: String,
    term: u64,
    down: bool,
}

impl NodeState {
    fn log_term(&self, i: u64) -> Option<u64> {
        let (snap, last, runs) = self.log.as_ref()?;
        if i <= *snap || i > *last {
            return None;
        }
        let k = runs.partition_point(|&(first, _)| first <= i);
        k.checked_sub(1).map(|k| runs[k].1)
    }

    fn highest(&self) -> u64 {
        let last = self.log.as_ref().map_or(0, |l| l.1);
        last.max(self.applied)
            .max(self.commit)
            .max(self.snapshot)
            .max(self.applied_terms.keys().next_back().copied().unwrap_or(0))
    }
}

/// One cell of the log diagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The term shown: the node's log from its election, else what it applied.
    pub term: Option<u64>,
    /// The term of the entry it applied there, if any.
    pub applied_term: Option<u64>,
    /// In its snapshot (compacted), term unknown.
    pub compacted: bool,
}

/// The log diagram around a Raft violation.
#[derive(Clone, Debug)]
pub struct LogDiagram {
    pub violation: Violation,
    pub message: String,
    /// The index the violation is about (or the highest applied one).
    pub focus: u64,
    /// First and last index shown.
    pub lo: u64,
    pub hi: u64,
    /// The highest index known at that moment.
    pub max_index: u64,
    pub nodes: Vec<u64>,
    pub cells: BTreeMap<(u64, u64), Cell>,
    /// node -> (commit index, applied index, role, term, down).
    pub marks: BTreeMap<u64, (u64, u64, String, u64, bool)>,
    /// term -> the node elected in it, up to the moment.
    pub leaders: BTreeMap<u64, u64>,
    /// Other indexes named by the other violations.
    pub also: BTreeSet<u64>,
    /// When the check saw it (history time) and its position.
    pub at_time: u64,
    pub at_pos: usize,
    /// The window of time the diagram covers: from the first event of its
    /// indexes to the moment.
    pub since: u64,
    /// Faults active in that window, in words with their times.
    pub faults: Vec<String>,
    /// Key moments before it, for the lanes: (node, time, what).
    pub moments: Vec<(u64, u64, String)>,
    /// Whether the violation is about one index (else no column is marked).
    pub indexed: bool,
}

/// Builds the diagram for the first Raft violation the history can place.
pub fn log_diagram(h: &History, failures: &[(&str, &str)]) -> Option<LogDiagram> {
    let evs = node_events(h);
    if evs.is_empty() {
        return None;
    }
    let parsed: Vec<(Violation, &str)> = failures
        .iter()
        .filter(|f| f.0 == "raft")
        .filter_map(|f| Some((parse_violation(f.1)?, f.1)))
        .collect();
    let (violation, message) = parsed
        .iter()
        .find(|(v, _)| v.moment(&evs).is_some())
        .cloned()?;
    let mut at = violation.moment(&evs)?;
    // The role change that comes with an election, at the same instant.
    while evs
        .get(at + 1)
        .is_some_and(|e| e.node == evs[at].node && e.time == evs[at].time && e.f == "role")
    {
        at += 1;
    }
    let also: BTreeSet<u64> = parsed.iter().filter_map(|(v, _)| v.index()).collect();

    // Replay the node events up to the moment.
    let mut states: BTreeMap<u64, NodeState> = BTreeMap::new();
    let mut leaders: BTreeMap<u64, u64> = BTreeMap::new();
    let crash_starts: Vec<(u64, u64)> = fault_spans(h)
        .iter()
        .filter(|f| f.kind == "crash")
        .filter_map(|f| Some((f.start, f.node?)))
        .collect();
    for e in &evs {
        states.entry(e.node).or_default();
    }
    let at_time = evs[at].time;
    let mut crashes = crash_starts.iter().peekable();
    for e in &evs[..=at] {
        while let Some(&&(t, n)) = crashes.peek() {
            if t > e.time {
                break;
            }
            if let Some(s) = states.get_mut(&n) {
                s.down = true;
                s.role = "down".into();
            }
            crashes.next();
        }
        let s = states.entry(e.node).or_default();
        let u = |k: &str| e.v[k].as_u64().unwrap_or(0);
        match e.f {
            "recovered" => {
                let snap = u("snapshot_index");
                s.applied = snap;
                s.commit = snap;
                s.snapshot = snap;
                s.log = None;
                s.term = u("term");
                s.role = "Follower".into();
                s.down = false;
            }
            "role" => {
                s.role = e.v["role"].as_str().unwrap_or("?").to_string();
                s.term = u("term");
            }
            "elected" => {
                let runs: Vec<(u64, u64)> = e.v["runs"]
                    .as_array()
                    .map(|rs| {
                        rs.iter()
                            .filter_map(|r| Some((r[0].as_u64()?, r[1].as_u64()?)))
                            .collect()
                    })
                    .unwrap_or_default();
                s.log = Some((u("snapshot_index"), u("last_index"), runs));
                s.log_pos = e.pos;
                leaders.insert(u("term"), e.node);
            }
            "commit" => s.commit = s.commit.max(u("index")),
            "applied" => {
                s.applied_terms.insert(u("index"), u("term"));
                s.applied_pos.insert(u("index"), e.pos);
                s.applied = u("index");
            }
            "snapshot-installed" => {
                s.snapshot = u("index");
                s.applied = s.applied.max(u("index"));
                s.commit = s.commit.max(u("index"));
            }
            "stopped" => {
                s.down = true;
                s.role = "down".into();
            }
            _ => {}
        }
    }

    let max_index = states.values().map(NodeState::highest).max().unwrap_or(0);
    let focus = violation
        .index()
        .unwrap_or_else(|| states.values().map(|s| s.applied).max().unwrap_or(0))
        .max(1);
    let lo = focus.saturating_sub(WINDOW).max(1);
    let hi = (focus + WINDOW).min(max_index.max(focus));
    let nodes: Vec<u64> = states.keys().copied().collect();
    let mut cells = BTreeMap::new();
    for (&n, s) in &states {
        for i in lo..=hi {
            // Whichever it learnt last: its log at its election, or the
            // entry it applied (an uncommitted tail it was elected with
            // may have been replaced since; an entry applied before a
            // crash may be gone from the log it was elected with).
            let applied_term = s.applied_terms.get(&i).copied();
            let applied_later = s.applied_pos.get(&i).is_some_and(|&p| p > s.log_pos);
            let term = match s.log_term(i) {
                Some(t) if !applied_later => Some(t),
                _ => applied_term,
            };
            let compacted = term.is_none() && i <= s.snapshot;
            cells.insert(
                (n, i),
                Cell {
                    term,
                    applied_term,
                    compacted,
                },
            );
        }
    }
    let marks = states
        .iter()
        .map(|(&n, s)| (n, (s.commit, s.applied, s.role.clone(), s.term, s.down)))
        .collect();

    // The time window: from the election of the lowest term held or
    // applied at the violating index (else the first event touching a
    // shown index) to the moment.
    let focus_terms: Vec<u64> = cells
        .iter()
        .filter(|((_, i), _)| *i == focus)
        .flat_map(|(_, c)| [c.term, c.applied_term])
        .flatten()
        .collect();
    let lowest_term = focus_terms
        .iter()
        .min()
        .copied()
        .or_else(|| cells.values().filter_map(|c| c.term).min());
    let elected_at = lowest_term.and_then(|t| {
        evs[..=at]
            .iter()
            .find(|e| {
                e.f == "elected" && e.v["term"].as_u64() == Some(t)
                    || e.f == "role" && e.v["term"].as_u64() == Some(t) && e.v["role"] == "Leader"
            })
            .map(|e| e.time)
    });
    let first_touch = evs[..=at]
        .iter()
        .filter(|e| match e.f {
            "applied" | "commit" => e.v["index"].as_u64().is_some_and(|i| i >= lo),
            "elected" => {
                e.v["last_index"].as_u64().is_some_and(|i| i >= lo)
                    || lowest_term.is_some_and(|t| e.v["term"].as_u64() == Some(t))
            }
            _ => false,
        })
        .map(|e| e.time)
        .min()
        .unwrap_or(at_time);
    let since = elected_at.unwrap_or(first_touch).min(at_time);
    let faults = fault_spans(h)
        .iter()
        .filter(|f| f.start <= at_time && f.end.is_none_or(|end| end >= since))
        .map(|f| {
            let end = f.end.map_or("end of run".to_string(), secs);
            let part = f.part.map_or(String::new(), |p| format!(", part {p}"));
            format!(
                "{}–{}: {} (fault {}{part})",
                secs(f.start),
                end,
                f.what,
                f.id
            )
        })
        .collect();

    Some(LogDiagram {
        message: message.to_string(),
        focus,
        lo,
        hi,
        max_index,
        nodes,
        cells,
        marks,
        leaders,
        also,
        at_time,
        at_pos: evs[at].pos,
        since,
        faults,
        moments: moments(&violation, &evs, at),
        indexed: violation.index().is_some(),
        violation,
    })
}

/// The events that led to the violation, to mark on the lanes.
fn moments(v: &Violation, evs: &[NodeEv], at: usize) -> Vec<(u64, u64, String)> {
    let before = &evs[..at];
    let u = |e: &NodeEv, k: &str| e.v[k].as_u64();
    let mark = |e: &NodeEv, what: String| (e.node, e.time, what);
    let mut out = Vec::new();
    match *v {
        Violation::LeaderLacks {
            index, entry_term, ..
        } => {
            out.extend(
                before
                    .iter()
                    .find(|e| e.f == "commit" && u(e, "index").is_some_and(|i| i >= index))
                    .map(|e| mark(e, format!("commits {index}"))),
            );
            out.extend(
                before
                    .iter()
                    .find(|e| {
                        e.f == "applied"
                            && u(e, "index") == Some(index)
                            && u(e, "term") == Some(entry_term)
                    })
                    .map(|e| mark(e, format!("applies {index} (t{entry_term})"))),
            );
        }
        Violation::Replaced {
            index,
            other,
            other_term,
            ..
        } => out.extend(
            before
                .iter()
                .find(|e| {
                    e.node == other
                        && e.f == "applied"
                        && u(e, "index") == Some(index)
                        && u(e, "term") == Some(other_term)
                })
                .map(|e| mark(e, format!("applies {index} (t{other_term})"))),
        ),
        Violation::StaleRead { node, .. } => {
            let id = u(&evs[at], "id");
            out.extend(
                before
                    .iter()
                    .rev()
                    .find(|e| e.node == node && e.f == "read-arrived" && u(e, "id") == id)
                    .map(|e| mark(e, "read arrives".into())),
            );
        }
        Violation::LostPromise {
            node,
            promised_term,
            ..
        } => out.extend(
            before
                .iter()
                .rev()
                .find(|e| {
                    e.node == node && e.f == "promised" && u(e, "term") == Some(promised_term)
                })
                .map(|e| {
                    let vote = u(e, "vote").map_or("no vote".into(), |n| format!("votes n{n}"));
                    mark(e, format!("t{promised_term}, {vote}"))
                }),
        ),
        Violation::TwoLeaders { term, first, .. } => out.extend(
            before
                .iter()
                .find(|e| {
                    e.node == first
                        && e.f == "role"
                        && u(e, "term") == Some(term)
                        && e.v["role"] == "Leader"
                })
                .map(|e| mark(e, format!("leads t{term}"))),
        ),
    }
    // One mark per node and instant.
    let mut merged: Vec<(u64, u64, String)> = Vec::new();
    for (n, t, what) in out {
        match merged.iter_mut().find(|m| m.0 == n && m.1 == t) {
            Some(m) => {
                m.2 += ", ";
                m.2 += &what;
            }
            None => merged.push((n, t, what)),
        }
    }
    merged
}

/// Seconds, from history nanoseconds.
fn secs(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

/// A colour per term: twelve light colours that tell neighbours apart
/// (ColorBrewer's Set3, its grey replaced); term 0 is grey.
fn term_colour(term: u64) -> String {
    const SET: [&str; 12] = [
        "#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5",
        "#a6cee3", "#bc80bd", "#ccebc5", "#ffed6f",
    ];
    match term {
        0 => "#e0e0e0".to_string(),
        t => SET[((t - 1) % 12) as usize].to_string(),
    }
}

const STYLE: &str = r#"<style>
.rx { font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background: #fff; border: 1px solid #ccc; border-left: 5px solid #b00020; margin: 12px 0; padding: 10px 14px; }
.rx h2 { font-size: 17px; margin: 0 0 6px; }
.rx h3 { font-size: 14px; margin: 12px 0 4px; }
.rx .rx-msg { background: #fff4f4; border: 1px solid #f0c0c0; padding: 6px 8px; margin: 6px 0; white-space: pre-wrap; }
.rx table.rx-log { border-collapse: separate; border-spacing: 3px; margin: 6px 0; }
.rx table.rx-log th { font-weight: 600; font-size: 12px; color: #555; padding: 0 4px; white-space: nowrap; }
.rx table.rx-log th.rx-focus { color: #b00020; }
.rx table.rx-log td.rx-node { text-align: left; font-weight: 600; white-space: nowrap; padding-right: 8px; }
.rx td.rx-cell { width: 40px; height: 34px; text-align: center; font-weight: 700; font-size: 14px; border: 1px solid #bbb; border-radius: 4px; position: relative; }
.rx td.rx-cell.rx-held { border: 2px dashed #666; }
.rx td.rx-cell.rx-empty { color: #bbb; background: #f6f6f6; border: 1px dotted #ccc; font-weight: 400; }
.rx td.rx-cell.rx-compacted { color: #777; background: repeating-linear-gradient(45deg,#eee,#eee 4px,#f8f8f8 4px,#f8f8f8 8px); font-weight: 400; font-size: 11px; }
.rx td.rx-cell.rx-at { outline: 3px solid #b00020; outline-offset: 1px; }
.rx td.rx-cell.rx-also { outline: 2px dotted #b00020; }
.rx td.rx-cell.rx-c { box-shadow: inset -5px 0 0 #1565c0; }
.rx td.rx-cell.rx-a::after { content: ""; position: absolute; left: 3px; right: 3px; bottom: 2px; border-bottom: 3px solid #2e7d32; }
.rx td.rx-cell .rx-sub { display: block; font-size: 9px; font-weight: 600; color: #b00020; line-height: 1; }
.rx td.rx-state { text-align: left; font-size: 12px; white-space: nowrap; padding-left: 10px; color: #333; }
.rx .rx-legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
.rx .rx-sw { display: inline-block; width: 22px; height: 14px; vertical-align: middle; margin-right: 4px; border: 1px solid #999; border-radius: 3px; }
.rx .rx-terms span.rx-t { display: inline-block; padding: 1px 7px; margin: 2px 3px 2px 0; border-radius: 3px; font-size: 12px; border: 1px solid #999; }
.rx ul { margin: 4px 0; padding-left: 20px; }
.rx .rx-note { color: #555; font-size: 12px; }
.rx svg { display: block; background: #fcfcfc; border: 1px solid #ddd; margin: 4px 0 8px; }
.rx svg text { font: 11px system-ui, sans-serif; }
.rx table.rx-div { border-collapse: collapse; margin: 6px 0 10px; }
.rx table.rx-div th, .rx table.rx-div td { border: 1px solid #ccc; padding: 4px 10px; text-align: left; font-size: 13px; }
.rx table.rx-div th { background: #f3f3f3; }
.rx table.rx-div td.rx-odd { background: #ffd6d6; font-weight: 700; }
.rx table.rx-div td.rx-same { background: #e6f4ea; }
.rx table.rx-div tr.rx-restart td { background: #ffd6d6; font-weight: 600; }
</style>"#;

impl LogDiagram {
    /// The diagram as an HTML fragment (`<div id="raft-log">`).
    pub fn html(&self) -> String {
        let mut o = String::new();
        let v = &self.violation;
        let attr = if self.indexed {
            "data-violation-index"
        } else {
            "data-focus-index"
        };
        let _ = write!(o, "<div id=\"raft-log\" {attr}=\"{}\">", self.focus);
        o += "<h3>Each node's log around the violation (Raft paper, figures 7 and 8)</h3>";
        let _ = write!(
            o,
            "<div class=\"rx-msg\"><b>[raft]</b> {}</div>",
            esc(&self.message)
        );
        let _ = write!(
            o,
            "<div class=\"rx-note\">State at the moment the check saw it: {} (history event #{}){}</div>",
            secs(self.at_time),
            self.at_pos,
            self.story()
        );
        // Who led which term.
        o += "<div class=\"rx-terms\">Leaders by term: ";
        let vterm = match *v {
            Violation::LeaderLacks { term, .. } | Violation::TwoLeaders { term, .. } => Some(term),
            _ => None,
        };
        for (t, n) in &self.leaders {
            let bold = if Some(*t) == vterm {
                ";font-weight:700;outline:2px solid #b00020"
            } else {
                ""
            };
            let _ = write!(
                o,
                "<span class=\"rx-t\" style=\"background:{}{bold}\">term {t}: n{n}</span>",
                term_colour(*t)
            );
        }
        if self.leaders.is_empty() {
            o += "none elected yet";
        }
        o += "</div>";

        // The table.
        o += "<table class=\"rx-log\"><tr><th>index</th>";
        for i in self.lo..=self.hi {
            if i == self.focus && self.indexed {
                let _ = write!(o, "<th class=\"rx-focus\">&#9660; {i}</th>");
            } else {
                let _ = write!(o, "<th>{i}</th>");
            }
        }
        o += "<th></th></tr>";
        let named = v.nodes();
        for &n in &self.nodes {
            let (commit, applied, role, term, down) = self.marks[&n].clone();
            let star = if named.contains(&n) { " &#9733;" } else { "" };
            let role_txt = if down {
                "down".to_string()
            } else if role.is_empty() {
                "not started".to_string()
            } else {
                format!("{role} t{term}")
            };
            let _ = write!(
                o,
                "<tr data-node=\"{n}\"><td class=\"rx-node\">n{n}{star}<br><span class=\"rx-note\">{}</span></td>",
                esc(&role_txt)
            );
            for i in self.lo..=self.hi {
                let c = &self.cells[&(n, i)];
                let mut class = vec!["rx-cell"];
                let mut style = String::new();
                let mut text;
                match c.term {
                    Some(t) => {
                        style = format!("background:{}", term_colour(t));
                        text = t.to_string();
                        if c.applied_term.is_none() {
                            class.push("rx-held");
                        }
                        if let Some(at) = c.applied_term.filter(|&at| at != t) {
                            let _ = write!(text, "<span class=\"rx-sub\">applied {at}</span>");
                        }
                    }
                    None if c.compacted => {
                        class.push("rx-compacted");
                        text = "snap".into();
                    }
                    None => {
                        class.push("rx-empty");
                        text = "&middot;".into();
                    }
                }
                if i == self.focus && self.indexed {
                    class.push("rx-at");
                } else if self.also.contains(&i) {
                    class.push("rx-also");
                }
                if i == commit {
                    class.push("rx-c");
                }
                if i == applied {
                    class.push("rx-a");
                }
                let title = format!(
                    "n{n} index {i}: {}",
                    match (c.term, c.applied_term) {
                        (Some(t), Some(a)) if t == a => format!("term {t}, applied"),
                        (Some(t), Some(a)) =>
                            format!("term {t} in its log, applied term {a} earlier"),
                        (Some(t), None) =>
                            format!("term {t} in its log at its election, not applied"),
                        _ if c.compacted => "in its snapshot".into(),
                        _ => "not known from the events".into(),
                    }
                );
                let _ = write!(
                    o,
                    "<td class=\"{}\" style=\"{style}\" data-index=\"{i}\" data-term=\"{}\" title=\"{}\">{text}</td>",
                    class.join(" "),
                    c.term.map_or(String::new(), |t| t.to_string()),
                    esc(&title)
                );
            }
            let _ = write!(
                o,
                "<td class=\"rx-state\">commit <b>{commit}</b> &middot; applied <b>{applied}</b></td></tr>"
            );
        }
        o += "</table>";
        let mut cut = Vec::new();
        if self.lo > 1 {
            cut.push(format!("indexes 1–{} are not shown", self.lo - 1));
        }
        if self.hi < self.max_index {
            cut.push(format!(
                "indexes {}–{} are not shown",
                self.hi + 1,
                self.max_index
            ));
        }
        if !cut.is_empty() {
            let _ = write!(
                o,
                "<div class=\"rx-note\">Window of ±{WINDOW} around index {}: {}.</div>",
                self.focus,
                cut.join("; ")
            );
        }
        o += "<div class=\"rx-legend\">\
<span><i class=\"rx-sw\" style=\"background:#fdb462\"></i>number = term of the entry; colour per term</span>\
<span><i class=\"rx-sw\" style=\"background:#fdb462\"></i>solid: applied by that node</span>\
<span><i class=\"rx-sw\" style=\"background:#fdb462;border:2px dashed #666\"></i>dashed: in its log at its latest election, not applied</span>\
<span><i class=\"rx-sw\" style=\"background:#f6f6f6;border:1px dotted #ccc\"></i>&middot; not known (followers report applied entries only)</span>\
<span><i class=\"rx-sw\" style=\"box-shadow:inset -5px 0 0 #1565c0\"></i>commit index</span>\
<span><i class=\"rx-sw\" style=\"border-bottom:3px solid #2e7d32\"></i>applied index</span>\
<span><i class=\"rx-sw\" style=\"outline:3px solid #b00020\"></i>the violating index</span>\
<span>&#9733; node named by the check</span></div>";
        let _ = write!(
            o,
            "<h3>Faults active from {} to the violation at {}</h3>",
            secs(self.since),
            secs(self.at_time)
        );
        if self.faults.is_empty() {
            o += "<div class=\"rx-note\">none</div>";
        } else {
            o += "<ul class=\"rx-faults\">";
            for f in &self.faults {
                let _ = write!(o, "<li>{}</li>", esc(f));
            }
            o += "</ul>";
        }
        o += "</div>";
        o
    }

    /// One sentence on what the diagram shows.
    fn story(&self) -> String {
        match self.violation {
            Violation::LeaderLacks {
                leader,
                term,
                index,
                entry_term,
                applied_by,
            } => {
                let has = self.cells.get(&(leader, index)).and_then(|c| c.term);
                format!(
                    ". Row n{leader} is its log when it won term {term}: at index {index} it holds {}, while n{applied_by} had applied entry {index} of term {entry_term}, committed before.",
                    match has {
                        None => "nothing".to_string(),
                        // Its own first entry of the term, appended on
                        // winning: the log it won with ended before it.
                        Some(t) if t == term => format!(
                            "only the empty entry of term {term} it appended on winning"
                        ),
                        Some(t) => format!("an entry of term {t}"),
                    }
                )
            }
            Violation::Replaced {
                node,
                index,
                term,
                other,
                other_term,
            } => format!(
                ". n{node} applies entry {index} of term {term}, but n{other} had applied entry {index} of term {other_term}: two different entries committed at one index."
            ),
            Violation::StaleRead {
                node,
                applied,
                required,
            } => format!(
                ". n{node} answered a read from applied index {applied} although index {required} was committed before the read arrived."
            ),
            Violation::TwoLeaders {
                term,
                first,
                second,
            } => format!(". n{first} and n{second} both became leader of term {term}."),
            Violation::LostPromise {
                node,
                term,
                promised_term,
            } => format!(
                ". n{node} came back in term {term} after a crash, but had sent messages in term {promised_term} (its lane below marks that promise): not about one log index, so no column is marked."
            ),
        }
    }
}

/// A span of one node's life: a role in a term, or down.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Span {
    start: u64,
    end: u64,
    role: String,
    term: u64,
}

/// Each node's roles per term over time, from its events and the crashes.
fn lanes(h: &History) -> (BTreeMap<u64, Vec<Span>>, u64, u64) {
    let evs = node_events(h);
    let faults = fault_spans(h);
    let t0 = h.ops.first().and_then(|o| o.time).unwrap_or(0);
    let t_end = h
        .ops
        .iter()
        .enumerate()
        .map(|(p, o)| o.time.unwrap_or(p as u64))
        .max()
        .unwrap_or(0);
    // (time, node, role, term), in time order; crashes first at a tie.
    let mut changes: Vec<(u64, u64, String, Option<u64>)> = Vec::new();
    for f in faults.iter().filter(|f| f.kind == "crash") {
        if let Some(n) = f.node {
            changes.push((f.start, n, "down".into(), Some(0)));
        }
    }
    for e in &evs {
        match e.f {
            "recovered" => changes.push((e.time, e.node, "Follower".into(), e.v["term"].as_u64())),
            "role" => changes.push((
                e.time,
                e.node,
                e.v["role"].as_str().unwrap_or("?").to_string(),
                e.v["term"].as_u64(),
            )),
            "stopped" => changes.push((e.time, e.node, "down".into(), Some(0))),
            _ => {}
        }
    }
    changes.sort_by_key(|c| (c.0, c.1));
    let mut out: BTreeMap<u64, Vec<Span>> = BTreeMap::new();
    for e in &evs {
        out.entry(e.node).or_default();
    }
    for (t, n, role, term) in changes {
        // Crashes of hosts that are not nodes (or not of this group).
        let Some(spans) = out.get_mut(&n) else {
            continue;
        };
        let term = term.unwrap_or_else(|| spans.last().map_or(0, |s| s.term));
        if let Some(last) = spans.last_mut() {
            if last.role == role && last.term == term {
                continue;
            }
            last.end = t;
        }
        spans.push(Span {
            start: t,
            end: t_end,
            role,
            term,
        });
    }
    for spans in out.values_mut() {
        spans.retain(|s| s.end > s.start);
    }
    (out, t0, t_end)
}

/// The lanes as an SVG of the times `a..b` (history nanoseconds).
fn lanes_svg(
    h: &History,
    a: u64,
    b: u64,
    mark: Option<u64>,
    zoom: Option<(u64, u64)>,
    moments: &[(u64, u64, String)],
    id: &str,
) -> String {
    let (lanes, _, _) = lanes(h);
    let faults = fault_spans(h);
    let (label_w, w, row_h) = (110.0, 1180.0, 26.0);
    let b = b.max(a + 1);
    let x = |t: u64| label_w + (t.clamp(a, b) - a) as f64 / (b - a) as f64 * w;
    // One row per fault id (its parts share it), only those in the window.
    let mut fault_rows: BTreeMap<u64, Vec<&FaultSpan>> = BTreeMap::new();
    for f in &faults {
        let end = f.end.unwrap_or(b);
        if f.start <= b && end >= a && !(f.kind == "leader-churn" && f.part.is_none()) {
            fault_rows.entry(f.id).or_default().push(f);
        }
    }
    // A leader churn's own span is shown by its parts; keep it if it has none.
    for f in &faults {
        if f.kind == "leader-churn" && f.part.is_none() && f.start <= b && f.end.unwrap_or(b) >= a {
            fault_rows.entry(f.id).or_insert_with(|| vec![f]);
        }
    }
    let rows = lanes.len() + fault_rows.len();
    let height = 24.0 + rows as f64 * row_h + 6.0;
    let mut o = String::new();
    let _ = write!(
        o,
        "<svg id=\"{id}\" width=\"{:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {:.0} {height:.0}\" xmlns=\"http://www.w3.org/2000/svg\">",
        label_w + w + 10.0,
        label_w + w + 10.0
    );
    o += "<defs><pattern id=\"rx-hatch-";
    o += id;
    o += "\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\"><rect width=\"3\" height=\"6\" fill=\"#fff\" fill-opacity=\"0.6\"/></pattern></defs>";
    // Time axis.
    let span_s = (b - a) as f64 / 1e9;
    let step = [
        0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0,
    ]
    .into_iter()
    .find(|s| span_s / s <= 12.0)
    .unwrap_or(100.0);
    let first = (a as f64 / 1e9 / step).ceil() as i64;
    let mut k = first;
    loop {
        let t = k as f64 * step;
        if t > b as f64 / 1e9 + 1e-9 {
            break;
        }
        let px = x((t * 1e9) as u64);
        let _ = write!(
            o,
            "<line x1=\"{px:.1}\" y1=\"16\" x2=\"{px:.1}\" y2=\"{height:.0}\" stroke=\"#e4e4e4\"/><text x=\"{px:.1}\" y=\"12\" text-anchor=\"middle\" fill=\"#666\">{}</text>",
            if step < 0.1 {
                format!("{t:.2} s")
            } else if step < 1.0 {
                format!("{t:.1} s")
            } else {
                format!("{t:.0} s")
            }
        );
        k += 1;
    }
    if let Some((za, zb)) = zoom {
        let _ = write!(
            o,
            "<rect x=\"{:.1}\" y=\"16\" width=\"{:.1}\" height=\"{:.0}\" fill=\"#b00020\" fill-opacity=\"0.07\" stroke=\"#b00020\" stroke-dasharray=\"4 3\"/>",
            x(za),
            (x(zb) - x(za)).max(2.0),
            height - 16.0
        );
    }
    let mut y = 20.0;
    for (n, spans) in &lanes {
        let _ = write!(
            o,
            "<text x=\"6\" y=\"{:.0}\" font-weight=\"600\">node n{n}</text>",
            y + 16.0
        );
        for s in spans.iter().filter(|s| s.end >= a && s.start <= b) {
            let (x0, x1) = (x(s.start), x(s.end));
            let wdt = (x1 - x0).max(1.0);
            let (fill, stroke, h_frac, label) = match s.role.as_str() {
                "down" => ("#555".to_string(), "#333", 1.0, "down".to_string()),
                "Leader" => (
                    term_colour(s.term),
                    "#222",
                    1.0,
                    format!("LEADER t{}", s.term),
                ),
                "Candidate" => (
                    term_colour(s.term),
                    "#888",
                    0.6,
                    format!("cand t{}", s.term),
                ),
                "PreCandidate" => (term_colour(s.term), "#888", 0.6, format!("pre t{}", s.term)),
                _ => (term_colour(s.term), "#aaa", 0.6, format!("t{}", s.term)),
            };
            let rh = (row_h - 6.0) * h_frac;
            let ry = y + (row_h - 6.0 - rh) / 2.0 + 1.0;
            let sw = if s.role == "Leader" { 2 } else { 1 };
            let _ = write!(
                o,
                "<rect x=\"{x0:.1}\" y=\"{ry:.1}\" width=\"{wdt:.1}\" height=\"{rh:.1}\" fill=\"{fill}\" stroke=\"{stroke}\" stroke-width=\"{sw}\"><title>n{n}: {} in term {}, {} to {}</title></rect>",
                esc(&s.role),
                s.term,
                secs(s.start),
                secs(s.end)
            );
            if s.role.contains("Candidate") {
                let _ = write!(
                    o,
                    "<rect x=\"{x0:.1}\" y=\"{ry:.1}\" width=\"{wdt:.1}\" height=\"{rh:.1}\" fill=\"url(#rx-hatch-{id})\" pointer-events=\"none\"/>"
                );
            }
            let chars = label.len() as f64 * 6.5 + 4.0;
            let (label, fits) = if wdt >= chars {
                (label, true)
            } else {
                let short = match s.role.as_str() {
                    "Leader" => format!("L{}", s.term),
                    "down" => "✕".into(),
                    _ => s.term.to_string(),
                };
                let fits = wdt >= short.len() as f64 * 6.5 + 2.0;
                (short, fits)
            };
            if fits {
                let colour = if s.role == "down" { "#fff" } else { "#111" };
                let weight = if s.role == "Leader" { "700" } else { "400" };
                let _ = write!(
                    o,
                    "<text x=\"{:.1}\" y=\"{:.0}\" text-anchor=\"middle\" fill=\"{colour}\" font-weight=\"{weight}\" pointer-events=\"none\">{}</text>",
                    x0 + wdt / 2.0,
                    y + 15.0,
                    esc(&label)
                );
            }
        }
        y += row_h;
    }
    for (id_, parts) in &fault_rows {
        let kind = parts.first().map_or("fault", |p| p.kind.as_str());
        let name = if parts.iter().any(|p| p.part.is_some()) {
            // Parts of a composite fault (e.g. leader churn's cuts).
            faults
                .iter()
                .find(|f| f.id == *id_ && f.part.is_none())
                .map_or(kind, |f| f.kind.as_str())
        } else {
            kind
        };
        let _ = write!(
            o,
            "<text x=\"6\" y=\"{:.0}\" fill=\"#6a1b9a\">f{id_} {}</text>",
            y + 16.0,
            esc(&truncate(name, 13))
        );
        for f in parts {
            let (x0, x1) = (x(f.start), x(f.end.unwrap_or(b)));
            let wdt = (x1 - x0).max(2.0);
            let _ = write!(
                o,
                "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{wdt:.1}\" height=\"{:.1}\" fill=\"#e1bee7\" stroke=\"#8e24aa\"><title>fault {id_}: {}, {} to {}</title></rect>",
                y + 3.0,
                row_h - 8.0,
                esc(&f.what),
                secs(f.start),
                f.end.map_or("the end".into(), secs)
            );
            let label = short_fault(&f.what);
            if wdt >= label.chars().count() as f64 * 6.2 + 4.0 {
                let _ = write!(
                    o,
                    "<text x=\"{:.1}\" y=\"{:.0}\" text-anchor=\"middle\" pointer-events=\"none\">{}</text>",
                    x0 + wdt / 2.0,
                    y + 15.0,
                    esc(&label)
                );
            }
        }
        y += row_h;
    }
    let row_of: BTreeMap<u64, f64> = lanes
        .keys()
        .enumerate()
        .map(|(k, n)| (*n, 20.0 + k as f64 * row_h))
        .collect();
    for (n, t, what) in moments {
        let (Some(&ry), true) = (row_of.get(n), *t >= a && *t <= b) else {
            continue;
        };
        let px = x(*t);
        let _ = write!(
            o,
            "<path d=\"M{:.1} {:.1} l6 -9 h-12 z\" fill=\"#b00020\" stroke=\"#fff\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#b00020\" font-weight=\"700\" font-size=\"12\" stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\">{}</text>",
            px,
            ry + 10.0,
            px + 7.0,
            ry + 6.0,
            esc(what)
        );
    }
    if let Some(m) = mark.filter(|m| *m >= a && *m <= b) {
        let px = x(m);
        let _ = write!(
            o,
            "<line x1=\"{px:.1}\" y1=\"16\" x2=\"{px:.1}\" y2=\"{height:.0}\" stroke=\"#b00020\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{height:.0}\" fill=\"#b00020\" font-weight=\"700\" dy=\"-2\">violation</text>",
            px + 3.0
        );
    }
    o += "</svg>";
    o
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// A fault's label inside its bar: partitions as their groups.
fn short_fault(what: &str) -> String {
    match what.strip_prefix("partition ") {
        Some(groups) => groups.to_string(),
        None => truncate(what, 40),
    }
}

/// The Raft section: the log diagram and the node lanes, or nothing when
/// no `raft` failure can be placed in the history.
pub fn raft_section(h: &History, failures: &[(&str, &str)]) -> String {
    if !failures.iter().any(|f| f.0 == "raft") {
        return String::new();
    }
    let Some(d) = log_diagram(h, failures) else {
        return String::new();
    };
    let mut o = String::new();
    o += "<div class=\"rx\" id=\"raft-explain\"><h2>Why the Raft check failed</h2>";
    o += &d.html();
    let (_, t0, t_end) = lanes(h);
    // The zoom: from a little before the diagram's window to a little after
    // the violation, at least 2 s wide.
    let pad = 300_000_000;
    let mut za = d.since.saturating_sub(pad).max(t0);
    let zb = (d.at_time + pad).min(t_end.max(d.at_time));
    if zb.saturating_sub(za) < 2_000_000_000 {
        za = zb.saturating_sub(2_000_000_000).max(t0);
    }
    let _ = write!(
        o,
        "<h3>Node lanes around the violation ({} to {})</h3><div class=\"rx-note\">One row per node: its role in each term (colour per term, as above; thick outline: leader, hatched: candidate, dark: down), then the faults. Hover a bar for its times.</div>",
        secs(za),
        secs(zb)
    );
    o += &lanes_svg(
        h,
        za,
        zb,
        Some(d.at_time),
        None,
        &d.moments,
        "raft-lanes-zoom",
    );
    o += "<h3>The whole run</h3><div class=\"rx-note\">The dashed box is the zoom above.</div>";
    o += &lanes_svg(
        h,
        t0,
        t_end,
        Some(d.at_time),
        Some((za, zb)),
        &[],
        "raft-lanes-all",
    );
    o += "</div>";
    o
}

/// The host a panic message names: "node 3 stopped: ..." (a store node),
/// "... service on host 12 stopped: ...", "... replica on host 21 stopped:
/// ...", or "on host 2: ..." (the harness's prefix for a panic on a host).
/// `None` when it names none (a panic outside the hosts).
fn host_named_in(msg: &str) -> Option<u64> {
    // The harness's prefix for a panic on a host whose message names none.
    if let Some(rest) = msg.strip_prefix("on host ") {
        return rest.split_once(": ")?.0.parse().ok();
    }
    let head = msg
        .split(" stopped: ")
        .next()
        .filter(|h| h.len() < msg.len())?;
    let n = head
        .strip_prefix("node ")
        .or_else(|| head.rsplit_once(" on host ").map(|(_, n)| n))?;
    n.parse().ok()
}

/// What a crash fault drew for the disk, in words: the damage to synced
/// data and the tail of unsynced data it keeps.
fn crash_disk_words(fault: &Value) -> String {
    let mut d = Vec::new();
    if let Some(name) = fault["damage"].as_str() {
        d.push(format!(
            "<b>{}</b>",
            match name {
                "rot" => "flip a bit of one synced write",
                "lost-write" => "lose one synced write (zeros where it was)",
                "misdirected-write" => "land one synced write on an earlier one",
                _ => "damage synced data",
            }
        ));
    }
    if fault["torn_write"].as_bool() == Some(true) {
        d.push(if fault["corrupt"].as_bool() == Some(true) {
            "<b>keep an unsynced tail whole, with a corrupt byte</b>".to_string()
        } else {
            "keep a torn prefix of an unsynced tail".to_string()
        });
    }
    if d.is_empty() {
        "lose the unsynced writes".to_string()
    } else {
        d.join("; ")
    }
}

/// The section for a run that a panic stopped: the message; the faults
/// aimed at the host it names (crashes, pauses, clocks, disks), or, when
/// it names none, the faults in effect in its last second; a crash's disk
/// faults in words; the restart at which the run stopped (a damaged disk
/// shows when the node replays it); and the node lanes of its last
/// seconds, which show the network's faults too. Empty without a `panic`
/// failure.
pub fn panic_section(h: &History, failures: &[(&str, &str)]) -> String {
    let Some(&(_, msg)) = failures.iter().find(|f| f.0 == "panic") else {
        return String::new();
    };
    let host = host_named_in(msg);
    let (lanes_of, t0, _) = lanes(h);
    let stop = h.ops.iter().filter_map(|o| o.time).max();
    let at = stop.unwrap_or(0);
    let spans = fault_spans(h);
    const SECOND: u64 = 1_000_000_000;
    // Started, ended or still in effect in the last second.
    let last_second =
        |f: &&FaultSpan| f.start + SECOND >= at || f.end.is_none_or(|e| e + SECOND >= at);
    let (about, shown): (String, Vec<&FaultSpan>) = match host {
        Some(n) => (
            format!("The faults aimed at host {n} (crashes, pauses, clocks, disks; the network's are in the lanes below)"),
            spans.iter().filter(|f| f.node == Some(n)).collect(),
        ),
        None => (
            "The message names no host: the faults in effect in the run's last second".into(),
            spans.iter().filter(last_second).collect(),
        ),
    };
    // The last restart before the run stopped, if it was in its last
    // second: its recovery is likely what failed.
    let restart = shown
        .iter()
        .filter(|f| f.kind == "crash")
        .filter_map(|f| f.end.map(|e| (e, f.id, f.part)))
        .filter(|(e, _, _)| e + SECOND >= at)
        .max();
    let mut o = String::new();
    let _ = write!(
        o,
        "<div class=\"rx\" id=\"panic-explain\"><h2>Why the run stopped: a panic{}</h2><div class=\"rx-msg\">{}</div>",
        host.map_or_else(String::new, |n| format!(" on host {n}")),
        esc(msg)
    );
    if let Some(t) = stop {
        let _ = write!(
            o,
            "<div class=\"rx-note\">The run stopped at {}.</div>",
            secs(t)
        );
    }
    let _ = write!(o, "<h3>{}</h3>", esc(&about));
    if shown.is_empty() {
        o += "<div class=\"rx-note\">none</div>";
    } else {
        o += "<table class=\"rx-div\"><tr><th>fault</th><th>from</th><th>to</th><th>what the crash drew for the disk</th></tr>";
        for f in &shown {
            let marked = restart.is_some_and(|(_, id, part)| id == f.id && part == f.part);
            let end = match f.end {
                None => "the end".to_string(),
                Some(e) if marked => format!(
                    "{} (restarted, {} ms before the run stopped)",
                    secs(e),
                    at.saturating_sub(e) / 1_000_000
                ),
                Some(e) => secs(e),
            };
            let disk = if f.kind == "crash" {
                crash_disk_words(&f.fault)
            } else {
                String::new()
            };
            let _ = write!(
                o,
                "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if marked { " class=\"rx-restart\"" } else { "" },
                esc(&f.what),
                secs(f.start),
                end,
                disk
            );
        }
        o += "</table><div class=\"rx-note\">A crash's disk faults strike only what there is: a synced write to damage, unsynced data to keep a tail of.</div>";
    }
    if let (false, Some(stop)) = (lanes_of.is_empty(), stop) {
        let za = stop.saturating_sub(3 * SECOND).max(t0);
        let _ = write!(
            o,
            "<h3>Node lanes of the last seconds ({} to {})</h3><div class=\"rx-note\">One row per node: its role in each term (thick outline: leader, hatched: candidate, dark: down), then the faults. The red line is where the run stopped.</div>",
            secs(za),
            secs(stop)
        );
        o += &lanes_svg(
            h,
            za,
            stop.max(za + 1),
            Some(stop),
            None,
            &[],
            "panic-lanes",
        );
    }
    o += "</div>";
    o
}

/// One replica's side of a divergence.
#[derive(Clone, Debug, Default)]
struct DivergenceTable {
    group: String,
    index: u64,
    /// replica -> its digest, when recorded.
    replicas: BTreeMap<u64, String>,
    /// (what differs, replica -> value).
    rows: Vec<(String, BTreeMap<u64, String>)>,
    notes: Vec<String>,
    /// Recorded by the run, whose replica ids are its node ids.
    recorded: bool,
}

/// The divergence tables: from the `divergence` events the run recorded,
/// else from the `convergence` failure messages.
fn divergence_tables(h: &History, failures: &[(&str, &str)]) -> Vec<DivergenceTable> {
    let mut out = Vec::new();
    for op in h.ops.iter().filter(|o| o.f == "divergence") {
        let v = &op.value;
        let mut t = DivergenceTable {
            group: v["group"].as_str().unwrap_or("").to_string(),
            index: v["index"].as_u64().unwrap_or(0),
            recorded: true,
            ..Default::default()
        };
        let ids: Vec<u64> = v["replicas"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| {
                        let id = r["id"].as_u64()?;
                        t.replicas
                            .insert(id, r["digest"].as_str().unwrap_or("").to_string());
                        Some(id)
                    })
                    .collect()
            })
            .unwrap_or_default();
        for row in v["rows"].as_array().into_iter().flatten() {
            let name = row["name"].as_str().unwrap_or("?").to_string();
            let values: BTreeMap<u64, String> = ids
                .iter()
                .zip(row["values"].as_array().into_iter().flatten())
                .map(|(id, x)| (*id, x.as_str().unwrap_or("").to_string()))
                .collect();
            t.rows.push((name, values));
        }
        if let Some(n) = v["note"].as_str() {
            t.notes.push(n.to_string());
        }
        out.push(t);
    }
    if !out.is_empty() {
        return out;
    }
    // From the messages: one table per (group, index), one row per thing.
    let mut by: BTreeMap<(String, u64), DivergenceTable> = BTreeMap::new();
    for f in failures.iter().filter(|f| f.0 == "convergence") {
        let m = f.1;
        let (group, a, b, index, rest) =
            if let Some(p) = scan(m, "{}: replicas {} and {} differ at applied index {}: {}") {
                (p[0], p[1], p[2], p[3], p[4])
            } else if let Some(p) = scan(m, "{}: replicas {} and {} at applied index {}: {}") {
                (p[0], p[1], p[2], p[3], p[4])
            } else {
                continue;
            };
        let (Some(a), Some(b), Some(index)) = (num(a), num(b), num(index)) else {
            continue;
        };
        let t = by
            .entry((group.to_string(), index))
            .or_insert_with(|| DivergenceTable {
                group: group.to_string(),
                index,
                ..Default::default()
            });
        t.replicas.entry(a).or_default();
        t.replicas.entry(b).or_default();
        let mut put = |name: String, va: &str, vb: &str| {
            let i = match t.rows.iter().position(|(n, _)| *n == name) {
                Some(i) => i,
                None => {
                    t.rows.push((name, BTreeMap::new()));
                    t.rows.len() - 1
                }
            };
            t.rows[i].1.insert(a, va.to_string());
            t.rows[i].1.insert(b, vb.to_string());
        };
        if let Some(p) = scan(rest, "key {} is {} on replica {} and {} on replica {}") {
            put(format!("key {}", p[0]), p[1], p[3]);
        } else if let Some(p) = scan(
            rest,
            "the session of client {} has {} with different results on replicas {} and {}",
        ) {
            let v = format!("{} (results differ)", p[1]);
            put(format!("session of client {}", p[0]), &v, &v);
        } else if let Some(p) = scan(
            rest,
            "the session of client {} has {} on replica {} and {} on replica {}",
        ) {
            put(format!("session of client {}", p[0]), p[1], p[3]);
        } else {
            t.notes.push(format!("replicas {a} and {b}: {rest}"));
        }
    }
    by.into_values().collect()
}

/// When the replicas that differ from the majority are exactly those that
/// took their state from a snapshot, say so: that is where to look.
fn snapshot_hint(
    t: &DivergenceTable,
    how: &BTreeMap<u64, (u64, Vec<u64>, Vec<u64>)>,
) -> Option<String> {
    if !t.recorded || t.rows.is_empty() {
        return None;
    }
    let mut odd = BTreeSet::new();
    for (_, values) in &t.rows {
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for v in values.values() {
            *count.entry(v.as_str()).or_default() += 1;
        }
        let top = count.values().copied().max()?;
        if count.values().filter(|&&c| c == top).count() != 1 {
            return None;
        }
        odd.extend(
            values
                .iter()
                .filter(|(_, v)| count[v.as_str()] != top)
                .map(|(r, _)| *r),
        );
    }
    let snapshotted: BTreeSet<u64> = t
        .replicas
        .keys()
        .copied()
        .filter(|r| {
            how.get(r)
                .is_some_and(|h| !h.1.is_empty() || !h.2.is_empty())
        })
        .collect();
    (!odd.is_empty() && odd == snapshotted).then(|| {
        let ids: Vec<String> = odd.iter().map(|r| format!("replica {r}")).collect();
        format!(
            "{} alone took state from a snapshot (installed from the leader or restarted from it), and alone differs: what a snapshot carries is the suspect.",
            ids.join(" and ")
        )
    })
}

/// The divergence section, or nothing when check `convergence` held.
pub fn divergence_section(h: &History, failures: &[(&str, &str)]) -> String {
    if !failures.iter().any(|f| f.0 == "convergence") {
        return String::new();
    }
    let tables = divergence_tables(h, failures);
    let mut o = String::new();
    o += "<div class=\"rx\" id=\"divergence\"><h2>Why the convergence check failed: replicas side by side</h2>";
    o += "<div class=\"rx-note\">After healing, every replica reports its whole state machine (data and client sessions) with its applied index. Replicas at the same applied index must hold the same state; each row below is a key or client session on which they differ (red: differs from the majority of the replicas shown).</div>";
    o += "<ul>";
    for f in failures.iter().filter(|f| f.0 == "convergence") {
        let _ = write!(o, "<li>{}</li>", esc(f.1));
    }
    o += "</ul>";
    // Each replica's last applied index, and how it got its state: entries
    // applied one by one, snapshots installed, restarts from its snapshot.
    let mut last_applied: BTreeMap<u64, u64> = BTreeMap::new();
    let mut how: BTreeMap<u64, (u64, Vec<u64>, Vec<u64>)> = BTreeMap::new();
    for e in node_events(h) {
        let index = e.v["index"].as_u64();
        let h = how.entry(e.node).or_default();
        match e.f {
            "applied" => h.0 += 1,
            "snapshot-installed" => h.1.extend(index),
            "recovered" => {
                h.2.extend(e.v["snapshot_index"].as_u64().filter(|&i| i > 0))
            }
            _ => {}
        }
        if let Some(i) = index.filter(|_| matches!(e.f, "applied" | "snapshot-installed")) {
            last_applied.insert(e.node, i);
        }
    }
    let how_text = |n: u64, index: u64| -> Option<String> {
        let (applied, installs, restarts) = how.get(&n)?;
        let mut parts = Vec::new();
        if !installs.is_empty() {
            let l: Vec<String> = installs.iter().map(u64::to_string).collect();
            parts.push(format!(
                "<b>snapshot installed from the leader at {}</b>",
                l.join(", ")
            ));
        }
        if !restarts.is_empty() {
            let l: Vec<String> = restarts.iter().map(u64::to_string).collect();
            parts.push(format!(
                "<b>restarted from its snapshot at {}</b>",
                l.join(", ")
            ));
        }
        parts.push(if *applied <= index {
            format!("{applied} entries applied one by one")
        } else {
            format!("{applied} entries applied one by one (some again after a restart)")
        });
        Some(parts.join("; "))
    };
    for t in &tables {
        let _ = write!(
            o,
            "<h3>group {}: replicas at applied index {}</h3><table class=\"rx-div\" data-applied-index=\"{}\"><tr><th></th>",
            esc(&t.group),
            t.index,
            t.index
        );
        for r in t.replicas.keys() {
            let _ = write!(o, "<th>replica {r}</th>");
        }
        o += "</tr><tr><td>applied index</td>";
        for _ in t.replicas.keys() {
            let _ = write!(o, "<td>{}</td>", t.index);
        }
        o += "</tr>";
        if t.replicas.values().any(|d| !d.is_empty()) {
            o += "<tr><td>state digest</td>";
            for d in t.replicas.values() {
                let _ = write!(o, "<td><code>{}</code></td>", esc(d));
            }
            o += "</tr>";
        }
        if t.recorded && t.replicas.keys().all(|r| how.contains_key(r)) {
            o += "<tr><td>how it got there (node events)</td>";
            for r in t.replicas.keys() {
                let _ = write!(o, "<td>{}</td>", how_text(*r, t.index).unwrap_or_default());
            }
            o += "</tr>";
        }
        for (name, values) in &t.rows {
            // The value most replicas hold.
            let mut count: BTreeMap<&str, usize> = BTreeMap::new();
            for v in values.values() {
                *count.entry(v.as_str()).or_default() += 1;
            }
            let top = count.values().copied().max().unwrap_or(0);
            let unique_top = count.values().filter(|&&c| c == top).count() == 1;
            let _ = write!(o, "<tr class=\"rx-diff\"><td><b>{}</b></td>", esc(name));
            for r in t.replicas.keys() {
                let v = values.get(r).map(String::as_str).unwrap_or("?");
                let class = if unique_top && count.get(v) == Some(&top) {
                    "rx-same"
                } else {
                    "rx-odd"
                };
                let _ = write!(o, "<td class=\"{class}\">{}</td>", esc(v));
            }
            o += "</tr>";
        }
        o += "</table>";
        if let Some(hint) = snapshot_hint(t, &how) {
            let _ = write!(o, "<div class=\"rx-msg\">{}</div>", esc(&hint));
        }
        for n in &t.notes {
            let _ = write!(o, "<div class=\"rx-note\">{}</div>", esc(n));
        }
    }
    if !last_applied.is_empty() {
        o += "<div class=\"rx-note\">Last applied index per node in the node events (a snapshot installed counts): ";
        let parts: Vec<String> = last_applied
            .iter()
            .map(|(n, i)| format!("n{n}: {i}"))
            .collect();
        o += &esc(&parts.join(", "));
        o += "</div>";
    }
    o += "</div>";
    o
}

/// The history with the node events of `nodes` only (and everything else).
fn only_nodes(h: &History, nodes: &[u64]) -> History {
    History {
        ops: h
            .ops
            .iter()
            .filter(|o| node_of(&o.process).is_none_or(|n| nodes.contains(&n)))
            .cloned()
            .collect(),
        semantics: h.semantics,
    }
}

/// Both sections (empty when neither check failed), with their style.
/// `groups`: the Raft groups' nodes when there are several (terms and
/// indexes are per group); the diagram shows the group of the first
/// violation it can read.
pub fn sections_in(h: &History, failures: &[(&str, &str)], groups: &[&[u64]]) -> String {
    let named = failures
        .iter()
        .filter(|f| f.0 == "raft")
        .find_map(|f| parse_violation(f.1))
        .map(|v| v.nodes()[0]);
    let group = named.and_then(|n| groups.iter().find(|g| g.contains(&n)));
    let raft = match group {
        Some(g) => raft_section(&only_nodes(h, g), failures),
        None => raft_section(h, failures),
    };
    let body = panic_section(h, failures) + &raft + &divergence_section(h, failures);
    if body.is_empty() {
        body
    } else {
        format!("{STYLE}{body}")
    }
}

/// Both sections (empty when neither check failed), with their style, for
/// a run of one Raft group.
pub fn sections(h: &History, failures: &[(&str, &str)]) -> String {
    sections_in(h, failures, &[])
}

/// A scenario's report page with the sections for the run's failures on
/// top (see `Scenario::report`).
#[cfg(madsim)]
pub fn report_above(page: String, r: &harness::runner::RunResult) -> String {
    report_above_groups(page, r, &[])
}

/// [`report_above`] for a run of several Raft groups (`groups`: each
/// group's nodes, as the history names them).
#[cfg(madsim)]
pub fn report_above_groups(
    page: String,
    r: &harness::runner::RunResult,
    groups: &[&[u64]],
) -> String {
    let failures: Vec<(&str, &str)> = r
        .failures
        .iter()
        .map(|f| (f.check, f.message.as_str()))
        .collect();
    insert_at_body(page, sections_in(&r.history, &failures, groups))
}

/// `page` with the sections inserted at the top of its body.
pub fn above(page: String, h: &History, failures: &[(&str, &str)]) -> String {
    insert_at_body(page, sections(h, failures))
}

/// [`above`] for a run of several Raft groups (`groups`: each group's
/// nodes, as the history names them).
pub fn above_groups(
    page: String,
    h: &History,
    failures: &[(&str, &str)],
    groups: &[&[u64]],
) -> String {
    insert_at_body(page, sections_in(h, failures, groups))
}

fn insert_at_body(page: String, extra: String) -> String {
    if extra.is_empty() {
        return page;
    }
    match page
        .find("<body")
        .and_then(|i| page[i..].find('>').map(|j| i + j + 1))
    {
        Some(at) => format!("{}{extra}{}", &page[..at], &page[at..]),
        None => format!("{extra}{page}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        v.iter().map(|(c, m)| (*c, m.as_str())).collect()
    }
    use crate::checks::RaftChecker;
    use bookstore::node::NodeEvent;
    use raft::Role;

    /// A history of node events (and the Raft check's messages over them).
    struct Hist {
        lines: Vec<String>,
        checker: RaftChecker,
        t: u64,
    }

    impl Hist {
        fn new() -> Hist {
            Hist {
                lines: Vec::new(),
                checker: RaftChecker::default(),
                t: 0,
            }
        }

        fn ev(&mut self, node: u64, ev: NodeEvent) {
            self.t += 1_000_000;
            let (f, v) = ev.to_json();
            self.checker.observe(node, &ev);
            self.lines.push(
                serde_json::json!({"process": format!("n{node}"), "type": "info", "f": f, "value": v, "time": self.t})
                    .to_string(),
            );
        }

        fn nemesis(&mut self, f: &str, value: serde_json::Value) {
            self.t += 1_000_000;
            self.lines.push(
                serde_json::json!({"process": "nemesis", "type": "info", "f": f, "value": value, "time": self.t})
                    .to_string(),
            );
        }

        fn leader(&mut self, node: u64, term: u64, last_index: u64, runs: Vec<(u64, u64)>) {
            self.ev(
                node,
                NodeEvent::Elected {
                    term,
                    snapshot_index: 0,
                    last_index,
                    runs,
                },
            );
            self.ev(
                node,
                NodeEvent::Role {
                    term,
                    role: Role::Leader,
                    leader: Some(node),
                },
            );
        }

        fn apply(&mut self, node: u64, index: u64, term: u64, now: u64) {
            self.ev(node, NodeEvent::Commit { index, term: now });
            self.ev(
                node,
                NodeEvent::Applied {
                    index,
                    term,
                    digest: index * 100 + term,
                },
            );
        }

        fn done(self) -> (History, Vec<(&'static str, String)>) {
            let h = History::from_jsonl(&(self.lines.join("\n") + "\n")).unwrap();
            let f = self
                .checker
                .violations
                .iter()
                .map(|m| ("raft", m.clone()))
                .collect();
            (h, f)
        }
    }

    /// Figure 8: n1 leads term 2 and writes index 2 (term 2) to n2; n3
    /// leads term 3 with index 2 of term 3 in its log; n1, back in term 4,
    /// commits index 2 of term 2 by counting replicas and applies it; n3
    /// wins term 5 without it.
    fn figure8() -> (History, Vec<(&'static str, String)>) {
        let mut h = Hist::new();
        for n in 1..=3 {
            h.ev(
                n,
                NodeEvent::Recovered {
                    term: 0,
                    vote: None,
                    last_index: 0,
                    snapshot_index: 0,
                    cut_bytes: 0,
                    floor: None,
                    damaged: false,
                },
            );
        }
        h.leader(1, 1, 1, vec![(1, 1)]);
        for n in 1..=3 {
            h.apply(n, 1, 1, 1);
        }
        h.leader(1, 2, 1, vec![(1, 1)]);
        h.nemesis(
            "start",
            serde_json::json!({"id": 0, "fault": {"kind": "partition", "groups": [[1, 2], [3]]}}),
        );
        h.leader(3, 3, 2, vec![(1, 1), (2, 3)]);
        h.leader(1, 4, 3, vec![(1, 1), (2, 2), (3, 4)]);
        h.apply(1, 2, 2, 4);
        h.nemesis(
            "end",
            serde_json::json!({"id": 0, "fault": {"kind": "partition", "groups": [[1, 2], [3]]}}),
        );
        h.leader(3, 5, 2, vec![(1, 1), (2, 3)]);
        h.apply(3, 2, 3, 5);
        h.done()
    }

    #[test]
    fn the_messages_of_the_raft_check_parse_back() {
        let (_, failures) = figure8();
        let v: Vec<Violation> = failures
            .iter()
            .map(|f| parse_violation(&f.1).expect(&f.1))
            .collect();
        assert_eq!(
            v,
            vec![
                Violation::LeaderLacks {
                    leader: 3,
                    term: 5,
                    index: 2,
                    entry_term: 2,
                    applied_by: 1
                },
                Violation::Replaced {
                    node: 3,
                    index: 2,
                    term: 3,
                    other: 1,
                    other_term: 2
                },
            ]
        );
        // The other messages of checks.rs, as it words them.
        let mut c = RaftChecker::default();
        let leader = |t| NodeEvent::Role {
            term: t,
            role: Role::Leader,
            leader: None,
        };
        c.observe(1, &leader(3));
        c.observe(2, &leader(3));
        c.observe(1, &NodeEvent::Commit { index: 10, term: 3 });
        c.observe(1, &NodeEvent::ReadArrived { id: 1 });
        c.observe(1, &NodeEvent::ReadServed { id: 1, applied: 9 });
        c.observe(
            2,
            &NodeEvent::Promised {
                term: 4,
                vote: Some(1),
            },
        );
        c.observe(
            2,
            &NodeEvent::Recovered {
                term: 3,
                vote: None,
                last_index: 0,
                snapshot_index: 0,
                cut_bytes: 0,
                floor: None,
                damaged: false,
            },
        );
        let v: Vec<Option<Violation>> = c.violations.iter().map(|m| parse_violation(m)).collect();
        assert_eq!(
            v,
            vec![
                Some(Violation::TwoLeaders {
                    term: 3,
                    first: 1,
                    second: 2
                }),
                Some(Violation::StaleRead {
                    node: 1,
                    applied: 9,
                    required: 10
                }),
                Some(Violation::LostPromise {
                    node: 2,
                    term: 3,
                    promised_term: 4
                }),
            ]
        );
    }

    #[test]
    fn the_log_diagram_of_figure_8_puts_each_term_in_its_cell() {
        let (h, failures) = figure8();
        let d = log_diagram(&h, &refs(&failures)).expect("a diagram");
        assert_eq!(d.focus, 2);
        assert_eq!((d.lo, d.hi), (1, 3));
        assert_eq!(d.nodes, vec![1, 2, 3]);
        let term = |n, i| d.cells[&(n, i)].term;
        // n3 at its election in term 5: index 2 of term 3 in its log, not
        // applied yet.
        assert_eq!(term(3, 1), Some(1));
        assert_eq!(term(3, 2), Some(3));
        assert_eq!(d.cells[&(3, 2)].applied_term, None);
        // n1: its log at its election in term 4, entry 2 of term 2 applied.
        assert_eq!(term(1, 2), Some(2));
        assert_eq!(d.cells[&(1, 2)].applied_term, Some(2));
        assert_eq!(term(1, 3), Some(4));
        // n2 reported only what it applied.
        assert_eq!(term(2, 1), Some(1));
        assert_eq!(term(2, 2), None);
        assert_eq!(d.marks[&1].0, 2, "n1's commit index");
        assert_eq!(d.marks[&1].1, 2, "n1's applied index");
        assert_eq!(d.marks[&3].1, 1, "n3 applied only entry 1 by then");
        assert_eq!(
            d.leaders,
            BTreeMap::from([(1, 1), (2, 1), (3, 3), (4, 1), (5, 3)])
        );
        assert_eq!(d.faults.len(), 1, "{:?}", d.faults);
        assert!(d.faults[0].contains("partition {1,2} | {3}"));
        let moments: Vec<(u64, &str)> = d.moments.iter().map(|m| (m.0, m.2.as_str())).collect();
        assert_eq!(moments, vec![(1, "commits 2"), (1, "applies 2 (t2)")]);

        let html = sections(&h, &refs(&failures));
        assert!(html.contains("id=\"raft-log\" data-violation-index=\"2\""));
        assert!(html.contains(
            "class=\"rx-cell rx-held rx-at\" style=\"background:#bebada\" data-index=\"2\" data-term=\"3\""
        ));
        assert!(html.contains("id=\"raft-lanes-zoom\""));
        assert!(html.contains("LEADER t5") || html.contains("L5"));
        assert!(!html.contains("id=\"divergence\""));
    }

    #[test]
    fn a_stale_read_is_placed_at_the_read_that_was_stale() {
        let mut h = Hist::new();
        h.leader(1, 1, 0, vec![]);
        h.apply(1, 1, 1, 1);
        h.apply(1, 2, 1, 1);
        // A fresh read at applied index 2, then n2 commits 3 in term 2 and
        // a read that arrives after that is answered at 2.
        h.ev(1, NodeEvent::ReadArrived { id: 1 });
        h.ev(1, NodeEvent::ReadServed { id: 1, applied: 2 });
        h.leader(2, 2, 2, vec![(1, 1)]);
        h.apply(2, 3, 2, 2);
        h.ev(1, NodeEvent::ReadArrived { id: 2 });
        h.ev(1, NodeEvent::ReadServed { id: 2, applied: 2 });
        let (h, failures) = h.done();
        assert_eq!(failures.len(), 1, "{failures:?}");
        let d = log_diagram(&h, &refs(&failures)).expect("a diagram");
        assert_eq!(d.focus, 3);
        assert_eq!(d.at_pos, h.ops.len() - 1, "the second read, not the first");
        assert_eq!(d.cells[&(2, 3)].term, Some(2));
        assert_eq!(d.cells[&(1, 3)].term, None);
        assert_eq!(d.marks[&1].1, 2);
        let arrived: Vec<&str> = d.moments.iter().map(|m| m.2.as_str()).collect();
        assert_eq!(arrived, vec!["read arrives"]);
    }

    #[test]
    fn an_uncommitted_tail_replaced_after_an_election_shows_what_was_applied() {
        let mut h = Hist::new();
        h.leader(1, 1, 1, vec![(1, 1)]);
        h.apply(1, 1, 1, 1);
        h.apply(3, 1, 1, 1);
        // n3 is elected in term 3 with its own entry 2 (never committed),
        // then follows n1 of term 4 and applies n1's entry 2.
        h.leader(3, 3, 2, vec![(1, 1), (2, 3)]);
        h.leader(1, 4, 2, vec![(1, 1), (2, 2)]);
        h.apply(1, 2, 2, 4);
        h.apply(3, 2, 2, 4);
        h.leader(2, 4, 1, vec![(1, 1)]);
        let (h, failures) = h.done();
        assert!(
            failures[0].1.contains("two leaders in term 4"),
            "{failures:?}"
        );
        let d = log_diagram(&h, &refs(&failures)).expect("a diagram");
        assert_eq!(d.focus, 2);
        assert_eq!(d.cells[&(3, 2)].term, Some(2));
        assert_eq!(d.cells[&(3, 2)].applied_term, Some(2));
        assert_eq!(d.cells[&(2, 1)].term, Some(1));
        assert_eq!(d.cells[&(2, 2)].term, None);
    }

    #[test]
    fn with_several_groups_the_diagram_shows_the_violating_group_only() {
        let (h, failures) = figure8();
        // A second group's nodes 4-6, with their own terms and indexes.
        let mut text = h.to_jsonl();
        for n in 4..=6 {
            text += &format!("{{\"process\":\"n{n}\",\"type\":\"info\",\"f\":\"applied\",\"value\":{{\"index\":2,\"term\":9,\"digest\":\"0\"}},\"time\":1}}\n");
        }
        let h = History::from_jsonl(&text).unwrap();
        let html = sections_in(&h, &refs(&failures), &[&[1, 2, 3], &[4, 5, 6]]);
        assert!(html.contains("<tr data-node=\"3\">"));
        assert!(!html.contains("<tr data-node=\"4\">"));
        assert!(!html.contains("node n5"));
        let mixed = sections(&h, &refs(&failures));
        assert!(mixed.contains("<tr data-node=\"4\">"));
    }

    #[test]
    fn no_raft_events_or_odd_input_give_no_section() {
        let h = History::from_jsonl(
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"k\",\"time\":1}\n\
             {\"process\":0,\"type\":\"ok\",\"f\":\"get\",\"key\":\"k\",\"value\":1,\"time\":2}\n",
        )
        .unwrap();
        let raft = vec![("raft", "node 3 became leader of term 5 with an entry of term 3 there, but entry 9 of term 2 (applied by node 1) was committed before term 5: a leader lacks a committed entry".to_string())];
        assert_eq!(sections(&h, &refs(&raft)), "");
        assert_eq!(sections(&h, &[]), "");
        let page = "<html><body>x</body></html>".to_string();
        assert_eq!(above(page.clone(), &h, &refs(&raft)), page);
        // Node events with odd values, and messages that do not parse.
        let odd = History::from_jsonl(
            "{\"process\":\"n1\",\"type\":\"info\",\"f\":\"elected\",\"value\":{\"runs\":\"x\"}}\n\
             {\"process\":\"n2\",\"type\":\"info\",\"f\":\"applied\",\"value\":null}\n\
             {\"process\":\"nx\",\"type\":\"info\",\"f\":\"role\",\"value\":[1]}\n\
             {\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"end\",\"value\":{}}\n",
        )
        .unwrap();
        let junk = vec![
            ("raft", "node x became leader of term".to_string()),
            ("raft", "".to_string()),
        ];
        assert_eq!(sections(&odd, &refs(&junk)), "");
        // A message that parses but names events the history lacks.
        assert_eq!(sections(&odd, &refs(&raft)), "");
        // A convergence failure always gets its section, even unparsed.
        let conv = vec![("convergence", "kv: something odd".to_string())];
        assert!(sections(&odd, &refs(&conv)).contains("id=\"divergence\""));
    }

    #[test]
    fn a_recorded_divergence_sets_every_replica_side_by_side() {
        let h = History::from_jsonl(concat!(
            "{\"process\":\"n1\",\"type\":\"info\",\"f\":\"snapshot-installed\",\"value\":{\"index\":60,\"term\":1},\"time\":1}\n",
            "{\"process\":\"n2\",\"type\":\"info\",\"f\":\"applied\",\"value\":{\"index\":60,\"term\":1,\"digest\":\"0\"},\"time\":2}\n",
            "{\"process\":\"n3\",\"type\":\"info\",\"f\":\"applied\",\"value\":{\"index\":60,\"term\":1,\"digest\":\"0\"},\"time\":3}\n",
            "{\"process\":\"checker\",\"type\":\"info\",\"f\":\"divergence\",\"value\":{\"group\":\"kv\",\"index\":60,",
            "\"replicas\":[{\"id\":1,\"digest\":\"aa\"},{\"id\":2,\"digest\":\"bb\"},{\"id\":3,\"digest\":\"bb\"}],",
            "\"rows\":[{\"name\":\"session of client 1\",\"values\":[\"no session\",\"last seq 58\",\"last seq 58\"]}]},\"time\":4}\n",
        ))
        .unwrap();
        let f = vec![("convergence", "kv: replicas 1 and 2 differ at applied index 60: the session of client 1 has no session on replica 1 and last seq 58 on replica 2".to_string())];
        let html = sections(&h, &refs(&f));
        assert!(html.contains("data-applied-index=\"60\""));
        assert!(html.contains("<th>replica 3</th>"));
        assert!(html.contains("<td class=\"rx-odd\">no session</td><td class=\"rx-same\">last seq 58</td><td class=\"rx-same\">last seq 58</td>"));
        assert!(html.contains("snapshot installed from the leader at 60"));
        assert!(html.contains("replica 1 alone took state from a snapshot"));
        assert!(!html.contains("id=\"raft-log\""));
    }

    #[test]
    fn a_divergence_message_becomes_a_table() {
        let h = History::from_jsonl("").unwrap();
        let f = vec![
            ("convergence", "kv: replicas 1 and 2 differ at applied index 60: the session of client 1 has no session on replica 1 and last seq 58 on replica 2".to_string()),
            ("convergence", "kv: replicas 1 and 3 differ at applied index 60: the session of client 1 has no session on replica 1 and last seq 58 on replica 3".to_string()),
            ("convergence", "kv: replicas 1 and 2 differ at applied index 61: key \"k1\" is absent on replica 1 and \"5\" on replica 2".to_string()),
        ];
        let t = divergence_tables(&h, &refs(&f));
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].index, 60);
        assert_eq!(
            t[0].replicas.keys().copied().collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(t[0].rows.len(), 1);
        assert_eq!(t[0].rows[0].0, "session of client 1");
        assert_eq!(t[0].rows[0].1[&1], "no session");
        assert_eq!(t[0].rows[0].1[&3], "last seq 58");
        assert_eq!(t[1].rows[0].0, "key \"k1\"");
        assert_eq!(t[1].rows[0].1[&2], "\"5\"");
        let html = divergence_section(&h, &refs(&f));
        assert!(html.contains("<td class=\"rx-odd\">no session</td>"));
    }

    #[test]
    fn a_panic_message_names_its_host() {
        assert_eq!(host_named_in("node 3 stopped: wal record: bad"), Some(3));
        assert_eq!(
            host_named_in("stock service on host 12 stopped: store unavailable"),
            Some(12)
        );
        assert_eq!(
            host_named_in("catalog replica on host 21 stopped: x stopped: y"),
            Some(21)
        );
        assert_eq!(
            host_named_in("assertion `left == right` failed: recovered log has a gap"),
            None
        );
        assert_eq!(host_named_in("node x stopped: y"), None);
        assert_eq!(
            host_named_in("on host 2: assertion failed: recovered log has a gap"),
            Some(2)
        );
    }

    /// A node that restarted after a crash which rotted a synced write,
    /// and stopped on replaying its log (`histories/kv-wal-no-checksum`).
    fn stopped_on_restart() -> History {
        let mut h = Hist::new();
        h.leader(1, 1, 1, vec![(1, 1)]);
        h.apply(1, 1, 1, 1);
        let crash =
            serde_json::json!({"kind": "crash", "node": 2, "damage": "rot", "torn_write": false});
        h.nemesis("start", serde_json::json!({"id": 4, "fault": crash}));
        h.nemesis(
            "start",
            serde_json::json!({"id": 5, "fault": {"kind": "loss", "rate": 0.1}}),
        );
        h.nemesis(
            "end",
            serde_json::json!({"id": 5, "fault": {"kind": "loss", "rate": 0.1}}),
        );
        h.nemesis("end", serde_json::json!({"id": 4, "fault": crash}));
        h.done().0
    }

    #[test]
    fn a_panic_gets_the_faults_of_its_host_and_the_last_seconds() {
        let h = stopped_on_restart();
        assert_eq!(panic_section(&h, &[("raft", "x")]), "");
        let html = panic_section(
            &h,
            &[("panic", "node 2 stopped: wal record: invalid tag value: 0")],
        );
        assert!(
            html.contains("Why the run stopped: a panic on host 2"),
            "{html}"
        );
        assert!(html.contains("The run stopped at 0.008 s."));
        assert!(html.contains("The faults aimed at host 2"));
        assert!(html.contains("<b>flip a bit of one synced write</b>"));
        assert!(html.contains("class=\"rx-restart\""));
        assert!(html.contains("0.008 s (restarted, 0 ms before the run stopped)"));
        // The loss names no host: not one of host 2's faults (the lanes
        // below show every fault).
        let table = &html[html.find("<table").unwrap()..html.find("</table>").unwrap()];
        assert!(table.contains("crash damage=rot node=2") && !table.contains("loss rate"));
        assert!(html.contains("id=\"panic-lanes\""));
        // A message without a host: the faults of the last second.
        let html = panic_section(
            &h,
            &[("panic", "assertion failed: recovered log has a gap")],
        );
        assert!(html.contains("names no host"));
        assert!(html.contains("crash damage=rot node=2"));
        assert!(html.contains("loss rate=0.1"));
        // On top of the page, with the style.
        let page = above(
            "<html><body><p>page</p></body></html>".into(),
            &h,
            &[("panic", "node 2 stopped: x")],
        );
        assert!(page.contains("<body><style>"));
        assert!(page.find("panic-explain") < page.find("<p>page</p>"));
        // An empty history: no time, no lanes, nothing to list.
        let empty = History::from_jsonl("").unwrap();
        let html = panic_section(&empty, &[("panic", "node 1 stopped: x")]);
        assert!(html.contains("none") && !html.contains("stopped at") && !html.contains("<svg"));
    }

    /// A fault still in effect when the run stopped is listed when the
    /// message names no host, however long ago it started; only the last
    /// restart is marked as the one the run stopped on.
    #[test]
    fn a_panic_without_a_host_lists_the_faults_still_in_effect() {
        let mut h = Hist::new();
        let part = serde_json::json!({"kind": "partition", "groups": [[1], [2, 3]]});
        h.nemesis("start", serde_json::json!({"id": 1, "fault": part}));
        h.t += 5_000_000_000;
        for (id, node) in [(2, 1), (3, 3)] {
            let crash = serde_json::json!({"kind": "crash", "node": node});
            h.nemesis("start", serde_json::json!({"id": id, "fault": crash}));
            h.nemesis("end", serde_json::json!({"id": id, "fault": crash}));
        }
        let (h, _) = h.done();
        let html = panic_section(&h, &[("panic", "assertion failed")]);
        assert!(html.contains("partition {1} | {2,3}"), "{html}");
        assert_eq!(html.matches("class=\"rx-restart\"").count(), 1);
        let marked = &html[html.find("rx-restart").unwrap()..];
        assert!(marked[..marked.find("</tr>").unwrap()].contains("node=3"));
        assert!(html.contains("lose the unsynced writes"));
    }
}
