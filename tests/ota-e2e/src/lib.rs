//! What the OTA end-to-end tests (`tests/agent_e2e.rs`) run against: an
//! MQTT broker (`CAMERA_TEST_BROKER`, e.g. mosquitto in CI, or an embedded
//! rumqttd, camera-app's) and a file server for bundles, both on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The broker: `CAMERA_TEST_BROKER` (host:port, e.g. mosquitto in CI) or
/// an embedded rumqttd.
pub fn broker() -> SocketAddr {
    camera_app::broker::for_tests(1 << 20).unwrap_or_else(|e| panic!("{e}"))
}

/// A name no other test (or earlier run against a shared broker) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Serves files by path over plain HTTP/1.1 (whole bodies, no Range:
/// the agent falls back to a full download); counts requests.
#[derive(Debug)]
pub struct FileServer {
    pub addr: SocketAddr,
    files: Arc<Mutex<HashMap<String, PathBuf>>>,
    pub requests: Arc<AtomicU64>,
    /// Bytes per second (0: full speed).
    throttle: Arc<AtomicU64>,
}

impl FileServer {
    pub fn start() -> FileServer {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let files: Arc<Mutex<HashMap<String, PathBuf>>> = Arc::default();
        let requests = Arc::new(AtomicU64::new(0));
        let throttle = Arc::new(AtomicU64::new(0));
        let (f, r, t) = (files.clone(), requests.clone(), throttle.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { continue };
                let (f, r, t) = (f.clone(), r.clone(), t.clone());
                std::thread::spawn(move || serve(s, &f, &r, &t));
            }
        });
        FileServer {
            addr,
            files,
            requests,
            throttle,
        }
    }

    /// Serve bodies at about `bytes_per_s`.
    pub fn throttle(&self, bytes_per_s: u64) {
        self.throttle.store(bytes_per_s, Ordering::SeqCst);
    }

    pub fn add(&self, path: &str, file: PathBuf) -> String {
        self.files.lock().unwrap().insert(path.to_string(), file);
        format!("http://{}{path}", self.addr)
    }
}

fn serve(
    s: TcpStream,
    files: &Mutex<HashMap<String, PathBuf>>,
    requests: &AtomicU64,
    throttle: &AtomicU64,
) {
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let file = files.lock().unwrap().get(&path).cloned();
    let mut s = s;
    match file.and_then(|p| std::fs::read(p).ok()) {
        Some(body) => {
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let rate = throttle.load(Ordering::SeqCst);
            if rate == 0 {
                let _ = s.write_all(&body);
            } else {
                let piece = (rate / 10).max(1) as usize;
                for chunk in body.chunks(piece) {
                    if s.write_all(chunk).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        None => {
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    }
}
