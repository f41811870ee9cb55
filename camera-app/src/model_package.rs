//! A model package: what the OTA model slot holds (`docs/ota.md`), so that
//! a model update needs no new application and the weights, their
//! manifest and their NPU builds always travel together.
//!
//! The package is a plain ustar archive of one model directory, as the
//! models directory lays it out:
//!
//! ```text
//! fastestdet/model.toml          the manifest (weights sha256, input, decoder, labels)
//! fastestdet/FastestDet.onnx     the weights
//! fastestdet/FastestDet.rk3588.rknn   NPU builds, if any
//! ```
//!
//! made with `tar --format=ustar -cf fastestdet.pkg -C <models dir>
//! fastestdet`. A slot is a fixed-size file or partition, so bytes after
//! the archive's end are ignored. The signed OTA bundle proves the whole
//! slot; the manifest's sha256 is still checked at every load.
//!
//! camera-app unpacks it once at start into a private temporary directory
//! and loads model and manifest from there instead of its built-in ones.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Component, Path, PathBuf};

/// No file in a package is larger (the largest NPU builds are tens of MiB).
const MAX_FILE: u64 = 512 << 20;

/// Why a model package cannot be used. Every variant names the package.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("model package {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("model package {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// A package unpacked for this process: a models directory holding one
/// model, and that model's manifest (to parse with
/// `model::Manifest::parse`). The directory goes when this does.
#[derive(Debug)]
pub struct Unpacked {
    dir: tempfile::TempDir,
    pub manifest: String,
}

impl Unpacked {
    /// The models directory to load from (`<dir>/<name>/<file>`).
    pub fn models_dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Unpack the package at `path`, which must hold model `name`.
pub fn unpack(path: &Path, name: &str) -> Result<Unpacked, PackageError> {
    let io_err = |source| PackageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let invalid = |reason: String| PackageError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let dir = tempfile::Builder::new()
        .prefix("camera-model-")
        .tempdir()
        .map_err(io_err)?;
    let file = File::open(path).map_err(io_err)?;
    let mut archive = tar::Archive::new(BufReader::new(file));
    let mut files = 0usize;
    for entry in archive.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        let kind = entry.header().entry_type();
        let inner = entry.path().map_err(io_err)?.into_owned();
        if kind.is_dir() {
            continue;
        }
        // Only plain files directly under the model's directory: no links,
        // devices, absolute paths or `..`.
        let parts: Vec<_> = inner.components().collect();
        let ok_path = matches!(
            parts.as_slice(),
            [Component::Normal(d), Component::Normal(_)] if *d == name
        );
        if !kind.is_file() || !ok_path {
            return Err(invalid(format!(
                "{} is not a plain file under {name}/",
                inner.display()
            )));
        }
        let size = entry.header().size().map_err(io_err)?;
        if size > MAX_FILE {
            return Err(invalid(format!(
                "{} is {size} bytes, more than {MAX_FILE}",
                inner.display()
            )));
        }
        let target = dir.path().join(&inner);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        let mut out = File::create(&target).map_err(io_err)?;
        let copied = io::copy(&mut entry, &mut out).map_err(io_err)?;
        if copied != size {
            return Err(invalid(format!("{} is truncated", inner.display())));
        }
        files += 1;
    }
    if files == 0 {
        return Err(invalid(
            "no files: the slot is empty or not a ustar archive".into(),
        ));
    }
    let manifest_path = dir.path().join(name).join("model.toml");
    let text = std::fs::read_to_string(&manifest_path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            invalid(format!("no {name}/model.toml"))
        } else {
            io_err(e)
        }
    })?;
    Ok(Unpacked {
        dir,
        manifest: text,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const MANIFEST: &str = include_str!("../../models/fastestdet/model.toml");

    fn add(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    }

    fn package(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, d) in files {
            add(&mut b, p, d);
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn a_package_in_a_larger_slot_gives_its_manifest_and_files() {
        let tmp = tempfile::tempdir().unwrap();
        let slot = tmp.path().join("a.pkg");
        let mut bytes = package(&[
            ("fastestdet/model.toml", MANIFEST.as_bytes()),
            ("fastestdet/FastestDet.onnx", b"weights"),
        ]);
        // The rest of the slot: an older, longer package's bytes.
        bytes.extend(std::iter::repeat_n(0xa5, 64 * 1024));
        std::fs::write(&slot, &bytes).unwrap();
        let u = unpack(&slot, "fastestdet").unwrap();
        assert_eq!(u.manifest, MANIFEST);
        assert_eq!(
            std::fs::read(u.models_dir().join("fastestdet/FastestDet.onnx")).unwrap(),
            b"weights"
        );
        let dir = u.models_dir().to_path_buf();
        drop(u);
        assert!(!dir.exists(), "the unpacked copy goes with the process");
    }

    #[test]
    fn a_bad_package_is_refused_naming_the_slot_and_the_reason() {
        let tmp = tempfile::tempdir().unwrap();
        let slot = tmp.path().join("b.pkg");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0; 4096], "no files"),
            (b"not an archive at all".to_vec(), "model package"),
            (
                package(&[("fastestdet/FastestDet.onnx", b"w")]),
                "no fastestdet/model.toml",
            ),
            (
                package(&[("other/model.toml", MANIFEST.as_bytes())]),
                "not a plain file under fastestdet/",
            ),
            (
                package(&[("fastestdet/sub/x", b"x")]),
                "not a plain file under fastestdet/",
            ),
        ];
        for (bytes, says) in cases {
            std::fs::write(&slot, &bytes).unwrap();
            let e = unpack(&slot, "fastestdet").unwrap_err().to_string();
            assert!(
                e.contains("b.pkg") && e.contains(says),
                "{e:?} should say {says:?}"
            );
        }
        let e = unpack(&tmp.path().join("missing.pkg"), "fastestdet")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.pkg"), "{e}");
    }
}
