//! Store-and-forward: every bin and event is written durably before it is
//! published, and removed only once the broker has acknowledged it.
//!
//! Records are kept in the order they were pushed, under an outbox id that
//! only grows (it survives restarts), in a redb database: redb syncs the
//! file on every durable commit, where sled's `flush()` does not fsync
//! (see `docs/outbox.md`). The store is bounded in bytes and in age: when
//! a push would exceed either bound, the oldest records go first, and every
//! eviction is counted and kept, so that the loss is reported rather than
//! silent.
//!
//! The database sits behind redb's `StorageBackend` seam, so tests run the
//! outbox on a backend that drops every write not yet synced when a power
//! cut is simulated ([`testing::PowerCutBackend`]).

// Functions on the per-frame path stay short enough to read whole
// (clippy.toml: 80 lines).
#![warn(clippy::too_many_lines)]

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

pub mod testing;

const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_ID: &str = "next_id";
const EVICTED: &str = "evicted";
const BYTES: &str = "bytes";
const DAMAGED: &str = "damaged";

/// A record on flash: `"OB"`, the format version, the CRC32 of the rest,
/// then the record (postcard). A record whose magic, version or checksum
/// does not match is damaged: counted, removed, never published.
const MAGIC: &[u8; 2] = b"OB";
const FORMAT: u8 = 1;
const HEADER: usize = 7;

/// Bounds of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Total payload and topic bytes kept.
    pub max_bytes: u64,
    /// Records older than this (µs) are evicted at the next push.
    pub max_age_us: u64,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        Self {
            max_bytes: 16 * 1024 * 1024,
            max_age_us: 7 * 24 * 3600 * 1_000_000,
        }
    }
}

/// A record waiting for the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Outbox id: increasing, never reused.
    pub id: u64,
    pub topic: String,
    pub payload: Vec<u8>,
    /// When it was pushed, µs since the Unix epoch.
    pub created_us: u64,
}

/// As stored (postcard).
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    topic: String,
    created_us: u64,
    payload: Vec<u8>,
}

impl Stored {
    fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        let body = postcard::to_allocvec(self)?;
        let mut out = Vec::with_capacity(HEADER + body.len());
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < HEADER || &bytes[..2] != MAGIC {
            return Err("no record header".into());
        }
        if bytes[2] != FORMAT {
            return Err(format!(
                "format version {}, this build reads {FORMAT}",
                bytes[2]
            ));
        }
        let body = &bytes[HEADER..];
        let stored = u32::from_le_bytes([bytes[3], bytes[4], bytes[5], bytes[6]]);
        if crc32fast::hash(body) != stored {
            return Err("checksum mismatch".into());
        }
        postcard::from_bytes(body).map_err(|e| format!("undecodable: {e}"))
    }
}

/// Why the outbox failed; each names the database.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}: cannot open: {source}")]
    Open {
        path: String,
        #[source]
        source: Box<redb::DatabaseError>,
    },
    #[error("outbox {path}: {step}: {source}")]
    Storage {
        path: String,
        step: &'static str,
        // Boxed: redb's error is large and errors are rare.
        #[source]
        source: Box<redb::Error>,
    },
    #[error("outbox {path}: record {id} is damaged: {reason}")]
    Damaged {
        path: String,
        id: u64,
        reason: String,
    },
    #[error("outbox {path}: cannot encode a record: {source}")]
    Encode {
        path: String,
        #[source]
        source: postcard::Error,
    },
    #[error("outbox {path}: damaged ({reason}), and it cannot be set aside: {source}")]
    SetAside {
        path: String,
        reason: String,
        #[source]
        source: std::io::Error,
    },
    #[error("outbox {path}: cannot sync its directory: {source}")]
    SyncDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("outbox {path}: a record of {size} bytes cannot fit in {max} bytes")]
    TooLarge { path: String, size: u64, max: u64 },
    #[error("outbox {path}: closed after a storage error, not yet reopened")]
    Closed { path: String },
}

/// Counters for health reports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct OutboxStats {
    pub depth: u64,
    pub bytes: u64,
    /// Records dropped to stay within the bounds, since the store was made.
    pub evicted: u64,
    /// `created_us` of the oldest record waiting.
    pub oldest_us: Option<u64>,
    /// Damaged records found and removed, since the store was made.
    pub damaged: u64,
    /// The damaged file this outbox replaced when it was opened, kept
    /// beside it for support.
    pub set_aside: Option<String>,
}

/// How to open the database again after a storage error.
enum Source {
    File(PathBuf),
    Backend(Box<dyn Fn() -> Result<Database, redb::DatabaseError> + Send>),
}

/// The outbox.
pub struct Outbox {
    /// `None` between a failed [`Outbox::reopen`] and the next good one.
    db: Option<Database>,
    name: String,
    limits: OutboxLimits,
    source: Source,
    set_aside: Option<String>,
    /// Opened without records from before: the file was missing, empty,
    /// or set aside as damaged.
    new: bool,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("name", &self.name)
            .field("open", &self.db.is_some())
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Open (or create) the outbox file at `path`.
    ///
    /// A damaged file (redb finds it corrupt, or its integrity check
    /// fails and cannot repair it) is set aside as
    /// `<name>.damaged-<unix seconds>`, kept for support, and a new outbox
    /// takes its place; [`OutboxStats::set_aside`] names it.
    ///
    /// The check runs in this process, catching a panic of the store
    /// engine (redb panics on some damaged pages). Where panics abort (the
    /// camera's release build), use [`Outbox::open_checked_by`] with a
    /// check in a child process.
    pub fn open(path: &Path, limits: OutboxLimits) -> Result<Self, OutboxError> {
        Self::open_checked_by(path, limits, |p| {
            std::panic::catch_unwind(|| verify(p))
                .unwrap_or_else(|_| Err("the store engine panicked reading it".into()))
        })
    }

    /// As [`Outbox::open`], with `check` saying whether an existing file
    /// is damaged (`Err` with the reason).
    pub fn open_checked_by(
        path: &Path,
        limits: OutboxLimits,
        check: impl FnOnce(&Path) -> Result<(), String>,
    ) -> Result<Self, OutboxError> {
        let name = path.display().to_string();
        let existed = std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
        let verdict = if existed { check(path) } else { Ok(()) };
        let (db, set_aside) = match verdict {
            Ok(()) => (Self::open_file(path)?, None),
            Err(reason) => {
                let kept = set_aside(path, &reason)?;
                (Self::open_file(path)?, Some(kept))
            }
        };
        let mut outbox = Self::init(db, name, limits, Source::File(path.to_path_buf()))?;
        outbox.new = !existed || set_aside.is_some();
        outbox.set_aside = set_aside;
        Ok(outbox)
    }

    fn open_file(path: &Path) -> Result<Database, OutboxError> {
        let name = path.display().to_string();
        let db = Database::create(path).map_err(|source| OutboxError::Open {
            path: name.clone(),
            source: Box::new(source),
        })?;
        // redb syncs the file, not the directory entry naming it: without
        // this a power cut soon after first boot can lose the whole file
        // (found by the power-cut filesystem in tests/powercut).
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| OutboxError::SyncDir {
                path: name.clone(),
                source,
            })?;
        Ok(db)
    }

    /// Open over a storage backend (tests: a power-cut simulation); a
    /// [`reopen`](Self::reopen) opens a clone of it.
    pub fn with_backend(
        backend: impl redb::StorageBackend + Clone,
        name: &str,
        limits: OutboxLimits,
    ) -> Result<Self, OutboxError> {
        let open = move || Database::builder().create_with_backend(backend.clone());
        let db = open().map_err(|source| OutboxError::Open {
            path: name.to_string(),
            source: Box::new(source),
        })?;
        Self::init(
            db,
            name.to_string(),
            limits,
            Source::Backend(Box::new(open)),
        )
    }

    /// Close the database and open it again. After an I/O error (a full
    /// or failing flash) redb refuses every later transaction until the
    /// file is opened again, which also repairs what the failed commit
    /// left. On failure the outbox stays closed: every call returns an
    /// error until a later `reopen` succeeds.
    pub fn reopen(&mut self) -> Result<(), OutboxError> {
        // redb refuses a second handle on a file still open.
        self.db = None;
        let db = match &self.source {
            Source::File(path) => Self::open_file(path)?,
            Source::Backend(open) => open().map_err(|source| OutboxError::Open {
                path: self.name.clone(),
                source: Box::new(source),
            })?,
        };
        self.db = Some(db);
        self.create_tables()
    }

    fn init(
        db: Database,
        name: String,
        limits: OutboxLimits,
        source: Source,
    ) -> Result<Self, OutboxError> {
        let outbox = Self {
            db: Some(db),
            name,
            limits,
            source,
            set_aside: None,
            new: false,
        };
        outbox.create_tables()?;
        Ok(outbox)
    }

    fn create_tables(&self) -> Result<(), OutboxError> {
        let outbox = self;
        // Create the tables so that readers find them.
        let tx = outbox.write("begin")?;
        tx.open_table(RECORDS)
            .map_err(|e| outbox.err("open records", e))?;
        tx.open_table(META)
            .map_err(|e| outbox.err("open meta", e))?;
        tx.commit().map_err(|e| outbox.err("commit", e))?;
        Ok(())
    }

    fn db(&self) -> Result<&Database, OutboxError> {
        self.db.as_ref().ok_or_else(|| OutboxError::Closed {
            path: self.name.clone(),
        })
    }

    fn err(&self, step: &'static str, e: impl Into<redb::Error>) -> OutboxError {
        OutboxError::Storage {
            path: self.name.clone(),
            step,
            source: Box::new(e.into()),
        }
    }

    fn decode(&self, id: u64, bytes: &[u8]) -> Result<Stored, OutboxError> {
        Stored::decode(bytes).map_err(|reason| OutboxError::Damaged {
            path: self.name.clone(),
            id,
            reason,
        })
    }

    /// A value of the meta table; 0 when never set.
    fn meta_get(
        &self,
        meta: &impl ReadableTable<&'static str, u64>,
        key: &str,
    ) -> Result<u64, OutboxError> {
        Ok(meta
            .get(key)
            .map_err(|e| self.err("read meta", e))?
            .map_or(0, |v| v.value()))
    }

    fn write(&self, step: &'static str) -> Result<redb::WriteTransaction, OutboxError> {
        self.db()?.begin_write().map_err(|e| self.err(step, e))
    }

    /// Store a record durably; returns its id once it is on flash. Older
    /// records are evicted first if the bounds require it.
    pub fn push(&mut self, topic: &str, payload: &[u8], now_us: u64) -> Result<u64, OutboxError> {
        self.push_counted(topic, payload, now_us, None)
    }

    /// As [`push`](Self::push), also setting the named counter to `value`
    /// in the same transaction: a record and the sequence number after it
    /// are stored together or not at all.
    pub fn push_counted(
        &mut self,
        topic: &str,
        payload: &[u8],
        now_us: u64,
        counter: Option<(&str, u64)>,
    ) -> Result<u64, OutboxError> {
        if let Some((name, _)) = counter {
            debug_assert!(![NEXT_ID, EVICTED, BYTES].contains(&name));
        }
        let stored = Stored {
            topic: topic.to_string(),
            created_us: now_us,
            payload: payload.to_vec(),
        };
        let bytes = stored.encode().map_err(|source| OutboxError::Encode {
            path: self.name.clone(),
            source,
        })?;
        // Bounds count the bytes stored.
        let size = bytes.len() as u64;
        if size > self.limits.max_bytes {
            return Err(OutboxError::TooLarge {
                path: self.name.clone(),
                size,
                max: self.limits.max_bytes,
            });
        }
        let tx = self.write("begin push")?;
        let id = {
            let mut meta = tx.open_table(META).map_err(|e| self.err("open meta", e))?;
            let mut records = tx
                .open_table(RECORDS)
                .map_err(|e| self.err("open records", e))?;
            let id = self.meta_get(&meta, NEXT_ID)?;
            let mut total = self.meta_get(&meta, BYTES)?;
            let mut evicted = self.meta_get(&meta, EVICTED)?;
            let cutoff = now_us.saturating_sub(self.limits.max_age_us);
            // Oldest first, until the new record fits and nothing is too
            // old. A damaged record found on the way goes too.
            loop {
                let Some((key, len, created)) = records
                    .first()
                    .map_err(|e| self.err("read oldest", e))?
                    .map(|(k, v)| {
                        let created = Stored::decode(v.value()).ok().map(|s| s.created_us);
                        (k.value(), v.value().len() as u64, created)
                    })
                else {
                    break;
                };
                let fits = total + size <= self.limits.max_bytes;
                if fits && created.is_some_and(|c| c >= cutoff) {
                    break;
                }
                records.remove(key).map_err(|e| self.err("evict", e))?;
                total = total.saturating_sub(len);
                if created.is_some() {
                    evicted += 1;
                } else {
                    let damaged = self.meta_get(&meta, DAMAGED)?;
                    meta.insert(DAMAGED, damaged + 1)
                        .map_err(|e| self.err("write meta", e))?;
                    tracing::warn!(outbox = %self.name, id = key, "damaged record removed");
                }
            }
            records
                .insert(id, bytes.as_slice())
                .map_err(|e| self.err("insert", e))?;
            meta.insert(NEXT_ID, id + 1)
                .map_err(|e| self.err("write meta", e))?;
            meta.insert(BYTES, total + size)
                .map_err(|e| self.err("write meta", e))?;
            meta.insert(EVICTED, evicted)
                .map_err(|e| self.err("write meta", e))?;
            if let Some((name, value)) = counter {
                meta.insert(name, value)
                    .map_err(|e| self.err("write counter", e))?;
            }
            id
        };
        tx.commit().map_err(|e| self.err("commit push", e))?;
        Ok(id)
    }

    /// Up to `max` records waiting, oldest first.
    pub fn pending(&self, max: usize) -> Result<Vec<Entry>, OutboxError> {
        self.pending_after(None, max)
    }

    /// Up to `max` records waiting with an id above `after` (all when
    /// `None`), oldest first: the link reads on from what it has in flight.
    pub fn pending_after(&self, after: Option<u64>, max: usize) -> Result<Vec<Entry>, OutboxError> {
        let tx = self
            .db()?
            .begin_read()
            .map_err(|e| self.err("begin read", e))?;
        let records = tx
            .open_table(RECORDS)
            .map_err(|e| self.err("open records", e))?;
        let mut out = Vec::new();
        let mut damaged = Vec::new();
        let from = after.map_or(0, |a| a.saturating_add(1));
        for item in records.range(from..).map_err(|e| self.err("iterate", e))? {
            if out.len() >= max {
                break;
            }
            let (k, v) = item.map_err(|e| self.err("iterate", e))?;
            let id = k.value();
            match self.decode(id, v.value()) {
                Ok(s) => out.push(Entry {
                    id,
                    topic: s.topic,
                    payload: s.payload,
                    created_us: s.created_us,
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a damaged record: it is removed, never published");
                    damaged.push(id);
                }
            }
        }
        drop(records);
        drop(tx);
        if !damaged.is_empty() {
            self.remove_damaged(&damaged)?;
        }
        Ok(out)
    }

    /// Remove records found damaged, counting them.
    fn remove_damaged(&self, ids: &[u64]) -> Result<(), OutboxError> {
        let tx = self.write("begin removing damaged records")?;
        {
            let mut records = tx
                .open_table(RECORDS)
                .map_err(|e| self.err("open records", e))?;
            let mut meta = tx.open_table(META).map_err(|e| self.err("open meta", e))?;
            let mut freed = 0;
            for &id in ids {
                if let Some(v) = records.remove(id).map_err(|e| self.err("remove", e))? {
                    freed += v.value().len() as u64;
                }
            }
            let total = self.meta_get(&meta, BYTES)?;
            let damaged = self.meta_get(&meta, DAMAGED)?;
            meta.insert(BYTES, total.saturating_sub(freed))
                .map_err(|e| self.err("write meta", e))?;
            meta.insert(DAMAGED, damaged + ids.len() as u64)
                .map_err(|e| self.err("write meta", e))?;
        }
        tx.commit()
            .map_err(|e| self.err("commit removing damaged records", e))
    }

    /// The broker acknowledged record `id`: forget it. Returns false when
    /// it was not there (acknowledged twice, or evicted meanwhile).
    pub fn ack(&mut self, id: u64) -> Result<bool, OutboxError> {
        Ok(self.ack_many(&[id])? == 1)
    }

    /// Forget every record in `ids` in one transaction (one fsync for a
    /// whole batch of PUBACKs); returns how many were there. Losing an
    /// acknowledgement to a power cut only means the record is sent again
    /// under the same sequence number.
    pub fn ack_many(&mut self, ids: &[u64]) -> Result<usize, OutboxError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let tx = self.write("begin ack")?;
        let removed = {
            let mut records = tx
                .open_table(RECORDS)
                .map_err(|e| self.err("open records", e))?;
            let mut meta = tx.open_table(META).map_err(|e| self.err("open meta", e))?;
            let mut freed = 0;
            let mut removed = 0;
            for &id in ids {
                if let Some(v) = records.remove(id).map_err(|e| self.err("remove", e))? {
                    freed += v.value().len() as u64;
                    removed += 1;
                }
            }
            if removed > 0 {
                let total = self.meta_get(&meta, BYTES)?;
                meta.insert(BYTES, total.saturating_sub(freed))
                    .map_err(|e| self.err("write meta", e))?;
            }
            removed
        };
        tx.commit().map_err(|e| self.err("commit ack", e))?;
        Ok(removed)
    }

    /// Depth, bytes, evictions and the oldest record's age.
    pub fn stats(&self) -> Result<OutboxStats, OutboxError> {
        let tx = self
            .db()?
            .begin_read()
            .map_err(|e| self.err("begin read", e))?;
        let records = tx
            .open_table(RECORDS)
            .map_err(|e| self.err("open records", e))?;
        let meta = tx.open_table(META).map_err(|e| self.err("open meta", e))?;
        // A damaged oldest record has no known age (it goes at the next
        // read).
        let oldest = records
            .first()
            .map_err(|e| self.err("read oldest", e))?
            .and_then(|(_, v)| Stored::decode(v.value()).ok())
            .map(|s| s.created_us);
        Ok(OutboxStats {
            depth: records.len().map_err(|e| self.err("count", e))?,
            bytes: self.meta_get(&meta, BYTES)?,
            evicted: self.meta_get(&meta, EVICTED)?,
            oldest_us: oldest,
            damaged: self.meta_get(&meta, DAMAGED)?,
            set_aside: self.set_aside.clone(),
        })
    }

    /// A counter stored with [`push_counted`](Self::push_counted); 0 when
    /// never set.
    pub fn counter(&self, name: &str) -> Result<u64, OutboxError> {
        let tx = self
            .db()?
            .begin_read()
            .map_err(|e| self.err("begin read", e))?;
        let meta = tx.open_table(META).map_err(|e| self.err("open meta", e))?;
        self.meta_get(&meta, name)
    }

    /// Whether it was opened without records from before (missing,
    /// empty, or set aside as damaged): sequence numbers then continue
    /// from their reservations (`sequence_store`).
    pub fn is_new(&self) -> bool {
        self.new
    }

    /// Where the outbox lives (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Check an outbox file without changing it: redb opens it, its
/// integrity check passes (page checksums, tree structure; a torn last
/// commit is rolled back), and every record and counter reads. `Err`
/// names what is wrong. May panic on a damaged file (redb does): run it
/// where a panic is caught, or in a child process.
pub fn verify(path: &Path) -> Result<(), String> {
    let mut db = Database::create(path).map_err(|e| format!("redb cannot open it: {e}"))?;
    match db.check_integrity() {
        Ok(_) => {}
        Err(e) => return Err(format!("integrity check failed: {e}")),
    }
    let tx = db.begin_read().map_err(|e| e.to_string())?;
    // A file from before the first commit has no tables yet.
    if let Ok(records) = tx.open_table(RECORDS) {
        for item in records.iter().map_err(|e| e.to_string())? {
            item.map_err(|e| format!("reading records: {e}"))?;
        }
    }
    if let Ok(meta) = tx.open_table(META) {
        for item in meta.iter().map_err(|e| e.to_string())? {
            item.map_err(|e| format!("reading counters: {e}"))?;
        }
    }
    Ok(())
}

/// Move a damaged outbox out of the way, durably, keeping it for support;
/// returns the name it now has.
fn set_aside(path: &Path, reason: &str) -> Result<String, OutboxError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut kept = path.as_os_str().to_owned();
    kept.push(format!(".damaged-{secs}"));
    let kept = PathBuf::from(kept);
    let fail = |source| OutboxError::SetAside {
        path: path.display().to_string(),
        reason: reason.to_string(),
        source,
    };
    std::fs::rename(path, &kept).map_err(fail)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail)?;
    tracing::error!(
        outbox = %path.display(),
        kept = %kept.display(),
        reason,
        "the outbox was damaged: set aside for support, a new one replaces it"
    );
    Ok(kept.display().to_string())
}

/// The default location of the outbox file under a data directory.
pub fn default_path(data_dir: &Path) -> PathBuf {
    data_dir.join("outbox.redb")
}

#[cfg(test)]
mod tests {
    use super::testing::PowerCutBackend;
    use super::*;

    const T0: u64 = 1_767_225_600_000_000;

    fn limits(max_bytes: u64) -> OutboxLimits {
        OutboxLimits {
            max_bytes,
            max_age_us: 3600 * 1_000_000,
        }
    }

    #[test]
    fn records_come_back_in_order_and_go_when_acknowledged() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = default_path(dir.path());
        let mut o = Outbox::open(&path, limits(1 << 20)).expect("open");
        for i in 0..5u64 {
            let id = o
                .push("cam/bins", format!("bin {i}").as_bytes(), T0 + i)
                .expect("push");
            assert_eq!(id, i);
        }
        let p = o.pending(3).expect("pending");
        assert_eq!(p.iter().map(|e| e.id).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(p[1].payload, b"bin 1");
        assert_eq!(p[1].topic, "cam/bins");
        assert!(o.ack(0).expect("ack"));
        assert!(!o.ack(0).expect("ack twice"), "already gone");
        drop(o);
        // After a restart: what was not acknowledged is still there, and
        // ids keep growing.
        let mut o = Outbox::open(&path, limits(1 << 20)).expect("reopen");
        let s = o.stats().expect("stats");
        assert_eq!(s.depth, 4);
        assert_eq!(s.oldest_us, Some(T0 + 1));
        assert_eq!(o.push("cam/bins", b"bin 5", T0 + 5).expect("push"), 5);
    }

    #[test]
    fn a_counter_is_stored_with_its_record() {
        let disk = PowerCutBackend::new();
        let mut o = Outbox::with_backend(disk.clone(), "counter", limits(1 << 20)).expect("open");
        assert_eq!(o.counter("next_bin_seq").expect("counter"), 0);
        o.push_counted("cam/bins", b"bin 41", T0, Some(("next_bin_seq", 42)))
            .expect("push");
        std::mem::forget(o);
        let o = Outbox::with_backend(disk.power_cut(), "counter", limits(1 << 20)).expect("reopen");
        assert_eq!(o.counter("next_bin_seq").expect("counter"), 42);
        assert_eq!(o.pending(10).expect("pending").len(), 1);
    }

    #[test]
    fn a_damaged_record_is_counted_removed_and_never_handed_out() {
        let disk = PowerCutBackend::new();
        let mut o = Outbox::with_backend(disk, "damaged", limits(1 << 20)).expect("open");
        for n in 0..3u64 {
            o.push("events", format!("{{\"seq\":{n}}}").as_bytes(), n)
                .expect("push");
        }
        // Record 1's bytes changed behind the store's back (a bit flip the
        // page checksums missed, an old format), then one with no header.
        let tx = o.write("test").expect("tx");
        {
            let mut records = tx.open_table(RECORDS).expect("table");
            let mut bytes = records
                .get(1)
                .expect("get")
                .expect("there")
                .value()
                .to_vec();
            let last = bytes.len() - 1;
            bytes[last] ^= 0x01;
            records.insert(1, bytes.as_slice()).expect("insert");
            records
                .insert(3, b"not a record".as_slice())
                .expect("insert");
        }
        tx.commit().expect("commit");
        let got: Vec<u64> = o
            .pending(10)
            .expect("pending")
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(got, [0, 2]);
        let stats = o.stats().expect("stats");
        assert_eq!((stats.damaged, stats.depth), (2, 2));
        // Gone for good: the next read finds nothing more to count.
        assert_eq!(o.pending(10).expect("pending").len(), 2);
        assert_eq!(o.stats().expect("stats").damaged, 2);
        // Another format version is refused by name.
        let mut bytes = Stored {
            topic: "t".into(),
            created_us: 0,
            payload: vec![],
        }
        .encode()
        .expect("encode");
        bytes[2] = 9;
        let e = Stored::decode(&bytes).expect_err("version 9");
        assert!(e.contains("format version 9"), "{e}");
    }

    #[test]
    fn the_oldest_records_are_evicted_first_and_counted() {
        let dir = tempfile::tempdir().expect("tmp");
        // Bounds count the bytes stored: header, topic, time, payload.
        // Five records fit.
        let one = Stored {
            topic: "cam/evts".into(),
            created_us: T0,
            payload: b"payload-0000".to_vec(),
        }
        .encode()
        .expect("encode")
        .len() as u64;
        let max = 5 * one;
        let mut o = Outbox::open(&default_path(dir.path()), limits(max)).expect("open");
        for i in 0..8u64 {
            o.push("cam/evts", format!("payload-{i:04}").as_bytes(), T0 + i)
                .expect("push");
        }
        let s = o.stats().expect("stats");
        assert_eq!((s.depth, s.bytes, s.evicted), (5, max, 3));
        let ids: Vec<u64> = o
            .pending(10)
            .expect("pending")
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, [3, 4, 5, 6, 7]);
        // Too old: evicted at the next push.
        o.push("cam/evts", b"payload-late", T0 + 7200 * 1_000_000)
            .expect("push");
        let s = o.stats().expect("stats");
        assert_eq!((s.depth, s.evicted), (1, 8));
        // A record that can never fit is refused, naming the outbox.
        let err = o.push("cam/evts", &[0u8; 200], T0).expect_err("too large");
        assert!(
            err.to_string()
                .contains(&format!("cannot fit in {max} bytes")),
            "{err}"
        );
    }

    /// Every push that returned Ok survives a power cut; the harness is
    /// shown to bite by a commit that was not made durable.
    #[test]
    fn acknowledged_pushes_survive_a_power_cut() {
        let disk = PowerCutBackend::new();
        let mut o = Outbox::with_backend(disk.clone(), "powercut", limits(1 << 20)).expect("open");
        for i in 0..50u64 {
            o.push("cam/bins", format!("bin {i}").as_bytes(), T0 + i)
                .expect("push");
        }
        // The power goes: whatever was not synced is gone. (The outbox is
        // forgotten without closing, as a dead process would.)
        std::mem::forget(o);
        let disk = disk.power_cut();
        let mut o =
            Outbox::with_backend(disk.clone(), "powercut", limits(1 << 20)).expect("reopen");
        let ids: Vec<u64> = o
            .pending(100)
            .expect("pending")
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, (0..50).collect::<Vec<_>>());
        // An acknowledgement is durable too.
        assert!(o.ack(0).expect("ack"));
        std::mem::forget(o);
        let o =
            Outbox::with_backend(disk.power_cut(), "powercut", limits(1 << 20)).expect("reopen");
        let ids: Vec<u64> = o
            .pending(100)
            .expect("pending")
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, (1..50).collect::<Vec<_>>());
    }

    #[test]
    fn the_power_cut_harness_drops_writes_that_were_not_synced() {
        use redb::StorageBackend;
        let disk = PowerCutBackend::new();
        disk.write(0, b"synced").expect("write");
        disk.sync_data().expect("sync");
        disk.write(0, b"SYNCED, then lost").expect("write");
        assert!(disk.unsynced_bytes() > 0);
        let after = disk.power_cut();
        assert_eq!(after.len().expect("len"), 6);
        let mut buf = [0u8; 6];
        after.read(0, &mut buf).expect("read");
        assert_eq!(&buf, b"synced");
        // The process itself saw its last write.
        let mut buf = [0u8; 6];
        disk.read(0, &mut buf).expect("read");
        assert_eq!(&buf, b"SYNCED");
    }
}
