//! The health gate of a trial: a new slot is committed only once the
//! camera shows it works, judged from the health reports camera-app
//! publishes on MQTT (`docs/mqtt-api.md`). Receiving them at all proves
//! the link; frames processed rising between two reports proves frames
//! flow through detection; a config version in force proves the analytics
//! run. Pure: reports and times come in as arguments.

use serde::Deserialize;

/// The fields of a health report the gate reads.
#[derive(Debug, Deserialize)]
struct Report {
    frames_processed: u64,
    config_version: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Waiting(String),
    Healthy,
}

#[derive(Debug, Clone, Default)]
pub struct Gate {
    first: Option<u64>,
    last: Option<(u64, Option<u64>)>,
    reports: u32,
}

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    /// Feed one health report (the payload); unreadable ones count as no
    /// report.
    pub fn observe(&mut self, payload: &[u8]) {
        let Ok(r) = serde_json::from_slice::<Report>(payload) else {
            return;
        };
        self.reports += 1;
        self.first.get_or_insert(r.frames_processed);
        self.last = Some((r.frames_processed, r.config_version));
    }

    pub fn verdict(&self) -> Verdict {
        match (self.first, self.last) {
            (None, _) | (_, None) => Verdict::Waiting("no health report from camera-app".into()),
            (Some(a), Some((b, cfg))) => {
                if b <= a {
                    Verdict::Waiting(format!(
                        "frames processed not rising ({} reports, {b} frames)",
                        self.reports
                    ))
                } else if cfg.is_none() {
                    Verdict::Waiting("analytics not running (no config in force)".into())
                } else {
                    Verdict::Healthy
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_needs_rising_frames_and_a_config() {
        let mut g = Gate::new();
        assert!(matches!(g.verdict(), Verdict::Waiting(r) if r.contains("no health")));
        g.observe(br#"{"frames_processed":10,"config_version":1,"other":2}"#);
        assert!(matches!(g.verdict(), Verdict::Waiting(r) if r.contains("not rising")));
        g.observe(b"garbage");
        g.observe(br#"{"frames_processed":10,"config_version":1}"#);
        assert!(matches!(g.verdict(), Verdict::Waiting(_)));
        g.observe(br#"{"frames_processed":25,"config_version":null}"#);
        assert!(matches!(g.verdict(), Verdict::Waiting(r) if r.contains("analytics")));
        g.observe(br#"{"frames_processed":40,"config_version":2}"#);
        assert_eq!(g.verdict(), Verdict::Healthy);
    }
}
