//! Resumable, bounded HTTP(S) download of an OTA bundle into a partial file.
//!
//! A camera on a shop's uplink loses connections, reboots and is switched
//! off mid-download, so a bundle is fetched in pieces: the data goes to
//! `dest`, and a sidecar `<dest>.offset` records how many bytes of it were
//! fsynced (plus the ETag and URL they belong to). A later call, in this
//! process or after a reboot, truncates `dest` to that offset and resumes
//! with `Range: bytes=N-` and `If-Range: <etag>`, so a bundle replaced on the
//! server comes back as a full body instead of a corrupt splice.
//!
//! Why the bounds: rauc-hawkbit-updater#158 resumed on a 404 forever and
//! flooded the server. Here a 4xx (other than 408 and 429) stops at once,
//! every retry waits an exponential backoff with jitter (so a fleet does
//! not retry in lockstep), the number of consecutive failures without
//! progress is bounded, and so is the number of bytes accepted (`max_len`,
//! `expected_len`) — a server sending endless data cannot fill the disk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::{debug, info, warn};

/// The data file is fsynced and the offset persisted every this many bytes.
const CHECKPOINT_BYTES: u64 = 4 << 20;
/// Size of one read from the response body.
const CHUNK: usize = 128 << 10;
/// Backoff sleeps are cut into slices this long so that cancelling is quick.
const SLEEP_SLICE: Duration = Duration::from_millis(20);
/// First line of the sidecar.
const SIDECAR_MAGIC: &str = "ota-download v1";

/// How persistent one download is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Consecutive failed attempts without progress before giving up.
    pub max_attempts: u32,
    /// Backoff before the first retry; doubled per further failure.
    pub base: Duration,
    /// Upper bound of one backoff, and of an honoured `Retry-After`.
    pub cap: Duration,
    /// Longest silence while waiting for the response or the next bytes.
    pub read_timeout: Duration,
    /// Longest time to set up a connection (TCP and TLS).
    pub connect_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
            read_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(15),
        }
    }
}

impl RetryPolicy {
    /// Backoff after `failures` consecutive failures (1 = the first one):
    /// exponential, capped, with "equal jitter" — half of it fixed, half
    /// uniformly random — so it never collapses to zero but a fleet of
    /// cameras still spreads out.
    pub fn backoff(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(31);
        let exp = self
            .base
            .checked_mul(1u32 << shift)
            .unwrap_or(self.cap)
            .min(self.cap);
        let half = exp / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// What to fetch, to where, and how much of it to accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `http://` or `https://` URL of the bundle.
    pub url: String,
    /// The partial (and in the end complete) file; its sidecar
    /// [`sidecar_path`]`(dest)` holds the persisted offset.
    pub dest: PathBuf,
    /// Exact length, when known from the update manifest.
    pub expected_len: Option<u64>,
    /// Refuse anything longer than this.
    pub max_len: u64,
    pub policy: RetryPolicy,
}

/// Reported after every chunk written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the file present so far (including resumed ones).
    pub done: u64,
    /// Total length, when the server announced it.
    pub total: Option<u64>,
}

/// A finished download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Length of the complete file.
    pub len: u64,
    /// Offset the call started from (read from the sidecar).
    pub resumed_from: u64,
    /// HTTP requests sent by this call.
    pub requests: u32,
    /// Times a Range request was answered with a full body (no Range
    /// support, or the file changed on the server) and the file restarted
    /// from byte 0.
    pub restarts_without_range: u32,
}

/// Why a download stopped. The partial file and its sidecar are kept in
/// every case, so a later call resumes where this one left off.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("{url}: server refused with HTTP {status}")]
    Refused { url: String, status: u16 },
    #[error("{url}: gave up after {attempts} attempts without progress; last: {last}")]
    GaveUp {
        url: String,
        attempts: u32,
        last: String,
    },
    #[error("{url}: server announces {announced} bytes, more than the limit of {max}")]
    TooLarge {
        url: String,
        announced: u64,
        max: u64,
    },
    #[error("{url}: server announces {announced} bytes, the manifest says {expected}")]
    LengthMismatch {
        url: String,
        announced: u64,
        expected: u64,
    },
    #[error("{url}: body goes on past {limit} bytes (at offset {offset})")]
    Endless {
        url: String,
        offset: u64,
        limit: u64,
    },
    #[error("{url}: cancelled at offset {offset}")]
    Cancelled { url: String, offset: u64 },
    /// The request cannot be sent (bad URL, TLS setup) or the answer is
    /// of a kind this module does not handle (e.g. a compressed body).
    #[error("{url}: {reason}")]
    Unusable { url: String, reason: String },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// `<dest>.offset`: the sidecar that holds the persisted offset and ETag.
pub fn sidecar_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".offset");
    PathBuf::from(s)
}

/// SHA-256 of a file's contents.
pub fn sha256_file(path: &Path) -> io::Result<[u8; 32]> {
    use sha2::Digest;
    let mut file = File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buf[..n]);
    }
}

/// Download `req.url` into `req.dest`, resuming from the sidecar's offset.
///
/// `progress` is called after every chunk; `cancel` is checked between
/// reads and during backoff. On success the sidecar is left in place with
/// the final offset (a repeated call then costs one request answered 416);
/// the caller removes `dest` and the sidecar once it has used the file.
pub fn download(
    req: &Request,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<Outcome, DownloadError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(req.policy.connect_timeout))
        .timeout_recv_response(Some(req.policy.read_timeout))
        .timeout_per_read(Some(req.policy.read_timeout))
        // Offsets are offsets of the file, not of a compressed stream.
        .accept_encoding("identity")
        .build()
        .into();

    let mut part = Partial::open(req)?;
    let resumed_from = part.offset;
    let mut requests = 0u32;
    let mut restarts = 0u32;
    let mut failures = 0u32;

    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(part.cancelled());
        }
        requests = requests.saturating_add(1);
        let start = part.offset;
        let failure = match attempt(&agent, req, &mut part, &mut restarts, progress, cancel) {
            Ok(()) => {
                info!(url = %req.url, len = part.offset, requests, resumed_from, "download complete");
                return Ok(Outcome {
                    len: part.offset,
                    resumed_from,
                    requests,
                    restarts_without_range: restarts,
                });
            }
            Err(Stop::Fatal(e)) => return Err(e),
            Err(Stop::Retry(f)) => f,
        };
        let delay = if part.offset > start {
            // Progress: a new streak starts; still pause briefly.
            failures = 0;
            req.policy.backoff(1)
        } else {
            failures += 1;
            if failures >= req.policy.max_attempts {
                return Err(DownloadError::GaveUp {
                    url: req.url.clone(),
                    attempts: failures,
                    last: failure.reason,
                });
            }
            req.policy.backoff(failures)
        };
        let delay = match failure.retry_after {
            Some(after) => after.min(req.policy.cap),
            None => delay,
        };
        warn!(
            url = %req.url, offset = part.offset, failures, ?delay,
            "download interrupted: {}; retrying", failure.reason
        );
        sleep_unless_cancelled(delay, cancel);
    }
}

/// A retryable failure of one attempt.
struct Failure {
    reason: String,
    retry_after: Option<Duration>,
}

enum Stop {
    Retry(Failure),
    Fatal(DownloadError),
}

fn retry(reason: impl Into<String>) -> Stop {
    Stop::Retry(Failure {
        reason: reason.into(),
        retry_after: None,
    })
}

/// One request: send it, check the answer, stream the body into the file.
fn attempt(
    agent: &ureq::Agent,
    req: &Request,
    part: &mut Partial,
    restarts: &mut u32,
    progress: &mut dyn FnMut(Progress),
    cancel: &AtomicBool,
) -> Result<(), Stop> {
    let start = part.offset;
    let mut builder = agent.get(&req.url);
    if start > 0 {
        builder = builder.header("Range", format!("bytes={start}-"));
        if let Some(etag) = part.etag.as_deref().filter(|e| !e.starts_with("W/")) {
            // A weak ETag must not be used for If-Range (RFC 9110 13.1.5).
            builder = builder.header("If-Range", etag);
        }
    }
    debug!(url = %req.url, start, "sending request");
    let resp = builder.call().map_err(|e| classify(&req.url, e))?;
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let etag = header("etag");
    let content_range = header("content-range");
    if let Some(enc) = header("content-encoding").filter(|e| !e.eq_ignore_ascii_case("identity")) {
        // ureq would decompress it, and offsets would no longer be the file's.
        return Err(Stop::Fatal(DownloadError::Unusable {
            url: req.url.clone(),
            reason: format!("Content-Encoding {enc} despite Accept-Encoding: identity"),
        }));
    }
    let retry_after = header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);

    let total = match status {
        200 => {
            if start > 0 {
                info!(url = %req.url, start, "full body in answer to a Range request; restarting from 0");
                *restarts += 1;
            }
            let total = resp.body().content_length();
            if let Some(total) = total {
                // Before the reset, so a refusal keeps the partial file.
                check_announced(req, total).map_err(Stop::Fatal)?;
            }
            part.reset(0, etag.clone()).map_err(Stop::Fatal)?;
            total
        }
        206 => {
            let cr = content_range.unwrap_or_default();
            let Some((first, _last, total)) = parse_content_range(&cr) else {
                part.reset(0, None).map_err(Stop::Fatal)?;
                return Err(retry(format!("206 with unusable Content-Range {cr:?}")));
            };
            if first != start {
                part.reset(0, None).map_err(Stop::Fatal)?;
                return Err(retry(format!(
                    "206 starts at {first}, asked for {start}; restarting from 0"
                )));
            }
            if let (Some(new), Some(old)) = (&etag, part.etag.clone())
                && *new != old
            {
                part.reset(0, None).map_err(Stop::Fatal)?;
                return Err(retry(format!(
                    "206 for ETag {new}, the partial file is {old}; restarting from 0"
                )));
            }
            if part.etag.is_none() {
                part.etag = etag.clone();
            }
            total.or_else(|| resp.body().content_length().map(|l| start + l))
        }
        416 => {
            let cr = content_range.unwrap_or_default();
            let total = cr
                .strip_prefix("bytes */")
                .and_then(|t| t.trim().parse::<u64>().ok());
            if start > 0 && total == Some(start) {
                check_announced(req, start).map_err(Stop::Fatal)?;
                part.checkpoint().map_err(Stop::Fatal)?;
                progress(Progress {
                    done: start,
                    total: Some(start),
                });
                return Ok(());
            }
            part.reset(0, None).map_err(Stop::Fatal)?;
            return Err(retry(format!(
                "416 at offset {start} (Content-Range {cr:?}); restarting from 0"
            )));
        }
        408 | 429 | 500..=599 => {
            return Err(Stop::Retry(Failure {
                reason: format!("HTTP {status}"),
                retry_after,
            }));
        }
        _ => {
            return Err(Stop::Fatal(DownloadError::Refused {
                url: req.url.clone(),
                status,
            }));
        }
    };
    if let Some(total) = total {
        check_announced(req, total).map_err(Stop::Fatal)?;
    }

    let limit = req.expected_len.unwrap_or(u64::MAX).min(req.max_len);
    let mut reader = resp.into_body().into_reader();
    let mut buf = vec![0u8; CHUNK];
    let result = loop {
        if cancel.load(Ordering::Relaxed) {
            part.checkpoint().map_err(Stop::Fatal)?;
            return Err(Stop::Fatal(part.cancelled()));
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                break Err(retry(format!(
                    "reading body at offset {}: {e}",
                    part.offset
                )));
            }
        };
        let n64 = n as u64;
        if part.offset + n64 > limit {
            part.checkpoint().map_err(Stop::Fatal)?;
            return Err(Stop::Fatal(DownloadError::Endless {
                url: req.url.clone(),
                offset: part.offset,
                limit,
            }));
        }
        part.append(&buf[..n]).map_err(Stop::Fatal)?;
        progress(Progress {
            done: part.offset,
            total,
        });
    };
    part.checkpoint().map_err(Stop::Fatal)?;
    result?;
    let want = total.or(req.expected_len);
    match want {
        Some(want) if part.offset < want => Err(retry(format!(
            "body ended at offset {} of {want}",
            part.offset
        ))),
        _ => Ok(()),
    }
}

/// Refuse an announced total that breaks the bounds.
fn check_announced(req: &Request, total: u64) -> Result<(), DownloadError> {
    if total > req.max_len {
        return Err(DownloadError::TooLarge {
            url: req.url.clone(),
            announced: total,
            max: req.max_len,
        });
    }
    match req.expected_len {
        Some(expected) if expected != total => Err(DownloadError::LengthMismatch {
            url: req.url.clone(),
            announced: total,
            expected,
        }),
        _ => Ok(()),
    }
}

/// Transport errors are retried; errors in the request itself are not.
fn classify(url: &str, e: ureq::Error) -> Stop {
    match e {
        ureq::Error::Io(_)
        | ureq::Error::Timeout(_)
        | ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::Protocol(_) => retry(e.to_string()),
        other => Stop::Fatal(DownloadError::Unusable {
            url: url.to_owned(),
            reason: format!("request cannot be sent: {other}"),
        }),
    }
}

/// `bytes first-last/total` (total may be `*`).
fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let first = first.trim().parse().ok()?;
    let last = last.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    if last < first || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some((first, last, total))
}

fn sleep_unless_cancelled(d: Duration, cancel: &AtomicBool) {
    let mut left = d;
    while !left.is_zero() && !cancel.load(Ordering::Relaxed) {
        let step = left.min(SLEEP_SLICE);
        std::thread::sleep(step);
        left -= step;
    }
}

/// The partial file with its persisted state.
struct Partial {
    url: String,
    path: PathBuf,
    sidecar: PathBuf,
    file: File,
    offset: u64,
    etag: Option<String>,
    unsynced: u64,
}

impl Partial {
    fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DownloadError {
        let path = path.to_owned();
        move |source| DownloadError::Io { op, path, source }
    }

    /// Open `dest`, trusting it only up to the sidecar's offset.
    fn open(req: &Request) -> Result<Self, DownloadError> {
        let path = req.dest.clone();
        let sidecar = sidecar_path(&path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(Self::io("opening", &path))?;
        let len = file
            .metadata()
            .map_err(Self::io("reading metadata of", &path))?
            .len();
        let (mut offset, mut etag) = match fs::read_to_string(&sidecar) {
            Ok(text) => match parse_sidecar(&text) {
                Some((_, _, url)) if url != req.url => {
                    warn!(sidecar = %sidecar.display(), old = url, new = %req.url,
                        "partial file is of another URL; starting from 0");
                    (0, None)
                }
                Some((offset, etag, _)) => (offset, etag),
                None => {
                    warn!(sidecar = %sidecar.display(), "offset sidecar garbled; starting from 0");
                    (0, None)
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if len > 0 {
                    warn!(sidecar = %sidecar.display(), "no offset sidecar; starting from 0");
                }
                (0, None)
            }
            Err(e) => {
                warn!(sidecar = %sidecar.display(), "offset sidecar unreadable ({e}); starting from 0");
                (0, None)
            }
        };
        let limit = req.expected_len.unwrap_or(u64::MAX).min(req.max_len);
        if offset > limit {
            warn!(sidecar = %sidecar.display(), offset, limit,
                "persisted offset is beyond the length limit; starting from 0");
            offset = 0;
            etag = None;
        }
        if offset > len {
            warn!(path = %path.display(), offset, len,
                "partial file is shorter than its persisted offset; starting from 0");
            offset = 0;
            etag = None;
        }
        if len > offset {
            debug!(path = %path.display(), offset, len, "dropping unconfirmed bytes");
        }
        let mut part = Self {
            url: req.url.clone(),
            path,
            sidecar,
            file,
            offset,
            etag,
            unsynced: 0,
        };
        part.truncate_to(offset)?;
        Ok(part)
    }

    fn truncate_to(&mut self, offset: u64) -> Result<(), DownloadError> {
        self.file
            .set_len(offset)
            .map_err(Self::io("truncating", &self.path))?;
        self.file
            .seek(SeekFrom::Start(offset))
            .map_err(Self::io("seeking in", &self.path))?;
        self.offset = offset;
        Ok(())
    }

    /// Restart at `offset` (0) for content with `etag`, persisting that
    /// before any new byte is written so the sidecar never pairs old bytes
    /// with a new ETag or the reverse beyond the offset.
    fn reset(&mut self, offset: u64, etag: Option<String>) -> Result<(), DownloadError> {
        self.truncate_to(offset)?;
        self.etag = etag;
        self.unsynced = 1; // force the write below
        self.checkpoint()
    }

    fn append(&mut self, data: &[u8]) -> Result<(), DownloadError> {
        self.file
            .write_all(data)
            .map_err(Self::io("writing", &self.path))?;
        let n = data.len() as u64;
        self.offset += n;
        self.unsynced += n;
        if self.unsynced >= CHECKPOINT_BYTES {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Make the data durable, then record how much of it is.
    fn checkpoint(&mut self) -> Result<(), DownloadError> {
        if self.unsynced == 0 && self.sidecar.exists() {
            return Ok(());
        }
        self.file
            .sync_data()
            .map_err(Self::io("syncing", &self.path))?;
        let text = format!(
            "{SIDECAR_MAGIC}\noffset {}\netag {}\nurl {}\n",
            self.offset,
            self.etag.as_deref().unwrap_or("-"),
            self.url
        );
        write_atomic(&self.sidecar, text.as_bytes())?;
        self.unsynced = 0;
        Ok(())
    }

    fn cancelled(&self) -> DownloadError {
        DownloadError::Cancelled {
            url: self.url.clone(),
            offset: self.offset,
        }
    }
}

/// Sidecar text → (offset, etag, url).
fn parse_sidecar(text: &str) -> Option<(u64, Option<String>, &str)> {
    let mut lines = text.lines();
    if lines.next()? != SIDECAR_MAGIC {
        return None;
    }
    let offset = lines.next()?.strip_prefix("offset ")?.parse().ok()?;
    let etag = match lines.next()?.strip_prefix("etag ")? {
        "-" => None,
        e => Some(e.to_owned()),
    };
    let url = lines.next()?.strip_prefix("url ")?;
    Some((offset, etag, url))
}

/// temp + fsync + rename + fsync of the directory.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), DownloadError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = File::create(&tmp).map_err(Partial::io("creating", &tmp))?;
    f.write_all(data).map_err(Partial::io("writing", &tmp))?;
    f.sync_all().map_err(Partial::io("syncing", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(Partial::io("renaming to", path))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Partial::io("syncing directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_has_equal_jitter_and_cap() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for _ in 0..200 {
            let d1 = p.backoff(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.backoff(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d40 = p.backoff(40);
            assert!(d40 >= Duration::from_millis(500) && d40 <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 10-19/20"),
            Some((10, 19, Some(20)))
        );
        assert_eq!(parse_content_range("bytes 10-19/*"), Some((10, 19, None)));
        assert_eq!(parse_content_range("bytes 10-19/15"), None);
        assert_eq!(parse_content_range("bytes */20"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
    }

    #[test]
    fn sidecar_round_trip_and_garbage() {
        let text = format!("{SIDECAR_MAGIC}\noffset 42\netag \"x y\"\nurl http://a/b\n");
        assert_eq!(
            parse_sidecar(&text),
            Some((42, Some("\"x y\"".to_owned()), "http://a/b"))
        );
        assert_eq!(parse_sidecar("offset 42\n"), None);
        assert_eq!(parse_sidecar(&format!("{SIDECAR_MAGIC}\noffset x\n")), None);
    }
}
