//! The vendor's workflow through the real `ota` binary: keys, a 2-of-2
//! root, a delegated signer, a signed bundle, inspect and verify,
//! tampering, revocation by a rotated root, and an install into
//! file-backed slots followed by `ota select`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ota(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ota"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = ota(dir, args);
    assert!(
        o.status.success(),
        "ota {args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn fails(dir: &Path, args: &[&str]) -> String {
    let o = ota(dir, args);
    assert!(!o.status.success(), "ota {args:?} succeeded");
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
        let out = ok(d, &["keygen", k]);
        assert!(out.contains("key id"), "{out}");
    }
    // A secret key file is private and never overwritten.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.join("root1.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(fails(d, &["keygen", "root1"]).contains("must not exist"));

    ok(
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
    ok(d, &["root", "sign", "root.json", "--key", "root1.key"]);
    let e = fails(d, &["verify", "app.bundle", "--root", "root.json"]);
    assert!(e.contains("needs 2"), "{e}");
    ok(d, &["root", "sign", "root.json", "--key", "root2.key"]);
    let out = ok(d, &["verify", "app.bundle", "--root", "root.json"]);
    assert!(out.contains("OK, version 2.0.0 counter 3"), "{out}");
    let out = ok(d, &["inspect", "app.bundle"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["manifest"]["images"][0]["component"], "app");
    assert_eq!(v["manifest"]["images"][0]["chunks"], "4 chunk hashes");

    // A flipped byte in the payload is found.
    let mut bytes = std::fs::read(d.join("app.bundle")).unwrap();
    let n = bytes.len();
    bytes[n - 70_000] ^= 1;
    std::fs::write(d.join("tampered.bundle"), &bytes).unwrap();
    let e = fails(d, &["verify", "tampered.bundle", "--root", "root.json"]);
    assert!(e.contains("chunk 1") && e.contains("does not match"), "{e}");

    // Board profile check at signing time.
    // The shipped profiles: a bundle for a board without one is refused.
    let boards_dir = boards::shipped_dir();
    let boards_dir = boards_dir.to_str().unwrap();
    let e = fails(
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

    // Install into file-backed slots, then `ota select` picks the new one.
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
    let e = fails(d, &["install", "app.bundle", "--config", "agent.toml"]);
    assert!(e.contains("both copies bad"), "{e}");
    let store = ota::slots::EnvStore {
        copies: env
            .clone()
            .map(|p| ota::slots::EnvLocation { path: p, offset: 0 }),
        size: 8192,
    };
    store.write(None, &ota::env::Vars::new()).unwrap();
    let out = ok(d, &["install", "app.bundle", "--config", "agent.toml"]);
    assert!(out.contains("app: slot B pending"), "{out}");
    let img = std::fs::read(d.join("app.img")).unwrap();
    assert_eq!(&std::fs::read(&slots[1]).unwrap()[..img.len()], &img[..]);
    let out = ok(
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
        ok(d, &["root", "sign", "root2.json", "--key", k]);
    }
    let e = fails(
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
        d,
        &["publish-roots", "--broker", "127.0.0.1:1", "root.json"],
    );
    assert!(e.contains("version 1"), "{e}");
}

fn agent_toml(d: &Path, slots: &[PathBuf; 2], env: &[PathBuf; 2]) -> String {
    format!(
        r#"camera_id = "cam-1"
store_id = "s1"
state_dir = "{state}"
root_file = "{root}"
run_dir = "{run}"
version = "1.0.0"
allowed_urls = ["https://updates.example/"]

[broker]
host = "127.0.0.1"
port = 1883

[layout]
board = "rk3588"

[layout.env]
size = 8192
copies = [{{ path = "{e0}" }}, {{ path = "{e1}" }}]

[layout.slots]
app = ["{s0}", "{s1}"]
"#,
        state = d.join("state").display(),
        root = d.join("root.json").display(),
        run = d.join("run").display(),
        e0 = env[0].display(),
        e1 = env[1].display(),
        s0 = slots[0].display(),
        s1 = slots[1].display(),
    )
}

/// A profile for a board whose devices are files in `d`.
fn bench_profile(d: &Path) -> String {
    format!(
        r#"name = "bench"
description = "test bench: devices are files"
soc = "virt"
target = "aarch64-unknown-linux-gnu"
memory_budget_mib = 64

[npu]
api = "none"

[capture]
formats = ["nv12"]
width = 640
height = 480
fps = 10

[partitions]
boot = "{d}/boot"
rootfs = ["{d}/root-a", "{d}/root-b"]
data = "{d}/data"

[uboot_env]
device = "{d}/env.img"
offsets = [0x1000, 0x3000]
size = 0x2000
"#,
        d = d.display()
    )
}

#[test]
fn select_takes_the_layout_from_the_board_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir(d.join("boards")).unwrap();
    std::fs::write(d.join("boards/bench.toml"), bench_profile(d)).unwrap();
    std::fs::write(d.join("env.img"), vec![0u8; 0x5000]).unwrap();
    // The environment, at the profile's offsets, says rootfs B is active.
    let store = ota::slots::EnvStore {
        copies: [0x1000, 0x3000].map(|offset| ota::slots::EnvLocation {
            path: d.join("env.img"),
            offset,
        }),
        size: 0x2000,
    };
    let mut vars = ota::env::Vars::new();
    vars.insert(
        ota::boot::var(ota::manifest::Component::Rootfs, "active"),
        "B".into(),
    );
    store.write(None, &vars).unwrap();
    let base = agent_toml(
        d,
        &[d.join("app-a"), d.join("app-b")],
        &[d.join("x"), d.join("y")],
    );
    let (head, _) = base.split_once("[layout]").unwrap();
    let slots = format!(
        "[slots]\napp = [\"{}\", \"{}\"]\n",
        d.join("app-a").display(),
        d.join("app-b").display()
    );
    std::fs::write(d.join("agent.toml"), format!("{head}{slots}")).unwrap();
    fn select<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["select", "--config", "agent.toml", "--component", "rootfs"];
        args.extend_from_slice(extra);
        args
    }
    let out = ok(d, &select(&["--board", "bench", "--boards-dir", "boards"]));
    assert_eq!(PathBuf::from(out.trim()), d.join("root-b"));

    // The config may name the board and the directory itself.
    let cfg = format!(
        "board = \"bench\"\nboards_dir = \"{}\"\n{head}{slots}",
        d.join("boards").display()
    );
    std::fs::write(d.join("agent.toml"), cfg).unwrap();
    assert_eq!(PathBuf::from(ok(d, &select(&[])).trim()), d.join("root-b"));

    // An unknown board names the ones there are.
    let e = fails(d, &select(&["--board", "rk3588"]));
    assert!(
        e.contains("\"rk3588\" has no profile") && e.contains("known boards: bench"),
        "{e}"
    );
}
