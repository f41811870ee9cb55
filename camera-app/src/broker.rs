//! An embedded MQTT broker (rumqttd) on 127.0.0.1, for `camera-app demo`
//! and the integration tests: the camera's link talks to a real broker
//! without anything installed. Cameras in the field use the store's or
//! the cloud's broker instead.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Why the broker did not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("embedded broker: no free port on 127.0.0.1: {0}")]
    Port(#[source] std::io::Error),
    #[error("embedded broker on {addr}: {reason}")]
    Start { addr: SocketAddr, reason: String },
    #[error("CAMERA_TEST_BROKER={value}: {reason}")]
    External { value: String, reason: String },
}

/// The broker a test process runs against: `$CAMERA_TEST_BROKER`
/// (`host:port`, e.g. the mosquitto `.ci/run` starts), checked to accept
/// connections, or else one embedded broker started on first use and
/// shared by every test of the process. The tests of camera-app, camctl
/// and the OTA end to end all take theirs from here.
pub fn for_tests(max_payload: usize) -> Result<SocketAddr, BrokerError> {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    if let Some(a) = ADDR.get() {
        return Ok(*a);
    }
    let addr = match std::env::var("CAMERA_TEST_BROKER") {
        Ok(value) => {
            let addr: SocketAddr = value.parse().map_err(|e| BrokerError::External {
                value: value.clone(),
                reason: format!("not host:port ({e})"),
            })?;
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| {
                BrokerError::External {
                    value: value.clone(),
                    reason: format!("no broker there ({e}); start one or unset it"),
                }
            })?;
            addr
        }
        Err(_) => start(0, max_payload)?,
    };
    // Two tests racing here may both start one; the first kept is used.
    Ok(*ADDR.get_or_init(|| addr))
}

/// Start a broker on 127.0.0.1 (`port` 0 picks a free one) and wait until
/// it accepts connections. It runs until the process ends.
pub fn start(port: u16, max_payload: usize) -> Result<SocketAddr, BrokerError> {
    start_with_users(port, max_payload, None)
}

/// As [`start`], accepting only the given user names and passwords when
/// `users` is set (what a store's broker does; the tests of the
/// installer's tool check how a wrong password is reported).
pub fn start_with_users(
    port: u16,
    max_payload: usize,
    users: Option<HashMap<String, String>>,
) -> Result<SocketAddr, BrokerError> {
    let addr = if port == 0 {
        // rumqttd cannot report the port it bound, so find a free one.
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(BrokerError::Port)?;
        l.local_addr().map_err(BrokerError::Port)?
    } else {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    };
    let server = ServerSettings {
        name: "v4".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: max_payload,
            max_inflight_count: 500,
            auth: users,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1000,
            max_outgoing_packet_count: 200,
            max_segment_size: 16 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_string(), server)])),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    std::thread::Builder::new()
        .name("embedded-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, %addr, "embedded broker stopped");
            }
        })
        .map_err(|e| BrokerError::Start {
            addr,
            reason: e.to_string(),
        })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if Instant::now() > deadline {
            return Err(BrokerError::Start {
                addr,
                reason: "not listening after 10 s".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(addr)
}
