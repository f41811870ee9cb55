//! A scripted V4L2 device for tests: records every ioctl step, serves
//! frames from a script, and can vanish, be busy or change the format.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{
    BufType, CAP_STREAMING, CAP_VIDEO_CAPTURE, CAP_VIDEO_CAPTURE_MPLANE, Caps, Dequeued, Device,
    Negotiated, Opener,
};

/// What the fake does on the next dequeue.
#[derive(Debug, Clone)]
pub enum Event {
    /// A frame: bytes per plane (written into the buffer) and the driver's
    /// sequence number.
    Frame { planes: Vec<Vec<u8>>, sequence: u32 },
    /// The device is unplugged: poll reports ENODEV.
    Vanish,
    /// Nothing arrives (poll times out).
    Stall,
}

/// Behaviour shared between the opener and the devices it opens, so a test
/// can script across reopens and read the log afterwards.
#[derive(Debug)]
pub struct Script {
    pub multiplanar: bool,
    /// The driver answers S_FMT with this fourcc (None: as asked).
    pub offer_fourcc: Option<[u8; 4]>,
    /// Planes the driver reports: (bytes per line, size).
    pub planes: Vec<(u32, u32)>,
    pub width: u32,
    pub height: u32,
    pub buffers_granted: u32,
    /// Results of successive open() calls; an empty queue means success.
    pub open_errors: VecDeque<i32>,
    pub events: VecDeque<Event>,
    pub log: Vec<String>,
}

impl Script {
    pub fn new(multiplanar: bool, width: u32, height: u32, planes: Vec<(u32, u32)>) -> Self {
        Self {
            multiplanar,
            offer_fourcc: None,
            planes,
            width,
            height,
            buffers_granted: 3,
            open_errors: VecDeque::new(),
            events: VecDeque::new(),
            log: Vec::new(),
        }
    }
}

pub type Shared = Arc<Mutex<Script>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Script> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Clone)]
pub struct FakeOpener(pub Shared);

impl Opener for FakeOpener {
    type Device = FakeDevice;

    fn open(&mut self, path: &Path) -> io::Result<FakeDevice> {
        let mut s = lock(&self.0);
        s.log.push(format!("open {}", path.display()));
        if let Some(errno) = s.open_errors.pop_front() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        Ok(FakeDevice {
            script: self.0.clone(),
            buffers: Vec::new(),
            queued: VecDeque::new(),
            pending: None,
        })
    }
}

#[derive(Debug)]
pub struct FakeDevice {
    script: Shared,
    /// buffers[index][plane]
    buffers: Vec<Vec<Vec<u8>>>,
    queued: VecDeque<u32>,
    /// The event poll saw, for the dequeue that follows.
    pending: Option<Event>,
}

fn ty_name(ty: BufType) -> &'static str {
    match ty {
        BufType::Single => "CAPTURE",
        BufType::Multi => "CAPTURE_MPLANE",
    }
}

impl FakeDevice {
    fn log(&self, line: String) {
        lock(&self.script).log.push(line);
    }
}

impl Device for FakeDevice {
    fn query_caps(&mut self) -> io::Result<Caps> {
        let s = lock(&self.script);
        let kind = if s.multiplanar {
            CAP_VIDEO_CAPTURE_MPLANE
        } else {
            CAP_VIDEO_CAPTURE
        };
        drop(s);
        self.log("QUERYCAP".into());
        Ok(Caps {
            driver: "fake".into(),
            card: "Fake Camera".into(),
            caps: kind | CAP_STREAMING,
        })
    }

    fn set_format(
        &mut self,
        ty: BufType,
        fourcc: [u8; 4],
        width: u32,
        height: u32,
    ) -> io::Result<Negotiated> {
        self.log(format!(
            "S_FMT {} {} {width}x{height}",
            ty_name(ty),
            String::from_utf8_lossy(&fourcc)
        ));
        let s = lock(&self.script);
        Ok(Negotiated {
            fourcc: s.offer_fourcc.unwrap_or(fourcc),
            width: s.width,
            height: s.height,
            planes: s.planes.clone(),
        })
    }

    fn set_frame_rate(&mut self, ty: BufType, fps: u32) -> io::Result<()> {
        self.log(format!("S_PARM {} 1/{fps}", ty_name(ty)));
        Ok(())
    }

    fn request_buffers(&mut self, ty: BufType, count: u32) -> io::Result<u32> {
        self.log(format!("REQBUFS {} MMAP {count}", ty_name(ty)));
        Ok(lock(&self.script).buffers_granted)
    }

    fn map_buffer(&mut self, ty: BufType, index: u32, planes: usize) -> io::Result<()> {
        self.log(format!(
            "QUERYBUF+MMAP {} {index} planes={planes}",
            ty_name(ty)
        ));
        let sizes: Vec<usize> = lock(&self.script)
            .planes
            .iter()
            .map(|&(_, size)| size as usize)
            .collect();
        let i = index as usize;
        if self.buffers.len() <= i {
            self.buffers.resize(i + 1, Vec::new());
        }
        self.buffers[i] = sizes.into_iter().map(|n| vec![0u8; n]).collect();
        Ok(())
    }

    fn queue(&mut self, ty: BufType, index: u32, _planes: usize) -> io::Result<()> {
        self.log(format!("QBUF {} {index}", ty_name(ty)));
        self.queued.push_back(index);
        Ok(())
    }

    fn stream_on(&mut self, ty: BufType) -> io::Result<()> {
        self.log(format!("STREAMON {}", ty_name(ty)));
        Ok(())
    }

    fn stream_off(&mut self, ty: BufType) -> io::Result<()> {
        self.log(format!("STREAMOFF {}", ty_name(ty)));
        Ok(())
    }

    fn wait(&mut self, _timeout: Duration) -> io::Result<bool> {
        let ev = lock(&self.script)
            .events
            .pop_front()
            .unwrap_or(Event::Stall);
        match ev {
            Event::Vanish => Err(io::Error::from_raw_os_error(libc::ENODEV)),
            Event::Stall => Ok(false),
            frame @ Event::Frame { .. } => {
                self.pending = Some(frame);
                Ok(true)
            }
        }
    }

    fn dequeue(&mut self, ty: BufType, _planes: usize) -> io::Result<Dequeued> {
        let Some(Event::Frame { planes, sequence }) = self.pending.take() else {
            return Err(io::Error::from_raw_os_error(libc::EAGAIN));
        };
        let index = self
            .queued
            .pop_front()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
        let mut bytesused = Vec::new();
        for (dst, src) in self.buffers[index as usize].iter_mut().zip(&planes) {
            let n = src.len().min(dst.len());
            dst[..n].copy_from_slice(&src[..n]);
            bytesused.push(u32::try_from(n).unwrap_or(u32::MAX));
        }
        self.log(format!("DQBUF {} {index}", ty_name(ty)));
        Ok(Dequeued {
            index,
            sequence,
            bytesused,
            error: false,
        })
    }

    fn plane(&self, index: u32, plane: usize) -> &[u8] {
        self.buffers
            .get(index as usize)
            .and_then(|b| b.get(plane))
            .map_or(&[], Vec::as_slice)
    }
}
