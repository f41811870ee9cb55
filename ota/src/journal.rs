//! The agent's journal: where an update stands and which reports were
//! sent, kept on flash so that a crash or power cut at any point resumes
//! the same update and reports each state once (mender#485: a lost status
//! report caused a state loop and a spurious rollback).
//!
//! Written whole, atomically: temporary file, fsync, rename, fsync of the
//! directory. A reader sees the old journal or the new one, never a mix.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::boot::Slot;
use crate::manifest::Component;
use crate::trust::Trust;

/// The states reported to the fleet, each at most once per campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Downloading,
    Installing,
    Rebooting,
    Committed,
    RolledBack,
    Rejected,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Downloading => "downloading",
            State::Installing => "installing",
            State::Rebooting => "rebooting",
            State::Committed => "committed",
            State::RolledBack => "rolled-back",
            State::Rejected => "rejected",
        }
    }

    /// A state after which nothing more happens in the campaign.
    pub fn is_final(self) -> bool {
        matches!(self, State::Committed | State::RolledBack | State::Rejected)
    }
}

/// One report, as published on `…/ota/report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub camera: String,
    pub campaign: String,
    pub version: String,
    pub state: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix seconds (trusted time) when the state was entered.
    pub time: u64,
}

/// Where the current update stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "phase")]
pub enum Phase {
    Idle,
    /// Downloading the bundle to the download area.
    Downloading,
    /// Downloaded; waiting for the maintenance window.
    Downloaded,
    Installing,
    /// Slots written and pending; the reboot seam was (or is about to be)
    /// called.
    Rebooting {
        targets: Vec<(Component, Slot)>,
    },
    /// Booted into the new slots; waiting for health until `deadline`.
    Trial {
        targets: Vec<(Component, Slot)>,
        deadline: u64,
    },
    /// Rolled back in the environment; reboot into the old slots pending.
    RollingBack {
        reason: String,
    },
}

/// The campaign being worked on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub campaign: String,
    pub seq: u64,
    pub url: String,
    pub version: String,
    pub security_counter: u64,
    pub size: u64,
    #[serde(default)]
    pub window: Option<crate::announce::Window>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    pub phase: Phase,
    pub job: Option<Job>,
    /// Highest announcement seq seen per campaign.
    pub seen: BTreeMap<String, u64>,
    /// Campaigns that ended here, and how: they are not retried.
    pub finished: BTreeMap<String, State>,
    /// Reports entered but not yet acknowledged by the broker.
    pub outbox: Vec<Report>,
    /// (campaign, state) pairs already queued: a state is reported once.
    pub reported: Vec<(String, State)>,
    /// The trust store (root, latest known time, revocations).
    #[serde(with = "trust_json")]
    pub trust: Trust,
    /// The release committed by the last update, if any.
    #[serde(default)]
    pub installed_version: Option<String>,
    /// Reboots asked for without the new slot being started: a guard
    /// against a boot loop when the bootloader ignores the contract.
    #[serde(default)]
    pub reboots_unanswered: u32,
}

/// A journal file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{what} journal {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("journal {path} is not valid: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl Journal {
    pub fn new(trust: Trust) -> Journal {
        Journal {
            phase: Phase::Idle,
            job: None,
            seen: BTreeMap::new(),
            finished: BTreeMap::new(),
            outbox: Vec::new(),
            reported: Vec::new(),
            trust,
            installed_version: None,
            reboots_unanswered: 0,
        }
    }

    /// Queue a report for `state` of the current job unless it was queued
    /// before. Returns whether it was queued.
    pub fn report(
        &mut self,
        camera: &str,
        state: State,
        percent: Option<u8>,
        reason: Option<String>,
        time: u64,
    ) -> bool {
        let Some(job) = &self.job else {
            return false;
        };
        let key = (job.campaign.clone(), state);
        if self.reported.contains(&key) {
            return false;
        }
        self.reported.push(key);
        // Only the latest campaigns' keys matter; keep the file small.
        if self.reported.len() > 64 {
            self.reported.drain(..self.reported.len() - 64);
        }
        self.outbox.push(Report {
            camera: camera.to_string(),
            campaign: job.campaign.clone(),
            version: job.version.clone(),
            state,
            percent,
            reason,
            time,
        });
        if state.is_final() {
            self.finished.insert(job.campaign.clone(), state);
        }
        true
    }

    pub fn load(path: &Path) -> Result<Option<Journal>, JournalError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(JournalError::Io {
                    what: "reading",
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| JournalError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
    }

    pub fn save(&self, path: &Path) -> Result<(), JournalError> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| JournalError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        atomic_write(path, &bytes).map_err(|source| JournalError::Io {
            what: "writing",
            path: path.to_path_buf(),
            source,
        })
    }
}

/// The trust store kept as its own JSON document inside the journal.
mod trust_json {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::trust::Trust;

    pub fn serialize<S: Serializer>(t: &Trust, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_json())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Trust, D::Error> {
        let text = String::deserialize(d)?;
        Trust::from_json(&text).map_err(serde::de::Error::custom)
    }
}

/// Replace `path` with `bytes` so that a power cut leaves the old or the
/// new contents: temporary file, fsync, rename, fsync of the directory.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("no file name"))?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}
