//! What camctl's tests run against: a real broker (the embedded rumqttd,
//! or `$CAMERA_TEST_BROKER`, as camera-app's tests) and real camera-app
//! processes playing a generated door scene at its own pace.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const STORE: &str = "camctl-test";

/// The broker every test of this process uses.
pub fn broker() -> SocketAddr {
    camera_app::broker::for_tests(4 << 20).unwrap_or_else(|e| panic!("{e}"))
}

/// A name no other test (or earlier run against the same broker) used.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!(
        "{prefix}-{}-{t}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("CAMERA_SHARED_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"),
        PathBuf::from,
    );
    assert!(
        dir.join("models/fastestdet/FastestDet.onnx").is_file() && dir.join("images").is_dir(),
        "test data not found at {}: check out the shared data directory beside the \
         repository (../shared with models/, images/), or set CAMERA_SHARED_DIR",
        dir.display()
    );
    dir
}

/// camctl, as built for this test.
pub fn camctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_camctl"));
    let b = broker();
    c.args(["--broker", &b.to_string(), "--store", STORE]);
    c
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run camctl")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The camera-app binary the workspace's tests built: beside this test's
/// directory (`target/<profile>/deps/..`), or `$CAMERA_APP_BIN`.
pub fn camera_app_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CAMERA_APP_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("camera-app"))
        .unwrap();
    assert!(
        bin.is_file(),
        "{} not found: build it first (`cargo build -p camera-app`; `cargo test --workspace` \
         does), or set CAMERA_APP_BIN",
        bin.display()
    );
    bin
}

/// A rendered scene: its frames and truth.
pub struct Scene {
    pub dir: tempfile::TempDir,
    pub truth: scenegen::Truth,
    pub analytics: String,
}

/// Render one of the door scenes of `tests/scenes`.
pub fn scene(name: &str) -> Scene {
    let scenario =
        scenegen::Scenario::load(&scenegen::scenarios_dir().join(format!("{name}.toml"))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let truth = scenegen::render(&scenario, &shared_dir().join("images"), dir.path()).unwrap();
    let analytics = std::fs::read_to_string(dir.path().join("analytics.toml")).unwrap();
    Scene {
        dir,
        truth,
        analytics,
    }
}

/// A camera-app process playing a scene at its frame rate, publishing to
/// the test broker under [`STORE`]; killed when dropped.
pub struct Camera {
    pub id: String,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Camera {
    /// `analytics`: the analytics file's text; `repeat`: play the scene
    /// over and over.
    pub fn start(scene: &Scene, analytics: &str, repeat: bool, snapshots: bool) -> Self {
        let id = unique("cam");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("analytics.toml"), analytics).unwrap();
        let b = broker();
        let config = format!(
            r#"analytics = "{analytics}"
[camera]
id = "{id}"
[source]
kind = "files"
path = "{frames}"
fps = {fps}
realtime = true
repeat = {repeat}
[detector]
models_dir = "{models}"
[output]
outbox = "{outbox}"
[link]
broker = "{host}"
port = {port}
store = "{STORE}"
reconnect_min_ms = 50
reconnect_max_s = 1
health_interval_s = 1
[snapshot]
enabled = {snapshots}
"#,
            analytics = d.join("analytics.toml").display(),
            frames = scene.dir.path().join("frames").display(),
            fps = scene.truth.fps,
            models = shared_dir().join("models").display(),
            outbox = d.join("outbox.redb").display(),
            host = b.ip(),
            port = b.port(),
        );
        std::fs::write(d.join("camera.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("camera.log")).unwrap();
        let child = Command::new(camera_app_bin())
            .arg("run")
            .arg("--config")
            .arg(d.join("camera.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self { id, dir, child }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("camera.log")).unwrap_or_default()
    }

    /// Wait until `camctl cameras` lists this camera online with a health
    /// report whose frames started; returns camctl's JSON line for it.
    pub fn wait_until_counting(&self, limit: Duration) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            let out = run(camctl().args(["cameras", "--json", "--wait", "1.5"]));
            let line = text(&out.stdout)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["camera"] == self.id.as_str());
            if let Some(v) = line
                && v["online"] == true
                && v["fps"].as_f64().is_some_and(|f| f > 0.0)
            {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "camera {} not counting after {limit:?}; camctl: {}\ncamera log:\n{}",
                self.id,
                text(&out.stderr),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "camera still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `camctl serve` on a free loopback port (read from its first line);
/// killed when dropped.
pub struct Serve {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Serve {
    pub fn start() -> Self {
        use std::io::BufRead as _;
        let mut child = camctl()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http://"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Self { child, addr }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
