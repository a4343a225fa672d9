//! Simulated tests of the e-commerce platform (run with `cargo simtest`):
//! a seed with every fault kind passes every check with orders PAID, the
//! same seed gives the same trace, and each of the platform's planted bugs
//! is caught by the check meant for it (and the same seed without the bug
//! passes that check).
#![cfg(madsim)]

use harness::runner;
use harness::scenario::Scenario;
use harness::schedule::FaultSelection;
use sim::scenarios::pad::Pad;

fn all() -> FaultSelection {
    FaultSelection::parse("all", &Pad.fault_kinds()).unwrap()
}

#[test]
fn a_pad_seed_with_every_fault_kind_passes() {
    let r = runner::run(&Pad, &Pad.generate(1, None, &all()));
    let failures: Vec<String> = r
        .failures
        .iter()
        .map(|f| format!("[{}] {}", f.check, f.message))
        .collect();
    assert!(r.passed(), "{failures:#?}");
    let fin = r
        .history
        .ops
        .iter()
        .find(|o| o.f == "final")
        .expect("a final state was recorded");
    let paid = fin.value["orders"]
        .as_object()
        .unwrap()
        .values()
        .filter(|o| o["saga"]["status"] == "Paid" || o["saga"]["status"] == "PAID")
        .count();
    assert!(paid > 0, "some order was paid");
}

#[test]
fn the_same_pad_seed_gives_the_same_trace() {
    let s = Pad.generate(2, None, &all());
    let (a, b) = (runner::run(&Pad, &s), runner::run(&Pad, &s));
    assert_eq!(a.trace_hash(), b.trace_hash());
    assert!(a.client_ops > 0);
}

/// The first of `seeds` where `bug` fails `check`; that seed without the
/// bug passes it.
fn caught(bug: &str, check: &str, seeds: std::ops::Range<u64>) {
    let found = seeds.clone().find(|&seed| {
        let r = runner::run(&Pad, &Pad.generate(seed, Some(bug), &all()));
        r.failures.iter().any(|f| f.check == check)
    });
    let seed = found.unwrap_or_else(|| panic!("{bug}: no {check} failure in seeds {seeds:?}"));
    let clean = runner::run(&Pad, &Pad.generate(seed, None, &all()));
    assert!(
        !clean.failures.iter().any(|f| f.check == check),
        "seed {seed} without {bug}: {:?}",
        clean.failures
    );
}

#[test]
fn paid_before_charge_is_caught_by_the_orders_check() {
    caught("pad-paid-before-charge", "orders", 0..5);
}

#[test]
fn local_revocation_is_caught_by_the_tokens_check() {
    caught("pad-local-revocation", "tokens", 0..5);
}

#[test]
fn expiry_by_the_auth_clock_is_caught_by_the_tokens_check() {
    caught("pad-expiry-own-clock", "tokens", 0..60);
}

#[test]
fn a_stale_discovery_view_is_caught_by_the_routing_check() {
    caught("pad-stale-view", "routing", 0..10);
}

#[test]
fn a_take_that_clears_the_cart_is_caught_by_the_cart_check() {
    caught("pad-take-clears-cart", "cart", 0..20);
}
