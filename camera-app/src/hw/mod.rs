//! The camera's small hardware: the IR-cut filter and the status LED.
//!
//! Both are written against the embedded-hal 1.0 `OutputPin` trait, so the
//! same code drives a GPIO line on the camera (linux-embedded-hal's
//! `CdevPin`, with the chip and line from the board profile) and a mock pin
//! in tests. Decisions are pure and take time as an argument.
//!
//! - [`ircut`], [`led`]: the decisions (sans I/O);
//! - [`gpio`]: the profile's lines as outputs, with their polarity;
//! - [`light`]: the light level (IIO sensor, or the image's mean luma);
//! - [`Hardware`]: both outputs, stepped with `(now, level)`;
//! - [`runner`]: a thread stepping it, shared state for the service;
//! - [`board`]: the profile's camera as a capture source (`--board`).

pub mod board;
pub mod gpio;
pub mod hardware;
pub mod ircut;
pub mod led;
pub mod light;
pub mod runner;

pub use hardware::{BoardHardware, Hardware, HwError, HwSetupError, Step, Timing};
pub use ircut::Mode;
pub use led::Status;
pub use light::{Light, LightError, LightSensor, SysfsLightSensor};
pub use runner::{BoardHw, HwCounters, HwShared, RunnerConfig, spawn, start};
