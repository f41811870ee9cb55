//! Development aid: the shelf comparator's fill of every facing of one
//! shelf scene over time, against the scene's truth (`*`: occluded),
//! reference from the first frame, one row per 2 s:
//! `cargo run -p camera-app --example shelf_fills -- [SCENE]`
//! (`one_shelf_emptied` by default; scenes in `tests/shelf-scenes/`).

use scenegen::shelf::{ShelfScenario, render_shelves};

fn main() {
    use camera_core::shelf::compare::{ReferenceComparator, RgbView, ShelfReference, ShelfState};
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "one_shelf_emptied".into());
    let path = scenegen::shelf::shelf_scenarios_dir().join(format!("{name}.toml"));
    let scenario = ShelfScenario::load(&path).expect("scenario");
    let work = tempfile::tempdir().expect("tempdir");
    let truth =
        render_shelves(&scenario, &scenegen::shared_images_dir(), work.path()).expect("render");
    let (analytics, _) =
        camera_app::runtime::setup::load_analytics(&work.path().join("analytics.toml"))
            .expect("analytics");
    let frame = |i: usize| {
        image::open(scenegen::render::frame_path(&work.path().join("frames"), i))
            .expect("frame")
            .into_rgb8()
    };
    let first = frame(0);
    fn view(img: &image::RgbImage) -> RgbView<'_> {
        RgbView {
            width: img.width(),
            height: img.height(),
            data: img.as_raw(),
        }
    }
    let refs = analytics
        .shelves
        .iter()
        .map(|s| ShelfReference::capture(s, analytics.version, &[view(&first)]).expect("ref"))
        .collect();
    let mut c = ReferenceComparator::new(refs, analytics.version).expect("comparator");
    let mut out = Vec::new();
    for i in (0..truth.frames).step_by(2 * truth.fps as usize) {
        let img = frame(i);
        let t = i as f64 / f64::from(truth.fps);
        for s in &analytics.shelves {
            c.fill(s, view(&img), &mut out).expect("fill");
            let row: Vec<String> = s
                .facings
                .iter()
                .zip(&out)
                .map(|(f, v)| {
                    let want = truth.fill_at(&s.name, &f.name, t).unwrap_or(f64::NAN);
                    let occ = if truth.occluded_at(&s.name, &f.name, t) {
                        "*"
                    } else {
                        ""
                    };
                    format!("{v:.2}/{want:.2}{occ}")
                })
                .collect();
            println!("{t:5.1} {:<6} {}", s.name, row.join(" "));
        }
    }
}
