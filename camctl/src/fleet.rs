//! The cameras of a store as their messages describe them: the retained
//! `status` (online or offline, firmware, configuration version) and the
//! latest `health` (frame rate, tamper, clock, storage). Pure: messages in,
//! a summary out.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::topics::{CameraRef, Layout};

/// What the installer sees of one camera.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CameraSummary {
    pub store: String,
    pub camera: String,
    /// From the retained `status`; `None` until one arrives.
    pub online: Option<bool>,
    pub firmware_version: Option<String>,
    pub config_version: Option<u64>,
    /// Frames processed per second between the last two health reports.
    pub fps: Option<f64>,
    /// Raised tamper conditions (`covered`, `defocused`, `moved`).
    pub tamper: Vec<String>,
    /// The camera's clock state (`synced`, `unsynced`, ...).
    pub clock: Option<String>,
    /// `ok` or `failing`, and free bytes on the data partition.
    pub storage: Option<String>,
    pub storage_free_bytes: Option<u64>,
    /// Camera time of the latest health report, µs since the epoch.
    pub health_time_us: Option<u64>,
}

#[derive(Debug, Clone, Default)]
struct Camera {
    summary: CameraSummary,
    /// (camera time µs, frames processed) of the latest health report.
    last_frames: Option<(u64, u64)>,
}

/// Every camera heard of.
#[derive(Debug, Clone)]
pub struct Fleet {
    layout: Layout,
    cameras: BTreeMap<CameraRef, Camera>,
}

impl Fleet {
    pub fn new(layout: Layout) -> Self {
        Self {
            layout,
            cameras: BTreeMap::new(),
        }
    }

    /// Take one message; returns the camera it changed, if any. Payloads
    /// that are not the camera's JSON are ignored (a consumer cannot fix
    /// them, and the camera validates what it sends).
    pub fn on_message(&mut self, topic: &str, payload: &[u8]) -> Option<CameraRef> {
        let (cam, leaf) = self.layout.parse(topic)?;
        if leaf != "status" && leaf != "health" {
            return None;
        }
        let v: Value = serde_json::from_slice(payload).ok()?;
        let entry = self.cameras.entry(cam.clone()).or_insert_with(|| Camera {
            summary: CameraSummary {
                store: cam.store.clone(),
                camera: cam.camera.clone(),
                ..CameraSummary::default()
            },
            last_frames: None,
        });
        let s = &mut entry.summary;
        if leaf == "status" {
            s.online = Some(v["state"] == "online");
            if let Some(fw) = v["firmware_version"].as_str() {
                s.firmware_version = Some(fw.to_string());
            }
            if let Some(cv) = v["config_version"].as_u64() {
                s.config_version = Some(cv);
            }
            return Some(cam);
        }
        // A health report means the camera is up, whatever an older
        // retained status says.
        s.online = Some(true);
        if let Some(fw) = v["firmware_version"].as_str() {
            s.firmware_version = Some(fw.to_string());
        }
        if let Some(cv) = v["config_version"].as_u64() {
            s.config_version = Some(cv);
        }
        s.tamper = ["covered", "defocused", "moved"]
            .into_iter()
            .filter(|k| v["tamper"][*k] == true)
            .map(str::to_string)
            .collect();
        s.clock = v["clock"]["state"].as_str().map(str::to_string);
        s.storage = v["storage"]["state"].as_str().map(str::to_string);
        s.storage_free_bytes = v["storage"]["data_free_bytes"].as_u64();
        let time = v["time_us"].as_u64();
        let frames = v["frames_processed"].as_u64();
        if let (Some(t), Some(f)) = (time, frames) {
            if let Some((t0, f0)) = entry.last_frames
                && t > t0
                && f >= f0
            {
                s.fps = Some((f - f0) as f64 * 1e6 / (t - t0) as f64);
            } else if let Some(up) = v["app_uptime_s"].as_f64().filter(|u| *u > 0.0) {
                // One report: the average since the app started.
                s.fps = Some(f as f64 / up);
            }
            entry.last_frames = Some((t, f));
        }
        s.health_time_us = time;
        Some(cam)
    }

    pub fn cameras(&self) -> Vec<CameraSummary> {
        self.cameras.values().map(|c| c.summary.clone()).collect()
    }

    pub fn get(&self, camera: &str) -> Option<&CameraSummary> {
        self.cameras
            .iter()
            .find(|(k, _)| k.camera == camera)
            .map(|(_, c)| &c.summary)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::topics::DEFAULT_TEMPLATE;

    fn fleet() -> Fleet {
        Fleet::new(Layout::new(DEFAULT_TEMPLATE, "s").unwrap())
    }

    #[test]
    fn status_then_health_fill_the_summary() {
        let mut f = fleet();
        let t = "stores/s/cameras/door/status";
        f.on_message(
            t,
            br#"{"state":"online","camera":"door","firmware_version":"1.5.0","config_version":3}"#,
        )
        .unwrap();
        let h = "stores/s/cameras/door/health";
        let health = |t_us: u64, frames: u64| {
            format!(
                r#"{{"time_us":{t_us},"frames_processed":{frames},"app_uptime_s":10.0,
                "config_version":4,"tamper":{{"covered":true,"moved":false}},
                "clock":{{"state":"synced"}},"storage":{{"state":"ok","data_free_bytes":1000}}}}"#
            )
        };
        f.on_message(h, health(10_000_000, 100).as_bytes()).unwrap();
        let c = f.get("door").unwrap();
        assert_eq!(c.online, Some(true));
        assert_eq!(c.firmware_version.as_deref(), Some("1.5.0"));
        assert_eq!(c.config_version, Some(4));
        assert_eq!(c.fps, Some(10.0));
        assert_eq!(c.tamper, vec!["covered"]);
        assert_eq!(c.clock.as_deref(), Some("synced"));
        assert_eq!(c.storage_free_bytes, Some(1000));
        // The rate between two reports, not since the start.
        f.on_message(h, health(12_000_000, 150).as_bytes()).unwrap();
        assert_eq!(f.get("door").unwrap().fps, Some(25.0));
    }

    #[test]
    fn offline_cameras_and_foreign_topics() {
        let mut f = fleet();
        f.on_message("stores/s/cameras/c2/status", br#"{"state":"offline"}"#)
            .unwrap();
        assert_eq!(f.get("c2").unwrap().online, Some(false));
        assert!(f.on_message("stores/s/cameras/c2/bins", b"{}").is_none());
        assert!(f.on_message("stores/x/cameras/c3/status", b"{}").is_none());
        assert!(
            f.on_message("stores/s/cameras/c3/status", b"not json")
                .is_none()
        );
        assert_eq!(f.cameras().len(), 1);
    }
}
