//! Real mode, end to end: `bookstore pad` (the third course's platform: 6
//! Raft KV groups x 3, 2 replicas each of auth, catalog, cart, payment,
//! orders and the registry, 2 GraphQL gateways; 32 processes) on loopback,
//! driven over HTTP with the course's schema.
//!
//! 1. The flow and its errors: register, login, browse, cart, `initOrder`
//!    to PAID; ITEMS_REJECTED and PAYMENT_FAILED with nothing held; every
//!    auth failure (wrong password, unknown e-mail, no, forged, tampered,
//!    revoked token, a reused refresh token revoking its login, a non-admin
//!    catalogue write); 26 kinds of malformed requests and input, each
//!    answered with an error and a code, never a 5xx; the HTTP refusals
//!    (other methods, GraphQL over GET, a body over the limit) as JSON;
//!    GraphiQL's page and assets and the standard introspection query it
//!    sends; the registry's view, also after a pause longer than a lease;
//!    a read while its store group is stopped: UNAVAILABLE, not done.
//! 2. The same flow while a catalog, cart, orders, payment, auth replica
//!    and a gateway are SIGKILLed one after another: every order ends in a
//!    final status, and units and money add up.
//!
//! The tests run one at a time (each starts 32 processes).
#![cfg(not(madsim))]

use bookstore::client::{ClientOptions, KvClient};
use bookstore::pad::gateway::client::{Answer, Gql};
use bookstore::pad::Topology;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

struct Pad {
    child: Child,
    data: PathBuf,
    topology: Topology,
    gw: Vec<Gql>,
}

impl Drop for Pad {
    fn drop(&mut self) {
        // SAFETY: SIGTERM to our child: the supervisor stops the others.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

impl Pad {
    /// Ports 21000-22999: below the ephemeral range, away from the other
    /// tests' (the Tartu tests' 4000-11000, the shop's 11000 and up).
    fn start(slot: u16) -> Pad {
        let base = 21_000 + ((std::process::id() % 3) as u16 * 2 + slot) * 300;
        let gw = base + 250;
        let data =
            std::env::temp_dir().join(format!("bookstore-pad-e2e-{}-{slot}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let child = Command::new(env!("CARGO_BIN_EXE_bookstore"))
            .args(["pad", "--base-port", &base.to_string()])
            .args(["--gateway-port", &gw.to_string()])
            .arg("--data-dir")
            .arg(&data)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn bookstore pad");
        let topology = Topology::loopback(base, 3, 2, gw, 2);
        let gw = topology
            .gateways
            .iter()
            .map(|g| Gql::new(&format!("http://{g}")))
            .collect();
        Pad {
            child,
            data,
            topology,
            gw,
        }
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let mut ready = true;
            for g in &self.gw {
                let ok = match g.get("/status").await {
                    Ok(a) => bookstore::pad::SERVICES.iter().all(|s| {
                        a.body["routable"][*s]
                            .as_array()
                            .is_some_and(|v| v.len() == 2)
                    }),
                    Err(_) => false,
                };
                ready &= ok;
            }
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "the platform did not start");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn pid(&self, name: &str) -> Option<u32> {
        let s = std::fs::read_to_string(self.data.join("pids").join(format!("{name}.pid"))).ok()?;
        s.trim().parse().ok()
    }

    fn kill(&self, name: &str) -> u32 {
        let pid = self.pid(name).expect("pid file");
        // SAFETY: kill(2) with a pid the supervisor wrote for its child.
        assert_eq!(
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) },
            0,
            "kill {name}"
        );
        pid
    }

    async fn await_restart(&self, name: &str, old: u32) {
        let t = Instant::now();
        while self.pid(name) == Some(old) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{name} not restarted"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

const REGISTER: &str =
    "mutation($e: String!, $p: String!) { registerUser(input: {email: $e, password: $p}) }";
const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) }";
const ADD: &str =
    "mutation($p: Int!, $q: Int!) { addToCart(input: {productId: $p, quantity: $q}) }";
const CART: &str = "{ cart { userId items { productId quantity imageUrl price name } } }";
const STATUS: &str = "query($id: Float!) { orderStatus(orderId: $id) { value } }";
const PRODUCT: &str = "query($id: Float!) { product(id: $id) { id name price unitsAvailable imageUrl categories { id name } } }";
const INIT: &str = "mutation { initOrder { orderId } }";

async fn q(g: &Gql, query: &str, vars: Value, token: Option<&str>) -> Answer {
    let a = g.query(query, vars, token).await.expect("an HTTP answer");
    assert!(a.status < 500, "{query}: HTTP {} {}", a.status, a.body);
    a
}

/// `data.<field>`, or a panic naming the error.
fn data<'a>(a: &'a Answer, field: &str) -> &'a Value {
    a.data(field)
        .unwrap_or_else(|| panic!("{field}: expected data, got {}", a.body))
}

fn code(a: &Answer) -> &str {
    a.code()
        .unwrap_or_else(|| panic!("expected an error with a code, got {}", a.body))
}

async fn login(g: &Gql, e: &str, p: &str) -> (String, String) {
    let a = q(g, LOGIN, json!({"e": e, "p": p}), None).await;
    let t = data(&a, "login").as_str().expect("token").to_string();
    (t, a.refresh.clone().expect("x-refresh-token"))
}

/// Polls `orderStatus` until it is final.
async fn final_status(g: &Gql, token: &str, id: i64) -> String {
    let t = Instant::now();
    loop {
        let a = g.query(STATUS, json!({"id": id}), Some(token)).await;
        if let Ok(a) = a {
            if let Some(v) = a.data("orderStatus") {
                let s = v["value"].as_str().unwrap_or("").to_string();
                if ["PAID", "PAYMENT_FAILED", "ITEMS_REJECTED"].contains(&s.as_str()) {
                    return s;
                }
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "order {id} not final within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn units(g: &Gql, id: i64) -> i64 {
    let a = q(g, PRODUCT, json!({"id": id}), None).await;
    data(&a, "product")["unitsAvailable"].as_i64().unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn the_course_flow_and_every_error() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pad = Pad::start(0);
    runtime().block_on(async {
        pad.wait_ready().await;
        let (g, g2) = (&pad.gw[0], &pad.gw[1]);
        let pw = "correct horse battery";

        // Accounts: the first is the admin.
        let a = q(g, REGISTER, json!({"e": "Admin@Example.com", "p": pw}), None).await;
        assert_eq!(data(&a, "registerUser"), "1");
        let a = q(g2, REGISTER, json!({"e": "reader@example.com", "p": pw}), None).await;
        assert_eq!(data(&a, "registerUser"), "2");
        let a = q(g, REGISTER, json!({"e": "admin@example.com", "p": "another password"}), None).await;
        assert_eq!(code(&a), "EMAIL_TAKEN");
        let wrong = q(g, LOGIN, json!({"e": "admin@example.com", "p": "wrong password"}), None).await;
        let unknown = q(g, LOGIN, json!({"e": "nobody@example.com", "p": pw}), None).await;
        assert_eq!(code(&wrong), "INVALID_CREDENTIALS");
        assert_eq!(code(&unknown), "INVALID_CREDENTIALS");
        assert_eq!(
            wrong.body["errors"][0]["message"], unknown.body["errors"][0]["message"],
            "never a hint of which part was wrong"
        );
        let (admin, _) = login(g, "admin@example.com", pw).await;
        let (reader, reader_refresh) = login(g2, "reader@example.com", pw).await;

        // The catalogue: admin writes, anyone reads.
        let a = q(
            g,
            "mutation { createCategory(input: {name: \"Books\", description: \"Paper\"}) { id name description } }",
            json!({}),
            Some(&admin),
        )
        .await;
        let cat = data(&a, "createCategory")["id"].as_i64().unwrap();
        let a = q(
            g,
            "mutation { createCategory(input: {name: \"Nope\", description: \"\"}) { id } }",
            json!({}),
            Some(&reader),
        )
        .await;
        assert_eq!(code(&a), "FORBIDDEN");
        let make = |name: &str, price: f64, n: i64| {
            json!({"query": "mutation($n: String!, $p: Float!, $u: Int!, $c: [Int!]!) { createProduct(input: {name: $n, price: $p, imageUrl: \"https://example.com/b.png\", unitsAvailable: $u, categoriesIds: $c}) { id name price unitsAvailable categories { id name } } }",
                   "vars": {"n": name, "p": price, "u": n, "c": [cat]}})
        };
        let mut products = Vec::new();
        for (name, price, n) in [("Dune", 12.5, 5), ("Atlas", 2_000.0, 5)] {
            let m = make(name, price, n);
            let a = q(g, m["query"].as_str().unwrap(), m["vars"].clone(), Some(&admin)).await;
            let p = data(&a, "createProduct");
            assert_eq!(p["price"], price);
            assert_eq!(p["categories"][0]["name"], "Books");
            products.push(p["id"].as_i64().unwrap());
        }
        let (dune, atlas) = (products[0], products[1]);
        let a = q(g2, "{ hello categories { id name description } }", json!({}), None).await;
        assert_eq!(data(&a, "categories")[0]["name"], "Books");
        let a = q(g2, PRODUCT, json!({"id": dune}), None).await;
        assert_eq!(data(&a, "product")["name"], "Dune");
        assert_eq!(code(&q(g, PRODUCT, json!({"id": 999}), None).await), "NOT_FOUND");

        // No token, a garbage one, a forged one, a tampered one.
        assert_eq!(code(&q(g, CART, json!({}), None).await), "UNAUTHENTICATED");
        for (query, vars) in [
            (ADD, json!({"p": 999, "q": 1})),
            (STATUS, json!({"id": -1})),
            ("mutation { removeItem(productId: 0.5) }", json!({})),
        ] {
            let a = q(g, query, vars, None).await;
            assert_eq!(code(&a), "UNAUTHENTICATED", "without a token, before any other check: {query}");
        }
        assert_eq!(code(&q(g, CART, json!({}), Some("garbage")).await), "UNAUTHENTICATED");
        let forged = "v1.eyJzdWIiOjEsImFkbWluIjp0cnVlfQ.AAAA";
        assert_eq!(code(&q(g, CART, json!({}), Some(forged)).await), "UNAUTHENTICATED");
        let mut tampered = reader.clone().into_bytes();
        let i = tampered.len() / 2;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(code(&q(g, CART, json!({}), Some(&tampered)).await), "UNAUTHENTICATED");

        // The cart and an order to PAID.
        data(&q(g, ADD, json!({"p": dune, "q": 1}), Some(&reader)).await, "addToCart");
        let upd = "mutation($p: Int!, $q: Int!) { updateItemQuantity(input: {productId: $p, newQuantity: $q}) }";
        data(&q(g2, upd, json!({"p": dune, "q": 2}), Some(&reader)).await, "updateItemQuantity");
        let a = q(g, CART, json!({}), Some(&reader)).await;
        let cart = data(&a, "cart");
        assert_eq!(cart["userId"], 2);
        assert_eq!(cart["items"][0]["quantity"], 2);
        assert_eq!(cart["items"][0]["name"], "Dune");
        assert_eq!(cart["items"][0]["price"], 1250);
        let a = q(g, INIT, json!({}), Some(&reader)).await;
        let order = data(&a, "initOrder")["orderId"].as_i64().unwrap();
        assert_eq!(final_status(g2, &reader, order).await, "PAID");
        assert_eq!(units(g, dune).await, 3);
        // PAID first, then the saga's last step takes the units out of the
        // cart.
        let t = Instant::now();
        loop {
            let a = q(g, CART, json!({}), Some(&reader)).await;
            if data(&a, "cart")["items"] == json!([]) {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(10), "a paid order empties the cart: {}", a.body);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Another user's order is unknown to you.
        let a = q(g, STATUS, json!({"id": order}), Some(&admin)).await;
        assert_eq!(data(&a, "orderStatus")["value"], "UNKNOWN");

        // ITEMS_REJECTED: more than there is; nothing held.
        data(&q(g, ADD, json!({"p": dune, "q": 10}), Some(&reader)).await, "addToCart");
        let a = q(g, INIT, json!({}), Some(&reader)).await;
        let order = data(&a, "initOrder")["orderId"].as_i64().unwrap();
        assert_eq!(final_status(g, &reader, order).await, "ITEMS_REJECTED");
        assert_eq!(units(g, dune).await, 3);
        data(&q(g, "mutation { clearCart }", json!({}), Some(&reader)).await, "clearCart");

        // PAYMENT_FAILED: 2,000.00 against a credit of 1,000.00; the units
        // are given back.
        data(&q(g, ADD, json!({"p": atlas, "q": 1}), Some(&reader)).await, "addToCart");
        let a = q(g, INIT, json!({}), Some(&reader)).await;
        let order = data(&a, "initOrder")["orderId"].as_i64().unwrap();
        assert_eq!(final_status(g, &reader, order).await, "PAYMENT_FAILED");
        assert_eq!(units(g, atlas).await, 5);
        let a = q(g, "mutation($p: Float!) { removeItem(productId: $p) }", json!({"p": atlas}), Some(&reader)).await;
        data(&a, "removeItem");
        assert_eq!(code(&q(g, INIT, json!({}), Some(&reader)).await), "BAD_USER_INPUT");

        // Refresh rotates; a reused refresh token revokes the whole login.
        let a = g.query_with("mutation { refresh }", json!({}), None, Some(&reader_refresh)).await.unwrap();
        let fresh = data(&a, "refresh").as_str().unwrap().to_string();
        data(&q(g, CART, json!({}), Some(&fresh)).await, "cart");
        let a = g.query_with("mutation { refresh }", json!({}), None, Some(&reader_refresh)).await.unwrap();
        assert_eq!(code(&a), "UNAUTHENTICATED");
        assert_eq!(code(&q(g2, CART, json!({}), Some(&fresh)).await), "UNAUTHENTICATED");
        let a = g.query("mutation { refresh }", json!({}), None).await.unwrap();
        assert_eq!(code(&a), "UNAUTHENTICATED");

        // Logout on one gateway is seen at once on the other.
        let (tok, _) = login(g, "reader@example.com", pw).await;
        data(&q(g2, CART, json!({}), Some(&tok)).await, "cart");
        data(&q(g, "mutation { logout }", json!({}), Some(&tok)).await, "logout");
        data(&q(g2, "mutation { logout }", json!({}), Some(&tok)).await, "logout");
        assert_eq!(code(&q(g2, CART, json!({}), Some(&tok)).await), "UNAUTHENTICATED");
        assert_eq!(code(&q(g2, ADD, json!({"p": dune, "q": 1}), Some(&tok)).await), "UNAUTHENTICATED");
        let (reader, _) = login(g, "reader@example.com", pw).await;

        // Malformed requests and input: an error with a code, never a 5xx.
        let raw: Vec<(&str, &[u8])> = vec![
            ("not JSON", b"{query: hello"),
            ("empty body", b""),
            ("a JSON array", b"[]"),
            ("query not a string", br#"{"query": 5}"#),
            ("no query", br#"{"variables": {}}"#),
        ];
        for (what, body) in raw {
            let a = g
                .raw("POST", "/graphql", &[("content-type", "application/json")], body.to_vec())
                .await
                .unwrap();
            assert_eq!(a.status, 400, "{what}: {}", a.body);
            assert_eq!(code(&a), "BAD_REQUEST", "{what}");
        }
        let long = format!("{}@example.com", "x".repeat(10_000));
        let bad: Vec<(&str, &str, Value, bool, &str)> = vec![
            ("syntax error", "{ hello", json!({}), false, "GRAPHQL_VALIDATION_FAILED"),
            ("unknown field", "{ nope }", json!({}), false, "GRAPHQL_VALIDATION_FAILED"),
            ("missing argument", "{ product { id } }", json!({}), false, "GRAPHQL_VALIDATION_FAILED"),
            ("argument of the wrong type", "{ product(id: \"x\") { id } }", json!({}), false, "GRAPHQL_VALIDATION_FAILED"),
            ("mutation without its input", "mutation { registerUser }", json!({}), false, "GRAPHQL_VALIDATION_FAILED"),
            ("input field of the wrong type", "mutation { registerUser(input: {email: 5, password: \"x\"}) }", json!({}), false, "GRAPHQL_VALIDATION_FAILED"),
            ("variable of the wrong type", PRODUCT, json!({"id": "abc"}), false, "GRAPHQL_VALIDATION_FAILED"),
            // Apollo Server's code for a variable that fails coercion (2.23+).
            ("missing variable", PRODUCT, json!({}), false, "BAD_USER_INPUT"),
            ("no subscriptions", "subscription { hello }", json!({}), false, "GRAPHQL_VALIDATION_FAILED"),
            ("a fractional id", "{ product(id: 1.5) { id } }", json!({}), false, "BAD_USER_INPUT"),
            ("a negative order id", "{ orderStatus(orderId: -1) { value } }", json!({}), true, "BAD_USER_INPUT"),
            ("a malformed e-mail", REGISTER, json!({"e": "not-an-email", "p": pw}), false, "BAD_USER_INPUT"),
            ("a short password", REGISTER, json!({"e": "short@example.com", "p": "abc"}), false, "BAD_USER_INPUT"),
            ("a 10 KB e-mail", REGISTER, json!({"e": long, "p": pw}), false, "BAD_USER_INPUT"),
            ("quantity 0", ADD, json!({"p": dune, "q": 0}), true, "BAD_USER_INPUT"),
            ("quantity 100,000", ADD, json!({"p": dune, "q": 100_000}), true, "BAD_USER_INPUT"),
            ("an unknown product", ADD, json!({"p": 999, "q": 1}), true, "NOT_FOUND"),
            ("a product not in the cart", "mutation { updateItemQuantity(input: {productId: 999, newQuantity: 1}) }", json!({}), true, "NOT_FOUND"),
            ("an empty category name", "mutation { createCategory(input: {name: \"  \", description: \"x\"}) { id } }", json!({}), true, "BAD_USER_INPUT"),
        ];
        let admin_only = ["an empty category name"];
        for (what, query, vars, auth, want) in bad {
            let tok = if admin_only.contains(&what) { &admin } else { &reader };
            let a = q(g, query, vars, auth.then_some(tok.as_str())).await;
            assert_eq!(code(&a), want, "{what}: {}", a.body);
        }
        let m = make("Free", -1.0, 1);
        let a = q(g, m["query"].as_str().unwrap(), m["vars"].clone(), Some(&admin)).await;
        assert_eq!(code(&a), "BAD_USER_INPUT", "a negative price: {}", a.body);
        // A long list of categories: refused at once, definitely, naming
        // the field and the limit; repeats count once in the product.
        let m = make("Many", 1.0, 1);
        let mut vars = m["vars"].clone();
        vars["c"] = json!(vec![cat; 100_000]);
        let a = q(g, m["query"].as_str().unwrap(), vars, Some(&admin)).await;
        assert_eq!(code(&a), "BAD_USER_INPUT", "{}", a.body);
        assert_eq!(a.body["errors"][0]["message"], "categoriesIds: at most 100 ids, got 100000");
        let mut vars = m["vars"].clone();
        vars["c"] = json!(vec![cat; 100]);
        let a = q(g, m["query"].as_str().unwrap(), vars, Some(&admin)).await;
        let many = data(&a, "createProduct");
        assert_eq!(many["categories"].as_array().map(Vec::len), Some(1), "{}", a.body);
        let m = make("Nowhere", 1.0, 1);
        let mut vars = m["vars"].clone();
        vars["c"] = json!([424242]);
        let a = q(g, m["query"].as_str().unwrap(), vars, Some(&admin)).await;
        assert!(
            matches!(a.code(), Some("NOT_FOUND" | "BAD_USER_INPUT")),
            "an unknown category: {}",
            a.body
        );
        assert_eq!(units(g, dune).await, 3, "no malformed request changed anything");
        // The messages name what to fix.
        let a = q(g, ADD, json!({"p": 999, "q": 1}), Some(&reader)).await;
        assert_eq!(a.body["errors"][0]["message"], "productId: no product 999");
        let a = g
            .raw(
                "POST",
                "/graphql",
                &[("authorization", &format!("BEARER {reader}"))],
                serde_json::to_vec(&json!({"query": CART})).unwrap(),
            )
            .await
            .unwrap();
        data(&a, "cart");

        // HTTP refusals: JSON in GraphQL's shape, saying what to send.
        for (method, path, accept, status) in [
            ("GET", "/graphql?query=%7Bhello%7D", "application/json", 405),
            ("GET", "/graphql", "*/*", 405),
            ("PUT", "/graphql", "*/*", 405),
            ("OPTIONS", "/graphql", "*/*", 405),
            ("POST", "/status", "*/*", 405),
        ] {
            let a = g.raw(method, path, &[("accept", accept)], Vec::new()).await.unwrap();
            assert_eq!(a.status, status, "{method} {path}: {}", a.body);
            assert_eq!(code(&a), "BAD_REQUEST", "{method} {path}");
            let m = a.body["errors"][0]["message"].as_str().unwrap();
            assert!(m.contains("POST /graphql with a JSON body"), "{method} {path}: {m}");
        }
        // One byte over the limit: the gateway reads the whole body before
        // it refuses it (with a larger one it refuses with bytes unread,
        // closes, and the client may see a broken pipe instead of the 413).
        let (head, tail) = ("{\"query\": \"{ hello }\", \"pad\": \"", "\"}");
        let filler = "x".repeat((2 << 20) + 1 - head.len() - tail.len());
        let big = format!("{head}{filler}{tail}");
        assert_eq!(big.len(), (2 << 20) + 1);
        let a = g.raw("POST", "/graphql", &[], big.into_bytes()).await.unwrap();
        assert_eq!(a.status, 413);
        assert_eq!(code(&a), "BAD_REQUEST");
        assert!(a.body["errors"][0]["message"].as_str().unwrap().contains("2097152 bytes"), "{}", a.body);

        // GraphiQL (served by the gateway itself, to browsers), the
        // standard introspection query it sends on load, and the registry's
        // view.
        let page = g.raw("GET", "/graphql", &[("accept", "text/html")], Vec::new()).await.unwrap();
        assert_eq!(page.status, 200);
        let a = q(g, include_str!("../src/pad/introspection.graphql"), json!({}), None).await;
        assert!(a.body.get("errors").is_none(), "introspection: {}", a.body);
        assert_eq!(a.body["data"]["__schema"]["queryType"]["name"], "Query");
        for asset in ["/graphiql/graphiql.min.js", "/graphiql/graphiql.min.css", "/graphiql/react.production.min.js", "/graphiql/react-dom.production.min.js"] {
            assert_eq!(g.raw("GET", asset, &[], Vec::new()).await.unwrap().status, 200, "{asset}");
        }
        // After a pause longer than a lease, the first look shows
        // everything up (not an old listing whose leases all lapsed).
        for pause in [0, 4] {
            tokio::time::sleep(Duration::from_secs(pause)).await;
            let s = g2.get("/status").await.unwrap();
            assert_eq!(s.status, 200);
            for svc in bookstore::pad::SERVICES {
                assert_eq!(s.body["routable"][svc].as_array().map(Vec::len), Some(2), "after {pause} s, {svc}: {}", s.body);
            }
        }

        // A read while the cart's store group is stopped: UNAVAILABLE, not
        // done (a read changes nothing), never "outcome unknown".
        let stopped: Vec<u32> = (1..=3).map(|i| pad.pid(&format!("cart-kv-{i}")).expect("pid")).collect();
        for &pid in &stopped {
            // SAFETY: kill(2) with pids the supervisor wrote for its children.
            assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) }, 0);
        }
        let t = Instant::now();
        let a = g.query(CART, json!({}), Some(&reader)).await;
        eprintln!("cart read with its store stopped: {:.1} s, {:?}", t.elapsed().as_secs_f64(), a.as_ref().map(|a| &a.body));
        for &pid in &stopped {
            // SAFETY: as above.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
        }
        let a = a.expect("an HTTP answer");
        assert_eq!(code(&a), "UNAVAILABLE", "{}", a.body);
        let m = a.body["errors"][0]["message"].as_str().unwrap();
        assert!(m.starts_with("not done (a read): send again"), "{m}");
    });
}

/// One shopper's flow with retries on the other gateway; the order ids it
/// learned.
async fn shop(pad: &Pad, who: &str, product: i64) -> Vec<i64> {
    let pw = "correct horse battery";
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut n = 0usize;
    // Sends until a definite answer (data, or an error other than
    // UNAVAILABLE / no HTTP answer); returns it.
    async fn definite(
        pad: &Pad,
        n: &mut usize,
        deadline: Instant,
        query: &str,
        vars: Value,
        tok: Option<&str>,
    ) -> Answer {
        loop {
            let g = &pad.gw[*n % pad.gw.len()];
            match g.query(query, vars.clone(), tok).await {
                Ok(a) if a.status < 500 && a.code() != Some("UNAVAILABLE") => return a,
                Ok(a) => eprintln!("{query}: {} — trying again", a.body),
                Err(e) => eprintln!("{query}: {e} — trying the other gateway"),
            }
            *n += 1;
            assert!(
                Instant::now() < deadline,
                "{query}: no definite answer within 90 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Registered once the answer is definite: the new user, or the e-mail
    // taken (by an attempt whose answer was lost). An unknown outcome may be
    // either, and a login would be refused for good if the user was not
    // created: it is sent again, and the e-mail tells which.
    let registered = loop {
        let a = definite(
            pad,
            &mut n,
            deadline,
            REGISTER,
            json!({"e": who, "p": pw}),
            None,
        )
        .await;
        if a.data("registerUser").is_some() || a.code() == Some("EMAIL_TAKEN") {
            break a.body;
        }
        assert_eq!(a.code(), Some("OUTCOME_UNKNOWN"), "{}", a.body);
        eprintln!("register {who}: {} — sending it again", a.body);
        assert!(Instant::now() < deadline, "register: {}", a.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let tok = loop {
        let a = definite(
            pad,
            &mut n,
            deadline,
            LOGIN,
            json!({"e": who, "p": pw}),
            None,
        )
        .await;
        if let Some(t) = a.data("login") {
            break t.as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "login: {} (registered with the answer {registered})",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let a = definite(
        pad,
        &mut n,
        deadline,
        ADD,
        json!({"p": product, "q": 1}),
        Some(&tok),
    )
    .await;
    if a.data("addToCart").is_none() {
        assert_eq!(a.code(), Some("OUTCOME_UNKNOWN"), "{}", a.body);
    }
    // The cart has the product (added now, or by the unknown attempt).
    let a = definite(pad, &mut n, deadline, CART, json!({}), Some(&tok)).await;
    if data(&a, "cart")["items"].as_array().unwrap().is_empty() {
        let a = definite(
            pad,
            &mut n,
            deadline,
            ADD,
            json!({"p": product, "q": 1}),
            Some(&tok),
        )
        .await;
        data(&a, "addToCart");
    }
    let mut ids = Vec::new();
    let a = definite(pad, &mut n, deadline, INIT, json!({}), Some(&tok)).await;
    match a.data("initOrder") {
        Some(o) => ids.push(o["orderId"].as_i64().unwrap()),
        None => assert_eq!(a.code(), Some("OUTCOME_UNKNOWN"), "{}", a.body),
    }
    for &id in &ids {
        let s = final_status(&pad.gw[(n + 1) % 2], &tok, id).await;
        assert_eq!(s, "PAID", "order {id}");
    }
    ids
}

#[test]
fn the_flow_while_a_replica_of_each_service_and_a_gateway_are_killed() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pad = Pad::start(1);
    runtime().block_on(async {
        pad.wait_ready().await;
        let g = &pad.gw[0];
        let pw = "correct horse battery";
        q(g, REGISTER, json!({"e": "admin@example.com", "p": pw}), None).await;
        let (admin, _) = login(g, "admin@example.com", pw).await;
        let a = q(
            g,
            "mutation { createProduct(input: {name: \"Dune\", price: 10, unitsAvailable: 1000, categoriesIds: []}) { id } }",
            json!({}),
            Some(&admin),
        )
        .await;
        let dune = data(&a, "createProduct")["id"].as_i64().unwrap();
        let mut learned = Vec::new();
        for (i, victim) in ["catalog-svc-1", "cart-svc-1", "orders-svc-1", "payment-svc-1", "auth-svc-1", "gateway-1"]
            .iter()
            .enumerate()
        {
            let t = Instant::now();
            let old = pad.kill(victim);
            learned.extend(shop(&pad, &format!("shopper{i}@example.com"), dune).await);
            eprintln!("{victim} killed: the flow took {:.1} s", t.elapsed().as_secs_f64());
            pad.await_restart(victim, old).await;
        }
        assert!(learned.len() >= 5, "orders learned: {learned:?}");

        // Every order final; units and money add up (read from the stores).
        let mut orders_kv = KvClient::new(pad.topology.kv["orders"].clone(), 91, ClientOptions::default());
        let t = Instant::now();
        let all = loop {
            let os = bookstore::pad::orders::unfinished(&mut orders_kv).await.unwrap();
            if os.is_empty() {
                break orders_kv.scan("order/id/").await.unwrap();
            }
            assert!(t.elapsed() < Duration::from_secs(30), "unfinished orders: {os:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let mut paid_units = 0;
        let mut paid_by = std::collections::BTreeMap::<u64, i64>::new();
        for (_, v) in &all {
            let o: bookstore::pad::orders::Order = serde_json::from_str(v).unwrap();
            assert!(o.saga.status.is_final(), "order {} not final: {:?}", o.id, o.saga);
            if o.saga.status == pad_core::order::Status::Paid {
                paid_units += o.lines.iter().map(|l| l.quantity).sum::<i64>();
                *paid_by.entry(o.user).or_default() += o.total_cents;
            }
        }
        assert_eq!(units(g, dune).await, 1000 - paid_units);
        let mut pay = KvClient::new(pad.topology.kv["payment"].clone(), 92, ClientOptions::default());
        for (user, cents) in paid_by {
            let left = bookstore::pad::payment::balance(&mut pay, user).await.unwrap();
            assert_eq!(left, bookstore::pad::payment::DEFAULT_CREDIT_CENTS - cents, "user {user}");
        }
    });
}
