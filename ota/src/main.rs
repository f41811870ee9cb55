//! `ota`: what runs on the camera: the update agent, installs and the boot
//! contract of the app and model slots. The vendor's tools (keys, roots,
//! signing, rollouts) are the `ota-vendor` binary, which cameras do not
//! carry. The commands are in `cli.rs`, over the `ota` library.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // `RUST_LOG` as `target=level` pairs (tracing-subscriber's `Targets`:
    // no regex engine on the camera).
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
            eprintln!("ota: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
