//! Scenario files: a scene (size, rate, perspective), the analytics
//! configuration camera-app will be given, and the scripted people.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::SceneError;
use crate::geom::Point;
use crate::look::Look;
use crate::sprites::SPRITES;
use crate::view::{Geometry, Occluder};

/// A scenario as written in `tests/scenes/NAME.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The file stem; set by [`Scenario::load`].
    #[serde(skip)]
    pub name: String,
    /// The file it came from; set by [`Scenario::load`], names it in errors.
    #[serde(skip)]
    pub path: PathBuf,
    /// One line: what happens.
    pub description: String,
    /// Seeds every random choice (texture, sensor noise, jitter).
    pub seed: u64,
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// Length of the clip; frames = round(duration_s * fps).
    pub duration_s: f64,
    /// Sprite height, as a fraction of the frame height, for a foot at y = 0.
    #[serde(default = "default_height_at_top")]
    pub height_at_top: f64,
    /// Sprite height, as a fraction of the frame height, for a foot at y = 1.
    #[serde(default = "default_height_at_bottom")]
    pub height_at_bottom: f64,
    /// Standard deviation of the per-frame sensor noise, in grey levels.
    #[serde(default = "default_noise")]
    pub noise_sigma: f64,
    /// The camera's view of the door. A scene that names it states every
    /// analytics setting its truth depends on (no defaults repeated from
    /// camera-app's code).
    #[serde(default)]
    pub geometry: Option<Geometry>,
    /// Gait, turning, blur, shadows, reflections, light, shake, JPEG.
    #[serde(default)]
    pub look: Look,
    /// Fixtures in front of people farther away than their depth.
    #[serde(default)]
    pub occluders: Vec<Occluder>,
    /// camera-app's analytics configuration, written verbatim to
    /// `analytics.toml`.
    pub analytics: toml::Table,
    #[serde(default)]
    pub people: Vec<Person>,
}

fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    360
}
fn default_fps() -> u32 {
    10
}
fn default_height_at_top() -> f64 {
    0.20
}
fn default_height_at_bottom() -> f64 {
    0.62
}
fn default_noise() -> f64 {
    2.0
}

/// One scripted person.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Index into [`SPRITES`].
    pub sprite: usize,
    /// Mirror the sprite horizontally.
    #[serde(default)]
    pub flip: bool,
    /// Random offset (uniform, +-jitter_px in x and y) of the drawn sprite
    /// each frame; the truth is not jittered.
    #[serde(default)]
    pub jitter_px: f64,
    /// Walking speed (normalised units per second) for waypoints without `t`.
    #[serde(default)]
    pub speed: Option<f64>,
    /// Foot-point waypoints.
    pub path: Vec<Waypoint>,
}

/// A foot-point waypoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Waypoint {
    pub x: f64,
    pub y: f64,
    /// Arrival time (s). The first waypoint defaults to 0; later ones
    /// default to departure from the previous one + distance / speed.
    #[serde(default)]
    pub t: Option<f64>,
    /// Stand still this long after arriving.
    #[serde(default)]
    pub wait: f64,
}

/// A timed foot position: the path is linear between keys.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Key {
    pub t: f64,
    pub p: Point,
}

/// Slack for comparing frame times with path times.
const EPS: f64 = 1e-9;

impl Person {
    /// The path as timed keys (a `wait` becomes a second key at the same
    /// place).
    pub fn keys(&self) -> Result<Vec<Key>, String> {
        let mut keys: Vec<Key> = Vec::with_capacity(self.path.len() * 2);
        for (i, w) in self.path.iter().enumerate() {
            let p = Point::new(w.x, w.y);
            let in_range = (-0.5..=1.5).contains(&w.x) && (0.0..=1.5).contains(&w.y);
            if !in_range {
                return Err(format!(
                    "path[{i}]: ({}, {}) is outside x -0.5..1.5, y 0..1.5",
                    w.x, w.y
                ));
            }
            if !(w.wait.is_finite() && w.wait >= 0.0) {
                return Err(format!("path[{i}].wait: {} is not >= 0", w.wait));
            }
            let t = match (w.t, keys.last()) {
                (Some(t), _) => t,
                (None, None) => 0.0,
                (None, Some(prev)) => {
                    let Some(v) = self.speed.filter(|v| v.is_finite() && *v > 0.0) else {
                        return Err(format!(
                            "path[{i}]: no `t` and the person has no positive `speed`"
                        ));
                    };
                    let d = p.minus(prev.p).dot(p.minus(prev.p)).sqrt();
                    prev.t + d / v
                }
            };
            if !t.is_finite() || t < 0.0 {
                return Err(format!("path[{i}].t: {t} is not a time"));
            }
            if let Some(prev) = keys.last()
                && t <= prev.t
            {
                return Err(format!(
                    "path[{i}].t: {t} s is not after the previous departure at {} s",
                    prev.t
                ));
            }
            keys.push(Key { t, p });
            if w.wait > 0.0 {
                keys.push(Key { t: t + w.wait, p });
            }
        }
        if keys.len() < 2 {
            return Err("path: needs at least 2 waypoints (or one with a wait)".into());
        }
        Ok(keys)
    }
}

/// Foot position at time `t`, or `None` before the first key or after
/// the last.
pub fn position(keys: &[Key], t: f64) -> Option<Point> {
    let (first, last) = (keys.first()?, keys.last()?);
    if t < first.t - EPS || t > last.t + EPS {
        return None;
    }
    for w in keys.windows(2) {
        if t <= w[1].t + EPS {
            let u = ((t - w[0].t) / (w[1].t - w[0].t)).clamp(0.0, 1.0);
            return Some(w[0].p.lerp(w[1].p, u));
        }
    }
    Some(last.p)
}

/// Timed keys from `(x, y, t)` triples, for tests.
#[cfg(test)]
pub(crate) fn keys_of(pts: &[(f64, f64, f64)]) -> Vec<Key> {
    pts.iter()
        .map(|&(x, y, t)| Key {
            t,
            p: Point::new(x, y),
        })
        .collect()
}

/// Which side of a line (walking from its first point to its last) is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InSide {
    Left,
    Right,
}

/// Zone kinds, as camera-app names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneKind {
    Area,
    Queue,
    Shelf,
    Inner,
    Street,
}

/// The parts of camera-app's analytics configuration the truth needs, with
/// the same field names and defaults. Other fields are passed through
/// untouched: camera-app validates the whole file strictly when it loads
/// `analytics.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Analytics {
    pub version: u64,
    #[serde(default = "default_bin")]
    pub bin_minutes: u32,
    #[serde(default)]
    pub lines: Vec<LineSpec>,
    #[serde(default)]
    pub zones: Vec<ZoneSpec>,
    #[serde(default)]
    pub passers_by: Option<String>,
    #[serde(default)]
    pub heatmap: Option<Heatmap>,
    /// Which point of a person's box is tested against lines and zones.
    #[serde(default)]
    pub anchor: Anchor,
}

/// The point of a box that stands for the person, as camera-app names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    /// The feet.
    #[default]
    BottomCenter,
    /// The middle of the box.
    Center,
}

fn default_bin() -> u32 {
    5
}

/// A counting line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LineSpec {
    pub name: String,
    pub points: Vec<[f64; 2]>,
    pub in_side: InSide,
    #[serde(default = "default_band")]
    pub band: f64,
}

fn default_band() -> f64 {
    0.02
}

impl LineSpec {
    pub fn polyline(&self) -> Vec<Point> {
        self.points.iter().map(|&[x, y]| Point::new(x, y)).collect()
    }
}

/// A zone.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ZoneSpec {
    pub name: String,
    pub polygon: Vec<[f64; 2]>,
    #[serde(default = "default_kind")]
    pub kind: ZoneKind,
    #[serde(default = "default_enter")]
    pub enter_s: f64,
    #[serde(default = "default_exit")]
    pub exit_s: f64,
    #[serde(default)]
    pub loiter_s: Option<f64>,
    #[serde(default)]
    pub service_per_min: Option<f64>,
}

fn default_kind() -> ZoneKind {
    ZoneKind::Area
}
fn default_enter() -> f64 {
    1.0
}
fn default_exit() -> f64 {
    2.0
}

impl ZoneSpec {
    pub fn polygon(&self) -> Vec<Point> {
        self.polygon
            .iter()
            .map(|&[x, y]| Point::new(x, y))
            .collect()
    }
}

/// Heatmap grid.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Heatmap {
    pub cols: u32,
    pub rows: u32,
}

impl Scenario {
    /// Read, parse and check a scenario file.
    pub fn load(path: &Path) -> Result<Self, SceneError> {
        load_checked(path)
    }

    /// Parse and check scenario text; `path` only names it in errors.
    pub fn parse(name: &str, text: &str, path: &Path) -> Result<Self, SceneError> {
        parse_checked(name, text, path)
    }

    /// Number of frames.
    pub fn frames(&self) -> usize {
        // Bounded by the checks in `problems`.
        (self.duration_s * f64::from(self.fps)).round() as usize
    }

    /// The analytics table as the truth reads it.
    pub fn analytics(&self) -> Result<Analytics, String> {
        toml::Value::Table(self.analytics.clone())
            .try_into()
            .map_err(|e: toml::de::Error| format!("analytics: {}", e.message()))
    }

    /// Sprite height in pixels for a foot at normalised `y`.
    pub fn sprite_height_px(&self, y: f64) -> f64 {
        (self.height_at_top + (self.height_at_bottom - self.height_at_top) * y)
            * f64::from(self.height)
    }

    fn check(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(16..=4096).contains(&self.width) || !(16..=4096).contains(&self.height) {
            p.push(format!(
                "frame size {}x{} is not within 16..4096",
                self.width, self.height
            ));
        }
        if !(1..=120).contains(&self.fps) {
            p.push(format!("fps: {} is not within 1..120", self.fps));
        }
        if !(self.duration_s.is_finite() && self.duration_s > 0.0 && self.duration_s <= 600.0) {
            p.push(format!(
                "duration_s: {} is not within 0..600",
                self.duration_s
            ));
        }
        for (field, v) in [
            ("height_at_top", self.height_at_top),
            ("height_at_bottom", self.height_at_bottom),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 2.0) {
                p.push(format!("{field}: {v} is not within 0..2"));
            }
        }
        if !(self.noise_sigma.is_finite() && (0.0..=50.0).contains(&self.noise_sigma)) {
            p.push(format!(
                "noise_sigma: {} is not within 0..50",
                self.noise_sigma
            ));
        }
        for (i, person) in self.people.iter().enumerate() {
            if person.sprite >= SPRITES.len() {
                p.push(format!(
                    "people[{i}].sprite: {} is not one of the {} sprites",
                    person.sprite,
                    SPRITES.len()
                ));
            }
            if !(person.jitter_px.is_finite() && (0.0..=50.0).contains(&person.jitter_px)) {
                p.push(format!(
                    "people[{i}].jitter_px: {} is not within 0..50",
                    person.jitter_px
                ));
            }
            if let Err(e) = person.keys() {
                p.push(format!("people[{i}].{e}"));
            }
        }
        match self.analytics() {
            Ok(a) => p.extend(a.problems()),
            Err(e) => p.push(e),
        }
        p.extend(self.look.problems());
        for (i, o) in self.occluders.iter().enumerate() {
            p.extend(o.problems(i));
        }
        if self.geometry.is_some() {
            p.extend(self.implicit_settings());
        }
        p
    }

    /// The analytics settings the truth depends on that this scene leaves
    /// to defaults (which would be camera-app's, repeated here).
    fn implicit_settings(&self) -> Vec<String> {
        let a = &self.analytics;
        let mut p = Vec::new();
        for key in ["bin_minutes", "anchor"] {
            if !a.contains_key(key) {
                p.push(format!(
                    "analytics.{key}: must be given in a scene with a geometry"
                ));
            }
        }
        let tables = |name: &str| -> Vec<toml::Table> {
            a.get(name)
                .and_then(toml::Value::as_array)
                .map(|v| v.iter().filter_map(|t| t.as_table().cloned()).collect())
                .unwrap_or_default()
        };
        for (i, l) in tables("lines").iter().enumerate() {
            if !l.contains_key("band") {
                p.push(format!(
                    "analytics.lines[{i}].band: must be given in a scene with a geometry"
                ));
            }
        }
        for (i, z) in tables("zones").iter().enumerate() {
            for key in ["kind", "enter_s", "exit_s"] {
                if !z.contains_key(key) {
                    p.push(format!(
                        "analytics.zones[{i}].{key}: must be given in a scene with a geometry"
                    ));
                }
            }
        }
        p
    }

    /// The scene's view (outside looking in unless it says otherwise).
    pub fn view(&self) -> Geometry {
        self.geometry.unwrap_or_default()
    }
}

impl Analytics {
    /// A light check; camera-app validates fully.
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let mut names = std::collections::HashSet::new();
        let in_range = |pts: &[[f64; 2]]| {
            pts.iter()
                .all(|&[x, y]| (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y))
        };
        for (i, l) in self.lines.iter().enumerate() {
            if !names.insert(l.name.as_str()) {
                p.push(format!(
                    "analytics.lines[{i}].name: {:?} used twice",
                    l.name
                ));
            }
            if !(2..=16).contains(&l.points.len()) || !in_range(&l.points) {
                p.push(format!(
                    "analytics.lines[{i}].points: needs 2..16 points within 0..1"
                ));
            }
        }
        for (i, z) in self.zones.iter().enumerate() {
            if !names.insert(z.name.as_str()) {
                p.push(format!(
                    "analytics.zones[{i}].name: {:?} used twice",
                    z.name
                ));
            }
            if !(3..=16).contains(&z.polygon.len()) || !in_range(&z.polygon) {
                p.push(format!(
                    "analytics.zones[{i}].polygon: needs 3..16 points within 0..1"
                ));
            }
            if (z.kind == ZoneKind::Queue) != z.service_per_min.is_some() {
                p.push(format!(
                    "analytics.zones[{i}].service_per_min: required for queue zones only"
                ));
            }
        }
        if let Some(name) = &self.passers_by {
            let ok = self.lines.iter().any(|l| &l.name == name)
                || self
                    .zones
                    .iter()
                    .any(|z| &z.name == name && z.kind == ZoneKind::Street);
            if !ok {
                p.push(format!(
                    "analytics.passers_by: {name:?} is neither a line nor a street zone"
                ));
            }
        }
        p
    }
}

/// Every `*.toml` scenario in `dir`, sorted by name.
pub fn scenario_files(dir: &Path) -> Result<Vec<PathBuf>, SceneError> {
    let rd = std::fs::read_dir(dir).map_err(|source| SceneError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| SceneError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "toml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A scenario file: named after its file, checked after parsing.
pub(crate) trait ScenarioFile: serde::de::DeserializeOwned {
    fn set_origin(&mut self, name: &str, path: &Path);
    /// Every problem, named.
    fn problems(&self) -> Vec<String>;
}

/// Read, parse and check a scenario file.
pub(crate) fn load_checked<T: ScenarioFile>(path: &Path) -> Result<T, SceneError> {
    let text = std::fs::read_to_string(path).map_err(|source| SceneError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse_checked(&name, &text, path)
}

/// Parse and check scenario text; `path` only names it in errors.
pub(crate) fn parse_checked<T: ScenarioFile>(
    name: &str,
    text: &str,
    path: &Path,
) -> Result<T, SceneError> {
    let mut s: T = toml::from_str(text).map_err(|source| SceneError::Parse {
        path: path.to_path_buf(),
        source,
    })?;
    s.set_origin(name, path);
    let problems = s.problems();
    if problems.is_empty() {
        Ok(s)
    } else {
        Err(SceneError::Invalid {
            path: path.to_path_buf(),
            problem: problems.join("; "),
        })
    }
}

impl ScenarioFile for Scenario {
    fn set_origin(&mut self, name: &str, path: &Path) {
        self.name = name.to_string();
        self.path = path.to_path_buf();
    }

    fn problems(&self) -> Vec<String> {
        self.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(path: &str) -> Person {
        toml::from_str(&format!("sprite = 0\nspeed = 0.5\npath = {path}")).expect("person")
    }

    #[test]
    fn waits_and_speeds_become_keys() {
        let p = person("[{ x = 0.5, y = 1.0, t = 1.0, wait = 2.0 }, { x = 0.5, y = 0.5 }]");
        let keys = p.keys().expect("keys");
        let ts: Vec<f64> = keys.iter().map(|k| k.t).collect();
        assert_eq!(ts, vec![1.0, 3.0, 4.0]);
        assert_eq!(position(&keys, 0.5), None);
        assert_eq!(position(&keys, 2.0), Some(Point::new(0.5, 1.0)));
        let mid = position(&keys, 3.5).expect("present");
        assert!((mid.y - 0.75).abs() < 1e-12);
        assert_eq!(position(&keys, 4.2), None);
    }

    #[test]
    fn times_going_backwards_are_refused() {
        let p = person("[{ x = 0.5, y = 1.0, t = 2.0 }, { x = 0.5, y = 0.5, t = 1.0 }]");
        assert!(
            p.keys().is_err_and(|e| e.contains("path[1].t")),
            "{:?}",
            p.keys()
        );
    }
}
