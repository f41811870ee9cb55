//! `ota-vendor`: the vendor's side of signed updates: keys, roots of
//! trust, factory bundles (provisioning), signed bundles, staged
//! rollouts, root rotation, and the install benchmark. It runs on the
//! vendor's machines, never on a camera (whose `ota` binary has only
//! `provision`, the agent, `install` and `select`). The commands are
//! modules over the `ota` library, dispatched from `cli.rs`.

mod bench;
mod bundle;
mod campaign;
mod cli;
mod factory;
mod files;
mod root;

use clap::Parser;

fn main() -> std::process::ExitCode {
    ota::logging::init();
    let args = cli::Args::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ota-vendor: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
