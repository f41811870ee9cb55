//! End to end over a real MQTT broker (embedded rumqttd, or mosquitto via
//! `CAMERA_TEST_BROKER`) and a local HTTP server: `ota-vendor rollout`
//! (the library's `rollout::run`) announces a signed campaign, simulated
//! cameras (file-backed slots, the real U-Boot environment codec, the real
//! agent) download, install, reboot through the slot logic, and commit or
//! roll back on their health.
#![allow(clippy::unwrap_used)]

// The simulated camera of ota's own tests.
#[path = "../../../ota/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Camera;
use ota::agent::{self, AgentConfig, Broker, Exit, Platform};
use ota::announce::{Announcement, seed};
use ota::boot::Slot;
use ota::journal::{Report, State};
use ota::manifest::Component;
use ota::rollout::{self, Campaign, Outcome, Plan};
use ota::trust::{Role, sign};
use ota_e2e::{FileServer, broker, unique};
use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};

struct Sim {
    booted: BTreeMap<Component, Slot>,
    /// Free bytes on the data partition, when the test sets them.
    free: Option<Arc<AtomicU64>>,
}

impl Platform for Sim {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }
    fn booted(&self, c: Component) -> Option<Slot> {
        self.booted.get(&c).copied()
    }
    fn reboot(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn free_bytes(&self, _dir: &std::path::Path) -> Option<u64> {
        self.free.as_ref().map(|f| f.load(Ordering::SeqCst))
    }
}

fn config(cam: &Camera, id: &str, store: &str, announce: &str, url_prefix: &str) -> AgentConfig {
    let root = cam.path(&format!("root-{id}.json"));
    std::fs::write(
        &root,
        serde_json::to_string(&cam.keys.signed_root()).unwrap(),
    )
    .unwrap();
    let addr = broker();
    AgentConfig {
        camera_id: id.into(),
        store_id: store.into(),
        topic_prefix: "stores/{store}/cameras/{camera}".into(),
        announce_topic: announce.into(),
        roots_topic: format!("{announce}/roots"),
        broker: Broker {
            host: addr.ip().to_string(),
            port: addr.port(),
            username: None,
            password: None,
            tls: None,
        },
        state_dir: cam.path(&format!("state-{id}")),
        root_file: root,
        provisioning: None,
        version: "1.0.0".into(),
        allowed_urls: vec![url_prefix.into()],
        max_bundle_bytes: 64 << 20,
        reserve_bytes: 32 << 20,
        utc_offset_min: 0,
        health_deadline_s: 3,
        run_dir: cam.path("run"),
        layout: cam.layout.clone(),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Boot {
    Normal,
    /// A slot on trial never gets as far as starting the agent (a kernel
    /// panic or hang): the board resets and U-Boot counts down its tries.
    NewSlotBroken,
    /// A bootloader without the contract: always boots slot A.
    IgnoresContract,
}

/// Run a camera's agent, rebooting through the slot logic as `mode` says,
/// until `stop`; returns the camera and how often it rebooted.
fn spawn_camera(
    mut cam: Camera,
    cfg: AgentConfig,
    stop: Arc<AtomicBool>,
    mode: Boot,
    free: Option<Arc<AtomicU64>>,
) -> std::thread::JoinHandle<(Camera, u32)> {
    std::thread::spawn(move || {
        let mut reboots = 0;
        loop {
            let mut p = Sim {
                booted: cam.layout.booted.clone(),
                free: free.clone(),
            };
            match agent::run(&cfg, &mut p, &stop).unwrap() {
                Exit::Stopped => return (cam, reboots),
                Exit::Rebooting => {
                    reboots += 1;
                    if mode == Boot::IgnoresContract {
                        continue;
                    }
                    let mut booted = cam.boot();
                    while mode == Boot::NewSlotBroken
                        && booted[&Component::Rootfs]
                            != Slot::parse(&cam.vars()["ota_rootfs_active"]).unwrap()
                    {
                        reboots += 1;
                        booted = cam.boot();
                    }
                }
            }
        }
    })
}

/// Collect every report published under the store.
fn collect_reports(store: &str) -> Arc<Mutex<Vec<Report>>> {
    collect(&format!("stores/{store}/cameras/+/ota/report"))
}

/// Collect every message on `filter` that parses as a `T`.
fn collect<T: serde::de::DeserializeOwned + Send + 'static>(filter: &str) -> Arc<Mutex<Vec<T>>> {
    let addr = broker();
    let mut opts = MqttOptions::new(unique("watch"), addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut conn) = Client::new(opts, 64);
    client.subscribe(filter, QoS::AtLeastOnce).unwrap();
    let out: Arc<Mutex<Vec<T>>> = Arc::default();
    let o = out.clone();
    std::thread::spawn(move || {
        let _keep = client;
        for ev in conn.iter() {
            if let Ok(Event::Incoming(Incoming::Publish(p))) = ev
                && let Ok(r) = serde_json::from_slice::<T>(&p.payload)
            {
                o.lock().unwrap().push(r);
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    out
}

/// Publish rising health reports for a camera, as camera-app does.
fn publish_health(store: &str, camera: &str, stop: Arc<AtomicBool>) {
    let addr = broker();
    let opts = MqttOptions::new(unique("health"), addr.ip().to_string(), addr.port());
    let (client, mut conn) = Client::new(opts, 16);
    std::thread::spawn(move || for _ in conn.iter() {});
    let topic = format!("stores/{store}/cameras/{camera}/health");
    std::thread::spawn(move || {
        let mut frames = 0;
        while !stop.load(Ordering::Relaxed) {
            frames += 50;
            let body = format!(r#"{{"schema":1,"frames_processed":{frames},"config_version":1}}"#);
            let _ = client.publish(topic.clone(), QoS::AtMostOnce, false, body);
            std::thread::sleep(Duration::from_millis(250));
        }
    });
}

fn states(reports: &[Report], camera: &str) -> Vec<State> {
    let mut v: Vec<State> = reports
        .iter()
        .filter(|r| r.camera == camera)
        .map(|r| r.state)
        .collect();
    // Redelivery after a reconnect may repeat one (same camera, campaign
    // and state: receivers deduplicate on that key).
    v.dedup();
    v
}

/// Camera ids whose wave seeds are below and at/above 50.
fn ids_around(percent: u8) -> (String, String) {
    let low = (0..)
        .map(|i| format!("cam-{i}"))
        .find(|c| seed(c) < percent)
        .unwrap();
    let high = (0..)
        .map(|i| format!("cam-{i}"))
        .find(|c| seed(c) >= percent)
        .unwrap();
    (low, high)
}

/// Publish a retained message at QoS 1 and wait for the broker's PUBACK.
fn publish_retained(topic: &str, body: Vec<u8>) {
    let addr = broker();
    let opts = MqttOptions::new(unique("publish"), addr.ip().to_string(), addr.port());
    let (client, mut conn) = Client::new(opts, 16);
    client.publish(topic, QoS::AtLeastOnce, true, body).unwrap();
    for ev in conn.iter() {
        if let Ok(Event::Incoming(Incoming::PubAck(_))) = ev {
            break;
        }
    }
    let _ = client.disconnect();
}

/// Publish a signed announcement, retained, as `ota-vendor rollout` would.
fn announce_now(topic: &str, a: &Announcement, key: &ota::trust::SecretKey) {
    let signed = sign(a.to_payload(), Role::Announcement, &[key]);
    publish_retained(topic, serde_json::to_vec(&signed).unwrap());
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One test's world: its own store and announce topic (so tests can share
/// a broker), a file server with the signed 2.0.0 bundle, the vendor's
/// keys, a collector of every report, and the flag that stops cameras.
struct Fleet {
    store: String,
    topic: String,
    server: FileServer,
    vendor: Camera,
    bundle: PathBuf,
    url: String,
    reports: Arc<Mutex<Vec<Report>>>,
    stop: Arc<AtomicBool>,
}

impl Fleet {
    fn new() -> Fleet {
        let store = unique("store");
        let server = FileServer::start();
        let vendor = Camera::new();
        let bundle = vendor.bundle("2.0.0.bundle", "2.0.0", 5, Component::Rootfs);
        let url = server.add("/bundles/2.0.0.bundle", bundle.clone());
        Fleet {
            topic: format!("ota/announce/{store}"),
            reports: collect_reports(&store),
            store,
            server,
            vendor,
            bundle,
            url,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A camera of this fleet, with the agent's configuration.
    fn camera(&self, id: &str) -> (Camera, AgentConfig) {
        let cam = Camera::new();
        let prefix = format!("http://{}/bundles/", self.server.addr);
        let cfg = config(&cam, id, &self.store, &self.topic, &prefix);
        (cam, cfg)
    }

    fn spawn(
        &self,
        cam: Camera,
        cfg: &AgentConfig,
        mode: Boot,
    ) -> std::thread::JoinHandle<(Camera, u32)> {
        spawn_camera(cam, cfg.clone(), self.stop.clone(), mode, None)
    }

    /// A camera whose data partition has `free` bytes free.
    fn spawn_with_free(
        &self,
        cam: Camera,
        cfg: &AgentConfig,
        free: &Arc<AtomicU64>,
    ) -> std::thread::JoinHandle<(Camera, u32)> {
        self.stop.store(false, Ordering::Relaxed);
        spawn_camera(
            cam,
            cfg.clone(),
            self.stop.clone(),
            NORMAL,
            Some(free.clone()),
        )
    }

    fn healthy(&self, camera: &str) {
        publish_health(&self.store, camera, self.stop.clone());
    }

    /// The campaign for the bundle, before the rollout sets seq and wave.
    fn announcement(&self, campaign: &str) -> Announcement {
        let now = now_s();
        Announcement {
            kind: "announcement".into(),
            campaign: campaign.into(),
            seq: 1,
            issued: now,
            expires: now + 3600,
            url: self.url.clone(),
            version: "2.0.0".into(),
            security_counter: 5,
            size: std::fs::metadata(&self.bundle).unwrap().len(),
            boards: vec!["rk3588".into()],
            percent: 100,
            window: None,
            halted: false,
        }
    }

    /// Run `ota-vendor rollout` to its end; returns the outcome and its lines.
    fn rollout(
        &self,
        campaign: &str,
        waves: Vec<u8>,
        failure_threshold: f64,
    ) -> (Outcome, Vec<String>) {
        let c = Campaign {
            host: broker().ip().to_string(),
            port: broker().port(),
            announce_topic: self.topic.clone(),
            report_topic: format!("stores/{}/cameras/+/ota/report", self.store),
            announcement: self.announcement(campaign),
            plan: Plan {
                waves,
                failure_threshold,
                wave_time_s: 60,
            },
            key: &self.vendor.keys.announcer,
            validity_s: 3600,
        };
        let mut lines = Vec::new();
        let outcome = rollout::run(&c, &AtomicBool::new(false), &mut |l| {
            lines.push(l.to_string());
        })
        .unwrap();
        (outcome, lines)
    }

    /// Publish a signed announcement, retained, as `ota-vendor rollout` would.
    fn announce(&self, a: &Announcement) {
        announce_now(&self.topic, a, &self.vendor.keys.announcer);
    }

    /// Stop the cameras (after letting the last messages land).
    fn stop(&self, settle: Duration) {
        std::thread::sleep(settle);
        self.stop.store(true, Ordering::Relaxed);
    }

    fn reports(&self) -> Vec<Report> {
        self.reports.lock().unwrap().clone()
    }

    fn states(&self, camera: &str) -> Vec<State> {
        states(&self.reports(), camera)
    }

    fn downloads(&self) -> u64 {
        self.server.requests.load(Ordering::SeqCst)
    }
}

const NORMAL: Boot = Boot::Normal;

#[test]
fn a_failed_wave_rolls_back_and_halts_the_rollout_before_the_next_wave() {
    let fleet = Fleet::new();
    let (id_a, id_b) = ids_around(50);
    let (cam_a, cfg_a) = fleet.camera(&id_a);
    let (cam_b, cfg_b) = fleet.camera(&id_b);
    let b_before = cam_b.snapshot();
    let a_running = cam_a.layout.slots[&Component::Rootfs][0].clone();
    let a_running_hash = common::sha256_prefix(&a_running, common::SLOT_BYTES);
    // Camera A publishes no health: its new slot never proves itself.
    let ta = fleet.spawn(cam_a, &cfg_a, NORMAL);
    let tb = fleet.spawn(cam_b, &cfg_b, NORMAL);
    let (outcome, lines) = fleet.rollout("spring", vec![50, 100], 0.2);
    fleet.stop(Duration::from_secs(1));
    let (cam_a, reboots_a) = ta.join().unwrap();
    let (cam_b, reboots_b) = tb.join().unwrap();
    let reports = fleet.reports();
    println!("rollout: {lines:#?}\nreports: {reports:#?}");

    let Outcome::Halted { reason, stats } = &outcome else {
        panic!("rollout not halted: {outcome:?}");
    };
    assert!(reason.contains("1 of 1 cameras failed"), "{reason}");
    assert_eq!((stats[0].started, stats[0].failed), (1, 1), "{stats:?}");
    assert_eq!(stats[1].started, 0, "{stats:?}");

    // Camera A: installed, rebooted into B, failed health, rolled back,
    // each state reported once.
    assert_eq!(
        fleet.states(&id_a),
        vec![
            State::Downloading,
            State::Installing,
            State::Rebooting,
            State::RolledBack
        ]
    );
    let rb = reports
        .iter()
        .find(|r| r.camera == id_a && r.state == State::RolledBack)
        .unwrap();
    assert!(
        rb.reason.as_deref().unwrap_or("").contains("health"),
        "{rb:?}"
    );
    assert_eq!(reboots_a, 2, "into the new slot, and back");
    let vars = cam_a.vars();
    assert_eq!(vars["ota_rootfs_active"], "A");
    assert!(!vars.contains_key("ota_rootfs_pending"), "{vars:?}");
    assert_eq!(cam_a.layout.booted[&Component::Rootfs], Slot::A);
    assert_eq!(
        common::sha256_prefix(&a_running, common::SLOT_BYTES),
        a_running_hash
    );

    // Camera B: outside wave 1, then held by the halt. Nothing happened.
    assert!(fleet.states(&id_b).is_empty(), "{reports:?}");
    assert_eq!(reboots_b, 0);
    assert_eq!(cam_b.snapshot(), b_before);
    let jb = ota::journal::Journal::load(&agent::journal_path(&cfg_b))
        .unwrap()
        .unwrap();
    assert!(jb.job.is_none());
    assert!(
        jb.seen.get("spring").copied().unwrap_or(0) >= 2,
        "B saw the halt: {:?}",
        jb.seen
    );
    assert_eq!(fleet.downloads(), 1, "only camera A downloaded");
}

#[test]
fn a_healthy_camera_commits_and_stays_on_the_new_slot() {
    let fleet = Fleet::new();
    let (cam, cfg) = fleet.camera("cam-ok");
    fleet.healthy("cam-ok");
    let t = fleet.spawn(cam, &cfg, NORMAL);
    let (outcome, _) = fleet.rollout("summer", vec![100], 0.2);
    fleet.stop(Duration::from_millis(500));
    let (mut cam, reboots) = t.join().unwrap();
    assert!(matches!(outcome, Outcome::Done(_)), "{outcome:?}");
    assert_eq!(
        fleet.states("cam-ok"),
        vec![
            State::Downloading,
            State::Installing,
            State::Rebooting,
            State::Committed
        ]
    );
    assert_eq!(reboots, 1);
    let vars = cam.vars();
    assert_eq!(vars["ota_rootfs_active"], "B");
    assert_eq!(vars["ota_counter"], "5");
    // The last good slots are also recorded outside the environment: with
    // both copies lost, the committed slot still boots.
    let last_good = agent::last_good(&cfg, Component::Rootfs);
    assert_eq!(last_good, Some(Slot::B));
    assert_eq!(
        ota::boot::select(None, Component::Rootfs, last_good).slot,
        Slot::B
    );
    // Ten quick power cycles: the committed slot stays.
    for _ in 0..10 {
        assert_eq!(cam.boot()[&Component::Rootfs], Slot::B);
    }
    let img = fleet.vendor.path("2.0.0.bundle.img");
    let len = std::fs::metadata(&img).unwrap().len();
    assert_eq!(
        common::sha256_prefix(&cam.layout.slots[&Component::Rootfs][1], len),
        common::sha256_prefix(&img, len)
    );
}

#[test]
fn a_new_slot_that_never_comes_up_falls_back_after_its_tries_and_is_reported() {
    let fleet = Fleet::new();
    let (cam, cfg) = fleet.camera("cam-panic");
    fleet.healthy("cam-panic");
    let t = fleet.spawn(cam, &cfg, Boot::NewSlotBroken);
    let (outcome, _) = fleet.rollout("autumn", vec![100], 0.5);
    fleet.stop(Duration::from_millis(300));
    let (cam, reboots) = t.join().unwrap();
    assert!(matches!(outcome, Outcome::Halted { .. }), "{outcome:?}");
    assert_eq!(
        fleet.states("cam-panic"),
        vec![
            State::Downloading,
            State::Installing,
            State::Rebooting,
            State::RolledBack
        ]
    );
    let reports = fleet.reports();
    let rb = reports
        .iter()
        .find(|r| r.state == State::RolledBack)
        .unwrap();
    assert!(
        rb.reason.as_deref().unwrap_or("").contains("boot-failed:B"),
        "{rb:?}"
    );
    // One reboot into the trial, three tries used, one more falls back.
    assert_eq!(reboots, 1 + ota::boot::TRIES);
    assert_eq!(cam.layout.booted[&Component::Rootfs], Slot::A);
    // The result was reported, then cleared.
    assert!(!cam.vars().contains_key("ota_rootfs_result"));
}

#[test]
fn a_bootloader_that_ignores_the_contract_does_not_cause_a_reboot_loop() {
    let fleet = Fleet::new();
    let (cam, cfg) = fleet.camera("cam-loop");
    let t = fleet.spawn(cam, &cfg, Boot::IgnoresContract);
    let (outcome, _) = fleet.rollout("winter", vec![100], 0.5);
    fleet.stop(Duration::from_millis(300));
    let (cam, reboots) = t.join().unwrap();
    assert!(matches!(outcome, Outcome::Halted { .. }), "{outcome:?}");
    let reports = fleet.reports();
    let rb = reports
        .iter()
        .find(|r| r.state == State::RolledBack)
        .unwrap();
    assert!(
        rb.reason
            .as_deref()
            .unwrap_or("")
            .contains("did not start the new slot"),
        "{rb:?}"
    );
    assert_eq!(
        reboots, 4,
        "the first reboot and three more, then it gives up"
    );
    let vars = cam.vars();
    assert!(!vars.contains_key("ota_rootfs_pending"), "{vars:?}");
}

#[test]
fn outside_the_maintenance_window_it_downloads_but_does_not_install() {
    let fleet = Fleet::new();
    let (cam, cfg) = fleet.camera("cam-window");
    let before = cam.snapshot();
    let t = fleet.spawn(cam, &cfg, NORMAL);
    let mut a = fleet.announcement("night");
    // A one-hour window starting in two hours (UTC; the store is at +0).
    let start = ((now_s() / 60 + 120) % 1440) as u16;
    a.window = Some(ota::announce::Window {
        start_min: start,
        end_min: (start + 60) % 1440,
    });
    fleet.announce(&a);
    wait_for("the download", 10, || fleet.downloads() == 1);
    fleet.stop(Duration::from_secs(2));
    let (cam, reboots) = t.join().unwrap();
    let j = ota::journal::Journal::load(&agent::journal_path(&cfg))
        .unwrap()
        .unwrap();
    assert_eq!(j.phase, ota::journal::Phase::Downloaded);
    assert_eq!(reboots, 0);
    assert_eq!(cam.snapshot(), before, "installed outside the window");
    assert_eq!(fleet.states("cam-window"), vec![State::Downloading]);
}

#[test]
fn a_halt_during_the_download_cancels_it_and_is_reported_once() {
    let fleet = Fleet::new();
    fleet.server.throttle(60_000);
    let (cam, cfg) = fleet.camera("cam-halt");
    let before = cam.snapshot();
    let t = fleet.spawn(cam, &cfg, NORMAL);
    let mut a = fleet.announcement("halted");
    fleet.announce(&a);
    wait_for("the download to start", 10, || fleet.downloads() == 1);
    std::thread::sleep(Duration::from_millis(500));
    a.seq = 2;
    a.halted = true;
    fleet.announce(&a);
    wait_for("the rejected report", 15, || {
        fleet.states("cam-halt").contains(&State::Rejected)
    });
    fleet.stop(Duration::from_millis(500));
    let (cam, reboots) = t.join().unwrap();
    assert_eq!(
        fleet.states("cam-halt"),
        vec![State::Downloading, State::Rejected]
    );
    let reports = fleet.reports();
    let rej = reports.iter().find(|r| r.state == State::Rejected).unwrap();
    assert!(
        rej.reason.as_deref().unwrap_or("").contains("halted"),
        "{rej:?}"
    );
    assert_eq!(reboots, 0);
    assert_eq!(cam.snapshot(), before);
    assert!(
        !agent::download_path(&cfg).exists(),
        "the partial download is removed"
    );
}

#[test]
fn broker_tls_files_are_checked_at_start_and_named() {
    let cam = Camera::new();
    let mut cfg = config(
        &cam,
        "cam-tls",
        "s",
        "ota/announce/tls",
        "http://127.0.0.1/",
    );
    let missing = cam.path("no-such-ca.pem");
    cfg.broker.tls = Some(ota::tls::TlsConfig {
        ca_file: missing,
        cert_file: None,
        key_file: None,
    });
    let mut p = Sim {
        booted: BTreeMap::new(),
        free: None,
    };
    let e = agent::run(&cfg, &mut p, &AtomicBool::new(false)).unwrap_err();
    assert!(e.to_string().contains("no-such-ca.pem"), "{e}");
}

#[test]
fn a_bundle_the_server_does_not_have_is_rejected_once_without_retrying() {
    let fleet = Fleet::new();
    let (cam, cfg) = fleet.camera("cam-404");
    let before = cam.snapshot();
    let t = fleet.spawn(cam, &cfg, NORMAL);
    let mut a = fleet.announcement("missing");
    a.url = format!("http://{}/bundles/nope.bundle", fleet.server.addr);
    fleet.announce(&a);
    wait_for("the rejected report", 10, || {
        fleet.states("cam-404").contains(&State::Rejected)
    });
    fleet.stop(Duration::from_millis(500));
    let (cam, _) = t.join().unwrap();
    assert_eq!(
        fleet.states("cam-404"),
        vec![State::Downloading, State::Rejected]
    );
    let reports = fleet.reports();
    let r = reports.iter().find(|r| r.state == State::Rejected).unwrap();
    assert!(r.reason.as_deref().unwrap_or("").contains("404"), "{r:?}");
    assert_eq!(fleet.downloads(), 1, "a 404 is not retried");
    assert_eq!(cam.snapshot(), before);
}

/// Publish a chain of roots, retained, as `ota-vendor publish-roots` does.
fn publish_roots(topic: &str, chain: &[ota::trust::Signed]) {
    publish_retained(topic, serde_json::to_vec(chain).unwrap());
}

#[test]
fn a_rotated_root_published_on_mqtt_replaces_the_announcement_key() {
    let fleet = Fleet::new();
    let (cam, cfg) = fleet.camera("cam-rotate");
    let t = fleet.spawn(cam, &cfg, NORMAL);
    // Root v2: the old announcement key is replaced by a new one.
    let new_key = ota::trust::SecretKey::from_bytes(&[42; 32]);
    let old_id = fleet.vendor.keys.announcer.key_id();
    let mut v2 = fleet.vendor.keys.root_doc().next();
    v2.issued = now_s() - 60;
    v2.signers.retain(|d| d.key.key_id() != old_id);
    v2.signers.push(ota::trust::Delegation {
        key: new_key.public_key(),
        roles: vec![Role::Announcement],
        expires: now_s() + 86_400,
        note: None,
    });
    let signed_v2 = sign(v2.to_payload(), Role::Root, &[&fleet.vendor.keys.root]);
    publish_roots(&cfg.roots_topic, &[signed_v2]);
    let journal = agent::journal_path(&cfg);
    wait_for("the rotation", 10, || {
        ota::journal::Journal::load(&journal)
            .ok()
            .flatten()
            .is_some_and(|j| j.trust.root().version == 2)
    });
    // The old key no longer starts anything.
    let mut a = fleet.announcement("rotated");
    fleet.announce(&a);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        fleet.downloads(),
        0,
        "an announcement by the dropped key was taken"
    );
    // The new one does.
    a.seq = 2;
    announce_now(&fleet.topic, &a, &new_key);
    wait_for("the download", 10, || fleet.downloads() == 1);
    fleet.stop(Duration::from_millis(300));
    let _ = t.join().unwrap();
    assert_eq!(
        fleet.states("cam-rotate").first(),
        Some(&State::Downloading)
    );
}

/// The data partition is shared with camera-app's outbox: a download
/// starts only when the rest of the bundle fits above the reserve, says
/// why it waits, and stops (its partial file removed) when the free space
/// falls below the reserve while it runs; with room again, the update
/// goes through.
#[test]
fn a_download_waits_for_space_and_never_starves_the_outbox() {
    let fleet = Fleet::new();
    let (cam, cfg) = fleet.camera("cam-space");
    let size = std::fs::metadata(&fleet.bundle).unwrap().len();
    let progress: Arc<Mutex<Vec<serde_json::Value>>> = collect(&format!(
        "stores/{}/cameras/cam-space/ota/progress",
        fleet.store
    ));
    let waiting = || {
        progress
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p["state"] == "waiting_for_space")
            .cloned()
            .collect::<Vec<_>>()
    };

    // 1. The rest of the bundle does not fit above the reserve: no
    //    request is sent, and the camera says what it needs.
    let free = Arc::new(AtomicU64::new(cfg.reserve_bytes + size - 1));
    let t = fleet.spawn_with_free(cam, &cfg, &free);
    fleet.announce(&fleet.announcement("space"));
    wait_for("waiting for space", 10, || !waiting().is_empty());
    let w = waiting()[0].clone();
    assert_eq!(w["needed_bytes"], size, "{w}");
    assert_eq!(w["free_bytes"], cfg.reserve_bytes + size - 1, "{w}");
    assert_eq!(w["campaign"], "space", "{w}");
    fleet.stop(Duration::from_millis(300));
    let (cam, _) = t.join().unwrap();
    assert_eq!(fleet.downloads(), 0, "downloaded without room for it");

    // 2. Room enough, but the outbox grows while the bundle downloads:
    //    the download stops and its partial file goes.
    free.store(cfg.reserve_bytes + size, Ordering::SeqCst);
    fleet.server.throttle(40_000);
    let t = fleet.spawn_with_free(cam, &cfg, &free);
    wait_for("the download to start", 10, || fleet.downloads() == 1);
    wait_for("part of the bundle on flash", 10, || {
        std::fs::metadata(agent::download_path(&cfg)).is_ok_and(|m| m.len() > 0)
    });
    free.store(cfg.reserve_bytes - 1, Ordering::SeqCst);
    wait_for("the download to stop for space", 10, || {
        waiting().len() >= 2
    });
    fleet.stop(Duration::from_millis(300));
    let (cam, reboots) = t.join().unwrap();
    assert_eq!(reboots, 0);
    assert!(
        !agent::download_path(&cfg).exists(),
        "the partial download is kept while the outbox is short of room"
    );
    let w = waiting().last().cloned().unwrap();
    assert_eq!(w["needed_bytes"], size, "{w}");
    assert_eq!(w["free_bytes"], cfg.reserve_bytes - 1, "{w}");
    assert!(
        !fleet.states("cam-space").contains(&State::Rejected),
        "waiting for space failed the campaign: {:?}",
        fleet.states("cam-space")
    );

    // 3. Room again: the update goes through.
    free.store(u64::MAX, Ordering::SeqCst);
    fleet.server.throttle(0);
    let t = fleet.spawn_with_free(cam, &cfg, &free);
    fleet.healthy("cam-space");
    wait_for("the commit", 30, || {
        fleet.states("cam-space").contains(&State::Committed)
    });
    fleet.stop(Duration::from_millis(300));
    let (cam, _) = t.join().unwrap();
    assert_eq!(cam.vars()["ota_rootfs_active"], "B");
    assert_eq!(
        fleet.states("cam-space"),
        vec![
            State::Downloading,
            State::Installing,
            State::Rebooting,
            State::Committed
        ]
    );
}
