//! Output decoding for FastestDet (anchor-free, one box per grid cell).
//!
//! Output `1×(5+C)×G×G`; per cell `[obj, tx, ty, tw, th, class probs…]`,
//! objectness and classes already activated. Box centre
//! `cx = (col + tanh(tx)) / G`, `cy = (row + tanh(ty)) / G`, size
//! `w = sigmoid(tw)`, `h = sigmoid(th)`, all normalised to the original
//! image (the model input is a plain stretch, no letterbox). Score is
//! `obj × max class prob`.

use super::{BBox, DecodeError, Detection, OutputDecoder};
use crate::tensor::Tensor;

/// Decoder for FastestDet's single output.
#[derive(Debug, Clone, Copy, Default)]
pub struct FastestDet;

impl OutputDecoder for FastestDet {
    fn decode(
        &self,
        outputs: &[Tensor],
        (img_w, img_h): (u32, u32),
        score_threshold: f32,
        out: &mut Vec<Detection>,
    ) -> Result<(), DecodeError> {
        let t = outputs.first().ok_or(DecodeError::OutputCount {
            expected: 1,
            got: 0,
        })?;
        let v = t.chw_view().ok_or_else(|| DecodeError::Shape {
            decoder: "fastestdet",
            shape: t.shape.clone(),
            expected: "[1, 5+classes, grid, grid]",
        })?;
        let (c, gh, gw) = v.dims;
        if c < 6 {
            return Err(DecodeError::Shape {
                decoder: "fastestdet",
                shape: t.shape.clone(),
                expected: "[1, 5+classes, grid, grid]",
            });
        }
        let (fw, fh) = (img_w as f32, img_h as f32);
        for row in 0..gh {
            for col in 0..gw {
                let obj = v.at(0, row, col);
                // Cheap early out: the score can't pass if obj alone doesn't.
                if obj <= score_threshold {
                    continue;
                }
                let (mut best_c, mut best_p) = (0usize, f32::MIN);
                for k in 5..c {
                    let p = v.at(k, row, col);
                    if p > best_p {
                        best_p = p;
                        best_c = k - 5;
                    }
                }
                let score = obj * best_p;
                if score <= score_threshold {
                    continue;
                }
                let cx = (col as f32 + v.at(1, row, col).tanh()) / gw as f32;
                let cy = (row as f32 + v.at(2, row, col).tanh()) / gh as f32;
                let w = sigmoid(v.at(3, row, col));
                let h = sigmoid(v.at(4, row, col));
                out.push(Detection {
                    class_id: u16::try_from(best_c).unwrap_or(u16::MAX),
                    score,
                    bbox: BBox {
                        x1: (cx - w / 2.0) * fw,
                        y1: (cy - h / 2.0) * fh,
                        x2: (cx + w / 2.0) * fw,
                        y2: (cy + h / 2.0) * fh,
                    },
                });
            }
        }
        Ok(())
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::{Layout, Quant, TensorData};

    /// A 1×(5+3)×4×4 output with one object in cell (row 1, col 2).
    fn output() -> Vec<f32> {
        let (c, g) = (8, 4);
        let mut v = vec![0.0f32; c * g * g];
        let at = |ch: usize, r: usize, col: usize| ch * g * g + r * g + col;
        v[at(0, 1, 2)] = 0.9; // obj
        v[at(1, 1, 2)] = 0.0; // tanh(0) = 0 → cx = 2/4
        v[at(2, 1, 2)] = 0.5f32.atanh(); // cy = (1 + 0.5)/4
        v[at(3, 1, 2)] = 0.0; // w = 0.5
        v[at(4, 1, 2)] = (0.25f32 / 0.75).ln(); // h = 0.25
        v[at(6, 1, 2)] = 0.8; // class 1
        v[at(5, 1, 2)] = 0.1;
        // A weak cell that must be dropped.
        v[at(0, 3, 3)] = 0.6;
        v[at(5, 3, 3)] = 0.5;
        v
    }

    #[test]
    fn decodes_box_class_and_score_in_image_pixels() {
        let t = Tensor::f32(vec![1, 8, 4, 4], Layout::Nchw, output());
        let mut out = Vec::new();
        FastestDet
            .decode(&[t], (400, 200), 0.5, &mut out)
            .expect("decode");
        assert_eq!(out.len(), 1);
        let d = out[0];
        assert_eq!(d.class_id, 1);
        assert!((d.score - 0.72).abs() < 1e-6);
        let want = [100.0, 50.0, 300.0, 100.0];
        let got = [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-3, "{got:?}");
        }
    }

    #[test]
    fn int8_nhwc_output_decodes_the_same() {
        let f = output();
        let (c, g) = (8, 4);
        let q = Quant {
            scale: 1.0 / 100.0,
            zero_point: 0,
        };
        let mut data = vec![0i8; c * g * g];
        for ch in 0..c {
            for i in 0..g * g {
                data[i * c + ch] = (f[ch * g * g + i] / q.scale).round() as i8;
            }
        }
        let t = Tensor {
            shape: vec![1, g, g, c],
            layout: Layout::Nhwc,
            quant: Some(q),
            data: TensorData::I8(data),
        };
        let mut out = Vec::new();
        FastestDet
            .decode(&[t], (400, 200), 0.5, &mut out)
            .expect("decode");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].class_id, 1);
        assert!((out[0].bbox.x1 - 100.0).abs() < 2.0);
    }

    #[test]
    fn wrong_shape_is_an_error() {
        let t = Tensor::f32(vec![1, 85, 22], Layout::Nchw, vec![0.0; 85 * 22]);
        let err = FastestDet
            .decode(&[t], (1, 1), 0.5, &mut Vec::new())
            .expect_err("shape");
        assert!(err.to_string().contains("[1, 85, 22]"), "{err}");
    }
}
