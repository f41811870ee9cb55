//! `camera-app demo`: the embedded default (no camera, no NPU, no broker
//! to install), or `--offline` detection on photos.

use std::path::PathBuf;

use anyhow::bail;

use camera_app::demo;
use camera_app::model;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, env = model::MODELS_DIR_ENV)]
    models_dir: Option<PathBuf>,
    /// Seconds the camera runs (MQTT demo).
    #[arg(long, default_value_t = 75)]
    seconds: u64,
    /// Seconds between health reports (MQTT demo).
    #[arg(long, default_value_t = 10)]
    health_interval: u64,
    /// Broker port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Detection only, without a broker.
    #[arg(long)]
    offline: bool,
    /// Offline: directory of JPEG/PNG photos; the synthetic pattern when
    /// absent.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Offline: where to write frames with boxes drawn.
    #[arg(long, default_value = "demo-output")]
    out: PathBuf,
    /// Offline: frames of the synthetic pattern.
    #[arg(long, default_value_t = 20)]
    frames: u64,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.offline || a.images.is_some() {
        let opts = demo::DemoOptions {
            images: a.images,
            models_dir: a.models_dir,
            out_dir: Some(a.out),
            frames: a.frames,
        };
        demo::run(&opts, &mut std::io::stdout().lock())?;
        return Ok(());
    }
    mqtt(&demo::MqttDemoOptions {
        models_dir: a.models_dir,
        seconds: a.seconds,
        health_interval_s: a.health_interval,
        port: a.port,
    })
}

#[cfg(feature = "embedded-broker")]
fn mqtt(opts: &demo::MqttDemoOptions) -> anyhow::Result<()> {
    let got = demo::run_mqtt(opts, &mut std::io::stdout().lock())?;
    if got.health == 0 || got.status == 0 {
        bail!("the demo's consumer received no health report or status: {got:?}");
    }
    Ok(())
}

#[cfg(not(feature = "embedded-broker"))]
fn mqtt(_: &demo::MqttDemoOptions) -> anyhow::Result<()> {
    bail!("this build has no embedded broker (feature embedded-broker): use demo --offline")
}
