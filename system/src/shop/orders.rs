//! The order service: orders in the order group, and the async shell that
//! drives checkouts through the pure coordinator of [`super::checkout`].
//!
//! A checkout reads the order and its record (`tx/<order>`). With no
//! unfinished attempt it writes a new record (a fresh transaction id and a
//! snapshot of the order's lines and total) in a transaction conditional on
//! the order being unchanged; then, step after step, it runs the step
//! against the participants and writes the next record with a
//! compare-and-set. A lost race means another driver moved the checkout on:
//! re-read and follow. A step whose outcome is unknown is repeated (every
//! step is idempotent by transaction id) until the call's deadline, after
//! which the client hears "unknown" and the recovery loop, which every order
//! replica runs, finishes the checkout.
//!
//! Deadlines, retry pauses and the recovery period are measured on the
//! host's clock ([`ServiceConfig::clock`]).

use super::checkout::{self, CoordinatorBugs, Outcome, Step, TxRecord};
use super::keys::{self, check_amount, check_id, from_json, to_json, OrderRec};
use super::rpc::{backoff, kv_error, Deadline, Replicas};
use super::stock::put_all;
use super::{Mode, ServiceConfig, Store};
use crate::clock::Clock;
use crate::kv::cmd;
use crate::shop_pb::{self as pb, orders_server::Orders};
use crate::shop_pb::{payment_client::PaymentClient, stock_client::StockClient};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct OrderService {
    pub store: Store,
    pub stock: Replicas,
    pub payment: Replicas,
    pub mode: Mode,
    pub bugs: CoordinatorBugs,
    /// How long one checkout call drives its checkout (local time).
    pub deadline: Duration,
    /// The host's clock: deadlines, retry pauses and the recovery period
    /// are measured on it.
    pub clock: Clock,
}

fn order_key(id: &str) -> String {
    format!("{}{id}", keys::ORDER)
}
fn tx_key(order: &str) -> String {
    format!("{}{order}", keys::TX)
}
/// The recovery loop reads every checkout record on its first look and on
/// every this-many looks after it (a minute, at one look a second), the
/// `open/` index on the others.
const FULL_LOOK_EVERY: u64 = 60;

fn open_key(order: &str) -> String {
    format!("{}{order}", keys::OPEN)
}

fn order_reply(id: &str, o: &OrderRec) -> pb::Order {
    pb::Order {
        order_id: id.to_string(),
        paid: o.paid,
        items: o
            .items
            .iter()
            .map(|(i, q)| pb::Line {
                item_id: i.clone(),
                qty: *q,
            })
            .collect(),
        user_id: o.user.clone(),
        total_cost: o.total,
    }
}

fn unknown(msg: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("outcome unknown: {msg}"))
}

impl OrderService {
    pub fn new(cfg: &ServiceConfig) -> OrderService {
        let t = &cfg.topology;
        let (attempt, clock) = (cfg.rpc_timeout, &cfg.clock);
        OrderService {
            store: Store::with_clock(t.order_kv.clone(), cfg.kv_options.clone(), clock.clone()),
            stock: Replicas::with_clock(t.stock.clone(), attempt, clock.clone()),
            payment: Replicas::with_clock(t.payment.clone(), attempt, clock.clone()),
            mode: cfg.mode,
            bugs: CoordinatorBugs {
                no_compensation: cfg.bugs.no_compensation,
            },
            deadline: cfg.checkout_deadline,
            clock: clock.clone(),
        }
    }

    async fn read(&self, keys: &[&str]) -> Result<Vec<Option<String>>, Status> {
        self.store.client().read(keys).await.map_err(kv_error)
    }

    /// Runs one step against the participants; `Err` = outcome unknown (or
    /// an internal error), to be retried.
    async fn run_step(
        &self,
        rec: &TxRecord,
        step: &Step,
        left: Duration,
    ) -> Result<Outcome, Status> {
        let tx = rec.tx_id.clone();
        let reserve = || {
            let req = pb::ReserveRequest {
                tx_id: tx.clone(),
                lines: rec
                    .lines
                    .iter()
                    .map(|(i, q)| pb::Line {
                        item_id: i.clone(),
                        qty: *q,
                    })
                    .collect(),
            };
            self.stock.call(left, true, move |ch| {
                let req = req.clone();
                async move { StockClient::new(ch).reserve(req).await }
            })
        };
        let charge = || {
            let req = pb::ChargeRequest {
                tx_id: tx.clone(),
                user_id: rec.user.clone(),
                amount: rec.total,
            };
            self.payment.call(left, true, move |ch| {
                let req = req.clone();
                async move { PaymentClient::new(ch).charge(req).await }
            })
        };
        let txref = pb::TxRef { tx_id: tx.clone() };
        // A participant that refuses the request itself (a bad amount, an
        // unknown item) votes no: the checkout must fail, not retry forever.
        let refused = |r: Result<pb::Vote, Status>| match r {
            Err(e) if super::rpc::is_business(&e) && e.code() != tonic::Code::Internal => {
                Ok(pb::Vote {
                    ok: false,
                    reason: e.message().to_string(),
                })
            }
            r => r,
        };
        let vote = |v: pb::Vote| {
            if v.ok {
                Outcome::Yes
            } else {
                Outcome::No(v.reason)
            }
        };
        Ok(match step {
            Step::Reserve => vote(refused(reserve().await)?),
            Step::Charge => vote(refused(charge().await)?),
            Step::Prepare => {
                let (s, p) = tokio::join!(reserve(), charge());
                let (s, p) = (refused(s), refused(p));
                hostio::coverage::sometimes(
                    (matches!(&s, Ok(v) if !v.ok) && p.is_err())
                        || (matches!(&p, Ok(v) if !v.ok) && s.is_err()),
                    "shop: 2pc decided while a participant did not answer",
                );
                match (s, p) {
                    (Ok(s), Ok(p)) if s.ok && p.ok => Outcome::Yes,
                    // One "no" decides, whatever the other said.
                    (Ok(s), _) if !s.ok => Outcome::No(s.reason),
                    (_, Ok(p)) if !p.ok => Outcome::No(p.reason),
                    (Err(e), _) | (_, Err(e)) => return Err(e),
                    _ => unreachable!("all vote combinations handled"),
                }
            }
            Step::Commit => {
                let t = txref.clone();
                let (s, p) = tokio::join!(
                    self.stock.call(left, true, |ch| {
                        let t = t.clone();
                        async move { StockClient::new(ch).commit(t).await }
                    }),
                    self.payment.call(left, true, |ch| {
                        let t = t.clone();
                        async move { PaymentClient::new(ch).commit(t).await }
                    })
                );
                hostio::coverage::sometimes(
                    s.is_err() || p.is_err(),
                    "shop: a 2pc commit not delivered at once (a participant did not answer)",
                );
                s?;
                p?;
                Outcome::Yes
            }
            Step::Undo { release, refund } => {
                hostio::coverage::hit(match rec.phase {
                    checkout::Phase::Aborting => "shop: a 2pc abort",
                    _ => "shop: a saga compensation",
                });
                if *refund {
                    let t = txref.clone();
                    self.payment
                        .call(left, true, |ch| {
                            let t = t.clone();
                            async move { PaymentClient::new(ch).refund(t).await }
                        })
                        .await?;
                }
                if *release {
                    let t = txref.clone();
                    self.stock
                        .call(left, true, |ch| {
                            let t = t.clone();
                            async move { StockClient::new(ch).release(t).await }
                        })
                        .await?;
                }
                Outcome::Yes
            }
            Step::Finished { .. } => unreachable!("finished records have no step"),
        })
    }

    /// Drives the checkout of `order` until its record is terminal or the
    /// deadline (on [`Self::clock`]) passes. Ok(record) = terminal.
    /// `written`: the checkout record and the order as the caller's own
    /// compare-and-set just wrote them (else they are read first).
    pub async fn drive(
        &self,
        order: &str,
        deadline: Deadline,
        mut written: Option<Vec<Option<String>>>,
    ) -> Result<TxRecord, Status> {
        let (okey, tkey) = (order_key(order), tx_key(order));
        let mut attempt = 0u32;
        // What our own last compare-and-set wrote, when it succeeded: the
        // store holds exactly that (or something newer, which the next
        // compare-and-set will find out), so there is nothing to read back.
        loop {
            let left = deadline.left(&self.clock);
            if left.is_zero() {
                return Err(unknown(format!(
                    "checkout of order {order} still running; it will be finished in the background"
                )));
            }
            let vals = match written.take() {
                Some(v) => v,
                None => match self.read(&[&tkey, &okey]).await {
                    Ok(v) => v,
                    Err(_) => {
                        attempt += 1;
                        backoff(&self.clock, attempt).await;
                        continue;
                    }
                },
            };
            let (Some(rec_s), Some(order_s)) = (&vals[0], &vals[1]) else {
                return Err(Status::internal(format!(
                    "checkout record of {order} vanished"
                )));
            };
            let rec: TxRecord = from_json(&tkey, rec_s)?;
            let step = checkout::next_step(&rec, self.bugs);
            if let Step::Finished { .. } = step {
                return Ok(rec);
            }
            let outcome = match self.run_step(&rec, &step, left).await {
                Ok(o) => o,
                Err(e) if e.code() == tonic::Code::Internal => return Err(e),
                Err(e) => {
                    tracing::debug!(
                        "step {step:?} of order {order}: {:?} {}",
                        e.code(),
                        e.message()
                    );
                    attempt += 1;
                    backoff(&self.clock, attempt).await;
                    continue;
                }
            };
            let (next, paid) = checkout::after(&rec, outcome);
            let next_s = to_json(&next);
            let mut puts = vec![cmd::op_put(&tkey, &next_s)];
            if next.terminal() {
                puts.push(cmd::op_delete(&open_key(order)));
            }
            let mut compares = vec![cmd::compare(&tkey, Some(rec_s))];
            let mut order_next = order_s.clone();
            if paid {
                let mut o: OrderRec = from_json(&okey, order_s)?;
                o.paid = true;
                order_next = to_json(&o);
                compares.push(cmd::compare(&okey, Some(order_s)));
                puts.push(cmd::op_put(&okey, &order_next));
            }
            // Lost race or unknown outcome alike: re-read and follow.
            if let Ok(r) = self.store.client().txn(compares, puts, vec![]).await {
                if r.succeeded {
                    written = Some(vec![Some(next_s), Some(order_next)]);
                }
            }
        }
    }

    /// Checks out `order`. With an `attempt` id, a call sent again (after an
    /// unknown outcome) follows the transaction that id started and answers
    /// its outcome, instead of starting another after it ended unpaid: so a
    /// caller can keep asking until it gets a definite answer.
    async fn checkout(&self, order: &str, attempt_id: &str) -> Result<pb::CheckoutResult, Status> {
        check_id("order", order)?;
        if !attempt_id.is_empty() {
            check_id("attempt", attempt_id)?;
        }
        let ours = (!attempt_id.is_empty()).then(|| format!("{order}.{attempt_id}"));
        let deadline = Deadline::after(&self.clock, self.deadline);
        let (okey, tkey) = (order_key(order), tx_key(order));
        let mut attempt = 0u32;
        let mut started = false;
        let mut written = None;
        loop {
            if deadline.passed(&self.clock) {
                return Err(if started {
                    unknown(format!("checkout of order {order} may have started"))
                } else {
                    Status::aborted(format!(
                        "checkout of order {order} not started: store unavailable"
                    ))
                });
            }
            let vals = match self.read(&[&okey, &tkey]).await {
                Ok(v) => v,
                Err(_) => {
                    attempt += 1;
                    backoff(&self.clock, attempt).await;
                    continue;
                }
            };
            let Some(order_s) = &vals[0] else {
                return Err(Status::not_found(format!("order {order} not found")));
            };
            let o: OrderRec = from_json(&okey, order_s)?;
            let active = match &vals[1] {
                Some(s) => !from_json::<TxRecord>(&tkey, s)?.terminal(),
                None => false,
            };
            if o.paid && !active {
                let tx_id = match &vals[1] {
                    Some(s) => from_json::<TxRecord>(&tkey, s)?.tx_id,
                    None => String::new(),
                };
                return Ok(pb::CheckoutResult {
                    order_id: order.to_string(),
                    tx_id,
                });
            }
            if !active {
                if let (Some(id), Some(s)) = (&ours, &vals[1]) {
                    let rec: TxRecord = from_json(&tkey, s)?;
                    if rec.tx_id == *id {
                        // Our attempt ended unpaid: that is the answer.
                        return Err(Status::failed_precondition(rec.reason));
                    }
                }
                if started {
                    // Our attempt (or a concurrent one) ended and the order
                    // is still unpaid: report it rather than start again.
                    if let Some(s) = &vals[1] {
                        let rec: TxRecord = from_json(&tkey, s)?;
                        return Err(Status::failed_precondition(rec.reason));
                    }
                }
                let tx_id = ours
                    .clone()
                    .unwrap_or_else(|| format!("{order}.{}", super::random_id()));
                let rec = checkout::start(self.mode, tx_id, &o);
                let compares = vec![
                    cmd::compare(&okey, Some(order_s)),
                    cmd::compare(&tkey, vals[1].as_deref()),
                ];
                let rec_s = to_json(&rec);
                let puts = vec![
                    cmd::op_put(&tkey, &rec_s),
                    cmd::op_put(&open_key(order), &rec.tx_id),
                ];
                match self.store.client().txn(compares, puts, vec![]).await {
                    Ok(r) if r.succeeded => {
                        written = Some(vec![Some(rec_s), Some(order_s.clone())])
                    }
                    Ok(_) => continue, // someone else started one: follow it
                    Err(e) => {
                        started |= e.is_unknown();
                        attempt += 1;
                        backoff(&self.clock, attempt).await;
                        continue;
                    }
                }
            }
            let rec = self.drive(order, deadline, written.take()).await?;
            if rec.phase == checkout::Phase::Done {
                return Ok(pb::CheckoutResult {
                    order_id: order.to_string(),
                    tx_id: rec.tx_id,
                });
            }
            return Err(Status::failed_precondition(rec.reason));
        }
    }

    /// Unfinished checkout records: order id -> record string. They are
    /// the records the `open/` index names (a record and its index entry
    /// are written in one transaction), so the cost follows the checkouts
    /// in flight, not every checkout ever made. `all`: scan every record
    /// instead, and index each unfinished one the index does not name (a
    /// record written before the index existed, or by a replica of such a
    /// version during an upgrade), so that the next looks see it too.
    async fn unfinished(&self, all: bool) -> Result<BTreeMap<String, String>, Status> {
        let mut kv = self.store.client();
        let open = kv.scan(keys::OPEN).await.map_err(kv_error)?;
        let records = if all {
            kv.scan(keys::TX).await.map_err(kv_error)?
        } else {
            if open.is_empty() {
                return Ok(BTreeMap::new());
            }
            let tkeys: Vec<String> = open
                .iter()
                .map(|(k, _)| tx_key(&k[keys::OPEN.len()..]))
                .collect();
            let refs: Vec<&str> = tkeys.iter().map(String::as_str).collect();
            let values = self.read(&refs).await?;
            tkeys
                .into_iter()
                .zip(values)
                .filter_map(|(k, v)| Some((k, v?)))
                .collect()
        };
        // Only a full look can find a record the index does not name.
        let indexed: BTreeSet<&str> = if all {
            open.iter().map(|(k, _)| &k[keys::OPEN.len()..]).collect()
        } else {
            BTreeSet::new()
        };
        let mut out = BTreeMap::new();
        for (k, v) in records {
            let rec: TxRecord = from_json(&k, &v)?;
            if rec.terminal() {
                continue;
            }
            let order = k[keys::TX.len()..].to_string();
            if all && !indexed.contains(order.as_str()) {
                // Only if the record is still this one and has no entry
                // yet (a checkout started since the index was read has
                // one): a driver that moved it on since has its own
                // answer, and the next full look indexes it if it is
                // still unfinished then.
                let okey = open_key(&order);
                let r = kv
                    .txn(
                        vec![cmd::compare(&k, Some(&v)), cmd::compare(&okey, None)],
                        vec![cmd::op_put(&okey, &rec.tx_id)],
                        vec![],
                    )
                    .await;
                if r.is_ok_and(|r| r.succeeded) {
                    hostio::coverage::hit(
                        "shop: an unfinished checkout the index did not name, indexed",
                    );
                }
            }
            out.insert(order, v);
        }
        Ok(out)
    }

    /// Every `every` (of the host's clock), finishes the checkouts that made
    /// no progress since the previous look (their driver crashed or gave up).
    pub async fn recovery_loop(self, every: Duration) {
        // order -> (record, how many looks in a row it was unchanged)
        let mut seen: BTreeMap<String, (String, u32)> = BTreeMap::new();
        // Orders being driven by this loop right now.
        let running: Arc<Mutex<BTreeSet<String>>> = Default::default();
        // Looks done; the first and every FULL_LOOK_EVERY-th read every
        // record, not only the index (see `unfinished`).
        let mut looks = 0u64;
        loop {
            self.clock.sleep(every).await;
            let Ok(now) = self.unfinished(looks.is_multiple_of(FULL_LOOK_EVERY)).await else {
                continue;
            };
            looks += 1;
            let now: BTreeMap<String, (String, u32)> = now
                .into_iter()
                .map(|(order, rec)| {
                    let n = match seen.get(&order) {
                        Some((r, n)) if *r == rec => n + 1,
                        _ => 0,
                    };
                    (order, (rec, n))
                })
                .collect();
            for (order, (_, unchanged)) in &now {
                // Unchanged for two looks: its driver is gone or stuck.
                if *unchanged < 2 {
                    continue;
                }
                let mut r = running.lock().unwrap_or_else(|e| e.into_inner());
                if r.len() >= 8 || !r.insert(order.clone()) {
                    continue;
                }
                let (svc, order, running) = (self.clone(), order.clone(), running.clone());
                hostio::coverage::hit("shop: the recovery loop took over a checkout");
                tokio::spawn(async move {
                    let deadline = Deadline::after(&svc.clock, svc.deadline);
                    if let Err(e) = svc.drive(&order, deadline, None).await {
                        tracing::debug!(
                            "recovery of order {order}: {:?} {}",
                            e.code(),
                            e.message()
                        );
                    }
                    running
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&order);
                });
            }
            seen = now;
        }
    }
}

#[tonic::async_trait]
impl Orders for OrderService {
    async fn create(
        &self,
        req: Request<pb::CreateOrderRequest>,
    ) -> Result<Response<pb::OrderId>, Status> {
        let pb::CreateOrderRequest {
            user_id: user,
            request_id: request,
        } = req.into_inner();
        check_id("user", &user)?;
        keys::check_request(&request)?;
        let u = pb::UserId {
            user_id: user.clone(),
        };
        self.payment
            .call(self.deadline, true, |ch| {
                let u = u.clone();
                async move { PaymentClient::new(ch).find(u).await }
            })
            .await?;
        let rec = to_json(&OrderRec {
            user,
            items: vec![],
            total: 0,
            paid: false,
        });
        loop {
            // With a request id, the order's id is derived from it: a create
            // sent again finds the order it made.
            let id = if request.is_empty() {
                super::random_id()
            } else {
                keys::id_of_request(&request)
            };
            let r = self
                .store
                .client()
                .cas(&order_key(&id), None, Some(&rec))
                .await;
            if r.map_err(kv_error)?.succeeded || !request.is_empty() {
                return Ok(Response::new(pb::OrderId {
                    order_id: id,
                    attempt: String::new(),
                }));
            }
        }
    }

    async fn batch_init(
        &self,
        req: Request<pb::OrdersInit>,
    ) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        check_amount("item price", r.item_price)?;
        if r.n > 1_000_000 || r.n_items == 0 || r.n_users == 0 {
            return Err(Status::invalid_argument(format!(
                "bad batch: n {} (at most 10^6), n_items {} and n_users {} (at least 1)",
                r.n, r.n_items, r.n_users
            )));
        }
        let pairs: Vec<(String, String)> = {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(super::random_u64());
            (0..r.n)
                .map(|i| {
                    let items = vec![
                        (rng.random_range(0..r.n_items).to_string(), 1),
                        (rng.random_range(0..r.n_items).to_string(), 1),
                    ];
                    let o = OrderRec {
                        user: rng.random_range(0..r.n_users).to_string(),
                        items,
                        total: 2 * r.item_price,
                        paid: false,
                    };
                    (order_key(&i.to_string()), to_json(&o))
                })
                .collect()
        };
        put_all(&self.store, pairs).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn find(&self, req: Request<pb::OrderId>) -> Result<Response<pb::Order>, Status> {
        let id = req.into_inner().order_id;
        check_id("order", &id)?;
        let key = order_key(&id);
        match self.read(&[&key]).await?.pop().flatten() {
            None => Err(Status::not_found(format!("order {id} not found"))),
            Some(s) => Ok(Response::new(order_reply(&id, &from_json(&key, &s)?))),
        }
    }

    async fn add_item(
        &self,
        req: Request<pb::AddItemRequest>,
    ) -> Result<Response<pb::Order>, Status> {
        let r = req.into_inner();
        check_id("order", &r.order_id)?;
        check_id("item", &r.item_id)?;
        if r.quantity <= 0 {
            return Err(Status::invalid_argument(format!(
                "bad quantity {}: expected a positive integer",
                r.quantity
            )));
        }
        check_amount("quantity", r.quantity)?;
        keys::check_request(&r.request_id)?;
        let (okey, tkey) = (order_key(&r.order_id), tx_key(&r.order_id));
        let rkey = keys::req_key(&r.request_id);
        // The order must exist before we ask the stock service for a price.
        if self.read(&[&okey]).await?[0].is_none() {
            return Err(Status::not_found(format!("order {} not found", r.order_id)));
        }
        let id = pb::ItemId {
            item_id: r.item_id.clone(),
        };
        let item = self
            .stock
            .call(self.deadline, true, |ch| {
                let id = id.clone();
                async move { StockClient::new(ch).find(id).await }
            })
            .await?;
        for attempt in 0..100 {
            let vals = self.read(&[&okey, &tkey, &rkey]).await?;
            if let Some(done) = vals[2].as_ref().filter(|_| !r.request_id.is_empty()) {
                // Sent again: done already, the same answer.
                return Ok(Response::new(order_reply(
                    &r.order_id,
                    &from_json(&rkey, done)?,
                )));
            }
            let Some(old) = &vals[0] else {
                return Err(Status::not_found(format!("order {} not found", r.order_id)));
            };
            let mut o: OrderRec = from_json(&okey, old)?;
            if o.paid {
                return Err(Status::failed_precondition(format!(
                    "order {} is already paid",
                    r.order_id
                )));
            }
            if let Some(t) = &vals[1] {
                if !from_json::<TxRecord>(&tkey, t)?.terminal() {
                    return Err(Status::failed_precondition(format!(
                        "order {} is being checked out",
                        r.order_id
                    )));
                }
            }
            o.items.push((r.item_id.clone(), r.quantity));
            o.total = item
                .price
                .checked_mul(r.quantity)
                .and_then(|c| c.checked_add(o.total))
                .filter(|t| check_amount("order total", *t).is_ok())
                .ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "order {} would cost more than 10^12 with {} x item {} at {}",
                        r.order_id, r.quantity, r.item_id, item.price
                    ))
                })?;
            let mut compares = vec![
                cmd::compare(&okey, Some(old)),
                cmd::compare(&tkey, vals[1].as_deref()),
            ];
            let mut puts = vec![cmd::op_put(&okey, &to_json(&o))];
            if !r.request_id.is_empty() {
                compares.push(cmd::compare(&rkey, None));
                puts.push(cmd::op_put(&rkey, &to_json(&o)));
            }
            let res = self.store.client().txn(compares, puts, vec![]).await;
            if res.map_err(kv_error)?.succeeded {
                return Ok(Response::new(order_reply(&r.order_id, &o)));
            }
            backoff(&self.clock, attempt.min(3)).await;
        }
        Err(Status::aborted(format!(
            "order {}: too many concurrent updates, not done",
            r.order_id
        )))
    }

    async fn checkout(
        &self,
        req: Request<pb::OrderId>,
    ) -> Result<Response<pb::CheckoutResult>, Status> {
        let r = req.into_inner();
        Ok(Response::new(
            OrderService::checkout(self, &r.order_id, &r.attempt).await?,
        ))
    }

    async fn in_flight(
        &self,
        _: Request<pb::InFlightRequest>,
    ) -> Result<Response<pb::InFlightReply>, Status> {
        let u = self.unfinished(false).await?;
        Ok(Response::new(pb::InFlightReply {
            count: u.len() as u64,
            orders: u.into_keys().collect(),
        }))
    }
}

/// Runs one replica of a service until `shutdown` completes; its time is
/// `cfg.clock` (the host's).
pub async fn serve(
    group: super::Group,
    cfg: ServiceConfig,
    addr: std::net::SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use super::Group;
    use crate::shop_pb::{
        orders_server::OrdersServer, payment_server::PaymentServer, stock_server::StockServer,
    };
    let builder = tonic::transport::Server::builder();
    let t = &cfg.topology;
    match group {
        Group::Stock => {
            let svc = super::stock::StockService {
                store: Store::with_clock(
                    t.stock_kv.clone(),
                    cfg.kv_options.clone(),
                    cfg.clock.clone(),
                ),
                unguarded: cfg.bugs.unguarded_stock,
                locks: Default::default(),
                budget: cfg.rpc_timeout * 3 / 4,
                clock: cfg.clock.clone(),
            };
            let mut b = builder;
            b.add_service(StockServer::new(svc))
                .serve_with_shutdown(addr, shutdown)
                .await?;
        }
        Group::Payment => {
            let svc = super::payment::PaymentService {
                store: Store::with_clock(
                    t.payment_kv.clone(),
                    cfg.kv_options.clone(),
                    cfg.clock.clone(),
                ),
                non_idempotent: cfg.bugs.non_idempotent_payment,
                locks: Default::default(),
                budget: cfg.rpc_timeout * 3 / 4,
                clock: cfg.clock.clone(),
            };
            let mut b = builder;
            b.add_service(PaymentServer::new(svc))
                .serve_with_shutdown(addr, shutdown)
                .await?;
        }
        Group::Orders => {
            let svc = OrderService::new(&cfg);
            let recovery = tokio::spawn(svc.clone().recovery_loop(cfg.recovery_every));
            let mut b = builder;
            let r = b
                .add_service(OrdersServer::new(svc))
                .serve_with_shutdown(addr, shutdown)
                .await;
            recovery.abort();
            r?;
        }
    }
    Ok(())
}
