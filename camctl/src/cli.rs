//! camctl's command line: arguments, and each subcommand as a call into
//! the library with its output printed.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use camctl::audit::{self, CameraCounts, Settings, TallyFile, Tap};
use camctl::commands::Store;
use camctl::configure;
use camctl::fleet::CameraSummary;
use camctl::session::{BrokerOptions, Session};
use camctl::topics::{DEFAULT_TEMPLATE, Layout};
use clap::{Parser, Subcommand};
use tokio::io::AsyncBufReadExt as _;

/// Exit code when the camera said no (a configuration rejected) or an
/// audit failed: the command itself worked.
const REFUSED: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "camctl",
    version,
    about = "The installer's tool for a store's cameras: list them, configure them, watch their counts, audit their accuracy"
)]
pub struct Args {
    /// The store's broker, HOST or HOST:PORT (1883, or 8883 with --ca).
    #[arg(
        long,
        env = "CAMCTL_BROKER",
        default_value = "127.0.0.1",
        global = true
    )]
    broker: String,
    /// CA certificate (PEM) of the broker: connect with TLS.
    #[arg(long, env = "CAMCTL_CA", global = true)]
    ca: Option<PathBuf>,
    /// Client certificate and key (PEM), for brokers that ask for one.
    #[arg(long, env = "CAMCTL_CERT", global = true, requires = "key")]
    cert: Option<PathBuf>,
    #[arg(long, env = "CAMCTL_KEY", global = true, requires = "cert")]
    key: Option<PathBuf>,
    #[arg(long, env = "CAMCTL_USERNAME", global = true)]
    username: Option<String>,
    #[arg(long, env = "CAMCTL_PASSWORD", global = true, hide_env_values = true)]
    password: Option<String>,
    /// The store whose cameras to address.
    #[arg(long, env = "CAMCTL_STORE", default_value = "store", global = true)]
    store: String,
    /// The cameras' topic prefix template (`[link] topic_prefix`).
    #[arg(long, default_value = DEFAULT_TEMPLATE, global = true)]
    topic_prefix: String,
    /// Seconds to wait for the broker to accept the connection.
    #[arg(long, default_value_t = 10, global = true)]
    connect_timeout: u64,
    /// Log what camctl does (to stderr).
    #[arg(long, short, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The store's cameras: online, firmware, configuration, frame rate,
    /// tamper, clock and storage.
    Cameras {
        /// Seconds to listen for health reports (every camera sends one a
        /// minute by default).
        #[arg(long, default_value_t = 2.0)]
        wait: f64,
        /// One JSON object per camera instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Read, check or apply a camera's analytics configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Ask a camera for one snapshot (people blurred) and save it.
    Snapshot {
        camera: String,
        /// Where to write the JPEG.
        #[arg(long, short)]
        out: PathBuf,
        #[arg(long, default_value_t = 15)]
        timeout: u64,
    },
    /// Print a camera's bins and events as they arrive (JSON lines).
    Watch {
        camera: String,
        /// Stop after this many seconds (default: until interrupted).
        #[arg(long = "for")]
        duration: Option<f64>,
    },
    /// The web configurator: open the address it prints in a browser.
    Serve {
        /// Where the page listens (loopback only).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
    },
    /// An accuracy audit: taps (from stdin, one `in`, `out` or `passer`
    /// per line, or a tally file) against the camera's crossings.
    Audit(AuditArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the configuration in force (JSON).
    Get { camera: String },
    /// Send a configuration file (TOML or JSON) with the next version and
    /// print the camera's answer with every reason.
    Set {
        camera: String,
        file: PathBuf,
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Check a configuration file with the camera's own rules, offline.
    Check {
        file: PathBuf,
        /// The camera's running version (the file's must be newer).
        #[arg(long)]
        running: Option<u64>,
    },
}

#[derive(Debug, clap::Args)]
struct AuditArgs {
    /// The camera to audit live (not with --records).
    camera: Option<String>,
    /// Seconds to watch the door (live audits).
    #[arg(long = "for")]
    duration: Option<f64>,
    /// Taps from a file (`in +12.5`, `out 2026-12-05T10:00:12Z`, ...)
    /// instead of stdin.
    #[arg(long)]
    tally: Option<PathBuf>,
    /// The camera's records from `camctl watch`, for an audit after the
    /// fact (the tally then gives the window with `start` and `end`).
    #[arg(long, requires = "tally", conflicts_with = "camera")]
    records: Option<PathBuf>,
    /// Only this line's crossings (default: every line's).
    #[arg(long)]
    line: Option<String>,
    /// Percent accuracy needed to pass.
    #[arg(long, default_value_t = 95.0)]
    threshold: f64,
    /// Seconds between a tap and a crossing that still match.
    #[arg(long, default_value_t = 3.0)]
    tolerance: f64,
    /// Folder for report.json, report.html, tally.txt and records.jsonl.
    #[arg(long, short)]
    out: PathBuf,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let layout = Layout::new(&args.topic_prefix, &args.store)?;
    match &args.command {
        Command::Config(ConfigCommand::Check { file, running }) => return check(file, *running),
        Command::Audit(a) if a.records.is_some() => return audit_records(a),
        _ => {}
    }
    let session = Session::connect(&broker_options(&args)?).await?;
    let store = Store::new(session, layout);
    let code = match args.command {
        Command::Cameras { wait, json } => cameras(&store, wait, json).await?,
        Command::Config(ConfigCommand::Get { camera }) => {
            let v = store.config(&camera).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
            ExitCode::SUCCESS
        }
        Command::Config(ConfigCommand::Set {
            camera,
            file,
            timeout,
        }) => {
            let doc = configure::read_file(&file)?;
            let applied = store
                .apply(&camera, doc, Duration::from_secs(timeout))
                .await?;
            println!("{}", serde_json::to_string(&applied.result)?);
            if applied.accepted {
                eprintln!(
                    "camera {camera} accepted version {}{}",
                    applied.version,
                    if applied.confirmed {
                        " and runs it"
                    } else {
                        " (its config/state did not confirm it yet)"
                    }
                );
                ExitCode::SUCCESS
            } else {
                eprintln!("camera {camera} rejected version {}:", applied.version);
                for p in applied.result["problems"].as_array().into_iter().flatten() {
                    eprintln!("  {}", p.as_str().unwrap_or_default());
                }
                ExitCode::from(REFUSED)
            }
        }
        Command::Snapshot {
            camera,
            out,
            timeout,
        } => {
            let jpeg = store
                .snapshot(&camera, Duration::from_secs(timeout))
                .await?;
            std::fs::write(&out, &jpeg).with_context(|| format!("writing {}", out.display()))?;
            eprintln!("{} bytes written to {}", jpeg.len(), out.display());
            ExitCode::SUCCESS
        }
        Command::Watch { camera, duration } => watch(&store, &camera, duration).await?,
        Command::Audit(a) => audit_live(&store, &a).await?,
        Command::Serve { listen } => {
            let listener = camctl::serve::bind(listen).await?;
            let addr = listener.local_addr()?;
            // Tests and scripts read the address from this line.
            println!(
                "camctl serve: open http://{addr}/ (store {:?} on {})",
                store.layout.store(),
                store.session.broker()
            );
            camctl::serve::serve(store, listener).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Config(ConfigCommand::Check { .. }) => unreachable!("handled above"),
    };
    store.session.close().await;
    Ok(code)
}

fn broker_options(args: &Args) -> anyhow::Result<BrokerOptions> {
    let tls = args.ca.as_ref().map(|ca| mqtt_tls::TlsConfig {
        ca_file: ca.clone(),
        cert_file: args.cert.clone(),
        key_file: args.key.clone(),
    });
    let default_port = if tls.is_some() { 8883 } else { 1883 };
    let (host, port) = match args.broker.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => (
            h.trim_matches(['[', ']']).to_string(),
            p.parse::<u16>()
                .with_context(|| format!("--broker {}: {p:?} is not a port", args.broker))?,
        ),
        _ => (args.broker.clone(), default_port),
    };
    if host.is_empty() {
        bail!("--broker {:?}: no host name", args.broker);
    }
    Ok(BrokerOptions {
        host,
        port,
        tls,
        username: args.username.clone(),
        password: args.password.clone(),
        connect_timeout: Duration::from_secs(args.connect_timeout),
    })
}

async fn cameras(store: &Store, wait: f64, json: bool) -> anyhow::Result<ExitCode> {
    let list = store
        .cameras(Duration::from_secs_f64(wait.max(0.0)))
        .await?;
    if json {
        for c in &list {
            println!("{}", serde_json::to_string(c)?);
        }
    } else {
        print!("{}", table(&list));
    }
    if list.is_empty() {
        eprintln!(
            "no cameras in store {:?} on {} (check --store and --topic-prefix)",
            store.layout.store(),
            store.session.broker()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn table(list: &[CameraSummary]) -> String {
    let rows: Vec<[String; 8]> = list
        .iter()
        .map(|c| {
            let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".into());
            [
                c.camera.clone(),
                match c.online {
                    Some(true) => "online".into(),
                    Some(false) => "offline".into(),
                    None => "?".into(),
                },
                opt(&c.firmware_version),
                c.config_version.map_or("-".into(), |v| v.to_string()),
                c.fps.map_or("-".into(), |f| format!("{f:.1}")),
                if c.tamper.is_empty() {
                    if c.health_time_us.is_some() {
                        "ok".into()
                    } else {
                        "-".into()
                    }
                } else {
                    c.tamper.join("+")
                },
                opt(&c.clock),
                match (&c.storage, c.storage_free_bytes) {
                    (Some(s), Some(b)) => format!("{s} ({:.0} MB free)", b as f64 / 1e6),
                    (Some(s), None) => s.clone(),
                    _ => "-".into(),
                },
            ]
        })
        .collect();
    let head = [
        "CAMERA", "STATUS", "FIRMWARE", "CONFIG", "FPS", "TAMPER", "CLOCK", "STORAGE",
    ]
    .map(String::from);
    let mut widths = head.clone().map(|h| h.len());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&head).chain(&rows) {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn check(file: &Path, running: Option<u64>) -> anyhow::Result<ExitCode> {
    let doc = configure::read_file(file)?;
    let (version, doc) = configure::with_version(doc, running);
    let problems = configure::check(&doc, running);
    if problems.is_empty() {
        eprintln!(
            "{}: version {version} passes the camera's checks",
            file.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("{}: {} problem(s):", file.display(), problems.len());
    for p in &problems {
        eprintln!("  {}", p.message);
    }
    Ok(ExitCode::from(REFUSED))
}

async fn watch(store: &Store, camera: &str, duration: Option<f64>) -> anyhow::Result<ExitCode> {
    let mut rx = store
        .follow(camera, &["bins", "events", "tamper", "status"])
        .await?;
    let until = tokio::time::Instant::now()
        + duration.map_or(
            Duration::from_secs(100 * 365 * 86_400),
            Duration::from_secs_f64,
        );
    let mut stdout = std::io::stdout();
    loop {
        let m = tokio::select! {
            m = camctl::commands::next_message(&mut rx, until) => m,
            _ = tokio::signal::ctrl_c() => None,
        };
        let Some(m) = m else { break };
        // Records as the camera published them, one per line.
        let text = String::from_utf8_lossy(&m.payload);
        if writeln!(stdout, "{}", text.trim_end()).is_err() {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A live audit: the window starts now.
async fn audit_live(store: &Store, a: &AuditArgs) -> anyhow::Result<ExitCode> {
    let camera = a
        .camera
        .as_deref()
        .context("camctl audit: name the camera to audit (or give --records and --tally)")?;
    let secs = a
        .duration
        .filter(|d| *d > 0.0)
        .context("camctl audit: give the window in seconds with --for")?;
    let tally = a.tally.as_deref().map(TallyFile::read).transpose()?;
    store.online(camera).await?;
    let start_us = now_us();
    let end_us = start_us + (secs * 1e6) as u64;
    let until = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    let taps_task = match &tally {
        Some(_) => None,
        None => {
            eprintln!(
                "audit of {camera} for {secs:.0} s: type in, out or passer (or i, o, p) and Enter as people pass"
            );
            Some(tokio::spawn(read_taps(until)))
        }
    };
    let recording = store.record(camera, until).await?;
    let taps: Vec<Tap> = match (&tally, taps_task) {
        (Some(t), _) => t.resolve(start_us, end_us).2,
        (None, Some(task)) => task.await.context("reading taps")?,
        (None, None) => Vec::new(),
    };
    let (start, end) = match &tally {
        Some(t) => {
            let (s, e, _) = t.resolve(start_us, end_us);
            (s, e)
        }
        None => (start_us, end_us),
    };
    finish(
        camera,
        start,
        end,
        &taps,
        &recording.counts,
        &recording.records,
        a,
    )
}

/// Taps typed on stdin, stamped as they arrive, until `until`.
async fn read_taps(until: tokio::time::Instant) -> Vec<Tap> {
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut taps = Vec::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout_at(until, lines.next_line()).await {
        let t_us = now_us();
        match audit::Kind::parse(line.trim()) {
            Some(kind) => taps.push(Tap { t_us, kind }),
            None if line.trim().is_empty() => {}
            None => eprintln!("{:?}: not a tap (in, out, passer or i, o, p)", line.trim()),
        }
    }
    taps
}

/// An audit of records kept earlier (`camctl watch > records.jsonl`).
fn audit_records(a: &AuditArgs) -> anyhow::Result<ExitCode> {
    let (Some(records), Some(tally_path)) = (&a.records, &a.tally) else {
        bail!("camctl audit --records needs --tally");
    };
    let tally = TallyFile::read(tally_path)?;
    let (start, end) = tally.absolute_window(tally_path)?;
    let (_, _, taps) = tally.resolve(start, end);
    let text = std::fs::read_to_string(records)
        .with_context(|| format!("reading {}", records.display()))?;
    let mut counts = CameraCounts::default();
    let mut kept = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}, line {}: not JSON", records.display(), n + 1))?;
        if counts.add_record(&v) {
            kept.push(v);
        }
    }
    let camera = kept
        .iter()
        .find_map(|v| v["camera"].as_str())
        .unwrap_or("camera")
        .to_string();
    finish(&camera, start, end, &taps, &counts, &kept, a)
}

fn finish(
    camera: &str,
    start: u64,
    end: u64,
    taps: &[Tap],
    counts: &CameraCounts,
    records: &[serde_json::Value],
    a: &AuditArgs,
) -> anyhow::Result<ExitCode> {
    let settings = Settings {
        tolerance_us: (a.tolerance.max(0.0) * 1e6) as u64,
        threshold: a.threshold / 100.0,
        line: a.line.clone(),
    };
    let report = audit::audit(camera, start, end, taps, counts, &settings);
    let (json, html) = camctl::report::write(&report, &a.out)?;
    let mut tally = format!("start {}\n", audit::rfc3339(start));
    for t in taps {
        tally.push_str(&format!("{} {}\n", t.kind.as_str(), audit::rfc3339(t.t_us)));
    }
    tally.push_str(&format!("end {}\n", audit::rfc3339(end)));
    let tally_path = a.out.join("tally.txt");
    std::fs::write(&tally_path, tally)
        .with_context(|| format!("writing {}", tally_path.display()))?;
    let records_path = a.out.join("records.jsonl");
    let lines: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&records_path, lines)
        .with_context(|| format!("writing {}", records_path.display()))?;
    for d in &report.directions {
        println!(
            "{:<4} tapped {:>3}  counted {:>3}  missed {:>3}  extra {:>3}  accuracy {}",
            d.direction.as_str(),
            d.truth,
            d.counted,
            d.missed,
            d.extra,
            d.accuracy
                .map_or("-".into(), |a| format!("{:.1} %", a * 100.0))
        );
    }
    for i in report.timeline.iter().filter(|i| i.outcome != "matched") {
        println!("  {} {} at {:.1} s", i.outcome, i.direction.as_str(), i.t_s);
    }
    println!("{}", report.verdict);
    eprintln!("report: {} and {}", html.display(), json.display());
    Ok(if report.pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(REFUSED)
    })
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
