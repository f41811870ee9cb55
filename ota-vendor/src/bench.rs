//! `ota-vendor bench`: the install path's throughput against the plain
//! tools, on the vendor's (or a developer's) machine.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, bail};

use ota::boot;
use ota::bundle::{self, Release};
use ota::install::{self, Layout};
use ota::manifest::{Component, DEFAULT_CHUNK};
use ota::trust::{Delegation, Role, Root, SecretKey, Trust};

use crate::cli::now_s;

/// `ota-vendor bench`: verify and write a payload of `size_mib` MiB through the
/// real install path (header and signature check, chunk hashes, write,
/// sync, read-back hash, environment write), against `sha256sum` plus
/// `cp` of the same payload. Medians of five runs, warm page cache for
/// both; the install also pays its fsync and a read-back from the device.
pub fn run(size_mib: u64, dir: Option<&Path>) -> anyhow::Result<String> {
    use std::time::Instant;
    let tmp;
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => {
            tmp = tempdir_in_var_tmp()?;
            tmp.clone()
        }
    };
    std::fs::create_dir_all(&dir)?;
    let size = size_mib << 20;
    let payload = dir.join("payload.img");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&payload)?);
        let mut rng = fastrand::Rng::with_seed(7);
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..size_mib {
            rng.fill(&mut buf);
            f.write_all(&buf)?;
        }
        f.flush()?;
    }
    // A throwaway root and signer.
    let root_key = SecretKey::generate()?;
    let signer = SecretKey::generate()?;
    let now = now_s();
    let root = Root::new_v1(
        vec![root_key.public_key()],
        1,
        vec![Delegation {
            key: signer.public_key(),
            roles: vec![Role::Manifest],
            expires: now + 86_400,
            note: None,
        }],
        now + 86_400,
        now,
    )?;
    let trust = Trust::from_initial_root(&ota::trust::sign(
        root.to_payload(),
        Role::Root,
        &[&root_key],
    ))?;
    let bundle_path = dir.join("bench.bundle");
    let release = Release {
        version: "bench".into(),
        security_counter: 1,
        issued: now,
        compatible: vec!["bench".into()],
        chunk_size: DEFAULT_CHUNK,
    };
    bundle::create(
        &bundle_path,
        &release,
        &[(Component::Rootfs, &payload)],
        &[&signer],
    )?;
    let slots = [dir.join("slot-a"), dir.join("slot-b")];
    for s in &slots {
        std::fs::File::create(s)?.set_len(size)?;
    }
    let mut vars = ota::env::Vars::new();
    vars.insert(boot::var(Component::Rootfs, "active"), "A".into());
    let env = ota::slots::EnvStore::create_files(&dir, 16 * 1024, &vars)?;
    let layout = Layout {
        board: "bench".into(),
        env,
        slots: [(Component::Rootfs, slots.clone())].into_iter().collect(),
        booted: Default::default(),
    };
    let copy = dir.join("payload.copy");
    let time = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        let t = Instant::now();
        f()?;
        Ok(t.elapsed().as_secs_f64())
    };
    let run_cmd = |cmd: &str, args: &[&Path]| -> anyhow::Result<()> {
        let st = std::process::Command::new(cmd)
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .with_context(|| format!("running {cmd}"))?;
        if !st.success() {
            bail!("{cmd} failed: {st}");
        }
        Ok(())
    };
    let (mut sums, mut cps, mut installs) = (Vec::new(), Vec::new(), Vec::new());
    // One warm-up round, then five measured.
    for round in 0..6 {
        let s = time(&mut || run_cmd("sha256sum", &[&payload]))?;
        let _ = std::fs::remove_file(&copy);
        let c = time(&mut || run_cmd("cp", &[&payload, &copy]))?;
        let never = AtomicBool::new(false);
        let i = time(&mut || {
            let mut f = std::fs::File::open(&bundle_path)?;
            install::install(
                &mut f,
                &trust,
                &layout,
                now_s(),
                None,
                &mut |_, _| {},
                &never,
            )?;
            Ok(())
        })?;
        if round > 0 {
            sums.push(s);
            cps.push(c);
            installs.push(i);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (s, c, i) = (median(&mut sums), median(&mut cps), median(&mut installs));
    for f in [&payload, &copy, &bundle_path, &slots[0], &slots[1]] {
        let _ = std::fs::remove_file(f);
    }
    let mib = size_mib as f64;
    Ok(serde_json::to_string_pretty(&serde_json::json!({
        "payload_mib": size_mib,
        "runs": installs.len(),
        "sha256sum_s_median": s,
        "cp_s_median": c,
        "baseline_s": s + c,
        "install_s_median": i,
        "install_mib_per_s": mib / i,
        "speed_vs_baseline": (s + c) / i,
        "sha2_backend": sha_backend(),
        "peak_rss_mib": peak_rss_mib(),
    }))?)
}

/// The process's peak resident memory (VmHWM), when the kernel says.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn sha_backend() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sha") {
        return "sha-ni";
    }
    "software"
}

fn tempdir_in_var_tmp() -> anyhow::Result<PathBuf> {
    // /var/tmp: on disk (a tmpfs /tmp would flatter the baseline's cp).
    let base = Path::new("/var/tmp");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let d = base.join(format!("ota-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
