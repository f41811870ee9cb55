//! Greedy non-maximum suppression, per class.

use super::{BBox, Detection};

/// Keep the highest-scoring box of each overlapping group, class by class:
/// sort by score, then drop any box whose IoU with a kept box of the same
/// class exceeds `iou_threshold`. Sorts `dets` in place and truncates it to
/// the kept boxes, in descending score order.
pub fn greedy_per_class(dets: &mut Vec<Detection>, iou_threshold: f32) {
    // Stable sort with a total order: equal scores keep decode order, so
    // results are deterministic across platforms.
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept = 0;
    for i in 0..dets.len() {
        let cand = dets[i];
        let suppressed = dets[..kept]
            .iter()
            .any(|k| k.class_id == cand.class_id && iou(&k.bbox, &cand.bbox) > iou_threshold);
        if !suppressed {
            dets[kept] = cand;
            kept += 1;
        }
    }
    dets.truncate(kept);
}

/// Intersection over union of two boxes; 0 for empty boxes.
pub fn iou(a: &BBox, b: &BBox) -> f32 {
    let iw = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let ih = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let inter = iw * ih;
    let union = a.area() + b.area() - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class_id: u16, score: f32, x1: f32, y1: f32, x2: f32, y2: f32) -> Detection {
        Detection {
            class_id,
            score,
            bbox: BBox { x1, y1, x2, y2 },
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        let a = BBox {
            x1: 0.,
            y1: 0.,
            x2: 2.,
            y2: 2.,
        };
        let b = BBox {
            x1: 1.,
            y1: 0.,
            x2: 3.,
            y2: 2.,
        };
        assert!((iou(&a, &b) - 2.0 / 6.0).abs() < 1e-6);
        assert_eq!(iou(&a, &a), 1.0);
        let far = BBox {
            x1: 5.,
            y1: 5.,
            x2: 6.,
            y2: 6.,
        };
        assert_eq!(iou(&a, &far), 0.0);
    }

    #[test]
    fn suppresses_overlaps_within_a_class_only() {
        let mut d = vec![
            det(0, 0.6, 0., 0., 10., 10.),
            det(0, 0.9, 1., 1., 11., 11.),
            det(1, 0.8, 1., 1., 11., 11.),   // other class: kept
            det(0, 0.7, 50., 50., 60., 60.), // far away: kept
        ];
        greedy_per_class(&mut d, 0.45);
        let got: Vec<(u16, f32)> = d.iter().map(|d| (d.class_id, d.score)).collect();
        assert_eq!(got, vec![(0, 0.9), (1, 0.8), (0, 0.7)]);
    }

    #[test]
    fn threshold_is_strict() {
        // IoU exactly 0.5 is kept at threshold 0.5, dropped at 0.49.
        let make = || vec![det(0, 0.9, 0., 0., 2., 1.), det(0, 0.8, 0., 0., 1., 1.)];
        let mut d = make();
        greedy_per_class(&mut d, 0.5);
        assert_eq!(d.len(), 2);
        let mut d = make();
        greedy_per_class(&mut d, 0.49);
        assert_eq!(d.len(), 1);
    }
}
