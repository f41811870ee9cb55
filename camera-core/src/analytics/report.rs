//! What the engine reports: bins and events, as JSON lines and (later) MQTT
//! payloads. The schema is documented in `docs/analytics.md`; field names
//! are part of the camera's API.
//!
//! Times are RFC 3339 UTC strings with microseconds; every record carries
//! the camera id, its own sequence number (bins and events are numbered
//! separately, each monotonic) and the config version it was computed
//! under, so consumers can de-duplicate by (camera, type, seq).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

use super::line::Direction;
use super::occupancy::Drift;
use crate::config::ZoneKind;
use crate::shelf::state::Stock;
use crate::track::TrackId;

/// One JSON line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Record {
    Bin(Box<BinReport>),
    Event(Event),
}

/// µs since the Unix epoch as an RFC 3339 string.
pub fn rfc3339(t_us: u64) -> String {
    humantime::format_rfc3339_micros(SystemTime::UNIX_EPOCH + Duration::from_micros(t_us))
        .to_string()
}

fn ser_time<S: Serializer>(t_us: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_micros(
        SystemTime::UNIX_EPOCH + Duration::from_micros(*t_us),
    ))
}

/// In and out counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct InOut {
    pub r#in: u64,
    pub out: u64,
}

impl InOut {
    pub fn add(&mut self, d: Direction) {
        match d {
            Direction::In => self.r#in += 1,
            Direction::Out => self.out += 1,
        }
    }
}

/// A closed reporting bin.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BinReport {
    pub camera: Arc<str>,
    pub seq: u64,
    #[serde(rename = "start", serialize_with = "ser_time")]
    pub start_us: u64,
    #[serde(rename = "end", serialize_with = "ser_time")]
    pub end_us: u64,
    pub config_version: u64,
    /// Seconds of frames seen in the bin (less than its width after a
    /// start or a gap).
    pub observed_s: f64,
    pub frames: u64,
    pub lines: Vec<LineReport>,
    /// "In" crossings of the door lines (all lines but the passers-by one).
    pub entries: u64,
    pub exits: u64,
    /// People who passed the door without entering.
    pub passers_by: u64,
    /// entries / (entries + passers_by); null when both are zero.
    pub entry_rate: Option<f64>,
    pub store: StoreReport,
    pub zones: Vec<ZoneReport>,
    pub funnel: Funnel,
    pub heatmap: Option<HeatmapReport>,
    /// Watched shelves (empty without any).
    pub shelves: Vec<ShelfReport>,
}

/// A shelf over a bin: interactions, and its facings at the bin's end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShelfReport {
    pub name: Arc<str>,
    /// Shoppers who stood in the front zone at least the stop time (stops
    /// that ended in the bin).
    pub stops: u64,
    /// Stops after which a facing's fill dropped.
    pub takes: u64,
    /// Mean stop time; null without stops.
    pub avg_stop_s: Option<f64>,
    /// Facings per state at the end of the bin (`unknown`: no reference
    /// yet, or not observed since).
    pub stocked: u64,
    pub low: u64,
    pub empty: u64,
    pub unknown: u64,
    /// Names of the empty facings.
    pub empty_facings: Vec<Arc<str>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LineReport {
    pub name: Arc<str>,
    /// This is the passers-by line.
    pub passers_by: bool,
    #[serde(flatten)]
    pub count: InOut,
    /// Per class label.
    pub classes: BTreeMap<Arc<str>, InOut>,
}

/// Store occupancy from the door counts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StoreReport {
    /// At the end of the bin.
    pub occupancy: u64,
    pub max_occupancy: u64,
    pub drift: Drift,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ZoneReport {
    pub name: Arc<str>,
    pub kind: ZoneKind,
    /// People in the zone at the end of the bin.
    pub occupancy: u64,
    /// Time-weighted over the bin's observed time.
    pub avg_occupancy: f64,
    pub max_occupancy: u64,
    pub entries: u64,
    /// Visits that ended in the bin.
    pub exits: u64,
    pub dwell_mean_s: Option<f64>,
    pub dwell_histogram: DwellHistogram,
    /// Loitering events in the bin.
    pub loitering: u64,
    /// Shelf zones: stays of at least the interaction time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interactions: Option<u64>,
    /// Queue zones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueReport>,
}

/// Dwell of the visits that ended in the bin: `counts[i]` visits shorter
/// than `edges_s[i]` (and not shorter than `edges_s[i-1]`); the last count
/// is the open bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DwellHistogram {
    pub edges_s: &'static [u32],
    pub counts: Vec<u64>,
}

/// Queue length and estimated wait (Little's law: length / service rate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QueueReport {
    pub length: u64,
    pub avg_length: f64,
    pub max_length: u64,
    pub wait_s: f64,
    pub avg_wait_s: f64,
}

/// Passers-by → entries → deep visits → shelf interactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Funnel {
    pub passers_by: u64,
    pub entries: u64,
    /// Tracks that reached an inner zone.
    pub deep_visits: u64,
    pub shelf_interactions: u64,
}

/// Person-seconds per cell, row-major from the top-left.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeatmapReport {
    pub cols: u32,
    pub rows: u32,
    pub person_seconds: Vec<f32>,
}

/// Something that happened at a moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub camera: Arc<str>,
    pub seq: u64,
    #[serde(rename = "time", serialize_with = "ser_time")]
    pub time_us: u64,
    pub config_version: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum EventKind {
    /// A track crossed a line.
    Crossing {
        line: Arc<str>,
        track: TrackId,
        direction: Direction,
        class: Arc<str>,
    },
    /// A visit has lasted longer than the zone's loitering threshold.
    Loitering {
        zone: Arc<str>,
        track: TrackId,
        #[serde(rename = "since", serialize_with = "ser_time")]
        since_us: u64,
    },
    /// A visit to a zone ended.
    Visit {
        zone: Arc<str>,
        track: TrackId,
        #[serde(rename = "entered", serialize_with = "ser_time")]
        entered_us: u64,
        #[serde(rename = "left", serialize_with = "ser_time")]
        left_us: u64,
        dwell_s: f64,
    },
    /// A shelf facing's stock state took hold.
    Shelf {
        shelf: Arc<str>,
        facing: Arc<str>,
        state: Stock,
        /// `None` for the first state after a start or a new reference.
        previous: Option<Stock>,
        /// Estimated fill 0..1 of the observation that settled it.
        fill: f64,
        /// When the first agreeing observation was made.
        #[serde(rename = "since", serialize_with = "ser_time")]
        since_us: u64,
    },
}
