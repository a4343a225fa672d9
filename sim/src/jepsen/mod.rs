//! Jepsen mode: the simulator's `kv` workload and checks against real
//! `bookstore node` processes on loopback, which this runner starts itself,
//! with a fault schedule drawn from a seed and played in real time.
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
//! The clients are the `kv` scenario's ([`crate::workload`]), recording the
//! history with real timestamps; each node appends its Raft events to a
//! file (`bookstore node --events`). After the faults everything heals and
//! the run checks, as the simulator does: linearizability of the history
//! (checker's `kv` model), the Raft invariants over the merged node events
//! ([`crate::checks::RaftChecker`]), liveness after healing and replica
//! convergence. It writes `history.jsonl` (node events included),
//! `schedule.json`, `report.html` and the nodes' logs to its output folder,
//! and exits 0 (valid), 1 (a check failed) or 2 (no verdict, or the run
//! could not be set up), like `checker`.

pub mod procs;
pub mod proxy;

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
use std::time::{Duration, SystemTime, UNIX_EPOCH};
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
}

/// One fault of the schedule: from `at_ms` for `dur_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    pub at_ms: u64,
    pub dur_ms: u64,
    pub kind: String,
    /// kill, pause, clock: the node; partition: one side; one-way: [from,
    /// to]. Empty for kill, pause, clock and partition: whoever leads when
    /// the fault starts (or node 1 if nobody does).
    pub nodes: Vec<u64>,
    /// clock: +1 forward, -1 back; loss: per mille; latency: ms.
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
    /// Each node's clock drift at each start, in ppm (0 without `clock`).
    pub drift_ppm: Vec<i64>,
    pub faults: Vec<Fault>,
}

/// Draws the fault schedule: two lanes, processes (kill, pause, clock)
/// and network (partition, one-way, loss, latency), each a sequence of
/// faults of 1-6 s with 0.5-4 s between them.
pub fn draw(o: &Options) -> Schedule {
    let mut rng = ChaCha8Rng::seed_from_u64(o.seed ^ 0x1e95_e400);
    let on = |k: &str| o.faults.iter().any(|f| f == k);
    let duration_ms = o.seconds * 1000;
    let drift_ppm = (0..o.nodes)
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
            let node = rng.random_range(1..=o.nodes);
            let mut dur = rng.random_range(1_000..6_000).min(duration_ms - t);
            let (nodes, value) = match kind {
                // Half the time whoever leads when the fault starts.
                "kill" | "pause" if rng.random_bool(0.5) => (Vec::new(), 0),
                "kill" | "pause" => (vec![node], 0),
                "clock" => {
                    dur = 0;
                    let side = if rng.random_bool(0.5) { 1 } else { -1 };
                    let who = if rng.random_bool(0.5) {
                        Vec::new()
                    } else {
                        vec![node]
                    };
                    (who, side)
                }
                "partition" => {
                    // Half the time the leader's side, found when it starts.
                    if rng.random_bool(0.5) {
                        (Vec::new(), 0)
                    } else {
                        let size = rng.random_range(1..=(o.nodes - 1) / 2);
                        let mut side: Vec<u64> = (1..=o.nodes).collect();
                        while side.len() as u64 > size {
                            side.remove(rng.random_range(0..side.len()));
                        }
                        (side, 0)
                    }
                }
                "one-way" => {
                    let mut to = rng.random_range(1..=o.nodes);
                    while to == node {
                        to = rng.random_range(1..=o.nodes);
                    }
                    (vec![node, to], 0)
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
    Schedule {
        workload: o.workload.clone(),
        seed: o.seed,
        bug: o.bug.clone(),
        nodes: o.nodes,
        clients: o.clients,
        keys: o.keys,
        duration_ms,
        drift_ppm,
        faults,
    }
}

/// The ports: node i on base+i, link a -> b on base+100+10a+b, the
/// clients' proxy of node b on base+200+b.
struct Ports(u16);

impl Ports {
    fn node(&self, i: u64) -> String {
        format!("127.0.0.1:{}", self.0 as u64 + i)
    }
    fn link(&self, a: u64, b: u64) -> String {
        format!("127.0.0.1:{}", self.0 as u64 + 100 + 10 * a + b)
    }
    fn client(&self, b: u64) -> String {
        format!("127.0.0.1:{}", self.0 as u64 + 200 + b)
    }
}

/// The cluster under test: its processes and every link's proxy.
struct Cluster {
    procs: Mutex<Vec<Proc>>,
    /// (from, to) -> link; from 0 is the clients.
    links: BTreeMap<(u64, u64), Link>,
    nodes: u64,
    rec: Recorder,
    /// Direct addresses, for finding the leader (not through the faults).
    direct: BTreeMap<u64, String>,
}

impl Cluster {
    fn proc<R>(&self, id: u64, f: impl FnOnce(&mut Proc) -> R) -> R {
        let mut g = self.procs.lock().unwrap();
        f(&mut g[id as usize - 1])
    }

    /// The node that leads the highest term, as the nodes say.
    async fn leader(&self) -> Option<u64> {
        let mut c = KvClient::new(self.direct.clone(), 1_000_001, ClientOptions::default());
        let mut best = None;
        for id in 1..=self.nodes {
            if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(300), c.status(id)).await
            {
                if s.role.eq_ignore_ascii_case("leader") && best.is_none_or(|(t, _)| s.term > t) {
                    best = Some((s.term, id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    /// Stalls both directions of every link between `a` and `b` sides.
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
        self.links[&(a, b)].update(|up, _| up.stalled = true);
        self.links[&(b, a)].update(|_, down| down.stalled = true);
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
        nodes = vec![c.leader().await.unwrap_or(1)];
    }
    // As the simulator's nemesis records faults (what the report reads):
    // `start` {id, fault: {kind, node | groups, ...}}, then `end` {id}.
    let fault = match f.kind.as_str() {
        "kill" => json!({"kind": "crash", "node": nodes[0], "signal": "SIGKILL"}),
        "pause" => json!({"kind": "pause", "node": nodes[0], "signal": "SIGSTOP"}),
        "clock" => json!({"kind": "clock", "node": nodes[0], "jump_ms": f.value * 2000}),
        "partition" => {
            let rest: Vec<u64> = (1..=c.nodes).filter(|n| !nodes.contains(n)).collect();
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
        "clock" => c.proc(nodes[0], |p| {
            p.signal(if f.value > 0 { "USR1" } else { "USR2" })
        }),
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

pub async fn run(o: &Options) -> Result<Outcome, String> {
    if o.workload != "kv" {
        return Err(format!(
            "unknown workload '{}': this runner has `kv` (see README.md, Jepsen mode)",
            o.workload
        ));
    }
    if !o.bookstore.is_file() {
        return Err(format!(
            "no bookstore binary at {}: build it with `cargo build --release -p bookstore -p sim` or pass --bookstore PATH",
            o.bookstore.display()
        ));
    }
    let s = draw(o);
    let _ = std::fs::remove_dir_all(&o.out);
    io(std::fs::create_dir_all(&o.out), || {
        format!("cannot create {}", o.out.display())
    })?;
    io(
        std::fs::write(
            o.out.join("schedule.json"),
            serde_json::to_string_pretty(&s).unwrap(),
        ),
        || "cannot write schedule.json".into(),
    )?;
    let ports = Ports(o.base_port);
    println!(
        "jepsen {} seed {}: {} nodes, {} clients on {} keys, {} s, faults {}{}; {} faults drawn",
        s.workload,
        s.seed,
        s.nodes,
        s.clients,
        s.keys,
        o.seconds,
        o.faults.join(","),
        s.bug
            .as_ref()
            .map(|b| format!(", bug {b}"))
            .unwrap_or_default(),
        s.faults.len()
    );

    // Proxies: every directed link between nodes, and the clients' links.
    let mut links = BTreeMap::new();
    for a in 0..=s.nodes {
        for b in 1..=s.nodes {
            if a == b {
                continue;
            }
            let (listen, name) = if a == 0 {
                (ports.client(b), format!("clients->n{b}"))
            } else {
                (ports.link(a, b), format!("n{a}->n{b}"))
            };
            let link = io(
                Link::start(name, &listen, ports.node(b), s.seed ^ (a * 100 + b)).await,
                || {
                    format!(
                        "cannot listen on {listen} (another run on these ports? pass --base-port)"
                    )
                },
            )?;
            links.insert((a, b), link);
        }
    }

    // Nodes.
    let data = o.out.join("data");
    let mut procs = Vec::new();
    for i in 1..=s.nodes {
        let mut args: Vec<String> = vec![
            "node".into(),
            "--id".into(),
            i.to_string(),
            "--nodes".into(),
            s.nodes.to_string(),
            "--data-dir".into(),
            data.display().to_string(),
            "--events".into(),
            o.out
                .join(format!("n{i}.events.jsonl"))
                .display()
                .to_string(),
            "--snapshot-every".into(),
            o.snapshot_every.to_string(),
        ];
        for j in 1..=s.nodes {
            let addr = if j == i {
                ports.node(i)
            } else {
                ports.link(i, j)
            };
            args.push("--peer".into());
            args.push(format!("{j}={addr}"));
        }
        if let Some(b) = &s.bug {
            args.push("--bug".into());
            args.push(b.clone());
        }
        procs.push(Proc::new(
            i,
            o.bookstore.clone(),
            args,
            o.out.join(format!("n{i}.log")),
        ));
    }
    let rec = Recorder::new();
    let wall0 = wall_ns();
    let cluster = Arc::new(Cluster {
        procs: Mutex::new(procs),
        links,
        nodes: s.nodes,
        rec: rec.clone(),
        direct: (1..=s.nodes).map(|i| (i, ports.node(i))).collect(),
    });
    for i in 1..=s.nodes {
        cluster.restart(i, s.drift_ppm[i as usize - 1]);
    }
    let client_peers: BTreeMap<u64, String> = (1..=s.nodes).map(|b| (b, ports.client(b))).collect();

    // A leader first, so the run's time goes to the workload.
    let started = Instant::now();
    while cluster.leader().await.is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            return Err(format!(
                "no leader within 20 s of starting the nodes; see {}/n*.log",
                o.out.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Workload and nemesis, for the duration.
    let start = Instant::now();
    let stop_at = start + Duration::from_millis(s.duration_ms);
    let mut clients = Vec::new();
    for p in 0..s.clients {
        let client = KvClient::new(client_peers.clone(), p + 1, workload::client_options());
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
    let mut lanes = Vec::new();
    for (id, f) in s.faults.clone().into_iter().enumerate() {
        let (c, drift) = (cluster.clone(), s.drift_ppm.clone());
        lanes.push(tokio::spawn(async move {
            tokio::time::sleep_until(start + Duration::from_millis(f.at_ms)).await;
            play(&c, id, &f, &drift).await;
        }));
    }
    let progress = {
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
    };
    for l in lanes {
        let _ = l.await;
    }
    for c in clients {
        let _ = c.await;
    }
    progress.abort();

    // Heal, then liveness and convergence.
    cluster.heal_network();
    let mut died = Vec::new();
    for i in 1..=s.nodes {
        cluster.proc(i, |p| p.resume());
        if let Some(status) = cluster.proc(i, |p| p.exited()) {
            died.push(format!(
                "node {i} exited on its own ({status}); see n{i}.log"
            ));
        }
        cluster.restart(i, s.drift_ppm[i as usize - 1]);
    }
    rec.nemesis("heal-all", Value::Null);
    let p = s.clients;
    let mut client = KvClient::new(
        client_peers.clone(),
        p + 1,
        ClientOptions {
            total_timeout: workload::LIVENESS_BOUND,
            ..workload::client_options()
        },
    );
    let mut live = workload::liveness(p, &mut client, &rec, s.keys, s.nodes).await;
    let diverged = crate::replicas::compare_and_record(
        "kv",
        &mut client,
        s.nodes,
        Duration::from_secs(5),
        &rec,
    )
    .await;
    let elapsed = start.elapsed();
    for i in 1..=s.nodes {
        cluster.proc(i, |p| p.stop());
    }
    live.extend(died);

    // The history: client operations, nemesis, and the nodes' events on
    // the same time line; the Raft checks over the events in time order.
    let mut ops = rec.take_history().ops;
    let events = read_events(&o.out, s.nodes, wall0);
    let mut raft = RaftChecker::default();
    let mut rafts = 0usize;
    for (time, node, ev) in &events {
        raft.observe(*node, ev);
        rafts += 1;
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
    let mut failures: Vec<(&'static str, String)> = Vec::new();
    for v in &raft.violations {
        failures.push(("raft", v.clone()));
    }
    let mut unknown = None;
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
    for d in diverged {
        failures.push(("convergence", d));
    }
    for l in live {
        failures.push(("liveness", l));
    }

    // What it wrote, and the verdict.
    let title = format!("jepsen {} seed {}", s.workload, s.seed);
    let page = checker::report::html(&history, &lin, &title);
    let shown: Vec<(&str, &str)> = failures.iter().map(|(c, m)| (*c, m.as_str())).collect();
    let page = crate::explain::above(page, &history, &shown);
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
        "{client_ops} client operations in {:.1} s ({} ok, {} failed, {} unknown); {} faults played; {rafts} node events checked",
        elapsed.as_secs_f64(),
        count(OpType::Ok),
        count(OpType::Fail),
        count(OpType::Info),
        s.faults.len()
    );
    println!(
        "checked in {:.1} s: linearizability {:?}, raft {}, convergence and liveness {}",
        check_started.elapsed().as_secs_f64(),
        lin.verdict,
        if raft.violations.is_empty() {
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
        println!("UNKNOWN: the checker gave no verdict: {u}");
    }
    println!(
        "wrote {}/{{history.jsonl,report.html,schedule.json,n*.log,n*.events.jsonl}}",
        o.out.display()
    );
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

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Every node's events, as (ns since the recorder started, node, event),
/// in time order; lines a kill cut short are skipped.
fn read_events(dir: &Path, nodes: u64, wall0: u64) -> Vec<(u64, u64, NodeEvent)> {
    let mut out = Vec::new();
    for i in 1..=nodes {
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
        let only = draw(&opts(4, &["kill"]));
        assert!(only.faults.iter().all(|f| f.kind == "kill"));
        assert!(only.drift_ppm.iter().all(|d| *d == 0));
    }
}
