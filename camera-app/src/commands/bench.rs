//! `camera-app bench`: benchmarks as JSON (medians, p95).

use std::path::PathBuf;

use camera_app::bench;
use camera_app::model::{self, DetectorOptions, Manifest};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, env = model::MODELS_DIR_ENV)]
    models_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 50)]
    iterations: usize,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// A photo to use as frame content (default: synthetic pattern).
    #[arg(long)]
    image: Option<PathBuf>,
    /// JSON from scripts/onnxruntime_bench.py, to report the ratio.
    #[arg(long)]
    onnxruntime: Option<PathBuf>,
    /// Instead: how fast the link delivers this many stored bins after a
    /// reconnect (an embedded broker unless --broker).
    #[arg(long)]
    backlog: Option<u64>,
    /// Broker for --backlog (host:port).
    #[arg(long)]
    broker: Option<std::net::SocketAddr>,
    /// Rounds of --backlog; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Instead: shelf analysis of a 1080p frame with 10 shelves × 12
    /// facings (JSON, median over --iterations).
    #[arg(long)]
    shelves: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let json = if a.shelves {
        serde_json::to_string_pretty(&bench::shelves(a.iterations).map_err(anyhow::Error::msg)?)?
    } else if let Some(records) = a.backlog {
        let report =
            bench::link_backlog(records, a.broker, a.rounds).map_err(anyhow::Error::msg)?;
        serde_json::to_string_pretty(&report)?
    } else {
        let manifest = Manifest::builtin(model::DEFAULT_MODEL)?;
        let dir = model::models_dir(a.models_dir.as_deref())?;
        let opts = DetectorOptions {
            threads: a.threads,
            ..DetectorOptions::default()
        };
        let mut det = model::cpu_detector(&manifest, &dir, &opts)?;
        let mut report = bench::run(&mut det, a.threads, a.iterations, a.image.as_deref())
            .map_err(anyhow::Error::msg)?;
        if let Some(p) = a.onnxruntime {
            report.compare_with(&p).map_err(anyhow::Error::msg)?;
        }
        serde_json::to_string_pretty(&report)?
    };
    println!("{json}");
    Ok(())
}
