//! The audit report as an installer keeps it with the install: JSON for
//! the back office, and one self-contained HTML page (no scripts, no
//! downloads) with the figures, the verdict and a timeline.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::audit::{Kind, Report};

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
#[error("audit report {path}: {source}")]
pub struct ReportError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Write `report.json` and `report.html` into `dir`; returns their paths.
pub fn write(report: &Report, dir: &Path) -> Result<(PathBuf, PathBuf), ReportError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let json = dir.join("report.json");
    let text = serde_json::to_string_pretty(report).unwrap_or_default();
    std::fs::write(&json, text + "\n").map_err(err(&json))?;
    let html = dir.join("report.html");
    std::fs::write(&html, to_html(report)).map_err(err(&html))?;
    Ok((json, html))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn pct(a: Option<f64>) -> String {
    a.map_or("–".into(), |a| format!("{:.1} %", a * 100.0))
}

/// The report as one HTML page.
pub fn to_html(r: &Report) -> String {
    let mut h = String::new();
    let verdict_class = if r.pass { "pass" } else { "fail" };
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Counting audit: {cam}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:1.5em;max-width:60em;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #bbb;padding:.3em .7em;text-align:right}}\
         th{{background:#eee}}td:first-child,th:first-child{{text-align:left}}\
         .pass{{color:#0a6b2d}}.fail{{color:#b3261e}}.verdict{{font-size:1.3em;font-weight:bold}}\
         .missed{{color:#b3261e}}.extra{{color:#a15c00}}.matched{{color:#555}}</style></head><body>\
         <h1>Counting audit: {cam}</h1>\
         <p>Window {start} to {end} ({dur:.0} s){line}. A tap and a crossing match within {tol:.1} s; \
         accuracy = 1 − (missed + extra) / tapped.</p>\
         <p class=\"verdict {verdict_class}\">{verdict}</p>\
         <table><tr><th>direction</th><th>tapped</th><th>counted</th><th>matched</th>\
         <th>missed</th><th>extra</th><th>accuracy</th></tr>",
        cam = esc(&r.camera),
        start = esc(&r.start),
        end = esc(&r.end),
        dur = r.duration_s,
        line = r
            .line
            .as_deref()
            .map(|l| format!(", line {}", esc(l)))
            .unwrap_or_default(),
        tol = r.tolerance_s,
        verdict = esc(&r.verdict),
    );
    for d in &r.directions {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            d.direction.as_str(),
            d.truth,
            d.counted,
            d.matched,
            d.missed,
            d.extra,
            pct(d.accuracy)
        );
    }
    let _ = write!(
        h,
        "<tr><th>in and out</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        r.directions.iter().map(|d| d.truth).sum::<usize>(),
        r.directions.iter().map(|d| d.counted).sum::<usize>(),
        r.directions.iter().map(|d| d.matched).sum::<usize>(),
        r.directions.iter().map(|d| d.missed).sum::<usize>(),
        r.directions.iter().map(|d| d.extra).sum::<usize>(),
        pct(r.accuracy)
    );
    let p = &r.passers_by;
    let _ = write!(
        h,
        "<p>Passers-by tapped: {}; counted by the camera: {} ({}).</p>",
        p.truth,
        p.counted.map_or("–".into(), |c| c.to_string()),
        esc(&p.note)
    );
    h.push_str(&timeline_svg(r));
    h.push_str("<h2>Timeline</h2><table><tr><th>time (s)</th><th>direction</th><th>outcome</th><th>tapped at (s)</th><th>camera at (s)</th></tr>");
    for i in &r.timeline {
        let s = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1}"));
        let _ = write!(
            h,
            "<tr class=\"{o}\"><td>{:.1}</td><td>{}</td><td>{o}</td><td>{}</td><td>{}</td></tr>",
            i.t_s,
            i.direction.as_str(),
            s(i.tap_s),
            s(i.camera_s),
            o = i.outcome,
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

/// Taps above, the camera's crossings below, one row per direction.
fn timeline_svg(r: &Report) -> String {
    let (w, row) = (800.0, 50.0);
    let x = |t: f64| 40.0 + (t / r.duration_s.max(1.0)).clamp(0.0, 1.0) * (w - 60.0);
    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {h}\" width=\"100%\" role=\"img\" aria-label=\"timeline\" \
         style=\"max-width:{w}px;border:1px solid #ddd\">",
        h = row * 2.0 + 20.0
    );
    for (k, dir) in [Kind::In, Kind::Out].into_iter().enumerate() {
        let y = 10.0 + row * k as f64;
        let _ = write!(
            s,
            "<text x=\"4\" y=\"{}\" font-size=\"12\">{}</text><line x1=\"40\" x2=\"{}\" y1=\"{m}\" y2=\"{m}\" stroke=\"#ccc\"/>",
            y + row / 2.0 + 4.0,
            dir.as_str(),
            w - 20.0,
            m = y + row / 2.0
        );
        for i in r.timeline.iter().filter(|i| i.direction == dir) {
            let colour = match i.outcome {
                "missed" => "#b3261e",
                "extra" => "#a15c00",
                _ => "#2e7d32",
            };
            if let Some(t) = i.tap_s {
                let _ = write!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"{colour}\"><title>tapped {t:.1} s: {}</title></circle>",
                    x(t),
                    y + row / 2.0 - 10.0,
                    i.outcome
                );
            }
            if let Some(t) = i.camera_s {
                let _ = write!(
                    s,
                    "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"8\" height=\"8\" fill=\"{colour}\"><title>camera {t:.1} s: {}</title></rect>",
                    x(t) - 4.0,
                    y + row / 2.0 + 4.0,
                    i.outcome
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}
