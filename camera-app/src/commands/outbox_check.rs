//! `camera-app outbox-check FILE`: whether an outbox file is whole. The
//! camera runs it in a child process at start (runtime::setup), where a
//! panic of the store engine on a damaged file ends only the child.

use std::path::PathBuf;

use anyhow::anyhow;

#[derive(clap::Args)]
pub struct Args {
    /// The outbox file.
    path: PathBuf,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    camera_app::outbox::verify(&a.path).map_err(|reason| anyhow!("{}: {reason}", a.path.display()))
}
