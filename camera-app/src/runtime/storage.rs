//! The frame loop's records on a flash that can fill up or fail. A record
//! the outbox cannot take (ENOSPC, EIO, or a store that refuses every
//! transaction after an I/O error) is held in memory, in order, up to
//! [`HELD_MAX_BYTES`] (the oldest dropped first, and counted); every
//! [`RETRY`] the outbox is opened again and the held records are stored,
//! oldest first, before any new one. Counting never stops, nothing that
//! reached the outbox is lost, and sequence numbers go on: the camera
//! numbers records in memory, and each one is stored with the number after
//! it, so that a restart continues from the last record on flash.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::health::StorageStatus;
use crate::outbox::{Outbox, OutboxError};
use crate::sequence_store::SequenceStore;
use camera_core::camera::{Output, Stream};

/// Outbox topics, relative to the camera's topic prefix.
pub const BINS_TOPIC: &str = "bins";
pub const EVENTS_TOPIC: &str = "events";
pub const TAMPER_TOPIC: &str = "tamper";

/// Outbox counters holding the next sequence number of each stream.
pub(crate) const NEXT_BIN_SEQ: &str = "next_bin_seq";
pub(crate) const NEXT_EVENT_SEQ: &str = "next_event_seq";
pub(crate) const NEXT_TAMPER_SEQ: &str = "next_tamper_seq";

/// Memory for records waiting for the flash: about an hour of a busy
/// door's bins and events (a bin is about 1 KiB, an event 300 B).
pub const HELD_MAX_BYTES: usize = 1 << 20;

/// How often a failing outbox is tried again.
pub const RETRY: Duration = Duration::from_secs(10);

/// Where a stream's records go and which counter numbers them.
fn place(stream: Stream) -> (&'static str, &'static str) {
    match stream {
        Stream::Bins => (BINS_TOPIC, NEXT_BIN_SEQ),
        Stream::Events => (EVENTS_TOPIC, NEXT_EVENT_SEQ),
        Stream::Tamper => (TAMPER_TOPIC, NEXT_TAMPER_SEQ),
    }
}

/// A record as the outbox stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Encoded {
    topic: &'static str,
    counter: &'static str,
    next_seq: u64,
    t_us: u64,
    payload: Vec<u8>,
}

impl Encoded {
    fn new(record: &Output) -> Self {
        let (stream, seq, t_us) = record.position();
        let (topic, counter) = place(stream);
        Self {
            topic,
            counter,
            next_seq: seq + 1,
            t_us,
            // Serialising our own types into memory cannot fail.
            payload: serde_json::to_vec(record).unwrap_or_default(),
        }
    }

    fn push(&self, outbox: &mut Outbox) -> Result<u64, OutboxError> {
        outbox.push_counted(
            self.topic,
            &self.payload,
            self.t_us,
            Some((self.counter, self.next_seq)),
        )
    }
}

/// Store a record in the outbox with the sequence number after it, in one
/// transaction: after a restart numbering continues, never repeats.
pub fn store_record(outbox: &mut Outbox, record: &Output) -> Result<u64, OutboxError> {
    Encoded::new(record).push(outbox)
}

fn lock(o: &Mutex<Outbox>) -> MutexGuard<'_, Outbox> {
    o.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The outbox as the frame loop writes it.
#[derive(Debug)]
pub struct RecordStore {
    outbox: Arc<Mutex<Outbox>>,
    /// Numbers reserved ahead, for when the outbox is lost.
    sequences: Option<SequenceStore>,
    held: VecDeque<Encoded>,
    held_bytes: usize,
    dropped: u64,
    failures: u64,
    /// The last error and when to try again, while failing.
    failing: Option<(String, Instant)>,
    /// Reserving sequence numbers ahead fails (logged once).
    reserve_failing: bool,
}

impl RecordStore {
    pub fn new(outbox: Arc<Mutex<Outbox>>, sequences: Option<SequenceStore>) -> Self {
        Self {
            outbox,
            sequences,
            held: VecDeque::new(),
            held_bytes: 0,
            dropped: 0,
            failures: 0,
            failing: None,
            reserve_failing: false,
        }
    }

    /// Store `record`, or hold it in memory while the outbox fails.
    /// Returns whether it reached the outbox.
    pub fn store(&mut self, record: &Output, now: Instant) -> bool {
        self.tick(now);
        if let Some(s) = &mut self.sequences {
            let (stream, seq, _) = record.position();
            match s.cover(stream, seq) {
                Ok(()) => {
                    if std::mem::take(&mut self.reserve_failing) {
                        tracing::info!("sequence numbers are reserved ahead again");
                    }
                }
                // The outbox's own counters still hold unless it is lost
                // too. Said once per streak: it fails at every record.
                Err(e) if !self.reserve_failing => {
                    self.reserve_failing = true;
                    tracing::error!(error = %e, "cannot reserve sequence numbers ahead");
                }
                Err(_) => {}
            }
        }
        let encoded = Encoded::new(record);
        if self.failing.is_none() && self.held.is_empty() {
            let pushed = encoded.push(&mut lock(&self.outbox));
            match pushed {
                Ok(_) => return true,
                Err(e) => self.fail(&e, now),
            }
        }
        self.hold(encoded);
        false
    }

    /// Try a failing outbox again when it is time (each frame, so that a
    /// recovery does not wait for the next record).
    pub fn tick(&mut self, now: Instant) {
        if self.failing.as_ref().is_some_and(|(_, at)| now >= *at) {
            self.retry(now);
        }
    }

    fn retry(&mut self, now: Instant) {
        let outbox = Arc::clone(&self.outbox);
        let mut o = lock(&outbox);
        if let Err(e) = o.reopen() {
            self.fail(&e, now);
            return;
        }
        while let Some(r) = self.held.front() {
            if let Err(e) = r.push(&mut o) {
                self.fail(&e, now);
                return;
            }
            self.held_bytes -= r.payload.len();
            self.held.pop_front();
        }
        tracing::info!(
            outbox = o.name(),
            dropped = self.dropped,
            "the outbox stores records again; those held in memory are stored"
        );
        self.failing = None;
    }

    fn fail(&mut self, e: &OutboxError, now: Instant) {
        if self.failing.is_none() {
            tracing::error!(error = %e, "cannot store records: holding them in memory, trying again every {}s", RETRY.as_secs());
        } else {
            tracing::debug!(error = %e, "the outbox still fails");
        }
        self.failures += 1;
        self.failing = Some((e.to_string(), now + RETRY));
    }

    fn hold(&mut self, r: Encoded) {
        self.held_bytes += r.payload.len();
        self.held.push_back(r);
        while self.held_bytes > HELD_MAX_BYTES {
            let Some(old) = self.held.pop_front() else {
                break;
            };
            self.held_bytes -= old.payload.len();
            if self.dropped == 0 {
                tracing::warn!(
                    "records held in memory exceed {HELD_MAX_BYTES} bytes: dropping the oldest"
                );
            }
            self.dropped += 1;
        }
    }

    pub fn status(&self) -> StorageStatus {
        StorageStatus {
            state: if self.failing.is_some() {
                "failing"
            } else {
                "ok"
            },
            error: self.failing.as_ref().map(|(e, _)| e.clone()),
            held_records: self.held.len(),
            dropped_records: self.dropped,
            failures: self.failures,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use camera_core::camera::TamperRecord;
    use camera_core::tamper::TamperKind;

    use super::*;
    use crate::outbox::OutboxLimits;
    use crate::outbox::testing::PowerCutBackend;

    fn record(seq: u64) -> Output {
        Output::Tamper(TamperRecord {
            kind: "tamper",
            camera: "cam-1".into(),
            seq,
            time_us: 1_000 + seq,
            tamper: TamperKind::Covered,
            raised: seq.is_multiple_of(2),
        })
    }

    fn setup() -> (PowerCutBackend, Arc<Mutex<Outbox>>, RecordStore) {
        let disk = PowerCutBackend::new();
        let outbox =
            Outbox::with_backend(disk.clone(), "test-outbox", OutboxLimits::default()).unwrap();
        let outbox = Arc::new(Mutex::new(outbox));
        let store = RecordStore::new(Arc::clone(&outbox), None);
        (disk, outbox, store)
    }

    /// Sequence numbers of the records in the outbox, in order.
    fn stored_seqs(outbox: &Mutex<Outbox>) -> Vec<u64> {
        lock(outbox)
            .pending(usize::MAX)
            .unwrap()
            .iter()
            .map(|e| {
                let v: serde_json::Value = serde_json::from_slice(&e.payload).unwrap();
                v["seq"].as_u64().unwrap()
            })
            .collect()
    }

    #[test]
    fn a_full_or_failing_flash_holds_records_in_memory_and_stores_them_when_it_recovers() {
        for errno in [libc::ENOSPC, libc::EIO] {
            let (disk, outbox, mut store) = setup();
            let t0 = Instant::now();
            for seq in 0..5 {
                assert!(store.store(&record(seq), t0));
            }
            disk.fail_writes(Some(errno));
            for seq in 5..15 {
                assert!(!store.store(&record(seq), t0), "errno {errno}");
            }
            let s = store.status();
            assert_eq!(
                (s.state, s.held_records, s.dropped_records),
                ("failing", 10, 0)
            );
            let error = s.error.unwrap();
            let os = std::io::Error::from_raw_os_error(errno).to_string();
            assert!(
                error.contains("test-outbox") && error.contains(&os),
                "{error}"
            );
            // Before RETRY nothing is tried again; at RETRY the flash
            // still fails: still held.
            store.tick(t0 + RETRY / 2);
            assert_eq!(store.status().failures, 1);
            store.tick(t0 + RETRY);
            assert_eq!(store.status().failures, 2);
            assert_eq!(store.status().held_records, 10);
            // Space returns: the next try stores the held records first,
            // in order, then the new one.
            disk.fail_writes(None);
            assert!(store.store(&record(15), t0 + RETRY * 2));
            let s = store.status();
            assert_eq!((s.state, s.held_records, s.error), ("ok", 0, None));
            assert_eq!(stored_seqs(&outbox), (0..16).collect::<Vec<_>>());
            assert_eq!(lock(&outbox).counter(NEXT_TAMPER_SEQ).unwrap(), 16);
        }
    }

    #[test]
    fn memory_is_bounded_the_oldest_held_records_go_first_and_are_counted() {
        let (disk, outbox, mut store) = setup();
        let t0 = Instant::now();
        disk.fail_writes(Some(libc::ENOSPC));
        let one = Encoded::new(&record(0)).payload.len();
        let fit = HELD_MAX_BYTES / one;
        let n = fit as u64 + 100;
        for seq in 0..n {
            store.store(&record(seq), t0);
        }
        let s = store.status();
        assert!(s.dropped_records >= 100, "{s:?}");
        assert_eq!(s.held_records as u64 + s.dropped_records, n);
        let dropped = s.dropped_records;
        disk.fail_writes(None);
        store.tick(t0 + RETRY);
        // What was kept is the newest, in order, with its own numbers.
        let seqs = stored_seqs(&outbox);
        let want: Vec<u64> = (dropped..n).collect();
        assert!(
            seqs == want,
            "stored {} records {:?}..{:?}, want {} from {dropped} to {n}",
            seqs.len(),
            seqs.first(),
            seqs.last(),
            want.len()
        );
        assert_eq!(store.status().dropped_records, dropped);
    }
}
