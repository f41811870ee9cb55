//! The product's outbox (redb) as a power-cut test writer: see
//! `powercut::protocol`. A record counts as durable once `push` returned.

use std::error::Error;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use camera_app::outbox::{Outbox, OutboxLimits};
use powercut::protocol::{self, Args, Mode};

const TOPIC: &str = "stores/1/cameras/door/events";

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let mut outbox = Outbox::open(&args.path, OutboxLimits::default())?;
    match args.mode {
        Mode::Create => {}
        Mode::Write => {
            for seq in 0.. {
                let payload = protocol::payload(args.tag, seq);
                let id = outbox.push(TOPIC, payload.as_bytes(), now_us())?;
                println!("{}", protocol::ok_line(id, &payload));
            }
        }
        Mode::Check => {
            for entry in outbox.pending(usize::MAX)? {
                let payload = String::from_utf8_lossy(&entry.payload);
                println!("{}", protocol::have_line(entry.id, &payload));
            }
            let payload = protocol::payload(args.tag, 0);
            let id = outbox.push(TOPIC, payload.as_bytes(), now_us())?;
            println!("{}", protocol::ok_line(id, &payload));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match Args::from_env().map_err(Into::into).and_then(|a| run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outbox_writer: {e}");
            ExitCode::from(2)
        }
    }
}
