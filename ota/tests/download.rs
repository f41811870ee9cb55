//! `ota::download` against a small hand-written HTTP/1.1 server on
//! 127.0.0.1 with per-test faults: disconnects, 5xx, 4xx, no Range
//! support, slow and stalled bodies, oversize and endless bodies, and
//! content replaced between requests.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ota::download::{
    DownloadError, Outcome, Progress, Request, RetryPolicy, download, sha256_file, sidecar_path,
};
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;

/// What the server does with one request.
#[derive(Debug, Clone, Default)]
struct Plan {
    /// Answer with this status and an empty body.
    status: Option<u16>,
    retry_after: Option<u64>,
    /// Behave like a server without Range support: always 200, full body.
    ignore_range: bool,
    /// Close the connection after this many body bytes.
    cut_after: Option<u64>,
    /// After this many body bytes, stop sending (socket open) for this long.
    stall_after: Option<(u64, Duration)>,
    /// Send in pieces of this size with this pause after each.
    pace: Option<(usize, Duration)>,
    /// Announce this Content-Length instead of the real one.
    announce_len: Option<u64>,
    /// No Content-Length; send pseudo-random bytes until the client leaves.
    endless: bool,
}

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    range_start: Option<u64>,
    if_range: Option<String>,
}

type Fault = Box<dyn FnMut(usize, &mut Content) -> Plan + Send>;

struct Content {
    data: Arc<Vec<u8>>,
    etag: String,
}

struct Inner {
    content: Content,
    seen: Vec<Seen>,
    fault: Fault,
}

struct Server {
    url: String,
    inner: Arc<Mutex<Inner>>,
    served: Arc<AtomicU64>,
}

impl Server {
    fn start(
        data: Vec<u8>,
        fault: impl FnMut(usize, &mut Content) -> Plan + Send + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/bundle.raucb", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner {
            content: Content {
                data: Arc::new(data),
                etag: "\"v1\"".to_owned(),
            },
            seen: Vec::new(),
            fault: Box::new(fault),
        }));
        let served = Arc::new(AtomicU64::new(0));
        let (i, s) = (inner.clone(), served.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (i, s) = (i.clone(), s.clone());
                thread::spawn(move || handle(stream, &i, &s));
            }
        });
        Self { url, inner, served }
    }

    fn requests(&self) -> usize {
        self.inner.lock().unwrap().seen.len()
    }

    fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }
}

fn handle(stream: TcpStream, inner: &Mutex<Inner>, served: &AtomicU64) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    assert!(line.starts_with("GET "), "{line}");
    let (mut range_start, mut if_range) = (None, None);
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':').unwrap();
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "range" => {
                let n = value
                    .strip_prefix("bytes=")
                    .unwrap()
                    .strip_suffix('-')
                    .unwrap();
                range_start = Some(n.parse::<u64>().unwrap());
            }
            "if-range" => if_range = Some(value.to_owned()),
            _ => {}
        }
    }
    let (plan, data, etag) = {
        let mut g = inner.lock().unwrap();
        let idx = g.seen.len();
        g.seen.push(Seen {
            range_start,
            if_range: if_range.clone(),
        });
        let Inner { content, fault, .. } = &mut *g;
        let plan = fault(idx, content);
        (plan, g.content.data.clone(), g.content.etag.clone())
    };
    let mut out = stream;
    if let Some(status) = plan.status {
        let mut head =
            format!("HTTP/1.1 {status} Fault\r\nContent-Length: 0\r\nConnection: close\r\n");
        if let Some(s) = plan.retry_after {
            head += &format!("Retry-After: {s}\r\n");
        }
        head += "\r\n";
        let _ = out.write_all(head.as_bytes());
        return;
    }
    let len = data.len() as u64;
    let use_range =
        range_start.is_some() && !plan.ignore_range && if_range.as_ref().is_none_or(|v| *v == etag);
    let (head, body): (String, &[u8]) = if plan.endless {
        (
            format!("HTTP/1.1 200 OK\r\nETag: {etag}\r\nConnection: close\r\n\r\n"),
            &[],
        )
    } else if use_range {
        let start = range_start.unwrap();
        if start >= len {
            (
                format!(
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\n\
                     Content-Length: 0\r\nETag: {etag}\r\nConnection: close\r\n\r\n"
                ),
                &[],
            )
        } else {
            let announce = plan.announce_len.unwrap_or(len - start);
            (
                format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{len}\r\n\
                     Content-Length: {announce}\r\nETag: {etag}\r\nConnection: close\r\n\r\n",
                    len - 1
                ),
                &data[start as usize..],
            )
        }
    } else {
        let announce = plan.announce_len.unwrap_or(len);
        (
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {announce}\r\nETag: {etag}\r\n\
                 Connection: close\r\n\r\n"
            ),
            &data[..],
        )
    };
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    if plan.endless {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut chunk = vec![0u8; 64 << 10];
        for _ in 0..(256 * MIB / chunk.len() as u64) {
            rng.fill(&mut chunk);
            if out.write_all(&chunk).is_err() {
                return;
            }
            served.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
        return;
    }
    let mut body = body;
    if let Some(cut) = plan.cut_after {
        body = &body[..(cut as usize).min(body.len())];
    }
    let stall = plan
        .stall_after
        .map(|(n, d)| ((n as usize).min(body.len()), d));
    let piece = plan.pace.map_or(256 << 10, |(p, _)| p);
    let mut sent = 0usize;
    while sent < body.len() {
        if let Some((at, pause)) = stall
            && sent == at
        {
            thread::sleep(pause);
            let _ = out.shutdown(Shutdown::Both);
            return;
        }
        let mut end = (sent + piece).min(body.len());
        if let Some((at, _)) = stall
            && sent < at
        {
            end = end.min(at);
        }
        if out.write_all(&body[sent..end]).is_err() {
            return;
        }
        served.fetch_add((end - sent) as u64, Ordering::SeqCst);
        sent = end;
        if let Some((_, pause)) = plan.pace {
            thread::sleep(pause);
        }
    }
    let _ = out.flush();
    let _ = out.shutdown(Shutdown::Write);
}

fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fastrand::Rng::with_seed(seed).fill(&mut v);
    v
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base: Duration::from_millis(10),
        cap: Duration::from_millis(50),
        read_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
    }
}

fn request(server: &Server, dir: &Path, expected_len: Option<u64>) -> Request {
    Request {
        url: server.url.clone(),
        dest: dir.join("bundle.part"),
        expected_len,
        max_len: 64 * MIB,
        policy: fast_policy(),
    }
}

fn run(req: &Request) -> (Result<Outcome, DownloadError>, Vec<Progress>) {
    let mut seen = Vec::new();
    let cancel = AtomicBool::new(false);
    let r = download(req, &mut |p| seen.push(p), &cancel);
    (r, seen)
}

/// The offset recorded in the sidecar.
fn persisted_offset(dest: &Path) -> u64 {
    let text = std::fs::read_to_string(sidecar_path(dest)).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("offset "))
        .unwrap()
        .parse()
        .unwrap()
}

/// Download until the cancel flag, raised once `at` bytes are in.
fn cancelled_at(req: &Request, at: u64) -> u64 {
    let cancel = AtomicBool::new(false);
    let err = download(
        req,
        &mut |p| {
            if p.done >= at {
                cancel.store(true, Ordering::Relaxed);
            }
        },
        &cancel,
    )
    .unwrap_err();
    match err {
        DownloadError::Cancelled { offset, .. } => offset,
        e => panic!("expected Cancelled, got {e}"),
    }
}

#[test]
fn plain_download_reaches_total_and_a_repeat_costs_one_416() {
    let data = payload(3 * MIB as usize + 12_345, 1);
    let len = data.len() as u64;
    let server = Server::start(data.clone(), |_, _| Plan::default());
    let dir = tempfile::tempdir().unwrap();
    let req = request(&server, dir.path(), Some(len));

    let (r, progress) = run(&req);
    let out = r.unwrap();
    assert_eq!(
        out,
        Outcome {
            len,
            resumed_from: 0,
            requests: 1,
            restarts_without_range: 0
        }
    );
    assert_eq!(
        progress.last().unwrap(),
        &Progress {
            done: len,
            total: Some(len)
        }
    );
    assert!(progress.windows(2).all(|w| w[0].done < w[1].done));
    assert_eq!(sha256_file(&req.dest).unwrap(), sha(&data));
    assert_eq!(server.requests(), 1);
    assert_eq!(persisted_offset(&req.dest), len);

    // Already complete: the sidecar's offset is the length, the server answers 416.
    let out = run(&req).0.unwrap();
    assert_eq!((out.len, out.resumed_from, out.requests), (len, len, 1));
    assert_eq!(server.seen()[1].range_start, Some(len));
    assert_eq!(sha256_file(&req.dest).unwrap(), sha(&data));
}

#[test]
fn disconnects_at_random_offsets_resume_from_the_persisted_offset() {
    let data = payload(4 * MIB as usize + 777, 2);
    let mut rng = fastrand::Rng::with_seed(42);
    let cuts: Vec<u64> = (0..5).map(|_| rng.u64(1..700_000)).collect();
    let plan_cuts = cuts.clone();
    let server = Server::start(data.clone(), move |i, _| Plan {
        cut_after: plan_cuts.get(i).copied(),
        ..Plan::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let req = request(&server, dir.path(), Some(data.len() as u64));

    let out = run(&req).0.unwrap();
    assert_eq!(sha256_file(&req.dest).unwrap(), sha(&data));
    assert_eq!(out.requests, 6);
    assert_eq!(server.requests(), 6);
    assert_eq!(out.restarts_without_range, 0);
    let starts: Vec<Option<u64>> = server.seen().iter().map(|s| s.range_start).collect();
    assert_eq!(starts[0], None);
    let mut expect = 0;
    for (i, cut) in cuts.iter().enumerate() {
        expect += cut;
        assert_eq!(starts[i + 1], Some(expect), "request {}", i + 1);
    }
    assert!(starts[1..].windows(2).all(|w| w[0] < w[1]));
    // Every byte was sent once.
    assert_eq!(server.served(), data.len() as u64);
    assert!(
        server.seen()[1..]
            .iter()
            .all(|s| s.if_range.as_deref() == Some("\"v1\""))
    );
}

#[test]
fn every_second_request_500_still_completes() {
    let data = payload(3 * MIB as usize + 1234, 3);
    let server = Server::start(data.clone(), |i, _| {
        if i % 2 == 1 {
            Plan {
                status: Some(500),
                ..Plan::default()
            }
        } else {
            Plan {
                cut_after: Some(MIB),
                ..Plan::default()
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let req = request(&server, dir.path(), Some(data.len() as u64));

    let out = run(&req).0.unwrap();
    assert_eq!(sha256_file(&req.dest).unwrap(), sha(&data));
    // 4 good requests of (at most) 1 MiB, a 500 between each two.
    assert_eq!(server.requests(), 7);
    assert_eq!(out.requests, 7);
}

#[test]
fn client_errors_stop_at_once_but_429_is_retried() {
    let data = payload(MIB as usize, 4);
    for status in [404, 403] {
        let server = Server::start(data.clone(), move |_, _| Plan {
            status: Some(status),
            ..Plan::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let req = request(&server, dir.path(), None);
        match run(&req).0 {
            Err(DownloadError::Refused { status: s, url }) => {
                assert_eq!((s, url), (status, server.url.clone()));
            }
            other => panic!("{status}: {other:?}"),
        }
        assert_eq!(server.requests(), 1, "{status}");
    }

    let server = Server::start(data.clone(), |i, _| Plan {
        status: (i == 0).then_some(429),
        retry_after: Some(1),
        ..Plan::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(&server, dir.path(), None);
    req.policy.cap = Duration::from_millis(300);
    let t = Instant::now();
    let out = run(&req).0.unwrap();
    let took = t.elapsed();
    assert_eq!(sha256_file(&req.dest).unwrap(), sha(&data));
    assert_eq!((out.requests, server.requests()), (2, 2));
    // Retry-After: 1 honoured, capped at policy.cap.
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(1),
        "{took:?}"
    );
}

#[test]
fn server_without_range_support_restarts_from_zero() {
    let data = payload(3 * MIB as usize + 99, 5);
    let cut = 1_500_000;
    let server = Server::start(data.clone(), move |i, _| Plan {
        ignore_range: true,
        cut_after: (i == 0).then_some(cut),
        ..Plan::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let req = request(&server, dir.path(), Some(data.len() as u64));

    let out = run(&req).0.unwrap();
    assert_eq!(sha256_file(&req.dest).unwrap(), sha(&data));
    assert_eq!(out.restarts_without_range, 1);
    assert_eq!((out.requests, server.requests()), (2, 2));
    assert_eq!(server.seen()[1].range_start, Some(cut));
}

#[test]
fn slow_server_completes() {
    let data = payload(2 * MIB as usize, 6);
    // 16 KiB every 4 ms: about 4 MiB/s, 0.5 s in all.
    let server = Server::start(data.clone(), |_, _| Plan {
        pace: Some((16 << 10, Duration::from_millis(4))),
        ..Plan::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(&server, dir.path(), Some(data.len() as u64));
    req.policy.read_timeout = Duration::from_millis(500);
    let (r, progress) = run(&req);
    let out = r.unwrap();
    assert_eq!(sha256_file(&req.dest).unwrap(), sha(&data));
    assert_eq!(out.requests, 1);
    assert!(progress.len() > 10, "{} progress reports", progress.len());
}

#[test]
fn stalled_server_hits_read_timeout_and_resumes() {
    let data = payload(3 * MIB as usize, 7);
    let stall_at = MIB;
    let server = Server::start(data.clone(), move |i, _| Plan {
        stall_after: (i == 0).then_some((stall_at, Duration::from_secs(5))),
        ..Plan::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(&server, dir.path(), Some(data.len() as u64));
    req.policy.read_timeout = Duration::from_millis(300);
    let t = Instant::now();
    let out = run(&req).0.unwrap();
    let took = t.elapsed();
    assert_eq!(sha256_file(&req.dest).unwrap(), sha(&data));
    assert_eq!((out.requests, server.requests()), (2, 2));
    assert_eq!(server.seen()[1].range_start, Some(stall_at));
    // The read timeout, not the server closing after 5 s, ended the stall.
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[test]
fn cancelled_download_resumes_in_a_later_call() {
    let data = payload(3 * MIB as usize + 5, 8);
    let len = data.len() as u64;
    let server = Server::start(data.clone(), |_, _| Plan::default());
    let dir = tempfile::tempdir().unwrap();
    let req = request(&server, dir.path(), Some(len));

    let offset = cancelled_at(&req, MIB);
    assert!(offset >= MIB && offset < len, "{offset}");
    assert_eq!(persisted_offset(&req.dest), offset);
    assert_eq!(std::fs::metadata(&req.dest).unwrap().len(), offset);

    // A new call knows nothing but the files.
    let out = run(&req).0.unwrap();
    assert_eq!(out.resumed_from, offset);
    assert_eq!(out.requests, 1);
    assert_eq!(server.seen()[1].range_start, Some(offset));
    assert!(server.served() < 2 * len, "{} served", server.served());
    assert_eq!(sha256_file(&req.dest).unwrap(), sha(&data));
}

#[test]
fn bytes_after_the_persisted_offset_are_dropped() {
    let data = payload(3 * MIB as usize, 9);
    let len = data.len() as u64;
    let server = Server::start(data.clone(), |_, _| Plan::default());
    let dir = tempfile::tempdir().unwrap();
    let req = request(&server, dir.path(), Some(len));

    let offset = cancelled_at(&req, MIB);
    // Bytes written after the last checkpoint, never confirmed durable;
    // more than the rest of the file, so any of them kept would show.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&req.dest)
        .unwrap();
    f.write_all(&payload(len as usize, 99)).unwrap();
    drop(f);

    let out = run(&req).0.unwrap();
    assert_eq!(out.resumed_from, offset);
    assert_eq!(server.seen()[1].range_start, Some(offset));
    assert_eq!(sha256_file(&req.dest).unwrap(), sha(&data));
}

#[test]
fn garbled_sidecar_starts_from_zero() {
    let data = payload(MIB as usize + 3, 10);
    let server = Server::start(data.clone(), |_, _| Plan::default());
    let dir = tempfile::tempdir().unwrap();
    let req = request(&server, dir.path(), Some(data.len() as u64));
    std::fs::write(&req.dest, payload(500_000, 11)).unwrap();
    std::fs::write(sidecar_path(&req.dest), "offset banana\n").unwrap();

    let out = run(&req).0.unwrap();
    assert_eq!(out.resumed_from, 0);
    assert_eq!(server.seen()[0].range_start, None);
    assert_eq!(sha256_file(&req.dest).unwrap(), sha(&data));
}

#[test]
fn oversize_and_mismatched_lengths_are_refused() {
    let data = payload(2 * MIB as usize, 12);
    let len = data.len() as u64;
    let dir = tempfile::tempdir().unwrap();

    // Announced length above max_len: refused before reading the body.
    let server = Server::start(data.clone(), |_, _| Plan {
        announce_len: Some(1 << 30),
        ..Plan::default()
    });
    let mut req = request(&server, dir.path(), None);
    req.max_len = 8 * MIB;
    match run(&req).0 {
        Err(DownloadError::TooLarge { announced, max, .. }) => {
            assert_eq!((announced, max), (1 << 30, 8 * MIB));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests(), 1);
    assert_eq!(std::fs::metadata(&req.dest).unwrap().len(), 0);

    // No Content-Length and no end: stopped at max_len.
    let server = Server::start(data.clone(), |_, _| Plan {
        endless: true,
        ..Plan::default()
    });
    let mut req = request(&server, dir.path(), None);
    req.dest = dir.path().join("endless.part");
    req.max_len = 3 * MIB;
    match run(&req).0 {
        Err(DownloadError::Endless { limit, offset, .. }) => {
            assert_eq!(limit, 3 * MIB);
            assert!(offset <= 3 * MIB);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests(), 1);
    assert!(std::fs::metadata(&req.dest).unwrap().len() <= 3 * MIB);

    // The same endless body stopped at expected_len.
    let mut req = request(&server, dir.path(), Some(MIB));
    req.dest = dir.path().join("endless2.part");
    assert!(matches!(run(&req).0, Err(DownloadError::Endless { limit, .. }) if limit == MIB));

    // Manifest length differs from the server's.
    let server = Server::start(data.clone(), |_, _| Plan::default());
    let mut req = request(&server, dir.path(), Some(len + 1));
    req.dest = dir.path().join("mismatch.part");
    match run(&req).0 {
        Err(DownloadError::LengthMismatch {
            announced,
            expected,
            ..
        }) => assert_eq!((announced, expected), (len, len + 1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests(), 1);
}

#[test]
fn changed_etag_restarts_with_the_new_content() {
    let old = payload(3 * MIB as usize, 13);
    let new = payload(3 * MIB as usize + 4096, 14);
    let replacement = new.clone();
    let server = Server::start(old, move |i, content| {
        if i == 1 {
            content.data = Arc::new(replacement.clone());
            content.etag = "\"v2\"".to_owned();
        }
        Plan {
            cut_after: (i == 0).then_some(MIB),
            ..Plan::default()
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let req = request(&server, dir.path(), None);

    let out = run(&req).0.unwrap();
    assert_eq!(sha256_file(&req.dest).unwrap(), sha(&new));
    assert_eq!(out.len, new.len() as u64);
    assert_eq!(out.restarts_without_range, 1);
    assert_eq!(out.requests, 2);
    let seen = server.seen();
    assert_eq!(seen[1].range_start, Some(MIB));
    assert_eq!(seen[1].if_range.as_deref(), Some("\"v1\""));
}

#[test]
fn always_503_gives_up_after_max_attempts() {
    let server = Server::start(payload(1000, 15), |_, _| Plan {
        status: Some(503),
        ..Plan::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(&server, dir.path(), None);
    req.policy.max_attempts = 4;
    req.policy.base = Duration::from_millis(20);
    req.policy.cap = Duration::from_millis(100);
    let t = Instant::now();
    match run(&req).0 {
        Err(DownloadError::GaveUp { attempts, last, .. }) => {
            assert_eq!(attempts, 4);
            assert!(last.contains("503"), "{last}");
        }
        other => panic!("{other:?}"),
    }
    let took = t.elapsed();
    assert_eq!(server.requests(), 4);
    // Three backoffs of at least 10, 20 and 40 ms (the fixed halves).
    assert!(took >= Duration::from_millis(70), "{took:?}");
}

#[test]
fn cancel_during_backoff_returns_promptly() {
    let server = Server::start(payload(1000, 16), |_, _| Plan {
        status: Some(503),
        ..Plan::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(&server, dir.path(), None);
    req.policy.base = Duration::from_secs(5);
    req.policy.cap = Duration::from_secs(5);
    let cancel = Arc::new(AtomicBool::new(false));
    let c = cancel.clone();
    let t = Instant::now();
    let raiser = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        c.store(true, Ordering::Relaxed);
    });
    let r = download(&req, &mut |_| {}, &cancel);
    raiser.join().unwrap();
    assert!(
        matches!(r, Err(DownloadError::Cancelled { offset: 0, .. })),
        "{r:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(server.requests(), 1);
}
