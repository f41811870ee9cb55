//! The frame loop and its effects, with a detector that always sees one
//! person, a fake V4L2 camera or the synthetic source, and a fake link at
//! the other end of the channels.

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use camera_core::camera::{Camera, Output, Settings};
use camera_core::config::AnalyticsConfig;

use super::*;
use crate::capture::synthetic::{SyntheticConfig, SyntheticSource};
use crate::capture::v4l2::fake::{Event, FakeOpener, Script};
use crate::capture::v4l2::{V4l2Config, V4l2Error, V4l2Source};
use crate::capture::{PixelFormat, SourceError};
use crate::config_store::ConfigStore;
use crate::detect::{Detector, InferError, InferenceBackend, TensorSpec};
use crate::link::CameraEvent;
use crate::model::{self, DetectorOptions, Manifest};
use crate::tensor::{DType, Layout, Tensor};

/// A backend that always sees one person in the middle of the image.
#[derive(Debug)]
struct OnePerson {
    spec: TensorSpec,
    out: Vec<Tensor>,
}

impl OnePerson {
    fn new() -> Self {
        let (c, g) = (85, 22);
        let mut v = vec![0.0f32; c * g * g];
        let cell = 11 * g + 11;
        v[cell] = 0.9; // objectness
        v[5 * g * g + cell] = 0.9; // class 0: person
        Self {
            spec: TensorSpec {
                name: "input".into(),
                shape: vec![1, 3, 352, 352],
                layout: Layout::Nchw,
                dtype: DType::F32,
            },
            out: vec![Tensor::f32(vec![1, c, g, g], Layout::Nchw, v)],
        }
    }
}

impl InferenceBackend for OnePerson {
    fn name(&self) -> &'static str {
        "one-person"
    }
    fn input(&self) -> &TensorSpec {
        &self.spec
    }
    fn infer(&mut self, _input: &Tensor) -> Result<&[Tensor], InferError> {
        Ok(&self.out)
    }
}

fn detector() -> (Manifest, Detector) {
    let m = Manifest::builtin("fastestdet").expect("manifest");
    let opts = DetectorOptions {
        classes: vec!["person".into()],
        ..DetectorOptions::default()
    };
    let d = model::detector_with_backend(&m, Box::new(OnePerson::new()), &opts).expect("detector");
    (m, d)
}

/// JSON lines written to memory.
#[derive(Debug, Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn json(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().expect("lock").clone();
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

/// A 32x16 YUYV camera on the fake device, not sleeping on backoff.
fn fake_camera(shared: &Arc<Mutex<Script>>) -> V4l2Source<FakeOpener> {
    let cfg = V4l2Config {
        device: "/dev/video0".into(),
        format: PixelFormat::Yuyv,
        width: 32,
        height: 16,
        fps: 10,
        buffers: 2,
        timeout_ms: 10,
    };
    V4l2Source::with_opener(cfg, FakeOpener(shared.clone()), Box::new(|_| {})).expect("open")
}

fn frame_event(sequence: u32) -> Event {
    Event::Frame {
        planes: vec![vec![128; 32 * 16 * 2]],
        sequence,
    }
}

/// The camera is unplugged mid-stream and comes back: the loop keeps
/// going, counts the errors, and loses only the frames the camera never
/// delivered.
#[test]
fn the_loop_survives_a_camera_that_vanishes_and_returns() {
    let mut script = Script::new(false, 32, 16, vec![(64, 1024)]);
    script.events = [
        frame_event(0),
        frame_event(1),
        Event::Vanish,
        frame_event(0),
        frame_event(1),
    ]
    .into();
    let shared = Arc::new(Mutex::new(script));
    let mut src = fake_camera(&shared);
    let (m, mut det) = detector();
    let lines = Lines::default();
    let effects = Effects::new(Box::new(lines.clone()), "memory", m);
    let mut frames = FrameLoop::new(&mut src, &mut det, effects);
    frames.max_frames = Some(2);
    frames.run(&AtomicBool::new(false)).expect("run");
    // Opening fails once after the unplug.
    shared
        .lock()
        .expect("lock")
        .open_errors
        .push_back(libc::ENOENT);
    frames.max_frames = Some(4);
    let summary = frames.run(&AtomicBool::new(false)).expect("run");
    frames.finish(frame_loop::STOPPED).expect("finish");
    assert_eq!(summary.processed, 4);
    assert_eq!(summary.source_errors, 2, "{summary:?}"); // ENODEV, then ENOENT
    assert_eq!(summary.source.reopens, 1);
    let records = lines.json();
    let seqs: Vec<u64> = records
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [0, 1, 2, 3]);
    for r in &records {
        let dets = r["detections"].as_array().expect("detections");
        assert_eq!(dets.len(), 1, "{r}");
        assert_eq!(dets[0]["class"], "person");
        // Box centred in the 32x16 frame.
        let b: Vec<f64> = dets[0]["box_xyxy"]
            .as_array()
            .expect("box")
            .iter()
            .map(|v| v.as_f64().expect("number"))
            .collect();
        assert!(((b[0] + b[2]) / 2.0 - 16.0).abs() < 1.0, "{b:?}");
    }
}

#[test]
fn a_fatal_source_error_stops_the_loop() {
    let mut script = Script::new(false, 32, 16, vec![(64, 1024)]);
    script.events = [frame_event(0), Event::Vanish].into();
    let shared = Arc::new(Mutex::new(script));
    let mut src = fake_camera(&shared);
    let (m, mut det) = detector();
    let effects = Effects::new(Box::new(std::io::sink()), "nowhere", m);
    let mut frames = FrameLoop::new(&mut src, &mut det, effects);
    frames.max_frames = Some(1);
    frames.run(&AtomicBool::new(false)).expect("first frame");
    // After the unplug a different camera appears that cannot do YUYV.
    shared.lock().expect("lock").offer_fourcc = Some(*b"MJPG");
    frames.max_frames = None;
    let err = frames.run(&AtomicBool::new(false)).expect_err("fatal");
    let RunError::Source(SourceError::V4l2(e)) = &err else {
        panic!("unexpected {err}")
    };
    assert!(matches!(e, V4l2Error::Unsupported { .. }), "{e}");
    assert!(err.to_string().contains("the driver offers MJPG"), "{err}");
}

const ANALYTICS_V1: &str = r#"
version = 1
bin_minutes = 1

[[lines]]
name = "door"
points = [[0.0, 0.8], [1.0, 0.8]]
in_side = "right"
"#;

/// A counting loop over 64x48 synthetic frames (10 fps) seeing one person;
/// what it stores and says goes to `dir`, `lines` and the returned channel.
fn counting_loop<'a>(
    src: &'a mut SyntheticSource,
    det: &'a mut Detector,
    m: Manifest,
    lines: &Lines,
    dir: &std::path::Path,
    outputs: Arc<Mutex<Vec<Output>>>,
) -> (FrameLoop<'a>, tokio::sync::mpsc::Receiver<CameraEvent>) {
    let analytics = AnalyticsConfig::parse(ANALYTICS_V1).expect("analytics");
    let settings = Settings {
        camera_id: "cam".into(),
        labels: m.labels.clone(),
        tracker: Default::default(),
        tamper: Default::default(),
        sequences: Default::default(),
    };
    let camera = Camera::new(analytics, settings).expect("camera");
    let (events, events_rx) = tokio::sync::mpsc::channel(16);
    let effects = Effects::new(Box::new(lines.clone()), "memory", m)
        .with_link(events, Arc::default())
        .with_stores(None, Some(ConfigStore::open(dir).expect("store")))
        .with_tap(Some(Box::new(move |out| {
            outputs
                .lock()
                .expect("lock")
                .extend(out.records.iter().cloned());
        })));
    let mut frames = FrameLoop::new(src, det, effects);
    frames.camera = Some(camera);
    (frames, events_rx)
}

fn synthetic(frames: u64) -> SyntheticSource {
    SyntheticSource::open(SyntheticConfig {
        width: 64,
        height: 48,
        format: PixelFormat::Nv12,
        fps: 10.0,
        frames: Some(frames),
        realtime: false,
    })
    .expect("synthetic")
}

/// A `config/set` from the link is decided against the version in force,
/// stored, then in force from the next frame: the open bin closes under
/// the old version, the answer carries the ticket and the new state, and
/// a stale version is refused with the reason.
#[test]
fn a_configuration_is_decided_stored_and_in_force_from_the_next_frame() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (m, mut det) = detector();
    let mut src = synthetic(30);
    let lines = Lines::default();
    let outputs = Arc::new(Mutex::new(Vec::new()));
    let (mut frames, mut events) =
        counting_loop(&mut src, &mut det, m, &lines, dir.path(), outputs.clone());
    let v2 = r#"{"version": 2, "bin_minutes": 1, "lines": [{"name": "door", "points": [[0.0, 0.5], [1.0, 0.5]], "in_side": "left"}]}"#;
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    frames.commands = Some(rx);
    frames.max_frames = Some(10);
    frames.run(&AtomicBool::new(false)).expect("run");
    tx.send(CameraCommand::Configure {
        ticket: 7,
        payload: v2.as_bytes().to_vec(),
    })
    .expect("send");
    tx.send(CameraCommand::Configure {
        ticket: 8,
        payload: br#"{"version": 2}"#.to_vec(),
    })
    .expect("send");
    frames.max_frames = Some(30);
    frames.run(&AtomicBool::new(false)).expect("run");
    frames.finish(frame_loop::STOPPED).expect("finish");
    let mut answers = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let CameraEvent::Configured {
            ticket,
            result,
            state,
        } = ev
        {
            answers.push((ticket, result, state));
        }
    }
    assert_eq!(answers.len(), 2, "{answers:?}");
    let (ticket, result, state) = &answers[0];
    assert_eq!(
        (*ticket, result.accepted, result.running_version),
        (7, true, 2)
    );
    assert_eq!(state.as_ref().map(|s| s.0), Some(2));
    let (ticket, result, state) = &answers[1];
    assert_eq!((*ticket, result.accepted, state), (8, false, &None));
    assert!(
        result.problems.iter().any(|p| p.contains("not newer")),
        "{result:?}"
    );
    // Stored before the answer went out.
    let stored = ConfigStore::open(dir.path())
        .expect("store")
        .load()
        .expect("load")
        .expect("a stored configuration");
    assert_eq!(stored.version, 2);
    // Bins: the first closes under version 1 when version 2 comes into
    // force, the last under version 2.
    let versions: Vec<u64> = lines
        .json()
        .iter()
        .filter(|r| r["type"] == "bin")
        .map(|r| r["config_version"].as_u64().expect("version"))
        .collect();
    assert_eq!(versions, [1, 2], "{versions:?}");
    assert_eq!(outputs.lock().expect("lock").len(), lines.json().len());
}

/// Snapshots come from the next frame when enabled, and are refused with
/// the reason when not.
#[test]
fn snapshots_are_taken_from_the_next_frame_or_refused() {
    for enabled in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (m, mut det) = detector();
        let mut src = synthetic(3);
        let lines = Lines::default();
        let (mut frames, mut events) =
            counting_loop(&mut src, &mut det, m, &lines, dir.path(), Arc::default());
        frames.snapshots = enabled.then(|| crate::snapshot::SnapshotOptions {
            enabled: true,
            ..Default::default()
        });
        frames.initial = vec![CameraCommand::Snapshot];
        frames.run(&AtomicBool::new(false)).expect("run");
        let mut shots = Vec::new();
        while let Ok(ev) = events.try_recv() {
            if let CameraEvent::Snapshot(s) = ev {
                shots.push(s);
            }
        }
        assert_eq!(shots.len(), 1, "one answer per request");
        match (&shots[0], enabled) {
            (Ok(jpeg), true) => assert_eq!(&jpeg[..2], &[0xff, 0xd8], "a JPEG"),
            (Err(reason), false) => assert!(reason.contains("disabled"), "{reason}"),
            (other, _) => panic!("enabled {enabled}: {other:?}"),
        }
    }
}

static CLOCK_SET: AtomicBool = AtomicBool::new(false);

fn test_clock() -> crate::health::ClockSync {
    if CLOCK_SET.load(std::sync::atomic::Ordering::SeqCst) {
        crate::health::ClockSync::Synced {
            est_error_us: 100,
            max_error_us: 1000,
        }
    } else {
        crate::health::ClockSync::Unsynced {
            est_error_us: 0,
            max_error_us: 16_000_000,
        }
    }
}

/// Frames before the clock is set are detected (the watchdog is fed) but
/// nothing is written with their time; from the first synchronised
/// reading on, every frame is.
#[test]
fn nothing_is_written_before_the_clock_is_set() {
    let mut script = Script::new(false, 32, 16, vec![(64, 1024)]);
    script.events = (0..5).map(frame_event).collect();
    let shared = Arc::new(Mutex::new(script));
    let mut src = fake_camera(&shared);
    let (m, mut det) = detector();
    let lines = Lines::default();
    let effects = Effects::new(Box::new(lines.clone()), "memory", m);
    let mut frames = FrameLoop::new(&mut src, &mut det, effects);
    frames.clock =
        crate::clock_gate::ClockGate::new(crate::clock_gate::ClockPolicy::Synced, test_clock);
    frames.max_frames = Some(2);
    let summary = frames.run(&AtomicBool::new(false)).expect("run");
    assert_eq!((summary.processed, summary.unclocked), (2, 2));
    assert!(lines.json().is_empty(), "{:?}", lines.json());
    CLOCK_SET.store(true, std::sync::atomic::Ordering::SeqCst);
    frames.max_frames = Some(5);
    let summary = frames.run(&AtomicBool::new(false)).expect("run");
    frames.finish(frame_loop::STOPPED).expect("finish");
    assert_eq!((summary.processed, summary.unclocked), (5, 2));
    let seqs: Vec<u64> = lines
        .json()
        .iter()
        .map(|r| r["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [2, 3, 4]);
}
