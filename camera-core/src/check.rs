//! Checks shared by every part of the configuration (lines, zones,
//! shelves): each problem is reported with its path in the document, and
//! checking goes on so that all of them are reported at once.

use std::collections::HashSet;

use crate::geom::Point;

/// Most corners of a line, zone or shelf outline.
pub const MAX_POINTS: usize = 16;
/// Longest name of a line, zone, shelf or facing, in bytes.
pub const MAX_NAME: usize = 64;

/// Normalised points (each coordinate within 0..1), or `None` with every
/// bad one reported.
pub fn points(raw: &[[f32; 2]], path: &str, problems: &mut Vec<String>) -> Option<Vec<Point>> {
    if raw.len() > MAX_POINTS {
        problems.push(format!(
            "{path}: {} points, at most {MAX_POINTS}",
            raw.len()
        ));
        return None;
    }
    let mut ok = true;
    for (i, [x, y]) in raw.iter().enumerate() {
        if !x.is_finite() || !y.is_finite() {
            problems.push(format!("{path}[{i}]: coordinate is not a number"));
            ok = false;
        } else if !(0.0..=1.0).contains(x) || !(0.0..=1.0).contains(y) {
            problems.push(format!("{path}[{i}]: ({x}, {y}) is outside 0..1"));
            ok = false;
        }
    }
    ok.then(|| raw.iter().map(|&[x, y]| Point::new(x, y)).collect())
}

/// A name that is not empty, not too long, has no control character and
/// is not used before. Names go into records and topics: two that differ
/// only by an invisible NUL or escape would look like one name used twice.
pub fn check_name(name: &str, path: &str, seen: &mut HashSet<String>, problems: &mut Vec<String>) {
    if name.trim().is_empty() {
        problems.push(format!("{path}.name: empty"));
    } else if name.len() > MAX_NAME {
        problems.push(format!("{path}.name: longer than {MAX_NAME} bytes"));
    } else if name.chars().any(char::is_control) {
        problems.push(format!("{path}.name: {name:?} has a control character"));
    } else if !seen.insert(name.to_string()) {
        problems.push(format!("{path}.name: {name:?} is used twice"));
    }
}
