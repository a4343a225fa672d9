//! Real mode, end to end: `bookstore tartu` (16 processes: the books and
//! state stores x 3, 2 replicas each of the books, verification, fraud and
//! suggestions services, the orchestrator, the page) on loopback, driven
//! over HTTP as the course's page drives it.
//!
//! 1. The contract: the course's demo order approved with suggestions (both
//!    spellings of the terms field, with and without a content type); a
//!    rejection for each check with its reason; the CORS preflight; every
//!    kind of bad input answered 4xx with the error body; the vector-clock
//!    log checked by the checker; every approved order in the queue once.
//! 2. The same checkouts while a verification, a fraud and a suggestions
//!    replica, a books-store replica, the orchestrator and the leader of the
//!    queue's store group are killed (SIGKILL) one after another: clients retry with their idempotency
//!    key, and every approved order is in the queue exactly once.
//!
//! The tests run one at a time (each starts 16 processes).
#![cfg(not(madsim))]

use bookstore::client::{ClientOptions, KvClient};
use bookstore::tartu::orchestrator::client::{card_number, Http, Reply};
use bookstore::tartu::{queue, Topology};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Tartu {
    child: Child,
    data: PathBuf,
    topology: Topology,
    http: Http,
    api: u16,
}

impl Tartu {
    /// Ports below 11000 (the shop's tests use 11000 and up) and below the
    /// ephemeral range.
    fn start(slot: u16) -> Tartu {
        let base = 4_000 + ((std::process::id() % 5) as u16 * 2 + slot) * 700;
        let (api, page) = (base + 690, base + 691);
        let data =
            std::env::temp_dir().join(format!("bookstore-tartu-e2e-{}-{slot}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let child = Command::new(env!("CARGO_BIN_EXE_bookstore"))
            .args(["tartu", "--base-port", &base.to_string()])
            .args([
                "--api-port",
                &api.to_string(),
                "--page-port",
                &page.to_string(),
            ])
            .arg("--data-dir")
            .arg(&data)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn bookstore tartu");
        Tartu {
            child,
            data,
            topology: Topology::loopback(base, 3, 2),
            http: Http::new(&format!("http://127.0.0.1:{api}")),
            api,
        }
    }

    async fn wait_ready(&self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(r) = self.http.get("/books").await {
                let n = r.body["books"].as_array().map_or(0, |b| b.len());
                if r.status == 200 && n >= tartu_core::catalogue::seed().len() {
                    return n;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the Tartu bookstore did not start"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn pid(&self, name: &str) -> Option<u32> {
        let s = std::fs::read_to_string(self.data.join("pids").join(format!("{name}.pid"))).ok()?;
        s.trim().parse().ok()
    }

    async fn kill_and_await_restart(&self, name: &str, addr: &str) -> Duration {
        let pid = self.pid(name).expect("pid file");
        // SAFETY: kill(2) with a pid the supervisor wrote for its child.
        assert_eq!(
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) },
            0,
            "kill {name}"
        );
        let t = Instant::now();
        loop {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{name} not restarted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.pid(name).is_some_and(|p| p != pid)
                && (addr.is_empty() || tokio::net::TcpStream::connect(addr).await.is_ok())
            {
                return t.elapsed();
            }
        }
    }

    /// The current leader of the state group (the queue's).
    async fn state_leader(&self) -> u64 {
        let mut c = KvClient::new(self.topology.state_kv.clone(), 78, ClientOptions::default());
        for _ in 0..100 {
            for &id in self.topology.state_kv.keys() {
                if let Ok(s) = c.status(id).await {
                    if s.role == "Leader" {
                        return id;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the state group has no leader");
    }

    /// Every queued order's id, with how many times it is queued.
    async fn queued(&self) -> BTreeMap<String, usize> {
        let mut kv = KvClient::new(self.topology.state_kv.clone(), 77, ClientOptions::default());
        let mut out = BTreeMap::new();
        for (_, q) in queue::list(&mut kv).await.expect("queue readable") {
            *out.entry(q.order_id).or_default() += 1;
        }
        out
    }

    /// The current executor leader's id (from its lease).
    async fn executor_leader(&self) -> u64 {
        let mut kv = KvClient::new(self.topology.state_kv.clone(), 79, ClientOptions::default());
        for _ in 0..100 {
            if let Ok(Some(v)) = kv.get("exec/leader").await {
                let l: bookstore::tartu::executor::LeaderLease = serde_json::from_str(&v).unwrap();
                return l.owner;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no executor leads");
    }

    /// Waits until every approved order is executed or failed and the
    /// queue is empty, then checks: each executed order committed at both
    /// participants and each failed one at neither (two-phase commit is
    /// atomic), no order that was not approved touched them, nothing is
    /// left held, and stock and money are conserved (initial - executed =
    /// final). Returns (executed, failed).
    async fn executed_once(&self, approved: &[String], added: &[(&str, i64)]) -> (usize, usize) {
        use bookstore::shop::Store;
        use bookstore::tartu::participants::{Participant, Resource, DEFAULT_CREDIT_CENTS};
        let t0 = Instant::now();
        let mut statuses = BTreeMap::new();
        loop {
            let mut pending = 0;
            for id in approved {
                let r = self.http.get(&format!("/orders/{id}")).await.unwrap();
                let st = r.body["status"].as_str().unwrap_or("").to_string();
                if st != "executed" && st != "failed" {
                    pending += 1;
                }
                statuses.insert(id.clone(), st);
            }
            if pending == 0 {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(90),
                "{pending} orders not executed: {statuses:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // Every approved order is decided; the queue drains too, checked
        // until it has for up to 30 s (a fresh-clone CI run under load once
        // saw an item left right after every order was decided).
        let t1 = Instant::now();
        loop {
            let q = self.queued().await;
            if q.is_empty() {
                break;
            }
            assert!(
                t1.elapsed() < Duration::from_secs(30),
                "the queue is not drained: {q:?} (statuses {statuses:?})"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let opts = ClientOptions::default();
        let books = Participant::new(
            Resource::Stock,
            Store::new(self.topology.books_kv.clone(), opts.clone()),
        );
        let money = Participant::new(
            Resource::Money,
            Store::new(self.topology.payment_kv.clone(), opts.clone()),
        );
        let bh: BTreeMap<String, _> = books.holds().await.unwrap().into_iter().collect();
        let mh: BTreeMap<String, _> = money.holds().await.unwrap().into_iter().collect();
        // Per transaction (an order's attempt): both participants
        // committed or neither; per order: one committed attempt if it
        // was executed, none if it failed.
        use bookstore::tartu::participants::split_tx;
        let txs: BTreeSet<&String> = bh.keys().chain(mh.keys()).collect();
        let mut committed: BTreeMap<&str, usize> = BTreeMap::new();
        for tx in txs {
            let (b, m) = (
                bh.get(tx).map(|h| h.state.as_str()),
                mh.get(tx).map(|h| h.state.as_str()),
            );
            let (order, _) = split_tx(tx);
            assert!(
                statuses.contains_key(order),
                "order {order} was never approved but reached a participant ({tx})"
            );
            assert!(
                b != Some("prepared") && m != Some("prepared"),
                "transaction {tx} left held: {b:?} {m:?}"
            );
            match (b == Some("committed"), m == Some("committed")) {
                (true, true) => *committed.entry(order).or_default() += 1,
                (false, false) => {}
                _ => panic!("transaction {tx} is not atomic: stock {b:?}, payment {m:?}"),
            }
        }
        for (id, st) in &statuses {
            let n = committed.get(id.as_str()).copied().unwrap_or(0);
            let want = usize::from(st == "executed");
            assert_eq!(n, want, "order {id} is {st}: {n} committed transactions");
        }
        // Conservation.
        let mut taken: BTreeMap<String, i64> = BTreeMap::new();
        for h in bh
            .values()
            .chain(mh.values())
            .filter(|h| h.state == "committed")
        {
            for (k, a) in &h.debits {
                *taken.entry(k.clone()).or_default() += a;
            }
        }
        let mut kv = KvClient::new(self.topology.books_kv.clone(), 80, opts.clone());
        for b in tartu_core::catalogue::seed() {
            let k = format!("book/{}", b.id);
            let now: tartu_core::Book =
                serde_json::from_str(&kv.get(&k).await.unwrap().unwrap()).unwrap();
            let added: i64 = added
                .iter()
                .filter(|(id, _)| *id == b.id)
                .map(|(_, n)| n)
                .sum();
            assert_eq!(
                now.stock,
                b.stock + added - taken.get(&k).copied().unwrap_or(0),
                "stock of {} conserved",
                b.title
            );
        }
        let mut kv = KvClient::new(self.topology.payment_kv.clone(), 81, opts);
        for (k, v) in kv.scan("account/").await.unwrap() {
            let bal: i64 = v.parse().unwrap();
            assert_eq!(
                bal,
                DEFAULT_CREDIT_CENTS - taken.get(&k).copied().unwrap_or(0),
                "money of {k} conserved"
            );
        }
        let executed = statuses.values().filter(|s| *s == "executed").count();
        (executed, statuses.len() - executed)
    }

    /// The vector-clock logs of every process, checked against the scheme.
    fn check_vclock_log(&self) -> checker::vclock::VcResult {
        let scheme = checker::vclock::Scheme::from_json(bookstore::tartu::SCHEME).expect("scheme");
        let mut events = Vec::new();
        for e in std::fs::read_dir(self.data.join("vclock")).expect("vclock dir") {
            let p = e.expect("entry").path();
            let text = std::fs::read_to_string(&p).expect("log");
            events.extend(
                checker::vclock::parse_log(&text, &p.display().to_string()).expect("log parses"),
            );
        }
        checker::vclock::check(&scheme, &events)
    }

    fn stop(&mut self) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let t = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "tartu exited with {status}");
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "tartu did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tartu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn demo() -> Value {
    serde_json::from_str(tartu_core::request::demo_body()).unwrap()
}

/// The demo order with its own card (the fraud service's velocity rule
/// would reject one card used for every order).
fn order(card_seed: u64) -> Value {
    let mut b = demo();
    b["creditCard"]["number"] = card_number("4", card_seed).into();
    b
}

async fn post(http: &Http, body: &Value, key: Option<&str>) -> Reply {
    http.checkout(&serde_json::to_vec(body).unwrap(), key)
        .await
        .expect("an HTTP answer")
}

fn assert_rejected(r: &Reply, code: &str) {
    assert_eq!(r.status, 200, "{code}: {:?}", r.body);
    assert_eq!(r.body["status"], "Order Rejected", "{code}: {:?}", r.body);
    assert_eq!(r.body["code"], code, "{:?}", r.body);
    assert!(
        !r.body["reason"].as_str().unwrap_or("").is_empty(),
        "a reason: {:?}",
        r.body
    );
    assert_eq!(r.body["suggestedBooks"], json!([]));
}

#[test]
fn the_course_contract_over_http_with_its_vector_clock_log_and_queue() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut t = Tartu::start(0);
    runtime().block_on(async {
        let books = t.wait_ready().await;
        let http = &t.http;
        let mut approved = Vec::new();

        // The course's demo order, as its template page sends it.
        let r = post(http, &order(1), None).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["status"], "Order Approved", "{:?}", r.body);
        let sugg = r.body["suggestedBooks"].as_array().expect("suggestions");
        assert!(!sugg.is_empty(), "suggestions for the demo order");
        for s in sugg {
            assert!(
                s["bookId"].is_string() && s["title"].is_string() && s["author"].is_string(),
                "{s}"
            );
        }
        approved.push(r.body["orderId"].as_str().unwrap().to_string());

        // The newer page's spelling of the terms field.
        let mut b = order(2);
        let terms = b
            .as_object_mut()
            .unwrap()
            .remove("termsAndConditionsAccepted")
            .unwrap();
        b["termsAccepted"] = terms;
        let r = post(http, &b, None).await;
        assert_eq!(r.body["status"], "Order Approved", "{:?}", r.body);
        approved.push(r.body["orderId"].as_str().unwrap().to_string());

        // No content type at all (the body arrives as text/plain).
        let r = http
            .send(
                "POST",
                "/checkout",
                &[],
                serde_json::to_vec(&order(3)).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.body["status"], "Order Approved", "{:?}", r.body);
        approved.push(r.body["orderId"].as_str().unwrap().to_string());
        let r = http
            .send(
                "POST",
                "/checkout",
                &[("content-type", "text/plain;charset=UTF-8")],
                serde_json::to_vec(&order(4)).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.body["status"], "Order Approved", "{:?}", r.body);
        approved.push(r.body["orderId"].as_str().unwrap().to_string());

        // A rejection for each check, with its reason.
        let mut b = order(5);
        b["creditCard"]["number"] = "4111111111111112".into();
        assert_rejected(&post(http, &b, None).await, "BAD_CARD_NUMBER");
        let mut b = order(6);
        b["creditCard"]["expirationDate"] = "01/20".into();
        assert_rejected(&post(http, &b, None).await, "CARD_EXPIRED");
        let mut b = order(7);
        b["creditCard"]["cvv"] = "12".into();
        assert_rejected(&post(http, &b, None).await, "BAD_CVV");
        let mut b = order(8);
        b["termsAndConditionsAccepted"] = false.into();
        assert_rejected(&post(http, &b, None).await, "TERMS_NOT_ACCEPTED");
        let mut b = order(9);
        b["user"]["name"] = "".into();
        assert_rejected(&post(http, &b, None).await, "MISSING_USER_DATA");
        let mut b = order(10);
        b["items"] = json!([]);
        assert_rejected(&post(http, &b, None).await, "NO_ITEMS");
        // Fraud: one card for many orders within the window.
        let mut codes = Vec::new();
        for _ in 0..(tartu_core::fraud::MAX_USES + 2) {
            let r = post(http, &order(11), None).await;
            if r.body["status"] == "Order Approved" {
                approved.push(r.body["orderId"].as_str().unwrap().to_string());
            }
            codes.push(r.body["code"].as_str().unwrap_or("").to_string());
        }
        assert!(codes.last().unwrap() == "FRAUD_VELOCITY", "{codes:?}");
        // Fraud: an amount far above the usual.
        let mut b = order(12);
        b["items"] = json!([{"name": "Book B", "quantity": 900}]);
        let r = post(http, &b, None).await;
        assert_eq!(r.body["status"], "Order Rejected", "{:?}", r.body);
        assert!(
            r.body["code"].as_str().unwrap().starts_with("FRAUD"),
            "{:?}",
            r.body
        );
        // An unknown book: a rejection by check (a), answered 422 with the
        // error body too.
        let mut b = order(13);
        b["items"] = json!([{"name": "No Such Book", "quantity": 1}]);
        let r = post(http, &b, None).await;
        assert_eq!(r.status, 422, "{:?}", r.body);
        assert_eq!(r.body["status"], "Order Rejected");
        assert_eq!(r.body["error"]["code"], "UNKNOWN_BOOK");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("No Such Book"),
            "{:?}",
            r.body
        );

        // CORS: the preflight, and the POST's answer.
        let r = http
            .send(
                "OPTIONS",
                "/checkout",
                &[
                    ("origin", "http://localhost:8080"),
                    ("access-control-request-method", "POST"),
                    ("access-control-request-headers", "content-type"),
                ],
                vec![],
            )
            .await
            .unwrap();
        assert!(
            r.status == 200 || r.status == 204,
            "preflight: {}",
            r.status
        );
        assert_eq!(
            r.headers["access-control-allow-origin"],
            "http://localhost:8080"
        );
        assert!(r.headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST"));
        assert!(r.headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_lowercase()
            .contains("content-type"));
        let r = http
            .send(
                "POST",
                "/checkout",
                &[
                    ("origin", "http://localhost:8080"),
                    ("content-type", "application/json"),
                ],
                serde_json::to_vec(&order(14)).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            r.headers["access-control-allow-origin"],
            "http://localhost:8080"
        );
        approved.push(r.body["orderId"].as_str().unwrap().to_string());

        // Bad input: 4xx with the error body, never a 5xx or a dropped
        // connection.
        let bad = tartu_core::request::bad_inputs();
        assert!(bad.len() >= 20);
        for (what, body, status, code) in &bad {
            let r = http
                .send(
                    "POST",
                    "/checkout",
                    &[("content-type", "application/json")],
                    body.clone(),
                )
                .await
                .unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
            assert_eq!(r.status, *status, "{what}: {:?}", r.body);
            assert_eq!(r.body["error"]["code"], *code, "{what}: {:?}", r.body);
            assert!(
                !r.body["error"]["message"].as_str().unwrap_or("").is_empty(),
                "{what}"
            );
        }
        let r = http.get("/nope").await.unwrap();
        assert_eq!(
            (r.status, r.body["error"]["code"].clone()),
            (404, json!("NOT_FOUND"))
        );
        let r = http.send("PUT", "/checkout", &[], vec![]).await.unwrap();
        assert_eq!(r.status, 405);
        assert!(r.body["error"]["message"].is_string());
        let r = http.get("/orders/o-unknown").await.unwrap();
        assert_eq!(r.status, 404);
        // An id that is not UTF-8 once decoded: a JSON 400, not axum's text.
        let r = http.get("/orders/%ff%fe").await.unwrap();
        assert_eq!(
            (r.status, r.body["error"]["code"].clone()),
            (400, json!("INVALID_ORDER_ID"))
        );

        // The books database through its service: set, find, update,
        // stock, delete; a title belongs to one book.
        {
            use bookstore::tartu_pb::{
                books_client::BooksClient, Book, BookId, Empty, StockChange, Title,
            };
            let mut books = BooksClient::connect(format!("http://{}", t.topology.books[1]))
                .await
                .unwrap();
            let n = books.list(Empty {}).await.unwrap().into_inner().books.len();
            let mut b = Book {
                id: "b900".into(),
                title: "The Mythical Man-Month".into(),
                author: "Frederick P. Brooks Jr.".into(),
                price_cents: 3100,
                stock: 4,
                category: "Computer Science".into(),
                tags: vec![],
            };
            assert_eq!(books.set(b.clone()).await.unwrap().into_inner().id, "b900");
            let found = books
                .find_by_title(Title {
                    title: "  the mythical   MAN-MONTH ".into(),
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(found.author, "Frederick P. Brooks Jr.");
            b.title = "The Mythical Man-Month (Anniversary Edition)".into();
            books.update(b.clone()).await.unwrap();
            assert_eq!(
                books
                    .find_by_title(Title {
                        title: "The Mythical Man-Month".into()
                    })
                    .await
                    .unwrap_err()
                    .code(),
                tonic::Code::NotFound,
                "the old title is free again"
            );
            assert_eq!(
                books
                    .add_stock(StockChange {
                        id: "b900".into(),
                        delta: -4
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .stock,
                0
            );
            assert_eq!(
                books
                    .add_stock(StockChange {
                        id: "b900".into(),
                        delta: -1
                    })
                    .await
                    .unwrap_err()
                    .code(),
                tonic::Code::FailedPrecondition
            );
            let mut clash = b.clone();
            clash.id = "b901".into();
            assert_eq!(
                books.set(clash).await.unwrap_err().code(),
                tonic::Code::FailedPrecondition,
                "one book per title"
            );
            let mut nobody = b.clone();
            nobody.id = "b999".into();
            assert_eq!(
                books.update(nobody).await.unwrap_err().code(),
                tonic::Code::NotFound
            );
            // Out of stock now: an order for it is rejected by check (a).
            let mut o = order(16);
            o["items"] =
                json!([{"name": "The Mythical Man-Month (Anniversary Edition)", "quantity": 1}]);
            assert_rejected(&post(http, &o, None).await, "OUT_OF_STOCK");
            books.delete(BookId { id: "b900".into() }).await.unwrap();
            assert_eq!(
                books
                    .get(BookId { id: "b900".into() })
                    .await
                    .unwrap_err()
                    .code(),
                tonic::Code::NotFound
            );
            assert_eq!(
                books.list(Empty {}).await.unwrap().into_inner().books.len(),
                n
            );
            // Seeding again changes nothing.
            assert_eq!(
                books.seed(Empty {}).await.unwrap().into_inner().books.len(),
                n
            );
        }

        // The same idempotency key: the same order, queued once.
        let r1 = post(http, &order(15), Some("client-key-1")).await;
        let r2 = post(http, &order(15), Some("client-key-1")).await;
        assert_eq!(r1.body["orderId"], r2.body["orderId"]);
        assert_eq!(r1.body["status"], "Order Approved", "{:?}", r1.body);
        approved.push(r1.body["orderId"].as_str().unwrap().to_string());
        // The key reused for another order: refused, not the first order's
        // answer (the queue keeps the first order).
        let mut other = order(15);
        other["items"][0]["quantity"] = json!(3);
        let r3 = post(http, &other, Some("client-key-1")).await;
        assert_eq!(
            (r3.status, r3.body["error"]["code"].clone()),
            (422, json!("IDEMPOTENCY_KEY_REUSED")),
            "{:?}",
            r3.body
        );

        // Every approved order was queued and is executed once by the
        // executors (two-phase commit over stock and payment); nothing else
        // is; stock and money are conserved.
        for id in &approved {
            let r = http.get(&format!("/orders/{id}")).await.unwrap();
            let st = r.body["status"].as_str().unwrap_or("");
            assert!(
                ["queued", "executing", "executed"].contains(&st),
                "{:?}",
                r.body
            );
        }
        let (executed, failed) = t.executed_once(&approved, &[]).await;
        assert_eq!((executed, failed), (approved.len(), 0));

        // Give the final clears a moment, then check the vector-clock log.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let v = t.check_vclock_log();
        assert!(v.violations.is_empty(), "{}", v.explain());
        eprintln!(
            "{books} books; {} approved, vector-clock log: {}",
            approved.len(),
            v.explain().lines().next().unwrap_or("")
        );
        let _ = t.api;
    });
    t.stop();
}

/// Sends a checkout until there is a definite answer (2xx or 4xx), with
/// the same idempotency key: a 503 or a lost connection is retried.
async fn definite(http: &Http, body: &Value, key: &str, retries: &Mutex<Vec<String>>) -> Reply {
    let bytes = serde_json::to_vec(body).unwrap();
    let t = Instant::now();
    loop {
        match http.checkout(&bytes, Some(key)).await {
            Ok(r) if r.status < 500 => return r,
            Ok(r) => {
                assert_eq!(r.status, 503, "only retryable errors: {:?}", r.body);
                assert!(r.body["error"]["message"].is_string(), "{:?}", r.body);
                retries
                    .lock()
                    .unwrap()
                    .push(format!("503 {}", r.body["error"]["code"]));
            }
            Err(e) => retries.lock().unwrap().push(format!(
                "no answer: {}",
                e.chars().take(60).collect::<String>()
            )),
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "no definite answer for {key}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn every_approved_order_is_executed_once_while_single_processes_are_killed() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut t = Tartu::start(1);
    runtime().block_on(async {
        t.wait_ready().await;
        let t = &t;
        let top = &t.topology;
        let retries = Mutex::new(Vec::new());
        let stop = std::sync::atomic::AtomicBool::new(false);
        let burst_go = tokio::sync::Notify::new();
        // Stock for every order (each takes 1 "Book A" and 2 "Book B").
        {
            use bookstore::tartu_pb::{books_client::BooksClient, StockChange};
            let mut books = BooksClient::connect(format!("http://{}", top.books[0])).await.unwrap();
            for id in ["b001", "b002"] {
                books.add_stock(StockChange { id: id.into(), delta: 10_000 }).await.unwrap();
            }
        }
        let kills = async {
            let mut log = Vec::new();
            tokio::time::sleep(Duration::from_millis(500)).await;
            for (name, addr) in [
                ("verification-svc-1", top.verification[0].clone()),
                ("fraud-svc-2", top.fraud[1].clone()),
                ("suggestions-svc-1", top.suggestions[0].clone()),
                ("orchestrator", format!("127.0.0.1:{}", t.api)),
            ] {
                let back = t.kill_and_await_restart(name, &addr).await;
                log.push(format!("{name} back in {} ms", back.as_millis()));
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
            // The leader of the queue's group.
            let leader = t.state_leader().await;
            let name = format!("state-kv-{leader}");
            let back = t
                .kill_and_await_restart(&name, &top.state_kv[&leader])
                .await;
            log.push(format!("{name} (leader) back in {} ms", back.as_millis()));
            tokio::time::sleep(Duration::from_millis(700)).await;
            // The executor leader, a payment replica, a payment store
            // replica and a books store replica, while 200 more checkouts
            // arrive at once.
            burst_go.notify_one();
            let leader = t.executor_leader().await;
            let name = format!("executor-{leader}");
            let back = t.kill_and_await_restart(&name, "").await;
            log.push(format!("{name} (leader) back in {} ms", back.as_millis()));
            tokio::time::sleep(Duration::from_millis(700)).await;
            for (name, addr) in [
                ("payment-svc-1", top.payment[0].clone()),
                ("payment-kv-2", top.payment_kv[&2].clone()),
                ("books-kv-1", top.books_kv[&1].clone()),
            ] {
                let back = t.kill_and_await_restart(name, &addr).await;
                log.push(format!("{name} back in {} ms", back.as_millis()));
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            log
        };
        // 200 checkouts at once when the executor leader is about to die.
        let burst = async {
            burst_go.notified().await;
            let all = (0..200u64).map(|i| {
                let retries = &retries;
                async move {
                    let key = format!("burst-{i}");
                    let r = definite(&t.http, &order(900_000 + i), &key, retries).await;
                    assert_eq!(r.status, 200, "{:?}", r.body);
                    (
                        r.body["orderId"].as_str().unwrap().to_string(),
                        r.body["status"] == "Order Approved",
                    )
                }
            });
            futures_util::future::join_all(all).await
        };
        // 16 clients, each checking out until the kills are over.
        let clients = (0..16u64).map(|c| {
            let (stop, retries) = (&stop, &retries);
            async move {
                let mut mine = Vec::new();
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let key = format!("kill-test-{c}-{i}");
                    let r = definite(&t.http, &order(1000 + c * 1000 + i), &key, retries).await;
                    assert_eq!(r.status, 200, "{:?}", r.body);
                    mine.push((
                        r.body["orderId"].as_str().unwrap().to_string(),
                        r.body["status"] == "Order Approved",
                    ));
                    i += 1;
                }
                mine
            }
        });
        let (answers, log, burst) =
            tokio::join!(futures_util::future::join_all(clients), kills, burst);
        let burst_approved = burst.iter().filter(|(_, a)| *a).count();
        let answers: Vec<(String, bool)> = answers.into_iter().flatten().chain(burst).collect();
        let approved: Vec<&String> = answers
            .iter()
            .filter(|(_, a)| *a)
            .map(|(id, _)| id)
            .collect();
        assert!(
            approved.len() >= 50,
            "enough checkouts ran: {}",
            approved.len()
        );
        let approved: Vec<String> = approved.into_iter().cloned().collect();
        let (executed, failed) = t.executed_once(&approved, &[("b001", 10_000), ("b002", 10_000)]).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let v = t.check_vclock_log();
        assert!(v.violations.is_empty(), "{}", v.explain());
        let retries = retries.lock().unwrap();
        eprintln!(
            "under kills: {}; {} checkouts ({burst_approved} of a burst of 200 at once approved), {} approved: {executed} executed once, {failed} failed at both participants; {} retries ({:?}...)",
            log.join(", "),
            answers.len(),
            approved.len(),
            retries.len(),
            retries.iter().take(5).collect::<Vec<_>>()
        );
        // Definite answers: the orchestrator keeps trying while a checkout's
        // outcome is unknown, so clients see no 503, only lost connections
        // while the orchestrator itself is down.
        let unavailable: Vec<&String> = retries.iter().filter(|r| r.starts_with("503")).collect();
        assert!(unavailable.is_empty(), "503 answers: {unavailable:?}");
    });
    t.stop();
}
