//! Shared helpers for the end-to-end tests: where the test data lives.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

/// Waits for an outcome end at a deadline, never sooner than this: a
/// deadline only bounds how long a failing test takes, and on a loaded
/// machine (a cold CI run, other builds) a camera process can take many
/// seconds to start and settle. A passing test returns as soon as the
/// outcome is seen.
pub const MIN_DEADLINE: Duration = Duration::from_secs(60);

/// `limit`, raised to [`MIN_DEADLINE`].
pub fn patient(limit: Duration) -> Duration {
    limit.max(MIN_DEADLINE)
}

/// `../shared` beside the repository, or `$CAMERA_SHARED_DIR`. Panics with
/// instructions when it is missing: tests never skip silently.
pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("CAMERA_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    assert!(
        dir.join("models/fastestdet/FastestDet.onnx").is_file(),
        "test data not found at {}: check out the shared data directory beside the \
         repository (../shared with models/, images/), or set CAMERA_SHARED_DIR",
        dir.display()
    );
    dir
}

pub fn models_dir() -> PathBuf {
    shared_dir().join("models")
}

pub fn images_dir() -> PathBuf {
    shared_dir().join("images")
}

pub fn reference_dir() -> PathBuf {
    models_dir().join("fastestdet/reference")
}

/// Raw little-endian f32 file.
pub fn read_f32(path: &std::path::Path) -> Vec<f32> {
    let bytes =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert_eq!(bytes.len() % 4, 0, "{} is not f32 data", path.display());
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// One reference detection.
#[derive(Debug, Clone)]
pub struct RefDet {
    pub class: String,
    pub score: f32,
    pub bbox: [f32; 4],
}

/// `reference/detections.json`: image name → (width, height, detections).
pub fn reference_detections() -> Vec<(String, u32, u32, Vec<RefDet>)> {
    let path = reference_dir().join("detections.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).expect("reference JSON");
    let images = v["images"].as_object().expect("images object");
    let mut out = Vec::new();
    for (name, img) in images {
        let dets = parse_detections(&img["detections"]);
        out.push((
            name.clone(),
            img["width"].as_u64().expect("width") as u32,
            img["height"].as_u64().expect("height") as u32,
            dets,
        ));
    }
    out
}

/// A `detections` array as the reference and `camera-app detect` write it.
pub fn parse_detections(v: &serde_json::Value) -> Vec<RefDet> {
    v.as_array()
        .expect("detections array")
        .iter()
        .map(|d| {
            let b: Vec<f32> = d["box_xyxy"]
                .as_array()
                .expect("box")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
                .collect();
            RefDet {
                class: d["class"].as_str().expect("class").to_string(),
                score: d["score"].as_f64().expect("score") as f32,
                bbox: [b[0], b[1], b[2], b[3]],
            }
        })
        .collect()
}

pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: [f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    inter / (area(a) + area(b) - inter)
}

/// Compare one image's detections with the reference, by the acceptance
/// rule: every reference detection of `class` matched at IoU ≥ 0.85 with
/// |Δscore| ≤ 0.05 (unless its score is within 0.05 of the threshold), and
/// no extra detection of `class` above the threshold unless it is within
/// 0.05 of it. Returns the problems found.
pub fn compare(
    image: &str,
    class: &str,
    threshold: f32,
    reference: &[RefDet],
    got: &[RefDet],
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut used = vec![false; got.len()];
    for r in reference.iter().filter(|r| r.class == class) {
        let best = got
            .iter()
            .enumerate()
            .filter(|(i, g)| !used[*i] && g.class == class)
            .map(|(i, g)| (i, iou(r.bbox, g.bbox)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((i, v)) if v >= 0.85 && (got[i].score - r.score).abs() <= 0.05 => used[i] = true,
            _ if (r.score - threshold).abs() <= 0.05 => {}
            other => problems.push(format!(
                "{image}: reference {class} {:?} score {} not matched (best {other:?}, got {got:?})",
                r.bbox, r.score
            )),
        }
    }
    for (i, g) in got.iter().enumerate() {
        if g.class == class && !used[i] && g.score > threshold && (g.score - threshold) > 0.05 {
            problems.push(format!(
                "{image}: extra {class} {:?} score {}",
                g.bbox, g.score
            ));
        }
    }
    problems
}
#[cfg(feature = "embedded-broker")]
pub mod mqtt;

/// `f` on every item, on up to four threads (the detector runs on one;
/// CI has two cores). Results come back in no particular order.
pub fn in_workers<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4));
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                s.spawn(move || {
                    items
                        .iter()
                        .skip(w)
                        .step_by(workers)
                        .map(f)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    })
}

/// What the camera produced playing a scene.
pub struct Played {
    pub records: Vec<camera_core::camera::Output>,
    pub replies: Vec<camera_core::shelf::request::ShelfReferenceReply>,
    pub summary: camera_app::summary::RunSummary,
}

impl Played {
    /// Bins and events (tamper records left out).
    pub fn analytics(&self) -> impl Iterator<Item = &camera_core::analytics::report::Record> {
        self.records.iter().filter_map(|r| match r {
            camera_core::camera::Output::Record(r) => Some(r),
            camera_core::camera::Output::Tamper(_) => None,
        })
    }
}

/// Play a rendered scene (`dir/frames` at `fps`, `dir/analytics.toml`)
/// through the camera as it runs (`camera_app::runtime::run`: the real
/// detector, the camera state machine, the effects), with the built-in
/// configuration. `shelf_reference`: take every shelf's reference from the
/// first clean frames, as `run --shelf-reference all` does.
pub fn play_scene(
    dir: &std::path::Path,
    fps: u32,
    camera_id: &str,
    shelf_reference: bool,
) -> Played {
    use std::sync::{Arc, Mutex};

    use camera_app::capture::files::FilesConfig;
    use camera_app::config::{Config, SourceConfig};
    use camera_app::runtime::{self, RunOptions};

    let mut cfg = Config::default_config().expect("default config");
    cfg.detector.models_dir = Some(models_dir());
    cfg.camera.id = camera_id.into();
    cfg.source = SourceConfig::Files(FilesConfig {
        fps: f64::from(fps),
        ..FilesConfig::new(dir.join("frames"))
    });
    cfg.analytics = Some(dir.join("analytics.toml"));
    cfg.output.path = Some(dir.join("records.jsonl"));
    let seen: Arc<Mutex<(Vec<_>, Vec<_>)>> = Arc::default();
    let tap = seen.clone();
    let opts = RunOptions {
        shelf_reference: shelf_reference.then(|| RunOptions::shelf_reference_arg("all")),
        tap: Some(Box::new(move |out| {
            let mut seen = tap.lock().expect("lock");
            seen.0.extend(out.records.iter().cloned());
            seen.1.extend(out.replies.iter().cloned());
        })),
    };
    let stop = std::sync::atomic::AtomicBool::new(false);
    let summary =
        runtime::run(&cfg, opts, &stop).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let (records, replies) = std::mem::take(&mut *seen.lock().expect("lock"));
    Played {
        records,
        replies,
        summary,
    }
}
