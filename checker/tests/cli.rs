//! The `checker` binary: exit codes, messages, convert, bench.

use std::path::PathBuf;
use std::process::Command;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/porcupine");

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
    let d = std::env::temp_dir().join(format!("checker-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const GOOD: &str = r#"{"process":1,"type":"invoke","f":"put","key":"x","value":3,"time":1000}
{"process":1,"type":"ok","f":"put","key":"x","value":3,"time":2000}
{"process":"nemesis","type":"info","f":"partition","value":"n1 | n2 n3","time":1500}
{"process":2,"type":"invoke","f":"get","key":"x","value":null,"time":2500}
{"process":2,"type":"ok","f":"get","key":"x","value":3,"time":2600}
"#;

#[test]
fn exit_codes() {
    let d = temp_dir("exit");
    let good = d.join("good.jsonl");
    std::fs::write(&good, GOOD).unwrap();
    let bad = d.join("bad.jsonl");
    std::fs::write(
        &bad,
        GOOD.replace("\"value\":3,\"time\":2600", "\"value\":4,\"time\":2600"),
    )
    .unwrap();
    let report = d.join("r.html");

    let (code, out, _) = checker(&[
        "check",
        good.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("linearizable (native format, native semantics, kv model"),
        "{out}"
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("data-rendered") && !html.contains("http://") && !html.contains("https://")
    );

    let (code, out, _) = checker(&["check", bad.to_str().unwrap(), "--threads", "1"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("impossible in state 3"), "{out}");

    let etcd = format!("{CORPUS}/etcd/etcd_002.log");
    let (code, out, _) = checker(&["check", &etcd, "--max-cache", "1"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("memory limit"), "{out}");

    let garbage = d.join("garbage.edn");
    std::fs::write(
        &garbage,
        "{:process 0, :type :invoke, :f :read}\n{:process 0 :type}\n",
    )
    .unwrap();
    let (code, _, err) = checker(&["check", garbage.to_str().unwrap()]);
    assert_eq!(code, 3);
    assert!(err.contains(":2:") && err.contains("even number"), "{err}");

    let (code, _, err) = checker(&["check", good.to_str().unwrap(), "--model", "mutex"]);
    assert_eq!(code, 3);
    assert!(err.contains("not supported by the mutex model"), "{err}");

    let (code, _, err) = checker(&["check", good.to_str().unwrap(), "--model", "queue"]);
    assert_eq!(code, 3);
    assert!(
        err.contains("use register, cas-register, kv, mutex or multi-register"),
        "{err}"
    );

    let (code, _, _) = checker(&["check", d.join("missing").to_str().unwrap()]);
    assert_eq!(code, 3);

    // --initial changes the verdict of a read of the initial value.
    let init = d.join("init.jsonl");
    std::fs::write(&init, "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\n{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"value\":0}\n").unwrap();
    assert_eq!(checker(&["check", init.to_str().unwrap()]).0, 1);
    assert_eq!(
        checker(&[
            "check",
            init.to_str().unwrap(),
            "--initial",
            "0",
            "--model",
            "register"
        ])
        .0,
        0
    );
}

#[test]
fn convert_round_trips() {
    let d = temp_dir("convert");
    let good = d.join("good.jsonl");
    std::fs::write(&good, GOOD).unwrap();
    let (code, edn, _) = checker(&["convert", good.to_str().unwrap(), "--to", "edn"]);
    assert_eq!(code, 0);
    assert!(edn.contains(":process :nemesis"), "{edn}");
    let edn_file = d.join("h.edn");
    std::fs::write(&edn_file, &edn).unwrap();
    let (code, native, _) = checker(&["convert", edn_file.to_str().unwrap(), "--to", "native"]);
    assert_eq!(code, 0);
    assert_eq!(
        native,
        checker::History::from_jsonl(GOOD).unwrap().to_jsonl()
    );
    let (code, _, _) = checker(&["check", edn_file.to_str().unwrap()]);
    assert_eq!(code, 0);
}

#[test]
fn bench_compares_verdicts() {
    let d = temp_dir("bench");
    std::fs::write(d.join("good.jsonl"), GOOD).unwrap();
    std::fs::write(
        d.join("expected.csv"),
        "file,expected\ngood.jsonl,linearizable\n",
    )
    .unwrap();
    let (code, out, _) = checker(&["bench", d.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 mismatches"), "{out}");
    std::fs::write(
        d.join("expected.csv"),
        "file,expected\ngood.jsonl,not-linearizable\n",
    )
    .unwrap();
    let (code, out, _) = checker(&["bench", d.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("MISMATCH"), "{out}");
}

/// `checker convert ... | head -1`: the reader goes away after one line;
/// the checker must end quietly, not panic on the broken pipe.
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let d = temp_dir("pipe");
    let big = d.join("big.jsonl");
    // Far more than a pipe buffer holds, so the writer meets the closed pipe.
    let mut text = String::new();
    for i in 0..20_000 {
        text.push_str(&format!(
            "{{\"process\":0,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"k\",\"value\":{i}}}\n\
             {{\"process\":0,\"type\":\"ok\",\"f\":\"put\",\"key\":\"k\",\"value\":{i}}}\n"
        ));
    }
    std::fs::write(&big, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_checker"))
        .args(["convert", big.to_str().unwrap(), "--to", "edn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("{:index 0"), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

const KNOSSOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/knossos");

/// Knossos's example histories from the command line: EDN is read with
/// Jepsen's meaning; `--semantics native` reads it as Porcupine would.
#[test]
fn knossos_histories_from_the_command_line() {
    // One of the good histories that the native meaning judged wrongly.
    let good = format!("{KNOSSOS}/cas-register/good/mongodb-v0-ack-rollback-0.edn");
    let (code, out, _) = checker(&["check", &good]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("edn format, jepsen semantics, cas-register model"),
        "{out}"
    );
    let (code, out, _) = checker(&["check", &good, "--semantics", "native"]);
    assert_eq!(code, 1, "{out}");
    let (code, _, err) = checker(&["check", &good, "--semantics", "nope"]);
    assert_eq!(code, 3);
    assert!(err.contains("use native or jepsen"), "{err}");

    let multi = format!("{KNOSSOS}/multi-register/good/multi-register.edn");
    let (code, out, _) = checker(&["check", &multi, "--initial", r#"{"x":0,"y":0}"#]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("multi-register model"), "{out}");

    // expected.csv names a model and an initial value per file.
    let (code, out, _) = checker(&["bench", KNOSSOS, "--threads", "1"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("(122 files") || out.contains("0 mismatches"),
        "{out}"
    );

    // Converting changes the meaning: the checker says so.
    let (code, _, err) = checker(&["convert", &good, "--to", "native"]);
    assert_eq!(code, 0);
    assert!(err.contains("--semantics jepsen"), "{err}");
}
