//! `ota-vendor provision`: the factory station's step that seals one
//! camera's identity, broker, certificates and the store chain's root of
//! trust into a bundle signed with the vendor's factory key. The camera
//! checks it with `ota provision` at first boot.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use provisioning::{Broker, Contents, FORMAT, Identity};

use crate::files;

#[derive(Debug, clap::Args)]
pub struct ProvisionArgs {
    /// The vendor's factory secret key (its public half is in the image's
    /// /etc/ota/factory-keys).
    #[arg(long)]
    factory_key: PathBuf,
    #[arg(long)]
    camera_id: String,
    #[arg(long)]
    store_id: String,
    /// This bundle's serial (default: the camera id): a camera accepts one
    /// serial, once.
    #[arg(long)]
    serial: Option<String>,
    #[arg(long)]
    broker_host: String,
    #[arg(long, default_value_t = 8883)]
    broker_port: u16,
    /// PEM: the CA the broker's certificate chains to.
    #[arg(long)]
    ca: PathBuf,
    /// PEM: the camera's client certificate.
    #[arg(long)]
    cert: PathBuf,
    /// PEM: the camera's private key.
    #[arg(long)]
    key: PathBuf,
    /// The store chain's signed root (root.json).
    #[arg(long)]
    root: PathBuf,
    /// Where to write the bundle (mode 600: it holds the camera's key).
    #[arg(long)]
    out: PathBuf,
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

pub fn provision(a: ProvisionArgs) -> anyhow::Result<()> {
    let factory = files::read_secret(&a.factory_key)?;
    let root = files::read_signed(&a.root)?;
    let contents = Contents {
        format: FORMAT,
        identity: Identity {
            serial: a.serial.unwrap_or_else(|| a.camera_id.clone()),
            camera_id: a.camera_id,
            store_id: a.store_id,
            broker: Broker {
                host: a.broker_host,
                port: a.broker_port,
            },
        },
        ca_pem: read(&a.ca)?,
        cert_pem: read(&a.cert)?,
        key_pem: read(&a.key)?,
        ota_root: serde_json::to_string(&root)?,
    };
    let bundle = ota::provision::seal(&contents, &[&factory]);
    // What the camera will check, checked here first: a bad bundle is
    // found at the station, not on the shop ceiling.
    ota::provision::open(&bundle, &[factory.public_key()])
        .context("the bundle would be refused by the camera")?;
    files::write_secret(&a.out, &serde_json::to_string_pretty(&bundle)?)?;
    println!(
        "{}: camera {} of store {}, serial {}, broker {}:{}",
        a.out.display(),
        contents.identity.camera_id,
        contents.identity.store_id,
        contents.identity.serial,
        contents.identity.broker.host,
        contents.identity.broker.port
    );
    Ok(())
}
