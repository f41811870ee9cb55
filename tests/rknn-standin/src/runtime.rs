//! The stand-in's contexts and their state; the C entry points in `lib.rs`
//! only check pointers and forward here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use rten::{Model, ModelOptions, NodeId};
use rten_tensor::{Layout as _, NdTensor, NdTensorView};
use serde::Deserialize;

use crate::abi::{self, Context, Input, Output, TensorAttr, TensorMem};
use crate::container::{self, Header, OutputQuant, OutputType};
use half::f16;

/// Behaviour of one copy of the library, from `standin.toml` beside it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The SoC it pretends to drive: rk3588, rk3568 or rv1106. Models
    /// converted for another platform are refused, as the real runtime
    /// does.
    pub soc: String,
    /// Only the zero-copy API, like RV1106's `librknnmrt.so`.
    pub zero_copy_only: bool,
    pub api_version: String,
    pub driver_version: String,
    /// A nonzero value makes `rknn_run` return it (a driver fault).
    pub fail_run: i32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            soc: "rk3588".into(),
            zero_copy_only: false,
            api_version: "2.3.0 (stand-in)".into(),
            driver_version: "0.9.8".into(),
            fail_run: 0,
        }
    }
}

impl Config {
    /// NPU cores of the pretended SoC.
    fn cores(&self) -> u32 {
        if self.soc == "rk3588" { 3 } else { 1 }
    }
}

/// Channel block of the NC1HWC2 layout: 16 int8 or 8 float16 channels
/// (one 128-bit vector).
fn c2_of(ty: i32) -> usize {
    if ty == abi::TYPE_FLOAT16 { 8 } else { 16 }
}

fn elem_size(ty: i32) -> usize {
    match ty {
        abi::TYPE_FLOAT32 => 4,
        abi::TYPE_FLOAT16 => 2,
        _ => 1,
    }
}

/// `v` as the NPU hands it over: rounded to int8 (and back) or to fp16.
fn npu_value(v: f32, q: &OutputQuant) -> f32 {
    match q.dtype {
        OutputType::Int8 => (f32::from(container::quantise(v, q)) - q.zero_point as f32) * q.scale,
        OutputType::Float16 => f16::from_f32(v).to_f32(),
    }
}

/// One element of an output in type `ty`, appended to `out`.
fn encode(v: f32, q: &OutputQuant, ty: i32, out: &mut Vec<u8>) {
    match ty {
        abi::TYPE_FLOAT32 => out.extend_from_slice(&npu_value(v, q).to_ne_bytes()),
        abi::TYPE_FLOAT16 => out.extend_from_slice(&f16::from_f32(v).to_ne_bytes()),
        _ => out.push(container::quantise(v, q).to_ne_bytes()[0]),
    }
}

#[derive(Debug, Clone, Copy)]
struct IoMem {
    mem: usize,
    attr: TensorAttr,
}

struct Ctx {
    cfg: Config,
    header: Header,
    model: Model,
    input_id: NodeId,
    output_ids: Vec<NodeId>,
    /// NCHW shape of each output, from a dry run at init.
    out_shapes: Vec<[usize; 4]>,
    input: Option<Vec<f32>>,
    outputs: Vec<Vec<f32>>,
    in_mem: Option<IoMem>,
    out_mems: Vec<Option<IoMem>>,
    core_mask: u32,
    /// Buffers handed out by `rknn_outputs_get` (address → buffer).
    lent: BTreeMap<usize, Box<[u8]>>,
}

static CONTEXTS: Mutex<BTreeMap<Context, Ctx>> = Mutex::new(BTreeMap::new());
static NEXT: AtomicU32 = AtomicU32::new(1);

fn with_ctx<T>(ctx: Context, f: impl FnOnce(&mut Ctx) -> Result<T, i32>) -> Result<T, i32> {
    let mut all = CONTEXTS.lock().map_err(|_| abi::ERR_FAIL)?;
    let c = all.get_mut(&ctx).ok_or(abi::ERR_CTX_INVALID)?;
    f(c)
}

fn code(r: Result<(), i32>) -> i32 {
    r.err().unwrap_or(abi::SUCC)
}

/// Where this copy of the library lives, to find its `standin.toml`.
fn own_dir() -> Option<PathBuf> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    let addr = crate::rknn_init as *const libc::c_void;
    // SAFETY: dladdr only reads the address and fills `info`.
    if unsafe { libc::dladdr(addr, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr returned a NUL-terminated file name.
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = PathBuf::from(name.to_string_lossy().into_owned());
    path.parent().map(PathBuf::from)
}

fn load_config() -> Result<Config, i32> {
    let Some(path) = own_dir().map(|d| d.join("standin.toml")) else {
        return Ok(Config::default());
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            eprintln!("rknn-standin: {}: {e}", path.display());
            abi::ERR_FAIL
        }),
        Err(_) => Ok(Config::default()),
    }
}

pub fn init(bytes: &[u8]) -> Result<Context, i32> {
    let cfg = load_config()?;
    let (header, onnx) = container::parse(bytes).map_err(|e| {
        eprintln!("rknn-standin: {e}");
        abi::ERR_MODEL_INVALID
    })?;
    if header.target != cfg.soc {
        eprintln!(
            "rknn-standin: model is for {}, this is {}",
            header.target, cfg.soc
        );
        return Err(abi::ERR_TARGET_PLATFORM_UNMATCH);
    }
    let model = ModelOptions::with_all_ops()
        .load(onnx.to_vec())
        .map_err(|_| abi::ERR_MODEL_INVALID)?;
    let input_id = *model.input_ids().first().ok_or(abi::ERR_MODEL_INVALID)?;
    let output_ids = model.output_ids().to_vec();
    if output_ids.len() != header.outputs.len() {
        return Err(abi::ERR_MODEL_INVALID);
    }
    let mut ctx = Ctx {
        cfg,
        header,
        model,
        input_id,
        output_ids,
        out_shapes: Vec::new(),
        input: None,
        outputs: Vec::new(),
        in_mem: None,
        out_mems: Vec::new(),
        core_mask: 0,
        lent: BTreeMap::new(),
    };
    // A dry run at the graph's own input size tells the output shapes
    // (ONNX may leave them symbolic). A header that disagrees with the graph
    // is the caller's to notice from the input attribute.
    let (h, w) = ctx.input_hw();
    let declared = ctx
        .model
        .node_info(input_id)
        .and_then(|n| n.shape())
        .and_then(|s| match s.as_slice() {
            [_, _, rten::Dimension::Fixed(h), rten::Dimension::Fixed(w)] => Some((*h, *w)),
            _ => None,
        });
    let (dh, dw) = declared.unwrap_or((h, w));
    ctx.infer_at(vec![0.0; 3 * dh * dw], dh, dw)?;
    ctx.outputs.clear();
    ctx.out_mems = vec![None; ctx.output_ids.len()];
    let handle = Context::from(NEXT.fetch_add(1, Ordering::Relaxed));
    CONTEXTS
        .lock()
        .map_err(|_| abi::ERR_FAIL)?
        .insert(handle, ctx);
    Ok(handle)
}

pub fn destroy(ctx: Context) -> i32 {
    match CONTEXTS.lock() {
        Ok(mut all) => match all.remove(&ctx) {
            Some(_) => abi::SUCC,
            None => abi::ERR_CTX_INVALID,
        },
        Err(_) => abi::ERR_FAIL,
    }
}

pub fn check_ctx(ctx: Context) -> i32 {
    code(with_ctx(ctx, |_| Ok(())))
}

fn write_struct<T>(out: &mut [u8], value: &T) -> Result<(), i32> {
    let n = size_of::<T>();
    // The real runtime refuses a size that does not match its struct.
    if out.len() != n {
        return Err(abi::ERR_PARAM_INVALID);
    }
    // SAFETY: `T` is a plain repr(C) struct of `n` bytes.
    let bytes = unsafe { std::slice::from_raw_parts(std::ptr::from_ref(value).cast::<u8>(), n) };
    out.copy_from_slice(bytes);
    Ok(())
}

fn read_index(out: &[u8]) -> u32 {
    out.get(..4)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

fn set_name(attr: &mut TensorAttr, name: &str) {
    let n = name.len().min(abi::MAX_NAME_LEN - 1);
    attr.name[..n].copy_from_slice(&name.as_bytes()[..n]);
}

fn fill_str(dst: &mut [u8; 256], s: &str) {
    let n = s.len().min(255);
    dst[..n].copy_from_slice(&s.as_bytes()[..n]);
}

pub fn query(ctx: Context, cmd: i32, out: &mut [u8]) -> i32 {
    code(with_ctx(ctx, |c| match cmd {
        abi::QUERY_IN_OUT_NUM => write_struct(
            out,
            &abi::InputOutputNum {
                n_input: 1,
                n_output: c.output_ids.len() as u32,
            },
        ),
        abi::QUERY_INPUT_ATTR
        | abi::QUERY_NATIVE_INPUT_ATTR
        | abi::QUERY_NATIVE_NHWC_INPUT_ATTR => {
            if read_index(out) != 0 {
                return Err(abi::ERR_PARAM_INVALID);
            }
            write_struct(out, &c.input_attr())
        }
        abi::QUERY_OUTPUT_ATTR
        | abi::QUERY_NATIVE_OUTPUT_ATTR
        | abi::QUERY_NATIVE_NHWC_OUTPUT_ATTR => {
            let i = read_index(out) as usize;
            if i >= c.output_ids.len() {
                return Err(abi::ERR_PARAM_INVALID);
            }
            let fmt = match cmd {
                abi::QUERY_OUTPUT_ATTR => abi::FMT_NCHW,
                abi::QUERY_NATIVE_NHWC_OUTPUT_ATTR => abi::FMT_NHWC,
                // RV1106 hands out NHWC natively; the bigger NPUs
                // NC1HWC2, channels in blocks of 16.
                _ if c.cfg.soc == "rv1106" => abi::FMT_NHWC,
                _ => abi::FMT_NC1HWC2,
            };
            write_struct(out, &c.output_attr(i, fmt))
        }
        abi::QUERY_SDK_VERSION => {
            let mut v = abi::SdkVersion {
                api_version: [0; 256],
                drv_version: [0; 256],
            };
            fill_str(&mut v.api_version, &c.cfg.api_version);
            fill_str(&mut v.drv_version, &c.cfg.driver_version);
            write_struct(out, &v)
        }
        _ => Err(abi::ERR_PARAM_INVALID),
    }))
}

pub fn set_core_mask(ctx: Context, mask: u32) -> i32 {
    code(with_ctx(ctx, |c| {
        // Single-core NPUs have no core mask at all.
        if c.cfg.cores() == 1 {
            return Err(abi::ERR_FAIL);
        }
        match mask {
            0 | 1 | 2 | 3 | 4 | 7 | 0xffff => {
                c.core_mask = mask;
                Ok(())
            }
            _ => Err(abi::ERR_PARAM_INVALID),
        }
    }))
}

pub fn inputs_set(ctx: Context, input: &Input, data: &[u8]) -> i32 {
    code(with_ctx(ctx, |c| {
        if c.cfg.zero_copy_only {
            return Err(abi::ERR_FAIL);
        }
        let (h, w) = c.input_hw();
        if input.index != 0 || data.len() != h * w * 3 {
            return Err(abi::ERR_INPUT_INVALID);
        }
        if input.type_ != abi::TYPE_UINT8 || input.pass_through != 0 {
            return Err(abi::ERR_INPUT_INVALID);
        }
        let x = match input.fmt {
            abi::FMT_NHWC => c.normalise(data, w * 3),
            abi::FMT_NCHW => {
                let (hw, mut out) = (h * w, vec![0.0; 3 * h * w]);
                for (ch, o) in out.chunks_exact_mut(hw).enumerate() {
                    let (m, s) = (c.header.input.mean[ch], c.header.input.std[ch]);
                    for (o, &p) in o.iter_mut().zip(&data[ch * hw..(ch + 1) * hw]) {
                        *o = (f32::from(p) - m) / s;
                    }
                }
                out
            }
            _ => return Err(abi::ERR_INPUT_INVALID),
        };
        c.input = Some(x);
        Ok(())
    }))
}

pub fn run(ctx: Context) -> i32 {
    code(with_ctx(ctx, |c| {
        if c.cfg.fail_run != 0 {
            return Err(c.cfg.fail_run);
        }
        let x = match (c.in_mem, c.input.take()) {
            (Some(m), _) => {
                // SAFETY: `m.mem` came from `create_mem` and was checked
                // against the attribute's size in `set_io_mem`.
                let mem = unsafe { &*(m.mem as *const TensorMem) };
                // SAFETY: create_mem allocated `size` bytes at virt_addr.
                let data = unsafe {
                    std::slice::from_raw_parts(mem.virt_addr as *const u8, mem.size as usize)
                };
                c.normalise(data, m.attr.w_stride as usize * 3)
            }
            (None, Some(x)) => x,
            (None, None) => return Err(abi::ERR_INPUT_INVALID),
        };
        c.infer(x)?;
        for i in 0..c.out_mems.len() {
            if let Some(m) = c.out_mems[i] {
                c.write_output(i, m)?;
            }
        }
        Ok(())
    }))
}

pub fn outputs_get(ctx: Context, outs: &mut [Output]) -> i32 {
    code(with_ctx(ctx, |c| {
        if c.cfg.zero_copy_only {
            return Err(abi::ERR_FAIL);
        }
        if c.outputs.is_empty() || outs.len() > c.outputs.len() {
            return Err(abi::ERR_OUTPUT_INVALID);
        }
        for o in outs.iter_mut() {
            let i = o.index as usize;
            let values = c.outputs.get(i).ok_or(abi::ERR_OUTPUT_INVALID)?;
            let q = &c.header.outputs[i];
            let ty = if o.want_float != 0 {
                abi::TYPE_FLOAT32
            } else {
                c.native_type(i)
            };
            let mut bytes = Vec::with_capacity(values.len() * elem_size(ty));
            for &v in values {
                encode(v, q, ty, &mut bytes);
            }
            if o.is_prealloc != 0 {
                if o.buf.is_null() || (o.size as usize) < bytes.len() {
                    return Err(abi::ERR_OUTPUT_INVALID);
                }
                // SAFETY: the caller preallocated `size` ≥ len bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(bytes.as_ptr(), o.buf.cast::<u8>(), bytes.len());
                }
            } else {
                let mut b = bytes.into_boxed_slice();
                o.buf = b.as_mut_ptr().cast();
                o.size = b.len() as u32;
                c.lent.insert(o.buf as usize, b);
            }
        }
        Ok(())
    }))
}

pub fn outputs_release(ctx: Context, outs: &mut [Output]) -> i32 {
    code(with_ctx(ctx, |c| {
        for o in outs.iter_mut() {
            if o.is_prealloc == 0 && !o.buf.is_null() {
                c.lent.remove(&(o.buf as usize));
                o.buf = std::ptr::null_mut();
            }
        }
        Ok(())
    }))
}

pub fn create_mem(ctx: Context, size: u32) -> *mut TensorMem {
    if check_ctx(ctx) != abi::SUCC || size == 0 {
        return std::ptr::null_mut();
    }
    let buf: Box<[u8]> = vec![0u8; size as usize].into_boxed_slice();
    let virt = Box::into_raw(buf).cast::<u8>();
    Box::into_raw(Box::new(TensorMem {
        virt_addr: virt.cast(),
        phys_addr: 0,
        fd: -1,
        offset: 0,
        size,
        flags: 0,
        priv_data: std::ptr::null_mut(),
    }))
}

/// # Safety
/// `mem` from `create_mem`, not used afterwards.
pub unsafe fn destroy_mem(ctx: Context, mem: *mut TensorMem) -> i32 {
    if mem.is_null() {
        return abi::ERR_PARAM_INVALID;
    }
    if let Ok(mut all) = CONTEXTS.lock()
        && let Some(c) = all.get_mut(&ctx)
    {
        if c.in_mem.is_some_and(|m| m.mem == mem as usize) {
            c.in_mem = None;
        }
        for m in &mut c.out_mems {
            if m.is_some_and(|m| m.mem == mem as usize) {
                *m = None;
            }
        }
    }
    // SAFETY: `mem` and its buffer were made by `create_mem` with these
    // sizes; the caller gives up both.
    unsafe {
        let m = Box::from_raw(mem);
        let buf = std::ptr::slice_from_raw_parts_mut(m.virt_addr.cast::<u8>(), m.size as usize);
        drop(Box::from_raw(buf));
    }
    abi::SUCC
}

pub fn set_io_mem(ctx: Context, mem: *mut TensorMem, attr: TensorAttr) -> i32 {
    code(with_ctx(ctx, |c| {
        // SAFETY: `mem` came from `create_mem` (checked non-null by the caller).
        let size = unsafe { (*mem).size } as usize;
        let name = attr.name_str();
        if name == c.header.input.name {
            let (h, w) = c.input_hw();
            let stride = attr.w_stride.max(w as u32) as usize;
            if attr.fmt != abi::FMT_NHWC || attr.type_ != abi::TYPE_UINT8 || size < h * stride * 3 {
                return Err(abi::ERR_INPUT_INVALID);
            }
            let mut a = attr;
            a.w_stride = stride as u32;
            c.in_mem = Some(IoMem {
                mem: mem as usize,
                attr: a,
            });
            return Ok(());
        }
        let i = c
            .header
            .outputs
            .iter()
            .position(|o| o.name == name)
            .ok_or(abi::ERR_PARAM_INVALID)?;
        let want = c.output_attr(i, attr.fmt);
        if !matches!(attr.fmt, abi::FMT_NCHW | abi::FMT_NHWC | abi::FMT_NC1HWC2)
            || (attr.type_ != c.native_type(i) && attr.type_ != abi::TYPE_FLOAT32)
        {
            return Err(abi::ERR_OUTPUT_INVALID);
        }
        let elems = want.size_with_stride as usize / elem_size(want.type_);
        if size < elems * elem_size(attr.type_) {
            return Err(abi::ERR_OUTPUT_INVALID);
        }
        c.out_mems[i] = Some(IoMem {
            mem: mem as usize,
            attr,
        });
        Ok(())
    }))
}

impl Ctx {
    fn input_hw(&self) -> (usize, usize) {
        (
            self.header.input.height as usize,
            self.header.input.width as usize,
        )
    }

    /// uint8 NHWC pixels (rows `stride` bytes apart) → normalised f32 NCHW.
    fn normalise(&self, data: &[u8], stride: usize) -> Vec<f32> {
        let (h, w) = self.input_hw();
        let hw = h * w;
        let (m, s) = (self.header.input.mean, self.header.input.std);
        let mut out = vec![0.0; 3 * hw];
        for y in 0..h {
            let row = &data[y * stride..y * stride + w * 3];
            for (x, px) in row.chunks_exact(3).enumerate() {
                for ch in 0..3 {
                    out[ch * hw + y * w + x] = (f32::from(px[ch]) - m[ch]) / s[ch];
                }
            }
        }
        out
    }

    fn infer(&mut self, x: Vec<f32>) -> Result<(), i32> {
        let (h, w) = self.input_hw();
        self.infer_at(x, h, w)
    }

    fn infer_at(&mut self, x: Vec<f32>, h: usize, w: usize) -> Result<(), i32> {
        let t = NdTensorView::from_data([1, 3, h, w], x.as_slice());
        let outs = self
            .model
            .run(vec![(self.input_id, t.into())], &self.output_ids, None)
            .map_err(|e| {
                eprintln!("rknn-standin: run: {e}");
                abi::ERR_FAIL
            })?;
        self.outputs.clear();
        self.out_shapes.clear();
        for o in outs {
            let t: NdTensor<f32, 4> = o.try_into().map_err(|_| abi::ERR_MODEL_INVALID)?;
            self.out_shapes.push(t.shape());
            self.outputs.push(t.into_data());
        }
        Ok(())
    }

    fn input_attr(&self) -> TensorAttr {
        let (h, w) = self.input_hw();
        let mut a = TensorAttr::zeroed();
        a.n_dims = 4;
        a.dims[..4].copy_from_slice(&[1, h as u32, w as u32, 3]);
        set_name(&mut a, &self.header.input.name);
        a.n_elems = (h * w * 3) as u32;
        a.size = a.n_elems;
        a.fmt = abi::FMT_NHWC;
        a.type_ = abi::TYPE_INT8;
        a.qnt_type = abi::QNT_AFFINE_ASYMMETRIC;
        // The first layer sees (pixel - mean) / std as int8 pixel - 128.
        a.zp = self.header.input.mean[0].round() as i32 - 128;
        a.scale = 1.0 / self.header.input.std[0];
        a.w_stride = w as u32;
        a.size_with_stride = a.size;
        a
    }

    fn native_type(&self, i: usize) -> i32 {
        match self.header.outputs[i].dtype {
            OutputType::Int8 => abi::TYPE_INT8,
            OutputType::Float16 => abi::TYPE_FLOAT16,
        }
    }

    fn output_attr(&self, i: usize, fmt: i32) -> TensorAttr {
        let [n, ch, h, w] = self.out_shapes[i];
        let q = &self.header.outputs[i];
        let ty = self.native_type(i);
        let c2 = c2_of(ty);
        let mut a = TensorAttr::zeroed();
        a.index = i as u32;
        let dims: Vec<usize> = match fmt {
            abi::FMT_NHWC => vec![n, h, w, ch],
            abi::FMT_NC1HWC2 => vec![n, ch.div_ceil(c2), h, w, c2],
            _ => vec![n, ch, h, w],
        };
        a.n_dims = dims.len() as u32;
        for (d, &v) in a.dims.iter_mut().zip(&dims) {
            *d = v as u32;
        }
        set_name(&mut a, &q.name);
        let elem = elem_size(ty);
        a.n_elems = (n * ch * h * w) as u32;
        a.size = (n * ch * h * w * elem) as u32;
        a.fmt = fmt;
        a.type_ = ty;
        if ty == abi::TYPE_INT8 {
            a.qnt_type = abi::QNT_AFFINE_ASYMMETRIC;
            a.zp = q.zero_point;
            a.scale = q.scale;
        } else {
            a.qnt_type = abi::QNT_NONE;
            a.scale = 1.0;
        }
        a.w_stride = w as u32;
        a.size_with_stride = (dims.iter().product::<usize>() * elem) as u32;
        a
    }

    /// Lay output `i` into its zero-copy memory as its attribute says.
    fn write_output(&self, i: usize, m: IoMem) -> Result<(), i32> {
        let [_, ch, h, w] = self.out_shapes[i];
        let q = &self.header.outputs[i];
        let values = &self.outputs[i];
        // SAFETY: `m.mem` came from `create_mem`; its size was checked
        // against this layout in `set_io_mem`.
        let mem = unsafe { &*(m.mem as *const TensorMem) };
        // SAFETY: create_mem allocated `size` bytes at virt_addr.
        let dst = unsafe {
            std::slice::from_raw_parts_mut(mem.virt_addr.cast::<u8>(), mem.size as usize)
        };
        let ty = m.attr.type_;
        let elem = elem_size(ty);
        let c2 = m.attr.dims.get(4).copied().unwrap_or(16).max(1) as usize;
        let mut one = Vec::with_capacity(4);
        for c in 0..ch {
            for y in 0..h {
                for x in 0..w {
                    let v = values[(c * h + y) * w + x];
                    let at = match m.attr.fmt {
                        abi::FMT_NHWC => (y * w + x) * ch + c,
                        abi::FMT_NC1HWC2 => (((c / c2) * h + y) * w + x) * c2 + c % c2,
                        _ => (c * h + y) * w + x,
                    };
                    one.clear();
                    encode(v, q, ty, &mut one);
                    dst[at * elem..(at + 1) * elem].copy_from_slice(&one);
                }
            }
        }
        Ok(())
    }
}
