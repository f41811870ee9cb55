//! `config/set`: an installer sends a whole analytics configuration with a
//! version; the camera answers on `config/result`. The decision is pure:
//! size, syntax, types, unknown fields, version order and geometry are all
//! checked before anything changes, and every problem is reported.

use serde::Serialize;

use crate::config::{AnalyticsConfig, RawConfig};

/// Largest `config/set` payload read; anything longer is refused unread.
pub const DEFAULT_MAX_CONFIG_BYTES: usize = 64 * 1024;

/// A configuration that passed every check.
#[derive(Debug, Clone)]
pub struct Desired {
    pub version: u64,
    pub config: AnalyticsConfig,
    /// The payload as received (JSON), kept and published as the state.
    pub body: String,
}

/// The answer on `config/result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigResult {
    /// The version asked for, when the payload could be read that far.
    pub version: Option<u64>,
    pub accepted: bool,
    /// The version running after this request.
    pub running_version: u64,
    /// Every reason for a rejection, with its path in the document.
    pub problems: Vec<String>,
}

impl ConfigResult {
    pub fn accepted(version: u64) -> Self {
        Self {
            version: Some(version),
            accepted: true,
            running_version: version,
            problems: Vec::new(),
        }
    }

    fn rejected(version: Option<u64>, running_version: u64, problems: Vec<String>) -> Self {
        Self {
            version,
            accepted: false,
            running_version,
            problems,
        }
    }
}

/// Check a `config/set` payload against the running version.
pub fn decide(
    running_version: u64,
    payload: &[u8],
    max_bytes: usize,
) -> Result<Desired, ConfigResult> {
    let reject = |version, problems| ConfigResult::rejected(version, running_version, problems);
    if payload.len() > max_bytes {
        return Err(reject(
            None,
            vec![format!(
                "payload: {} bytes, more than the limit of {max_bytes}",
                payload.len()
            )],
        ));
    }
    let Ok(text) = std::str::from_utf8(payload) else {
        return Err(reject(None, vec!["payload: not UTF-8 text".into()]));
    };
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Err(reject(None, vec![format!("payload: {e}")])),
    };
    if !value.is_object() {
        return Err(reject(None, vec!["payload: not a JSON object".into()]));
    }
    // The version first, so that even a config with type errors gets an
    // answer naming the version it was for.
    let version = value.get("version").and_then(serde_json::Value::as_u64);
    // The typed config is read from the text itself, not from `value`: a
    // JSON object keeps the last of two equal keys, so `{"version": 1,
    // "version": 9}` would pass as 9 while a consumer reading the first
    // sees 1. Read field by field, a key given twice is refused, as the OTA
    // manifest refuses it.
    let de = &mut serde_json::Deserializer::from_str(text);
    let raw: RawConfig = match serde_path_to_error::deserialize(de) {
        Ok(raw) => raw,
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let problem = if path == "." || path.is_empty() {
                format!("payload: {inner}")
            } else {
                format!("{path}: {inner}")
            };
            return Err(reject(version, vec![problem]));
        }
    };
    let version = raw.version;
    let mut problems = Vec::new();
    if version <= running_version {
        problems.push(format!(
            "version: {version} is not newer than the running version {running_version}"
        ));
    }
    match AnalyticsConfig::validate(raw) {
        Ok(config) if problems.is_empty() => Ok(Desired {
            version,
            config,
            body: text.to_string(),
        }),
        Ok(_) => Err(reject(Some(version), problems)),
        Err(rejected) => {
            problems.extend(rejected.problems);
            Err(reject(Some(version), problems))
        }
    }
}

/// A TOML analytics file as the JSON document `config/state` publishes.
pub fn toml_to_json(text: &str) -> Result<String, String> {
    let value: serde_json::Value = toml::from_str(text).map_err(|e| e.message().to_string())?;
    serde_json::to_string(&value).map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"version": 7, "bin_minutes": 1,
        "lines": [{"name": "door", "points": [[0.1, 0.5], [0.9, 0.5]], "in_side": "left"}]}"#;

    fn reasons(running: u64, payload: &str) -> Vec<String> {
        let r = decide(running, payload.as_bytes(), DEFAULT_MAX_CONFIG_BYTES).unwrap_err();
        assert!(!r.accepted);
        assert_eq!(r.running_version, running);
        assert!(!r.problems.is_empty());
        r.problems
    }

    #[test]
    fn a_valid_newer_config_is_accepted() {
        let d = decide(6, GOOD.as_bytes(), DEFAULT_MAX_CONFIG_BYTES).unwrap();
        assert_eq!(d.version, 7);
        assert_eq!(d.config.lines.len(), 1);
        assert_eq!(d.body, GOOD);
    }

    /// The malformed `config/set` payloads of the acceptance list, each with
    /// the words its reason must contain.
    pub(crate) fn malformed() -> Vec<(String, &'static str)> {
        let line = r#"{"name": "door", "points": [[0.1, 0.5], [0.9, 0.5]], "in_side": "left"}"#;
        let cfg = |rest: &str| format!(r#"{{"version": 9{rest}}}"#);
        vec![
            ("not json".into(), "payload"),
            ("".into(), "payload"),
            ("[1, 2]".into(), "payload"),
            (r#"{"version": 9"#.into(), "EOF"),
            (cfg(r#", "bin_minutes": "five""#), "bin_minutes"),
            (r#"{"version": "9"}"#.into(), "version"),
            (r#"{"version": -1}"#.into(), "version"),
            (r#"{"bin_minutes": 1}"#.into(), "missing field `version`"),
            (cfg(r#", "colour": "red""#), "unknown field `colour`"),
            (
                cfg(&format!(
                    r#", "lines": [{}]"#,
                    line.replace("in_side", "inside")
                )),
                "lines[0]",
            ),
            (cfg(r#", "lines": {"name": "door"}"#), "lines"),
            (cfg(r#", "bin_minutes": 7"#), "bin_minutes"),
            (
                cfg(&format!(
                    r#", "lines": [{}]"#,
                    line.replace("0.9, 0.5", "1.9, 0.5")
                )),
                "lines[0].points",
            ),
            (
                cfg(&format!(
                    r#", "lines": [{}]"#,
                    line.replace("[0.9, 0.5]", "[0.1, 0.5]")
                )),
                "lines[0].points",
            ),
            (
                cfg(&format!(r#", "lines": [{line}, {line}]"#)),
                "lines[1].name",
            ),
            (
                cfg(r#", "zones": [{"name": "z", "polygon": [[0.1, 0.1], [0.2, 0.2]]}]"#),
                "zones[0]",
            ),
            (
                cfg(r#", "zones": [{"name": "z", "polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}]"#),
                "zones[0]",
            ),
            (
                cfg(
                    r#", "lines": [{"name": "", "points": [[0.1, 0.5], [0.9, 0.5]], "in_side": "left"}]"#,
                ),
                "lines[0].name",
            ),
            (cfg(r#", "passers_by": "nowhere""#), "passers_by"),
            (
                cfg(
                    r#", "lines": [{"name": "d", "points": [[0.1, NaN], [0.9, 0.5]], "in_side": "left"}]"#,
                ),
                "payload",
            ),
            (
                cfg(&format!(
                    r#", "lines": [{}]"#,
                    line.replace("\"left\"", "\"up\"")
                )),
                "lines[0].in_side",
            ),
            // A key given twice, at the top and inside a line.
            (
                r#"{"version": 9, "bin_minutes": 1, "version": 10}"#.into(),
                "duplicate field `version`",
            ),
            (
                cfg(&format!(
                    r#", "lines": [{}]"#,
                    line.replace("\"name\": \"door\"", "\"name\": \"door\", \"name\": \"d2\"")
                )),
                "lines[0]: duplicate field `name`",
            ),
            // Names that differ from another only by a control character.
            (
                cfg(&format!(
                    r#", "lines": [{line}, {}]"#,
                    line.replace("door", "door\\u0000")
                )),
                "lines[1].name: \"door\\0\" has a control character",
            ),
            (
                cfg(&format!(
                    r#", "lines": [{}]"#,
                    line.replace("door", "do\\u001bor")
                )),
                "lines[0].name",
            ),
        ]
    }

    #[test]
    fn malformed_payloads_are_rejected_with_their_reason() {
        let cases = malformed();
        assert!(cases.len() >= 20);
        for (payload, why) in &cases {
            let problems = reasons(3, payload);
            assert!(
                problems.iter().any(|p| p.contains(why)),
                "{payload}: expected a reason naming {why:?}, got {problems:?}"
            );
        }
    }

    #[test]
    fn stale_and_equal_versions_are_rejected() {
        assert!(reasons(7, GOOD)[0].contains("not newer than the running version 7"));
        assert!(reasons(8, GOOD)[0].contains("version: 7"));
        let r = decide(8, GOOD.as_bytes(), DEFAULT_MAX_CONFIG_BYTES).unwrap_err();
        assert_eq!(r.version, Some(7));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let p = reasons(
            9,
            r#"{"version": 9, "bin_minutes": 7,
                "lines": [{"name": "d", "points": [[0.1, 0.5], [1.5, 0.5]], "in_side": "left"}]}"#,
        );
        assert_eq!(p.len(), 3, "{p:?}");
    }

    #[test]
    fn an_oversized_payload_is_refused_unread() {
        let big = vec![b'{'; 10 * 1024 * 1024];
        let r = decide(0, &big, DEFAULT_MAX_CONFIG_BYTES).unwrap_err();
        assert_eq!(r.version, None);
        assert!(r.problems[0].contains("10485760 bytes"), "{:?}", r.problems);
    }

    #[test]
    fn toml_files_become_the_same_json() {
        let j = toml_to_json("version = 3\nbin_minutes = 5\n").unwrap();
        let d = decide(2, j.as_bytes(), DEFAULT_MAX_CONFIG_BYTES).unwrap();
        assert_eq!(d.version, 3);
    }
}
