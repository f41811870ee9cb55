//! The `ota` subcommands on the camera: `provision`, `agent`, `install`,
//! `select`, `unit-stopped`.
//!
//! `inspect` and `verify` are not here but in `ota-vendor`: on a camera
//! `install` already verifies a bundle (header, signatures, board, counter,
//! slot sizes) before its first write, against the camera's own trust
//! store, the factory root with the rotations and revocations it has
//! received. `verify --root FILE` would judge against whichever root files
//! a technician passed, which may say "OK" to a bundle this camera refuses.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, anyhow};
use clap::{Parser, Subcommand};

use ota::agent::{self, LinuxPlatform};
use ota::boot;
use ota::install::{self, Layout};
use ota::manifest::Component;
use provisioning::Installed;

#[derive(Debug, Parser)]
#[command(
    name = "ota",
    version,
    about = "Signed A/B updates on the retail camera: the update agent and the boot contract"
)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Install the camera's factory bundle (identity, broker, certificates,
    /// the store chain's root of trust) once, after checking the vendor's
    /// signature. Run at first boot; the same bundle again is a no-op.
    Provision {
        /// The signed factory bundle.
        bundle: PathBuf,
        /// The vendor's factory public keys (one hex key per line).
        #[arg(long, default_value = "/etc/ota/factory-keys")]
        factory_keys: PathBuf,
        /// Where the contents are installed.
        #[arg(long, default_value = "/data/factory")]
        dir: PathBuf,
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
        /// Only record the slot the bootloader already chose (`ota.rootfs=`
        /// on the kernel command line, else the active one) and its
        /// version, without applying the boot rules again.
        #[arg(long)]
        booted: bool,
        #[command(flatten)]
        board: BoardOpts,
    },
    /// A service the camera needs stopped (systemd runs this after
    /// camera-app or the agent stops: ExecStopPost=, with
    /// $SERVICE_RESULT). A failure during a trial reboots the camera, so
    /// that the boot count ends a trial whose new slot hangs (killed by
    /// its watchdog) or crashes; on committed slots systemd restarts the
    /// service as usual.
    UnitStopped {
        #[arg(long)]
        config: PathBuf,
        /// The unit that stopped, for the log.
        #[arg(long)]
        unit: String,
        /// How it stopped, as systemd says: success, exit-code, signal,
        /// core-dump, watchdog, timeout, ...
        #[arg(long, env = "SERVICE_RESULT")]
        result: String,
        #[command(flatten)]
        board: BoardOpts,
        /// Command that reboots the camera; it must not wait for the
        /// unit that runs it to stop.
        #[arg(long, num_args = 1.., default_values = ["systemctl", "--no-block", "reboot"])]
        reboot_command: Vec<String>,
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

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.cmd {
        Cmd::Provision {
            bundle,
            factory_keys,
            dir,
        } => {
            let (done, id) = ota::provision::provision(&bundle, &factory_keys, &dir)?;
            let what = match done {
                Installed::New => "provisioned",
                Installed::Already => "already provisioned",
            };
            println!(
                "{what}: camera {} of store {} (bundle {}) in {}",
                id.camera_id,
                id.store_id,
                id.serial,
                dir.display()
            );
        }
        Cmd::Install {
            source,
            config,
            board,
        } => {
            let mut cfg = board.load(&config)?;
            if !cfg.apply_provisioning()? {
                anyhow::bail!("{}", unprovisioned(&cfg));
            }
            install(&source, &cfg)?;
        }
        Cmd::Agent {
            config,
            board,
            reboot_command,
        } => {
            let mut cfg = board.load(&config)?;
            let stop = Arc::new(AtomicBool::new(false));
            signal_hook_stop(&stop);
            if !wait_for_provisioning(&mut cfg, &stop)? {
                return Ok(ExitCode::SUCCESS);
            }
            let mut platform = LinuxPlatform::new(reboot_command, &cfg.run_dir);
            let exit = agent::run(&cfg, &mut platform, &stop)?;
            tracing::info!("ota agent: {exit:?}");
        }
        Cmd::Select {
            config,
            component,
            booted,
            board,
        } => select(&board.load(&config)?, &component, booted)?,
        Cmd::UnitStopped {
            config,
            unit,
            result,
            board,
            reboot_command,
        } => unit_stopped(&board.load(&config)?, &unit, &result, reboot_command)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn unprovisioned(cfg: &agent::AgentConfig) -> String {
    format!(
        "camera not provisioned: nothing in {} (ota provision installs the factory bundle); \
         no update is trusted until then",
        cfg.provisioning
            .as_deref()
            .unwrap_or(Path::new("?"))
            .display()
    )
}

/// An unprovisioned camera trusts no root and knows no broker: the agent
/// says so and waits, doing nothing, until provisioning appears or it is
/// stopped (`Ok(false)`).
fn wait_for_provisioning(cfg: &mut agent::AgentConfig, stop: &AtomicBool) -> anyhow::Result<bool> {
    let mut said = false;
    loop {
        if cfg.apply_provisioning()? {
            return Ok(true);
        }
        if !said {
            tracing::error!("{}", unprovisioned(cfg));
            said = true;
        }
        for _ in 0..50 {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(false);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `ota install`: download (for a URL), then verify and write into the
/// inactive slots under the camera's trust store.
fn install(source: &str, cfg: &agent::AgentConfig) -> anyhow::Result<()> {
    let j = agent::open_journal(cfg)?;
    let path = if source.starts_with("http://") || source.starts_with("https://") {
        let dest = agent::download_path(cfg);
        let req = ota::download::Request {
            url: source.to_string(),
            dest: dest.clone(),
            expected_len: None,
            max_len: cfg.max_bundle_bytes,
            policy: ota::download::RetryPolicy::default(),
        };
        let never = AtomicBool::new(false);
        ota::download::download(&req, &mut |_| {}, &never)?;
        dest
    } else {
        PathBuf::from(source)
    };
    let mut layout: Layout = cfg.layout.clone();
    let platform = LinuxPlatform::new(Vec::new(), &cfg.run_dir);
    for c in Component::ALL {
        if let Some(s) = agent::Platform::booted(&platform, c) {
            layout.booted.insert(c, s);
        }
    }
    let mut f =
        std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
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
    Ok(())
}

/// `ota select`: the boot contract for an app or model slot; prints the
/// path of the slot to use and records, in the run directory, the slot
/// (`<c>.slot`, read by the agent) and the release version the signed
/// manifest gave it (`<c>.version`, reported by camera-app; absent for a
/// factory slot).
fn select(cfg: &agent::AgentConfig, component: &str, booted: bool) -> anyhow::Result<()> {
    let c = Component::parse(component)
        .ok_or_else(|| anyhow!("component {component:?} is not rootfs, app or model"))?;
    let slots = cfg
        .layout
        .slots
        .get(&c)
        .ok_or_else(|| anyhow!("the layout has no slots for {c}"))?;
    let cur = cfg.layout.env.read_vars()?;
    let fallback = agent::last_good(cfg, c);
    let slot = if booted {
        use ota::agent::Platform as _;
        let platform = LinuxPlatform::new(Vec::new(), &cfg.run_dir);
        let slot = platform.booted(c).unwrap_or_else(|| {
            cur.as_ref()
                .map_or(fallback.unwrap_or(boot::Slot::A), |cur| {
                    boot::state(&cur.vars, c, fallback).active
                })
        });
        eprintln!("{c}: slot {slot} (booted)");
        slot
    } else {
        let sel = boot::select(cur.as_ref().map(|c| &c.vars), c, fallback);
        if let (Some(cur), Some(w)) = (&cur, &sel.write) {
            cfg.layout.env.write(Some(cur), w)?;
        }
        eprintln!("{c}: slot {} ({:?})", sel.slot, sel.choice);
        sel.slot
    };
    // The agent learns from this record which slot is running.
    std::fs::create_dir_all(&cfg.run_dir)
        .with_context(|| format!("creating {}", cfg.run_dir.display()))?;
    let record = agent::selected_path(&cfg.run_dir, c);
    std::fs::write(&record, format!("{slot}\n"))
        .with_context(|| format!("writing {}", record.display()))?;
    let version = cur
        .as_ref()
        .and_then(|cur| boot::version(&cur.vars, c, slot));
    let record = agent::version_path(&cfg.run_dir, c);
    match version {
        Some(v) => std::fs::write(&record, format!("{v}\n")),
        None => std::fs::remove_file(&record).or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        }),
    }
    .with_context(|| format!("recording {}", record.display()))?;
    println!("{}", slots[slot.index()].display());
    Ok(())
}

/// `ota unit-stopped`: reboot when a service failed during a trial.
fn unit_stopped(
    cfg: &agent::AgentConfig,
    unit: &str,
    result: &str,
    reboot_command: Vec<String>,
) -> anyhow::Result<()> {
    use ota::agent::Platform as _;
    let Some(cur) = cfg.layout.env.read_vars()? else {
        // No trial can be known; the boot rules already run the last good
        // slots (EnvLost).
        tracing::warn!(
            "{unit} stopped ({result}); the boot environment cannot be read: nothing to do"
        );
        return Ok(());
    };
    let mut platform = LinuxPlatform::new(reboot_command, &cfg.run_dir);
    match boot::after_stop(result, boot::trials(&cur.vars, |c| platform.booted(c))) {
        boot::AfterStop::Nothing => {
            if result != "success" {
                tracing::info!("{unit} stopped ({result}) on committed slots: systemd restarts it");
            }
        }
        boot::AfterStop::Reboot(trials) => {
            let on: Vec<String> = trials.iter().map(ToString::to_string).collect();
            tracing::warn!(
                "{unit} failed ({result}) during the trial of {}: rebooting, so that the boot \
                 count ends a trial that keeps failing",
                on.join(", ")
            );
            platform.reboot().map_err(|e| anyhow!("rebooting: {e}"))?;
        }
    }
    Ok(())
}

fn signal_hook_stop(stop: &Arc<AtomicBool>) {
    // SIGTERM from systemd: finish the current step, save, exit. Failing
    // to register leaves the default (exit), which the journal survives.
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let _ = signal_hook::flag::register(sig, Arc::clone(stop));
    }
}
