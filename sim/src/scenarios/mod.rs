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

#[cfg(test)]
mod tests {
    use harness::schedule::FaultSelection;

    /// What a seed draws passes the check a schedule file gets when it is
    /// replayed (`run --schedule`): a rule there that a drawn schedule
    /// breaks would refuse the files the harness itself writes.
    #[test]
    fn drawn_schedules_pass_the_check_of_schedule_files() {
        for s in super::all() {
            let (kinds, bugs) = (s.fault_kinds(), s.bugs());
            let all = FaultSelection::parse("all", &kinds).unwrap();
            for seed in 0..60 {
                let bug = bugs.get(seed as usize % (bugs.len() + 1)).copied();
                for sel in [&FaultSelection::Swarm, &all] {
                    let sched = s.generate(seed, bug, sel);
                    if let Err(e) = sched.check(&kinds, &bugs) {
                        panic!("{} seed {seed}: {e}", s.name());
                    }
                }
            }
        }
    }
}
