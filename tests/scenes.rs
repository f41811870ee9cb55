//! End to end on the generated store scenes (`tests/scenes/*.toml`): every
//! scene is rendered with `scenegen`, played through the camera as it runs
//! (`camera_app::runtime::run`: the real detector, the camera state
//! machine, the effects), and the bins and events are compared with the
//! scene's exact ground truth.
//!
//! Acceptance (issue 3): in/out counts exact on ≥ 95 % of scenes and the
//! total count error ≤ 2 %; jitter and u-turn scenes produce no false
//! crossing; dwell within 1 s of the truth for ≥ 90 % of visits; passers-by
//! and entry rate within 5 %. The per-scene table and the figures are
//! printed (run with `--nocapture`).
//!
//! The door scenes (`tests/doors/`, issue 17) are also played a second
//! time with the truth's boxes as the detections, which splits what is
//! left between the detector and the tracker with the rules.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use camera_app::capture::files::DEFAULT_START_US;
use camera_core::analytics::report::{EventKind, Record};
use scenegen::{Scenario, Truth};

/// Scenes whose point is that nothing extra is counted.
const NO_FALSE_CROSSING: [&str; 4] = [
    "standing_near_line",
    "jittering_walker",
    "u_turn_before_line",
    "u_turn_after_line",
];

#[derive(Debug, Default, Clone)]
struct SceneResult {
    name: String,
    /// Per door line: (truth in, truth out, counted in, counted out).
    lines: BTreeMap<String, (u64, u64, u64, u64)>,
    passers_truth: u64,
    passers: u64,
    entries_truth: u64,
    entries: u64,
    /// (truth dwell, measured dwell or None when no visit matched).
    dwell: Vec<(f64, Option<f64>)>,
}

impl SceneResult {
    fn exact(&self) -> bool {
        self.lines
            .values()
            .all(|&(ti, to, ci, co)| ti == ci && to == co)
    }

    fn extra_crossings(&self) -> u64 {
        self.lines
            .values()
            .map(|&(ti, to, ci, co)| ci.saturating_sub(ti) + co.saturating_sub(to))
            .sum()
    }
}

/// A scene rendered and played through the camera as it runs.
struct PlayedScene {
    scenario: Scenario,
    truth: Truth,
    /// Where it was rendered (frames, analytics.toml).
    dir: PathBuf,
    /// The passers-by line or zone of the scene's analytics.
    street: Option<String>,
    records: Vec<Record>,
}

/// Render `path` into `work` and play it.
fn play(path: &Path, work: &Path) -> PlayedScene {
    let scenario = Scenario::load(path).expect("scenario");
    let dir = work.join(&scenario.name);
    let truth: Truth =
        scenegen::render(&scenario, &common::images_dir(), &dir).expect("render scene");
    let (analytics, _) =
        camera_app::runtime::setup::load_analytics(&dir.join("analytics.toml")).expect("analytics");
    let played = common::play_scene(&dir, truth.fps, &scenario.name, false);
    assert_eq!(
        played.summary.processed as usize, truth.frames,
        "{}",
        scenario.name
    );
    PlayedScene {
        street: analytics.passers_by.clone(),
        records: played.analytics().cloned().collect(),
        scenario,
        truth,
        dir,
    }
}

/// The truth's boxes stand in for the detector's: people at least this
/// share visible (in the frame, not behind somebody nearer) are found.
const PERFECT_VISIBLE: f64 = 0.3;

/// Play a rendered scene through the camera's state machine (tracker,
/// analytics, as the camera runs them) with the truth's boxes as the
/// detections: what the rules count when the detector misses nobody it
/// could see, and finds nobody else.
fn play_perfect_detections(played: &PlayedScene) -> Vec<Record> {
    use camera_app::capture::FrameSource;
    use camera_app::capture::files::{FileSource, FilesConfig, decode_mjpeg};
    use camera_core::camera::{Camera, FrameInput, Input, Output, Sequences, Settings};
    use camera_core::detection::{BBox, Detection};
    use camera_core::frame::PixelFormat;

    let name = &played.scenario.name;
    let cfg = camera_app::config::Config::default_config().expect("default config");
    let (analytics, _) =
        camera_app::runtime::setup::load_analytics(&played.dir.join("analytics.toml"))
            .expect("analytics");
    let settings = Settings {
        camera_id: name.clone(),
        labels: vec!["person".into()],
        tracker: cfg.tracker.clone(),
        tamper: cfg.tamper.clone(),
        sequences: Sequences::default(),
    };
    let mut camera = Camera::new(analytics, settings).expect("camera");
    let mut source = FileSource::open(FilesConfig {
        fps: f64::from(played.truth.fps),
        ..FilesConfig::new(played.dir.join("frames"))
    })
    .expect("frames");
    let mut records = Vec::new();
    let mut keep = |out: &[Output]| {
        records.extend(out.iter().filter_map(|o| match o {
            Output::Record(r) => Some(r.clone()),
            Output::Tamper(_) => None,
        }));
    };
    let mut detections = Vec::new();
    let mut k = 0;
    while let Some(frame) = source.next_frame().expect("frame") {
        let frame = match frame.format {
            PixelFormat::Mjpeg => decode_mjpeg(&frame).expect("jpeg"),
            _ => frame,
        };
        let people = played.truth.frames_people.get(k).unwrap_or_else(|| {
            panic!(
                "{name}: frame {k} has no truth (the truth has {} frames)",
                played.truth.frames_people.len()
            )
        });
        detections.clear();
        detections.extend(
            people
                .iter()
                .filter(|p| p.visible >= PERFECT_VISIBLE)
                .map(|p| Detection {
                    class_id: 0,
                    score: 0.9,
                    bbox: BBox {
                        x1: p.bbox[0] as f32,
                        y1: p.bbox[1] as f32,
                        x2: p.bbox[2] as f32,
                        y2: p.bbox[3] as f32,
                    },
                }),
        );
        let input = Input::Frame(FrameInput {
            frame: &frame,
            detections: &detections,
            rgb: &mut || None,
        });
        keep(&camera.handle(input).records);
        k += 1;
    }
    assert_eq!(k, played.truth.frames, "{name}: frames");
    keep(&camera.handle(Input::Finish { reason: "end" }).records);
    records
}

/// Seconds since the scene's first frame.
fn rel(t_us: u64) -> f64 {
    (t_us - DEFAULT_START_US) as f64 / 1e6
}

/// Render, run and compare one scene.
fn evaluate(path: &Path, work: &Path) -> SceneResult {
    let PlayedScene {
        scenario,
        truth,
        street,
        records,
        ..
    } = play(path, work);
    let mut r = SceneResult {
        name: scenario.name.clone(),
        passers_truth: u64::from(truth.passers_by),
        entries_truth: u64::from(truth.entries),
        ..SceneResult::default()
    };
    for (line, c) in &truth.counts {
        if street.as_deref() != Some(line.as_str()) {
            r.lines.insert(
                line.clone(),
                (u64::from(c.count_in), u64::from(c.count_out), 0, 0),
            );
        }
    }
    for rec in &records {
        if let Record::Bin(b) = rec {
            r.passers += b.passers_by;
            r.entries += b.entries;
            for l in b.lines.iter().filter(|l| !l.passers_by) {
                let e = r.lines.entry(l.name.to_string()).or_default();
                e.2 += l.count.r#in;
                e.3 += l.count.out;
            }
        }
    }
    r.dwell = match_visits(&truth, measured_visits(&records));
    r
}

/// "truth→measured" per visit, in seconds.
fn dwell_text(dwell: &[(f64, Option<f64>)]) -> String {
    let each: Vec<String> = dwell
        .iter()
        .map(|(t, m)| match m {
            Some(m) => format!("{t:.1}→{m:.1}"),
            None => format!("{t:.1}→none"),
        })
        .collect();
    each.join(" ")
}

/// The visits the camera reported, per zone: (entered, left) in seconds.
fn measured_visits(records: &[Record]) -> BTreeMap<String, Vec<(f64, f64)>> {
    let mut visits: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for rec in records {
        if let Record::Event(e) = rec
            && let EventKind::Visit {
                zone,
                entered_us,
                left_us,
                ..
            } = &e.kind
        {
            visits
                .entry(zone.to_string())
                .or_default()
                .push((rel(*entered_us), rel(*left_us)));
        }
    }
    visits
}

/// Each true visit matched to the measured visit of the same zone that
/// overlaps it most (each used once): (true dwell, measured dwell).
fn match_visits(
    truth: &Truth,
    mut visits: BTreeMap<String, Vec<(f64, f64)>>,
) -> Vec<(f64, Option<f64>)> {
    let mut out = Vec::new();
    for (zone, true_visits) in &truth.visits {
        let mut measured = visits.remove(zone).unwrap_or_default();
        for v in true_visits {
            let best = measured
                .iter()
                .enumerate()
                .map(|(i, &(a, b))| (i, (b.min(v.left) - a.max(v.entered)).max(0.0)))
                .filter(|&(_, overlap)| overlap > 0.0)
                .max_by(|x, y| x.1.total_cmp(&y.1))
                .map(|(i, _)| i);
            let dwell = best.map(|i| {
                let (a, b) = measured.remove(i);
                b - a
            });
            out.push((v.dwell_s, dwell));
        }
    }
    out
}

fn scene_files() -> Vec<PathBuf> {
    let files = scenegen::scenario_files(&scenegen::scenarios_dir()).expect("scenes");
    assert!(files.len() >= 20, "{} scenes", files.len());
    files
}

#[test]
fn generated_scenes_are_counted_end_to_end() {
    common::shared_dir();
    let work = tempfile::tempdir().expect("tempdir");
    let files = scene_files();
    let mut results = common::in_workers(&files, |f| evaluate(f, work.path()));
    results.sort_by(|a, b| a.name.cmp(&b.name));

    println!(
        "{:<24} {:>12} {:>12} {:>8} {:>8}  dwell (truth→measured)",
        "scene", "in/out true", "in/out seen", "passers", "entries"
    );
    for r in &results {
        let (ti, to, ci, co) = r.lines.values().fold((0, 0, 0, 0), |a, v| {
            (a.0 + v.0, a.1 + v.1, a.2 + v.2, a.3 + v.3)
        });
        let dwell = dwell_text(&r.dwell);
        println!(
            "{:<24} {:>12} {:>12} {:>8} {:>8}  {}{}",
            r.name,
            format!("{ti}/{to}"),
            format!("{ci}/{co}"),
            format!("{}/{}", r.passers, r.passers_truth),
            format!("{}/{}", r.entries, r.entries_truth),
            dwell,
            if r.exact() { "" } else { "  <- count differs" }
        );
    }

    let exact = results.iter().filter(|r| r.exact()).count();
    let exact_share = exact as f64 / results.len() as f64;
    let (truth_total, seen_total, abs_err) = results.iter().flat_map(|r| r.lines.values()).fold(
        (0u64, 0u64, 0u64),
        |(t, s, e), &(ti, to, ci, co)| {
            (
                t + ti + to,
                s + ci + co,
                e + ti.abs_diff(ci) + to.abs_diff(co),
            )
        },
    );
    let total_error = truth_total.abs_diff(seen_total) as f64 / truth_total as f64;
    let dwell_ok = results
        .iter()
        .flat_map(|r| &r.dwell)
        .filter(|(t, m)| m.is_some_and(|m| (m - t).abs() <= 1.0))
        .count();
    let dwell_total = results.iter().map(|r| r.dwell.len()).sum::<usize>();
    let dwell_share = dwell_ok as f64 / dwell_total as f64;
    let passers_truth: u64 = results.iter().map(|r| r.passers_truth).sum();
    let passers: u64 = results.iter().map(|r| r.passers).sum();
    let entries_truth: u64 = results.iter().map(|r| r.entries_truth).sum();
    let entries: u64 = results.iter().map(|r| r.entries).sum();
    let passers_error = passers_truth.abs_diff(passers) as f64 / passers_truth as f64;
    let rate = |e: u64, p: u64| e as f64 / (e + p) as f64;
    let rate_truth = rate(entries_truth, passers_truth);
    let rate_seen = rate(entries, passers);
    let rate_error = (rate_seen - rate_truth).abs() / rate_truth;
    println!(
        "exact scenes {exact}/{} ({:.1} %); crossings true {truth_total}, seen {seen_total}, \
         total error {:.2} %, absolute errors {abs_err}; dwell within 1 s {dwell_ok}/{dwell_total} \
         ({:.1} %); passers-by {passers}/{passers_truth} (error {:.1} %); entry rate \
         {rate_seen:.3} vs {rate_truth:.3} (error {:.1} %)",
        results.len(),
        exact_share * 100.0,
        total_error * 100.0,
        dwell_share * 100.0,
        passers_error * 100.0,
        rate_error * 100.0
    );

    for r in results
        .iter()
        .filter(|r| NO_FALSE_CROSSING.contains(&r.name.as_str()))
    {
        assert_eq!(r.extra_crossings(), 0, "false crossings in {}", r.name);
    }
    assert!(exact_share >= 0.95, "exact on {exact}/{}", results.len());
    assert!(total_error <= 0.02, "total count error {total_error}");
    assert!(dwell_share >= 0.90, "dwell within 1 s: {dwell_share}");
    // Passers-by are scored without cancelling (issue 17): per scene, a
    // phantom one no longer makes up for a missed one. Of the 10, one is
    // missed: in passers_and_entrants the tracker hands one passer-by's id
    // to another who walks in at the same edge as the first walks out
    // (before issue 17 a phantom passer-by in the same scene hid that).
    let passers_abs: u64 = results
        .iter()
        .map(|r| r.passers.abs_diff(r.passers_truth))
        .sum();
    println!("passers-by errors, not cancelling: {passers_abs} of {passers_truth}");
    assert!(
        passers_abs <= 1,
        "passers-by errors {passers_abs} (total error {passers_error})"
    );
    assert!(rate_error <= 0.05, "entry rate error {rate_error}");
}

// Door scenes the rules were not tuned on (`tests/doors`, issue 17): four
// camera geometries, people whose outline changes, groups, crossings at the
// door, occluding walls, light, blur and compression. Scored the way
// counting audits are: every true crossing matched to a counted one of the
// same line and direction close in time; a missed and an extra crossing are
// two errors, never zero.

/// A counted crossing matches a true one at most this far apart (s).
const MATCH_S: f64 = 2.0;
/// An extra "in" and an extra "out" of one line this close (s) are a
/// phantom pair (one person counted twice, both ways).
const PHANTOM_PAIR_S: f64 = 5.0;

/// Crossings of one direction in one scene (or summed over scenes).
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    truth: u64,
    missed: u64,
    extra: u64,
}

impl Tally {
    fn add(&mut self, o: Self) {
        self.truth += o.truth;
        self.missed += o.missed;
        self.extra += o.extra;
    }

    fn errors(self) -> u64 {
        self.missed + self.extra
    }

    /// 1 - (missed + extra) / truth; 1 when there was nothing to count and
    /// nothing was counted.
    fn accuracy(self) -> f64 {
        if self.truth == 0 {
            if self.errors() == 0 { 1.0 } else { 0.0 }
        } else {
            1.0 - self.errors() as f64 / self.truth as f64
        }
    }
}

#[derive(Debug, Clone)]
struct DoorResult {
    name: String,
    geometry: &'static str,
    holdout: bool,
    r#in: Tally,
    out: Tally,
    /// Passers-by have no event of their own: the count's difference in a
    /// scene is its error (summed over scenes without cancelling).
    passers: Tally,
    dwell: Vec<(f64, Option<f64>)>,
    phantom_pairs: usize,
    /// What went wrong, with times: "missed in 5.3 s", "extra out 7.1 s".
    notes: Vec<String>,
}

/// Match true and counted crossing times (s) of one line and direction:
/// each true crossing takes the nearest unmatched counted one within
/// `MATCH_S`. The unmatched true and counted crossings' times are
/// returned.
fn match_crossings(truth: &[f64], seen: &[f64]) -> (Tally, Vec<f64>, Vec<f64>) {
    let mut used = vec![false; seen.len()];
    let mut missed = Vec::new();
    for &t in truth {
        let best = seen
            .iter()
            .enumerate()
            .filter(|&(i, &c)| !used[i] && (c - t).abs() <= MATCH_S)
            .min_by(|a, b| (a.1 - t).abs().total_cmp(&(b.1 - t).abs()))
            .map(|(i, _)| i);
        match best {
            Some(i) => used[i] = true,
            None => missed.push(t),
        }
    }
    let extra: Vec<f64> = seen
        .iter()
        .zip(&used)
        .filter(|&(_, &u)| !u)
        .map(|(&c, _)| c)
        .collect();
    let tally = Tally {
        truth: truth.len() as u64,
        missed: missed.len() as u64,
        extra: extra.len() as u64,
    };
    (tally, missed, extra)
}

/// A door scene scored as the camera counted it, and as it counts with
/// perfect detections (`play_perfect_detections`).
struct DoorPlays {
    camera: DoorResult,
    perfect: DoorResult,
}

fn evaluate_door(path: &Path, work: &Path) -> DoorPlays {
    let holdout = path
        .parent()
        .is_some_and(|d| d.file_name().is_some_and(|n| n == "holdout"));
    let played = play(path, work);
    let perfect = play_perfect_detections(&played);
    DoorPlays {
        camera: score_door(&played, &played.records, holdout),
        perfect: score_door(&played, &perfect, holdout),
    }
}

fn score_door(played: &PlayedScene, records: &[Record], holdout: bool) -> DoorResult {
    use camera_core::analytics::line::Direction;
    let PlayedScene {
        scenario,
        truth,
        street,
        ..
    } = played;
    let geometry = scenario.view().name();
    let mut r = DoorResult {
        name: scenario.name.clone(),
        geometry,
        holdout,
        r#in: Tally::default(),
        out: Tally::default(),
        passers: Tally::default(),
        dwell: match_visits(truth, measured_visits(records)),
        phantom_pairs: 0,
        notes: Vec::new(),
    };
    let mut seen_passers = 0;
    for rec in records {
        if let Record::Bin(b) = rec {
            seen_passers += b.passers_by;
        }
    }
    let truth_passers = u64::from(truth.passers_by);
    r.passers = Tally {
        truth: truth_passers,
        missed: truth_passers.saturating_sub(seen_passers),
        extra: seen_passers.saturating_sub(truth_passers),
    };
    for (line, crossings) in &truth.crossings {
        if street.as_deref() == Some(line.as_str()) {
            continue;
        }
        let mut extras = Vec::new();
        for (dir, want) in [
            (Direction::In, scenegen::truth::Direction::In),
            (Direction::Out, scenegen::truth::Direction::Out),
        ] {
            let t: Vec<f64> = crossings
                .iter()
                .filter(|c| c.direction == want)
                .map(|c| c.t)
                .collect();
            let seen: Vec<f64> = records
                .iter()
                .filter_map(|rec| match rec {
                    Record::Event(e) => match &e.kind {
                        EventKind::Crossing {
                            line: l, direction, ..
                        } if **l == **line && *direction == dir => Some(rel(e.time_us)),
                        _ => None,
                    },
                    Record::Bin(_) => None,
                })
                .collect();
            let (tally, missed, extra) = match_crossings(&t, &seen);
            let name = if dir == Direction::In { "in" } else { "out" };
            r.notes
                .extend(missed.iter().map(|t| format!("missed {name} {t:.1} s")));
            r.notes
                .extend(extra.iter().map(|t| format!("extra {name} {t:.1} s")));
            match dir {
                Direction::In => r.r#in.add(tally),
                Direction::Out => r.out.add(tally),
            }
            extras.push(extra);
        }
        r.phantom_pairs += extras[0]
            .iter()
            .filter(|&&a| extras[1].iter().any(|&b| (a - b).abs() <= PHANTOM_PAIR_S))
            .count();
    }
    r
}

/// Totals of a set of door scenes.
#[derive(Debug, Default, Clone)]
struct DoorTotals {
    scenes: usize,
    r#in: Tally,
    out: Tally,
    passers: Tally,
    phantom_pairs: usize,
    dwell_ok: usize,
    dwell_total: usize,
}

impl DoorTotals {
    fn of<'a>(results: impl Iterator<Item = &'a DoorResult>) -> Self {
        let mut t = Self::default();
        for r in results {
            t.scenes += 1;
            t.r#in.add(r.r#in);
            t.out.add(r.out);
            t.passers.add(r.passers);
            t.phantom_pairs += r.phantom_pairs;
            t.dwell_total += r.dwell.len();
            t.dwell_ok += r
                .dwell
                .iter()
                .filter(|(t, m)| m.is_some_and(|m| (m - t).abs() <= 1.0))
                .count();
        }
        t
    }

    /// Fails naming `what`, the count and the floor it is below.
    fn assert_floors(&self, floors: &Floors, what: &str) {
        for (name, t, floor) in [
            ("in", self.r#in, floors.r#in),
            ("out", self.out, floors.out),
            ("passers-by", self.passers, floors.passers),
        ] {
            assert!(
                t.accuracy() >= floor,
                "{what}: {name} accuracy {:.3} is below {floor}",
                t.accuracy()
            );
        }
    }

    fn row(&self, label: &str) -> String {
        let pct = |t: Tally| format!("{:.1} %", t.accuracy() * 100.0);
        let errs = |t: Tally| format!("{}+{}/{}", t.missed, t.extra, t.truth);
        format!(
            "| {label:<22} | {:>6} | {:>7} {:>9} | {:>7} {:>9} | {:>7} {:>9} | {:>7} | {:>9} |",
            self.scenes,
            pct(self.r#in),
            errs(self.r#in),
            pct(self.out),
            errs(self.out),
            pct(self.passers),
            errs(self.passers),
            self.phantom_pairs,
            format!("{}/{}", self.dwell_ok, self.dwell_total),
        )
    }
}

/// Door scenes in four geometries, scored as the industry does, as the
/// camera counts them and with perfect detections; floors on both.
#[test]
fn door_scenes_are_counted_in_four_geometries() {
    common::shared_dir();
    let work = tempfile::tempdir().expect("tempdir");
    let doors = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/doors");
    let mut files = Vec::new();
    for split in ["tune", "holdout"] {
        files.extend(scenegen::scenario_files(&doors.join(split)).expect("door scenes"));
    }
    assert!(files.len() >= 40, "{} door scenes", files.len());
    // While working on the rules: DOOR_SCENES=tune plays only the scenes
    // whose path contains it, and the test fails after printing them.
    // DOOR_SCENES_MORE=DIR adds the tuning scenes of `generate.py --more
    // DIR` (and implies DOOR_SCENES=tune unless it is given).
    let more = std::env::var_os("DOOR_SCENES_MORE").map(PathBuf::from);
    let mut only = std::env::var("DOOR_SCENES").ok();
    if more.is_some() && only.is_none() {
        only = Some("tune".into());
    }
    if let Some(only) = &only {
        files.retain(|f| f.to_string_lossy().contains(only.as_str()));
    }
    if let Some(dir) = &more {
        let extra = scenegen::scenario_files(dir)
            .unwrap_or_else(|e| panic!("DOOR_SCENES_MORE={}: {e}", dir.display()));
        assert!(
            !extra.is_empty(),
            "DOOR_SCENES_MORE={}: no scenes; write them with python3 tests/doors/generate.py --more {0}",
            dir.display()
        );
        files.extend(extra);
    }
    let plays = common::in_workers(&files, |f| evaluate_door(f, work.path()));
    let (mut camera, mut perfect): (Vec<_>, Vec<_>) =
        plays.into_iter().map(|p| (p.camera, p.perfect)).unzip();
    println!("As the camera counts:");
    let table = door_table(&mut camera);
    println!(
        "\nWith perfect detections (the truth's boxes of people at least {:.0} % visible): the tracker and the rules alone:",
        PERFECT_VISIBLE * 100.0
    );
    let perfect_table = door_table(&mut perfect);

    if let Some(only) = only {
        panic!(
            "DOOR_SCENES={only}: {} scenes played, nothing checked",
            camera.len()
        );
    }
    // Every geometry has scenes in both halves.
    for (holdout, g, t) in &table {
        assert!(
            t.scenes >= 5,
            "{g:?} holdout={holdout}: {} scenes",
            t.scenes
        );
    }
    // Floors: the figures reached so far on the held-out half (issue 17
    // asks 98 % in and out, 95 % passers-by); no phantom pair.
    let held = &table
        .iter()
        .find(|(h, g, _)| *h && g.is_none())
        .expect("totals")
        .2;
    held.assert_floors(&FLOORS, "held-out");
    assert_eq!(
        held.phantom_pairs, 0,
        "phantom crossing pairs in held-out scenes"
    );
    // The rules alone, on both halves: a change that loses people the
    // detector did find fails here even when detector noise hides it above.
    for (holdout, _, t) in perfect_table.iter().filter(|(_, g, _)| g.is_none()) {
        let half = if *holdout { "held-out" } else { "tuning" };
        t.assert_floors(&PERFECT_FLOORS, &format!("{half}, perfect detections"));
    }
}

/// Print the per-scene lines and the table of `results` (sorted here);
/// the table's rows as (held out, geometry or `None` for all, totals).
fn door_table(results: &mut [DoorResult]) -> Vec<(bool, Option<&'static str>, DoorTotals)> {
    results.sort_by(|a, b| (a.holdout, &a.name).cmp(&(b.holdout, &b.name)));
    println!(
        "scene            split    in (missed+extra/true)  out       passers-by  phantom pairs  dwell"
    );
    for r in results.iter() {
        let e = |t: Tally| format!("{}+{}/{}", t.missed, t.extra, t.truth);
        let dwell = dwell_text(&r.dwell);
        println!(
            "{:<16} {:<8} {:>9} {:>9} {:>9} {:>3}  {}  {}",
            r.name,
            if r.holdout { "holdout" } else { "tune" },
            e(r.r#in),
            e(r.out),
            e(r.passers),
            r.phantom_pairs,
            r.notes.join(", "),
            dwell
        );
    }
    println!(
        "\n| scenes                 | scenes | in accuracy, errors | out accuracy, errors | passers-by, errors | phantom pairs | dwell ≤ 1 s |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut table = Vec::new();
    for holdout in [false, true] {
        let split = if holdout { "held out" } else { "tuning" };
        for g in scenegen::view::Geometry::ALL {
            let t = DoorTotals::of(
                results
                    .iter()
                    .filter(|r| r.holdout == holdout && r.geometry == g.name()),
            );
            println!("{}", t.row(&format!("{split}, {}", g.name())));
            table.push((holdout, Some(g.name()), t));
        }
        let t = DoorTotals::of(results.iter().filter(|r| r.holdout == holdout));
        println!("{}", t.row(&format!("{split}, all")));
        table.push((holdout, None, t));
    }
    table
}

/// What the held-out half reaches today (94.7 %, 86.0 %, 71.1 %); raised
/// as the rules improve, never lowered to let a change through.
const FLOORS: Floors = Floors {
    r#in: 0.94,
    out: 0.85,
    passers: 0.71,
};

/// What the tracker and the rules reach with perfect detections
/// (`play_perfect_detections`) on the worse of the two halves today (in
/// 100 % on both, out 93.0 % held out, passers-by 87.0 % tuning); raised as
/// the rules improve, never lowered to let a change through.
const PERFECT_FLOORS: Floors = Floors {
    r#in: 0.99,
    out: 0.92,
    passers: 0.86,
};

/// Least accuracy (1 - errors / truth) a set of door scenes must reach.
struct Floors {
    r#in: f64,
    out: f64,
    passers: f64,
}
