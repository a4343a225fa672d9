//! The `checker` binary: exit codes, messages, convert, bench.

use std::path::{Path, PathBuf};
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

/// Writes `text` to `d/name` and runs `checker check` on it with `extra`.
fn check_text(d: &Path, name: &str, text: &str, extra: &[&str]) -> (i32, String, String) {
    let path = d.join(name);
    std::fs::write(&path, text).unwrap();
    let mut args = vec!["check", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    checker(&args)
}

/// A client's invoke and ok lines of a native history.
fn call(process: &str, f: &str, invoke: &str, ok: &str) -> String {
    format!(
        "{{\"process\":{process},\"type\":\"invoke\",\"f\":\"{f}\",\"value\":{invoke}}}\n\
         {{\"process\":{process},\"type\":\"ok\",\"f\":\"{f}\",\"value\":{ok}}}\n"
    )
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

    // A mutex starts free: an --initial value would be ignored, so it is refused.
    let (code, _, err) = checker(&[
        "check",
        good.to_str().unwrap(),
        "--model",
        "mutex",
        "--initial",
        "1",
    ]);
    assert_eq!(code, 3);
    assert!(
        err.contains("--initial 1 does not apply to the mutex model"),
        "{err}"
    );

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

/// A verdict must not depend on where stdout goes: `check bad | true`
/// exits 1 and still writes its report.
#[test]
fn a_closed_pipe_keeps_the_verdict_and_the_report() {
    use std::process::{Command, Stdio};
    let d = temp_dir("pipe-verdict");
    let bad = d.join("bad.jsonl");
    std::fs::write(
        &bad,
        GOOD.replace("\"value\":3,\"time\":2600", "\"value\":4,\"time\":2600"),
    )
    .unwrap();
    let report = d.join("r.html");
    // The pipe's reader is gone before the checker starts, so its first
    // write meets the closed pipe whatever the timing.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_checker"))
        .args(["check", bad.to_str().unwrap(), "--report"])
        .arg(&report)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(report.exists(), "the report was not written");
}

/// Integers beyond 64 bits would be read as floats, equal to their
/// neighbours (2^64 and 2^64 + 1 are one float): refused, not misjudged.
#[test]
fn integers_beyond_64_bits_are_refused() {
    let d = temp_dir("wide");
    let wide = call("1", "write", "18446744073709551617", "18446744073709551617")
        + &call("2", "read", "null", "18446744073709551616");
    let (code, _, err) = check_text(&d, "wide.jsonl", &wide, &[]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("wide.jsonl:1: integer 18446744073709551617 does not fit in 64 bits"),
        "{err}"
    );
    let edn = "{:process 0 :type :invoke :f :write :value 18446744073709551617N}\n";
    let (code, _, err) = check_text(&d, "wide.edn", edn, &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("does not fit in 64 bits"), "{err}");
    // The largest 64-bit values are fine and exact; digits in a string are
    // not a number.
    let max = call("1", "write", "18446744073709551615", "18446744073709551615").replacen(
        "}",
        ",\"note\":\"99999999999999999999\"}",
        1,
    ) + &call("2", "read", "null", "18446744073709551614");
    let (code, out, err) = check_text(&d, "max.jsonl", &max, &[]);
    assert_eq!(code, 1, "{out}{err}");
}

/// A history with no client operation has nothing to check (exit 2), and
/// says why: a client's process is a number.
#[test]
fn nothing_to_check_is_not_a_pass() {
    let d = temp_dir("nothing");
    let named = call("\"c1\"", "read", "null", "7");
    let (code, out, _) = check_text(&d, "named.jsonl", &named, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("nothing to check") && out.contains("process is a number"),
        "{out}"
    );
    let (code, out, _) = check_text(&d, "empty.jsonl", "", &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("the history is empty"), "{out}");
}

#[test]
fn usage_mistakes_are_named() {
    let d = temp_dir("usage");
    let good = d.join("good.jsonl");
    std::fs::write(&good, GOOD).unwrap();
    let good = good.to_str().unwrap();
    // A timeout beyond what a Duration holds is no limit, not a panic.
    for t in ["1e300", "inf"] {
        let (code, out, err) = checker(&["check", good, "--timeout", t]);
        assert_eq!(code, 0, "--timeout {t}: {out}{err}");
    }
    let (code, _, err) = checker(&["check", good, "--timeout", "-1"]);
    assert_eq!(code, 3, "{err}");
    // Flags of the other kind of check are refused, not ignored.
    let (code, _, err) = checker(&[
        "check",
        good,
        "--isolation",
        "serializable",
        "--threads",
        "2",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
    let (code, _, err) = checker(&["check", good, "--max-search-steps", "5"]);
    assert_eq!(code, 3, "{err}");
    // A repeated index.
    let dup = call("1", "read", "null", "null").replace("{\"process", "{\"index\":0,\"process");
    let (code, _, err) = check_text(&d, "dup.jsonl", &dup, &["--format", "native"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("dup.jsonl:2: index 0 is also line 1's"),
        "{err}"
    );
    assert!(!err.contains("pass --format"), "--format was given: {err}");
    // An append is a list-append transaction: the message says --isolation.
    let append = call(
        "1",
        "txn",
        "[[\"append\",\"x\",1]]",
        "[[\"append\",\"x\",1]]",
    );
    let (code, _, err) = check_text(&d, "append.jsonl", &append, &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("add --isolation MODEL"), "{err}");
}

/// `-` is standard input; a byte-order mark is not part of the history.
#[test]
fn standard_input_and_a_byte_order_mark() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_checker"))
        .args(["check", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("\u{feff}{GOOD}").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("-: linearizable"), "{stdout}");
}

/// `bench`: a list without a header is read whole; a wrong verdict word or
/// an empty list is bad input, not "0 mismatches".
#[test]
fn bench_reads_its_list_strictly() {
    let d = temp_dir("bench-list");
    std::fs::write(d.join("good.jsonl"), GOOD).unwrap();
    let dir = d.to_str().unwrap();
    std::fs::write(d.join("expected.csv"), "good.jsonl,linearizable\n").unwrap();
    let (code, out, _) = checker(&["bench", dir]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(1 files)"), "{out}");
    std::fs::write(d.join("expected.csv"), "file,expected\ngood.jsonl,maybe\n").unwrap();
    let (code, _, err) = checker(&["bench", dir]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("expected.csv:2: expected verdict \"maybe\""),
        "{err}"
    );
    std::fs::write(d.join("expected.csv"), "file,expected\n").unwrap();
    let (code, _, err) = checker(&["bench", dir]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("lists no file"), "{err}");
}

/// Converting a Porcupine kv history says how to keep its verdict: its
/// keys start from "", native ones from null.
#[test]
fn convert_names_what_keeps_the_verdict() {
    let kv = format!("{CORPUS}/kv/c01-ok.txt");
    let (code, _, err) = checker(&["convert", &kv, "--to", "native"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("check the output with --initial '\"\"'"),
        "{err}"
    );
}
