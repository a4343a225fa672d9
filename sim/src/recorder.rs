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
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder(Arc::new(Mutex::new(Inner {
            start: Instant::now(),
            ops: Vec::new(),
            raft: Default::default(),
            groups: Default::default(),
            roles: Default::default(),
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
                (
                    "role",
                    json!({"term": term, "role": format!("{role:?}"), "leader": leader}),
                )
            }
            NodeEvent::Commit { index } => ("commit", json!(index)),
            NodeEvent::Applied {
                index,
                term,
                digest,
            } => (
                "applied",
                json!({"index": index, "term": term, "digest": format!("{digest:016x}")}),
            ),
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

    pub fn elapsed_ms(&self) -> u64 {
        self.0.lock().unwrap().start.elapsed().as_millis() as u64
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}
