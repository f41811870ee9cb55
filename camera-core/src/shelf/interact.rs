//! Shelf interactions: a *stop* is a track whose foot point stays in a
//! shelf's front zone at least `stop_s`; a *take* is a stop after which
//! the shelf's fill has dropped, judged on the first clean observation
//! once the shopper has left. Pure: positions, fills and times come in.

use std::collections::BTreeMap;

use crate::geom::Point;
use crate::track::TrackId;

use super::layout::Shelf;

/// A stop: a track in the front zone from `start_us` to `end_us`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stop {
    pub track: TrackId,
    pub start_us: i64,
    pub end_us: i64,
}

/// What the interaction counter reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Interaction {
    /// A stop ended (the shopper left the front zone).
    Stop(Stop),
    /// The fill observed after `stop` is lower than before it.
    Take { stop: Stop, drop: f32 },
}

/// Counts per shelf for one bin.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ShelfCounts {
    pub stops: u32,
    pub takes: u32,
    /// Sum of stop durations, for the average.
    pub stop_time_us: i64,
}

impl ShelfCounts {
    /// Average stop time in seconds (0 without stops).
    pub fn average_stop_s(&self) -> f64 {
        if self.stops == 0 {
            0.0
        } else {
            self.stop_time_us as f64 / 1e6 / f64::from(self.stops)
        }
    }
}

/// A track that left the front zone less than this ago, near where a new
/// track appears, was the same shopper (the tracker lost and found them):
/// one stop, not two.
const BRIDGE_US: i64 = 1_500_000;
/// ... within this distance (normalised image units).
const BRIDGE_DIST: f32 = 0.1;

/// A track gone from the front zone, not yet counted (it may come back
/// under another id).
#[derive(Debug, Clone, Copy)]
struct Leaving {
    track: TrackId,
    start_us: i64,
    end_us: i64,
    at: Point,
}

#[derive(Debug, Clone, Default)]
struct ShelfWatch {
    /// Tracks in the front zone now: since when, and where last.
    present: BTreeMap<TrackId, (i64, Point)>,
    leaving: Vec<Leaving>,
    /// Ended stops waiting for the next clean fill.
    pending: Vec<Stop>,
    /// Facing fills of the last clean observation.
    last_fill: Option<Vec<f32>>,
    /// The facing fills before the pending stops began.
    fill_before: Option<Vec<f32>>,
    counts: ShelfCounts,
}

/// Stops and takes at each shelf.
#[derive(Debug, Clone)]
pub struct Interactions {
    stop_us: i64,
    /// A take needs one facing's fill to drop by this much (a product is
    /// a fraction of one facing; the noise of a sum over many facings would
    /// hide it).
    take_drop: f32,
    shelves: Vec<ShelfWatch>,
}

impl Interactions {
    pub fn new(shelves: usize, stop_s: f64, take_drop: f32) -> Self {
        Self {
            stop_us: (stop_s * 1e6) as i64,
            take_drop,
            shelves: vec![ShelfWatch::default(); shelves],
        }
    }

    /// The tracks' foot points this frame; stops that ended are appended
    /// to `out`. A track missing from `feet` has left.
    pub fn frame(
        &mut self,
        shelves: &[Shelf],
        feet: &[(TrackId, Point)],
        now_us: i64,
        out: &mut Vec<(usize, Interaction)>,
    ) {
        for (i, (shelf, w)) in shelves.iter().zip(self.shelves.iter_mut()).enumerate() {
            for &(id, p) in feet {
                if !shelf.front.contains(p) {
                    continue;
                }
                if let Some(entry) = w.present.get_mut(&id) {
                    entry.1 = p;
                    continue;
                }
                // A new track where one just left: the same shopper.
                let start = match w.leaving.iter().position(|l| {
                    now_us - l.end_us <= BRIDGE_US
                        && (l.at.x - p.x).hypot(l.at.y - p.y) <= BRIDGE_DIST
                }) {
                    Some(k) => w.leaving.swap_remove(k).start_us,
                    None => now_us,
                };
                w.present.insert(id, (start, p));
            }
            let gone: Vec<TrackId> = w
                .present
                .keys()
                .filter(|id| {
                    !feet
                        .iter()
                        .any(|(f, p)| f == *id && shelf.front.contains(*p))
                })
                .copied()
                .collect();
            for id in gone {
                if let Some((start_us, at)) = w.present.remove(&id) {
                    w.leaving.push(Leaving {
                        track: id,
                        start_us,
                        end_us: now_us,
                        at,
                    });
                }
            }
            // Left for good: a stop if it lasted.
            let stop_us = self.stop_us;
            let mut k = 0;
            while k < w.leaving.len() {
                let l = w.leaving[k];
                if now_us - l.end_us <= BRIDGE_US {
                    k += 1;
                    continue;
                }
                w.leaving.swap_remove(k);
                if l.end_us - l.start_us >= stop_us {
                    let stop = Stop {
                        track: l.track,
                        start_us: l.start_us,
                        end_us: l.end_us,
                    };
                    if w.pending.is_empty() {
                        w.fill_before.clone_from(&w.last_fill);
                    }
                    w.pending.push(stop);
                    w.counts.stops += 1;
                    w.counts.stop_time_us += l.end_us - l.start_us;
                    out.push((i, Interaction::Stop(stop)));
                }
            }
        }
    }

    /// A clean observation of `shelf`'s facings (nobody in the way): it
    /// settles the takes of the stops that ended before it.
    pub fn fill(&mut self, shelf: usize, fills: &[f32], out: &mut Vec<(usize, Interaction)>) {
        let Some(w) = self.shelves.get_mut(shelf) else {
            return;
        };
        // Someone still there (or just gone, maybe coming back): not
        // clean for the stops that ended.
        let settled = w.present.is_empty() && w.leaving.is_empty();
        if settled && !w.pending.is_empty() {
            // The largest drop of one facing.
            let drop = w.fill_before.as_ref().map_or(0.0, |before| {
                before
                    .iter()
                    .zip(fills)
                    .filter(|(b, f)| b.is_finite() && f.is_finite())
                    .map(|(b, f)| b - f)
                    .fold(0.0, f32::max)
            });
            // One drop is one take, credited to the last stop before it.
            if drop >= self.take_drop
                && let Some(&stop) = w.pending.last()
            {
                w.counts.takes += 1;
                out.push((shelf, Interaction::Take { stop, drop }));
            }
            w.pending.clear();
        }
        if settled {
            w.last_fill = Some(fills.to_vec());
        }
    }

    /// This bin's counts per shelf, and start a new bin.
    pub fn take_counts(&mut self) -> Vec<ShelfCounts> {
        self.shelves
            .iter_mut()
            .map(|w| std::mem::take(&mut w.counts))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shelf::layout::{RawShelf, validate};

    fn shelves() -> Vec<Shelf> {
        let raw: RawShelf = toml::from_str(
            "name = \"s\"\npolygon = [[0.1, 0.2], [0.9, 0.2], [0.9, 0.5], [0.1, 0.5]]\n\
             grid = [1, 4]\nfront = [[0.1, 0.5], [0.9, 0.5], [0.9, 0.8], [0.1, 0.8]]\n",
        )
        .expect("toml");
        validate(&[raw]).expect("valid")
    }

    const S: i64 = 1_000_000;
    const IN: Point = Point::new(0.5, 0.6);
    const OUT: Point = Point::new(0.5, 0.95);

    #[test]
    fn a_long_stay_is_a_stop_and_a_short_one_is_not() {
        let sh = shelves();
        let mut ix = Interactions::new(1, 3.0, 0.3);
        let mut out = Vec::new();
        // Track 1 stays 5 s, track 2 passes through in 1 s.
        for t in 0..=5 {
            ix.frame(
                &sh,
                &[(1, IN), (2, if t < 1 { IN } else { OUT })],
                t * S,
                &mut out,
            );
        }
        ix.frame(&sh, &[(1, OUT)], 6 * S, &mut out);
        assert!(
            out.is_empty(),
            "not yet: they may come back under another id"
        );
        ix.frame(&sh, &[(1, OUT)], 8 * S, &mut out);
        assert_eq!(
            out,
            [(
                0,
                Interaction::Stop(Stop {
                    track: 1,
                    start_us: 0,
                    end_us: 6 * S
                })
            )]
        );
        let c = ix.take_counts();
        assert_eq!((c[0].stops, c[0].takes), (1, 0));
        assert!((c[0].average_stop_s() - 6.0).abs() < 1e-9);
        assert_eq!(ix.take_counts()[0], ShelfCounts::default(), "a new bin");
    }

    #[test]
    fn a_stop_followed_by_a_lower_fill_is_a_take() {
        let sh = shelves();
        let mut ix = Interactions::new(1, 2.0, 0.3);
        let mut out = Vec::new();
        ix.fill(0, &[1.0, 1.0, 1.0, 1.0], &mut out);
        for t in 0..4 {
            ix.frame(&sh, &[(7, IN)], t * S, &mut out);
            // Observations while the shopper stands there do not count.
            ix.fill(0, &[1.0, 0.2, 1.0, 1.0], &mut out);
        }
        ix.frame(&sh, &[], 4 * S, &mut out);
        ix.fill(0, &[1.0, 0.5, 1.0, 1.0], &mut out);
        assert!(out.is_empty(), "the stop is not settled yet: {out:?}");
        ix.frame(&sh, &[], 6 * S, &mut out);
        ix.fill(0, &[1.0, 0.5, 1.0, 1.0], &mut out);
        assert!(matches!(out[0], (0, Interaction::Stop(_))), "{out:?}");
        let (0, Interaction::Take { stop, drop }) = out[1] else {
            panic!("take expected: {out:?}")
        };
        assert_eq!(stop.track, 7);
        assert!((drop - 0.5).abs() < 1e-6, "{drop}");
        assert_eq!(ix.take_counts()[0].takes, 1);
    }

    #[test]
    fn a_stop_without_a_fill_drop_is_no_take() {
        let sh = shelves();
        let mut ix = Interactions::new(1, 2.0, 0.3);
        let mut out = Vec::new();
        ix.fill(0, &[1.0; 4], &mut out);
        for t in 0..4 {
            ix.frame(&sh, &[(3, IN)], t * S, &mut out);
        }
        ix.frame(&sh, &[], 4 * S, &mut out);
        ix.frame(&sh, &[], 6 * S, &mut out);
        ix.fill(0, &[0.95, 1.0, 1.0, 1.0], &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(ix.take_counts()[0].takes, 0);
    }

    #[test]
    fn a_shopper_the_tracker_lost_and_found_is_one_stop() {
        let sh = shelves();
        let mut ix = Interactions::new(1, 3.0, 0.3);
        let mut out = Vec::new();
        // Track 4 stands 2 s, is lost, and comes back as track 9 half a
        // second later at the same place for 2 s more: one stop of 4.5 s.
        for t in 0..4 {
            ix.frame(&sh, &[(4, IN)], t * S / 2, &mut out);
        }
        ix.frame(&sh, &[], 2 * S, &mut out);
        for t in 5..10 {
            ix.frame(&sh, &[(9, IN)], t * S / 2, &mut out);
        }
        ix.frame(&sh, &[(9, OUT)], 5 * S, &mut out);
        ix.frame(&sh, &[], 7 * S, &mut out);
        assert_eq!(
            out,
            [(
                0,
                Interaction::Stop(Stop {
                    track: 9,
                    start_us: 0,
                    end_us: 5 * S
                })
            )]
        );
        // Someone else far along the zone is not the lost one.
        let mut ix = Interactions::new(1, 3.0, 0.3);
        let mut out = Vec::new();
        for t in 0..4 {
            ix.frame(&sh, &[(4, IN)], t * S / 2, &mut out);
        }
        let far = Point::new(0.85, 0.6);
        for t in 4..12 {
            ix.frame(&sh, &[(9, far)], t * S / 2, &mut out);
        }
        ix.frame(&sh, &[], 8 * S, &mut out);
        ix.frame(&sh, &[], 10 * S, &mut out);
        assert_eq!(out.len(), 1, "only track 9 stayed 3 s: {out:?}");
    }
}
