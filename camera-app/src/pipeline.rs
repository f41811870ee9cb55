//! Source → detector → (tracker → analytics) → JSON lines.
//!
//! One loop, one thread: take a frame, decode it if compressed, detect,
//! hand the detections on. Without an analytics configuration each frame's
//! detections are written; with one, the tracker and the analytics engine
//! turn them into bins and events. A broken frame is skipped and counted,
//! never fatal; a source error (a vanished camera) is logged and retried
//! with backoff.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

use crate::capture::files::{FileSource, decode_mjpeg};
use crate::capture::synthetic::SyntheticSource;
use crate::capture::v4l2::V4l2Source;
use crate::capture::{Frame, FrameSource, PixelFormat, SourceError, SourceStats};
use crate::config::{Config, SourceConfig};
use crate::config_store::ConfigStore;
use crate::detect::{Detection, Detector};
use crate::health::{SystemProbe, TamperDetector, TamperKind};
use crate::link::{
    Link, LinkHandle, ReferenceState, ShelfReferenceReply, ShelfReferenceRequest, remote_config,
};
use crate::model::{self, DetectorOptions, Manifest, ModelError};
use crate::outbox::{Outbox, OutboxError};
use crate::preprocess::Colorimetry;
use crate::reference_store::ReferenceStore;
use crate::service::{self, AppCamera, Shared};
use crate::snapshot;
use camera_core::analytics::engine::{Engine, EngineSettings};
use camera_core::analytics::report::Record;
use camera_core::config::{AnalyticsConfig, Rejected};
use camera_core::geom::Point;
use camera_core::shelf::compare::{ReferenceComparator, ShelfError, ShelfReference};
use camera_core::shelf::layout::Shelf;
use camera_core::shelf::monitor::{
    FrameFacts, ReferenceOutcome, RequestError, ShelfMonitor, ShelfOutput,
};
use camera_core::shelf::state::Stock;
use camera_core::track::appearance::{self, Appearance};
use camera_core::track::{TrackId, Tracker, TrackerConfig};

/// Errors that stop the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("camera.board: {0}")]
    Board(String),
    #[error("frame source: {0}")]
    Source(#[source] SourceError),
    #[error("cannot read analytics config {path}: {source}")]
    AnalyticsRead {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("analytics config {path}: {rejected}")]
    Analytics { path: String, rejected: Rejected },
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Link(#[from] crate::link::LinkError),
    #[error(transparent)]
    ConfigStore(#[from] crate::config_store::ConfigStoreError),
    #[error(transparent)]
    Tamper(#[from] crate::health::TamperConfigError),
    #[error("demo: {0}")]
    Demo(String),
    #[error("writing results to {path}: {source}")]
    Output {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A detection as written out: class label, score, box in image pixels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectionRecord {
    pub class: String,
    pub score: f32,
    pub box_xyxy: [f32; 4],
}

impl DetectionRecord {
    pub fn new(d: &Detection, manifest: &Manifest) -> Self {
        Self {
            class: manifest.label(d.class_id).into_owned(),
            score: d.score,
            box_xyxy: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
        }
    }
}

/// One frame's results, one JSON line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameRecord {
    pub seq: u64,
    pub timestamp_us: u64,
    pub width: u32,
    pub height: u32,
    pub detections: Vec<DetectionRecord>,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// Frames detected and written.
    pub processed: u64,
    /// Frames whose compressed data could not be decoded.
    pub corrupt: u64,
    /// Frames the detector failed on.
    pub failed: u64,
    /// Errors from the source (each followed by a retry).
    pub source_errors: u64,
    /// The source's own counters (frames it skipped, reopens).
    pub source: SourceStats,
}

/// Open the configured source. Formats are checked here, not mid-stream.
pub fn open_source(cfg: &SourceConfig) -> Result<Box<dyn FrameSource>, SourceError> {
    Ok(match cfg {
        SourceConfig::V4l2(c) => Box::new(V4l2Source::open(c.clone())?),
        SourceConfig::Files(c) => Box::new(FileSource::open(c.clone())?),
        SourceConfig::Synthetic(c) => Box::new(SyntheticSource::open(c.clone())?),
    })
}

/// The backend the config asks for: the board's NPU when it has one and
/// `detector.backend` allows it, else the CPU.
pub fn choose_backend(cfg: &Config) -> Result<model::Backend, ModelError> {
    use crate::config::DetectorBackend;
    let d = &cfg.detector;
    let board = cfg.board_profile().map_err(|e| ModelError::Manifest {
        path: "camera.board".into(),
        reason: e.to_string(),
    })?;
    let npu = |board: boards::Profile| {
        model::Backend::Rknn(Box::new(model::NpuSetup {
            board,
            library: d.npu_runtime.clone(),
            api: None,
            model: None,
        }))
    };
    Ok(match (d.backend, board) {
        (DetectorBackend::Cpu, _) | (DetectorBackend::Auto, None) => model::Backend::Cpu,
        (DetectorBackend::Auto, Some(b))
            if b.npu.api == boards::NpuApi::None || !cfg!(feature = "rknn") =>
        {
            model::Backend::Cpu
        }
        (DetectorBackend::Auto | DetectorBackend::Rknn, Some(b)) => npu(b),
        (DetectorBackend::Rknn, None) => {
            return Err(ModelError::Manifest {
                path: "detector.backend".into(),
                reason: "rknn needs camera.board".into(),
            });
        }
    })
}

/// Build the detector the config names, on the backend it chooses.
pub fn build_detector(cfg: &Config) -> Result<(Manifest, Detector), ModelError> {
    let d = &cfg.detector;
    let manifest = Manifest::builtin(&d.model)?;
    let dir = model::models_dir(d.models_dir.as_deref())?;
    let opts = DetectorOptions {
        score_threshold: d.score_threshold,
        nms_iou: d.nms_iou,
        classes: d.classes.clone(),
        threads: d.threads,
        colorimetry: Some(d.colorimetry),
    };
    let detector = model::detector(&manifest, &dir, &choose_backend(cfg)?, &opts)?;
    Ok((manifest, detector))
}

/// Load and validate an analytics configuration file.
pub fn load_analytics(path: &Path) -> Result<AnalyticsConfig, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(|source| PipelineError::AnalyticsRead {
        path: path.display().to_string(),
        source,
    })?;
    AnalyticsConfig::parse(&text).map_err(|rejected| PipelineError::Analytics {
        path: path.display().to_string(),
        rejected,
    })
}

/// Detections → tracks → bins and events; and the shelves watched
/// between shoppers.
#[derive(Debug)]
pub struct PeopleCounter {
    tracker: Tracker,
    engine: Engine,
    settings: EngineSettings,
    records: Vec<Record>,
    appearances: Vec<Option<Appearance>>,
    shelves: Option<ShelfMonitor>,
    shelf_out: Vec<ShelfOutput>,
    /// Reference requests' outcomes, for whoever asked.
    reference_outcomes: Vec<ReferenceOutcome>,
    /// How YUV frames become RGB for the shelves.
    colorimetry: Colorimetry,
    people: Vec<[f32; 4]>,
    feet: Vec<(TrackId, Point)>,
}

/// A shelf monitor for `config`'s shelves, judged against references.
fn shelf_monitor(config: &AnalyticsConfig) -> Option<ShelfMonitor> {
    (!config.shelves.is_empty()).then(|| {
        ShelfMonitor::new(
            config.version,
            config.shelves.clone(),
            config.shelf_check.clone(),
            Box::new(ReferenceComparator::empty(config.version)),
        )
    })
}

/// Where the bin and event sequence numbers continue from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sequences {
    pub next_bin: u64,
    pub next_event: u64,
}

/// Outbox counters holding the next sequence numbers.
const NEXT_BIN_SEQ: &str = "next_bin_seq";
const NEXT_EVENT_SEQ: &str = "next_event_seq";

/// Outbox topics, relative to the camera's topic prefix.
pub const BINS_TOPIC: &str = "bins";
pub const EVENTS_TOPIC: &str = "events";
pub const TAMPER_TOPIC: &str = "tamper";
const NEXT_TAMPER_SEQ: &str = "next_tamper_seq";

/// A tamper condition raised or cleared, as published on `tamper`.
#[derive(Debug, Serialize)]
struct TamperRecord<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    camera: &'a str,
    seq: u64,
    time_us: u64,
    tamper: TamperKind,
    raised: bool,
}

/// The sequence numbers stored in an outbox.
pub fn stored_sequences(outbox: &Outbox) -> Result<Sequences, OutboxError> {
    Ok(Sequences {
        next_bin: outbox.counter(NEXT_BIN_SEQ)?,
        next_event: outbox.counter(NEXT_EVENT_SEQ)?,
    })
}

/// Store a record in the outbox with the sequence number after it, in one
/// transaction: after a restart numbering continues, never repeats.
pub fn store_record(outbox: &mut Outbox, record: &Record) -> Result<u64, OutboxError> {
    let (topic, counter, seq, t_us) = match record {
        Record::Bin(b) => (BINS_TOPIC, NEXT_BIN_SEQ, b.seq, b.end_us),
        Record::Event(e) => (EVENTS_TOPIC, NEXT_EVENT_SEQ, e.seq, e.time_us),
    };
    // Serialising our own types into memory cannot fail.
    let payload = serde_json::to_vec(record).unwrap_or_default();
    outbox.push_counted(topic, &payload, t_us, Some((counter, seq + 1)))
}

impl PeopleCounter {
    pub fn new(
        config: &AnalyticsConfig,
        tracker: &TrackerConfig,
        camera_id: &str,
        manifest: &Manifest,
    ) -> Self {
        Self::continuing(config, tracker, camera_id, manifest, Sequences::default())
    }

    /// As [`new`](Self::new), numbering bins and events from `seqs`.
    pub fn continuing(
        config: &AnalyticsConfig,
        tracker: &TrackerConfig,
        camera_id: &str,
        manifest: &Manifest,
        seqs: Sequences,
    ) -> Self {
        let tracker = tracker.clone();
        let settings = EngineSettings {
            camera_id: camera_id.into(),
            labels: manifest
                .labels
                .iter()
                .map(|l| Arc::from(l.as_str()))
                .collect(),
            forget_s: tracker.lost_timeout_s + 1.5,
            first_bin_seq: seqs.next_bin,
            first_event_seq: seqs.next_event,
            ..EngineSettings::default()
        };
        Self {
            tracker: Tracker::new(tracker),
            engine: Engine::new(config, settings.clone()),
            settings,
            records: Vec::new(),
            appearances: Vec::new(),
            shelves: shelf_monitor(config),
            shelf_out: Vec::new(),
            reference_outcomes: Vec::new(),
            colorimetry: Colorimetry::Bt601Limited,
            people: Vec::new(),
            feet: Vec::new(),
        }
    }

    /// How YUV frames are turned into RGB for the shelves (the detector's
    /// setting).
    pub fn with_colorimetry(mut self, colorimetry: Colorimetry) -> Self {
        self.colorimetry = colorimetry;
        self
    }

    /// One frame and its detections; returns the bins and events they
    /// produced.
    pub fn frame(&mut self, frame: &Frame, dets: &[Detection]) -> &[Record] {
        self.frame_checked(frame, dets, false)
    }

    /// As [`frame`](Self::frame); `tampered`: a tamper condition is raised,
    /// so the shelves are not judged.
    pub fn frame_checked(
        &mut self,
        frame: &Frame,
        dets: &[Detection],
        tampered: bool,
    ) -> &[Record] {
        self.records.clear();
        self.appearances.clear();
        self.appearances
            .extend(dets.iter().map(|d| appearance::describe(frame, &d.bbox)));
        let t_us = frame.timestamp.as_micros();
        let tracks =
            self.tracker
                .update_with_appearance(dets, &self.appearances, t_us as f64 / 1e6);
        self.engine
            .update(tracks, frame.width, frame.height, t_us, &mut self.records);
        if let Some(monitor) = &mut self.shelves {
            let (w, h) = (frame.width.max(1) as f32, frame.height.max(1) as f32);
            self.people.clear();
            self.people.extend(
                tracks
                    .iter()
                    .map(|t| [t.bbox.x1 / w, t.bbox.y1 / h, t.bbox.x2 / w, t.bbox.y2 / h]),
            );
            self.feet.clear();
            self.feet.extend(
                tracks
                    .iter()
                    .map(|t| (t.id, self.engine.anchor(t, frame.width, frame.height))),
            );
            let facts = FrameFacts {
                now_us: t_us as i64,
                people: &self.people,
                feet: &self.feet,
                tampered,
                luma: camera_core::frame::mean_luma(frame).map(|l| l as f32),
            };
            let colorimetry = self.colorimetry;
            let mut pixels = || match snapshot::frame_rgb(frame, colorimetry) {
                Ok(img) => Some(img),
                Err(e) => {
                    tracing::warn!(error = %e, "frame skipped for the shelves");
                    None
                }
            };
            self.shelf_out.clear();
            monitor.frame(&facts, &mut pixels, &mut self.shelf_out);
            for o in &self.shelf_out {
                self.engine.shelf(o, t_us, &mut self.records);
                if let ShelfOutput::Reference(r) = o {
                    if let ReferenceOutcome::Taken { shelves, .. } = r {
                        for name in shelves {
                            if let Some(i) = monitor.shelves().iter().position(|s| &s.name == name)
                            {
                                self.engine.shelf_reset(i);
                            }
                        }
                    }
                    self.reference_outcomes.push(r.clone());
                }
            }
        }
        &self.records
    }

    /// Ask for a new reference of one shelf (all with `None`), taken over
    /// the next clean frames; the outcome comes through
    /// [`reference_outcomes`](Self::reference_outcomes).
    pub fn request_shelf_reference(
        &mut self,
        shelf: Option<&str>,
        now_us: i64,
    ) -> Result<Vec<String>, RequestError> {
        self.shelves
            .as_mut()
            .ok_or(RequestError::NoShelves)?
            .request_reference(shelf, now_us)
    }

    /// Outcomes of reference requests since the last call.
    pub fn reference_outcomes(&mut self) -> Vec<ReferenceOutcome> {
        std::mem::take(&mut self.reference_outcomes)
    }

    /// The shelf references in force (to be stored).
    pub fn shelf_references(&self) -> &[ShelfReference] {
        self.shelves.as_ref().map_or(&[], |m| m.references())
    }

    /// Hand over stored references; those refused come back with the
    /// reason (another configuration version, an unknown shelf).
    pub fn restore_shelf_references(&mut self, refs: Vec<ShelfReference>) -> Vec<ShelfError> {
        match &mut self.shelves {
            Some(m) => m.restore(refs),
            None => refs
                .into_iter()
                .map(|r| ShelfError::NoReference(format!("{} (no shelves configured)", r.name())))
                .collect(),
        }
    }

    /// Configured shelves with no reference in force (for the health
    /// report); `None` when no shelves are configured.
    pub fn shelves_without_reference(&self) -> Option<Vec<&str>> {
        self.shelves.as_ref().map(ShelfMonitor::without_reference)
    }

    /// The shelves and their facing states, for the snapshot overlay.
    pub fn shelf_states(&self) -> Vec<(Shelf, Vec<Option<Stock>>)> {
        self.shelves.as_ref().map_or_else(Vec::new, |m| {
            m.shelves()
                .iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), m.states(i)))
                .collect()
        })
    }

    /// Switch to a new analytics configuration between two frames: the
    /// current bin and open visits are closed under the old version (their
    /// records are returned), the tracker keeps its tracks, and numbering
    /// continues.
    pub fn reconfigure(&mut self, config: &AnalyticsConfig) -> &[Record] {
        self.records.clear();
        self.engine.finish(&mut self.records);
        let (next_bin, next_event) = self.engine.next_sequences();
        let settings = EngineSettings {
            first_bin_seq: next_bin,
            first_event_seq: next_event,
            ..self.settings.clone()
        };
        self.engine = Engine::new(config, settings);
        // A reference stays valid for a shelf whose geometry is unchanged
        // (an installer moved a door line, not the shelf).
        let old = self.shelves.take();
        self.shelves = shelf_monitor(config);
        if let (Some(old), Some(new)) = (old, &mut self.shelves) {
            let carried: Vec<ShelfReference> = old
                .references()
                .iter()
                .filter(|r| {
                    let same =
                        |m: &ShelfMonitor| m.shelves().iter().find(|s| s.name == r.name()).cloned();
                    same(&old).is_some() && same(&old) == same(new)
                })
                .map(|r| r.clone().carried_to(config.version))
                .collect();
            for e in new.restore(carried) {
                tracing::warn!(error = %e, "shelf reference not carried over");
            }
        }
        &self.records
    }

    /// People tracked now.
    pub fn active_tracks(&self) -> usize {
        self.tracker.live_tracks()
    }

    /// End of input: the last bin and open visits.
    pub fn finish(&mut self) -> &[Record] {
        self.records.clear();
        self.engine.finish(&mut self.records);
        &self.records
    }
}

/// What a run is asked to do besides its configuration (command-line
/// actions, not settings).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Take a shelf reference at the first frame (`--shelf-reference`).
    pub shelf_reference: Option<ShelfReferenceRequest>,
}

impl RunOptions {
    /// `--shelf-reference SHELF|all`: one shelf by name, or every shelf.
    pub fn shelf_reference_arg(arg: &str) -> ShelfReferenceRequest {
        ShelfReferenceRequest {
            id: None,
            shelf: (arg != "all").then(|| arg.to_string()),
        }
    }
}

/// Run the configured pipeline to the end of the source (or
/// `output.max_frames`), writing JSON lines to the configured output:
/// bins and events when an analytics configuration is given, detections
/// otherwise.
///
/// `stop` ends the run between two frames (SIGTERM): the last bin is closed
/// and stored, and the link gets `drain_s` to deliver what waits.
pub fn run(cfg: &Config, stop: &AtomicBool) -> Result<RunSummary, PipelineError> {
    run_with(cfg, &RunOptions::default(), stop)
}

/// As [`run`], with the actions `opts` asks for.
pub fn run_with(
    cfg: &Config,
    opts: &RunOptions,
    stop: &AtomicBool,
) -> Result<RunSummary, PipelineError> {
    let analytics = cfg.analytics.as_deref().map(load_analytics).transpose()?;
    let (manifest, mut detector) = build_detector(cfg)?;
    let board = cfg
        .board_profile()
        .map_err(|e| PipelineError::Board(e.to_string()))?;
    // On a board, the built-in synthetic placeholder gives way to its camera.
    let source_cfg = match &board {
        Some(p) => crate::hw::board::source_with_board(&cfg.source, p)
            .map_err(|e| PipelineError::Board(e.to_string()))?,
        None => cfg.source.clone(),
    };
    let mut source = open_source(&source_cfg).map_err(PipelineError::Source)?;
    let hw = board.as_ref().and_then(BoardHw::start);
    tracing::info!(
        source = %source.describe(),
        model = %manifest.name,
        backend = detector.backend_name(),
        analytics = analytics.is_some(),
        "pipeline started"
    );
    let out_path = cfg.output.path.as_deref().filter(|p| *p != Path::new("-"));
    let out_name = out_path.map_or("stdout".to_string(), |p| p.display().to_string());
    let out_err = |source| PipelineError::Output {
        path: out_name.clone(),
        source,
    };
    let mut out: Box<dyn Write> = match out_path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(out_err)?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let summary = match &analytics {
        Some(a) => run_counting(
            cfg,
            a,
            &manifest,
            Running {
                detector: &mut detector,
                source: source.as_mut(),
                out: &mut out,
                stop,
                hw: hw.as_ref(),
                opts,
            },
        )?,
        None => {
            if opts.shelf_reference.is_some() {
                tracing::error!(
                    "no shelf reference taken: shelves come with an analytics configuration \
                     (--analytics), and there is none"
                );
            }
            let mut record = FrameRecord {
                seq: 0,
                timestamp_us: 0,
                width: 0,
                height: 0,
                detections: Vec::new(),
            };
            run_loop(
                source.as_mut(),
                &mut detector,
                cfg.output.max_frames,
                stop,
                |frame, dets, _| {
                    if let Some(hw) = &hw {
                        hw.frame(frame, None, true);
                    }
                    record.seq = frame.seq;
                    record.timestamp_us = frame.timestamp.as_micros();
                    record.width = frame.width;
                    record.height = frame.height;
                    record.detections.clear();
                    record
                        .detections
                        .extend(dets.iter().map(|d| DetectionRecord::new(d, &manifest)));
                    write_line(&mut out, &record)
                },
                |_| {},
            )?
        }
    };
    out.flush().map_err(out_err)?;
    tracing::info!(?summary, "pipeline finished");
    Ok(summary)
}

/// What a counting run reads from and writes to.
struct Running<'a> {
    detector: &'a mut Detector,
    source: &'a mut dyn FrameSource,
    out: &'a mut Box<dyn Write>,
    stop: &'a AtomicBool,
    hw: Option<&'a BoardHw>,
    opts: &'a RunOptions,
}

/// The board's IR-cut filter and status LED, on their own thread (the LED
/// blinks faster than frames come); the frame loop feeds it the app's state
/// and, on boards without a light sensor, the image brightness.
struct BoardHw {
    shared: Arc<crate::hw::HwShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BoardHw {
    /// Counting works without them: a line that cannot be opened is logged.
    fn start(profile: &boards::Profile) -> Option<Self> {
        match crate::hw::start(profile) {
            Ok((shared, thread)) => Some(Self {
                shared,
                thread: Some(thread),
            }),
            Err(e) => {
                tracing::error!(board = %profile.name, error = %e, "camera hardware unavailable");
                None
            }
        }
    }

    fn frame(&self, frame: &Frame, tamper: Option<&crate::health::TamperStatus>, online: bool) {
        use crate::hw::{Status, light};
        self.shared.set_status(if online {
            Status::Running
        } else {
            Status::NoLink
        });
        if self.shared.wants_image_luma() {
            let luma = tamper
                .and_then(light::luma_from_tamper)
                .or_else(|| camera_core::frame::mean_luma(frame));
            self.shared.set_image_luma(luma);
        }
    }
}

impl Drop for BoardHw {
    fn drop(&mut self) {
        self.shared.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Detections → bins and events, each stored in the outbox (when there is
/// one) before it is written out; with a link, the outbox drains to the
/// broker and installers can change the analytics configuration.
fn run_counting(
    cfg: &Config,
    file_config: &AnalyticsConfig,
    manifest: &Manifest,
    io: Running<'_>,
) -> Result<RunSummary, PipelineError> {
    let Running {
        detector,
        source,
        out,
        stop,
        hw,
        opts,
    } = io;
    let outbox = cfg
        .output
        .outbox
        .as_deref()
        .map(|p| Outbox::open(p, cfg.output.outbox_limits()))
        .transpose()?
        .map(|o| Arc::new(Mutex::new(o)));
    let seqs = match &outbox {
        Some(o) => stored_sequences(&lock_outbox(o))?,
        None => Sequences::default(),
    };
    let shared = Arc::new(Shared::default());
    let (configs_tx, configs) = std::sync::mpsc::channel();
    let mut analytics = file_config.clone();
    let mut link = None;
    // The remote configuration and the shelf references live beside the
    // outbox, on the data partition.
    let data_dir = cfg.output.outbox.as_deref().map(data_dir);
    if let (Some(link_cfg), Some(outbox), Some(dir)) = (&cfg.link, &outbox, data_dir) {
        let store = ConfigStore::open(dir)?;
        let text = cfg
            .analytics
            .as_deref()
            .map(std::fs::read_to_string)
            .transpose()
            .map_err(|source| PipelineError::AnalyticsRead {
                path: cfg
                    .analytics
                    .as_deref()
                    .unwrap_or(Path::new(""))
                    .display()
                    .to_string(),
                source,
            })?
            .unwrap_or_default();
        let mut running = (
            analytics.version,
            remote_config::toml_to_json(&text).map_err(|reason| PipelineError::Analytics {
                path: cfg
                    .analytics
                    .as_deref()
                    .unwrap_or(Path::new(""))
                    .display()
                    .to_string(),
                rejected: Rejected {
                    problems: vec![reason],
                },
            })?,
        );
        // A configuration an installer sent earlier wins over the file
        // unless the file is newer (a new image, a local edit).
        match store.load() {
            Ok(Some(stored)) if stored.version > analytics.version => {
                match remote_config::decide(0, stored.body.as_bytes(), usize::MAX) {
                    Ok(d) => {
                        tracing::info!(
                            version = d.version,
                            "using the configuration installed over MQTT"
                        );
                        analytics = d.config;
                        running = (d.version, d.body);
                    }
                    Err(r) => {
                        tracing::error!(problems = ?r.problems, path = %store.path().display(), "ignoring a stored configuration");
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the stored configuration"),
        }
        shared
            .config_version
            .store(analytics.version, Ordering::Relaxed);
        let camera = AppCamera {
            shared: shared.clone(),
            outbox: outbox.clone(),
            store,
            configs: configs_tx,
            probe: SystemProbe::new("/"),
            started_us: service::now_us(),
            model: manifest.name.clone(),
            model_sha256: Some(manifest.sha256.clone()),
            snapshots_enabled: cfg.snapshot.enabled,
        };
        let handle = Link {
            config: link_cfg.clone(),
            camera_id: cfg.camera.id.clone(),
            outbox: outbox.clone(),
            running,
        }
        .spawn(Box::new(camera))?;
        link = Some(handle);
    }
    let mut counter =
        PeopleCounter::continuing(&analytics, &cfg.tracker, &cfg.camera.id, manifest, seqs)
            .with_colorimetry(cfg.detector.colorimetry);
    let mut shelf_refs = ShelfReferences {
        // Without an outbox there is no data partition: references live
        // in memory only.
        store: data_dir.map(ReferenceStore::new),
        replies: link.as_ref().map(LinkHandle::shelf_replies),
        pending: None,
    };
    shelf_refs.restore(&mut counter);
    shared.metrics().shelves_without_reference = without_reference(&counter);
    let mut first_request = opts.shelf_reference.clone();
    // Durable first, then written out: a record on stdout is one the
    // camera will not lose.
    let emit = |out: &mut Box<dyn Write>, r: &Record| -> std::io::Result<()> {
        if let Some(o) = &outbox {
            store_record(&mut lock_outbox(o), r).map_err(std::io::Error::other)?;
        }
        write_line(out, r)
    };
    // Validated with the config.
    let mut tamper = TamperDetector::new(cfg.tamper.clone())?;
    let mut tamper_events = Vec::new();
    let mut snapshot_opts = cfg.snapshot.clone();
    snapshot_opts.colorimetry = cfg.detector.colorimetry;
    let mut next_tamper_seq = match &outbox {
        Some(o) => lock_outbox(o).counter(NEXT_TAMPER_SEQ)?,
        None => 0,
    };
    let snapshots = link.as_ref().map(LinkHandle::snapshots);
    let summary = run_loop(
        source,
        detector,
        cfg.output.max_frames,
        stop,
        |frame, dets, info| {
            let mut emitted = false;
            let t_us = frame.timestamp.as_micros();
            // Accepted over MQTT since the last frame: in force from this one.
            let mut reconfigured = false;
            while let Ok(desired) = configs.try_recv() {
                tracing::info!(
                    version = desired.version,
                    "new analytics configuration in force"
                );
                for r in counter.reconfigure(&desired.config) {
                    emit(out, r)?;
                    emitted = true;
                }
                analytics = desired.config;
                // An installer who changes the lines has looked at the view:
                // it becomes the tamper reference.
                tamper.relearn(t_us, &mut tamper_events);
                reconfigured = true;
            }
            if reconfigured {
                shelf_refs.reconfigured(&counter, analytics.version);
            }
            // Asked since the last frame (the command line's at the first).
            for request in first_request
                .take()
                .into_iter()
                .chain(shared.take_shelf_requests())
            {
                shelf_refs.request(&mut counter, request, t_us as i64, analytics.version);
            }
            // Before the counter: a tampered view is no view of the shelves.
            if let Err(e) = tamper.observe(frame, t_us, &mut tamper_events) {
                tracing::debug!(error = %e, "tamper check skipped");
            }
            let tamper_status = tamper.status();
            let tampered = tamper_status.covered || tamper_status.defocused || tamper_status.moved;
            for r in counter.frame_checked(frame, dets, tampered) {
                emit(out, r)?;
                emitted = true;
            }
            let references_changed = shelf_refs.outcomes(&mut counter, analytics.version);
            if let Some(hw) = hw {
                let online = link
                    .as_ref()
                    .is_none_or(|l| l.stats().connected.load(Ordering::Relaxed));
                hw.frame(frame, Some(&tamper_status), online);
            }
            for ev in tamper_events.drain(..) {
                tracing::warn!(kind = ?ev.kind, raised = ev.raised, "tamper");
                let record = TamperRecord {
                    kind: "tamper",
                    camera: &cfg.camera.id,
                    seq: next_tamper_seq,
                    time_us: ev.time_us,
                    tamper: ev.kind,
                    raised: ev.raised,
                };
                if let Some(o) = &outbox {
                    let payload = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
                    let counter = Some((NEXT_TAMPER_SEQ, next_tamper_seq + 1));
                    lock_outbox(o)
                        .push_counted(TAMPER_TOPIC, &payload, ev.time_us, counter)
                        .map_err(std::io::Error::other)?;
                    emitted = true;
                }
                write_line(out, &record)?;
                next_tamper_seq += 1;
            }
            if let Some(tx) = &snapshots
                && shared.snapshot_wanted.swap(false, Ordering::Relaxed)
            {
                let people: Vec<_> = dets.iter().map(|d| d.bbox).collect();
                let shelves = counter.shelf_states();
                let shot = snapshot::render_with_shelves(
                    frame,
                    Some(&analytics),
                    &people,
                    &shelves,
                    &snapshot_opts,
                )
                .map_err(|e| {
                    tracing::warn!(error = %e, "cannot take a snapshot");
                    e.to_string()
                });
                if tx.try_send(shot).is_err() {
                    tracing::warn!("snapshot dropped: the link is busy");
                }
            }
            let mut m = shared.metrics();
            m.tracks_active = counter.active_tracks() as u32;
            m.inference.record(info.inference);
            m.tamper = tamper_status;
            if reconfigured || references_changed {
                m.shelves_without_reference = without_reference(&counter);
            }
            drop(m);
            if let (true, Some(l)) = (emitted, &link) {
                l.wake();
            }
            Ok(())
        },
        |s| shared.progress(s),
    )?;
    let out_err = |source| PipelineError::Output {
        path: "output".into(),
        source,
    };
    for r in counter.finish() {
        emit(out, r).map_err(out_err)?;
    }
    shelf_refs.abandon(
        "the camera stopped before the reference was taken; request it again",
        analytics.version,
    );
    if let (Some(l), Some(o)) = (link, &outbox) {
        l.wake();
        drain(o, cfg.link.as_ref().map_or(0, |c| c.drain_s));
        l.stop();
    }
    Ok(summary)
}

/// The shelves without a reference, as the health report names them.
fn without_reference(counter: &PeopleCounter) -> Option<Vec<String>> {
    counter
        .shelves_without_reference()
        .map(|names| names.into_iter().map(str::to_string).collect())
}

/// Shelf reference requests in the frame loop: from the link and the
/// command line to the counter; their results back to whoever asked (the
/// link, and the log), and references taken to the store.
struct ShelfReferences {
    /// `shelf-references.bin` beside the outbox; none without an outbox.
    store: Option<ReferenceStore>,
    /// Results to publish on `shelves/reference/result`.
    replies: Option<tokio::sync::mpsc::Sender<ShelfReferenceReply>>,
    /// The id of the request in progress (`Some(None)`: one without an id).
    pending: Option<Option<String>>,
}

impl ShelfReferences {
    /// At start: the stored references of the shelves as configured. A
    /// reference or a file that cannot be used is logged, never fatal.
    fn restore(&self, counter: &mut PeopleCounter) {
        let Some(store) = &self.store else { return };
        let refs = match store.load() {
            Ok(refs) => refs,
            Err(e) => {
                tracing::error!(error = %e, "ignoring the stored shelf references");
                return;
            }
        };
        if refs.is_empty() {
            return;
        }
        let stored = refs.len();
        let refused = counter.restore_shelf_references(refs);
        for e in &refused {
            tracing::warn!(error = %e, path = %store.path().display(), "stored shelf reference not used");
        }
        tracing::info!(
            restored = stored - refused.len(),
            refused = refused.len(),
            "shelf references restored"
        );
    }

    /// Hand a request to the counter and say whether it is accepted. A new
    /// request replaces the one in progress, which is reported failed.
    fn request(
        &mut self,
        counter: &mut PeopleCounter,
        request: ShelfReferenceRequest,
        now_us: i64,
        version: u64,
    ) {
        match counter.request_shelf_reference(request.shelf.as_deref(), now_us) {
            Ok(shelves) => {
                self.abandon("replaced by a newer request", version);
                self.pending = Some(request.id.clone());
                self.reply(ShelfReferenceReply::new(
                    request.id,
                    ReferenceState::Accepted,
                    shelves,
                    None,
                    version,
                ));
            }
            Err(e) => {
                self.reply(ShelfReferenceReply::failed(
                    request.id,
                    e.to_string(),
                    version,
                ));
            }
        }
    }

    /// After a frame: report what became of the request in progress, and
    /// store references taken. True when references changed.
    fn outcomes(&mut self, counter: &mut PeopleCounter, version: u64) -> bool {
        let mut taken = false;
        for outcome in counter.reference_outcomes() {
            let reply = match outcome {
                ReferenceOutcome::Waiting { shelves, reason } => ShelfReferenceReply::new(
                    self.pending.clone().flatten(),
                    ReferenceState::Waiting,
                    shelves,
                    Some(reason),
                    version,
                ),
                ReferenceOutcome::Taken {
                    shelves,
                    version: taken_for,
                } => {
                    taken = true;
                    self.save(counter);
                    ShelfReferenceReply::new(
                        self.pending.take().flatten(),
                        ReferenceState::Taken,
                        shelves,
                        None,
                        taken_for,
                    )
                }
                ReferenceOutcome::Failed { shelves, reason } => ShelfReferenceReply::new(
                    self.pending.take().flatten(),
                    ReferenceState::Failed,
                    shelves,
                    Some(reason),
                    version,
                ),
            };
            self.reply(reply);
        }
        taken
    }

    /// A new analytics configuration is in force: the counter carried the
    /// references of unchanged shelves over to it; a capture in progress
    /// ended with the old configuration.
    fn reconfigured(&mut self, counter: &PeopleCounter, version: u64) {
        self.abandon(
            &format!(
                "the analytics configuration changed to version {version} before the \
                 reference was taken; request it again"
            ),
            version,
        );
        self.save(counter);
    }

    /// The request in progress will not finish: say so.
    fn abandon(&mut self, reason: &str, version: u64) {
        if let Some(id) = self.pending.take() {
            self.reply(ShelfReferenceReply::failed(id, reason.into(), version));
        }
    }

    fn save(&self, counter: &PeopleCounter) {
        let Some(store) = &self.store else { return };
        match store.save(counter.shelf_references()) {
            Ok(()) => tracing::debug!(
                path = %store.path().display(),
                references = counter.shelf_references().len(),
                "shelf references stored"
            ),
            Err(e) => tracing::error!(error = %e, "cannot store the shelf references"),
        }
    }

    /// Logged, and published when there is a link.
    fn reply(&self, reply: ShelfReferenceReply) {
        if reply.ok {
            tracing::info!(id = ?reply.id, state = ?reply.state, shelves = ?reply.shelves, reason = ?reply.reason, "shelf reference");
        } else {
            tracing::warn!(id = ?reply.id, shelves = ?reply.shelves, reason = ?reply.reason, "shelf reference failed");
        }
        if let Some(tx) = &self.replies
            && tx.try_send(reply).is_err()
        {
            tracing::warn!("shelf reference result dropped: the link is busy");
        }
    }
}

/// The directory of the outbox file: `outbox.redb` alone has an empty
/// parent, which is the working directory.
fn data_dir(outbox: &Path) -> &Path {
    outbox
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// At the end of a finite input, give the link a while to deliver what is
/// waiting (it stays in the outbox for the next run otherwise).
fn drain(outbox: &Mutex<Outbox>, seconds: u64) {
    let deadline = Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        let depth = lock_outbox(outbox).stats().map_or(0, |s| s.depth);
        if depth == 0 || Instant::now() >= deadline {
            if depth > 0 {
                tracing::info!(depth, "records left in the outbox for the next run");
            }
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn lock_outbox(o: &Mutex<Outbox>) -> std::sync::MutexGuard<'_, Outbox> {
    o.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One JSON line.
fn write_line<T: Serialize>(out: &mut dyn Write, v: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, v).map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}

/// What the loop knows about a frame besides its detections.
#[derive(Debug, Clone, Copy)]
pub struct FrameInfo {
    /// Detection time: preprocessing, inference and decoding.
    pub inference: std::time::Duration,
    /// Counters so far, this frame included.
    pub summary: RunSummary,
}

/// The loop itself, with the output injected.
pub fn run_loop(
    source: &mut dyn FrameSource,
    detector: &mut Detector,
    max_frames: Option<u64>,
    stop: &AtomicBool,
    mut emit: impl FnMut(&Frame, &[Detection], &FrameInfo) -> std::io::Result<()>,
    mut progress: impl FnMut(&RunSummary),
) -> Result<RunSummary, PipelineError> {
    let mut s = RunSummary::default();
    let emit_err = |source| PipelineError::Output {
        path: "output".into(),
        source,
    };
    while max_frames.is_none_or(|m| s.processed < m) && !stop.load(Ordering::Relaxed) {
        // Counters reach health even while every frame fails.
        s.source = source.stats();
        progress(&s);
        let frame = match source.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) if e.is_fatal() => return Err(PipelineError::Source(e)),
            Err(e) => {
                // The source has waited out its backoff already.
                s.source_errors += 1;
                tracing::warn!(error = %e, "source error; retrying");
                continue;
            }
        };
        let decoded;
        let frame: &Frame = if frame.format == PixelFormat::Mjpeg {
            match decode_mjpeg(&frame) {
                Ok(f) => {
                    decoded = f;
                    &decoded
                }
                Err(e) => {
                    s.corrupt += 1;
                    tracing::warn!(error = %e, "skipping corrupt frame");
                    continue;
                }
            }
        } else {
            &frame
        };
        let t = Instant::now();
        match detector.detect(frame) {
            Ok(dets) => {
                s.processed += 1;
                let info = FrameInfo {
                    inference: t.elapsed(),
                    summary: s,
                };
                emit(frame, dets, &info).map_err(emit_err)?;
                tracing::debug!(seq = frame.seq, people = dets.len(), took = ?t.elapsed(), "frame");
            }
            Err(e) => {
                s.failed += 1;
                tracing::warn!(error = %e, "skipping frame");
            }
        }
    }
    s.source = source.stats();
    progress(&s);
    Ok(s)
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::capture::v4l2::fake::{Event, FakeOpener, Script};
    use crate::capture::v4l2::{V4l2Config, V4l2Error};
    use crate::detect::tensor::DType;
    use crate::detect::tensor::{Layout, Tensor};
    use crate::detect::{InferError, InferenceBackend, TensorSpec};

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
        let d =
            model::detector_with_backend(&m, Box::new(OnePerson::new()), &opts).expect("detector");
        (m, d)
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

    /// The camera is unplugged mid-stream and comes back: the pipeline
    /// keeps going, counts the errors, and loses only the frames the
    /// camera never delivered.
    #[test]
    fn pipeline_survives_a_camera_that_vanishes_and_returns() {
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
        // Opening fails once after the unplug.
        let (m, mut det) = detector();
        let mut records = Vec::new();
        let mut once = false;
        let summary = run_loop(
            &mut src,
            &mut det,
            Some(4),
            &AtomicBool::new(false),
            |frame, dets, _| {
                let r = FrameRecord {
                    seq: frame.seq,
                    timestamp_us: frame.timestamp.as_micros(),
                    width: frame.width,
                    height: frame.height,
                    detections: dets.iter().map(|d| DetectionRecord::new(d, &m)).collect(),
                };
                if !once && r.seq == 1 {
                    shared
                        .lock()
                        .expect("lock")
                        .open_errors
                        .push_back(libc::ENOENT);
                    once = true;
                }
                records.push(r);
                Ok(())
            },
            |_| {},
        )
        .expect("run");
        assert_eq!(summary.processed, 4);
        assert_eq!(summary.source_errors, 2, "{summary:?}"); // ENODEV, then ENOENT
        assert_eq!(summary.source.reopens, 1);
        let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3]);
        for r in &records {
            assert_eq!(r.detections.len(), 1);
            assert_eq!(r.detections[0].class, "person");
            // Box centred in the 32x16 frame.
            let b = r.detections[0].box_xyxy;
            assert!(((b[0] + b[2]) / 2.0 - 16.0).abs() < 1.0, "{b:?}");
        }
    }

    #[test]
    fn a_fatal_source_error_stops_the_pipeline() {
        let mut script = Script::new(false, 32, 16, vec![(64, 1024)]);
        script.events = [frame_event(0), Event::Vanish].into();
        let shared = Arc::new(Mutex::new(script));
        let mut src = fake_camera(&shared);
        let (_, mut det) = detector();
        // After the unplug a different camera appears that cannot do YUYV.
        let err = run_loop(
            &mut src,
            &mut det,
            None,
            &AtomicBool::new(false),
            |_, _, _| {
                shared.lock().expect("lock").offer_fourcc = Some(*b"MJPG");
                Ok(())
            },
            |_| {},
        )
        .expect_err("fatal");
        let PipelineError::Source(SourceError::V4l2(e)) = &err else {
            panic!("unexpected {err}")
        };
        assert!(matches!(e, V4l2Error::Unsupported { .. }), "{e}");
        assert!(err.to_string().contains("the driver offers MJPG"), "{err}");
    }
}
