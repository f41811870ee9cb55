//! camera-app on a flash that fills up and then fails, with the broker up
//! and down (issue 16): the real binary plays a door scene in a loop with
//! its outbox on the power-cut filesystem, publishing through a proxy that
//! takes the broker away. The flash is made full (no space left: every
//! write refused with `ENOSPC`, as on UBIFS, where even an overwrite needs
//! new space, and `statfs` says 0 bytes free), then failing (`EIO`), then
//! healthy again. The camera must stay up, say so in health, store what it
//! held once the flash recovers, and in the end every record it produced
//! must have reached the broker or still be in the outbox, with sequence
//! numbers that have no gap and are never reused.
#![allow(clippy::unwrap_used)]

#[path = "../../common/mqtt.rs"]
mod mqtt;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use camera_app::outbox::{Outbox, OutboxLimits};
use mqtt::{Message, Proxy, Subscriber, broker, unique};
use powercut::PowerCutFs;
use serde_json::Value;

/// Outcomes are awaited this long at least (the MQTT fixtures' deadline;
/// see `tests/common/mod.rs`).
fn patient(limit: Duration) -> Duration {
    limit.max(Duration::from_secs(60))
}

/// The repository (where `Cargo.lock` is).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `../shared` beside the repository, or `$CAMERA_SHARED_DIR`.
fn shared_dir() -> PathBuf {
    let dir = std::env::var_os("CAMERA_SHARED_DIR")
        .map_or_else(|| workspace_root().join("../shared"), PathBuf::from);
    assert!(
        dir.join("models/fastestdet/FastestDet.onnx").is_file() && dir.join("images").is_dir(),
        "test data not found at {}: check out the shared data directory beside the \
         repository (../shared with models/, images/), or set CAMERA_SHARED_DIR",
        dir.display()
    );
    dir
}

/// The camera-app binary the workspace's tests built: beside this test's
/// directory (`target/<profile>/deps/..`), or `$CAMERA_APP_BIN`.
fn camera_app_bin() -> PathBuf {
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

/// Kills the camera if the test fails while it runs.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    fn assert_up(&mut self, when: &str, log: &Path) {
        if let Some(status) = self.0.try_wait().unwrap() {
            panic!(
                "camera-app exited ({status}) {when}; its log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

/// The `storage` object of each health report seen from `from` on.
fn storage_reports(sub: &Subscriber, health: &str, from: usize) -> Vec<Value> {
    sub.messages()
        .iter()
        .skip(from)
        .filter(|m| m.topic == health)
        .map(|m| m.json()["storage"].clone())
        .collect()
}

/// Records by (type, seq), each seen with one payload only.
fn by_position(
    records: impl IntoIterator<Item = Value>,
    origin: &str,
) -> BTreeMap<(String, u64), Value> {
    let mut out = BTreeMap::new();
    for r in records {
        let key = (
            r["type"].as_str().unwrap().to_string(),
            r["seq"].as_u64().unwrap(),
        );
        if let Some(before) = out.insert(key.clone(), r.clone()) {
            assert_eq!(before, r, "{origin}: {key:?} reused for another record");
        }
    }
    out
}

#[test]
fn a_full_or_failing_flash_never_stops_the_camera_or_loses_a_record() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("flash");
    std::fs::create_dir(&mnt).unwrap();
    let flash = PowerCutFs::mount(&mnt).unwrap_or_else(|e| panic!("{e}"));
    let data = mnt.join("data");
    std::fs::create_dir(&data).unwrap();

    let scenario =
        scenegen::Scenario::load(&workspace_root().join("tests/scenes/crowd.toml")).unwrap();
    let scene = tmp.path().join("scene");
    scenegen::render(&scenario, &shared_dir().join("images"), &scene).unwrap();

    let proxy = Proxy::start(broker());
    let camera = unique("flashcam");
    let prefix = format!("stores/test/cameras/{camera}");
    let health = format!("{prefix}/health");
    let sub = Subscriber::start(&format!("{prefix}/#"));
    let records = tmp.path().join("records.jsonl");
    let config = tmp.path().join("camera.toml");
    std::fs::write(
        &config,
        format!(
            "analytics = {:?}\n\n[camera]\nid = {camera:?}\n\n\
             [source]\nkind = \"files\"\npath = {:?}\nfps = 10\nrepeat = true\n\n\
             [detector]\nmodels_dir = {:?}\n\n\
             [output]\npath = {records:?}\noutbox = {:?}\n\n\
             [link]\nbroker = \"127.0.0.1\"\nport = {}\nstore = \"test\"\nhealth_interval_s = 1\n\
             drain_s = 2\nreconnect_min_ms = 50\nreconnect_max_s = 1\n",
            scene.join("analytics.toml"),
            scene.join("frames"),
            shared_dir().join("models"),
            data.join("outbox.redb"),
            proxy.addr.port(),
        ),
    )
    .unwrap();
    let log = tmp.path().join("camera.log");
    let mut cam = Running(
        Command::new(camera_app_bin())
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let limit = Duration::from_secs(60);
    let wait_storage = |what: &str, from: usize, ok: &dyn Fn(&Value) -> bool| -> Value {
        sub.wait_for(what, limit, |seen| {
            seen.iter()
                .skip(from)
                .any(|m| m.topic == health && ok(&m.json()["storage"]))
        });
        storage_reports(&sub, &health, from)
            .into_iter()
            .find(|s| ok(s))
            .unwrap()
    };
    let published = |sub: &Subscriber| -> usize {
        sub.messages()
            .iter()
            .filter(|m| m.topic.ends_with("/events") || m.topic.ends_with("/bins"))
            .count()
    };

    // 1. A healthy flash: events reach the broker.
    sub.wait_for("the first events", limit, |seen| {
        seen.iter().filter(|m| m.topic.ends_with("/events")).count() >= 3
    });
    wait_storage("a healthy storage report", 0, &|s| s["state"] == "ok");

    // 2. The flash is full, the broker up.
    let t_fault = Instant::now();
    let from = sub.messages().len();
    flash.set_capacity(Some(flash.used()));
    flash.fail_writes(Some(libc::ENOSPC));
    let full = wait_storage("storage failing with ENOSPC", from, &|s| {
        s["state"] == "failing"
            && s["error"]
                .as_str()
                .is_some_and(|e| e.contains("No space left"))
            && s["held_records"].as_u64() > Some(0)
    });
    assert_eq!(full["data_free_bytes"], 0, "{full}");
    let held_full = full["held_records"].as_u64().unwrap();
    cam.assert_up("on a full flash", &log);

    // 3. Full, and the broker down.
    proxy.down();
    std::thread::sleep(Duration::from_secs(3));
    cam.assert_up("on a full flash with the broker down", &log);

    // 4. Failing (EIO), the broker still down.
    flash.set_capacity(None);
    flash.fail_writes(Some(libc::EIO));
    std::thread::sleep(Duration::from_secs(3));
    cam.assert_up("on a failing flash with the broker down", &log);

    // 5. Failing, the broker back: health tells the new error, more held.
    let from = sub.messages().len();
    proxy.up();
    let failing = wait_storage("storage failing with EIO", from, &|s| {
        s["state"] == "failing"
            && s["error"]
                .as_str()
                .is_some_and(|e| e.contains("Input/output error"))
    });
    let held_failing = failing["held_records"].as_u64().unwrap();
    assert!(
        held_failing > held_full,
        "records held in memory while the flash fails: {held_full} then {held_failing}"
    );
    cam.assert_up("on a failing flash", &log);
    let fault_s = t_fault.elapsed().as_secs_f64();

    // 6. The flash recovers: held records are stored, then new ones.
    let t_recover = Instant::now();
    let from = sub.messages().len();
    flash.fail_writes(None);
    let recovered = wait_storage("storage ok again", from, &|s| {
        s["state"] == "ok" && s["held_records"] == 0
    });
    let recover_s = t_recover.elapsed().as_secs_f64();
    assert_eq!(recovered["dropped_records"], 0, "{recovered}");
    assert!(recovered["failures"].as_u64() > Some(0), "{recovered}");
    let before = published(&sub);
    sub.wait_for("records published after the recovery", limit, |seen| {
        seen.iter()
            .filter(|m| m.topic.ends_with("/events") || m.topic.ends_with("/bins"))
            .count()
            >= before + 3
    });
    let peak_held = storage_reports(&sub, &health, 0)
        .iter()
        .filter_map(|s| s["held_records"].as_u64())
        .max()
        .unwrap();

    // Stop as systemd would; whatever was not sent stays in the outbox.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(cam.0.id() as i32, libc::SIGTERM) };
    let stopped = Instant::now();
    while cam.0.try_wait().unwrap().is_none() {
        assert!(
            stopped.elapsed() < limit,
            "camera-app did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = cam.0.wait().unwrap();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success(),
        "camera-app: {status}; its log:\n{log_text}"
    );

    // Every record produced, once per position, sent or still stored.
    let produced: Vec<Value> = std::fs::read_to_string(&records)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &Value| r.get("seq").is_some())
        .collect();
    let produced = by_position(produced, "records written");
    let sent = by_position(
        sub.messages()
            .iter()
            .filter(|m| !m.topic.ends_with("/health") && !m.topic.ends_with("/status"))
            .filter(|m| m.topic.starts_with(&prefix) && m.json().get("seq").is_some())
            .map(Message::json),
        "broker",
    );
    let outbox = Outbox::open(&data.join("outbox.redb"), OutboxLimits::default()).unwrap();
    let kept = by_position(
        outbox
            .pending(usize::MAX)
            .unwrap()
            .iter()
            .map(|e| serde_json::from_slice::<Value>(&e.payload).unwrap()),
        "outbox",
    );
    let mut next: BTreeMap<&str, u64> = BTreeMap::new();
    for ((kind, seq), record) in &produced {
        let expected = next.entry(kind).or_insert(0);
        assert_eq!(*seq, *expected, "{kind} numbering has a gap");
        *expected += 1;
        let found = sent
            .get(&(kind.clone(), *seq))
            .or(kept.get(&(kind.clone(), *seq)));
        assert_eq!(found, Some(record), "{kind} {seq} lost");
    }
    for key in sent.keys().chain(kept.keys()) {
        assert!(
            produced.contains_key(key),
            "{key:?} sent but never produced"
        );
    }
    let unsent = produced.keys().filter(|k| !sent.contains_key(*k)).count();
    eprintln!(
        "flash faults: {} records produced ({:?}), {} sent, {} left in the outbox at stop \
         ({unsent} of them unsent); faults for {fault_s:.1} s (full, then failing; broker down \
         for 6 s); held in memory at most {peak_held}; storage ok again {recover_s:.1} s \
         after the flash recovered; failures counted {}; none dropped",
        produced.len(),
        next,
        sent.len(),
        kept.len(),
        recovered["failures"],
    );
}
