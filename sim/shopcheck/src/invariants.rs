//! Checkout-transaction invariants: did the bookstore's checkouts conserve
//! stock and money, and do the clients' answers agree with the final state?
//!
//! Linearizability ([`checker::linear`]) checks single objects. A checkout
//! touches several (an order, its items' stock, its user's credit) through a
//! saga or a two-phase commit, so this module checks the *end-to-end*
//! properties instead, from three things in a native history:
//!
//! - the initial state: `{"process":"setup","type":"ok","f":"init","value":
//!   {"items":{"i1":{"stock":100,"price":1}},"users":{"u1":5},"orders":{"o1":
//!   {"user":"u1","items":[["i1",1]]}}}}` (several init events are merged);
//! - the client operations (`process` a number, an `invoke` then `ok`,
//!   `fail` or `info`): `checkout {order}`, `add_stock`/`subtract_stock
//!   {item, amount}`, `add_funds`/`pay {user, amount}`, `add_item {order,
//!   item, qty}`, `create_item`/`create_user`/`create_order` (the new id in
//!   the `ok` value) and the reads `find_item`, `find_user`, `find_order`;
//! - the final state, read after every fault healed and the system
//!   quiesced: `{"process":"final","type":"ok","f":"final","value":{"items":
//!   {..stock, price..},"users":{..},"orders":{"o1":{"paid":true,"user":"u1",
//!   "items":[["i1",1]],"total":1}},"in_flight":0}}`.
//!
//! `ok` means applied once, `fail` not applied (a `fail` with an `error`
//! field never ran), `info` or no completion: unknown. Whether a checkout
//! took effect is decided by the final state (the order is paid or not), so
//! only unknown stock and credit updates are uncertain.
//!
//! The invariants, each a [`ViolationKind`]:
//!
//! 1. **Stock conservation**, per item: final = initial + Σ ok `add_stock`
//!    − Σ ok `subtract_stock` − Σ qty in the orders paid in the final state,
//!    plus some subset of the unknown `add_stock`/`subtract_stock` (exact
//!    subset sums up to [`EXACT_UNKNOWN_LIMIT`] unknown ops per item, else
//!    the interval of sums in steps of their gcd).
//! 2. **Credit conservation**, per user: final = initial + Σ ok `add_funds`
//!    − Σ ok `pay` − Σ totals of the user's paid orders (total = Σ qty ×
//!    the item's final price; a paid order whose `total` field differs is
//!    flagged too), with the unknown `add_funds`/`pay` handled the same way.
//! 3. **Never negative**: final stock and credit, and every `ok`
//!    `find_item`/`find_user`.
//! 4. **Answers match the final state**: an `ok` checkout's order is paid;
//!    a paid order had at least one `ok` or unknown checkout.
//! 5. **Nothing in flight**: `in_flight` (sagas/transactions that did not
//!    terminate) is 0.
//!
//! Plus: every entity known from the init or an `ok` create is in the final
//! state, and the final state holds no entity that was never created (an
//! unknown create may explain one each). Input that cannot be checked (no
//! final event, an operation on an id nobody created, a non-integer amount)
//! is an [`InputError`], never a panic.
//!
//! ```
//! use checker::history::History;
//! use shopcheck::invariants::{check_checkout, Verdict, ViolationKind};
//!
//! // One checkout answered ok, but the user was charged twice.
//! let h = History::from_jsonl(r#"
//! {"process":"setup","type":"ok","f":"init","value":{"items":{"i1":{"stock":5,"price":3}},"users":{"u1":10},"orders":{"o1":{"user":"u1","items":[["i1",1]]}}}}
//! {"process":1,"type":"invoke","f":"checkout","value":{"order":"o1"}}
//! {"process":1,"type":"ok","f":"checkout","value":{"order":"o1"}}
//! {"process":"final","type":"ok","f":"final","value":{"items":{"i1":{"stock":4,"price":3}},"users":{"u1":4},"orders":{"o1":{"paid":true,"user":"u1","items":[["i1",1]],"total":3}},"in_flight":0}}
//! "#).unwrap();
//! let r = check_checkout(&h);
//! assert_eq!(r.verdict, Verdict::Invalid);
//! assert_eq!(r.violations[0].kind, ViolationKind::MoneyLost);
//! assert_eq!(r.violations[0].subject, "u1");
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Map, Value};

use checker::history::{Call, History, Op, OpType, Outcome, Process};

/// Up to this many unknown updates of one item or user, every subset of
/// them is tried; beyond, only the interval of their sums (and gcd).
pub const EXACT_UNKNOWN_LIMIT: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Valid,
    Invalid,
    /// The history cannot be checked; see [`InvariantResult::error`].
    BadInput,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::BadInput => "bad-input",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ViolationKind {
    /// More stock than the operations explain (e.g. a lost update).
    StockCreated,
    /// Less stock than the operations explain (e.g. a reservation never
    /// released).
    StockLost,
    /// More credit than the operations explain.
    MoneyCreated,
    /// Less credit than the operations explain (e.g. charged twice).
    MoneyLost,
    /// A paid order's `total` is not Σ qty × price.
    WrongTotal,
    NegativeStock,
    NegativeCredit,
    /// A checkout answered `ok`, but the order is not paid.
    OkCheckoutNotPaid,
    /// An order is paid, but every checkout of it failed (or there was none).
    PaidWithoutCheckout,
    /// Sagas/transactions still running after healing.
    InFlight,
    /// An entity from the init or an `ok` create is not in the final state.
    MissingEntity,
    /// The final state has an entity that nobody created.
    UnexpectedEntity,
}

impl ViolationKind {
    pub fn name(self) -> &'static str {
        match self {
            ViolationKind::StockCreated => "stock-created",
            ViolationKind::StockLost => "stock-lost",
            ViolationKind::MoneyCreated => "money-created",
            ViolationKind::MoneyLost => "money-lost",
            ViolationKind::WrongTotal => "wrong-total",
            ViolationKind::NegativeStock => "negative-stock",
            ViolationKind::NegativeCredit => "negative-credit",
            ViolationKind::OkCheckoutNotPaid => "ok-checkout-not-paid",
            ViolationKind::PaidWithoutCheckout => "paid-without-checkout",
            ViolationKind::InFlight => "in-flight",
            ViolationKind::MissingEntity => "missing-entity",
            ViolationKind::UnexpectedEntity => "unexpected-entity",
        }
    }
}

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub kind: ViolationKind,
    /// The item, user or order id (`in_flight` for [`ViolationKind::InFlight`]).
    pub subject: String,
    pub message: String,
    /// `index` of the relevant events (invocations for client operations,
    /// and the init/final events), sorted.
    pub ops: Vec<usize>,
}

/// What was checked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub items: usize,
    pub users: usize,
    pub orders: usize,
    pub paid_orders: usize,
    pub checkouts_ok: usize,
    pub checkouts_failed: usize,
    pub checkouts_unknown: usize,
    /// `add_stock`, `subtract_stock`, `add_funds`, `pay` with unknown outcome.
    pub unknown_updates: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvariantResult {
    pub verdict: Verdict,
    pub violations: Vec<Violation>,
    pub stats: Stats,
    /// Why the input could not be checked ([`Verdict::BadInput`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A history that cannot be checked: which event, and what to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    /// `index` of the offending event, if there is one.
    pub op: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.op {
            Some(i) => write!(f, "event #{i}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for InputError {}

/// Checks the invariants; unusable input gives [`Verdict::BadInput`] with
/// the reason in [`InvariantResult::error`].
pub fn check_checkout(history: &History) -> InvariantResult {
    try_check_checkout(history).unwrap_or_else(|e| InvariantResult {
        verdict: Verdict::BadInput,
        violations: Vec::new(),
        stats: Stats::default(),
        error: Some(e.to_string()),
    })
}

/// Checks the invariants; `Err` if the history cannot be checked.
pub fn try_check_checkout(history: &History) -> Result<InvariantResult, InputError> {
    let input = Input::read(history)?;
    let mut out = Vec::new();
    let mut stats = Stats {
        items: input.fin.items.len(),
        users: input.fin.users.len(),
        orders: input.fin.orders.len(),
        ..Stats::default()
    };
    entities(&input, &mut out);
    let mut books = Books::collect(&input, &mut stats, &mut out)?;
    books.charge_paid_orders(&input, &mut stats, &mut out)?;
    books.note_unpaid_checkouts(&input);
    answers(&input, &books, &mut out);
    for (id, l) in &books.stock {
        let fin = input.fin.items[id].0;
        out.extend(conserve(&STOCK, id, l, fin, &input));
    }
    for (id, l) in &books.credit {
        out.extend(conserve(&CREDIT, id, l, input.fin.users[id], &input));
    }
    never_negative(&input, &mut out);
    if input.fin.in_flight != 0 {
        out.push(Violation {
            kind: ViolationKind::InFlight,
            subject: "in_flight".into(),
            message: format!(
                "{} sagas/transactions still in flight after heal: stock or money left reserved",
                input.fin.in_flight
            ),
            ops: vec![input.final_op],
        });
    }
    Ok(InvariantResult {
        verdict: if out.is_empty() {
            Verdict::Valid
        } else {
            Verdict::Invalid
        },
        violations: out,
        stats,
        error: None,
    })
}

type Result<T, E = InputError> = std::result::Result<T, E>;

// ---------------------------------------------------------------- input

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Item,
    User,
    Order,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Item, Kind::User, Kind::Order];
    fn name(self) -> &'static str {
        match self {
            Kind::Item => "item",
            Kind::User => "user",
            Kind::Order => "order",
        }
    }
}

/// An order's composition and status.
struct Order {
    user: String,
    items: Vec<(String, i128)>,
    paid: bool,
    total: Option<i128>,
}

/// The entities of the initial or the final state. Items: (stock, price).
#[derive(Default)]
struct State {
    items: BTreeMap<String, (i128, i128)>,
    users: BTreeMap<String, i128>,
    orders: BTreeMap<String, Order>,
    in_flight: i128,
}

impl State {
    fn ids(&self, kind: Kind) -> Vec<&String> {
        match kind {
            Kind::Item => self.items.keys().collect(),
            Kind::User => self.users.keys().collect(),
            Kind::Order => self.orders.keys().collect(),
        }
    }
    fn has(&self, kind: Kind, id: &str) -> bool {
        match kind {
            Kind::Item => self.items.contains_key(id),
            Kind::User => self.users.contains_key(id),
            Kind::Order => self.orders.contains_key(id),
        }
    }
}

/// Reads parts of one event's JSON value; errors name the event and `what`.
struct Reader<'a> {
    op: usize,
    what: &'a str,
}

impl Reader<'_> {
    fn err(&self, message: String) -> InputError {
        InputError {
            op: Some(self.op),
            message: format!("{}: {message}", self.what),
        }
    }
    fn obj<'v>(&self, v: &'v Value) -> Result<&'v Map<String, Value>> {
        v.as_object()
            .ok_or_else(|| self.err(format!("expected a JSON object, found {v}")))
    }
    fn get<'v>(&self, v: &'v Value, field: &str) -> Result<&'v Value> {
        self.obj(v)?
            .get(field)
            .ok_or_else(|| self.err(format!("no \"{field}\" field in {v}")))
    }
    fn as_int(&self, v: &Value, field: &str) -> Result<i128> {
        v.as_i64()
            .map(i128::from)
            .ok_or_else(|| self.err(format!("\"{field}\" must be an integer (i64), found {v}")))
    }
    fn int(&self, v: &Value, field: &str) -> Result<i128> {
        self.as_int(self.get(v, field)?, field)
    }
    fn as_id(&self, v: &Value, field: &str) -> Result<String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
            _ => Err(self.err(format!("\"{field}\" must be a string id, found {v}"))),
        }
    }
    fn id(&self, v: &Value, field: &str) -> Result<String> {
        self.as_id(self.get(v, field)?, field)
    }
    /// `[[item, qty], ...]`
    fn lines(&self, v: &Value) -> Result<Vec<(String, i128)>> {
        let expected = || self.err(format!("\"items\" must be [[item, qty], ...], found {v}"));
        let rows = v.as_array().ok_or_else(expected)?;
        rows.iter()
            .map(|row| match row.as_array().map(Vec::as_slice) {
                Some([item, qty]) => Ok((self.as_id(item, "item")?, self.as_int(qty, "qty")?)),
                _ => Err(expected()),
            })
            .collect()
    }
}

/// Merges one init or final event's value into `s`.
fn read_state(s: &mut State, op: usize, v: &Value, event: &str) -> Result<()> {
    let top = Reader { op, what: event }.obj(v)?;
    let section = |name: &str| -> Result<Vec<(&String, &Value)>> {
        match top.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Object(m)) => Ok(m.iter().collect()),
            Some(other) => Err(Reader { op, what: event }.err(format!(
                "\"{name}\" must be an object keyed by id, found {other}"
            ))),
        }
    };
    let dup = |kind: &str, id: &str| InputError {
        op: Some(op),
        message: format!("{event}: {kind} {id:?} is defined twice"),
    };
    for (id, v) in section("items")? {
        let what = format!("{event} item {id}");
        let r = Reader { op, what: &what };
        let price = match r.obj(v)?.get("price") {
            Some(p) => r.as_int(p, "price")?,
            None if event == "final" => r.int(v, "price")?, // the error
            None => 0,
        };
        if s.items
            .insert(id.clone(), (r.int(v, "stock")?, price))
            .is_some()
        {
            return Err(dup("item", id));
        }
    }
    for (id, v) in section("users")? {
        let what = format!("{event} user {id}");
        let credit = Reader { op, what: &what }.as_int(v, "credit")?;
        if s.users.insert(id.clone(), credit).is_some() {
            return Err(dup("user", id));
        }
    }
    for (id, v) in section("orders")? {
        let what = format!("{event} order {id}");
        let r = Reader { op, what: &what };
        let o = r.obj(v)?;
        let order = Order {
            user: r.id(v, "user")?,
            items: o.get("items").map_or(Ok(Vec::new()), |l| r.lines(l))?,
            paid: match o.get("paid") {
                None => false,
                Some(p) => p
                    .as_bool()
                    .ok_or_else(|| r.err(format!("\"paid\" must be a boolean, found {p}")))?,
            },
            total: o.get("total").map(|t| r.as_int(t, "total")).transpose()?,
        };
        if s.orders.insert(id.clone(), order).is_some() {
            return Err(dup("order", id));
        }
    }
    if let Some(n) = top.get("in_flight") {
        s.in_flight = Reader { op, what: event }.as_int(n, "in_flight")?;
    }
    Ok(())
}

/// Everything read from the history.
struct Input {
    init: State,
    fin: State,
    calls: Vec<Call>,
    init_ops: Vec<usize>,
    final_op: usize,
    /// Entities created by an `ok` create, with the create's index.
    created: BTreeMap<(Kind, String), usize>,
    /// Creates with an unknown outcome, per kind.
    maybe_created: BTreeMap<Kind, Vec<usize>>,
}

fn is_named(op: &Op, name: &str) -> bool {
    op.kind == OpType::Ok && matches!(&op.process, Process::Named(n) if n == name)
}

impl Input {
    fn read(history: &History) -> Result<Input> {
        let mut init = State::default();
        let mut fin = State::default();
        let mut init_ops = Vec::new();
        let mut final_op = None;
        for op in &history.ops {
            if is_named(op, "setup") && op.f == "init" {
                read_state(&mut init, op.index, &op.value, "init")?;
                init_ops.push(op.index);
            } else if is_named(op, "final") && op.f == "final" {
                if let Some(first) = final_op {
                    return Err(InputError {
                        op: Some(op.index),
                        message: format!(
                            "a second final event (the first is #{first}): keep only the state \
                             read after healing"
                        ),
                    });
                }
                read_state(&mut fin, op.index, &op.value, "final")?;
                final_op = Some(op.index);
            }
        }
        let final_op = final_op.ok_or_else(|| InputError {
            op: None,
            message: "no final event: add {\"process\":\"final\",\"type\":\"ok\",\"f\":\"final\",\
                      \"value\":{\"items\":..,\"users\":..,\"orders\":..,\"in_flight\":0}} with \
                      the state read after healing"
                .into(),
        })?;
        let calls = history.calls().map_err(|e| InputError {
            op: None,
            message: e.message,
        })?;
        let mut created = BTreeMap::new();
        let mut maybe_created: BTreeMap<Kind, Vec<usize>> = BTreeMap::new();
        for c in &calls {
            let kind = match c.f.as_str() {
                "create_item" => Kind::Item,
                "create_user" => Kind::User,
                "create_order" => Kind::Order,
                _ => continue,
            };
            match &c.outcome {
                Outcome::Ok(v) => {
                    let id = Reader {
                        op: c.index,
                        what: &c.f,
                    }
                    .id(v, kind.name())?;
                    created.entry((kind, id)).or_insert(c.index);
                }
                Outcome::Unknown => maybe_created.entry(kind).or_default().push(c.index),
                Outcome::Fail => {}
            }
        }
        Ok(Input {
            init,
            fin,
            calls,
            init_ops,
            final_op,
            created,
            maybe_created,
        })
    }

    /// In the init, created by an `ok` create, or in the final state.
    fn exists(&self, kind: Kind, id: &str) -> bool {
        self.init.has(kind, id)
            || self.fin.has(kind, id)
            || self.created.contains_key(&(kind, id.to_string()))
    }

    /// The init and final events: relevant to every conservation check.
    fn state_ops(&self) -> impl Iterator<Item = usize> + '_ {
        self.init_ops.iter().copied().chain([self.final_op])
    }
}

// ---------------------------------------------------------------- checks

/// Every entity known before is in the final state, and every entity in
/// the final state was created (an unknown create explains one).
fn entities(input: &Input, out: &mut Vec<Violation>) {
    for kind in Kind::ALL {
        let name = kind.name();
        let created = input.created.iter().filter(|((k, _), _)| *k == kind);
        let known = input.init.ids(kind).into_iter().map(|id| (id, None));
        for (id, by) in known.chain(created.map(|((_, id), &i)| (id, Some(i)))) {
            let reported = by.is_some() && input.init.has(kind, id); // as an init id
            if input.fin.has(kind, id) || reported {
                continue;
            }
            let (from, ops) = match by {
                None => ("the init".to_string(), input.init_ops.clone()),
                Some(i) => (format!("create_{name} #{i}"), vec![i]),
            };
            out.push(Violation {
                kind: ViolationKind::MissingEntity,
                subject: id.clone(),
                message: format!("{name} {id} (from {from}) is missing from the final state"),
                ops: sorted(ops.into_iter().chain([input.final_op])),
            });
        }
        let maybe = input
            .maybe_created
            .get(&kind)
            .map_or(&[][..], Vec::as_slice);
        let mut spare = maybe.len();
        for id in input.fin.ids(kind) {
            if input.init.has(kind, id) || input.created.contains_key(&(kind, id.clone())) {
                continue;
            }
            if spare > 0 {
                spare -= 1;
                continue;
            }
            out.push(Violation {
                kind: ViolationKind::UnexpectedEntity,
                subject: id.clone(),
                message: format!(
                    "{name} {id} is in the final state but was never created (not in the init, \
                     and the {} create_{name} with unknown outcome are used up)",
                    maybe.len()
                ),
                ops: sorted(maybe.iter().copied().chain([input.final_op])),
            });
        }
    }
}

/// The effects on one item's stock or one user's credit.
#[derive(Default)]
struct Ledger {
    initial: i128,
    added: i128,
    removed: i128,
    /// Sold (stock) or charged for paid orders (credit).
    consumed: i128,
    /// Updates with unknown outcome: (signed amount, index).
    unknown: Vec<(i128, usize)>,
    ops: Vec<usize>,
    /// Refused or unknown checkouts of orders not paid in the final state
    /// that hold this item (or belong to this user): what a reservation
    /// or charge never given back comes from, so a loss names them.
    unpaid_checkouts: Vec<usize>,
}

/// The checkouts of one order, by outcome.
#[derive(Default)]
struct Checkouts {
    ok: Vec<usize>,
    failed: Vec<usize>,
    unknown: Vec<usize>,
}

/// Ledgers of the items and users of the final state, and checkouts of its
/// orders.
struct Books {
    stock: BTreeMap<String, Ledger>,
    credit: BTreeMap<String, Ledger>,
    checkouts: BTreeMap<String, Checkouts>,
}

impl Books {
    /// Goes through the client operations once. Also checks that `ok`
    /// reads never see negative stock or credit.
    fn collect(input: &Input, stats: &mut Stats, out: &mut Vec<Violation>) -> Result<Books> {
        let ledger = |initial| Ledger {
            initial,
            ..Ledger::default()
        };
        let init = &input.init;
        let mut books = Books {
            stock: (input.fin.items.keys())
                .map(|id| (id.clone(), ledger(init.items.get(id).map_or(0, |i| i.0))))
                .collect(),
            credit: (input.fin.users.keys())
                .map(|id| (id.clone(), ledger(init.users.get(id).copied().unwrap_or(0))))
                .collect(),
            checkouts: BTreeMap::new(),
        };
        for c in &input.calls {
            let r = Reader {
                op: c.index,
                what: &c.f,
            };
            let arg = match (&c.invoke_value, &c.outcome) {
                (Value::Null, Outcome::Ok(v)) => v,
                (v, _) => v,
            };
            // The id an operation names; it must exist unless the
            // operation failed (a refused op may name anything).
            let name = |kind: Kind| -> Result<String> {
                let id = r.id(arg, kind.name())?;
                if c.outcome == Outcome::Fail || input.exists(kind, &id) {
                    Ok(id)
                } else {
                    Err(r.err(format!(
                        "names {} {id:?}, which is in no init, create or final state",
                        kind.name()
                    )))
                }
            };
            if c.outcome == Outcome::Fail && c.f != "checkout" {
                continue; // no effect
            }
            match c.f.as_str() {
                "add_stock" | "subtract_stock" | "add_funds" | "pay" => {
                    let (kind, ledgers) = if c.f.ends_with("_stock") {
                        (Kind::Item, &mut books.stock)
                    } else {
                        (Kind::User, &mut books.credit)
                    };
                    let id = name(kind)?;
                    let amount = r.int(arg, "amount")?;
                    let Some(l) = ledgers.get_mut(&id) else {
                        continue; // missing from the final state: reported
                    };
                    l.ops.push(c.index);
                    let adds = c.f.starts_with("add_");
                    match c.outcome {
                        Outcome::Ok(_) if adds => l.added += amount,
                        Outcome::Ok(_) => l.removed += amount,
                        _ => {
                            l.unknown
                                .push((if adds { amount } else { -amount }, c.index));
                            stats.unknown_updates += 1;
                        }
                    }
                }
                "checkout" => {
                    let e = books.checkouts.entry(name(Kind::Order)?).or_default();
                    let (list, count) = match c.outcome {
                        Outcome::Ok(_) => (&mut e.ok, &mut stats.checkouts_ok),
                        Outcome::Fail => (&mut e.failed, &mut stats.checkouts_failed),
                        Outcome::Unknown => (&mut e.unknown, &mut stats.checkouts_unknown),
                    };
                    list.push(c.index);
                    *count += 1;
                }
                "add_item" => {
                    name(Kind::Order)?;
                    name(Kind::Item)?;
                    r.int(arg, "qty")?;
                }
                "find_order" => {
                    name(Kind::Order)?;
                }
                "find_item" | "find_user" => {
                    let (kind, field, negative) = if c.f == "find_item" {
                        (Kind::Item, "stock", ViolationKind::NegativeStock)
                    } else {
                        (Kind::User, "credit", ViolationKind::NegativeCredit)
                    };
                    let id = name(kind)?;
                    let Outcome::Ok(v) = &c.outcome else { continue };
                    let n = r.int(v, field)?;
                    if n < 0 {
                        out.push(Violation {
                            kind: negative,
                            subject: id.clone(),
                            message: format!(
                                "{} {id}: {} #{} read {field} {n}",
                                kind.name(),
                                c.f,
                                c.index
                            ),
                            ops: vec![c.index],
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(books)
    }

    /// Notes on each item's and user's ledger the checkouts (refused or
    /// unknown) of the orders not paid in the final state.
    fn note_unpaid_checkouts(&mut self, input: &Input) {
        for (id, o) in input.fin.orders.iter().filter(|(_, o)| !o.paid) {
            let Some(c) = self.checkouts.get(id) else {
                continue;
            };
            let ops: Vec<usize> = c.failed.iter().chain(&c.unknown).copied().collect();
            if ops.is_empty() {
                continue;
            }
            for (item, _) in &o.items {
                if let Some(l) = self.stock.get_mut(item) {
                    l.unpaid_checkouts.extend(&ops);
                }
            }
            if let Some(l) = self.credit.get_mut(&o.user) {
                l.unpaid_checkouts.extend(&ops);
            }
        }
    }

    /// Takes the items sold and the money charged by the orders paid in the
    /// final state, and checks each one's `total`.
    fn charge_paid_orders(
        &mut self,
        input: &Input,
        stats: &mut Stats,
        out: &mut Vec<Violation>,
    ) -> Result<()> {
        for (id, o) in input.fin.orders.iter().filter(|(_, o)| o.paid) {
            stats.paid_orders += 1;
            let what = format!("final order {id}");
            let r = Reader {
                op: input.final_op,
                what: &what,
            };
            let checkouts = self.checkouts.get(id);
            let ops: Vec<usize> = checkouts
                .map(|c| c.ok.iter().chain(&c.unknown).copied().collect())
                .unwrap_or_default();
            let mut total = 0;
            for (item, qty) in &o.items {
                let (Some(l), Some(&(_, price))) =
                    (self.stock.get_mut(item), input.fin.items.get(item))
                else {
                    return Err(r.err(format!(
                        "contains item {item:?}, which the final state lacks"
                    )));
                };
                l.consumed += qty;
                l.ops.extend(&ops);
                total += qty * price;
                if i64::try_from(total).is_err() {
                    return Err(r.err(format!("its total overflows an i64 at item {item:?}")));
                }
            }
            let Some(l) = self.credit.get_mut(&o.user) else {
                return Err(r.err(format!(
                    "belongs to user {:?}, whom the final state lacks",
                    o.user
                )));
            };
            l.consumed += total;
            l.ops.extend(&ops);
            if let Some(t) = o.total.filter(|&t| t != total) {
                out.push(Violation {
                    kind: ViolationKind::WrongTotal,
                    subject: id.clone(),
                    message: format!(
                        "order {id}: total {t} but its items cost {total} (Σ qty × price)"
                    ),
                    ops: sorted(ops.into_iter().chain([input.final_op])),
                });
            }
        }
        Ok(())
    }
}

/// Checkout answers agree with the final state.
fn answers(input: &Input, books: &Books, out: &mut Vec<Violation>) {
    let none = Checkouts::default();
    for (id, o) in &input.fin.orders {
        let c = books.checkouts.get(id).unwrap_or(&none);
        let ops = || {
            sorted(
                c.ok.iter()
                    .chain(&c.failed)
                    .chain(&c.unknown)
                    .copied()
                    .chain([input.final_op]),
            )
        };
        if !o.paid && !c.ok.is_empty() {
            out.push(Violation {
                kind: ViolationKind::OkCheckoutNotPaid,
                subject: id.clone(),
                message: format!(
                    "order {id}: checkout {} answered ok, but the order is not paid in the final state",
                    list(&c.ok)
                ),
                ops: ops(),
            });
        }
        if o.paid && c.ok.is_empty() && c.unknown.is_empty() {
            let why = if c.failed.is_empty() {
                "no checkout of it was ever invoked (invented payment)".to_string()
            } else {
                format!(
                    "every checkout of it failed ({}): a failed checkout left an effect",
                    list(&c.failed)
                )
            };
            out.push(Violation {
                kind: ViolationKind::PaidWithoutCheckout,
                subject: id.clone(),
                message: format!("order {id} is paid in the final state, but {why}"),
                ops: ops(),
            });
        }
    }
}

/// Final stock and credit are not negative.
fn never_negative(input: &Input, out: &mut Vec<Violation>) {
    let items = input
        .fin
        .items
        .iter()
        .map(|(id, &(s, _))| (Kind::Item, id, s));
    let users = input.fin.users.iter().map(|(id, &c)| (Kind::User, id, c));
    for (kind, id, n) in items.chain(users).filter(|e| e.2 < 0) {
        let (vk, field) = match kind {
            Kind::Item => (ViolationKind::NegativeStock, "stock"),
            _ => (ViolationKind::NegativeCredit, "credit"),
        };
        out.push(Violation {
            kind: vk,
            subject: id.clone(),
            message: format!("{} {id}: final {field} {n}", kind.name()),
            ops: vec![input.final_op],
        });
    }
}

/// How conservation of one quantity is worded.
struct Words {
    entity: &'static str,
    added: &'static str,
    removed: &'static str,
    consumed: &'static str,
    more: (ViolationKind, &'static str),
    less: (ViolationKind, &'static str),
}

const STOCK: Words = Words {
    entity: "item",
    added: "added",
    removed: "subtracted",
    consumed: "sold",
    more: (ViolationKind::StockCreated, "stock created"),
    less: (ViolationKind::StockLost, "stock lost"),
};

const CREDIT: Words = Words {
    entity: "user",
    added: "funded",
    removed: "paid",
    consumed: "charged for orders",
    more: (ViolationKind::MoneyCreated, "money created"),
    less: (ViolationKind::MoneyLost, "money lost (e.g. charged twice)"),
};

/// final = initial + added − removed − consumed + (a subset of the unknown).
fn conserve(w: &Words, id: &str, l: &Ledger, fin: i128, input: &Input) -> Option<Violation> {
    let base = l.initial + l.added - l.removed - l.consumed;
    let deltas: Vec<i128> = l.unknown.iter().map(|u| u.0).collect();
    let closest = base + unexplained(&deltas, fin - base)?;
    let (kind, what) = if fin > closest { w.more } else { w.less };
    let mut message = format!(
        "{} {id}: {what}: initial {}, {} {}, {} {}, {} {}, final {fin}, expected {base}",
        w.entity, l.initial, w.added, l.added, w.removed, l.removed, w.consumed, l.consumed
    );
    let n = deltas.len();
    if n > EXACT_UNKNOWN_LIMIT {
        let (lo, hi, g) = sum_bounds(&deltas);
        let _ = write!(
            message,
            " plus a subset of {n} unknown ops, i.e. {}..={} in steps of {g}; closest {closest}",
            base + lo,
            base + hi
        );
    } else if n > 0 {
        let ops: Vec<String> = l
            .unknown
            .iter()
            .map(|(d, i)| format!("{d:+} #{i}"))
            .collect();
        let _ = write!(
            message,
            " plus a subset of the unknown ops [{}]; closest {closest}",
            ops.join(", ")
        );
    }
    // A loss: the checkouts of unpaid orders are where a reservation or a
    // charge not given back comes from.
    let mut ops = l.ops.clone();
    if fin < closest && !l.unpaid_checkouts.is_empty() {
        let mut u = l.unpaid_checkouts.clone();
        u.sort_unstable();
        u.dedup();
        const SHOWN: usize = 10;
        let more = u.len().saturating_sub(SHOWN);
        let _ =
            write!(
            message,
            "; refused or unknown checkouts of orders left unpaid, which may have kept it: {}{}",
            list(&u[..u.len().min(SHOWN)]),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        );
        ops.extend(u);
    }
    Some(Violation {
        kind,
        subject: id.to_string(),
        message,
        ops: sorted(ops.into_iter().chain(input.state_ops())),
    })
}

/// `None` if some subset of `deltas` sums to `target`, else the reachable
/// sum closest to it. Exact for up to [`EXACT_UNKNOWN_LIMIT`] deltas;
/// beyond, every multiple of their gcd between the lowest and highest sums
/// counts as reachable.
fn unexplained(deltas: &[i128], target: i128) -> Option<i128> {
    if deltas.len() > EXACT_UNKNOWN_LIMIT {
        let (lo, hi, g) = sum_bounds(deltas);
        if g == 0 {
            return (target != 0).then_some(0);
        }
        if (lo..=hi).contains(&target) && target % g == 0 {
            return None;
        }
        let c = target.clamp(lo, hi);
        return Some(c - (c - lo).rem_euclid(g));
    }
    let mut sums = vec![0i128];
    for d in deltas {
        let shifted: Vec<i128> = sums.iter().map(|s| s + d).collect();
        sums.extend(shifted);
        sums.sort_unstable();
        sums.dedup();
    }
    let pos = sums.binary_search(&target).err()?;
    let below = pos.checked_sub(1).map(|p| sums[p]);
    let above = sums.get(pos).copied();
    match (below, above) {
        (Some(b), Some(a)) => Some(if target - b <= a - target { b } else { a }),
        (b, a) => b.or(a),
    }
}

/// Lowest and highest subset sums, and the gcd of the deltas.
fn sum_bounds(deltas: &[i128]) -> (i128, i128, i128) {
    let gcd = |mut a: i128, mut b: i128| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a.abs()
    };
    deltas.iter().fold((0, 0, 0), |(lo, hi, g), &d| {
        (lo + d.min(0), hi + d.max(0), gcd(g, d))
    })
}

fn sorted(ops: impl IntoIterator<Item = usize>) -> Vec<usize> {
    let mut v: Vec<usize> = ops.into_iter().collect();
    v.sort_unstable();
    v.dedup();
    v
}

fn list(ops: &[usize]) -> String {
    let v: Vec<String> = ops.iter().map(|i| format!("#{i}")).collect();
    v.join(", ")
}
