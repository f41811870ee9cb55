//! Frame sources: a V4L2 camera, a directory or MJPEG stream of files, or a
//! synthetic pattern, all behind [`FrameSource`].
//!
//! Every frame carries its sequence number, a timestamp, its size, stride and
//! pixel format, so the stages after capture never need to know where it came
//! from.

pub mod files;
pub mod synthetic;
pub mod v4l2;

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
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

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

/// Counters every source keeps; the pipeline reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SourceStats {
    /// Frames handed out.
    pub delivered: u64,
    /// Frames that could not be read or were malformed, skipped.
    pub skipped: u64,
    /// Times the underlying device was reopened after a failure.
    pub reopens: u64,
}

/// Errors a source can report. After a transient error (see
/// [`SourceError::is_fatal`]) the source has already waited out its
/// backoff; the caller logs the error and asks for the next frame again.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error(transparent)]
    V4l2(#[from] v4l2::V4l2Error),
}

impl SourceError {
    /// Whether calling `next_frame` again can help. Transient errors (a
    /// vanished camera) come back after the source's own backoff wait.
    pub fn is_fatal(&self) -> bool {
        match self {
            Self::V4l2(e) => e.is_fatal(),
            Self::Io { .. } | Self::Invalid { .. } => true,
        }
    }
}

/// Anything that produces frames.
pub trait FrameSource {
    /// A short description for logs (device path, directory, pattern).
    fn describe(&self) -> String;

    /// The format of the frames this source produces, known at open time.
    fn format(&self) -> PixelFormat;

    /// The next frame, or `Ok(None)` at the end of a finite stream.
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError>;

    /// Counters so far.
    fn stats(&self) -> SourceStats;
}

impl<S: FrameSource + ?Sized> FrameSource for Box<S> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn format(&self) -> PixelFormat {
        (**self).format()
    }
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        (**self).next_frame()
    }
    fn stats(&self) -> SourceStats {
        (**self).stats()
    }
}
