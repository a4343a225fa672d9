//! The history model: operations as recorded by clients, and the native
//! JSON Lines format.
//!
//! A history is a sequence of *events*. A client process first logs an
//! `invoke` and later exactly one completion: `ok` (it took effect, and the
//! value is the result), `fail` (it certainly took no effect) or `info`
//! (unknown: it may have taken effect at any point after its invocation, or
//! never). An invocation with no completion is treated like `info`.
//! Events from non-client processes (`"nemesis"`, `"n1"`...) are kept for
//! reports and ignored by the linearizability check.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::formats::ParseError;

/// Who logged an event: a client (a number) or a named actor such as the
/// nemesis. Only clients take part in the linearizability check.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Process {
    Client(u64),
    Named(String),
}

impl std::fmt::Display for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Process::Client(n) => write!(f, "{n}"),
            Process::Named(s) => write!(f, "{s}"),
        }
    }
}

/// The kind of event: an invocation or one of the three completions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl OpType {
    pub fn name(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }
    pub fn by_name(s: &str) -> Option<OpType> {
        Some(match s {
            "invoke" => OpType::Invoke,
            "ok" => OpType::Ok,
            "fail" => OpType::Fail,
            "info" => OpType::Info,
            _ => return None,
        })
    }
}

/// What the events of a history mean. Each format's reader sets it
/// ([`crate::formats::Format::semantics`]); `checker check --semantics`
/// overrides it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Semantics {
    /// The native JSON Lines format's meaning, also Porcupine's logs'
    /// (`etcd`, `porcupine-kv`):
    /// - `fail`: it certainly took no effect; a `fail`ed `cas` observed
    ///   that the value was not the expected one; a `fail` with an `error`
    ///   field did not run and constrains nothing;
    /// - a read that completes `ok` with `null` observed "absent" (the
    ///   initial value, or a delete);
    /// - the value of a write or cas is the invocation's;
    /// - real-time order: by `time` if every client event has one, else
    ///   the order of the lines.
    #[default]
    Native,
    /// Jepsen's and Knossos's meaning, for Jepsen EDN histories:
    /// - `fail`: it did not happen; the invocation and the failure are
    ///   dropped and constrain nothing (Knossos `history/without-failures`),
    ///   so a failed `cas` observes nothing;
    /// - `info`: unknown, it may have happened (like [`Semantics::Native`]);
    ///   an `info` from a client with nothing pending is ignored;
    /// - a read (or a read inside a `txn`) that completes with `nil`
    ///   constrains nothing (Knossos's register models);
    /// - an `ok` completion's value is the operation's value: it replaces
    ///   the invocation's (Knossos `history/complete`);
    /// - real-time order: the order of the events in the file (`:time` is
    ///   shown in reports, not used to order).
    Jepsen,
}

impl Semantics {
    pub fn by_name(s: &str) -> Option<Semantics> {
        Some(match s {
            "native" | "porcupine" => Semantics::Native,
            "jepsen" | "knossos" => Semantics::Jepsen,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Semantics::Native => "native",
            Semantics::Jepsen => "jepsen",
        }
    }
}

/// One event of a history (Jepsen calls these "ops").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history; unique. Results refer to operations by the
    /// `index` of their invocation.
    #[serde(default)]
    pub index: usize,
    pub process: Process,
    #[serde(rename = "type")]
    pub kind: OpType,
    pub f: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default)]
    pub value: Value,
    /// Nanoseconds, any origin. Optional: without times, the order of the
    /// events in the file is the real-time order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<u64>,
    /// Any other fields (`"node"`, `"error"`...), kept as they are.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Op {
    pub fn is_client(&self) -> bool {
        matches!(self.process, Process::Client(_))
    }
}

/// A recorded history: events in real-time order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub ops: Vec<Op>,
    /// What the events mean; set by the format's reader.
    #[serde(default)]
    pub semantics: Semantics,
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Took effect; the value is the result the client saw.
    Ok(Value),
    /// Certainly took no effect (for a `cas`: the compare failed). Only
    /// with [`Semantics::Native`]: with [`Semantics::Jepsen`] a failed
    /// operation is left out of [`History::calls`].
    Fail,
    /// Unknown (`info`, or no completion at all).
    Unknown,
}

/// A client operation: an invocation paired with its completion.
#[derive(Clone, Debug)]
pub struct Call {
    /// `index` of the invocation event.
    pub index: usize,
    /// Position of the invocation in [`History::ops`].
    pub invoke_pos: usize,
    /// Position of the completion in [`History::ops`], if any.
    pub complete_pos: Option<usize>,
    pub process: Process,
    pub f: String,
    pub key: Option<String>,
    pub invoke_value: Value,
    pub outcome: Outcome,
}

impl Call {
    /// Short human description, e.g. `p3 cas [1,2] -> fail`.
    pub fn describe(&self) -> String {
        let key = match &self.key {
            Some(k) => format!(" {k}"),
            None => String::new(),
        };
        let res = match &self.outcome {
            Outcome::Ok(v) => format!("ok {v}"),
            Outcome::Fail => "fail".into(),
            Outcome::Unknown => "unknown".into(),
        };
        let arg = match &self.invoke_value {
            Value::Null => String::new(),
            v => format!(" {v}"),
        };
        format!(
            "#{} p{} {}{}{} -> {}",
            self.index, self.process, self.f, key, arg, res
        )
    }
}

/// The shape of one native line before `index` is filled in.
#[derive(Deserialize)]
struct RawOp {
    #[serde(default)]
    index: Option<usize>,
    process: Process,
    #[serde(rename = "type")]
    kind: OpType,
    f: String,
    #[serde(default)]
    key: Option<Value>,
    #[serde(default)]
    value: Value,
    #[serde(default)]
    time: Option<u64>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// Turns a JSON key (string or number) into the string form used by `Op::key`.
pub(crate) fn key_from_value(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(format!("`key` must be a string or a number, found {other}")),
    }
}

/// An integer literal outside strings in a JSON `line` that does not fit in
/// 64 bits, as an error: serde_json would read it as a float, equal to its
/// neighbours (2^64 and 2^64 + 1 are one float), and the checker compares
/// values exactly.
fn wide_integer(line: &str) -> Result<(), String> {
    let bytes = line.as_bytes();
    let (mut i, mut in_string) = (0, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            i += 1;
            while i < bytes.len()
                && matches!(bytes[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
            {
                i += 1;
            }
            let t = &line[start..i];
            if crate::edn::is_integer_literal(t)
                && t.parse::<i64>().is_err()
                && t.parse::<u64>().is_err()
            {
                return Err(format!(
                    "integer {t} does not fit in 64 bits: the checker compares values exactly \
                     and cannot hold it (write it as a string)"
                ));
            }
            continue;
        }
        i += 1;
    }
    Ok(())
}

impl History {
    /// A history with the native meaning ([`Semantics::Native`]).
    pub fn new(ops: Vec<Op>) -> History {
        History {
            ops,
            semantics: Semantics::Native,
        }
    }

    /// The same history with another meaning.
    pub fn with_semantics(mut self, semantics: Semantics) -> History {
        self.semantics = semantics;
        self
    }

    /// Reads the native format: one JSON object per line (see README.md).
    /// Blank lines are skipped. A missing `index` is the line's position
    /// among the events.
    pub fn from_jsonl(text: &str) -> Result<History, ParseError> {
        let mut ops = Vec::new();
        // Line of each explicit `index`: results name operations by it.
        let mut indexes = std::collections::HashMap::new();
        for (lineno, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            wide_integer(line).map_err(|message| ParseError {
                line: lineno + 1,
                message,
            })?;
            let raw: RawOp = serde_json::from_str(line).map_err(|e| ParseError {
                line: lineno + 1,
                message: format!(
                    "expected one JSON object per line with fields process (number or string), \
                     type (invoke|ok|fail|info), f, and optional key, value, time, index: {e}"
                ),
            })?;
            let key = key_from_value(raw.key.as_ref().unwrap_or(&Value::Null)).map_err(|m| {
                ParseError {
                    line: lineno + 1,
                    message: m,
                }
            })?;
            if let Some(i) = raw.index {
                if let Some(first) = indexes.insert(i, lineno + 1) {
                    return Err(ParseError {
                        line: lineno + 1,
                        message: format!(
                            "index {i} is also line {first}'s: an event's index must be unique \
                             (or leave it out: it is then the event's position)"
                        ),
                    });
                }
            }
            let index = raw.index.unwrap_or(ops.len());
            ops.push(Op {
                index,
                process: raw.process,
                kind: raw.kind,
                f: raw.f,
                key,
                value: raw.value,
                time: raw.time,
                extra: raw.extra,
            });
        }
        Ok(History::new(ops))
    }

    /// Writes the native format, one op per line.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::new();
        for op in &self.ops {
            out.push_str(&serde_json::to_string(op).expect("an Op always serializes"));
            out.push('\n');
        }
        out
    }

    /// Writes a Jepsen EDN history: one map per line.
    pub fn to_edn(&self) -> String {
        crate::edn::history_to_edn(self)
    }

    /// Pairs client invocations with their completions, in invocation order.
    ///
    /// An `ok` or `fail` with no pending invocation is an error. With
    /// [`Semantics::Native`], a `fail` that carries an `"error"` field did
    /// not run and is left out; a plain `fail` is kept ([`Outcome::Fail`]:
    /// for a cas, its compare failed). With [`Semantics::Jepsen`], every
    /// `fail` is left out (it did not happen), and an `info` with no
    /// pending invocation is ignored (as Knossos does). If a client
    /// invokes again while an operation is pending, the pending one is
    /// treated as unknown (the client gave up on it).
    pub fn calls(&self) -> Result<Vec<Call>, ParseError> {
        use std::collections::HashMap;
        let jepsen = self.semantics == Semantics::Jepsen;
        let mut calls: Vec<Call> = Vec::new();
        let mut open: HashMap<&Process, usize> = HashMap::new();
        let mut dropped: Vec<bool> = Vec::new();
        for (pos, op) in self.ops.iter().enumerate() {
            if !op.is_client() {
                continue;
            }
            match op.kind {
                OpType::Invoke => {
                    open.insert(&op.process, calls.len());
                    dropped.push(false);
                    calls.push(Call {
                        index: op.index,
                        invoke_pos: pos,
                        complete_pos: None,
                        process: op.process.clone(),
                        f: op.f.clone(),
                        key: op.key.clone(),
                        invoke_value: op.value.clone(),
                        outcome: Outcome::Unknown,
                    });
                }
                kind => {
                    let Some(ci) = open.remove(&op.process) else {
                        if jepsen && kind == OpType::Info {
                            // Knossos: "just a random info" (wgl.clj).
                            continue;
                        }
                        return Err(ParseError {
                            line: pos + 1,
                            message: format!(
                                "process {} completes an operation ({}, index {}) it never \
                                 invoked; every ok/fail/info of a client must follow its invoke",
                                op.process, op.f, op.index
                            ),
                        });
                    };
                    if kind == OpType::Fail
                        && (jepsen || op.extra.get("error").is_some_and(|e| !e.is_null()))
                    {
                        // Jepsen's `fail`, or a native `fail` with an
                        // error: it never ran and observed nothing (unlike a
                        // native cas whose compare failed, which tells us
                        // state != expected). It constrains nothing.
                        // (Marked and filtered at the end: removing here
                        // would be quadratic on long histories.)
                        dropped[ci] = true;
                        continue;
                    }
                    let c = &mut calls[ci];
                    c.complete_pos = Some(pos);
                    c.outcome = match kind {
                        OpType::Ok => Outcome::Ok(op.value.clone()),
                        OpType::Fail => Outcome::Fail,
                        _ => Outcome::Unknown,
                    };
                    if c.key.is_none() {
                        c.key = op.key.clone();
                    }
                }
            }
        }
        let mut keep = dropped.into_iter();
        calls.retain(|_| !keep.next().unwrap_or(false));
        Ok(calls)
    }

    /// The real-time order of events as ranks: `rank[pos]` for each event.
    /// With [`Semantics::Jepsen`], or without times (or if any client event
    /// lacks one), this is file order. Otherwise events are ordered by
    /// time, invocations before completions at equal times (so equal times
    /// count as concurrent).
    pub fn event_ranks(&self) -> Vec<u64> {
        let n = self.ops.len();
        let all_timed = self.ops.iter().all(|o| !o.is_client() || o.time.is_some());
        if !all_timed || self.semantics == Semantics::Jepsen {
            return (0..n as u64).collect();
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| {
            let o = &self.ops[i];
            (o.time.unwrap_or(0), o.kind != OpType::Invoke, i)
        });
        let mut rank = vec![0u64; n];
        for (r, &i) in order.iter().enumerate() {
            rank[i] = r as u64;
        }
        rank
    }
}
