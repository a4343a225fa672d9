//! The HTML report for checkout-invariant results
//! ([`crate::invariants::check_checkout`]); [`invariants_html`] is
//! re-exported at the crate root.
//!
//! One self-contained page (inline CSS and JS, no network) in the style of
//! the linearizability report: the verdict and stats; every violation
//! (kind, subject, message, the subject's initial and final state) with
//! links to its events; the initial and final state summaries; a timeline
//! with one row per client process (operations as bars from invocation to
//! completion, coloured by outcome, the ones a violation names marked) and
//! the nemesis's faults as shaded intervals on the same time axis; and a
//! filterable, paged table of the client operations.
//!
//! Long histories stay usable: the timeline draws only the bars near the
//! visible window (redrawn on scroll and zoom), the table shows one page at
//! a time, and beyond [`MAX_CLIENT_OPS`] client operations only the first
//! ones (plus every one a violation names) are embedded, with a note.
//!
//! When rendering finishes the page sets `<body data-rendered="ok">`;
//! script errors are collected into `data-errors` (`ci/check-report`).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::{json, Map, Value};

use checker::history::{History, OpType, Process};
use checker::report::escape_html;

use crate::invariants::{InvariantResult, ViolationKind};

/// At most this many client operations are embedded in the page.
pub const MAX_CLIENT_OPS: usize = 200_000;

/// Builds the report page for a checkout history and its invariant result
/// (valid, invalid or bad input).
pub fn invariants_html(history: &History, result: &InvariantResult, title: &str) -> String {
    page(history, result, title, MAX_CLIENT_OPS)
}

/// The page, embedding at most `cap` client operations (plus the named ones).
fn page(history: &History, result: &InvariantResult, title: &str, cap: usize) -> String {
    let ranks = history.event_ranks();
    let times = TimeAxis::new(history);

    // Which event indexes a violation names (kept even beyond the cap).
    let named: std::collections::HashSet<usize> = result
        .violations
        .iter()
        .flat_map(|v| v.ops.iter().copied())
        .collect();

    // Client operations: invocations paired with completions per process.
    struct Row {
        invoke: usize,
        done: Option<usize>,
        lone: bool,
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut open: HashMap<&Process, usize> = HashMap::new();
    // Nemesis faults: start/end pairs (by value.id, else by f's suffix).
    let mut faults: Vec<(usize, Option<usize>, Value)> = Vec::new();
    let mut open_faults: HashMap<String, usize> = HashMap::new();
    let mut points: Vec<(usize, String)> = Vec::new(); // (pos, label)
    let mut others: BTreeMap<String, usize> = BTreeMap::new();
    for (pos, op) in history.ops.iter().enumerate() {
        match &op.process {
            Process::Client(_) => {
                if op.kind == OpType::Invoke {
                    // A pending op left open stays without completion.
                    open.insert(&op.process, rows.len());
                    rows.push(Row {
                        invoke: pos,
                        done: None,
                        lone: false,
                    });
                } else if let Some(r) = open.remove(&op.process) {
                    rows[r].done = Some(pos);
                } else {
                    rows.push(Row {
                        invoke: pos,
                        done: Some(pos),
                        lone: true,
                    });
                }
            }
            Process::Named(name) if name == "nemesis" => match fault_edge(&op.f, &op.value) {
                Some((true, key)) => match open_faults.get(&key) {
                    // Jepsen logs a start twice (invoke and completion):
                    // keep the first, with the first non-null value.
                    Some(&fi) => {
                        if faults[fi].2.is_null() {
                            faults[fi].2 = op.value.clone();
                        }
                    }
                    None => {
                        open_faults.insert(key, faults.len());
                        faults.push((pos, None, op.value.clone()));
                    }
                },
                Some((false, key)) => match open_faults.remove(&key) {
                    Some(fi) => {
                        faults[fi].1 = Some(pos);
                        if faults[fi].2.is_null() {
                            faults[fi].2 = op.value.clone();
                        }
                    }
                    None => points.push((pos, label(&op.f, &op.value))),
                },
                None => points.push((pos, label(&op.f, &op.value))),
            },
            Process::Named(name) => {
                let label = match (name.as_str(), op.f.as_str()) {
                    ("setup", "init") => Some("init"),
                    ("final", "final") => Some("final"),
                    _ => None,
                };
                match label {
                    Some(l) => points.push((pos, l.to_string())),
                    None => *others.entry(name.clone()).or_default() += 1,
                }
            }
        }
    }

    let total_client_ops = rows.len();
    let mut kept = 0usize;
    let mut ops_out: Vec<OpRow> = Vec::with_capacity(rows.len().min(cap));
    for row in &rows {
        let inv = &history.ops[row.invoke];
        if kept >= cap && !named.contains(&inv.index) {
            continue;
        }
        kept += 1;
        let comp = row.done.map(|p| &history.ops[p]);
        ops_out.push(OpRow {
            i: inv.index,
            p: inv.process.to_string(),
            f: &inv.f,
            o: match comp.map(|c| c.kind) {
                None => "pending",
                Some(OpType::Ok) => "ok",
                Some(OpType::Fail) => "fail",
                Some(_) => "info",
            },
            lone: row.lone,
            v: (!row.lone).then_some(&inv.value),
            c: comp.map(|c| c.index),
            r: comp
                .filter(|c| row.lone || c.value != inv.value)
                .map(|c| &c.value),
            e: comp.and_then(|c| c.extra.get("error").filter(|e| !e.is_null())),
            t0: times.at(row.invoke),
            k0: ranks[row.invoke],
            t1: row.done.and_then(|d| times.at(d)),
            k1: row.done.map(|d| ranks[d]),
        });
    }

    let faults_json: Vec<Value> = faults
        .iter()
        .map(|&(s, e, ref v)| {
            json!({
                "i": history.ops[s].index,
                "c": e.map(|p| history.ops[p].index),
                "value": v,
                "t0": times.at(s), "k0": ranks[s],
                "t1": e.and_then(|p| times.at(p)), "k1": e.map(|p| ranks[p]),
            })
        })
        .collect();
    let points_json: Vec<Value> = points
        .iter()
        .map(|&(pos, ref label)| {
            let op = &history.ops[pos];
            json!({"i": op.index, "p": op.process.to_string(), "f": op.f, "label": label,
                   "t": times.at(pos), "k": ranks[pos]})
        })
        .collect();

    // The initial (merged) and final states.
    let mut init = Map::new();
    let mut init_events = Vec::new();
    let mut fin: Option<(usize, &Value)> = None;
    for op in &history.ops {
        let named_ok = |n: &str| op.kind == OpType::Ok && op.process == Process::Named(n.into());
        if named_ok("setup") && op.f == "init" {
            init_events.push(op.index);
            merge_state(&mut init, &op.value);
        } else if named_ok("final") && op.f == "final" && fin.is_none() {
            fin = Some((op.index, &op.value));
        }
    }
    let init = Value::Object(init);
    let violations: Vec<Value> = result
        .violations
        .iter()
        .map(|v| {
            let section = section_of(v.kind, &v.message);
            let entity = |state: Option<&Value>| -> Value {
                section
                    .and_then(|s| state?.get(s)?.get(&v.subject))
                    .cloned()
                    .unwrap_or(Value::Null)
            };
            json!({
                "kind": v.kind.name(),
                "subject": v.subject,
                "message": v.message,
                "ops": v.ops,
                "entity": section.map(|s| s.trim_end_matches('s')),
                "init": entity(Some(&init)),
                "final": entity(fin.map(|f| f.1)),
            })
        })
        .collect();

    let data = json!({
        "title": title,
        "verdict": result.verdict.name(),
        "error": result.error,
        "stats": result.stats,
        "violations": violations,
        "init": {"events": init_events, "summary": summarize(&init)},
        "final": fin.map(|(i, v)| json!({"events": [i], "summary": summarize(v)})),
        "timed": times.timed,
        "tmax": times.max,
        "events": history.ops.len(),
        "total_client_ops": total_client_ops,
        "cap": cap,
        "faults": faults_json,
        "points": points_json,
        "others": others,
    });
    // The operations are serialized straight from the history, not copied.
    let data = serde_json::to_string(&Data {
        ops: ops_out,
        rest: data,
    })
    .expect("report data serializes");
    // `<` only occurs inside JSON strings, where \u003c is equivalent; this
    // keeps `</script>` in a value from closing the script element.
    let data = data.replace('<', "\\u003c");
    let (head, tail) = PAGE
        .split_once("{{DATA}}")
        .expect("the page has a data slot");
    let title = escape_html(title);
    let mut page = String::with_capacity(PAGE.len() + data.len() + 2 * title.len());
    page.push_str(&head.replace("{{TITLE}}", &title));
    page.push_str(&data);
    page.push_str(tail);
    page
}

#[derive(Serialize)]
struct Data<'a> {
    ops: Vec<OpRow<'a>>,
    #[serde(flatten)]
    rest: Value,
}

/// One client operation in the page's data (short keys: there may be many).
#[derive(Serialize)]
struct OpRow<'a> {
    /// Index of the invocation (of the completion, for a lone one).
    i: usize,
    p: String,
    f: &'a str,
    /// ok | fail | info | pending (no completion).
    o: &'static str,
    /// A completion without invocation.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    lone: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    v: Option<&'a Value>,
    /// Index of the completion.
    #[serde(skip_serializing_if = "Option::is_none")]
    c: Option<usize>,
    /// The completion's value, when it differs from the invocation's.
    #[serde(skip_serializing_if = "Option::is_none")]
    r: Option<&'a Value>,
    /// The completion's `error` field.
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<&'a Value>,
    /// Times (ns since the first event) and ranks of invocation and completion.
    t0: Option<u64>,
    k0: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    t1: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    k1: Option<u64>,
}

/// Times in ns since the first timed event, if every client event has a
/// time; an event without one takes the time of the last one before it.
struct TimeAxis {
    timed: bool,
    at: Vec<u64>,
    max: u64,
}

impl TimeAxis {
    fn new(history: &History) -> TimeAxis {
        let timed = history.ops.iter().any(|o| o.is_client())
            && history
                .ops
                .iter()
                .all(|o| !o.is_client() || o.time.is_some());
        if !timed {
            return TimeAxis {
                timed,
                at: Vec::new(),
                max: 0,
            };
        }
        let origin = history.ops.iter().filter_map(|o| o.time).min().unwrap_or(0);
        let mut last = 0;
        let at: Vec<u64> = history
            .ops
            .iter()
            .map(|o| {
                if let Some(t) = o.time {
                    last = t - origin;
                }
                last
            })
            .collect();
        let max = at.iter().copied().max().unwrap_or(0);
        TimeAxis { timed, at, max }
    }
    fn at(&self, pos: usize) -> Option<u64> {
        self.at.get(pos).copied()
    }
}

/// Whether a nemesis event starts (true) or ends (false) a fault, and the
/// key pairing the two: `value.id` if there is one, else the part of `f`
/// after `start`/`end`/`stop` (Jepsen's `start-partition`, `stop`).
fn fault_edge(f: &str, value: &Value) -> Option<(bool, String)> {
    let (starts, rest) = if let Some(r) = f.strip_prefix("start") {
        (true, r)
    } else if let Some(r) = f.strip_prefix("end").or_else(|| f.strip_prefix("stop")) {
        (false, r)
    } else {
        return None;
    };
    if !(rest.is_empty() || rest.starts_with(['-', '_'])) {
        return None;
    }
    let key = match value.get("id") {
        Some(id) => format!("id:{id}"),
        None => format!("f:{}", rest.trim_start_matches(['-', '_'])),
    };
    Some((starts, key))
}

/// `f` and the value, for a nemesis event drawn as a point.
fn label(f: &str, v: &Value) -> String {
    match v {
        Value::Null => f.to_string(),
        Value::String(s) => format!("{f} {s}"),
        v => format!("{f} {v}"),
    }
}

/// Merges one init event's value into the merged initial state.
fn merge_state(into: &mut Map<String, Value>, v: &Value) {
    let Some(obj) = v.as_object() else { return };
    for (k, x) in obj {
        match (into.get_mut(k), x) {
            (Some(Value::Object(m)), Value::Object(add)) => {
                m.extend(add.iter().map(|(a, b)| (a.clone(), b.clone())));
            }
            _ => {
                into.insert(k.clone(), x.clone());
            }
        }
    }
}

/// Counts and totals of a state (tolerant: malformed parts count as 0).
fn summarize(state: &Value) -> Value {
    let section = |name: &str| state.get(name).and_then(Value::as_object);
    let sum = |it: &mut dyn Iterator<Item = Option<i64>>| -> Value {
        let s: i128 = it.flatten().map(i128::from).sum();
        i64::try_from(s).map_or_else(|_| json!(s.to_string()), |s| json!(s))
    };
    let items = section("items");
    let users = section("users");
    let orders = section("orders");
    json!({
        "items": items.map_or(0, Map::len),
        "stock": sum(&mut items.into_iter().flat_map(|m| m.values()).map(|v| v.get("stock").and_then(Value::as_i64))),
        "users": users.map_or(0, Map::len),
        "credit": sum(&mut users.into_iter().flat_map(|m| m.values()).map(Value::as_i64)),
        "orders": orders.map_or(0, Map::len),
        "paid": orders.map_or(0, |m| m.values().filter(|o| o.get("paid") == Some(&Value::Bool(true))).count()),
        "in_flight": state.get("in_flight").cloned().unwrap_or(Value::Null),
    })
}

/// The state section a violation's subject lives in.
fn section_of(kind: ViolationKind, message: &str) -> Option<&'static str> {
    use ViolationKind::*;
    match kind {
        StockCreated | StockLost | NegativeStock => Some("items"),
        MoneyCreated | MoneyLost | NegativeCredit => Some("users"),
        WrongTotal | OkCheckoutNotPaid | PaidWithoutCheckout => Some("orders"),
        MissingEntity | UnexpectedEntity => ["item", "user", "order"]
            .into_iter()
            .find(|k| message.starts_with(&format!("{k} ")))
            .map(|k| match k {
                "item" => "items",
                "user" => "users",
                _ => "orders",
            }),
        InFlight => None,
    }
}

const PAGE: &str = include_str!("report.html");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::invariants::check_checkout;

    fn data_of(page: &str) -> Value {
        let start = page.find(r#"id="data">"#).expect("data script") + r#"id="data">"#.len();
        let end = start + page[start..].find("</script>").expect("end of data");
        serde_json::from_str(&page[start..end]).expect("data is JSON")
    }

    #[test]
    fn the_cap_keeps_the_first_ops_and_every_named_one() {
        let mut lines = vec![
            r#"{"process":"setup","type":"ok","f":"init","value":{"items":{"i":{"stock":0,"price":1}}}}"#
                .to_string(),
        ];
        for p in 0..50 {
            lines.push(format!(
                r#"{{"process":{p},"type":"invoke","f":"find_item","value":{{"item":"i"}}}}"#
            ));
            let stock = if p == 40 { -1 } else { 0 };
            lines.push(format!(
                r#"{{"process":{p},"type":"ok","f":"find_item","value":{{"item":"i","stock":{stock},"price":1}}}}"#
            ));
        }
        lines.push(
            r#"{"process":"final","type":"ok","f":"final","value":{"items":{"i":{"stock":0,"price":1}}}}"#
                .to_string(),
        );
        let h = History::from_jsonl(&lines.join("\n")).unwrap();
        let r = check_checkout(&h);
        assert_eq!(r.violations.len(), 1, "{r:?}");
        let named = r.violations[0].ops[0];
        let d = data_of(&page(&h, &r, "t", 10));
        let kept: Vec<u64> = d["ops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["i"].as_u64().unwrap())
            .collect();
        assert_eq!(kept.len(), 11);
        assert_eq!(kept[10], named as u64);
        assert_eq!(
            (d["total_client_ops"].as_u64(), d["cap"].as_u64()),
            (Some(50), Some(10))
        );
    }

    #[test]
    fn fault_edges_pair_by_id_or_suffix() {
        assert_eq!(
            fault_edge("start", &json!({"id": 3, "fault": "x"})),
            Some((true, "id:3".into()))
        );
        assert_eq!(
            fault_edge("end", &json!({"id": 3})),
            Some((false, "id:3".into()))
        );
        assert_eq!(fault_edge("stop", &Value::Null), Some((false, "f:".into())));
        assert_eq!(
            fault_edge("start-partition", &Value::Null),
            Some((true, "f:partition".into()))
        );
        assert_eq!(
            fault_edge("stop-partition", &json!("healed")),
            Some((false, "f:partition".into()))
        );
        assert_eq!(fault_edge("heal-all", &Value::Null), None);
        assert_eq!(fault_edge("started", &Value::Null), None);
        assert_eq!(fault_edge("endpoint", &Value::Null), None);
    }
}
