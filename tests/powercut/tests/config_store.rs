//! The config store under power cuts at random points: after each cut,
//! `load` returns the last version whose `save` returned, or a later one,
//! whole; never an older one, never a torn file.

mod common;

use common::{Engine, Plan, power_cuts, runs, seed};

const CONFIG: Engine = Engine {
    name: "config store",
    exe: env!("CARGO_BIN_EXE_config_writer"),
    file: "config",
    latest_only: true,
};

#[test]
fn the_config_store_keeps_the_last_saved_version() {
    let seed = seed();
    // Not provisioned: the store creates its directory and makes it
    // durable itself, so a cut at first boot is covered too.
    let f = power_cuts(
        &CONFIG,
        Plan {
            runs: runs(),
            per_store: 50,
            provision: false,
            seed,
        },
    );
    eprintln!("{}", f.summary(CONFIG.name, seed));
    assert!(
        f.lost == 0
            && f.corrupt == 0
            && f.unopenable == 0
            && f.writer_failed == 0
            && f.ids_reused == 0,
        "{}\n{}",
        f.summary(CONFIG.name, seed),
        f.first_errors.join("\n")
    );
    assert!(f.reported >= f.runs, "{}", f.summary(CONFIG.name, seed));
    assert!(f.cuts_that_dropped > 0, "{}", f.summary(CONFIG.name, seed));
}
