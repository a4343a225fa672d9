//! Simulated tests of the transactional scenario (run with `cargo simtest`).
#![cfg(madsim)]

use harness::runner;
use harness::scenario::Scenario;
use harness::schedule::FaultSelection;
use sim::raft::KINDS;
use sim::scenarios::txn::Txn;

#[test]
fn the_same_txn_seed_gives_the_same_trace() {
    for seed in [3, 4] {
        let s = Txn.generate(seed, None, &FaultSelection::parse("all", &KINDS).unwrap());
        let (a, b) = (runner::run(&Txn, &s), runner::run(&Txn, &s));
        assert_eq!(a.trace_hash(), b.trace_hash(), "seed {seed}");
        assert!(a.client_ops > 0);
        assert!(a.passed(), "seed {seed}: {:?}", a.failures);
    }
}

/// The planted isolation bug is found by the isolation check (single-key
/// linearizability would not see it: every read of one key is
/// linearizable), and the same seeds pass without it.
#[test]
fn split_multi_read_breaks_serializability_and_is_caught() {
    let found = (0..10).find_map(|seed| {
        let s = Txn.generate(seed, Some("split-multi-read"), &FaultSelection::Swarm);
        let r = runner::run(&Txn, &s);
        (!r.passed()).then_some((seed, r))
    });
    let (seed, r) = found.expect("split-multi-read caught within 10 seeds");
    assert_eq!(r.first_check(), Some("isolation"), "{:?}", r.failures);
    assert!(
        r.failures[0].message.contains("G-single") || r.failures[0].message.contains("G2"),
        "{}",
        r.failures[0].message
    );
    let clean = runner::run(&Txn, &Txn.generate(seed, None, &FaultSelection::Swarm));
    assert!(
        clean.passed(),
        "seed {seed} without the bug: {:?}",
        clean.failures
    );
}
