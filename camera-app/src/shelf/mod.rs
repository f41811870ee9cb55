//! Shelves in the camera's view: which facings are stocked, low or empty.
//!
//! Issue 7, started. Here so far, sans-IO:
//! - [`layout`]: shelves as polygons divided into facings (a grid or
//!   explicit polygons that tile the shelf), each with the front zone where
//!   a shopper stands, validated once with every problem named;
//! - [`state`]: a facing's state from its estimated fill level, with
//!   hysteresis and persistence, so one odd observation changes nothing;
//! - [`compare`]: the [`compare::ShelfState`] trait (a learned classifier
//!   must be able to replace the comparator) and the reference comparator:
//!   a reference averaged over frames, structure and texture scores blind
//!   to global lighting, a shift search for camera shake.
//! - [`interact`]: stops (a foot point in the front zone for a while) and
//!   takes (a stop after which the shelf's fill drops), counted per bin.
//!
//! Still to come: reference capture over MQTT and its storage, the gating
//! (no track over the shelf or its front zone, no tamper, steady light),
//! wiring into the pipeline, publishing, and the evaluation scenes.

pub mod compare;
pub mod interact;
pub mod layout;
pub mod monitor;
pub mod state;
pub mod store;
