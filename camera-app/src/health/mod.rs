//! Health: what the camera publishes about itself every few seconds.
//!
//! - [`LatencyWindow`]: recent inference durations and their percentiles;
//! - [`SystemProbe`]: CPU temperature, memory, uptime, clock sync state;
//! - [`Releases`]: the signed release versions of the running slots;
//! - [`TamperDetector`]: lens covered, defocused, view moved, from cheap
//!   image statistics on every frame;
//! - [`watchdog`]: systemd's watchdog, fed only while frames flow;
//! - [`HealthReport`]: all of it in one JSON object, assembled from plain
//!   inputs by [`HealthReport::build`] (no I/O).
//!
//! # The report (schema 1)
//!
//! Units are in the field names; counters are totals since the process
//! started (a lost report loses nothing; the receiver takes differences);
//! `null` means unknown (a file the system does not have, no inference
//! yet, an empty outbox).
//!
//! ```json
//! {
//!   "schema": 1,
//!   "time_us": 1718000000000000,        // wall clock of the report
//!   "firmware_version": "1.5.0",       // the rootfs release, else this build's
//!   "releases": {"rootfs": "1.5.0", "app": "1.5.1", "model": null},
//!                                       // per slot in use; null: factory image
//!   "config_version": 3,                // analytics config in force, or null
//!   "app_uptime_s": 3600.0,             // since the process started
//!   "frames_captured": 36000,           // delivered by the source
//!   "frames_processed": 35990,          // through detection
//!   "frames_dropped": 10,               // corrupt + failed + skipped
//!   "frames_corrupt": 4,                // undecodable or malformed
//!   "frames_failed": 6,                 // the detector failed
//!   "frames_skipped": 0,                // the source could not read them
//!   "frames_unclocked": 0,              // detected, not counted: clock not set yet
//!   "source_errors": 0,                 // source failures, each retried
//!   "inference_ms_p50": 41.2,           // over the last N inferences
//!   "inference_ms_p95": 55.0,
//!   "inference_samples": 512,
//!   "tracks_active": 3,
//!   "outbox_depth": 12,                 // records waiting to be sent
//!   "outbox_oldest_age_s": 4.5,         // null when empty
//!   "outbox_evictions": 0,              // records dropped to stay in bounds
//!   "storage": {"state": "ok",          // or "failing": the flash refuses records
//!               "error": null,          // the last error while failing
//!               "held_records": 0,      // waiting in memory for the flash
//!               "dropped_records": 0,   // dropped from memory, oldest first
//!               "failures": 0,          // store attempts that failed
//!               "damaged_records": 0,   // found damaged in the outbox, removed unpublished
//!               "set_aside": null,      // a damaged outbox file replaced at start, kept
//!               "data_free_bytes": 1e8},// free on the outbox's filesystem
//!   "cpu_temp_c": 61.5,                 // hottest thermal zone
//!   "mem_total_bytes": 511770624,
//!   "mem_available_bytes": 257263616,
//!   "process_rss_bytes": 42225664,
//!   "uptime_s": 12345.67,               // since boot
//!   "clock": {"state": "synced", "est_error_us": 120, "max_error_us": 5000},
//!                                       // or "unsynced" (same fields), or {"state": "unknown"}
//!   "tamper": {
//!     "enabled": true, "learning": false,
//!     "covered": false, "defocused": false, "moved": false,
//!     "measures": {"luma_mean": 118.2, "luma_p90": 170.0, "luma_spread": 96.5,
//!                  "sharpness_ratio": 0.98, "view_match": 0.93}
//!   }
//! }
//! ```
//!
//! Tamper events ([`TamperEvent`]) are published as they happen, once per
//! change; the report carries the current state.

pub mod latency;
pub mod metrics;
pub mod release;
pub mod system;
pub mod watchdog;

use serde::Serialize;

pub use camera_core::tamper::{
    TamperConfig, TamperConfigError, TamperDetector, TamperError, TamperEvent, TamperKind,
    TamperMeasures, TamperStatus,
};
pub use latency::{LatencyStats, LatencyWindow};
pub use metrics::{Metrics, Reporter, SharedMetrics, StorageStatus};
pub use release::Releases;
pub use system::{ClockSync, SystemProbe, SystemSnapshot};

/// This build's version (reported when the rootfs has no signed release).
pub const FIRMWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Bumped when a field changes meaning or disappears.
pub const HEALTH_SCHEMA: u32 = 1;

/// What the pipeline knows, as plain values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthInputs {
    /// Wall clock of the report, µs since the epoch.
    pub time_us: u64,
    /// When the process started, µs since the epoch.
    pub started_us: u64,
    /// Version of the analytics configuration in force.
    pub config_version: Option<u64>,
    pub frames_captured: u64,
    pub frames_processed: u64,
    pub frames_corrupt: u64,
    pub frames_failed: u64,
    /// Frames the source itself could not read and skipped.
    pub frames_skipped: u64,
    /// Frames detected but not counted: the clock was not set yet.
    pub frames_unclocked: u64,
    /// Source failures (a vanished camera), each followed by a retry.
    pub source_errors: u64,
    pub tracks_active: u32,
    pub outbox_depth: u64,
    /// Creation time of the oldest record waiting, µs since the epoch.
    pub outbox_oldest_us: Option<u64>,
    pub outbox_evictions: u64,
}

/// One health report; see the module documentation for the JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    pub schema: u32,
    pub time_us: u64,
    pub firmware_version: String,
    pub releases: Releases,
    pub config_version: Option<u64>,
    pub app_uptime_s: f64,
    pub frames_captured: u64,
    pub frames_processed: u64,
    pub frames_dropped: u64,
    pub frames_corrupt: u64,
    pub frames_failed: u64,
    pub frames_skipped: u64,
    pub frames_unclocked: u64,
    pub source_errors: u64,
    pub inference_ms_p50: Option<f64>,
    pub inference_ms_p95: Option<f64>,
    pub inference_samples: usize,
    pub tracks_active: u32,
    pub outbox_depth: u64,
    pub outbox_oldest_age_s: Option<f64>,
    pub outbox_evictions: u64,
    pub cpu_temp_c: Option<f32>,
    pub mem_total_bytes: Option<u64>,
    pub mem_available_bytes: Option<u64>,
    pub process_rss_bytes: Option<u64>,
    pub uptime_s: Option<f64>,
    pub clock: ClockSync,
    pub tamper: TamperStatus,
}

impl HealthReport {
    /// Assemble a report; pure.
    pub fn build(
        inputs: &HealthInputs,
        latency: &LatencyWindow,
        system: &SystemSnapshot,
        tamper: &TamperStatus,
        releases: &Releases,
    ) -> Self {
        let t = inputs.time_us;
        // Elapsed µs → s; a clock stepped back reads as 0, not as huge.
        let age_s = |since_us: u64| t.saturating_sub(since_us) as f64 / 1e6;
        let stats = latency.stats();
        let ms = |us: u32| f64::from(us) / 1e3;
        Self {
            schema: HEALTH_SCHEMA,
            time_us: t,
            firmware_version: releases.firmware_version().to_string(),
            releases: releases.clone(),
            config_version: inputs.config_version,
            app_uptime_s: age_s(inputs.started_us),
            frames_captured: inputs.frames_captured,
            frames_processed: inputs.frames_processed,
            frames_dropped: inputs.frames_corrupt + inputs.frames_failed + inputs.frames_skipped,
            frames_corrupt: inputs.frames_corrupt,
            frames_failed: inputs.frames_failed,
            frames_skipped: inputs.frames_skipped,
            frames_unclocked: inputs.frames_unclocked,
            source_errors: inputs.source_errors,
            inference_ms_p50: stats.map(|s| ms(s.p50_us)),
            inference_ms_p95: stats.map(|s| ms(s.p95_us)),
            inference_samples: stats.map_or(0, |s| s.samples),
            tracks_active: inputs.tracks_active,
            outbox_depth: inputs.outbox_depth,
            outbox_oldest_age_s: inputs.outbox_oldest_us.map(age_s),
            outbox_evictions: inputs.outbox_evictions,
            cpu_temp_c: system.cpu_temp_c,
            mem_total_bytes: system.mem_total_bytes,
            mem_available_bytes: system.mem_available_bytes,
            process_rss_bytes: system.process_rss_bytes,
            uptime_s: system.uptime_s,
            clock: system.clock,
            tamper: *tamper,
        }
    }

    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

#[cfg(test)]
mod tests;
