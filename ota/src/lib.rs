//! Signed A/B updates for the camera: the trust chain ([`trust`]), the
//! bundle format ([`bundle`], [`manifest`]), the A/B slot logic over the
//! U-Boot environment ([`boot`], [`mod@env`], [`slots`]), installation
//! ([`install`]), resumable download ([`download`]), the update agent
//! ([`agent`], its layout from a board profile: [`board`], [`announce`], [`journal`], [`health`]) and staged rollouts
//! ([`rollout`]). [`tls`] loads MQTT TLS settings for the agent and for
//! camera-app. `docs/ota.md` is the guide; the `ota` binary wraps it.

pub mod agent;
pub mod announce;
pub mod board;
pub mod boot;
pub mod bundle;
pub mod download;
pub mod env;
pub mod health;
pub mod install;
pub mod journal;
pub mod manifest;
pub mod rollout;
pub mod slots;
pub mod tls;
pub mod trust;
