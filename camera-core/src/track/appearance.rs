//! A cheap appearance cue: the colour histogram of a person's torso.
//!
//! Box overlap alone cannot tell two people apart when they cross or one
//! walks behind the other: the tracker then swaps or merges identities,
//! and every count, visit and dwell that follows is wrong. Deep re-id
//! embeddings fix that at the cost of a second network per person; a
//! coarse YCbCr histogram of the middle of the box (clothes, little
//! background) separates most people at a few microseconds each, which
//! fits the camera's budget.

use crate::detection::BBox;
use crate::frame::{Frame, PixelFormat};

/// 4 × 4 × 4 bins over Y, Cb, Cr.
pub const BINS: usize = 64;

/// A normalised histogram (sums to 1).
pub type Appearance = [f32; BINS];

/// The histogram of the torso region of `bbox` (pixels) in `frame`: the
/// inner 60 % of the width and 10..70 % of the height, sampled on every
/// second pixel of every second row. `None` for compressed frames or a
/// region outside the frame.
pub fn describe(frame: &Frame, bbox: &BBox) -> Option<Appearance> {
    let (w, h) = (bbox.x2 - bbox.x1, bbox.y2 - bbox.y1);
    let clamp_x = |v: f32| (v.max(0.0) as u32).min(frame.width);
    let clamp_y = |v: f32| (v.max(0.0) as u32).min(frame.height);
    let (x0, x1) = (clamp_x(bbox.x1 + 0.2 * w), clamp_x(bbox.x2 - 0.2 * w));
    let (y0, y1) = (clamp_y(bbox.y1 + 0.1 * h), clamp_y(bbox.y1 + 0.7 * h));
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    let mut counts = [0u32; BINS];
    let stride = frame.stride as usize;
    let data = &frame.data;
    for y in (y0..y1).step_by(2) {
        for x in (x0..x1).step_by(2) {
            let (x, y) = (x as usize, y as usize);
            let ycc = match frame.format {
                PixelFormat::Rgb24 | PixelFormat::Bgr24 => {
                    let i = y * stride + 3 * x;
                    let px = data.get(i..i + 3)?;
                    let (r, b) = if frame.format == PixelFormat::Rgb24 {
                        (px[0], px[2])
                    } else {
                        (px[2], px[0])
                    };
                    ycbcr(r, px[1], b)
                }
                PixelFormat::Yuyv => {
                    let i = y * stride + 2 * (x & !1);
                    let px = data.get(i..i + 4)?;
                    (px[if x & 1 == 0 { 0 } else { 2 }], px[1], px[3])
                }
                PixelFormat::Nv12 => {
                    let luma = *data.get(y * stride + x)?;
                    let uv = stride * frame.height as usize + (y / 2) * stride + (x & !1);
                    let px = data.get(uv..uv + 2)?;
                    (luma, px[0], px[1])
                }
                PixelFormat::Mjpeg => return None,
            };
            let bin = usize::from(ycc.0 >> 6) * 16
                + usize::from(ycc.1 >> 6) * 4
                + usize::from(ycc.2 >> 6);
            counts[bin] += 1;
        }
    }
    let total: u32 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let mut out = [0.0; BINS];
    for (o, c) in out.iter_mut().zip(counts) {
        *o = c as f32 / total as f32;
    }
    Some(out)
}

/// BT.601 full-range RGB → YCbCr, integer arithmetic.
fn ycbcr(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (r, g, b) = (i32::from(r), i32::from(g), i32::from(b));
    let y = (77 * r + 150 * g + 29 * b) >> 8;
    let cb = ((-43 * r - 85 * g + 128 * b) >> 8) + 128;
    let cr = ((128 * r - 107 * g - 21 * b) >> 8) + 128;
    let c = |v: i32| v.clamp(0, 255) as u8;
    (c(y), c(cb), c(cr))
}

/// Bhattacharyya coefficient: 1 for identical histograms, 0 for disjoint.
pub fn similarity(a: &Appearance, b: &Appearance) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x * y).sqrt()).sum()
}

/// Blend a new observation into a track's appearance (exponential moving
/// average, as DeepSORT and BoT-SORT keep their embeddings).
pub fn blend(track: &mut Appearance, seen: &Appearance, keep: f32) {
    for (t, s) in track.iter_mut().zip(seen) {
        *t = keep * *t + (1.0 - keep) * s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Timestamp;

    fn rgb_frame(w: u32, h: u32, paint: impl Fn(u32, u32) -> [u8; 3]) -> Frame {
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&paint(x, y));
            }
        }
        Frame {
            seq: 0,
            timestamp: Timestamp(0),
            width: w,
            height: h,
            stride: w * 3,
            format: PixelFormat::Rgb24,
            data,
        }
    }

    #[test]
    fn the_same_clothes_match_and_different_ones_do_not() {
        // A red shirt on the left, a blue one on the right.
        let f = rgb_frame(200, 100, |x, _| {
            if x < 100 {
                [200, 30, 30]
            } else {
                [30, 40, 190]
            }
        });
        let left = BBox {
            x1: 10.0,
            y1: 0.0,
            x2: 90.0,
            y2: 100.0,
        };
        let left2 = BBox {
            x1: 20.0,
            y1: 5.0,
            x2: 95.0,
            y2: 100.0,
        };
        let right = BBox {
            x1: 110.0,
            y1: 0.0,
            x2: 190.0,
            y2: 100.0,
        };
        let (a, b, c) = (
            describe(&f, &left).expect("left"),
            describe(&f, &left2).expect("left again"),
            describe(&f, &right).expect("right"),
        );
        assert!((a.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        assert!(similarity(&a, &b) > 0.99);
        assert!(similarity(&a, &c) < 0.1);
        // A box outside the frame has no appearance.
        let outside = BBox {
            x1: 300.0,
            y1: 0.0,
            x2: 400.0,
            y2: 50.0,
        };
        assert!(describe(&f, &outside).is_none());
    }

    #[test]
    fn nv12_and_rgb_of_the_same_colour_agree() {
        // Mid grey: Y = 128, Cb = Cr = 128 in both.
        let rgb = rgb_frame(16, 16, |_, _| [128, 128, 128]);
        let mut data = vec![128u8; 16 * 16];
        data.extend(std::iter::repeat_n(128u8, 16 * 8));
        let nv12 = Frame {
            format: PixelFormat::Nv12,
            stride: 16,
            data,
            ..rgb.clone()
        };
        let b = BBox {
            x1: 0.0,
            y1: 0.0,
            x2: 16.0,
            y2: 16.0,
        };
        let (a, c) = (
            describe(&rgb, &b).expect("rgb"),
            describe(&nv12, &b).expect("nv12"),
        );
        assert!(similarity(&a, &c) > 0.99);
        // YUYV: Y0 U Y1 V.
        let yuyv = Frame {
            format: PixelFormat::Yuyv,
            stride: 32,
            data: vec![128u8; 32 * 16],
            ..rgb.clone()
        };
        assert!(similarity(&a, &describe(&yuyv, &b).expect("yuyv")) > 0.99);
        // A compressed frame has no pixels to look at.
        let mjpeg = Frame {
            format: PixelFormat::Mjpeg,
            ..rgb
        };
        assert!(describe(&mjpeg, &b).is_none());
    }
}
