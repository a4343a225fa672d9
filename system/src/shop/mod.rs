//! The bookstore's business services: stock, payment and orders, and the
//! checkout that spans them.
//!
//! Each service keeps its data in its own Raft KV group (three replicas per
//! group) and holds no state of its own, so any number of replicas of each
//! can run and any of them can die at any time. Every conditional update is
//! a compare-and-set or a multi-key transaction of the store, never an
//! unguarded read-modify-write (except under the planted bug that says so).
//!
//! - [`checkout`]: the SAGA and 2PC coordinators as a pure state machine
//!   (record in, next step out), with no IO: unit-tested on its own.
//! - [`stock`], [`payment`]: participants. `Reserve`/`Charge` (a SAGA step or
//!   a 2PC prepare), `Release`/`Refund` (compensation or abort) and `Commit`
//!   are idempotent by transaction id, and a compensation that overtakes its
//!   step leaves a tombstone that refuses the late step.
//! - [`orders`]: orders, and the async shell that drives checkouts: the
//!   record of each checkout lives in the order group and is written before
//!   each step, so whichever order replica finds it unfinished resumes it.
//! - [`rpc`]: calls to a replicated service with failover, and the mapping
//!   of store errors to gRPC statuses.
//! - [`keys`]: the key layout of the three groups (the simulator reads it to
//!   take the final state).
//! - [`Topology`]: where every group and service replica listens.
//!
//! The services read time only through their host's [`Clock`]
//! ([`ServiceConfig::clock`]): in the simulator each host's clock has its own
//! offset, drift and jumps, so a clock fault on a service's host moves its
//! deadlines, time budgets, retry pauses and recovery period.

pub mod checkout;
pub mod keys;
pub mod orders;
pub mod payment;
pub mod rpc;
pub mod stock;

use crate::client::{ClientOptions, KvClient};
use crate::clock::Clock;
use crate::NodeId;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use checkout::Mode;

/// Addresses of every store replica and service replica of the shop (as
/// JSON: `bookstore service --topology FILE`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Topology {
    pub stock_kv: BTreeMap<NodeId, String>,
    pub payment_kv: BTreeMap<NodeId, String>,
    pub order_kv: BTreeMap<NodeId, String>,
    pub stock: Vec<String>,
    pub payment: Vec<String>,
    pub orders: Vec<String>,
}

/// Which process of the shop, for a supervisor or a simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    Stock,
    Payment,
    Orders,
}

impl Group {
    pub const ALL: [Group; 3] = [Group::Stock, Group::Payment, Group::Orders];
    pub fn name(self) -> &'static str {
        match self {
            Group::Stock => "stock",
            Group::Payment => "payment",
            Group::Orders => "orders",
        }
    }
    pub fn by_name(s: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.name() == s)
    }
}

impl Topology {
    /// Everything on 127.0.0.1: store group g (stock, payment, orders = 0, 1,
    /// 2) node i on base+100*(g+1)+i; service g replica r on
    /// base+100*(g+4)+r. With base 7000: stock store 7101-7103, payment
    /// store 7201-, order store 7301-, stock service 7401-, payment service
    /// 7501-, order service 7601-.
    pub fn loopback(base: u16, store_nodes: u64, service_replicas: u64) -> Topology {
        let port = |g: u64, i: u64| format!("127.0.0.1:{}", base as u64 + 100 * g + i);
        let group = |g: u64| (1..=store_nodes).map(|i| (i, port(g, i))).collect();
        let svc = |g: u64| (1..=service_replicas).map(|r| port(g, r)).collect();
        Topology {
            stock_kv: group(1),
            payment_kv: group(2),
            order_kv: group(3),
            stock: svc(4),
            payment: svc(5),
            orders: svc(6),
        }
    }

    pub fn kv(&self, g: Group) -> &BTreeMap<NodeId, String> {
        match g {
            Group::Stock => &self.stock_kv,
            Group::Payment => &self.payment_kv,
            Group::Orders => &self.order_kv,
        }
    }

    pub fn service(&self, g: Group) -> &Vec<String> {
        match g {
            Group::Stock => &self.stock,
            Group::Payment => &self.payment,
            Group::Orders => &self.orders,
        }
    }
}

/// How a service replica behaves.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub topology: Topology,
    pub mode: Mode,
    pub bugs: crate::bugs::Bugs,
    pub kv_options: ClientOptions,
    /// Deadline of one call to another service's replica.
    pub rpc_timeout: std::time::Duration,
    /// How long one checkout call drives its saga/transaction before
    /// answering "unknown" (the recovery loop finishes it later).
    pub checkout_deadline: std::time::Duration,
    /// How often the order service looks for stalled checkouts.
    pub recovery_every: std::time::Duration,
    /// The host's clock: every deadline, time budget, retry pause and
    /// recovery period of the services is measured on it (the durations
    /// above are local durations of this clock), and so are those of their
    /// store clients. `Clock::new()` by default (the runtime's time, no
    /// offset or drift); the simulator gives each host its own.
    pub clock: Clock,
}

impl ServiceConfig {
    pub fn new(topology: Topology, mode: Mode) -> ServiceConfig {
        ServiceConfig {
            topology,
            mode,
            bugs: Default::default(),
            // A replica's concurrent requests share one Pipeline stream per
            // store node (see `Store`) instead of a gRPC call each.
            kv_options: ClientOptions {
                pipeline: true,
                ..ClientOptions::default()
            },
            rpc_timeout: std::time::Duration::from_secs(2),
            checkout_deadline: std::time::Duration::from_secs(10),
            recovery_every: std::time::Duration::from_millis(1000),
            clock: Clock::new(),
        }
    }
}

/// A pool of store clients for one group, so concurrent requests each get a
/// client (a client runs one call at a time). Every client has a fresh
/// random id, the key of its session in the store's dedup table. With
/// [`ClientOptions::pipeline`] the clients are siblings of one base client:
/// they share its connection and Pipeline stream to each store node (a
/// client whose stream broke opens its own next one).
#[derive(Clone)]
pub struct Store {
    nodes: BTreeMap<NodeId, String>,
    opts: ClientOptions,
    /// The clients' clock (`None`: the runtime's).
    clock: Option<Clock>,
    pool: Arc<Mutex<Vec<KvClient>>>,
    /// With [`ClientOptions::pipeline`]: the client every new one is a
    /// sibling of, so all share one pipeline per store node.
    base: Arc<Mutex<Option<KvClient>>>,
}

/// A client borrowed from a [`Store`]; goes back to the pool when dropped.
pub struct Lease {
    client: Option<KvClient>,
    pool: Arc<Mutex<Vec<KvClient>>>,
}

impl std::ops::Deref for Lease {
    type Target = KvClient;
    fn deref(&self) -> &KvClient {
        self.client.as_ref().expect("leased client")
    }
}
impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut KvClient {
        self.client.as_mut().expect("leased client")
    }
}
impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            if pool.len() < 256 {
                pool.push(c);
            }
        }
    }
}

impl Store {
    /// Clients timed on the runtime's clock.
    pub fn new(nodes: BTreeMap<NodeId, String>, opts: ClientOptions) -> Store {
        Store {
            nodes,
            opts,
            clock: None,
            pool: Arc::new(Mutex::new(Vec::new())),
            base: Arc::new(Mutex::new(None)),
        }
    }

    /// Clients timed on `clock` (the host's): their deadlines, attempt
    /// timeouts and backoff pauses.
    pub fn with_clock(nodes: BTreeMap<NodeId, String>, opts: ClientOptions, clock: Clock) -> Store {
        Store {
            clock: Some(clock),
            ..Store::new(nodes, opts)
        }
    }

    pub fn client(&self) -> Lease {
        let reused = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let client = reused.unwrap_or_else(|| {
            // Random ids: unique across restarts without any stored counter
            // (deterministic under madsim, which seeds the generator).
            let fresh = || {
                let c = KvClient::new(self.nodes.clone(), random_u64() >> 1, self.opts.clone());
                match &self.clock {
                    Some(clock) => c.with_clock(clock.clone()),
                    None => c,
                }
            };
            if !self.opts.pipeline {
                return fresh();
            }
            let mut base = self.base.lock().unwrap_or_else(|e| e.into_inner());
            let base = base.get_or_insert_with(|| {
                let mut b = fresh();
                // Only a malformed address fails here; each sibling's
                // first call to that node reports it.
                let _ = b.connect_all();
                b
            });
            base.sibling(random_u64() >> 1)
        });
        Lease {
            client: Some(client),
            pool: self.pool.clone(),
        }
    }
}

/// A fresh random identifier (16 hex digits).
pub fn random_id() -> String {
    format!("{:016x}", random_u64())
}

/// Randomness from the runtime: the OS's for real, the seed's under madsim.
/// (Not `rand::rng()`: its thread-local state would outlive one simulated
/// run and make the next run of the same seed in this process differ.)
pub fn random_u64() -> u64 {
    madsim::rand::random::<u64>()
}

/// Per-key locks inside one service replica: concurrent requests for the
/// same item or user queue here instead of all racing the store's
/// compare-and-set (which stays the guard across replicas).
#[derive(Clone, Default)]
pub struct KeyLocks(Arc<Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>>);

impl KeyLocks {
    /// Locks `keys` (in sorted order, so two callers never deadlock).
    pub async fn lock(&self, keys: &[String]) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        let mut sorted: Vec<&String> = keys.iter().collect();
        sorted.sort();
        sorted.dedup();
        let mut guards = Vec::new();
        for k in sorted {
            let m = {
                let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
                // Forget locks nobody holds, so the map stays small.
                if map.len() > 4096 {
                    map.retain(|_, m| Arc::strong_count(m) > 1);
                }
                map.entry(k.clone()).or_default().clone()
            };
            guards.push(m.lock_owned().await);
        }
        guards
    }
}
