//! The Tartu bookstore's workload and checks, shared by the simulator's
//! scenario `tartu` ([`crate::scenarios::tartu`]) and Jepsen mode's
//! `tartu` workload (`crate::jepsen::tartu`): the clients' orders and
//! checkouts, the librarian's changes, the final state read from the three
//! store groups, and the checks over the history (2PC, liveness of
//! approved orders, conservation), the vector-clock logs and the
//! participants' accepted calls (mutual exclusion).

use crate::shopload::{kv_options, scan};
use bookstore::client::KvClient;
use bookstore::tartu::books::BooksDb;
use bookstore::tartu::executor::{LeaderLease, TxRecord};
use bookstore::tartu::orchestrator::{Orchestrator, Outcome};
use bookstore::tartu::participants::{split_tx, Effect, Hold, Resource, DEFAULT_CREDIT_CENTS};
use bookstore::tartu::queue::OrderStatus;
use bookstore::tartu::{Topology, VcEvent};
use checker::history::{History, OpType, Process};
use harness::failure::Failure;
use harness::hostio::coverage::hit;
use harness::recorder::{Completion, Recorder};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tartu_core::request::{Item, Shipping};
use tartu_core::Checkout;
use tokio::time::Instant;

/// How long after healing every queued order has to be executed or failed.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(60);

/// One checkout is retried this many times while it is unavailable.
const TRIES: u32 = 4;

/// The store groups' hosts (books, state, payment).
pub const GROUPS: [&[u64]; 3] = [&[1, 2, 3], &[4, 5, 6], &[7, 8, 9]];

/// The report's page: the failing checks' messages (or that every check
/// passed) and what was checked.
pub fn report_page(failures: &[(&str, &str)], history: &History, title: &str) -> String {
    harness::report::failures_page(
        failures,
        history,
        title,
        "The Tartu bookstore under the nemesis. \
         Checks: the vector-clock log against the declared scheme (system/src/tartu/scheme.json), \
         two-phase commit atomicity and liveness of approved orders, mutual exclusion of the executors (fencing tokens the participants accepted), conservation of stock and money, \
         Raft and replica convergence per store group.",
    )
}

/// What an order is meant to be.
const VALID: &str = "valid";

/// A Luhn-valid 16-digit card number (US-issued, as the billing address):
/// "4111", 11 digits of `n`, the check digit.
pub fn card_number(n: u64) -> String {
    tartu_core::verify::with_luhn_digit(&format!("4111{:011}", n % 100_000_000_000))
}

/// The demo order with 1-3 lines of real books (often the ones with the
/// least stock), order `i` of client `p`'s own card, a drawn shipping
/// method; about one in five meant to be rejected.
pub fn draw_order(
    rng: &mut ChaCha8Rng,
    real: &[(String, i64)],
    p: u64,
    i: u64,
) -> (&'static str, Checkout) {
    let mut o = tartu_core::request::parse_checkout(tartu_core::request::demo_body().as_bytes())
        .expect("the demo body parses");
    // The books many clients want: the five with the least stock.
    let mut hot: Vec<&(String, i64)> = real.iter().collect();
    hot.sort_by_key(|(t, s)| (*s, t.clone()));
    hot.truncate(5);
    let lines = rng.random_range(1..=3);
    let mut items: Vec<Item> = Vec::new();
    while items.len() < lines {
        let title = if rng.random_bool(0.3) {
            hot[rng.random_range(0..hot.len())].0.clone()
        } else {
            real[rng.random_range(0..real.len())].0.clone()
        };
        if items.iter().any(|it| it.name == title) {
            continue;
        }
        items.push(Item {
            name: title,
            quantity: rng.random_range(1..=3),
        });
    }
    o.items = items;
    o.credit_card.number = card_number(p * 1_000_000 + i);
    o.shipping_method = Shipping::ALL[rng.random_range(0..3)];
    let intent = match rng.random_range(0..100) {
        0..=4 => {
            // The last digit off by one: no longer Luhn-valid.
            let mut n = o.credit_card.number.clone();
            let last = n.pop().and_then(|c| c.to_digit(10)).unwrap_or(0);
            n.push(char::from_digit((last + 1) % 10, 10).expect("digit"));
            o.credit_card.number = n;
            "bad-card"
        }
        5..=9 => {
            o.terms_accepted = false;
            "no-terms"
        }
        10..=14 => {
            o.items[0].name = format!("No Such Book {p}-{i}");
            "unknown-book"
        }
        15..=19 => {
            o.items.clear();
            "no-items"
        }
        _ => VALID,
    };
    (intent, o)
}

/// One checkout, retried with the same id while unavailable; each try is
/// an operation of the history.
pub async fn checkout(
    o: &Orchestrator,
    rec: &Recorder,
    p: u64,
    id: &str,
    intent: &str,
    order: &Checkout,
) {
    let items: Vec<Value> = order
        .items
        .iter()
        .map(|i| json!([i.name, i.quantity]))
        .collect();
    for k in 0..TRIES {
        let v = json!({"order": id, "try": k, "intent": intent, "items": items, "card": order.credit_card.number});
        let c = rec
            .op(p, "checkout", None, v.clone(), async {
                let mut v = v.clone();
                match tokio::time::timeout(Duration::from_secs(30), o.checkout(id, order)).await {
                    Ok(Outcome::Approved(books)) => {
                        v["answer"] = json!("approved");
                        v["suggested"] = json!(books.len());
                        Completion::ok(v)
                    }
                    Ok(Outcome::Rejected(r)) => {
                        v["answer"] = json!("rejected");
                        v["code"] = json!(r.code);
                        v["reason"] = json!(r.reason);
                        v["event"] = json!(r.event);
                        Completion::fail(v, None)
                    }
                    Ok(Outcome::Unavailable {
                        message,
                        unknown: false,
                    }) => {
                        v["answer"] = json!("unavailable");
                        Completion::fail(v, Some(message))
                    }
                    Ok(Outcome::Unavailable {
                        message,
                        unknown: true,
                    }) => {
                        v["answer"] = json!("unknown");
                        Completion::unknown(v, message)
                    }
                    Err(_) => {
                        v["answer"] = json!("unknown");
                        Completion::unknown(v, "no answer within 30 s")
                    }
                }
            })
            .await;
        let answer = c.value["answer"].as_str().unwrap_or("");
        if answer != "unavailable" && answer != "unknown" {
            return;
        }
        hit("tartu: a checkout retried after no answer");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One change of the books database, an operation of the history: a
/// restock of 1-5 copies (70 %), a removal of 1-2 (10 %; refused if the
/// stock is lower) or a new price (20 %).
pub async fn books_change(db: &BooksDb, rec: &Recorder, p: u64, id: &str, rng: &mut ChaCha8Rng) {
    use bookstore::tartu::books::BooksError;
    let roll = rng.random_range(0..10);
    let (f, v) = match roll {
        0..=6 => (
            "restock",
            json!({"book": id, "delta": rng.random_range(1..=5)}),
        ),
        7 => (
            "restock",
            json!({"book": id, "delta": -rng.random_range(1..=2)}),
        ),
        _ => (
            "reprice",
            json!({"book": id, "price_cents": rng.random_range(500..=5_000)}),
        ),
    };
    rec.op(p, f, None, v.clone(), async {
        let r = if f == "restock" {
            db.add_stock(id, v["delta"].as_i64().unwrap_or(0)).await
        } else {
            let price = v["price_cents"].as_i64().unwrap_or(0);
            db.update_with(id, |b| {
                b.price_cents = price;
                Ok(())
            })
            .await
        };
        let mut v = v.clone();
        match r {
            Ok(b) => {
                v["stock"] = json!(b.stock);
                Completion::ok(v)
            }
            Err(BooksError::Store(e)) if e.is_unknown() => Completion::unknown(v, e.to_string()),
            Err(e) => Completion::fail(v, Some(e.to_string())),
        }
    })
    .await;
}

/// Orders queued and not yet executed or failed (statuses, and queue items).
pub async fn open_orders(t: &Topology) -> Result<Vec<String>, String> {
    let mut kv = KvClient::new(t.state_kv.clone(), 1 << 40, kv_options());
    let mut open = Vec::new();
    for (k, v) in kv.scan("order/").await.map_err(|e| e.to_string())? {
        let st: OrderStatus = serde_json::from_str(&v).map_err(|e| format!("{k}: {e}"))?;
        if st.status != "executed" && st.status != "failed" {
            open.push(format!("{} {}", st.order_id, st.status));
        }
    }
    for (k, _) in kv.scan("queue/item/").await.map_err(|e| e.to_string())? {
        open.push(k);
    }
    Ok(open)
}

/// After healing: waits until every queued order is executed or failed
/// (liveness, within [`LIVENESS_BOUND`]), then reads the final state and
/// compares the replicas of the three groups. The final state, the
/// liveness failures and the replicas that differ.
pub async fn settle(t: &Topology) -> (Result<Value, String>, Vec<String>, Vec<String>) {
    let mut failures = Vec::new();
    let deadline = Instant::now() + LIVENESS_BOUND;
    loop {
        let open = open_orders(t).await;
        if matches!(&open, Ok(o) if o.is_empty()) {
            break;
        }
        if Instant::now() >= deadline {
            let what = match open {
                Ok(o) => format!(
                    "{} orders not executed or failed: {:?}",
                    o.len(),
                    &o[..o.len().min(5)]
                ),
                Err(e) => format!("the state group did not answer: {e}"),
            };
            failures.push(format!(
                "orders did not finish within {LIVENESS_BOUND:?} after healing: {what}"
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let fin = read_state(t, 1 << 41).await;
    let diverged = crate::replicas::compare_groups(
        &[
            ("books", &t.books_kv),
            ("state", &t.state_kv),
            ("payment", &t.payment_kv),
        ],
        kv_options(),
    )
    .await;
    (fin, failures, diverged)
}

fn holds_json(pairs: Vec<(String, String)>) -> Result<Value, String> {
    let mut out = Map::new();
    for (k, v) in pairs {
        let h: Hold = serde_json::from_str(&v).map_err(|e| format!("{k}: {e}"))?;
        out.insert(
            k.trim_start_matches("hold/").to_string(),
            json!({"state": h.state, "token": h.token, "debits": h.debits, "reason": h.reason}),
        );
    }
    Ok(Value::Object(out))
}

/// The bookstore's state from the three groups (linearizable scans).
pub async fn read_state(t: &Topology, id: u64) -> Result<Value, String> {
    let mut books = Map::new();
    for (k, v) in scan(&t.books_kv, "book/", id).await? {
        let b: tartu_core::Book = serde_json::from_str(&v).map_err(|e| format!("{k}: {e}"))?;
        books.insert(b.id, json!(b.stock));
    }
    let stock_holds = holds_json(scan(&t.books_kv, "hold/", id + 1).await?)?;
    let mut accounts = Map::new();
    for (k, v) in scan(&t.payment_kv, "account/", id + 2).await? {
        let c: i64 = v.parse().map_err(|e| format!("{k}: {e}"))?;
        accounts.insert(k, json!(c));
    }
    let money_holds = holds_json(scan(&t.payment_kv, "hold/", id + 3).await?)?;
    let mut status = Map::new();
    for (k, v) in scan(&t.state_kv, "order/", id + 4).await? {
        let st: OrderStatus = serde_json::from_str(&v).map_err(|e| format!("{k}: {e}"))?;
        status.insert(
            st.order_id,
            json!({"status": st.status, "reason": st.reason}),
        );
    }
    let queued = scan(&t.state_kv, "queue/item/", id + 5).await?.len();
    let exec = scan(&t.state_kv, "exec/", id + 6).await?;
    let get = |key: &str| exec.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let token: u64 = get("exec/token").and_then(|t| t.parse().ok()).unwrap_or(0);
    let leader: Option<LeaderLease> =
        get("exec/leader").and_then(|l| serde_json::from_str(&l).ok());
    let undone = exec
        .iter()
        .filter(|(k, v)| k.starts_with("exec/tx/") && !v.contains("\"done\""))
        .count();
    let mut decisions = Map::new();
    for (k, v) in exec.iter().filter(|(k, _)| k.starts_with("exec/tx/")) {
        let r: TxRecord = serde_json::from_str(v).map_err(|e| format!("{k}: {e}"))?;
        decisions.insert(
            k.trim_start_matches("exec/tx/").to_string(),
            json!({"attempt": r.attempt, "state": r.state, "decision": r.decision}),
        );
    }
    Ok(json!({
        "books": books,
        "accounts": accounts,
        "stock_holds": stock_holds,
        "money_holds": money_holds,
        "status": status,
        "queued": queued,
        "exec": {"token": token, "leader": leader.map(|l| l.owner), "undone": undone},
        "decisions": decisions,
    }))
}

/// The vector-clock log checked against the declared scheme.
pub fn vclock_violations(events: &[VcEvent]) -> Vec<String> {
    let scheme = match checker::vclock::Scheme::from_json(bookstore::tartu::SCHEME) {
        Ok(s) => s,
        Err(e) => return vec![format!("the scheme does not parse: {e}")],
    };
    let text: String = events
        .iter()
        .map(|e| serde_json::to_string(e).expect("an event serialises") + "\n")
        .collect();
    let parsed = match checker::vclock::parse_log(&text, "vclock") {
        Ok(p) => p,
        Err(e) => return vec![format!("the log does not parse: {e}")],
    };
    let r = checker::vclock::check(&scheme, &parsed);
    r.violations
        .iter()
        .map(|v| {
            let evs: Vec<String> = v
                .events
                .iter()
                .map(|e| {
                    format!(
                        "{} by {} ({}) {}",
                        e.event,
                        e.process,
                        e.source,
                        checker::vclock::show_clock(&e.clock)
                    )
                })
                .collect();
            format!(
                "[{}] group {}: {} ({})",
                v.kind.name(),
                v.group,
                v.explanation,
                evs.join("; ")
            )
        })
        .collect()
}

/// What the clients heard about one order.
#[derive(Default)]
struct Heard {
    intent: String,
    approved: bool,
    rejected: bool,
    /// Some answer was unknown (it may have been queued).
    unknown: bool,
}

/// The 2PC and conservation checks over the history's `init`, client
/// answers and `final`.
pub fn check_history(h: &History) -> Vec<Failure> {
    let mut failures = Vec::new();
    let (Some(init), Some(fin)) = (
        h.ops.iter().find(|o| o.f == "init").map(|o| &o.value),
        h.ops.iter().find(|o| o.f == "final").map(|o| &o.value),
    ) else {
        // Without a final state, liveness (or setup) already failed.
        return failures;
    };
    let mut heard: BTreeMap<String, Heard> = BTreeMap::new();
    for op in &h.ops {
        if op.f != "checkout"
            || !matches!(op.process, Process::Client(_))
            || op.kind == OpType::Invoke
        {
            continue;
        }
        let Some(id) = op.value["order"].as_str() else {
            continue;
        };
        let e = heard.entry(id.to_string()).or_default();
        e.intent = op.value["intent"].as_str().unwrap_or("").to_string();
        match op.kind {
            OpType::Ok => e.approved = true,
            OpType::Info => e.unknown = true,
            _ if op.value["answer"] == "rejected" => e.rejected = true,
            _ => {}
        }
    }
    let empty = Map::new();
    let obj = |v: &'_ Value| -> Map<String, Value> { v.as_object().cloned().unwrap_or_default() };
    let status = obj(&fin["status"]);
    let (stock, money) = (obj(&fin["stock_holds"]), obj(&fin["money_holds"]));
    let state_of = |m: &Map<String, Value>, id: &str| {
        m.get(id)
            .and_then(|h| h["state"].as_str())
            .map(str::to_string)
    };
    let mut f2 = |m: String| failures.push(Failure::new("2pc", m));
    // Orders meant to be rejected are not approved.
    for (id, e) in &heard {
        if e.approved && e.intent != VALID {
            f2(format!("order {id} ({}) was approved", e.intent));
        }
        if e.approved && e.rejected {
            f2(format!("order {id} was both approved and rejected"));
        }
    }
    // Every approved order executed or failed; atomic.
    for (id, e) in &heard {
        let st = status
            .get(id)
            .and_then(|s| s["status"].as_str())
            .unwrap_or("absent");
        if e.approved && st != "executed" && st != "failed" {
            f2(format!(
                "approved order {id} is {st}, not executed or failed"
            ));
        }
    }
    // Per transaction: atomic. Per order: one committed transaction if
    // executed, none if failed.
    let committed = |x: &Option<String>| x.as_deref() == Some("committed");
    let mut commits: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let txs: BTreeSet<&String> = stock.keys().chain(money.keys()).collect();
    let decisions = obj(&fin["decisions"]);
    for tx in &txs {
        let (s, m) = (state_of(&stock, tx), state_of(&money, tx));
        // A participant commits only what the decision log committed.
        let (order, attempt) = split_tx(tx);
        let logged = decisions.get(order);
        let log_commits = logged.is_some_and(|d| {
            d["attempt"].as_u64() == Some(attempt as u64) && d["decision"] == "committed"
        });
        if (committed(&s) || committed(&m)) && !log_commits {
            f2(format!(
                "transaction {tx} committed (stock {}, payment {}) but the decision log does not commit it: {}",
                s.as_deref().unwrap_or("absent"),
                m.as_deref().unwrap_or("absent"),
                match logged {
                    Some(d) => format!(
                        "it holds attempt {} {}{}",
                        d["attempt"],
                        d["state"].as_str().unwrap_or(""),
                        match d["decision"].as_str() {
                            Some(x) if !x.is_empty() => format!(" ({x})"),
                            _ => String::new(),
                        }
                    ),
                    None => "no entry".into(),
                }
            ));
        }
        match (committed(&s), committed(&m)) {
            (true, true) => commits.entry(split_tx(tx).0).or_default().push(tx),
            (false, false) => {}
            _ => f2(format!(
                "transaction {tx} is not atomic: stock {}, payment {}",
                s.as_deref().unwrap_or("absent"),
                m.as_deref().unwrap_or("absent")
            )),
        }
    }
    let orders: BTreeSet<&str> = status
        .keys()
        .map(String::as_str)
        .chain(txs.iter().map(|tx| split_tx(tx).0))
        .collect();
    for id in orders {
        let st = status
            .get(id)
            .and_then(|s| s["status"].as_str())
            .unwrap_or("absent");
        let c = commits.get(id).cloned().unwrap_or_default();
        match st {
            "executed" if c.len() != 1 => f2(format!(
                "order {id} executed but {} of its transactions committed at both participants {c:?}",
                c.len()
            )),
            "failed" if !c.is_empty() => f2(format!(
                "order {id} failed but its transactions {c:?} committed"
            )),
            _ => {}
        }
        let e = heard.get(id);
        let allowed = e.is_some_and(|e| e.approved || e.unknown);
        if !allowed {
            f2(format!(
                "order {id} reached the queue or a participant (status {st}, committed {c:?}) though its checkout was {}",
                match e {
                    None => "never made",
                    Some(e) if e.rejected => "rejected",
                    Some(_) => "unavailable",
                }
            ));
        }
    }
    // Conservation.
    let mut fc = |m: String| failures.push(Failure::new("conservation", m));
    let mut debited: BTreeMap<String, i64> = BTreeMap::new();
    for holds in [&stock, &money] {
        for (id, hold) in holds {
            match hold["state"].as_str().unwrap_or("") {
                "prepared" => fc(format!("transaction {id}: a hold left prepared: {hold}")),
                "committed" => {
                    for d in hold["debits"].as_array().unwrap_or(&Vec::new()) {
                        let (k, a) = (d[0].as_str().unwrap_or(""), d[1].as_i64().unwrap_or(0));
                        *debited.entry(k.to_string()).or_default() += a;
                    }
                }
                _ => {}
            }
        }
    }
    // Restocks: those that succeeded count; those of unknown outcome may
    // have happened or not.
    let mut restocked: BTreeMap<String, i64> = BTreeMap::new();
    let mut maybe: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for op in h.ops.iter().filter(|o| o.f == "restock") {
        let (Some(book), Some(delta)) = (op.value["book"].as_str(), op.value["delta"].as_i64())
        else {
            continue;
        };
        match op.kind {
            OpType::Ok => *restocked.entry(book.to_string()).or_default() += delta,
            OpType::Info => maybe.entry(book.to_string()).or_default().push(delta),
            _ => {}
        }
    }
    let init_books = init["books"].as_object().unwrap_or(&empty);
    let fin_books = fin["books"].as_object().unwrap_or(&empty);
    for (id, b) in init_books {
        let before = b["stock"].as_i64().unwrap_or(0);
        let sold = debited.get(&format!("book/{id}")).copied().unwrap_or(0);
        let added = restocked.get(id).copied().unwrap_or(0);
        let unknown = maybe.get(id).cloned().unwrap_or_default();
        // Every sum of a subset of the unknown restocks.
        let mut sums: BTreeSet<i64> = [0].into();
        for d in &unknown {
            sums = sums.iter().flat_map(|s| [*s, s + d]).collect();
        }
        let expected = before - sold + added;
        match fin_books.get(id).and_then(Value::as_i64) {
            None => fc(format!("book {id} is gone")),
            Some(after) if !sums.contains(&(after - expected)) => fc(format!(
                "book {id}: initial stock {before} - {sold} committed + {added} restocked = {expected}{}, but the stock is {after}",
                if unknown.is_empty() {
                    String::new()
                } else {
                    format!(" (plus any of the restocks of unknown outcome {unknown:?})")
                }
            )),
            Some(after) if after < 0 => fc(format!("book {id}: stock {after} is negative")),
            _ => {}
        }
    }
    for k in debited.keys().filter(|k| k.starts_with("book/")) {
        if !init_books.contains_key(k.trim_start_matches("book/")) {
            fc(format!("{k}: debited, but no such book at the start"));
        }
    }
    let accounts = fin["accounts"].as_object().unwrap_or(&empty);
    let keys: BTreeSet<&String> = accounts
        .keys()
        .chain(debited.keys().filter(|k| k.starts_with("account/")))
        .collect();
    for k in keys {
        let spent = debited.get(k).copied().unwrap_or(0);
        let balance = accounts
            .get(k)
            .and_then(Value::as_i64)
            .unwrap_or(DEFAULT_CREDIT_CENTS);
        if balance != DEFAULT_CREDIT_CENTS - spent {
            fc(format!(
                "{k}: {DEFAULT_CREDIT_CENTS} - {spent} committed = {}, but the balance is {balance}",
                DEFAULT_CREDIT_CENTS - spent
            ));
        }
    }
    failures.truncate(20);
    failures
}

/// A coordinator's call a participant applied: when it began and when it
/// was applied, in ns from a common origin.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub resource: Resource,
    pub tx: String,
    pub op: String,
    pub token: u64,
    pub began_ns: u64,
    pub applied_ns: u64,
}

impl Accepted {
    /// A simulated participant's effect, applied at `end`.
    pub fn of(e: &Effect, end: Instant, t0: Instant) -> Accepted {
        let ns = |t: Instant| t.duration_since(t0).as_nanos() as u64;
        Accepted {
            resource: e.resource,
            tx: e.tx.clone(),
            op: e.op.to_string(),
            token: e.token,
            began_ns: ns(e.started),
            applied_ns: ns(end),
        }
    }
}

/// Mutual exclusion of the executors, as the participants saw it: a side
/// effect accepted with a token lower than that of one accepted (applied)
/// before it began.
pub fn fencing_violations(effects: &[Accepted]) -> Vec<String> {
    let at = |ns: u64| format!("{:.3} s", ns as f64 / 1e9);
    let mut out = Vec::new();
    for resource in [Resource::Stock, Resource::Money] {
        let mut ended: Vec<&Accepted> = effects.iter().filter(|e| e.resource == resource).collect();
        ended.sort_by_key(|e| e.applied_ns);
        let mut by_start = ended.clone();
        by_start.sort_by_key(|e| e.began_ns);
        let (mut i, mut highest): (usize, Option<&Accepted>) = (0, None);
        for b in by_start {
            while i < ended.len() && ended[i].applied_ns < b.began_ns {
                if highest.is_none_or(|h| ended[i].token > h.token) {
                    highest = Some(ended[i]);
                }
                i += 1;
            }
            if let Some(a) = highest.filter(|a| a.token > b.token) {
                out.push(format!(
                    "{resource:?}: {} of {} with token {}, begun at {} and applied at {}, after {} of {} with token {} was applied at {}: an executor acted after a newer leader had",
                    b.op,
                    b.tx,
                    b.token,
                    at(b.began_ns),
                    at(b.applied_ns),
                    a.op,
                    a.tx,
                    a.token,
                    at(a.applied_ns)
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history of one book with 10 copies: restocked +5 (ok), +3 (of
    /// unknown outcome) and +4 (failed), no order; the final stock given.
    fn restocks(final_stock: i64) -> History {
        let line = |i: u64, v: Value| {
            let mut v = v;
            v["index"] = json!(i);
            v["time"] = json!(i);
            serde_json::to_string(&v).unwrap()
        };
        let restock = |i: u64, kind: &str, delta: i64| {
            line(
                i,
                json!({"process": 9, "type": kind, "f": "restock", "value": {"book": "b1", "delta": delta}}),
            )
        };
        let text = [
            line(
                0,
                json!({"process": "setup", "type": "ok", "f": "init", "value": {"books": {"b1": {"stock": 10}}}}),
            ),
            restock(1, "invoke", 5),
            restock(2, "ok", 5),
            restock(3, "invoke", 3),
            restock(4, "info", 3),
            restock(5, "invoke", 4),
            restock(6, "fail", 4),
            line(
                7,
                json!({"process": "final", "type": "ok", "f": "final", "value": {
                    "books": {"b1": final_stock}, "accounts": {}, "stock_holds": {},
                    "money_holds": {}, "status": {}, "decisions": {}}}),
            ),
        ]
        .join("\n");
        History::from_jsonl(&text).unwrap()
    }

    #[test]
    fn conservation_counts_restocks_and_allows_those_of_unknown_outcome() {
        for ok in [15, 18] {
            assert!(check_history(&restocks(ok)).is_empty(), "{ok} copies");
        }
        for bad in [10, 14, 17, 19, 22] {
            let f = check_history(&restocks(bad));
            assert_eq!(f.len(), 1, "{bad} copies: {f:?}");
            assert_eq!(f[0].check, "conservation");
            assert!(
                f[0].message.contains("of unknown outcome [3]"),
                "{}",
                f[0].message
            );
        }
    }
}
