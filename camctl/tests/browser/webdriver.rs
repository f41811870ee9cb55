//! The few W3C WebDriver commands the browser test uses, over HTTP to a
//! local chromedriver (<https://www.w3.org/TR/webdriver2/>). A client
//! crate (fantoccini) brought 46 crates into every cold build, most of them
//! Unicode tables for URLs the test never parses; these calls are plain
//! JSON over loopback.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

/// The key W3C WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A session with a WebDriver server.
pub struct Session {
    agent: ureq::Agent,
    base: String,
}

/// An element of the page, by its WebDriver reference.
#[derive(Clone)]
pub struct Element(String);

/// Pointer input for `perform`: moves relative to an element's centre,
/// presses and releases of the left button, pauses.
pub enum Pointer {
    MoveTo {
        element: Element,
        x: f64,
        y: f64,
        duration: Duration,
    },
    Down,
    Up,
    Pause(Duration),
}

impl Session {
    /// A new session on the server at `server` (`http://127.0.0.1:PORT`)
    /// with `capabilities` as `alwaysMatch`.
    pub fn new(server: &str, capabilities: Value) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let mut s = Self {
            agent,
            base: server.trim_end_matches('/').to_string(),
        };
        let v = s.call(
            "POST",
            "/session",
            Some(json!({ "capabilities": { "alwaysMatch": capabilities } })),
        );
        let id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no sessionId in {v}"))
            .to_string();
        s.base = format!("{}/session/{id}", s.base);
        s
    }

    /// One command: its `value`, or a panic naming the command and the
    /// server's error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let resp = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("DELETE", _) => self.agent.delete(&url).call(),
            (_, body) => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(serde_json::to_vec(&body.unwrap_or_else(|| json!({}))).unwrap()),
        };
        let mut resp = resp.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e} in {text:?}"));
        assert!(
            status == 200,
            "WebDriver {method} {path}: HTTP {status}: {} {}",
            v["value"]["error"],
            v["value"]["message"]
        );
        v["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` as a function body; what it returns.
    pub fn execute(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// Runs `script`, which calls its last argument with the result.
    pub fn execute_async(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/async",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// The page as a PNG.
    pub fn screenshot(&self) -> Vec<u8> {
        let v = self.call("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    }

    pub fn find(&self, css: &str) -> Element {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        Element(
            v[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("no element for {css}: {v}"))
                .to_string(),
        )
    }

    pub fn click(&self, e: &Element) {
        self.call("POST", &format!("/element/{}/click", e.0), None);
    }

    /// Width and height of an element, in CSS pixels.
    pub fn size(&self, e: &Element) -> (f64, f64) {
        let v = self.call("GET", &format!("/element/{}/rect", e.0), None);
        (v["width"].as_f64().unwrap(), v["height"].as_f64().unwrap())
    }

    /// One mouse's actions, in order, then every button released.
    pub fn perform(&self, actions: &[Pointer]) {
        let ms = |d: &Duration| u64::try_from(d.as_millis()).unwrap();
        let list: Vec<Value> = actions
            .iter()
            .map(|a| match a {
                Pointer::MoveTo {
                    element,
                    x,
                    y,
                    duration,
                } => json!({
                    "type": "pointerMove", "origin": { ELEMENT: element.0 },
                    // Whole pixels: chromedriver refuses fractions.
                    "x": x.round() as i64, "y": y.round() as i64, "duration": ms(duration),
                }),
                Pointer::Down => json!({ "type": "pointerDown", "button": 0 }),
                Pointer::Up => json!({ "type": "pointerUp", "button": 0 }),
                Pointer::Pause(d) => json!({ "type": "pause", "duration": ms(d) }),
            })
            .collect();
        self.call(
            "POST",
            "/actions",
            Some(json!({ "actions": [{
                "type": "pointer", "id": "mouse",
                "parameters": { "pointerType": "mouse" }, "actions": list,
            }] })),
        );
        self.call("DELETE", "/actions", None);
    }

    pub fn set_window_size(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    /// Ends the session (the browser quits).
    pub fn close(self) {
        self.call("DELETE", "", None);
    }
}
