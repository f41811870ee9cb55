//! The frame loop: the camera's main job, one thread.
//!
//! Take a frame, decode it if compressed, detect; then, between two
//! frames, handle what the link asked (configurations, snapshots, shelf
//! references), hand the frame and its detections to the camera state
//! machine, and pass what it produced to the effects. Without an analytics
//! configuration the same loop only writes detections. A broken frame is
//! skipped and counted, never fatal; a source error (a vanished camera) is
//! logged and retried with backoff.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use camera_core::camera::{Camera, FrameInput, Input};
use camera_core::config::remote::ConfigResult;

use super::RunError;
use super::effects::Effects;
use crate::capture::files::decode_mjpeg;
use crate::capture::{Frame, FrameSource, PixelFormat};
use crate::clock_gate::ClockGate;
use crate::detect::{Detection, Detector};
use crate::link::CameraCommand;
use crate::preprocess::Colorimetry;
use crate::snapshot::{self, SnapshotOptions};
use crate::summary::RunSummary;

/// Why a reference capture in progress ends with the run.
pub const STOPPED: &str = "the camera stopped before the reference was taken; request it again";

/// The camera's main job: source → detector → camera → effects.
pub struct FrameLoop<'a> {
    pub source: &'a mut dyn FrameSource,
    pub detector: &'a mut Detector,
    /// `None`: detection only.
    pub camera: Option<Camera>,
    pub effects: Effects,
    /// From the link; none without one.
    pub commands: Option<Receiver<CameraCommand>>,
    /// Commands given at start (the command line's), handled before the
    /// first frame.
    pub initial: Vec<CameraCommand>,
    /// Stop after this many frames (tests, benchmarks).
    pub max_frames: Option<u64>,
    /// `config/set` payloads above this are refused.
    pub max_config_bytes: usize,
    /// How YUV frames become RGB (shelves and snapshots).
    pub colorimetry: Colorimetry,
    /// Snapshots, when installers may ask for them.
    pub snapshots: Option<SnapshotOptions>,
    /// Whether the clock may stamp records yet.
    pub clock: ClockGate,
    summary: RunSummary,
    snapshot_wanted: bool,
    /// The current frame's detections, kept to allocate nothing per frame.
    dets: Vec<Detection>,
}

/// What the source gave.
enum Next {
    Frame(Frame),
    /// A transient error, counted; the source has waited out its backoff.
    Retry,
    End,
}

impl std::fmt::Debug for FrameLoop<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameLoop")
            .field("source", &self.source.describe())
            .field("counting", &self.camera.is_some())
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl<'a> FrameLoop<'a> {
    /// A loop over `source` and `detector` that only writes detections;
    /// give it a camera to count.
    pub fn new(
        source: &'a mut dyn FrameSource,
        detector: &'a mut Detector,
        effects: Effects,
    ) -> Self {
        Self {
            source,
            detector,
            camera: None,
            effects,
            commands: None,
            initial: Vec::new(),
            max_frames: None,
            max_config_bytes: camera_core::config::remote::DEFAULT_MAX_CONFIG_BYTES,
            colorimetry: Colorimetry::Bt601Limited,
            snapshots: None,
            clock: ClockGate::default(),
            summary: RunSummary::default(),
            snapshot_wanted: false,
            dets: Vec::new(),
        }
    }

    /// Counters so far.
    pub fn summary(&self) -> RunSummary {
        self.summary
    }

    /// Run to the end of the source, `max_frames`, or `stop` (checked
    /// between frames). The run is not finished: see [`Self::finish`].
    pub fn run(&mut self, stop: &AtomicBool) -> Result<RunSummary, RunError> {
        while self.max_frames.is_none_or(|m| self.summary.processed < m)
            && !stop.load(Ordering::Relaxed)
        {
            // Counters reach health even while every frame fails.
            self.summary.source = self.source.stats();
            self.effects.progress(&self.summary);
            let frame = match self.next_frame()? {
                Next::Frame(f) => f,
                Next::Retry => continue,
                Next::End => break,
            };
            let Some(frame) = self.decoded(frame) else {
                continue;
            };
            let t = Instant::now();
            match self.detector.detect(&frame) {
                Ok(found) => {
                    self.summary.processed += 1;
                    let mut dets = std::mem::take(&mut self.dets);
                    dets.clear();
                    dets.extend_from_slice(found);
                    let stepped = self.step(&frame, &dets, t.elapsed());
                    self.dets = dets;
                    stepped?;
                }
                Err(e) => {
                    self.summary.failed += 1;
                    tracing::warn!(error = %e, "skipping frame");
                }
            }
        }
        self.summary.source = self.source.stats();
        self.effects.progress(&self.summary);
        Ok(self.summary)
    }

    fn next_frame(&mut self) -> Result<Next, RunError> {
        match self.source.next_frame() {
            Ok(Some(f)) => Ok(Next::Frame(f)),
            Ok(None) => Ok(Next::End),
            Err(e) if e.is_fatal() => Err(RunError::Source(e)),
            Err(e) => {
                self.summary.source_errors += 1;
                tracing::warn!(error = %e, "source error; retrying");
                Ok(Next::Retry)
            }
        }
    }

    /// The frame itself, or its decoding for MJPEG; `None` (counted) when
    /// it cannot be decoded.
    fn decoded(&mut self, frame: Frame) -> Option<Frame> {
        if frame.format != PixelFormat::Mjpeg {
            return Some(frame);
        }
        match decode_mjpeg(&frame) {
            Ok(f) => Some(f),
            Err(e) => {
                self.summary.corrupt += 1;
                tracing::warn!(error = %e, "skipping corrupt frame");
                None
            }
        }
    }

    /// One frame and its detections, through the camera (or written out
    /// as they are), then the effects of what it produced.
    pub fn step(
        &mut self,
        frame: &Frame,
        dets: &[Detection],
        inference: Duration,
    ) -> Result<(), RunError> {
        let t_us = frame.timestamp.as_micros();
        self.handle_commands(t_us)?;
        let clocked = self.clock.open();
        if !clocked {
            self.summary.unclocked += 1;
        }
        match &mut self.camera {
            // Nothing is counted or written with a time that is not set.
            _ if !clocked => {}
            None => self.effects.detections(frame, dets)?,
            Some(camera) => {
                let colorimetry = self.colorimetry;
                let mut rgb = || {
                    snapshot::frame_rgb(frame, colorimetry)
                        .map_err(|e| tracing::warn!(error = %e, "frame skipped for the shelves"))
                        .ok()
                };
                let input = Input::Frame(FrameInput {
                    frame,
                    detections: dets,
                    rgb: &mut rgb,
                });
                camera.handle(input);
                self.effects.apply(camera)?;
            }
        }
        if std::mem::take(&mut self.snapshot_wanted) {
            self.take_snapshot(frame, dets);
        }
        self.effects
            .frame_done(frame, inference, self.camera.as_ref());
        tracing::debug!(seq = frame.seq, people = dets.len(), took = ?inference, "frame");
        Ok(())
    }

    /// What the link (or the command line) asked since the last frame; in
    /// force from the frame at `now_us`.
    fn handle_commands(&mut self, now_us: u64) -> Result<(), RunError> {
        let mut commands = std::mem::take(&mut self.initial);
        if let Some(rx) = &self.commands {
            commands.extend(rx.try_iter());
        }
        for command in commands {
            match command {
                CameraCommand::Configure { ticket, payload } => {
                    self.configure(ticket, &payload, now_us)?;
                }
                CameraCommand::Snapshot => self.snapshot_wanted = true,
                CameraCommand::ShelfReference(request) => {
                    let Some(camera) = &mut self.camera else {
                        tracing::error!(
                            "no shelf reference taken: shelves come with an analytics \
                             configuration, and there is none"
                        );
                        continue;
                    };
                    camera.handle(Input::ShelfReference { request, now_us });
                    self.effects.apply(camera)?;
                }
            }
        }
        Ok(())
    }

    /// A `config/set`: decided against the version in force, stored, then
    /// in force from this frame; answered either way.
    fn configure(&mut self, ticket: u64, payload: &[u8], now_us: u64) -> Result<(), RunError> {
        let Some(camera) = &mut self.camera else {
            return Ok(());
        };
        let desired = match camera.decide(payload, self.max_config_bytes) {
            Ok(d) => d,
            Err(result) => {
                self.effects.configured(ticket, result, None);
                return Ok(());
            }
        };
        if let Err(reason) = self.effects.store_config(&desired) {
            let result = ConfigResult {
                version: Some(desired.version),
                accepted: false,
                running_version: camera.config().version,
                problems: vec![format!("apply: {reason}")],
            };
            self.effects.configured(ticket, result, None);
            return Ok(());
        }
        let state = (desired.version, desired.body.clone());
        let result = camera
            .handle(Input::Configure { desired, now_us })
            .configured
            .clone()
            .unwrap_or_else(|| ConfigResult::accepted(state.0));
        self.effects.apply(camera)?;
        self.effects.configured(ticket, result, Some(state));
        Ok(())
    }

    /// A snapshot of this frame, people blurred, the configuration drawn.
    fn take_snapshot(&self, frame: &Frame, dets: &[Detection]) {
        let Some(opts) = &self.snapshots else {
            self.effects.snapshot(Err(
                "snapshots are disabled on this camera (snapshot.enabled)".into(),
            ));
            return;
        };
        let people: Vec<_> = dets.iter().map(|d| d.bbox).collect();
        let (config, shelves) = match &self.camera {
            Some(c) => (Some(c.config()), c.shelf_states()),
            None => (None, Vec::new()),
        };
        let shot =
            snapshot::render_with_shelves(frame, config, &people, &shelves, opts).map_err(|e| {
                tracing::warn!(error = %e, "cannot take a snapshot");
                e.to_string()
            });
        self.effects.snapshot(shot);
    }

    /// End of the run: the last bin and open visits are closed and stored,
    /// a reference capture in progress fails with `reason`, the output is
    /// flushed.
    pub fn finish(&mut self, reason: &str) -> Result<(), RunError> {
        if let Some(camera) = &mut self.camera {
            camera.handle(Input::Finish { reason });
            self.effects.apply(camera)?;
        }
        self.effects.stopping();
        self.effects.flush()
    }
}
