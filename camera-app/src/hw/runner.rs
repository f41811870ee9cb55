//! A thread that steps [`Hardware`] on its own monotonic clock.
//!
//! The LED's 5 Hz pattern needs a step every 50 ms, faster than frames
//! arrive and independent of a stalled camera, so the hardware does not
//! run in the frame loop. The service talks to the thread through
//! [`HwShared`]: it sets the app state and, on boards without a light
//! sensor, the image's mean luma; it reads the filter's mode and the error
//! counters for health reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use embedded_hal::digital::OutputPin;

use super::hardware::{BoardHardware, Hardware, HwSetupError, Timing};
use super::ircut::Mode;
use super::led::Status;
use super::light::{Light, LightSource};
use crate::capture::Frame;
use crate::health::TamperStatus;

/// `luma` when no frame has been measured.
const NO_LUMA: u32 = u32::MAX;

/// What the service and the hardware thread share.
#[derive(Debug)]
pub struct HwShared {
    status: AtomicU8,
    luma: AtomicU32,
    mode: AtomicU8,
    stop: AtomicBool,
    wants_luma: AtomicBool,
    light_errors: AtomicU64,
    gpio_errors: AtomicU64,
}

impl Default for HwShared {
    fn default() -> Self {
        Self {
            status: AtomicU8::new(status_code(Status::Booting)),
            luma: AtomicU32::new(NO_LUMA),
            mode: AtomicU8::new(0),
            stop: AtomicBool::new(false),
            wants_luma: AtomicBool::new(false),
            light_errors: AtomicU64::new(0),
            gpio_errors: AtomicU64::new(0),
        }
    }
}

/// Failures so far, for health reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HwCounters {
    /// Light readings that failed (missing file, not a number).
    pub light_errors: u64,
    /// GPIO writes that failed (IR-cut or LED).
    pub gpio_errors: u64,
}

fn status_code(s: Status) -> u8 {
    match s {
        Status::Booting => 0,
        Status::Running => 1,
        Status::NoLink => 2,
        Status::Updating => 3,
        Status::Unprovisioned => 4,
    }
}

fn status_from(code: u8) -> Status {
    match code {
        1 => Status::Running,
        2 => Status::NoLink,
        3 => Status::Updating,
        4 => Status::Unprovisioned,
        _ => Status::Booting,
    }
}

impl HwShared {
    /// The LED shows `status` from the thread's next step.
    pub fn set_status(&self, status: Status) {
        self.status.store(status_code(status), Ordering::Relaxed);
    }

    pub fn status(&self) -> Status {
        status_from(self.status.load(Ordering::Relaxed))
    }

    /// The last frame's mean luma (0..=255), used on boards without a light
    /// sensor; see [`super::light::luma_from_tamper`] and
    /// [`super::light::mean_luma`].
    pub fn set_image_luma(&self, luma: Option<u32>) {
        self.luma
            .store(luma.map_or(NO_LUMA, |l| l.min(255)), Ordering::Relaxed);
    }

    /// Whether the thread uses the image's luma (the board has no light
    /// sensor): the frame loop need not measure it otherwise.
    pub fn wants_image_luma(&self) -> bool {
        self.wants_luma.load(Ordering::Relaxed)
    }

    fn image_luma(&self) -> Option<u32> {
        Some(self.luma.load(Ordering::Relaxed)).filter(|l| *l != NO_LUMA)
    }

    /// The filter's mode; `None` without an IR-cut line (or before the
    /// thread's first step).
    pub fn ir_mode(&self) -> Option<Mode> {
        match self.mode.load(Ordering::Relaxed) {
            1 => Some(Mode::Day),
            2 => Some(Mode::Night),
            _ => None,
        }
    }

    pub fn counters(&self) -> HwCounters {
        HwCounters {
            light_errors: self.light_errors.load(Ordering::Relaxed),
            gpio_errors: self.gpio_errors.load(Ordering::Relaxed),
        }
    }

    /// Ask the thread to end after its current step.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How often the thread steps and reads the light level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Step period: the LED's shortest phase is 100 ms.
    pub tick: Duration,
    /// Light readings: the IR-cut hold is seconds long.
    pub light_every: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(50),
            light_every: Duration::from_secs(1),
        }
    }
}

/// Log the first failure and then every 100th: a dead LED line fails 20
/// times a second.
fn worth_logging(count: u64) -> bool {
    count == 1 || count.is_multiple_of(100)
}

/// Start the hardware thread; it runs until [`HwShared::stop`].
pub fn spawn<I, L>(
    mut hw: Hardware<I, L>,
    mut light: Light,
    shared: Arc<HwShared>,
    cfg: RunnerConfig,
) -> std::io::Result<JoinHandle<()>>
where
    I: OutputPin + Send + 'static,
    L: OutputPin + Send + 'static,
{
    let wants_luma = matches!(light.source, LightSource::Image);
    shared.wants_luma.store(wants_luma, Ordering::Relaxed);
    std::thread::Builder::new()
        .name("hw".into())
        .spawn(move || {
            let start = Instant::now();
            let mut next_light = Duration::ZERO;
            while !shared.stop.load(Ordering::Relaxed) {
                let now = start.elapsed();
                hw.set_status(shared.status());
                let mut level = None;
                if now >= next_light {
                    next_light = now + cfg.light_every;
                    match light.level(shared.image_luma()) {
                        Ok(l) => level = l,
                        Err(e) => {
                            let n = shared.light_errors.fetch_add(1, Ordering::Relaxed) + 1;
                            if worth_logging(n) {
                                tracing::warn!(error = %e, failures = n, "light level unavailable");
                            }
                        }
                    }
                }
                let now_us = u64::try_from(now.as_micros()).unwrap_or(u64::MAX);
                let step = hw.step(now_us, level);
                if let Some(mode) = step.switched {
                    tracing::info!(?mode, level, "IR-cut filter switched");
                }
                for e in &step.errors {
                    let n = shared.gpio_errors.fetch_add(1, Ordering::Relaxed) + 1;
                    if worth_logging(n) {
                        tracing::warn!(error = %e, failures = n, "GPIO write failed");
                    }
                }
                let mode = match hw.ir_mode() {
                    None => 0,
                    Some(Mode::Day) => 1,
                    Some(Mode::Night) => 2,
                };
                shared.mode.store(mode, Ordering::Relaxed);
                std::thread::sleep(cfg.tick);
            }
        })
}

/// Open the board's IR-cut line, status LED and light source, and start
/// the thread: what the service calls once at start.
pub fn start(profile: &boards::Profile) -> Result<(Arc<HwShared>, JoinHandle<()>), HwSetupError> {
    let (hw, light) = BoardHardware::open(profile, Timing::default())?;
    let shared = Arc::new(HwShared::default());
    let thread =
        spawn(hw, light, shared.clone(), RunnerConfig::default()).map_err(HwSetupError::Thread)?;
    Ok((shared, thread))
}

/// The board's IR-cut filter and status LED, on their own thread (the LED
/// blinks faster than frames come), as the frame loop drives them: the
/// app's state and, on boards without a light sensor, the image
/// brightness. Stopped and joined when dropped.
#[derive(Debug)]
pub struct BoardHw {
    shared: Arc<HwShared>,
    thread: Option<JoinHandle<()>>,
}

impl BoardHw {
    /// Counting works without them: a line that cannot be opened is
    /// logged, and there is no board hardware.
    pub fn start(profile: &boards::Profile) -> Option<Self> {
        match start(profile) {
            Ok((shared, thread)) => Some(Self {
                shared,
                thread: Some(thread),
            }),
            Err(e) => {
                tracing::error!(board = %profile.name, error = %e, "camera hardware unavailable");
                None
            }
        }
    }

    /// After a frame: the camera's state for the LED, and the brightness
    /// (the tamper detector's measure when there is one).
    pub fn frame(&self, frame: &Frame, tamper: Option<&TamperStatus>, status: Status) {
        self.shared.set_status(status);
        if self.shared.wants_image_luma() {
            let luma = tamper
                .and_then(super::light::luma_from_tamper)
                .or_else(|| camera_core::frame::mean_luma(frame));
            self.shared.set_image_luma(luma);
        }
    }
}

impl Drop for BoardHw {
    fn drop(&mut self) {
        self.shared.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use embedded_hal::digital::ErrorType;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};

    use super::*;
    use crate::hw::gpio::Output;
    use crate::hw::ircut::IrCutConfig;
    use crate::hw::light::{SysfsLightSensor, Thresholds};

    const FAST: RunnerConfig = RunnerConfig {
        tick: Duration::from_millis(1),
        light_every: Duration::from_millis(1),
    };

    /// Switches on the first reading across a threshold.
    fn ir(wire: &Mock, t: Thresholds) -> (Output<Mock>, IrCutConfig) {
        let cfg = IrCutConfig {
            night_below: t.night_below,
            day_above: t.day_above,
            hold_us: 0,
            settle_us: 0,
        };
        (Output::new(wire.clone(), false, "mock ir"), cfg)
    }

    /// An LED pin that accepts anything (its timing is real time here).
    #[derive(Debug)]
    struct AnyPin;
    impl ErrorType for AnyPin {
        type Error = std::convert::Infallible;
    }
    impl OutputPin for AnyPin {
        fn set_low(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn the_image_luma_from_the_service_drives_the_filter() {
        let t = Thresholds {
            night_below: 30,
            day_above: 70,
        };
        let mut wire = Mock::new(&[
            Transaction::set(State::High),
            Transaction::set(State::Low),
            Transaction::set(State::High),
        ]);
        let hw =
            Hardware::new(Some(ir(&wire, t)), Some(Output::new(AnyPin, false, "led"))).unwrap();
        let light = Light {
            source: LightSource::Image,
            thresholds: t,
        };
        let shared = Arc::new(HwShared::default());
        let thread = spawn(hw, light, shared.clone(), FAST).unwrap();
        assert!(shared.wants_image_luma());
        wait_for("day", || shared.ir_mode() == Some(Mode::Day));
        shared.set_image_luma(Some(10));
        wait_for("night", || shared.ir_mode() == Some(Mode::Night));
        shared.set_image_luma(Some(200));
        wait_for("day again", || shared.ir_mode() == Some(Mode::Day));
        shared.set_status(Status::Running);
        assert_eq!(shared.status(), Status::Running);
        shared.stop();
        thread.join().unwrap();
        assert_eq!(shared.counters(), HwCounters::default());
        wire.done();
    }

    #[test]
    fn a_failing_sensor_is_counted_and_the_filter_stays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in_voltage0_raw");
        let mut wire = Mock::new(&[Transaction::set(State::High)]);
        let t = Thresholds {
            night_below: 300,
            day_above: 600,
        };
        let hw: Hardware<Mock, AnyPin> = Hardware::new(Some(ir(&wire, t)), None).unwrap();
        let light = Light {
            source: LightSource::Sensor(Box::new(SysfsLightSensor::new(&path))),
            thresholds: t,
        };
        let shared = Arc::new(HwShared::default());
        // A dark image must not count: the board has a sensor.
        shared.set_image_luma(Some(0));
        let thread = spawn(hw, light, shared.clone(), FAST).unwrap();
        assert!(!shared.wants_image_luma());
        wait_for("failures", || shared.counters().light_errors >= 3);
        assert_eq!(shared.ir_mode(), Some(Mode::Day));
        shared.stop();
        thread.join().unwrap();
        assert_eq!(shared.counters().gpio_errors, 0);
        wire.done();
    }
}
