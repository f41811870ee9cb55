//! CPU inference with rten (pure Rust, loads `.onnx` directly).
//!
//! Chosen over tract-onnx by measurement: see `docs/inference-backends.md`.

use std::path::Path;
use std::sync::Arc;

use rten::{Model, ModelOptions, NodeId, RunOptions, ThreadPool};
use rten_tensor::Layout as _;
use rten_tensor::{NdTensor, NdTensorView};

use super::{InferError, InferenceBackend, TensorSpec};
use crate::tensor::{DType, Layout, Tensor, TensorData};

const NAME: &str = "rten";

/// An ONNX model on the CPU, f32 in and out, one NCHW input.
pub struct RtenBackend {
    model: Model,
    input_id: NodeId,
    output_ids: Vec<NodeId>,
    input: TensorSpec,
    run_opts: RunOptions,
    outputs: Vec<Tensor>,
}

impl std::fmt::Debug for RtenBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtenBackend")
            .field("input", &self.input)
            .field("outputs", &self.output_ids.len())
            .finish()
    }
}

impl RtenBackend {
    /// Load `path`; `threads` = 0 uses rten's default pool (one thread per
    /// physical core, or `RTEN_NUM_THREADS`).
    pub fn load(path: &Path, threads: usize) -> Result<Self, InferError> {
        let load_err = |reason: String| InferError::Load {
            backend: NAME,
            path: path.display().to_string(),
            reason,
        };
        let model = ModelOptions::with_all_ops()
            .load_file(path)
            .map_err(|e| load_err(e.to_string()))?;
        let &input_id = model
            .input_ids()
            .first()
            .ok_or_else(|| load_err("model has no input".into()))?;
        let output_ids = model.output_ids().to_vec();
        if output_ids.is_empty() {
            return Err(load_err("model has no output".into()));
        }
        let info = model
            .node_info(input_id)
            .ok_or_else(|| load_err("input node has no info".into()))?;
        let name = info.name().unwrap_or("input").to_string();
        let shape = info
            .shape()
            .ok_or_else(|| load_err("input has no declared shape".into()))?
            .iter()
            .map(|d| match d {
                rten::Dimension::Fixed(n) => Ok(*n),
                rten::Dimension::Symbolic(s) => {
                    Err(load_err(format!("input dimension {s} is not fixed")))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if shape.len() != 4 {
            return Err(load_err(format!("input shape {shape:?} is not 4-D (NCHW)")));
        }
        let mut run_opts = RunOptions::default();
        if threads > 0 {
            run_opts.thread_pool = Some(Arc::new(ThreadPool::with_num_threads(threads)));
        }
        Ok(Self {
            model,
            input_id,
            output_ids,
            input: TensorSpec {
                name,
                shape,
                layout: Layout::Nchw,
                dtype: DType::F32,
            },
            run_opts,
            outputs: Vec::new(),
        })
    }
}

impl InferenceBackend for RtenBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn input(&self) -> &TensorSpec {
        &self.input
    }

    fn infer(&mut self, input: &Tensor) -> Result<&[Tensor], InferError> {
        let bad_input = || InferError::Input {
            backend: NAME,
            got: format!("{:?} {:?}", input.shape, input.data.dtype()),
            want: format!("{:?} f32 nchw", self.input.shape),
        };
        let TensorData::F32(data) = &input.data else {
            return Err(bad_input());
        };
        if input.shape != self.input.shape || input.layout != Layout::Nchw {
            return Err(bad_input());
        }
        let shape: [usize; 4] = [
            self.input.shape[0],
            self.input.shape[1],
            self.input.shape[2],
            self.input.shape[3],
        ];
        let view = NdTensorView::from_data(shape, data.as_slice());
        let results = self
            .model
            .run(
                vec![(self.input_id, view.into())],
                &self.output_ids,
                Some(self.run_opts.clone()),
            )
            .map_err(|e| InferError::Run {
                backend: NAME,
                reason: e.to_string(),
            })?;
        self.outputs.clear();
        for value in results {
            let t: NdTensor<f32, 4> = value.try_into().map_err(|e| InferError::Run {
                backend: NAME,
                reason: format!("output is not a 4-D f32 tensor: {e:?}"),
            })?;
            let shape = t.shape().to_vec();
            self.outputs
                .push(Tensor::f32(shape, Layout::Nchw, t.into_data()));
        }
        Ok(&self.outputs)
    }
}
