//! The media a U-Boot environment copy lives on. A file or a block device
//! (eMMC, SD) is written in place. Raw flash behind the kernel's MTD
//! interface (`/dev/mtdN`: the SPI NAND of RV1106 boards) cannot be: a
//! program operation only clears bits and only erasing a whole block sets
//! them again, so a copy's blocks are erased before it is written. (A
//! plain `pwrite` there leaves the AND of the old and new bytes: a bad
//! CRC on the first update, and on NAND a page programmed twice.)

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;

/// How a medium is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Geometry {
    /// Written in place, at any offset and length (files, block devices).
    InPlace,
    /// Raw flash: erase whole blocks of `erase_size` bytes (every bit set),
    /// then program multiples of `write_size` bytes (NAND's page; 1 on
    /// NOR), which can only clear bits.
    Erase { erase_size: u64, write_size: u64 },
}

/// One medium, opened.
pub trait Flash: std::fmt::Debug {
    fn geometry(&self) -> Geometry;
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Set every bit of `[offset, offset + len)`: whole erase blocks.
    fn erase(&mut self, offset: u64, len: u64) -> io::Result<()>;
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Whether the erase block at `offset` is marked bad (NAND).
    fn is_bad_block(&mut self, offset: u64) -> io::Result<bool>;
    /// Make what was written durable.
    fn sync(&mut self) -> io::Result<()>;
}

/// Open `path` for reading and writing: an MTD character device as raw
/// flash, anything else (a file, a block device) in place.
pub fn open(path: &Path) -> io::Result<Box<dyn Flash>> {
    let meta = std::fs::metadata(path)?;
    if meta.file_type().is_char_device() {
        return Ok(Box::new(MtdFlash::open(path)?));
    }
    Ok(Box::new(FileFlash::open(path)?))
}

/// A file or block device, written in place.
#[derive(Debug)]
pub struct FileFlash {
    file: File,
}

impl FileFlash {
    pub fn open(path: &Path) -> io::Result<FileFlash> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(FileFlash { file })
    }
}

impl Flash for FileFlash {
    fn geometry(&self) -> Geometry {
        Geometry::InPlace
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn erase(&mut self, _offset: u64, _len: u64) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "erase on a medium written in place",
        ))
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }
    fn is_bad_block(&mut self, _offset: u64) -> io::Result<bool> {
        Ok(false)
    }
    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// `struct mtd_info_user` of `<mtd/mtd-abi.h>`.
#[repr(C)]
#[derive(Debug, Default)]
struct MtdInfoUser {
    kind: u8,
    flags: u32,
    size: u32,
    erasesize: u32,
    writesize: u32,
    oobsize: u32,
    padding: u64,
}

/// `struct erase_info_user` of `<mtd/mtd-abi.h>`.
#[repr(C)]
#[derive(Debug)]
struct EraseInfoUser {
    start: u32,
    length: u32,
}

nix::ioctl_read!(mem_get_info, b'M', 1, MtdInfoUser);
nix::ioctl_write_ptr!(mem_erase, b'M', 2, EraseInfoUser);
nix::ioctl_write_ptr!(mem_get_bad_block, b'M', 11, i64);

/// A raw flash device through the kernel's MTD character interface:
/// `MEMGETINFO` for its geometry, `MEMGETBADBLOCK`, `MEMERASE`, then
/// `pwrite` of whole pages.
#[derive(Debug)]
pub struct MtdFlash {
    file: File,
    size: u64,
    erase_size: u64,
    write_size: u64,
}

impl MtdFlash {
    pub fn open(path: &Path) -> io::Result<MtdFlash> {
        use std::os::fd::AsRawFd;
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let mut info = MtdInfoUser::default();
        // SAFETY: MEMGETINFO writes one `struct mtd_info_user`, which
        // `MtdInfoUser` mirrors (repr(C)); the descriptor is open.
        unsafe { mem_get_info(file.as_raw_fd(), &mut info) }.map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("not an MTD device (MEMGETINFO: {e})"),
            )
        })?;
        if info.erasesize == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "MTD device reports an erase size of 0",
            ));
        }
        Ok(MtdFlash {
            file,
            size: u64::from(info.size),
            erase_size: u64::from(info.erasesize),
            write_size: u64::from(info.writesize.max(1)),
        })
    }

    fn check_range(&self, offset: u64, len: u64) -> io::Result<u32> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => u32::try_from(offset)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset beyond 4 GiB")),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{len} bytes at {offset:#x} run past the device's {:#x}",
                    self.size
                ),
            )),
        }
    }
}

impl Flash for MtdFlash {
    fn geometry(&self) -> Geometry {
        Geometry::Erase {
            erase_size: self.erase_size,
            write_size: self.write_size,
        }
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn erase(&mut self, offset: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let start = self.check_range(offset, len)?;
        let length = u32::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "erase beyond 4 GiB"))?;
        let arg = EraseInfoUser { start, length };
        // SAFETY: MEMERASE reads one `struct erase_info_user`; `arg` lives
        // across the call.
        unsafe { mem_erase(self.file.as_raw_fd(), &arg) }.map_err(io::Error::from)?;
        Ok(())
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check_range(offset, data.len() as u64)?;
        self.file.write_all_at(data, offset)
    }
    fn is_bad_block(&mut self, offset: u64) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        let at = i64::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        // SAFETY: MEMGETBADBLOCK reads one loff_t; `at` lives across the
        // call.
        match unsafe { mem_get_bad_block(self.file.as_raw_fd(), &at) } {
            Ok(n) => Ok(n > 0),
            // NOR and RAM devices have no bad blocks.
            Err(nix::errno::Errno::EOPNOTSUPP) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
    fn sync(&mut self) -> io::Result<()> {
        // MTD writes reach the chip before pwrite returns; fsync is
        // harmless there and needed for mtdblock.
        self.file.sync_data()
    }
}

/// A NAND chip in memory, for tests: a program can only clear bits, a
/// page may be programmed once between erases, writes are whole pages,
/// erases whole blocks. A power cut can be set to fall after a number of
/// steps (one block erased, or one page programmed); the step it falls
/// in is left half done (an erase with some bits set, a program with some
/// bits cleared), and the chip then refuses everything until `power_on`.
#[cfg(test)]
pub mod nand_sim {
    use std::cell::RefCell;
    use std::io;
    use std::rc::Rc;

    use super::{Flash, Geometry};

    #[derive(Debug, Clone)]
    struct Chip {
        data: Vec<u8>,
        programmed: Vec<bool>,
        bad: Vec<bool>,
        erase_size: usize,
        page_size: usize,
        /// Steps left before the power goes; `None`: never.
        budget: Option<u32>,
        off: bool,
        steps: u32,
        rng: u64,
    }

    /// Handles share one chip (`Clone`), so a test can cut and inspect
    /// what the code under test holds.
    #[derive(Debug, Clone)]
    pub struct NandSim(Rc<RefCell<Chip>>);

    fn cut() -> io::Error {
        io::Error::other("power cut")
    }

    impl NandSim {
        /// A new chip, erased.
        pub fn new(blocks: usize, erase_size: usize, page_size: usize) -> NandSim {
            NandSim(Rc::new(RefCell::new(Chip {
                data: vec![0xff; blocks * erase_size],
                programmed: vec![false; blocks * erase_size / page_size],
                bad: vec![false; blocks],
                erase_size,
                page_size,
                budget: None,
                off: false,
                steps: 0,
                rng: 0x9e37_79b9_7f4a_7c15,
            })))
        }

        /// An independent copy of the chip as it is now.
        pub fn snapshot(&self) -> NandSim {
            NandSim(Rc::new(RefCell::new(self.0.borrow().clone())))
        }

        /// The power goes during step `n` from now (0: the next one).
        pub fn cut_after(&self, n: u32) {
            self.0.borrow_mut().budget = Some(n);
        }

        /// Power back: the chip answers again, no cut pending.
        pub fn power_on(&self) {
            let mut c = self.0.borrow_mut();
            c.off = false;
            c.budget = None;
        }

        /// Steps (blocks erased, pages programmed) so far.
        pub fn steps(&self) -> u32 {
            self.0.borrow().steps
        }

        pub fn mark_bad(&self, block: usize) {
            self.0.borrow_mut().bad[block] = true;
        }
    }

    impl Chip {
        fn random(&mut self) -> u8 {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            (self.rng >> 24) as u8
        }

        /// Take one step; `Ok(false)`: the power goes during this one.
        fn step(&mut self) -> io::Result<bool> {
            if self.off {
                return Err(cut());
            }
            self.steps += 1;
            match self.budget {
                Some(0) => {
                    self.off = true;
                    Ok(false)
                }
                Some(n) => {
                    self.budget = Some(n - 1);
                    Ok(true)
                }
                None => Ok(true),
            }
        }
    }

    impl Flash for NandSim {
        fn geometry(&self) -> Geometry {
            let c = self.0.borrow();
            Geometry::Erase {
                erase_size: c.erase_size as u64,
                write_size: c.page_size as u64,
            }
        }

        fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            let c = self.0.borrow();
            if c.off {
                return Err(cut());
            }
            let start = offset as usize;
            let src = c
                .data
                .get(start..start + buf.len())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "read past the end"))?;
            buf.copy_from_slice(src);
            Ok(())
        }

        fn erase(&mut self, offset: u64, len: u64) -> io::Result<()> {
            let mut c = self.0.borrow_mut();
            let (start, len) = (offset as usize, len as usize);
            if !start.is_multiple_of(c.erase_size)
                || !len.is_multiple_of(c.erase_size)
                || start + len > c.data.len()
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("erase of {len:#x} at {start:#x} is not whole blocks"),
                ));
            }
            for block in start / c.erase_size..(start + len) / c.erase_size {
                if c.bad[block] {
                    return Err(io::Error::other(format!("erase of bad block {block}")));
                }
                let whole = c.step()?;
                let range = block * c.erase_size..(block + 1) * c.erase_size;
                for i in range.clone() {
                    // Cut mid-erase: some bits set, not all.
                    let set = if whole { 0xff } else { c.random() };
                    c.data[i] |= set;
                }
                let pages = range.start / c.page_size..range.end / c.page_size;
                for p in pages {
                    // After a cut the block must be erased again before
                    // its pages are programmed.
                    c.programmed[p] = !whole;
                }
                if !whole {
                    return Err(cut());
                }
            }
            Ok(())
        }

        fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
            let mut c = self.0.borrow_mut();
            let start = offset as usize;
            if !start.is_multiple_of(c.page_size)
                || !data.len().is_multiple_of(c.page_size)
                || start + data.len() > c.data.len()
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "write of {:#x} at {start:#x} is not whole pages",
                        data.len()
                    ),
                ));
            }
            let page_size = c.page_size;
            for (k, chunk) in data.chunks(page_size).enumerate() {
                let page = start / page_size + k;
                if c.bad[page * page_size / c.erase_size] {
                    return Err(io::Error::other(format!(
                        "write to a bad block, page {page}"
                    )));
                }
                if c.programmed[page] {
                    return Err(io::Error::other(format!(
                        "page {page} programmed twice without an erase"
                    )));
                }
                let whole = c.step()?;
                c.programmed[page] = true;
                let at = page * page_size;
                for (i, &b) in chunk.iter().enumerate() {
                    // Programming clears bits only; cut mid-program: some
                    // of them.
                    let cleared = if whole { b } else { b | c.random() };
                    c.data[at + i] &= cleared;
                }
                if !whole {
                    return Err(cut());
                }
            }
            Ok(())
        }

        fn is_bad_block(&mut self, offset: u64) -> io::Result<bool> {
            let c = self.0.borrow();
            Ok(c.bad[offset as usize / c.erase_size])
        }

        fn sync(&mut self) -> io::Result<()> {
            if self.0.borrow().off {
                return Err(cut());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_mtd_structures_and_requests_match_the_kernel_abi() {
        // <mtd/mtd-abi.h>: struct mtd_info_user is 32 bytes on every
        // target (u64 aligned to 8 on armv7 EABI too), erase_info_user 8.
        assert_eq!(size_of::<MtdInfoUser>(), 32);
        assert_eq!(size_of::<EraseInfoUser>(), 8);
        // MEMGETINFO, MEMERASE and MEMGETBADBLOCK as the kernel headers
        // give them (same on x86-64, aarch64 and armv7).
        assert_eq!(nix::request_code_read!(b'M', 1, 32), 0x8020_4d01);
        assert_eq!(nix::request_code_write!(b'M', 2, 8), 0x4008_4d02);
        assert_eq!(nix::request_code_write!(b'M', 11, 8), 0x4008_4d0b);
    }

    #[test]
    fn a_character_device_that_is_not_mtd_is_refused_by_name() {
        // /dev/null is a character device: opened as MTD, MEMGETINFO fails.
        let e = open(Path::new("/dev/null")).unwrap_err();
        assert!(e.to_string().contains("not an MTD device"), "{e}");
    }

    #[test]
    fn files_are_written_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("env");
        std::fs::write(&p, [0u8; 64]).unwrap();
        let mut f = open(&p).unwrap();
        assert_eq!(f.geometry(), Geometry::InPlace);
        f.write_at(8, b"abc").unwrap();
        f.sync().unwrap();
        let mut b = [0u8; 3];
        f.read_at(8, &mut b).unwrap();
        assert_eq!(&b, b"abc");
        assert!(f.erase(0, 64).is_err());
    }
}
