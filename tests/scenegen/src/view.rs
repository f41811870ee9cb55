//! How the camera sees the door: the geometry a scene is filmed in (which
//! background is drawn, and how reports group scenes), and the fixtures
//! that stand in front of people (door frames, walls, displays).

use image::{Rgb, RgbImage};

use crate::render::{rect, shade};
use serde::{Deserialize, Serialize};

/// The camera's view of the entrance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Geometry {
    /// Outside, over the street, looking in: the shop at the top of the
    /// view, the street at the bottom (the first scenes' view).
    #[default]
    OutsideIn,
    /// Inside the shop looking out through the door: the street at the top,
    /// far away and small; the shop floor at the bottom.
    InsideOut,
    /// Steeply down over the door: everyone about the same size, the
    /// street at the top, the shop at the bottom, the box's centre counts.
    TopDown,
    /// From the side: the street on the left, the shop on the right, the
    /// door line upright in the middle.
    Side,
}

impl Geometry {
    pub const ALL: [Self; 4] = [Self::OutsideIn, Self::InsideOut, Self::TopDown, Self::Side];

    pub fn name(self) -> &'static str {
        match self {
            Self::OutsideIn => "outside_in",
            Self::InsideOut => "inside_out",
            Self::TopDown => "top_down",
            Self::Side => "side",
        }
    }
}

/// Something in front of whoever is farther away than `depth` (a foot
/// point's y): a wall beside the door, a door post, a display stand.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Occluder {
    /// `[x0, y0, x1, y1]`, normalised.
    #[serde(rename = "box")]
    pub rect: [f64; 4],
    /// People whose feet are above this y (farther away) are hidden by it;
    /// nearer people pass in front.
    pub depth: f64,
    pub color: [u8; 3],
}

impl Occluder {
    pub fn problems(&self, i: usize) -> Vec<String> {
        let [x0, y0, x1, y1] = self.rect;
        let mut p = Vec::new();
        let ok = |v: f64| (0.0..=1.0).contains(&v);
        if !(ok(x0) && ok(y0) && ok(x1) && ok(y1) && x0 < x1 && y0 < y1) {
            p.push(format!(
                "occluders[{i}].box: {:?} is not a box within 0..1",
                self.rect
            ));
        }
        if !(self.depth.is_finite() && (0.0..=1.5).contains(&self.depth)) {
            p.push(format!(
                "occluders[{i}].depth: {} is not within 0..1.5",
                self.depth
            ));
        }
        p
    }

    /// Draw it, with a darker outline so it reads as an object.
    pub fn draw(&self, img: &mut RgbImage) {
        let [x0, y0, x1, y1] = self.rect;
        rect(img, x0, y0, x1, y1, self.color);
        let edge = self.color.map(|c| (f64::from(c) * 0.7) as u8);
        let (px, py) = (1.5 / f64::from(img.width()), 1.5 / f64::from(img.height()));
        rect(img, x0, y0, x0 + px, y1, edge);
        rect(img, x1 - px, y0, x1, y1, edge);
        rect(img, x0, y0, x1, y0 + py, edge);
    }
}

const PAVEMENT: [u8; 3] = [150, 148, 142];
const PAVING_JOINT: [u8; 3] = [120, 118, 114];
const THRESHOLD: [u8; 3] = [88, 86, 84];
const FLOOR: [u8; 3] = [176, 170, 160];
const TILE_JOINT: [u8; 3] = [150, 145, 138];
const ROAD: [u8; 3] = [92, 94, 98];

/// The empty entrance for `geometry` (the outside-in view is
/// [`crate::render::background`]).
pub fn background(geometry: Geometry, width: u32, height: u32, seed: u64) -> RgbImage {
    let mut img = match geometry {
        Geometry::OutsideIn => return crate::render::background(width, height, seed),
        Geometry::InsideOut => inside_out(width, height),
        Geometry::TopDown => top_down(width, height),
        Geometry::Side => side(width, height),
    };
    crate::render::texture(&mut img, &mut fastrand::Rng::with_seed(seed ^ 0x7E57_0BE5));
    img
}

/// Road, kerb and pavement far away at the top, the threshold at
/// y = 0.40, the shop floor (tiles getting larger toward the camera).
fn inside_out(width: u32, height: u32) -> RgbImage {
    let mut img = RgbImage::new(width, height);
    let fh = f64::from(height);
    for y in 0..height {
        let v = (f64::from(y) + 0.5) / fh;
        let c = if v < 0.08 {
            ROAD
        } else if v < 0.10 {
            [175, 172, 165]
        } else if v < 0.385 {
            shade(PAVEMENT, 0.9 + 0.15 * v)
        } else if v < 0.415 {
            THRESHOLD
        } else {
            shade(FLOOR, 0.95 + 0.08 * v)
        };
        for x in 0..width {
            img.put_pixel(x, y, Rgb(c));
        }
    }
    for k in 0..8 {
        let u = 0.04 + f64::from(k) * 0.13;
        rect(&mut img, u, 0.035, u + 0.05, 0.045, [200, 200, 190]);
    }
    for v in [0.17, 0.25, 0.33] {
        rect(&mut img, 0.0, v, 1.0, v + 0.003, PAVING_JOINT);
    }
    for v in [0.5, 0.62, 0.78, 0.96] {
        rect(&mut img, 0.0, v, 1.0, v + 0.004, TILE_JOINT);
    }
    for k in 0..9 {
        // Tile joints fanning out toward the camera.
        let top = 0.1 + f64::from(k) * 0.1;
        for y in (0.415 * fh) as u32..height {
            let v = f64::from(y) / fh;
            let x = 0.5 + (top - 0.5) * (1.0 + 1.2 * (v - 0.415));
            rect(&mut img, x, v, x + 0.002, v + 1.0 / fh, TILE_JOINT);
        }
    }
    // A doormat just inside.
    rect(&mut img, 0.38, 0.43, 0.62, 0.5, [96, 80, 70]);
    img
}

/// Seen from above: paving at the top, a doormat across the middle,
/// square floor tiles at the bottom.
fn top_down(width: u32, height: u32) -> RgbImage {
    let mut img = RgbImage::new(width, height);
    let fh = f64::from(height);
    for y in 0..height {
        let v = (f64::from(y) + 0.5) / fh;
        let c = if v < 0.44 {
            PAVEMENT
        } else if v < 0.56 {
            [84, 74, 68]
        } else {
            FLOOR
        };
        for x in 0..width {
            img.put_pixel(x, y, Rgb(c));
        }
    }
    for k in 0..10 {
        let u = f64::from(k) * 0.1;
        rect(&mut img, u, 0.0, u + 0.003, 0.44, PAVING_JOINT);
        rect(&mut img, u + 0.05, 0.56, u + 0.052, 1.0, TILE_JOINT);
    }
    for v in [0.1, 0.22, 0.34, 0.66, 0.78, 0.9] {
        let c = if v < 0.5 { PAVING_JOINT } else { TILE_JOINT };
        rect(&mut img, 0.0, v, 1.0, v + 0.004, c);
    }
    // Door posts at the ends of the mat.
    rect(&mut img, 0.02, 0.44, 0.06, 0.56, [60, 60, 66]);
    rect(&mut img, 0.94, 0.44, 0.98, 0.56, [60, 60, 66]);
    img
}

/// The back wall at the top; pavement on the left, an upright threshold
/// at x = 0.5, the shop floor with a shelf on the right.
fn side(width: u32, height: u32) -> RgbImage {
    let mut img = RgbImage::new(width, height);
    let (fw, fh) = (f64::from(width), f64::from(height));
    for y in 0..height {
        let v = (f64::from(y) + 0.5) / fh;
        for x in 0..width {
            let u = (f64::from(x) + 0.5) / fw;
            let c = if v < 0.2 {
                if u < 0.49 {
                    [120, 150, 175]
                } else {
                    [196, 188, 170]
                }
            } else if u < 0.485 {
                shade(PAVEMENT, 0.85 + 0.2 * v)
            } else if u < 0.515 {
                THRESHOLD
            } else {
                shade(FLOOR, 0.85 + 0.2 * v)
            };
            img.put_pixel(x, y, Rgb(c));
        }
    }
    for v in [0.3, 0.45, 0.63, 0.85] {
        rect(&mut img, 0.0, v, 0.485, v + 0.004, PAVING_JOINT);
        rect(&mut img, 0.515, v, 1.0, v + 0.004, TILE_JOINT);
    }
    // The shop front: window frame on the street side, a shelf inside.
    rect(&mut img, 0.47, 0.0, 0.53, 0.2, [60, 60, 66]);
    rect(&mut img, 0.0, 0.19, 0.49, 0.205, [70, 70, 74]);
    rect(&mut img, 0.8, 0.02, 0.97, 0.19, [120, 112, 100]);
    img
}
