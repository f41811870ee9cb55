//! The power-cut run loop shared by the engine and config store tests.
//!
//! One run: start a writer on the power-cut filesystem, let it write for a
//! random short time, SIGKILL it, cut the power, then start the writer in
//! check mode, which lists what the store holds and stores one more
//! record. Every record a writer reported durable must be there, intact.

#![allow(dead_code)] // Each test binary uses part of it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use powercut::protocol::Line;
use powercut::{Mounted, PowerCutFs};

/// A writer program and what it stores.
#[derive(Debug, Clone, Copy)]
pub struct Engine {
    pub name: &'static str,
    pub exe: &'static str,
    /// Where the store lives inside its directory (empty: the directory).
    pub file: &'static str,
    /// Only the latest record is kept (a config), not all of them.
    pub latest_only: bool,
}

/// The figures of a series of runs.
#[derive(Debug, Default)]
pub struct Figures {
    pub runs: usize,
    pub stores: usize,
    /// Records the writers reported durable (check-mode writes included).
    pub reported: usize,
    /// Of those, missing after a cut (each counted once).
    pub lost: usize,
    /// Found with another payload than the one reported.
    pub corrupt: usize,
    pub runs_with_loss: usize,
    /// Runs killed before the writer reported anything.
    pub silent_runs: usize,
    /// Runs after which the store could not be opened or read.
    pub unopenable: usize,
    /// Writers that stopped by themselves (an error) before the kill.
    pub writer_failed: usize,
    /// Check-mode writes that got an id not above every id reported before.
    pub ids_reused: usize,
    /// Cuts that found unsynced writes to drop.
    pub cuts_that_dropped: usize,
    pub first_errors: Vec<String>,
    pub elapsed: Duration,
}

impl Figures {
    pub fn summary(&self, engine: &str, seed: u64) -> String {
        format!(
            "{engine}: {} runs on {} stores in {:.1} s: {} records reported durable, {} lost \
             ({} runs with losses, {} runs killed before reporting any), {} corrupt, {} runs \
             unopenable, {} writers failed, {} ids reused; {} cuts dropped unsynced writes; seed {seed} \
             (POWERCUT_SEED={seed} repeats the timings)",
            self.runs,
            self.stores,
            self.elapsed.as_secs_f64(),
            self.reported,
            self.lost,
            self.runs_with_loss,
            self.silent_runs,
            self.corrupt,
            self.unopenable,
            self.writer_failed,
            self.ids_reused,
            self.cuts_that_dropped,
        )
    }
}

/// The seed for this test's timings: `POWERCUT_SEED`, else a random one
/// (printed with the figures, so that a failure can be replayed).
pub fn seed() -> u64 {
    std::env::var("POWERCUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

/// Runs per engine: `POWERCUT_RUNS`, else 200.
pub fn runs() -> usize {
    std::env::var("POWERCUT_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

/// Mount a fresh power-cut filesystem in a temporary directory; the
/// directory outlives the mount (fields drop in order).
pub struct Mount {
    pub fs: Mounted,
    _dir: tempfile::TempDir,
}

pub fn mount() -> Mount {
    let dir = tempfile::tempdir().expect("temporary directory");
    let fs = PowerCutFs::mount(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    Mount { fs, _dir: dir }
}

/// Kills the child if a test panics while it runs.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(engine: &Engine, mode: &str, path: &Path, tag: u64) -> Reaped {
    let child = Command::new(engine.exe)
        .arg(mode)
        .arg(path)
        .arg(tag.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", engine.exe));
    Reaped(child)
}

/// Complete lines only: a line cut short by the kill was not reported.
fn read_lines(out: impl Read) -> Vec<Line> {
    let mut reader = BufReader::new(out);
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) if buf.ends_with(b"\n") => {
                let text = String::from_utf8_lossy(&buf[..buf.len() - 1]);
                lines.extend(Line::parse(&text));
            }
            Ok(_) => break,
        }
    }
    lines
}

/// Run a writer to completion (create or check); `Err` with its stderr if
/// it failed or hung.
fn run_to_end(engine: &Engine, mode: &str, path: &Path, tag: u64) -> Result<Vec<Line>, String> {
    let mut child = spawn(engine, mode, path, tag);
    let stdout = child.0.stdout.take().expect("stdout");
    let mut stderr = child.0.stderr.take().expect("stderr");
    let lines = thread::spawn(move || read_lines(stdout));
    let errors = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.0.kill();
            break None;
        }
        thread::sleep(Duration::from_millis(2));
    };
    let lines = lines.join().expect("stdout reader");
    let errors = errors.join().expect("stderr reader");
    match status {
        Some(s) if s.success() => Ok(lines),
        Some(s) => Err(format!("{mode} exited with {s}: {}", errors.trim())),
        None => Err(format!("{mode} hung for 30 s: {}", errors.trim())),
    }
}

/// How a series of power cuts is run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub runs: usize,
    /// A fresh store every so many runs.
    pub per_store: usize,
    /// Create each store first and make it durable (`sync_tree`), as a
    /// clean first shutdown would. Neither redb nor sled fsyncs the
    /// directory holding its files, so without this a cut loses the whole
    /// store until something else syncs that directory (see
    /// docs/outbox.md). With it, what is measured is the durability of
    /// what the writer reports once the store exists; without it, a first
    /// boot.
    pub provision: bool,
    pub seed: u64,
}

/// A series of power cuts on `engine`.
pub fn power_cuts(engine: &Engine, plan: Plan) -> Figures {
    let Plan {
        runs,
        per_store,
        provision,
        seed,
    } = plan;
    let start = Instant::now();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mount = mount();
    let mut f = Figures::default();
    let mut store: Option<PathBuf> = None;
    let mut runs_on_store = 0;
    // id -> payload of every record reported and not yet found missing.
    let mut expected: BTreeMap<u64, String> = BTreeMap::new();
    let mut max_reported: Option<u64> = None;
    for run in 0..runs {
        if store.is_none() || runs_on_store == per_store {
            // The directory holding the store is the device's data
            // partition: it exists, durably, before the store does.
            let dir = mount.fs.path().join(format!("store{}", f.stores));
            std::fs::create_dir(&dir).expect("store directory");
            std::fs::File::open(mount.fs.path())
                .and_then(|d| d.sync_all())
                .expect("sync the mount's root");
            let path = dir.join(engine.file);
            if provision {
                run_to_end(engine, "create", &path, 0).unwrap_or_else(|e| {
                    panic!("{}: creating {}: {e}", engine.name, path.display())
                });
                powercut::sync_tree(&dir).expect("sync the new store");
            }
            store = Some(path);
            f.stores += 1;
            runs_on_store = 0;
            expected.clear();
            max_reported = None;
        }
        let Some(path) = store.clone() else {
            unreachable!("a store was just made")
        };
        runs_on_store += 1;
        f.runs += 1;
        let tag = run as u64 + 1;

        // Write for a random short time; now and then kill it while it is
        // still opening (recovering) the store.
        let mut child = spawn(engine, "write", &path, tag);
        let stdout = child.0.stdout.take().expect("stdout");
        let reader = thread::spawn(move || read_lines(stdout));
        let ms = match rng.u8(..40) {
            0..4 => rng.u64(0..10),
            // Past sled's 500 ms background sync, now and then.
            4 => rng.u64(500..900),
            _ => rng.u64(10..80),
        };
        thread::sleep(Duration::from_millis(ms));
        // SIGKILL: the power goes for the writer first...
        let _ = child.0.kill();
        let status = child.0.wait().expect("wait for the writer");
        if status.signal().is_none() {
            f.writer_failed += 1;
            let mut err = String::new();
            if let Some(mut e) = child.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            if f.first_errors.len() < 5 {
                f.first_errors.push(format!(
                    "run {run}: the writer stopped ({status}): {}",
                    err.trim()
                ));
            }
        }
        drop(child);
        let reported = reader.join().expect("stdout reader");
        // ...then for the disk.
        let cut = mount.fs.cut();
        if cut.files_reverted + cut.dirs_reverted + cut.inodes_dropped > 0 {
            f.cuts_that_dropped += 1;
        }
        f.silent_runs += usize::from(!reported.iter().any(|l| matches!(l, Line::Ok { .. })));
        for line in reported {
            if let Line::Ok { id, payload } = line {
                f.reported += 1;
                max_reported = max_reported.max(Some(id));
                if engine.latest_only {
                    expected.clear();
                }
                expected.insert(id, payload);
            }
        }

        let found = match run_to_end(engine, "check", &path, tag) {
            Ok(lines) => lines,
            Err(e) => {
                f.unopenable += 1;
                f.lost += expected.len();
                f.runs_with_loss += usize::from(!expected.is_empty());
                if f.first_errors.len() < 5 {
                    f.first_errors
                        .push(format!("run {run}: {} unopenable: {e}", path.display()));
                }
                // The store is dead; the next run starts a new one.
                store = None;
                continue;
            }
        };
        let (mut lost, mut corrupt) = (0, 0);
        let mut have = BTreeMap::new();
        let mut extra = None;
        for line in found {
            match line {
                Line::Have { id, payload } => {
                    // A config's body is a function of its version, so even
                    // an unreported one can be checked whole.
                    if engine.latest_only && payload != powercut::protocol::payload(0, id) {
                        corrupt += 1;
                    }
                    have.insert(id, payload);
                }
                Line::Ok { id, payload } => extra = Some((id, payload)),
            }
        }
        let newest_kept = have.keys().next_back().copied();
        expected.retain(|id, payload| match have.get(id) {
            Some(p) if p == payload => true,
            Some(p) => {
                corrupt += 1;
                if f.first_errors.len() < 5 {
                    f.first_errors.push(format!(
                        "run {run}: record {id} reads {p:?}, not {payload:?}"
                    ));
                }
                false
            }
            // A config keeps only its latest version: a later one is fine.
            None if engine.latest_only && newest_kept.is_some_and(|n| n > *id) => true,
            None => {
                lost += 1;
                if f.first_errors.len() < 5 {
                    f.first_errors.push(format!(
                        "run {run}: record {id} reported durable, missing after the cut"
                    ));
                }
                false
            }
        });
        f.lost += lost;
        f.corrupt += corrupt;
        f.runs_with_loss += usize::from(lost + corrupt > 0);
        // The check's own write: reported durable too, and its id must be
        // above all before it.
        if let Some((id, payload)) = extra {
            f.reported += 1;
            if max_reported.is_some_and(|m| id <= m) {
                f.ids_reused += 1;
            }
            max_reported = max_reported.max(Some(id));
            if engine.latest_only {
                expected.clear();
            }
            expected.insert(id, payload);
        }
    }
    f.elapsed = start.elapsed();
    f
}
