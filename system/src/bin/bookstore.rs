//! `bookstore`: runs the replicated key-value store for real on loopback,
//! and talks to it.
//!
//!   bookstore cluster                 # 3 nodes in this process, ports 7001-7003, data in ./data
//!   bookstore node --id 2             # one node per process (for kill/restart)
//!   bookstore kv put KEY VALUE        # client commands: put, get, delete, cas
//!   bookstore status                  # role, term, commit of every node
//!   bookstore bench                   # put/get throughput and latency

use anyhow::{bail, Context};
use bookstore::client::{ClientError, ClientOptions, KvClient};
use bookstore::clock::Clock;
use bookstore::node::{serve, NodeConfig};
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
    #[arg(long, default_value_t = 3, global = true)]
    nodes: u64,
    /// Node i listens on 127.0.0.1:(base-port + i - 1).
    #[arg(long, default_value_t = 7001, global = true)]
    base_port: u16,
}

impl ClusterArgs {
    fn peers(&self) -> BTreeMap<NodeId, String> {
        (1..=self.nodes)
            .map(|i| (i, format!("127.0.0.1:{}", self.base_port as u64 + i - 1)))
            .collect()
    }
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
        #[command(flatten)]
        cluster: ClusterArgs,
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
    },
    /// Key-value commands against a running cluster.
    Kv {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(subcommand)]
        op: KvOp,
    },
    /// Show every node's role, term, commit and applied index.
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
    },
}

#[derive(Subcommand)]
enum KvOp {
    Put {
        key: String,
        value: String,
    },
    Get {
        key: String,
    },
    Delete {
        key: String,
    },
    /// Set KEY to --new (or delete it without --new) if it equals --expected
    /// (or is absent without --expected).
    Cas {
        key: String,
        #[arg(long)]
        expected: Option<String>,
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

async fn start_node(
    id: NodeId,
    peers: BTreeMap<NodeId, String>,
    data_dir: &std::path::Path,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let dir = data_dir.join(format!("node-{id}"));
    let fs = storage::FsDir::open(&dir)
        .with_context(|| format!("cannot open data directory {}", dir.display()))?;
    let cfg = NodeConfig::new(id, peers, random_id());
    Ok(tokio::spawn(async move {
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        serve(cfg, Arc::new(fs), Clock::new(), None, shutdown)
            .await
            .with_context(|| format!("node {id}"))
    }))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Cmd::Cluster { cluster, data_dir } => {
            let peers = cluster.peers();
            let mut tasks = Vec::new();
            for &id in peers.keys() {
                tasks.push(start_node(id, peers.clone(), &data_dir).await?);
            }
            println!(
                "cluster of {} nodes running: {}",
                peers.len(),
                peers.values().cloned().collect::<Vec<_>>().join(" ")
            );
            println!(
                "data in {}; try: bookstore kv put greeting hello; Ctrl-C to stop",
                data_dir.display()
            );
            for t in tasks {
                t.await??;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Node {
            id,
            cluster,
            data_dir,
        } => {
            let peers = cluster.peers();
            if !peers.contains_key(&id) {
                bail!(
                    "--id {id} is not a node of a {}-node cluster (ids are 1..={})",
                    peers.len(),
                    peers.len()
                );
            }
            println!("node {id} listening on {}", peers[&id]);
            start_node(id, peers, &data_dir).await?.await??;
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
                    eprintln!("error: {m}\nis the cluster running? start it with `bookstore cluster` (addresses {})", cluster.peers().values().cloned().collect::<Vec<_>>().join(" "));
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
            } else {
                ExitCode::from(2)
            })
        }
        Cmd::Bench {
            clients,
            seconds,
            base_port,
        } => bench(clients, seconds, base_port)
            .await
            .map(|_| ExitCode::SUCCESS),
    }
}

/// Starts a fresh 3-node cluster (data in a temporary directory) and
/// measures puts then gets with each number of concurrent clients.
async fn bench(clients: Vec<usize>, seconds: f64, base_port: u16) -> anyhow::Result<()> {
    let cluster = ClusterArgs {
        nodes: 3,
        base_port,
    };
    let peers = cluster.peers();
    let data = std::env::temp_dir().join(format!("bookstore-bench-{}", random_id()));
    for &id in peers.keys() {
        start_node(id, peers.clone(), &data).await?;
    }
    let mut probe = KvClient::new(peers.clone(), random_id(), ClientOptions::default());
    probe
        .put("bench/warmup", "x")
        .await
        .map_err(|e| anyhow::anyhow!("cluster did not start: {e}"))?;
    println!(
        "3-node cluster on loopback, data fsynced to {}",
        data.display()
    );
    println!(
        "{:<5} {:>8} {:>10} {:>10} {:>10} {:>8}",
        "op", "clients", "ops/s", "p50 ms", "p99 ms", "errors"
    );
    for op in ["put", "get"] {
        for &n in &clients {
            let stop = tokio::time::Instant::now() + Duration::from_secs_f64(seconds);
            let mut tasks = Vec::new();
            for i in 0..n {
                let peers = peers.clone();
                tasks.push(tokio::spawn(async move {
                    let mut c = KvClient::new(peers, random_id(), ClientOptions::default());
                    let (mut lat, mut errors, mut k) = (Vec::new(), 0u64, 0u64);
                    while tokio::time::Instant::now() < stop {
                        let key = format!("bench/{i}/{}", k % 100);
                        k += 1;
                        let t = tokio::time::Instant::now();
                        let ok = if op == "put" {
                            c.put(&key, "v").await.is_ok()
                        } else {
                            c.get(&key).await.is_ok()
                        };
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
            println!(
                "{:<5} {:>8} {:>10.0} {:>10.2} {:>10.2} {:>8}",
                op,
                n,
                lat.len() as f64 / seconds,
                pct(0.5),
                pct(0.99),
                errors
            );
        }
    }
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}
