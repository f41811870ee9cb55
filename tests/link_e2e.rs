//! The `camera-app` binary with its MQTT link, against a real broker (the
//! embedded rumqttd, or `CAMERA_TEST_BROKER`): killed with SIGKILL under
//! load and restarted, nothing stored is lost and sequence numbers have
//! no gap; a configuration sent over MQTT takes effect on the next frame
//! and survives a restart.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::mqtt::{Message, Proxy, Subscriber, broker, broker_name, unique};

fn camera_app() -> Command {
    Command::new(env!("CARGO_BIN_EXE_camera-app"))
}

const ANALYTICS: &str = r#"
version = 1
bin_minutes = 1

[[lines]]
name = "door"
points = [[0.5, 0.05], [0.5, 0.95]]
in_side = "right"
"#;

struct Camera {
    dir: tempfile::TempDir,
    id: String,
    prefix: String,
}

impl Camera {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("analytics.toml"), ANALYTICS).unwrap();
        let id = unique("e2e");
        Self {
            prefix: format!("stores/e2e/cameras/{id}"),
            id,
            dir,
        }
    }

    /// The camera's config for one run: `source` is the `[source]` body.
    fn config(&self, run: usize, port: u16, source: &str) -> PathBuf {
        self.config_with(run, port, source, "")
    }

    /// As [`config`](Self::config), with more tables appended.
    fn config_with(&self, run: usize, port: u16, source: &str, extra: &str) -> PathBuf {
        let d = self.dir.path();
        let text = format!(
            r#"analytics = "{analytics}"
[camera]
id = "{id}"
[source]
{source}
[detector]
models_dir = "{models}"
[output]
path = "{out}"
outbox = "{outbox}"
[link]
broker = "127.0.0.1"
port = {port}
store = "e2e"
reconnect_min_ms = 50
reconnect_max_s = 1
health_interval_s = 1
drain_s = 20
{extra}
"#,
            analytics = d.join("analytics.toml").display(),
            id = self.id,
            models = common::models_dir().display(),
            out = self.output(run).display(),
            outbox = d.join("outbox.redb").display(),
        );
        let path = d.join(format!("camera-{run}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn output(&self, run: usize) -> PathBuf {
        self.dir.path().join(format!("records-{run}.jsonl"))
    }

    fn spawn(&self, config: &Path) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("camera.log"))
            .unwrap();
        camera_app()
            .arg("run")
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("camera.log")).unwrap_or_default()
    }

    /// Bin sequence numbers written (after being stored) by every run.
    fn written_bins(&self, runs: usize) -> Vec<u64> {
        let mut seqs = Vec::new();
        for run in 0..runs {
            let Ok(text) = std::fs::read_to_string(self.output(run)) else {
                continue;
            };
            for line in text.lines() {
                // A SIGKILL can cut the last line short; it was stored
                // before it was written, so it is checked via the outbox.
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                if v["type"] == "bin" {
                    seqs.push(v["seq"].as_u64().unwrap());
                }
            }
        }
        seqs
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("camera-app did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Bins the consumer received: seq → payload, checking that a repeat
/// carries the same payload.
fn received(messages: &[Message], prefix: &str) -> (BTreeMap<u64, Vec<u8>>, usize) {
    let mut by_seq = BTreeMap::new();
    let mut dups = 0;
    let topic = format!("{prefix}/bins");
    for m in messages.iter().filter(|m| m.topic == topic) {
        let seq = m.json()["seq"].as_u64().unwrap();
        if let Some(p) = by_seq.insert(seq, m.payload.clone()) {
            assert_eq!(
                p, m.payload,
                "bin {seq} published twice with different payloads"
            );
            dups += 1;
        }
    }
    (by_seq, dups)
}

#[test]
fn kill_9_under_load_loses_nothing_and_leaves_no_gap() {
    let cam = Camera::new();
    let proxy = Proxy::start(broker());
    let sub = Subscriber::start(&format!("{}/#", cam.prefix));
    // One frame every 50 s of camera time: almost every frame closes a
    // one-minute bin, so the camera produces records as fast as it runs.
    let source = "kind = \"synthetic\"\nwidth = 320\nheight = 240\nfps = 0.02\nframes = 60";
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let kills = 4;
    for run in 0..kills {
        let mut child = cam.spawn(&cam.config(run, proxy.addr.port(), source));
        std::thread::sleep(Duration::from_millis(rng.u64(800..2500)));
        if run == 1 {
            // And the network goes at the same time.
            proxy.cut();
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    // A last run to the end, which drains the outbox.
    let mut child = cam.spawn(&cam.config(kills, proxy.addr.port(), source));
    let status = wait_exit(&mut child, Duration::from_secs(180));
    assert!(status.success(), "the last run failed");
    let written = cam.written_bins(kills + 1);
    let last = *written.iter().max().unwrap();
    sub.wait_for("every bin", Duration::from_secs(30), |m| {
        received(m, &cam.prefix).0.len() as u64 > last
    });
    let (got, dups) = received(&sub.messages(), &cam.prefix);
    let seqs: Vec<u64> = got.keys().copied().collect();
    assert_eq!(
        seqs,
        (0..=last).collect::<Vec<_>>(),
        "a gap or a loss in bin seqs"
    );
    for s in &written {
        assert!(
            got.contains_key(s),
            "bin {s} was stored and written but never arrived"
        );
    }
    println!(
        "kill -9 ({}): {kills} kills + 1 full run, {} bins written, {} received, 0 lost, \
         no gap, {dups} duplicates",
        broker_name(),
        written.len(),
        got.len()
    );
}

#[test]
fn config_over_mqtt_takes_effect_on_the_next_frame_and_survives_a_restart() {
    let cam = Camera::new();
    let sub = Subscriber::start(&format!("{}/#", cam.prefix));
    let port = broker().port();
    let realtime = |frames| {
        format!(
            "kind = \"synthetic\"\nwidth = 320\nheight = 240\nfps = 10\nrealtime = true\nframes = {frames}"
        )
    };
    let mut child = cam.spawn(&cam.config(0, port, &realtime(80)));
    let status = format!("{}/status", cam.prefix);
    sub.wait_for("birth", Duration::from_secs(30), |m| {
        m.iter()
            .any(|m| m.topic == status && m.json()["state"] == "online")
    });
    // Version 1 has a bin to close only once a frame has been counted under
    // it; the camera may be online before its first frame (it was, against
    // mosquitto).
    let health = format!("{}/health", cam.prefix);
    sub.wait_for(
        "a frame counted under version 1",
        Duration::from_secs(30),
        |m| {
            m.iter().any(|m| {
                m.topic == health && m.json()["frames_processed"].as_u64().unwrap_or(0) > 0
            })
        },
    );
    let v2 = r#"{"version": 2, "bin_minutes": 5, "lines": [{"name": "entrance", "points": [[0.1, 0.5], [0.9, 0.5]], "in_side": "left"}]}"#;
    sub.publish(
        &format!("{}/config/set", cam.prefix),
        v2.as_bytes().to_vec(),
    );
    let result = format!("{}/config/result", cam.prefix);
    sub.wait_for("config result", Duration::from_secs(10), |m| {
        m.iter().any(|m| m.topic == result)
    });
    let r = sub.on(&result)[0].json();
    assert_eq!(r["accepted"], true, "{r}");
    // The next frame closes the bin of version 1 at once, without waiting
    // for its minute to end.
    let bins = format!("{}/bins", cam.prefix);
    let log = cam.log();
    sub.wait_for(
        &format!("the version-1 bin; camera log:\n{log}"),
        Duration::from_secs(5),
        |m| {
            m.iter()
                .any(|m| m.topic == bins && m.json()["config_version"] == 1)
        },
    );
    assert!(wait_exit(&mut child, Duration::from_secs(60)).success());
    // The broker may pass the last bin on after the camera has gone.
    sub.wait_for("a version-2 bin", Duration::from_secs(10), |m| {
        m.iter()
            .any(|m| m.topic == bins && m.json()["config_version"] == 2)
    });
    let last_bins = sub.on(&bins);
    let last = last_bins.last().unwrap().json();
    assert_eq!(last["config_version"], 2, "{last}");
    assert_eq!(
        last["lines"][0]["name"], "entrance",
        "the new line is in force"
    );
    let healths = sub.on(&health);
    assert_eq!(healths.last().unwrap().json()["config_version"], 2);

    // Restart: the camera comes back with version 2.
    let sub2 = Subscriber::start(&format!("{}/#", cam.prefix));
    let mut child = cam.spawn(&cam.config(1, port, &realtime(20)));
    sub2.wait_for("birth after restart", Duration::from_secs(30), |m| {
        m.iter()
            .any(|m| m.topic == status && m.json()["state"] == "online" && !m.retain)
    });
    let birth = sub2
        .on(&status)
        .into_iter()
        .find(|m| !m.retain && m.json()["state"] == "online")
        .unwrap()
        .json();
    assert_eq!(birth["config_version"], 2, "{birth}");
    // The restarted camera's own (not retained) config/state.
    let state_topic = format!("{}/config/state", cam.prefix);
    sub2.wait_for("config state after restart", Duration::from_secs(10), |m| {
        m.iter().any(|m| m.topic == state_topic && !m.retain)
    });
    let state: Vec<_> = sub2
        .on(&state_topic)
        .into_iter()
        .filter(|m| !m.retain)
        .collect();
    assert_eq!(state[0].payload, v2.as_bytes());
    assert!(wait_exit(&mut child, Duration::from_secs(60)).success());
    sub2.wait_for("a bin after restart", Duration::from_secs(10), |m| {
        m.iter().any(|m| m.topic == bins)
    });
    let after = sub2.on(&bins);
    assert!(!after.is_empty() && after.iter().all(|m| m.json()["config_version"] == 2));
}

#[test]
fn a_requested_snapshot_is_published_once_and_size_limited() {
    let cam = Camera::new();
    let sub = Subscriber::start(&format!("{}/#", cam.prefix));
    let source =
        "kind = \"synthetic\"\nwidth = 640\nheight = 480\nfps = 10\nrealtime = true\nframes = 40";
    let extra = "[snapshot]\nenabled = true\nmax_bytes = 40000\nmax_width = 640";
    let mut child = cam.spawn(&cam.config_with(0, broker().port(), source, extra));
    let status = format!("{}/status", cam.prefix);
    sub.wait_for("birth", Duration::from_secs(30), |m| {
        m.iter()
            .any(|m| m.topic == status && m.json()["state"] == "online")
    });
    sub.publish(&format!("{}/snapshot/request", cam.prefix), b"{}".to_vec());
    let topic = format!("{}/snapshot", cam.prefix);
    let deadline = Instant::now() + common::patient(Duration::from_secs(10));
    while !sub.messages().iter().any(|m| m.topic == topic) {
        assert!(
            Instant::now() < deadline,
            "no snapshot; camera log:\n{}",
            cam.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(wait_exit(&mut child, Duration::from_secs(60)).success());
    let shots = sub.on(&topic);
    assert_eq!(shots.len(), 1, "published once");
    let jpeg = &shots[0].payload;
    assert!(jpeg.len() <= 40_000, "{} bytes", jpeg.len());
    let img = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg).unwrap();
    assert_eq!((img.width(), img.height()), (640, 480));
}

#[test]
fn sigterm_closes_the_bin_delivers_it_and_says_offline() {
    let cam = Camera::new();
    let sub = Subscriber::start(&format!("{}/#", cam.prefix));
    // An endless camera: only the signal ends it.
    let source = "kind = \"synthetic\"\nwidth = 320\nheight = 240\nfps = 10\nrealtime = true";
    let mut child = cam.spawn(&cam.config(0, broker().port(), source));
    let status = format!("{}/status", cam.prefix);
    sub.wait_for("birth", Duration::from_secs(30), |m| {
        m.iter()
            .any(|m| m.topic == status && m.json()["state"] == "online")
    });
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: plain kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let exit = wait_exit(&mut child, Duration::from_secs(30));
    assert!(exit.success(), "{exit:?}\n{}", cam.log());
    let topic = format!("{}/bins", cam.prefix);
    sub.wait_for("the closed bin and offline", Duration::from_secs(10), |m| {
        m.iter().any(|m| m.topic == topic)
            && m.iter()
                .rev()
                .find(|m| m.topic == status)
                .is_some_and(|m| m.json()["state"] == "offline")
    });
    assert_eq!(sub.on(&topic).len(), 1, "one bin: {}", cam.log());
}
