//! The `checkout` workload, shared by the simulator's scenario `checkout`
//! and the `jepsen` runner (real processes): the shop's fixtures (setup),
//! clients checking out (the course's consistency workload) or doing a mix
//! of every operation, each recorded as an operation of the history, the
//! whole shop read from its stores (`init` and `final`), and the wait for
//! every checkout to end after healing. Runs on whichever runtime it is
//! built for.

use bookstore::client::{ClientOptions, KvClient};
use bookstore::kv::cmd;
use bookstore::shop::checkout::TxRecord;
use bookstore::shop::keys::{self, ItemRec, OrderRec};
use bookstore::shop::rpc::Replicas;
use bookstore::shop::Topology;
use bookstore::shop_pb as pb;
use bookstore::shop_pb::{
    orders_client::OrdersClient, payment_client::PaymentClient, stock_client::StockClient,
};
use harness::recorder::{Completion, Recorder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;
use tonic::{Code, Status};

/// How long after healing every checkout has to terminate.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(40);

pub fn kv_options() -> ClientOptions {
    ClientOptions {
        attempt_timeout: Duration::from_millis(300),
        total_timeout: Duration::from_secs(3),
        read_timeout: Duration::from_millis(1500),
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        pipeline: false,
    }
}

/// A client of the three services (what the HTTP gateway does for real).
#[derive(Clone)]
pub struct Shop {
    pub stock: Replicas,
    pub payment: Replicas,
    pub orders: Replicas,
}

/// Generates a call to one service: `call!(self.stock, StockClient, find, req, idempotent)`.
macro_rules! call {
    ($r:expr, $client:ident, $method:ident, $req:expr, $idem:expr) => {{
        let req = $req;
        $r.call(Duration::from_secs(20), $idem, move |ch| {
            let req = req.clone();
            async move { $client::new(ch).$method(req).await }
        })
        .await
    }};
}

/// A write recorded with `value` as both its invocation and its answer;
/// not idempotent (a call of unknown outcome is not sent again).
macro_rules! write_op {
    ($rec:expr, $p:expr, $f:expr, $value:expr, $r:expr, $client:ident, $method:ident, $req:expr) => {{
        let v = $value;
        $rec.op($p, $f, None, v.clone(), async {
            let r = call!($r, $client, $method, $req, false);
            completion(v.clone(), &r, |_| v.clone())
        })
        .await;
    }};
}

impl Shop {
    /// Clients of the topology's service replicas. A checkout may take up
    /// to the service's deadline (10 s) to answer.
    pub fn new(t: &Topology) -> Shop {
        let rpc = Duration::from_secs(12);
        Shop {
            stock: Replicas::new(t.stock.clone(), rpc),
            payment: Replicas::new(t.payment.clone(), rpc),
            orders: Replicas::new(t.orders.clone(), rpc),
        }
    }
}

/// After healing: waits (up to [`LIVENESS_BOUND`]) until no checkout is in
/// flight, reads the final state, and compares each store group's
/// replicas at one applied index. Returns (the final state, liveness
/// failures, divergences).
pub async fn after_heal(
    shop: &Shop,
    t: &Topology,
) -> (Result<Value, String>, Vec<String>, Vec<String>) {
    let mut failures = Vec::new();
    let deadline = Instant::now() + LIVENESS_BOUND;
    let mut last;
    loop {
        match call!(
            shop.orders,
            OrdersClient,
            in_flight,
            pb::InFlightRequest {},
            true
        ) {
            Ok(r) if r.count == 0 => {
                // The order service answers from its `open/` index, which
                // must now be empty: an entry left behind by a finished
                // checkout is never removed, and every later look of the
                // recovery loop reads its record again. (An entry missing
                // for an unfinished checkout shows in the final state's
                // `in_flight`, which counts the records themselves.)
                match scan(&t.order_kv, keys::OPEN, 1 << 44).await {
                    Ok(open) if !open.is_empty() => failures.push(format!(
                        "no checkout in flight after healing, but the order group's {} index still names {} of them: {:?}",
                        keys::OPEN,
                        open.len(),
                        open.iter().take(5).map(|(k, _)| k).collect::<Vec<_>>()
                    )),
                    Ok(_) => {}
                    Err(e) => failures.push(format!("could not read the {} index: {e}", keys::OPEN)),
                }
                break;
            }
            Ok(r) => {
                last = format!(
                    "{} checkouts in flight: {:?}",
                    r.count,
                    &r.orders[..r.orders.len().min(5)]
                )
            }
            Err(e) => last = format!("in-flight query failed: {}", e.message()),
        }
        if Instant::now() >= deadline {
            failures.push(format!(
                "checkouts did not terminate within {LIVENESS_BOUND:?} after healing: {last}; phases: {}",
                phases(t).await
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let fin = read_state(t, 1 << 41).await;
    // Each store group's replicas must agree at one applied index.
    let diverged = crate::replicas::compare_groups(
        &[
            ("stock", &t.stock_kv),
            ("payment", &t.payment_kv),
            ("orders", &t.order_kv),
        ],
        kv_options(),
    )
    .await;
    (fin, failures, diverged)
}

/// Fills the stores through the services (and, for the 1000 one-item
/// orders of the consistency workload, straight into the order group: a
/// fixture, the same records `Orders.Create` + `AddItem` would write).
pub async fn setup(shop: &Shop, t: &Topology, workload: &str, seed: u64) {
    let retry = |what: &'static str| move |e: Status| panic!("setup: {what} failed: {e}");
    if workload == "consistency" {
        let r = call!(
            shop.stock,
            StockClient,
            batch_init,
            pb::ItemsInit {
                n: 1,
                stock: 100,
                price: 1
            },
            true
        );
        r.unwrap_or_else(retry("stock batch_init"));
        let r = call!(
            shop.payment,
            PaymentClient,
            batch_init,
            pb::UsersInit { n: 1000, credit: 1 },
            true
        );
        r.unwrap_or_else(retry("payment batch_init"));
        let mut kv = KvClient::new(t.order_kv.clone(), 1 << 39, kv_options());
        for chunk in (0..1000u64).collect::<Vec<_>>().chunks(250) {
            let puts = chunk
                .iter()
                .map(|i| {
                    let o = OrderRec {
                        user: i.to_string(),
                        items: vec![("0".into(), 1)],
                        total: 1,
                        paid: false,
                    };
                    cmd::op_put(&format!("{}{i}", keys::ORDER), &keys::to_json(&o))
                })
                .collect();
            kv.txn(vec![], puts, vec![])
                .await
                .expect("setup: order fixture");
        }
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5e7);
        let items = rng.random_range(2..=5);
        let stock = rng.random_range(5..=60);
        let price = rng.random_range(1..=10);
        let r = call!(
            shop.stock,
            StockClient,
            batch_init,
            pb::ItemsInit {
                n: items,
                stock,
                price
            },
            true
        );
        r.unwrap_or_else(retry("stock batch_init"));
        let users = rng.random_range(3..=20);
        let credit = rng.random_range(10..=200);
        let r = call!(
            shop.payment,
            PaymentClient,
            batch_init,
            pb::UsersInit { n: users, credit },
            true
        );
        r.unwrap_or_else(retry("payment batch_init"));
        let req = pb::OrdersInit {
            n: rng.random_range(5..=60),
            n_items: items,
            n_users: users,
            item_price: price,
        };
        let r = call!(shop.orders, OrdersClient, batch_init, req, true);
        r.unwrap_or_else(retry("orders batch_init"));
    }
}

/// How many unfinished checkouts are in each phase (for a liveness failure).
pub async fn phases(t: &Topology) -> String {
    let mut kv = KvClient::new(t.order_kv.clone(), 1 << 42, kv_options());
    match kv.scan(keys::TX).await {
        Ok(all) => {
            let mut count: BTreeMap<String, u64> = BTreeMap::new();
            for (_, v) in all {
                if let Ok(r) = serde_json::from_str::<TxRecord>(&v) {
                    if !r.terminal() {
                        *count.entry(format!("{:?}", r.phase)).or_default() += 1;
                    }
                }
            }
            format!("{count:?}")
        }
        Err(e) => format!("(scan failed: {e})"),
    }
}

/// A linearizable scan of `prefix` as client `id`, tried up to 20 times.
pub async fn scan(
    nodes: &BTreeMap<u64, String>,
    prefix: &str,
    id: u64,
) -> Result<Vec<(String, String)>, String> {
    let mut kv = KvClient::new(nodes.clone(), id, kv_options());
    let mut last = String::new();
    for _ in 0..20 {
        match kv.scan(prefix).await {
            Ok(v) => return Ok(v),
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("scan {prefix}: {last}"))
}

/// Reads the whole shop from the three store groups (linearizable scans).
pub async fn read_state(t: &Topology, client_id: u64) -> Result<Value, String> {
    let mut items = Map::new();
    for (k, v) in scan(&t.stock_kv, keys::ITEM, client_id).await? {
        let r: ItemRec = serde_json::from_str(&v).map_err(|e| format!("{k}: {e}"))?;
        items.insert(
            k[keys::ITEM.len()..].to_string(),
            json!({"stock": r.stock, "price": r.price}),
        );
    }
    let mut users = Map::new();
    for (k, v) in scan(&t.payment_kv, keys::USER, client_id + 1).await? {
        let c: i64 = v.parse().map_err(|e| format!("{k}: {e}"))?;
        users.insert(k[keys::USER.len()..].to_string(), json!(c));
    }
    let mut orders = Map::new();
    for (k, v) in scan(&t.order_kv, keys::ORDER, client_id + 2).await? {
        let o: OrderRec = serde_json::from_str(&v).map_err(|e| format!("{k}: {e}"))?;
        orders.insert(
            k[keys::ORDER.len()..].to_string(),
            json!({"user": o.user, "items": o.items, "total": o.total, "paid": o.paid}),
        );
    }
    let mut in_flight = 0;
    for (k, v) in scan(&t.order_kv, keys::TX, client_id + 3).await? {
        let r: TxRecord = serde_json::from_str(&v).map_err(|e| format!("{k}: {e}"))?;
        in_flight += u64::from(!r.terminal());
    }
    Ok(json!({"items": items, "users": users, "orders": orders, "in_flight": in_flight}))
}

/// How an answer goes into the history: ok; a business refusal (certainly
/// no effect) is `fail`; "certainly not done" is `fail` with an `error`;
/// anything else is unknown (`info`).
pub fn completion<T>(
    value: Value,
    r: &Result<T, Status>,
    ok_value: impl FnOnce(&T) -> Value,
) -> Completion {
    match r {
        Ok(v) => Completion::ok(ok_value(v)),
        Err(e)
            if matches!(
                e.code(),
                Code::NotFound | Code::FailedPrecondition | Code::InvalidArgument
            ) =>
        {
            let mut v = value;
            v["reason"] = json!(e.message());
            Completion::fail(v, None)
        }
        Err(e) if e.code() == Code::Aborted => {
            Completion::fail(value, Some(e.message().to_string()))
        }
        Err(e) => Completion::unknown(value, format!("{:?}: {}", e.code(), e.message())),
    }
}

pub async fn checkout(shop: &Shop, rec: &Recorder, p: u64, order: &str) {
    let v = json!({"order": order});
    rec.op(p, "checkout", None, v.clone(), async {
        let r = call!(
            shop.orders,
            OrdersClient,
            checkout,
            pb::OrderId {
                order_id: order.into(),
                attempt: String::new(),
            },
            false
        );
        completion(v.clone(), &r, |_| v.clone())
    })
    .await;
}

fn pick(rng: &mut ChaCha8Rng, m: &Value) -> String {
    let keys: Vec<&String> = m
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    if keys.is_empty() {
        return "none".into();
    }
    keys[rng.random_range(0..keys.len())].clone()
}

pub async fn mix_op(shop: &Shop, rec: &Recorder, p: u64, init: &Value, rng: &mut ChaCha8Rng) {
    let item = pick(rng, &init["items"]);
    let user = pick(rng, &init["users"]);
    let order = pick(rng, &init["orders"]);
    let amount = rng.random_range(1..=20i64);
    match rng.random_range(0..100) {
        0..=39 => checkout(shop, rec, p, &order).await,
        40..=47 => write_op!(
            rec,
            p,
            "add_stock",
            json!({"item": item, "amount": amount}),
            shop.stock,
            StockClient,
            add,
            pb::StockChange {
                item_id: item,
                amount,
                request_id: String::new(),
            }
        ),
        48..=55 => write_op!(
            rec,
            p,
            "subtract_stock",
            json!({"item": item, "amount": amount}),
            shop.stock,
            StockClient,
            subtract,
            pb::StockChange {
                item_id: item,
                amount,
                request_id: String::new(),
            }
        ),
        56..=63 => write_op!(
            rec,
            p,
            "add_funds",
            json!({"user": user, "amount": amount}),
            shop.payment,
            PaymentClient,
            add_funds,
            pb::CreditChange {
                user_id: user,
                amount,
                request_id: String::new(),
            }
        ),
        64..=71 => write_op!(
            rec,
            p,
            "pay",
            json!({"user": user, "amount": amount}),
            shop.payment,
            PaymentClient,
            pay,
            pb::CreditChange {
                user_id: user,
                amount,
                request_id: String::new(),
            }
        ),
        72..=77 => {
            let qty = rng.random_range(1..=3i64);
            write_op!(
                rec,
                p,
                "add_item",
                json!({"order": order, "item": item, "qty": qty}),
                shop.orders,
                OrdersClient,
                add_item,
                pb::AddItemRequest {
                    order_id: order,
                    item_id: item,
                    quantity: qty,
                    request_id: String::new(),
                }
            )
        }
        78..=85 => {
            let v = json!({"item": item});
            rec.op(p, "find_item", None, v.clone(), async {
                let r = call!(
                    shop.stock,
                    StockClient,
                    find,
                    pb::ItemId {
                        item_id: item.clone()
                    },
                    true
                );
                completion(
                    v,
                    &r,
                    |i| json!({"item": item, "stock": i.stock, "price": i.price}),
                )
            })
            .await;
        }
        86..=93 => {
            let v = json!({"user": user});
            rec.op(p, "find_user", None, v.clone(), async {
                let r = call!(
                    shop.payment,
                    PaymentClient,
                    find,
                    pb::UserId {
                        user_id: user.clone()
                    },
                    true
                );
                completion(v, &r, |u| json!({"user": user, "credit": u.credit}))
            })
            .await;
        }
        _ => {
            let v = json!({"order": order});
            rec.op(p, "find_order", None, v.clone(), async {
            let r = call!(
                shop.orders,
                OrdersClient,
                find,
                pb::OrderId {
                    order_id: order.clone(),
                    attempt: String::new(),
                },
                true
            );
            completion(v, &r, |o| {
                let items: Vec<(String, i64)> =
                    o.items.iter().map(|l| (l.item_id.clone(), l.qty)).collect();
                json!({"order": order, "paid": o.paid, "items": items, "user": o.user_id, "total": o.total_cost})
            })
}).await;
        }
    }
}
