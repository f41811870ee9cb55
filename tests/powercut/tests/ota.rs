//! The OTA agent under power cuts at every step of an update.
//!
//! A camera whose rootfs slots (A and B, 1 MiB each), both copies of the
//! U-Boot environment and the agent's state directory (journal and
//! download area) all live on the power-cut filesystem runs the real agent
//! against an embedded MQTT broker and a local HTTP server. An uncut run
//! counts the mutating requests N of a whole update (announcement to
//! committed, or to rolled back without health); then, for every k, a
//! fresh camera runs the same update with the tripwire armed at request
//! k. After the cut the power comes back, the camera "reboots" through the
//! real slot logic (`boot::select` on what survived of the environment)
//! and the agent runs again until the campaign ends. At every k the
//! camera must boot a slot holding a complete good image (the old or the
//! new one), and the journal and the reports on the broker must show
//! exactly one final state.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ota::agent::{self, AgentConfig, Broker, Exit, Platform};
use ota::announce::Announcement;
use ota::boot::{self, Slot};
use ota::bundle::{self, Release};
use ota::env::Vars;
use ota::install::Layout;
use ota::journal::{Journal, Report, State};
use ota::manifest::Component;
use ota::slots::{DeviceError, EnvStore};
use ota::trust::{Delegation, Role, Root, SecretKey, Signed, sign};
use powercut::{Mounted, PowerCutFs};
use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};
use sha2::{Digest, Sha256};

const SLOT_BYTES: u64 = 1 << 20;
const IMAGE_BYTES: u64 = 300_000;
const CHUNK: u32 = 64 << 10;
const ENV_BYTES: usize = 8192;
const C: Component = Component::Rootfs;
/// Cameras updated at once (each on its own mount): most of a run is
/// waiting for the broker and the health reports.
const WORKERS: usize = 6;
/// One camera's update, cuts and reboots included, must end within this.
const RUN_LIMIT: Duration = Duration::from_secs(40);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------
// The network: an embedded broker, a file server, health and reports.

fn broker() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| camera_app::broker::start(0, 1 << 20).expect("embedded broker"))
}

fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn mqtt(name: &str) -> (Client, rumqttc::Connection) {
    let addr = broker();
    let mut opts = MqttOptions::new(unique(name), addr.ip().to_string(), addr.port());
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(1 << 20, 1 << 20);
    Client::new(opts, 256)
}

/// Serves one file over plain HTTP/1.1 (whole bodies, no Range).
fn serve_file(file: PathBuf) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let body = Arc::new(std::fs::read(&file).unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let body = body.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(s.try_clone().unwrap());
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                }
                let mut s = s;
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(&body);
            });
        }
    });
    format!("http://{addr}/bundles/")
}

/// Every report published under `stores/+/cameras/+/ota/report`.
fn collect_reports() -> Arc<Mutex<Vec<Report>>> {
    let (client, mut conn) = mqtt("watch");
    client
        .subscribe("stores/+/cameras/+/ota/report", QoS::AtLeastOnce)
        .unwrap();
    let out: Arc<Mutex<Vec<Report>>> = Arc::default();
    let o = out.clone();
    let subscribed = Arc::new(AtomicBool::new(false));
    let s = subscribed.clone();
    std::thread::spawn(move || {
        let _keep = client;
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Incoming::SubAck(_))) => s.store(true, Ordering::SeqCst),
                Ok(Event::Incoming(Incoming::Publish(p))) => {
                    if let Ok(r) = serde_json::from_slice::<Report>(&p.payload) {
                        o.lock().unwrap().push(r);
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !subscribed.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "report watcher not subscribed");
        std::thread::sleep(Duration::from_millis(10));
    }
    out
}

/// Rising health reports, as camera-app publishes them, for every camera
/// (health topic) in the set, every 100 ms.
fn publish_health() -> Arc<Mutex<HashSet<String>>> {
    let topics: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (client, mut conn) = mqtt("health");
    std::thread::spawn(move || {
        for ev in conn.iter() {
            if ev.is_err() {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    let t = topics.clone();
    std::thread::spawn(move || {
        let mut frames = 0u64;
        loop {
            frames += 50;
            let body = format!(r#"{{"schema":1,"frames_processed":{frames},"config_version":1}}"#);
            let list: Vec<String> = t.lock().unwrap().iter().cloned().collect();
            for topic in list {
                let _ = client.try_publish(topic, QoS::AtMostOnce, false, body.clone());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    topics
}

// ---------------------------------------------------------------------
// The vendor: keys, images, bundle, announcements.

struct Vendor {
    _dir: tempfile::TempDir,
    root: Signed,
    announcer: SecretKey,
    old_image: Vec<u8>,
    old_sha: [u8; 32],
    new_sha: [u8; 32],
    url_prefix: String,
    url: String,
    bundle_len: u64,
}

fn random_bytes(len: u64, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut v = vec![0u8; len as usize];
    rng.fill(&mut v);
    v
}

impl Vendor {
    fn new() -> Vendor {
        let dir = tempfile::tempdir().unwrap();
        let t = now();
        let root_key = SecretKey::from_bytes(&[1; 32]);
        let signer = SecretKey::from_bytes(&[2; 32]);
        let announcer = SecretKey::from_bytes(&[3; 32]);
        let doc = Root::new_v1(
            vec![root_key.public_key()],
            1,
            vec![
                Delegation {
                    key: signer.public_key(),
                    roles: vec![Role::Manifest],
                    expires: t + 365 * 86_400,
                    note: None,
                },
                Delegation {
                    key: announcer.public_key(),
                    roles: vec![Role::Announcement],
                    expires: t + 365 * 86_400,
                    note: None,
                },
            ],
            t + 3650 * 86_400,
            t - 86_400,
        )
        .unwrap();
        let root = sign(doc.to_payload(), Role::Root, &[&root_key]);
        let old_image = random_bytes(SLOT_BYTES, 1);
        let new_image = random_bytes(IMAGE_BYTES, 2);
        let img = dir.path().join("2.0.0.img");
        std::fs::write(&img, &new_image).unwrap();
        let out = dir.path().join("2.0.0.bundle");
        bundle::create(
            &out,
            &Release {
                version: "2.0.0".into(),
                security_counter: 5,
                issued: t - 60,
                compatible: vec!["rk3588".into()],
                chunk_size: CHUNK,
            },
            &[(C, &img)],
            &[&signer],
        )
        .unwrap();
        let bundle_len = std::fs::metadata(&out).unwrap().len();
        let url_prefix = serve_file(out);
        Vendor {
            old_sha: Sha256::digest(&old_image).into(),
            new_sha: Sha256::digest(&new_image).into(),
            url: format!("{url_prefix}2.0.0.bundle"),
            url_prefix,
            bundle_len,
            old_image,
            root,
            announcer,
            _dir: dir,
        }
    }

    /// Publish a signed campaign, retained, on `topic`.
    fn announce(&self, topic: &str, campaign: &str) {
        let t = now();
        let a = Announcement {
            kind: "announcement".into(),
            campaign: campaign.into(),
            seq: 1,
            issued: t - 60,
            expires: t + 3600,
            url: self.url.clone(),
            version: "2.0.0".into(),
            security_counter: 5,
            size: self.bundle_len,
            boards: vec!["rk3588".into()],
            percent: 100,
            window: None,
            halted: false,
        };
        let signed = sign(a.to_payload(), Role::Announcement, &[&self.announcer]);
        let (client, mut conn) = mqtt("announce");
        client
            .publish(
                topic,
                QoS::AtLeastOnce,
                true,
                serde_json::to_vec(&signed).unwrap(),
            )
            .unwrap();
        for ev in conn.iter() {
            if let Ok(Event::Incoming(Incoming::PubAck(_))) = ev {
                break;
            }
            ev.unwrap();
        }
        let _ = client.disconnect();
    }
}

// ---------------------------------------------------------------------
// The camera on the power-cut filesystem.

struct Campaign {
    name: &'static str,
    store: String,
    announce_topic: String,
    healthy: bool,
    health_deadline_s: u64,
}

struct Rig {
    fs: Arc<Mounted>,
    cfg: AgentConfig,
    camera: String,
    _dir: tempfile::TempDir,
}

impl Rig {
    fn new(v: &Vendor, c: &Campaign, camera: &str) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let fs = PowerCutFs::mount(&mnt).unwrap_or_else(|e| panic!("{e}"));
        let root = fs.path().to_path_buf();
        let slot_a = root.join("rootfs-a");
        let slot_b = root.join("rootfs-b");
        // Slot A runs the old release; B holds whatever was there before.
        std::fs::write(&slot_a, &v.old_image).unwrap();
        std::fs::write(&slot_b, random_bytes(SLOT_BYTES, 3)).unwrap();
        let mut vars = Vars::new();
        vars.insert(boot::var(C, "active"), "A".into());
        vars.insert("bootcmd".into(), "run ota_boot".into());
        let env = EnvStore::create_files(&root, ENV_BYTES, &vars).unwrap();
        let root_file = root.join("root.json");
        std::fs::write(&root_file, serde_json::to_vec(&v.root).unwrap()).unwrap();
        // What the factory leaves on flash; the agent creates its state
        // directory itself on its first start.
        powercut::sync_tree(&root).unwrap();
        let addr = broker();
        let cfg = AgentConfig {
            camera_id: camera.into(),
            store_id: c.store.clone(),
            topic_prefix: "stores/{store}/cameras/{camera}".into(),
            announce_topic: c.announce_topic.clone(),
            roots_topic: format!("{}/roots", c.announce_topic),
            broker: Broker {
                host: addr.ip().to_string(),
                port: addr.port(),
                username: None,
                password: None,
                tls: None,
            },
            state_dir: root.join("ota"),
            root_file,
            provisioning: None,
            version: "1.0.0".into(),
            allowed_urls: vec![v.url_prefix.clone()],
            max_bundle_bytes: 64 << 20,
            reserve_bytes: 32 << 20,
            utc_offset_min: 0,
            health_deadline_s: c.health_deadline_s,
            run_dir: root.join("run"),
            layout: Layout {
                board: "rk3588".into(),
                env,
                slots: BTreeMap::from([(C, [slot_a, slot_b])]),
                booted: BTreeMap::new(),
            },
        };
        Rig {
            fs: Arc::new(fs),
            cfg,
            camera: camera.into(),
            _dir: dir,
        }
    }

    fn health_topic(&self) -> String {
        self.cfg.health_topic()
    }

    fn journal(&self) -> Option<Journal> {
        Journal::load(&agent::journal_path(&self.cfg))
            .ok()
            .flatten()
    }

    /// The campaign ended in the journal and its reports were delivered.
    fn done(&self, campaign: &str) -> bool {
        self.journal().is_some_and(|j| {
            j.finished.contains_key(campaign)
                && j.outbox.is_empty()
                && j.phase == ota::journal::Phase::Idle
        })
    }

    /// U-Boot: pick the rootfs slot from the environment (the default
    /// environment when both copies are bad) and write the environment
    /// if the choice changes it (the tries of a trial).
    fn boot(&self) -> Result<(Slot, bool), DeviceError> {
        let env = &self.cfg.layout.env;
        let cur = env.read_vars()?;
        let sel = boot::select(cur.as_ref().map(|c| &c.vars), C, None);
        if let (Some(cur), Some(w)) = (&cur, &sel.write) {
            env.write(Some(cur), w)?;
        }
        Ok((sel.slot, cur.is_none()))
    }
}

/// The agent's steps (`Platform::step`) with the mutating requests
/// counted when each was reached.
type Steps = Arc<Mutex<Vec<(String, u64)>>>;

/// The platform seam: the booted slot, and the op count at each step.
struct Sim {
    booted: Slot,
    fs: Arc<Mounted>,
    start: u64,
    steps: Option<Steps>,
}

impl Platform for Sim {
    fn now(&self) -> u64 {
        now()
    }
    fn booted(&self, c: Component) -> Option<Slot> {
        (c == C).then_some(self.booted)
    }
    fn reboot(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn step(&mut self, what: &str) {
        if let Some(s) = &self.steps {
            s.lock()
                .unwrap()
                .push((what.to_string(), self.fs.ops() - self.start));
        }
    }
}

/// What became of one camera's update.
#[derive(Debug, Default)]
struct Run {
    k: Option<u64>,
    /// Mutating requests from the first agent start until the campaign
    /// was seen finished (journal idle, reports acknowledged); the agent's
    /// stop after that is not counted.
    ops: Option<u64>,
    /// Times the tripwire fired (0 when k was beyond this run's requests).
    cuts: u32,
    reboots: u32,
    env_lost: bool,
    booted: Option<Slot>,
    /// The booted slot holds the old or the new image, whole.
    good_image: bool,
    finished: Option<State>,
    /// What each mutating request was (uncut run only).
    trace: Vec<String>,
    problems: Vec<String>,
}

/// Run the update on `rig` (tripwire at `k`) until the campaign ends in
/// the journal with its reports delivered, rebooting through the slot
/// logic after each reboot request and each cut.
fn drive(rig: &Rig, c: &Campaign, k: Option<u64>, then: Option<u64>, steps: Option<&Steps>) -> Run {
    let start = rig.fs.ops();
    if let Some(k) = k {
        rig.fs.cut_after(k);
    }
    rig.fs.set_trace(steps.is_some());
    let mut run = Run {
        k,
        ..Run::default()
    };
    let t0 = Instant::now();
    // The camera runs slot A when the update starts.
    let mut booted = Slot::A;
    let mut failures = 0;
    loop {
        if t0.elapsed() > RUN_LIMIT {
            run.problems
                .push(format!("no final state within {RUN_LIMIT:?}"));
            break;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let cfg = rig.cfg.clone();
            let stop = stop.clone();
            let mut sim = Sim {
                booted,
                fs: rig.fs.clone(),
                start,
                steps: steps.cloned(),
            };
            std::thread::spawn(move || agent::run(&cfg, &mut sim, &stop))
        };
        let mut stopped_at = None;
        let mut hung = false;
        while !handle.is_finished() {
            let done = !rig.fs.is_off() && rig.done(c.name);
            if done && run.ops.is_none() {
                run.ops = Some(rig.fs.ops() - start);
            }
            if stopped_at.is_none() && (rig.fs.is_off() || done) {
                stop.store(true, Ordering::Relaxed);
                stopped_at = Some(Instant::now());
            }
            if stopped_at.is_some_and(|t| t.elapsed() > Duration::from_secs(20)) {
                hung = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if hung {
            run.problems
                .push("the agent did not stop within 20 s of being asked".into());
            break;
        }
        let off = rig.fs.is_off();
        match handle.join() {
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                run.problems.push(format!("agent panicked: {msg}"));
                failures += 1;
            }
            Ok(Ok(Exit::Stopped)) if !off && rig.done(c.name) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) if !off => {
                run.problems
                    .push(format!("agent failed without a cut: {e}"));
                failures += 1;
            }
            Ok(Err(_)) => {}
        }
        if failures >= 3 {
            break;
        }
        // Reboot (after a cut: power on first). The bootloader's own
        // environment write may be where the tripwire fires.
        loop {
            if rig.fs.is_off() {
                run.cuts += 1;
                rig.fs.power_on();
                if run.cuts == 1
                    && let Some(k2) = then
                {
                    // A second cut, k2 requests into the recovery.
                    rig.fs.cut_after(k2);
                }
            }
            run.reboots += 1;
            match rig.boot() {
                Ok((slot, lost)) => {
                    booted = slot;
                    run.env_lost |= lost;
                    break;
                }
                Err(_) if rig.fs.is_off() => continue,
                Err(e) => {
                    run.problems.push(format!("boot failed without a cut: {e}"));
                    return finish(rig, c, run);
                }
            }
        }
        run.booted = Some(booted);
    }
    run.booted = Some(booted);
    finish(rig, c, run)
}

/// The checks of one run, recorded as problems.
fn finish(rig: &Rig, c: &Campaign, mut run: Run) -> Run {
    if rig.fs.is_off() {
        rig.fs.power_on();
        run.problems.push("ended with the power off".into());
    }
    // The environment, and the slot the camera runs.
    let env = rig.cfg.layout.env.read_vars();
    let active = match &env {
        Ok(Some(cur)) => Some(boot::state(&cur.vars, C, None).active),
        Ok(None) => {
            run.env_lost = true;
            if run.booted != Some(Slot::A) {
                run.problems
                    .push("both environment copies lost, yet slot A was not booted".into());
            }
            None
        }
        Err(e) => {
            run.problems.push(format!("environment unreadable: {e}"));
            None
        }
    };
    let booted = run.booted.unwrap_or(Slot::A);
    let slot = std::fs::read(&rig.cfg.layout.slots[&C][booted.index()]).unwrap_or_default();
    let sha =
        |len: u64| -> [u8; 32] { Sha256::digest(&slot[..(len as usize).min(slot.len())]).into() };
    let v = vendor();
    let good = if sha(SLOT_BYTES) == v.old_sha {
        Some("old")
    } else if sha(IMAGE_BYTES) == v.new_sha {
        Some("new")
    } else {
        None
    };
    run.good_image = good.is_some();
    run.trace = rig.fs.trace();
    if good.is_none() {
        run.problems.push(format!(
            "booted slot {booted} holds neither the old nor the new image"
        ));
    }
    // The journal: exactly one final state, consistent with the slots.
    let journal = rig.journal();
    run.finished = journal
        .as_ref()
        .and_then(|j| j.finished.get(c.name).copied());
    match run.finished {
        Some(State::Committed) => {
            if active.is_some_and(|a| a != booted) || good != Some("new") {
                run.problems.push(format!(
                    "committed, but booted {booted}, active {active:?}, image {good:?}"
                ));
            }
        }
        Some(State::RolledBack) => {
            if active.is_some_and(|a| a != booted) || good != Some("old") {
                run.problems.push(format!(
                    "rolled back, but booted {booted}, active {active:?}, image {good:?}"
                ));
            }
        }
        other => run
            .problems
            .push(format!("journal's final state of the campaign: {other:?}")),
    }
    if let Some(j) = &journal
        && (j.phase != ota::journal::Phase::Idle || j.job.is_some())
    {
        run.problems
            .push(format!("journal not idle at the end: {:?}", j.phase));
    }
    // The reports on the broker: that final state, once (redeliveries of
    // the same (camera, campaign, state) deduplicated).
    let deadline = Instant::now() + Duration::from_secs(3);
    let finals = loop {
        let finals: BTreeSet<State> = reports()
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.camera == rig.camera && r.campaign == c.name && r.state.is_final())
            .map(|r| r.state)
            .collect();
        if !finals.is_empty() || Instant::now() > deadline {
            break finals;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let want: BTreeSet<State> = run.finished.into_iter().collect();
    if finals != want {
        run.problems.push(format!(
            "final states reported on the broker {finals:?}, journal {:?}",
            run.finished
        ));
    }
    run
}

fn vendor() -> &'static Vendor {
    static V: OnceLock<Vendor> = OnceLock::new();
    V.get_or_init(Vendor::new)
}

fn reports() -> &'static Arc<Mutex<Vec<Report>>> {
    static R: OnceLock<Arc<Mutex<Vec<Report>>>> = OnceLock::new();
    R.get_or_init(collect_reports)
}

fn health() -> &'static Arc<Mutex<HashSet<String>>> {
    static H: OnceLock<Arc<Mutex<HashSet<String>>>> = OnceLock::new();
    H.get_or_init(publish_health)
}

fn campaign(name: &'static str, healthy: bool, health_deadline_s: u64) -> Campaign {
    let store = unique(name);
    let c = Campaign {
        name,
        announce_topic: format!("ota/announce/{store}"),
        store,
        healthy,
        health_deadline_s,
    };
    vendor().announce(&c.announce_topic, c.name);
    c
}

/// One camera through the whole campaign with the tripwire at `k`.
fn one(c: &Campaign, k: Option<u64>, then: Option<u64>, steps: Option<&Steps>) -> Run {
    let camera = unique(&format!("cam-{}", k.unwrap_or(0)));
    let rig = Rig::new(vendor(), c, &camera);
    if c.healthy {
        health().lock().unwrap().insert(rig.health_topic());
    }
    let run = drive(&rig, c, k, then, steps);
    health().lock().unwrap().remove(&rig.health_topic());
    run
}

/// Which step of the uncut run cut point `k` falls after.
fn phase_of(steps: &[(String, u64)], k: u64) -> String {
    steps
        .iter()
        .rev()
        .find(|(_, at)| *at < k)
        .map_or_else(|| "start".to_string(), |(s, _)| format!("after {s:?}"))
}

/// Run every cut point in `ks` on its own camera, `WORKERS` at a time;
/// `then(k)`: a second cut that many requests after the power came back.
fn cut_runs(c: &Campaign, ks: &[u64], then: &(dyn Fn(u64) -> Option<u64> + Sync)) -> Vec<Run> {
    let next = AtomicUsize::new(0);
    let out = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&k) = ks.get(i) else { return };
                    let run = one(c, Some(k), then(k), None);
                    out.lock().unwrap().push(run);
                }
            });
        }
    });
    let mut runs = out.into_inner().unwrap();
    runs.sort_by_key(|r| r.k);
    runs
}

/// The uncut run and its figures.
struct Baseline {
    /// Mutating requests from the agent's first start to the campaign's
    /// end (the last report acknowledged).
    n: u64,
    steps: Vec<(String, u64)>,
    /// What request k was: `trace[k - 1]`.
    trace: Vec<String>,
}

impl Baseline {
    /// Cut point k as "request (after step)".
    fn label(&self, k: u64) -> String {
        let req = self.trace.get(k as usize - 1).map_or("?", String::as_str);
        format!("{req} ({})", phase_of(&self.steps, k))
    }
}

/// Baseline, then every cut point.
fn campaign_under_cuts(
    c: &Campaign,
    range: impl Fn(&[(String, u64)], u64) -> Vec<u64>,
    then: &(dyn Fn(u64) -> Option<u64> + Sync),
) -> (Baseline, Vec<Run>) {
    let steps = Arc::new(Mutex::new(Vec::new()));
    let base = one(c, None, None, Some(&steps));
    let steps = steps.lock().unwrap().clone();
    assert!(
        base.problems.is_empty(),
        "the uncut run failed: {:?}\nsteps: {steps:?}",
        base.problems
    );
    let n = base.ops.unwrap();
    println!(
        "{}: uncut run: {n} mutating requests, ended {:?}, steps {steps:?}",
        c.name, base.finished
    );
    let ks = range(&steps, n);
    let runs = cut_runs(c, &ks, then);
    (
        Baseline {
            n,
            steps,
            trace: base.trace,
        },
        runs,
    )
}

fn summarize(c: &Campaign, b: &Baseline, runs: &[Run]) -> Vec<String> {
    let count = |f: &dyn Fn(&Run) -> bool| runs.iter().filter(|r| f(r)).count();
    let committed = count(&|r| r.finished == Some(State::Committed));
    let rolled_back = count(&|r| r.finished == Some(State::RolledBack));
    let good = count(&|r| r.good_image);
    let tripped = count(&|r| r.cuts > 0);
    let env_lost = count(&|r| r.env_lost);
    println!(
        "ota power cuts ({}): {} ops, {} cut points ({tripped} tripped), committed {committed}, \
         rolled back {rolled_back}, booted good slot {good}/{}, environment lost {env_lost}",
        c.name,
        b.n,
        runs.len(),
        runs.len()
    );
    // Where the cuts fell: the request of the uncut run at each k, by the
    // agent step before it, in order.
    let mut groups: Vec<(String, Vec<u64>)> = Vec::new();
    for r in runs {
        let k = r.k.unwrap_or(0);
        let label = b.label(k);
        match groups.last_mut() {
            Some((l, ks)) if *l == label => ks.push(k),
            _ => groups.push((label, vec![k])),
        }
    }
    for (label, ks) in &groups {
        let first = ks.first().copied().unwrap_or(0);
        let last = ks.last().copied().unwrap_or(0);
        println!("  k {first:>3}..={last:<3} {label}");
    }
    let mut problems = Vec::new();
    for r in runs {
        for p in &r.problems {
            problems.push(format!(
                "{} k={:?} [{}]: {p}",
                c.name,
                r.k,
                b.label(r.k.unwrap_or(0))
            ));
        }
    }
    problems
}

/// A healthy camera: cut at every mutating request of the whole update,
/// from the agent's first start to the committed report acknowledged.
#[test]
fn every_power_cut_of_a_committed_update_boots_a_good_slot_and_ends_once() {
    let t0 = Instant::now();
    let _ = reports();
    let c = campaign("pc-commit", true, 4);
    let (b, runs) = campaign_under_cuts(&c, |_, n| (1..=n).collect(), &|_| None);
    let problems = summarize(&c, &b, &runs);
    println!("  wall time {:.1} s", t0.elapsed().as_secs_f64());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(runs.len() as u64, b.n);
}

/// No health reports: the trial times out and rolls back. Cut at every
/// mutating request from the install on: slot writes, the switch, first
/// boot, trial, rollback in the environment, the reboot back, the
/// rolled-back report.
#[test]
fn every_power_cut_of_a_rollback_boots_a_good_slot_and_ends_once() {
    let t0 = Instant::now();
    let _ = reports();
    let c = campaign("pc-rollback", false, 1);
    let (b, runs) = campaign_under_cuts(
        &c,
        |steps, n| {
            let from = steps
                .iter()
                .find(|(s, _)| s == "installing")
                .map_or(1, |(_, at)| at + 1);
            (from..=n).collect()
        },
        &|_| None,
    );
    let problems = summarize(&c, &b, &runs);
    println!("  wall time {:.1} s", t0.elapsed().as_secs_f64());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        runs.iter().all(|r| r.finished == Some(State::RolledBack)),
        "without health every run rolls back"
    );
}

/// A cut at every request, and a second one during the recovery from it
/// (after the power comes back: the reboot, the agent's reconciliation,
/// the rest of the update), at a varying distance 1..=40 requests.
#[test]
fn a_second_power_cut_during_the_recovery_still_ends_once_on_a_good_slot() {
    let t0 = Instant::now();
    let _ = reports();
    let c = campaign("pc-twice", true, 4);
    let (b, runs) = campaign_under_cuts(&c, |_, n| (1..=n).collect(), &|k| Some(k * 13 % 40 + 1));
    let problems = summarize(&c, &b, &runs);
    let twice = runs.iter().filter(|r| r.cuts == 2).count();
    println!("  cut twice: {twice} of {} runs", runs.len());
    println!("  wall time {:.1} s", t0.elapsed().as_secs_f64());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(
        twice * 2 > runs.len(),
        "most second cuts fell inside the recovery"
    );
}
