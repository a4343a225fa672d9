//! Property tests of the isolation checker on generated histories: a
//! concurrent execution in which every transaction takes effect atomically
//! between its invocation and its completion (strict-serializable by
//! construction; one process makes it serial), with random unknown (`info`)
//! and failed outcomes, is always judged valid; with one read altered as
//! each anomaly would, it is judged invalid and the anomaly is named.
//! Histories go through the native JSON Lines text and back.

use checker::history::History;
use checker::isolation::gen::{self, GenOptions, Plant};
use checker::isolation::{self, IsoOptions, IsoVerdict, TxnModel};
use proptest::prelude::*;

/// Lists longer than 48 elements take another path in the checker (a hash
/// table instead of a scan): `long` makes keys live that long.
#[allow(clippy::too_many_arguments)]
fn options(
    long: bool,
    list: bool,
    txns: usize,
    processes: usize,
    keys: usize,
    info: f64,
    fail: f64,
    seed: u64,
) -> GenOptions {
    GenOptions {
        model: if list {
            TxnModel::ListAppend
        } else {
            TxnModel::RwRegister
        },
        txns,
        processes,
        live_keys: keys,
        max_writes_per_key: if long { 80 } else { 6 },
        max_mops: 4,
        info,
        fail,
        seed,
    }
}

fn through_text(t: &checker::isolation::Txns) -> History {
    History::from_jsonl(&gen::to_history(t).to_jsonl()).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_global_rejects: 100_000, ..ProptestConfig::default() })]

    #[test]
    fn serializable_executions_are_valid(
        long in any::<bool>(),
        list in any::<bool>(),
        txns in 1usize..60,
        processes in 1usize..5,
        keys in 1usize..5,
        info in 0.0f64..0.3,
        fail in 0.0f64..0.2,
        seed in any::<u64>(),
    ) {
        let t = gen::generate(&options(long, list, txns * if long { 4 } else { 1 }, processes, keys, info, fail, seed));
        let h = through_text(&t);
        let r = isolation::check(&h, &IsoOptions::default()).unwrap();
        prop_assert_ne!(r.verdict, IsoVerdict::Invalid, "{}\n{}", r.explain(), h.to_jsonl());
        prop_assert!(
            r.anomaly_types.iter().all(|a| a == "empty-transaction-graph"),
            "{}", r.explain()
        );
        prop_assert!(r.counts.is_empty() || r.counts.keys().all(|a| a == "empty-transaction-graph"),
            "{}", r.explain());
        // The compact entry point agrees.
        prop_assert_eq!(isolation::check_txns(&t, &IsoOptions::default()).verdict, r.verdict);
        // A strict-serializable execution satisfies every assumption that
        // orders register versions: they add edges, never an anomaly.
        let all = IsoOptions {
            wfr_keys: true,
            sequential_keys: true,
            linearizable_keys: true,
            ..IsoOptions::default()
        };
        let r2 = isolation::check(&h, &all).unwrap();
        prop_assert_ne!(r2.verdict, IsoVerdict::Invalid, "{}\n{}", r2.explain(), h.to_jsonl());
        prop_assert!(r2.counts.keys().all(|a| a == "empty-transaction-graph"), "{}", r2.explain());
    }

    #[test]
    fn planted_anomalies_are_found(
        long in any::<bool>(),
        list in any::<bool>(),
        txns in 4usize..60,
        processes in 1usize..5,
        keys in 1usize..4,
        info in 0.0f64..0.2,
        fail in 0.0f64..0.2,
        seed in any::<u64>(),
        kind in 0usize..Plant::ALL.len(),
    ) {
        let plant = Plant::ALL[kind];
        let mut t = gen::generate(&options(long, list, txns * if long { 4 } else { 1 }, processes, keys, info, fail, seed));
        prop_assume!(gen::plant(&mut t, plant, seed));
        let h = through_text(&t);
        let r = isolation::check(&h, &IsoOptions::default()).unwrap();
        prop_assert_eq!(r.verdict, IsoVerdict::Invalid, "{:?}\n{}\n{}", plant, r.explain(), h.to_jsonl());
        prop_assert!(r.has(plant.expected()), "{:?}\n{}\n{}", plant, r.explain(), h.to_jsonl());
    }
}

#[test]
fn every_plant_applies_somewhere() {
    // Each kind of planted anomaly finds a place in a modest history of
    // each data model it applies to, and is found.
    for list in [true, false] {
        for plant in Plant::ALL {
            if !list && matches!(plant, Plant::IncompatibleOrder | Plant::DuplicateElements) {
                continue;
            }
            let mut planted = false;
            for seed in 0..20 {
                let mut t =
                    gen::generate(&options(seed % 2 == 1, list, 200, 3, 3, 0.05, 0.05, seed));
                if gen::plant(&mut t, plant, seed) {
                    let r = isolation::check(&through_text(&t), &IsoOptions::default()).unwrap();
                    assert!(
                        r.has(plant.expected()),
                        "{plant:?} list={list}\n{}",
                        r.explain()
                    );
                    planted = true;
                    break;
                }
            }
            assert!(
                planted,
                "{plant:?} list={list}: no place found in 20 histories"
            );
        }
    }
}

/// Any JSON value, small.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..5).prop_map(Value::from),
        prop_oneof![Just("x"), Just("y"), Just("append"), Just("r"), Just("w")]
            .prop_map(Value::from),
        Just(json!(1.5)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop::collection::vec(inner, 0..4).prop_map(Value::Array)
    })
}

/// A txn's value: mostly micro-op shaped, with arbitrary parts.
fn any_txn_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let mop = (
        prop_oneof![Just("append"), Just("r"), Just("w")],
        prop_oneof![
            Just(Value::from("x")),
            Just(Value::from("y")),
            Just(Value::from(1))
        ],
        prop_oneof![
            (0i64..4).prop_map(Value::from),
            prop::collection::vec((0i64..4).prop_map(Value::from), 0..4).prop_map(Value::Array),
            Just(Value::Null),
            any_json(),
        ],
    )
        .prop_map(|(f, k, v)| Value::Array(vec![Value::from(f), k, v]));
    prop_oneof![
        4 => prop::collection::vec(mop, 0..4).prop_map(Value::Array),
        1 => any_json(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Whatever the events hold, reading and checking them returns a
    /// result or an error: it never panics.
    #[test]
    fn arbitrary_values_never_panic(
        events in prop::collection::vec(
            (0u64..3, 0usize..4, any_txn_value(), any::<bool>()),
            0..12,
        ),
    ) {
        let kinds = ["invoke", "ok", "fail", "info"];
        let text: Vec<String> = events
            .iter()
            .map(|(p, k, v, txn)| {
                serde_json::json!({
                    "process": p,
                    "type": kinds[*k],
                    "f": if *txn { "txn" } else { "read" },
                    "value": v,
                })
                .to_string()
            })
            .collect();
        let h = History::from_jsonl(&text.join("\n")).unwrap();
        for model in [None, Some(TxnModel::ListAppend), Some(TxnModel::RwRegister)] {
            let opts = IsoOptions { txn_model: model, wfr_keys: true, ..IsoOptions::default() };
            if let Ok(r) = isolation::check(&h, &opts) {
                let _ = r.explain();
                let _ = isolation::html(&h, &r, "t");
            }
        }
    }
}
