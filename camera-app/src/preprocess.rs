//! Frame → model input: colour conversion, resize and normalisation.
//!
//! The pixel work is done by well-kept crates: `yuvutils-rs` for YUV → RGB,
//! `fast_image_resize` for scaling. For NV12 the Y and UV planes are resized
//! first and the (small) result converted, since YUV → RGB is affine per
//! pixel and converting 352² pixels is far cheaper than converting 1080p;
//! this is the order a hardware scaler (Rockchip RGA) uses too.
//!
//! All buffers are kept between frames: after the first frame of a given
//! size, preprocessing allocates nothing.

// Functions on the per-frame path stay short enough to read whole
// (clippy.toml: 80 lines).
#![warn(clippy::too_many_lines)]

use std::time::{Duration, Instant};

// Typed resizes: the untyped `Resizer::resize` instantiates every pixel
// type the crate has (about 1 MB of code on aarch64), we use three.
use fast_image_resize::images::{TypedImage, TypedImageRef};
use fast_image_resize::pixels::{U8, U8x2, U8x3};
use fast_image_resize::{FilterType, PixelTrait, ResizeAlg, ResizeOptions, Resizer};
use serde::{Deserialize, Serialize};
use yuvutils_rs::{
    YuvBiPlanarImage, YuvConversionMode, YuvPackedImage, YuvRange, YuvStandardMatrix,
};

use crate::capture::{Frame, FrameLayoutError, PixelFormat};
use crate::tensor::{DType, Layout, Quant, Tensor, TensorData};

/// Channel order the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

/// How the model's input tensor is made from an image: the part of a model
/// manifest that preprocessing needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Input tensor width in pixels.
    pub width: u32,
    /// Input tensor height in pixels.
    pub height: u32,
    pub channel_order: ChannelOrder,
    pub layout: Layout,
    pub dtype: DType,
    /// Pixel values are multiplied by `scale`, then `(v - mean) / std` per
    /// channel (in the model's channel order). A raw-pixel `u8` input (an
    /// NPU model with its normalisation compiled in) has scale 1, mean 0
    /// and std 1.
    #[serde(default = "one")]
    pub scale: f32,
    #[serde(default)]
    pub mean: [f32; 3],
    #[serde(default = "ones")]
    pub std: [f32; 3],
    /// Quantisation of an `i8`/`u8` input, applied after normalisation.
    #[serde(default)]
    pub quant: Option<Quant>,
}

const fn one() -> f32 {
    1.0
}
const fn ones() -> [f32; 3] {
    [1.0; 3]
}

impl InputSpec {
    /// The input tensor's shape in its layout (batch 1).
    pub fn shape(&self) -> [usize; 4] {
        let (w, h) = (self.width as usize, self.height as usize);
        match self.layout {
            Layout::Nchw => [1, 3, h, w],
            Layout::Nhwc => [1, h, w, 3],
        }
    }
}

/// YUV colorimetry of the camera's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Colorimetry {
    /// BT.601, limited range: what most USB and ISP pipelines emit.
    Bt601Limited,
    Bt601Full,
    Bt709Limited,
    Bt709Full,
}

impl Colorimetry {
    fn parts(self) -> (YuvStandardMatrix, YuvRange) {
        match self {
            Self::Bt601Limited => (YuvStandardMatrix::Bt601, YuvRange::Limited),
            Self::Bt601Full => (YuvStandardMatrix::Bt601, YuvRange::Full),
            Self::Bt709Limited => (YuvStandardMatrix::Bt709, YuvRange::Limited),
            Self::Bt709Full => (YuvStandardMatrix::Bt709, YuvRange::Full),
        }
    }
}

/// Errors from preprocessing one frame; the frame is skipped.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("frame {seq}: {source}")]
    Layout {
        seq: u64,
        #[source]
        source: FrameLayoutError,
    },
    #[error("frame {seq}: {format} frames must be decoded before preprocessing")]
    Compressed { seq: u64, format: PixelFormat },
    #[error("frame {seq}: colour conversion failed: {reason}")]
    Colour { seq: u64, reason: String },
    #[error("frame {seq}: resize failed: {reason}")]
    Resize { seq: u64, reason: String },
}

/// Time spent in each step of the last [`Preprocessor::run`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PreprocessTimings {
    pub colour: Duration,
    pub resize: Duration,
    pub normalise: Duration,
}

/// Turns frames into input tensors for one model. Keeps its scratch buffers.
#[derive(Debug)]
pub struct Preprocessor {
    spec: InputSpec,
    colorimetry: Colorimetry,
    resizer: Resizer,
    /// Packed RGB at the source size (YUYV path).
    full_rgb: Vec<u8>,
    /// Rows of a padded frame copied out tight, when its stride is not a
    /// whole number of pixels.
    tight: Vec<u8>,
    /// Resized Y and UV planes (NV12 path).
    small_y: Vec<u8>,
    small_uv: Vec<u8>,
    /// Packed 3-channel image at the model's size, in `small_order`.
    small: Vec<u8>,
    small_order: ChannelOrder,
    /// Per-channel lookup from a byte to the normalised value.
    lut: [[f32; 256]; 3],
    timings: PreprocessTimings,
}

impl Preprocessor {
    pub fn new(spec: InputSpec, colorimetry: Colorimetry) -> Self {
        let mut lut = [[0.0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, slot) in table.iter_mut().enumerate() {
                *slot = (f32::from(u8::try_from(v).unwrap_or(u8::MAX)) * spec.scale - spec.mean[c])
                    / spec.std[c];
            }
        }
        let n = spec.width as usize * spec.height as usize;
        Self {
            colorimetry,
            resizer: Resizer::new(),
            full_rgb: Vec::new(),
            tight: Vec::new(),
            small_y: Vec::new(),
            small_uv: Vec::new(),
            small: vec![0; n * 3],
            small_order: ChannelOrder::Rgb,
            lut,
            timings: PreprocessTimings::default(),
            spec,
        }
    }

    pub fn spec(&self) -> &InputSpec {
        &self.spec
    }

    /// A tensor of the right shape and type for this model's input.
    pub fn new_input_tensor(&self) -> Tensor {
        let shape = self.spec.shape();
        let n: usize = shape.iter().product();
        let data = match self.spec.dtype {
            DType::F32 => TensorData::F32(vec![0.0; n]),
            DType::U8 => TensorData::U8(vec![0; n]),
            DType::I8 => TensorData::I8(vec![0; n]),
        };
        Tensor {
            shape: shape.to_vec(),
            layout: self.spec.layout,
            quant: self.spec.quant,
            data,
        }
    }

    /// Timings of the last call to [`Self::run`].
    pub fn timings(&self) -> PreprocessTimings {
        self.timings
    }

    /// Convert, resize and normalise `frame` into `out` (made by
    /// [`Self::new_input_tensor`]).
    pub fn run(&mut self, frame: &Frame, out: &mut Tensor) -> Result<(), PreprocessError> {
        frame.check().map_err(|source| PreprocessError::Layout {
            seq: frame.seq,
            source,
        })?;
        let seq = frame.seq;
        match frame.format {
            PixelFormat::Nv12 => self.nv12(frame)?,
            PixelFormat::Yuyv => {
                let t0 = Instant::now();
                let (w, h) = (frame.width, frame.height);
                self.full_rgb.resize(w as usize * h as usize * 3, 0);
                let (matrix, range) = self.colorimetry.parts();
                let packed = YuvPackedImage {
                    yuy: &frame.data,
                    yuy_stride: frame.stride,
                    width: w,
                    height: h,
                };
                yuvutils_rs::yuyv422_to_rgb(&packed, &mut self.full_rgb, w * 3, range, matrix)
                    .map_err(|e| PreprocessError::Colour {
                        seq,
                        reason: e.to_string(),
                    })?;
                let t1 = Instant::now();
                let rgb = std::mem::take(&mut self.full_rgb);
                let r = self.resize_packed(&rgb, w, h, w * 3, ChannelOrder::Rgb, seq);
                self.full_rgb = rgb;
                r?;
                self.timings.colour = t1 - t0;
                self.timings.resize = t1.elapsed();
            }
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => {
                let order = if frame.format == PixelFormat::Rgb24 {
                    ChannelOrder::Rgb
                } else {
                    ChannelOrder::Bgr
                };
                let t0 = Instant::now();
                self.resize_packed(
                    &frame.data,
                    frame.width,
                    frame.height,
                    frame.stride,
                    order,
                    seq,
                )?;
                self.timings.colour = Duration::ZERO;
                self.timings.resize = t0.elapsed();
            }
            PixelFormat::Mjpeg => {
                return Err(PreprocessError::Compressed {
                    seq,
                    format: frame.format,
                });
            }
        }
        let t = Instant::now();
        self.normalise(out);
        self.timings.normalise = t.elapsed();
        Ok(())
    }

    /// NV12: resize Y and UV planes to the model size, then convert.
    fn nv12(&mut self, frame: &Frame) -> Result<(), PreprocessError> {
        let seq = frame.seq;
        let (w, h, stride) = (frame.width, frame.height, frame.stride);
        let (dw, dh) = (self.spec.width, self.spec.height);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (dcw, dch) = (dw.div_ceil(2), dh.div_ceil(2));
        let y_len = stride as usize * h as usize;
        let (y_plane, uv_plane) = frame.data.split_at(y_len);

        let t0 = Instant::now();
        self.small_y.resize(dw as usize * dh as usize, 0);
        self.small_uv.resize(dcw as usize * dch as usize * 2, 0);
        let alg = RESIZE_ALG;
        resize_plane::<U8>(
            &mut self.resizer,
            y_plane,
            (w, h, stride),
            &mut self.small_y,
            (dw, dh),
            alg,
            &mut self.tight,
        )
        .map_err(|reason| PreprocessError::Resize { seq, reason })?;
        resize_plane::<U8x2>(
            &mut self.resizer,
            uv_plane,
            (cw, ch, stride),
            &mut self.small_uv,
            (dcw, dch),
            alg,
            &mut self.tight,
        )
        .map_err(|reason| PreprocessError::Resize { seq, reason })?;
        let t1 = Instant::now();

        let (matrix, range) = self.colorimetry.parts();
        let image = YuvBiPlanarImage {
            y_plane: &self.small_y,
            y_stride: dw,
            uv_plane: &self.small_uv,
            uv_stride: dcw * 2,
            width: dw,
            height: dh,
        };
        // Convert straight into the model's channel order.
        let convert = match self.spec.channel_order {
            ChannelOrder::Rgb => yuvutils_rs::yuv_nv12_to_rgb,
            ChannelOrder::Bgr => yuvutils_rs::yuv_nv12_to_bgr,
        };
        convert(
            &image,
            &mut self.small,
            dw * 3,
            range,
            matrix,
            YuvConversionMode::Balanced,
        )
        .map_err(|e| PreprocessError::Colour {
            seq,
            reason: e.to_string(),
        })?;
        self.small_order = self.spec.channel_order;
        self.timings.resize = t1 - t0;
        self.timings.colour = t1.elapsed();
        Ok(())
    }

    /// Resize a packed 3-channel image into `self.small`.
    fn resize_packed(
        &mut self,
        data: &[u8],
        w: u32,
        h: u32,
        stride: u32,
        order: ChannelOrder,
        seq: u64,
    ) -> Result<(), PreprocessError> {
        let (dw, dh) = (self.spec.width, self.spec.height);
        resize_plane::<U8x3>(
            &mut self.resizer,
            data,
            (w, h, stride),
            &mut self.small,
            (dw, dh),
            RESIZE_ALG,
            &mut self.tight,
        )
        .map_err(|reason| PreprocessError::Resize { seq, reason })?;
        self.small_order = order;
        Ok(())
    }

    /// Packed small image → tensor, applying channel order, scale, mean/std
    /// and quantisation.
    fn normalise(&self, out: &mut Tensor) {
        let hw = self.spec.width as usize * self.spec.height as usize;
        // Which channel of `small` feeds model channel c.
        let src_c: [usize; 3] = if self.small_order == self.spec.channel_order {
            [0, 1, 2]
        } else {
            [2, 1, 0]
        };
        let px = &self.small[..hw * 3];
        match &mut out.data {
            TensorData::F32(buf) => match self.spec.layout {
                Layout::Nchw => {
                    for (c, plane) in buf.chunks_exact_mut(hw).take(3).enumerate() {
                        let lut = &self.lut[c];
                        let sc = src_c[c];
                        for (dst, p) in plane.iter_mut().zip(px.chunks_exact(3)) {
                            *dst = lut[usize::from(p[sc])];
                        }
                    }
                }
                Layout::Nhwc => {
                    for (dst, p) in buf.chunks_exact_mut(3).zip(px.chunks_exact(3)) {
                        for c in 0..3 {
                            dst[c] = self.lut[c][usize::from(p[src_c[c]])];
                        }
                    }
                }
            },
            TensorData::U8(buf) => {
                self.fill_quantised(buf, px, src_c, |v| v.round().clamp(0.0, 255.0) as u8);
            }
            TensorData::I8(buf) => {
                self.fill_quantised(buf, px, src_c, |v| v.round().clamp(-128.0, 127.0) as i8);
            }
        }
    }

    fn fill_quantised<T: Copy>(
        &self,
        buf: &mut [T],
        px: &[u8],
        src_c: [usize; 3],
        cast: impl Fn(f32) -> T,
    ) {
        let hw = px.len() / 3;
        // With no quantisation the normalised value is stored as is.
        let q = self.spec.quant.unwrap_or(Quant {
            scale: 1.0,
            zero_point: 0,
        });
        let quantise = |c: usize, v: u8| {
            let x = self.lut[c][usize::from(v)] / q.scale + q.zero_point as f32;
            cast(x)
        };
        match self.spec.layout {
            Layout::Nchw => {
                for (c, plane) in buf.chunks_exact_mut(hw).take(3).enumerate() {
                    for (dst, p) in plane.iter_mut().zip(px.chunks_exact(3)) {
                        *dst = quantise(c, p[src_c[c]]);
                    }
                }
            }
            Layout::Nhwc => {
                for (dst, p) in buf.chunks_exact_mut(3).zip(px.chunks_exact(3)) {
                    for c in 0..3 {
                        dst[c] = quantise(c, p[src_c[c]]);
                    }
                }
            }
        }
    }

    /// The last resized image, packed, with its channel order (for
    /// snapshots and debugging).
    pub fn resized(&self) -> (&[u8], ChannelOrder) {
        (&self.small, self.small_order)
    }
}

/// The resize filter. The reference pipeline uses OpenCV's `INTER_AREA`;
/// of `fast_image_resize`'s SIMD filters the antialiased bilinear
/// (triangle) convolution reproduces it best on FastestDet: against
/// onnxruntime's reference detections, worst IoU 0.925 and worst |Δscore|
/// 0.025, where the box filter gave 0.888 and 0.050 (the acceptance
/// limit) and Hamming 0.891 and 0.022. See docs/preprocessing.md.
const RESIZE_ALG: ResizeAlg = ResizeAlg::Convolution(FilterType::Bilinear);

/// Resize one plane of `src_size` = (width, height, stride in bytes) into
/// a tight `dst` of `dst_size`. Padded rows are handled by viewing the
/// plane as a wider image and cropping, or, when the stride is not a whole
/// number of pixels, by copying the rows out tight first.
#[allow(clippy::too_many_arguments)]
fn resize_plane<P: PixelTrait>(
    resizer: &mut Resizer,
    src: &[u8],
    (w, h, stride): (u32, u32, u32),
    dst: &mut [u8],
    (dw, dh): (u32, u32),
    alg: ResizeAlg,
    tight: &mut Vec<u8>,
) -> Result<(), String> {
    let bpp = u32::try_from(P::size()).map_err(|e| e.to_string())?;
    let row = w * bpp;
    let (view_w, data): (u32, &[u8]) = if stride == row {
        (w, src)
    } else if stride % bpp == 0 {
        (stride / bpp, src)
    } else {
        tight.clear();
        for r in src.chunks(stride as usize).take(h as usize) {
            tight.extend_from_slice(&r[..row as usize]);
        }
        (w, tight.as_slice())
    };
    // The last row of a padded plane may be short of the full stride.
    let needed = (view_w as usize * (h as usize - 1) + w as usize) * bpp as usize;
    if data.len() < needed {
        return Err(format!("plane too short: {} < {needed}", data.len()));
    }
    let padded_data;
    let data = if data.len() < view_w as usize * h as usize * bpp as usize {
        // ImageRef wants whole rows: pad the tail (only for odd buffers).
        let mut v = data.to_vec();
        v.resize(view_w as usize * h as usize * bpp as usize, 0);
        padded_data = v;
        padded_data.as_slice()
    } else {
        data
    };
    let src_img = TypedImageRef::<P>::from_buffer(view_w, h, data).map_err(|e| e.to_string())?;
    let mut dst_img = TypedImage::<P>::from_buffer(dw, dh, dst).map_err(|e| e.to_string())?;
    let mut opts = ResizeOptions::new().resize_alg(alg);
    if view_w != w {
        opts = opts.crop(0.0, 0.0, f64::from(w), f64::from(h));
    }
    resizer
        .resize_typed(&src_img, &mut dst_img, &opts)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;

    fn spec(order: ChannelOrder, layout: Layout) -> InputSpec {
        InputSpec {
            width: 8,
            height: 6,
            channel_order: order,
            layout,
            dtype: DType::F32,
            scale: 1.0 / 255.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            quant: None,
        }
    }

    fn frame(format: PixelFormat, w: u32, h: u32, stride: u32, data: Vec<u8>) -> Frame {
        Frame {
            seq: 7,
            timestamp: Timestamp(0),
            width: w,
            height: h,
            stride,
            format,
            data,
        }
    }

    fn solid_rgb(w: u32, h: u32, stride: u32, rgb: [u8; 3]) -> Vec<u8> {
        let mut v = vec![0u8; stride as usize * h as usize];
        for row in v.chunks_mut(stride as usize) {
            for px in row[..w as usize * 3].chunks_exact_mut(3) {
                px.copy_from_slice(&rgb);
            }
        }
        v
    }

    fn f32s(t: &Tensor) -> &[f32] {
        match &t.data {
            TensorData::F32(v) => v,
            _ => panic!("not f32"),
        }
    }

    #[test]
    fn rgb_frame_becomes_bgr_nchw_scaled() {
        let mut p = Preprocessor::new(
            spec(ChannelOrder::Bgr, Layout::Nchw),
            Colorimetry::Bt601Limited,
        );
        let mut t = p.new_input_tensor();
        let f = frame(
            PixelFormat::Rgb24,
            32,
            24,
            32 * 3,
            solid_rgb(32, 24, 96, [255, 51, 0]),
        );
        p.run(&f, &mut t).expect("preprocess");
        assert_eq!(t.shape, vec![1, 3, 6, 8]);
        let v = f32s(&t);
        let hw = 48;
        // Channel 0 is blue (0), 1 green (0.2), 2 red (1.0).
        assert!(v[..hw].iter().all(|&x| x.abs() < 1e-6));
        assert!(v[hw..2 * hw].iter().all(|&x| (x - 0.2).abs() < 1e-6));
        assert!(v[2 * hw..].iter().all(|&x| (x - 1.0).abs() < 1e-6));
    }

    #[test]
    fn padded_stride_is_ignored() {
        let mut p = Preprocessor::new(
            spec(ChannelOrder::Rgb, Layout::Nhwc),
            Colorimetry::Bt601Limited,
        );
        let mut t = p.new_input_tensor();
        // Stride of 100 bytes: not a whole number of RGB pixels; padding is 0xff.
        let mut data = solid_rgb(32, 24, 100, [10, 20, 30]);
        for row in data.chunks_mut(100) {
            row[96..].fill(0xff);
        }
        p.run(&frame(PixelFormat::Rgb24, 32, 24, 100, data), &mut t)
            .expect("preprocess");
        for px in f32s(&t).chunks_exact(3) {
            assert!((px[0] * 255.0 - 10.0).abs() < 1e-3, "{px:?}");
            assert!((px[2] * 255.0 - 30.0).abs() < 1e-3, "{px:?}");
        }
    }

    #[test]
    fn nv12_grey_converts_to_grey_and_colour_to_colour() {
        let mut p = Preprocessor::new(
            spec(ChannelOrder::Rgb, Layout::Nchw),
            Colorimetry::Bt601Full,
        );
        let mut t = p.new_input_tensor();
        let (w, h) = (64u32, 48u32);
        // Full-range grey 128 with neutral chroma.
        let mut data = vec![128u8; (w * h) as usize];
        data.extend(std::iter::repeat_n(128u8, (w * h / 2) as usize));
        p.run(&frame(PixelFormat::Nv12, w, h, w, data), &mut t)
            .expect("preprocess");
        for &x in f32s(&t) {
            assert!((x * 255.0 - 128.0).abs() <= 2.0, "{x}");
        }
        // Strong V (red) chroma must make red > blue.
        let mut data = vec![100u8; (w * h) as usize];
        for uv in 0..(w * h / 4) {
            let _ = uv;
            data.extend_from_slice(&[128, 220]);
        }
        p.run(&frame(PixelFormat::Nv12, w, h, w, data), &mut t)
            .expect("preprocess");
        let v = f32s(&t);
        assert!(v[0] > v[2 * 48] + 0.3, "r={} b={}", v[0], v[2 * 48]);
    }

    #[test]
    fn yuyv_converts() {
        let mut p = Preprocessor::new(
            spec(ChannelOrder::Bgr, Layout::Nchw),
            Colorimetry::Bt601Full,
        );
        let mut t = p.new_input_tensor();
        let (w, h) = (16u32, 12u32);
        let data: Vec<u8> = std::iter::repeat_n([200u8, 128, 200, 128], (w * h / 2) as usize)
            .flatten()
            .collect();
        p.run(&frame(PixelFormat::Yuyv, w, h, w * 2, data), &mut t)
            .expect("preprocess");
        for &x in f32s(&t) {
            assert!((x * 255.0 - 200.0).abs() <= 2.0, "{x}");
        }
    }

    #[test]
    fn short_frame_is_refused_with_sizes() {
        let mut p = Preprocessor::new(
            spec(ChannelOrder::Rgb, Layout::Nchw),
            Colorimetry::Bt601Limited,
        );
        let mut t = p.new_input_tensor();
        let err = p
            .run(&frame(PixelFormat::Nv12, 64, 48, 64, vec![0; 100]), &mut t)
            .expect_err("short frame");
        let msg = err.to_string();
        assert!(msg.contains("needs 4608 bytes, got 100"), "{msg}");
    }

    #[test]
    fn int8_input_is_quantised() {
        let mut s = spec(ChannelOrder::Rgb, Layout::Nhwc);
        s.dtype = DType::I8;
        s.quant = Some(Quant {
            scale: 1.0 / 255.0,
            zero_point: -128,
        });
        let mut p = Preprocessor::new(s, Colorimetry::Bt601Limited);
        let mut t = p.new_input_tensor();
        let f = frame(
            PixelFormat::Rgb24,
            8,
            6,
            24,
            solid_rgb(8, 6, 24, [0, 128, 255]),
        );
        p.run(&f, &mut t).expect("preprocess");
        let TensorData::I8(v) = &t.data else {
            panic!("not i8")
        };
        assert_eq!(&v[..3], &[-128, 0, 127]);
    }
}
