//! The history recorder: client invocations and completions, nemesis
//! events and the scenario's own events (e.g. what a node did), in one
//! Jepsen-style history (the checker's native JSON Lines format), stamped
//! with simulated time. It records and nothing else: checks that follow
//! events as they happen subscribe to the scenario's event bus
//! ([`crate::events::Bus`]).
//!
//! A recorder made with [`Recorder::without_detail`] (a sweep's seeds, a
//! shrink's candidates: they need a verdict, not a report) tells the
//! scenario that the system's high-volume events (every commit, applied
//! entry, read) need not be recorded: see [`Recorder::keeps_detail`].

use checker::history::{History, Op, OpType, Process};
use serde_json::{Map, Value};
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

#[derive(Clone)]
pub struct Recorder(Arc<Mutex<Inner>>);

struct Inner {
    start: Instant,
    ops: Vec<Op>,
    detail: bool,
}

/// How an operation ended, for [`Recorder::op`].
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// `Ok`, `Fail` (certainly had no effect) or `Info` (unknown outcome).
    pub kind: OpType,
    pub value: Value,
    pub error: Option<String>,
}

impl Completion {
    /// It happened, with this value.
    pub fn ok(value: Value) -> Completion {
        Completion {
            kind: OpType::Ok,
            value,
            error: None,
        }
    }

    /// It certainly did not happen.
    pub fn fail(value: Value, error: Option<String>) -> Completion {
        Completion {
            kind: OpType::Fail,
            value,
            error,
        }
    }

    /// It may or may not have happened.
    pub fn unknown(value: Value, error: impl Into<String>) -> Completion {
        Completion {
            kind: OpType::Info,
            value,
            error: Some(error.into()),
        }
    }
}

impl Completion {
    /// From a call's result: `Ok(v)` happened with value `v`; an error is
    /// `Fail` if `certain` (the call certainly had no effect, e.g. a read),
    /// else unknown.
    pub fn of<E: std::fmt::Display>(
        r: Result<Value, E>,
        value: Value,
        certain: bool,
    ) -> Completion {
        match r {
            Ok(v) => Completion::ok(v),
            Err(e) if certain => Completion::fail(value, Some(e.to_string())),
            Err(e) => Completion::unknown(value, e.to_string()),
        }
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder::with_detail(true)
    }

    /// A recorder for a run that only needs its verdict and coverage: see
    /// [`Recorder::keeps_detail`].
    pub fn without_detail() -> Recorder {
        Recorder::with_detail(false)
    }

    fn with_detail(detail: bool) -> Recorder {
        Recorder(Arc::new(Mutex::new(Inner {
            start: Instant::now(),
            ops: Vec::new(),
            detail,
        })))
    }

    /// Whether this run's history should hold the system's high-volume
    /// events, which only reports and trace hashes read (every commit,
    /// applied entry or read of a node; a scenario decides which of its
    /// events those are). False in a sweep's seeds and a shrink's
    /// candidates: checks that follow those events get them from the event
    /// bus all the same, and a failing seed is run again with detail (it
    /// runs the same) to write its report. Events that a scenario's
    /// `check` or `coverage` reads from the history must be recorded
    /// either way.
    pub fn keeps_detail(&self) -> bool {
        self.0.lock().unwrap().detail
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

    /// Records the invocation of `f` by `client` now, runs `call`, records
    /// how it completed, and returns that. One call per operation:
    /// `rec.op(1, "put", Some("k"), json!(5), async { ... Completion::ok(json!(5)) })`.
    pub async fn op<F>(
        &self,
        client: u64,
        f: &str,
        key: Option<&str>,
        value: Value,
        call: F,
    ) -> Completion
    where
        F: Future<Output = Completion>,
    {
        self.invoke(client, f, key, value);
        let c = call.await;
        self.complete(client, c.kind, f, key, c.value.clone(), c.error.clone());
        c
    }

    /// A client invocation (see also [`Recorder::op`]).
    pub fn invoke(&self, client: u64, f: &str, key: Option<&str>, value: Value) {
        self.push(
            Process::Client(client),
            OpType::Invoke,
            f,
            key,
            value,
            Map::new(),
        );
    }

    /// A client completion (see also [`Recorder::op`]).
    pub fn complete(
        &self,
        client: u64,
        kind: OpType,
        f: &str,
        key: Option<&str>,
        value: Value,
        error: Option<String>,
    ) {
        let mut extra = Map::new();
        if let Some(e) = error {
            extra.insert("error".into(), Value::String(e));
        }
        self.push(Process::Client(client), kind, f, key, value, extra);
    }

    /// A fault starting or ending.
    pub fn nemesis(&self, f: &str, value: Value) {
        self.event("nemesis", f, value);
    }

    /// Something `process` did (a node's role change, a commit...): `info`.
    pub fn event(&self, process: &str, f: &str, value: Value) {
        self.push(
            Process::Named(process.into()),
            OpType::Info,
            f,
            None,
            value,
            Map::new(),
        );
    }

    /// A named actor's result (`setup`, `final`): `ok`, no key.
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

    pub fn history(&self) -> History {
        History::new(self.0.lock().unwrap().ops.clone())
    }

    /// The history recorded so far, leaving the recorder empty (for the end
    /// of a run: no copy of a history of 100k events).
    pub fn take_history(&self) -> History {
        History::new(std::mem::take(&mut self.0.lock().unwrap().ops))
    }

    /// Simulated milliseconds since the recorder was made.
    pub fn elapsed_ms(&self) -> u64 {
        self.0.lock().unwrap().start.elapsed().as_millis() as u64
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}
