//! The history recorder: client invocations and completions, nemesis
//! events and node-internal events, in one Jepsen-style history (the
//! checker's native JSON Lines format), stamped with simulated time. Node
//! events are also fed to the [`RaftChecker`] as they happen.

use crate::checks::RaftChecker;
use bookstore::node::{EventSink, NodeEvent};
use checker::history::{History, Op, OpType, Process};
use serde_json::{json, Map, Value};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

#[derive(Clone)]
pub struct Recorder(Arc<Mutex<Inner>>);

struct Inner {
    start: Instant,
    ops: Vec<Op>,
    /// One checker per Raft group (terms and indexes are per group).
    raft: std::collections::BTreeMap<u64, RaftChecker>,
    /// node -> its Raft group (default: group 0).
    groups: std::collections::BTreeMap<u64, u64>,
    /// Latest (term, role) per node, for "isolate the leader".
    roles: std::collections::BTreeMap<u64, (u64, raft::Role)>,
    /// Armed triggers by fault id, what fired, and the nemesis's wake-up
    /// call.
    triggers: std::collections::BTreeMap<usize, (Vec<Trigger>, OnFire)>,
    fired: Vec<Fired>,
    notify: Arc<tokio::sync::Notify>,
}

/// Runs at the instant a trigger fires for a node, inside the node's event
/// (so before any message the node has just queued leaves): returns
/// whether the fault acts on that node, after what delay and for how long
/// (hold; `None`: until the fault ends). It may act at once itself.
pub type OnFire = Arc<dyn Fn(Trigger, u64) -> Option<(u64, Option<u64>)> + Send + Sync>;

/// A trigger that fired: fault `fid` acts on `node` after `delay_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fired {
    pub fid: usize,
    pub node: u64,
    pub delay_ms: u64,
    pub hold_ms: Option<u64>,
}

/// A node event a fault waits for (see `nemesis`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The next node that grants a vote (once).
    VoteGranted,
    /// Every node that becomes leader.
    NewLeader,
    /// Every commit index advance of a leader.
    LeaderCommit,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder(Arc::new(Mutex::new(Inner {
            start: Instant::now(),
            ops: Vec::new(),
            raft: Default::default(),
            groups: Default::default(),
            roles: Default::default(),
            triggers: Default::default(),
            fired: Vec::new(),
            notify: Arc::new(tokio::sync::Notify::new()),
        })))
    }

    fn push(
        &self,
        process: Process,
        kind: OpType,
        f: &str,
        key: Option<&str>,
        value: Value,
        extra: Map<String, Value>,
    ) {
        let mut g = self.0.lock().unwrap();
        let time = g.start.elapsed().as_nanos() as u64;
        let index = g.ops.len();
        g.ops.push(Op {
            index,
            process,
            kind,
            f: f.to_string(),
            key: key.map(str::to_string),
            value,
            time: Some(time),
            extra,
        });
    }

    pub fn invoke(&self, client: u64, f: &str, key: &str, value: Value) {
        self.push(
            Process::Client(client),
            OpType::Invoke,
            f,
            Some(key),
            value,
            Map::new(),
        );
    }

    pub fn complete(
        &self,
        client: u64,
        kind: OpType,
        f: &str,
        key: &str,
        value: Value,
        error: Option<String>,
    ) {
        let mut extra = Map::new();
        if let Some(e) = error {
            extra.insert("error".into(), Value::String(e));
        }
        self.push(Process::Client(client), kind, f, Some(key), value, extra);
    }

    /// A fault starting or ending.
    pub fn nemesis(&self, f: &str, value: Value) {
        self.push(
            Process::Named("nemesis".into()),
            OpType::Info,
            f,
            None,
            value,
            Map::new(),
        );
    }

    pub fn node_event(&self, node: u64, ev: &NodeEvent) {
        let (f, value) = match ev {
            NodeEvent::Recovered {
                term,
                vote,
                last_index,
                snapshot_index,
                cut_bytes,
            } => (
                "recovered",
                json!({"term": term, "vote": vote, "last_index": last_index, "snapshot_index": snapshot_index, "cut_bytes": cut_bytes}),
            ),
            NodeEvent::Role { term, role, leader } => {
                self.0.lock().unwrap().roles.insert(node, (*term, *role));
                if *role == raft::Role::Leader {
                    self.fire(Trigger::NewLeader, node);
                }
                (
                    "role",
                    json!({"term": term, "role": format!("{role:?}"), "leader": leader}),
                )
            }
            NodeEvent::Promised { term, vote } => {
                if vote.is_some_and(|v| v != node) {
                    self.fire(Trigger::VoteGranted, node);
                }
                ("promised", json!({"term": term, "vote": vote}))
            }
            NodeEvent::Elected {
                term,
                snapshot_index,
                last_index,
                runs,
            } => (
                "elected",
                json!({"term": term, "snapshot_index": snapshot_index, "last_index": last_index, "runs": runs}),
            ),
            NodeEvent::Commit { index, term } => {
                let leads = self
                    .0
                    .lock()
                    .unwrap()
                    .roles
                    .get(&node)
                    .is_some_and(|(_, r)| *r == raft::Role::Leader);
                if leads {
                    self.fire(Trigger::LeaderCommit, node);
                }
                ("commit", json!({"index": index, "term": term}))
            }
            NodeEvent::Applied {
                index,
                term,
                digest,
            } => (
                "applied",
                json!({"index": index, "term": term, "digest": format!("{digest:016x}")}),
            ),
            NodeEvent::ReadArrived { id } => ("read-arrived", json!({"id": id})),
            NodeEvent::ReadServed { id, applied } => {
                ("read-served", json!({"id": id, "applied": applied}))
            }
            NodeEvent::SnapshotInstalled { index, term } => {
                ("snapshot-installed", json!({"index": index, "term": term}))
            }
        };
        {
            let mut g = self.0.lock().unwrap();
            let group = g.groups.get(&node).copied().unwrap_or(0);
            g.raft.entry(group).or_default().observe(node, ev);
        }
        self.push(
            Process::Named(format!("n{node}")),
            OpType::Info,
            f,
            None,
            value,
            Map::new(),
        );
    }

    fn fire(&self, what: Trigger, node: u64) {
        let hit: Vec<(usize, OnFire)> = {
            let mut g = self.0.lock().unwrap();
            let mut hit: Vec<(usize, OnFire)> = g
                .triggers
                .iter()
                .filter(|(_, (t, _))| t.contains(&what))
                .map(|(f, (_, h))| (*f, h.clone()))
                .collect();
            match what {
                // Faults acting on leaders do not stack: the one with
                // the lowest id takes each leader.
                Trigger::NewLeader | Trigger::LeaderCommit => hit.truncate(1),
                Trigger::VoteGranted => {
                    for (fid, _) in &hit {
                        g.triggers.remove(fid);
                    }
                }
            }
            hit
        };
        for (fid, hook) in hit {
            self.fire_now(fid, what, node, &hook);
        }
    }

    /// Fault `fid` waits for the events `what`; `on_fire` runs when one
    /// happens, and [`Recorder::take_fired`] reports what it decided.
    pub fn arm(&self, fid: usize, what: &[Trigger], on_fire: OnFire) {
        self.0
            .lock()
            .unwrap()
            .triggers
            .insert(fid, (what.to_vec(), on_fire));
    }

    /// Whether fault `fid` is the one with the lowest id waiting for `what`
    /// (the one that takes it, for the leader triggers).
    pub fn first_armed(&self, fid: usize, what: Trigger) -> bool {
        let g = self.0.lock().unwrap();
        g.triggers
            .iter()
            .find(|(_, (t, _))| t.contains(&what))
            .is_some_and(|(f, _)| *f == fid)
    }

    pub fn disarm(&self, fid: usize) {
        let mut g = self.0.lock().unwrap();
        g.triggers.remove(&fid);
        g.fired.retain(|f| f.fid != fid);
    }

    /// Fires fault `fid`'s trigger `what` for `node` now (runs its hook).
    pub fn fire_now(&self, fid: usize, what: Trigger, node: u64, on_fire: &OnFire) {
        let Some((delay_ms, hold_ms)) = on_fire(what, node) else {
            return;
        };
        let mut g = self.0.lock().unwrap();
        g.fired.push(Fired {
            fid,
            node,
            delay_ms,
            hold_ms,
        });
        g.notify.notify_one();
    }

    /// Every trigger that fired since the last call, in order.
    pub fn take_fired(&self) -> Vec<Fired> {
        std::mem::take(&mut self.0.lock().unwrap().fired)
    }

    /// Notified whenever a trigger fires.
    pub fn fired_notify(&self) -> Arc<tokio::sync::Notify> {
        self.0.lock().unwrap().notify.clone()
    }

    pub fn sink(&self) -> EventSink {
        let r = self.clone();
        Arc::new(move |node, ev| r.node_event(node, &ev))
    }

    /// The node that most recently became leader of the highest term.
    pub fn leader(&self) -> Option<u64> {
        let g = self.0.lock().unwrap();
        g.roles
            .iter()
            .filter(|(_, (_, r))| *r == raft::Role::Leader)
            .max_by_key(|(_, (t, _))| *t)
            .map(|(n, _)| *n)
    }

    pub fn raft_violations(&self) -> Vec<String> {
        let g = self.0.lock().unwrap();
        g.raft
            .values()
            .flat_map(|c| c.violations.iter().cloned())
            .collect()
    }

    /// Puts `node` in Raft group `group` (checked separately from others).
    pub fn set_group(&self, node: u64, group: u64) {
        self.0.lock().unwrap().groups.insert(node, group);
    }

    /// A named actor's event (`setup`, `final`): `ok`, no key.
    pub fn named(&self, process: &str, f: &str, value: Value) {
        self.push(
            Process::Named(process.into()),
            OpType::Ok,
            f,
            None,
            value,
            Map::new(),
        );
    }

    /// A client invocation without a key (shop operations carry ids in the value).
    pub fn invoke_op(&self, client: u64, f: &str, value: Value) {
        self.push(
            Process::Client(client),
            OpType::Invoke,
            f,
            None,
            value,
            Map::new(),
        );
    }

    pub fn complete_op(
        &self,
        client: u64,
        kind: OpType,
        f: &str,
        value: Value,
        error: Option<String>,
    ) {
        let mut extra = Map::new();
        if let Some(e) = error {
            extra.insert("error".into(), Value::String(e));
        }
        self.push(Process::Client(client), kind, f, None, value, extra);
    }

    pub fn history(&self) -> History {
        History::new(self.0.lock().unwrap().ops.clone())
    }

    /// The history recorded so far, leaving the recorder empty (for the end
    /// of a run: no copy of a history of 100k events).
    pub fn take_history(&self) -> History {
        History::new(std::mem::take(&mut self.0.lock().unwrap().ops))
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.0.lock().unwrap().start.elapsed().as_millis() as u64
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}
