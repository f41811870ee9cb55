//! `camera-app default-config`: the built-in configuration, commented.

use camera_app::config::DEFAULT_CONFIG;

pub fn run() -> anyhow::Result<()> {
    print!("{DEFAULT_CONFIG}");
    Ok(())
}
