//! The camera's side of the MQTT link: what the link asks of the running
//! pipeline (health, configuration changes, snapshots), answered from
//! state the frame loop shares.
//!
//! The link runs on its own thread; the frame loop owns the tracker and the
//! analytics engine. They meet here: counters behind a mutex the frame loop
//! updates once per frame, a channel of accepted configurations and a
//! queue of shelf reference requests the frame loop drains before each
//! frame, and a flag asking for a snapshot.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::config_store::ConfigStore;
use crate::health::{HealthInputs, HealthReport, LatencyWindow, SystemProbe, TamperStatus};
use crate::link::{Camera, Desired, ShelfReferenceRequest};
use crate::outbox::Outbox;
use crate::pipeline::RunSummary;

/// Frame-loop figures the health report reads.
#[derive(Debug)]
pub struct Metrics {
    /// The frame loop's counters, as it keeps them.
    pub summary: RunSummary,
    pub tracks_active: u32,
    pub inference: LatencyWindow,
    pub tamper: TamperStatus,
    /// Configured shelves with no reference in force; `None` without
    /// shelves.
    pub shelves_without_reference: Option<Vec<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            summary: RunSummary::default(),
            tracks_active: 0,
            // About a minute of frames at 15 fps.
            inference: LatencyWindow::new(1024),
            tamper: TamperStatus::default(),
            shelves_without_reference: None,
        }
    }
}

/// State shared by the frame loop and the link.
#[derive(Debug, Default)]
pub struct Shared {
    pub metrics: Mutex<Metrics>,
    /// An installer asked for a snapshot; the frame loop takes it.
    pub snapshot_wanted: AtomicBool,
    /// Version of the analytics configuration in force.
    pub config_version: AtomicU64,
    /// Shelf reference requests from the link, for the frame loop.
    pub shelf_requests: Mutex<Vec<ShelfReferenceRequest>>,
}

/// Requests waiting for the frame loop beyond this are refused.
const MAX_QUEUED_SHELF_REQUESTS: usize = 16;

impl Shared {
    pub fn metrics(&self) -> std::sync::MutexGuard<'_, Metrics> {
        self.metrics.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The frame loop's counters so far, whatever became of the frames.
    pub fn progress(&self, s: &RunSummary) {
        self.metrics().summary = *s;
    }

    /// The shelf reference requests queued since the last call.
    pub fn take_shelf_requests(&self) -> Vec<ShelfReferenceRequest> {
        std::mem::take(
            &mut *self
                .shelf_requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// The [`Camera`] the link talks to.
#[derive(Debug)]
pub struct AppCamera {
    pub shared: Arc<Shared>,
    pub outbox: Arc<Mutex<Outbox>>,
    /// Where accepted configurations are kept across restarts.
    pub store: ConfigStore,
    /// Accepted configurations, to the frame loop.
    pub configs: Sender<Desired>,
    pub probe: SystemProbe,
    pub started_us: u64,
    pub model: String,
    pub model_sha256: Option<String>,
    pub snapshots_enabled: bool,
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl Camera for AppCamera {
    fn birth(&self) -> serde_json::Value {
        json!({
            "firmware_version": crate::health::FIRMWARE_VERSION,
            "models": [{"name": self.model, "sha256": self.model_sha256}],
            "started_us": self.started_us,
        })
    }

    fn health(&mut self) -> serde_json::Value {
        let outbox = self
            .outbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats()
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read outbox figures");
                Default::default()
            });
        let system = self.probe.probe();
        let m = self.shared.metrics();
        let inputs = HealthInputs {
            time_us: now_us(),
            started_us: self.started_us,
            config_version: Some(self.shared.config_version.load(Ordering::Relaxed)),
            frames_captured: m.summary.source.delivered,
            frames_processed: m.summary.processed,
            frames_corrupt: m.summary.corrupt,
            frames_failed: m.summary.failed,
            frames_skipped: m.summary.source.skipped,
            source_errors: m.summary.source_errors,
            tracks_active: m.tracks_active,
            outbox_depth: outbox.depth,
            outbox_oldest_us: outbox.oldest_us,
            outbox_evictions: outbox.evicted,
        };
        let report = HealthReport::build(&inputs, &m.inference, &system, &m.tamper);
        let mut value = serde_json::to_value(report).unwrap_or_default();
        // Only on a camera that watches shelves.
        if let (Some(names), Some(o)) = (&m.shelves_without_reference, value.as_object_mut()) {
            o.insert("shelves_without_reference".into(), json!(names));
        }
        value
    }

    fn apply(&mut self, desired: &Desired) -> Result<(), String> {
        // Durable first: a configuration reported accepted survives a
        // power cut.
        self.store
            .save(desired.version, &desired.body)
            .map_err(|e| e.to_string())?;
        self.configs
            .send(desired.clone())
            .map_err(|_| "the frame loop has stopped".to_string())?;
        self.shared
            .config_version
            .store(desired.version, Ordering::Relaxed);
        Ok(())
    }

    fn snapshot(&mut self) -> Result<(), String> {
        if !self.snapshots_enabled {
            return Err("snapshots are disabled on this camera (snapshot.enabled)".into());
        }
        self.shared.snapshot_wanted.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn shelf_reference(&mut self, request: ShelfReferenceRequest) -> Result<(), String> {
        let mut queue = self
            .shared
            .shelf_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if queue.len() >= MAX_QUEUED_SHELF_REQUESTS {
            return Err(format!(
                "{} requests are already waiting for the camera; try again shortly",
                queue.len()
            ));
        }
        queue.push(request);
        Ok(())
    }
}
