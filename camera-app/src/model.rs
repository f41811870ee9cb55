//! Model manifests, finding model files, fetching and verifying them.
//!
//! A manifest (`models/<name>/model.toml`, embedded in the binary) names the
//! weights file, its sha256 and size, where it comes from and under which
//! licence, how to make its input and how to decode its output. Weights are
//! never committed: they are fetched from the pinned URL or copied from a
//! mirror directory, and checked against the manifest before every load.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[cfg(feature = "cpu")]
use crate::detect::cpu::RtenBackend;
use crate::detect::{DecoderKind, Detector, DetectorSettings, InferError, InferenceBackend};
use crate::preprocess::{Colorimetry, InputSpec, Preprocessor};

/// Manifests built into this binary.
const BUILTIN: &[(&str, &str)] = &[(
    "fastestdet",
    include_str!("../../models/fastestdet/model.toml"),
)];

/// The model used when none is named.
pub const DEFAULT_MODEL: &str = "fastestdet";

/// Environment variable naming the models directory.
pub const MODELS_DIR_ENV: &str = "CAMERA_MODELS_DIR";

/// A model manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    /// Weights file name inside `<models dir>/<name>/`.
    pub file: String,
    /// Lower-case hex sha256 of the weights file.
    pub sha256: String,
    /// Size of the weights file in bytes (also the download limit).
    pub size: u64,
    /// Pinned download URL.
    pub url: String,
    /// Project the weights come from.
    pub upstream: String,
    /// SPDX licence identifier of the weights.
    pub licence: String,
    /// Notice to keep wherever the weights are redistributed.
    pub licence_notice: String,
    pub input: InputSpec,
    pub decoder: DecoderSpec,
    /// Class names; index = class id.
    pub labels: Vec<String>,
    /// NPU builds of the same weights, per SoC (`models/convert.py`).
    #[serde(default)]
    pub npu: BTreeMap<String, NpuModel>,
}

/// One SoC's `.rknn` build of a model. No sha256: the conversion is not
/// bit-reproducible, and the signed OTA bundle that delivers it covers its
/// integrity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpuModel {
    /// File name inside `<models dir>/<name>/`.
    pub file: String,
    /// The converter and its version, e.g. "rknn-toolkit2 2.5.0".
    pub toolkit: String,
    /// Quantisation, e.g. "int8".
    pub dtype: String,
    /// Agreement of the toolkit's simulator with onnxruntime (Pearson
    /// correlation, the minimum over outputs and calibration images).
    pub correlation: f32,
}

/// How to decode the model's outputs, with default thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderSpec {
    pub kind: DecoderKind,
    pub score_threshold: f32,
    pub nms_iou: f32,
}

/// Errors about models: finding, fetching, verifying and loading them.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model {name:?}; this build knows: {known}")]
    Unknown { name: String, known: String },
    #[error("manifest {path}: {reason}")]
    Manifest { path: String, reason: String },
    #[error(
        "model file {path} is missing; get it with `camera-app models fetch {name}` \
         (or `--from DIR` to copy from a mirror such as ../shared/models), \
         or point --models-dir / {MODELS_DIR_ENV} at a directory holding {name}/{file}"
    )]
    Missing {
        path: String,
        name: String,
        file: String,
    },
    #[error("{path}: sha256 is {actual}, the manifest says {expected}")]
    Sha256 {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: size is {actual} bytes, the manifest says {expected}")]
    Size {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: model input shape is {actual:?}, the manifest says {expected:?}")]
    InputShape {
        path: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("download {url}: {reason}")]
    Download { url: String, reason: String },
    #[error("no models directory: pass --models-dir, set {MODELS_DIR_ENV}, or set HOME")]
    NoModelsDir,
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error(transparent)]
    Package(#[from] crate::model_package::PackageError),
    #[error("model package {path}: {name}/model.toml names model {found:?}")]
    PackageName {
        path: String,
        name: String,
        found: String,
    },
    #[error("this build has no {backend} inference backend (cargo feature {feature:?})")]
    NotBuilt {
        backend: &'static str,
        feature: &'static str,
    },
    #[error("board {board} has no NPU (npu.api = \"none\"): use the cpu backend")]
    NoNpu { board: String },
    #[error(
        "model {name} has no NPU build for {soc} (it has: {have}); convert it with \
         `python3 models/convert.py --soc {soc}` (see models/README.md)"
    )]
    NoNpuBuild {
        name: String,
        soc: String,
        have: String,
    },
    #[error(
        "the NPU build {path} for {soc} is missing: it comes with the model slot, or make it \
         with `python3 models/convert.py --soc {soc}` (see models/README.md)"
    )]
    NpuFileMissing { path: String, soc: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Manifest {
    /// Parse and sanity-check a manifest.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ModelError> {
        let bad = |reason: String| ModelError::Manifest {
            path: origin.to_string(),
            reason,
        };
        let m: Self = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut problems = Vec::new();
        if m.sha256.len() != 64 || !m.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            problems.push(format!("sha256 {:?} is not 64 hex digits", m.sha256));
        }
        if m.file.contains('/') || m.file.contains("..") || m.file.is_empty() {
            problems.push(format!("file {:?} must be a plain file name", m.file));
        }
        if m.input.width == 0 || m.input.height == 0 {
            problems.push("input width and height must be positive".into());
        }
        if m.input.std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
            problems.push("input.std must be finite and non-zero".into());
        }
        if !(0.0..=1.0).contains(&m.decoder.score_threshold) {
            problems.push("decoder.score_threshold must be within 0..1".into());
        }
        if !(0.0..=1.0).contains(&m.decoder.nms_iou) {
            problems.push("decoder.nms_iou must be within 0..1".into());
        }
        if m.labels.is_empty() {
            problems.push("labels must not be empty".into());
        }
        for (soc, npu) in &m.npu {
            if npu.file.contains('/') || npu.file.contains("..") || npu.file.is_empty() {
                problems.push(format!(
                    "npu.{soc}.file {:?} must be a plain file name",
                    npu.file
                ));
            }
            if !(0.0..=1.0).contains(&npu.correlation) {
                problems.push(format!("npu.{soc}.correlation must be within 0..1"));
            }
        }
        if problems.is_empty() {
            Ok(m)
        } else {
            Err(bad(problems.join("; ")))
        }
    }

    /// A manifest built into this binary.
    pub fn builtin(name: &str) -> Result<Self, ModelError> {
        let (_, text) =
            BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| ModelError::Unknown {
                    name: name.to_string(),
                    known: BUILTIN
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", "),
                })?;
        Self::parse(text, &format!("built-in manifest {name}"))
    }

    /// Where this model's weights live under `models_dir`.
    pub fn path_in(&self, models_dir: &Path) -> PathBuf {
        models_dir.join(&self.name).join(&self.file)
    }

    /// Class id of a label.
    pub fn class_id(&self, label: &str) -> Option<u16> {
        self.labels
            .iter()
            .position(|l| l == label)
            .and_then(|i| u16::try_from(i).ok())
    }

    /// Label of a class id, or `"class<N>"` for ids past the list.
    pub fn label(&self, class_id: u16) -> std::borrow::Cow<'_, str> {
        match self.labels.get(usize::from(class_id)) {
            Some(l) => l.as_str().into(),
            None => format!("class{class_id}").into(),
        }
    }

    /// Check that the file at `path` is the one this manifest names.
    pub fn verify_file(&self, path: &Path) -> Result<(), ModelError> {
        let meta = fs::metadata(path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                ModelError::Missing {
                    path: path.display().to_string(),
                    name: self.name.clone(),
                    file: self.file.clone(),
                }
            } else {
                io_err(path)(e)
            }
        })?;
        if meta.len() != self.size {
            return Err(ModelError::Size {
                path: path.display().to_string(),
                expected: self.size,
                actual: meta.len(),
            });
        }
        let actual = sha256_file(path)?;
        self.check_sha256(path, &actual)
    }

    fn check_sha256(&self, path: &Path, actual: &str) -> Result<(), ModelError> {
        if actual.eq_ignore_ascii_case(&self.sha256) {
            Ok(())
        } else {
            Err(ModelError::Sha256 {
                path: path.display().to_string(),
                expected: self.sha256.clone(),
                actual: actual.to_string(),
            })
        }
    }
}

/// Hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut f = BufReader::new(File::open(path).map_err(io_err(path))?);
    let mut h = Sha256::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The models directory: `flag`, else `$CAMERA_MODELS_DIR`, else the user
/// cache (`$XDG_CACHE_HOME/camera-app/models` or `~/.cache/camera-app/models`).
pub fn models_dir(flag: Option<&Path>) -> Result<PathBuf, ModelError> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(MODELS_DIR_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .ok_or(ModelError::NoModelsDir)?;
    Ok(cache.join("camera-app").join("models"))
}

/// Where `fetch` got the weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The file was already there and verified.
    AlreadyPresent(PathBuf),
    /// Copied from a mirror directory.
    Copied { from: PathBuf, to: PathBuf },
    /// Downloaded.
    Downloaded { url: String, to: PathBuf },
}

/// Put the model's weights into `models_dir`, verified: skip if already
/// there, else copy from `mirror` (which may hold `<name>/<file>` or
/// `<file>`), else download from `url` (the manifest's unless overridden).
/// The file appears under its final name only once its hash matches.
pub fn fetch(
    manifest: &Manifest,
    models_dir: &Path,
    mirror: Option<&Path>,
    url: Option<&str>,
) -> Result<Fetched, ModelError> {
    let dest = manifest.path_in(models_dir);
    if manifest.verify_file(&dest).is_ok() {
        return Ok(Fetched::AlreadyPresent(dest));
    }
    let dir = dest
        .parent()
        .ok_or_else(|| io_err(&dest)(io::Error::other("no parent directory")))?;
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(".{}.part", manifest.file));

    if let Some(m) = mirror {
        let candidates = [manifest.path_in(m), m.join(&manifest.file)];
        let src = candidates
            .iter()
            .find(|p| p.is_file())
            .ok_or_else(|| ModelError::Missing {
                path: candidates[0].display().to_string(),
                name: manifest.name.clone(),
                file: manifest.file.clone(),
            })?;
        manifest.verify_file(src)?;
        fs::copy(src, &tmp).map_err(io_err(&tmp))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err(&tmp))?;
        manifest.verify_file(&tmp).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })?;
        fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        return Ok(Fetched::Copied {
            from: src.clone(),
            to: dest,
        });
    }

    let url = url.unwrap_or(&manifest.url).to_string();
    let result = download(&url, &tmp, manifest.size).and_then(|actual| {
        manifest.check_sha256(&tmp, &actual)?;
        fs::rename(&tmp, &dest).map_err(io_err(&dest))
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    Ok(Fetched::Downloaded { url, to: dest })
}

/// Stream `url` into `to`, hashing as it goes; refuse more than `limit`
/// bytes. Returns the hex sha256.
/// Without the `fetch` feature (camera images: models arrive in the model
/// slot by OTA) there is no HTTP client.
#[cfg(not(feature = "fetch"))]
fn download(url: &str, _: &Path, _: u64) -> Result<String, ModelError> {
    Err(ModelError::Download {
        url: url.to_string(),
        reason: "this build has no HTTP client (cargo feature \"fetch\"); copy the model \
                 with --from DIR"
            .into(),
    })
}

#[cfg(feature = "fetch")]
fn download(url: &str, to: &Path, limit: u64) -> Result<String, ModelError> {
    use std::io::Write;
    let dl_err = |reason: String| ModelError::Download {
        url: url.to_string(),
        reason,
    };
    let resp = ureq::get(url).call().map_err(|e| dl_err(e.to_string()))?;
    let mut body = resp.into_body().into_reader().take(limit + 1);
    let mut f = File::create(to).map_err(io_err(to))?;
    let mut h = Sha256::new();
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = body.read(&mut buf).map_err(|e| dl_err(e.to_string()))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > limit {
            return Err(dl_err(format!("larger than the manifest's {limit} bytes")));
        }
        h.update(&buf[..n]);
        f.write_all(&buf[..n]).map_err(io_err(to))?;
    }
    f.sync_all().map_err(io_err(to))?;
    if total != limit {
        return Err(dl_err(format!(
            "got {total} bytes, the manifest says {limit}"
        )));
    }
    Ok(hex(&h.finalize()))
}

/// Options for building a detector from a manifest.
#[derive(Debug, Clone, Default)]
pub struct DetectorOptions {
    /// Override the manifest's score threshold.
    pub score_threshold: Option<f32>,
    /// Override the manifest's NMS IoU.
    pub nms_iou: Option<f32>,
    /// Labels to keep; empty keeps all.
    pub classes: Vec<String>,
    /// CPU inference threads; 0 = the backend's default.
    pub threads: usize,
    pub colorimetry: Option<Colorimetry>,
}

/// Which inference backend runs the model.
#[derive(Debug, Clone)]
pub enum Backend {
    /// rten on the CPU, from the ONNX weights.
    Cpu,
    /// The board's NPU, from the manifest's `.rknn` build for its SoC.
    Rknn(Box<NpuSetup>),
}

impl Backend {
    /// The NPU of `board`, with its profile's settings (the runtime
    /// library replaced by `library` when given).
    pub fn npu(board: boards::Profile, library: Option<PathBuf>) -> Self {
        Self::Rknn(Box::new(NpuSetup {
            board,
            library,
            api: None,
            model: None,
        }))
    }
}

/// The NPU settings of a board, with overrides for development.
#[derive(Debug, Clone)]
pub struct NpuSetup {
    pub board: boards::Profile,
    /// Instead of the profile's `npu.runtime`.
    pub library: Option<PathBuf>,
    /// Instead of the profile's `npu.api`.
    pub api: Option<boards::NpuApi>,
    /// Instead of the manifest's file for the board's SoC.
    pub model: Option<PathBuf>,
}

/// Build a detector for `manifest` on `backend`.
pub fn detector(
    manifest: &Manifest,
    models_dir: &Path,
    backend: &Backend,
    opts: &DetectorOptions,
) -> Result<Detector, ModelError> {
    match backend {
        Backend::Cpu => cpu_detector(manifest, models_dir, opts),
        Backend::Rknn(setup) => rknn_detector(manifest, models_dir, setup, opts),
    }
}

/// The NPU detector for a board.
#[cfg(feature = "rknn")]
pub fn rknn_detector(
    manifest: &Manifest,
    models_dir: &Path,
    setup: &NpuSetup,
    opts: &DetectorOptions,
) -> Result<Detector, ModelError> {
    use crate::detect::rknn::{RknnBackend, RknnOptions};
    use crate::tensor::{DType, Layout};

    let mut board = setup.board.clone();
    if let Some(api) = setup.api {
        board.npu.api = api;
    }
    if let Some(lib) = &setup.library {
        board.npu.runtime = Some(lib.display().to_string());
    }
    let no_npu = || ModelError::NoNpu {
        board: board.name.clone(),
    };
    let rknn = RknnOptions::from_profile(&board).ok_or_else(no_npu)?;
    let soc = board.soc.name();
    let path = match &setup.model {
        Some(p) => p.clone(),
        None => {
            let npu = manifest
                .npu
                .get(soc)
                .ok_or_else(|| ModelError::NoNpuBuild {
                    name: manifest.name.clone(),
                    soc: soc.to_string(),
                    have: if manifest.npu.is_empty() {
                        "none".into()
                    } else {
                        manifest.npu.keys().cloned().collect::<Vec<_>>().join(", ")
                    },
                })?;
            let p = models_dir.join(&manifest.name).join(&npu.file);
            if !p.is_file() {
                return Err(ModelError::NpuFileMissing {
                    path: p.display().to_string(),
                    soc: soc.to_string(),
                });
            }
            p
        }
    };
    let backend = RknnBackend::load(&path, &rknn)?;
    // The NPU model takes raw uint8 NHWC pixels; its scale and mean/std
    // are compiled in (models/convert.py passes them to the toolkit).
    let input = InputSpec {
        layout: Layout::Nhwc,
        dtype: DType::U8,
        quant: None,
        scale: 1.0,
        mean: [0.0; 3],
        std: [1.0; 3],
        ..manifest.input.clone()
    };
    let expected = input.shape().to_vec();
    if backend.input().shape != expected {
        return Err(ModelError::InputShape {
            path: path.display().to_string(),
            expected,
            actual: backend.input().shape.clone(),
        });
    }
    build_detector(manifest, input, Box::new(backend), opts)
}

/// The NPU detector (not in this build).
#[cfg(not(feature = "rknn"))]
pub fn rknn_detector(
    _: &Manifest,
    _: &Path,
    _: &NpuSetup,
    _: &DetectorOptions,
) -> Result<Detector, ModelError> {
    Err(ModelError::NotBuilt {
        backend: "rknn",
        feature: "rknn",
    })
}

/// The CPU detector (not in this build).
#[cfg(not(feature = "cpu"))]
pub fn cpu_detector(_: &Manifest, _: &Path, _: &DetectorOptions) -> Result<Detector, ModelError> {
    Err(ModelError::NotBuilt {
        backend: "cpu",
        feature: "cpu",
    })
}

/// Verify the model's weights and build a CPU detector for it.
#[cfg(feature = "cpu")]
pub fn cpu_detector(
    manifest: &Manifest,
    models_dir: &Path,
    opts: &DetectorOptions,
) -> Result<Detector, ModelError> {
    let path = manifest.path_in(models_dir);
    manifest.verify_file(&path)?;
    let backend = RtenBackend::load(&path, opts.threads)?;
    let expected = manifest.input.shape().to_vec();
    if backend.input().shape != expected {
        return Err(ModelError::InputShape {
            path: path.display().to_string(),
            expected,
            actual: backend.input().shape.clone(),
        });
    }
    detector_with_backend(manifest, Box::new(backend), opts)
}

/// Build a detector for `manifest` around any backend that takes the
/// manifest's input.
pub fn detector_with_backend(
    manifest: &Manifest,
    backend: Box<dyn InferenceBackend>,
    opts: &DetectorOptions,
) -> Result<Detector, ModelError> {
    build_detector(manifest, manifest.input.clone(), backend, opts)
}

fn build_detector(
    manifest: &Manifest,
    input: InputSpec,
    backend: Box<dyn InferenceBackend>,
    opts: &DetectorOptions,
) -> Result<Detector, ModelError> {
    let mut classes = Vec::with_capacity(opts.classes.len());
    for label in &opts.classes {
        let id = manifest
            .class_id(label)
            .ok_or_else(|| ModelError::Manifest {
                path: manifest.name.clone(),
                reason: format!("model has no class {label:?}"),
            })?;
        classes.push(id);
    }
    let settings = DetectorSettings {
        score_threshold: opts
            .score_threshold
            .unwrap_or(manifest.decoder.score_threshold),
        nms_iou: opts.nms_iou.unwrap_or(manifest.decoder.nms_iou),
        classes,
    };
    let pre = Preprocessor::new(input, opts.colorimetry.unwrap_or(Colorimetry::Bt601Limited));
    Ok(Detector::new(
        pre,
        backend,
        manifest.decoder.kind.build(),
        settings,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_for(content: &[u8]) -> Manifest {
        let mut m = Manifest::builtin("fastestdet").expect("builtin");
        m.name = "toy".into();
        m.file = "toy.bin".into();
        m.size = content.len() as u64;
        m.sha256 = hex(&Sha256::digest(content));
        m
    }

    #[test]
    fn builtin_manifest_parses_with_coco_labels() {
        let m = Manifest::builtin("fastestdet").expect("builtin");
        assert_eq!(m.labels.len(), 80);
        assert_eq!(m.class_id("person"), Some(0));
        assert_eq!(m.label(15), "cat");
        assert_eq!(m.input.shape(), [1, 3, 352, 352]);
    }

    #[test]
    fn unknown_model_lists_known_ones() {
        let err = Manifest::builtin("yolo").expect_err("unknown");
        assert!(err.to_string().contains("fastestdet"), "{err}");
    }

    #[test]
    fn bad_manifest_reports_every_problem() {
        let text = include_str!("../../models/fastestdet/model.toml")
            .replace("31cb14c0", "zz")
            .replace("nms_iou = 0.45", "nms_iou = 1.5")
            .replace("file = \"FastestDet.onnx\"", "file = \"../x\"");
        let err = Manifest::parse(&text, "m.toml").expect_err("bad");
        let msg = err.to_string();
        for part in ["sha256", "nms_iou", "plain file name"] {
            assert!(msg.contains(part), "{part} missing in {msg}");
        }
    }

    #[test]
    fn unknown_manifest_field_is_refused() {
        let text = format!(
            "{}\nbogus = 1\n",
            include_str!("../../models/fastestdet/model.toml")
        );
        let text = text.replacen("name =", "bogus_top = 1\nname =", 1);
        let err = Manifest::parse(&text, "m.toml").expect_err("unknown field");
        assert!(err.to_string().contains("bogus"), "{err}");
    }

    #[test]
    fn fetch_from_mirror_copies_and_verifies() {
        let content = b"pretend weights";
        let m = manifest_for(content);
        let mirror = tempfile::tempdir().expect("tmp");
        let dest = tempfile::tempdir().expect("tmp");
        fs::write(mirror.path().join("toy.bin"), content).expect("write");
        let got = fetch(&m, dest.path(), Some(mirror.path()), None).expect("fetch");
        assert!(matches!(got, Fetched::Copied { .. }), "{got:?}");
        assert_eq!(
            fs::read(dest.path().join("toy/toy.bin")).expect("read"),
            content
        );
        // Second time: nothing to do.
        let got = fetch(&m, dest.path(), Some(mirror.path()), None).expect("fetch");
        assert!(matches!(got, Fetched::AlreadyPresent(_)), "{got:?}");
    }

    #[test]
    fn fetch_from_mirror_refuses_a_wrong_file_naming_both_hashes() {
        let m = manifest_for(b"the real weights");
        let mirror = tempfile::tempdir().expect("tmp");
        let dest = tempfile::tempdir().expect("tmp");
        fs::create_dir_all(mirror.path().join("toy")).expect("mkdir");
        fs::write(mirror.path().join("toy/toy.bin"), b"the fake weights").expect("write");
        let err = fetch(&m, dest.path(), Some(mirror.path()), None).expect_err("bad hash");
        let msg = err.to_string();
        assert!(msg.contains(&m.sha256), "{msg}");
        assert!(
            msg.contains(&hex(&Sha256::digest(b"the fake weights"))),
            "{msg}"
        );
        assert!(!dest.path().join("toy/toy.bin").exists());
    }

    /// Serve `body` once over HTTP on 127.0.0.1 and return the URL.
    #[cfg(feature = "fetch")]
    fn serve_once(body: Vec<u8>) -> String {
        use std::io::Write;
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut req = [0u8; 2048];
                let _ = s.read(&mut req);
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes());
                let _ = s.write_all(&body);
            }
        });
        format!("http://{addr}/toy.bin")
    }

    #[cfg(feature = "fetch")]
    #[test]
    fn download_checks_hash_and_lands_atomically() {
        let content = b"downloaded weights".to_vec();
        let m = manifest_for(&content);
        let dest = tempfile::tempdir().expect("tmp");
        let url = serve_once(content.clone());
        let got = fetch(&m, dest.path(), None, Some(&url)).expect("download");
        assert!(matches!(got, Fetched::Downloaded { .. }), "{got:?}");
        assert_eq!(
            fs::read(dest.path().join("toy/toy.bin")).expect("read"),
            content
        );
    }

    #[cfg(feature = "fetch")]
    #[test]
    fn download_of_wrong_bytes_leaves_nothing() {
        let m = manifest_for(b"expected bytes!!");
        let dest = tempfile::tempdir().expect("tmp");
        let url = serve_once(b"tampered bytes!!".to_vec());
        let err = fetch(&m, dest.path(), None, Some(&url)).expect_err("tampered");
        assert!(matches!(err, ModelError::Sha256 { .. }), "{err}");
        let left: Vec<_> = fs::read_dir(dest.path().join("toy"))
            .expect("dir")
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }

    #[test]
    fn models_dir_prefers_the_flag() {
        let p = models_dir(Some(Path::new("x/y"))).expect("dir");
        assert_eq!(p, PathBuf::from("x/y"));
    }
}
