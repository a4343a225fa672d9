//! The HTML report: one self-contained page (inline CSS and JS, no network)
//! in the spirit of Porcupine's visualization.
//!
//! One timeline row per process; non-client processes (nemesis, nodes) get
//! their own rows. The x axis is event order. Unknown outcomes are hatched
//! and run to the end. For a failing history the longest linearizable
//! prefix is numbered, the operations that cannot follow it are red, and
//! the region where it fails is shaded; for a valid history every operation
//! carries its position in the linearization. The spans during which a
//! fault was active ([`fault_bands`]) are shaded across every row.
//!
//! When rendering finishes the page sets `<body data-rendered="ok">`;
//! script errors are collected into `data-errors` (used by `ci/check-report`).
//!
//! [`escape_html`] is public so that other crates' pages about histories
//! can quote text the same way.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::history::{History, OpType, Process};
use crate::linear::CheckResult;

/// Builds the report page.
pub fn html(history: &History, result: &CheckResult, title: &str) -> String {
    let ranks = history.event_ranks();
    let n = history.ops.len() as u64;
    // Pair invocations with completions per process (clients and others).
    let mut open: HashMap<&crate::history::Process, usize> = HashMap::new();
    let mut rows: Vec<Value> = Vec::new();
    let mut pending: Vec<Option<usize>> = Vec::new(); // row index -> completion pos
    let mut row_of_invoke: Vec<(usize, usize)> = Vec::new();
    for (pos, op) in history.ops.iter().enumerate() {
        if op.kind == OpType::Invoke {
            open.insert(&op.process, pos);
            row_of_invoke.push((pos, rows.len()));
            rows.push(Value::Null);
            pending.push(None);
        } else if let Some(inv) = open.remove(&op.process) {
            let k = row_of_invoke
                .iter()
                .rposition(|&(p, _)| p == inv)
                .expect("invoke recorded");
            pending[row_of_invoke[k].1] = Some(pos);
        } else {
            // A lone completion (e.g. a nemesis :info event): a point.
            row_of_invoke.push((pos, rows.len()));
            rows.push(Value::Null);
            pending.push(Some(pos));
        }
    }
    let lin_pos: HashMap<usize, usize> = result
        .linearization
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, &idx)| (idx, i + 1))
        .collect();
    let prefix_pos: HashMap<usize, usize> = result
        .prefix
        .iter()
        .enumerate()
        .map(|(i, &idx)| (idx, i + 1))
        .collect();
    for &(pos, ri) in &row_of_invoke {
        let inv = &history.ops[pos];
        let done = pending[ri];
        let lone = done == Some(pos);
        let comp = done.map(|p| &history.ops[p]);
        let outcome = match comp.map(|c| c.kind) {
            Some(OpType::Ok) => "ok",
            Some(OpType::Fail) => "fail",
            _ => "unknown",
        };
        let result_value = match comp {
            Some(c) if c.kind == OpType::Ok => c.value.clone(),
            _ => Value::Null,
        };
        let order = lin_pos
            .get(&inv.index)
            .or_else(|| prefix_pos.get(&inv.index))
            .copied();
        rows[ri] = json!({
            "index": inv.index,
            "process": inv.process.to_string(),
            "client": inv.is_client(),
            "f": inv.f,
            "key": inv.key,
            "value": inv.value,
            "result": result_value,
            "outcome": if lone { inv.kind.name() } else { outcome },
            "start": ranks[pos],
            "end": if lone { Some(ranks[pos]) } else { done.map(|p| ranks[p]) },
            "time": inv.time,
            "order": order,
            "failing": result.failing.contains(&inv.index),
            "lone": lone,
        });
    }
    let data = json!({
        "title": title,
        "verdict": result.verdict.name(),
        "explanation": result.explanation,
        "unknown_reason": result.unknown_reason,
        "failing_key": result.failing_key,
        "linearization": result.linearization,
        "prefix": result.prefix,
        "failing": result.failing,
        "partitions": result.partitions,
        "events": n,
        "ops": rows,
        "faults": fault_bands(history)
            .iter()
            .map(|b| json!({
                "start": ranks[b.start],
                "end": b.end.map(|e| ranks[e]),
                "index": history.ops[b.start].index,
                "name": b.name,
                "label": b.label,
            }))
            .collect::<Vec<_>>(),
    });
    // `<` only occurs inside JSON strings, where \u003c is equivalent; this
    // keeps `</script>` in a value from closing the script element.
    let data = data.to_string().replace('<', "\\u003c");
    let title_html = escape_html(title);
    PAGE.replace("{{TITLE}}", &title_html)
        .replace("{{DATA}}", &data)
}

/// A span of a history during which a fault was active.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultBand {
    /// Positions in `History::ops` of the operation that began the fault
    /// and of the one that ended it; `None`: still active when the history
    /// ends.
    pub start: usize,
    pub end: Option<usize>,
    /// The kind of fault: the simulator's fault kind (`pause`,
    /// `partition`...), or the name of the Jepsen region (`nemesis`, `kill`,
    /// `pause`, `partition`, `clock`, `packet`).
    pub name: String,
    /// What the fault did, in a few words.
    pub label: String,
}

/// Jepsen's nemesis regions, as `jepsen.checker.perf` shades them: a
/// region begins at an operation whose `f` is in the first set and ends at
/// the next one whose `f` is in the second (`jepsen.util/nemesis-intervals`,
/// whose default is `:start` to `:stop`; the others are the `:perf` specs of
/// `jepsen.nemesis.combined`'s packages).
const JEPSEN_REGIONS: &[(&str, &[&str], &[&str])] = &[
    ("nemesis", &["start"], &["stop"]),
    ("kill", &["kill"], &["start"]),
    ("pause", &["pause"], &["resume"]),
    ("partition", &["start-partition"], &["stop-partition"]),
    ("clock", &["bump-clock"], &["reset-clock"]),
    ("packet", &["start-packet"], &["stop-packet"]),
];

/// The spans of `history` during which a fault was active, from the
/// operations of its `nemesis` process, in the order they began.
///
/// - The simulator's and Jepsen mode's own events: `start` and `end` with
///   the same `value.id` and `value.part` begin and end one fault or one
///   part of it (a fault in parts, such as a leader churn, records a start
///   and an end per part under its id; `value.fault` says what);
///   `heal-all` ends every fault still active.
/// - Jepsen's: as [`JEPSEN_REGIONS`] says, with Jepsen's meaning. A
///   nemesis operation is usually an invocation and a completion with the
///   same `f` (both `:info`), taken together as one action; an action that
///   ends a region ends every region of that kind still open, as in
///   `jepsen.util/nemesis-intervals`. The default region (`:start` to
///   `:stop`) is left out of a history that has `:kill` and no `:stop`,
///   where `:start` restarts what `:kill` stopped.
pub fn fault_bands(history: &History) -> Vec<FaultBand> {
    let nemesis: Vec<usize> = (0..history.ops.len())
        .filter(|&i| matches!(&history.ops[i].process, Process::Named(n) if n == "nemesis"))
        .collect();
    let id_of = |i: usize| history.ops[i].value.get("id").and_then(Value::as_u64);
    let mut bands: Vec<FaultBand> = Vec::new();

    // The simulator's events, paired by id and part.
    let mut open: Vec<((u64, Option<u64>), usize)> = Vec::new(); // (key, band)
    for &i in &nemesis {
        let op = &history.ops[i];
        let key = |id| (id, op.value.get("part").and_then(Value::as_u64));
        match (op.f.as_str(), id_of(i).map(key)) {
            ("start", Some(id)) => {
                let fault = op.value.get("fault").unwrap_or(&Value::Null);
                let name = fault
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("fault")
                    .to_string();
                open.push((id, bands.len()));
                bands.push(FaultBand {
                    start: i,
                    end: None,
                    label: describe_fault(fault),
                    name,
                });
            }
            ("end", Some(id)) => {
                if let Some(k) = open.iter().position(|&(o, _)| o == id) {
                    bands[open.remove(k).1].end = Some(i);
                }
            }
            ("heal-all", _) => {
                for (_, b) in open.drain(..) {
                    bands[b].end = Some(i);
                }
            }
            _ => {}
        }
    }

    // Jepsen's: actions (an invocation and its completion), then regions.
    let mut actions: Vec<(usize, usize)> = Vec::new(); // first and last op
    for &i in nemesis.iter().filter(|&&i| id_of(i).is_none()) {
        let f = &history.ops[i].f;
        match actions.last_mut() {
            Some(a) if a.0 == a.1 && history.ops[a.0].f == *f => a.1 = i,
            _ => actions.push((i, i)),
        }
    }
    let has = |fs: &[&str]| {
        actions
            .iter()
            .any(|a| fs.contains(&history.ops[a.0].f.as_str()))
    };
    let mut jepsen: Vec<FaultBand> = Vec::new();
    for &(name, starts, stops) in JEPSEN_REGIONS {
        if name == "nemesis" && has(&["kill"]) && !has(&["stop"]) {
            continue;
        }
        let mut open: Vec<(usize, usize)> = Vec::new();
        for &a in &actions {
            let f = history.ops[a.0].f.as_str();
            if starts.contains(&f) {
                open.push(a);
            } else if stops.contains(&f) {
                for s in open.drain(..) {
                    jepsen.push(jepsen_band(history, name, s, Some(a.1)));
                }
            }
        }
        jepsen.extend(
            open.into_iter()
                .map(|s| jepsen_band(history, name, s, None)),
        );
    }
    bands.extend(jepsen);
    bands.sort_by_key(|b| b.start);
    bands
}

fn jepsen_band(history: &History, name: &str, s: (usize, usize), end: Option<usize>) -> FaultBand {
    // The completion says what was done ("Cut off ..."); the invocation
    // what was asked.
    let value = [s.1, s.0]
        .iter()
        .map(|&i| &history.ops[i].value)
        .find(|v| !v.is_null());
    let mut label = history.ops[s.0].f.clone();
    if let Some(v) = value {
        label.push(' ');
        label.push_str(&words(v));
    }
    FaultBand {
        start: s.0,
        end,
        name: name.to_string(),
        label,
    }
}

/// A simulator fault (`{"kind": "pause", "node": 3}`) in a few words:
/// `pause node 3`.
fn describe_fault(fault: &Value) -> String {
    let Some(m) = fault.as_object() else {
        return if fault.is_null() {
            "fault".into()
        } else {
            fault.to_string()
        };
    };
    let mut out = m
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("fault")
        .to_string();
    for (k, v) in m.iter().filter(|(k, _)| k.as_str() != "kind") {
        out.push(' ');
        out.push_str(k);
        out.push(' ');
        out.push_str(&words(v));
    }
    out
}

/// A value as a label shows it: a string without its quotes, anything
/// else as JSON.
fn words(v: &Value) -> String {
    match v {
        Value::String(t) => t.clone(),
        other => other.to_string(),
    }
}

/// Escapes `&`, `<`, `>` and `"` for HTML text and double-quoted attributes.
pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const PAGE: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{TITLE}}</title>
<script>
window.__errors = [];
window.onerror = function (msg, src, line, col) {
  window.__errors.push(String(msg) + " @" + line + ":" + col);
  document.documentElement.setAttribute("data-errors", window.__errors.join(" | "));
  if (document.body) document.body.setAttribute("data-errors", window.__errors.join(" | "));
};
</script>
<style>
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 16px; color: #222; background: #fafafa; }
h1 { font-size: 18px; margin: 0 0 8px; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; font-weight: 600; color: #fff; }
.verdict.linearizable { background: #2e7d32; }
.verdict.not-linearizable { background: #c62828; }
.verdict.unknown { background: #ef6c00; }
pre { background: #fff; border: 1px solid #ddd; padding: 8px; overflow-x: auto; font-size: 12px; max-height: 260px; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
.sw { display: inline-block; width: 18px; height: 10px; vertical-align: middle; margin-right: 4px; border-radius: 2px; }
#wrap { overflow-x: auto; border: 1px solid #ddd; background: #fff; margin-top: 8px; }
#timeline { position: relative; }
.row { position: relative; height: 26px; border-bottom: 1px solid #eee; }
.row.event { background: #f3f0ff; }
.label { position: sticky; left: 0; z-index: 3; display: inline-block; width: 90px; height: 26px; line-height: 26px;
  padding-left: 6px; background: #f5f5f5; border-right: 1px solid #ddd; font-size: 12px; font-weight: 600; }
.op { position: absolute; top: 4px; height: 18px; border-radius: 3px; font-size: 11px; line-height: 18px;
  overflow: hidden; white-space: nowrap; padding: 0 3px; box-sizing: border-box; cursor: default; z-index: 2; min-width: 4px; }
.op.ok { background: #bbdefb; border: 1px solid #64b5f6; }
.op.fail { background: #e0e0e0; border: 1px solid #bdbdbd; color: #666; }
.op.unknown { background: repeating-linear-gradient(45deg, #ffe0b2, #ffe0b2 5px, #fff3e0 5px, #fff3e0 10px); border: 1px dashed #fb8c00; }
.op.inprefix { background: #c8e6c9; border-color: #66bb6a; }
.op.failing { background: #ffcdd2; border: 2px solid #c62828; font-weight: 600; min-width: 90px; z-index: 4; box-shadow: 0 0 0 3px rgba(198,40,40,.25); }
.op.eventop { background: #d1c4e9; border: 1px solid #7e57c2; }
.op.dim, .tail.dim { opacity: 0.15; }
.tail { position: absolute; top: 12px; height: 0; border-top: 2px dotted #fb8c00; z-index: 1; opacity: 0.6; }
.region { position: absolute; top: 0; bottom: 0; background: rgba(198, 40, 40, 0.10); border-left: 2px solid #c62828;
  border-right: 2px solid #c62828; z-index: 1; pointer-events: none; }
.fault-band { position: absolute; top: 0; bottom: 0; background: rgba(126, 87, 194, 0.09);
  border-left: 1px dashed #7e57c2; z-index: 0; pointer-events: none; }
.fault-band.open-ended { background: linear-gradient(90deg, rgba(126, 87, 194, 0.09), rgba(126, 87, 194, 0.02)); }
.row.faults { background: #faf8ff; }
.fault-tag { position: absolute; height: 12px; font-size: 10px; line-height: 12px; color: #4527a0; border-radius: 2px;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; z-index: 2; background: #ede7f6; padding: 0 3px; cursor: default; }
.controls { margin: 8px 0; font-size: 13px; }
ol.lin { font-size: 12px; columns: 3; }
</style>
</head>
<body>
<h1>{{TITLE}}</h1>
<div id="summary"></div>
<div class="legend">
  <span><i class="sw" style="background:#bbdefb;border:1px solid #64b5f6"></i>ok</span>
  <span><i class="sw" style="background:#c8e6c9;border:1px solid #66bb6a"></i>in longest linearizable prefix</span>
  <span><i class="sw" style="background:#ffcdd2;border:2px solid #c62828"></i>cannot be placed after the prefix</span>
  <span><i class="sw" style="background:repeating-linear-gradient(45deg,#ffe0b2,#ffe0b2 3px,#fff3e0 3px,#fff3e0 6px);border:1px dashed #fb8c00"></i>unknown outcome (info / no completion)</span>
  <span><i class="sw" style="background:#e0e0e0"></i>failed (no effect)</span>
  <span><i class="sw" style="background:#d1c4e9"></i>nemesis / event</span>
  <span><i class="sw" style="background:rgba(198,40,40,.15);border:1px solid #c62828"></i>failing region</span>
  <span><i class="sw" style="background:rgba(126,87,194,.18);border-left:1px dashed #7e57c2"></i>a fault active (from the nemesis's start to its end)</span>
</div>
<div class="controls" id="controls"></div>
<div id="wrap"><div id="timeline"></div></div>
<div id="details"></div>
<script type="application/json" id="data">{{DATA}}</script>
<script>
(function () {
  var data = JSON.parse(document.getElementById("data").textContent);
  var LABEL = 96, PX = Math.max(12, Math.min(40, Math.floor(1400 / Math.max(1, data.events))));
  var width = LABEL + (data.events + 2) * PX;
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function show(v) { return v === null || v === undefined ? "nil" : JSON.stringify(v); }

  var summary = document.getElementById("summary");
  var clientOps = data.ops.filter(function (o) { return o.client; }).length;
  // No client operation: the verdict holds of nothing.
  var v = el("span", "verdict " + data.verdict, data.verdict +
    (clientOps === 0 && data.verdict === "linearizable" ? " (no client operation to check)" : ""));
  summary.appendChild(v);
  summary.appendChild(document.createTextNode("  " + clientOps + " client operations on " +
    data.partitions + (data.partitions === 1 ? " key" : " keys") + " (each checked on its own), " +
    data.events + " events" + ((data.faults || []).length ? ", " + data.faults.length +
    (data.faults.length === 1 ? " fault (shaded)" : " faults (shaded)") : "")));
  if (data.explanation) summary.appendChild(el("pre", "", data.explanation));
  if (data.unknown_reason) summary.appendChild(el("pre", "", "unknown: " + data.unknown_reason));

  // Rows: clients by number, then named processes (nemesis, nodes).
  var procs = {};
  data.ops.forEach(function (o) { (procs[o.process] = procs[o.process] || { client: o.client, ops: [] }).ops.push(o); });
  var names = Object.keys(procs).sort(function (a, b) {
    var ca = procs[a].client, cb = procs[b].client;
    if (ca !== cb) return ca ? -1 : 1;
    if (ca) return Number(a) - Number(b);
    return a < b ? -1 : a > b ? 1 : 0;
  });

  // Key filter (kv histories).
  var keys = {};
  data.ops.forEach(function (o) { if (o.key !== null && o.key !== undefined) keys[o.key] = true; });
  var keyList = Object.keys(keys).sort();
  var select = null;
  if (keyList.length > 1) {
    var controls = document.getElementById("controls");
    controls.appendChild(document.createTextNode("Key: "));
    select = el("select");
    select.appendChild(new Option("all keys", ""));
    keyList.forEach(function (k) { select.appendChild(new Option(k, k)); });
    if (data.failing_key !== null && data.failing_key !== undefined) select.value = data.failing_key;
    controls.appendChild(select);
  }

  var tl = document.getElementById("timeline");
  tl.style.width = width + "px";
  var opEls = [];
  names.forEach(function (name) {
    var p = procs[name];
    var row = el("div", "row" + (p.client ? "" : " event"));
    row.appendChild(el("span", "label", (p.client ? "process " : "") + name));
    p.ops.forEach(function (o) {
      var end = (o.end === null || o.end === undefined) ? data.events : o.end;
      var d = el("div", "op");
      var cls = o.client ? o.outcome : "eventop";
      if (o.client && o.order && !o.failing && data.verdict !== "linearizable") cls += " inprefix";
      if (o.failing) cls += " failing";
      d.className = "op " + cls;
      d.style.left = (LABEL + o.start * PX) + "px";
      d.style.width = Math.max(6, (end - o.start + (o.lone ? 1 : 0)) * PX) + "px";
      var txt = (o.order ? "[" + o.order + "] " : "") + o.f + (o.key !== null && o.key !== undefined ? " " + o.key : "") +
        (o.value === null ? "" : " " + show(o.value)) + (o.outcome === "ok" && o.client ? " \u2192 " + show(o.result) : "");
      d.textContent = txt;
      d.title = "#" + o.index + " process " + o.process + ": " + o.f +
        (o.key !== null && o.key !== undefined ? " key " + o.key : "") + " " + show(o.value) +
        " \u2192 " + o.outcome + (o.outcome === "ok" ? " " + show(o.result) : "") +
        (o.time !== null && o.time !== undefined ? "\ninvoked at " + o.time + " ns" : "") +
        (o.order ? "\n" + (data.verdict === "linearizable" ? "linearization" : "prefix") + " position " + o.order : "") +
        (o.failing ? "\ncannot be placed after the longest linearizable prefix" : "");
      d.setAttribute("data-key", o.key === null || o.key === undefined ? "" : o.key);
      opEls.push(d);
      row.appendChild(d);
      if (o.client && o.outcome === "unknown" && o.end !== null && o.end !== undefined && o.end < data.events) {
        // The client gave up at `end`, but the op may still take effect later.
        var t = el("div", "tail");
        t.style.left = (LABEL + o.end * PX) + "px";
        t.style.width = ((data.events - o.end) * PX) + "px";
        t.title = "#" + o.index + " may still take effect any time after the client gave up";
        t.setAttribute("data-key", d.getAttribute("data-key"));
        opEls.push(t);
        row.appendChild(t);
      }
    });
    tl.appendChild(row);
  });

  // Fault bands, behind the operations: each from the nemesis event that
  // began the fault to the one that ended it (or the end of the history),
  // its label in a "faults" row on top (labels that would overlap go on
  // further lines).
  var faults = data.faults || [];
  if (faults.length) {
    var frow = el("div", "row faults");
    frow.appendChild(el("span", "label", "faults"));
    var tagEnds = [];
    faults.forEach(function (b) {
      var open = b.end === null || b.end === undefined;
      var end = open ? data.events : b.end;
      var band = el("div", "fault-band" + (open ? " open-ended" : ""));
      band.style.left = (LABEL + b.start * PX) + "px";
      band.style.width = Math.max(2, (end - b.start + 1) * PX) + "px";
      band.setAttribute("data-fault", b.name);
      band.title = b.label;
      tl.appendChild(band);
      var span = Math.max(40, (end - b.start + 1) * PX);
      var line = 0;
      while (tagEnds[line] !== undefined && tagEnds[line] > b.start * PX) line++;
      tagEnds[line] = b.start * PX + Math.min(7 * b.label.length + 6, span) + 2;
      var tag = el("div", "fault-tag", b.label);
      tag.style.left = (LABEL + b.start * PX) + "px";
      tag.style.top = (2 + line * 13) + "px";
      tag.style.maxWidth = span + "px";
      tag.title = "#" + b.index + " " + b.label + (open ? "\nstill active when the history ends" : "");
      frow.appendChild(tag);
    });
    frow.style.height = (4 + 13 * tagEnds.length) + "px";
    frow.firstChild.style.height = frow.style.height;
    tl.insertBefore(frow, tl.firstChild);
  }

  // Failing region: from the first invocation to the first completion
  // among the operations that cannot be placed.
  var failing = data.ops.filter(function (o) { return o.failing; });
  if (failing.length) {
    var s = Math.min.apply(null, failing.map(function (o) { return o.start; }));
    var e = Math.min.apply(null, failing.map(function (o) { return o.end === null ? data.events : o.end; }));
    var r = el("div", "region");
    r.style.left = (LABEL + s * PX) + "px";
    r.style.width = Math.max(4, (e - s + 1) * PX) + "px";
    tl.appendChild(r);
    setTimeout(function () { document.getElementById("wrap").scrollLeft = Math.max(0, s * PX - 200); }, 0);
  }

  function applyFilter() {
    var k = select ? select.value : "";
    opEls.forEach(function (d) {
      d.classList.toggle("dim", k !== "" && d.getAttribute("data-key") !== k);
    });
  }
  if (select) { select.onchange = applyFilter; applyFilter(); }

  // Linearization order (valid) or longest prefix (invalid), as a list.
  var byIndex = {};
  data.ops.forEach(function (o) { byIndex[o.index] = o; });
  var details = document.getElementById("details");
  var list = data.verdict === "linearizable" ? data.linearization : data.prefix;
  if (list && list.length) {
    details.appendChild(el("h2", "", data.verdict === "linearizable" ? "Linearization order" :
      "Longest linearizable prefix" + (data.failing_key !== null ? " (key " + data.failing_key + ")" : "")));
    var ol = el("ol", "lin");
    list.forEach(function (i) {
      var o = byIndex[i];
      if (!o) return;
      ol.appendChild(el("li", "", "#" + o.index + " p" + o.process + " " + o.f +
        (o.key !== null && o.key !== undefined ? " " + o.key : "") + " " + show(o.value) +
        (o.outcome === "ok" ? " \u2192 " + show(o.result) : " (" + o.outcome + ")")));
    });
    details.appendChild(ol);
  }
  document.body.setAttribute("data-rendered", "ok");
})();
</script>
</body>
</html>
"##;

#[cfg(test)]
mod tests {
    use super::*;

    fn jsonl(lines: &[&str]) -> History {
        History::from_jsonl(&lines.join("\n")).expect("test history parses")
    }

    fn spans(h: &History) -> Vec<(String, usize, Option<usize>)> {
        fault_bands(h)
            .into_iter()
            .map(|b| (b.name, b.start, b.end))
            .collect()
    }

    #[test]
    fn the_simulators_faults_pair_by_id_and_heal_all_ends_the_rest() {
        let h = jsonl(&[
            r#"{"process":"nemesis","type":"info","f":"start","value":{"id":0,"fault":{"kind":"pause","node":3}}}"#,
            r#"{"process":"nemesis","type":"info","f":"start","value":{"id":1,"fault":{"kind":"partition","sides":[[1],[2,3]]}}}"#,
            r#"{"process":0,"type":"invoke","f":"read","value":null}"#,
            r#"{"process":"nemesis","type":"info","f":"end","value":{"id":0,"fault":{"kind":"pause","node":3}}}"#,
            r#"{"process":0,"type":"ok","f":"read","value":null}"#,
            r#"{"process":"nemesis","type":"info","f":"start","value":{"id":2,"fault":{"kind":"crash","node":1}}}"#,
            r#"{"process":"nemesis","type":"info","f":"heal-all","value":null}"#,
            r#"{"process":"nemesis","type":"info","f":"start","value":{"id":3,"fault":{"kind":"clock","node":2}}}"#,
        ]);
        assert_eq!(
            spans(&h),
            vec![
                ("pause".into(), 0, Some(3)),
                ("partition".into(), 1, Some(6)),
                ("crash".into(), 5, Some(6)),
                ("clock".into(), 7, None),
            ]
        );
        assert_eq!(fault_bands(&h)[0].label, "pause node 3");
        assert_eq!(fault_bands(&h)[1].label, "partition sides [[1],[2,3]]");
    }

    #[test]
    fn a_fault_in_parts_pairs_each_part_with_its_own_end() {
        // A leader churn (id 4) and the cut it triggered (part 1), as the
        // harness's nemesis records them: the part ends before the fault.
        let h = jsonl(&[
            r#"{"process":"nemesis","type":"info","f":"start","value":{"id":4,"fault":{"kind":"leader-churn"}}}"#,
            r#"{"process":"nemesis","type":"info","f":"start","value":{"id":4,"part":1,"trigger":2,"fault":{"kind":"isolate","node":2}}}"#,
            r#"{"process":"nemesis","type":"info","f":"end","value":{"id":4,"part":1,"fault":{"kind":"isolate","node":2}}}"#,
            r#"{"process":"nemesis","type":"info","f":"end","value":{"id":4,"fault":{"kind":"leader-churn"}}}"#,
        ]);
        assert_eq!(
            spans(&h),
            vec![
                ("leader-churn".into(), 0, Some(3)),
                ("isolate".into(), 1, Some(2)),
            ]
        );
    }

    #[test]
    fn jepsens_start_and_stop_pairs_as_nemesis_intervals_pairs_them() {
        // :start :start :start :start :stop :stop: two actions begun, both
        // ended by the one stop action (jepsen.util/nemesis-intervals).
        let h = jsonl(&[
            r#"{"process":"nemesis","type":"info","f":"start","value":null}"#,
            r#"{"process":"nemesis","type":"info","f":"start","value":"Cut off {n1 #{n2}}"}"#,
            r#"{"process":0,"type":"invoke","f":"read","value":null}"#,
            r#"{"process":"nemesis","type":"info","f":"start","value":null}"#,
            r#"{"process":"nemesis","type":"info","f":"start","value":null}"#,
            r#"{"process":0,"type":"ok","f":"read","value":null}"#,
            r#"{"process":"nemesis","type":"info","f":"stop","value":null}"#,
            r#"{"process":"nemesis","type":"info","f":"stop","value":"fully connected"}"#,
            r#"{"process":"nemesis","type":"info","f":"start","value":null}"#,
        ]);
        assert_eq!(
            spans(&h),
            vec![
                ("nemesis".into(), 0, Some(7)),
                ("nemesis".into(), 3, Some(7)),
                ("nemesis".into(), 8, None),
            ]
        );
        assert_eq!(fault_bands(&h)[0].label, "start Cut off {n1 #{n2}}");
    }

    #[test]
    fn a_kill_ends_at_the_start_that_restarts_the_process() {
        // jepsen.nemesis.combined's db package: :kill, then :start. Without
        // a :stop, :start begins no default region.
        let h = jsonl(&[
            r#"{"process":"nemesis","type":"info","f":"kill","value":null}"#,
            r#"{"process":"nemesis","type":"info","f":"kill","value":{"n1":"killed"}}"#,
            r#"{"process":"nemesis","type":"info","f":"pause","value":null}"#,
            r#"{"process":"nemesis","type":"info","f":"pause","value":null}"#,
            r#"{"process":"nemesis","type":"info","f":"start","value":null}"#,
            r#"{"process":"nemesis","type":"info","f":"start","value":null}"#,
            r#"{"process":"nemesis","type":"info","f":"resume","value":null}"#,
            r#"{"process":"nemesis","type":"info","f":"resume","value":null}"#,
            r#"{"process":"nemesis","type":"info","f":"start-partition","value":null}"#,
            r#"{"process":"nemesis","type":"info","f":"start-partition","value":"majority"}"#,
        ]);
        assert_eq!(
            spans(&h),
            vec![
                ("kill".into(), 0, Some(5)),
                ("pause".into(), 2, Some(7)),
                ("partition".into(), 8, None),
            ]
        );
        assert_eq!(fault_bands(&h)[0].label, r#"kill {"n1":"killed"}"#);
        assert_eq!(fault_bands(&h)[2].label, "start-partition majority");
    }

    #[test]
    fn no_nemesis_no_band() {
        let h = jsonl(&[
            r#"{"process":0,"type":"invoke","f":"start","value":null}"#,
            r#"{"process":0,"type":"ok","f":"start","value":null}"#,
            r#"{"process":"n1","type":"info","f":"start","value":{"id":0}}"#,
        ]);
        assert!(fault_bands(&h).is_empty());
    }

    #[test]
    fn the_page_carries_the_bands_in_event_ranks() {
        let h = jsonl(&[
            r#"{"process":0,"type":"invoke","f":"write","value":1,"time":10}"#,
            r#"{"process":"nemesis","type":"info","f":"start","value":{"id":7,"fault":{"kind":"loss"}},"time":20}"#,
            r#"{"process":0,"type":"ok","f":"write","value":1,"time":30}"#,
            r#"{"process":"nemesis","type":"info","f":"end","value":{"id":7},"time":40}"#,
        ]);
        let result =
            crate::linear::check(&h, crate::model::ModelKind::Register, &Default::default());
        let page = html(&h, &result, "t");
        assert!(
            page.contains(
                r#""faults":[{"end":3,"index":1,"label":"loss","name":"loss","start":1}]"#
            ),
            "{}",
            &page[page.find("\"faults\"").unwrap_or(0)..][..200.min(page.len())]
        );
    }
}
