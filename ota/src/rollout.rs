//! `ota-vendor rollout`: a staged campaign, as hawkBit and Bottlerocket run
//! them.
//!
//! The campaign is announced to a growing share of the fleet, wave by
//! wave (e.g. 5 %, 25 %, 100 %). A wave is settled when every camera that
//! started in it has reached a final state, or when its time is up. If
//! the share of failures (rolled back or rejected) among the cameras that
//! finished in a wave passes the threshold, the campaign is halted: a new
//! announcement with `halted: true` stops every camera that has not yet
//! installed. [`Controller`] is the pure decision; [`run`] does the MQTT.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};
use serde::Serialize;

use crate::announce::Announcement;
use crate::journal::{Report, State};
use crate::trust::{Role, SecretKey, sign};

#[derive(Debug, Clone)]
pub struct Plan {
    /// Fleet percentage of each wave, rising, the last usually 100.
    pub waves: Vec<u8>,
    /// Halt when failures / finished in a wave exceed this (0.0–1.0).
    pub failure_threshold: f64,
    /// How long a wave may take before it is judged on what has finished.
    pub wave_time_s: u64,
}

/// What the controller wants done.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing yet.
    Wait,
    /// Announce the next wave at this percentage.
    Advance { wave: usize, percent: u8 },
    /// Halt the campaign.
    Halt { wave: usize, reason: String },
    /// The last wave settled under the threshold.
    Done,
}

/// Per-wave figures, for the progress display.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct WaveStats {
    pub percent: u8,
    pub started: u32,
    pub committed: u32,
    pub failed: u32,
    pub in_progress: u32,
}

#[derive(Debug, Clone)]
pub struct Controller {
    plan: Plan,
    campaign: String,
    wave: usize,
    wave_started: u64,
    /// camera → (wave it started in, latest state)
    cameras: BTreeMap<String, (usize, State)>,
    ended: bool,
}

impl Controller {
    pub fn new(plan: Plan, campaign: &str, now: u64) -> Controller {
        Controller {
            plan,
            campaign: campaign.to_string(),
            wave: 0,
            wave_started: now,
            cameras: BTreeMap::new(),
            ended: false,
        }
    }

    pub fn wave(&self) -> usize {
        self.wave
    }

    pub fn percent(&self) -> u8 {
        self.plan.waves.get(self.wave).copied().unwrap_or(100)
    }

    pub fn on_report(&mut self, r: &Report) {
        if r.campaign != self.campaign {
            return;
        }
        let wave = self.wave;
        let e = self
            .cameras
            .entry(r.camera.clone())
            .or_insert((wave, r.state));
        // A final state is never replaced by a late duplicate.
        if !e.1.is_final() {
            e.1 = r.state;
        }
    }

    pub fn stats(&self) -> Vec<WaveStats> {
        let mut out: Vec<WaveStats> = self
            .plan
            .waves
            .iter()
            .map(|p| WaveStats {
                percent: *p,
                ..WaveStats::default()
            })
            .collect();
        for (w, st) in self.cameras.values() {
            let Some(s) = out.get_mut(*w) else { continue };
            s.started += 1;
            match st {
                State::Committed => s.committed += 1,
                State::RolledBack | State::Rejected => s.failed += 1,
                _ => s.in_progress += 1,
            }
        }
        out
    }

    pub fn tick(&mut self, now: u64) -> Action {
        if self.ended {
            return Action::Wait;
        }
        let stats = self.stats();
        let Some(s) = stats.get(self.wave) else {
            self.ended = true;
            return Action::Done;
        };
        let timed_out = now >= self.wave_started + self.plan.wave_time_s;
        let settled = (s.started > 0 && s.in_progress == 0) || timed_out;
        if !settled {
            return Action::Wait;
        }
        let finished = s.committed + s.failed;
        if finished > 0 {
            let rate = f64::from(s.failed) / f64::from(finished);
            if rate > self.plan.failure_threshold {
                self.ended = true;
                return Action::Halt {
                    wave: self.wave,
                    reason: format!(
                        "wave {} ({}%): {} of {} cameras failed ({:.0}% > {:.0}%)",
                        self.wave + 1,
                        s.percent,
                        s.failed,
                        finished,
                        rate * 100.0,
                        self.plan.failure_threshold * 100.0
                    ),
                };
            }
        }
        if self.wave + 1 >= self.plan.waves.len() {
            self.ended = true;
            return Action::Done;
        }
        self.wave += 1;
        self.wave_started = now;
        Action::Advance {
            wave: self.wave,
            percent: self.percent(),
        }
    }
}

/// Where and how to run a rollout.
#[derive(Debug)]
pub struct Campaign<'a> {
    pub host: String,
    pub port: u16,
    pub announce_topic: String,
    /// Reports from every camera, e.g. `stores/+/cameras/+/ota/report`.
    pub report_topic: String,
    /// The first announcement; later ones copy it with a new seq,
    /// percentage and times.
    pub announcement: Announcement,
    pub plan: Plan,
    pub key: &'a SecretKey,
    /// Announcements are valid this long after each publication.
    pub validity_s: u64,
}

/// How a rollout ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done(Vec<WaveStats>),
    Halted {
        reason: String,
        stats: Vec<WaveStats>,
    },
    Stopped(Vec<WaveStats>),
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Publish the campaign and drive its waves until done, halted or
/// `stop`. `progress` gets one line per change.
pub fn run(
    c: &Campaign<'_>,
    stop: &AtomicBool,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, String> {
    let mut opts = MqttOptions::new(
        format!(
            "ota-rollout-{}-{}",
            c.announcement.campaign,
            std::process::id()
        ),
        &c.host,
        c.port,
    );
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(256 * 1024, 256 * 1024);
    let (client, mut conn) = Client::new(opts, 64);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            let fatal = ev.is_err();
            if tx.send(ev.map_err(|e| e.to_string())).is_err() {
                return;
            }
            if fatal {
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    });
    let mut ann = c.announcement.clone();
    let mut ctl = Controller::new(c.plan.clone(), &ann.campaign, now_s());
    ann.percent = ctl.percent();
    let publish = |ann: &mut Announcement| -> Result<(), String> {
        ann.issued = now_s();
        ann.expires = ann.issued + c.validity_s;
        let signed = sign(ann.to_payload(), Role::Announcement, &[c.key]);
        let body = serde_json::to_vec(&signed).map_err(|e| e.to_string())?;
        client
            .publish(c.announce_topic.clone(), QoS::AtLeastOnce, true, body)
            .map_err(|e| e.to_string())
    };
    client
        .subscribe(c.report_topic.clone(), QoS::AtLeastOnce)
        .map_err(|e| e.to_string())?;
    publish(&mut ann)?;
    progress(&format!(
        "campaign {} seq {}: wave 1 at {}%",
        ann.campaign, ann.seq, ann.percent
    ));
    let mut last_tick = Instant::now();
    let mut last_stats = ctl.stats();
    loop {
        if stop.load(Ordering::Relaxed) {
            let _ = client.disconnect();
            return Ok(Outcome::Stopped(ctl.stats()));
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(Event::Incoming(Incoming::Publish(p)))) => {
                if let Ok(r) = serde_json::from_slice::<Report>(&p.payload) {
                    ctl.on_report(&r);
                }
            }
            Ok(Ok(Event::Incoming(Incoming::ConnAck(_)))) => {
                let _ = client.subscribe(c.report_topic.clone(), QoS::AtLeastOnce);
            }
            Ok(Err(e)) => progress(&format!("broker: {e}")),
            _ => {}
        }
        let stats = ctl.stats();
        if stats != last_stats {
            progress(&serde_json::json!({ "wave": ctl.wave() + 1, "waves": stats }).to_string());
            last_stats = stats;
        }
        if last_tick.elapsed() < Duration::from_millis(500) {
            continue;
        }
        last_tick = Instant::now();
        match ctl.tick(now_s()) {
            Action::Wait => {}
            Action::Advance { wave, percent } => {
                ann.seq += 1;
                ann.percent = percent;
                publish(&mut ann)?;
                progress(&format!("seq {}: wave {} at {percent}%", ann.seq, wave + 1));
            }
            Action::Halt { reason, .. } => {
                ann.seq += 1;
                ann.halted = true;
                publish(&mut ann)?;
                progress(&format!("seq {}: HALTED: {reason}", ann.seq));
                // Give the halt time to reach the broker.
                std::thread::sleep(Duration::from_millis(500));
                let _ = client.disconnect();
                return Ok(Outcome::Halted {
                    reason,
                    stats: ctl.stats(),
                });
            }
            Action::Done => {
                progress("all waves done");
                let _ = client.disconnect();
                return Ok(Outcome::Done(ctl.stats()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(camera: &str, state: State) -> Report {
        Report {
            camera: camera.into(),
            campaign: "c".into(),
            version: "2".into(),
            state,
            percent: None,
            reason: None,
            time: 0,
        }
    }

    fn plan() -> Plan {
        Plan {
            waves: vec![10, 50, 100],
            failure_threshold: 0.2,
            wave_time_s: 600,
        }
    }

    #[test]
    fn advances_while_waves_succeed_and_halts_past_the_threshold() {
        let mut c = Controller::new(plan(), "c", 0);
        assert_eq!(c.tick(1), Action::Wait);
        c.on_report(&report("a", State::Downloading));
        assert_eq!(c.tick(2), Action::Wait);
        c.on_report(&report("a", State::Committed));
        c.on_report(&report("x", State::Committed)); // other campaign below
        let mut other = report("z", State::RolledBack);
        other.campaign = "other".into();
        c.on_report(&other);
        assert_eq!(
            c.tick(3),
            Action::Advance {
                wave: 1,
                percent: 50
            }
        );
        for cam in ["b", "d", "e", "f"] {
            c.on_report(&report(cam, State::Committed));
        }
        c.on_report(&report("g", State::RolledBack));
        c.on_report(&report("h", State::Rejected));
        // A late duplicate does not undo a final state.
        c.on_report(&report("g", State::Downloading));
        match c.tick(4) {
            Action::Halt { wave: 1, reason } => assert!(reason.contains("2 of 6"), "{reason}"),
            a => panic!("{a:?}"),
        }
        assert_eq!(c.tick(5), Action::Wait);
    }

    #[test]
    fn a_wave_with_nobody_moves_on_only_when_its_time_is_up() {
        let mut c = Controller::new(plan(), "c", 0);
        assert_eq!(c.tick(599), Action::Wait);
        assert_eq!(
            c.tick(600),
            Action::Advance {
                wave: 1,
                percent: 50
            }
        );
        assert_eq!(
            c.tick(1200),
            Action::Advance {
                wave: 2,
                percent: 100
            }
        );
        assert_eq!(c.tick(1800), Action::Done);
    }
}
