//! Reporting bins aligned to the wall clock (1, 5 or 15 minutes).
//!
//! Time comes in as an argument (µs since the Unix epoch); the clock says
//! when a bin closes. Sequence numbers increase by one per closed bin and
//! never repeat, also across empty stretches (a gap with no frames closes
//! no bins: consumers see the time jump in `start`).

/// A closed bin's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BinId {
    pub seq: u64,
    /// Start and end, µs since the Unix epoch; `end - start` is the width.
    pub start_us: u64,
    pub end_us: u64,
}

/// Aligns observations to bins.
#[derive(Debug, Clone)]
pub struct BinClock {
    width_us: u64,
    current_start: Option<u64>,
    next_seq: u64,
}

impl BinClock {
    /// `first_seq` continues the sequence of an earlier run (restored
    /// from storage).
    pub fn new(bin_minutes: u32, first_seq: u64) -> Self {
        Self {
            width_us: u64::from(bin_minutes) * 60_000_000,
            current_start: None,
            next_seq: first_seq,
        }
    }

    /// Start of the bin holding `t`.
    pub fn align(&self, t_us: u64) -> u64 {
        t_us - t_us % self.width_us
    }

    /// Observe time `t`; if it falls past the current bin, that bin is
    /// closed and returned. Times going backwards stay in the current bin.
    pub fn tick(&mut self, t_us: u64) -> Option<BinId> {
        let start = self.align(t_us);
        match self.current_start {
            None => {
                self.current_start = Some(start);
                None
            }
            Some(cur) if start > cur => {
                self.current_start = Some(start);
                let id = BinId {
                    seq: self.next_seq,
                    start_us: cur,
                    end_us: cur + self.width_us,
                };
                self.next_seq += 1;
                Some(id)
            }
            Some(_) => None,
        }
    }

    /// Close the current bin now (end of input, shutdown); the next tick
    /// opens a new one.
    pub fn close(&mut self) -> Option<BinId> {
        let cur = self.current_start.take()?;
        let id = BinId {
            seq: self.next_seq,
            start_us: cur,
            end_us: cur + self.width_us,
        };
        self.next_seq += 1;
        Some(id)
    }

    /// The sequence number the next closed bin will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000_000;

    #[test]
    fn bins_align_to_the_wall_clock_and_number_monotonically() {
        let mut c = BinClock::new(5, 41);
        let t0 = 1_767_225_600_000_000 + 2 * MIN + 17; // 00:02 past a 5-min boundary
        assert_eq!(c.tick(t0), None);
        assert_eq!(c.tick(t0 + 2 * MIN), None); // 00:04
        let b = c.tick(t0 + 3 * MIN).expect("closed at 00:05");
        assert_eq!(b.seq, 41);
        assert_eq!(b.start_us, 1_767_225_600_000_000);
        assert_eq!(b.end_us - b.start_us, 5 * MIN);
        // A clock step backwards does not reopen a closed bin.
        assert_eq!(c.tick(t0), None);
        // A long gap closes only the bin that was open.
        let b = c.tick(t0 + 60 * MIN).expect("closed");
        assert_eq!(b.seq, 42);
        assert_eq!(b.start_us, 1_767_225_600_000_000 + 5 * MIN);
    }
}
