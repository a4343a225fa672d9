//! The `tartu` workload of Jepsen mode: the Tartu bookstore as 22 real
//! processes (the books, state and payment store groups of 3 nodes,
//! processes 1-9; two replicas of the books, payment, verification, fraud
//! and suggestions services, 10-19; three order executors, 20-22) and the
//! simulator's scenario `tartu` against them: its clients (each running
//! the orchestrator's pipeline, as the REST API does), its librarian, its
//! liveness bound and its checks ([`crate::scenarios::tartu`]).
//!
//! What differs from the simulator is only where the checks read from: the
//! services' and the clients' vector-clock logs are files
//! (`data/vclock/*.jsonl`), and the two participants (the books and
//! payment services) append the coordinator calls they accepted to
//! `sN.effects.jsonl` (`bookstore tartu-proc --effects`), stamped with
//! CLOCK_MONOTONIC like the nodes' Raft events.

use super::{play_then_heal, Cluster, Options, Ports, Ran, Schedule};
use crate::shopload::kv_options;
use crate::tartuload::{
    books_change, check_history, checkout, draw_order, fencing_violations, settle,
    vclock_violations, Accepted,
};
use bookstore::shop::Store;
use bookstore::tartu::books::BooksDb;
use bookstore::tartu::orchestrator::{Orchestrator, OrchestratorConfig};
use bookstore::tartu::participants::Resource;
use bookstore::tartu::{Topology, VcEvent, VcLog, WallClock};
use checker::history::History;
use harness::recorder::Recorder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Processes: 9 store nodes, 10 service replicas, 3 executors.
pub const PROCS: u64 = 22;

/// The store groups' names, in process order (1-3, 4-6, 7-9).
pub const GROUP_NAMES: [&str; 3] = ["books", "state", "payment"];

/// The first executor's process; executors are not reached by anyone.
pub const FIRST_EXECUTOR: u64 = 20;

/// Process `i`'s `bookstore tartu-proc` role and replica (i >= 10).
pub fn role(i: u64) -> (&'static str, u64) {
    match i {
        10 | 11 => ("books", i - 9),
        12 | 13 => ("payment", i - 11),
        14 | 15 => ("verification", i - 13),
        16 | 17 => ("fraud", i - 15),
        18 | 19 => ("suggestions", i - 17),
        _ => ("executor", i - 19),
    }
}

/// Whether process `i` is a participant (it reports its effects).
pub fn participant(i: u64) -> bool {
    (10..=13).contains(&i)
}

/// What the services, the executors and the clients use: every store
/// node and service replica through its users' proxy.
pub fn topology(ports: &Ports) -> Topology {
    let group = |first: u64| (0..3).map(|k| (k + 1, ports.client(first + k))).collect();
    let svc = |first: u64| vec![ports.client(first), ports.client(first + 1)];
    Topology {
        books_kv: group(1),
        state_kv: group(4),
        payment_kv: group(7),
        books: svc(10),
        payment: svc(12),
        verification: svc(14),
        fraud: svc(16),
        suggestions: svc(18),
    }
}

/// The executor that holds the lease, as the state group says (process
/// number), read directly (not through the faults).
pub async fn executor_leader(state: &std::collections::BTreeMap<u64, String>) -> Option<u64> {
    let mut kv = bookstore::client::KvClient::new(
        state.clone(),
        1_000_002,
        bookstore::client::ClientOptions::default(),
    );
    let got = tokio::time::timeout(Duration::from_millis(500), kv.get("exec/leader")).await;
    let lease: bookstore::tartu::executor::LeaderLease =
        serde_json::from_str(&got.ok()?.ok()??).ok()?;
    (1..=3)
        .contains(&lease.owner)
        .then_some(FIRST_EXECUTOR - 1 + lease.owner)
}

/// The workload: the catalogue seeded, then the clients and the
/// librarian while the schedule plays, every queued order executed or
/// failed within [`LIVENESS_BOUND`] of healing, the final state and the
/// replica comparison.
pub(super) async fn run(
    o: &Options,
    s: &Schedule,
    cluster: &Arc<Cluster>,
    t: &Topology,
    rec: &Recorder,
    start: Instant,
) -> Result<Ran, String> {
    let db = BooksDb::new(Store::new(t.books_kv.clone(), kv_options()));
    let want = tartu_core::catalogue::seed().len();
    let deadline = Instant::now() + Duration::from_secs(60);
    let books = loop {
        let last = match db.list().await {
            Ok(books) if books.len() == want => break books,
            Ok(books) => format!("{} of {want} books", books.len()),
            Err(e) => e.to_string(),
        };
        if Instant::now() > deadline {
            return Err(format!(
                "setup: the catalogue was not seeded within 60 s ({last}); see {}/s10.log",
                o.out.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let init: Map<String, Value> = books
        .iter()
        .map(|b| (b.id.clone(), json!({"title": b.title, "stock": b.stock})))
        .collect();
    rec.named("setup", "init", json!({ "books": init }));

    let start = start.max(Instant::now());
    let stop_at = start + Duration::from_millis(s.duration_ms);
    let real: Vec<(String, i64)> = books
        .iter()
        .filter(|b| b.category != tartu_core::catalogue::TEMPLATE_CATEGORY)
        .map(|b| (b.title.clone(), b.stock))
        .collect();
    let vclock_dir = o.out.join("data").join("vclock");
    let mut tasks = Vec::new();
    for p in 1..=s.clients {
        let path = vclock_dir.join(format!("orchestrator-c{p}.jsonl"));
        let log = VcLog::file(format!("orchestrator-c{p}"), &path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let wall = WallClock::system(bookstore::clock::Clock::new());
        let orch = Orchestrator::new(OrchestratorConfig::new(t.clone(), wall, log));
        let (rec, real, seed, think_ms) = (rec.clone(), real.clone(), s.seed, o.think_ms);
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x7a27).wrapping_add(p));
            let mut i = 0;
            while Instant::now() < stop_at {
                let (intent, order) = draw_order(&mut rng, &real, p, i);
                checkout(&orch, &rec, p, &format!("o-{p}-{i}"), intent, &order).await;
                i += 1;
                let pause = rng.random_range(0..=2 * think_ms);
                super::pause_until(pause, stop_at).await;
            }
        }));
    }
    // The librarian: restocks, removals and new prices, mostly of the
    // scarcest books, racing the orders' stock debits.
    {
        let mut ids: Vec<(String, i64)> = books
            .iter()
            .filter(|b| b.category != tartu_core::catalogue::TEMPLATE_CATEGORY)
            .map(|b| (b.id.clone(), b.stock))
            .collect();
        ids.sort_by_key(|(id, stock)| (*stock, id.clone()));
        let (rec, p, seed) = (rec.clone(), s.clients + 1, s.seed);
        tasks.push(tokio::spawn(async move {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0b00_c5ef_u64);
            loop {
                super::pause_until(rng.random_range(300..=1_500), stop_at).await;
                if Instant::now() >= stop_at {
                    break;
                }
                let id = if rng.random_bool(0.7) {
                    ids[rng.random_range(0..5)].0.clone()
                } else {
                    ids[rng.random_range(0..ids.len())].0.clone()
                };
                books_change(&db, &rec, p, &id, &mut rng).await;
            }
        }));
    }
    let died = play_then_heal(s, cluster, rec, start, tasks).await?;

    let (fin, mut live, diverged) = settle(t).await;
    match fin {
        Ok(v) => rec.named("final", "final", v),
        Err(e) => live.push(format!("could not read the final state after healing: {e}")),
    }
    live.extend(died);
    Ok(Ran { live, diverged })
}

/// The scenario's checks over the run: 2PC, liveness of approved orders
/// and conservation over the history; the vector-clock logs against the
/// scheme; mutual exclusion from the participants' effect logs. Returns
/// the failures and a one-line summary.
pub(super) fn check(
    history: &History,
    out: &Path,
    wall0: u64,
) -> (Vec<(&'static str, String)>, String) {
    let mut failures: Vec<(&'static str, String)> = check_history(history)
        .into_iter()
        .map(|f| (f.check, f.message))
        .collect();

    let (events, files) = read_vclock(&out.join("data").join("vclock"));
    for v in vclock_violations(&events) {
        failures.push(("vclock", v));
    }

    let (accepted, refused) = read_effects(out, wall0);
    for v in fencing_violations(&accepted) {
        failures.push(("mutual-exclusion", v));
    }
    // Checks that read nothing pass nothing: holds were committed, so the
    // participants accepted calls, and orders were approved, so the
    // services logged events.
    let null = Value::Null;
    let fin = history
        .ops
        .iter()
        .rev()
        .find(|o| o.f == "final")
        .map_or(&null, |o| &o.value);
    let committed = ["stock_holds", "money_holds"]
        .iter()
        .flat_map(|k| fin[*k].as_object().into_iter().flat_map(|m| m.values()))
        .filter(|h| h["state"] == "committed")
        .count();
    if accepted.is_empty() && committed > 0 {
        failures.push((
            "mutual-exclusion",
            format!("{committed} holds were committed, but no participant call was read from s10-s13.effects.jsonl"),
        ));
    }
    let approved = history
        .ops
        .iter()
        .any(|o| o.f == "checkout" && o.kind == checker::history::OpType::Ok);
    if events.is_empty() && approved {
        failures.push((
            "vclock",
            "checkouts were approved, but no vector-clock event was read from data/vclock/".into(),
        ));
    }
    // What the run exercised: leader changes, attempts presumed aborted.
    let retried = fin["stock_holds"].as_object().map_or(0, |h| {
        h.keys()
            .filter(|tx| bookstore::tartu::participants::split_tx(tx).1 > 1)
            .count()
    });
    let summary = format!(
        "{} vector-clock events from {files} logs, {} participant calls accepted and {refused} refused for a stale token, executor lease token {}, {retried} attempts presumed aborted and tried again",
        events.len(),
        accepted.len(),
        fin["exec"]["token"].as_u64().unwrap_or(0)
    );
    (failures, summary)
}

/// Every vector-clock event of the run's logs (a line a kill cut short is
/// skipped), and how many logs there were. Each file is one source (a
/// process incarnation), in its own order; the checker needs no order
/// across sources.
fn read_vclock(dir: &Path) -> (Vec<VcEvent>, usize) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let mut events = Vec::new();
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        events.extend(
            text.lines()
                .filter_map(|l| serde_json::from_str::<VcEvent>(l).ok()),
        );
    }
    (events, files.len())
}

/// The participants' accepted calls (ns since the recorder started) and
/// how many were refused.
fn read_effects(out: &Path, wall0: u64) -> (Vec<Accepted>, usize) {
    let (mut accepted, mut refused) = (Vec::new(), 0);
    for i in (10..=PROCS).filter(|&i| participant(i)) {
        let Ok(text) = std::fs::read_to_string(out.join(format!("s{i}.effects.jsonl"))) else {
            continue;
        };
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let resource = match v["resource"].as_str() {
                Some("Stock") => Resource::Stock,
                Some("Money") => Resource::Money,
                _ => continue,
            };
            if v["refused"].as_bool() == Some(true) {
                refused += 1;
                continue;
            }
            let ns = |k: &str| v[k].as_u64().map(|t| t.saturating_sub(wall0));
            let (Some(began_ns), Some(applied_ns), Some(token)) =
                (ns("started_ns"), ns("time_ns"), v["token"].as_u64())
            else {
                continue;
            };
            accepted.push(Accepted {
                resource,
                tx: v["tx"].as_str().unwrap_or("").to_string(),
                op: v["op"].as_str().unwrap_or("").to_string(),
                token,
                began_ns,
                applied_ns,
            });
        }
    }
    (accepted, refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An approved checkout and a committed hold, but no vector-clock log
    /// and no effect log: both checks fail instead of passing on nothing.
    #[test]
    fn checks_that_read_nothing_fail() {
        let text = [
            r#"{"index":0,"time":0,"process":1,"type":"invoke","f":"checkout","value":{"order":"o-1-0","intent":"valid"}}"#,
            r#"{"index":1,"time":1,"process":1,"type":"ok","f":"checkout","value":{"order":"o-1-0","intent":"valid","answer":"approved"}}"#,
            r#"{"index":2,"time":2,"process":"final","type":"ok","f":"final","value":{"books":{},"accounts":{},"stock_holds":{"o-1-0#1":{"state":"committed","token":1,"debits":[]}},"money_holds":{},"status":{},"decisions":{}}}"#,
        ]
        .join("\n");
        let h = History::from_jsonl(&text).unwrap();
        let empty = std::env::temp_dir().join(format!("jepsen-tartu-empty-{}", std::process::id()));
        let (failures, _) = check(&h, &empty, 0);
        let has = |check: &str, text: &str| {
            failures
                .iter()
                .any(|(c, m)| *c == check && m.contains(text))
        };
        assert!(
            has("mutual-exclusion", "1 holds were committed"),
            "{failures:?}"
        );
        assert!(
            has("vclock", "no vector-clock event was read"),
            "{failures:?}"
        );
    }
}
