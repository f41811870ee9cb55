//! What a run did: the frame loop's counters, reported in health and at
//! the end of a run.

use serde::Serialize;

use crate::capture::SourceStats;

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// Frames detected and handed on.
    pub processed: u64,
    /// Frames whose compressed data could not be decoded.
    pub corrupt: u64,
    /// Frames the detector failed on.
    pub failed: u64,
    /// Frames detected but not counted: the clock was not set yet
    /// (`camera.clock = "synced"`).
    pub unclocked: u64,
    /// Errors from the source (each followed by a retry).
    pub source_errors: u64,
    /// The source's own counters (frames it skipped, reopens).
    pub source: SourceStats,
}
