//! Logs for the OTA programs (the camera's `ota`, the vendor's
//! `ota-vendor`): to stderr, `RUST_LOG` as `target=level` pairs
//! (tracing-subscriber's `Targets`: no regex engine on the camera).

/// Set up logging once, at the start of `main`.
pub fn init() {
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse::<tracing_subscriber::filter::Targets>().ok())
        .unwrap_or_else(|| {
            tracing_subscriber::filter::Targets::new().with_default(tracing::Level::INFO)
        });
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();
}
