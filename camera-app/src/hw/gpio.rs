//! The board's GPIO lines, opened from the profile (`[gpio] ir_cut`,
//! `status_led`) as linux-embedded-hal `CdevPin` outputs.
//!
//! Polarity is ours, not the kernel's: `CdevPin` inverts again whatever the
//! line was requested active-low, so a line requested with the kernel's
//! ACTIVE_LOW flag would end up driven as if active-high. Lines are
//! therefore requested plain, and [`Output`] maps "asserted" (`set_high`)
//! to the electrical level the profile's `active_low` asks for.

use std::fmt;
use std::path::PathBuf;

use embedded_hal::digital::{ErrorType, OutputPin};
use linux_embedded_hal::CdevPin;
use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};

/// An output pin seen through the board's polarity: `set_high` asserts
/// (IR-cut filter in, LED lit), whatever level that is on the wire.
pub struct Output<P> {
    pin: P,
    active_low: bool,
    label: String,
}

impl<P> Output<P> {
    /// `label` names the line in errors (`/dev/gpiochip3 line 12`).
    pub fn new(pin: P, active_low: bool, label: impl Into<String>) -> Self {
        Self {
            pin,
            active_low,
            label: label.into(),
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn active_low(&self) -> bool {
        self.active_low
    }
}

// By hand: `CdevPin` has no `Debug`.
impl<P> fmt::Debug for Output<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Output")
            .field("label", &self.label)
            .field("active_low", &self.active_low)
            .finish_non_exhaustive()
    }
}

impl<P: ErrorType> ErrorType for Output<P> {
    type Error = P::Error;
}

impl<P: OutputPin> OutputPin for Output<P> {
    fn set_high(&mut self) -> Result<(), Self::Error> {
        if self.active_low {
            self.pin.set_low()
        } else {
            self.pin.set_high()
        }
    }

    fn set_low(&mut self) -> Result<(), Self::Error> {
        if self.active_low {
            self.pin.set_high()
        } else {
            self.pin.set_low()
        }
    }
}

/// A line that could not be opened; each names the chip and the line.
#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    #[error("{what} GPIO: cannot open {} (for line {line}): {source}", chip.display())]
    Chip {
        what: &'static str,
        chip: PathBuf,
        line: u32,
        #[source]
        source: linux_embedded_hal::gpio_cdev::Error,
    },
    #[error("{what} GPIO: {} has no line {line}: {source}", chip.display())]
    Line {
        what: &'static str,
        chip: PathBuf,
        line: u32,
        #[source]
        source: linux_embedded_hal::gpio_cdev::Error,
    },
    #[error("{what} GPIO: cannot take {} line {line} as an output (held by another program?): {source}", chip.display())]
    Request {
        what: &'static str,
        chip: PathBuf,
        line: u32,
        #[source]
        source: linux_embedded_hal::gpio_cdev::Error,
    },
}

/// The name the kernel shows as the line's user (`gpioinfo`).
const CONSUMER: &str = "camera-app";

/// Open `line` as an output for `what` ("IR-cut", "status LED"), starting
/// asserted or not: the level is set in the request itself, so the line
/// never glitches through the other state.
pub fn open_output(
    line: &boards::Line,
    what: &'static str,
    asserted: bool,
) -> Result<Output<CdevPin>, GpioError> {
    let (chip_path, offset) = (line.chip.clone(), line.line);
    let mut chip = Chip::new(&chip_path).map_err(|source| GpioError::Chip {
        what,
        chip: chip_path.clone(),
        line: offset,
        source,
    })?;
    let l = chip.get_line(offset).map_err(|source| GpioError::Line {
        what,
        chip: chip_path.clone(),
        line: offset,
        source,
    })?;
    let request = |source| GpioError::Request {
        what,
        chip: chip_path.clone(),
        line: offset,
        source,
    };
    let level = u8::from(asserted != line.active_low);
    let handle = l
        .request(LineRequestFlags::OUTPUT, level, CONSUMER)
        .map_err(request)?;
    let pin = CdevPin::new(handle).map_err(request)?;
    Ok(Output::new(
        pin,
        line.active_low,
        format!("{} line {offset}", chip_path.display()),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};

    use super::*;

    #[test]
    fn active_low_inverts_the_wire_level() {
        let mut wire = Mock::new(&[
            Transaction::set(State::Low),  // asserted
            Transaction::set(State::High), // released
        ]);
        let mut out = Output::new(wire.clone(), true, "mock line 1");
        out.set_high().unwrap();
        out.set_low().unwrap();
        wire.done();

        let mut wire = Mock::new(&[Transaction::set(State::High), Transaction::set(State::Low)]);
        let mut out = Output::new(wire.clone(), false, "mock line 2");
        out.set_high().unwrap();
        out.set_low().unwrap();
        wire.done();
    }

    fn line(chip: &str, line: u32) -> boards::Line {
        boards::Line {
            chip: chip.into(),
            line,
            active_low: false,
        }
    }

    #[test]
    fn a_missing_chip_is_named_with_its_line() {
        let e = open_output(&line("/dev/gpiochip-none-here", 12), "IR-cut", true).unwrap_err();
        assert!(matches!(e, GpioError::Chip { line: 12, .. }), "{e:?}");
        let msg = e.to_string();
        for part in ["IR-cut", "/dev/gpiochip-none-here", "line 12"] {
            assert!(msg.contains(part), "{part:?} missing from {msg}");
        }
    }

    #[test]
    fn a_file_that_is_no_gpio_chip_is_refused() {
        // Opens, but the chip-info ioctl fails.
        let e = open_output(&line("/dev/null", 3), "status LED", false).unwrap_err();
        assert!(matches!(e, GpioError::Chip { .. }), "{e:?}");
        assert!(e.to_string().contains("/dev/null"), "{e}");
    }

    #[test]
    fn debug_shows_the_line_without_needing_the_pin() {
        struct NoDebug;
        let out = Output::new(NoDebug, true, "/dev/gpiochip0 line 22");
        let s = format!("{out:?}");
        assert!(s.contains("/dev/gpiochip0 line 22") && s.contains("active_low: true"));
    }
}
