//! Detection: inference backends, output decoders and NMS.
//!
//! [`InferenceBackend`] is shaped for NPUs as well as CPUs: tensors carry
//! their element type (f32, int8, uint8), layout (NCHW/NHWC) and
//! quantisation parameters, and a backend owns its output buffers so an NPU
//! backend can hand out views of device memory later. Decoders
//! ([`OutputDecoder`]) turn raw outputs into boxes in original-image pixels;
//! FastestDet's is here, YOLOv5/v8 or SSD heads go beside it.

// Functions on the per-frame path stay short enough to read whole
// (clippy.toml: 80 lines).
#![warn(clippy::too_many_lines)]

#[cfg(feature = "cpu")]
pub mod cpu;
pub mod fastestdet;
#[cfg(feature = "rknn")]
pub mod rknn;

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use camera_core::detection::{BBox, Detection, nms};

use crate::capture::Frame;
use crate::preprocess::{PreprocessError, PreprocessTimings, Preprocessor};
use crate::tensor::{DType, Layout, Tensor};

/// What a backend's input or output looks like.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub layout: Layout,
    pub dtype: DType,
}

/// Errors from running a model.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("{backend}: cannot load model {path}: {reason}")]
    Load {
        backend: &'static str,
        path: String,
        reason: String,
    },
    #[error("{backend}: input tensor is {got}, the model wants {want}")]
    Input {
        backend: &'static str,
        got: String,
        want: String,
    },
    #[error("{backend}: inference failed: {reason}")]
    Run {
        backend: &'static str,
        reason: String,
    },
}

/// Errors from decoding model outputs.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("expected {expected} output tensors, got {got}")]
    OutputCount { expected: usize, got: usize },
    #[error("{decoder}: output shape {shape:?} is not {expected}")]
    Shape {
        decoder: &'static str,
        shape: Vec<usize>,
        expected: &'static str,
    },
}

/// Errors from detecting objects in one frame.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Runs a model on an input tensor.
pub trait InferenceBackend: fmt::Debug + Send {
    /// Short name for logs and benchmarks ("rten", "rknn").
    fn name(&self) -> &'static str;

    /// The model's (first) input.
    fn input(&self) -> &TensorSpec;

    /// Run the model; the outputs stay valid until the next call.
    fn infer(&mut self, input: &Tensor) -> Result<&[Tensor], InferError>;
}

/// Turns a model's raw outputs into detections in image pixels.
pub trait OutputDecoder: fmt::Debug + Send {
    /// Append detections scoring above `score_threshold` to `out`. `image`
    /// is the original image's (width, height).
    fn decode(
        &self,
        outputs: &[Tensor],
        image: (u32, u32),
        score_threshold: f32,
        out: &mut Vec<Detection>,
    ) -> Result<(), DecodeError>;
}

/// The decoders this build knows, named in model manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecoderKind {
    Fastestdet,
}

impl DecoderKind {
    pub fn build(self) -> Box<dyn OutputDecoder> {
        match self {
            Self::Fastestdet => Box::new(fastestdet::FastestDet),
        }
    }
}

/// Post-processing settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorSettings {
    pub score_threshold: f32,
    pub nms_iou: f32,
    /// Class ids to keep; empty keeps all.
    pub classes: Vec<u16>,
}

/// Time spent in each stage of the last [`Detector::detect`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetectTimings {
    pub preprocess: PreprocessTimings,
    pub inference: Duration,
    pub decode_nms: Duration,
}

/// Frame → detections for one model: preprocess, infer, decode, NMS.
#[derive(Debug)]
pub struct Detector {
    pre: Preprocessor,
    backend: Box<dyn InferenceBackend>,
    decoder: Box<dyn OutputDecoder>,
    settings: DetectorSettings,
    input: Tensor,
    dets: Vec<Detection>,
    timings: DetectTimings,
}

impl Detector {
    /// Put the stages together. The preprocessor's tensor must fit the
    /// backend's input.
    pub fn new(
        pre: Preprocessor,
        backend: Box<dyn InferenceBackend>,
        decoder: Box<dyn OutputDecoder>,
        settings: DetectorSettings,
    ) -> Result<Self, InferError> {
        let input = pre.new_input_tensor();
        let want = backend.input();
        if want.shape != input.shape || want.dtype != input.data.dtype() {
            return Err(InferError::Input {
                backend: backend.name(),
                got: format!("{:?} {:?}", input.shape, input.data.dtype()),
                want: format!("{:?} {:?}", want.shape, want.dtype),
            });
        }
        Ok(Self {
            pre,
            backend,
            decoder,
            settings,
            input,
            dets: Vec::with_capacity(64),
            timings: DetectTimings::default(),
        })
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    pub fn settings(&self) -> &DetectorSettings {
        &self.settings
    }

    /// Timings of the last [`Self::detect`].
    pub fn timings(&self) -> DetectTimings {
        self.timings
    }

    /// Detect objects in an uncompressed frame.
    pub fn detect(&mut self, frame: &Frame) -> Result<&[Detection], DetectError> {
        self.pre.run(frame, &mut self.input)?;
        self.timings.preprocess = self.pre.timings();
        self.infer_prepared((frame.width, frame.height))
    }

    /// Run inference and post-processing on an input tensor that is already
    /// prepared (for conformance tests against reference tensors).
    pub fn detect_tensor(
        &mut self,
        input: &Tensor,
        image: (u32, u32),
    ) -> Result<&[Detection], DetectError> {
        self.input.clone_from(input);
        self.infer_prepared(image)
    }

    fn infer_prepared(&mut self, image: (u32, u32)) -> Result<&[Detection], DetectError> {
        let t0 = Instant::now();
        let outputs = self.backend.infer(&self.input)?;
        let t1 = Instant::now();
        self.dets.clear();
        self.decoder.decode(
            outputs,
            image,
            self.settings.score_threshold,
            &mut self.dets,
        )?;
        if !self.settings.classes.is_empty() {
            let keep = &self.settings.classes;
            self.dets.retain(|d| keep.contains(&d.class_id));
        }
        nms::greedy_per_class(&mut self.dets, self.settings.nms_iou);
        self.timings.inference = t1 - t0;
        self.timings.decode_nms = t1.elapsed();
        Ok(&self.dets)
    }

    /// Raw outputs for a prepared input (for conformance tests).
    pub fn raw_outputs(&mut self, input: &Tensor) -> Result<&[Tensor], InferError> {
        self.backend.infer(input)
    }
}
