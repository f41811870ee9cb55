//! Multi-object tracking: ByteTrack-class, as a sans-IO state machine.
//!
//! Detections and a timestamp go in, tracks come out; nothing here reads a
//! clock or touches I/O. The algorithm is ByteTrack's two-stage
//! association: confirmed and lost tracks are matched first to confident
//! detections (IoU fused with the detection score), the tracks left over
//! then to low-score detections (people partly hidden keep their track),
//! and tentative tracks last. Each track carries a constant-velocity Kalman
//! filter on its box ([`kalman`]).
//!
//! Differences from the reference implementation, each deliberate:
//! - lost tracks are kept for a time in **seconds**, not frames, and the
//!   filter's motion model runs on elapsed time, so behaviour does not
//!   change with the frame rate;
//! - a track is **tentative** until matched on a second frame and gets its
//!   id only then (except on the tracker's first frame, where there is no
//!   history to tell noise from people), so tentative tracks are never
//!   reported and never counted;
//! - ids are never reused: a `u64` counter.
//!
//! Buffers are reused between frames: no heap allocation per frame once
//! the number of tracks has peaked.

// Functions on the per-frame path stay short enough to read whole
// (clippy.toml: 80 lines).
#![warn(clippy::too_many_lines)]

pub mod appearance;
pub mod assign;
pub mod kalman;
pub mod mot;

use crate::detection::nms::iou;
use crate::detection::{BBox, Detection};
use appearance::Appearance;
use assign::Assigner;
use kalman::{KalmanBox, Xyah};

/// A confirmed track's id; never reused.
pub type TrackId = u64;

/// Tracker settings.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerConfig {
    /// Detections at or above this score are "high" (first association).
    pub high_score: f32,
    /// Detections between this and `high_score` are used only to keep
    /// existing tracks alive (second association).
    pub low_score: f32,
    /// A new track needs a detection at least this confident.
    pub new_track_score: f32,
    /// First association: match only below this cost (1 − IoU·score).
    pub match_cost: f32,
    /// Second association (low-score detections): match below 1 − IoU.
    pub second_match_cost: f32,
    /// Tentative tracks: match below this cost.
    pub tentative_match_cost: f32,
    /// A track not seen for this long is dropped.
    pub lost_timeout_s: f64,
    /// Two tracks overlapping this much (IoU) are duplicates; the younger
    /// one goes.
    pub duplicate_iou: f32,
    /// A confirmed track missed by the detector is still reported, on its
    /// predicted box, for this long (with `observed: false`), so that
    /// consumers can bridge a one-frame miss. The analytics engine uses
    /// observed positions only and bridges misses itself (zone exit
    /// inertia, line and zone re-acquisition).
    pub coast_s: f64,
    /// A detection is not matched to a track whose box height differs by
    /// more than this factor.
    pub max_height_ratio: f32,
    /// Appearance (when given): a pair whose histogram similarity is at
    /// or below the floor cannot match; at or above `appearance_full` box
    /// overlap decides alone; in between, the overlap is scaled down.
    pub appearance_floor: f32,
    pub appearance_full: f32,
    /// Weight of a track's appearance against a new observation.
    pub appearance_keep: f32,
}

impl TrackerConfig {
    /// Every value out of its range, with its path (`tracker.…`).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let unit = [
            ("high_score", self.high_score),
            ("low_score", self.low_score),
            ("new_track_score", self.new_track_score),
            ("match_cost", self.match_cost),
            ("second_match_cost", self.second_match_cost),
            ("tentative_match_cost", self.tentative_match_cost),
            ("duplicate_iou", self.duplicate_iou),
            ("appearance_floor", self.appearance_floor),
            ("appearance_full", self.appearance_full),
            ("appearance_keep", self.appearance_keep),
        ];
        for (name, v) in unit {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                p.push(format!("tracker.{name}: {v} is not within 0..1"));
            }
        }
        if self.low_score > self.high_score {
            p.push(format!(
                "tracker.low_score: {} is above high_score {}",
                self.low_score, self.high_score
            ));
        }
        if self.appearance_floor >= self.appearance_full {
            p.push(format!(
                "tracker.appearance_floor: {} must be below appearance_full {}",
                self.appearance_floor, self.appearance_full
            ));
        }
        for (name, v) in [
            ("lost_timeout_s", self.lost_timeout_s),
            ("coast_s", self.coast_s),
        ] {
            if !(v.is_finite() && (0.0..=60.0).contains(&v)) {
                p.push(format!("tracker.{name}: {v} is not within 0..60 s"));
            }
        }
        if !(self.max_height_ratio.is_finite() && self.max_height_ratio >= 1.0) {
            p.push(format!(
                "tracker.max_height_ratio: {} must be at least 1",
                self.max_height_ratio
            ));
        }
        p
    }
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            high_score: 0.5,
            low_score: 0.1,
            new_track_score: 0.6,
            match_cost: 0.8,
            second_match_cost: 0.5,
            tentative_match_cost: 0.7,
            lost_timeout_s: 1.5,
            duplicate_iou: 0.85,
            coast_s: 0.2,
            max_height_ratio: 1.5,
            appearance_floor: 0.5,
            appearance_full: 0.9,
            appearance_keep: 0.9,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Tentative,
    Tracked,
    Lost,
}

#[derive(Debug, Clone)]
struct Track {
    id: Option<TrackId>,
    state: State,
    kf: KalmanBox,
    class_id: u16,
    score: f32,
    /// When the track was first seen and last matched (seconds).
    first_seen: f64,
    last_seen: f64,
    /// Colour histogram, when the caller gives them.
    appearance: Option<Appearance>,
    /// Matched in the current frame.
    matched: bool,
}

impl Track {
    fn bbox(&self) -> BBox {
        from_xyah(self.kf.state())
    }
}

/// A confirmed track as reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackOut {
    pub id: TrackId,
    /// The filtered box (image pixels).
    pub bbox: BBox,
    pub class_id: u16,
    /// Score of the last matched detection.
    pub score: f32,
    /// Seconds since the track was first seen.
    pub age_s: f64,
    /// Matched to a detection in this frame (false: coasting on its
    /// prediction while lost).
    pub observed: bool,
}

fn appearance_of(appearances: &[Option<Appearance>], d: usize) -> Option<Appearance> {
    appearances.get(d).copied().flatten()
}

fn to_xyah(b: &BBox) -> Xyah {
    let (w, h) = ((b.x2 - b.x1).max(1e-3), (b.y2 - b.y1).max(1e-3));
    Xyah {
        cx: (b.x1 + b.x2) / 2.0,
        cy: (b.y1 + b.y2) / 2.0,
        a: w / h,
        h,
    }
}

fn from_xyah(s: Xyah) -> BBox {
    let w = s.a * s.h;
    BBox {
        x1: s.cx - w / 2.0,
        y1: s.cy - s.h / 2.0,
        x2: s.cx + w / 2.0,
        y2: s.cy + s.h / 2.0,
    }
}

/// A frame's index lists, taken out of the tracker while it matches.
struct Scratch {
    high: Vec<usize>,
    low: Vec<usize>,
    pool: Vec<usize>,
    rest: Vec<usize>,
    tentative: Vec<usize>,
    free_high: Vec<usize>,
}

/// The tracker.
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: TrackId,
    last_t: Option<f64>,
    assigner: Assigner,
    // Scratch, reused every frame.
    high: Vec<usize>,
    low: Vec<usize>,
    pool: Vec<usize>,
    rest: Vec<usize>,
    tentative: Vec<usize>,
    free_high: Vec<usize>,
    cost: Vec<f32>,
    pairs: Vec<(usize, usize)>,
    det_used: Vec<bool>,
    out: Vec<TrackOut>,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            config,
            tracks: Vec::new(),
            next_id: 1,
            last_t: None,
            assigner: Assigner::default(),
            high: Vec::new(),
            low: Vec::new(),
            pool: Vec::new(),
            rest: Vec::new(),
            tentative: Vec::new(),
            free_high: Vec::new(),
            cost: Vec::new(),
            pairs: Vec::new(),
            det_used: Vec::new(),
            out: Vec::new(),
        }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Tracks alive (tentative, tracked or lost).
    pub fn live_tracks(&self) -> usize {
        self.tracks.len()
    }

    /// Feed one frame's detections at time `t` (seconds, non-decreasing);
    /// returns the confirmed tracks matched in this frame, and those missed
    /// for no longer than `coast_s` (with `observed: false`).
    pub fn update(&mut self, dets: &[Detection], t: f64) -> &[TrackOut] {
        self.update_with_appearance(dets, &[], t)
    }

    /// As [`update`](Self::update), with each detection's appearance
    /// (`appearances[i]` for `dets[i]`; an empty slice for none), which
    /// keeps people apart where their boxes overlap.
    pub fn update_with_appearance(
        &mut self,
        dets: &[Detection],
        appearances: &[Option<Appearance>],
        t: f64,
    ) -> &[TrackOut] {
        let first_frame = self.last_t.is_none();
        let dt = self.last_t.map_or(0.0, |l| (t - l).max(0.0));
        self.last_t = Some(t);
        for tr in &mut self.tracks {
            if dt > 0.0 {
                tr.kf.predict(dt, tr.state != State::Tracked);
            }
            tr.matched = false;
        }
        // Index lists are taken out of `self` while `associate` borrows it
        // mutably, and put back at the end so their capacity is reused.
        let mut s = Scratch {
            high: std::mem::take(&mut self.high),
            low: std::mem::take(&mut self.low),
            pool: std::mem::take(&mut self.pool),
            rest: std::mem::take(&mut self.rest),
            tentative: std::mem::take(&mut self.tentative),
            free_high: std::mem::take(&mut self.free_high),
        };
        s.high.clear();
        s.low.clear();
        for (i, d) in dets.iter().enumerate() {
            if d.score >= self.config.high_score {
                s.high.push(i);
            } else if d.score >= self.config.low_score {
                s.low.push(i);
            }
        }
        self.det_used.clear();
        self.det_used.resize(dets.len(), false);
        self.match_stages(&mut s, dets, appearances, t);
        self.start_tracks(&s.free_high, dets, appearances, t, first_frame);
        // Drop unmatched tentative tracks and tracks lost too long.
        let timeout = self.config.lost_timeout_s;
        self.tracks.retain(|tr| match tr.state {
            State::Tentative => tr.matched,
            State::Tracked => true,
            State::Lost => t - tr.last_seen <= timeout,
        });
        self.remove_duplicates();
        // Hand the scratch vectors back for the next frame.
        self.high = s.high;
        self.low = s.low;
        self.pool = s.pool;
        self.rest = s.rest;
        self.tentative = s.tentative;
        self.free_high = s.free_high;
        self.report(t)
    }

    /// The three matching stages of a frame (ByteTrack's, with a stage for
    /// tentative tracks).
    fn match_stages(
        &mut self,
        s: &mut Scratch,
        dets: &[Detection],
        appearances: &[Option<Appearance>],
        t: f64,
    ) {
        // 1. Confirmed and lost tracks ↔ high detections, IoU fused with score.
        s.pool.clear();
        s.pool
            .extend((0..self.tracks.len()).filter(|&i| self.tracks[i].state != State::Tentative));
        let cost = self.config.match_cost;
        self.associate(&s.pool, &s.high, dets, appearances, cost, true, t);

        // 2. Tracked tracks left over ↔ low detections, IoU only.
        s.rest.clear();
        s.rest.extend(
            s.pool
                .iter()
                .copied()
                .filter(|&i| !self.tracks[i].matched && self.tracks[i].state == State::Tracked),
        );
        let cost = self.config.second_match_cost;
        self.associate(&s.rest, &s.low, dets, appearances, cost, false, t);
        for &i in &s.rest {
            let tr = &mut self.tracks[i];
            if !tr.matched {
                tr.state = State::Lost;
            }
        }

        // 3. Tentative tracks ↔ high detections still free.
        s.tentative.clear();
        s.tentative
            .extend((0..self.tracks.len()).filter(|&i| self.tracks[i].state == State::Tentative));
        s.free_high.clear();
        s.free_high
            .extend(s.high.iter().copied().filter(|&d| !self.det_used[d]));
        let cost = self.config.tentative_match_cost;
        self.associate(&s.tentative, &s.free_high, dets, appearances, cost, true, t);
    }

    /// New tentative tracks from confident detections still free (tracked
    /// at once on the first frame).
    fn start_tracks(
        &mut self,
        free_high: &[usize],
        dets: &[Detection],
        appearances: &[Option<Appearance>],
        t: f64,
        first_frame: bool,
    ) {
        for &d in free_high {
            if self.det_used[d] || dets[d].score < self.config.new_track_score {
                continue;
            }
            let det = &dets[d];
            let mut tr = Track {
                id: None,
                state: State::Tentative,
                kf: KalmanBox::new(to_xyah(&det.bbox)),
                class_id: det.class_id,
                score: det.score,
                first_seen: t,
                last_seen: t,
                appearance: appearance_of(appearances, d),
                matched: true,
            };
            if first_frame {
                tr.state = State::Tracked;
                tr.id = Some(self.next_id);
                self.next_id += 1;
            }
            self.tracks.push(tr);
        }
    }

    /// The confirmed tracks matched at `t`, and those coasting.
    fn report(&mut self, t: f64) -> &[TrackOut] {
        self.out.clear();
        let coast = self.config.coast_s;
        for tr in &self.tracks {
            let Some(id) = tr.id else { continue };
            let observed = tr.state == State::Tracked && tr.matched;
            let coasting = tr.state == State::Lost && t - tr.last_seen <= coast;
            if observed || coasting {
                self.out.push(TrackOut {
                    id,
                    bbox: tr.bbox(),
                    class_id: tr.class_id,
                    score: tr.score,
                    age_s: t - tr.first_seen,
                    observed,
                });
            }
        }
        &self.out
    }

    /// How much of the box overlap counts, given how alike the track and
    /// the detection look: 1 when either appearance is unknown.
    fn appearance_weight(&self, ti: usize, seen: Option<&Appearance>) -> f32 {
        let (Some(track), Some(seen)) = (self.tracks[ti].appearance.as_ref(), seen) else {
            return 1.0;
        };
        let (floor, full) = (self.config.appearance_floor, self.config.appearance_full);
        ((appearance::similarity(track, seen) - floor) / (full - floor)).clamp(0.0, 1.0)
    }

    /// Match `tracks` to `cands` (detection indices) and update the matched
    /// tracks.
    #[allow(clippy::too_many_arguments)]
    fn associate(
        &mut self,
        tracks: &[usize],
        cands: &[usize],
        dets: &[Detection],
        appearances: &[Option<Appearance>],
        limit: f32,
        fuse_score: bool,
        t: f64,
    ) {
        if tracks.is_empty() || cands.is_empty() {
            return;
        }
        self.cost.clear();
        for &ti in tracks {
            let tb = self.tracks[ti].bbox();
            for &d in cands {
                let det = &dets[d];
                let b = &det.bbox;
                // Most pairs do not overlap at all (IoU 0): nothing more to
                // weigh. A NaN box fails these tests and is weighed below.
                if b.x1 >= tb.x2 || b.x2 <= tb.x1 || b.y1 >= tb.y2 || b.y2 <= tb.y1 {
                    self.cost.push(1.0);
                    continue;
                }
                let (th, dh) = (tb.y2 - tb.y1, det.bbox.y2 - det.bbox.y1);
                let ratio = self.config.max_height_ratio;
                // A box of a very different height is another person, two
                // people merged, or a part of one (the legs hidden): its
                // bottom edge is not this person's feet.
                let plausible = dh <= th * ratio && th <= dh * ratio;
                let sim = if det.class_id == self.tracks[ti].class_id && plausible {
                    let overlap = iou(&tb, &det.bbox);
                    // Most pairs do not overlap at all: skip the histogram.
                    let i = if overlap > 0.0 {
                        overlap
                            * self
                                .appearance_weight(ti, appearances.get(d).and_then(Option::as_ref))
                    } else {
                        0.0
                    };
                    if fuse_score { i * det.score } else { i }
                } else {
                    0.0
                };
                self.cost.push(1.0 - sim);
            }
        }
        self.pairs.clear();
        let mut pairs = std::mem::take(&mut self.pairs);
        self.assigner
            .solve(&self.cost, tracks.len(), cands.len(), limit, &mut pairs);
        for &(r, c) in &pairs {
            let d = cands[c];
            self.det_used[d] = true;
            let det = &dets[d];
            let tr = &mut self.tracks[tracks[r]];
            tr.kf.update(to_xyah(&det.bbox));
            if let Some(seen) = appearance_of(appearances, d) {
                match &mut tr.appearance {
                    Some(a) => appearance::blend(a, &seen, self.config.appearance_keep),
                    None => tr.appearance = Some(seen),
                }
            }
            tr.score = det.score;
            tr.last_seen = t;
            tr.matched = true;
            if tr.id.is_none() {
                tr.id = Some(self.next_id);
                self.next_id += 1;
            }
            tr.state = State::Tracked;
        }
        self.pairs = pairs;
    }

    /// Where a tracked and a lost track cover the same person, keep the
    /// older one (ByteTrack's `remove_duplicate_stracks`).
    fn remove_duplicates(&mut self) {
        let n = self.tracks.len();
        for i in 0..n {
            for j in i + 1..n {
                let (a, b) = (&self.tracks[i], &self.tracks[j]);
                let one_lost = (a.state == State::Lost) != (b.state == State::Lost);
                if !one_lost || a.state == State::Tentative || b.state == State::Tentative {
                    continue;
                }
                if iou(&a.bbox(), &b.bbox()) > self.config.duplicate_iou {
                    let (age_a, age_b) = (a.last_seen - a.first_seen, b.last_seen - b.first_seen);
                    // Mark the younger one for removal.
                    let victim = if age_a >= age_b { j } else { i };
                    self.tracks[victim].last_seen = f64::NEG_INFINITY;
                    self.tracks[victim].state = State::Lost;
                }
            }
        }
        self.tracks.retain(|tr| tr.last_seen > f64::NEG_INFINITY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, y: f32, score: f32) -> Detection {
        Detection {
            class_id: 0,
            score,
            bbox: BBox {
                x1: x,
                y1: y,
                x2: x + 40.0,
                y2: y + 100.0,
            },
        }
    }

    #[test]
    fn a_track_is_tentative_until_its_second_frame_then_keeps_its_id() {
        let mut t = Tracker::new(TrackerConfig::default());
        assert_eq!(t.update(&[], 0.0).len(), 0);
        assert!(t.update(&[det(100.0, 100.0, 0.9)], 0.04).is_empty());
        let out = t.update(&[det(104.0, 100.0, 0.9)], 0.08).to_vec();
        assert_eq!(out.len(), 1);
        let id = out[0].id;
        for i in 3..20 {
            let out = t.update(
                &[det(100.0 + 4.0 * i as f32, 100.0, 0.9)],
                0.04 * f64::from(i),
            );
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].id, id);
        }
    }

    #[test]
    fn one_frame_false_positive_never_gets_an_id() {
        let mut t = Tracker::new(TrackerConfig::default());
        t.update(&[], 0.0);
        assert!(t.update(&[det(300.0, 50.0, 0.95)], 0.04).is_empty());
        assert!(t.update(&[], 0.08).is_empty());
        assert_eq!(t.live_tracks(), 0);
    }

    #[test]
    fn low_score_detections_keep_an_occluded_track_alive() {
        let mut t = Tracker::new(TrackerConfig::default());
        t.update(&[det(100.0, 100.0, 0.9)], 0.0);
        let id = t.update(&[det(102.0, 100.0, 0.9)], 0.04)[0].id;
        // Partly hidden: the detector is unsure.
        let out = t.update(&[det(104.0, 100.0, 0.3)], 0.08).to_vec();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, id);
        // A low-score detection never starts a track.
        let mut t = Tracker::new(TrackerConfig::default());
        t.update(&[], 0.0);
        t.update(&[det(10.0, 10.0, 0.3)], 0.04);
        t.update(&[det(10.0, 10.0, 0.3)], 0.08);
        assert_eq!(t.live_tracks(), 0);
    }

    #[test]
    fn a_lost_track_is_recovered_within_the_timeout_with_the_same_id() {
        let mut t = Tracker::new(TrackerConfig::default());
        let mut now = 0.0;
        let mut id = 0;
        for i in 0..10 {
            now = 0.1 * f64::from(i);
            if let Some(o) = t
                .update(&[det(100.0 + 10.0 * i as f32, 100.0, 0.9)], now)
                .first()
            {
                id = o.id;
            }
        }
        // Hidden for 1 s (10 frames at 10 fps), still moving: reported on
        // its prediction for coast_s (0.2 s), then not at all.
        for i in 10..20 {
            now = 0.1 * f64::from(i);
            let out = t.update(&[], now).to_vec();
            if i == 10 {
                assert_eq!(out.len(), 1, "coasting at {now}");
                assert!(!out[0].observed);
                assert_eq!(out[0].id, id);
            } else if i >= 12 {
                assert!(out.is_empty(), "{now}: {out:?}");
            }
        }
        let out = t.update(&[det(300.0, 100.0, 0.9)], now + 0.1).to_vec();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, id, "re-acquired with its id");
    }

    #[test]
    fn ids_are_never_reused_after_a_timeout() {
        let mut t = Tracker::new(TrackerConfig::default());
        t.update(&[det(100.0, 100.0, 0.9)], 0.0);
        let first = t.update(&[det(100.0, 100.0, 0.9)], 0.1)[0].id;
        t.update(&[], 2.0); // past the 1.5 s timeout
        assert_eq!(t.live_tracks(), 0);
        t.update(&[det(100.0, 100.0, 0.9)], 2.1);
        let second = t.update(&[det(100.0, 100.0, 0.9)], 2.2)[0].id;
        assert!(second > first);
    }

    #[test]
    fn two_people_crossing_keep_their_ids() {
        let mut t = Tracker::new(TrackerConfig::default());
        let mut ids = None;
        for i in 0..30 {
            let x = 10.0 * i as f32;
            let a = det(x, 100.0, 0.9);
            let b = det(300.0 - x, 140.0, 0.8);
            let out = t.update(&[a, b], 0.04 * f64::from(i)).to_vec();
            if out.len() == 2 {
                // Identify each by which way it moves: a goes right.
                let mut by_x: Vec<_> = out.iter().map(|o| (o.bbox.y1 < 120.0, o.id)).collect();
                by_x.sort_unstable();
                match ids {
                    None => ids = Some(by_x),
                    Some(ref prev) => assert_eq!(prev, &by_x, "frame {i}"),
                }
            }
        }
        assert!(ids.is_some());
    }
}
