//! Jepsen mode: the simulator's `kv` and `checkout` workloads and checks
//! against real `bookstore` processes on loopback (`kv`: 3 or 5 nodes;
//! `checkout`: the shop's 3 store groups of 3 nodes and 2 replicas of each
//! service), which this runner starts itself, with a fault schedule drawn
//! from a seed and played in real time.
//!
//! - Every link goes through a fault-injecting TCP proxy ([`proxy`]): node
//!   `a` reaches node `b` on the proxy of link `a -> b`, the clients reach
//!   node `b` on its client proxy. Partitions, one-way cuts, loss and
//!   latency are the proxies' faults; no root, no network namespaces.
//! - Processes are SIGKILLed and restarted (losing whatever they had not
//!   fsynced), paused with SIGSTOP and resumed with SIGCONT.
//! - Clocks: each node starts with a drift drawn from the seed
//!   (`--clock-drift-ppm`, up to +-2 %), and a `clock` fault jumps a node's
//!   clock 2 s forward (SIGUSR1) or back (SIGUSR2) through its `Clock`.
//!
//! The clients are the simulator's ([`crate::workload`],
//! [`crate::shopload`]), recording the history with real timestamps; each node appends its Raft events to a
//! file (`bookstore node --events`). After the faults everything heals and
//! the run checks, as the simulator does: linearizability of the history
//! (`kv`: the checker's `kv` model) or the checkout invariants (`checkout`:
//! `shopcheck`), the Raft invariants over the merged node events
//! ([`crate::checks::RaftChecker`]), liveness after healing and replica
//! convergence. It writes `history.jsonl` (node events included),
//! `schedule.json`, `report.html` and the nodes' logs to its output folder,
//! and exits 0 (valid), 1 (a check failed) or 2 (no verdict, or the run
//! could not be set up), like `checker`.

pub mod procs;
pub mod proxy;
pub mod tartu;

use crate::checks::RaftChecker;
use crate::pacing::Pacing;
use crate::workload::{self, Workload};
use bookstore::client::{ClientOptions, KvClient};
use bookstore::node::NodeEvent;
use checker::history::{History, Op, OpType, Process};
use harness::recorder::Recorder;
use procs::Proc;
use proxy::{Faults, Link};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Every fault kind, in the order `--faults` lists them.
pub const KINDS: [&str; 7] = [
    "kill",
    "pause",
    "clock",
    "partition",
    "one-way",
    "loss",
    "latency",
];

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    pub workload: String,
    pub seed: u64,
    pub seconds: u64,
    pub nodes: u64,
    pub clients: u64,
    pub keys: u64,
    pub think_ms: u64,
    pub faults: Vec<String>,
    pub bug: Option<String>,
    pub base_port: u16,
    pub out: PathBuf,
    pub bookstore: PathBuf,
    pub snapshot_every: u64,
    /// checkout: saga or 2pc (None: drawn from the seed).
    pub mode: Option<String>,
    /// checkout: consistency or mix (None: drawn from the seed).
    pub shop_workload: Option<String>,
    /// kv: the clients share one connection per node and pipeline their
    /// calls on its `Pipeline` stream (`ClientOptions::pipeline`).
    pub pipeline: bool,
}

/// One fault of the schedule: from `at_ms` for `dur_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub at_ms: u64,
    pub dur_ms: u64,
    pub kind: String,
    /// kill, pause, clock: the process; partition: one side; one-way:
    /// [from, to]. Empty for kill, pause, clock and partition: whoever
    /// leads group `value` (clock: `|value| - 1`) when the fault starts.
    pub nodes: Vec<u64>,
    /// kill, pause, partition, one-way: the Raft group; clock: the sign is
    /// the direction (2 s forward or back); loss: per mille; latency: ms.
    pub value: i64,
}

/// The run's schedule: everything drawn from the seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub workload: String,
    pub seed: u64,
    pub bug: Option<String>,
    pub nodes: u64,
    pub clients: u64,
    pub keys: u64,
    pub duration_ms: u64,
    /// Each process's clock drift at each start, in ppm (0 without `clock`).
    pub drift_ppm: Vec<i64>,
    /// checkout: the checkout protocol and the workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shop_workload: Option<String>,
    /// kv: clients pipelining on shared connections (`--pipeline`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pipeline: bool,
    pub faults: Vec<Fault>,
}

impl Schedule {
    /// The processes: `kv`: the nodes; `checkout`: 9 store nodes (stock
    /// 1-3, payment 4-6, orders 7-9) and 6 service replicas (stock 10-11,
    /// payment 12-13, orders 14-15).
    pub fn procs(&self) -> u64 {
        match self.workload.as_str() {
            "checkout" => SHOP_PROCS,
            "tartu" => tartu::PROCS,
            _ => self.nodes,
        }
    }

    /// The Raft groups, by process number.
    pub fn groups(&self) -> Vec<Vec<u64>> {
        if self.workload == "checkout" || self.workload == "tartu" {
            vec![vec![1, 2, 3], vec![4, 5, 6], vec![7, 8, 9]]
        } else {
            vec![(1..=self.nodes).collect()]
        }
    }
}

/// Processes of the shop: 3 store groups of 3, 3 services of 2 replicas.
pub const SHOP_PROCS: u64 = 15;

/// Draws the fault schedule: two lanes, processes (kill, pause, clock)
/// and network (partition, one-way, loss, latency), each a sequence of
/// faults of 1-6 s with 0.5-4 s between them. Partitions and one-way cuts
/// are inside one Raft group (`value`: its number). A kill, pause or clock
/// fault aimed at a leader aims, for `tartu`, at the executors' leader half
/// of the time (`value`: 3, one past the Raft groups).
pub fn draw(o: &Options) -> Schedule {
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed ^ 0x1e95_e400);
    let on = |k: &str| o.faults.iter().any(|f| f == k);
    let duration_ms = o.seconds * 1000;
    let mut s = Schedule {
        workload: o.workload.clone(),
        seed: o.seed,
        bug: o.bug.clone(),
        nodes: if o.workload == "kv" { o.nodes } else { 3 },
        clients: o.clients,
        keys: o.keys,
        duration_ms,
        drift_ppm: Vec::new(),
        mode: None,
        shop_workload: None,
        pipeline: o.pipeline && o.workload == "kv",
        faults: Vec::new(),
    };
    if o.workload == "checkout" {
        // From a stream of their own: the faults of a seed stay the same
        // whichever mode and workload are asked for.
        let mut r = ChaCha8Rng::seed_from_u64(o.seed ^ 0x5409);
        let mode = if r.random_bool(0.5) { "saga" } else { "2pc" };
        let w = if r.random_bool(0.5) {
            "consistency"
        } else {
            "mix"
        };
        s.mode = Some(o.mode.clone().unwrap_or_else(|| mode.into()));
        s.shop_workload = Some(o.shop_workload.clone().unwrap_or_else(|| w.into()));
    }
    let procs = s.procs();
    let groups = s.groups();
    s.drift_ppm = (0..procs)
        .map(|_| {
            if on("clock") {
                rng.random_range(-20_000..=20_000)
            } else {
                0
            }
        })
        .collect();
    let mut faults = Vec::new();
    for lane in [&KINDS[..3], &KINDS[3..]] {
        let kinds: Vec<&str> = lane.iter().copied().filter(|k| on(k)).collect();
        if kinds.is_empty() {
            continue;
        }
        let mut t = rng.random_range(500..3_000);
        while t + 1_000 < duration_ms {
            let kind = kinds[rng.random_range(0..kinds.len())];
            let node = rng.random_range(1..=procs);
            let mut gi = rng.random_range(0..groups.len());
            let group = &groups[gi];
            if o.workload == "tartu"
                && ["kill", "pause", "clock"].contains(&kind)
                && rng.random_bool(0.5)
            {
                gi = groups.len();
            }
            let mut dur = rng.random_range(1_000..6_000).min(duration_ms - t);
            let (nodes, value) = match kind {
                // Half the time whoever leads (group 0) when it starts.
                "kill" | "pause" if rng.random_bool(0.5) => (Vec::new(), gi as i64),
                "kill" | "pause" => (vec![node], 0),
                "clock" => {
                    dur = 0;
                    let side = if rng.random_bool(0.5) { 1 } else { -1 };
                    let who = if rng.random_bool(0.5) {
                        Vec::new()
                    } else {
                        vec![node]
                    };
                    (who, side * (gi as i64 + 1))
                }
                "partition" => {
                    // Half the time the leader's side, found when it starts.
                    if rng.random_bool(0.5) {
                        (Vec::new(), gi as i64)
                    } else {
                        let size = rng.random_range(1..=(group.len() as u64 - 1) / 2);
                        let mut side = group.clone();
                        while side.len() as u64 > size {
                            side.remove(rng.random_range(0..side.len()));
                        }
                        (side, gi as i64)
                    }
                }
                "one-way" => {
                    let a = group[rng.random_range(0..group.len())];
                    let mut b = group[rng.random_range(0..group.len())];
                    while b == a {
                        b = group[rng.random_range(0..group.len())];
                    }
                    (vec![a, b], gi as i64)
                }
                "loss" => (Vec::new(), rng.random_range(10..=200)),
                _ => (Vec::new(), rng.random_range(5..=150)),
            };
            faults.push(Fault {
                at_ms: t,
                dur_ms: dur,
                kind: kind.to_string(),
                nodes,
                value,
            });
            t += dur + rng.random_range(500..4_000);
        }
    }
    faults.sort_by_key(|f| f.at_ms);
    s.faults = faults;
    s
}

/// The ports: process i on base+i, link a -> b on base+1000+20a+b, the
/// clients' proxy of process b on base+500+b.
pub struct Ports(u16);

impl Ports {
    fn node(&self, i: u64) -> String {
        format!("127.0.0.1:{}", self.0 as u64 + i)
    }
    fn link(&self, a: u64, b: u64) -> String {
        format!("127.0.0.1:{}", self.0 as u64 + 1000 + 20 * a + b)
    }
    pub fn client(&self, b: u64) -> String {
        format!("127.0.0.1:{}", self.0 as u64 + 500 + b)
    }
}

/// The cluster under test: its processes and every link's proxy.
struct Cluster {
    procs: Mutex<Vec<Proc>>,
    /// (from, to) -> link; from 0 is whoever uses process `to` (the
    /// clients; for the shop's stores and services, the services too).
    links: BTreeMap<(u64, u64), Link>,
    /// The Raft groups, by process number.
    groups: Vec<Vec<u64>>,
    rec: Recorder,
    /// Direct addresses, for finding a leader (not through the faults).
    direct: BTreeMap<u64, String>,
    /// `tartu`: leader number `groups.len()` is the executors' leader.
    executors: bool,
}

impl Cluster {
    fn proc<R>(&self, id: u64, f: impl FnOnce(&mut Proc) -> R) -> R {
        let mut g = self.procs.lock().unwrap();
        f(&mut g[id as usize - 1])
    }

    fn count(&self) -> u64 {
        self.procs.lock().unwrap().len() as u64
    }

    /// The process that leads group `g`'s highest term, as its nodes say.
    async fn leader(&self, g: usize) -> Option<u64> {
        if self.executors && g == self.groups.len() {
            // The state group (the second) holds the executors' lease.
            let state = self.groups[1]
                .iter()
                .enumerate()
                .map(|(i, p)| (i as u64 + 1, self.direct[p].clone()))
                .collect();
            return tartu::executor_leader(&state).await;
        }
        let group = self.groups.get(g)?;
        let local: BTreeMap<u64, String> = group
            .iter()
            .enumerate()
            .map(|(i, p)| (i as u64 + 1, self.direct[p].clone()))
            .collect();
        let mut c = KvClient::new(local, 1_000_001, ClientOptions::default());
        let mut best = None;
        for (i, &p) in group.iter().enumerate() {
            let status = tokio::time::timeout(Duration::from_millis(300), c.status(i as u64 + 1));
            if let Ok(Ok(s)) = status.await {
                if s.role.eq_ignore_ascii_case("leader") && best.is_none_or(|(t, _)| s.term > t) {
                    best = Some((s.term, p));
                }
            }
        }
        best.map(|(_, p)| p)
    }

    /// Stalls both directions of every link between `side` and the rest.
    fn partition(&self, side: &[u64]) {
        for (&(from, to), link) in &self.links {
            if from != 0 && side.contains(&from) != side.contains(&to) {
                link.update(|up, down| {
                    up.stalled = true;
                    down.stalled = true;
                });
            }
        }
    }

    /// What `a` sends does not reach `b`: requests on link a -> b, answers
    /// on link b -> a.
    fn one_way(&self, a: u64, b: u64) {
        if let Some(l) = self.links.get(&(a, b)) {
            l.update(|up, _| up.stalled = true);
        }
        if let Some(l) = self.links.get(&(b, a)) {
            l.update(|_, down| down.stalled = true);
        }
    }

    fn every_link(&self, f: impl Fn(&mut Faults)) {
        for link in self.links.values() {
            link.update(|up, down| {
                f(up);
                f(down);
            });
        }
    }

    fn heal_network(&self) {
        for link in self.links.values() {
            link.heal();
        }
    }

    fn restart(&self, id: u64, drift: i64) {
        let r = self.proc(id, |p| {
            if p.running() {
                return Ok(());
            }
            p.start(&["--clock-drift-ppm".into(), drift.to_string()])
        });
        if let Err(e) = r {
            self.rec.nemesis(
                "restart-failed",
                json!({"node": id, "error": e.to_string()}),
            );
        }
    }
}

/// Plays one fault: starts it, waits, ends it.
async fn play(c: &Cluster, id: usize, f: &Fault, drift: &[i64]) {
    let mut nodes = f.nodes.clone();
    if nodes.is_empty() && ["kill", "pause", "clock", "partition"].contains(&f.kind.as_str()) {
        let g = if f.kind == "clock" {
            f.value.unsigned_abs().saturating_sub(1)
        } else {
            f.value as u64
        } as usize;
        let first = c
            .groups
            .get(g)
            .and_then(|g| g.first().copied())
            .unwrap_or(tartu::FIRST_EXECUTOR);
        nodes = vec![c.leader(g).await.unwrap_or(first)];
    }
    // As the simulator's nemesis records faults (what the report reads):
    // `start` {id, fault: {kind, node | groups, ...}}, then `end` {id}.
    let fault = match f.kind.as_str() {
        "kill" => json!({"kind": "crash", "node": nodes[0], "signal": "SIGKILL"}),
        "pause" => json!({"kind": "pause", "node": nodes[0], "signal": "SIGSTOP"}),
        "clock" => json!({"kind": "clock", "node": nodes[0], "jump_ms": f.value.signum() * 2000}),
        "partition" => {
            let group = c.groups.get(f.value as usize).cloned().unwrap_or_default();
            let rest: Vec<u64> = group.into_iter().filter(|n| !nodes.contains(n)).collect();
            json!({"kind": "partition", "groups": [nodes, rest]})
        }
        "one-way" => json!({"kind": "one-way", "from": nodes[0], "to": nodes[1]}),
        "loss" => json!({"kind": "loss", "per_mille": f.value}),
        _ => json!({"kind": "latency", "ms": f.value, "jitter_ms": f.value / 2}),
    };
    c.rec.nemesis("start", json!({"id": id, "fault": fault}));
    match f.kind.as_str() {
        "kill" => c.proc(nodes[0], |p| p.kill()),
        "pause" => c.proc(nodes[0], |p| p.pause()),
        "clock" => {
            let sig = if f.value > 0 {
                libc::SIGUSR1
            } else {
                libc::SIGUSR2
            };
            if !c.proc(nodes[0], |p| p.signal(sig)) {
                c.rec
                    .nemesis("signal-failed", json!({"id": id, "node": nodes[0]}));
            }
        }
        "partition" => c.partition(&nodes),
        "one-way" => c.one_way(nodes[0], nodes[1]),
        "loss" => c.every_link(|x| x.loss = f.value as f64 / 1000.0),
        "latency" => c.every_link(|x| {
            x.delay_ms = f.value as u64;
            x.jitter_ms = f.value as u64 / 2;
        }),
        _ => {}
    }
    tokio::time::sleep(Duration::from_millis(f.dur_ms)).await;
    match f.kind.as_str() {
        "kill" => c.restart(nodes[0], drift[nodes[0] as usize - 1]),
        "pause" => c.proc(nodes[0], |p| p.resume()),
        "clock" => {}
        _ => c.heal_network(),
    }
    c.rec.nemesis("end", json!({"id": id}));
}

/// A run's outcome.
pub struct Outcome {
    pub failures: Vec<(&'static str, String)>,
    pub unknown: Option<String>,
    pub client_ops: usize,
    pub history: History,
}

/// Runs a whole `jepsen` run; its exit code: 0 valid, 1 a check failed,
/// 2 no verdict or the run could not be set up.
pub async fn main(o: Options) -> u8 {
    match run(&o).await {
        Ok(outcome) if !outcome.failures.is_empty() => 1,
        Ok(outcome) if outcome.unknown.is_some() => 2,
        Ok(_) => 0,
        Err(e) => {
            eprintln!("jepsen: {e}");
            2
        }
    }
}

fn io<T>(r: std::io::Result<T>, what: impl FnOnce() -> String) -> Result<T, String> {
    r.map_err(|e| format!("{}: {e}", what()))
}

/// The proxied links of a run, as (from, to): every directed link inside
/// a Raft group, and (0, p) for every process's link from its users
/// (executors listen nowhere).
fn links_of(s: &Schedule) -> Vec<(u64, u64)> {
    let tartu = s.workload == "tartu";
    let mut pairs: Vec<(u64, u64)> = (1..=s.procs())
        .filter(|&b| !tartu || b < tartu::FIRST_EXECUTOR)
        .map(|b| (0, b))
        .collect();
    for g in &s.groups() {
        for &a in g {
            for &b in g {
                if a != b {
                    pairs.push((a, b));
                }
            }
        }
    }
    pairs
}

/// That the run can listen on `addr` (127.0.0.1:N): N is a port, and
/// free. A node that cannot bind its port would otherwise show as a
/// liveness failure of the system (exit 1) rather than a run that could
/// not start (exit 2).
fn check_port(addr: &str, base: u16) -> Result<(), String> {
    let n: u64 = addr
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    if n > u16::MAX as u64 {
        return Err(format!(
            "--base-port {base} puts a process or proxy on port {n}, above 65535: use --base-port {} or lower",
            base as u64 - (n - u16::MAX as u64)
        ));
    }
    std::net::TcpListener::bind(addr).map(drop).map_err(|e| {
        format!("cannot listen on {addr} (another run on these ports? pass --base-port): {e}")
    })
}

/// The file that marks a folder as a jepsen output, which a run may empty.
const OUT_MARKER: &str = ".jepsen-out";

/// Empties and creates the output folder, refusing to empty one that is
/// not a jepsen output (a typo such as `--out .` would lose its files):
/// a new or empty folder, one with [`OUT_MARKER`], or one under
/// `target/jepsen/` (the default place) is fine.
fn prepare_out(out: &Path) -> Result<(), String> {
    if out.exists() && !out.is_dir() {
        return Err(format!("--out {}: a file, not a folder", out.display()));
    }
    if let Ok(mut entries) = std::fs::read_dir(out) {
        let comps: Vec<_> = out.components().map(|c| c.as_os_str().to_owned()).collect();
        let default_place = comps
            .windows(2)
            .any(|w| w[0] == "target" && w[1] == "jepsen");
        let ours = out.join(OUT_MARKER).exists() || default_place;
        if entries.next().is_some() && !ours {
            return Err(format!(
                "--out {}: the folder is not empty and is not a jepsen output (it has no {OUT_MARKER}), and a run empties its folder first: pass a new or empty folder",
                out.display()
            ));
        }
        io(std::fs::remove_dir_all(out), || {
            format!("cannot empty {}", out.display())
        })?;
    }
    io(std::fs::create_dir_all(out), || {
        format!("cannot create {}", out.display())
    })?;
    io(std::fs::write(out.join(OUT_MARKER), ""), || {
        format!("cannot write {}", out.join(OUT_MARKER).display())
    })
}

/// What a workload did: its liveness and convergence failures.
struct Ran {
    live: Vec<String>,
    diverged: Vec<String>,
}

pub async fn run(o: &Options) -> Result<Outcome, String> {
    if !["kv", "checkout", "tartu"].contains(&o.workload.as_str()) {
        return Err(format!(
            "unknown workload '{}': expected kv, checkout or tartu (see README.md, Jepsen mode)",
            o.workload
        ));
    }
    if !o.bookstore.is_file() {
        return Err(format!(
            "no bookstore binary at {}: build it with `cargo build --release -p bookstore -p sim` or pass --bookstore PATH",
            o.bookstore.display()
        ));
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&o.bookstore).map_or(0, |m| m.permissions().mode());
        if mode & 0o111 == 0 {
            return Err(format!(
                "{} is not executable: pass the bookstore binary with --bookstore PATH",
                o.bookstore.display()
            ));
        }
    }
    let s = draw(o);
    // Before anything is touched: every port the run listens on.
    let ports = Ports(o.base_port);
    let mut addrs: Vec<String> = (1..=s.procs())
        .filter(|&b| s.workload != "tartu" || b < tartu::FIRST_EXECUTOR)
        .map(|b| ports.node(b))
        .collect();
    addrs.extend(links_of(&s).iter().map(|&(a, b)| {
        if a == 0 {
            ports.client(b)
        } else {
            ports.link(a, b)
        }
    }));
    for a in &addrs {
        check_port(a, o.base_port)?;
    }
    prepare_out(&o.out)?;
    io(
        std::fs::write(
            o.out.join("schedule.json"),
            serde_json::to_string_pretty(&s).unwrap(),
        ),
        || "cannot write schedule.json".into(),
    )?;
    let shop = s.workload == "checkout";
    let tartu = s.workload == "tartu";
    let groups = s.groups();
    let procs_n = s.procs();
    let what = if tartu {
        format!(
            "3 store groups of 3 (books, state, payment), 2 replicas of each of 5 services, 3 executors, {} clients and a librarian",
            s.clients
        )
    } else if shop {
        format!(
            "3 store groups of 3 and 2 replicas of each service, checkout mode {}, workload {}",
            s.mode.as_deref().unwrap_or("saga"),
            s.shop_workload.as_deref().unwrap_or("consistency")
        )
    } else {
        format!(
            "{} nodes, {} clients on {} keys",
            s.nodes, s.clients, s.keys
        )
    };
    println!(
        "jepsen {} seed {}: {what}, {} s, faults {}{}; {} faults drawn",
        s.workload,
        s.seed,
        o.seconds,
        if o.faults.is_empty() {
            "none".to_string()
        } else {
            o.faults.join(",")
        },
        s.bug
            .as_ref()
            .map(|b| format!(", bug {b}"))
            .unwrap_or_default(),
        s.faults.len()
    );

    // Proxies: every directed link inside a Raft group, and every
    // process's link from its users.
    let mut links = BTreeMap::new();
    for (a, b) in links_of(&s) {
        let (listen, name) = if a == 0 {
            (ports.client(b), format!("users->p{b}"))
        } else {
            (ports.link(a, b), format!("p{a}->p{b}"))
        };
        let link = io(
            Link::start(name, &listen, ports.node(b), s.seed ^ (a * 100 + b)).await,
            || format!("cannot listen on {listen} (another run on these ports? pass --base-port)"),
        )?;
        links.insert((a, b), link);
    }

    // Processes.
    let data = o.out.join("data");
    let names = ["stock", "payment", "orders"];
    let local = |g: &Vec<u64>, p: u64| g.iter().position(|&x| x == p).unwrap() as u64 + 1;
    // What the shop's services and the clients use: everything through
    // the users' proxies.
    let topology = bookstore::shop::Topology {
        stock_kv: groups[0]
            .iter()
            .map(|&p| (local(&groups[0], p), ports.client(p)))
            .collect(),
        payment_kv: groups.get(1).map_or_else(BTreeMap::new, |g| {
            g.iter().map(|&p| (local(g, p), ports.client(p))).collect()
        }),
        order_kv: groups.get(2).map_or_else(BTreeMap::new, |g| {
            g.iter().map(|&p| (local(g, p), ports.client(p))).collect()
        }),
        stock: vec![ports.client(10), ports.client(11)],
        payment: vec![ports.client(12), ports.client(13)],
        orders: vec![ports.client(14), ports.client(15)],
    };
    let tartu_topology = tartu::topology(&ports);
    let topology_file = o.out.join("topology.json");
    if shop || tartu {
        let json = if tartu {
            serde_json::to_string_pretty(&tartu_topology)
        } else {
            serde_json::to_string_pretty(&topology)
        };
        io(std::fs::write(&topology_file, json.unwrap()), || {
            "cannot write topology.json".into()
        })?;
    }
    let mut procs = Vec::new();
    for i in 1..=procs_n {
        let mut args: Vec<String> = Vec::new();
        if let Some((gi, g)) = groups.iter().enumerate().find(|(_, g)| g.contains(&i)) {
            let id = local(g, i);
            args.extend(["node".into(), "--id".into(), id.to_string()]);
            if shop {
                args.extend(["--group".into(), names[gi].into()]);
            } else {
                args.extend(["--nodes".into(), g.len().to_string()]);
            }
            let dir = if tartu {
                data.join(tartu::GROUP_NAMES[gi])
            } else {
                data.clone()
            };
            args.extend([
                "--data-dir".into(),
                dir.display().to_string(),
                "--events".into(),
                o.out
                    .join(format!("n{i}.events.jsonl"))
                    .display()
                    .to_string(),
                "--snapshot-every".into(),
                o.snapshot_every.to_string(),
            ]);
            for &j in g {
                let addr = if j == i {
                    ports.node(i)
                } else {
                    ports.link(i, j)
                };
                args.push("--peer".into());
                args.push(format!("{}={addr}", local(g, j)));
            }
        } else if tartu {
            let (what, r) = tartu::role(i);
            args.extend([
                "tartu-proc".into(),
                what.into(),
                "--replica".into(),
                r.to_string(),
                "--topology".into(),
                topology_file.display().to_string(),
                "--data-dir".into(),
                data.display().to_string(),
            ]);
            if i < tartu::FIRST_EXECUTOR {
                args.extend(["--listen".into(), ports.node(i)]);
            }
            if tartu::participant(i) {
                let f = o.out.join(format!("s{i}.effects.jsonl"));
                args.extend(["--effects".into(), f.display().to_string()]);
            }
        } else {
            // A service replica: 10-11 stock, 12-13 payment, 14-15 orders.
            let k = i - 10;
            args.extend([
                "service".into(),
                names[(k / 2) as usize].into(),
                "--replica".into(),
                (k % 2 + 1).to_string(),
                "--topology".into(),
                topology_file.display().to_string(),
                "--listen".into(),
                ports.node(i),
                "--mode".into(),
                s.mode.clone().unwrap_or_else(|| "saga".into()),
            ]);
        }
        if let Some(b) = &s.bug {
            args.push("--bug".into());
            args.push(b.clone());
        }
        let name = if i <= 9 || !(shop || tartu) {
            format!("n{i}")
        } else {
            format!("s{i}")
        };
        procs.push(Proc::new(
            i,
            o.bookstore.clone(),
            args,
            o.out.join(format!("{name}.log")),
        ));
    }
    let rec = Recorder::new();
    let wall0 = wall_ns();
    let cluster = Arc::new(Cluster {
        procs: Mutex::new(procs),
        links,
        groups: groups.clone(),
        rec: rec.clone(),
        direct: (1..=procs_n).map(|i| (i, ports.node(i))).collect(),
        executors: tartu,
    });
    for i in 1..=procs_n {
        cluster.restart(i, s.drift_ppm[i as usize - 1]);
    }

    // A leader in every group first, so the run's time goes to the workload.
    let started = Instant::now();
    for g in 0..groups.len() {
        while cluster.leader(g).await.is_none() {
            if started.elapsed() > Duration::from_secs(20) {
                return Err(format!(
                    "no leader within 20 s of starting the nodes; see {}/n*.log",
                    o.out.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    let start = Instant::now();
    let ran = if tartu {
        tartu::run(o, &s, &cluster, &tartu_topology, &rec, start).await
    } else if shop {
        run_checkout(o, &s, &cluster, &topology, &rec, start).await
    } else {
        run_kv(o, &s, &cluster, &ports, &rec, start).await
    };
    let Ran { live, diverged } = ran?;
    let elapsed = start.elapsed();
    for i in 1..=procs_n {
        cluster.proc(i, |p| p.stop());
    }

    // The history: client operations, nemesis, and the nodes' events on
    // the same time line; the Raft checks over each group's events in
    // time order.
    let mut ops = rec.take_history().ops;
    let nodes_with_events: Vec<u64> = groups.iter().flatten().copied().collect();
    let events = read_events(&o.out, &nodes_with_events, wall0);
    let mut rafts: Vec<RaftChecker> = vec![RaftChecker::default(); groups.len()];
    for (time, node, ev) in &events {
        let gi = groups.iter().position(|g| g.contains(node)).unwrap_or(0);
        // The checker sees the node's number in its group.
        rafts[gi].observe(local(&groups[gi], *node), ev);
        let (f, value) = ev.to_json();
        ops.push(Op {
            index: 0,
            process: Process::Named(format!("n{node}")),
            kind: OpType::Info,
            f: f.into(),
            key: None,
            value,
            time: Some(*time),
            extra: Default::default(),
        });
    }
    ops.sort_by_key(|op| op.time.unwrap_or(0));
    for (i, op) in ops.iter_mut().enumerate() {
        op.index = i;
    }
    let history = History::new(ops);
    let client_ops = history
        .ops
        .iter()
        .filter(|o| matches!(o.process, Process::Client(_)) && o.kind == OpType::Invoke)
        .count();

    let check_started = Instant::now();
    let mut failures: Vec<(&'static str, String)> = Vec::new();
    for (gi, r) in rafts.iter().enumerate() {
        for v in &r.violations {
            let v = if tartu {
                format!("{} group: {v}", tartu::GROUP_NAMES[gi])
            } else if shop {
                format!("{} group: {v}", names[gi])
            } else {
                v.clone()
            };
            failures.push(("raft", v));
        }
    }
    let mut unknown = None;
    let title = format!(
        "jepsen {} seed {}{}",
        s.workload,
        s.seed,
        o.bug
            .as_deref()
            .map_or(String::new(), |b| format!(" bug {b}"))
    );
    let verdict;
    let page = if tartu {
        let (f, summary) = tartu::check(&history, &o.out, wall0);
        verdict = format!(
            "2pc, conservation, vclock and mutual exclusion {} ({summary})",
            if f.is_empty() { "ok" } else { "FAILED" }
        );
        failures.extend(f);
        String::new()
    } else if shop {
        let inv = shopcheck::invariants::check_checkout(&history);
        use shopcheck::invariants::Verdict;
        verdict = format!(
            "checkout invariants {}",
            match inv.verdict {
                Verdict::Valid => "ok",
                Verdict::Invalid => "FAILED",
                Verdict::BadInput => "not checkable",
            }
        );
        match inv.verdict {
            Verdict::Valid => {}
            Verdict::Invalid => {
                for v in inv.violations.iter().take(10) {
                    failures.push(("invariants", format!("{}: {}", v.kind.name(), v.message)));
                }
            }
            Verdict::BadInput => {
                unknown = Some(format!(
                    "history not checkable: {}",
                    inv.error.clone().unwrap_or_default()
                ));
            }
        }
        shopcheck::invariants_html(&history, &inv, &title)
    } else {
        let lin = checker::linear::check(
            &history,
            checker::model::ModelKind::Kv,
            &checker::linear::Options {
                timeout: Some(Duration::from_secs(300)),
                threads: 0,
                initial: Value::Null,
                ..Default::default()
            },
        );
        verdict = format!(
            "linearizability {}",
            match lin.verdict {
                checker::Verdict::Linearizable => "ok",
                checker::Verdict::NotLinearizable => "FAILED",
                checker::Verdict::Unknown => "unknown",
            }
        );
        match lin.verdict {
            checker::Verdict::Linearizable => {}
            checker::Verdict::NotLinearizable => failures.push((
                "linearizability",
                lin.explanation
                    .clone()
                    .unwrap_or_else(|| "not linearizable".into()),
            )),
            checker::Verdict::Unknown => {
                unknown = Some(lin.unknown_reason.clone().unwrap_or_default());
            }
        }
        checker::report::html(&history, &lin, &title)
    };
    for d in diverged {
        failures.push(("convergence", d));
    }
    for l in live {
        failures.push(("liveness", l));
    }
    let page = if tartu {
        let shown: Vec<(&str, &str)> = failures.iter().map(|(c, m)| (*c, m.as_str())).collect();
        crate::tartuload::report_page(&shown, &history, &title)
    } else {
        page
    };

    // What it wrote, and the verdict.
    let shown: Vec<(&str, &str)> = failures.iter().map(|(c, m)| (*c, m.as_str())).collect();
    let group_refs: Vec<&[u64]> = groups.iter().map(|g| g.as_slice()).collect();
    let page = crate::explain::above_groups(
        page,
        &history,
        &shown,
        if shop || tartu { &group_refs } else { &[] },
    );
    // The verdict on top, as the simulator's reports have it (none when
    // there is no verdict).
    let page = if unknown.is_some() && failures.is_empty() {
        page
    } else {
        harness::report::with_verdict(&page, &shown, !shop && !tartu)
    };
    io(
        std::fs::write(o.out.join("history.jsonl"), history.to_jsonl()),
        || "cannot write history.jsonl".into(),
    )?;
    io(std::fs::write(o.out.join("report.html"), page), || {
        "cannot write report.html".into()
    })?;
    let count = |kind: OpType| {
        history
            .ops
            .iter()
            .filter(|o| matches!(o.process, Process::Client(_)) && o.kind == kind)
            .count()
    };
    println!(
        "{client_ops} client operations in {:.1} s ({} ok, {} certainly not done, {} of unknown outcome); {}; {} node events checked",
        elapsed.as_secs_f64(),
        count(OpType::Ok),
        count(OpType::Fail),
        count(OpType::Info),
        played(&history),
        events.len()
    );
    println!(
        "checked in {:.1} s: {verdict}, raft {}, convergence and liveness {}",
        check_started.elapsed().as_secs_f64(),
        if rafts.iter().all(|r| r.violations.is_empty()) {
            "ok"
        } else {
            "FAILED"
        },
        if failures
            .iter()
            .any(|(c, _)| *c == "convergence" || *c == "liveness")
        {
            "FAILED"
        } else {
            "ok"
        },
    );
    for (c, m) in &failures {
        println!("FAILED {c}: {m}");
    }
    if let Some(u) = &unknown {
        println!("UNKNOWN: no verdict: {u}");
    }
    println!(
        "wrote {}/{{history.jsonl,report.html,schedule.json,*.log,n*.events.jsonl}}",
        o.out.display()
    );
    if !failures.is_empty() || unknown.is_some() {
        println!(
            "report: {} (open it in a browser)",
            o.out.join("report.html").display()
        );
        let history = o.out.join("history.jsonl");
        let h = harness::sh_quote(&history.display().to_string());
        if shop {
            println!("check again: cargo run --release -p shopcheck -- {h} --report checkout.html");
        } else if !tartu {
            println!("check again: cargo run --release -p checker -- check {h} --report kv.html");
        }
    }
    println!(
        "{}",
        if !failures.is_empty() {
            "INVALID"
        } else if unknown.is_some() {
            "UNKNOWN"
        } else {
            "VALID"
        }
    );
    Ok(Outcome {
        failures,
        unknown,
        client_ops,
        history,
    })
}

/// The faults the history shows started, by kind as the schedule names
/// them, and those a signal or restart failed for.
fn played(h: &History) -> String {
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut failed = 0;
    for op in &h.ops {
        if !matches!(&op.process, Process::Named(n) if n == "nemesis") {
            continue;
        }
        match op.f.as_str() {
            "start" => {
                let k = match op.value["fault"]["kind"].as_str().unwrap_or("?") {
                    "crash" => "kill",
                    k => k,
                };
                *kinds.entry(k.to_string()).or_default() += 1;
            }
            "signal-failed" | "restart-failed" => failed += 1,
            _ => {}
        }
    }
    let n: usize = kinds.values().sum();
    let each: Vec<String> = kinds.iter().map(|(k, c)| format!("{c} {k}")).collect();
    let mut out = if n == 0 {
        "no fault played".to_string()
    } else {
        format!(
            "{n} {} played: {}",
            if n == 1 { "fault" } else { "faults" },
            each.join(", ")
        )
    };
    if failed > 0 {
        out += &format!(" ({failed} of them failed to signal or restart a process: see the history's nemesis events)");
    }
    out
}

/// Plays the schedule: one task per lane (processes; network), each
/// playing its faults one after another (a fault that starts late, after
/// a slow leader lookup, still never overlaps the next of its lane).
fn nemesis(
    s: &Schedule,
    cluster: &Arc<Cluster>,
    start: Instant,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut lanes = Vec::new();
    for lane in [&KINDS[..3], &KINDS[3..]] {
        let faults: Vec<(usize, Fault)> = s
            .faults
            .iter()
            .cloned()
            .enumerate()
            .filter(|(_, f)| lane.contains(&f.kind.as_str()))
            .collect();
        let (c, drift) = (cluster.clone(), s.drift_ppm.clone());
        lanes.push(tokio::spawn(async move {
            for (id, f) in faults {
                tokio::time::sleep_until(start + Duration::from_millis(f.at_ms)).await;
                play(&c, id, &f, &drift).await;
            }
        }));
    }
    lanes
}

/// Plays the schedule while the clients run, waits for both, then heals
/// everything; returns the processes that died on their own. A client
/// task that panicked makes the run no test at all (its operations
/// stopped, and a history without them could pass): an error, exit 2.
async fn play_then_heal(
    s: &Schedule,
    cluster: &Arc<Cluster>,
    rec: &Recorder,
    start: Instant,
    clients: Vec<tokio::task::JoinHandle<()>>,
) -> Result<Vec<String>, String> {
    let lanes = nemesis(s, cluster, start);
    let progress = progress(rec, start);
    for l in lanes {
        let _ = l.await;
    }
    let mut panicked = None;
    for (i, c) in clients.into_iter().enumerate() {
        if let Err(e) = c.await {
            if e.is_panic() && panicked.is_none() {
                let p = e.into_panic();
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|m| m.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                panicked = Some(format!("client task {i} panicked: {msg}"));
            }
        }
    }
    progress.abort();
    let died = heal(s, cluster, rec);
    match panicked {
        Some(p) => Err(format!("{p}; no verdict: the run's workload did not run")),
        None => Ok(died),
    }
}

/// Prints how many operations completed, every 10 s.
fn progress(rec: &Recorder, start: Instant) -> tokio::task::JoinHandle<()> {
    let rec = rec.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let h = rec.history();
            let done = h
                .ops
                .iter()
                .filter(|o| matches!(o.process, Process::Client(_)) && o.kind != OpType::Invoke)
                .count();
            println!(
                "  {:>3} s: {done} operations completed",
                start.elapsed().as_secs()
            );
        }
    })
}

/// Heals everything: links, paused processes, dead ones restarted (those
/// that died on their own are reported).
fn heal(s: &Schedule, cluster: &Cluster, rec: &Recorder) -> Vec<String> {
    cluster.heal_network();
    let mut died = Vec::new();
    for i in 1..=cluster.count() {
        cluster.proc(i, |p| p.resume());
        if let Some(status) = cluster.proc(i, |p| p.exited()) {
            died.push(format!(
                "process {i} exited on its own ({status}); see its log"
            ));
        }
        cluster.restart(i, s.drift_ppm[i as usize - 1]);
    }
    rec.nemesis("heal-all", Value::Null);
    died
}

/// The kv workload: the simulator's clients, then liveness and convergence.
async fn run_kv(
    o: &Options,
    s: &Schedule,
    cluster: &Arc<Cluster>,
    ports: &Ports,
    rec: &Recorder,
    start: Instant,
) -> Result<Ran, String> {
    let client_peers: BTreeMap<u64, String> = (1..=s.nodes).map(|b| (b, ports.client(b))).collect();
    let stop_at = start + Duration::from_millis(s.duration_ms);
    let mut clients = Vec::new();
    let opts = ClientOptions {
        pipeline: s.pipeline,
        ..workload::client_options()
    };
    // Client ids from 1; this one (id 0) only holds the connections the
    // clients share when they pipeline (otherwise each makes its own).
    let mut base = KvClient::new(client_peers.clone(), 0, opts);
    if s.pipeline {
        base.connect_all().map_err(|e| e.to_string())?;
    }
    for p in 0..s.clients {
        let client = base.sibling(p + 1);
        let w = Workload {
            keys: s.keys,
            max_ops: u64::MAX,
            pacing: Pacing {
                think_ms: o.think_ms,
                busy: Vec::new(),
            },
            start,
            stop_at,
            seed: s.seed,
        };
        clients.push(tokio::spawn(workload::client_loop(
            p,
            client,
            rec.clone(),
            w,
        )));
    }
    let died = play_then_heal(s, cluster, rec, start, clients).await?;
    let p = s.clients;
    let mut client = KvClient::new(
        client_peers.clone(),
        p + 1,
        ClientOptions {
            total_timeout: workload::LIVENESS_BOUND,
            ..workload::client_options()
        },
    );
    let mut live = workload::liveness(p, &mut client, rec, s.keys, s.nodes).await;
    let diverged = crate::replicas::compare_and_record(
        "kv",
        &mut client,
        s.nodes,
        Duration::from_secs(5),
        rec,
    )
    .await;
    live.extend(died);
    Ok(Ran { live, diverged })
}

/// The checkout workload: the simulator's setup, clients and final read.
/// `consistency`: one item with stock 100, 1000 users with credit 1, 1000
/// one-item orders checked out by 32 clients, each pausing so that the
/// checkouts spread over the run; `mix`: 8 clients doing random operations
/// of every kind until the run's end.
async fn run_checkout(
    o: &Options,
    s: &Schedule,
    cluster: &Arc<Cluster>,
    t: &bookstore::shop::Topology,
    rec: &Recorder,
    start: Instant,
) -> Result<Ran, String> {
    use crate::shopload;
    let shop = shopload::Shop::new(t);
    let w = s
        .shop_workload
        .clone()
        .unwrap_or_else(|| "consistency".into());
    let setup = tokio::time::timeout(Duration::from_secs(60), async {
        shopload::setup(&shop, t, &w, s.seed).await;
        shopload::read_state(t, 1 << 40).await
    });
    let init = match setup.await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return Err(format!("setup: could not read the initial state: {e}")),
        Err(_) => return Err("setup did not finish within 60 s".into()),
    };
    rec.named("setup", "init", init.clone());
    let start = start.max(Instant::now());
    let stop_at = start + Duration::from_millis(s.duration_ms);
    let n_orders = init["orders"].as_object().map_or(0, |o| o.len()) as u64;
    let clients_n: u64 = if w == "consistency" { 32 } else { 8 };
    let mut clients = Vec::new();
    for p in 0..clients_n {
        let (shop, rec, w, init, seed) =
            (shop.clone(), rec.clone(), w.clone(), init.clone(), s.seed);
        let (duration_ms, think_ms) = (s.duration_ms, o.think_ms);
        clients.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(131).wrapping_add(p));
            if w == "consistency" {
                // Client p checks out orders p, p + C, p + 2C, ..., all of
                // them, spread over the run.
                let mean = duration_ms * clients_n / n_orders.max(1);
                let mut o = p;
                while o < n_orders {
                    shopload::checkout(&shop, &rec, p, &o.to_string()).await;
                    o += clients_n;
                    let pause = rng.random_range(0..=2 * mean);
                    if Instant::now() + Duration::from_millis(pause) < stop_at {
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                }
            } else {
                while Instant::now() < stop_at {
                    shopload::mix_op(&shop, &rec, p, &init, &mut rng).await;
                    if think_ms > 0 {
                        let pause = rng.random_range(0..=2 * think_ms);
                        pause_until(pause, stop_at).await;
                    }
                }
            }
        }));
    }
    let died = play_then_heal(s, cluster, rec, start, clients).await?;
    let (fin, mut live, diverged) = shopload::after_heal(&shop, t).await;
    match fin {
        Ok(v) => rec.named("final", "final", v),
        Err(e) => live.push(format!("could not read the final state after healing: {e}")),
    }
    live.extend(died);
    Ok(Ran { live, diverged })
}

/// A client's think pause, cut short at the end of the run: a long pause
/// drawn near the end must not keep the run going past `--seconds`.
pub(crate) async fn pause_until(pause_ms: u64, stop_at: Instant) {
    let end = Instant::now() + Duration::from_millis(pause_ms);
    tokio::time::sleep_until(end.min(stop_at)).await;
}

/// CLOCK_MONOTONIC in ns: what `bookstore node --events` stamps events
/// with (shared by every process of the machine, never stepped).
fn wall_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The events of processes `nodes`, as (ns since the recorder started,
/// process, event), in time order; lines a kill cut short are skipped.
fn read_events(dir: &Path, nodes: &[u64], wall0: u64) -> Vec<(u64, u64, NodeEvent)> {
    let mut out = Vec::new();
    for &i in nodes {
        let Ok(text) = std::fs::read_to_string(dir.join(format!("n{i}.events.jsonl"))) else {
            continue;
        };
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let (Some(t), Some(f), Some(value)) = (
                v.get("time_ns").and_then(Value::as_u64),
                v.get("f").and_then(Value::as_str),
                v.get("value"),
            ) else {
                continue;
            };
            if let Some(ev) = NodeEvent::from_json(f, value) {
                out.push((t.saturating_sub(wall0), i, ev));
            }
        }
    }
    // Stable: one node's events keep their order at equal times.
    out.sort_by_key(|(t, _, _)| *t);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A think pause ends at the end of the run, however long it was drawn.
    #[test]
    fn a_think_pause_ends_with_the_run() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let stop_at = Instant::now() + Duration::from_millis(20);
            let cut = tokio::time::timeout(Duration::from_secs(5), pause_until(60_000, stop_at));
            assert!(cut.await.is_ok(), "a 60 s pause outlasted the run");
            assert!(Instant::now() >= stop_at);
            // A short one is not stretched to the end.
            let stop_at = Instant::now() + Duration::from_secs(60);
            let short = tokio::time::timeout(Duration::from_secs(5), pause_until(10, stop_at));
            assert!(short.await.is_ok());
        });
    }

    #[test]
    fn out_is_emptied_only_when_it_is_a_jepsen_output() {
        let d = std::env::temp_dir().join(format!("jepsen-out-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        // A folder of the user's: refused, and left as it was.
        let mine = d.join("mine");
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::write(mine.join("thesis.txt"), "x").unwrap();
        let e = prepare_out(&mine).unwrap_err();
        assert!(e.contains("not a jepsen output"), "{e}");
        assert!(mine.join("thesis.txt").exists());
        // New, empty, or a jepsen output (marked): emptied and marked.
        for out in [d.join("new/deeper"), d.join("empty")] {
            let _ = std::fs::create_dir_all(d.join("empty"));
            prepare_out(&out).unwrap();
            assert!(out.join(OUT_MARKER).exists());
            std::fs::write(out.join("history.jsonl"), "x").unwrap();
            prepare_out(&out).unwrap();
            assert!(!out.join("history.jsonl").exists());
        }
        let file = d.join("afile");
        std::fs::write(&file, "x").unwrap();
        assert!(prepare_out(&file)
            .unwrap_err()
            .contains("a file, not a folder"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn ports_are_in_range_and_free_before_a_run() {
        let e = check_port("127.0.0.1:66022", 65000).unwrap_err();
        assert!(
            e.contains("port 66022, above 65535: use --base-port 64513 or lower"),
            "{e}"
        );
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap().to_string();
        assert!(check_port(&addr, 1)
            .unwrap_err()
            .contains("cannot listen on"));
        drop(held);
        assert_eq!(check_port(&addr, 1), Ok(()));
    }

    fn opts(seed: u64, faults: &[&str]) -> Options {
        Options {
            workload: "kv".into(),
            seed,
            seconds: 60,
            nodes: 3,
            clients: 5,
            keys: 3,
            think_ms: 10,
            faults: faults.iter().map(|s| s.to_string()).collect(),
            bug: None,
            base_port: 27000,
            out: PathBuf::from("/nonexistent"),
            bookstore: PathBuf::from("/nonexistent"),
            snapshot_every: 100,
            mode: None,
            shop_workload: None,
            pipeline: false,
        }
    }

    #[test]
    fn a_seed_draws_its_schedule_again_and_every_kind_appears() {
        let a = draw(&opts(4, &KINDS));
        assert_eq!(a, draw(&opts(4, &KINDS)));
        assert_ne!(a, draw(&opts(5, &KINDS)));
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..20 {
            let s = draw(&opts(seed, &KINDS));
            for f in &s.faults {
                assert!(f.at_ms + f.dur_ms <= s.duration_ms, "{f:?}");
                seen.insert(f.kind.clone());
            }
            assert!(s.drift_ppm.iter().all(|d| d.abs() <= 20_000));
        }
        assert_eq!(seen.len(), KINDS.len(), "{seen:?}");
        // The shop: 15 processes, network faults inside one store group.
        let mut shop = opts(4, &KINDS);
        shop.workload = "checkout".into();
        for seed in 0..20 {
            shop.seed = seed;
            let s = draw(&shop);
            assert_eq!((s.procs(), s.drift_ppm.len()), (SHOP_PROCS, 15));
            assert!(["saga", "2pc"].contains(&s.mode.as_deref().unwrap()));
            let groups = s.groups();
            for f in &s.faults {
                assert!(f.nodes.iter().all(|&n| (1..=15).contains(&n)), "{f:?}");
                if f.kind == "partition" || f.kind == "one-way" {
                    let g = &groups[f.value as usize];
                    assert!(f.nodes.iter().all(|n| g.contains(n)), "{f:?} outside {g:?}");
                }
            }
        }
        shop.mode = Some("2pc".into());
        assert_eq!(draw(&shop).mode.as_deref(), Some("2pc"));
        // The Tartu bookstore: 22 processes, every one a target; some
        // faults aimed at the executors' leader (one past the groups).
        let mut t = opts(4, &KINDS);
        t.workload = "tartu".into();
        let (mut targets, mut at_executors) = (std::collections::BTreeSet::new(), 0);
        for seed in 0..40 {
            t.seed = seed;
            let s = draw(&t);
            assert_eq!(
                (s.procs(), s.drift_ppm.len(), s.groups().len()),
                (22, 22, 3)
            );
            for f in &s.faults {
                targets.extend(f.nodes.iter().copied());
                match f.kind.as_str() {
                    "kill" | "pause" if f.nodes.is_empty() && f.value == 3 => at_executors += 1,
                    "clock" if f.nodes.is_empty() && f.value.abs() == 4 => at_executors += 1,
                    "partition" | "one-way" => assert!(f.value < 3, "{f:?}"),
                    _ => {}
                }
            }
        }
        assert_eq!(targets, (1..=22).collect(), "every process a target");
        assert!(
            at_executors >= 20,
            "{at_executors} faults at the executors' leader"
        );
        let only = draw(&opts(4, &["kill"]));
        assert!(only.faults.iter().all(|f| f.kind == "kill"));
        assert!(only.drift_ppm.iter().all(|d| *d == 0));
    }
}
