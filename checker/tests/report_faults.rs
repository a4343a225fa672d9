//! The report's fault bands over real Jepsen histories (Knossos's examples,
//! vendored in `tests/data/knossos/`), read with Jepsen's meaning: a band
//! runs from a `:start` action (an invocation and its completion) to the
//! `:stop` action that ends it, as `jepsen.util/nemesis-intervals` pairs
//! them for Jepsen's own perf graphs.

use checker::formats;
use checker::report::{fault_bands, html};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/knossos");

fn bands(
    file: &str,
) -> (
    checker::history::History,
    Vec<(usize, Option<usize>, String)>,
) {
    let text = std::fs::read_to_string(format!("{DATA}/{file}")).expect("vendored history");
    let (h, _) = formats::parse_auto(&text).expect("parses");
    let b = fault_bands(&h)
        .into_iter()
        .map(|b| (h.ops[b.start].index, b.end.map(|e| h.ops[e].index), b.label))
        .collect();
    (h, b)
}

#[test]
fn etcds_partitions_run_from_start_to_stop() {
    // :start at 169/170, :stop at 372/373; 557/558 to 735/736; 959/960 to
    // 1117/1118 (indices as the file gives them).
    let (_, b) = bands("mutex/bad/etcd.edn");
    let spans: Vec<(usize, Option<usize>)> = b.iter().map(|(s, e, _)| (*s, *e)).collect();
    assert_eq!(
        spans,
        vec![(169, Some(373)), (557, Some(736)), (959, Some(1118))]
    );
}

#[test]
fn a_band_is_labelled_with_what_the_nemesis_did() {
    let (h, b) = bands("cas-register/bad/cas-failure.edn");
    assert_eq!(b.len(), 2, "{b:?}");
    assert!(
        b[0].1.is_some() && b[1].1.is_some(),
        "both partitions healed: {b:?}"
    );
    assert!(b[0].2.starts_with("start Cut off [:n3"), "{}", b[0].2);
    // The page carries them.
    let result = checker::linear::check(
        &h,
        checker::model::ModelKind::CasRegister,
        &Default::default(),
    );
    let page = html(&h, &result, "cas-failure");
    assert!(page.contains(r#""name":"nemesis""#) && page.contains("fault-band"));
}
