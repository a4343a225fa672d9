//! Knossos's example histories (`data/` of jepsen-io/knossos, vendored in
//! `tests/data/knossos/`), each with the verdict, model and initial value
//! Knossos's own tests give it (`expected.csv`): read with Jepsen's meaning,
//! every verdict must be Knossos's.

use std::time::{Duration, Instant};

use checker::formats::{self, Format};
use checker::history::Semantics;
use checker::linear::{try_check, CheckResult, Options, Verdict};
use checker::model::ModelKind;
use serde_json::Value;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/knossos");

struct Row {
    file: String,
    want: Verdict,
    model: ModelKind,
    initial: Value,
}

fn expected() -> Vec<Row> {
    let csv = std::fs::read_to_string(format!("{DATA}/expected.csv")).expect("data present");
    csv.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.splitn(4, ',').collect();
            let [file, want, model, initial] = cols.as_slice() else {
                panic!("expected file,expected,model,initial: {l}");
            };
            Row {
                file: file.to_string(),
                want: match *want {
                    "linearizable" => Verdict::Linearizable,
                    "not-linearizable" => Verdict::NotLinearizable,
                    other => panic!("unexpected verdict {other}"),
                },
                model: ModelKind::by_name(model).expect("a model name"),
                initial: if initial.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(initial).expect("a JSON initial value")
                },
            }
        })
        .collect()
}

fn check(file: &str, model: ModelKind, initial: Value) -> (CheckResult, Duration) {
    let text = std::fs::read_to_string(format!("{DATA}/{file}")).unwrap();
    let (history, format) = formats::parse_auto(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(format, Format::Edn, "{file}");
    assert_eq!(history.semantics, Semantics::Jepsen, "{file}");
    assert_eq!(
        format.default_model(&history),
        model,
        "{file}: default model"
    );
    let opts = Options {
        initial,
        // Generous: every file takes milliseconds.
        timeout: Some(Duration::from_secs(60)),
        ..Options::default()
    };
    let start = Instant::now();
    let r = try_check(&history, model, &opts).unwrap_or_else(|e| panic!("{file}: {e}"));
    (r, start.elapsed())
}

#[test]
fn knossos_example_verdicts() {
    let rows = expected();
    let count = |dir: &str| rows.iter().filter(|r| r.file.starts_with(dir)).count();
    assert_eq!(count("cas-register/good/"), 113);
    assert_eq!(count("cas-register/bad/"), 7);
    assert_eq!(count("multi-register/good/"), 1);
    assert_eq!(count("mutex/bad/"), 1);
    let mut wrong = Vec::new();
    let mut total = Duration::ZERO;
    let mut slowest = (Duration::ZERO, String::new());
    for row in &rows {
        let (r, took) = check(&row.file, row.model, row.initial.clone());
        println!(
            "{:<48} {:>9.3} ms  {}",
            row.file,
            took.as_secs_f64() * 1e3,
            r.verdict.name()
        );
        total += took;
        if took > slowest.0 {
            slowest = (took, row.file.clone());
        }
        if r.verdict != row.want {
            wrong.push(format!(
                "{}: expected {:?}, got {:?} {}",
                row.file,
                row.want,
                r.verdict,
                r.unknown_reason.unwrap_or_default()
            ));
        }
        if r.verdict == Verdict::NotLinearizable {
            assert!(!r.failing.is_empty(), "{}: names its failing ops", row.file);
        }
    }
    println!(
        "total {:.3} ms for {} files; slowest {} ({:.3} ms)",
        total.as_secs_f64() * 1e3,
        rows.len(),
        slowest.1,
        slowest.0.as_secs_f64() * 1e3
    );
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
    // Milliseconds each in a release build; a debug build on a busy CI
    // machine stays far below this.
    assert!(total < Duration::from_secs(30), "took {total:?}");
}

/// Knossos's tests also check these with `(cas-register nil)`
/// (test/knossos/linear_test.clj and wgl_test.clj).
#[test]
fn knossos_examples_with_a_nil_register() {
    for file in [
        "cas-register/bad/rethink-fail-minimal.edn",
        "cas-register/bad/rethink-fail-smaller.edn",
    ] {
        let (r, _) = check(file, ModelKind::CasRegister, Value::Null);
        assert_eq!(r.verdict, Verdict::NotLinearizable, "{file}");
    }
}

/// Knossos's tests name the operation that cannot be linearized, by its
/// completion; the checker names it by its invocation.
#[test]
fn knossos_failing_operations() {
    // linear_test.clj, cas-failure-test: the read of 0 by process 70,
    // completed at index 491 and invoked at 488.
    let (r, _) = check(
        "cas-register/bad/cas-failure.edn",
        ModelKind::CasRegister,
        serde_json::json!(0),
    );
    assert_eq!(r.failing, vec![488]);
    // immediate-failure-test: the read of 3 by process 1, completed at
    // index 3 and invoked at 0.
    let (r, _) = check(
        "cas-register/bad/immediate-failure.edn",
        ModelKind::CasRegister,
        serde_json::json!(0),
    );
    assert_eq!(r.failing, vec![0]);
    // wgl_test.clj, rethink-fail-smaller-test (initial nil): the read of 3
    // by process 12, completed at index 217 and invoked at 215.
    let (r, _) = check(
        "cas-register/bad/rethink-fail-smaller.edn",
        ModelKind::CasRegister,
        Value::Null,
    );
    assert!(r.failing.contains(&215), "{:?}", r.failing);
}
