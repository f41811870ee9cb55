//! The health gate of a trial: a new slot is committed only once the
//! camera shows it works, judged from the health reports camera-app
//! publishes on MQTT (`docs/mqtt-api.md`). Receiving them at all proves
//! the link; frames processed rising between two reports proves frames
//! flow through detection; a config version in force proves the analytics
//! run; the releases it reports (`releases`, from `ota select`'s records)
//! matching the trial's proves the new slots are the ones running, not
//! a fallback. Pure: reports and times come in as arguments.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::manifest::Component;

/// The fields of a health report the gate reads.
#[derive(Debug, Deserialize)]
struct Report {
    frames_processed: u64,
    config_version: Option<u64>,
    /// Per component, the release of the slot in use (`null`: factory).
    /// Absent from reports of camera-apps that predate it.
    #[serde(default)]
    releases: Option<BTreeMap<String, Option<String>>>,
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
    releases: Option<BTreeMap<String, Option<String>>>,
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
        self.releases = r.releases;
    }

    /// The verdict on a trial of `version` in the slots of `components`:
    /// healthy, and the last report shows that release running in each.
    pub fn verdict_for(&self, components: &[Component], version: &str) -> Verdict {
        let v = self.verdict();
        let (Verdict::Healthy, Some(releases)) = (&v, &self.releases) else {
            return v;
        };
        for c in components {
            let running = releases.get(c.name()).cloned().flatten();
            if running.as_deref() != Some(version) {
                return Verdict::Waiting(format!(
                    "health shows {c} release {}, the trial is {version}",
                    running.as_deref().unwrap_or("factory")
                ));
            }
        }
        v
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

    #[test]
    fn a_trial_commits_only_when_health_shows_its_release_running() {
        let trial = [Component::App, Component::Model];
        let mut g = Gate::new();
        g.observe(br#"{"frames_processed":10,"config_version":1,"releases":{"rootfs":null,"app":"1.4.0","model":"1.4.0"}}"#);
        g.observe(br#"{"frames_processed":20,"config_version":1,"releases":{"rootfs":null,"app":"1.5.0","model":null}}"#);
        // Frames flow, but the model slot in use is not the new one.
        assert!(
            matches!(g.verdict_for(&trial, "1.5.0"), Verdict::Waiting(r) if r == "health shows model release factory, the trial is 1.5.0")
        );
        g.observe(br#"{"frames_processed":30,"config_version":1,"releases":{"rootfs":null,"app":"1.5.0","model":"1.5.0"}}"#);
        assert_eq!(g.verdict_for(&trial, "1.5.0"), Verdict::Healthy);
        // A camera-app without the field: judged on frames and config alone.
        let mut old = Gate::new();
        old.observe(br#"{"frames_processed":10,"config_version":1}"#);
        old.observe(br#"{"frames_processed":20,"config_version":1}"#);
        assert_eq!(old.verdict_for(&trial, "1.5.0"), Verdict::Healthy);
    }
}
