//! The vendored madsim's timer heap (`vendor/madsim`, change 5 in its
//! `VENDORED.md`), compiled here so that its test (timers fire in
//! `naive-timer`'s order, ties included) runs with the workspace's tests:
//! the vendored crate is outside the workspace.

#[allow(dead_code)]
#[path = "../../../vendor/madsim/src/sim/time/timer.rs"]
mod timer;
