//! Retail analytics: tracks in, counts and events out. Sans-IO state
//! machines; time comes in as an argument. Coordinates are normalised to
//! the image (0..1) so a configuration survives a change of resolution.

// Functions on the per-frame path stay short enough to read whole
// (clippy.toml: 80 lines).
#![warn(clippy::too_many_lines)]

pub mod bins;
pub mod engine;
pub mod heatmap;
pub mod line;
pub mod occupancy;
pub mod report;
pub mod zone;

/// People in view the per-track tables are sized for up front, so that a
/// busy scene does not allocate while it runs; more still work (the
/// tables grow).
pub const TRACK_CAPACITY: usize = 128;
