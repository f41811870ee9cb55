//! The hardware seams of an install: slot devices and the environment
//! store. Both are opened by path: files or block devices (a slot is
//! `/dev/mmcblk0p3` on a camera and a file in a temporary directory in
//! tests: the same code runs on both), and for the environment also raw
//! flash through MTD ([`crate::flash`]: erase, then write), tested on a
//! NAND double.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::env::{self, Current, EnvCopy, EnvError, Vars};
use crate::flash::{self, Flash, Geometry};

/// An I/O failure with the device it happened on.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("environment: {0}")]
    Env(#[from] EnvError),
    #[error(
        "environment read back from {path} does not hold what was written (flash or driver fault)"
    )]
    ReadBack { path: PathBuf },
    #[error("environment on {path}: {reason}")]
    EnvLayout { path: PathBuf, reason: String },
    #[error("environment on {path}: the erase block at {offset:#x} is bad")]
    BadBlock { path: PathBuf, offset: u64 },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DeviceError + 'a {
    move |source| DeviceError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// One slot: a block device or a file of fixed size.
#[derive(Debug)]
pub struct SlotDevice {
    path: PathBuf,
    file: File,
    capacity: u64,
}

impl SlotDevice {
    /// Open for reading and writing. A regular file's capacity is its
    /// length (tests create it at the slot's size); a block device's is
    /// its size.
    pub fn open(path: &Path) -> Result<SlotDevice, DeviceError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err("opening slot", path))?;
        let capacity = file
            .seek(SeekFrom::End(0))
            .map_err(io_err("sizing slot", path))?;
        Ok(SlotDevice {
            path: path.to_path_buf(),
            file,
            capacity,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), DeviceError> {
        self.file
            .write_all_at(buf, offset)
            .map_err(io_err("writing slot", &self.path))
    }

    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(io_err("reading slot", &self.path))
    }

    pub fn sync(&self) -> Result<(), DeviceError> {
        self.file
            .sync_data()
            .map_err(io_err("syncing slot", &self.path))?;
        // The read-back must see the medium, not the page cache, where the
        // kernel lets us say so. Advice only: failure is not an error.
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: posix_fadvise reads only its integer arguments; the
            // descriptor is open for the lifetime of `self.file`.
            unsafe {
                libc::posix_fadvise(self.file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
            }
        }
        Ok(())
    }
}

/// Where one copy of the environment lives (as in `fw_env.config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvLocation {
    pub path: PathBuf,
    #[serde(default)]
    pub offset: u64,
}

/// Held for a whole install transaction (environment read, slot writes,
/// read-back, the pending write): a second install meanwhile is refused,
/// never interleaved. Two installs at once once left slot B holding the
/// chunks of both while the one that finished marked it pending.
///
/// An advisory `flock` on the first environment copy: every installer on
/// the camera (the agent, `ota install`) names the same file or device,
/// and the kernel drops the lock when its holder dies, so a crash or kill
/// never leaves the camera locked.
#[derive(Debug)]
pub struct InstallLock {
    _file: File,
}

impl InstallLock {
    /// Take the lock, or `Ok(None)` when another install holds it.
    pub fn try_acquire(env: &EnvStore) -> Result<Option<InstallLock>, DeviceError> {
        let path = &env.copies[0].path;
        let file = File::open(path).map_err(io_err("opening for the install lock", path))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(InstallLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(io_err("locking", path)(e)),
        }
    }
}

/// A redundant U-Boot environment: two copies of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvStore {
    pub copies: [EnvLocation; 2],
    pub size: usize,
}

/// The media of an environment's two copies, opened: one device when
/// both copies share it (raw NAND: `/dev/mtd1` at two offsets).
#[derive(Debug)]
pub struct EnvMedia {
    devices: Vec<Box<dyn Flash>>,
    of_copy: [usize; 2],
}

impl EnvMedia {
    /// Both copies on one medium (tests: a NAND double).
    pub fn shared(device: Box<dyn Flash>) -> EnvMedia {
        EnvMedia {
            devices: vec![device],
            of_copy: [0, 0],
        }
    }

    fn of(&mut self, which: usize) -> &mut dyn Flash {
        self.devices[self.of_copy[which]].as_mut()
    }
}

fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

impl EnvStore {
    /// Open the copies' devices.
    pub fn open_media(&self) -> Result<EnvMedia, DeviceError> {
        let mut devices = Vec::new();
        let mut of_copy = [0; 2];
        for (which, loc) in self.copies.iter().enumerate() {
            if which == 1 && loc.path == self.copies[0].path {
                of_copy[1] = of_copy[0];
                continue;
            }
            let dev = flash::open(&loc.path).map_err(io_err("opening environment", &loc.path))?;
            of_copy[which] = devices.len();
            devices.push(dev);
        }
        Ok(EnvMedia { devices, of_copy })
    }

    /// The bytes `copy` covers on its medium: its size, or on raw flash
    /// its whole erase blocks. Copies on one medium must not share a block
    /// (erasing one would take the other with it); a copy starts on a
    /// block boundary.
    fn check_layout(&self, media: &mut EnvMedia) -> Result<(), DeviceError> {
        let mut spans = [(0u64, 0u64); 2];
        for (which, loc) in self.copies.iter().enumerate() {
            let geometry = media.of(which).geometry();
            let mut len = self.size as u64;
            if let Geometry::Erase { erase_size, .. } = geometry {
                if !loc.offset.is_multiple_of(erase_size) {
                    return Err(DeviceError::EnvLayout {
                        path: loc.path.clone(),
                        reason: format!(
                            "copy at {:#x} does not start an erase block of {erase_size:#x}",
                            loc.offset
                        ),
                    });
                }
                len = round_up(len, erase_size);
            }
            spans[which] = (loc.offset, loc.offset + len);
        }
        if media.of_copy[0] == media.of_copy[1]
            && spans[0].0 < spans[1].1
            && spans[1].0 < spans[0].1
        {
            return Err(DeviceError::EnvLayout {
                path: self.copies[0].path.clone(),
                reason: format!(
                    "copies at {:#x} and {:#x} share bytes or an erase block",
                    self.copies[0].offset, self.copies[1].offset
                ),
            });
        }
        Ok(())
    }

    fn read_copy(&self, media: &mut EnvMedia, which: usize) -> Result<Vec<u8>, DeviceError> {
        let loc = &self.copies[which];
        let dev = media.of(which);
        let mut buf = vec![0; self.size];
        // A copy in a bad block reads as erased: invalid, so the other
        // copy is used.
        let raw = matches!(dev.geometry(), Geometry::Erase { .. });
        if raw
            && dev
                .is_bad_block(loc.offset)
                .map_err(io_err("checking for a bad block", &loc.path))?
        {
            buf.fill(0xff);
            return Ok(buf);
        }
        dev.read_at(loc.offset, &mut buf)
            .map_err(io_err("reading environment", &loc.path))?;
        Ok(buf)
    }

    fn write_copy(
        &self,
        media: &mut EnvMedia,
        which: usize,
        image: &[u8],
    ) -> Result<(), DeviceError> {
        let loc = &self.copies[which];
        let dev = media.of(which);
        match dev.geometry() {
            Geometry::InPlace => dev
                .write_at(loc.offset, image)
                .map_err(io_err("writing environment", &loc.path))?,
            Geometry::Erase {
                erase_size,
                write_size,
            } => {
                let blocks = round_up(image.len() as u64, erase_size);
                let mut at = loc.offset;
                while at < loc.offset + blocks {
                    if dev
                        .is_bad_block(at)
                        .map_err(io_err("checking for a bad block", &loc.path))?
                    {
                        return Err(DeviceError::BadBlock {
                            path: loc.path.clone(),
                            offset: at,
                        });
                    }
                    at += erase_size;
                }
                dev.erase(loc.offset, blocks)
                    .map_err(io_err("erasing environment", &loc.path))?;
                // Whole pages; the tail stays erased.
                let mut padded = image.to_vec();
                padded.resize(round_up(image.len() as u64, write_size) as usize, 0xff);
                dev.write_at(loc.offset, &padded)
                    .map_err(io_err("writing environment", &loc.path))?;
            }
        }
        dev.sync().map_err(io_err("syncing environment", &loc.path))
    }

    /// The current environment (the valid copy with the newer flags).
    pub fn read(&self) -> Result<Current, DeviceError> {
        self.read_on(&mut self.open_media()?)
    }

    /// [`EnvStore::read`] on media already open.
    pub fn read_on(&self, media: &mut EnvMedia) -> Result<Current, DeviceError> {
        self.check_layout(media)?;
        let a = self.read_copy(media, 0)?;
        let b = self.read_copy(media, 1)?;
        Ok(env::read_redundant(&a, &b)?)
    }

    /// The current variables, or `None` when both copies are bad (the
    /// bootloader then runs on its default environment).
    pub fn read_vars(&self) -> Result<Option<Current>, DeviceError> {
        self.read_vars_on(&mut self.open_media()?)
    }

    /// [`EnvStore::read_vars`] on media already open.
    pub fn read_vars_on(&self, media: &mut EnvMedia) -> Result<Option<Current>, DeviceError> {
        match self.read_on(media) {
            Ok(c) => Ok(Some(c)),
            Err(DeviceError::Env(EnvError::BothBad { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One transaction: write `vars` to the other copy with the next
    /// flags (on raw flash: erase its blocks, then program it), sync, and
    /// read it back. A cut at any point leaves the current copy in force.
    /// With `current` `None` (both copies bad), copy A is written with
    /// flags 0 and then copy B, so that both are valid again.
    pub fn write(&self, current: Option<&Current>, vars: &Vars) -> Result<Current, DeviceError> {
        self.write_on(&mut self.open_media()?, current, vars)
    }

    /// [`EnvStore::write`] on media already open.
    pub fn write_on(
        &self,
        media: &mut EnvMedia,
        current: Option<&Current>,
        vars: &Vars,
    ) -> Result<Current, DeviceError> {
        self.check_layout(media)?;
        let Some(current) = current else {
            let image = env::encode(vars, self.size, Some(0))?;
            self.write_copy(media, 0, &image)?;
            let first = Current {
                vars: vars.clone(),
                copy: EnvCopy::A,
                flags: 0,
            };
            return self.write_on(media, Some(&first), vars);
        };
        let (copy, image) = env::next_write(current, vars, self.size)?;
        let which = match copy {
            EnvCopy::A => 0,
            EnvCopy::B => 1,
        };
        self.write_copy(media, which, &image)?;
        let back = self.read_copy(media, which)?;
        if back != image {
            return Err(DeviceError::ReadBack {
                path: self.copies[which].path.clone(),
            });
        }
        Ok(Current {
            vars: vars.clone(),
            copy,
            flags: current.flags.wrapping_add(1),
        })
    }

    /// File-backed environment for tests and the demo: two files of `size`
    /// bytes under `dir`, initialised with `vars` when absent.
    pub fn create_files(dir: &Path, size: usize, vars: &Vars) -> Result<EnvStore, DeviceError> {
        let store = EnvStore {
            copies: [
                EnvLocation {
                    path: dir.join("uboot-env.a"),
                    offset: 0,
                },
                EnvLocation {
                    path: dir.join("uboot-env.b"),
                    offset: 0,
                },
            ],
            size,
        };
        for loc in &store.copies {
            let f = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&loc.path)
                .map_err(io_err("creating environment", &loc.path))?;
            f.set_len(size as u64)
                .map_err(io_err("sizing environment", &loc.path))?;
        }
        if store.read_vars()?.is_none() {
            store.write(None, vars)?;
        }
        Ok(store)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn env_store_writes_alternate_copies_and_survive_one_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = Vars::new();
        v.insert("ota_rootfs_active".into(), "A".into());
        let store = EnvStore::create_files(dir.path(), 4096, &v).unwrap();
        let cur = store.read().unwrap();
        assert_eq!(cur.vars, v);
        v.insert("ota_rootfs_pending".into(), "B".into());
        let next = store.write(Some(&cur), &v).unwrap();
        assert_ne!(next.copy, cur.copy);
        assert_eq!(store.read().unwrap().vars, v);
        // Corrupt the newest copy: the previous one is read.
        let newest = &store.copies[match next.copy {
            EnvCopy::A => 0,
            EnvCopy::B => 1,
        }];
        let f = OpenOptions::new().write(true).open(&newest.path).unwrap();
        f.write_all_at(b"\xff\xff", 100).unwrap();
        assert_eq!(store.read().unwrap().vars, cur.vars);
        // Both bad: None, and a write repairs both copies.
        let other = &store.copies[match next.copy {
            EnvCopy::A => 1,
            EnvCopy::B => 0,
        }];
        let f = OpenOptions::new().write(true).open(&other.path).unwrap();
        f.write_all_at(b"\xff\xff", 100).unwrap();
        assert!(store.read_vars().unwrap().is_none());
        store.write(None, &v).unwrap();
        assert_eq!(store.read().unwrap().vars, v);
        let mut media = store.open_media().unwrap();
        let a = env::decode(&store.read_copy(&mut media, 0).unwrap(), true);
        let b = env::decode(&store.read_copy(&mut media, 1).unwrap(), true);
        assert!(a.is_ok() && b.is_ok());
    }

    use crate::flash::nand_sim::NandSim;

    const BLOCK: usize = 0x20000;
    const PAGE: usize = 0x800;

    /// rv1106.toml's environment: /dev/mtd1, copies at 0 and 0x20000.
    fn nand_store() -> EnvStore {
        let loc = |offset| EnvLocation {
            path: "/dev/mtd1".into(),
            offset,
        };
        EnvStore {
            copies: [loc(0), loc(0x20000)],
            size: 0x8000,
        }
    }

    fn with(vars: &Vars, k: &str, v: &str) -> Vars {
        let mut vars = vars.clone();
        vars.insert(k.into(), v.into());
        vars
    }

    #[test]
    fn raw_nand_needs_the_erase_a_plain_write_programs_pages_twice() {
        // What `pwrite` alone did on RV1106: the second write of a copy
        // programs pages that hold the first one, which NAND refuses (and
        // NOR turns into the AND of both: a bad CRC).
        let store = nand_store();
        let sim = NandSim::new(4, BLOCK, PAGE);
        let mut media = EnvMedia::shared(Box::new(sim.clone()));
        let v = Vars::from([("ota_rootfs_active".to_string(), "A".to_string())]);
        let mut cur = store.write_on(&mut media, None, &v).unwrap();
        for n in 0..4 {
            cur = store
                .write_on(&mut media, Some(&cur), &with(&v, "n", &n.to_string()))
                .unwrap();
        }
        assert_eq!(store.read_on(&mut media).unwrap().vars["n"], "3");
        let image = env::encode(&v, 0x8000, Some(9)).unwrap();
        let mut raw = sim.clone();
        let e = raw.write_at(0, &image).unwrap_err();
        assert!(e.to_string().contains("programmed twice"), "{e}");
    }

    #[test]
    fn raw_nand_100_updates_with_a_cut_at_every_step_always_leave_a_valid_copy() {
        let store = nand_store();
        let sim = NandSim::new(4, BLOCK, PAGE);
        let mut media = EnvMedia::shared(Box::new(sim.clone()));
        let base = Vars::from([("ota_rootfs_active".to_string(), "A".to_string())]);
        store.write_on(&mut media, None, &base).unwrap();
        let (mut cuts, mut landed, mut kept) = (0, 0, 0);
        for update in 0..100u32 {
            let cur = store.read_on(&mut media).unwrap();
            let new = with(&cur.vars, "ota_counter", &update.to_string());
            // A clean write on a copy of the chip: how many steps it takes
            // (one erase, then the pages).
            let probe = sim.snapshot();
            let before = probe.steps();
            store
                .write_on(
                    &mut EnvMedia::shared(Box::new(probe.clone())),
                    Some(&cur),
                    &new,
                )
                .unwrap();
            let steps = probe.steps() - before;
            assert_eq!(steps, 1 + 0x8000 / PAGE as u32, "one erase, then the pages");
            // Cut at every step, each on a copy of the chip.
            for at in 0..steps {
                let chip = sim.snapshot();
                chip.cut_after(at);
                let mut m = EnvMedia::shared(Box::new(chip.clone()));
                assert!(
                    store.write_on(&mut m, Some(&cur), &new).is_err(),
                    "cut at {at}"
                );
                chip.power_on();
                let after = store.read_on(&mut m).unwrap_or_else(|e| {
                    panic!("update {update}, cut at step {at}: no valid copy: {e}")
                });
                assert!(
                    after.vars == cur.vars || after.vars == new,
                    "update {update}, cut at step {at}: {:?}",
                    after.vars
                );
                cuts += 1;
            }
            // The chip itself goes on through a cut at one of the steps
            // (or none), then the agent tries again after the reboot.
            let at = update % (steps + 1);
            if at < steps {
                sim.cut_after(at);
                assert!(store.write_on(&mut media, Some(&cur), &new).is_err());
                sim.power_on();
                let after = store.read_on(&mut media).unwrap();
                if after.vars == new {
                    landed += 1;
                    continue;
                }
                assert_eq!(after.vars, cur.vars);
                kept += 1;
                let retry = store.read_on(&mut media).unwrap();
                store.write_on(&mut media, Some(&retry), &new).unwrap();
            } else {
                store.write_on(&mut media, Some(&cur), &new).unwrap();
            }
            assert_eq!(store.read_on(&mut media).unwrap().vars, new);
        }
        println!(
            "raw NAND: 100 updates, {cuts} cuts at every step on copies of the chip, \
             and on the chip itself {kept} cuts kept the old copy, {landed} after the last page"
        );
        assert_eq!(cuts, 100 * 17);
        assert!(kept > 50);
    }

    #[test]
    fn raw_nand_layouts_that_would_erase_the_other_copy_are_refused() {
        let sim = NandSim::new(4, BLOCK, PAGE);
        let mut store = nand_store();
        // A copy of 192 KiB at 0 takes two blocks, the second of which
        // holds the copy at 0x20000: erasing one would erase the other.
        store.size = 0x30000;
        let mut media = EnvMedia::shared(Box::new(sim.clone()));
        let e = store.read_on(&mut media).unwrap_err();
        assert!(
            e.to_string().contains("share bytes or an erase block")
                && e.to_string().contains("/dev/mtd1"),
            "{e}"
        );
        store.size = 0x8000;
        store.copies[1].offset = 0x21000;
        let e = store.read_on(&mut media).unwrap_err();
        assert!(
            e.to_string().contains("does not start an erase block"),
            "{e}"
        );
    }

    #[test]
    fn raw_nand_a_bad_block_under_one_copy_leaves_the_other_in_use() {
        let store = nand_store();
        let sim = NandSim::new(4, BLOCK, PAGE);
        let mut media = EnvMedia::shared(Box::new(sim.clone()));
        let v = Vars::from([("ota_rootfs_active".to_string(), "A".to_string())]);
        let cur = store.write_on(&mut media, None, &v).unwrap();
        // The next write goes to copy A's block, which has gone bad.
        assert_eq!(cur.copy, EnvCopy::B);
        sim.mark_bad(0);
        let e = store
            .write_on(&mut media, Some(&cur), &with(&v, "x", "1"))
            .unwrap_err();
        assert!(matches!(e, DeviceError::BadBlock { offset: 0, .. }), "{e}");
        let now = store.read_on(&mut media).unwrap();
        assert_eq!((now.copy, now.vars), (EnvCopy::B, v));
    }

    #[test]
    fn slot_device_reports_capacity_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("slot");
        File::create(&p).unwrap().set_len(1 << 20).unwrap();
        let s = SlotDevice::open(&p).unwrap();
        assert_eq!(s.capacity(), 1 << 20);
        s.write_at(4096, b"hello").unwrap();
        s.sync().unwrap();
        let mut b = [0u8; 5];
        s.read_at(4096, &mut b).unwrap();
        assert_eq!(&b, b"hello");
        let e = SlotDevice::open(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
