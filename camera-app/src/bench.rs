//! `camera-app bench`: per-stage medians for a 1920×1080 NV12 frame and a
//! 1280×720 MJPEG frame, printed as JSON.
//!
//! Benchmarks measure; tests never time anything. Frames are made once up
//! front (from a real photo when one is given, else the synthetic pattern),
//! so only the stage under test is inside the timer.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::capture::files::decode_mjpeg;
use crate::capture::synthetic::encode_rgb;
use crate::capture::{Frame, PixelFormat, Timestamp};
use crate::detect::Detector;

/// Medians (and 95th percentiles) of one frame kind's stages, in ms.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub frame: String,
    /// JPEG decode (MJPEG only; 0 for raw frames).
    pub decode_ms: Stat,
    pub colour_ms: Stat,
    pub resize_ms: Stat,
    pub normalise_ms: Stat,
    /// colour + resize + normalise, timed as one.
    pub preprocess_ms: Stat,
    pub inference_ms: Stat,
    pub decode_nms_ms: Stat,
    pub detections: usize,
}

/// Median and 95th percentile.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stat {
    pub median: f64,
    pub p95: f64,
}

impl Stat {
    fn of(mut v: Vec<Duration>) -> Self {
        if v.is_empty() {
            return Self {
                median: 0.0,
                p95: 0.0,
            };
        }
        v.sort();
        let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        let p95 = ((v.len() * 95).div_ceil(100)).clamp(1, v.len()) - 1;
        Self {
            median: ms(v[v.len() / 2]),
            p95: ms(v[p95]),
        }
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub backend: String,
    pub threads: usize,
    pub iterations: usize,
    pub content: String,
    pub stages: Vec<StageReport>,
    /// Tracker update for a frame of 100 people walking (ms).
    pub tracker_100_people_ms: Stat,
    /// Tracker (with appearance) and every kind of analytics
    /// ([`CROWD_ANALYTICS`]) for the same frames (ms).
    pub tracker_analytics_100_people_ms: Stat,
    /// Colour histograms of 100 person boxes in a 1920×1080 NV12 frame
    /// (ms).
    pub appearance_100_people_ms: Stat,
    /// The tamper detector on a 1920×1080 NV12 frame, once it has learnt
    /// the view (ms).
    pub tamper_1080p_ms: Stat,
    /// The whole camera state machine per frame, as the frame loop drives
    /// it: tamper, appearance, tracker and every kind of analytics for 100
    /// people in a 1920×1080 NV12 frame (ms).
    pub camera_100_people_1080p_ms: Stat,
    /// A snapshot of a 1920×1080 NV12 frame: people blurred, the
    /// configuration drawn, encoded to a JPEG within the size limit (ms).
    pub snapshot_1080p_ms: Stat,
    /// onnxruntime's median on the same machine, when given, and our
    /// inference median (first stage) divided by it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onnxruntime: Option<Comparison>,
}

/// Our inference time against a reference runtime's.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub source: String,
    pub threads: Option<u64>,
    pub median_ms: f64,
    /// Our median / theirs.
    pub ratio: f64,
}

impl BenchReport {
    /// Attach onnxruntime's figure from the JSON that
    /// `scripts/onnxruntime_bench.py` prints (`median_ms`, `threads`).
    pub fn compare_with(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let median_ms = v["median_ms"]
            .as_f64()
            .filter(|m| *m > 0.0)
            .ok_or_else(|| format!("{}: no positive median_ms", path.display()))?;
        let ours = self
            .stages
            .first()
            .map(|s| s.inference_ms.median)
            .ok_or("no stages measured")?;
        self.onnxruntime = Some(Comparison {
            source: path.display().to_string(),
            threads: v["threads"].as_u64(),
            median_ms,
            ratio: (ours / median_ms * 100.0).round() / 100.0,
        });
        Ok(())
    }
}

/// Make an RGB image of `w`×`h`: the given photo stretched, or the
/// synthetic pattern.
fn content(image: Option<&Path>, w: u32, h: u32) -> Result<Vec<u8>, String> {
    match image {
        Some(p) => {
            let img = image::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(img
                .resize_exact(w, h, image::imageops::FilterType::Triangle)
                .into_rgb8()
                .into_raw())
        }
        None => {
            use crate::capture::FrameSource;
            use crate::capture::synthetic::{SyntheticConfig, SyntheticSource};
            let mut s = SyntheticSource::open(SyntheticConfig {
                width: w,
                height: h,
                format: PixelFormat::Rgb24,
                fps: 10.0,
                frames: Some(1),
                realtime: false,
            })
            .map_err(|e| e.to_string())?;
            let f = s
                .next_frame()
                .map_err(|e| e.to_string())?
                .ok_or("no synthetic frame")?;
            Ok(f.data)
        }
    }
}

fn frame(rgb: &[u8], w: u32, h: u32, format: PixelFormat) -> Result<Frame, String> {
    let (data, stride) = encode_rgb(rgb, w, h, format)?;
    Ok(Frame {
        seq: 0,
        timestamp: Timestamp(0),
        width: w,
        height: h,
        stride,
        format,
        data,
    })
}

/// Time every stage `iterations` times (after a short warm-up).
pub fn run(
    detector: &mut Detector,
    threads: usize,
    iterations: usize,
    image: Option<&Path>,
) -> Result<BenchReport, String> {
    let iterations = iterations.max(1);
    let cases = [
        ("nv12 1920x1080", 1920u32, 1080u32, PixelFormat::Nv12),
        ("mjpeg 1280x720", 1280, 720, PixelFormat::Mjpeg),
    ];
    let mut stages = Vec::new();
    for (name, w, h, format) in cases {
        let rgb = content(image, w, h)?;
        let f = frame(&rgb, w, h, format)?;
        let mut t = Timings::default();
        let mut detections = 0;
        for i in 0..iterations + 3 {
            let t0 = Instant::now();
            let decoded = if f.format == PixelFormat::Mjpeg {
                Some(decode_mjpeg(&f)?)
            } else {
                None
            };
            let decode = t0.elapsed();
            let input = decoded.as_ref().unwrap_or(&f);
            let t1 = Instant::now();
            detections = detector.detect(input).map_err(|e| e.to_string())?.len();
            let total = t1.elapsed();
            let d = detector.timings();
            if i < 3 {
                continue; // warm-up
            }
            t.decode.push(decode);
            t.colour.push(d.preprocess.colour);
            t.resize.push(d.preprocess.resize);
            t.normalise.push(d.preprocess.normalise);
            t.preprocess
                .push(total.saturating_sub(d.inference + d.decode_nms));
            t.inference.push(d.inference);
            t.decode_nms.push(d.decode_nms);
        }
        stages.push(StageReport {
            frame: name.to_string(),
            decode_ms: Stat::of(t.decode),
            colour_ms: Stat::of(t.colour),
            resize_ms: Stat::of(t.resize),
            normalise_ms: Stat::of(t.normalise),
            preprocess_ms: Stat::of(t.preprocess),
            inference_ms: Stat::of(t.inference),
            decode_nms_ms: Stat::of(t.decode_nms),
            detections,
        });
    }
    Ok(BenchReport {
        backend: detector.backend_name().to_string(),
        threads,
        iterations,
        content: image.map_or("synthetic".to_string(), |p| p.display().to_string()),
        stages,
        tracker_100_people_ms: bench_tracker(iterations.max(200)),
        tracker_analytics_100_people_ms: bench_analytics(iterations.max(200)),
        appearance_100_people_ms: bench_appearance(iterations.max(50)),
        tamper_1080p_ms: bench_tamper(iterations.max(200))?,
        camera_100_people_1080p_ms: bench_camera(iterations.max(200))?,
        snapshot_1080p_ms: bench_snapshot(iterations.clamp(5, 20))?,
        onnxruntime: None,
    })
}

/// 100 people on a 10×10 grid walking right with a little jitter: the
/// tracker benchmark's input, also used by the allocation test.
pub fn crowd(frame: u32, out: &mut Vec<crate::detect::Detection>) {
    use crate::detect::{BBox, Detection};
    out.clear();
    for i in 0..100u32 {
        let (gx, gy) = ((i % 10) as f32, (i / 10) as f32);
        let jitter = ((frame * 7 + i * 13) % 5) as f32 - 2.0;
        let x = 20.0 + gx * 180.0 + frame as f32 * 0.5 + jitter;
        let y = 20.0 + gy * 100.0 + jitter * 0.5;
        out.push(Detection {
            class_id: 0,
            score: 0.55 + ((i * 31 + frame) % 40) as f32 / 100.0,
            bbox: BBox {
                x1: x,
                y1: y,
                x2: x + 40.0,
                y2: y + 90.0,
            },
        });
    }
}

/// Size of the crowd's frames.
pub const CROWD_FRAME: (u32, u32) = (1920, 1080);

/// 2026-01-01T00:00:00Z: the crowd's first frame, at the start of a bin.
pub const CROWD_START_US: u64 = 1_767_225_600_000_000;

/// Analytics over the crowd: every kind of line and zone, so the
/// benchmark and the allocation test exercise all of them. The crowd walks
/// right across the vertical door line.
pub const CROWD_ANALYTICS: &str = r#"
version = 1
bin_minutes = 1
passers_by = "street"

[[lines]]
name = "door"
points = [[0.5, 0.0], [0.5, 1.0]]
in_side = "left"

[[lines]]
name = "street"
points = [[0.1, 0.0], [0.1, 0.5], [0.1, 1.0]]
in_side = "right"

[[zones]]
name = "front"
polygon = [[0.0, 0.0], [0.4, 0.0], [0.4, 0.5], [0.0, 0.5]]
loiter_s = 3

[[zones]]
name = "till"
kind = "queue"
polygon = [[0.4, 0.5], [0.8, 0.5], [0.8, 1.0], [0.4, 1.0]]
service_per_min = 2.0

[[zones]]
name = "shelf"
kind = "shelf"
polygon = [[0.6, 0.0], [1.0, 0.0], [1.0, 0.5], [0.6, 0.5]]

[[zones]]
name = "back"
kind = "inner"
polygon = [[0.8, 0.5], [1.0, 0.5], [1.0, 1.0], [0.8, 1.0]]

[[zones]]
name = "pavement"
kind = "street"
polygon = [[0.0, 0.5], [0.4, 0.5], [0.3, 1.0], [0.0, 1.0]]

[heatmap]
cols = 32
rows = 18
"#;

/// The analytics engine over [`CROWD_ANALYTICS`].
pub fn crowd_engine() -> camera_core::analytics::engine::Engine {
    use camera_core::analytics::engine::{Engine, EngineSettings};
    use camera_core::config::AnalyticsConfig;
    // The constant is valid; a test checks it.
    let config = AnalyticsConfig::parse(CROWD_ANALYTICS).unwrap_or_else(|e| panic!("{e}"));
    Engine::new(&config, EngineSettings::default())
}

/// The crowd's appearances: person `i` wears two colours of its own.
pub fn crowd_appearances(out: &mut Vec<Option<camera_core::track::appearance::Appearance>>) {
    use camera_core::track::appearance::BINS;
    out.clear();
    out.extend((0..100usize).map(|i| {
        let mut a = [0.0; BINS];
        a[(i * 7) % BINS] = 0.7;
        a[(i * 13 + 5) % BINS] += 0.3;
        Some(a)
    }));
}

fn bench_appearance(iterations: usize) -> Stat {
    use crate::capture::{Frame, PixelFormat, Timestamp};
    let (w, h) = CROWD_FRAME;
    let n = (w * h) as usize;
    let frame = Frame {
        seq: 0,
        timestamp: Timestamp(CROWD_START_US),
        width: w,
        height: h,
        stride: w,
        format: PixelFormat::Nv12,
        data: (0..n + n / 2).map(|i| (i * 31 % 251) as u8).collect(),
    };
    let mut dets = Vec::with_capacity(100);
    crowd(0, &mut dets);
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t0 = Instant::now();
        let described = dets
            .iter()
            .filter_map(|d| camera_core::track::appearance::describe(&frame, &d.bbox))
            .count();
        times.push(t0.elapsed());
        std::hint::black_box(described);
    }
    Stat::of(times)
}

/// A textured 1920×1080 NV12 frame at `t_us`.
fn crowd_frame(t_us: u64) -> Frame {
    let (w, h) = CROWD_FRAME;
    let n = (w * h) as usize;
    Frame {
        seq: 0,
        timestamp: Timestamp(t_us),
        width: w,
        height: h,
        stride: w,
        format: PixelFormat::Nv12,
        data: (0..n + n / 2).map(|i| (i * 31 % 251) as u8).collect(),
    }
}

fn bench_tamper(iterations: usize) -> Result<Stat, String> {
    use camera_core::tamper::{TamperConfig, TamperDetector};
    let mut frame = crowd_frame(CROWD_START_US);
    let mut det = TamperDetector::new(TamperConfig::default()).map_err(|e| e.to_string())?;
    let mut events = Vec::new();
    let mut times = Vec::with_capacity(iterations);
    // Learning first: the judged path is the expensive one.
    for i in 0..(iterations + 100) as u64 {
        frame.timestamp.0 = CROWD_START_US + i * 40_000;
        let t0 = Instant::now();
        det.observe(&frame, frame.timestamp.0, &mut events)
            .map_err(|e| e.to_string())?;
        let took = t0.elapsed();
        if i >= 100 {
            times.push(took);
        }
    }
    if det.status().learning {
        return Err("the tamper detector did not learn the view in 100 frames".into());
    }
    Ok(Stat::of(times))
}

fn bench_camera(iterations: usize) -> Result<Stat, String> {
    use camera_core::camera::{Camera, FrameInput, Input, Settings};
    use camera_core::config::AnalyticsConfig;
    let config = AnalyticsConfig::parse(CROWD_ANALYTICS).map_err(|e| e.to_string())?;
    let settings = Settings {
        camera_id: "bench".into(),
        labels: vec!["person".into()],
        tracker: Default::default(),
        tamper: Default::default(),
        sequences: Default::default(),
    };
    let mut camera = Camera::new(config, settings).map_err(|e| e.to_string())?;
    let mut frame = crowd_frame(CROWD_START_US);
    let mut dets = Vec::with_capacity(100);
    let mut times = Vec::with_capacity(iterations);
    for i in 0..(iterations + 20) as u32 {
        crowd(i, &mut dets);
        frame.timestamp.0 = CROWD_START_US + u64::from(i) * 40_000;
        let t0 = Instant::now();
        let out = camera.handle(Input::Frame(FrameInput {
            frame: &frame,
            detections: &dets,
            rgb: &mut || None,
        }));
        std::hint::black_box(out.records.len());
        let took = t0.elapsed();
        if i >= 20 {
            times.push(took);
        }
    }
    Ok(Stat::of(times))
}

fn bench_snapshot(iterations: usize) -> Result<Stat, String> {
    use camera_core::config::AnalyticsConfig;
    let config = AnalyticsConfig::parse(CROWD_ANALYTICS).map_err(|e| e.to_string())?;
    let frame = crowd_frame(CROWD_START_US);
    let mut dets = Vec::with_capacity(100);
    crowd(0, &mut dets);
    let people: Vec<_> = dets.iter().take(3).map(|d| d.bbox).collect();
    let opts = crate::snapshot::SnapshotOptions {
        enabled: true,
        ..Default::default()
    };
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t0 = Instant::now();
        let jpeg = crate::snapshot::render(&frame, Some(&config), &people, &opts)
            .map_err(|e| e.to_string())?;
        times.push(t0.elapsed());
        std::hint::black_box(jpeg.len());
    }
    Ok(Stat::of(times))
}

fn bench_analytics(iterations: usize) -> Stat {
    use camera_core::track::{Tracker, TrackerConfig};
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut engine = crowd_engine();
    let mut dets = Vec::with_capacity(100);
    let mut records = Vec::new();
    let mut appearances = Vec::with_capacity(100);
    crowd_appearances(&mut appearances);
    let mut times = Vec::with_capacity(iterations);
    for frame in 0..(iterations + 20) as u32 {
        crowd(frame, &mut dets);
        let t_us = CROWD_START_US + u64::from(frame) * 40_000;
        let t0 = Instant::now();
        records.clear();
        let tracks = tracker.update_with_appearance(&dets, &appearances, f64::from(frame) / 25.0);
        engine.update(tracks, CROWD_FRAME.0, CROWD_FRAME.1, t_us, &mut records);
        let took = t0.elapsed();
        std::hint::black_box(records.len());
        if frame >= 20 {
            times.push(took);
        }
    }
    Stat::of(times)
}

fn bench_tracker(iterations: usize) -> Stat {
    use camera_core::track::{Tracker, TrackerConfig};
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut dets = Vec::with_capacity(100);
    let mut times = Vec::with_capacity(iterations);
    for frame in 0..(iterations + 20) as u32 {
        crowd(frame, &mut dets);
        let t0 = Instant::now();
        let n = tracker.update(&dets, f64::from(frame) / 25.0).len();
        let took = t0.elapsed();
        std::hint::black_box(n);
        if frame >= 20 {
            times.push(took);
        }
    }
    Stat::of(times)
}

#[derive(Default)]
struct Timings {
    decode: Vec<Duration>,
    colour: Vec<Duration>,
    resize: Vec<Duration>,
    normalise: Vec<Duration>,
    preprocess: Vec<Duration>,
    inference: Vec<Duration>,
    decode_nms: Vec<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crowd_analytics_config_is_valid() {
        assert!(
            camera_core::config::AnalyticsConfig::parse(CROWD_ANALYTICS).is_ok(),
            "{:?}",
            camera_core::config::AnalyticsConfig::parse(CROWD_ANALYTICS)
        );
    }

    #[test]
    fn stat_median_and_p95() {
        let v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = Stat::of(v);
        assert_eq!(s.median, 51.0);
        assert_eq!(s.p95, 95.0);
    }
}

/// Figures of the outbox backlog benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct BacklogReport {
    pub broker: String,
    pub records: u64,
    pub payload_bytes: usize,
    /// Records acknowledged by the broker and removed from the outbox, per
    /// second, from the link's start to an empty outbox; one per round.
    pub rounds_msgs_per_s: Vec<f64>,
    pub median_msgs_per_s: f64,
}

/// A camera back online after an outage: `records` bins wait in the
/// outbox; how fast does the link deliver them (PUBACK received and the
/// record removed)? Against `broker`, or an embedded one.
pub fn link_backlog(
    records: u64,
    broker: Option<std::net::SocketAddr>,
    rounds: usize,
) -> Result<BacklogReport, String> {
    use std::sync::{Arc, Mutex};

    use crate::outbox::{Outbox, OutboxLimits};

    let (addr, name) = match broker {
        Some(a) => (a, format!("external {a}")),
        #[cfg(feature = "embedded-broker")]
        None => (
            crate::broker::start(0, 1024 * 1024).map_err(|e| e.to_string())?,
            "embedded rumqttd".to_string(),
        ),
        #[cfg(not(feature = "embedded-broker"))]
        None => return Err("built without the embedded broker: give --broker".into()),
    };
    // A bin of a door camera with one line and two zones is about this big.
    let payload = format!(
        r#"{{"type":"bin","camera":"bench","seq":0,"pad":"{}"}}"#,
        "x".repeat(700)
    );
    let mut rates = Vec::new();
    for round in 0..rounds.max(1) {
        let dir =
            std::env::temp_dir().join(format!("camera-backlog-{}-{round}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut outbox = Outbox::open(&dir.join("outbox.redb"), OutboxLimits::default())
            .map_err(|e| e.to_string())?;
        for i in 0..records {
            outbox
                .push("bins", payload.as_bytes(), 1_700_000_000_000_000 + i)
                .map_err(|e| e.to_string())?;
        }
        let outbox = Arc::new(Mutex::new(outbox));
        let mut config = crate::link::LinkConfig::new(&addr.ip().to_string(), addr.port());
        config.client_id = Some(format!("bench-{}-{round}", std::process::id()));
        let start = Instant::now();
        // A camera with nothing to say: no frame loop takes commands.
        let (commands, _no_loop) = std::sync::mpsc::sync_channel(1);
        let (_no_events, events) = tokio::sync::mpsc::channel(1);
        let link = crate::link::Link {
            config,
            camera_id: "bench".into(),
            outbox: outbox.clone(),
            running: (0, "{}".into()),
            birth: serde_json::json!({}),
            health: Box::new(|_| serde_json::json!({})),
        }
        .spawn(commands, events)
        .map_err(|e| e.to_string())?;
        loop {
            let depth = outbox
                .lock()
                .map_err(|e| e.to_string())?
                .stats()
                .map_err(|e| e.to_string())?
                .depth;
            if depth == 0 {
                break;
            }
            if start.elapsed() > Duration::from_secs(120) {
                return Err(format!("{depth} records still waiting after 120 s"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        rates.push(records as f64 / start.elapsed().as_secs_f64());
        link.stop();
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(BacklogReport {
        broker: name,
        records,
        payload_bytes: payload.len(),
        median_msgs_per_s: sorted[sorted.len() / 2],
        rounds_msgs_per_s: rates,
    })
}

/// Shelf analysis of one frame (issue 7, acceptance 4): every facing of
/// every shelf judged against its reference.
#[derive(Debug, Clone, Serialize)]
pub struct ShelfBenchReport {
    pub frame: String,
    pub shelves: usize,
    pub facings: usize,
    pub iterations: usize,
    /// A steady camera (the usual case: no shift search).
    pub analysis_ms: Stat,
    /// A shaken camera: the frame shifted by (2, 1) and (-1, 2) pixels in
    /// turn, so the shift found on the previous frame never matches and
    /// every shelf runs the shift search on every iteration.
    pub analysis_shaken_ms: Stat,
    /// What the camera does once per observation interval: a 1080p NV12
    /// frame converted to RGB, then every shelf judged (steady camera).
    pub nv12_frame_ms: Stat,
}

/// A 1920×1080 frame of `rows` × 2 shelves, each a 1×12 grid of boxes in
/// varied colours, and the shelves' layout.
fn shelf_scene(rows: usize) -> (Vec<u8>, Vec<camera_core::shelf::layout::Shelf>) {
    use camera_core::shelf::layout::{RawShelf, validate};
    let (w, h) = (1920usize, 1080usize);
    let mut rng = fastrand::Rng::with_seed(11);
    let mut img = vec![0u8; w * h * 3];
    for (i, px) in img.chunks_exact_mut(3).enumerate() {
        let (x, y) = (i % w, i / w);
        // Boxes 20×30 pixels, one colour each, on a grey back.
        let seed = (x / 20 * 7919 + y / 30 * 104_729) as u64;
        let mut c = fastrand::Rng::with_seed(seed);
        let edge = x % 20 == 0 || y % 30 == 0;
        px.copy_from_slice(&if edge {
            [110, 110, 105]
        } else {
            [c.u8(30..230), c.u8(30..230), c.u8(30..230)]
        });
        if rng.u8(0..100) == 0 {
            px[0] = px[0].saturating_add(3);
        }
    }
    let mut raw = Vec::new();
    for r in 0..rows {
        for col in 0..2 {
            let (x0, x1) = (0.05 + 0.46 * col as f32, 0.49 + 0.46 * col as f32);
            let (y0, y1) = (0.05 + 0.18 * r as f32, 0.17 + 0.18 * r as f32);
            let (f0, f1) = (y1, (y1 + 0.05).min(1.0));
            let text = format!(
                "name = \"s{r}{col}\"\npolygon = [[{x0}, {y0}], [{x1}, {y0}], [{x1}, {y1}], [{x0}, {y1}]]\n\
                 grid = [1, 12]\nfront = [[{x0}, {f0}], [{x1}, {f0}], [{x1}, {f1}], [{x0}, {f1}]]\n"
            );
            raw.push(toml::from_str::<RawShelf>(&text).unwrap_or_else(|e| panic!("{e}")));
        }
    }
    let shelves = validate(&raw).unwrap_or_else(|e| panic!("{e:?}"));
    (img, shelves)
}

/// Time the shelf analysis of a 1080p frame with 10 shelves × 12 facings:
/// a steady camera (the shift found before matches at once), and a shaken
/// one (two shifted frames in turn: every iteration searches the shift of
/// every shelf). Every facing must read stocked.
pub fn shelves(iterations: usize) -> Result<ShelfBenchReport, String> {
    use camera_core::shelf::compare::{ReferenceComparator, RgbView, ShelfReference, ShelfState};
    let (img, shelves) = shelf_scene(5);
    let view = RgbView {
        width: 1920,
        height: 1080,
        data: &img,
    };
    let refs = shelves
        .iter()
        .map(|s| ShelfReference::capture(s, 1, &[view]))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut cmp = ReferenceComparator::new(refs, 1).map_err(|e| e.to_string())?;
    // The same frame moved by (2, 1) and by (-1, 2) pixels: camera shake.
    let (w, h) = (1920usize, 1080usize);
    let shift = |dx: isize, dy: isize| {
        let mut out = vec![0u8; img.len()];
        for y in 0..h as isize {
            let sy = y - dy;
            if !(0..h as isize).contains(&sy) {
                continue;
            }
            for x in 0..w as isize {
                let sx = x - dx;
                if (0..w as isize).contains(&sx) {
                    let (d, s) = (
                        (y as usize * w + x as usize) * 3,
                        (sy as usize * w + sx as usize) * 3,
                    );
                    out[d..d + 3].copy_from_slice(&img[s..s + 3]);
                }
            }
        }
        out
    };
    let shaken = [shift(2, 1), shift(-1, 2)];
    let shaken_views = shaken.each_ref().map(|d| RgbView {
        width: 1920,
        height: 1080,
        data: d,
    });
    let mut fills = Vec::new();
    // Frames in turn (a steady camera: one).
    let mut run = |frames: &[RgbView<'_>]| -> Result<Stat, String> {
        let mut times = Vec::with_capacity(iterations);
        for i in 0..iterations.max(1) {
            let v = frames[i % frames.len()];
            let t0 = Instant::now();
            for s in &shelves {
                cmp.fill(s, v, &mut fills).map_err(|e| e.to_string())?;
                if fills.iter().any(|&f| f < 0.8) {
                    return Err(format!("a stocked shelf should read full: {fills:?}"));
                }
            }
            times.push(t0.elapsed());
        }
        Ok(Stat::of(times))
    };
    let analysis_ms = run(&[view])?;
    let analysis_shaken_ms = run(&shaken_views)?;
    let nv12 = frame(&img, 1920, 1080, PixelFormat::Nv12)?;
    let colorimetry = crate::preprocess::Colorimetry::Bt601Limited;
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations.max(1) {
        let t0 = Instant::now();
        let rgb = crate::snapshot::frame_rgb(&nv12, colorimetry).map_err(|e| e.to_string())?;
        for s in &shelves {
            cmp.fill(s, rgb.view(), &mut fills)
                .map_err(|e| e.to_string())?;
            // 4:2:0 chroma and the YUV round trip soften colours a little.
            if fills.iter().any(|&f| f < 0.7) {
                return Err(format!(
                    "a stocked shelf should read full from NV12: {fills:?}"
                ));
            }
        }
        times.push(t0.elapsed());
    }
    let nv12_frame_ms = Stat::of(times);
    Ok(ShelfBenchReport {
        frame: "1920x1080 rgb".into(),
        shelves: shelves.len(),
        facings: shelves.iter().map(|s| s.facings.len()).sum(),
        iterations: iterations.max(1),
        analysis_ms,
        analysis_shaken_ms,
        nv12_frame_ms,
    })
}
