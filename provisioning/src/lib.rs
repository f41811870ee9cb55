//! Provisioning: what a camera learns at the factory, once.
//!
//! The vendor's factory station makes one signed bundle per camera
//! (`ota-vendor provision`): who the camera is (camera and store ids), the
//! broker it reports to, the CA the broker's certificate chains to, the
//! camera's own client certificate and key, and the store chain's OTA root
//! of trust. On the camera, `ota provision` checks the vendor's signature
//! (`ota::provision`) and installs the [`Contents`] into one directory on
//! the data partition ([`install`]), once. camera-app and the update agent
//! read who they are from that directory ([`Provisioned::load`]); nothing
//! else on the camera carries an identity, and installers never see a key.
//!
//! This crate holds the contents and the directory, not the signatures
//! (those are `ota`'s trust chain), so camera-app can read its identity
//! without depending on the update machinery.

use std::fs::{self, File};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use mqtt_tls::TlsConfig;
use serde::{Deserialize, Serialize};

/// Version of [`Contents`]; a camera refuses contents it does not know.
pub const FORMAT: u32 = 1;

/// Files of the installed directory.
pub const IDENTITY_FILE: &str = "identity.toml";
pub const CA_FILE: &str = "ca.pem";
pub const CERT_FILE: &str = "client.pem";
pub const KEY_FILE: &str = "client.key";
/// The store chain's root of trust, as the agent's `root_file` reads it.
pub const ROOT_FILE: &str = "root.json";

/// Longest camera or store id: they are parts of MQTT topics.
pub const MAX_ID_BYTES: usize = 64;

/// Who the camera is and where it reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub camera_id: String,
    pub store_id: String,
    pub broker: Broker,
    /// The factory's serial of this bundle: installing the same bundle
    /// again changes nothing, another one is refused.
    pub serial: String,
}

/// The MQTT broker; always over TLS with the provisioned certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Broker {
    pub host: String,
    pub port: u16,
}

/// The signed payload of a factory bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contents {
    pub format: u32,
    pub identity: Identity,
    /// PEM: the CA(s) the broker's certificate must chain to.
    pub ca_pem: String,
    /// PEM: the camera's client certificate (chain).
    pub cert_pem: String,
    /// PEM: the camera's private key.
    pub key_pem: String,
    /// The store chain's signed OTA root document (JSON text), checked by
    /// the update agent's trust chain before installing.
    pub ota_root: String,
}

/// Why provisioning failed; each names what it was about.
#[derive(Debug, thiserror::Error)]
pub enum ProvisioningError {
    #[error("provisioning contents refused: {}", problems.join("; "))]
    Invalid { problems: Vec<String> },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error(
        "{dir} already holds camera {camera_id} (bundle {serial}); refusing bundle {new_serial}: \
         a camera is provisioned once (a factory reset removes {dir})"
    )]
    AlreadyProvisioned {
        dir: PathBuf,
        camera_id: String,
        serial: String,
        new_serial: String,
    },
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ProvisioningError {
    let path = path.to_path_buf();
    move |source| ProvisioningError::Io { what, path, source }
}

/// Camera and store ids end up in topics and file names.
fn id_problem(field: &str, id: &str) -> Option<String> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_BYTES
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    (!ok).then(|| {
        format!("{field}: {id:?} must be 1 to {MAX_ID_BYTES} bytes of A-Z, a-z, 0-9, '-', '_', '.'")
    })
}

/// Counts the PEM items of a kind; `None` if the text does not parse.
fn pem_items(text: &str) -> Option<(usize, usize)> {
    let (mut certs, mut keys) = (0, 0);
    for item in rustls_pemfile::read_all(&mut text.as_bytes()) {
        match item.ok()? {
            rustls_pemfile::Item::X509Certificate(_) => certs += 1,
            rustls_pemfile::Item::Pkcs1Key(_)
            | rustls_pemfile::Item::Pkcs8Key(_)
            | rustls_pemfile::Item::Sec1Key(_) => keys += 1,
            _ => {}
        }
    }
    Some((certs, keys))
}

impl Contents {
    /// Every problem, each with its field; empty when the contents can be
    /// installed (the OTA root is checked by the agent's trust chain).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.format != FORMAT {
            p.push(format!(
                "format: {} is not {FORMAT}, the one this camera knows",
                self.format
            ));
        }
        let id = &self.identity;
        p.extend(id_problem("identity.camera_id", &id.camera_id));
        p.extend(id_problem("identity.store_id", &id.store_id));
        p.extend(id_problem("identity.serial", &id.serial));
        if id.broker.host.is_empty() || id.broker.host.contains(char::is_whitespace) {
            p.push(format!(
                "identity.broker.host: {:?} is not a host name",
                id.broker.host
            ));
        }
        if id.broker.port == 0 {
            p.push("identity.broker.port: must not be 0".into());
        }
        for (field, text, certs_wanted, keys_wanted) in [
            ("ca_pem", &self.ca_pem, true, false),
            ("cert_pem", &self.cert_pem, true, false),
            ("key_pem", &self.key_pem, false, true),
        ] {
            match pem_items(text) {
                None => p.push(format!("{field}: not PEM")),
                Some((certs, keys)) => {
                    if certs_wanted && certs == 0 {
                        p.push(format!("{field}: no certificate in it"));
                    }
                    if keys_wanted && keys != 1 {
                        p.push(format!("{field}: {keys} private keys, want exactly 1"));
                    }
                    if !keys_wanted && keys != 0 {
                        p.push(format!("{field}: holds a private key; keys go in key_pem"));
                    }
                }
            }
        }
        if self.ota_root.trim().is_empty() {
            p.push("ota_root: empty".into());
        }
        p
    }
}

/// A provisioned camera: its installed directory and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub dir: PathBuf,
    pub identity: Identity,
}

impl Provisioned {
    /// What is installed in `dir`; `None` when the camera was never
    /// provisioned (no directory). A directory that is there but broken
    /// is an error, not "unprovisioned".
    pub fn load(dir: &Path) -> Result<Option<Provisioned>, ProvisioningError> {
        let path = dir.join(IDENTITY_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => {
                return Ok(None);
            }
            Err(e) => return Err(io("reading", &path)(e)),
        };
        let identity: Identity =
            toml::from_str(&text).map_err(|e| ProvisioningError::Malformed {
                path: path.clone(),
                message: e.to_string(),
            })?;
        for f in [CA_FILE, CERT_FILE, KEY_FILE, ROOT_FILE] {
            let p = dir.join(f);
            if !p.is_file() {
                return Err(ProvisioningError::Malformed {
                    path: p,
                    message: "missing from the provisioned directory".into(),
                });
            }
        }
        Ok(Some(Provisioned {
            dir: dir.to_path_buf(),
            identity,
        }))
    }

    /// TLS to the broker: its CA and the camera's client certificate.
    pub fn tls(&self) -> TlsConfig {
        TlsConfig {
            ca_file: self.dir.join(CA_FILE),
            cert_file: Some(self.dir.join(CERT_FILE)),
            key_file: Some(self.dir.join(KEY_FILE)),
        }
    }

    /// The store chain's root of trust for updates.
    pub fn root_file(&self) -> PathBuf {
        self.dir.join(ROOT_FILE)
    }
}

/// What [`install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// The directory was created.
    New,
    /// The same bundle was installed before: nothing changed.
    Already,
}

/// Installs checked contents into `dir`, all or nothing: the files are
/// written and synced in a sibling directory that is renamed into place,
/// so a power cut leaves either no `dir` or a complete one. Once `dir`
/// exists only the same bundle (same serial and contents) is accepted.
pub fn install(contents: &Contents, dir: &Path) -> Result<Installed, ProvisioningError> {
    let problems = contents.problems();
    if !problems.is_empty() {
        return Err(ProvisioningError::Invalid { problems });
    }
    if let Some(have) = Provisioned::load(dir)? {
        let same = have.identity == contents.identity
            && fs::read_to_string(dir.join(KEY_FILE)).ok().as_deref()
                == Some(contents.key_pem.as_str());
        return if same {
            Ok(Installed::Already)
        } else {
            Err(ProvisioningError::AlreadyProvisioned {
                dir: dir.to_path_buf(),
                camera_id: have.identity.camera_id,
                serial: have.identity.serial,
                new_serial: contents.identity.serial.clone(),
            })
        };
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io("creating", &parent))?;
    let name = dir.file_name().map_or_else(
        || "provisioning".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let staging = parent.join(format!(".{name}.partial"));
    // Left over from a power cut during an earlier install.
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io("removing", &staging))?;
    }
    fs::create_dir(&staging).map_err(io("creating", &staging))?;
    let identity =
        toml::to_string(&contents.identity).map_err(|e| ProvisioningError::Malformed {
            path: staging.join(IDENTITY_FILE),
            message: e.to_string(),
        })?;
    let files: [(&str, &str, u32); 5] = [
        (IDENTITY_FILE, &identity, 0o644),
        (CA_FILE, &contents.ca_pem, 0o644),
        (CERT_FILE, &contents.cert_pem, 0o644),
        (KEY_FILE, &contents.key_pem, 0o600),
        (ROOT_FILE, &contents.ota_root, 0o644),
    ];
    for (file, text, mode) in files {
        write_synced(&staging.join(file), text.as_bytes(), mode)?;
    }
    sync_dir(&staging)?;
    fs::rename(&staging, dir).map_err(io("renaming into place", dir))?;
    sync_dir(&parent)?;
    Ok(Installed::New)
}

fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ProvisioningError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io("creating", path))?;
    f.write_all(bytes).map_err(io("writing", path))?;
    f.sync_all().map_err(io("syncing", path))
}

fn sync_dir(dir: &Path) -> Result<(), ProvisioningError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("syncing", dir))
}

#[cfg(test)]
mod tests;
