//! `camera-app track`: the tracker alone on MOTChallenge detections.

use std::path::PathBuf;

use anyhow::{Context, bail};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    mot_det: PathBuf,
    #[arg(long)]
    fps: f64,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if !(a.fps.is_finite() && a.fps > 0.0) {
        bail!("--fps must be positive, got {}", a.fps);
    }
    let file = std::fs::File::open(&a.mot_det)
        .with_context(|| format!("cannot open {}", a.mot_det.display()))?;
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    camera_core::track::mot::track_file(
        std::io::BufReader::new(file),
        out,
        a.fps,
        camera_core::track::TrackerConfig::default(),
    )
    .with_context(|| a.mot_det.display().to_string())?;
    Ok(())
}
