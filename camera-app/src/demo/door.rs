//! The demo's door: a scene rendered at run time (`scene.toml`, drawn with
//! scenegen from the photos in `../shared/images`), played through the
//! whole camera (`runtime::run`: files source, the real model, the camera
//! state machine, outbox, link) against an embedded MQTT broker. A
//! consumer subscribed to the camera's topics prints what arrives; the
//! closing summary puts the camera's counts beside the scene's truth.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::DemoError;
use crate::capture::files::FilesConfig;
use crate::config::{Config, SourceConfig};
use crate::runtime::{self, RunOptions};

/// The scene: people walk past, in and out, one lingers.
pub const SCENE: &str = include_str!("scene.toml");

/// Settings of the demo.
#[derive(Debug, Clone)]
pub struct DoorOptions {
    pub models_dir: Option<PathBuf>,
    /// The photos people are cut from (`../shared/images`).
    pub images_dir: PathBuf,
    /// Seconds of the scene to play (its whole length when `None`).
    pub seconds: Option<f64>,
    /// Seconds between health reports.
    pub health_interval_s: u64,
    /// Broker port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
}

/// The counts of one side of the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub r#in: u64,
    pub out: u64,
    pub passers_by: u64,
}

/// What the demo's consumer received, and the scene's truth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DoorSummary {
    pub bins: u64,
    pub events: u64,
    pub health: u64,
    pub status: u64,
    pub camera: Counts,
    pub truth: Counts,
}

fn fail(what: &str, e: &dyn std::fmt::Display) -> DemoError {
    DemoError::Setup(format!("{what}: {e}"))
}

fn write_err(source: std::io::Error) -> DemoError {
    DemoError::Output {
        path: "stdout".into(),
        source,
    }
}

/// Render the scene into `dir`: its frames, analytics and truth.
fn render(opts: &DoorOptions, dir: &Path) -> Result<(scenegen::Truth, u32), DemoError> {
    let mut scenario = scenegen::Scenario::parse("demo", SCENE, Path::new("demo/scene.toml"))
        .map_err(|e| fail("the demo scene", &e))?;
    if let Some(s) = opts.seconds {
        scenario.duration_s = scenario.duration_s.min(s.max(1.0));
    }
    let truth = scenegen::render(&scenario, &opts.images_dir, dir).map_err(|e| {
        fail(
            &format!(
                "drawing the scene from the photos in {} (check out ../shared beside the \
                 repository, or give --images)",
                opts.images_dir.display()
            ),
            &e,
        )
    })?;
    Ok((truth, scenario.fps))
}

/// The camera's configuration for the scene in `dir`, linked to the broker
/// at `port`; returns it with the camera's topic prefix.
fn config(
    opts: &DoorOptions,
    dir: &Path,
    fps: u32,
    port: u16,
) -> Result<(Config, String), DemoError> {
    let mut cfg = Config::default_config().map_err(|e| fail("built-in config", &e))?;
    cfg.camera.id = "demo-cam".into();
    cfg.detector.models_dir.clone_from(&opts.models_dir);
    cfg.source = SourceConfig::Files(FilesConfig {
        fps: f64::from(fps),
        ..FilesConfig::new(dir.join("frames"))
    });
    cfg.analytics = Some(dir.join("analytics.toml"));
    cfg.output.path = Some(dir.join("records.jsonl"));
    cfg.output.outbox = Some(dir.join("outbox.redb"));
    let mut link = crate::link::LinkConfig::new("127.0.0.1", port);
    link.store = "demo-store".into();
    link.health_interval_s = opts.health_interval_s;
    link.drain_s = 10;
    let prefix = link
        .topics(&cfg.camera.id)
        .map_err(|e| fail("topics", &e))?
        .to_string();
    cfg.link = Some(link);
    Ok((cfg, prefix))
}

/// A consumer of everything under `prefix`, as a store's back office
/// would subscribe: (topic leaf, payload) pairs.
fn consumer(
    port: u16,
    prefix: &str,
) -> Result<std::sync::mpsc::Receiver<(String, Vec<u8>)>, DemoError> {
    let mut o = rumqttc::MqttOptions::new("demo-consumer", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut connection) = rumqttc::Client::new(o, 64);
    client
        .subscribe(format!("{prefix}/#"), rumqttc::QoS::AtLeastOnce)
        .map_err(|e| fail("subscribe", &e))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let prefix = format!("{prefix}/");
    std::thread::spawn(move || {
        let _client = client;
        for ev in connection.iter() {
            if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = ev {
                let leaf = p
                    .topic
                    .strip_prefix(&prefix)
                    .unwrap_or(&p.topic)
                    .to_string();
                if tx.send((leaf, p.payload.to_vec())).is_err() {
                    break;
                }
            }
        }
    });
    Ok(rx)
}

/// Scene time of a record ("00:07.0"), from its RFC 3339 stamp.
fn scene_time(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .and_then(|t| t.get(14..21))
        .unwrap_or("?")
        .to_string()
}

/// A JSON value as text, strings without their quotes.
fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// One line for what arrived, and the camera's counts from it.
fn describe(leaf: &str, v: &Value, sum: &mut DoorSummary) -> Option<String> {
    match leaf {
        "bins" => {
            sum.bins += 1;
            sum.camera.r#in += v["entries"].as_u64().unwrap_or(0);
            sum.camera.out += v["exits"].as_u64().unwrap_or(0);
            sum.camera.passers_by += v["passers_by"].as_u64().unwrap_or(0);
            Some(format!(
                "bin {}–{}: in {}, out {}, passers-by {}, entry rate {}, in the shop now {}",
                scene_time(v, "start"),
                scene_time(v, "end"),
                v["entries"],
                v["exits"],
                v["passers_by"],
                v["entry_rate"],
                v["store"]["occupancy"],
            ))
        }
        "events" => {
            sum.events += 1;
            let at = scene_time(v, "time");
            match v["event"].as_str() {
                Some("crossing") => Some(format!(
                    "{at}  person {} crossed the {} line going {}",
                    v["track"],
                    text(&v["line"]),
                    text(&v["direction"])
                )),
                Some("visit") => Some(format!(
                    "{at}  person {} left the {} zone after {} s",
                    v["track"],
                    text(&v["zone"]),
                    v["dwell_s"]
                )),
                Some("loitering") => Some(format!(
                    "{at}  person {} is lingering in the {} zone",
                    v["track"],
                    text(&v["zone"])
                )),
                _ => Some(format!("{at}  {v}")),
            }
        }
        "health" => {
            sum.health += 1;
            Some(format!(
                "health: {} frames processed, inference p50 {} ms, {} waiting in the outbox",
                v["frames_processed"], v["inference_ms_p50"], v["outbox_depth"]
            ))
        }
        "status" => {
            sum.status += 1;
            Some(format!("status: {}", text(&v["state"])))
        }
        "config/state" => Some(format!("configuration in force: version {}", v["version"])),
        _ => None,
    }
}

/// Run the demo, printing to `out`.
pub fn run(opts: &DoorOptions, out: &mut dyn Write) -> Result<DoorSummary, DemoError> {
    let dir = std::env::temp_dir().join(format!("camera-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| fail("data directory", &e))?;
    writeln!(
        out,
        "camera-app demo: drawing a shop door scene from the photos in {}",
        opts.images_dir.display()
    )
    .map_err(write_err)?;
    let (truth, fps) = render(opts, &dir)?;
    let addr = crate::broker::start(opts.port, 1024 * 1024).map_err(|e| fail("broker", &e))?;
    let (cfg, prefix) = config(opts, &dir, fps, addr.port())?;
    let rx = consumer(addr.port(), &prefix)?;
    writeln!(
        out,
        "{} frames ({:.0} s at {fps} fps): {}\nMQTT broker on {addr}; the camera publishes under {prefix}/",
        truth.frames,
        truth.frames as f64 / f64::from(fps),
        truth.description
    )
    .map_err(write_err)?;
    let frames = Arc::new(AtomicU64::new(0));
    let seen = frames.clone();
    let opts_run = RunOptions {
        shelf_reference: None,
        tap: Some(Box::new(move |_| {
            seen.fetch_add(1, Ordering::Relaxed);
        })),
    };
    let camera = std::thread::spawn(move || runtime::run(&cfg, opts_run, &AtomicBool::new(false)));
    let mut sum = DoorSummary::default();
    let started = Instant::now();
    let mut shown = 0;
    let mut print = |leaf: &str, payload: &[u8], out: &mut dyn Write| -> std::io::Result<()> {
        let Ok(v) = serde_json::from_slice::<Value>(payload) else {
            return Ok(());
        };
        match describe(leaf, &v, &mut sum) {
            Some(line) => writeln!(out, "[{:5.1} s] {line}", started.elapsed().as_secs_f64()),
            None => Ok(()),
        }
    };
    while !camera.is_finished() {
        if let Ok((leaf, payload)) = rx.recv_timeout(Duration::from_millis(100)) {
            print(&leaf, &payload, out).map_err(write_err)?;
        }
        // Progress every tenth of the scene.
        let done = frames.load(Ordering::Relaxed) as usize * 10 / truth.frames.max(1);
        if done > shown && done < 10 {
            shown = done;
            writeln!(
                out,
                "[{:5.1} s] … {} % of the scene played",
                started.elapsed().as_secs_f64(),
                done * 10
            )
            .map_err(write_err)?;
        }
    }
    let run = camera
        .join()
        .map_err(|_| DemoError::Setup("the camera thread panicked".into()))??;
    // What the link delivered while draining.
    while let Ok((leaf, payload)) = rx.recv_timeout(Duration::from_millis(500)) {
        print(&leaf, &payload, out).map_err(write_err)?;
    }
    sum.truth = Counts {
        r#in: truth.counts.values().map(|c| u64::from(c.count_in)).sum(),
        out: truth.counts.values().map(|c| u64::from(c.count_out)).sum(),
        passers_by: u64::from(truth.passers_by),
    };
    summary(out, &sum, run.processed).map_err(write_err)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(sum)
}

/// The camera's counts beside the scene's truth.
fn summary(out: &mut dyn Write, s: &DoorSummary, frames: u64) -> std::io::Result<()> {
    writeln!(
        out,
        "\n{frames} frames processed; received {} bins, {} events, {} health reports, {} status messages",
        s.bins, s.events, s.health, s.status
    )?;
    writeln!(out, "             camera  truth")?;
    for (name, c, t) in [
        ("in", s.camera.r#in, s.truth.r#in),
        ("out", s.camera.out, s.truth.out),
        ("passers-by", s.camera.passers_by, s.truth.passers_by),
    ] {
        let mark = if c == t { "" } else { "  ≠" };
        writeln!(out, "  {name:<10} {c:>6} {t:>6}{mark}")?;
    }
    let verdict = if s.camera == s.truth {
        "the camera's counts match the scene's truth"
    } else {
        "the camera's counts differ from the scene's truth"
    };
    writeln!(out, "{verdict}")
}
