//! The tracker, the analytics engine and the whole camera state machine
//! (as the frame loop drives it) allocate nothing per frame in steady
//! state: checked with a counting global allocator around 200 frames of
//! 100 people. CI runs this under qemu for aarch64 and armv7 too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use camera_app::bench::{CROWD_FRAME, CROWD_START_US, crowd, crowd_appearances, crowd_engine};
use camera_app::detect::Detection;
use camera_core::track::{Tracker, TrackerConfig};

struct Counting;

thread_local! {
    // Only the test's own thread is counted: the harness allocates too,
    // and the tests run in parallel.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

fn start_counting() {
    ALLOCATIONS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
}

fn stop_counting() {
    COUNTING.with(|c| c.set(false));
}

// SAFETY: forwards every call to the system allocator unchanged; only
// counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn tracker_allocates_nothing_per_frame_in_steady_state() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut dets = Vec::with_capacity(100);
    let mut frame = 0u32;
    let mut step = |tracker: &mut Tracker, dets: &mut Vec<Detection>| {
        crowd(frame, dets);
        let n = tracker.update(dets, f64::from(frame) / 25.0).len();
        frame += 1;
        n
    };
    for _ in 0..50 {
        step(&mut tracker, &mut dets);
    }
    start_counting();
    let mut reported = 0;
    for _ in 0..200 {
        reported += step(&mut tracker, &mut dets);
    }
    stop_counting();
    assert_eq!(reported, 200 * 100, "every person tracked in every frame");
    assert_eq!(allocations(), 0);
}

/// The tracker (with appearance) and the whole analytics engine (lines, zones of every kind,
/// occupancy, heatmap) over 200 frames of 100 people crossing a line:
/// after a warm-up that sizes the tables, nothing is allocated. (Closing a
/// bin allocates its report, once a minute; the frames stay in one bin.)
#[test]
fn tracker_and_analytics_allocate_nothing_per_frame_in_steady_state() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut engine = crowd_engine();
    let mut dets = Vec::with_capacity(100);
    let mut records = Vec::with_capacity(256);
    let mut appearances = Vec::with_capacity(100);
    crowd_appearances(&mut appearances);
    let mut events = 0;
    let mut frame = 0u32;
    let mut step = |tracker: &mut Tracker, dets: &mut Vec<Detection>| {
        crowd(frame, dets);
        records.clear();
        let tracks = tracker.update_with_appearance(dets, &appearances, f64::from(frame) / 25.0);
        let t_us = CROWD_START_US + u64::from(frame) * 40_000;
        engine.update(tracks, CROWD_FRAME.0, CROWD_FRAME.1, t_us, &mut records);
        frame += 1;
        records.len()
    };
    for _ in 0..50 {
        events += step(&mut tracker, &mut dets);
    }
    start_counting();
    for _ in 0..200 {
        events += step(&mut tracker, &mut dets);
    }
    stop_counting();
    assert!(events > 0, "the crowd should cross the door line");
    assert_eq!(allocations(), 0);
}

/// The camera state machine as the frame loop drives it (tamper detector,
/// appearance from the pixels, tracker, every kind of analytics) over 200
/// 1080p frames of 100 people: after a warm-up, nothing is allocated per
/// frame. The records it produces (crossings, visits) fill vectors whose
/// capacity the warm-up reached.
#[test]
fn the_camera_allocates_nothing_per_frame_in_steady_state() {
    use camera_core::camera::{Camera, FrameInput, Input, Settings};
    use camera_core::config::AnalyticsConfig;
    use camera_core::frame::{Frame, PixelFormat, Timestamp};

    let config = AnalyticsConfig::parse(camera_app::bench::CROWD_ANALYTICS).expect("config");
    let settings = Settings {
        camera_id: "crowd".into(),
        labels: vec!["person".into()],
        tracker: TrackerConfig::default(),
        tamper: Default::default(),
        sequences: Default::default(),
    };
    let mut camera = Camera::new(config, settings).expect("camera");
    let (w, h) = CROWD_FRAME;
    let n = (w * h) as usize;
    let mut frame = Frame {
        seq: 0,
        timestamp: Timestamp(CROWD_START_US),
        width: w,
        height: h,
        stride: w,
        format: PixelFormat::Nv12,
        data: (0..n + n / 2).map(|i| (i * 31 % 251) as u8).collect(),
    };
    let mut dets = Vec::with_capacity(100);
    let mut records = 0;
    let mut step = |i: u32, camera: &mut Camera, dets: &mut Vec<Detection>| {
        crowd(i, dets);
        frame.seq = u64::from(i);
        frame.timestamp = Timestamp(CROWD_START_US + u64::from(i) * 40_000);
        let input = Input::Frame(FrameInput {
            frame: &frame,
            detections: dets,
            rgb: &mut || None,
        });
        camera.handle(input).records.len()
    };
    for i in 0..50 {
        step(i, &mut camera, &mut dets);
    }
    start_counting();
    for i in 50..250 {
        records += step(i, &mut camera, &mut dets);
    }
    stop_counting();
    assert!(records > 0, "the crowd should cross the door line");
    assert_eq!(camera.active_tracks(), 100);
    assert_eq!(allocations(), 0);
}
