//! Installing a bundle into the inactive slots, in one streaming pass.
//!
//! Order of work, and why:
//! 1. header, signature, manifest, board, security counter, slot sizes:
//!    all checked before any write, so bad input leaves slots and
//!    environment as they were;
//! 2. each chunk is hashed against the signed chunk list before it is
//!    written (a reader thread hashes while the writer writes);
//! 3. every image is synced and read back from its slot and its sha256
//!    compared with the manifest;
//! 4. only then does one environment write mark the new slots pending.
//!
//! All of it under one lock ([`InstallLock`]): a second install started
//! meanwhile is refused (`busy`) before it reads or writes anything.
//!
//! A refusal in step 2 or 3 may leave verified chunks in the inactive
//! slot; that slot is not pending and is never booted.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::boot::{self, Slot};
use crate::bundle::{self, BundleError};
use crate::env::Current;
use crate::manifest::{Component, Manifest, ManifestError};
use crate::slots::{DeviceError, EnvStore, InstallLock, SlotDevice};
use crate::trust::{Role, Signed, Trust, TrustError};

/// Where this camera's slots and environment are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Board name, matched against the manifest's `compatible`.
    pub board: String,
    pub env: EnvStore,
    /// Slot A and B of each component this camera updates.
    pub slots: BTreeMap<Component, [PathBuf; 2]>,
    /// The slot the running system booted, per component, when it differs
    /// from the environment's `active` (a trial). Filled at run time from
    /// the kernel command line; empty means "the active slot".
    #[serde(default, skip)]
    pub booted: BTreeMap<Component, Slot>,
}

/// Why a bundle was not installed. Every variant before `Chunk` is decided
/// before the first write.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("signature: {0}")]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("bundle is for {compatible:?}, this camera is a {board}")]
    WrongBoard {
        board: String,
        compatible: Vec<String>,
    },
    #[error("security counter {bundle} is below this camera's {installed}: a downgrade is refused")]
    Rollback { bundle: u64, installed: u64 },
    #[error("the announcement names {announced}, the bundle's signed manifest says {bundle}")]
    NotAnnounced { announced: String, bundle: String },
    #[error("this camera has no slots for a {0} image")]
    NoSlots(Component),
    #[error("image {name} ({length} bytes) does not fit slot {slot} ({capacity} bytes)")]
    TooLarge {
        name: String,
        length: u64,
        slot: PathBuf,
        capacity: u64,
    },
    #[error("an update of {component} is on trial in slot {slot}: commit or roll it back first")]
    TrialInProgress { component: Component, slot: Slot },
    #[error("the boot environment cannot be read (both copies bad); refusing to install")]
    EnvLost,
    #[error("image {name}: chunk {chunk} (at byte {offset}) does not match the signed manifest")]
    Chunk {
        name: String,
        chunk: u64,
        offset: u64,
    },
    #[error("image {name}: the bundle ends after {got} of {want} bytes")]
    Truncated { name: String, got: u64, want: u64 },
    #[error("image {name}: its sha256 is {got}, the manifest says {want}")]
    ImageHash {
        name: String,
        got: String,
        want: String,
    },
    #[error("the bundle has data after its last image")]
    TrailingData,
    #[error("image {name}: slot {slot} reads back sha256 {got}, the manifest says {want}")]
    ReadBack {
        name: String,
        slot: PathBuf,
        got: String,
        want: String,
    },
    #[error("reading the bundle: {0}")]
    Read(io::Error),
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("cancelled")]
    Cancelled,
    #[error("another install is in progress (it holds the lock on {0}); nothing was changed")]
    Busy(PathBuf),
}

impl InstallError {
    /// A short machine-readable reason for reports.
    pub fn code(&self) -> &'static str {
        match self {
            InstallError::Bundle(_) => "bad-bundle",
            InstallError::Trust(_) => "bad-signature",
            InstallError::Manifest(_) => "bad-manifest",
            InstallError::WrongBoard { .. } => "wrong-board",
            InstallError::Rollback { .. } => "downgrade",
            InstallError::NotAnnounced { .. } => "not-announced",
            InstallError::NoSlots(_) => "no-slots",
            InstallError::TooLarge { .. } => "too-large",
            InstallError::TrialInProgress { .. } => "trial-in-progress",
            InstallError::EnvLost => "env-lost",
            InstallError::Chunk { .. } => "hash-mismatch",
            InstallError::Truncated { .. } => "truncated",
            InstallError::ImageHash { .. } => "hash-mismatch",
            InstallError::TrailingData => "trailing-data",
            InstallError::ReadBack { .. } => "read-back",
            InstallError::Read(_) => "read-error",
            InstallError::Device(_) => "device-error",
            InstallError::Cancelled => "cancelled",
            InstallError::Busy(_) => "busy",
        }
    }
}

/// A verified header: what would be installed, and where.
#[derive(Debug, Clone)]
pub struct Plan {
    pub manifest: Manifest,
    pub signers: Vec<String>,
    /// Target slot per image, in manifest order.
    pub targets: Vec<Slot>,
    env: Option<Current>,
}

/// Check everything that can be checked before a write.
pub fn plan(
    signed: &Signed,
    trust: &Trust,
    layout: &Layout,
    system_now: u64,
) -> Result<Plan, InstallError> {
    let verified = trust.verify(signed, Role::Manifest, system_now)?;
    let manifest = Manifest::parse(verified.payload)?;
    if !manifest.compatible.contains(&layout.board) {
        return Err(InstallError::WrongBoard {
            board: layout.board.clone(),
            compatible: manifest.compatible.clone(),
        });
    }
    let env = layout.env.read_vars()?;
    let Some(cur) = &env else {
        return Err(InstallError::EnvLost);
    };
    let installed = boot::security_counter(&cur.vars);
    if manifest.security_counter < installed {
        return Err(InstallError::Rollback {
            bundle: manifest.security_counter,
            installed,
        });
    }
    let mut targets = Vec::new();
    for img in &manifest.images {
        let paths = layout
            .slots
            .get(&img.component)
            .ok_or(InstallError::NoSlots(img.component))?;
        let st = boot::state(&cur.vars, img.component, None);
        let running = layout
            .booted
            .get(&img.component)
            .copied()
            .unwrap_or(st.active);
        if running != st.active {
            return Err(InstallError::TrialInProgress {
                component: img.component,
                slot: running,
            });
        }
        let target = st.active.other();
        let path = &paths[target.index()];
        let dev = SlotDevice::open(path)?;
        if img.length > dev.capacity() {
            return Err(InstallError::TooLarge {
                name: img.name.clone(),
                length: img.length,
                slot: path.clone(),
                capacity: dev.capacity(),
            });
        }
        targets.push(target);
    }
    Ok(Plan {
        signers: verified.signers.iter().map(ToString::to_string).collect(),
        manifest,
        targets,
        env,
    })
}

/// What the announcement said the bundle is: the signed manifest must
/// agree, so an announcement cannot be paired with another release's
/// bundle (mix-and-match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub version: String,
    pub security_counter: u64,
}

/// What was installed.
#[derive(Debug, Clone)]
pub struct Installed {
    pub manifest: Manifest,
    pub targets: Vec<(Component, Slot)>,
}

/// Install a bundle read from `r`: verify, stream to the inactive slots,
/// read back, then mark them pending in one environment write.
/// `progress(done, total)` gets payload bytes.
pub fn install(
    r: &mut (dyn Read + Send),
    trust: &Trust,
    layout: &Layout,
    system_now: u64,
    expect: Option<&Expect>,
    progress: &mut dyn FnMut(u64, u64),
    cancel: &AtomicBool,
) -> Result<Installed, InstallError> {
    // Before the environment is read: it decides the target slots.
    let Some(_lock) = InstallLock::try_acquire(&layout.env)? else {
        return Err(InstallError::Busy(layout.env.copies[0].path.clone()));
    };
    let signed = bundle::read_header(r)?;
    let plan = plan(&signed, trust, layout, system_now)?;
    if let Some(e) = expect
        && (e.version != plan.manifest.version
            || e.security_counter != plan.manifest.security_counter)
    {
        return Err(InstallError::NotAnnounced {
            announced: format!("{} (counter {})", e.version, e.security_counter),
            bundle: format!(
                "{} (counter {})",
                plan.manifest.version, plan.manifest.security_counter
            ),
        });
    }
    let mut env = plan.env.clone();
    // A stale trial of a slot about to be overwritten is forgotten first,
    // so a half-written slot can never be booted.
    if let Some(cur) = &env {
        let mut vars = cur.vars.clone();
        for (img, target) in plan.manifest.images.iter().zip(&plan.targets) {
            if boot::state(&vars, img.component, None).pending == Some(*target) {
                vars = boot::clear_pending(&vars, img.component);
            }
            // Nor is its old version reported for the new bytes.
            vars = boot::set_version(&vars, img.component, *target, None);
        }
        if vars != cur.vars {
            env = Some(layout.env.write(Some(cur), &vars)?);
        }
    }
    let total = plan.manifest.payload_len();
    let mut done = 0u64;
    let mut devices = Vec::new();
    for (img, target) in plan.manifest.images.iter().zip(&plan.targets) {
        let path = &layout.slots[&img.component][target.index()];
        let dev = SlotDevice::open(path)?;
        stream_image(
            r,
            img,
            Some(&dev),
            None,
            &mut |n| {
                done += n;
                progress(done, total);
            },
            cancel,
        )?;
        dev.sync()?;
        devices.push(dev);
    }
    let mut probe = [0u8; 1];
    if bundle::read_up_to(r, &mut probe).map_err(InstallError::Read)? != 0 {
        return Err(InstallError::TrailingData);
    }
    for (img, dev) in plan.manifest.images.iter().zip(&devices) {
        read_back(img, dev)?;
    }
    let Some(cur) = env else {
        return Err(InstallError::EnvLost);
    };
    let mut vars = cur.vars.clone();
    for (img, target) in plan.manifest.images.iter().zip(&plan.targets) {
        vars = boot::set_pending(&vars, img.component, *target);
        vars = boot::set_version(&vars, img.component, *target, Some(&plan.manifest.version));
    }
    layout.env.write(Some(&cur), &vars)?;
    Ok(Installed {
        targets: plan
            .manifest
            .images
            .iter()
            .map(|i| i.component)
            .zip(plan.targets.iter().copied())
            .collect(),
        manifest: plan.manifest,
    })
}

/// Check a whole bundle without writing anything: header, signature,
/// manifest, every chunk, no trailing data.
pub fn verify(
    r: &mut (dyn Read + Send),
    trust: &Trust,
    system_now: u64,
) -> Result<(Manifest, Vec<String>), InstallError> {
    let signed = bundle::read_header(r)?;
    let verified = trust.verify(&signed, Role::Manifest, system_now)?;
    let manifest = Manifest::parse(verified.payload)?;
    let never = AtomicBool::new(false);
    for img in &manifest.images {
        // No slot to read back from: hash the whole image as it passes.
        let mut whole = Sha256::new();
        stream_image(r, img, None, Some(&mut whole), &mut |_| {}, &never)?;
        let got: [u8; 32] = whole.finalize().into();
        if got != img.sha256.0 {
            return Err(InstallError::ImageHash {
                name: img.name.clone(),
                got: hex::encode(got),
                want: img.sha256.to_string(),
            });
        }
    }
    let mut probe = [0u8; 1];
    if bundle::read_up_to(r, &mut probe).map_err(InstallError::Read)? != 0 {
        return Err(InstallError::TrailingData);
    }
    Ok((
        manifest,
        verified.signers.iter().map(ToString::to_string).collect(),
    ))
}

/// Stream one image: a reader thread reads and hashes each chunk, this
/// thread writes the chunks that matched. Two cores hash and write at once.
fn stream_image(
    r: &mut (dyn Read + Send),
    img: &crate::manifest::Image,
    dev: Option<&SlotDevice>,
    mut whole: Option<&mut Sha256>,
    progress: &mut dyn FnMut(u64),
    cancel: &AtomicBool,
) -> Result<(), InstallError> {
    let chunk = u64::from(img.chunk_size);
    // Two chunks queued, one being hashed, one being written, and the
    // recycled buffers: memory stays a few chunks whatever the image size.
    let (tx, rx) = mpsc::sync_channel::<Result<(u64, Vec<u8>), InstallError>>(2);
    let (back_tx, back_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|s| {
        s.spawn(move || {
            for (i, want) in img.chunks.iter().enumerate() {
                if cancel.load(Ordering::Relaxed) {
                    let _ = tx.send(Err(InstallError::Cancelled));
                    return;
                }
                let offset = i as u64 * chunk;
                let len = chunk.min(img.length - offset) as usize;
                let mut buf = back_rx.try_recv().unwrap_or_default();
                buf.resize(len, 0);
                let got = match bundle::read_up_to(r, &mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.send(Err(InstallError::Read(e)));
                        return;
                    }
                };
                if got < len {
                    let _ = tx.send(Err(InstallError::Truncated {
                        name: img.name.clone(),
                        got: offset + got as u64,
                        want: img.length,
                    }));
                    return;
                }
                if Sha256::digest(&buf).as_slice() != want.0 {
                    let _ = tx.send(Err(InstallError::Chunk {
                        name: img.name.clone(),
                        chunk: i as u64,
                        offset,
                    }));
                    return;
                }
                if tx.send(Ok((offset, buf))).is_err() {
                    return;
                }
            }
        });
        for msg in rx {
            let (offset, buf) = msg?;
            if let Some(dev) = dev {
                dev.write_at(offset, &buf)?;
            }
            if let Some(h) = whole.as_deref_mut() {
                h.update(&buf);
            }
            progress(buf.len() as u64);
            let _ = back_tx.send(buf);
        }
        Ok(())
    })
}

/// Read an image back from its slot and compare its sha256.
fn read_back(img: &crate::manifest::Image, dev: &SlotDevice) -> Result<(), InstallError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < img.length {
        let n = (img.length - off).min(buf.len() as u64) as usize;
        dev.read_at(off, &mut buf[..n])?;
        h.update(&buf[..n]);
        off += n as u64;
    }
    let got: [u8; 32] = h.finalize().into();
    if got != img.sha256.0 {
        return Err(InstallError::ReadBack {
            name: img.name.clone(),
            slot: dev.path().to_path_buf(),
            got: hex::encode(got),
            want: img.sha256.to_string(),
        });
    }
    Ok(())
}
