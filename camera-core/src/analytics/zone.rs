//! Zones: a polygon, who is in it, and for how long.
//!
//! A track enters a zone once its anchor has been inside for `enter_s`
//! seconds, and leaves once it has been outside (or unseen) for `exit_s`
//! seconds; a visit's dwell runs from the first moment inside to the last.
//! The inertia keeps a person standing on the edge, or missed by the
//! detector for a moment, from being counted as several visits.

use crate::geom::{Point, Polygon};
use crate::track::TrackId;

/// A finished visit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Visit {
    /// The track that ended the visit (after a bridged gap, the newer id).
    pub track: TrackId,
    pub entered: f64,
    pub left: f64,
}

impl Visit {
    pub fn dwell_s(&self) -> f64 {
        self.left - self.entered
    }
}

/// What an observation changed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ZoneChange {
    None,
    /// Inertia satisfied: the visit started at `since`.
    Entered {
        since: f64,
    },
    /// The visit has lasted longer than the loitering threshold.
    Loitering {
        since: f64,
    },
    /// This new track continues the visit of track `from`, lost nearby.
    Continued {
        from: TrackId,
    },
}

#[derive(Debug, Clone, Copy)]
struct Presence {
    id: TrackId,
    /// First time seen inside in the current run of inside observations.
    inside_since: Option<f64>,
    /// Entered (inertia satisfied): the visit's start.
    entered: Option<f64>,
    /// Last time seen inside, and where.
    last_inside: f64,
    last_point: Point,
    last_seen: f64,
    loitered: bool,
}

/// Zone timing: inertia, loitering, and how gaps are bridged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ZoneTiming {
    /// Seconds inside before a visit starts.
    pub enter_s: f64,
    /// Seconds outside (or unseen) before a visit ends.
    pub exit_s: f64,
    /// Report loitering once a visit is this long.
    pub loiter_s: Option<f64>,
    /// A new track appearing inside within `exit_s` of a lost one and
    /// within this distance (normalised) of where it was lost continues
    /// that visit: the detector lost the person, not the person the zone.
    pub bridge_radius: f32,
}

/// One zone's state machine.
#[derive(Debug, Clone)]
pub struct ZoneTracker {
    polygon: Polygon,
    timing: ZoneTiming,
    present: Vec<Presence>,
}

impl ZoneTracker {
    pub fn new(polygon: Polygon, timing: ZoneTiming) -> Self {
        Self {
            polygon,
            timing,
            present: Vec::with_capacity(super::TRACK_CAPACITY),
        }
    }

    pub fn contains(&self, p: Point) -> bool {
        self.polygon.contains(p)
    }

    /// People in the zone now.
    pub fn occupancy(&self) -> usize {
        self.present.iter().filter(|p| p.entered.is_some()).count()
    }

    /// Whether this track is in the zone (inertia satisfied).
    pub fn is_inside(&self, id: TrackId) -> bool {
        self.present
            .iter()
            .any(|p| p.id == id && p.entered.is_some())
    }

    /// When this track's current visit started (inertia satisfied).
    pub fn visit_start(&self, id: TrackId) -> Option<f64> {
        self.present
            .iter()
            .find(|p| p.id == id)
            .and_then(|p| p.entered)
    }

    /// Feed a track's anchor at time `t`. Call once per track per frame.
    pub fn observe(&mut self, id: TrackId, p: Point, t: f64) -> ZoneChange {
        let inside = self.polygon.contains(p);
        let idx = match self.present.iter().position(|s| s.id == id) {
            Some(i) => i,
            None if inside => {
                if let Some(i) = self.bridge(p, t) {
                    let s = &mut self.present[i];
                    let from = std::mem::replace(&mut s.id, id);
                    s.last_seen = t;
                    s.last_inside = t;
                    s.last_point = p;
                    return ZoneChange::Continued { from };
                } else {
                    self.present.push(Presence {
                        id,
                        inside_since: Some(t),
                        entered: None,
                        last_inside: t,
                        last_point: p,
                        last_seen: t,
                        loitered: false,
                    });
                    self.present.len() - 1
                }
            }
            None => return ZoneChange::None,
        };
        let timing = self.timing;
        let s = &mut self.present[idx];
        s.last_seen = t;
        if !inside {
            if s.entered.is_none() {
                // Left before inertia was satisfied: it never entered.
                s.inside_since = None;
            }
            return ZoneChange::None;
        }
        s.last_inside = t;
        s.last_point = p;
        let since = *s.inside_since.get_or_insert(t);
        match s.entered {
            None if t - since >= timing.enter_s => {
                s.entered = Some(since);
                ZoneChange::Entered { since }
            }
            Some(entered) if !s.loitered && timing.loiter_s.is_some_and(|l| t - entered >= l) => {
                s.loitered = true;
                ZoneChange::Loitering { since: entered }
            }
            _ => ZoneChange::None,
        }
    }

    /// A visit whose track was lost inside (unseen, not seen walking out)
    /// recently and near `p`.
    fn bridge(&self, p: Point, t: f64) -> Option<usize> {
        let r2 = self.timing.bridge_radius * self.timing.bridge_radius;
        self.present
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.entered.is_some()
                    && s.last_seen < t
                    && s.last_seen == s.last_inside
                    && t - s.last_seen <= self.timing.exit_s
            })
            .map(|(i, s)| {
                let (dx, dy) = (s.last_point.x - p.x, s.last_point.y - p.y);
                (i, dx * dx + dy * dy)
            })
            .filter(|&(_, d2)| d2 <= r2)
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i)
    }

    /// Close visits of tracks outside or unseen for `exit_s`; appends them
    /// to `out`.
    pub fn settle(&mut self, t: f64, out: &mut Vec<Visit>) {
        let exit = self.timing.exit_s;
        self.present.retain(|s| {
            let gone = t - s.last_inside > exit;
            if gone && let Some(entered) = s.entered {
                out.push(Visit {
                    track: s.id,
                    entered,
                    left: s.last_inside,
                });
            }
            !gone && (s.inside_since.is_some() || t - s.last_seen <= exit)
        });
    }

    /// Close every open visit now (end of input).
    pub fn close_all(&mut self, out: &mut Vec<Visit>) {
        for s in self.present.drain(..) {
            if let Some(entered) = s.entered {
                out.push(Visit {
                    track: s.id,
                    entered,
                    left: s.last_inside,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geom::PolygonError;

    fn square() -> Polygon {
        Polygon::new(vec![
            Point::new(0.2, 0.2),
            Point::new(0.6, 0.2),
            Point::new(0.6, 0.6),
            Point::new(0.2, 0.6),
        ])
        .expect("square")
    }

    fn timing(enter_s: f64, exit_s: f64) -> ZoneTiming {
        ZoneTiming {
            enter_s,
            exit_s,
            loiter_s: None,
            bridge_radius: 0.1,
        }
    }

    const IN: Point = Point::new(0.4, 0.4);
    const OUT: Point = Point::new(0.9, 0.9);

    #[test]
    fn polygon_validation_names_the_problem() {
        assert_eq!(
            Polygon::new(vec![Point::new(0., 0.), Point::new(1., 0.)]),
            Err(PolygonError::TooFewPoints(2))
        );
        // A bow tie.
        let bow = Polygon::new(vec![
            Point::new(0., 0.),
            Point::new(1., 1.),
            Point::new(1., 0.),
            Point::new(0., 1.),
        ]);
        assert!(
            matches!(bow, Err(PolygonError::SelfIntersecting(_, _))),
            "{bow:?}"
        );
        let flat = Polygon::new(vec![
            Point::new(0., 0.),
            Point::new(0.5, 0.),
            Point::new(1., 0.),
        ]);
        assert!(flat.is_err());
    }

    #[test]
    fn contains() {
        let s = square();
        assert!(s.contains(IN));
        assert!(!s.contains(OUT));
    }

    #[test]
    fn dwell_of_a_visit_with_inertia() {
        let mut z = ZoneTracker::new(square(), timing(0.5, 1.0));
        let mut visits = Vec::new();
        // Outside, then inside from t = 1 to t = 11, then outside.
        for i in 0..=150 {
            let t = f64::from(i) * 0.1;
            let p = if (1.0..=11.0).contains(&t) { IN } else { OUT };
            if let ZoneChange::Entered { since: start } = z.observe(7, p, t) {
                assert!((start - 1.0).abs() < 1e-9);
                assert!((t - 1.5).abs() < 1e-9, "entered after 0.5 s inside, at {t}");
            }
            z.settle(t, &mut visits);
            if (2.0..11.0).contains(&t) {
                assert_eq!(z.occupancy(), 1);
            }
        }
        assert_eq!(visits.len(), 1);
        assert!((visits[0].dwell_s() - 10.0).abs() < 0.11, "{visits:?}");
        assert_eq!(z.occupancy(), 0);
    }

    #[test]
    fn a_short_step_outside_is_bridged_and_a_brief_pass_is_not_a_visit() {
        let mut z = ZoneTracker::new(square(), timing(0.5, 1.0));
        let mut visits = Vec::new();
        let mut t = 0.0;
        let mut step = |z: &mut ZoneTracker, p: Point, n: usize, visits: &mut Vec<Visit>| {
            for _ in 0..n {
                z.observe(1, p, t);
                z.settle(t, visits);
                t += 0.1;
            }
        };
        step(&mut z, IN, 30, &mut visits); // 3 s inside
        step(&mut z, OUT, 5, &mut visits); // 0.5 s outside: bridged
        step(&mut z, IN, 30, &mut visits);
        step(&mut z, OUT, 20, &mut visits);
        assert_eq!(visits.len(), 1, "{visits:?}");
        // A person cutting across a corner for 0.3 s never enters.
        let mut z = ZoneTracker::new(square(), timing(0.5, 1.0));
        let mut visits = Vec::new();
        for (i, p) in [OUT, IN, IN, IN, OUT, OUT].into_iter().enumerate() {
            assert_eq!(z.observe(2, p, i as f64 * 0.1), ZoneChange::None);
        }
        z.settle(5.0, &mut visits);
        assert!(visits.is_empty());
    }

    #[test]
    fn a_track_that_vanishes_inside_leaves_after_the_exit_inertia() {
        let mut z = ZoneTracker::new(square(), timing(0.0, 1.0));
        let mut visits = Vec::new();
        z.observe(3, IN, 0.0);
        z.observe(3, IN, 2.0);
        z.settle(2.5, &mut visits);
        assert_eq!(z.occupancy(), 1);
        z.settle(3.5, &mut visits);
        assert_eq!(z.occupancy(), 0);
        assert_eq!(visits.len(), 1);
        assert!((visits[0].dwell_s() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_track_reacquired_near_where_one_was_lost_continues_the_visit() {
        let mut z = ZoneTracker::new(square(), timing(0.5, 1.5));
        let mut visits = Vec::new();
        let mut t = 0.0;
        for _ in 0..30 {
            z.observe(1, IN, t);
            z.settle(t, &mut visits);
            t += 0.1;
        }
        // Occluded for 0.8 s, then found again as track 2 a little away.
        t += 0.8;
        for _ in 0..30 {
            z.observe(2, Point::new(0.43, 0.41), t);
            z.settle(t, &mut visits);
            t += 0.1;
        }
        z.settle(t + 5.0, &mut visits);
        assert_eq!(visits.len(), 1, "{visits:?}");
        assert!((visits[0].dwell_s() - 6.7).abs() < 0.05, "{visits:?}");
        // Far away, it is somebody else.
        let mut z = ZoneTracker::new(square(), timing(0.5, 1.5));
        let mut visits = Vec::new();
        z.observe(1, IN, 0.0);
        z.observe(1, IN, 1.0);
        z.observe(2, Point::new(0.25, 0.25), 1.5);
        z.observe(2, Point::new(0.25, 0.25), 2.5);
        z.settle(10.0, &mut visits);
        assert_eq!(visits.len(), 2, "{visits:?}");
    }

    #[test]
    fn loitering_is_reported_once_per_visit() {
        let mut z = ZoneTracker::new(
            square(),
            ZoneTiming {
                loiter_s: Some(5.0),
                ..timing(0.5, 1.0)
            },
        );
        let mut events = Vec::new();
        for i in 0..100 {
            let t = f64::from(i) * 0.1;
            if let ZoneChange::Loitering { since } = z.observe(4, IN, t) {
                events.push((since, t));
            }
        }
        assert_eq!(events.len(), 1);
        assert!((events[0].1 - 5.0).abs() < 0.11, "{events:?}");
    }
}
