//! Effects: the only place the frame loop writes. Records go to the
//! outbox (durably, with the next sequence number in the same
//! transaction) before they are written out as JSON lines; replies and
//! snapshots go to the link; shelf references and accepted configurations
//! to their stores on flash; figures to the health metrics; the app's state
//! to the board's LED.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use camera_core::camera::{Camera, Outputs, Sequences};
use camera_core::config::remote::{ConfigResult, Desired};
use camera_core::shelf::request::ShelfReferenceReply;
use tokio::sync::mpsc::Sender;

use super::RunError;
use super::storage::{NEXT_BIN_SEQ, NEXT_EVENT_SEQ, NEXT_TAMPER_SEQ, RecordStore};
use crate::capture::Frame;
use crate::config_store::ConfigStore;
use crate::detect::Detection;
use crate::health::watchdog::Watchdog;
use crate::health::{SharedMetrics, TamperStatus};
use crate::hw::{BoardHw, Status};
use crate::jsonl::{DetectionRecord, FrameRecord, write_line};
use crate::link::{CameraEvent, LinkStats, Snapshot};
use crate::model::Manifest;
use crate::outbox::{Outbox, OutboxError};
use crate::reference_store::ReferenceStore;
use crate::sequence_store::SequenceStore;
use crate::summary::RunSummary;

/// The sequence numbers stored in an outbox: numbering continues from
/// them after a restart.
pub fn stored_sequences(outbox: &Outbox) -> Result<Sequences, OutboxError> {
    Ok(Sequences {
        next_bin: outbox.counter(NEXT_BIN_SEQ)?,
        next_event: outbox.counter(NEXT_EVENT_SEQ)?,
        next_tamper: outbox.counter(NEXT_TAMPER_SEQ)?,
    })
}

/// Everything the camera produced, as it is stored and sent: for whoever
/// watches (tests, the demo).
pub type Tap = Box<dyn FnMut(&Outputs) + Send>;

/// Where the frame loop's results go.
pub struct Effects {
    /// JSON lines (bins and events, or detections): a file, standard
    /// output, or nowhere.
    lines: Box<dyn Write + Send>,
    lines_name: String,
    /// The outbox, through what holds records while the flash fails.
    store: Option<RecordStore>,
    link: Option<(Sender<CameraEvent>, Arc<LinkStats>)>,
    references: Option<ReferenceStore>,
    configs: Option<ConfigStore>,
    metrics: SharedMetrics,
    board: Option<BoardHw>,
    /// Not provisioned: the LED says so instead of "no link".
    unprovisioned: bool,
    /// systemd's, fed after each frame through detection.
    watchdog: Watchdog,
    started: Instant,
    tap: Option<Tap>,
    manifest: Manifest,
    detections: FrameRecord,
}

impl std::fmt::Debug for Effects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Effects")
            .field("lines", &self.lines_name)
            .field("outbox", &self.store.is_some())
            .field("link", &self.link.is_some())
            .finish_non_exhaustive()
    }
}

impl Effects {
    /// JSON lines to `lines` (named `lines_name` in errors), labels from
    /// `manifest`; nothing else until added.
    pub fn new(lines: Box<dyn Write + Send>, lines_name: &str, manifest: Manifest) -> Self {
        Self {
            lines,
            lines_name: lines_name.into(),
            store: None,
            link: None,
            references: None,
            configs: None,
            metrics: SharedMetrics::default(),
            board: None,
            unprovisioned: false,
            watchdog: Watchdog::from_env(),
            started: Instant::now(),
            tap: None,
            manifest,
            detections: FrameRecord {
                seq: 0,
                timestamp_us: 0,
                width: 0,
                height: 0,
                detections: Vec::new(),
            },
        }
    }

    /// Records go to `outbox`, their numbers reserved ahead in
    /// `sequences`.
    pub fn with_outbox(
        mut self,
        outbox: Arc<Mutex<Outbox>>,
        sequences: Option<SequenceStore>,
    ) -> Self {
        self.store = Some(RecordStore::new(outbox, sequences));
        self
    }

    pub fn with_link(mut self, events: Sender<CameraEvent>, stats: Arc<LinkStats>) -> Self {
        self.link = Some((events, stats));
        self
    }

    pub fn with_stores(
        mut self,
        references: Option<ReferenceStore>,
        configs: Option<ConfigStore>,
    ) -> Self {
        self.references = references;
        self.configs = configs;
        self
    }

    pub fn with_metrics(mut self, metrics: SharedMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Feed this watchdog instead of systemd's (tests).
    pub fn with_watchdog(mut self, watchdog: Watchdog) -> Self {
        self.watchdog = watchdog;
        self
    }

    /// Set-up is over: the service is ready (systemd `READY=1`).
    pub fn ready(&mut self) {
        self.watchdog.ready();
    }

    /// The camera stops on purpose (systemd `STOPPING=1`).
    pub fn stopping(&mut self) {
        self.watchdog.stopping();
    }

    /// The camera has no factory bundle installed (LED pattern).
    pub fn unprovisioned(mut self, unprovisioned: bool) -> Self {
        self.unprovisioned = unprovisioned;
        self
    }

    pub fn with_board(mut self, board: Option<BoardHw>) -> Self {
        self.board = board;
        self
    }

    pub fn with_tap(mut self, tap: Option<Tap>) -> Self {
        self.tap = tap;
        self
    }

    fn output_error(&self, source: std::io::Error) -> RunError {
        RunError::Output {
            path: self.lines_name.clone(),
            source,
        }
    }

    /// What the camera produced with its last input: records stored, then
    /// written out; replies to the link; references stored when they
    /// changed.
    pub fn apply(&mut self, camera: &Camera) -> Result<(), RunError> {
        let out = camera.outputs();
        let mut stored = false;
        if let Some(store) = &mut self.store {
            // A full or failing flash holds records in memory; it never
            // stops the camera (storage.rs).
            let now = Instant::now();
            let before = store.status();
            store.tick(now);
            for r in &out.records {
                stored |= store.store(r, now);
            }
            let after = store.status();
            if after != before {
                self.metrics.lock().storage = after;
            }
        }
        for r in &out.records {
            write_line(&mut self.lines, r).map_err(|e| self.output_error(e))?;
        }
        if let Some(tap) = &mut self.tap {
            tap(out);
        }
        if stored {
            self.event(CameraEvent::Stored);
        }
        if out.references_changed {
            self.store_references(camera);
            self.metrics.lock().shelves_without_reference = camera.shelves_without_reference();
        }
        for reply in &out.replies {
            self.reply(reply);
        }
        Ok(())
    }

    /// A frame's detections as one JSON line (detection only).
    pub fn detections(&mut self, frame: &Frame, dets: &[Detection]) -> Result<(), RunError> {
        let r = &mut self.detections;
        r.seq = frame.seq;
        r.timestamp_us = frame.timestamp.as_micros();
        r.width = frame.width;
        r.height = frame.height;
        r.detections.clear();
        r.detections
            .extend(dets.iter().map(|d| DetectionRecord::new(d, &self.manifest)));
        write_line(&mut self.lines, &self.detections).map_err(|e| self.output_error(e))
    }

    fn store_references(&self, camera: &Camera) {
        let Some(store) = &self.references else {
            return;
        };
        match store.save(camera.shelf_references()) {
            Ok(()) => tracing::debug!(
                path = %store.path().display(),
                references = camera.shelf_references().len(),
                "shelf references stored"
            ),
            Err(e) => tracing::error!(error = %e, "cannot store the shelf references"),
        }
    }

    /// Logged, and published when there is a link.
    fn reply(&self, reply: &ShelfReferenceReply) {
        if reply.ok {
            tracing::info!(id = ?reply.id, state = ?reply.state, shelves = ?reply.shelves, reason = ?reply.reason, "shelf reference");
        } else {
            tracing::warn!(id = ?reply.id, shelves = ?reply.shelves, reason = ?reply.reason, "shelf reference failed");
        }
        self.event(CameraEvent::ShelfReference(reply.clone()));
    }

    fn event(&self, event: CameraEvent) {
        if let Some((tx, _)) = &self.link
            && let Err(e) = tx.try_send(event)
            && !matches!(e.into_inner(), CameraEvent::Stored)
        {
            // New records need no message: the link polls the outbox.
            tracing::warn!("an answer for the link was dropped: the link is busy");
        }
    }

    /// Keep an accepted configuration on flash before it is applied: one
    /// reported accepted survives a power cut.
    pub fn store_config(&self, desired: &Desired) -> Result<(), String> {
        match &self.configs {
            Some(store) => store
                .save(desired.version, &desired.body)
                .map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    /// The answer to a `config/set`, and the state now in force.
    pub fn configured(&self, ticket: u64, result: ConfigResult, state: Option<(u64, String)>) {
        if result.accepted {
            tracing::info!(version = ?result.version, "configuration accepted");
        } else {
            tracing::warn!(version = ?result.version, problems = ?result.problems, "configuration rejected");
        }
        self.event(CameraEvent::Configured {
            ticket,
            result,
            state,
        });
    }

    pub fn snapshot(&self, shot: Snapshot) {
        self.event(CameraEvent::Snapshot(shot));
    }

    /// Whether the broker is connected (always, without a link).
    pub fn online(&self) -> bool {
        self.link
            .as_ref()
            .is_none_or(|(_, s)| s.connected.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// The frame loop's counters so far, whatever became of the frames.
    pub fn progress(&self, summary: &RunSummary) {
        self.metrics.lock().summary = *summary;
    }

    /// After a frame: the figures of health reports, and the board.
    pub fn frame_done(
        &mut self,
        frame: &Frame,
        inference: std::time::Duration,
        camera: Option<&Camera>,
    ) {
        let elapsed = self.started.elapsed();
        self.watchdog
            .frame(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        let status = camera.map(Camera::status);
        {
            let mut m = self.metrics.lock();
            m.inference.record(inference);
            if let Some(s) = &status {
                m.config_version = Some(s.config_version);
                m.tracks_active = s.tracks_active;
                m.tamper = s.tamper;
            }
        }
        if let Some(board) = &self.board {
            let tamper: Option<&TamperStatus> = status.as_ref().map(|s| &s.tamper);
            let status = if self.unprovisioned {
                Status::Unprovisioned
            } else if self.online() {
                Status::Running
            } else {
                Status::NoLink
            };
            board.frame(frame, tamper, status);
        }
    }

    pub fn flush(&mut self) -> Result<(), RunError> {
        self.lines.flush().map_err(|e| self.output_error(e))
    }
}
