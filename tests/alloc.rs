//! The tracker allocates nothing per frame in steady state: checked with a
//! counting global allocator around 200 frames of 100 people.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use camera_app::bench::crowd;
use camera_app::detect::Detection;
use camera_app::track::{Tracker, TrackerConfig};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Only this test's thread is counted: the harness allocates too.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards every call to the system allocator unchanged; only
// counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
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
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
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
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    let mut reported = 0;
    for _ in 0..200 {
        reported += step(&mut tracker, &mut dets);
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(reported, 200 * 100, "every person tracked in every frame");
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed), 0);
}
