//! Each format with its own meaning: Jepsen EDN histories as Jepsen and
//! Knossos read them, native (and Porcupine) histories as before.

use checker::formats::{self, Format};
use checker::history::{History, Semantics};
use checker::linear::{try_check, Options, Verdict};
use checker::model::ModelKind;
use serde_json::{json, Value};

fn verdict(h: &History, model: ModelKind, initial: Value) -> Verdict {
    let opts = Options {
        initial,
        ..Options::default()
    };
    try_check(h, model, &opts).unwrap().verdict
}

fn edn(text: &str) -> History {
    let (h, f) = formats::parse_auto(text).unwrap();
    assert_eq!(f, Format::Edn);
    assert_eq!(h.semantics, Semantics::Jepsen);
    h
}

/// The same events, read with the native meaning.
fn native(h: &History) -> History {
    h.clone().with_semantics(Semantics::Native)
}

use Verdict::{Linearizable as LIN, NotLinearizable as NOT};

#[test]
fn a_failed_cas_did_not_happen_in_jepsen_but_observes_in_native() {
    // x = 1; a cas [1 2] fails afterwards.
    let h = edn("[{:process 0, :type :invoke, :f :write, :value 1}
 {:process 0, :type :ok, :f :write, :value 1}
 {:process 1, :type :invoke, :f :cas, :value [1 2]}
 {:process 1, :type :fail, :f :cas, :value [1 2]}]");
    assert_eq!(verdict(&h, ModelKind::CasRegister, Value::Null), LIN);
    // Native/Porcupine: the compare failed, so x was not 1: impossible.
    assert_eq!(
        verdict(&native(&h), ModelKind::CasRegister, Value::Null),
        NOT
    );
}

#[test]
fn a_failed_write_constrains_nothing_either_way() {
    let h = edn("[{:process 0, :type :invoke, :f :write, :value 1}
 {:process 0, :type :fail, :f :write, :value 1}
 {:process 1, :type :invoke, :f :read, :value nil}
 {:process 1, :type :ok, :f :read, :value 1}]");
    assert_eq!(verdict(&h, ModelKind::CasRegister, Value::Null), NOT);
    assert_eq!(
        verdict(&native(&h), ModelKind::CasRegister, Value::Null),
        NOT
    );
}

#[test]
fn a_read_of_nil_constrains_nothing_in_jepsen() {
    // The register starts at 0 and is never set to nil.
    let h = edn("[{:process 0, :type :invoke, :f :read, :value nil}
 {:process 0, :type :ok, :f :read, :value nil}
 {:process 1, :type :invoke, :f :write, :value 3}
 {:process 1, :type :ok, :f :write, :value 3}
 {:process 0, :type :invoke, :f :read, :value nil}
 {:process 0, :type :ok, :f :read, :value nil}]");
    for m in [ModelKind::Register, ModelKind::CasRegister] {
        assert_eq!(verdict(&h, m, json!(0)), LIN, "{m:?}");
        assert_eq!(verdict(&native(&h), m, json!(0)), NOT, "{m:?}");
    }
    // Per key too.
    let h = edn("[{:process 0, :type :invoke, :f :read, :key :x, :value nil}
 {:process 0, :type :ok, :f :read, :key :x, :value nil}]");
    assert_eq!(verdict(&h, ModelKind::Kv, json!(0)), LIN);
    assert_eq!(verdict(&native(&h), ModelKind::Kv, json!(0)), NOT);
}

#[test]
fn an_ok_value_replaces_the_invocation_value_in_jepsen() {
    // The client logged the write as 1 on the invoke and 2 on the ok.
    let h = edn("[{:process 0, :type :invoke, :f :write, :value 1}
 {:process 0, :type :ok, :f :write, :value 2}
 {:process 1, :type :invoke, :f :read, :value nil}
 {:process 1, :type :ok, :f :read, :value 2}]");
    assert_eq!(verdict(&h, ModelKind::Register, Value::Null), LIN);
    assert_eq!(verdict(&native(&h), ModelKind::Register, Value::Null), NOT);
}

#[test]
fn the_file_order_is_real_time_in_jepsen() {
    // By :time the read (invoked at 5) overlaps the write (done at 20);
    // by the order of the file it follows it.
    let h = edn("[{:process 0, :type :invoke, :f :write, :value 1, :time 10}
 {:process 0, :type :ok, :f :write, :value 1, :time 20}
 {:process 1, :type :invoke, :f :read, :value nil, :time 5}
 {:process 1, :type :ok, :f :read, :value 0, :time 30}]");
    assert_eq!(verdict(&h, ModelKind::Register, json!(0)), NOT);
    assert_eq!(verdict(&native(&h), ModelKind::Register, json!(0)), LIN);
}

#[test]
fn an_info_with_nothing_pending_is_ignored_in_jepsen() {
    let h = edn("[{:process 0, :type :info, :f :crash, :value nil}
 {:process 0, :type :invoke, :f :write, :value 1}
 {:process 0, :type :ok, :f :write, :value 1}]");
    assert_eq!(verdict(&h, ModelKind::Register, Value::Null), LIN);
    let opts = Options::default();
    let e = try_check(&native(&h), ModelKind::Register, &opts).unwrap_err();
    assert!(e.message.contains("never invoked"), "{e}");
}

#[test]
fn an_info_may_have_happened() {
    let h = edn("[{:process 0, :type :invoke, :f :write, :value 1}
 {:process 0, :type :info, :f :write, :value 1}
 {:process 1, :type :invoke, :f :read, :value nil}
 {:process 1, :type :ok, :f :read, :value 0}
 {:process 1, :type :invoke, :f :read, :value nil}
 {:process 1, :type :ok, :f :read, :value 1}]");
    assert_eq!(verdict(&h, ModelKind::CasRegister, json!(0)), LIN);
    // ... but once it was seen, it cannot be undone.
    let h = edn("[{:process 0, :type :invoke, :f :write, :value 1}
 {:process 0, :type :info, :f :write, :value 1}
 {:process 1, :type :invoke, :f :read, :value nil}
 {:process 1, :type :ok, :f :read, :value 1}
 {:process 1, :type :invoke, :f :read, :value nil}
 {:process 1, :type :ok, :f :read, :value 0}]");
    assert_eq!(verdict(&h, ModelKind::CasRegister, json!(0)), NOT);
}

#[test]
fn other_formats_keep_the_native_meaning() {
    for (text, want) in [
        (
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"read\"}\n",
            Format::Native,
        ),
        ("INFO  jepsen.util - 0\t:invoke\t:read\tnil\n", Format::Etcd),
        (
            "{:process 0, :type :invoke, :f :get, :key \"a\", :value nil}\n",
            Format::PorcupineKv,
        ),
    ] {
        let (h, f) = formats::parse_auto(text).unwrap();
        assert_eq!(f, want);
        assert_eq!(h.semantics, Semantics::Native, "{want:?}");
        assert_eq!(f.semantics(), Semantics::Native);
    }
    assert_eq!(Format::Edn.semantics(), Semantics::Jepsen);
    assert_eq!(Semantics::by_name("knossos"), Some(Semantics::Jepsen));
    assert_eq!(Semantics::by_name("porcupine"), Some(Semantics::Native));
}

#[test]
fn default_models_follow_the_functions() {
    let h = edn("[{:process 0, :type :invoke, :f :txn, :value [[:read :x nil]]}]");
    assert_eq!(Format::Edn.default_model(&h), ModelKind::MultiRegister);
    let h = edn("[{:process 0, :type :invoke, :f :acquire}]");
    assert_eq!(Format::Edn.default_model(&h), ModelKind::Mutex);
    let h = edn("[{:process 0, :type :invoke, :f :read, :value nil}]");
    assert_eq!(Format::Edn.default_model(&h), ModelKind::CasRegister);
}

const TXNS: &str = "[{:process 0, :type :invoke, :f :txn, :value [[:write :x 1] [:write :y 2]]}
 {:process 0, :type :ok, :f :txn, :value [[:write :x 1] [:write :y 2]]}
 {:process 1, :type :invoke, :f :txn, :value [[:read :x nil] [:read :y nil]]}
 {:process 1, :type :ok, :f :txn, :value [[:read :x 1] [:read :y Y]]}]";

#[test]
fn multi_register_transactions_are_atomic() {
    let m = ModelKind::MultiRegister;
    assert_eq!(verdict(&edn(&TXNS.replace('Y', "2")), m, json!(0)), LIN);
    // x from after the write, y from before: not atomic.
    assert_eq!(verdict(&edn(&TXNS.replace('Y', "0")), m, json!(0)), NOT);
    // A nil read is always legal (Knossos), a native null read is not here.
    let h = edn(&TXNS.replace('Y', "nil"));
    assert_eq!(verdict(&h, m, json!(0)), LIN);
    assert_eq!(verdict(&native(&h), m, json!(0)), NOT);
    // Initial values per register, as Knossos's (multi-register {:x 0 :y 0}).
    let h = edn(
        "[{:process 0, :type :invoke, :f :txn, :value [[:r :x nil] [:r :y nil]]}
 {:process 0, :type :ok, :f :txn, :value [[:r :x 5] [:r :y nil]]}]",
    );
    assert_eq!(verdict(&h, m, json!({"x": 5})), LIN);
    assert_eq!(verdict(&h, m, json!({"x": 0, "y": 0})), NOT);
    assert_eq!(verdict(&h, m, json!(5)), LIN);
}

#[test]
fn multi_register_unknown_transactions_may_have_happened() {
    let m = ModelKind::MultiRegister;
    let with = |x: &str| {
        let text = "[{:process 0, :type :invoke, :f :txn, :value [[:read :x nil] [:write :x 1] [:write :y 1]]}
 {:process 0, :type :info, :f :txn, :value [[:read :x nil] [:write :x 1] [:write :y 1]]}
 {:process 1, :type :invoke, :f :txn, :value [[:read :y nil]]}
 {:process 1, :type :ok, :f :txn, :value [[:read :y 1]]}
 {:process 1, :type :invoke, :f :txn, :value [[:read :x nil]]}
 {:process 1, :type :ok, :f :txn, :value [[:read :x X]]}]";
        edn(&text.replace('X', x))
    };
    assert_eq!(verdict(&with("1"), m, json!(0)), LIN);
    // y = 1 was seen, so the txn happened, and x = 1 with it.
    assert_eq!(verdict(&with("0"), m, json!(0)), NOT);
    // A failed txn did not happen.
    let h = edn(
        "[{:process 0, :type :invoke, :f :txn, :value [[:write :x 1]]}
 {:process 0, :type :fail, :f :txn, :value [[:write :x 1]]}
 {:process 1, :type :invoke, :f :txn, :value [[:read :x nil]]}
 {:process 1, :type :ok, :f :txn, :value [[:read :x 1]]}]",
    );
    assert_eq!(verdict(&h, m, json!(0)), NOT);
}

#[test]
fn multi_register_rejects_what_it_does_not_know() {
    let opts = Options::default();
    let h = edn("[{:process 0, :type :invoke, :f :read, :value nil}]");
    let e = try_check(&h, ModelKind::MultiRegister, &opts).unwrap_err();
    assert!(e.message.contains("supported: txn"), "{e}");
    let h = edn("[{:process 0, :type :invoke, :f :txn, :value [[:append :x 1]]}]");
    let e = try_check(&h, ModelKind::MultiRegister, &opts).unwrap_err();
    assert!(e.message.contains("[f k v]"), "{e}");
    let h = edn("[{:process 0, :type :invoke, :f :txn, :value 3}]");
    let e = try_check(&h, ModelKind::MultiRegister, &opts).unwrap_err();
    assert!(e.message.contains("list of [f k v]"), "{e}");
}

#[test]
fn a_failure_names_the_registers() {
    let h = edn(&TXNS.replace('Y', "0"));
    let r = checker::linear::check(
        &h,
        ModelKind::MultiRegister,
        &Options {
            initial: json!(0),
            ..Options::default()
        },
    );
    assert_eq!(r.verdict, NOT);
    let e = r.explanation.unwrap();
    assert!(e.contains("{x 1, y 2}"), "{e}");
}
