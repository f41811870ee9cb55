//! Shelf scenes (issue 7): a camera looking at shelving in an aisle.
//!
//! A scenario (`tests/shelf-scenes/NAME.toml`) places shelves (a
//! quadrilateral each, divided into `rows × cols` facings of `units`
//! products) and scripts stock changes, shoppers standing in front of the
//! shelves (and taking units), lighting changes and camera shake.
//! [`render_shelves`] draws the frames and writes camera-app's analytics
//! configuration (`analytics.toml`, with the shelves) and the truth
//! (`truth.json`, a [`ShelfTruth`]) beside them.
//!
//! The first `reference_s` seconds of every scene are clean (everything
//! stocked, nobody in view, steady light and camera): the camera takes its
//! shelf reference there. [`ShelfScenario::load`] refuses a scene that
//! breaks this.

use std::fmt::Write as _;
use std::path::Path;

use image::{Rgb, RgbImage};

use crate::SceneError;
use crate::geom::Point;
use crate::render::write_err;
use crate::sprites;

pub mod render;
pub mod scenario;
pub mod truth;

pub use scenario::{ShelfScenario, shelf_scenario_files, shelf_scenarios_dir};
pub use truth::ShelfTruth;

/// Camera-app's analytics configuration for the scene: the shelves with
/// their grids and front zones, and the stop time.
pub fn analytics_toml(s: &ShelfScenario) -> String {
    let pts = |p: &[[f64; 2]]| {
        let inner: Vec<String> = p.iter().map(|[x, y]| format!("[{x:?}, {y:?}]")).collect();
        format!("[{}]", inner.join(", "))
    };
    let mut out = format!(
        "# Written by scenegen for shelf scene {:?}.\nversion = 1\nbin_minutes = 1\n\n\
         [shelf_check]\nstop_s = {:?}\n",
        s.name, s.stop_s
    );
    for spec in &s.shelves {
        // Infallible: writing to a String.
        let _ = write!(
            out,
            "\n[[shelves]]\nname = {:?}\npolygon = {}\ngrid = [{}, {}]\nfront = {}\n",
            spec.name,
            pts(&spec.polygon),
            spec.grid[0],
            spec.grid[1],
            pts(&spec.front()),
        );
    }
    out
}

fn invalid(s: &ShelfScenario) -> impl Fn(String) -> SceneError + '_ {
    move |problem| SceneError::Invalid {
        path: s.path.clone(),
        problem,
    }
}

/// The truth of a shelf scenario without drawing anything (it needs only
/// the reference boxes beside `images_dir`, for the sprites' shapes).
pub fn shelf_truth_only(s: &ShelfScenario, images_dir: &Path) -> Result<ShelfTruth, SceneError> {
    let crops = sprites::crops(images_dir)?;
    truth::compute(s, &crops).map_err(invalid(s))
}

/// Render the frames (`out_dir/frames/000000.jpg`, ... as
/// [`frame_path`] names them, JPEG quality
/// [`JPEG_QUALITY`](crate::render::JPEG_QUALITY)), `analytics.toml` and
/// `truth.json` into `out_dir`.
pub fn render_shelves(
    s: &ShelfScenario,
    images_dir: &Path,
    out_dir: &Path,
) -> Result<ShelfTruth, SceneError> {
    let (crops, sprite_images) = sprites::load(images_dir)?;
    let truth = truth::compute(s, &crops).map_err(invalid(s))?;
    let painter = render::ShelfPainter::new(s, &crops, &sprite_images)?;
    crate::render::write_frames(out_dir, s.frames(), crate::render::JPEG_QUALITY, |i| {
        painter.frame(i)
    })?;

    let analytics_path = out_dir.join("analytics.toml");
    std::fs::write(&analytics_path, analytics_toml(s)).map_err(write_err(&analytics_path))?;
    let truth_path = out_dir.join("truth.json");
    let json = serde_json::to_string_pretty(&truth).map_err(|source| SceneError::Json {
        path: truth_path.clone(),
        source,
    })?;
    std::fs::write(&truth_path, json + "\n").map_err(write_err(&truth_path))?;
    Ok(truth)
}

/// One frame as [`render_shelves`] draws it, with every facing outlined
/// in the colour of its true state (green stocked, yellow low, red empty;
/// the camera's thresholds 0.6 and 0.2), the front zones in blue and the
/// shoppers' true boxes in white: for looking at a scene while writing it.
pub fn shelf_preview(
    s: &ShelfScenario,
    images_dir: &Path,
    frame: usize,
) -> Result<RgbImage, SceneError> {
    let (crops, sprite_images) = sprites::load(images_dir)?;
    let truth = truth::compute(s, &crops).map_err(invalid(s))?;
    let painter = render::ShelfPainter::new(s, &crops, &sprite_images)?;
    let mut img = painter.frame(frame);
    let t = s.frame_time(frame);
    let (fw, fh) = (f64::from(s.width), f64::from(s.height));
    let line = |img: &mut RgbImage, a: Point, b: Point, c: [u8; 3]| {
        for k in 0..=600 {
            let p = a.lerp(b, f64::from(k) / 600.0);
            let (x, y) = (p.x * fw, p.y * fh);
            if (0.0..fw).contains(&x) && (0.0..fh).contains(&y) {
                img.put_pixel(x as u32, y as u32, Rgb(c));
            }
        }
    };
    let outline = |img: &mut RgbImage, poly: &[Point], c: [u8; 3]| {
        for k in 0..poly.len() {
            line(img, poly[k], poly[(k + 1) % poly.len()], c);
        }
    };
    for (spec, ts) in s.shelves.iter().zip(&truth.shelves) {
        outline(&mut img, &spec.front_points(), [60, 120, 255]);
        for (fi, f) in ts.facings.iter().enumerate() {
            let fill = truth.fill_at(&ts.name, &f.name, t).unwrap_or(1.0);
            let c = if fill >= 0.6 {
                [0, 220, 0]
            } else if fill >= 0.2 {
                [255, 220, 0]
            } else {
                [255, 0, 0]
            };
            outline(&mut img, &spec.facing_polygon(fi), c);
        }
    }
    let keys = s.keys().map_err(invalid(s))?;
    for p in truth::placements(s, &crops, &keys, t) {
        if let Some([x0, y0, x1, y1]) = p.clipped(s.width, s.height) {
            let [x0, y0, x1, y1] = [x0, y0, x1 - 1, y1 - 1].map(|v| f64::from(v).max(0.0));
            let c = [
                Point::new(x0 / fw, y0 / fh),
                Point::new(x1 / fw, y0 / fh),
                Point::new(x1 / fw, y1 / fh),
                Point::new(x0 / fw, y1 / fh),
            ];
            outline(&mut img, &c, [255, 255, 255]);
        }
    }
    Ok(img)
}

#[cfg(test)]
mod tests;
