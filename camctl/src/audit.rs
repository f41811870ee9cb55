//! The accuracy audit of an install (`../shared/notes/installer.md`): a
//! person watches the door over a window and taps each entry, exit and
//! passer-by; the camera's crossing events over the same window are
//! matched to the taps in time, per direction, and
//! accuracy = 1 − (missed + extra) / true, so a missed entry and an extra
//! one are two errors, never zero. Pure: taps and events in, a report out
//! (`report` renders it as JSON and HTML).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;

/// What the installer taps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    In,
    Out,
    Passer,
}

impl Kind {
    pub fn parse(word: &str) -> Option<Self> {
        match word.to_ascii_lowercase().as_str() {
            "in" | "i" => Some(Self::In),
            "out" | "o" => Some(Self::Out),
            "passer" | "passer-by" | "p" => Some(Self::Passer),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
            Self::Passer => "passer",
        }
    }
}

/// One tap of the installer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tap {
    pub t_us: u64,
    pub kind: Kind,
}

/// A time in a tally file: absolute, or seconds after the audit's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TallyTime {
    At(u64),
    After(f64),
}

impl TallyTime {
    fn resolve(self, start_us: u64) -> u64 {
        match self {
            Self::At(t) => t,
            Self::After(s) => start_us + (s * 1e6).round() as u64,
        }
    }
}

/// A tally file as written: `kind time` lines (`in`, `out`, `passer`,
/// `start`, `end`), times in RFC 3339 or `+seconds` from the start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TallyFile {
    pub start: Option<TallyTime>,
    pub end: Option<TallyTime>,
    pub taps: Vec<(Kind, TallyTime)>,
}

/// Why a tally file was refused; names the file and line.
#[derive(Debug, thiserror::Error)]
pub enum TallyError {
    #[error("tally file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tally file {path}, line {line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("tally file {path}: {reason}")]
    Window { path: PathBuf, reason: String },
}

impl TallyFile {
    pub fn read(path: &Path) -> Result<Self, TallyError> {
        let text = std::fs::read_to_string(path).map_err(|source| TallyError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, reason)| TallyError::Line {
            path: path.into(),
            line,
            reason,
        })
    }

    /// Parse the text; an error carries its line number (from 1).
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut tally = Self::default();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fail = |reason: String| (n + 1, reason);
            let mut words = line
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|w| !w.is_empty());
            let (Some(word), Some(time), None) = (words.next(), words.next(), words.next()) else {
                return Err(fail(format!(
                    "{line:?}: expected a kind and a time, as in \"in +12.5\" or \"out 2026-12-05T10:00:12Z\""
                )));
            };
            let time = parse_time(time).map_err(&fail)?;
            match word {
                "start" => tally.start = Some(time),
                "end" => tally.end = Some(time),
                w => match Kind::parse(w) {
                    Some(k) => tally.taps.push((k, time)),
                    None => {
                        return Err(fail(format!(
                            "unknown kind {w:?} (expected in, out, passer, start or end)"
                        )));
                    }
                },
            }
        }
        Ok(tally)
    }

    /// The taps and window, relative times counted from `start_us` (the
    /// file's own start when it has an absolute one).
    pub fn resolve(&self, start_us: u64, end_us: u64) -> (u64, u64, Vec<Tap>) {
        let start = self.start.map_or(start_us, |s| s.resolve(start_us));
        let end = self.end.map_or(end_us, |e| e.resolve(start));
        let mut taps: Vec<Tap> = self
            .taps
            .iter()
            .map(|&(kind, t)| Tap {
                t_us: t.resolve(start),
                kind,
            })
            .collect();
        taps.sort_by_key(|t| t.t_us);
        (start, end, taps)
    }

    /// The window when the file gives it in absolute times (an audit of
    /// recorded events).
    pub fn absolute_window(&self, path: &Path) -> Result<(u64, u64), TallyError> {
        match (self.start, self.end) {
            (Some(TallyTime::At(s)), Some(e)) => {
                let e = e.resolve(s);
                if e <= s {
                    return Err(TallyError::Window {
                        path: path.into(),
                        reason: "the end is not after the start".into(),
                    });
                }
                Ok((s, e))
            }
            _ => Err(TallyError::Window {
                path: path.into(),
                reason: "an audit of recorded events needs \"start <RFC 3339 time>\" and \
                         \"end <time>\" lines"
                    .into(),
            }),
        }
    }
}

fn parse_time(s: &str) -> Result<TallyTime, String> {
    if let Some(rel) = s.strip_prefix('+') {
        return rel
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(TallyTime::After)
            .ok_or_else(|| format!("{s:?}: not a number of seconds after the start"));
    }
    parse_rfc3339(s)
        .map(TallyTime::At)
        .ok_or_else(|| format!("{s:?}: not an RFC 3339 time or +seconds"))
}

/// µs since the epoch of an RFC 3339 time.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(s.trim_end_matches('Z')).ok()?;
    Some(t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_micros() as u64)
}

pub fn rfc3339(t_us: u64) -> String {
    humantime::format_rfc3339_millis(SystemTime::UNIX_EPOCH + Duration::from_micros(t_us))
        .to_string()
}

/// What the camera published over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CameraCounts {
    /// Crossings: time, line, direction (`In` or `Out`).
    pub crossings: Vec<(u64, String, Kind)>,
    /// Closed bins: start, end, passers-by.
    pub bins: Vec<(u64, u64, u64)>,
}

impl CameraCounts {
    /// Take one of the camera's records (an event or a bin, as published);
    /// anything else is ignored. Returns whether it was used.
    pub fn add_record(&mut self, v: &Value) -> bool {
        match (v["type"].as_str(), v["event"].as_str()) {
            (Some("event"), Some("crossing")) => {
                let (Some(t), Some(line), Some(dir)) = (
                    v["time"].as_str().and_then(parse_rfc3339),
                    v["line"].as_str(),
                    v["direction"].as_str().and_then(Kind::parse),
                ) else {
                    return false;
                };
                self.crossings.push((t, line.to_string(), dir));
                true
            }
            (Some("bin"), _) => {
                let (Some(s), Some(e), Some(p)) = (
                    v["start"].as_str().and_then(parse_rfc3339),
                    v["end"].as_str().and_then(parse_rfc3339),
                    v["passers_by"].as_u64(),
                ) else {
                    return false;
                };
                self.bins.push((s, e, p));
                true
            }
            _ => false,
        }
    }
}

/// How taps and events are compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// A tap and a crossing match when at most this far apart (the
    /// installer's reaction, the camera's confirmation frames).
    pub tolerance_us: u64,
    /// Pass when every direction tapped is at least this accurate.
    pub threshold: f64,
    /// Only crossings of this line; every line's when `None`.
    pub line: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            tolerance_us: 3_000_000,
            threshold: 0.95,
            line: None,
        }
    }
}

/// One direction's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectionReport {
    pub direction: Kind,
    /// Tapped by the installer.
    pub truth: usize,
    /// Counted by the camera.
    pub counted: usize,
    pub matched: usize,
    pub missed: usize,
    pub extra: usize,
    /// 1 − (missed + extra) / truth; `None` when nothing was tapped.
    pub accuracy: Option<f64>,
}

/// Passers-by: the camera reports them per bin, not as events, so only
/// bins wholly inside the window are compared, and not in time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PassersReport {
    pub truth: usize,
    /// From bins wholly inside the window; `None` when none fits.
    pub counted: Option<u64>,
    pub bins: usize,
    pub note: String,
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineItem {
    /// Seconds after the window's start: the tap's time, or the camera's
    /// when nothing was tapped.
    pub t_s: f64,
    pub direction: Kind,
    /// `matched`, `missed` (tapped, not counted) or `extra` (counted, not
    /// tapped).
    pub outcome: &'static str,
    pub tap_s: Option<f64>,
    pub camera_s: Option<f64>,
}

/// The audit's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub camera: String,
    pub start: String,
    pub end: String,
    pub duration_s: f64,
    pub line: Option<String>,
    pub tolerance_s: f64,
    pub threshold: f64,
    pub directions: Vec<DirectionReport>,
    /// In and out together.
    pub accuracy: Option<f64>,
    pub passers_by: PassersReport,
    pub pass: bool,
    /// Why it failed, in words.
    pub verdict: String,
    pub timeline: Vec<TimelineItem>,
}

/// Compare taps with the camera's counts over `[start_us, end_us)`.
pub fn audit(
    camera: &str,
    start_us: u64,
    end_us: u64,
    taps: &[Tap],
    counts: &CameraCounts,
    settings: &Settings,
) -> Report {
    let secs = |t: u64| (t as f64 - start_us as f64) / 1e6;
    // Crossings a little past the end still match taps inside it.
    let in_window =
        |t: u64| t + settings.tolerance_us >= start_us && t < end_us + settings.tolerance_us;
    let mut timeline = Vec::new();
    let mut directions = Vec::new();
    for dir in [Kind::In, Kind::Out] {
        let mut truth: Vec<u64> = taps
            .iter()
            .filter(|t| t.kind == dir && t.t_us >= start_us && t.t_us < end_us)
            .map(|t| t.t_us)
            .collect();
        truth.sort_unstable();
        let mut cam: Vec<u64> = counts
            .crossings
            .iter()
            .filter(|(t, line, d)| {
                *d == dir && in_window(*t) && settings.line.as_deref().is_none_or(|l| l == line)
            })
            .map(|(t, _, _)| *t)
            .collect();
        cam.sort_unstable();
        let (pairs, missed, extra) = match_in_time(&truth, &cam, settings.tolerance_us);
        // An unmatched crossing within the tolerance of the window's edges
        // is not held against the camera: its person may have crossed
        // before the installer started watching, or been tapped after the
        // end.
        let tol = settings.tolerance_us;
        let extra: Vec<u64> = extra
            .into_iter()
            .filter(|t| *t >= start_us + tol && *t + tol < end_us)
            .collect();
        for &(tap, c) in &pairs {
            timeline.push(TimelineItem {
                t_s: secs(tap),
                direction: dir,
                outcome: "matched",
                tap_s: Some(secs(tap)),
                camera_s: Some(secs(c)),
            });
        }
        for &t in &missed {
            timeline.push(TimelineItem {
                t_s: secs(t),
                direction: dir,
                outcome: "missed",
                tap_s: Some(secs(t)),
                camera_s: None,
            });
        }
        for &t in &extra {
            timeline.push(TimelineItem {
                t_s: secs(t),
                direction: dir,
                outcome: "extra",
                tap_s: None,
                camera_s: Some(secs(t)),
            });
        }
        directions.push(DirectionReport {
            direction: dir,
            truth: truth.len(),
            counted: pairs.len() + extra.len(),
            matched: pairs.len(),
            missed: missed.len(),
            extra: extra.len(),
            accuracy: accuracy(truth.len(), missed.len() + extra.len()),
        });
    }
    timeline.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
    let truth: usize = directions.iter().map(|d| d.truth).sum();
    let errors: usize = directions.iter().map(|d| d.missed + d.extra).sum();
    let overall = accuracy(truth, errors);
    let passers = passers(start_us, end_us, taps, counts);
    let short: Vec<String> = directions
        .iter()
        .filter(|d| d.accuracy.is_some_and(|a| a < settings.threshold))
        .map(|d| {
            format!(
                "{}: {:.1} % ({} missed, {} extra of {})",
                d.direction.as_str(),
                d.accuracy.unwrap_or(0.0) * 100.0,
                d.missed,
                d.extra,
                d.truth
            )
        })
        .collect();
    let (pass, verdict) = if truth == 0 {
        (
            false,
            "nothing was tapped in or out: the audit has nothing to compare".to_string(),
        )
    } else if short.is_empty() && overall.is_some_and(|a| a >= settings.threshold) {
        (
            true,
            format!(
                "pass: {:.1} % accurate (at least {:.0} % needed)",
                overall.unwrap_or(0.0) * 100.0,
                settings.threshold * 100.0
            ),
        )
    } else {
        (
            false,
            format!(
                "fail: below {:.0} %: {}",
                settings.threshold * 100.0,
                short.join("; ")
            ),
        )
    };
    Report {
        camera: camera.to_string(),
        start: rfc3339(start_us),
        end: rfc3339(end_us),
        duration_s: secs(end_us),
        line: settings.line.clone(),
        tolerance_s: settings.tolerance_us as f64 / 1e6,
        threshold: settings.threshold,
        directions,
        accuracy: overall,
        passers_by: passers,
        pass,
        verdict,
        timeline,
    }
}

/// 1 − errors / truth, and 0 rather than below (more errors than people).
fn accuracy(truth: usize, errors: usize) -> Option<f64> {
    (truth > 0).then(|| (1.0 - errors as f64 / truth as f64).max(0.0))
}

fn passers(start_us: u64, end_us: u64, taps: &[Tap], counts: &CameraCounts) -> PassersReport {
    let truth = taps
        .iter()
        .filter(|t| t.kind == Kind::Passer && t.t_us >= start_us && t.t_us < end_us)
        .count();
    let inside: Vec<&(u64, u64, u64)> = counts
        .bins
        .iter()
        .filter(|(s, e, _)| *s >= start_us && *e <= end_us)
        .collect();
    let counted = (!inside.is_empty()).then(|| inside.iter().map(|b| b.2).sum());
    PassersReport {
        truth,
        counted,
        bins: inside.len(),
        note: if inside.is_empty() {
            "no bin lies wholly inside the window: passers-by are counted per bin, so they \
             are not compared (audit over whole bins to compare them)"
                .into()
        } else {
            "counted from the bins wholly inside the window, not matched in time, and not \
             part of the verdict"
                .into()
        },
    }
}

/// Match two sorted time lists: each true time to at most one counted time
/// within `tol`. Greedy in time order is optimal here (every window has
/// the same width). Returns the pairs, the unmatched true times (missed)
/// and the unmatched counted ones (extra).
pub fn match_in_time(
    truth: &[u64],
    counted: &[u64],
    tol: u64,
) -> (Vec<(u64, u64)>, Vec<u64>, Vec<u64>) {
    let (mut pairs, mut missed, mut extra) = (Vec::new(), Vec::new(), Vec::new());
    let mut j = 0;
    for &t in truth {
        while j < counted.len() && counted[j] + tol < t {
            extra.push(counted[j]);
            j += 1;
        }
        if j < counted.len() && counted[j] <= t + tol {
            pairs.push((t, counted[j]));
            j += 1;
        } else {
            missed.push(t);
        }
    }
    extra.extend_from_slice(&counted[j..]);
    (pairs, missed, extra)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const S: u64 = 1_800_000_000_000_000;

    fn taps(list: &[(f64, Kind)]) -> Vec<Tap> {
        list.iter()
            .map(|&(s, kind)| Tap {
                t_us: S + (s * 1e6) as u64,
                kind,
            })
            .collect()
    }

    fn counts(list: &[(f64, &str, Kind)]) -> CameraCounts {
        CameraCounts {
            crossings: list
                .iter()
                .map(|&(s, l, k)| (S + (s * 1e6) as u64, l.to_string(), k))
                .collect(),
            bins: Vec::new(),
        }
    }

    #[test]
    fn matching_counts_a_miss_and_an_extra_as_two_errors() {
        let t = taps(&[(10.0, Kind::In), (20.0, Kind::In), (30.0, Kind::Out)]);
        let c = counts(&[
            (11.0, "door", Kind::In),
            (45.0, "door", Kind::In),
            (29.0, "door", Kind::Out),
        ]);
        let r = audit("cam", S, S + 60_000_000, &t, &c, &Settings::default());
        let inn = &r.directions[0];
        assert_eq!(
            (inn.truth, inn.matched, inn.missed, inn.extra),
            (2, 1, 1, 1)
        );
        assert_eq!(inn.accuracy, Some(0.0));
        let out = &r.directions[1];
        assert_eq!(out.accuracy, Some(1.0));
        assert!(!r.pass);
        assert!(
            r.verdict.contains("in: 0.0 % (1 missed, 1 extra of 2)"),
            "{}",
            r.verdict
        );
        let outcomes: Vec<(&str, f64)> = r.timeline.iter().map(|i| (i.outcome, i.t_s)).collect();
        assert_eq!(
            outcomes,
            vec![
                ("matched", 10.0),
                ("missed", 20.0),
                ("matched", 30.0),
                ("extra", 45.0)
            ]
        );
    }

    #[test]
    fn greedy_matching_pairs_close_neighbours() {
        // The first count could match either tap; taking it for the first
        // leaves the second its own.
        let (p, m, e) = match_in_time(&[10, 14], &[12, 16], 3);
        assert_eq!(p, vec![(10, 12), (14, 16)]);
        assert!(m.is_empty() && e.is_empty());
        let (p, m, e) = match_in_time(&[10], &[1, 20], 3);
        assert!(p.is_empty());
        assert_eq!((m, e), (vec![10], vec![1, 20]));
    }

    #[test]
    fn a_good_install_passes_and_other_lines_are_left_out() {
        let t = taps(&[(5.0, Kind::In), (8.0, Kind::Out), (9.0, Kind::Passer)]);
        let c = counts(&[
            (5.8, "door", Kind::In),
            (9.5, "door", Kind::Out),
            (6.0, "street", Kind::In),
            // After the window and its tolerance: nobody was watching.
            (70.0, "door", Kind::In),
        ]);
        let s = Settings {
            line: Some("door".into()),
            ..Settings::default()
        };
        let r = audit("cam", S, S + 60_000_000, &t, &c, &s);
        assert!(r.pass, "{}", r.verdict);
        assert_eq!(r.accuracy, Some(1.0));
        assert_eq!(r.passers_by.truth, 1);
        assert_eq!(r.passers_by.counted, None);
    }

    #[test]
    fn an_audit_with_no_taps_fails_saying_why() {
        let r = audit(
            "cam",
            S,
            S + 1_000_000,
            &[],
            &CameraCounts::default(),
            &Settings::default(),
        );
        assert!(!r.pass);
        assert!(r.verdict.contains("nothing was tapped"));
    }

    #[test]
    fn tally_files_parse_or_name_the_line() {
        let t = TallyFile::parse("# door audit\nstart 2026-12-05T10:00:00Z\nin +1.5\nout, +3\np 2026-12-05T10:00:04Z\nend +60\n")
            .unwrap();
        let (s, e, taps) = t.resolve(0, 0);
        assert_eq!(s, parse_rfc3339("2026-12-05T10:00:00Z").unwrap());
        assert_eq!(e - s, 60_000_000);
        assert_eq!(taps.len(), 3);
        assert_eq!(
            taps[0],
            Tap {
                t_us: s + 1_500_000,
                kind: Kind::In
            }
        );
        assert_eq!(taps[2].kind, Kind::Passer);
        assert_eq!(taps[2].t_us - s, 4_000_000);
        for (text, line, words) in [
            ("in +1\ninn +2\n", 2, "unknown kind \"inn\""),
            ("in\n", 1, "expected a kind and a time"),
            ("out yesterday\n", 1, "not an RFC 3339 time"),
            ("in +-3\n", 1, "seconds after the start"),
        ] {
            let (n, why) = TallyFile::parse(text).unwrap_err();
            assert_eq!(n, line, "{text}");
            assert!(why.contains(words), "{why}");
        }
    }

    #[test]
    fn camera_records_are_read_as_published() {
        let mut c = CameraCounts::default();
        let ev: Value = serde_json::from_str(
            r#"{"type":"event","event":"crossing","time":"2026-12-05T10:00:01.500000Z","line":"door","direction":"out","camera":"c","seq":1}"#,
        )
        .unwrap();
        assert!(c.add_record(&ev));
        let bin: Value = serde_json::from_str(
            r#"{"type":"bin","start":"2026-12-05T10:00:00.000000Z","end":"2026-12-05T10:01:00.000000Z","passers_by":4}"#,
        )
        .unwrap();
        assert!(c.add_record(&bin));
        assert!(!c.add_record(&serde_json::json!({"type":"event","event":"visit"})));
        assert_eq!(c.crossings[0].2, Kind::Out);
        assert_eq!(c.bins[0].2, 4);
        let s = parse_rfc3339("2026-12-05T10:00:00Z").unwrap();
        let r = audit("c", s, s + 60_000_000, &[], &c, &Settings::default());
        assert_eq!(r.passers_by.counted, Some(4));
    }
}
