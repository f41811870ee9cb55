//! Watching the shelves over time: when to look, what to report.
//!
//! The monitor decides, frame by frame and without any I/O:
//! - whether a shelf may be observed now: at most once per `interval_s`,
//!   only once no tracked person's box has overlapped the shelf or its
//!   front zone for `clear_s`, and not while the view is tampered with or
//!   the light is changing fast (auto-exposure settling, lights switched);
//! - the facing states (through [`FacingState`]: hysteresis and
//!   persistence) and the shelf interactions (through [`Interactions`]);
//! - reference captures: requested for one shelf or all, refused with the
//!   reason while someone is in the way and retried until `reference_timeout_s`,
//!   averaged over `reference_frames` clean frames.
//!
//! The image is asked for only when it is needed (an observation or a
//! capture), so a camera converts a frame to RGB once per interval, not
//! per frame.

use serde::Deserialize;

use super::compare::{RgbView, ShelfError, ShelfReference, ShelfState};
use super::interact::{Interaction, Interactions};
use super::layout::Shelf;
use super::state::{Change, FacingState, Stock, Thresholds};
use crate::geom::Point;
use crate::track::TrackId;

/// How shelves are watched, as configured (`[shelf_check]` in the
/// analytics configuration).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawShelfCheck {
    /// Seconds between two observations of a shelf.
    pub interval_s: f64,
    /// A shelf is observed only after nobody has been in its way this long.
    pub clear_s: f64,
    /// A stay in the front zone this long is a stop.
    pub stop_s: f64,
    /// A facing whose fill drops this much after a stop makes it a take.
    pub take_drop: f32,
    pub low_below: f32,
    pub empty_below: f32,
    pub hysteresis: f32,
    /// Consecutive agreeing observations before a state holds.
    pub persistence: u32,
    /// Frames averaged into a reference.
    pub reference_frames: u32,
    /// A reference request waits this long for the shelf to clear.
    pub reference_timeout_s: f64,
    /// Mean brightness changing faster than this share per second counts
    /// as a lighting change: no observation until it has settled.
    pub max_light_change: f32,
}

impl Default for RawShelfCheck {
    fn default() -> Self {
        let t = Thresholds::default();
        Self {
            interval_s: 2.0,
            clear_s: 1.0,
            stop_s: 3.0,
            take_drop: 0.15,
            low_below: t.low_below,
            empty_below: t.empty_below,
            hysteresis: t.hysteresis,
            persistence: t.persistence,
            reference_frames: 5,
            reference_timeout_s: 120.0,
            max_light_change: 0.1,
        }
    }
}

/// The validated settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ShelfCheck {
    pub interval_us: i64,
    pub clear_us: i64,
    pub stop_s: f64,
    pub take_drop: f32,
    pub thresholds: Thresholds,
    pub reference_frames: u32,
    pub reference_timeout_us: i64,
    pub max_light_change: f32,
}

impl Default for ShelfCheck {
    fn default() -> Self {
        RawShelfCheck::default()
            .validate()
            .unwrap_or_else(|p| unreachable!("defaults are valid: {p:?}"))
    }
}

impl RawShelfCheck {
    /// Every problem, each with its path (`shelf_check.interval_s: …`).
    pub fn validate(&self) -> Result<ShelfCheck, Vec<String>> {
        let mut p = Vec::new();
        let mut secs = |v: f64, name: &str, lo: f64, hi: f64| {
            if !(v.is_finite() && (lo..=hi).contains(&v)) {
                p.push(format!(
                    "shelf_check.{name}: {v} is not within {lo}..{hi} s"
                ));
            }
            (v * 1e6) as i64
        };
        let interval_us = secs(self.interval_s, "interval_s", 0.1, 3600.0);
        let clear_us = secs(self.clear_s, "clear_s", 0.0, 60.0);
        secs(self.stop_s, "stop_s", 0.5, 3600.0);
        let reference_timeout_us =
            secs(self.reference_timeout_s, "reference_timeout_s", 0.0, 3600.0);
        if !(self.take_drop.is_finite() && (0.01..=1.0).contains(&self.take_drop)) {
            p.push(format!(
                "shelf_check.take_drop: {} is not within 0.01..1",
                self.take_drop
            ));
        }
        if !(1..=50).contains(&self.reference_frames) {
            p.push(format!(
                "shelf_check.reference_frames: {} is not 1 to 50",
                self.reference_frames
            ));
        }
        if !(self.max_light_change.is_finite() && self.max_light_change > 0.0) {
            p.push(format!(
                "shelf_check.max_light_change: {} must be positive",
                self.max_light_change
            ));
        }
        let thresholds = Thresholds {
            low_below: self.low_below,
            empty_below: self.empty_below,
            hysteresis: self.hysteresis,
            persistence: self.persistence,
        };
        p.extend(
            thresholds
                .problems()
                .into_iter()
                .map(|m| format!("shelf_check: {m}")),
        );
        if p.is_empty() {
            Ok(ShelfCheck {
                interval_us,
                clear_us,
                stop_s: self.stop_s,
                take_drop: self.take_drop,
                thresholds,
                reference_frames: self.reference_frames,
                reference_timeout_us,
                max_light_change: self.max_light_change,
            })
        } else {
            Err(p)
        }
    }
}

/// What the monitor knows of a frame besides its pixels.
#[derive(Debug, Clone, Copy)]
pub struct FrameFacts<'a> {
    pub now_us: i64,
    /// Every live track's box, normalised `[x1, y1, x2, y2]` (coasting
    /// tracks too: a shopper the detector lost for a frame is still there).
    pub people: &'a [[f32; 4]],
    /// Each live track's anchor point (normalised), for stops.
    pub feet: &'a [(TrackId, Point)],
    /// A tamper condition is raised.
    pub tampered: bool,
    /// Mean luma of the frame (0..255), when known.
    pub luma: Option<f32>,
}

/// A packed RGB copy of a frame, made only when the monitor asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbImage {
    pub fn view(&self) -> RgbView<'_> {
        RgbView {
            width: self.width,
            height: self.height,
            data: &self.data,
        }
    }
}

/// How a reference request ended, or that it waits.
#[derive(Debug, Clone, PartialEq)]
pub enum ReferenceOutcome {
    /// Someone is in the way (or the view is tampered, or the light is
    /// changing): refused for now, retried every frame until the timeout.
    /// Reported once per request.
    Waiting {
        shelves: Vec<String>,
        reason: String,
    },
    /// Taken: the references are in force (and should be stored).
    Taken { shelves: Vec<String>, version: u64 },
    /// Given up (timeout, or the judge refused it).
    Failed {
        shelves: Vec<String>,
        reason: String,
    },
}

/// What a frame produced.
#[derive(Debug, Clone, PartialEq)]
pub enum ShelfOutput {
    /// A facing's state took hold.
    Change {
        shelf: usize,
        facing: usize,
        change: Change,
    },
    /// A stop ended or a take was seen at shelf `.0`.
    Interaction(usize, Interaction),
    Reference(ReferenceOutcome),
}

/// Why a reference request was not accepted at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("no shelf named {name:?} (configured: {known})")]
    UnknownShelf { name: String, known: String },
    #[error("no shelves are configured")]
    NoShelves,
}

/// A reference capture in progress.
#[derive(Debug)]
struct Capture {
    shelves: Vec<usize>,
    started_us: i64,
    /// Pixel sums of the frames taken so far (all the same size).
    sum: Vec<u16>,
    size: (u32, u32),
    frames: u32,
    waiting_reported: bool,
}

/// Light steadiness from the mean luma: the last moment it changed fast.
#[derive(Debug, Clone, Default)]
struct LightGate {
    last: Option<(i64, f32)>,
    unsteady_at: Option<i64>,
}

impl LightGate {
    fn update(&mut self, now_us: i64, luma: Option<f32>, max_per_s: f32) {
        let Some(l) = luma.filter(|l| l.is_finite()) else {
            return;
        };
        match self.last {
            // Compared over at least half a second: per-frame noise of the
            // mean is small, but a frame apart the rate is ill-defined.
            Some((t0, l0)) if now_us - t0 >= 500_000 => {
                let dt = (now_us - t0) as f32 / 1e6;
                let rate = (l - l0).abs() / l0.max(8.0) / dt;
                if rate > max_per_s {
                    self.unsteady_at = Some(now_us);
                }
                self.last = Some((now_us, l));
            }
            Some(_) => {}
            None => self.last = Some((now_us, l)),
        }
    }

    /// Steady for a second at least.
    fn steady(&self, now_us: i64) -> bool {
        self.unsteady_at.is_none_or(|t| now_us - t >= 1_000_000)
    }
}

/// The shelf monitor of one configuration version.
#[derive(Debug)]
pub struct ShelfMonitor {
    version: u64,
    shelves: Vec<Shelf>,
    check: ShelfCheck,
    judge: Box<dyn ShelfState>,
    /// The references in force, as stored on flash.
    references: Vec<ShelfReference>,
    facings: Vec<Vec<FacingState>>,
    interactions: Interactions,
    /// Per shelf: since when nobody has been in its way.
    clear_since: Vec<Option<i64>>,
    last_observation_us: Option<i64>,
    light: LightGate,
    capture: Option<Capture>,
    fills: Vec<f32>,
    stops: Vec<(usize, Interaction)>,
}

fn overlaps(a: [f32; 4], b: [f32; 4]) -> bool {
    a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]
}

fn bbox(poly: &crate::geom::Polygon) -> [f32; 4] {
    poly.points().iter().fold(
        [f32::MAX, f32::MAX, f32::MIN, f32::MIN],
        |[x1, y1, x2, y2], p| [x1.min(p.x), y1.min(p.y), x2.max(p.x), y2.max(p.y)],
    )
}

impl ShelfMonitor {
    /// A monitor for `shelves` of configuration `version`, judged by
    /// `judge`. References of other versions are refused by the judge
    /// when they are handed over ([`Self::restore`]).
    pub fn new(
        version: u64,
        shelves: Vec<Shelf>,
        check: ShelfCheck,
        judge: Box<dyn ShelfState>,
    ) -> Self {
        let n = shelves.len();
        Self {
            version,
            facings: shelves
                .iter()
                .map(|s| vec![FacingState::default(); s.facings.len()])
                .collect(),
            interactions: Interactions::new(n, check.stop_s, check.take_drop),
            clear_since: vec![None; n],
            shelves,
            check,
            judge,
            references: Vec::new(),
            last_observation_us: None,
            light: LightGate::default(),
            capture: None,
            fills: Vec::new(),
            stops: Vec::new(),
        }
    }

    pub fn shelves(&self) -> &[Shelf] {
        &self.shelves
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The references in force (to be stored).
    pub fn references(&self) -> &[ShelfReference] {
        &self.references
    }

    /// The state of every facing of shelf `shelf` (`None`: not judged yet).
    pub fn states(&self, shelf: usize) -> Vec<Option<Stock>> {
        self.facings.get(shelf).map_or_else(Vec::new, |f| {
            f.iter().map(|s| s.current().map(|c| c.0)).collect()
        })
    }

    /// Shelves with no reference in force.
    pub fn without_reference(&self) -> Vec<&str> {
        self.shelves
            .iter()
            .filter(|s| !self.judge.ready(&s.name))
            .map(|s| s.name.as_str())
            .collect()
    }

    /// Hand over stored references. Those of another configuration version
    /// or of a shelf no longer configured are refused, each with its
    /// reason; the others are in force.
    pub fn restore(&mut self, references: Vec<ShelfReference>) -> Vec<ShelfError> {
        let mut refused = Vec::new();
        for r in references {
            if !self.shelves.iter().any(|s| s.name == r.name()) {
                refused.push(ShelfError::NoReference(format!(
                    "{} (stored, but no such shelf is configured)",
                    r.name()
                )));
                continue;
            }
            if let Err(e) = self.install(r) {
                refused.push(e);
            }
        }
        refused
    }

    fn install(&mut self, r: ShelfReference) -> Result<(), ShelfError> {
        if r.version() != self.version {
            return Err(ShelfError::Version {
                shelf: r.name().to_string(),
                reference: r.version(),
                config: self.version,
            });
        }
        self.judge.set_reference(&r)?;
        if let Some(i) = self.shelves.iter().position(|s| s.name == r.name()) {
            self.facings[i].iter_mut().for_each(FacingState::reset);
        }
        self.references.retain(|old| old.name() != r.name());
        self.references.push(r);
        Ok(())
    }

    /// Ask for a new reference of `shelf` (all shelves when `None`); it is
    /// taken over the next clean frames. A request replaces one in progress.
    pub fn request_reference(
        &mut self,
        shelf: Option<&str>,
        now_us: i64,
    ) -> Result<Vec<String>, RequestError> {
        if self.shelves.is_empty() {
            return Err(RequestError::NoShelves);
        }
        let shelves: Vec<usize> = match shelf {
            None => (0..self.shelves.len()).collect(),
            Some(name) => vec![
                self.shelves
                    .iter()
                    .position(|s| s.name == name)
                    .ok_or_else(|| RequestError::UnknownShelf {
                        name: name.to_string(),
                        known: self
                            .shelves
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })?,
            ],
        };
        let names = shelves
            .iter()
            .map(|&i| self.shelves[i].name.clone())
            .collect();
        self.capture = Some(Capture {
            shelves,
            started_us: now_us,
            sum: Vec::new(),
            size: (0, 0),
            frames: 0,
            waiting_reported: false,
        });
        Ok(names)
    }

    /// One frame. `image` is called at most once, only when an
    /// observation or a capture needs the pixels; `None` skips them.
    pub fn frame(
        &mut self,
        facts: &FrameFacts<'_>,
        image: &mut dyn FnMut() -> Option<RgbImage>,
        out: &mut Vec<ShelfOutput>,
    ) {
        let now = facts.now_us;
        let mut pixels = Lazy {
            make: image,
            got: None,
        };
        self.stops.clear();
        self.interactions
            .frame(&self.shelves, facts.feet, now, &mut self.stops);
        out.extend(
            self.stops
                .drain(..)
                .map(|(s, i)| ShelfOutput::Interaction(s, i)),
        );
        self.light
            .update(now, facts.luma, self.check.max_light_change);
        for (i, s) in self.shelves.iter().enumerate() {
            let blocked = in_the_way(s, facts.people) > 0;
            self.clear_since[i] = if blocked {
                None
            } else {
                Some(self.clear_since[i].unwrap_or(now))
            };
        }
        let steady = !facts.tampered && self.light.steady(now);
        if self.capture.is_some() {
            let why_not = self.capture_blocker(facts, steady);
            self.capture_step(now, why_not, &mut pixels, out);
        }
        let due = self
            .last_observation_us
            .is_none_or(|t| now - t >= self.check.interval_us);
        if !due || !steady {
            return;
        }
        self.last_observation_us = Some(now);
        for i in 0..self.shelves.len() {
            let clear = self.clear_since[i].is_some_and(|t| now - t >= self.check.clear_us);
            if !clear || !self.judge.ready(&self.shelves[i].name) {
                continue;
            }
            let Some(img) = pixels.get() else { return };
            self.fills.clear();
            if let Err(e) = self
                .judge
                .fill(&self.shelves[i], img.view(), &mut self.fills)
            {
                tracing::warn!(shelf = %self.shelves[i].name, error = %e, "shelf not judged");
                continue;
            }
            for (k, (&fill, state)) in self.fills.iter().zip(&mut self.facings[i]).enumerate() {
                if let Some(change) = state.observe(fill, now, &self.check.thresholds) {
                    out.push(ShelfOutput::Change {
                        shelf: i,
                        facing: k,
                        change,
                    });
                }
            }
            self.stops.clear();
            self.interactions.fill(i, &self.fills, &mut self.stops);
            out.extend(
                self.stops
                    .drain(..)
                    .map(|(s, i)| ShelfOutput::Interaction(s, i)),
            );
        }
    }

    /// Why the pending capture cannot take this frame, if anything stops it.
    fn capture_blocker(&self, facts: &FrameFacts<'_>, steady: bool) -> Option<String> {
        let c = self.capture.as_ref()?;
        if facts.tampered {
            return Some("the view is tampered with".into());
        }
        if !steady {
            return Some("the light is changing".into());
        }
        let mut people = 0;
        let mut names = Vec::new();
        for &i in &c.shelves {
            let s = &self.shelves[i];
            let n = in_the_way(s, facts.people);
            let settled =
                self.clear_since[i].is_some_and(|t| facts.now_us - t >= self.check.clear_us);
            if n > 0 || !settled {
                people = people.max(n);
                names.push(s.name.as_str());
            }
        }
        (!names.is_empty()).then(|| {
            if people > 0 {
                format!(
                    "{people} person(s) overlap shelf {} or its front zone",
                    names.join(", ")
                )
            } else {
                format!("shelf {} was in use a moment ago", names.join(", "))
            }
        })
    }

    fn capture_names(&self) -> Vec<String> {
        self.capture.as_ref().map_or_else(Vec::new, |c| {
            c.shelves
                .iter()
                .map(|&i| self.shelves[i].name.clone())
                .collect()
        })
    }

    fn capture_step(
        &mut self,
        now: i64,
        why_not: Option<String>,
        pixels: &mut Lazy<'_>,
        out: &mut Vec<ShelfOutput>,
    ) {
        let shelves = self.capture_names();
        let timeout = self.check.reference_timeout_us;
        let Some(c) = self.capture.as_mut() else {
            return;
        };
        if let Some(reason) = why_not {
            // Only consecutive clean frames are averaged.
            c.frames = 0;
            if now - c.started_us >= timeout {
                self.capture = None;
                out.push(ShelfOutput::Reference(ReferenceOutcome::Failed {
                    shelves,
                    reason: format!("gave up waiting: {reason}"),
                }));
            } else if !c.waiting_reported {
                c.waiting_reported = true;
                out.push(ShelfOutput::Reference(ReferenceOutcome::Waiting {
                    shelves,
                    reason,
                }));
            }
            return;
        }
        let Some(img) = pixels.get() else { return };
        if c.frames == 0 || (img.width, img.height) != c.size {
            c.frames = 0;
            c.size = (img.width, img.height);
            c.sum.clear();
            c.sum.resize(img.data.len(), 0);
        }
        for (s, &p) in c.sum.iter_mut().zip(&img.data) {
            *s += u16::from(p);
        }
        c.frames += 1;
        if c.frames < self.check.reference_frames {
            return;
        }
        let n = c.frames;
        let avg = RgbImage {
            width: c.size.0,
            height: c.size.1,
            data: c
                .sum
                .iter()
                .map(|&s| ((u32::from(s) + n / 2) / n) as u8)
                .collect(),
        };
        let taken = self.capture.take().map(|c| c.shelves).unwrap_or_default();
        let mut problems = Vec::new();
        for i in taken {
            let r = ShelfReference::capture(&self.shelves[i], self.version, &[avg.view()])
                .and_then(|r| self.install(r));
            if let Err(e) = r {
                problems.push(e.to_string());
            }
        }
        out.push(ShelfOutput::Reference(if problems.is_empty() {
            ReferenceOutcome::Taken {
                shelves,
                version: self.version,
            }
        } else {
            ReferenceOutcome::Failed {
                shelves,
                reason: problems.join("; "),
            }
        }));
    }
}

/// The frame's pixels, made on first use.
struct Lazy<'a> {
    make: &'a mut dyn FnMut() -> Option<RgbImage>,
    got: Option<Option<RgbImage>>,
}

impl Lazy<'_> {
    fn get(&mut self) -> Option<&RgbImage> {
        self.got.get_or_insert_with(|| (self.make)()).as_ref()
    }
}

/// People whose box overlaps the shelf or its front zone (bounding boxes:
/// an arm reaching in counts).
fn in_the_way(s: &Shelf, people: &[[f32; 4]]) -> usize {
    let zones = [bbox(&s.polygon), bbox(&s.front)];
    people
        .iter()
        .filter(|p| zones.iter().any(|z| overlaps(**p, *z)))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shelf::compare::ReferenceComparator;
    use crate::shelf::layout::{RawShelf, validate};

    const W: u32 = 160;
    const H: u32 = 120;
    const S: i64 = 1_000_000;

    /// One shelf of 4 facings over the top half, its front zone below.
    fn shelves() -> Vec<Shelf> {
        let raw: RawShelf = toml::from_str(
            "name = \"top\"\npolygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.5], [0.1, 0.5]]\n\
             grid = [1, 4]\nfront = [[0.1, 0.5], [0.9, 0.5], [0.9, 0.8], [0.1, 0.8]]\n",
        )
        .expect("toml");
        validate(&[raw]).expect("valid")
    }

    /// Boxes of varied colours on the shelf; facing k empty when
    /// `empty[k]`.
    fn image(empty: [bool; 4], gain: f32) -> RgbImage {
        let mut rng = fastrand::Rng::with_seed(3);
        let colours: Vec<[u8; 3]> = (0..400)
            .map(|_| [rng.u8(30..230), rng.u8(30..230), rng.u8(30..230)])
            .collect();
        let mut data = vec![0u8; (W * H * 3) as usize];
        for y in 0..H {
            for x in 0..W {
                let (u, v) = (x as f32 / W as f32, y as f32 / H as f32);
                let k = ((u - 0.1) / 0.2).floor().clamp(0.0, 3.0) as usize;
                let on = (0.1..0.9).contains(&u) && (0.1..0.5).contains(&v) && !empty[k];
                let px = if on {
                    colours[((y / 6) * 27 + x / 6) as usize % colours.len()]
                } else {
                    [110, 108, 104]
                };
                let i = ((y * W + x) * 3) as usize;
                for c in 0..3 {
                    data[i + c] = (f32::from(px[c]) * gain).clamp(0.0, 255.0) as u8;
                }
            }
        }
        RgbImage {
            width: W,
            height: H,
            data,
        }
    }

    fn check() -> ShelfCheck {
        RawShelfCheck {
            interval_s: 1.0,
            clear_s: 1.0,
            persistence: 2,
            reference_frames: 3,
            reference_timeout_s: 10.0,
            ..RawShelfCheck::default()
        }
        .validate()
        .expect("valid")
    }

    fn monitor() -> ShelfMonitor {
        ShelfMonitor::new(
            4,
            shelves(),
            check(),
            Box::new(ReferenceComparator::empty(4)),
        )
    }

    struct Run {
        m: ShelfMonitor,
        out: Vec<ShelfOutput>,
        images: usize,
    }

    impl Run {
        /// Frames every 0.5 s from `from` to `to` (exclusive), seconds.
        fn frames(&mut self, from: i64, to: i64, people: &[[f32; 4]], img: &RgbImage) {
            let mut t = from * 2;
            while t < to * 2 {
                let mut calls = 0;
                let facts = FrameFacts {
                    now_us: t * S / 2,
                    people,
                    feet: &[],
                    tampered: false,
                    luma: Some(100.0),
                };
                self.m.frame(
                    &facts,
                    &mut || {
                        calls += 1;
                        Some(img.clone())
                    },
                    &mut self.out,
                );
                assert!(calls <= 1, "the image is made once per frame at most");
                self.images += calls;
                t += 1;
            }
        }

        fn changes(&self) -> Vec<(usize, Stock)> {
            self.out
                .iter()
                .filter_map(|o| match o {
                    ShelfOutput::Change { facing, change, .. } => Some((*facing, change.to)),
                    _ => None,
                })
                .collect()
        }

        fn references(&self) -> Vec<&ReferenceOutcome> {
            self.out
                .iter()
                .filter_map(|o| match o {
                    ShelfOutput::Reference(r) => Some(r),
                    _ => None,
                })
                .collect()
        }
    }

    fn run() -> Run {
        Run {
            m: monitor(),
            out: Vec::new(),
            images: 0,
        }
    }

    const SHOPPER: [f32; 4] = [0.3, 0.3, 0.5, 0.95];

    #[test]
    fn a_reference_waits_for_the_shopper_to_leave_then_averages_frames() {
        let mut r = run();
        let full = image([false; 4], 1.0);
        assert_eq!(r.m.without_reference(), ["top"]);
        r.m.request_reference(None, 0).expect("accepted");
        r.frames(0, 3, &[SHOPPER], &full);
        assert_eq!(r.images, 0, "no pixels needed while someone is in the way");
        let refs = r.references();
        assert_eq!(refs.len(), 1, "waiting is reported once: {refs:?}");
        let ReferenceOutcome::Waiting { shelves, reason } = refs[0] else {
            panic!("{refs:?}")
        };
        assert_eq!(shelves, &["top"]);
        assert!(reason.contains("1 person(s) overlap shelf top"), "{reason}");
        // Clear for clear_s (1 s), then 3 frames.
        r.out.clear();
        r.frames(3, 6, &[], &full);
        assert_eq!(
            r.references(),
            [&ReferenceOutcome::Taken {
                shelves: vec!["top".into()],
                version: 4
            }]
        );
        assert!(r.m.without_reference().is_empty());
        assert_eq!(r.m.references()[0].version(), 4);
    }

    #[test]
    fn a_reference_gives_up_after_the_timeout_with_the_reason() {
        let mut r = run();
        r.m.request_reference(Some("top"), 0).expect("accepted");
        r.frames(0, 11, &[SHOPPER], &image([false; 4], 1.0));
        let Some(ReferenceOutcome::Failed { reason, .. }) = r.references().last().copied() else {
            panic!("{:?}", r.out)
        };
        assert!(
            reason.starts_with("gave up waiting: 1 person(s)"),
            "{reason}"
        );
        let e =
            r.m.request_reference(Some("bottom"), 0)
                .expect_err("unknown");
        assert_eq!(e.to_string(), "no shelf named \"bottom\" (configured: top)");
    }

    #[test]
    fn states_need_clean_persistent_observations_and_hold_while_occluded() {
        let mut r = run();
        let full = image([false; 4], 1.0);
        r.m.request_reference(None, 0).expect("accepted");
        // Taken at 2 s (clear for 1 s, then 3 frames); observed once a
        // second: persistence 2 settles "stocked" at 3 s.
        r.frames(0, 4, &[], &full);
        assert_eq!(r.changes().len(), 4, "{:?}", r.out);
        assert!(r.changes().iter().all(|c| c.1 == Stock::Stocked));
        r.images = 0;
        r.frames(4, 8, &[], &full);
        assert_eq!(r.images, 4, "one image per interval, not per frame");
        // A shopper stands in front and empties facing 1: nothing is
        // judged while they are there, however long.
        r.out.clear();
        r.images = 0;
        let taken = image([false, true, false, false], 1.0);
        r.frames(8, 30, &[SHOPPER], &taken);
        assert!(r.changes().is_empty(), "{:?}", r.out);
        assert_eq!(r.images, 0);
        // Gone: after clear_s and two observations, facing 1 is empty.
        r.frames(30, 35, &[], &taken);
        assert_eq!(r.changes(), [(1, Stock::Empty)]);
    }

    #[test]
    fn no_observation_while_tampered_or_while_the_light_changes() {
        let mut r = run();
        let full = image([false; 4], 1.0);
        r.m.request_reference(None, 0).expect("accepted");
        r.frames(0, 8, &[], &full);
        r.out.clear();
        let mut images = 0;
        let dark = image([false; 4], 0.6);
        let mut t = 8 * S;
        // Lights dimmed over 2 s (to 10 s), then steady: observed again a
        // second after the last change.
        for (i, luma) in [100.0, 90.0, 80.0, 70.0, 60.0, 60.0, 60.0, 60.0, 60.0]
            .into_iter()
            .enumerate()
        {
            let before = images;
            let facts = FrameFacts {
                now_us: t,
                people: &[],
                feet: &[],
                tampered: false,
                luma: Some(luma),
            };
            r.m.frame(
                &facts,
                &mut || {
                    images += 1;
                    Some(dark.clone())
                },
                &mut r.out,
            );
            if (1..=5).contains(&i) {
                assert_eq!(images, before, "frame {i}: the light is changing");
            }
            t += S / 2;
        }
        assert!(images > 0, "observed once the light settled");
        assert!(
            r.changes().is_empty(),
            "a dimmer shelf is still stocked: {:?}",
            r.out
        );
        images = 0;
        let facts = FrameFacts {
            now_us: t + 5 * S,
            people: &[],
            feet: &[],
            tampered: true,
            luma: Some(60.0),
        };
        r.m.frame(
            &facts,
            &mut || {
                images += 1;
                None
            },
            &mut r.out,
        );
        assert_eq!(images, 0, "not while tampered");
    }

    #[test]
    fn stored_references_of_another_version_are_refused_by_name() {
        let mut r = run();
        r.m.request_reference(None, 0).expect("accepted");
        r.frames(0, 5, &[], &image([false; 4], 1.0));
        let stored = r.m.references().to_vec();
        let mut next = ShelfMonitor::new(
            5,
            shelves(),
            check(),
            Box::new(ReferenceComparator::empty(5)),
        );
        let refused = next.restore(stored.clone());
        assert_eq!(refused.len(), 1);
        assert_eq!(
            refused[0].to_string(),
            "the reference of shelf top belongs to configuration version 4, the shelves in \
             force are version 5: take a new reference"
        );
        assert_eq!(next.without_reference(), ["top"]);
        let mut same = monitor();
        assert!(same.restore(stored).is_empty());
        assert!(same.without_reference().is_empty());
    }

    #[test]
    fn settings_are_validated_with_every_problem_named() {
        let bad = RawShelfCheck {
            interval_s: 0.0,
            take_drop: 2.0,
            reference_frames: 0,
            empty_below: 0.7,
            ..RawShelfCheck::default()
        };
        let p = bad.validate().expect_err("bad");
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(
            p[0].starts_with("shelf_check.interval_s: 0 is not within"),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("empty_below (0.7) must be below low_below (0.6)"))
        );
    }

    /// Another judge behind the same trait: a stand-in for a learned
    /// classifier, which needs no reference (here: a facing is as full as
    /// its mean brightness is above the back's).
    #[derive(Debug)]
    struct BrightnessJudge;

    impl ShelfState for BrightnessJudge {
        fn fill(
            &mut self,
            shelf: &Shelf,
            image: RgbView<'_>,
            out: &mut Vec<f32>,
        ) -> Result<(), ShelfError> {
            out.clear();
            for f in &shelf.facings {
                let c = f
                    .polygon
                    .points()
                    .iter()
                    .fold((0.0, 0.0), |a, p| (a.0 + p.x / 4.0, a.1 + p.y / 4.0));
                let (x, y) = (
                    (c.0 * image.width as f32) as usize,
                    (c.1 * image.height as f32) as usize,
                );
                let px = &image.data[(y * image.width as usize + x) * 3..][..3];
                out.push(if px == [110, 108, 104] { 0.0 } else { 1.0 });
            }
            Ok(())
        }
    }

    #[test]
    fn a_judge_without_references_replaces_the_comparator() {
        let mut r = Run {
            m: ShelfMonitor::new(4, shelves(), check(), Box::new(BrightnessJudge)),
            out: Vec::new(),
            images: 0,
        };
        assert!(r.m.without_reference().is_empty(), "ready without one");
        r.frames(0, 4, &[], &image([false; 4], 1.0));
        assert_eq!(r.changes().len(), 4, "{:?}", r.out);
        r.frames(4, 8, &[], &image([false, false, true, false], 1.0));
        assert_eq!(r.changes()[4..], [(2, Stock::Empty)]);
    }
}
