//! The camera state machine: one camera's decisions, from a frame's
//! detections to the records it stores and publishes.
//!
//! Inputs come in through [`Camera::handle`] with time as an argument (a
//! frame carries its timestamp; a configuration or a shelf reference
//! request the time it takes effect); outputs come back as data in
//! [`Outputs`]: records to store before anything else sees them, replies
//! to whoever asked, and what changed that the application should keep on
//! flash. Per frame, in this order:
//!
//! 1. the tamper detector looks at the view (a tampered view is no view
//!    of the shelves, so this comes first);
//! 2. the tracker turns detections (and their appearance) into tracks;
//! 3. the analytics engine turns tracks into bins and events;
//! 4. the shelf monitor judges the shelves nobody is in front of, and
//!    takes the references asked for;
//! 5. tamper changes become records.
//!
//! It allocates nothing per frame in steady state (`tests/alloc.rs`):
//! every per-frame list is kept and reused.

// Functions on the per-frame path stay short enough to read whole
// (clippy.toml: 80 lines).
#![warn(clippy::too_many_lines)]

use std::sync::Arc;

use serde::Serialize;

use crate::analytics::TRACK_CAPACITY;
use crate::analytics::engine::{Engine, EngineSettings};
use crate::analytics::report::Record;
use crate::config::AnalyticsConfig;
use crate::config::remote::{self, ConfigResult, Desired};
use crate::detection::Detection;
use crate::frame::{Frame, mean_luma};
use crate::geom::Point;
use crate::shelf::compare::{ReferenceComparator, ShelfError, ShelfReference};
use crate::shelf::layout::Shelf;
use crate::shelf::monitor::{FrameFacts, ReferenceOutcome, RgbImage, ShelfMonitor, ShelfOutput};
use crate::shelf::request::{ReferenceState, ShelfReferenceReply, ShelfReferenceRequest};
use crate::shelf::state::Stock;
use crate::tamper::{TamperConfig, TamperConfigError, TamperDetector, TamperEvent, TamperStatus};
use crate::track::appearance::{self, Appearance};
use crate::track::{TrackId, Tracker, TrackerConfig};

/// Where sequence numbers continue from (restored from storage), so that
/// records are never numbered twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sequences {
    pub next_bin: u64,
    pub next_event: u64,
    pub next_tamper: u64,
}

/// What does not come from the installer's configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub camera_id: String,
    /// The model's class labels, by class id.
    pub labels: Vec<String>,
    pub tracker: TrackerConfig,
    pub tamper: TamperConfig,
    pub sequences: Sequences,
}

/// One frame and what was detected in it.
pub struct FrameInput<'a> {
    pub frame: &'a Frame,
    pub detections: &'a [Detection],
    /// A packed RGB copy of the frame, asked for only when a shelf is
    /// judged or its reference taken (at most every few seconds); `None`
    /// skips the shelves for this frame.
    pub rgb: &'a mut dyn FnMut() -> Option<RgbImage>,
}

impl std::fmt::Debug for FrameInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameInput")
            .field("frame", &self.frame)
            .field("detections", &self.detections)
            .finish_non_exhaustive()
    }
}

/// Everything that can happen to the camera.
#[derive(Debug)]
pub enum Input<'a> {
    Frame(FrameInput<'a>),
    /// A configuration that passed [`Camera::decide`] and is stored: in
    /// force from the next frame. The current bin and open visits close
    /// under the old version.
    Configure {
        desired: Desired,
        now_us: u64,
    },
    /// A new shelf reference, taken over the next clean frames.
    ShelfReference {
        request: ShelfReferenceRequest,
        now_us: u64,
    },
    /// End of input (the source ended, or the camera stops): the last bin
    /// and open visits close, a reference capture in progress fails with
    /// `reason`.
    Finish {
        reason: &'a str,
    },
}

/// A tamper condition raised or cleared, as published on `tamper`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TamperRecord {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub camera: Arc<str>,
    pub seq: u64,
    pub time_us: u64,
    pub tamper: crate::tamper::TamperKind,
    pub raised: bool,
}

/// A record to store, then publish: one JSON document on its topic.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Record(Record),
    Tamper(TamperRecord),
}

/// The stream a record belongs to: its topic and its own numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Bins,
    Events,
    Tamper,
}

impl Output {
    /// Which stream, its sequence number in it, and its time (µs).
    pub fn position(&self) -> (Stream, u64, u64) {
        match self {
            Self::Record(Record::Bin(b)) => (Stream::Bins, b.seq, b.end_us),
            Self::Record(Record::Event(e)) => (Stream::Events, e.seq, e.time_us),
            Self::Tamper(t) => (Stream::Tamper, t.seq, t.time_us),
        }
    }
}

impl Serialize for Output {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Record(r) => r.serialize(s),
            Self::Tamper(t) => t.serialize(s),
        }
    }
}

/// What one input produced. Reused from call to call.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Bins, events and tamper changes, in order: store each before it is
    /// published or written out.
    pub records: Vec<Output>,
    /// Results of shelf reference requests, for whoever asked.
    pub replies: Vec<ShelfReferenceReply>,
    /// The shelf references in force changed: store
    /// [`Camera::shelf_references`].
    pub references_changed: bool,
    /// A configuration came into force: its result, for whoever sent it.
    pub configured: Option<ConfigResult>,
}

impl Outputs {
    fn clear(&mut self) {
        self.records.clear();
        self.replies.clear();
        self.references_changed = false;
        self.configured = None;
    }
}

/// What the camera reports about itself (health), every frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Status {
    pub config_version: u64,
    pub tracks_active: u32,
    pub tamper: TamperStatus,
}

/// Why a camera could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error(transparent)]
    Tamper(#[from] TamperConfigError),
}

/// One camera's state: tracker, analytics, shelves and tamper detector.
#[derive(Debug)]
pub struct Camera {
    config: AnalyticsConfig,
    engine_settings: EngineSettings,
    tracker: Tracker,
    engine: Engine,
    shelves: Option<ShelfMonitor>,
    tamper: TamperDetector,
    camera_id: Arc<str>,
    next_tamper: u64,
    /// The id of the reference request in progress (`Some(None)`: one
    /// without an id).
    pending_reference: Option<Option<String>>,
    last_frame_us: Option<u64>,
    out: Outputs,
    // Per-frame lists, kept to allocate nothing per frame.
    records: Vec<Record>,
    appearances: Vec<Option<Appearance>>,
    shelf_out: Vec<ShelfOutput>,
    tamper_events: Vec<TamperEvent>,
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

impl Camera {
    pub fn new(config: AnalyticsConfig, settings: Settings) -> Result<Self, CameraError> {
        let camera_id: Arc<str> = Arc::from(settings.camera_id.as_str());
        let engine_settings = EngineSettings {
            camera_id: camera_id.clone(),
            labels: settings
                .labels
                .iter()
                .map(|l| Arc::from(l.as_str()))
                .collect(),
            forget_s: settings.tracker.lost_timeout_s + 1.5,
            first_bin_seq: settings.sequences.next_bin,
            first_event_seq: settings.sequences.next_event,
            ..EngineSettings::default()
        };
        Ok(Self {
            engine: Engine::new(&config, engine_settings.clone()),
            shelves: shelf_monitor(&config),
            tamper: TamperDetector::new(settings.tamper)?,
            tracker: Tracker::new(settings.tracker),
            config,
            engine_settings,
            camera_id,
            next_tamper: settings.sequences.next_tamper,
            pending_reference: None,
            last_frame_us: None,
            out: Outputs {
                records: Vec::with_capacity(TRACK_CAPACITY),
                ..Outputs::default()
            },
            records: Vec::with_capacity(TRACK_CAPACITY),
            appearances: Vec::with_capacity(TRACK_CAPACITY),
            shelf_out: Vec::new(),
            tamper_events: Vec::with_capacity(4),
            people: Vec::with_capacity(TRACK_CAPACITY),
            feet: Vec::with_capacity(TRACK_CAPACITY),
        })
    }

    /// What the last input produced (as [`Self::handle`] returned it).
    pub fn outputs(&self) -> &Outputs {
        &self.out
    }

    /// The configuration in force.
    pub fn config(&self) -> &AnalyticsConfig {
        &self.config
    }

    /// Check a `config/set` payload against the version in force: the
    /// configuration to store and then hand over with
    /// [`Input::Configure`], or the refusal with every reason.
    pub fn decide(&self, payload: &[u8], max_bytes: usize) -> Result<Desired, ConfigResult> {
        remote::decide(self.config.version, payload, max_bytes)
    }

    /// Handle one input; what it produced is valid until the next call.
    pub fn handle(&mut self, input: Input<'_>) -> &Outputs {
        self.out.clear();
        match input {
            Input::Frame(f) => self.frame(f),
            Input::Configure { desired, now_us } => self.configure(desired, now_us),
            Input::ShelfReference { request, now_us } => self.shelf_reference(request, now_us),
            Input::Finish { reason } => self.finish(reason),
        }
        &self.out
    }

    fn frame(&mut self, input: FrameInput<'_>) {
        let FrameInput {
            frame,
            detections,
            rgb,
        } = input;
        let t_us = frame.timestamp.as_micros();
        self.last_frame_us = Some(t_us);
        // A frame the tamper detector cannot read (too small, compressed)
        // keeps its state: nothing to count about it.
        if let Err(e) = self.tamper.observe(frame, t_us, &mut self.tamper_events) {
            tracing::debug!(error = %e, "tamper check skipped");
        }
        let tamper = self.tamper.status();
        let tampered = tamper.covered || tamper.defocused || tamper.moved;
        self.appearances.clear();
        self.appearances.extend(
            detections
                .iter()
                .map(|d| appearance::describe(frame, &d.bbox)),
        );
        self.records.clear();
        let tracks =
            self.tracker
                .update_with_appearance(detections, &self.appearances, t_us as f64 / 1e6);
        // Why a crossing was or was not counted: RUST_LOG=tracks=trace
        // prints what the engine was given, frame by frame.
        if tracing::enabled!(target: "tracks", tracing::Level::TRACE) {
            for t in tracks {
                tracing::trace!(target: "tracks", t_us, id = t.id, observed = t.observed,
                    score = t.score, x1 = t.bbox.x1, y1 = t.bbox.y1, x2 = t.bbox.x2, y2 = t.bbox.y2);
            }
        }
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
                luma: mean_luma(frame).map(|l| l as f32),
            };
            self.shelf_out.clear();
            monitor.frame(&facts, rgb, &mut self.shelf_out);
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
                    let reply = outcome_reply(&mut self.pending_reference, r, self.config.version);
                    self.out.references_changed |= reply.state == ReferenceState::Taken;
                    self.out.replies.push(reply);
                }
            }
        }
        self.out
            .records
            .extend(self.records.drain(..).map(Output::Record));
        self.tamper_records();
    }

    fn tamper_records(&mut self) {
        for ev in self.tamper_events.drain(..) {
            self.out.records.push(Output::Tamper(TamperRecord {
                kind: "tamper",
                camera: self.camera_id.clone(),
                seq: self.next_tamper,
                time_us: ev.time_us,
                tamper: ev.kind,
                raised: ev.raised,
            }));
            self.next_tamper += 1;
        }
    }

    /// Switch configurations between two frames: the current bin and open
    /// visits close under the old version, the tracker keeps its tracks,
    /// numbering continues, and references of shelves whose geometry did
    /// not change are carried over.
    fn configure(&mut self, desired: Desired, now_us: u64) {
        let Desired {
            version, config, ..
        } = desired;
        self.records.clear();
        self.engine.finish(&mut self.records);
        let (next_bin, next_event) = self.engine.next_sequences();
        let settings = EngineSettings {
            first_bin_seq: next_bin,
            first_event_seq: next_event,
            ..self.engine_settings.clone()
        };
        self.engine = Engine::new(&config, settings);
        let old = self.shelves.take();
        self.shelves = shelf_monitor(&config);
        if let (Some(old), Some(new)) = (old, &mut self.shelves) {
            let same =
                |m: &ShelfMonitor, name: &str| m.shelves().iter().find(|s| s.name == name).cloned();
            let carried: Vec<ShelfReference> = old
                .references()
                .iter()
                .filter(|r| same(&old, r.name()) == same(new, r.name()))
                .map(|r| r.clone().carried_to(config.version))
                .collect();
            for e in new.restore(carried) {
                tracing::warn!(error = %e, "shelf reference not carried over");
            }
        }
        self.config = config;
        self.out
            .records
            .extend(self.records.drain(..).map(Output::Record));
        // An installer who changes the lines has looked at the view: it
        // becomes the tamper reference.
        self.tamper.relearn(
            self.last_frame_us.unwrap_or(now_us),
            &mut self.tamper_events,
        );
        self.tamper_records();
        if let Some(id) = self.pending_reference.take() {
            self.out.replies.push(ShelfReferenceReply::failed(
                id,
                format!(
                    "the analytics configuration changed to version {version} before the \
                     reference was taken; request it again"
                ),
                version,
            ));
        }
        self.out.references_changed = true;
        self.out.configured = Some(ConfigResult::accepted(version));
    }

    fn shelf_reference(&mut self, request: ShelfReferenceRequest, now_us: u64) {
        let version = self.config.version;
        let Some(monitor) = &mut self.shelves else {
            self.out.replies.push(ShelfReferenceReply::failed(
                request.id,
                crate::shelf::monitor::RequestError::NoShelves.to_string(),
                version,
            ));
            return;
        };
        match monitor.request_reference(request.shelf.as_deref(), now_us as i64) {
            Ok(shelves) => {
                // A new request replaces the one in progress.
                if let Some(id) = self.pending_reference.take() {
                    self.out.replies.push(ShelfReferenceReply::failed(
                        id,
                        "replaced by a newer request".into(),
                        version,
                    ));
                }
                self.pending_reference = Some(request.id.clone());
                self.out.replies.push(ShelfReferenceReply::new(
                    request.id,
                    ReferenceState::Accepted,
                    shelves,
                    None,
                    version,
                ));
            }
            Err(e) => self.out.replies.push(ShelfReferenceReply::failed(
                request.id,
                e.to_string(),
                version,
            )),
        }
    }

    fn finish(&mut self, reason: &str) {
        self.records.clear();
        self.engine.finish(&mut self.records);
        self.out
            .records
            .extend(self.records.drain(..).map(Output::Record));
        if let Some(id) = self.pending_reference.take() {
            self.out.replies.push(ShelfReferenceReply::failed(
                id,
                reason.to_string(),
                self.config.version,
            ));
        }
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

    /// The shelf references in force (to be stored).
    pub fn shelf_references(&self) -> &[ShelfReference] {
        self.shelves.as_ref().map_or(&[], |m| m.references())
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

    /// Where numbering continues (what the application keeps with each
    /// stored record).
    pub fn sequences(&self) -> Sequences {
        let (next_bin, next_event) = self.engine.next_sequences();
        Sequences {
            next_bin,
            next_event,
            next_tamper: self.next_tamper,
        }
    }

    /// People tracked now.
    pub fn active_tracks(&self) -> usize {
        self.tracker.live_tracks()
    }

    /// For health reports.
    pub fn status(&self) -> Status {
        Status {
            config_version: self.config.version,
            tracks_active: self.active_tracks() as u32,
            tamper: self.tamper.status(),
        }
    }

    /// Configured shelves without a reference in force; `None` without
    /// shelves. Changes only with [`Outputs::references_changed`].
    pub fn shelves_without_reference(&self) -> Option<Vec<String>> {
        self.shelves.as_ref().map(|m| {
            m.without_reference()
                .into_iter()
                .map(str::to_string)
                .collect()
        })
    }
}

/// The reply to a reference request for what became of its capture.
fn outcome_reply(
    pending: &mut Option<Option<String>>,
    outcome: &ReferenceOutcome,
    version: u64,
) -> ShelfReferenceReply {
    match outcome {
        ReferenceOutcome::Waiting { shelves, reason } => ShelfReferenceReply::new(
            pending.clone().flatten(),
            ReferenceState::Waiting,
            shelves.clone(),
            Some(reason.clone()),
            version,
        ),
        ReferenceOutcome::Taken {
            shelves,
            version: taken_for,
        } => ShelfReferenceReply::new(
            pending.take().flatten(),
            ReferenceState::Taken,
            shelves.clone(),
            None,
            *taken_for,
        ),
        ReferenceOutcome::Failed { shelves, reason } => ShelfReferenceReply::new(
            pending.take().flatten(),
            ReferenceState::Failed,
            shelves.clone(),
            Some(reason.clone()),
            version,
        ),
    }
}
