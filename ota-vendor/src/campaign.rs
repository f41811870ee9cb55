//! `ota-vendor rollout` and `publish-roots`: what the vendor sends the
//! cameras over MQTT.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, anyhow, bail};

use ota::announce::{Announcement, Window};
use ota::bundle;
use ota::manifest::Manifest;
use ota::rollout;
use ota::trust::Root;

use crate::files::{read_secret, read_signed};

/// The flags of `ota-vendor rollout` (its help is the doc of `cli::Cmd::Rollout`).
#[derive(Debug, clap::Args)]
pub struct RolloutArgs {
    /// host:port of the broker.
    #[arg(long)]
    broker: String,
    /// The announcement signing key.
    #[arg(long)]
    key: PathBuf,
    #[arg(long)]
    campaign: String,
    /// Where cameras download the bundle.
    #[arg(long)]
    url: String,
    /// The bundle itself, for its manifest and size.
    #[arg(long)]
    bundle: PathBuf,
    /// Wave percentages, e.g. 5,25,100.
    #[arg(long, value_delimiter = ',', default_value = "5,25,100")]
    waves: Vec<u8>,
    /// Halt when this share of a wave's finished cameras failed.
    #[arg(long, default_value_t = 0.2)]
    failure_threshold: f64,
    /// Longest time a wave may take (e.g. 2h).
    #[arg(long, default_value = "2h")]
    wave_time: humantime::Duration,
    /// Maintenance window in store time, HH:MM-HH:MM.
    #[arg(long)]
    window: Option<String>,
    /// Starting sequence number (raise it above an earlier campaign
    /// run's last).
    #[arg(long, default_value_t = 1)]
    seq: u64,
    #[arg(long, default_value = "ota/announce")]
    announce_topic: String,
    #[arg(long, default_value = "stores/+/cameras/+/ota/report")]
    report_topic: String,
    /// How long each announcement is valid (e.g. 7d).
    #[arg(long, default_value = "7d")]
    validity: humantime::Duration,
}

/// `ota-vendor rollout`: announce wave after wave, watch the reports,
/// halt on failures. Exits 0 when done, 2 when halted, 3 when stopped.
pub fn rollout(a: RolloutArgs) -> anyhow::Result<ExitCode> {
    let key = read_secret(&a.key)?;
    let announcement = announcement_for(&a.bundle, a.campaign, a.url, a.seq, a.window)?;
    let (host, port) = a
        .broker
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("--broker must be host:port"))?;
    if a.waves.is_empty() || a.waves.iter().any(|w| *w == 0 || *w > 100) {
        bail!("--waves must be percentages 1..=100");
    }
    let c = rollout::Campaign {
        host: host.to_string(),
        port: port.parse().context("--broker port")?,
        announce_topic: a.announce_topic,
        report_topic: a.report_topic,
        announcement,
        plan: rollout::Plan {
            waves: a.waves,
            failure_threshold: a.failure_threshold,
            wave_time_s: a.wave_time.as_secs(),
        },
        key: &key,
        validity_s: a.validity.as_secs(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let outcome =
        rollout::run(&c, &stop, &mut |line| println!("{line}")).map_err(|e| anyhow!(e))?;
    println!("{}", serde_json::to_string(&outcome_json(&outcome))?);
    Ok(match outcome {
        rollout::Outcome::Done(_) => ExitCode::SUCCESS,
        rollout::Outcome::Halted { .. } => ExitCode::from(2),
        rollout::Outcome::Stopped(_) => ExitCode::from(3),
    })
}

/// The announcement of `bundle` (its manifest's version, counter and
/// boards, its size), not yet issued: `percent` 0, times 0.
fn announcement_for(
    bundle_path: &Path,
    campaign: String,
    url: String,
    seq: u64,
    window: Option<String>,
) -> anyhow::Result<Announcement> {
    let mut f = std::fs::File::open(bundle_path)
        .with_context(|| format!("opening {}", bundle_path.display()))?;
    let signed = bundle::read_header(&mut f)?;
    let m = Manifest::parse(&signed.payload)?;
    let size = std::fs::metadata(bundle_path)?.len();
    let window = window
        .map(|w| Window::parse(&w).ok_or_else(|| anyhow!("--window {w:?} is not HH:MM-HH:MM")))
        .transpose()?;
    Ok(Announcement {
        kind: "announcement".into(),
        campaign,
        seq,
        issued: 0,
        expires: 0,
        url,
        version: m.version.clone(),
        security_counter: m.security_counter,
        size,
        boards: m.compatible.clone(),
        percent: 0,
        window,
        halted: false,
    })
}

/// The flags of `ota-vendor announce` (its help is the doc of `cli::Cmd::Announce`).
#[derive(Debug, clap::Args)]
pub struct AnnounceArgs {
    /// The announcement signing key.
    #[arg(long)]
    key: PathBuf,
    #[arg(long)]
    campaign: String,
    /// Where cameras download the bundle.
    #[arg(long)]
    url: String,
    /// The bundle itself, for its manifest and size.
    #[arg(long)]
    bundle: PathBuf,
    /// Share of the cameras (by their seed) that go ahead.
    #[arg(long, default_value_t = 100)]
    percent: u8,
    /// Sequence number within the campaign (raise it for each change).
    #[arg(long, default_value_t = 1)]
    seq: u64,
    /// Maintenance window in store time, HH:MM-HH:MM.
    #[arg(long)]
    window: Option<String>,
    /// Announce the campaign halted.
    #[arg(long)]
    halted: bool,
    /// How long the announcement is valid (e.g. 7d).
    #[arg(long, default_value = "7d")]
    validity: humantime::Duration,
    /// Where to write the signed announcement (what goes, retained, on
    /// `ota/announce`).
    #[arg(long, short)]
    out: PathBuf,
}

/// `ota-vendor announce`: one signed announcement in a file, for a back
/// office that publishes by itself (and for tests); `rollout` signs the
/// same announcements wave by wave.
pub fn announce(a: AnnounceArgs) -> anyhow::Result<()> {
    if a.percent > 100 {
        bail!("--percent must be 0..=100");
    }
    let key = read_secret(&a.key)?;
    let mut ann = announcement_for(&a.bundle, a.campaign, a.url, a.seq, a.window)?;
    ann.percent = a.percent;
    ann.halted = a.halted;
    ann.issued = crate::cli::now_s();
    ann.expires = ann.issued + a.validity.as_secs();
    let signed = ota::trust::sign(ann.to_payload(), ota::trust::Role::Announcement, &[&key]);
    // An announcement already published keeps its file (a resend must
    // raise seq, not replace what cameras saw).
    if a.out.exists() {
        bail!("{} must not exist yet", a.out.display());
    }
    crate::files::write_json(&a.out, &signed)?;
    println!(
        "{}: campaign {} seq {}, {} {} for {}% of {}",
        a.out.display(),
        ann.campaign,
        ann.seq,
        ann.version,
        ann.url,
        ann.percent,
        ann.boards.join(", ")
    );
    Ok(())
}

/// `ota-vendor publish-roots`: the chain of roots after the factory one,
/// retained on `topic`.
pub fn publish_roots(broker: &str, topic: &str, roots: &[PathBuf]) -> anyhow::Result<()> {
    // Check the chain as a camera will, before it reaches one.
    let chain = roots
        .iter()
        .map(|p| read_signed(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let first = roots.first().ok_or_else(|| anyhow!("no root given"))?;
    let first_root =
        Root::parse(&chain[0].payload).with_context(|| format!("root {}", first.display()))?;
    if first_root.version < 2 {
        bail!(
            "{} is version 1: publish the roots that follow it",
            first.display()
        );
    }
    let (host, port) = broker
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("--broker must be host:port"))?;
    publish_retained(
        host,
        port.parse().context("--broker port")?,
        topic,
        serde_json::to_vec(&chain)?,
    )?;
    println!(
        "{topic}: {} root(s), up to version {}",
        chain.len(),
        first_root.version + chain.len() as u64 - 1
    );
    Ok(())
}

/// Publish one retained message at QoS 1 and wait for its PUBACK.
fn publish_retained(host: &str, port: u16, topic: &str, body: Vec<u8>) -> anyhow::Result<()> {
    use rumqttc::{Client, Event, Incoming, MqttOptions, QoS};
    let mut opts = MqttOptions::new(format!("ota-publish-{}", std::process::id()), host, port);
    opts.set_max_packet_size(2 << 20, 2 << 20);
    let (client, mut conn) = Client::new(opts, 8);
    client.publish(topic, QoS::AtLeastOnce, true, body)?;
    for ev in conn.iter() {
        match ev {
            Ok(Event::Incoming(Incoming::PubAck(_))) => break,
            Ok(_) => {}
            Err(e) => bail!("broker {host}:{port}: {e}"),
        }
    }
    let _ = client.disconnect();
    Ok(())
}

fn outcome_json(o: &rollout::Outcome) -> serde_json::Value {
    match o {
        rollout::Outcome::Done(s) => serde_json::json!({"outcome": "done", "waves": s}),
        rollout::Outcome::Halted { reason, stats } => {
            serde_json::json!({"outcome": "halted", "reason": reason, "waves": stats})
        }
        rollout::Outcome::Stopped(s) => serde_json::json!({"outcome": "stopped", "waves": s}),
    }
}
