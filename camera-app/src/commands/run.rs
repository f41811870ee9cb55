//! `camera-app run`: the camera's main job (`camera_app::runtime`), with
//! command-line overrides of the configuration.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use camera_app::config::Config;
use camera_app::model;
use camera_app::runtime::{self, RunOptions};

#[derive(clap::Args)]
pub struct Args {
    /// Application config (default: the built-in one).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Frames from a directory of JPEG/PNG files, an MJPEG file, or a
    /// V4L2 device (`/dev/videoN`); overrides the config's source.
    #[arg(long)]
    source: Option<PathBuf>,
    /// Frame rate of a directory or file source.
    #[arg(long, default_value_t = 10.0)]
    fps: f64,
    /// Analytics config (lines, zones, bins); overrides the config's.
    #[arg(long)]
    analytics: Option<PathBuf>,
    /// JSON-lines output file ("-": standard output).
    #[arg(long)]
    output: Option<PathBuf>,
    #[arg(long, env = model::MODELS_DIR_ENV)]
    models_dir: Option<PathBuf>,
    /// Camera id carried by bins and events; overrides the config's.
    #[arg(long)]
    camera_id: Option<String>,
    /// Also store bins and events durably in this outbox file; their
    /// sequence numbers continue from the ones stored there.
    #[arg(long)]
    outbox: Option<PathBuf>,
    /// Take a new reference of this shelf (`all`: every shelf) over the
    /// first clean frames; stored beside the outbox.
    #[arg(long, value_name = "SHELF|all")]
    shelf_reference: Option<String>,
}

impl Args {
    /// The configuration with the command line's overrides.
    fn config(self) -> anyhow::Result<(Config, RunOptions)> {
        let mut cfg = match self.config {
            Some(p) => Config::load(&p)?,
            None => Config::default_config()?,
        };
        if let Some(src) = self.source {
            cfg.override_source(src, self.fps)?;
        }
        cfg.analytics = self.analytics.or(cfg.analytics);
        cfg.output.path = self.output.or(cfg.output.path);
        cfg.detector.models_dir = self.models_dir.or(cfg.detector.models_dir);
        cfg.output.outbox = self.outbox.or(cfg.output.outbox);
        if let Some(id) = self.camera_id {
            cfg.camera.id = id;
        }
        let opts = RunOptions {
            shelf_reference: self
                .shelf_reference
                .as_deref()
                .map(RunOptions::shelf_reference_arg),
            tap: None,
        };
        Ok((cfg, opts))
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let (cfg, opts) = a.config()?;
    // SIGTERM (systemd stopping the service) or Ctrl-C: finish the frame,
    // close and store the bin, let the link drain, say offline.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .context("installing the signal handler")?;
    }
    let summary = runtime::run(&cfg, opts, &stop)?;
    eprintln!("{}", serde_json::to_string(&summary)?);
    Ok(())
}
