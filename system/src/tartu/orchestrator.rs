//! The orchestrator: the Tartu bookstore's REST API (axum), which validates
//! a checkout, gives the order an id, drives the three checks in the
//! course's scheme and queues the approved order.
//!
//! - `POST /checkout`: the course's contract (`bookstore.yaml`). The body is
//!   parsed as JSON whatever its content type (the course's pages send
//!   `application/json` or no type at all). 200 with `{"orderId", "status":
//!   "Order Approved" | "Order Rejected", "suggestedBooks", "reason"?,
//!   "code"?}`; bad input is a 4xx with `{"error": {"code", "message"}}`.
//!   An unknown book is found by check (a) and answered 422 with both the
//!   rejection and the error body. A client that sends an `Idempotency-Key`
//!   header gets the same order id for every retry with that key, and the
//!   order is queued at most once; the key sent with another order is 422.
//! - `GET /books`: the catalogue; `GET /orders/<id>`: an order's status;
//!   `GET /health`.
//! - CORS: any origin may call (the course's page is served from another
//!   port), with a preflight answered for `POST` with `Content-Type` and
//!   `Idempotency-Key`.
//!
//! One checkout is one or more attempts. An attempt uses one replica of
//! each service (chosen from the order id and how many attempts came
//! before), runs
//! the scheme's events and answers the client as soon as an event rejects
//! the order (without waiting for the rest). If a replica fails (it died, or
//! no answer in time), the attempt is abandoned (its cached copies are
//! cleared as aborted) and the next attempt runs on other replicas with
//! fresh clocks, so the vector-clock log keeps one consistent run per
//! attempt. After every event of an attempt has answered, the orchestrator
//! merges their clocks, ticks its own entry (event `final`) and sends that
//! final clock to the replicas.

use super::books::BooksDb;
use super::queue::{self, QueuedOrder};
use super::{from_pb, process, to_pb, Kind, Topology, VcLog, WallClock};
use crate::shop::rpc::Deadline;
use crate::shop::Store;
use crate::tartu_pb as pb;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tartu_core::{Book, Checkout, Reject, VClock};
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

/// How the orchestrator behaves.
#[derive(Clone)]
pub struct OrchestratorConfig {
    pub topology: Topology,
    pub wall: WallClock,
    pub log: VcLog,
    /// Deadline of one call to a check service.
    pub rpc_timeout: Duration,
    /// Attempts per checkout before answering 503.
    pub attempts: u32,
    /// With a deadline, a checkout is answered only once its outcome is
    /// known: attempts go on (after `attempts`, and after an unconfirmed
    /// enqueue, which is sent again: it is idempotent by order id) until
    /// one decides or the deadline passes. `bookstore tartu` sets 120 s;
    /// `None` (the simulator's): `attempts` attempts, and an unconfirmed
    /// enqueue is answered 503 unknown.
    pub answer_deadline: Option<Duration>,
    pub kv_options: crate::client::ClientOptions,
}

impl OrchestratorConfig {
    pub fn new(topology: Topology, wall: WallClock, log: VcLog) -> OrchestratorConfig {
        OrchestratorConfig {
            topology,
            wall,
            log,
            rpc_timeout: Duration::from_secs(3),
            attempts: 3,
            answer_deadline: None,
            kv_options: crate::client::ClientOptions::default(),
        }
    }
}

type EnqueueRequest = (
    QueuedOrder,
    tokio::sync::oneshot::Sender<Result<(), String>>,
);

#[derive(Clone)]
pub struct Orchestrator {
    cfg: Arc<OrchestratorConfig>,
    books: BooksDb,
    state: Store,
    chans: Arc<Mutex<std::collections::BTreeMap<String, Channel>>>,
    /// The queue writer: approved orders, batched into one transaction.
    enqueuer: tokio::sync::mpsc::UnboundedSender<EnqueueRequest>,
}

/// Writes the approved orders into the queue, those that arrive while a
/// batch is being written going into the next one (one store round per
/// batch; one writer, so batches never race for the sequence counter).
async fn enqueuer(state: Store, mut rx: tokio::sync::mpsc::UnboundedReceiver<EnqueueRequest>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(x) => batch.push(x),
                Err(_) => break,
            }
        }
        let orders: Vec<QueuedOrder> = batch.iter().map(|(q, _)| q.clone()).collect();
        let r = queue::enqueue_batch(&mut state.client(), &orders)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string());
        for (_, tx) in batch {
            let _ = tx.send(r.clone());
        }
    }
}

/// The answer to a checkout.
#[derive(Clone, Debug)]
pub enum Outcome {
    Approved(Vec<Book>),
    Rejected(Reject),
    /// No attempt completed; `unknown`: the order may have been queued.
    Unavailable {
        message: String,
        unknown: bool,
    },
}

/// What one attempt's events share.
struct Run {
    id: String,
    attempt: u32,
    replicas: [usize; 3],
    /// Every clock received, merged.
    seen: Mutex<VClock>,
    /// An event rejected the order: start no further event.
    stopped: AtomicBool,
    /// A call failed (no answer): the attempt is abandoned.
    failed: AtomicBool,
    answer: Mutex<Option<tokio::sync::oneshot::Sender<Outcome>>>,
    /// Event (f)'s answer.
    suggestions: Mutex<Vec<Book>>,
}

impl Run {
    fn answer(&self, o: Outcome) {
        if let Some(tx) = self.answer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(o);
        }
    }
    fn go_on(&self) -> bool {
        !self.stopped.load(Ordering::SeqCst) && !self.failed.load(Ordering::SeqCst)
    }
}

/// Calls `$method` of the check service `$kind` (three gRPC services of
/// one shape) over the channel `$ch`.
macro_rules! check_call {
    ($kind:expr, $ch:expr, $method:ident, $req:expr) => {
        match $kind {
            Kind::Verification => {
                pb::transaction_verification_client::TransactionVerificationClient::new($ch)
                    .$method($req)
                    .await
            }
            Kind::Fraud => {
                pb::fraud_detection_client::FraudDetectionClient::new($ch)
                    .$method($req)
                    .await
            }
            Kind::Suggestions => {
                pb::suggestions_client::SuggestionsClient::new($ch)
                    .$method($req)
                    .await
            }
        }
    };
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

impl Orchestrator {
    pub fn new(cfg: OrchestratorConfig) -> Orchestrator {
        let t = &cfg.topology;
        let clock = cfg.wall.clock.clone();
        let state = Store::with_clock(t.state_kv.clone(), cfg.kv_options.clone(), clock.clone());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(enqueuer(state.clone(), rx));
        Orchestrator {
            books: BooksDb::new(Store::with_clock(
                t.books_kv.clone(),
                cfg.kv_options.clone(),
                clock,
            )),
            state,
            cfg: Arc::new(cfg),
            chans: Default::default(),
            enqueuer: tx,
        }
    }

    fn channel(&self, addr: &str) -> Result<Channel, Status> {
        let mut chans = self.chans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = chans.get(addr) {
            return Ok(c.clone());
        }
        let c = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::invalid_argument(e.to_string()))?
            .connect_timeout(self.cfg.rpc_timeout)
            .connect_lazy();
        chans.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    fn forget(&self, addr: &str) {
        self.chans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(addr);
    }

    fn addr(&self, kind: Kind, replica: usize) -> String {
        self.cfg.topology.service(kind)[replica].clone()
    }

    async fn call_init(
        &self,
        kind: Kind,
        addr: &str,
        r: pb::InitRequest,
    ) -> Result<pb::EventReply, Status> {
        let ch = self.channel(addr)?;
        self.timed(addr, async move { check_call!(kind, ch, init, r) })
            .await
    }

    async fn call_event(
        &self,
        kind: Kind,
        addr: &str,
        r: pb::EventRequest,
    ) -> Result<pb::EventReply, Status> {
        let ch = self.channel(addr)?;
        self.timed(addr, async move { check_call!(kind, ch, event, r) })
            .await
    }

    async fn call_clear(
        &self,
        kind: Kind,
        addr: &str,
        r: pb::ClearRequest,
    ) -> Result<pb::ClearReply, Status> {
        let ch = self.channel(addr)?;
        self.timed(addr, async move { check_call!(kind, ch, clear, r) })
            .await
    }

    async fn timed<T>(
        &self,
        addr: &str,
        f: impl std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    ) -> Result<T, Status> {
        let clock = &self.cfg.wall.clock;
        match tokio::time::timeout(clock.to_runtime(self.cfg.rpc_timeout), f).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => {
                if s.code() != tonic::Code::NotFound && s.code() != tonic::Code::InvalidArgument {
                    self.forget(addr);
                }
                Err(s)
            }
            Err(_) => {
                self.forget(addr);
                Err(Status::deadline_exceeded(format!(
                    "{addr}: no answer within {:?}",
                    self.cfg.rpc_timeout
                )))
            }
        }
    }

    /// Runs one event of `run`: the reply, or None if the call failed or the
    /// event rejected the order (the run then stops, and the client has its
    /// answer).
    async fn event(&self, run: &Run, kind: Kind, name: &str, clock: &VClock) -> Option<VClock> {
        if !run.go_on() {
            return None;
        }
        let addr = self.addr(kind, run.replicas[kind as usize]);
        let req = pb::EventRequest {
            order_id: run.id.clone(),
            attempt: run.attempt,
            event: name.to_string(),
            clock: Some(to_pb(clock)),
        };
        match self.call_event(kind, &addr, req).await {
            Err(s) => {
                tracing::warn!(
                    "order {} attempt {}: event {name} on {addr}: {s}",
                    run.id,
                    run.attempt
                );
                run.failed.store(true, Ordering::SeqCst);
                run.answer(Outcome::Unavailable {
                    message: format!("{} replica {addr}: {}", kind.name(), s.message()),
                    unknown: false,
                });
                None
            }
            Ok(reply) => {
                let c = from_pb(reply.clock.as_ref());
                run.seen.lock().unwrap_or_else(|e| e.into_inner()).merge(&c);
                if !reply.ok {
                    run.stopped.store(true, Ordering::SeqCst);
                    run.answer(Outcome::Rejected(Reject {
                        event: name.to_string(),
                        code: reply.code,
                        reason: reply.reason,
                    }));
                    return None;
                }
                if name == "f" {
                    let books = reply
                        .suggestions
                        .into_iter()
                        .map(super::book_from_pb)
                        .collect();
                    *run.suggestions.lock().unwrap_or_else(|e| e.into_inner()) = books;
                }
                Some(c)
            }
        }
    }

    /// One attempt: answers through `run.answer` as soon as the outcome is
    /// known, then waits for every event in flight, then sends the final
    /// clock (or clears as aborted).
    async fn attempt(&self, run: Arc<Run>, order: Checkout, order_json: String) {
        let mut orch = VClock::new();
        orch.tick(process::ORCHESTRATOR);
        self.cfg
            .log
            .record(&run.id, run.attempt, process::ORCHESTRATOR, "init", &orch);
        run.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .merge(&orch);
        // The initialisation round.
        let init = |kind: Kind| {
            let addr = self.addr(kind, run.replicas[kind as usize]);
            let req = pb::InitRequest {
                order_id: run.id.clone(),
                attempt: run.attempt,
                order_json: order_json.clone(),
                clock: Some(to_pb(&orch)),
            };
            async move { (kind, addr.clone(), self.call_init(kind, &addr, req).await) }
        };
        let inits = futures_util::future::join_all(Kind::ALL.map(init)).await;
        let mut clocks = Vec::new();
        for (kind, addr, r) in inits {
            match r {
                Ok(reply) => {
                    let c = from_pb(reply.clock.as_ref());
                    run.seen.lock().unwrap_or_else(|e| e.into_inner()).merge(&c);
                    clocks.push(c);
                }
                Err(s) => {
                    tracing::warn!(
                        "order {} attempt {}: init on {addr}: {s}",
                        run.id,
                        run.attempt
                    );
                    run.failed.store(true, Ordering::SeqCst);
                    run.answer(Outcome::Unavailable {
                        message: format!("{} replica {addr}: {}", kind.name(), s.message()),
                        unknown: false,
                    });
                }
            }
        }
        if run.go_on() {
            let cv = &clocks[0];
            // (a) then (c) || (b) then (d).
            let items = async {
                let a = self.event(&run, Kind::Verification, "a", cv).await?;
                self.event(&run, Kind::Verification, "c", &a).await
            };
            let user = async {
                let b = self.event(&run, Kind::Verification, "b", cv).await?;
                self.event(&run, Kind::Fraud, "d", &b).await
            };
            let (c, d) = futures_util::future::join(items, user).await;
            if let (Some(c), Some(d)) = (c, d) {
                let mut cd = c;
                cd.merge(&d);
                if let Some(e) = self.event(&run, Kind::Fraud, "e", &cd).await {
                    let _ = self.event(&run, Kind::Suggestions, "f", &e).await;
                }
            }
        }
        // Every event has answered (or failed): final clock, or abort.
        let failed = run.failed.load(Ordering::SeqCst);
        let fin = if failed {
            None
        } else {
            let seen = run.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
            orch.receive(process::ORCHESTRATOR, &seen);
            self.cfg
                .log
                .record(&run.id, run.attempt, process::ORCHESTRATOR, "final", &orch);
            Some(orch.clone())
        };
        if !failed && !run.stopped.load(Ordering::SeqCst) {
            // Approved: queue it before answering.
            let o = match self.enqueue(&run.id, &order).await {
                Ok(()) => Outcome::Approved(std::mem::take(
                    &mut *run.suggestions.lock().unwrap_or_else(|e| e.into_inner()),
                )),
                Err(o) => o,
            };
            run.answer(o);
        }
        // Clear the cached copies.
        let clears = Kind::ALL.map(|kind| {
            let addr = self.addr(kind, run.replicas[kind as usize]);
            let req = pb::ClearRequest {
                order_id: run.id.clone(),
                attempt: run.attempt,
                final_clock: fin.as_ref().map(to_pb),
                aborted: fin.is_none(),
            };
            async move {
                match self.call_clear(kind, &addr, req).await {
                    Ok(r) if !r.error.is_empty() => tracing::error!("{addr}: {}", r.error),
                    Ok(_) => {}
                    Err(s) => tracing::debug!("clear on {addr}: {s}"),
                }
            }
        });
        futures_util::future::join_all(clears).await;
    }

    async fn enqueue(&self, id: &str, order: &Checkout) -> Result<(), Outcome> {
        let found = match self
            .books
            .by_titles(
                &order
                    .items
                    .iter()
                    .map(|i| i.name.clone())
                    .collect::<Vec<_>>(),
            )
            .await
        {
            Ok(f) => f,
            Err(e) => {
                return Err(Outcome::Unavailable {
                    message: format!("books database: {e}"),
                    unknown: false,
                })
            }
        };
        let amount_cents = order
            .items
            .iter()
            .zip(&found)
            .map(|(i, b)| b.as_ref().map_or(0, |b| b.price_cents) * i.quantity as i64)
            .sum();
        let q = QueuedOrder {
            order_id: id.to_string(),
            shipping: order.shipping_method,
            order: serde_json::to_value(order).expect("serialises"),
            amount_cents,
            enqueued_ms: self.cfg.wall.now_ms(),
        };
        // Idempotent by order id: retry while the outcome is unknown.
        let clock = &self.cfg.wall.clock;
        let deadline = self.cfg.answer_deadline.map(|d| Deadline::after(clock, d));
        let mut last = String::new();
        for attempt in 0.. {
            if attempt >= 3 && deadline.is_none_or(|d| d.passed(clock)) {
                break;
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            if self.enqueuer.send((q.clone(), tx)).is_err() {
                last = "the queue writer stopped".into();
                break;
            }
            match rx.await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = e,
                Err(_) => last = "the queue writer stopped".into(),
            }
            crate::shop::rpc::backoff(clock, attempt.min(5)).await;
        }
        Err(Outcome::Unavailable {
            message: format!(
                "the order queue did not confirm: {last}; retry with the same Idempotency-Key"
            ),
            unknown: true,
        })
    }

    /// The catalogue.
    pub async fn books(&self) -> Result<Vec<Book>, super::books::BooksError> {
        self.books.list().await
    }

    /// An order's status (None: no such order was queued).
    pub async fn status(
        &self,
        id: &str,
    ) -> Result<Option<queue::OrderStatus>, crate::client::ClientError> {
        queue::status(&mut self.state.client(), id).await
    }

    /// Runs a checkout to its answer.
    pub async fn checkout(&self, id: &str, order: &Checkout) -> Outcome {
        let order_json = serde_json::to_string(order).expect("serialises");
        let h = fnv(id) as usize;
        let mut last = Outcome::Unavailable {
            message: "no attempt".into(),
            unknown: false,
        };
        // Attempts are numbered from a random base: a retried checkout (the
        // same idempotency key, the same order id) and an orchestrator that
        // restarted never reuse a run's name in the vector-clock log.
        let base = (crate::shop::random_u64() >> 40) as u32;
        let clock = &self.cfg.wall.clock;
        let deadline = self.cfg.answer_deadline.map(|d| Deadline::after(clock, d));
        for k in 0.. {
            if k >= self.cfg.attempts && deadline.is_none_or(|d| d.passed(clock)) {
                break;
            }
            if k > 0 && deadline.is_some() {
                crate::shop::rpc::backoff(clock, k.min(5)).await;
            }
            let attempt = base.wrapping_add(k);
            let replicas =
                Kind::ALL.map(|kind| (h + k as usize) % self.cfg.topology.service(kind).len());
            let (tx, rx) = tokio::sync::oneshot::channel();
            let run = Arc::new(Run {
                id: id.to_string(),
                attempt,
                replicas,
                seen: Mutex::new(VClock::new()),
                stopped: AtomicBool::new(false),
                failed: AtomicBool::new(false),
                answer: Mutex::new(Some(tx)),
                suggestions: Mutex::new(Vec::new()),
            });
            let this = self.clone();
            let (o, j) = (order.clone(), order_json.clone());
            tokio::spawn(async move { this.attempt(run, o, j).await });
            match rx.await {
                Ok(o @ (Outcome::Approved(_) | Outcome::Rejected(_))) => return o,
                Ok(o @ Outcome::Unavailable { unknown: true, .. }) => return o,
                Ok(o) => last = o,
                Err(_) => {}
            }
        }
        last
    }
}

/// The REST API (real mode: axum runs on the real tokio).
#[cfg(not(madsim))]
mod http {
    use super::*;
    use axum::body::Body;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, Method, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use serde_json::{json, Value};
    use tartu_core::ApiError;

    /// An error answer: `{"error": {"code", "message"}}` plus any extra fields.
    fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
        (
            status,
            Json(json!({ "error": { "code": code, "message": message.into() } })),
        )
            .into_response()
    }

    fn api_error(e: &ApiError) -> Response {
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(e.body())).into_response()
    }

    fn book_json(b: &Book) -> Value {
        json!({ "bookId": b.id, "title": b.title, "author": b.author })
    }

    /// The order id: from the client's `Idempotency-Key` (the same key, the
    /// same order), or fresh.
    fn order_id(headers: &HeaderMap) -> Result<String, Box<Response>> {
        match headers.get("idempotency-key") {
            None => Ok(format!("o-{}", crate::shop::random_id())),
            Some(v) => {
                let k = v.to_str().unwrap_or("");
                if k.is_empty() || k.len() > 200 {
                    return Err(Box::new(error(
                        StatusCode::BAD_REQUEST,
                        "INVALID_HEADER",
                        "Idempotency-Key must be 1-200 visible ASCII characters",
                    )));
                }
                Ok(format!("o-{:016x}", fnv(k)))
            }
        }
    }

    /// Binds an `Idempotency-Key`'s order id to its order (a digest of the
    /// parsed body, in the state store under `idem/<id>`): a retry with
    /// the same order goes on; the key reused for another order is 422.
    /// Without this, the second order got the first one's answer and id
    /// ("Order Approved") while the queue kept the first.
    async fn claim_key(o: &Orchestrator, id: &str, order: &Checkout) -> Result<(), Box<Response>> {
        let digest = format!(
            "{:016x}",
            fnv(&serde_json::to_string(order).expect("serialises"))
        );
        let key = format!("idem/{id}");
        let r = o.state.client().cas(&key, None, Some(&digest)).await;
        match r {
            Ok(w) if w.succeeded || w.previous.as_deref() == Some(&digest) => Ok(()),
            Ok(_) => Err(Box::new(error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "IDEMPOTENCY_KEY_REUSED",
                "this Idempotency-Key was sent before with a different order: a new order \
                 needs a new key",
            ))),
            Err(e) => {
                let mut r = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    format!("order store: {e}; please try again with the same Idempotency-Key"),
                );
                r.headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from_static("1"));
                Err(Box::new(r))
            }
        }
    }

    async fn checkout(State(o): State<Orchestrator>, headers: HeaderMap, body: Body) -> Response {
        let bytes = match axum::body::to_bytes(body, tartu_core::request::MAX_BODY).await {
            Ok(b) => b,
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "BODY_TOO_LARGE",
                    format!(
                        "the body is larger than {} bytes (or was cut off)",
                        tartu_core::request::MAX_BODY
                    ),
                )
            }
        };
        let order = match tartu_core::request::parse_checkout(&bytes) {
            Ok(o) => o,
            Err(e) => return api_error(&e),
        };
        let id = match order_id(&headers) {
            Ok(id) => id,
            Err(r) => return *r,
        };
        if headers.contains_key("idempotency-key") {
            if let Err(r) = claim_key(&o, &id, &order).await {
                return *r;
            }
        }
        match o.checkout(&id, &order).await {
            Outcome::Approved(books) => Json(json!({
                "orderId": id,
                "status": "Order Approved",
                "suggestedBooks": books.iter().map(book_json).collect::<Vec<_>>(),
            }))
            .into_response(),
            Outcome::Rejected(r) => {
                let body = json!({
                    "orderId": id,
                    "status": "Order Rejected",
                    "reason": r.reason,
                    "code": r.code,
                    "event": r.event,
                    "suggestedBooks": [],
                });
                if r.code == "UNKNOWN_BOOK" {
                    let mut body = body;
                    body["error"] = json!({ "code": r.code, "message": r.reason });
                    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
                } else {
                    Json(body).into_response()
                }
            }
            Outcome::Unavailable { message, unknown } => {
                let mut r = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    if unknown {
                        "OUTCOME_UNKNOWN"
                    } else {
                        "UNAVAILABLE"
                    },
                    format!("{message} (order {id}); please try again"),
                );
                r.headers_mut()
                    .insert("retry-after", axum::http::HeaderValue::from_static("1"));
                r
            }
        }
    }

    async fn books(State(o): State<Orchestrator>) -> Response {
        match o.books().await {
            Ok(books) => Json(json!({
                "books": books.iter().map(|b| json!({
                    "bookId": b.id, "title": b.title, "author": b.author,
                    "priceCents": b.price_cents, "stock": b.stock, "category": b.category,
                })).collect::<Vec<_>>()
            }))
            .into_response(),
            Err(e) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                format!("books database: {e}; please try again"),
            ),
        }
    }

    async fn order_status(
        State(o): State<Orchestrator>,
        id: Result<Path<String>, axum::extract::rejection::PathRejection>,
    ) -> Response {
        // axum's own rejection (an id that is not UTF-8 once decoded) is
        // plain text; every answer of this API is JSON.
        let id = match id {
            Ok(Path(id)) => id,
            Err(e) => return error(StatusCode::BAD_REQUEST, "INVALID_ORDER_ID", e.body_text()),
        };
        match o.status(&id).await {
            Ok(Some(s)) => Json(s).into_response(),
            Ok(None) => error(
                StatusCode::NOT_FOUND,
                "UNKNOWN_ORDER",
                format!("no queued order with id '{id}'"),
            ),
            Err(e) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                format!("order store: {e}; please try again"),
            ),
        }
    }

    async fn health() -> Json<Value> {
        Json(json!({ "ok": true }))
    }

    async fn no_route() -> Response {
        error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no such endpoint: try POST /checkout, GET /books, GET /orders/<id>",
        )
    }

    async fn wrong_method(method: Method) -> Response {
        error(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("{method} is not allowed here"),
        )
    }

    pub fn router(o: Orchestrator) -> Router {
        use tower_http::cors::{AllowOrigin, CorsLayer};
        let cors = CorsLayer::new()
            .allow_origin(AllowOrigin::mirror_request())
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderName::from_static("idempotency-key"),
            ])
            .max_age(Duration::from_secs(600));
        Router::new()
            .route("/checkout", post(checkout))
            .route("/books", get(books))
            .route("/orders/{id}", get(order_status))
            .route("/health", get(health))
            .fallback(no_route)
            .method_not_allowed_fallback(wrong_method)
            .layer(axum::extract::DefaultBodyLimit::disable())
            .layer(cors)
            .with_state(o)
    }

    /// Serves the orchestrator on `addr` until `shutdown` completes.
    pub async fn serve(
        cfg: OrchestratorConfig,
        addr: std::net::SocketAddr,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        axum::serve(listener, router(Orchestrator::new(cfg)))
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

#[cfg(not(madsim))]
pub use http::{router, serve};

/// A small HTTP/1.1 client for the REST API (benchmark, tests).
#[cfg(not(madsim))]
pub mod client {
    use axum::body::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::{connect::HttpConnector, Client};
    use hyper_util::rt::TokioExecutor;
    use std::time::Duration;

    /// One answer: status, headers and body (JSON, `Null` if not JSON).
    #[derive(Clone, Debug)]
    pub struct Reply {
        pub status: u16,
        pub headers: axum::http::HeaderMap,
        pub body: serde_json::Value,
        pub raw: Bytes,
    }

    /// Keeps connections open (pooled) to one server.
    #[derive(Clone)]
    pub struct Http {
        base: String,
        client: Client<HttpConnector, Full<Bytes>>,
        pub timeout: Duration,
    }

    impl Http {
        /// `base`: e.g. `http://127.0.0.1:8081`.
        pub fn new(base: &str) -> Http {
            let mut conn = HttpConnector::new();
            conn.set_nodelay(true);
            Http {
                base: base.trim_end_matches('/').to_string(),
                client: Client::builder(TokioExecutor::new())
                    .pool_max_idle_per_host(256)
                    .build(conn),
                timeout: Duration::from_secs(30),
            }
        }

        /// Sends a request; `Err` if there was no HTTP answer (connection
        /// refused or lost, timeout).
        pub async fn send(
            &self,
            method: &str,
            path: &str,
            headers: &[(&str, &str)],
            body: Vec<u8>,
        ) -> Result<Reply, String> {
            let mut req = hyper::Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.base));
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let req = req
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| e.to_string())?;
            let fut = async {
                let resp = self
                    .client
                    .request(req)
                    .await
                    .map_err(|e| format!("{e:?}"))?;
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let raw = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| e.to_string())?
                    .to_bytes();
                let body = serde_json::from_slice(&raw).unwrap_or(serde_json::Value::Null);
                Ok(Reply {
                    status,
                    headers,
                    body,
                    raw,
                })
            };
            match tokio::time::timeout(self.timeout, fut).await {
                Ok(r) => r,
                Err(_) => Err(format!(
                    "{method} {path}: no answer within {:?}",
                    self.timeout
                )),
            }
        }

        pub async fn get(&self, path: &str) -> Result<Reply, String> {
            self.send("GET", path, &[], Vec::new()).await
        }

        /// `POST /checkout` with a JSON body and an idempotency key.
        pub async fn checkout(&self, body: &[u8], key: Option<&str>) -> Result<Reply, String> {
            let mut h = vec![("content-type", "application/json")];
            if let Some(k) = key {
                h.push(("idempotency-key", k));
            }
            self.send("POST", "/checkout", &h, body.to_vec()).await
        }
    }

    /// A Luhn-valid test card number: `prefix` followed by digits from
    /// `seed` and the check digit (16 digits in all).
    pub fn card_number(prefix: &str, seed: u64) -> String {
        let mut digits: Vec<u32> = prefix.chars().filter_map(|c| c.to_digit(10)).collect();
        let mut x = seed;
        while digits.len() < 15 {
            digits.push((x % 10) as u32);
            x /= 10;
            if x == 0 {
                x = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407)
                    | 1;
            }
        }
        let body: String = digits
            .iter()
            .map(|d| char::from_digit(*d, 10).expect("digit"))
            .collect();
        tartu_core::verify::with_luhn_digit(&body)
    }
}
