//! `bookstore`: runs the replicated key-value store and the shop for real on
//! loopback, and talks to them.
//!
//!   bookstore cluster                 # 3 nodes in this process, ports 7001-7003, data in ./data
//!   bookstore node --id 2             # one node per process (for kill/restart)
//!   bookstore kv put KEY VALUE        # client commands: put, get, delete, cas
//!   bookstore status                  # role, term, commit of every node
//!   bookstore bench                   # put/get throughput and latency
//!
//!   bookstore shop                    # the whole shop: 3 KV groups x 3, 2 replicas of each
//!                                     # service, HTTP gateway on :8000; restarts what dies
//!   bookstore node --group stock --id 1       # one KV replica of a shop group
//!   bookstore service orders --replica 2      # one service replica
//!   bookstore gateway --port 8000             # the HTTP gateway
//!   bookstore shop-bench              # checkouts/s and latency through the gateway
//!
//!   bookstore tartu                   # the Tartu course's bookstore: 24 processes, page on
//!                                     # :8080, REST API on :8081; restarts what dies
//!   bookstore tartu-proc fraud --replica 2    # one of its processes
//!   bookstore tartu-bench             # checkouts and orders executed end to end

use anyhow::{bail, Context};

// Every request allocates (HTTP/2 frames, protobuf messages, Raft batches);
// glibc's malloc took about 12 % of the CPU of a 64-client put benchmark.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use bookstore::client::{ClientError, ClientOptions, KvClient};
use bookstore::clock::Clock;
use bookstore::node::{serve, NodeConfig};
use bookstore::shop::{Group, Mode, ServiceConfig, Topology};
use bookstore::NodeId;
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "bookstore",
    about = "The bookstore's Raft-replicated key-value store, run for real"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct ClusterArgs {
    /// Number of replicas.
    #[arg(long, default_value_t = 3, global = true,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    nodes: u64,
    /// Node i listens on 127.0.0.1:(base-port + i - 1) [default 7001]. With
    /// `node --group`, the shop's base port instead [default 7000].
    #[arg(long, global = true)]
    base_port: Option<u16>,
}

impl ClusterArgs {
    /// Whether every node's port exists (`--base-port 65535 --nodes 3`
    /// would name ports 65536 and 65537).
    fn check(&self) -> anyhow::Result<()> {
        let base = self.base_port.unwrap_or(7001) as u64;
        if base + self.nodes - 1 > u16::MAX as u64 {
            bail!(
                "--base-port {base} with --nodes {} needs ports up to {}, above 65535: \
                 choose a lower --base-port",
                self.nodes,
                base + self.nodes - 1
            );
        }
        Ok(())
    }

    fn peers(&self) -> BTreeMap<NodeId, String> {
        let base = self.base_port.unwrap_or(7001) as u64;
        (1..=self.nodes)
            .map(|i| (i, format!("127.0.0.1:{}", base + i - 1)))
            .collect()
    }
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    Mode::by_name(s)
}

fn parse_group(s: &str) -> Result<Group, String> {
    Group::by_name(s)
        .ok_or_else(|| format!("unknown group '{s}': expected stock, payment or orders"))
}

/// The shop's ports: store group g (stock, payment, orders) node i on
/// base+100*(g+1)+i, service g replica r on base+100*(g+4)+r.
#[derive(clap::Args, Clone)]
struct ShopPorts {
    /// With 7000: stores 7101-7103, 7201-7203, 7301-7303; services
    /// 7401-7402 (stock), 7501-7502 (payment), 7601-7602 (orders).
    #[arg(long, default_value_t = 7000)]
    base_port: u16,
}

/// The Tartu bookstore's ports.
#[derive(clap::Args, Clone)]
struct TartuPorts {
    /// Stores and services on base+100*g+i (see `tartu::Topology::loopback`):
    /// with 9000, books store 9101-9103, state store 9201-9203, payment
    /// store 9701-9703, books service 9301-9302, verification 9401-, fraud
    /// 9501-, suggestions 9601-, payment service 9801-.
    #[arg(long, default_value_t = 9000)]
    base_port: u16,
    /// The orchestrator's REST API.
    #[arg(long, default_value_t = 8081)]
    api_port: u16,
    /// The web page.
    #[arg(long, default_value_t = 8080)]
    page_port: u16,
}

impl TartuPorts {
    fn topology(&self) -> bookstore::tartu::Topology {
        bookstore::tartu::Topology::loopback(self.base_port, 3, 2)
    }
}

/// The platform's ports.
#[derive(clap::Args, Clone)]
struct PadPorts {
    /// Stores and services from here (see `pad::Topology::loopback`): with
    /// 10000, group g's node i on 10000+10g+i (auth 10001-10003, catalog
    /// 10011-, cart 10021-, payment 10031-, orders 10041-, registry
    /// 10051-), service s's replica r on 10100+10s+r (auth 10101-10102, ...,
    /// registry 10151-10152).
    #[arg(long, default_value_t = 10000)]
    base_port: u16,
    /// The gateways: this port and the next.
    #[arg(long, default_value_t = 8090)]
    gateway_port: u16,
}

impl PadPorts {
    fn topology(&self) -> bookstore::pad::Topology {
        bookstore::pad::Topology::loopback(self.base_port, 3, 2, self.gateway_port, 2)
    }
}

impl ShopPorts {
    fn topology(&self) -> Topology {
        Topology::loopback(self.base_port, SHOP_KV_NODES, SHOP_SERVICE_REPLICAS)
    }
}

const SHOP_KV_NODES: u64 = 3;
const SHOP_SERVICE_REPLICAS: u64 = 2;

/// What a test harness (the `jepsen` runner) sets on a node.
#[derive(clap::Args, Clone, Default)]
struct NodeOpts {
    /// `ID=ADDR`: reach node ID at ADDR (e.g. through a fault-injecting
    /// proxy) instead of its computed address; with this node's own id,
    /// where it listens. Repeat per node.
    #[arg(long = "peer", value_parser = parse_peer)]
    peers: Vec<(NodeId, String)>,
    /// Turn on a planted bug (see system/src/bugs.rs).
    #[arg(long)]
    bug: Option<String>,
    /// Append every Raft event of this node to FILE, one JSON line each
    /// (`{"time_ns", "node", "f", "value"}`, wall-clock time), for the
    /// Raft checks of a `jepsen` run.
    #[arg(long)]
    events: Option<PathBuf>,
    /// Take a snapshot every N applied entries.
    #[arg(long, default_value_t = 1000)]
    snapshot_every: u64,
    /// Run the node's clock N parts per million fast (negative: slow); its
    /// timeouts fire early (late) accordingly.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    clock_drift_ppm: i64,
    /// SIGUSR1 jumps the node's clock forward by this many ms, SIGUSR2
    /// back by as many.
    #[arg(long, default_value_t = 2000)]
    clock_jump_ms: u64,
}

/// What a test harness (the `jepsen` runner) sets on a Tartu service or
/// executor.
#[derive(clap::Args, Clone, Default)]
struct TartuProcOpts {
    /// Every address from this JSON file (a Tartu `Topology`: store and
    /// service replicas, e.g. through fault-injecting proxies) instead of
    /// `--base-port`'s.
    #[arg(long)]
    topology: Option<PathBuf>,
    /// Listen here instead of at this replica's address in the topology
    /// (which may be a proxy in front of it).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// books and payment: append every coordinator call this participant
    /// accepted or refused for its fencing token to FILE, one JSON line
    /// each (`{"started_ns", "time_ns", "resource", "tx", "op", "token",
    /// "refused"}`, CLOCK_MONOTONIC), for the mutual-exclusion check of a
    /// `jepsen` run.
    #[arg(long)]
    effects: Option<PathBuf>,
    /// The process's clock: drift in ppm; SIGUSR1/SIGUSR2 jump it by
    /// `--clock-jump-ms` forward/back.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    clock_drift_ppm: i64,
    /// How far SIGUSR1 (SIGUSR2) moves the clock forward (back), in ms.
    #[arg(long, default_value_t = 2000)]
    clock_jump_ms: u64,
}

fn parse_peer(s: &str) -> Result<(NodeId, String), String> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected ID=ADDR, e.g. 2=127.0.0.1:7002, got '{s}'"))?;
    let id = id
        .parse()
        .map_err(|_| format!("'{id}' is not a node id (a number from 1) in '{s}'"))?;
    Ok((id, addr.to_string()))
}

#[derive(Subcommand)]
enum Cmd {
    /// Start every node of the cluster in this process (Ctrl-C stops it).
    Cluster {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Node i keeps its files in DATA_DIR/node-i; they survive restarts.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
    },
    /// Start one node (run one process per node to kill and restart them).
    Node {
        #[arg(long)]
        id: NodeId,
        /// A replica of this shop group's store (stock, payment or orders)
        /// at its `Topology::loopback(--base-port)` address, with data in
        /// DATA_DIR/<group>-<id>; without it, node-<id> of the plain cluster.
        #[arg(long, value_parser = parse_group)]
        group: Option<Group>,
        #[command(flatten)]
        cluster: ClusterArgs,
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        #[command(flatten)]
        opts: NodeOpts,
    },
    /// Start one replica of a shop service (stock, payment or orders).
    Service {
        #[arg(value_parser = parse_group)]
        group: Group,
        /// Replica number, from 1.
        #[arg(long)]
        replica: u64,
        #[command(flatten)]
        ports: ShopPorts,
        /// Checkout protocol (the order service's): saga or 2pc.
        #[arg(long, default_value = "saga", value_parser = parse_mode)]
        mode: Mode,
        /// Turn on a planted bug (see system/src/bugs.rs).
        #[arg(long)]
        bug: Option<String>,
        /// Every address from this JSON file (a `Topology`: store replicas
        /// and service replicas, e.g. through fault-injecting proxies)
        /// instead of `--base-port`'s.
        #[arg(long)]
        topology: Option<PathBuf>,
        /// Listen here instead of at this replica's address in the
        /// topology (which may be a proxy in front of it).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// The service's clock: drift in ppm; SIGUSR1/SIGUSR2 jump it by
        /// `--clock-jump-ms` forward/back.
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        clock_drift_ppm: i64,
        #[arg(long, default_value_t = 2000)]
        clock_jump_ms: u64,
    },
    /// Start the HTTP gateway of the shop.
    Gateway {
        /// HTTP port (on 127.0.0.1).
        #[arg(long, default_value_t = 8000)]
        port: u16,
        #[command(flatten)]
        ports: ShopPorts,
    },
    /// Start the whole shop on loopback, one process each: 3 store groups x
    /// 3 replicas, 2 replicas of each service, the gateway. Restarts any
    /// process that dies; Ctrl-C stops them all.
    Shop {
        #[arg(long, default_value = "saga", value_parser = parse_mode)]
        mode: Mode,
        /// Store replicas keep their files in DATA_DIR/<group>-<id>; logs go
        /// to DATA_DIR/logs, process ids to DATA_DIR/pids.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// HTTP port of the gateway.
        #[arg(long, default_value_t = 8000)]
        port: u16,
        #[command(flatten)]
        ports: ShopPorts,
        /// Turn on a planted bug in the services.
        #[arg(long)]
        bug: Option<String>,
    },
    /// Measure checkouts through the gateway: starts a fresh shop (or uses
    /// the one at --url), pre-creates orders, checks them out with
    /// concurrent clients, prints checkouts/s and latency.
    ShopBench {
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Orders checked out.
        #[arg(long, default_value_t = 4000)]
        orders: usize,
        #[arg(long, default_value = "saga", value_parser = parse_mode)]
        mode: Mode,
        /// A running shop's gateway (e.g. http://127.0.0.1:8000): its mode
        /// is its own, and the benchmark overwrites its items, users and orders.
        #[arg(long)]
        url: Option<String>,
        /// Ports of the fresh shop.
        #[arg(long, default_value_t = 17000)]
        base_port: u16,
        #[arg(long, default_value_t = 18000)]
        port: u16,
    },
    /// Start the whole Tartu bookstore on loopback, one process each: the
    /// books database, the state group and the payment group (3 replicas
    /// each), 2 replicas of the books, payment, verification, fraud and
    /// suggestions services, 3 order executors, the orchestrator (REST API)
    /// and the web page. Restarts any process that
    /// dies; Ctrl-C stops everything.
    Tartu {
        #[command(flatten)]
        ports: TartuPorts,
        /// Stores keep their files in DATA_DIR/<group>-<id>; logs go to
        /// DATA_DIR/logs, process ids to DATA_DIR/pids, the vector-clock
        /// logs to DATA_DIR/vclock.
        #[arg(long, default_value = "data-tartu")]
        data_dir: PathBuf,
        /// Turn on a planted bug in the services (see system/src/bugs.rs).
        #[arg(long)]
        bug: Option<String>,
    },
    /// One process of the Tartu bookstore (`bookstore tartu` starts them
    /// all): a store replica (books-kv, state-kv), a service replica (books,
    /// verification, fraud, suggestions), the orchestrator or the page.
    TartuProc {
        /// books-kv, state-kv, payment-kv, books, payment, verification,
        /// fraud, suggestions, executor, orchestrator or page.
        what: String,
        /// Replica (store node id or service replica), from 1.
        #[arg(long, default_value_t = 1)]
        replica: u64,
        #[command(flatten)]
        ports: TartuPorts,
        #[arg(long, default_value = "data-tartu")]
        data_dir: PathBuf,
        #[arg(long)]
        bug: Option<String>,
        #[command(flatten)]
        harness: TartuProcOpts,
    },
    /// Measure orders end to end: each client posts a checkout, then polls
    /// the order's status until the executors have executed it. Starts a
    /// fresh Tartu bookstore (or uses the one at --url); prints orders
    /// executed/s, checkout latency and checkout-to-executed latency.
    TartuBench {
        /// Concurrent HTTP clients.
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Checkouts in all.
        #[arg(long, default_value_t = 3000)]
        checkouts: usize,
        /// A running orchestrator (e.g. http://127.0.0.1:8081).
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        ports: TartuPorts,
    },
    /// Start the third course's e-commerce platform on loopback, one
    /// process each: a Raft KV group of 3 per service (auth, catalog, cart,
    /// payment, orders) and the registry's, 2 replicas of each service and
    /// of the registry, 2 GraphQL gateways. Restarts any process that dies;
    /// Ctrl-C stops everything.
    Pad {
        #[command(flatten)]
        ports: PadPorts,
        /// Stores keep their files in DATA_DIR/<group>-<id>; logs go to
        /// DATA_DIR/logs, process ids to DATA_DIR/pids; the token signing
        /// key is DATA_DIR/signing.key (made on first start).
        #[arg(long, default_value = "data-pad")]
        data_dir: PathBuf,
        /// Turn on a planted bug in the services (see system/src/bugs.rs).
        #[arg(long)]
        bug: Option<String>,
        /// Let browser pages of ORIGIN (scheme://host[:port], e.g. a front
        /// end's dev server, http://localhost:3000) call the GraphQL
        /// gateways, with credentials (the refresh token's cookie); repeat
        /// it for several. None by default: no CORS headers.
        #[arg(long = "cors-origin", value_name = "ORIGIN")]
        cors_origin: Vec<String>,
    },
    /// One process of the platform (`bookstore pad` starts them all).
    PadProc {
        /// <group>-kv (a store replica: auth-kv, catalog-kv, cart-kv,
        /// payment-kv, orders-kv, registry-kv), a service (auth, catalog,
        /// cart, payment, orders, registry) or gateway.
        what: String,
        /// Replica (store node id or service replica), from 1.
        #[arg(long, default_value_t = 1)]
        replica: u64,
        #[command(flatten)]
        ports: PadPorts,
        #[arg(long, default_value = "data-pad")]
        data_dir: PathBuf,
        #[arg(long)]
        bug: Option<String>,
        /// Every address from this JSON file (a pad `Topology`) instead of
        /// `--base-port`'s and `--gateway-port`'s.
        #[arg(long)]
        topology: Option<PathBuf>,
        /// Listen here instead of at this replica's address in the topology.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Services and gateways: the clock's drift in ppm; SIGUSR1/SIGUSR2
        /// jump it by --clock-jump-ms forward/back.
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        clock_drift_ppm: i64,
        #[arg(long, default_value_t = 2000)]
        clock_jump_ms: u64,
        /// The gateway only: see `pad --cors-origin`.
        #[arg(long = "cors-origin", value_name = "ORIGIN")]
        cors_origin: Vec<String>,
    },
    /// Measure orders end to end through the GraphQL gateways: each client
    /// signs in as its own user, then adds a product to its cart, calls
    /// `initOrder` and polls `orderStatus` until PAID, over and over. Starts
    /// a fresh platform (or uses the one at --url); prints orders PAID/s and
    /// the initOrder-to-PAID latency.
    PadBench {
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Orders in all.
        #[arg(long, default_value_t = 2000)]
        orders: usize,
        /// A running platform's gateways, comma-separated (e.g.
        /// http://127.0.0.1:8090,http://127.0.0.1:8091); it must have no
        /// users yet (the benchmark's first user is the admin).
        #[arg(long, value_delimiter = ',')]
        url: Vec<String>,
        #[command(flatten)]
        ports: PadPorts,
    },
    /// Key-value commands against a running cluster.
    ///
    /// Exit status: 0 done; 1 a cas whose compare failed (nothing written);
    /// 2 failed, nothing written (e.g. no node answers, or none leads);
    /// 3 the write may or may not have been applied (read the key to know).
    Kv {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(subcommand)]
        op: KvOp,
    },
    /// Show every node's role, term, commit and applied index.
    ///
    /// Exit status: 0 every node answers; 4 some answer and some do not
    /// (the cluster may still serve with a majority: see which node
    /// leads); 2 none answers (or bad input).
    Status {
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// Measure put and get throughput and latency on a fresh local cluster.
    Bench {
        /// Concurrent client counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        clients: Vec<usize>,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        #[arg(long, default_value_t = 7101)]
        base_port: u16,
        /// Also run the same load against Debian's etcd (`etcd` on the
        /// PATH; `ci/etcd-bench` installs `etcd-server` when missing): three
        /// members on loopback, each with its own data directory. Each
        /// measurement runs against bookstore then etcd, in the same minutes;
        /// both tables and the ratios are printed.
        #[arg(long, value_parser = ["etcd"])]
        against: Option<String>,
        /// Bookstore's clients make one unary gRPC call per operation
        /// instead of pipelining their calls on one stream per node
        /// (`ClientOptions::pipeline`, the default here).
        #[arg(long)]
        unary: bool,
        /// Applied entries between two snapshots of each node's state.
        #[arg(long, default_value_t = KV_SNAPSHOT_EVERY)]
        snapshot_every: u64,
    },
}

#[derive(Subcommand)]
enum KvOp {
    /// Set KEY to VALUE (linearizable; printed: OK).
    Put {
        /// The key (any UTF-8 text).
        key: String,
        /// The new value (any UTF-8 text).
        value: String,
    },
    /// Print KEY's value, read through the leader (linearizable); an absent
    /// key prints "(absent)" and exits 0.
    Get {
        /// The key.
        key: String,
    },
    /// Remove KEY (removing an absent key is not an error).
    Delete {
        /// The key.
        key: String,
    },
    /// Set KEY to --new (or delete it without --new) if it equals --expected
    /// (or is absent without --expected).
    Cas {
        /// The key.
        key: String,
        /// The value KEY must hold for the swap (omit: KEY must be absent).
        #[arg(long)]
        expected: Option<String>,
        /// The value to set (omit: delete KEY).
        #[arg(long)]
        new: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn random_id() -> u64 {
    rand::random::<u64>() | 1
}

/// Fails with a message that names `what` and the address when `addr`
/// (`127.0.0.1:7001`, `http://127.0.0.1:8000/...`; anything else is not
/// checked) is already taken: the processes bind their ports later, in the
/// background, where a taken port was only a line in a log while the
/// command said it was running.
fn check_free(what: &str, addr: &str) -> anyhow::Result<()> {
    let hostport = addr.trim_start_matches("http://");
    let hostport = hostport.split('/').next().unwrap_or_default();
    // Ports computed from a base port may pass 65535 (and then no process
    // could ever listen there).
    if let Some(n) = hostport
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u64>().ok())
        .filter(|&n| n > u16::MAX as u64)
    {
        bail!("{what} would listen on port {n}, above 65535: choose a lower --base-port (or port: see --help)");
    }
    if let Ok(a) = hostport.parse::<std::net::SocketAddr>() {
        if let Err(e) = std::net::TcpListener::bind(a) {
            bail!(
                "{what} cannot listen on {a}: {e} (is another copy running? stop it, or \
                 choose other ports: see --help)"
            );
        }
    }
    Ok(())
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
async fn terminated() {
    #[cfg(all(unix, not(madsim)))]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => eprintln!("warning: cannot catch SIGTERM: {e}"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Entries between snapshots for a plain KV cluster (`bookstore cluster`,
/// `bookstore bench`): fewer snapshots than the shops' nodes take (every
/// 1,000, `NodeConfig`'s default), as etcd (100,000 by default). At 10,000
/// puts/s a snapshot every 1,000 entries cost each node 10 snapshots a
/// second in its Raft loop; the shops keep 1,000 because their kill tests
/// (`shop_e2e`) answered checkouts in 128 s instead of about 80 with
/// 10,000 (not yet explained).
const KV_SNAPSHOT_EVERY: u64 = 10_000;

async fn start_node(
    id: NodeId,
    peers: BTreeMap<NodeId, String>,
    dir: PathBuf,
    shared_runtime: bool,
    snapshot_every: u64,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let fs = storage::FsDir::open(&dir)
        .with_context(|| format!("cannot open data directory {}", dir.display()))?;
    let mut cfg = NodeConfig::new(id, peers, random_id());
    cfg.shared_runtime = shared_runtime;
    cfg.snapshot_every = snapshot_every;
    Ok(tokio::spawn(async move {
        serve(cfg, Arc::new(fs), Clock::new(), None, terminated())
            .await
            .with_context(|| format!("node {id}"))
    }))
}

/// A node with a harness's options (see [`NodeOpts`]).
async fn start_node_with(
    id: NodeId,
    peers: BTreeMap<NodeId, String>,
    dir: PathBuf,
    opts: &NodeOpts,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let fs = storage::FsDir::open(&dir)
        .with_context(|| format!("cannot open data directory {}", dir.display()))?;
    let mut cfg = NodeConfig::new(id, peers, random_id());
    cfg.snapshot_every = opts.snapshot_every.max(1);
    if let Some(b) = &opts.bug {
        cfg.bugs = bookstore::bugs::Bugs::from_name(b).map_err(anyhow::Error::msg)?;
    }
    let clock = harness_clock(opts.clock_drift_ppm, opts.clock_jump_ms)?;
    let events = match &opts.events {
        None => None,
        Some(path) => Some(event_log(path, id)?),
    };
    Ok(tokio::spawn(async move {
        serve(cfg, Arc::new(fs), clock, events, terminated())
            .await
            .with_context(|| format!("node {id}"))
    }))
}

/// A process's clock as a test harness sets it: running `drift_ppm` fast,
/// and SIGUSR1 (SIGUSR2) jumps it `jump_ms` forward (back).
fn harness_clock(drift_ppm: i64, jump_ms: u64) -> anyhow::Result<Clock> {
    let clock = Clock::new();
    clock.set_drift_ppm(drift_ppm);
    #[cfg(all(unix, not(madsim)))]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let jump = jump_ms as i64 * 1_000_000;
        for (kind, delta) in [
            (SignalKind::user_defined1(), jump),
            (SignalKind::user_defined2(), -jump),
        ] {
            let mut sig = signal(kind).context("cannot catch SIGUSR1/SIGUSR2")?;
            let clock = clock.clone();
            tokio::spawn(async move {
                while sig.recv().await.is_some() {
                    clock.jump(delta);
                }
            });
        }
    }
    #[cfg(madsim)]
    let _ = jump_ms;
    Ok(clock)
}

/// Appends each event to `path` as one JSON line, written at once (a
/// SIGKILL loses at most the line being written; readers skip a cut line,
/// and a restarted node starts on a new line). Stamped with
/// CLOCK_MONOTONIC, which every process of the machine shares and which no
/// clock step moves: events of several processes are merged by it.
fn event_log(path: &std::path::Path, id: NodeId) -> anyhow::Result<bookstore::node::EventSink> {
    let file = line_log(path)?;
    Ok(Arc::new(move |_node, ev: bookstore::node::NodeEvent| {
        let (f, value) = ev.to_json();
        file(serde_json::json!({"time_ns": monotonic_ns(), "node": id, "f": f, "value": value}));
    }))
}

/// A Tartu participant's accepted and refused coordinator calls, appended
/// to `path` as [`event_log`] appends events: when the call began and when
/// it was applied, on CLOCK_MONOTONIC.
fn effect_log(
    path: &std::path::Path,
) -> anyhow::Result<bookstore::tartu::participants::EffectSink> {
    let file = line_log(path)?;
    Ok(Arc::new(
        move |e: &bookstore::tartu::participants::Effect| {
            let now = monotonic_ns();
            let began = now.saturating_sub(e.started.elapsed().as_nanos() as u64);
            file(serde_json::json!({
                "started_ns": began,
                "time_ns": now,
                "resource": format!("{:?}", e.resource),
                "tx": e.tx,
                "op": e.op,
                "token": e.token,
                "refused": e.refused,
            }));
        },
    ))
}

/// Opens `path` for appending JSON lines, each written at once; a line a
/// kill cut short is ended first, so this run's first line stands alone.
fn line_log(
    path: &std::path::Path,
) -> anyhow::Result<impl Fn(serde_json::Value) + Send + Sync + 'static> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .with_context(|| format!("cannot open log {}", path.display()))?;
    if file.seek(SeekFrom::End(0))? > 0 {
        file.seek(SeekFrom::End(-1))?;
        let mut last = [0u8; 1];
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            file.write_all(b"\n")?;
        }
    }
    let file = std::sync::Mutex::new(file);
    Ok(move |line: serde_json::Value| {
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        let _ = file.lock().unwrap().write_all(&bytes);
    })
}

/// CLOCK_MONOTONIC in ns (the `jepsen` runner reads the same clock).
fn monotonic_ns() -> u64 {
    #[cfg(not(madsim))]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec it is given.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }
    #[cfg(madsim)]
    0
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Cmd::Cluster { cluster, .. }
    | Cmd::Node { cluster, .. }
    | Cmd::Kv { cluster, .. }
    | Cmd::Status { cluster } = &cli.cmd
    {
        cluster.check()?;
    }
    match cli.cmd {
        Cmd::Cluster { cluster, data_dir } => {
            let peers = cluster.peers();
            for (id, addr) in &peers {
                check_free(&format!("node {id}"), addr)?;
            }
            let mut tasks = Vec::new();
            for &id in peers.keys() {
                tasks.push(
                    start_node(
                        id,
                        peers.clone(),
                        data_dir.join(format!("node-{id}")),
                        true,
                        KV_SNAPSHOT_EVERY,
                    )
                    .await?,
                );
            }
            println!(
                "cluster of {} nodes running: {}",
                peers.len(),
                peers.values().cloned().collect::<Vec<_>>().join(" ")
            );
            // The kv command must name the same cluster: its flags when
            // they are not the defaults.
            let mut flags = String::new();
            if cluster.nodes != 3 {
                flags += &format!(" --nodes {}", cluster.nodes);
            }
            if let Some(p) = cluster.base_port.filter(|&p| p != 7001) {
                flags += &format!(" --base-port {p}");
            }
            println!(
                "data in {}; try: bookstore kv{flags} put greeting hello; Ctrl-C to stop",
                data_dir.display()
            );
            // The first node to fail ends the cluster, with its error.
            futures_util::future::try_join_all(tasks.into_iter().map(|t| async move { t.await? }))
                .await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Node {
            id,
            group,
            cluster,
            data_dir,
            opts,
        } => {
            let (mut peers, dir, what) = match group {
                Some(g) => {
                    let base = cluster.base_port.unwrap_or(7000);
                    let topology = ShopPorts { base_port: base }.topology();
                    let dir = data_dir.join(format!("{}-{id}", g.name()));
                    (topology.kv(g).clone(), dir, format!("{} store", g.name()))
                }
                None => (
                    cluster.peers(),
                    data_dir.join(format!("node-{id}")),
                    "cluster".to_string(),
                ),
            };
            if !peers.contains_key(&id) {
                bail!(
                    "--id {id} is not a node of the {}-node {what} (ids are 1..={})",
                    peers.len(),
                    peers.len()
                );
            }
            for (p, addr) in &opts.peers {
                if !peers.contains_key(p) {
                    bail!(
                        "--peer {p}={addr}: node {p} is not a node of the {}-node {what}",
                        peers.len()
                    );
                }
                peers.insert(*p, addr.clone());
            }
            println!(
                "{what} node {id} listening on {}, data in {}",
                peers[&id],
                dir.display()
            );
            start_node_with(id, peers, dir, &opts).await?.await??;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Service {
            group,
            replica,
            ports,
            mode,
            bug,
            topology,
            listen,
            clock_drift_ppm,
            clock_jump_ms,
        } => {
            let topology = match &topology {
                None => ports.topology(),
                Some(f) => {
                    let text = std::fs::read_to_string(f)
                        .with_context(|| format!("cannot read --topology {}", f.display()))?;
                    serde_json::from_str(&text).with_context(|| {
                        format!("--topology {}: not a shop topology (JSON with stock_kv, payment_kv, order_kv, stock, payment, orders)", f.display())
                    })?
                }
            };
            let addrs = topology.service(group);
            let Some(addr) = (replica as usize).checked_sub(1).and_then(|i| addrs.get(i)) else {
                bail!(
                    "--replica {replica} is not a replica of the {} service (replicas are 1..={})",
                    group.name(),
                    addrs.len()
                );
            };
            let addr: std::net::SocketAddr = match listen {
                Some(a) => a,
                None => addr.parse()?,
            };
            let mut cfg = ServiceConfig::new(topology.clone(), mode);
            if let Some(b) = &bug {
                cfg.bugs = bookstore::bugs::Bugs::from_name(b).map_err(anyhow::Error::msg)?;
            }
            cfg.clock = harness_clock(clock_drift_ppm, clock_jump_ms)?;
            println!(
                "{} service replica {replica} listening on {addr} (checkout mode {}, bugs {})",
                group.name(),
                mode.name(),
                cfg.bugs
            );
            bookstore::shop::orders::serve(group, cfg, addr, terminated())
                .await
                .with_context(|| format!("{} service replica {replica}", group.name()))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Gateway { port, ports } => {
            real::gateway(port, ports).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Shop {
            mode,
            data_dir,
            port,
            ports,
            bug,
        } => {
            real::shop(mode, data_dir, port, ports, bug).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::ShopBench {
            clients,
            orders,
            mode,
            url,
            base_port,
            port,
        } => {
            real::shop_bench(clients, orders, mode, url, ShopPorts { base_port }, port).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Tartu {
            ports,
            data_dir,
            bug,
        } => {
            real::tartu(ports, data_dir, bug).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::TartuProc {
            what,
            replica,
            ports,
            data_dir,
            bug,
            harness,
        } => {
            tartu_proc(&what, replica, ports, data_dir, bug, harness).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::TartuBench {
            clients,
            checkouts,
            url,
            ports,
        } => {
            real::tartu_bench(clients, checkouts, url, ports).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Pad {
            ports,
            data_dir,
            bug,
            cors_origin,
        } => {
            real::pad(ports, data_dir, bug, cors_origin).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::PadProc {
            what,
            replica,
            ports,
            data_dir,
            bug,
            topology,
            listen,
            clock_drift_ppm,
            clock_jump_ms,
            cors_origin,
        } => {
            let t = match topology {
                None => ports.topology(),
                Some(f) => {
                    let text = std::fs::read_to_string(&f)
                        .with_context(|| format!("cannot read --topology {}", f.display()))?;
                    serde_json::from_str(&text).with_context(|| {
                        format!("--topology {}: not a pad topology (JSON with kv, registry, services, gateways)", f.display())
                    })?
                }
            };
            pad_proc(
                &what,
                replica,
                t,
                data_dir,
                bug,
                listen,
                clock_drift_ppm,
                clock_jump_ms,
                &cors_origin,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::PadBench {
            clients,
            orders,
            url,
            ports,
        } => {
            real::pad_bench(clients, orders, url, ports).await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Kv { cluster, op } => {
            let opts = ClientOptions {
                total_timeout: Duration::from_secs(5),
                ..ClientOptions::default()
            };
            let mut c = KvClient::new(cluster.peers(), random_id(), opts);
            let r = match op {
                KvOp::Put { key, value } => c.put(&key, &value).await.map(|_| "OK".to_string()),
                KvOp::Get { key } => c
                    .get(&key)
                    .await
                    .map(|v| v.unwrap_or_else(|| "(absent)".into())),
                KvOp::Delete { key } => c.delete(&key).await.map(|_| "OK".to_string()),
                KvOp::Cas { key, expected, new } => c
                    .cas(&key, expected.as_deref(), new.as_deref())
                    .await
                    .map(|r| {
                        if r.succeeded {
                            "OK".to_string()
                        } else {
                            format!(
                                "compare failed: current value is {}",
                                r.previous.unwrap_or_else(|| "(absent)".into())
                            )
                        }
                    }),
            };
            match r {
                Ok(s) => {
                    println!("{s}");
                    Ok(if s.starts_with("compare failed") {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    })
                }
                Err(ClientError::Unknown(m)) => {
                    eprintln!("error: the cluster did not confirm the write; it may or may not have been applied ({m})");
                    Ok(ExitCode::from(3))
                }
                Err(ClientError::Failed(m)) => {
                    let addrs = cluster
                        .peers()
                        .values()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" ");
                    // Nodes that answer "not leader" run, but none leads:
                    // no majority reaches the others.
                    let hint = if m.contains("not leader") {
                        format!("nodes answer but none leads: is a majority of {addrs} running and connected? see `bookstore status`")
                    } else {
                        format!("is the cluster running? start it with `bookstore cluster` (addresses {addrs})")
                    };
                    eprintln!("error: {m}\n{hint}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Cmd::Status { cluster } => {
            let mut c = KvClient::new(cluster.peers(), random_id(), ClientOptions::default());
            let mut down = 0;
            for (id, addr) in cluster.peers() {
                match c.status(id).await {
                    Ok(s) => println!(
                        "node {id} {addr}: {} term={} leader={} commit={} applied={} last={}",
                        s.role, s.term, s.leader, s.commit, s.applied, s.last_index
                    ),
                    Err(e) => {
                        down += 1;
                        println!("node {id} {addr}: unreachable ({e})")
                    }
                }
            }
            Ok(if down == 0 {
                ExitCode::SUCCESS
            } else if down < cluster.nodes {
                ExitCode::from(4)
            } else {
                ExitCode::from(2)
            })
        }
        Cmd::Bench {
            clients,
            seconds,
            base_port,
            against,
            unary,
            snapshot_every,
        } => bench(
            clients,
            seconds,
            base_port,
            against.is_some(),
            !unary,
            snapshot_every,
        )
        .await
        .map(|_| ExitCode::SUCCESS),
    }
}

/// The platform's token signing key (hex in DATA_DIR/signing.key).
fn pad_key(data_dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join("signing.key");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read the token signing key {}: `bookstore pad` makes it; or write 64 hex digits there",
            path.display()
        )
    })?;
    let t = text.trim();
    if t.len() < 32 || t.len() % 2 != 0 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!(
            "{}: expected at least 32 hex digits (an even number)",
            path.display()
        );
    }
    Ok((0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16).expect("hex"))
        .collect())
}

/// Runs one process of the third course's platform.
#[allow(clippy::too_many_arguments)]
async fn pad_proc(
    what: &str,
    replica: u64,
    t: bookstore::pad::Topology,
    data_dir: PathBuf,
    bug: Option<String>,
    listen: Option<std::net::SocketAddr>,
    clock_drift_ppm: i64,
    clock_jump_ms: u64,
    cors_origin: &[String],
) -> anyhow::Result<()> {
    use bookstore::pad;
    let bugs = match &bug {
        Some(b) => bookstore::bugs::Bugs::from_name(b).map_err(anyhow::Error::msg)?,
        None => Default::default(),
    };
    if what != "gateway" && !cors_origin.is_empty() {
        bail!("--cors-origin is for the gateway (pad-proc gateway), not {what}");
    }
    if let Some(group) = what.strip_suffix("-kv") {
        let Some(peers) = t.kv.get(group).cloned() else {
            bail!(
                "unknown store '{what}': expected one of {}",
                pad::GROUPS.map(|g| format!("{g}-kv")).join(", ")
            );
        };
        if !peers.contains_key(&replica) {
            bail!(
                "--replica {replica} is not a node of {what} (ids are 1..={})",
                peers.len()
            );
        }
        let dir = data_dir.join(format!("{group}-{replica}"));
        println!(
            "{what} node {replica} listening on {}, data in {}",
            peers[&replica],
            dir.display()
        );
        let every = NodeConfig::new(replica, BTreeMap::new(), 0).snapshot_every;
        start_node(replica, peers, dir, false, every)
            .await?
            .await??;
        return Ok(());
    }
    let clock = harness_clock(clock_drift_ppm, clock_jump_ms)?;
    let env = pad::services::ServiceEnv {
        topology: t.clone(),
        wall: real::wall(clock),
        bugs,
        rpc_timeout: Duration::from_secs(2),
        kv_options: ClientOptions::default(),
        access_ttl_ms: pad_core::auth::ACCESS_TTL_MS,
        lease_audit: None,
    };
    let own = |addrs: &Vec<String>| -> anyhow::Result<std::net::SocketAddr> {
        let Some(a) = (replica as usize).checked_sub(1).and_then(|i| addrs.get(i)) else {
            bail!(
                "--replica {replica} is not a replica of {what} (replicas are 1..={})",
                addrs.len()
            );
        };
        Ok(match listen {
            Some(l) => l,
            None => a.parse().with_context(|| format!("address '{a}'"))?,
        })
    };
    if what == "gateway" {
        let addr = own(&t.gateways)?;
        return real::pad_gateway(env, addr, cors_origin).await;
    }
    let addrs = if what == "registry" {
        t.registry.clone()
    } else if let Some(a) = t.services.get(what) {
        a.clone()
    } else {
        bail!("unknown platform process '{what}': expected <group>-kv, auth, catalog, cart, payment, orders, registry or gateway");
    };
    let addr = own(&addrs)?;
    let key = if what == "auth" {
        pad_key(&data_dir)?
    } else {
        Vec::new()
    };
    println!("{what} service replica {replica} listening on {addr}");
    pad::services::serve(
        what,
        replica as usize,
        env,
        key,
        pad_core::auth::KdfCost::PRODUCTION,
        addr,
        terminated(),
    )
    .await
}

/// Runs one process of the Tartu bookstore.
async fn tartu_proc(
    what: &str,
    replica: u64,
    ports: TartuPorts,
    data_dir: PathBuf,
    bug: Option<String>,
    harness: TartuProcOpts,
) -> anyhow::Result<()> {
    use bookstore::tartu::{self, Kind};
    let t = match &harness.topology {
        None => ports.topology(),
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read --topology {}", f.display()))?;
            serde_json::from_str(&text).with_context(|| {
                format!(
                    "--topology {}: not a Tartu topology (JSON with books_kv, state_kv, payment_kv, books, payment, verification, fraud, suggestions)",
                    f.display()
                )
            })?
        }
    };
    let bugs = match &bug {
        Some(b) => bookstore::bugs::Bugs::from_name(b).map_err(anyhow::Error::msg)?,
        None => Default::default(),
    };
    // The harness's flags apply to some processes only: say so rather than
    // ignore them.
    let service = ["books", "payment", "verification", "fraud", "suggestions"].contains(&what);
    if harness.listen.is_some() && !service {
        bail!("--listen applies to the services only (books, payment, verification, fraud, suggestions), not to {what}");
    }
    if harness.effects.is_some() && what != "books" && what != "payment" {
        bail!("--effects applies to the participants only (books, payment), not to {what}");
    }
    if (harness.clock_drift_ppm != 0 || harness.clock_jump_ms != 2000)
        && !service
        && what != "executor"
    {
        bail!("--clock-drift-ppm and --clock-jump-ms apply to the services and executors only, not to {what}");
    }
    let nth = |addrs: &Vec<String>, what: &str| -> anyhow::Result<std::net::SocketAddr> {
        let Some(a) = (replica as usize).checked_sub(1).and_then(|i| addrs.get(i)) else {
            bail!(
                "--replica {replica} is not a replica of {what} (replicas are 1..={})",
                addrs.len()
            );
        };
        Ok(match harness.listen {
            Some(l) => l,
            None => a.parse()?,
        })
    };
    let store = |nodes: &BTreeMap<NodeId, String>, clock: &Clock| {
        bookstore::shop::Store::with_clock(nodes.clone(), ClientOptions::default(), clock.clone())
    };
    let participant_opts = || -> anyhow::Result<tartu::participants::ParticipantOpts> {
        let mut opts = tartu::participants::ParticipantOpts::with_bugs(bugs);
        if let Some(path) = &harness.effects {
            opts.effects = Some(effect_log(path)?);
        }
        Ok(opts)
    };
    match what {
        "books-kv" | "state-kv" | "payment-kv" => {
            let peers = match what {
                "books-kv" => t.books_kv.clone(),
                "state-kv" => t.state_kv.clone(),
                _ => t.payment_kv.clone(),
            };
            if !peers.contains_key(&replica) {
                bail!(
                    "--replica {replica} is not a node of {what} (ids are 1..={})",
                    peers.len()
                );
            }
            let dir = data_dir.join(format!("{}-{replica}", what.trim_end_matches("-kv")));
            println!(
                "{what} node {replica} listening on {}, data in {}",
                peers[&replica],
                dir.display()
            );
            let every = NodeConfig::new(replica, BTreeMap::new(), 0).snapshot_every;
            start_node(replica, peers, dir, false, every)
                .await?
                .await??;
        }
        "books" => {
            let addr = nth(&t.books, what)?;
            let clock = harness_clock(harness.clock_drift_ppm, harness.clock_jump_ms)?;
            let db = tartu::books::BooksDb::new(store(&t.books_kv, &clock));
            println!("books service replica {replica} listening on {addr}");
            let state = store(&t.state_kv, &clock);
            tartu::checks::serve_books(db, state, addr, terminated(), clock, participant_opts()?)
                .await?;
        }
        "payment" => {
            let addr = nth(&t.payment, what)?;
            let clock = harness_clock(harness.clock_drift_ppm, harness.clock_jump_ms)?;
            println!("payment service replica {replica} listening on {addr}");
            tartu::checks::serve_payment(
                store(&t.payment_kv, &clock),
                tartu::books::BooksDb::new(store(&t.books_kv, &clock)),
                store(&t.state_kv, &clock),
                addr,
                terminated(),
                clock.clone(),
                participant_opts()?,
            )
            .await?;
        }
        "executor" => {
            let clock = harness_clock(harness.clock_drift_ppm, harness.clock_jump_ms)?;
            let mut cfg = tartu::executor::ExecutorConfig::new(replica, t, real::wall(clock));
            cfg.bugs = bugs;
            println!("executor {replica} running (bugs {bugs})");
            tartu::executor::Executor::new(cfg).run(terminated()).await;
        }
        "orchestrator" => {
            real::tartu_orchestrator(t, ports.api_port, &data_dir).await?;
        }
        "page" => {
            real::tartu_page(ports.page_port, ports.api_port).await?;
        }
        other => {
            let Some(kind) = Kind::by_name(other) else {
                bail!("unknown Tartu process '{other}': expected books-kv, state-kv, payment-kv, books, payment, verification, fraud, suggestions, executor, orchestrator or page");
            };
            let addr = nth(t.service(kind), other)?;
            let clock = harness_clock(harness.clock_drift_ppm, harness.clock_jump_ms)?;
            let log = real::tartu_log(&data_dir, &format!("{other}-{replica}"))?;
            let cfg = tartu::checks::CheckConfig {
                kind,
                books: tartu::books::BooksDb::new(store(&t.books_kv, &clock)),
                state: store(&t.state_kv, &clock),
                wall: real::wall(clock),
                log,
                bugs,
                budget: Duration::from_secs(2),
                suggestions: 3,
            };
            println!("{other} service replica {replica} listening on {addr} (bugs {bugs})");
            tartu::checks::serve(cfg, addr, terminated()).await?;
        }
    }
    Ok(())
}

/// A benchmark client: bookstore's, or etcd's gRPC KV API. One per bench
/// connection, so the size of the larger variant does not matter.
#[allow(clippy::large_enum_variant)]
enum BenchClient {
    Bookstore(KvClient),
    #[cfg(not(madsim))]
    Etcd(real::EtcdClient),
}

impl BenchClient {
    async fn run(&mut self, op: &str, key: &str) -> bool {
        match self {
            BenchClient::Bookstore(c) if op == "put" => c.put(key, "v").await.is_ok(),
            BenchClient::Bookstore(c) => c.get(key).await.is_ok(),
            #[cfg(not(madsim))]
            BenchClient::Etcd(c) => c.run(op, key).await,
        }
    }
}

/// One row: ops/s, p50 and p99 in ms, errors.
type Row = (f64, f64, f64, u64);

/// `n` clients (made by `client(i)`) each doing `op` back to back for
/// `seconds`, on 100 keys of their own.
async fn measure<F, Fut>(op: &'static str, n: usize, seconds: f64, client: F) -> anyhow::Result<Row>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<BenchClient>>,
{
    let mut clients = Vec::new();
    for i in 0..n {
        clients.push(client(i).await?);
    }
    let stop = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for (i, mut c) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut k) = (Vec::new(), 0u64, 0u64);
            while tokio::time::Instant::now() < stop {
                let key = format!("bench/{i}/{}", k % 100);
                k += 1;
                let t = tokio::time::Instant::now();
                let ok = c.run(op, &key).await;
                lat.push(t.elapsed());
                errors += (!ok) as u64;
            }
            (lat, errors)
        }));
    }
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await?;
        lat.extend(l);
        errors += e;
    }
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    Ok((lat.len() as f64 / seconds, pct(0.5), pct(0.99), errors))
}

fn print_table(title: &str, rows: &[(&str, usize, Row)]) {
    println!("{title}");
    println!(
        "{:<5} {:>8} {:>10} {:>10} {:>10} {:>8}",
        "op", "clients", "ops/s", "p50 ms", "p99 ms", "errors"
    );
    for (op, n, (ops, p50, p99, errors)) in rows {
        println!("{op:<5} {n:>8} {ops:>10.0} {p50:>10.2} {p99:>10.2} {errors:>8}");
    }
}

/// Starts a fresh 3-node cluster (data in a temporary directory) and
/// measures puts then gets with each number of concurrent clients; with
/// `etcd`, the same against a 3-member etcd cluster, alternately.
async fn bench(
    clients: Vec<usize>,
    seconds: f64,
    base_port: u16,
    etcd: bool,
    pipeline: bool,
    snapshot_every: u64,
) -> anyhow::Result<()> {
    let cluster = ClusterArgs {
        nodes: 3,
        base_port: Some(base_port),
    };
    let peers = cluster.peers();
    let data = std::env::temp_dir().join(format!("bookstore-bench-{}", random_id()));
    for &id in peers.keys() {
        start_node(
            id,
            peers.clone(),
            data.join(format!("node-{id}")),
            true,
            snapshot_every,
        )
        .await?;
    }
    let opts = ClientOptions {
        pipeline,
        ..ClientOptions::default()
    };
    let mut probe = KvClient::new(peers.clone(), random_id(), opts);
    probe
        .put("bench/warmup", "x")
        .await
        .map_err(|e| anyhow::anyhow!("cluster did not start: {e}"))?;
    #[cfg(not(madsim))]
    let etcd = if etcd {
        Some(real::EtcdCluster::start(base_port + 100, &data.join("etcd")).await?)
    } else {
        None
    };
    #[cfg(madsim)]
    if etcd {
        bail!("the etcd comparison runs in the real build only");
    }
    println!(
        "3-node clusters on loopback, data fsynced to {}",
        data.display()
    );
    let mut ours = Vec::new();
    #[allow(unused_mut)] // only the real build measures etcd
    let mut theirs = Vec::new();
    for op in ["put", "get"] {
        for &n in &clients {
            let probe = &probe;
            let row = measure(op, n, seconds, |_| async move {
                Ok(BenchClient::Bookstore(probe.sibling(random_id())))
            })
            .await?;
            ours.push((op, n, row));
            #[cfg(not(madsim))]
            if let Some(e) = &etcd {
                let row = measure(op, n, seconds, |i| e.client(i)).await?;
                theirs.push((op, n, row));
            }
        }
    }
    let how = if pipeline {
        "calls pipelined on one stream per node"
    } else {
        "one unary call per operation"
    };
    print_table(
        &format!("bookstore (gets are linearizable: read index; {how})"),
        &ours,
    );
    if !theirs.is_empty() {
        println!();
        print_table("etcd (gets are linearizable: serializable=false)", &theirs);
        println!();
        println!("bookstore / etcd");
        println!(
            "{:<5} {:>8} {:>10} {:>10} {:>10}",
            "op", "clients", "ops/s", "p50", "p99"
        );
        for ((op, n, a), (_, _, b)) in ours.iter().zip(&theirs) {
            println!(
                "{op:<5} {n:>8} {:>9.2}x {:>9.2}x {:>9.2}x",
                a.0 / b.0.max(1e-9),
                a.1 / b.1.max(1e-9),
                a.2 / b.2.max(1e-9)
            );
        }
    }
    #[cfg(not(madsim))]
    drop(etcd);
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}

/// The simulated build has no processes, sockets or HTTP.
#[cfg(madsim)]
mod real {
    use super::*;
    pub async fn gateway(_: u16, _: ShopPorts) -> anyhow::Result<()> {
        bail!("the gateway runs in the real build only")
    }
    pub async fn pad(
        _: PadPorts,
        _: PathBuf,
        _: Option<String>,
        _: Vec<String>,
    ) -> anyhow::Result<()> {
        bail!("the platform runs in the real build only")
    }
    pub async fn pad_bench(_: usize, _: usize, _: Vec<String>, _: PadPorts) -> anyhow::Result<()> {
        bail!("the platform's benchmark runs in the real build only")
    }
    pub async fn pad_gateway(
        _: bookstore::pad::services::ServiceEnv,
        _: std::net::SocketAddr,
        _: &[String],
    ) -> anyhow::Result<()> {
        bail!("the GraphQL gateway runs in the real build only")
    }
    pub async fn shop(
        _: Mode,
        _: PathBuf,
        _: u16,
        _: ShopPorts,
        _: Option<String>,
    ) -> anyhow::Result<()> {
        bail!("the shop runs in the real build only")
    }
    pub async fn shop_bench(
        _: usize,
        _: usize,
        _: Mode,
        _: Option<String>,
        _: ShopPorts,
        _: u16,
    ) -> anyhow::Result<()> {
        bail!("the shop benchmark runs in the real build only")
    }
    pub async fn tartu(_: TartuPorts, _: PathBuf, _: Option<String>) -> anyhow::Result<()> {
        bail!("the Tartu bookstore runs in the real build only")
    }
    pub async fn tartu_bench(
        _: usize,
        _: usize,
        _: Option<String>,
        _: TartuPorts,
    ) -> anyhow::Result<()> {
        bail!("the Tartu benchmark runs in the real build only")
    }
    pub async fn tartu_orchestrator(
        _: bookstore::tartu::Topology,
        _: u16,
        _: &std::path::Path,
    ) -> anyhow::Result<()> {
        bail!("the orchestrator runs in the real build only")
    }
    pub async fn tartu_page(_: u16, _: u16) -> anyhow::Result<()> {
        bail!("the page runs in the real build only")
    }
    pub fn tartu_log(_: &std::path::Path, name: &str) -> anyhow::Result<bookstore::tartu::VcLog> {
        Ok(bookstore::tartu::VcLog::discard(name))
    }
    pub fn wall(clock: Clock) -> bookstore::tartu::WallClock {
        bookstore::tartu::WallClock { clock, epoch_ms: 0 }
    }
}

/// Real mode: the gateway, the supervisor of the shop's processes, the
/// shop benchmark.
#[cfg(not(madsim))]
mod real {
    use super::*;
    use bookstore::gateway::{GatewayConfig, HttpClient};
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    use bookstore::etcd_pb::{kv_client::KvClient as EtcdKv, PutRequest, RangeRequest};
    use tonic::transport::Channel;

    /// A client of etcd's KV API on one member.
    pub struct EtcdClient(EtcdKv<Channel>);

    impl EtcdClient {
        pub async fn run(&mut self, op: &str, key: &str) -> bool {
            let key = key.as_bytes().to_vec();
            let call = async {
                if op == "put" {
                    let req = PutRequest {
                        key,
                        value: b"v".to_vec(),
                        ..Default::default()
                    };
                    self.0.put(req).await.map(|_| ())
                } else {
                    let req = RangeRequest {
                        key,
                        serializable: false,
                        ..Default::default()
                    };
                    self.0.range(req).await.map(|_| ())
                }
            };
            matches!(
                tokio::time::timeout(Duration::from_secs(5), call).await,
                Ok(Ok(()))
            )
        }
    }

    /// Three etcd members on loopback (Debian's `etcd`, each with its own
    /// data directory); killed when dropped.
    pub struct EtcdCluster {
        children: Vec<Child>,
        endpoints: Vec<String>,
        /// One connection per member, shared by the clients that talk to
        /// it (as bookstore's clients share theirs).
        channels: std::sync::Mutex<BTreeMap<usize, Channel>>,
    }

    impl EtcdCluster {
        pub async fn start(base_port: u16, dir: &std::path::Path) -> anyhow::Result<EtcdCluster> {
            let peer = |i: u16| format!("http://127.0.0.1:{}", base_port + 10 + i);
            let initial: Vec<String> = (1..=3).map(|i| format!("m{i}={}", peer(i))).collect();
            let mut cluster = EtcdCluster {
                children: Vec::new(),
                endpoints: Vec::new(),
                channels: Default::default(),
            };
            for i in 1..=3u16 {
                let client = format!("http://127.0.0.1:{}", base_port + i);
                let data = dir.join(format!("m{i}"));
                std::fs::create_dir_all(&data)?;
                let log = std::fs::File::create(dir.join(format!("m{i}.log")))?;
                let child = Command::new("etcd")
                    .arg("--name")
                    .arg(format!("m{i}"))
                    .arg("--data-dir")
                    .arg(&data)
                    .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
                    .args(["--listen-peer-urls", &peer(i), "--initial-advertise-peer-urls", &peer(i)])
                    .args(["--initial-cluster", &initial.join(",")])
                    .args(["--initial-cluster-state", "new", "--initial-cluster-token", "bench"])
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot start etcd ({e}): install Debian's etcd-server (ci/etcd-bench does)"
                        )
                    })?;
                cluster.children.push(child);
                cluster.endpoints.push(client);
            }
            let t = Instant::now();
            loop {
                if let Ok(mut c) = cluster.client(0).await {
                    if c.run("put", "bench/warmup").await {
                        println!("etcd {}: 3 members on loopback", etcd_version());
                        return Ok(cluster);
                    }
                }
                if t.elapsed() > Duration::from_secs(30) {
                    bail!("etcd did not start within 30 s (logs in {})", dir.display());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }

        /// Client `i` talks to member `i % 3`, as bookstore's clients spread,
        /// over the one connection to that member.
        pub async fn client(&self, i: usize) -> anyhow::Result<super::BenchClient> {
            let m = i % self.endpoints.len();
            let known = self.channels.lock().unwrap().get(&m).cloned();
            let ch = match known {
                Some(ch) => ch,
                None => {
                    let ch = tonic::transport::Endpoint::from_shared(self.endpoints[m].clone())?
                        .connect()
                        .await?;
                    self.channels.lock().unwrap().insert(m, ch.clone());
                    ch
                }
            };
            Ok(super::BenchClient::Etcd(EtcdClient(EtcdKv::new(ch))))
        }
    }

    fn etcd_version() -> String {
        Command::new("etcd")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.lines().next().map(str::to_string))
            .unwrap_or_default()
    }

    impl Drop for EtcdCluster {
        fn drop(&mut self) {
            for c in &mut self.children {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    pub async fn gateway(port: u16, ports: ShopPorts) -> anyhow::Result<()> {
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        // "listening" only once the port is free to listen on.
        super::check_free("gateway", &addr.to_string())?;
        println!("gateway listening on http://{addr}");
        bookstore::gateway::serve(
            &ports.topology(),
            GatewayConfig::default(),
            addr,
            terminated(),
        )
        .await
        .with_context(|| format!("gateway on {addr}"))
    }

    /// One supervised child process.
    struct Proc {
        name: String,
        args: Vec<String>,
        addr: String,
        child: Option<Child>,
        started: Instant,
        /// Quick deaths in a row (each doubles the wait before a restart).
        quick_deaths: u32,
        restart_at: Option<Instant>,
        restarts: u64,
    }

    fn send_signal(child: &Child, sig: i32) {
        // SAFETY: kill(2) on the id of a child we have not reaped yet.
        unsafe {
            libc::kill(child.id() as libc::pid_t, sig);
        }
    }

    struct Supervisor {
        exe: PathBuf,
        data_dir: PathBuf,
        procs: Vec<Proc>,
        /// Stop order: processes whose name contains the first, then the
        /// second... (front ends before services before stores).
        tiers: &'static [&'static str],
    }

    impl Supervisor {
        fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
            let p = &mut self.procs[i];
            let log_path = self.data_dir.join("logs").join(format!("{}.log", p.name));
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("cannot open {}", log_path.display()))?;
            let mut cmd = Command::new(&self.exe);
            cmd.args(&p.args)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                // Its own process group: a Ctrl-C in the terminal reaches the
                // supervisor only, which then stops the children in order.
                .process_group(0);
            let parent = std::process::id() as libc::pid_t;
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    // Die with the supervisor, even if it is killed -9.
                    #[cfg(target_os = "linux")]
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if libc::getppid() != parent {
                        return Err(std::io::Error::other("supervisor gone"));
                    }
                    Ok(())
                });
            }
            let child = cmd
                .spawn()
                .with_context(|| format!("cannot start {}", p.name))?;
            let pid_path = self.data_dir.join("pids").join(format!("{}.pid", p.name));
            std::fs::write(&pid_path, format!("{}\n", child.id()))?;
            p.child = Some(child);
            p.started = Instant::now();
            p.restart_at = None;
            Ok(())
        }

        /// Reaps dead children and restarts them (after a short wait that
        /// grows while one keeps dying right after its start).
        fn check(&mut self) -> anyhow::Result<()> {
            let now = Instant::now();
            for i in 0..self.procs.len() {
                let p = &mut self.procs[i];
                if let Some(c) = &mut p.child {
                    if let Some(status) = c.try_wait()? {
                        let pid = c.id();
                        p.child = None;
                        let lived = p.started.elapsed();
                        p.quick_deaths = if lived < Duration::from_secs(3) {
                            p.quick_deaths + 1
                        } else {
                            0
                        };
                        let wait = Duration::from_millis(100)
                            * 2u32.pow(p.quick_deaths.saturating_sub(1).min(6));
                        println!(
                            "{} (pid {pid}) exited ({status}) after {:.1} s; restarting in {} ms",
                            p.name,
                            lived.as_secs_f64(),
                            wait.as_millis()
                        );
                        p.restart_at = Some(now + wait);
                    }
                }
                let p = &self.procs[i];
                if p.child.is_none() && p.restart_at.is_some_and(|t| t <= now) {
                    self.spawn(i)?;
                    let p = &mut self.procs[i];
                    p.restarts += 1;
                    println!(
                        "{} restarted (pid {}, restart #{})",
                        p.name,
                        p.child.as_ref().map_or(0, |c| c.id()),
                        p.restarts
                    );
                }
            }
            Ok(())
        }

        /// SIGTERM to the gateway, then the services, then the stores;
        /// SIGKILL for any that has not exited within a few seconds.
        async fn stop(&mut self) {
            for tier in self.tiers {
                let mut waiting: Vec<&mut Proc> = self
                    .procs
                    .iter_mut()
                    .filter(|p| p.name.contains(*tier) && p.child.is_some())
                    .collect();
                for p in &mut waiting {
                    send_signal(p.child.as_ref().expect("running"), libc::SIGTERM);
                }
                let deadline = Instant::now() + Duration::from_secs(5);
                loop {
                    waiting.retain_mut(|p| {
                        let c = p.child.as_mut().expect("running");
                        match c.try_wait() {
                            Ok(None) => true,
                            _ => {
                                p.child = None;
                                false
                            }
                        }
                    });
                    if waiting.is_empty() {
                        break;
                    }
                    if Instant::now() >= deadline {
                        for p in &mut waiting {
                            let mut c = p.child.take().expect("running");
                            println!("{} did not stop; killing it", p.name);
                            let _ = c.kill();
                            let _ = c.wait();
                        }
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    impl Supervisor {
        /// Starts every process, prints `title` and a table of what runs
        /// where (then `footer`), restarts whatever dies, prints the answer
        /// of `ready` once it completes (`Ok` line or a warning), and on
        /// Ctrl-C or SIGTERM stops everything in tier order.
        async fn run<T>(
            &mut self,
            title: String,
            footer: String,
            ready: impl std::future::Future<Output = anyhow::Result<T>>,
            ready_line: impl FnOnce(T) -> String,
        ) -> anyhow::Result<()> {
            let stop = terminated();
            tokio::pin!(stop);
            for p in &self.procs {
                check_free(&p.name, &p.addr)?;
            }
            for i in 0..self.procs.len() {
                self.spawn(i)?;
            }
            println!("{title}");
            let width = self.procs.iter().map(|p| p.name.len()).max().unwrap_or(0);
            for p in &self.procs {
                println!(
                    "  {:<width$} pid {:<8} {}",
                    p.name,
                    p.child.as_ref().map_or(0, |c| c.id()),
                    p.addr
                );
            }
            println!("{footer}");
            let _ = std::io::stdout().flush();
            tokio::pin!(ready);
            let mut ready_line = Some(ready_line);
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    r = &mut ready, if ready_line.is_some() => {
                        let line = ready_line.take().expect("once");
                        match r {
                            Ok(v) => println!("{}", line(v)),
                            Err(e) => println!("warning: {e:#}"),
                        }
                        let _ = std::io::stdout().flush();
                    }
                    _ = tokio::time::sleep(Duration::from_millis(50)) => self.check()?,
                }
            }
            Ok(())
        }
    }

    impl Drop for Supervisor {
        fn drop(&mut self) {
            for p in &mut self.procs {
                if let Some(mut c) = p.child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
    }

    /// The command lines of every process of the shop.
    fn shop_procs(
        mode: Mode,
        data_dir: &std::path::Path,
        port: u16,
        ports: &ShopPorts,
        bug: &Option<String>,
    ) -> Vec<Proc> {
        let t = ports.topology();
        let base = ports.base_port.to_string();
        let dir = data_dir.display().to_string();
        let mut out = Vec::new();
        let mut add = |name: String, args: Vec<&str>, addr: String| {
            out.push(Proc {
                name,
                args: args.into_iter().map(String::from).collect(),
                addr,
                child: None,
                started: Instant::now(),
                quick_deaths: 0,
                restart_at: None,
                restarts: 0,
            })
        };
        for g in Group::ALL {
            for (id, addr) in t.kv(g) {
                let id = id.to_string();
                add(
                    format!("{}-kv-{id}", g.name()),
                    vec![
                        "node",
                        "--group",
                        g.name(),
                        "--id",
                        &id,
                        "--base-port",
                        &base,
                        "--data-dir",
                        &dir,
                    ],
                    addr.clone(),
                );
            }
        }
        for g in Group::ALL {
            for (r, addr) in t.service(g).iter().enumerate() {
                let r = (r + 1).to_string();
                let mut args = vec![
                    "service",
                    g.name(),
                    "--replica",
                    &r,
                    "--mode",
                    mode.name(),
                    "--base-port",
                    &base,
                ];
                if let Some(b) = bug {
                    args.extend(["--bug", b]);
                }
                add(format!("{}-svc-{r}", g.name()), args, addr.clone());
            }
        }
        let port_s = port.to_string();
        add(
            "gateway".to_string(),
            vec!["gateway", "--port", &port_s, "--base-port", &base],
            format!("http://127.0.0.1:{port}"),
        );
        out
    }

    /// The vector-clock log of one process incarnation:
    /// DATA_DIR/vclock/<name>-<pid>.jsonl.
    pub fn tartu_log(
        data_dir: &std::path::Path,
        name: &str,
    ) -> anyhow::Result<bookstore::tartu::VcLog> {
        let source = format!("{name}-{}", std::process::id());
        let path = data_dir.join("vclock").join(format!("{source}.jsonl"));
        bookstore::tartu::VcLog::file(source, &path)
            .with_context(|| format!("cannot open {}", path.display()))
    }

    pub fn wall(clock: Clock) -> bookstore::tartu::WallClock {
        bookstore::tartu::WallClock::system(clock)
    }

    pub async fn tartu_orchestrator(
        t: bookstore::tartu::Topology,
        port: u16,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<()> {
        use bookstore::tartu::orchestrator::{serve, OrchestratorConfig};
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let log = tartu_log(data_dir, "orchestrator")?;
        let mut cfg = OrchestratorConfig::new(t, wall(Clock::new()), log);
        // Definite answers: a checkout is answered once its outcome is known.
        cfg.answer_deadline = Some(std::time::Duration::from_secs(120));
        println!("orchestrator listening on http://{addr}");
        serve(cfg, addr, terminated())
            .await
            .with_context(|| format!("orchestrator on {addr}"))
    }

    pub async fn tartu_page(port: u16, api_port: u16) -> anyhow::Result<()> {
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let api = format!("http://127.0.0.1:{api_port}");
        println!("page on http://{addr} (API {api})");
        bookstore::tartu::page::serve(api, addr, terminated())
            .await
            .with_context(|| format!("page on {addr}"))
    }

    /// Serves one GraphQL gateway replica.
    pub async fn pad_gateway(
        env: bookstore::pad::services::ServiceEnv,
        addr: std::net::SocketAddr,
        cors_origin: &[String],
    ) -> anyhow::Result<()> {
        use bookstore::pad::{gateway, graphql};
        let cors = gateway::cors(cors_origin).map_err(anyhow::Error::msg)?;
        // Calls from the gateway may run a whole initOrder (several calls
        // inside the order service): each attempt gets 5 s, a call 10 s.
        let disc = bookstore::pad::rpc::Discovery::new(
            env.topology.registry.clone(),
            env.clock().clone(),
            Duration::from_secs(5),
        )
        .with_bugs(env.bugs);
        let schema = graphql::schema(graphql::Api {
            disc: disc.clone(),
            wall: env.wall.clone(),
            deadline: Duration::from_secs(10),
            audit: None,
        });
        println!("GraphQL gateway on http://{addr}/graphql (GraphiQL: open it in a browser)");
        if !cors_origin.is_empty() {
            println!("pages of {} may call it (CORS)", cors_origin.join(", "));
        }
        gateway::serve(schema, disc, addr, cors, terminated())
            .await
            .with_context(|| format!("gateway on {addr}"))
    }

    /// The command lines of every process of the platform.
    fn pad_procs(
        ports: &PadPorts,
        data_dir: &std::path::Path,
        bug: &Option<String>,
        cors_origin: &[String],
    ) -> Vec<Proc> {
        let t = ports.topology();
        let common = |what: &str, r: u64| {
            let mut a: Vec<String> = [
                "pad-proc",
                what,
                "--replica",
                &r.to_string(),
                "--base-port",
                &ports.base_port.to_string(),
                "--gateway-port",
                &ports.gateway_port.to_string(),
                "--data-dir",
                &data_dir.display().to_string(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if let Some(b) = bug {
                a.extend(["--bug".to_string(), b.clone()]);
            }
            a
        };
        let mut out = Vec::new();
        for (group, nodes) in &t.kv {
            for (id, addr) in nodes {
                out.push(new_proc(
                    format!("{group}-kv-{id}"),
                    common(&format!("{group}-kv"), *id),
                    addr.clone(),
                ));
            }
        }
        let mut services: Vec<(&str, &Vec<String>)> =
            t.services.iter().map(|(k, v)| (k.as_str(), v)).collect();
        services.push(("registry", &t.registry));
        for (what, addrs) in services {
            for (i, addr) in addrs.iter().enumerate() {
                let r = i as u64 + 1;
                out.push(new_proc(
                    format!("{what}-svc-{r}"),
                    common(what, r),
                    addr.clone(),
                ));
            }
        }
        for (i, addr) in t.gateways.iter().enumerate() {
            let r = i as u64 + 1;
            let mut args = common("gateway", r);
            for o in cors_origin {
                args.extend(["--cors-origin".to_string(), o.clone()]);
            }
            out.push(new_proc(
                format!("gateway-{r}"),
                args,
                format!("http://{addr}/graphql"),
            ));
        }
        out
    }

    /// Waits until a gateway answers `hello` and routes to every service.
    async fn pad_ready(url: String, limit: Duration) -> anyhow::Result<()> {
        let http = bookstore::pad::gateway::client::Gql::new(&url);
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(a) = http.get("/status").await {
                let routable = &a.body["routable"];
                if bookstore::pad::SERVICES
                    .iter()
                    .all(|s| routable[*s].as_array().is_some_and(|a| !a.is_empty()))
                {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                bail!("the platform did not become ready within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn pad(
        ports: PadPorts,
        data_dir: PathBuf,
        bug: Option<String>,
        cors_origin: Vec<String>,
    ) -> anyhow::Result<()> {
        if let Some(b) = &bug {
            bookstore::bugs::Bugs::from_name(b).map_err(anyhow::Error::msg)?;
        }
        // Refused here, before any process starts, not by each gateway.
        bookstore::pad::gateway::cors(&cors_origin).map_err(anyhow::Error::msg)?;
        for sub in ["logs", "pids"] {
            let d = data_dir.join(sub);
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
        }
        let data_dir = data_dir.canonicalize()?;
        let key_path = data_dir.join("signing.key");
        if !key_path.exists() {
            let mut key = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key))
                .context("cannot read /dev/urandom for the signing key")?;
            let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
            std::fs::write(&key_path, hex + "\n")
                .with_context(|| format!("cannot write {}", key_path.display()))?;
        }
        let t = ports.topology();
        let mut sup = Supervisor {
            exe: std::env::current_exe()?,
            data_dir: data_dir.clone(),
            procs: pad_procs(&ports, &data_dir, &bug, &cors_origin),
            tiers: &["gateway", "svc", "kv"],
        };
        let first = format!("http://{}", t.gateways[0]);
        let urls: Vec<String> = t
            .gateways
            .iter()
            .map(|g| format!("http://{g}/graphql"))
            .collect();
        sup.run(
            format!(
                "platform running (bugs {}), data in {}:",
                bug.as_deref().unwrap_or("none"),
                data_dir.display()
            ),
            format!(
                "logs in {0}/logs, process ids in {0}/pids; any one process may be killed (it is restarted); Ctrl-C stops everything",
                data_dir.display()
            ),
            pad_ready(first.clone(), Duration::from_secs(120)),
            move |()| {
                format!(
                    "platform ready: GraphQL (and GraphiQL) at {}; registry's view at {first}/status",
                    urls.join(" and ")
                )
            },
        )
        .await?;
        println!("stopping the platform");
        sup.stop().await;
        println!("stopped");
        Ok(())
    }

    pub async fn pad_bench(
        clients: usize,
        orders: usize,
        urls: Vec<String>,
        ports: PadPorts,
    ) -> anyhow::Result<()> {
        use bookstore::pad::gateway::client::Gql;
        use serde_json::json;
        let (_pad, urls) = if urls.is_empty() {
            let data = std::env::temp_dir().join(format!("bookstore-pad-bench-{}", random_id()));
            let child = Command::new(std::env::current_exe()?)
                .args(["pad", "--base-port", &ports.base_port.to_string()])
                .args([
                    "--gateway-port",
                    &ports.gateway_port.to_string(),
                    "--data-dir",
                ])
                .arg(&data)
                .stdout(Stdio::null())
                .spawn()?;
            println!("started a fresh platform (data in {})", data.display());
            let t = ports.topology();
            (
                Some(ShopProcess { child, data }),
                t.gateways.iter().map(|g| format!("http://{g}")).collect(),
            )
        } else {
            (None, urls)
        };
        pad_ready(urls[0].clone(), Duration::from_secs(120)).await?;
        let gws: Vec<Gql> = urls.iter().map(|u| Gql::new(u)).collect();
        let g = &gws[0];
        let pw = "correct horse battery";
        let ok = |a: Result<bookstore::pad::gateway::client::Answer, String>,
                  what: &str|
         -> anyhow::Result<serde_json::Value> {
            let a = a.map_err(anyhow::Error::msg)?;
            if a.body["errors"].is_array() {
                bail!("{what}: {}", a.body);
            }
            Ok(a.body["data"].clone())
        };
        const REG: &str =
            "mutation($e: String!, $p: String!) { registerUser(input: {email: $e, password: $p}) }";
        const LOGIN: &str =
            "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) }";
        ok(
            g.query(REG, json!({"e": "bench-admin@example.com", "p": pw}), None)
                .await,
            "register the admin",
        )?;
        let admin = ok(
            g.query(
                LOGIN,
                json!({"e": "bench-admin@example.com", "p": pw}),
                None,
            )
            .await,
            "login",
        )?["login"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // A product per client (they never contend on one record), priced
        // 0.01 with plenty of units.
        let mut products = Vec::new();
        for i in 0..clients {
            let d = ok(
                g.query(
                    "mutation($n: String!) { createProduct(input: {name: $n, price: 0.01, unitsAvailable: 1000000000, categoriesIds: []}) { id } }",
                    json!({"n": format!("bench book {i}")}),
                    Some(&admin),
                )
                .await,
                "createProduct",
            )?;
            products.push(d["createProduct"]["id"].as_i64().unwrap_or(0));
        }
        println!(
            "{orders} orders (1 unit of the client's own product each) with {clients} clients through {}",
            urls.join(", ")
        );
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for (i, product) in products.into_iter().enumerate() {
            let (g, next) = (gws[i % gws.len()].clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let e = format!("bench{i}@example.com");
                let mut lat = Vec::new();
                let mut not_paid = 0u64;
                let mut errors = 0u64;
                if g.query(REG, json!({"e": e, "p": pw}), None).await.is_err() {
                    return (lat, not_paid, 1);
                }
                let Ok(a) = g.query(LOGIN, json!({"e": e, "p": pw}), None).await else {
                    return (lat, not_paid, 1);
                };
                let tok = a.body["data"]["login"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                loop {
                    if next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= orders {
                        break;
                    }
                    let add = g
                        .query(
                            "mutation($p: Int!) { addToCart(input: {productId: $p, quantity: 1}) }",
                            json!({"p": product}),
                            Some(&tok),
                        )
                        .await;
                    if !matches!(&add, Ok(a) if a.data("addToCart").is_some()) {
                        errors += 1;
                        continue;
                    }
                    let t = Instant::now();
                    let id = match g
                        .query("mutation { initOrder { orderId } }", json!({}), Some(&tok))
                        .await
                    {
                        Ok(a) => match a.data("initOrder") {
                            Some(o) => o["orderId"].as_i64().unwrap_or(0),
                            None => {
                                errors += 1;
                                continue;
                            }
                        },
                        Err(_) => {
                            errors += 1;
                            continue;
                        }
                    };
                    loop {
                        let s = g
                            .query(
                                "query($id: Float!) { orderStatus(orderId: $id) { value } }",
                                json!({"id": id}),
                                Some(&tok),
                            )
                            .await;
                        let v = s
                            .ok()
                            .and_then(|a| {
                                a.data("orderStatus")
                                    .map(|v| v["value"].as_str().unwrap_or("").to_string())
                            })
                            .unwrap_or_default();
                        if v == "PAID" {
                            lat.push(t.elapsed());
                            break;
                        }
                        if v == "PAYMENT_FAILED" || v == "ITEMS_REJECTED" {
                            not_paid += 1;
                            break;
                        }
                        if t.elapsed() > Duration::from_secs(60) {
                            errors += 1;
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                (lat, not_paid, errors)
            }));
        }
        let (mut lat, mut not_paid, mut errors) = (Vec::new(), 0, 0);
        for t in tasks {
            let (l, n, e) = t.await?;
            lat.extend(l);
            not_paid += n;
            errors += e;
        }
        let secs = start.elapsed().as_secs_f64();
        lat.sort();
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        println!(
            "{:>8} {:>8} {:>8} {:>10} {:>10} {:>10} {:>9} {:>7}",
            "clients", "orders", "PAID", "PAID/s", "p50 ms", "p99 ms", "not paid", "errors"
        );
        println!(
            "{:>8} {:>8} {:>8} {:>10.1} {:>10.1} {:>10.1} {:>9} {:>7}",
            clients,
            orders,
            lat.len(),
            lat.len() as f64 / secs,
            pct(0.5),
            pct(0.99),
            not_paid,
            errors
        );
        Ok(())
    }

    fn new_proc(name: String, args: Vec<String>, addr: String) -> Proc {
        Proc {
            name,
            args,
            addr,
            child: None,
            started: Instant::now(),
            quick_deaths: 0,
            restart_at: None,
            restarts: 0,
        }
    }

    /// The command lines of every process of the Tartu bookstore.
    fn tartu_procs(
        ports: &TartuPorts,
        data_dir: &std::path::Path,
        bug: &Option<String>,
    ) -> Vec<Proc> {
        let t = ports.topology();
        let common = |what: &str, r: u64| {
            let mut a: Vec<String> = [
                "tartu-proc",
                what,
                "--replica",
                &r.to_string(),
                "--base-port",
                &ports.base_port.to_string(),
                "--api-port",
                &ports.api_port.to_string(),
                "--page-port",
                &ports.page_port.to_string(),
                "--data-dir",
                &data_dir.display().to_string(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            if let Some(b) = bug {
                a.extend(["--bug".to_string(), b.clone()]);
            }
            a
        };
        let mut out = Vec::new();
        for (what, nodes) in [
            ("books-kv", &t.books_kv),
            ("state-kv", &t.state_kv),
            ("payment-kv", &t.payment_kv),
        ] {
            for (id, addr) in nodes {
                out.push(new_proc(
                    format!("{what}-{id}"),
                    common(what, *id),
                    addr.clone(),
                ));
            }
        }
        for (what, addrs) in [
            ("books", &t.books),
            ("payment", &t.payment),
            ("verification", &t.verification),
            ("fraud", &t.fraud),
            ("suggestions", &t.suggestions),
        ] {
            for (i, addr) in addrs.iter().enumerate() {
                let r = i as u64 + 1;
                out.push(new_proc(
                    format!("{what}-svc-{r}"),
                    common(what, r),
                    addr.clone(),
                ));
            }
        }
        for r in 1..=3u64 {
            out.push(new_proc(
                format!("executor-{r}"),
                common("executor", r),
                "-".into(),
            ));
        }
        out.push(new_proc(
            "orchestrator".into(),
            common("orchestrator", 1),
            format!("http://127.0.0.1:{}", ports.api_port),
        ));
        out.push(new_proc(
            "page".into(),
            common("page", 1),
            format!("http://127.0.0.1:{}", ports.page_port),
        ));
        out
    }

    /// Waits until the orchestrator lists the seeded catalogue.
    pub async fn tartu_ready(
        http: &bookstore::tartu::orchestrator::client::Http,
        limit: Duration,
    ) -> anyhow::Result<usize> {
        let deadline = Instant::now() + limit;
        let want = tartu_core::catalogue::seed().len();
        loop {
            if let Ok(r) = http.get("/books").await {
                let n = r.body["books"].as_array().map_or(0, |b| b.len());
                if r.status == 200 && n >= want {
                    return Ok(n);
                }
            }
            if Instant::now() >= deadline {
                bail!("the Tartu bookstore did not become ready within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn tartu(
        ports: TartuPorts,
        data_dir: PathBuf,
        bug: Option<String>,
    ) -> anyhow::Result<()> {
        if let Some(b) = &bug {
            bookstore::bugs::Bugs::from_name(b).map_err(anyhow::Error::msg)?;
        }
        for sub in ["logs", "pids", "vclock"] {
            let d = data_dir.join(sub);
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
        }
        let data_dir = data_dir.canonicalize()?;
        let mut sup = Supervisor {
            exe: std::env::current_exe()?,
            data_dir: data_dir.clone(),
            procs: tartu_procs(&ports, &data_dir, &bug),
            tiers: &["page", "orchestrator", "executor", "svc", "kv"],
        };
        let http = bookstore::tartu::orchestrator::client::Http::new(&format!(
            "http://127.0.0.1:{}",
            ports.api_port
        ));
        sup.run(
            format!(
                "Tartu bookstore running (bugs {}), data in {}:",
                bug.as_deref().unwrap_or("none"),
                data_dir.display()
            ),
            format!(
                "logs in {0}/logs, process ids in {0}/pids, vector-clock logs in {0}/vclock \
                 (check them with: checker vclock --scheme system/src/tartu/scheme.json {0}/vclock/*.jsonl); \
                 any one process may be killed (it is restarted); Ctrl-C stops everything",
                data_dir.display()
            ),
            tartu_ready(&http, Duration::from_secs(120)),
            |n| {
                format!(
                    "Tartu bookstore ready: page http://127.0.0.1:{}/ , API http://127.0.0.1:{} ({n} books)",
                    ports.page_port, ports.api_port
                )
            },
        )
        .await?;
        println!("stopping the Tartu bookstore");
        sup.stop().await;
        println!("stopped");
        Ok(())
    }

    pub async fn tartu_bench(
        clients: usize,
        checkouts: usize,
        url: Option<String>,
        ports: TartuPorts,
    ) -> anyhow::Result<()> {
        use bookstore::tartu::orchestrator::client::{card_number, Http};
        let (_store, url) = match url {
            Some(u) => (None, u),
            None => {
                let data = std::env::temp_dir().join(format!("tartu-bench-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&data);
                let child = Command::new(std::env::current_exe()?)
                    .args(["tartu", "--base-port", &ports.base_port.to_string()])
                    .args(["--api-port", &ports.api_port.to_string()])
                    .args(["--page-port", &ports.page_port.to_string(), "--data-dir"])
                    .arg(&data)
                    .stdout(Stdio::null())
                    .spawn()?;
                (
                    Some(ShopProcess { child, data }),
                    format!("http://127.0.0.1:{}", ports.api_port),
                )
            }
        };
        let http = Http::new(&url);
        let n = tartu_ready(&http, Duration::from_secs(120)).await?;
        println!("{url}: {n} books; {checkouts} checkouts of the course's demo order (distinct cards), {clients} clients");
        // Stock for every order (each takes 1 "Book A" and 2 "Book B").
        {
            use bookstore::tartu_pb::{books_client::BooksClient, StockChange};
            let addr = ports.topology().books[0].clone();
            let mut books = BooksClient::connect(format!("http://{addr}")).await?;
            for (id, n) in [("b001", checkouts), ("b002", 2 * checkouts)] {
                books
                    .add_stock(StockChange {
                        id: id.into(),
                        delta: n as i64,
                    })
                    .await?;
            }
        }
        let body: serde_json::Value = serde_json::from_str(tartu_core::request::demo_body())?;
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (http, next, body) = (http.clone(), next.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let (mut lat, mut executed) = (Vec::new(), Vec::new());
                let (mut approved, mut rejected, mut errors, mut failed) =
                    (0usize, 0usize, 0usize, 0usize);
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= checkouts {
                        break;
                    }
                    let mut b = body.clone();
                    b["creditCard"]["number"] = card_number("4", i as u64 + 1).into();
                    let bytes = serde_json::to_vec(&b).expect("json");
                    let key = format!("bench-{}-{i}", std::process::id());
                    let t0 = Instant::now();
                    let id = match http.checkout(&bytes, Some(&key)).await {
                        Ok(r) if r.status == 200 && r.body["status"] == "Order Approved" => {
                            approved += 1;
                            r.body["orderId"].as_str().map(String::from)
                        }
                        Ok(r) if r.status == 200 => {
                            rejected += 1;
                            None
                        }
                        _ => {
                            errors += 1;
                            None
                        }
                    };
                    lat.push(t0.elapsed());
                    // Then wait for the executors: checkout to executed.
                    if let Some(id) = id {
                        loop {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            match http.get(&format!("/orders/{id}")).await {
                                Ok(r) if r.body["status"] == "executed" => {
                                    executed.push(t0.elapsed());
                                    break;
                                }
                                Ok(r) if r.body["status"] == "failed" => {
                                    failed += 1;
                                    break;
                                }
                                _ => {}
                            }
                        }
                    }
                }
                (lat, executed, approved, rejected, errors, failed)
            }));
        }
        let (mut lat, mut exec) = (Vec::new(), Vec::new());
        let (mut approved, mut rejected, mut errors, mut failed) = (0, 0, 0, 0);
        for t in tasks {
            let (l, x, a, r, e, f) = t.await?;
            lat.extend(l);
            exec.extend(x);
            approved += a;
            rejected += r;
            errors += e;
            failed += f;
        }
        let secs = started.elapsed().as_secs_f64();
        lat.sort();
        exec.sort();
        let pct = |v: &[Duration], p: f64| {
            v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        println!(
            "{} checkouts, {} executed in {secs:.1} s: {:.0} orders executed/s end to end; \
             checkout latency p50 {:.1} ms, p99 {:.1} ms; checkout to executed p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
             approved {approved}, rejected {rejected}, errors {errors}, failed in execution {failed}",
            lat.len(),
            exec.len(),
            exec.len() as f64 / secs,
            pct(&lat, 0.50),
            pct(&lat, 0.99),
            pct(&exec, 0.50),
            pct(&exec, 0.99),
            pct(&exec, 1.0)
        );
        if approved != checkouts {
            bail!(
                "{} of {checkouts} checkouts were not approved",
                checkouts - approved
            );
        }
        Ok(())
    }

    /// Waits until the gateway answers a read from every service (200 or 404).
    pub async fn wait_ready(http: &HttpClient, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let mut ready = true;
            for path in [
                "/stock/find/ready-probe",
                "/payment/find_user/ready-probe",
                "/orders/find/ready-probe",
            ] {
                match http.get(path).await {
                    Ok(a) if a.status == 200 || a.status == 404 => {}
                    _ => ready = false,
                }
            }
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("the shop did not become ready within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn shop(
        mode: Mode,
        data_dir: PathBuf,
        port: u16,
        ports: ShopPorts,
        bug: Option<String>,
    ) -> anyhow::Result<()> {
        if let Some(b) = &bug {
            bookstore::bugs::Bugs::from_name(b).map_err(anyhow::Error::msg)?;
        }
        for sub in ["logs", "pids"] {
            let d = data_dir.join(sub);
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
        }
        let mut sup = Supervisor {
            exe: std::env::current_exe()?,
            data_dir: data_dir.clone(),
            procs: shop_procs(mode, &data_dir, port, &ports, &bug),
            tiers: &["gateway", "svc", "kv"],
        };
        let http = HttpClient::new(&format!("http://127.0.0.1:{port}"));
        sup.run(
            format!(
                "shop running (checkout mode {}, bugs {}), data in {}:",
                mode.name(),
                bug.as_deref().unwrap_or("none"),
                data_dir.display()
            ),
            format!(
                "logs in {0}/logs, process ids in {0}/pids; any one process may be killed \
                 (it is restarted); Ctrl-C stops everything",
                data_dir.display()
            ),
            wait_ready(&http, Duration::from_secs(120)),
            |()| format!("shop ready: http://127.0.0.1:{port}"),
        )
        .await?;
        println!("stopping the shop");
        sup.stop().await;
        println!("stopped");
        Ok(())
    }

    /// A fresh shop in a child process (its own supervisor), for the benchmark.
    struct ShopProcess {
        child: Child,
        data: PathBuf,
    }

    impl Drop for ShopProcess {
        fn drop(&mut self) {
            send_signal(&self.child, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
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

    pub async fn shop_bench(
        clients: usize,
        orders: usize,
        mode: Mode,
        url: Option<String>,
        ports: ShopPorts,
        port: u16,
    ) -> anyhow::Result<()> {
        let (_shop, url) = match url {
            Some(u) => (None, u),
            None => {
                let data =
                    std::env::temp_dir().join(format!("bookstore-shop-bench-{}", random_id()));
                let child = Command::new(std::env::current_exe()?)
                    .args(["shop", "--mode", mode.name(), "--port", &port.to_string()])
                    .args(["--base-port", &ports.base_port.to_string(), "--data-dir"])
                    .arg(&data)
                    .stdout(Stdio::null())
                    .spawn()?;
                println!(
                    "started a fresh shop (mode {}, gateway port {port}, data in {})",
                    mode.name(),
                    data.display()
                );
                (
                    Some(ShopProcess { child, data }),
                    format!("http://127.0.0.1:{port}"),
                )
            }
        };
        let http = HttpClient::new(&url);
        wait_ready(&http, Duration::from_secs(60)).await?;
        // Plenty of everything, and many items and users, so that checkouts
        // succeed and rarely contend on one record.
        let (n_items, n_users) = (10_000, 10_000);
        for path in [
            format!("/stock/batch_init/{n_items}/1000000000/1"),
            format!("/payment/batch_init/{n_users}/1000000000"),
            format!("/orders/batch_init/{orders}/{n_items}/{n_users}/1"),
        ] {
            let a = http.post(&path).await.map_err(anyhow::Error::msg)?;
            if !a.ok() {
                bail!("{path}: {} {}", a.status, a.body);
            }
        }
        println!(
            "{orders} orders (2 of {n_items} items, one of {n_users} users each); \
             checking them out with {clients} concurrent clients through {url}"
        );
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (http, next) = (http.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                let (mut lat, mut failed, mut unknown) = (Vec::new(), 0u64, 0u64);
                loop {
                    let o = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if o >= orders {
                        break;
                    }
                    let t = Instant::now();
                    match http.post(&format!("/orders/checkout/{o}")).await {
                        Ok(a) if a.ok() => lat.push(t.elapsed()),
                        Ok(a) if a.unknown() => unknown += 1,
                        _ => failed += 1,
                    }
                }
                (lat, failed, unknown)
            }));
        }
        let (mut lat, mut failed, mut unknown) = (Vec::new(), 0, 0);
        for t in tasks {
            let (l, f, u) = t.await?;
            lat.extend(l);
            failed += f;
            unknown += u;
        }
        let secs = start.elapsed().as_secs_f64();
        lat.sort();
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        println!(
            "{:<5} {:>8} {:>8} {:>12} {:>10} {:>10} {:>8} {:>8}",
            "mode", "clients", "orders", "checkouts/s", "p50 ms", "p99 ms", "failed", "unknown"
        );
        println!(
            "{:<5} {:>8} {:>8} {:>12.0} {:>10.1} {:>10.1} {:>8} {:>8}",
            mode.name(),
            clients,
            orders,
            lat.len() as f64 / secs,
            pct(0.5),
            pct(0.99),
            failed,
            unknown
        );
        Ok(())
    }
}
