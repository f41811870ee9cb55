//! Key files and signed documents on the vendor's disk, and `keygen`.

use std::path::Path;

use anyhow::Context as _;

use ota::trust::{PublicKey, SecretKey, Signed};

/// `ota-vendor keygen NAME`: NAME.key (secret, mode 600, never
/// overwritten) and NAME.pub.
pub fn keygen(name: &Path) -> anyhow::Result<()> {
    let key = SecretKey::generate()?;
    let secret = name.with_extension("key");
    let public = name.with_extension("pub");
    write_secret(&secret, &key.to_text())?;
    std::fs::write(&public, key.public_key().to_hex() + "\n")?;
    println!(
        "{}: key id {}\nsecret {} (keep it offline)",
        public.display(),
        key.key_id(),
        secret.display()
    );
    Ok(())
}

pub fn read_secret(path: &Path) -> anyhow::Result<SecretKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    SecretKey::from_text(text.trim()).with_context(|| format!("secret key {}", path.display()))
}

pub fn read_public(path: &Path) -> anyhow::Result<PublicKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    PublicKey::from_hex(text.trim()).with_context(|| format!("public key {}", path.display()))
}

pub fn read_signed(path: &Path) -> anyhow::Result<Signed> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a signed document", path.display()))
}

pub fn write_json(path: &Path, v: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

#[cfg(unix)]
pub fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    Ok(())
}
