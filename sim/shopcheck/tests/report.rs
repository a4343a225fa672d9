//! The HTML report for checkout invariants (`shopcheck::invariants_html`,
//! `shopcheck FILE --report OUT.html`): what the page embeds, that
//! values cannot break out of it, valid and bad-input histories, and a
//! 10 000-event history. `ci/check-report` loads such pages in Chromium.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use checker::history::History;
use serde_json::{json, Value};
use shopcheck::invariants::{check_checkout, InvariantResult, Verdict};
use shopcheck::invariants_html;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/checkout-bad.jsonl");

fn fixture() -> (History, InvariantResult) {
    let h = History::from_jsonl(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    let r = check_checkout(&h);
    (h, r)
}

/// The JSON the page's script reads.
fn data_of(page: &str) -> Value {
    let open = r#"<script type="application/json" id="data">"#;
    let start = page.find(open).expect("data script") + open.len();
    let end = start
        + page[start..]
            .find("</script>")
            .expect("end of the data script");
    serde_json::from_str(&page[start..end]).expect("the data is JSON")
}

fn self_contained(page: &str) {
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains(r#"document.body.setAttribute("data-rendered", "ok")"#));
    for net in ["http://", "https://", "<link", "src=\"", "@import"] {
        assert!(
            !page.contains(net),
            "the page must not load anything ({net})"
        );
    }
}

#[test]
fn the_fixture_page_shows_every_violation_state_and_fault() {
    let (h, r) = fixture();
    assert_eq!(r.verdict, Verdict::Invalid);
    assert_eq!(r.violations.len(), 4, "{r:#?}");
    let page = invariants_html(&h, &r, "checkout fixture");
    self_contained(&page);
    assert!(page.contains("<title>checkout fixture</title>"));
    for v in &r.violations {
        assert!(page.contains(&v.message), "missing: {}", v.message);
        assert!(page.contains(&format!("\"kind\":\"{}\"", v.kind.name())));
    }
    let d = data_of(&page);
    assert_eq!(d["verdict"], "invalid");
    assert_eq!(d["stats"]["paid_orders"], 3);
    assert_eq!(d["stats"]["unknown_updates"], 1);
    // Violations: their events, and the subject's initial and final state.
    let vs = d["violations"].as_array().unwrap();
    let stock = vs.iter().find(|v| v["kind"] == "stock-created").unwrap();
    assert_eq!(stock["ops"], json!([0, 1, 2, 21]));
    assert_eq!(stock["entity"], "item");
    assert_eq!(stock["init"], json!({"stock": 2, "price": 3}));
    assert_eq!(stock["final"], json!({"stock": 1, "price": 3}));
    let money = vs.iter().find(|v| v["kind"] == "money-lost").unwrap();
    assert_eq!((&money["init"], &money["final"]), (&json!(10), &json!(4)));
    let in_flight = vs.iter().find(|v| v["kind"] == "in-flight").unwrap();
    assert_eq!(in_flight["entity"], Value::Null);
    // State summaries.
    assert_eq!(
        d["init"]["summary"],
        json!({"items": 2, "stock": 7, "users": 3, "credit": 25, "orders": 4, "paid": 0,
               "in_flight": null})
    );
    assert_eq!(
        d["final"]["summary"],
        json!({"items": 2, "stock": 4, "users": 3, "credit": 12, "orders": 4, "paid": 3,
               "in_flight": 1})
    );
    assert_eq!(
        (&d["init"]["events"], &d["final"]["events"]),
        (&json!([0]), &json!([21]))
    );
    // Client operations, paired, with outcomes and times (ns since the first event).
    let ops = d["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 7);
    let by = |i: u64| ops.iter().find(|o| o["i"] == i).unwrap();
    assert_eq!(
        (&by(1)["o"], &by(1)["c"], &by(1)["t0"], &by(1)["t1"]),
        (&json!("ok"), &json!(10), &json!(500_000), &json!(4_500_000))
    );
    assert_eq!(by(5)["o"], "info");
    assert_eq!(by(7)["o"], "fail");
    assert_eq!(by(12)["r"], json!({"item": "i1", "stock": 1, "price": 3}));
    assert!(by(1).get("r").is_none(), "same value as the invocation");
    assert_eq!(d["timed"], true);
    // Faults paired by id, the other nemesis event and init/final as points.
    let faults = d["faults"].as_array().unwrap();
    assert_eq!(faults.len(), 2);
    assert_eq!((&faults[0]["i"], &faults[0]["c"]), (&json!(4), &json!(14)));
    assert_eq!(
        faults[1]["value"]["fault"],
        json!({"kind": "pause", "node": 3})
    );
    let points: Vec<&str> = d["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(points, ["init", "heal-all", "final"]);
    assert_eq!(d["others"], json!({"n1": 1}));
}

#[test]
fn values_and_titles_cannot_break_out_of_the_page() {
    let (h, r) = fixture();
    let page = invariants_html(&h, &r, "a <b>title</b> & \"quotes\"");
    // The fixture's failed subtract_stock carries markup in its reason.
    assert!(std::fs::read_to_string(FIXTURE)
        .unwrap()
        .contains("</script><img src=x onerror=alert(1)>"));
    assert!(!page.contains("<img"));
    assert!(!page.contains("<b>title"));
    assert!(page.contains("a &lt;b&gt;title&lt;/b&gt; &amp; &quot;quotes&quot;"));
    assert!(page.contains(r"out of stock \u003c/script>\u003cimg src=x onerror=alert(1)> & more"));
    // Only the page's own three script elements close.
    assert_eq!(page.matches("</script>").count(), 3);
    let d = data_of(&page);
    let failed = d["ops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["o"] == "fail");
    assert_eq!(
        failed.unwrap()["r"]["reason"],
        "out of stock </script><img src=x onerror=alert(1)> & more"
    );
}

#[test]
fn valid_and_bad_input_histories_get_a_page_too() {
    let text = std::fs::read_to_string(FIXTURE).unwrap();
    // Valid: only the first two events and a matching final state.
    let valid = [
        text.lines().next().unwrap(),
        r#"{"process":1,"type":"invoke","f":"find_user","value":{"user":"u1"}}"#,
        r#"{"process":1,"type":"ok","f":"find_user","value":{"user":"u1","credit":10}}"#,
        r#"{"process":"final","type":"ok","f":"final","value":{"items":{"i1":{"stock":2,"price":3},"i2":{"stock":5,"price":2}},"users":{"u1":10,"u2":10,"u3":5},"orders":{"o1":{"user":"u1","items":[["i1",1]]},"o2":{"user":"u2","items":[["i1",1]]},"o3":{"user":"u3","items":[["i2",2]]},"o4":{"user":"u1","items":[["i2",1]]}}}}"#,
    ]
    .join("\n");
    let h = History::from_jsonl(&valid).unwrap();
    let r = check_checkout(&h);
    assert_eq!(r.verdict, Verdict::Valid, "{r:#?}");
    let page = invariants_html(&h, &r, "valid");
    self_contained(&page);
    let d = data_of(&page);
    assert_eq!(d["verdict"], "valid");
    assert_eq!(d["violations"], json!([]));
    assert_eq!(d["ops"].as_array().unwrap().len(), 1);
    assert_eq!(d["timed"], false, "the client events have no times");
    assert_eq!(d["ops"][0]["k0"], 1);

    // Bad input (no final event): the page says why, and still shows the ops.
    let no_final: String = text
        .lines()
        .filter(|l| !l.contains(r#""process":"final""#))
        .collect::<Vec<_>>()
        .join("\n");
    let h = History::from_jsonl(&no_final).unwrap();
    let r = check_checkout(&h);
    assert_eq!(r.verdict, Verdict::BadInput);
    let page = invariants_html(&h, &r, "bad");
    let d = data_of(&page);
    assert_eq!(d["verdict"], "bad-input");
    assert!(d["error"].as_str().unwrap().contains("no final event"));
    assert_eq!(d["final"], Value::Null);
    assert_eq!(d["ops"].as_array().unwrap().len(), 7);

    // Unpaired and malformed events do not panic.
    let odd = r#"{"process":1,"type":"ok","f":"checkout","value":{"order":"o1"}}
{"process":2,"type":"invoke","f":"pay","value":"not an object"}
{"process":"nemesis","type":"info","f":"end","value":null}
{"process":"nemesis","type":"info","f":"start","value":[1,2]}
{"process":"setup","type":"ok","f":"init","value":[]}
{"process":"final","type":"ok","f":"final","value":{"items":7,"users":{"u":"x"},"orders":{"o":1}}}"#;
    let h = History::from_jsonl(odd).unwrap();
    let page = invariants_html(&h, &check_checkout(&h), "odd");
    let d = data_of(&page);
    let ops = d["ops"].as_array().unwrap();
    assert_eq!(
        (&ops[0]["lone"], &ops[0]["o"]),
        (&json!(true), &json!("ok"))
    );
    assert_eq!(ops[1]["o"], "pending");
    assert_eq!(d["faults"][0]["c"], Value::Null, "a fault never ended");
    assert_eq!(d["final"]["summary"]["items"], 0);
}

/// 10 000 events: 20 clients, 5 000 stock updates, a fault every 500 ops,
/// one item with stock created (a violation naming about 1 000 ops).
fn big_history(ops: usize) -> String {
    let mut lines = vec![json!({"process":"setup","type":"ok","f":"init","time":0,
        "value":{"items":{"i0":{"stock":1_000_000,"price":1},"i1":{"stock":1_000_000,"price":1}}}})];
    let mut stock = [1_000_000i64; 2];
    for k in 0..ops {
        let (p, item, amount) = (k % 20, k % 2, (k % 7 + 1) as i64);
        let t = 1_000 + k as u64 * 1_000;
        let f = if k % 3 == 0 {
            "subtract_stock"
        } else {
            "add_stock"
        };
        stock[item] += if f == "add_stock" { amount } else { -amount };
        let v = json!({"item": format!("i{item}"), "amount": amount});
        lines.push(json!({"process":p,"type":"invoke","f":f,"value":v,"time":t}));
        lines.push(json!({"process":p,"type":"ok","f":f,"value":v,"time":t + 15_000}));
        if k % 500 == 0 {
            let fault = json!({"id": k, "fault": {"kind": "pause", "node": k % 5}});
            lines.push(
                json!({"process":"nemesis","type":"info","f":"start","value":fault,"time":t}),
            );
            lines.push(json!({"process":"nemesis","type":"info","f":"end","value":fault,"time":t + 200_000}));
        }
    }
    lines.push(json!({"process":"final","type":"ok","f":"final","time":1_000 + ops as u64 * 1_000 + 20_000,
        "value":{"items":{"i0":{"stock":stock[0] + 1,"price":1},"i1":{"stock":stock[1],"price":1}}}}));
    // Times must be in order for the history to be real-time ordered.
    let mut lines: Vec<(u64, usize, Value)> = lines
        .into_iter()
        .enumerate()
        .map(|(i, l)| (l["time"].as_u64().unwrap(), i, l))
        .collect();
    lines.sort_by_key(|l| (l.0, l.1));
    lines.iter().map(|l| format!("{}\n", l.2)).collect()
}

#[test]
fn a_10k_event_history_renders_quickly() {
    let h = History::from_jsonl(&big_history(5_000)).unwrap();
    assert!(h.ops.len() > 10_000);
    let r = check_checkout(&h);
    assert_eq!(r.verdict, Verdict::Invalid);
    let start = Instant::now();
    let page = invariants_html(&h, &r, "big");
    let took = start.elapsed();
    // About 30 ms in a debug build; generous for a loaded machine.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(page.len() < 2_000_000, "{} bytes", page.len());
    let d = data_of(&page);
    assert_eq!(d["ops"].as_array().unwrap().len(), 5_000);
    assert_eq!(d["faults"].as_array().unwrap().len(), 10);
    assert!(d["violations"][0]["ops"].as_array().unwrap().len() > 1_000);
}

fn shopcheck(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shopcheck"))
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
    let d = std::env::temp_dir().join(format!("shopcheck-report-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn cli_report_keeps_exit_codes() {
    let d = temp_dir("cli");
    let out = d.join("bad.html");
    let out_s = out.to_str().unwrap();
    let (code, stdout, _) = shopcheck(&[FIXTURE, "--report", out_s]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("invalid (4 violations"), "{stdout}");
    assert!(
        stdout.ends_with(&format!("report written to {out_s}\n")),
        "{stdout}"
    );
    let page = std::fs::read_to_string(&out).unwrap();
    assert_eq!(data_of(&page)["verdict"], "invalid");
    assert!(page.contains("checkout-bad.jsonl (checkout invariants)"));

    // --json: stdout stays one JSON document.
    let (code, stdout, stderr) = shopcheck(&[FIXTURE, "--json", "--report", out_s]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert_eq!(v["verdict"], "invalid");
    assert!(stderr.contains("report written to"), "{stderr}");

    // Valid: exit 0. Bad input: exit 3, and the page shows the error.
    let valid = d.join("valid.jsonl");
    std::fs::write(
        &valid,
        r#"{"process":"setup","type":"ok","f":"init","value":{"users":{"u":1}}}
{"process":"final","type":"ok","f":"final","value":{"users":{"u":1}}}
"#,
    )
    .unwrap();
    let (code, stdout, _) = shopcheck(&[valid.to_str().unwrap(), "--report", out_s]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(
        data_of(&std::fs::read_to_string(&out).unwrap())["verdict"],
        "valid"
    );
    let bad = d.join("bad.jsonl");
    std::fs::write(
        &bad,
        r#"{"process":"setup","type":"ok","f":"init","value":{"users":{"u":1}}}
"#,
    )
    .unwrap();
    let (code, _, stderr) = shopcheck(&[bad.to_str().unwrap(), "--report", out_s]);
    assert_eq!(code, 3);
    assert!(stderr.contains("no final event"), "{stderr}");
    assert_eq!(
        data_of(&std::fs::read_to_string(&out).unwrap())["verdict"],
        "bad-input"
    );
    // An unwritable report is a usage error.
    let (code, _, stderr) = shopcheck(&[
        FIXTURE,
        "--report",
        d.join("no/such/dir/r.html").to_str().unwrap(),
    ]);
    assert_eq!(code, 3);
    assert!(stderr.contains("cannot write report"), "{stderr}");
}
