//! The bookstore under the deterministic simulation harness (`harness`):
//! its scenarios (`kv`: one Raft KV group; `checkout`: the whole shop),
//! the Raft invariant checks that follow the nodes' events, and the
//! Raft-targeted fault kinds, and the report sections that explain a Raft
//! failure or a replica divergence (`explain`). The harness underneath
//! knows nothing of Raft or of the shop; this crate is one of its users.
//!
//! The pure parts (checks, pacing, explain) build in both modes; the parts that
//! drive madsim only with `--cfg madsim` (`cargo sim`, `cargo simtest`).

pub mod checks;
pub mod explain;
#[cfg(not(madsim))]
pub mod jepsen;
pub mod pacing;
pub mod replicas;
pub mod shopload;
pub mod tartuload;
pub mod workload;

#[cfg(madsim)]
pub mod raft;
#[cfg(madsim)]
pub mod scenarios;

/// The `sim` binary: the harness's CLI with the bookstore's scenarios.
#[cfg(madsim)]
pub fn app() -> harness::cli::App {
    harness::cli::App {
        name: "sim",
        about: "Deterministic simulation of the bookstore: seeded faults, checked histories, replay, shrinking",
        replay: "cargo sim",
        scenarios: scenarios::all(),
    }
}
