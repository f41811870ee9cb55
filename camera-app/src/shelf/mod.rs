//! Shelves in the camera's view: which facings are stocked, low or empty.
//!
//! Issue 7, started. Here so far, sans-IO:
//! - [`layout`]: shelves as polygons divided into facings (a grid or
//!   explicit polygons that tile the shelf), each with the front zone where
//!   a shopper stands, validated once with every problem named;
//! - [`state`]: a facing's state from its estimated fill level, with
//!   hysteresis and persistence, so one odd observation changes nothing.
//!
//! Still to come: the reference capture, the appearance comparator behind
//! a shelf-state trait (a learned classifier must be able to replace it),
//! shelf interactions (stops and takes), publishing, and the evaluation
//! scenes.

pub mod layout;
pub mod state;
