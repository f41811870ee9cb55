//! Snapshots for installers: one JPEG of the current view, people
//! pixelated, counting lines and zones drawn on top, size-limited.
//!
//! This is the only image that ever leaves the camera, and only when the
//! configuration enables it and an installer asks. [`render`] refuses to
//! run when [`SnapshotOptions::enabled`] is false, so the check cannot be
//! forgotten by a caller.
//!
//! Steps: convert the frame to RGB (NV12 and YUYV through `yuvutils-rs`
//! with the camera's colorimetry, MJPEG through the `image` decoder),
//! downscale to `max_width`, pixelate every person box (plus a margin) in
//! blocks of an eighth of the box's larger side (a face is then one or two
//! blocks: unrecognisable), draw the lines (with an arrow from the middle
//! of each segment pointing to the "in" side) and zone outlines (thinner,
//! no arrows), each in its own colour ([`legend`]), and encode. If the JPEG
//! exceeds `max_bytes` it is encoded again at lower quality (down to 40),
//! then at ¾ of the size each time, down to 160 px wide.

use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::U8x3;
use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use serde::{Deserialize, Serialize};
use yuvutils_rs::{
    YuvBiPlanarImage, YuvConversionMode, YuvPackedImage, YuvRange, YuvStandardMatrix,
};

use crate::capture::{Frame, FrameLayoutError, PixelFormat};
use crate::detect::BBox;
use crate::preprocess::Colorimetry;
use camera_core::config::AnalyticsConfig;
use camera_core::config::InSide;
use camera_core::geom::Point;
use camera_core::geom::Polygon;
use camera_core::shelf::layout::Shelf;
use camera_core::shelf::state::Stock;

/// Below this quality lines and zone outlines smear; shrink instead.
const MIN_QUALITY: u8 = 40;
/// Quality steps tried after the configured one.
const QUALITY_STEPS: [u8; 3] = [65, 50, MIN_QUALITY];
/// Smallest width worth sending.
const MIN_WIDTH: u32 = 160;

/// Distinct, saturated colours (Sasha Trubetskoy's list), none grey or
/// skin-like, so shapes stand out on a store scene.
const PALETTE: [[u8; 3]; 8] = [
    [230, 25, 75],
    [60, 180, 75],
    [255, 225, 25],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
];

/// As written in the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotOptions {
    /// Off unless the installer's configuration turns it on.
    pub enabled: bool,
    /// The JPEG never exceeds this.
    pub max_bytes: usize,
    /// JPEG quality tried first (1..=100).
    pub quality: u8,
    /// Wider frames are scaled down to this.
    pub max_width: u32,
    /// Added to each side of a person box before pixelating, as a fraction
    /// of the box's width and height (detector boxes are tight).
    pub person_margin: f32,
    /// The camera's YUV colorimetry: set from the detector configuration,
    /// not by the installer.
    #[serde(skip, default = "default_colorimetry")]
    pub colorimetry: Colorimetry,
}

fn default_colorimetry() -> Colorimetry {
    Colorimetry::Bt601Limited
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        Self {
            enabled: false,
            max_bytes: 256 * 1024,
            quality: 80,
            max_width: 1280,
            person_margin: 0.15,
            colorimetry: default_colorimetry(),
        }
    }
}

impl SnapshotOptions {
    /// Every problem at once, or `Ok`.
    pub fn validate(&self) -> Result<(), SnapshotError> {
        let mut p = Vec::new();
        if self.max_bytes == 0 {
            p.push("max_bytes: must be positive".to_string());
        }
        if !(1..=100).contains(&self.quality) {
            p.push(format!("quality: {} is not within 1..100", self.quality));
        }
        if !(MIN_WIDTH..=8192).contains(&self.max_width) {
            p.push(format!(
                "max_width: {} is not within {MIN_WIDTH}..8192",
                self.max_width
            ));
        }
        if !(self.person_margin.is_finite() && (0.0..=1.0).contains(&self.person_margin)) {
            p.push(format!(
                "person_margin: {} is not within 0..1",
                self.person_margin
            ));
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(SnapshotError::Options(p.join("; ")))
        }
    }
}

/// Why no snapshot was made.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshots are disabled in the configuration")]
    Disabled,
    #[error("snapshot options rejected: {0}")]
    Options(String),
    #[error("frame {seq}: {source}")]
    Layout {
        seq: u64,
        #[source]
        source: FrameLayoutError,
    },
    #[error("frame {seq}: cannot decode {format}: {reason}")]
    Decode {
        seq: u64,
        format: PixelFormat,
        reason: String,
    },
    #[error("frame {seq}: colour conversion failed: {reason}")]
    Colour { seq: u64, reason: String },
    #[error("resizing {from_w}x{from_h} to {to_w}x{to_h} failed: {reason}")]
    Resize {
        from_w: u32,
        from_h: u32,
        to_w: u32,
        to_h: u32,
        reason: String,
    },
    #[error("JPEG encoding of {width}x{height} failed: {source}")]
    Encode {
        width: u32,
        height: u32,
        #[source]
        source: image::ImageError,
    },
    #[error(
        "snapshot does not fit in {max_bytes} bytes: still {bytes} bytes at {width}x{height}, quality {quality}"
    )]
    TooLarge {
        max_bytes: usize,
        bytes: usize,
        width: u32,
        height: u32,
        quality: u8,
    },
}

/// Which colour stands for which line or zone in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LegendEntry {
    pub name: String,
    /// "line" or "zone".
    pub kind: &'static str,
    pub rgb: [u8; 3],
}

/// The colours [`render`] uses: lines first, then zones. With more than
/// eight shapes colours repeat.
pub fn legend(analytics: &AnalyticsConfig) -> Vec<LegendEntry> {
    let lines = analytics.lines.iter().map(|l| (l.name.as_str(), "line"));
    let zones = analytics.zones.iter().map(|z| (z.name.as_str(), "zone"));
    lines
        .chain(zones)
        .enumerate()
        .map(|(i, (name, kind))| LegendEntry {
            name: name.to_string(),
            kind,
            rgb: PALETTE[i % PALETTE.len()],
        })
        .collect()
}

/// An RGB image, packed, tight rows.
#[derive(Debug, Clone)]
struct Rgb {
    w: u32,
    h: u32,
    px: Vec<u8>,
}

/// The installer's snapshot of `frame` as a JPEG of at most
/// `opts.max_bytes`. `people` are boxes in the frame's pixels; every one
/// is pixelated.
pub fn render(
    frame: &Frame,
    analytics: Option<&AnalyticsConfig>,
    people: &[BBox],
    opts: &SnapshotOptions,
) -> Result<Vec<u8>, SnapshotError> {
    render_with_shelves(frame, analytics, people, &[], opts)
}

/// Outline colours of a facing by its state (`None`: not judged yet, no
/// reference).
pub fn stock_colour(state: Option<Stock>) -> [u8; 3] {
    match state {
        Some(Stock::Stocked) => [40, 200, 70],
        Some(Stock::Low) => [255, 170, 0],
        Some(Stock::Empty) => [235, 30, 30],
        None => [150, 150, 150],
    }
}

/// As [`render`], with each shelf's facings outlined in the colour of
/// their state ([`stock_colour`]; an empty facing is also crossed out) and
/// the shelf's front zone dotted.
pub fn render_with_shelves(
    frame: &Frame,
    analytics: Option<&AnalyticsConfig>,
    people: &[BBox],
    shelves: &[(Shelf, Vec<Option<Stock>>)],
    opts: &SnapshotOptions,
) -> Result<Vec<u8>, SnapshotError> {
    if !opts.enabled {
        return Err(SnapshotError::Disabled);
    }
    opts.validate()?;
    let full = to_rgb(frame, opts.colorimetry)?;
    let (src_w, src_h) = (full.w, full.h);
    let mut img = if full.w > opts.max_width {
        let h = scaled_height(full.w, full.h, opts.max_width);
        resize(&full, opts.max_width, h)?
    } else {
        full
    };
    let (sx, sy) = (img.w as f32 / src_w as f32, img.h as f32 / src_h as f32);
    for b in people {
        pixelate(&mut img, b, sx, sy, opts.person_margin);
    }
    if let Some(a) = analytics {
        draw_shapes(&mut img, a);
    }
    draw_shelves(&mut img, shelves);
    fit(img, opts)
}

/// `frame` as packed RGB, whatever its format (for the shelf monitor).
pub fn frame_rgb(
    frame: &Frame,
    colorimetry: Colorimetry,
) -> Result<camera_core::shelf::monitor::RgbImage, SnapshotError> {
    let rgb = to_rgb(frame, colorimetry)?;
    Ok(camera_core::shelf::monitor::RgbImage {
        width: rgb.w,
        height: rgb.h,
        data: rgb.px,
    })
}

/// Encode, lowering quality and then size until the JPEG fits.
fn fit(mut img: Rgb, opts: &SnapshotOptions) -> Result<Vec<u8>, SnapshotError> {
    let qualities = std::iter::once(opts.quality)
        .chain(QUALITY_STEPS.into_iter().filter(|&q| q < opts.quality));
    let mut last = (0, opts.quality);
    for q in qualities {
        let jpeg = encode(&img, q)?;
        if jpeg.len() <= opts.max_bytes {
            return Ok(jpeg);
        }
        last = (jpeg.len(), q);
    }
    let q = last.1;
    loop {
        let w = img.w * 3 / 4;
        if w < MIN_WIDTH {
            return Err(SnapshotError::TooLarge {
                max_bytes: opts.max_bytes,
                bytes: last.0,
                width: img.w,
                height: img.h,
                quality: q,
            });
        }
        img = resize(&img, w, scaled_height(img.w, img.h, w))?;
        let jpeg = encode(&img, q)?;
        if jpeg.len() <= opts.max_bytes {
            return Ok(jpeg);
        }
        last.0 = jpeg.len();
    }
}

fn scaled_height(w: u32, h: u32, new_w: u32) -> u32 {
    ((u64::from(h) * u64::from(new_w) + u64::from(w) / 2) / u64::from(w)).max(1) as u32
}

fn encode(img: &Rgb, quality: u8) -> Result<Vec<u8>, SnapshotError> {
    let mut out = Vec::with_capacity(img.px.len() / 8);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode(&img.px, img.w, img.h, image::ExtendedColorType::Rgb8)
        .map_err(|source| SnapshotError::Encode {
            width: img.w,
            height: img.h,
            source,
        })?;
    Ok(out)
}

/// The same mapping the preprocessor uses (its helper is private there).
fn yuv_parts(c: Colorimetry) -> (YuvStandardMatrix, YuvRange) {
    match c {
        Colorimetry::Bt601Limited => (YuvStandardMatrix::Bt601, YuvRange::Limited),
        Colorimetry::Bt601Full => (YuvStandardMatrix::Bt601, YuvRange::Full),
        Colorimetry::Bt709Limited => (YuvStandardMatrix::Bt709, YuvRange::Limited),
        Colorimetry::Bt709Full => (YuvStandardMatrix::Bt709, YuvRange::Full),
    }
}

fn to_rgb(frame: &Frame, colorimetry: Colorimetry) -> Result<Rgb, SnapshotError> {
    let seq = frame.seq;
    frame
        .check()
        .map_err(|source| SnapshotError::Layout { seq, source })?;
    let (w, h, stride) = (frame.width, frame.height, frame.stride);
    let colour = |e: yuvutils_rs::YuvError| SnapshotError::Colour {
        seq,
        reason: e.to_string(),
    };
    if frame.format == PixelFormat::Mjpeg {
        let img = image::load_from_memory_with_format(&frame.data, image::ImageFormat::Jpeg)
            .map_err(|e| SnapshotError::Decode {
                seq,
                format: frame.format,
                reason: e.to_string(),
            })?
            .into_rgb8();
        let (w, h) = img.dimensions();
        return Ok(Rgb {
            w,
            h,
            px: img.into_raw(),
        });
    }
    let (matrix, range) = yuv_parts(colorimetry);
    let mut px = vec![0u8; w as usize * h as usize * 3];
    match frame.format {
        PixelFormat::Nv12 => {
            let y_len = stride as usize * h as usize;
            let uv_len = stride as usize * (h as usize).div_ceil(2);
            let image = YuvBiPlanarImage {
                y_plane: &frame.data[..y_len],
                y_stride: stride,
                uv_plane: &frame.data[y_len..y_len + uv_len],
                uv_stride: stride,
                width: w,
                height: h,
            };
            yuvutils_rs::yuv_nv12_to_rgb(
                &image,
                &mut px,
                w * 3,
                range,
                matrix,
                YuvConversionMode::Balanced,
            )
            .map_err(colour)?;
        }
        PixelFormat::Yuyv => {
            let packed = YuvPackedImage {
                yuy: &frame.data,
                yuy_stride: stride,
                width: w,
                height: h,
            };
            yuvutils_rs::yuyv422_to_rgb(&packed, &mut px, w * 3, range, matrix).map_err(colour)?;
        }
        PixelFormat::Rgb24 | PixelFormat::Bgr24 => {
            let row = w as usize * 3;
            for (dst, src) in px
                .chunks_exact_mut(row)
                .zip(frame.data.chunks(stride as usize))
            {
                dst.copy_from_slice(&src[..row]);
                if frame.format == PixelFormat::Bgr24 {
                    for p in dst.chunks_exact_mut(3) {
                        p.swap(0, 2);
                    }
                }
            }
        }
        // Decoded above.
        PixelFormat::Mjpeg => {}
    }
    Ok(Rgb { w, h, px })
}

fn resize(src: &Rgb, w: u32, h: u32) -> Result<Rgb, SnapshotError> {
    let err = |reason: String| SnapshotError::Resize {
        from_w: src.w,
        from_h: src.h,
        to_w: w,
        to_h: h,
        reason,
    };
    let src_img = TypedImageRef::<U8x3>::from_buffer(src.w, src.h, &src.px)
        .map_err(|e| err(e.to_string()))?;
    let mut px = vec![0u8; w as usize * h as usize * 3];
    let mut dst = TypedImage::<U8x3>::from_buffer(w, h, &mut px).map_err(|e| err(e.to_string()))?;
    // Antialiased, as in preprocessing: a plain subsample would alias the
    // thin lines away.
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize_typed(&src_img, &mut dst, &opts)
        .map_err(|e| err(e.to_string()))?;
    Ok(Rgb { w, h, px })
}

/// Replace the box (grown by `margin` on each side, scaled by `sx`, `sy`
/// into the image) with blocks of its average colour.
fn pixelate(img: &mut Rgb, b: &BBox, sx: f32, sy: f32, margin: f32) {
    let (bw, bh) = (b.x2 - b.x1, b.y2 - b.y1);
    if !(bw.is_finite() && bh.is_finite() && bw > 0.0 && bh > 0.0) {
        return;
    }
    let clamp_x = |v: f32| v.clamp(0.0, img.w as f32) as usize;
    let clamp_y = |v: f32| v.clamp(0.0, img.h as f32) as usize;
    let x0 = clamp_x((b.x1 - margin * bw) * sx);
    let x1 = clamp_x((b.x2 + margin * bw) * sx);
    let y0 = clamp_y((b.y1 - margin * bh) * sy);
    let y1 = clamp_y((b.y2 + margin * bh) * sy);
    // An eighth of the person's larger side: a face is about a seventh of
    // a standing person's height, so it becomes one or two flat blocks.
    let block = ((bw * sx).max(bh * sy) / 8.0).round().max(4.0) as usize;
    let row = img.w as usize * 3;
    for by in (y0..y1).step_by(block) {
        let ye = (by + block).min(y1);
        for bx in (x0..x1).step_by(block) {
            let xe = (bx + block).min(x1);
            let mut sum = [0u32; 3];
            for y in by..ye {
                for p in img.px[y * row + bx * 3..y * row + xe * 3].chunks_exact(3) {
                    for c in 0..3 {
                        sum[c] += u32::from(p[c]);
                    }
                }
            }
            let n = ((ye - by) * (xe - bx)) as u32;
            let avg = sum.map(|s| ((s + n / 2) / n) as u8);
            for y in by..ye {
                for p in img.px[y * row + bx * 3..y * row + xe * 3].chunks_exact_mut(3) {
                    p.copy_from_slice(&avg);
                }
            }
        }
    }
}

/// Pen for thick lines on an [`Rgb`] image.
struct Pen {
    colour: [u8; 3],
    /// Square brush side, px.
    width: i32,
}

impl Pen {
    fn dot(&self, img: &mut Rgb, x: i32, y: i32) {
        let r0 = -(self.width / 2);
        for dy in r0..r0 + self.width {
            for dx in r0..r0 + self.width {
                let (px, py) = (x + dx, y + dy);
                if px >= 0 && py >= 0 && (px as u32) < img.w && (py as u32) < img.h {
                    let o = (py as usize * img.w as usize + px as usize) * 3;
                    img.px[o..o + 3].copy_from_slice(&self.colour);
                }
            }
        }
    }

    /// Bresenham from (x0, y0) to (x1, y1), stamping the brush.
    fn line(&self, img: &mut Rgb, (mut x0, mut y0): (i32, i32), (x1, y1): (i32, i32)) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (step_x, step_y) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let mut err = dx + dy;
        loop {
            self.dot(img, x0, y0);
            if x0 == x1 && y0 == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x0 += step_x;
            }
            if e2 <= dx {
                err += dx;
                y0 += step_y;
            }
        }
    }
}

/// Lines with their "in" arrows, then zone outlines.
fn draw_shapes(img: &mut Rgb, a: &AnalyticsConfig) {
    let (fw, fh) = (img.w as f32, img.h as f32);
    let to_px = |p: &Point| ((p.x * fw).round() as i32, (p.y * fh).round() as i32);
    // About 4 px at 1280 wide, never under 3 (JPEG chroma is halved).
    let width = (img.w / 320).max(3) as i32;
    let arrow = (img.w as f32 / 40.0).max(12.0);
    let colours = legend(a);
    for (l, entry) in a.lines.iter().zip(&colours) {
        let pen = Pen {
            colour: entry.rgb,
            width,
        };
        let pts = l.line.points();
        for w in pts.windows(2) {
            let (p, q) = (to_px(&w[0]), to_px(&w[1]));
            pen.line(img, p, q);
            // In pixels (y down), the left of a walk along (dx, dy) is
            // (dy, -dx): the same side `Polyline::distance_and_side` calls
            // left.
            let (dx, dy) = ((q.0 - p.0) as f32, (q.1 - p.1) as f32);
            let len = dx.hypot(dy);
            if len < 1.0 {
                continue;
            }
            let (mut nx, mut ny) = (dy / len, -dx / len);
            if l.in_side == InSide::Right {
                (nx, ny) = (-nx, -ny);
            }
            let (mx, my) = ((p.0 + q.0) as f32 / 2.0, (p.1 + q.1) as f32 / 2.0);
            let tip = (mx + nx * arrow, my + ny * arrow);
            let r = |(x, y): (f32, f32)| (x.round() as i32, y.round() as i32);
            pen.line(img, r((mx, my)), r(tip));
            // Arrowhead: two strokes back from the tip, ±35° off the shaft.
            let (c, s) = (35f32.to_radians().cos(), 35f32.to_radians().sin());
            for sign in [1.0f32, -1.0] {
                let (bx, by) = (-nx, -ny);
                let hx = bx * c - sign * by * s;
                let hy = sign * bx * s + by * c;
                pen.line(
                    img,
                    r(tip),
                    r((tip.0 + hx * arrow / 2.5, tip.1 + hy * arrow / 2.5)),
                );
            }
        }
    }
    let mut mask = Vec::new();
    for (z, entry) in a.zones.iter().zip(colours.iter().skip(a.lines.len())) {
        let pen = Pen {
            colour: entry.rgb,
            width: (width - 1).max(2),
        };
        zone_mask(img.w, img.h, &z.polygon, &mut mask);
        outline(img, &mask, &pen);
    }
}

/// Facings in their state's colour, front zones dotted.
fn draw_shelves(img: &mut Rgb, shelves: &[(Shelf, Vec<Option<Stock>>)]) {
    let (fw, fh) = (img.w as f32, img.h as f32);
    let to_px = |p: &Point| ((p.x * fw).round() as i32, (p.y * fh).round() as i32);
    let width = (img.w / 480).max(2) as i32;
    for (shelf, states) in shelves {
        for (k, f) in shelf.facings.iter().enumerate() {
            let state = states.get(k).copied().flatten();
            let pen = Pen {
                colour: stock_colour(state),
                width,
            };
            let pts: Vec<(i32, i32)> = f.polygon.points().iter().map(to_px).collect();
            for (i, &p) in pts.iter().enumerate() {
                pen.line(img, p, pts[(i + 1) % pts.len()]);
            }
            if state == Some(Stock::Empty) && pts.len() == 4 {
                pen.line(img, pts[0], pts[2]);
                pen.line(img, pts[1], pts[3]);
            }
        }
        let pen = Pen {
            colour: [60, 140, 255],
            width,
        };
        let pts: Vec<(i32, i32)> = shelf.front.points().iter().map(to_px).collect();
        for (i, &p) in pts.iter().enumerate() {
            let q = pts[(i + 1) % pts.len()];
            // Dotted: every other tenth of the edge.
            for j in (0..10).step_by(2) {
                let at = |u: f32| {
                    (
                        p.0 + ((q.0 - p.0) as f32 * u).round() as i32,
                        p.1 + ((q.1 - p.1) as f32 * u).round() as i32,
                    )
                };
                pen.line(img, at(j as f32 / 10.0), at((j + 1) as f32 / 10.0));
            }
        }
    }
}

/// Which pixels of a `w`×`h` image lie in `polygon`.
///
/// `Polygon` offers only `contains` (its points are private), so the zone
/// is traced from inside tests rather than drawn from its vertices: first
/// at the corners of 8-px cells, then per pixel only in cells whose
/// corners disagree (the cells the outline crosses). About 40 000 tests
/// for a zone at 1280×720 instead of 900 000. A sliver of zone thinner
/// than a cell can be missed; zones are far larger.
fn zone_mask(w: u32, h: u32, polygon: &Polygon, mask: &mut Vec<bool>) {
    const CELL: usize = 8;
    let (w, h) = (w as usize, h as usize);
    let at = |x: usize, y: usize| {
        polygon.contains(Point::new(
            (x as f32 + 0.5) / w as f32,
            (y as f32 + 0.5) / h as f32,
        ))
    };
    mask.clear();
    mask.resize(w * h, false);
    for y0 in (0..h).step_by(CELL) {
        let y1 = (y0 + CELL).min(h);
        for x0 in (0..w).step_by(CELL) {
            let x1 = (x0 + CELL).min(w);
            let corners = [
                at(x0, y0),
                at(x1 - 1, y0),
                at(x0, y1 - 1),
                at(x1 - 1, y1 - 1),
            ];
            let uniform = corners.iter().all(|&c| c == corners[0]);
            for y in y0..y1 {
                for x in x0..x1 {
                    mask[y * w + x] = if uniform { corners[0] } else { at(x, y) };
                }
            }
        }
    }
}

/// Stamp `pen` on every inside pixel of `mask` next to an outside one
/// (beyond the image counts as outside, so zones along the frame edge are
/// closed).
fn outline(img: &mut Rgb, mask: &[bool], pen: &Pen) {
    let (w, h) = (img.w as usize, img.h as usize);
    let inside = |x: usize, y: usize| mask[y * w + x];
    for y in 0..h {
        for x in 0..w {
            if !inside(x, y) {
                continue;
            }
            let edge = x == 0
                || y == 0
                || x + 1 == w
                || y + 1 == h
                || !inside(x - 1, y)
                || !inside(x + 1, y)
                || !inside(x, y - 1)
                || !inside(x, y + 1);
            if edge {
                pen.dot(img, x as i32, y as i32);
            }
        }
    }
}

#[cfg(test)]
mod tests;
