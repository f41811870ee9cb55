//! V4L2 capture (placeholder until the capture module lands).

/// Errors from V4L2 capture, each naming the device.
#[derive(Debug, thiserror::Error)]
pub enum V4l2Error {
    #[error("{device}: {reason}")]
    Device { device: String, reason: String },
}
