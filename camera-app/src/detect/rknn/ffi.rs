//! The RKNN C API (`rknn_api.h`, RKNN2 runtimes 1.x and 2.x), loaded at run
//! time with libloading: the firmware links on hosts without Rockchip's
//! library, and one binary serves boards whose runtimes differ
//! (`librknnrt.so` on RK3566/68/88, the zero-copy-only `librknnmrt.so` on
//! RV1106). Only what the backend uses is declared.

use std::ffi::c_void;
use std::path::Path;

use libloading::Library;

/// `rknn_context` is `uint32_t` on 32-bit ARM and `uint64_t` elsewhere
/// (the reason `rknpu2`'s binding crashes on armv7).
#[cfg(target_arch = "arm")]
pub type Context = u32;
#[cfg(not(target_arch = "arm"))]
pub type Context = u64;

pub const MAX_DIMS: usize = 16;
pub const MAX_NAME_LEN: usize = 256;

pub const QUERY_IN_OUT_NUM: i32 = 0;
pub const QUERY_INPUT_ATTR: i32 = 1;
pub const QUERY_OUTPUT_ATTR: i32 = 2;
pub const QUERY_SDK_VERSION: i32 = 5;
pub const QUERY_NATIVE_INPUT_ATTR: i32 = 8;
pub const QUERY_NATIVE_OUTPUT_ATTR: i32 = 9;

pub const FMT_NCHW: i32 = 0;
pub const FMT_NHWC: i32 = 1;
pub const FMT_NC1HWC2: i32 = 2;

pub const TYPE_FLOAT32: i32 = 0;
pub const TYPE_FLOAT16: i32 = 1;
pub const TYPE_INT8: i32 = 2;
pub const TYPE_UINT8: i32 = 3;

pub const QNT_NONE: i32 = 0;
pub const QNT_AFFINE_ASYMMETRIC: i32 = 2;

/// `rknn_mem_sync_mode`.
pub const MEM_SYNC_TO_DEVICE: i32 = 0x1;
pub const MEM_SYNC_FROM_DEVICE: i32 = 0x2;

/// Name and likely cause of an RKNN return code.
pub fn describe(code: i32) -> (&'static str, &'static str) {
    match code {
        -1 => ("RKNN_ERR_FAIL", ""),
        -2 => ("RKNN_ERR_TIMEOUT", "the NPU did not answer in time"),
        -3 => (
            "RKNN_ERR_DEVICE_UNAVAILABLE",
            "the NPU driver is not available (rknpu kernel module, /dev/rknpu or /dev/dri)",
        ),
        -4 => ("RKNN_ERR_MALLOC_FAIL", "out of memory"),
        -5 => ("RKNN_ERR_PARAM_INVALID", ""),
        -6 => (
            "RKNN_ERR_MODEL_INVALID",
            "the file is not an .rknn model this runtime can read (convert it with models/convert.py)",
        ),
        -7 => ("RKNN_ERR_CTX_INVALID", ""),
        -8 => ("RKNN_ERR_INPUT_INVALID", ""),
        -9 => ("RKNN_ERR_OUTPUT_INVALID", ""),
        -10 => (
            "RKNN_ERR_DEVICE_UNMATCH",
            "the model was converted with a toolkit this driver does not accept",
        ),
        -11 => (
            "RKNN_ERR_INCOMPATILE_PRE_COMPILE_MODEL",
            "the model was converted with a toolkit this driver does not accept",
        ),
        -12 => (
            "RKNN_ERR_INCOMPATILE_OPTIMIZATION_LEVEL_VERSION",
            "the model was converted with a toolkit this driver does not accept",
        ),
        -13 => (
            "RKNN_ERR_TARGET_PLATFORM_UNMATCH",
            "the model was converted for another SoC: use the manifest's file for this board",
        ),
        _ => ("unknown RKNN error", ""),
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct InputOutputNum {
    pub n_input: u32,
    pub n_output: u32,
}

/// `rknn_tensor_attr`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct TensorAttr {
    pub index: u32,
    pub n_dims: u32,
    pub dims: [u32; MAX_DIMS],
    pub name: [u8; MAX_NAME_LEN],
    pub n_elems: u32,
    pub size: u32,
    pub fmt: i32,
    pub type_: i32,
    pub qnt_type: i32,
    pub fl: i8,
    pub zp: i32,
    pub scale: f32,
    pub w_stride: u32,
    pub size_with_stride: u32,
    pub pass_through: u8,
    pub h_stride: u32,
}

impl TensorAttr {
    pub fn with_index(index: u32) -> Self {
        Self {
            index,
            n_dims: 0,
            dims: [0; MAX_DIMS],
            name: [0; MAX_NAME_LEN],
            n_elems: 0,
            size: 0,
            fmt: 0,
            type_: 0,
            qnt_type: 0,
            fl: 0,
            zp: 0,
            scale: 0.0,
            w_stride: 0,
            size_with_stride: 0,
            pass_through: 0,
            h_stride: 0,
        }
    }

    pub fn dims(&self) -> &[u32] {
        &self.dims[..(self.n_dims as usize).min(MAX_DIMS)]
    }

    pub fn name(&self) -> String {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(MAX_NAME_LEN);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }
}

/// `rknn_sdk_version`.
#[repr(C)]
#[derive(Debug)]
pub struct SdkVersion {
    pub api_version: [u8; 256],
    pub drv_version: [u8; 256],
}

/// `rknn_input`.
#[repr(C)]
#[derive(Debug)]
pub struct Input {
    pub index: u32,
    pub buf: *mut c_void,
    pub size: u32,
    pub pass_through: u8,
    pub type_: i32,
    pub fmt: i32,
}

/// `rknn_output`.
#[repr(C)]
#[derive(Debug)]
pub struct Output {
    pub want_float: u8,
    pub is_prealloc: u8,
    pub index: u32,
    pub buf: *mut c_void,
    pub size: u32,
}

/// `rknn_tensor_mem`.
#[repr(C)]
#[derive(Debug)]
pub struct TensorMem {
    pub virt_addr: *mut c_void,
    pub phys_addr: u64,
    pub fd: i32,
    pub offset: i32,
    pub size: u32,
    pub flags: u32,
    pub priv_data: *mut c_void,
}

type InitFn = unsafe extern "C" fn(*mut Context, *mut c_void, u32, u32, *mut c_void) -> i32;
type DestroyFn = unsafe extern "C" fn(Context) -> i32;
type QueryFn = unsafe extern "C" fn(Context, i32, *mut c_void, u32) -> i32;
type RunFn = unsafe extern "C" fn(Context, *mut c_void) -> i32;
type CoreMaskFn = unsafe extern "C" fn(Context, u32) -> i32;
type InputsSetFn = unsafe extern "C" fn(Context, u32, *mut Input) -> i32;
type OutputsGetFn = unsafe extern "C" fn(Context, u32, *mut Output, *mut c_void) -> i32;
type OutputsReleaseFn = unsafe extern "C" fn(Context, u32, *mut Output) -> i32;
type CreateMemFn = unsafe extern "C" fn(Context, u32) -> *mut TensorMem;
type DestroyMemFn = unsafe extern "C" fn(Context, *mut TensorMem) -> i32;
type SetIoMemFn = unsafe extern "C" fn(Context, *mut TensorMem, *mut TensorAttr) -> i32;
type MemSyncFn = unsafe extern "C" fn(Context, *mut TensorMem, i32) -> i32;

/// Why the runtime library could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "NPU runtime {lib} cannot be loaded ({reason}); install the SoC vendor's RKNN runtime \
         or point the board profile's npu.runtime (or --rknn-lib) at it"
    )]
    Open { lib: String, reason: String },
    #[error("{lib} is not an RKNN runtime: it has no {symbol}")]
    Symbol { lib: String, symbol: &'static str },
}

/// Entry points of one loaded runtime. The optional ones differ between
/// runtimes: RV1106's has only the zero-copy calls, older ones lack
/// `rknn_mem_sync` and single-core ones may lack `rknn_set_core_mask`.
#[derive(Debug)]
pub struct Api {
    pub lib: String,
    pub init: InitFn,
    pub destroy: DestroyFn,
    pub query: QueryFn,
    pub run: RunFn,
    pub set_core_mask: Option<CoreMaskFn>,
    pub inputs_set: Option<InputsSetFn>,
    pub outputs_get: Option<OutputsGetFn>,
    pub outputs_release: Option<OutputsReleaseFn>,
    pub create_mem: Option<CreateMemFn>,
    pub destroy_mem: Option<DestroyMemFn>,
    pub set_io_mem: Option<SetIoMemFn>,
    pub mem_sync: Option<MemSyncFn>,
    // Last: the function pointers above are valid while it is loaded.
    _library: Library,
}

impl Api {
    /// Load `lib`: a bare file name is searched like `dlopen` does
    /// (`LD_LIBRARY_PATH`, the system directories), a path is used as is.
    pub fn load(lib: &Path) -> Result<Self, LoadError> {
        let name = lib.display().to_string();
        // SAFETY: loading runs the library's initialisers; an RKNN runtime
        // has none that depend on us. The same holds for any library an
        // installer names, which is the trust the board profile carries.
        let library = unsafe { Library::new(lib) }.map_err(|e| LoadError::Open {
            lib: name.clone(),
            reason: e.to_string(),
        })?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the symbol is declared with its C signature from
                // rknn_api.h; the pointer is kept only beside `library`.
                unsafe { library.get(concat!($name, "\0").as_bytes()) }
                    .ok()
                    .map(|s: libloading::Symbol<'_, _>| *s)
            };
        }
        macro_rules! required {
            ($name:literal) => {
                sym!($name).ok_or(LoadError::Symbol {
                    lib: name.clone(),
                    symbol: $name,
                })?
            };
        }
        Ok(Self {
            init: required!("rknn_init"),
            destroy: required!("rknn_destroy"),
            query: required!("rknn_query"),
            run: required!("rknn_run"),
            set_core_mask: sym!("rknn_set_core_mask"),
            inputs_set: sym!("rknn_inputs_set"),
            outputs_get: sym!("rknn_outputs_get"),
            outputs_release: sym!("rknn_outputs_release"),
            create_mem: sym!("rknn_create_mem"),
            destroy_mem: sym!("rknn_destroy_mem"),
            set_io_mem: sym!("rknn_set_io_mem"),
            mem_sync: sym!("rknn_mem_sync"),
            lib: name,
            _library: library,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    /// Offsets as a C compiler lays out `rknn_tensor_attr` (no pointers,
    /// so the same on every target).
    #[test]
    fn tensor_attr_layout_matches_the_c_header() {
        assert_eq!(offset_of!(TensorAttr, name), 72);
        assert_eq!(offset_of!(TensorAttr, n_elems), 328);
        assert_eq!(offset_of!(TensorAttr, fl), 348);
        assert_eq!(offset_of!(TensorAttr, zp), 352);
        assert_eq!(offset_of!(TensorAttr, scale), 356);
        assert_eq!(offset_of!(TensorAttr, pass_through), 368);
        assert_eq!(offset_of!(TensorAttr, h_stride), 372);
        assert_eq!(size_of::<TensorAttr>(), 376);
        assert_eq!(size_of::<SdkVersion>(), 512);
        assert_eq!(size_of::<Context>(), size_of::<usize>().min(8));
    }

    #[test]
    fn error_codes_have_names() {
        assert_eq!(describe(-13).0, "RKNN_ERR_TARGET_PLATFORM_UNMATCH");
        assert_eq!(describe(-3).0, "RKNN_ERR_DEVICE_UNAVAILABLE");
        assert_eq!(describe(-99).0, "unknown RKNN error");
    }
}
