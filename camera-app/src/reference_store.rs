//! Shelf references on flash: `shelf-references.bin` beside the outbox,
//! replaced atomically and durably like the remote configuration (a power
//! cut leaves the old set or the new one, whole). Each reference carries
//! the configuration version it was taken for; the monitor refuses those
//! of another version.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config_store::{ConfigStoreError, replace_file};
use camera_core::shelf::compare::ShelfReference;

const FILE: &str = "shelf-references.bin";
const TEMP: &str = "shelf-references.bin.tmp";
/// Leads the file: a format change is refused by name, not misread.
const MAGIC: &[u8; 8] = b"SHELFREF";
const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    format: u32,
    references: Vec<ShelfReference>,
}

/// Why references could not be read or written; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceStoreError {
    #[error(transparent)]
    Io(#[from] ConfigStoreError),
    #[error("shelf references {}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("shelf references {}: {reason}; take new references", path.display())]
    Corrupt { path: PathBuf, reason: String },
}

/// The reference store: a directory holding `shelf-references.bin`.
#[derive(Debug, Clone)]
pub struct ReferenceStore {
    dir: PathBuf,
}

impl ReferenceStore {
    /// The store in `dir` (an existing directory: the data partition).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// The stored references; none when none were ever saved.
    pub fn load(&self) -> Result<Vec<ShelfReference>, ReferenceStoreError> {
        let path = self.path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(ReferenceStoreError::Read { path, source }),
        };
        let corrupt = |reason: String| ReferenceStoreError::Corrupt {
            path: path.clone(),
            reason,
        };
        let body = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| corrupt("not a shelf reference file".into()))?;
        let stored: Stored = postcard::from_bytes(body).map_err(|e| corrupt(e.to_string()))?;
        if stored.format != FORMAT {
            return Err(corrupt(format!(
                "format {} is not {FORMAT} (written by another firmware)",
                stored.format
            )));
        }
        Ok(stored.references)
    }

    /// Replace the stored references; durable once this returns.
    pub fn save(&self, references: &[ShelfReference]) -> Result<(), ReferenceStoreError> {
        let stored = Stored {
            format: FORMAT,
            references: references.to_vec(),
        };
        let mut bytes = MAGIC.to_vec();
        bytes.extend(
            postcard::to_allocvec(&stored).map_err(|e| ReferenceStoreError::Corrupt {
                path: self.path(),
                reason: e.to_string(),
            })?,
        );
        replace_file(&self.dir, FILE, TEMP, &bytes)?;
        Ok(())
    }
}
