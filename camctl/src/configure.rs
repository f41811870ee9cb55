//! An analytics configuration on its way to a camera: read from the
//! installer's file (TOML, as the camera's own file, or the JSON of
//! `config/set`), given the next version, and checked by the camera's own
//! code (`camera_core::config::remote::decide`), with every problem placed
//! on the drawing where it is.

use std::path::{Path, PathBuf};

use camera_core::config::remote::{self, ConfigResult};
use serde::Serialize;
use serde_json::Value;

/// Why a configuration file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration file {path}: not TOML or JSON: {reason}")]
    Syntax { path: PathBuf, reason: String },
    #[error("configuration file {path}: not a table or JSON object")]
    NotAnObject { path: PathBuf },
}

/// Read a configuration file: JSON when it starts with `{`, else TOML.
pub fn read_file(path: &Path) -> Result<Value, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.into(),
        source,
    })?;
    parse_text(&text)
        .map_err(|reason| ConfigFileError::Syntax {
            path: path.into(),
            reason,
        })
        .and_then(|v| {
            if v.is_object() {
                Ok(v)
            } else {
                Err(ConfigFileError::NotAnObject { path: path.into() })
            }
        })
}

/// A configuration document as JSON, from JSON or TOML text.
pub fn parse_text(text: &str) -> Result<Value, String> {
    if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| e.to_string())
    } else {
        let json = remote::toml_to_json(text)?;
        serde_json::from_str(&json).map_err(|e| e.to_string())
    }
}

/// The version a document asks for: its own, or the one after the running
/// version when it has none (installers need not count).
pub fn with_version(mut doc: Value, running: Option<u64>) -> (u64, Value) {
    let version = match doc.get("version").and_then(Value::as_u64) {
        Some(v) => v,
        None => {
            let v = running.map_or(1, |r| r + 1);
            if let Some(o) = doc.as_object_mut() {
                o.insert("version".into(), Value::from(v));
            }
            v
        }
    };
    (version, doc)
}

/// One problem, where the drawing shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// The camera's message, as `config/result` would carry it.
    pub message: String,
    /// `lines`, `zones` or `shelves`, when the problem is in one of them.
    pub kind: Option<String>,
    pub index: Option<usize>,
    /// Where on the view (0..1) to show it: the crossing of two edges, the
    /// point at fault, or the element's first point.
    pub at: Option<[f64; 2]>,
}

/// Check a document as the camera would against `running` (the camera's
/// configuration version; `None`: anything newer than 0).
pub fn check(doc: &Value, running: Option<u64>) -> Vec<Problem> {
    let body = doc.to_string();
    match remote::decide(
        running.unwrap_or(0),
        body.as_bytes(),
        remote::DEFAULT_MAX_CONFIG_BYTES,
    ) {
        Ok(_) => Vec::new(),
        Err(ConfigResult { problems, .. }) => problems.iter().map(|m| place(doc, m)).collect(),
    }
}

/// Locate a message of the form `zones[2].polygon: edges 0 and 2 cross...`
/// or `lines[0].points: point 1 (1.4, 0.6) is outside 0..1` in `doc`.
pub fn place(doc: &Value, message: &str) -> Problem {
    let mut p = Problem {
        message: message.to_string(),
        kind: None,
        index: None,
        at: None,
    };
    let Some((kind, rest)) = ["lines", "zones", "shelves"]
        .iter()
        .find_map(|k| message.strip_prefix(&format!("{k}[")).map(|r| (*k, r)))
    else {
        return p;
    };
    let Some(index) = rest.split(']').next().and_then(|n| n.parse::<usize>().ok()) else {
        return p;
    };
    p.kind = Some(kind.to_string());
    p.index = Some(index);
    let element = &doc[kind][index];
    // `.points[1]: ...` or `.front[0]: ...` right after the element.
    let after = rest.split_once(']').map_or("", |(_, a)| a);
    let field_point = after.strip_prefix('.').and_then(|a| {
        let (field, r) = a.split_once('[')?;
        let n = r.split(']').next()?.parse::<usize>().ok()?;
        (!field.contains([':', ' '])).then_some((field, n))
    });
    let coords = |field: &str| -> Vec<[f64; 2]> {
        element[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|pt| Some([pt[0].as_f64()?, pt[1].as_f64()?]))
            .collect()
    };
    let pts: Vec<[f64; 2]> = match field_point {
        Some((field, _)) => coords(field),
        None => ["points", "polygon"]
            .iter()
            .flat_map(|f| coords(f))
            .collect(),
    };
    let number_after = |word: &str| -> Option<usize> {
        let i = message.find(word)? + word.len();
        message[i..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    p.at = if let (Some(a), Some(b)) = (number_after("edges "), number_after(" and ")) {
        edge_crossing(&pts, a, b)
    } else if let Some((_, i)) = field_point {
        pts.get(i).copied()
    } else {
        None
    }
    .or_else(|| pts.first().copied())
    .map(|[x, y]| [x.clamp(0.0, 1.0), y.clamp(0.0, 1.0)]);
    p
}

/// Where edge `a` (points a, a+1) meets edge `b` of a closed polygon.
fn edge_crossing(pts: &[[f64; 2]], a: usize, b: usize) -> Option<[f64; 2]> {
    let n = pts.len();
    if n < 2 || a >= n || b >= n {
        return None;
    }
    let (p, q) = (pts[a], pts[(a + 1) % n]);
    let (r, s) = (pts[b], pts[(b + 1) % n]);
    let d = (q[0] - p[0]) * (s[1] - r[1]) - (q[1] - p[1]) * (s[0] - r[0]);
    if d.abs() < 1e-12 {
        return Some(p);
    }
    let t = ((r[0] - p[0]) * (s[1] - r[1]) - (r[1] - p[1]) * (s[0] - r[0])) / d;
    Some([p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn toml_and_json_read_alike_and_get_the_next_version() {
        let toml = "bin_minutes = 1\n[[lines]]\nname = \"door\"\npoints = [[0.1, 0.5], [0.9, 0.5]]\nin_side = \"left\"\n";
        let a = parse_text(toml).unwrap();
        let b = parse_text(&a.to_string()).unwrap();
        assert_eq!(a, b);
        let (v, doc) = with_version(a, Some(7));
        assert_eq!(v, 8);
        assert_eq!(doc["version"], 8);
        assert!(check(&doc, Some(7)).is_empty());
        let (v, _) = with_version(json!({"version": 3}), Some(7));
        assert_eq!(v, 3);
    }

    #[test]
    fn a_self_intersecting_zone_is_placed_where_its_edges_cross() {
        let doc = json!({"version": 2, "zones": [{"name": "till",
            "polygon": [[0.2, 0.2], [0.6, 0.6], [0.6, 0.2], [0.2, 0.6]]}]});
        let problems = check(&doc, Some(1));
        assert_eq!(problems.len(), 1, "{problems:?}");
        let p = &problems[0];
        assert!(p.message.contains("zones[0].polygon"), "{}", p.message);
        assert_eq!(p.kind.as_deref(), Some("zones"));
        assert_eq!(p.index, Some(0));
        let [x, y] = p.at.unwrap();
        assert!((x - 0.4).abs() < 1e-9 && (y - 0.4).abs() < 1e-9, "{x} {y}");
    }

    #[test]
    fn every_problem_is_reported_with_its_element() {
        let doc = json!({"version": 1, "bin_minutes": 7, "lines": [
            {"name": "a", "points": [[0.1, 0.5], [1.4, 0.5]], "in_side": "left"}]});
        let problems = check(&doc, Some(1));
        let msgs: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
        assert!(msgs.iter().any(|m| m.starts_with("version")), "{msgs:?}");
        assert!(
            msgs.iter().any(|m| m.starts_with("bin_minutes")),
            "{msgs:?}"
        );
        let line = problems
            .iter()
            .find(|p| p.kind.as_deref() == Some("lines"))
            .unwrap();
        assert_eq!(line.at, Some([1.0, 0.5]), "point 1, clamped onto the view");
    }
}
