//! Recent inference durations and their percentiles.

use std::time::Duration;

use serde::Serialize;

/// The last `capacity` inference durations (µs), in a ring allocated once.
///
/// Recording is O(1) and never allocates; percentiles are computed on a
/// sorted copy when a report is made (every few seconds, not per frame).
#[derive(Debug, Clone)]
pub struct LatencyWindow {
    samples: Vec<u32>,
    capacity: usize,
    /// Where the next sample goes once the ring is full.
    next: usize,
    /// Samples ever recorded, including those overwritten.
    total: u64,
}

/// Percentiles over a [`LatencyWindow`], nearest-rank, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LatencyStats {
    pub p50_us: u32,
    pub p95_us: u32,
    pub max_us: u32,
    /// Samples the percentiles are over.
    pub samples: usize,
}

impl LatencyWindow {
    /// A window of the last `capacity` samples (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            samples: Vec::with_capacity(capacity),
            capacity,
            next: 0,
            total: 0,
        }
    }

    /// Record one duration in µs; longer than `u32::MAX` µs (71 min)
    /// saturates.
    pub fn record_us(&mut self, us: u64) {
        let v = u32::try_from(us).unwrap_or(u32::MAX);
        if self.samples.len() < self.capacity {
            self.samples.push(v);
        } else {
            self.samples[self.next] = v;
            self.next = (self.next + 1) % self.capacity;
        }
        self.total += 1;
    }

    pub fn record(&mut self, d: Duration) {
        self.record_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Samples currently in the window.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Samples recorded since construction (or [`Self::clear`]).
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn clear(&mut self) {
        self.samples.clear();
        self.next = 0;
        self.total = 0;
    }

    /// p50, p95 and max over the window, or `None` when it is empty.
    pub fn stats(&self) -> Option<LatencyStats> {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        let max_us = *sorted.last()?;
        Some(LatencyStats {
            p50_us: nearest_rank(&sorted, 50.0),
            p95_us: nearest_rank(&sorted, 95.0),
            max_us,
            samples: sorted.len(),
        })
    }
}

/// The smallest sample with at least `p` % of the samples at or below it.
/// `sorted` must be non-empty.
fn nearest_rank(sorted: &[u32], p: f64) -> u32 {
    let n = sorted.len();
    let rank = (p / 100.0 * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut w = LatencyWindow::new(1000);
        assert_eq!(w.stats(), None);
        // 1..=100 in a scrambled order.
        for i in 0..100u64 {
            w.record_us((i * 37) % 100 + 1);
        }
        let s = w.stats().expect("samples");
        assert_eq!(
            (s.p50_us, s.p95_us, s.max_us, s.samples),
            (50, 95, 100, 100)
        );
        let mut one = LatencyWindow::new(4);
        one.record(Duration::from_millis(12));
        let s = one.stats().expect("one sample");
        assert_eq!((s.p50_us, s.p95_us), (12_000, 12_000));
    }

    #[test]
    fn the_window_keeps_only_recent_samples_without_growing() {
        let mut w = LatencyWindow::new(10);
        let buf = w.samples.as_ptr();
        // An early slow period, then 10 fast samples replace it.
        for _ in 0..10 {
            w.record_us(90_000);
        }
        for i in 0..10 {
            w.record_us(1_000 + i);
        }
        let s = w.stats().expect("samples");
        assert_eq!((s.max_us, s.samples), (1_009, 10));
        assert_eq!(s.p50_us, 1_004);
        assert_eq!(w.total(), 20);
        // Same buffer: recording never reallocates.
        assert_eq!(w.samples.as_ptr(), buf);
        assert_eq!(w.samples.capacity(), 10);
        w.record_us(u64::MAX);
        assert_eq!(w.stats().map(|s| s.max_us), Some(u32::MAX));
    }
}
