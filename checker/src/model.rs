//! Sequential specifications ("models") the history is checked against.
//!
//! Like Porcupine's `Model`, a model is a few small functions: [`Model::init`],
//! [`Model::prepare`] (turn a client call into a compact operation, once),
//! [`Model::step`] (apply it to a state, or say it is impossible there),
//! [`Model::partition`] (which independent part a call belongs to) and
//! [`Model::describe_state`]. State equality is `Eq` on the state type.
//!
//! Models intern JSON values to small integers in `prepare` so that `step`,
//! which runs millions of times, compares integers, not `serde_json::Value`s.
//! A model instance is cloned for each partition, so its interner is local.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;

use serde_json::Value;

use crate::history::{Call, Outcome};

/// A sequential specification.
pub trait Model: Clone + Send {
    /// A state; compared and hashed for the search cache. Keep it small.
    type State: Clone + Eq + Hash + Send + Debug;
    /// A prepared operation: input and observed output together.
    type Op: Clone + Send + Debug;

    /// The initial state.
    fn init(&mut self) -> Self::State;

    /// Prepares a call. `Ok(None)` means "omit it": it has no effect and
    /// observes nothing (a failed write, a read with unknown outcome).
    /// `Err` means the model does not understand the call (bad input).
    ///
    /// For a call with [`Outcome::Unknown`], the returned op should only
    /// describe the outcomes *with an effect*: the search already covers
    /// "it never happened" by leaving it out.
    fn prepare(&mut self, call: &Call) -> Result<Option<Self::Op>, String>;

    /// Applies `op` to `state`: the next state, or `None` if the observed
    /// output is impossible in `state`.
    fn step(&mut self, state: &Self::State, op: &Self::Op) -> Option<Self::State>;

    /// The independent part a call belongs to (e.g. its key). Calls in
    /// different parts never constrain each other. Default: one part.
    fn partition(&self, _call: &Call) -> Option<String> {
        None
    }

    /// Human-readable state, for explanations.
    fn describe_state(&self, state: &Self::State) -> String;
}

/// The built-in models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// read / write.
    Register,
    /// read / write / cas (Jepsen/Knossos `cas-register`).
    CasRegister,
    /// key-value map: get / put / append / cas / delete, checked per key.
    Kv,
    /// acquire / release.
    Mutex,
}

impl ModelKind {
    pub fn by_name(s: &str) -> Option<ModelKind> {
        Some(match s {
            "register" => ModelKind::Register,
            "cas-register" | "cas" => ModelKind::CasRegister,
            "kv" | "key-value" | "map" => ModelKind::Kv,
            "mutex" | "lock" => ModelKind::Mutex,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
            ModelKind::Mutex => "mutex",
        }
    }
}

/// Maps JSON values to dense ids. Id 0 is `null` (absent).
#[derive(Clone, Debug)]
pub struct Interner {
    ids: HashMap<String, u32>,
    values: Vec<Value>,
}

impl Default for Interner {
    fn default() -> Self {
        let mut i = Interner {
            ids: HashMap::new(),
            values: Vec::new(),
        };
        i.intern(&Value::Null);
        i
    }
}

impl Interner {
    pub fn intern(&mut self, v: &Value) -> u32 {
        let k = v.to_string();
        if let Some(&id) = self.ids.get(&k) {
            return id;
        }
        let id = self.values.len() as u32;
        self.ids.insert(k, id);
        self.values.push(v.clone());
        id
    }

    pub fn value(&self, id: u32) -> &Value {
        &self.values[id as usize]
    }

    /// Human form: `nil` for absent, JSON otherwise.
    pub fn show(&self, id: u32) -> String {
        match self.value(id) {
            Value::Null => "nil".into(),
            v => v.to_string(),
        }
    }
}

/// Canonical function names: aliases read/get, write/put, acquire/lock...
pub fn canonical_f(f: &str) -> &str {
    match f {
        "read" | "get" | "r" => "read",
        "write" | "put" | "w" | "set" => "write",
        "cas" | "compare-and-set" => "cas",
        "append" => "append",
        "delete" | "del" | "remove" => "delete",
        "acquire" | "lock" => "acquire",
        "release" | "unlock" => "release",
        other => other,
    }
}

/// A register operation with interned values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegOp {
    /// Read observing this value (0 = absent).
    Read(u32),
    /// Write (certain, or unknown-but-possible).
    Write(u32),
    /// Successful cas (or unknown cas that did succeed): needs state == from.
    Cas(u32, u32),
    /// Failed cas: the compare failed, so state != from; no effect.
    CasFail(u32),
    /// Append (string concatenation).
    Append(u32),
    /// Delete: the key becomes absent.
    Delete,
}

fn cas_args(call: &Call) -> Result<(&Value, &Value), String> {
    match &call.invoke_value {
        Value::Array(a) if a.len() == 2 => Ok((&a[0], &a[1])),
        v => Err(format!(
            "cas value must be [expected, new], found {v} in {}",
            call.describe()
        )),
    }
}

/// Shared by [`RegisterModel`] and [`KvModel`].
fn prepare_reg(values: &mut Interner, call: &Call, allow: &[&str]) -> Result<Option<RegOp>, String> {
    let f = canonical_f(&call.f);
    if !allow.contains(&f) {
        return Err(format!(
            "function `{}` is not supported by this model (supported: {}) in {}",
            call.f,
            allow.join(", "),
            call.describe()
        ));
    }
    let unknown = call.outcome == Outcome::Unknown;
    let failed = call.outcome == Outcome::Fail;
    Ok(match f {
        "read" => match &call.outcome {
            Outcome::Ok(v) => Some(RegOp::Read(values.intern(v))),
            // A read that failed or may not have happened observes nothing.
            _ => None,
        },
        "write" if failed => None,
        "write" => {
            // Jepsen logs the written value on the invoke (and usually the ok).
            Some(RegOp::Write(values.intern(&call.invoke_value)))
        }
        "append" if failed => None,
        "append" => Some(RegOp::Append(values.intern(&call.invoke_value))),
        "delete" if failed => None,
        "delete" => Some(RegOp::Delete),
        "cas" => {
            let (from, to) = cas_args(call)?;
            let (from, to) = (values.intern(from), values.intern(to));
            if failed {
                Some(RegOp::CasFail(from))
            } else {
                let _ = unknown; // an unknown cas is listed only as the succeeding case
                Some(RegOp::Cas(from, to))
            }
        }
        _ => unreachable!(),
    })
}

/// A single register (read/write), optionally with cas.
#[derive(Clone, Debug)]
pub struct RegisterModel {
    pub values: Interner,
    initial: Value,
    allow_cas: bool,
}

impl RegisterModel {
    pub fn new(initial: Value, allow_cas: bool) -> Self {
        RegisterModel {
            values: Interner::default(),
            initial,
            allow_cas,
        }
    }
}

impl Model for RegisterModel {
    type State = u32;
    type Op = RegOp;

    fn init(&mut self) -> u32 {
        let init = self.initial.clone();
        self.values.intern(&init)
    }

    fn prepare(&mut self, call: &Call) -> Result<Option<RegOp>, String> {
        let allow: &[&str] = if self.allow_cas {
            &["read", "write", "cas"]
        } else {
            &["read", "write"]
        };
        prepare_reg(&mut self.values, call, allow)
    }

    fn step(&mut self, s: &u32, op: &RegOp) -> Option<u32> {
        step_reg(&mut self.values, &mut HashMap::new(), *s, op)
    }

    fn describe_state(&self, s: &u32) -> String {
        self.values.show(*s)
    }
}

#[inline]
fn step_reg(
    values: &mut Interner,
    appends: &mut HashMap<(u32, u32), u32>,
    s: u32,
    op: &RegOp,
) -> Option<u32> {
    match *op {
        RegOp::Read(v) => (s == v).then_some(s),
        RegOp::Write(v) => Some(v),
        RegOp::Cas(from, to) => (s == from).then_some(to),
        RegOp::CasFail(from) => (s != from).then_some(s),
        RegOp::Delete => Some(0),
        RegOp::Append(v) => {
            if let Some(&r) = appends.get(&(s, v)) {
                return Some(r);
            }
            let as_str = |v: &Value| match v {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let joined = as_str(values.value(s)) + &as_str(values.value(v));
            let r = values.intern(&Value::String(joined));
            appends.insert((s, v), r);
            Some(r)
        }
    }
}

/// A key-value map, checked per key: each key is a register with
/// get/put/append/cas/delete. A get returning `null` means absent.
#[derive(Clone, Debug)]
pub struct KvModel {
    pub values: Interner,
    initial: Value,
    appends: HashMap<(u32, u32), u32>,
}

impl KvModel {
    /// `initial` is the value of every key before any write (`null` =
    /// absent; Porcupine's kv histories use `""`).
    pub fn new(initial: Value) -> Self {
        KvModel {
            values: Interner::default(),
            initial,
            appends: HashMap::new(),
        }
    }
}

impl Model for KvModel {
    type State = u32;
    type Op = RegOp;

    fn init(&mut self) -> u32 {
        let init = self.initial.clone();
        self.values.intern(&init)
    }

    fn prepare(&mut self, call: &Call) -> Result<Option<RegOp>, String> {
        prepare_reg(
            &mut self.values,
            call,
            &["read", "write", "append", "cas", "delete"],
        )
    }

    fn step(&mut self, s: &u32, op: &RegOp) -> Option<u32> {
        step_reg(&mut self.values, &mut self.appends, *s, op)
    }

    fn partition(&self, call: &Call) -> Option<String> {
        call.key.clone()
    }

    fn describe_state(&self, s: &u32) -> String {
        self.values.show(*s)
    }
}

/// A mutex: acquire succeeds only when free, release only when held.
/// (Like Knossos' mutex, the owner is not tracked.)
#[derive(Clone, Debug, Default)]
pub struct MutexModel;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MutexOp {
    Acquire,
    Release,
}

impl Model for MutexModel {
    type State = bool;
    type Op = MutexOp;

    fn init(&mut self) -> bool {
        false
    }

    fn prepare(&mut self, call: &Call) -> Result<Option<MutexOp>, String> {
        let op = match canonical_f(&call.f) {
            "acquire" => MutexOp::Acquire,
            "release" => MutexOp::Release,
            _ => {
                return Err(format!(
                    "function `{}` is not supported by the mutex model (supported: acquire, release) in {}",
                    call.f,
                    call.describe()
                ))
            }
        };
        Ok(match call.outcome {
            Outcome::Fail => None,
            _ => Some(op),
        })
    }

    fn step(&mut self, locked: &bool, op: &MutexOp) -> Option<bool> {
        match op {
            MutexOp::Acquire => (!*locked).then_some(true),
            MutexOp::Release => (*locked).then_some(false),
        }
    }

    fn describe_state(&self, locked: &bool) -> String {
        if *locked { "locked" } else { "free" }.into()
    }
}
