//! The camera's link to the world over MQTT (`docs/mqtt-api.md`).
//!
//! - [`topics`]: the topic tree under a configurable prefix;
//! - [`session`]: sans-IO delivery bookkeeping (which PUBACK releases which
//!   outbox record) and reconnect backoff;
//! - [`remote_config`]: the pure decision on a `config/set` payload;
//! - [`shelf_reference`]: shelf reference requests and their results;
//! - [`mqtt`]: the event loop (rumqttc) that drains the outbox, answers
//!   requests and publishes status and health.
//!
//! Data is never published straight from the pipeline: bins and events go
//! into the [`Outbox`](crate::outbox::Outbox) first and leave it only when
//! the broker has acknowledged them (QoS 1, `clean_session = false`).

use std::time::Duration;

use serde::Deserialize;

#[cfg(any(test, feature = "fakes"))]
pub mod fake;
pub mod messages;
pub mod mqtt;
pub mod session;
/// TLS settings and their loading live in the `mqtt-tls` crate, which the
/// update agent shares.
pub use mqtt_tls as tls;
pub use mqtt_tls::TlsConfig;
pub mod topics;

pub use camera_core::config::remote::{self as remote_config, ConfigResult, Desired};
pub use camera_core::shelf::request::{ReferenceState, ShelfReferenceReply, ShelfReferenceRequest};
pub use messages::{CameraCommand, CameraEvent, Snapshot};
pub use mqtt::{HealthFn, Link, LinkHandle, LinkStats};
pub use topics::Topics;

/// `[link]` in the application config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkConfig {
    /// Broker host name or address (from provisioning when
    /// `camera.provisioning` is set).
    #[serde(default)]
    pub broker: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// MQTT client id; the camera id when absent. Must be unique per
    /// broker: the broker keeps this camera's session under it.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Topic prefix; `{store}` and `{camera}` are filled in.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    #[serde(default = "default_store")]
    pub store: String,
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
    /// Seconds between health reports.
    #[serde(default = "default_health")]
    pub health_interval_s: u64,
    /// First wait after a failed connection; doubles up to the maximum.
    #[serde(default = "default_reconnect_min")]
    pub reconnect_min_ms: u64,
    #[serde(default = "default_reconnect_max")]
    pub reconnect_max_s: u64,
    /// `config/set` payloads above this are refused unread.
    #[serde(default = "default_max_config")]
    pub max_config_bytes: usize,
    /// Largest packet read from the broker; bigger ones drop the
    /// connection (also limit it on the broker).
    #[serde(default = "default_max_packet")]
    pub max_packet_bytes: usize,
    /// Data records in flight (unacknowledged) at once.
    #[serde(default = "default_window")]
    pub inflight: u16,
    /// At the end of a finite input (files), wait this long for the
    /// outbox to drain before exiting.
    #[serde(default = "default_drain")]
    pub drain_s: u64,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

fn default_port() -> u16 {
    1883
}
fn default_prefix() -> String {
    "stores/{store}/cameras/{camera}".into()
}
fn default_store() -> String {
    "store".into()
}
fn default_keep_alive() -> u64 {
    30
}
fn default_health() -> u64 {
    60
}
fn default_reconnect_min() -> u64 {
    500
}
fn default_reconnect_max() -> u64 {
    60
}
fn default_max_config() -> usize {
    remote_config::DEFAULT_MAX_CONFIG_BYTES
}
fn default_max_packet() -> usize {
    16 * 1024 * 1024
}
fn default_drain() -> u64 {
    10
}
fn default_window() -> u16 {
    100
}

impl LinkConfig {
    /// A plain-TCP link to `broker:port` with every default.
    pub fn new(broker: &str, port: u16) -> Self {
        Self {
            broker: broker.into(),
            port,
            client_id: None,
            topic_prefix: default_prefix(),
            store: default_store(),
            keep_alive_s: default_keep_alive(),
            health_interval_s: default_health(),
            reconnect_min_ms: default_reconnect_min(),
            reconnect_max_s: default_reconnect_max(),
            max_config_bytes: default_max_config(),
            max_packet_bytes: default_max_packet(),
            inflight: default_window(),
            drain_s: default_drain(),
            username: None,
            password: None,
            tls: None,
        }
    }

    /// Every problem with the settings, with its path.
    pub fn problems(&self, camera_id: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.broker.trim().is_empty() {
            p.push("link.broker: is empty".into());
        }
        if let Some(id) = &self.client_id
            && (id.is_empty() || id.trim() != id || id.len() > 64)
        {
            p.push(format!(
                "link.client_id: {id:?} must be 1 to 64 bytes without surrounding spaces"
            ));
        }
        if let Err(e) = Topics::new(&self.topic_prefix, &self.store, camera_id) {
            p.push(format!("link.topic_prefix: {e}"));
        }
        if !(5..=3600).contains(&self.keep_alive_s) {
            p.push(format!(
                "link.keep_alive_s: {} is not within 5..3600",
                self.keep_alive_s
            ));
        }
        if self.health_interval_s == 0 {
            p.push("link.health_interval_s: must be at least 1".into());
        }
        if self.reconnect_min_ms == 0 || self.reconnect_min_ms > self.reconnect_max_s * 1000 {
            p.push(format!(
                "link.reconnect_min_ms: {} must be above 0 and at most reconnect_max_s",
                self.reconnect_min_ms
            ));
        }
        if self.inflight == 0 || self.inflight > 1000 {
            p.push(format!(
                "link.inflight: {} is not within 1..1000",
                self.inflight
            ));
        }
        if self.max_config_bytes > self.max_packet_bytes {
            p.push("link.max_config_bytes: larger than max_packet_bytes".into());
        }
        if self.password.is_some() && self.username.is_none() {
            p.push("link.password: given without link.username".into());
        }
        if let Some(t) = &self.tls
            && t.cert_file.is_some() != t.key_file.is_some()
        {
            p.push("link.tls: cert_file and key_file go together".into());
        }
        p
    }

    pub fn topics(&self, camera_id: &str) -> Result<Topics, topics::TopicError> {
        Topics::new(&self.topic_prefix, &self.store, camera_id)
    }

    pub fn backoff(&self) -> session::Backoff {
        session::Backoff::new(
            Duration::from_millis(self.reconnect_min_ms),
            Duration::from_secs(self.reconnect_max_s),
        )
    }
}

/// Why the link could not be set up. Connection failures are not errors:
/// the link retries them for ever.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Topics(#[from] topics::TopicError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("starting the link's runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert!(
            LinkConfig::new("127.0.0.1", 1883)
                .problems("cam")
                .is_empty()
        );
    }

    #[test]
    fn every_problem_is_named() {
        let mut c = LinkConfig::new("", 1883);
        c.keep_alive_s = 1;
        c.inflight = 0;
        c.password = Some("x".into());
        c.topic_prefix = "a/#".into();
        let p = c.problems("cam");
        assert_eq!(p.len(), 5, "{p:?}");
        for needle in [
            "broker",
            "keep_alive",
            "inflight",
            "password",
            "topic_prefix",
        ] {
            assert!(p.iter().any(|x| x.contains(needle)), "{needle}: {p:?}");
        }
    }
}
