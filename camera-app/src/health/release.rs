//! Which releases run: the version each signed manifest gave the rootfs,
//! app and model slots now in use, as `ota select` recorded them at boot
//! (`<dir>/<component>.version`, `/run/ota` on a camera). A slot with no
//! record holds the factory image. The agent commits an update on the
//! health reports that carry these, so an operator sees what a camera
//! really runs, not what the binary was compiled as.

use std::path::Path;

use serde::Serialize;

use super::FIRMWARE_VERSION;

/// The release versions of the slots in use; `None`: factory image or
/// unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Releases {
    pub rootfs: Option<String>,
    pub app: Option<String>,
    pub model: Option<String>,
}

impl Releases {
    /// Read the records in `dir`. A record that is missing means a factory
    /// slot; one that is unreadable or not a version is logged and left
    /// out (a report always goes out).
    pub fn read(dir: &Path) -> Self {
        let one = |name: &str| {
            let path = dir.join(format!("{name}.version"));
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let v = text.trim();
                    if v.is_empty() || v.len() > 64 || v.chars().any(char::is_control) {
                        tracing::warn!(path = %path.display(), "not a release version; ignored");
                        None
                    } else {
                        Some(v.to_string())
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read the release version");
                    None
                }
            }
        };
        Self {
            rootfs: one("rootfs"),
            app: one("app"),
            model: one("model"),
        }
    }

    /// The firmware's version: the rootfs release when it came by update,
    /// else this build's own.
    pub fn firmware_version(&self) -> &str {
        self.rootfs.as_deref().unwrap_or(FIRMWARE_VERSION)
    }
}
