//! `ota agent`: the update agent on the camera.
//!
//! It listens for signed announcements on MQTT, decides with
//! [`announce::decide`], downloads with [`download`], installs with
//! [`install`], reboots through the [`Platform`] seam, and after the
//! reboot commits the new slots once camera-app's health reports say it
//! works ([`health::Gate`]), or rolls back. Every step is written to the
//! [`Journal`] before it is acted on, so the agent resumes after a crash or
//! power cut at any point and reports each state once.
//!
//! Decisions are pure functions elsewhere ([`announce`], [`boot`],
//! [`health`]); this module is the I/O around them.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, Incoming, MqttOptions, Outgoing, QoS};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::announce::{self, Announcement, Verdict};
use crate::boot::{self, BootStatus, Slot};
use crate::download::{self, RetryPolicy};
use crate::health::{self, Gate};
use crate::install::{self, Expect, Layout};
use crate::journal::{Job, Journal, JournalError, Phase, State};
use crate::manifest::Component;
use crate::slots::DeviceError;
use crate::trust::{Role, Signed, Trust, TrustError};

/// How long the agent waits after a download gave up (server or network
/// down) before it tries again.
const DOWNLOAD_RETRY: Duration = Duration::from_secs(600);
/// How long to wait for another install (by hand) to finish.
const INSTALL_RETRY: Duration = Duration::from_secs(30);
/// How soon a download that waits for space on the data partition looks
/// again.
const SPACE_RETRY: Duration = Duration::from_secs(60);

/// Reboots into a pending slot that never starts before the agent gives
/// the update up.
const MAX_UNANSWERED_REBOOTS: u32 = 3;

/// The agent's configuration file (TOML).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub camera_id: String,
    pub store_id: String,
    /// Where the camera's own topics live; `{store}` and `{camera}` are
    /// replaced. Must match camera-app's `[link] topic_prefix`.
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// Where campaigns are announced (retained).
    #[serde(default = "default_announce")]
    pub announce_topic: String,
    /// Where the vendor publishes the chain of roots after the factory
    /// one (retained): how a rotation or a revocation reaches cameras.
    #[serde(default = "default_roots")]
    pub roots_topic: String,
    pub broker: Broker,
    /// Journal and download area (on the data partition).
    pub state_dir: PathBuf,
    /// The factory root of trust (a signed root document).
    pub root_file: PathBuf,
    /// Where `ota provision` installed the camera's factory bundle
    /// (`/data/factory`). When set, the camera and store ids, the broker
    /// (over TLS with the provisioned certificates) and the root of trust
    /// come from there ([`AgentConfig::apply_provisioning`]), not from
    /// this file.
    #[serde(default)]
    pub provisioning: Option<PathBuf>,
    /// The release running when no update was ever committed here.
    pub version: String,
    /// URL prefixes bundles may be fetched from.
    pub allowed_urls: Vec<String>,
    #[serde(default = "default_max_bundle")]
    pub max_bundle_bytes: u64,
    /// Space a download leaves free on the data partition (`state_dir`'s
    /// filesystem), which it shares with camera-app's outbox: a download
    /// starts only when the rest of the bundle fits above it, and stops
    /// (its partial file removed) when the free space falls below it.
    #[serde(default = "default_reserve")]
    pub reserve_bytes: u64,
    /// The store's offset from UTC, for maintenance windows.
    #[serde(default)]
    pub utc_offset_min: i32,
    /// How long a new slot has to prove itself healthy.
    #[serde(default = "default_deadline")]
    pub health_deadline_s: u64,
    /// Where `ota select` records the app and model slots it started
    /// (a tmpfs: the record lives as long as the boot).
    #[serde(default = "default_run_dir")]
    pub run_dir: PathBuf,
    pub layout: Layout,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// TLS (server CA, optional client certificate), as camera-app's
    /// `[link.tls]`.
    #[serde(default)]
    pub tls: Option<crate::tls::TlsConfig>,
}

fn default_prefix() -> String {
    "stores/{store}/cameras/{camera}".into()
}
fn default_announce() -> String {
    "ota/announce".into()
}
fn default_roots() -> String {
    "ota/roots".into()
}
fn default_max_bundle() -> u64 {
    1 << 30
}
/// camera-app's outbox (16 MiB at most), its configuration and reference
/// stores, and room to spare.
fn default_reserve() -> u64 {
    32 << 20
}
fn default_deadline() -> u64 {
    300
}
fn default_run_dir() -> PathBuf {
    PathBuf::from("/run/ota")
}

impl AgentConfig {
    /// Takes identity, broker and root of trust from the provisioned
    /// directory, if the configuration names one. `Ok(false)`: the camera
    /// is not provisioned yet, and nothing here may be trusted.
    pub fn apply_provisioning(&mut self) -> Result<bool, provisioning::ProvisioningError> {
        let Some(dir) = &self.provisioning else {
            return Ok(true);
        };
        let Some(p) = provisioning::Provisioned::load(dir)? else {
            return Ok(false);
        };
        self.camera_id.clone_from(&p.identity.camera_id);
        self.store_id.clone_from(&p.identity.store_id);
        self.broker.host.clone_from(&p.identity.broker.host);
        self.broker.port = p.identity.broker.port;
        self.broker.tls = Some(p.tls());
        self.root_file = p.root_file();
        Ok(true)
    }

    pub fn prefix(&self) -> String {
        self.topic_prefix
            .replace("{store}", &self.store_id)
            .replace("{camera}", &self.camera_id)
    }
    pub fn report_topic(&self) -> String {
        format!("{}/ota/report", self.prefix())
    }
    pub fn progress_topic(&self) -> String {
        format!("{}/ota/progress", self.prefix())
    }
    pub fn notice_topic(&self) -> String {
        format!("{}/ota/notice", self.prefix())
    }
    pub fn health_topic(&self) -> String {
        format!("{}/health", self.prefix())
    }
    fn journal_path(&self) -> PathBuf {
        self.state_dir.join("journal.json")
    }
    fn download_path(&self) -> PathBuf {
        self.state_dir.join("bundle.part")
    }
}

/// The seams to the running system.
pub trait Platform {
    /// Unix seconds from the system clock (not trusted on its own).
    fn now(&self) -> u64;
    /// The slot the running system uses for `c`, when known (the kernel
    /// command line for rootfs, `ota select`'s record for app and model).
    fn booted(&self, c: Component) -> Option<Slot>;
    /// Ask for a reboot (or an application restart). The agent exits
    /// after calling it.
    fn reboot(&mut self) -> Result<(), String>;
    /// A point where the journal or environment was just made durable;
    /// fault-injection tests cut power here.
    fn step(&mut self, _what: &str) {}
    /// The agent's loop went round: feed the service manager's watchdog.
    fn alive(&mut self) {}
    /// Bytes available on the filesystem holding `dir` (`None`: unknown,
    /// and no check is made).
    // The block count and size are 32 bits wide on armv7.
    #[allow(clippy::useless_conversion)]
    fn free_bytes(&self, dir: &Path) -> Option<u64> {
        let s = nix::sys::statvfs::statvfs(dir).ok()?;
        Some(u64::from(s.blocks_available()).saturating_mul(u64::from(s.fragment_size())))
    }
}

/// The real platform: system clock, `/proc/cmdline` (`ota.rootfs=B`,
/// `ota.app=A`, ...) and a reboot command.
#[derive(Debug)]
pub struct LinuxPlatform {
    pub cmdline: String,
    pub reboot_command: Vec<String>,
    /// Where `ota select` records the app and model slots it chose.
    pub run_dir: PathBuf,
    /// systemd's watchdog period (`WatchdogSec=`), and the last feed.
    watchdog: Option<(Duration, Option<Instant>)>,
}

impl LinuxPlatform {
    pub fn new(reboot_command: Vec<String>, run_dir: &Path) -> LinuxPlatform {
        LinuxPlatform {
            cmdline: std::fs::read_to_string("/proc/cmdline").unwrap_or_default(),
            reboot_command,
            run_dir: run_dir.to_path_buf(),
            watchdog: {
                let mut usec = 0;
                sd_notify::watchdog_enabled(false, &mut usec)
                    .then_some((Duration::from_micros(usec), None))
            },
        }
    }
}

/// The file in which `ota select` records the slot it chose for `c` (the
/// kernel command line only knows the rootfs).
pub fn selected_path(run_dir: &Path, c: Component) -> PathBuf {
    run_dir.join(format!("{}.slot", c.name()))
}

/// The file in which `ota select` records the release version of the slot
/// it chose for `c`, as the signed manifest named it (camera-app reports
/// it); absent for a slot that holds the factory image.
pub fn version_path(run_dir: &Path, c: Component) -> PathBuf {
    run_dir.join(format!("{}.version", c.name()))
}

impl Platform for LinuxPlatform {
    fn now(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn booted(&self, c: Component) -> Option<Slot> {
        let key = format!("ota.{}=", c.name());
        let from_cmdline = self
            .cmdline
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key.as_str()))
            .and_then(Slot::parse);
        from_cmdline.or_else(|| {
            std::fs::read_to_string(selected_path(&self.run_dir, c))
                .ok()
                .and_then(|s| Slot::parse(s.trim()))
        })
    }

    fn reboot(&mut self) -> Result<(), String> {
        let Some((cmd, args)) = self.reboot_command.split_first() else {
            return Err("no reboot_command configured".into());
        };
        let st = std::process::Command::new(cmd)
            .args(args)
            .status()
            .map_err(|e| format!("{cmd}: {e}"))?;
        if st.success() {
            Ok(())
        } else {
            Err(format!("{cmd} exited with {st}"))
        }
    }

    fn alive(&mut self) {
        let Some((period, last)) = &mut self.watchdog else {
            return;
        };
        // A third of the period, as camera-app does.
        if last.is_none_or(|t| t.elapsed() >= *period / 3) {
            if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]) {
                warn!(error = %e, "cannot feed systemd's watchdog");
            }
            *last = Some(Instant::now());
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("root of trust {path}: {reason}")]
    Root { path: PathBuf, reason: String },
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("reboot failed: {0}")]
    Reboot(String),
    #[error("broker TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// How `run` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The platform was asked to reboot.
    Rebooting,
    /// `stop` was set.
    Stopped,
}

/// Open the journal, or start one from the factory root.
pub fn open_journal(cfg: &AgentConfig) -> Result<Journal, AgentError> {
    if let Some(j) = Journal::load(&cfg.journal_path())? {
        return Ok(j);
    }
    let root_err = |reason: String| AgentError::Root {
        path: cfg.root_file.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&cfg.root_file).map_err(|e| root_err(e.to_string()))?;
    let signed: Signed = serde_json::from_str(&text).map_err(|e| root_err(e.to_string()))?;
    let trust = Trust::from_initial_root(&signed).map_err(|e| root_err(e.to_string()))?;
    let dir_err = |source| JournalError::Io {
        what: "creating the directory of",
        path: cfg.journal_path(),
        source,
    };
    // A new directory's name is durable only once its parent is fsynced;
    // without it a power cut (any time later, until something else syncs
    // the parent) drops the state directory with the journal in it, and
    // the agent forgets an update it is in the middle of (found by the
    // power-cut test, tests/powercut/tests/ota.rs).
    let created: Vec<PathBuf> = cfg
        .state_dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    std::fs::create_dir_all(&cfg.state_dir).map_err(dir_err)?;
    for dir in created.iter().rev() {
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(dir_err)?;
    }
    let j = Journal::new(trust);
    j.save(&cfg.journal_path())?;
    Ok(j)
}

struct Agent<'a> {
    cfg: &'a AgentConfig,
    platform: &'a mut dyn Platform,
    j: Journal,
    client: Client,
    events: Receiver<Event>,
    /// Reports published and waiting for their PUBACK, oldest first:
    /// (packet id once known, index key).
    inflight: VecDeque<(Option<u16>, (String, State))>,
    gate: Gate,
    /// An announcement seen while busy, looked at again when idle.
    deferred: Option<Vec<u8>>,
    last_progress: Option<u8>,
    /// After the download gave up on a network that is down: when to try
    /// again (the campaign is not failed for an outage).
    download_retry_at: Option<Instant>,
    /// When to try an install again that found another install running.
    install_retry_at: Option<Instant>,
}

/// Run the agent until it reboots the platform or `stop` is set.
pub fn run(
    cfg: &AgentConfig,
    platform: &mut dyn Platform,
    stop: &AtomicBool,
) -> Result<Exit, AgentError> {
    let j = open_journal(cfg)?;
    let mut opts = MqttOptions::new(
        format!("ota-{}", cfg.camera_id),
        &cfg.broker.host,
        cfg.broker.port,
    );
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(256 * 1024, 256 * 1024);
    if let (Some(u), Some(p)) = (&cfg.broker.username, &cfg.broker.password) {
        opts.set_credentials(u, p);
    }
    if let Some(t) = &cfg.broker.tls {
        let config = crate::tls::client_config(t)?;
        opts.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(config),
        ));
    }
    let (client, mut conn) = Client::new(opts, 64);
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("ota-mqtt".into())
        .spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(ev) => {
                        if tx.send(ev).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        debug!("ota agent: broker connection: {e}");
                        // The receiver is gone once the agent ended.
                        if tx.send(Event::Outgoing(Outgoing::PingReq)).is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            }
        })
        .map_err(|e| AgentError::Reboot(format!("spawning the MQTT thread: {e}")))?;
    let mut agent = Agent {
        cfg,
        platform,
        j,
        client,
        events: rx,
        inflight: VecDeque::new(),
        gate: Gate::new(),
        deferred: None,
        last_progress: None,
        download_retry_at: None,
        install_retry_at: None,
    };
    let exit = agent.main(stop);
    let _ = agent.client.disconnect();
    exit
}

impl Agent<'_> {
    fn now(&self) -> u64 {
        self.j.trust.effective_now(self.platform.now()).0
    }

    fn save(&mut self, step: &str) -> Result<(), AgentError> {
        self.j.save(&self.cfg.journal_path())?;
        self.platform.step(step);
        Ok(())
    }

    fn report(&mut self, state: State, percent: Option<u8>, reason: Option<String>) {
        let now = self.now();
        if self
            .j
            .report(&self.cfg.camera_id, state, percent, reason.clone(), now)
        {
            info!(
                "ota: {} {}{}",
                self.j.job.as_ref().map_or("", |j| j.campaign.as_str()),
                state.name(),
                reason.map(|r| format!(": {r}")).unwrap_or_default()
            );
        }
    }

    fn main(&mut self, stop: &AtomicBool) -> Result<Exit, AgentError> {
        self.reconcile()?;
        self.subscribe();
        loop {
            if stop.load(Ordering::Relaxed) {
                self.save("stop")?;
                return Ok(Exit::Stopped);
            }
            self.platform.alive();
            self.pump(Duration::from_millis(100))?;
            match self.j.phase.clone() {
                Phase::Idle => {
                    if let Some(a) = self.deferred.take() {
                        self.on_announcement(&a)?;
                    }
                }
                Phase::Downloading => {
                    if self.download_retry_at.is_none_or(|t| Instant::now() >= t) {
                        self.download(stop)?;
                    }
                }
                Phase::Downloaded => {
                    if self.in_window()
                        && self.install_due()
                        && let Some(exit) = self.install(stop)?
                    {
                        return Ok(exit);
                    }
                }
                Phase::Installing => {
                    if self.install_due()
                        && let Some(exit) = self.install(stop)?
                    {
                        return Ok(exit);
                    }
                }
                Phase::Rebooting { .. } => return self.reboot(),
                Phase::RollingBack { .. } => return self.reboot(),
                Phase::Trial { targets, deadline } => {
                    if let Some(exit) = self.trial(&targets, deadline)? {
                        return Ok(exit);
                    }
                }
            }
        }
    }

    fn subscribe(&mut self) {
        let _ = self
            .client
            .subscribe(self.cfg.announce_topic.clone(), QoS::AtLeastOnce);
        let _ = self
            .client
            .subscribe(self.cfg.roots_topic.clone(), QoS::AtLeastOnce);
        let _ = self
            .client
            .subscribe(self.cfg.health_topic(), QoS::AtMostOnce);
    }

    /// Handle broker events for up to `wait`.
    fn pump(&mut self, wait: Duration) -> Result<(), AgentError> {
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let ev = match self.events.recv_timeout(left) {
                Ok(ev) => ev,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            };
            self.handle_event(ev)?;
            if left.is_zero() {
                break;
            }
        }
        self.flush_reports();
        Ok(())
    }

    fn handle_event(&mut self, ev: Event) -> Result<(), AgentError> {
        match ev {
            Event::Incoming(Incoming::ConnAck(_)) => {
                // A fresh session: subscribe again and resend what
                // was not acknowledged.
                self.inflight.clear();
                self.subscribe();
                self.flush_reports();
            }
            Event::Incoming(Incoming::Publish(p)) => {
                if p.topic == self.cfg.announce_topic {
                    if self.j.phase == Phase::Idle {
                        self.on_announcement(&p.payload)?;
                    } else {
                        self.on_busy_announcement(&p.payload)?;
                    }
                } else if p.topic == self.cfg.roots_topic {
                    self.on_roots(&p.payload)?;
                } else if p.topic == self.cfg.health_topic() {
                    self.gate.observe(&p.payload);
                }
            }
            Event::Outgoing(Outgoing::Publish(pkid)) if pkid != 0 => {
                if let Some(slot) = self.inflight.iter_mut().find(|(id, _)| id.is_none()) {
                    slot.0 = Some(pkid);
                }
            }
            Event::Incoming(Incoming::PubAck(ack)) => {
                if let Some(i) = self
                    .inflight
                    .iter()
                    .position(|(id, _)| *id == Some(ack.pkid))
                {
                    let Some((_, key)) = self.inflight.remove(i) else {
                        return Ok(());
                    };
                    self.j
                        .outbox
                        .retain(|r| (r.campaign.clone(), r.state) != key);
                    self.save("report acknowledged")?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Publish queued reports not yet in flight.
    fn flush_reports(&mut self) {
        for r in self.j.outbox.clone() {
            let key = (r.campaign.clone(), r.state);
            if self.inflight.iter().any(|(_, k)| *k == key) {
                continue;
            }
            let Ok(payload) = serde_json::to_vec(&r) else {
                continue;
            };
            if self
                .client
                .try_publish(self.cfg.report_topic(), QoS::AtLeastOnce, false, payload)
                .is_ok()
            {
                self.inflight.push_back((None, key));
            }
        }
    }

    /// Wait (bounded) for queued reports to be acknowledged, before a
    /// reboot.
    fn drain_reports(&mut self, max: Duration) -> Result<(), AgentError> {
        let until = Instant::now() + max;
        while !self.j.outbox.is_empty() && Instant::now() < until {
            self.pump(Duration::from_millis(50))?;
        }
        Ok(())
    }

    fn notice(&mut self, reason: &str) {
        warn!("ota: announcement refused: {reason}");
        let body = serde_json::json!({
            "camera": self.cfg.camera_id,
            "refused": reason,
            "time": self.now(),
        });
        let _ = self.client.try_publish(
            self.cfg.notice_topic(),
            QoS::AtMostOnce,
            false,
            body.to_string(),
        );
    }

    fn verify_announcement(&self, payload: &[u8]) -> Result<Announcement, String> {
        verify_announcement(&self.j.trust, payload, self.platform.now())
    }

    fn on_announcement(&mut self, payload: &[u8]) -> Result<(), AgentError> {
        if payload.is_empty() {
            return Ok(()); // a cleared retained message
        }
        let (a, verdict) = match evaluate(self.cfg, &self.j, payload, self.platform.now()) {
            Evaluation::Refused(reason) => {
                self.notice(&reason);
                return Ok(());
            }
            Evaluation::Finished(campaign, state) => {
                debug!(
                    "ota: campaign {campaign} already ended here ({})",
                    state.name()
                );
                return Ok(());
            }
            Evaluation::Decided(a, v) => (a, v),
        };
        if !matches!(&verdict, Verdict::Ignore(r) if r.contains("not newer")) {
            self.j.seen.insert(a.campaign.clone(), a.seq);
            if let Err(e) = self.j.trust.observe_signed_time(a.issued) {
                warn!("ota: announcement time not taken: {e}");
            }
        }
        let job = Job {
            campaign: a.campaign.clone(),
            seq: a.seq,
            url: a.url.clone(),
            version: a.version.clone(),
            security_counter: a.security_counter,
            size: a.size,
            window: a.window,
        };
        match verdict {
            Verdict::Ignore(r) => debug!("ota: {r}"),
            Verdict::Hold(r) => info!("ota: holding campaign {}: {r}", a.campaign),
            Verdict::Reject(r) => {
                self.j.job = Some(job);
                self.report(State::Rejected, None, Some(r));
                self.j.job = None;
            }
            Verdict::Go { .. } => {
                let _ = std::fs::remove_file(self.cfg.download_path());
                let _ = std::fs::remove_file(download::sidecar_path(&self.cfg.download_path()));
                self.j.job = Some(job);
                self.j.phase = Phase::Downloading;
                self.last_progress = None;
                self.download_retry_at = None;
                self.report(State::Downloading, Some(0), None);
            }
        }
        self.save("announcement")
    }

    /// While busy: a halt of the current campaign cancels a download not
    /// yet installed; anything else waits.
    fn on_busy_announcement(&mut self, payload: &[u8]) -> Result<(), AgentError> {
        let Ok(a) = self.verify_announcement(payload) else {
            return Ok(());
        };
        let current = self.j.job.as_ref().map(|j| j.campaign.clone());
        if current.as_deref() == Some(a.campaign.as_str()) {
            if a.halted && matches!(self.j.phase, Phase::Downloading | Phase::Downloaded) {
                self.j.seen.insert(a.campaign.clone(), a.seq);
                self.cancel_job("campaign halted before install")?;
            }
            return Ok(());
        }
        self.deferred = Some(payload.to_vec());
        Ok(())
    }

    fn on_roots(&mut self, payload: &[u8]) -> Result<(), AgentError> {
        match apply_roots(&mut self.j.trust, payload, self.platform.now()) {
            Ok(Some(version)) => {
                info!("ota: root of trust rotated to version {version}");
                self.save("root rotated")
            }
            Ok(None) => Ok(()),
            Err(reason) => {
                self.notice(&format!("root chain: {reason}"));
                Ok(())
            }
        }
    }

    fn cancel_job(&mut self, reason: &str) -> Result<(), AgentError> {
        self.report(State::Rejected, None, Some(format!("cancelled: {reason}")));
        self.j.job = None;
        self.j.phase = Phase::Idle;
        let _ = std::fs::remove_file(self.cfg.download_path());
        self.save("cancelled")
    }

    fn in_window(&self) -> bool {
        let Some(job) = &self.j.job else {
            return true;
        };
        job.window
            .is_none_or(|w| w.contains(self.now(), self.cfg.utc_offset_min))
    }

    fn download(&mut self, stop: &AtomicBool) -> Result<(), AgentError> {
        let Some(job) = self.j.job.clone() else {
            self.j.phase = Phase::Idle;
            return self.save("no job");
        };
        let reserve = self.cfg.reserve_bytes;
        if let Some(free) = self.platform.free_bytes(&self.cfg.state_dir)
            && free < self.still_to_download(job.size).saturating_add(reserve)
        {
            return self.wait_for_space(&job.campaign, job.size, free);
        }
        let req = download::Request {
            url: job.url.clone(),
            dest: self.cfg.download_path(),
            expected_len: Some(job.size),
            max_len: self.cfg.max_bundle_bytes,
            policy: RetryPolicy::default(),
        };
        let cancel = AtomicBool::new(false);
        let mut halted = false;
        // The free space fell below the reserve while downloading.
        let mut starved = None;
        // Events that arrive during the download, handled after it.
        let mut stash = Vec::new();
        let result = {
            let topic = self.cfg.progress_topic();
            let client = self.client.clone();
            let last = &mut self.last_progress;
            let events = &self.events;
            let stash = &mut stash;
            let trust = &self.j.trust;
            let sys = self.platform.now();
            let announce_topic = self.cfg.announce_topic.clone();
            let platform = &*self.platform;
            let state_dir = &self.cfg.state_dir;
            let starved = &mut starved;
            let mut on_progress = |p: download::Progress| {
                if let Some(free) = platform.free_bytes(state_dir)
                    && free < reserve
                {
                    *starved = Some(free);
                    cancel.store(true, Ordering::Relaxed);
                }
                let pct = p
                    .total
                    .filter(|t| *t > 0)
                    .map_or(0, |t| (p.done * 100 / t).min(100) as u8);
                if last.is_none_or(|l| pct >= l.saturating_add(5)) {
                    *last = Some(pct);
                    let body = serde_json::json!({"campaign": job.campaign, "state": "downloading", "percent": pct});
                    let _ =
                        client.try_publish(topic.clone(), QoS::AtMostOnce, true, body.to_string());
                }
                // A halt of this campaign arrives as a new retained
                // announcement: look for it between chunks.
                while let Ok(ev) = events.try_recv() {
                    if let Event::Incoming(Incoming::Publish(p)) = &ev
                        && p.topic == announce_topic
                    {
                        halted |= is_halt_of(trust, sys, &p.payload, &job.campaign);
                    }
                    stash.push(ev);
                }
                if halted || stop.load(Ordering::Relaxed) {
                    cancel.store(true, Ordering::Relaxed);
                }
            };
            download::download(&req, &mut on_progress, &cancel)
        };
        for ev in stash {
            self.handle_event(ev)?;
        }
        match result {
            Ok(_) => {
                self.j.phase = Phase::Downloaded;
                self.save("downloaded")
            }
            Err(download::DownloadError::Cancelled { .. }) if halted => {
                self.cancel_job("campaign halted during download")
            }
            Err(download::DownloadError::Cancelled { .. }) if starved.is_some() => {
                self.wait_for_space(&job.campaign, job.size, starved.unwrap_or(0))
            }
            Err(download::DownloadError::Cancelled { .. }) => Ok(()),
            // The network or the server is down: not the bundle's fault.
            // Keep the partial file and try again later.
            Err(
                e @ (download::DownloadError::GaveUp { .. } | download::DownloadError::Io { .. }),
            ) => {
                warn!("ota: download paused, retrying in {DOWNLOAD_RETRY:?}: {e}");
                self.download_retry_at = Some(Instant::now() + DOWNLOAD_RETRY);
                Ok(())
            }
            Err(e) => {
                self.report(State::Rejected, None, Some(format!("download: {e}")));
                self.j.job = None;
                self.j.phase = Phase::Idle;
                let _ = std::fs::remove_file(self.cfg.download_path());
                self.save("download failed")
            }
        }
    }

    /// Not enough room on the data partition for the rest of the bundle
    /// above the reserve: the download waits (the campaign is not failed
    /// for it), and a partial file goes when the outbox is short of room.
    fn wait_for_space(&mut self, campaign: &str, size: u64, free: u64) -> Result<(), AgentError> {
        let reserve = self.cfg.reserve_bytes;
        let dest = self.cfg.download_path();
        if free < reserve && dest.exists() {
            let _ = std::fs::remove_file(&dest);
            let _ = std::fs::remove_file(download::sidecar_path(&dest));
        }
        let needed = self.still_to_download(size);
        warn!(
            "ota: {campaign}: waiting for space on {}: {needed} bytes to download, {free} free, \
             {reserve} kept for the camera; looking again in {}s",
            self.cfg.state_dir.display(),
            SPACE_RETRY.as_secs()
        );
        let body = serde_json::json!({
            "campaign": campaign,
            "state": "waiting_for_space",
            "needed_bytes": needed,
            "free_bytes": free,
            "reserve_bytes": reserve,
        });
        let _ = self.client.try_publish(
            self.cfg.progress_topic(),
            QoS::AtMostOnce,
            true,
            body.to_string(),
        );
        self.last_progress = None;
        self.download_retry_at = Some(Instant::now() + SPACE_RETRY);
        Ok(())
    }

    /// Bytes of a `size`-byte bundle not yet in the partial download.
    fn still_to_download(&self, size: u64) -> u64 {
        let have = std::fs::metadata(self.cfg.download_path()).map_or(0, |m| m.len());
        size.saturating_sub(have)
    }

    fn install_due(&self) -> bool {
        self.install_retry_at.is_none_or(|t| Instant::now() >= t)
    }

    fn install(&mut self, stop: &AtomicBool) -> Result<Option<Exit>, AgentError> {
        let Some(job) = self.j.job.clone() else {
            self.j.phase = Phase::Idle;
            self.save("no job")?;
            return Ok(None);
        };
        if self.j.phase != Phase::Installing {
            self.j.phase = Phase::Installing;
            self.report(State::Installing, None, None);
            self.save("installing")?;
        }
        let path = self.cfg.download_path();
        let mut layout = self.cfg.layout.clone();
        for c in Component::ALL {
            if let Some(s) = self.platform.booted(c) {
                layout.booted.insert(c, s);
            }
        }
        let sys = self.platform.now();
        let expect = Expect {
            version: job.version.clone(),
            security_counter: job.security_counter,
        };
        let result = std::fs::File::open(&path)
            .map_err(install::InstallError::Read)
            .and_then(|mut f| {
                install::install(
                    &mut f,
                    &self.j.trust,
                    &layout,
                    sys,
                    Some(&expect),
                    &mut |_, _| {},
                    stop,
                )
            });
        match result {
            Ok(done) => {
                self.platform.step("slots written");
                self.j.reboots_unanswered = 0;
                self.j.phase = Phase::Rebooting {
                    targets: done.targets,
                };
                self.report(State::Rebooting, None, None);
                self.save("rebooting")?;
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(download::sidecar_path(&path));
                self.drain_reports(Duration::from_secs(5))?;
                self.reboot().map(Some)
            }
            Err(install::InstallError::Cancelled) => Ok(None),
            // Someone else (`ota install` by hand) is installing: not this
            // bundle's fault; the same job is tried again later.
            Err(e @ install::InstallError::Busy(_)) => {
                warn!("ota: {e}; trying again in {}s", INSTALL_RETRY.as_secs());
                self.install_retry_at = Some(Instant::now() + INSTALL_RETRY);
                Ok(None)
            }
            Err(e) => {
                self.report(State::Rejected, None, Some(format!("{}: {e}", e.code())));
                self.j.job = None;
                self.j.phase = Phase::Idle;
                let _ = std::fs::remove_file(&path);
                self.save("install refused")?;
                Ok(None)
            }
        }
    }

    fn reboot(&mut self) -> Result<Exit, AgentError> {
        self.drain_reports(Duration::from_secs(2))?;
        self.platform.reboot().map_err(AgentError::Reboot)?;
        Ok(Exit::Rebooting)
    }

    /// A trial: commit once healthy, roll back at the deadline.
    fn trial(
        &mut self,
        targets: &[(Component, Slot)],
        deadline: u64,
    ) -> Result<Option<Exit>, AgentError> {
        let components: Vec<Component> = targets.iter().map(|(c, _)| *c).collect();
        let version = self.j.job.as_ref().map_or("", |j| j.version.as_str());
        match self.gate.verdict_for(&components, version) {
            health::Verdict::Healthy => {
                let cur = self.cfg.layout.env.read()?;
                let counter = self.j.job.as_ref().map_or(0, |j| j.security_counter);
                let mut vars = cur.vars.clone();
                for (c, s) in targets {
                    vars = boot::commit(&vars, *c, *s, counter);
                }
                self.cfg.layout.env.write(Some(&cur), &vars)?;
                self.platform.step("committed in environment");
                self.finish_committed()?;
                Ok(None)
            }
            health::Verdict::Waiting(why) if self.now() >= deadline => {
                let reason = format!("health check failed within the deadline: {why}");
                self.j.phase = Phase::RollingBack { reason };
                self.save("rolling back")?;
                let cur = self.cfg.layout.env.read()?;
                let mut vars = cur.vars.clone();
                for (c, _) in targets {
                    vars = boot::rollback(&vars, *c, "health");
                }
                self.cfg.layout.env.write(Some(&cur), &vars)?;
                self.platform.step("rolled back in environment");
                self.reboot().map(Some)
            }
            health::Verdict::Waiting(_) => Ok(None),
        }
    }

    fn finish_committed(&mut self) -> Result<(), AgentError> {
        // The last good slots, outside the environment: what boots when
        // both environment copies are lost (docs/ota.md).
        if let Some(cur) = self.cfg.layout.env.read_vars()? {
            let text: String = Component::ALL
                .into_iter()
                .map(|c| {
                    let v = boot::var(c, "active");
                    let slot = boot::state(&cur.vars, c, None).active;
                    format!("{v}={slot}\n")
                })
                .collect();
            let path = last_good_path(self.cfg);
            crate::journal::atomic_write(&path, text.as_bytes()).map_err(|source| {
                JournalError::Io {
                    what: "writing the last-good record next to the",
                    path,
                    source,
                }
            })?;
        }
        self.j.installed_version = self.j.job.as_ref().map(|j| j.version.clone());
        self.report(State::Committed, None, None);
        self.j.phase = Phase::Idle;
        self.j.job = None;
        self.save("committed")
    }

    fn finish_rolled_back(&mut self, reason: String) -> Result<(), AgentError> {
        self.report(State::RolledBack, None, Some(reason));
        self.j.phase = Phase::Idle;
        self.j.job = None;
        self.save("rolled back")?;
        // The recorded result was reported: clear it (one write).
        if let Some(cur) = self.cfg.layout.env.read_vars()? {
            let mut vars = cur.vars.clone();
            for c in Component::ALL {
                vars = boot::clear_result(&vars, c);
            }
            if vars != cur.vars {
                self.cfg.layout.env.write(Some(&cur), &vars)?;
            }
        }
        Ok(())
    }

    /// After a start: where did the last run leave the update, and what
    /// did the boot do with it?
    fn reconcile(&mut self) -> Result<(), AgentError> {
        let mut phase = self.j.phase.clone();
        if phase == Phase::Installing {
            // install() marks the new slots pending as its last write, and
            // the journal says Rebooting only after it returns: a power
            // cut in between leaves Installing with the switch made, and
            // the boot may already run the new slot on trial. Installing
            // again would then be refused (a trial in progress) and end
            // the campaign as rejected while the trial runs unowned, never
            // committed (found by the power-cut test,
            // tests/powercut/tests/ota.rs). So take the pending slots as
            // this install's targets and go on as after the switch. (They
            // are this install's: it clears a stale pending slot of its
            // targets before it writes them.)
            let Some(cur) = self.cfg.layout.env.read_vars()? else {
                return Ok(());
            };
            let targets: Vec<(Component, Slot)> = self
                .cfg
                .layout
                .slots
                .keys()
                .filter_map(|c| boot::state(&cur.vars, *c, None).pending.map(|s| (*c, s)))
                .collect();
            if targets.is_empty() {
                return Ok(()); // cut before the switch: install again
            }
            phase = Phase::Rebooting { targets };
            self.j.phase = phase.clone();
            self.report(State::Rebooting, None, None);
            self.save("rebooting")?;
        }
        let (targets, rolling_back) = match &phase {
            Phase::Rebooting { targets } | Phase::Trial { targets, .. } => (targets.clone(), None),
            Phase::RollingBack { reason } => (Vec::new(), Some(reason.clone())),
            _ => return Ok(()),
        };
        let Some(cur) = self.cfg.layout.env.read_vars()? else {
            return self.finish_rolled_back(
                "the boot environment was lost; the last good slot runs".into(),
            );
        };
        let vars = &cur.vars;
        if let Some(reason) = rolling_back {
            let job_targets: Vec<Component> = Component::ALL
                .into_iter()
                .filter(|c| boot::state(vars, *c, None).pending.is_some())
                .collect();
            let on_trial = job_targets.iter().any(|c| {
                let st = boot::state(vars, *c, None);
                self.platform.booted(*c).unwrap_or(st.active) != st.active
            });
            if job_targets.is_empty() && !on_trial {
                return self.finish_rolled_back(reason);
            }
            if !job_targets.is_empty() {
                // The cut came before the environment write: do it again.
                let mut w = vars.clone();
                for c in job_targets {
                    w = boot::rollback(&w, c, "health");
                }
                self.cfg.layout.env.write(Some(&cur), &w)?;
            }
            return Ok(()); // main loop reboots
        }
        let booted = |c: Component| {
            self.platform
                .booted(c)
                .unwrap_or(boot::state(vars, c, None).active)
        };
        let statuses: Vec<(BootStatus, bool, Slot)> = targets
            .iter()
            .map(|(c, t)| (boot::status(vars, *c, booted(*c)), booted(*c) == *t, *t))
            .collect();
        if statuses
            .iter()
            .all(|(s, on_target, _)| matches!(s, BootStatus::Trial { .. }) && *on_target)
        {
            let deadline = match phase {
                Phase::Trial { deadline, .. } => deadline,
                _ => self.now() + self.cfg.health_deadline_s,
            };
            self.j.phase = Phase::Trial { targets, deadline };
            return self.save("trial");
        }
        if let Some(reason) = statuses.iter().find_map(|(s, _, _)| match s {
            BootStatus::FellBack { reason } => Some(reason.clone()),
            _ => None,
        }) {
            return self.finish_rolled_back(format!("the new slot did not come up: {reason}"));
        }
        let all_committed = targets
            .iter()
            .all(|(c, t)| boot::state(vars, *c, None).active == *t && booted(*c) == *t);
        if all_committed {
            return self.finish_committed();
        }
        let still_pending = targets
            .iter()
            .all(|(c, t)| boot::state(vars, *c, None).pending == Some(*t));
        if still_pending && matches!(phase, Phase::Rebooting { .. }) {
            // The reboot never happened (a crash before it), or the
            // bootloader does not honour `pending`: reboot, but not for ever.
            self.j.reboots_unanswered += 1;
            if self.j.reboots_unanswered <= MAX_UNANSWERED_REBOOTS {
                return self.save("reboot again");
            }
            let mut w = vars.clone();
            for (c, _) in &targets {
                w = boot::rollback(&w, *c, "not-booted");
            }
            self.cfg.layout.env.write(Some(&cur), &w)?;
            return self.finish_rolled_back(format!(
                "the bootloader did not start the new slot after {MAX_UNANSWERED_REBOOTS} reboots"
            ));
        }
        self.finish_rolled_back("the update did not survive the reboot".into())
    }
}

/// Check an announcement's size, signature and fields.
pub fn verify_announcement(
    trust: &Trust,
    payload: &[u8],
    system_now: u64,
) -> Result<Announcement, String> {
    if payload.len() > announce::MAX_ANNOUNCEMENT_BYTES * 2 {
        return Err(format!(
            "announcement of {} bytes is too large",
            payload.len()
        ));
    }
    let signed: Signed = serde_json::from_slice(payload)
        .map_err(|e| format!("announcement is not a signed document: {e}"))?;
    let verified = trust
        .verify(&signed, Role::Announcement, system_now)
        .map_err(|e: TrustError| format!("announcement signature: {e}"))?;
    Announcement::parse(verified.payload)
}

/// The running release and the installed security counter.
pub fn installed(cfg: &AgentConfig, j: &Journal) -> (String, u64) {
    let counter = cfg
        .layout
        .env
        .read()
        .map(|c| boot::security_counter(&c.vars))
        .unwrap_or(0);
    let version = j
        .installed_version
        .clone()
        .unwrap_or_else(|| cfg.version.clone());
    (version, counter)
}

/// What the agent makes of an announcement payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evaluation {
    /// Unsigned, forged, malformed or too large: refused with the reason.
    Refused(String),
    /// A campaign that already ended on this camera.
    Finished(String, State),
    Decided(Announcement, Verdict),
}

/// Verify and decide, without acting: what the agent does with each
/// announcement, and what the bad-input tests check.
pub fn evaluate(cfg: &AgentConfig, j: &Journal, payload: &[u8], system_now: u64) -> Evaluation {
    let a = match verify_announcement(&j.trust, payload, system_now) {
        Ok(a) => a,
        Err(reason) => return Evaluation::Refused(reason),
    };
    if let Some(state) = j.finished.get(&a.campaign) {
        return Evaluation::Finished(a.campaign.clone(), *state);
    }
    let (version, counter) = installed(cfg, j);
    let cx = announce::Context {
        camera_id: &cfg.camera_id,
        board: &cfg.layout.board,
        counter,
        version: &version,
        last_seq: j.seen.get(&a.campaign).copied(),
        allowed_urls: &cfg.allowed_urls,
        max_size: cfg.max_bundle_bytes,
        utc_offset_min: cfg.utc_offset_min,
        now: j.trust.effective_now(system_now).0,
    };
    let v = announce::decide(&a, &cx);
    Evaluation::Decided(a, v)
}

/// Apply a published chain of roots (a JSON array of signed root
/// documents, oldest first): the ones newer than the current root are
/// verified as a chain and taken all or nothing. Returns the new version,
/// or `None` when nothing was newer.
pub fn apply_roots(
    trust: &mut Trust,
    payload: &[u8],
    system_now: u64,
) -> Result<Option<u64>, String> {
    if payload.is_empty() {
        return Ok(None);
    }
    if payload.len() > 1 << 20 {
        return Err(format!("{} bytes is too large", payload.len()));
    }
    let chain: Vec<Signed> =
        serde_json::from_slice(payload).map_err(|e| format!("not a list of signed roots: {e}"))?;
    let current = trust.root().version;
    let mut newer = Vec::new();
    for s in chain {
        let root = crate::trust::Root::parse(&s.payload).map_err(|e| e.to_string())?;
        if root.version > current {
            newer.push(s);
        }
    }
    if newer.is_empty() {
        return Ok(None);
    }
    trust
        .update_root_chain(&newer, system_now)
        .map_err(|e| e.to_string())?;
    Ok(Some(trust.root().version))
}

/// Is this payload a validly signed halt of `campaign`?
fn is_halt_of(trust: &Trust, system_now: u64, payload: &[u8], campaign: &str) -> bool {
    let Ok(signed) = serde_json::from_slice::<Signed>(payload) else {
        return false;
    };
    trust
        .verify(&signed, Role::Announcement, system_now)
        .ok()
        .and_then(|v| Announcement::parse(v.payload).ok())
        .is_some_and(|a| a.halted && a.campaign == campaign)
}

/// Used by tests and `ota agent --once`: the journal path for a config.
pub fn journal_path(cfg: &AgentConfig) -> PathBuf {
    cfg.journal_path()
}

/// The last good slots, written at each commit (`ota_<c>_active=A|B`
/// lines): the fallback when both environment copies are lost.
pub fn last_good_path(cfg: &AgentConfig) -> PathBuf {
    cfg.state_dir.join("last-good.env")
}

/// The last good slot of `c` from that record, if any.
pub fn last_good(cfg: &AgentConfig, c: Component) -> Option<Slot> {
    let text = std::fs::read_to_string(last_good_path(cfg)).ok()?;
    let key = format!("{}=", boot::var(c, "active"));
    text.lines()
        .find_map(|l| l.strip_prefix(key.as_str()))
        .and_then(Slot::parse)
}

/// Where a config's download goes.
pub fn download_path(cfg: &AgentConfig) -> PathBuf {
    cfg.download_path()
}

/// The board to derive the layout from, as given on the command line
/// (`--board`, `--boards-dir`); each overrides the config's field.
#[derive(Debug, Clone, Default)]
pub struct BoardArgs {
    pub board: Option<String>,
    pub boards_dir: Option<PathBuf>,
}

/// Why an agent config could not be used; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error(
        "{}: a board ({board}) and an explicit [layout] both given: keep one (the board's profile names the devices [layout] would)",
        path.display()
    )]
    BoardAndLayout { path: PathBuf, board: String },
    #[error(
        "{}: [slots] goes with a board; with an explicit [layout] put them in [layout.slots]",
        path.display()
    )]
    SlotsWithoutBoard { path: PathBuf },
    #[error(
        "{}: no layout: name the board (`board = \"rk3588\"` or --board) or give a [layout]",
        path.display()
    )]
    NoLayout { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Board {
        path: PathBuf,
        #[source]
        source: crate::board::BoardError,
    },
}

/// Load an agent config whose layout is explicit (`[layout]`).
pub fn load_config(path: &Path) -> Result<AgentConfig, ConfigError> {
    load_config_with(path, &BoardArgs::default())
}

/// Load an agent config. The layout is either explicit (`[layout]`) or
/// derived from a board profile: `board = "rk3588"` (or `--board`), the
/// profiles in `boards_dir` (or `--boards-dir`, else
/// the profiles built into the binary), and `[slots]` for the app and model
/// slots. Both a board and a `[layout]` is refused rather than one
/// silently winning: a wrong guess would write the wrong devices.
pub fn load_config_with(path: &Path, args: &BoardArgs) -> Result<AgentConfig, ConfigError> {
    let parse = |message: String| ConfigError::Parse {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| parse(e.to_string()))?;
    let mut take_str = |key: &str| match table.remove(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(parse(format!(
            "{key} must be a string, not {}",
            other.type_str()
        ))),
    };
    let board_cfg = take_str("board")?;
    let dir_cfg = take_str("boards_dir")?;
    let slots = table.remove("slots");
    match args.board.clone().or(board_cfg) {
        None if slots.is_some() => {
            return Err(ConfigError::SlotsWithoutBoard {
                path: path.to_path_buf(),
            });
        }
        None if !table.contains_key("layout") => {
            return Err(ConfigError::NoLayout {
                path: path.to_path_buf(),
            });
        }
        None => {}
        Some(board) if table.contains_key("layout") => {
            return Err(ConfigError::BoardAndLayout {
                path: path.to_path_buf(),
                board,
            });
        }
        Some(board) => {
            let other: BTreeMap<Component, [PathBuf; 2]> = slots
                .map(|v| v.try_into().map_err(|e| parse(format!("[slots]: {e}"))))
                .transpose()?
                .unwrap_or_default();
            let dir = args.boards_dir.clone().or(dir_cfg.map(PathBuf::from));
            let board_err = |source| ConfigError::Board {
                path: path.to_path_buf(),
                source,
            };
            let profile = match &dir {
                Some(dir) => crate::board::find_profile(dir, &board),
                None => crate::board::builtin_profile(&board),
            }
            .map_err(board_err)?;
            let layout = crate::board::layout(&profile, &other).map_err(board_err)?;
            // Back into the table, so that the rest of the config is read
            // (and its unknown fields refused) exactly as before.
            let value = toml::Value::try_from(&layout).map_err(|e| parse(e.to_string()))?;
            table.insert("layout".into(), value);
        }
    }
    table
        .try_into()
        .map_err(|e: toml::de::Error| parse(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_running_slots_come_from_the_command_line_and_ota_select() {
        let dir = tempfile::tempdir().unwrap();
        let p = LinuxPlatform {
            cmdline: "console=ttyS2 root=/dev/mmcblk0p3 ota.rootfs=B rw".into(),
            reboot_command: Vec::new(),
            run_dir: dir.path().to_path_buf(),
            watchdog: None,
        };
        std::fs::write(selected_path(dir.path(), Component::App), "A\n").unwrap();
        assert_eq!(p.booted(Component::Rootfs), Some(Slot::B));
        assert_eq!(p.booted(Component::App), Some(Slot::A));
        assert_eq!(p.booted(Component::Model), None);
    }

    #[test]
    fn root_chains_apply_the_newer_roots_all_or_nothing() {
        use crate::trust::{Role, Root, SecretKey, sign};
        let k = SecretKey::from_bytes(&[1; 32]);
        let v1 = Root::new_v1(vec![k.public_key()], 1, Vec::new(), 10_000, 100).unwrap();
        let mut trust =
            Trust::from_initial_root(&sign(v1.to_payload(), Role::Root, &[&k])).unwrap();
        let s1 = sign(v1.to_payload(), Role::Root, &[&k]);
        let mut v2 = v1.next();
        v2.issued = 200;
        let s2 = sign(v2.to_payload(), Role::Root, &[&k]);
        let chain = serde_json::to_vec(&[&s1, &s2]).unwrap();
        assert_eq!(apply_roots(&mut trust, &chain, 300), Ok(Some(2)));
        // The same chain again: nothing newer.
        assert_eq!(apply_roots(&mut trust, &chain, 300), Ok(None));
        assert!(
            apply_roots(&mut trust, b"{}", 300)
                .unwrap_err()
                .contains("not a list")
        );
        // v3 signed by a stranger: refused, trust stays at v2.
        let stranger = SecretKey::from_bytes(&[9; 32]);
        let mut v3 = v2.next();
        v3.issued = 250;
        let s3 = sign(v3.to_payload(), Role::Root, &[&stranger]);
        let chain = serde_json::to_vec(&[&s2, &s3]).unwrap();
        assert!(apply_roots(&mut trust, &chain, 300).is_err());
        assert_eq!(trust.root().version, 2);
    }

    const BASE: &str = r#"camera_id = "cam-1"
store_id = "s1"
state_dir = "/data/ota"
root_file = "/etc/ota/root.json"
version = "1.0.0"
allowed_urls = ["https://updates.example/"]
"#;
    const BROKER: &str = "[broker]\nhost = \"127.0.0.1\"\nport = 1883\n";
    const SLOTS: &str = "[slots]\napp = [\"/data/app/a\", \"/data/app/b\"]\n";
    const LAYOUT: &str = r#"[layout]
board = "rk3588"
[layout.env]
size = 8192
copies = [{ path = "/dev/null/env0" }, { path = "/dev/null/env1" }]
[layout.slots]
app = ["/data/app/a", "/data/app/b"]
"#;

    /// Write `parts` as one config and load it with `args`.
    fn load(parts: &[&str], args: &BoardArgs) -> Result<AgentConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, parts.concat()).unwrap();
        load_config_with(&path, args)
    }

    fn shipped() -> BoardArgs {
        BoardArgs {
            board: None,
            boards_dir: Some(boards::shipped_dir()),
        }
    }

    fn rk3588_layout() -> Layout {
        let profile = crate::board::find_profile(&boards::shipped_dir(), "rk3588").unwrap();
        let app = BTreeMap::from([(Component::App, ["/data/app/a".into(), "/data/app/b".into()])]);
        crate::board::layout(&profile, &app).unwrap()
    }

    #[test]
    fn a_config_naming_its_board_gets_the_profile_layout() {
        let cfg = load(&[BASE, "board = \"rk3588\"\n", BROKER, SLOTS], &shipped()).unwrap();
        assert_eq!(cfg.layout, rk3588_layout());
        assert_eq!(cfg.layout.env.copies[1].offset, 0x3fc000);
        // The rest of the config is read as before.
        assert_eq!(cfg.camera_id, "cam-1");
        assert_eq!(cfg.broker.port, 1883);
    }

    #[test]
    fn the_command_line_board_and_directory_win_over_the_config() {
        let cfg_dir = "boards_dir = \"/nonexistent/boards\"\n";
        let args = BoardArgs {
            board: Some("rk3588".into()),
            ..shipped()
        };
        let text = [BASE, "board = \"rv1106\"\n", cfg_dir, BROKER, SLOTS];
        let cfg = load(&text, &args).unwrap();
        assert_eq!(cfg.layout, rk3588_layout());
        // Without the override, the config's directory is used: refused there.
        let e = load(&text, &BoardArgs::default()).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/boards"), "{e}");
    }

    #[test]
    fn without_a_directory_the_built_in_profile_is_used() {
        let text = [BASE, "board = \"rk3588\"\n", BROKER, SLOTS];
        let cfg = load(&text, &BoardArgs::default()).unwrap();
        assert_eq!(cfg.layout, rk3588_layout());
        let e = load(
            &[BASE, "board = \"rk9999\"\n", BROKER],
            &BoardArgs::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("rk9999") && e.contains("rk3588"), "{e}");
    }

    #[test]
    fn an_explicit_layout_still_works_and_excludes_a_board() {
        let cfg = load(&[BASE, BROKER, LAYOUT], &BoardArgs::default()).unwrap();
        assert_eq!(cfg.layout.env.size, 8192);
        assert_eq!(cfg.layout.env.copies[0].path, Path::new("/dev/null/env0"));

        let e = load(&[BASE, "board = \"rk3588\"\n", BROKER, LAYOUT], &shipped()).unwrap_err();
        assert!(matches!(e, ConfigError::BoardAndLayout { .. }), "{e:?}");
        let args = BoardArgs {
            board: Some("rk3588".into()),
            ..shipped()
        };
        let e = load(&[BASE, BROKER, LAYOUT], &args)
            .unwrap_err()
            .to_string();
        assert!(e.contains("agent.toml") && e.contains("keep one"), "{e}");
    }

    #[test]
    fn configs_without_a_layout_or_with_stray_slots_are_refused() {
        let e = load(&[BASE, BROKER], &BoardArgs::default()).unwrap_err();
        assert!(matches!(e, ConfigError::NoLayout { .. }), "{e:?}");
        let e = load(&[BASE, BROKER, SLOTS], &BoardArgs::default()).unwrap_err();
        assert!(matches!(e, ConfigError::SlotsWithoutBoard { .. }), "{e:?}");
        let e = load(&[BASE, "board = 3588\n", BROKER], &shipped()).unwrap_err();
        assert!(e.to_string().contains("board must be a string"), "{e}");
        let bad_slots = "[slots]\nfirmware = [\"/a\", \"/b\"]\n";
        let e = load(
            &[BASE, "board = \"rk3588\"\n", BROKER, bad_slots],
            &shipped(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("[slots]"), "{e}");
    }

    #[test]
    fn an_unknown_board_in_the_config_names_the_known_ones() {
        let e = load(&[BASE, "board = \"rk3399\"\n", BROKER], &shipped())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("rk3399") && e.contains("rk3588, rv1106, rv1126"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_reboot_command_is_an_error_not_a_silent_success() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = LinuxPlatform::new(Vec::new(), dir.path());
        assert!(p.reboot().unwrap_err().contains("no reboot_command"));
        let mut p = LinuxPlatform::new(vec!["false".into()], dir.path());
        assert!(p.reboot().unwrap_err().contains("exited"));
    }
}
