//! Synthetic frames for smoke tests and benchmarks: a diagonal gradient with
//! a bright square that moves across the view, in any supported format.
//!
//! Deterministic: frame `i` depends only on `i` and the settings, and its
//! time is `start + i / fps`.

use std::time::Duration;

use serde::Deserialize;

use super::files::DEFAULT_START_US;
use super::{Frame, FrameSource, Pacer, PixelFormat, SourceError, SourceStats, Timestamp};

/// Settings of the synthetic source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    #[serde(default = "default_format")]
    pub format: PixelFormat,
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// Number of frames; `None` is endless.
    #[serde(default)]
    pub frames: Option<u64>,
    /// Deliver frames at `fps` in real time, stamped with the wall clock
    /// (the demo), instead of as fast as asked with synthetic time.
    #[serde(default)]
    pub realtime: bool,
}

fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    480
}
fn default_format() -> PixelFormat {
    PixelFormat::Nv12
}
fn default_fps() -> f64 {
    10.0
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            width: default_width(),
            height: default_height(),
            format: default_format(),
            fps: default_fps(),
            frames: None,
            realtime: false,
        }
    }
}

/// The synthetic source.
#[derive(Debug)]
pub struct SyntheticSource {
    config: SyntheticConfig,
    /// With `realtime`.
    pacer: Pacer,
    next: u64,
    rgb: Vec<u8>,
    stats: SourceStats,
}

impl SyntheticSource {
    pub fn open(config: SyntheticConfig) -> Result<Self, SourceError> {
        let invalid = |reason: String| SourceError::Invalid {
            path: "synthetic".into(),
            reason,
        };
        if config.width < 2 || config.height < 2 || config.width % 2 == 1 || config.height % 2 == 1
        {
            return Err(invalid(format!(
                "size {}x{} must be even and at least 2x2",
                config.width, config.height
            )));
        }
        if !(config.fps.is_finite() && config.fps > 0.0) {
            return Err(invalid(format!("fps must be positive, got {}", config.fps)));
        }
        Ok(Self {
            config,
            pacer: Pacer::default(),
            next: 0,
            rgb: Vec::new(),
            stats: SourceStats::default(),
        })
    }

    /// Render frame `i` as packed RGB into `self.rgb`.
    fn render_rgb(&mut self, i: u64) {
        let (w, h) = (self.config.width as usize, self.config.height as usize);
        self.rgb.resize(w * h * 3, 0);
        let side = (h / 4).max(1);
        // The square crosses the view left to right in 5 s of frames.
        let period = (self.config.fps * 5.0).max(1.0) as u64;
        let x0 = ((i % period) as usize * w.saturating_sub(side)) / period as usize;
        let y0 = (h - side) / 2;
        for (y, row) in self.rgb.chunks_exact_mut(w * 3).enumerate() {
            for (x, px) in row.chunks_exact_mut(3).enumerate() {
                let inside = (x0..x0 + side).contains(&x) && (y0..y0 + side).contains(&y);
                if inside {
                    px.copy_from_slice(&[230, 40, 40]);
                } else {
                    let g = ((x + y) * 255 / (w + h)) as u8;
                    px.copy_from_slice(&[g, g / 2 + 60, 255 - g]);
                }
            }
        }
    }
}

/// BT.601 limited-range RGB → YUV for one pixel.
fn yuv(px: &[u8]) -> (u8, u8, u8) {
    let (r, g, b) = (f32::from(px[0]), f32::from(px[1]), f32::from(px[2]));
    let y = 16.0 + 0.257 * r + 0.504 * g + 0.098 * b;
    let u = 128.0 - 0.148 * r - 0.291 * g + 0.439 * b;
    let v = 128.0 + 0.439 * r - 0.368 * g - 0.071 * b;
    let c = |x: f32| x.round().clamp(0.0, 255.0) as u8;
    (c(y), c(u), c(v))
}

/// Packed RGB → `format`. Also used by the benchmark to make its inputs.
pub fn encode_rgb(
    rgb: &[u8],
    w: u32,
    h: u32,
    format: PixelFormat,
) -> Result<(Vec<u8>, u32), String> {
    let (wu, hu) = (w as usize, h as usize);
    match format {
        PixelFormat::Rgb24 => Ok((rgb.to_vec(), w * 3)),
        PixelFormat::Bgr24 => Ok((
            rgb.chunks_exact(3)
                .flat_map(|p| [p[2], p[1], p[0]])
                .collect(),
            w * 3,
        )),
        PixelFormat::Yuyv => {
            let mut out = Vec::with_capacity(wu * hu * 2);
            for pair in rgb.chunks_exact(6) {
                let (y0, u0, v0) = yuv(&pair[..3]);
                let (y1, u1, v1) = yuv(&pair[3..]);
                let avg = |a: u8, b: u8| ((u16::from(a) + u16::from(b)) / 2) as u8;
                out.extend_from_slice(&[y0, avg(u0, u1), y1, avg(v0, v1)]);
            }
            Ok((out, w * 2))
        }
        PixelFormat::Nv12 => {
            let mut out = vec![0u8; wu * hu + wu * hu / 2];
            let (ys, uv) = out.split_at_mut(wu * hu);
            for (i, px) in rgb.chunks_exact(3).enumerate() {
                ys[i] = yuv(px).0;
            }
            for cy in 0..hu / 2 {
                for cx in 0..wu / 2 {
                    let p = ((cy * 2) * wu + cx * 2) * 3;
                    let (_, u, v) = yuv(&rgb[p..p + 3]);
                    uv[cy * wu + cx * 2] = u;
                    uv[cy * wu + cx * 2 + 1] = v;
                }
            }
            Ok((out, w))
        }
        PixelFormat::Mjpeg => {
            let img = image::RgbImage::from_raw(w, h, rgb.to_vec())
                .ok_or_else(|| "RGB buffer does not match the size".to_string())?;
            let mut out = std::io::Cursor::new(Vec::new());
            image::DynamicImage::ImageRgb8(img)
                .write_to(&mut out, image::ImageFormat::Jpeg)
                .map_err(|e| e.to_string())?;
            Ok((out.into_inner(), 0))
        }
    }
}

impl FrameSource for SyntheticSource {
    fn describe(&self) -> String {
        format!(
            "synthetic:{}x{}:{}",
            self.config.width, self.config.height, self.config.format
        )
    }

    fn format(&self) -> PixelFormat {
        self.config.format
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let i = self.next;
        if self.config.frames.is_some_and(|n| i >= n) {
            return Ok(None);
        }
        self.next += 1;
        self.render_rgb(i);
        let (w, h) = (self.config.width, self.config.height);
        let (data, stride) = encode_rgb(&self.rgb, w, h, self.config.format).map_err(|reason| {
            SourceError::Invalid {
                path: self.describe(),
                reason,
            }
        })?;
        self.stats.delivered += 1;
        let t = Duration::from_secs_f64(i as f64 / self.config.fps);
        let timestamp = if self.config.realtime {
            self.pacer.stamp(t)
        } else {
            Timestamp(DEFAULT_START_US).plus(t)
        };
        Ok(Some(Frame {
            seq: i,
            timestamp,
            width: w,
            height: h,
            stride,
            format: self.config.format,
            data,
        }))
    }

    fn stats(&self) -> SourceStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_produces_well_formed_frames() {
        for format in [
            PixelFormat::Nv12,
            PixelFormat::Yuyv,
            PixelFormat::Rgb24,
            PixelFormat::Bgr24,
            PixelFormat::Mjpeg,
        ] {
            let mut s = SyntheticSource::open(SyntheticConfig {
                width: 64,
                height: 32,
                format,
                fps: 5.0,
                frames: Some(2),
                realtime: false,
            })
            .expect("open");
            let a = s.next_frame().expect("ok").expect("frame");
            a.check().expect("layout");
            assert_eq!((a.format, a.width, a.height), (format, 64, 32));
            let b = s.next_frame().expect("ok").expect("frame");
            assert_eq!(b.timestamp.0 - a.timestamp.0, 200_000);
            assert!(s.next_frame().expect("ok").is_none());
        }
    }

    #[test]
    fn the_square_moves() {
        let mut s = SyntheticSource::open(SyntheticConfig {
            format: PixelFormat::Rgb24,
            ..SyntheticConfig::default()
        })
        .expect("open");
        let a = s.next_frame().expect("ok").expect("frame");
        let b = s.next_frame().expect("ok").expect("frame");
        assert_ne!(a.data, b.data);
        // Red square on the middle row in frame 0 starts at x = 0.
        let mid = (240 * 640 + 5) * 3;
        assert_eq!(&a.data[mid..mid + 3], &[230, 40, 40]);
    }

    #[test]
    fn odd_size_is_refused() {
        let err = SyntheticSource::open(SyntheticConfig {
            width: 33,
            ..SyntheticConfig::default()
        })
        .expect_err("odd");
        assert!(err.to_string().contains("33x480"), "{err}");
    }
}
