//! The HTTP gateway (real mode only): the web shop's API, translated into
//! gRPC calls to the replicas of the stock, payment and order services.
//!
//! | route                                                        | answer                         |
//! |--------------------------------------------------------------|--------------------------------|
//! | `POST /stock/item/create/<price>`                            | `{"item_id"}`                  |
//! | `POST /stock/batch_init/<n>/<stock>/<price>`                 | `{"msg"}`                      |
//! | `GET  /stock/find/<item_id>`                                 | `{"stock","price"}`            |
//! | `POST /stock/add/<item_id>/<amount>`                         | `{"item_id","stock","price"}`  |
//! | `POST /stock/subtract/<item_id>/<amount>`                    | `{"item_id","stock","price"}`  |
//! | `POST /payment/create_user`                                  | `{"user_id"}`                  |
//! | `POST /payment/batch_init/<n>/<money>`                       | `{"msg"}`                      |
//! | `GET  /payment/find_user/<user_id>`                          | `{"user_id","credit"}`         |
//! | `POST /payment/add_funds/<user_id>/<amount>`                 | `{"user_id","credit"}`         |
//! | `POST /payment/pay/<user_id>/<amount>`                       | `{"user_id","credit"}`         |
//! | `POST /orders/create/<user_id>`                              | `{"order_id"}`                 |
//! | `POST /orders/batch_init/<n>/<n_items>/<n_users>/<item_price>` | `{"msg"}`                    |
//! | `GET  /orders/find/<order_id>`                               | `{"order_id","paid","items":[[item_id,qty],..],"user_id","total_cost"}` |
//! | `POST /orders/addItem/<order_id>/<item_id>/<quantity>`       | the order, as `find`           |
//! | `POST /orders/checkout/<order_id>`                           | `{"order_id","tx_id","paid"}`  |
//!
//! Every answer is JSON. Errors are `{"error": "..."}`:
//!
//! - 404: no such item, user, order (gRPC `NOT_FOUND`) or route;
//! - 400: a business rule refused it (`FAILED_PRECONDITION`: out of stock,
//!   out of credit) or a bad argument (`INVALID_ARGUMENT`, a path number
//!   that is not a non-negative integer or overflows);
//! - 503 with `"done": false`: certainly not done (`ABORTED`, no replica
//!   reachable): safe to retry;
//! - 503 with `"done": "unknown"`: the outcome of a write is unknown
//!   (`UNAVAILABLE`, `DEADLINE_EXCEEDED`): it may or may not have happened
//!   (a read that fails so is `"done": false`: it changes nothing). A write is not
//!   answered while its outcome is unknown: the gateway asks again (same
//!   request id) until it is decided, for up to 120 s
//!   (`GatewayConfig::write_deadline`); a checkout is answered only once its
//!   transaction has finished (SAGA: last step or compensation done; 2PC:
//!   phase 2 done), so a read after the answer sees its whole effect;
//! - 500: a service's internal error.
//!
//! Reads (and `batch_init`, which overwrites) may be sent again after an
//! unknown outcome, on another replica. Every other write carries a request
//! id the gateway draws for its HTTP request (a checkout: its attempt id),
//! so it too may be sent again: the service does it once and answers the
//! same again. The gateway keeps sending a write whose outcome is unknown
//! until it is known ([`until_known`]), for up to 120 s.
//!
//! At most `GatewayConfig::max_checkouts` (64) checkout attempts are at the
//! order service at once; the others wait their turn at the gateway, within
//! their deadline (a checkout whose turn never came is 503 `"done": false`).

use crate::shop::rpc::{certainly_not_done, Replicas};
use crate::shop::Topology;
use crate::shop_pb::{
    self as pb, orders_client::OrdersClient, payment_client::PaymentClient,
    stock_client::StockClient,
};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tonic::{Code, Status};

pub use client::HttpClient;

/// Timeouts of the gateway's calls to the services.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// One attempt on one replica.
    pub attempt_timeout: Duration,
    /// A whole call, failover included.
    pub total_timeout: Duration,
    /// One checkout attempt: longer than the order service's checkout
    /// deadline, which answers "unknown" itself when it runs out.
    pub checkout_timeout: Duration,
    /// How long the gateway keeps asking for a write's outcome (the same
    /// request or checkout attempt, on any replica) before it answers 503
    /// unknown.
    pub write_deadline: Duration,
    /// One batch_init attempt (writes up to 10^6 records).
    pub batch_timeout: Duration,
    /// How many checkout attempts the gateway has at the order service at
    /// once; the others wait their turn here (their wait counts against
    /// `write_deadline`). Without a limit, 1000 checkouts sent at once
    /// are all driven at once: each one's store writes queue behind the
    /// others', an attempt can outlast the service's checkout deadline and
    /// be cut off half-way (to be continued by the next attempt), and the
    /// retries add load just when a killed process has slowed the shop.
    pub max_checkouts: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            attempt_timeout: Duration::from_secs(3),
            total_timeout: Duration::from_secs(10),
            checkout_timeout: Duration::from_secs(15),
            write_deadline: Duration::from_secs(120),
            batch_timeout: Duration::from_secs(120),
            max_checkouts: 64,
        }
    }
}

/// The gateway's state: the replicas of every service.
#[derive(Clone)]
pub struct Gateway {
    stock: Pool,
    payment: Pool,
    orders: Pool,
    /// Turns for checkout attempts (`GatewayConfig::max_checkouts`).
    checkouts: Arc<tokio::sync::Semaphore>,
    cfg: GatewayConfig,
}

impl Gateway {
    pub fn new(topology: &Topology, cfg: GatewayConfig) -> Gateway {
        Gateway {
            stock: Pool::new(&topology.stock, cfg.attempt_timeout),
            payment: Pool::new(&topology.payment, cfg.attempt_timeout),
            orders: Pool::new(&topology.orders, cfg.attempt_timeout),
            checkouts: Arc::new(tokio::sync::Semaphore::new(cfg.max_checkouts.max(1))),
            cfg,
        }
    }
}

/// Several [`Replicas`] of one service, taken in turn by the requests. One
/// [`Replicas`] sends to the replica that answered it last (and fails over
/// from there) and starts at a random one, so several of them spread the
/// load over the replicas, and a replica that dies takes only its share of
/// the calls in flight with it.
#[derive(Clone)]
struct Pool {
    sets: Arc<Vec<Replicas>>,
    turn: Arc<AtomicUsize>,
}

impl Pool {
    fn new(addrs: &[String], attempt_timeout: Duration) -> Pool {
        let sets = (0..8 * addrs.len())
            .map(|_| Replicas::new(addrs.to_vec(), attempt_timeout))
            .collect();
        Pool {
            sets: Arc::new(sets),
            turn: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn pick(&self) -> Replicas {
        let i = self.turn.fetch_add(1, Ordering::Relaxed) % self.sets.len();
        self.sets[i].clone()
    }

    /// The same, with a longer attempt timeout (checkout, batch_init).
    fn pick_long(&self, attempt_timeout: Duration) -> Replicas {
        let mut r = self.pick();
        r.attempt_timeout = attempt_timeout;
        r
    }
}

/// An error answer: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({ "error": msg.into() }),
        }
    }
    pub fn not_found(msg: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            body: json!({ "error": msg.into() }),
        }
    }
}

impl From<Status> for ApiError {
    fn from(s: Status) -> ApiError {
        status_to_http(&s)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// The HTTP answer to a gRPC status from a service.
pub fn status_to_http(s: &Status) -> ApiError {
    let msg = s.message().to_string();
    let (status, done) = match s.code() {
        Code::NotFound => (StatusCode::NOT_FOUND, None),
        Code::FailedPrecondition
        | Code::InvalidArgument
        | Code::OutOfRange
        | Code::AlreadyExists => (StatusCode::BAD_REQUEST, None),
        Code::Aborted | Code::ResourceExhausted => {
            (StatusCode::SERVICE_UNAVAILABLE, Some(json!(false)))
        }
        Code::Unavailable if certainly_not_done(s) => {
            (StatusCode::SERVICE_UNAVAILABLE, Some(json!(false)))
        }
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
            (StatusCode::SERVICE_UNAVAILABLE, Some(json!("unknown")))
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, Some(json!("unknown"))),
    };
    let body = match done {
        None => json!({ "error": msg }),
        Some(d) => json!({ "error": msg, "done": d }),
    };
    ApiError { status, body }
}

/// The HTTP answer to a failed read: a read changes nothing, so a 503 is
/// `"done": false` (safe to retry), never "unknown".
fn read_error(mut e: ApiError) -> ApiError {
    if e.body.get("done").is_some() && e.status == StatusCode::SERVICE_UNAVAILABLE {
        e.body["done"] = json!(false);
        // The store's words ("outcome unknown: ...") are a write's.
        let m = e.body["error"].as_str().unwrap_or_default();
        let m = m.strip_prefix("outcome unknown: ").unwrap_or(m);
        e.body["error"] = json!(format!("not done (a read; send it again): {m}"));
    }
    e
}

/// A number from the path: a non-negative decimal integer that fits `i64`.
pub fn parse_amount(what: &str, s: &str) -> Result<i64, ApiError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!(
            "bad {what} '{s}': expected a non-negative integer"
        )));
    }
    s.parse::<i64>()
        .map_err(|_| ApiError::bad_request(format!("bad {what} '{s}': too large")))
}

/// A count from the path: a non-negative decimal integer that fits `u64`.
pub fn parse_count(what: &str, s: &str) -> Result<u64, ApiError> {
    Ok(parse_amount(what, s)? as u64)
}

/// Path parameters; a malformed path is a JSON 400, not axum's plain text.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(Params(t)),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

type Answer = Result<Json<Value>, ApiError>;

/// One gRPC call through [`Replicas::call`]: `rpc!(replicas, total,
/// idempotent, Client, method, request)`.
macro_rules! rpc {
    ($reps:expr, $total:expr, $idem:expr, $client:ident, $method:ident, $req:expr) => {{
        let req = $req;
        $reps
            .call($total, $idem, move |ch| {
                let req = req.clone();
                async move { $client::new(ch).$method(req).await }
            })
            .await
            .map_err(ApiError::from)
    }};
}

fn item_json(i: &pb::Item) -> Value {
    json!({ "item_id": i.item_id, "stock": i.stock, "price": i.price })
}
fn user_json(u: &pb::User) -> Value {
    json!({ "user_id": u.user_id, "credit": u.credit })
}
fn order_json(o: &pb::Order) -> Value {
    let items: Vec<Value> = o.items.iter().map(|l| json!([l.item_id, l.qty])).collect();
    json!({
        "order_id": o.order_id,
        "paid": o.paid,
        "items": items,
        "user_id": o.user_id,
        "total_cost": o.total_cost,
    })
}

// ---------- stock ----------

async fn item_create(State(g): State<Gateway>, Params(price): Params<String>) -> Answer {
    let price = parse_amount("price", &price)?;
    let r = until_known(&g, |request_id| {
        let (reps, total) = (g.stock.pick(), g.cfg.total_timeout);
        let req = pb::CreateItemRequest { price, request_id };
        async move { rpc!(reps, total, true, StockClient, create_item, req) }
    })
    .await?;
    Ok(Json(json!({ "item_id": r.item_id })))
}

async fn stock_batch_init(
    State(g): State<Gateway>,
    Params((n, stock, price)): Params<(String, String, String)>,
) -> Answer {
    let req = pb::ItemsInit {
        n: parse_count("n", &n)?,
        stock: parse_amount("stock", &stock)?,
        price: parse_amount("price", &price)?,
    };
    let reps = g.stock.pick_long(g.cfg.batch_timeout);
    rpc!(
        reps,
        g.cfg.batch_timeout,
        true,
        StockClient,
        batch_init,
        req
    )?;
    Ok(Json(json!({ "msg": "batch init for stock successful" })))
}

async fn stock_find(State(g): State<Gateway>, Params(item_id): Params<String>) -> Answer {
    let i = rpc!(
        g.stock.pick(),
        g.cfg.total_timeout,
        true,
        StockClient,
        find,
        pb::ItemId { item_id }
    )
    .map_err(read_error)?;
    Ok(Json(json!({ "stock": i.stock, "price": i.price })))
}

async fn stock_add(
    State(g): State<Gateway>,
    Params((item_id, amount)): Params<(String, String)>,
) -> Answer {
    let amount = parse_amount("amount", &amount)?;
    let i = until_known(&g, |request_id| {
        let (reps, total) = (g.stock.pick(), g.cfg.total_timeout);
        let req = pb::StockChange {
            item_id: item_id.clone(),
            amount,
            request_id,
        };
        async move { rpc!(reps, total, true, StockClient, add, req) }
    })
    .await?;
    Ok(Json(item_json(&i)))
}

async fn stock_subtract(
    State(g): State<Gateway>,
    Params((item_id, amount)): Params<(String, String)>,
) -> Answer {
    let amount = parse_amount("amount", &amount)?;
    let i = until_known(&g, |request_id| {
        let (reps, total) = (g.stock.pick(), g.cfg.total_timeout);
        let req = pb::StockChange {
            item_id: item_id.clone(),
            amount,
            request_id,
        };
        async move { rpc!(reps, total, true, StockClient, subtract, req) }
    })
    .await?;
    Ok(Json(item_json(&i)))
}

// ---------- payment ----------

async fn create_user(State(g): State<Gateway>) -> Answer {
    let u = until_known(&g, |request_id| {
        let (reps, total) = (g.payment.pick(), g.cfg.total_timeout);
        let req = pb::CreateUserRequest { request_id };
        async move { rpc!(reps, total, true, PaymentClient, create_user, req) }
    })
    .await?;
    Ok(Json(json!({ "user_id": u.user_id })))
}

async fn payment_batch_init(
    State(g): State<Gateway>,
    Params((n, money)): Params<(String, String)>,
) -> Answer {
    let req = pb::UsersInit {
        n: parse_count("n", &n)?,
        credit: parse_amount("money", &money)?,
    };
    let reps = g.payment.pick_long(g.cfg.batch_timeout);
    rpc!(
        reps,
        g.cfg.batch_timeout,
        true,
        PaymentClient,
        batch_init,
        req
    )?;
    Ok(Json(json!({ "msg": "batch init for users successful" })))
}

async fn find_user(State(g): State<Gateway>, Params(user_id): Params<String>) -> Answer {
    let u = rpc!(
        g.payment.pick(),
        g.cfg.total_timeout,
        true,
        PaymentClient,
        find,
        pb::UserId { user_id }
    )
    .map_err(read_error)?;
    Ok(Json(user_json(&u)))
}

async fn add_funds(
    State(g): State<Gateway>,
    Params((user_id, amount)): Params<(String, String)>,
) -> Answer {
    let amount = parse_amount("amount", &amount)?;
    let u = until_known(&g, |request_id| {
        let (reps, total) = (g.payment.pick(), g.cfg.total_timeout);
        let req = pb::CreditChange {
            user_id: user_id.clone(),
            amount,
            request_id,
        };
        async move { rpc!(reps, total, true, PaymentClient, add_funds, req) }
    })
    .await?;
    Ok(Json(user_json(&u)))
}

async fn pay(
    State(g): State<Gateway>,
    Params((user_id, amount)): Params<(String, String)>,
) -> Answer {
    let amount = parse_amount("amount", &amount)?;
    let u = until_known(&g, |request_id| {
        let (reps, total) = (g.payment.pick(), g.cfg.total_timeout);
        let req = pb::CreditChange {
            user_id: user_id.clone(),
            amount,
            request_id,
        };
        async move { rpc!(reps, total, true, PaymentClient, pay, req) }
    })
    .await?;
    Ok(Json(user_json(&u)))
}

// ---------- orders ----------

async fn order_create(State(g): State<Gateway>, Params(user_id): Params<String>) -> Answer {
    let o = until_known(&g, |request_id| {
        let (reps, total) = (g.orders.pick(), g.cfg.total_timeout);
        let req = pb::CreateOrderRequest {
            user_id: user_id.clone(),
            request_id,
        };
        async move { rpc!(reps, total, true, OrdersClient, create, req) }
    })
    .await?;
    Ok(Json(json!({ "order_id": o.order_id })))
}

async fn orders_batch_init(
    State(g): State<Gateway>,
    Params((n, n_items, n_users, price)): Params<(String, String, String, String)>,
) -> Answer {
    let req = pb::OrdersInit {
        n: parse_count("n", &n)?,
        n_items: parse_count("n_items", &n_items)?,
        n_users: parse_count("n_users", &n_users)?,
        item_price: parse_amount("item_price", &price)?,
    };
    let reps = g.orders.pick_long(g.cfg.batch_timeout);
    rpc!(
        reps,
        g.cfg.batch_timeout,
        true,
        OrdersClient,
        batch_init,
        req
    )?;
    Ok(Json(json!({ "msg": "batch init for orders successful" })))
}

async fn order_find(State(g): State<Gateway>, Params(order_id): Params<String>) -> Answer {
    let o = rpc!(
        g.orders.pick(),
        g.cfg.total_timeout,
        true,
        OrdersClient,
        find,
        pb::OrderId {
            order_id,
            attempt: String::new(),
        }
    )
    .map_err(read_error)?;
    Ok(Json(order_json(&o)))
}

async fn add_item(
    State(g): State<Gateway>,
    Params((order_id, item_id, quantity)): Params<(String, String, String)>,
) -> Answer {
    // A quantity is at least 1: the same words for `-1` as for `0` (which
    // the order service refuses), so one message says what to send.
    let positive = || {
        ApiError::bad_request(format!(
            "bad quantity '{quantity}': expected a positive integer"
        ))
    };
    let quantity = parse_amount("quantity", &quantity).map_err(|e| {
        if quantity.starts_with('-') {
            positive()
        } else {
            e
        }
    })?;
    if quantity == 0 {
        return Err(positive());
    }
    let o = until_known(&g, |request_id| {
        let (reps, total) = (g.orders.pick(), g.cfg.total_timeout);
        let req = pb::AddItemRequest {
            order_id: order_id.clone(),
            item_id: item_id.clone(),
            quantity,
            request_id,
        };
        async move { rpc!(reps, total, true, OrdersClient, add_item, req) }
    })
    .await?;
    Ok(Json(order_json(&o)))
}

/// Sends a write until its outcome is known: `send` gets the request id
/// drawn for this HTTP request (the same on every try: the service does the
/// write once and answers the same again). A 503 (not done, or unknown: a
/// replica or a store died, a call timed out) is sent again, on any replica,
/// with pauses of 50 ms doubling to 1 s, for up to `write_deadline`
/// (120 s); only then is the 503 the answer.
async fn until_known<T, Fut>(
    g: &Gateway,
    mut send: impl FnMut(String) -> Fut,
) -> Result<T, ApiError>
where
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let request = crate::shop::random_id();
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        match send(request.clone()).await {
            Ok(t) => return Ok(t),
            Err(e) if e.status != StatusCode::SERVICE_UNAVAILABLE => return Err(e),
            Err(e) if started.elapsed() + pause >= g.cfg.write_deadline => return Err(e),
            Err(e) => {
                tracing::debug!("request {request} not decided yet: {}", e.body);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// A checkout is answered once its outcome is known ([`until_known`]): 200
/// when paid, 4xx when refused. The request id is the checkout's attempt
/// id: the order service follows that attempt (every step is idempotent)
/// and answers its outcome, never starting a second one after it ended.
///
/// Each attempt waits for its turn (at most `max_checkouts` at the order
/// service at once), within what is left of the write deadline.
async fn checkout(State(g): State<Gateway>, Params(order_id): Params<String>) -> Answer {
    let started = tokio::time::Instant::now();
    let mut sent_before = false;
    let r = until_known(&g, |attempt| {
        let reps = g.orders.pick_long(g.cfg.checkout_timeout);
        let total = g.cfg.checkout_timeout;
        let req = pb::OrderId {
            order_id: order_id.clone(),
            attempt,
        };
        let turns = g.checkouts.clone();
        let left = g.cfg.write_deadline.saturating_sub(started.elapsed());
        let earlier = std::mem::replace(&mut sent_before, true);
        async move {
            let Ok(Ok(_turn)) = tokio::time::timeout(left, turns.acquire_owned()).await else {
                let msg = "no turn at the gateway for the checkout within its deadline";
                // Not sent this time: the outcome is what the attempts
                // before left it (unknown), or nothing was ever sent.
                return Err(ApiError::from(if earlier {
                    Status::unavailable(format!("outcome unknown: {msg}"))
                } else {
                    Status::aborted(format!("not done: {msg}"))
                }));
            };
            rpc!(reps, total, true, OrdersClient, checkout, req)
        }
    })
    .await?;
    Ok(Json(
        json!({ "order_id": r.order_id, "tx_id": r.tx_id, "paid": true }),
    ))
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route {}", uri.path()))
}

async fn wrong_method(uri: Uri) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        body: json!({ "error": format!("method not allowed on {}", uri.path()) }),
    }
}

/// The gateway's routes.
pub fn router(g: Gateway) -> Router {
    Router::new()
        .route("/stock/item/create/{price}", post(item_create))
        .route(
            "/stock/batch_init/{n}/{stock}/{price}",
            post(stock_batch_init),
        )
        .route("/stock/find/{item_id}", get(stock_find))
        .route("/stock/add/{item_id}/{amount}", post(stock_add))
        .route("/stock/subtract/{item_id}/{amount}", post(stock_subtract))
        .route("/payment/create_user", post(create_user))
        .route("/payment/batch_init/{n}/{money}", post(payment_batch_init))
        .route("/payment/find_user/{user_id}", get(find_user))
        .route("/payment/add_funds/{user_id}/{amount}", post(add_funds))
        .route("/payment/pay/{user_id}/{amount}", post(pay))
        .route("/orders/create/{user_id}", post(order_create))
        .route(
            "/orders/batch_init/{n}/{n_items}/{n_users}/{item_price}",
            post(orders_batch_init),
        )
        .route("/orders/find/{order_id}", get(order_find))
        .route(
            "/orders/addItem/{order_id}/{item_id}/{quantity}",
            post(add_item),
        )
        .route("/orders/checkout/{order_id}", post(checkout))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(g)
}

/// Serves the gateway on `addr` until `shutdown` completes.
pub async fn serve(
    topology: &Topology,
    cfg: GatewayConfig,
    addr: std::net::SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router(Gateway::new(topology, cfg)))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// A small HTTP/1.1 client for the gateway's API (benchmark and tests).
pub mod client {
    use axum::body::Bytes;
    use http_body_util::{BodyExt, Empty};
    use hyper_util::client::legacy::{connect::HttpConnector, Client};
    use hyper_util::rt::TokioExecutor;
    use std::time::Duration;

    /// One answer: the status code and the JSON body (`Null` if not JSON).
    #[derive(Clone, Debug)]
    pub struct Answer {
        pub status: u16,
        pub body: serde_json::Value,
    }

    impl Answer {
        pub fn ok(&self) -> bool {
            (200..300).contains(&self.status)
        }
        /// A 503 whose outcome is unknown (it may have been done).
        pub fn unknown(&self) -> bool {
            self.status == 503 && self.body["done"] == "unknown"
        }
        pub fn str(&self, field: &str) -> String {
            match &self.body[field] {
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            }
        }
        pub fn int(&self, field: &str) -> i64 {
            self.body[field].as_i64().unwrap_or(i64::MIN)
        }
    }

    /// Keeps connections open (pooled) to one gateway.
    #[derive(Clone)]
    pub struct HttpClient {
        base: String,
        client: Client<HttpConnector, Empty<Bytes>>,
        pub timeout: Duration,
    }

    impl HttpClient {
        /// `base`: e.g. `http://127.0.0.1:8000`.
        pub fn new(base: &str) -> HttpClient {
            let mut conn = HttpConnector::new();
            conn.set_nodelay(true);
            HttpClient {
                base: base.trim_end_matches('/').to_string(),
                client: Client::builder(TokioExecutor::new())
                    .pool_max_idle_per_host(256)
                    .build(conn),
                timeout: Duration::from_secs(30),
            }
        }

        /// The same client, giving up on an answer after `timeout` (30 s
        /// by default; a checkout may take up to the gateway's 120 s).
        pub fn with_timeout(mut self, timeout: Duration) -> HttpClient {
            self.timeout = timeout;
            self
        }

        /// Sends `method path`; `Err` if there was no HTTP answer
        /// (connection refused or lost, timeout): the outcome is unknown.
        pub async fn call(&self, method: &str, path: &str) -> Result<Answer, String> {
            let req = hyper::Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.base))
                .body(Empty::<Bytes>::new())
                .map_err(|e| e.to_string())?;
            let fut = async {
                let resp = self
                    .client
                    .request(req)
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let status = resp.status().as_u16();
                let bytes = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
                Ok(Answer { status, body })
            };
            match tokio::time::timeout(self.timeout, fut).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "{method} {path}: no answer within {:?}",
                    self.timeout
                )),
            }
        }

        pub async fn get(&self, path: &str) -> Result<Answer, String> {
            self.call("GET", path).await
        }
        pub async fn post(&self, path: &str) -> Result<Answer, String> {
            self.call("POST", path).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[test]
    fn path_numbers_must_be_non_negative_integers_that_fit() {
        assert_eq!(parse_amount("x", "0"), Ok(0));
        assert_eq!(parse_amount("x", "42"), Ok(42));
        assert_eq!(parse_amount("x", "9223372036854775807"), Ok(i64::MAX));
        for bad in [
            "",
            "-1",
            "+1",
            "1.5",
            "1e3",
            "abc",
            " 1",
            "9223372036854775808",
            "99999999999999999999999",
        ] {
            let e = parse_amount("x", bad).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad}");
            assert!(e.body["error"].is_string(), "{bad}");
        }
        assert_eq!(parse_count("n", "1000"), Ok(1000));
        assert!(parse_count("n", "-3").is_err());
    }

    #[test]
    fn grpc_statuses_map_to_http() {
        let cases = [
            (Status::not_found("no item"), 404, None),
            (Status::failed_precondition("out of stock"), 400, None),
            (Status::invalid_argument("bad id"), 400, None),
            (Status::aborted("not done"), 503, Some(json!(false))),
            (
                Status::unavailable("outcome unknown: x"),
                503,
                Some(json!("unknown")),
            ),
            (
                Status::unavailable("connect error: refused"),
                503,
                Some(json!(false)),
            ),
            (
                Status::deadline_exceeded("slow"),
                503,
                Some(json!("unknown")),
            ),
            (Status::internal("corrupt"), 500, Some(json!("unknown"))),
        ];
        for (s, code, done) in cases {
            let e = status_to_http(&s);
            assert_eq!(e.status.as_u16(), code, "{s:?}");
            assert_eq!(e.body["error"], json!(s.message()), "{s:?}");
            assert_eq!(e.body.get("done").cloned(), done, "{s:?}");
            // A read changes nothing: its 503 is never "unknown".
            let r = read_error(e);
            assert_eq!(r.status.as_u16(), code, "{s:?}");
            if code == 503 {
                assert_eq!(r.body["done"], json!(false), "{s:?}");
                let m = r.body["error"].as_str().unwrap();
                assert!(m.starts_with("not done (a read; send it again): "), "{m}");
                assert!(!m.contains("outcome unknown"), "{m}");
            }
        }
    }

    /// Short timeouts, for a gateway whose services are unreachable.
    fn offline_config() -> GatewayConfig {
        GatewayConfig {
            attempt_timeout: Duration::from_millis(200),
            total_timeout: Duration::from_millis(300),
            checkout_timeout: Duration::from_millis(300),
            write_deadline: Duration::from_millis(600),
            batch_timeout: Duration::from_millis(300),
            max_checkouts: 4,
        }
    }

    /// A gateway whose services are unreachable (nothing listens there).
    fn offline() -> Router {
        let t = Topology::loopback(1, 3, 2);
        router(Gateway::new(&t, offline_config()))
    }

    #[tokio::test]
    async fn a_checkout_whose_turn_does_not_come_within_the_deadline_is_503_not_done() {
        let t = Topology::loopback(1, 3, 2);
        let cfg = GatewayConfig {
            write_deadline: Duration::from_millis(300),
            max_checkouts: 1,
            ..offline_config()
        };
        let g = Gateway::new(&t, cfg);
        // The one turn is taken for the whole test.
        let _taken = g.checkouts.clone().acquire_owned().await.unwrap();
        let (status, body, _) = send(router(g), "POST", "/orders/checkout/1").await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["done"], json!(false), "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("no turn"),
            "{body}"
        );
    }

    async fn send(app: Router, method: &str, path: &str) -> (u16, Value, String) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, body, ctype)
    }

    #[tokio::test]
    async fn bad_numbers_in_the_path_are_400_before_any_call() {
        for (m, p) in [
            ("POST", "/stock/item/create/-5"),
            ("POST", "/stock/item/create/1.5"),
            ("POST", "/stock/batch_init/x/1/1"),
            ("POST", "/stock/add/3/99999999999999999999"),
            ("POST", "/stock/subtract/3/-1"),
            ("POST", "/payment/batch_init/10/abc"),
            ("POST", "/payment/add_funds/u/1e9"),
            ("POST", "/payment/pay/u/-2"),
            ("POST", "/orders/batch_init/1/2/3/-4"),
            ("POST", "/orders/addItem/o/i/two"),
        ] {
            let (status, body, ctype) = send(offline(), m, p).await;
            assert_eq!(status, 400, "{m} {p}: {body}");
            assert!(body["error"].as_str().unwrap().contains("bad"), "{p}");
            assert_eq!(ctype, "application/json", "{p}");
        }
        // A quantity is positive: -1 and 0 get the same words.
        for q in ["-1", "0"] {
            let p = format!("/orders/addItem/o/i/{q}");
            let (status, body, _) = send(offline(), "POST", &p).await;
            assert_eq!(status, 400, "{p}: {body}");
            assert_eq!(
                body["error"],
                json!(format!("bad quantity '{q}': expected a positive integer"))
            );
        }
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_are_json_errors() {
        let (status, body, ctype) = send(offline(), "GET", "/nope").await;
        assert_eq!((status, ctype.as_str()), (404, "application/json"));
        assert!(body["error"].is_string());
        let (status, _, _) = send(offline(), "POST", "/stock/find").await;
        assert_eq!(status, 404);
        let (status, body, ctype) = send(offline(), "GET", "/orders/checkout/1").await;
        assert_eq!((status, ctype.as_str()), (405, "application/json"));
        assert!(body["error"].is_string());
    }

    #[tokio::test]
    async fn unreachable_services_are_503() {
        // Nothing listens: every replica refuses the connection, so the
        // call certainly was not sent: "done": false. (Except when the
        // failover loop of `Replicas::call` starts a last attempt with no
        // time left after its backoff: that attempt times out at once and
        // is reported as unknown.)
        for (m, p) in [
            ("GET", "/stock/find/1"),
            ("POST", "/payment/pay/1/1"),
            ("POST", "/orders/checkout/1"),
        ] {
            let (status, body, ctype) = send(offline(), m, p).await;
            assert_eq!(status, 503, "{p}: {body}");
            let msg = body["error"].as_str().unwrap();
            assert!(
                body["done"] == json!(false)
                    || (body["done"] == "unknown" && msg.contains("within 0ns")),
                "{p}: {body}"
            );
            assert_eq!(ctype, "application/json");
        }
    }
}
