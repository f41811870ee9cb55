//! `camera-app demo`: the embedded default. No camera, no NPU, no broker
//! to install.
//!
//! - [`run_mqtt`] (the default): starts an MQTT broker on 127.0.0.1, runs
//!   the whole camera (synthetic frames in real time, the real model,
//!   tracker, analytics, outbox and link) against it, and prints what the
//!   camera publishes as a consumer subscribed to its topics sees it.
//! - [`run`] (`--offline`): the real model on photos (or the synthetic
//!   pattern); prints what it sees and writes each frame with its boxes
//!   drawn to an output directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::capture::files::{FileSource, FilesConfig, decode_mjpeg};
use crate::capture::synthetic::{SyntheticConfig, SyntheticSource};
use crate::capture::{Frame, FrameSource, PixelFormat};
use crate::config::Config;
use crate::detect::Detection;
use crate::model::ModelError;
use crate::runtime::{self, RunError, RunOptions};

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo: {0}")]
    Setup(String),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("frame source: {0}")]
    Source(#[source] crate::capture::SourceError),
    #[error("writing {path}: {source}")]
    Output {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Photos to run on; the synthetic pattern when `None`.
    pub images: Option<PathBuf>,
    pub models_dir: Option<PathBuf>,
    /// Where annotated frames go; nothing is written when `None`.
    pub out_dir: Option<PathBuf>,
    /// Frames to process from the synthetic source.
    pub frames: u64,
}

/// Settings of the MQTT demo.
#[derive(Debug, Clone)]
pub struct MqttDemoOptions {
    pub models_dir: Option<PathBuf>,
    /// How long the camera runs.
    pub seconds: u64,
    /// Seconds between health reports.
    pub health_interval_s: u64,
    /// Broker port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
}

/// What the demo's consumer received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MqttDemoSummary {
    pub bins: u64,
    pub events: u64,
    pub health: u64,
    pub status: u64,
}

/// Built-in analytics of the demo.
pub const DEMO_ANALYTICS: &str = include_str!("demo-analytics.toml");

/// Run the camera against an embedded broker for `opts.seconds`, printing
/// each message a subscriber receives.
#[cfg(feature = "embedded-broker")]
pub fn run_mqtt(opts: &MqttDemoOptions, out: &mut dyn Write) -> Result<MqttDemoSummary, DemoError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| DemoError::Setup(format!("{what}: {e}"));
    let addr = crate::broker::start(opts.port, 1024 * 1024).map_err(|e| fail("broker", &e))?;
    let dir = std::env::temp_dir().join(format!("camera-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| fail("data directory", &e))?;
    let analytics = dir.join("analytics.toml");
    std::fs::write(&analytics, DEMO_ANALYTICS).map_err(|e| fail("analytics config", &e))?;
    let mut cfg = Config::default_config().map_err(|e| fail("built-in config", &e))?;
    cfg.camera.id = "demo-cam".into();
    cfg.detector.models_dir.clone_from(&opts.models_dir);
    let fps = 5.0;
    cfg.source = crate::config::SourceConfig::Synthetic(SyntheticConfig {
        fps,
        realtime: true,
        frames: Some((opts.seconds as f64 * fps) as u64),
        ..SyntheticConfig::default()
    });
    cfg.analytics = Some(analytics);
    cfg.output.path = Some(dir.join("records.jsonl"));
    cfg.output.outbox = Some(dir.join("outbox.redb"));
    let mut link = crate::link::LinkConfig::new("127.0.0.1", addr.port());
    link.store = "demo-store".into();
    link.health_interval_s = opts.health_interval_s;
    link.drain_s = 5;
    let prefix = link
        .topics(&cfg.camera.id)
        .map_err(|e| fail("topics", &e))?
        .to_string();
    cfg.link = Some(link);

    // A consumer, as a store's back office would subscribe.
    let mut o = rumqttc::MqttOptions::new("demo-consumer", "127.0.0.1", addr.port());
    o.set_keep_alive(std::time::Duration::from_secs(30));
    let (client, mut connection) = rumqttc::Client::new(o, 64);
    client
        .subscribe(format!("{prefix}/#"), rumqttc::QoS::AtLeastOnce)
        .map_err(|e| fail("subscribe", &e))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for ev in connection.iter() {
            if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = ev
                && tx.send((p.topic.clone(), p.payload.to_vec())).is_err()
            {
                break;
            }
        }
    });
    let write_err = |source| DemoError::Output {
        path: "stdout".into(),
        source,
    };
    writeln!(
        out,
        "camera-app demo: MQTT broker on {addr}; the camera publishes under {prefix}/ for {} s \
         (bins close on the minute, health every {} s)",
        opts.seconds, opts.health_interval_s
    )
    .map_err(write_err)?;
    let camera = std::thread::spawn(move || {
        runtime::run(
            &cfg,
            RunOptions::default(),
            &std::sync::atomic::AtomicBool::new(false),
        )
    });
    let started = std::time::Instant::now();
    let mut summary = MqttDemoSummary::default();
    let mut print = |topic: String, payload: Vec<u8>, out: &mut dyn Write| -> std::io::Result<()> {
        let leaf = topic
            .strip_prefix(&prefix)
            .unwrap_or(&topic)
            .trim_start_matches('/');
        match leaf {
            "bins" => summary.bins += 1,
            "events" => summary.events += 1,
            "health" => summary.health += 1,
            "status" => summary.status += 1,
            _ => {}
        }
        let text = String::from_utf8_lossy(&payload);
        let shown: String = text.chars().take(600).collect();
        let more = if text.len() > shown.len() { " …" } else { "" };
        writeln!(
            out,
            "[{:6.1} s] {topic}  {shown}{more}",
            started.elapsed().as_secs_f64()
        )
    };
    while !camera.is_finished() {
        if let Ok((topic, payload)) = rx.recv_timeout(std::time::Duration::from_millis(100)) {
            print(topic, payload, out).map_err(write_err)?;
        }
    }
    let result = camera
        .join()
        .map_err(|_| DemoError::Setup("the camera thread panicked".into()))?;
    // What the link delivered while draining.
    while let Ok((topic, payload)) = rx.recv_timeout(std::time::Duration::from_millis(500)) {
        print(topic, payload, out).map_err(write_err)?;
    }
    let run = result?;
    writeln!(
        out,
        "{} frames processed; received {} bins, {} events, {} health reports, {} status messages",
        run.processed, summary.bins, summary.events, summary.health, summary.status
    )
    .map_err(write_err)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(summary)
}

/// Run the demo, printing a line per frame to `out`. Returns the number of
/// people seen over all frames.
pub fn run(opts: &DemoOptions, out: &mut dyn Write) -> Result<usize, DemoError> {
    let mut cfg =
        Config::default_config().map_err(|e| DemoError::Setup(format!("built-in config: {e}")))?;
    cfg.detector.models_dir.clone_from(&opts.models_dir);
    let (manifest, mut detector) = runtime::setup::build_detector(&cfg)?;
    let mut source: Box<dyn FrameSource> = match &opts.images {
        Some(dir) => Box::new(FileSource::open(FilesConfig::new(dir)).map_err(DemoError::Source)?),
        None => Box::new(
            SyntheticSource::open(SyntheticConfig {
                frames: Some(opts.frames),
                format: PixelFormat::Rgb24,
                ..SyntheticConfig::default()
            })
            .map_err(DemoError::Source)?,
        ),
    };
    if let Some(dir) = &opts.out_dir {
        std::fs::create_dir_all(dir).map_err(|source| DemoError::Output {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let write_err = |source| DemoError::Output {
        path: "stdout".into(),
        source,
    };
    writeln!(
        out,
        "camera-app demo: {} on {} ({} backend)",
        manifest.name,
        source.describe(),
        detector.backend_name()
    )
    .map_err(write_err)?;
    let mut people = 0;
    while let Some(frame) = source.next_frame().map_err(DemoError::Source)? {
        let frame = if frame.format == PixelFormat::Mjpeg {
            match decode_mjpeg(&frame) {
                Ok(f) => f,
                Err(e) => {
                    writeln!(out, "frame {}: skipped ({e})", frame.seq).map_err(write_err)?;
                    continue;
                }
            }
        } else {
            frame
        };
        let dets = match detector.detect(&frame) {
            Ok(d) => d.to_vec(),
            Err(e) => {
                writeln!(out, "frame {}: skipped ({e})", frame.seq).map_err(write_err)?;
                continue;
            }
        };
        people += dets.len();
        let t = detector.timings();
        let ms = (t.inference.as_secs_f64() * 1e4).round() / 10.0;
        let listing: Vec<String> = dets
            .iter()
            .map(|d| {
                format!(
                    "{} {:.2} [{:.0},{:.0},{:.0},{:.0}]",
                    manifest.label(d.class_id),
                    d.score,
                    d.bbox.x1,
                    d.bbox.y1,
                    d.bbox.x2,
                    d.bbox.y2
                )
            })
            .collect();
        writeln!(
            out,
            "frame {} {}x{}: {} people in {ms} ms  {}",
            frame.seq,
            frame.width,
            frame.height,
            dets.len(),
            listing.join("  ")
        )
        .map_err(write_err)?;
        if let Some(dir) = &opts.out_dir {
            let path = dir.join(format!("frame-{:04}.jpg", frame.seq));
            save_annotated(&frame, &dets, &path).map_err(|source| DemoError::Output {
                path: path.display().to_string(),
                source,
            })?;
        }
    }
    let stats = source.stats();
    writeln!(
        out,
        "{} frames, {} skipped, {people} people seen{}",
        stats.delivered,
        stats.skipped,
        opts.out_dir
            .as_ref()
            .map(|d| format!("; annotated frames in {}", d.display()))
            .unwrap_or_default()
    )
    .map_err(write_err)?;
    Ok(people)
}

/// Write an Rgb24 frame as JPEG with its boxes drawn.
fn save_annotated(frame: &Frame, dets: &[Detection], path: &Path) -> std::io::Result<()> {
    let mut img = image::RgbImage::from_raw(frame.width, frame.height, frame.data.clone())
        .ok_or_else(|| std::io::Error::other("frame is not tight Rgb24"))?;
    for d in dets {
        draw_rect(&mut img, d, [0, 255, 0]);
    }
    img.save(path).map_err(std::io::Error::other)
}

/// A 3-pixel outline, clipped to the image.
fn draw_rect(img: &mut image::RgbImage, d: &Detection, colour: [u8; 3]) {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let clamp = |v: f32, hi: i64| (v.round() as i64).clamp(0, hi - 1);
    let (x1, y1) = (clamp(d.bbox.x1, w), clamp(d.bbox.y1, h));
    let (x2, y2) = (clamp(d.bbox.x2, w), clamp(d.bbox.y2, h));
    let mut put = |x: i64, y: i64| {
        if (0..w).contains(&x) && (0..h).contains(&y) {
            img.put_pixel(x as u32, y as u32, image::Rgb(colour));
        }
    };
    for t in 0..3 {
        for x in x1..=x2 {
            put(x, y1 + t);
            put(x, y2 - t);
        }
        for y in y1..=y2 {
            put(x1 + t, y);
            put(x2 - t, y);
        }
    }
}
