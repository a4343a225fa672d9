//! Scenario `kv`: 3 or 5 Raft KV nodes; several clients doing random `get`,
//! `put` and `cas` on a few keys, every call with a deadline, paced as the
//! seed drew (pauses between operations, busy windows back to back); the seeded
//! nemesis; then everything heals and the cluster must serve a write and a
//! read and converge within a bound. The history is checked for
//! linearizability against the checker's `kv` model (by the runner), and
//! node events against the Raft invariants (as they happen).

use crate::cluster::SimCluster;
use crate::nemesis;
use crate::recorder::Recorder;
use crate::schedule::{Pacing, Schedule};
use bookstore::bugs::Bugs;
use bookstore::client::{ClientError, ClientOptions, KvClient};
use checker::history::OpType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// How long after healing the cluster has to serve again.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(15);

fn client_options() -> ClientOptions {
    ClientOptions {
        attempt_timeout: Duration::from_millis(300),
        // A write keeps retrying to learn its outcome, as a careful client
        // does; only one still unresolved after 10 s is recorded as unknown.
        total_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_millis(1500),
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
    }
}

/// Runs the scenario; returns liveness failures (safety is checked by the
/// recorder and the runner).
pub async fn run(s: &Schedule, bugs: Bugs, rec: Recorder) -> Vec<String> {
    // Topology.
    let mut cluster = SimCluster::start_with(s.nodes, bugs, rec.clone(), s.seed, s.max_batch);

    // Workload: each client on its own host, until the phase ends.
    let stop_at = Instant::now() + Duration::from_millis(s.duration_ms);
    let mut clients = Vec::new();
    for p in 0..s.clients {
        let client = cluster.client(p + 1, client_options());
        let w = Workload {
            keys: s.keys,
            max_ops: s.ops_per_client,
            pacing: s.pacing.clone(),
            start: Instant::now(),
            stop_at,
            seed: s.seed,
        };
        let host = cluster.client_host(p + 1);
        clients.push(host.spawn(client_loop(p, client, rec.clone(), w)));
    }

    // Nemesis.
    nemesis::play(&mut cluster, &rec, &s.faults, s.duration_ms).await;
    for c in clients {
        c.await.expect("client task");
    }

    // Heal, then liveness: a write and a read of every key must succeed,
    // and every node must catch up.
    cluster.heal_all();
    rec.nemesis("heal-all", Value::Null);
    let p = s.clients;
    let mut client = cluster.client(
        p + 1,
        ClientOptions {
            total_timeout: LIVENESS_BOUND,
            ..client_options()
        },
    );
    let (rec2, keys, nodes) = (rec.clone(), s.keys, s.nodes);
    let host = cluster.client_host(p + 1);
    host.spawn(async move { liveness(p, &mut client, &rec2, keys, nodes).await })
        .await
        .expect("liveness task")
}

fn key_name(k: u64) -> String {
    format!("k{k}")
}

fn to_value(v: Option<String>) -> Value {
    match v {
        None => Value::Null,
        Some(s) => s
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::String(s)),
    }
}

fn error_type(e: &ClientError) -> OpType {
    if e.is_unknown() {
        OpType::Info
    } else {
        OpType::Fail
    }
}

/// What each client of a seed does.
struct Workload {
    keys: u64,
    max_ops: u64,
    pacing: Pacing,
    /// When the workload phase began (busy windows count from here).
    start: Instant,
    stop_at: Instant,
    seed: u64,
}

async fn client_loop(p: u64, mut c: KvClient, rec: Recorder, w: Workload) {
    let mut rng = ChaCha8Rng::seed_from_u64(w.seed.wrapping_mul(31).wrapping_add(p));
    let mut counter = 0u64;
    // Last value seen per key: cas guesses it, so some succeed.
    let mut seen: BTreeMap<String, Option<i64>> = BTreeMap::new();
    for _ in 0..w.max_ops {
        if w.pacing.think_ms > 0 {
            let drawn = rng.random_range(0..=2 * w.pacing.think_ms);
            let now = w.start.elapsed().as_millis() as u64;
            let pause = w.pacing.pause_ms(now, drawn);
            if pause > 0 {
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
        if Instant::now() >= w.stop_at {
            break;
        }
        let key = key_name(rng.random_range(0..w.keys));
        match rng.random_range(0..100) {
            0..=39 => {
                rec.invoke(p, "get", &key, Value::Null);
                match c.get(&key).await {
                    Ok(v) => {
                        seen.insert(key.clone(), v.as_ref().and_then(|s| s.parse().ok()));
                        rec.complete(p, OpType::Ok, "get", &key, to_value(v), None);
                    }
                    Err(e) => rec.complete(
                        p,
                        OpType::Fail,
                        "get",
                        &key,
                        Value::Null,
                        Some(e.to_string()),
                    ),
                }
            }
            40..=74 => {
                counter += 1;
                let v = ((p + 1) * 1_000_000 + counter) as i64;
                rec.invoke(p, "put", &key, json!(v));
                match c.put(&key, &v.to_string()).await {
                    Ok(_) => {
                        seen.insert(key.clone(), Some(v));
                        rec.complete(p, OpType::Ok, "put", &key, json!(v), None)
                    }
                    Err(e) => rec.complete(
                        p,
                        error_type(&e),
                        "put",
                        &key,
                        json!(v),
                        Some(e.to_string()),
                    ),
                }
            }
            _ => {
                counter += 1;
                let new = ((p + 1) * 1_000_000 + counter) as i64;
                let expected = seen.get(&key).copied().flatten();
                let arg = json!([expected, new]);
                rec.invoke(p, "cas", &key, arg.clone());
                let exp = expected.map(|e| e.to_string());
                match c.cas(&key, exp.as_deref(), Some(&new.to_string())).await {
                    Ok(r) if r.succeeded => {
                        seen.insert(key.clone(), Some(new));
                        rec.complete(p, OpType::Ok, "cas", &key, arg, None)
                    }
                    Ok(r) => {
                        seen.insert(key.clone(), r.previous.and_then(|s| s.parse().ok()));
                        rec.complete(p, OpType::Fail, "cas", &key, arg, None)
                    }
                    Err(e) => {
                        rec.complete(p, error_type(&e), "cas", &key, arg, Some(e.to_string()))
                    }
                }
            }
        }
    }
}

async fn liveness(p: u64, c: &mut KvClient, rec: &Recorder, keys: u64, nodes: u64) -> Vec<String> {
    let mut failures = Vec::new();
    let started = Instant::now();
    let key = key_name(0);
    let v = 999_000_000i64;
    rec.invoke(p, "put", &key, json!(v));
    match c.put(&key, &v.to_string()).await {
        Ok(_) => rec.complete(p, OpType::Ok, "put", &key, json!(v), None),
        Err(e) => {
            rec.complete(
                p,
                error_type(&e),
                "put",
                &key,
                json!(v),
                Some(e.to_string()),
            );
            failures.push(format!(
                "no write succeeded within {LIVENESS_BOUND:?} after healing: {e}"
            ));
            return failures;
        }
    }
    for k in 0..keys {
        let key = key_name(k);
        rec.invoke(p, "get", &key, Value::Null);
        match c.get(&key).await {
            Ok(v) => rec.complete(p, OpType::Ok, "get", &key, to_value(v), None),
            Err(e) => {
                rec.complete(
                    p,
                    OpType::Fail,
                    "get",
                    &key,
                    Value::Null,
                    Some(e.to_string()),
                );
                failures.push(format!("read of {key} failed after healing: {e}"));
            }
        }
    }
    // Convergence: every node applies everything the leader committed.
    let deadline = started + LIVENESS_BOUND;
    loop {
        let mut applied = Vec::new();
        for id in 1..=nodes {
            applied.push(c.status(id).await.map(|s| (s.commit, s.applied)).ok());
        }
        let max_commit = applied.iter().flatten().map(|(c, _)| *c).max().unwrap_or(0);
        if applied
            .iter()
            .all(|a| a.is_some_and(|(_, ap)| ap >= max_commit))
        {
            break;
        }
        if Instant::now() >= deadline {
            failures.push(format!("nodes did not converge within {LIVENESS_BOUND:?} after healing: (commit, applied) per node {applied:?}"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    failures
}
