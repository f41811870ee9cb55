//! `camera-app demo`: the embedded default (no camera, no NPU, no broker
//! to install): a shop door scene through the whole camera; or
//! `--offline` detection on photos.

use std::path::{Path, PathBuf};

use anyhow::bail;

use camera_app::demo;
use camera_app::model;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, env = model::MODELS_DIR_ENV)]
    models_dir: Option<PathBuf>,
    /// Photos: people are cut from them for the scene (default: `images`
    /// beside the models directory, `$CAMERA_SHARED_DIR/images`, or
    /// `../shared/images`); with `--offline`, the photos to look at.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Seconds of the scene to play (default: all of it, 76 s of scene
    /// played as fast as the camera goes).
    #[arg(long)]
    seconds: Option<f64>,
    /// Seconds between health reports.
    #[arg(long, default_value_t = 5)]
    health_interval: u64,
    /// Broker port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Detection only, on photos (or the synthetic pattern), without a
    /// broker.
    #[arg(long)]
    offline: bool,
    /// Offline: where to write frames with boxes drawn.
    #[arg(long, default_value = "demo-output")]
    out: PathBuf,
    /// Offline without photos: frames of the synthetic pattern.
    #[arg(long, default_value_t = 20)]
    frames: u64,
}

/// Where the shared photos are, when not given.
fn default_images(models_dir: Option<&Path>) -> PathBuf {
    let beside_models = models_dir
        .and_then(Path::parent)
        .map(|p| p.join("images"))
        .filter(|p| p.is_dir());
    let shared = std::env::var_os("CAMERA_SHARED_DIR").map(|d| PathBuf::from(d).join("images"));
    beside_models
        .or(shared)
        .unwrap_or_else(|| PathBuf::from("../shared/images"))
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.offline {
        let opts = demo::DemoOptions {
            images: a.images,
            models_dir: a.models_dir,
            out_dir: Some(a.out),
            frames: a.frames,
        };
        demo::run(&opts, &mut std::io::stdout().lock())?;
        return Ok(());
    }
    door(a)
}

#[cfg(feature = "demo")]
fn door(a: Args) -> anyhow::Result<()> {
    let images_dir = a
        .images
        .unwrap_or_else(|| default_images(a.models_dir.as_deref()));
    let got = demo::door::run(
        &demo::door::DoorOptions {
            models_dir: a.models_dir,
            images_dir,
            seconds: a.seconds,
            health_interval_s: a.health_interval,
            port: a.port,
        },
        &mut std::io::stdout().lock(),
    )?;
    if got.health == 0 || got.status == 0 || got.bins == 0 {
        bail!("the demo's consumer received no bins, health report or status: {got:?}");
    }
    Ok(())
}

#[cfg(not(feature = "demo"))]
fn door(_: Args) -> anyhow::Result<()> {
    let _ = default_images;
    bail!("this build has no demo (feature demo): use demo --offline")
}
