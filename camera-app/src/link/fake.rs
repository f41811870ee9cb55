//! A stand-in for the frame loop, for tests of the link and for the
//! backlog benchmark: it answers the link's commands on its own thread as
//! the camera would. Configurations are decided against its running
//! version (with the camera's own checks) and recorded; snapshots are
//! refused when disabled and otherwise answered with a tiny JPEG; shelf
//! references are refused (it watches no shelves).

use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};

use camera_core::config::remote;
use camera_core::shelf::request::ShelfReferenceReply;
use tokio::sync::mpsc;

use super::{CameraCommand, CameraEvent};

/// The smallest JPEG there is (SOI, EOI): a snapshot, for the link.
pub const FAKE_JPEG: &[u8] = &[0xff, 0xd8, 0xff, 0xd9];

/// What the fake frame loop did, for assertions.
#[derive(Debug, Clone, Default)]
pub struct FakeLoop {
    /// Versions of the configurations it accepted, in order.
    pub applied: Arc<Mutex<Vec<u64>>>,
    /// Snapshots it answered.
    pub snapshots: Arc<Mutex<u32>>,
}

impl FakeLoop {
    /// Start it, running configuration `running`: the channels to give
    /// [`super::Link::spawn`]. It stops when the link does.
    pub fn start(
        &self,
        running: u64,
        snapshots_enabled: bool,
    ) -> (SyncSender<CameraCommand>, mpsc::Receiver<CameraEvent>) {
        let (commands, rx) = std::sync::mpsc::sync_channel(32);
        let (events, events_rx) = mpsc::channel(64);
        let me = self.clone();
        std::thread::spawn(move || me.serve(&rx, &events, running, snapshots_enabled));
        (commands, events_rx)
    }

    fn serve(
        &self,
        commands: &Receiver<CameraCommand>,
        events: &mpsc::Sender<CameraEvent>,
        mut running: u64,
        snapshots_enabled: bool,
    ) {
        for command in commands {
            let event = match command {
                CameraCommand::Configure { ticket, payload } => {
                    match remote::decide(running, &payload, usize::MAX) {
                        Ok(d) => {
                            running = d.version;
                            lock(&self.applied).push(d.version);
                            CameraEvent::Configured {
                                ticket,
                                result: remote::ConfigResult::accepted(d.version),
                                state: Some((d.version, d.body)),
                            }
                        }
                        Err(result) => CameraEvent::Configured {
                            ticket,
                            result,
                            state: None,
                        },
                    }
                }
                CameraCommand::Snapshot if !snapshots_enabled => CameraEvent::Snapshot(Err(
                    "snapshots are disabled on this camera (snapshot.enabled)".into(),
                )),
                CameraCommand::Snapshot => {
                    *lock(&self.snapshots) += 1;
                    CameraEvent::Snapshot(Ok(FAKE_JPEG.to_vec()))
                }
                CameraCommand::ShelfReference(r) => {
                    CameraEvent::ShelfReference(ShelfReferenceReply::failed(
                        r.id,
                        "this camera does not watch shelves".into(),
                        running,
                    ))
                }
            };
            if events.blocking_send(event).is_err() {
                return;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
