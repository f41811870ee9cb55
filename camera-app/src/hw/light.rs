//! The light level that drives day/night switching.
//!
//! A board with a light sensor names its IIO channel in the profile
//! (`[gpio] light_sensor`, with thresholds in the sensor's raw units). A
//! board without one falls back to the image's mean luma (0..=255), with
//! [`IMAGE_THRESHOLDS`]. The tamper detector already measures the mean luma
//! of every frame, so the frame loop passes that on
//! ([`luma_from_tamper`]); [`camera_core::frame::mean_luma`] samples a frame itself only when
//! tamper checks are off.
//!
//! The image is a weak proxy: auto-exposure holds the mean luma up until
//! exposure and gain run out, and the IR illuminator brightens the night
//! image. Boards with an IR-cut filter and illuminator should have a
//! sensor; the fallback suits boards that only need a rough day/night hint.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::health::TamperStatus;

/// Levels at or below `night_below` are night, at or above `day_above` day;
/// between them nothing changes (hysteresis).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub night_below: u32,
    pub day_above: u32,
}

/// Mean-luma thresholds when the level comes from the image: dusk in a lit
/// shop is well above 70; 30 is a scene auto-exposure can no longer lift.
pub const IMAGE_THRESHOLDS: Thresholds = Thresholds {
    night_below: 30,
    day_above: 70,
};

/// Why a reading failed. The caller counts it and keeps the last mode: a
/// flaky sensor must not stop the camera or flap the filter.
#[derive(Debug, thiserror::Error)]
pub enum LightError {
    #[error("light sensor {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("light sensor {}: {text:?} is not a raw reading (a non-negative integer)", path.display())]
    NotANumber { path: PathBuf, text: String },
}

/// A source of raw light readings.
pub trait LightSensor: std::fmt::Debug + Send {
    /// One raw reading, in the units of the profile's thresholds.
    fn read(&mut self) -> Result<u32, LightError>;
}

/// An IIO channel's `*_raw` file in sysfs, e.g.
/// `/sys/bus/iio/devices/iio:device0/in_voltage5_raw`.
#[derive(Debug)]
pub struct SysfsLightSensor {
    path: PathBuf,
    buf: String,
}

impl SysfsLightSensor {
    /// Nothing is opened yet: the first [`LightSensor::read`] tells
    /// whether the file is there.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            buf: String::with_capacity(16),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl LightSensor for SysfsLightSensor {
    fn read(&mut self) -> Result<u32, LightError> {
        // Reopened each time: an IIO raw attribute is produced on read, and
        // a fresh open also survives the driver being rebound.
        self.buf.clear();
        std::fs::File::open(&self.path)
            .and_then(|mut f| f.read_to_string(&mut self.buf))
            .map_err(|source| LightError::Read {
                path: self.path.clone(),
                source,
            })?;
        let text = self.buf.trim();
        text.parse().map_err(|_| LightError::NotANumber {
            path: self.path.clone(),
            text: text.chars().take(32).collect(),
        })
    }
}

/// Where the level comes from.
#[derive(Debug)]
pub enum LightSource {
    Sensor(Box<dyn LightSensor>),
    /// The image's mean luma, handed in by the frame loop.
    Image,
}

/// The level source and the thresholds that go with its units.
#[derive(Debug)]
pub struct Light {
    pub source: LightSource,
    pub thresholds: Thresholds,
}

impl Light {
    /// The profile's sensor, or the image when it has none.
    pub fn from_profile(gpio: &boards::Gpio) -> Self {
        match &gpio.light_sensor {
            Some(s) => Self {
                source: LightSource::Sensor(Box::new(SysfsLightSensor::new(&s.path))),
                thresholds: Thresholds {
                    night_below: s.night_below,
                    day_above: s.day_above,
                },
            },
            None => Self {
                source: LightSource::Image,
                thresholds: IMAGE_THRESHOLDS,
            },
        }
    }

    /// One level: the sensor's reading, or else `image_luma` (`None` until
    /// the frame loop has measured a frame).
    pub fn level(&mut self, image_luma: Option<u32>) -> Result<Option<u32>, LightError> {
        match &mut self.source {
            LightSource::Sensor(s) => s.read().map(Some),
            LightSource::Image => Ok(image_luma),
        }
    }
}

/// The mean luma the tamper detector measured on the last frame it
/// examined (`None` with tamper checks off or before the first frame).
pub fn luma_from_tamper(status: &TamperStatus) -> Option<u32> {
    let m = status.measures?;
    m.luma_mean
        .is_finite()
        .then(|| m.luma_mean.round().clamp(0.0, 255.0) as u32)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::health::TamperMeasures;

    fn sensor_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in_voltage5_raw");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        (dir, path)
    }

    #[test]
    fn reads_the_iio_raw_value_each_time() {
        let (_dir, path) = sensor_file("512\n");
        let mut s = SysfsLightSensor::new(&path);
        assert_eq!(s.read().unwrap(), 512);
        std::fs::write(&path, "17\n").unwrap();
        assert_eq!(s.read().unwrap(), 17, "the file is read afresh");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("iio:device9").join("in_voltage0_raw");
        let mut s = SysfsLightSensor::new(&path);
        let e = s.read().unwrap_err();
        assert!(matches!(e, LightError::Read { .. }), "{e:?}");
        assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}");
    }

    #[test]
    fn garbage_and_negative_readings_are_errors_not_panics() {
        for text in ["", "abc\n", "-5\n", "12.5\n", "99999999999\n"] {
            let (_dir, path) = sensor_file(text);
            let e = SysfsLightSensor::new(&path).read().unwrap_err();
            match &e {
                LightError::NotANumber { path: p, text: t } => {
                    assert_eq!(p, &path);
                    assert_eq!(t, text.trim());
                }
                other => panic!("{text:?}: {other:?}"),
            }
            assert!(e.to_string().contains("in_voltage5_raw"), "{e}");
        }
    }

    #[test]
    fn the_profile_picks_the_sensor_or_the_image() {
        let (_dir, path) = sensor_file("640");
        let gpio = boards::Gpio {
            light_sensor: Some(boards::LightSensor {
                path: path.clone(),
                night_below: 300,
                day_above: 600,
            }),
            ..Default::default()
        };
        let mut light = Light::from_profile(&gpio);
        assert_eq!(
            light.thresholds,
            Thresholds {
                night_below: 300,
                day_above: 600
            }
        );
        // The sensor wins over the image.
        assert_eq!(light.level(Some(3)).unwrap(), Some(640));

        let mut light = Light::from_profile(&boards::Gpio::default());
        assert!(matches!(light.source, LightSource::Image));
        assert_eq!(light.thresholds, IMAGE_THRESHOLDS);
        assert_eq!(light.level(Some(42)).unwrap(), Some(42));
        assert_eq!(light.level(None).unwrap(), None);
    }

    #[test]
    fn the_tamper_measure_is_reused_when_present() {
        let mut status = TamperStatus::default();
        assert_eq!(luma_from_tamper(&status), None);
        status.measures = Some(TamperMeasures {
            luma_mean: 117.6,
            ..Default::default()
        });
        assert_eq!(luma_from_tamper(&status), Some(118));
        status.measures = Some(TamperMeasures {
            luma_mean: f32::NAN,
            ..Default::default()
        });
        assert_eq!(luma_from_tamper(&status), None);
    }
}
