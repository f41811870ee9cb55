//! Every shelf scenario in tests/shelf-scenes parses and has a sensible,
//! realistic truth; a short one renders to the expected files. Needs the
//! shared data beside the repository (../shared) or $CAMERA_SHARED_DIR.

use std::path::PathBuf;

use scenegen::shelf::shelf_truth_only;
use scenegen::{
    ShelfScenario, ShelfTruth, render_shelves, shared_images_dir, shelf_scenario_files,
    shelf_scenarios_dir,
};

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

fn all() -> Vec<(ShelfScenario, ShelfTruth)> {
    let files = shelf_scenario_files(&shelf_scenarios_dir()).expect("shelf scenario directory");
    files
        .iter()
        .map(|f| {
            let s = ShelfScenario::load(f).unwrap_or_else(|e| panic!("{e}"));
            let t = shelf_truth_only(&s, &images()).unwrap_or_else(|e| panic!("{e}"));
            (s, t)
        })
        .collect()
}

#[test]
fn every_shelf_scenario_parses_and_is_realistic() {
    let scenes = all();
    assert!(scenes.len() >= 16, "only {} shelf scenarios", scenes.len());
    let total: usize = scenes.iter().map(|(_, t)| t.frames).sum();
    // CI has 2 cores and the camera runs its detector on every frame.
    assert!(total <= 7000, "{total} frames in all");
    let mut quiet = 0;
    for (s, t) in &scenes {
        assert!(!s.description.is_empty(), "{}", s.name);
        assert_eq!(t.frames, s.frames());
        let changes: usize = t
            .shelves
            .iter()
            .flat_map(|sh| &sh.facings)
            .map(|f| f.fills.len() - 1)
            .sum();
        if changes == 0 && t.disturbances.is_empty() {
            quiet += 1;
        }
        for sh in &t.shelves {
            for f in &sh.facings {
                // Stocked at the start; nothing in the clean reference.
                assert_eq!(f.fills[0].t, 0.0);
                assert_eq!(f.fills[0].fill, 1.0);
                assert!(f.fills[1..].iter().all(|c| c.t >= t.reference_s));
                assert!(f.occluded.iter().all(|o| o[0] >= t.reference_s));
            }
            // Every take happens during one of the taker's stops.
            for take in &sh.takes {
                assert!(
                    sh.stops
                        .iter()
                        .any(|st| st.person == take.person && st.start < take.t && take.t < st.end),
                    "{}: take {take:?} outside a stop of the shopper",
                    s.name
                );
            }
        }
        assert!(t.disturbances.iter().all(|d| d.t0 >= t.reference_s));
    }
    assert!(quiet >= 2, "{quiet} scenes where nothing changes");
}

#[test]
fn shoppers_at_a_shelf_are_big_enough_for_the_detector() {
    for (s, _) in all() {
        for sh in &s.shelves {
            for f in sh.front() {
                // Height of a shopper standing anywhere in a front zone.
                let h = s.sprite_height_px(f[1]) / f64::from(s.height);
                assert!(
                    (0.45..=0.72).contains(&h),
                    "{}: a shopper with the feet at y {} is {h:.2} of the frame",
                    s.name,
                    f[1]
                );
            }
        }
    }
}

#[test]
fn a_shelf_scene_renders_its_frames_analytics_and_truth() {
    let path = shelf_scenarios_dir().join("small_shelf_1x4.toml");
    let mut s = ShelfScenario::load(&path).expect("scenario");
    // Only the first 12 s: a take and its shopper.
    s.duration_s = 12.0;
    let dir = tempfile::tempdir().expect("tempdir");
    let truth = render_shelves(&s, &images(), dir.path()).expect("render");
    assert_eq!(truth.frames, 60);
    let frames = std::fs::read_dir(dir.path().join("frames"))
        .expect("frames")
        .count();
    assert_eq!(frames, 60);
    let first = image::open(dir.path().join("frames/000000.jpg")).expect("jpeg");
    assert_eq!((first.width(), first.height()), (640, 360));
    let analytics = std::fs::read_to_string(dir.path().join("analytics.toml")).expect("toml");
    assert!(analytics.contains("name = \"counter\""), "{analytics}");
    let json = std::fs::read_to_string(dir.path().join("truth.json")).expect("json");
    let back: ShelfTruth = serde_json::from_str(&json).expect("truth.json reads back");
    assert_eq!(back.fill_at("counter", "r1c2", 10.0), Some(0.5));
    assert!(back.occluded_at("counter", "r1c2", 10.0));
}
