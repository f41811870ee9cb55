//! TLS fixtures: certificates made at test time (rcgen) and a
//! TLS-terminating proxy on 127.0.0.1 (rustls, ring provider) that forwards
//! the decrypted bytes to a plain broker, optionally requiring a client
//! certificate (mutual TLS).
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};

/// A certificate authority made for one test.
pub struct Ca {
    pub der: CertificateDer<'static>,
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate signed by a [`Ca`], with its private key.
pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub pem: String,
    key: KeyPair,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Self {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A server certificate for `names` (IP addresses become IP SANs,
    /// anything else DNS SANs).
    pub fn server(&self, names: &[&str]) -> Leaf {
        self.leaf(names, names[0], ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate with common name `name`.
    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(&[name], name, ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, names: &[&str], cn: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| (*s).to_string()).collect();
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.use_authority_key_identifier_extension = true;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            der: cert.der().clone(),
            pem: cert.pem(),
            key,
        }
    }

    /// Write the CA certificate as PEM to `dir/name`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.pem).unwrap();
        path
    }
}

impl Leaf {
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.key.serialize_der()).into()
    }

    /// Write `dir/{stem}.crt` and `dir/{stem}.key` (PEM); returns both paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.pem).unwrap();
        std::fs::write(&key, self.key.serialize_pem()).unwrap();
        (cert, key)
    }
}

/// A TLS-terminating proxy in front of a plain MQTT broker.
pub struct TlsProxy {
    pub addr: SocketAddr,
    /// TCP connections accepted, i.e. TLS attempts.
    pub attempts: Arc<AtomicU64>,
    /// Handshakes that completed.
    pub handshakes: Arc<AtomicU64>,
    /// Completed handshakes in which the client presented a certificate.
    pub client_certs: Arc<AtomicU64>,
    /// Why handshakes failed, as the server saw it.
    pub failures: Arc<Mutex<Vec<String>>>,
}

impl TlsProxy {
    /// Serve `server`'s certificate on a free port and forward to `target`.
    /// With `client_ca`, a client certificate signed by it is required.
    pub fn start(target: SocketAddr, server: &Leaf, client_ca: Option<&Ca>) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca.der.clone()).unwrap();
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = Arc::new(
            builder
                .with_single_cert(vec![server.der.clone()], server.key_der())
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Self {
            addr: listener.local_addr().unwrap(),
            attempts: Arc::default(),
            handshakes: Arc::default(),
            client_certs: Arc::default(),
            failures: Arc::default(),
        };
        let stats = proxy.stats();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                stats.attempts.fetch_add(1, Ordering::SeqCst);
                let (config, stats) = (config.clone(), stats.clone());
                std::thread::spawn(move || serve(&config, client, target, &stats));
            }
        });
        proxy
    }

    fn stats(&self) -> Stats {
        Stats {
            attempts: self.attempts.clone(),
            handshakes: self.handshakes.clone(),
            client_certs: self.client_certs.clone(),
            failures: self.failures.clone(),
        }
    }

    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }

    pub fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::SeqCst)
    }

    pub fn client_certs(&self) -> u64 {
        self.client_certs.load(Ordering::SeqCst)
    }

    pub fn failures(&self) -> Vec<String> {
        self.failures.lock().unwrap().clone()
    }
}

#[derive(Clone)]
struct Stats {
    attempts: Arc<AtomicU64>,
    handshakes: Arc<AtomicU64>,
    client_certs: Arc<AtomicU64>,
    failures: Arc<Mutex<Vec<String>>>,
}

/// One client: the handshake, then bytes both ways until either side ends.
fn serve(config: &Arc<ServerConfig>, client: TcpStream, target: SocketAddr, stats: &Stats) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
    let mut tls = StreamOwned::new(ServerConnection::new(config.clone()).unwrap(), client);
    while tls.conn.is_handshaking() {
        match tls.conn.complete_io(&mut tls.sock) {
            Ok((0, 0)) => {
                stats
                    .failures
                    .lock()
                    .unwrap()
                    .push("closed during the handshake".into());
                return;
            }
            Ok(_) => {}
            Err(e) => {
                stats.failures.lock().unwrap().push(e.to_string());
                let _ = tls.sock.shutdown(Shutdown::Both);
                return;
            }
        }
    }
    stats.handshakes.fetch_add(1, Ordering::SeqCst);
    if tls.conn.peer_certificates().is_some_and(|c| !c.is_empty()) {
        stats.client_certs.fetch_add(1, Ordering::SeqCst);
    }
    let Ok(mut to_broker) = TcpStream::connect(target) else {
        let _ = tls.sock.shutdown(Shutdown::Both);
        return;
    };
    let mut from_broker = to_broker.try_clone().unwrap();
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from_broker.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    // One thread owns the TLS session: it polls the client with a short
    // read timeout and writes whatever the broker sent in between.
    let _ = tls.sock.set_read_timeout(Some(Duration::from_millis(5)));
    let mut buf = [0u8; 16 * 1024];
    'forward: loop {
        loop {
            match rx.try_recv() {
                Ok(bytes) => {
                    if tls.write_all(&bytes).is_err() {
                        break 'forward;
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => break 'forward,
            }
        }
        if tls.flush().is_err() {
            break;
        }
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to_broker.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to_broker.shutdown(Shutdown::Both);
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let _ = tls.sock.shutdown(Shutdown::Both);
}
