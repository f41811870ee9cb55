//! Shelf scenario files (`tests/shelf-scenes/NAME.toml`): the shelves, the
//! stock events, the shoppers and the disturbances of one clip.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::SceneError;
use crate::geom::{self, Point};
use crate::scenario::{Key, Person, ScenarioFile, Waypoint, load_checked, parse_checked, position};
use crate::sprites::SPRITES;

/// Slack for comparing times.
pub(crate) const EPS: f64 = 1e-9;

/// The camera refuses nothing closer, but a scene where two stock changes
/// of one facing come closer than this cannot be judged: the camera needs
/// a few clean observations to settle on a state.
pub const MIN_FACING_GAP_S: f64 = 2.0;

/// A shelf scenario as written in `tests/shelf-scenes/NAME.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShelfScenario {
    /// The file stem; set by [`ShelfScenario::load`].
    #[serde(skip)]
    pub name: String,
    /// The file it came from; set by [`ShelfScenario::load`], names it in errors.
    #[serde(skip)]
    pub path: PathBuf,
    /// One line: what happens.
    pub description: String,
    /// Seeds every random choice (product looks, removal order, noise).
    pub seed: u64,
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// Length of the clip; frames = round(duration_s * fps).
    pub duration_s: f64,
    /// Standard deviation of the per-frame sensor noise, grey levels.
    #[serde(default = "default_noise")]
    pub noise: f64,
    /// The clean start (everything stocked, nobody in view, steady light
    /// and camera) during which the camera takes its reference.
    #[serde(default = "default_reference")]
    pub reference_s: f64,
    /// camera-app's `shelf_check.stop_s`: a stop is a foot point in the
    /// front zone at least this long.
    #[serde(default = "default_stop")]
    pub stop_s: f64,
    /// Sprite height / frame height for a foot at y = 0 (linear in y).
    #[serde(default = "default_height_at_top")]
    pub height_at_top: f64,
    /// Sprite height / frame height for a foot at y = 1.
    #[serde(default = "default_height_at_bottom")]
    pub height_at_bottom: f64,
    pub shelves: Vec<ShelfSpec>,
    #[serde(default)]
    pub remove: Vec<Remove>,
    #[serde(default)]
    pub restock: Vec<Restock>,
    #[serde(default)]
    pub people: Vec<Shopper>,
    #[serde(default)]
    pub lighting: Vec<Lighting>,
    #[serde(default)]
    pub shake: Vec<Shake>,
}

fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    360
}
fn default_fps() -> u32 {
    5
}
fn default_noise() -> f64 {
    3.0
}
fn default_reference() -> f64 {
    2.0
}
fn default_stop() -> f64 {
    3.0
}
// A shopper standing with the feet at y 0.75..0.95 is 52..65 % of the
// frame height: big enough for the person detector at 352 px input.
fn default_height_at_top() -> f64 {
    0.03
}
fn default_height_at_bottom() -> f64 {
    0.68
}
fn default_units() -> u32 {
    3
}
fn default_one() -> u32 {
    1
}

/// One shelf: a quadrilateral divided into `rows × cols` facings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShelfSpec {
    pub name: String,
    /// Corners, normalised, clockwise on screen from the top-left.
    pub polygon: [[f64; 2]; 4],
    /// `[rows, cols]`.
    pub grid: [u32; 2],
    /// Products side by side in each facing.
    #[serde(default = "default_units")]
    pub units: u32,
    /// Floor area where a shopper's feet are when at the shelf (default:
    /// below the shelf, from just under it to near the bottom of the frame).
    #[serde(default)]
    pub front: Option<Vec<[f64; 2]>>,
}

impl ShelfSpec {
    /// Number of facings.
    pub fn facings(&self) -> usize {
        self.grid[0] as usize * self.grid[1] as usize
    }

    /// Name of facing `i` (row-major): `r1c1`, `r1c2`, ...
    pub fn facing_name(&self, i: usize) -> String {
        let cols = self.grid[1] as usize;
        format!("r{}c{}", i / cols + 1, i % cols + 1)
    }

    /// Index (row-major) of a facing named `r{row}c{col}`, 1-based.
    pub fn facing_index(&self, name: &str) -> Option<usize> {
        let (r, c) = name.strip_prefix('r')?.split_once('c')?;
        let (r, c): (u32, u32) = (r.parse().ok()?, c.parse().ok()?);
        let [rows, cols] = self.grid;
        ((1..=rows).contains(&r) && (1..=cols).contains(&c))
            .then(|| (r - 1) as usize * cols as usize + (c - 1) as usize)
    }

    /// The point at (u, v) of the shelf's bilinear parametrisation: u
    /// along the rows (0 = left edge), v down the columns (0 = top edge).
    pub fn at(&self, u: f64, v: f64) -> Point {
        let [a, b, c, d] = self.polygon.map(|[x, y]| Point::new(x, y));
        a.lerp(b, u).lerp(d.lerp(c, u), v)
    }

    /// The polygon of facing `i`: the bilinear sub-quad of its cell, as
    /// camera-app divides a grid shelf.
    pub fn facing_polygon(&self, i: usize) -> [Point; 4] {
        let [rows, cols] = self.grid.map(f64::from);
        let cols_n = self.grid[1] as usize;
        let (r, c) = ((i / cols_n) as f64, (i % cols_n) as f64);
        let (u0, u1) = (c / cols, (c + 1.0) / cols);
        let (v0, v1) = (r / rows, (r + 1.0) / rows);
        [
            self.at(u0, v0),
            self.at(u1, v0),
            self.at(u1, v1),
            self.at(u0, v1),
        ]
    }

    /// The front zone, given or by default.
    pub fn front(&self) -> Vec<[f64; 2]> {
        if let Some(f) = &self.front {
            return f.clone();
        }
        let [_, _, c, d] = self.polygon;
        let top = (c[1].max(d[1]) + 0.08).min(0.9);
        let (x0, x1) = (d[0].max(0.0), c[0].min(1.0));
        vec![[x0, top], [x1, top], [x1, 0.97], [x0, 0.97]]
    }

    /// The front zone as points.
    pub fn front_points(&self) -> Vec<Point> {
        self.front()
            .iter()
            .map(|&[x, y]| Point::new(x, y))
            .collect()
    }
}

/// Units taken off a facing by an unseen hand (a shopper out of view, an
/// employee clearing it).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remove {
    pub t: f64,
    pub shelf: String,
    pub facing: String,
    #[serde(default = "default_one")]
    pub units: u32,
}

/// A facing (or, without `facing`, every facing of the shelf) filled up.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restock {
    pub t: f64,
    pub shelf: String,
    #[serde(default)]
    pub facing: Option<String>,
}

/// A shopper: a sprite walking along foot-point waypoints, as in
/// `tests/scenes`, who may take units while standing at a shelf.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shopper {
    /// Index into [`SPRITES`].
    pub sprite: usize,
    #[serde(default)]
    pub flip: bool,
    /// Walking speed (normalised units per second) for waypoints without `t`.
    #[serde(default)]
    pub speed: Option<f64>,
    pub path: Vec<Waypoint>,
    #[serde(default)]
    pub takes: Vec<Take>,
}

impl Shopper {
    /// The path as timed keys, with `tests/scenes`' rules.
    pub fn keys(&self) -> Result<Vec<Key>, String> {
        Person {
            sprite: self.sprite,
            flip: self.flip,
            jitter_px: 0.0,
            speed: self.speed,
            path: self.path.clone(),
        }
        .keys()
    }
}

/// One unit taken by the shopper at `t`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Take {
    pub t: f64,
    pub shelf: String,
    pub facing: String,
}

/// From `t` the whole image's gain goes linearly to `gain` over `ramp_s`
/// (0: at once) and stays there.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lighting {
    pub t: f64,
    pub gain: f64,
    #[serde(default)]
    pub ramp_s: f64,
}

/// From `t` for `duration_s` the whole image is moved by (dx, dy) pixels.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shake {
    pub t: f64,
    pub dx: i32,
    pub dy: i32,
    pub duration_s: f64,
}

/// What a stock event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockChange {
    Remove(u32),
    Restock,
}

/// A stock event on one facing, from `remove`, `restock` or a take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StockEvent {
    pub t: f64,
    pub shelf: usize,
    pub facing: usize,
    pub change: StockChange,
    /// The shopper, for a take.
    pub person: Option<usize>,
}

impl ShelfScenario {
    /// Read, parse and check a shelf scenario file.
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

    /// Time of frame `i`.
    pub fn frame_time(&self, i: usize) -> f64 {
        i as f64 / f64::from(self.fps)
    }

    /// Sprite height in pixels for a foot at normalised `y`.
    pub fn sprite_height_px(&self, y: f64) -> f64 {
        (self.height_at_top + (self.height_at_bottom - self.height_at_top) * y)
            * f64::from(self.height)
    }

    /// Every shopper's keys (checked by `load`).
    pub fn keys(&self) -> Result<Vec<Vec<Key>>, String> {
        self.people
            .iter()
            .enumerate()
            .map(|(i, p)| p.keys().map_err(|e| format!("people[{i}].{e}")))
            .collect()
    }

    fn shelf_index(&self, name: &str) -> Option<usize> {
        self.shelves.iter().position(|s| s.name == name)
    }

    /// Resolve a (shelf, facing) pair, or say what is wrong with it.
    fn facing_at(&self, what: &str, shelf: &str, facing: &str) -> Result<(usize, usize), String> {
        let s = self.shelf_index(shelf).ok_or_else(|| {
            let names: Vec<&str> = self.shelves.iter().map(|s| s.name.as_str()).collect();
            format!("{what}.shelf: {shelf:?} is not a shelf (shelves: {names:?})")
        })?;
        let spec = &self.shelves[s];
        let f = spec.facing_index(facing).ok_or_else(|| {
            format!(
                "{what}.facing: {facing:?} is not a facing of shelf {shelf:?} \
                 (grid {}x{}: r1c1..r{}c{})",
                spec.grid[0], spec.grid[1], spec.grid[0], spec.grid[1]
            )
        })?;
        Ok((s, f))
    }

    /// Every stock event, by time (removals, restocks and takes), or the
    /// problems with them.
    pub fn stock_events(&self) -> Result<Vec<StockEvent>, Vec<String>> {
        let mut p = Vec::new();
        let mut ev = Vec::new();
        for (i, r) in self.remove.iter().enumerate() {
            match self.facing_at(&format!("remove[{i}]"), &r.shelf, &r.facing) {
                Ok((shelf, facing)) => ev.push(StockEvent {
                    t: r.t,
                    shelf,
                    facing,
                    change: StockChange::Remove(r.units),
                    person: None,
                }),
                Err(e) => p.push(e),
            }
        }
        for (i, r) in self.restock.iter().enumerate() {
            let what = format!("restock[{i}]");
            let (shelf, facings) = match &r.facing {
                Some(f) => match self.facing_at(&what, &r.shelf, f) {
                    Ok((s, f)) => (s, vec![f]),
                    Err(e) => {
                        p.push(e);
                        continue;
                    }
                },
                None => match self.shelf_index(&r.shelf) {
                    Some(s) => (s, (0..self.shelves[s].facings()).collect()),
                    None => {
                        p.push(format!("{what}.shelf: {:?} is not a shelf", r.shelf));
                        continue;
                    }
                },
            };
            for facing in facings {
                ev.push(StockEvent {
                    t: r.t,
                    shelf,
                    facing,
                    change: StockChange::Restock,
                    person: None,
                });
            }
        }
        for (i, person) in self.people.iter().enumerate() {
            for (j, take) in person.takes.iter().enumerate() {
                let what = format!("people[{i}].takes[{j}]");
                match self.facing_at(&what, &take.shelf, &take.facing) {
                    Ok((shelf, facing)) => ev.push(StockEvent {
                        t: take.t,
                        shelf,
                        facing,
                        change: StockChange::Remove(1),
                        person: Some(i),
                    }),
                    Err(e) => p.push(e),
                }
            }
        }
        ev.sort_by(|a, b| a.t.total_cmp(&b.t));
        if p.is_empty() { Ok(ev) } else { Err(p) }
    }

    /// The lighting gain at time `t`.
    pub fn gain_at(&self, t: f64) -> f64 {
        let mut gain = 1.0;
        for l in &self.lighting {
            if t < l.t {
                break;
            }
            gain = if l.ramp_s > 0.0 && t < l.t + l.ramp_s {
                gain + (l.gain - gain) * (t - l.t) / l.ramp_s
            } else {
                l.gain
            };
        }
        gain
    }

    /// The camera's displacement (pixels) at time `t`.
    pub fn shake_at(&self, t: f64) -> (i32, i32) {
        self.shake
            .iter()
            .find(|s| t >= s.t - EPS && t < s.t + s.duration_s - EPS)
            .map_or((0, 0), |s| (s.dx, s.dy))
    }

    fn check(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(16..=4096).contains(&self.width) || !(16..=4096).contains(&self.height) {
            p.push(format!(
                "frame size {}x{} is not within 16..4096",
                self.width, self.height
            ));
        }
        if !(1..=60).contains(&self.fps) {
            p.push(format!("fps: {} is not within 1..60", self.fps));
        }
        let d = self.duration_s;
        if !(d.is_finite() && d > 0.0 && d <= 600.0) {
            p.push(format!("duration_s: {d} is not within 0..600"));
            return p;
        }
        if !(self.noise.is_finite() && (0.0..=50.0).contains(&self.noise)) {
            p.push(format!("noise: {} is not within 0..50", self.noise));
        }
        if !(self.reference_s.is_finite() && self.reference_s >= 0.0 && self.reference_s < d) {
            p.push(format!(
                "reference_s: {} is not within 0..duration_s",
                self.reference_s
            ));
        }
        if !(self.stop_s.is_finite() && self.stop_s > 0.0 && self.stop_s <= 3600.0) {
            p.push(format!("stop_s: {} is not within 0..3600", self.stop_s));
        }
        for (field, v) in [
            ("height_at_top", self.height_at_top),
            ("height_at_bottom", self.height_at_bottom),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 2.0) {
                p.push(format!("{field}: {v} is not within 0..2"));
            }
        }
        self.shelf_problems(&mut p);
        // Events: inside the clip, after the clean reference start.
        let (r, end) = (self.reference_s, d);
        let mut timed = |what: String, t0: f64, t1: f64| {
            if !(t0.is_finite() && t1.is_finite() && t0 >= r - EPS && t1 <= end + EPS) {
                p.push(format!(
                    "{what}: {t0} s..{t1} s is outside the clip after its clean start \
                     ({r} s..{end} s)"
                ));
            }
        };
        for (i, e) in self.remove.iter().enumerate() {
            timed(format!("remove[{i}].t"), e.t, e.t);
        }
        for (i, e) in self.restock.iter().enumerate() {
            timed(format!("restock[{i}].t"), e.t, e.t);
        }
        for (i, e) in self.lighting.iter().enumerate() {
            timed(format!("lighting[{i}]"), e.t, e.t + e.ramp_s);
        }
        for (i, e) in self.shake.iter().enumerate() {
            timed(format!("shake[{i}]"), e.t, e.t + e.duration_s);
        }
        for (i, person) in self.people.iter().enumerate() {
            for (j, e) in person.takes.iter().enumerate() {
                timed(format!("people[{i}].takes[{j}].t"), e.t, e.t);
            }
        }
        self.disturbance_problems(&mut p);
        self.people_problems(&mut p);
        match self.stock_events() {
            Ok(ev) => self.stock_problems(&ev, &mut p),
            Err(e) => p.extend(e),
        }
        p
    }

    fn shelf_problems(&self, p: &mut Vec<String>) {
        if self.shelves.is_empty() {
            p.push("shelves: at least one shelf is needed".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, s) in self.shelves.iter().enumerate() {
            if s.name.is_empty() || !names.insert(s.name.as_str()) {
                p.push(format!(
                    "shelves[{i}].name: {:?} is empty or used twice",
                    s.name
                ));
            }
            // Inside the frame, so every facing is.
            if !s
                .polygon
                .iter()
                .all(|&[x, y]| (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y))
            {
                p.push(format!("shelves[{i}].polygon: corners must be within 0..1"));
            }
            // Convex and clockwise on screen (y down) from the top-left.
            let pts = s.polygon.map(|[x, y]| Point::new(x, y));
            let convex_cw = (0..4).all(|k| {
                let (a, b, c) = (pts[k], pts[(k + 1) % 4], pts[(k + 2) % 4]);
                b.minus(a).cross(c.minus(b)) > 0.0
            });
            let top_left_first = pts[0].x < pts[1].x && pts[3].x < pts[2].x && pts[0].y < pts[3].y;
            if !(convex_cw && top_left_first) {
                p.push(format!(
                    "shelves[{i}].polygon: must be convex, clockwise from the top-left corner"
                ));
            }
            let [rows, cols] = s.grid;
            if !(1..=8).contains(&rows) || !(1..=12).contains(&cols) {
                p.push(format!(
                    "shelves[{i}].grid: [{rows}, {cols}] is not within [1..8, 1..12]"
                ));
            }
            if !(1..=6).contains(&s.units) {
                p.push(format!(
                    "shelves[{i}].units: {} is not within 1..6",
                    s.units
                ));
            }
            let front = s.front();
            if !(3..=16).contains(&front.len())
                || !front
                    .iter()
                    .all(|&[x, y]| (0.0..=1.0).contains(&x) && (0.0..=1.0).contains(&y))
            {
                p.push(format!(
                    "shelves[{i}].front: needs 3..16 points within 0..1"
                ));
            }
        }
    }

    fn disturbance_problems(&self, p: &mut Vec<String>) {
        let mut prev_end = f64::NEG_INFINITY;
        for (i, l) in self.lighting.iter().enumerate() {
            if !(0.6..=1.4).contains(&l.gain) {
                p.push(format!(
                    "lighting[{i}].gain: {} is not within 0.6..1.4",
                    l.gain
                ));
            }
            if !(l.ramp_s.is_finite() && l.ramp_s >= 0.0) {
                p.push(format!("lighting[{i}].ramp_s: {} is not >= 0", l.ramp_s));
            }
            if l.t < prev_end + EPS && i > 0 {
                p.push(format!(
                    "lighting[{i}].t: {} s is not after the previous change ends at {prev_end} s",
                    l.t
                ));
            }
            prev_end = l.t + l.ramp_s;
        }
        let mut prev_end = f64::NEG_INFINITY;
        for (i, s) in self.shake.iter().enumerate() {
            if s.dx.abs() > 2 || s.dy.abs() > 2 || (s.dx, s.dy) == (0, 0) {
                p.push(format!(
                    "shake[{i}]: ({}, {}) must move by 1..2 pixels in x or y",
                    s.dx, s.dy
                ));
            }
            if !(s.duration_s.is_finite() && s.duration_s > 0.0) {
                p.push(format!(
                    "shake[{i}].duration_s: {} is not > 0",
                    s.duration_s
                ));
            }
            if s.t < prev_end - EPS {
                p.push(format!(
                    "shake[{i}].t: {} s is before the previous shake ends at {prev_end} s",
                    s.t
                ));
            }
            prev_end = s.t + s.duration_s;
        }
    }

    fn people_problems(&self, p: &mut Vec<String>) {
        let keys = match self.keys() {
            Ok(k) => k,
            Err(e) => {
                p.push(e);
                return;
            }
        };
        for (i, person) in self.people.iter().enumerate() {
            if person.sprite >= SPRITES.len() {
                p.push(format!(
                    "people[{i}].sprite: {} is not one of the {} sprites",
                    person.sprite,
                    SPRITES.len()
                ));
                continue;
            }
            // Nobody in view during the reference: the sprite's widest
            // shape (aspect 1) must be out of the frame at every frame.
            let mut k = 0;
            while self.frame_time(k) < self.reference_s - EPS {
                if let Some(f) = position(&keys[i], self.frame_time(k)) {
                    let h = self.sprite_height_px(f.y) / f64::from(self.height);
                    let half_w = h * f64::from(self.height) / f64::from(self.width) / 2.0;
                    let in_view =
                        f.x + half_w > 0.0 && f.x - half_w < 1.0 && f.y > 0.0 && f.y - h < 1.0;
                    if in_view {
                        p.push(format!(
                            "people[{i}]: in view at {} s, during the clean reference \
                             start (0..{} s)",
                            self.frame_time(k),
                            self.reference_s
                        ));
                        break;
                    }
                }
                k += 1;
            }
            for (j, take) in person.takes.iter().enumerate() {
                let Some(s) = self.shelf_index(&take.shelf) else {
                    continue;
                };
                let at = position(&keys[i], take.t);
                let front = self.shelves[s].front_points();
                if !at.is_some_and(|f| geom::polygon_contains(&front, f)) {
                    p.push(format!(
                        "people[{i}].takes[{j}]: at {} s the shopper is not standing in \
                         shelf {:?}'s front zone",
                        take.t, take.shelf
                    ));
                }
            }
        }
    }

    fn stock_problems(&self, ev: &[StockEvent], p: &mut Vec<String>) {
        let mut left: Vec<Vec<u32>> = self
            .shelves
            .iter()
            .map(|s| vec![s.units; s.facings()])
            .collect();
        let mut last: Vec<Vec<f64>> = self
            .shelves
            .iter()
            .map(|s| vec![f64::NEG_INFINITY; s.facings()])
            .collect();
        for e in ev {
            let spec = &self.shelves[e.shelf];
            let here = format!(
                "shelf {:?} facing {}",
                spec.name,
                spec.facing_name(e.facing)
            );
            let prev = last[e.shelf][e.facing];
            if e.t - prev < MIN_FACING_GAP_S - EPS {
                p.push(format!(
                    "{here}: stock changes at {prev} s and {} s are closer than {MIN_FACING_GAP_S} s",
                    e.t
                ));
            }
            last[e.shelf][e.facing] = e.t;
            let n = &mut left[e.shelf][e.facing];
            match e.change {
                StockChange::Remove(k) => {
                    if k == 0 || k > *n {
                        p.push(format!(
                            "{here}: cannot remove {k} unit(s) at {} s, {n} left",
                            e.t
                        ));
                    }
                    *n = n.saturating_sub(k);
                }
                StockChange::Restock => *n = spec.units,
            }
        }
    }
}

/// The repository's shelf scenario directory, `tests/shelf-scenes`.
pub fn shelf_scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shelf-scenes")
}

/// Every `*.toml` shelf scenario in `dir`, sorted by name.
pub fn shelf_scenario_files(dir: &Path) -> Result<Vec<PathBuf>, SceneError> {
    crate::scenario::scenario_files(dir)
}

impl ScenarioFile for ShelfScenario {
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

    pub(crate) const BASE: &str = r#"
description = "test"
seed = 3
duration_s = 20
[[shelves]]
name = "left"
polygon = [[0.1, 0.1], [0.6, 0.1], [0.6, 0.5], [0.1, 0.5]]
grid = [2, 4]
"#;

    fn parse(extra: &str) -> Result<ShelfScenario, SceneError> {
        ShelfScenario::parse("t", &format!("{BASE}{extra}"), Path::new("t.toml"))
    }

    #[test]
    fn facing_names_round_trip() {
        let s = parse("").expect("parses");
        let spec = &s.shelves[0];
        assert_eq!(spec.facing_name(5), "r2c2");
        assert_eq!(spec.facing_index("r2c2"), Some(5));
        assert_eq!(spec.facing_index("r3c1"), None);
        assert_eq!(spec.facing_index("x"), None);
    }

    #[test]
    fn gain_ramps_and_steps() {
        let s = parse(
            "[[lighting]]\nt = 4\ngain = 0.6\nramp_s = 4\n[[lighting]]\nt = 10\ngain = 1.4\n",
        )
        .expect("parses");
        assert!((s.gain_at(3.0) - 1.0).abs() < 1e-12);
        assert!((s.gain_at(6.0) - 0.8).abs() < 1e-12);
        assert!((s.gain_at(9.0) - 0.6).abs() < 1e-12);
        assert!((s.gain_at(10.0) - 1.4).abs() < 1e-12);
    }

    #[test]
    fn removing_more_than_is_left_is_refused() {
        let e = parse(
            "[[remove]]\nt = 3\nshelf = \"left\"\nfacing = \"r1c1\"\nunits = 2\n\
             [[remove]]\nt = 6\nshelf = \"left\"\nfacing = \"r1c1\"\nunits = 2\n",
        )
        .expect_err("refused");
        assert!(
            e.to_string()
                .contains("cannot remove 2 unit(s) at 6 s, 1 left"),
            "{e}"
        );
    }
}
