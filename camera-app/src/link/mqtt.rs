//! The MQTT event loop: connects (with backoff and jitter), publishes the
//! retained birth message, drains the outbox at QoS 1 and removes records
//! on PUBACK, answers `config/set`, `snapshot/request` and
//! `shelves/reference/request`, and publishes health. It runs on its own thread with a single-threaded tokio runtime,
//! so the frame loop never waits for the network.
//!
//! Each connection uses a fresh rumqttc client: rumqttc's own in-flight
//! queue lives in memory only, so the outbox is the single place records
//! wait, and after a reconnect sending resumes from its oldest record.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet,
    Publish, QoS, TlsConfiguration, Transport,
};
use serde_json::json;
use tokio::sync::{Notify, mpsc, watch};

use super::session::{Backoff, Delivery};
use super::topics::{Inbound, Topics};
use super::{LinkConfig, LinkError, tls};
use crate::outbox::Outbox;
use camera_core::config::remote::{self as remote_config, ConfigResult, Desired};
use camera_core::shelf::request::{ShelfReferenceReply, ShelfReferenceRequest};

/// What the link needs from the rest of the camera.
pub trait Camera: Send + 'static {
    /// Fields of the retained `online` birth message (firmware, models).
    fn birth(&self) -> serde_json::Value;
    /// The current health report.
    fn health(&mut self) -> serde_json::Value;
    /// Persist and hand over a configuration that passed every check; on
    /// an error nothing changed.
    fn apply(&mut self, desired: &Desired) -> Result<(), String>;
    /// An installer asked for a snapshot. `Ok` means one will come through
    /// [`LinkHandle::snapshots`]; `Err` says why not.
    fn snapshot(&mut self) -> Result<(), String>;
    /// An installer asked for a new shelf reference. `Ok` means it was
    /// handed to the frame loop, whose results come through
    /// [`LinkHandle::shelf_replies`]; `Err` says why not (and is sent back
    /// as a failed result).
    fn shelf_reference(&mut self, request: ShelfReferenceRequest) -> Result<(), String> {
        let _ = request;
        Err("this camera does not watch shelves".into())
    }
}

/// A requested snapshot: the JPEG, or why there is none.
pub type Snapshot = Result<Vec<u8>, String>;

/// Counters of the link, for health reports and tests.
#[derive(Debug, Default)]
pub struct LinkStats {
    pub connected: AtomicBool,
    pub connections: AtomicU64,
    pub published: AtomicU64,
    pub acked: AtomicU64,
}

/// A link ready to start.
#[derive(Debug)]
pub struct Link {
    pub config: LinkConfig,
    pub camera_id: String,
    pub outbox: Arc<Mutex<Outbox>>,
    /// The running analytics configuration: version and JSON document.
    pub running: (u64, String),
}

/// The running link.
#[derive(Debug)]
pub struct LinkHandle {
    wake: Arc<Notify>,
    shutdown: watch::Sender<bool>,
    snapshots: mpsc::Sender<Snapshot>,
    shelf_replies: mpsc::Sender<ShelfReferenceReply>,
    stats: Arc<LinkStats>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LinkHandle {
    /// New records are in the outbox.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Where the pipeline sends a requested snapshot (a JPEG).
    pub fn snapshots(&self) -> mpsc::Sender<Snapshot> {
        self.snapshots.clone()
    }

    /// Where the frame loop sends results of shelf reference requests
    /// (published on `shelves/reference/result`).
    pub fn shelf_replies(&self) -> mpsc::Sender<ShelfReferenceReply> {
        self.shelf_replies.clone()
    }

    pub fn stats(&self) -> &Arc<LinkStats> {
        &self.stats
    }

    /// Publish `offline`, disconnect and wait for the thread (bounded).
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LinkHandle {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

fn lock(outbox: &Mutex<Outbox>) -> std::sync::MutexGuard<'_, Outbox> {
    // A panic elsewhere while holding the lock leaves the database itself
    // consistent (redb transactions), so carry on.
    outbox.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Link {
    /// Check the settings and start the link's thread.
    pub fn spawn(self, camera: Box<dyn Camera>) -> Result<LinkHandle, LinkError> {
        let topics = self.config.topics(&self.camera_id)?;
        let options = self.options(&topics)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(LinkError::Runtime)?;
        let wake = Arc::new(Notify::new());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (snap_tx, snap_rx) = mpsc::channel(1);
        // A request gives at most three results (accepted, waiting, its
        // end); room for a handful of requests at once.
        let (shelf_tx, shelf_rx) = mpsc::channel(32);
        let stats = Arc::new(LinkStats::default());
        let worker = Worker {
            delivery: Delivery::new(usize::from(self.config.inflight)),
            backoff: self.config.backoff(),
            topics,
            options,
            camera,
            wake: wake.clone(),
            stats: stats.clone(),
            acks: Vec::new(),
            link: self,
        };
        let from_camera = FromCamera {
            snapshots: snap_rx,
            shelf_replies: shelf_rx,
        };
        let thread = std::thread::Builder::new()
            .name("mqtt-link".into())
            .spawn(move || runtime.block_on(worker.run(shutdown_rx, from_camera)))
            .map_err(LinkError::Runtime)?;
        Ok(LinkHandle {
            wake,
            shutdown,
            snapshots: snap_tx,
            shelf_replies: shelf_tx,
            stats,
            thread: Some(thread),
        })
    }

    fn options(&self, topics: &Topics) -> Result<MqttOptions, LinkError> {
        let c = &self.config;
        let id = c
            .client_id
            .clone()
            .unwrap_or_else(|| self.camera_id.clone());
        let mut o = MqttOptions::new(id, c.broker.clone(), c.port);
        o.set_keep_alive(Duration::from_secs(c.keep_alive_s))
            // A clean session silently drops what is in flight at a cut;
            // the broker must also keep our subscriptions while we are away.
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_inflight(c.inflight)
            .set_request_channel_capacity(usize::from(c.inflight) + 64)
            .set_max_packet_size(c.max_packet_bytes, c.max_packet_bytes)
            .set_last_will(LastWill::new(
                topics.status(),
                json!({"state": "offline", "camera": self.camera_id}).to_string(),
                QoS::AtLeastOnce,
                true,
            ));
        if let Some(user) = &c.username {
            o.set_credentials(user.clone(), c.password.clone().unwrap_or_default());
        }
        if let Some(t) = &c.tls {
            let config = tls::client_config(t)?;
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
        }
        Ok(o)
    }
}

struct Worker {
    link: Link,
    topics: Topics,
    options: MqttOptions,
    camera: Box<dyn Camera>,
    delivery: Delivery,
    backoff: Backoff,
    wake: Arc<Notify>,
    stats: Arc<LinkStats>,
    /// Outbox ids acknowledged by the broker, not yet removed.
    acks: Vec<u64>,
}

/// What the frame loop hands the link to publish.
struct FromCamera {
    snapshots: mpsc::Receiver<Snapshot>,
    shelf_replies: mpsc::Receiver<ShelfReferenceReply>,
}

/// How a connection ended.
enum Ended {
    Shutdown,
    Lost,
}

impl Worker {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>, mut from_camera: FromCamera) {
        loop {
            match self.connection(&mut shutdown, &mut from_camera).await {
                Ended::Shutdown => break,
                Ended::Lost => {}
            }
            self.flush_acks();
            let wait = self.backoff.next_delay(fastrand::f64());
            tracing::info!(?wait, broker = %self.link.config.broker, "reconnecting after a wait");
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => break,
            }
        }
        self.flush_acks();
    }

    /// One connection, from CONNECT to its loss or shutdown.
    async fn connection(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
        from_camera: &mut FromCamera,
    ) -> Ended {
        let (client, eventloop) = AsyncClient::new(
            self.options.clone(),
            usize::from(self.link.config.inflight) + 64,
        );
        self.delivery.connected();
        let (events_tx, mut events) = mpsc::unbounded_channel();
        // `poll` runs in its own task so that nothing here cancels it
        // half-way through a packet.
        let poller = tokio::spawn(poll(eventloop, events_tx));
        let mut connected = false;
        let health_every = Duration::from_secs(self.link.config.health_interval_s);
        let mut health = tokio::time::interval(health_every);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let ended = loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(Ok(ev)) => {
                        if matches!(ev, Event::Incoming(Packet::ConnAck(_))) {
                            connected = true;
                            self.on_connected(&client);
                            health.reset_immediately();
                        }
                        self.on_event(&client, ev).await;
                    }
                    Some(Err(e)) => {
                        log_connection_error(&self.link.config, &e, connected);
                        break Ended::Lost;
                    }
                    None => break Ended::Lost,
                },
                () = self.wake.notified() => {}
                _ = tick.tick() => self.flush_acks(),
                _ = health.tick(), if connected => {
                    let report = self.camera.health().to_string();
                    self.publish(&client, self.topics.health(), QoS::AtMostOnce, false, report.into_bytes());
                }
                Some(shot) = from_camera.snapshots.recv() => match shot {
                    Ok(jpeg) => {
                        tracing::info!(bytes = jpeg.len(), "publishing snapshot");
                        self.publish(&client, self.topics.snapshot(), QoS::AtLeastOnce, false, jpeg);
                    }
                    Err(reason) => {
                        let result = json!({"ok": false, "reason": reason}).to_string();
                        self.publish(&client, self.topics.snapshot_result(), QoS::AtLeastOnce, false, result.into_bytes());
                    }
                },
                Some(reply) = from_camera.shelf_replies.recv() => {
                    self.publish_shelf_reply(&client, &reply);
                }
                _ = shutdown.changed() => break Ended::Shutdown,
            }
            if connected {
                self.pump(&client);
            }
        };
        self.stats.connected.store(false, Ordering::Relaxed);
        if matches!(ended, Ended::Shutdown) && connected {
            // A graceful stop replaces the retained status itself; the will
            // is only for a camera that vanished.
            let offline = json!({"state": "offline", "camera": self.link.camera_id}).to_string();
            self.publish(
                &client,
                self.topics.status(),
                QoS::AtLeastOnce,
                true,
                offline.into_bytes(),
            );
            let _ = client.try_disconnect();
            let deadline = tokio::time::sleep(Duration::from_secs(2));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Some(Ok(ev)) => self.on_event(&client, ev).await,
                        _ => break,
                    },
                    () = &mut deadline => break,
                }
            }
        }
        poller.abort();
        self.flush_acks();
        ended
    }

    fn on_connected(&mut self, client: &AsyncClient) {
        tracing::info!(broker = %self.link.config.broker, prefix = %self.topics, "connected to the broker");
        self.backoff.reset();
        self.stats.connected.store(true, Ordering::Relaxed);
        self.stats.connections.fetch_add(1, Ordering::Relaxed);
        // Configurations and shelf reference requests wait at the broker
        // while the camera is away; snapshot requests do not (QoS 0): a
        // picture is for whoever is looking now, not days later.
        for (topic, qos) in [
            (self.topics.config_set(), QoS::AtLeastOnce),
            (self.topics.snapshot_request(), QoS::AtMostOnce),
            (self.topics.shelf_reference_request(), QoS::AtLeastOnce),
        ] {
            if let Err(e) = client.try_subscribe(topic.clone(), qos) {
                tracing::warn!(%topic, error = %e, "cannot subscribe");
            }
        }
        let mut birth = self.camera.birth();
        if let Some(o) = birth.as_object_mut() {
            o.insert("state".into(), "online".into());
            o.insert("camera".into(), self.link.camera_id.clone().into());
            o.insert("config_version".into(), self.link.running.0.into());
        }
        self.publish(
            client,
            self.topics.status(),
            QoS::AtLeastOnce,
            true,
            birth.to_string().into_bytes(),
        );
        self.publish_config_state(client);
    }

    fn publish_config_state(&mut self, client: &AsyncClient) {
        let state = self.link.running.1.clone().into_bytes();
        self.publish(
            client,
            self.topics.config_state(),
            QoS::AtLeastOnce,
            true,
            state,
        );
    }

    /// A non-data publish; its place in the packet order is recorded.
    fn publish(
        &mut self,
        client: &AsyncClient,
        topic: String,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
    ) {
        match client.try_publish(topic.clone(), qos, retain, payload) {
            Ok(()) => self.delivery.sent_other(),
            Err(e) => tracing::warn!(%topic, error = %e, "cannot publish"),
        }
    }

    async fn on_event(&mut self, client: &AsyncClient, ev: Event) {
        match ev {
            Event::Outgoing(Outgoing::Publish(pkid)) => self.delivery.written(pkid),
            Event::Incoming(Packet::PubAck(ack)) => {
                if let Some(id) = self.delivery.acked(ack.pkid) {
                    self.acks.push(id);
                    self.stats.acked.fetch_add(1, Ordering::Relaxed);
                    if self.acks.len() >= 256 {
                        self.flush_acks();
                    }
                }
            }
            Event::Incoming(Packet::SubAck(ack))
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) =>
            {
                tracing::error!(
                    prefix = %self.topics,
                    "the broker refused a subscription: config/set, snapshot/request or \
                     shelves/reference/request will not reach this camera; check the broker's \
                     access rules"
                );
            }
            Event::Incoming(Packet::Publish(p)) => {
                self.on_message(client, &p);
                // Acknowledged once handled (and a configuration stored), so
                // a crash in between gets the message again.
                if let Err(e) = client.try_ack(&p) {
                    tracing::warn!(error = %e, "cannot acknowledge a message");
                }
            }
            _ => {}
        }
    }

    fn on_message(&mut self, client: &AsyncClient, p: &Publish) {
        match self.topics.inbound(&p.topic) {
            Some(Inbound::ConfigSet) => self.on_config_set(client, p),
            Some(Inbound::SnapshotRequest) => {
                let result = match self.camera.snapshot() {
                    Ok(()) => return,
                    Err(reason) => {
                        tracing::info!(%reason, "snapshot refused");
                        json!({"ok": false, "reason": reason})
                    }
                };
                let topic = self.topics.snapshot_result();
                self.publish(
                    client,
                    topic,
                    QoS::AtLeastOnce,
                    false,
                    result.to_string().into_bytes(),
                );
            }
            Some(Inbound::ShelfReferenceRequest) => self.on_shelf_reference(client, p),
            None => tracing::debug!(topic = %p.topic, "ignoring a message"),
        }
    }

    /// A request is read here; the frame loop answers it. What cannot be
    /// handed over is answered at once.
    fn on_shelf_reference(&mut self, client: &AsyncClient, p: &Publish) {
        let version = self.link.running.0;
        let refused = if p.retain {
            // A retained request would come back at every connection and
            // take a reference whatever the shelf then looks like.
            Some(ShelfReferenceReply::failed(
                None,
                "retained requests are ignored: publish it without the retain flag".into(),
                version,
            ))
        } else {
            match ShelfReferenceRequest::parse(&p.payload) {
                Ok(request) => {
                    let id = request.id.clone();
                    tracing::info!(shelf = ?request.shelf, ?id, "shelf reference requested");
                    self.camera
                        .shelf_reference(request)
                        .err()
                        .map(|reason| ShelfReferenceReply::failed(id, reason, version))
                }
                Err(r) => Some(ShelfReferenceReply::failed(
                    r.id,
                    format!("malformed request: {}", r.reason),
                    version,
                )),
            }
        };
        if let Some(reply) = refused {
            tracing::warn!(reason = ?reply.reason, "shelf reference request refused");
            self.publish_shelf_reply(client, &reply);
        }
    }

    fn publish_shelf_reply(&mut self, client: &AsyncClient, reply: &ShelfReferenceReply) {
        // Serialising our own type into memory cannot fail.
        let body = serde_json::to_vec(reply).unwrap_or_default();
        let topic = self.topics.shelf_reference_result();
        self.publish(client, topic, QoS::AtLeastOnce, false, body);
    }

    fn on_config_set(&mut self, client: &AsyncClient, p: &Publish) {
        let running = self.link.running.0;
        if p.payload == self.link.running.1.as_bytes() {
            // The configuration in force, delivered again (a retained
            // request, or a redelivery after a lost PUBACK): confirm it.
            if !p.retain {
                self.publish_result(client, &ConfigResult::accepted(running));
            }
            return;
        }
        let result = match remote_config::decide(
            running,
            &p.payload,
            self.link.config.max_config_bytes,
        ) {
            Ok(desired) => match self.camera.apply(&desired) {
                Ok(()) => {
                    tracing::info!(version = desired.version, "configuration accepted");
                    self.link.running = (desired.version, desired.body.clone());
                    self.publish_config_state(client);
                    ConfigResult::accepted(desired.version)
                }
                Err(reason) => {
                    tracing::warn!(version = desired.version, %reason, "configuration not applied");
                    ConfigResult {
                        version: Some(desired.version),
                        accepted: false,
                        running_version: running,
                        problems: vec![format!("apply: {reason}")],
                    }
                }
            },
            Err(rejected) => {
                tracing::warn!(version = ?rejected.version, problems = ?rejected.problems, "configuration rejected");
                rejected
            }
        };
        self.publish_result(client, &result);
    }

    fn publish_result(&mut self, client: &AsyncClient, result: &ConfigResult) {
        // Serialising our own type into memory cannot fail.
        let body = serde_json::to_vec(result).unwrap_or_default();
        let topic = self.topics.config_result();
        self.publish(client, topic, QoS::AtLeastOnce, false, body);
    }

    /// Hand the next outbox records to the client, as far as the window
    /// allows.
    fn pump(&mut self, client: &AsyncClient) {
        let room = self.delivery.room();
        if room == 0 {
            return;
        }
        let entries =
            match lock(&self.link.outbox).pending_after(self.delivery.resume_after(), room) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    return;
                }
            };
        for e in entries {
            let topic = self.topics.under(&e.topic);
            if let Err(err) = client.try_publish(topic, QoS::AtLeastOnce, false, e.payload) {
                tracing::debug!(error = %err, "request queue full; retrying shortly");
                return;
            }
            self.delivery.sent_data(e.id);
            self.stats.published.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush_acks(&mut self) {
        if self.acks.is_empty() {
            return;
        }
        match lock(&self.link.outbox).ack_many(&self.acks) {
            Ok(_) => self.acks.clear(),
            // Kept and retried; at worst the records are sent again.
            Err(e) => tracing::error!(error = %e, "cannot remove acknowledged records"),
        }
    }
}

async fn poll(
    mut eventloop: EventLoop,
    events: mpsc::UnboundedSender<Result<Event, ConnectionError>>,
) {
    loop {
        let ev = eventloop.poll().await;
        let failed = ev.is_err();
        if events.send(ev).is_err() || failed {
            return;
        }
    }
}

/// A TLS alert the broker sent, wherever rumqttc wrapped it (under TLS 1.3
/// a refused client certificate arrives while waiting for CONNACK).
fn alert_received(e: &(dyn std::error::Error + 'static)) -> Option<rustls::AlertDescription> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(rustls::Error::AlertReceived(a)) = err.downcast_ref::<rustls::Error>() {
            return Some(*a);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<rustls::Error>())
            && let rustls::Error::AlertReceived(a) = inner
        {
            return Some(*a);
        }
        cur = err.source();
    }
    None
}

/// One clear line per failure; certificate problems say what to check.
fn log_connection_error(cfg: &LinkConfig, e: &ConnectionError, was_connected: bool) {
    use rustls::AlertDescription as A;
    let broker = format!("{}:{}", cfg.broker, cfg.port);
    if let Some(
        alert @ (A::CertificateRequired
        | A::BadCertificate
        | A::UnknownCA
        | A::CertificateExpired
        | A::CertificateRevoked
        | A::CertificateUnknown
        | A::AccessDenied),
    ) = alert_received(e)
    {
        tracing::error!(
            %broker,
            ?alert,
            "the broker refused the camera's TLS client certificate: check link.tls.cert_file, \
             link.tls.key_file and that the broker trusts their CA"
        );
        return;
    }
    match e {
        ConnectionError::Tls(t) => tracing::error!(
            %broker,
            error = %t,
            "TLS handshake with the broker failed: check link.tls.ca_file, the broker's certificate and its name"
        ),
        ConnectionError::ConnectionRefused(code) => tracing::error!(
            %broker,
            ?code,
            "the broker refused the connection: check link.username, link.password and the broker's access rules for this client id"
        ),
        e if was_connected => tracing::warn!(%broker, error = %e, "connection to the broker lost"),
        e => tracing::warn!(%broker, error = %e, "cannot connect to the broker"),
    }
}
