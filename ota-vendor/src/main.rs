//! `ota-vendor`: the vendor's side of signed updates: keys, roots of
//! trust, signed bundles, staged rollouts, root rotation, and the install
//! benchmark. It runs on the vendor's machines, never on a camera (whose
//! `ota` binary has only the agent, `install` and `select`). The commands
//! are modules over the `ota` library, dispatched from `cli.rs`.

mod bench;
mod bundle;
mod campaign;
mod cli;
mod files;
mod root;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // `RUST_LOG` as `target=level` pairs, as the camera's `ota` reads it.
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse::<tracing_subscriber::filter::Targets>().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
        });
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();
    let args = cli::Args::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ota-vendor: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
