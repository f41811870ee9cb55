//! How full each facing is, judged against a reference of the stocked
//! shelf: the first [`ShelfState`] implementation (a learned classifier can
//! take its place behind the same trait).
//!
//! Each facing is sampled on a small grid of its bounding box, inside its
//! polygon. Against the reference it scores:
//! - structure: the correlation of the z-normalised luma, blind to a
//!   global gain and offset (lighting ±40 %);
//! - texture: the luma's coefficient of variation relative to the
//!   reference's. An empty facing shows the plain shelf back.
//!
//! A small shift search at shelf level (±`max_shift_px`) absorbs camera
//! shake before the facings are scored.

use super::layout::Shelf;
use crate::analytics::geom::Point;

/// Samples per side of a facing's grid.
const GRID: usize = 16;
/// A median facing correlation this high at zero shift: the camera has not
/// moved, no search.
const STEADY_MATCH: f32 = 0.9;
/// Facings the shift search looks at.
const SEARCH_FACINGS: usize = 4;

/// A packed RGB image.
#[derive(Debug, Clone, Copy)]
pub struct RgbView<'a> {
    pub width: u32,
    pub height: u32,
    pub data: &'a [u8],
}

impl RgbView<'_> {
    /// Luma at (x, y) in pixels, bilinear, clamped to the image.
    fn luma(&self, x: f32, y: f32) -> f32 {
        let (w, h) = (self.width as usize, self.height as usize);
        let fx = x.clamp(0.0, (w - 1) as f32);
        let fy = y.clamp(0.0, (h - 1) as f32);
        let (x0, y0) = (fx as usize, fy as usize);
        let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
        let (ax, ay) = (fx - x0 as f32, fy - y0 as f32);
        let at = |x: usize, y: usize| {
            let i = (y * w + x) * 3;
            let p = &self.data[i..i + 3];
            0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2])
        };
        let top = at(x0, y0) * (1.0 - ax) + at(x1, y0) * ax;
        let bottom = at(x0, y1) * (1.0 - ax) + at(x1, y1) * ax;
        top * (1.0 - ay) + bottom * ay
    }
}

/// Why a shelf could not be judged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShelfError {
    #[error("image is {got_w}×{got_h}, the reference was taken at {want_w}×{want_h}")]
    Size {
        got_w: u32,
        got_h: u32,
        want_w: u32,
        want_h: u32,
    },
    #[error("image buffer holds {got} bytes, {want} needed for its size")]
    Buffer { got: usize, want: usize },
    #[error("no reference for shelf {0}")]
    NoReference(String),
    #[error(
        "the reference of shelf {shelf} belongs to configuration version {reference}, \
         the shelves in force are version {config}: take a new reference"
    )]
    Version {
        shelf: String,
        reference: u64,
        config: u64,
    },
    #[error("reference of shelf {shelf} refused: {reason}; retry when the shelf is clear")]
    Blocked { shelf: String, reason: String },
}

/// Estimates how full each facing of a shelf is.
pub trait ShelfState: std::fmt::Debug + Send {
    /// Fill 0..1 of each facing of `shelf` in `image`, in facing order.
    fn fill(
        &mut self,
        shelf: &Shelf,
        image: RgbView<'_>,
        out: &mut Vec<f32>,
    ) -> Result<(), ShelfError>;

    /// Whether shelf `name` can be judged now (a comparator needs its
    /// reference; a learned classifier is always ready).
    fn ready(&self, _name: &str) -> bool {
        true
    }

    /// The stocked look of a shelf, freshly taken. A judge that needs no
    /// reference ignores it.
    fn set_reference(&mut self, _reference: &ShelfReference) -> Result<(), ShelfError> {
        Ok(())
    }
}

/// One facing's samples: positions (pixels) and reference luma.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct FacingRef {
    points: Vec<(f32, f32)>,
    luma: Vec<f32>,
}

/// The stocked reference of one shelf, for one configuration version.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShelfReference {
    name: String,
    version: u64,
    size: (u32, u32),
    facings: Vec<FacingRef>,
}

/// The reference comparator.
#[derive(Debug, Clone)]
pub struct ReferenceComparator {
    references: Vec<ShelfReference>,
    /// Camera shake searched for, in pixels.
    pub max_shift_px: i32,
    /// The configuration version its references must belong to.
    version: u64,
}

fn check(image: RgbView<'_>) -> Result<(), ShelfError> {
    let want = image.width as usize * image.height as usize * 3;
    if image.data.len() < want || image.width < 2 || image.height < 2 {
        return Err(ShelfError::Buffer {
            got: image.data.len(),
            want,
        });
    }
    Ok(())
}

impl ShelfReference {
    /// Average `frames` (several, to average the sensor noise out) into
    /// the reference of `shelf` as configured in `version`.
    pub fn capture(
        shelf: &Shelf,
        version: u64,
        frames: &[RgbView<'_>],
    ) -> Result<Self, ShelfError> {
        let first = frames
            .first()
            .ok_or_else(|| ShelfError::NoReference(shelf.name.clone()))?;
        let size = (first.width, first.height);
        for f in frames {
            check(*f)?;
            if (f.width, f.height) != size {
                return Err(ShelfError::Size {
                    got_w: f.width,
                    got_h: f.height,
                    want_w: size.0,
                    want_h: size.1,
                });
            }
        }
        let facings = shelf
            .facings
            .iter()
            .map(|f| {
                let points = sample_points(&f.polygon, size);
                let luma = points
                    .iter()
                    .map(|&(x, y)| {
                        frames.iter().map(|fr| fr.luma(x, y)).sum::<f32>() / frames.len() as f32
                    })
                    .collect();
                FacingRef { points, luma }
            })
            .collect();
        Ok(Self {
            name: shelf.name.clone(),
            version,
            size,
            facings,
        })
    }
}

/// Why a reference cannot be taken now: a person's box (normalised
/// `[x1, y1, x2, y2]`) overlaps the shelf or its front zone. Checked on the
/// bounding boxes, so a shopper's arm reaching in counts.
pub fn reference_blocked(shelf: &Shelf, people: &[[f32; 4]]) -> Option<ShelfError> {
    let boxes = [bbox(&shelf.polygon), bbox(&shelf.front)];
    let n = people
        .iter()
        .filter(|p| {
            boxes
                .iter()
                .any(|b| p[0] < b[2] && b[0] < p[2] && p[1] < b[3] && b[1] < p[3])
        })
        .count();
    (n > 0).then(|| ShelfError::Blocked {
        shelf: shelf.name.clone(),
        reason: format!("{n} person(s) overlap the shelf or its front zone"),
    })
}

fn bbox(poly: &crate::analytics::zone::Polygon) -> [f32; 4] {
    poly.points().iter().fold(
        [f32::MAX, f32::MAX, f32::MIN, f32::MIN],
        |[x1, y1, x2, y2], p| [x1.min(p.x), y1.min(p.y), x2.max(p.x), y2.max(p.y)],
    )
}

/// Grid points of a polygon's bounding box that lie inside it, in pixels.
fn sample_points(poly: &crate::analytics::zone::Polygon, (w, h): (u32, u32)) -> Vec<(f32, f32)> {
    let pts = poly.points();
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for p in pts {
        (x0, y0, x1, y1) = (x0.min(p.x), y0.min(p.y), x1.max(p.x), y1.max(p.y));
    }
    let mut out = Vec::with_capacity(GRID * GRID);
    for j in 0..GRID {
        for i in 0..GRID {
            let u = x0 + (x1 - x0) * (i as f32 + 0.5) / GRID as f32;
            let v = y0 + (y1 - y0) * (j as f32 + 0.5) / GRID as f32;
            if poly.contains(Point::new(u, v)) {
                out.push((u * w as f32, v * h as f32));
            }
        }
    }
    out
}

/// Mean and standard deviation.
fn stats(v: &[f32]) -> (f32, f32) {
    let n = v.len().max(1) as f32;
    let mean = v.iter().sum::<f32>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
    (mean, var.sqrt())
}

/// Correlation of two equally long series (0 when either is flat).
fn correlation(a: &[f32], b: &[f32]) -> f32 {
    let ((ma, sa), (mb, sb)) = (stats(a), stats(b));
    if sa < 1e-3 || sb < 1e-3 {
        return 0.0;
    }
    let n = a.len().max(1) as f32;
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f32>()
        / (n * sa * sb)
}

impl ReferenceComparator {
    /// A comparator for the shelves of configuration `version`; a
    /// reference taken for another version is refused (the facings it
    /// describes may have moved).
    pub fn new(references: Vec<ShelfReference>, version: u64) -> Result<Self, ShelfError> {
        if let Some(r) = references.iter().find(|r| r.version != version) {
            return Err(ShelfError::Version {
                shelf: r.name.clone(),
                reference: r.version,
                config: version,
            });
        }
        Ok(Self {
            references,
            max_shift_px: 3,
            version,
        })
    }

    /// Luma of a facing's points shifted by (dx, dy).
    fn sample(image: RgbView<'_>, f: &FacingRef, (dx, dy): (f32, f32), out: &mut Vec<f32>) {
        out.clear();
        out.extend(f.points.iter().map(|&(x, y)| image.luma(x + dx, y + dy)));
    }
}

impl ShelfState for ReferenceComparator {
    fn ready(&self, name: &str) -> bool {
        self.references.iter().any(|r| r.name == name)
    }

    fn set_reference(&mut self, reference: &ShelfReference) -> Result<(), ShelfError> {
        if reference.version != self.version {
            return Err(ShelfError::Version {
                shelf: reference.name.clone(),
                reference: reference.version,
                config: self.version,
            });
        }
        self.references.retain(|r| r.name != reference.name);
        self.references.push(reference.clone());
        Ok(())
    }

    fn fill(
        &mut self,
        shelf: &Shelf,
        image: RgbView<'_>,
        out: &mut Vec<f32>,
    ) -> Result<(), ShelfError> {
        check(image)?;
        let r = self
            .references
            .iter()
            .find(|r| r.name == shelf.name)
            .ok_or_else(|| ShelfError::NoReference(shelf.name.clone()))?;
        if (image.width, image.height) != r.size {
            return Err(ShelfError::Size {
                got_w: image.width,
                got_h: image.height,
                want_w: r.size.0,
                want_h: r.size.1,
            });
        }
        // The shift that best matches the whole shelf: camera shake moves
        // every facing alike, and an emptied facing must not pull it (the
        // median facing decides). A steady camera matches at once; only
        // then is the (2s+1)² search run, on a few facings spread over
        // the shelf.
        let mut cur = Vec::new();
        let mut scores = Vec::with_capacity(r.facings.len());
        let mut score = |shift: (i32, i32), step: usize, cur: &mut Vec<f32>| {
            scores.clear();
            for f in r.facings.iter().step_by(step) {
                Self::sample(image, f, (shift.0 as f32, shift.1 as f32), cur);
                scores.push(correlation(cur, &f.luma));
            }
            scores.sort_by(f32::total_cmp);
            scores.get(scores.len() / 2).copied().unwrap_or(0.0)
        };
        let mut best = (0i32, 0i32);
        if score(best, 1, &mut cur) < STEADY_MATCH {
            let step = r.facings.len().div_ceil(SEARCH_FACINGS).max(1);
            let s = self.max_shift_px;
            let mut top = f32::MIN;
            for dy in -s..=s {
                for dx in -s..=s {
                    let v = score((dx, dy), step, &mut cur);
                    if v > top {
                        (top, best) = (v, (dx, dy));
                    }
                }
            }
        }
        let best = ((best.0 as f32, best.1 as f32), ());
        out.clear();
        for f in &r.facings {
            Self::sample(image, f, best.0, &mut cur);
            let structure = correlation(&cur, &f.luma).max(0.0);
            let ((mc, sc), (mr, sr)) = (stats(&cur), stats(&f.luma));
            // Coefficients of variation: a global gain cancels out.
            let (cv_cur, cv_ref) = (sc / mc.max(1.0), sr / mr.max(1.0));
            let texture = if cv_ref < 1e-3 {
                1.0
            } else {
                (cv_cur / cv_ref).min(1.0)
            };
            out.push((structure * texture).clamp(0.0, 1.0));
        }
        Ok(())
    }
}

impl ShelfReference {
    /// The shelf it shows.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration version it was taken for.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The same reference for configuration `version`: the shelf's
    /// geometry is unchanged there (checked by the caller).
    pub fn carried_to(mut self, version: u64) -> Self {
        self.version = version;
        self
    }
}

/// The comparator's side of reference handling, apart from the judging.
impl ReferenceComparator {
    /// A comparator with no references yet, for configuration `version`.
    pub fn empty(version: u64) -> Self {
        Self {
            references: Vec::new(),
            max_shift_px: 3,
            version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shelf::layout::{RawShelf, validate};

    const W: u32 = 320;
    const H: u32 = 160;

    fn shelf() -> Shelf {
        let raw: RawShelf = toml::from_str(
            "name = \"s\"\npolygon = [[0.1, 0.2], [0.9, 0.2], [0.9, 0.8], [0.1, 0.8]]\n\
             grid = [1, 4]\nfront = [[0.1, 0.8], [0.9, 0.8], [0.9, 1.0], [0.1, 1.0]]\n",
        )
        .expect("toml");
        validate(&[raw]).expect("valid").remove(0)
    }

    /// A shelf of boxes of varied colours on a grey back; `empty[k]` clears
    /// facing k (of 4, across 0.1..0.9 of the width) to the back.
    fn scene(gain: f32, shift: (i32, i32), empty: [bool; 4], seed: u64) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut noise = fastrand::Rng::with_seed(seed);
        // Product boxes on a 12-pixel grid, fixed per scene.
        let boxes: Vec<[u8; 3]> = (0..(W / 12 + 1) * (H / 12 + 1))
            .map(|_| [rng.u8(30..230), rng.u8(30..230), rng.u8(30..230)])
            .collect();
        let mut img = vec![0u8; (W * H * 3) as usize];
        for y in 0..H as i32 {
            for x in 0..W as i32 {
                let (sx, sy) = (x - shift.0, y - shift.1);
                let (u, v) = (sx as f32 / W as f32, sy as f32 / H as f32);
                let on_shelf = (0.1..0.9).contains(&u) && (0.2..0.8).contains(&v);
                let facing = ((u - 0.1) / 0.2).floor().clamp(0.0, 3.0) as usize;
                let px = if on_shelf && !empty[facing] {
                    let b =
                        boxes[((sy.max(0) / 12) * (W as i32 / 12 + 1) + sx.max(0) / 12) as usize];
                    // Labels: a darker stripe inside each box.
                    if sy.rem_euclid(12) == 5 {
                        b.map(|c| c / 2)
                    } else {
                        b
                    }
                } else {
                    [120, 118, 115]
                };
                let i = ((y as u32 * W + x as u32) * 3) as usize;
                for c in 0..3 {
                    let n = f32::from(noise.u8(0..6)) - 3.0;
                    img[i + c] = (f32::from(px[c]) * gain + n).clamp(0.0, 255.0) as u8;
                }
            }
        }
        img
    }

    fn view(d: &[u8]) -> RgbView<'_> {
        RgbView {
            width: W,
            height: H,
            data: d,
        }
    }

    fn comparator(s: &Shelf) -> ReferenceComparator {
        let frames: Vec<Vec<u8>> = (0..4).map(|k| scene(1.0, (0, 0), [false; 4], k)).collect();
        let views: Vec<RgbView<'_>> = frames.iter().map(|f| view(f)).collect();
        let r = ShelfReference::capture(s, 3, &views).expect("reference");
        ReferenceComparator::new(vec![r], 3).expect("same version")
    }

    #[test]
    fn a_reference_of_another_version_or_with_people_in_the_way_is_refused() {
        let s = shelf();
        let img = scene(1.0, (0, 0), [false; 4], 1);
        let r = ShelfReference::capture(&s, 2, &[view(&img)]).expect("reference");
        let e = ReferenceComparator::new(vec![r], 3).expect_err("version");
        assert!(
            e.to_string()
                .contains("belongs to configuration version 2, the shelves in force are version 3"),
            "{e}"
        );
        // Someone standing in the front zone (0.8..1.0 high), someone far off.
        let e = reference_blocked(&s, &[[0.4, 0.6, 0.5, 0.95], [0.0, 0.0, 0.05, 0.1]])
            .expect("blocked");
        assert!(e.to_string().contains("1 person(s) overlap"), "{e}");
        assert!(
            e.to_string().contains("retry when the shelf is clear"),
            "{e}"
        );
        assert!(reference_blocked(&s, &[[0.0, 0.0, 0.05, 0.1]]).is_none());
    }

    fn fills(c: &mut ReferenceComparator, s: &Shelf, img: &[u8]) -> Vec<f32> {
        let mut out = Vec::new();
        c.fill(s, view(img), &mut out).expect("fill");
        out
    }

    #[test]
    fn a_stocked_shelf_stays_full_under_light_changes_and_shake() {
        let s = shelf();
        let mut c = comparator(&s);
        for (gain, shift) in [
            (1.0, (0, 0)),
            (1.4, (0, 0)),
            (0.6, (0, 0)),
            (1.0, (2, -2)),
            (1.3, (-2, 1)),
        ] {
            let f = fills(&mut c, &s, &scene(gain, shift, [false; 4], 99));
            assert!(
                f.iter().all(|&v| v > 0.8),
                "gain {gain} shift {shift:?}: {f:?}"
            );
        }
    }

    #[test]
    fn an_emptied_facing_reads_empty_and_the_others_full() {
        let s = shelf();
        let mut c = comparator(&s);
        let f = fills(
            &mut c,
            &s,
            &scene(1.2, (1, 1), [false, true, false, false], 5),
        );
        assert!(f[1] < 0.2, "{f:?}");
        for k in [0, 2, 3] {
            assert!(f[k] > 0.8, "{f:?}");
        }
    }

    #[test]
    fn another_image_size_or_a_short_buffer_is_refused() {
        let s = shelf();
        let mut c = comparator(&s);
        let small = vec![0u8; 10 * 10 * 3];
        let e = c
            .fill(
                &s,
                RgbView {
                    width: 10,
                    height: 10,
                    data: &small,
                },
                &mut Vec::new(),
            )
            .expect_err("size");
        assert!(
            e.to_string().contains("reference was taken at 320×160"),
            "{e}"
        );
        let e = c
            .fill(
                &s,
                RgbView {
                    width: W,
                    height: H,
                    data: &small,
                },
                &mut Vec::new(),
            )
            .expect_err("buffer");
        assert!(matches!(e, ShelfError::Buffer { .. }), "{e}");
    }
}
