//! The page of a run for any scenario: the failed checks with their
//! messages, what the clients did (per operation: how many were
//! acknowledged, refused, left unknown) and the faults the nemesis played,
//! with their times. It is what a failing run of a scenario without a
//! report of its own writes as `report.html` (the default of
//! [`Scenario::report`](crate::scenario::Scenario::report) when there is no
//! linearizability result), and a scenario may put its own sections on
//! top of it.

use std::collections::BTreeMap;

use checker::history::{History, OpType, Process};

/// A check's failures listed in the verdict banner and on the terminal;
/// the rest are counted (the page below and `failure.txt` list every one).
pub const SHOWN_PER_CHECK: usize = 10;

/// HTML-escaped text.
fn esc(t: &str) -> String {
    checker::report::escape_html(t)
}

/// The page: `failures` as (check, message) in red (or that every check
/// passed), `about` (what ran and what was checked), the clients'
/// operations and the faults of `history`.
pub fn failures_page(
    failures: &[(&str, &str)],
    history: &History,
    title: &str,
    about: &str,
) -> String {
    let ops = history.ops.len();
    // A scenario's one-line `about` has no full stop.
    let stop = if about.trim_end().ends_with('.') {
        ""
    } else {
        "."
    };
    let mut body = String::new();
    for (check, message) in failures {
        body += &format!(
            "<div class=\"failure\"><h3>[{}]</h3><pre>{}</pre></div>\n",
            esc(check),
            esc(message)
        );
    }
    if failures.is_empty() {
        body += "<p>Every check passed.</p>";
    }
    body += &ops_table(history);
    body += &faults_table(history);
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;margin:1.5em}}pre{{white-space:pre-wrap;background:#f6f6f6;padding:.6em}}\
         .failure h3{{color:#b00020;margin-bottom:.2em}}\
         table.faults,table.ops{{border-collapse:collapse}}\
         table.faults td,table.faults th,table.ops td,table.ops th{{border:1px solid #ccc;padding:.2em .5em;text-align:left}}\
         table.ops td.n{{text-align:right}}</style></head>\
         <body data-rendered=\"ok\"><h1>{t}</h1>\
         <p>{about}{stop} {ops} events in the history.</p>{body}</body></html>",
        t = esc(title),
        about = esc(about)
    )
}

/// `page` with the run's verdict on top: every failed check (`failures`:
/// check, message) in red with its message (a page drawn by one check,
/// e.g. the linearizability timeline, would otherwise show that check's
/// verdict only, green while the Raft check failed), or a green line when
/// the run passed. `lin`: the page below is the linearizability check's.
pub fn with_verdict(page: &str, failures: &[(&str, &str)], lin: bool) -> String {
    let banner = if failures.is_empty() {
        "<div id=\"sim-verdict\" style=\"background:#1b7f3b;color:#fff;padding:10px 16px;font:15px sans-serif\">PASS: every check of this run held</div>".to_string()
    } else {
        // At most SHOWN_PER_CHECK per check: a check with hundreds of violations
        // would push the page below out of sight; the page lists them all.
        let mut shown: BTreeMap<&str, usize> = BTreeMap::new();
        let mut items: Vec<String> = Vec::new();
        for (check, message) in failures {
            let n = shown.entry(check).or_default();
            *n += 1;
            if *n <= SHOWN_PER_CHECK {
                items.push(format!(
                    "<li><b>[{}]</b> {}</li>",
                    esc(check),
                    esc(message).replace('\n', "<br>")
                ));
            }
        }
        for (check, n) in shown.iter().filter(|(_, n)| **n > SHOWN_PER_CHECK) {
            items.push(format!(
                "<li><b>[{}]</b> ... and {} more (see below and failure.txt)</li>",
                esc(check),
                n - SHOWN_PER_CHECK
            ));
        }
        format!(
            "<div id=\"sim-verdict\" style=\"background:#b00020;color:#fff;padding:10px 16px;font:15px sans-serif\"><div style=\"font-size:18px;font-weight:bold\">FAILED: {}</div><ul style=\"margin:6px 0 0 0;padding-left:20px\">{}</ul><div style=\"margin-top:6px;opacity:.85\">Below, the scenario's report: its sections on the failed checks, if it has any, then the page of the {} check.</div></div>",
            esc(failures[0].0),
            items.join(""),
            if lin { "linearizability" } else { "scenario's" }
        )
    };
    match page
        .find("<body")
        .and_then(|i| page[i..].find('>').map(|j| i + j + 1))
    {
        Some(at) => format!("{}{banner}{}", &page[..at], &page[at..]),
        None => format!("{banner}{page}"),
    }
}

/// The clients' operations by name: how many were invoked, acknowledged
/// (`ok`), certainly not done (`fail`) and of unknown outcome (`info`, or
/// never completed).
pub fn ops_table(h: &History) -> String {
    // f -> [invoked, ok, fail, info]
    let mut counts: BTreeMap<&str, [u64; 4]> = BTreeMap::new();
    for op in h
        .ops
        .iter()
        .filter(|o| matches!(o.process, Process::Client(_)))
    {
        let c = counts.entry(op.f.as_str()).or_default();
        let i = match op.kind {
            OpType::Invoke => 0,
            OpType::Ok => 1,
            OpType::Fail => 2,
            OpType::Info => 3,
        };
        c[i] += 1;
    }
    if counts.is_empty() {
        return String::new();
    }
    let mut rows = String::new();
    for (f, [inv, ok, fail, info]) in counts {
        // An invocation with no completion is as unknown as an `info`.
        let open = inv.saturating_sub(ok + fail + info);
        rows += &format!(
            "<tr><td><code>{}</code></td><td class=\"n\">{inv}</td><td class=\"n\">{ok}</td><td class=\"n\">{fail}</td><td class=\"n\">{}</td></tr>",
            esc(f),
            info + open
        );
    }
    format!(
        "<h2>Client operations</h2><table class=\"ops\"><tr><th>operation</th><th>invoked</th>\
         <th>ok</th><th>fail (not done)</th><th>unknown outcome</th></tr>{rows}</table>"
    )
}

/// The faults the nemesis played, each with when it started and ended
/// (the history's time, in seconds), so a failure's time can be read
/// against them.
pub fn faults_table(h: &History) -> String {
    let secs = |t: Option<u64>| t.map_or("?".to_string(), |t| format!("{:.3}", t as f64 / 1e9));
    // A fault in parts (e.g. a leader churn, a crash of a voter) records a
    // start and an end per part under one id.
    let mut ends: BTreeMap<(u64, String), Option<u64>> = BTreeMap::new();
    let mut starts = Vec::new();
    for op in &h.ops {
        if !matches!(&op.process, Process::Named(n) if n == "nemesis") {
            continue;
        }
        let part = op.value["part"].to_string();
        match (op.f.as_str(), op.value["id"].as_u64()) {
            ("start", Some(id)) => starts.push((id, part, op.time, op.value["fault"].clone())),
            ("end", Some(id)) => {
                ends.insert((id, part), op.time);
            }
            _ => {}
        }
    }
    if starts.is_empty() {
        return "<h2>Faults</h2><p>No fault was played.</p>".to_string();
    }
    let mut rows = String::new();
    for (id, part, at, fault) in starts {
        let mut kind = fault["kind"].as_str().unwrap_or("?").to_string();
        if part != "null" {
            kind += &format!(" (part {part})");
        }
        let mut what = fault.clone();
        if let Some(m) = what.as_object_mut() {
            m.remove("kind");
        }
        rows += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            secs(at),
            ends.get(&(id, part)).map_or("-".to_string(), |t| secs(*t)),
            esc(&kind),
            esc(&what.to_string())
        );
    }
    format!(
        "<h2>Faults</h2><table class=\"faults\"><tr><th>start (s)</th><th>end (s)</th><th>kind</th><th>target</th></tr>{rows}</table>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(lines: &str) -> History {
        History::from_jsonl(lines).unwrap()
    }

    #[test]
    fn the_page_names_each_failed_check_counts_the_outcomes_and_times_the_faults() {
        let h = history(
            r#"{"process":0,"type":"invoke","f":"write","value":1,"time":1000000000}
{"process":"nemesis","type":"info","f":"start","value":{"id":1,"fault":{"kind":"crash","host":2}},"time":1500000000}
{"process":0,"type":"info","f":"write","value":1,"time":2000000000}
{"process":1,"type":"invoke","f":"read","value":null,"time":2100000000}
{"process":1,"type":"ok","f":"read","value":1,"time":2200000000}
{"process":2,"type":"invoke","f":"write","value":2,"time":2300000000}
{"process":"nemesis","type":"info","f":"end","value":{"id":1},"time":3000000000}
"#,
        );
        let page = failures_page(&[("counter", "read 1 <after> 2")], &h, "t", "A test.");
        assert!(
            page.contains("<h3>[counter]</h3><pre>read 1 &lt;after&gt; 2</pre>"),
            "{page}"
        );
        // write: 2 invoked, none acknowledged, 1 info and 1 never completed.
        assert!(page.contains(
            "<td><code>write</code></td><td class=\"n\">2</td><td class=\"n\">0</td><td class=\"n\">0</td><td class=\"n\">2</td>"
        ), "{page}");
        assert!(
            page.contains("<td><code>read</code></td><td class=\"n\">1</td><td class=\"n\">1</td>"),
            "{page}"
        );
        assert!(
            page.contains("<td>1.500</td><td>3.000</td><td>crash</td>"),
            "{page}"
        );
        assert!(page.contains("A test. 7 events in the history."), "{page}");
        let many: Vec<(&str, String)> = (0..12).map(|i| ("vclock", format!("v{i}"))).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(c, m)| (*c, m.as_str())).collect();
        let banner = with_verdict("<body></body>", &many, false);
        assert!(
            banner.contains("v9</li>") && !banner.contains("v10</li>"),
            "{banner}"
        );
        assert!(banner.contains("[vclock]</b> ... and 2 more"), "{banner}");
        let no_stop = failures_page(&[], &h, "t", "a test");
        assert!(
            no_stop.contains("a test. 7 events in the history."),
            "{no_stop}"
        );
        let passed = failures_page(&[], &history(""), "t", "A test.");
        assert!(passed.contains("Every check passed.") && passed.contains("No fault was played."));
    }
}
