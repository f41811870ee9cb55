//! `ota-vendor sign`, `inspect` and `verify`: signed bundles.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use ota::bundle::{self, Release};
use ota::install;
use ota::manifest::{Component, DEFAULT_CHUNK, Manifest};

use crate::cli::now_s;
use crate::files::read_secret;
use crate::root::load_trust;

/// The flags of `ota-vendor sign` (its help is the doc of `cli::Cmd::Sign`).
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The manifest signing key (delegated by the root).
    #[arg(long)]
    key: PathBuf,
    #[arg(long)]
    version: String,
    /// Anti-rollback counter; cameras refuse a lower one.
    #[arg(long)]
    counter: u64,
    /// Compatible board (boards/<name>.toml); repeat for several.
    #[arg(long = "board", required = true)]
    boards: Vec<String>,
    /// Check the boards against this directory of profiles.
    #[arg(long)]
    boards_dir: Option<PathBuf>,
    #[arg(long)]
    rootfs: Option<PathBuf>,
    #[arg(long)]
    app: Option<PathBuf>,
    #[arg(long)]
    model: Option<PathBuf>,
    #[arg(long, default_value_t = DEFAULT_CHUNK)]
    chunk_size: u32,
    #[arg(long, short)]
    out: PathBuf,
}

/// `ota-vendor sign`: build and sign a bundle from images.
pub fn sign(a: SignArgs) -> anyhow::Result<()> {
    if let Some(dir) = &a.boards_dir {
        // A bundle names boards by their profile; a typo would make it
        // installable nowhere.
        for b in &a.boards {
            boards::Profile::find(dir, b)
                .with_context(|| format!("board {b} has no valid profile"))?;
        }
    }
    let key = read_secret(&a.key)?;
    let mut images: Vec<(Component, &Path)> = Vec::new();
    for (c, p) in [
        (Component::Rootfs, &a.rootfs),
        (Component::App, &a.app),
        (Component::Model, &a.model),
    ] {
        if let Some(p) = p {
            images.push((c, p.as_path()));
        }
    }
    if images.is_empty() {
        bail!("give at least one of --rootfs, --app, --model");
    }
    let release = Release {
        version: a.version,
        security_counter: a.counter,
        issued: now_s(),
        compatible: a.boards,
        chunk_size: a.chunk_size,
    };
    let m = bundle::create(&a.out, &release, &images, &[&key])
        .with_context(|| format!("writing {}", a.out.display()))?;
    println!(
        "{}: version {} counter {}, {} image(s), {} payload bytes",
        a.out.display(),
        m.version,
        m.security_counter,
        m.images.len(),
        m.payload_len()
    );
    Ok(())
}

/// `ota-vendor inspect`: the manifest and who signed it, without trust.
pub fn inspect(path: &Path) -> anyhow::Result<()> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let signed = bundle::read_header(&mut f)?;
    let m = Manifest::parse(&signed.payload)?;
    let keyids: Vec<String> = signed
        .signatures
        .iter()
        .map(|s| s.keyid.to_string())
        .collect();
    let mut v = serde_json::to_value(&m)?;
    if let Some(imgs) = v.get_mut("images").and_then(|i| i.as_array_mut()) {
        for i in imgs {
            if let Some(o) = i.as_object_mut() {
                let n = o
                    .get("chunks")
                    .and_then(|c| c.as_array())
                    .map_or(0, Vec::len);
                o.insert(
                    "chunks".into(),
                    serde_json::json!(format!("{n} chunk hashes")),
                );
            }
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({"manifest": v, "signed_by": keyids}))?
    );
    Ok(())
}

/// `ota-vendor verify`: the whole bundle against a root and its rotations.
pub fn verify(path: &Path, roots: &[PathBuf]) -> anyhow::Result<()> {
    let trust = load_trust(roots)?;
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (m, signers) = install::verify(&mut f, &trust, now_s())?;
    println!(
        "{}: OK, version {} counter {} for {:?}, signed by {:?}",
        path.display(),
        m.version,
        m.security_counter,
        m.compatible,
        signers
    );
    Ok(())
}
