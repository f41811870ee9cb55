//! Drawing the frames: a procedural store entrance, the people sprites in
//! depth order, sensor noise; and writing the outputs.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage, RgbaImage};

use crate::SceneError;
use crate::look::{self, Look};
use crate::scenario::{Key, Scenario};
use crate::sprites::{self, Crop};
use crate::truth::{self, Truth};
use crate::view::{self, Occluder};

/// JPEG quality of the frames.
pub const JPEG_QUALITY: u8 = 90;

/// Per-frame random generator, independent of rendering order.
pub(crate) fn frame_rng(seed: u64, frame: usize, stream: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(
        seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (frame as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
            ^ stream.wrapping_mul(0xABC9_8388_FB8F_AC03),
    )
}

/// Fill the normalised rectangle `x0..x1` × `y0..y1` with `c`.
pub(crate) fn rect(img: &mut RgbImage, x0: f64, y0: f64, x1: f64, y1: f64, c: [u8; 3]) {
    let (w, h) = (f64::from(img.width()), f64::from(img.height()));
    let px = |v: f64, m: f64| (v * m).round().clamp(0.0, m) as u32;
    for y in px(y0, h)..px(y1, h) {
        for x in px(x0, w)..px(x1, w) {
            img.put_pixel(x, y, Rgb(c));
        }
    }
}

/// `c` darker (`k` < 1) or brighter.
pub(crate) fn shade(c: [u8; 3], k: f64) -> [u8; 3] {
    c.map(|v| (f64::from(v) * k).round().clamp(0.0, 255.0) as u8)
}

/// A shelf unit: dark frame, boards, product boxes of random colours.
fn shelf(img: &mut RgbImage, rng: &mut fastrand::Rng, x0: f64, y0: f64, x1: f64, y1: f64) {
    rect(img, x0, y0, x1, y1, [70, 62, 55]);
    let boards = 4;
    let bh = (y1 - y0) / f64::from(boards);
    for b in 0..boards {
        let top = y0 + bh * f64::from(b);
        rect(
            img,
            x0 + 0.005,
            top + 0.01,
            x1 - 0.005,
            top + bh - 0.012,
            [120, 112, 100],
        );
        let mut x = x0 + 0.008;
        while x < x1 - 0.02 {
            let w = 0.008 + rng.f64() * 0.018;
            let h = bh * (0.35 + rng.f64() * 0.4);
            let c = [rng.u8(60..230), rng.u8(60..230), rng.u8(60..230)];
            rect(
                img,
                x,
                top + bh - 0.012 - h,
                (x + w).min(x1 - 0.008),
                top + bh - 0.012,
                c,
            );
            x += w + 0.003;
        }
        rect(
            img,
            x0,
            top + bh - 0.012,
            x1,
            top + bh - 0.004,
            [150, 140, 125],
        );
    }
}

/// The empty store entrance: back wall and shelves (inside, top), shop
/// floor, door frame and threshold around y = 0.55, pavement outside
/// (bottom). Nothing person-like.
pub fn background(width: u32, height: u32, seed: u64) -> RgbImage {
    let mut img = RgbImage::new(width, height);
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5EED_BA5E);
    let fh = f64::from(height);
    for y in 0..height {
        let v = (f64::from(y) + 0.5) / fh;
        let c = if v < 0.22 {
            // Back wall.
            shade([196, 188, 170], 0.95 + 0.1 * v / 0.22)
        } else if v < 0.53 {
            // Shop floor: light tiles, brighter toward the door.
            shade([176, 170, 160], 0.85 + 0.2 * (v - 0.22) / 0.31)
        } else if v < 0.57 {
            // Threshold.
            [88, 86, 84]
        } else {
            // Pavement, darker toward the street edge.
            shade([150, 148, 142], 1.0 - 0.25 * (v - 0.57) / 0.43)
        };
        for x in 0..width {
            img.put_pixel(x, y, Rgb(c));
        }
    }
    // Floor tile joints inside, paving joints outside.
    for i in 0..12 {
        let u = f64::from(i) / 12.0;
        rect(&mut img, u, 0.22, u + 0.002, 0.53, [150, 145, 138]);
        rect(&mut img, u + 0.04, 0.57, u + 0.043, 1.0, [120, 118, 114]);
    }
    for v in [0.30, 0.39, 0.47] {
        rect(&mut img, 0.0, v, 1.0, v + 0.003, [150, 145, 138]);
    }
    for v in [0.66, 0.76, 0.88] {
        rect(&mut img, 0.0, v, 1.0, v + 0.004, [120, 118, 114]);
    }
    // Kerb.
    rect(&mut img, 0.0, 0.955, 1.0, 0.965, [175, 172, 165]);
    // Shelves along the side walls and a gondola at the back.
    shelf(&mut img, &mut rng, 0.0, 0.04, 0.11, 0.48);
    shelf(&mut img, &mut rng, 0.89, 0.04, 1.0, 0.48);
    shelf(&mut img, &mut rng, 0.28, 0.03, 0.72, 0.2);
    // Door frame: two posts and a lintel shadow on the threshold.
    rect(&mut img, 0.125, 0.50, 0.15, 0.58, [60, 60, 66]);
    rect(&mut img, 0.85, 0.50, 0.875, 0.58, [60, 60, 66]);
    rect(&mut img, 0.15, 0.525, 0.85, 0.532, [70, 70, 74]);
    // A doormat just inside.
    rect(&mut img, 0.35, 0.47, 0.65, 0.52, [96, 80, 70]);
    texture(&mut img, &mut rng);
    img
}

/// Mild static texture, so that nothing is perfectly flat: fine grain
/// plus soft blotches, from `rng`.
pub(crate) fn texture(img: &mut RgbImage, rng: &mut fastrand::Rng) {
    let (fw, fh) = (f64::from(img.width()), f64::from(img.height()));
    let blotches: Vec<(f64, f64, f64, f64)> = (0..40)
        .map(|_| {
            (
                rng.f64() * fw,
                rng.f64() * fh,
                10.0 + rng.f64() * 40.0,
                rng.f64() * 12.0 - 6.0,
            )
        })
        .collect();
    for (x, y, px) in img.enumerate_pixels_mut() {
        let (xf, yf) = (f64::from(x), f64::from(y));
        let mut d = f64::from(rng.i8(-5..=5));
        for &(bx, by, r, a) in &blotches {
            let q = ((xf - bx).powi(2) + (yf - by).powi(2)) / (r * r);
            if q < 1.0 {
                d += a * (1.0 - q);
            }
        }
        px.0 =
            px.0.map(|v| (f64::from(v) + d).round().clamp(0.0, 255.0) as u8);
    }
}

/// A table of Gaussian noise samples (grey levels) for cheap sensor noise.
pub(crate) fn noise_table(seed: u64, sigma: f64) -> Vec<i16> {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x0015_E5E0);
    (0..1 << 16)
        .map(|_| {
            // Box-Muller.
            let u1 = rng.f64().max(f64::MIN_POSITIVE);
            let u2 = rng.f64();
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            (z * sigma).round() as i16
        })
        .collect()
}

/// Everything needed to draw any frame.
struct Painter<'a> {
    scenario: &'a Scenario,
    crops: &'a [Crop],
    sprites: &'a [RgbImage],
    keys: Vec<Vec<Key>>,
    background: RgbImage,
    noise: Vec<i16>,
}

impl<'a> Painter<'a> {
    fn new(
        scenario: &'a Scenario,
        crops: &'a [Crop],
        sprites: &'a [RgbImage],
    ) -> Result<Self, SceneError> {
        let keys = scenario
            .people
            .iter()
            .map(|p| p.keys())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|problem| SceneError::Invalid {
                path: scenario.path.clone(),
                problem,
            })?;
        Ok(Self {
            scenario,
            crops,
            sprites,
            keys,
            background: view::background(
                scenario.view(),
                scenario.width,
                scenario.height,
                scenario.seed,
            ),
            noise: noise_table(scenario.seed, scenario.noise_sigma),
        })
    }

    fn frame(&self, i: usize) -> RgbImage {
        let s = self.scenario;
        let mut img = self.background.clone();
        let t = truth::frame_time(s, i);
        let mut jitter = frame_rng(s.seed, i, 1);
        let placed = truth::placements(s, self.crops, &self.keys, t);
        if s.look == Look::default() && s.occluders.is_empty() {
            // The first scenes' drawing, kept exactly (their figures stand).
            for p in placed {
                let person = &s.people[p.id];
                let (mut x0, mut y0) = (p.x0, p.y0);
                if person.jitter_px > 0.0 {
                    let j = person.jitter_px;
                    x0 += (jitter.f64() * 2.0 * j - j).round() as i32;
                    y0 += (jitter.f64() * 2.0 * j - j).round() as i32;
                }
                let mut sprite = imageops::resize(
                    &self.sprites[person.sprite],
                    p.w as u32,
                    p.h as u32,
                    FilterType::Triangle,
                );
                if person.flip {
                    imageops::flip_horizontal_in_place(&mut sprite);
                }
                paste(&mut img, &sprite, x0, y0);
            }
        } else {
            self.people_with_look(&mut img, &placed, t, &mut jitter);
        }
        look::light(&mut img, s.look.gain(t));
        if s.look.shake_px > 0.0 {
            let mut r = frame_rng(s.seed, i, 3);
            let k = s.look.shake_px;
            let mut d = || (r.f64() * 2.0 * k - k).round() as i32;
            let (dx, dy) = (d(), d());
            img = look::shift(&img, dx, dy);
        }
        if s.noise_sigma > 0.0 {
            add_noise(&mut img, &self.noise, &mut frame_rng(s.seed, i, 2));
        }
        img
    }

    /// People as the scene's `[look]` has them, with their shadows and
    /// reflections on the floor under everyone, and the occluders in depth
    /// order.
    fn people_with_look(
        &self,
        img: &mut RgbImage,
        placed: &[truth::Placement],
        t: f64,
        jitter: &mut fastrand::Rng,
    ) {
        let s = self.scenario;
        let look = &s.look;
        let (fw, fh) = (f64::from(s.width), f64::from(s.height));
        let drawn: Vec<(RgbaImage, i32, i32, &truth::Placement)> = placed
            .iter()
            .map(|p| {
                let person = &s.people[p.id];
                let keys = &self.keys[p.id];
                let (vx, vy) = look::velocity(keys, t, (s.width, s.height));
                let moving = vx.hypot(vy) > 2.0;
                let mut w = f64::from(p.w);
                let mut flip = person.flip;
                if look.turn {
                    // Narrower in profile (walking across the view).
                    let across = if moving { vx.abs() / vx.hypot(vy) } else { 0.0 };
                    w *= 1.0 - 0.25 * across;
                    flip ^= look::facing(keys, t) < 0.0;
                }
                let mut sprite = imageops::resize(
                    &self.sprites[person.sprite],
                    (w.round() as u32).max(1),
                    p.h as u32,
                    FilterType::Triangle,
                );
                if flip {
                    imageops::flip_horizontal_in_place(&mut sprite);
                }
                let mut rgba = look::with_alpha(&sprite);
                if look.gait > 0.0 && moving {
                    // About one stride per 0.4 body heights walked.
                    let body = f64::from(p.h) / fh;
                    let phase = std::f64::consts::PI * look::walked(keys, t) / (0.4 * body);
                    let spread = look.gait * w * phase.sin().abs();
                    rgba = look::stride(&rgba, spread);
                }
                let foot_x = (p.foot.x * fw).round() as i32;
                let mut x0 = foot_x - rgba.width() as i32 / 2;
                let mut y0 = p.y0;
                if look.motion_blur > 0.0 && moving {
                    let k = look.motion_blur / f64::from(s.fps);
                    let (dx, dy) = (vx * k, vy * k);
                    rgba = look::blur(&rgba, dx, dy);
                    x0 -= (dx + if dx < 0.0 { dx.abs().ceil() } else { 0.0 }).round() as i32;
                    y0 -= (dy + if dy < 0.0 { dy.abs().ceil() } else { 0.0 }).round() as i32;
                }
                if person.jitter_px > 0.0 {
                    let j = person.jitter_px;
                    x0 += (jitter.f64() * 2.0 * j - j).round() as i32;
                    y0 += (jitter.f64() * 2.0 * j - j).round() as i32;
                }
                (rgba, x0, y0, p)
            })
            .collect();
        for (rgba, _, _, p) in &drawn {
            let foot = (p.foot.x * fw, p.foot.y * fh);
            if look.shadow > 0.0 {
                look::shadow(img, foot, f64::from(p.w), f64::from(p.h), look.shadow);
            }
            if look.reflection > 0.0 {
                let r = look::reflection(rgba);
                let x0 = foot.0.round() as i32 - r.width() as i32 / 2;
                look::paste_alpha(img, &r, x0, foot.1.round() as i32, look.reflection);
            }
        }
        let mut occluders: Vec<&Occluder> = s.occluders.iter().collect();
        occluders.sort_by(|a, b| a.depth.total_cmp(&b.depth));
        let mut next = occluders.iter().peekable();
        for (rgba, x0, y0, p) in &drawn {
            while let Some(o) = next.next_if(|o| o.depth <= p.foot.y) {
                o.draw(img);
            }
            look::paste_alpha(img, rgba, *x0, *y0, 1.0);
        }
        for o in next {
            o.draw(img);
        }
    }
}

/// Write `frames` frames made by `frame` into `out_dir/frames/` as JPEG, on
/// up to 8 threads, after removing the frames of an earlier render (a
/// longer one's would be read as part of this one).
pub(crate) fn write_frames(
    out_dir: &Path,
    frames: usize,
    quality: u8,
    frame: impl Fn(usize) -> RgbImage + Sync,
) -> Result<(), SceneError> {
    let frames_dir = out_dir.join("frames");
    std::fs::create_dir_all(&frames_dir).map_err(write_err(&frames_dir))?;
    let stale = std::fs::read_dir(&frames_dir).map_err(write_err(&frames_dir))?;
    for entry in stale {
        let path = entry.map_err(write_err(&frames_dir))?.path();
        if path.extension().is_some_and(|e| e == "jpg") {
            std::fs::remove_file(&path).map_err(write_err(&path))?;
        }
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(8);
    let frame = &frame;
    let frames_dir = &frames_dir;
    let results: Vec<Result<(), SceneError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                scope.spawn(move || -> Result<(), SceneError> {
                    for i in (k..frames).step_by(threads) {
                        write_jpeg(&frame(i), &frame_path(frames_dir, i), quality)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    results.into_iter().collect()
}

/// Sensor noise: each row offset into the shared noise table, per frame.
pub(crate) fn add_noise(img: &mut RgbImage, table: &[i16], rng: &mut fastrand::Rng) {
    let n = table.len();
    let row_len = img.width() as usize * 3;
    for row in img.chunks_mut(row_len) {
        let off = rng.usize(0..n);
        for (k, v) in row.iter_mut().enumerate() {
            let d = table[(off + k) % n];
            *v = (i16::from(*v) + d).clamp(0, 255) as u8;
        }
    }
}

/// Paste with a 2-pixel feathered border so the crop's edge is less stark.
pub(crate) fn paste(dst: &mut RgbImage, src: &RgbImage, x0: i32, y0: i32) {
    look::paste_alpha(dst, &look::with_alpha(src), x0, y0, 1.0);
}

pub(crate) fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> SceneError + '_ {
    move |source| SceneError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Render the frames, `analytics.toml` and `truth.json` into `out_dir`.
pub fn render(s: &Scenario, images_dir: &Path, out_dir: &Path) -> Result<Truth, SceneError> {
    let (crops, sprite_images) = sprites::load(images_dir)?;
    let truth = truth::compute(s, &crops).map_err(|problem| SceneError::Invalid {
        path: s.path.clone(),
        problem,
    })?;
    let painter = Painter::new(s, &crops, &sprite_images)?;
    let quality = s.look.jpeg_quality.unwrap_or(JPEG_QUALITY);
    write_frames(out_dir, s.frames(), quality, |i| painter.frame(i))?;

    let analytics_path = out_dir.join("analytics.toml");
    let text = toml::to_string(&s.analytics).map_err(|e| SceneError::Invalid {
        path: s.path.clone(),
        problem: format!("analytics: cannot be written back as TOML: {e}"),
    })?;
    std::fs::write(&analytics_path, text).map_err(write_err(&analytics_path))?;
    let truth_path = out_dir.join("truth.json");
    let json = serde_json::to_string_pretty(&truth).map_err(|source| SceneError::Json {
        path: truth_path.clone(),
        source,
    })?;
    std::fs::write(&truth_path, json + "\n").map_err(write_err(&truth_path))?;
    Ok(truth)
}

/// One frame as [`render`] draws it, with the true boxes outlined in green
/// and the scenario's lines in red: for looking at a scene while writing it.
pub fn preview(s: &Scenario, images_dir: &Path, frame: usize) -> Result<RgbImage, SceneError> {
    let (crops, sprite_images) = sprites::load(images_dir)?;
    let invalid = |problem| SceneError::Invalid {
        path: s.path.clone(),
        problem,
    };
    let truth = truth::compute(s, &crops).map_err(invalid)?;
    let painter = Painter::new(s, &crops, &sprite_images)?;
    let mut img = painter.frame(frame);
    let (fw, fh) = (f64::from(s.width), f64::from(s.height));
    let dot = |img: &mut RgbImage, x: f64, y: f64, c: [u8; 3]| {
        if (0.0..fw).contains(&x) && (0.0..fh).contains(&y) {
            img.put_pixel(x as u32, y as u32, Rgb(c));
        }
    };
    if let Ok(a) = s.analytics() {
        for line in &a.lines {
            for w in line.points.windows(2) {
                for k in 0..=400 {
                    let u = f64::from(k) / 400.0;
                    let x = (w[0][0] + u * (w[1][0] - w[0][0])) * fw;
                    let y = (w[0][1] + u * (w[1][1] - w[0][1])) * fh;
                    dot(&mut img, x, y, [255, 0, 0]);
                }
            }
        }
    }
    for p in truth.frames_people.get(frame).into_iter().flatten() {
        let [x0, y0, x1, y1] = p.bbox;
        for x in x0 as i32..x1 as i32 {
            dot(&mut img, f64::from(x), y0, [0, 255, 0]);
            dot(&mut img, f64::from(x), y1 - 1.0, [0, 255, 0]);
        }
        for y in y0 as i32..y1 as i32 {
            dot(&mut img, x0, f64::from(y), [0, 255, 0]);
            dot(&mut img, x1 - 1.0, f64::from(y), [0, 255, 0]);
        }
    }
    Ok(img)
}

/// `frames/000042.jpg`.
pub fn frame_path(frames_dir: &Path, i: usize) -> PathBuf {
    frames_dir.join(format!("{i:06}.jpg"))
}

pub(crate) fn write_jpeg(img: &RgbImage, path: &Path, quality: u8) -> Result<(), SceneError> {
    let file = std::fs::File::create(path).map_err(write_err(path))?;
    let mut w = BufWriter::new(file);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, quality)
        .encode_image(img)
        .map_err(|source| SceneError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
    std::io::Write::flush(&mut w).map_err(write_err(path))
}
