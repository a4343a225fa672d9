//! Calls between the platform's processes: refusals on the wire, and
//! service discovery with routing.
//!
//! A refusal travels as a gRPC error whose `pad-code` metadata is its code
//! ([`refusal_status`], [`status_refusal`]); store errors map as in the
//! shop ([`crate::shop::rpc::kv_error`]: unknown stays unknown).
//!
//! [`Discovery`] finds instances only through the registry: it lists the
//! registered instances (cached for [`VIEW_TTL`]) and routes to those whose
//! lease still runs and who report themselves healthy, judging "lapsed" by
//! the registry's clock as of its answer plus the local time elapsed since
//! the listing was asked for (so neither a caller's clock offset nor a slow
//! answer moves the bound: an instance is routed to at most as long after
//! its lease lapsed as the registry replicas' clocks disagree plus the error
//! of the caller's clock over that time; scenario `pad` checks it). Each call has a
//! deadline, a retry budget of [`ATTEMPTS`] attempts on different
//! instances, and a circuit breaker per instance that opens after
//! [`BREAKER_FAILURES`] failures in a row and lets one call through again
//! after [`BREAKER_OPEN`]. Only calls that certainly did nothing, or are
//! idempotent, are retried. A read ([`Discovery::read`]) changes nothing:
//! retried like an idempotent call, it ends "not done" when no attempt
//! answered, never "outcome unknown".

use super::pb;
use super::PadError;
use crate::clock::Clock;
use crate::shop::rpc::{backoff, certainly_not_done, Deadline};
use pad_core::registry::Instance;
use pad_core::{codes, Refusal};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// How long a listing of the registry is used before it is asked again.
pub const VIEW_TTL: Duration = Duration::from_millis(500);
/// Attempts per call (the first and two retries), within its deadline.
pub const ATTEMPTS: u32 = 3;
pub const BREAKER_FAILURES: u32 = 3;
pub const BREAKER_OPEN: Duration = Duration::from_secs(1);

const CODES: [&str; 7] = [
    codes::BAD_USER_INPUT,
    codes::INVALID_CREDENTIALS,
    codes::UNAUTHENTICATED,
    codes::FORBIDDEN,
    codes::EMAIL_TAKEN,
    codes::NOT_FOUND,
    codes::UNAVAILABLE,
];

/// A refusal as a gRPC error (a business answer: never retried).
pub fn refusal_status(r: &Refusal) -> Status {
    let code = match r.code {
        codes::NOT_FOUND => Code::NotFound,
        codes::EMAIL_TAKEN => Code::AlreadyExists,
        _ => Code::FailedPrecondition,
    };
    let mut s = Status::new(code, r.message.clone());
    if let Ok(v) = r.code.parse() {
        s.metadata_mut().insert("pad-code", v);
    }
    s
}

/// The refusal a gRPC error carries, if it is one.
pub fn status_refusal(s: &Status) -> Option<Refusal> {
    let code = s.metadata().get("pad-code")?.to_str().ok()?;
    let code = CODES.into_iter().find(|c| *c == code)?;
    Some(Refusal::new(code, s.message()))
}

/// A status whose outcome is unknown, marked so in its `pad-outcome`
/// metadata: no caller up the chain takes it for "not done", whatever its
/// message quotes (a store client's last error may say "connect error").
pub fn unknown_status(message: impl Into<String>) -> Status {
    let mut s = Status::unavailable(message);
    s.metadata_mut().insert(
        "pad-outcome",
        tonic::metadata::MetadataValue::from_static("unknown"),
    );
    s
}

/// A status that certainly did nothing, marked so.
pub fn not_done_status(message: impl Into<String>) -> Status {
    let mut s = Status::aborted(message);
    s.metadata_mut().insert(
        "pad-outcome",
        tonic::metadata::MetadataValue::from_static("not-done"),
    );
    s
}

/// Did the call certainly take no effect? The `pad-outcome` mark when
/// there is one; otherwise the transport's own errors (connection refused).
pub fn not_done(s: &Status) -> bool {
    match s
        .metadata()
        .get("pad-outcome")
        .and_then(|v| v.to_str().ok())
    {
        Some("unknown") => false,
        Some("not-done") => true,
        _ => certainly_not_done(s),
    }
}

/// A service's error as its gRPC answer.
pub fn pad_status(e: PadError) -> Status {
    match e {
        PadError::Refused(r) => refusal_status(&r),
        PadError::Store(crate::client::ClientError::Unknown(m)) => {
            unknown_status(format!("outcome unknown: {m}"))
        }
        PadError::Store(crate::client::ClientError::Failed(m)) => {
            not_done_status(format!("not done, store unavailable: {m}"))
        }
    }
}

/// A gRPC error back as the caller's error: refusals stay refusals.
pub fn status_error(s: Status) -> PadError {
    match status_refusal(&s) {
        Some(r) => PadError::Refused(r),
        None if not_done(&s) => {
            PadError::Store(crate::client::ClientError::Failed(s.message().to_string()))
        }
        None => PadError::Store(crate::client::ClientError::Unknown(s.message().to_string())),
    }
}

/// The registry's listing as a caller holds it.
#[derive(Clone, Debug)]
struct View {
    instances: Vec<Instance>,
    /// The registry replica's clock when it answered, and ours when we
    /// asked (earlier: the answer's time is taken as of the asking).
    registry_now_ms: u64,
    fetched_at: Duration,
}

#[derive(Clone, Copy, Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Duration>,
}

/// The registry's listing for a status page ([`Discovery::fresh_listing`]).
#[derive(Clone, Debug)]
pub struct Listing {
    pub instances: Vec<Instance>,
    /// The registry's time now, as reckoned from the listing.
    pub registry_now_ms: u64,
    /// How long ago the listing was asked for.
    pub age: Duration,
}

/// Told of every instance a call is sent to: the service and the instance
/// (an audit hook: the simulator checks routing against the leases).
pub type RouteHook = Arc<dyn Fn(&str, &Instance) + Send + Sync>;

/// With planted bug `pad-stale-view`: how long a listing is kept.
const STALE_VIEW_TTL: Duration = Duration::from_secs(10);

/// What a call does, which decides how a failed attempt is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Changes nothing: retried; a failure is "not done" (send again).
    Read,
    /// May change something, the same however often it is sent: retried;
    /// an attempt without an answer makes the outcome unknown.
    Idempotent,
    /// May change something, once per sending: never sent again after an
    /// attempt without an answer (outcome unknown).
    Once,
}

/// Where the platform's services are, as the registry says.
#[derive(Clone)]
pub struct Discovery {
    registry: Vec<String>,
    /// Planted bug `pad-stale-view`.
    stale_view: bool,
    on_route: Option<RouteHook>,
    clock: Clock,
    attempt_timeout: Duration,
    view: Arc<Mutex<Option<View>>>,
    refreshing: Arc<tokio::sync::Mutex<()>>,
    breakers: Arc<Mutex<BTreeMap<String, Breaker>>>,
    chans: Arc<Mutex<BTreeMap<String, Channel>>>,
    next: Arc<AtomicUsize>,
}

impl Discovery {
    /// A caller that finds the registry's replicas at `registry`.
    pub fn new(registry: Vec<String>, clock: Clock, attempt_timeout: Duration) -> Discovery {
        assert!(
            !registry.is_empty(),
            "the registry needs at least one replica"
        );
        Discovery {
            registry,
            stale_view: false,
            on_route: None,
            clock,
            attempt_timeout,
            view: Default::default(),
            refreshing: Default::default(),
            breakers: Default::default(),
            chans: Default::default(),
            next: Arc::new(AtomicUsize::new(super::super::shop::random_u64() as usize)),
        }
    }

    /// With the planted bugs that concern discovery turned on.
    pub fn with_bugs(mut self, bugs: crate::bugs::Bugs) -> Discovery {
        self.stale_view = bugs.pad_stale_view;
        self
    }

    /// Calls `hook` with each instance a call is sent to.
    pub fn on_route(mut self, hook: RouteHook) -> Discovery {
        self.on_route = Some(hook);
        self
    }

    fn channel(&self, addr: &str) -> Result<Channel, Status> {
        let mut chans = self.chans.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = chans.get(addr) {
            return Ok(c.clone());
        }
        let c = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::invalid_argument(format!("bad address '{addr}': {e}")))?
            .connect_timeout(self.clock.to_runtime(self.attempt_timeout))
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

    /// Asks a registry replica for the listing (one after another).
    async fn fetch(&self) -> Result<View, Status> {
        let mut last = Status::unavailable("no registry replica");
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for k in 0..self.registry.len() {
            let addr = &self.registry[(start + k) % self.registry.len()];
            let chan = self.channel(addr)?;
            let mut c = pb::registry_client::RegistryClient::new(chan);
            // The registry's time in its answer is counted as of the
            // sending: however long the answer takes to come back, leases
            // are never reckoned to run longer than they do.
            let sent = self.clock.now();
            let call = c.list(pb::Empty {});
            match tokio::time::timeout(self.clock.to_runtime(self.attempt_timeout), call).await {
                Ok(Ok(r)) => {
                    let r = r.into_inner();
                    return Ok(View {
                        instances: r
                            .instances
                            .into_iter()
                            .map(|i| Instance {
                                service: i.service,
                                id: i.id,
                                addr: i.addr,
                                healthy: i.healthy,
                                since_ms: i.since_ms,
                                lease_until_ms: i.lease_until_ms,
                            })
                            .collect(),
                        registry_now_ms: r.now_ms,
                        fetched_at: sent,
                    });
                }
                Ok(Err(s)) => {
                    self.forget(addr);
                    last = s;
                }
                Err(_) => {
                    self.forget(addr);
                    last = Status::deadline_exceeded(format!("registry {addr}: no answer"));
                }
            }
        }
        Err(last)
    }

    /// The listing, asked again when older than [`VIEW_TTL`] (in the
    /// background: until the new one comes, or when the registry does not
    /// answer, the older one serves and its leases age with it). Only the
    /// first call, with no listing yet, waits for the registry.
    async fn view(&self) -> Option<View> {
        let ttl = self.ttl();
        let fresh = |v: &Option<View>| {
            v.as_ref()
                .is_some_and(|v| self.clock.now().saturating_sub(v.fetched_at) < ttl)
        };
        let current = {
            let v = self.view.lock().unwrap_or_else(|e| e.into_inner());
            if fresh(&v) {
                return v.clone();
            }
            v.clone()
        };
        if current.is_some() {
            // The listing is asked for again in the background, once at a
            // time; meanwhile the one we have serves (its leases age with
            // it), so no call waits for the registry beyond its deadline.
            if let Ok(one) = self.refreshing.clone().try_lock_owned() {
                let me = self.clone();
                tokio::spawn(async move {
                    let _one = one;
                    me.refresh().await;
                });
            }
            return current;
        }
        let _one = self.refreshing.lock().await;
        {
            let v = self.view.lock().unwrap_or_else(|e| e.into_inner());
            if v.is_some() {
                return v.clone();
            }
        }
        self.refresh().await
    }

    /// How long a listing is used before it is asked again.
    fn ttl(&self) -> Duration {
        if self.stale_view {
            STALE_VIEW_TTL
        } else {
            VIEW_TTL
        }
    }

    /// Asks the registry for the listing and keeps it (the old one when the
    /// registry does not answer).
    async fn refresh(&self) -> Option<View> {
        match self.fetch().await {
            Ok(v) => {
                *self.view.lock().unwrap_or_else(|e| e.into_inner()) = Some(v.clone());
                Some(v)
            }
            Err(e) => {
                tracing::warn!("service registry: {e}");
                self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
            }
        }
    }

    /// The registry's time now, as reckoned from the listing.
    fn reckon(&self, v: &View) -> u64 {
        if self.stale_view {
            // Planted bug: the leases judged at the listing's time.
            return v.registry_now_ms;
        }
        v.registry_now_ms + self.clock.now().saturating_sub(v.fetched_at).as_millis() as u64
    }

    /// Every instance of the registry's listing, with the registry's time
    /// as reckoned now.
    pub async fn listing(&self) -> Option<(Vec<Instance>, u64)> {
        let v = self.view().await?;
        Some((v.instances.clone(), self.reckon(&v)))
    }

    /// Like [`Discovery::listing`], but a listing older than [`VIEW_TTL`]
    /// is not served as is: this waits for a fresh one (the gateway's status
    /// page: calls go on with the old listing while a new one is asked for,
    /// but a page that shows leases must not show an old listing's leases
    /// as lapsed). With the listing's age: more than [`VIEW_TTL`] only when
    /// the registry did not answer.
    pub async fn fresh_listing(&self) -> Option<Listing> {
        let ttl = self.ttl();
        let age = |v: &View| self.clock.now().saturating_sub(v.fetched_at);
        let cached = self.view.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let v = match cached {
            Some(v) if age(&v) < ttl => v,
            _ => {
                // One fetch at a time (a refresh under way is waited for,
                // and then its listing serves).
                let _one = self.refreshing.lock().await;
                let cached = self.view.lock().unwrap_or_else(|e| e.into_inner()).clone();
                match cached {
                    Some(v) if age(&v) < ttl => v,
                    _ => self.refresh().await?,
                }
            }
        };
        Some(Listing {
            registry_now_ms: self.reckon(&v),
            age: age(&v),
            instances: v.instances,
        })
    }

    /// The instances of `service` a call may go to: lease running, healthy.
    pub async fn routable(&self, service: &str) -> Vec<Instance> {
        let Some(v) = self.view().await else {
            return Vec::new();
        };
        let now = self.reckon(&v);
        pad_core::registry::routable(&v.instances, service, now)
            .into_iter()
            .cloned()
            .collect()
    }

    fn breaker_open(&self, addr: &str) -> bool {
        let now = self.clock.now();
        self.breakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(addr)
            .and_then(|b| b.open_until)
            .is_some_and(|t| now < t)
    }

    fn record(&self, addr: &str, ok: bool) {
        let now = self.clock.now();
        let mut bs = self.breakers.lock().unwrap_or_else(|e| e.into_inner());
        let b = bs.entry(addr.to_string()).or_default();
        if ok {
            *b = Breaker::default();
        } else {
            b.failures += 1;
            if b.failures >= BREAKER_FAILURES {
                // Open (again: a half-open trial that failed reopens it).
                b.open_until = Some(now + BREAKER_OPEN);
                if b.failures == BREAKER_FAILURES {
                    tracing::warn!("circuit to {addr} open for {BREAKER_OPEN:?}");
                }
            }
        }
    }

    /// Calls `f` on an instance of `service`, with up to [`ATTEMPTS`]
    /// attempts on different instances within `total`. `idempotent`: may a
    /// call whose outcome is unknown be sent again?
    pub async fn call<T, F, Fut>(
        &self,
        service: &str,
        total: Duration,
        idempotent: bool,
        f: F,
    ) -> Result<T, Status>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let kind = if idempotent {
            Kind::Idempotent
        } else {
            Kind::Once
        };
        self.call_as(service, total, kind, f).await
    }

    /// Calls `f`, a read (it changes nothing), as [`Discovery::call`] does
    /// an idempotent call; but when no attempt answers, the error is "not
    /// done" (marked so: send again), never "outcome unknown", and a
    /// refusal after an attempt without an answer stays a refusal.
    pub async fn read<T, F, Fut>(&self, service: &str, total: Duration, f: F) -> Result<T, Status>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call_as(service, total, Kind::Read, f).await
    }

    async fn call_as<T, F, Fut>(
        &self,
        service: &str,
        total: Duration,
        kind: Kind,
        mut f: F,
    ) -> Result<T, Status>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let clock = &self.clock;
        let deadline = Deadline::after(clock, total);
        let mut maybe_done = false;
        let mut attempt = 0u32;
        let mut tried: Vec<String> = Vec::new();
        let mut pause = 0u32;
        loop {
            let all = self.routable(service).await;
            // Closed circuits first, untried instances first.
            let mut cands: Vec<&Instance> = all
                .iter()
                .filter(|i| !self.breaker_open(&i.addr) && !tried.contains(&i.addr))
                .collect();
            if cands.is_empty() {
                cands = all.iter().filter(|i| !self.breaker_open(&i.addr)).collect();
            }
            let last = if cands.is_empty() {
                not_done_status(format!(
                    "no routable instance of {service} (none registered, healthy and with its circuit closed)"
                ))
            } else {
                let pick = cands[self.next.fetch_add(1, Ordering::Relaxed) % cands.len()].clone();
                let chan = self.channel(&pick.addr)?;
                if let Some(hook) = &self.on_route {
                    hook(service, &pick);
                }
                let limit = self.attempt_timeout.min(deadline.left(clock));
                attempt += 1;
                tried.push(pick.addr.clone());
                let status = match tokio::time::timeout(clock.to_runtime(limit), f(chan)).await {
                    Ok(Ok(r)) => {
                        self.record(&pick.addr, true);
                        return Ok(r.into_inner());
                    }
                    Ok(Err(s)) if crate::shop::rpc::is_business(&s) => {
                        self.record(&pick.addr, true);
                        if maybe_done && s.code() != Code::NotFound {
                            // An earlier attempt may have taken effect, and
                            // this refusal may be its consequence (initOrder
                            // whose order was made and paid, its cart emptied,
                            // then refused for an empty cart): not definite.
                            return Err(unknown_status(format!(
                                "outcome unknown: an earlier attempt at {service} may have taken effect; the one after it was refused: {}",
                                s.message()
                            )));
                        }
                        return Err(s);
                    }
                    Ok(Err(s)) => s,
                    Err(_) => Status::deadline_exceeded(format!(
                        "{service} at {}: no answer within {limit:?}",
                        pick.addr
                    )),
                };
                self.record(&pick.addr, false);
                if !not_done(&status) {
                    self.forget(&pick.addr);
                    match kind {
                        Kind::Once => {
                            return Err(unknown_status(format!(
                                "outcome unknown: {service} at {}: {}",
                                pick.addr,
                                status.message()
                            )))
                        }
                        Kind::Idempotent => maybe_done = true,
                        // A read that did not answer changed nothing.
                        Kind::Read => {}
                    }
                }
                status
            };
            pause += 1;
            if attempt >= ATTEMPTS || deadline.passed(clock) {
                let msg = format!(
                    "{service}: gave up after {attempt} attempts, last: {}",
                    last.message()
                );
                return Err(gave_up(kind, maybe_done, msg));
            }
            backoff(clock, pause).await;
            if deadline.passed(clock) {
                return Err(gave_up(
                    kind,
                    maybe_done,
                    format!("{service}: deadline passed"),
                ));
            }
        }
    }
}

/// How the error of a read that no instance answered begins.
pub const READ_NOT_DONE: &str = "not done (a read): send again: ";

/// The error of a call that gave up: unknown when an attempt may have taken
/// effect, else not done (a read's says so).
fn gave_up(kind: Kind, maybe_done: bool, msg: String) -> Status {
    if maybe_done {
        unknown_status(format!("outcome unknown: {msg}"))
    } else if kind == Kind::Read {
        not_done_status(format!("{READ_NOT_DONE}{msg}"))
    } else {
        not_done_status(format!("not done: {msg}"))
    }
}

/// A registry to test against: it lists the instances it was given, each
/// with a lease of `lease_ms` from the moment it answers (as if every
/// instance had just beaten), and counts the listings it gave.
#[cfg(all(test, not(madsim)))]
pub(crate) mod testing {
    use super::pb;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A runtime for a test that serves and calls over real sockets.
    pub fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    pub struct StubRegistry {
        pub instances: Vec<(String, String)>,
        pub lease_ms: u64,
        pub lists: Arc<AtomicUsize>,
    }

    fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    }

    #[tonic::async_trait]
    impl pb::registry_server::Registry for StubRegistry {
        async fn beat(
            &self,
            _: tonic::Request<pb::Heartbeat>,
        ) -> Result<tonic::Response<pb::Lease>, tonic::Status> {
            Err(tonic::Status::unimplemented("a stub"))
        }

        async fn list(
            &self,
            _: tonic::Request<pb::Empty>,
        ) -> Result<tonic::Response<pb::Instances>, tonic::Status> {
            self.lists.fetch_add(1, Ordering::SeqCst);
            let now_ms = now_ms();
            Ok(tonic::Response::new(pb::Instances {
                instances: self
                    .instances
                    .iter()
                    .enumerate()
                    .map(|(i, (service, addr))| pb::InstanceView {
                        service: service.clone(),
                        id: i.to_string(),
                        addr: addr.clone(),
                        healthy: true,
                        since_ms: now_ms,
                        lease_until_ms: now_ms + self.lease_ms,
                    })
                    .collect(),
                now_ms,
            }))
        }
    }

    /// Serves `stub` on a free loopback port (until the runtime ends); its
    /// address.
    pub async fn serve(stub: StubRegistry) -> String {
        let incoming =
            tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = incoming.local_addr().unwrap().to_string();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(pb::registry_server::RegistryServer::new(stub))
                .serve_with_incoming(incoming),
        );
        addr
    }

    /// A loopback address that takes connections and never answers; the
    /// accepted sockets are kept open until the runtime ends.
    pub async fn silent() -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        addr
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::testing::{rt, serve, silent, StubRegistry};
    use super::*;

    /// A cart service that takes the connection and never answers: a read
    /// of it ends UNAVAILABLE-like (not done, send again), an idempotent
    /// write outcome unknown, a write sent once outcome unknown at the
    /// first silence.
    #[test]
    fn a_read_that_no_instance_answers_is_not_done() {
        rt().block_on(async {
            let cart = silent().await;
            let registry = serve(StubRegistry {
                instances: vec![("cart".into(), cart)],
                lease_ms: 60_000,
                lists: Default::default(),
            })
            .await;
            let disc = Discovery::new(vec![registry], Clock::new(), Duration::from_millis(200));
            let get = |ch| async move {
                pb::carts_client::CartsClient::new(ch)
                    .get(pb::UserRef { user: 1 })
                    .await
            };
            let total = Duration::from_millis(1500);
            let s = disc.read("cart", total, get).await.unwrap_err();
            assert!(not_done(&s), "{s:?}");
            assert!(s.message().starts_with(READ_NOT_DONE), "{}", s.message());
            assert!(
                s.message().contains("gave up after 3 attempts"),
                "{}",
                s.message()
            );
            let s = disc.call("cart", total, true, get).await.unwrap_err();
            assert!(!not_done(&s), "{s:?}");
            assert!(
                s.message().starts_with("outcome unknown"),
                "{}",
                s.message()
            );
            let s = disc.call("cart", total, false, get).await.unwrap_err();
            assert!(!not_done(&s), "{s:?}");
        });
    }

    /// A status page never serves an old listing: with leases of 300 ms,
    /// a listing 700 ms old would show every instance lapsed; the fresh
    /// one asked for shows them up.
    #[test]
    fn a_status_listing_is_fresh() {
        rt().block_on(async {
            let lists = Arc::new(AtomicUsize::new(0));
            let registry = serve(StubRegistry {
                instances: vec![("cart".into(), "127.0.0.1:9".into())],
                lease_ms: 300,
                lists: lists.clone(),
            })
            .await;
            let disc = Discovery::new(vec![registry], Clock::new(), Duration::from_millis(500));
            let l = disc.fresh_listing().await.unwrap();
            assert_eq!(
                pad_core::registry::routable(&l.instances, "cart", l.registry_now_ms).len(),
                1
            );
            tokio::time::sleep(Duration::from_millis(700)).await;
            let before = lists.load(Ordering::SeqCst);
            // What calls would use at once: the old listing, its lease
            // lapsed (a new one is asked for in the background).
            let (all, now) = disc.listing().await.unwrap();
            assert!(pad_core::registry::routable(&all, "cart", now).is_empty());
            let l = disc.fresh_listing().await.unwrap();
            assert!(l.age < VIEW_TTL, "{:?}", l.age);
            assert_eq!(
                pad_core::registry::routable(&l.instances, "cart", l.registry_now_ms).len(),
                1,
                "{l:?}"
            );
            assert!(lists.load(Ordering::SeqCst) > before);
        });
    }
}
