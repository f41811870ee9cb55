#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt as _;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

use super::*;

/// Contents as the factory makes them: a CA, a client certificate signed
/// by it, the client's key.
fn contents(camera: &str, serial: &str) -> Contents {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![camera.to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    Contents {
        format: FORMAT,
        identity: Identity {
            camera_id: camera.into(),
            store_id: "store-7".into(),
            broker: Broker {
                host: "broker.store-7.example".into(),
                port: 8883,
            },
            serial: serial.into(),
        },
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ota_root: r#"{"payload": "{}", "signatures": []}"#.into(),
    }
}

#[test]
fn a_camera_is_provisioned_once_and_reads_its_identity_back() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("factory");
    assert_eq!(Provisioned::load(&dir).unwrap(), None, "never provisioned");

    let c = contents("cam-0042", "f-0001");
    assert_eq!(install(&c, &dir).unwrap(), Installed::New);
    let p = Provisioned::load(&dir).unwrap().unwrap();
    assert_eq!(p.identity, c.identity);
    let tls = p.tls();
    assert_eq!(fs::read_to_string(&tls.ca_file).unwrap(), c.ca_pem);
    let key = tls.key_file.unwrap();
    assert_eq!(fs::read_to_string(&key).unwrap(), c.key_pem);
    let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key is readable by its owner only");
    assert_eq!(fs::read_to_string(p.root_file()).unwrap(), c.ota_root);
    // No staging directory is left behind.
    let left: Vec<_> = fs::read_dir(data.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "{left:?}");

    // The same bundle again (a retried factory step) changes nothing.
    assert_eq!(install(&c, &dir).unwrap(), Installed::Already);
    // Another bundle is refused and the installed identity stays.
    let other = contents("cam-0099", "f-0002");
    let err = install(&other, &dir).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ProvisioningError::AlreadyProvisioned { .. })
            && text.contains("cam-0042")
            && text.contains("f-0002"),
        "{text}"
    );
    assert_eq!(
        Provisioned::load(&dir).unwrap().unwrap().identity,
        c.identity
    );
}

#[test]
fn bad_contents_are_refused_with_every_reason_and_nothing_written() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("factory");
    let good = contents("cam-1", "f-1");
    let mut c = good.clone();
    c.format = 2;
    c.identity.camera_id = "stores/#".into();
    c.identity.store_id = String::new();
    c.identity.broker.host = "bro ker".into();
    c.identity.broker.port = 0;
    c.ca_pem = "not pem at all".into();
    c.cert_pem = good.key_pem.clone();
    c.key_pem = format!("{}{}", good.key_pem, good.key_pem);
    c.ota_root = " ".into();
    let err = install(&c, &dir).unwrap_err();
    let ProvisioningError::Invalid { problems } = &err else {
        panic!("{err}");
    };
    for field in [
        "format",
        "identity.camera_id",
        "identity.store_id",
        "identity.broker.host",
        "identity.broker.port",
        "ca_pem: no certificate",
        "cert_pem: no certificate",
        "cert_pem: holds a private key",
        "key_pem: 2 private keys",
        "ota_root",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(field)),
            "{field} not reported: {problems:#?}"
        );
    }
    assert!(!dir.exists(), "nothing is installed from refused contents");
}

#[test]
fn a_power_cut_during_install_leaves_no_half_provisioned_camera() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("factory");
    // What a power cut mid-install leaves: a partial staging directory.
    let staging = data.path().join(".factory.partial");
    fs::create_dir(&staging).unwrap();
    fs::write(staging.join(IDENTITY_FILE), "camera_id = \"half\"").unwrap();
    assert_eq!(
        Provisioned::load(&dir).unwrap(),
        None,
        "a camera with only a staging directory is not provisioned"
    );
    let c = contents("cam-7", "f-7");
    assert_eq!(install(&c, &dir).unwrap(), Installed::New);
    assert!(!staging.exists());
    assert_eq!(
        Provisioned::load(&dir).unwrap().unwrap().identity,
        c.identity
    );
}

#[test]
fn a_damaged_directory_is_an_error_not_an_unprovisioned_camera() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("factory");
    install(&contents("cam-8", "f-8"), &dir).unwrap();
    fs::remove_file(dir.join(KEY_FILE)).unwrap();
    let err = Provisioned::load(&dir).unwrap_err().to_string();
    assert!(err.contains(KEY_FILE) && err.contains("missing"), "{err}");
    fs::write(dir.join(IDENTITY_FILE), "camera_id = 3").unwrap();
    let err = Provisioned::load(&dir).unwrap_err().to_string();
    assert!(err.contains(IDENTITY_FILE), "{err}");
}
