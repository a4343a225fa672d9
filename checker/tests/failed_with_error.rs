//! A `fail` completion with an `error` field means the operation never ran
//! (the client got a definite refusal); a plain `fail` of a cas means its
//! compare failed and so observed state != expected.

use checker::history::History;
use checker::linear::{check, Options, Verdict};
use checker::model::ModelKind;

const BASE: &str = r#"{"process":1,"type":"invoke","f":"put","key":"x","value":1}
{"process":1,"type":"ok","f":"put","key":"x","value":1}
{"process":2,"type":"invoke","f":"cas","key":"x","value":[1,2]}
"#;

fn verdict(completion: &str) -> Verdict {
    let h = History::from_jsonl(&format!("{BASE}{completion}\n")).unwrap();
    check(&h, ModelKind::Kv, &Options::default()).verdict
}

#[test]
fn a_cas_refused_with_an_error_constrains_nothing() {
    let c = r#"{"process":2,"type":"fail","f":"cas","key":"x","value":[1,2],"error":"not leader"}"#;
    assert_eq!(verdict(c), Verdict::Linearizable);
}

#[test]
fn a_cas_whose_compare_failed_observes_the_state() {
    // x is 1, so a compare against 1 cannot have failed.
    let c = r#"{"process":2,"type":"fail","f":"cas","key":"x","value":[1,2]}"#;
    assert_eq!(verdict(c), Verdict::NotLinearizable);
}
