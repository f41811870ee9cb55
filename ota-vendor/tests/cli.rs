//! The vendor's workflow through the real binaries: keys, a 2-of-2 root,
//! a delegated signer, a signed bundle, inspect and verify, tampering,
//! revocation by a rotated root (all `ota-vendor`), and an install into
//! file-backed slots followed by `ota select` (the camera's `ota`).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use Bin::{Ota, Vendor};

#[path = "../../ota/tests/common/agent.rs"]
mod agent;
use agent::agent_toml;

/// Which binary a step runs: the vendor's tools or the camera's `ota`.
#[derive(Debug, Clone, Copy)]
enum Bin {
    Vendor,
    Ota,
}

impl Bin {
    fn path(self) -> PathBuf {
        match self {
            Vendor => PathBuf::from(env!("CARGO_BIN_EXE_ota-vendor")),
            Ota => ota_device_bin().to_path_buf(),
        }
    }
}

/// The camera's `ota` binary, for the steps that run on a camera.
///
/// An integration test only gets its own package's binaries
/// (`CARGO_BIN_EXE_*`; artifact dependencies are not stable cargo).
/// `cargo test --workspace` (the README's and CI's command) and `cargo
/// test -p ota -p ota-vendor` build `ota` for ota's own tests, beside this
/// test's executable in `target/<profile>/`. That one is used when it is
/// newer than every source it is built from (cargo's own rule for path
/// dependencies), so a stale binary from an earlier build is never
/// tested. Otherwise (`cargo test -p ota-vendor` alone, a fresh checkout,
/// an edit to ota) cargo builds it and its JSON messages say where.
/// Always asking cargo would be simpler, but under `--workspace` features
/// unify differently from a `-p ota` build, which would then build a
/// second copy of ota's dependencies (minutes on CI's two cores).
fn ota_device_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/cli-<hash> -> target/<profile>
        let profile_dir = exe.parent().and_then(Path::parent).unwrap();
        let beside = profile_dir.join("ota");
        let built = std::fs::metadata(&beside).and_then(|m| m.modified());
        match built {
            Ok(t) if t >= newest_source() => beside,
            _ => cargo_build_ota(profile_dir),
        }
    })
}

fn workspace_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// The newest modification time of what the `ota` binary is built from:
/// the `ota` package and its path dependencies, tests left out. Not the
/// workspace manifest or Cargo.lock: most of their edits leave `ota` as
/// it was, cargo then does not rebuild it, and every run would build.
fn newest_source() -> SystemTime {
    let ws = workspace_dir();
    let mut todo: Vec<PathBuf> = ["ota", "mqtt-tls", "boards"]
        .iter()
        .map(|p| ws.join(p))
        .collect();
    let mut newest = UNIX_EPOCH;
    while let Some(p) = todo.pop() {
        let m = std::fs::metadata(&p).unwrap();
        if m.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                let e = e.unwrap().path();
                if e.file_name().is_none_or(|n| n != "tests") {
                    todo.push(e);
                }
            }
        } else {
            newest = newest.max(m.modified().unwrap());
        }
    }
    newest
}

/// `cargo build -p ota --bin ota` with the cargo running these tests, in
/// the profile whose directory holds this test (`debug` is what `cargo
/// test` builds with the `test` profile).
fn cargo_build_ota(profile_dir: &Path) -> PathBuf {
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()).unwrap() {
        "debug" => "test",
        p => p,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "-p", "ota", "--bin", "ota", "--profile", profile])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(workspace_dir());
    // What cargo set for this test process (CARGO_MANIFEST_DIR, CARGO_PKG_*
    // and the like) must not reach the inner cargo: build scripts that
    // watch them (ring's does) would be rebuilt, and rebuilt back by the
    // next `cargo test`.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|p| k.starts_with(p))
            || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&&*k)
        {
            cmd.env_remove(&*k);
        }
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "building the device binary `ota` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        // The library is an artifact named `ota` too, without an executable.
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "ota")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo built no `ota` executable"))
}

fn run(bin: Bin, dir: &Path, args: &[&str]) -> Output {
    Command::new(bin.path())
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(bin: Bin, dir: &Path, args: &[&str]) -> String {
    let o = run(bin, dir, args);
    assert!(
        o.status.success(),
        "{bin:?} {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(bin: Bin, dir: &Path, args: &[&str]) -> String {
    let o = run(bin, dir, args);
    assert!(!o.status.success(), "{bin:?} {args:?} succeeded");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_random(p: &Path, len: usize, seed: u64) {
    let mut v = vec![0u8; len];
    fastrand::Rng::with_seed(seed).fill(&mut v);
    std::fs::write(p, v).unwrap();
}

#[test]
fn vendor_workflow_from_keys_to_an_installed_slot() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for k in ["root1", "root2", "signer", "announcer"] {
        let out = ok(Vendor, d, &["keygen", k]);
        assert!(out.contains("key id"), "{out}");
    }
    // A secret key file is private and never overwritten.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.join("root1.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(fails(Vendor, d, &["keygen", "root1"]).contains("must not exist"));

    ok(
        Vendor,
        d,
        &[
            "root",
            "new",
            "--key",
            "root1.pub",
            "--key",
            "root2.pub",
            "--threshold",
            "2",
            "--signer",
            "manifest=signer.pub",
            "--signer",
            "announcement=announcer.pub",
            "-o",
            "root.json",
        ],
    );
    write_random(&d.join("app.img"), 200_000, 1);
    ok(
        Vendor,
        d,
        &[
            "sign",
            "--key",
            "signer.key",
            "--version",
            "2.0.0",
            "--counter",
            "3",
            "--board",
            "rk3588",
            "--app",
            "app.img",
            "--chunk-size",
            "65536",
            "-o",
            "app.bundle",
        ],
    );
    // One root signature of the two needed.
    ok(
        Vendor,
        d,
        &["root", "sign", "root.json", "--key", "root1.key"],
    );
    let e = fails(Vendor, d, &["verify", "app.bundle", "--root", "root.json"]);
    assert!(e.contains("needs 2"), "{e}");
    ok(
        Vendor,
        d,
        &["root", "sign", "root.json", "--key", "root2.key"],
    );
    let out = ok(Vendor, d, &["verify", "app.bundle", "--root", "root.json"]);
    assert!(out.contains("OK, version 2.0.0 counter 3"), "{out}");
    let out = ok(Vendor, d, &["inspect", "app.bundle"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["manifest"]["images"][0]["component"], "app");
    assert_eq!(v["manifest"]["images"][0]["chunks"], "4 chunk hashes");

    // A back office that publishes by itself: one signed announcement of
    // that bundle, which a camera trusting root.json accepts as one.
    let out = ok(
        Vendor,
        d,
        &[
            "announce",
            "--key",
            "announcer.key",
            "--campaign",
            "spring",
            "--url",
            "http://127.0.0.1:8080/app.bundle",
            "--bundle",
            "app.bundle",
            "--seq",
            "4",
            "--percent",
            "30",
            "-o",
            "announce.json",
        ],
    );
    assert!(out.contains("campaign spring seq 4, 2.0.0"), "{out}");
    let signed: ota::trust::Signed =
        serde_json::from_str(&std::fs::read_to_string(d.join("announce.json")).unwrap()).unwrap();
    let root: ota::trust::Signed =
        serde_json::from_str(&std::fs::read_to_string(d.join("root.json")).unwrap()).unwrap();
    let trust = ota::trust::Trust::from_initial_root(&root).unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    trust
        .verify(&signed, ota::trust::Role::Announcement, now)
        .expect("the announcement verifies under the root");
    assert!(
        trust
            .verify(&signed, ota::trust::Role::Manifest, now)
            .is_err(),
        "an announcement is no manifest"
    );
    let a = ota::announce::Announcement::parse(&signed.payload).unwrap();
    let bundle_len = std::fs::metadata(d.join("app.bundle")).unwrap().len();
    assert_eq!(
        (
            a.seq,
            a.percent,
            a.version.as_str(),
            a.security_counter,
            a.size
        ),
        (4, 30, "2.0.0", 3, bundle_len)
    );
    assert_eq!(a.boards, ["rk3588"]);
    assert!(a.expires > a.issued && a.issued + 8 * 86_400 > now && !a.halted);
    // Never overwritten by accident.
    let e = fails(
        Vendor,
        d,
        &[
            "announce",
            "--key",
            "announcer.key",
            "--campaign",
            "spring",
            "--url",
            "http://x/b",
            "--bundle",
            "app.bundle",
            "-o",
            "announce.json",
        ],
    );
    assert!(e.contains("must not exist") || e.contains("exists"), "{e}");

    // A flipped byte in the payload is found.
    let mut bytes = std::fs::read(d.join("app.bundle")).unwrap();
    let n = bytes.len();
    bytes[n - 70_000] ^= 1;
    std::fs::write(d.join("tampered.bundle"), &bytes).unwrap();
    let e = fails(
        Vendor,
        d,
        &["verify", "tampered.bundle", "--root", "root.json"],
    );
    assert!(e.contains("chunk 1") && e.contains("does not match"), "{e}");

    // Board profile check at signing time.
    // The shipped profiles: a bundle for a board without one is refused.
    let boards_dir = boards::shipped_dir();
    let boards_dir = boards_dir.to_str().unwrap();
    let e = fails(
        Vendor,
        d,
        &[
            "sign",
            "--key",
            "signer.key",
            "--version",
            "2",
            "--counter",
            "3",
            "--board",
            "rk9999",
            "--boards-dir",
            boards_dir,
            "--app",
            "app.img",
            "-o",
            "x.bundle",
        ],
    );
    assert!(e.contains("rk9999 has no valid profile"), "{e}");

    // On the camera, with its `ota`: install into file-backed slots, then
    // `ota select` picks the new one.
    let slots = ["app-a", "app-b"].map(|s| d.join(s));
    for s in &slots {
        write_random(s, 1 << 20, 9);
    }
    let env = [d.join("env-a"), d.join("env-b")];
    for e in &env {
        std::fs::write(e, vec![0u8; 8192]).unwrap();
    }
    // Both copies blank: the first write initialises them.
    let cfg = agent_toml(d, &slots, &env);
    std::fs::write(d.join("agent.toml"), &cfg).unwrap();
    let e = fails(Ota, d, &["install", "app.bundle", "--config", "agent.toml"]);
    assert!(e.contains("both copies bad"), "{e}");
    let store = ota::slots::EnvStore {
        copies: env
            .clone()
            .map(|p| ota::slots::EnvLocation { path: p, offset: 0 }),
        size: 8192,
    };
    store.write(None, &ota::env::Vars::new()).unwrap();
    let out = ok(Ota, d, &["install", "app.bundle", "--config", "agent.toml"]);
    assert!(out.contains("app: slot B pending"), "{out}");
    let img = std::fs::read(d.join("app.img")).unwrap();
    assert_eq!(&std::fs::read(&slots[1]).unwrap()[..img.len()], &img[..]);
    let out = ok(
        Ota,
        d,
        &["select", "--config", "agent.toml", "--component", "app"],
    );
    assert_eq!(PathBuf::from(out.trim()), slots[1]);
    assert_eq!(store.read().unwrap().vars["ota_app_tries"], "2");
    // The choice is recorded for the agent, which cannot see it otherwise.
    assert_eq!(
        std::fs::read_to_string(d.join("run/app.slot")).unwrap(),
        "B\n"
    );

    // A rotated root revokes the signer: the same bundle is refused.
    ok(
        Vendor,
        d,
        &[
            "root",
            "next",
            "root.json",
            "--revoke",
            "signer.pub",
            "-o",
            "root2.json",
        ],
    );
    for k in ["root1.key", "root2.key"] {
        ok(Vendor, d, &["root", "sign", "root2.json", "--key", k]);
    }
    let e = fails(
        Vendor,
        d,
        &[
            "verify",
            "app.bundle",
            "--root",
            "root.json",
            "--root",
            "root2.json",
        ],
    );
    assert!(e.contains("revoked"), "{e}");
    // Only the roots after the factory one are published.
    let e = fails(
        Vendor,
        d,
        &["publish-roots", "--broker", "127.0.0.1:1", "root.json"],
    );
    assert!(e.contains("version 1"), "{e}");
}

/// A CA and a client certificate with its key, as PEM files in `d`.
fn write_pki(d: &Path, camera: &str) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    std::fs::write(d.join("ca.pem"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![camera.to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    std::fs::write(d.join(format!("{camera}.pem")), cert.pem()).unwrap();
    std::fs::write(d.join(format!("{camera}.key.pem")), key.serialize_pem()).unwrap();
}

fn provision_args<'a>(camera: &'a str, key: &'a str, cert: &'a str, pem: &'a str) -> Vec<&'a str> {
    vec![
        "provision",
        "--factory-key",
        key,
        "--camera-id",
        camera,
        "--store-id",
        "store-9",
        "--broker-host",
        "broker.store-9.example",
        "--ca",
        "ca.pem",
        "--cert",
        cert,
        "--key",
        pem,
        "--root",
        "root.json",
        "--out",
    ]
}

#[test]
fn factory_provisioning_from_the_station_to_the_camera() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for k in ["factory", "stranger", "root1", "signer"] {
        ok(Vendor, d, &["keygen", k]);
    }
    ok(
        Vendor,
        d,
        &[
            "root",
            "new",
            "--key",
            "root1.pub",
            "--signer",
            "manifest=signer.pub",
            "-o",
            "root.json",
        ],
    );
    // An unsigned root would be refused by the camera: the station says so.
    write_pki(d, "cam-1");
    let mut args = provision_args("cam-1", "factory.key", "cam-1.pem", "cam-1.key.pem");
    args.push("cam-1.bundle");
    let e = fails(Vendor, d, &args);
    assert!(e.contains("root of trust"), "{e}");
    ok(
        Vendor,
        d,
        &["root", "sign", "root.json", "--key", "root1.key"],
    );
    let out = ok(Vendor, d, &args);
    assert!(out.contains("cam-1") && out.contains("store-9"), "{out}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.join("cam-1.bundle"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the bundle holds the camera's key");

    // On the camera: a bundle sealed with another key is refused and
    // nothing is installed.
    args.pop();
    args[2] = "stranger.key";
    args.push("forged.bundle");
    ok(Vendor, d, &args);
    let camera = ["--factory-keys", "factory.pub", "--dir", "data/factory"];
    let e = fails(
        Ota,
        d,
        &[&["provision", "forged.bundle"][..], &camera].concat(),
    );
    assert!(e.contains("not signed by the vendor"), "{e}");
    assert!(!d.join("data/factory").exists());

    // The vendor's bundle installs once; again is a no-op.
    let out = ok(
        Ota,
        d,
        &[&["provision", "cam-1.bundle"][..], &camera].concat(),
    );
    assert!(
        out.contains("provisioned") && out.contains("cam-1"),
        "{out}"
    );
    let identity = std::fs::read_to_string(d.join("data/factory/identity.toml")).unwrap();
    assert!(identity.contains("camera_id = \"cam-1\""), "{identity}");
    assert_eq!(
        std::fs::read_to_string(d.join("data/factory/client.key")).unwrap(),
        std::fs::read_to_string(d.join("cam-1.key.pem")).unwrap()
    );
    let out = ok(
        Ota,
        d,
        &[&["provision", "cam-1.bundle"][..], &camera].concat(),
    );
    assert!(out.contains("already provisioned"), "{out}");

    // Another camera's bundle on a provisioned camera: refused.
    write_pki(d, "cam-2");
    let mut args = provision_args("cam-2", "factory.key", "cam-2.pem", "cam-2.key.pem");
    args.push("cam-2.bundle");
    ok(Vendor, d, &args);
    let e = fails(
        Ota,
        d,
        &[&["provision", "cam-2.bundle"][..], &camera].concat(),
    );
    assert!(e.contains("provisioned once") && e.contains("cam-1"), "{e}");
    let after = std::fs::read_to_string(d.join("data/factory/identity.toml")).unwrap();
    assert_eq!(after, identity, "the installed identity stays");
}
