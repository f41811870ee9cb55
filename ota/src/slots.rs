//! The hardware seams of an install: slot devices and the environment
//! store. Both are plain files or block devices opened by path (a slot is
//! `/dev/mmcblk0p3` on a camera and a file in a temporary directory in
//! tests: the same code runs on both), so the real implementation is the
//! one tested.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::env::{self, Current, EnvCopy, EnvError, Vars};

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

impl EnvStore {
    fn read_copy(&self, which: usize) -> Result<Vec<u8>, DeviceError> {
        let loc = &self.copies[which];
        let f = File::open(&loc.path).map_err(io_err("opening environment", &loc.path))?;
        let mut buf = vec![0; self.size];
        f.read_exact_at(&mut buf, loc.offset)
            .map_err(io_err("reading environment", &loc.path))?;
        Ok(buf)
    }

    /// The current environment (the valid copy with the newer flags).
    pub fn read(&self) -> Result<Current, DeviceError> {
        let a = self.read_copy(0)?;
        let b = self.read_copy(1)?;
        Ok(env::read_redundant(&a, &b)?)
    }

    /// The current variables, or `None` when both copies are bad (the
    /// bootloader then runs on its default environment).
    pub fn read_vars(&self) -> Result<Option<Current>, DeviceError> {
        match self.read() {
            Ok(c) => Ok(Some(c)),
            Err(DeviceError::Env(EnvError::BothBad { .. })) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// One transaction: write `vars` to the other copy with the next
    /// flags, sync, and read it back. A cut during the write leaves the
    /// current copy in force. With `current` `None` (both copies bad),
    /// copy A is written with flags 0 and then copy B, so that
    /// both are valid again.
    pub fn write(&self, current: Option<&Current>, vars: &Vars) -> Result<Current, DeviceError> {
        let Some(current) = current else {
            let image = env::encode(vars, self.size, Some(0))?;
            self.write_copy(0, &image)?;
            let first = Current {
                vars: vars.clone(),
                copy: EnvCopy::A,
                flags: 0,
            };
            return self.write(Some(&first), vars);
        };
        let (copy, image) = env::next_write(current, vars, self.size)?;
        let which = match copy {
            EnvCopy::A => 0,
            EnvCopy::B => 1,
        };
        self.write_copy(which, &image)?;
        let back = self.read_copy(which)?;
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

    fn write_copy(&self, which: usize, image: &[u8]) -> Result<(), DeviceError> {
        let loc = &self.copies[which];
        let f = OpenOptions::new()
            .write(true)
            .open(&loc.path)
            .map_err(io_err("opening environment", &loc.path))?;
        f.write_all_at(image, loc.offset)
            .map_err(io_err("writing environment", &loc.path))?;
        f.sync_data()
            .map_err(io_err("syncing environment", &loc.path))
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
        let a = env::decode(&store.read_copy(0).unwrap(), true);
        let b = env::decode(&store.read_copy(1).unwrap(), true);
        assert!(a.is_ok() && b.is_ok());
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
