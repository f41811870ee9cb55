//! Detections in, golden bins out: the camera state machine on fixtures
//! that need no model and no frames (`tests/fixtures/*/`, made from
//! generated scenes by `make_fixture.py`: the scene's true boxes as a good
//! detector would give them).
//!
//! Each fixture's records must equal its golden `records.jsonl`
//! (`UPDATE_GOLDEN=1` rewrites them after a deliberate change; review the
//! diff), and, golden or not, its counts must equal the scene's truth.

use std::path::{Path, PathBuf};

use camera_core::camera::{Camera, FrameInput, Input, Output, Settings};
use camera_core::config::AnalyticsConfig;
use camera_core::detection::{BBox, Detection};
use camera_core::frame::{Frame, PixelFormat, Timestamp};
use camera_core::tamper::TamperConfig;
use serde::Deserialize;

#[derive(Deserialize)]
struct Line {
    t_us: u64,
    width: u32,
    height: u32,
    /// `[x1, y1, x2, y2, score]` per person.
    detections: Vec<[f32; 5]>,
}

#[derive(Deserialize)]
struct Truth {
    counts: std::collections::BTreeMap<String, Count>,
    passers_by: u64,
    /// What the camera is known to count differently, and why.
    #[serde(default)]
    known_deviation: Option<Deviation>,
}

#[derive(Deserialize)]
struct Deviation {
    passers_by: u64,
    #[allow(dead_code)]
    why: String,
}

#[derive(Deserialize)]
struct Count {
    #[serde(rename = "in")]
    r#in: u64,
    out: u64,
}

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("detections.jsonl").is_file())
        .collect();
    v.sort();
    v
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Play a fixture through the camera; its records as JSON lines.
fn play(dir: &Path) -> Vec<String> {
    let config = AnalyticsConfig::parse(&read(&dir.join("analytics.toml")))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let settings = Settings {
        camera_id: "fixture".into(),
        labels: vec!["person".into()],
        tracker: Default::default(),
        // Uniform frames: nothing to learn a view from.
        tamper: TamperConfig {
            enabled: false,
            ..TamperConfig::default()
        },
        sequences: Default::default(),
    };
    let mut camera = Camera::new(config, settings).expect("camera");
    let mut frame = Frame {
        seq: 0,
        timestamp: Timestamp(0),
        width: 0,
        height: 0,
        stride: 0,
        format: PixelFormat::Nv12,
        data: Vec::new(),
    };
    let mut lines = Vec::new();
    let mut dets = Vec::new();
    let text = read(&dir.join("detections.jsonl"));
    for (i, l) in text.lines().enumerate() {
        let l: Line = serde_json::from_str(l).unwrap_or_else(|e| panic!("line {i}: {e}"));
        if (frame.width, frame.height) != (l.width, l.height) {
            frame.width = l.width;
            frame.height = l.height;
            frame.stride = l.width;
            frame.data = vec![128; (l.width * l.height * 3 / 2) as usize];
        }
        frame.seq = i as u64;
        frame.timestamp = Timestamp(l.t_us);
        dets.clear();
        dets.extend(l.detections.iter().map(|d| Detection {
            class_id: 0,
            score: d[4],
            bbox: BBox {
                x1: d[0],
                y1: d[1],
                x2: d[2],
                y2: d[3],
            },
        }));
        let input = Input::Frame(FrameInput {
            frame: &frame,
            detections: &dets,
            rgb: &mut || None,
        });
        let out = camera.handle(input);
        lines.extend(out.records.iter().map(json));
    }
    let out = camera.handle(Input::Finish { reason: "end" });
    lines.extend(out.records.iter().map(json));
    lines
}

fn json(r: &Output) -> String {
    serde_json::to_string(r).expect("records serialise")
}

#[test]
fn fixtures_give_their_golden_records_and_their_truth() {
    let all = fixtures();
    assert!(all.len() >= 5, "fixtures missing: {all:?}");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failed = Vec::new();
    for dir in &all {
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let got = play(dir);
        let golden = dir.join("records.jsonl");
        if update {
            std::fs::write(&golden, got.join("\n") + "\n").expect("write golden");
        }
        let want: Vec<String> = read(&golden).lines().map(str::to_string).collect();
        if got != want {
            let first = got
                .iter()
                .zip(&want)
                .position(|(g, w)| g != w)
                .unwrap_or(got.len().min(want.len()));
            failed.push(format!(
                "{name}: record {first} differs from the golden one:\n  got  {}\n  want {}",
                got.get(first).map_or("(none)", String::as_str),
                want.get(first).map_or("(none)", String::as_str),
            ));
        }
        // Whatever the golden says, the counts are the scene's.
        let truth: Truth = serde_json::from_str(&read(&dir.join("truth.json"))).expect("truth");
        let (mut entries, mut exits, mut passers) = (0, 0, 0);
        for l in &got {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            if v["type"] == "bin" {
                entries += v["entries"].as_u64().unwrap_or(0);
                exits += v["exits"].as_u64().unwrap_or(0);
                passers += v["passers_by"].as_u64().unwrap_or(0);
            }
        }
        let want_in: u64 = truth.counts.values().map(|c| c.r#in).sum();
        let want_out: u64 = truth.counts.values().map(|c| c.out).sum();
        let want_passers = truth
            .known_deviation
            .as_ref()
            .map_or(truth.passers_by, |d| d.passers_by);
        if (entries, exits, passers) != (want_in, want_out, want_passers) {
            failed.push(format!(
                "{name}: counted in {entries} out {exits} passers-by {passers}, \
                 the scene has {want_in} {want_out} {} (known deviation: {want_passers})",
                truth.passers_by
            ));
        }
        println!(
            "{name}: {} records, in {entries} out {exits} passers-by {passers}",
            got.len()
        );
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The records are what the camera publishes: bins carry the fixture's
/// camera id and consecutive sequence numbers.
#[test]
fn bins_are_numbered_from_zero_without_gaps() {
    let dir = &fixtures()[0];
    let seqs: Vec<u64> = play(dir)
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .filter(|v| v["type"] == "bin")
        .map(|v| {
            assert_eq!(v["camera"], "fixture");
            v["seq"].as_u64().expect("seq")
        })
        .collect();
    assert!(!seqs.is_empty());
    assert!(
        seqs.iter().enumerate().all(|(i, &s)| s == i as u64),
        "{seqs:?}"
    );
}
