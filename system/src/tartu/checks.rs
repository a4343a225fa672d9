//! The three check services of a checkout — transaction verification,
//! fraud detection, suggestions — as one generic service that the
//! orchestrator drives event by event.
//!
//! The course's scheme: an initialisation round sends the order to the
//! three services, each caching it with its vector clock; then (a) items
//! and (b) user data are checked concurrently (verification), (c) the card
//! after (a) (verification), (d) the user for fraud after (b) (fraud), (e)
//! the card for fraud after (c) and (d) (fraud), (f) suggestions after (e)
//! (suggestions). Every message carries the sender's clock; on receipt the
//! service merges it into the clock of the process that runs the event
//! (element-wise max) and then ticks that process's entry. Verification
//! runs two processes (`verification/items` for (a) and (c),
//! `verification/user` for (b)), so that (a) and (b) are concurrent.
//!
//! Each event is logged with its order, attempt, process and clock before
//! its work runs ([`VcLog`]); the checker's `vclock` command verifies the
//! log against [`super::SCHEME`]. At the end the orchestrator sends its
//! final clock: a replica clears the cached order only if every clock it
//! holds for it is not greater than the final one, and logs an error
//! otherwise.
//!
//! The services hold no state but that cache: the books come from the books
//! database, the fraud service's card history from the state group. A
//! replica that restarts forgets its cache; the orchestrator then redoes the
//! run on another replica as a new attempt.

use super::books::BooksDb;
use super::{from_pb, to_pb, Kind, VcLog, WallClock};
use crate::client::ClientError;
use crate::shop::rpc::{kv_error, within};
use crate::shop::Store;
use crate::tartu_pb as pb;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tartu_core::{fraud, suggest, verify, Checkout, Reject, VClock};
use tonic::{Request, Response, Status};

/// How a check service replica behaves.
#[derive(Clone)]
pub struct CheckConfig {
    pub kind: Kind,
    pub books: BooksDb,
    /// The state group: the fraud service's card history.
    pub state: Store,
    pub wall: WallClock,
    pub log: VcLog,
    pub bugs: crate::bugs::Bugs,
    /// Longest a request may work before answering "unknown".
    pub budget: Duration,
    /// How many suggestions (f) returns.
    pub suggestions: usize,
}

/// One cached order: the order and one clock per process of the service.
struct Cached {
    order: Checkout,
    clocks: BTreeMap<&'static str, VClock>,
    /// When it was cached (wall ms): orders left behind by an orchestrator
    /// that died are forgotten after [`CACHE_TTL_MS`].
    born_ms: u64,
}

/// Cached orders no final clock cleared are dropped after this long.
pub const CACHE_TTL_MS: u64 = 10 * 60 * 1000;

/// A check service replica (any of the three kinds).
#[derive(Clone)]
pub struct CheckService {
    cfg: Arc<CheckConfig>,
    cache: Arc<Mutex<BTreeMap<(String, u32), Cached>>>,
}

impl CheckService {
    pub fn new(cfg: CheckConfig) -> CheckService {
        CheckService {
            cfg: Arc::new(cfg),
            cache: Default::default(),
        }
    }

    /// How many orders are cached (tests).
    pub fn cached(&self) -> usize {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Merge-then-tick, or (planted bug `vclock-no-merge`, in the fraud
    /// service) tick only.
    fn receive(&self, clock: &mut VClock, p: &str, incoming: &VClock) {
        if self.cfg.bugs.vclock_no_merge && self.cfg.kind == Kind::Fraud {
            clock.tick(p);
        } else {
            clock.receive(p, incoming);
        }
    }

    pub async fn init(&self, r: pb::InitRequest) -> Result<pb::EventReply, Status> {
        let order: Checkout = serde_json::from_str(&r.order_json)
            .map_err(|e| Status::invalid_argument(format!("order_json is not a checkout: {e}")))?;
        let incoming = from_pb(r.clock.as_ref());
        let now = self.cfg.wall.now_ms();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.retain(|_, c| now.saturating_sub(c.born_ms) < CACHE_TTL_MS);
        let entry = cache
            .entry((r.order_id.clone(), r.attempt))
            .or_insert_with(|| Cached {
                order,
                clocks: BTreeMap::new(),
                born_ms: now,
            });
        let mut out = VClock::new();
        for &p in self.cfg.kind.processes() {
            let c = entry.clocks.entry(p).or_default();
            self.receive(c, p, &incoming);
            self.cfg.log.record(&r.order_id, r.attempt, p, "cache", c);
            out.merge(c);
        }
        Ok(pb::EventReply {
            ok: true,
            clock: Some(to_pb(&out)),
            ..Default::default()
        })
    }

    pub async fn event(&self, r: pb::EventRequest) -> Result<pb::EventReply, Status> {
        let kind = self.cfg.kind;
        let Some(p) = kind.process_of(&r.event) else {
            return Err(Status::invalid_argument(format!(
                "the {} service does not run event '{}'",
                kind.name(),
                r.event
            )));
        };
        let incoming = from_pb(r.clock.as_ref());
        let (order, clock) = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            let Some(entry) = cache.get_mut(&(r.order_id.clone(), r.attempt)) else {
                return Err(Status::not_found(format!(
                    "order {} attempt {} is not cached here (send Init first)",
                    r.order_id, r.attempt
                )));
            };
            let c = entry.clocks.entry(p).or_default();
            self.receive(c, p, &incoming);
            self.cfg.log.record(&r.order_id, r.attempt, p, &r.event, c);
            (entry.order.clone(), c.clone())
        };
        let outcome = within(
            &self.cfg.wall.clock,
            self.cfg.budget,
            self.run(&r.event, &r.order_id, &order),
        )
        .await?;
        let mut reply = pb::EventReply {
            ok: true,
            clock: Some(to_pb(&clock)),
            ..Default::default()
        };
        match outcome {
            Ok(books) => reply.suggestions = books.iter().map(super::book_to_pb).collect(),
            Err(rej) => {
                reply.ok = false;
                reply.code = rej.code;
                reply.reason = rej.reason;
            }
        }
        Ok(reply)
    }

    pub async fn clear(&self, r: pb::ClearRequest) -> Result<pb::ClearReply, Status> {
        let fin = from_pb(r.final_clock.as_ref());
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let key = (r.order_id.clone(), r.attempt);
        let Some(entry) = cache.get(&key) else {
            return Ok(pb::ClearReply {
                cleared: false,
                error: String::new(),
            });
        };
        if !r.aborted {
            if let Some((p, c)) = entry.clocks.iter().find(|(_, c)| !VClock::le(c, &fin)) {
                let error = format!(
                    "order {} attempt {}: the clock of {p} {:?} is not covered by the final clock {:?}; keeping the order",
                    r.order_id, r.attempt, c.0, fin.0
                );
                tracing::error!("{error}");
                return Ok(pb::ClearReply {
                    cleared: false,
                    error,
                });
            }
        }
        cache.remove(&key);
        Ok(pb::ClearReply {
            cleared: true,
            error: String::new(),
        })
    }

    /// The work of one event: `Ok(suggestions)` (empty but for (f)), or the
    /// rejection.
    async fn run(
        &self,
        event: &str,
        order_id: &str,
        order: &Checkout,
    ) -> Result<Result<Vec<tartu_core::Book>, Reject>, Status> {
        let titles: Vec<String> = order.items.iter().map(|i| i.name.clone()).collect();
        let ok = Ok(Vec::new());
        Ok(match event {
            "a" => {
                let found = self.cfg.books.by_titles(&titles).await?;
                verify::items(order, &found).map(|_| Vec::new())
            }
            "b" => verify::user(order).map(|_| Vec::new()),
            "c" => {
                let today = verify::year_month(self.cfg.wall.now_ms());
                verify::card(order, today).map(|_| Vec::new())
            }
            "d" => fraud::user_check(order).map(|_| Vec::new()),
            "e" => {
                let found = self.cfg.books.by_titles(&titles).await?;
                let amount_cents = order
                    .items
                    .iter()
                    .zip(&found)
                    .map(|(i, b)| b.as_ref().map_or(0, |b| b.price_cents) * i.quantity as i64)
                    .sum();
                let recent_uses = self
                    .card_uses(&fraud::card_key(&order.credit_card.number), order_id)
                    .await
                    .map_err(kv_error)?;
                let ctx = fraud::CardContext {
                    amount_cents,
                    recent_uses,
                };
                fraud::card_check(order, &ctx).map(|_| Vec::new())
            }
            "f" => {
                let all = self.cfg.books.list().await?;
                Ok(suggest::suggestions(&titles, &all, self.cfg.suggestions))
            }
            _ => ok,
        })
    }

    /// Records this order's use of a card (key `fraud/card/<digest>`: the
    /// uses within the window, `<unix ms>:<order id>` separated by spaces)
    /// and returns how many OTHER orders used it within the window. A
    /// retried order is counted once.
    async fn card_uses(&self, card: &str, order_id: &str) -> Result<usize, ClientError> {
        let key = format!("fraud/card/{card}");
        let now = self.cfg.wall.now_ms();
        let mut c = self.cfg.state.client();
        loop {
            let old = c.get(&key).await?;
            let mut uses: Vec<(u64, String)> = old
                .as_deref()
                .unwrap_or("")
                .split_whitespace()
                .filter_map(|u| {
                    let (t, o) = u.split_once(':')?;
                    Some((t.parse().ok()?, o.to_string()))
                })
                .filter(|(t, _)| now.saturating_sub(*t) <= fraud::WINDOW_MS)
                .collect();
            let others = uses.iter().filter(|(_, o)| o != order_id).count();
            if uses.iter().any(|(_, o)| o == order_id) {
                return Ok(others);
            }
            uses.push((now, order_id.to_string()));
            let new: Vec<String> = uses.iter().map(|(t, o)| format!("{t}:{o}")).collect();
            let r = c.cas(&key, old.as_deref(), Some(&new.join(" "))).await?;
            if r.succeeded {
                return Ok(others);
            }
        }
    }
}

macro_rules! check_service {
    ($trait:path) => {
        #[tonic::async_trait]
        impl $trait for CheckService {
            async fn init(
                &self,
                r: Request<pb::InitRequest>,
            ) -> Result<Response<pb::EventReply>, Status> {
                self.init(r.into_inner()).await.map(Response::new)
            }
            async fn event(
                &self,
                r: Request<pb::EventRequest>,
            ) -> Result<Response<pb::EventReply>, Status> {
                CheckService::event(self, r.into_inner())
                    .await
                    .map(Response::new)
            }
            async fn clear(
                &self,
                r: Request<pb::ClearRequest>,
            ) -> Result<Response<pb::ClearReply>, Status> {
                self.clear(r.into_inner()).await.map(Response::new)
            }
        }
    };
}

check_service!(pb::transaction_verification_server::TransactionVerification);
check_service!(pb::fraud_detection_server::FraudDetection);
check_service!(pb::suggestions_server::Suggestions);

/// Serves one check service replica until `shutdown`.
pub async fn serve(
    cfg: CheckConfig,
    addr: std::net::SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let kind = cfg.kind;
    let svc = CheckService::new(cfg);
    let mut b = tonic::transport::Server::builder();
    match kind {
        Kind::Verification => {
            b.add_service(
                pb::transaction_verification_server::TransactionVerificationServer::new(svc),
            )
            .serve_with_shutdown(addr, shutdown)
            .await?
        }
        Kind::Fraud => {
            b.add_service(pb::fraud_detection_server::FraudDetectionServer::new(svc))
                .serve_with_shutdown(addr, shutdown)
                .await?
        }
        Kind::Suggestions => {
            b.add_service(pb::suggestions_server::SuggestionsServer::new(svc))
                .serve_with_shutdown(addr, shutdown)
                .await?
        }
    }
    Ok(())
}

/// Serves one `Books` replica (and the stock participant of order
/// execution) until `shutdown`; seeds the catalogue first (retrying until
/// the store answers), so a fresh bookstore has its books.
pub async fn serve_books(
    db: BooksDb,
    state: Store,
    addr: std::net::SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    clock: crate::clock::Clock,
    opts: super::participants::ParticipantOpts,
) -> anyhow::Result<()> {
    let seeder = {
        let (db, clock) = (db.clone(), clock.clone());
        tokio::spawn(async move {
            let books = tartu_core::catalogue::seed();
            let mut attempt = 0;
            loop {
                match db.seed(&books).await {
                    Ok(n) => {
                        if n > 0 {
                            tracing::info!("seeded {n} books");
                        }
                        break;
                    }
                    Err(e) => {
                        attempt += 1;
                        tracing::warn!("seeding the catalogue (attempt {attempt}): {e}");
                        clock.sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        })
    };
    let participant = super::participants::ParticipantService {
        participant: super::participants::Participant::new(
            super::participants::Resource::Stock,
            db.store.clone(),
        )
        .with_opts(opts),
        books: db.clone(),
    };
    let resolver = tokio::spawn(resolve_loop(
        participant.participant.clone(),
        state,
        clock.clone(),
    ));
    let r = tonic::transport::Server::builder()
        .add_service(pb::books_server::BooksServer::new(
            super::books::BooksService { db },
        ))
        .add_service(pb::participant_server::ParticipantServer::new(participant))
        .serve_with_shutdown(addr, shutdown)
        .await;
    seeder.abort();
    resolver.abort();
    r?;
    Ok(())
}

/// Every 2 s of `clock`: resolves the participant's orders in doubt.
async fn resolve_loop(
    p: super::participants::Participant,
    state: Store,
    clock: crate::clock::Clock,
) {
    let mut seen = Default::default();
    loop {
        clock.sleep(Duration::from_secs(2)).await;
        if let Err(e) = p.resolve_in_doubt(&state, &mut seen).await {
            tracing::debug!("resolving orders in doubt: {e}");
        }
    }
}

/// Serves one payment service replica (accounts, and the payment
/// participant of order execution) until `shutdown`.
pub async fn serve_payment(
    payment: Store,
    books: BooksDb,
    state: Store,
    addr: std::net::SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    clock: crate::clock::Clock,
    opts: super::participants::ParticipantOpts,
) -> anyhow::Result<()> {
    let participant =
        super::participants::Participant::new(super::participants::Resource::Money, payment)
            .with_opts(opts);
    let resolver = tokio::spawn(resolve_loop(participant.clone(), state, clock));
    let r = tonic::transport::Server::builder()
        .add_service(pb::payment_server::PaymentServer::new(
            super::participants::PaymentService {
                participant: participant.clone(),
            },
        ))
        .add_service(pb::participant_server::ParticipantServer::new(
            super::participants::ParticipantService { participant, books },
        ))
        .serve_with_shutdown(addr, shutdown)
        .await;
    resolver.abort();
    r?;
    Ok(())
}

/// The process that would run `event` (for the orchestrator's routing).
pub fn service_of(event: &str) -> Option<Kind> {
    Kind::ALL
        .into_iter()
        .find(|k| k.process_of(event).is_some())
}
