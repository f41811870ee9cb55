//! `rknn-standin`: make a model file for the stand-in runtime from an
//! ONNX model and calibration images, as `models/convert.py` makes a real
//! `.rknn` with rknn-toolkit2.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;
use rknnrt::container::{InputDesc, OutputType, calibrate, write};

#[derive(Parser)]
#[command(about = "Pack an ONNX model for the RKNN stand-in runtime")]
struct Cli {
    #[arg(long)]
    onnx: PathBuf,
    /// Target platform recorded in the model (rk3588, rk3568, rv1106).
    #[arg(long)]
    soc: String,
    #[arg(long)]
    out: PathBuf,
    /// Model input size.
    #[arg(long, default_value_t = 352)]
    width: u32,
    #[arg(long, default_value_t = 352)]
    height: u32,
    /// The model takes BGR (FastestDet does), not RGB.
    #[arg(long)]
    bgr: bool,
    /// `(pixel - mean) / std`, as rknn-toolkit2's config takes them.
    #[arg(long, default_value_t = 0.0)]
    mean: f32,
    #[arg(long, default_value_t = 255.0)]
    std: f32,
    /// Float16 outputs, like rknn-toolkit2's hybrid quantisation leaves
    /// FastestDet's head (the RK3588/RK3568 builds in the model manifest).
    #[arg(long)]
    fp16_outputs: bool,
    /// Calibration images.
    #[arg(required = true)]
    images: Vec<PathBuf>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let onnx = std::fs::read(&cli.onnx).with_context(|| cli.onnx.display().to_string())?;
    let (w, h) = (cli.width, cli.height);
    let mut calibration = Vec::new();
    for path in &cli.images {
        let img = image::open(path)
            .with_context(|| path.display().to_string())?
            .to_rgb8();
        let img = image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle);
        let hw = (w * h) as usize;
        let mut x = vec![0.0f32; 3 * hw];
        for (i, p) in img.pixels().enumerate() {
            for c in 0..3 {
                let src = if cli.bgr { 2 - c } else { c };
                x[c * hw + i] = (f32::from(p.0[src]) - cli.mean) / cli.std;
            }
        }
        calibration.push(x);
    }
    if calibration.is_empty() {
        bail!("no calibration images");
    }
    let input = InputDesc {
        name: String::new(),
        width: w,
        height: h,
        mean: [cli.mean; 3],
        std: [cli.std; 3],
    };
    let mut header = calibrate(&onnx, &cli.soc, input, &calibration).map_err(anyhow::Error::msg)?;
    if cli.fp16_outputs {
        for o in &mut header.outputs {
            o.dtype = OutputType::Float16;
        }
    }
    let bytes = write(&header, &onnx);
    std::fs::write(&cli.out, bytes).with_context(|| cli.out.display().to_string())?;
    println!("{}", cli.out.display());
    Ok(())
}
