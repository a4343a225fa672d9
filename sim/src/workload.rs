//! The `kv` workload, shared by the simulator's scenario `kv` and the
//! `jepsen` runner (real processes): clients doing random `get`, `put` and
//! `cas` on a few keys, each recorded as an operation of the history; the
//! liveness probe after healing. Runs on whichever runtime it is built for.

use crate::pacing::Pacing;
use bookstore::client::{ClientError, ClientOptions, KvClient};
use checker::history::OpType;
use harness::recorder::{Completion, Recorder};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// How long after healing the cluster has to serve again.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(15);

pub fn client_options() -> ClientOptions {
    ClientOptions {
        attempt_timeout: Duration::from_millis(300),
        // A write keeps retrying to learn its outcome, as a careful client
        // does; only one still unresolved after 10 s is recorded as unknown.
        total_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_millis(1500),
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        pipeline: false,
    }
}

pub fn key_name(k: u64) -> String {
    format!("k{k}")
}

pub fn to_value(v: Option<String>) -> Value {
    match v {
        None => Value::Null,
        Some(s) => s
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::String(s)),
    }
}

/// A failed write or cas: certainly not done, or unknown.
pub fn failed(value: Value, e: &ClientError) -> Completion {
    if e.is_unknown() {
        Completion::unknown(value, e.to_string())
    } else {
        Completion::fail(value, Some(e.to_string()))
    }
}

/// What each client of a seed does.
pub struct Workload {
    pub keys: u64,
    pub max_ops: u64,
    pub pacing: Pacing,
    /// When the workload phase began (busy windows count from here).
    pub start: Instant,
    pub stop_at: Instant,
    pub seed: u64,
}

pub async fn client_loop(p: u64, mut c: KvClient, rec: Recorder, w: Workload) {
    let mut rng = ChaCha8Rng::seed_from_u64(w.seed.wrapping_mul(31).wrapping_add(p));
    let mut counter = 0u64;
    // Last value seen per key: cas guesses it, so some succeed.
    let mut seen: BTreeMap<String, Option<i64>> = BTreeMap::new();
    for _ in 0..w.max_ops {
        if w.pacing.think_ms > 0 {
            let drawn = rng.random_range(0..=w.pacing.think_ms.saturating_mul(2));
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
        let k = Some(key.as_str());
        match rng.random_range(0..100) {
            0..=39 => {
                rec.op(p, "get", k, Value::Null, async {
                    match c.get(&key).await {
                        Ok(v) => {
                            seen.insert(key.clone(), v.as_ref().and_then(|s| s.parse().ok()));
                            Completion::ok(to_value(v))
                        }
                        Err(e) => Completion::fail(Value::Null, Some(e.to_string())),
                    }
                })
                .await;
            }
            40..=74 => {
                counter += 1;
                let v = ((p + 1) * 1_000_000 + counter) as i64;
                rec.op(p, "put", k, json!(v), async {
                    match c.put(&key, &v.to_string()).await {
                        Ok(_) => {
                            seen.insert(key.clone(), Some(v));
                            Completion::ok(json!(v))
                        }
                        Err(e) => failed(json!(v), &e),
                    }
                })
                .await;
            }
            _ => {
                counter += 1;
                let new = ((p + 1) * 1_000_000 + counter) as i64;
                let expected = seen.get(&key).copied().flatten();
                let arg = json!([expected, new]);
                let exp = expected.map(|e| e.to_string());
                rec.op(p, "cas", k, arg.clone(), async {
                    match c.cas(&key, exp.as_deref(), Some(&new.to_string())).await {
                        Ok(r) if r.succeeded => {
                            seen.insert(key.clone(), Some(new));
                            Completion::ok(arg)
                        }
                        Ok(r) => {
                            seen.insert(key.clone(), r.previous.and_then(|s| s.parse().ok()));
                            Completion::fail(arg, None)
                        }
                        Err(e) => failed(arg, &e),
                    }
                })
                .await;
            }
        }
    }
}

pub async fn liveness(
    p: u64,
    c: &mut KvClient,
    rec: &Recorder,
    keys: u64,
    nodes: u64,
) -> Vec<String> {
    let mut failures = Vec::new();
    let started = Instant::now();
    let key = key_name(0);
    let v = 999_000_000i64;
    let put = rec
        .op(p, "put", Some(&key), json!(v), async {
            match c.put(&key, &v.to_string()).await {
                Ok(_) => Completion::ok(json!(v)),
                Err(e) => failed(json!(v), &e),
            }
        })
        .await;
    if put.kind != OpType::Ok {
        failures.push(format!(
            "no write succeeded within {} s after healing: {}",
            LIVENESS_BOUND.as_secs(),
            put.error.unwrap_or_default()
        ));
        return failures;
    }
    for k in 0..keys {
        let key = key_name(k);
        let got = rec
            .op(p, "get", Some(&key), Value::Null, async {
                match c.get(&key).await {
                    Ok(v) => Completion::ok(to_value(v)),
                    Err(e) => Completion::fail(Value::Null, Some(e.to_string())),
                }
            })
            .await;
        if got.kind != OpType::Ok {
            failures.push(format!(
                "read of {key} failed after healing: {}",
                got.error.unwrap_or_default()
            ));
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
            let per_node: Vec<String> = applied
                .iter()
                .zip(1..)
                .map(|(a, id)| match a {
                    Some((commit, ap)) => format!("node {id} commit {commit} applied {ap}"),
                    None => format!("node {id} did not answer"),
                })
                .collect();
            failures.push(format!(
                "nodes did not converge within {} s after healing (every node must apply entry {max_commit}, the highest commit): {}",
                LIVENESS_BOUND.as_secs(),
                per_node.join(", ")
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    failures
}
