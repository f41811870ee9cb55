//! `ota`: the camera's update agent and the vendor's signing and rollout
//! tools. Each subcommand is a thin wrapper over the library (`cli.rs`).

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
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
