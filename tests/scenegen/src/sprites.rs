//! People sprites: rectangular crops of the shared sample photos, cut at
//! the boxes of the reference detections
//! (`models/fastestdet/reference/detections.json`, read at run time).
//! Only clean, unoccluded people are used; the photos never enter the
//! repository.

use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::Deserialize;

use crate::SceneError;

/// A sprite: which photo, and roughly which reference box (the box used is
/// the reference detection of class "person" that overlaps this one best).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpriteSource {
    pub image: &'static str,
    pub approx_box: [f64; 4],
    pub what: &'static str,
}

/// The sprites a scenario's `sprite` index picks from.
pub const SPRITES: &[SpriteSource] = &[
    SpriteSource {
        image: "camera.png",
        approx_box: [0.0, 57.0, 318.0, 538.0],
        what: "man with a camera on a tripod (greyscale, legs cut by the photo)",
    },
    SpriteSource {
        image: "astronaut.png",
        approx_box: [1.0, 12.0, 378.0, 516.0],
        what: "astronaut, upper body",
    },
    SpriteSource {
        image: "coco_sample_2.jpg",
        approx_box: [354.0, 46.0, 478.0, 425.0],
        what: "coco_sample_2, right person, full body",
    },
    SpriteSource {
        image: "coco_sample_2.jpg",
        approx_box: [80.0, 79.0, 220.0, 468.0],
        what: "coco_sample_2, left person, full body",
    },
    SpriteSource {
        image: "coco_sample_2.jpg",
        approx_box: [236.0, 58.0, 341.0, 378.0],
        what: "coco_sample_2, middle person",
    },
    SpriteSource {
        image: "coco_sample_3.jpg",
        approx_box: [41.0, 63.0, 178.0, 294.0],
        what: "coco_sample_3, left person",
    },
];

/// Where the reference detections are looked for, given the images
/// directory: beside the images, then `../models/fastestdet/reference/`.
pub fn detections_path(images_dir: &Path) -> PathBuf {
    let beside = images_dir.join("detections.json");
    if beside.is_file() {
        return beside;
    }
    images_dir
        .join("..")
        .join("models")
        .join("fastestdet")
        .join("reference")
        .join("detections.json")
}

#[derive(Debug, Deserialize)]
struct Reference {
    images: std::collections::BTreeMap<String, RefImage>,
}

#[derive(Debug, Deserialize)]
struct RefImage {
    width: u32,
    height: u32,
    detections: Vec<RefDetection>,
}

#[derive(Debug, Deserialize)]
struct RefDetection {
    box_xyxy: [f64; 4],
    class: String,
}

/// A sprite's crop rectangle in its photo (pixels, clamped to the photo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Crop {
    /// Width over height.
    pub fn aspect(&self) -> f64 {
        f64::from(self.w) / f64::from(self.h)
    }
}

fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: [f64; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter)
}

/// The crop rectangles of all [`SPRITES`], from the reference detections.
pub fn crops(images_dir: &Path) -> Result<Vec<Crop>, SceneError> {
    let path = detections_path(images_dir);
    if !path.is_file() {
        return Err(SceneError::SharedDataMissing { path });
    }
    let text = std::fs::read_to_string(&path).map_err(|source| SceneError::Read {
        path: path.clone(),
        source,
    })?;
    let reference: Reference = serde_json::from_str(&text).map_err(|source| SceneError::Json {
        path: path.clone(),
        source,
    })?;
    SPRITES
        .iter()
        .map(|s| {
            let img = reference
                .images
                .get(s.image)
                .ok_or_else(|| SceneError::Reference {
                    path: path.clone(),
                    problem: format!("no entry for {}", s.image),
                })?;
            let best = img
                .detections
                .iter()
                .filter(|d| d.class == "person")
                .map(|d| (iou(d.box_xyxy, s.approx_box), d.box_xyxy))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .filter(|(o, _)| *o > 0.7)
                .ok_or_else(|| SceneError::Reference {
                    path: path.clone(),
                    problem: format!("{}: no person box near {:?}", s.image, s.approx_box),
                })?;
            let [x0, y0, x1, y1] = best.1;
            let (w, h) = (f64::from(img.width), f64::from(img.height));
            let (x0, x1) = (x0.clamp(0.0, w).round(), x1.clamp(0.0, w).round());
            let (y0, y1) = (y0.clamp(0.0, h).round(), y1.clamp(0.0, h).round());
            if x1 - x0 < 8.0 || y1 - y0 < 8.0 {
                return Err(SceneError::Reference {
                    path: path.clone(),
                    problem: format!("{}: person box {:?} is degenerate", s.image, best.1),
                });
            }
            // Clamped to the photo, so within u32.
            Ok(Crop {
                x: x0 as u32,
                y: y0 as u32,
                w: (x1 - x0) as u32,
                h: (y1 - y0) as u32,
            })
        })
        .collect()
}

/// The sprites' crop rectangles and pixels, in [`SPRITES`] order.
pub fn load(images_dir: &Path) -> Result<(Vec<Crop>, Vec<RgbImage>), SceneError> {
    let crops = crops(images_dir)?;
    let mut photos: Vec<(&str, RgbImage)> = Vec::new();
    let mut out = Vec::with_capacity(SPRITES.len());
    for (s, c) in SPRITES.iter().zip(&crops) {
        let idx = match photos.iter().position(|(n, _)| *n == s.image) {
            Some(i) => i,
            None => {
                let path = images_dir.join(s.image);
                if !path.is_file() {
                    return Err(SceneError::SharedDataMissing { path });
                }
                let img = image::open(&path)
                    .map_err(|source| SceneError::Decode {
                        path: path.clone(),
                        source,
                    })?
                    .to_rgb8();
                photos.push((s.image, img));
                photos.len() - 1
            }
        };
        let photo = &photos[idx].1;
        out.push(image::imageops::crop_imm(photo, c.x, c.y, c.w, c.h).to_image());
    }
    Ok((crops, out))
}
