//! Simulated tests of the Tartu bookstore (run with `cargo simtest`): a
//! seed with every fault kind passes every check, the same seed gives the
//! same trace, and the planted bug `vclock-no-merge` is caught by the
//! vector-clock check.
#![cfg(madsim)]

use harness::runner;
use harness::scenario::Scenario;
use harness::schedule::FaultSelection;
use sim::scenarios::tartu::Tartu;

fn all() -> FaultSelection {
    FaultSelection::parse("all", &sim::raft::KINDS).unwrap()
}

#[test]
fn a_tartu_seed_with_every_fault_kind_passes() {
    let r = runner::run(&Tartu, &Tartu.generate(1, None, &all()));
    let failures: Vec<String> = r
        .failures
        .iter()
        .map(|f| format!("[{}] {}", f.check, f.message))
        .collect();
    assert!(r.passed(), "{failures:#?}");
    assert!(r.client_ops > 0);
    let fin = r
        .history
        .ops
        .iter()
        .find(|o| o.f == "final")
        .expect("a final state was recorded");
    let executed = fin.value["status"]
        .as_object()
        .unwrap()
        .values()
        .filter(|s| s["status"] == "executed")
        .count();
    assert!(executed > 0, "some order was executed");
}

#[test]
fn the_same_tartu_seed_gives_the_same_trace() {
    let s = Tartu.generate(2, None, &all());
    let (a, b) = (runner::run(&Tartu, &s), runner::run(&Tartu, &s));
    assert_eq!(a.trace_hash(), b.trace_hash());
    assert!(a.client_ops > 0);
}

#[test]
fn vclock_no_merge_is_caught_by_the_vector_clock_check() {
    let found = (0..5).find_map(|seed| {
        let r = runner::run(
            &Tartu,
            &Tartu.generate(seed, Some("vclock-no-merge"), &all()),
        );
        (!r.passed()).then_some((seed, r))
    });
    let (seed, r) = found.expect("vclock-no-merge: not caught in 5 seeds");
    assert!(
        r.failures.iter().any(|f| f.check == "vclock"),
        "seed {seed}: {:?}",
        r.failures
    );
    // And the same seed without the bug passes that check.
    let clean = runner::run(&Tartu, &Tartu.generate(seed, None, &all()));
    assert!(
        !clean.failures.iter().any(|f| f.check == "vclock"),
        "seed {seed} without the bug: {:?}",
        clean.failures
    );
}
