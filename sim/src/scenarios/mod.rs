//! The bookstore's scenarios: one per file, each readable top to bottom
//! (topology, workload, nemesis, checks), written against the harness's
//! public API.

pub mod checkout;
pub mod kv;
pub mod pad;
pub mod pad_cart;
pub mod tartu;
pub mod txn;

use harness::scenario::Scenario;

/// Every scenario, the default first: what the `sim` CLI offers.
pub fn all() -> Vec<&'static dyn Scenario> {
    vec![
        &kv::Kv,
        &checkout::Checkout,
        &txn::Txn,
        &tartu::Tartu,
        &pad::Pad,
    ]
}

/// The scenario called `name`.
pub fn by_name(name: &str) -> Option<&'static dyn Scenario> {
    all().into_iter().find(|s| s.name() == name)
}
