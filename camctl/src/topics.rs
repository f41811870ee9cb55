//! Where a store's cameras publish: the camera's topic prefix template
//! (`[link] topic_prefix`, `stores/{store}/cameras/{camera}` by default,
//! `docs/mqtt-api.md`), turned into subscription filters and read back
//! from the topics that arrive.

use std::fmt;

use serde::Serialize;

/// The camera's default prefix template.
pub const DEFAULT_TEMPLATE: &str = "stores/{store}/cameras/{camera}";

/// Why a prefix template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("topic prefix template {template:?}: {reason}")]
pub struct LayoutError {
    pub template: String,
    pub reason: &'static str,
}

/// One camera of a store.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CameraRef {
    pub store: String,
    pub camera: String,
}

impl fmt::Display for CameraRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.store, self.camera)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    Literal(String),
    Store,
    Camera,
}

/// The topic tree of a store's cameras.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    levels: Vec<Level>,
    /// The store when the template does not name one per topic.
    store: String,
}

impl Layout {
    /// `template` uses `{store}` and `{camera}`, each a whole level;
    /// `store` fills `{store}` (and is the store of every camera when the
    /// template has no `{store}`).
    pub fn new(template: &str, store: &str) -> Result<Self, LayoutError> {
        let bad = |reason| {
            Err(LayoutError {
                template: template.to_string(),
                reason,
            })
        };
        if template.contains(['#', '+', '\0']) {
            return bad("contains a wildcard (# or +) or NUL");
        }
        let mut levels = Vec::new();
        for part in template.split('/') {
            levels.push(match part {
                "" => return bad("has an empty level"),
                "{store}" => Level::Store,
                "{camera}" => Level::Camera,
                p if p.contains(['{', '}']) => {
                    return bad("placeholders must be whole levels: {store} or {camera}");
                }
                p => Level::Literal(p.to_string()),
            });
        }
        if !levels.contains(&Level::Camera) {
            return bad("has no {camera} level");
        }
        if store.is_empty() || store.contains(['/', '#', '+', '\0']) {
            return bad("the store must be a non-empty topic level without / # + or NUL");
        }
        Ok(Self {
            levels,
            store: store.to_string(),
        })
    }

    pub fn store(&self) -> &str {
        &self.store
    }

    /// The prefix of one camera of this store.
    pub fn prefix(&self, camera: &str) -> String {
        self.join(camera)
    }

    /// A topic under one camera's prefix.
    pub fn topic(&self, camera: &str, leaf: &str) -> String {
        format!("{}/{leaf}", self.prefix(camera))
    }

    /// A filter for `leaf` of every camera of the store.
    pub fn every_camera(&self, leaf: &str) -> String {
        format!("{}/{leaf}", self.join("+"))
    }

    fn join(&self, camera: &str) -> String {
        let parts: Vec<&str> = self
            .levels
            .iter()
            .map(|l| match l {
                Level::Literal(s) => s.as_str(),
                Level::Store => self.store.as_str(),
                Level::Camera => camera,
            })
            .collect();
        parts.join("/")
    }

    /// The camera a topic belongs to and the rest of the topic (`health`,
    /// `config/result`), when it is under a camera's prefix.
    pub fn parse<'t>(&self, topic: &'t str) -> Option<(CameraRef, &'t str)> {
        let mut rest = topic;
        let mut camera = None;
        for level in &self.levels {
            let (head, tail) = rest.split_once('/')?;
            match level {
                Level::Literal(s) if s != head => return None,
                Level::Store if head != self.store => return None,
                Level::Camera => camera = Some(head),
                _ => {}
            }
            rest = tail;
        }
        let camera = camera?;
        if camera.is_empty() || rest.is_empty() {
            return None;
        }
        Some((
            CameraRef {
                store: self.store.clone(),
                camera: camera.to_string(),
            },
            rest,
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_default_layout_round_trips() {
        let l = Layout::new(DEFAULT_TEMPLATE, "s1").unwrap();
        assert_eq!(l.prefix("door-1"), "stores/s1/cameras/door-1");
        assert_eq!(l.every_camera("status"), "stores/s1/cameras/+/status");
        let (cam, leaf) = l.parse("stores/s1/cameras/door-1/config/result").unwrap();
        assert_eq!(cam.camera, "door-1");
        assert_eq!(leaf, "config/result");
        assert!(l.parse("stores/s2/cameras/door-1/status").is_none());
        assert!(l.parse("stores/s1/cameras/door-1").is_none());
        assert!(l.parse("stores/s1/tills/door-1/status").is_none());
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        for (t, why) in [
            ("stores/{store}", "no {camera}"),
            ("a//{camera}", "empty level"),
            ("a/cam-{camera}", "whole levels"),
            ("a/+/{camera}", "wildcard"),
        ] {
            let e = Layout::new(t, "s").unwrap_err().to_string();
            assert!(e.contains(why), "{t}: {e}");
        }
        assert!(
            Layout::new(DEFAULT_TEMPLATE, "a/b")
                .unwrap_err()
                .to_string()
                .contains("store")
        );
    }
}
