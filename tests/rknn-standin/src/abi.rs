//! The RKNN C ABI as the stand-in exports it, written from the layout of
//! Rockchip's `rknn_api.h` (RKNN2, runtime 1.x–2.x) independently of
//! camera-app's binding, so a layout mistake on either side shows up as a
//! failing test rather than cancelling out.

use std::ffi::c_void;

/// `rknn_context`: `uint32_t` on 32-bit ARM, `uint64_t` elsewhere.
#[cfg(target_arch = "arm")]
pub type Context = u32;
#[cfg(not(target_arch = "arm"))]
pub type Context = u64;

pub const MAX_DIMS: usize = 16;
pub const MAX_NAME_LEN: usize = 256;

// Return codes.
pub const SUCC: i32 = 0;
pub const ERR_FAIL: i32 = -1;
pub const ERR_PARAM_INVALID: i32 = -5;
pub const ERR_MODEL_INVALID: i32 = -6;
pub const ERR_CTX_INVALID: i32 = -7;
pub const ERR_INPUT_INVALID: i32 = -8;
pub const ERR_OUTPUT_INVALID: i32 = -9;
pub const ERR_TARGET_PLATFORM_UNMATCH: i32 = -13;

// rknn_query commands.
pub const QUERY_IN_OUT_NUM: i32 = 0;
pub const QUERY_INPUT_ATTR: i32 = 1;
pub const QUERY_OUTPUT_ATTR: i32 = 2;
pub const QUERY_SDK_VERSION: i32 = 5;
pub const QUERY_NATIVE_INPUT_ATTR: i32 = 8;
pub const QUERY_NATIVE_OUTPUT_ATTR: i32 = 9;
pub const QUERY_NATIVE_NHWC_INPUT_ATTR: i32 = 10;
pub const QUERY_NATIVE_NHWC_OUTPUT_ATTR: i32 = 11;

// rknn_tensor_format.
pub const FMT_NCHW: i32 = 0;
pub const FMT_NHWC: i32 = 1;
pub const FMT_NC1HWC2: i32 = 2;

// rknn_tensor_type.
pub const TYPE_FLOAT32: i32 = 0;
pub const TYPE_FLOAT16: i32 = 1;
pub const TYPE_INT8: i32 = 2;
pub const TYPE_UINT8: i32 = 3;

// rknn_tensor_qnt_type.
pub const QNT_NONE: i32 = 0;
pub const QNT_AFFINE_ASYMMETRIC: i32 = 2;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct InputOutputNum {
    pub n_input: u32,
    pub n_output: u32,
}

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
    pub fn zeroed() -> Self {
        Self {
            index: 0,
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

    pub fn name_str(&self) -> &str {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(MAX_NAME_LEN);
        std::str::from_utf8(&self.name[..end]).unwrap_or("")
    }
}

#[repr(C)]
#[derive(Debug)]
pub struct SdkVersion {
    pub api_version: [u8; 256],
    pub drv_version: [u8; 256],
}

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

#[repr(C)]
#[derive(Debug)]
pub struct Output {
    pub want_float: u8,
    pub is_prealloc: u8,
    pub index: u32,
    pub buf: *mut c_void,
    pub size: u32,
}

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
    }
}
