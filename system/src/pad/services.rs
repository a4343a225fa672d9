//! The platform's gRPC services, each a stateless replica over its own Raft
//! KV group: access management ([`AuthSvc`]), the catalogue, carts,
//! payments, orders (which runs the order sagas and resumes unfinished ones)
//! and the service registry. Every service replica registers itself with
//! the registry and renews its lease by heartbeat ([`heartbeats`]),
//! reporting itself healthy while its store answers.

use super::orders::{self, Steps};
use super::rpc::{pad_status, status_error, Discovery};
use super::{accounts, cart, catalog, payment, pb, registry, PadError, Topology};
use crate::bugs::Bugs;
use crate::clock::Clock;
use crate::shop::{random_id, random_u64, Store};
use crate::tartu::WallClock;
use pad_core::auth::KdfCost;
use pad_core::order::Status as OrderStatus;
use pad_core::Refusal;
use std::time::Duration;
use tonic::{Request, Response, Status};

type R<T> = Result<Response<T>, Status>;

fn ok<T>(v: T) -> R<T> {
    Ok(Response::new(v))
}

/// What every service replica is given.
#[derive(Clone)]
pub struct ServiceEnv {
    pub topology: Topology,
    /// The host's clock (timeouts) and its wall time (tokens, leases).
    pub wall: WallClock,
    pub bugs: Bugs,
    /// How long one call to another process may take.
    pub rpc_timeout: Duration,
    /// The store clients' timeouts.
    pub kv_options: crate::client::ClientOptions,
    /// How long access tokens live ([`pad_core::auth::ACCESS_TTL_MS`]; the
    /// simulator uses seconds).
    pub access_ttl_ms: u64,
    /// Told of every lease a registry replica of this process sets and of
    /// every listing it answers (an audit hook for the simulator).
    pub lease_audit: Option<LeaseHook>,
}

/// Called by a registry replica with the address whose lease it renews
/// (`None`: it answers a listing) and its clock's time (ms) it judged by.
pub type LeaseHook = std::sync::Arc<dyn Fn(Option<&str>, u64) + Send + Sync>;

impl ServiceEnv {
    pub fn clock(&self) -> &Clock {
        &self.wall.clock
    }

    /// A pool of clients of `group`'s store, on this host's clock.
    pub fn store(&self, group: &str) -> Store {
        Store::with_clock(
            self.topology.kv[group].clone(),
            self.kv_options.clone(),
            self.clock().clone(),
        )
    }

    pub fn discovery(&self) -> Discovery {
        Discovery::new(
            self.topology.registry.clone(),
            self.clock().clone(),
            self.rpc_timeout,
        )
        .with_bugs(self.bugs)
    }
}

fn identity(u: &accounts::User) -> pb::Identity {
    pb::Identity {
        user: u.id,
        admin: u.admin,
        email: u.email.clone(),
    }
}

fn tokens(t: pad_core::auth::TokenPair) -> pb::Tokens {
    pb::Tokens {
        access: t.access,
        refresh: t.refresh,
    }
}

/// Access management: accounts, logins, token families.
pub struct AuthSvc {
    pub store: Store,
    pub wall: WallClock,
    pub key: Vec<u8>,
    pub kdf: KdfCost,
    pub bugs: Bugs,
    pub access_ttl_ms: u64,
}

impl AuthSvc {
    /// The time a token is judged at: the caller's (the gateway's clock),
    /// or, with the planted bug, this host's own.
    fn judge_at(&self, caller_ms: u64) -> u64 {
        if self.bugs.pad_expiry_own_clock {
            self.wall.now_ms()
        } else {
            caller_ms
        }
    }
}

#[tonic::async_trait]
impl pb::auth_server::Auth for AuthSvc {
    async fn register(&self, r: Request<pb::Credentials>) -> R<pb::Identity> {
        let r = r.into_inner();
        let mut salt = [0u8; 16];
        salt[..8].copy_from_slice(&random_u64().to_le_bytes());
        salt[8..].copy_from_slice(&random_u64().to_le_bytes());
        let u = accounts::register(
            &mut self.store.client(),
            &r.email,
            &r.password,
            &salt,
            self.kdf,
        )
        .await
        .map_err(pad_status)?;
        ok(identity(&u))
    }

    async fn login(&self, r: Request<pb::Credentials>) -> R<pb::Tokens> {
        let r = r.into_inner();
        let t = accounts::login_with_ttl(
            &mut self.store.client(),
            &r.email,
            &r.password,
            &random_id(),
            &random_id(),
            self.wall.now_ms(),
            &self.key,
            self.access_ttl_ms,
            self.kdf,
        )
        .await
        .map_err(pad_status)?;
        ok(tokens(t))
    }

    async fn refresh(&self, r: Request<pb::TokenAt>) -> R<pb::Tokens> {
        let r = r.into_inner();
        let t = accounts::refresh_with_ttl(
            &mut self.store.client(),
            &r.token,
            &random_id(),
            self.judge_at(r.now_ms),
            &self.key,
            self.access_ttl_ms,
        )
        .await
        .map_err(pad_status)?;
        ok(tokens(t))
    }

    async fn logout(&self, r: Request<pb::TokenAt>) -> R<pb::Empty> {
        let r = r.into_inner();
        accounts::logout(
            &mut self.store.client(),
            &r.token,
            self.judge_at(r.now_ms),
            &self.key,
        )
        .await
        .map_err(pad_status)?;
        ok(pb::Empty {})
    }

    async fn authenticate(&self, r: Request<pb::TokenAt>) -> R<pb::Identity> {
        let r = r.into_inner();
        let c = accounts::authenticate_with(
            &mut self.store.client(),
            &r.token,
            self.judge_at(r.now_ms),
            &self.key,
            self.bugs.pad_local_revocation,
        )
        .await
        .map_err(pad_status)?;
        ok(pb::Identity {
            user: c.sub,
            admin: c.admin,
            email: String::new(),
        })
    }

    async fn get_user(&self, r: Request<pb::UserRef>) -> R<pb::Identity> {
        let id = r.into_inner().user;
        match accounts::user(&mut self.store.client(), id)
            .await
            .map_err(pad_status)?
        {
            Some(u) => ok(identity(&u)),
            None => Err(Status::not_found(format!("no user {id}"))),
        }
    }

    async fn delete_user(&self, r: Request<pb::UserRef>) -> R<pb::Deleted> {
        let deleted = accounts::delete_user(&mut self.store.client(), r.into_inner().user)
            .await
            .map_err(pad_status)?;
        ok(pb::Deleted { deleted })
    }
}

/// The catalogue: categories, products, the units orders hold.
pub struct CatalogSvc {
    pub store: Store,
}

fn product_pb(p: pad_core::catalog::Product, cats: &[pad_core::catalog::Category]) -> pb::Product {
    pb::Product {
        id: p.id,
        name: p.name,
        price_cents: p.price_cents,
        units_available: p.units_available,
        image_url: p.image_url,
        categories: p
            .category_ids
            .iter()
            .map(|id| pb::Category {
                id: *id,
                name: cats
                    .iter()
                    .find(|c| c.id == *id)
                    .map_or(String::new(), |c| c.name.clone()),
                description: String::new(),
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl pb::catalog_server::Catalog for CatalogSvc {
    async fn create_category(&self, r: Request<pb::NewCategory>) -> R<pb::Category> {
        let r = r.into_inner();
        let c = catalog::create_category(&mut self.store.client(), &r.name, &r.description)
            .await
            .map_err(pad_status)?;
        ok(pb::Category {
            id: c.id,
            name: c.name,
            description: c.description,
        })
    }

    async fn list_categories(&self, _: Request<pb::Empty>) -> R<pb::Categories> {
        let cs = catalog::categories(&mut self.store.client())
            .await
            .map_err(pad_status)?;
        ok(pb::Categories {
            categories: cs
                .into_iter()
                .map(|c| pb::Category {
                    id: c.id,
                    name: c.name,
                    description: c.description,
                })
                .collect(),
        })
    }

    async fn create_product(&self, r: Request<pb::NewProduct>) -> R<pb::Product> {
        let r = r.into_inner();
        let mut kv = self.store.client();
        let image = (!r.image_url.is_empty()).then_some(r.image_url.as_str());
        let p = catalog::create_product(
            &mut kv,
            &r.name,
            r.price,
            image,
            r.units_available,
            &r.category_ids,
        )
        .await
        .map_err(pad_status)?;
        let cats = catalog::categories(&mut kv).await.map_err(pad_status)?;
        ok(product_pb(p, &cats))
    }

    async fn get_product(&self, r: Request<pb::ProductRef>) -> R<pb::Product> {
        let id = r.into_inner().id;
        let mut kv = self.store.client();
        match catalog::product(&mut kv, id).await.map_err(pad_status)? {
            Some(p) => {
                let cats = if p.category_ids.is_empty() {
                    Vec::new()
                } else {
                    catalog::categories(&mut kv).await.map_err(pad_status)?
                };
                ok(product_pb(p, &cats))
            }
            None => Err(super::rpc::refusal_status(&Refusal::new(
                pad_core::codes::NOT_FOUND,
                format!("id: no product {id}"),
            ))),
        }
    }

    async fn reserve(&self, r: Request<pb::Hold>) -> R<pb::HoldResult> {
        let r = r.into_inner();
        let lines: Vec<(i64, i64)> = r.lines.iter().map(|l| (l.product, l.quantity)).collect();
        match catalog::reserve(&mut self.store.client(), &r.order, &lines)
            .await
            .map_err(pad_status)?
        {
            Ok(()) => ok(pb::HoldResult {
                held: true,
                refusal: String::new(),
            }),
            Err(refusal) => ok(pb::HoldResult {
                held: false,
                refusal: refusal.message,
            }),
        }
    }

    async fn release(&self, r: Request<pb::OrderTx>) -> R<pb::Empty> {
        catalog::release(&mut self.store.client(), &r.into_inner().order)
            .await
            .map_err(pad_status)?;
        ok(pb::Empty {})
    }
}

/// Carts, one per user.
pub struct CartSvc {
    pub store: Store,
    pub bugs: Bugs,
}

fn cart_pb(user: u64, c: &pad_core::cart::Cart) -> pb::Cart {
    pb::Cart {
        user,
        items: c
            .items
            .iter()
            .map(|(&product, &quantity)| pb::Line { product, quantity })
            .collect(),
    }
}

#[tonic::async_trait]
impl pb::carts_server::Carts for CartSvc {
    async fn get(&self, r: Request<pb::UserRef>) -> R<pb::Cart> {
        let user = r.into_inner().user;
        let c = cart::get(&mut self.store.client(), user)
            .await
            .map_err(pad_status)?;
        ok(cart_pb(user, &c))
    }

    async fn change(&self, r: Request<pb::CartChange>) -> R<pb::Cart> {
        let r = r.into_inner();
        let lines: Vec<(i64, i64)> = r.lines.iter().map(|l| (l.product, l.quantity)).collect();
        let op = r.op.as_str();
        if !["add", "set", "remove", "clear", "take"].contains(&op) {
            return Err(Status::invalid_argument(format!(
                "op: expected add, set, remove, clear or take, got '{op}'"
            )));
        }
        let order = r.order.clone();
        let c = cart::update(&mut self.store.client(), r.user, |c| match op {
            "add" => c.add(r.product, r.quantity),
            "set" => c.update(r.product, r.quantity),
            "remove" => c.remove(r.product),
            "clear" => {
                c.clear();
                Ok(())
            }
            _ if self.bugs.pad_take_clears_cart => {
                // Planted bug: the whole cart goes, not the order's units.
                c.clear();
                Ok(())
            }
            _ => {
                c.take(&order, &lines);
                Ok(())
            }
        })
        .await
        .map_err(pad_status)?;
        ok(cart_pb(r.user, &c))
    }
}

/// Payments: balances and one decided charge per order.
pub struct PaymentSvc {
    pub store: Store,
}

#[tonic::async_trait]
impl pb::payments_server::Payments for PaymentSvc {
    async fn charge(&self, r: Request<pb::ChargeRequest>) -> R<pb::ChargeResult> {
        let r = r.into_inner();
        let c = payment::charge(&mut self.store.client(), &r.order, r.user, r.amount_cents)
            .await
            .map_err(pad_status)?;
        ok(pb::ChargeResult { charged: c.charged })
    }

    async fn get_balance(&self, r: Request<pb::UserRef>) -> R<pb::Balance> {
        let cents = payment::balance(&mut self.store.client(), r.into_inner().user)
            .await
            .map_err(pad_status)?;
        ok(pb::Balance { cents })
    }
}

/// The saga's calls to the other services, found through the registry.
pub struct Remote {
    pub disc: Discovery,
    pub timeout: Duration,
}

impl Steps for Remote {
    async fn cart(&mut self, user: u64) -> Result<pad_core::cart::Cart, PadError> {
        let c = self
            .disc
            .call("cart", self.timeout, true, |ch| async move {
                pb::carts_client::CartsClient::new(ch)
                    .get(pb::UserRef { user })
                    .await
            })
            .await
            .map_err(status_error)?;
        Ok(pad_core::cart::Cart {
            items: c.items.iter().map(|l| (l.product, l.quantity)).collect(),
            taken: Vec::new(),
        })
    }

    async fn product(&mut self, id: i64) -> Result<Option<pad_core::catalog::Product>, PadError> {
        let r = self
            .disc
            .call("catalog", self.timeout, true, |ch| async move {
                pb::catalog_client::CatalogClient::new(ch)
                    .get_product(pb::ProductRef { id })
                    .await
            })
            .await;
        match r {
            Ok(p) => Ok(Some(pad_core::catalog::Product {
                id: p.id,
                name: p.name,
                price_cents: p.price_cents,
                units_available: p.units_available,
                image_url: p.image_url,
                category_ids: p.categories.iter().map(|c| c.id).collect(),
            })),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(status_error(s)),
        }
    }

    async fn reserve(
        &mut self,
        tx: &str,
        lines: &[(i64, i64)],
    ) -> Result<Result<(), Refusal>, PadError> {
        let req = pb::Hold {
            order: tx.to_string(),
            lines: lines
                .iter()
                .map(|&(product, quantity)| pb::Line { product, quantity })
                .collect(),
        };
        let r = self
            .disc
            .call("catalog", self.timeout, true, |ch| {
                let req = req.clone();
                async move {
                    pb::catalog_client::CatalogClient::new(ch)
                        .reserve(req)
                        .await
                }
            })
            .await
            .map_err(status_error)?;
        Ok(if r.held {
            Ok(())
        } else {
            Err(Refusal::input(r.refusal))
        })
    }

    async fn charge(&mut self, tx: &str, user: u64, cents: i64) -> Result<bool, PadError> {
        let req = pb::ChargeRequest {
            order: tx.to_string(),
            user,
            amount_cents: cents,
        };
        let r = self
            .disc
            .call("payment", self.timeout, true, |ch| {
                let req = req.clone();
                async move {
                    pb::payments_client::PaymentsClient::new(ch)
                        .charge(req)
                        .await
                }
            })
            .await
            .map_err(status_error)?;
        Ok(r.charged)
    }

    async fn release(&mut self, tx: &str) -> Result<(), PadError> {
        let order = tx.to_string();
        self.disc
            .call("catalog", self.timeout, true, |ch| {
                let order = order.clone();
                async move {
                    pb::catalog_client::CatalogClient::new(ch)
                        .release(pb::OrderTx { order })
                        .await
                }
            })
            .await
            .map_err(status_error)?;
        Ok(())
    }

    async fn take_from_cart(
        &mut self,
        tx: &str,
        user: u64,
        lines: &[(i64, i64)],
    ) -> Result<(), PadError> {
        let req = pb::CartChange {
            user,
            op: "take".into(),
            product: 0,
            quantity: 0,
            lines: lines
                .iter()
                .map(|&(product, quantity)| pb::Line { product, quantity })
                .collect(),
            order: tx.to_string(),
        };
        self.disc
            .call("cart", self.timeout, true, |ch| {
                let req = req.clone();
                async move { pb::carts_client::CartsClient::new(ch).change(req).await }
            })
            .await
            .map_err(status_error)?;
        Ok(())
    }
}

/// Orders: creates them and runs their sagas; every replica also resumes
/// the unfinished orders it finds ([`OrdersSvc::recover`]).
#[derive(Clone)]
pub struct OrdersSvc {
    pub store: Store,
    pub disc: Discovery,
    pub timeout: Duration,
    pub bugs: Bugs,
}

fn order_view(o: &orders::Order) -> pb::OrderView {
    pb::OrderView {
        id: o.id,
        user: o.user,
        status: o.saga.status.name().to_string(),
        total_cents: o.total_cents,
    }
}

impl OrdersSvc {
    fn remote(&self) -> Remote {
        Remote {
            disc: self.disc.clone(),
            timeout: self.timeout,
        }
    }

    /// Runs order `id`'s saga to its end (or until a call fails; the
    /// recovery loop carries on later).
    pub async fn drive(&self, id: i64) -> Result<orders::Order, PadError> {
        orders::drive_with(
            &mut self.remote(),
            &mut self.store.client(),
            id,
            self.bugs.pad_paid_before_charge,
        )
        .await
    }

    /// Resumes unfinished orders, every `every` of `clock`'s time: those
    /// still running at two looks in a row (one just made is driven by
    /// the task `initOrder` started; taking it over at once only makes the
    /// two drivers' compare-and-sets collide).
    pub async fn recover(self, clock: Clock, every: Duration) {
        let mut before = std::collections::BTreeSet::new();
        loop {
            clock.sleep(every).await;
            match orders::running_ids(&mut self.store.client()).await {
                Ok(ids) => {
                    let now: std::collections::BTreeSet<i64> = ids.into_iter().collect();
                    for &id in now.intersection(&before) {
                        if let Err(e) = self.drive(id).await {
                            tracing::info!("order {id}: saga paused: {e}");
                        }
                    }
                    before = now;
                }
                Err(e) => tracing::info!("unfinished orders: {e}"),
            }
        }
    }
}

#[tonic::async_trait]
impl pb::orders_server::Orders for OrdersSvc {
    async fn init_order(&self, r: Request<pb::UserRef>) -> R<pb::OrderView> {
        let user = r.into_inner().user;
        let o = orders::init_order_with(&mut self.remote(), &mut self.store.client(), user)
            .await
            .map_err(pad_status)?;
        let me = self.clone();
        let id = o.id;
        tokio::spawn(async move {
            if let Err(e) = me.drive(id).await {
                tracing::info!("order {id}: saga paused: {e}");
            }
        });
        ok(order_view(&o))
    }

    async fn status(&self, r: Request<pb::OrderRef>) -> R<pb::OrderView> {
        let id = r.into_inner().id;
        match orders::get(&mut self.store.client(), id)
            .await
            .map_err(pad_status)?
        {
            Some((o, _)) => ok(order_view(&o)),
            None => ok(pb::OrderView {
                id,
                user: 0,
                status: OrderStatus::Unknown.name().to_string(),
                total_cents: 0,
            }),
        }
    }
}

/// The service registry: takes heartbeats (the lease ends by this
/// replica's clock) and lists the instances.
pub struct RegistrySvc {
    pub store: Store,
    pub wall: WallClock,
    pub audit: Option<LeaseHook>,
}

#[tonic::async_trait]
impl pb::registry_server::Registry for RegistrySvc {
    async fn beat(&self, r: Request<pb::Heartbeat>) -> R<pb::Lease> {
        let r = r.into_inner();
        let now_ms = self.wall.now_ms();
        if let Some(a) = &self.audit {
            a(Some(&r.addr), now_ms);
        }
        let i = registry::heartbeat(
            &mut self.store.client(),
            &r.service,
            &r.id,
            &r.addr,
            r.healthy,
            now_ms,
            pad_core::registry::LEASE_MS,
        )
        .await
        .map_err(pad_status)?;
        ok(pb::Lease {
            lease_until_ms: i.lease_until_ms,
            now_ms,
        })
    }

    async fn list(&self, _: Request<pb::Empty>) -> R<pb::Instances> {
        let all = registry::instances(&mut self.store.client())
            .await
            .map_err(pad_status)?;
        ok(pb::Instances {
            instances: all
                .into_iter()
                .map(|i| pb::InstanceView {
                    service: i.service,
                    id: i.id,
                    addr: i.addr,
                    healthy: i.healthy,
                    since_ms: i.since_ms,
                    lease_until_ms: i.lease_until_ms,
                })
                .collect(),
            now_ms: {
                let now_ms = self.wall.now_ms();
                if let Some(a) = &self.audit {
                    a(None, now_ms);
                }
                now_ms
            },
        })
    }
}

impl RegistrySvc {
    /// Drops lapsed instances, every lease of this replica's time.
    pub async fn prune(store: Store, wall: WallClock) {
        loop {
            wall.clock
                .sleep(Duration::from_millis(pad_core::registry::LEASE_MS))
                .await;
            match registry::prune(&mut store.client(), wall.now_ms()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!("registry: dropped {n} lapsed instances"),
                Err(e) => tracing::info!("registry: pruning: {e}"),
            }
        }
    }
}

/// Registers `service` instance `id` at `addr` and renews its lease every
/// [`pad_core::registry::HEARTBEAT_MS`] (of the runtime's time, so a step
/// of the host's clock does not delay it), healthy while `store` answered
/// its last read within that (read on a rhythm of its own). A beat goes to
/// the registry replicas in turn, the last one that took a beat first,
/// until one takes it, each given a share of the period, so one replica
/// down does not let the lease lapse.
pub async fn heartbeats(
    env: ServiceEnv,
    service: String,
    id: String,
    addr: String,
    store: Option<Store>,
) {
    let clock = env.clock().clone();
    let every = Duration::from_millis(pad_core::registry::HEARTBEAT_MS);
    // Health is watched on its own rhythm: a slow store never delays a beat.
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(store.is_none()));
    if let Some(s) = store {
        let (healthy, clock) = (healthy.clone(), clock.clone());
        tokio::spawn(async move {
            loop {
                let next = tokio::time::Instant::now() + clock.to_runtime(every);
                let mut c = s.client();
                let ok = matches!(
                    tokio::time::timeout(clock.to_runtime(every), c.read(&["health"])).await,
                    Ok(Ok(_))
                );
                healthy.store(ok, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep_until(next).await;
            }
        });
    }
    let reg = &env.topology.registry;
    // The replica that took the last beat is asked first.
    let mut first = 0usize;
    loop {
        // One beat per period on the runtime's clock: neither the work below
        // nor a step of this host's clock pushes the next one back.
        let next = tokio::time::Instant::now() + clock.to_runtime(every);
        let beat = pb::Heartbeat {
            service: service.clone(),
            id: id.clone(),
            addr: addr.clone(),
            healthy: healthy.load(std::sync::atomic::Ordering::Relaxed),
        };
        // Registry replicas in turn until one takes it: a replica that is
        // down or cut off costs a share of the period, not the lease.
        let per_try = every * 4 / (5 * reg.len().max(1) as u32);
        for k in 0..reg.len() {
            let i = (first + k) % reg.len();
            let to = &reg[i];
            let sent = async {
                let ch = tonic::transport::Endpoint::from_shared(format!("http://{to}"))
                    .map_err(|e| Status::invalid_argument(e.to_string()))?
                    .connect_timeout(clock.to_runtime(per_try))
                    .connect_lazy();
                pb::registry_client::RegistryClient::new(ch)
                    .beat(beat.clone())
                    .await
            };
            match tokio::time::timeout(clock.to_runtime(per_try), sent).await {
                Ok(Ok(_)) => {
                    first = i;
                    break;
                }
                Ok(Err(e)) => tracing::info!("heartbeat to registry {to}: {e}"),
                Err(_) => tracing::info!("heartbeat to registry {to}: no answer"),
            }
        }
        tokio::time::sleep_until(next).await;
    }
}

/// Runs one service replica (`kind`: one of [`super::SERVICES`] or
/// `registry`) on `listen` until `shutdown` completes: registers it (as
/// `<kind>-<replica>` at its address in the topology, which may be a proxy
/// in front of `listen`) and renews its lease; orders also resumes
/// unfinished sagas, the registry drops lapsed instances. `key` signs the
/// tokens (auth only).
pub async fn serve(
    kind: &str,
    replica: usize,
    env: ServiceEnv,
    key: Vec<u8>,
    kdf: KdfCost,
    listen: std::net::SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use tonic::transport::Server;
    let addrs = if kind == "registry" {
        env.topology.registry.clone()
    } else {
        env.topology
            .services
            .get(kind)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("unknown service '{kind}': expected auth, catalog, cart, payment, orders or registry"))?
    };
    let Some(addr) = replica.checked_sub(1).and_then(|i| addrs.get(i)).cloned() else {
        anyhow::bail!("{kind} has replicas 1..={}, not {replica}", addrs.len());
    };
    let store = env.store(kind);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(heartbeats(
        env.clone(),
        kind.to_string(),
        format!("{kind}-{replica}"),
        addr,
        Some(store.clone()),
    )));
    let server = Server::builder();
    let served = match kind {
        "auth" => {
            let svc = AuthSvc {
                store,
                wall: env.wall.clone(),
                key,
                kdf,
                bugs: env.bugs,
                access_ttl_ms: env.access_ttl_ms,
            };
            server
                .clone()
                .add_service(pb::auth_server::AuthServer::new(svc))
                .serve_with_shutdown(listen, shutdown)
                .await
        }
        "catalog" => {
            server
                .clone()
                .add_service(pb::catalog_server::CatalogServer::new(CatalogSvc { store }))
                .serve_with_shutdown(listen, shutdown)
                .await
        }
        "cart" => {
            server
                .clone()
                .add_service(pb::carts_server::CartsServer::new(CartSvc {
                    store,
                    bugs: env.bugs,
                }))
                .serve_with_shutdown(listen, shutdown)
                .await
        }
        "payment" => {
            server
                .clone()
                .add_service(pb::payments_server::PaymentsServer::new(PaymentSvc {
                    store,
                }))
                .serve_with_shutdown(listen, shutdown)
                .await
        }
        "orders" => {
            let svc = OrdersSvc {
                store,
                disc: env.discovery(),
                timeout: env.rpc_timeout * 3,
                bugs: env.bugs,
            };
            tasks.push(tokio::spawn(
                svc.clone()
                    .recover(env.clock().clone(), Duration::from_secs(1)),
            ));
            server
                .clone()
                .add_service(pb::orders_server::OrdersServer::new(svc))
                .serve_with_shutdown(listen, shutdown)
                .await
        }
        _ => {
            tasks.push(tokio::spawn(RegistrySvc::prune(
                store.clone(),
                env.wall.clone(),
            )));
            let svc = RegistrySvc {
                store,
                wall: env.wall.clone(),
                audit: env.lease_audit.clone(),
            };
            server
                .clone()
                .add_service(pb::registry_server::RegistryServer::new(svc))
                .serve_with_shutdown(listen, shutdown)
                .await
        }
    };
    for t in tasks {
        t.abort();
    }
    served.map_err(|e| anyhow::anyhow!("{kind} replica {replica} on {listen}: {e}"))
}
