//! The retail camera's decisions, sans I/O.
//!
//! Everything the camera decides lives here, as data in and data out, with
//! time as an argument: no I/O, no clock, no threads. The camera
//! application (capture, inference, storage, MQTT) feeds it, and so can the
//! installer's tools and the store chain's back office, which need the same
//! configuration checks and the same counting.
//!
//! Data flows one way: a [`frame::Frame`] and its
//! [`detection::Detection`]s → [`track`] (tracks) → [`analytics`] (bins and
//! events) and [`shelf`] (facing states, stops, takes), with [`tamper`]
//! watching the view. [`camera::Camera`] is the state machine that ties
//! them together for one camera: inputs in, records, replies and changes
//! to persist out.
//!
//! Modules, leaves first (no module imports one that imports it):
//! - [`geom`], [`frame`], [`detection`]: data and geometry;
//! - [`check`]: reporting configuration problems with their paths;
//! - [`track`]: the multi-object tracker;
//! - [`shelf`]: shelf layouts, states, references and interactions;
//! - [`config`]: the analytics configuration, raw → validated, and
//!   `config/set` decisions;
//! - [`analytics`]: lines, zones, occupancy, queues, heatmap, funnel, bins
//!   and events;
//! - [`tamper`]: lens covered, defocused, view moved;
//! - [`camera`]: the camera state machine.

pub mod analytics;
pub mod camera;
pub mod check;
pub mod config;
pub mod detection;
pub mod frame;
pub mod geom;
pub mod shelf;
pub mod tamper;
pub mod track;
