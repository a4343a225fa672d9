//! The Tartu bookstore (a distributed-systems course's online bookstore),
//! on the project's own parts: every piece of state in a Raft KV group,
//! services over tonic, the REST API over axum, time from the host's
//! [`Clock`].
//!
//! A web page posts a checkout to the orchestrator, which runs three checks
//! over gRPC — transaction verification, fraud detection and book
//! suggestions, each with two or more replicas — ordered by vector clocks,
//! then puts the approved order into a priority queue.
//!
//! - [`books`]: the books database (one Raft KV group) and its `Books`
//!   service (list, get, find by title, set, update, delete, seed).
//! - [`checks`]: the three check services. Each caches the orders it is
//!   told about with one vector clock per process of the service; every
//!   event merges the enabling message's clock and ticks its own entry, and
//!   is logged (one JSON line per event) for the checker's `vclock`
//!   command.
//! - [`queue`]: the order queue, durable in the state group: FIFO within a
//!   priority, priority from the shipping method, dequeue with a lease,
//!   fencing tokens.
//! - [`executor`]: replicated executors; the leader (a lease with a
//!   fencing token) takes orders from the queue and executes each as a
//!   two-phase commit over [`participants`]: the books database's stock and
//!   the payment service's accounts.
//! - [`orchestrator`]: drives the checks in the course's scheme
//!   ([`SCHEME`]) and queues approved orders; in real mode also serves
//!   `POST /checkout` and the rest of the REST API.
//! - [`page`] (real mode only): the web page on its own port.
//!
//! The pure logic (request parsing, the checks' rules, vector clocks, the
//! catalogue) is the `tartu-core` crate, tested on its own.

pub mod books;
pub mod checks;
pub mod executor;
pub mod orchestrator;
#[cfg(not(madsim))]
pub mod page;
pub mod participants;
pub mod queue;

use crate::clock::Clock;
use crate::NodeId;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The declared happens-before scheme of one checkout run, in the format of
/// the checker's `vclock` command (`checker vclock --scheme
/// system/src/tartu/scheme.json`).
///
/// `init` (orchestrator) sends the order to the services, each of whose
/// processes caches it (`cache`); (a) and (b) are concurrent; (c) follows
/// (a); (d) follows (b); (e) follows (c) and (d); (f) follows (e); `final`
/// (orchestrator) merges every answer.
pub const SCHEME: &str = include_str!("scheme.json");

/// The vector-clock processes (entries of every clock). Transaction
/// verification runs two: (a) and (c) on `verification/items`, (b) on
/// `verification/user`, so that (a) and (b) are concurrent.
pub mod process {
    pub const ORCHESTRATOR: &str = "orchestrator";
    pub const ITEMS: &str = "verification/items";
    pub const USER: &str = "verification/user";
    pub const FRAUD: &str = "fraud";
    pub const SUGGESTIONS: &str = "suggestions";
}

/// Which check service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Verification,
    Fraud,
    Suggestions,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Verification, Kind::Fraud, Kind::Suggestions];
    pub fn name(self) -> &'static str {
        match self {
            Kind::Verification => "verification",
            Kind::Fraud => "fraud",
            Kind::Suggestions => "suggestions",
        }
    }
    pub fn by_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
    /// The service's processes (clock entries).
    pub fn processes(self) -> &'static [&'static str] {
        match self {
            Kind::Verification => &[process::ITEMS, process::USER],
            Kind::Fraud => &[process::FRAUD],
            Kind::Suggestions => &[process::SUGGESTIONS],
        }
    }
    /// The process that runs `event` here, if this service runs it.
    pub fn process_of(self, event: &str) -> Option<&'static str> {
        match (self, event) {
            (Kind::Verification, "a" | "c") => Some(process::ITEMS),
            (Kind::Verification, "b") => Some(process::USER),
            (Kind::Fraud, "d" | "e") => Some(process::FRAUD),
            (Kind::Suggestions, "f") => Some(process::SUGGESTIONS),
            _ => None,
        }
    }
}

/// Where every store replica and service replica of the Tartu bookstore
/// listens (as JSON, what `bookstore tartu-proc --topology FILE` reads).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Topology {
    /// The books database.
    pub books_kv: BTreeMap<NodeId, String>,
    /// The queue, order status, the fraud service's card history, the
    /// executors' lease and decision log.
    pub state_kv: BTreeMap<NodeId, String>,
    /// The payment service's accounts.
    pub payment_kv: BTreeMap<NodeId, String>,
    pub books: Vec<String>,
    pub payment: Vec<String>,
    pub verification: Vec<String>,
    pub fraud: Vec<String>,
    pub suggestions: Vec<String>,
}

impl Topology {
    /// Everything on 127.0.0.1: books store node i on base+100+i, state
    /// store base+200+i, books service replica r base+300+r, verification
    /// base+400+r, fraud base+500+r, suggestions base+600+r, payment store
    /// base+700+i, payment service base+800+r.
    pub fn loopback(base: u16, store_nodes: u64, replicas: u64) -> Topology {
        let port = |g: u64, i: u64| format!("127.0.0.1:{}", base as u64 + 100 * g + i);
        let group = |g: u64| (1..=store_nodes).map(|i| (i, port(g, i))).collect();
        let svc = |g: u64| (1..=replicas).map(|r| port(g, r)).collect();
        Topology {
            books_kv: group(1),
            state_kv: group(2),
            payment_kv: group(7),
            books: svc(3),
            payment: svc(8),
            verification: svc(4),
            fraud: svc(5),
            suggestions: svc(6),
        }
    }

    pub fn service(&self, k: Kind) -> &Vec<String> {
        match k {
            Kind::Verification => &self.verification,
            Kind::Fraud => &self.fraud,
            Kind::Suggestions => &self.suggestions,
        }
    }
}

/// One logged event: what the checker's `vclock` command reads (one JSON
/// object per line).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VcEvent {
    /// `<order id>#<attempt>`: one run of the scheme.
    pub group: String,
    /// The log stream (service, replica, incarnation).
    pub source: String,
    /// The clock entry the event's owner ticks.
    pub process: String,
    pub event: String,
    pub clock: tartu_core::VClock,
    /// The order id, for people reading the log.
    pub order: String,
}

/// Where a process writes its vector-clock events. Real mode: a JSON Lines
/// file per process incarnation; the simulator: a shared list.
#[derive(Clone)]
pub struct VcLog {
    source: String,
    sink: Arc<dyn Fn(&VcEvent) + Send + Sync>,
}

impl VcLog {
    pub fn new(source: impl Into<String>, sink: Arc<dyn Fn(&VcEvent) + Send + Sync>) -> VcLog {
        VcLog {
            source: source.into(),
            sink,
        }
    }

    /// Events go nowhere.
    pub fn discard(source: impl Into<String>) -> VcLog {
        VcLog::new(source, Arc::new(|_| {}))
    }

    /// Events kept in memory (tests).
    pub fn memory(source: impl Into<String>) -> (VcLog, Arc<Mutex<Vec<VcEvent>>>) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let e = events.clone();
        let log = VcLog::new(
            source,
            Arc::new(move |ev: &VcEvent| {
                e.lock().unwrap_or_else(|p| p.into_inner()).push(ev.clone())
            }),
        );
        (log, events)
    }

    /// Appends one JSON line per event to `path` (created if absent), with
    /// one `write` per line so a process killed at any moment leaves only
    /// whole lines.
    #[cfg(not(madsim))]
    pub fn file(source: impl Into<String>, path: &std::path::Path) -> std::io::Result<VcLog> {
        use std::io::Write;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let f = Mutex::new(f);
        Ok(VcLog::new(
            source,
            Arc::new(move |ev: &VcEvent| {
                let mut line = serde_json::to_vec(ev).expect("an event serialises");
                line.push(b'\n');
                let mut f = f.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = f.write_all(&line) {
                    tracing::error!("cannot write the vector-clock log: {e}");
                }
            }),
        ))
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn record(
        &self,
        order: &str,
        attempt: u32,
        process: &str,
        event: &str,
        clock: &tartu_core::VClock,
    ) {
        (self.sink)(&VcEvent {
            group: format!("{order}#{attempt}"),
            source: self.source.clone(),
            process: process.to_string(),
            event: event.to_string(),
            clock: clock.clone(),
            order: order.to_string(),
        })
    }
}

/// Wall-clock time in Unix milliseconds on a host's [`Clock`]: the wall
/// time at the clock's start plus the clock's local time (so a clock fault
/// on the host moves its idea of today, as it would a real host's).
#[derive(Clone)]
pub struct WallClock {
    pub clock: Clock,
    pub epoch_ms: u64,
}

impl WallClock {
    /// The host's clock, with the system's wall time at its start (real
    /// mode).
    #[cfg(not(madsim))]
    pub fn system(clock: Clock) -> WallClock {
        let epoch_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
            .saturating_sub(clock.now().as_millis() as u64);
        WallClock { clock, epoch_ms }
    }

    pub fn now_ms(&self) -> u64 {
        self.epoch_ms + self.clock.now().as_millis() as u64
    }
}

/// Converts between the wire's clock and the core's.
pub fn to_pb(c: &tartu_core::VClock) -> crate::tartu_pb::Clock {
    crate::tartu_pb::Clock {
        entries: c.0.iter().map(|(k, v)| (k.clone(), *v)).collect(),
    }
}

pub fn from_pb(c: Option<&crate::tartu_pb::Clock>) -> tartu_core::VClock {
    tartu_core::VClock(
        c.map(|c| c.entries.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default(),
    )
}

pub fn book_to_pb(b: &tartu_core::Book) -> crate::tartu_pb::Book {
    crate::tartu_pb::Book {
        id: b.id.clone(),
        title: b.title.clone(),
        author: b.author.clone(),
        price_cents: b.price_cents,
        stock: b.stock,
        category: b.category.clone(),
        tags: b.tags.clone(),
    }
}

pub fn book_from_pb(b: crate::tartu_pb::Book) -> tartu_core::Book {
    tartu_core::Book {
        id: b.id,
        title: b.title,
        author: b.author,
        price_cents: b.price_cents,
        stock: b.stock,
        category: b.category,
        tags: b.tags,
    }
}
