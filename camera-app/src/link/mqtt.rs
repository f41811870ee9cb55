//! The MQTT event loop: connects (with backoff and jitter), publishes the
//! retained birth message, drains the outbox at QoS 1 and removes records
//! on PUBACK, hands `config/set`, `snapshot/request` and
//! `shelves/reference/request` to the frame loop and publishes its
//! answers, and publishes health. It runs on its own thread with a
//! single-threaded tokio runtime, so the frame loop never waits for the
//! network.
//!
//! Each connection uses a fresh rumqttc client: rumqttc's own in-flight
//! queue lives in memory only, so the outbox is the single place records
//! wait, and after a reconnect sending resumes from its oldest record.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet,
    Publish, QoS, TlsConfiguration, Transport,
};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use camera_core::config::remote::ConfigResult;
use camera_core::shelf::request::{ShelfReferenceReply, ShelfReferenceRequest};

use super::messages::{CameraCommand, CameraEvent};
use super::session::{Backoff, Delivery};
use super::topics::{Inbound, Topics};
use super::{LinkConfig, LinkError, tls};
use crate::outbox::{Outbox, OutboxError, OutboxStats};

/// Builds the health report from the outbox's figures (`None` when they
/// cannot be read).
pub type HealthFn = Box<dyn FnMut(Option<OutboxStats>) -> serde_json::Value + Send>;

/// Counters of the link, for health reports and tests.
#[derive(Debug, Default)]
pub struct LinkStats {
    pub connected: AtomicBool,
    pub connections: AtomicU64,
    pub published: AtomicU64,
    pub acked: AtomicU64,
}

/// A link ready to start.
pub struct Link {
    pub config: LinkConfig,
    pub camera_id: String,
    pub outbox: Arc<Mutex<Outbox>>,
    /// The running analytics configuration: version and JSON document.
    pub running: (u64, String),
    /// Fields of the retained `online` birth message (firmware, models).
    pub birth: serde_json::Value,
    pub health: HealthFn,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("config", &self.config)
            .field("camera_id", &self.camera_id)
            .field("running", &self.running.0)
            .finish_non_exhaustive()
    }
}

/// The running link.
#[derive(Debug)]
pub struct LinkHandle {
    shutdown: watch::Sender<bool>,
    stats: Arc<LinkStats>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LinkHandle {
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

/// Events kept while the broker is away, published after reconnecting.
const MAX_UNSENT: usize = 64;

fn lock(outbox: &Mutex<Outbox>) -> std::sync::MutexGuard<'_, Outbox> {
    // A panic elsewhere while holding the lock leaves the database itself
    // consistent (redb transactions), so carry on.
    outbox.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Link {
    /// Check the settings and start the link's thread. Commands go to the
    /// frame loop through `commands`; its answers come back on `events`.
    pub fn spawn(
        self,
        commands: SyncSender<CameraCommand>,
        events: mpsc::Receiver<CameraEvent>,
    ) -> Result<LinkHandle, LinkError> {
        let topics = self.config.topics(&self.camera_id)?;
        let options = self.options(&topics)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(LinkError::Runtime)?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let stats = Arc::new(LinkStats::default());
        let worker = Worker {
            delivery: Delivery::new(usize::from(self.config.inflight)),
            backoff: self.config.backoff(),
            topics,
            options,
            commands,
            stats: stats.clone(),
            acks: Vec::new(),
            next_ticket: 0,
            pending_configs: HashMap::new(),
            unsent: VecDeque::new(),
            outbox_failing: false,
            link: self,
        };
        let thread = std::thread::Builder::new()
            .name("mqtt-link".into())
            .spawn(move || runtime.block_on(worker.run(shutdown_rx, events)))
            .map_err(LinkError::Runtime)?;
        Ok(LinkHandle {
            shutdown,
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
    commands: SyncSender<CameraCommand>,
    delivery: Delivery,
    backoff: Backoff,
    stats: Arc<LinkStats>,
    /// Outbox ids acknowledged by the broker, not yet removed.
    acks: Vec<u64>,
    next_ticket: u64,
    /// `config/set` messages handed to the frame loop, acknowledged to the
    /// broker once the loop answered (a configuration it accepted is
    /// stored by then), so a crash in between gets the message again.
    /// Dropped at a disconnection: the broker sends them again.
    pending_configs: HashMap<u64, Publish>,
    /// Answers of the frame loop that came while the broker was away.
    unsent: VecDeque<CameraEvent>,
    /// The outbox fails (a full or failing flash; the frame loop reopens
    /// it): said once, not at every pump.
    outbox_failing: bool,
}

/// Whether a message can be acknowledged now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    Now,
    /// When the frame loop answers.
    Later,
}

/// How a connection ended.
enum Ended {
    Shutdown,
    Lost,
}

impl Worker {
    async fn run(
        mut self,
        mut shutdown: watch::Receiver<bool>,
        mut events: mpsc::Receiver<CameraEvent>,
    ) {
        loop {
            match self.connection(&mut shutdown, &mut events).await {
                Ended::Shutdown => break,
                Ended::Lost => {}
            }
            self.flush_acks();
            self.pending_configs.clear();
            let wait = self.backoff.next_delay(fastrand::f64());
            tracing::info!(?wait, broker = %self.link.config.broker, "reconnecting after a wait");
            let sleep = tokio::time::sleep(wait);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    Some(ev) = events.recv() => self.keep(ev),
                    _ = shutdown.changed() => {
                        self.flush_acks();
                        return;
                    }
                }
            }
        }
        self.flush_acks();
    }

    /// An answer of the frame loop while the broker is away: kept for the
    /// next connection (new records need no keeping: they are in the
    /// outbox).
    fn keep(&mut self, ev: CameraEvent) {
        if ev == CameraEvent::Stored {
            return;
        }
        if self.unsent.len() >= MAX_UNSENT {
            tracing::warn!("the broker is away: dropping the oldest unsent answer");
            self.unsent.pop_front();
        }
        self.unsent.push_back(ev);
    }

    /// One connection, from CONNECT to its loss or shutdown.
    async fn connection(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
        events: &mut mpsc::Receiver<CameraEvent>,
    ) -> Ended {
        let (client, eventloop) = AsyncClient::new(
            self.options.clone(),
            usize::from(self.link.config.inflight) + 64,
        );
        self.delivery.connected();
        let (mqtt_tx, mut mqtt) = mpsc::unbounded_channel();
        // `poll` runs in its own task so that nothing here cancels it
        // half-way through a packet.
        let poller = tokio::spawn(poll(eventloop, mqtt_tx));
        let mut connected = false;
        let health_every = Duration::from_secs(self.link.config.health_interval_s);
        let mut health = tokio::time::interval(health_every);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let ended = loop {
            tokio::select! {
                ev = mqtt.recv() => match ev {
                    Some(Ok(ev)) => {
                        if matches!(ev, Event::Incoming(Packet::ConnAck(_))) {
                            connected = true;
                            self.on_connected(&client);
                            health.reset_immediately();
                        }
                        self.on_event(&client, ev);
                    }
                    Some(Err(e)) => {
                        log_connection_error(&self.link.config, &e, connected);
                        break Ended::Lost;
                    }
                    None => break Ended::Lost,
                },
                Some(ev) = events.recv() => {
                    if connected {
                        self.on_camera_event(&client, ev);
                    } else {
                        self.keep(ev);
                    }
                }
                _ = tick.tick() => self.flush_acks(),
                _ = health.tick(), if connected => {
                    let stats = lock(&self.link.outbox).stats();
                    let stats = self.outbox_result("read the figures of", stats);
                    let report = (self.link.health)(stats).to_string();
                    self.publish(&client, self.topics.health(), QoS::AtMostOnce, false, report.into_bytes());
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
                    ev = mqtt.recv() => match ev {
                        Some(Ok(ev)) => self.on_event(&client, ev),
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

    /// What the frame loop answered, published.
    fn on_camera_event(&mut self, client: &AsyncClient, ev: CameraEvent) {
        match ev {
            // Sent by `pump` after this event.
            CameraEvent::Stored => {}
            CameraEvent::Configured {
                ticket,
                result,
                state,
            } => {
                if let Some((version, body)) = state {
                    tracing::info!(version, "configuration in force");
                    self.link.running = (version, body);
                    self.publish_config_state(client);
                }
                self.publish_result(client, &result);
                if let Some(p) = self.pending_configs.remove(&ticket)
                    && let Err(e) = client.try_ack(&p)
                {
                    tracing::warn!(error = %e, "cannot acknowledge a configuration");
                }
            }
            CameraEvent::Snapshot(Ok(jpeg)) => {
                tracing::info!(bytes = jpeg.len(), "publishing snapshot");
                self.publish(
                    client,
                    self.topics.snapshot(),
                    QoS::AtLeastOnce,
                    false,
                    jpeg,
                );
            }
            CameraEvent::Snapshot(Err(reason)) => {
                tracing::info!(%reason, "snapshot refused");
                let result = json!({"ok": false, "reason": reason}).to_string();
                let topic = self.topics.snapshot_result();
                self.publish(client, topic, QoS::AtLeastOnce, false, result.into_bytes());
            }
            CameraEvent::ShelfReference(reply) => self.publish_shelf_reply(client, &reply),
        }
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
        let mut birth = self.link.birth.clone();
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
        while let Some(ev) = self.unsent.pop_front() {
            self.on_camera_event(client, ev);
        }
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

    fn on_event(&mut self, client: &AsyncClient, ev: Event) {
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
                // Acknowledged once handled; a configuration only once the
                // frame loop has answered (and stored it), so a crash in
                // between gets the message again.
                if self.on_message(client, &p) == Handled::Now
                    && let Err(e) = client.try_ack(&p)
                {
                    tracing::warn!(error = %e, "cannot acknowledge a message");
                }
            }
            _ => {}
        }
    }

    fn on_message(&mut self, client: &AsyncClient, p: &Publish) -> Handled {
        match self.topics.inbound(&p.topic) {
            Some(Inbound::ConfigSet) => return self.on_config_set(client, p),
            Some(Inbound::SnapshotRequest) => {
                if let Err(reason) = self.command(CameraCommand::Snapshot) {
                    tracing::info!(%reason, "snapshot refused");
                    let result = json!({"ok": false, "reason": reason}).to_string();
                    let topic = self.topics.snapshot_result();
                    self.publish(client, topic, QoS::AtLeastOnce, false, result.into_bytes());
                }
            }
            Some(Inbound::ShelfReferenceRequest) => self.on_shelf_reference(client, p),
            None => tracing::debug!(topic = %p.topic, "ignoring a message"),
        }
        Handled::Now
    }

    /// Hand a command to the frame loop, or say why it cannot take it.
    fn command(&self, command: CameraCommand) -> Result<(), String> {
        self.commands.try_send(command).map_err(|e| match e {
            TrySendError::Full(_) => {
                "the camera has many requests waiting; try again shortly".to_string()
            }
            TrySendError::Disconnected(_) => "the camera is stopping".to_string(),
        })
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
                    self.command(CameraCommand::ShelfReference(request))
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

    /// The frame loop decides (against the version in force where it is
    /// applied) and stores; it answers with the ticket.
    fn on_config_set(&mut self, client: &AsyncClient, p: &Publish) -> Handled {
        let running = self.link.running.0;
        if p.payload == self.link.running.1.as_bytes() {
            // The configuration in force, delivered again (a retained
            // request, or a redelivery after a lost PUBACK): confirm it.
            if !p.retain {
                self.publish_result(client, &ConfigResult::accepted(running));
            }
            return Handled::Now;
        }
        if p.payload.len() > self.link.config.max_config_bytes {
            let result = ConfigResult {
                version: None,
                accepted: false,
                running_version: running,
                problems: vec![format!(
                    "payload: {} bytes, more than the limit of {}",
                    p.payload.len(),
                    self.link.config.max_config_bytes
                )],
            };
            self.publish_result(client, &result);
            return Handled::Now;
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let command = CameraCommand::Configure {
            ticket,
            payload: p.payload.to_vec(),
        };
        match self.command(command) {
            Ok(()) => {
                self.pending_configs.insert(ticket, p.clone());
                Handled::Later
            }
            Err(reason) => {
                let result = ConfigResult {
                    version: None,
                    accepted: false,
                    running_version: running,
                    problems: vec![format!("apply: {reason}")],
                };
                self.publish_result(client, &result);
                Handled::Now
            }
        }
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
        let entries = lock(&self.link.outbox).pending_after(self.delivery.resume_after(), room);
        let Some(entries) = self.outbox_result("read records from", entries) else {
            return;
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
        let removed = lock(&self.link.outbox).ack_many(&self.acks);
        // Kept and retried on failure; at worst the records are sent again.
        if self
            .outbox_result("remove acknowledged records from", removed)
            .is_some()
        {
            self.acks.clear();
        }
    }

    /// The outcome of an outbox call, logged at the first failure of a
    /// streak and at the recovery, not at each call of the streak.
    fn outbox_result<T>(&mut self, what: &str, r: Result<T, OutboxError>) -> Option<T> {
        match r {
            Ok(v) => {
                if std::mem::take(&mut self.outbox_failing) {
                    tracing::info!("the outbox works again");
                }
                Some(v)
            }
            Err(e) if self.outbox_failing => {
                tracing::debug!(error = %e, "the outbox still fails: cannot {what} it");
                None
            }
            Err(e) => {
                self.outbox_failing = true;
                tracing::error!(error = %e, "cannot {what} the outbox (said once until it works again)");
                None
            }
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
