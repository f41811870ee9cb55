//! Day/night switching of the IR-cut filter.
//!
//! The light level (a light sensor's raw reading, or the image's mean luma
//! scaled the same way) must cross a threshold with hysteresis
//! (`night_below` < `day_above`) and stay across for `hold_us` before the
//! filter moves. After a switch, readings are ignored for `settle_us`:
//! the IR illuminator and the filter change the image's brightness
//! themselves, which would otherwise switch it straight back.

use embedded_hal::digital::OutputPin;

/// Which way the filter is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Filter in: colour image, IR blocked.
    Day,
    /// Filter out: IR passes (monochrome, with the IR illuminator).
    Night,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IrCutConfig {
    pub night_below: u32,
    pub day_above: u32,
    /// How long a level must stay across a threshold.
    pub hold_us: u64,
    /// Readings ignored after a switch.
    pub settle_us: u64,
}

/// Why the settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("IR-cut: night_below {night_below} must be under day_above {day_above} (hysteresis)")]
pub struct IrCutConfigError {
    pub night_below: u32,
    pub day_above: u32,
}

/// The controller: drives `pin` high for day (filter in), low for night.
#[derive(Debug)]
pub struct IrCut<P> {
    pin: P,
    cfg: IrCutConfig,
    mode: Mode,
    /// A crossing seen, and since when.
    pending: Option<(Mode, u64)>,
    settle_until: u64,
}

impl<P: OutputPin> IrCut<P> {
    /// Start in day mode (the filter's safe state: colour image) and set
    /// the pin accordingly.
    pub fn new(mut pin: P, cfg: IrCutConfig) -> Result<Self, IrCutError<P::Error>> {
        if cfg.night_below >= cfg.day_above {
            return Err(IrCutError::Config(IrCutConfigError {
                night_below: cfg.night_below,
                day_above: cfg.day_above,
            }));
        }
        pin.set_high().map_err(IrCutError::Pin)?;
        Ok(Self {
            pin,
            cfg,
            mode: Mode::Day,
            pending: None,
            settle_until: 0,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Feed one light reading at `now_us`; returns the new mode when the
    /// filter moved.
    pub fn observe(
        &mut self,
        level: u32,
        now_us: u64,
    ) -> Result<Option<Mode>, IrCutError<P::Error>> {
        if now_us < self.settle_until {
            return Ok(None);
        }
        let wanted = match self.mode {
            Mode::Day if level <= self.cfg.night_below => Some(Mode::Night),
            Mode::Night if level >= self.cfg.day_above => Some(Mode::Day),
            _ => None,
        };
        let Some(wanted) = wanted else {
            self.pending = None;
            return Ok(None);
        };
        let since = match self.pending {
            Some((m, t)) if m == wanted => t,
            _ => {
                self.pending = Some((wanted, now_us));
                now_us
            }
        };
        if now_us.saturating_sub(since) < self.cfg.hold_us {
            return Ok(None);
        }
        match wanted {
            Mode::Day => self.pin.set_high(),
            Mode::Night => self.pin.set_low(),
        }
        .map_err(IrCutError::Pin)?;
        self.mode = wanted;
        self.pending = None;
        self.settle_until = now_us + self.cfg.settle_us;
        Ok(Some(wanted))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IrCutError<E: std::fmt::Debug> {
    #[error(transparent)]
    Config(IrCutConfigError),
    #[error("IR-cut GPIO: {0:?}")]
    Pin(E),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};

    use super::*;

    const CFG: IrCutConfig = IrCutConfig {
        night_below: 300,
        day_above: 600,
        hold_us: 5_000_000,
        settle_us: 10_000_000,
    };
    const S: u64 = 1_000_000;

    #[test]
    fn switches_only_after_the_level_holds_across_a_threshold() {
        let mut pin = Mock::new(&[
            Transaction::set(State::High), // start: day
            Transaction::set(State::Low),  // night
            Transaction::set(State::High), // day again
        ]);
        let mut c = IrCut::new(pin.clone(), CFG).unwrap();
        // Dusk: a dip shorter than the hold does nothing.
        assert_eq!(c.observe(250, 0).unwrap(), None);
        assert_eq!(c.observe(250, 4 * S).unwrap(), None);
        assert_eq!(c.observe(400, 4 * S + 1).unwrap(), None); // back in the band
        assert_eq!(c.observe(250, 5 * S).unwrap(), None); // the hold starts again
        assert_eq!(c.observe(250, 10 * S).unwrap(), Some(Mode::Night));
        // The illuminator brightens the image: ignored while settling.
        assert_eq!(c.observe(900, 11 * S).unwrap(), None);
        assert_eq!(c.mode(), Mode::Night);
        // Within the band nothing moves, however long.
        for t in 21..60 {
            assert_eq!(c.observe(450, t * S).unwrap(), None);
        }
        // Dawn, held.
        assert_eq!(c.observe(700, 60 * S).unwrap(), None);
        assert_eq!(c.observe(700, 65 * S).unwrap(), Some(Mode::Day));
        pin.done();
    }

    #[test]
    fn flicker_around_one_threshold_never_switches() {
        let mut pin = Mock::new(&[Transaction::set(State::High)]);
        let mut c = IrCut::new(pin.clone(), CFG).unwrap();
        for i in 0..200u64 {
            let level = if i % 2 == 0 { 290 } else { 320 };
            assert_eq!(c.observe(level, i * S).unwrap(), None);
        }
        pin.done();
    }

    #[test]
    fn thresholds_without_hysteresis_are_refused() {
        let mut pin = Mock::new(&[]);
        let cfg = IrCutConfig {
            night_below: 600,
            day_above: 600,
            ..CFG
        };
        let e = IrCut::new(pin.clone(), cfg).unwrap_err().to_string();
        assert!(e.contains("hysteresis"), "{e}");
        pin.done();
    }
}
