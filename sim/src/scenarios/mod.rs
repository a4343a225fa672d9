//! Scenarios: one per file, each readable top to bottom (topology,
//! workload, nemesis, checks).

pub mod checkout;
pub mod kv;

/// Names accepted by `--scenario`.
pub const NAMES: &[&str] = &["kv", "checkout"];
