//! Shrinking: minimises a failing schedule while the same check still
//! fails: drop faults (all, then one at a time), shorten them, end the
//! workload phase after the last fault, then drop clients and operations.
//! Greedy, like QuickCheck's shrinking; every candidate is a full
//! deterministic run (without the detail a report needs, see
//! `runner::run_verdict`; the smallest one runs again with it).

use crate::runner::{rerun_with_detail, run_verdict, RunResult};
use crate::scenario::Scenario;
use crate::schedule::Schedule;

pub struct Shrunk {
    pub schedule: Schedule,
    pub result: RunResult,
    /// Candidate schedules run (not counting the final run with every
    /// event, for the report).
    pub runs: usize,
    /// False when `max_runs` stopped the shrink before every step was
    /// tried: the schedule may not be minimal.
    pub complete: bool,
}

pub fn shrink(
    scenario: &dyn Scenario,
    original: RunResult,
    max_runs: usize,
    mut progress: impl FnMut(&str),
) -> Shrunk {
    let check = original.first_check().expect("shrink needs a failing run");
    let original_schedule = original.schedule.clone();
    let mut best = original;
    let runs = std::cell::Cell::new(0usize);
    let out_of_runs = std::cell::Cell::new(false);
    let mut try_candidate = |cand: Schedule, best: &mut RunResult, what: &str| -> bool {
        if cand == best.schedule {
            return false;
        }
        if runs.get() >= max_runs {
            out_of_runs.set(true);
            return false;
        }
        runs.set(runs.get() + 1);
        let r = run_verdict(scenario, &cand);
        if r.failures.iter().any(|f| f.check == check) {
            progress(&format!(
                "{what}: still fails ({} faults, {} clients)",
                cand.faults.len(),
                cand.clients
            ));
            *best = r;
            true
        } else {
            false
        }
    };

    // 1. Faults: all at once, then one at a time until nothing more goes.
    let mut c = best.schedule.clone();
    c.faults.clear();
    try_candidate(c, &mut best, "dropped every fault");
    loop {
        let mut changed = false;
        let mut i = best.schedule.faults.len();
        while i > 0 {
            i -= 1;
            if i >= best.schedule.faults.len() {
                continue;
            }
            let mut c = best.schedule.clone();
            let f = c.faults.remove(i);
            changed |= try_candidate(
                c,
                &mut best,
                &format!("dropped fault at {} ms ({})", f.at_ms, f.fault.kind()),
            );
        }
        if !changed || runs.get() >= max_runs {
            break;
        }
    }
    // 2. Shorter faults.
    for i in 0..best.schedule.faults.len() {
        for _ in 0..4 {
            let mut c = best.schedule.clone();
            if c.faults[i].duration_ms < 100 {
                break;
            }
            c.faults[i].duration_ms /= 2;
            if !try_candidate(c, &mut best, &format!("halved fault {i}")) {
                break;
            }
        }
    }
    // 2b. Crashes without disk corruption.
    for i in 0..best.schedule.faults.len() {
        let mut c = best.schedule.clone();
        if let crate::schedule::Fault::Crash { corrupt, .. } = &mut c.faults[i].fault {
            if *corrupt {
                *corrupt = false;
                try_candidate(c, &mut best, &format!("fault {i} without corruption"));
            }
        }
    }
    // 2c. Crashes without damage to synced data.
    for i in 0..best.schedule.faults.len() {
        let mut c = best.schedule.clone();
        if let crate::schedule::Fault::Crash { damage, .. } = &mut c.faults[i].fault {
            if damage.take().is_some() {
                try_candidate(c, &mut best, &format!("fault {i} without disk damage"));
            }
        }
    }
    // 3. A shorter workload phase: just past the last fault.
    let end = best
        .schedule
        .faults
        .iter()
        .map(|f| f.at_ms + f.duration_ms)
        .max()
        .unwrap_or(0)
        + 1_000;
    if end < best.schedule.duration_ms {
        let mut c = best.schedule.clone();
        c.duration_ms = end;
        try_candidate(c, &mut best, "shortened the workload phase");
    }
    // 4. Fewer clients, fewer operations.
    while best.schedule.clients > 1 {
        let mut c = best.schedule.clone();
        c.clients -= 1;
        if !try_candidate(c, &mut best, "dropped a client") {
            break;
        }
    }
    let per_client = (best.client_ops as u64 / best.schedule.clients.max(1)).max(1);
    let mut ops = per_client.min(best.schedule.ops_per_client);
    while ops > 1 {
        ops /= 2;
        let mut c = best.schedule.clone();
        c.ops_per_client = ops;
        if !try_candidate(c, &mut best, &format!("{ops} operations per client")) {
            break;
        }
    }
    // With every event again, for the report (the original run was
    // recorded so; a candidate that won was not).
    let result = if best.schedule != original_schedule {
        rerun_with_detail(scenario, &best)
    } else {
        best
    };
    Shrunk {
        schedule: result.schedule.clone(),
        result,
        runs: runs.get(),
        complete: !out_of_runs.get(),
    }
}
