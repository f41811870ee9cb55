//! The application's configuration: a TOML file, parsed with unknown
//! fields refused, then validated once into the settings the pipeline uses.
//! Every problem is reported at once, with its path.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::capture::files::FilesConfig;
use crate::capture::synthetic::SyntheticConfig;
use crate::capture::v4l2::V4l2Config;
use crate::preprocess::Colorimetry;

/// The default configuration, built in: the synthetic source and the
/// default model. `camera-app default-config` prints it.
pub const DEFAULT_CONFIG: &str = include_str!("default-config.toml");

/// What [`Config::apply_provisioning`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioning {
    /// The configuration names no provisioning directory.
    NotUsed,
    Provisioned(provisioning::Identity),
    /// The directory is not there: the camera was never provisioned.
    Missing(PathBuf),
}

/// Top-level configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Analytics configuration (lines, zones, bins): a TOML file. Without
    /// it the pipeline writes detections; with it, bins and events.
    #[serde(default)]
    pub analytics: Option<PathBuf>,
    #[serde(default)]
    pub camera: CameraConfig,
    pub source: SourceConfig,
    /// Tracker tuning; the defaults suit a door camera at 5–25 fps.
    #[serde(default)]
    pub tracker: camera_core::track::TrackerConfig,
    #[serde(default)]
    pub detector: DetectorConfig,
    #[serde(default)]
    pub output: OutputConfig,
    /// MQTT link (`docs/mqtt-api.md`): bins and events leave the outbox
    /// for the broker; installers configure the camera remotely.
    #[serde(default)]
    pub link: Option<crate::link::LinkConfig>,
    /// Installer snapshots over MQTT: off unless enabled.
    #[serde(default)]
    pub snapshot: crate::snapshot::SnapshotOptions,
    /// Lens covered, defocused or view moved, from image statistics.
    #[serde(default)]
    pub tamper: crate::health::TamperConfig,
}

/// Who this camera is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Carried by every bin and event.
    #[serde(default = "default_camera_id")]
    pub id: String,
    /// The board's profile (a built-in name: rk3588, rk3568, rv1106,
    /// rv1126, qemu-arm64): it decides the NPU runtime, I/O style and cores
    /// (`boards/*.toml`). Without it the CPU runs the model.
    #[serde(default)]
    pub board: Option<String>,
    /// Where `ota provision` installed the factory bundle (`/data/factory`
    /// on a camera). When set, the camera id and the link's broker, store
    /// and TLS come from there ([`Config::apply_provisioning`]); `[link]`
    /// keeps only its tuning. Until the camera is provisioned it counts
    /// into its outbox and publishes nothing.
    #[serde(default)]
    pub provisioning: Option<PathBuf>,
    /// Where `ota select` records the release versions of the slots in use
    /// (`/run/ota` on a camera): health and the birth message report
    /// them, and the firmware version is the rootfs's release.
    #[serde(default)]
    pub releases: Option<PathBuf>,
    /// `"synced"`: count only once the kernel reports the clock
    /// synchronised (a camera without a battery-backed clock; the image's
    /// setting). `"any"` (default): trust the clock as it is.
    #[serde(default)]
    pub clock: crate::clock_gate::ClockPolicy,
}

fn default_camera_id() -> String {
    "camera".to_string()
}

impl Default for CameraConfig {
    fn default() -> Self {
        Self {
            id: default_camera_id(),
            board: None,
            provisioning: None,
            releases: None,
            clock: crate::clock_gate::ClockPolicy::Any,
        }
    }
}

/// Where frames come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SourceConfig {
    V4l2(V4l2Config),
    Files(FilesConfig),
    Synthetic(SyntheticConfig),
}

/// Which model and how to post-process.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    #[serde(default = "default_model")]
    pub model: String,
    /// Overrides `$CAMERA_MODELS_DIR` and the user cache.
    #[serde(default)]
    pub models_dir: Option<PathBuf>,
    /// A model package (the OTA model slot in use, `/run/ota/model.pkg` on
    /// a camera): the model's manifest and weights come from there, not
    /// from the models directory and the built-in manifest
    /// (`model_package.rs`).
    #[serde(default)]
    pub package: Option<PathBuf>,
    /// CPU inference threads; 0 = one per physical core.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Overrides the model's default.
    #[serde(default)]
    pub score_threshold: Option<f32>,
    /// Overrides the model's default.
    #[serde(default)]
    pub nms_iou: Option<f32>,
    /// Labels to report; empty reports every class.
    #[serde(default = "default_classes")]
    pub classes: Vec<String>,
    #[serde(default = "default_colorimetry")]
    pub colorimetry: Colorimetry,
    #[serde(default)]
    pub backend: DetectorBackend,
    /// NPU runtime library instead of the board profile's (development,
    /// or a runtime installed outside the library path).
    #[serde(default)]
    pub npu_runtime: Option<PathBuf>,
}

fn default_model() -> String {
    crate::model::DEFAULT_MODEL.to_string()
}
fn default_threads() -> usize {
    1
}
fn default_classes() -> Vec<String> {
    vec!["person".to_string()]
}
fn default_colorimetry() -> Colorimetry {
    Colorimetry::Bt601Limited
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            model: default_model(),
            models_dir: None,
            package: None,
            threads: default_threads(),
            score_threshold: None,
            nms_iou: None,
            classes: default_classes(),
            colorimetry: default_colorimetry(),
            backend: DetectorBackend::Auto,
            npu_runtime: None,
        }
    }
}

/// Which backend runs the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorBackend {
    /// The NPU when the board has one (and this build binds it), else the
    /// CPU.
    #[default]
    Auto,
    Cpu,
    Rknn,
}

/// Where results go.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// JSON-lines file; absent or "-" writes to standard output.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Stop after this many frames (for tests and measurements).
    #[serde(default)]
    pub max_frames: Option<u64>,
    /// Outbox file: bins and events are also stored there durably (for the
    /// link to publish), and their sequence numbers continue across runs.
    #[serde(default)]
    pub outbox: Option<PathBuf>,
    /// Flash the outbox may use (topics and payloads); the oldest records
    /// are evicted, and counted, beyond it.
    #[serde(default = "default_outbox_max_bytes")]
    pub outbox_max_bytes: u64,
    /// Records older than this are evicted, and counted.
    #[serde(default = "default_outbox_max_age_h")]
    pub outbox_max_age_h: u64,
}

fn default_outbox_max_bytes() -> u64 {
    crate::outbox::OutboxLimits::default().max_bytes
}
fn default_outbox_max_age_h() -> u64 {
    crate::outbox::OutboxLimits::default().max_age_us / 3_600_000_000
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            path: None,
            max_frames: None,
            outbox: None,
            outbox_max_bytes: default_outbox_max_bytes(),
            outbox_max_age_h: default_outbox_max_age_h(),
        }
    }
}

impl OutputConfig {
    /// The outbox bounds these settings give.
    pub fn outbox_limits(&self) -> crate::outbox::OutboxLimits {
        crate::outbox::OutboxLimits {
            max_bytes: self.outbox_max_bytes,
            max_age_us: self.outbox_max_age_h.saturating_mul(3_600_000_000),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("config {origin} is invalid:\n  {}", problems.join("\n  "))]
    Invalid {
        origin: String,
        problems: Vec<String>,
    },
}

impl Config {
    /// Parse and validate TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        let problems = cfg.problems();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid {
                origin: origin.to_string(),
                problems,
            })
        }
    }

    /// Read, parse and validate a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Take frames from `path` instead: a V4L2 device (`/dev/…`; the
    /// configured format and size are kept when the config already names
    /// a camera), or a directory or MJPEG file played at `fps`.
    pub fn override_source(&mut self, path: PathBuf, fps: f64) -> Result<(), ConfigError> {
        self.source = if path.starts_with("/dev") {
            match &self.source {
                SourceConfig::V4l2(v) => SourceConfig::V4l2(V4l2Config {
                    device: path,
                    ..v.clone()
                }),
                _ => SourceConfig::V4l2(V4l2Config {
                    device: path,
                    format: crate::capture::PixelFormat::Yuyv,
                    width: 640,
                    height: 480,
                    fps: 10,
                    buffers: 4,
                    timeout_ms: 2000,
                }),
            }
        } else {
            SourceConfig::Files(FilesConfig {
                fps,
                ..FilesConfig::new(path)
            })
        };
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                origin: "--source".to_string(),
                problems,
            })
        }
    }

    /// The board profile `camera.board` names.
    pub fn board_profile(&self) -> Result<Option<boards::Profile>, boards::ProfileError> {
        self.camera
            .board
            .as_deref()
            .map(boards::builtin)
            .transpose()
    }

    /// Takes the camera id and the link's broker, store and TLS from the
    /// provisioned directory `camera.provisioning` names, if any.
    pub fn apply_provisioning(&mut self) -> Result<Provisioning, ConfigError> {
        let Some(dir) = self.camera.provisioning.clone() else {
            return Ok(Provisioning::NotUsed);
        };
        let loaded = provisioning::Provisioned::load(&dir).map_err(|e| ConfigError::Invalid {
            origin: dir.display().to_string(),
            problems: vec![format!("camera.provisioning: {e}")],
        })?;
        let Some(p) = loaded else {
            // Nothing to trust and nowhere to publish: count locally.
            self.link = None;
            return Ok(Provisioning::Missing(dir));
        };
        let id = &p.identity;
        self.camera.id.clone_from(&id.camera_id);
        let mut link = self
            .link
            .take()
            .unwrap_or_else(|| crate::link::LinkConfig::new(&id.broker.host, id.broker.port));
        link.broker.clone_from(&id.broker.host);
        link.port = id.broker.port;
        link.store.clone_from(&id.store_id);
        link.tls = Some(p.tls());
        self.link = Some(link);
        Ok(Provisioning::Provisioned(p.identity))
    }

    /// The built-in default.
    pub fn default_config() -> Result<Self, ConfigError> {
        Self::parse(DEFAULT_CONFIG, "built-in default")
    }

    /// Every problem serde cannot see, with its path.
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.camera.id.trim().is_empty() || self.camera.id.len() > 64 {
            p.push("camera.id: must be 1 to 64 bytes".to_string());
        }
        if self.detector.package.is_some() && self.detector.models_dir.is_some() {
            p.push(
                "detector.package: the model comes from the package; remove detector.models_dir"
                    .into(),
            );
        }
        match self.board_profile() {
            Ok(Some(b)) => {
                if self.detector.backend == DetectorBackend::Rknn
                    && b.npu.api == boards::NpuApi::None
                {
                    p.push(format!(
                        "detector.backend: rknn, but board {} has no NPU (npu.api = \"none\")",
                        b.name
                    ));
                }
            }
            Ok(None) if self.detector.backend == DetectorBackend::Rknn => {
                p.push("detector.backend: rknn needs camera.board for the NPU settings".into());
            }
            Ok(None) => {}
            Err(e) => p.push(format!("camera.board: {e}")),
        }
        p.extend(self.tracker.problems());
        if self.output.outbox_max_bytes < 64 * 1024 {
            p.push(format!(
                "output.outbox_max_bytes: {} is below 65536",
                self.output.outbox_max_bytes
            ));
        }
        if self.output.outbox_max_age_h == 0 {
            p.push("output.outbox_max_age_h: must be at least 1".into());
        }
        if let Err(e) = self.snapshot.validate() {
            p.push(format!("snapshot: {e}"));
        }
        if let Err(e) = self.tamper.validate() {
            p.extend(e.problems.iter().map(|x| format!("tamper.{x}")));
        }
        if let Some(link) = &self.link {
            // With provisioning, the broker comes from there.
            let provisioned = self.camera.provisioning.is_some();
            p.extend(
                link.problems(&self.camera.id)
                    .into_iter()
                    .filter(|x| !(provisioned && x.starts_with("link.broker:"))),
            );
            if self.output.outbox.is_none() {
                p.push("link: needs output.outbox (records wait there for the broker)".into());
            }
            if self.analytics.is_none() {
                p.push("link: needs analytics (the link publishes bins and events)".into());
            }
        }
        let fps_ok = |fps: f64| fps.is_finite() && fps > 0.0;
        match &self.source {
            SourceConfig::V4l2(v) => {
                if v.width == 0 || v.height == 0 {
                    p.push(format!(
                        "source: size {}x{} must be positive",
                        v.width, v.height
                    ));
                }
                if v.fps == 0 {
                    p.push("source.fps: must be positive".into());
                }
            }
            SourceConfig::Files(f) => {
                if !fps_ok(f.fps) {
                    p.push(format!("source.fps: {} must be positive", f.fps));
                }
            }
            SourceConfig::Synthetic(s) => {
                if !fps_ok(s.fps) {
                    p.push(format!("source.fps: {} must be positive", s.fps));
                }
                if s.width % 2 == 1 || s.height % 2 == 1 || s.width < 2 || s.height < 2 {
                    p.push(format!(
                        "source: size {}x{} must be even and at least 2x2",
                        s.width, s.height
                    ));
                }
            }
        }
        let d = &self.detector;
        if let Some(t) = d.score_threshold
            && !(t.is_finite() && (0.0..=1.0).contains(&t))
        {
            p.push(format!("detector.score_threshold: {t} is not within 0..1"));
        }
        if let Some(t) = d.nms_iou
            && !(t.is_finite() && (0.0..=1.0).contains(&t))
        {
            p.push(format!("detector.nms_iou: {t} is not within 0..1"));
        }
        if d.threads > 64 {
            p.push(format!("detector.threads: {} is more than 64", d.threads));
        }
        match crate::model::Manifest::builtin(&d.model) {
            Ok(m) => {
                for (i, c) in d.classes.iter().enumerate() {
                    if m.class_id(c).is_none() {
                        p.push(format!(
                            "detector.classes[{i}]: {c:?} is not a class of model {}",
                            d.model
                        ));
                    }
                }
            }
            Err(e) => p.push(format!("detector.model: {e}")),
        }
        if self.output.max_frames == Some(0) {
            p.push("output.max_frames: must be at least 1".into());
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration the camera image ships, with the board the
    /// recipe sets, takes identity and broker from provisioning; an
    /// unprovisioned camera counts but links to nothing.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn the_images_configuration_takes_the_camera_from_provisioning() {
        let text = include_str!("../../yocto/recipes-camera/camera-app/files/camera.toml")
            .replace("# board = \"none\"", "board = \"qemu-arm64\"");
        let image = Config::parse(&text, "camera.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(image.camera.board.as_deref(), Some("qemu-arm64"));
        let analytics = include_str!("../../yocto/recipes-camera/camera-app/files/analytics.toml");
        camera_core::config::AnalyticsConfig::parse(analytics)
            .unwrap_or_else(|e| panic!("analytics.toml: {e}"));

        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("factory");
        let mut cfg = image.clone();
        cfg.camera.provisioning = Some(dir.clone());
        assert_eq!(
            cfg.apply_provisioning().unwrap(),
            Provisioning::Missing(dir.clone())
        );
        assert!(cfg.link.is_none(), "nowhere to publish before provisioning");

        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join(provisioning::IDENTITY_FILE),
            "camera_id = \"cam-42\"\nstore_id = \"s-7\"\nserial = \"f-1\"\n\
             [broker]\nhost = \"broker.s-7.example\"\nport = 8884\n",
        )
        .unwrap();
        for f in [
            provisioning::CA_FILE,
            provisioning::CERT_FILE,
            provisioning::KEY_FILE,
            provisioning::ROOT_FILE,
        ] {
            std::fs::write(dir.join(f), "x").unwrap();
        }
        let mut cfg = image.clone();
        cfg.camera.provisioning = Some(dir.clone());
        assert!(matches!(
            cfg.apply_provisioning().unwrap(),
            Provisioning::Provisioned(id) if id.camera_id == "cam-42"
        ));
        assert_eq!(cfg.camera.id, "cam-42");
        let link = cfg.link.unwrap();
        assert_eq!(
            (link.broker.as_str(), link.port, link.store.as_str()),
            ("broker.s-7.example", 8884, "s-7")
        );
        assert_eq!(link.tls.unwrap().ca_file, dir.join(provisioning::CA_FILE));
        // Without provisioning the link needs its broker.
        let err = Config::parse(&text.replace("provisioning = ", "# "), "x").unwrap_err();
        assert!(err.to_string().contains("link.broker"), "{err}");
    }

    #[test]
    fn default_config_is_valid() {
        let c = Config::default_config().expect("default");
        assert!(matches!(c.source, SourceConfig::Synthetic(_)));
        assert_eq!(c.detector.classes, vec!["person"]);
    }

    #[test]
    fn files_source_parses() {
        let c = Config::parse(
            "[source]\nkind = \"files\"\npath = \"frames\"\nfps = 5\n",
            "t",
        )
        .expect("parse");
        let SourceConfig::Files(f) = c.source else {
            panic!("files expected")
        };
        assert_eq!(f.path, PathBuf::from("frames"));
        assert_eq!(f.fps, 5.0);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let text = r#"
[source]
kind = "files"
path = "x"
fps = -1

[detector]
score_threshold = 1.5
classes = ["person", "unicorn"]
"#;
        let err = Config::parse(text, "bad.toml").expect_err("invalid");
        let msg = err.to_string();
        for part in [
            "source.fps",
            "detector.score_threshold",
            "detector.classes[1]: \"unicorn\"",
        ] {
            assert!(msg.contains(part), "{part:?} missing from:\n{msg}");
        }
    }

    #[test]
    fn tracker_settings_are_read_and_checked() {
        let c = Config::parse(
            "[source]\nkind = \"synthetic\"\n[tracker]\nlost_timeout_s = 3.0\n",
            "t.toml",
        )
        .expect("valid");
        assert_eq!(c.tracker.lost_timeout_s, 3.0);
        assert_eq!(
            c.tracker.high_score,
            camera_core::track::TrackerConfig::default().high_score
        );
        let err = Config::parse(
            "[source]\nkind = \"synthetic\"\n[tracker]\nlow_score = 0.8\nhigh_score = 0.5\nappearance_full = 0.4\nmax_height_ratio = 0.5\n",
            "t.toml",
        )
        .expect_err("invalid");
        let msg = err.to_string();
        for part in [
            "tracker.low_score",
            "tracker.appearance_floor",
            "tracker.max_height_ratio",
        ] {
            assert!(msg.contains(part), "{part} missing in {msg}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = Config::parse("[source]\nkind = \"synthetic\"\nwidht = 640\n", "typo.toml")
            .expect_err("unknown field");
        assert!(err.to_string().contains("widht"), "{err}");
        let err = Config::parse(
            "[source]\nkind = \"synthetic\"\n[detector]\nthreshold = 0.3\n",
            "typo.toml",
        )
        .expect_err("unknown field");
        assert!(err.to_string().contains("threshold"), "{err}");
    }

    #[test]
    fn unknown_pixel_format_is_refused_at_load() {
        let err = Config::parse(
            "[source]\nkind = \"synthetic\"\nformat = \"rgb565\"\n",
            "fmt.toml",
        )
        .expect_err("format");
        assert!(err.to_string().contains("rgb565"), "{err}");
    }
}
