//! NPU inference through Rockchip's RKNN runtime.
//!
//! A thin binding of the C API loaded at run time ([`ffi`]): `rknn-rs`
//! links the library at build time (no x86 CI, no host tests) and has no
//! zero-copy API, and `rknpu2` declares `rknn_context` 64-bit on 32-bit
//! ARM. See `docs/npu.md`.
//!
//! Two I/O styles, chosen by the board profile:
//! - [`IoStyle::InputsSet`]: `rknn_inputs_set` / `rknn_outputs_get`, the
//!   runtime converts layouts (RK3566/68/88).
//! - [`IoStyle::ZeroCopy`]: `rknn_create_mem` / `rknn_set_io_mem`; we
//!   write pixels in the input's native stride and read outputs in their
//!   native layout (NC1HWC2 or NHWC). The only style RV1106 has.
//!
//! Outputs stay int8 with their zero point and scale; the decoders
//! dequantise the few values they read.

pub mod ffi;

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use super::{InferError, InferenceBackend, TensorSpec};
use crate::tensor::{DType, Layout, Quant, Tensor, TensorData};
use ffi::{Api, Context, TensorAttr, TensorMem};

const NAME: &str = "rknn";

/// The oldest NPU kernel driver this binding has been written against.
pub const MIN_DRIVER: (u32, u32, u32) = (0, 8, 0);

/// How tensors reach the NPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoStyle {
    InputsSet,
    ZeroCopy,
}

/// Where the runtime is and how to drive it: from the board profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RknnOptions {
    /// `librknnrt.so`, `librknnmrt.so` or a path.
    pub library: PathBuf,
    pub io: IoStyle,
    /// `rknn_core_mask`; 0 lets the runtime choose (and is not set).
    pub core_mask: u32,
}

impl RknnOptions {
    /// The NPU settings of a board, or `None` for a board without one.
    pub fn from_profile(p: &boards::Profile) -> Option<Self> {
        let io = match p.npu.api {
            boards::NpuApi::InputsSet => IoStyle::InputsSet,
            boards::NpuApi::ZeroCopy => IoStyle::ZeroCopy,
            boards::NpuApi::None => return None,
        };
        Some(Self {
            library: PathBuf::from(p.npu.runtime.clone()?),
            io,
            core_mask: core_mask(&p.npu.cores, p.soc.npu_cores()),
        })
    }
}

/// `rknn_core_mask` for the listed cores: bit n is core n. Single-core
/// NPUs take no mask (RK3568's runtime refuses one), so 0 there.
pub fn core_mask(cores: &[u8], soc_cores: u8) -> u32 {
    if soc_cores <= 1 {
        return 0;
    }
    cores
        .iter()
        .filter(|&&c| c < soc_cores)
        .fold(0, |m, &c| m | 1 << c)
}

/// Why the NPU could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RknnError {
    #[error(transparent)]
    Library(#[from] ffi::LoadError),
    #[error("{lib}: {call} returned {name} ({code}){hint}")]
    Call {
        lib: String,
        call: &'static str,
        code: i32,
        name: &'static str,
        hint: String,
    },
    #[error("model {path}: {reason}")]
    ModelFile { path: String, reason: String },
    #[error("{lib}: {reason}")]
    Version { lib: String, reason: String },
    #[error("{lib}: {reason}")]
    Unsupported { lib: String, reason: String },
    #[error("{what}: {reason}")]
    Tensor { what: String, reason: String },
}

impl From<RknnError> for InferError {
    fn from(e: RknnError) -> Self {
        InferError::Run {
            backend: NAME,
            reason: e.to_string(),
        }
    }
}

fn check(api: &Api, call: &'static str, code: i32) -> Result<(), RknnError> {
    if code >= 0 {
        return Ok(());
    }
    let (name, hint) = ffi::describe(code);
    Err(RknnError::Call {
        lib: api.lib.clone(),
        call,
        code,
        name,
        hint: if hint.is_empty() {
            String::new()
        } else {
            format!(": {hint}")
        },
    })
}

/// Memory the runtime allocated for zero-copy I/O.
#[derive(Debug)]
struct Mem(NonNull<TensorMem>);

impl Mem {
    fn bytes(&self) -> &[u8] {
        // SAFETY: the runtime allocated `size` bytes at `virt_addr`; they
        // live until `rknn_destroy_mem` in `Drop`.
        unsafe {
            let m = self.0.as_ref();
            std::slice::from_raw_parts(m.virt_addr.cast::<u8>(), m.size as usize)
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes the access unique.
        unsafe {
            let m = self.0.as_ref();
            std::slice::from_raw_parts_mut(m.virt_addr.cast::<u8>(), m.size as usize)
        }
    }
}

#[derive(Debug)]
struct OutputSlot {
    /// How the runtime hands this output over (native attribute in
    /// zero-copy, the plain one otherwise).
    attr: TensorAttr,
    mem: Option<Mem>,
    /// NCHW channels/height/width of the logical tensor.
    chw: (usize, usize, usize),
    /// Float outputs in zero-copy: the native values as f32, before
    /// reordering.
    scratch: Vec<f32>,
}

/// One model on the NPU.
#[derive(Debug)]
pub struct RknnBackend {
    api: Api,
    ctx: Context,
    opts: RknnOptions,
    input: TensorSpec,
    input_attr: TensorAttr,
    input_mem: Option<Mem>,
    slots: Vec<OutputSlot>,
    outputs: Vec<Tensor>,
    versions: (String, String),
}

// SAFETY: the context and its memories are used only through `&mut self`
// (one thread at a time); the RKNN runtime allows a context to move
// between threads.
unsafe impl Send for RknnBackend {}

impl RknnBackend {
    /// Load the runtime and the model, check both fit, and set up I/O.
    pub fn load(model: &Path, opts: &RknnOptions) -> Result<Self, InferError> {
        Self::try_load(model, opts).map_err(|e| InferError::Load {
            backend: NAME,
            path: model.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// The runtime's API and driver versions.
    pub fn versions(&self) -> (&str, &str) {
        (&self.versions.0, &self.versions.1)
    }

    fn try_load(model: &Path, opts: &RknnOptions) -> Result<Self, RknnError> {
        let api = Api::load(&opts.library)?;
        let mut bytes = std::fs::read(model).map_err(|e| RknnError::ModelFile {
            path: model.display().to_string(),
            reason: e.to_string(),
        })?;
        let len = u32::try_from(bytes.len()).map_err(|_| RknnError::ModelFile {
            path: model.display().to_string(),
            reason: "larger than 4 GiB".into(),
        })?;
        let mut ctx: Context = 0;
        // SAFETY: `bytes` is readable for `len` bytes during the call (the
        // runtime copies the model); `ctx` is writable.
        let code = unsafe {
            (api.init)(
                &mut ctx,
                bytes.as_mut_ptr().cast::<c_void>(),
                len,
                0,
                std::ptr::null_mut(),
            )
        };
        check(&api, "rknn_init", code)?;
        // From here on `Drop` releases the context, also on error.
        let mut me = Self {
            api,
            ctx,
            opts: opts.clone(),
            input: TensorSpec {
                name: String::new(),
                shape: Vec::new(),
                layout: Layout::Nhwc,
                dtype: DType::U8,
            },
            input_attr: TensorAttr::with_index(0),
            input_mem: None,
            slots: Vec::new(),
            outputs: Vec::new(),
            versions: (String::new(), String::new()),
        };
        me.check_versions()?;
        me.setup()?;
        Ok(me)
    }

    fn query<T>(&self, cmd: i32, info: &mut T, call: &'static str) -> Result<(), RknnError> {
        let size = u32::try_from(size_of::<T>()).unwrap_or(u32::MAX);
        // SAFETY: `info` is a repr(C) struct of the size the command
        // expects (the runtime checks `size`).
        let code =
            unsafe { (self.api.query)(self.ctx, cmd, std::ptr::from_mut(info).cast(), size) };
        check(&self.api, call, code)
    }

    fn attr(&self, cmd: i32, index: u32) -> Result<TensorAttr, RknnError> {
        let mut a = TensorAttr::with_index(index);
        self.query(cmd, &mut a, "rknn_query(tensor attribute)")?;
        Ok(a)
    }

    fn check_versions(&mut self) -> Result<(), RknnError> {
        let mut v = ffi::SdkVersion {
            api_version: [0; 256],
            drv_version: [0; 256],
        };
        self.query(ffi::QUERY_SDK_VERSION, &mut v, "rknn_query(SDK_VERSION)")?;
        let text = |b: &[u8]| {
            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
            String::from_utf8_lossy(&b[..end]).trim().to_string()
        };
        let (api_v, drv_v) = (text(&v.api_version), text(&v.drv_version));
        let bad = |reason: String| RknnError::Version {
            lib: self.api.lib.clone(),
            reason,
        };
        let api = parse_version(&api_v)
            .ok_or_else(|| bad(format!("unreadable runtime version {api_v:?}")))?;
        // RKNN2 runtimes are 1.x and 2.x; Toolkit1's (RV1109/RV1126) has
        // another ABI altogether.
        if !(1..=2).contains(&api.0) {
            return Err(bad(format!(
                "runtime API {api_v} does not fit: this binding speaks the RKNN2 API (1.x, 2.x)"
            )));
        }
        let drv = parse_version(&drv_v)
            .ok_or_else(|| bad(format!("unreadable NPU driver version {drv_v:?}")))?;
        if drv < MIN_DRIVER {
            let (a, b, c) = MIN_DRIVER;
            return Err(bad(format!(
                "NPU driver {drv_v} is older than {a}.{b}.{c}, the oldest this runtime works with; \
                 update the kernel's rknpu driver"
            )));
        }
        tracing::debug!(lib = %self.api.lib, api = %api_v, driver = %drv_v, "RKNN runtime");
        self.versions = (api_v, drv_v);
        Ok(())
    }

    // Once at load, not per frame: the runtime's checks and buffer set-up
    // read best in the order the RKNN API wants them.
    #[allow(clippy::too_many_lines)]
    fn setup(&mut self) -> Result<(), RknnError> {
        let lib = self.api.lib.clone();
        let unsupported = |reason: String| RknnError::Unsupported {
            lib: lib.clone(),
            reason,
        };
        let mut n = ffi::InputOutputNum::default();
        self.query(ffi::QUERY_IN_OUT_NUM, &mut n, "rknn_query(IN_OUT_NUM)")?;
        if n.n_input != 1 || n.n_output == 0 {
            return Err(RknnError::Tensor {
                what: "model".into(),
                reason: format!(
                    "has {} inputs and {} outputs; an image model has one input",
                    n.n_input, n.n_output
                ),
            });
        }
        if self.opts.core_mask != 0 {
            let f = self.api.set_core_mask.ok_or_else(|| {
                unsupported("no rknn_set_core_mask, but the board profile lists NPU cores".into())
            })?;
            // SAFETY: plain values.
            let code = unsafe { f(self.ctx, self.opts.core_mask) };
            check(&self.api, "rknn_set_core_mask", code)?;
        }
        let zero_copy = self.opts.io == IoStyle::ZeroCopy;
        if zero_copy {
            for (have, name) in [
                (self.api.create_mem.is_some(), "rknn_create_mem"),
                (self.api.set_io_mem.is_some(), "rknn_set_io_mem"),
                (self.api.destroy_mem.is_some(), "rknn_destroy_mem"),
            ] {
                if !have {
                    return Err(unsupported(format!(
                        "no {name}: this runtime has no zero-copy API; set npu.api = \"inputs-set\""
                    )));
                }
            }
        } else if self.api.inputs_set.is_none() || self.api.outputs_get.is_none() {
            return Err(unsupported(
                "no rknn_inputs_set/rknn_outputs_get: a zero-copy-only runtime (RV1106's \
                 librknnmrt.so); set npu.api = \"zero-copy\" in the board profile"
                    .into(),
            ));
        }

        // Input: one image, NHWC uint8 pixels; normalisation is in the model.
        let in_cmd = if zero_copy {
            ffi::QUERY_NATIVE_INPUT_ATTR
        } else {
            ffi::QUERY_INPUT_ATTR
        };
        let mut ia = self.attr(in_cmd, 0)?;
        let (h, w, c) = match (ia.fmt, ia.dims()) {
            (ffi::FMT_NHWC, &[1, h, w, c]) => (h, w, c),
            (ffi::FMT_NCHW, &[1, c, h, w]) => (h, w, c),
            (fmt, dims) => {
                return Err(RknnError::Tensor {
                    what: "input 0".into(),
                    reason: format!("layout {fmt} with dims {dims:?} is not an image"),
                });
            }
        };
        if c != 3 {
            return Err(RknnError::Tensor {
                what: "input 0".into(),
                reason: format!("has {c} channels; the camera gives 3"),
            });
        }
        self.input = TensorSpec {
            name: ia.name(),
            shape: vec![1, h as usize, w as usize, 3],
            layout: Layout::Nhwc,
            dtype: DType::U8,
        };
        // We hand over uint8 pixels; the runtime applies the model's
        // mean/std and quantisation on the way in.
        ia.type_ = ffi::TYPE_UINT8;
        ia.fmt = ffi::FMT_NHWC;
        ia.pass_through = 0;
        if zero_copy {
            let stride = ia.w_stride.max(w) as usize;
            let size = (h as usize * stride * 3) as u32;
            ia.w_stride = stride as u32;
            ia.size_with_stride = ia.size_with_stride.max(size);
            let mem = self.create_mem(ia.size_with_stride)?;
            self.set_io_mem(&mem, &mut ia)?;
            self.input_mem = Some(mem);
        }
        self.input_attr = ia;

        // Outputs.
        for i in 0..n.n_output {
            let logical = self.attr(ffi::QUERY_OUTPUT_ATTR, i)?;
            let chw = match logical.dims() {
                &[1, c, h, w] => (c as usize, h as usize, w as usize),
                &[c, h, w] => (c as usize, h as usize, w as usize),
                d => {
                    return Err(RknnError::Tensor {
                        what: format!("output {i}"),
                        reason: format!("dims {d:?} are not 3-D or 4-D"),
                    });
                }
            };
            let mut attr = if zero_copy {
                self.attr(ffi::QUERY_NATIVE_OUTPUT_ATTR, i)?
            } else {
                logical
            };
            // int8/uint8 stay quantised; float16 outputs (hybrid
            // quantisation keeps FastestDet's head in fp16) become f32.
            let float = match (attr.type_, attr.qnt_type) {
                (ffi::TYPE_INT8 | ffi::TYPE_UINT8, ffi::QNT_AFFINE_ASYMMETRIC | ffi::QNT_NONE) => {
                    false
                }
                (ffi::TYPE_FLOAT16 | ffi::TYPE_FLOAT32, _) => true,
                (t, q) => {
                    return Err(RknnError::Tensor {
                        what: format!("output {i} ({})", attr.name()),
                        reason: format!(
                            "type {t} with quantisation {q}; this binding reads affine int8/uint8, \
                             float16 and float32 outputs"
                        ),
                    });
                }
            };
            let mem = if zero_copy {
                if !matches!(attr.fmt, ffi::FMT_NC1HWC2 | ffi::FMT_NHWC | ffi::FMT_NCHW) {
                    return Err(RknnError::Tensor {
                        what: format!("output {i}"),
                        reason: format!("native layout {} is not NCHW, NHWC or NC1HWC2", attr.fmt),
                    });
                }
                let size = attr.size_with_stride.max(attr.size);
                let mem = self.create_mem(size)?;
                self.set_io_mem(&mem, &mut attr)?;
                Some(mem)
            } else {
                None
            };
            let (c, h, w) = chw;
            let quant = Some(Quant {
                scale: if attr.qnt_type == ffi::QNT_NONE {
                    1.0
                } else {
                    attr.scale
                },
                zero_point: if attr.qnt_type == ffi::QNT_NONE {
                    0
                } else {
                    attr.zp
                },
            });
            // NHWC native outputs are read in place; the others as NCHW.
            let (shape, layout) = if zero_copy && attr.fmt == ffi::FMT_NHWC {
                (vec![1, h, w, c], Layout::Nhwc)
            } else {
                (vec![1, c, h, w], Layout::Nchw)
            };
            let data = match attr.type_ {
                _ if float => TensorData::F32(vec![0.0; c * h * w]),
                ffi::TYPE_UINT8 => TensorData::U8(vec![0; c * h * w]),
                _ => TensorData::I8(vec![0; c * h * w]),
            };
            self.outputs.push(Tensor {
                shape,
                layout,
                quant,
                data,
            });
            let scratch = if float && zero_copy {
                vec![0.0; (attr.size_with_stride.max(attr.size) / 2) as usize]
            } else {
                Vec::new()
            };
            self.slots.push(OutputSlot {
                attr,
                mem,
                chw,
                scratch,
            });
        }
        Ok(())
    }

    fn create_mem(&self, size: u32) -> Result<Mem, RknnError> {
        let f = self.api.create_mem.ok_or_else(|| RknnError::Unsupported {
            lib: self.api.lib.clone(),
            reason: "no rknn_create_mem".into(),
        })?;
        // SAFETY: plain values; the result is checked for null.
        let p = unsafe { f(self.ctx, size) };
        NonNull::new(p).map(Mem).ok_or_else(|| RknnError::Call {
            lib: self.api.lib.clone(),
            call: "rknn_create_mem",
            code: -4,
            name: "NULL",
            hint: format!(": could not allocate {size} bytes of NPU memory"),
        })
    }

    fn set_io_mem(&self, mem: &Mem, attr: &mut TensorAttr) -> Result<(), RknnError> {
        let Some(f) = self.api.set_io_mem else {
            return Ok(());
        };
        // SAFETY: `mem` came from rknn_create_mem on this context; `attr`
        // is a valid attribute the runtime only reads.
        let code = unsafe { f(self.ctx, mem.0.as_ptr(), attr) };
        check(&self.api, "rknn_set_io_mem", code)
    }

    fn sync(&self, mem: &Mem, mode: i32) -> Result<(), RknnError> {
        if let Some(f) = self.api.mem_sync {
            // SAFETY: `mem` came from rknn_create_mem on this context.
            let code = unsafe { f(self.ctx, mem.0.as_ptr(), mode) };
            check(&self.api, "rknn_mem_sync", code)?;
        }
        Ok(())
    }

    fn run_inputs_set(&mut self, pixels: &[u8]) -> Result<(), RknnError> {
        let (Some(set), Some(get)) = (self.api.inputs_set, self.api.outputs_get) else {
            return Err(RknnError::Unsupported {
                lib: self.api.lib.clone(),
                reason: "no rknn_inputs_set".into(),
            });
        };
        let mut input = ffi::Input {
            index: 0,
            buf: pixels.as_ptr().cast_mut().cast(),
            size: pixels.len() as u32,
            pass_through: 0,
            type_: ffi::TYPE_UINT8,
            fmt: ffi::FMT_NHWC,
        };
        // SAFETY: `input` describes `pixels`, which the runtime only reads
        // during the call.
        let code = unsafe { set(self.ctx, 1, &mut input) };
        check(&self.api, "rknn_inputs_set", code).map_err(|e| match e {
            RknnError::Call { code: -1, .. } => RknnError::Unsupported {
                lib: self.api.lib.clone(),
                reason: "rknn_inputs_set failed (RKNN_ERR_FAIL): a zero-copy-only runtime \
                         (RV1106)? set npu.api = \"zero-copy\" in the board profile"
                    .into(),
            },
            e => e,
        })?;
        // SAFETY: no extension argument.
        let code = unsafe { (self.api.run)(self.ctx, std::ptr::null_mut()) };
        check(&self.api, "rknn_run", code)?;
        // Outputs land straight in our tensors (preallocated).
        let mut outs: Vec<ffi::Output> = self
            .outputs
            .iter_mut()
            .enumerate()
            .map(|(i, t)| {
                let (buf, size): (*mut c_void, usize) = match &mut t.data {
                    TensorData::I8(v) => (v.as_mut_ptr().cast(), v.len()),
                    TensorData::U8(v) => (v.as_mut_ptr().cast(), v.len()),
                    TensorData::F32(v) => (v.as_mut_ptr().cast(), v.len() * 4),
                };
                ffi::Output {
                    // Float outputs come as f32 (the runtime converts fp16).
                    want_float: u8::from(matches!(t.data, TensorData::F32(_))),
                    is_prealloc: 1,
                    index: i as u32,
                    buf,
                    size: size as u32,
                }
            })
            .collect();
        let n = outs.len() as u32;
        // SAFETY: each output points at a buffer of `size` bytes we own
        // and do not touch during the call.
        let code = unsafe { get(self.ctx, n, outs.as_mut_ptr(), std::ptr::null_mut()) };
        check(&self.api, "rknn_outputs_get", code)?;
        if let Some(release) = self.api.outputs_release {
            // SAFETY: `outs` is what rknn_outputs_get filled.
            let code = unsafe { release(self.ctx, n, outs.as_mut_ptr()) };
            check(&self.api, "rknn_outputs_release", code)?;
        }
        Ok(())
    }

    fn run_zero_copy(&mut self, pixels: &[u8]) -> Result<(), RknnError> {
        let (h, w) = (self.input.shape[1], self.input.shape[2]);
        let stride = self.input_attr.w_stride as usize * 3;
        let mem = self
            .input_mem
            .as_mut()
            .ok_or_else(|| RknnError::Unsupported {
                lib: self.api.lib.clone(),
                reason: "no input memory".into(),
            })?;
        let dst = mem.bytes_mut();
        let row = w * 3;
        if stride == row {
            dst[..h * row].copy_from_slice(&pixels[..h * row]);
        } else {
            for y in 0..h {
                dst[y * stride..y * stride + row].copy_from_slice(&pixels[y * row..(y + 1) * row]);
            }
        }
        if let Some(mem) = &self.input_mem {
            self.sync(mem, ffi::MEM_SYNC_TO_DEVICE)?;
        }
        // SAFETY: no extension argument.
        let code = unsafe { (self.api.run)(self.ctx, std::ptr::null_mut()) };
        check(&self.api, "rknn_run", code)?;
        for (slot, out) in self.slots.iter_mut().zip(self.outputs.iter_mut()) {
            let Some(mem) = &slot.mem else { continue };
            if let Some(f) = self.api.mem_sync {
                // SAFETY: `mem` came from rknn_create_mem on this context.
                let code = unsafe { f(self.ctx, mem.0.as_ptr(), ffi::MEM_SYNC_FROM_DEVICE) };
                check(&self.api, "rknn_mem_sync", code)?;
            }
            let src = mem.bytes();
            let c2 = slot.attr.dims().get(4).copied().unwrap_or(16).max(1) as usize;
            let nc1hwc2 = slot.attr.fmt == ffi::FMT_NC1HWC2;
            match &mut out.data {
                TensorData::F32(dst) => {
                    let native = &mut slot.scratch;
                    match slot.attr.type_ {
                        ffi::TYPE_FLOAT16 => {
                            for (d, b) in native.iter_mut().zip(src.chunks_exact(2)) {
                                *d = half::f16::from_ne_bytes([b[0], b[1]]).to_f32();
                            }
                        }
                        _ => {
                            for (d, b) in native.iter_mut().zip(src.chunks_exact(4)) {
                                *d = f32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                            }
                        }
                    }
                    if nc1hwc2 {
                        nc1hwc2_to_nchw(native, slot.chw, c2, dst);
                    } else {
                        let n = dst.len();
                        dst.copy_from_slice(&native[..n]);
                    }
                }
                TensorData::I8(v) => {
                    // SAFETY: i8 and u8 have the same size and layout.
                    let dst = unsafe {
                        std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len())
                    };
                    copy_native(src, slot.chw, nc1hwc2.then_some(c2), dst);
                }
                TensorData::U8(dst) => copy_native(src, slot.chw, nc1hwc2.then_some(c2), dst),
            }
        }
        Ok(())
    }
}

/// Copy a one-byte-per-element native output into NCHW (from NC1HWC2) or
/// as it is (NCHW, NHWC).
fn copy_native(src: &[u8], chw: (usize, usize, usize), c2: Option<usize>, dst: &mut [u8]) {
    match c2 {
        Some(c2) => nc1hwc2_to_nchw(src, chw, c2, dst),
        None => {
            let n = dst.len();
            dst.copy_from_slice(&src[..n]);
        }
    }
}

impl Drop for RknnBackend {
    fn drop(&mut self) {
        if let Some(f) = self.api.destroy_mem {
            for mem in self
                .input_mem
                .take()
                .into_iter()
                .chain(self.slots.iter_mut().filter_map(|s| s.mem.take()))
            {
                // SAFETY: each memory came from rknn_create_mem on this
                // context and is dropped from our side here.
                unsafe { f(self.ctx, mem.0.as_ptr()) };
            }
        }
        // SAFETY: the context was initialised and is not used afterwards.
        unsafe { (self.api.destroy)(self.ctx) };
    }
}

/// Rewrite an NC1HWC2 tensor (channels in blocks of `c2`, the last block
/// padded) as NCHW.
pub fn nc1hwc2_to_nchw<T: Copy>(
    src: &[T],
    (c, h, w): (usize, usize, usize),
    c2: usize,
    dst: &mut [T],
) {
    let hw = h * w;
    for ch in 0..c {
        let (block, lane) = (ch / c2, ch % c2);
        let base = block * hw * c2 + lane;
        for (i, d) in dst[ch * hw..(ch + 1) * hw].iter_mut().enumerate() {
            *d = src[base + i * c2];
        }
    }
}

/// Leading `major.minor.patch` of a version string such as
/// `"2.3.0 (c949ad889d@2024-11-07)"` or `"0.9.8"`.
pub fn parse_version(s: &str) -> Option<(u32, u32, u32)> {
    let head = s
        .trim()
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?;
    let mut it = head.split('.').map(|p| p.parse::<u32>().ok());
    let major = it.next()??;
    let minor = it.next().flatten().unwrap_or(0);
    let patch = it.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

impl InferenceBackend for RknnBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn input(&self) -> &TensorSpec {
        &self.input
    }

    fn infer(&mut self, input: &Tensor) -> Result<&[Tensor], InferError> {
        let TensorData::U8(pixels) = &input.data else {
            return Err(self.bad_input(input));
        };
        if input.shape != self.input.shape || input.layout != Layout::Nhwc {
            return Err(self.bad_input(input));
        }
        match self.opts.io {
            IoStyle::InputsSet => self.run_inputs_set(pixels)?,
            IoStyle::ZeroCopy => self.run_zero_copy(pixels)?,
        }
        Ok(&self.outputs)
    }
}

impl RknnBackend {
    fn bad_input(&self, input: &Tensor) -> InferError {
        InferError::Input {
            backend: NAME,
            got: format!(
                "{:?} {:?} {:?}",
                input.shape,
                input.data.dtype(),
                input.layout
            ),
            want: format!("{:?} u8 nhwc", self.input.shape),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_mask_sets_one_bit_per_core_on_multi_core_npus() {
        assert_eq!(core_mask(&[0, 1, 2], 3), 0b111);
        assert_eq!(core_mask(&[2], 3), 0b100);
        assert_eq!(core_mask(&[0], 1), 0, "single core: no mask");
        assert_eq!(core_mask(&[], 3), 0, "no cores listed: runtime's choice");
    }

    #[test]
    fn nc1hwc2_is_rewritten_as_nchw() {
        // 3 channels in blocks of 2 (second block padded), 1×2 spatial.
        let (c, h, w, c2) = (3, 1, 2, 2);
        let mut src = vec![0u8; 2 * h * w * c2];
        for ch in 0..c {
            for x in 0..w {
                src[((ch / c2) * h * w + x) * c2 + ch % c2] = (10 * ch + x) as u8;
            }
        }
        let mut dst = vec![0u8; c * h * w];
        nc1hwc2_to_nchw(&src, (c, h, w), c2, &mut dst);
        assert_eq!(dst, [0, 1, 10, 11, 20, 21]);
    }

    #[test]
    fn versions_parse_with_build_suffixes() {
        assert_eq!(
            parse_version("2.3.0 (c949ad889d@2024-11-07T11:35:33)"),
            Some((2, 3, 0))
        );
        assert_eq!(parse_version("0.9.8"), Some((0, 9, 8)));
        assert_eq!(parse_version("1.6"), Some((1, 6, 0)));
        assert_eq!(parse_version("unknown"), None);
    }
}
