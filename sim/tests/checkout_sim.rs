//! Simulated tests of the shop's checkout (run with `cargo simtest`): the
//! consistency workload through crashes of store replicas and service
//! replicas, a partition and message loss, in both modes; determinism; and
//! every planted shop bug caught by the invariant checks.
#![cfg(madsim)]

use harness::runner;
use harness::scenario::Scenario;
use harness::schedule::{Fault, FaultEvent, FaultSelection, Schedule};
use serde_json::Value;
use sim::scenarios::checkout::Checkout;

fn consistency(seed: u64, mode: &str) -> Schedule {
    let mut s = Checkout.generate(seed, None, &FaultSelection::Only(vec![]));
    s.set_param("mode", mode);
    s.set_param("workload", "consistency");
    s.clients = 16;
    s.duration_ms = 15_000;
    let at = |at_ms: u64, duration_ms: u64, fault: Fault| FaultEvent {
        at_ms,
        duration_ms,
        fault,
    };
    s.faults = vec![
        // A stock store replica crashes (losing unsynced writes).
        at(
            1_000,
            2_000,
            Fault::Crash {
                node: 1,
                torn_write: true,
                corrupt: false,
                damage: None,
            },
        ),
        // An order service replica crashes mid-checkouts.
        at(
            2_000,
            3_000,
            Fault::Crash {
                node: 14,
                torn_write: false,
                corrupt: false,
                damage: None,
            },
        ),
        // The payment group is split (one replica cut off).
        at(
            4_000,
            2_500,
            Fault::Partition {
                groups: vec![
                    vec![4],
                    vec![1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
                ],
            },
        ),
        // A stock service replica crashes.
        at(
            7_000,
            1_500,
            Fault::Crash {
                node: 11,
                torn_write: false,
                corrupt: false,
                damage: None,
            },
        ),
        // An order store replica crashes.
        at(
            8_000,
            2_000,
            Fault::Crash {
                node: 8,
                torn_write: true,
                corrupt: false,
                damage: None,
            },
        ),
        at(9_000, 3_000, Fault::Loss { rate: 0.05 }),
    ];
    s
}

fn final_state(r: &runner::RunResult) -> Value {
    r.history
        .ops
        .iter()
        .find(|o| o.f == "final")
        .map(|o| o.value.clone())
        .expect("a final state was recorded")
}

fn exactly_100_paid(mode: &str) {
    let r = runner::run(&Checkout, &consistency(3, mode));
    let failures: Vec<String> = r
        .failures
        .iter()
        .map(|f| format!("[{}] {}", f.check, f.message))
        .collect();
    assert!(r.passed(), "{mode}: {failures:#?}");
    let fin = final_state(&r);
    assert_eq!(
        fin["items"]["0"]["stock"], 0,
        "{mode}: every unit of stock sold"
    );
    let credit: i64 = fin["users"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_i64().unwrap())
        .sum();
    assert_eq!(credit, 900, "{mode}: 100 users paid 1 each");
    let paid = fin["orders"]
        .as_object()
        .unwrap()
        .values()
        .filter(|o| o["paid"] == true)
        .count();
    assert_eq!(paid, 100, "{mode}: exactly 100 orders paid");
    assert_eq!(fin["in_flight"], 0);
    let ok = r
        .history
        .ops
        .iter()
        .filter(|o| o.f == "checkout" && o.kind == checker::history::OpType::Ok)
        .count();
    assert!(ok <= 100, "{mode}: {ok} checkouts answered ok");
}

#[test]
fn saga_consistency_workload_through_crashes_pays_exactly_100_orders() {
    exactly_100_paid("saga");
}

#[test]
fn two_pc_consistency_workload_through_crashes_pays_exactly_100_orders() {
    exactly_100_paid("2pc");
}

#[test]
fn the_same_checkout_seed_gives_the_same_trace() {
    for seed in [5, 6] {
        let s = Checkout.generate(
            seed,
            None,
            &FaultSelection::parse("all", &sim::raft::KINDS).unwrap(),
        );
        let (a, b) = (runner::run(&Checkout, &s), runner::run(&Checkout, &s));
        assert_eq!(a.trace_hash(), b.trace_hash(), "seed {seed}");
        assert!(a.client_ops > 0);
    }
}

#[test]
fn every_planted_shop_bug_is_caught_by_the_invariants() {
    for bug in bookstore::bugs::SHOP {
        let found = (0..40).find_map(|seed| {
            let s = Checkout.generate(seed, Some(bug), &FaultSelection::Swarm);
            let r = runner::run(&Checkout, &s);
            (!r.passed()).then_some((seed, r))
        });
        let (seed, r) = found.unwrap_or_else(|| panic!("{bug}: not caught in 40 seeds"));
        assert_eq!(
            r.first_check(),
            Some("invariants"),
            "{bug} seed {seed}: {:?}",
            r.failures
        );
        // And the same seed without the bug passes.
        let clean = runner::run(
            &Checkout,
            &Checkout.generate(seed, None, &FaultSelection::Swarm),
        );
        assert!(
            clean.passed(),
            "seed {seed} without {bug}: {:?}",
            clean.failures
        );
    }
}
