//! The one error type of the crate: every variant names the file involved.

use std::path::PathBuf;

/// Why a scenario could not be loaded, rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum SceneError {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A scenario file is not valid TOML for the scenario format.
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    /// A scenario parsed but makes no sense (times going backwards, an
    /// unknown sprite, a passers-by name that names nothing...).
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
    /// The shared people images (or their reference boxes) are missing.
    #[error(
        "{path} is missing: scenegen cuts its people sprites from the shared test images \
         (images/*.png|jpg) and their reference boxes \
         (models/fastestdet/reference/detections.json), which live in the shared data \
         directory next to the repository (../shared); check it out there or pass --images"
    )]
    SharedDataMissing { path: PathBuf },
    /// The reference detections file is malformed or lacks a sprite's box.
    #[error("{path}: {problem}")]
    Reference { path: PathBuf, problem: String },
    /// An image could not be decoded.
    #[error("{path}: cannot decode image: {source}")]
    Decode {
        path: PathBuf,
        source: image::ImageError,
    },
    /// An output file could not be written.
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A frame could not be encoded.
    #[error("{path}: cannot encode frame: {source}")]
    Encode {
        path: PathBuf,
        source: image::ImageError,
    },
    /// JSON could not be produced or parsed.
    #[error("{path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}
