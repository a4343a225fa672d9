//! # harness: deterministic simulation testing for tokio/tonic services
//!
//! Runs a whole distributed system in one process on
//! [madsim](https://github.com/madsim-rs/madsim)'s deterministic runtime
//! (compile with `--cfg madsim`; `madsim-tokio` and `madsim-tonic` stand
//! in for tokio and tonic), injects faults drawn from a seed, records a
//! Jepsen-style history and checks it with the `checker` crate. A failing
//! seed replays bit for bit, shrinks to a small fault schedule, and renders
//! as an HTML report.
//!
//! What you write is a [`scenario::Scenario`]: which hosts run what
//! ([`sim::Sim::host`]: each host has its own address, [`hostio::Clock`]
//! and [`hostio::SimDir`] disk, and is a target of crash, restart, pause,
//! partition and clock faults), what clients do (recorded with
//! [`recorder::Recorder::op`]), and how the history is judged. Then
//! [`cli::main`] gives you `run`, `sweep`, `shrink`, `schedule` and
//! `bench`. `sim/examples/register` (the workspace's `register-example`) is
//! a complete one: a tonic register, its scenario and its test.
//!
//! Layout, in the order a run uses it: [`schedule`] (what a seed draws:
//! faults as data), [`sim`] (hosts and the network), [`nemesis`] (plays the
//! faults; a scenario's own fault kinds through a [`nemesis::FaultPlugin`]
//! and triggers), [`recorder`] (the history), [`events`] (the system's
//! events for checks that follow them), [`runner`] (one seed, checked),
//! [`shrink`], [`cli`]; [`report`] draws the page of a failing run that
//! its scenario does not draw itself.
//!
//! It knows nothing of any system under test: the bookstore's scenarios
//! (Raft, the shop) live in the `sim` crate and use this one like any
//! user would.

#[cfg(madsim)]
pub mod coverage;
pub mod events;
pub mod schedule;

#[cfg(madsim)]
pub mod cli;
pub mod failure;
#[cfg(madsim)]
pub mod nemesis;
pub mod recorder;
pub mod report;
#[cfg(madsim)]
pub mod runner;
#[cfg(madsim)]
pub mod scenario;
#[cfg(madsim)]
pub mod shrink;
#[cfg(madsim)]
pub mod sim;

pub use hostio;
/// The generator a [`schedule::DrawCustom`] draws from.
pub use rand_chacha;

/// An argument as a POSIX shell reads it back: as it is when a shell would
/// leave it alone, else in single quotes, so that a printed replay command
/// (of `sim`, or of Jepsen mode's real runs) can be pasted.
pub fn sh_quote(a: &str) -> String {
    let plain = !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
    if plain {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}
