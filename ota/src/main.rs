//! `ota`: what runs on the camera: the update agent, installs and the boot
//! contract of the app and model slots. The vendor's tools (keys, roots,
//! signing, rollouts) are the `ota-vendor` binary, which cameras do not
//! carry. The commands are in `cli.rs`, over the `ota` library.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    ota::logging::init();
    let args = cli::Args::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ota: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
