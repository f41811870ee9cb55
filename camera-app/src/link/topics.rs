//! The camera's MQTT topic tree, under one configurable prefix
//! (`docs/mqtt-api.md`).

use std::fmt;

/// Why a topic prefix was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic prefix {prefix:?}: {reason}")]
    Prefix {
        prefix: String,
        reason: &'static str,
    },
}

/// The topics of one camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

/// What an incoming message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    ConfigSet,
    SnapshotRequest,
    ShelfReferenceRequest,
}

impl Topics {
    /// `template` may use `{store}` and `{camera}`, e.g.
    /// `stores/{store}/cameras/{camera}`.
    pub fn new(template: &str, store: &str, camera: &str) -> Result<Self, TopicError> {
        let prefix = template
            .replace("{store}", store)
            .replace("{camera}", camera);
        let bad = |reason| {
            Err(TopicError::Prefix {
                prefix: prefix.clone(),
                reason,
            })
        };
        if prefix.is_empty() {
            return bad("is empty");
        }
        if prefix.contains(['#', '+', '\0']) {
            // Wildcards in a publish topic are a protocol error.
            return bad("contains a wildcard (# or +) or NUL");
        }
        if prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains("//") {
            return bad("has an empty level");
        }
        if prefix.contains(['{', '}']) {
            return bad("has a placeholder other than {store} and {camera}");
        }
        if prefix.len() > 1024 {
            return bad("is longer than 1024 bytes");
        }
        Ok(Self { prefix })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A topic under the prefix; data records use their outbox topic
    /// (`bins`, `events`).
    pub fn under(&self, leaf: &str) -> String {
        format!("{}/{leaf}", self.prefix)
    }

    /// Retained: `online` birth message, or the last will `offline`.
    pub fn status(&self) -> String {
        self.under("status")
    }
    pub fn health(&self) -> String {
        self.under("health")
    }
    pub fn config_state(&self) -> String {
        self.under("config/state")
    }
    pub fn config_set(&self) -> String {
        self.under("config/set")
    }
    pub fn config_result(&self) -> String {
        self.under("config/result")
    }
    pub fn snapshot_request(&self) -> String {
        self.under("snapshot/request")
    }
    pub fn snapshot(&self) -> String {
        self.under("snapshot")
    }
    pub fn snapshot_result(&self) -> String {
        self.under("snapshot/result")
    }
    pub fn shelf_reference_request(&self) -> String {
        self.under("shelves/reference/request")
    }
    pub fn shelf_reference_result(&self) -> String {
        self.under("shelves/reference/result")
    }

    /// Classify a message the camera received.
    pub fn inbound(&self, topic: &str) -> Option<Inbound> {
        let leaf = topic.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        match leaf {
            "config/set" => Some(Inbound::ConfigSet),
            "snapshot/request" => Some(Inbound::SnapshotRequest),
            "shelves/reference/request" => Some(Inbound::ShelfReferenceRequest),
            _ => None,
        }
    }
}

impl fmt::Display for Topics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.prefix)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn template_is_filled_in() {
        let t = Topics::new("stores/{store}/cameras/{camera}", "s1", "door").unwrap();
        assert_eq!(t.status(), "stores/s1/cameras/door/status");
        assert_eq!(t.under("bins"), "stores/s1/cameras/door/bins");
        assert_eq!(t.config_set(), "stores/s1/cameras/door/config/set");
    }

    #[test]
    fn bad_prefixes_are_refused_with_the_reason() {
        for (template, camera, why) in [
            ("", "c", "empty"),
            ("a/{camera}", "+", "wildcard"),
            ("a/{camera}", "#", "wildcard"),
            ("a/{camera}/", "c", "empty level"),
            ("/a/{camera}", "c", "empty level"),
            ("a/{camera}", "", "empty level"),
            ("a/{site}/{camera}", "c", "placeholder"),
        ] {
            let e = Topics::new(template, "s", camera).unwrap_err().to_string();
            assert!(e.contains(why), "{template} {camera}: {e}");
        }
    }

    #[test]
    fn inbound_topics_are_recognised_only_under_the_prefix() {
        let t = Topics::new("shop/{camera}", "s", "c1").unwrap();
        assert_eq!(t.inbound("shop/c1/config/set"), Some(Inbound::ConfigSet));
        assert_eq!(
            t.inbound("shop/c1/snapshot/request"),
            Some(Inbound::SnapshotRequest)
        );
        assert_eq!(
            t.inbound("shop/c1/shelves/reference/request"),
            Some(Inbound::ShelfReferenceRequest)
        );
        assert_eq!(t.inbound("shop/c1/shelves/reference/result"), None);
        assert_eq!(t.inbound("shop/c10/config/set"), None);
        assert_eq!(t.inbound("shop/c1/config/state"), None);
        assert_eq!(t.inbound("other/config/set"), None);
    }
}
