//! `ota-vendor root new|next|sign`: the root of trust, and loading a root
//! with its rotations (for `verify`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use clap::Subcommand;

use ota::trust::{Delegation, Role, Root, Signed, Trust};

use crate::cli::now_s;
use crate::files::{read_public, read_secret, read_signed, write_json};

#[derive(Debug, Subcommand)]
pub enum RootCmd {
    /// A new root (version 1), unsigned: sign it with `ota-vendor root sign`.
    New {
        /// Root public keys.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        #[arg(long, default_value_t = 1)]
        threshold: u32,
        /// A delegated signer: ROLE=PUBFILE, ROLE is manifest or announcement.
        #[arg(long = "signer")]
        signers: Vec<String>,
        #[arg(long, default_value = "3650d")]
        expires_in: humantime::Duration,
        #[arg(long, short)]
        out: PathBuf,
    },
    /// The successor of a root (version + 1), unsigned; it must be signed
    /// by the old root's keys and its own.
    Next {
        root: PathBuf,
        /// Replace the root keys.
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        #[arg(long)]
        threshold: Option<u32>,
        #[arg(long = "add-signer")]
        add_signers: Vec<String>,
        /// Revoke a key (its .pub file or key id).
        #[arg(long = "revoke")]
        revoke: Vec<String>,
        #[arg(long, default_value = "3650d")]
        expires_in: humantime::Duration,
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Add a root key's signature to a root document, in place.
    Sign {
        root: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
}

/// `ota-vendor root new|next|sign`.
pub fn run(rc: RootCmd) -> anyhow::Result<()> {
    match rc {
        RootCmd::New {
            keys,
            threshold,
            signers,
            expires_in,
            out,
        } => {
            let now = now_s();
            let expires = now + expires_in.as_secs();
            let keys = keys
                .iter()
                .map(|p| read_public(p))
                .collect::<Result<Vec<_>, _>>()?;
            let signers = signers
                .iter()
                .map(|s| parse_signer(s, expires))
                .collect::<Result<Vec<_>, _>>()?;
            let root = Root::new_v1(keys, threshold, signers, expires, now)?;
            let signed = Signed {
                payload: root.to_payload(),
                signatures: Vec::new(),
            };
            write_json(&out, &signed)?;
            println!(
                "{}: root version 1, sign it with `ota-vendor root sign`",
                out.display()
            );
        }
        RootCmd::Next {
            root,
            keys,
            threshold,
            add_signers,
            revoke,
            expires_in,
            out,
        } => {
            let old = Root::parse(&read_signed(&root)?.payload)?;
            let now = now_s();
            let mut next = old.next();
            next.issued = now;
            next.expires = now + expires_in.as_secs();
            if !keys.is_empty() {
                next.keys = keys
                    .iter()
                    .map(|p| read_public(p))
                    .collect::<Result<_, _>>()?;
            }
            if let Some(t) = threshold {
                next.threshold = t;
            }
            for s in &add_signers {
                next.signers.push(parse_signer(s, next.expires)?);
            }
            for r in &revoke {
                let id = if Path::new(r).exists() {
                    read_public(Path::new(r))?.key_id()
                } else {
                    serde_json::from_value(serde_json::Value::String(r.clone()))
                        .with_context(|| format!("--revoke {r}: not a .pub file or key id"))?
                };
                next.signers.retain(|d| d.key.key_id() != id);
                next.revoked.push(id);
            }
            next.validate()?;
            write_json(
                &out,
                &Signed {
                    payload: next.to_payload(),
                    signatures: Vec::new(),
                },
            )?;
            println!(
                "{}: root version {}; sign it with the keys of version {} and its own",
                out.display(),
                next.version,
                old.version
            );
        }
        RootCmd::Sign { root, key } => {
            let mut signed = read_signed(&root)?;
            let key = read_secret(&key)?;
            signed.add_signature(Role::Root, &key);
            write_json(&root, &signed)?;
            println!(
                "{}: {} signature(s)",
                root.display(),
                signed.signatures.len()
            );
        }
    }
    Ok(())
}

fn parse_signer(s: &str, expires: u64) -> anyhow::Result<Delegation> {
    let (role, path) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("signer {s:?} is not ROLE=PUBFILE"))?;
    let role = match role {
        "manifest" => Role::Manifest,
        "announcement" => Role::Announcement,
        _ => bail!("signer role {role:?} is not manifest or announcement"),
    };
    Ok(Delegation {
        key: read_public(Path::new(path))?,
        roles: vec![role],
        expires,
        note: Some(path.to_string()),
    })
}

/// Load a root and apply its rotations.
pub fn load_trust(roots: &[PathBuf]) -> anyhow::Result<Trust> {
    let (first, rest) = roots
        .split_first()
        .ok_or_else(|| anyhow!("no root given"))?;
    let mut t = Trust::from_initial_root(&read_signed(first)?)
        .with_context(|| format!("root {}", first.display()))?;
    for p in rest {
        t.update_root(&read_signed(p)?, now_s())
            .with_context(|| format!("root {}", p.display()))?;
    }
    Ok(t)
}
