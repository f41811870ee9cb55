//! A stand-in for Rockchip's NPU runtime, for tests.
//!
//! Built as `librknnrt.so`, it exports the RKNN C API that camera-app's
//! binding loads at run time, and implements it on the CPU: the "model" is
//! a [`container`] holding an ONNX model plus what rknn-toolkit2 would have
//! baked in (target platform, input normalisation, int8 quantisation of
//! each output). Inputs are uint8 pixels like on the NPU; outputs are
//! quantised to int8 and laid out as the NPU lays them out (NCHW from
//! `rknn_outputs_get`, NC1HWC2 or NHWC in zero-copy memory), so the real
//! FFI path — loading, queries, tensor attributes, both I/O styles,
//! dequantisation, error codes — runs on x86-64 and under qemu.
//!
//! Behaviour is set per copy of the library by a `standin.toml` next to it
//! (see [`Config`]), so one test can load an "RK3588" and an "RV1106" side
//! by side without environment variables.

pub mod abi;
pub mod container;
mod runtime;

pub use runtime::Config;

use std::ffi::{c_char, c_void};

use abi::{Context, Input, Output, TensorAttr, TensorMem};

/// `int rknn_init(rknn_context*, void* model, uint32_t size, uint32_t flag,
/// rknn_init_extend*)`; `size == 0` means `model` is a path.
///
/// # Safety
/// As the C API: `ctx` writable, `model` a NUL-terminated path or `size`
/// readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rknn_init(
    ctx: *mut Context,
    model: *mut c_void,
    size: u32,
    _flag: u32,
    _extend: *mut c_void,
) -> i32 {
    if ctx.is_null() || model.is_null() {
        return abi::ERR_PARAM_INVALID;
    }
    let bytes = if size == 0 {
        // SAFETY: the caller passes a NUL-terminated path when size is 0.
        let path = unsafe { std::ffi::CStr::from_ptr(model as *const c_char) };
        match std::fs::read(
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(path.to_bytes()),
        ) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("rknn-standin: {}: {e}", path.to_string_lossy());
                return abi::ERR_MODEL_INVALID;
            }
        }
    } else {
        // SAFETY: the caller passes `size` readable bytes.
        unsafe { std::slice::from_raw_parts(model as *const u8, size as usize) }.to_vec()
    };
    match runtime::init(&bytes) {
        Ok(handle) => {
            // SAFETY: checked non-null; the caller owns the slot.
            unsafe { ctx.write(handle) };
            abi::SUCC
        }
        Err(code) => code,
    }
}

/// `int rknn_destroy(rknn_context)`.
#[unsafe(no_mangle)]
pub extern "C" fn rknn_destroy(ctx: Context) -> i32 {
    runtime::destroy(ctx)
}

/// `int rknn_query(rknn_context, rknn_query_cmd, void* info, uint32_t size)`.
///
/// # Safety
/// `info` must be writable for `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rknn_query(ctx: Context, cmd: i32, info: *mut c_void, size: u32) -> i32 {
    if info.is_null() {
        return abi::ERR_PARAM_INVALID;
    }
    // SAFETY: the caller guarantees `size` writable bytes at `info`.
    let out = unsafe { std::slice::from_raw_parts_mut(info as *mut u8, size as usize) };
    runtime::query(ctx, cmd, out)
}

/// `int rknn_set_core_mask(rknn_context, rknn_core_mask)`.
#[unsafe(no_mangle)]
pub extern "C" fn rknn_set_core_mask(ctx: Context, mask: u32) -> i32 {
    runtime::set_core_mask(ctx, mask)
}

/// `int rknn_inputs_set(rknn_context, uint32_t n, rknn_input inputs[])`.
///
/// # Safety
/// `inputs` must point to `n` valid `rknn_input`s whose buffers hold
/// `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rknn_inputs_set(ctx: Context, n: u32, inputs: *mut Input) -> i32 {
    if inputs.is_null() || n != 1 {
        return abi::ERR_PARAM_INVALID;
    }
    // SAFETY: the caller passes one valid rknn_input.
    let input = unsafe { &*inputs };
    if input.buf.is_null() {
        return abi::ERR_PARAM_INVALID;
    }
    // SAFETY: the caller guarantees `size` readable bytes at `buf`.
    let data = unsafe { std::slice::from_raw_parts(input.buf as *const u8, input.size as usize) };
    runtime::inputs_set(ctx, input, data)
}

/// `int rknn_run(rknn_context, rknn_run_extend*)`.
#[unsafe(no_mangle)]
pub extern "C" fn rknn_run(ctx: Context, _extend: *mut c_void) -> i32 {
    runtime::run(ctx)
}

/// `int rknn_outputs_get(rknn_context, uint32_t n, rknn_output outputs[],
/// rknn_output_extend*)`.
///
/// # Safety
/// `outputs` must point to `n` writable `rknn_output`s; preallocated
/// buffers must hold `size` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rknn_outputs_get(
    ctx: Context,
    n: u32,
    outputs: *mut Output,
    _extend: *mut c_void,
) -> i32 {
    if outputs.is_null() {
        return abi::ERR_PARAM_INVALID;
    }
    // SAFETY: the caller passes `n` writable rknn_outputs.
    let outs = unsafe { std::slice::from_raw_parts_mut(outputs, n as usize) };
    runtime::outputs_get(ctx, outs)
}

/// `int rknn_outputs_release(rknn_context, uint32_t n, rknn_output outputs[])`.
///
/// # Safety
/// `outputs` must be what `rknn_outputs_get` filled.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rknn_outputs_release(ctx: Context, n: u32, outputs: *mut Output) -> i32 {
    if outputs.is_null() {
        return abi::ERR_PARAM_INVALID;
    }
    // SAFETY: the caller passes back the `n` rknn_outputs it got.
    let outs = unsafe { std::slice::from_raw_parts_mut(outputs, n as usize) };
    runtime::outputs_release(ctx, outs)
}

/// `rknn_tensor_mem* rknn_create_mem(rknn_context, uint32_t size)`.
#[unsafe(no_mangle)]
pub extern "C" fn rknn_create_mem(ctx: Context, size: u32) -> *mut TensorMem {
    runtime::create_mem(ctx, size)
}

/// `int rknn_destroy_mem(rknn_context, rknn_tensor_mem*)`.
///
/// # Safety
/// `mem` must come from `rknn_create_mem` and not be used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rknn_destroy_mem(ctx: Context, mem: *mut TensorMem) -> i32 {
    // SAFETY: forwarded contract.
    unsafe { runtime::destroy_mem(ctx, mem) }
}

/// `int rknn_set_io_mem(rknn_context, rknn_tensor_mem*, rknn_tensor_attr*)`.
///
/// # Safety
/// `mem` from `rknn_create_mem`, `attr` a valid attribute.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn rknn_set_io_mem(
    ctx: Context,
    mem: *mut TensorMem,
    attr: *mut TensorAttr,
) -> i32 {
    if mem.is_null() || attr.is_null() {
        return abi::ERR_PARAM_INVALID;
    }
    // SAFETY: the caller passes a valid attribute.
    let attr = unsafe { *attr };
    runtime::set_io_mem(ctx, mem, attr)
}

/// `int rknn_mem_sync(rknn_context, rknn_tensor_mem*, rknn_mem_sync_mode)`:
/// CPU memory is coherent here, so only the arguments are checked.
#[unsafe(no_mangle)]
pub extern "C" fn rknn_mem_sync(ctx: Context, mem: *mut TensorMem, _mode: i32) -> i32 {
    if mem.is_null() {
        return abi::ERR_PARAM_INVALID;
    }
    runtime::check_ctx(ctx)
}
