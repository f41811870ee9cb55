//! The real [`Device`]: ioctls on a device node, buffers mapped with mmap.
//!
//! Kernel structs and request codes come from `v4l` (`moq-v4l`: `v4l`'s
//! bindings of `<linux/videodev2.h>` checked in, so no bindgen). They use
//! fixed-width integers and `libc`'s `timeval`, so their sizes are right on
//! every target, including 32-bit ARM where `timeval` and pointers are
//! narrower: the asserts below hold them to the kernel's.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;
use std::time::Duration;

use v4l::sys::{
    V4L2_CAP_DEVICE_CAPS, v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE,
    v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, v4l2_buffer, v4l2_capability,
    v4l2_field_V4L2_FIELD_ANY, v4l2_format, v4l2_memory_V4L2_MEMORY_MMAP, v4l2_plane,
    v4l2_requestbuffers, v4l2_streamparm,
};
use v4l::v4l2::vidioc;

use super::{BufType, Caps, Dequeued, Device, Negotiated, Opener};

/// `V4L2_BUF_FLAG_ERROR`.
const BUF_FLAG_ERROR: u32 = 0x0000_0040;
/// `VIDEO_MAX_PLANES`.
const MAX_PLANES: usize = 8;

// The kernel's sizes (`pahole` on the UAPI headers): 64-bit, and 32-bit
// ARM with a 32-bit `time_t` (the sizes are in the ioctl request codes
// too, which the kernel checks).
const WIDE: bool = cfg!(target_pointer_width = "64");
const _: () = assert!(size_of::<v4l2_buffer>() == if WIDE { 88 } else { 68 });
const _: () = assert!(size_of::<v4l2_plane>() == if WIDE { 64 } else { 60 });
const _: () = assert!(size_of::<v4l2_format>() == if WIDE { 208 } else { 204 });
const _: () = assert!(size_of::<v4l2_capability>() == 104);
const _: () = assert!(size_of::<v4l2_requestbuffers>() == 20);
const _: () = assert!(size_of::<v4l2_streamparm>() == 204);

/// Opens real device nodes.
#[derive(Debug, Clone, Copy, Default)]
pub struct SysOpener;

impl Opener for SysOpener {
    type Device = SysDevice;

    fn open(&mut self, path: &Path) -> io::Result<SysDevice> {
        // Not `v4l::v4l2::open`: it panics on a path with a NUL byte.
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // Non-blocking so DQBUF never hangs; `wait` polls first.
        let flags = libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC;
        // SAFETY: `c_path` is a valid NUL-terminated string for the call.
        let raw = retry_eintr(|| unsafe { libc::open(c_path.as_ptr(), flags) })?;
        // SAFETY: `open` returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(SysDevice {
            fd,
            maps: Vec::new(),
        })
    }
}

/// One mmap'ed plane.
#[derive(Debug)]
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

/// An open device node and its mapped buffers.
#[derive(Debug)]
pub struct SysDevice {
    fd: OwnedFd,
    /// maps[buffer][plane]
    maps: Vec<Vec<Mapping>>,
}

// SAFETY: the mappings are plain shared memory owned by this value; nothing
// else aliases them mutably.
unsafe impl Send for SysDevice {}

impl Drop for SysDevice {
    fn drop(&mut self) {
        for m in self.maps.iter().flatten() {
            // SAFETY: each mapping came from a successful mmap of `len` bytes
            // and is unmapped once, here.
            let _ = unsafe { v4l::v4l2::munmap(m.ptr, m.len) };
        }
    }
}

fn buf_type(ty: BufType) -> u32 {
    match ty {
        BufType::Single => v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE,
        BufType::Multi => v4l2_buf_type_V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE,
    }
}

impl SysDevice {
    /// Issue an ioctl with a kernel struct as argument.
    fn ioctl<T>(&self, request: vidioc::_IOC_TYPE, arg: &mut T) -> io::Result<()> {
        let argp = ptr::from_mut(arg).cast::<libc::c_void>();
        // SAFETY: `arg` is a live, exclusively borrowed kernel struct of the
        // type `request` was built for (the request codes encode its size).
        retry_eintr(|| unsafe { libc::ioctl(self.fd.as_raw_fd(), request, argp) }).map(drop)
    }

    /// A buffer descriptor with `planes` pointing at `storage`.
    fn buffer(
        ty: BufType,
        index: u32,
        storage: &mut [v4l2_plane; MAX_PLANES],
        planes: usize,
    ) -> v4l2_buffer {
        // SAFETY: v4l2_buffer is plain old data; all-zero is its documented
        // initial state.
        let mut buf: v4l2_buffer = unsafe { std::mem::zeroed() };
        buf.type_ = buf_type(ty);
        buf.memory = v4l2_memory_V4L2_MEMORY_MMAP;
        buf.index = index;
        if ty == BufType::Multi {
            buf.m.planes = storage.as_mut_ptr();
            buf.length = u32::try_from(planes).unwrap_or(1);
        }
        buf
    }
}

/// Run a libc call that returns -1 and sets errno on failure, again while
/// it is interrupted by a signal (a signal is not a camera failure).
fn retry_eintr(mut call: impl FnMut() -> libc::c_int) -> io::Result<libc::c_int> {
    loop {
        match call() {
            -1 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            n => return Ok(n),
        }
    }
}

fn zeroed_planes() -> [v4l2_plane; MAX_PLANES] {
    // SAFETY: v4l2_plane is plain old data; all-zero is valid.
    unsafe { std::mem::zeroed() }
}

fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl Device for SysDevice {
    fn query_caps(&mut self) -> io::Result<Caps> {
        // SAFETY: plain old data.
        let mut cap: v4l2_capability = unsafe { std::mem::zeroed() };
        self.ioctl(vidioc::VIDIOC_QUERYCAP, &mut cap)?;
        let caps = if cap.capabilities & V4L2_CAP_DEVICE_CAPS != 0 {
            cap.device_caps
        } else {
            cap.capabilities
        };
        Ok(Caps {
            driver: c_str(&cap.driver),
            card: c_str(&cap.card),
            caps,
        })
    }

    fn set_format(
        &mut self,
        ty: BufType,
        fourcc: [u8; 4],
        width: u32,
        height: u32,
    ) -> io::Result<Negotiated> {
        // SAFETY: plain old data.
        let mut fmt: v4l2_format = unsafe { std::mem::zeroed() };
        fmt.type_ = buf_type(ty);
        let code = u32::from_le_bytes(fourcc);
        match ty {
            BufType::Single => {
                // SAFETY: writing the union member that `type_` selects.
                let pix = unsafe { &mut fmt.fmt.pix };
                pix.width = width;
                pix.height = height;
                pix.pixelformat = code;
                pix.field = v4l2_field_V4L2_FIELD_ANY;
            }
            BufType::Multi => {
                // SAFETY: writing the union member that `type_` selects.
                let mp = unsafe { &mut fmt.fmt.pix_mp };
                mp.width = width;
                mp.height = height;
                mp.pixelformat = code;
                mp.field = v4l2_field_V4L2_FIELD_ANY;
            }
        }
        self.ioctl(vidioc::VIDIOC_S_FMT, &mut fmt)?;
        Ok(match ty {
            BufType::Single => {
                // SAFETY: the driver filled the member `type_` selects.
                let pix = unsafe { fmt.fmt.pix };
                Negotiated {
                    fourcc: pix.pixelformat.to_le_bytes(),
                    width: pix.width,
                    height: pix.height,
                    planes: vec![(pix.bytesperline, pix.sizeimage)],
                }
            }
            BufType::Multi => {
                // SAFETY: the driver filled the member `type_` selects.
                let mp = unsafe { fmt.fmt.pix_mp };
                let n = usize::from(mp.num_planes).min(MAX_PLANES);
                Negotiated {
                    fourcc: mp.pixelformat.to_le_bytes(),
                    width: mp.width,
                    height: mp.height,
                    planes: mp.plane_fmt[..n]
                        .iter()
                        .map(|p| (p.bytesperline, p.sizeimage))
                        .collect(),
                }
            }
        })
    }

    fn set_frame_rate(&mut self, ty: BufType, fps: u32) -> io::Result<()> {
        // SAFETY: plain old data.
        let mut parm: v4l2_streamparm = unsafe { std::mem::zeroed() };
        parm.type_ = buf_type(ty);
        // SAFETY: `capture` is the member for capture buffer types.
        let cap = unsafe { &mut parm.parm.capture };
        cap.timeperframe.numerator = 1;
        cap.timeperframe.denominator = fps;
        self.ioctl(vidioc::VIDIOC_S_PARM, &mut parm)
    }

    fn request_buffers(&mut self, ty: BufType, count: u32) -> io::Result<u32> {
        // SAFETY: plain old data.
        let mut req: v4l2_requestbuffers = unsafe { std::mem::zeroed() };
        req.count = count;
        req.type_ = buf_type(ty);
        req.memory = v4l2_memory_V4L2_MEMORY_MMAP;
        self.ioctl(vidioc::VIDIOC_REQBUFS, &mut req)?;
        Ok(req.count)
    }

    fn map_buffer(&mut self, ty: BufType, index: u32, planes: usize) -> io::Result<()> {
        let mut storage = zeroed_planes();
        let mut buf = Self::buffer(ty, index, &mut storage, planes);
        self.ioctl(vidioc::VIDIOC_QUERYBUF, &mut buf)?;
        let regions: Vec<(u32, u32)> = match ty {
            // SAFETY: for MMAP single-planar buffers the driver sets `offset`.
            BufType::Single => vec![(buf.length, unsafe { buf.m.offset })],
            BufType::Multi => storage[..planes]
                .iter()
                // SAFETY: for MMAP planes the driver sets `mem_offset`.
                .map(|p| (p.length, unsafe { p.m.mem_offset }))
                .collect(),
        };
        let mut maps = Vec::with_capacity(regions.len());
        for (len, offset) in regions {
            let len = len as usize;
            // off_t is 32-bit on armv7 without large-file support.
            #[allow(clippy::unnecessary_fallible_conversions)]
            let offset = libc::off_t::try_from(offset)
                .map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
            // SAFETY: mapping `len` bytes the driver offers at `offset` on our
            // descriptor; the result is checked before use.
            let ptr = unsafe {
                v4l::v4l2::mmap(
                    ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    self.fd.as_raw_fd(),
                    offset,
                )
            }?;
            maps.push(Mapping { ptr, len });
        }
        let i = index as usize;
        if self.maps.len() <= i {
            self.maps.resize_with(i + 1, Vec::new);
        }
        self.maps[i] = maps;
        Ok(())
    }

    fn queue(&mut self, ty: BufType, index: u32, planes: usize) -> io::Result<()> {
        let mut storage = zeroed_planes();
        let mut buf = Self::buffer(ty, index, &mut storage, planes);
        self.ioctl(vidioc::VIDIOC_QBUF, &mut buf)
    }

    fn stream_on(&mut self, ty: BufType) -> io::Result<()> {
        let mut t = i32::try_from(buf_type(ty)).unwrap_or(0);
        self.ioctl(vidioc::VIDIOC_STREAMON, &mut t)
    }

    fn stream_off(&mut self, ty: BufType) -> io::Result<()> {
        let mut t = i32::try_from(buf_type(ty)).unwrap_or(0);
        self.ioctl(vidioc::VIDIOC_STREAMOFF, &mut t)
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        let n = retry_eintr(|| unsafe { libc::poll(&mut pfd, 1, ms) })?;
        if pfd.revents & libc::POLLNVAL != 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        // POLLERR/POLLHUP (an unplugged device, a queue the driver marked
        // broken) also count as ready: DQBUF then reports the real errno
        // (ENODEV, EIO), which is what the error message should name.
        Ok(n > 0)
    }

    fn dequeue(&mut self, ty: BufType, planes: usize) -> io::Result<Dequeued> {
        let mut storage = zeroed_planes();
        let mut buf = Self::buffer(ty, 0, &mut storage, planes);
        self.ioctl(vidioc::VIDIOC_DQBUF, &mut buf)?;
        let bytesused = match ty {
            BufType::Single => vec![buf.bytesused],
            BufType::Multi => storage[..planes].iter().map(|p| p.bytesused).collect(),
        };
        Ok(Dequeued {
            index: buf.index,
            sequence: buf.sequence,
            bytesused,
            error: buf.flags & BUF_FLAG_ERROR != 0,
        })
    }

    fn plane(&self, index: u32, plane: usize) -> &[u8] {
        match self.maps.get(index as usize).and_then(|b| b.get(plane)) {
            // SAFETY: the mapping is live until drop and `len` bytes long;
            // the driver does not write a buffer while it is dequeued.
            Some(m) => unsafe { std::slice::from_raw_parts(m.ptr.cast::<u8>(), m.len) },
            None => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Request codes as the kernel headers spell them for this target.
    /// Bindings with 64-bit struct sizes on 32-bit ARM fail here.
    #[test]
    fn request_codes_match_the_kernel_abi() {
        let wide = cfg!(target_pointer_width = "64");
        let codes: [(vidioc::_IOC_TYPE, vidioc::_IOC_TYPE); 9] = [
            (vidioc::VIDIOC_QUERYCAP, 0x8068_5600),
            (vidioc::VIDIOC_REQBUFS, 0xc014_5608),
            (vidioc::VIDIOC_S_PARM, 0xc0cc_5616),
            (vidioc::VIDIOC_STREAMON, 0x4004_5612),
            (vidioc::VIDIOC_STREAMOFF, 0x4004_5613),
            (
                vidioc::VIDIOC_S_FMT,
                if wide { 0xc0d0_5605 } else { 0xc0cc_5605 },
            ),
            (
                vidioc::VIDIOC_QUERYBUF,
                if wide { 0xc058_5609 } else { 0xc044_5609 },
            ),
            (
                vidioc::VIDIOC_QBUF,
                if wide { 0xc058_560f } else { 0xc044_560f },
            ),
            (
                vidioc::VIDIOC_DQBUF,
                if wide { 0xc058_5611 } else { 0xc044_5611 },
            ),
        ];
        for (i, (got, want)) in codes.into_iter().enumerate() {
            assert_eq!(got, want, "request {i}: {got:#x} != {want:#x}");
        }
    }

    #[test]
    fn missing_node_reports_enoent() {
        let err = SysOpener
            .open(Path::new("/dev/video-does-not-exist"))
            .expect_err("no such node");
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn path_with_nul_is_an_error_not_a_panic() {
        let err = SysOpener
            .open(Path::new("/dev/vid\0eo0"))
            .expect_err("nul byte");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_node_that_is_not_v4l2_fails_querycap() {
        let mut dev = SysOpener
            .open(Path::new("/dev/null"))
            .expect("open /dev/null");
        assert!(dev.query_caps().is_err());
        // Nothing is mapped: plane lookups are empty, not out of bounds.
        assert!(dev.plane(0, 0).is_empty());
    }
}
