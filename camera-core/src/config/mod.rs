//! The analytics configuration an installer sends: lines, zones, bins.
//!
//! Parsed with unknown fields refused, then validated into domain types in
//! one step that reports every problem with its path (`zones[2].polygon`:
//! self-intersecting) and applies nothing unless all is well. Coordinates
//! are normalised (0..1). Sizes are bounded by the device's fixed
//! capacities.

use std::collections::HashSet;

pub mod remote;

use serde::Deserialize;

use crate::check::{check_name, points};
use crate::geom::{Polygon, Polyline};
use crate::shelf::layout::{self, RawShelf, Shelf};
use crate::shelf::monitor::{RawShelfCheck, ShelfCheck};

/// Fixed capacities of the analytics engine.
pub const MAX_LINES: usize = 8;
pub const MAX_ZONES: usize = 16;
pub use crate::check::{MAX_NAME, MAX_POINTS};

/// Which side of the polyline (walking from its first point to its last)
/// is "in".
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InSide {
    Left,
    Right,
}

/// As written in the file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Increases with every change an installer makes.
    pub version: u64,
    /// Reporting bin: 1, 5 or 15 minutes, aligned to the wall clock.
    #[serde(default = "default_bin")]
    pub bin_minutes: u32,
    #[serde(default)]
    pub lines: Vec<RawLine>,
    #[serde(default)]
    pub zones: Vec<RawZone>,
    /// Name of the line or zone outside the door that passers-by cross.
    #[serde(default)]
    pub passers_by: Option<String>,
    #[serde(default)]
    pub heatmap: Option<RawHeatmap>,
    /// Which point of a person's box is tested against lines and zones.
    #[serde(default)]
    pub anchor: Anchor,
    /// Store occupancy from door counts.
    #[serde(default)]
    pub occupancy: Option<RawOccupancy>,
    /// Shelves watched for out-of-stock facings and interactions.
    #[serde(default)]
    pub shelves: Vec<RawShelf>,
    /// How shelves are watched.
    #[serde(default)]
    pub shelf_check: RawShelfCheck,
}

/// The point of a box that stands for the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Anchor {
    /// The feet: right for cameras looking at the floor at an angle.
    #[default]
    BottomCenter,
    /// The middle of the box: for cameras looking straight down.
    Center,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOccupancy {
    /// Local time ("HH:MM") at which the store is empty and the count
    /// starts again from zero.
    pub reset_at: String,
    /// Local time offset from UTC, minutes.
    #[serde(default)]
    pub utc_offset_minutes: i32,
}

fn default_bin() -> u32 {
    5
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLine {
    pub name: String,
    pub points: Vec<[f32; 2]>,
    pub in_side: InSide,
    /// Hysteresis half-width, normalised.
    #[serde(default = "default_band")]
    pub band: f32,
}

fn default_band() -> f32 {
    0.02
}

/// What a zone is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ZoneKind {
    /// Occupancy and dwell.
    Area,
    /// Queue length and estimated wait.
    Queue,
    /// Shelf interactions (dwell over a threshold).
    Shelf,
    /// Reaching it makes a visit "deep" in the funnel.
    Inner,
    /// Outside the door: passers-by.
    Street,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    pub name: String,
    pub polygon: Vec<[f32; 2]>,
    #[serde(default = "default_kind")]
    pub kind: ZoneKind,
    #[serde(default = "default_enter")]
    pub enter_s: f64,
    #[serde(default = "default_exit")]
    pub exit_s: f64,
    /// Report a loitering event after this long in the zone.
    #[serde(default)]
    pub loiter_s: Option<f64>,
    /// Queue zones: people served per minute.
    #[serde(default)]
    pub service_per_min: Option<f64>,
    /// Shelf zones: a stay this long is a shelf interaction (default 5 s).
    #[serde(default)]
    pub interaction_s: Option<f64>,
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeatmap {
    pub cols: u32,
    pub rows: u32,
}

/// A validated line.
#[derive(Debug, Clone, PartialEq)]
pub struct LineSpec {
    pub name: String,
    pub line: Polyline,
    pub in_side: InSide,
    pub band: f32,
}

/// A validated zone.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneSpec {
    pub name: String,
    pub polygon: Polygon,
    pub kind: ZoneKind,
    pub enter_s: f64,
    pub exit_s: f64,
    pub loiter_s: Option<f64>,
    pub service_per_min: Option<f64>,
    /// Shelf zones only.
    pub interaction_s: Option<f64>,
}

/// Default stay in a shelf zone that counts as an interaction.
pub const DEFAULT_INTERACTION_S: f64 = 5.0;

/// When the door-count occupancy starts again from zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OccupancySpec {
    /// Seconds after local midnight.
    pub reset_at_s: u32,
    pub utc_offset_s: i32,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyticsConfig {
    pub version: u64,
    pub bin_minutes: u32,
    pub lines: Vec<LineSpec>,
    pub zones: Vec<ZoneSpec>,
    pub passers_by: Option<String>,
    pub heatmap: Option<(u32, u32)>,
    pub anchor: Anchor,
    pub occupancy: Option<OccupancySpec>,
    pub shelves: Vec<Shelf>,
    pub shelf_check: ShelfCheck,
}

/// Why a configuration was refused: every problem, each with its path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("analytics config rejected:\n  {}", problems.join("\n  "))]
pub struct Rejected {
    pub problems: Vec<String>,
}

fn seconds(v: f64, path: &str, problems: &mut Vec<String>) {
    if !(v.is_finite() && (0.0..=3600.0).contains(&v)) {
        problems.push(format!("{path}: {v} is not within 0..3600 s"));
    }
}

/// "HH:MM" → seconds after midnight.
fn parse_hh_mm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 3600 + m * 60)
}

impl AnalyticsConfig {
    /// Parse TOML and validate; all or nothing.
    pub fn parse(text: &str) -> Result<Self, Rejected> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| Rejected {
            problems: vec![
                e.message().to_string()
                    + &e.span()
                        .map(|s| format!(" (at byte {})", s.start))
                        .unwrap_or_default(),
            ],
        })?;
        Self::validate(raw)
    }

    /// Validate a parsed configuration.
    pub fn validate(raw: RawConfig) -> Result<Self, Rejected> {
        let mut p = Vec::new();
        if ![1, 5, 15].contains(&raw.bin_minutes) {
            p.push(format!(
                "bin_minutes: {} is not 1, 5 or 15",
                raw.bin_minutes
            ));
        }
        if raw.lines.len() > MAX_LINES {
            p.push(format!(
                "lines: {} lines, at most {MAX_LINES}",
                raw.lines.len()
            ));
        }
        if raw.zones.len() > MAX_ZONES {
            p.push(format!(
                "zones: {} zones, at most {MAX_ZONES}",
                raw.zones.len()
            ));
        }
        let mut names = HashSet::new();
        let mut lines = Vec::new();
        for (i, l) in raw.lines.iter().enumerate() {
            let path = format!("lines[{i}]");
            check_name(&l.name, &path, &mut names, &mut p);
            if !(l.band.is_finite() && (0.0..=0.2).contains(&l.band)) {
                p.push(format!("{path}.band: {} is not within 0..0.2", l.band));
            }
            if let Some(pts) = points(&l.points, &format!("{path}.points"), &mut p) {
                match Polyline::new(pts) {
                    Ok(line) => lines.push(LineSpec {
                        name: l.name.clone(),
                        line,
                        in_side: l.in_side,
                        band: l.band,
                    }),
                    Err(e) => p.push(format!("{path}.points: {e}")),
                }
            }
        }
        let mut zones = Vec::new();
        for (i, z) in raw.zones.iter().enumerate() {
            let path = format!("zones[{i}]");
            check_name(&z.name, &path, &mut names, &mut p);
            seconds(z.enter_s, &format!("{path}.enter_s"), &mut p);
            seconds(z.exit_s, &format!("{path}.exit_s"), &mut p);
            if let Some(l) = z.loiter_s {
                seconds(l, &format!("{path}.loiter_s"), &mut p);
            }
            match (z.kind, z.service_per_min) {
                (ZoneKind::Queue, None) => p.push(format!(
                    "{path}.service_per_min: a queue zone needs a service rate"
                )),
                (ZoneKind::Queue, Some(r)) if !(r.is_finite() && r > 0.0) => {
                    p.push(format!("{path}.service_per_min: {r} must be positive"));
                }
                (k, Some(_)) if k != ZoneKind::Queue => p.push(format!(
                    "{path}.service_per_min: only queue zones have a service rate"
                )),
                _ => {}
            }
            match (z.kind, z.interaction_s) {
                (ZoneKind::Shelf, Some(v)) => {
                    seconds(v, &format!("{path}.interaction_s"), &mut p);
                }
                (_, Some(_)) => p.push(format!(
                    "{path}.interaction_s: only shelf zones have an interaction time"
                )),
                _ => {}
            }
            if let Some(pts) = points(&z.polygon, &format!("{path}.polygon"), &mut p) {
                match Polygon::new(pts) {
                    Ok(polygon) => zones.push(ZoneSpec {
                        name: z.name.clone(),
                        polygon,
                        kind: z.kind,
                        enter_s: z.enter_s,
                        exit_s: z.exit_s,
                        loiter_s: z.loiter_s,
                        service_per_min: z.service_per_min,
                        interaction_s: z.interaction_s,
                    }),
                    Err(e) => p.push(format!("{path}.polygon: {e}")),
                }
            }
        }
        if let Some(name) = &raw.passers_by {
            let is_line = raw.lines.iter().any(|l| &l.name == name);
            let is_street = raw
                .zones
                .iter()
                .any(|z| &z.name == name && z.kind == ZoneKind::Street);
            if !is_line && !is_street {
                p.push(format!(
                    "passers_by: {name:?} is neither a line nor a street zone"
                ));
            }
        }
        let heatmap = match raw.heatmap {
            Some(h) if !(1..=64).contains(&h.cols) || !(1..=36).contains(&h.rows) => {
                p.push(format!(
                    "heatmap: {}x{} cells, at most 64x36",
                    h.cols, h.rows
                ));
                None
            }
            Some(h) => Some((h.cols, h.rows)),
            None => None,
        };
        let occupancy = raw.occupancy.as_ref().and_then(|o| {
            let reset = parse_hh_mm(&o.reset_at);
            if reset.is_none() {
                p.push(format!(
                    "occupancy.reset_at: {:?} is not a time of day (HH:MM)",
                    o.reset_at
                ));
            }
            if !(-14 * 60..=14 * 60).contains(&o.utc_offset_minutes) {
                p.push(format!(
                    "occupancy.utc_offset_minutes: {} is not within -840..840",
                    o.utc_offset_minutes
                ));
            }
            reset.map(|reset_at_s| OccupancySpec {
                reset_at_s,
                utc_offset_s: o.utc_offset_minutes * 60,
            })
        });
        let shelves = layout::validate(&raw.shelves).unwrap_or_else(|problems| {
            p.extend(problems);
            Vec::new()
        });
        for (i, s) in raw.shelves.iter().enumerate() {
            if names.contains(&s.name) {
                p.push(format!(
                    "shelves[{i}].name: {:?} is also the name of a line or zone",
                    s.name
                ));
            }
        }
        let shelf_check = raw.shelf_check.validate().unwrap_or_else(|problems| {
            p.extend(problems);
            ShelfCheck::default()
        });
        if p.is_empty() {
            Ok(Self {
                version: raw.version,
                bin_minutes: raw.bin_minutes,
                lines,
                zones,
                passers_by: raw.passers_by,
                heatmap,
                anchor: raw.anchor,
                occupancy,
                shelves,
                shelf_check,
            })
        } else {
            Err(Rejected { problems: p })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version = 3
bin_minutes = 15
passers_by = "street"

[[lines]]
name = "door"
points = [[0.2, 0.6], [0.8, 0.6]]
in_side = "right"

[[lines]]
name = "street"
points = [[0.0, 0.9], [1.0, 0.9]]
in_side = "left"

[[zones]]
name = "till"
kind = "queue"
polygon = [[0.1, 0.1], [0.3, 0.1], [0.3, 0.3], [0.1, 0.3]]
service_per_min = 2.0

[[zones]]
name = "shelf"
kind = "shelf"
polygon = [[0.5, 0.1], [0.9, 0.1], [0.9, 0.4]]
loiter_s = 120

[heatmap]
cols = 32
rows = 18
"#;

    #[test]
    fn a_good_config_validates() {
        let c = AnalyticsConfig::parse(GOOD).expect("valid");
        assert_eq!((c.version, c.bin_minutes), (3, 15));
        assert_eq!((c.lines.len(), c.zones.len()), (2, 2));
        assert_eq!(c.heatmap, Some((32, 18)));
    }

    /// Each malformed config is rejected with the right path.
    #[test]
    fn malformed_configs_are_rejected_with_their_path() {
        let line = |pts: &str| {
            format!("version = 1\n[[lines]]\nname = \"a\"\npoints = {pts}\nin_side = \"left\"\n")
        };
        let zone = |extra: &str, poly: &str| {
            format!("version = 1\n[[zones]]\nname = \"z\"\npolygon = {poly}\n{extra}\n")
        };
        let sq = "[[0.1, 0.1], [0.3, 0.1], [0.3, 0.3], [0.1, 0.3]]";
        let many_points = format!(
            "[{}]",
            (0..17)
                .map(|i| format!("[{}, 0.5]", f64::from(i) / 20.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let many_zones: String = (0..17)
            .map(|i| format!("[[zones]]\nname = \"z{i}\"\npolygon = {sq}\n"))
            .collect();
        let many_lines: String = (0..9)
            .map(|i| {
                format!("[[lines]]\nname = \"l{i}\"\npoints = [[0.1, 0.1], [0.2, 0.2]]\nin_side = \"left\"\n")
            })
            .collect();
        let cases: Vec<(String, &str)> = vec![
            (
                line("[[0.2, 0.5], [0.2, 0.5]]"),
                "lines[0].points: segment 0 has zero length",
            ),
            (
                line("[[0.2, 0.5]]"),
                "lines[0].points: needs at least 2 points",
            ),
            (
                line("[[0.2, 1.5], [0.3, 0.5]]"),
                "lines[0].points[0]: (0.2, 1.5) is outside 0..1",
            ),
            (line("[[-0.1, 0.5], [0.3, 0.5]]"), "lines[0].points[0]"),
            (
                line("[[0.2, nan], [0.3, 0.5]]"),
                "lines[0].points[0]: coordinate is not a number",
            ),
            (
                line("[[0.2, 0.5], [inf, 0.5]]"),
                "lines[0].points[1]: coordinate is not a number",
            ),
            (line(&many_points), "lines[0].points: 17 points, at most 16"),
            (
                format!("{}band = 0.5\n", line("[[0.1, 0.1], [0.2, 0.2]]")),
                "lines[0].band",
            ),
            (
                zone("", "[[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]"),
                "zones[0].polygon: edges 0 and 2 cross",
            ),
            (
                zone("", "[[0.1, 0.1], [0.2, 0.2]]"),
                "zones[0].polygon: needs at least 3 points",
            ),
            (
                zone("", "[[0.1, 0.1], [0.2, 0.1], [0.3, 0.1]]"),
                "zones[0].polygon: has zero area",
            ),
            (zone("enter_s = -1.0", sq), "zones[0].enter_s"),
            (zone("exit_s = nan", sq), "zones[0].exit_s"),
            (zone("loiter_s = 1e9", sq), "zones[0].loiter_s"),
            (
                zone("kind = \"queue\"", sq),
                "zones[0].service_per_min: a queue zone needs",
            ),
            (
                zone("kind = \"queue\"\nservice_per_min = 0.0", sq),
                "zones[0].service_per_min: 0 must be positive",
            ),
            (
                zone("service_per_min = 1.0", sq),
                "zones[0].service_per_min: only queue zones",
            ),
            (
                format!("version = 1\n{many_zones}"),
                "zones: 17 zones, at most 16",
            ),
            (
                format!("version = 1\n{many_lines}"),
                "lines: 9 lines, at most 8",
            ),
            (
                format!(
                    "{}[[lines]]\nname = \"a\"\npoints = [[0.5, 0.1], [0.6, 0.2]]\nin_side = \"right\"\n",
                    line("[[0.1, 0.1], [0.2, 0.2]]")
                ),
                "lines[1].name: \"a\" is used twice",
            ),
            (zone("name2 = 1", sq), "unknown field `name2`"),
            (
                "version = 1\nbin_minutes = 7\n".into(),
                "bin_minutes: 7 is not 1, 5 or 15",
            ),
            (
                "version = 1\npassers_by = \"nowhere\"\n".into(),
                "passers_by: \"nowhere\"",
            ),
            (
                "version = 1\n[heatmap]\ncols = 0\nrows = 18\n".into(),
                "heatmap: 0x18 cells",
            ),
            ("bin_minutes = 5\n".into(), "missing field `version`"),
            (
                line("[[0.1, 0.1], [0.2, 0.2]]").replace("\"left\"", "\"up\""),
                "unknown variant `up`",
            ),
            (
                zone("", sq).replace("name = \"z\"", "name = \"\""),
                "zones[0].name: empty",
            ),
            (
                zone("interaction_s = 3.0", sq),
                "zones[0].interaction_s: only shelf zones have an interaction time",
            ),
            (
                zone("kind = \"shelf\"\ninteraction_s = -1.0", sq),
                "zones[0].interaction_s: -1 is not within 0..3600 s",
            ),
            (
                "version = 1\n[occupancy]\nreset_at = \"25:00\"\n".to_string(),
                "occupancy.reset_at: \"25:00\" is not a time of day (HH:MM)",
            ),
            (
                "version = 1\n[occupancy]\nreset_at = \"04:00\"\nutc_offset_minutes = 2000\n"
                    .to_string(),
                "occupancy.utc_offset_minutes: 2000 is not within -840..840",
            ),
            (
                "version = 1\nanchor = \"top\"\n".to_string(),
                "unknown variant `top`",
            ),
        ];
        assert!(cases.len() >= 20);
        let mut distinct = HashSet::new();
        for (text, want) in &cases {
            let err = AnalyticsConfig::parse(text).expect_err(want);
            let msg = err.to_string();
            assert!(
                msg.contains(want),
                "expected {want:?} in:\n{msg}\nfor:\n{text}"
            );
            distinct.insert(*want);
        }
        assert_eq!(distinct.len(), cases.len());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
version = 1
bin_minutes = 2
[[lines]]
name = "door"
points = [[0.1, 0.1], [0.1, 0.1]]
in_side = "left"
[[zones]]
name = "door"
polygon = [[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]]
"#;
        let err = AnalyticsConfig::parse(text).expect_err("invalid");
        assert_eq!(err.problems.len(), 4, "{err}");
    }

    #[test]
    fn bad_shelves_are_refused_with_every_reason() {
        // A shelf reaching outside the frame, facings that overlap and
        // leave a gap, a shelf named like a zone, a bad setting.
        let text = r#"
version = 5
[[zones]]
name = "aisle"
polygon = [[0.0, 0.6], [1.0, 0.6], [1.0, 1.0], [0.0, 1.0]]
[[shelves]]
name = "tall"
polygon = [[0.1, -0.1], [0.5, -0.1], [0.5, 0.4], [0.1, 0.4]]
grid = [2, 3]
front = [[0.1, 0.4], [0.5, 0.4], [0.5, 0.6], [0.1, 0.6]]
[[shelves]]
name = "aisle"
polygon = [[0.6, 0.1], [0.9, 0.1], [0.9, 0.4], [0.6, 0.4]]
front = [[0.6, 0.4], [0.9, 0.4], [0.9, 0.6], [0.6, 0.6]]
[[shelves.facings]]
name = "a"
polygon = [[0.6, 0.1], [0.8, 0.1], [0.8, 0.4], [0.6, 0.4]]
[[shelves.facings]]
name = "b"
polygon = [[0.7, 0.1], [0.85, 0.1], [0.85, 0.4], [0.7, 0.4]]
[shelf_check]
persistence = 0
"#;
        let err = AnalyticsConfig::parse(text).expect_err("invalid");
        let all = err.problems.join("\n");
        for want in [
            "shelves[0].polygon[0]: (0.1, -0.1) is outside 0..1",
            "shelves[1].name: \"aisle\" is also the name of a line or zone",
            "shelves[1].facings[0] and facings[1] overlap (a and b)",
            "shelves[1].facings: do not tile the shelf",
            "shelf_check: persistence 0 must be 1 to 100",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        // Unknown fields are named, as for lines and zones.
        let err = AnalyticsConfig::parse(
            "version = 1\n[[shelves]]\nname = \"s\"\npolygon = []\nfront = []\nrows = 2\n",
        )
        .expect_err("unknown field");
        assert!(err.problems[0].contains("unknown field `rows`"), "{err}");
    }
}
