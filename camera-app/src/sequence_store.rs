//! Sequence numbers that never go back, whatever happens to the outbox.
//!
//! The outbox stores the next number of each stream with every record,
//! which is exact while the outbox lives. This file, beside it, holds for
//! each stream a number not used yet: a reservation, raised [`BLOCK`] at
//! a time and written (atomically, durably) before any number at or past
//! it is used. When the outbox is new (deleted, emptied, or set aside as
//! damaged), numbering continues from the reservation: a gap of at most
//! `BLOCK`, never a number used twice, so consumers that de-duplicate by
//! `(camera, type, seq)` never drop a new record as a repeat.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use camera_core::camera::{Sequences, Stream};
use serde::{Deserialize, Serialize};

const FILE: &str = "sequences.json";
const TEMP: &str = "sequences.json.tmp";

/// How far a reservation runs ahead: one write per this many records.
pub const BLOCK: u64 = 1000;

/// Numbers not used yet, per stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reserved {
    pub bins: u64,
    pub events: u64,
    pub tamper: u64,
}

impl Reserved {
    fn of(&mut self, stream: Stream) -> &mut u64 {
        match stream {
            Stream::Bins => &mut self.bins,
            Stream::Events => &mut self.events,
            Stream::Tamper => &mut self.tamper,
        }
    }
}

/// Why the file could not be written; names it.
#[derive(Debug, thiserror::Error)]
#[error("sequence store {}: {step}: {source}", path.display())]
pub struct SequenceStoreError {
    path: PathBuf,
    step: &'static str,
    #[source]
    source: io::Error,
}

/// The reservations of one camera, in its data directory.
#[derive(Debug)]
pub struct SequenceStore {
    dir: PathBuf,
    reserved: Reserved,
}

impl SequenceStore {
    /// Read the reservations in `dir`; none (all 0) when the file is
    /// missing. A damaged file is reported and read as none: the outbox's
    /// own counters still hold unless it is lost too.
    pub fn open(dir: &Path) -> Self {
        let path = dir.join(FILE);
        let reserved = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::error!(path = %path.display(), error = %e, "sequence reservations unreadable");
                Reserved::default()
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Reserved::default(),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "sequence reservations unreadable");
                Reserved::default()
            }
        };
        Self {
            dir: dir.to_path_buf(),
            reserved,
        }
    }

    pub fn reserved(&self) -> Reserved {
        self.reserved
    }

    /// Where numbering starts: the outbox's counters, or past the
    /// reservations when the outbox is new.
    pub fn start(&self, stored: Sequences, outbox_is_new: bool) -> Sequences {
        if !outbox_is_new {
            return stored;
        }
        let r = self.reserved;
        Sequences {
            next_bin: stored.next_bin.max(r.bins),
            next_event: stored.next_event.max(r.events),
            next_tamper: stored.next_tamper.max(r.tamper),
        }
    }

    /// Number `seq` of `stream` is about to be used: raise the
    /// reservation past it first when it does not cover it.
    pub fn cover(&mut self, stream: Stream, seq: u64) -> Result<(), SequenceStoreError> {
        if seq < *self.reserved.of(stream) {
            return Ok(());
        }
        let mut next = self.reserved;
        *next.of(stream) = seq + BLOCK;
        self.save(&next)?;
        self.reserved = next;
        Ok(())
    }

    /// Temporary file, fsync, rename, fsync the directory: a cut leaves
    /// the old reservations or the new ones, never a torn file.
    fn save(&self, reserved: &Reserved) -> Result<(), SequenceStoreError> {
        let path = self.dir.join(FILE);
        let temp = self.dir.join(TEMP);
        let err = |step: &'static str, p: &Path| {
            let path = p.to_path_buf();
            move |source| SequenceStoreError { path, step, source }
        };
        // Serialising our own type into memory cannot fail.
        let body = serde_json::to_vec(reserved).unwrap_or_default();
        let mut f = File::create(&temp).map_err(err("create", &temp))?;
        f.write_all(&body).map_err(err("write", &temp))?;
        f.sync_all().map_err(err("sync", &temp))?;
        fs::rename(&temp, &path).map_err(err("rename", &path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(err("sync directory", &self.dir))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reservations_run_ahead_in_blocks_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SequenceStore::open(dir.path());
        assert_eq!(s.reserved(), Reserved::default());
        s.cover(Stream::Bins, 0).unwrap();
        assert_eq!(s.reserved().bins, BLOCK);
        // Inside the block: no write.
        fs::remove_file(dir.path().join(FILE)).unwrap();
        s.cover(Stream::Bins, BLOCK - 1).unwrap();
        assert!(!dir.path().join(FILE).exists());
        s.cover(Stream::Bins, BLOCK).unwrap();
        s.cover(Stream::Events, 7).unwrap();
        let again = SequenceStore::open(dir.path());
        assert_eq!(
            again.reserved(),
            Reserved {
                bins: 2 * BLOCK,
                events: 7 + BLOCK,
                tamper: 0
            }
        );
    }

    #[test]
    fn a_new_outbox_starts_past_the_reservations_an_old_one_from_its_counters() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SequenceStore::open(dir.path());
        s.cover(Stream::Bins, 41).unwrap();
        let stored = Sequences {
            next_bin: 42,
            next_event: 0,
            next_tamper: 3,
        };
        assert_eq!(s.start(stored, false), stored);
        let lost = Sequences::default();
        let start = s.start(lost, true);
        assert_eq!(start.next_bin, 41 + BLOCK);
        assert!(start.next_bin > 41);
    }

    #[test]
    fn a_damaged_file_reads_as_no_reservation() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE), b"{\"bins\": garbage").unwrap();
        assert_eq!(
            SequenceStore::open(dir.path()).reserved(),
            Reserved::default()
        );
    }
}
