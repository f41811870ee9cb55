//! The figures the frame loop keeps for health reports, and the report
//! the link publishes from them. The frame loop writes [`Metrics`]; the
//! link only reads them (through [`Reporter`]).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::json;

use super::{HealthInputs, HealthReport, LatencyWindow, Releases, SystemProbe, TamperStatus};
use crate::outbox::OutboxStats;
use crate::summary::RunSummary;

/// Frame-loop figures the health report reads.
#[derive(Debug)]
pub struct Metrics {
    /// The frame loop's counters, as it keeps them.
    pub summary: RunSummary,
    pub config_version: Option<u64>,
    pub tracks_active: u32,
    pub inference: LatencyWindow,
    pub tamper: TamperStatus,
    /// Configured shelves with no reference in force; `None` without
    /// shelves.
    pub shelves_without_reference: Option<Vec<String>>,
    /// Whether records reach the flash (`runtime::storage`).
    pub storage: StorageStatus,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            summary: RunSummary::default(),
            config_version: None,
            tracks_active: 0,
            // About a minute of frames at 15 fps.
            inference: LatencyWindow::new(1024),
            tamper: TamperStatus::default(),
            shelves_without_reference: None,
            storage: StorageStatus {
                state: "ok",
                ..StorageStatus::default()
            },
        }
    }
}

/// Whether records reach the flash (`runtime::storage` keeps it), for
/// health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StorageStatus {
    /// "ok", or "failing" while records cannot be stored.
    pub state: &'static str,
    /// The last error while failing.
    pub error: Option<String>,
    /// Records waiting in memory for the flash.
    pub held_records: usize,
    /// Records dropped from memory, oldest first, to stay within bounds.
    pub dropped_records: u64,
    /// Store attempts that failed, since the start.
    pub failures: u64,
}

/// [`Metrics`] shared by the frame loop (writer) and the link (reader).
#[derive(Debug, Clone, Default)]
pub struct SharedMetrics(Arc<Mutex<Metrics>>);

impl SharedMetrics {
    pub fn lock(&self) -> MutexGuard<'_, Metrics> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// µs since the Unix epoch, now.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Builds health reports from the frame loop's metrics, the system and
/// the outbox.
#[derive(Debug)]
pub struct Reporter {
    pub metrics: SharedMetrics,
    pub probe: SystemProbe,
    pub started_us: u64,
    pub releases: Releases,
    /// The data partition (the outbox's directory): its free space is
    /// reported.
    pub data_dir: Option<std::path::PathBuf>,
}

impl Reporter {
    /// The report as published on `health`.
    pub fn report(&mut self, outbox: Option<OutboxStats>) -> serde_json::Value {
        let outbox = outbox.unwrap_or_default();
        let (damaged, set_aside) = (outbox.damaged, outbox.set_aside.clone());
        let system = self.probe.probe();
        let m = self.metrics.lock();
        let inputs = HealthInputs {
            time_us: now_us(),
            started_us: self.started_us,
            config_version: m.config_version,
            frames_captured: m.summary.source.delivered,
            frames_processed: m.summary.processed,
            frames_corrupt: m.summary.corrupt,
            frames_failed: m.summary.failed,
            frames_skipped: m.summary.source.skipped,
            frames_unclocked: m.summary.unclocked,
            source_errors: m.summary.source_errors,
            tracks_active: m.tracks_active,
            outbox_depth: outbox.depth,
            outbox_oldest_us: outbox.oldest_us,
            outbox_evictions: outbox.evicted,
        };
        let report = HealthReport::build(&inputs, &m.inference, &system, &m.tamper, &self.releases);
        let mut value = serde_json::to_value(report).unwrap_or_default();
        if let Some(o) = value.as_object_mut() {
            // Only on a camera that watches shelves.
            if let Some(names) = &m.shelves_without_reference {
                o.insert("shelves_without_reference".into(), json!(names));
            }
            let free = self.data_dir.as_deref().and_then(free_bytes);
            let mut storage = json!(m.storage);
            storage["data_free_bytes"] = json!(free);
            storage["damaged_records"] = json!(damaged);
            storage["set_aside"] = json!(set_aside);
            o.insert("storage".into(), storage);
        }
        value
    }
}

/// Bytes available to the camera on the filesystem holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Fields of the retained birth message: firmware and model.
pub fn birth(
    model: &str,
    model_sha256: &str,
    started_us: u64,
    releases: &Releases,
) -> serde_json::Value {
    json!({
        "firmware_version": releases.firmware_version(),
        "releases": releases,
        "models": [{"name": model, "sha256": model_sha256}],
        "started_us": started_us,
    })
}
