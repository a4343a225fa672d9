//! Consistency models and anomalies: which anomaly rules out which model.
//!
//! A transcription of Elle's `elle/consistency_model.clj` (jepsen-io/elle at
//! commit ccdee6f): `models` (a -> b: a history satisfying a satisfies b),
//! `implied-anomalies` (a -> b: an a is also a b) and
//! `direct-proscribed-anomalies` (model -> anomalies it forbids, on top of
//! those of the models it implies). Names are Elle's canonical ones
//! (`PL-2` is read committed...); [`friendly`] gives the usual name.

use std::collections::{BTreeSet, VecDeque};

/// Elle's `models`, with canonical names.
const MODELS: &[(&str, &[&str])] = &[
    ("causal-cerone", &["read-atomic"]),
    ("PL-2+", &["PL-CS", "PL-2L"]),
    ("conflict-serializable", &["view-serializable"]),
    ("PL-CS", &["PL-2"]),
    ("PL-FCV", &["PL-2+"]),
    ("PL-2", &["PL-1"]),
    ("PL-3", &["PL-2.99", "PL-3U"]),
    ("PL-3U", &["PL-FCV"]),
    ("monotonic-atomic-view", &["PL-2"]),
    ("PL-2L", &["PL-2"]),
    ("PL-MSR", &["PL-2"]),
    (
        "parallel-snapshot-isolation",
        &["causal-cerone", "update-atomic"],
    ),
    ("prefix", &["causal-cerone"]),
    ("read-atomic", &["monotonic-atomic-view"]),
    ("PL-2.99", &["PL-CS", "monotonic-atomic-view"]),
    ("update-atomic", &["read-atomic"]),
    ("PL-3", &["PL-2.99", "PL-SI", "view-serializable"]),
    ("session-serializable", &["1SR"]),
    (
        "PL-SI",
        &[
            "PL-FCV",
            "monotonic-atomic-view",
            "PL-MSR",
            "parallel-snapshot-isolation",
            "prefix",
        ],
    ),
    (
        "PL-SS",
        &[
            "PL-3",
            "linearizable",
            "PL-SI",
            "strong-snapshot-isolation",
            "strong-session-serializable",
            "session-serializable",
        ],
    ),
    ("strong-session-PL-1", &["PL-1"]),
    ("strong-session-PL-2", &["PL-2", "strong-session-PL-1"]),
    ("strong-PL-1", &["strong-session-PL-1"]),
    ("strong-PL-2", &["strong-session-PL-2", "strong-PL-1"]),
    (
        "strong-session-serializable",
        &["PL-3", "strong-session-snapshot-isolation"],
    ),
    (
        "strong-session-snapshot-isolation",
        &["PL-SI", "strong-session-PL-2"],
    ),
    (
        "strong-snapshot-isolation",
        &["strong-session-snapshot-isolation", "strong-PL-2"],
    ),
    ("linearizable", &["sequential"]),
    ("sequential", &["causal"]),
    ("causal", &["writes-follow-reads", "PRAM"]),
    (
        "PRAM",
        &["monotonic-reads", "monotonic-writes", "read-your-writes"],
    ),
];

/// Elle's `implied-anomalies`.
const IMPLIED: &[(&str, &[&str])] = &[
    ("G0", &["G1c", "G0-process"]),
    ("G0-process", &["G1c-process", "G0-realtime"]),
    ("G0-realtime", &["G1c-realtime"]),
    ("G1a", &["G1"]),
    ("G1b", &["G1"]),
    ("G1c", &["G1", "G1c-process"]),
    ("G1c-process", &["G1c-realtime", "G1-process"]),
    ("G1c-realtime", &["G1-realtime"]),
    ("G1", &["G1-process"]),
    ("G1-process", &["G1-realtime"]),
    (
        "G-single-item",
        &["G-single", "G-single-item-process", "G-nonadjacent-item"],
    ),
    (
        "G-single-item-process",
        &[
            "G-single-process",
            "G-single-item-realtime",
            "G-nonadjacent-item-process",
        ],
    ),
    (
        "G-single-item-realtime",
        &["G-single-realtime", "G-nonadjacent-item-realtime"],
    ),
    ("G-single", &["G-nonadjacent", "GSIb", "G-single-process"]),
    (
        "G-single-process",
        &["G-nonadjacent-process", "G-single-realtime"],
    ),
    ("G-single-realtime", &["G-nonadjacent-realtime"]),
    (
        "G-nonadjacent-item",
        &["G-nonadjacent", "G2-item", "G-nonadjacent-item-process"],
    ),
    (
        "G-nonadjacent-item-process",
        &[
            "G-nonadjacent-process",
            "G2-item-process",
            "G-nonadjacent-item-realtime",
        ],
    ),
    (
        "G-nonadjacent-item-realtime",
        &["G2-item-realtime", "G-nonadjacent-realtime"],
    ),
    ("G-nonadjacent", &["G2", "G-nonadjacent-process"]),
    (
        "G-nonadjacent-process",
        &["G2-process", "G-nonadjacent-realtime"],
    ),
    ("G-nonadjacent-realtime", &["G2-realtime"]),
    ("G2", &["G2-process"]),
    ("G2-item", &["G2", "G2-item-process"]),
    ("G2-item-process", &["G2-process", "G2-item-realtime"]),
    ("G2-item-realtime", &["G2-realtime"]),
    ("G2-process", &["G2-realtime"]),
    ("GSIa", &["GSI"]),
    ("GSIb", &["GSI"]),
    ("incompatible-order", &["G1a"]),
    ("future-read", &["G1c"]),
    ("dirty-update", &["G1a"]),
    ("lost-update", &["write-skew", "G2-item"]),
    ("write-skew", &["G2"]),
    // Not in Elle at this commit: a read of a value nobody wrote. Like a
    // dirty read, it shows state no committed transaction produced.
    ("garbage-read", &["G1a"]),
];

/// Elle's `direct-proscribed-anomalies`, with canonical model names.
const PROSCRIBED: &[(&str, &[&str])] = &[
    ("causal-cerone", &["internal", "G1a"]),
    ("PL-CS", &["G1", "G-cursor", "lost-update"]),
    ("PL-2L", &["G1", "G-monotonic"]),
    ("PL-MSR", &["G1", "G-MSR"]),
    ("PL-2+", &["G1", "G-single"]),
    ("PL-FCV", &["G1", "G-SIb"]),
    ("parallel-snapshot-isolation", &["internal", "G1a"]),
    (
        "PL-3",
        &["G1", "G2", "predicate-read-miss", "PL-3-cycle-exists"],
    ),
    ("PL-2", &["G1", "PL-2-cycle-exists"]),
    (
        "PL-1",
        &[
            "G0",
            "duplicate-elements",
            "cyclic-versions",
            "PL-1-cycle-exists",
        ],
    ),
    ("prefix", &["internal", "G1a"]),
    ("PL-3", &["internal"]),
    (
        "PL-SI",
        &[
            "internal",
            "G1",
            "G-SI",
            "G-nonadjacent",
            "PL-SI-cycle-exists",
        ],
    ),
    ("read-atomic", &["internal", "G1a", "future-read"]),
    (
        "PL-2.99",
        &["G1", "G2-item", "PL-2.99-cycle-exists", "lost-update"],
    ),
    ("update-atomic", &["lost-update"]),
    (
        "PL-SS",
        &["G1", "G1c-realtime", "G2-realtime", "PL-SS-cycle-exists"],
    ),
    (
        "strong-session-PL-1",
        &["strong-session-PL-1-cycle-exists", "G0-process"],
    ),
    (
        "strong-session-PL-2",
        &["strong-session-PL-2-cycle-exists", "G1c-process"],
    ),
    ("strong-PL-1", &["strong-PL-1-cycle-exists", "G0-realtime"]),
    ("strong-PL-2", &["strong-PL-2-cycle-exists", "G1c-realtime"]),
    (
        "strong-session-snapshot-isolation",
        &[
            "internal",
            "G1-process",
            "G-nonadjacent-process",
            "strong-session-snapshot-isolation-cycle-exists",
        ],
    ),
    (
        "strong-snapshot-isolation",
        &[
            "internal",
            "G1-realtime",
            "G-nonadjacent-realtime",
            "strong-snapshot-isolation-cycle-exists",
        ],
    ),
    (
        "strong-session-serializable",
        &[
            "G1-process",
            "G2-process",
            "strong-session-serializable-cycle-exists",
        ],
    ),
    ("PL-3U", &["G1", "G-update"]),
];

/// Canonical (Adya) name -> the name people use.
const FRIENDLY: &[(&str, &str)] = &[
    ("PL-2+", "consistent-view"),
    ("PL-CS", "cursor-stability"),
    ("PL-FCV", "forward-consistent-view"),
    ("PL-MSR", "monotonic-snapshot-read"),
    ("PL-2L", "monotonic-view"),
    ("PL-2", "read-committed"),
    ("PL-1", "read-uncommitted"),
    ("PL-2.99", "repeatable-read"),
    ("PL-3", "serializable"),
    ("PL-SI", "snapshot-isolation"),
    ("PL-SS", "strict-serializable"),
    ("PL-3U", "update-serializable"),
    ("strong-session-PL-1", "strong-session-read-uncommitted"),
    ("strong-session-PL-2", "strong-session-read-committed"),
    ("strong-PL-1", "strong-read-uncommitted"),
    ("strong-PL-2", "strong-read-committed"),
];

/// The name people use for a canonical model name.
pub fn friendly(model: &str) -> &str {
    FRIENDLY
        .iter()
        .find(|(c, _)| *c == model)
        .map_or(model, |(_, f)| f)
}

/// The canonical name of a model name (friendly or canonical).
pub fn canonical(model: &str) -> &str {
    FRIENDLY
        .iter()
        .find(|(_, f)| *f == model)
        .map_or(model, |(c, _)| c)
}

fn bfs<'a>(
    table: &'a [(&'a str, &'a [&'a str])],
    forward: bool,
    start: impl IntoIterator<Item = &'a str>,
) -> BTreeSet<&'a str> {
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut q: VecDeque<&str> = start.into_iter().collect();
    while let Some(x) = q.pop_front() {
        if !seen.insert(x) {
            continue;
        }
        for (a, bs) in table {
            if forward && *a == x {
                q.extend(bs.iter().copied());
            } else if !forward && bs.contains(&x) {
                q.push_back(a);
            }
        }
    }
    seen
}

/// Every anomaly implied by these (including themselves).
pub fn all_implied_anomalies<'a>(
    anomalies: impl IntoIterator<Item = &'a str>,
) -> BTreeSet<&'a str> {
    bfs(IMPLIED, true, anomalies)
}

/// Every anomaly that implies one of these (including themselves).
pub fn all_anomalies_implying<'a>(
    anomalies: impl IntoIterator<Item = &'a str>,
) -> BTreeSet<&'a str> {
    bfs(IMPLIED, false, anomalies)
}

/// Every anomaly that must not occur if `model` holds (Elle's
/// `anomalies-prohibited-by`).
pub fn anomalies_prohibited_by(model: &str) -> BTreeSet<&'static str> {
    let implied_models = bfs(MODELS, true, [canonical(model)]);
    let direct = PROSCRIBED
        .iter()
        .filter(|(m, _)| implied_models.contains(m))
        .flat_map(|(_, a)| a.iter().copied());
    let mut out = BTreeSet::new();
    for a in all_anomalies_implying(direct) {
        out.insert(intern(a));
    }
    out
}

fn intern(a: &str) -> &'static str {
    for (x, ys) in IMPLIED.iter().chain(PROSCRIBED) {
        if *x == a {
            return x;
        }
        if let Some(y) = ys.iter().find(|y| **y == a) {
            return y;
        }
    }
    "unknown"
}

/// Models ruled out by these anomalies (canonical names), with every
/// stronger model.
pub fn impossible_models<'a>(
    anomalies: impl IntoIterator<Item = &'a str>,
) -> BTreeSet<&'static str> {
    let implied = all_implied_anomalies(anomalies);
    let direct: Vec<&'static str> = PROSCRIBED
        .iter()
        .filter(|(_, a)| a.iter().any(|a| implied.contains(a)))
        .map(|(m, _)| *m)
        .collect();
    bfs(MODELS, false, direct)
}

/// Elle's `boundary`: the weakest impossible models (`not`) and the other
/// impossible ones (`also_not`), friendly names, sorted.
pub fn boundary<'a>(anomalies: impl IntoIterator<Item = &'a str>) -> (Vec<String>, Vec<String>) {
    let impossible = impossible_models(anomalies);
    let weakest: BTreeSet<&str> = impossible
        .iter()
        .copied()
        .filter(|m| {
            // Weakest: no other impossible model is implied by it.
            let below = bfs(MODELS, true, [*m]);
            !below.iter().any(|b| b != m && impossible.contains(b))
        })
        .collect();
    let mut not: Vec<String> = weakest.iter().map(|m| friendly(m).to_string()).collect();
    let mut also: Vec<String> = impossible
        .iter()
        .filter(|m| !weakest.contains(*m))
        .map(|m| friendly(m).to_string())
        .collect();
    not.sort();
    not.dedup();
    also.sort();
    also.dedup();
    (not, also)
}

/// Whether model `a` implies model `b` (every history satisfying `a`
/// satisfies `b`).
pub fn implies(a: &str, b: &str) -> bool {
    bfs(MODELS, true, [canonical(a)]).contains(canonical(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lattice_matches_elle() {
        // Elle's consistency_model_test: G2-item rules out repeatable read
        // and everything stronger, not snapshot isolation.
        let (not, also) = boundary(["G2-item"]);
        assert_eq!(not, vec!["repeatable-read"]);
        assert!(also.contains(&"serializable".to_string()));
        assert!(also.contains(&"strict-serializable".to_string()));
        assert!(!also.contains(&"snapshot-isolation".to_string()));
        let (not, _) = boundary(["G1c"]);
        assert_eq!(not, vec!["read-committed"]);
        let (not, _) = boundary(["G0"]);
        assert_eq!(not, vec!["read-uncommitted"]);
        let (not, _) = boundary(["G-single-realtime"]);
        assert_eq!(not, vec!["strong-snapshot-isolation"]);
        let p = anomalies_prohibited_by("serializable");
        assert!(p.contains("G2-item") && p.contains("G1a") && !p.contains("G2-item-realtime"));
        let p = anomalies_prohibited_by("strict-serializable");
        assert!(p.contains("G-single-realtime") && p.contains("G0-realtime"));
        assert!(!anomalies_prohibited_by("read-committed").contains("G2-item"));
        assert!(implies("strict-serializable", "read-uncommitted"));
    }
}
