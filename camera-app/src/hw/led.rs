//! The status LED: one pattern per camera state, so an installer at the
//! door sees what the camera is doing without a laptop.
//!
//! | state | pattern |
//! |---|---|
//! | booting | slow blink, 1 Hz |
//! | running | steady on |
//! | no link | one short flash every 2 s |
//! | updating | fast blink, 5 Hz |
//! | not provisioned | two short flashes every 2 s |

use embedded_hal::digital::OutputPin;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Booting,
    Running,
    NoLink,
    Updating,
    /// No factory bundle installed: it counts but publishes nothing.
    Unprovisioned,
}

/// Whether the LED is lit for `status` at `t_ms` (pure).
pub fn lit(status: Status, t_ms: u64) -> bool {
    match status {
        Status::Booting => t_ms % 1000 < 500,
        Status::Running => true,
        Status::NoLink => t_ms % 2000 < 100,
        Status::Updating => t_ms % 200 < 100,
        Status::Unprovisioned => matches!(t_ms % 2000, 0..100 | 300..400),
    }
}

/// Drives the LED pin; writes only when the level changes.
#[derive(Debug)]
pub struct Led<P> {
    pin: P,
    status: Status,
    on: Option<bool>,
}

impl<P: OutputPin> Led<P> {
    pub fn new(pin: P) -> Self {
        Self {
            pin,
            status: Status::Booting,
            on: None,
        }
    }

    pub fn set_status(&mut self, status: Status) {
        self.status = status;
    }

    /// Call often (every 50 ms or so).
    pub fn tick(&mut self, t_ms: u64) -> Result<(), P::Error> {
        let want = lit(self.status, t_ms);
        if self.on != Some(want) {
            if want {
                self.pin.set_high()?;
            } else {
                self.pin.set_low()?;
            }
            self.on = Some(want);
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};

    use super::*;

    fn duty(status: Status, period_ms: u64) -> f64 {
        let on = (0..period_ms).filter(|t| lit(status, *t)).count();
        on as f64 / period_ms as f64
    }

    #[test]
    fn each_state_has_its_own_pattern() {
        assert_eq!(duty(Status::Running, 2000), 1.0);
        assert_eq!(duty(Status::Booting, 2000), 0.5);
        assert_eq!(duty(Status::Updating, 2000), 0.5);
        assert!((duty(Status::NoLink, 2000) - 0.05).abs() < 1e-9);
        // Updating repeats every 200 ms, booting every second: five times
        // as fast.
        for t in 0..2000 {
            assert_eq!(lit(Status::Updating, t), lit(Status::Updating, t + 200));
            assert_eq!(lit(Status::Booting, t), lit(Status::Booting, t + 1000));
        }
        assert_ne!(lit(Status::Updating, 0), lit(Status::Updating, 100));
        assert_eq!(lit(Status::Booting, 0), lit(Status::Booting, 200));
    }

    #[test]
    fn the_pin_is_written_only_on_changes() {
        let mut pin = Mock::new(&[
            Transaction::set(State::High), // booting, first half second
            Transaction::set(State::Low),
            Transaction::set(State::High), // running: steady
            Transaction::set(State::Low),  // no link: off between flashes
            Transaction::set(State::High), // the flash
            Transaction::set(State::Low),
        ]);
        let mut led = Led::new(pin.clone());
        for t in (0..1000).step_by(50) {
            led.tick(t).unwrap();
        }
        led.set_status(Status::Running);
        for t in (1000..3000).step_by(50) {
            led.tick(t).unwrap();
        }
        led.set_status(Status::NoLink);
        for t in (3000..4150).step_by(50) {
            led.tick(t).unwrap();
        }
        pin.done();
    }
}
