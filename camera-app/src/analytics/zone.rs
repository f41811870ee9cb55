//! Zones: a polygon, who is in it, and for how long.
//!
//! A track enters a zone once its anchor has been inside for `enter_s`
//! seconds, and leaves once it has been outside (or unseen) for `exit_s`
//! seconds; a visit's dwell runs from the first moment inside to the last.
//! The inertia keeps a person standing on the edge, or missed by the
//! detector for a moment, from being counted as several visits.

use super::geom::Point;
use crate::track::TrackId;

/// A simple polygon (at least 3 points, not self-intersecting).
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    points: Vec<Point>,
}

/// Why a polygon is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolygonError {
    #[error("needs at least 3 points, has {0}")]
    TooFewPoints(usize),
    #[error("edges {0} and {1} cross: the polygon is self-intersecting")]
    SelfIntersecting(usize, usize),
    #[error("has zero area")]
    ZeroArea,
}

impl Polygon {
    pub fn new(points: Vec<Point>) -> Result<Self, PolygonError> {
        let n = points.len();
        if n < 3 {
            return Err(PolygonError::TooFewPoints(n));
        }
        let edge = |i: usize| (points[i], points[(i + 1) % n]);
        for i in 0..n {
            for j in i + 1..n {
                // Adjacent edges share a vertex; skip them.
                if j == i + 1 || (i == 0 && j == n - 1) {
                    continue;
                }
                let ((a, b), (c, d)) = (edge(i), edge(j));
                if super::geom::segments_intersect(a, b, c, d) {
                    return Err(PolygonError::SelfIntersecting(i, j));
                }
            }
        }
        let twice_area: f32 = (0..n)
            .map(|i| {
                let (a, b) = edge(i);
                a.x * b.y - b.x * a.y
            })
            .sum();
        if twice_area.abs() <= 1e-9 {
            return Err(PolygonError::ZeroArea);
        }
        Ok(Self { points })
    }

    /// Even-odd rule.
    pub fn contains(&self, p: Point) -> bool {
        let n = self.points.len();
        let mut inside = false;
        let mut j = n - 1;
        for i in 0..n {
            let (a, b) = (self.points[i], self.points[j]);
            if (a.y > p.y) != (b.y > p.y) && p.x < (b.x - a.x) * (p.y - a.y) / (b.y - a.y) + a.x {
                inside = !inside;
            }
            j = i;
        }
        inside
    }
}

/// A finished visit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Visit {
    pub track: TrackId,
    pub entered: f64,
    pub left: f64,
}

impl Visit {
    pub fn dwell_s(&self) -> f64 {
        self.left - self.entered
    }
}

#[derive(Debug, Clone, Copy)]
struct Presence {
    id: TrackId,
    /// First time seen inside in the current run of inside observations.
    inside_since: Option<f64>,
    /// Entered (inertia satisfied): the visit's start.
    entered: Option<f64>,
    /// Last time seen inside.
    last_inside: f64,
    last_seen: f64,
}

/// One zone's state machine.
#[derive(Debug, Clone)]
pub struct ZoneTracker {
    polygon: Polygon,
    enter_s: f64,
    exit_s: f64,
    present: Vec<Presence>,
}

impl ZoneTracker {
    pub fn new(polygon: Polygon, enter_s: f64, exit_s: f64) -> Self {
        Self {
            polygon,
            enter_s,
            exit_s,
            present: Vec::new(),
        }
    }

    /// People in the zone now.
    pub fn occupancy(&self) -> usize {
        self.present.iter().filter(|p| p.entered.is_some()).count()
    }

    /// Feed a track's anchor at time `t`; a track entering is reported
    /// with `Some(start)` the moment inertia is satisfied.
    pub fn observe(&mut self, id: TrackId, p: Point, t: f64) -> Option<f64> {
        let inside = self.polygon.contains(p);
        let idx = match self.present.iter().position(|s| s.id == id) {
            Some(i) => i,
            None if inside => {
                self.present.push(Presence {
                    id,
                    inside_since: Some(t),
                    entered: None,
                    last_inside: t,
                    last_seen: t,
                });
                self.present.len() - 1
            }
            None => return None,
        };
        let s = &mut self.present[idx];
        s.last_seen = t;
        if inside {
            s.last_inside = t;
            let since = *s.inside_since.get_or_insert(t);
            if s.entered.is_none() && t - since >= self.enter_s {
                s.entered = Some(since);
                return Some(since);
            }
        } else if s.entered.is_none() {
            // Left before inertia was satisfied: it never entered.
            s.inside_since = None;
        }
        None
    }

    /// Close visits of tracks outside or unseen for `exit_s`; appends them
    /// to `out`.
    pub fn settle(&mut self, t: f64, out: &mut Vec<Visit>) {
        let exit = self.exit_s;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square() -> Polygon {
        Polygon::new(vec![
            Point::new(0.2, 0.2),
            Point::new(0.6, 0.2),
            Point::new(0.6, 0.6),
            Point::new(0.2, 0.6),
        ])
        .expect("square")
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
        let mut z = ZoneTracker::new(square(), 0.5, 1.0);
        let mut visits = Vec::new();
        // Outside, then inside from t = 1 to t = 11, then outside.
        for i in 0..=150 {
            let t = f64::from(i) * 0.1;
            let p = if (1.0..=11.0).contains(&t) { IN } else { OUT };
            if let Some(start) = z.observe(7, p, t) {
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
        let mut z = ZoneTracker::new(square(), 0.5, 1.0);
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
        let mut z = ZoneTracker::new(square(), 0.5, 1.0);
        let mut visits = Vec::new();
        for (i, p) in [OUT, IN, IN, IN, OUT, OUT].into_iter().enumerate() {
            assert!(z.observe(2, p, i as f64 * 0.1).is_none());
        }
        z.settle(5.0, &mut visits);
        assert!(visits.is_empty());
    }

    #[test]
    fn a_track_that_vanishes_inside_leaves_after_the_exit_inertia() {
        let mut z = ZoneTracker::new(square(), 0.0, 1.0);
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
}
