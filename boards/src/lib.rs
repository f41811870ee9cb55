//! Board profiles: what the firmware needs to know about each board it
//! ships on, one TOML file per board beside this crate (`boards/*.toml`).
//!
//! camera-app and ota read behaviour from a profile (NPU runtime and
//! cores, capture device and formats, GPIOs, partitions, where the U-Boot
//! environment lives), never from `#[cfg]` on board names, so a new board
//! is a new file. A profile is parsed with unknown fields refused and
//! then checked as a whole: every problem is reported at once, each with
//! the field it is about.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The SoCs we ship on, plus a virtual board for QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Soc {
    Rv1106,
    Rv1126,
    Rk3568,
    Rk3588,
    /// QEMU's `virt` machine: no NPU; the kernel's vivid test driver as its camera.
    Virt,
}

impl Soc {
    /// The name profiles and model manifests use ("rk3588").
    pub fn name(self) -> &'static str {
        match self {
            Soc::Rv1106 => "rv1106",
            Soc::Rv1126 => "rv1126",
            Soc::Rk3568 => "rk3568",
            Soc::Rk3588 => "rk3588",
            Soc::Virt => "virt",
        }
    }

    /// NPU cores the SoC has (0 for none).
    pub fn npu_cores(self) -> u8 {
        match self {
            Soc::Rk3588 => 3,
            Soc::Rv1106 | Soc::Rv1126 | Soc::Rk3568 => 1,
            Soc::Virt => 0,
        }
    }

    /// Rust targets the SoC's CPU and C library can run.
    pub fn targets(self) -> &'static [&'static str] {
        match self {
            Soc::Rk3568 | Soc::Rk3588 | Soc::Virt => &["aarch64-unknown-linux-gnu"],
            Soc::Rv1126 => &["armv7-unknown-linux-gnueabihf"],
            // Its NPU runtime exists only for uClibc; glibc armhf is the
            // nearest build CI checks.
            Soc::Rv1106 => &[
                "armv7-unknown-linux-uclibceabihf",
                "armv7-unknown-linux-gnueabihf",
            ],
        }
    }
}

/// How the NPU runtime is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NpuApi {
    /// `rknn_inputs_set` / `rknn_outputs_get` (and zero-copy too).
    InputsSet,
    /// Only `rknn_create_mem` / `rknn_set_io_mem` (RV1106).
    ZeroCopy,
    /// No NPU: CPU inference.
    None,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Npu {
    pub api: NpuApi,
    /// The runtime library loaded at run time (`librknnrt.so`,
    /// `librknnmrt.so`); absent without an NPU.
    #[serde(default)]
    pub runtime: Option<String>,
    /// Cores to run on (the core mask), e.g. `[0, 1, 2]`.
    #[serde(default)]
    pub cores: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    Nv12,
    Yuyv,
    Mjpeg,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    /// `/dev/videoN`; absent on a board without a camera.
    #[serde(default)]
    pub device: Option<PathBuf>,
    /// Formats in order of preference.
    pub formats: Vec<PixelFormat>,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Rockchip ISP/CIF nodes are multi-planar.
    #[serde(default)]
    pub multiplanar: bool,
}

/// One GPIO line on a character device.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub chip: PathBuf,
    pub line: u32,
    #[serde(default)]
    pub active_low: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LightSensor {
    /// An IIO illuminance or voltage channel, e.g.
    /// `/sys/bus/iio/devices/iio:device0/in_voltage1_raw`.
    pub path: PathBuf,
    /// Raw readings at or below this are night.
    pub night_below: u32,
    /// Raw readings at or above this are day (hysteresis between).
    pub day_above: u32,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gpio {
    #[serde(default)]
    pub ir_cut: Option<Line>,
    #[serde(default)]
    pub status_led: Option<Line>,
    #[serde(default)]
    pub light_sensor: Option<LightSensor>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partitions {
    pub boot: PathBuf,
    pub rootfs: [PathBuf; 2],
    /// Outbox, config, OTA journal and download area.
    pub data: PathBuf,
}

/// Where the redundant U-Boot environment lives (`fw_env.config`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UbootEnv {
    pub device: PathBuf,
    pub offsets: [u64; 2],
    pub size: u64,
}

/// A board profile (`boards/<name>.toml`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Must equal the file name: bundles name boards by it.
    pub name: String,
    pub description: String,
    pub soc: Soc,
    /// The Rust target the firmware is built for.
    pub target: String,
    /// Memory the camera application may use.
    pub memory_budget_mib: u32,
    pub npu: Npu,
    pub capture: Capture,
    #[serde(default)]
    pub gpio: Gpio,
    pub partitions: Partitions,
    pub uboot_env: UbootEnv,
}

/// A profile that could not be used; every problem with its field.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("board profile {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("board profile {path}: {}", problems.join("; "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error("no board profile {name:?}; this build knows: {known}")]
    Unknown { name: String, known: String },
}

impl Profile {
    /// Parse and check a profile's text; `name` is its file stem.
    pub fn parse(name: &str, text: &str) -> Result<Profile, Vec<String>> {
        let de = toml::Deserializer::parse(text).map_err(|e| vec![e.to_string()])?;
        let p: Profile = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            vec![format!("{path}: {}", e.into_inner().message())]
        })?;
        let problems = p.problems(name);
        if problems.is_empty() {
            Ok(p)
        } else {
            Err(problems)
        }
    }

    /// Load `path` (`boards/<name>.toml`).
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Profile::parse(&name, &text).map_err(|problems| ProfileError::Invalid {
            path: path.to_path_buf(),
            problems,
        })
    }

    /// The profile of board `name` in `dir`.
    pub fn find(dir: &Path, name: &str) -> Result<Profile, ProfileError> {
        Profile::load(&dir.join(format!("{name}.toml")))
    }

    /// Every problem, each naming its field.
    pub fn problems(&self, file_stem: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.name != file_stem {
            p.push(format!(
                "name: {:?} differs from the file name {file_stem:?}",
                self.name
            ));
        }
        if !self.soc.targets().contains(&self.target.as_str()) {
            p.push(format!(
                "target: {} cannot run on a {:?} (expected one of {:?})",
                self.target,
                self.soc,
                self.soc.targets()
            ));
        }
        if self.memory_budget_mib == 0 {
            p.push("memory_budget_mib: must be above 0".into());
        }
        let cores = self.soc.npu_cores();
        match (self.npu.api, cores) {
            (NpuApi::None, _) => {
                if self.npu.runtime.is_some() || !self.npu.cores.is_empty() {
                    p.push("npu: api = \"none\" takes no runtime and no cores".into());
                }
            }
            (_, 0) => p.push(format!("npu.api: a {:?} has no NPU", self.soc)),
            (api, _) => {
                if self.soc == Soc::Rv1106 && api != NpuApi::ZeroCopy {
                    p.push("npu.api: the RV1106 runtime has only the zero-copy API".into());
                }
                if self.npu.runtime.as_deref().is_none_or(str::is_empty) {
                    p.push("npu.runtime: the NPU runtime library is missing".into());
                }
                if self.npu.cores.is_empty() {
                    p.push("npu.cores: name at least one core".into());
                }
                for c in &self.npu.cores {
                    if *c >= cores {
                        p.push(format!(
                            "npu.cores: core {c} does not exist (a {:?} has {cores})",
                            self.soc
                        ));
                    }
                }
            }
        }
        let c = &self.capture;
        if c.formats.is_empty() {
            p.push("capture.formats: name at least one".into());
        }
        if !(16..=4096).contains(&c.width) || !(16..=4096).contains(&c.height) {
            p.push(format!(
                "capture.width/height: {}x{} is outside 16..=4096",
                c.width, c.height
            ));
        }
        if !(1..=60).contains(&c.fps) {
            p.push(format!("capture.fps: {} is outside 1..=60", c.fps));
        }
        if let Some(s) = &self.gpio.light_sensor
            && s.night_below >= s.day_above
        {
            p.push(format!(
                "gpio.light_sensor: night_below {} must be under day_above {} (hysteresis)",
                s.night_below, s.day_above
            ));
        }
        if let (Some(a), Some(b)) = (&self.gpio.ir_cut, &self.gpio.status_led)
            && a.chip == b.chip
            && a.line == b.line
        {
            p.push("gpio: ir_cut and status_led are the same line".into());
        }
        let parts = &self.partitions;
        let all = [&parts.boot, &parts.rootfs[0], &parts.rootfs[1], &parts.data];
        for (i, a) in all.iter().enumerate() {
            if all[..i].contains(a) {
                p.push(format!("partitions: {} is used twice", a.display()));
            }
        }
        let env = &self.uboot_env;
        if env.size < 1024 {
            p.push(format!("uboot_env.size: {} is too small", env.size));
        }
        let [a, b] = env.offsets;
        if a.abs_diff(b) < env.size {
            p.push(format!(
                "uboot_env.offsets: copies at {a:#x} and {b:#x} overlap (size {:#x})",
                env.size
            ));
        }
        p
    }
}

/// Load every profile in `dir`, sorted by name.
pub fn load_all(dir: &Path) -> Result<Vec<Profile>, ProfileError> {
    let entries = std::fs::read_dir(dir).map_err(|source| ProfileError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "toml")
                && p.file_name() != Some("Cargo.toml".as_ref())
        })
        .collect();
    paths.sort();
    paths.iter().map(|p| Profile::load(p)).collect()
}

/// The directory of the profiles shipped in this repository.
pub fn shipped_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The profiles shipped in this repository, built into the binaries so a
/// camera needs no profile files beside them.
const BUILTIN: &[(&str, &str)] = &[
    ("qemu-arm64", include_str!("../qemu-arm64.toml")),
    ("rk3568", include_str!("../rk3568.toml")),
    ("rk3588", include_str!("../rk3588.toml")),
    ("rv1106", include_str!("../rv1106.toml")),
    ("rv1126", include_str!("../rv1126.toml")),
];

/// A shipped profile by name, or every problem with it.
pub fn builtin(name: &str) -> Result<Profile, ProfileError> {
    let (_, text) =
        BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| ProfileError::Unknown {
                name: name.to_string(),
                known: BUILTIN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
    Profile::parse(name, text).map_err(|problems| ProfileError::Invalid {
        path: PathBuf::from(format!("<built-in {name}>")),
        problems,
    })
}
