//! Setup: the configuration becomes devices. The source (the board's
//! camera, files or the synthetic pattern), the detector on its backend,
//! the analytics configuration in force (the installer's, stored on the
//! data partition, unless the file is newer), the outbox and the stores
//! beside it, the link, the board's LED and IR-cut filter, and the camera
//! state machine with its numbering continued from the outbox.

use std::io::Write;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};

use camera_core::camera::{Camera, Sequences, Settings};
use camera_core::config::AnalyticsConfig;
use camera_core::config::remote;

use super::RunError;
use super::effects::{Effects, stored_sequences};
use crate::capture::files::FileSource;
use crate::capture::synthetic::SyntheticSource;
use crate::capture::v4l2::V4l2Source;
use crate::capture::{FrameSource, SourceError};
use crate::config::{Config, DetectorBackend, Provisioning, SourceConfig};
use crate::config_store::ConfigStore;
use crate::detect::Detector;
use crate::health::{Releases, Reporter, SharedMetrics, SystemProbe, metrics};
use crate::hw::BoardHw;
use crate::link::{CameraCommand, Link, LinkHandle};
use crate::model::{self, DetectorOptions, Manifest, ModelError};
use crate::outbox::{self, Outbox, OutboxError, OutboxLimits};
use crate::reference_store::ReferenceStore;
use crate::sequence_store::SequenceStore;

/// Commands from the link waiting for the frame loop, at most.
const COMMAND_QUEUE: usize = 32;
/// Answers of the frame loop waiting for the link, at most.
const EVENT_QUEUE: usize = 64;

/// Everything a run needs, ready.
pub struct Devices {
    pub source: Box<dyn FrameSource>,
    pub detector: Detector,
    pub manifest: Manifest,
    /// `None`: detection only (no analytics configuration).
    pub camera: Option<Camera>,
    pub effects: Effects,
    pub commands: Option<Receiver<CameraCommand>>,
    pub link: Option<LinkHandle>,
    pub outbox: Option<Arc<Mutex<Outbox>>>,
}

impl std::fmt::Debug for Devices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devices")
            .field("source", &self.source.describe())
            .field("model", &self.manifest.name)
            .field("counting", &self.camera.is_some())
            .field("link", &self.link.is_some())
            .finish_non_exhaustive()
    }
}

/// Open the configured source. Formats are checked here, not mid-stream.
pub fn open_source(cfg: &SourceConfig) -> Result<Box<dyn FrameSource>, SourceError> {
    Ok(match cfg {
        SourceConfig::V4l2(c) => Box::new(V4l2Source::open(c.clone())?),
        SourceConfig::Files(c) => Box::new(FileSource::open(c.clone())?),
        SourceConfig::Synthetic(c) => Box::new(SyntheticSource::open(c.clone())?),
    })
}

/// The backend the config asks for: the board's NPU when it has one and
/// `detector.backend` allows it, else the CPU.
pub fn choose_backend(cfg: &Config) -> Result<model::Backend, ModelError> {
    let d = &cfg.detector;
    let board = cfg.board_profile().map_err(|e| ModelError::Manifest {
        path: "camera.board".into(),
        reason: e.to_string(),
    })?;
    match (d.backend, board) {
        (DetectorBackend::Cpu, _) | (DetectorBackend::Auto, None) => Ok(model::Backend::Cpu),
        (DetectorBackend::Auto, Some(b))
            if b.npu.api == boards::NpuApi::None || !cfg!(feature = "rknn") =>
        {
            Ok(model::Backend::Cpu)
        }
        (DetectorBackend::Auto | DetectorBackend::Rknn, Some(b)) => {
            Ok(model::Backend::npu(b, d.npu_runtime.clone()))
        }
        (DetectorBackend::Rknn, None) => Err(ModelError::Manifest {
            path: "detector.backend".into(),
            reason: "rknn needs camera.board".into(),
        }),
    }
}

/// Build the detector the config names, on the backend it chooses.
pub fn build_detector(cfg: &Config) -> Result<(Manifest, Detector), ModelError> {
    let d = &cfg.detector;
    // Unpacked only while the detector loads: on a camera /tmp is RAM.
    let unpacked = match &d.package {
        Some(p) => {
            let u = crate::model_package::unpack(p, &d.model)?;
            let m = package_manifest(&u.manifest, p, &d.model)?;
            Some((u, m))
        }
        None => None,
    };
    let (manifest, dir) = match &unpacked {
        Some((u, m)) => (m.clone(), u.models_dir().to_path_buf()),
        None => (
            Manifest::builtin(&d.model)?,
            model::models_dir(d.models_dir.as_deref())?,
        ),
    };
    let opts = DetectorOptions {
        score_threshold: d.score_threshold,
        nms_iou: d.nms_iou,
        classes: d.classes.clone(),
        threads: d.threads,
        colorimetry: Some(d.colorimetry),
    };
    let detector = model::detector(&manifest, &dir, &choose_backend(cfg)?, &opts)?;
    Ok((manifest, detector))
}

/// An analytics configuration file: the validated configuration and the
/// document as the link publishes it (JSON). Read once.
pub fn load_analytics(path: &Path) -> Result<(AnalyticsConfig, String), RunError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RunError::AnalyticsRead {
        path: name.clone(),
        source,
    })?;
    let config = AnalyticsConfig::parse(&text).map_err(|rejected| RunError::Analytics {
        path: name.clone(),
        problems: rejected.problems,
    })?;
    let body = remote::toml_to_json(&text).map_err(|reason| RunError::Analytics {
        path: name,
        problems: vec![reason],
    })?;
    Ok((config, body))
}

/// The outbox, its file checked first; a damaged one is set aside. Where
/// a panic aborts the process (the camera's release build), a file that
/// makes the store engine panic must not take the camera down with it:
/// the check runs in a child process (`camera-app outbox-check FILE`).
fn open_outbox(path: &Path, limits: OutboxLimits) -> Result<Outbox, OutboxError> {
    if cfg!(panic = "abort") {
        Outbox::open_checked_by(path, limits, check_in_child)
    } else {
        Outbox::open(path, limits)
    }
}

fn check_in_child(path: &Path) -> Result<(), String> {
    let child = std::env::current_exe().and_then(|exe| {
        std::process::Command::new(exe)
            .arg("outbox-check")
            .arg(path)
            .stdin(std::process::Stdio::null())
            .output()
    });
    match child {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        // No child (no memory, no executable): check here.
        Err(e) => {
            tracing::warn!(error = %e, "cannot check the outbox in a child process; checking here");
            outbox::verify(path)
        }
    }
}

/// The health metrics, starting with the camera's configuration.
fn metrics_of(camera: &Camera) -> SharedMetrics {
    let metrics = SharedMetrics::default();
    {
        let mut m = metrics.lock();
        m.config_version = Some(camera.config().version);
        m.shelves_without_reference = camera.shelves_without_reference();
    }
    metrics
}

/// The directory of the outbox file: `outbox.redb` alone has an empty
/// parent, which is the working directory.
fn data_dir(outbox: &Path) -> &Path {
    outbox
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A configuration an installer sent earlier wins over the file unless the
/// file is newer (a new image, a local edit).
fn stored_or(store: &ConfigStore, file: (AnalyticsConfig, String)) -> (AnalyticsConfig, String) {
    match store.load() {
        Ok(Some(stored)) if stored.version > file.0.version => {
            match remote::decide(0, stored.body.as_bytes(), usize::MAX) {
                Ok(d) => {
                    tracing::info!(
                        version = d.version,
                        "using the configuration installed over MQTT"
                    );
                    (d.config, d.body)
                }
                Err(r) => {
                    tracing::error!(problems = ?r.problems, path = %store.path().display(), "ignoring a stored configuration");
                    file
                }
            }
        }
        Ok(_) => file,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the stored configuration");
            file
        }
    }
}

/// Where the JSON lines go.
fn open_lines(cfg: &Config) -> Result<(Box<dyn Write + Send>, String), RunError> {
    match cfg.output.path.as_deref().filter(|p| *p != Path::new("-")) {
        Some(p) => {
            let name = p.display().to_string();
            let file = std::fs::File::create(p).map_err(|source| RunError::Output {
                path: name.clone(),
                source,
            })?;
            Ok((Box::new(std::io::BufWriter::new(file)), name))
        }
        None => Ok((Box::new(std::io::stdout()), "stdout".into())),
    }
}

/// The configuration's devices, ready to run.
pub fn devices(cfg: &Config, provisioning: &Provisioning) -> Result<Devices, RunError> {
    let analytics = cfg.analytics.as_deref().map(load_analytics).transpose()?;
    let (manifest, detector) = build_detector(cfg)?;
    let board = cfg
        .board_profile()
        .map_err(|e| RunError::Board(e.to_string()))?;
    // On a board, the built-in synthetic placeholder gives way to its camera.
    let source_cfg = match &board {
        Some(p) => crate::hw::board::source_with_board(&cfg.source, p)
            .map_err(|e| RunError::Board(e.to_string()))?,
        None => cfg.source.clone(),
    };
    let source = open_source(&source_cfg).map_err(RunError::Source)?;
    let (lines, lines_name) = open_lines(cfg)?;
    let unprovisioned = match provisioning {
        Provisioning::Missing(dir) => {
            tracing::error!(
                dir = %dir.display(),
                "camera not provisioned: counting into the outbox, publishing nothing until \
                 `ota provision` installs its factory bundle"
            );
            true
        }
        Provisioning::Provisioned(id) => {
            tracing::info!(camera = id.camera_id, store = id.store_id, "provisioned");
            false
        }
        Provisioning::NotUsed => false,
    };
    let effects = Effects::new(lines, &lines_name, manifest.clone())
        .with_board(board.as_ref().and_then(BoardHw::start))
        .unprovisioned(unprovisioned);
    tracing::info!(
        source = %source.describe(),
        model = %manifest.name,
        backend = detector.backend_name(),
        analytics = analytics.is_some(),
        "camera starting"
    );
    let mut devices = Devices {
        source,
        detector,
        manifest,
        camera: None,
        effects,
        commands: None,
        link: None,
        outbox: None,
    };
    if let Some(analytics) = analytics {
        counting(cfg, analytics, &mut devices)?;
    }
    Ok(devices)
}

/// With an analytics configuration: the outbox, the stores beside it, the
/// link, and the camera state machine.
fn counting(
    cfg: &Config,
    file: (AnalyticsConfig, String),
    d: &mut Devices,
) -> Result<(), RunError> {
    let outbox = cfg
        .output
        .outbox
        .as_deref()
        .map(|p| open_outbox(p, cfg.output.outbox_limits()))
        .transpose()?;
    // The remote configuration, the shelf references and the sequence
    // reservations live beside the outbox, on the data partition; without
    // an outbox, in memory only.
    let dir = cfg.output.outbox.as_deref().map(data_dir);
    let reservations = dir.map(SequenceStore::open);
    let sequences = match (&outbox, &reservations) {
        (Some(o), Some(r)) => r.start(stored_sequences(o)?, o.is_new()),
        (Some(o), None) => stored_sequences(o)?,
        _ => Sequences::default(),
    };
    let outbox = outbox.map(|o| Arc::new(Mutex::new(o)));
    let configs = match (&cfg.link, dir) {
        (Some(_), Some(dir)) => Some(ConfigStore::open(dir)?),
        _ => None,
    };
    let (analytics, body) = match &configs {
        Some(store) => stored_or(store, file),
        None => file,
    };
    let settings = Settings {
        camera_id: cfg.camera.id.clone(),
        labels: d.manifest.labels.clone(),
        tracker: cfg.tracker.clone(),
        tamper: cfg.tamper.clone(),
        sequences,
    };
    let mut camera = Camera::new(analytics, settings)?;
    let references = dir.map(ReferenceStore::new);
    if let Some(store) = &references {
        restore_references(store, &mut camera);
    }
    let metrics = metrics_of(&camera);
    let mut effects = std::mem::replace(
        &mut d.effects,
        Effects::new(Box::new(std::io::sink()), "", d.manifest.clone()),
    )
    .with_stores(references, configs)
    .with_metrics(metrics.clone());
    if let (Some(link_cfg), Some(o)) = (&cfg.link, &outbox) {
        let (commands_tx, commands) = std::sync::mpsc::sync_channel(COMMAND_QUEUE);
        let (events, events_rx) = tokio::sync::mpsc::channel(EVENT_QUEUE);
        let started_us = metrics::now_us();
        let releases = releases(cfg);
        let birth = metrics::birth(&d.manifest.name, &d.manifest.sha256, started_us, &releases);
        let mut reporter = Reporter {
            metrics,
            probe: SystemProbe::new("/"),
            started_us,
            releases,
            data_dir: cfg
                .output
                .outbox
                .as_deref()
                .map(|p| data_dir(p).to_path_buf()),
        };
        let link = Link {
            config: link_cfg.clone(),
            camera_id: cfg.camera.id.clone(),
            outbox: o.clone(),
            running: (camera.config().version, body),
            birth,
            health: Box::new(move |stats| reporter.report(stats)),
        }
        .spawn(commands_tx, events_rx)?;
        effects = effects.with_link(events, link.stats().clone());
        d.commands = Some(commands);
        d.link = Some(link);
    }
    if let Some(o) = &outbox {
        effects = effects.with_outbox(o.clone(), reservations);
    }
    d.effects = effects;
    d.outbox = outbox;
    d.camera = Some(camera);
    Ok(())
}

/// The manifest a model package carries, for model `name`.
fn package_manifest(text: &str, path: &Path, name: &str) -> Result<Manifest, ModelError> {
    let origin = format!("{} ({name}/model.toml)", path.display());
    let m = Manifest::parse(text, &origin)?;
    if m.name != name {
        return Err(ModelError::PackageName {
            path: path.display().to_string(),
            name: name.to_string(),
            found: m.name,
        });
    }
    Ok(m)
}

/// The release versions of the slots in use, as `ota select` recorded
/// them; none without `camera.releases`.
fn releases(cfg: &Config) -> Releases {
    let releases = cfg
        .camera
        .releases
        .as_deref()
        .map(Releases::read)
        .unwrap_or_default();
    tracing::info!(
        firmware = releases.firmware_version(),
        ?releases,
        "releases"
    );
    releases
}

/// At start: the stored references of the shelves as configured. A
/// reference or a file that cannot be used is logged, never fatal.
fn restore_references(store: &ReferenceStore, camera: &mut Camera) {
    let refs = match store.load() {
        Ok(refs) => refs,
        Err(e) => {
            tracing::error!(error = %e, "ignoring the stored shelf references");
            return;
        }
    };
    if refs.is_empty() {
        return;
    }
    let stored = refs.len();
    let refused = camera.restore_shelf_references(refs);
    for e in &refused {
        tracing::warn!(error = %e, path = %store.path().display(), "stored shelf reference not used");
    }
    tracing::info!(
        restored = stored - refused.len(),
        refused = refused.len(),
        "shelf references restored"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A package's manifest must parse and name the configured model; the
    /// error names the package.
    #[test]
    fn a_package_manifest_is_checked_and_must_be_the_configured_model() {
        let text = include_str!("../../../models/fastestdet/model.toml");
        let slot = Path::new("/data/models/b.pkg");
        let m = package_manifest(text, slot, "fastestdet").expect("manifest");
        assert_eq!(m.name, "fastestdet");
        let e = package_manifest(text, slot, "yolo").expect_err("another model");
        assert!(
            e.to_string()
                .contains("/data/models/b.pkg: yolo/model.toml names model \"fastestdet\""),
            "{e}"
        );
        let e = package_manifest("name = 1", slot, "fastestdet").expect_err("bad");
        assert!(
            e.to_string()
                .contains("/data/models/b.pkg (fastestdet/model.toml)"),
            "{e}"
        );
    }
}
