//! `checker check --isolation ...` and `checker bench-isolation`: exit
//! codes, output, JSON, report, bad input.

use std::path::PathBuf;
use std::process::Command;

fn checker(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_checker"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("checker-iso-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// T1 appends 1 to x; T2, which begins after T1 completed, reads x = [].
const STALE: &str = r#"{"process":0,"type":"invoke","f":"txn","value":[["append","x",1]]}
{"process":0,"type":"ok","f":"txn","value":[["append","x",1]]}
{"process":"nemesis","type":"info","f":"kill","value":"n1"}
{"process":1,"type":"invoke","f":"txn","value":[["r","x",null]]}
{"process":1,"type":"ok","f":"txn","value":[["r","x",[]]]}
"#;

#[test]
fn exit_codes_and_output() {
    let d = temp_dir("exit");
    let stale = d.join("stale.jsonl");
    std::fs::write(&stale, STALE).unwrap();
    let fresh = d.join("fresh.jsonl");
    std::fs::write(&fresh, STALE.replace(r#"["r","x",[]]"#, r#"["r","x",[1]]"#)).unwrap();
    let f = |p: &PathBuf| p.to_str().unwrap().to_string();

    let (code, out, _) = checker(&["check", "--isolation", "strict-serializable", &f(&stale)]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(": invalid (native format, list-append"),
        "{out}"
    );
    assert!(
        out.contains("G-single-item-realtime (forbidden by strict-serializable)"),
        "{out}"
    );
    assert!(out.contains("T1 completed before T2 began"), "{out}");
    assert!(out.contains("not strong-snapshot-isolation"), "{out}");

    // Serializable allows it; the history is valid.
    let (code, out, _) = checker(&["check", "--isolation", "serializable", &f(&stale)]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = checker(&["check", "--isolation", "strict-serializable", &f(&fresh)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("consistent with strict-serializable"), "{out}");

    // JSON, and the HTML report (self-contained, no network).
    let report = d.join("r.html");
    let (code, out, _) = checker(&[
        "check",
        "--isolation",
        "strict-serializable",
        "--json",
        "--report",
        &f(&report),
        &f(&stale),
    ]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verdict"], "invalid");
    assert_eq!(v["anomaly_types"][0], "G-single-item-realtime");
    assert_eq!(v["anomalies"][0]["steps"][0]["rel"], "realtime");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("<svg") && html.contains("G-single-item-realtime"));
    assert!(html.contains("data-rendered=\"ok\""));
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));

    // Nothing to check: unknown.
    let lone = d.join("lone.jsonl");
    std::fs::write(&lone, STALE.lines().take(2).collect::<Vec<_>>().join("\n")).unwrap();
    let (code, out, _) = checker(&["check", "--isolation", "serializable", &f(&lone)]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("unknown: no transaction depends on another"),
        "{out}"
    );

    // --txn-model overrides detection.
    let (code, _, err) = checker(&[
        "check",
        "--isolation",
        "serializable",
        "--txn-model",
        "rw-register",
        &f(&stale),
    ]);
    assert_eq!(code, 3);
    assert!(err.contains("an append in an rw-register history"), "{err}");
}

#[test]
fn bad_input_and_usage() {
    let d = temp_dir("bad");
    let bad = d.join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"txn\",\"value\":[[\"append\",\"x\"]]}\n",
    )
    .unwrap();
    let (code, _, err) = checker(&[
        "check",
        "--isolation",
        "serializable",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 3);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("is not a 3-element list"),
        "{err}"
    );
    let (code, _, err) = checker(&["check", "--isolation", "snapshot", bad.to_str().unwrap()]);
    assert_eq!(code, 3);
    assert!(
        err.contains("unknown --isolation \"snapshot\": use one of read-uncommitted"),
        "{err}"
    );
    let (code, _, err) = checker(&["check", "--json", bad.to_str().unwrap()]);
    assert_eq!(code, 3);
    assert!(err.contains("are only for --isolation"), "{err}");
    let (code, _, err) = checker(&[
        "check",
        "--isolation",
        "serializable",
        "--model",
        "kv",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 3);
    assert!(
        err.contains("--model and --initial are for linearizability"),
        "{err}"
    );
}

#[test]
fn edn_input() {
    let d = temp_dir("edn");
    let p = d.join("h.edn");
    std::fs::write(
        &p,
        "{:type :invoke, :f :txn, :value [[:append :x 1] [:r :y nil]], :process 0}\n\
         {:type :invoke, :f :txn, :value [[:append :y 1] [:r :x nil]], :process 1}\n\
         {:type :ok, :f :txn, :value [[:append :x 1] [:r :y [1]]], :process 0}\n\
         {:type :ok, :f :txn, :value [[:append :y 1] [:r :x [1]]], :process 1}\n",
    )
    .unwrap();
    let (code, out, _) = checker(&[
        "check",
        "--isolation",
        "read-committed",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("G1c (forbidden by read-committed)"), "{out}");
    let (code, out, _) = checker(&[
        "check",
        "--isolation",
        "read-uncommitted",
        p.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn bench_isolation() {
    let (code, out, _) = checker(&["bench-isolation", "--txns", "2000"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("txns/s") && out.contains("peak RSS") && out.contains("verdict: valid"),
        "{out}"
    );
    let (code, out, _) = checker(&[
        "bench-isolation",
        "--txns",
        "2000",
        "--anomaly",
        "stale-read",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("planted stale-read: expected G-single-item-realtime found"),
        "{out}"
    );
    let (code, _, err) = checker(&["bench-isolation", "--anomaly", "bogus"]);
    assert_eq!(code, 3);
    assert!(err.contains("unknown --anomaly"), "{err}");
}
