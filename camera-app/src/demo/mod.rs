//! `camera-app demo`: the embedded default. No camera, no NPU, no broker
//! to install.
//!
//! - [`door::run`] (the default): a shop door scene rendered at run time
//!   from the photos in `../shared/images`, played through the whole
//!   camera (the real model, tracker, analytics, outbox and link) against
//!   an MQTT broker it starts on 127.0.0.1; prints what a consumer
//!   subscribed to the camera's topics receives, and the camera's counts
//!   beside the scene's truth.
//! - [`run`] (`--offline`): the real model on photos (or the synthetic
//!   pattern); prints what it sees and writes each frame with its boxes
//!   drawn to an output directory.

#[cfg(feature = "demo")]
pub mod door;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::capture::files::{FileSource, FilesConfig, decode_mjpeg};
use crate::capture::synthetic::{SyntheticConfig, SyntheticSource};
use crate::capture::{Frame, FrameSource, PixelFormat};
use crate::config::Config;
use crate::detect::Detection;
use crate::model::ModelError;
use crate::runtime::{self, RunError};

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo: {0}")]
    Setup(String),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("frame source: {0}")]
    Source(#[source] crate::capture::SourceError),
    #[error("writing {path}: {source}")]
    Output {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Photos to run on; the synthetic pattern when `None`.
    pub images: Option<PathBuf>,
    pub models_dir: Option<PathBuf>,
    /// Where annotated frames go; nothing is written when `None`.
    pub out_dir: Option<PathBuf>,
    /// Frames to process from the synthetic source.
    pub frames: u64,
}

/// Run the demo, printing a line per frame to `out`. Returns the number of
/// people seen over all frames.
pub fn run(opts: &DemoOptions, out: &mut dyn Write) -> Result<usize, DemoError> {
    let mut cfg =
        Config::default_config().map_err(|e| DemoError::Setup(format!("built-in config: {e}")))?;
    cfg.detector.models_dir.clone_from(&opts.models_dir);
    let (manifest, mut detector) = runtime::setup::build_detector(&cfg)?;
    let mut source: Box<dyn FrameSource> = match &opts.images {
        Some(dir) => Box::new(FileSource::open(FilesConfig::new(dir)).map_err(DemoError::Source)?),
        None => Box::new(
            SyntheticSource::open(SyntheticConfig {
                frames: Some(opts.frames),
                format: PixelFormat::Rgb24,
                ..SyntheticConfig::default()
            })
            .map_err(DemoError::Source)?,
        ),
    };
    if let Some(dir) = &opts.out_dir {
        std::fs::create_dir_all(dir).map_err(|source| DemoError::Output {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let write_err = |source| DemoError::Output {
        path: "stdout".into(),
        source,
    };
    writeln!(
        out,
        "camera-app demo: {} on {} ({} backend)",
        manifest.name,
        source.describe(),
        detector.backend_name()
    )
    .map_err(write_err)?;
    let mut people = 0;
    while let Some(frame) = source.next_frame().map_err(DemoError::Source)? {
        let frame = if frame.format == PixelFormat::Mjpeg {
            match decode_mjpeg(&frame) {
                Ok(f) => f,
                Err(e) => {
                    writeln!(out, "frame {}: skipped ({e})", frame.seq).map_err(write_err)?;
                    continue;
                }
            }
        } else {
            frame
        };
        let dets = match detector.detect(&frame) {
            Ok(d) => d.to_vec(),
            Err(e) => {
                writeln!(out, "frame {}: skipped ({e})", frame.seq).map_err(write_err)?;
                continue;
            }
        };
        people += dets.len();
        let t = detector.timings();
        let ms = (t.inference.as_secs_f64() * 1e4).round() / 10.0;
        let listing: Vec<String> = dets
            .iter()
            .map(|d| {
                format!(
                    "{} {:.2} [{:.0},{:.0},{:.0},{:.0}]",
                    manifest.label(d.class_id),
                    d.score,
                    d.bbox.x1,
                    d.bbox.y1,
                    d.bbox.x2,
                    d.bbox.y2
                )
            })
            .collect();
        writeln!(
            out,
            "frame {} {}x{}: {} people in {ms} ms  {}",
            frame.seq,
            frame.width,
            frame.height,
            dets.len(),
            listing.join("  ")
        )
        .map_err(write_err)?;
        if let Some(dir) = &opts.out_dir {
            let path = dir.join(format!("frame-{:04}.jpg", frame.seq));
            save_annotated(&frame, &dets, &path).map_err(|source| DemoError::Output {
                path: path.display().to_string(),
                source,
            })?;
        }
    }
    let stats = source.stats();
    writeln!(
        out,
        "{} frames, {} skipped, {people} people seen{}",
        stats.delivered,
        stats.skipped,
        opts.out_dir
            .as_ref()
            .map(|d| format!("; annotated frames in {}", d.display()))
            .unwrap_or_default()
    )
    .map_err(write_err)?;
    Ok(people)
}

/// Write an Rgb24 frame as JPEG with its boxes drawn.
fn save_annotated(frame: &Frame, dets: &[Detection], path: &Path) -> std::io::Result<()> {
    let mut img = image::RgbImage::from_raw(frame.width, frame.height, frame.data.clone())
        .ok_or_else(|| std::io::Error::other("frame is not tight Rgb24"))?;
    for d in dets {
        draw_rect(&mut img, d, [0, 255, 0]);
    }
    img.save(path).map_err(std::io::Error::other)
}

/// A 3-pixel outline, clipped to the image.
fn draw_rect(img: &mut image::RgbImage, d: &Detection, colour: [u8; 3]) {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let clamp = |v: f32, hi: i64| (v.round() as i64).clamp(0, hi - 1);
    let (x1, y1) = (clamp(d.bbox.x1, w), clamp(d.bbox.y1, h));
    let (x2, y2) = (clamp(d.bbox.x2, w), clamp(d.bbox.y2, h));
    let mut put = |x: i64, y: i64| {
        if (0..w).contains(&x) && (0..h).contains(&y) {
            img.put_pixel(x as u32, y as u32, image::Rgb(colour));
        }
    };
    for t in 0..3 {
        for x in x1..=x2 {
            put(x, y1 + t);
            put(x, y2 - t);
        }
        for y in y1..=y2 {
            put(x1 + t, y);
            put(x2 - t, y);
        }
    }
}
