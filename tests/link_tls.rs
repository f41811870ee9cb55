//! The MQTT link over TLS (rustls): a TLS-terminating proxy with
//! certificates made at test time sits in front of the plain test broker
//! (embedded rumqttd, or `CAMERA_TEST_BROKER`). Covers mutual TLS and the
//! refusals: a server certificate from the wrong CA, a missing client
//! certificate and a server certificate for another name. Each refusal
//! must deliver nothing, keep the records, retry, and say why in the log.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;
#[path = "common/tls.rs"]
mod tls;

use std::io::Write;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use camera_app::link::{LinkConfig, LinkHandle, TlsConfig};
use camera_app::outbox::OutboxLimits;
use common::mqtt::{FakeCamera, Fixture, Subscriber, broker};
use tls::{Ca, TlsProxy};

/// Everything the link logs, for the whole test binary.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        use tracing_subscriber::prelude::*;
        let filter = tracing_subscriber::filter::Targets::new()
            .with_default(tracing::Level::INFO)
            .with_target("rumqttd", tracing::Level::WARN);
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(|| LogWriter),
            )
            .with(filter)
            .try_init()
            .unwrap();
    });
}

/// The log lines about the broker at `addr` (tests run in parallel, each
/// with its own proxy port). Connection failures name `host:port`.
fn log_lines(addr: std::net::SocketAddr) -> Vec<String> {
    logged(&format!("broker={addr}"))
}

/// The log lines containing `needle`.
fn logged(needle: &str) -> Vec<String> {
    String::from_utf8_lossy(&LOGS.lock().unwrap())
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// The shared fixture, with the link's log captured.
fn fixture() -> Fixture {
    capture_logs();
    Fixture::new(OutboxLimits::default())
}

fn tls_config(fx: &Fixture, proxy: &TlsProxy, tls: TlsConfig) -> LinkConfig {
    let mut c = fx.config(proxy.addr);
    c.tls = Some(tls);
    c
}

fn start(fx: &Fixture, config: LinkConfig) -> LinkHandle {
    fx.start(config, FakeCamera::default(), (1, "{}"))
}

fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool) {
    let limit = common::patient(limit);
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out after {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn mutual_tls_delivers_records_and_empties_the_outbox() {
    let fx = fixture();
    let ca = Ca::new("test broker CA");
    let proxy = TlsProxy::start(broker(), &ca.server(&["127.0.0.1", "localhost"]), Some(&ca));
    let (cert_file, key_file) = ca.client("camera").write(fx.dir.path(), "camera");
    let tls = TlsConfig {
        ca_file: ca.write(fx.dir.path(), "ca.pem"),
        cert_file: Some(cert_file),
        key_file: Some(key_file),
    };
    let sub = Subscriber::start(&format!("{}/#", fx.prefix));
    for seq in 0..10 {
        fx.push(seq);
    }
    let link = start(&fx, tls_config(&fx, &proxy, tls));
    let status = format!("{}/status", fx.prefix);
    sub.wait_for("birth over TLS", Duration::from_secs(10), |m| {
        m.iter().any(|m| m.topic == status)
    });
    // Records written while connected go out too.
    for seq in 10..20 {
        fx.push(seq);
    }
    let bins = format!("{}/bins", fx.prefix);
    sub.wait_for("20 records", Duration::from_secs(10), |m| {
        let seen: std::collections::BTreeSet<u64> = m
            .iter()
            .filter(|m| m.topic == bins)
            .map(|m| m.json()["seq"].as_u64().unwrap())
            .collect();
        seen.len() == 20
    });
    wait_until("the outbox to empty", Duration::from_secs(10), || {
        fx.depth() == 0
    });
    let first: Vec<u64> = sub
        .on(&bins)
        .iter()
        .map(|m| m.json()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(&first[..20], (0..20).collect::<Vec<_>>(), "in order");
    assert_eq!(
        sub.on(&status)[0].json()["state"],
        "online",
        "birth message"
    );
    assert!(proxy.handshakes() >= 1);
    assert_eq!(
        proxy.client_certs(),
        proxy.handshakes(),
        "the camera presented its client certificate on every connection"
    );
    assert!(
        proxy.failures().is_empty(),
        "server-side TLS failures: {:?}",
        proxy.failures()
    );
    // "connected" names the host and the prefix; failures `host:port`.
    let ours = logged(&format!("prefix={}", fx.prefix));
    assert!(
        ours.iter().any(|l| l.contains("connected to the broker")),
        "{ours:#?}"
    );
    let failures = log_lines(proxy.addr);
    assert!(failures.is_empty(), "no failure logged: {failures:#?}");
    link.stop();
}

/// What a refused camera left behind: the log lines about this broker
/// (read after the link stopped), the proxy's TLS attempts and why the
/// server side saw each handshake fail.
struct Refusal {
    lines: Vec<String>,
    attempts: u64,
    server_side: Vec<String>,
}

/// Start a camera that the proxy must refuse, let it retry, and check
/// that nothing got through.
fn refused(fx: &Fixture, proxy: &TlsProxy, tls: TlsConfig, reason: &str) -> Refusal {
    let sub = Subscriber::start(&format!("{}/#", fx.prefix));
    for seq in 0..5 {
        fx.push(seq);
    }
    let link = start(fx, tls_config(fx, proxy, tls));
    wait_until(
        "at least three TLS attempts and a logged failure",
        Duration::from_secs(10),
        || proxy.attempts() >= 3 && log_lines(proxy.addr).iter().any(|l| l.contains(reason)),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        link.stats()
            .connections
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "never connected"
    );
    link.stop();
    assert!(
        sub.messages().is_empty(),
        "nothing reaches the broker: {:?}",
        sub.messages()
    );
    assert_eq!(fx.depth(), 5, "the records stay in the outbox");
    let refusal = Refusal {
        lines: log_lines(proxy.addr),
        attempts: proxy.attempts(),
        server_side: proxy.failures(),
    };
    // One line per attempt: the attempt cut short by the stop may have
    // none.
    let failures = refusal.lines.iter().filter(|l| l.contains(reason)).count() as u64;
    assert!(
        failures + 1 >= refusal.attempts && failures <= refusal.attempts,
        "{failures} lines naming {reason:?} for {} attempts: {:#?}",
        refusal.attempts,
        refusal.lines
    );
    assert!(
        refusal.lines.iter().all(|l| l.contains(reason)),
        "every line about this broker names the problem: {:#?}",
        refusal.lines
    );
    for l in &refusal.lines {
        println!("camera log: {l}");
    }
    println!(
        "{} attempts; server side: {:?}",
        refusal.attempts, refusal.server_side
    );
    refusal
}

#[test]
fn server_certificate_from_another_ca_is_refused_with_a_clear_log_line() {
    let fx = fixture();
    let ca = Ca::new("test broker CA");
    let other = Ca::new("some other CA");
    let proxy = TlsProxy::start(broker(), &ca.server(&["127.0.0.1", "localhost"]), Some(&ca));
    let (cert_file, key_file) = ca.client("camera").write(fx.dir.path(), "camera");
    let tls = TlsConfig {
        ca_file: other.write(fx.dir.path(), "other-ca.pem"),
        cert_file: Some(cert_file),
        key_file: Some(key_file),
    };
    let r = refused(&fx, &proxy, tls, "TLS handshake with the broker failed");
    assert_eq!(proxy.handshakes(), 0);
    let line = &r.lines[0];
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains("invalid peer certificate") && line.contains("UnknownIssuer"),
        "the line gives rustls's reason: {line}"
    );
    assert!(line.contains("link.tls.ca_file"), "{line}");
    assert!(
        r.server_side.iter().all(|e| e.contains("UnknownCA")),
        "the camera told the broker: {:?}",
        r.server_side
    );
}

#[test]
fn missing_client_certificate_is_refused_with_a_clear_log_line() {
    let fx = fixture();
    let ca = Ca::new("test broker CA");
    let proxy = TlsProxy::start(broker(), &ca.server(&["127.0.0.1", "localhost"]), Some(&ca));
    let tls = TlsConfig {
        ca_file: ca.write(fx.dir.path(), "ca.pem"),
        cert_file: None,
        key_file: None,
    };
    let r = refused(
        &fx,
        &proxy,
        tls,
        "the broker refused the camera's TLS client certificate",
    );
    assert_eq!(proxy.handshakes(), 0, "the server never accepted it");
    assert!(
        r.server_side
            .iter()
            .any(|e| e.contains("peer sent no certificates")),
        "{:?}",
        r.server_side
    );
}

#[test]
fn server_certificate_for_another_name_is_refused_with_a_clear_log_line() {
    let fx = fixture();
    let ca = Ca::new("test broker CA");
    let proxy = TlsProxy::start(broker(), &ca.server(&["example.invalid"]), None);
    let tls = TlsConfig {
        ca_file: ca.write(fx.dir.path(), "ca.pem"),
        cert_file: None,
        key_file: None,
    };
    let r = refused(&fx, &proxy, tls, "TLS handshake with the broker failed");
    assert_eq!(proxy.handshakes(), 0);
    let line = &r.lines[0];
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains("not valid for name")
            && line.contains("127.0.0.1")
            && line.contains("example.invalid"),
        "the line names the mismatch: {line}"
    );
}
