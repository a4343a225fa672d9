//! Real mode, end to end: `bookstore shop` (16 processes: 3 store groups x 3
//! replicas, 2 replicas of each service, the gateway) on loopback, driven
//! over HTTP. 1000 users with credit 1, one item with stock 100 and price 1,
//! 1000 orders of that item, 1000 concurrent checkouts: exactly 100 succeed,
//! and the final state agrees with every answer. The same again while a
//! random process other than the gateway is SIGKILLed every 1.5 s (and
//! restarted by the shop's supervisor): each checkout is sent once and
//! answered 2xx or 4xx, never 5xx, and the state read right after the last
//! answer agrees with every answer.
//!
//! And a checkout record written without its `open/` index entry (as a
//! version before the index wrote it) is found by the order replicas'
//! recovery loop after they restart, and finished.
//!
//! The tests run one at a time (each starts 16 processes).
#![cfg(not(madsim))]

use bookstore::gateway::client::Answer;
use bookstore::gateway::HttpClient;
use bookstore::shop::Topology;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const USERS: usize = 1000;
const STOCK: i64 = 100;
const IN_FLIGHT: usize = 48;

/// One test at a time: each runs a whole shop.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Shop {
    child: Child,
    data: PathBuf,
    topology: Topology,
    http: HttpClient,
}

impl Shop {
    /// Starts `bookstore shop` on ports of its own: `slot` tells the tests
    /// of this process apart, the process id tells concurrent runs apart.
    /// Every port stays below 32768, the start of Linux's ephemeral range:
    /// there, a port a killed replica gives up could be taken as the local
    /// port of one of the test's many client connections before the
    /// replica restarts ("Address already in use", seen in CI).
    fn start(mode: &str, slot: u16) -> Shop {
        let base = 11_000 + ((std::process::id() % 7) as u16 * 4 + slot) * 700;
        let port = base + 690;
        // A directory per start: tests that share a slot (one at a time)
        // never wipe the logs a failed one kept.
        static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let data = std::env::temp_dir().join(format!(
            "bookstore-shop-e2e-{}-{slot}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).expect("create the shop's data directory");
        // The supervisor's own lines (which process died, when it was
        // restarted) beside the processes' logs, kept if the test fails.
        let supervisor_log =
            std::fs::File::create(data.join("supervisor.log")).expect("create supervisor.log");
        let child = Command::new(env!("CARGO_BIN_EXE_bookstore"))
            .args(["shop", "--mode", mode, "--base-port", &base.to_string()])
            .args(["--port", &port.to_string(), "--data-dir"])
            .arg(&data)
            // The gateway logs each write it sends again (outcome unknown):
            // a whole request again (`gateway`), or one call again on the
            // service's other replica (`shop::rpc`).
            .env(
                "RUST_LOG",
                "warn,bookstore::gateway=debug,bookstore::shop::rpc=debug",
            )
            .stdout(supervisor_log)
            .spawn()
            .expect("spawn bookstore shop");
        Shop {
            child,
            data,
            topology: Topology::loopback(base, 3, 2),
            http: HttpClient::new(&format!("http://127.0.0.1:{port}")),
        }
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut ready = true;
            for p in [
                "/stock/find/probe",
                "/payment/find_user/probe",
                "/orders/find/probe",
            ] {
                ready &= matches!(self.http.get(p).await, Ok(a) if a.status == 404);
            }
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "the shop did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Lines of process `name`'s log that contain `what`.
    fn log_lines(&self, name: &str, what: &str) -> usize {
        let log = self.data.join("logs").join(format!("{name}.log"));
        let log = std::fs::read_to_string(log).unwrap_or_default();
        log.lines().filter(|l| l.contains(what)).count()
    }

    fn pid(&self, name: &str) -> Option<u32> {
        let s = std::fs::read_to_string(self.data.join("pids").join(format!("{name}.pid"))).ok()?;
        s.trim().parse().ok()
    }

    /// SIGTERM to the supervisor: it stops every child and exits 0.
    fn stop(&mut self) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let t = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "shop exited with {status}");
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the shop did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Every child is gone: nothing answers on the store ports.
        for addr in self.topology.stock_kv.values() {
            assert!(
                std::net::TcpStream::connect(addr).is_err(),
                "{addr} still up"
            );
        }
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // A failed test keeps every process's log (logs/NAME.log) and
            // data directory for a look at what happened.
            eprintln!(
                "the shop's logs and data are kept in {}",
                self.data.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.data);
        }
    }
}

/// Sends until there is a definite answer: 2xx or 4xx. A 503 (done or
/// unknown) or a lost connection is sent again; `safe_to_retry` says
/// whether an unknown outcome may be (reads, checkouts); otherwise it is
/// reported as `None` for the caller to resolve.
async fn definite(
    http: &HttpClient,
    method: &str,
    path: &str,
    safe_to_retry: bool,
) -> Option<Answer> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let unknown = match http.call(method, path).await {
            Ok(a) if a.status < 500 => return Some(a),
            Ok(a) => a.body["done"] != false,
            Err(_) => true,
        };
        if unknown && !safe_to_retry {
            return None;
        }
        assert!(
            Instant::now() < deadline,
            "{method} {path}: no definite answer"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post_ok(http: &HttpClient, path: &str) -> Answer {
    let a = definite(http, "POST", path, true).await.unwrap();
    assert!(a.ok(), "{path}: {} {}", a.status, a.body);
    a
}

/// Runs `n` jobs with at most `limit` at a time; job i may not start
/// before `start_at(i)`.
async fn run_all<T, F, Fut>(
    n: usize,
    limit: usize,
    start_at: impl Fn(usize) -> Duration,
    job: F,
) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let sem = Arc::new(tokio::sync::Semaphore::new(limit));
    let t0 = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        tokio::time::sleep_until(t0 + start_at(i)).await;
        let permit = sem.clone().acquire_owned().await.unwrap();
        let fut = job(i);
        tasks.push(tokio::spawn(async move {
            let r = fut.await;
            drop(permit);
            r
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// 1000 orders, one per user, each of one unit of item 0.
async fn setup(http: &HttpClient) -> Vec<String> {
    post_ok(http, &format!("/stock/batch_init/1/{STOCK}/1")).await;
    post_ok(http, &format!("/payment/batch_init/{USERS}/1")).await;
    run_all(
        USERS,
        32,
        |_| Duration::ZERO,
        |u| {
            let http = http.clone();
            async move {
                let order = loop {
                    // An unknown create at worst leaves an unused empty order.
                    if let Some(a) =
                        definite(&http, "POST", &format!("/orders/create/{u}"), false).await
                    {
                        assert!(a.ok(), "create for user {u}: {} {}", a.status, a.body);
                        break a.str("order_id");
                    }
                };
                let add = format!("/orders/addItem/{order}/0/1");
                loop {
                    match definite(&http, "POST", &add, false).await {
                        Some(a) => {
                            assert!(a.ok(), "{add}: {} {}", a.status, a.body);
                            break;
                        }
                        None => {
                            // Unknown: look before adding again.
                            let o = definite(&http, "GET", &format!("/orders/find/{order}"), true)
                                .await
                                .unwrap();
                            if o.body["items"].as_array().is_some_and(|i| !i.is_empty()) {
                                break;
                            }
                        }
                    }
                }
                order
            }
        },
    )
    .await
}

/// Checks out every order (retrying unknown outcomes), then checks the
/// final state against the answers. Returns the successes and the retries
/// by cause.
async fn checkouts_and_final_state(
    http: &HttpClient,
    orders: Vec<String>,
    start_at: impl Fn(usize) -> Duration,
) -> (usize, String) {
    let retried = Arc::new(Mutex::new(BTreeMap::<&str, usize>::new()));
    let orders = Arc::new(orders);
    let answers = run_all(USERS, IN_FLIGHT, start_at, |u| {
        let (http, orders, retried) = (http.clone(), orders.clone(), retried.clone());
        async move {
            let path = format!("/orders/checkout/{}", orders[u]);
            loop {
                // 503 done=false (not done) or unknown, or a lost
                // connection: a checkout is safe to send again.
                let cause = match http.post(&path).await {
                    Ok(a) if a.status < 500 => return a,
                    Ok(a) if a.unknown() => "503 unknown",
                    Ok(a) if a.status == 503 => "503 not done",
                    Ok(_) => "5xx",
                    Err(_) => "no answer",
                };
                *retried.lock().unwrap().entry(cause).or_insert(0) += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    })
    .await;
    let ok: Vec<bool> = answers.iter().map(|a| a.ok()).collect();
    for (u, a) in answers.iter().enumerate() {
        assert!(
            a.ok() || a.status == 400,
            "checkout of user {u}'s order: {} {}",
            a.status,
            a.body
        );
    }
    let succeeded = ok.iter().filter(|&&b| b).count();
    assert_eq!(succeeded, STOCK as usize, "checkouts that succeeded");

    let item = definite(http, "GET", "/stock/find/0", true).await.unwrap();
    assert_eq!(item.int("stock"), 0, "stock left: {}", item.body);

    let per_user = run_all(
        USERS,
        32,
        |_| Duration::ZERO,
        |u| {
            let (http, orders) = (http.clone(), orders.clone());
            async move {
                let user = definite(&http, "GET", &format!("/payment/find_user/{u}"), true)
                    .await
                    .unwrap();
                assert!(user.ok(), "user {u}: {}", user.body);
                let order = definite(&http, "GET", &format!("/orders/find/{}", orders[u]), true)
                    .await
                    .unwrap();
                assert!(order.ok(), "order of user {u}: {}", order.body);
                (user.int("credit"), order.body["paid"] == true)
            }
        },
    )
    .await;
    let credit: i64 = per_user.iter().map(|(c, _)| c).sum();
    assert_eq!(credit, USERS as i64 - STOCK, "total credit left");
    for (u, (c, paid)) in per_user.iter().enumerate() {
        assert_eq!(
            *paid, ok[u],
            "user {u}'s order paid iff its checkout succeeded"
        );
        assert_eq!(*c, if ok[u] { 0 } else { 1 }, "user {u}'s credit");
    }
    let retried = format!("{:?}", retried.lock().unwrap());
    (succeeded, retried)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn consistency(mode: &str, slot: u16) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Instant::now();
    let mut shop = Shop::start(mode, slot);
    runtime().block_on(async {
        shop.wait_ready().await;
        let started = t.elapsed();
        let orders = setup(&shop.http).await;
        let set_up = t.elapsed();
        let (ok, retried) = checkouts_and_final_state(&shop.http, orders, |_| Duration::ZERO).await;
        eprintln!(
            "{mode}: shop up in {:.1} s, 1000 orders in {:.1} s, checkouts and checks in {:.1} s; \
             {ok} succeeded, retried {retried}",
            started.as_secs_f64(),
            (set_up - started).as_secs_f64(),
            (t.elapsed() - set_up).as_secs_f64()
        );
    });
    shop.stop();
}

#[test]
fn saga_exactly_the_stock_is_sold_and_every_answer_matches_the_state() {
    consistency("saga", 0);
}

#[test]
fn two_pc_exactly_the_stock_is_sold_and_every_answer_matches_the_state() {
    consistency("2pc", 1);
}

/// The web-shop course's consistency benchmark, with definite answers:
/// 1000 checkouts sent at once, each once (no client retry), while a random
/// process other than the gateway is SIGKILLed every 1.5 s for the whole run
/// (the supervisor restarts it). Every checkout must be answered 2xx or 4xx,
/// never 5xx: the gateway keeps driving a checkout whose outcome is unknown
/// until it is decided. Exactly 100 succeed, and the state read right after
/// the last answer agrees: stock 0, total credit 900, paid iff answered 2xx.
fn definite_answers_under_kills(mode: &str, slot: u16) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let t = Instant::now();
    let mut shop = Shop::start(mode, slot);
    runtime().block_on(async {
        shop.wait_ready().await;
        let orders = Arc::new(setup(&shop.http).await);
        let set_up = t.elapsed();
        let shop = &shop;
        let done = std::sync::atomic::AtomicBool::new(false);
        let kills = async {
            let mut names = Vec::new();
            for g in ["stock", "payment", "orders"] {
                names.extend((1..=3).map(|i| format!("{g}-kv-{i}")));
                names.extend((1..=2).map(|i| format!("{g}-svc-{i}")));
            }
            // A fixed sequence: the test is the same run after run.
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ slot as u64;
            let mut killed = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let name = &names[(x % names.len() as u64) as usize];
                // Between its death and its restart a process has no pid
                // to kill: the kill is skipped.
                if let Some(pid) = shop.pid(name) {
                    // SAFETY: kill(2) with a pid the supervisor wrote.
                    if unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } == 0 {
                        killed.push(name.clone());
                    }
                }
            }
            killed
        };
        let answers = async {
            let patient = shop.http.clone().with_timeout(Duration::from_secs(300));
            let answers = run_all(USERS, USERS, |_| Duration::ZERO, |u| {
                let (http, orders) = (patient.clone(), orders.clone());
                async move { http.post(&format!("/orders/checkout/{}", orders[u])).await }
            })
            .await;
            let last = t.elapsed();
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            // Right after the last answer: no waiting for anything to settle.
            let item = definite(&shop.http, "GET", "/stock/find/0", true).await.unwrap();
            let per_user = run_all(USERS, 32, |_| Duration::ZERO, |u| {
                let (http, orders) = (shop.http.clone(), orders.clone());
                async move {
                    let user = definite(&http, "GET", &format!("/payment/find_user/{u}"), true)
                        .await
                        .unwrap();
                    let order =
                        definite(&http, "GET", &format!("/orders/find/{}", orders[u]), true)
                            .await
                            .unwrap();
                    (user.int("credit"), order.body["paid"] == true)
                }
            })
            .await;
            (answers, last, item, per_user)
        };
        let ((answers, last, item, per_user), killed, writes) =
            tokio::join!(answers, kills, other_writes(&shop.http));
        let mut by_status = BTreeMap::<String, usize>::new();
        for a in &answers {
            let k = match a {
                Ok(a) => a.status.to_string(),
                Err(e) => format!("no answer ({e})"),
            };
            *by_status.entry(k).or_insert(0) += 1;
        }
        eprintln!(
            "{mode}, a process SIGKILLed every 1.5 s ({} kills: {}): answers by status {by_status:?}; \
             checkouts answered in {:.1} s",
            killed.len(),
            killed.join(" "),
            (last - set_up).as_secs_f64()
        );
        let ok: Vec<bool> = answers
            .iter()
            .map(|a| matches!(a, Ok(a) if a.ok()))
            .collect();
        for (u, a) in answers.iter().enumerate() {
            let a = a.as_ref().unwrap_or_else(|e| panic!("checkout of user {u}: no answer: {e}"));
            assert!(
                a.ok() || (400..500).contains(&a.status),
                "checkout of user {u}'s order: {} {}",
                a.status,
                a.body
            );
        }
        assert!(killed.len() >= 3, "too few kills during the run: {killed:?}");
        eprintln!(
            "{mode}, other writes meanwhile: {writes}; the gateway sent {} requests again \
             (checkouts included) while their outcome was unknown or not done, and {} calls \
             again on a service's other replica after an unknown outcome",
            shop.log_lines("gateway", "not decided yet"),
            shop.log_lines("gateway", "sending it again on the next replica")
        );
        assert_eq!(ok.iter().filter(|&&b| b).count(), STOCK as usize, "checkouts answered 2xx");
        assert_eq!(item.int("stock"), 0, "stock left: {}", item.body);
        let credit: i64 = per_user.iter().map(|(c, _)| c).sum();
        assert_eq!(credit, USERS as i64 - STOCK, "total credit left");
        for (u, (c, paid)) in per_user.iter().enumerate() {
            assert_eq!(*paid, ok[u], "user {u}'s order paid iff its checkout was answered 2xx");
            assert_eq!(*c, if ok[u] { 0 } else { 1 }, "user {u}'s credit");
        }
    });
    shop.stop();
}

/// Every other kind of write, sent once each while processes die (with the
/// checkouts): 10 users, 3 items and 10 orders created, then 10 rounds of
/// add_funds and pay per user, add and subtract per item, and addItem per
/// order. Each must be answered 2xx or 4xx, none 5xx, and the state must be
/// exactly what the 2xx answers add up to: a write whose outcome was unknown
/// and that the gateway sent again (same request id) happened once.
async fn other_writes(http: &HttpClient) -> String {
    let http = http.clone().with_timeout(Duration::from_secs(300));
    let mut statuses = BTreeMap::<u16, usize>::new();
    let mut send = |a: Result<Answer, String>, what: &str| -> Answer {
        let a = a.unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
        assert!(a.status < 500, "{what}: {} {}", a.status, a.body);
        *statuses.entry(a.status).or_insert(0) += 1;
        a
    };
    let mut users = Vec::new();
    for _ in 0..10 {
        let a = send(http.post("/payment/create_user").await, "create_user");
        users.push((a.str("user_id"), 0i64));
    }
    let mut items = Vec::new();
    for _ in 0..3 {
        let a = send(http.post("/stock/item/create/2").await, "item create");
        items.push((a.str("item_id"), 0i64));
    }
    let mut orders = Vec::new();
    for (u, _) in &users {
        let a = send(
            http.post(&format!("/orders/create/{u}")).await,
            "order create",
        );
        orders.push((a.str("order_id"), 0usize));
    }
    for round in 0..10 {
        for (u, credit) in users.iter_mut() {
            let a = send(
                http.post(&format!("/payment/add_funds/{u}/3")).await,
                "add_funds",
            );
            if a.ok() {
                *credit += 3;
            }
            let a = send(http.post(&format!("/payment/pay/{u}/2")).await, "pay");
            if a.ok() {
                *credit -= 2;
            }
        }
        for (i, stock) in items.iter_mut() {
            let a = send(http.post(&format!("/stock/add/{i}/5")).await, "stock add");
            if a.ok() {
                *stock += 5;
            }
            let a = send(
                http.post(&format!("/stock/subtract/{i}/4")).await,
                "stock subtract",
            );
            if a.ok() {
                *stock -= 4;
            }
        }
        for (o, lines) in orders.iter_mut() {
            let item = &items[round % items.len()].0;
            let a = send(
                http.post(&format!("/orders/addItem/{o}/{item}/1")).await,
                "addItem",
            );
            if a.ok() {
                *lines += 1;
            }
        }
    }
    let n = statuses.values().sum::<usize>();
    for (u, credit) in &users {
        let a = definite(&http, "GET", &format!("/payment/find_user/{u}"), true)
            .await
            .unwrap();
        assert_eq!(a.int("credit"), *credit, "user {u}: {}", a.body);
    }
    for (i, stock) in &items {
        let a = definite(&http, "GET", &format!("/stock/find/{i}"), true)
            .await
            .unwrap();
        assert_eq!(a.int("stock"), *stock, "item {i}: {}", a.body);
    }
    for (o, lines) in &orders {
        let a = definite(&http, "GET", &format!("/orders/find/{o}"), true)
            .await
            .unwrap();
        let got = a.body["items"].as_array().map_or(0, |l| l.len());
        assert_eq!(got, *lines, "order {o}: {}", a.body);
    }
    format!("{n} writes, answers by status {statuses:?}, final state as the 2xx answers add up")
}

#[test]
fn saga_answers_every_checkout_definitely_while_a_process_dies_every_1_5_s() {
    definite_answers_under_kills("saga", 2);
}

#[test]
fn two_pc_answers_every_checkout_definitely_while_a_process_dies_every_1_5_s() {
    definite_answers_under_kills("2pc", 3);
}

/// A checkout record that the `open/` index does not name (as a version
/// before the index wrote it) is still finished by the recovery loop: an
/// order replica's first look after it starts reads every record and
/// indexes the unfinished ones, and the looks after it take the checkout
/// over. The record is written straight into the order group, then both
/// order replicas are killed (the supervisor starts them again).
#[test]
fn a_checkout_record_the_index_does_not_name_is_found_and_finished() {
    use bookstore::client::{ClientOptions, KvClient};
    use bookstore::shop::checkout::{self, Phase, TxRecord};
    use bookstore::shop::keys::{self, from_json, to_json, OrderRec};
    use bookstore::shop::Mode;

    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut shop = Shop::start("saga", 0);
    runtime().block_on(async {
        shop.wait_ready().await;
        let http = &shop.http;
        post_ok(http, "/stock/batch_init/1/5/1").await;
        post_ok(http, "/payment/batch_init/1/10").await;
        let order = post_ok(http, "/orders/create/0").await.str("order_id");
        post_ok(http, &format!("/orders/addItem/{order}/0/1")).await;

        let mut kv = KvClient::new(
            shop.topology.order_kv.clone(),
            0x5eed_0001,
            ClientOptions::default(),
        );
        let (okey, tkey) = (
            format!("{}{order}", keys::ORDER),
            format!("{}{order}", keys::TX),
        );
        let okey_open = format!("{}{order}", keys::OPEN);
        let o = kv.get(&okey).await.expect("read the order").unwrap();
        let o: OrderRec = from_json(&okey, &o).unwrap();
        let rec = checkout::start(Mode::Saga, format!("{order}.legacy"), &o);
        let w = kv
            .cas(&tkey, None, Some(&to_json(&rec)))
            .await
            .expect("write the record");
        assert!(w.succeeded, "no record of the order before");
        for name in ["orders-svc-1", "orders-svc-2"] {
            let pid = shop.pid(name).expect("the order replica's pid");
            // SAFETY: kill(2) with a pid the supervisor wrote.
            assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
        }

        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = kv.get(&tkey).await.ok().flatten();
            let r: Option<TxRecord> = r.map(|s| from_json(&tkey, &s).unwrap());
            if r.as_ref().is_some_and(|r| r.terminal()) {
                let r = r.unwrap();
                assert_eq!(r.phase, Phase::Done, "the checkout could pay: {r:?}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the record is still unfinished a minute after the order replicas restarted: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let o = definite(http, "GET", &format!("/orders/find/{order}"), true)
            .await
            .unwrap();
        assert_eq!(o.body["paid"], true, "{}", o.body);
        let item = definite(http, "GET", "/stock/find/0", true).await.unwrap();
        assert_eq!(item.body["stock"], 4, "{}", item.body);
        let user = definite(http, "GET", "/payment/find_user/0", true)
            .await
            .unwrap();
        assert_eq!(user.body["credit"], 9, "{}", user.body);
        assert_eq!(
            kv.get(&okey_open).await.expect("read the index"),
            None,
            "the finished checkout left its index entry"
        );
    });
    shop.stop();
}
