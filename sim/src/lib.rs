//! The deterministic simulation harness. A seed draws a schedule (cluster
//! size, workload bounds, faults); a fresh madsim runtime seeded with it runs
//! the whole cluster in one process; a recorder writes every client
//! operation, fault and node event into one history; checks judge it
//! (linearizability with the `checker` crate, Raft invariants, liveness
//! after healing). A failing seed replays bit for bit, shrinks to a small
//! schedule, and renders as an HTML report.
//!
//! The pure parts (schedules, checks, recorder) build in both modes; the
//! parts that drive madsim only with `--cfg madsim` (`cargo sim`, `cargo simtest`).

pub mod checks;
pub mod schedule;

#[cfg(madsim)]
pub mod cluster;
#[cfg(madsim)]
pub mod nemesis;
#[cfg(madsim)]
pub mod recorder;
#[cfg(madsim)]
pub mod runner;
#[cfg(madsim)]
pub mod scenarios;
#[cfg(madsim)]
pub mod shrink;
