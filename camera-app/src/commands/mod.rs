//! The command line: one module per command, each a thin wrapper over the
//! library.

mod bench;
mod default_config;
mod demo;
mod detect;
mod models;
mod outbox_check;
mod run;
mod track;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Retail camera analytics: frames in, people out")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Detect objects in images; one JSON object per image on stdout.
    Detect(detect::Args),
    /// The camera's main job: source → detector (→ tracker → analytics),
    /// writing JSON lines: detections per frame, or bins and events with
    /// `--analytics`.
    Run(run::Args),
    /// Per-stage timings as JSON (medians and p95 in ms).
    Bench(bench::Args),
    /// The embedded default: the whole camera against an MQTT broker it
    /// starts on 127.0.0.1, printing what arrives; `--offline`: the real
    /// model on photos or synthetic frames, no broker.
    Demo(demo::Args),
    /// Manage model weights.
    Models {
        #[command(subcommand)]
        command: models::Command,
    },
    /// Track MOTChallenge detections (`frame,-1,x,y,w,h,score,...`) and
    /// write MOTChallenge tracks to stdout.
    Track(track::Args),
    /// Print the built-in default configuration.
    DefaultConfig,
    /// Check an outbox file (run by the camera at start, in a child
    /// process).
    #[command(hide = true)]
    OutboxCheck(outbox_check::Args),
}

/// Run the command the arguments name.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Detect(a) => detect::run(a),
        Command::Run(a) => run::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Models { command } => models::run(command),
        Command::Track(a) => track::run(a),
        Command::DefaultConfig => default_config::run(),
        Command::OutboxCheck(a) => outbox_check::run(a),
    }
}

/// Logs to stderr; `RUST_LOG` as `target=level` pairs (tracing-subscriber's
/// `Targets`: no regex engine in the camera binary).
pub fn init_logging() {
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
}
