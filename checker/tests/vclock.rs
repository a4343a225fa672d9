//! `checker::vclock`: the fixtures of `tests/data/vclock/` (the Tartu
//! bookstore's checkout scheme, a valid log and one bad log per check),
//! edge cases, property tests over simulated executions, and the
//! `checker vclock` command line.

// Index loops read best over the reachability matrix.
#![allow(clippy::needless_range_loop)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use checker::vclock::{check, clock_lt, parse_log, Clock, Kind, Scheme, VcResult, VcVerdict};
use proptest::prelude::*;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/vclock");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{DATA}/{name}")).unwrap()
}

fn tartu() -> Scheme {
    Scheme::from_json(&fixture("tartu.json")).unwrap()
}

fn check_file(name: &str) -> VcResult {
    let events = parse_log(&fixture(name), name).unwrap();
    check(&tartu(), &events)
}

fn kinds(r: &VcResult) -> Vec<Kind> {
    let mut k: Vec<Kind> = r.violations.iter().map(|v| v.kind).collect();
    k.dedup();
    k
}

#[test]
fn valid_log_is_valid_and_was_checked() {
    let r = check_file("valid.jsonl");
    assert_eq!(r.verdict, VcVerdict::Valid, "{}", r.explain());
    assert!(r.violations.is_empty());
    let s = &r.stats;
    assert_eq!(s.groups, 4);
    assert_eq!(s.events, 29);
    assert_eq!(s.sources, 5);
    assert_eq!(s.groups_with_final, 3);
    // 3 complete groups with 7 edge obligations each, one more for o-3#1's
    // second run of a (init -> a), and the aborted o-2#1's init -> a,
    // init -> b, a -> c.
    assert_eq!(s.order_checked, 3 * 7 + 3 + 1, "{}", r.explain());
    // a x b per group; o-3#1 ran a twice.
    assert_eq!(s.concurrency_checked, 5);
    assert_eq!(s.own_clock_checked, 29);
    assert!(s.final_checked > 0);
    let text = r.explain();
    assert!(text.contains("no violation"), "{text}");
    assert!(text.contains("4 groups (3 with a final event)"), "{text}");
}

#[test]
fn aborted_group_is_valid() {
    let r = check_file("aborted.jsonl");
    assert_eq!(r.verdict, VcVerdict::Valid, "{}", r.explain());
    assert_eq!(r.stats.groups_with_final, 0);
    assert_eq!(r.stats.order_checked, 3);
}

#[test]
fn fraud_that_does_not_merge_breaks_c_before_e() {
    let r = check_file("bad-no-merge.jsonl");
    assert_eq!(r.verdict, VcVerdict::Invalid);
    assert_eq!(kinds(&r), vec![Kind::Order], "{}", r.explain());
    let v = &r.violations[0];
    assert_eq!(v.group, "o-5#1");
    assert_eq!(v.events[0].event, "e");
    assert_eq!(v.events[1].event, "c");
    assert!(
        v.explanation.contains("e must happen after c"),
        "{}",
        v.explanation
    );
    assert!(
        v.explanation.contains("verification/items: 2 > 0"),
        "{}",
        v.explanation
    );
    // The events carry their clocks and where they were read.
    assert_eq!(v.events[0].clock.get("fraud"), Some(&2));
    assert_eq!(v.events[0].file, "bad-no-merge.jsonl");
    assert_eq!(v.events[0].line, 14);
}

#[test]
fn ordered_a_and_b_break_concurrency() {
    let r = check_file("bad-concurrency.jsonl");
    assert_eq!(kinds(&r), vec![Kind::Concurrency], "{}", r.explain());
    assert!(r.violations[0]
        .explanation
        .contains("a and b must be concurrent, but a happened before b"));
}

#[test]
fn own_entry_going_backwards_is_caught() {
    let r = check_file("bad-own-clock.jsonl");
    assert_eq!(kinds(&r), vec![Kind::OwnClock], "{}", r.explain());
    assert!(r.violations[0]
        .explanation
        .contains("went from 2 (f) to 1 (f)"));
}

#[test]
fn final_that_does_not_dominate_is_caught() {
    let r = check_file("bad-final.jsonl");
    assert_eq!(kinds(&r), vec![Kind::Final], "{}", r.explain());
    assert!(r.violations[0].explanation.contains("suggestions: 1 > 0"));
}

#[test]
fn unknown_event_is_caught() {
    let r = check_file("bad-unknown.jsonl");
    assert_eq!(kinds(&r), vec![Kind::UnknownEvent], "{}", r.explain());
    assert_eq!(r.violations[0].events[0].event, "g");
}

#[test]
fn successor_without_predecessor_is_caught() {
    let r = check_file("bad-missing.jsonl");
    assert_eq!(kinds(&r), vec![Kind::MissingPredecessor], "{}", r.explain());
    assert!(r.violations[0].explanation.contains("but c"));
}

#[test]
fn several_files_give_the_same_result_as_one() {
    // Split the valid log by source, as each process would write its own.
    let text = fixture("valid.jsonl");
    let mut by_source: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let s = by_source
            .entry(v["source"].as_str().unwrap().to_string())
            .or_default();
        s.push_str(line);
        s.push('\n');
    }
    assert!(by_source.len() > 2);
    let mut events = Vec::new();
    for (src, t) in &by_source {
        events.extend(parse_log(t, src).unwrap());
    }
    let r = check(&tartu(), &events);
    assert_eq!(r.verdict, VcVerdict::Valid, "{}", r.explain());
    assert_eq!(r.stats, check_file("valid.jsonl").stats);
}

fn line(group: &str, source: &str, process: &str, event: &str, clock: &str) -> String {
    format!(
        r#"{{"group":"{group}","source":"{source}","process":"{process}","event":"{event}","clock":{clock}}}"#
    )
}

fn run(lines: &[String]) -> VcResult {
    check(&tartu(), &parse_log(&lines.join("\n"), "t.jsonl").unwrap())
}

#[test]
fn two_finals_in_a_group() {
    let r = run(&[
        line("g", "o", "orchestrator", "init", r#"{"orchestrator":1}"#),
        line("g", "o", "orchestrator", "final", r#"{"orchestrator":2}"#),
        line("g", "o", "orchestrator", "final", r#"{"orchestrator":3}"#),
    ]);
    assert_eq!(kinds(&r), vec![Kind::Final], "{}", r.explain());
    assert!(r.violations[0].explanation.contains("2 final events"));
}

#[test]
fn own_entry_absent_zero_or_not_ticked() {
    let r = run(&[line("g", "o", "orchestrator", "init", r#"{"x":1}"#)]);
    assert_eq!(kinds(&r), vec![Kind::OwnClock]);
    assert!(r.violations[0].explanation.contains("absent"));
    let r = run(&[line(
        "g",
        "o",
        "orchestrator",
        "init",
        r#"{"orchestrator":0}"#,
    )]);
    assert_eq!(kinds(&r), vec![Kind::OwnClock]);
    // d then e on fraud: e merged c but did not tick. Order holds (e has
    // more than d), the own entry does not increase.
    let r = run(&[
        line("g", "o", "orchestrator", "init", r#"{"orchestrator":1}"#),
        line(
            "g",
            "v",
            "v/items",
            "a",
            r#"{"orchestrator":1,"v/items":1}"#,
        ),
        line("g", "v", "v/user", "b", r#"{"orchestrator":1,"v/user":1}"#),
        line(
            "g",
            "v",
            "v/items",
            "c",
            r#"{"orchestrator":1,"v/items":2}"#,
        ),
        line(
            "g",
            "f",
            "fraud",
            "d",
            r#"{"orchestrator":1,"v/user":1,"fraud":1}"#,
        ),
        line(
            "g",
            "f",
            "fraud",
            "e",
            r#"{"orchestrator":1,"v/user":1,"v/items":2,"fraud":1}"#,
        ),
    ]);
    assert_eq!(kinds(&r), vec![Kind::OwnClock], "{}", r.explain());
    // The same process in another group, or another incarnation, starts over.
    let r = run(&[
        line("g1", "o1", "orchestrator", "init", r#"{"orchestrator":1}"#),
        line("g2", "o1", "orchestrator", "init", r#"{"orchestrator":1}"#),
        line("g2", "o2", "orchestrator", "init", r#"{"orchestrator":1}"#),
    ]);
    assert_eq!(r.verdict, VcVerdict::Valid, "{}", r.explain());
}

#[test]
fn equal_clocks_are_not_concurrent_and_not_ordered() {
    let r = run(&[
        line("g", "o", "orchestrator", "init", r#"{"orchestrator":1}"#),
        line("g", "v", "x", "a", r#"{"orchestrator":1,"x":1}"#),
        line("g", "w", "x", "b", r#"{"orchestrator":1,"x":1}"#),
    ]);
    assert_eq!(kinds(&r), vec![Kind::Concurrency], "{}", r.explain());
    assert!(r.violations[0].explanation.contains("equal"));
    // A successor whose clock equals its predecessor's is not after it.
    let r = run(&[
        line("g", "o", "orchestrator", "init", r#"{"orchestrator":1}"#),
        line("g", "v", "x", "a", r#"{"orchestrator":1}"#),
    ]);
    assert!(r.has(Kind::Order), "{}", r.explain());
}

#[test]
fn a_rerun_predecessor_is_enough() {
    // a ran twice (failover); c merged only the second run.
    let r = run(&[
        line("g", "o", "orchestrator", "init", r#"{"orchestrator":1}"#),
        line("g", "v1", "items", "a", r#"{"orchestrator":1,"items":5}"#),
        line("g", "v2", "items", "a", r#"{"orchestrator":1,"items":1}"#),
        line("g", "v2", "items", "c", r#"{"orchestrator":1,"items":2}"#),
    ]);
    assert_eq!(r.verdict, VcVerdict::Valid, "{}", r.explain());
}

#[test]
fn nothing_to_check() {
    let r = check(&tartu(), &parse_log("\n  \n", "empty.jsonl").unwrap());
    assert_eq!(r.verdict, VcVerdict::NothingChecked);
    assert!(r.explain().contains("nothing to check"));
}

#[test]
fn parser_errors_name_file_and_line() {
    let good = line("g", "o", "orchestrator", "init", r#"{"orchestrator":1}"#);
    let e = parse_log(&format!("{good}\n\n{{\"group\":\"g\"}}\n"), "x.jsonl").unwrap_err();
    assert!(e.starts_with("x.jsonl:3: "), "{e}");
    assert!(e.contains("missing field"), "{e}");
    let e = parse_log(&good.replace(":1}", ":-1}"), "x.jsonl").unwrap_err();
    assert!(e.starts_with("x.jsonl:1: "), "{e}");
    // Extra fields are ignored.
    let evs = parse_log(&good.replace("{\"group\"", "{\"extra\":[1],\"group\""), "x").unwrap();
    assert_eq!(evs.len(), 1);
}

#[test]
fn result_serializes() {
    let r = check_file("bad-no-merge.jsonl");
    let v: serde_json::Value = serde_json::to_value(&r).unwrap();
    assert_eq!(v["verdict"], "invalid");
    assert_eq!(v["violations"][0]["kind"], "order");
    assert_eq!(
        v["violations"][0]["events"][1]["clock"]["verification/items"],
        2
    );
    assert_eq!(v["stats"]["groups"], 2);
    assert_eq!(v["scheme"], "tartu-checkout");
}

// ---------------------------------------------------------------------
// Property tests: executions simulated with the merge/tick rule.

/// A random scheme over events `e0..e{n-1}` (edges only from lower to
/// higher index, so acyclic), each event run by one of a few processes, and
/// groups that run a prefix of the events (an aborted attempt stops early).
#[derive(Clone, Debug)]
struct Exec {
    n: usize,
    edges: Vec<(usize, usize)>,
    proc_of: Vec<usize>,
    /// Candidate concurrent pairs: kept when the execution leaves them unordered.
    conc_pick: Vec<bool>,
    /// (prefix length, has a final event) per group.
    groups: Vec<(usize, bool)>,
    /// Interleaving of the groups' lines in the log.
    interleave: Vec<usize>,
}

fn exec() -> impl Strategy<Value = Exec> {
    (2usize..8).prop_flat_map(|n| {
        (
            Just(n),
            prop::collection::vec(prop::bool::weighted(0.35), n * n),
            prop::collection::vec(0usize..4, n),
            prop::collection::vec(prop::bool::weighted(0.5), n * n),
            prop::collection::vec((1..=n, any::<bool>()), 1..4),
            prop::collection::vec(0usize..4, 0..40),
        )
            .prop_map(|(n, e, proc_of, conc_pick, mut groups, interleave)| {
                let edges = (0..n)
                    .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
                    .filter(|&(i, j)| e[i * n + j])
                    .collect();
                groups[0] = (n, true); // one complete group
                Exec {
                    n,
                    edges,
                    proc_of,
                    conc_pick,
                    groups,
                    interleave,
                }
            })
    })
}

fn merge(into: &mut Clock, c: &Clock) {
    for (k, &v) in c {
        let e = into.entry(k.clone()).or_insert(0);
        *e = (*e).max(v);
    }
}

fn tick(mut c: Clock, p: &str) -> Clock {
    *c.entry(p.to_string()).or_insert(0) += 1;
    c
}

impl Exec {
    /// Event i happens before event j in the execution: a path of scheme
    /// edges and program order.
    fn reach(&self) -> Vec<Vec<bool>> {
        let n = self.n;
        let mut r = vec![vec![false; n]; n];
        for &(i, j) in &self.edges {
            r[i][j] = true;
        }
        for i in 0..n {
            for j in i + 1..n {
                if self.proc_of[i] == self.proc_of[j] {
                    r[i][j] = true;
                }
            }
        }
        for k in 0..n {
            for i in 0..n {
                for j in 0..n {
                    if r[i][k] && r[k][j] {
                        r[i][j] = true;
                    }
                }
            }
        }
        r
    }

    fn scheme(&self) -> Scheme {
        let reach = self.reach();
        let name = |i: usize| format!("e{i}");
        let mut conc = Vec::new();
        for i in 0..self.n {
            for j in i + 1..self.n {
                if !reach[i][j] && self.conc_pick[i * self.n + j] {
                    conc.push(vec![name(i), name(j)]);
                }
            }
        }
        let json = serde_json::json!({
            "name": "random",
            "events": (0..self.n).map(name).collect::<Vec<_>>(),
            "happens_before": self.edges.iter().map(|&(i, j)| vec![name(i), name(j)]).collect::<Vec<_>>(),
            "concurrent": conc,
            "final": "end",
        });
        Scheme::from_json(&json.to_string()).unwrap()
    }

    /// Clocks of one group's events `0..len`, each merging its process's
    /// last clock and its predecessors' (except the merge `drop` names:
    /// (x, y) = y does not merge x), then ticking its process.
    fn clocks(&self, len: usize, drop: Option<(usize, usize)>) -> Vec<Clock> {
        let mut last: BTreeMap<usize, Clock> = BTreeMap::new();
        let mut out: Vec<Clock> = Vec::new();
        for j in 0..len {
            let p = self.proc_of[j];
            let mut c = last.get(&p).cloned().unwrap_or_default();
            for &(i, jj) in &self.edges {
                if jj == j && Some((i, j)) != drop {
                    merge(&mut c, &out[i]);
                }
            }
            let c = tick(c, &format!("p{p}"));
            last.insert(p, c.clone());
            out.push(c);
        }
        out
    }

    /// The log: JSON lines of every group, interleaved.
    fn log(&self, drop: Option<(usize, usize)>) -> String {
        let mut per_group: Vec<Vec<String>> = Vec::new();
        for (g, &(len, fin)) in self.groups.iter().enumerate() {
            let clocks = self.clocks(len, if g == 0 { drop } else { None });
            let mut lines: Vec<String> = clocks
                .iter()
                .enumerate()
                .map(|(i, c)| self.line(g, &format!("p{}", self.proc_of[i]), &format!("e{i}"), c))
                .collect();
            if fin {
                let mut all = Clock::new();
                for c in &clocks {
                    merge(&mut all, c);
                }
                lines.push(self.line(g, "boss", "end", &tick(all, "boss")));
            }
            lines.reverse();
            per_group.push(lines);
        }
        let mut out = String::new();
        let mut picks = self.interleave.iter().cycle();
        while per_group.iter().any(|l| !l.is_empty()) {
            let k = picks.next().copied().unwrap_or(0) % per_group.len();
            let g = (k..per_group.len())
                .chain(0..k)
                .find(|&g| !per_group[g].is_empty())
                .unwrap();
            out.push_str(&per_group[g].pop().unwrap());
            out.push('\n');
        }
        out
    }

    fn line(&self, g: usize, process: &str, event: &str, clock: &Clock) -> String {
        serde_json::json!({
            "group": format!("g{g}"),
            "source": format!("{process}-1"),
            "process": process,
            "event": event,
            "clock": clock,
        })
        .to_string()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Executions that follow the merge/tick rule are valid.
    #[test]
    fn simulated_executions_are_valid(x in exec()) {
        let scheme = x.scheme();
        let events = parse_log(&x.log(None), "sim").unwrap();
        let r = check(&scheme, &events);
        prop_assert_eq!(r.verdict, VcVerdict::Valid, "{}", r.explain());
        prop_assert_eq!(r.stats.groups, x.groups.len());
        prop_assert!(r.stats.groups_with_final >= 1);
        prop_assert_eq!(r.stats.own_clock_checked, events.len());
    }

    /// Dropping one receive's merge is an order violation of that edge
    /// exactly when the dropped merge carried what the edge needed (no other
    /// path brought it), and nothing else breaks.
    #[test]
    fn a_dropped_merge_is_caught_when_it_matters(x in exec(), k in any::<prop::sample::Index>()) {
        prop_assume!(!x.edges.is_empty());
        let (i, j) = x.edges[k.index(x.edges.len())];
        let scheme = x.scheme();
        let r = check(&scheme, &parse_log(&x.log(Some((i, j))), "sim").unwrap());
        let broken = x.clocks(x.n, Some((i, j)));
        if clock_lt(&broken[i], &broken[j]) {
            prop_assert_eq!(r.verdict, VcVerdict::Valid, "{}", r.explain());
        } else {
            prop_assert_eq!(r.violations.len(), 1, "{}", r.explain());
            let v = &r.violations[0];
            prop_assert_eq!(v.kind, Kind::Order);
            prop_assert_eq!(&v.group, "g0");
            prop_assert_eq!(&v.events[0].event, &format!("e{j}"));
            prop_assert_eq!(&v.events[1].event, &format!("e{i}"));
        }
    }

    /// A log with one edge deliberately broken (the later event's clock
    /// lacks the earlier one's own tick) is always caught on that edge.
    #[test]
    fn a_broken_edge_is_always_caught(x in exec(), k in any::<prop::sample::Index>()) {
        prop_assume!(!x.edges.is_empty());
        let (i, j) = x.edges[k.index(x.edges.len())];
        let scheme = x.scheme();
        let mut events = parse_log(&x.log(None), "sim").unwrap();
        let px = format!("p{}", x.proc_of[i]);
        let xi = events
            .iter()
            .find(|e| e.group == "g0" && e.event == format!("e{i}"))
            .unwrap()
            .clock[&px];
        let y = events
            .iter_mut()
            .find(|e| e.group == "g0" && e.event == format!("e{j}"))
            .unwrap();
        y.clock.insert(px, xi - 1);
        let r = check(&scheme, &events);
        let e_i = format!("e{i}");
        let e_j = format!("e{j}");
        prop_assert!(
            r.of(Kind::Order).any(|v| v.group == "g0"
                && v.events[0].event == e_j
                && v.events[1].event == e_i),
            "{}",
            r.explain()
        );
    }

    /// Arbitrary bytes never panic the readers.
    #[test]
    fn parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_log(&text, "f");
        let _ = Scheme::from_json(&text);
    }

    /// Nor does JSON-looking text, nor checking whatever parses.
    #[test]
    fn json_like_text_never_panics(text in r#"[{}\[\]":,0-9a-z_ \n-]{0,300}"#) {
        let _ = Scheme::from_json(&text);
        if let Ok(evs) = parse_log(&text, "f") {
            let _ = check(&tartu(), &evs).explain();
        }
    }

    /// Any clocks, any names: the checker does not panic.
    #[test]
    fn check_never_panics(
        evs in prop::collection::vec(
            ("[ab]", "[st]", "[pq]", "init|a|b|c|d|e|f|final|z",
             prop::collection::btree_map("[pq]", any::<u64>(), 0..3)),
            0..30,
        )
    ) {
        let text: Vec<String> = evs
            .iter()
            .map(|(g, s, p, e, c)| {
                serde_json::json!({"group": g, "source": s, "process": p, "event": e, "clock": c})
                    .to_string()
            })
            .collect();
        let events = parse_log(&text.join("\n"), "f").unwrap();
        let r = check(&tartu(), &events);
        let _ = r.explain();
        prop_assert_eq!(r.verdict == VcVerdict::NothingChecked, evs.is_empty());
    }
}

// ---------------------------------------------------------------------
// The command line.

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
    let d = std::env::temp_dir().join(format!("checker-vclock-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn cli_exit_codes() {
    let scheme = format!("{DATA}/tartu.json");
    let data = |f: &str| format!("{DATA}/{f}");

    let (code, out, err) = checker(&["vclock", "--scheme", &scheme, &data("valid.jsonl")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("tartu-checkout: valid (1 log files"),
        "{out}"
    );
    assert!(out.contains("concurrency 5 pairs"), "{out}");

    let (code, out, _) = checker(&[
        "vclock",
        "--scheme",
        &scheme,
        &data("valid.jsonl"),
        &data("aborted.jsonl"),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("5 groups"), "{out}");

    let (code, out, _) = checker(&["vclock", "--scheme", &scheme, &data("bad-no-merge.jsonl")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("tartu-checkout: invalid"), "{out}");
    assert!(
        out.contains("[order] group o-5#1: e must happen after c"),
        "{out}"
    );
    assert!(out.contains("bad-no-merge.jsonl:14"), "{out}");

    let (code, out, _) = checker(&[
        "vclock",
        "--scheme",
        &scheme,
        "--json",
        &data("bad-final.jsonl"),
    ]);
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["violations"][0]["kind"], "final");

    let d = temp_dir("codes");
    let empty = d.join("empty.jsonl");
    std::fs::write(&empty, "\n\n").unwrap();
    let (code, out, _) = checker(&["vclock", "--scheme", &scheme, empty.to_str().unwrap()]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("nothing to check"), "{out}");
    let (code, out, _) = checker(&[
        "vclock",
        "--scheme",
        &scheme,
        "--json",
        empty.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("\"nothing-checked\""), "{out}");

    let bad = d.join("bad.jsonl");
    std::fs::write(
        &bad,
        format!(
            "{}\nnot json\n",
            fixture("aborted.jsonl").lines().next().unwrap()
        ),
    )
    .unwrap();
    let (code, _, err) = checker(&["vclock", "--scheme", &scheme, bad.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("bad.jsonl:2: not an event line"), "{err}");

    let cyclic = d.join("cyclic.json");
    std::fs::write(&cyclic, r#"{"happens_before":[["a","b"],["b","a"]]}"#).unwrap();
    let (code, _, err) = checker(&[
        "vclock",
        "--scheme",
        cyclic.to_str().unwrap(),
        &data("valid.jsonl"),
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cycle through a, b"), "{err}");

    let ordered = d.join("ordered.json");
    std::fs::write(
        &ordered,
        r#"{"happens_before":[["a","b"],["b","c"]],"concurrent":[["a","c"]]}"#,
    )
    .unwrap();
    let (code, _, err) = checker(&[
        "vclock",
        "--scheme",
        ordered.to_str().unwrap(),
        &data("valid.jsonl"),
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("happens_before orders a before c"), "{err}");

    let (code, _, err) = checker(&["vclock", "--scheme", &scheme, "/nonexistent/log.jsonl"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cannot read /nonexistent/log.jsonl"), "{err}");

    // Usage errors are bad input too.
    let (code, _, err) = checker(&["vclock", "--scheme", &scheme]);
    assert_eq!(code, 3, "{err}");
    let (code, out, _) = checker(&["vclock", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("happens-before scheme"), "{out}");
    std::fs::remove_dir_all(&d).unwrap();
}
