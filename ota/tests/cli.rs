//! The camera's `ota` binary: `ota select` with its layout from a board
//! profile. The vendor's workflow, which ends with `ota install` and `ota
//! select`, is in ota-vendor/tests/cli.rs.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "common/agent.rs"]
mod agent;
use agent::agent_toml;

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

/// `ota select` records, beside the slot, the release version the signed
/// manifest gave it (install writes it into the environment), so that
/// camera-app reports what runs; a factory slot has none. `--booted`
/// records the bootloader's choice without counting a boot.
#[test]
fn select_records_the_version_of_the_slot_it_chose() {
    use ota::boot::{self, Slot};
    use ota::manifest::Component;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let env = [d.join("env-a"), d.join("env-b")];
    for e in &env {
        std::fs::write(e, vec![0u8; 8192]).unwrap();
    }
    let slots = [d.join("app-a"), d.join("app-b")];
    std::fs::write(
        d.join("agent.toml"),
        format!(
            "{}rootfs = [\"{}\", \"{}\"]\n",
            agent_toml(d, &slots, &env),
            d.join("root-a").display(),
            d.join("root-b").display()
        ),
    )
    .unwrap();
    let store = ota::slots::EnvStore {
        copies: env
            .clone()
            .map(|path| ota::slots::EnvLocation { path, offset: 0 }),
        size: 8192,
    };
    let mut vars = ota::env::Vars::new();
    vars.insert(boot::var(Component::Rootfs, "active"), "B".into());
    vars = boot::set_version(&vars, Component::Rootfs, Slot::B, Some("1.5.0"));
    vars = boot::set_pending(&vars, Component::App, Slot::B);
    vars = boot::set_version(&vars, Component::App, Slot::B, Some("1.5.1"));
    store.write(None, &vars).unwrap();
    let run = d.join("run");
    let read = |name: &str| std::fs::read_to_string(run.join(name)).ok();

    // The app's trial: slot B, its version recorded, one try spent.
    let out = ok(
        d,
        &["select", "--config", "agent.toml", "--component", "app"],
    );
    assert_eq!(PathBuf::from(out.trim()), slots[1]);
    assert_eq!(read("app.slot").as_deref(), Some("B\n"));
    assert_eq!(read("app.version").as_deref(), Some("1.5.1\n"));
    let after = store.read_vars().unwrap().unwrap().vars;
    assert_eq!(after[&boot::var(Component::App, "tries")], "2");

    // Tries spent: back to the factory slot A, which has no version.
    ok(
        d,
        &["select", "--config", "agent.toml", "--component", "app"],
    );
    ok(
        d,
        &["select", "--config", "agent.toml", "--component", "app"],
    );
    let out = ok(
        d,
        &["select", "--config", "agent.toml", "--component", "app"],
    );
    assert_eq!(PathBuf::from(out.trim()), slots[0]);
    assert_eq!(read("app.slot").as_deref(), Some("A\n"));
    assert_eq!(read("app.version"), None);

    // The rootfs the bootloader chose (this host's command line names
    // none: the active one), recorded without touching the environment.
    let before = store.read_vars().unwrap().unwrap().vars;
    let out = ok(
        d,
        &[
            "select",
            "--config",
            "agent.toml",
            "--component",
            "rootfs",
            "--booted",
        ],
    );
    assert_eq!(PathBuf::from(out.trim()), d.join("root-b"));
    assert_eq!(read("rootfs.version").as_deref(), Some("1.5.0\n"));
    assert_eq!(store.read_vars().unwrap().unwrap().vars, before);
}

/// `ota unit-stopped` (systemd's ExecStopPost= of camera-app and the
/// agent): a failure during a trial reboots, so that the boot count ends a
/// trial whose slot hangs; a clean stop, or any stop on committed slots,
/// does not.
#[test]
fn a_service_failing_during_a_trial_reboots_the_camera() {
    use ota::boot::{self, Slot};
    use ota::manifest::Component;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let env = [d.join("env-a"), d.join("env-b")];
    for e in &env {
        std::fs::write(e, vec![0u8; 8192]).unwrap();
    }
    let slots = [d.join("app-a"), d.join("app-b")];
    std::fs::write(d.join("agent.toml"), agent_toml(d, &slots, &env)).unwrap();
    let store = ota::slots::EnvStore {
        copies: env
            .clone()
            .map(|path| ota::slots::EnvLocation { path, offset: 0 }),
        size: 8192,
    };
    let committed = boot::commit(&ota::env::Vars::new(), Component::App, Slot::A, 1);
    let trial = boot::set_pending(&committed, Component::App, Slot::B);
    std::fs::create_dir_all(d.join("run")).unwrap();
    let marker = d.join("rebooted");
    let stopped = |result: &str| {
        let _ = std::fs::remove_file(&marker);
        let o = ota(
            d,
            &[
                "unit-stopped",
                "--config",
                "agent.toml",
                "--unit",
                "camera-app.service",
                "--result",
                result,
                "--reboot-command",
                "touch",
                "rebooted",
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            marker.exists(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };

    // The app's new slot B on trial, and B is what ota select chose.
    store.write(None, &trial).unwrap();
    std::fs::write(d.join("run/app.slot"), "B\n").unwrap();
    let (rebooted, log) = stopped("watchdog");
    assert!(rebooted, "{log}");
    assert!(
        log.contains("camera-app.service failed (watchdog) during the trial of app slot B"),
        "{log}"
    );
    assert!(stopped("exit-code").0);
    assert!(!stopped("success").0, "a clean stop is not a failure");

    // The same slot once committed: systemd restarts camera-app, no reboot.
    let cur = store.read_vars().unwrap();
    store
        .write(
            cur.as_ref(),
            &boot::commit(&trial, Component::App, Slot::B, 1),
        )
        .unwrap();
    let (rebooted, log) = stopped("watchdog");
    assert!(!rebooted, "{log}");

    // The result may come from systemd's environment, as in the unit.
    let cur = store.read_vars().unwrap();
    store
        .write(
            cur.as_ref(),
            &boot::set_pending(&committed, Component::App, Slot::B),
        )
        .unwrap();
    let _ = std::fs::remove_file(&marker);
    let o = Command::new(env!("CARGO_BIN_EXE_ota"))
        .args([
            "unit-stopped",
            "--config",
            "agent.toml",
            "--unit",
            "ota-agent.service",
        ])
        .args(["--reboot-command", "touch", "rebooted"])
        .current_dir(d)
        .env("SERVICE_RESULT", "core-dump")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(marker.exists(), "{}", String::from_utf8_lossy(&o.stderr));
}
