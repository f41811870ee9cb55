//! Detections as data: a class, a score and a box in image pixels, and the
//! non-maximum suppression detectors and the tracker share.

pub mod nms;

use serde::{Deserialize, Serialize};

/// An axis-aligned box in original-image pixels. Not clamped to the image:
/// a person cut by the frame edge extends past it, as the model says.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BBox {
    pub fn area(&self) -> f32 {
        (self.x2 - self.x1).max(0.0) * (self.y2 - self.y1).max(0.0)
    }
}

/// One detected object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// Index into the model's labels.
    pub class_id: u16,
    pub score: f32,
    pub bbox: BBox,
}
