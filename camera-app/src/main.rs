//! `camera-app`: parse arguments, set up logging, call the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use camera_app::capture::Timestamp;
use camera_app::capture::files::decode_image;
use camera_app::config::{Config, DEFAULT_CONFIG};
use camera_app::model::{self, DetectorOptions, Manifest};
use camera_app::pipeline::DetectionRecord;
use camera_app::{bench, demo, pipeline};

#[derive(Parser)]
#[command(version, about = "Retail camera analytics: frames in, people out")]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    fn resolve(self) -> Result<model::Backend> {
        match self.backend {
            BackendKind::Cpu => Ok(model::Backend::Cpu),
            BackendKind::Rknn => {
                let Some(name) = self.board else {
                    bail!("--backend rknn needs --board (or CAMERA_BOARD) for the NPU settings");
                };
                let board = match &self.boards_dir {
                    Some(dir) => boards::Profile::find(dir, &name)?,
                    None => boards::builtin(&name)?,
                };
                Ok(model::Backend::Rknn(Box::new(model::NpuSetup {
                    board,
                    library: self.rknn_lib,
                    api: self.npu_io.map(|io| match io {
                        NpuIo::InputsSet => boards::NpuApi::InputsSet,
                        NpuIo::ZeroCopy => boards::NpuApi::ZeroCopy,
                    }),
                    model: self.rknn_model,
                })))
            }
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Detect objects in images; one JSON object per image on stdout.
    Detect {
        #[arg(long, env = model::MODELS_DIR_ENV)]
        models_dir: Option<PathBuf>,
        #[arg(long, default_value = model::DEFAULT_MODEL)]
        model: String,
        /// Labels to report (repeatable); all classes when absent.
        #[arg(long = "class")]
        classes: Vec<String>,
        #[arg(long, default_value_t = 1)]
        threads: usize,
        #[command(flatten)]
        backend: BackendArgs,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Run source → detector (→ tracker → analytics), writing JSON lines:
    /// detections per frame, or bins and events with `--analytics`.
    Run {
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
        /// Take a new reference of this shelf (`all`: every shelf) over
        /// the first clean frames; stored beside the outbox.
        #[arg(long, value_name = "SHELF|all")]
        shelf_reference: Option<String>,
    },
    /// Per-stage timings as JSON (medians and p95 in ms).
    Bench {
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
        /// Instead: how fast the link delivers this many stored bins after
        /// a reconnect (an embedded broker unless --broker).
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
    },
    /// The embedded default: the whole camera against an MQTT broker it
    /// starts on 127.0.0.1, printing what arrives; `--offline`: the real
    /// model on photos or synthetic frames, no broker.
    Demo {
        #[arg(long, env = model::MODELS_DIR_ENV)]
        models_dir: Option<PathBuf>,
        /// Seconds the camera runs (MQTT demo).
        #[arg(long, default_value_t = 75)]
        seconds: u64,
        /// Seconds between health reports (MQTT demo).
        #[arg(long, default_value_t = 10)]
        health_interval: u64,
        /// Broker port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Detection only, without a broker.
        #[arg(long)]
        offline: bool,
        /// Offline: directory of JPEG/PNG photos; the synthetic pattern
        /// when absent.
        #[arg(long)]
        images: Option<PathBuf>,
        /// Offline: where to write frames with boxes drawn.
        #[arg(long, default_value = "demo-output")]
        out: PathBuf,
        /// Offline: frames of the synthetic pattern.
        #[arg(long, default_value_t = 20)]
        frames: u64,
    },
    /// Manage model weights.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Track MOTChallenge detections (`frame,-1,x,y,w,h,score,...`) and
    /// write MOTChallenge tracks to stdout.
    Track {
        #[arg(long)]
        mot_det: PathBuf,
        #[arg(long)]
        fps: f64,
    },
    /// Print the built-in default configuration.
    DefaultConfig,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Download (or copy from a mirror) and verify a model's weights.
    Fetch {
        #[arg(default_value = model::DEFAULT_MODEL)]
        name: String,
        #[arg(long, env = model::MODELS_DIR_ENV)]
        models_dir: Option<PathBuf>,
        /// Copy from this mirror directory instead of downloading.
        #[arg(long)]
        from: Option<PathBuf>,
        /// Download from this URL instead of the manifest's.
        #[arg(long)]
        url: Option<String>,
    },
    /// List the built-in manifests and whether each is present and valid.
    List {
        #[arg(long, env = model::MODELS_DIR_ENV)]
        models_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    // `RUST_LOG` as `target=level` pairs (tracing-subscriber's `Targets`:
    // no regex engine in the camera binary).
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse::<tracing_subscriber::filter::Targets>().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new()
                .with_default(tracing::Level::INFO)
                .with_target("rumqttd", tracing::Level::WARN)
        });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(filter)
        .init();
    match main_inner(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main_inner(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Detect {
            models_dir,
            model,
            classes,
            threads,
            backend,
            images,
        } => detect(models_dir, &model, classes, threads, backend, &images),
        Command::Run {
            config,
            source,
            fps,
            analytics,
            output,
            models_dir,
            camera_id,
            outbox,
            shelf_reference,
        } => {
            let mut cfg = match config {
                Some(p) => Config::load(&p)?,
                None => Config::default_config()?,
            };
            if let Some(src) = source {
                cfg.override_source(src, fps)?;
            }
            if analytics.is_some() {
                cfg.analytics = analytics;
            }
            if output.is_some() {
                cfg.output.path = output;
            }
            if models_dir.is_some() {
                cfg.detector.models_dir = models_dir;
            }
            if let Some(id) = camera_id {
                cfg.camera.id = id;
            }
            if outbox.is_some() {
                cfg.output.outbox = outbox;
            }
            // SIGTERM (systemd stopping the service) or Ctrl-C: finish the
            // frame, close and store the bin, let the link drain, say
            // offline.
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register(signal, stop.clone())
                    .context("installing the signal handler")?;
            }
            let opts = pipeline::RunOptions {
                shelf_reference: shelf_reference
                    .as_deref()
                    .map(pipeline::RunOptions::shelf_reference_arg),
            };
            let summary = pipeline::run_with(&cfg, &opts, &stop)?;
            eprintln!("{}", serde_json::to_string(&summary)?);
            Ok(())
        }
        Command::Bench {
            models_dir,
            iterations,
            threads,
            image,
            onnxruntime,
            backlog,
            broker,
            rounds,
            shelves,
        } => {
            if shelves {
                let report = bench::shelves(iterations).map_err(anyhow::Error::msg)?;
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(());
            }
            if let Some(records) = backlog {
                let report =
                    bench::link_backlog(records, broker, rounds).map_err(anyhow::Error::msg)?;
                println!("{}", serde_json::to_string_pretty(&report)?);
                return Ok(());
            }
            let manifest = Manifest::builtin(model::DEFAULT_MODEL)?;
            let dir = model::models_dir(models_dir.as_deref())?;
            let opts = DetectorOptions {
                threads,
                ..DetectorOptions::default()
            };
            let mut det = model::cpu_detector(&manifest, &dir, &opts)?;
            let mut report = bench::run(&mut det, threads, iterations, image.as_deref())
                .map_err(anyhow::Error::msg)?;
            if let Some(p) = onnxruntime {
                report.compare_with(&p).map_err(anyhow::Error::msg)?;
            }
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Demo {
            models_dir,
            seconds,
            health_interval,
            port,
            offline,
            images,
            out,
            frames,
        } => {
            if offline || images.is_some() {
                let opts = demo::DemoOptions {
                    images,
                    models_dir,
                    out_dir: Some(out),
                    frames,
                };
                demo::run(&opts, &mut std::io::stdout().lock())?;
            } else {
                mqtt_demo(&demo::MqttDemoOptions {
                    models_dir,
                    seconds,
                    health_interval_s: health_interval,
                    port,
                })?;
            }
            Ok(())
        }
        Command::Models { command } => models(command),
        Command::Track { mot_det, fps } => {
            if !(fps.is_finite() && fps > 0.0) {
                bail!("--fps must be positive, got {fps}");
            }
            let file = std::fs::File::open(&mot_det)
                .with_context(|| format!("cannot open {}", mot_det.display()))?;
            let out = std::io::BufWriter::new(std::io::stdout().lock());
            camera_core::track::mot::track_file(
                std::io::BufReader::new(file),
                out,
                fps,
                camera_core::track::TrackerConfig::default(),
            )
            .with_context(|| mot_det.display().to_string())?;
            Ok(())
        }
        Command::DefaultConfig => {
            print!("{DEFAULT_CONFIG}");
            Ok(())
        }
    }
}

fn detect(
    models_dir: Option<PathBuf>,
    model_name: &str,
    classes: Vec<String>,
    threads: usize,
    backend: BackendArgs,
    images: &[PathBuf],
) -> Result<()> {
    let manifest = Manifest::builtin(model_name)?;
    let dir = model::models_dir(models_dir.as_deref())?;
    let opts = DetectorOptions {
        classes,
        threads,
        ..DetectorOptions::default()
    };
    let mut det = model::detector(&manifest, &dir, &backend.resolve()?, &opts)?;
    let mut out = std::io::stdout().lock();
    let mut failed = 0;
    for path in images {
        let result = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| decode_image(&bytes, 0, Timestamp(0)));
        let frame = match result {
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
        bail!("{failed} of {} images could not be read", images.len());
    }
    Ok(())
}

#[cfg(feature = "embedded-broker")]
fn mqtt_demo(opts: &demo::MqttDemoOptions) -> Result<()> {
    let got = demo::run_mqtt(opts, &mut std::io::stdout().lock())?;
    if got.health == 0 || got.status == 0 {
        bail!("the demo's consumer received no health report or status: {got:?}");
    }
    Ok(())
}

#[cfg(not(feature = "embedded-broker"))]
fn mqtt_demo(_: &demo::MqttDemoOptions) -> Result<()> {
    bail!("this build has no embedded broker (feature embedded-broker): use demo --offline")
}

fn models(cmd: ModelsCommand) -> Result<()> {
    match cmd {
        ModelsCommand::Fetch {
            name,
            models_dir,
            from,
            url,
        } => {
            let manifest = Manifest::builtin(&name)?;
            let dir = model::models_dir(models_dir.as_deref())?;
            let got = model::fetch(&manifest, &dir, from.as_deref(), url.as_deref())?;
            match got {
                model::Fetched::AlreadyPresent(p) => {
                    println!("{name}: already present and verified at {}", p.display());
                }
                model::Fetched::Copied { from, to } => {
                    println!(
                        "{name}: copied {} -> {} (sha256 ok)",
                        from.display(),
                        to.display()
                    );
                }
                model::Fetched::Downloaded { url, to } => {
                    println!("{name}: downloaded {url} -> {} (sha256 ok)", to.display());
                }
            }
            println!(
                "licence: {} ({})",
                manifest.licence, manifest.licence_notice
            );
            Ok(())
        }
        ModelsCommand::List { models_dir } => {
            let dir = model::models_dir(models_dir.as_deref())?;
            let manifest = Manifest::builtin(model::DEFAULT_MODEL)?;
            let path = manifest.path_in(&dir);
            let state = match manifest.verify_file(&path) {
                Ok(()) => "ok".to_string(),
                Err(e) => e.to_string(),
            };
            println!(
                "{}\t{}\t{}\t{}",
                manifest.name,
                manifest.licence,
                path.display(),
                state
            );
            Ok(())
        }
    }
}
