//! Frames from files: a directory of JPEG/PNG images (in name order) or one
//! MJPEG stream (concatenated JPEGs), at a given frame rate.
//!
//! Time comes from the frames, not the clock: frame `i` is stamped
//! `start + i / fps`, so a run over the same files gives the same results.
//! JPEGs are handed on compressed ([`PixelFormat::Mjpeg`]), as a USB camera
//! would; the pipeline decodes them. A file or stream chunk that cannot be
//! read is skipped and counted, and its index still advances the clock.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{Frame, FrameSource, Pacer, PixelFormat, SourceError, SourceStats, Timestamp};

/// Settings of a file source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// A directory of `.jpg`/`.jpeg`/`.png` files, or an `.mjpeg`/`.mjpg` file.
    pub path: PathBuf,
    /// Frames per second the files stand for.
    #[serde(default = "default_fps")]
    pub fps: f64,
    /// Time of the first frame, microseconds since the Unix epoch (default
    /// 2026-01-01T00:00:00Z, so runs are reproducible).
    #[serde(default = "default_start")]
    pub start_us: u64,
    /// Start again from the first file at the end (times keep increasing).
    #[serde(default)]
    pub repeat: bool,
    /// Deliver frames at `fps` of wall-clock time, stamped with the clock
    /// (`start_us` is then unused): a recording played as if it were live,
    /// for a broker and an installer's tools watching it.
    #[serde(default)]
    pub realtime: bool,
}

fn default_fps() -> f64 {
    10.0
}

/// 2026-01-01T00:00:00Z.
pub const DEFAULT_START_US: u64 = 1_767_225_600_000_000;

fn default_start() -> u64 {
    DEFAULT_START_US
}

impl FilesConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            fps: default_fps(),
            start_us: DEFAULT_START_US,
            repeat: false,
            realtime: false,
        }
    }
}

enum Items {
    Images(Vec<PathBuf>),
    /// Byte ranges of each JPEG inside the stream, or the reason a chunk is
    /// unusable.
    Stream {
        data: Vec<u8>,
        chunks: Vec<Result<(usize, usize), String>>,
    },
}

impl Items {
    fn len(&self) -> usize {
        match self {
            Self::Images(v) => v.len(),
            Self::Stream { chunks, .. } => chunks.len(),
        }
    }
}

/// A directory of images or an MJPEG stream file.
pub struct FileSource {
    config: FilesConfig,
    items: Items,
    /// Next item index within one pass.
    next: usize,
    /// Frames issued or skipped so far, over all passes: the frame clock.
    index: u64,
    /// With `realtime`.
    pacer: Pacer,
    stats: SourceStats,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("path", &self.config.path)
            .field("items", &self.items.len())
            .field("next", &self.next)
            .finish()
    }
}

impl FileSource {
    /// Open a directory or MJPEG file. Fails if the path has no frames at
    /// all or the frame rate is not positive.
    pub fn open(config: FilesConfig) -> Result<Self, SourceError> {
        let path = &config.path;
        let invalid = |reason: String| SourceError::Invalid {
            path: path.display().to_string(),
            reason,
        };
        if !(config.fps.is_finite() && config.fps > 0.0) {
            return Err(invalid(format!("fps must be positive, got {}", config.fps)));
        }
        let io = |source| SourceError::Io {
            path: path.display().to_string(),
            source,
        };
        let items = if path.is_dir() {
            let mut files: Vec<PathBuf> = fs::read_dir(path)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| image_kind(p).is_some())
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(invalid("no .jpg, .jpeg or .png files".into()));
            }
            Items::Images(files)
        } else {
            let data = fs::read(path).map_err(io)?;
            let chunks = split_mjpeg(&data);
            if chunks.is_empty() {
                return Err(invalid("no JPEG frames in the stream".into()));
            }
            Items::Stream { data, chunks }
        };
        Ok(Self {
            config,
            items,
            next: 0,
            index: 0,
            pacer: Pacer::default(),
            stats: SourceStats::default(),
        })
    }

    /// The frame clock's time of frame `index`; with `realtime`, waits for
    /// it and reads the wall clock.
    fn timestamp(&mut self, index: u64) -> Timestamp {
        let offset = Duration::from_secs_f64(index as f64 / self.config.fps);
        if !self.config.realtime {
            return Timestamp(self.config.start_us).plus(offset);
        }
        self.pacer.stamp(offset)
    }

    /// Read item `i`: a frame, or why it is skipped.
    fn read_item(
        &self,
        i: usize,
        seq: u64,
        timestamp: Timestamp,
    ) -> Result<Frame, (String, String)> {
        match &self.items {
            Items::Images(files) => {
                let p = &files[i];
                let name = p.display().to_string();
                let bytes = fs::read(p).map_err(|e| (name.clone(), e.to_string()))?;
                let frame = match image_kind(p) {
                    Some(PixelFormat::Mjpeg) => jpeg_frame(bytes, seq, timestamp),
                    _ => decode_image(&bytes, seq, timestamp),
                };
                frame.map_err(|e| (name, e))
            }
            Items::Stream { data, chunks } => {
                let name = format!("{} frame {i}", self.config.path.display());
                let &(start, end) = chunks[i].as_ref().map_err(|e| (name.clone(), e.clone()))?;
                jpeg_frame(data[start..end].to_vec(), seq, timestamp).map_err(|e| (name, e))
            }
        }
    }
}

impl FrameSource for FileSource {
    fn describe(&self) -> String {
        format!("files:{}", self.config.path.display())
    }

    fn format(&self) -> PixelFormat {
        match &self.items {
            Items::Images(files)
                if files
                    .iter()
                    .all(|p| image_kind(p) == Some(PixelFormat::Rgb24)) =>
            {
                PixelFormat::Rgb24
            }
            _ => PixelFormat::Mjpeg,
        }
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        loop {
            if self.next >= self.items.len() {
                if !self.config.repeat {
                    return Ok(None);
                }
                self.next = 0;
            }
            let (i, seq) = (self.next, self.index);
            self.next += 1;
            self.index += 1;
            // Behind time (a slow reader), the recording keeps its pace:
            // the frame whose successor is due already is dropped.
            if self.config.realtime
                && self
                    .pacer
                    .behind(Duration::from_secs_f64((seq + 1) as f64 / self.config.fps))
            {
                self.stats.skipped += 1;
                continue;
            }
            let timestamp = self.timestamp(seq);
            match self.read_item(i, seq, timestamp) {
                Ok(frame) => {
                    self.stats.delivered += 1;
                    return Ok(Some(frame));
                }
                Err((what, reason)) => {
                    self.stats.skipped += 1;
                    tracing::warn!(%what, %reason, "skipping unreadable frame");
                }
            }
        }
    }

    fn stats(&self) -> SourceStats {
        self.stats
    }
}

/// Rgb24 for PNG (decoded here), Mjpeg for JPEG (decoded by the pipeline).
fn image_kind(p: &Path) -> Option<PixelFormat> {
    let ext = p.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "jpg" | "jpeg" => Some(PixelFormat::Mjpeg),
        "png" => Some(PixelFormat::Rgb24),
        _ => None,
    }
}

/// A compressed frame; the size comes from the JPEG header, which must
/// parse.
fn jpeg_frame(bytes: Vec<u8>, seq: u64, timestamp: Timestamp) -> Result<Frame, String> {
    let (width, height) = jpeg_size(&bytes)?;
    Ok(Frame {
        seq,
        timestamp,
        width,
        height,
        stride: 0,
        format: PixelFormat::Mjpeg,
        data: bytes,
    })
}

/// Width and height from a JPEG's header.
pub fn jpeg_size(bytes: &[u8]) -> Result<(u32, u32), String> {
    image::ImageReader::with_format(std::io::Cursor::new(bytes), image::ImageFormat::Jpeg)
        .into_dimensions()
        .map_err(|e| format!("bad JPEG header: {e}"))
}

/// Decode any supported image (JPEG, PNG) into an Rgb24 frame.
pub fn decode_image(bytes: &[u8], seq: u64, timestamp: Timestamp) -> Result<Frame, String> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        check_jpeg_complete(bytes)?;
    }
    let img = image::load_from_memory(bytes).map_err(|e| format!("cannot decode image: {e}"))?;
    let rgb = img.into_rgb8();
    let (width, height) = rgb.dimensions();
    Ok(Frame {
        seq,
        timestamp,
        width,
        height,
        stride: width * 3,
        format: PixelFormat::Rgb24,
        data: rgb.into_raw(),
    })
}

/// Decode a compressed frame into `Rgb24`, keeping its sequence number and
/// time. A corrupt or truncated JPEG is an error (the caller skips it).
pub fn decode_mjpeg(frame: &Frame) -> Result<Frame, String> {
    check_jpeg_complete(&frame.data).map_err(|e| format!("frame {}: {e}", frame.seq))?;
    let img = image::load_from_memory_with_format(&frame.data, image::ImageFormat::Jpeg)
        .map_err(|e| format!("frame {}: corrupt JPEG: {e}", frame.seq))?;
    let rgb = img.into_rgb8();
    let (width, height) = rgb.dimensions();
    Ok(Frame {
        seq: frame.seq,
        timestamp: frame.timestamp,
        width,
        height,
        stride: width * 3,
        format: PixelFormat::Rgb24,
        data: rgb.into_raw(),
    })
}

/// Check that a JPEG's marker structure is whole, up to its end-of-image
/// marker. Decoders fill a truncated scan with grey and report success;
/// a frame cut short by a USB hiccup must be skipped, not detected on.
pub fn check_jpeg_complete(bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err("corrupt JPEG: no start-of-image marker".into());
    }
    jpeg_end(bytes, 0).map(|_| ())
}

/// Split an MJPEG stream into its JPEGs by walking the marker segments.
///
/// Scanning for `FF D9` alone is wrong: EXIF thumbnails embed a whole JPEG
/// (with its own EOI) inside APP1. Segments with a length are skipped
/// whole; only entropy-coded data after SOS is scanned, where `FF` is
/// followed by `00` (stuffing) or `D0..D7` (restart) unless it is a marker.
/// A chunk cut short at the end of the stream is reported as truncated.
pub fn split_mjpeg(data: &[u8]) -> Vec<Result<(usize, usize), String>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(off) = find_soi(&data[pos..]) {
        let start = pos + off;
        match jpeg_end(data, start) {
            Ok(end) => {
                out.push(Ok((start, end)));
                pos = end;
            }
            Err(reason) => {
                out.push(Err(reason));
                // Resynchronise on the next SOI after this one.
                pos = start + 2;
            }
        }
    }
    out
}

fn find_soi(d: &[u8]) -> Option<usize> {
    d.windows(3).position(|w| w == [0xFF, 0xD8, 0xFF])
}

/// End offset (exclusive) of the JPEG starting at `start`.
fn jpeg_end(d: &[u8], start: usize) -> Result<usize, String> {
    let mut i = start + 2;
    loop {
        // Markers may be padded with extra 0xFF bytes.
        while i < d.len() && d[i] == 0xFF && i + 1 < d.len() && d[i + 1] == 0xFF {
            i += 1;
        }
        if i + 1 >= d.len() {
            return Err("truncated JPEG (no end-of-image marker)".into());
        }
        if d[i] != 0xFF {
            return Err(format!(
                "corrupt JPEG: expected a marker at byte {}",
                i - start
            ));
        }
        let marker = d[i + 1];
        match marker {
            0xD9 => return Ok(i + 2),
            0xD8 => return Err("corrupt JPEG: start-of-image inside an image".into()),
            0x01 | 0xD0..=0xD7 => i += 2,
            _ => {
                if i + 3 >= d.len() {
                    return Err("truncated JPEG (segment header)".into());
                }
                let len = usize::from(u16::from_be_bytes([d[i + 2], d[i + 3]]));
                if len < 2 {
                    return Err(format!("corrupt JPEG: segment length {len}"));
                }
                i += 2 + len;
                if i > d.len() {
                    return Err("truncated JPEG (segment runs past the end)".into());
                }
                if marker == 0xDA {
                    // Entropy-coded data: find the next real marker.
                    loop {
                        if i + 1 >= d.len() {
                            return Err("truncated JPEG (scan data runs past the end)".into());
                        }
                        if d[i] == 0xFF && !matches!(d[i + 1], 0x00 | 0xD0..=0xD7 | 0xFF) {
                            break;
                        }
                        i += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32, shade: u8) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([shade, 100, 50]));
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut out, image::ImageFormat::Jpeg)
            .expect("encode");
        out.into_inner()
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([1, 2, 3]));
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut out, image::ImageFormat::Png)
            .expect("encode");
        out.into_inner()
    }

    #[test]
    fn directory_in_name_order_with_frame_clock() {
        let dir = tempfile::tempdir().expect("tmp");
        fs::write(dir.path().join("b.png"), png(4, 2)).expect("write");
        fs::write(dir.path().join("a.jpg"), jpeg(8, 6, 10)).expect("write");
        fs::write(dir.path().join("notes.txt"), b"ignored").expect("write");
        let mut cfg = FilesConfig::new(dir.path());
        cfg.fps = 4.0;
        let mut src = FileSource::open(cfg).expect("open");
        let a = src.next_frame().expect("ok").expect("frame");
        assert_eq!(
            (a.seq, a.format, a.width, a.height),
            (0, PixelFormat::Mjpeg, 8, 6)
        );
        assert_eq!(a.timestamp, Timestamp(DEFAULT_START_US));
        let b = src.next_frame().expect("ok").expect("frame");
        assert_eq!(
            (b.seq, b.format, b.width, b.stride),
            (1, PixelFormat::Rgb24, 4, 12)
        );
        assert_eq!(b.timestamp, Timestamp(DEFAULT_START_US + 250_000));
        assert!(src.next_frame().expect("ok").is_none());
        assert_eq!(src.stats().delivered, 2);
    }

    #[test]
    fn corrupt_file_is_skipped_counted_and_keeps_the_clock() {
        let dir = tempfile::tempdir().expect("tmp");
        fs::write(dir.path().join("0.jpg"), jpeg(8, 8, 1)).expect("write");
        fs::write(dir.path().join("1.jpg"), b"not a jpeg at all").expect("write");
        fs::write(dir.path().join("2.jpg"), jpeg(8, 8, 2)).expect("write");
        let mut src = FileSource::open(FilesConfig::new(dir.path())).expect("open");
        let seqs: Vec<u64> = std::iter::from_fn(|| src.next_frame().expect("ok"))
            .map(|f| f.seq)
            .collect();
        assert_eq!(seqs, vec![0, 2]);
        assert_eq!(src.stats().skipped, 1);
        assert_eq!(src.stats().delivered, 2);
    }

    /// Played as if live: frames no faster than `fps`, stamped with the
    /// wall clock, not with `start_us`.
    #[test]
    fn realtime_paces_frames_and_stamps_them_with_the_clock() {
        let dir = tempfile::tempdir().expect("tmp");
        fs::write(dir.path().join("0.jpg"), jpeg(8, 8, 1)).expect("write");
        let mut cfg = FilesConfig::new(dir.path());
        cfg.fps = 20.0;
        cfg.repeat = true;
        cfg.realtime = true;
        let wall = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_micros() as u64
        };
        let before = wall();
        let mut src = FileSource::open(cfg).expect("open");
        let times: Vec<u64> = (0..4)
            .map(|_| src.next_frame().expect("ok").expect("frame").timestamp.0)
            .collect();
        assert!(times[3] <= wall(), "{times:?}");
        for (i, t) in times.iter().enumerate() {
            // Never early: frame i at least i × 50 ms after the first could
            // be due (a late frame is followed at once by the next, so
            // that the recording keeps its own pace).
            assert!(*t >= before + i as u64 * 50_000, "{times:?}");
        }
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    }

    /// A reader slower than the recording gets the frame due now, not
    /// every frame late: the others are dropped and counted.
    #[test]
    fn realtime_drops_frames_a_slow_reader_missed() {
        let dir = tempfile::tempdir().expect("tmp");
        fs::write(dir.path().join("0.jpg"), jpeg(8, 8, 1)).expect("write");
        let mut cfg = FilesConfig::new(dir.path());
        cfg.fps = 50.0;
        cfg.repeat = true;
        cfg.realtime = true;
        let mut src = FileSource::open(cfg).expect("open");
        let first = src.next_frame().expect("ok").expect("frame");
        std::thread::sleep(Duration::from_millis(200));
        let next = src.next_frame().expect("ok").expect("frame");
        // 200 ms at 50 fps: frame 10 or later, not frame 1.
        assert!(next.seq >= 10, "frame {}", next.seq);
        assert_eq!(src.stats().skipped, next.seq - first.seq - 1);
    }

    #[test]
    fn repeat_keeps_time_increasing() {
        let dir = tempfile::tempdir().expect("tmp");
        fs::write(dir.path().join("0.jpg"), jpeg(8, 8, 1)).expect("write");
        let mut cfg = FilesConfig::new(dir.path());
        cfg.repeat = true;
        let mut src = FileSource::open(cfg).expect("open");
        let times: Vec<u64> = (0..3)
            .map(|_| src.next_frame().expect("ok").expect("frame").timestamp.0)
            .collect();
        assert_eq!(
            times,
            vec![
                DEFAULT_START_US,
                DEFAULT_START_US + 100_000,
                DEFAULT_START_US + 200_000
            ]
        );
    }

    #[test]
    fn mjpeg_stream_splits_and_skips_a_truncated_tail() {
        let (a, b) = (jpeg(16, 8, 10), jpeg(16, 8, 200));
        let mut stream = a.clone();
        stream.extend_from_slice(&b);
        stream.extend_from_slice(&a[..a.len() / 2]);
        let chunks = split_mjpeg(&stream);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0], Ok((0, a.len())));
        assert_eq!(chunks[1], Ok((a.len(), a.len() + b.len())));
        assert!(chunks[2].as_ref().is_err_and(|e| e.contains("truncated")));

        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("cam.mjpeg");
        fs::write(&p, &stream).expect("write");
        let mut src = FileSource::open(FilesConfig::new(&p)).expect("open");
        let frames: Vec<Frame> = std::iter::from_fn(|| src.next_frame().expect("ok")).collect();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].data, b);
        assert_eq!(src.stats().skipped, 1);
    }

    #[test]
    fn exif_thumbnail_does_not_end_the_frame() {
        // APP1 segment holding a complete tiny JPEG (with its own EOI).
        let thumb = jpeg(2, 2, 5);
        let main = jpeg(8, 8, 7);
        let mut with_exif = vec![0xFF, 0xD8, 0xFF, 0xE1];
        let len = u16::try_from(thumb.len() + 2).expect("small");
        with_exif.extend_from_slice(&len.to_be_bytes());
        with_exif.extend_from_slice(&thumb);
        with_exif.extend_from_slice(&main[2..]);
        let chunks = split_mjpeg(&with_exif);
        assert_eq!(chunks, vec![Ok((0, with_exif.len()))]);
    }

    #[test]
    fn decode_mjpeg_rejects_a_truncated_frame() {
        let j = jpeg(32, 32, 9);
        let f = jpeg_frame(j.clone(), 3, Timestamp(0)).expect("header ok");
        let ok = decode_mjpeg(&f).expect("decode");
        assert_eq!(
            (ok.width, ok.height, ok.format),
            (32, 32, PixelFormat::Rgb24)
        );
        let cut = Frame {
            data: j[..j.len() / 2].to_vec(),
            ..f
        };
        let err = decode_mjpeg(&cut).expect_err("truncated");
        assert!(err.contains("frame 3"), "{err}");
        assert!(err.contains("truncated"), "{err}");
        let err = decode_image(&j[..j.len() - 10], 0, Timestamp(0)).expect_err("truncated");
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn empty_directory_and_bad_fps_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let err = FileSource::open(FilesConfig::new(dir.path())).expect_err("empty");
        assert!(err.to_string().contains("no .jpg"), "{err}");
        let mut cfg = FilesConfig::new(dir.path());
        cfg.fps = 0.0;
        let err = FileSource::open(cfg).expect_err("fps");
        assert!(err.to_string().contains("fps"), "{err}");
    }
}
