//! Shelf reference requests over MQTT (`shelves/reference/request`) and
//! their results (`shelves/reference/result`), `docs/mqtt-api.md`.
//!
//! Pure: parsing a request payload, and the result document. The link
//! hands a parsed request to the [`Camera`](super::Camera); the frame loop
//! answers it, once accepted and then as the capture goes on.

use serde::{Deserialize, Serialize};

/// Larger request payloads are refused unread.
pub const MAX_REQUEST_BYTES: usize = 4096;
/// Longest `id` echoed back.
pub const MAX_ID_BYTES: usize = 256;

/// A request for a new shelf reference.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShelfReferenceRequest {
    /// Echoed in every result about this request.
    pub id: Option<String>,
    /// One shelf by name; `None`: every configured shelf.
    pub shelf: Option<String>,
}

/// A request payload that could not be read: why, and its `id` when that
/// much could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRefused {
    pub id: Option<String>,
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    shelf: Option<String>,
}

impl ShelfReferenceRequest {
    /// `{"shelf": "left", "id": "r-17"}`; `{}` or `{"shelf": null}` for
    /// every shelf. Unknown fields are refused (a misspelt `shelf` must not
    /// turn into a request for all of them).
    pub fn parse(payload: &[u8]) -> Result<Self, RequestRefused> {
        let refuse = |id: Option<String>, reason: String| Err(RequestRefused { id, reason });
        if payload.len() > MAX_REQUEST_BYTES {
            return refuse(
                None,
                format!(
                    "payload of {} bytes is larger than {MAX_REQUEST_BYTES}",
                    payload.len()
                ),
            );
        }
        if payload.iter().all(u8::is_ascii_whitespace) {
            return refuse(
                None,
                "empty payload: send {} for every shelf or {\"shelf\": \"NAME\"}".into(),
            );
        }
        let value: serde_json::Value = match serde_json::from_slice(payload) {
            Ok(v) => v,
            Err(e) => return refuse(None, format!("not JSON: {e}")),
        };
        // The id, if that much is readable, so that even a refusal finds
        // its way back to whoever asked.
        let id = value
            .get("id")
            .and_then(serde_json::Value::as_str)
            .map(str::to_string);
        if !value.is_object() {
            return refuse(
                id,
                "expected a JSON object such as {\"shelf\": \"NAME\"}".into(),
            );
        }
        let raw: Raw = match serde_path_to_error::deserialize(&value) {
            Ok(r) => r,
            Err(e) => {
                let path = e.path().to_string();
                let at = if path == "." {
                    String::new()
                } else {
                    format!("{path}: ")
                };
                return refuse(id, format!("{at}{}", e.into_inner()));
            }
        };
        if raw.id.as_ref().is_some_and(|i| i.len() > MAX_ID_BYTES) {
            return refuse(None, format!("id: longer than {MAX_ID_BYTES} bytes"));
        }
        if raw.shelf.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return refuse(
                raw.id,
                "shelf: is empty (null or absent means every shelf)".into(),
            );
        }
        Ok(Self {
            id: raw.id,
            shelf: raw.shelf,
        })
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReferenceState {
    /// The camera will take the reference over its next clean frames.
    Accepted,
    /// Someone or something is in the way; the camera retries by itself
    /// until `reference_timeout_s`.
    Waiting,
    /// Taken, in force and stored.
    Taken,
    /// Refused or given up; `reason` says why.
    Failed,
}

/// One message on `shelves/reference/result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShelfReferenceReply {
    /// The request's `id`, `null` without one (and for a request made on
    /// the command line).
    pub id: Option<String>,
    /// `false` only for `failed`.
    pub ok: bool,
    pub state: ReferenceState,
    /// The shelves the request covers (empty when it names none that
    /// exists, or could not be read).
    pub shelves: Vec<String>,
    /// Why it waits or failed; `null` otherwise.
    pub reason: Option<String>,
    /// The analytics configuration the references are taken for.
    pub config_version: u64,
}

impl ShelfReferenceReply {
    pub fn new(
        id: Option<String>,
        state: ReferenceState,
        shelves: Vec<String>,
        reason: Option<String>,
        config_version: u64,
    ) -> Self {
        Self {
            id,
            ok: state != ReferenceState::Failed,
            state,
            shelves,
            reason,
            config_version,
        }
    }

    /// A refusal before any shelf was looked at.
    pub fn failed(id: Option<String>, reason: String, config_version: u64) -> Self {
        Self::new(
            id,
            ReferenceState::Failed,
            Vec::new(),
            Some(reason),
            config_version,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ok(payload: &str) -> ShelfReferenceRequest {
        ShelfReferenceRequest::parse(payload.as_bytes())
            .unwrap_or_else(|e| panic!("{payload}: {e:?}"))
    }

    fn refused(payload: &[u8]) -> RequestRefused {
        ShelfReferenceRequest::parse(payload).expect_err("refused")
    }

    #[test]
    fn one_shelf_all_shelves_and_the_id() {
        assert_eq!(
            ok(r#"{"shelf": "left", "id": "r-1"}"#),
            ShelfReferenceRequest {
                id: Some("r-1".into()),
                shelf: Some("left".into()),
            }
        );
        assert_eq!(ok("{}"), ShelfReferenceRequest::default());
        assert_eq!(ok(r#"{"shelf": null}"#), ShelfReferenceRequest::default());
        assert_eq!(
            ok(r#" {"id": "x"} "#),
            ShelfReferenceRequest {
                id: Some("x".into()),
                shelf: None,
            }
        );
    }

    #[test]
    fn malformed_payloads_are_refused_with_the_reason() {
        for (payload, needle) in [
            (&b""[..], "empty payload"),
            (b"  \n", "empty payload"),
            (b"{\"shelf\": ", "not JSON"),
            (b"\xff\xfe", "not JSON"),
            (b"[\"left\"]", "JSON object"),
            (b"\"left\"", "JSON object"),
            (
                b"{\"shelf\": 3}",
                "shelf: invalid type: integer `3`, expected a string",
            ),
            (b"{\"shelves\": \"left\"}", "unknown field `shelves`"),
            (b"{\"shelf\": \" \"}", "shelf: is empty"),
            (b"{\"id\": 7}", "id: invalid type"),
        ] {
            let r = refused(payload);
            assert!(
                r.reason.contains(needle),
                "{:?}: {:?} lacks {needle:?}",
                String::from_utf8_lossy(payload),
                r.reason
            );
        }
    }

    #[test]
    fn a_refusal_keeps_the_id_when_it_is_readable() {
        let r = refused(br#"{"id": "r-9", "shelf": 1}"#);
        assert_eq!(r.id.as_deref(), Some("r-9"));
        let r = refused(br#"{"id": "r-9", "shelf": "left", "extra": true}"#);
        assert_eq!(r.id.as_deref(), Some("r-9"));
        assert!(r.reason.contains("extra"), "{}", r.reason);
        assert_eq!(refused(b"nope").id, None);
    }

    #[test]
    fn oversized_payloads_and_ids_are_refused() {
        let big = format!(r#"{{"shelf": "{}"}}"#, "a".repeat(MAX_REQUEST_BYTES));
        assert!(refused(big.as_bytes()).reason.contains("larger than"));
        let long_id = format!(r#"{{"id": "{}"}}"#, "i".repeat(MAX_ID_BYTES + 1));
        let r = refused(long_id.as_bytes());
        assert!(r.reason.contains("id: longer"), "{}", r.reason);
        assert_eq!(r.id, None, "a refused id is not echoed");
    }

    #[test]
    fn replies_serialise_as_documented() {
        let r = ShelfReferenceReply::new(
            Some("r-1".into()),
            ReferenceState::Waiting,
            vec!["left".into()],
            Some("1 person(s) overlap shelf left or its front zone".into()),
            3,
        );
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"id": "r-1", "ok": true, "state": "waiting",
                "shelves": ["left"],
                "reason": "1 person(s) overlap shelf left or its front zone",
                "config_version": 3})
        );
        let f = ShelfReferenceReply::failed(None, "no shelves are configured".into(), 1);
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::json!({"id": null, "ok": false, "state": "failed", "shelves": [],
                "reason": "no shelves are configured", "config_version": 1})
        );
    }
}
