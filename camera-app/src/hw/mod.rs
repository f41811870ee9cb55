//! The camera's small hardware: the IR-cut filter and the status LED.
//!
//! Both are written against the embedded-hal 1.0 `OutputPin` trait, so the
//! same code drives a GPIO line on the camera (linux-embedded-hal's
//! `CdevPin`, with the chip and line from the board profile) and a mock pin
//! in tests. Decisions are pure and take time as an argument.

pub mod ircut;
pub mod led;
