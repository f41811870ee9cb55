//! Drawing shelf frames: a wall and floor, a gondola frame around each
//! shelf, the products of every facing in the shelf's perspective, the
//! shoppers, then the whole-image disturbances (lighting gain, shake) and
//! sensor noise.
//!
//! The shelf is drawn in its own (u, v) parametrisation, the bilinear map
//! camera-app uses for grid facings, so a facing's products stay inside
//! its polygon whatever the perspective: each pixel is supersampled 2×2,
//! each sample mapped back to (u, v), and the colour there depends only on
//! the facing that owns (u, v).

use std::collections::HashMap;

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};

use super::scenario::{EPS, ShelfScenario, ShelfSpec, StockChange, StockEvent};
use super::truth::placements;
use crate::SceneError;
use crate::geom::Point;
use crate::render::{add_noise, frame_rng, noise_table, paste};
use crate::scenario::Key;
use crate::sprites::Crop;

/// Share of a row's height taken by the board at its bottom.
const BOARD: f64 = 0.09;
/// Share of a row's height left free above the tallest product.
const TOP_GAP: f64 = 0.1;
/// Share of a facing's width kept free at each side: products stay clear
/// of the facing's edges by more than half a pixel, so that removing one
/// changes no pixel whose centre lies outside the facing.
const SIDE_MARGIN: f64 = 0.05;

/// The (u, v) of `p` in the bilinear quad `q` (top-left, top-right,
/// bottom-right, bottom-left), or `None` when it has no sensible one. Of
/// the two roots, the one nearest the unit square.
pub(crate) fn inv_bilinear(q: &[Point; 4], p: Point) -> Option<(f64, f64)> {
    let [a, b, c, d] = *q;
    let e = b.minus(a);
    let f = d.minus(a);
    let g = Point::new(a.x - b.x + c.x - d.x, a.y - b.y + c.y - d.y);
    let h = p.minus(a);
    let k2 = g.cross(f);
    let k1 = e.cross(f) + h.cross(g);
    let k0 = h.cross(e);
    let u_of = |v: f64| {
        let (dx, dy) = (e.x + g.x * v, e.y + g.y * v);
        if dx.abs() >= dy.abs() {
            (h.x - f.x * v) / dx
        } else {
            (h.y - f.y * v) / dy
        }
    };
    // k2 k^2 + k1 v + k0 = 0, solved without cancellation: a rectangle
    // has k2 = 0 up to rounding, and the textbook formula then loses
    // every digit of the root that matters.
    let vs: Vec<f64> = if k2.abs() <= 1e-12 * k1.abs() {
        if k1 == 0.0 {
            return None;
        }
        vec![-k0 / k1]
    } else {
        let w = k1 * k1 - 4.0 * k0 * k2;
        if w < 0.0 {
            return None;
        }
        let q = -0.5 * (k1 + k1.signum() * w.sqrt());
        if q == 0.0 {
            vec![0.0]
        } else {
            vec![q / k2, k0 / q]
        }
    };
    let outside = |(u, v): (f64, f64)| {
        let d = |x: f64| (-x).max(x - 1.0).max(0.0);
        d(u) + d(v)
    };
    vs.into_iter()
        .map(|v| (u_of(v), v))
        .filter(|(u, v)| u.is_finite() && v.is_finite())
        .min_by(|x, y| outside(*x).total_cmp(&outside(*y)))
}

fn mix(a: [f64; 3], b: [f64; 3], k: f64) -> [f64; 3] {
    [0, 1, 2].map(|i| a[i] + (b[i] - a[i]) * k)
}

fn scale(c: [f64; 3], k: f64) -> [f64; 3] {
    c.map(|v| v * k)
}

/// A small deterministic hash for fixed per-pixel grain and text marks.
fn hash(a: u64, b: u64) -> u64 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Box,
    Bottle,
    Can,
    Jar,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Stripes(u32),
    Block,
    Logo,
    Plain,
}

/// How one facing's product looks; the same for every unit of it.
#[derive(Debug, Clone)]
struct Look {
    kind: Kind,
    /// Width as a share of the unit's slot, height as a share of the room
    /// above the board.
    w: f64,
    h: f64,
    body: [f64; 3],
    label: [f64; 3],
    accent: [f64; 3],
    cap: [f64; 3],
    style: Style,
    /// Label band, top and bottom (share of the product's height).
    band: (f64, f64),
    /// Text-like marks on the label.
    text: bool,
    text_seed: u64,
    /// Product width over height in pixels, for round logos.
    aspect: f64,
}

fn colour(rng: &mut fastrand::Rng) -> [f64; 3] {
    // Saturated but not neon: one strong channel, one middling, one low.
    let mut c = [
        40.0 + rng.f64() * 60.0,
        90.0 + rng.f64() * 80.0,
        170.0 + rng.f64() * 80.0,
    ];
    rng.shuffle(&mut c);
    c
}

impl Look {
    fn new(rng: &mut fastrand::Rng, slot_px: f64, room_px: f64) -> Self {
        let kind = match rng.u32(0..10) {
            0..=3 => Kind::Box,
            4..=5 => Kind::Bottle,
            6..=7 => Kind::Can,
            _ => Kind::Jar,
        };
        let (w, h) = match kind {
            Kind::Box => (0.8 + rng.f64() * 0.15, 0.6 + rng.f64() * 0.35),
            Kind::Bottle => (0.6 + rng.f64() * 0.25, 0.8 + rng.f64() * 0.2),
            Kind::Can => (0.75 + rng.f64() * 0.2, 0.45 + rng.f64() * 0.3),
            Kind::Jar => (0.75 + rng.f64() * 0.2, 0.5 + rng.f64() * 0.3),
        };
        let body = colour(rng);
        let label = if rng.bool() {
            [225.0 + rng.f64() * 25.0; 3]
        } else {
            colour(rng)
        };
        let accent = if rng.bool() {
            [30.0 + rng.f64() * 30.0; 3]
        } else {
            colour(rng)
        };
        let style = match rng.u32(0..4) {
            0 => Style::Stripes(rng.u32(2..5)),
            1 => Style::Block,
            2 => Style::Logo,
            _ => Style::Plain,
        };
        let b0 = 0.25 + rng.f64() * 0.15;
        Self {
            kind,
            w,
            h,
            body,
            label,
            accent,
            cap: colour(rng),
            style,
            band: (b0, b0 + 0.3 + rng.f64() * 0.2),
            text: rng.u32(0..3) > 0,
            text_seed: rng.u64(..),
            aspect: (w * slot_px) / (h * room_px).max(1.0),
        }
    }

    /// Colour at (a across, b down) in the product's box, or `None` where
    /// the shape leaves the shelf back visible.
    fn colour(&self, a: f64, b: f64) -> Option<[f64; 3]> {
        let x = a - 0.5;
        // Half width of the silhouette at height b, and what is there.
        let (half, cap) = match self.kind {
            Kind::Box | Kind::Can => (0.5, false),
            Kind::Bottle => {
                if b < 0.08 {
                    (0.14, true)
                } else if b < 0.22 {
                    (0.12, false)
                } else if b < 0.36 {
                    (0.12 + (b - 0.22) / 0.14 * 0.38, false)
                } else {
                    (0.5, false)
                }
            }
            Kind::Jar => {
                if b < 0.14 {
                    (0.44, true)
                } else {
                    (0.5, false)
                }
            }
        };
        if x.abs() > half {
            return None;
        }
        // Round things are shaded across; boxes show a darker side face
        // and a lit top.
        let round = (1.0 - (x / half).powi(2)).max(0.0).sqrt();
        let shade = match self.kind {
            Kind::Box => {
                if a < 0.1 {
                    0.72
                } else if b < 0.05 {
                    1.15
                } else {
                    1.0
                }
            }
            _ => 0.62 + 0.45 * round,
        };
        if cap {
            return Some(scale(self.cap, shade));
        }
        if self.kind == Kind::Can && !(0.05..=0.95).contains(&b) {
            return Some(scale([175.0, 178.0, 182.0], shade));
        }
        let (b0, b1) = self.band;
        let mut c = self.body;
        if (b0..b1).contains(&b) {
            let lb = (b - b0) / (b1 - b0);
            c = match self.style {
                Style::Stripes(n) => {
                    if ((lb * f64::from(n)) as u32).is_multiple_of(2) {
                        self.label
                    } else {
                        self.accent
                    }
                }
                Style::Block => {
                    if (0.2..0.8).contains(&a) && (0.15..0.6).contains(&lb) {
                        self.accent
                    } else {
                        self.label
                    }
                }
                Style::Logo => {
                    let dy = (lb - 0.4) * (b1 - b0) / self.aspect;
                    if x * x + dy * dy < 0.3f64.powi(2) {
                        self.accent
                    } else {
                        self.label
                    }
                }
                Style::Plain => self.label,
            };
            // Rows of short dark marks near the bottom of the label.
            if self.text && lb > 0.68 && (0.15..0.85).contains(&a) {
                let row = ((lb - 0.68) / 0.32 * 3.0) as u64;
                let line = (lb - 0.68) / 0.32 * 3.0 % 1.0;
                let word = (a * 9.0) as u64;
                if line < 0.55 && !hash(self.text_seed ^ row, word).is_multiple_of(3) {
                    c = mix(c, [20.0, 20.0, 25.0], 0.8);
                }
            }
        } else if self.kind == Kind::Box && b > 0.85 && self.style != Style::Plain {
            // A coloured foot band on boxes.
            c = self.accent;
        }
        Some(scale(c, shade))
    }
}

/// One shelf's supersampled pixels.
#[derive(Debug)]
struct Layout {
    /// Pixel index, and the (u, v) of its 4 samples that fall on the shelf.
    pixels: Vec<(usize, Vec<(f64, f64)>)>,
}

const SUBSAMPLES: [(f64, f64); 4] = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)];

fn quad_px(spec: &ShelfSpec, w: u32, h: u32) -> [Point; 4] {
    spec.polygon
        .map(|[x, y]| Point::new(x * f64::from(w), y * f64::from(h)))
}

fn bbox_px(q: &[Point], w: u32, h: u32) -> (u32, u32, u32, u32) {
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for p in q {
        x0 = x0.min(p.x);
        y0 = y0.min(p.y);
        x1 = x1.max(p.x);
        y1 = y1.max(p.y);
    }
    let c = |v: f64, m: u32| v.clamp(0.0, f64::from(m)) as u32;
    (
        c(x0.floor(), w),
        c(y0.floor(), h),
        c(x1.ceil(), w),
        c(y1.ceil(), h),
    )
}

impl Layout {
    fn new(spec: &ShelfSpec, w: u32, h: u32) -> Self {
        let q = quad_px(spec, w, h);
        let (x0, y0, x1, y1) = bbox_px(&q, w, h);
        let mut pixels = Vec::new();
        for y in y0..y1 {
            for x in x0..x1 {
                let samples: Vec<(f64, f64)> = SUBSAMPLES
                    .iter()
                    .filter_map(|&(ox, oy)| {
                        let p = Point::new(f64::from(x) + ox, f64::from(y) + oy);
                        inv_bilinear(&q, p)
                            .filter(|&(u, v)| (0.0..1.0).contains(&u) && (0.0..1.0).contains(&v))
                    })
                    .collect();
                if !samples.is_empty() {
                    pixels.push((y as usize * w as usize + x as usize, samples));
                }
            }
        }
        Self { pixels }
    }
}

/// Everything needed to draw any frame.
pub(crate) struct ShelfPainter<'a> {
    s: &'a ShelfScenario,
    crops: &'a [Crop],
    sprites: &'a [RgbImage],
    keys: Vec<Vec<Key>>,
    events: Vec<StockEvent>,
    /// The stocked-state images, by remaining units (shelf-major).
    stock_images: HashMap<Vec<u32>, RgbImage>,
    noise: Vec<i16>,
}

impl std::fmt::Debug for ShelfPainter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShelfPainter")
            .field("scenario", &self.s.name)
            .finish_non_exhaustive()
    }
}

/// Per shelf: each facing's look and the order its units are taken in.
struct Stock {
    looks: Vec<Vec<Look>>,
    orders: Vec<Vec<Vec<u32>>>,
    layouts: Vec<Layout>,
    statics: RgbImage,
}

impl<'a> ShelfPainter<'a> {
    pub(crate) fn new(
        s: &'a ShelfScenario,
        crops: &'a [Crop],
        sprites: &'a [RgbImage],
    ) -> Result<Self, SceneError> {
        let invalid = |problem| SceneError::Invalid {
            path: s.path.clone(),
            problem,
        };
        let keys = s.keys().map_err(invalid)?;
        let events = s.stock_events().map_err(|p| invalid(p.join("; ")))?;
        let stock = Stock::new(s);
        let mut stock_images = HashMap::new();
        for i in 0..s.frames() {
            let left = units_left(s, &events, s.frame_time(i));
            if let std::collections::hash_map::Entry::Vacant(e) = stock_images.entry(left) {
                let img = stock.draw(s, e.key());
                e.insert(img);
            }
        }
        Ok(Self {
            s,
            crops,
            sprites,
            keys,
            events,
            stock_images,
            noise: noise_table(s.seed, s.noise),
        })
    }

    /// Frame `i` before disturbances and noise are added, when `clean`.
    pub(crate) fn frame_with(&self, i: usize, clean: bool) -> RgbImage {
        let s = self.s;
        let t = s.frame_time(i);
        let left = units_left(s, &self.events, t);
        let mut img = match self.stock_images.get(&left) {
            Some(img) => img.clone(),
            None => Stock::new(s).draw(s, &left),
        };
        for p in placements(s, self.crops, &self.keys, t) {
            let mut sprite = imageops::resize(
                &self.sprites[s.people[p.id].sprite],
                p.w as u32,
                p.h as u32,
                FilterType::Triangle,
            );
            if s.people[p.id].flip {
                imageops::flip_horizontal_in_place(&mut sprite);
            }
            paste(&mut img, &sprite, p.x0, p.y0);
        }
        if clean {
            return img;
        }
        let gain = s.gain_at(t);
        if (gain - 1.0).abs() > 1e-9 {
            for v in img.iter_mut() {
                *v = (f64::from(*v) * gain).round().clamp(0.0, 255.0) as u8;
            }
        }
        let (dx, dy) = s.shake_at(t);
        if (dx, dy) != (0, 0) {
            img = shifted(&img, dx, dy);
        }
        if s.noise > 0.0 {
            add_noise(&mut img, &self.noise, &mut frame_rng(s.seed, i, 2));
        }
        img
    }

    /// Frame `i` as written.
    pub(crate) fn frame(&self, i: usize) -> RgbImage {
        self.frame_with(i, false)
    }
}

/// The image moved by (dx, dy) pixels, edges repeated.
fn shifted(img: &RgbImage, dx: i32, dy: i32) -> RgbImage {
    let (w, h) = (img.width() as i32, img.height() as i32);
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let sx = (x as i32 - dx).clamp(0, w - 1);
        let sy = (y as i32 - dy).clamp(0, h - 1);
        *img.get_pixel(sx as u32, sy as u32)
    })
}

/// Units left in every facing (shelf-major, row-major) at `t`.
pub(crate) fn units_left(s: &ShelfScenario, events: &[StockEvent], t: f64) -> Vec<u32> {
    let mut offset = Vec::with_capacity(s.shelves.len());
    let mut n = 0;
    for spec in &s.shelves {
        offset.push(n);
        n += spec.facings();
    }
    let mut left: Vec<u32> = s
        .shelves
        .iter()
        .flat_map(|spec| std::iter::repeat_n(spec.units, spec.facings()))
        .collect();
    for e in events.iter().take_while(|e| e.t <= t + EPS) {
        let k = &mut left[offset[e.shelf] + e.facing];
        *k = match e.change {
            StockChange::Remove(r) => k.saturating_sub(r),
            StockChange::Restock => s.shelves[e.shelf].units,
        };
    }
    left
}

impl Stock {
    fn new(s: &ShelfScenario) -> Self {
        let (w, h) = (s.width, s.height);
        let mut looks = Vec::new();
        let mut orders = Vec::new();
        for (si, spec) in s.shelves.iter().enumerate() {
            let q = quad_px(spec, w, h);
            let [rows, cols] = spec.grid.map(f64::from);
            let width_px = (q[1].minus(q[0]).dot(q[1].minus(q[0])).sqrt()
                + q[2].minus(q[3]).dot(q[2].minus(q[3])).sqrt())
                / 2.0;
            let height_px = (q[3].minus(q[0]).dot(q[3].minus(q[0])).sqrt()
                + q[2].minus(q[1]).dot(q[2].minus(q[1])).sqrt())
                / 2.0;
            let slot_px = width_px / cols * (1.0 - 2.0 * SIDE_MARGIN) / f64::from(spec.units);
            let room_px = height_px / rows * (1.0 - BOARD - TOP_GAP);
            let mut l = Vec::new();
            let mut o = Vec::new();
            for fi in 0..spec.facings() {
                let mut rng = fastrand::Rng::with_seed(hash(s.seed, (si as u64) << 32 | fi as u64));
                l.push(Look::new(&mut rng, slot_px, room_px));
                let mut order: Vec<u32> = (0..spec.units).collect();
                rng.shuffle(&mut order);
                o.push(order);
            }
            looks.push(l);
            orders.push(o);
        }
        Self {
            looks,
            orders,
            layouts: s.shelves.iter().map(|sp| Layout::new(sp, w, h)).collect(),
            statics: statics(s),
        }
    }

    /// The scene without people, with `left` units in every facing.
    fn draw(&self, s: &ShelfScenario, left: &[u32]) -> RgbImage {
        let mut img = self.statics.clone();
        let w = s.width as usize;
        let mut offset = 0;
        for (si, spec) in s.shelves.iter().enumerate() {
            let left = &left[offset..offset + spec.facings()];
            offset += spec.facings();
            let back = back_colour(s.seed, si);
            for (px, samples) in &self.layouts[si].pixels {
                let raw = &img.as_raw()[px * 3..px * 3 + 3];
                let stat = [raw[0], raw[1], raw[2]].map(f64::from);
                let mut acc = [0.0; 3];
                for &(u, v) in samples {
                    let c = self.shelf_colour(spec, si, left, back, u, v);
                    for k in 0..3 {
                        acc[k] += c[k];
                    }
                }
                let n = samples.len() as f64;
                let rest = SUBSAMPLES.len() as f64 - n;
                // Fixed grain, the same in every state.
                let grain = (hash(s.seed ^ 0x6A1, *px as u64) % 7) as f64 - 3.0;
                let (x, y) = ((px % w) as u32, (px / w) as u32);
                // Samples off the shelf keep the frame behind it.
                let out = [0, 1, 2].map(|k| {
                    ((acc[k] + grain * n + stat[k] * rest) / SUBSAMPLES.len() as f64)
                        .round()
                        .clamp(0.0, 255.0) as u8
                });
                img.put_pixel(x, y, Rgb(out));
            }
        }
        img
    }

    fn shelf_colour(
        &self,
        spec: &ShelfSpec,
        si: usize,
        left: &[u32],
        back: [f64; 3],
        u: f64,
        v: f64,
    ) -> [f64; 3] {
        let [rows, cols] = spec.grid.map(f64::from);
        let (cu, cv) = (u * cols, v * rows);
        let (c, r) = (cu.floor().min(cols - 1.0), cv.floor().min(rows - 1.0));
        let (fu, fv) = (cu - c, cv - r);
        let fi = r as usize * spec.grid[1] as usize + c as usize;
        // The board at the bottom of the row, with a price tag.
        if fv > 1.0 - BOARD {
            let bv = (fv - (1.0 - BOARD)) / BOARD;
            if (0.4..0.6).contains(&fu) && (0.2..0.85).contains(&bv) {
                let mark = ((fu * 30.0) as u64).is_multiple_of(2) && (0.4..0.7).contains(&bv);
                return if mark {
                    [60.0, 60.0, 60.0]
                } else {
                    [240.0, 238.0, 225.0]
                };
            }
            let edge = if bv > 0.85 { 0.7 } else { 1.0 };
            return scale([196.0, 194.0, 188.0], edge);
        }
        // The back: darker under the board above, slightly lighter to
        // the bottom; faint vertical board seams.
        let seam = if (u * 3.0).fract() < 0.004 { 0.8 } else { 1.0 };
        let back_here = scale(back, (0.8 + 0.25 * fv) * seam);
        // Products stand on the board.
        let units = spec.units;
        let slot = (1.0 - 2.0 * SIDE_MARGIN) / f64::from(units);
        let j = ((fu - SIDE_MARGIN) / slot).floor();
        if j < 0.0 || j >= f64::from(units) {
            return back_here;
        }
        let j = j as u32;
        let removed = (spec.units - left[fi]) as usize;
        if self.orders[si][fi][..removed].contains(&j) {
            return back_here;
        }
        let look = &self.looks[si][fi];
        let a = ((fu - SIDE_MARGIN) / slot - f64::from(j) - 0.5) / look.w + 0.5;
        let floor = 1.0 - BOARD;
        let top = floor - look.h * (floor - TOP_GAP);
        let b = (fv - top) / (floor - top);
        if !(0.0..1.0).contains(&a) || !(0.0..1.0).contains(&b) {
            return back_here;
        }
        look.colour(a, b).unwrap_or(back_here)
    }
}

fn back_colour(seed: u64, shelf: usize) -> [f64; 3] {
    let mut rng = fastrand::Rng::with_seed(hash(seed ^ 0xBAC, shelf as u64));
    let base = 58.0 + rng.f64() * 18.0;
    [
        base,
        base - 3.0 + rng.f64() * 6.0,
        base - 4.0 + rng.f64() * 8.0,
    ]
}

/// Wall, floor and the gondola frames (uprights, header, plinth): all that
/// never changes.
fn statics(s: &ShelfScenario) -> RgbImage {
    let (w, h) = (s.width, s.height);
    let (fw, fh) = (f64::from(w), f64::from(h));
    let floor_y = s
        .shelves
        .iter()
        .map(|sp| sp.polygon[2][1].max(sp.polygon[3][1]))
        .fold(0.0, f64::max)
        + 0.05;
    let floor_y = floor_y.min(0.85);
    let mut rng = fastrand::Rng::with_seed(s.seed ^ 0x5EED_5E1F);
    let wall = [
        200.0 + rng.f64() * 30.0,
        195.0 + rng.f64() * 30.0,
        185.0 + rng.f64() * 30.0,
    ];
    let floor = [168.0, 164.0, 158.0];
    let vanish = Point::new(0.5, floor_y - 0.45);
    let mut img = RgbImage::from_fn(w, h, |x, y| {
        let (u, v) = ((f64::from(x) + 0.5) / fw, (f64::from(y) + 0.5) / fh);
        let c = if v < floor_y {
            scale(wall, 0.9 + 0.1 * v / floor_y)
        } else {
            // Tiles in perspective: joints fanning out from a vanishing
            // point, cross joints closer together toward the back.
            let depth = (v - floor_y) / (1.0 - floor_y);
            let fan = (u - vanish.x) / (v - vanish.y) * 3.0;
            let cross = depth.sqrt() * 5.0;
            let joint = fan.rem_euclid(1.0) < 0.03 || cross.fract() < 0.04;
            let k = 0.88 + 0.12 * depth;
            if joint {
                scale(floor, k * 0.82)
            } else {
                scale(floor, k)
            }
        };
        let grain = (hash(s.seed ^ 0x57A7, u64::from(y) * 4096 + u64::from(x)) % 9) as f64 - 4.0;
        Rgb(c.map(|v| (v + grain).round().clamp(0.0, 255.0) as u8))
    });
    // Skirting board along the wall's foot.
    for y in (floor_y * fh) as u32..((floor_y + 0.012) * fh) as u32 {
        for x in 0..w {
            if y < h {
                img.put_pixel(x, y, Rgb([120, 116, 110]));
            }
        }
    }
    for (si, spec) in s.shelves.iter().enumerate() {
        let q = quad_px(spec, w, h);
        let header = colour(&mut fastrand::Rng::with_seed(hash(
            s.seed ^ 0x4EAD,
            si as u64,
        )));
        // The frame around the shelf in its own parametrisation: uprights
        // left and right, a header sign above, a plinth down to the floor.
        let (eu, top, bottom) = (
            0.025,
            -0.14,
            1.0 + (floor_y - spec.polygon[2][1]).max(0.02)
                / (spec.polygon[2][1] - spec.polygon[1][1]),
        );
        let ext = [
            spec.at(-eu, top),
            spec.at(1.0 + eu, top),
            spec.at(1.0 + eu, bottom),
            spec.at(-eu, bottom),
        ]
        .map(|p| Point::new(p.x * fw, p.y * fh));
        let (x0, y0, x1, y1) = bbox_px(&ext, w, h);
        for y in y0..y1 {
            for x in x0..x1 {
                let p = Point::new(f64::from(x) + 0.5, f64::from(y) + 0.5);
                let Some((u, v)) = inv_bilinear(&q, p) else {
                    continue;
                };
                if !(-eu..=1.0 + eu).contains(&u) || !(top..=bottom).contains(&v) {
                    continue;
                }
                let c = if v < -0.04 {
                    // Header sign with a light band.
                    if (v - top) / (-0.04 - top) > 0.35
                        && (v - top) / (-0.04 - top) < 0.7
                        && (0.1..0.9).contains(&u)
                    {
                        [235.0, 235.0, 230.0]
                    } else {
                        header
                    }
                } else if v > 1.0 {
                    [70.0, 70.0, 76.0]
                } else {
                    [92.0, 92.0, 98.0]
                };
                img.put_pixel(x, y, Rgb(c.map(|v| v as u8)));
            }
        }
    }
    img
}
