//! A storage backend that loses power: writes land in a volatile image
//! and reach the durable one only when synced. [`PowerCutBackend::power_cut`]
//! returns a fresh backend holding only what was synced, as a device that
//! lost power would. Used to test durability for real rather than assume
//! it. [`PowerCutBackend::fail_writes`] makes it a full or failing flash:
//! writes, resizes and syncs fail with the given `errno` (ENOSPC, EIO)
//! until it is cleared.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct Images {
    /// What the process sees.
    volatile: Vec<u8>,
    /// What survives a power cut.
    durable: Vec<u8>,
}

/// A shared, cloneable power-cut disk.
#[derive(Debug, Clone, Default)]
pub struct PowerCutBackend {
    images: Arc<Mutex<Images>>,
    /// errno returned by writes, resizes and syncs; 0: none.
    fault: Arc<AtomicI32>,
}

impl PowerCutBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Images> {
        // A poisoned lock only means a panicking test; the images are
        // plain bytes and stay usable.
        self.images
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The power goes: a new disk holding only the synced image.
    pub fn power_cut(&self) -> Self {
        let durable = self.lock().durable.clone();
        Self {
            images: Arc::new(Mutex::new(Images {
                volatile: durable.clone(),
                durable,
            })),
            fault: Arc::default(),
        }
    }

    /// From now on writes, resizes and syncs fail with `errno` (e.g.
    /// `libc::ENOSPC`, `libc::EIO`); `None`: they work again. Reads keep
    /// working, as on a full flash.
    pub fn fail_writes(&self, errno: Option<i32>) {
        self.fault.store(errno.unwrap_or(0), Ordering::SeqCst);
    }

    fn check_fault(&self) -> Result<(), std::io::Error> {
        match self.fault.load(Ordering::SeqCst) {
            0 => Ok(()),
            errno => Err(std::io::Error::from_raw_os_error(errno)),
        }
    }

    /// Bytes that differ between the volatile and the durable image.
    pub fn unsynced_bytes(&self) -> usize {
        let i = self.lock();
        let common = i.volatile.len().min(i.durable.len());
        let differing = i.volatile[..common]
            .iter()
            .zip(&i.durable[..common])
            .filter(|(a, b)| a != b)
            .count();
        differing + i.volatile.len().abs_diff(i.durable.len())
    }
}

fn out_of_range() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the end")
}

impl redb::StorageBackend for PowerCutBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.lock().volatile.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        let i = self.lock();
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        let src = i
            .volatile
            .get(start..start + out.len())
            .ok_or_else(out_of_range)?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.check_fault()?;
        let len = usize::try_from(len).map_err(|_| out_of_range())?;
        self.lock().volatile.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.check_fault()?;
        let mut i = self.lock();
        i.durable = i.volatile.clone();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.check_fault()?;
        let mut i = self.lock();
        let start = usize::try_from(offset).map_err(|_| out_of_range())?;
        let end = start + data.len();
        if i.volatile.len() < end {
            i.volatile.resize(end, 0);
        }
        i.volatile[start..end].copy_from_slice(data);
        Ok(())
    }
}
