//! What the installer asks of a store's cameras, over one session: list
//! them, read and apply a configuration, take a snapshot, follow their
//! records. Shared by the command line and the web configurator.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::QoS;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use crate::configure;
use crate::fleet::{CameraSummary, Fleet};
use crate::session::{Incoming, Message, Session, SessionError};
use crate::topics::Layout;

/// Why a command failed; each names the camera and what to check.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("no camera {camera:?} in store {store:?} (cameras heard of: {known})")]
    UnknownCamera {
        camera: String,
        store: String,
        known: String,
    },
    #[error("camera {camera} is offline (its retained status says so): it cannot answer now")]
    Offline { camera: String },
    #[error("camera {camera} publishes no configuration state on {topic}")]
    NoConfigState { camera: String, topic: String },
    #[error("camera {camera} refused the snapshot: {reason}")]
    SnapshotRefused { camera: String, reason: String },
    #[error("camera {camera} sent no snapshot within {secs} s of the request")]
    SnapshotTimeout { camera: String, secs: u64 },
    #[error("camera {camera} did not answer configuration version {version} within {secs} s")]
    ResultTimeout {
        camera: String,
        version: u64,
        secs: u64,
    },
}

/// How long to listen for retained messages after a subscription.
const RETAINED_GRACE: Duration = Duration::from_millis(300);

/// A store's cameras, through one broker session.
#[derive(Debug)]
pub struct Store {
    pub session: Session,
    pub layout: Layout,
    /// The cameras' status and health kept up to date, once
    /// [`keep_fleet`](Self::keep_fleet) started it (a long-lived session:
    /// `camctl serve`).
    live_fleet: Option<Arc<Mutex<Fleet>>>,
}

/// A configuration applied, as the camera answered it.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub camera: String,
    pub version: u64,
    pub accepted: bool,
    /// The camera's `config/result`.
    pub result: Value,
    /// `config/state` carries the new version.
    pub confirmed: bool,
}

impl Store {
    pub fn new(session: Session, layout: Layout) -> Self {
        Self {
            session,
            layout,
            live_fleet: None,
        }
    }

    /// Follow every camera's status and health from now on, for
    /// [`fleet`](Self::fleet) and [`online`](Self::online).
    pub async fn keep_fleet(&mut self) -> Result<(), CommandError> {
        let fleet = Arc::new(Mutex::new(Fleet::new(self.layout.clone())));
        let mut rx = self.session.incoming();
        self.session
            .subscribe(&self.layout.every_camera("status"))
            .await?;
        self.session
            .subscribe(&self.layout.every_camera("health"))
            .await?;
        let kept = Arc::clone(&fleet);
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(Incoming::Message(m)) => {
                        if let Ok(mut f) = kept.lock() {
                            f.on_message(&m.topic, &m.payload);
                        }
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => break,
                }
            }
        });
        self.live_fleet = Some(fleet);
        Ok(())
    }

    /// The cameras as last heard of, when [`keep_fleet`](Self::keep_fleet)
    /// runs.
    pub fn fleet(&self) -> Vec<CameraSummary> {
        self.live_fleet
            .as_ref()
            .and_then(|f| f.lock().ok().map(|f| f.cameras()))
            .unwrap_or_default()
    }

    /// Every camera of the store with a retained status, and the health of
    /// those that report within `wait`.
    pub async fn cameras(&self, wait: Duration) -> Result<Vec<CameraSummary>, CommandError> {
        Ok(self.listen(wait, true).await?.cameras())
    }

    /// The cameras' retained status, heard on a fresh subscription, and
    /// with `health` their health reports within `wait`.
    async fn listen(&self, wait: Duration, health: bool) -> Result<Fleet, CommandError> {
        let wait = wait.max(RETAINED_GRACE);
        let mut rx = self
            .session
            .subscribe_and_wait(
                &self.layout.every_camera("status"),
                wait.max(Duration::from_secs(5)),
            )
            .await?;
        if health {
            self.session
                .subscribe(&self.layout.every_camera("health"))
                .await?;
        }
        let mut fleet = Fleet::new(self.layout.clone());
        let deadline = Instant::now() + wait;
        while let Some(m) = next_message(&mut rx, deadline).await {
            fleet.on_message(&m.topic, &m.payload);
        }
        Ok(fleet)
    }

    /// One camera's status, which must say online.
    pub async fn online(&self, camera: &str) -> Result<CameraSummary, CommandError> {
        let fleet = match &self.live_fleet {
            Some(kept) => kept
                .lock()
                .map(|f| f.clone())
                .unwrap_or_else(|_| Fleet::new(self.layout.clone())),
            None => self.listen(RETAINED_GRACE, false).await?,
        };
        match fleet.get(camera) {
            Some(c) if c.online == Some(true) => Ok(c.clone()),
            Some(_) => Err(CommandError::Offline {
                camera: camera.to_string(),
            }),
            None => {
                let known: Vec<String> = fleet.cameras().into_iter().map(|c| c.camera).collect();
                Err(CommandError::UnknownCamera {
                    camera: camera.to_string(),
                    store: self.layout.store().to_string(),
                    known: if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    },
                })
            }
        }
    }

    /// The configuration in force (the camera's retained `config/state`).
    pub async fn config(&self, camera: &str) -> Result<Value, CommandError> {
        let topic = self.layout.topic(camera, "config/state");
        if self.session.is_subscribed(&topic) {
            // Followed already: the broker will not send it again.
            return self
                .session
                .last(&topic)
                .and_then(|m| serde_json::from_slice::<Value>(&m.payload).ok())
                .ok_or_else(|| CommandError::NoConfigState {
                    camera: camera.to_string(),
                    topic,
                });
        }
        let mut rx = self
            .session
            .subscribe_and_wait(&topic, Duration::from_secs(5))
            .await?;
        let deadline = Instant::now() + RETAINED_GRACE;
        while let Some(m) = next_message(&mut rx, deadline).await {
            if m.topic == topic
                && let Ok(v) = serde_json::from_slice::<Value>(&m.payload)
            {
                return Ok(v);
            }
        }
        Err(CommandError::NoConfigState {
            camera: camera.to_string(),
            topic,
        })
    }

    /// The running configuration version (0 when the camera has none).
    pub async fn running_version(&self, camera: &str) -> Result<u64, CommandError> {
        match self.config(camera).await {
            Ok(v) => Ok(v["version"].as_u64().unwrap_or(0)),
            Err(CommandError::NoConfigState { .. }) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Send a whole configuration (with the next version when it has
    /// none), wait for the camera's `config/result` for that version, then
    /// for `config/state` to carry it.
    pub async fn apply(
        &self,
        camera: &str,
        doc: Value,
        limit: Duration,
    ) -> Result<Applied, CommandError> {
        self.online(camera).await?;
        let running = self.running_version(camera).await?;
        let (version, doc) = configure::with_version(doc, Some(running));
        let result_topic = self.layout.topic(camera, "config/result");
        let state_topic = self.layout.topic(camera, "config/state");
        let mut rx = self
            .session
            .subscribe_and_wait(&result_topic, Duration::from_secs(5))
            .await?;
        self.session.subscribe(&state_topic).await?;
        self.session
            .publish(
                &self.layout.topic(camera, "config/set"),
                doc.to_string().into_bytes(),
                QoS::AtLeastOnce,
                false,
            )
            .await?;
        let deadline = Instant::now() + limit;
        let mut result: Option<Value> = None;
        let mut confirmed = false;
        while let Some(m) = next_message(&mut rx, deadline).await {
            let Ok(v) = serde_json::from_slice::<Value>(&m.payload) else {
                continue;
            };
            if m.topic == result_topic && v["version"].as_u64() == Some(version) {
                let accepted = v["accepted"] == true;
                result = Some(v);
                if !accepted || confirmed {
                    break;
                }
            } else if m.topic == state_topic && v["version"].as_u64() == Some(version) {
                confirmed = true;
                if result.is_some() {
                    break;
                }
            }
        }
        let Some(result) = result else {
            return Err(CommandError::ResultTimeout {
                camera: camera.to_string(),
                version,
                secs: limit.as_secs(),
            });
        };
        Ok(Applied {
            camera: camera.to_string(),
            version,
            accepted: result["accepted"] == true,
            result,
            confirmed,
        })
    }

    /// Ask for one snapshot (people blurred by the camera) and wait for it.
    pub async fn snapshot(&self, camera: &str, limit: Duration) -> Result<Vec<u8>, CommandError> {
        self.online(camera).await?;
        let shot = self.layout.topic(camera, "snapshot");
        let refused = self.layout.topic(camera, "snapshot/result");
        let mut rx = self
            .session
            .subscribe_and_wait(&shot, Duration::from_secs(5))
            .await?;
        self.session.subscribe(&refused).await?;
        self.session
            .publish(
                &self.layout.topic(camera, "snapshot/request"),
                b"{}".to_vec(),
                QoS::AtMostOnce,
                false,
            )
            .await?;
        let deadline = Instant::now() + limit;
        while let Some(m) = next_message(&mut rx, deadline).await {
            if m.topic == shot {
                return Ok(m.payload);
            }
            if m.topic == refused {
                let v: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
                if v["ok"] == false {
                    return Err(CommandError::SnapshotRefused {
                        camera: camera.to_string(),
                        reason: v["reason"]
                            .as_str()
                            .unwrap_or("no reason given")
                            .to_string(),
                    });
                }
            }
        }
        Err(CommandError::SnapshotTimeout {
            camera: camera.to_string(),
            secs: limit.as_secs(),
        })
    }

    /// Follow a camera's bins and events (and anything else under `leaves`)
    /// from now on; the receiver yields every message.
    pub async fn follow(
        &self,
        camera: &str,
        leaves: &[&str],
    ) -> Result<broadcast::Receiver<Incoming>, CommandError> {
        let rx = self.session.incoming();
        for leaf in leaves {
            self.session
                .subscribe(&self.layout.topic(camera, leaf))
                .await?;
        }
        Ok(rx)
    }
}

/// The next message before `deadline`; `None` once it passes.
pub async fn next_message(
    rx: &mut broadcast::Receiver<Incoming>,
    deadline: Instant,
) -> Option<Message> {
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Err(_) | Ok(Err(RecvError::Closed)) => return None,
            Ok(Err(RecvError::Lagged(n))) => {
                tracing::warn!(missed = n, "camctl fell behind the broker's messages");
            }
            Ok(Ok(Incoming::Message(m))) => return Some(m),
            Ok(Ok(_)) => {}
        }
    }
}

/// A camera's records over an audit window.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub counts: crate::audit::CameraCounts,
    /// Every bin and event as published, for the report's folder.
    pub records: Vec<Value>,
}

impl Store {
    /// Record the camera's bins and events until `until` (camera time is
    /// in the records; the window is judged by the audit).
    pub async fn record(&self, camera: &str, until: Instant) -> Result<Recording, CommandError> {
        let mut rx = self.follow(camera, &["bins", "events"]).await?;
        let mut rec = Recording::default();
        while let Some(m) = next_message(&mut rx, until).await {
            if let Ok(v) = serde_json::from_slice::<Value>(&m.payload)
                && rec.counts.add_record(&v)
            {
                rec.records.push(v);
            }
        }
        Ok(rec)
    }
}
