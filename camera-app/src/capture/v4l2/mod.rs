//! V4L2 capture: MMAP streaming from single- and multi-planar devices.
//!
//! The `v4l` crate streams only single-planar buffers, and Rockchip's ISP
//! and CIF capture nodes are multi-planar (`VIDEO_CAPTURE_MPLANE`), so the
//! streaming path is written here on raw ioctls, using the kernel structs
//! and request codes that `v4l` generates from `<linux/videodev2.h>` (sizes
//! differ on 32-bit ARM; nothing is hard-coded).
//!
//! The seam is [`Device`]: one method per ioctl step, in plain Rust types.
//! [`sys::SysDevice`] does the real ioctls; the test double in `fake.rs`
//! records the call sequence and serves scripted frames, so the capture
//! logic (format negotiation, buffer cycling, dropped-frame accounting,
//! reopening with backoff) is tested without a camera.
//!
//! Failure policy: a device that is missing, busy or vanishes mid-stream is
//! retried with exponential backoff (100 ms doubling to 5 s); each failed
//! attempt returns an error naming the device after its backoff wait, so the
//! caller logs it and calls again. A format the device will not deliver is
//! fatal at start-up: the pipeline never meets an unknown format mid-stream.
//!
//! Frames: `seq` counts this source's frames from 0 and skips ahead by the
//! gaps in the driver's `sequence` (dropped frames, also counted as
//! `skipped`), so gaps in `seq` mean lost frames, as for every source. The
//! timestamp is the wall clock at dequeue, not the buffer's timestamp: that
//! one is `CLOCK_MONOTONIC` on most drivers, and counts are reported in
//! wall-clock bins; it is late by the time the frame waited in the queue.

#[cfg(test)]
pub(crate) mod fake;
pub mod sys;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{Frame, FrameSource, PixelFormat, SourceError, SourceStats};

/// Settings of a V4L2 source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V4l2Config {
    /// Device node, for example `/dev/video0` (USB) or `/dev/video11`
    /// (Rockchip ISP main path).
    pub device: PathBuf,
    /// `nv12`, `yuyv` or `mjpeg`.
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// MMAP buffers to request (the driver may grant more or fewer).
    #[serde(default = "default_buffers")]
    pub buffers: u32,
    /// A dequeue that waits longer than this is treated as a stalled
    /// device: the stream is closed and reopened.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_buffers() -> u32 {
    4
}
fn default_timeout_ms() -> u64 {
    2000
}

/// Errors from V4L2 capture, each naming the device.
#[derive(Debug, thiserror::Error)]
pub enum V4l2Error {
    #[error("{device}: {step} failed: {source}")]
    Io {
        device: String,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{device}: {reason}")]
    Unsupported { device: String, reason: String },
    #[error("{device}: no frame within {timeout:?}; reopening")]
    Timeout { device: String, timeout: Duration },
    #[error("{device}: {reason}")]
    BadBuffer { device: String, reason: String },
}

impl V4l2Error {
    /// Errors that retrying cannot fix.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::Unsupported { .. })
    }
}

/// Buffer type: single- or multi-planar capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufType {
    Single,
    Multi,
}

/// What `VIDIOC_QUERYCAP` says, reduced to what capture needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    pub driver: String,
    pub card: String,
    /// The node's own capabilities (`device_caps` when the driver reports
    /// them, else `capabilities`).
    pub caps: u32,
}

pub const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
pub const CAP_VIDEO_CAPTURE_MPLANE: u32 = 0x0000_1000;
pub const CAP_STREAMING: u32 = 0x0400_0000;

/// Fourcc of two-plane NV12 (`NM12`) on multi-planar devices.
pub const FOURCC_NM12: [u8; 4] = *b"NM12";

/// Format as the driver set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub fourcc: [u8; 4],
    pub width: u32,
    pub height: u32,
    /// (bytes per line, size) of each plane.
    pub planes: Vec<(u32, u32)>,
}

/// A dequeued buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dequeued {
    pub index: u32,
    /// The driver's frame counter.
    pub sequence: u32,
    /// Bytes used in each plane.
    pub bytesused: Vec<u32>,
    /// `V4L2_BUF_FLAG_ERROR`: the data may be corrupt.
    pub error: bool,
}

/// One V4L2 device node, one method per ioctl step.
pub trait Device {
    fn query_caps(&mut self) -> io::Result<Caps>;
    /// `VIDIOC_S_FMT`; returns what the driver chose.
    fn set_format(
        &mut self,
        ty: BufType,
        fourcc: [u8; 4],
        width: u32,
        height: u32,
    ) -> io::Result<Negotiated>;
    /// `VIDIOC_S_PARM` with a time per frame of 1/fps.
    fn set_frame_rate(&mut self, ty: BufType, fps: u32) -> io::Result<()>;
    /// `VIDIOC_REQBUFS` (MMAP); returns the count granted.
    fn request_buffers(&mut self, ty: BufType, count: u32) -> io::Result<u32>;
    /// `VIDIOC_QUERYBUF` and mmap of every plane of buffer `index`.
    fn map_buffer(&mut self, ty: BufType, index: u32, planes: usize) -> io::Result<()>;
    /// `VIDIOC_QBUF`.
    fn queue(&mut self, ty: BufType, index: u32, planes: usize) -> io::Result<()>;
    fn stream_on(&mut self, ty: BufType) -> io::Result<()>;
    fn stream_off(&mut self, ty: BufType) -> io::Result<()>;
    /// Wait until a buffer can be dequeued; `false` on timeout.
    fn wait(&mut self, timeout: Duration) -> io::Result<bool>;
    /// `VIDIOC_DQBUF`.
    fn dequeue(&mut self, ty: BufType, planes: usize) -> io::Result<Dequeued>;
    /// Mapped bytes of a plane of a buffer.
    fn plane(&self, index: u32, plane: usize) -> &[u8];
}

/// Opens device nodes.
pub trait Opener {
    type Device: Device;
    fn open(&mut self, path: &Path) -> io::Result<Self::Device>;
}

/// An open, streaming device.
struct Stream<D: Device> {
    dev: D,
    ty: BufType,
    fmt: Negotiated,
    format: PixelFormat,
}

impl<D: Device> Drop for Stream<D> {
    fn drop(&mut self) {
        // Best effort: the device may already be gone.
        let _ = self.dev.stream_off(self.ty);
    }
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A V4L2 camera as a [`FrameSource`].
pub struct V4l2Source<O: Opener = sys::SysOpener> {
    config: V4l2Config,
    opener: O,
    sleep: Box<dyn FnMut(Duration) + Send>,
    stream: Option<Stream<O::Device>>,
    backoff: Duration,
    opened_once: bool,
    next_seq: u64,
    last_sequence: Option<u32>,
    stats: SourceStats,
}

impl<O: Opener> std::fmt::Debug for V4l2Source<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("V4l2Source")
            .field("config", &self.config)
            .field("streaming", &self.stream.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

impl V4l2Source {
    /// Open a real device. See [`V4l2Source::with_opener`].
    pub fn open(config: V4l2Config) -> Result<Self, V4l2Error> {
        Self::with_opener(config, sys::SysOpener, Box::new(std::thread::sleep))
    }
}

impl<O: Opener> V4l2Source<O> {
    /// Check the configuration and try to start streaming. A format the
    /// device refuses is an error here; a missing or busy device is not
    /// (it is logged and retried by [`FrameSource::next_frame`]).
    pub fn with_opener(
        config: V4l2Config,
        opener: O,
        sleep: Box<dyn FnMut(Duration) + Send>,
    ) -> Result<Self, V4l2Error> {
        let device = config.device.display().to_string();
        if !matches!(
            config.format,
            PixelFormat::Nv12 | PixelFormat::Yuyv | PixelFormat::Mjpeg
        ) {
            return Err(V4l2Error::Unsupported {
                device,
                reason: format!(
                    "capture format {} is not supported (use nv12, yuyv or mjpeg)",
                    config.format
                ),
            });
        }
        if config.width == 0 || config.height == 0 || config.fps == 0 || config.buffers == 0 {
            return Err(V4l2Error::Unsupported {
                device,
                reason: "width, height, fps and buffers must be positive".into(),
            });
        }
        let mut src = Self {
            config,
            opener,
            sleep,
            stream: None,
            backoff: BACKOFF_MIN,
            opened_once: false,
            next_seq: 0,
            last_sequence: None,
            stats: SourceStats::default(),
        };
        match src.start() {
            Ok(s) => {
                src.stream = Some(s);
                src.opened_once = true;
            }
            Err(e) if e.is_fatal() => return Err(e),
            Err(e) => tracing::warn!(error = %e, "camera not available yet; will retry"),
        }
        Ok(src)
    }

    fn device_name(&self) -> String {
        self.config.device.display().to_string()
    }

    /// Open, negotiate, map and queue buffers, start streaming.
    // Once per stream start, not per frame: the ioctl sequence reads best
    // in one piece.
    #[allow(clippy::too_many_lines)]
    fn start(&mut self) -> Result<Stream<O::Device>, V4l2Error> {
        let device = self.device_name();
        let io = |step: &'static str| {
            let device = device.clone();
            move |source| V4l2Error::Io {
                device,
                step,
                source,
            }
        };
        let unsupported = |reason: String| V4l2Error::Unsupported {
            device: device.clone(),
            reason,
        };
        let mut dev = self.opener.open(&self.config.device).map_err(io("open"))?;
        let caps = dev.query_caps().map_err(io("VIDIOC_QUERYCAP"))?;
        let ty = if caps.caps & CAP_VIDEO_CAPTURE_MPLANE != 0 {
            BufType::Multi
        } else if caps.caps & CAP_VIDEO_CAPTURE != 0 {
            BufType::Single
        } else {
            return Err(unsupported(format!(
                "{} ({}) is not a video capture device",
                caps.card, caps.driver
            )));
        };
        if caps.caps & CAP_STREAMING == 0 {
            return Err(unsupported(format!(
                "{} ({}) does not support streaming I/O",
                caps.card, caps.driver
            )));
        }
        let want = self.config.format.fourcc();
        let mut fmt = dev
            .set_format(ty, want, self.config.width, self.config.height)
            .map_err(io("VIDIOC_S_FMT"))?;
        let nv12_two_planes = self.config.format == PixelFormat::Nv12 && fmt.fourcc == FOURCC_NM12;
        if fmt.fourcc != want && !nv12_two_planes {
            return Err(unsupported(format!(
                "asked for {}, the driver offers {}",
                fourcc_str(want),
                fourcc_str(fmt.fourcc)
            )));
        }
        let expected_planes = match ty {
            BufType::Single => 1,
            BufType::Multi if nv12_two_planes => 2,
            BufType::Multi => 1,
        };
        if fmt.planes.len() != expected_planes {
            return Err(unsupported(format!(
                "{} with {} planes is not supported",
                fourcc_str(fmt.fourcc),
                fmt.planes.len()
            )));
        }
        if fmt.width == 0 || fmt.height == 0 {
            return Err(unsupported(format!(
                "the driver set an empty frame size {}x{}",
                fmt.width, fmt.height
            )));
        }
        // Every plane of the formats we take (YUYV; NV12's Y and UV) needs
        // at least `min_stride` bytes per line. Some drivers report 0 for a
        // tightly packed plane; anything else below the minimum would make
        // every frame malformed, so it is refused here, not per frame.
        if let Some(min) = self.config.format.min_stride(fmt.width) {
            for (i, plane) in fmt.planes.iter_mut().enumerate() {
                if plane.0 == 0 {
                    plane.0 = min;
                } else if plane.0 < min {
                    return Err(unsupported(format!(
                        "plane {i} of {} {}x{} has {} bytes per line, below the minimum {min}",
                        fourcc_str(fmt.fourcc),
                        fmt.width,
                        fmt.height,
                        plane.0
                    )));
                }
            }
        }
        if (fmt.width, fmt.height) != (self.config.width, self.config.height) {
            tracing::warn!(
                device = %device,
                asked = %format!("{}x{}", self.config.width, self.config.height),
                got = %format!("{}x{}", fmt.width, fmt.height),
                "driver changed the frame size"
            );
        }
        if let Err(e) = dev.set_frame_rate(ty, self.config.fps) {
            // Many UVC cameras fix the rate per mode; not fatal.
            tracing::warn!(device = %device, error = %e, "cannot set the frame rate");
        }
        let count = dev
            .request_buffers(ty, self.config.buffers)
            .map_err(io("VIDIOC_REQBUFS"))?;
        if count == 0 {
            return Err(unsupported("the driver granted no buffers".into()));
        }
        let planes = fmt.planes.len();
        for i in 0..count {
            dev.map_buffer(ty, i, planes)
                .map_err(io("VIDIOC_QUERYBUF/mmap"))?;
        }
        for i in 0..count {
            dev.queue(ty, i, planes).map_err(io("VIDIOC_QBUF"))?;
        }
        dev.stream_on(ty).map_err(io("VIDIOC_STREAMON"))?;
        tracing::info!(
            device = %device,
            card = %caps.card,
            multiplanar = ty == BufType::Multi,
            format = %fourcc_str(fmt.fourcc),
            size = %format!("{}x{}", fmt.width, fmt.height),
            buffers = count,
            "streaming"
        );
        Ok(Stream {
            dev,
            ty,
            fmt,
            format: self.config.format,
        })
    }

    /// Dequeue one buffer, copy it into a frame, queue it again.
    fn capture(&mut self) -> Result<Frame, V4l2Error> {
        let device = self.device_name();
        let timeout = Duration::from_millis(self.config.timeout_ms);
        let Some(s) = self.stream.as_mut() else {
            return Err(V4l2Error::BadBuffer {
                device,
                reason: "not streaming".into(),
            });
        };
        let io = |step: &'static str| {
            let device = device.clone();
            move |source| V4l2Error::Io {
                device,
                step,
                source,
            }
        };
        if !s.dev.wait(timeout).map_err(io("poll"))? {
            return Err(V4l2Error::Timeout { device, timeout });
        }
        let planes = s.fmt.planes.len();
        let buf = s.dev.dequeue(s.ty, planes).map_err(io("VIDIOC_DQBUF"))?;
        let copied = copy_frame(s, &buf);
        // Give the buffer back whatever its content was.
        s.dev
            .queue(s.ty, buf.index, planes)
            .map_err(io("VIDIOC_QBUF"))?;
        // Frames the driver dropped show as gaps in its sequence. The
        // difference is taken modulo 2^32 so a wrapping counter is fine; a
        // counter that moved backwards (a driver restarting it) is no gap.
        if let Some(last) = self.last_sequence {
            let ahead = buf.sequence.wrapping_sub(last);
            if ahead < 1 << 31 {
                let gap = u64::from(ahead.saturating_sub(1));
                self.stats.skipped += gap;
                self.next_seq += gap;
            }
        }
        self.last_sequence = Some(buf.sequence);
        let seq = self.next_seq;
        self.next_seq += 1;
        let (data, stride) = copied.map_err(|reason| V4l2Error::BadBuffer {
            device: device.clone(),
            reason,
        })?;
        if buf.error {
            return Err(V4l2Error::BadBuffer {
                device,
                reason: format!("driver flagged buffer {} as corrupt", buf.index),
            });
        }
        Ok(Frame {
            seq,
            // Wall clock at dequeue: buffer timestamps are CLOCK_MONOTONIC
            // and results are reported in wall-clock bins.
            timestamp: super::now(),
            width: s.fmt.width,
            height: s.fmt.height,
            stride,
            format: s.format,
            data,
        })
    }
}

/// Copy a dequeued buffer into tight frame data: (data, stride).
fn copy_frame<D: Device>(s: &Stream<D>, buf: &Dequeued) -> Result<(Vec<u8>, u32), String> {
    let plane0 = s.dev.plane(buf.index, 0);
    let used0 = buf.bytesused.first().copied().unwrap_or(0) as usize;
    let (stride, _) = s.fmt.planes[0];
    let h = s.fmt.height as usize;
    match s.format {
        PixelFormat::Mjpeg => {
            if used0 == 0 || used0 > plane0.len() {
                return Err(format!(
                    "MJPEG buffer {} uses {used0} of {} bytes",
                    buf.index,
                    plane0.len()
                ));
            }
            Ok((plane0[..used0].to_vec(), 0))
        }
        PixelFormat::Nv12 if s.fmt.planes.len() == 2 => {
            let (uv_stride, _) = s.fmt.planes[1];
            let plane1 = s.dev.plane(buf.index, 1);
            let (y_len, uv_rows) = (stride as usize * h, h.div_ceil(2));
            if plane0.len() < y_len || plane1.len() < uv_stride as usize * uv_rows {
                return Err(format!("NM12 buffer {} is too small", buf.index));
            }
            let mut data = Vec::with_capacity(y_len + stride as usize * uv_rows);
            data.extend_from_slice(&plane0[..y_len]);
            if uv_stride == stride {
                data.extend_from_slice(&plane1[..stride as usize * uv_rows]);
            } else {
                // The frame keeps one stride: re-stride the chroma rows.
                let row = (s.fmt.width as usize).min(uv_stride as usize);
                for r in plane1.chunks(uv_stride as usize).take(uv_rows) {
                    data.extend_from_slice(&r[..row]);
                    data.resize(data.len() + stride as usize - row, 0);
                }
            }
            Ok((data, stride))
        }
        format => {
            let need = format.frame_len(stride, s.fmt.height).unwrap_or(0);
            if plane0.len() < need {
                return Err(format!(
                    "buffer {} holds {} bytes, {} {}x{} stride {stride} needs {need}",
                    buf.index,
                    plane0.len(),
                    format,
                    s.fmt.width,
                    s.fmt.height
                ));
            }
            Ok((plane0[..need].to_vec(), stride))
        }
    }
}

fn fourcc_str(f: [u8; 4]) -> String {
    f.iter()
        .map(|&b| {
            if b.is_ascii_graphic() {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

impl<O: Opener> FrameSource for V4l2Source<O> {
    fn describe(&self) -> String {
        format!("v4l2:{}", self.config.device.display())
    }

    fn format(&self) -> PixelFormat {
        self.config.format
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        if self.stream.is_none() {
            match self.start() {
                Ok(s) => {
                    self.stream = Some(s);
                    if self.opened_once {
                        self.stats.reopens += 1;
                    }
                    self.opened_once = true;
                    self.last_sequence = None;
                }
                Err(e) if e.is_fatal() => return Err(e.into()),
                Err(e) => {
                    (self.sleep)(self.backoff);
                    self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                    return Err(e.into());
                }
            }
        }
        match self.capture() {
            Ok(frame) => {
                self.backoff = BACKOFF_MIN;
                self.stats.delivered += 1;
                Ok(Some(frame))
            }
            Err(e @ V4l2Error::BadBuffer { .. }) => {
                // One bad buffer: skip it, keep streaming.
                self.stats.skipped += 1;
                Err(e.into())
            }
            Err(e) => {
                // The device vanished or stalled: close it; the next call
                // reopens it after a backoff.
                self.stream = None;
                (self.sleep)(self.backoff);
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                Err(e.into())
            }
        }
    }

    fn stats(&self) -> SourceStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::fake::{Event, FakeOpener, Script, Shared};
    use super::*;

    fn config(format: PixelFormat, w: u32, h: u32) -> V4l2Config {
        V4l2Config {
            device: PathBuf::from("/dev/video11"),
            format,
            width: w,
            height: h,
            fps: 15,
            buffers: 4,
            timeout_ms: 1000,
        }
    }

    type Opened = Result<V4l2Source<FakeOpener>, V4l2Error>;
    type Sleeps = Arc<Mutex<Vec<Duration>>>;

    fn source(cfg: V4l2Config, script: Script) -> (Opened, Shared, Sleeps) {
        let shared = Arc::new(Mutex::new(script));
        let sleeps = Arc::new(Mutex::new(Vec::new()));
        let s2 = sleeps.clone();
        let src = V4l2Source::with_opener(
            cfg,
            FakeOpener(shared.clone()),
            Box::new(move |d| s2.lock().expect("lock").push(d)),
        );
        (src, shared, sleeps)
    }

    fn log(s: &Shared) -> Vec<String> {
        std::mem::take(&mut s.lock().expect("lock").log)
    }

    fn push(s: &Shared, ev: Event) {
        s.lock().expect("lock").events.push_back(ev);
    }

    #[test]
    fn single_planar_yuyv_ioctl_sequence_and_frame() {
        let (w, h) = (4u32, 2u32);
        let (src, shared, _) = source(
            config(PixelFormat::Yuyv, w, h),
            Script::new(false, w, h, vec![(8, 16)]),
        );
        let mut src = src.expect("open");
        assert_eq!(
            log(&shared),
            [
                "open /dev/video11",
                "QUERYCAP",
                "S_FMT CAPTURE YUYV 4x2",
                "S_PARM CAPTURE 1/15",
                "REQBUFS CAPTURE MMAP 4",
                "QUERYBUF+MMAP CAPTURE 0 planes=1",
                "QUERYBUF+MMAP CAPTURE 1 planes=1",
                "QUERYBUF+MMAP CAPTURE 2 planes=1",
                "QBUF CAPTURE 0",
                "QBUF CAPTURE 1",
                "QBUF CAPTURE 2",
                "STREAMON CAPTURE",
            ]
        );
        let data: Vec<u8> = (0..16).collect();
        push(
            &shared,
            Event::Frame {
                planes: vec![data.clone()],
                sequence: 7,
            },
        );
        let f = src.next_frame().expect("ok").expect("frame");
        assert_eq!((f.seq, f.width, f.height, f.stride), (0, 4, 2, 8));
        assert_eq!(f.format, PixelFormat::Yuyv);
        assert_eq!(f.data, data);
        f.check().expect("layout");
        // The buffer goes straight back to the driver.
        assert_eq!(log(&shared), ["DQBUF CAPTURE 0", "QBUF CAPTURE 0"]);
    }

    #[test]
    fn multi_planar_nv12_one_plane() {
        let (w, h) = (4u32, 4u32);
        // Stride 8 > width 4: padded rows are kept, the frame says so.
        let (src, shared, _) = source(
            config(PixelFormat::Nv12, w, h),
            Script::new(true, w, h, vec![(8, 48)]),
        );
        let mut src = src.expect("open");
        assert_eq!(
            log(&shared),
            [
                "open /dev/video11",
                "QUERYCAP",
                "S_FMT CAPTURE_MPLANE NV12 4x4",
                "S_PARM CAPTURE_MPLANE 1/15",
                "REQBUFS CAPTURE_MPLANE MMAP 4",
                "QUERYBUF+MMAP CAPTURE_MPLANE 0 planes=1",
                "QUERYBUF+MMAP CAPTURE_MPLANE 1 planes=1",
                "QUERYBUF+MMAP CAPTURE_MPLANE 2 planes=1",
                "QBUF CAPTURE_MPLANE 0",
                "QBUF CAPTURE_MPLANE 1",
                "QBUF CAPTURE_MPLANE 2",
                "STREAMON CAPTURE_MPLANE",
            ]
        );
        let data: Vec<u8> = (0..48).collect();
        push(
            &shared,
            Event::Frame {
                planes: vec![data.clone()],
                sequence: 0,
            },
        );
        let f = src.next_frame().expect("ok").expect("frame");
        assert_eq!((f.stride, f.format), (8, PixelFormat::Nv12));
        assert_eq!(f.data, data);
        f.check().expect("layout");
    }

    #[test]
    fn multi_planar_nm12_two_planes_are_joined() {
        let (w, h) = (4u32, 2u32);
        let mut script = Script::new(true, w, h, vec![(4, 8), (4, 4)]);
        script.offer_fourcc = Some(FOURCC_NM12);
        let (src, shared, _) = source(config(PixelFormat::Nv12, w, h), script);
        let mut src = src.expect("open");
        assert_eq!(
            log(&shared),
            [
                "open /dev/video11",
                "QUERYCAP",
                "S_FMT CAPTURE_MPLANE NV12 4x2",
                "S_PARM CAPTURE_MPLANE 1/15",
                "REQBUFS CAPTURE_MPLANE MMAP 4",
                "QUERYBUF+MMAP CAPTURE_MPLANE 0 planes=2",
                "QUERYBUF+MMAP CAPTURE_MPLANE 1 planes=2",
                "QUERYBUF+MMAP CAPTURE_MPLANE 2 planes=2",
                "QBUF CAPTURE_MPLANE 0",
                "QBUF CAPTURE_MPLANE 1",
                "QBUF CAPTURE_MPLANE 2",
                "STREAMON CAPTURE_MPLANE",
            ]
        );
        push(
            &shared,
            Event::Frame {
                planes: vec![vec![1; 8], vec![2; 4]],
                sequence: 0,
            },
        );
        let f = src.next_frame().expect("ok").expect("frame");
        assert_eq!(f.data, [vec![1u8; 8], vec![2u8; 4]].concat());
        f.check().expect("layout");
    }

    #[test]
    fn mjpeg_copies_only_the_bytes_used() {
        let (src, shared, _) = source(
            config(PixelFormat::Mjpeg, 640, 480),
            Script::new(false, 640, 480, vec![(0, 4096)]),
        );
        let mut src = src.expect("open");
        let jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 0xFF, 0xD9];
        push(
            &shared,
            Event::Frame {
                planes: vec![jpeg.clone()],
                sequence: 0,
            },
        );
        let f = src.next_frame().expect("ok").expect("frame");
        assert_eq!(f.data, jpeg);
        assert_eq!(f.format, PixelFormat::Mjpeg);
    }

    #[test]
    fn a_format_the_driver_will_not_deliver_is_refused_at_open() {
        let mut script = Script::new(false, 640, 480, vec![(1280, 614_400)]);
        script.offer_fourcc = Some(*b"YUYV");
        let (src, _, _) = source(config(PixelFormat::Nv12, 640, 480), script);
        let err = src.expect_err("refused");
        assert!(err.is_fatal());
        let msg = err.to_string();
        assert!(msg.contains("/dev/video11"), "{msg}");
        assert!(
            msg.contains("asked for NV12, the driver offers YUYV"),
            "{msg}"
        );
    }

    #[test]
    fn rgb_capture_is_refused_before_touching_the_device() {
        let (src, shared, _) = source(
            config(PixelFormat::Rgb24, 640, 480),
            Script::new(false, 640, 480, vec![(1920, 921_600)]),
        );
        let err = src.expect_err("refused");
        assert!(err.to_string().contains("rgb24"), "{err}");
        assert!(log(&shared).is_empty());
    }

    #[test]
    fn busy_device_names_the_device_and_is_retried_with_backoff() {
        let mut script = Script::new(false, 4, 2, vec![(8, 16)]);
        script.open_errors = [libc::EBUSY, libc::ENOENT, libc::EBUSY].into();
        let (src, shared, sleeps) = source(config(PixelFormat::Yuyv, 4, 2), script);
        // Start-up does not fail for a busy device.
        let mut src = src.expect("open");
        for reason in ["No such file", "busy"] {
            let err = src.next_frame().expect_err("still busy");
            let msg = err.to_string();
            assert!(msg.contains("/dev/video11: open failed"), "{msg}");
            assert!(msg.contains(reason), "{msg}");
            assert!(!matches!(&err, SourceError::V4l2(e) if e.is_fatal()));
        }
        push(
            &shared,
            Event::Frame {
                planes: vec![vec![9; 16]],
                sequence: 0,
            },
        );
        let f = src.next_frame().expect("ok").expect("frame");
        assert_eq!(f.data, vec![9; 16]);
        assert_eq!(
            *sleeps.lock().expect("lock"),
            [Duration::from_millis(100), Duration::from_millis(200)]
        );
        // The first successful open is not a reopen.
        assert_eq!(src.stats().reopens, 0);
    }

    #[test]
    fn vanished_device_is_reopened_with_growing_backoff_and_frames_resume() {
        let mut script = Script::new(true, 4, 2, vec![(8, 16)]);
        script.events = [
            Event::Frame {
                planes: vec![vec![1; 16]],
                sequence: 10,
            },
            Event::Vanish,
        ]
        .into();
        let (src, shared, sleeps) = source(config(PixelFormat::Yuyv, 4, 2), script);
        let mut src = src.expect("open");
        assert_eq!(src.next_frame().expect("ok").expect("frame").seq, 0);
        log(&shared);
        let err = src.next_frame().expect_err("vanished");
        assert!(err.to_string().contains("/dev/video11"), "{err}");
        assert!(err.to_string().contains("os error 19"), "{err}");
        assert_eq!(log(&shared), ["STREAMOFF CAPTURE_MPLANE"]);
        // Unplugged: the node is gone twice, then it comes back.
        shared.lock().expect("lock").open_errors = [libc::ENOENT, libc::ENOENT].into();
        for _ in 0..2 {
            src.next_frame().expect_err("gone");
        }
        push(
            &shared,
            Event::Frame {
                planes: vec![vec![2; 16]],
                sequence: 0,
            },
        );
        let f = src.next_frame().expect("ok").expect("frame");
        assert_eq!(f.data, vec![2; 16]);
        assert_eq!(f.seq, 1);
        assert_eq!(src.stats().reopens, 1);
        assert_eq!(
            *sleeps.lock().expect("lock"),
            [
                Duration::from_millis(100),
                Duration::from_millis(200),
                Duration::from_millis(400)
            ]
        );
        // Backoff starts again from the minimum after frames flow.
        push(&shared, Event::Vanish);
        src.next_frame().expect_err("vanished again");
        assert_eq!(
            sleeps.lock().expect("lock").last(),
            Some(&Duration::from_millis(100))
        );
    }

    #[test]
    fn driver_sequence_gaps_count_as_skipped_frames() {
        let (src, shared, _) = source(
            config(PixelFormat::Yuyv, 4, 2),
            Script::new(false, 4, 2, vec![(8, 16)]),
        );
        let mut src = src.expect("open");
        for sequence in [5, 6, 9] {
            push(
                &shared,
                Event::Frame {
                    planes: vec![vec![0; 16]],
                    sequence,
                },
            );
        }
        let seqs: Vec<u64> = (0..3)
            .map(|_| src.next_frame().expect("ok").expect("frame").seq)
            .collect();
        assert_eq!(seqs, [0, 1, 4]);
        assert_eq!(src.stats().skipped, 2);
        assert_eq!(src.stats().delivered, 3);
    }

    #[test]
    fn stalled_device_is_closed_and_reopened() {
        let (src, shared, sleeps) = source(
            config(PixelFormat::Yuyv, 4, 2),
            Script::new(false, 4, 2, vec![(8, 16)]),
        );
        let mut src = src.expect("open");
        push(&shared, Event::Stall);
        let err = src.next_frame().expect_err("stall");
        assert!(err.to_string().contains("no frame within"), "{err}");
        push(
            &shared,
            Event::Frame {
                planes: vec![vec![3; 16]],
                sequence: 0,
            },
        );
        src.next_frame().expect("ok").expect("frame");
        assert_eq!(src.stats().reopens, 1);
        assert_eq!(sleeps.lock().expect("lock").len(), 1);
    }

    #[test]
    fn nm12_chroma_with_its_own_stride_is_restrided() {
        // Y stride 8, UV stride 6 (width 4): the frame keeps stride 8 and
        // each chroma row is copied, then padded to 8.
        let mut script = Script::new(true, 4, 2, vec![(8, 16), (6, 6)]);
        script.offer_fourcc = Some(FOURCC_NM12);
        let (src, shared, _) = source(config(PixelFormat::Nv12, 4, 2), script);
        let mut src = src.expect("open");
        push(
            &shared,
            Event::Frame {
                planes: vec![vec![1; 16], vec![7, 7, 7, 7, 9, 9]],
                sequence: 0,
            },
        );
        let f = src.next_frame().expect("ok").expect("frame");
        assert_eq!(f.stride, 8);
        assert_eq!(&f.data[..16], &[1; 16]);
        assert_eq!(&f.data[16..], &[7, 7, 7, 7, 0, 0, 0, 0]);
        f.check().expect("layout");
    }

    #[test]
    fn a_size_the_driver_changed_is_what_frames_carry() {
        // Asked for 640x480; the driver can only do 4x2.
        let (src, shared, _) = source(
            config(PixelFormat::Yuyv, 640, 480),
            Script::new(false, 4, 2, vec![(8, 16)]),
        );
        let mut src = src.expect("open");
        push(
            &shared,
            Event::Frame {
                planes: vec![vec![5; 16]],
                sequence: 0,
            },
        );
        let f = src.next_frame().expect("ok").expect("frame");
        assert_eq!((f.width, f.height, f.stride, f.data.len()), (4, 2, 8, 16));
        f.check().expect("layout");
    }

    #[test]
    fn zero_bytes_per_line_means_tightly_packed() {
        let (src, shared, _) = source(
            config(PixelFormat::Yuyv, 4, 2),
            Script::new(false, 4, 2, vec![(0, 16)]),
        );
        let mut src = src.expect("open");
        push(
            &shared,
            Event::Frame {
                planes: vec![vec![5; 16]],
                sequence: 0,
            },
        );
        let f = src.next_frame().expect("ok").expect("frame");
        assert_eq!(f.stride, 8);
        f.check().expect("layout");
    }

    #[test]
    fn a_stride_below_the_minimum_is_refused_at_open() {
        let (src, _, _) = source(
            config(PixelFormat::Yuyv, 4, 2),
            Script::new(false, 4, 2, vec![(6, 12)]),
        );
        let err = src.expect_err("refused");
        assert!(err.is_fatal());
        let msg = err.to_string();
        assert!(msg.contains("/dev/video11"), "{msg}");
        assert!(msg.contains("YUYV 4x2 has 6 bytes per line"), "{msg}");
    }

    #[test]
    fn a_driver_sequence_that_restarts_or_wraps_is_no_gap() {
        let (src, shared, _) = source(
            config(PixelFormat::Yuyv, 4, 2),
            Script::new(false, 4, 2, vec![(8, 16)]),
        );
        let mut src = src.expect("open");
        for sequence in [1000, 3, u32::MAX, 0, 2] {
            push(
                &shared,
                Event::Frame {
                    planes: vec![vec![0; 16]],
                    sequence,
                },
            );
        }
        let seqs: Vec<u64> = (0..5)
            .map(|_| src.next_frame().expect("ok").expect("frame").seq)
            .collect();
        // 1000 -> 3 restarts; 3 -> MAX is far ahead (treated as a restart
        // too, modulo 2^32 it is behind); MAX -> 0 wraps; 0 -> 2 drops one.
        assert_eq!(seqs, [0, 1, 2, 3, 5]);
        assert_eq!(src.stats().skipped, 1);
    }
}
