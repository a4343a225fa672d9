//! The isolation checker on hand-made histories: for every anomaly, the
//! smallest history that has it (the right name, the right models ruled
//! out), and a variant without it judged valid.
//!
//! Transactions are written in Elle's test notation: `ax1` appends 1 to x,
//! `rx12` reads x = [1 2], `rx` reads x = [] (list-append); `wx1` writes 1,
//! `rx1` reads 1, `rx_` reads nil (rw-register).

use checker::history::History;
use checker::isolation::{self, Consistency, IsoOptions, IsoResult, IsoVerdict, TxnModel};
use serde_json::{json, Value};

/// Micro-ops of a transaction in Elle's notation; `list`: list-append.
fn mops(s: &str, list: bool) -> Value {
    let mut out: Vec<Value> = Vec::new();
    let mut cur: Option<(char, String, Vec<Value>)> = None;
    let flush = |cur: &mut Option<(char, String, Vec<Value>)>, out: &mut Vec<Value>| {
        if let Some((f, k, vs)) = cur.take() {
            out.push(match (f, list) {
                ('a', _) => json!(["append", k, vs[0]]),
                ('w', _) => json!(["w", k, vs[0]]),
                ('r', true) => json!(["r", k, vs]),
                ('r', false) => json!(["r", k, vs.first().cloned().unwrap_or(Value::Null)]),
                _ => unreachable!(),
            });
        }
    };
    for c in s.chars() {
        match c {
            'a' | 'w' | 'r' => {
                flush(&mut cur, &mut out);
                cur = Some((c, String::new(), Vec::new()));
            }
            'x' | 'y' | 'z' | 't' | 'u' => cur.as_mut().unwrap().1.push(c),
            '_' => cur.as_mut().unwrap().2.push(Value::Null),
            d => cur.as_mut().unwrap().2.push(json!(d.to_digit(10).unwrap())),
        }
    }
    flush(&mut cur, &mut out);
    Value::Array(out)
}

/// The invocation's value: reads unknown.
fn invocation(v: &Value) -> Value {
    Value::Array(
        v.as_array()
            .unwrap()
            .iter()
            .map(|m| {
                if m[0] == "r" {
                    json!(["r", m[1], null])
                } else {
                    m.clone()
                }
            })
            .collect(),
    )
}

/// A history built event by event.
struct H {
    list: bool,
    lines: Vec<String>,
}

impl H {
    fn append() -> H {
        H {
            list: true,
            lines: Vec::new(),
        }
    }
    fn register() -> H {
        H {
            list: false,
            lines: Vec::new(),
        }
    }
    fn event(&mut self, p: u64, kind: &str, value: Value) -> &mut H {
        self.lines
            .push(json!({"process": p, "type": kind, "f": "txn", "value": value}).to_string());
        self
    }
    /// Invokes the transaction `s` on process p.
    fn inv(&mut self, p: u64, s: &str) -> &mut H {
        let v = invocation(&mops(s, self.list));
        self.event(p, "invoke", v)
    }
    /// Completes p's transaction with outcome `kind` and values `s`.
    fn done(&mut self, p: u64, kind: &str, s: &str) -> &mut H {
        let v = mops(s, self.list);
        self.event(p, kind, v)
    }
    /// Invocation then ok, back to back.
    fn ok(&mut self, p: u64, s: &str) -> &mut H {
        self.inv(p, s).done(p, "ok", s)
    }
    fn history(&self) -> History {
        History::from_jsonl(&self.lines.join("\n")).unwrap()
    }
}

fn check(h: &H, c: Consistency) -> IsoResult {
    let r = isolation::check(
        &h.history(),
        &IsoOptions {
            consistency: c,
            ..IsoOptions::default()
        },
    )
    .unwrap();
    // Every result renders, as text, JSON and HTML.
    assert!(!r.explain().is_empty());
    serde_json::to_string(&r).unwrap();
    assert!(isolation::html(&h.history(), &r, "t").contains("data-rendered=\"ok\""));
    r
}

use Consistency::*;

fn invalid(h: &H, c: Consistency, types: &[&str], not: &[&str]) -> IsoResult {
    let r = check(h, c);
    assert_eq!(r.verdict, IsoVerdict::Invalid, "{}", r.explain());
    assert_eq!(r.anomaly_types, types, "{}", r.explain());
    assert_eq!(r.not, not, "{}", r.explain());
    r
}

fn valid(h: &H, c: Consistency) -> IsoResult {
    let r = check(h, c);
    assert_eq!(r.verdict, IsoVerdict::Valid, "{}", r.explain());
    r
}

/// T1 and T2 run concurrently (both invoked, then both complete).
fn concurrent(h: &mut H, t1: &str, t2: &str) {
    h.inv(1, t1).inv(2, t2).done(1, "ok", t1).done(2, "ok", t2);
}

#[test]
fn g0_write_cycle() {
    // x's appends in the order T1, T2; y's in the order T2, T1.
    let mut h = H::append();
    concurrent(&mut h, "ax1ay1", "ax2ay2");
    h.ok(3, "rx12ry21");
    let r = invalid(&h, ReadUncommitted, &["G0"], &["read-uncommitted"]);
    let g0 = &r.anomalies[0];
    assert_eq!(g0.steps.len(), 2);
    assert!(
        g0.explanation
            .contains("T2 appended 2 to x after T1 appended 1"),
        "{}",
        g0.explanation
    );
    assert!(r.also_not.contains(&"strict-serializable".to_string()));
    // The same orders on both keys: fine.
    let mut h = H::append();
    concurrent(&mut h, "ax1ay1", "ax2ay2");
    h.ok(3, "rx12ry12");
    let r = valid(&h, StrictSerializable);
    assert_eq!(r.consistent_with, ["strict-serializable"]);
}

#[test]
fn g1a_aborted_read() {
    let mut h = H::append();
    h.inv(1, "ax1").done(1, "fail", "ax1").ok(2, "rx1");
    // Nothing links the two (the failed one did not happen): Elle says
    // unknown (empty transaction graph) under read-uncommitted, and
    // invalid under read-committed.
    let r = check(&h, ReadUncommitted);
    assert_eq!(r.verdict, IsoVerdict::Unknown);
    assert_eq!(r.anomaly_types, ["empty-transaction-graph"]);
    assert_eq!(r.not, ["read-committed"]);
    invalid(
        &h,
        ReadCommitted,
        &["G1a", "empty-transaction-graph"],
        &["read-committed"],
    );
    let mut h = H::append();
    h.ok(1, "ax1").ok(2, "rx1");
    valid(&h, StrictSerializable);
}

#[test]
fn g1b_intermediate_read() {
    // Elle's checker-test "G1b": also G-single, as rx1 misses ax2.
    let mut h = H::append();
    h.ok(1, "ax1ax2").ok(2, "rx1");
    invalid(
        &h,
        StrictSerializable,
        &["G-single-item", "G1b"],
        &["read-committed"],
    );
    let mut h = H::append();
    h.ok(1, "ax1ax2").ok(2, "rx12");
    valid(&h, StrictSerializable);
}

#[test]
fn g1c_circular_information_flow() {
    // Each reads the other's write.
    let mut h = H::append();
    concurrent(&mut h, "ax1ry1", "ay1rx1");
    let r = invalid(&h, ReadCommitted, &["G1c"], &["read-committed"]);
    assert!(
        r.anomalies[0].explanation.contains("which ends with T"),
        "{}",
        r.explain()
    );
    valid(&h, ReadUncommitted);
    let mut h = H::append();
    concurrent(&mut h, "ax1ry", "ay1rx1");
    valid(&h, StrictSerializable);
}

#[test]
fn g_single_read_skew() {
    // T2 sees T1's append to y but not the one to x.
    let mut h = H::append();
    concurrent(&mut h, "ax1ay1", "rxry1");
    let r = invalid(
        &h,
        Serializable,
        &["G-single-item"],
        &["consistent-view", "repeatable-read"],
    );
    assert!(r.has("G-single") && r.has("G2"));
    invalid(
        &h,
        SnapshotIsolation,
        &["G-single-item"],
        &["consistent-view", "repeatable-read"],
    );
    valid(&h, ReadCommitted);
    let mut h = H::append();
    concurrent(&mut h, "ax1ay1", "rx1ry1");
    valid(&h, StrictSerializable);
}

#[test]
fn g2_item_write_skew() {
    // Each reads the key the other appends to, before it does.
    let mut h = H::append();
    concurrent(&mut h, "rxay1", "ryax1");
    invalid(&h, Serializable, &["G2-item"], &["repeatable-read"]);
    // Snapshot isolation allows write skew.
    let r = valid(&h, SnapshotIsolation);
    assert_eq!(r.counts.get("G2-item"), Some(&1));
    let mut h = H::append();
    concurrent(&mut h, "rxay1", "ry1ax1");
    valid(&h, StrictSerializable);
}

#[test]
fn g_nonadjacent() {
    // Elle's G-nonadjacent-test: two rw edges, never adjacent.
    let mut h = H::append();
    h.inv(1, "ax1")
        .inv(2, "rx1ry")
        .inv(3, "ay1")
        .inv(4, "ry1rx")
        .done(1, "ok", "ax1")
        .done(2, "ok", "rx1ry")
        .done(3, "ok", "ay1")
        .done(4, "ok", "ry1rx");
    let r = invalid(
        &h,
        Serializable,
        &["G-nonadjacent-item"],
        &["repeatable-read", "snapshot-isolation"],
    );
    assert_eq!(r.anomalies[0].steps.len(), 4);
    invalid(
        &h,
        SnapshotIsolation,
        &["G-nonadjacent-item"],
        &["repeatable-read", "snapshot-isolation"],
    );
    // T4 sees x: no cycle.
    let mut h = H::append();
    h.inv(1, "ax1")
        .inv(2, "rx1ry")
        .inv(3, "ay1")
        .inv(4, "ry1rx1")
        .done(1, "ok", "ax1")
        .done(2, "ok", "rx1ry")
        .done(3, "ok", "ay1")
        .done(4, "ok", "ry1rx1");
    valid(&h, StrictSerializable);
}

#[test]
fn process_variants() {
    // G0-process: process 1 appends 1 then 2, but x shows 2 before 1.
    let mut h = H::append();
    h.ok(1, "ax1").ok(1, "ax2").ok(2, "rx21");
    invalid(
        &h,
        StrongSessionSerializable,
        &["G0-process"],
        &["strong-session-read-uncommitted"],
    );
    valid(&h, Serializable);
    // G1c-process: process 1's first transaction reads what its second
    // writes.
    let mut h = H::append();
    h.ok(1, "rx1").ok(1, "ax1");
    invalid(
        &h,
        StrongSessionSerializable,
        &["G1c-process"],
        &["strong-session-read-committed"],
    );
    // G-single-item-process: process 1 does not see its own append.
    let mut h = H::append();
    h.ok(1, "ax1").ok(1, "rx");
    let r = invalid(
        &h,
        StrongSessionSerializable,
        &["G-single-item-process"],
        &["strong-session-snapshot-isolation"],
    );
    assert!(r.anomalies[0]
        .explanation
        .contains("process 1 executed T1 before T2"));
    valid(&h, Serializable);
    // Two processes: no session order between them.
    let mut h = H::append();
    h.ok(1, "ax1").ok(2, "rx");
    valid(&h, StrongSessionSerializable);
}

#[test]
fn realtime_variants() {
    // G-single-item-realtime: a stale read after the write completed.
    let mut h = H::append();
    h.ok(1, "ax1").ok(2, "rx");
    let r = invalid(
        &h,
        StrictSerializable,
        &["G-single-item-realtime"],
        &["strong-snapshot-isolation"],
    );
    assert!(r.anomalies[0]
        .explanation
        .contains("T1 completed before T2 began"));
    valid(&h, Serializable);
    // Concurrent: fine.
    let mut h = H::append();
    concurrent(&mut h, "ax1", "rx");
    valid(&h, StrictSerializable);
    // G0-realtime.
    let mut h = H::append();
    h.ok(1, "ax1").ok(2, "ax2").ok(3, "rx21");
    invalid(
        &h,
        StrictSerializable,
        &["G0-realtime"],
        &["strong-read-uncommitted"],
    );
    // G1c-realtime: a read of a write that had not begun.
    let mut h = H::append();
    h.ok(1, "rx1").ok(2, "ax1");
    invalid(
        &h,
        StrictSerializable,
        &["G1c-realtime"],
        &["strong-read-committed"],
    );
    // G2-item-realtime: T1 -rw-> T2 -rw-> T3 -realtime-> T1, where T2
    // overlaps both.
    let mut h = H::append();
    h.inv(2, "ax1ry")
        .inv(3, "ay1")
        .done(3, "ok", "ay1")
        .inv(1, "rx")
        .done(1, "ok", "rx")
        .done(2, "ok", "ax1ry");
    invalid(
        &h,
        StrictSerializable,
        &["G2-item-realtime"],
        &["strict-serializable"],
    );
    valid(&h, Serializable);
}

#[test]
fn non_cycle_anomalies() {
    // internal: Elle's FaunaDB example, a read after an append that does
    // not show it.
    let mut h = H::append();
    h.ok(1, "ax6rx").ok(2, "rx6");
    let r = invalid(&h, Serializable, &["internal"], &["read-atomic"]);
    assert!(
        r.anomalies[0].explanation.contains("imply [... 6]"),
        "{}",
        r.explain()
    );
    // future-read: a read of an element the transaction appends later.
    let mut h = H::append();
    h.ok(1, "rx1ax1");
    let r = check(&h, Serializable);
    assert!(r.has("future-read") && r.has("G1c"), "{}", r.explain());
    // duplicate-elements.
    let mut h = H::append();
    h.ok(1, "ax1").ok(2, "rx11");
    invalid(
        &h,
        ReadUncommitted,
        &["duplicate-elements"],
        &["read-uncommitted"],
    );
    // duplicate-appends: the same value appended twice; nothing can be
    // inferred, unknown (Elle throws :duplicate-appends, valid? :unknown).
    let mut h = H::append();
    h.ok(1, "ax1").ok(2, "ax1").ok(3, "rx1");
    let r = check(&h, StrictSerializable);
    assert_eq!(r.verdict, IsoVerdict::Unknown, "{}", r.explain());
    assert!(r.unknown_reason.unwrap().contains("duplicate-appends"));
    // incompatible-order.
    let mut h = H::append();
    h.ok(1, "ax1").ok(2, "ax2").ok(3, "rx12").ok(4, "rx21");
    let r = check(&h, ReadCommitted);
    assert!(
        r.anomaly_types.contains(&"incompatible-order".to_string()),
        "{}",
        r.explain()
    );
    assert!(r.not.contains(&"read-committed".to_string()));
    // garbage-read: a value nobody appended.
    let mut h = H::append();
    h.ok(1, "ax1").ok(2, "rx1").ok(3, "rx19");
    invalid(&h, ReadCommitted, &["garbage-read"], &["read-committed"]);
    // dirty-update: a committed append on top of a failed one.
    let mut h = H::append();
    h.inv(1, "ax1")
        .done(1, "fail", "ax1")
        .ok(2, "ax2")
        .ok(3, "rx12");
    let r = check(&h, ReadCommitted);
    assert!(r.has("dirty-update") && r.has("G1a"), "{}", r.explain());
    // lost-update: Elle's lost-update-test.
    let mut h = H::append();
    h.ok(0, "ax0").ok(0, "rx0ax1").ok(0, "rx0ax2");
    let r = check(&h, StrictSerializable);
    assert!(r.has("lost-update") && r.has("G2-item"), "{}", r.explain());
    assert_eq!(r.not, ["cursor-stability", "update-atomic"]);
    // ...but one transaction writing twice over its read is fine.
    let mut h = H::append();
    h.ok(0, "rxax1ax2").ok(0, "rx12");
    valid(&h, StrictSerializable);
}

#[test]
fn unknown_outcomes() {
    // An info transaction's write may be seen...
    let mut h = H::append();
    h.inv(1, "ax1").done(1, "info", "ax1").ok(2, "rx1");
    valid(&h, StrictSerializable);
    // ...or not.
    let mut h = H::append();
    h.inv(1, "ax1")
        .done(1, "info", "ax1")
        .ok(2, "rx")
        .ok(3, "rx");
    valid(&h, StrictSerializable);
    // An invocation that never completes is unknown too.
    let mut h = H::append();
    h.inv(1, "ax1").ok(2, "rx1").ok(2, "rx1");
    valid(&h, StrictSerializable);
    // Non-client events and other operations are ignored.
    let mut h = H::append();
    h.lines
        .push(r#"{"process":"nemesis","type":"info","f":"partition","value":null}"#.into());
    h.lines
        .push(r#"{"process":5,"type":"invoke","f":"read","value":null}"#.into());
    h.lines
        .push(r#"{"process":5,"type":"ok","f":"read","value":3}"#.into());
    h.ok(1, "ax1").ok(2, "rx1");
    valid(&h, StrictSerializable);
}

#[test]
fn nothing_to_check_is_unknown() {
    let mut h = H::append();
    h.ok(1, "ax1");
    let r = check(&h, Serializable);
    assert_eq!(r.verdict, IsoVerdict::Unknown);
    assert!(r.unknown_reason.unwrap().contains("nothing to check"));
    let r = check(&H::append(), StrictSerializable);
    assert_eq!(r.verdict, IsoVerdict::Unknown);
}

#[test]
fn rw_register() {
    // G1c: Elle's rw_register checker-test.
    let mut h = H::register();
    h.ok(0, "wx1ry1").ok(0, "wy1rx1");
    let r = invalid(&h, Serializable, &["G1c"], &["read-committed"]);
    assert!(
        r.anomalies[0].explanation.contains("T1 wrote"),
        "{}",
        r.explain()
    );
    valid(&h, ReadUncommitted);
    // G1a, and the transaction graph is empty.
    let mut h = H::register();
    h.inv(0, "wx1").done(0, "fail", "wx1").ok(1, "rx1");
    invalid(
        &h,
        ReadCommitted,
        &["G1a", "empty-transaction-graph"],
        &["read-committed"],
    );
    // G1b: no edge either (the read is not of a final write).
    let mut h = H::register();
    h.ok(0, "wx1wx2").ok(1, "rx1");
    invalid(
        &h,
        RepeatableRead,
        &["G1b", "empty-transaction-graph"],
        &["read-committed"],
    );
    // A stale read of the initial nil: G-single-item-realtime.
    let mut h = H::register();
    h.ok(0, "wx1").ok(1, "rx_");
    invalid(
        &h,
        StrictSerializable,
        &["G-single-item-realtime"],
        &["strong-snapshot-isolation"],
    );
    valid(&h, Serializable);
    // Write skew from the initial state.
    let mut h = H::register();
    concurrent(&mut h, "rx_wy1", "ry_wx1");
    invalid(&h, Serializable, &["G2-item"], &["repeatable-read"]);
    // internal, garbage, lost update.
    let mut h = H::register();
    h.ok(0, "wx1rx2").ok(1, "rx1");
    let r = check(&h, Serializable);
    assert!(r.has("internal"), "{}", r.explain());
    let mut h = H::register();
    h.ok(0, "wx1").ok(1, "rx1").ok(2, "rx7");
    invalid(&h, ReadCommitted, &["garbage-read"], &["read-committed"]);
    let mut h = H::register();
    h.ok(0, "wx1");
    concurrent(&mut h, "rx1wx2", "rx1wx3");
    let r = check(&h, RepeatableRead);
    assert!(r.has("lost-update"), "{}", r.explain());
    // A serial history is fine.
    let mut h = H::register();
    h.ok(0, "rx_wx1").ok(1, "rx1wx2wy1").ok(2, "rx2ry1");
    valid(&h, StrictSerializable);
}

#[test]
fn rw_register_writes_follow_reads() {
    // T1 read x=1 then wrote 2, so 1 < 2; T3 read 1 after T1 completed:
    // with wfr-keys, T3 -rw-> T1 -realtime-> T3.
    let mut h = H::register();
    h.ok(0, "wx1").ok(1, "rx1wx2").ok(2, "rx1");
    let opts = |wfr| IsoOptions {
        consistency: StrictSerializable,
        wfr_keys: wfr,
        ..IsoOptions::default()
    };
    let r = isolation::check(&h.history(), &opts(false)).unwrap();
    assert_eq!(r.verdict, IsoVerdict::Valid, "{}", r.explain());
    let r = isolation::check(&h.history(), &opts(true)).unwrap();
    assert_eq!(
        r.anomaly_types,
        ["G-single-item-realtime"],
        "{}",
        r.explain()
    );
    assert!(r.explain().contains("came later in the version order"));
    // Contradictory orders are reported and not used.
    let mut h = H::register();
    h.ok(0, "wx1").ok(1, "wx2").ok(2, "rx1wx2").ok(3, "rx2wx1");
    let r = isolation::check(&h.history(), &opts(true)).unwrap();
    assert!(r.has("cyclic-versions"), "{}", r.explain());
}

#[test]
fn model_detection_and_override() {
    let mut h = H::register();
    h.ok(0, "wx1").ok(1, "rx1");
    let r = check(&h, Serializable);
    assert_eq!(r.txn_model, TxnModel::RwRegister);
    let mut h = H::append();
    h.ok(0, "ax1").ok(1, "rx1");
    assert_eq!(check(&h, Serializable).txn_model, TxnModel::ListAppend);
    // Forcing rw-register on appends is a clear error.
    let e = isolation::check(
        &h.history(),
        &IsoOptions {
            txn_model: Some(TxnModel::RwRegister),
            ..IsoOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        e.message.contains("an append in an rw-register history"),
        "{e}"
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    for bad in [
        r#"{"process":0,"type":"invoke","f":"txn","value":3}"#,
        r#"{"process":0,"type":"invoke","f":"txn","value":[["append"]]}"#,
        r#"{"process":0,"type":"invoke","f":"txn","value":[["frob","x",1]]}"#,
        r#"{"process":0,"type":"invoke","f":"txn","value":[["append",["x"],1]]}"#,
        r#"{"process":0,"type":"invoke","f":"txn","value":[["append","x",{"a":1}]]}"#,
        r#"{"process":0,"type":"ok","f":"txn","value":[["append","x",1]]}"#,
    ] {
        let h = History::from_jsonl(bad).unwrap();
        let e = isolation::check(&h, &IsoOptions::default()).unwrap_err();
        assert!(!e.message.is_empty());
    }
    // A list-append read that is not a list.
    let h = History::from_jsonl(
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[[\"append\",\"x\",1],[\"r\",\"x\",null]]}\n\
         {\"process\":0,\"type\":\"ok\",\"f\":\"txn\",\"value\":[[\"append\",\"x\",1],[\"r\",\"x\",1]]}",
    )
    .unwrap();
    assert!(isolation::check(&h, &IsoOptions::default()).is_err());
}

#[test]
fn edn_histories() {
    // Jepsen EDN: keywords, integer keys, a lone completion (as in Elle's
    // tests) and an unknown read written [:r k].
    let text = r#"{:type :invoke, :f :txn, :value [[:append :x 1]], :process 0, :index 0}
{:type :ok, :f :txn, :value [[:append :x 1]], :process 0, :index 1}
{:type :invoke, :f :txn, :value [[:r :x]], :process 1, :index 2}
{:type :ok, :f :txn, :value [[:r :x []]], :process 1, :index 3}
{:type :info, :f :start, :process :nemesis, :index 4}"#;
    let (h, _) = checker::formats::parse_auto(text).unwrap();
    let r = isolation::check(&h, &IsoOptions::default()).unwrap();
    assert_eq!(
        r.anomaly_types,
        ["G-single-item-realtime"],
        "{}",
        r.explain()
    );
    let text = "{:type :ok, :f :txn, :value [[:append 5 1] [:r 6 [1]]], :process 0}\n\
                {:type :ok, :f :txn, :value [[:append 6 1] [:r 5 [1]]], :process 1}";
    let (h, _) = checker::formats::parse_auto(text).unwrap();
    let r = isolation::check(&h, &IsoOptions::default()).unwrap();
    assert_eq!(r.anomaly_types, ["G1c"], "{}", r.explain());
}

#[test]
fn search_budget() {
    // With no search budget, the component is reported as
    // cycle-search-timeout, with one of its cycles, classified.
    let mut h = H::append();
    concurrent(&mut h, "rxay1", "ryax1");
    let r = isolation::check(
        &h.history(),
        &IsoOptions {
            consistency: Serializable,
            max_search_steps: 0,
            ..IsoOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.verdict, IsoVerdict::Invalid, "{}", r.explain());
    assert_eq!(r.anomaly_types, ["G2-item", "cycle-search-timeout"]);
    assert!(r.explain().contains("ran out of its budget"));
    // Only a timeout, nothing forbidden: unknown.
    let r = isolation::check(
        &h.history(),
        &IsoOptions {
            consistency: ReadCommitted,
            max_search_steps: 0,
            ..IsoOptions::default()
        },
    )
    .unwrap();
    assert_eq!(r.verdict, IsoVerdict::Unknown, "{}", r.explain());
    assert!(r.unknown_reason.unwrap().contains("cycle-search-timeout"));
}

#[test]
fn an_ok_without_values_reads_nothing() {
    // The completion carries no list of micro-ops: its reads are unknown,
    // not empty.
    let mut h = H::append();
    h.ok(1, "ax1").inv(2, "rx").event(2, "ok", Value::Null);
    let r = check(&h, StrictSerializable);
    assert_ne!(r.verdict, IsoVerdict::Invalid, "{}", r.explain());
}

#[test]
fn internal_cases_as_elle() {
    // Elle's list_append_test internal-cases-test: each line is one
    // transaction; `true` if Elle reports it as internal.
    let cases = [
        (
            "[[:r :y [5 6]] [:append :x 3] [:r :x [1 2 3]] [:append :x 4] [:r :x [1 2 3 4]]]",
            false,
        ),
        ("[[:r :x nil] [:r :x [2]]]", true),
        ("[[:r :x [1 2]] [:append :x 3] [:r :x [1 2]]]", true),
        ("[[:r :x [1 2]] [:append :x 3] [:r :x [0 2 3]]]", true),
        ("[[:r :x [1 2]] [:append :x 3] [:r :x [1 2 3 4]]]", true),
        ("[[:r :x [1 2]] [:append :x 3] [:r :x [1]]]", true),
        ("[[:append :x 3] [:r :x [1 2 3 4]]]", true),
        ("[[:append :x 3] [:r :x []]]", true),
        ("[[:append 0 6] [:r 0 nil]]", true),
    ];
    for (txn, internal) in cases {
        let text = format!("{{:process 0, :type :ok, :f :txn, :value {txn}}}");
        let (h, _) = checker::formats::parse_auto(&text).unwrap();
        let r = isolation::check(&h, &IsoOptions::default()).unwrap();
        assert_eq!(r.has("internal"), internal, "{txn}\n{}", r.explain());
    }
    // Future reads (Elle's "future read external" and "internal").
    for txn in [
        "[[:r :x [0 1 2]] [:append :x 1]]",
        "[[:append :x 1] [:r :x [0 1]] [:append :x 0] [:append :x 3]]",
    ] {
        let text = format!("{{:process 0, :type :ok, :f :txn, :value {txn}}}");
        let (h, _) = checker::formats::parse_auto(&text).unwrap();
        let r = isolation::check(&h, &IsoOptions::default()).unwrap();
        assert!(
            r.has("future-read") && !r.has("internal"),
            "{txn}\n{}",
            r.explain()
        );
    }
}

fn check_with(h: &H, c: Consistency, f: impl Fn(&mut IsoOptions)) -> IsoResult {
    let mut o = IsoOptions {
        consistency: c,
        ..IsoOptions::default()
    };
    f(&mut o);
    isolation::check(&h.history(), &o).unwrap()
}

#[test]
fn rw_register_sequential_and_linearizable_keys() {
    // Read skew that only a version order shows: T1 wrote x=1, y=1; T2,
    // begun after T1 completed, wrote x=2, y=2; T3, concurrent with T2,
    // read x=1 but y=2. With linearizable keys, 1 < 2 on both keys:
    // T3 -rw-> T2 -wr-> T3.
    let mut h = H::register();
    h.ok(1, "wx1wy1");
    concurrent(&mut h, "wx2wy2", "rx1ry2");
    let r = check_with(&h, Serializable, |_| {});
    assert_eq!(r.verdict, IsoVerdict::Valid, "{}", r.explain());
    let r = check_with(&h, Serializable, |o| o.linearizable_keys = true);
    assert_eq!(r.anomaly_types, ["G-single-item"], "{}", r.explain());
    assert!(
        r.explain().contains("assuming each key is linearizable"),
        "{}",
        r.explain()
    );

    // Elle's rw_register checker-test "G0" (second part): with sequential
    // keys, process 0 saw x go 1 -> 2 and process 1 saw y go 1 -> 2.
    let mut h = H::register();
    h.ok(0, "wx1wy2").ok(1, "wx2wy1").ok(0, "rx2").ok(1, "ry2");
    let r = check_with(&h, ReadUncommitted, |o| o.sequential_keys = true);
    assert_eq!(r.anomaly_types, ["G0"], "{}", r.explain());
    assert_eq!(r.not, ["read-uncommitted"]);
    let r = check_with(&h, ReadUncommitted, |_| {});
    assert_eq!(r.verdict, IsoVerdict::Valid, "{}", r.explain());

    // Elle's "Read read returns what was just been written": with
    // linearizable keys, x went 1 -> 2 -> 1: cyclic versions (Elle:
    // :anomaly-types (:cyclic-versions), :not #{:read-uncommitted}; the
    // read of 2, which nobody wrote, is also a garbage read here).
    let mut h = H::register();
    h.ok(0, "wx1").ok(0, "rx2").ok(0, "rx1");
    let r = check_with(&h, StrictSerializable, |o| o.linearizable_keys = true);
    assert!(r.has("cyclic-versions"), "{}", r.explain());
    assert_eq!(r.not, ["read-uncommitted"], "{}", r.explain());
}
