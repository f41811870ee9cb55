//! sled 0.34 as a power-cut test writer, for comparison with the outbox:
//! see `powercut::protocol`. A record counts as durable once `insert` and
//! `flush()` returned, `flush()` being the call sled documents for
//! durability. Ids are the last key plus one, as the outbox's would be.

use std::error::Error;
use std::process::ExitCode;

use powercut::protocol::{self, Args, Mode};

fn next_id(db: &sled::Db) -> Result<u64, Box<dyn Error>> {
    Ok(match db.last()? {
        Some((key, _)) => u64::from_be_bytes(key.as_ref().try_into()?) + 1,
        None => 0,
    })
}

fn push(db: &sled::Db, id: u64, payload: &str) -> Result<(), Box<dyn Error>> {
    db.insert(id.to_be_bytes(), payload.as_bytes())?;
    db.flush()?;
    println!("{}", protocol::ok_line(id, payload));
    Ok(())
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    // Default configuration: the background flusher syncs every 500 ms.
    let db = sled::open(&args.path)?;
    match args.mode {
        Mode::Create => {
            db.flush()?;
        }
        Mode::Write => {
            let first = next_id(&db)?;
            for (seq, id) in (first..).enumerate() {
                push(&db, id, &protocol::payload(args.tag, seq as u64))?;
            }
        }
        Mode::Check => {
            for item in db.iter() {
                let (key, value) = item?;
                let id = u64::from_be_bytes(key.as_ref().try_into()?);
                println!(
                    "{}",
                    protocol::have_line(id, &String::from_utf8_lossy(&value))
                );
            }
            push(&db, next_id(&db)?, &protocol::payload(args.tag, 0))?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match Args::from_env().map_err(Into::into).and_then(|a| run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sled_writer: {e}");
            ExitCode::from(2)
        }
    }
}
