//! Runs one seed: a fresh madsim runtime seeded with the schedule's seed,
//! the scenario inside it, then the checks over what was recorded. A panic
//! anywhere in the simulation (a node's assertion, a deadlock) is a failure
//! with its message, not a crash of the harness.

use crate::recorder::Recorder;
use crate::scenarios;
use crate::schedule::Schedule;
use bookstore::bugs::Bugs;
use checker::history::History;
use checker::linear::{self, CheckResult, Verdict};
use checker::model::ModelKind;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Failure {
    /// Which check: `linearizability`, `invariants`, `raft`, `liveness` or `panic`.
    pub check: &'static str,
    pub message: String,
}

pub struct RunResult {
    pub schedule: Schedule,
    pub failures: Vec<Failure>,
    pub history: History,
    pub lin: Option<CheckResult>,
    /// FNV-1a of the whole history (client ops, nemesis and node events with their times).
    pub trace_hash: u64,
    /// Simulated time the run took.
    pub sim_ms: u64,
    pub client_ops: usize,
    /// Wall-clock time spent checking (outside the simulation).
    pub check_wall: Duration,
}

impl RunResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    pub fn first_check(&self) -> Option<&'static str> {
        self.failures.first().map(|f| f.check)
    }
}

/// FNV-1a of the history's JSON Lines form (`History::to_jsonl`), hashed as
/// it is written rather than built as one string first.
pub fn trace_hash(h: &History) -> u64 {
    struct Fnv(u64);
    impl std::io::Write for Fnv {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = bookstore::node::digest_extend(self.0, buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = Fnv(bookstore::node::digest(b""));
    for op in &h.ops {
        serde_json::to_writer(&mut w, op).expect("an Op always serializes");
        std::io::Write::write_all(&mut w, b"\n").expect("hashing cannot fail");
    }
    w.0
}

/// Runs `schedule` and checks it. Deterministic: the same schedule gives the
/// same history, bit for bit.
pub fn run(schedule: &Schedule) -> RunResult {
    let bugs = match &schedule.bug {
        Some(b) => Bugs::from_name(b).expect("bug names are validated by the CLI"),
        None => Bugs::default(),
    };
    let mut rt =
        madsim::runtime::Runtime::with_seed_and_config(schedule.seed, madsim::Config::default());
    // Generous: the checks, not this limit, should catch a slow system.
    rt.set_time_limit(Duration::from_millis(schedule.duration_ms) + Duration::from_secs(300));
    let slot: Arc<Mutex<Option<(Recorder, u64)>>> = Arc::new(Mutex::new(None));
    let s2 = schedule.clone();
    let slot2 = slot.clone();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        rt.block_on(async move {
            let rec = Recorder::new();
            *slot2.lock().unwrap() = Some((rec.clone(), 0));
            let live = match s2.scenario.as_str() {
                "kv" => scenarios::kv::run(&s2, bugs, rec.clone()).await,
                "checkout" => scenarios::checkout::run(&s2, bugs, rec.clone()).await,
                other => panic!("unknown scenario {other}"),
            };
            slot2.lock().unwrap().as_mut().unwrap().1 = rec.elapsed_ms();
            live
        })
    }));
    let (rec, sim_ms) = slot.lock().unwrap().take().expect("the runtime started");
    let history = rec.take_history();
    let mut failures = Vec::new();
    match outcome {
        Ok(live) => failures.extend(live.into_iter().map(|m| Failure {
            check: "liveness",
            message: m,
        })),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into());
            failures.push(Failure {
                check: "panic",
                message: msg,
            });
        }
    }
    for v in rec.raft_violations() {
        failures.push(Failure {
            check: "raft",
            message: v,
        });
    }
    let check_start = std::time::Instant::now();
    let mut lin = None;
    if schedule.scenario == "checkout" {
        // Only with a final state: without one, liveness already failed.
        let has_final = history.ops.iter().any(|o| o.f == "final");
        if has_final {
            let r = checker::invariants::check_checkout(&history);
            match r.verdict {
                checker::invariants::Verdict::Valid => {}
                checker::invariants::Verdict::Invalid => {
                    for v in r.violations.iter().take(10) {
                        failures.push(Failure {
                            check: "invariants",
                            message: format!("{}: {}", v.kind.name(), v.message),
                        });
                    }
                }
                checker::invariants::Verdict::BadInput => failures.push(Failure {
                    check: "invariants",
                    message: format!("history not checkable: {}", r.error.unwrap_or_default()),
                }),
            }
        }
    } else {
        let opts = linear::Options {
            timeout: Some(Duration::from_secs(60)),
            threads: 1,
            ..Default::default()
        };
        let r = linear::check(&history, ModelKind::Kv, &opts);
        match r.verdict {
            Verdict::Linearizable => {}
            Verdict::NotLinearizable => failures.push(Failure {
                check: "linearizability",
                message: r
                    .explanation
                    .clone()
                    .unwrap_or_else(|| "not linearizable".into()),
            }),
            Verdict::Unknown => failures.push(Failure {
                check: "linearizability",
                message: format!(
                    "checker gave no verdict: {}",
                    r.unknown_reason.clone().unwrap_or_default()
                ),
            }),
        }
        lin = Some(r);
    }
    // Safety failures first: they are what a shrink should preserve.
    failures.sort_by_key(|f| match f.check {
        "raft" => 0,
        "linearizability" | "invariants" => 1,
        "panic" => 2,
        _ => 3,
    });
    let client_ops = history
        .ops
        .iter()
        .filter(|o| o.is_client() && o.kind == checker::history::OpType::Invoke)
        .count();
    let check_wall = check_start.elapsed();
    RunResult {
        schedule: schedule.clone(),
        trace_hash: trace_hash(&history),
        failures,
        history,
        lin,
        sim_ms,
        client_ops,
        check_wall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_hash_is_the_digest_of_the_jsonl_history() {
        let text = "{\"process\":0,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"k1\",\"value\":1,\"time\":5}\n\
                    {\"process\":0,\"type\":\"ok\",\"f\":\"put\",\"key\":\"k1\",\"value\":1,\"time\":9}\n";
        let h = History::from_jsonl(text).unwrap();
        assert_eq!(
            trace_hash(&h),
            bookstore::node::digest(h.to_jsonl().as_bytes())
        );
        let mut other = h.clone();
        other.ops[1].time = Some(10);
        assert_ne!(trace_hash(&h), trace_hash(&other));
    }
}
