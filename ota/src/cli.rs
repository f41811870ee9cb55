//! The `ota` subcommands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, anyhow, bail};
use clap::{Parser, Subcommand};

use ota::agent::{self, LinuxPlatform};
use ota::announce::{Announcement, Window};
use ota::boot;
use ota::bundle::{self, Release};
use ota::install::{self, Layout};
use ota::manifest::{Component, DEFAULT_CHUNK, Manifest};
use ota::rollout;
use ota::trust::{Delegation, PublicKey, Role, Root, SecretKey, Signed, Trust};

#[derive(Debug, Parser)]
#[command(
    name = "ota",
    version,
    about = "Signed A/B updates for the retail camera"
)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Make an Ed25519 key pair: <NAME>.key (secret, mode 600) and <NAME>.pub.
    Keygen { name: PathBuf },
    /// Root of trust: create, sign, rotate.
    #[command(subcommand)]
    Root(RootCmd),
    /// Build and sign a bundle from images.
    Sign {
        /// The manifest signing key (delegated by the root).
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        version: String,
        /// Anti-rollback counter; cameras refuse a lower one.
        #[arg(long)]
        counter: u64,
        /// Compatible board (boards/<name>.toml); repeat for several.
        #[arg(long = "board", required = true)]
        boards: Vec<String>,
        /// Check the boards against this directory of profiles.
        #[arg(long)]
        boards_dir: Option<PathBuf>,
        #[arg(long)]
        rootfs: Option<PathBuf>,
        #[arg(long)]
        app: Option<PathBuf>,
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long, default_value_t = DEFAULT_CHUNK)]
        chunk_size: u32,
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Show a bundle's manifest and signatures (no trust needed).
    Inspect { bundle: PathBuf },
    /// Verify a bundle completely against a root (and its rotations).
    Verify {
        bundle: PathBuf,
        /// The root, then each later root in order.
        #[arg(long = "root", required = true)]
        roots: Vec<PathBuf>,
    },
    /// Install a bundle (file or http(s) URL) into the inactive slots of
    /// the agent's layout; the next boot tries them.
    Install {
        source: String,
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        board: BoardOpts,
    },
    /// Publish a campaign in waves, watch the reports, halt on failures.
    Rollout {
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
    },
    /// Publish the chain of roots after the factory one (retained), so
    /// that cameras rotate their root of trust.
    PublishRoots {
        /// host:port of the broker.
        #[arg(long)]
        broker: String,
        #[arg(long, default_value = "ota/roots")]
        topic: String,
        /// Signed roots, version 2 first.
        #[arg(required = true)]
        roots: Vec<PathBuf>,
    },
    /// Run the update agent on the camera.
    Agent {
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        board: BoardOpts,
        /// Command that reboots the camera.
        #[arg(long, num_args = 1.., default_values = ["systemctl", "reboot"])]
        reboot_command: Vec<String>,
    },
    /// Choose the slot of an app or model at start (the boot contract of
    /// docs/ota.md, run by the launcher); prints the slot's path.
    Select {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        component: String,
        #[command(flatten)]
        board: BoardOpts,
    },
    /// Benchmark: verify and write a payload vs sha256sum + cp.
    Bench {
        /// Payload size in MiB.
        #[arg(long, default_value_t = 256)]
        size_mib: u64,
        /// Working directory (default: a temporary one).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// The board whose profile gives the agent's layout (instead of the
/// config's `[layout]`).
#[derive(Debug, clap::Args)]
struct BoardOpts {
    /// Board profile name (boards/<NAME>.toml); overrides the config's
    /// `board`.
    #[arg(long)]
    board: Option<String>,
    /// Directory of board profiles; overrides the config's `boards_dir`
    /// (default: /usr/share/retail-camera/boards).
    #[arg(long)]
    boards_dir: Option<PathBuf>,
}

impl BoardOpts {
    fn load(self, config: &Path) -> anyhow::Result<agent::AgentConfig> {
        let args = agent::BoardArgs {
            board: self.board,
            boards_dir: self.boards_dir,
        };
        Ok(agent::load_config_with(config, &args)?)
    }
}

#[derive(Debug, Subcommand)]
enum RootCmd {
    /// A new root (version 1), unsigned: sign it with `ota root sign`.
    New {
        /// Root public keys.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        #[arg(long, default_value_t = 1)]
        threshold: u32,
        /// A delegated signer: ROLE=PUBFILE, ROLE is manifest or announcement.
        #[arg(long = "signer")]
        signers: Vec<String>,
        #[arg(long, default_value = "3650d")]
        expires_in: humantime::Duration,
        #[arg(long, short)]
        out: PathBuf,
    },
    /// The successor of a root (version + 1), unsigned; it must be signed
    /// by the old root's keys and its own.
    Next {
        root: PathBuf,
        /// Replace the root keys.
        #[arg(long = "key")]
        keys: Vec<PathBuf>,
        #[arg(long)]
        threshold: Option<u32>,
        #[arg(long = "add-signer")]
        add_signers: Vec<String>,
        /// Revoke a key (its .pub file or key id).
        #[arg(long = "revoke")]
        revoke: Vec<String>,
        #[arg(long, default_value = "3650d")]
        expires_in: humantime::Duration,
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Add a root key's signature to a root document, in place.
    Sign {
        root: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn read_secret(path: &Path) -> anyhow::Result<SecretKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SecretKey::from_text(text.trim()).with_context(|| format!("secret key {}", path.display()))
}

fn read_public(path: &Path) -> anyhow::Result<PublicKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    PublicKey::from_hex(text.trim()).with_context(|| format!("public key {}", path.display()))
}

fn read_signed(path: &Path) -> anyhow::Result<Signed> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a signed document", path.display()))
}

fn write_json(path: &Path, v: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

fn parse_signer(s: &str, expires: u64) -> anyhow::Result<Delegation> {
    let (role, path) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("signer {s:?} is not ROLE=PUBFILE"))?;
    let role = match role {
        "manifest" => Role::Manifest,
        "announcement" => Role::Announcement,
        _ => bail!("signer role {role:?} is not manifest or announcement"),
    };
    Ok(Delegation {
        key: read_public(Path::new(path))?,
        roles: vec![role],
        expires,
        note: Some(path.to_string()),
    })
}

/// Load a root and apply its rotations.
pub fn load_trust(roots: &[PathBuf]) -> anyhow::Result<Trust> {
    let (first, rest) = roots
        .split_first()
        .ok_or_else(|| anyhow!("no root given"))?;
    let mut t = Trust::from_initial_root(&read_signed(first)?)
        .with_context(|| format!("root {}", first.display()))?;
    for p in rest {
        t.update_root(&read_signed(p)?, now_s())
            .with_context(|| format!("root {}", p.display()))?;
    }
    Ok(t)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.cmd {
        Cmd::Keygen { name } => {
            let key = SecretKey::generate()?;
            let secret = name.with_extension("key");
            let public = name.with_extension("pub");
            write_secret(&secret, &key.to_text())?;
            std::fs::write(&public, key.public_key().to_hex() + "\n")?;
            println!(
                "{}: key id {}\nsecret {} (keep it offline)",
                public.display(),
                key.key_id(),
                secret.display()
            );
        }
        Cmd::Root(rc) => root_cmd(rc)?,
        Cmd::Sign {
            key,
            version,
            counter,
            boards,
            boards_dir,
            rootfs,
            app,
            model,
            chunk_size,
            out,
        } => {
            if let Some(dir) = boards_dir {
                // A bundle names boards by their profile; a typo would
                // make it installable nowhere.
                for b in &boards {
                    boards::Profile::find(&dir, b)
                        .with_context(|| format!("board {b} has no valid profile"))?;
                }
            }
            let key = read_secret(&key)?;
            let mut images: Vec<(Component, &Path)> = Vec::new();
            for (c, p) in [
                (Component::Rootfs, &rootfs),
                (Component::App, &app),
                (Component::Model, &model),
            ] {
                if let Some(p) = p {
                    images.push((c, p.as_path()));
                }
            }
            if images.is_empty() {
                bail!("give at least one of --rootfs, --app, --model");
            }
            let release = Release {
                version,
                security_counter: counter,
                issued: now_s(),
                compatible: boards,
                chunk_size,
            };
            let m = bundle::create(&out, &release, &images, &[&key])
                .with_context(|| format!("writing {}", out.display()))?;
            println!(
                "{}: version {} counter {}, {} image(s), {} payload bytes",
                out.display(),
                m.version,
                m.security_counter,
                m.images.len(),
                m.payload_len()
            );
        }
        Cmd::Inspect { bundle } => {
            let mut f = std::fs::File::open(&bundle)
                .with_context(|| format!("opening {}", bundle.display()))?;
            let signed = bundle::read_header(&mut f)?;
            let m = Manifest::parse(&signed.payload)?;
            let keyids: Vec<String> = signed
                .signatures
                .iter()
                .map(|s| s.keyid.to_string())
                .collect();
            let mut v = serde_json::to_value(&m)?;
            if let Some(imgs) = v.get_mut("images").and_then(|i| i.as_array_mut()) {
                for i in imgs {
                    if let Some(o) = i.as_object_mut() {
                        let n = o
                            .get("chunks")
                            .and_then(|c| c.as_array())
                            .map_or(0, Vec::len);
                        o.insert(
                            "chunks".into(),
                            serde_json::json!(format!("{n} chunk hashes")),
                        );
                    }
                }
            }
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"manifest": v, "signed_by": keyids})
                )?
            );
        }
        Cmd::Verify { bundle, roots } => {
            let trust = load_trust(&roots)?;
            let mut f = std::fs::File::open(&bundle)
                .with_context(|| format!("opening {}", bundle.display()))?;
            let (m, signers) = install::verify(&mut f, &trust, now_s())?;
            println!(
                "{}: OK, version {} counter {} for {:?}, signed by {:?}",
                bundle.display(),
                m.version,
                m.security_counter,
                m.compatible,
                signers
            );
        }
        Cmd::Install {
            source,
            config,
            board,
        } => {
            let cfg = board.load(&config)?;
            let j = agent::open_journal(&cfg)?;
            let path = if source.starts_with("http://") || source.starts_with("https://") {
                let dest = agent::download_path(&cfg);
                let req = ota::download::Request {
                    url: source.clone(),
                    dest: dest.clone(),
                    expected_len: None,
                    max_len: cfg.max_bundle_bytes,
                    policy: ota::download::RetryPolicy::default(),
                };
                let never = AtomicBool::new(false);
                ota::download::download(&req, &mut |_| {}, &never)?;
                dest
            } else {
                PathBuf::from(&source)
            };
            let mut layout: Layout = cfg.layout.clone();
            let platform = LinuxPlatform::new(Vec::new(), &cfg.run_dir);
            for c in Component::ALL {
                if let Some(s) = agent::Platform::booted(&platform, c) {
                    layout.booted.insert(c, s);
                }
            }
            let mut f = std::fs::File::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            let never = AtomicBool::new(false);
            let done = install::install(
                &mut f,
                &j.trust,
                &layout,
                now_s(),
                None,
                &mut |_, _| {},
                &never,
            )?;
            for (c, s) in &done.targets {
                println!("{c}: slot {s} pending ({} tries)", boot::TRIES);
            }
            println!("version {}: reboot to try it", done.manifest.version);
        }
        Cmd::Rollout {
            broker,
            key,
            campaign,
            url,
            bundle,
            waves,
            failure_threshold,
            wave_time,
            window,
            seq,
            announce_topic,
            report_topic,
            validity,
        } => {
            let key = read_secret(&key)?;
            let mut f = std::fs::File::open(&bundle)
                .with_context(|| format!("opening {}", bundle.display()))?;
            let signed = bundle::read_header(&mut f)?;
            let m = Manifest::parse(&signed.payload)?;
            let size = std::fs::metadata(&bundle)?.len();
            let (host, port) = broker
                .rsplit_once(':')
                .ok_or_else(|| anyhow!("--broker must be host:port"))?;
            let window = window
                .map(|w| {
                    Window::parse(&w).ok_or_else(|| anyhow!("--window {w:?} is not HH:MM-HH:MM"))
                })
                .transpose()?;
            if waves.is_empty() || waves.iter().any(|w| *w == 0 || *w > 100) {
                bail!("--waves must be percentages 1..=100");
            }
            let c = rollout::Campaign {
                host: host.to_string(),
                port: port.parse().context("--broker port")?,
                announce_topic,
                report_topic,
                announcement: Announcement {
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
                },
                plan: rollout::Plan {
                    waves,
                    failure_threshold,
                    wave_time_s: wave_time.as_secs(),
                },
                key: &key,
                validity_s: validity.as_secs(),
            };
            let stop = Arc::new(AtomicBool::new(false));
            let outcome =
                rollout::run(&c, &stop, &mut |line| println!("{line}")).map_err(|e| anyhow!(e))?;
            println!("{}", serde_json::to_string(&outcome_json(&outcome))?);
            return Ok(match outcome {
                rollout::Outcome::Done(_) => ExitCode::SUCCESS,
                rollout::Outcome::Halted { .. } => ExitCode::from(2),
                rollout::Outcome::Stopped(_) => ExitCode::from(3),
            });
        }
        Cmd::PublishRoots {
            broker,
            topic,
            roots,
        } => {
            // Check the chain as a camera will, before it reaches one.
            let chain = roots
                .iter()
                .map(|p| read_signed(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let first = roots.first().ok_or_else(|| anyhow!("no root given"))?;
            let first_root = Root::parse(&chain[0].payload)
                .with_context(|| format!("root {}", first.display()))?;
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
                &topic,
                serde_json::to_vec(&chain)?,
            )?;
            println!(
                "{topic}: {} root(s), up to version {}",
                chain.len(),
                first_root.version + chain.len() as u64 - 1
            );
        }
        Cmd::Agent {
            config,
            board,
            reboot_command,
        } => {
            let cfg = board.load(&config)?;
            let stop = Arc::new(AtomicBool::new(false));
            signal_hook_stop(&stop);
            let mut platform = LinuxPlatform::new(reboot_command, &cfg.run_dir);
            let exit = agent::run(&cfg, &mut platform, &stop)?;
            tracing::info!("ota agent: {exit:?}");
        }
        Cmd::Select {
            config,
            component,
            board,
        } => {
            let cfg = board.load(&config)?;
            let c = Component::parse(&component)
                .ok_or_else(|| anyhow!("component {component:?} is not rootfs, app or model"))?;
            let slots = cfg
                .layout
                .slots
                .get(&c)
                .ok_or_else(|| anyhow!("the layout has no slots for {c}"))?;
            let cur = cfg.layout.env.read_vars()?;
            let fallback = agent::last_good(&cfg, c);
            let sel = boot::select(cur.as_ref().map(|c| &c.vars), c, fallback);
            if let (Some(cur), Some(w)) = (&cur, &sel.write) {
                cfg.layout.env.write(Some(cur), w)?;
            }
            // The agent learns from this record which slot is running.
            std::fs::create_dir_all(&cfg.run_dir)
                .with_context(|| format!("creating {}", cfg.run_dir.display()))?;
            let record = agent::selected_path(&cfg.run_dir, c);
            std::fs::write(&record, format!("{}\n", sel.slot))
                .with_context(|| format!("writing {}", record.display()))?;
            eprintln!("{c}: slot {} ({:?})", sel.slot, sel.choice);
            println!("{}", slots[sel.slot.index()].display());
        }
        Cmd::Bench { size_mib, dir } => {
            let report = bench(size_mib, dir.as_deref())?;
            println!("{report}");
        }
    }
    Ok(ExitCode::SUCCESS)
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

fn signal_hook_stop(stop: &Arc<AtomicBool>) {
    // SIGTERM from systemd: finish the current step, save, exit. Failing
    // to register leaves the default (exit), which the journal survives.
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let _ = signal_hook::flag::register(sig, Arc::clone(stop));
    }
}

#[cfg(unix)]
fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(())
}

fn root_cmd(rc: RootCmd) -> anyhow::Result<()> {
    match rc {
        RootCmd::New {
            keys,
            threshold,
            signers,
            expires_in,
            out,
        } => {
            let now = now_s();
            let expires = now + expires_in.as_secs();
            let keys = keys
                .iter()
                .map(|p| read_public(p))
                .collect::<Result<Vec<_>, _>>()?;
            let signers = signers
                .iter()
                .map(|s| parse_signer(s, expires))
                .collect::<Result<Vec<_>, _>>()?;
            let root = Root::new_v1(keys, threshold, signers, expires, now)?;
            let signed = Signed {
                payload: root.to_payload(),
                signatures: Vec::new(),
            };
            write_json(&out, &signed)?;
            println!(
                "{}: root version 1, sign it with `ota root sign`",
                out.display()
            );
        }
        RootCmd::Next {
            root,
            keys,
            threshold,
            add_signers,
            revoke,
            expires_in,
            out,
        } => {
            let old = Root::parse(&read_signed(&root)?.payload)?;
            let now = now_s();
            let mut next = old.next();
            next.issued = now;
            next.expires = now + expires_in.as_secs();
            if !keys.is_empty() {
                next.keys = keys
                    .iter()
                    .map(|p| read_public(p))
                    .collect::<Result<_, _>>()?;
            }
            if let Some(t) = threshold {
                next.threshold = t;
            }
            for s in &add_signers {
                next.signers.push(parse_signer(s, next.expires)?);
            }
            for r in &revoke {
                let id = if Path::new(r).exists() {
                    read_public(Path::new(r))?.key_id()
                } else {
                    serde_json::from_value(serde_json::Value::String(r.clone()))
                        .with_context(|| format!("--revoke {r}: not a .pub file or key id"))?
                };
                next.signers.retain(|d| d.key.key_id() != id);
                next.revoked.push(id);
            }
            next.validate()?;
            write_json(
                &out,
                &Signed {
                    payload: next.to_payload(),
                    signatures: Vec::new(),
                },
            )?;
            println!(
                "{}: root version {}; sign it with the keys of version {} and its own",
                out.display(),
                next.version,
                old.version
            );
        }
        RootCmd::Sign { root, key } => {
            let mut signed = read_signed(&root)?;
            let key = read_secret(&key)?;
            signed.add_signature(Role::Root, &key);
            write_json(&root, &signed)?;
            println!(
                "{}: {} signature(s)",
                root.display(),
                signed.signatures.len()
            );
        }
    }
    Ok(())
}

/// `ota bench`: verify and write a payload of `size_mib` MiB through the
/// real install path (header and signature check, chunk hashes, write,
/// sync, read-back hash, environment write), against `sha256sum` plus
/// `cp` of the same payload. Medians of five runs, warm page cache for
/// both; the install also pays its fsync and a read-back from the device.
pub fn bench(size_mib: u64, dir: Option<&Path>) -> anyhow::Result<String> {
    use std::time::Instant;
    let tmp;
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => {
            tmp = tempdir_in_var_tmp()?;
            tmp.clone()
        }
    };
    std::fs::create_dir_all(&dir)?;
    let size = size_mib << 20;
    let payload = dir.join("payload.img");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&payload)?);
        let mut rng = fastrand::Rng::with_seed(7);
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..size_mib {
            rng.fill(&mut buf);
            f.write_all(&buf)?;
        }
        f.flush()?;
    }
    // A throwaway root and signer.
    let root_key = SecretKey::generate()?;
    let signer = SecretKey::generate()?;
    let now = now_s();
    let root = Root::new_v1(
        vec![root_key.public_key()],
        1,
        vec![Delegation {
            key: signer.public_key(),
            roles: vec![Role::Manifest],
            expires: now + 86_400,
            note: None,
        }],
        now + 86_400,
        now,
    )?;
    let trust = Trust::from_initial_root(&ota::trust::sign(
        root.to_payload(),
        Role::Root,
        &[&root_key],
    ))?;
    let bundle_path = dir.join("bench.bundle");
    let release = Release {
        version: "bench".into(),
        security_counter: 1,
        issued: now,
        compatible: vec!["bench".into()],
        chunk_size: DEFAULT_CHUNK,
    };
    bundle::create(
        &bundle_path,
        &release,
        &[(Component::Rootfs, &payload)],
        &[&signer],
    )?;
    let slots = [dir.join("slot-a"), dir.join("slot-b")];
    for s in &slots {
        std::fs::File::create(s)?.set_len(size)?;
    }
    let mut vars = ota::env::Vars::new();
    vars.insert(boot::var(Component::Rootfs, "active"), "A".into());
    let env = ota::slots::EnvStore::create_files(&dir, 16 * 1024, &vars)?;
    let layout = Layout {
        board: "bench".into(),
        env,
        slots: [(Component::Rootfs, slots.clone())].into_iter().collect(),
        booted: Default::default(),
    };
    let copy = dir.join("payload.copy");
    let time = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        let t = Instant::now();
        f()?;
        Ok(t.elapsed().as_secs_f64())
    };
    let run_cmd = |cmd: &str, args: &[&Path]| -> anyhow::Result<()> {
        let st = std::process::Command::new(cmd)
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .with_context(|| format!("running {cmd}"))?;
        if !st.success() {
            bail!("{cmd} failed: {st}");
        }
        Ok(())
    };
    let (mut sums, mut cps, mut installs) = (Vec::new(), Vec::new(), Vec::new());
    // One warm-up round, then five measured.
    for round in 0..6 {
        let s = time(&mut || run_cmd("sha256sum", &[&payload]))?;
        let _ = std::fs::remove_file(&copy);
        let c = time(&mut || run_cmd("cp", &[&payload, &copy]))?;
        let never = AtomicBool::new(false);
        let i = time(&mut || {
            let mut f = std::fs::File::open(&bundle_path)?;
            install::install(
                &mut f,
                &trust,
                &layout,
                now_s(),
                None,
                &mut |_, _| {},
                &never,
            )?;
            Ok(())
        })?;
        if round > 0 {
            sums.push(s);
            cps.push(c);
            installs.push(i);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (s, c, i) = (median(&mut sums), median(&mut cps), median(&mut installs));
    for f in [&payload, &copy, &bundle_path, &slots[0], &slots[1]] {
        let _ = std::fs::remove_file(f);
    }
    let mib = size_mib as f64;
    Ok(serde_json::to_string_pretty(&serde_json::json!({
        "payload_mib": size_mib,
        "runs": installs.len(),
        "sha256sum_s_median": s,
        "cp_s_median": c,
        "baseline_s": s + c,
        "install_s_median": i,
        "install_mib_per_s": mib / i,
        "speed_vs_baseline": (s + c) / i,
        "sha2_backend": sha_backend(),
        "peak_rss_mib": peak_rss_mib(),
    }))?)
}

/// The process's peak resident memory (VmHWM), when the kernel says.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn sha_backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sha") {
        return "sha-ni";
    }
    "software"
}

fn tempdir_in_var_tmp() -> anyhow::Result<PathBuf> {
    // /var/tmp: on disk (a tmpfs /tmp would flatter the baseline's cp).
    let base = Path::new("/var/tmp");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let d = base.join(format!("ota-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
