//! Frames as data: pixels, their layout and a timestamp. Sources (V4L2,
//! files) live in the application; everything after capture sees only
//! this.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Pixel layouts the pipeline understands. Anything else is refused when a
/// source is opened, never mid-stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// Packed 4:2:2, Y0 U Y1 V.
    Yuyv,
    /// Planar Y followed by interleaved UV at half resolution (4:2:0).
    Nv12,
    /// Packed 8-bit R, G, B.
    Rgb24,
    /// Packed 8-bit B, G, R.
    Bgr24,
    /// One JPEG image per frame (compressed; decoded by the pipeline).
    Mjpeg,
}

impl PixelFormat {
    /// The V4L2 fourcc of this format.
    pub const fn fourcc(self) -> [u8; 4] {
        match self {
            Self::Yuyv => *b"YUYV",
            Self::Nv12 => *b"NV12",
            Self::Rgb24 => *b"RGB3",
            Self::Bgr24 => *b"BGR3",
            Self::Mjpeg => *b"MJPG",
        }
    }

    /// The format with this V4L2 fourcc, if the pipeline supports it.
    pub fn from_fourcc(fourcc: [u8; 4]) -> Option<Self> {
        [
            Self::Yuyv,
            Self::Nv12,
            Self::Rgb24,
            Self::Bgr24,
            Self::Mjpeg,
        ]
        .into_iter()
        .find(|f| f.fourcc() == fourcc)
    }

    /// Minimum bytes per line for `width` pixels (of the first plane), or
    /// `None` for compressed formats.
    pub const fn min_stride(self, width: u32) -> Option<u32> {
        match self {
            Self::Yuyv => Some(width * 2),
            Self::Nv12 => Some(width),
            Self::Rgb24 | Self::Bgr24 => Some(width * 3),
            Self::Mjpeg => None,
        }
    }

    /// Bytes of a whole uncompressed frame with the given stride, or `None`
    /// for compressed formats.
    pub const fn frame_len(self, stride: u32, height: u32) -> Option<usize> {
        let (s, h) = (stride as usize, height as usize);
        match self {
            Self::Yuyv | Self::Rgb24 | Self::Bgr24 => Some(s * h),
            // Chroma plane: height/2 rows (rounded up) of the same stride.
            Self::Nv12 => Some(s * h + s * h.div_ceil(2)),
            Self::Mjpeg => None,
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Yuyv => "yuyv",
            Self::Nv12 => "nv12",
            Self::Rgb24 => "rgb24",
            Self::Bgr24 => "bgr24",
            Self::Mjpeg => "mjpeg",
        };
        f.write_str(name)
    }
}

/// Wall-clock time of a frame, in microseconds since the Unix epoch.
///
/// Kept as an integer so that file-mode runs are bit-for-bit reproducible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Convert a [`SystemTime`]; times before the epoch clamp to zero.
    pub fn from_system_time(t: SystemTime) -> Self {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Self(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// This time plus `d`, saturating.
    pub fn plus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        )
    }
}

/// One captured frame. `data` holds the whole image: for NV12 the Y plane
/// (`stride × height`) is followed directly by the UV plane.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// Position in the stream, starting at 0; gaps mean dropped frames.
    pub seq: u64,
    pub timestamp: Timestamp,
    pub width: u32,
    pub height: u32,
    /// Bytes per line of the first plane (0 for compressed formats).
    pub stride: u32,
    pub format: PixelFormat,
    pub data: Vec<u8>,
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("seq", &self.seq)
            .field("timestamp", &self.timestamp)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("stride", &self.stride)
            .field("format", &self.format)
            .field("len", &self.data.len())
            .finish()
    }
}

/// Why a frame is malformed; see [`Frame::check`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameLayoutError {
    #[error("frame has zero width or height")]
    Empty,
    #[error("stride {stride} is below the minimum {min} for {width} px of {format}")]
    StrideTooSmall {
        stride: u32,
        min: u32,
        width: u32,
        format: PixelFormat,
    },
    #[error("{format} frame of {width}x{height} stride {stride} needs {need} bytes, got {got}")]
    TooShort {
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: u32,
        need: usize,
        got: usize,
    },
}

impl Frame {
    /// Check that `data` is large enough for the declared geometry, so later
    /// stages can index without bounds surprises.
    pub fn check(&self) -> Result<(), FrameLayoutError> {
        if self.width == 0 || self.height == 0 {
            return Err(FrameLayoutError::Empty);
        }
        let Some(min) = self.format.min_stride(self.width) else {
            return Ok(());
        };
        if self.stride < min {
            return Err(FrameLayoutError::StrideTooSmall {
                stride: self.stride,
                min,
                width: self.width,
                format: self.format,
            });
        }
        let need = self
            .format
            .frame_len(self.stride, self.height)
            .unwrap_or_default();
        if self.data.len() < need {
            return Err(FrameLayoutError::TooShort {
                format: self.format,
                width: self.width,
                height: self.height,
                stride: self.stride,
                need,
                got: self.data.len(),
            });
        }
        Ok(())
    }
}

/// Sample points per axis: enough for a mean, cheap at any resolution.
const GRID: u32 = 32;

/// The mean luma (0..=255) of `frame`, sampled on a 32×32 grid; `None` for
/// compressed or malformed frames.
pub fn mean_luma(frame: &Frame) -> Option<u32> {
    frame.check().ok()?;
    let (bpp, rgb) = match frame.format {
        PixelFormat::Nv12 => (1, None),
        PixelFormat::Yuyv => (2, None),
        PixelFormat::Rgb24 => (3, Some([0, 1, 2])),
        PixelFormat::Bgr24 => (3, Some([2, 1, 0])),
        PixelFormat::Mjpeg => return None,
    };
    let (nx, ny) = (GRID.min(frame.width), GRID.min(frame.height));
    let d = &frame.data;
    let mut sum = 0u64;
    for j in 0..ny {
        // Centres of equal bands, so the edges weigh no more than the middle.
        let y = ((2 * j + 1) * frame.height / (2 * ny)) as usize;
        let row = y * frame.stride as usize;
        for i in 0..nx {
            let x = ((2 * i + 1) * frame.width / (2 * nx)) as usize;
            let o = row + x * bpp;
            let v = match rgb {
                None => u32::from(*d.get(o)?),
                Some([r, g, b]) => {
                    let px = d.get(o..o + 3)?;
                    // BT.601 weights in 8-bit fixed point, as tamper uses.
                    (77 * u32::from(px[r]) + 150 * u32::from(px[g]) + 29 * u32::from(px[b]) + 128)
                        >> 8
                }
            };
            sum += u64::from(v);
        }
    }
    Some((sum / u64::from(nx * ny)) as u32)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn frame(format: PixelFormat, width: u32, height: u32, stride: u32, data: Vec<u8>) -> Frame {
        Frame {
            seq: 0,
            timestamp: Timestamp(0),
            width,
            height,
            stride,
            format,
            data,
        }
    }

    #[test]
    fn mean_luma_of_nv12_and_yuyv_reads_only_the_luma() {
        // Left half 200, right half 40, chroma 255 (which must not count).
        let (w, h) = (64u32, 32u32);
        let mut nv12 = vec![255u8; (w * h * 3 / 2) as usize];
        for y in 0..h {
            for x in 0..w {
                nv12[(y * w + x) as usize] = if x < w / 2 { 200 } else { 40 };
            }
        }
        assert_eq!(
            mean_luma(&frame(PixelFormat::Nv12, w, h, w, nv12)),
            Some(120)
        );

        let mut yuyv = vec![255u8; (w * 2 * h) as usize];
        for y in 0..h {
            for x in 0..w {
                yuyv[(y * w * 2 + x * 2) as usize] = 10;
            }
        }
        assert_eq!(
            mean_luma(&frame(PixelFormat::Yuyv, w, h, w * 2, yuyv)),
            Some(10)
        );
    }

    #[test]
    fn mean_luma_of_rgb_weighs_green_most_and_skips_padding() {
        let (w, h, stride) = (40u32, 20u32, 40 * 3 + 8);
        let mut rgb = vec![0u8; (stride * h) as usize];
        for y in 0..h {
            for x in 0..w {
                let o = (y * stride + x * 3) as usize;
                rgb[o + 1] = 255; // pure green
            }
            // Padding past the row, bright: must not be sampled.
            for p in w * 3..stride {
                rgb[(y * stride + p) as usize] = 255;
            }
        }
        let green = mean_luma(&frame(PixelFormat::Rgb24, w, h, stride, rgb.clone())).unwrap();
        assert_eq!(green, 149); // (150 · 255 + 128) >> 8
        // The same bytes read as BGR are still green in the middle byte.
        assert_eq!(
            mean_luma(&frame(PixelFormat::Bgr24, w, h, stride, rgb)),
            Some(149)
        );
    }

    #[test]
    fn compressed_or_short_frames_have_no_luma() {
        assert_eq!(
            mean_luma(&frame(PixelFormat::Mjpeg, 64, 32, 0, vec![0; 100])),
            None
        );
        assert_eq!(
            mean_luma(&frame(PixelFormat::Nv12, 64, 32, 64, vec![0; 100])),
            None
        );
    }
}
