//! Shelf scenes: parsing, refusals, truth and drawing, without the shared
//! photos (no shoppers are drawn; their shapes are made up).

use std::path::Path;

use super::render::{ShelfPainter, inv_bilinear};
use super::*;
use crate::geom::{self, Point};
use crate::sprites::{Crop, SPRITES};

const BASE: &str = r#"
description = "two shelves, one skewed"
seed = 11
duration_s = 30
noise = 0
[[shelves]]
name = "left"
polygon = [[0.05, 0.08], [0.45, 0.1], [0.45, 0.62], [0.05, 0.6]]
grid = [3, 4]
units = 3
[[shelves]]
name = "right"
polygon = [[0.55, 0.12], [0.95, 0.08], [0.96, 0.6], [0.55, 0.62]]
grid = [2, 5]
units = 2
"#;

fn parse(extra: &str) -> Result<ShelfScenario, SceneError> {
    ShelfScenario::parse("t", &format!("{BASE}{extra}"), Path::new("t.toml"))
}

/// Made-up sprite shapes: 0.4 wide for 1 high.
fn crops() -> Vec<Crop> {
    vec![
        Crop {
            x: 0,
            y: 0,
            w: 40,
            h: 100,
        };
        SPRITES.len()
    ]
}

#[test]
fn a_scenario_parses_with_its_defaults() {
    let s = parse(
        "[[remove]]\nt = 5\nshelf = \"left\"\nfacing = \"r2c3\"\n\
         [[restock]]\nt = 20\nshelf = \"left\"\n",
    )
    .expect("parses");
    assert_eq!((s.width, s.height, s.fps), (640, 360, 5));
    assert_eq!(s.frames(), 150);
    assert_eq!(s.reference_s, 2.0);
    assert_eq!(s.stop_s, 3.0);
    assert_eq!(s.shelves[0].facings(), 12);
    let a = analytics_toml(&s);
    assert!(a.contains("[shelf_check]\nstop_s = 3.0"), "{a}");
    assert!(
        a.contains("polygon = [[0.05, 0.08], [0.45, 0.1], [0.45, 0.62], [0.05, 0.6]]"),
        "{a}"
    );
    assert!(a.contains("grid = [2, 5]"), "{a}");
    let parsed: toml::Table = toml::from_str(&a).expect("analytics.toml is TOML");
    assert_eq!(parsed["shelves"].as_array().map(Vec::len), Some(2));
}

#[test]
fn unknown_facings_shelves_and_fields_are_refused_by_name() {
    let e = parse("[[remove]]\nt = 5\nshelf = \"left\"\nfacing = \"r4c1\"\n").expect_err("bad");
    let e = e.to_string();
    assert!(
        e.contains("remove[0].facing: \"r4c1\" is not a facing of shelf \"left\""),
        "{e}"
    );
    let e = parse("[[restock]]\nt = 5\nshelf = \"middle\"\n").expect_err("bad");
    assert!(
        e.to_string().contains("restock[0].shelf: \"middle\""),
        "{e}"
    );
    let e = parse("colour = 3\n").expect_err("bad");
    assert!(e.to_string().contains("colour"), "{e}");
}

#[test]
fn events_outside_the_clip_or_in_the_reference_are_refused() {
    let e = parse("[[remove]]\nt = 31\nshelf = \"left\"\nfacing = \"r1c1\"\n").expect_err("late");
    assert!(
        e.to_string().contains("remove[0].t: 31 s..31 s is outside"),
        "{e}"
    );
    let e = parse("[[lighting]]\nt = 1\ngain = 0.7\n").expect_err("early");
    assert!(
        e.to_string().contains("lighting[0]: 1 s..1 s is outside"),
        "{e}"
    );
    let e = parse("[[lighting]]\nt = 28\ngain = 0.7\nramp_s = 5\n").expect_err("long");
    assert!(e.to_string().contains("lighting[0]: 28 s..33 s"), "{e}");
    let e = parse("[[shake]]\nt = 5\ndx = 3\ndy = 0\nduration_s = 1\n").expect_err("big");
    assert!(e.to_string().contains("shake[0]: (3, 0)"), "{e}");
    // Someone in view during the reference.
    let e = parse("[[people]]\nsprite = 2\npath = [{ x = 0.3, y = 0.8, t = 0 }, { x = 1.3, y = 0.8, t = 5 }]\n")
        .expect_err("in view");
    assert!(e.to_string().contains("people[0]: in view at 0 s"), "{e}");
    // Two changes of a facing too close together.
    let e = parse(
        "[[remove]]\nt = 5\nshelf = \"left\"\nfacing = \"r1c1\"\n\
         [[remove]]\nt = 6\nshelf = \"left\"\nfacing = \"r1c1\"\n",
    )
    .expect_err("close");
    assert!(e.to_string().contains("closer than 2 s"), "{e}");
}

const SHOPPER: &str = r#"
[[people]]
sprite = 2
speed = 0.25
path = [
  { x = -0.2, y = 0.85, t = 3 },
  { x = 0.25, y = 0.85, wait = 6 },
  { x = 1.3, y = 0.85 },
]
takes = [{ t = 8, shelf = "left", facing = "r3c2" }]
"#;

#[test]
fn truth_is_deterministic_and_follows_the_script() {
    let s = parse(SHOPPER).expect("parses");
    let a = truth::compute(&s, &crops()).expect("truth");
    let b = truth::compute(&s, &crops()).expect("truth");
    assert_eq!(a, b);
    let json = serde_json::to_string(&a).expect("json");
    // Another crate reads it (serde_json's float parsing may be off by an ulp).
    let back: ShelfTruth = serde_json::from_str(&json).expect("reads back");
    assert_eq!(
        back.shelves[0].facings[9].fills,
        a.shelves[0].facings[9].fills
    );
    // The take: r3c2 goes from 3 to 2 units at 8 s.
    assert_eq!(a.fill_at("left", "r3c2", 7.9), Some(1.0));
    assert_eq!(a.fill_at("left", "r3c2", 8.0), Some(2.0 / 3.0));
    assert_eq!(a.fill_at("left", "r1c1", 29.0), Some(1.0));
    assert_eq!(a.fill_at("left", "r9c9", 1.0), None);
    let left = &a.shelves[0];
    assert_eq!(left.takes.len(), 1);
    assert_eq!((left.takes[0].person, left.takes[0].t), (0, 8.0));
    assert_eq!(left.facings[5].name, "r2c2");
    // Arrives at 3 + 0.45 / 0.25 = 4.8 s, leaves at 10.8 s; the default
    // front zone starts at y 0.70, so the stop is the wait, exactly.
    assert_eq!(left.stops.len(), 1, "{:?}", left.stops);
    let stop = left.stops[0];
    assert!(stop.start < 4.8 && stop.end > 10.8, "{stop:?}");
    assert!(a.shelves[1].stops.is_empty());
}

#[test]
fn occlusion_intervals_for_a_shopper_walking_past() {
    // The shopper's box: foot y 0.85 -> 0.03 + 0.65 * 0.85 = 0.5825 of
    // 360 px high (210 px), 84 px wide; top at y 0.2667, below the
    // top-left facing (whose bottom edge is at y 0.253..0.258).
    let s = parse(SHOPPER).expect("parses");
    let t = truth::compute(&s, &crops()).expect("truth");
    let left = &t.shelves[0];
    let r1c1 = &left.facings[0];
    assert!(r1c1.occluded.is_empty(), "{:?}", r1c1.occluded);
    // r3c2 spans x 0.15..0.25: the box (half width 42 px = 0.0656) covers
    // it from when the foot passes 0.15 - 0.0656 until it leaves past
    // 0.25 + 0.0656, including the wait at 0.25.
    let r3c2 = &left.facings[9];
    assert_eq!(r3c2.name, "r3c2");
    assert_eq!(r3c2.occluded.len(), 1, "{:?}", r3c2.occluded);
    let [t0, t1] = r3c2.occluded[0];
    let frame = 1.0 / f64::from(t.fps);
    // Entering: x(t) = -0.2 + 0.25 (t - 3) reaches 0.0844 at 4.1375 s.
    assert!((t0 - 4.1375).abs() <= frame, "{t0}");
    // Leaving: from 0.25 at 10.8 s, x passes 0.3156 at 11.0625 s.
    assert!((t1 - 11.0625).abs() <= frame, "{t1}");
    assert!(t.occluded_at("left", "r3c2", 8.0));
    assert!(!t.occluded_at("left", "r3c2", 3.0));
    assert!(!t.occluded_at("left", "r1c1", 8.0));
}

#[test]
fn inverse_bilinear_round_trips() {
    // A skewed shelf, and a rectangle whose corners are not exact in
    // binary (k2 is then a rounding error, not 0), in pixels as drawn.
    let s = parse(
        "[[shelves]]\nname = \"rect\"\npolygon = [[0.04, 0.06], [0.46, 0.06], [0.46, 0.64], \
         [0.04, 0.64]]\ngrid = [3, 4]\n",
    )
    .expect("parses");
    for spec in &s.shelves {
        let px = |p: Point| Point::new(p.x * 640.0, p.y * 360.0);
        let q = spec.polygon.map(|[x, y]| px(Point::new(x, y)));
        for (u, v) in [(0.1, 0.2), (0.5, 0.5), (0.93, 0.77), (0.0, 1.0)] {
            let p = px(spec.at(u, v));
            let (u2, v2) = inv_bilinear(&q, p).expect("inside");
            assert!(
                (u - u2).abs() < 1e-9 && (v - v2).abs() < 1e-9,
                "{u} {v} -> {u2} {v2}"
            );
        }
    }
}

/// Pixels that differ between two images.
fn changed(a: &RgbImage, b: &RgbImage) -> Vec<(u32, u32)> {
    a.enumerate_pixels()
        .filter(|(x, y, p)| b.get_pixel(*x, *y) != *p)
        .map(|(x, y, _)| (x, y))
        .collect()
}

#[test]
fn a_removed_unit_changes_its_facing_and_nothing_else() {
    for (shelf, facing) in [("left", "r2c3"), ("right", "r1c5"), ("right", "r2c1")] {
        let s = parse(&format!(
            "[[remove]]\nt = 5\nshelf = \"{shelf}\"\nfacing = \"{facing}\"\n"
        ))
        .expect("parses");
        let painter = ShelfPainter::new(&s, &[], &[]).expect("painter");
        let before = painter.frame(24);
        let after = painter.frame(25);
        let diff = changed(&before, &after);
        assert!(
            diff.len() > 40,
            "{shelf} {facing}: only {} pixels",
            diff.len()
        );
        let spec = s.shelves.iter().find(|x| x.name == shelf).expect("shelf");
        let poly = spec.facing_polygon(spec.facing_index(facing).expect("facing"));
        for (x, y) in diff {
            let p = Point::new(
                (f64::from(x) + 0.5) / f64::from(s.width),
                (f64::from(y) + 0.5) / f64::from(s.height),
            );
            assert!(
                geom::polygon_contains(&poly, p),
                "{shelf} {facing}: pixel ({x}, {y}) changed outside the facing"
            );
        }
        // Frames without a change are identical (no noise, steady light).
        assert!(changed(&painter.frame(3), &before).is_empty());
    }
}

#[test]
fn lighting_and_shake_change_the_whole_image() {
    let s = parse(
        "[[lighting]]\nt = 4\ngain = 0.6\n[[shake]]\nt = 10\ndx = 2\ndy = -1\nduration_s = 1\n",
    )
    .expect("parses");
    let painter = ShelfPainter::new(&s, &[], &[]).expect("painter");
    let (a, b) = (painter.frame(0), painter.frame(20));
    let mean = |i: &RgbImage| i.iter().map(|&v| f64::from(v)).sum::<f64>() / i.len() as f64;
    assert!((mean(&b) / mean(&a) - 0.6).abs() < 0.01);
    let shaken = painter.frame(50);
    let steady = painter.frame(49);
    assert_eq!(shaken.get_pixel(102, 100), steady.get_pixel(100, 101));
    assert!(changed(&painter.frame(55), &steady).is_empty());
}
