//! JSON lines: what `detect` writes per image and `run` per frame when it
//! only detects (with analytics, `run` writes bins and events).

use std::io::Write;

use serde::Serialize;

use crate::detect::Detection;
use crate::model::Manifest;

/// A detection as written out: class label, score, box in image pixels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectionRecord {
    pub class: String,
    pub score: f32,
    pub box_xyxy: [f32; 4],
}

impl DetectionRecord {
    pub fn new(d: &Detection, manifest: &Manifest) -> Self {
        Self {
            class: manifest.label(d.class_id).into_owned(),
            score: d.score,
            box_xyxy: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
        }
    }
}

/// One frame's detections, one JSON line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrameRecord {
    pub seq: u64,
    pub timestamp_us: u64,
    pub width: u32,
    pub height: u32,
    pub detections: Vec<DetectionRecord>,
}

/// One JSON line.
pub fn write_line<T: Serialize>(out: &mut dyn Write, v: &T) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, v).map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}
