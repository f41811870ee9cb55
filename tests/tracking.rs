//! Tracking quality on TUD-Campus (`../shared/mot`): a regression guard in
//! CI. The figures quoted for the issue come from py-motmetrics
//! (`scripts/mot_eval.py`); this is a simplified CLEAR-MOT count (per-frame
//! optimal matching at IoU ≥ 0.5, identity switches against the last match).

mod common;

use std::collections::HashMap;
use std::process::Command;

use camera_core::track::assign::Assigner;

type Boxes = HashMap<u64, Vec<(u64, [f32; 4])>>;

fn load(text: &str) -> Boxes {
    let mut out: Boxes = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<f32> = line
            .split(',')
            .take(6)
            .map(|x| x.trim().parse().expect("number"))
            .collect();
        out.entry(f[0] as u64)
            .or_default()
            .push((f[1] as u64, [f[2], f[3], f[2] + f[4], f[3] + f[5]]));
    }
    out
}

#[test]
fn tracker_on_tud_campus_beats_the_bytetrack_reference() {
    let mot = common::shared_dir().join("mot/TUD-Campus");
    let out = Command::new(env!("CARGO_BIN_EXE_camera-app"))
        .args(["track", "--fps", "25", "--mot-det"])
        .arg(mot.join("det-noisy.txt"))
        .output()
        .expect("run camera-app track");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tracks = load(&String::from_utf8_lossy(&out.stdout));
    let gt = load(&std::fs::read_to_string(mot.join("gt.txt")).expect("gt"));

    let (mut gt_total, mut fp, mut fn_, mut idsw) = (0usize, 0usize, 0usize, 0usize);
    let mut last: HashMap<u64, u64> = HashMap::new();
    let mut assigner = Assigner::default();
    let mut frames: Vec<u64> = gt.keys().chain(tracks.keys()).copied().collect();
    frames.sort_unstable();
    frames.dedup();
    for f in frames {
        let (g, t) = (
            gt.get(&f).map_or(&[][..], Vec::as_slice),
            tracks.get(&f).map_or(&[][..], Vec::as_slice),
        );
        let cost: Vec<f32> = g
            .iter()
            .flat_map(|(_, gb)| t.iter().map(move |(_, tb)| 1.0 - common::iou(*gb, *tb)))
            .collect();
        let mut pairs = Vec::new();
        assigner.solve(&cost, g.len(), t.len(), 0.5, &mut pairs);
        gt_total += g.len();
        fn_ += g.len() - pairs.len();
        fp += t.len() - pairs.len();
        for (gi, ti) in pairs {
            let (gid, tid) = (g[gi].0, t[ti].0);
            if last.insert(gid, tid).is_some_and(|prev| prev != tid) {
                idsw += 1;
            }
        }
    }
    let mota = 1.0 - (fp + fn_ + idsw) as f64 / gt_total as f64;
    eprintln!("MOTA {mota:.4} (FP {fp}, FN {fn_}, IDSW {idsw}, GT {gt_total})");
    // supervision's ByteTrack: MOTA 0.894, 0 ID switches.
    assert!(mota >= 0.90, "MOTA {mota}");
    assert_eq!(idsw, 0);
}
