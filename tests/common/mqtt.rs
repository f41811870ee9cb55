//! MQTT test fixtures: a real broker (the embedded rumqttd, or the one
//! named by `CAMERA_TEST_BROKER`, e.g. mosquitto started by `.ci/run`), a
//! TCP proxy that can take the broker away or cut connections with a
//! reset, and a subscriber that records what the camera published.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camera_app::link::fake::FakeLoop;
use camera_app::link::{Link, LinkConfig, LinkHandle};
use camera_app::outbox::{Outbox, OutboxLimits};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

/// The broker under test: `$CAMERA_TEST_BROKER` (host:port) or an embedded
/// rumqttd started once per test binary.
pub fn broker() -> SocketAddr {
    camera_app::broker::for_tests(16 * 1024 * 1024).unwrap_or_else(|e| panic!("{e}"))
}

/// Which broker, for messages.
pub fn broker_name() -> String {
    match std::env::var("CAMERA_TEST_BROKER") {
        Ok(a) => format!("external broker {a}"),
        Err(_) => "embedded rumqttd".into(),
    }
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

/// A TCP proxy in front of the broker that can refuse connections (the
/// broker is "down") and reset every open connection.
pub struct Proxy {
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    pub accepted: Arc<AtomicU64>,
}

impl Proxy {
    pub fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let accepted = Arc::new(AtomicU64::new(0));
        let (d, c, a) = (down.clone(), conns.clone(), accepted.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if d.load(Ordering::SeqCst) {
                    // Broker down: reset at once, like a closed port.
                    reset(&client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    reset(&client);
                    continue;
                };
                a.fetch_add(1, Ordering::SeqCst);
                {
                    let mut v = c.lock().unwrap();
                    v.push(client.try_clone().unwrap());
                    v.push(server.try_clone().unwrap());
                }
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Self {
            addr,
            down,
            conns,
            accepted,
        }
    }

    /// Reset every open connection (TCP RST, as a pulled cable or a
    /// crashed NAT would look to the camera eventually).
    pub fn cut(&self) {
        for s in self.conns.lock().unwrap().drain(..) {
            reset(&s);
        }
    }

    /// Refuse new connections and cut the open ones.
    pub fn down(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut();
    }

    pub fn up(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

fn reset(s: &TcpStream) {
    // SO_LINGER 0 turns close into a reset.
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
    let _ = s.shutdown(Shutdown::Both);
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// A message the subscriber saw.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Message {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("{}: payload is not JSON: {e}", self.topic))
    }
}

/// A consumer subscribed to `filter` directly on the broker.
pub struct Subscriber {
    pub client: Client,
    seen: Arc<Mutex<Vec<Message>>>,
}

impl Subscriber {
    pub fn start(filter: &str) -> Self {
        let b = broker();
        let mut o = MqttOptions::new(unique("sub"), b.ip().to_string(), b.port());
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
        let (client, mut conn) = Client::new(o, 100);
        client.subscribe(filter, QoS::AtLeastOnce).unwrap();
        let seen: Arc<Mutex<Vec<Message>>> = Arc::default();
        let s = seen.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => s.lock().unwrap().push(Message {
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                        retain: p.retain,
                    }),
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("subscriber not subscribed within 10 s");
        Self { client, seen }
    }

    pub fn messages(&self) -> Vec<Message> {
        self.seen.lock().unwrap().clone()
    }

    pub fn on(&self, topic: &str) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.topic == topic)
            .collect()
    }

    /// Wait until `done` holds for what was seen, or panic after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, done: impl Fn(&[Message]) -> bool) {
        let limit = super::patient(limit);
        let start = Instant::now();
        loop {
            if done(&self.seen.lock().unwrap()) {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for {what} ({} messages seen)",
                self.seen.lock().unwrap().len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Publish as an installer would.
    pub fn publish(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .unwrap();
    }
}

/// The frame loop's side for link tests: records what it was asked to
/// apply (snapshots disabled, as by default on a camera).
pub type FakeCamera = FakeLoop;

/// A camera id, its topic prefix and an outbox in a temporary directory.
pub struct Fixture {
    pub camera_id: String,
    pub prefix: String,
    pub outbox: Arc<Mutex<Outbox>>,
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new(limits: OutboxLimits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("outbox.redb"), limits).unwrap();
        let camera_id = unique("cam");
        Self {
            prefix: format!("stores/test/cameras/{camera_id}"),
            camera_id,
            outbox: Arc::new(Mutex::new(outbox)),
            dir,
        }
    }

    pub fn config(&self, addr: SocketAddr) -> LinkConfig {
        let mut c = LinkConfig::new(&addr.ip().to_string(), addr.port());
        c.store = "test".into();
        c.reconnect_min_ms = 50;
        c.reconnect_max_s = 1;
        c.keep_alive_s = 5;
        c
    }

    pub fn start(
        &self,
        config: LinkConfig,
        camera: FakeCamera,
        running: (u64, &str),
    ) -> LinkHandle {
        let (commands, events) = camera.start(running.0, false);
        Link {
            config,
            camera_id: self.camera_id.clone(),
            outbox: self.outbox.clone(),
            running: (running.0, running.1.to_string()),
            birth: serde_json::json!({"firmware_version": "test-1.2.3", "models": [{"name": "fastestdet"}]}),
            health: Box::new(|_| serde_json::json!({"frames_processed": 42})),
        }
        .spawn(commands, events)
        .unwrap()
    }

    pub fn push(&self, seq: u64) {
        let payload = serde_json::json!({"camera": self.camera_id, "seq": seq}).to_string();
        self.outbox
            .lock()
            .unwrap()
            .push("bins", payload.as_bytes(), 1_700_000_000_000_000 + seq)
            .unwrap();
    }

    pub fn depth(&self) -> u64 {
        self.outbox.lock().unwrap().stats().unwrap().depth
    }
}
