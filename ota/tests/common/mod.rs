//! A camera in a temporary directory: file-backed A/B slots for rootfs,
//! app and model, a redundant U-Boot environment in two files, a root of
//! trust with delegated signers, and helpers to build good and bad
//! bundles.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use ota::boot::{self, Slot};
use ota::bundle::{self, Release};
use ota::env::Vars;
use ota::install::{self, Expect, InstallError, Installed, Layout};
use ota::manifest::Component;
use ota::slots::EnvStore;
use ota::trust::{Delegation, Role, Root, SecretKey, Signed, Trust, sign};
use sha2::{Digest, Sha256};

/// 2026-11-26, the day these tests were written: "now" for signatures.
pub const NOW: u64 = 1_795_651_200;
pub const DAY: u64 = 86_400;
pub const SLOT_BYTES: u64 = 1 << 20;
pub const CHUNK: u32 = 64 << 10;

pub struct Keys {
    pub root: SecretKey,
    pub signer: SecretKey,
    pub announcer: SecretKey,
    /// Known to nobody.
    pub stranger: SecretKey,
}

impl Keys {
    pub fn new() -> Keys {
        Keys {
            root: SecretKey::from_bytes(&[1; 32]),
            signer: SecretKey::from_bytes(&[2; 32]),
            announcer: SecretKey::from_bytes(&[3; 32]),
            stranger: SecretKey::from_bytes(&[9; 32]),
        }
    }

    pub fn root_doc(&self) -> Root {
        Root::new_v1(
            vec![self.root.public_key()],
            1,
            vec![
                Delegation {
                    key: self.signer.public_key(),
                    roles: vec![Role::Manifest],
                    expires: NOW + 365 * DAY,
                    note: None,
                },
                Delegation {
                    key: self.announcer.public_key(),
                    roles: vec![Role::Announcement],
                    expires: NOW + 365 * DAY,
                    note: None,
                },
            ],
            NOW + 3650 * DAY,
            NOW - DAY,
        )
        .unwrap()
    }

    pub fn signed_root(&self) -> Signed {
        sign(self.root_doc().to_payload(), Role::Root, &[&self.root])
    }

    pub fn trust(&self) -> Trust {
        Trust::from_initial_root(&self.signed_root()).unwrap()
    }
}

pub struct Camera {
    pub dir: tempfile::TempDir,
    pub keys: Keys,
    pub trust: Trust,
    pub layout: Layout,
}

pub fn fill(path: &Path, len: u64, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut v = vec![0u8; len as usize];
    rng.fill(&mut v);
    std::fs::write(path, v).unwrap();
}

impl Camera {
    pub fn new() -> Camera {
        Camera::with_board("rk3588")
    }

    pub fn with_board(board: &str) -> Camera {
        let dir = tempfile::tempdir().unwrap();
        let mut slots = BTreeMap::new();
        for c in Component::ALL {
            let a = dir.path().join(format!("{c}-a"));
            let b = dir.path().join(format!("{c}-b"));
            // Slot A holds the running release; B is whatever was there.
            fill(&a, SLOT_BYTES, 100 + c as u64);
            fill(&b, SLOT_BYTES, 200 + c as u64);
            slots.insert(c, [a, b]);
        }
        let mut vars = Vars::new();
        for c in Component::ALL {
            vars.insert(boot::var(c, "active"), "A".into());
        }
        vars.insert("bootcmd".into(), "run ota_boot".into());
        let env = EnvStore::create_files(dir.path(), 8192, &vars).unwrap();
        let keys = Keys::new();
        let trust = keys.trust();
        Camera {
            layout: Layout {
                board: board.into(),
                env,
                slots,
                booted: BTreeMap::new(),
            },
            dir,
            keys,
            trust,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A random image file.
    pub fn image(&self, name: &str, len: u64, seed: u64) -> PathBuf {
        let p = self.path(name);
        fill(&p, len, seed);
        p
    }

    pub fn release(&self, version: &str, counter: u64) -> Release {
        Release {
            version: version.into(),
            security_counter: counter,
            issued: NOW,
            compatible: vec!["rk3588".into(), "rk3568".into()],
            chunk_size: CHUNK,
        }
    }

    /// A valid bundle with one image of `component`.
    pub fn bundle(&self, name: &str, version: &str, counter: u64, c: Component) -> PathBuf {
        let img = self.image(&format!("{name}.img"), 300_000, counter * 7 + 1);
        let out = self.path(name);
        bundle::create(
            &out,
            &self.release(version, counter),
            &[(c, &img)],
            &[&self.keys.signer],
        )
        .unwrap();
        out
    }

    pub fn install(&self, bundle: &Path) -> Result<Installed, InstallError> {
        self.install_expect(bundle, None)
    }

    pub fn install_expect(
        &self,
        bundle: &Path,
        expect: Option<&Expect>,
    ) -> Result<Installed, InstallError> {
        let mut f = std::fs::File::open(bundle).unwrap();
        let never = AtomicBool::new(false);
        install::install(
            &mut f,
            &self.trust,
            &self.layout,
            NOW,
            expect,
            &mut |_, _| {},
            &never,
        )
    }

    /// sha256 of every slot and both environment copies.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, [u8; 32]> {
        let mut out = BTreeMap::new();
        let mut paths: Vec<PathBuf> = self.layout.slots.values().flatten().cloned().collect();
        paths.extend(self.layout.env.copies.iter().map(|c| c.path.clone()));
        for p in paths {
            out.insert(p.clone(), Sha256::digest(std::fs::read(&p).unwrap()).into());
        }
        out
    }

    pub fn vars(&self) -> Vars {
        self.layout.env.read().unwrap().vars
    }

    /// Boot through the slot logic, as U-Boot (rootfs) and `ota select`
    /// (app, model) do; returns the slot of each component.
    pub fn boot(&mut self) -> BTreeMap<Component, Slot> {
        let cur = self.layout.env.read_vars().unwrap();
        let mut vars = cur.as_ref().map(|c| c.vars.clone());
        let mut booted = BTreeMap::new();
        for c in Component::ALL {
            let sel = boot::select(vars.as_ref(), c, None);
            if let Some(w) = sel.write {
                vars = Some(w);
            }
            booted.insert(c, sel.slot);
        }
        if let (Some(cur), Some(v)) = (cur, vars)
            && v != cur.vars
        {
            self.layout.env.write(Some(&cur), &v).unwrap();
        }
        self.layout.booted = booted.clone();
        booted
    }
}

/// The sha256 of the first `len` bytes of a file.
pub fn sha256_prefix(path: &Path, len: u64) -> [u8; 32] {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes[..len as usize]).into()
}
