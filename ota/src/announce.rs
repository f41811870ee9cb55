//! Campaign announcements and the agent's decision on them (pure).
//!
//! A rollout publishes a signed announcement (retained, on MQTT): which
//! bundle, for which boards, the security counter it carries, what
//! percentage of the fleet is in the current wave, an optional maintenance
//! window, and whether the campaign is halted. Each republication raises
//! `seq`; cameras ignore anything not newer than what they have seen, so
//! a replayed, duplicated or reordered announcement changes nothing.
//!
//! Waves as Bottlerocket does them: each camera has a fixed seed from its
//! id, so the same cameras go first in every campaign (canaries stay
//! canaries), and raising the percentage only ever adds cameras.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Largest announcement accepted (checked before parsing).
pub const MAX_ANNOUNCEMENT_BYTES: usize = 16 * 1024;

/// A maintenance window in the store's local time, `HH:MM-HH:MM`; it may
/// wrap midnight (`22:00-04:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_min: u16,
    pub end_min: u16,
}

impl Window {
    pub fn parse(s: &str) -> Option<Window> {
        let (a, b) = s.split_once('-')?;
        let hm = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            // `then`, not `then_some`: the product must only be computed
            // once h < 24, or "2000:00" overflows u16 (a panic in debug
            // builds; found by tests/fuzz.rs).
            (h < 24 && m < 60).then(|| h * 60 + m)
        };
        let w = Window {
            start_min: hm(a)?,
            end_min: hm(b)?,
        };
        (w.start_min != w.end_min).then_some(w)
    }

    /// Is unix time `now` inside the window, for a store at `utc_offset_min`?
    pub fn contains(&self, now: u64, utc_offset_min: i32) -> bool {
        // In i128: `now as i64 + offset` overflowed (a panic in debug
        // builds, a wrong minute in release) for clocks past i64::MAX,
        // which a signed time can carry (found by tests/fuzz.rs).
        let local = i128::from(now) + i128::from(utc_offset_min) * 60;
        let minute = (local.rem_euclid(86_400) / 60) as u16;
        if self.start_min < self.end_min {
            (self.start_min..self.end_min).contains(&minute)
        } else {
            minute >= self.start_min || minute < self.end_min
        }
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!(
            "{:02}:{:02}-{:02}:{:02}",
            self.start_min / 60,
            self.start_min % 60,
            self.end_min / 60,
            self.end_min % 60
        ))
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Window::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("window {s:?} is not HH:MM-HH:MM")))
    }
}

/// The signed payload of an announcement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Announcement {
    /// Always "announcement".
    #[serde(rename = "type")]
    pub kind: String,
    pub campaign: String,
    /// Raised at each republication of the campaign.
    pub seq: u64,
    /// Unix seconds when signed, and when it stops being valid.
    pub issued: u64,
    pub expires: u64,
    /// The bundle: where, and what its signed manifest must say.
    pub url: String,
    pub version: String,
    pub security_counter: u64,
    pub size: u64,
    pub boards: Vec<String>,
    /// Share of the fleet in the current wave, 0–100.
    pub percent: u8,
    #[serde(default)]
    pub window: Option<Window>,
    /// A halted campaign starts nothing new.
    #[serde(default)]
    pub halted: bool,
}

impl Announcement {
    pub fn parse(text: &str) -> Result<Announcement, String> {
        if text.len() > MAX_ANNOUNCEMENT_BYTES {
            return Err(format!(
                "announcement of {} bytes is over the {MAX_ANNOUNCEMENT_BYTES}-byte limit",
                text.len()
            ));
        }
        let de = &mut serde_json::Deserializer::from_str(text);
        let a: Announcement = serde_path_to_error::deserialize(de)
            .map_err(|e| format!("announcement {}: {}", e.path(), e.inner()))?;
        let mut p = Vec::new();
        if a.kind != "announcement" {
            p.push(format!("type is {:?}, expected \"announcement\"", a.kind));
        }
        if a.campaign.is_empty()
            || a.campaign.len() > 64
            || !a
                .campaign
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            p.push(format!("campaign {:?} is not a plain name", a.campaign));
        }
        if a.percent > 100 {
            p.push(format!("percent {} is over 100", a.percent));
        }
        if a.expires <= a.issued {
            p.push("expires is not after issued".into());
        }
        if a.size == 0 {
            p.push("size is 0".into());
        }
        if p.is_empty() {
            Ok(a)
        } else {
            Err(p.join("; "))
        }
    }

    pub fn to_payload(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// This camera's fixed place in every rollout, 0–99: it is in a wave of
/// `percent` when its seed is below it.
pub fn seed(camera_id: &str) -> u8 {
    let h = Sha256::digest(format!("retail-camera-ota/wave\0{camera_id}").as_bytes());
    (u16::from_be_bytes([h[0], h[1]]) % 100) as u8
}

/// What the camera knows when an announcement arrives.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub camera_id: &'a str,
    pub board: &'a str,
    /// The installed security counter and running version.
    pub counter: u64,
    pub version: &'a str,
    /// Highest `seq` seen for this campaign.
    pub last_seq: Option<u64>,
    /// URL prefixes bundles may come from.
    pub allowed_urls: &'a [String],
    pub max_size: u64,
    pub utc_offset_min: i32,
    /// Trusted time (see `trust::Trust::effective_now`).
    pub now: u64,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to do and nothing to say (a duplicate, an update already
    /// installed, another board's campaign).
    Ignore(String),
    /// Refused, reported as `rejected` with the reason.
    Reject(String),
    /// Valid, but not now: not in the wave yet, outside the window, or
    /// halted. The camera waits for the next announcement.
    Hold(String),
    /// Download now; install when `in_window`.
    Go { in_window: bool },
}

pub fn decide(a: &Announcement, cx: &Context<'_>) -> Verdict {
    if let Some(last) = cx.last_seq
        && a.seq <= last
    {
        return Verdict::Ignore(format!(
            "campaign {} seq {} is not newer than {last} (duplicate or replay)",
            a.campaign, a.seq
        ));
    }
    if !a.boards.iter().any(|b| b == cx.board) {
        return Verdict::Ignore(format!("campaign {} is not for a {}", a.campaign, cx.board));
    }
    if a.expires <= cx.now {
        return Verdict::Reject(format!(
            "announcement expired at {} (trusted time {})",
            a.expires, cx.now
        ));
    }
    if !cx
        .allowed_urls
        .iter()
        .any(|p| a.url.starts_with(p.as_str()))
    {
        return Verdict::Reject(format!(
            "bundle URL {} is not under an allowed prefix {:?}",
            a.url, cx.allowed_urls
        ));
    }
    if a.size > cx.max_size {
        return Verdict::Reject(format!(
            "bundle of {} bytes is over this camera's {}-byte limit",
            a.size, cx.max_size
        ));
    }
    if a.security_counter < cx.counter {
        return Verdict::Reject(format!(
            "security counter {} is below the installed {}",
            a.security_counter, cx.counter
        ));
    }
    if a.version == cx.version && a.security_counter == cx.counter {
        return Verdict::Ignore(format!("version {} is already installed", a.version));
    }
    if a.halted {
        return Verdict::Hold(format!("campaign {} is halted", a.campaign));
    }
    let s = seed(cx.camera_id);
    if s >= a.percent {
        return Verdict::Hold(format!(
            "not in the current wave ({}% of the fleet; this camera's seed is {s})",
            a.percent
        ));
    }
    let in_window = a
        .window
        .is_none_or(|w| w.contains(cx.now, cx.utc_offset_min));
    Verdict::Go { in_window }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ann() -> Announcement {
        Announcement {
            kind: "announcement".into(),
            campaign: "spring".into(),
            seq: 1,
            issued: 1_000,
            expires: 100_000,
            url: "https://updates.example/b/1.bundle".into(),
            version: "1.1.0".into(),
            security_counter: 2,
            size: 1 << 20,
            boards: vec!["rk3588".into()],
            percent: 100,
            window: None,
            halted: false,
        }
    }

    fn cx<'a>(allowed: &'a [String]) -> Context<'a> {
        Context {
            camera_id: "cam-1",
            board: "rk3588",
            counter: 1,
            version: "1.0.0",
            last_seq: None,
            allowed_urls: allowed,
            max_size: 1 << 30,
            utc_offset_min: 60,
            now: 5_000,
        }
    }

    #[test]
    fn decisions() {
        let allowed = vec!["https://updates.example/".to_string()];
        let c = cx(&allowed);
        assert_eq!(decide(&ann(), &c), Verdict::Go { in_window: true });
        let mut a = ann();
        a.url = "https://evil.example/x".into();
        assert!(matches!(decide(&a, &c), Verdict::Reject(r) if r.contains("allowed prefix")));
        let mut a = ann();
        a.expires = 4_000;
        assert!(matches!(decide(&a, &c), Verdict::Reject(r) if r.contains("expired")));
        let mut a = ann();
        a.security_counter = 0;
        assert!(matches!(decide(&a, &c), Verdict::Reject(r) if r.contains("below")));
        let mut a = ann();
        a.boards = vec!["rv1106".into()];
        assert!(matches!(decide(&a, &c), Verdict::Ignore(_)));
        let mut a = ann();
        a.halted = true;
        assert!(matches!(decide(&a, &c), Verdict::Hold(r) if r.contains("halted")));
        let mut c2 = cx(&allowed);
        c2.last_seq = Some(1);
        assert!(matches!(decide(&ann(), &c2), Verdict::Ignore(r) if r.contains("not newer")));
        let mut a = ann();
        a.percent = seed("cam-1");
        assert!(matches!(decide(&a, &c), Verdict::Hold(r) if r.contains("wave")));
        a.percent += 1;
        assert_eq!(decide(&a, &c), Verdict::Go { in_window: true });
    }

    #[test]
    fn seeds_spread_over_the_fleet() {
        let below_10 = (0..10_000)
            .filter(|i| seed(&format!("cam-{i}")) < 10)
            .count();
        assert!((800..1200).contains(&below_10), "{below_10}");
    }

    #[test]
    fn windows_wrap_midnight_and_respect_the_offset() {
        let w = Window::parse("22:00-04:00").unwrap();
        // 23:30 UTC at offset 0 is inside; at +120 it is 01:30, inside too.
        let t = 86_400 * 10 + 23 * 3600 + 1800;
        assert!(w.contains(t, 0));
        assert!(w.contains(t, 120));
        // 12:00 local is outside.
        assert!(!w.contains(86_400 * 10 + 12 * 3600, 0));
        assert!(Window::parse("25:00-01:00").is_none());
        assert!(Window::parse("01:00-01:00").is_none());
        let mut a = ann();
        a.window = Window::parse("02:00-05:00");
        let text = a.to_payload();
        assert!(text.contains("\"window\":\"02:00-05:00\""), "{text}");
        assert_eq!(Announcement::parse(&text).unwrap().window, a.window);
    }

    #[test]
    fn windows_take_any_clock_and_offset() {
        // Regressions (tests/fuzz.rs): these overflowed in `parse` and
        // in `contains`.
        assert!(Window::parse("2422:00-04:00").is_none());
        assert!(Window::parse("01:00-65535:65535").is_none());
        let w = Window::parse("22:00-04:00").unwrap();
        for now in [0, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX] {
            for off in [i32::MIN, -720, 0, 840, i32::MAX] {
                let _ = w.contains(now, off);
            }
        }
        // 23:00 on the last whole day a u64 clock reaches, and noon.
        let day = (u64::MAX / 86_400 - 1) * 86_400;
        assert!(w.contains(day + 23 * 3600, 0));
        assert!(!w.contains(day + 12 * 3600, 0));
        assert!(w.contains(day + 12 * 3600, 11 * 60));
    }

    #[test]
    fn bad_announcements_name_their_problem() {
        let text = ann()
            .to_payload()
            .replace("\"seq\"", "\"sneaky\":1,\"seq\"");
        assert!(Announcement::parse(&text).unwrap_err().contains("sneaky"));
        let mut a = ann();
        a.percent = 101;
        a.campaign = "../x".into();
        let e = Announcement::parse(&a.to_payload()).unwrap_err();
        assert!(e.contains("percent") && e.contains("campaign"), "{e}");
        assert!(Announcement::parse(&"x".repeat(MAX_ANNOUNCEMENT_BYTES + 1)).is_err());
    }
}
