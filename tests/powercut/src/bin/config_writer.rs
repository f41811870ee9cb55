//! The config store as a power-cut test writer: see `powercut::protocol`.
//! The "id" is the configuration version and the payload its body; a
//! version counts as durable once `save` returned.

use std::error::Error;
use std::process::ExitCode;

use camera_app::config_store::ConfigStore;
use powercut::protocol::{self, Args, Mode};

/// The body saved as `version`: the same whichever run saves it.
fn body(version: u64) -> String {
    protocol::payload(0, version)
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let store = ConfigStore::open(&args.path)?;
    let next = store.load()?.map_or(1, |c| c.version + 1);
    match args.mode {
        Mode::Create => {}
        Mode::Write => {
            for version in next.. {
                let body = body(version);
                store.save(version, &body)?;
                println!("{}", protocol::ok_line(version, &body));
            }
        }
        Mode::Check => {
            if let Some(c) = store.load()? {
                println!("{}", protocol::have_line(c.version, &c.body));
            }
            store.save(next, &body(next))?;
            println!("{}", protocol::ok_line(next, &body(next)));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match Args::from_env().map_err(Into::into).and_then(|a| run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("config_writer: {e}");
            ExitCode::from(2)
        }
    }
}
