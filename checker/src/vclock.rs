//! # Vector-clock checking: does a log of events respect a happens-before scheme?
//!
//! A system whose events carry vector clocks (an orchestrator and services
//! running the steps of a workflow, say) writes one JSON line per event. A
//! *scheme* declares, by event name, which events must happen before which
//! (`happens_before`, a directed acyclic graph) and which must be concurrent
//! (`concurrent`); optionally which event carries a run's *final* clock. This
//! module checks a log against the scheme; it knows nothing of the system.
//!
//! ## Vector clocks
//!
//! A clock maps process names to counters; an entry that is absent is 0, so
//! `{"p":1}` and `{"p":1,"q":0}` are the same clock. For clocks `A` and `B`:
//!
//! - `A <= B` when every entry of `A` is at most the same entry of `B`;
//! - `A < B` (A happens before B) when `A <= B` and `A != B`;
//! - `A` and `B` are *concurrent* (incomparable) when neither `A <= B` nor
//!   `B <= A`. Two events with equal clocks are not concurrent: one of them
//!   failed to tick.
//!
//! A correct process ticks its own entry on every event it runs, and on a
//! receive first merges the incoming clock (entry-wise maximum), then ticks.
//! Then `A < B` exactly when a chain of program order and messages leads from
//! `A` to `B`.
//!
//! ## The log
//!
//! One event per line: `group` (one run of the scheme, e.g. one attempt of
//! one order), `source` (the log stream that wrote it: one incarnation of a
//! process), `process` (the clock entry the event's owner ticks), `event`
//! (a name of the scheme) and `clock`. Other fields are ignored, blank lines
//! skipped. Lines keep their order within a file; several files are simply
//! concatenated.
//!
//! ## The checks
//!
//! - `order`: for each declared edge `x -> y` and each instance of `y` in a
//!   group, *some* instance of `x` in the group has `clock(x) < clock(y)`;
//!   if the group has `y` but no `x` at all: `missing-predecessor`. The
//!   existence semantics is deliberate: after a failover an event may be run
//!   again by another incarnation, and its successors may have merged either
//!   run's clock; one causal predecessor is what the scheme asks for. Direct
//!   edges suffice, order being transitive. A group may stop early (an
//!   aborted attempt): an event that never happened is no violation.
//! - `concurrency`: for each declared pair `(x, y)`, every instance of `x`
//!   and every instance of `y` in a group are concurrent.
//! - `own-clock`: per group, source and process, the event's own entry
//!   `clock[process]` is at least 1 and strictly increases in log order.
//! - `final`: the final event's clock dominates (`>=`) every other event's
//!   clock of its group; a group has at most one final event.
//! - `unknown-event`: an event name the scheme does not declare. Such events
//!   take part in the own-clock check only.
//!
//! [`Stats`] counts what was checked, so that "no violation" says how much;
//! a log with no event at all is [`VcVerdict::NothingChecked`], not valid.
//!
//! ```
//! use checker::vclock::{check, parse_log, Scheme, VcVerdict};
//!
//! let scheme = Scheme::from_json(
//!     r#"{"name":"s","happens_before":[["start","work"]],"final":"done"}"#,
//! )
//! .unwrap();
//! let log = parse_log(
//!     r#"{"group":"g1","source":"boss-1","process":"boss","event":"start","clock":{"boss":1}}
//! {"group":"g1","source":"worker-1","process":"worker","event":"work","clock":{"worker":1}}"#,
//!     "log.jsonl",
//! )
//! .unwrap();
//! let r = check(&scheme, &log);
//! assert_eq!(r.verdict, VcVerdict::Invalid); // the worker did not merge start's clock
//! assert!(r.explain().contains("work"));
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};

/// A vector clock: process name -> counter; absent entries are 0.
pub type Clock = BTreeMap<String, u64>;

/// `a <= b`, entry by entry (absent entries are 0).
pub fn clock_le(a: &Clock, b: &Clock) -> bool {
    a.iter().all(|(k, &v)| v <= b.get(k).copied().unwrap_or(0))
}

/// `a < b`: `a <= b` and the clocks differ (ignoring zero entries).
pub fn clock_lt(a: &Clock, b: &Clock) -> bool {
    clock_le(a, b) && !clock_le(b, a)
}

/// Neither `a <= b` nor `b <= a`.
pub fn concurrent(a: &Clock, b: &Clock) -> bool {
    !clock_le(a, b) && !clock_le(b, a)
}

/// The entries where `a` exceeds `b` (why `a <= b` fails), as `k: a > b`.
fn excess(a: &Clock, b: &Clock) -> Vec<String> {
    a.iter()
        .filter_map(|(k, &v)| {
            let w = b.get(k).copied().unwrap_or(0);
            (v > w).then(|| format!("{k}: {v} > {w}"))
        })
        .collect()
}

/// A clock as `{k:v, ...}`, zero entries left out.
pub fn show_clock(c: &Clock) -> String {
    let parts: Vec<String> = c
        .iter()
        .filter(|(_, &v)| v != 0)
        .map(|(k, v)| format!("{k}:{v}"))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// The declared happens-before scheme.
#[derive(Clone, Debug)]
pub struct Scheme {
    pub name: String,
    /// Events as nodes, declared `happens_before` pairs as edges.
    pub graph: DiGraph<String, ()>,
    /// Declared concurrent pairs, as node pairs of `graph`.
    pub concurrent: Vec<(NodeIndex, NodeIndex)>,
    /// The event that carries a group's final clock.
    pub final_event: Option<NodeIndex>,
    index: HashMap<String, NodeIndex>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SchemeFile {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: Option<String>,
    /// Events that take part in no pair (they are known, not unknown).
    #[serde(default)]
    events: Vec<String>,
    #[serde(default)]
    happens_before: Vec<(String, String)>,
    #[serde(default)]
    concurrent: Vec<(String, String)>,
    #[serde(default, rename = "final")]
    final_event: Option<String>,
}

impl Scheme {
    /// Reads a scheme: `{"name", "happens_before": [[x,y]...],
    /// "concurrent": [[x,y]...], "final": name, "events": [names]}`. The
    /// events are those named in `happens_before`, `events` and `final`.
    /// Errors: a cycle, a concurrent pair the scheme orders (a path either
    /// way), a name of a concurrent pair no other field declares, a final
    /// event that must happen before another or be concurrent with one.
    pub fn from_json(text: &str) -> Result<Scheme, String> {
        let f: SchemeFile =
            serde_json::from_str(text).map_err(|e| format!("not a valid scheme: {e}"))?;
        let _ = f.description;
        let mut graph = DiGraph::new();
        let mut index: HashMap<String, NodeIndex> = HashMap::new();
        let mut node = |graph: &mut DiGraph<String, ()>, name: &str| -> Result<NodeIndex, String> {
            if name.is_empty() {
                return Err("an event name is empty".into());
            }
            Ok(*index
                .entry(name.to_string())
                .or_insert_with(|| graph.add_node(name.to_string())))
        };
        for n in &f.events {
            node(&mut graph, n)?;
        }
        for (x, y) in &f.happens_before {
            let (a, b) = (node(&mut graph, x)?, node(&mut graph, y)?);
            graph.update_edge(a, b, ());
        }
        let final_event = match &f.final_event {
            Some(n) => Some(node(&mut graph, n)?),
            None => None,
        };
        if graph.node_count() == 0 {
            return Err(
                "the scheme declares no event (give happens_before, events or final)".into(),
            );
        }
        // A cycle: name the events of one strongly connected component.
        for scc in petgraph::algo::tarjan_scc(&graph) {
            let self_loop = scc.len() == 1 && graph.contains_edge(scc[0], scc[0]);
            if scc.len() > 1 || self_loop {
                let mut names: Vec<&str> = scc.iter().map(|&n| graph[n].as_str()).collect();
                names.sort_unstable();
                return Err(format!(
                    "happens_before has a cycle through {}: no execution can satisfy it",
                    names.join(", ")
                ));
            }
        }
        let mut concurrent = Vec::new();
        for (x, y) in &f.concurrent {
            let look = |n: &str| {
                index.get(n).copied().ok_or_else(|| {
                    format!(
                        "concurrent pair [{x:?}, {y:?}]: unknown event {n:?} (declare it in \
                         happens_before or events)"
                    )
                })
            };
            let (a, b) = (look(x)?, look(y)?);
            if a == b {
                return Err(format!(
                    "concurrent pair [{x:?}, {y:?}]: an event cannot be concurrent with itself"
                ));
            }
            for (p, q) in [(a, b), (b, a)] {
                if petgraph::algo::has_path_connecting(&graph, p, q, None) {
                    return Err(format!(
                        "concurrent pair [{x:?}, {y:?}]: happens_before orders {} before {}",
                        graph[p], graph[q]
                    ));
                }
            }
            if Some(a) == final_event || Some(b) == final_event {
                return Err(format!(
                    "concurrent pair [{x:?}, {y:?}]: the final event dominates every event, it \
                     cannot be concurrent with one"
                ));
            }
            concurrent.push((a, b));
        }
        if let Some(fin) = final_event {
            if let Some(next) = graph.neighbors(fin).next() {
                return Err(format!(
                    "happens_before orders the final event {:?} before {:?}, but the final \
                     event's clock must dominate every event's",
                    graph[fin], graph[next]
                ));
            }
        }
        Ok(Scheme {
            name: f.name,
            graph,
            concurrent,
            final_event,
            index,
        })
    }

    /// The node of an event name, if the scheme declares it.
    pub fn event(&self, name: &str) -> Option<NodeIndex> {
        self.index.get(name).copied()
    }
}

/// One line of a log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    pub group: String,
    pub source: String,
    pub process: String,
    pub event: String,
    pub clock: Clock,
    /// Where it was read: file name and 1-based line.
    pub file: String,
    pub line: usize,
}

impl Event {
    fn show(&self) -> String {
        format!(
            "{} by {} ({}) {} at {}:{}",
            self.event,
            self.process,
            self.source,
            show_clock(&self.clock),
            self.file,
            self.line
        )
    }
}

#[derive(Deserialize)]
struct Line {
    group: String,
    source: String,
    process: String,
    event: String,
    clock: Clock,
}

/// Reads a JSON Lines log; `file_name` names it in errors (`file:line: ...`)
/// and in the events.
pub fn parse_log(text: &str, file_name: &str) -> Result<Vec<Event>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(raw).map_err(|e| {
            format!(
                "{file_name}:{}: not an event line ({e}); expected {{\"group\", \"source\", \
                 \"process\", \"event\", \"clock\": {{process: counter}}}}",
                i + 1
            )
        })?;
        out.push(Event {
            group: l.group,
            source: l.source,
            process: l.process,
            event: l.event,
            clock: l.clock,
            file: file_name.to_string(),
            line: i + 1,
        });
    }
    Ok(out)
}

/// What a violation breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Order,
    MissingPredecessor,
    Concurrency,
    OwnClock,
    Final,
    UnknownEvent,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Order,
        Kind::MissingPredecessor,
        Kind::Concurrency,
        Kind::OwnClock,
        Kind::Final,
        Kind::UnknownEvent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Order => "order",
            Kind::MissingPredecessor => "missing-predecessor",
            Kind::Concurrency => "concurrency",
            Kind::OwnClock => "own-clock",
            Kind::Final => "final",
            Kind::UnknownEvent => "unknown-event",
        }
    }
}

/// One broken rule: its group, the events involved (with their clocks and
/// where they were read) and a one-line explanation.
#[derive(Clone, Debug, Serialize)]
pub struct Violation {
    pub group: String,
    pub kind: Kind,
    pub events: Vec<Event>,
    pub explanation: String,
}

/// How much was checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub groups: usize,
    pub events: usize,
    pub sources: usize,
    pub groups_with_final: usize,
    /// (declared edge, instance of its later event) obligations checked.
    pub order_checked: usize,
    /// (instance, instance) pairs of declared concurrent events compared.
    pub concurrency_checked: usize,
    /// Events whose own entry was checked.
    pub own_clock_checked: usize,
    /// Events compared with their group's final event.
    pub final_checked: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VcVerdict {
    Valid,
    Invalid,
    /// The log holds no event: nothing was checked.
    NothingChecked,
}

impl VcVerdict {
    pub fn name(self) -> &'static str {
        match self {
            VcVerdict::Valid => "valid",
            VcVerdict::Invalid => "invalid",
            VcVerdict::NothingChecked => "nothing to check",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct VcResult {
    pub scheme: String,
    pub verdict: VcVerdict,
    pub violations: Vec<Violation>,
    pub stats: Stats,
}

impl VcResult {
    /// Violations of one kind.
    pub fn of(&self, kind: Kind) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(move |v| v.kind == kind)
    }

    /// Whether some violation is of this kind.
    pub fn has(&self, kind: Kind) -> bool {
        self.of(kind).next().is_some()
    }

    /// The result as text: what was checked, then each violation.
    pub fn explain(&self) -> String {
        let s = &self.stats;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "{} groups ({} with a final event), {} events from {} sources",
            s.groups, s.groups_with_final, s.events, s.sources
        );
        let _ = writeln!(
            t,
            "checked: order {} (edge, event) obligations, concurrency {} pairs, own-clock {} \
             events, final {} events against their final",
            s.order_checked, s.concurrency_checked, s.own_clock_checked, s.final_checked
        );
        match self.verdict {
            VcVerdict::NothingChecked => {
                let _ = writeln!(t, "nothing to check: the logs hold no event");
            }
            VcVerdict::Valid => {
                let _ = writeln!(t, "no violation");
            }
            VcVerdict::Invalid => {
                let mut counts: BTreeMap<Kind, usize> = BTreeMap::new();
                for v in &self.violations {
                    *counts.entry(v.kind).or_default() += 1;
                }
                let list: Vec<String> = counts
                    .iter()
                    .map(|(k, n)| format!("{} x{n}", k.name()))
                    .collect();
                let _ = writeln!(
                    t,
                    "{} violations: {}",
                    self.violations.len(),
                    list.join(", ")
                );
                for v in &self.violations {
                    let _ = writeln!(
                        t,
                        "[{}] group {}: {}",
                        v.kind.name(),
                        v.group,
                        v.explanation
                    );
                    for e in &v.events {
                        let _ = writeln!(t, "    {}", e.show());
                    }
                }
            }
        }
        t
    }
}

/// Checks `events` against `scheme` (see the module documentation).
pub fn check(scheme: &Scheme, events: &[Event]) -> VcResult {
    let mut stats = Stats {
        events: events.len(),
        ..Stats::default()
    };
    let mut violations = Vec::new();
    let name = |n: NodeIndex| scheme.graph[n].as_str();

    // Groups in order of first appearance; per group, the instances of each
    // declared event in log order.
    let mut group_ix: HashMap<&str, usize> = HashMap::new();
    let mut groups: Vec<(&str, Vec<&Event>)> = Vec::new();
    for e in events {
        let g = *group_ix.entry(&e.group).or_insert_with(|| {
            groups.push((&e.group, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(e);
    }
    stats.groups = groups.len();
    let mut sources: Vec<&str> = events.iter().map(|e| e.source.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    stats.sources = sources.len();

    for (group, evs) in &groups {
        let v = |kind, events: Vec<&Event>, explanation: String| Violation {
            group: group.to_string(),
            kind,
            events: events.into_iter().cloned().collect(),
            explanation,
        };
        let mut by_node: HashMap<NodeIndex, Vec<&Event>> = HashMap::new();
        for &e in evs {
            match scheme.event(&e.event) {
                Some(n) => by_node.entry(n).or_default().push(e),
                None => violations.push(v(
                    Kind::UnknownEvent,
                    vec![e],
                    format!(
                        "event {:?} is not in the scheme{}",
                        e.event,
                        if scheme.name.is_empty() {
                            String::new()
                        } else {
                            format!(" {:?}", scheme.name)
                        }
                    ),
                )),
            }
        }
        let none = Vec::new();
        let inst = |n: NodeIndex| by_node.get(&n).unwrap_or(&none);

        // 1. order, direct edges.
        for edge in scheme.graph.raw_edges() {
            let (x, y) = (edge.source(), edge.target());
            let (xs, ys) = (inst(x), inst(y));
            if ys.is_empty() {
                continue;
            }
            if xs.is_empty() {
                violations.push(v(
                    Kind::MissingPredecessor,
                    ys.clone(),
                    format!(
                        "{} happened{} but {}, which the scheme puts before it, never did in \
                         this group",
                        name(y),
                        if ys.len() > 1 {
                            format!(" ({} times)", ys.len())
                        } else {
                            String::new()
                        },
                        name(x)
                    ),
                ));
                continue;
            }
            for &ye in ys {
                stats.order_checked += 1;
                if xs.iter().any(|xe| clock_lt(&xe.clock, &ye.clock)) {
                    continue;
                }
                // Explain with the instance of x closest to being before y.
                let (best, why) = xs
                    .iter()
                    .map(|xe| {
                        let ex = excess(&xe.clock, &ye.clock);
                        (xe, ex)
                    })
                    .min_by_key(|(_, ex)| ex.len())
                    .expect("xs is not empty");
                let reason = if why.is_empty() {
                    "their clocks are equal".to_string()
                } else {
                    format!(
                        "{}'s clock exceeds {}'s at {}",
                        name(x),
                        name(y),
                        why.join(", ")
                    )
                };
                let mut involved = vec![ye];
                involved.extend(xs.iter().copied());
                violations.push(v(
                    Kind::Order,
                    involved,
                    format!(
                        "{} must happen after {}, but no instance of {} ({} in the group) has a \
                         clock below it: {reason}{}",
                        name(y),
                        name(x),
                        name(x),
                        xs.len(),
                        if xs.len() > 1 {
                            format!(" (for the instance at line {})", best.line)
                        } else {
                            String::new()
                        }
                    ),
                ));
            }
        }

        // 2. concurrency.
        for &(x, y) in &scheme.concurrent {
            for &xe in inst(x) {
                for &ye in inst(y) {
                    stats.concurrency_checked += 1;
                    if concurrent(&xe.clock, &ye.clock) {
                        continue;
                    }
                    let how = if clock_le(&ye.clock, &xe.clock) && clock_le(&xe.clock, &ye.clock) {
                        "their clocks are equal".to_string()
                    } else if clock_le(&xe.clock, &ye.clock) {
                        format!("{} happened before {}", name(x), name(y))
                    } else {
                        format!("{} happened before {}", name(y), name(x))
                    };
                    violations.push(v(
                        Kind::Concurrency,
                        vec![xe, ye],
                        format!("{} and {} must be concurrent, but {how}", name(x), name(y)),
                    ));
                }
            }
        }

        // 4. final.
        if let Some(fin) = scheme.final_event {
            let finals = inst(fin);
            if !finals.is_empty() {
                stats.groups_with_final += 1;
            }
            if finals.len() > 1 {
                violations.push(v(
                    Kind::Final,
                    finals.clone(),
                    format!(
                        "{} final events ({}) in one group; there must be at most one",
                        finals.len(),
                        name(fin)
                    ),
                ));
            }
            for &f in finals {
                for &e in evs.iter() {
                    if scheme.event(&e.event).is_none() || scheme.event(&e.event) == Some(fin) {
                        continue;
                    }
                    stats.final_checked += 1;
                    if clock_le(&e.clock, &f.clock) {
                        continue;
                    }
                    violations.push(v(
                        Kind::Final,
                        vec![f, e],
                        format!(
                            "the final clock does not dominate {}'s: {}",
                            e.event,
                            excess(&e.clock, &f.clock).join(", ")
                        ),
                    ));
                }
            }
        }
    }

    // 3. own-clock, per (group, source, process) in log order.
    let mut last: HashMap<(&str, &str, &str), &Event> = HashMap::new();
    for e in events {
        stats.own_clock_checked += 1;
        let own = e.clock.get(&e.process).copied().unwrap_or(0);
        let viol = |events: Vec<&Event>, explanation: String| Violation {
            group: e.group.clone(),
            kind: Kind::OwnClock,
            events: events.into_iter().cloned().collect(),
            explanation,
        };
        if own == 0 {
            violations.push(viol(
                vec![e],
                format!(
                    "{}'s own entry {} is {} (it must tick its own entry on every event)",
                    e.event,
                    e.process,
                    if e.clock.contains_key(&e.process) {
                        "0"
                    } else {
                        "absent"
                    }
                ),
            ));
        }
        let key = (e.group.as_str(), e.source.as_str(), e.process.as_str());
        if let Some(prev) = last.get(&key) {
            let was = prev.clock.get(&e.process).copied().unwrap_or(0);
            if own <= was {
                violations.push(viol(
                    vec![prev, e],
                    format!(
                        "{} in {} went from {was} ({}) to {own} ({}): its own entry must \
                         strictly increase",
                        e.process, e.source, prev.event, e.event
                    ),
                ));
            }
        }
        last.insert(key, e);
    }

    let verdict = if stats.groups == 0 {
        VcVerdict::NothingChecked
    } else if violations.is_empty() {
        VcVerdict::Valid
    } else {
        VcVerdict::Invalid
    };
    VcResult {
        scheme: scheme.name.clone(),
        verdict,
        violations,
        stats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(entries: &[(&str, u64)]) -> Clock {
        entries.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn clock_order_treats_absent_as_zero() {
        assert!(clock_le(&c(&[("p", 1), ("q", 0)]), &c(&[("p", 1)])));
        assert!(!clock_lt(&c(&[("p", 1), ("q", 0)]), &c(&[("p", 1)])));
        assert!(clock_lt(&c(&[("p", 1)]), &c(&[("p", 1), ("q", 1)])));
        assert!(concurrent(&c(&[("p", 1)]), &c(&[("q", 1)])));
        assert!(!concurrent(&c(&[]), &c(&[("q", 1)])));
    }

    #[test]
    fn scheme_errors() {
        let e = Scheme::from_json(r#"{"happens_before":[["a","b"],["b","a"]]}"#).unwrap_err();
        assert!(e.contains("cycle through a, b"), "{e}");
        let e = Scheme::from_json(r#"{"happens_before":[["a","a"]]}"#).unwrap_err();
        assert!(e.contains("cycle"), "{e}");
        let e = Scheme::from_json(
            r#"{"happens_before":[["a","b"],["b","c"]],"concurrent":[["c","a"]]}"#,
        )
        .unwrap_err();
        assert!(e.contains("orders a before c"), "{e}");
        let e = Scheme::from_json(r#"{"happens_before":[["a","b"]],"concurrent":[["a","z"]]}"#)
            .unwrap_err();
        assert!(e.contains("unknown event \"z\""), "{e}");
        let e = Scheme::from_json(r#"{"happens_before":[["a","b"]],"final":"a"}"#).unwrap_err();
        assert!(e.contains("final"), "{e}");
        let e = Scheme::from_json(r#"{"happens-before":[["a","b"]]}"#).unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
        assert!(Scheme::from_json("{}").is_err());
        assert!(Scheme::from_json("[").is_err());
    }
}
