//! Ground truth from the scripted foot paths (never from the jittered
//! drawing), with camera-app's geometric conventions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::geom::{self, Point};
use crate::scenario::{Analytics, Anchor, InSide, Key, Scenario, ZoneKind, position};
use crate::sprites::Crop;

/// Slack for comparing frame times.
const EPS: f64 = 1e-9;

/// Everything a test may check, written as `truth.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    /// Scenario file stem.
    pub scenario: String,
    pub description: String,
    pub fps: u32,
    /// Number of frames; frame `i` is at `t = i / fps` seconds.
    pub frames: usize,
    pub width: u32,
    pub height: u32,
    /// The point of the box that crossings and visits are computed for
    /// (camera-app's `anchor`; the feet unless the scenario says "center").
    pub anchor: Anchor,
    /// The scripted people; `id` is the index in the scenario's `people`.
    pub people: Vec<TruePerson>,
    /// Per frame, the people at least partly in the frame, farthest first.
    pub frames_people: Vec<Vec<FramePerson>>,
    /// Per line name, every true crossing, by time.
    pub crossings: BTreeMap<String, Vec<TrueCrossing>>,
    /// Per line name.
    pub counts: BTreeMap<String, LineCount>,
    /// Per zone name, the visits, by start time.
    pub visits: BTreeMap<String, Vec<TrueVisit>>,
    /// People who passed by (visited the passers-by street zone or crossed
    /// the passers-by line) and never crossed another line (in or out).
    pub passers_by: u32,
    /// "In" crossings of every line but the passers-by line.
    pub entries: u32,
    /// entries / (entries + passers_by); null when both are 0.
    pub entry_rate: Option<f64>,
    /// Per zone with `loiter_s`, visits whose dwell exceeded it.
    pub loiter_events: BTreeMap<String, Vec<LoiterEvent>>,
}

/// A scripted person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruePerson {
    pub id: u32,
    pub sprite: usize,
    pub flip: bool,
    /// First and last scripted time (s); the person exists in between.
    pub appears: f64,
    pub disappears: f64,
}

/// A person in one frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FramePerson {
    pub id: u32,
    /// Foot point (bottom centre of the box), normalised; may lie outside
    /// 0..1 when the person is partly out of the frame.
    pub x: f64,
    pub y: f64,
    /// Sprite box clipped to the frame, pixels, [x0, y0, x1, y1] (x1, y1
    /// exclusive).
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
    /// Fraction of the whole (unclipped) sprite that is in the frame and
    /// not hidden by a nearer person.
    pub visible: f64,
}

/// Which way a line was crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

/// A true crossing of a line by the foot path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrueCrossing {
    pub person: u32,
    pub direction: Direction,
    /// Exact time the foot path cuts the polyline (s).
    pub t: f64,
}

/// Crossings of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LineCount {
    #[serde(rename = "in")]
    pub count_in: u32,
    #[serde(rename = "out")]
    pub count_out: u32,
}

/// One visit of a zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrueVisit {
    pub person: u32,
    /// First frame time inside (s).
    pub entered: f64,
    /// Last frame time inside (s).
    pub left: f64,
    pub dwell_s: f64,
}

/// A loitering visit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoiterEvent {
    pub person: u32,
    /// entered + loiter_s.
    pub t: f64,
}

/// A sprite's place in one frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Placement {
    pub id: usize,
    pub foot: Point,
    /// Unclipped sprite rectangle, pixels.
    pub x0: i32,
    pub y0: i32,
    pub w: i32,
    pub h: i32,
}

/// Frame time of frame `i`.
pub(crate) fn frame_time(s: &Scenario, i: usize) -> f64 {
    i as f64 / f64::from(s.fps)
}

/// Where each present person's sprite goes at time `t`, farthest (smallest
/// foot y) first, so that drawing in this order lets nearer people occlude.
pub(crate) fn placements(
    s: &Scenario,
    crops: &[Crop],
    keys: &[Vec<Key>],
    t: f64,
) -> Vec<Placement> {
    place(
        (s.width, s.height),
        |id| s.people[id].sprite,
        |y| s.sprite_height_px(y),
        crops,
        keys,
        t,
    )
}

/// Sprite rectangles for every scene kind: each person's sprite (`sprite`
/// of their index) `height_px(foot y)` tall on their foot point at `t`,
/// farthest first.
pub(crate) fn place(
    (width, height): (u32, u32),
    sprite: impl Fn(usize) -> usize,
    height_px: impl Fn(f64) -> f64,
    crops: &[Crop],
    keys: &[Vec<Key>],
    t: f64,
) -> Vec<Placement> {
    let (fw, fh) = (f64::from(width), f64::from(height));
    let mut out: Vec<Placement> = keys
        .iter()
        .enumerate()
        .filter_map(|(id, k)| {
            let foot = position(k, t)?;
            let crop = crops[sprite(id)];
            let h = height_px(foot.y).max(1.0);
            let w = (h * crop.aspect()).max(1.0);
            Some(Placement {
                id,
                foot,
                x0: (foot.x * fw - w / 2.0).round() as i32,
                y0: (foot.y * fh - h).round() as i32,
                w: w.round() as i32,
                h: h.round() as i32,
            })
        })
        .collect();
    out.sort_by(|a, b| a.foot.y.total_cmp(&b.foot.y).then(a.id.cmp(&b.id)));
    out
}

impl Placement {
    /// The rectangle clipped to the frame, `[x0, y0, x1, y1]`, if any.
    pub fn clipped(&self, w: u32, h: u32) -> Option<[i32; 4]> {
        let (w, h) = (w as i32, h as i32);
        let x0 = self.x0.clamp(0, w);
        let y0 = self.y0.clamp(0, h);
        let x1 = (self.x0 + self.w).clamp(0, w);
        let y1 = (self.y0 + self.h).clamp(0, h);
        (x1 > x0 && y1 > y0).then_some([x0, y0, x1, y1])
    }
}

/// The truth of a scenario; `crops` are the sprites' rectangles (for their
/// aspect ratios).
pub fn compute(s: &Scenario, crops: &[Crop]) -> Result<Truth, String> {
    let analytics = s.analytics()?;
    let keys: Vec<Vec<Key>> = s
        .people
        .iter()
        .enumerate()
        .map(|(i, p)| p.keys().map_err(|e| format!("people[{i}].{e}")))
        .collect::<Result<_, _>>()?;
    // Lines and zones see the anchor point's path; for the box centre it is
    // a linear map of the foot path, since the height is linear in foot y.
    let anchor_keys: Vec<Vec<Key>> = match analytics.anchor {
        Anchor::BottomCenter => keys.clone(),
        Anchor::Center => keys
            .iter()
            .map(|k| {
                k.iter()
                    .map(|&Key { t, p }| {
                        let h = s.sprite_height_px(p.y) / f64::from(s.height);
                        Key {
                            t,
                            p: Point::new(p.x, p.y - h / 2.0),
                        }
                    })
                    .collect()
            })
            .collect(),
    };
    let frames = s.frames();
    let t_end = frame_time(s, frames.saturating_sub(1));

    let people = s
        .people
        .iter()
        .zip(&keys)
        .enumerate()
        .map(|(id, (p, k))| TruePerson {
            id: id as u32,
            sprite: p.sprite,
            flip: p.flip,
            appears: k[0].t,
            disappears: k[k.len() - 1].t,
        })
        .collect();

    let (w, h) = (s.width, s.height);
    let mut mask = vec![0u16; w as usize * h as usize];
    let mut frames_people = Vec::with_capacity(frames);
    for i in 0..frames {
        let placed = placements(s, crops, &keys, frame_time(s, i));
        let rects: Vec<Option<[i32; 4]>> = placed.iter().map(|p| p.clipped(w, h)).collect();
        for (n, r) in rects.iter().enumerate() {
            if let Some([x0, y0, x1, y1]) = *r {
                for y in y0..y1 {
                    let row = y as usize * w as usize;
                    mask[row + x0 as usize..row + x1 as usize].fill(n as u16 + 1);
                }
            }
        }
        let mut seen = vec![0u64; placed.len()];
        for r in rects.iter().flatten() {
            let [x0, y0, x1, y1] = *r;
            for y in y0..y1 {
                let row = y as usize * w as usize;
                for m in &mut mask[row + x0 as usize..row + x1 as usize] {
                    if *m != 0 {
                        seen[usize::from(*m) - 1] += 1;
                        *m = 0;
                    }
                }
            }
        }
        frames_people.push(
            placed
                .iter()
                .zip(&rects)
                .zip(&seen)
                .filter_map(|((p, r), &n)| {
                    let [x0, y0, x1, y1] = (*r)?;
                    Some(FramePerson {
                        id: p.id as u32,
                        x: p.foot.x,
                        y: p.foot.y,
                        bbox: [x0, y0, x1, y1].map(f64::from),
                        visible: n as f64 / (f64::from(p.w) * f64::from(p.h)),
                    })
                })
                .collect(),
        );
    }

    let mut crossings = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for line in &analytics.lines {
        let list = line_crossings(&line.polyline(), line.in_side, &anchor_keys, t_end);
        let mut c = LineCount::default();
        for x in &list {
            match x.direction {
                Direction::In => c.count_in += 1,
                Direction::Out => c.count_out += 1,
            }
        }
        counts.insert(line.name.clone(), c);
        crossings.insert(line.name.clone(), list);
    }

    let mut visits = BTreeMap::new();
    let mut loiter_events = BTreeMap::new();
    for zone in &analytics.zones {
        let poly = zone.polygon();
        let mut list = Vec::new();
        for (id, k) in anchor_keys.iter().enumerate() {
            let inside: Vec<bool> = (0..frames)
                .map(|i| {
                    position(k, frame_time(s, i)).is_some_and(|p| geom::polygon_contains(&poly, p))
                })
                .collect();
            for (entered, left) in zone_visits(&inside, f64::from(s.fps), zone.enter_s, zone.exit_s)
            {
                list.push(TrueVisit {
                    person: id as u32,
                    entered,
                    left,
                    dwell_s: left - entered,
                });
            }
        }
        list.sort_by(|a, b| {
            a.entered
                .total_cmp(&b.entered)
                .then(a.person.cmp(&b.person))
        });
        if let Some(loiter) = zone.loiter_s {
            let events = list
                .iter()
                .filter(|v| v.dwell_s > loiter)
                .map(|v| LoiterEvent {
                    person: v.person,
                    t: v.entered + loiter,
                })
                .collect();
            loiter_events.insert(zone.name.clone(), events);
        }
        visits.insert(zone.name.clone(), list);
    }

    let (passers_by, entries) = funnel(&analytics, &crossings, &visits, keys.len());
    let entry_rate =
        (entries + passers_by > 0).then(|| f64::from(entries) / f64::from(entries + passers_by));

    Ok(Truth {
        scenario: s.name.clone(),
        description: s.description.clone(),
        fps: s.fps,
        frames,
        width: w,
        height: h,
        anchor: analytics.anchor,
        people,
        frames_people,
        crossings,
        counts,
        visits,
        passers_by,
        entries,
        entry_rate,
        loiter_events,
    })
}

/// Every crossing of the polyline by the piecewise-linear foot paths, up to
/// `t_end`. Moving onto the `in_side` is "in".
pub fn line_crossings(
    line: &[Point],
    in_side: InSide,
    keys: &[Vec<Key>],
    t_end: f64,
) -> Vec<TrueCrossing> {
    let mut out: Vec<TrueCrossing> = Vec::new();
    for (id, k) in keys.iter().enumerate() {
        let mut mine: Vec<TrueCrossing> = Vec::new();
        for seg in k.windows(2) {
            for l in line.windows(2) {
                let Some((u, onto_left)) = geom::crossing(seg[0].p, seg[1].p, l[0], l[1]) else {
                    continue;
                };
                let t = seg[0].t + u * (seg[1].t - seg[0].t);
                let direction = if onto_left == (in_side == InSide::Left) {
                    Direction::In
                } else {
                    Direction::Out
                };
                // Passing exactly through a vertex cuts two segments: once.
                if mine
                    .iter()
                    .any(|c| c.direction == direction && (c.t - t).abs() < 1e-6)
                {
                    continue;
                }
                if t <= t_end + EPS {
                    mine.push(TrueCrossing {
                        person: id as u32,
                        direction,
                        t,
                    });
                }
            }
        }
        out.extend(mine);
    }
    out.sort_by(|a, b| a.t.total_cmp(&b.t).then(a.person.cmp(&b.person)));
    out
}

/// Visits from per-frame insideness, as camera-app's zone tracker sees a
/// perfect track: a visit starts at the first frame of a run of inside
/// frames lasting at least `enter_s`, ends at the last inside frame, and
/// spans gaps outside of at most `exit_s`.
pub fn zone_visits(inside: &[bool], fps: f64, enter_s: f64, exit_s: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    let mut since: Option<f64> = None;
    let mut entered: Option<f64> = None;
    let mut last_inside = f64::NEG_INFINITY;
    for (i, &is_in) in inside.iter().enumerate() {
        let t = i as f64 / fps;
        if let Some(e) = entered
            && t - last_inside > exit_s + EPS
        {
            out.push((e, last_inside));
            entered = None;
            since = None;
        }
        if is_in {
            last_inside = t;
            let s = *since.get_or_insert(t);
            if entered.is_none() && t - s >= enter_s - EPS {
                entered = Some(s);
            }
        } else if entered.is_none() {
            since = None;
        }
    }
    if let Some(e) = entered {
        out.push((e, last_inside));
    }
    out
}

fn funnel(
    a: &Analytics,
    crossings: &BTreeMap<String, Vec<TrueCrossing>>,
    visits: &BTreeMap<String, Vec<TrueVisit>>,
    people: usize,
) -> (u32, u32) {
    let pb = a.passers_by.as_deref();
    let pb_is_street = a
        .zones
        .iter()
        .any(|z| Some(z.name.as_str()) == pb && z.kind == ZoneKind::Street);
    let mut entries = 0;
    let mut went_in = vec![false; people];
    for (name, list) in crossings {
        if Some(name.as_str()) == pb {
            continue;
        }
        for c in list {
            // Someone who walked out and then along the street left the
            // shop: not a passer-by either.
            went_in[c.person as usize] = true;
            if c.direction == Direction::In {
                entries += 1;
            }
        }
    }
    let mut passed = vec![false; people];
    if let Some(pb) = pb {
        if pb_is_street {
            for v in visits.get(pb).into_iter().flatten() {
                passed[v.person as usize] = true;
            }
        } else {
            for c in crossings.get(pb).into_iter().flatten() {
                passed[c.person as usize] = true;
            }
        }
    }
    let passers_by = passed
        .iter()
        .zip(&went_in)
        .filter(|&(&p, &w)| p && !w)
        .count() as u32;
    (passers_by, entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::scenario::keys_of as keys;

    const DOOR: [Point; 2] = [Point::new(0.15, 0.55), Point::new(0.85, 0.55)];

    #[test]
    fn a_straight_walk_up_through_the_door_is_one_in() {
        let k = vec![keys(&[(0.5, 0.95, 0.0), (0.5, 0.35, 6.0)])];
        let c = line_crossings(&DOOR, InSide::Left, &k, 10.0);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].direction, Direction::In);
        assert!((c[0].t - 4.0).abs() < 1e-9, "{c:?}");
        // The other way round, or with the other in side, it is "out".
        let c = line_crossings(&DOOR, InSide::Right, &k, 10.0);
        assert_eq!(c[0].direction, Direction::Out);
        let k = vec![keys(&[(0.5, 0.35, 0.0), (0.5, 0.95, 6.0)])];
        assert_eq!(
            line_crossings(&DOOR, InSide::Left, &k, 10.0)[0].direction,
            Direction::Out
        );
    }

    #[test]
    fn a_u_turn_before_the_line_is_nothing_and_after_it_is_in_then_out() {
        let before = vec![keys(&[
            (0.5, 0.95, 0.0),
            (0.5, 0.62, 3.0),
            (0.45, 0.95, 6.0),
        ])];
        assert!(line_crossings(&DOOR, InSide::Left, &before, 10.0).is_empty());
        let after = vec![keys(&[
            (0.5, 0.95, 0.0),
            (0.5, 0.45, 4.0),
            (0.6, 0.95, 8.0),
        ])];
        let c = line_crossings(&DOOR, InSide::Left, &after, 10.0);
        let dirs: Vec<Direction> = c.iter().map(|c| c.direction).collect();
        assert_eq!(dirs, vec![Direction::In, Direction::Out]);
        assert!(c[0].t < c[1].t);
        // Walking round the end of the line is not a crossing.
        let round = vec![keys(&[(0.95, 0.95, 0.0), (0.95, 0.35, 6.0)])];
        assert!(line_crossings(&DOOR, InSide::Left, &round, 10.0).is_empty());
    }

    #[test]
    fn a_path_through_a_polyline_vertex_counts_once() {
        let bent = [
            Point::new(0.1, 0.6),
            Point::new(0.5, 0.5),
            Point::new(0.9, 0.6),
        ];
        let k = vec![keys(&[(0.5, 0.9, 0.0), (0.5, 0.2, 7.0)])];
        assert_eq!(line_crossings(&bent, InSide::Left, &k, 10.0).len(), 1);
    }

    #[test]
    fn zone_visits_with_inertia_and_bridged_gaps() {
        let fps = 10.0;
        // Inside frames 10..=60, out 61..=70 (1 s gap), in 71..=90.
        let inside: Vec<bool> = (0..120)
            .map(|i| (10..=60).contains(&i) || (71..=90).contains(&i))
            .collect();
        assert_eq!(zone_visits(&inside, fps, 1.0, 2.0), vec![(1.0, 9.0)]);
        // With a shorter exit_s the gap splits the visit.
        assert_eq!(
            zone_visits(&inside, fps, 1.0, 0.5),
            vec![(1.0, 6.0), (7.1, 9.0)]
        );
        // A brief pass is not a visit.
        let brief: Vec<bool> = (0..50).map(|i| (10..15).contains(&i)).collect();
        assert!(zone_visits(&brief, fps, 1.0, 2.0).is_empty());
    }
}
