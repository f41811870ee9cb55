//! The camera's persisted remote configuration: one versioned document,
//! replaced atomically and durably.
//!
//! `save` writes a temporary file, fsyncs it, renames it over
//! `remote-config.json` and fsyncs the directory, so that after a power cut
//! `load` finds either the previous document or the new one, whole, never
//! a torn or empty file; and once `save` has returned, the new one (the
//! power-cut test in `tests/powercut` checks this on a filesystem that
//! drops every unsynced write). One process saves at a time.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const FILE: &str = "remote-config.json";
const TEMP: &str = "remote-config.json.tmp";

/// A stored configuration: its version and its body, as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredConfig {
    pub version: u64,
    pub body: String,
}

/// Why the store failed; each names the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum ConfigStoreError {
    #[error("config store {}: {step}: {source}", path.display())]
    Io {
        path: PathBuf,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("config store {}: not a stored configuration: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn io_err(path: &Path, step: &'static str) -> impl FnOnce(io::Error) -> ConfigStoreError {
    let path = path.to_path_buf();
    move |source| ConfigStoreError::Io { path, step, source }
}

/// The store: a directory holding `remote-config.json`.
#[derive(Debug)]
pub struct ConfigStore {
    dir: PathBuf,
}

impl ConfigStore {
    /// Open the store in `dir`, creating the directory (durably) if needed.
    pub fn open(dir: &Path) -> Result<Self, ConfigStoreError> {
        // The parent of a bare file name is "": the working directory.
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(ConfigStoreError::Io {
                    path: dir.to_path_buf(),
                    step: "open",
                    source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))?;
                // The new directory's name lives in its parent.
                if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    sync_dir(parent)?;
                }
            }
            Err(e) => return Err(io_err(dir, "open")(e)),
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// The file holding the configuration.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// The stored configuration; `None` when none was ever saved.
    pub fn load(&self) -> Result<Option<StoredConfig>, ConfigStoreError> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path, "read")(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| ConfigStoreError::Corrupt { path, source })
    }

    /// Replace the stored configuration; durable once this returns.
    pub fn save(&self, version: u64, body: &str) -> Result<(), ConfigStoreError> {
        let temp = self.dir.join(TEMP);
        let doc = StoredConfig {
            version,
            body: body.to_string(),
        };
        let bytes = serde_json::to_vec(&doc).map_err(|source| ConfigStoreError::Corrupt {
            path: temp.clone(),
            source,
        })?;
        replace_file(&self.dir, FILE, TEMP, &bytes)
    }
}

/// Replace `dir/file` by `bytes`, durably and atomically (through
/// `dir/temp`): after a power cut the old or the new content is there,
/// whole.
pub(crate) fn replace_file(
    dir: &Path,
    file: &str,
    temp: &str,
    bytes: &[u8],
) -> Result<(), ConfigStoreError> {
    let temp = dir.join(temp);
    // A temporary left by an interrupted save is simply overwritten.
    let mut f = File::create(&temp).map_err(io_err(&temp, "create"))?;
    f.write_all(bytes).map_err(io_err(&temp, "write"))?;
    // Data first: a rename made durable over unsynced data would leave
    // an empty or torn file after a power cut.
    f.sync_all().map_err(io_err(&temp, "fsync"))?;
    drop(f);
    let path = dir.join(file);
    fs::rename(&temp, &path).map_err(io_err(&path, "rename"))?;
    // The rename is durable only once the directory is.
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), ConfigStoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "fsync directory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_replace_and_survive_reopening() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("state/config");
        let store = ConfigStore::open(&dir).expect("open creates the directory");
        assert_eq!(store.load().expect("load"), None);
        store.save(1, r#"{"fps":10}"#).expect("save 1");
        store.save(2, r#"{"fps":12}"#).expect("save 2");
        let store = ConfigStore::open(&dir).expect("reopen");
        assert_eq!(
            store.load().expect("load"),
            Some(StoredConfig {
                version: 2,
                body: r#"{"fps":12}"#.to_string()
            })
        );
        // Only the document is left behind.
        let names: Vec<_> = fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [FILE]);
    }

    #[test]
    fn a_temporary_left_by_a_crash_is_ignored_and_overwritten() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = ConfigStore::open(tmp.path()).expect("open");
        store.save(5, "five").expect("save");
        fs::write(tmp.path().join(TEMP), b"{\"version\":6,\"bo").expect("torn temp");
        assert_eq!(store.load().expect("load").map(|c| c.version), Some(5));
        store.save(6, "six").expect("save over the temp");
        assert_eq!(store.load().expect("load").map(|c| c.version), Some(6));
    }

    #[test]
    fn errors_name_the_file() {
        let tmp = tempfile::tempdir().expect("tmp");
        let store = ConfigStore::open(tmp.path()).expect("open");
        fs::write(store.path(), b"{\"version\":3").expect("corrupt");
        let err = store.load().expect_err("torn file");
        let msg = err.to_string();
        assert!(
            msg.contains("remote-config.json") && msg.contains("not a stored configuration"),
            "{msg}"
        );

        let file = tmp.path().join("plain");
        fs::write(&file, b"x").expect("file");
        let err = ConfigStore::open(&file).expect_err("not a directory");
        assert!(err.to_string().contains("plain"), "{err}");
    }
}
