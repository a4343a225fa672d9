//! The isolation report: one self-contained HTML page, no script and no
//! network. A verdict banner, the models ruled out, then each anomaly with
//! a drawing of its cycle (inline SVG: the transactions on a circle, each
//! edge labelled with its relation), the explanation, and the transactions
//! involved.
//!
//! Like the linearizability report, the body carries `data-rendered="ok"`
//! (here set statically, as nothing is drawn by script).

use std::fmt::Write;

use crate::history::History;
use crate::report::escape_html;

use super::{Anomaly, IsoResult, Rel};

fn color(rel: Rel) -> &'static str {
    match rel {
        Rel::Ww => "#1565c0",
        Rel::Wr => "#2e7d32",
        Rel::Rw => "#c62828",
        Rel::Process => "#6a1b9a",
        Rel::Realtime => "#ef6c00",
    }
}

/// The cycle of an anomaly as an SVG drawing.
pub fn cycle_svg(a: &Anomaly) -> String {
    let n = a.txns.len().max(1);
    let r = 50.0 + 22.0 * n as f64;
    let size = 2.0 * r + 120.0;
    let c = size / 2.0;
    let pos = |name: &str| -> (f64, f64) {
        let i = a.txns.iter().position(|t| t.name == name).unwrap_or(0);
        let ang = -std::f64::consts::FRAC_PI_2 + 2.0 * std::f64::consts::PI * i as f64 / n as f64;
        (c + r * ang.cos(), c + r * ang.sin())
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="cycle" width="{size:.0}" height="{size:.0}" viewBox="0 0 {size:.0} {size:.0}" role="img" aria-label="cycle of {}">"#,
        escape_html(&a.name)
    );
    s.push_str("<defs>");
    for rel in Rel::ALL {
        let _ = write!(
            s,
            r#"<marker id="arrow-{}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{}"/></marker>"#,
            rel.name(),
            color(rel)
        );
    }
    s.push_str("</defs>");
    for st in &a.steps {
        let (x1, y1) = pos(&st.from);
        let (x2, y2) = pos(&st.to);
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ux, uy) = (dx / len, dy / len);
        // Start and end on the node circles; bend to the left of the
        // direction so that two opposite edges do not overlap.
        let (sx, sy) = (x1 + ux * 22.0, y1 + uy * 22.0);
        let (ex, ey) = (x2 - ux * 22.0, y2 - uy * 22.0);
        let bend = if n == 2 { 0.35 } else { 0.18 } * len;
        let (mx, my) = ((sx + ex) / 2.0 + uy * bend, (sy + ey) / 2.0 - ux * bend);
        // The curve's midpoint is half the bend out; the label a bit beyond.
        let out = bend * 0.5 + 14.0;
        let (lx, ly) = ((sx + ex) / 2.0 + uy * out, (sy + ey) / 2.0 - ux * out);
        let col = color(st.rel);
        let label = match &st.key {
            Some(k) => format!("{} {}", st.rel.name(), k),
            None => st.rel.name().to_string(),
        };
        let _ = write!(
            s,
            r##"<path d="M{sx:.1},{sy:.1} Q{mx:.1},{my:.1} {ex:.1},{ey:.1}" fill="none" stroke="{col}" stroke-width="2" marker-end="url(#arrow-{})"><title>{}</title></path><text x="{lx:.1}" y="{ly:.1}" fill="{col}" font-size="12" text-anchor="middle" dominant-baseline="middle" paint-order="stroke" stroke="#fff" stroke-width="3">{}</text>"##,
            st.rel.name(),
            escape_html(&format!("{} < {}: {}", st.from, st.to, st.why)),
            escape_html(&label)
        );
    }
    for t in &a.txns {
        let (x, y) = pos(&t.name);
        let _ = write!(
            s,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="20" fill="#fff" stroke="#333" stroke-width="1.5"><title>{}</title></circle><text x="{x:.1}" y="{y:.1}" font-size="13" font-weight="600" text-anchor="middle" dominant-baseline="middle">{}</text>"##,
            escape_html(&format!(
                "#{} process {} {}: {}",
                t.index,
                t.process,
                t.status,
                t.mops.join(" ")
            )),
            escape_html(&t.name)
        );
    }
    s.push_str("</svg>");
    s
}

/// Builds the report page for an isolation check of `history`.
pub fn html(history: &History, r: &IsoResult, title: &str) -> String {
    let mut b = String::new();
    let verdict = r.verdict.name();
    let _ = write!(
        b,
        r#"<div class="banner {verdict}"><span class="verdict">{}</span> {}: {} ({} model)</div>"#,
        verdict,
        escape_html(r.consistency.name()),
        match r.verdict {
            super::IsoVerdict::Valid => "no anomaly this model forbids",
            super::IsoVerdict::Invalid => "anomalies this model forbids were found",
            super::IsoVerdict::Unknown => "the check could not be completed",
        },
        r.txn_model.name()
    );
    let _ = write!(
        b,
        "<p>{} events; {} transactions ({} ok, {} info, {} fail); {} dependency edges; {} \
         transaction(s) in {} strongly connected component(s).</p>",
        history.ops.len(),
        r.stats.txns,
        r.stats.ok,
        r.stats.info,
        r.stats.fail,
        r.stats.edges,
        r.stats.cycle_candidates,
        r.stats.components
    );
    if let Some(u) = &r.unknown_reason {
        let _ = write!(b, "<p class=\"unknown\">Unknown: {}</p>", escape_html(u));
    }
    if !r.not.is_empty() {
        let _ = write!(
            b,
            "<p>Not <b>{}</b>{}.</p>",
            escape_html(&r.not.join(", ")),
            if r.also_not.is_empty() {
                String::new()
            } else {
                format!("; also not {}", escape_html(&r.also_not.join(", ")))
            }
        );
    }
    if !r.consistent_with.is_empty() {
        let _ = write!(
            b,
            "<p>Consistent with <b>{}</b> (and the models they imply).</p>",
            escape_html(&r.consistent_with.join(", "))
        );
    }
    if !r.counts.is_empty() {
        b.push_str("<table class=\"counts\"><tr><th>anomaly</th><th>found</th><th>forbidden by the model</th></tr>");
        for (name, n) in &r.counts {
            let forbidden = r.anomalies.iter().any(|a| &a.name == name && a.prohibited);
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{n}</td><td>{}</td></tr>",
                escape_html(name),
                if forbidden { "yes" } else { "no" }
            );
        }
        b.push_str("</table>");
    }
    b.push_str(
        "<p class=\"legend\">Edges: <span style=\"color:#1565c0\">ww</span> (overwrote), \
         <span style=\"color:#2e7d32\">wr</span> (read what the other wrote), \
         <span style=\"color:#c62828\">rw</span> (read a state the other then changed), \
         <span style=\"color:#6a1b9a\">process</span>, \
         <span style=\"color:#ef6c00\">realtime</span>.</p>",
    );
    for (i, a) in r.anomalies.iter().enumerate() {
        let _ = write!(
            b,
            "<section class=\"anomaly{}\" id=\"a{i}\"><h2>{}{}</h2>",
            if a.prohibited { " forbidden" } else { "" },
            escape_html(&a.name),
            if a.prohibited {
                format!(
                    " <small>forbidden by {}</small>",
                    escape_html(r.consistency.name())
                )
            } else {
                " <small>allowed by the requested model</small>".to_string()
            }
        );
        if !a.steps.is_empty() {
            b.push_str(&cycle_svg(a));
        }
        let _ = write!(b, "<pre>{}</pre>", escape_html(&a.explanation));
        if !a.txns.is_empty() {
            b.push_str("<table><tr><th></th><th>index</th><th>process</th><th>outcome</th><th>micro-ops</th></tr>");
            for t in &a.txns {
                let _ = write!(
                    b,
                    "<tr><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                    escape_html(&t.name),
                    t.index,
                    escape_html(&t.process),
                    escape_html(&t.status),
                    escape_html(&t.mops.join(" "))
                );
            }
            b.push_str("</table>");
        }
        b.push_str("</section>");
    }
    PAGE.replace("{{TITLE}}", &escape_html(title))
        .replace("{{BODY}}", &b)
}

const PAGE: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{TITLE}}</title>
<style>
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 16px; color: #222; background: #fafafa; }
h1 { font-size: 18px; margin: 0 0 8px; }
h2 { font-size: 16px; margin: 0 0 6px; }
h2 small { font-weight: normal; color: #666; }
.banner { padding: 8px 12px; border-radius: 4px; color: #fff; font-size: 15px; margin-bottom: 8px; }
.banner.valid { background: #2e7d32; }
.banner.invalid { background: #c62828; }
.banner.unknown { background: #ef6c00; }
.banner .verdict { font-weight: 700; text-transform: uppercase; margin-right: 8px; }
section.anomaly { background: #fff; border: 1px solid #ddd; border-left: 4px solid #999; padding: 10px; margin: 12px 0; }
section.anomaly.forbidden { border-left-color: #c62828; }
pre { background: #f6f6f6; border: 1px solid #e0e0e0; padding: 8px; overflow-x: auto; font-size: 12px; white-space: pre-wrap; }
table { border-collapse: collapse; font-size: 12px; margin: 6px 0; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top; }
svg.cycle { display: block; margin: 4px 0; }
.unknown { color: #ef6c00; font-weight: 600; }
</style>
</head>
<body data-rendered="ok">
<h1>{{TITLE}}</h1>
{{BODY}}
</body>
</html>
"##;
