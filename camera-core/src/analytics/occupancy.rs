//! Store occupancy from door counts, with drift control.
//!
//! Door counts drift: a missed exit leaves a ghost inside for the rest of
//! the day, a missed entry drives the count below zero. So the count is
//! clamped at zero (each clamp is counted), raised to the number of people
//! actually seen inside when it falls below that (each correction is
//! counted), and started again from zero at a configured local time when
//! the store is known to be empty; what was left at that moment is the
//! day's drift, reported.

use crate::config::OccupancySpec;

const DAY_S: i64 = 86_400;

/// Drift figures since the last bin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Drift {
    /// Exits that would have taken the count below zero.
    pub clamped_exits: u64,
    /// People added because more were seen inside than the count said.
    pub raised_by: u64,
    /// The count thrown away at the daily reset (ghosts of missed exits).
    pub reset_residual: Option<u64>,
}

/// The store occupancy state machine.
#[derive(Debug, Clone)]
pub struct StoreOccupancy {
    spec: Option<OccupancySpec>,
    count: u64,
    max: u64,
    /// Local "business day" index of the last tick (days since the epoch,
    /// shifted so each day starts at the reset time).
    day: Option<i64>,
    drift: Drift,
}

impl StoreOccupancy {
    pub fn new(spec: Option<OccupancySpec>) -> Self {
        Self {
            spec,
            count: 0,
            max: 0,
            day: None,
            drift: Drift::default(),
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest count since the last [`take_bin`](Self::take_bin).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Advance the clock; resets the count when the reset time has passed.
    /// Returns true on a reset.
    pub fn tick(&mut self, t_us: u64) -> bool {
        let Some(spec) = self.spec else {
            return false;
        };
        let local_s = i64::try_from(t_us / 1_000_000).unwrap_or(i64::MAX)
            + i64::from(spec.utc_offset_s)
            - i64::from(spec.reset_at_s);
        let day = local_s.div_euclid(DAY_S);
        let previous = self.day.replace(day);
        if previous.is_some_and(|p| day > p) {
            self.drift.reset_residual = Some(self.drift.reset_residual.unwrap_or(0) + self.count);
            self.count = 0;
            self.max = 0;
            true
        } else {
            false
        }
    }

    pub fn entered(&mut self) {
        self.count += 1;
        self.max = self.max.max(self.count);
    }

    pub fn exited(&mut self) {
        if self.count == 0 {
            self.drift.clamped_exits += 1;
        } else {
            self.count -= 1;
        }
    }

    /// `seen` people are visible inside right now: the count cannot be
    /// lower.
    pub fn reconcile(&mut self, seen: u64) {
        if seen > self.count {
            self.drift.raised_by += seen - self.count;
            self.count = seen;
            self.max = self.max.max(self.count);
        }
    }

    /// The drift figures and maximum since the last call; starts new ones.
    pub fn take_bin(&mut self) -> (Drift, u64) {
        let max = std::mem::replace(&mut self.max, self.count);
        (std::mem::take(&mut self.drift), max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000_000;
    /// 2026-01-01T00:00:00Z.
    const DAY0: u64 = 1_767_225_600_000_000;

    #[test]
    fn never_negative_and_clamps_are_counted() {
        let mut o = StoreOccupancy::new(None);
        o.entered();
        o.exited();
        o.exited();
        assert_eq!(o.count(), 0);
        let (drift, max) = o.take_bin();
        assert_eq!(drift.clamped_exits, 1);
        assert_eq!(max, 1);
        assert_eq!(o.take_bin().0, Drift::default());
    }

    #[test]
    fn people_seen_inside_raise_the_count() {
        let mut o = StoreOccupancy::new(None);
        o.entered();
        o.reconcile(3);
        assert_eq!(o.count(), 3);
        o.reconcile(1);
        assert_eq!(o.count(), 3);
        assert_eq!(o.take_bin().0.raised_by, 2);
    }

    #[test]
    fn resets_at_the_configured_local_time_and_reports_the_residual() {
        // Reset at 04:00 local, local = UTC+1: 03:00 UTC.
        let mut o = StoreOccupancy::new(Some(OccupancySpec {
            reset_at_s: 4 * 3600,
            utc_offset_s: 3600,
        }));
        assert!(!o.tick(DAY0 + 20 * H));
        o.entered();
        o.entered();
        o.exited();
        assert!(!o.tick(DAY0 + 26 * H)); // 02:00 UTC next day: 03:00 local
        assert_eq!(o.count(), 1);
        assert!(o.tick(DAY0 + 27 * H + 1)); // 04:00 local
        assert_eq!(o.count(), 0);
        assert!(!o.tick(DAY0 + 28 * H));
        assert_eq!(o.take_bin().0.reset_residual, Some(1));
        // A long gap (camera off over the reset time) still resets.
        o.entered();
        assert!(o.tick(DAY0 + 80 * H));
        assert_eq!(o.count(), 0);
    }
}
