//! Scenario `kv`: 3 or 5 Raft KV nodes; several clients doing random `get`,
//! `put` and `cas` on a few keys, every call with a deadline, paced as the
//! seed drew (pauses between operations, busy windows back to back); the seeded
//! nemesis; then everything heals and the cluster must serve a write and a
//! read and converge within a bound. The history is checked for
//! linearizability against the checker's `kv` model, and node events
//! against the Raft invariants (as they happen).

use crate::pacing::Pacing;
use crate::raft::{self, Raft, RaftFaults};
use crate::workload::{client_loop, client_options, liveness, Workload, LIVENESS_BOUND};
use bookstore::client::{ClientOptions, KvClient};
use checker::history::{History, OpType};
use checker::model::ModelKind;
use harness::nemesis::Nemesis;
use harness::scenario::{Floor, Param, RunCtx, RunFuture, Scenario, Verdicts};
use harness::schedule::{Draw, Fault, FaultSelection, Schedule, Targets};
use harness::sim::Sim;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

pub struct Kv;

impl Scenario for Kv {
    fn name(&self) -> &'static str {
        "kv"
    }

    fn about(&self) -> &'static str {
        "a Raft KV group of 3 or 5 under paced get/put/cas clients; linearizability and Raft checks"
    }

    fn fault_kinds(&self) -> Vec<&'static str> {
        raft::KINDS.to_vec()
    }

    fn simpler(&self, fault: &Fault) -> Vec<(Fault, &'static str)> {
        raft::simpler(fault)
    }

    fn bugs(&self) -> Vec<&'static str> {
        bookstore::bugs::ALL.to_vec()
    }

    fn params(&self) -> Vec<Param> {
        vec![
            Param {
                name: "think-ms",
                help: "mean pause in ms before each client operation outside the busy windows (drawn from 0 to twice this); 0 = back to back all the time, at most 100000 (default: drawn from the seed)",
            },
            Param {
                name: "pipeline",
                help: "on: clients send their gets and puts over the nodes' Pipeline stream (ClientOptions::pipeline, what `bookstore bench` uses) instead of unary calls (default: off; not drawn, so a seed's run is the same as before it existed)",
            },
        ]
    }

    fn generate(&self, seed: u64, bug: Option<&str>, faults: &FaultSelection) -> Schedule {
        let mut d = Draw::new(seed);
        let nodes = if d.rng.random_bool(0.7) { 3 } else { 5 };
        let duration_ms = 20_000;
        let targets = Targets { hosts: nodes };
        let (config, faults) = raft::draw_faults(&mut d, seed, faults, &targets, duration_ms);
        let clients = d.rng.random_range(3..=6);
        let pacing = Pacing::draw(seed, duration_ms);
        let keys: u64 = d.rng.random_range(1..=4);
        let max_batch: usize = [1, 2, 4, 64][d.rng.random_range(0..4)];
        let mut s = Schedule {
            scenario: "kv".into(),
            seed,
            bug: bug.map(str::to_string),
            nodes,
            clients,
            ops_per_client: 10_000,
            duration_ms,
            config,
            faults,
            params: Default::default(),
        };
        s.set_param("keys", keys);
        s.set_param("max_batch", max_batch);
        s.set_param("pacing", pacing);
        s.set_param("snapshot_every", draw_snapshot_every(seed));
        s
    }

    fn set_param(&self, s: &mut Schedule, name: &str, value: &str) -> Result<(), String> {
        match name {
            "think-ms" => {
                let t = crate::pacing::parse_think_ms(value)?;
                let mut p = pacing(s);
                p.think_ms = t;
                s.set_param("pacing", p);
                Ok(())
            }
            "pipeline" => {
                let on = match value {
                    "on" | "true" => true,
                    "off" | "false" => false,
                    _ => return Err(format!("--pipeline takes on or off, not '{value}'")),
                };
                s.set_param("pipeline", on);
                Ok(())
            }
            _ => Err(format!("scenario kv has no option --{name}")),
        }
    }

    fn describe(&self, s: &Schedule) -> Vec<String> {
        let mut lines = vec![
            format!(
                "{} keys, Append batches of at most {}, a snapshot every {} entries",
                keys(s),
                max_batch(s),
                snapshot_every(s)
            ),
            pacing(s).to_string(),
        ];
        if pipeline(s) {
            lines.push("clients pipeline their calls on one stream per node".into());
        }
        lines
    }

    fn run<'a>(&'a self, s: &'a Schedule, ctx: RunCtx) -> RunFuture<'a> {
        Box::pin(run(s, ctx))
    }

    fn check(&self, _: &Schedule, history: &History) -> Verdicts {
        Verdicts::linearizability(history, ModelKind::Kv, Value::Null)
    }

    fn coverage(&self, _: &Schedule, history: &History) -> Vec<(String, u64)> {
        history_coverage(history)
    }

    fn floors(&self) -> Vec<Floor> {
        let cuts = |s: &Schedule| {
            let cut = [
                "partition",
                "isolate-leader",
                "one-way",
                "bridge",
                "leader-churn",
            ];
            raft::has_kind(s, &cut) || raft::has_kind(s, &["leader-island"])
        };
        let clocks = |s: &Schedule| raft::has_kind(s, &["clock"]);
        let mut f = raft::floors();
        f.push(Floor::new("kv: a read answered during a partition", 0.4).when(cuts));
        f.push(Floor::new("kv: a clock jump or drift on the leader", 0.3).when(clocks));
        f.push(
            Floor::new(
                "client: a pipelined call sent while others wait on its stream",
                0.5,
            )
            .when(pipeline),
        );
        f
    }

    /// The linearizability report, with the Raft and divergence sections
    /// on top when those checks failed.
    fn report(&self, r: &harness::runner::RunResult, title: &str) -> Option<String> {
        let lin = r.lin.as_ref()?;
        // Under another check's failure the page's own heading says which
        // check it shows (its green verdict is that check's only).
        let title = if r.failures.iter().any(|f| f.check != "linearizability") {
            format!(
                "{} seed {}: the linearizability check of the client operations",
                r.schedule.scenario, r.schedule.seed
            )
        } else {
            title.to_string()
        };
        let page = checker::report::html(&r.history, lin, &title);
        Some(crate::explain::report_above(page, r))
    }
}

/// Entries between snapshots, drawn per seed from its own stream
/// (log-uniform over 4..400): small intervals make snapshots, their
/// transfer and restarts from them common. Schedules written before it was
/// drawn used 200.
fn draw_snapshot_every(seed: u64) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0005_0a95_4070_u64);
    (4.0 * 100f64.powf(rng.random_range(0.0..1.0))) as u64
}

fn snapshot_every(s: &Schedule) -> u64 {
    s.param("snapshot_every").unwrap_or(200)
}

/// Coverage read from the history: reads answered while the network was
/// cut, clock faults that hit the node leading at the time.
fn history_coverage(h: &History) -> Vec<(String, u64)> {
    use checker::history::Process;
    let cuts = ["partition", "one-way", "bridge", "island"];
    let clocks = ["clock-jump", "clock-drift", "island"];
    let mut active: std::collections::BTreeSet<(u64, u64)> = Default::default();
    let mut leader: Option<u64> = None;
    let (mut reads, mut clock_on_leader) = (0, 0);
    for op in &h.ops {
        match &op.process {
            Process::Named(n) if n == "nemesis" => {
                let id = (
                    op.value["id"].as_u64().unwrap_or(0),
                    op.value["part"].as_u64().unwrap_or(0),
                );
                let kind = op.value["fault"]["kind"].as_str().unwrap_or("");
                match op.f.as_str() {
                    "start" if cuts.contains(&kind) => {
                        active.insert(id);
                    }
                    "end" => {
                        active.remove(&id);
                    }
                    _ => {}
                }
                if op.f == "start" && clocks.contains(&kind) {
                    let node = op.value["fault"]["node"].as_u64();
                    clock_on_leader += u64::from(node.is_some() && node == leader);
                }
            }
            Process::Named(n) if op.f == "role" && op.value["role"] == "Leader" => {
                leader = n.strip_prefix('n').and_then(|id| id.parse().ok());
            }
            Process::Client(_) if op.f == "get" && op.kind == OpType::Ok => {
                reads += u64::from(!active.is_empty());
            }
            _ => {}
        }
    }
    vec![
        ("kv: a read answered during a partition".into(), reads),
        (
            "kv: a clock jump or drift on the leader".into(),
            clock_on_leader,
        ),
    ]
}

fn keys(s: &Schedule) -> u64 {
    s.param("keys").unwrap_or(1)
}

/// Schedules written before it was drawn used 64.
fn max_batch(s: &Schedule) -> usize {
    s.param("max_batch").unwrap_or(64)
}

/// Set only by `--pipeline on`.
fn pipeline(s: &Schedule) -> bool {
    s.param("pipeline").unwrap_or(false)
}

/// Absent in schedules written before it was drawn: back to back.
fn pacing(s: &Schedule) -> Pacing {
    s.param("pacing").unwrap_or_default()
}

/// The KV client's deadlines and backoff in the bookstore's KV scenarios.
async fn run(s: &Schedule, ctx: RunCtx) -> Vec<String> {
    let rec = ctx.rec.clone();
    // Topology.
    let mut sim = Sim::new(s.seed);
    let raft = Raft::new(&ctx);
    let ids: Vec<u64> = (1..=s.nodes).collect();
    let bugs = raft::bugs_of(s);
    let peers = raft.add_group(
        &mut sim,
        &ids,
        bugs,
        s.seed,
        max_batch(s),
        snapshot_every(s),
    );

    // Workload: each client on its own host, until the phase ends. With
    // `--pipeline on`, all on one host instead, as siblings sharing its
    // connections (one Pipeline stream per node, many callers on it) until
    // a failed attempt makes a client open its own.
    let stop_at = Instant::now() + Duration::from_millis(s.duration_ms);
    let opts = ClientOptions {
        pipeline: pipeline(s),
        ..client_options()
    };
    let mut clients = Vec::new();
    let mut shared = Vec::new();
    for p in 0..s.clients {
        let w = Workload {
            keys: keys(s),
            max_ops: s.ops_per_client,
            pacing: pacing(s),
            start: Instant::now(),
            stop_at,
            seed: s.seed,
        };
        if pipeline(s) {
            shared.push((p, w));
            continue;
        }
        let client = KvClient::new(peers.clone(), p + 1, opts.clone());
        let host = sim.client(p + 1);
        clients.push(host.spawn(client_loop(p, client, rec.clone(), w)));
    }
    if !shared.is_empty() {
        let (peers, rec) = (peers.clone(), rec.clone());
        clients.push(sim.client(1).spawn(async move {
            let mut base = KvClient::new(peers, 0, opts);
            base.connect_all().expect("node addresses");
            let mut tasks = Vec::new();
            for (p, w) in shared {
                let client = base.sibling(p + 1);
                tasks.push(tokio::spawn(client_loop(p, client, rec.clone(), w)));
            }
            for t in tasks {
                t.await.expect("client task");
            }
        }));
    }

    // Nemesis.
    let plugin = RaftFaults(raft.clone());
    let mut nemesis = Nemesis {
        sim: &mut sim,
        rec: &rec,
        triggers: &ctx.triggers,
        plugin: &plugin,
    };
    nemesis.play(&s.faults, s.duration_ms).await;
    for c in clients {
        c.await.expect("client task");
    }

    // Heal, then liveness: a write and a read of every key must succeed,
    // and every node must catch up.
    sim.heal_all();
    rec.nemesis("heal-all", Value::Null);
    let p = s.clients;
    let mut client = KvClient::new(
        peers.clone(),
        p + 1,
        ClientOptions {
            total_timeout: LIVENESS_BOUND,
            ..client_options()
        },
    );
    let (keys, nodes) = (keys(s), s.nodes);
    let host = sim.client(p + 1);
    let (live, diverged) = host
        .spawn(async move {
            let live = liveness(p, &mut client, &rec, keys, nodes).await;
            // Converged (or not): replicas at one applied index must agree.
            let bound = Duration::from_secs(5);
            (
                live,
                crate::replicas::compare_and_record("kv", &mut client, nodes, bound, &rec).await,
            )
        })
        .await
        .expect("liveness task");
    ctx.checks.add("convergence", move || diverged.clone());
    live
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pacing::busy_share;

    #[test]
    fn the_same_seed_draws_the_same_schedule_and_others_differ() {
        let a = Kv.generate(7, None, &FaultSelection::Swarm);
        assert_eq!(a, Kv.generate(7, None, &FaultSelection::Swarm));
        assert_ne!(a, Kv.generate(8, None, &FaultSelection::Swarm));
    }

    #[test]
    fn all_selects_every_kind_and_the_schedule_round_trips_through_json() {
        let all = FaultSelection::parse("all", &raft::KINDS).unwrap();
        let s = Kv.generate(3, Some("stale-read"), &all);
        assert_eq!(s.config.kinds.len(), raft::KINDS.len());
        let kinds: std::collections::BTreeSet<&str> =
            s.faults.iter().map(|f| f.fault.kind()).collect();
        assert!(
            kinds.len() >= 3,
            "a 20 s run with every kind on draws several kinds: {kinds:?}"
        );
        let json = serde_json::to_string_pretty(&s).unwrap();
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
    }

    #[test]
    fn kv_seeds_draw_their_pacing_and_old_schedule_files_run_back_to_back() {
        let seeds: Vec<Schedule> = (0..200)
            .map(|seed| Kv.generate(seed, None, &FaultSelection::Swarm))
            .collect();
        for s in &seeds {
            let p = pacing(s);
            assert!((300..=5_000).contains(&p.think_ms), "{p}");
            assert!(p.busy.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0));
        }
        let share: f64 = seeds
            .iter()
            .map(|s| busy_share(&pacing(s), s.duration_ms))
            .sum::<f64>()
            / 200.0;
        assert!((0.03..0.2).contains(&share), "mean busy share {share}");
        let mut old = seeds[7].clone();
        old.params.remove("pacing");
        let old: Schedule = serde_json::from_str(&serde_json::to_string(&old).unwrap()).unwrap();
        assert!(pacing(&old).is_back_to_back());
        let mut t = seeds[7].clone();
        Kv.set_param(&mut t, "think-ms", "0").unwrap();
        assert!(pacing(&t).is_back_to_back());
        assert!(Kv.set_param(&mut t, "think-ms", "fast").is_err());
    }
}
