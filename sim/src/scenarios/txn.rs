//! Scenario `txn`: a Raft KV group of 3 or 5 nodes; several clients run
//! random transactions of one to four micro-operations over a few keys,
//! Elle's workloads: list-append (`append k v`, `r k [v ...]`) or
//! rw-register (`w k v`, `r k v`), drawn per seed. A transaction that
//! writes is one multi-key `Txn` command through the Raft log; a read-only
//! one is one linearizable multi-key `Read`. The seeded nemesis as in `kv`;
//! then everything heals, a transaction must succeed, every key the
//! workload could have written is read (final reads, one read-only
//! transaction per generation) and the replicas must converge. The history
//! is checked strict-serializable by the checker's isolation checker
//! (dependency cycles G0..G2 with process and realtime edges, aborted and
//! intermediate reads, ...), and node events against the Raft invariants.
//!
//! Keys live in generations: every [`GENERATION_MS`] the clients move to
//! fresh keys, so lists stay short and a read stays cheap to check.

use crate::raft::{self, Raft, RaftFaults};
use crate::workload::{client_options, failed};
use bookstore::client::{ClientOptions, KvClient};
use bookstore::kv::cmd;
use checker::history::History;
use checker::isolation::{self, Consistency, IsoOptions, IsoVerdict};
use harness::nemesis::Nemesis;
use harness::recorder::{Completion, Recorder};
use harness::runner::RunResult;
use harness::scenario::{Failure, Floor, Param, RunCtx, RunFuture, Scenario, Verdicts};
use harness::schedule::{Draw, Fault, FaultSelection, Schedule, Targets};
use harness::sim::Sim;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::time::Instant;

/// How long after healing the cluster has to serve again.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(15);

/// Clients move to fresh keys this often (simulated time).
pub const GENERATION_MS: u64 = 2_000;

/// The two workloads.
pub const MODELS: [&str; 2] = ["list-append", "rw-register"];

const MULTI_READ: &str = "txn: a read-only transaction of several keys answered";
const WRITE_TXN: &str = "txn: a transaction of several keys with a write committed";
const UNKNOWN: &str = "txn: a transaction's outcome unknown";
const UNKNOWN_SEEN: &str = "txn: a write of unknown outcome seen by a later read";

pub struct Txn;

impl Scenario for Txn {
    fn name(&self) -> &'static str {
        "txn"
    }

    fn about(&self) -> &'static str {
        "a Raft KV group of 3 or 5 under list-append or rw-register transactions; strict serializability (Elle-style cycles) and Raft checks"
    }

    fn fault_kinds(&self) -> Vec<&'static str> {
        raft::KINDS.to_vec()
    }

    fn simpler(&self, fault: &Fault) -> Vec<(Fault, &'static str)> {
        raft::simpler(fault)
    }

    fn bugs(&self) -> Vec<&'static str> {
        bookstore::bugs::ALL
            .iter()
            .chain(bookstore::bugs::TXN)
            .copied()
            .collect()
    }

    fn params(&self) -> Vec<Param> {
        vec![
            Param {
                name: "txn-model",
                help: "list-append or rw-register (default: drawn from the seed, 70 % list-append)",
            },
            Param {
                name: "think-ms",
                help: "mean pause in ms before each transaction (drawn from 0 to twice this; at most 100000; default: drawn from the seed)",
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
        let mut s = Schedule {
            scenario: "txn".into(),
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
        let model = if d.rng.random_bool(0.7) { 0 } else { 1 };
        s.set_param("txn_model", MODELS[model]);
        s.set_param("keys", d.rng.random_range(2..=6u64));
        s.set_param("think_ms", [0u64, 5, 20, 100][d.rng.random_range(0..4)]);
        s.set_param("max_batch", [1usize, 4, 64][d.rng.random_range(0..3)]);
        s.set_param("snapshot_every", d.rng.random_range(4..=300u64));
        s
    }

    fn set_param(&self, s: &mut Schedule, name: &str, value: &str) -> Result<(), String> {
        match name {
            "txn-model" if MODELS.contains(&value) => {
                s.set_param("txn_model", value);
                Ok(())
            }
            "txn-model" => Err(format!("expected one of {}", MODELS.join(", "))),
            "think-ms" => {
                let t = crate::pacing::parse_think_ms(value)?;
                s.set_param("think_ms", t);
                Ok(())
            }
            _ => Err(format!("scenario txn has no option --{name}")),
        }
    }

    fn describe(&self, s: &Schedule) -> Vec<String> {
        let w = Workload::of(s);
        vec![format!(
            "{} transactions over {} keys per {GENERATION_MS} ms generation, a pause of 0..{} ms before each; Append batches of at most {}, a snapshot every {} entries",
            w.model,
            w.keys,
            2 * w.think_ms,
            s.param::<usize>("max_batch").unwrap_or(64),
            s.param::<u64>("snapshot_every").unwrap_or(200)
        )]
    }

    fn run<'a>(&'a self, s: &'a Schedule, ctx: RunCtx) -> RunFuture<'a> {
        Box::pin(run(s, ctx))
    }

    fn check(&self, _: &Schedule, history: &History) -> Verdicts {
        let failure = match isolation::check(history, &options()) {
            Err(e) => Some(format!("the history could not be read: {e}")),
            Ok(r) => match r.verdict {
                IsoVerdict::Valid => None,
                IsoVerdict::Invalid => Some(r.explain()),
                IsoVerdict::Unknown => Some(format!("no verdict: {}", r.explain())),
            },
        };
        Verdicts {
            failures: failure
                .map(|m| Failure::new("isolation", m))
                .into_iter()
                .collect(),
            lin: None,
        }
    }

    fn coverage(&self, _: &Schedule, history: &History) -> Vec<(String, u64)> {
        history_coverage(history)
    }

    fn floors(&self) -> Vec<Floor> {
        let mut f = raft::floors();
        f.push(Floor::new(MULTI_READ, 0.9));
        f.push(Floor::new(WRITE_TXN, 0.9));
        f.push(Floor::new(UNKNOWN, 0.1));
        // Mostly the final reads' doing: 13.7-17.2 % of 1000 seeds with
        // them, 2.8 % without.
        f.push(Floor::new(UNKNOWN_SEEN, 0.07));
        f
    }

    /// The isolation report, with the Raft and divergence sections on top
    /// when those checks failed.
    fn report(&self, r: &RunResult, title: &str) -> Option<String> {
        let result = isolation::check(&r.history, &options()).ok()?;
        let page = isolation::html(&r.history, &result, title);
        Some(crate::explain::report_above(page, r))
    }
}

fn options() -> IsoOptions {
    IsoOptions {
        consistency: Consistency::StrictSerializable,
        ..IsoOptions::default()
    }
}

/// Counted from the history: multi-key transactions of the workload
/// answered (before healing: the final reads are not counted), outcomes
/// left unknown, and writes of unknown outcome that a later read saw.
fn history_coverage(h: &History) -> Vec<(String, u64)> {
    use checker::history::OpType;
    let (mut reads, mut writes, mut unknown) = (0, 0, 0);
    let mut healed = false;
    // Values written by transactions of unknown outcome, values read.
    let (mut unknown_writes, mut seen) = (BTreeSet::new(), BTreeSet::new());
    for op in &h.ops {
        if !op.is_client() {
            healed |= op.f == "heal-all";
            continue;
        }
        if op.f != "txn" {
            continue;
        }
        let mops = op.value.as_array().map(Vec::as_slice).unwrap_or_default();
        let keys: BTreeSet<&str> = mops.iter().filter_map(|m| m[1].as_str()).collect();
        let writes_any = mops.iter().any(|m| m[0] != "r");
        match op.kind {
            OpType::Ok if healed => {}
            OpType::Ok if keys.len() > 1 && !writes_any => reads += 1,
            OpType::Ok if keys.len() > 1 => writes += 1,
            OpType::Info => unknown += 1,
            _ => {}
        }
        for m in mops {
            match (op.kind, m[0].as_str(), &m[2]) {
                (OpType::Info, Some("r"), _) => {}
                (OpType::Info, _, Value::Number(v)) => {
                    unknown_writes.insert(v.as_i64());
                }
                (OpType::Ok, Some("r"), Value::Array(vs)) => {
                    seen.extend(vs.iter().map(Value::as_i64));
                }
                (OpType::Ok, Some("r"), Value::Number(v)) => {
                    seen.insert(v.as_i64());
                }
                _ => {}
            }
        }
    }
    let resolved = unknown_writes.intersection(&seen).count() as u64;
    vec![
        (MULTI_READ.into(), reads),
        (WRITE_TXN.into(), writes),
        (UNKNOWN.into(), unknown),
        (UNKNOWN_SEEN.into(), resolved),
    ]
}

/// What each client of a seed does.
#[derive(Clone)]
struct Workload {
    model: String,
    keys: u64,
    think_ms: u64,
    seed: u64,
    max_ops: u64,
}

impl Workload {
    fn of(s: &Schedule) -> Workload {
        Workload {
            model: s
                .param("txn_model")
                .unwrap_or_else(|| MODELS[0].to_string()),
            keys: s.param("keys").unwrap_or(3),
            think_ms: s.param("think_ms").unwrap_or(0),
            seed: s.seed,
            max_ops: s.ops_per_client,
        }
    }

    fn appends(&self) -> bool {
        self.model == MODELS[0]
    }
}

async fn run(s: &Schedule, ctx: RunCtx) -> Vec<String> {
    let rec = ctx.rec.clone();
    // Topology.
    let mut sim = Sim::new(s.seed);
    let raft = Raft::new(&ctx);
    let ids: Vec<u64> = (1..=s.nodes).collect();
    let peers = raft.add_group(
        &mut sim,
        &ids,
        raft::bugs_of(s),
        s.seed,
        s.param("max_batch").unwrap_or(64),
        s.param("snapshot_every").unwrap_or(200),
    );

    // Workload: each client on its own host, until the phase ends.
    let start = Instant::now();
    let stop_at = start + Duration::from_millis(s.duration_ms);
    let w = Workload::of(s);
    let mut clients = Vec::new();
    for p in 0..s.clients {
        let client = KvClient::new(peers.clone(), p + 1, client_options());
        let host = sim.client(p + 1);
        let (rec, w) = (rec.clone(), w.clone());
        clients.push(host.spawn(client_loop(p, client, rec, w, start, stop_at)));
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

    // Heal; then a transaction must commit, and the replicas converge.
    sim.heal_all();
    rec.nemesis("heal-all", Value::Null);
    let p = s.clients;
    let mut client = KvClient::new(
        peers,
        p + 1,
        ClientOptions {
            total_timeout: LIVENESS_BOUND,
            ..client_options()
        },
    );
    let nodes = s.nodes;
    let generations = s.duration_ms.div_ceil(GENERATION_MS);
    let host = sim.client(p + 1);
    let (live, diverged) = host
        .spawn(async move {
            let t = Txn1 {
                ops: vec![
                    (w.write_f().into(), "final".into(), Some(999_999_999)),
                    ("r".into(), "final".into(), None),
                ],
            };
            let c = t.execute(p, &mut client, &rec, &w).await;
            let mut live = Vec::new();
            if c.kind != checker::history::OpType::Ok {
                live.push(format!(
                    "no transaction committed within {LIVENESS_BOUND:?} after healing: {}",
                    c.error.unwrap_or_default()
                ));
            } else {
                // Final reads (as Jepsen's final generators do): every key
                // of every generation, read after the cluster serves
                // again. They show which writes of unknown outcome took
                // effect and that no acknowledged one was lost, and they
                // give every seed something to check: without them a seed
                // whose faults left every transaction of the workload
                // unknown has an empty dependency graph (seed 1876 of
                // `--faults all`), on which the checker can only say
                // "unknown".
                for g in 0..generations {
                    let t = Txn1::reads((0..w.keys).map(|k| format!("g{g}k{k}")));
                    t.execute(p, &mut client, &rec, &w).await;
                }
            }
            let bound = Duration::from_secs(5);
            let diverged =
                crate::replicas::compare_and_record("kv", &mut client, nodes, bound, &rec).await;
            (live, diverged)
        })
        .await
        .expect("liveness task");
    ctx.checks.add("convergence", move || diverged.clone());
    live
}

impl Workload {
    fn write_f(&self) -> &'static str {
        if self.appends() {
            "append"
        } else {
            "w"
        }
    }
}

/// One transaction: micro-operations `(f, key, value)`; a read's value is
/// filled in when it completes.
struct Txn1 {
    ops: Vec<(String, String, Option<i64>)>,
}

impl Txn1 {
    /// One to four micro-operations on the keys of generation `gen`.
    fn new(w: &Workload, rng: &mut ChaCha8Rng, generation: u64, mut next_value: i64) -> Txn1 {
        let n = rng.random_range(1..=4);
        let ops = (0..n)
            .map(|_| {
                let key = format!("g{generation}k{}", rng.random_range(0..w.keys));
                if rng.random_bool(0.5) {
                    ("r".to_string(), key, None)
                } else {
                    next_value += 1;
                    (w.write_f().to_string(), key, Some(next_value))
                }
            })
            .collect();
        Txn1 { ops }
    }

    /// A read-only transaction of `keys`.
    fn reads(keys: impl Iterator<Item = String>) -> Txn1 {
        Txn1 {
            ops: keys.map(|k| ("r".to_string(), k, None)).collect(),
        }
    }

    fn writes(&self) -> usize {
        self.ops.iter().filter(|o| o.0 != "r").count()
    }

    /// The micro-operations as the history writes them; reads as `results`
    /// gave them (`None`: not known).
    fn value(&self, results: Option<&[Option<String>]>, appends: bool) -> Value {
        let mut reads = results.map(|r| r.iter());
        Value::Array(
            self.ops
                .iter()
                .map(|(f, k, v)| {
                    if f != "r" {
                        return json!([f, k, v]);
                    }
                    let read = reads.as_mut().and_then(|r| r.next());
                    let value = match read {
                        None => Value::Null,
                        Some(s) if appends => json!(s
                            .as_deref()
                            .unwrap_or("")
                            .split_whitespace()
                            .map(|x| x.parse::<i64>().unwrap_or(-1))
                            .collect::<Vec<_>>()),
                        Some(s) => s
                            .as_deref()
                            .map_or(Value::Null, |x| json!(x.parse::<i64>().unwrap_or(-1))),
                    };
                    json!([f, k, value])
                })
                .collect(),
        )
    }

    /// Runs it and records invoke and completion: a transaction that writes
    /// is one `Txn` command (its reads are `Get`s inside it); a read-only
    /// one is one multi-key linearizable read.
    async fn execute(&self, p: u64, c: &mut KvClient, rec: &Recorder, w: &Workload) -> Completion {
        let appends = w.appends();
        let invoke = self.value(None, appends);
        rec.op(p, "txn", None, invoke.clone(), async {
            if self.writes() == 0 {
                let keys: Vec<&str> = self.ops.iter().map(|o| o.1.as_str()).collect();
                let mut unique = keys.clone();
                unique.sort();
                unique.dedup();
                return match c.read(&unique).await {
                    Ok(values) => {
                        let results: Vec<Option<String>> = keys
                            .iter()
                            .map(|k| values[unique.binary_search(k).unwrap()].clone())
                            .collect();
                        Completion::ok(self.value(Some(&results), appends))
                    }
                    Err(e) => Completion::fail(invoke.clone(), Some(e.to_string())),
                };
            }
            let ops = self
                .ops
                .iter()
                .map(|(f, k, v)| match (f.as_str(), v) {
                    ("r", _) => cmd::op_get(k),
                    ("append", Some(v)) => cmd::op_append(k, &v.to_string()),
                    (_, v) => cmd::op_put(k, &v.unwrap_or_default().to_string()),
                })
                .collect();
            match c.txn(vec![], ops, vec![]).await {
                Ok(r) => {
                    let results: Vec<Option<String>> = self
                        .ops
                        .iter()
                        .zip(r.results)
                        .filter(|(o, _)| o.0 == "r")
                        .map(|(_, r)| r.value)
                        .collect();
                    Completion::ok(self.value(Some(&results), appends))
                }
                Err(e) => failed(invoke.clone(), &e),
            }
        })
        .await
    }
}

async fn client_loop(
    p: u64,
    mut c: KvClient,
    rec: Recorder,
    w: Workload,
    start: Instant,
    stop_at: Instant,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(w.seed.wrapping_mul(31).wrapping_add(p));
    // Values unique across clients: client p writes p * 10^6 + 1, + 2, ...
    let mut next = (p as i64 + 1) * 1_000_000;
    for _ in 0..w.max_ops {
        if w.think_ms > 0 {
            let pause = rng.random_range(0..=2 * w.think_ms);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        if Instant::now() >= stop_at {
            break;
        }
        let generation = start.elapsed().as_millis() as u64 / GENERATION_MS;
        let t = Txn1::new(&w, &mut rng, generation, next);
        next += t.writes() as i64;
        t.execute(p, &mut c, &rec, &w).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_draw_both_models_and_the_options_override_them() {
        let models: BTreeSet<String> = (0..40)
            .map(|seed| Workload::of(&Txn.generate(seed, None, &FaultSelection::Swarm)).model)
            .collect();
        assert_eq!(models.len(), 2, "{models:?}");
        let mut s = Txn.generate(1, None, &FaultSelection::Swarm);
        Txn.set_param(&mut s, "txn-model", "rw-register").unwrap();
        assert_eq!(Workload::of(&s).model, "rw-register");
        assert!(Txn.set_param(&mut s, "txn-model", "bank").is_err());
        Txn.set_param(&mut s, "think-ms", "0").unwrap();
        assert_eq!(Workload::of(&s).think_ms, 0);
    }

    #[test]
    fn reads_are_recorded_as_the_model_reads_them() {
        let t = Txn1 {
            ops: vec![
                ("append".into(), "a".into(), Some(3)),
                ("r".into(), "a".into(), None),
                ("r".into(), "b".into(), None),
            ],
        };
        let got = t.value(Some(&[Some("1 3".into()), None]), true);
        assert_eq!(
            got,
            json!([["append", "a", 3], ["r", "a", [1, 3]], ["r", "b", []]])
        );
        let got = t.value(None, true);
        assert_eq!(
            got,
            json!([["append", "a", 3], ["r", "a", null], ["r", "b", null]])
        );
        let got = t.value(Some(&[Some("7".into()), None]), false);
        assert_eq!(got[1], json!(["r", "a", 7]));
        assert_eq!(got[2], json!(["r", "b", null]));
    }
}
