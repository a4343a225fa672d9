//! The order queue: approved orders, durable in the state group (a Raft KV
//! group), taken by the executors (part 2) with a lease.
//!
//! Order: by priority first — `Next-Day` (0) before `Express` (1) before
//! `Standard` (2), from the checkout's shipping method — then first in,
//! first out within a priority (a sequence number drawn from one counter).
//!
//! Keys:
//! - `queue/seq`: the last sequence number given;
//! - `queue/item/<priority>/<seq, 20 digits>`: a queued order (JSON
//!   [`QueuedOrder`]); the keys sort in dequeue order;
//! - `queue/order/<order id>`: the order's item key, kept after the item is
//!   acknowledged (`done`), so enqueueing an order twice adds it once;
//! - `queue/lease/<item key>`: who holds the item and until when (JSON
//!   [`Lease`]), with the holder's fencing token;
//! - `queue/fence`: the highest fencing token a dequeue or an
//!   acknowledgement carried: a lower one is refused (an executor that
//!   lost its leadership, paused or with a slow clock, can no longer take
//!   or remove items once a newer leader has);
//! - `order/<order id>`: the order's status for `GET /orders/<id>`.
//!
//! Enqueue is one transaction guarded by compares on the sequence counter
//! and on the orders' absence (the orchestrator batches the orders
//! approved meanwhile into one); a dequeue takes the first item with no lease
//! or an expired one by a compare on the lease it saw; an acknowledgement
//! deletes the item only if the caller's lease is still the item's. A
//! dequeued order whose lease expires unacknowledged is given out again.
//! Lease times are the dequeuer's wall clock; fencing tokens guard against
//! dequeuers whose clock is wrong.

use crate::client::{ClientError, KvClient};
use crate::kv::cmd;
use serde::{Deserialize, Serialize};
use tartu_core::Shipping;

/// A queued order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedOrder {
    pub order_id: String,
    pub shipping: Shipping,
    /// The checkout, as parsed (JSON).
    pub order: serde_json::Value,
    pub amount_cents: i64,
    pub enqueued_ms: u64,
}

/// Who holds a dequeued item, until when, with which fencing token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub until_ms: u64,
    pub token: u64,
}

/// An item given to a dequeuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leased {
    pub key: String,
    pub order: QueuedOrder,
    pub lease: Lease,
}

/// An order's status, as `GET /orders/<id>` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderStatus {
    pub order_id: String,
    /// queued, executing, executed, failed
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub shipping_method: String,
    pub priority: u8,
    pub amount_cents: i64,
}

pub fn status_key(order_id: &str) -> String {
    format!("order/{order_id}")
}

pub fn item_key(shipping: Shipping, seq: u64) -> String {
    format!("queue/item/{}/{seq:020}", shipping.priority())
}

fn order_key(order_id: &str) -> String {
    format!("queue/order/{order_id}")
}

fn lease_key(item: &str) -> String {
    format!("queue/lease/{item}")
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> ClientError {
    ClientError::Failed(format!("the queue's {what} is not valid: {e}"))
}

/// Enqueues an order (once: a second call for the same order id returns
/// the first one's key and `false`). Sets the order's status to `queued`.
pub async fn enqueue(kv: &mut KvClient, q: &QueuedOrder) -> Result<(String, bool), ClientError> {
    Ok(enqueue_batch(kv, std::slice::from_ref(q)).await?.remove(0))
}

/// Enqueues several orders in one transaction, in the given order (each
/// once: an order already queued keeps its first key, with `false`). One
/// writer batching its orders pays one round of the store per batch, not
/// one per order, and never races itself for the sequence counter.
pub async fn enqueue_batch(
    kv: &mut KvClient,
    batch: &[QueuedOrder],
) -> Result<Vec<(String, bool)>, ClientError> {
    loop {
        let okeys: Vec<String> = batch.iter().map(|q| order_key(&q.order_id)).collect();
        let mut keys: Vec<&str> = vec!["queue/seq"];
        keys.extend(okeys.iter().map(String::as_str));
        let got = kv.read(&keys).await?;
        let mut seq: u64 = match &got[0] {
            Some(s) => s.parse().map_err(|e| corrupt("sequence counter", e))?,
            None => 0,
        };
        let mut out = Vec::new();
        let mut compares = vec![cmd::compare("queue/seq", got[0].as_deref())];
        let mut ops = Vec::new();
        let mut fresh = std::collections::BTreeMap::new();
        for (q, (okey, old)) in batch.iter().zip(okeys.iter().zip(&got[1..])) {
            if let Some(key) = old {
                out.push((key.clone(), false));
                continue;
            }
            // The same order twice in one batch: queued once.
            if let Some(key) = fresh.get(okey) {
                out.push((String::clone(key), false));
                continue;
            }
            seq += 1;
            let key = item_key(q.shipping, seq);
            let status = OrderStatus {
                order_id: q.order_id.clone(),
                status: "queued".into(),
                reason: None,
                shipping_method: q.shipping.name().into(),
                priority: q.shipping.priority(),
                amount_cents: q.amount_cents,
            };
            compares.push(cmd::compare(okey, None));
            ops.push(cmd::op_put(
                &key,
                &serde_json::to_string(q).expect("serialises"),
            ));
            ops.push(cmd::op_put(okey, &key));
            ops.push(cmd::op_put(
                &status_key(&q.order_id),
                &serde_json::to_string(&status).expect("serialises"),
            ));
            fresh.insert(okey.clone(), key.clone());
            out.push((key, true));
        }
        if ops.is_empty() {
            return Ok(out);
        }
        ops.push(cmd::op_put("queue/seq", &seq.to_string()));
        if kv.txn(compares, ops, vec![]).await?.succeeded {
            return Ok(out);
        }
    }
}

/// Every queued item (acknowledged ones are gone), in dequeue order.
pub async fn list(kv: &mut KvClient) -> Result<Vec<(String, QueuedOrder)>, ClientError> {
    kv.scan("queue/item/")
        .await?
        .into_iter()
        .map(|(k, v)| Ok((k, serde_json::from_str(&v).map_err(|e| corrupt("item", e))?)))
        .collect()
}

/// Takes the first item with no lease or an expired one (by `now_ms`),
/// leasing it to `owner` until `now_ms + lease_ms` under the caller's
/// fencing `token`. None if every item is leased (or the queue is empty).
/// A token lower than one the queue has seen (`queue/fence`) is refused:
/// [`ClientError::Failed`] starting with "stale fencing token".
pub async fn dequeue(
    kv: &mut KvClient,
    owner: &str,
    token: u64,
    now_ms: u64,
    lease_ms: u64,
) -> Result<Option<Leased>, ClientError> {
    Ok(dequeue_many(kv, owner, token, now_ms, lease_ms, 1)
        .await?
        .pop())
}

/// [`dequeue`] of up to `max` items at once (the first free ones, in
/// queue order), leased in one transaction.
pub async fn dequeue_many(
    kv: &mut KvClient,
    owner: &str,
    token: u64,
    now_ms: u64,
    lease_ms: u64,
    max: usize,
) -> Result<Vec<Leased>, ClientError> {
    loop {
        let items = kv.scan("queue/item/").await?;
        let leases: std::collections::BTreeMap<String, String> =
            kv.scan("queue/lease/").await?.into_iter().collect();
        let fence = kv.get("queue/fence").await?;
        check_fence(fence.as_deref(), token)?;
        let lease = Lease {
            owner: owner.to_string(),
            until_ms: now_ms + lease_ms,
            token,
        };
        let lease_json = serde_json::to_string(&lease).expect("serialises");
        let mut taken = Vec::new();
        let mut compares = vec![cmd::compare("queue/fence", fence.as_deref())];
        let mut ops = vec![cmd::op_put("queue/fence", &token.to_string())];
        for (key, raw) in items {
            if taken.len() >= max {
                break;
            }
            let lk = lease_key(&key);
            let old = leases.get(&lk);
            let held = match old {
                None => None,
                Some(v) => Some(serde_json::from_str::<Lease>(v).map_err(|e| corrupt("lease", e))?),
            };
            if held.as_ref().is_some_and(|l| l.until_ms > now_ms) {
                continue;
            }
            let order: QueuedOrder = serde_json::from_str(&raw).map_err(|e| corrupt("item", e))?;
            compares.push(cmd::compare(&lk, old.map(String::as_str)));
            // Still queued (not acknowledged meanwhile).
            compares.push(cmd::compare(&key, Some(&raw)));
            ops.push(cmd::op_put(&lk, &lease_json));
            taken.push(Leased {
                key,
                order,
                lease: lease.clone(),
            });
        }
        if taken.is_empty() {
            return Ok(taken);
        }
        if kv.txn(compares, ops, vec![]).await?.succeeded {
            return Ok(taken);
        }
    }
}

/// Removes a leased item for good, if `lease` is still its lease (false if
/// the lease expired and someone else took the item, or it is gone).
/// `status` becomes the order's status.
pub async fn ack(
    kv: &mut KvClient,
    leased: &Leased,
    status: &OrderStatus,
) -> Result<bool, ClientError> {
    let lk = lease_key(&leased.key);
    let fence = kv.get("queue/fence").await?;
    check_fence(fence.as_deref(), leased.lease.token)?;
    let r = kv
        .txn(
            vec![
                cmd::compare(
                    &lk,
                    Some(&serde_json::to_string(&leased.lease).expect("serialises")),
                ),
                cmd::compare("queue/fence", fence.as_deref()),
            ],
            vec![
                cmd::op_delete(&leased.key),
                cmd::op_delete(&lk),
                cmd::op_put(&order_key(&leased.order.order_id), "done"),
                cmd::op_put(
                    &status_key(&leased.order.order_id),
                    &serde_json::to_string(status).expect("serialises"),
                ),
            ],
            vec![],
        )
        .await?;
    Ok(r.succeeded)
}

/// Refuses a token lower than the queue's fence.
fn check_fence(fence: Option<&str>, token: u64) -> Result<(), ClientError> {
    let f: u64 = match fence {
        Some(f) => f.parse().map_err(|e| corrupt("fence", e))?,
        None => 0,
    };
    if token < f {
        return Err(ClientError::Failed(format!(
            "stale fencing token {token}: the queue has seen {f}"
        )));
    }
    Ok(())
}

/// An order's status (None: no such order was queued).
pub async fn status(kv: &mut KvClient, order_id: &str) -> Result<Option<OrderStatus>, ClientError> {
    match kv.get(&status_key(order_id)).await? {
        None => Ok(None),
        Some(v) => Ok(Some(
            serde_json::from_str(&v).map_err(|e| corrupt("order status", e))?,
        )),
    }
}
