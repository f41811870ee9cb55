//! Frame sources: a V4L2 camera, a directory or MJPEG stream of files, or a
//! synthetic pattern, all behind [`FrameSource`].
//!
//! Every frame carries its sequence number, a timestamp, its size, stride and
//! pixel format, so the stages after capture never need to know where it came
//! from.

// Functions on the per-frame path stay short enough to read whole
// (clippy.toml: 80 lines).
#![warn(clippy::too_many_lines)]

pub mod files;
pub mod synthetic;
pub mod v4l2;

use serde::Serialize;

pub use camera_core::frame::{Frame, FrameLayoutError, PixelFormat, Timestamp};

/// The current wall-clock time, as frames are stamped with it.
pub fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

/// Paces a recorded or synthetic source to the wall clock: frame `i` is
/// handed out no earlier than `i/fps` after the first, stamped with the
/// time it goes out, as if it were live.
#[derive(Debug, Default)]
pub struct Pacer {
    started: Option<std::time::Instant>,
}

impl Pacer {
    /// Whether the frame due `next` after the first is due already: the
    /// one before it is stale, and a live camera would have dropped it.
    pub fn behind(&self, next: std::time::Duration) -> bool {
        self.started
            .is_some_and(|s| std::time::Instant::now() >= s + next)
    }

    /// Wait until `offset` after the first frame, then read the clock.
    pub fn stamp(&mut self, offset: std::time::Duration) -> Timestamp {
        let started = *self.started.get_or_insert_with(std::time::Instant::now);
        if let Some(wait) = (started + offset).checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(wait);
        }
        now()
    }
}

/// Counters every source keeps; the pipeline reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SourceStats {
    /// Frames handed out.
    pub delivered: u64,
    /// Frames skipped: unreadable or malformed, or (files played in real
    /// time) too late to show, as a live camera drops them.
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
