//! What makes a scene look less like sprites on a picture: people whose
//! outline changes as they walk and turn, motion blur, cast shadows and
//! floor reflections, light that changes, a camera that shakes, stronger
//! JPEG compression. All off unless a scenario's `[look]` asks for them,
//! so older scenes render exactly as before. None of it changes the truth:
//! the foot point stays where the path puts it.

use image::{Rgb, RgbImage, Rgba, RgbaImage};
use serde::Deserialize;

use crate::geom::Point;
use crate::scenario::{Key, position};

/// A scenario's `[look]` table.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Look {
    /// Legs swing apart and together as people walk: the widest stride
    /// moves each leg sideways by this fraction of the sprite's width.
    #[serde(default)]
    pub gait: f64,
    /// People face the way they walk (the sprite mirrors when they turn)
    /// and look narrower in profile than from the front.
    #[serde(default)]
    pub turn: bool,
    /// Exposure as a fraction of the frame interval: moving people smear
    /// over this share of the way they move between frames.
    #[serde(default)]
    pub motion_blur: f64,
    /// Darkness (0..1) of the shadow each person casts on the floor.
    #[serde(default)]
    pub shadow: f64,
    /// Opacity (0..1) of each person's mirror image on a shiny floor.
    #[serde(default)]
    pub reflection: f64,
    /// The whole view moves by up to this many pixels each frame.
    #[serde(default)]
    pub shake_px: f64,
    /// JPEG quality of the frames (default 90).
    #[serde(default)]
    pub jpeg_quality: Option<u8>,
    /// Brightness over time: `[t, gain]` keys, linear in between, the first
    /// and last held (lights dimming, a cloud, a door opening on the sun).
    #[serde(default)]
    pub light: Vec<[f64; 2]>,
}

impl Look {
    /// Every problem, named.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (field, v, max) in [
            ("look.gait", self.gait, 0.5),
            ("look.motion_blur", self.motion_blur, 1.0),
            ("look.shadow", self.shadow, 1.0),
            ("look.reflection", self.reflection, 1.0),
            ("look.shake_px", self.shake_px, 20.0),
        ] {
            if !(v.is_finite() && (0.0..=max).contains(&v)) {
                p.push(format!("{field}: {v} is not within 0..{max}"));
            }
        }
        if let Some(q) = self.jpeg_quality
            && !(10..=100).contains(&q)
        {
            p.push(format!("look.jpeg_quality: {q} is not within 10..100"));
        }
        for (i, &[t, g]) in self.light.iter().enumerate() {
            if !(t.is_finite() && g.is_finite() && (0.1..=3.0).contains(&g)) {
                p.push(format!("look.light[{i}]: gain {g} is not within 0.1..3"));
            }
            if i > 0 && t <= self.light[i - 1][0] {
                p.push(format!(
                    "look.light[{i}]: t {t} is not after the previous key"
                ));
            }
        }
        p
    }

    /// The brightness gain at `t`.
    pub fn gain(&self, t: f64) -> f64 {
        let keys = &self.light;
        let (Some(first), Some(last)) = (keys.first(), keys.last()) else {
            return 1.0;
        };
        if t <= first[0] {
            return first[1];
        }
        if t >= last[0] {
            return last[1];
        }
        keys.windows(2).find(|w| t <= w[1][0]).map_or(last[1], |w| {
            let u = (t - w[0][0]) / (w[1][0] - w[0][0]);
            w[0][1] + u * (w[1][1] - w[0][1])
        })
    }
}

/// How a person moves at `t`: image-space velocity (pixels per second).
pub fn velocity(keys: &[Key], t: f64, size: (u32, u32)) -> (f64, f64) {
    let dt = 0.05;
    let (a, b) = match (position(keys, t - dt), position(keys, t + dt)) {
        (Some(a), Some(b)) => (a, b),
        (None, Some(b)) => (position(keys, t).unwrap_or(b), b),
        (Some(a), None) => (a, position(keys, t).unwrap_or(a)),
        (None, None) => return (0.0, 0.0),
    };
    let span = if position(keys, t - dt).is_some() && position(keys, t + dt).is_some() {
        2.0 * dt
    } else {
        dt
    };
    (
        (b.x - a.x) * f64::from(size.0) / span,
        (b.y - a.y) * f64::from(size.1) / span,
    )
}

/// The way a person last walked sideways (-1 left, +1 right, 0 never), so
/// that someone who stops keeps facing where they were going.
pub fn facing(keys: &[Key], t: f64) -> f64 {
    let mut dir = 0.0;
    for w in keys.windows(2) {
        if w[0].t > t {
            break;
        }
        let dx = w[1].p.x - w[0].p.x;
        if dx.abs() > 1e-6 {
            dir = dx.signum();
        }
    }
    if dir == 0.0 {
        // Not moved sideways yet: face the first sideways move.
        dir = keys
            .windows(2)
            .map(|w| w[1].p.x - w[0].p.x)
            .find(|dx| dx.abs() > 1e-6)
            .map_or(0.0, f64::signum);
    }
    dir
}

/// Distance walked (normalised units) by `t`, for the gait's phase.
pub fn walked(keys: &[Key], t: f64) -> f64 {
    let mut d = 0.0;
    for w in keys.windows(2) {
        if w[0].t >= t {
            break;
        }
        let to = if t >= w[1].t {
            w[1].p
        } else {
            position(keys, t).unwrap_or(w[1].p)
        };
        d += dist(w[0].p, to);
    }
    d
}

fn dist(a: Point, b: Point) -> f64 {
    let d = b.minus(a);
    d.dot(d).sqrt()
}

/// A sprite with an alpha channel, opaque, from an RGB one.
pub fn with_alpha(src: &RgbImage) -> RgbaImage {
    RgbaImage::from_fn(src.width(), src.height(), |x, y| {
        let [r, g, b] = src.get_pixel(x, y).0;
        Rgba([r, g, b, 255])
    })
}

/// Legs apart by `spread` (pixels each way at the feet, growing from the
/// hips at 55 % of the height): the sprite gets wider by `2 * spread`, and
/// the pixels outside the moved legs are transparent. The bottom centre
/// stays in the middle.
pub fn stride(src: &RgbaImage, spread: f64) -> RgbaImage {
    let extra = spread.abs().ceil() as u32;
    if extra == 0 {
        return src.clone();
    }
    let (w, h) = (src.width(), src.height());
    let hip = (f64::from(h) * 0.55).floor();
    let cx = f64::from(w) / 2.0;
    RgbaImage::from_fn(w + 2 * extra, h, |x, y| {
        let yf = f64::from(y);
        let off = if yf >= hip {
            spread.abs() * (yf - hip) / (f64::from(h) - hip).max(1.0)
        } else {
            0.0
        };
        let xd = f64::from(x) - f64::from(extra) + 0.5;
        // Left of centre the leg moved left: read from further right.
        let xs = if xd < cx { xd + off } else { xd - off };
        if xs < 0.0 || xs >= f64::from(w) || (yf >= hip && (xs < cx) != (xd < cx)) {
            Rgba([0, 0, 0, 0])
        } else {
            *src.get_pixel(xs as u32, y)
        }
    })
}

/// Smear along `(dx, dy)` pixels (the way moved during the exposure); the
/// sprite grows by the smear, centred, alpha included.
pub fn blur(src: &RgbaImage, dx: f64, dy: f64) -> RgbaImage {
    let len = dx.hypot(dy);
    if len < 1.0 {
        return src.clone();
    }
    let steps = len.ceil() as usize + 1;
    let (mx, my) = (dx.abs().ceil() as u32, dy.abs().ceil() as u32);
    let (w, h) = (src.width(), src.height());
    let (ow, oh) = (w + mx, h + my);
    let mut acc = vec![[0f64; 4]; (ow * oh) as usize];
    for k in 0..steps {
        let u = k as f64 / (steps - 1) as f64;
        let ox = (u * dx + if dx < 0.0 { f64::from(mx) } else { 0.0 }).round() as i64;
        let oy = (u * dy + if dy < 0.0 { f64::from(my) } else { 0.0 }).round() as i64;
        for (x, y, p) in src.enumerate_pixels() {
            let (tx, ty) = (i64::from(x) + ox, i64::from(y) + oy);
            if tx < 0 || ty < 0 || tx >= i64::from(ow) || ty >= i64::from(oh) {
                continue;
            }
            let a = f64::from(p.0[3]) / 255.0;
            let cell = &mut acc[(ty as u32 * ow + tx as u32) as usize];
            for (acc, &v) in cell.iter_mut().zip(&p.0[..3]) {
                *acc += f64::from(v) * a;
            }
            cell[3] += a;
        }
    }
    let n = steps as f64;
    RgbaImage::from_fn(ow, oh, |x, y| {
        let cell = acc[(y * ow + x) as usize];
        if cell[3] <= 0.0 {
            return Rgba([0, 0, 0, 0]);
        }
        let px = |c: usize| (cell[c] / cell[3]).round().clamp(0.0, 255.0) as u8;
        Rgba([px(0), px(1), px(2), (cell[3] / n * 255.0).round() as u8])
    })
}

/// Paste with alpha and a 2-pixel feathered border; `opacity` scales it.
pub fn paste_alpha(dst: &mut RgbImage, src: &RgbaImage, x0: i32, y0: i32, opacity: f64) {
    let (sw, sh) = (src.width() as i32, src.height() as i32);
    let (dw, dh) = (dst.width() as i32, dst.height() as i32);
    for sy in 0..sh {
        let y = y0 + sy;
        if y < 0 || y >= dh {
            continue;
        }
        for sx in 0..sw {
            let x = x0 + sx;
            if x < 0 || x >= dw {
                continue;
            }
            let s = src.get_pixel(sx as u32, sy as u32).0;
            let edge = sx.min(sy).min(sw - 1 - sx).min(sh - 1 - sy);
            let feather = ((f64::from(edge) + 1.0) / 3.0).min(1.0);
            let a = f64::from(s[3]) / 255.0 * feather * opacity;
            if a <= 0.0 {
                continue;
            }
            let d = dst.get_pixel_mut(x as u32, y as u32);
            for (dc, sc) in d.0.iter_mut().zip(s) {
                *dc = (f64::from(sc) * a + f64::from(*dc) * (1.0 - a)).round() as u8;
            }
        }
    }
}

/// A cast shadow: the floor darkened by up to `darkness` over a
/// parallelogram from the feet (`foot`, pixels; `w` wide) away from a
/// light at the upper left, fading with distance.
pub fn shadow(img: &mut RgbImage, foot: (f64, f64), w: f64, h: f64, darkness: f64) {
    // Along the floor: to the right and a little up (away from the camera).
    let (sx, sy) = (0.55 * h, -0.18 * h);
    let (fx, fy) = foot;
    let x_lo = (fx - w / 2.0).min(fx - w / 2.0 + sx).floor() as i64;
    let x_hi = (fx + w / 2.0).max(fx + w / 2.0 + sx).ceil() as i64;
    let y_lo = (fy + sy).min(fy).floor() as i64 - 2;
    let y_hi = fy.ceil() as i64 + 2;
    let (iw, ih) = (i64::from(img.width()), i64::from(img.height()));
    for y in y_lo.max(0)..y_hi.min(ih) {
        for x in x_lo.max(0)..x_hi.min(iw) {
            // (x, y) = foot + a * (1, 0) * w/2 + v * (sx, sy), v in 0..1.
            let v = (y as f64 + 0.5 - fy) / sy;
            if !(0.0..=1.0).contains(&v) {
                continue;
            }
            let a = (x as f64 + 0.5 - fx - v * sx) / (w / 2.0);
            if a.abs() > 1.0 {
                continue;
            }
            // Narrower (the person's outline) and fainter further out.
            let width = 0.55 + 0.45 * (1.0 - v);
            if a.abs() > width {
                continue;
            }
            let k = 1.0 - darkness * (1.0 - 0.7 * v) * (1.0 - (a / width).powi(4));
            let p = img.get_pixel_mut(x as u32, y as u32);
            p.0 =
                p.0.map(|c| (f64::from(c) * k).round().clamp(0.0, 255.0) as u8);
        }
    }
}

/// The sprite mirrored upside down, half its height, fading away from the
/// feet: what a polished floor shows below a person.
pub fn reflection(src: &RgbaImage) -> RgbaImage {
    let (w, h) = (src.width(), src.height());
    let rh = (h / 2).max(1);
    RgbaImage::from_fn(w, rh, |x, y| {
        let sy = (h - 1).saturating_sub(y * 2);
        let mut p = *src.get_pixel(x, sy);
        let fade = 1.0 - f64::from(y) / f64::from(rh);
        p.0[3] = (f64::from(p.0[3]) * fade).round() as u8;
        p
    })
}

/// Multiply every pixel by `gain`.
pub fn light(img: &mut RgbImage, gain: f64) {
    if (gain - 1.0).abs() < 1e-9 {
        return;
    }
    for p in img.pixels_mut() {
        p.0 =
            p.0.map(|c| (f64::from(c) * gain).round().clamp(0.0, 255.0) as u8);
    }
}

/// The whole view moved by `(dx, dy)` pixels, the edge repeated.
pub fn shift(img: &RgbImage, dx: i32, dy: i32) -> RgbImage {
    if dx == 0 && dy == 0 {
        return img.clone();
    }
    let (w, h) = (img.width() as i32, img.height() as i32);
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let sx = (x as i32 - dx).clamp(0, w - 1) as u32;
        let sy = (y as i32 - dy).clamp(0, h - 1) as u32;
        Rgb(img.get_pixel(sx, sy).0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::scenario::keys_of as keys;

    #[test]
    fn light_keys_are_interpolated_and_held() {
        let look = Look {
            light: vec![[1.0, 1.0], [3.0, 0.5]],
            ..Look::default()
        };
        assert!(look.problems().is_empty());
        assert_eq!(look.gain(0.0), 1.0);
        assert!((look.gain(2.0) - 0.75).abs() < 1e-12);
        assert_eq!(look.gain(9.0), 0.5);
        let bad = Look {
            light: vec![[1.0, 1.0], [1.0, 5.0]],
            gait: 2.0,
            ..Look::default()
        };
        let p = bad.problems();
        assert_eq!(p.len(), 3, "{p:?}");
    }

    #[test]
    fn facing_follows_the_last_sideways_move() {
        let k = keys(&[
            (0.2, 0.5, 0.0),
            (0.8, 0.5, 2.0),
            (0.8, 0.5, 3.0),
            (0.1, 0.6, 5.0),
        ]);
        assert_eq!(facing(&k, 1.0), 1.0);
        assert_eq!(facing(&k, 2.5), 1.0);
        assert_eq!(facing(&k, 4.0), -1.0);
        let up = keys(&[(0.5, 1.0, 0.0), (0.5, 0.2, 2.0)]);
        assert_eq!(facing(&up, 1.0), 0.0);
        assert!((walked(&k, 2.5) - 0.6).abs() < 1e-9);
        assert!((walked(&k, 1.0) - 0.3).abs() < 1e-9);
        let (vx, vy) = velocity(&k, 1.0, (640, 360));
        assert!(
            (vx - 0.3 * 640.0).abs() < 1e-6 && vy.abs() < 1e-9,
            "{vx} {vy}"
        );
    }

    #[test]
    fn a_stride_widens_the_legs_and_keeps_the_feet_centred() {
        let src = RgbaImage::from_pixel(20, 40, Rgba([200, 100, 50, 255]));
        let s = stride(&src, 4.0);
        assert_eq!((s.width(), s.height()), (28, 40));
        // Shoulders: as wide as before; feet: 4 px further out each side.
        let opaque = |y: u32| {
            (0..s.width())
                .filter(|&x| s.get_pixel(x, y).0[3] > 0)
                .count()
        };
        assert_eq!(opaque(5), 20);
        assert_eq!(opaque(39), 20);
        assert_eq!(s.get_pixel(1, 39).0[3], 255);
        assert_eq!(s.get_pixel(1, 5).0[3], 0);
    }

    #[test]
    fn blur_smears_along_the_motion_and_fades_the_edges() {
        let mut src = RgbaImage::from_pixel(10, 10, Rgba([0, 0, 0, 0]));
        for y in 0..10 {
            src.put_pixel(5, y, Rgba([255, 255, 255, 255]));
        }
        let b = blur(&src, 4.0, 0.0);
        assert_eq!((b.width(), b.height()), (14, 10));
        let alphas: Vec<u8> = (0..14).map(|x| b.get_pixel(x, 5).0[3]).collect();
        assert_eq!(alphas.iter().filter(|&&a| a > 0).count(), 5, "{alphas:?}");
        assert!(alphas.iter().all(|&a| a < 255), "{alphas:?}");
    }

    #[test]
    fn a_shadow_darkens_the_floor_beside_the_feet_only() {
        let mut img = RgbImage::from_pixel(100, 100, Rgb([200, 200, 200]));
        shadow(&mut img, (30.0, 80.0), 10.0, 40.0, 0.5);
        assert!(img.get_pixel(30, 79).0[0] < 150);
        assert!(img.get_pixel(43, 76).0[0] < 200);
        assert_eq!(img.get_pixel(30, 50).0[0], 200);
        assert_eq!(img.get_pixel(30, 90).0[0], 200);
    }
}
