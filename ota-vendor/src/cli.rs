//! The `ota-vendor` subcommands and their dispatch; each group's code
//! (and the flags of the larger ones) is in its own module.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{bench, bundle, campaign, factory, files, root};

#[derive(Debug, Parser)]
#[command(
    name = "ota-vendor",
    version,
    about = "Signed A/B updates for the retail camera: the vendor's keys, roots, bundles and rollouts"
)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Make an Ed25519 key pair: <NAME>.key (secret, mode 600) and <NAME>.pub.
    Keygen { name: PathBuf },
    /// Seal one camera's factory bundle (identity, broker, certificates,
    /// root of trust), signed with the vendor's factory key.
    Provision(factory::ProvisionArgs),
    /// Root of trust: create, sign, rotate.
    #[command(subcommand)]
    Root(root::RootCmd),
    /// Build and sign a bundle from images.
    Sign(bundle::SignArgs),
    /// Show a bundle's manifest and signatures (no trust needed).
    Inspect { bundle: PathBuf },
    /// Verify a bundle completely against a root (and its rotations).
    Verify {
        bundle: PathBuf,
        /// The root, then each later root in order.
        #[arg(long = "root", required = true)]
        roots: Vec<PathBuf>,
    },
    /// Publish a campaign in waves, watch the reports, halt on failures.
    Rollout(campaign::RolloutArgs),
    /// Sign one announcement into a file, for a back office that publishes
    /// it itself (retained, on `ota/announce`).
    Announce(campaign::AnnounceArgs),
    /// Publish the chain of roots after the factory one (retained), so
    /// that cameras rotate their root of trust.
    PublishRoots {
        /// host:port of the broker.
        #[arg(long)]
        broker: String,
        #[arg(long, default_value = "ota/roots")]
        topic: String,
        /// Signed roots, version 2 first.
        #[arg(required = true)]
        roots: Vec<PathBuf>,
    },
    /// Benchmark: verify and write a payload vs sha256sum + cp.
    Bench {
        /// Payload size in MiB.
        #[arg(long, default_value_t = 256)]
        size_mib: u64,
        /// Working directory (default: a temporary one).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.cmd {
        Cmd::Keygen { name } => files::keygen(&name)?,
        Cmd::Provision(a) => factory::provision(a)?,
        Cmd::Root(rc) => root::run(rc)?,
        Cmd::Sign(a) => bundle::sign(a)?,
        Cmd::Inspect { bundle } => bundle::inspect(&bundle)?,
        Cmd::Verify { bundle, roots } => bundle::verify(&bundle, &roots)?,
        // The only command whose exit code says more than success: how
        // the campaign ended.
        Cmd::Rollout(a) => return campaign::rollout(a),
        Cmd::Announce(a) => campaign::announce(a)?,
        Cmd::PublishRoots {
            broker,
            topic,
            roots,
        } => campaign::publish_roots(&broker, &topic, &roots)?,
        Cmd::Bench { size_mib, dir } => println!("{}", bench::run(size_mib, dir.as_deref())?),
    }
    Ok(ExitCode::SUCCESS)
}

/// Seconds since the epoch by the local clock: the vendor's machine is
/// trusted for `issued` and expiry times.
pub fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
