//! The shop's services read time only through their host's clock
//! (`ServiceConfig::clock`): a clock fault on a service's host changes what
//! the service answers. Run with `cargo simtest -p bookstore --test
//! service_clock` (madsim only: the simulator has one clock for every host,
//! so the host's `Clock` is the only way one host's time can differ).
//!
//! Each test starts real components on simulated hosts: one-replica store
//! groups (untouched clocks), and the service under test on a host whose
//! clock the test controls. Each fault test has a control with the clock
//! untouched, and fails if the service ignores `cfg.clock`.
//!
//! - Order service: `Create` asks the payment service whether the user
//!   exists, retrying on another replica until the call's deadline (the
//!   checkout deadline, 10 s of the order host's clock). The payment service
//!   comes up 7 s after the call: on an untouched clock the order is
//!   created; when the order host's clock jumps 60 s forward, or runs twice
//!   as fast, the deadline passes first and the call gives up. A jump back
//!   (past the clock's start) only postpones the deadline.
//! - Stock service: a request's work has a time budget (3/4 of the rpc
//!   timeout, on the stock host's clock). The stock store comes up 3.5 s
//!   after an `Add` of an unknown item: on an untouched clock (budget 6 s)
//!   the answer is `NOT_FOUND`; with the stock host's clock twice as fast
//!   the budget runs out after 3 s and the answer is "unknown (busy)".
#![cfg(madsim)]

use bookstore::client::{ClientOptions, KvClient};
use bookstore::clock::Clock;
use bookstore::node::{self, NodeConfig};
use bookstore::shop::{self, keys, Group, Mode, ServiceConfig, Topology};
use bookstore::shop_pb::{self as pb, orders_client::OrdersClient, stock_client::StockClient};
use bookstore::NodeId;
use madsim::runtime::Handle;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

const PORT: u16 = 7000;

/// Hosts of the tests.
const ORDER_STORE: u8 = 1;
const PAYMENT_STORE: u8 = 2;
const STOCK_STORE: u8 = 3;
const PAYMENT_SVC: u8 = 4;
const ORDER_SVC: u8 = 5;
const STOCK_SVC: u8 = 6;
const CLIENT: u8 = 7;

fn ip(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 3, host))
}

fn addr(host: u8) -> String {
    format!("{}:{PORT}", ip(host))
}

fn channel(host: u8) -> Channel {
    Endpoint::from_shared(format!("http://{}", addr(host)))
        .expect("address")
        .connect_lazy()
}

/// Every store group has one replica, on host `host`.
fn group(host: u8) -> BTreeMap<NodeId, String> {
    BTreeMap::from([(1, addr(host))])
}

fn topology() -> Topology {
    Topology {
        stock_kv: group(STOCK_STORE),
        payment_kv: group(PAYMENT_STORE),
        order_kv: group(ORDER_STORE),
        stock: vec![addr(STOCK_SVC)],
        payment: vec![addr(PAYMENT_SVC)],
        orders: vec![addr(ORDER_SVC)],
    }
}

/// Starts the one replica of a store group on `host` (its clock untouched).
fn start_store(host: u8) {
    let cfg = NodeConfig::new(1, group(host), host as u64);
    Handle::current()
        .create_node()
        .name(format!("store-{host}"))
        .ip(ip(host))
        .init(move || {
            let cfg = cfg.clone();
            async move {
                let dir = Arc::new(storage::SimDir::new());
                node::serve(cfg, dir, Clock::new(), None, std::future::pending())
                    .await
                    .expect("store replica");
            }
        })
        .build();
}

/// Starts a service replica on `host`; `cfg.clock` is that host's clock.
fn start_service(g: Group, cfg: ServiceConfig, host: u8) {
    let a = addr(host).parse().expect("address");
    Handle::current()
        .create_node()
        .name(format!("{}-svc-{host}", g.name()))
        .ip(ip(host))
        .init(move || {
            let cfg = cfg.clone();
            async move {
                shop::orders::serve(g, cfg, a, std::future::pending())
                    .await
                    .expect("service replica");
            }
        })
        .build();
}

/// What the order service answers to `Create` while the payment service is
/// down for the first 7 s of the call; `order_clock` is the order host's,
/// and `fault` acts on it 1 s into the call. Returns the answer and how
/// long it took (runtime time, measured by the client).
async fn create_order_with_late_payment(
    order_clock: Clock,
    fault: impl FnOnce(&Clock),
) -> (Result<pb::OrderId, Status>, Duration) {
    start_store(ORDER_STORE);
    start_store(PAYMENT_STORE);
    let mut cfg = ServiceConfig::new(topology(), Mode::Saga);
    cfg.clock = order_clock.clone();
    start_service(Group::Orders, cfg, ORDER_SVC);

    let client = Handle::current()
        .create_node()
        .name("client")
        .ip(ip(CLIENT))
        .build();
    // User 0, written straight into the payment group.
    client
        .spawn(async move {
            let mut kv = KvClient::new(group(PAYMENT_STORE), 1, ClientOptions::default());
            kv.put(&format!("{}0", keys::USER), "10").await
        })
        .await
        .expect("client task")
        .expect("user written");

    let start = Instant::now();
    let call = client.spawn(async move {
        let req = pb::CreateOrderRequest {
            user_id: "0".into(),
            request_id: String::new(),
        };
        let r = OrdersClient::new(channel(ORDER_SVC)).create(req).await;
        (r.map(|r| r.into_inner()), start.elapsed())
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    fault(&order_clock);
    tokio::time::sleep_until(start + Duration::from_secs(7)).await;
    // The payment service's host keeps the runtime's time.
    let mut payment_cfg = ServiceConfig::new(topology(), Mode::Saga);
    payment_cfg.clock = Clock::new();
    start_service(Group::Payment, payment_cfg, PAYMENT_SVC);
    tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the order service answers")
        .expect("client task")
}

#[madsim::test]
async fn order_service_waits_out_its_deadline_on_an_untouched_clock() {
    let (answer, took) = create_order_with_late_payment(Clock::new(), |_| {}).await;
    let order = answer.expect("order created once the payment service is up");
    assert!(!order.order_id.is_empty());
    assert!(took >= Duration::from_secs(7), "answered after {took:?}");
}

#[madsim::test]
async fn order_service_gives_up_when_its_clock_jumps_forward() {
    let jump = |c: &Clock| c.jump(Duration::from_secs(60).as_nanos() as i64);
    let (answer, took) = create_order_with_late_payment(Clock::new(), jump).await;
    let e = answer.expect_err("the deadline passed on the order host's clock");
    assert!(
        matches!(e.code(), Code::Aborted | Code::Unavailable) && e.message().contains("gave up"),
        "{e:?}"
    );
    // Right after the jump, long before the payment service was up.
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
}

#[madsim::test]
async fn order_service_gives_up_early_when_its_clock_runs_fast() {
    // Twice as fast from the start: its 10 s deadline (local) passes 5 s
    // into the call, before the payment service is up. (Drift is set before
    // anything runs: setting it later would also move the clock at once, by
    // the drift times the clock's age.)
    let clock = Clock::new();
    clock.set_drift_ppm(1_000_000);
    let (answer, took) = create_order_with_late_payment(clock, |_| {}).await;
    let e = answer.expect_err("the deadline passed on the order host's clock");
    assert!(e.message().contains("gave up"), "{e:?}");
    assert!(
        took > Duration::from_millis(4500) && took < Duration::from_millis(6500),
        "answered after {took:?}"
    );
}

#[madsim::test]
async fn order_service_survives_its_clock_jumping_back() {
    // Back by more than the clock's age: local time stays at zero for a
    // while. The deadline comes later; nothing panics, and the order is
    // created once the payment service is up.
    let back = |c: &Clock| c.jump(-(Duration::from_secs(60).as_nanos() as i64));
    let (answer, took) = create_order_with_late_payment(Clock::new(), back).await;
    answer.expect("order created once the payment service is up");
    assert!(took >= Duration::from_secs(7), "answered after {took:?}");
}

/// What the stock service answers to `Add` of an unknown item while its
/// store is down for the first 3.5 s; `stock_clock` is the stock host's.
async fn add_stock_with_late_store(stock_clock: Clock) -> (Result<pb::Item, Status>, Duration) {
    let mut cfg = ServiceConfig::new(topology(), Mode::Saga);
    // A request's budget: 3/4 of this, 6 s. The store client keeps trying
    // for longer than that.
    cfg.rpc_timeout = Duration::from_secs(8);
    cfg.kv_options.read_timeout = Duration::from_secs(30);
    cfg.kv_options.total_timeout = Duration::from_secs(30);
    cfg.clock = stock_clock;
    start_service(Group::Stock, cfg, STOCK_SVC);
    let client = Handle::current()
        .create_node()
        .name("client")
        .ip(ip(CLIENT))
        .build();
    // Let the service start listening.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let start = Instant::now();
    let call = client.spawn(async move {
        let req = pb::StockChange {
            item_id: "7".into(),
            amount: 1,
            request_id: String::new(),
        };
        let r = StockClient::new(channel(STOCK_SVC)).add(req).await;
        (r.map(|r| r.into_inner()), start.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(3500)).await;
    start_store(STOCK_STORE);
    tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the stock service answers")
        .expect("client task")
}

#[madsim::test]
async fn stock_service_budget_holds_on_an_untouched_clock() {
    let (answer, took) = add_stock_with_late_store(Clock::new()).await;
    let e = answer.expect_err("item 7 does not exist");
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(
        took > Duration::from_millis(3500),
        "answered after {took:?}"
    );
}

#[madsim::test]
async fn stock_service_budget_runs_out_early_when_its_clock_runs_fast() {
    let clock = Clock::new();
    clock.set_drift_ppm(1_000_000);
    let (answer, took) = add_stock_with_late_store(clock).await;
    let e = answer.expect_err("the budget ran out on the stock host's clock");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains("gave up after 6s"), "{e:?}");
    // 6 s of a clock twice as fast: 3 s.
    assert!(
        took > Duration::from_millis(2900) && took < Duration::from_millis(3500),
        "answered after {took:?}"
    );
}
