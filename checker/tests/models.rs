//! Hand-made histories for each model: bad ones the checker rejects, good
//! ones it accepts. Written in the native JSON Lines format.

use checker::history::History;
use checker::linear::{check, try_check, Options, Verdict};
use checker::model::ModelKind;
use serde_json::{json, Value};

/// Builds a history from `(process, type, f, value)` events in real-time order.
fn hist(events: &[(u64, &str, &str, Value)]) -> History {
    keyed(
        &events
            .iter()
            .map(|(p, t, f, v)| (*p, *t, *f, None, v.clone()))
            .collect::<Vec<_>>(),
    )
}

fn keyed(events: &[(u64, &str, &str, Option<&str>, Value)]) -> History {
    let text: String = events
        .iter()
        .map(|(p, t, f, k, v)| {
            let mut o = json!({"process": p, "type": t, "f": f, "value": v});
            if let Some(k) = k {
                o["key"] = json!(k);
            }
            o.to_string() + "\n"
        })
        .collect();
    History::from_jsonl(&text).unwrap()
}

fn verdict(h: &History, m: ModelKind) -> Verdict {
    check(h, m, &Options::default()).verdict
}

fn verdict_init(h: &History, m: ModelKind, initial: Value) -> Verdict {
    let opts = Options {
        initial,
        ..Options::default()
    };
    check(h, m, &opts).verdict
}

use Verdict::{Linearizable as LIN, NotLinearizable as NOT};

#[test]
fn register_sequential_ok() {
    let h = hist(&[
        (1, "invoke", "write", json!(1)),
        (1, "ok", "write", json!(1)),
        (2, "invoke", "read", json!(null)),
        (2, "ok", "read", json!(1)),
    ]);
    assert_eq!(verdict(&h, ModelKind::Register), LIN);
    let r = check(&h, ModelKind::Register, &Options::default());
    assert_eq!(r.linearization, Some(vec![0, 2]));
}

#[test]
fn register_stale_read_rejected() {
    let h = hist(&[
        (1, "invoke", "write", json!(1)),
        (1, "ok", "write", json!(1)),
        (1, "invoke", "write", json!(2)),
        (1, "ok", "write", json!(2)),
        (2, "invoke", "read", json!(null)),
        (2, "ok", "read", json!(1)),
    ]);
    let r = check(&h, ModelKind::Register, &Options::default());
    assert_eq!(r.verdict, NOT);
    assert_eq!(r.failing, vec![4], "the read cannot follow the prefix");
    assert_eq!(r.prefix, vec![0, 2]);
    let text = r.explanation.unwrap();
    assert!(text.contains("impossible in state 2"), "{text}");
}

#[test]
fn register_concurrent_read_may_see_either() {
    for seen in [json!(null), json!(1)] {
        let h = hist(&[
            (1, "invoke", "write", json!(1)),
            (2, "invoke", "read", json!(null)),
            (2, "ok", "read", seen),
            (1, "ok", "write", json!(1)),
        ]);
        assert_eq!(verdict(&h, ModelKind::Register), LIN);
    }
}

#[test]
fn register_read_of_never_written_value_rejected() {
    let h = hist(&[
        (2, "invoke", "read", json!(null)),
        (2, "ok", "read", json!(7)),
    ]);
    assert_eq!(verdict(&h, ModelKind::Register), NOT);
    // ... unless it is the configured initial value.
    assert_eq!(verdict_init(&h, ModelKind::Register, json!(7)), LIN);
}

#[test]
fn unknown_write_may_take_effect_late_or_never() {
    // p1's write is info: it may land after p2's first read, or never.
    let base = [
        (1, "invoke", "write", json!(5)),
        (1, "info", "write", json!(5)),
        (2, "invoke", "read", json!(null)),
        (2, "ok", "read", json!(null)),
        (2, "invoke", "read", json!(null)),
    ];
    for second in [json!(null), json!(5)] {
        let mut ev = base.to_vec();
        ev.push((2, "ok", "read", second));
        assert_eq!(verdict(&hist(&ev), ModelKind::Register), LIN);
    }
    // But once observed it cannot be undone.
    let mut ev = base.to_vec();
    ev[3].3 = json!(5);
    ev.push((2, "ok", "read", json!(null)));
    assert_eq!(verdict(&hist(&ev), ModelKind::Register), NOT);
    // No completion at all is the same as info.
    let h = hist(&[
        (1, "invoke", "write", json!(5)),
        (2, "invoke", "read", json!(null)),
        (2, "ok", "read", json!(5)),
    ]);
    assert_eq!(verdict(&h, ModelKind::Register), LIN);
}

#[test]
fn failed_write_has_no_effect() {
    let h = hist(&[
        (1, "invoke", "write", json!(5)),
        (1, "fail", "write", json!(5)),
        (2, "invoke", "read", json!(null)),
        (2, "ok", "read", json!(5)),
    ]);
    assert_eq!(verdict(&h, ModelKind::Register), NOT);
}

#[test]
fn cas_register() {
    let ok = hist(&[
        (1, "invoke", "write", json!(1)),
        (1, "ok", "write", json!(1)),
        (2, "invoke", "cas", json!([1, 2])),
        (2, "ok", "cas", json!([1, 2])),
        (3, "invoke", "cas", json!([1, 3])),
        (3, "fail", "cas", json!([1, 3])),
        (1, "invoke", "read", json!(null)),
        (1, "ok", "read", json!(2)),
    ]);
    assert_eq!(verdict(&ok, ModelKind::CasRegister), LIN);
    // A cas that succeeded although the value was different.
    let bad = hist(&[
        (1, "invoke", "write", json!(1)),
        (1, "ok", "write", json!(1)),
        (2, "invoke", "cas", json!([2, 3])),
        (2, "ok", "cas", json!([2, 3])),
    ]);
    assert_eq!(verdict(&bad, ModelKind::CasRegister), NOT);
    // A failed cas means the value differed from the expected one.
    let bad_fail = hist(&[
        (1, "invoke", "write", json!(1)),
        (1, "ok", "write", json!(1)),
        (2, "invoke", "cas", json!([1, 3])),
        (2, "fail", "cas", json!([1, 3])),
    ]);
    assert_eq!(verdict(&bad_fail, ModelKind::CasRegister), NOT);
    // Initial value is configurable.
    let from_init = hist(&[
        (2, "invoke", "cas", json!([0, 3])),
        (2, "ok", "cas", json!([0, 3])),
    ]);
    assert_eq!(verdict(&from_init, ModelKind::CasRegister), NOT);
    assert_eq!(
        verdict_init(&from_init, ModelKind::CasRegister, json!(0)),
        LIN
    );
    // The plain register does not know cas: bad input.
    assert!(try_check(&ok, ModelKind::Register, &Options::default()).is_err());
}

#[test]
fn kv_per_key() {
    let ok = keyed(&[
        (1, "invoke", "put", Some("x"), json!(1)),
        (2, "invoke", "put", Some("y"), json!(2)),
        (1, "ok", "put", Some("x"), json!(1)),
        (2, "ok", "put", Some("y"), json!(2)),
        (1, "invoke", "get", Some("y"), json!(null)),
        (1, "ok", "get", Some("y"), json!(2)),
        (2, "invoke", "get", Some("z"), json!(null)),
        (2, "ok", "get", Some("z"), json!(null)),
        (3, "invoke", "delete", Some("x"), json!(null)),
        (3, "ok", "delete", Some("x"), json!(null)),
        (3, "invoke", "get", Some("x"), json!(null)),
        (3, "ok", "get", Some("x"), json!(null)),
        (3, "invoke", "cas", Some("y"), json!([2, 4])),
        (3, "ok", "cas", Some("y"), json!([2, 4])),
    ]);
    let r = check(
        &ok,
        ModelKind::Kv,
        &Options {
            threads: 2,
            ..Options::default()
        },
    );
    assert_eq!(r.verdict, LIN);
    assert_eq!(r.partitions, 3);
    let lin = r.linearization.unwrap();
    assert_eq!(lin.len(), 7, "{lin:?}");
    // A get that sees another key's value.
    let bad = keyed(&[
        (1, "invoke", "put", Some("x"), json!(1)),
        (1, "ok", "put", Some("x"), json!(1)),
        (2, "invoke", "get", Some("y"), json!(null)),
        (2, "ok", "get", Some("y"), json!(1)),
    ]);
    let r = check(&bad, ModelKind::Kv, &Options::default());
    assert_eq!(r.verdict, NOT);
    assert_eq!(r.failing_key.as_deref(), Some("y"));
    // A get after delete that still sees the value.
    let bad = keyed(&[
        (1, "invoke", "put", Some("x"), json!(1)),
        (1, "ok", "put", Some("x"), json!(1)),
        (1, "invoke", "delete", Some("x"), json!(null)),
        (1, "ok", "delete", Some("x"), json!(null)),
        (2, "invoke", "get", Some("x"), json!(null)),
        (2, "ok", "get", Some("x"), json!(1)),
    ]);
    assert_eq!(verdict(&bad, ModelKind::Kv), NOT);
}

#[test]
fn kv_append() {
    let ok = keyed(&[
        (1, "invoke", "append", Some("k"), json!("a")),
        (2, "invoke", "append", Some("k"), json!("b")),
        (1, "ok", "append", Some("k"), json!("a")),
        (2, "ok", "append", Some("k"), json!("b")),
        (3, "invoke", "get", Some("k"), json!(null)),
        (3, "ok", "get", Some("k"), json!("ba")),
    ]);
    assert_eq!(verdict(&ok, ModelKind::Kv), LIN);
    // Both appends completed, but the read misses one.
    let mut bad = ok.clone();
    bad.ops[5].value = json!("a");
    assert_eq!(verdict(&bad, ModelKind::Kv), NOT);
    // Reading a string nobody could have built.
    bad.ops[5].value = json!("ab!");
    let r = check(&bad, ModelKind::Kv, &Options::default());
    assert_eq!(r.verdict, NOT);
    // With initial "" (Porcupine's kv) an empty read of a fresh key is fine.
    let empty = keyed(&[
        (1, "invoke", "get", Some("q"), json!(null)),
        (1, "ok", "get", Some("q"), json!("")),
    ]);
    assert_eq!(verdict(&empty, ModelKind::Kv), NOT);
    assert_eq!(verdict_init(&empty, ModelKind::Kv, json!("")), LIN);
}

#[test]
fn mutex() {
    let ok = hist(&[
        (1, "invoke", "acquire", json!(null)),
        (1, "ok", "acquire", json!(null)),
        (2, "invoke", "acquire", json!(null)),
        (1, "invoke", "release", json!(null)),
        (1, "ok", "release", json!(null)),
        (2, "ok", "acquire", json!(null)),
    ]);
    assert_eq!(verdict(&ok, ModelKind::Mutex), LIN);
    let bad = hist(&[
        (1, "invoke", "acquire", json!(null)),
        (1, "ok", "acquire", json!(null)),
        (2, "invoke", "acquire", json!(null)),
        (2, "ok", "acquire", json!(null)),
    ]);
    assert_eq!(verdict(&bad, ModelKind::Mutex), NOT);
    let bad_release = hist(&[
        (1, "invoke", "release", json!(null)),
        (1, "ok", "release", json!(null)),
    ]);
    assert_eq!(verdict(&bad_release, ModelKind::Mutex), NOT);
    // An acquire with unknown outcome may hold the lock: a later acquire
    // can still succeed if it never happened.
    let unknown = hist(&[
        (1, "invoke", "lock", json!(null)),
        (1, "info", "lock", json!(null)),
        (2, "invoke", "lock", json!(null)),
        (2, "ok", "lock", json!(null)),
    ]);
    assert_eq!(verdict(&unknown, ModelKind::Mutex), LIN);
}

#[test]
fn nemesis_events_are_ignored() {
    let text = r#"{"index":0,"process":1,"type":"invoke","f":"put","key":"x","value":3,"time":1000}
{"process":"nemesis","type":"info","f":"partition","value":"n1 | n2 n3","time":1500}
{"index":1,"process":1,"type":"ok","f":"put","key":"x","value":3,"time":2000,"node":"n2"}
"#;
    let h = History::from_jsonl(text).unwrap();
    assert_eq!(h.ops[1].index, 1, "missing index = line position");
    assert_eq!(h.ops[2].extra["node"], json!("n2"));
    assert_eq!(verdict(&h, ModelKind::Kv), LIN);
}

#[test]
fn equal_times_count_as_concurrent() {
    // The read is invoked at the same instant the write completes.
    let text = r#"{"process":1,"type":"invoke","f":"write","value":1,"time":10}
{"process":1,"type":"ok","f":"write","value":1,"time":20}
{"process":2,"type":"invoke","f":"read","value":null,"time":20}
{"process":2,"type":"ok","f":"read","value":null,"time":30}
"#;
    let h = History::from_jsonl(text).unwrap();
    assert_eq!(verdict(&h, ModelKind::Register), LIN);
}

#[test]
fn bounds_give_unknown_not_a_hang() {
    // Many concurrent unknown writes and a read that nothing explains:
    // with a tiny cache the search stops with Unknown.
    let mut ev = Vec::new();
    for p in 0..20u64 {
        ev.push((p, "invoke", "write", json!(p)));
    }
    for p in 0..20u64 {
        ev.push((p, "ok", "write", json!(p)));
    }
    ev.push((99, "invoke", "read", json!(null)));
    ev.push((99, "ok", "read", json!(1000)));
    let h = hist(&ev);
    let opts = Options {
        max_cache_entries: 100,
        ..Options::default()
    };
    let r = check(&h, ModelKind::Register, &opts);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert!(r.unknown_reason.unwrap().contains("memory limit"));
    let opts = Options {
        timeout: Some(std::time::Duration::from_millis(1)),
        ..Options::default()
    };
    let r = check(&h, ModelKind::Register, &opts);
    assert!(matches!(
        r.verdict,
        Verdict::Unknown | Verdict::NotLinearizable
    ));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let h = hist(&[(1, "ok", "write", json!(1))]);
    let e = try_check(&h, ModelKind::Register, &Options::default()).unwrap_err();
    assert!(e.message.contains("never invoked"), "{e}");
    let h = hist(&[(1, "invoke", "cas", json!(3)), (1, "ok", "cas", json!(3))]);
    let e = try_check(&h, ModelKind::CasRegister, &Options::default()).unwrap_err();
    assert!(e.message.contains("[expected, new]"), "{e}");
    let r = check(&h, ModelKind::CasRegister, &Options::default());
    assert_eq!(r.verdict, Verdict::Unknown);
}
