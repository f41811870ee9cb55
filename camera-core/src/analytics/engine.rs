//! The analytics engine: confirmed tracks and a timestamp in, bins and
//! events out. It ties the line, zone, occupancy, heatmap and bin state
//! machines together; like them it does no I/O and reads no clock.
//!
//! Per frame it only walks the tracks and the configured lines and zones:
//! its tables grow to the number of people in view and are reused, so a
//! steady stream of frames allocates nothing (events and bins are the
//! exceptions, and they are rare).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::bins::{BinClock, BinId};
use super::heatmap::Heatmap;
use super::line::{Direction, LineCounter};
use super::occupancy::{Drift, StoreOccupancy};
use super::report::{
    BinReport, DwellHistogram, Event, EventKind, Funnel, HeatmapReport, InOut, LineReport,
    QueueReport, Record, ShelfReport, StoreReport, ZoneReport,
};
use super::zone::{Visit, ZoneChange, ZoneTiming, ZoneTracker};
use crate::config::{
    AnalyticsConfig, Anchor, DEFAULT_INTERACTION_S, MAX_LINES, MAX_ZONES, ZoneKind,
};
use crate::detection::BBox;
use crate::geom::Point;
use crate::shelf::interact::Interaction;
use crate::shelf::monitor::ShelfOutput;
use crate::shelf::state::Stock;
use crate::track::{TrackId, TrackOut};

/// A new track continues a lost one (the same person, found again under a
/// new id) when it appears within this distance (normalised) of where the
/// other would be by now, walking on as it was: a little more the longer
/// the gap. Somebody appearing where somebody else vanished, but walking
/// the other way (two people on either side of a wall), is not them.
const CONTINUE_RADIUS: f32 = 0.05;
const CONTINUE_PER_S: f32 = 0.08;
const CONTINUE_MAX: f32 = 0.2;
/// Somebody first or last seen on the street closer than this to a door
/// line may have come out or walked in under another id: not decided as a
/// passer-by.
const NEAR_DOOR: f32 = 0.1;
/// A passer-by was seen for at least this long in all: shorter tracks are
/// pieces of people (coming out from behind a wall, broken in a group).
const MIN_PASSER_SEEN_S: f32 = 1.0;
/// The prediction walks on for at most this long.
const CONTINUE_PREDICT_S: f32 = 1.0;
/// A track whose box lies this much (share of its area) inside a larger
/// person's box is a part of that person (upper body, a reflection, a
/// shadow) or hidden behind them: it neither counts nor visits.
const CONTAINED: f32 = 0.8;
/// ... where the larger box is at least this much larger.
const CONTAINER_AREA: f32 = 1.3;

/// Upper edges of the dwell histogram's buckets (seconds); the last bucket
/// is open.
pub const DWELL_EDGES_S: [u32; 8] = [5, 15, 30, 60, 120, 300, 600, 1800];

/// Settings that do not come from the installer's configuration.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub camera_id: Arc<str>,
    /// Class labels by class id (the model manifest's).
    pub labels: Vec<Arc<str>>,
    /// Sequence numbers to continue from (restored from storage).
    pub first_bin_seq: u64,
    pub first_event_seq: u64,
    /// Forget a track this long after it was last seen; a passer-by is
    /// decided then. Longer than the tracker's lost timeout.
    pub forget_s: f64,
    /// A new track this close (normalised) to where a track was lost in a
    /// zone continues that track's visit.
    pub bridge_radius: f32,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            camera_id: Arc::from("camera"),
            labels: vec![Arc::from("person")],
            first_bin_seq: 0,
            first_event_seq: 0,
            forget_s: 3.0,
            bridge_radius: 0.08,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct LineBin {
    count: InOut,
    /// Per class id.
    classes: Vec<(u16, InOut)>,
}

#[derive(Debug)]
struct LineUnit {
    name: Arc<str>,
    counter: LineCounter,
    /// The passers-by line outside the door: crossing it is passing, not
    /// entering.
    street: bool,
    bin: LineBin,
}

#[derive(Debug, Clone, Default)]
struct ZoneBin {
    entries: u64,
    exits: u64,
    occupancy_s: f64,
    max_occupancy: u64,
    dwell_sum_s: f64,
    dwell_counts: [u64; DWELL_EDGES_S.len() + 1],
    loitering: u64,
    interactions: u64,
}

#[derive(Debug)]
struct ZoneUnit {
    name: Arc<str>,
    kind: ZoneKind,
    tracker: ZoneTracker,
    /// This is the passers-by zone.
    street: bool,
    service_per_min: Option<f64>,
    interaction_s: f64,
    bin: ZoneBin,
}

impl ZoneUnit {
    /// This bin's report over `observed` seconds of frames; the bin's
    /// accumulators start again.
    fn report(&mut self, observed: f64) -> ZoneReport {
        let b = std::mem::take(&mut self.bin);
        let occupancy = self.tracker.occupancy() as u64;
        let visits: u64 = b.dwell_counts.iter().sum();
        let avg = if observed > 0.0 {
            b.occupancy_s / observed
        } else {
            occupancy as f64
        };
        let queue = self.service_per_min.map(|rate| QueueReport {
            length: occupancy,
            avg_length: round3(avg),
            max_length: b.max_occupancy,
            wait_s: round3(occupancy as f64 / rate * 60.0),
            avg_wait_s: round3(avg / rate * 60.0),
        });
        ZoneReport {
            name: self.name.clone(),
            kind: self.kind,
            occupancy,
            avg_occupancy: round3(avg),
            max_occupancy: b.max_occupancy.max(occupancy),
            entries: b.entries,
            exits: b.exits,
            dwell_mean_s: (visits > 0).then(|| round3(b.dwell_sum_s / visits as f64)),
            dwell_histogram: DwellHistogram {
                edges_s: &DWELL_EDGES_S,
                counts: b.dwell_counts.to_vec(),
            },
            loitering: b.loitering,
            interactions: (self.kind == ZoneKind::Shelf).then_some(b.interactions),
            queue,
        }
    }
}

/// What the engine remembers of a track.
#[derive(Debug, Clone, Copy)]
struct TrackInfo {
    id: TrackId,
    last_seen: f64,
    /// Where it was last seen (anchor, normalised), and how fast it was
    /// moving (normalised per second, smoothed).
    last_pos: Point,
    velocity: (f32, f32),
    /// Partly behind somebody else when last seen: lost there, they were
    /// hidden, not gone, and are found again under another id.
    covered: bool,
    /// Where the person was first seen, and for how long they have been
    /// seen in all (both kept by a track that continues this one).
    first_pos: Point,
    seen_s: f32,
    /// Its box touched the edge of the frame when last seen: it may have
    /// walked out of the view, and whoever appears there next is somebody
    /// else (or the same person back), never its continuation.
    at_border: bool,
    /// Crossed a door line, either way: someone who walked in or out is
    /// not a passer-by, whatever they did on the street.
    crossed: bool,
    /// Crossed the passers-by line or visited the street zone.
    passed: bool,
    /// A newer track took this one over (the same person found again), or
    /// took over its zone visit: the person is decided there, not here.
    continued: bool,

    /// Reached an inner zone.
    deep: bool,
    /// Shelf zones (by index) where an interaction was counted.
    shelf_done: u32,
}

impl TrackInfo {
    /// Decided when the track is forgotten: wherever it was lost (out of
    /// the view, or behind a wall mid-view), someone who was on the
    /// street, never crossed the door, was not behind somebody else when
    /// lost and was not found again under another id passed by (unless
    /// first or last seen at the door: see `near_door`). Which edge of the
    /// view they left by plays no part.
    fn passed_by(&self) -> bool {
        self.passed
            && !self.crossed
            && !self.continued
            && !self.covered
            && self.seen_s >= MIN_PASSER_SEEN_S
    }
}

#[derive(Debug, Clone, Default)]
struct BinTotals {
    observed_s: f64,
    frames: u64,
    passers_by: u64,
    deep_visits: u64,
    shelf_interactions: u64,
}

/// Numbers and stamps events: camera, sequence, config version, and the
/// conversion from the engine's seconds back to wall-clock µs.
#[derive(Debug)]
struct EventLog {
    camera: Arc<str>,
    version: u64,
    next_seq: u64,
    /// Wall-clock µs of the engine's time zero (the first frame).
    origin_us: u64,
}

impl EventLog {
    /// Engine seconds → µs since the Unix epoch.
    fn wall_us(&self, t: f64) -> u64 {
        self.origin_us + (t * 1e6).round().max(0.0) as u64
    }

    fn push(&mut self, out: &mut Vec<Record>, time_us: u64, kind: EventKind) {
        out.push(Record::Event(Event {
            camera: self.camera.clone(),
            seq: self.next_seq,
            time_us,
            config_version: self.version,
            kind,
        }));
        self.next_seq += 1;
    }

    /// A finished visit: counted in the zone's bin and reported.
    fn visit(&mut self, zone: &mut ZoneUnit, v: &Visit, out: &mut Vec<Record>) {
        let dwell = v.dwell_s();
        zone.bin.exits += 1;
        zone.bin.dwell_sum_s += dwell;
        let bucket = DWELL_EDGES_S
            .iter()
            .position(|&e| dwell < f64::from(e))
            .unwrap_or(DWELL_EDGES_S.len());
        zone.bin.dwell_counts[bucket] += 1;
        let left_us = self.wall_us(v.left);
        let kind = EventKind::Visit {
            zone: zone.name.clone(),
            track: v.track,
            entered_us: self.wall_us(v.entered),
            left_us,
            dwell_s: round3(dwell),
        };
        self.push(out, left_us, kind);
    }
}

/// The engine.
#[derive(Debug)]
pub struct Engine {
    version: u64,
    anchor: Anchor,
    settings: EngineSettings,
    /// Fixed capacity: the configuration allows at most this many, and
    /// the engine's size is known when it is made.
    lines: heapless::Vec<LineUnit, MAX_LINES>,
    zones: heapless::Vec<ZoneUnit, MAX_ZONES>,
    occupancy: StoreOccupancy,
    heatmap: Option<Heatmap>,
    clock: BinClock,
    events: EventLog,
    tracks: Vec<TrackInfo>,
    last_t_us: Option<u64>,
    /// Time zero of the engine's internal seconds.
    origin_us: Option<u64>,
    /// Seconds since the previous frame (capped).
    frame_dt: f64,
    totals: BinTotals,
    visits: Vec<Visit>,
    shelves: Vec<ShelfUnit>,
    /// Per track of the current frame: how it overlaps the others.
    overlaps: Vec<Overlap>,
}

/// A watched shelf: its facings' states and this bin's interactions.
#[derive(Debug)]
struct ShelfUnit {
    name: Arc<str>,
    facings: Vec<Arc<str>>,
    states: Vec<Option<Stock>>,
    stops: u64,
    takes: u64,
    stop_time_us: i64,
}

impl ShelfUnit {
    fn report(&mut self) -> ShelfReport {
        let count = |want: Option<Stock>| self.states.iter().filter(|&&s| s == want).count() as u64;
        let r = ShelfReport {
            name: self.name.clone(),
            stops: self.stops,
            takes: self.takes,
            avg_stop_s: (self.stops > 0)
                .then(|| round3(self.stop_time_us as f64 / 1e6 / self.stops as f64)),
            stocked: count(Some(Stock::Stocked)),
            low: count(Some(Stock::Low)),
            empty: count(Some(Stock::Empty)),
            unknown: count(None),
            empty_facings: self
                .facings
                .iter()
                .zip(&self.states)
                .filter(|(_, s)| **s == Some(Stock::Empty))
                .map(|(f, _)| f.clone())
                .collect(),
        };
        (self.stops, self.takes, self.stop_time_us) = (0, 0, 0);
        r
    }
}

impl Engine {
    pub fn new(config: &AnalyticsConfig, settings: EngineSettings) -> Self {
        let street = config.passers_by.as_deref();
        let lines = config
            .lines
            .iter()
            .map(|l| LineUnit {
                name: Arc::from(l.name.as_str()),
                counter: LineCounter::new(l.line.clone(), l.in_side, l.band, settings.forget_s),
                street: street == Some(l.name.as_str()),
                bin: LineBin::default(),
            })
            // Validated: never more (`take` keeps a hand-made config from
            // overflowing).
            .take(MAX_LINES)
            .collect();
        let zones = config
            .zones
            .iter()
            .map(|z| ZoneUnit {
                name: Arc::from(z.name.as_str()),
                kind: z.kind,
                tracker: ZoneTracker::new(
                    z.polygon.clone(),
                    ZoneTiming {
                        enter_s: z.enter_s,
                        exit_s: z.exit_s,
                        loiter_s: z.loiter_s,
                        bridge_radius: settings.bridge_radius,
                    },
                ),
                street: street == Some(z.name.as_str()),
                service_per_min: z.service_per_min,
                interaction_s: z.interaction_s.unwrap_or(DEFAULT_INTERACTION_S),
                bin: ZoneBin::default(),
            })
            .take(MAX_ZONES)
            .collect();
        Self {
            version: config.version,
            anchor: config.anchor,
            lines,
            zones,
            occupancy: StoreOccupancy::new(config.occupancy),
            heatmap: config.heatmap.map(|(c, r)| Heatmap::new(c, r)),
            clock: BinClock::new(config.bin_minutes, settings.first_bin_seq),
            events: EventLog {
                camera: settings.camera_id.clone(),
                version: config.version,
                next_seq: settings.first_event_seq,
                origin_us: 0,
            },
            settings,
            tracks: Vec::with_capacity(super::TRACK_CAPACITY),
            last_t_us: None,
            origin_us: None,
            frame_dt: 0.0,
            totals: BinTotals::default(),
            visits: Vec::with_capacity(super::TRACK_CAPACITY),
            overlaps: Vec::with_capacity(super::TRACK_CAPACITY),
            shelves: config
                .shelves
                .iter()
                .map(|s| ShelfUnit {
                    name: Arc::from(s.name.as_str()),
                    facings: s
                        .facings
                        .iter()
                        .map(|f| Arc::from(f.name.as_str()))
                        .collect(),
                    states: vec![None; s.facings.len()],
                    stops: 0,
                    takes: 0,
                    stop_time_us: 0,
                })
                .collect(),
        }
    }

    /// What the shelf monitor saw at `t_us`: facing states become events
    /// and the bin's shelf summary; stops feed the funnel's shelf
    /// interactions.
    pub fn shelf(&mut self, output: &ShelfOutput, t_us: u64, out: &mut Vec<Record>) {
        match *output {
            ShelfOutput::Change {
                shelf,
                facing,
                change,
            } => {
                let Some(unit) = self.shelves.get_mut(shelf) else {
                    return;
                };
                let Some(name) = unit.facings.get(facing).cloned() else {
                    return;
                };
                unit.states[facing] = Some(change.to);
                let kind = EventKind::Shelf {
                    shelf: unit.name.clone(),
                    facing: name,
                    state: change.to,
                    previous: change.from,
                    fill: round3(f64::from(change.fill)),
                    since_us: change.since_us.max(0) as u64,
                };
                self.events.push(out, t_us, kind);
            }
            ShelfOutput::Interaction(shelf, i) => {
                let Some(unit) = self.shelves.get_mut(shelf) else {
                    return;
                };
                match i {
                    Interaction::Stop(stop) => {
                        unit.stops += 1;
                        unit.stop_time_us += stop.end_us - stop.start_us;
                        self.totals.shelf_interactions += 1;
                    }
                    Interaction::Take { .. } => unit.takes += 1,
                }
            }
            ShelfOutput::Reference(_) => {}
        }
    }

    /// Forget the facing states of `shelf` (a new reference).
    pub fn shelf_reset(&mut self, shelf: usize) {
        if let Some(u) = self.shelves.get_mut(shelf) {
            u.states.iter_mut().for_each(|s| *s = None);
        }
    }

    /// The point of a box that stands for the person, normalised and kept
    /// inside the frame (a line on the frame's edge must still count).
    pub fn anchor(&self, t: &TrackOut, width: u32, height: u32) -> Point {
        let (w, h) = (width.max(1) as f32, height.max(1) as f32);
        let b = &t.bbox;
        let y = match self.anchor {
            Anchor::BottomCenter => b.y2,
            Anchor::Center => (b.y1 + b.y2) / 2.0,
        };
        Point::new(
            ((b.x1 + b.x2) / 2.0 / w).clamp(0.0, 1.0),
            (y / h).clamp(0.0, 1.0),
        )
    }

    /// Feed the tracker's output for a frame of `width`×`height` taken at
    /// `t_us` (µs since the Unix epoch). Bins that close and events that
    /// happen are appended to `out`.
    pub fn update(
        &mut self,
        tracks: &[TrackOut],
        width: u32,
        height: u32,
        t_us: u64,
        out: &mut Vec<Record>,
    ) {
        // Seconds from the first frame: epoch seconds in an f64 would
        // leave only a few hundred nanoseconds of resolution.
        let origin = *self.origin_us.get_or_insert(t_us);
        self.events.origin_us = origin;
        let t = t_us.saturating_sub(origin) as f64 / 1e6;
        // Tracks forgotten by now (unseen for `forget_s`) are decided
        // before a new bin opens, so a gap in the frames longer than that
        // does not push them into the next bin.
        self.expire(t);
        if let Some(bin) = self.clock.tick(t_us) {
            out.push(self.close_bin(bin));
        }
        self.occupancy.tick(t_us);
        // A gap in the frames is not time people spent anywhere.
        let dt = self
            .last_t_us
            .map_or(0.0, |l| (t_us.saturating_sub(l) as f64 / 1e6).min(1.0));
        self.last_t_us = Some(t_us);
        self.frame_dt = dt;
        self.totals.observed_s += dt;
        self.totals.frames += 1;

        overlaps(tracks, &mut self.overlaps);
        for (k, tr) in tracks.iter().enumerate() {
            let overlap = self.overlaps[k];
            if !tr.observed || overlap.part {
                continue;
            }
            let p = self.anchor(tr, width, height);
            let ti = match self.tracks.iter().position(|i| i.id == tr.id) {
                Some(i) => i,
                None => self.new_track(tr.id, p, t),
            };
            let at_border = touches_border(&tr.bbox, width, height);
            let info = &mut self.tracks[ti];
            let dt_seen = (t - info.last_seen) as f32;
            if dt_seen > 0.0 {
                // Gaps (lost for a while) are not time seen.
                info.seen_s += dt_seen.min(0.2);
                let v = (
                    (p.x - info.last_pos.x) / dt_seen,
                    (p.y - info.last_pos.y) / dt_seen,
                );
                info.velocity = (
                    0.5 * info.velocity.0 + 0.5 * v.0,
                    0.5 * info.velocity.1 + 0.5 * v.1,
                );
            }
            self.tracks[ti].last_seen = t;
            self.tracks[ti].last_pos = p;
            self.tracks[ti].at_border = at_border;
            self.tracks[ti].covered = overlap.covered;
            self.observe_lines(tr, p, t, t_us, ti, out);
            self.observe_zones(tr.id, p, t, t_us, ti, out);
            if let Some(h) = &mut self.heatmap {
                h.add(p, dt as f32);
            }
        }

        self.settle_zones(t, out);
        // People seen on the inner side of a door line are inside: the
        // door count cannot be lower.
        let seen = tracks
            .iter()
            .filter(|t| t.observed)
            .filter(|t| {
                self.lines
                    .iter()
                    .any(|l| !l.street && l.counter.is_in(t.id))
            })
            .count();
        self.occupancy.reconcile(seen as u64);
    }

    /// Remember a track first seen at `p`: if it continues a track lost
    /// near there a moment ago (the same person, found again under a new
    /// id), it takes over what that one did, and the old one is decided
    /// here, not when it is forgotten.
    fn new_track(&mut self, id: TrackId, p: Point, t: f64) -> usize {
        let mut info = TrackInfo {
            id,
            last_seen: t,
            last_pos: p,
            velocity: (0.0, 0.0),
            covered: false,
            first_pos: p,
            seen_s: 0.0,
            at_border: false,
            crossed: false,
            passed: false,
            continued: false,
            deep: false,
            shelf_done: 0,
        };
        let lost = self
            .tracks
            .iter_mut()
            .filter(|o| !o.continued && !o.at_border && o.last_seen < t)
            .map(|o| {
                let gap = (t - o.last_seen) as f32;
                let reach = (CONTINUE_RADIUS + CONTINUE_PER_S * gap).min(CONTINUE_MAX);
                let ahead = gap.min(CONTINUE_PREDICT_S);
                let (px, py) = (
                    o.last_pos.x + o.velocity.0 * ahead,
                    o.last_pos.y + o.velocity.1 * ahead,
                );
                let d = (px - p.x).hypot(py - p.y);
                (o, d, reach)
            })
            .filter(|(_, d, reach)| d <= reach)
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((old, _, _)) = lost {
            tracing::trace!(target: "tracks", t, from = old.id, to = id, "continues");
            old.continued = true;
            info.passed = old.passed;
            info.crossed = old.crossed;
            info.deep = old.deep;
            info.shelf_done = old.shelf_done;
            info.first_pos = old.first_pos;
            info.seen_s = old.seen_s;
        }
        self.tracks.push(info);
        self.tracks.len() - 1
    }

    fn observe_lines(
        &mut self,
        tr: &TrackOut,
        p: Point,
        t: f64,
        t_us: u64,
        ti: usize,
        out: &mut Vec<Record>,
    ) {
        for line in &mut self.lines {
            let Some(c) = line.counter.observe(tr.id, p, t) else {
                continue;
            };
            line.bin.count.add(c.direction);
            match line.bin.classes.iter_mut().find(|(k, _)| *k == tr.class_id) {
                Some((_, io)) => io.add(c.direction),
                None => {
                    let mut io = InOut::default();
                    io.add(c.direction);
                    line.bin.classes.push((tr.class_id, io));
                }
            }
            let info = &mut self.tracks[ti];
            if line.street {
                info.passed = true;
            } else {
                info.crossed = true;
                match c.direction {
                    Direction::In => {
                        self.occupancy.entered();
                    }
                    Direction::Out => self.occupancy.exited(),
                }
            }
            let class = label(&self.settings.labels, tr.class_id);
            let kind = EventKind::Crossing {
                line: line.name.clone(),
                track: tr.id,
                direction: c.direction,
                class,
            };
            self.events.push(out, t_us, kind);
        }
    }

    fn observe_zones(
        &mut self,
        id: TrackId,
        p: Point,
        t: f64,
        t_us: u64,
        ti: usize,
        out: &mut Vec<Record>,
    ) {
        for (zi, zone) in self.zones.iter_mut().enumerate() {
            let mut took_over = None;
            let info = &mut self.tracks[ti];
            match zone.tracker.observe(id, p, t) {
                ZoneChange::None => {}
                ZoneChange::Continued { from } => {
                    if zone.street {
                        info.passed = true;
                    }
                    took_over = Some(from);
                }
                ZoneChange::Entered { .. } => {
                    zone.bin.entries += 1;
                    if zone.street {
                        info.passed = true;
                    }
                    if zone.kind == ZoneKind::Inner && !info.deep {
                        info.deep = true;
                        self.totals.deep_visits += 1;
                    }
                }
                ZoneChange::Loitering { since } => {
                    zone.bin.loitering += 1;
                    let kind = EventKind::Loitering {
                        zone: zone.name.clone(),
                        track: id,
                        since_us: self.events.wall_us(since),
                    };
                    self.events.push(out, t_us, kind);
                }
            }
            let bit = 1u32 << (zi % 32);
            // Counted while the person is still there: a short stay does not
            // grow into an interaction during the exit inertia.
            if zone.kind == ZoneKind::Shelf
                && info.shelf_done & bit == 0
                && zone.tracker.contains(p)
                && zone
                    .tracker
                    .visit_start(id)
                    .is_some_and(|s| t - s >= zone.interaction_s)
            {
                info.shelf_done |= bit;
                zone.bin.interactions += 1;
                self.totals.shelf_interactions += 1;
            }
            // The zone's visit goes on under the new id, but someone who
            // walked out of the view is not continued by whoever walks
            // into it (as in `new_track`): the old track is decided as
            // itself.
            if let Some(from) = took_over
                && let Some(old) = self.tracks.iter_mut().find(|i| i.id == from)
                && !old.at_border
            {
                tracing::trace!(target: "tracks", t, from, to = id, "zone takeover");
                old.continued = true;
            }
        }
    }

    fn settle_zones(&mut self, t: f64, out: &mut Vec<Record>) {
        let dt = self.frame_dt;
        for zone in &mut self.zones {
            self.visits.clear();
            zone.tracker.settle(t, &mut self.visits);
            for v in &self.visits {
                self.events.visit(zone, v, out);
            }
            let occ = zone.tracker.occupancy() as u64;
            zone.bin.occupancy_s += occ as f64 * dt;
            zone.bin.max_occupancy = zone.bin.max_occupancy.max(occ);
        }
    }

    /// Forget tracks not seen for a while; decide their passer-by status.
    fn expire(&mut self, t: f64) {
        let forget = self.settings.forget_s;
        let totals = &mut self.totals;
        let lines = &self.lines;
        self.tracks.retain(|i| {
            let keep = t - i.last_seen <= forget;
            if !keep {
                decide(lines, totals, i);
            }
            keep
        });
        for l in &mut self.lines {
            l.counter.expire(t);
        }
    }

    /// Where bin and event numbering stands: an engine for a new
    /// configuration continues from here.
    pub fn next_sequences(&self) -> (u64, u64) {
        (self.clock.next_seq(), self.events.next_seq)
    }

    /// End of input: close open visits, decide every track, and close the
    /// current bin.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        for zone in &mut self.zones {
            self.visits.clear();
            zone.tracker.close_all(&mut self.visits);
            for v in &self.visits {
                self.events.visit(zone, v, out);
            }
        }
        for i in self.tracks.drain(..) {
            decide(&self.lines, &mut self.totals, &i);
        }
        if let Some(bin) = self.clock.close() {
            out.push(self.close_bin(bin));
        }
    }

    /// The report for a closed bin; the bin's accumulators start again.
    fn close_bin(&mut self, bin: BinId) -> Record {
        let labels = &self.settings.labels;
        let lines: Vec<LineReport> = self
            .lines
            .iter_mut()
            .map(|l| {
                let b = std::mem::take(&mut l.bin);
                let classes: BTreeMap<Arc<str>, InOut> = b
                    .classes
                    .iter()
                    .map(|(k, io)| (label(labels, *k), *io))
                    .collect();
                LineReport {
                    name: l.name.clone(),
                    passers_by: l.street,
                    count: b.count,
                    classes,
                }
            })
            .collect();
        let (entries, exits) = lines
            .iter()
            .filter(|l| !l.passers_by)
            .fold((0, 0), |(i, o), l| (i + l.count.r#in, o + l.count.out));
        let totals = std::mem::take(&mut self.totals);
        let observed = totals.observed_s;
        let zones = self.zones.iter_mut().map(|z| z.report(observed)).collect();
        let (drift, max): (Drift, u64) = self.occupancy.take_bin();
        let heatmap = self.heatmap.as_mut().map(|h| {
            let r = HeatmapReport {
                cols: h.cols(),
                rows: h.rows(),
                person_seconds: h
                    .cells()
                    .iter()
                    .map(|&c| (c * 1000.0).round() / 1000.0)
                    .collect(),
            };
            h.reset();
            r
        });
        let denominator = entries + totals.passers_by;
        Record::Bin(Box::new(BinReport {
            camera: self.settings.camera_id.clone(),
            seq: bin.seq,
            start_us: bin.start_us,
            end_us: bin.end_us,
            config_version: self.version,
            observed_s: round3(observed),
            frames: totals.frames,
            lines,
            entries,
            exits,
            passers_by: totals.passers_by,
            entry_rate: (denominator > 0).then(|| round3(entries as f64 / denominator as f64)),
            store: StoreReport {
                occupancy: self.occupancy.count(),
                max_occupancy: max,
                drift,
            },
            zones,
            funnel: Funnel {
                passers_by: totals.passers_by,
                entries,
                deep_visits: totals.deep_visits,
                shelf_interactions: totals.shelf_interactions,
            },
            heatmap,
            shelves: self.shelves.iter_mut().map(ShelfUnit::report).collect(),
        }))
    }
}

/// How a track's box lies among the others of its frame.
#[derive(Debug, Clone, Copy, Default)]
struct Overlap {
    /// Mostly inside a larger person's box (`CONTAINED`,
    /// `CONTAINER_AREA`): that person's part or mirror image, not a person
    /// of its own.
    part: bool,
    /// Partly covered by another person's box (`HIDDEN`): if it is lost
    /// now, that person is in front of it.
    covered: bool,
}

/// Share of a box under another person's box from which it is covered.
const HIDDEN: f32 = 0.3;

/// `out[k]` for `tracks[k]` (observed tracks only; others default). `out`
/// is reused.
fn overlaps(tracks: &[TrackOut], out: &mut Vec<Overlap>) {
    out.clear();
    out.extend(tracks.iter().map(|a| {
        let area = a.bbox.area();
        let mut o = Overlap::default();
        if !a.observed || area <= 0.0 {
            return o;
        }
        for b in tracks.iter().filter(|b| b.id != a.id && b.observed) {
            let shared = intersection(&a.bbox, &b.bbox);
            o.covered |= shared >= HIDDEN * area;
            o.part |= shared >= CONTAINED * area && b.bbox.area() >= area * CONTAINER_AREA;
        }
        o
    }));
}

/// A track is forgotten (or the input ends): count it if it passed by.
fn decide(lines: &[LineUnit], totals: &mut BinTotals, i: &TrackInfo) {
    let near = near_door(lines, i);
    // Why somebody was or was not a passer-by: RUST_LOG=tracks=trace.
    tracing::trace!(target: "tracks", id = i.id, passed = i.passed, crossed = i.crossed,
        continued = i.continued, covered = i.covered, seen_s = i.seen_s,
        near_door = near, "forgotten");
    if i.passed_by() && !near {
        totals.passers_by += 1;
    }
}

/// Whether a track was first or last seen within `NEAR_DOOR` of a door
/// line (not the street's): it may have come out of, or gone into, the
/// shop under another id, so the camera cannot be sure it passed by.
fn near_door(lines: &[LineUnit], i: &TrackInfo) -> bool {
    lines.iter().any(|l| {
        !l.street
            && (l.counter.distance(i.first_pos) < NEAR_DOOR
                || l.counter.distance(i.last_pos) < NEAR_DOOR)
    })
}

/// Within this share of the frame of its edge, a box touches the border.
const BORDER: f32 = 0.02;

fn touches_border(b: &BBox, width: u32, height: u32) -> bool {
    let (w, h) = (width.max(1) as f32, height.max(1) as f32);
    b.x1 <= BORDER * w
        || b.y1 <= BORDER * h
        || b.x2 >= (1.0 - BORDER) * w
        || b.y2 >= (1.0 - BORDER) * h
}

fn intersection(a: &BBox, b: &BBox) -> f32 {
    let w = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let h = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    w * h
}

/// A class id's label; ids beyond the model's labels by number.
fn label(labels: &[Arc<str>], class_id: u16) -> Arc<str> {
    labels
        .get(usize::from(class_id))
        .cloned()
        .unwrap_or_else(|| Arc::from(format!("class{class_id}")))
}

/// Reported figures are rounded to a millisecond (or a thousandth): more
/// digits are noise from float arithmetic, and cost bytes on the link.
fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::BBox;

    /// 2026-01-01T00:00:00Z.
    const T0: u64 = 1_767_225_600_000_000;
    const W: u32 = 1000;
    const H: u32 = 1000;

    const CONFIG: &str = r#"
version = 7
bin_minutes = 1
passers_by = "street"

[[lines]]
name = "door"
points = [[0.1, 0.5], [0.9, 0.5]]
in_side = "left"      # walking left to right, left is up: in = towards y = 0

[[zones]]
name = "street"
kind = "street"
polygon = [[0.0, 0.8], [1.0, 0.8], [1.0, 1.0], [0.0, 1.0]]
enter_s = 0.5
exit_s = 1.0

[[zones]]
name = "till"
kind = "queue"
polygon = [[0.0, 0.0], [0.3, 0.0], [0.3, 0.3], [0.0, 0.3]]
service_per_min = 2.0
enter_s = 0.5
exit_s = 1.0
loiter_s = 20

[[zones]]
name = "back"
kind = "inner"
polygon = [[0.6, 0.0], [1.0, 0.0], [1.0, 0.2], [0.6, 0.2]]
enter_s = 0.5

[[zones]]
name = "shelf"
kind = "shelf"
polygon = [[0.6, 0.2], [1.0, 0.2], [1.0, 0.4], [0.6, 0.4]]
interaction_s = 3
enter_s = 0.5
exit_s = 1.0

[heatmap]
cols = 10
rows = 10
"#;

    fn engine() -> Engine {
        let cfg = AnalyticsConfig::parse(CONFIG).expect("config");
        Engine::new(
            &cfg,
            EngineSettings {
                camera_id: Arc::from("cam-7"),
                first_bin_seq: 100,
                first_event_seq: 500,
                ..EngineSettings::default()
            },
        )
    }

    /// A track whose feet are at (x, y), normalised.
    fn at(id: TrackId, x: f32, y: f32) -> TrackOut {
        let (fx, fy) = (x * W as f32, y * H as f32);
        TrackOut {
            id,
            bbox: BBox {
                x1: fx - 20.0,
                y1: fy - 100.0,
                x2: fx + 20.0,
                y2: fy,
            },
            class_id: 0,
            score: 0.9,
            age_s: 1.0,
            observed: true,
        }
    }

    /// Runs `frames` at 10 fps from `t0`, `people(i)` giving the tracks
    /// of frame i; returns everything reported, finishing at the end.
    fn run(
        e: &mut Engine,
        t0: u64,
        frames: u64,
        people: impl Fn(u64) -> Vec<TrackOut>,
    ) -> Vec<Record> {
        let mut out = Vec::new();
        for i in 0..frames {
            e.update(&people(i), W, H, t0 + i * 100_000, &mut out);
        }
        out
    }

    /// Finish the engine and sum the passers-by of every bin.
    fn passers_by(e: &mut Engine, mut out: Vec<Record>) -> u64 {
        e.finish(&mut out);
        bins(&out).iter().map(|b| b.passers_by).sum()
    }

    fn bins(records: &[Record]) -> Vec<&BinReport> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Bin(b) => Some(b.as_ref()),
                Record::Event(_) => None,
            })
            .collect()
    }

    fn events(records: &[Record]) -> Vec<&Event> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Event(e) => Some(e),
                Record::Bin(_) => None,
            })
            .collect()
    }

    /// Feet y going from `from` to `to` over `n` frames.
    fn lerp(from: f32, to: f32, i: u64, n: u64) -> f32 {
        from + (to - from) * (i.min(n) as f32 / n as f32)
    }

    #[test]
    fn entries_passers_by_and_entry_rate_in_a_wall_clock_bin() {
        let mut e = engine();
        // 10 s: track 1 walks from the street in through the door; tracks
        // 2 and 3 walk along the street; track 4 comes out of the store.
        let mut out = run(&mut e, T0 + 5_000_000, 100, |i| {
            let mut v = vec![at(1, 0.5, lerp(0.95, 0.3, i, 60))];
            v.push(at(2, lerp(0.0, 1.0, i, 100), 0.9));
            v.push(at(3, lerp(1.0, 0.0, i, 100), 0.92));
            v.push(at(4, 0.3, lerp(0.3, 0.7, i, 60)));
            v
        });
        // Nothing closes before the minute is over...
        assert!(bins(&out).is_empty());
        // ...then a frame in the next minute closes it.
        e.update(&[], W, H, T0 + 60_000_000, &mut out);
        e.finish(&mut out);
        let b = bins(&out);
        assert_eq!(b.len(), 2, "the open bin is closed at the end");
        let first = b[0];
        assert_eq!(
            (first.seq, first.start_us, first.end_us),
            (100, T0, T0 + 60_000_000)
        );
        assert_eq!(first.camera.as_ref(), "cam-7");
        assert_eq!(first.config_version, 7);
        assert_eq!((first.entries, first.exits), (1, 1));
        assert_eq!(first.lines[0].classes["person"], InOut { r#in: 1, out: 1 });
        // Track 1 visited the street zone but entered: not a passer-by.
        assert_eq!(first.passers_by, 2);
        assert_eq!(first.entry_rate, Some(0.333), "rounded to a thousandth");
        assert_eq!(b[1].seq, 101);
        let ev = events(&out);
        let crossings: Vec<_> = ev
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Crossing {
                    track, direction, ..
                } => Some((*track, *direction)),
                _ => None,
            })
            .collect();
        assert_eq!(crossings, vec![(4, Direction::Out), (1, Direction::In)]);
        // Event numbers continue the stored sequence, in order.
        let seqs: Vec<u64> = ev.iter().map(|e| e.seq).collect();
        assert_eq!(seqs[0], 500);
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
        // The JSON carries the schema's names.
        let first_bin = out
            .iter()
            .find(|r| matches!(r, Record::Bin(_)))
            .expect("a bin");
        let json = serde_json::to_value(first_bin).expect("json");
        assert_eq!(json["type"], "bin");
        assert_eq!(json["start"], "2026-01-01T00:00:00.000000Z");
    }

    #[test]
    fn a_passer_by_handed_over_to_a_new_track_counts_once() {
        let mut e = engine();
        // Walks along the street from the left edge; lost for 0.5 s in
        // the middle, found again as track 2 close by, leaves at the
        // right edge.
        let out = run(&mut e, T0, 100, |i| match i {
            0..45 => vec![at(1, lerp(0.0, 0.9, i, 90), 0.9)],
            45..50 => vec![],
            _ => vec![at(2, lerp(0.0, 0.9, i, 90).min(1.0), 0.9)],
        });
        assert_eq!(passers_by(&mut e, out), 1);

        // Somebody else is lost in the middle of the street (behind a wall
        // or a van) and never seen again: they were on the street and did
        // not cross the door, so they passed by, wherever in the view they
        // were lost. Someone who walked out of the shop and along the
        // street is not a passer-by.
        let mut e = engine();
        let mut out = run(&mut e, T0, 60, |i| {
            if i < 30 {
                vec![at(3, lerp(1.0, 0.6, i, 30), 0.85)]
            } else {
                vec![]
            }
        });
        out.extend(run(&mut e, T0 + 10_000_000, 80, |i| match i {
            0..30 => vec![at(4, 0.5, lerp(0.3, 0.88, i, 30))],
            30..60 => vec![at(4, lerp(0.5, 0.9, i - 30, 30), 0.88)],
            _ => vec![],
        }));
        assert_eq!(passers_by(&mut e, out), 1);

        // Lost near the edge, where both the old and the new track were
        // last seen at an edge: the new track took the visit over, so the
        // old one is not counted again.
        let mut e = engine();
        let out = run(&mut e, T0, 120, |i| match i {
            0..12 => vec![at(1, 0.95, 0.9)],
            12..15 => vec![],
            _ => vec![at(2, lerp(0.93, 0.0, i - 15, 90), 0.9)],
        });
        assert_eq!(passers_by(&mut e, out), 1);
    }

    #[test]
    fn whoever_walks_into_the_view_does_not_continue_who_walked_out() {
        // One person walks along the street out of the view at the right
        // edge; half a second later somebody else walks in there. The
        // street zone's visit is bridged (dwell), but they are two
        // passers-by: the second cannot be the first found again.
        let mut e = engine();
        let out = run(&mut e, T0, 100, |i| match i {
            0..30 => vec![at(1, lerp(0.5, 0.99, i, 29), 0.9)],
            30..35 => vec![],
            _ => vec![at(2, lerp(0.98, 0.3, i - 35, 64), 0.9)],
        });
        assert_eq!(passers_by(&mut e, out), 2);
    }

    #[test]
    fn a_part_of_a_person_neither_counts_nor_passes() {
        // Track 1 walks in through the door; track 2 is its upper body (a
        // second detection of the same person), crossing the line too.
        let mut e = engine();
        let mut out = run(&mut e, T0, 60, |i| {
            let whole = at(1, 0.5, lerp(0.95, 0.3, i, 50));
            let mut upper = whole;
            upper.id = 2;
            upper.bbox.y2 = whole.bbox.y1 + 55.0;
            upper.bbox.x1 += 3.0;
            upper.bbox.x2 -= 3.0;
            vec![whole, upper]
        });
        e.finish(&mut out);
        let b = bins(&out);
        assert_eq!(b.iter().map(|b| b.entries).sum::<u64>(), 1);
        assert_eq!(b.iter().map(|b| b.passers_by).sum::<u64>(), 0);

        // Two people side by side, overlapping a little: both count.
        let mut e = engine();
        let mut out = run(&mut e, T0, 60, |i| {
            let y = lerp(0.95, 0.3, i, 50);
            vec![at(1, 0.5, y), at(2, 0.53, y + 0.01)]
        });
        e.finish(&mut out);
        assert_eq!(bins(&out).iter().map(|b| b.entries).sum::<u64>(), 2);
    }

    #[test]
    fn a_person_found_again_under_a_new_id_is_one_person() {
        // Walks along the street, comes to the door and is lost there for
        // 0.8 s; found again as track 2 just inside, walks on in. One
        // entry (the line counter's own bridge), and no passer-by: track 1
        // was continued by track 2, which crossed.
        let mut e = engine();
        let mut out = run(&mut e, T0, 90, |i| match i {
            0..20 => vec![at(1, lerp(0.1, 0.5, i, 20), 0.9)],
            20..40 => vec![at(1, 0.5, lerp(0.9, 0.56, i - 20, 20))],
            40..48 => vec![],
            _ => vec![at(2, 0.5, lerp(0.5, 0.3, i - 48, 20))],
        });
        e.finish(&mut out);
        let b = bins(&out);
        assert_eq!(b.iter().map(|b| b.entries).sum::<u64>(), 1);
        assert_eq!(b.iter().map(|b| b.passers_by).sum::<u64>(), 0);

        // Someone else appears far from where a passer-by was lost: two
        // people, both passers-by.
        let mut e = engine();
        let mut out = run(&mut e, T0, 80, |i| match i {
            0..30 => vec![at(1, lerp(0.1, 0.4, i, 30), 0.9)],
            30..35 => vec![],
            _ => vec![at(2, lerp(0.95, 0.7, i - 35, 45), 0.9)],
        });
        e.finish(&mut out);
        assert_eq!(bins(&out).iter().map(|b| b.passers_by).sum::<u64>(), 2);

        // Seen for less than a second on the street: a piece of somebody,
        // not a passer-by.
        let mut e = engine();
        let mut out = run(&mut e, T0, 40, |i| match i {
            0..8 => vec![at(1, lerp(0.3, 0.34, i, 8), 0.9)],
            _ => vec![],
        });
        e.finish(&mut out);
        assert_eq!(bins(&out).iter().map(|b| b.passers_by).sum::<u64>(), 0);
    }

    #[test]
    fn store_occupancy_follows_the_door_and_never_goes_negative() {
        let mut e = engine();
        let mut out = Vec::new();
        // Two people come out of a store the camera believed empty.
        out.extend(run(&mut e, T0, 40, |i| {
            vec![
                at(1, 0.3, lerp(0.3, 0.7, i, 30)),
                at(2, 0.6, lerp(0.3, 0.7, i, 30)),
            ]
        }));
        e.finish(&mut out);
        let b = bins(&out)[0];
        assert_eq!(b.exits, 2);
        assert_eq!(b.store.occupancy, 0);
        // Both were seen inside first, so the count was raised to 2, then
        // went back to 0: no clamping needed.
        assert_eq!(b.store.drift.raised_by, 2);
        assert_eq!(b.store.drift.clamped_exits, 0);
    }

    #[test]
    fn queue_length_wait_loitering_and_dwell() {
        let mut e = engine();
        // Two people stand at the till for 30 s, then leave.
        let mut out = run(&mut e, T0, 400, |i| {
            if i < 300 {
                vec![at(1, 0.1, 0.2), at(2, 0.2, 0.2)]
            } else {
                vec![]
            }
        });
        e.finish(&mut out);
        let b = bins(&out)[0];
        let till = b
            .zones
            .iter()
            .find(|z| z.name.as_ref() == "till")
            .expect("till");
        assert_eq!(till.max_occupancy, 2);
        assert_eq!((till.entries, till.exits), (2, 2));
        let q = till.queue.expect("queue figures");
        // 2 people × 30 s of 40 s observed = 1.5 people on average; the
        // wait at 2 served per minute is length / 2 minutes.
        assert!((q.avg_length - 1.5).abs() < 0.05, "{q:?}");
        assert!((q.avg_wait_s - 45.0).abs() < 1.5, "{q:?}");
        assert_eq!(q.length, 0);
        let dwell = till.dwell_mean_s.expect("dwell");
        assert!((dwell - 29.9).abs() < 0.2, "{dwell}");
        // 29.9 s falls in the 15..30 s bucket.
        assert_eq!(till.dwell_histogram.counts[2], 2);
        assert_eq!(till.loitering, 2);
        let loiter = events(&out)
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Loitering { .. }))
            .count();
        assert_eq!(loiter, 2);
    }

    #[test]
    fn the_funnel_counts_deep_visits_and_shelf_interactions_once_per_track() {
        let mut e = engine();
        // Track 1: street → door → shelf for 5 s → back zone.
        // Track 2: walks by the shelf for 1 s: no interaction.
        let mut out = run(&mut e, T0, 200, |i| {
            let p1 = match i {
                0..40 => (0.8, lerp(0.95, 0.45, i, 40)),
                40..100 => (0.8, 0.3),
                _ => (0.8, 0.1),
            };
            let mut v = vec![at(1, p1.0, p1.1)];
            if (50..60).contains(&i) {
                v.push(at(2, 0.7, 0.3));
            }
            v
        });
        e.finish(&mut out);
        let b = bins(&out)[0];
        assert_eq!(
            b.funnel,
            Funnel {
                passers_by: 0,
                entries: 1,
                deep_visits: 1,
                shelf_interactions: 1,
            }
        );
        let shelf = b
            .zones
            .iter()
            .find(|z| z.name.as_ref() == "shelf")
            .expect("shelf");
        assert_eq!(shelf.interactions, Some(1));
    }

    #[test]
    fn the_heatmap_sums_person_seconds() {
        let mut e = engine();
        let mut out = run(&mut e, T0, 101, |_| {
            vec![at(1, 0.05, 0.05), at(2, 0.95, 0.95)]
        });
        e.finish(&mut out);
        let h = bins(&out)[0].heatmap.as_ref().expect("heatmap");
        assert_eq!((h.cols, h.rows), (10, 10));
        assert!((h.person_seconds[0] - 10.0).abs() < 0.01);
        assert!((h.person_seconds[99] - 10.0).abs() < 0.01);
        assert!((h.person_seconds.iter().sum::<f32>() - 20.0).abs() < 0.01);
    }

    #[test]
    fn coasting_tracks_are_not_counted() {
        let mut e = engine();
        let mut out = run(&mut e, T0, 60, |i| {
            let mut t = at(1, 0.5, lerp(0.9, 0.2, i, 60));
            // The detector lost the person while crossing: the tracker's
            // prediction must not count.
            t.observed = !(20..60).contains(&i);
            vec![t]
        });
        e.finish(&mut out);
        assert_eq!(bins(&out)[0].entries, 0);
    }
}
