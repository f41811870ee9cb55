//! Every scenario in tests/scenes parses and has a sensible truth; one
//! short scenario renders to the expected frames. Needs the shared data
//! beside the repository (../shared) or $CAMERA_SHARED_DIR.

use std::path::PathBuf;

use scenegen::{Scenario, scenario_files, scenarios_dir, shared_images_dir};

fn images() -> PathBuf {
    let dir = shared_images_dir();
    assert!(
        dir.join("camera.png").is_file(),
        "shared images not found at {}: check out the shared data directory beside the \
         repository (../shared with images/ and models/), or set CAMERA_SHARED_DIR",
        dir.display()
    );
    dir
}

fn all() -> Vec<Scenario> {
    let files = scenario_files(&scenarios_dir()).expect("scenario directory");
    files
        .iter()
        .map(|f| Scenario::load(f).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

#[test]
fn every_scenario_parses_and_has_a_truth() {
    let scenarios = all();
    assert!(scenarios.len() >= 22, "only {} scenarios", scenarios.len());
    let mut total = 0;
    for s in &scenarios {
        let t = scenegen::truth_only(s, &images()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.frames, s.frames());
        assert_eq!(t.frames_people.len(), t.frames);
        total += t.frames;
        // Everyone scripted is seen, large enough for the detector, at some point.
        for p in &t.people {
            let seen = t
                .frames_people
                .iter()
                .flatten()
                .filter(|f| f.id == p.id && f.visible > 0.5)
                .count();
            assert!(seen > 0, "{}: person {} is never visible", s.name, p.id);
        }
        for f in t.frames_people.iter().flatten() {
            let h = f.bbox[3] - f.bbox[1];
            if f.visible > 0.9 {
                assert!(h >= 95.0, "{}: person {} only {h} px tall", s.name, f.id);
            }
        }
        // Unambiguous by design: crossings and visits are over well before
        // the clip ends, so a tracker has time to confirm and close them.
        let end = (t.frames - 1) as f64 / f64::from(t.fps);
        for (line, list) in &t.crossings {
            for c in list {
                assert!(
                    c.t >= 1.0 && c.t <= end - 1.0,
                    "{}: {line} crossed at {} s, too near the ends of the clip",
                    s.name,
                    c.t
                );
            }
        }
        let a = s.analytics().expect("analytics");
        for z in &a.zones {
            for v in &t.visits[&z.name] {
                assert!(
                    v.left <= end - z.exit_s - 0.5,
                    "{}: visit of {} by {} ends at {} s, not closed before the clip ends",
                    s.name,
                    z.name,
                    v.person,
                    v.left
                );
                assert!(
                    (v.dwell_s - z.enter_s).abs() > 0.5,
                    "{}: dwell {} s in {} too close to enter_s",
                    s.name,
                    v.dwell_s,
                    z.name
                );
            }
        }
        // The written analytics table is what camera-app will read back.
        let text = toml::to_string(&s.analytics).expect("analytics as TOML");
        assert!(text.contains("version"), "{}", s.name);
    }
    assert!(total <= 3500, "{total} frames in all: too slow for CI");
}

fn by_name(name: &str) -> Scenario {
    Scenario::load(&scenarios_dir().join(format!("{name}.toml"))).expect("scenario")
}

#[test]
fn a_single_walk_in_is_one_entry() {
    let t = scenegen::truth_only(&by_name("single_in"), &images()).expect("truth");
    let door = &t.counts["door"];
    assert_eq!((door.count_in, door.count_out), (1, 0));
    assert_eq!(t.entries, 1);
    assert_eq!(t.passers_by, 0);
    assert_eq!(t.entry_rate, Some(1.0));
}

#[test]
fn a_u_turn_before_the_line_is_no_crossing() {
    let t = scenegen::truth_only(&by_name("u_turn_before_line"), &images()).expect("truth");
    assert!(t.crossings["door"].is_empty(), "{:?}", t.crossings);
}

#[test]
fn rendering_writes_every_frame_at_the_scenario_size() {
    let s = by_name("single_in");
    let out = tempfile::tempdir().expect("tempdir");
    let truth = scenegen::render(&s, &images(), out.path()).expect("render");
    let frames: Vec<_> = std::fs::read_dir(out.path().join("frames"))
        .expect("frames dir")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(frames.len(), s.frames());
    assert_eq!(truth.frames, s.frames());
    let last = scenegen::render::frame_path(&out.path().join("frames"), s.frames() - 1);
    let img = image::open(&last).expect("decodes").to_rgb8();
    assert_eq!((img.width(), img.height()), (s.width, s.height));
    let read: scenegen::Truth = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("truth.json")).expect("truth.json"),
    )
    .expect("truth parses");
    assert_eq!(read.counts, truth.counts);
    assert_eq!(read.frames_people.len(), truth.frames_people.len());
    let analytics = std::fs::read_to_string(out.path().join("analytics.toml")).expect("toml");
    let v: toml::Table = toml::from_str(&analytics).expect("analytics parses");
    assert_eq!(v, s.analytics);
}
