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
use std::hash::{BuildHasherDefault, Hash, Hasher};

use serde_json::Value;

use crate::history::{Call, Outcome, Semantics};

/// A sequential specification.
pub trait Model: Clone + Send {
    /// A state; compared and hashed for the search cache. Keep it small.
    type State: Clone + Eq + Hash + Send + Debug;
    /// A prepared operation: input and observed output together. Equal ops
    /// must have equal effects (the search treats equal unknown-outcome
    /// ops as interchangeable).
    type Op: Clone + Send + Debug + PartialEq;

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

    /// Called once per partition after every call was prepared and before
    /// the search: a chance to simplify the ops knowing the whole partition
    /// (the built-in registers collapse values that nothing observes).
    /// Default: nothing.
    fn prepared(&mut self, _ops: &mut [Self::Op]) {}

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

    /// Optional statistics for debugging (e.g. interned values).
    fn stats(&self) -> String {
        String::new()
    }
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
    /// Knossos's multi-register: `txn` of reads and writes over several
    /// registers.
    MultiRegister,
}

impl ModelKind {
    pub fn by_name(s: &str) -> Option<ModelKind> {
        Some(match s {
            "register" => ModelKind::Register,
            "cas-register" | "cas" => ModelKind::CasRegister,
            "kv" | "key-value" | "map" => ModelKind::Kv,
            "mutex" | "lock" => ModelKind::Mutex,
            "multi-register" | "multi" => ModelKind::MultiRegister,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
            ModelKind::Mutex => "mutex",
            ModelKind::MultiRegister => "multi-register",
        }
    }
}

/// A small fast hasher (FxHash), for the search's hot maps. Hash quality
/// only affects speed, never a verdict.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl FxHasher {
    #[inline]
    fn add(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        for &b in chunks.remainder() {
            self.add(b as u64);
        }
    }
    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(n as u64)
    }
    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(n as u64)
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n)
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64)
    }
}

/// A `HashMap` with [`FxHasher`].
pub type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
/// A `HashSet` with [`FxHasher`].
pub type FxHashSet<K> = std::collections::HashSet<K, BuildHasherDefault<FxHasher>>;

/// Maps JSON values to dense ids. Id 0 is `null` (absent).
#[derive(Clone, Debug)]
pub struct Interner {
    /// String values, by content.
    strings: FxHashMap<String, u32>,
    /// Other values, by their JSON text.
    others: FxHashMap<String, u32>,
    values: Vec<Value>,
}

impl Default for Interner {
    fn default() -> Self {
        let mut i = Interner {
            strings: FxHashMap::default(),
            others: FxHashMap::default(),
            values: Vec::new(),
        };
        i.intern(&Value::Null);
        i
    }
}

impl Interner {
    pub fn intern(&mut self, v: &Value) -> u32 {
        if let Value::String(s) = v {
            return self.intern_string(s);
        }
        let k = v.to_string();
        if let Some(&id) = self.others.get(&k) {
            return id;
        }
        let id = self.values.len() as u32;
        self.others.insert(k, id);
        self.values.push(v.clone());
        id
    }

    pub fn intern_string(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.strings.get(s) {
            return id;
        }
        let id = self.values.len() as u32;
        self.strings.insert(s.to_owned(), id);
        self.values.push(Value::String(s.to_owned()));
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
    /// Delete: the key becomes absent (the code of `null`).
    Delete(u32),
}

fn cas_args<'a>(call: &Call, value: &'a Value) -> Result<(&'a Value, &'a Value), String> {
    match value {
        Value::Array(a) if a.len() == 2 => Ok((&a[0], &a[1])),
        v => Err(format!(
            "cas value must be [expected, new], found {v} in {}",
            call.describe()
        )),
    }
}

/// How a model turns values into the `u32` codes its ops and states use.
trait Codes {
    /// Code of a value a state can hold (read results, written values...).
    fn code(&mut self, v: &Value) -> u32;
    /// Code of an appended suffix.
    fn append_code(&mut self, v: &Value) -> u32;
}

impl Codes for Interner {
    fn code(&mut self, v: &Value) -> u32 {
        self.intern(v)
    }
    fn append_code(&mut self, v: &Value) -> u32 {
        self.intern(v)
    }
}

/// The value an operation works with: the invocation's, except that with
/// [`Semantics::Jepsen`] an `ok` completion's value replaces it (Knossos's
/// `history/complete`).
pub fn call_value(call: &Call, semantics: Semantics) -> &Value {
    match (&call.outcome, semantics) {
        (Outcome::Ok(v), Semantics::Jepsen) => v,
        _ => &call.invoke_value,
    }
}

/// Shared by [`RegisterModel`] and [`KvModel`].
fn prepare_reg(
    codes: &mut dyn Codes,
    call: &Call,
    allow: &[&str],
    semantics: Semantics,
) -> Result<Option<RegOp>, String> {
    let f = canonical_f(&call.f);
    if !allow.contains(&f) {
        return Err(format!(
            "function `{}` is not supported by this model (supported: {}) in {}",
            call.f,
            allow.join(", "),
            call.describe()
        ));
    }
    let failed = call.outcome == Outcome::Fail;
    let value = call_value(call, semantics);
    Ok(match f {
        "read" => match &call.outcome {
            // Jepsen/Knossos: a read of nil says "we don't know what the
            // read was" (Knossos model.clj, Register and CASRegister).
            Outcome::Ok(Value::Null) if semantics == Semantics::Jepsen => None,
            Outcome::Ok(v) => Some(RegOp::Read(codes.code(v))),
            // A read that failed or may not have happened observes nothing.
            _ => None,
        },
        // A failed write, append or delete certainly had no effect.
        "write" | "append" | "delete" if failed => None,
        // Jepsen logs the written value on the invoke (and usually the ok).
        "write" => Some(RegOp::Write(codes.code(value))),
        "append" => Some(RegOp::Append(codes.append_code(value))),
        "delete" => Some(RegOp::Delete(codes.code(&Value::Null))),
        "cas" => {
            let (from, to) = cas_args(call, value)?;
            let (from, to) = (codes.code(from), codes.code(to));
            // A failed cas observed state != expected. An unknown cas is
            // listed only as the succeeding case: "no effect" is covered by
            // leaving it out of the linearization.
            Some(if failed {
                RegOp::CasFail(from)
            } else {
                RegOp::Cas(from, to)
            })
        }
        _ => unreachable!("checked against `allow`"),
    })
}

/// Values that no operation of a partition can observe (no read returns
/// them, no cas expects them) are interchangeable: from any of them, every
/// operation succeeds or fails alike and leads to the same state or to
/// another unobservable value. So they are all rewritten to [`DEAD`].
///
/// This matters for unknown outcomes: workloads write fresh values, most of
/// which nobody reads; a timed-out write of such a value then equals every
/// other one, and the search treats equal unknown calls as interchangeable
/// instead of trying every subset of them.
///
/// Returns the observed codes. Not valid with appends (an unobservable
/// prefix can become observable); callers skip it then.
fn collapse_unobserved(ops: &mut [RegOp]) -> FxHashSet<u32> {
    let mut seen = FxHashSet::default();
    for op in ops.iter() {
        match *op {
            RegOp::Read(v) | RegOp::Cas(v, _) | RegOp::CasFail(v) => {
                seen.insert(v);
            }
            _ => {}
        }
    }
    let keep = |v: u32| if seen.contains(&v) { v } else { DEAD };
    for op in ops.iter_mut() {
        *op = match *op {
            RegOp::Write(v) => RegOp::Write(keep(v)),
            RegOp::Cas(f, t) => RegOp::Cas(f, keep(t)),
            RegOp::Delete(a) => RegOp::Delete(keep(a)),
            ref other => other.clone(),
        };
    }
    seen
}

/// A single register (read/write), optionally with cas.
#[derive(Clone, Debug)]
pub struct RegisterModel {
    pub values: Interner,
    initial: Value,
    allow_cas: bool,
    semantics: Semantics,
    /// Set by [`Model::prepared`]: the codes some op observes.
    observed: Option<FxHashSet<u32>>,
}

impl RegisterModel {
    pub fn new(initial: Value, allow_cas: bool) -> Self {
        RegisterModel {
            values: Interner::default(),
            initial,
            allow_cas,
            semantics: Semantics::Native,
            observed: None,
        }
    }

    /// Reads calls with this meaning (default [`Semantics::Native`]).
    pub fn with_semantics(mut self, semantics: Semantics) -> Self {
        self.semantics = semantics;
        self
    }
}

/// `code`, or [`DEAD`] if values were collapsed and nothing observes it.
fn or_dead(observed: &Option<FxHashSet<u32>>, code: u32) -> u32 {
    match observed {
        Some(seen) if !seen.contains(&code) => DEAD,
        _ => code,
    }
}

const DEAD_VALUE: &str = "(a value that no read or cas observes)";

#[inline]
fn step_reg(s: u32, op: &RegOp) -> Option<u32> {
    match *op {
        RegOp::Read(v) => (s == v).then_some(s),
        RegOp::Write(v) => Some(v),
        RegOp::Cas(from, to) => (s == from).then_some(to),
        RegOp::CasFail(from) => (s != from).then_some(s),
        RegOp::Delete(absent) => Some(absent),
        RegOp::Append(_) => None,
    }
}

impl Model for RegisterModel {
    type State = u32;
    type Op = RegOp;

    fn init(&mut self) -> u32 {
        let init = self.initial.clone();
        let code = self.values.intern(&init);
        or_dead(&self.observed, code)
    }

    fn prepared(&mut self, ops: &mut [RegOp]) {
        self.observed = Some(collapse_unobserved(ops));
    }

    fn prepare(&mut self, call: &Call) -> Result<Option<RegOp>, String> {
        let allow: &[&str] = if self.allow_cas {
            &["read", "write", "cas"]
        } else {
            &["read", "write"]
        };
        prepare_reg(&mut self.values, call, allow, self.semantics)
    }

    fn step(&mut self, s: &u32, op: &RegOp) -> Option<u32> {
        step_reg(*s, op)
    }

    fn describe_state(&self, s: &u32) -> String {
        if *s == DEAD {
            DEAD_VALUE.into()
        } else {
            self.values.show(*s)
        }
    }
}

/// The strings a key can hold that matter, as a byte trie: every string
/// value the partition's operations mention, and all their prefixes.
///
/// Appends make new strings at every step of the search; materialising them
/// is what makes a naive kv check slow. A string that is not a prefix of
/// any mentioned value can never again equal a value a read returns or a
/// cas expects (appends only make it longer), so all such strings behave
/// the same: they collapse into one [`DEAD`] state. Every other string is a
/// trie node, so states stay `u32`s and equal strings get equal codes.
#[derive(Clone, Debug, Default)]
struct StrTrie {
    /// Per node: parent, byte on the edge from it, first child, next sibling.
    parent: Vec<u32>,
    byte: Vec<u8>,
    child: Vec<u32>,
    sibling: Vec<u32>,
}

const NO_NODE: u32 = u32::MAX;
/// State codes at or above this are trie nodes (strings).
const STR_BASE: u32 = 1 << 30;
/// The state code of a value that no operation can observe (any more).
pub const DEAD: u32 = u32::MAX;

impl StrTrie {
    fn ensure_root(&mut self) {
        if self.parent.is_empty() {
            self.parent.push(NO_NODE);
            self.byte.push(0);
            self.child.push(NO_NODE);
            self.sibling.push(NO_NODE);
        }
    }

    fn find_child(&self, n: u32, b: u8) -> u32 {
        let mut c = self.child[n as usize];
        while c != NO_NODE && self.byte[c as usize] != b {
            c = self.sibling[c as usize];
        }
        c
    }

    fn insert(&mut self, s: &str) -> u32 {
        self.ensure_root();
        let mut n = 0u32;
        for &b in s.as_bytes() {
            let c = self.find_child(n, b);
            n = if c != NO_NODE {
                c
            } else {
                let c = self.parent.len() as u32;
                self.parent.push(n);
                self.byte.push(b);
                self.child.push(NO_NODE);
                self.sibling.push(self.child[n as usize]);
                self.child[n as usize] = c;
                c
            };
        }
        n
    }

    /// Follows `bytes` from node `n`; `NO_NODE` if the path leaves the trie.
    fn walk(&self, mut n: u32, bytes: &[u8]) -> u32 {
        for &b in bytes {
            n = self.find_child(n, b);
            if n == NO_NODE {
                return NO_NODE;
            }
        }
        n
    }

    fn string(&self, mut n: u32) -> String {
        let mut bytes = Vec::new();
        while n != 0 && n != NO_NODE {
            bytes.push(self.byte[n as usize]);
            n = self.parent[n as usize];
        }
        bytes.reverse();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// A key-value map, checked per key: each key is a register with
/// get/put/append/cas/delete. A get returning `null` means absent; append
/// concatenates strings (appending to absent starts from `""`).
#[derive(Clone, Debug)]
pub struct KvModel {
    /// Non-string values (`null` = absent is 0).
    pub values: Interner,
    strings: StrTrie,
    /// Appended suffixes, by append code.
    suffixes: Vec<String>,
    suffix_ids: FxHashMap<String, u32>,
    initial: Value,
    semantics: Semantics,
    /// Memo of (state, suffix) -> state.
    appends: FxHashMap<(u32, u32), u32>,
    /// Set by [`Model::prepared`] if the partition has no appends: the
    /// codes some op observes.
    observed: Option<FxHashSet<u32>>,
}

impl KvModel {
    /// `initial` is the value of every key before any write (`null` =
    /// absent; Porcupine's kv histories use `""`).
    pub fn new(initial: Value) -> Self {
        KvModel {
            values: Interner::default(),
            strings: StrTrie::default(),
            suffixes: Vec::new(),
            suffix_ids: FxHashMap::default(),
            initial,
            semantics: Semantics::Native,
            appends: FxHashMap::default(),
            observed: None,
        }
    }

    /// Reads calls with this meaning (default [`Semantics::Native`]).
    pub fn with_semantics(mut self, semantics: Semantics) -> Self {
        self.semantics = semantics;
        self
    }

    fn append(&mut self, s: u32, a: u32) -> u32 {
        if s == DEAD {
            return DEAD;
        }
        if let Some(&r) = self.appends.get(&(s, a)) {
            return r;
        }
        self.strings.ensure_root();
        let suffix = self.suffixes[a as usize].as_bytes();
        let node = if s >= STR_BASE {
            self.strings.walk(s - STR_BASE, suffix)
        } else {
            let base = match self.values.value(s) {
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let n = self.strings.walk(0, base.as_bytes());
            if n == NO_NODE {
                NO_NODE
            } else {
                self.strings.walk(n, suffix)
            }
        };
        let r = if node == NO_NODE {
            DEAD
        } else {
            STR_BASE + node
        };
        self.appends.insert((s, a), r);
        r
    }
}

impl Codes for KvModel {
    fn code(&mut self, v: &Value) -> u32 {
        match v {
            Value::String(s) => STR_BASE + self.strings.insert(s),
            other => self.values.intern(other),
        }
    }
    fn append_code(&mut self, v: &Value) -> u32 {
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        // Equal suffixes share a code, so equal appends are equal ops.
        if let Some(&i) = self.suffix_ids.get(&s) {
            return i;
        }
        let id = self.suffixes.len() as u32;
        self.suffix_ids.insert(s.clone(), id);
        self.suffixes.push(s);
        id
    }
}

impl Model for KvModel {
    type State = u32;
    type Op = RegOp;

    fn init(&mut self) -> u32 {
        let init = self.initial.clone();
        let code = self.code(&init);
        or_dead(&self.observed, code)
    }

    fn prepare(&mut self, call: &Call) -> Result<Option<RegOp>, String> {
        let semantics = self.semantics;
        prepare_reg(
            self,
            call,
            &["read", "write", "append", "cas", "delete"],
            semantics,
        )
    }

    fn prepared(&mut self, ops: &mut [RegOp]) {
        if !ops.iter().any(|op| matches!(op, RegOp::Append(_))) {
            self.observed = Some(collapse_unobserved(ops));
        }
    }

    #[inline]
    fn step(&mut self, s: &u32, op: &RegOp) -> Option<u32> {
        match *op {
            RegOp::Append(a) => Some(self.append(*s, a)),
            _ => step_reg(*s, op),
        }
    }

    fn partition(&self, call: &Call) -> Option<String> {
        call.key.clone()
    }

    fn describe_state(&self, s: &u32) -> String {
        if *s == DEAD && self.observed.is_some() {
            DEAD_VALUE.into()
        } else if *s == DEAD {
            "(a string that no read or cas of this key ever observes)".into()
        } else if *s >= STR_BASE {
            Value::String(self.strings.string(*s - STR_BASE)).to_string()
        } else {
            self.values.show(*s)
        }
    }

    fn stats(&self) -> String {
        format!(
            "{} trie nodes, {} appends memoised",
            self.strings.parent.len(),
            self.appends.len()
        )
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

/// One step of a multi-register transaction, with interned key slot and
/// value code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Micro {
    /// The register (slot) holds this value.
    Read(u32, u32),
    /// The register (slot) becomes this value.
    Write(u32, u32),
}

/// Knossos's `multi-register` (model.clj `MultiRegister`): registers named
/// by keys, used only through transactions: `f` = `txn`, value = a list of
/// `[f k v]` micro-operations, `f` one of `read`/`r` and `write`/`w`,
/// applied atomically in order. A read micro-op constrains the register
/// to `v`; with [`Semantics::Jepsen`] a read of `nil` is always legal
/// ("Nil reads are always legal"), and with [`Semantics::Native`] it reads
/// `null`, i.e. a register never written that starts at `null`.
///
/// The initial value: a JSON object gives each register's (Knossos's
/// `(multi-register {:x 0 :y 0})`; a register it does not name starts at
/// `null`); any other value is every register's.
///
/// A transaction can touch several registers, so the history is one
/// partition.
#[derive(Clone, Debug)]
pub struct MultiRegisterModel {
    pub values: Interner,
    /// Key (its JSON text; a string key as is) -> slot.
    slots: FxHashMap<String, u32>,
    keys: Vec<String>,
    initial: Value,
    semantics: Semantics,
    /// Set by [`Model::prepared`]: per slot, the codes some read observes.
    observed: Option<Vec<FxHashSet<u32>>>,
}

impl MultiRegisterModel {
    pub fn new(initial: Value) -> Self {
        MultiRegisterModel {
            values: Interner::default(),
            slots: FxHashMap::default(),
            keys: Vec::new(),
            initial,
            semantics: Semantics::Native,
            observed: None,
        }
    }

    /// Reads calls with this meaning (default [`Semantics::Native`]).
    pub fn with_semantics(mut self, semantics: Semantics) -> Self {
        self.semantics = semantics;
        self
    }

    fn slot(&mut self, key: &Value) -> u32 {
        let name = match key {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let Some(&s) = self.slots.get(&name) {
            return s;
        }
        let s = self.keys.len() as u32;
        self.slots.insert(name.clone(), s);
        self.keys.push(name);
        s
    }

    fn initial_of(&self, key: &str) -> Value {
        match &self.initial {
            Value::Object(m) => m.get(key).cloned().unwrap_or(Value::Null),
            v => v.clone(),
        }
    }

    /// The code a slot holds in a state; a slot beyond the state (a key
    /// first seen after `init`) holds its initial value.
    fn get(&mut self, s: &[u32], slot: u32) -> u32 {
        match s.get(slot as usize) {
            Some(&v) => v,
            None => {
                let init = self.initial_of(&self.keys[slot as usize].clone());
                let code = self.values.intern(&init);
                self.observed_or_dead(slot, code)
            }
        }
    }

    fn observed_or_dead(&self, slot: u32, code: u32) -> u32 {
        match &self.observed {
            Some(seen) if !seen[slot as usize].contains(&code) => DEAD,
            _ => code,
        }
    }
}

impl Model for MultiRegisterModel {
    type State = Box<[u32]>;
    type Op = Vec<Micro>;

    fn init(&mut self) -> Box<[u32]> {
        (0..self.keys.len() as u32)
            .map(|slot| {
                let init = self.initial_of(&self.keys[slot as usize].clone());
                let code = self.values.intern(&init);
                self.observed_or_dead(slot, code)
            })
            .collect()
    }

    fn prepare(&mut self, call: &Call) -> Result<Option<Vec<Micro>>, String> {
        if call.f != "txn" {
            return Err(format!(
                "function `{}` is not supported by the multi-register model (supported: txn, \
                 with a value like [[\"read\", \"x\", null], [\"write\", \"y\", 2]]) in {}",
                call.f,
                call.describe()
            ));
        }
        let jepsen = self.semantics == Semantics::Jepsen;
        // The completed value carries what the reads saw. Knossos uses it
        // whatever it is; a native `ok` without a value keeps the invoke's.
        let value = match &call.outcome {
            Outcome::Ok(v) if jepsen || !v.is_null() => v,
            _ => &call.invoke_value,
        };
        let micro_ops: &[Value] = match value {
            Value::Array(a) => a,
            // Knossos reduces over nil: no micro-ops.
            Value::Null => &[],
            v => {
                return Err(format!(
                    "a txn value must be a list of [f k v] micro-ops, found {v} in {}",
                    call.describe()
                ))
            }
        };
        let mut ops = Vec::with_capacity(micro_ops.len());
        for m in micro_ops {
            let bad = || {
                format!(
                    "a txn micro-op must be [f k v] with f read/r or write/w, found {m} in {}",
                    call.describe()
                )
            };
            let Value::Array(t) = m else {
                return Err(bad());
            };
            let [Value::String(f), k, v] = t.as_slice() else {
                return Err(bad());
            };
            let slot = self.slot(k);
            match f.as_str() {
                "read" | "r" => {
                    let known = if jepsen {
                        // Knossos: "Nil reads are always legal".
                        !v.is_null()
                    } else {
                        // Native: only an ok txn's reads are known.
                        matches!(call.outcome, Outcome::Ok(_))
                    };
                    if known {
                        ops.push(Micro::Read(slot, self.values.intern(v)));
                    }
                }
                "write" | "w" => ops.push(Micro::Write(slot, self.values.intern(v))),
                "append" => {
                    return Err(format!(
                        "{}; appends make a list-append history, which is checked for \
                         transactional isolation: add --isolation MODEL (e.g. --isolation \
                         serializable)",
                        bad()
                    ))
                }
                _ => return Err(bad()),
            }
        }
        Ok(match call.outcome {
            // A failed txn (native meaning) had no effect.
            Outcome::Fail => None,
            _ if ops.is_empty() => None,
            _ => Some(ops),
        })
    }

    /// Values of a register that no read observes are interchangeable, as
    /// in the single registers ([`DEAD`]).
    fn prepared(&mut self, ops: &mut [Vec<Micro>]) {
        let mut seen = vec![FxHashSet::default(); self.keys.len()];
        for op in ops.iter() {
            for m in op {
                if let Micro::Read(k, v) = *m {
                    seen[k as usize].insert(v);
                }
            }
        }
        for op in ops.iter_mut() {
            for m in op.iter_mut() {
                if let Micro::Write(k, v) = *m {
                    if !seen[k as usize].contains(&v) {
                        *m = Micro::Write(k, DEAD);
                    }
                }
            }
        }
        self.observed = Some(seen);
    }

    fn step(&mut self, s: &Box<[u32]>, op: &Vec<Micro>) -> Option<Box<[u32]>> {
        let mut out: Option<Box<[u32]>> = None;
        for m in op {
            match *m {
                Micro::Read(k, v) => {
                    let cur = match &out {
                        Some(o) => self.get(o, k),
                        None => self.get(s, k),
                    };
                    if cur != v {
                        return None;
                    }
                }
                Micro::Write(k, v) => {
                    let o = out.get_or_insert_with(|| s.clone());
                    if (k as usize) >= o.len() {
                        // Grow to hold a key first seen after `init`.
                        let mut grown = o.to_vec();
                        for slot in grown.len() as u32..=k {
                            let c = self.get(&[], slot);
                            grown.push(c);
                        }
                        *o = grown.into_boxed_slice();
                    }
                    o[k as usize] = v;
                }
            }
        }
        Some(out.unwrap_or_else(|| s.clone()))
    }

    fn describe_state(&self, s: &Box<[u32]>) -> String {
        let parts: Vec<String> = s
            .iter()
            .enumerate()
            .map(|(k, &v)| {
                let v = if v == DEAD {
                    "(a value no read observes)".to_string()
                } else {
                    self.values.show(v)
                };
                format!("{} {v}", self.keys[k])
            })
            .collect();
        format!("{{{}}}", parts.join(", "))
    }
}
