//! Counting waits for a set clock.
//!
//! Cameras have no battery-backed clock: at boot the system time is the
//! image's build time (systemd's floor) until NTP steps it, seconds or
//! hours later. Bins and events stamped before then would be published as
//! facts about the wrong day. With `camera.clock = "synced"` (the image's
//! setting) frames still go through detection (the watchdog is fed, health
//! is published with the clock state and the frames held back), but
//! nothing is counted or written until the kernel reports the clock
//! synchronised once; from then on the clock is trusted for the rest of
//! the run (a later loss of sync only lets it drift, as health says).

use serde::Deserialize;

use crate::health::ClockSync;

/// When the wall clock may stamp records (`camera.clock`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockPolicy {
    /// Whatever the clock says (development, recorded files whose frames
    /// carry their own time).
    #[default]
    Any,
    /// Only once the kernel has reported the clock synchronised.
    Synced,
}

/// Decides, frame by frame, whether the clock may stamp records (state in,
/// decision out; the kernel's state comes from the query it is given).
pub struct ClockGate {
    policy: ClockPolicy,
    query: fn() -> ClockSync,
    trusted: bool,
    said: bool,
}

impl std::fmt::Debug for ClockGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClockGate")
            .field("policy", &self.policy)
            .field("trusted", &self.trusted)
            .finish_non_exhaustive()
    }
}

impl Default for ClockGate {
    fn default() -> Self {
        Self::new(ClockPolicy::Any, crate::health::system::kernel_clock)
    }
}

impl ClockGate {
    pub fn new(policy: ClockPolicy, query: fn() -> ClockSync) -> Self {
        Self {
            policy,
            query,
            trusted: policy == ClockPolicy::Any,
            said: false,
        }
    }

    /// May this frame's time stamp records? Asks the kernel (one cheap
    /// system call) only until the answer is yes.
    pub fn open(&mut self) -> bool {
        if self.trusted {
            return true;
        }
        if matches!((self.query)(), ClockSync::Synced { .. }) {
            self.trusted = true;
            tracing::info!("the clock is synchronised: counting starts");
        } else if !self.said {
            self.said = true;
            tracing::warn!(
                "the clock is not synchronised (no NTP yet): frames are detected but \
                 not counted until it is, so that no bin carries a wrong time"
            );
        }
        self.trusted
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    static SYNCED: AtomicBool = AtomicBool::new(false);

    fn fake() -> ClockSync {
        if SYNCED.load(Ordering::SeqCst) {
            ClockSync::Synced {
                est_error_us: 100,
                max_error_us: 1000,
            }
        } else {
            ClockSync::Unsynced {
                est_error_us: 0,
                max_error_us: 16_000_000,
            }
        }
    }

    #[test]
    fn counting_waits_for_the_first_sync_then_stays_on() {
        let mut any = ClockGate::new(ClockPolicy::Any, fake);
        assert!(any.open(), "policy any trusts whatever the clock says");
        let mut g = ClockGate::new(ClockPolicy::Synced, fake);
        assert!(!g.open());
        assert!(!g.open());
        SYNCED.store(true, Ordering::SeqCst);
        assert!(g.open());
        SYNCED.store(false, Ordering::SeqCst);
        assert!(g.open(), "a later loss of sync only lets it drift");
    }
}
