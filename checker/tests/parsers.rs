//! Parsers: round trips, error messages with line numbers, and no panic on
//! arbitrary bytes.

use checker::edn;
use checker::formats::{self, Format};
use checker::history::{History, OpType, Process, Semantics};
use checker::linear::{check, Options};
use proptest::prelude::*;
use serde_json::json;

#[test]
fn reads_a_jepsen_edn_vector_with_comments_and_extra_keys() {
    let text = r#"; a Jepsen history
[{:type :invoke, :f :write, :value 3, :process 0, :time 1000, :index 0}
 {:type :info, :f :start-partition, :value [:isolated {"n1" #{"n2"}}], :process :nemesis, :time 1500, :index 1}
 {:type :ok, :f :write, :value 3, :process 0, :time 2000, :index 2}
 {:type :invoke, :f :cas, :value [3 4], :process 1, :time 2500, :index 3}
 {:type :fail, :f :cas, :value [3 4], :process 1, :time 2600, :index 4, :error :timeout}
 {:type :invoke, :f :read, :value nil, :process 2, :time 3000, :index 5}
 {:type :ok, :f :read, :value 3, :process 2, :time 3100, :index 6}]
"#;
    let (h, f) = formats::parse_auto(text).unwrap();
    assert_eq!(f, Format::Edn);
    assert_eq!(h.ops.len(), 7);
    assert_eq!(h.ops[1].process, Process::Named("nemesis".into()));
    assert_eq!(h.ops[4].extra["error"], json!("timeout"));
    assert_eq!(h.ops[3].value, json!([3, 4]));
    assert_eq!(h.ops[0].time, Some(1000));
    assert_eq!(f.default_model(&h), checker::ModelKind::CasRegister);
    // Round trip through EDN and native.
    let again = edn::history_from_edn(&h.to_edn()).unwrap();
    assert_eq!(again.ops.len(), 7);
    assert_eq!(again.ops[4].kind, OpType::Fail);
    let native = History::from_jsonl(&h.to_jsonl()).unwrap();
    // The same events; what they mean is the reader's.
    assert_eq!(native.ops, h.ops);
    assert_eq!(h.semantics, Semantics::Jepsen);
    assert_eq!(again.semantics, Semantics::Jepsen);
    assert_eq!(native.semantics, Semantics::Native);
}

#[test]
fn reads_an_edn_stream_and_porcupine_kv() {
    let text = "{:process 0, :type :invoke, :f :put, :key \"a\", :value \"x\"}\n{:process 0, :type :ok, :f :put, :key \"a\", :value \"x\"}\n";
    let (h, f) = formats::parse_auto(text).unwrap();
    assert_eq!(f, Format::PorcupineKv);
    assert_eq!(h.ops[1].key.as_deref(), Some("a"));
    let text = "{:process 0, :type :invoke, :f :write, :value 1, :time 5}\n";
    assert_eq!(formats::parse_auto(text).unwrap().1, Format::Edn);
}

#[test]
fn reads_the_etcd_log_format() {
    let text = "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0   :fail   :read   :timed-out\nINFO  jepsen.util - 1\t:invoke\t:cas\t[1 2]\nINFO  jepsen.util - 1\t:info\t:cas\t:timed-out\n";
    let (h, f) = formats::parse_auto(text).unwrap();
    assert_eq!(f, Format::Etcd);
    assert_eq!(h.ops.len(), 4);
    assert_eq!(h.ops[1].kind, OpType::Info, "a timed-out read is unknown");
    assert_eq!(h.ops[2].value, json!([1, 2]));
}

#[test]
fn errors_say_where_and_what() {
    let e = formats::parse(
        "{\"process\":1,\"type\":\"invoke\"}\n{\"process\":1,\"type\":\"bogus\",\"f\":\"read\"}",
        Format::Native,
    )
    .unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.message.contains("expected"), "{e}");
    let e = formats::parse(
        "{:process 0, :type :invoke, :f :read}\n{:process 0, :type :okay, :f :read}",
        Format::Edn,
    )
    .unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains(":invoke :ok :fail :info"), "{e}");
    let e = formats::parse("{:process 0, :type :invoke,\n :f :read\n", Format::Edn).unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.message.contains("unterminated"), "{e}");
    let e = formats::parse(
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nhello\n",
        Format::Etcd,
    )
    .unwrap_err();
    assert_eq!(e.line, 2);
    assert!(
        e.to_string()
            .starts_with("line 2: expected a Jepsen log line"),
        "{e}"
    );
}

fn no_panic(text: &str) {
    let _ = History::from_jsonl(text);
    let _ = edn::history_from_edn(text);
    let _ = edn::parse_all(text);
    let _ = formats::parse_etcd(text);
    if let Ok((h, f)) = formats::parse_auto(text) {
        let opts = Options {
            max_cache_entries: 1000,
            timeout: Some(std::time::Duration::from_millis(50)),
            ..Options::default()
        };
        let r = check(&h, f.default_model(&h), &opts);
        let _ = checker::report::html(&h, &r, "fuzz");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        no_panic(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn edn_like_text_never_panics(text in "[\\[\\]{}()#_:a-z0-9 \"\\\\;\\n,.+-]{0,200}") {
        no_panic(&text);
    }

    #[test]
    fn op_like_lines_never_panic(lines in prop::collection::vec(
        prop_oneof![
            Just("{:process 0, :type :invoke, :f :read, :value nil}".to_string()),
            Just("{:process 0, :type :ok, :f :read, :value 1}".to_string()),
            Just("{:process 1, :type :info, :f :cas, :value [1 2]}".to_string()),
            Just("{:process :nemesis, :type :info, :f :kill}".to_string()),
            "[a-z:{} 0-9\\[\\]]{0,30}",
        ], 0..12)) {
        no_panic(&lines.join("\n"));
        let native: Vec<String> = lines.iter().map(|l| l.replace(':', "")).collect();
        no_panic(&native.join("\n"));
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let text = "[".repeat(100_000);
    assert!(edn::parse_all(&text).is_err());
}
