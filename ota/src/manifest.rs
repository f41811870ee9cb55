//! The signed manifest of a bundle: what the bundle holds and who may
//! install it.
//!
//! Everything an install decision rests on is in here, under the
//! signature: the release version, the security counter (anti-rollback
//! reads it from inside the signed payload, never from a file name or an
//! unsigned header: esphome#17315), the boards it fits, and for each image
//! its component, length, sha256 and one sha256 per chunk. The chunk list
//! is what lets an install stream: each chunk is hashed before a byte of
//! it reaches a slot, so a corrupt or mixed-up payload is refused at the
//! first bad chunk, with at most the chunks before it written to the
//! inactive slot (which is never activated).

use serde::{Deserialize, Serialize};

/// Manifests larger than this are refused before parsing.
pub const MAX_MANIFEST_BYTES: usize = 1 << 20;
/// Largest image a manifest may describe (a rootfs slot on the largest
/// board is well under this).
pub const MAX_IMAGE_BYTES: u64 = 8 << 30;
/// Chunk sizes allowed: powers of two between these. The upper bound
/// bounds the install's memory: about six chunks are in flight (see
/// `install`), 24 MiB at most, 6 MiB with the default.
pub const MIN_CHUNK: u32 = 64 << 10;
pub const MAX_CHUNK: u32 = 4 << 20;
/// The chunk size `ota-vendor sign` uses.
pub const DEFAULT_CHUNK: u32 = 1 << 20;

/// What an image replaces. Each has its own A/B pair, so that a model
/// update does not need a full image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Component {
    /// The whole root filesystem; switched by U-Boot, needs a reboot.
    Rootfs,
    /// The camera application alone.
    App,
    /// A model package (model file and its manifest).
    Model,
}

impl Component {
    pub const ALL: [Component; 3] = [Component::Rootfs, Component::App, Component::Model];

    pub fn name(self) -> &'static str {
        match self {
            Component::Rootfs => "rootfs",
            Component::App => "app",
            Component::Model => "model",
        }
    }

    pub fn parse(s: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.name() == s)
    }
}

impl std::fmt::Display for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A sha256 digest, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest(pub [u8; 32]);

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(serde::de::Error::custom(
                "sha256 must be 64 lowercase hex digits",
            ));
        }
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(Digest(out))
    }
}

/// One image of a bundle. Images follow the header in manifest order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// A plain file name, for humans and for `ota-vendor inspect`.
    pub name: String,
    pub component: Component,
    pub length: u64,
    pub sha256: Digest,
    pub chunk_size: u32,
    /// sha256 of each chunk; the last may be short.
    pub chunks: Vec<Digest>,
}

/// The signed description of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always "manifest": a signed document of one kind is never taken for
    /// another.
    #[serde(rename = "type")]
    pub kind: String,
    /// Release version, shown to people (e.g. "1.4.0").
    pub version: String,
    /// Monotonic anti-rollback counter: a camera refuses a lower one and
    /// accepts an equal one (reinstalling the same release line).
    pub security_counter: u64,
    /// Unix seconds when it was signed.
    pub issued: u64,
    /// Board names (`boards/<name>.toml`) this bundle may be installed on.
    pub compatible: Vec<String>,
    pub images: Vec<Image>,
}

/// Why a manifest was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest of {len} bytes is over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("manifest is not valid: {0}")]
    Parse(String),
    #[error("manifest problems: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

/// A name safe to show and to use as a file name: no path, no traversal.
fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'))
}

impl Manifest {
    /// Parse and validate a manifest payload (the signed text).
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        if text.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge {
                len: text.len(),
                max: MAX_MANIFEST_BYTES,
            });
        }
        let de = &mut serde_json::Deserializer::from_str(text);
        let m: Manifest = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ManifestError::Parse(format!("{path}: {}", e.into_inner()))
        })?;
        let problems = m.problems();
        if problems.is_empty() {
            Ok(m)
        } else {
            Err(ManifestError::Invalid(problems))
        }
    }

    /// Every problem at once.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.kind != "manifest" {
            p.push(format!("type is {:?}, expected \"manifest\"", self.kind));
        }
        if self.version.is_empty()
            || self.version.len() > 64
            || self.version.chars().any(char::is_control)
        {
            p.push(format!(
                "version {:?} must be 1–64 printable characters",
                self.version
            ));
        }
        if self.compatible.is_empty() {
            p.push("compatible lists no board".into());
        }
        for b in &self.compatible {
            if !safe_name(b) {
                p.push(format!("compatible board {b:?} is not a plain name"));
            }
        }
        if self.images.is_empty() {
            p.push("images is empty".into());
        }
        let mut seen = Vec::new();
        for (i, img) in self.images.iter().enumerate() {
            let at = format!("images[{i}]");
            if !safe_name(&img.name) {
                p.push(format!(
                    "{at}.name {:?} is not a plain file name (no '/', no '..')",
                    img.name
                ));
            }
            if seen.contains(&img.component) {
                p.push(format!("{at}: a second {} image", img.component));
            }
            seen.push(img.component);
            if img.length == 0 || img.length > MAX_IMAGE_BYTES {
                p.push(format!(
                    "{at}.length {} is outside 1..={MAX_IMAGE_BYTES}",
                    img.length
                ));
            }
            if !img.chunk_size.is_power_of_two()
                || !(MIN_CHUNK..=MAX_CHUNK).contains(&img.chunk_size)
            {
                p.push(format!(
                    "{at}.chunk_size {} is not a power of two in {MIN_CHUNK}..={MAX_CHUNK}",
                    img.chunk_size
                ));
            } else {
                let want = img.length.div_ceil(u64::from(img.chunk_size));
                if img.chunks.len() as u64 != want {
                    p.push(format!(
                        "{at}.chunks has {} hashes, length {} needs {want}",
                        img.chunks.len(),
                        img.length
                    ));
                }
            }
        }
        p
    }

    /// Total payload bytes after the header.
    pub fn payload_len(&self) -> u64 {
        self.images.iter().map(|i| i.length).sum()
    }

    pub fn to_payload(&self) -> String {
        // Serialising a struct of strings, numbers and vectors cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            kind: "manifest".into(),
            version: "1.2.0".into(),
            security_counter: 3,
            issued: 1_790_000_000,
            compatible: vec!["rk3588".into()],
            images: vec![Image {
                name: "app.img".into(),
                component: Component::App,
                length: 3 << 20,
                sha256: Digest([1; 32]),
                chunk_size: DEFAULT_CHUNK,
                chunks: vec![Digest([2; 32]); 3],
            }],
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(Manifest::parse(&m.to_payload()).unwrap(), m);
    }

    #[test]
    fn every_problem_is_reported() {
        let mut m = sample();
        m.kind = "announcement".into();
        m.compatible = vec!["../etc".into()];
        m.images[0].name = "../../boot/zImage".into();
        m.images[0].chunks.pop();
        m.images.push(m.images[0].clone());
        let Err(ManifestError::Invalid(p)) = Manifest::parse(&m.to_payload()) else {
            panic!("accepted");
        };
        let all = p.join("\n");
        for needle in [
            "type is",
            "not a plain name",
            "not a plain file name",
            "a second app image",
            "needs 3",
        ] {
            assert!(all.contains(needle), "{needle} missing from {all}");
        }
    }

    #[test]
    fn unknown_fields_and_bad_digests_are_refused() {
        let text = sample()
            .to_payload()
            .replace("\"issued\"", "\"extra\":1,\"issued\"");
        let e = Manifest::parse(&text).unwrap_err().to_string();
        assert!(e.contains("unknown field `extra`"), "{e}");
        let text = sample()
            .to_payload()
            .replace(&"01".repeat(32), &"0G".repeat(32));
        assert!(Manifest::parse(&text).is_err());
    }
}
