//! Every history of Porcupine's test data, with the verdict Porcupine's own
//! test suite asserts (`expected.csv`), vendored in `tests/data/porcupine/`.

use checker::formats::{self, Format};
use checker::linear::{self, Options, Verdict};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/porcupine");

/// `None` for the empty file (`etcd_095.log`, listed as `none`).
fn expected() -> Vec<(String, Option<Verdict>)> {
    let csv = std::fs::read_to_string(format!("{CORPUS}/expected.csv")).expect("corpus present");
    csv.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (file, v) = l.split_once(',').expect("file,expected");
            let v = match v.trim() {
                "linearizable" => Some(Verdict::Linearizable),
                "not-linearizable" => Some(Verdict::NotLinearizable),
                "none" => None,
                other => panic!("unexpected verdict {other}"),
            };
            (file.to_string(), v)
        })
        .collect()
}

fn check_file(file: &str, threads: usize) -> linear::CheckResult {
    let text = std::fs::read_to_string(format!("{CORPUS}/{file}")).unwrap();
    let (history, format) = formats::parse_auto(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    if !text.trim().is_empty() {
        let want = if file.starts_with("etcd/") {
            Format::Etcd
        } else {
            Format::PorcupineKv
        };
        assert_eq!(format, want, "{file}: format detection");
    }
    let model = format.default_model(&history);
    let opts = Options {
        threads,
        initial: format.default_initial(),
        ..Options::default()
    };
    linear::try_check(&history, model, &opts).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn porcupine_corpus_verdicts() {
    let all = expected();
    let etcd = |f: &String| f.starts_with("etcd/");
    assert_eq!(
        all.iter().filter(|(f, v)| etcd(f) && v.is_some()).count(),
        102
    );
    assert_eq!(all.iter().filter(|(f, _)| f.starts_with("kv/")).count(), 6);
    let mut wrong = Vec::new();
    for (file, want) in &all {
        let got = check_file(file, 2);
        let Some(want) = want else {
            // The empty history: nothing to contradict.
            assert_eq!(got.verdict, Verdict::Linearizable, "{file}");
            continue;
        };
        if got.verdict != *want {
            wrong.push(format!("{file}: expected {want:?}, got {:?}", got.verdict));
        }
        if got.verdict == Verdict::NotLinearizable {
            assert!(
                !got.failing.is_empty(),
                "{file}: a failure names its failing operations"
            );
            assert!(got.explanation.is_some());
        }
    }
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
}

#[test]
fn single_thread_gives_the_same_verdicts_on_kv() {
    for (file, want) in expected().iter().filter(|(f, _)| f.starts_with("kv/")) {
        assert_eq!(Some(check_file(file, 1).verdict), *want, "{file}");
    }
}
