//! Tensors as backends see them: f32 for CPUs, int8/uint8 with
//! quantisation parameters for NPUs, NCHW or NHWC.

use serde::{Deserialize, Serialize};

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    U8,
    I8,
}

/// Memory order of a 4-D image tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

/// Affine quantisation: `real = (q - zero_point) * scale`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quant {
    pub scale: f32,
    pub zero_point: i32,
}

/// Tensor storage.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    U8(Vec<u8>),
    I8(Vec<i8>),
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            Self::F32(_) => DType::F32,
            Self::U8(_) => DType::U8,
            Self::I8(_) => DType::I8,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::U8(v) => v.len(),
            Self::I8(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A dense tensor. For 4-D tensors `shape` is in `layout` order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub layout: Layout,
    pub quant: Option<Quant>,
    pub data: TensorData,
}

impl Tensor {
    /// An f32 tensor.
    pub fn f32(shape: Vec<usize>, layout: Layout, data: Vec<f32>) -> Self {
        Self {
            shape,
            layout,
            quant: None,
            data: TensorData::F32(data),
        }
    }

    /// (channels, height, width) of a 4-D tensor with batch 1.
    pub fn chw(&self) -> Option<(usize, usize, usize)> {
        match (self.layout, self.shape.as_slice()) {
            (Layout::Nchw, &[1, c, h, w]) => Some((c, h, w)),
            (Layout::Nhwc, &[1, h, w, c]) => Some((c, h, w)),
            _ => None,
        }
    }

    /// A view that reads element (c, y, x) of a 4-D tensor as f32,
    /// whatever its layout and element type.
    pub fn chw_view(&self) -> Option<ChwView<'_>> {
        let (c, h, w) = self.chw()?;
        if self.data.len() != c * h * w {
            return None;
        }
        let (sc, sy, sx) = match self.layout {
            Layout::Nchw => (h * w, w, 1),
            Layout::Nhwc => (1, w * c, c),
        };
        let q = self.quant.unwrap_or(Quant {
            scale: 1.0,
            zero_point: 0,
        });
        Some(ChwView {
            tensor: self,
            dims: (c, h, w),
            strides: (sc, sy, sx),
            quant: q,
        })
    }
}

/// See [`Tensor::chw_view`].
#[derive(Debug, Clone, Copy)]
pub struct ChwView<'a> {
    tensor: &'a Tensor,
    pub dims: (usize, usize, usize),
    strides: (usize, usize, usize),
    quant: Quant,
}

impl ChwView<'_> {
    /// Element (c, y, x), dequantised. Panics if out of range (callers
    /// iterate within `dims`).
    #[inline]
    pub fn at(&self, c: usize, y: usize, x: usize) -> f32 {
        let i = c * self.strides.0 + y * self.strides.1 + x * self.strides.2;
        let q = self.quant;
        match &self.tensor.data {
            TensorData::F32(v) => v[i],
            TensorData::U8(v) => (i32::from(v[i]) - q.zero_point) as f32 * q.scale,
            TensorData::I8(v) => (i32::from(v[i]) - q.zero_point) as f32 * q.scale,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chw_view_reads_both_layouts_and_dequantises() {
        // 2 channels, 1 row, 3 columns: value = 10c + x.
        let nchw = Tensor::f32(
            vec![1, 2, 1, 3],
            Layout::Nchw,
            vec![0., 1., 2., 10., 11., 12.],
        );
        let nhwc = Tensor {
            shape: vec![1, 1, 3, 2],
            layout: Layout::Nhwc,
            quant: Some(Quant {
                scale: 0.5,
                zero_point: -10,
            }),
            // (v / 0.5) - 10
            data: TensorData::I8(vec![-10, 10, -8, 12, -6, 14]),
        };
        let (a, b) = (
            nchw.chw_view().expect("view"),
            nhwc.chw_view().expect("view"),
        );
        for c in 0..2 {
            for x in 0..3 {
                let want = (10 * c + x) as f32;
                assert_eq!(a.at(c, 0, x), want);
                assert_eq!(b.at(c, 0, x), want);
            }
        }
    }

    #[test]
    fn wrong_length_has_no_view() {
        let t = Tensor::f32(vec![1, 2, 2, 2], Layout::Nchw, vec![0.0; 7]);
        assert!(t.chw_view().is_none());
    }
}
