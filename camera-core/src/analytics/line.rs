//! Counting lines: a polyline with an "in" side, a hysteresis band, one
//! count per track per direction.
//!
//! A track's side of the line is only decided when its anchor point is
//! outside the band (further than `band` from the polyline); inside the
//! band the last decided side stands. A crossing is a change of decided
//! side whose path actually cuts the polyline (walking round the end of a
//! line is not a crossing). So jitter on the line, and u-turns inside the
//! band, never count; and a track counts at most once "in" and once "out"
//! per line, however its box flickers.

use crate::config::InSide;
use crate::geom::{Point, Polyline};
use crate::track::TrackId;

/// A track lost for at least this long (and at most the maximum) can be
/// continued by a new track appearing near where it was lost. The minimum
/// keeps a new track from taking over a person who is still in view.
const BRIDGE_MIN_GAP_S: f64 = 0.3;
const BRIDGE_MAX_GAP_S: f64 = 2.0;
/// How far (normalised) from where it was lost.
const BRIDGE_RADIUS: f32 = 0.25;
/// A new side counts once the track has been seen on it this many times in
/// a row: a box that flickers across the line for a frame (two people's
/// boxes merging, the tracker swapping them) changes nothing.
const CONFIRM: u8 = 2;

/// Which way a track crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

/// A crossing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossing {
    pub track: TrackId,
    pub direction: Direction,
    /// Time of the frame where the side changed (seconds).
    pub t: f64,
}

#[derive(Debug, Clone, Copy)]
struct TrackState {
    id: TrackId,
    /// +1 left, -1 right, 0 not decided yet.
    side: i8,
    /// Last anchor point on the confirmed side.
    anchor: Point,
    /// A side seen since, not confirmed yet, how many times in a row, and
    /// where first (the step across the line is anchor → there).
    pending: i8,
    pending_n: u8,
    pending_at: Point,
    counted_in: bool,
    counted_out: bool,
    last_seen: f64,
}

/// One line's counting state machine.
#[derive(Debug, Clone)]
pub struct LineCounter {
    line: Polyline,
    in_side: InSide,
    band: f32,
    /// Forget a track's state after this long unseen.
    forget_s: f64,
    tracks: Vec<TrackState>,
    pub count_in: u64,
    pub count_out: u64,
}

impl LineCounter {
    pub fn new(line: Polyline, in_side: InSide, band: f32, forget_s: f64) -> Self {
        Self {
            line,
            in_side,
            band,
            forget_s,
            tracks: Vec::with_capacity(super::TRACK_CAPACITY),
            count_in: 0,
            count_out: 0,
        }
    }

    /// Feed a track's anchor point (normalised) at time `t`; returns a
    /// crossing if this observation completes one.
    pub fn observe(&mut self, id: TrackId, p: Point, t: f64) -> Option<Crossing> {
        let (dist, side) = self.line.distance_and_side(p);
        let decided: i8 = if dist <= self.band {
            0
        } else if side > 0.0 {
            1
        } else {
            -1
        };
        let mut bridged = false;
        let idx = match self.tracks.iter().position(|s| s.id == id) {
            Some(i) => i,
            None => match self.bridge(p, t, decided) {
                // The detector lost this person near the line and the
                // tracker found them again under a new id: continue.
                Some(i) => {
                    tracing::trace!(target: "tracks", t, from = self.tracks[i].id, to = id, "line bridge");
                    self.tracks[i].id = id;
                    bridged = true;
                    i
                }
                None => {
                    self.tracks.push(TrackState {
                        id,
                        side: decided,
                        anchor: p,
                        pending: 0,
                        pending_n: 0,
                        pending_at: p,
                        counted_in: false,
                        counted_out: false,
                        last_seen: t,
                    });
                    return None;
                }
            },
        };
        if decided == 0 {
            self.tracks[idx].last_seen = t;
            return None;
        }
        if self.tracks[idx].side == 0
            && !self.tracks[idx].counted_in
            && !self.tracks[idx].counted_out
        {
            // A track that began on the line (inside the band) now has a
            // side: it may be someone lost just before the line, found
            // again on it.
            if let Some(j) = self.bridge(p, t, decided).filter(|&j| j != idx) {
                tracing::trace!(target: "tracks", t, from = self.tracks[j].id, to = id, "line bridge from the band");
                let lost = self.tracks.swap_remove(j);
                let idx = if idx == self.tracks.len() { j } else { idx };
                self.tracks[idx] = TrackState { id, ..lost };
                return self.settle(idx, decided, p, t, 1);
            }
        }
        let confirm = if bridged { 1 } else { CONFIRM };
        self.settle(idx, decided, p, t, confirm)
    }

    /// A track's new decided side `decided` at `p`: a crossing if it
    /// changed side across the line, counted once per direction.
    /// `confirm`: observations needed on the new side (1 for a track found
    /// again after a gap: the gap is the evidence).
    fn settle(
        &mut self,
        idx: usize,
        decided: i8,
        p: Point,
        t: f64,
        confirm: u8,
    ) -> Option<Crossing> {
        let in_sign: i8 = match self.in_side {
            InSide::Left => 1,
            InSide::Right => -1,
        };
        let st = &mut self.tracks[idx];
        let id = st.id;
        st.last_seen = t;
        if st.side == 0 || decided == st.side {
            st.side = decided;
            st.anchor = p;
            st.pending = 0;
            return None;
        }
        if st.pending == decided {
            st.pending_n = st.pending_n.saturating_add(1);
        } else {
            st.pending = decided;
            st.pending_n = 1;
            st.pending_at = p;
        }
        if st.pending_n < confirm {
            return None;
        }
        let (from, to) = (st.anchor, st.pending_at);
        st.side = decided;
        st.anchor = p;
        st.pending = 0;
        if !self.line.crossed_by(from, to) {
            return None;
        }
        let direction = if decided == in_sign {
            Direction::In
        } else {
            Direction::Out
        };
        let first = match direction {
            Direction::In => !std::mem::replace(&mut st.counted_in, true),
            Direction::Out => !std::mem::replace(&mut st.counted_out, true),
        };
        if !first {
            return None;
        }
        match direction {
            Direction::In => self.count_in += 1,
            Direction::Out => self.count_out += 1,
        }
        Some(Crossing {
            track: id,
            direction,
            t,
        })
    }

    /// A lost track that a new track at `p` (decided side `side`) most
    /// likely continues: lost for a while but not long, last seen near `p`
    /// on the other side.
    fn bridge(&self, p: Point, t: f64, side: i8) -> Option<usize> {
        if side == 0 {
            return None;
        }
        let r2 = BRIDGE_RADIUS * BRIDGE_RADIUS;
        self.tracks
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                let gap = t - s.last_seen;
                s.side == -side && (BRIDGE_MIN_GAP_S..=BRIDGE_MAX_GAP_S).contains(&gap)
            })
            .map(|(i, s)| {
                let (dx, dy) = (s.anchor.x - p.x, s.anchor.y - p.y);
                (i, dx * dx + dy * dy)
            })
            .filter(|&(_, d2)| d2 <= r2)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// Distance (normalised) from `p` to the line.
    pub fn distance(&self, p: Point) -> f32 {
        self.line.distance_and_side(p).0
    }

    /// Whether the track was last seen clearly on the "in" side.
    pub fn is_in(&self, id: TrackId) -> bool {
        let in_sign: i8 = match self.in_side {
            InSide::Left => 1,
            InSide::Right => -1,
        };
        self.tracks.iter().any(|s| s.id == id && s.side == in_sign)
    }

    /// Drop the state of tracks not seen for `forget_s`.
    pub fn expire(&mut self, t: f64) {
        let forget = self.forget_s;
        self.tracks.retain(|s| t - s.last_seen <= forget);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A horizontal door line at y = 0.5 from x = 0.2 to 0.8; walking
    /// from left to right along it, "in" is on the right, i.e. towards
    /// larger y (image y grows downwards).
    fn door() -> LineCounter {
        let line = Polyline::new(vec![Point::new(0.2, 0.5), Point::new(0.8, 0.5)]).expect("line");
        LineCounter::new(line, InSide::Right, 0.02, 5.0)
    }

    fn walk(c: &mut LineCounter, id: TrackId, ys: &[f32], x: f32) -> Vec<Direction> {
        ys.iter()
            .enumerate()
            .filter_map(|(i, &y)| c.observe(id, Point::new(x, y), i as f64 * 0.1))
            .map(|cr| cr.direction)
            .collect()
    }

    #[test]
    fn a_straight_crossing_counts_once_in_the_right_direction() {
        let mut c = door();
        assert_eq!(
            walk(&mut c, 1, &[0.3, 0.4, 0.45, 0.55, 0.6, 0.7], 0.5),
            [Direction::In]
        );
        assert_eq!((c.count_in, c.count_out), (1, 0));
        assert_eq!(
            walk(&mut c, 2, &[0.7, 0.6, 0.4, 0.3], 0.4),
            [Direction::Out]
        );
        assert_eq!((c.count_in, c.count_out), (1, 1));
    }

    #[test]
    fn jitter_on_the_line_never_counts() {
        let mut c = door();
        let ys: Vec<f32> = (0..100)
            .map(|i| 0.5 + if i % 2 == 0 { 0.015 } else { -0.015 })
            .collect();
        assert!(walk(&mut c, 1, &ys, 0.5).is_empty());
        // Even starting decided on one side, flicker inside the band is ignored.
        let mut ys = vec![0.4];
        ys.extend((0..50).map(|i| if i % 2 == 0 { 0.51 } else { 0.49 }));
        ys.push(0.4);
        assert!(walk(&mut c, 2, &ys, 0.5).is_empty());
    }

    #[test]
    fn a_u_turn_inside_the_band_does_not_count() {
        let mut c = door();
        assert!(walk(&mut c, 1, &[0.3, 0.45, 0.49, 0.515, 0.49, 0.4, 0.3], 0.5).is_empty());
    }

    #[test]
    fn back_and_forth_counts_each_direction_at_most_once() {
        let mut c = door();
        let ys = [0.3, 0.7, 0.7, 0.3, 0.3, 0.7, 0.7, 0.3, 0.3, 0.7, 0.7];
        assert_eq!(walk(&mut c, 1, &ys, 0.5), [Direction::In, Direction::Out]);
        assert_eq!((c.count_in, c.count_out), (1, 1));
    }

    #[test]
    fn walking_round_the_end_of_the_line_is_not_a_crossing() {
        let mut c = door();
        // Goes down at x = 0.9, beyond the line's end at 0.8.
        let pts = [(0.5, 0.3), (0.9, 0.3), (0.9, 0.7), (0.5, 0.7)];
        let got: Vec<_> = pts
            .iter()
            .enumerate()
            .filter_map(|(i, &(x, y))| c.observe(1, Point::new(x, y), i as f64))
            .collect();
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn a_track_first_seen_beyond_the_line_does_not_count() {
        let mut c = door();
        assert!(walk(&mut c, 1, &[0.7, 0.8, 0.9], 0.5).is_empty());
    }

    #[test]
    fn expired_state_is_forgotten() {
        let mut c = door();
        walk(&mut c, 1, &[0.3, 0.7], 0.5);
        c.expire(100.0);
        assert!(c.tracks.is_empty());
    }

    #[test]
    fn a_track_lost_at_the_line_and_found_again_under_a_new_id_counts_once() {
        let mut c = door();
        // Track 1 walks up to the line from the "out" side and is lost;
        // 1 s later track 2 appears just past it.
        assert!(walk(&mut c, 1, &[0.3, 0.35, 0.4, 0.45], 0.5).is_empty());
        let x = c.observe(2, Point::new(0.52, 0.56), 1.5);
        assert_eq!(x.map(|x| x.direction), Some(Direction::In));
        assert_eq!(c.observe(2, Point::new(0.52, 0.6), 1.6), None);
        // Somebody still in view is not taken over: track 3 is seen on the
        // "out" side right up to the frame where track 4 appears.
        let mut c = door();
        walk(&mut c, 3, &[0.3, 0.35, 0.4], 0.5);
        assert_eq!(c.observe(4, Point::new(0.5, 0.6), 0.25), None);
        // Nor somebody lost far away.
        let mut c = door();
        walk(&mut c, 5, &[0.3, 0.35], 0.2);
        assert_eq!(c.observe(6, Point::new(0.8, 0.7), 1.0), None);
    }

    #[test]
    fn a_one_frame_flicker_across_the_line_is_not_a_crossing() {
        let mut c = door();
        // Two people's boxes merge for a frame and the anchor jumps past
        // the line and back: nothing counts.
        assert!(walk(&mut c, 1, &[0.3, 0.35, 0.4, 0.56, 0.4, 0.35], 0.5).is_empty());
        // Walking across for real counts, one frame after the line.
        let mut c = door();
        let mut t = 0.0;
        let mut seen = Vec::new();
        for y in [0.3, 0.4, 0.56, 0.6, 0.65] {
            seen.push(
                c.observe(2, Point::new(0.5, y), t)
                    .map(|x| (x.direction, x.t)),
            );
            t += 0.1;
        }
        assert_eq!(seen[2], None);
        assert!(
            matches!(seen[3], Some((Direction::In, t)) if (t - 0.3).abs() < 1e-9),
            "{seen:?}"
        );
    }

    #[test]
    fn a_track_found_again_on_the_line_counts_once_it_leaves_the_band() {
        let mut c = door();
        // Lost before the line; 0.8 s later track 2 appears on it (inside
        // the band: no side yet), then walks on past it.
        assert!(walk(&mut c, 1, &[0.3, 0.35, 0.4, 0.45], 0.5).is_empty());
        assert_eq!(c.observe(2, Point::new(0.5, 0.505), 1.1), None);
        assert_eq!(c.observe(2, Point::new(0.5, 0.515), 1.2), None);
        let x = c.observe(2, Point::new(0.5, 0.55), 1.3);
        assert_eq!(x.map(|x| x.direction), Some(Direction::In));
        assert_eq!((c.count_in, c.count_out), (1, 0));
        // A newcomer first seen on the line with nobody lost near it has
        // no side to come from: nothing counts.
        let mut c = door();
        assert_eq!(c.observe(3, Point::new(0.5, 0.5), 0.0), None);
        assert_eq!(c.observe(3, Point::new(0.5, 0.6), 0.1), None);
    }
}
