//! Transactions in a compact form: what the isolation checker works on.
//!
//! A [`History`] of JSON events is turned into [`Txns`]: one [`Txn`] per
//! `txn` operation (invocation paired with its completion), micro-operations
//! in one flat array, list reads in another, keys and values interned as
//! integers. Everything after this module works on integers only, which is
//! what lets it check millions of transactions in a few hundred bytes each
//! (the benchmark generator builds [`Txns`] directly).
//!
//! Which events count: client events with `f = "txn"`. Events of other
//! processes (`"nemesis"`, `"n1"`...) and client operations with another `f`
//! are ignored. A `fail` did not happen (its writes must never be seen); an
//! `info`, or an invocation with no completion, may have happened (its
//! writes may be seen) and its reads are unknown; an `ok` happened and its
//! completion carries the values read. This is Jepsen's meaning and Elle's,
//! and it is the same for native and EDN histories. In EDN (Jepsen)
//! histories, an `ok` or `fail` with no invocation is accepted as Elle
//! accepts it: a transaction whose invocation is unknown (nothing precedes
//! it in real time); in native histories it is an error. An unknown read
//! may be written `[:r k]`.

use serde_json::Value;

use crate::formats::ParseError;
use crate::history::{History, OpType, Process};
use crate::model::FxHashMap;

/// Sentinel: "no such id" (no writer, no position, a `nil` register read).
pub const NONE: u32 = u32::MAX;

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// `info`, or no completion: may or may not have happened.
    Info,
    /// `fail`: certainly did not happen.
    Fail,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Info => "info",
            Status::Fail => "fail",
        }
    }
}

/// The kind of a micro-operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MopKind {
    /// `[append k v]`: `a` is the value.
    Append,
    /// `[w k v]`: `a` is the value.
    Write,
    /// `[r k [v...]]`: `a..a+b` is the list in [`Txns::elems`]; `a == NONE`
    /// when the value is unknown (the transaction did not complete `ok`).
    ReadList,
    /// `[r k v]`: `a` is the value, [`NONE`] for `nil`; `b == 0` when the
    /// value is unknown.
    ReadReg,
}

/// One micro-operation. 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mop {
    pub kind: MopKind,
    pub key: u32,
    pub a: u32,
    pub b: u32,
}

impl Mop {
    pub fn is_write(&self) -> bool {
        matches!(self.kind, MopKind::Append | MopKind::Write)
    }
    pub fn is_read(&self) -> bool {
        matches!(self.kind, MopKind::ReadList | MopKind::ReadReg)
    }
    /// Whether the read's value is known (an `ok` transaction's read).
    pub fn read_known(&self) -> bool {
        match self.kind {
            MopKind::ReadList => self.a != NONE,
            MopKind::ReadReg => self.b != 0,
            _ => false,
        }
    }
}

/// One transaction. Positions refer to the real-time order of events:
/// `invoke_at < complete_at`; a transaction with no completion has
/// `complete_at == u64::MAX`.
#[derive(Clone, Debug)]
pub struct Txn {
    /// The `index` of the invocation event (how results name operations).
    pub index: u64,
    /// Interned process ([`Txns::processes`]).
    pub process: u32,
    pub status: Status,
    /// `mops[mop_start..mop_start + mop_len]`.
    pub mop_start: u32,
    pub mop_len: u32,
    pub invoke_at: u64,
    pub complete_at: u64,
}

/// Names for interned ids, for explanations.
#[derive(Clone, Debug, Default)]
pub enum Names {
    /// The id is the name (generated histories).
    #[default]
    Numbers,
    Table(Vec<String>),
}

impl Names {
    pub fn name(&self, id: u32) -> String {
        match self {
            Names::Numbers => id.to_string(),
            Names::Table(t) => t
                .get(id as usize)
                .cloned()
                .unwrap_or_else(|| format!("#{id}")),
        }
    }
}

/// Which data model the micro-operations follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxnModel {
    /// `[append k v]` and `[r k [v...]]`: every read shows the order of
    /// the appends, so version orders can be inferred (Elle's list-append).
    ListAppend,
    /// `[w k v]` and `[r k v]`: only "nil came first" and what a read saw
    /// can be inferred (Elle's rw-register).
    RwRegister,
}

impl TxnModel {
    pub fn by_name(s: &str) -> Option<TxnModel> {
        Some(match s {
            "list-append" | "append" => TxnModel::ListAppend,
            "rw-register" | "register" | "wr" => TxnModel::RwRegister,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            TxnModel::ListAppend => "list-append",
            TxnModel::RwRegister => "rw-register",
        }
    }
}

/// Transactions of a history, in invocation order, with their
/// micro-operations, and the real-time order of their events.
#[derive(Clone, Debug)]
pub struct Txns {
    pub model: TxnModel,
    pub txns: Vec<Txn>,
    pub mops: Vec<Mop>,
    /// List reads' elements.
    pub elems: Vec<u32>,
    pub keys: Names,
    pub values: Names,
    pub processes: Names,
    /// Events in real-time order: `txn << 1` for an invocation,
    /// `txn << 1 | 1` for a completion (transactions that never complete
    /// have no completion event).
    pub events: Vec<u64>,
}

impl Txns {
    pub fn empty(model: TxnModel) -> Txns {
        Txns {
            model,
            txns: Vec::new(),
            mops: Vec::new(),
            elems: Vec::new(),
            keys: Names::Numbers,
            values: Names::Numbers,
            processes: Names::Numbers,
            events: Vec::new(),
        }
    }

    pub fn mops_of(&self, t: u32) -> &[Mop] {
        let t = &self.txns[t as usize];
        &self.mops[t.mop_start as usize..(t.mop_start + t.mop_len) as usize]
    }

    /// The elements of a known list read.
    pub fn list(&self, m: &Mop) -> &[u32] {
        if m.kind != MopKind::ReadList || m.a == NONE {
            return &[];
        }
        &self.elems[m.a as usize..(m.a + m.b) as usize]
    }

    /// A micro-operation as Elle prints it, e.g. `[:append x 3]`.
    pub fn mop_text(&self, m: &Mop) -> String {
        let k = self.keys.name(m.key);
        match m.kind {
            MopKind::Append => format!("[:append {k} {}]", self.values.name(m.a)),
            MopKind::Write => format!("[:w {k} {}]", self.values.name(m.a)),
            MopKind::ReadList if m.a == NONE => format!("[:r {k} nil]"),
            MopKind::ReadList => format!("[:r {k} {}]", self.list_text(self.list(m))),
            MopKind::ReadReg if m.b == 0 || m.a == NONE => format!("[:r {k} nil]"),
            MopKind::ReadReg => format!("[:r {k} {}]", self.values.name(m.a)),
        }
    }

    pub fn list_text(&self, l: &[u32]) -> String {
        let parts: Vec<String> = l.iter().map(|&v| self.values.name(v)).collect();
        format!("[{}]", parts.join(" "))
    }

    /// A transaction as one line: `#12 p3 ok [[:append x 1] [:r y [1 2]]]`.
    pub fn txn_text(&self, t: u32) -> String {
        let tx = &self.txns[t as usize];
        let mops: Vec<String> = self.mops_of(t).iter().map(|m| self.mop_text(m)).collect();
        format!(
            "#{} p{} {} [{}]",
            tx.index,
            self.processes.name(tx.process),
            tx.status.name(),
            mops.join(" ")
        )
    }

    /// Reads a history. `model` overrides detection (list-append if any
    /// micro-op is an append or reads a list, else rw-register).
    pub fn from_history(h: &History, model: Option<TxnModel>) -> Result<Txns, ParseError> {
        Builder::default().build(h, model)
    }
}

/// Interns keys and values: integers by value, strings (and other
/// scalars) by text, without allocating for ones already seen.
#[derive(Default)]
struct Interner {
    ints: FxHashMap<i64, u32>,
    texts: FxHashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn new_id(&mut self, name: String) -> u32 {
        let id = self.names.len() as u32;
        self.names.push(name);
        id
    }

    fn text(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.texts.get(text) {
            return id;
        }
        let id = self.new_id(text.to_string());
        self.texts.insert(text.to_string(), id);
        id
    }

    /// The id of a scalar (string, number, boolean); None for others.
    fn scalar(&mut self, v: &Value) -> Option<u32> {
        match v {
            Value::Number(n) => match n.as_i64() {
                Some(i) => {
                    if let Some(&id) = self.ints.get(&i) {
                        return Some(id);
                    }
                    let id = self.new_id(i.to_string());
                    self.ints.insert(i, id);
                    Some(id)
                }
                None => Some(self.text(&n.to_string())),
            },
            Value::String(s) => Some(self.text(s)),
            Value::Bool(b) => Some(self.text(if *b { "true" } else { "false" })),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Builder {
    keys: Interner,
    values: Interner,
    processes: Interner,
}

/// A pending or completed `txn` call while pairing events.
struct Pending {
    invoke: usize,
    complete: Option<usize>,
    kind: Option<OpType>,
    /// A completion with no invocation (Jepsen histories only).
    lone: bool,
}

const MOP_SHAPE: &str = "a txn's value must be a list of micro-ops like [\"append\", \"x\", 1], \
     [\"r\", \"x\", [1, 2]] (list-append) or [\"w\", \"x\", 1], [\"r\", \"x\", 1] (rw-register); \
     EDN: [[:append :x 1] [:r :x [1 2]]]";

impl Builder {
    fn build(mut self, h: &History, model: Option<TxnModel>) -> Result<Txns, ParseError> {
        // Pair invocations and completions of `txn` calls, per process.
        let jepsen = h.semantics == crate::history::Semantics::Jepsen;
        let mut calls: Vec<Pending> = Vec::new();
        let mut open: FxHashMap<&Process, usize> = FxHashMap::default();
        for (pos, op) in h.ops.iter().enumerate() {
            if !op.is_client() || op.f != "txn" {
                continue;
            }
            match op.kind {
                OpType::Invoke => {
                    // A second invocation while one is pending: the client
                    // gave up on the first one (it stays unknown).
                    open.insert(&op.process, calls.len());
                    calls.push(Pending {
                        invoke: pos,
                        complete: None,
                        kind: None,
                        lone: false,
                    });
                }
                kind => {
                    let Some(ci) = open.remove(&op.process) else {
                        if kind == OpType::Info {
                            continue; // Jepsen: a lone info is ignored.
                        }
                        if jepsen {
                            // Elle accepts a completion with no invocation
                            // (its tests are full of them): a transaction
                            // whose invocation is unknown, so nothing is
                            // known to precede it in real time.
                            calls.push(Pending {
                                invoke: pos,
                                complete: Some(pos),
                                kind: Some(kind),
                                lone: true,
                            });
                            continue;
                        }
                        return Err(ParseError {
                            line: pos + 1,
                            message: format!(
                                "event {} (index {}): process {} completes a txn ({}) it never \
                                 invoked; every ok/fail of a client must follow its invoke",
                                pos + 1,
                                op.index,
                                op.process,
                                kind.name()
                            ),
                        });
                    };
                    calls[ci].complete = Some(pos);
                    calls[ci].kind = Some(kind);
                }
            }
        }

        // Model: list-append if any micro-op is an append or reads a list.
        let model = match model {
            Some(m) => m,
            None => {
                let listy = |v: &Value| {
                    v.as_array().is_some_and(|ms| {
                        ms.iter().any(|m| {
                            let m = m.as_array();
                            m.and_then(|m| m.first()).and_then(Value::as_str) == Some("append")
                                || m.and_then(|m| m.get(2)).is_some_and(Value::is_array)
                        })
                    })
                };
                let any_append = calls.iter().any(|c| {
                    listy(&h.ops[c.invoke].value)
                        || c.complete.is_some_and(|p| listy(&h.ops[p].value))
                });
                if any_append {
                    TxnModel::ListAppend
                } else {
                    TxnModel::RwRegister
                }
            }
        };

        let ranks = h.event_ranks();
        let mut out = Txns::empty(model);
        // Sort keys: 0 for the unknown invocation of a lone completion
        // (before everything), 2 * rank + 1 for the events of the file.
        let mut events: Vec<(u64, u64)> = Vec::with_capacity(calls.len() * 2);
        for c in &calls {
            let inv = &h.ops[c.invoke];
            let status = match c.kind {
                Some(OpType::Ok) => Status::Ok,
                Some(OpType::Fail) => Status::Fail,
                _ => Status::Info,
            };
            // The ok completion carries the reads (Jepsen: its value
            // replaces the invocation's); otherwise the invocation's value.
            let (value, line, known) = match (status, c.complete) {
                (Status::Ok, Some(p)) if h.ops[p].value.is_array() => {
                    (&h.ops[p].value, p + 1, true)
                }
                _ => (&inv.value, c.invoke + 1, false),
            };
            let t = out.txns.len() as u32;
            let mop_start = out.mops.len() as u32;
            self.mops(&mut out, value, known, line)?;
            let process = self.processes.text(&inv.process.to_string());
            out.txns.push(Txn {
                index: inv.index as u64,
                process,
                status,
                mop_start,
                mop_len: out.mops.len() as u32 - mop_start,
                invoke_at: if c.lone { 0 } else { 2 * ranks[c.invoke] + 1 },
                complete_at: c.complete.map_or(u64::MAX, |p| 2 * ranks[p] + 1),
            });
            let tx = &out.txns[t as usize];
            events.push((tx.invoke_at, (t as u64) << 1));
            if c.complete.is_some() {
                events.push((tx.complete_at, (t as u64) << 1 | 1));
            }
        }
        events.sort_unstable();
        out.events = events.into_iter().map(|e| e.1).collect();
        out.keys = Names::Table(self.keys.names);
        out.values = Names::Table(self.values.names);
        out.processes = Names::Table(self.processes.names);
        Ok(out)
    }

    fn mops(
        &mut self,
        out: &mut Txns,
        value: &Value,
        reads_known: bool,
        line: usize,
    ) -> Result<(), ParseError> {
        let err = |m: String| ParseError {
            line,
            message: format!("{m}: {MOP_SHAPE}"),
        };
        let Some(ms) = value.as_array() else {
            return Err(err(format!("found {value}")));
        };
        let list = out.model == TxnModel::ListAppend;
        for m in ms {
            // Jepsen also writes an unknown read as [:r k].
            let parts = m
                .as_array()
                .filter(|p| p.len() == 3 || (p.len() == 2 && p[0].as_str() == Some("r")))
                .ok_or_else(|| {
                    err(format!(
                        "micro-op {m} is not a 3-element list [f, key, value]"
                    ))
                })?;
            let f = parts[0].as_str().unwrap_or("");
            let key = self
                .keys
                .scalar(&parts[1])
                .ok_or_else(|| err(format!("micro-op {m}: the key must be a string or number")))?;
            let v = parts.get(2).unwrap_or(&Value::Null);
            let scalar = |s: &mut Self, v: &Value| -> Result<u32, ParseError> {
                s.values.scalar(v).ok_or_else(|| {
                    err(format!(
                        "micro-op {m}: the value must be a string or number"
                    ))
                })
            };
            let mop = match (f, list) {
                ("append", true) => Mop {
                    kind: MopKind::Append,
                    key,
                    a: scalar(self, v)?,
                    b: 0,
                },
                ("w", false) => Mop {
                    kind: MopKind::Write,
                    key,
                    a: scalar(self, v)?,
                    b: 0,
                },
                ("r", true) => {
                    if !reads_known {
                        Mop {
                            kind: MopKind::ReadList,
                            key,
                            a: NONE,
                            b: 0,
                        }
                    } else {
                        let start = out.elems.len() as u32;
                        match v {
                            Value::Null => {}
                            Value::Array(items) => {
                                for item in items {
                                    let id = scalar(self, item)?;
                                    out.elems.push(id);
                                }
                            }
                            _ => {
                                return Err(err(format!(
                                    "micro-op {m}: a list-append read is a list or null"
                                )))
                            }
                        }
                        Mop {
                            kind: MopKind::ReadList,
                            key,
                            a: start,
                            b: out.elems.len() as u32 - start,
                        }
                    }
                }
                ("r", false) => {
                    if !reads_known {
                        Mop {
                            kind: MopKind::ReadReg,
                            key,
                            a: NONE,
                            b: 0,
                        }
                    } else if v.is_null() {
                        Mop {
                            kind: MopKind::ReadReg,
                            key,
                            a: NONE,
                            b: 1,
                        }
                    } else if v.is_array() {
                        return Err(err(format!(
                            "micro-op {m}: a list read in an rw-register history (pass \
                             --txn-model list-append if the appends are elsewhere)"
                        )));
                    } else {
                        Mop {
                            kind: MopKind::ReadReg,
                            key,
                            a: scalar(self, v)?,
                            b: 1,
                        }
                    }
                }
                ("w", true) => {
                    return Err(err(format!(
                        "micro-op {m}: a write in a list-append history (list-append takes \
                         append and r; rw-register takes w and r)"
                    )))
                }
                ("append", false) => {
                    return Err(err(format!(
                        "micro-op {m}: an append in an rw-register history (pass --txn-model \
                         list-append)"
                    )))
                }
                _ => {
                    return Err(err(format!(
                        "micro-op {m}: unknown function {:?}",
                        parts[0]
                    )))
                }
            };
            out.mops.push(mop);
        }
        Ok(())
    }
}
