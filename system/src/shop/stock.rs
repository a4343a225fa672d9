//! The stock service: items with a price and a stock count, kept in the
//! stock group. Every change is a compare-and-set on the item's record
//! (retried on conflict); a checkout's reservation changes all its items and
//! writes its own record in one transaction.

use super::keys::{self, check_amount, check_id, from_json, to_json, Hold, HoldState, ItemRec};
use super::rpc::{backoff, kv_error, within};
use super::Store;
use crate::clock::Clock;
use crate::kv::cmd;
use crate::shop_pb::{self as pb, stock_server::Stock};
use std::time::Duration;
use tonic::{Request, Response, Status};

#[derive(Clone)]
pub struct StockService {
    pub store: Store,
    /// Planted bug `unguarded-stock`: reservations read, then write without
    /// a condition.
    pub unguarded: bool,
    pub locks: super::KeyLocks,
    /// Most time one request may take (see [`super::rpc::within`]).
    pub budget: std::time::Duration,
    /// The host's clock: the budget, contention limit and backoff pauses are
    /// measured on it.
    pub clock: Clock,
}

fn item_key(id: &str) -> String {
    format!("{}{id}", keys::ITEM)
}
fn res_key(tx: &str) -> String {
    format!("{}{tx}", keys::RESERVATION)
}

fn item_reply(id: &str, r: &ItemRec) -> pb::Item {
    pb::Item {
        item_id: id.to_string(),
        stock: r.stock,
        price: r.price,
    }
}

impl StockService {
    async fn read(&self, keys: &[&str]) -> Result<Vec<Option<String>>, Status> {
        self.store.client().read(keys).await.map_err(kv_error)
    }

    /// Adds `delta` to an item's stock, refusing to go below zero.
    /// Adds `delta` to an item's stock. With a `request` id the change is
    /// recorded under it in the same transaction: sent again, it is not
    /// done again and answers what it answered.
    async fn change(&self, id: &str, delta: i64, request: &str) -> Result<pb::Item, Status> {
        check_id("item", id)?;
        keys::check_request(request)?;
        let (key, rkey) = (item_key(id), keys::req_key(request));
        let _guard = self.locks.lock(std::slice::from_ref(&key)).await;
        let start = self.clock.now();
        for attempt in 0.. {
            let mut vals = self.read(&[&key, &rkey]).await?;
            let (done, old) = (vals.pop().flatten(), vals.pop().flatten());
            if let Some(done) = done.filter(|_| !request.is_empty()) {
                return Ok(item_reply(id, &from_json(&rkey, &done)?));
            }
            let Some(old) = old else {
                return Err(Status::not_found(format!("item {id} not found")));
            };
            let mut rec: ItemRec = from_json(&key, &old)?;
            if rec.stock + delta < 0 {
                return Err(Status::failed_precondition(format!(
                    "out of stock: item {id} has {}, asked for {}",
                    rec.stock, -delta
                )));
            }
            rec.stock += delta;
            let new = to_json(&rec);
            let r = if request.is_empty() {
                self.store.client().cas(&key, Some(&old), Some(&new)).await
            } else {
                let compares = vec![cmd::compare(&key, Some(&old)), cmd::compare(&rkey, None)];
                let puts = vec![cmd::op_put(&key, &new), cmd::op_put(&rkey, &new)];
                self.store.client().txn(compares, puts, vec![]).await
            };
            if r.map_err(kv_error)?.succeeded {
                return Ok(item_reply(id, &rec));
            }
            lost_race(&self.clock, start, attempt, || format!("item {id}")).await?;
        }
        unreachable!("the loop ends by returning")
    }

    /// Takes the stock of every line for `tx`, all or nothing.
    async fn reserve(&self, tx: &str, lines: Vec<(String, i64)>) -> Result<pb::Vote, Status> {
        check_id("transaction", tx)?;
        let lines = keys::merge_lines(lines);
        for (item, qty) in &lines {
            check_id("item", item)?;
            if *qty <= 0 {
                return Err(Status::invalid_argument(format!(
                    "bad quantity {qty} of item {item}"
                )));
            }
        }
        let rkey = res_key(tx);
        let ikeys: Vec<String> = lines.iter().map(|(i, _)| item_key(i)).collect();
        let mut all: Vec<&str> = vec![&rkey];
        all.extend(ikeys.iter().map(|s| s.as_str()));
        let start = self.clock.now();
        // The first read decides refusals without queueing; a reservation
        // that looks possible takes the item locks and reads again.
        let mut guards = None;
        for attempt in 0.. {
            let vals = self.read(&all).await?;
            if let Some(r) = &vals[0] {
                let hold: Hold = from_json(&rkey, r)?;
                return Ok(match hold.state {
                    HoldState::Held | HoldState::Committed => vote_yes(),
                    HoldState::Released => vote_no(format!("transaction {tx} was aborted")),
                });
            }
            let mut compares = vec![cmd::compare(&rkey, None)];
            let mut puts = vec![];
            for (((item, qty), key), old) in lines.iter().zip(&ikeys).zip(&vals[1..]) {
                let Some(old) = old else {
                    return Ok(vote_no(format!("item {item} not found")));
                };
                let mut rec: ItemRec = from_json(key, old)?;
                if rec.stock < *qty {
                    return Ok(vote_no(format!(
                        "out of stock: item {item} has {}, order needs {qty}",
                        rec.stock
                    )));
                }
                rec.stock -= qty;
                compares.push(cmd::compare(key, Some(old)));
                puts.push(cmd::op_put(key, &to_json(&rec)));
            }
            if guards.is_none() && !self.unguarded {
                guards = Some(self.locks.lock(&ikeys).await);
                continue;
            }
            let hold = Hold::reserved(lines.clone());
            puts.push(cmd::op_put(&rkey, &to_json(&hold)));
            if self.unguarded {
                // The planted bug: write what was computed from the read,
                // whatever happened in between.
                compares.clear();
            }
            let r = self.store.client().txn(compares, puts, vec![]).await;
            if r.map_err(kv_error)?.succeeded {
                return Ok(vote_yes());
            }
            lost_race(&self.clock, start, attempt, || format!("reserve {tx}")).await?;
        }
        unreachable!("the loop ends by returning")
    }

    /// Gives `tx`'s reservation back; before any reservation, refuses it for good.
    async fn release(&self, tx: &str) -> Result<(), Status> {
        check_id("transaction", tx)?;
        let rkey = res_key(tx);
        let start = self.clock.now();
        let mut guards = None;
        for attempt in 0.. {
            let cur = self.read(&[&rkey]).await?.pop().flatten();
            let (compares, puts) = match &cur {
                None => {
                    let tomb = Hold::tombstone();
                    (
                        vec![cmd::compare(&rkey, None)],
                        vec![cmd::op_put(&rkey, &to_json(&tomb))],
                    )
                }
                Some(s) => {
                    let mut hold: Hold = from_json(&rkey, s)?;
                    match hold.state {
                        HoldState::Released => return Ok(()),
                        HoldState::Committed => {
                            return Err(Status::internal(format!(
                                "release of committed reservation {tx}"
                            )))
                        }
                        HoldState::Held => {}
                    }
                    let ikeys: Vec<String> = hold.lines.iter().map(|(i, _)| item_key(i)).collect();
                    if guards.is_none() {
                        guards = Some(self.locks.lock(&ikeys).await);
                        continue;
                    }
                    let refs: Vec<&str> = ikeys.iter().map(|s| s.as_str()).collect();
                    let vals = self.read(&refs).await?;
                    let mut compares = vec![cmd::compare(&rkey, Some(s))];
                    let mut puts = vec![];
                    for (((_, qty), key), old) in hold.lines.iter().zip(&ikeys).zip(&vals) {
                        let Some(old) = old else {
                            return Err(Status::internal(format!("reserved item {key} vanished")));
                        };
                        let mut rec: ItemRec = from_json(key, old)?;
                        rec.stock += qty;
                        compares.push(cmd::compare(key, Some(old)));
                        puts.push(cmd::op_put(key, &to_json(&rec)));
                    }
                    hold.state = HoldState::Released;
                    puts.push(cmd::op_put(&rkey, &to_json(&hold)));
                    (compares, puts)
                }
            };
            let r = self.store.client().txn(compares, puts, vec![]).await;
            if r.map_err(kv_error)?.succeeded {
                return Ok(());
            }
            lost_race(&self.clock, start, attempt, || format!("release {tx}")).await?;
        }
        unreachable!("the loop ends by returning")
    }

    async fn commit(&self, tx: &str) -> Result<(), Status> {
        check_id("transaction", tx)?;
        commit_hold(&self.store, &res_key(tx), tx).await
    }
}

pub(super) fn vote_yes() -> pb::Vote {
    pb::Vote {
        ok: true,
        reason: String::new(),
    }
}
pub(super) fn vote_no(reason: String) -> pb::Vote {
    pb::Vote { ok: false, reason }
}

/// How long a conditional update keeps retrying against concurrent writers.
const CONTENTION_LIMIT: Duration = Duration::from_secs(10);

/// After a compare-and-set lost to a concurrent writer: backs off before
/// attempt `attempt + 1`, or, past the contention limit, answers "not done".
/// `start`: when the first attempt began, on `clock` (which may have jumped
/// backwards since: then no time has passed).
pub(super) async fn lost_race(
    clock: &Clock,
    start: Duration,
    attempt: u32,
    what: impl FnOnce() -> String,
) -> Result<(), Status> {
    if clock.now().saturating_sub(start) > CONTENTION_LIMIT {
        return Err(Status::aborted(format!(
            "{}: too many concurrent updates, not done",
            what()
        )));
    }
    backoff(clock, attempt.min(3)).await;
    Ok(())
}

/// Held -> committed (2PC phase 2), idempotent.
pub(super) async fn commit_hold(store: &Store, key: &str, tx: &str) -> Result<(), Status> {
    loop {
        let cur = store
            .client()
            .read(&[key])
            .await
            .map_err(kv_error)?
            .pop()
            .flatten();
        let Some(s) = cur else {
            return Err(Status::internal(format!(
                "commit of unknown transaction {tx}"
            )));
        };
        let mut hold: Hold = from_json(key, &s)?;
        match hold.state {
            HoldState::Committed => return Ok(()),
            HoldState::Released => {
                return Err(Status::internal(format!(
                    "commit of aborted transaction {tx}"
                )))
            }
            HoldState::Held => {}
        }
        hold.state = HoldState::Committed;
        let r = store
            .client()
            .cas(key, Some(&s), Some(&to_json(&hold)))
            .await;
        if r.map_err(kv_error)?.succeeded {
            return Ok(());
        }
    }
}

/// Writes `n` records in transactions of at most 256 puts.
pub(super) async fn put_all(store: &Store, pairs: Vec<(String, String)>) -> Result<(), Status> {
    for chunk in pairs.chunks(256) {
        let puts = chunk.iter().map(|(k, v)| cmd::op_put(k, v)).collect();
        store
            .client()
            .txn(vec![], puts, vec![])
            .await
            .map_err(kv_error)?;
    }
    Ok(())
}

#[tonic::async_trait]
impl Stock for StockService {
    async fn create_item(
        &self,
        req: Request<pb::CreateItemRequest>,
    ) -> Result<Response<pb::ItemId>, Status> {
        let r = req.into_inner();
        let price = r.price;
        check_amount("price", price)?;
        keys::check_request(&r.request_id)?;
        let rec = to_json(&ItemRec { stock: 0, price });
        loop {
            // With a request id, the item's id is the request's: a create
            // sent again finds the item it made.
            let id = if r.request_id.is_empty() {
                super::random_id()
            } else {
                keys::id_of_request(&r.request_id)
            };
            let res = self
                .store
                .client()
                .cas(&item_key(&id), None, Some(&rec))
                .await;
            if res.map_err(kv_error)?.succeeded || !r.request_id.is_empty() {
                return Ok(Response::new(pb::ItemId { item_id: id }));
            }
        }
    }

    async fn batch_init(&self, req: Request<pb::ItemsInit>) -> Result<Response<pb::Empty>, Status> {
        let r = req.into_inner();
        check_amount("stock", r.stock)?;
        check_amount("price", r.price)?;
        if r.n > 1_000_000 {
            return Err(Status::invalid_argument(format!(
                "bad n {}: at most 10^6 items",
                r.n
            )));
        }
        let rec = to_json(&ItemRec {
            stock: r.stock,
            price: r.price,
        });
        let pairs = (0..r.n)
            .map(|i| (item_key(&i.to_string()), rec.clone()))
            .collect();
        put_all(&self.store, pairs).await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn find(&self, req: Request<pb::ItemId>) -> Result<Response<pb::Item>, Status> {
        let id = req.into_inner().item_id;
        check_id("item", &id)?;
        let key = item_key(&id);
        match self.read(&[&key]).await?.pop().flatten() {
            None => Err(Status::not_found(format!("item {id} not found"))),
            Some(s) => Ok(Response::new(item_reply(&id, &from_json(&key, &s)?))),
        }
    }

    async fn add(&self, req: Request<pb::StockChange>) -> Result<Response<pb::Item>, Status> {
        let r = req.into_inner();
        check_amount("amount", r.amount)?;
        Ok(Response::new(
            within(
                &self.clock,
                self.budget,
                self.change(&r.item_id, r.amount, &r.request_id),
            )
            .await?,
        ))
    }

    async fn subtract(&self, req: Request<pb::StockChange>) -> Result<Response<pb::Item>, Status> {
        let r = req.into_inner();
        check_amount("amount", r.amount)?;
        Ok(Response::new(
            within(
                &self.clock,
                self.budget,
                self.change(&r.item_id, -r.amount, &r.request_id),
            )
            .await?,
        ))
    }

    async fn reserve(
        &self,
        req: Request<pb::ReserveRequest>,
    ) -> Result<Response<pb::Vote>, Status> {
        let r = req.into_inner();
        let lines = r.lines.into_iter().map(|l| (l.item_id, l.qty)).collect();
        Ok(Response::new(
            within(
                &self.clock,
                self.budget,
                StockService::reserve(self, &r.tx_id, lines),
            )
            .await?,
        ))
    }

    async fn release(&self, req: Request<pb::TxRef>) -> Result<Response<pb::Empty>, Status> {
        within(
            &self.clock,
            self.budget,
            StockService::release(self, &req.into_inner().tx_id),
        )
        .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn commit(&self, req: Request<pb::TxRef>) -> Result<Response<pb::Empty>, Status> {
        within(
            &self.clock,
            self.budget,
            StockService::commit(self, &req.into_inner().tx_id),
        )
        .await?;
        Ok(Response::new(pb::Empty {}))
    }
}
