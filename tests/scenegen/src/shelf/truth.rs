//! Ground truth of a shelf scene, from the script (never from the pixels):
//! fills, occlusions, stops, takes and disturbances.

use serde::{Deserialize, Serialize};

use super::scenario::{EPS, ShelfScenario, StockChange, StockEvent};
use crate::geom::{self, Point};
use crate::scenario::Key;
use crate::sprites::Crop;
pub(crate) use crate::truth::Placement;

/// Everything a test may check, written as `truth.json`. Times are seconds
/// from frame 0; frame `i` is at `i / fps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShelfTruth {
    /// Scenario file stem.
    pub scenario: String,
    pub description: String,
    pub fps: u32,
    pub frames: usize,
    pub width: u32,
    pub height: u32,
    /// The clean start: everything stocked, nobody in view, steady light
    /// and camera until then.
    pub reference_s: f64,
    /// A stop is a foot point in the front zone at least this long.
    pub stop_s: f64,
    pub shelves: Vec<TrueShelf>,
    /// The scripted shoppers; `person` elsewhere is the index here.
    pub people: Vec<TrueShopper>,
    /// Lighting ramps and shakes, by start time.
    pub disturbances: Vec<Disturbance>,
}

/// One shelf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrueShelf {
    pub name: String,
    /// Corners, normalised, clockwise from the top-left (as in analytics.toml).
    pub polygon: [[f64; 2]; 4],
    pub grid: [u32; 2],
    /// Products per facing when stocked.
    pub units: u32,
    pub front: Vec<[f64; 2]>,
    /// Row-major: r1c1, r1c2, ...
    pub facings: Vec<TrueFacing>,
    /// Foot point continuously inside the front zone for at least `stop_s`,
    /// by start time.
    pub stops: Vec<TrueStop>,
    /// By time.
    pub takes: Vec<TrueTake>,
}

/// One facing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrueFacing {
    /// `r{row}c{col}`, 1-based.
    pub name: String,
    /// The bilinear sub-quad of the shelf, normalised.
    pub polygon: [[f64; 2]; 4],
    /// Change points of the fill (remaining units / units): the first is
    /// `{t: 0, fill: 1}`; the fill holds until the next.
    pub fills: Vec<FillChange>,
    /// `[t0, t1]`: first and last frame time at which some shopper's sprite
    /// box overlaps the facing.
    pub occluded: Vec<[f64; 2]>,
}

/// The fill from `t` on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FillChange {
    pub t: f64,
    pub fill: f64,
}

/// A stop: the foot point enters the front zone at `start` and leaves it
/// at `end` (exact path times, clipped to the clip).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrueStop {
    pub person: u32,
    pub start: f64,
    pub end: f64,
}

/// A unit taken by a shopper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrueTake {
    pub person: u32,
    pub t: f64,
    pub facing: String,
}

/// A scripted shopper.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrueShopper {
    pub id: u32,
    pub sprite: usize,
    /// First and last scripted time (s).
    pub appears: f64,
    pub disappears: f64,
}

/// What disturbed the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DisturbanceKind {
    Light,
    Shake,
}

/// A lighting ramp (`t0 == t1` for a sudden change) or a shake.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Disturbance {
    pub kind: DisturbanceKind,
    pub t0: f64,
    pub t1: f64,
}

impl ShelfTruth {
    fn facing(&self, shelf: &str, facing: &str) -> Option<&TrueFacing> {
        self.shelves
            .iter()
            .find(|s| s.name == shelf)?
            .facings
            .iter()
            .find(|f| f.name == facing)
    }

    /// The fill of a facing at time `t`; `None` for an unknown facing.
    pub fn fill_at(&self, shelf: &str, facing: &str, t: f64) -> Option<f64> {
        let f = self.facing(shelf, facing)?;
        f.fills
            .iter()
            .take_while(|c| c.t <= t + EPS)
            .last()
            .map(|c| c.fill)
    }

    /// Whether a shopper's box overlaps the facing at time `t` (within
    /// an interval's frame times); false for an unknown facing.
    pub fn occluded_at(&self, shelf: &str, facing: &str, t: f64) -> bool {
        self.facing(shelf, facing).is_some_and(|f| {
            f.occluded
                .iter()
                .any(|&[t0, t1]| t >= t0 - EPS && t <= t1 + EPS)
        })
    }

    /// Whether a lighting change or shake is under way at `t`.
    pub fn disturbed_at(&self, t: f64) -> bool {
        self.disturbances
            .iter()
            .any(|d| t >= d.t0 - EPS && t <= d.t1 + EPS)
    }
}

/// Where each present shopper's sprite goes at `t`, farthest first.
pub(crate) fn placements(
    s: &ShelfScenario,
    crops: &[Crop],
    keys: &[Vec<Key>],
    t: f64,
) -> Vec<Placement> {
    crate::truth::place(
        (s.width, s.height),
        |id| s.people[id].sprite,
        |y| s.sprite_height_px(y),
        crops,
        keys,
        t,
    )
}

/// Whether an axis-aligned rectangle and a convex polygon overlap with a
/// positive area (separating axes; touching is not overlapping).
pub(crate) fn rect_overlaps_convex(r: [f64; 4], poly: &[Point]) -> bool {
    let corners = [
        Point::new(r[0], r[1]),
        Point::new(r[2], r[1]),
        Point::new(r[2], r[3]),
        Point::new(r[0], r[3]),
    ];
    let mut axes = vec![Point::new(1.0, 0.0), Point::new(0.0, 1.0)];
    for k in 0..poly.len() {
        let e = poly[(k + 1) % poly.len()].minus(poly[k]);
        axes.push(Point::new(-e.y, e.x));
    }
    axes.iter().all(|ax| {
        let span = |pts: &[Point]| {
            pts.iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                    let d = p.dot(*ax);
                    (lo.min(d), hi.max(d))
                })
        };
        let (a0, a1) = span(&corners);
        let (b0, b1) = span(poly);
        a0 < b1 - 1e-12 && b0 < a1 - 1e-12
    })
}

/// Intervals `[t0, t1]` of the piecewise-linear path during which the
/// foot point is inside `poly`, exactly (up to floating point).
pub fn inside_intervals(keys: &[Key], poly: &[Point]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    let mut push = |t0: f64, t1: f64| match out.last_mut() {
        Some(last) if t0 <= last.1 + EPS => last.1 = last.1.max(t1),
        _ => out.push((t0, t1)),
    };
    for seg in keys.windows(2) {
        let (a, b) = (seg[0].p, seg[1].p);
        // Cut the segment where it crosses the polygon's edges, and test
        // the middle of every piece.
        let mut cuts = vec![0.0, 1.0];
        let d = b.minus(a);
        for k in 0..poly.len() {
            let (p, q) = (poly[k], poly[(k + 1) % poly.len()]);
            let e = q.minus(p);
            let den = d.cross(e);
            if den.abs() < 1e-15 {
                continue;
            }
            let u = p.minus(a).cross(e) / den;
            let w = p.minus(a).cross(d) / den;
            if (0.0..=1.0).contains(&u) && (-1e-12..=1.0 + 1e-12).contains(&w) {
                cuts.push(u);
            }
        }
        cuts.sort_by(f64::total_cmp);
        for c in cuts.windows(2) {
            if c[1] - c[0] < 1e-12 && cuts.len() > 2 {
                continue;
            }
            let mid = a.lerp(b, (c[0] + c[1]) / 2.0);
            if geom::polygon_contains(poly, mid) {
                let t = |u: f64| seg[0].t + u * (seg[1].t - seg[0].t);
                push(t(c[0]), t(c[1]));
            }
        }
    }
    out
}

/// The truth of a shelf scenario; `crops` are the sprites' rectangles.
pub fn compute(s: &ShelfScenario, crops: &[Crop]) -> Result<ShelfTruth, String> {
    let keys = s.keys()?;
    let events: Vec<StockEvent> = s.stock_events().map_err(|p| p.join("; "))?;
    let frames = s.frames();
    let t_end = s.frame_time(frames.saturating_sub(1));
    let (fw, fh) = (f64::from(s.width), f64::from(s.height));

    // Per frame, the clipped sprite boxes (normalised).
    let boxes: Vec<Vec<[f64; 4]>> = (0..frames)
        .map(|i| {
            placements(s, crops, &keys, s.frame_time(i))
                .iter()
                .filter_map(|p| p.clipped(s.width, s.height))
                .map(|[x0, y0, x1, y1]| {
                    [
                        f64::from(x0) / fw,
                        f64::from(y0) / fh,
                        f64::from(x1) / fw,
                        f64::from(y1) / fh,
                    ]
                })
                .collect()
        })
        .collect();

    let mut shelves = Vec::with_capacity(s.shelves.len());
    for (si, spec) in s.shelves.iter().enumerate() {
        let mut facings = Vec::with_capacity(spec.facings());
        for fi in 0..spec.facings() {
            let poly = spec.facing_polygon(fi);
            let mut fills = vec![FillChange { t: 0.0, fill: 1.0 }];
            let mut left = spec.units;
            for e in events.iter().filter(|e| e.shelf == si && e.facing == fi) {
                left = match e.change {
                    StockChange::Remove(k) => left.saturating_sub(k),
                    StockChange::Restock => spec.units,
                };
                let fill = f64::from(left) / f64::from(spec.units);
                if fills.last().is_some_and(|c| c.fill != fill) {
                    fills.push(FillChange { t: e.t, fill });
                }
            }
            let mut occluded: Vec<[f64; 2]> = Vec::new();
            let mut run: Option<(f64, f64)> = None;
            for (i, b) in boxes.iter().enumerate() {
                let t = s.frame_time(i);
                if b.iter().any(|r| rect_overlaps_convex(*r, &poly)) {
                    run = Some(run.map_or((t, t), |(t0, _)| (t0, t)));
                } else if let Some((t0, t1)) = run.take() {
                    occluded.push([t0, t1]);
                }
            }
            if let Some((t0, t1)) = run {
                occluded.push([t0, t1]);
            }
            facings.push(TrueFacing {
                name: spec.facing_name(fi),
                polygon: poly.map(|p| [p.x, p.y]),
                fills,
                occluded,
            });
        }
        let front = spec.front_points();
        let mut stops = Vec::new();
        for (id, k) in keys.iter().enumerate() {
            for (t0, t1) in inside_intervals(k, &front) {
                let (start, end) = (t0.max(0.0), t1.min(t_end));
                if end - start >= s.stop_s - EPS {
                    stops.push(TrueStop {
                        person: id as u32,
                        start,
                        end,
                    });
                }
            }
        }
        stops.sort_by(|a, b| a.start.total_cmp(&b.start).then(a.person.cmp(&b.person)));
        let takes = events
            .iter()
            .filter(|e| e.shelf == si)
            .filter_map(|e| {
                Some(TrueTake {
                    person: e.person? as u32,
                    t: e.t,
                    facing: spec.facing_name(e.facing),
                })
            })
            .collect();
        shelves.push(TrueShelf {
            name: spec.name.clone(),
            polygon: spec.polygon,
            grid: spec.grid,
            units: spec.units,
            front: spec.front(),
            facings,
            stops,
            takes,
        });
    }

    let mut disturbances: Vec<Disturbance> = s
        .lighting
        .iter()
        .map(|l| Disturbance {
            kind: DisturbanceKind::Light,
            t0: l.t,
            t1: l.t + l.ramp_s,
        })
        .chain(s.shake.iter().map(|k| Disturbance {
            kind: DisturbanceKind::Shake,
            t0: k.t,
            t1: k.t + k.duration_s,
        }))
        .collect();
    disturbances.sort_by(|a, b| a.t0.total_cmp(&b.t0));

    let people = s
        .people
        .iter()
        .zip(&keys)
        .enumerate()
        .map(|(id, (p, k))| TrueShopper {
            id: id as u32,
            sprite: p.sprite,
            appears: k[0].t,
            disappears: k[k.len() - 1].t,
        })
        .collect();

    Ok(ShelfTruth {
        scenario: s.name.clone(),
        description: s.description.clone(),
        fps: s.fps,
        frames,
        width: s.width,
        height: s.height,
        reference_s: s.reference_s,
        stop_s: s.stop_s,
        shelves,
        people,
        disturbances,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::scenario::keys_of as keys;

    const SQUARE: [Point; 4] = [
        Point::new(0.2, 0.6),
        Point::new(0.6, 0.6),
        Point::new(0.6, 0.9),
        Point::new(0.2, 0.9),
    ];

    #[test]
    fn inside_intervals_are_exact_and_merge_waits() {
        // Walk right along y = 0.8 at 0.1/s from x = 0 (in at 0.2, t = 2),
        // wait at 0.4 for 3 s, walk on (out at 0.6, t = 9).
        let k = keys(&[
            (0.0, 0.8, 0.0),
            (0.4, 0.8, 4.0),
            (0.4, 0.8, 7.0),
            (1.0, 0.8, 13.0),
        ]);
        let iv = inside_intervals(&k, &SQUARE);
        assert_eq!(iv.len(), 1, "{iv:?}");
        assert!(
            (iv[0].0 - 2.0).abs() < 1e-9 && (iv[0].1 - 9.0).abs() < 1e-9,
            "{iv:?}"
        );
        // Passing below it: never inside.
        let k = keys(&[(0.0, 0.95, 0.0), (1.0, 0.95, 10.0)]);
        assert!(inside_intervals(&k, &SQUARE).is_empty());
    }

    #[test]
    fn rectangles_and_quads() {
        let quad = [
            Point::new(0.2, 0.2),
            Point::new(0.4, 0.22),
            Point::new(0.4, 0.42),
            Point::new(0.2, 0.4),
        ];
        assert!(rect_overlaps_convex([0.3, 0.3, 0.5, 0.9], &quad));
        assert!(!rect_overlaps_convex([0.41, 0.0, 0.5, 0.9], &quad));
        // Below the slanted bottom edge at its left end, above its right end.
        assert!(!rect_overlaps_convex([0.0, 0.405, 0.21, 0.5], &quad));
        assert!(rect_overlaps_convex([0.39, 0.41, 0.5, 0.5], &quad));
    }
}
