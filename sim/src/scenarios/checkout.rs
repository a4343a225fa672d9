//! Scenario `checkout`: the whole shop under the nemesis.
//!
//! Topology: three Raft KV groups of three replicas (stock on hosts 1-3,
//! payment 4-6, orders 7-9) and two replicas of each service (stock 10-11,
//! payment 12-13, orders 14-15); the schedule's faults hit any of them.
//! The checkout mode (SAGA or 2PC) and the workload come from the seed:
//! - `consistency`: one item with stock 100 and price 1, 1000 users with
//!   credit 1, 1000 one-item orders, all checked out concurrently: exactly
//!   the orders that got stock and money may be paid;
//! - `mix`: a few items, users and orders, and random operations of every
//!   kind (checkout, add/subtract stock, add funds, pay, add item, finds).
//!
//! The initial state is read from the stores after setup and recorded as the
//! `init` event; after the workload everything heals, every unfinished
//! checkout must terminate within a bound (liveness), and the state read
//! then is the `final` event. The history is checked with the checkout
//! invariants (`shopcheck`: conservation of stock and money, answers
//! against the final state, nothing left in flight) and the store groups'
//! node events with the Raft checks. Every host, the services' included,
//! has its own clock, which the clock faults skew and jump.

use crate::raft::{self, Raft, RaftFaults, PORT};
use bookstore::client::{ClientOptions, KvClient};
use bookstore::kv::cmd;
use bookstore::shop::checkout::TxRecord;
use bookstore::shop::keys::{self, ItemRec, OrderRec};
use bookstore::shop::rpc::Replicas;
use bookstore::shop::{Group, Mode, ServiceConfig, Topology};
use bookstore::shop_pb as pb;
use bookstore::shop_pb::{
    orders_client::OrdersClient, payment_client::PaymentClient, stock_client::StockClient,
};
use checker::history::History;
use harness::nemesis::Nemesis;
use harness::recorder::{Completion, Recorder};
use harness::runner::RunResult;
use harness::scenario::{Failure, Floor, Param, RunCtx, RunFuture, Scenario, Verdicts};
use harness::schedule::{Draw, FaultSelection, Schedule, Targets};
use harness::sim::{addr, Sim};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;
use tonic::{Code, Status};

/// How long after healing every checkout has to terminate.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(40);

fn kv_options() -> ClientOptions {
    ClientOptions {
        attempt_timeout: Duration::from_millis(300),
        total_timeout: Duration::from_secs(3),
        read_timeout: Duration::from_millis(1500),
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
    }
}

/// A client of the three services (what the HTTP gateway does for real).
#[derive(Clone)]
struct Shop {
    stock: Replicas,
    payment: Replicas,
    orders: Replicas,
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

/// Hosts: three store groups of three (1-3 stock, 4-6 payment, 7-9
/// orders), then two replicas of each service (10-11 stock, 12-13
/// payment, 14-15 orders). Faults pick among all of them.
pub const HOSTS: u64 = 15;

pub struct Checkout;

impl Scenario for Checkout {
    fn name(&self) -> &'static str {
        "checkout"
    }

    fn about(&self) -> &'static str {
        "the whole shop (3 store groups, 6 service replicas) under checkouts, SAGA or 2PC; shop invariants and Raft checks"
    }

    fn fault_kinds(&self) -> Vec<&'static str> {
        raft::KINDS.to_vec()
    }

    fn bugs(&self) -> Vec<&'static str> {
        let mut b = bookstore::bugs::ALL.to_vec();
        b.extend(bookstore::bugs::SHOP);
        b
    }

    fn params(&self) -> Vec<Param> {
        vec![
            Param {
                name: "mode",
                help: "saga or 2pc (default: drawn from the seed)",
            },
            Param {
                name: "workload",
                help: "consistency or mix (default: drawn from the seed)",
            },
        ]
    }

    fn generate(&self, seed: u64, bug: Option<&str>, faults: &FaultSelection) -> Schedule {
        let mut d = Draw::new(seed);
        // Drawn and not used, so that every later draw is as it always was.
        let _ = d.rng.random_bool(0.7);
        let duration_ms = 20_000;
        let targets = Targets { hosts: HOSTS };
        let (config, faults) = raft::draw_faults(&mut d, seed, faults, &targets, duration_ms);
        let _ = d.rng.random_range(3..=6u64);
        let mode = if d.rng.random_bool(0.5) {
            "saga"
        } else {
            "2pc"
        };
        let workload = if d.rng.random_bool(0.5) {
            "consistency"
        } else {
            "mix"
        };
        // 1000 checkouts need enough concurrency to finish in time.
        let clients = if workload == "consistency" {
            d.rng.random_range(16..=64)
        } else {
            d.rng.random_range(4..=24)
        };
        let _keys = d.rng.random_range(1..=4u64);
        let max_batch: usize = [1, 2, 4, 64][d.rng.random_range(0..4)];
        let mut s = Schedule {
            scenario: "checkout".into(),
            seed,
            bug: bug.map(str::to_string),
            nodes: HOSTS,
            clients,
            ops_per_client: 10_000,
            duration_ms,
            config,
            faults,
            params: Default::default(),
        };
        s.set_param("max_batch", max_batch);
        s.set_param("mode", mode);
        s.set_param("workload", workload);
        s
    }

    fn set_param(&self, s: &mut Schedule, name: &str, value: &str) -> Result<(), String> {
        match name {
            "mode" => {
                Mode::by_name(value)?;
            }
            "workload" => {
                if value != "consistency" && value != "mix" {
                    return Err(format!(
                        "unknown workload '{value}': expected consistency or mix"
                    ));
                }
            }
            _ => return Err(format!("scenario checkout has no option --{name}")),
        }
        s.set_param(name, value);
        Ok(())
    }

    fn describe(&self, s: &Schedule) -> Vec<String> {
        vec![format!(
            "checkout mode {}, workload {}",
            mode(s),
            workload(s)
        )]
    }

    fn run<'a>(&'a self, s: &'a Schedule, ctx: RunCtx) -> RunFuture<'a> {
        Box::pin(run(s, ctx))
    }

    fn check(&self, _: &Schedule, history: &History) -> Verdicts {
        let mut failures = Vec::new();
        // Only with a final state: without one, liveness already failed.
        if history.ops.iter().any(|o| o.f == "final") {
            let r = shopcheck::invariants::check_checkout(history);
            match r.verdict {
                shopcheck::invariants::Verdict::Valid => {}
                shopcheck::invariants::Verdict::Invalid => {
                    for v in r.violations.iter().take(10) {
                        failures.push(Failure::new(
                            "invariants",
                            format!("{}: {}", v.kind.name(), v.message),
                        ));
                    }
                }
                shopcheck::invariants::Verdict::BadInput => failures.push(Failure::new(
                    "invariants",
                    format!("history not checkable: {}", r.error.unwrap_or_default()),
                )),
            }
        }
        Verdicts {
            failures,
            lin: None,
        }
    }

    fn floors(&self) -> Vec<Floor> {
        let saga = |s: &Schedule| mode(s) == "saga";
        let two_pc = |s: &Schedule| mode(s) == "2pc";
        let mut f = raft::floors();
        f.extend([
            Floor::new("shop: a saga compensation", 0.4).when(saga),
            Floor::new("shop: a 2pc abort", 0.4).when(two_pc),
            Floor::new("shop: the recovery loop took over a checkout", 0.35),
            Floor::new(
                "shop: a 2pc commit not delivered at once (a participant did not answer)",
                0.1,
            )
            .when(two_pc),
            Floor::new("shop: 2pc decided while a participant did not answer", 0.01).when(two_pc),
        ]);
        f
    }

    /// The invariants report, with the Raft section of the failing store
    /// group (hosts 1-3, 4-6, 7-9, see `run`) and the divergence section
    /// on top when those checks failed.
    fn report(&self, r: &RunResult, title: &str) -> Option<String> {
        let inv = shopcheck::invariants::check_checkout(&r.history);
        let page = shopcheck::invariants_html(&r.history, &inv, title);
        let groups: [&[u64]; 3] = [&[1, 2, 3], &[4, 5, 6], &[7, 8, 9]];
        Some(crate::explain::report_above_groups(page, r, &groups))
    }
}

fn mode(s: &Schedule) -> String {
    s.param("mode").unwrap_or_else(|| "saga".into())
}

fn workload(s: &Schedule) -> String {
    s.param("workload").unwrap_or_else(|| "consistency".into())
}

async fn run(s: &Schedule, ctx: RunCtx) -> Vec<String> {
    let rec = ctx.rec.clone();
    // Topology.
    let mode = Mode::by_name(&mode(s)).expect("mode validated by the CLI");
    let bugs = raft::bugs_of(s);
    let max_batch = s.param("max_batch").unwrap_or(64);
    let mut sim = Sim::new(s.seed);
    let raft = Raft::new(&ctx);
    let topology = Topology {
        stock_kv: raft.add_group(&mut sim, &[1, 2, 3], bugs, s.seed, max_batch, 200),
        payment_kv: raft.add_group(&mut sim, &[4, 5, 6], bugs, s.seed, max_batch, 200),
        order_kv: raft.add_group(&mut sim, &[7, 8, 9], bugs, s.seed, max_batch, 200),
        stock: vec![addr(10, PORT), addr(11, PORT)],
        payment: vec![addr(12, PORT), addr(13, PORT)],
        orders: vec![addr(14, PORT), addr(15, PORT)],
    };
    let mut cfg = ServiceConfig::new(topology.clone(), mode);
    cfg.bugs = bugs;
    cfg.kv_options = kv_options();
    let services = [
        (10, Group::Stock),
        (11, Group::Stock),
        (12, Group::Payment),
        (13, Group::Payment),
        (14, Group::Orders),
        (15, Group::Orders),
    ];
    for (id, group) in services {
        let cfg = cfg.clone();
        sim.host(id, format!("{}-{id}", group.name()), move |env| {
            // The service reads time only through its host's clock.
            let mut cfg = cfg.clone();
            cfg.clock = env.clock.clone();
            async move {
                let a = std::net::SocketAddr::new(env.ip, PORT);
                if let Err(e) =
                    bookstore::shop::orders::serve(group, cfg, a, std::future::pending()).await
                {
                    panic!("{} service on host {id} stopped: {e:#}", group.name());
                }
            }
        });
    }
    // A checkout may take up to the service's deadline (10 s) to answer.
    let rpc = Duration::from_secs(12);
    let shop = Shop {
        stock: Replicas::new(topology.stock.clone(), rpc),
        payment: Replicas::new(topology.payment.clone(), rpc),
        orders: Replicas::new(topology.orders.clone(), rpc),
    };

    // Setup (before any fault), then the initial state as the stores hold it.
    let workload = workload(s);
    let host = sim.client(200);
    let (shop2, topo2, w2, seed) = (shop.clone(), topology.clone(), workload.clone(), s.seed);
    let init = host
        .spawn(async move {
            setup(&shop2, &topo2, &w2, seed).await;
            read_state(&topo2, 1 << 40).await
        })
        .await
        .expect("setup task");
    let Ok(init) = init else {
        return vec![format!(
            "setup: could not read the initial state: {}",
            init.unwrap_err()
        )];
    };
    rec.named("setup", "init", init.clone());

    // Workload and nemesis.
    let stop_at = Instant::now() + Duration::from_millis(s.duration_ms);
    let mut clients = Vec::new();
    let n_orders = init["orders"].as_object().map_or(0, |o| o.len()) as u64;
    for p in 0..s.clients {
        let host = sim.client(p + 1);
        let (shop, rec, w, max_ops) = (
            shop.clone(),
            rec.clone(),
            workload.clone(),
            s.ops_per_client,
        );
        let (init, clients_n, seed) = (init.clone(), s.clients, s.seed);
        clients.push(host.spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(131).wrapping_add(p));
            if w == "consistency" {
                // Client p checks out orders p, p + C, p + 2C, ... all of
                // them, even after the fault phase.
                let mut o = p;
                while o < n_orders {
                    checkout(&shop, &rec, p, &o.to_string()).await;
                    o += clients_n;
                }
            } else {
                for _ in 0..max_ops.min(200) {
                    if Instant::now() >= stop_at {
                        break;
                    }
                    mix_op(&shop, &rec, p, &init, &mut rng).await;
                }
            }
        }));
    }
    let plugin = RaftFaults(raft.clone());
    let mut nemesis = Nemesis {
        sim: &mut sim,
        rec: &rec,
        triggers: &ctx.triggers,
        plugin: &plugin,
    };
    nemesis.play(&s.faults, s.duration_ms).await;
    for c in clients {
        c.await.expect("client task");
    }

    // Heal; every checkout must terminate; then the final state.
    sim.heal_all();
    rec.nemesis("heal-all", Value::Null);
    let host = sim.client(201);
    let (shop2, topo2) = (shop.clone(), topology.clone());
    let (fin, failures, diverged) = host
        .spawn(async move {
            let mut failures = Vec::new();
            let deadline = Instant::now() + LIVENESS_BOUND;
            let mut last;
            loop {
                match call!(shop2.orders, OrdersClient, in_flight, pb::InFlightRequest {}, true) {
                    Ok(r) if r.count == 0 => break,
                    Ok(r) => last = format!("{} checkouts in flight: {:?}", r.count, &r.orders[..r.orders.len().min(5)]),
                    Err(e) => last = format!("in-flight query failed: {}", e.message()),
                }
                if Instant::now() >= deadline {
                    failures.push(format!(
                        "checkouts did not terminate within {LIVENESS_BOUND:?} after healing: {last}; phases: {}",
                        phases(&topo2).await
                    ));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let fin = read_state(&topo2, 1 << 41).await;
            // Each store group's replicas must agree at one applied index.
            let mut diverged = Vec::new();
            for (name, peers) in [("stock", &topo2.stock_kv), ("payment", &topo2.payment_kv), ("orders", &topo2.order_kv)] {
                let mut c = KvClient::new(peers.clone(), 1 << 43, kv_options());
                diverged.extend(crate::replicas::compare_replicas(name, &mut c, peers.len() as u64, Duration::from_secs(5)).await);
            }
            (fin, failures, diverged)
        })
        .await
        .expect("final task");
    ctx.checks.add("convergence", move || diverged.clone());
    let mut failures = failures;
    match fin {
        Ok(v) => rec.named("final", "final", v),
        Err(e) => failures.push(format!("could not read the final state after healing: {e}")),
    }
    failures
}

/// Fills the stores through the services (and, for the 1000 one-item
/// orders of the consistency workload, straight into the order group: a
/// fixture, the same records `Orders.Create` + `AddItem` would write).
async fn setup(shop: &Shop, t: &Topology, workload: &str, seed: u64) {
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
async fn phases(t: &Topology) -> String {
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

/// Reads the whole shop from the three store groups (linearizable scans).
async fn read_state(t: &Topology, client_id: u64) -> Result<Value, String> {
    let scan = |nodes: BTreeMap<u64, String>, prefix: &'static str, id: u64| async move {
        let mut kv = KvClient::new(nodes, id, kv_options());
        let mut last = String::new();
        for _ in 0..20 {
            match kv.scan(prefix).await {
                Ok(v) => return Ok(v),
                Err(e) => last = e.to_string(),
            }
        }
        Err(format!("scan {prefix}: {last}"))
    };
    let mut items = Map::new();
    for (k, v) in scan(t.stock_kv.clone(), keys::ITEM, client_id).await? {
        let r: ItemRec = serde_json::from_str(&v).map_err(|e| format!("{k}: {e}"))?;
        items.insert(
            k[keys::ITEM.len()..].to_string(),
            json!({"stock": r.stock, "price": r.price}),
        );
    }
    let mut users = Map::new();
    for (k, v) in scan(t.payment_kv.clone(), keys::USER, client_id + 1).await? {
        let c: i64 = v.parse().map_err(|e| format!("{k}: {e}"))?;
        users.insert(k[keys::USER.len()..].to_string(), json!(c));
    }
    let mut orders = Map::new();
    for (k, v) in scan(t.order_kv.clone(), keys::ORDER, client_id + 2).await? {
        let o: OrderRec = serde_json::from_str(&v).map_err(|e| format!("{k}: {e}"))?;
        orders.insert(
            k[keys::ORDER.len()..].to_string(),
            json!({"user": o.user, "items": o.items, "total": o.total, "paid": o.paid}),
        );
    }
    let mut in_flight = 0;
    for (k, v) in scan(t.order_kv.clone(), keys::TX, client_id + 3).await? {
        let r: TxRecord = serde_json::from_str(&v).map_err(|e| format!("{k}: {e}"))?;
        in_flight += u64::from(!r.terminal());
    }
    Ok(json!({"items": items, "users": users, "orders": orders, "in_flight": in_flight}))
}

/// How an answer goes into the history: ok; a business refusal (certainly
/// no effect) is `fail`; "certainly not done" is `fail` with an `error`;
/// anything else is unknown (`info`).
fn completion<T>(
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

async fn checkout(shop: &Shop, rec: &Recorder, p: u64, order: &str) {
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

async fn mix_op(shop: &Shop, rec: &Recorder, p: u64, init: &Value, rng: &mut ChaCha8Rng) {
    let item = pick(rng, &init["items"]);
    let user = pick(rng, &init["users"]);
    let order = pick(rng, &init["orders"]);
    let amount = rng.random_range(1..=20i64);
    match rng.random_range(0..100) {
        0..=39 => checkout(shop, rec, p, &order).await,
        40..=47 => {
            let v = json!({"item": item, "amount": amount});
            rec.op(p, "add_stock", None, v.clone(), async {
                let r = call!(
                    shop.stock,
                    StockClient,
                    add,
                    pb::StockChange {
                        item_id: item,
                        amount,
                        request_id: String::new(),
                    },
                    false
                );
                completion(v.clone(), &r, |_| v.clone())
            })
            .await;
        }
        48..=55 => {
            let v = json!({"item": item, "amount": amount});
            rec.op(p, "subtract_stock", None, v.clone(), async {
                let r = call!(
                    shop.stock,
                    StockClient,
                    subtract,
                    pb::StockChange {
                        item_id: item,
                        amount,
                        request_id: String::new(),
                    },
                    false
                );
                completion(v.clone(), &r, |_| v.clone())
            })
            .await;
        }
        56..=63 => {
            let v = json!({"user": user, "amount": amount});
            rec.op(p, "add_funds", None, v.clone(), async {
                let r = call!(
                    shop.payment,
                    PaymentClient,
                    add_funds,
                    pb::CreditChange {
                        user_id: user,
                        amount,
                        request_id: String::new(),
                    },
                    false
                );
                completion(v.clone(), &r, |_| v.clone())
            })
            .await;
        }
        64..=71 => {
            let v = json!({"user": user, "amount": amount});
            rec.op(p, "pay", None, v.clone(), async {
                let r = call!(
                    shop.payment,
                    PaymentClient,
                    pay,
                    pb::CreditChange {
                        user_id: user,
                        amount,
                        request_id: String::new(),
                    },
                    false
                );
                completion(v.clone(), &r, |_| v.clone())
            })
            .await;
        }
        72..=77 => {
            let qty = rng.random_range(1..=3i64);
            let v = json!({"order": order, "item": item, "qty": qty});
            rec.op(p, "add_item", None, v.clone(), async {
                let req = pb::AddItemRequest {
                    order_id: order,
                    item_id: item,
                    quantity: qty,
                    request_id: String::new(),
                };
                let r = call!(shop.orders, OrdersClient, add_item, req, false);
                completion(v.clone(), &r, |_| v.clone())
            })
            .await;
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
