//! Signed A/B updates for the camera: the trust chain ([`trust`]), the
//! bundle format ([`bundle`], [`manifest`]), the A/B slot logic over the
//! U-Boot environment ([`boot`], [`mod@env`], [`slots`], on raw flash: [`flash`]), installation
//! ([`install`]), resumable download ([`download`]), the update agent
//! ([`agent`], its layout from a board profile: [`board`], [`announce`], [`journal`], [`health`]) and staged rollouts
//! ([`rollout`]); [`provision`] checks and installs a camera's factory
//! bundle. [`tls`] (the `mqtt-tls` crate) loads the agent's MQTT TLS
//! settings. `docs/ota.md` is the guide; the `ota` binary (on the
//! camera) and the `ota-vendor` binary (the vendor's tools) wrap it.

pub mod agent;
pub mod announce;
pub mod board;
pub mod boot;
pub mod bundle;
pub mod download;
pub mod env;
pub mod flash;
pub mod health;
pub mod install;
pub mod journal;
pub mod logging;
pub mod manifest;
pub mod provision;
pub mod rollout;
pub mod slots;
pub mod trust;

/// The agent's MQTT TLS settings, shared with camera-app's link.
pub use mqtt_tls as tls;
