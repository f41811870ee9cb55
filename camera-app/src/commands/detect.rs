//! `camera-app detect`: the detector alone on images, one JSON object per
//! image.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};

use camera_app::capture::Timestamp;
use camera_app::capture::files::decode_image;
use camera_app::jsonl::DetectionRecord;
use camera_app::model::{self, DetectorOptions, Manifest};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, env = model::MODELS_DIR_ENV)]
    models_dir: Option<PathBuf>,
    #[arg(long, default_value = model::DEFAULT_MODEL)]
    model: String,
    /// Labels to report (repeatable); all classes when absent.
    #[arg(long = "class")]
    classes: Vec<String>,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Report detections scoring above this instead of the manifest's
    /// threshold (to see what the model almost found).
    #[arg(long, value_parser = unit_interval)]
    score_threshold: Option<f32>,
    /// Non-maximum suppression IoU instead of the manifest's.
    #[arg(long, value_parser = unit_interval)]
    nms_iou: Option<f32>,
    #[command(flatten)]
    backend: BackendArgs,
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

/// Which inference backend runs the model.
#[derive(clap::Args)]
struct BackendArgs {
    /// `cpu` (rten, ONNX weights) or `rknn` (the board's NPU, its `.rknn`
    /// build of the model).
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendKind,
    /// Board profile for the NPU settings (runtime library, I/O style,
    /// cores): a built-in one, or `<boards-dir>/<board>.toml`.
    #[arg(long, env = "CAMERA_BOARD")]
    board: Option<String>,
    #[arg(long, env = "CAMERA_BOARDS_DIR")]
    boards_dir: Option<PathBuf>,
    /// NPU runtime library instead of the profile's `npu.runtime`.
    #[arg(long)]
    rknn_lib: Option<PathBuf>,
    /// NPU I/O style instead of the profile's `npu.api`.
    #[arg(long, value_enum)]
    npu_io: Option<NpuIo>,
    /// `.rknn` model instead of the manifest's file for the board's SoC.
    #[arg(long)]
    rknn_model: Option<PathBuf>,
}

/// A number within 0..1 (a score or an overlap).
fn unit_interval(s: &str) -> Result<f32, String> {
    let v: f32 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not within 0..1"))
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BackendKind {
    Cpu,
    Rknn,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum NpuIo {
    InputsSet,
    ZeroCopy,
}

impl BackendArgs {
    fn resolve(self) -> anyhow::Result<model::Backend> {
        let BackendKind::Rknn = self.backend else {
            return Ok(model::Backend::Cpu);
        };
        let Some(name) = self.board else {
            bail!("--backend rknn needs --board (or CAMERA_BOARD) for the NPU settings");
        };
        let board = match &self.boards_dir {
            Some(dir) => boards::Profile::find(dir, &name)?,
            None => boards::builtin(&name)?,
        };
        let mut backend = model::Backend::npu(board, self.rknn_lib);
        if let model::Backend::Rknn(setup) = &mut backend {
            setup.api = self.npu_io.map(|io| match io {
                NpuIo::InputsSet => boards::NpuApi::InputsSet,
                NpuIo::ZeroCopy => boards::NpuApi::ZeroCopy,
            });
            setup.model = self.rknn_model;
        }
        Ok(backend)
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let manifest = Manifest::builtin(&a.model)?;
    let dir = model::models_dir(a.models_dir.as_deref())?;
    let opts = DetectorOptions {
        classes: a.classes,
        threads: a.threads,
        score_threshold: a.score_threshold,
        nms_iou: a.nms_iou,
        ..DetectorOptions::default()
    };
    let mut det = model::detector(&manifest, &dir, &a.backend.resolve()?, &opts)?;
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for path in &a.images {
        let frame = match std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| decode_image(&bytes, 0, Timestamp(0)))
        {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                failed += 1;
                continue;
            }
        };
        let dets: Vec<DetectionRecord> = det
            .detect(&frame)
            .with_context(|| path.display().to_string())?
            .iter()
            .map(|d| DetectionRecord::new(d, &manifest))
            .collect();
        let line = serde_json::json!({
            "image": path.display().to_string(),
            "width": frame.width,
            "height": frame.height,
            "detections": dets,
        });
        writeln!(out, "{line}")?;
    }
    if failed > 0 {
        bail!("{failed} of {} images could not be read", a.images.len());
    }
    Ok(())
}
