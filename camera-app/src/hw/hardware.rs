//! The IR-cut filter and the status LED as one thing the service steps
//! with `(now, light level)`. Decisions stay in [`super::ircut`] and
//! [`super::led`]; this only routes the inputs and names the line in every
//! error, so a failing GPIO is counted and logged, never fatal.

use embedded_hal::digital::OutputPin;
use linux_embedded_hal::CdevPin;

use super::gpio::{self, GpioError, Output};
use super::ircut::{IrCut, IrCutConfig, IrCutConfigError, IrCutError, Mode};
use super::led::{Led, Status};
use super::light::Light;

/// How long a level must hold across a threshold, and how long readings
/// are ignored after a switch. Not in the board profile: they are about
/// scenes (clouds, headlights), not boards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub hold_us: u64,
    pub settle_us: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            // Longer than a passing cloud or a car's headlights.
            hold_us: 10_000_000,
            // The filter, the illuminator and auto-exposure take a few
            // seconds to settle after a switch.
            settle_us: 15_000_000,
        }
    }
}

/// A GPIO write that failed; the line is named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HwError {
    #[error("IR-cut GPIO {line}: {detail}")]
    IrCut { line: String, detail: String },
    #[error("status LED GPIO {line}: {detail}")]
    Led { line: String, detail: String },
}

/// Why the hardware could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HwSetupError {
    #[error(transparent)]
    Gpio(#[from] GpioError),
    #[error("IR-cut {line}: {source}")]
    IrCutConfig {
        line: String,
        #[source]
        source: IrCutConfigError,
    },
    #[error(transparent)]
    Write(HwError),
    #[error("cannot start the hardware thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// What one step did.
#[derive(Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct Step {
    /// The filter moved to this mode.
    pub switched: Option<Mode>,
    /// Writes that failed this step (both are tried whatever the other did).
    pub errors: Vec<HwError>,
}

/// The IR-cut controller and the status LED; either may be absent (a board
/// whose profile names no such line).
#[derive(Debug)]
pub struct Hardware<I, L> {
    ir_cut: Option<(IrCut<Output<I>>, String)>,
    led: Option<(Led<Output<L>>, String)>,
}

impl<I: OutputPin, L: OutputPin> Hardware<I, L> {
    /// Sets the filter to day (its safe state) at once; the LED starts
    /// with [`Status::Booting`] on the first step.
    pub fn new(
        ir_cut: Option<(Output<I>, IrCutConfig)>,
        led: Option<Output<L>>,
    ) -> Result<Self, HwSetupError> {
        let ir_cut = match ir_cut {
            None => None,
            Some((pin, cfg)) => {
                let line = pin.label().to_owned();
                let c = IrCut::new(pin, cfg).map_err(|e| match e {
                    IrCutError::Config(source) => HwSetupError::IrCutConfig {
                        line: line.clone(),
                        source,
                    },
                    IrCutError::Pin(e) => HwSetupError::Write(HwError::IrCut {
                        line: line.clone(),
                        detail: format!("{e:?}"),
                    }),
                })?;
                Some((c, line))
            }
        };
        let led = led.map(|pin| {
            let line = pin.label().to_owned();
            (Led::new(pin), line)
        });
        Ok(Self { ir_cut, led })
    }

    /// The pattern the LED shows from the next step on.
    pub fn set_status(&mut self, status: Status) {
        if let Some((led, _)) = &mut self.led {
            led.set_status(status);
        }
    }

    /// The filter's mode; `None` without an IR-cut line.
    pub fn ir_mode(&self) -> Option<Mode> {
        self.ir_cut.as_ref().map(|(c, _)| c.mode())
    }

    /// Advance to `now_us` (a monotonic clock): the LED follows its
    /// pattern, and `level` (`None`: no reading this time) feeds the
    /// filter's decision. Call every 50 ms or so for the LED's sake; the
    /// level may come less often.
    pub fn step(&mut self, now_us: u64, level: Option<u32>) -> Step {
        let mut step = Step::default();
        if let Some((led, line)) = &mut self.led
            && let Err(e) = led.tick(now_us / 1000)
        {
            step.errors.push(HwError::Led {
                line: line.clone(),
                detail: format!("{e:?}"),
            });
        }
        if let (Some((ir, line)), Some(level)) = (&mut self.ir_cut, level) {
            match ir.observe(level, now_us) {
                Ok(m) => step.switched = m,
                // Not switched: the next reading tries again.
                Err(e) => step.errors.push(HwError::IrCut {
                    line: line.clone(),
                    detail: match e {
                        IrCutError::Pin(e) => format!("{e:?}"),
                        IrCutError::Config(e) => e.to_string(),
                    },
                }),
            }
        }
        step
    }
}

/// The hardware of a real board: character-device GPIO lines.
pub type BoardHardware = Hardware<CdevPin, CdevPin>;

impl BoardHardware {
    /// Open what `profile` names: the IR-cut line (set to day), the
    /// status LED (off until the first step) and the light source with its
    /// thresholds (the sensor's, or the image's when there is none).
    pub fn open(profile: &boards::Profile, timing: Timing) -> Result<(Self, Light), HwSetupError> {
        let light = Light::from_profile(&profile.gpio);
        let ir_cut = match &profile.gpio.ir_cut {
            None => None,
            Some(line) => {
                let pin = gpio::open_output(line, "IR-cut", true)?;
                let cfg = IrCutConfig {
                    night_below: light.thresholds.night_below,
                    day_above: light.thresholds.day_above,
                    hold_us: timing.hold_us,
                    settle_us: timing.settle_us,
                };
                Some((pin, cfg))
            }
        };
        let led = match &profile.gpio.status_led {
            None => None,
            Some(line) => Some(gpio::open_output(line, "status LED", false)?),
        };
        Ok((Self::new(ir_cut, led)?, light))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use embedded_hal_mock::eh1::MockError;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};

    use super::*;

    const S: u64 = 1_000_000;
    const CFG: IrCutConfig = IrCutConfig {
        night_below: 300,
        day_above: 600,
        hold_us: 5 * S,
        settle_us: 10 * S,
    };

    type MockHw = Hardware<Mock, Mock>;

    fn ir_only(wire: &Mock, active_low: bool) -> MockHw {
        let pin = Output::new(wire.clone(), active_low, "mock ir line");
        Hardware::new(Some((pin, CFG)), None).unwrap()
    }

    /// Feeds one reading a second from `from_s` to `to_s` (exclusive);
    /// returns the switches seen, with their second.
    fn feed(hw: &mut MockHw, from_s: u64, to_s: u64, level: u32) -> Vec<(u64, Mode)> {
        let mut seen = Vec::new();
        for t in from_s..to_s {
            let step = hw.step(t * S, Some(level));
            assert!(step.errors.is_empty(), "{:?}", step.errors);
            if let Some(m) = step.switched {
                seen.push((t, m));
            }
        }
        seen
    }

    /// Dusk, night with the illuminator's glare, a long grey dawn inside
    /// the band, then day. Returns the switches.
    fn day_night_day(hw: &mut MockHw) -> Vec<(u64, Mode)> {
        let mut seen = feed(hw, 0, 20, 450); // between the thresholds
        seen.extend(feed(hw, 20, 22, 250)); // a shadow shorter than the hold
        seen.extend(feed(hw, 22, 30, 450));
        seen.extend(feed(hw, 30, 40, 250)); // dusk, held
        seen.extend(feed(hw, 40, 45, 900)); // glare while settling
        seen.extend(feed(hw, 45, 100, 550)); // grey dawn: inside the band
        seen.extend(feed(hw, 100, 110, 650)); // day, held
        seen
    }

    #[test]
    fn day_night_day_switches_once_each_way_after_the_hold() {
        let mut wire = Mock::new(&[
            Transaction::set(State::High), // day at start
            Transaction::set(State::Low),  // night
            Transaction::set(State::High), // day
        ]);
        let mut hw = ir_only(&wire, false);
        assert_eq!(hw.ir_mode(), Some(Mode::Day));
        let seen = day_night_day(&mut hw);
        assert_eq!(seen, vec![(35, Mode::Night), (105, Mode::Day)]);
        assert_eq!(hw.ir_mode(), Some(Mode::Day));
        wire.done();
    }

    #[test]
    fn an_active_low_ir_cut_line_gets_the_inverse_levels() {
        let mut wire = Mock::new(&[
            Transaction::set(State::Low),
            Transaction::set(State::High),
            Transaction::set(State::Low),
        ]);
        let mut hw = ir_only(&wire, true);
        assert_eq!(
            day_night_day(&mut hw),
            vec![(35, Mode::Night), (105, Mode::Day)]
        );
        wire.done();
    }

    #[test]
    fn no_reading_means_no_decision_but_the_led_still_runs() {
        let mut ir = Mock::new(&[Transaction::set(State::High)]);
        let mut led = Mock::new(&[Transaction::set(State::High)]);
        let mut hw = Hardware::new(
            Some((Output::new(ir.clone(), false, "ir"), CFG)),
            Some(Output::new(led.clone(), false, "led")),
        )
        .unwrap();
        hw.set_status(Status::Running);
        for t in 0..100 {
            assert_eq!(hw.step(t * S, None), Step::default());
        }
        assert_eq!(hw.ir_mode(), Some(Mode::Day));
        ir.done();
        led.done();
    }

    /// The LED's wire levels over 2 s in 10 ms steps, for `status`.
    fn led_levels(status: Status, active_low: bool, expect: &[State]) {
        let t: Vec<_> = expect.iter().map(|s| Transaction::set(*s)).collect();
        let mut wire = Mock::new(&t);
        let mut hw: MockHw =
            Hardware::new(None, Some(Output::new(wire.clone(), active_low, "led"))).unwrap();
        hw.set_status(status);
        for ms in (0..2000).step_by(10) {
            let step = hw.step(ms * 1000, Some(0));
            assert_eq!(step, Step::default(), "{status:?} at {ms} ms");
        }
        assert_eq!(hw.ir_mode(), None);
        wire.done();
    }

    #[test]
    fn each_app_state_has_its_led_pattern() {
        use State::{High as H, Low as L};
        // 1 Hz: on 0-499, off 500-999, twice.
        led_levels(Status::Booting, false, &[H, L, H, L]);
        // Steady: one write, then nothing.
        led_levels(Status::Running, false, &[H]);
        // A 100 ms flash every 2 s.
        led_levels(Status::NoLink, false, &[H, L]);
        // Not provisioned: two 100 ms flashes every 2 s.
        led_levels(Status::Unprovisioned, false, &[H, L, H, L]);
        // 5 Hz: ten flashes in 2 s.
        led_levels(Status::Updating, false, &[H, L].repeat(10));
        // An active-low LED gets the opposite levels.
        led_levels(Status::Booting, true, &[L, H, L, H]);
        led_levels(Status::Running, true, &[L]);
    }

    #[test]
    fn a_status_change_takes_effect_on_the_next_step() {
        use State::{High as H, Low as L};
        let mut wire = Mock::new(&[
            Transaction::set(H), // booting, 0 ms
            Transaction::set(L), // booting, 500 ms
            Transaction::set(H), // running from 700 ms
            Transaction::set(L), // no link from 1500 ms (between flashes)
        ]);
        let mut hw: MockHw =
            Hardware::new(None, Some(Output::new(wire.clone(), false, "led"))).unwrap();
        for ms in (0..700).step_by(50) {
            assert!(hw.step(ms * 1000, None).errors.is_empty());
        }
        hw.set_status(Status::Running);
        for ms in (700..1500).step_by(50) {
            assert!(hw.step(ms * 1000, None).errors.is_empty());
        }
        hw.set_status(Status::NoLink);
        for ms in (1500..2000).step_by(50) {
            assert!(hw.step(ms * 1000, None).errors.is_empty());
        }
        wire.done();
    }

    #[test]
    fn failed_writes_name_the_line_and_are_retried() {
        let mut wire = Mock::new(&[
            Transaction::set(State::High),
            Transaction::set(State::Low)
                .with_error(MockError::Io(std::io::ErrorKind::NotConnected)),
            Transaction::set(State::Low),
        ]);
        let mut hw = ir_only(&wire, false);
        feed(&mut hw, 0, 5, 100);
        let step = hw.step(5 * S, Some(100));
        assert_eq!(step.switched, None);
        assert_eq!(step.errors.len(), 1);
        let e = step.errors[0].to_string();
        assert!(e.contains("IR-cut") && e.contains("mock ir line"), "{e}");
        assert_eq!(hw.ir_mode(), Some(Mode::Day), "not switched on failure");
        // The level still holds: the next reading switches.
        let step = hw.step(6 * S, Some(100));
        assert_eq!(step.switched, Some(Mode::Night));
        wire.done();
    }

    #[test]
    fn thresholds_without_hysteresis_are_refused_naming_the_line() {
        let mut wire = Mock::new(&[]);
        let pin = Output::new(wire.clone(), false, "/dev/gpiochip3 line 12");
        let cfg = IrCutConfig {
            day_above: 300,
            ..CFG
        };
        let e = MockHw::new(Some((pin, cfg)), None).unwrap_err().to_string();
        assert!(
            e.contains("/dev/gpiochip3 line 12") && e.contains("hysteresis"),
            "{e}"
        );
        wire.done();
    }
}
