//! The vendored madsim's timer heap (`vendor/madsim`, change 5 in its
//! `VENDORED.md`), compiled here so that its test (timers fire in
//! `naive-timer`'s order, ties included) runs with the workspace's tests:
//! the vendored crate is outside the workspace.

// The file keeps madsim's style, not the workspace's lints: its test's copy
// of `naive-timer`'s heap entry compares as `naive-timer` wrote it.
#[allow(dead_code, clippy::non_canonical_partial_ord_impl)]
#[path = "../../../vendor/madsim/src/sim/time/timer.rs"]
mod timer;
