//! Provisioning on the camera: a factory bundle (the [`Contents`] of the
//! `provisioning` crate, signed for [`Role::Factory`]) is checked against
//! the vendor's factory keys that the image carries, then installed on the
//! data partition once.
//!
//! The factory keys are the vendor's, not a store chain's: a camera is
//! provisioned before it trusts any chain, and the bundle brings the
//! chain's root of trust with it. That root must verify on its own
//! (signed by its own keys) before anything is installed, so a camera
//! never ends up with a root its agent would refuse.

use std::path::{Path, PathBuf};

use provisioning::{Contents, Identity, Installed, ProvisioningError};

use crate::trust::{self, PublicKey, Role, SecretKey, Signed, Trust, TrustError};

/// Why a factory bundle was not installed; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a signed factory bundle: {source}")]
    NotABundle {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("factory keys {path}: {reason}")]
    Keys { path: PathBuf, reason: String },
    #[error("factory bundle not signed by the vendor: {0}")]
    Signature(#[source] TrustError),
    #[error("factory bundle contents: {0}")]
    Contents(#[source] serde_json::Error),
    #[error("the bundle's OTA root of trust does not verify: {0}")]
    Root(#[source] TrustError),
    #[error(transparent)]
    Install(#[from] ProvisioningError),
}

/// Seals `contents` for one camera with the vendor's factory key(s).
pub fn seal(contents: &Contents, keys: &[&SecretKey]) -> Signed {
    // Serialising plain strings and numbers cannot fail.
    let payload = serde_json::to_string(contents).unwrap_or_default();
    trust::sign(payload, Role::Factory, keys)
}

/// Checks a bundle: the vendor's signature, then the contents (every
/// problem at once), then the OTA root it carries.
pub fn open(bundle: &Signed, factory_keys: &[PublicKey]) -> Result<Contents, ProvisionError> {
    trust::verify_factory(bundle, factory_keys).map_err(ProvisionError::Signature)?;
    let contents: Contents =
        serde_json::from_str(&bundle.payload).map_err(ProvisionError::Contents)?;
    let problems = contents.problems();
    if !problems.is_empty() {
        return Err(ProvisioningError::Invalid { problems }.into());
    }
    let root: Signed = serde_json::from_str(&contents.ota_root).map_err(|source| {
        ProvisionError::Root(TrustError::Json {
            what: "the OTA root",
            source,
        })
    })?;
    Trust::from_initial_root(&root).map_err(ProvisionError::Root)?;
    Ok(contents)
}

/// The vendor's factory public keys: one hex key per line, `#` comments.
pub fn read_factory_keys(path: &Path) -> Result<Vec<PublicKey>, ProvisionError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProvisionError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let keys_err = |reason: String| ProvisionError::Keys {
        path: path.to_path_buf(),
        reason,
    };
    let keys = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(n, l)| PublicKey::from_hex(l).map_err(|e| keys_err(format!("line {n}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(keys_err("no key in the file".into()));
    }
    Ok(keys)
}

/// `ota provision`: checks the bundle at `bundle` against the keys in
/// `factory_keys` and installs it into `dir`.
pub fn provision(
    bundle: &Path,
    factory_keys: &Path,
    dir: &Path,
) -> Result<(Installed, Identity), ProvisionError> {
    let keys = read_factory_keys(factory_keys)?;
    let text = std::fs::read_to_string(bundle).map_err(|source| ProvisionError::Read {
        path: bundle.to_path_buf(),
        source,
    })?;
    let signed: Signed =
        serde_json::from_str(&text).map_err(|source| ProvisionError::NotABundle {
            path: bundle.to_path_buf(),
            source,
        })?;
    let contents = open(&signed, &keys)?;
    let installed = provisioning::install(&contents, dir)?;
    Ok((installed, contents.identity))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use provisioning::{Broker, FORMAT, Provisioned};
    use rcgen::{CertificateParams, KeyPair};

    use super::*;
    use crate::trust::Root;

    fn root_text(key: &SecretKey) -> String {
        let root = Root::new_v1(
            vec![key.public_key()],
            1,
            vec![],
            4_000_000_000,
            1_700_000_000,
        )
        .unwrap();
        serde_json::to_string(&trust::sign(root.to_payload(), Role::Root, &[key])).unwrap()
    }

    fn contents(root: String) -> Contents {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["cam-1".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        Contents {
            format: FORMAT,
            identity: Identity {
                camera_id: "cam-1".into(),
                store_id: "s-1".into(),
                broker: Broker {
                    host: "broker.s-1.example".into(),
                    port: 8883,
                },
                serial: "f-1".into(),
            },
            ca_pem: cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ota_root: root,
        }
    }

    #[test]
    fn a_sealed_bundle_opens_only_with_the_vendors_key_and_a_valid_root() {
        let factory = SecretKey::from_bytes(&[1; 32]);
        let chain_root = SecretKey::from_bytes(&[2; 32]);
        let good = contents(root_text(&chain_root));
        let keys = [factory.public_key()];

        let bundle = seal(&good, &[&factory]);
        assert_eq!(open(&bundle, &keys).unwrap(), good);

        // Signed by someone else, or for another role: refused.
        let stranger = SecretKey::from_bytes(&[3; 32]);
        let err = open(&seal(&good, &[&stranger]), &keys).unwrap_err();
        assert!(matches!(err, ProvisionError::Signature(_)), "{err}");
        let as_manifest = trust::sign(bundle.payload.clone(), Role::Manifest, &[&factory]);
        let err = open(&as_manifest, &keys).unwrap_err();
        assert!(err.to_string().contains("bad signature"), "{err}");

        // A payload changed after signing: refused.
        let mut tampered = bundle.clone();
        tampered.payload = tampered.payload.replace("cam-1", "cam-2");
        assert!(matches!(
            open(&tampered, &keys).unwrap_err(),
            ProvisionError::Signature(_)
        ));

        // A root that does not verify on its own: refused before install.
        let mut forged: Signed = serde_json::from_str(&good.ota_root).unwrap();
        forged.signatures.clear();
        let bad_root = contents(serde_json::to_string(&forged).unwrap());
        let err = open(&seal(&bad_root, &[&factory]), &keys).unwrap_err();
        assert!(matches!(err, ProvisionError::Root(_)), "{err}");

        // Contents with problems: every one reported.
        let mut bad = good.clone();
        bad.identity.camera_id = "a/b".into();
        bad.identity.broker.port = 0;
        let err = open(&seal(&bad, &[&factory]), &keys)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("identity.camera_id") && err.contains("identity.broker.port"),
            "{err}"
        );
    }

    #[test]
    fn provision_installs_once_from_files_and_refuses_a_bad_bundle_writing_nothing() {
        let d = tempfile::tempdir().unwrap();
        let factory = SecretKey::from_bytes(&[5; 32]);
        let keys = d.path().join("factory.pub");
        std::fs::write(
            &keys,
            format!(
                "# vendor factory keys\n\n{}\n",
                factory.public_key().to_hex()
            ),
        )
        .unwrap();
        let good = contents(root_text(&SecretKey::from_bytes(&[6; 32])));
        let bundle = d.path().join("bundle.json");
        let dir = d.path().join("data/factory");

        // Signed by a stranger: nothing installed.
        let stranger = seal(&good, &[&SecretKey::from_bytes(&[7; 32])]);
        std::fs::write(&bundle, serde_json::to_string(&stranger).unwrap()).unwrap();
        assert!(provision(&bundle, &keys, &dir).is_err());
        assert!(!dir.exists());

        std::fs::write(
            &bundle,
            serde_json::to_string(&seal(&good, &[&factory])).unwrap(),
        )
        .unwrap();
        let (installed, identity) = provision(&bundle, &keys, &dir).unwrap();
        assert_eq!((installed, &identity), (Installed::New, &good.identity));
        let p = Provisioned::load(&dir).unwrap().unwrap();
        // The installed root is one the agent starts from.
        let root: Signed =
            serde_json::from_str(&std::fs::read_to_string(p.root_file()).unwrap()).unwrap();
        Trust::from_initial_root(&root).unwrap();
        assert_eq!(
            provision(&bundle, &keys, &dir).unwrap().0,
            Installed::Already
        );

        std::fs::write(&keys, "# nothing\n").unwrap();
        let err = provision(&bundle, &keys, &dir).unwrap_err().to_string();
        assert!(err.contains("no key"), "{err}");
        std::fs::write(&keys, "zz\n").unwrap();
        let err = provision(&bundle, &keys, &dir).unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
