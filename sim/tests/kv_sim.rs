//! Simulated tests of the Raft KV store (run with `cargo simtest`).
//! `#[madsim::test]` honours MADSIM_TEST_SEED and MADSIM_TEST_NUM, so a
//! failing seed printed here replays with `MADSIM_TEST_SEED=N cargo simtest`.
#![cfg(madsim)]

use harness::runner;
use harness::scenario::Scenario;
use harness::schedule::{Fault, FaultConfig, FaultEvent, FaultSelection, Schedule};
use sim::raft::{RaftFault, KINDS};
use sim::scenarios::kv::Kv;

/// Runs a schedule of any of the bookstore's scenarios.
fn run(s: &Schedule) -> runner::RunResult {
    let scenario = sim::scenarios::by_name(&s.scenario).expect("a bookstore scenario");
    runner::run(scenario, s)
}

/// A fixed schedule with the three faults the Raft issue names: a crash of a
/// node (losing unsynced writes), a partition, and packet loss.
fn crash_partition_loss(seed: u64) -> Schedule {
    let mut s = Kv.generate(seed, None, &FaultSelection::parse("none", &KINDS).unwrap());
    s.nodes = 3;
    s.clients = 4;
    s.set_param("keys", 2);
    s.duration_ms = 12_000;
    s.config = FaultConfig {
        kinds: Default::default(),
        ..s.config
    };
    s.faults = vec![
        FaultEvent {
            at_ms: 1_000,
            duration_ms: 2_000,
            fault: Fault::Crash {
                node: 1,
                torn_write: true,
                corrupt: false,
                damage: None,
            },
        },
        FaultEvent {
            at_ms: 4_000,
            duration_ms: 2_500,
            fault: Fault::Partition {
                groups: vec![vec![1], vec![2, 3]],
            },
        },
        FaultEvent {
            at_ms: 7_000,
            duration_ms: 3_000,
            fault: Fault::Loss { rate: 0.2 },
        },
        FaultEvent {
            at_ms: 8_000,
            duration_ms: 1_500,
            fault: Fault::custom(&RaftFault::IsolateLeader),
        },
    ];
    s
}

/// Every acknowledged write is readable afterwards. Besides the scenario's
/// clients (whose history must be linearizable), a writer puts unique keys
/// throughout the faults; after healing, every key it saw acknowledged must
/// be readable with its value. Runs on the test's own madsim seed.
#[madsim::test]
async fn acknowledged_writes_survive_crash_partition_and_loss() {
    use bookstore::client::{ClientOptions, KvClient};
    use std::time::Duration;
    let seed = madsim::runtime::Handle::current().seed();
    let s = crash_partition_loss(seed);
    let peers: std::collections::BTreeMap<u64, String> = (1..=s.nodes)
        .map(|i| (i, harness::sim::addr(i, sim::raft::PORT)))
        .collect();
    let host = madsim::runtime::Handle::current()
        .create_node()
        .name("unique-writer")
        .ip("10.0.2.1".parse().unwrap())
        .build();
    let opts = ClientOptions {
        attempt_timeout: Duration::from_millis(300),
        ..ClientOptions::default()
    };
    let (p2, o2, end) = (peers.clone(), opts.clone(), s.duration_ms);
    let writer = host.spawn(async move {
        let mut c = KvClient::new(p2, 9_000, o2);
        let stop = tokio::time::Instant::now() + Duration::from_millis(end);
        let mut acked = Vec::new();
        let mut i = 0;
        while tokio::time::Instant::now() < stop {
            i += 1;
            if c.put(&format!("u{i}"), &format!("v{i}")).await.is_ok() {
                acked.push(i);
            }
        }
        acked
    });
    // The scenario in this test's own runtime (its seed is the test's).
    let r = runner::run_in_current(&Kv, &s).await;
    assert!(r.passed(), "{:?}", r.failures);
    let acked = writer.await.unwrap();
    assert!(
        acked.len() > 50,
        "the writer made progress: {} acknowledged",
        acked.len()
    );
    let missing = host
        .spawn(async move {
            let mut c = KvClient::new(peers, 9_001, opts);
            let mut missing = Vec::new();
            for i in acked {
                if c.get(&format!("u{i}")).await.unwrap() != Some(format!("v{i}")) {
                    missing.push(i);
                }
            }
            missing
        })
        .await
        .unwrap();
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in [1, 2, 3, 4] {
        let s = Kv.generate(seed, None, &FaultSelection::parse("all", &KINDS).unwrap());
        let (a, b) = (run(&s), run(&s));
        assert!(a.passed(), "seed {seed}: {:?}", a.failures);
        assert_eq!(
            a.trace_hash(),
            b.trace_hash(),
            "seed {seed} is not deterministic"
        );
        assert!(
            a.history.ops.len() > 200,
            "seed {seed}: a short history ({} events)",
            a.history.ops.len()
        );
    }
    let a = run(&crash_partition_loss(5));
    assert_eq!(a.trace_hash(), run(&crash_partition_loss(5)).trace_hash());
    let b = run(&crash_partition_loss(6));
    assert_ne!(
        a.trace_hash(),
        b.trace_hash(),
        "different seeds must differ"
    );
}

#[test]
fn a_planted_bug_is_caught_and_replays_identically() {
    // duplicate-apply: a retried write is applied twice.
    let found = (0..60).map(|seed| {
        let s = Kv.generate(seed, Some("duplicate-apply"), &FaultSelection::Swarm);
        (seed, run(&s))
    });
    let (seed, r) = found
        .into_iter()
        .find(|(_, r)| !r.passed())
        .expect("duplicate-apply found within 60 seeds");
    let again = run(&r.schedule);
    assert_eq!(
        again.trace_hash(),
        r.trace_hash(),
        "seed {seed} replays bit for bit"
    );
    assert_eq!(again.first_check(), r.first_check());
}

/// A shrink keeps of each fault only what its failure needs: seed 77 of
/// `figure8` (every kind) fails under a leader churn that also crashes the
/// seed's bad disk (host 5, a misdirected write); the bug needs the churn,
/// not the damage, and the shrunk churn has no bad disk. Before the
/// shrinker asked the scenario for simpler faults, it kept it. (Seed 5
/// showed it until step 14 of the README's "Scenario checkout" changed
/// every run; it now shrinks to four faults.)
#[test]
fn a_shrunk_leader_churn_loses_the_bad_disk_its_failure_does_not_need() {
    let all = FaultSelection::Only(KINDS.iter().map(|k| k.to_string()).collect());
    let s = Kv.generate(77, Some("figure8"), &all);
    let original = runner::run(&Kv, &s);
    assert_eq!(original.first_check(), Some("raft"));
    let shrunk = harness::shrink::shrink(&Kv, original, 200, |_| {});
    assert_eq!(shrunk.result.first_check(), Some("raft"));
    assert_eq!(
        shrunk.schedule.faults.len(),
        1,
        "{:?}",
        shrunk.schedule.faults
    );
    let left = shrunk.schedule.faults[0].fault.as_custom::<RaftFault>();
    assert!(
        matches!(left, Some(RaftFault::LeaderChurn { bad_disk: None, .. })),
        "{left:?}"
    );
    // The same churn, as the seed drew it, carried one.
    let at = shrunk.schedule.faults[0].at_ms;
    let drawn = s.faults.iter().find(|f| f.at_ms == at).expect("drawn");
    assert!(matches!(
        drawn.fault.as_custom::<RaftFault>(),
        Some(RaftFault::LeaderChurn {
            bad_disk: Some(_),
            ..
        })
    ));
}

/// A sweep's seeds and a shrink's candidates run for their verdict only
/// (`runner::run_verdict`): the same run, with the same verdict, coverage
/// and simulated time, whose history is the full one without the nodes'
/// commit, applied and read events. A failing kv seed (the Raft check
/// follows those events on the bus) and a passing checkout seed.
#[test]
fn a_run_for_its_verdict_is_the_same_run_without_the_bulky_events() {
    let kv = Kv.generate(4, Some("stale-read"), &FaultSelection::Swarm);
    let checkout = sim::scenarios::by_name("checkout").unwrap().generate(
        2,
        None,
        &FaultSelection::parse("all", &KINDS).unwrap(),
    );
    for (s, fails) in [(kv, true), (checkout, false)] {
        let scenario = sim::scenarios::by_name(&s.scenario).unwrap();
        let (full, lean) = (runner::run(scenario, &s), runner::run_verdict(scenario, &s));
        assert_eq!(!full.passed(), fails, "{}: {:?}", s.scenario, full.failures);
        if fails {
            // The check that follows the left-out events on the bus.
            assert_eq!(full.first_check(), Some("raft"), "{:?}", full.failures);
        }
        assert_eq!(full.failed_checks(), lean.failed_checks(), "{}", s.scenario);
        assert_eq!(full.coverage, lean.coverage, "{}", s.scenario);
        assert_eq!(
            (full.sim_ms, full.client_ops),
            (lean.sim_ms, lean.client_ops)
        );
        let bulky = ["commit", "applied", "read-arrived", "read-served"];
        let key = |o: &checker::history::Op| {
            (
                o.process.clone(),
                o.kind,
                o.f.clone(),
                o.key.clone(),
                o.value.clone(),
                o.time,
            )
        };
        let kept: Vec<_> = full
            .history
            .ops
            .iter()
            .filter(|o| o.is_client() || !bulky.contains(&o.f.as_str()))
            .map(key)
            .collect();
        let lean_ops: Vec<_> = lean.history.ops.iter().map(key).collect();
        assert!(kept == lean_ops, "{}: the histories differ", s.scenario);
        assert!(
            lean_ops.len() * 2 < full.history.ops.len(),
            "{}: {} of {} events left",
            s.scenario,
            lean_ops.len(),
            full.history.ops.len()
        );
        if fails {
            // Run again for the report: the same checks fail, with every
            // event this time; a verdict the second run does not repeat is
            // reported as not deterministic.
            let again = runner::rerun_with_detail(scenario, &lean);
            assert_eq!(again.failed_checks(), full.failed_checks());
            assert_eq!(again.history.ops.len(), full.history.ops.len());
            let mut other = lean;
            other.failures[0].check = "linearizability";
            let again = runner::rerun_with_detail(scenario, &other);
            assert_eq!(again.first_check(), Some("harness"), "{:?}", again.failures);
            assert!(again.failures[0].message.contains("not deterministic"));
        }
    }
}

/// Every failure kept in histories/ replays: with its planted bug it fails
/// the same check, and with the bug off the same schedule passes. A failure
/// of the system itself (no planted bug), since fixed, must pass.
#[test]
fn committed_histories() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../histories");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path().join("schedule.json");
        if !path.exists() {
            continue;
        }
        n += 1;
        let s: Schedule = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let expected = std::fs::read_to_string(path.with_file_name("failure.txt")).unwrap();
        let r = run(&s);
        if s.bug.is_none() {
            // A bug of the system itself, since fixed: it must stay fixed.
            assert!(
                r.passed(),
                "{} fails again: {:?}",
                path.display(),
                r.failures
            );
            continue;
        }
        let check = r
            .first_check()
            .unwrap_or_else(|| panic!("{} no longer fails", path.display()));
        assert!(
            expected.starts_with(&format!("[{check}]")),
            "{}: now fails [{check}], was: {expected}",
            path.display()
        );
        let fixed = run(&Schedule { bug: None, ..s });
        assert!(
            fixed.passed(),
            "{} fails without its bug: {:?}",
            path.display(),
            fixed.failures
        );
    }
    assert!(n >= 1, "no committed schedules found in {dir}");
}

/// kv with every fault kind and clients back to back: the flags of the CLI
/// tests below.
const KV_ALL_BACK_TO_BACK: [&str; 6] = ["--scenario", "kv", "--faults", "all", "--think-ms", "0"];

/// `sim run --check-determinism` runs a seed twice in one process. Seed 17
/// differed there while the node's `select!` drew its branch order from
/// tokio's thread-local RNG, whose state outlives a run.
#[test]
fn the_cli_runs_a_seed_twice_in_one_process_identically() {
    let out_dir = std::env::temp_dir().join(format!("sim-determinism-{}", std::process::id()));
    for seed in ["17", "3"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
            .arg("run")
            .args(KV_ALL_BACK_TO_BACK)
            .arg("--check-determinism")
            .args(["--seed", seed, "--out"])
            .arg(&out_dir)
            .output()
            .expect("the sim binary runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("determinism: OK"),
            "seed {seed} differs between two runs in one process:\n{stdout}"
        );
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// A sweep's worker process (`sim run --worker`) runs its seeds one after
/// the other: each must run as it does alone in a fresh process (the same
/// simulated time, events, coverage and failure), after passing and failing
/// seeds alike. (Tokio's thread-local RNG, whose state outlived a run, made
/// the second run in a process differ: see the test above.)
#[test]
fn a_worker_runs_each_seed_as_a_fresh_process_does() {
    use std::io::Write;
    let out_dir = std::env::temp_dir().join(format!("sim-worker-{}", std::process::id()));
    let sim = env!("CARGO_BIN_EXE_sim");
    let with_bug = [
        KV_ALL_BACK_TO_BACK.as_slice(),
        &["--bug", "vote-no-log-check"],
    ]
    .concat();
    let cases: [(&[&str], u64); 3] = [
        (&KV_ALL_BACK_TO_BACK, 8),
        (&with_bug, 6),
        (&["--scenario", "checkout", "--faults", "all"], 3),
    ];
    let mut failing = 0;
    for (args, n) in cases {
        let mut worker = std::process::Command::new(sim)
            .args(["run", "--worker"])
            .args(args)
            .arg("--out")
            .arg(&out_dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the sim binary runs");
        let mut stdin = worker.stdin.take().unwrap();
        for seed in 0..n {
            writeln!(stdin, "{seed}").unwrap();
        }
        drop(stdin);
        let out = worker.wait_with_output().unwrap();
        assert!(out.status.success(), "{args:?}: the worker failed");
        let together: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(together.len() as u64, n, "{args:?}: {together:?}");
        for seed in 0..n {
            let alone = std::process::Command::new(sim)
                .args(["run", "--summary"])
                .args(args)
                .args(["--seed", &seed.to_string(), "--out"])
                .arg(&out_dir)
                .output()
                .expect("the sim binary runs");
            let alone = String::from_utf8_lossy(&alone.stdout);
            let alone = alone.lines().last().unwrap_or("");
            assert_eq!(
                together[seed as usize], alone,
                "{args:?} seed {seed}: in a worker after seeds 0..{seed}, and alone"
            );
            assert!(alone.contains("\"events\":"), "{alone}");
            failing += usize::from(!alone.contains("\"failure\":null"));
        }
    }
    // The planted bug's seeds fail: a failing seed's run (and its second
    // run, with every event) leaves nothing that changes the next.
    assert!(failing >= 1, "no failing seed among the cases");
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// A worker that dies mid-seed: that seed is a `harness` failure naming
/// how it died and what it wrote on stderr, and a fresh worker runs the
/// seeds after it.
#[test]
fn a_sweep_reports_a_dead_worker_and_goes_on() {
    let out_dir = std::env::temp_dir().join(format!("sim-dead-worker-{}", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
        .args([
            "sweep",
            "--scenario",
            "kv",
            "--seeds",
            "0..5",
            "--jobs",
            "1",
        ])
        .args(["--quiet", "--out"])
        .arg(&out_dir)
        .env("SIM_TEST_WORKER_ABORT", "2")
        .output()
        .expect("the sim binary runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("5 seeds run in")
            && text.contains("; 1 failed")
            && text.contains("seed 2: [harness] the child run died (signal: 6 (SIGABRT)")
            && text.contains("(after 2 earlier seeds in its worker: run it alone")
            && text.contains("worker: aborting at seed 2"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// A sweep runs its seeds in child `sim run` processes: every flag that
/// chooses what a seed runs must reach them and the printed replay command, which
/// must fail the same way again.
#[test]
fn a_sweep_passes_every_flag_to_its_runs_and_replay_commands() {
    let out_dir = std::env::temp_dir().join(format!("sim-sweep-flags-{}", std::process::id()));
    let sim = env!("CARGO_BIN_EXE_sim");
    let out = std::process::Command::new(sim)
        .args(["sweep", "--scenario", "kv", "--bug", "vote-no-log-check"])
        .args([
            "--faults",
            "all",
            "--think-ms",
            "0",
            "--seeds",
            "0..6",
            "--quiet",
            "--out",
        ])
        .arg(&out_dir)
        .output()
        .expect("the sim binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // `seed N: [check] message` then `replay: cargo sim run ...`.
    let (failure, replay) = stdout
        .lines()
        .zip(stdout.lines().skip(1))
        .find_map(|(a, b)| {
            let failure = a.split_once(": [")?.1;
            let failure: String = format!("[{failure}").chars().take(150).collect();
            Some((
                failure,
                b.trim().strip_prefix("replay: cargo sim run ")?.to_string(),
            ))
        })
        .unwrap_or_else(|| panic!("no failing seed with its replay command:\n{stdout}"));
    for flag in ["--bug vote-no-log-check", "--faults all", "--think-ms 0"] {
        assert!(replay.contains(flag), "replay lacks {flag}: {replay}");
    }
    let again = std::process::Command::new(sim)
        .arg("run")
        .args(replay.split_whitespace())
        .arg("--out")
        .arg(&out_dir)
        .output()
        .expect("the sim binary runs");
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(
        text.contains("clients back to back") && text.contains(&failure),
        "the replay did not fail as the sweep's run did ({failure}):\n{text}"
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// "0 failed" means something only with the coverage floors met: a sweep
/// whose seeds show a counter reached less often than its floor fails and
/// names it (a shortfall chance explains does not); the scenario's own
/// floors hold on the same seeds.
#[test]
fn a_sweep_fails_when_a_coverage_floor_is_missed() {
    let out_dir = std::env::temp_dir().join(format!("sim-floors-{}", std::process::id()));
    let sweep_with = |faults: &str, extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
            .args(["sweep", "--scenario", "kv", "--faults", faults])
            .args(["--seeds", "0..60", "--jobs", "2", "--quiet", "--out"])
            .arg(&out_dir)
            .args(extra)
            .output()
            .expect("the sim binary runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let sweep = |extra: &[&str]| sweep_with("all", extra);
    let (code, text) = sweep(&[]);
    assert_eq!(code, Some(0), "the scenario's floors hold:\n{text}");
    assert!(
        text.contains("raft: a snapshot installed on a follower  floor"),
        "{text}"
    );
    let json = std::fs::read_to_string(out_dir.join("coverage-kv.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["seeds"], 60);
    let floors: Vec<&serde_json::Value> = v["counters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.get("floor"))
        .collect();
    assert!(
        !floors.is_empty() && floors.iter().all(|f| f["enforced"] == true),
        "{json}"
    );
    // The same seeds, with a floor no sweep reaches: 100 % of the seeds
    // restarting a node from its snapshot.
    let (code, text) = sweep(&["--floor", "raft: a node restarted from its snapshot=100"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("coverage floor missed: 'raft: a node restarted from its snapshot'"),
        "{text}"
    );
    // A counter nothing bumps is missed too, with a floor 60 seeds can
    // judge: never reached in 60 seeds happens with probability 0.0018
    // for a counter reached in 10 % of seeds.
    let (code, text) = sweep(&["--floor", "kv: something never done=10"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("reached in 0 % of 60 seeds, floor 10 % (P = 0.0018 that a counter at the floor is reached this rarely)"),
        "{text}"
    );
    // At 1 %, 60 seeds cannot tell it from a rare one (0.99^60 = 0.547):
    // the table says so, and the sweep passes.
    let (code, text) = sweep(&["--floor", "kv: something never done=1"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("kv: something never done  floor   1 % of 60 seeds: 0 %  below, within chance (P = 0.547)"),
        "{text}"
    );
    // A counter nothing reached and the scenario does not know: likely
    // a misspelt name, and the sweep says so.
    assert!(
        text.contains("--floor 'kv: something never done': no seed reached this counter, and the scenario declares no floor on it"),
        "{text}"
    );
    // Without faults no write is left unknown: the scenario's floors are
    // set for drawn kinds, so they are reported, not enforced; a floor
    // given with --floor still is.
    let (code, text) = sweep_with("none", &[]);
    assert_eq!(code, Some(0), "{text}");
    let json = std::fs::read_to_string(out_dir.join("coverage-kv.json")).unwrap();
    assert!(json.contains("\"enforced\": false"), "{json}");
    assert!(
        text.contains("(not enforced) coverage floor missed: 'client: a write of unknown outcome settled by its retry'")
            && text.contains("floors not enforced: --faults none: the scenario's floors are set for the kinds seeds draw"),
        "{text}"
    );
    let (code, text) = sweep_with("none", &["--floor", "kv: something never done=10"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("\ncoverage floor missed: 'kv: something never done'"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// `schedule` and `bench` write no files: `--out` with them is refused, not
/// silently ignored.
#[test]
fn commands_that_write_nothing_refuse_out() {
    for cmd in ["schedule", "bench"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sim"))
            .args([
                cmd,
                "--scenario",
                "kv",
                "--seeds",
                "0..1",
                "--out",
                "somewhere",
            ])
            .output()
            .expect("the sim binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {stderr}");
        assert!(
            stderr.contains("--out somewhere: `") && stderr.contains("writes no files"),
            "{cmd}: {stderr}"
        );
        assert!(!std::path::Path::new("somewhere").exists());
    }
}
