//! The camera's main job at run time, in three parts:
//!
//! - [`setup`]: the configuration becomes devices (source, detector,
//!   outbox, stores, link, board hardware) and the camera state machine;
//! - [`frame_loop`]: one loop, one thread: frame → detections → camera
//!   state machine ([`camera_core::camera::Camera`]) → effects;
//! - [`effects`]: the only place that writes (outbox, JSON lines, link,
//!   reference and configuration stores, health metrics, LED).
//!
//! The link runs on its own thread: commands come from it over one
//! channel and answers go back over another (`link::messages`); records
//! reach it through the outbox.

// Functions on the per-frame path stay short enough to read whole
// (clippy.toml: 80 lines).
#![warn(clippy::too_many_lines)]

pub mod effects;
pub mod frame_loop;
pub mod setup;
pub mod storage;

use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use effects::Effects;
pub use frame_loop::FrameLoop;
pub use setup::Devices;

use crate::capture::SourceError;
use crate::config::Config;
use crate::link::CameraCommand;
use crate::model::ModelError;
use crate::outbox::{Outbox, OutboxError};
use crate::summary::RunSummary;
use camera_core::shelf::request::ShelfReferenceRequest;

/// Errors that stop a run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
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
    #[error("analytics config {path} rejected:\n  {}", problems.join("\n  "))]
    Analytics { path: String, problems: Vec<String> },
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    Link(#[from] crate::link::LinkError),
    #[error(transparent)]
    ConfigStore(#[from] crate::config_store::ConfigStoreError),
    #[error(transparent)]
    Camera(#[from] camera_core::camera::CameraError),
    #[error("writing results to {path}: {source}")]
    Output {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What a run is asked to do besides its configuration (command-line
/// actions, not settings), and who watches it.
#[derive(Default)]
pub struct RunOptions {
    /// Take a shelf reference at the first frame (`--shelf-reference`).
    pub shelf_reference: Option<ShelfReferenceRequest>,
    /// Sees everything the camera produces (tests, the demo).
    pub tap: Option<effects::Tap>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("shelf_reference", &self.shelf_reference)
            .field("tap", &self.tap.is_some())
            .finish()
    }
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

/// Run the camera to the end of its source (or `output.max_frames`, or
/// `stop`, checked between frames): bins and events when an analytics
/// configuration is given, detections otherwise. At the end the last bin
/// is closed and stored, and the link gets `drain_s` to deliver what
/// waits.
pub fn run(cfg: &Config, opts: RunOptions, stop: &AtomicBool) -> Result<RunSummary, RunError> {
    // Who the camera is and where it reports come from provisioning when
    // the configuration says so.
    let mut cfg = cfg.clone();
    let provisioning = cfg.apply_provisioning()?;
    let cfg = &cfg;
    let mut d = setup::devices(cfg, &provisioning)?;
    let mut effects = d.effects.with_tap(opts.tap);
    effects.ready();
    let mut frames = FrameLoop::new(d.source.as_mut(), &mut d.detector, effects);
    frames.camera = d.camera;
    frames.commands = d.commands;
    frames.initial = opts
        .shelf_reference
        .into_iter()
        .map(CameraCommand::ShelfReference)
        .collect();
    frames.max_frames = cfg.output.max_frames;
    frames.colorimetry = cfg.detector.colorimetry;
    frames.clock =
        crate::clock_gate::ClockGate::new(cfg.camera.clock, crate::health::system::kernel_clock);
    if let Some(l) = &cfg.link {
        frames.max_config_bytes = l.max_config_bytes;
    }
    frames.snapshots = cfg.snapshot.enabled.then(|| {
        let mut s = cfg.snapshot.clone();
        s.colorimetry = cfg.detector.colorimetry;
        s
    });
    let summary = frames.run(stop)?;
    frames.finish(frame_loop::STOPPED)?;
    drop(frames);
    if let (Some(link), Some(outbox)) = (d.link, &d.outbox) {
        drain(outbox, cfg.link.as_ref().map_or(0, |c| c.drain_s));
        link.stop();
    }
    tracing::info!(?summary, "camera stopped");
    Ok(summary)
}

/// At the end of a finite input, give the link a while to deliver what is
/// waiting (it stays in the outbox for the next run otherwise).
fn drain(outbox: &Mutex<Outbox>, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let depth = outbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats()
            .map_or(0, |s| s.depth);
        if depth == 0 || Instant::now() >= deadline {
            if depth > 0 {
                tracing::info!(depth, "records left in the outbox for the next run");
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests;
