//! A facing's stock state from its estimated fill level (0 empty, 1 as
//! full as the reference): thresholds with hysteresis, so a fill hovering
//! at a boundary does not flap, and persistence, so a state holds only
//! after `persistence` consecutive observations agree. Pure: observations
//! and their times come in as arguments.

use serde::{Deserialize, Serialize};

/// What a shopper or the store sees on a facing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stock {
    Stocked,
    Low,
    Empty,
}

/// Where the states divide, and how sure a change must be.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Below this fill a facing is low.
    pub low_below: f32,
    /// Below this fill a facing is empty.
    pub empty_below: f32,
    /// A boundary moves this far against a change: leaving `stocked`
    /// needs fill < low_below − hysteresis, coming back > low_below +
    /// hysteresis.
    pub hysteresis: f32,
    /// Consecutive agreeing observations before a new state holds.
    pub persistence: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            low_below: 0.6,
            empty_below: 0.2,
            hysteresis: 0.05,
            persistence: 3,
        }
    }
}

impl Thresholds {
    /// Every problem, each with its field.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let unit = |v: f32| v.is_finite() && (0.0..=1.0).contains(&v);
        if !unit(self.low_below) || !unit(self.empty_below) {
            p.push("low_below and empty_below must be within 0..1".into());
        } else if self.empty_below >= self.low_below {
            p.push(format!(
                "empty_below ({}) must be below low_below ({})",
                self.empty_below, self.low_below
            ));
        }
        if !(self.hysteresis.is_finite() && (0.0..0.2).contains(&self.hysteresis)) {
            p.push(format!(
                "hysteresis {} must be within 0..0.2",
                self.hysteresis
            ));
        }
        if !(1..=100).contains(&self.persistence) {
            p.push(format!("persistence {} must be 1 to 100", self.persistence));
        }
        p
    }

    /// The state `fill` indicates for a facing now in `current`.
    pub fn classify(&self, fill: f32, current: Option<Stock>) -> Stock {
        let h = self.hysteresis;
        // Boundaries shift away from the current state.
        let (low, empty) = match current {
            Some(Stock::Stocked) => (self.low_below - h, self.empty_below - h),
            Some(Stock::Low) => (self.low_below + h, self.empty_below - h),
            Some(Stock::Empty) => (self.low_below + h, self.empty_below + h),
            None => (self.low_below, self.empty_below),
        };
        if fill < empty {
            Stock::Empty
        } else if fill < low {
            Stock::Low
        } else {
            Stock::Stocked
        }
    }
}

/// A state that took hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    /// `None` for the first state after start or a new reference.
    pub from: Option<Stock>,
    pub to: Stock,
    /// Fill of the observation that settled it.
    pub fill: f32,
    /// When the first of the agreeing observations was made.
    pub since_us: i64,
}

/// One facing's state over time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FacingState {
    current: Option<(Stock, i64)>,
    /// A different state being observed: (state, count, first time).
    candidate: Option<(Stock, u32, i64)>,
}

impl FacingState {
    /// The state that holds and since when.
    pub fn current(&self) -> Option<(Stock, i64)> {
        self.current
    }

    /// One clean observation (no shopper in the way, steady light): the
    /// change it completes, if any. A fill that is not a number is not an
    /// observation.
    pub fn observe(&mut self, fill: f32, now_us: i64, t: &Thresholds) -> Option<Change> {
        if !fill.is_finite() {
            return None;
        }
        let fill = fill.clamp(0.0, 1.0);
        let now_state = self.current.map(|(s, _)| s);
        let seen = t.classify(fill, now_state);
        if Some(seen) == now_state {
            self.candidate = None;
            return None;
        }
        let (count, since) = match self.candidate {
            Some((s, n, since)) if s == seen => (n + 1, since),
            _ => (1, now_us),
        };
        if count < t.persistence {
            self.candidate = Some((seen, count, since));
            return None;
        }
        self.candidate = None;
        self.current = Some((seen, since));
        Some(Change {
            from: now_state,
            to: seen,
            fill,
            since_us: since,
        })
    }

    /// Forget the state (a new reference was taken).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(fills: &[f32], t: &Thresholds) -> (FacingState, Vec<(usize, Change)>) {
        let mut f = FacingState::default();
        let changes = fills
            .iter()
            .enumerate()
            .filter_map(|(i, &v)| f.observe(v, i as i64 * 1_000_000, t).map(|c| (i, c)))
            .collect();
        (f, changes)
    }

    #[test]
    fn a_state_holds_after_persistence_agreeing_observations() {
        let t = Thresholds::default();
        let (f, ch) = run(&[0.9, 0.9, 0.9, 0.1, 0.1, 0.1], &t);
        assert_eq!(ch.len(), 2, "{ch:?}");
        assert_eq!(
            (ch[0].0, ch[0].1.from, ch[0].1.to),
            (2, None, Stock::Stocked)
        );
        let (i, c) = ch[1];
        assert_eq!((i, c.from, c.to), (5, Some(Stock::Stocked), Stock::Empty));
        assert_eq!(
            c.since_us, 3_000_000,
            "since the first agreeing observation"
        );
        assert_eq!(f.current(), Some((Stock::Empty, 3_000_000)));
    }

    #[test]
    fn an_interrupted_run_starts_over() {
        let t = Thresholds::default();
        // Two empties, a stocked one, two empties: never three in a row.
        let (_, ch) = run(&[0.9, 0.9, 0.9, 0.1, 0.1, 0.9, 0.1, 0.1], &t);
        assert_eq!(ch.len(), 1, "{ch:?}");
    }

    #[test]
    fn a_fill_hovering_at_a_boundary_does_not_flap() {
        let t = Thresholds::default();
        // Around low_below = 0.6, within the ±0.05 band.
        let hover = [
            0.9, 0.9, 0.9, 0.58, 0.62, 0.57, 0.59, 0.61, 0.58, 0.57, 0.56,
        ];
        let (f, ch) = run(&hover, &t);
        assert_eq!(ch.len(), 1, "only the first state: {ch:?}");
        assert_eq!(f.current().map(|c| c.0), Some(Stock::Stocked));
        // Clearly below: low after three.
        let (f, ch) = run(&[0.9, 0.9, 0.9, 0.5, 0.5, 0.5], &t);
        assert_eq!(ch.len(), 2);
        assert_eq!(f.current().map(|c| c.0), Some(Stock::Low));
        // And back up only past 0.65.
        let mut f = f;
        for (i, v) in [0.63, 0.64, 0.63].iter().enumerate() {
            assert_eq!(f.observe(*v, 10 + i as i64, &t), None);
        }
        let mut last = None;
        for (i, v) in [0.7, 0.7, 0.7].iter().enumerate() {
            last = f.observe(*v, 20 + i as i64, &t).or(last);
        }
        assert_eq!(last.map(|c| c.to), Some(Stock::Stocked));
    }

    #[test]
    fn not_a_number_is_not_an_observation_and_reset_forgets() {
        let t = Thresholds::default();
        let mut f = FacingState::default();
        for i in 0..3 {
            assert_eq!(f.observe(f32::NAN, i, &t), None);
        }
        assert_eq!(f.current(), None);
        let (mut f, _) = run(&[0.9, 0.9, 0.9], &t);
        f.reset();
        assert_eq!(f.current(), None);
    }

    #[test]
    fn bad_thresholds_are_named() {
        let t = Thresholds {
            low_below: 0.2,
            empty_below: 0.3,
            hysteresis: 0.5,
            persistence: 0,
        };
        let p = t.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("empty_below (0.3) must be below low_below (0.2)"));
        assert!(Thresholds::default().problems().is_empty());
    }
}
