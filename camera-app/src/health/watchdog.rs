//! systemd's watchdog, fed by frames.
//!
//! With `WatchdogSec=` in its unit, systemd expects `WATCHDOG=1` at least
//! once per period and kills the service otherwise. camera-app sends it
//! only after a frame went through detection, so a hung capture driver, a
//! stuck NPU or a dead loop all end the same way: systemd restarts the
//! app, and when it keeps failing during an update trial, no healthy
//! reports reach the agent and the trial rolls back. A ping is sent at
//! most every third of the period (systemd's advice is half; a third
//! leaves room for a slow frame). Without a watchdog in the environment
//! (tests, a developer's machine) only `READY=1` and `STOPPING=1` are
//! sent, and those only where `NOTIFY_SOCKET` is set.

/// What is sent to the service manager (one `sd_notify` state each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Ready,
    Watchdog,
    Stopping,
}

/// Where notices go: systemd on a camera, a list in tests.
pub trait Notifier: Send {
    fn notify(&mut self, notice: Notice);
}

/// The service manager, through `NOTIFY_SOCKET`; a no-op without it.
#[derive(Debug, Default)]
pub struct Systemd;

impl Notifier for Systemd {
    fn notify(&mut self, notice: Notice) {
        let state = match notice {
            Notice::Ready => sd_notify::NotifyState::Ready,
            Notice::Watchdog => sd_notify::NotifyState::Watchdog,
            Notice::Stopping => sd_notify::NotifyState::Stopping,
        };
        if let Err(e) = sd_notify::notify(false, &[state]) {
            tracing::warn!(error = %e, ?notice, "cannot notify systemd");
        }
    }
}

/// Decides when to feed the watchdog (time in, notices out).
pub struct Watchdog {
    notifier: Box<dyn Notifier>,
    /// systemd's period (`WATCHDOG_USEC`); `None`: no watchdog.
    period_us: Option<u64>,
    last_us: Option<u64>,
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog")
            .field("period_us", &self.period_us)
            .field("last_us", &self.last_us)
            .finish_non_exhaustive()
    }
}

impl Watchdog {
    pub fn new(notifier: Box<dyn Notifier>, period_us: Option<u64>) -> Self {
        Self {
            notifier,
            period_us: period_us.filter(|p| *p > 0),
            last_us: None,
        }
    }

    /// systemd's, with the period it set for this process.
    pub fn from_env() -> Self {
        let mut usec = 0;
        let enabled = sd_notify::watchdog_enabled(false, &mut usec);
        Self::new(Box::new(Systemd), enabled.then_some(usec))
    }

    /// Set-up is done: devices open, model loaded.
    pub fn ready(&mut self) {
        self.notifier.notify(Notice::Ready);
    }

    /// A frame went through detection at `now_us` (monotonic).
    pub fn frame(&mut self, now_us: u64) {
        let Some(period) = self.period_us else {
            return;
        };
        let due = self
            .last_us
            .is_none_or(|last| now_us.saturating_sub(last) >= period / 3);
        if due {
            self.notifier.notify(Notice::Watchdog);
            self.last_us = Some(now_us);
        }
    }

    /// The app is stopping on purpose (SIGTERM, end of input).
    pub fn stopping(&mut self) {
        self.notifier.notify(Notice::Stopping);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<(Notice, u64)>>>);

    struct Recorder {
        sent: Recorded,
        now: Arc<Mutex<u64>>,
    }

    impl Notifier for Recorder {
        fn notify(&mut self, notice: Notice) {
            let now = *self.now.lock().unwrap();
            self.sent.0.lock().unwrap().push((notice, now));
        }
    }

    fn watchdog(period_us: Option<u64>) -> (Watchdog, Recorded, Arc<Mutex<u64>>) {
        let sent = Recorded::default();
        let now = Arc::new(Mutex::new(0));
        let n = Recorder {
            sent: sent.clone(),
            now: now.clone(),
        };
        (Watchdog::new(Box::new(n), period_us), sent, now)
    }

    #[test]
    fn fed_while_frames_flow_and_starved_when_they_stop() {
        // systemd's period: 30 s; frames at 10 fps for 60 s, then none
        // for 60 s (a hung driver), then again.
        let (mut w, sent, now) = watchdog(Some(30_000_000));
        w.ready();
        let mut frame = |t: u64| {
            *now.lock().unwrap() = t;
            w.frame(t);
        };
        for t in (0..60_000_000).step_by(100_000) {
            frame(t);
        }
        for t in (120_000_000..130_000_000).step_by(100_000) {
            frame(t);
        }
        let pings: Vec<u64> = sent
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| *n == Notice::Watchdog)
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(
            pings,
            [
                0,
                10_000_000,
                20_000_000,
                30_000_000,
                40_000_000,
                50_000_000,
                120_000_000
            ],
            "every third of the period while frames flow, nothing in the gap"
        );
        assert_eq!(sent.0.lock().unwrap()[0].0, Notice::Ready);
    }

    #[test]
    fn without_a_watchdog_only_ready_and_stopping_are_sent() {
        let (mut w, sent, _) = watchdog(None);
        w.ready();
        for t in 0..100 {
            w.frame(t * 100_000);
        }
        w.stopping();
        let notices: Vec<Notice> = sent.0.lock().unwrap().iter().map(|(n, _)| *n).collect();
        assert_eq!(notices, [Notice::Ready, Notice::Stopping]);
    }
}
