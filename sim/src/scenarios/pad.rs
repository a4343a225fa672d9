//! Scenario `pad`: the third course's e-commerce platform under the
//! nemesis.
//!
//! Topology (32 hosts, every one a target of the faults, clock faults
//! included): six Raft KV groups of three (auth 1-3, catalog 4-6, cart 7-9,
//! payment 10-12, orders 13-15, registry 16-18), two replicas of each
//! service (auth 19-20, catalog 21-22, cart 23-24, payment 25-26, orders
//! 27-28, the registry 29-30) and two gateways (31-32), which execute the
//! course's GraphQL schema and find every service through the registry.
//! Clients call a gateway over gRPC (`Gateway.Execute`, the schema's
//! requests as JSON), the other one when it does not answer.
//!
//! Workload: an admin makes a category and 3 products (4-12 units each,
//! priced 150-450), then 3-6 shoppers, each its own account (credit
//! 1,000.00), do 4-10 rounds over the fault phase: put 1-3 units of a
//! product in the cart and `initOrder`, following the order with
//! `orderStatus`; now and then log out and use the revoked token again
//! (it must be refused), log in again, or refresh. Stock and credit run
//! out, so orders end PAID, ITEMS_REJECTED and PAYMENT_FAILED.
//!
//! After the faults everything heals; every order must reach a final
//! status within [`LIVENESS_BOUND`]; then the stores are read. Checks:
//! - `orders`: every observed status sequence moves along CREATED →
//!   APPROVED → PAID / PAYMENT_FAILED or CREATED → ITEMS_REJECTED; PAID
//!   exactly when the order's charge was taken, and then its units are
//!   held; ITEMS_REJECTED and PAYMENT_FAILED with nothing held and (for
//!   ITEMS_REJECTED) nothing charged;
//! - `conservation`: per product, its initial units − the units of PAID
//!   orders = its units now ≥ 0; per user, 1,000.00 − what its PAID
//!   orders cost = its balance;
//! - `tokens`: no request carrying a token whose logout had been answered
//!   before the request was sent is accepted; no access token accepted at a
//!   gateway whose clock says it expired (they live 3 s here); no token
//!   just issued (the admin's, a current refresh token) refused;
//! - `raft` and `convergence` per group, as in the other scenarios.

use crate::raft::{self, Raft, RaftFaults, PORT};
use crate::shopload::kv_options;
use bookstore::client::KvClient;
use bookstore::pad::graphql::{self, Api, GatewaySvc};
use bookstore::pad::pb;
use bookstore::pad::rpc::Discovery;
use bookstore::pad::services::{self, ServiceEnv};
use bookstore::pad::Topology;
use bookstore::tartu::WallClock;
use checker::history::{History, OpType};
use harness::hostio::coverage::hit;
use harness::nemesis::Nemesis;
use harness::recorder::{Completion, Recorder};
use harness::scenario::{Floor, RunCtx, RunFuture, Scenario, Verdicts};
use harness::schedule::{Draw, Fault, FaultSelection, Schedule, Targets};
use harness::sim::{addr, Sim};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

pub const HOSTS: u64 = 32;
/// Wall time at every host's clock start.
const EPOCH_MS: u64 = 1_800_000_000_000;
const SNAPSHOT_EVERY: u64 = 50;
/// After healing, every order final within this.
const LIVENESS_BOUND: Duration = Duration::from_secs(40);
const PW: &str = "correct horse battery";
/// Access tokens live 3 s here (5 minutes for real), so that they expire
/// while shoppers use them.
const ACCESS_TTL_MS: u64 = 3_000;

const PAID: &str = "pad: an order PAID";
const REJECTED: &str = "pad: an order ITEMS_REJECTED";
const PAYMENT_FAILED: &str = "pad: an order PAYMENT_FAILED";
const REVOKED_REFUSED: &str = "pad: a revoked token refused";
const NEAR_EXPIRY: &str = "pad: an access token accepted in its last 500 ms";
const ROUTED_AROUND: &str = "pad: a gateway routed around an instance whose lease had lapsed";
const CART_UNKNOWN: &str = "pad: a cart call without a definite answer";
const EXPIRED_REFUSED: &str = "pad: an access token refused (expired, or its login revoked)";

/// The groups, their hosts, and the service replicas' first host.
const GROUPS: [(&str, [u64; 3], u64); 6] = [
    ("auth", [1, 2, 3], 19),
    ("catalog", [4, 5, 6], 21),
    ("cart", [7, 8, 9], 23),
    ("payment", [10, 11, 12], 25),
    ("orders", [13, 14, 15], 27),
    ("registry", [16, 17, 18], 29),
];

pub struct Pad;

impl Scenario for Pad {
    fn name(&self) -> &'static str {
        "pad"
    }

    fn about(&self) -> &'static str {
        "the e-commerce platform (6 store groups, 12 service replicas, 2 GraphQL gateways) under shoppers; order statuses, conservation, tokens, Raft checks"
    }

    fn fault_kinds(&self) -> Vec<&'static str> {
        let mut k = raft::KINDS.to_vec();
        k.push(TOKEN_CLOCK);
        k
    }

    fn simpler(&self, fault: &Fault) -> Vec<(Fault, &'static str)> {
        raft::simpler(fault)
    }

    fn bugs(&self) -> Vec<&'static str> {
        let mut b = bookstore::bugs::ALL.to_vec();
        b.extend(bookstore::bugs::PAD);
        b
    }

    fn generate(&self, seed: u64, bug: Option<&str>, faults: &FaultSelection) -> Schedule {
        // On this thread before its runs (a sweep's worker thread too).
        graphql::warm_up();
        let mut d = Draw::new(seed);
        let duration_ms = 20_000;
        let targets = Targets { hosts: HOSTS };
        let kinds = self.fault_kinds();
        let (config, faults) = raft::draw_faults_with(
            &mut d,
            seed,
            faults,
            &targets,
            duration_ms,
            &kinds,
            &draw_fault,
        );
        let clients = d.rng.random_range(3..=6);
        let ops_per_client = d.rng.random_range(4..=10);
        Schedule {
            scenario: "pad".into(),
            seed,
            bug: bug.map(str::to_string),
            nodes: HOSTS,
            clients,
            ops_per_client,
            duration_ms,
            config,
            faults,
            params: Default::default(),
        }
    }

    fn describe(&self, s: &Schedule) -> Vec<String> {
        vec![format!(
            "pad: {} shoppers x {} rounds",
            s.clients, s.ops_per_client
        )]
    }

    fn run<'a>(&'a self, s: &'a Schedule, ctx: RunCtx) -> RunFuture<'a> {
        Box::pin(run(s, ctx))
    }

    /// The `cart` check: each user's cart linearizable (see
    /// [`super::pad_cart`]), once the final state was read.
    fn check(&self, _: &Schedule, h: &History) -> Verdicts {
        let fin = h
            .ops
            .iter()
            .rev()
            .find(|o| o.f == "final" && o.process == checker::Process::Named("final".into()));
        let failures = match fin {
            Some(fin) => super::pad_cart::check(h, &fin.value).0,
            None => Vec::new(),
        };
        Verdicts {
            failures: failures
                .into_iter()
                .map(|m| harness::scenario::Failure::new("cart", m))
                .collect(),
            lin: None,
        }
    }

    /// The failing checks' messages and the faults played, with the Raft
    /// log diagram and the divergence table of a failing store group on top
    /// when those checks failed.
    fn report(&self, r: &harness::runner::RunResult, title: &str) -> Option<String> {
        let failures: Vec<(&str, &str)> = r
            .failures
            .iter()
            .map(|f| (f.check, f.message.as_str()))
            .collect();
        let page = harness::report::failures_page(
            &failures,
            &r.history,
            title,
            "The e-commerce platform under the nemesis. Checks: order statuses along the saga's edges, \
             PAID exactly when charged (nothing held or charged otherwise), conservation of units and money, \
             tokens (none accepted after its logout or past its expiry by the gateway's clock, none just issued refused), \
             Raft and replica convergence per store group.",
        );
        let groups: Vec<&[u64]> = GROUPS.iter().map(|(_, h, _)| &h[..]).collect();
        Some(crate::explain::report_above_groups(page, r, &groups))
    }

    fn floors(&self) -> Vec<Floor> {
        vec![
            Floor::new(PAID, 0.5),
            Floor::new(PAYMENT_FAILED, 0.2),
            Floor::new(REJECTED, 0.2),
            Floor::new(REVOKED_REFUSED, 0.3),
            Floor::new(EXPIRED_REFUSED, 0.3),
            Floor::new(NEAR_EXPIRY, 0.2),
            Floor::new(CART_UNKNOWN, 0.3),
            Floor::new(ROUTED_AROUND, 0.05),
        ]
    }
}

/// The scenario's own fault kind: a step of the clock of a host that
/// judges tokens, an auth replica's back or a gateway's forward by 1-3 s
/// (the two disagree about whether a token has expired).
const TOKEN_CLOCK: &str = "token-clock";

fn draw_fault(
    kind: &str,
    t: &Targets,
    c: &harness::schedule::FaultConfig,
    rng: &mut ChaCha8Rng,
) -> (harness::schedule::Fault, Option<u64>) {
    if kind != TOKEN_CLOCK {
        return raft::draw_fault(kind, t, c, rng);
    }
    let ms = rng.random_range(1_000..=3_000);
    let (node, offset_ms) = match rng.random_range(0..4) {
        0 => (19, -ms),
        1 => (20, -ms),
        2 => (31, ms),
        _ => (32, ms),
    };
    (Fault::ClockJump { node, offset_ms }, None)
}

fn wall(clock: &bookstore::clock::Clock) -> WallClock {
    WallClock {
        clock: clock.clone(),
        epoch_ms: EPOCH_MS,
    }
}

/// A client of the two gateways.
#[derive(Clone)]
struct Client {
    gateways: Vec<String>,
    next: usize,
}

/// A GraphQL answer: the response body and a refresh token handed out.
struct Answer {
    body: Value,
    refresh: Option<String>,
}

impl Answer {
    fn code(&self) -> Option<&str> {
        self.body["errors"][0]["extensions"]["code"].as_str()
    }
    fn data(&self, f: &str) -> Option<&Value> {
        if self.body["errors"].is_array() {
            return None;
        }
        self.body["data"].get(f)
    }
}

impl Client {
    /// One request to one gateway (the next one after a failure); `Err`:
    /// no answer.
    async fn once(
        &mut self,
        query: &str,
        vars: Value,
        bearer: &str,
        refresh: &str,
    ) -> Result<Answer, String> {
        let gw = self.gateways[self.next % self.gateways.len()].clone();
        let req = pb::GqlRequest {
            body: json!({"query": query, "variables": vars}).to_string(),
            bearer: bearer.to_string(),
            refresh: refresh.to_string(),
        };
        let call = async {
            let ch = tonic::transport::Endpoint::from_shared(format!("http://{gw}"))
                .map_err(|e| e.to_string())?
                .connect_timeout(Duration::from_secs(1))
                .connect()
                .await
                .map_err(|e| format!("connect error: {e}"))?;
            pb::gateway_client::GatewayClient::new(ch)
                .execute(req)
                .await
                .map_err(|s| s.message().to_string())
        };
        match tokio::time::timeout(Duration::from_secs(15), call).await {
            Ok(Ok(r)) => {
                let r = r.into_inner();
                Ok(Answer {
                    body: serde_json::from_str(&r.body).unwrap_or(Value::Null),
                    refresh: (!r.refresh.is_empty()).then_some(r.refresh),
                })
            }
            Ok(Err(e)) => {
                self.next += 1;
                Err(e)
            }
            Err(_) => {
                self.next += 1;
                Err(format!("{gw}: no answer within 15 s"))
            }
        }
    }

    /// Sends until an answer other than UNAVAILABLE (certainly not done),
    /// for at most `limit`; `None`: none came.
    async fn definite(
        &mut self,
        query: &str,
        vars: Value,
        bearer: &str,
        limit: Duration,
    ) -> Option<Answer> {
        let end = Instant::now() + limit;
        loop {
            match self.once(query, vars.clone(), bearer, "").await {
                Ok(a) if a.code() != Some("UNAVAILABLE") => return Some(a),
                Ok(_) | Err(_) => {}
            }
            if Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

const REGISTER: &str =
    "mutation($e: String!, $p: String!) { registerUser(input: {email: $e, password: $p}) }";
const LOGIN: &str =
    "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) }";
const ADD: &str =
    "mutation($p: Int!, $q: Int!) { addToCart(input: {productId: $p, quantity: $q}) }";
const CLEAR: &str = "mutation { clearCart }";
const REMOVE: &str = "mutation($p: Float!) { removeItem(productId: $p) }";
const CART: &str = "query { cart { userId items { productId quantity } } }";
const INIT: &str = "mutation { initOrder { orderId } }";
const STATUS: &str = "query($id: Float!) { orderStatus(orderId: $id) { value } }";

/// A shopper's cart calls, each attempt recorded as its own operation on
/// `key` (`cart/<user>`): answered (ok; a `cart` query with the lines it
/// showed, a `removeItem` refused with NOT_FOUND as `not_in_cart`), refused
/// for certain (fail with the code: it did nothing), or without a definite
/// answer (unknown: it may have happened).
struct CartCalls<'a> {
    c: &'a mut Client,
    rec: &'a Recorder,
    p: u64,
    key: &'a str,
    tok: &'a str,
}

impl CartCalls<'_> {
    /// Sends again while the answer is UNAVAILABLE (certainly not done) or
    /// missing, for at most `limit` (zero: one attempt); the last answer.
    async fn call(
        &mut self,
        f: &str,
        value: Value,
        query: &str,
        vars: Value,
        field: &str,
        limit: Duration,
    ) -> Option<Answer> {
        let end = Instant::now() + limit;
        let mut last = None;
        loop {
            self.rec.invoke(self.p, f, Some(self.key), value.clone());
            let (kind, v, err, again) = match self.c.once(query, vars.clone(), self.tok, "").await {
                Ok(a) => {
                    let r = match a.data(field) {
                        Some(d) if field == "cart" => {
                            let lines: Vec<Value> = d["items"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|i| json!({"product": i["productId"], "quantity": i["quantity"]}))
                                .collect();
                            (OpType::Ok, json!({"lines": lines}), None, false)
                        }
                        Some(_) => (OpType::Ok, value.clone(), None, false),
                        None => match a.code() {
                            Some("NOT_FOUND") if f == "cart-remove" => {
                                (OpType::Ok, json!({"not_in_cart": true}), None, false)
                            }
                            Some(c @ "UNAVAILABLE") => {
                                (OpType::Fail, value.clone(), Some(c.to_string()), true)
                            }
                            Some(
                                c @ ("UNAUTHENTICATED" | "BAD_USER_INPUT" | "FORBIDDEN"
                                | "NOT_FOUND"),
                            ) => (OpType::Fail, value.clone(), Some(c.to_string()), false),
                            c => (
                                OpType::Info,
                                value.clone(),
                                Some(c.unwrap_or("no code").to_string()),
                                true,
                            ),
                        },
                    };
                    last = Some(a);
                    r
                }
                Err(e) => (OpType::Info, value.clone(), Some(e), true),
            };
            if kind == OpType::Info {
                hit(CART_UNKNOWN);
            }
            self.rec.complete(self.p, kind, f, Some(self.key), v, err);
            if !again || Instant::now() >= end {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// What the shoppers saw, for the checks.
#[derive(Default)]
struct Seen {
    /// Order id -> the statuses observed, in order.
    statuses: BTreeMap<i64, Vec<String>>,
    /// Requests accepted with a token whose logout had been answered
    /// before they were sent, and valid tokens refused.
    revoked_accepted: Vec<String>,
}

/// Logs in; the access and refresh tokens.
async fn login(c: &mut Client, email: &str, rec: &Recorder, p: u64) -> Option<(String, String)> {
    let v = json!({"email": email});
    let c2 = rec
        .op(p, "login", None, v.clone(), async {
            match c.definite(LOGIN, json!({"e": email, "p": PW}), "", Duration::from_secs(20)).await {
                Some(a) => match a.data("login").and_then(Value::as_str) {
                    Some(t) => Completion::ok(json!({"email": email, "token": short(t), "access": t, "refresh": a.refresh})),
                    None => Completion::fail(json!({"email": email, "code": a.code()}), None),
                },
                None => Completion::fail(v.clone(), Some("no answer".into())),
            }
        })
        .await;
    let access = c2.value["access"].as_str()?.to_string();
    let refresh = c2.value["refresh"].as_str().unwrap_or("").to_string();
    Some((access, refresh))
}

/// A token's name in the history (its MAC's last 12 characters).
fn short(t: &str) -> String {
    t.chars()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn shopper(
    mut c: Client,
    rec: Recorder,
    p: u64,
    seed: u64,
    rounds: u64,
    duration_ms: u64,
    products: Vec<i64>,
    seen: Arc<Mutex<Seen>>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9ad).wrapping_add(p));
    let email = format!("shopper{p}@example.com");
    let reg = c
        .definite(
            REGISTER,
            json!({"e": email, "p": PW}),
            "",
            Duration::from_secs(30),
        )
        .await;
    rec.named(
        &format!("client-{p}"),
        "register",
        json!({"email": email, "code": reg.as_ref().and_then(|a| a.code())}),
    );
    let Some((mut tok, mut refresh)) = login(&mut c, &email, &rec, p).await else {
        return;
    };
    let think = duration_ms / rounds.max(1);
    let mut orders = Vec::new();
    // A refresh whose answer was lost may have rotated the family: the
    // old refresh token then counts as reused and revokes the login, so a
    // refusal of this login's tokens proves nothing.
    let mut tainted = false;
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..=think))).await;
        let pick = rng.random_range(0..100);
        if pick < 15 {
            // Log out, then use the revoked token at once: it must be
            // refused, on whichever gateway.
            let a = c
                .definite(
                    "mutation { logout }",
                    json!({}),
                    &tok,
                    Duration::from_secs(20),
                )
                .await;
            let done = a.as_ref().is_some_and(|a| a.data("logout").is_some());
            rec.named(
                &format!("client-{p}"),
                "logout",
                json!({"token": short(&tok), "ok": done}),
            );
            // A logout not answered `ok` may still have revoked this login
            // (an earlier attempt without an answer may have taken effect,
            // even if the last one was refused once the access token had
            // expired): a refusal of its refresh token then proves nothing.
            if !done {
                tainted = true;
            }
            if done {
                let old = tok.clone();
                let product = products[rng.random_range(0..products.len())];
                c.next += 1;
                // On the cart's record too (one attempt): accepted by
                // mistake, it adds.
                let key = format!("cart/{}", pad_core::auth::peek(&old).map_or(0, |c| c.sub));
                let mut cart = CartCalls {
                    c: &mut c,
                    rec: &rec,
                    p,
                    key: &key,
                    tok: &old,
                };
                let r = cart
                    .call(
                        "cart-add",
                        json!({"product": product, "quantity": 1}),
                        ADD,
                        json!({"p": product, "q": 1}),
                        "addToCart",
                        Duration::ZERO,
                    )
                    .await;
                if let Some(a) = r {
                    if a.data("addToCart").is_some() {
                        seen.lock().unwrap().revoked_accepted.push(format!(
                            "shopper {p}: addToCart accepted with token …{} after its logout was answered",
                            short(&old)
                        ));
                    } else if a.code() == Some("UNAUTHENTICATED") {
                        hit(REVOKED_REFUSED);
                    }
                }
                match login(&mut c, &email, &rec, p).await {
                    Some((t, r)) => (tok, refresh) = (t, r),
                    None => return,
                }
            }
            continue;
        }
        if pick < 22 && !refresh.is_empty() {
            let answer = c
                .once("mutation { refresh }", json!({}), "", &refresh)
                .await;
            rec.named(
                &format!("client-{p}"),
                "refresh",
                json!({
                    "refresh": short(&refresh),
                    "tainted": tainted,
                    "answer": answer.as_ref().map(|a| a.body.clone()).unwrap_or_else(|e| json!({"error": e})),
                }),
            );
            match answer {
                Ok(a) => match a.data("refresh").and_then(Value::as_str) {
                    Some(t) => {
                        tok = t.to_string();
                        refresh = a.refresh.clone().unwrap_or_default();
                    }
                    None if a.code() == Some("UNAUTHENTICATED") && !tainted => {
                        seen.lock().unwrap().revoked_accepted.push(format!(
                            "shopper {p}: refresh token …{} (current, never used) refused",
                            short(&refresh)
                        ));
                        tainted = true;
                    }
                    None => tainted = true,
                },
                Err(_) => tainted = true,
            }
            continue;
        }
        // An order: clear the cart, put 1-3 units of a product in it
        // (now and then add another and take it out again, or look at the
        // cart), then initOrder. Every attempt of a cart call is recorded
        // on `cart/<user>` for the `cart` check.
        let user = pad_core::auth::peek(&tok).map_or(0, |c| c.sub);
        let key = format!("cart/{user}");
        let product = products[rng.random_range(0..products.len())];
        let q = rng.random_range(1..=3);
        let other = products[rng.random_range(0..products.len())];
        let (detour, look) = (rng.random_range(0..100) < 30, rng.random_range(0..100) < 50);
        // Most rounds start from an empty cart; the others order what is
        // left in it too (a refused order's units stay in the cart).
        let fresh = rng.random_range(0..100) < 60;
        // Now and then the shopper goes on shopping while its order runs:
        // the order's units are taken out of the cart later, what was
        // added since stays.
        let more =
            (rng.random_range(0..100) < 35).then(|| products[rng.random_range(0..products.len())]);
        let mut cart = CartCalls {
            c: &mut c,
            rec: &rec,
            p,
            key: &key,
            tok: &tok,
        };
        if fresh {
            cart.call(
                "cart-clear",
                json!({}),
                CLEAR,
                json!({}),
                "clearCart",
                Duration::from_secs(10),
            )
            .await;
        }
        let added = cart
            .call(
                "cart-add",
                json!({"product": product, "quantity": q}),
                ADD,
                json!({"p": product, "q": q}),
                "addToCart",
                Duration::from_secs(10),
            )
            .await;
        if added.as_ref().and_then(|a| a.code()) == Some("UNAUTHENTICATED") {
            // Expired (they live 3 s), or revoked by a refresh whose answer
            // was lost: sign in again and carry on.
            hit(EXPIRED_REFUSED);
            match login(&mut c, &email, &rec, p).await {
                Some((t, r)) => (tok, refresh, tainted) = (t, r, false),
                None => return,
            }
            continue;
        }
        if added.as_ref().and_then(|a| a.data("addToCart")).is_none() {
            continue;
        }
        if detour && other != product {
            let a = json!({"product": other, "quantity": 1});
            cart.call(
                "cart-add",
                a,
                ADD,
                json!({"p": other, "q": 1}),
                "addToCart",
                Duration::from_secs(10),
            )
            .await;
            cart.call(
                "cart-remove",
                json!({"product": other}),
                REMOVE,
                json!({"p": other}),
                "removeItem",
                Duration::from_secs(10),
            )
            .await;
        }
        if look {
            cart.call(
                "cart-read",
                json!({}),
                CART,
                json!({}),
                "cart",
                Duration::from_secs(10),
            )
            .await;
        }
        let init = rec
            .op(
                p,
                "init-order",
                Some(&key),
                json!({"token": short(&tok)}),
                async {
                    match c.once(INIT, json!({}), &tok, "").await {
                        Ok(a) => match a.data("initOrder") {
                            Some(o) => Completion::ok(json!({"order": o["orderId"]})),
                            None if a.code() == Some("OUTCOME_UNKNOWN") => {
                                Completion::unknown(json!({}), "outcome unknown")
                            }
                            None => Completion::fail(json!({"code": a.code()}), None),
                        },
                        Err(e) => Completion::unknown(json!({}), e),
                    }
                },
            )
            .await;
        if let Some(id) = init.value["order"].as_i64() {
            orders.push(id);
            if let Some(m) = more {
                let mut cart = CartCalls {
                    c: &mut c,
                    rec: &rec,
                    p,
                    key: &key,
                    tok: &tok,
                };
                cart.call(
                    "cart-add",
                    json!({"product": m, "quantity": 1}),
                    ADD,
                    json!({"p": m, "q": 1}),
                    "addToCart",
                    Duration::from_secs(10),
                )
                .await;
            }
            // Follow it a little while (the rest after healing).
            for _ in 0..10 {
                if let Ok(a) = c.once(STATUS, json!({"id": id}), &tok, "").await {
                    if let Some(v) = a.data("orderStatus").and_then(|v| v["value"].as_str()) {
                        let mut s = seen.lock().unwrap();
                        let l = s.statuses.entry(id).or_default();
                        if l.last().map(String::as_str) != Some(v) {
                            l.push(v.to_string());
                        }
                        if ["PAID", "PAYMENT_FAILED", "ITEMS_REJECTED"].contains(&v) {
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn order_status_ok(seq: &[String]) -> Result<(), String> {
    let allowed = |a: &str, b: &str| {
        matches!(
            (a, b),
            ("CREATED", "APPROVED")
                | ("CREATED", "ITEMS_REJECTED")
                | ("APPROVED", "PAID")
                | ("APPROVED", "PAYMENT_FAILED")
                | ("CREATED", "PAID")
                | ("CREATED", "PAYMENT_FAILED")
        )
    };
    for w in seq.windows(2) {
        if !allowed(&w[0], &w[1]) {
            return Err(format!("{} then {}", w[0], w[1]));
        }
    }
    Ok(())
}

async fn run(s: &Schedule, ctx: RunCtx) -> Vec<String> {
    let rec = ctx.rec.clone();
    let bugs = raft::bugs_of(s);
    let mut sim = Sim::new(s.seed);
    let raft = Raft::new(&ctx);
    let mut kv = BTreeMap::new();
    let mut svcs = BTreeMap::new();
    for (name, hosts, first) in GROUPS {
        kv.insert(
            name.to_string(),
            raft.add_group(&mut sim, &hosts, bugs, s.seed, 64, SNAPSHOT_EVERY),
        );
        svcs.insert(
            name.to_string(),
            vec![addr(first, PORT), addr(first + 1, PORT)],
        );
    }
    let registry = svcs.remove("registry").expect("registry");
    let topology = Topology {
        kv,
        registry,
        services: svcs,
        gateways: vec![addr(31, PORT), addr(32, PORT)],
    };
    let key = b"the simulated platform's signing key".to_vec();
    let leases: Arc<Mutex<Leases>> = Arc::default();
    for (name, _, first) in GROUPS {
        for (r, id) in [first, first + 1].into_iter().enumerate() {
            let (t, key) = (topology.clone(), key.clone());
            let (leases, rec) = (leases.clone(), rec.clone());
            sim.host(id, format!("{name}-{}", r + 1), move |env| {
                let (t, key) = (t.clone(), key.clone());
                let lease_audit: Option<services::LeaseHook> = (name == "registry").then(|| {
                    let (leases, rec) = (leases.clone(), rec.clone());
                    Arc::new(move |addr: Option<&str>, wall_ms: u64| {
                        let now = rec.elapsed_ms();
                        let mut l = leases.lock().unwrap();
                        l.registry_err.see(wall_ms as i64 - (EPOCH_MS + now) as i64);
                        if let Some(a) = addr {
                            l.beats.entry(a.to_string()).or_default().push(now);
                        }
                    }) as services::LeaseHook
                });
                async move {
                    let senv = ServiceEnv {
                        lease_audit,
                        topology: t,
                        wall: wall(&env.clock),
                        bugs,
                        rpc_timeout: Duration::from_secs(2),
                        kv_options: kv_options(),
                        access_ttl_ms: ACCESS_TTL_MS,
                    };
                    let a = std::net::SocketAddr::new(env.ip, PORT);
                    let kdf = pad_core::auth::KdfCost::CHEAP;
                    if let Err(e) =
                        services::serve(name, r + 1, senv, key, kdf, a, std::future::pending())
                            .await
                    {
                        panic!("{name} replica on host {id} stopped: {e:#}");
                    }
                }
            });
        }
    }
    // Every access token a gateway accepted, judged by the gateway's time.
    let expired: Arc<Mutex<Vec<String>>> = Arc::default();
    for id in [31u64, 32] {
        let (t, expired) = (topology.clone(), expired.clone());
        let (leases, rec) = (leases.clone(), rec.clone());
        sim.host(id, format!("gateway-{}", id - 30), move |env| {
            let (t, expired) = (t.clone(), expired.clone());
            let (leases, rec) = (leases.clone(), rec.clone());
            async move {
                // This gateway's clock error, sampled often (for the
                // routing check's bound), and every call it routes.
                let err = {
                    let (leases, rec, w) = (leases.clone(), rec.clone(), wall(&env.clock));
                    move || {
                        let e = w.now_ms() as i64 - (EPOCH_MS + rec.elapsed_ms()) as i64;
                        leases.lock().unwrap().gateway_err.entry(id).or_default().see(e);
                    }
                };
                let sample = err.clone();
                tokio::spawn(async move {
                    loop {
                        sample();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                });
                let route: bookstore::pad::rpc::RouteHook = Arc::new(move |service: &str, i: &pad_core::registry::Instance| {
                    err();
                    let now = rec.elapsed_ms();
                    leases
                        .lock()
                        .unwrap()
                        .routes
                        .push((now, id, service.to_string(), i.addr.clone()));
                });
                let disc = Discovery::new(
                    t.registry.clone(),
                    env.clock.clone(),
                    Duration::from_secs(5),
                )
                .with_bugs(bugs)
                .on_route(route);
                let audit = move |a: &graphql::Accepted| {
                    let Some(exp) = a.exp_ms else { return };
                    if a.now_ms >= exp {
                        expired.lock().unwrap().push(format!(
                            "gateway {id} accepted user {}'s access token at {} ms by its clock, expired at {exp} ms",
                            a.user, a.now_ms
                        ));
                    } else if exp - a.now_ms < 500 {
                        hit(NEAR_EXPIRY);
                    }
                };
                let schema = graphql::schema(Api {
                    disc,
                    wall: wall(&env.clock),
                    deadline: Duration::from_secs(10),
                    audit: Some(Arc::new(audit)),
                });
                let a = std::net::SocketAddr::new(env.ip, PORT);
                tonic::transport::Server::builder()
                    .add_service(pb::gateway_server::GatewayServer::new(GatewaySvc {
                        schema,
                    }))
                    .serve_with_shutdown(a, std::future::pending::<()>())
                    .await
                    .expect("gateway");
            }
        });
    }

    // Setup (before any fault): the admin, a category, the products.
    let gateways = topology.gateways.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed ^ 0x9ad0_5e70);
    let stock: Vec<(i64, i64)> = (0..3)
        .map(|_| (rng.random_range(4..=12), rng.random_range(150..=450)))
        .collect();
    let host = sim.client(200);
    let setup = {
        let (gateways, stock) = (gateways.clone(), stock.clone());
        host.spawn(async move {
            let mut c = Client { gateways, next: 0 };
            let long = Duration::from_secs(60);
            c.definite(REGISTER, json!({"e": "admin@example.com", "p": PW}), "", long)
                .await
                .ok_or("no answer to registerUser")?;
            let mut refused = Vec::new();
            let mut ids = Vec::new();
            for (i, (units, price)) in stock.iter().enumerate() {
              for _ in 0..5 {
                let a = c
                    .definite(LOGIN, json!({"e": "admin@example.com", "p": PW}), "", long)
                    .await
                    .ok_or("no answer to login")?;
                let admin = a.data("login").and_then(Value::as_str).ok_or(format!("login: {}", a.body))?.to_string();
                let a = c
                    .definite(
                        "mutation($n: String!, $p: Float!, $u: Int!) { createProduct(input: {name: $n, price: $p, unitsAvailable: $u, categoriesIds: []}) { id } }",
                        json!({"n": format!("book {i}"), "p": *price as f64, "u": units}),
                        &admin,
                        long,
                    )
                    .await
                    .ok_or("no answer to createProduct")?;
                if a.code() == Some("UNAUTHENTICATED") {
                    refused.push(format!("the admin's token, just issued by login, refused: {}", a.body));
                    continue;
                }
                ids.push(a.data("createProduct").and_then(|p| p["id"].as_i64()).ok_or(format!("createProduct: {}", a.body))?);
                break;
              }
            }
            if ids.len() < stock.len() {
                return Err(format!("createProduct refused 5 times: {refused:?}"));
            }
            Ok::<_, String>((ids, refused))
        })
        .await
        .expect("setup task")
    };
    let (products, refused) = match setup {
        Ok(p) => p,
        Err(e) => return vec![format!("setup: {e}")],
    };
    rec.named("setup", "init", json!({"products": products, "units": stock.iter().map(|s| s.0).collect::<Vec<_>>(), "prices": stock.iter().map(|s| s.1).collect::<Vec<_>>()}));

    // Shoppers and nemesis.
    let seen: Arc<Mutex<Seen>> = Arc::default();
    seen.lock().unwrap().revoked_accepted.extend(refused);
    let mut clients = Vec::new();
    for p in 1..=s.clients {
        let host = sim.client(p);
        let c = Client {
            gateways: gateways.clone(),
            next: p as usize,
        };
        let (rec, products, seen) = (rec.clone(), products.clone(), seen.clone());
        let (seed, n, d) = (s.seed, s.ops_per_client, s.duration_ms);
        clients.push(host.spawn(shopper(c, rec, p, seed, n, d, products, seen)));
    }
    let plugin = RaftFaults(raft.clone());
    let mut nemesis = Nemesis {
        sim: &mut sim,
        rec: &rec,
        triggers: &ctx.triggers,
        plugin: &plugin,
    };
    nemesis.play(&s.faults, s.duration_ms).await;
    sim.heal_all();
    rec.nemesis("heal-all", Value::Null);
    for c in clients {
        c.await.expect("shopper task");
    }

    // Every order final, then the stores' state.
    let host = sim.client(201);
    let t = topology.clone();
    let (fin, liveness, diverged) = host
        .spawn(async move {
            let mut orders = KvClient::new(t.kv["orders"].clone(), 1 << 40, kv_options());
            let mut failures = Vec::new();
            let deadline = Instant::now() + LIVENESS_BOUND;
            loop {
                match bookstore::pad::orders::unfinished(&mut orders).await {
                    Ok(o) if o.is_empty() => break,
                    r => {
                        if Instant::now() >= deadline {
                            failures.push(match r {
                                Ok(o) => format!(
                                    "{} orders not final {LIVENESS_BOUND:?} after healing: {:?}",
                                    o.len(),
                                    o.iter()
                                        .take(5)
                                        .map(|o| (o.id, o.saga.status.name()))
                                        .collect::<Vec<_>>()
                                ),
                                Err(e) => {
                                    format!("the orders group did not answer after healing: {e}")
                                }
                            });
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let fin = read_state(&t).await;
            let groups: Vec<(&str, &BTreeMap<u64, String>)> =
                t.kv.iter().map(|(k, v)| (k.as_str(), v)).collect();
            let diverged = crate::replicas::compare_groups(&groups, kv_options()).await;
            (fin, failures, diverged)
        })
        .await
        .expect("final task");
    ctx.checks.add("convergence", move || diverged.clone());
    let (order_fail, conservation) = match &fin {
        Ok(v) => {
            rec.named("final", "final", v.clone());
            check_final(v, &stock, &products)
        }
        Err(e) => (
            vec![format!("could not read the final state after healing: {e}")],
            vec![],
        ),
    };
    let seen = seen.lock().unwrap();
    let mut order_fail = order_fail;
    for (id, seq) in &seen.statuses {
        if let Err(e) = order_status_ok(seq) {
            order_fail.push(format!(
                "order {id}: statuses seen out of order: {e} ({seq:?})"
            ));
        }
    }
    ctx.checks.add("orders", move || order_fail.clone());
    ctx.checks.add("conservation", move || conservation.clone());
    let (routing, routed_around) = leases.lock().unwrap().check();
    if routed_around {
        hit(ROUTED_AROUND);
    }
    ctx.checks.add("routing", move || routing.clone());
    let mut tokens = seen.revoked_accepted.clone();
    tokens.extend(expired.lock().unwrap().iter().cloned());
    ctx.checks.add("tokens", move || tokens.clone());
    liveness
}

/// Lowest and highest of what was seen.
#[derive(Clone, Copy, Debug)]
struct Span(i64, i64);

impl Default for Span {
    fn default() -> Span {
        Span(i64::MAX, i64::MIN)
    }
}

impl Span {
    fn see(&mut self, v: i64) {
        self.0 = self.0.min(v);
        self.1 = self.1.max(v);
    }
    fn width(&self) -> i64 {
        if self.0 > self.1 {
            0
        } else {
            self.1 - self.0
        }
    }
}

/// Leases and routing as they happened, in simulated time (ms since the
/// start), for the `routing` check.
#[derive(Default)]
struct Leases {
    /// Address -> when a registry replica renewed its lease (took a
    /// heartbeat: the lease then runs [`LEASE_MS`] of the registry's time).
    beats: BTreeMap<String, Vec<u64>>,
    /// Every call a gateway sent: (time, gateway, service, address).
    routes: Vec<(u64, u64, String, String)>,
    /// The registry replicas' clock errors (their wall time less the true
    /// time) at each lease set and each listing answered.
    registry_err: Span,
    /// Each gateway's clock error, sampled every 20 ms and at each call.
    gateway_err: BTreeMap<u64, Span>,
}

const LEASE_MS: u64 = pad_core::registry::LEASE_MS;
/// Rounding of the millisecond clocks.
const ROUTING_SLACK_MS: u64 = 50;

impl Leases {
    /// The `routing` check: a gateway sends a call to an instance at most
    /// its bound after that instance's lease lapsed. The lease lapses
    /// [`LEASE_MS`] after the last heartbeat a registry replica took; the
    /// bound is how far the clocks that judge leases were from the true
    /// time (a lease is set by one registry replica's clock, listed by
    /// another's, and aged by the gateway's): the spread of the registry
    /// replicas' clock errors plus the spread of the gateway's, plus
    /// [`ROUTING_SLACK_MS`]. Also: did some call go to a live instance of a
    /// service while another instance of it had lapsed (the check had
    /// something to judge)?
    fn check(&self) -> (Vec<String>, bool) {
        let mut out = Vec::new();
        let mut around = false;
        let lapsed_at = |addr: &str, t: u64| -> Option<u64> {
            let b = self.beats.get(addr)?;
            let i = b.partition_point(|&x| x <= t);
            Some(b[i.checked_sub(1)?] + LEASE_MS)
        };
        let mut by_service: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (_, _, s, a) in &self.routes {
            let v = by_service.entry(s).or_default();
            if !v.contains(&a.as_str()) {
                v.push(a);
            }
        }
        for (t, gw, service, addr) in &self.routes {
            let g = self.gateway_err.get(gw).copied().unwrap_or_default();
            let bound = self.registry_err.width() as u64 + g.width() as u64 + ROUTING_SLACK_MS;
            match lapsed_at(addr, *t) {
                None if out.len() >= 5 => {}
                None => out.push(format!(
                    "gateway {gw} called {service} at {addr} at {}, before any registry replica had taken a heartbeat from it",
                    secs(*t)
                )),
                Some(l) if *t > l + bound => {
                    if out.len() < 5 {
                        out.push(format!(
                            "gateway {gw} called {service} at {addr} at {}, {} ms after its lease lapsed (at {}: last heartbeat taken at {}, lease {LEASE_MS} ms); bound {bound} ms ({} ms of registry clock spread, {} ms of the gateway's, {ROUTING_SLACK_MS} ms)",
                            secs(*t),
                            t - l,
                            secs(l),
                            secs(l - LEASE_MS),
                            self.registry_err.width(),
                            g.width()
                        ));
                    }
                }
                Some(_) => {
                    around |= by_service[service.as_str()]
                        .iter()
                        .any(|o| *o != addr && lapsed_at(o, *t).is_some_and(|l| l < *t));
                }
            }
        }
        (out, around)
    }
}

/// Orders, products, holds, charges and balances, read from the stores.
async fn read_state(t: &Topology) -> Result<Value, String> {
    let c = |g: &str, id: u64| KvClient::new(t.kv[g].clone(), id, kv_options());
    let (mut orders, mut catalog, mut payment) = (
        c("orders", 1 << 41),
        c("catalog", 1 << 42),
        c("payment", 1 << 44),
    );
    let e = |e: bookstore::client::ClientError| e.to_string();
    let mut os = serde_json::Map::new();
    for (k, v) in orders.scan("order/id/").await.map_err(e)? {
        os.insert(k, serde_json::from_str(&v).map_err(|e| e.to_string())?);
    }
    let mut cat = serde_json::Map::new();
    for prefix in ["prod/id/", "hold/"] {
        for (k, v) in catalog.scan(prefix).await.map_err(e)? {
            cat.insert(k, serde_json::from_str(&v).map_err(|e| e.to_string())?);
        }
    }
    let mut pay = serde_json::Map::new();
    for prefix in ["charge/", "acct/"] {
        for (k, v) in payment.scan(prefix).await.map_err(e)? {
            pay.insert(k, serde_json::from_str(&v).unwrap_or(Value::String(v)));
        }
    }
    Ok(json!({"orders": os, "catalog": cat, "payment": pay}))
}

/// A moment of the run, from simulated milliseconds, in seconds as the
/// report's fault table shows it.
fn secs(ms: u64) -> String {
    format!("{:.3} s", ms as f64 / 1e3)
}

/// The `orders` and `conservation` checks on the final state.
fn check_final(v: &Value, stock: &[(i64, i64)], products: &[i64]) -> (Vec<String>, Vec<String>) {
    let (mut orders, mut cons) = (Vec::new(), Vec::new());
    let empty = serde_json::Map::new();
    let os = v["orders"].as_object().unwrap_or(&empty);
    let cat = v["catalog"].as_object().unwrap_or(&empty);
    let pay = v["payment"].as_object().unwrap_or(&empty);
    let mut sold: BTreeMap<i64, i64> = BTreeMap::new();
    let mut spent: BTreeMap<u64, i64> = BTreeMap::new();
    for o in os.values() {
        let id = o["id"].as_i64().unwrap_or(0);
        let user = o["user"].as_u64().unwrap_or(0);
        let status = o["saga"]["status"].as_str().unwrap_or("");
        let tx = format!("order-{id}");
        let charge = &pay
            .get(&format!("charge/{tx}"))
            .cloned()
            .unwrap_or(Value::Null);
        let hold = &cat
            .get(&format!("hold/{tx}"))
            .cloned()
            .unwrap_or(Value::Null);
        let charged = charge["charged"].as_bool() == Some(true);
        let held = hold.is_object() && hold["released"].as_bool() == Some(false);
        match status {
            "Paid" | "PAID" => {
                hit(PAID);
                if !charged {
                    orders.push(format!(
                        "order {id} PAID but its charge was not taken ({charge})"
                    ));
                }
                if !held {
                    orders.push(format!(
                        "order {id} PAID but its units are not held ({hold})"
                    ));
                }
                for l in o["lines"].as_array().into_iter().flatten() {
                    *sold.entry(l["product"].as_i64().unwrap_or(0)).or_default() +=
                        l["quantity"].as_i64().unwrap_or(0);
                }
                *spent.entry(user).or_default() += o["total_cents"].as_i64().unwrap_or(0);
            }
            "ItemsRejected" | "ITEMS_REJECTED" => {
                hit(REJECTED);
                if held || !charge.is_null() {
                    orders.push(format!(
                        "order {id} ITEMS_REJECTED with units held ({hold}) or a charge ({charge})"
                    ));
                }
            }
            "PaymentFailed" | "PAYMENT_FAILED" => {
                hit(PAYMENT_FAILED);
                if held || charged {
                    orders.push(format!("order {id} PAYMENT_FAILED with units held ({hold}) or money taken ({charge})"));
                }
            }
            other => orders.push(format!("order {id} not final after healing: {other}")),
        }
        if charged && !matches!(status, "Paid" | "PAID") {
            orders.push(format!("order {id} charged but {status}"));
        }
    }
    for (i, p) in products.iter().enumerate() {
        let now = cat
            .get(&format!("prod/id/{p}"))
            .and_then(|v| v["units_available"].as_i64());
        let want = stock[i].0 - sold.get(p).copied().unwrap_or(0);
        if now != Some(want) || want < 0 {
            cons.push(format!(
                "product {p}: {} units at the start, {} sold in PAID orders, so {want} expected; the catalogue holds {now:?}",
                stock[i].0,
                sold.get(p).copied().unwrap_or(0)
            ));
        }
    }
    let credit = bookstore::pad::payment::DEFAULT_CREDIT_CENTS;
    let mut users: Vec<u64> = spent.keys().copied().collect();
    for k in pay.keys() {
        if let Some(u) = k.strip_prefix("acct/").and_then(|u| u.parse().ok()) {
            users.push(u);
        }
    }
    users.sort();
    users.dedup();
    for u in users {
        let bal = pay
            .get(&format!("acct/{u}"))
            .and_then(|v| {
                v.as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(credit);
        let want = credit - spent.get(&u).copied().unwrap_or(0);
        if bal != want {
            cons.push(format!(
                "user {u}: balance {bal}, but {credit} less its PAID orders ({}) is {want}",
                spent.get(&u).copied().unwrap_or(0)
            ));
        }
    }
    (orders, cons)
}
