//! camctl's one MQTT connection to the store's broker: connect (TLS, user
//! name and password as the cameras use them), subscribe, publish, and
//! every incoming message handed to whoever listens. The only place camctl
//! does network I/O with the broker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS,
    TlsConfiguration, Transport,
};
use tokio::sync::broadcast;

/// Largest message taken: snapshots are at most 256 KiB by default.
const MAX_PACKET_BYTES: usize = 4 * 1024 * 1024;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct BrokerOptions {
    pub host: String,
    pub port: u16,
    /// TLS with the store's CA (and a client certificate for mutual TLS).
    pub tls: Option<mqtt_tls::TlsConfig>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// How long to wait for the broker's CONNACK.
    pub connect_timeout: Duration,
}

impl BrokerOptions {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Why camctl could not talk to the broker; each names it.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "cannot reach the broker at {broker}: {reason} (check the address and port, and that the broker runs)"
    )]
    Unreachable { broker: String, reason: String },
    #[error(
        "the broker at {broker} refused the user name or password ({code:?}): check --username and --password"
    )]
    Credentials {
        broker: String,
        code: ConnectReturnCode,
    },
    #[error("the broker at {broker} refused the connection ({code:?})")]
    Refused {
        broker: String,
        code: ConnectReturnCode,
    },
    #[error(
        "TLS with the broker at {broker} failed: {reason} (check --ca, --cert, --key and the broker's name)"
    )]
    Tls { broker: String, reason: String },
    #[error("the broker at {broker} did not answer within {secs} s")]
    Timeout { broker: String, secs: u64 },
    #[error("the broker at {broker} closed the connection: {reason}")]
    Closed { broker: String, reason: String },
    #[error(transparent)]
    TlsFiles(#[from] mqtt_tls::TlsError),
}

/// One message from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retained: bool,
}

/// What the connection hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Message(Message),
    /// The broker confirmed a subscription: its retained messages come
    /// right after.
    Subscribed,
    /// The connection was lost; it is being re-established.
    Lost(String),
    /// Connected again, subscriptions renewed.
    Reconnected,
}

/// A connected session.
#[derive(Debug)]
pub struct Session {
    client: AsyncClient,
    tx: broadcast::Sender<Incoming>,
    broker: String,
    filters: Arc<Mutex<Vec<String>>>,
    /// The last message of each topic (small ones, no images): a broker
    /// sends retained messages only on the first subscription to a
    /// filter, so a second reader of the same state looks here.
    last: Arc<Mutex<HashMap<String, Message>>>,
    poller: tokio::task::JoinHandle<()>,
}

/// Larger messages (snapshots) are not kept in [`Session::last`].
const LAST_MAX_BYTES: usize = 64 * 1024;

impl Session {
    /// Connect and wait for the broker's CONNACK.
    pub async fn connect(opts: &BrokerOptions) -> Result<Self, SessionError> {
        let broker = opts.address();
        let id = format!("camctl-{}-{:08x}", std::process::id(), rand_u32());
        let mut o = MqttOptions::new(id, opts.host.clone(), opts.port);
        o.set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        if let Some(user) = &opts.username {
            o.set_credentials(user.clone(), opts.password.clone().unwrap_or_default());
        }
        if let Some(tls) = &opts.tls {
            let config = mqtt_tls::client_config(tls)?;
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
        }
        let (client, mut eventloop) = AsyncClient::new(o, 256);
        let first = tokio::time::timeout(opts.connect_timeout, first_event(&mut eventloop)).await;
        match first {
            Err(_) => {
                return Err(SessionError::Timeout {
                    broker,
                    secs: opts.connect_timeout.as_secs(),
                });
            }
            Ok(Err(e)) => return Err(connect_error(&broker, e, opts.username.is_some())),
            Ok(Ok(())) => {}
        }
        let (tx, _) = broadcast::channel(4096);
        let filters = Arc::new(Mutex::new(Vec::<String>::new()));
        let last = Arc::new(Mutex::new(HashMap::new()));
        let poller = tokio::spawn(poll(
            eventloop,
            client.clone(),
            tx.clone(),
            Arc::clone(&filters),
            Arc::clone(&last),
        ));
        Ok(Self {
            client,
            tx,
            broker,
            filters,
            last,
            poller,
        })
    }

    pub fn broker(&self) -> &str {
        &self.broker
    }

    /// Everything that arrives from now on.
    pub fn incoming(&self) -> broadcast::Receiver<Incoming> {
        self.tx.subscribe()
    }

    /// Whether `filter` was subscribed to before (exactly).
    pub fn is_subscribed(&self, filter: &str) -> bool {
        self.filters
            .lock()
            .is_ok_and(|f| f.iter().any(|x| x == filter))
    }

    /// The last message on `topic` since it was subscribed to.
    pub fn last(&self, topic: &str) -> Option<Message> {
        self.last.lock().ok().and_then(|l| l.get(topic).cloned())
    }

    /// Subscribe (QoS 1); renewed after a reconnection.
    pub async fn subscribe(&self, filter: &str) -> Result<(), SessionError> {
        if let Ok(mut f) = self.filters.lock() {
            f.push(filter.to_string());
        }
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .map_err(|e| self.closed(e))
    }

    /// Subscribe and wait for the broker's answer, so that the retained
    /// messages of `filter` are on their way.
    pub async fn subscribe_and_wait(
        &self,
        filter: &str,
        limit: Duration,
    ) -> Result<broadcast::Receiver<Incoming>, SessionError> {
        let rx = self.incoming();
        let mut probe = self.incoming();
        self.subscribe(filter).await?;
        let wait = async {
            while let Ok(i) = probe.recv().await {
                if i == Incoming::Subscribed {
                    return;
                }
            }
        };
        tokio::time::timeout(limit, wait)
            .await
            .map_err(|_| SessionError::Timeout {
                broker: self.broker.clone(),
                secs: limit.as_secs(),
            })?;
        // `rx` was made before the request: it holds what arrived since.
        Ok(rx)
    }

    pub async fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        qos: QoS,
        retain: bool,
    ) -> Result<(), SessionError> {
        self.client
            .publish(topic, qos, retain, payload)
            .await
            .map_err(|e| self.closed(e))
    }

    /// Say goodbye to the broker.
    pub async fn close(self) {
        let _ = self.client.disconnect().await;
        // Give the DISCONNECT a moment to leave.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.poller.abort();
    }

    fn closed(&self, e: rumqttc::ClientError) -> SessionError {
        SessionError::Closed {
            broker: self.broker.clone(),
            reason: e.to_string(),
        }
    }
}

async fn first_event(eventloop: &mut EventLoop) -> Result<(), ConnectionError> {
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = eventloop.poll().await? {
            return Ok(());
        }
    }
}

fn connect_error(broker: &str, e: ConnectionError, with_credentials: bool) -> SessionError {
    let broker = broker.to_string();
    match e {
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
        ) => SessionError::Credentials { broker, code },
        ConnectionError::ConnectionRefused(code) => SessionError::Refused { broker, code },
        ConnectionError::Tls(t) => SessionError::Tls {
            broker,
            reason: t.to_string(),
        },
        // Some brokers (rumqttd among them) hang up on bad credentials
        // instead of answering CONNACK 4 or 5.
        ConnectionError::MqttState(e) if with_credentials => SessionError::Closed {
            broker,
            reason: format!(
                "{e}, right after camctl sent its user name and password: check --username \
                 and --password"
            ),
        },
        ConnectionError::Io(io)
            if with_credentials
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::UnexpectedEof
                ) =>
        {
            SessionError::Closed {
                broker,
                reason: format!(
                    "{io}, right after camctl sent its user name and password: check --username \
                     and --password"
                ),
            }
        }
        ConnectionError::Io(io) => SessionError::Unreachable {
            broker,
            reason: io.to_string(),
        },
        other => SessionError::Closed {
            broker,
            reason: other.to_string(),
        },
    }
}

/// Poll the connection for as long as the session lives, reconnecting
/// (with the subscriptions renewed) when it drops.
async fn poll(
    mut eventloop: EventLoop,
    client: AsyncClient,
    tx: broadcast::Sender<Incoming>,
    filters: Arc<Mutex<Vec<String>>>,
    last: Arc<Mutex<HashMap<String, Message>>>,
) {
    let mut lost = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let m = Message {
                    topic: p.topic,
                    payload: p.payload.to_vec(),
                    retained: p.retain,
                };
                if m.payload.len() <= LAST_MAX_BYTES
                    && !m.topic.ends_with("/snapshot")
                    && let Ok(mut l) = last.lock()
                {
                    l.insert(m.topic.clone(), m.clone());
                }
                let _ = tx.send(Incoming::Message(m));
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                let _ = tx.send(Incoming::Subscribed);
            }
            Ok(Event::Incoming(Packet::ConnAck(_))) if lost => {
                lost = false;
                let again: Vec<String> = filters.lock().map(|f| f.clone()).unwrap_or_default();
                for f in again {
                    let _ = client.subscribe(f, QoS::AtLeastOnce).await;
                }
                let _ = tx.send(Incoming::Reconnected);
            }
            Ok(_) => {}
            Err(e) => {
                if !lost {
                    tracing::warn!(error = %e, "connection to the broker lost; reconnecting");
                    let _ = tx.send(Incoming::Lost(e.to_string()));
                }
                lost = true;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A client id suffix that differs between two camctl runs.
fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish() as u32
}
