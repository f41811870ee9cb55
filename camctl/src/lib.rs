//! camctl: the installer's tool for a store's cameras. It runs on the
//! installer's laptop, never on a camera, and talks to the cameras only
//! through the store's MQTT broker (`docs/mqtt-api.md`).
//!
//! - [`topics`]: where a store's cameras publish;
//! - [`fleet`]: the cameras as their status and health describe them;
//! - [`configure`]: configuration files checked by the camera's own code,
//!   each problem placed on the view;
//! - [`audit`] and [`report`]: the accuracy audit (taps against the
//!   camera's crossings) and its report;
//! - [`session`] (the broker connection, the only network I/O with it) and
//!   [`commands`] (what the installer asks, over a session);
//! - [`serve`]: the web configurator on 127.0.0.1 (`page/`).
//!
//! Pure parts (topics, fleet, configure, audit, report) take messages and
//! times in and give results out; the binary's `main.rs` parses arguments
//! and calls them.

pub mod audit;
pub mod commands;
pub mod configure;
pub mod fleet;
pub mod report;
pub mod serve;
pub mod session;
pub mod topics;
