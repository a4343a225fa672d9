//! The example's own test: the harness finds the planted bug within a few
//! seeds, and the correct register passes the same seeds with every fault
//! kind on. Run with `cargo simtest --test register`.
#![cfg(madsim)]

use harness::runner;
use harness::scenario::Scenario;
use harness::schedule::FaultSelection;
use register_example::scenario::RegisterScenario;

#[test]
fn the_harness_finds_ack_before_sync_and_the_correct_register_passes() {
    let r = RegisterScenario;
    let all = FaultSelection::parse("all", &r.fault_kinds()).unwrap();
    let found = (0..20).find(|&seed| {
        let s = r.generate(seed, Some("ack-before-sync"), &all);
        runner::run(&r, &s).first_check() == Some("linearizability")
    });
    let seed = found.expect("ack-before-sync found within 20 seeds");
    for seed in 0..=seed.max(9) {
        let res = runner::run(&r, &r.generate(seed, None, &all));
        assert!(res.passed(), "seed {seed}: {:?}", res.failures);
        assert!(res.client_ops > 100, "seed {seed}: {} ops", res.client_ops);
    }
}
