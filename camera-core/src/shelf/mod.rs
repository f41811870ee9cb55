//! Shelves in the camera's view: which facings are stocked, low or empty,
//! and how often shoppers stop at and take from each shelf (issue 7).
//!
//! All sans-IO; the camera state machine ([`crate::camera`]) feeds frames,
//! tracks and the tamper state in, and turns what comes out into events
//! and bins:
//! - [`layout`]: shelves as polygons divided into facings (a grid or
//!   explicit polygons that tile the shelf), each with the front zone where
//!   a shopper stands, validated once with every problem named;
//! - [`compare`]: the [`compare::ShelfState`] trait (the seam where a
//!   learned classifier replaces the comparator) and the reference
//!   comparator: a reference averaged over frames, judged on the samples
//!   that can change, blind to global lighting, with a shift search for
//!   camera shake;
//! - [`state`]: a facing's state from its fill level, with hysteresis and
//!   persistence, so one odd observation changes nothing;
//! - [`interact`]: stops (a foot point in the front zone for a while) and
//!   takes (a stop after which a facing's fill drops);
//! - [`monitor`]: when a shelf may be looked at (nobody in the way, no
//!   tamper, steady light, once per interval) and reference captures
//!   (refused with the reason while someone is in the way, retried);
//! - [`request`]: reference requests and their replies, as installers
//!   send and receive them.
//!
//! References are stored on flash by the application
//! (`camera_app::reference_store`).

// Functions on the per-frame path stay short enough to read whole
// (clippy.toml: 80 lines).
#![warn(clippy::too_many_lines)]

pub mod compare;
pub mod interact;
pub mod layout;
pub mod monitor;
pub mod request;
pub mod state;
