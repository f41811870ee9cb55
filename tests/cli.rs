//! End-to-end tests of the `camera-app` binary: real model, real files,
//! real processes.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{compare, images_dir, models_dir, parse_detections, reference_detections};

fn camera_app() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_camera-app"));
    c.env_remove(camera_app::model::MODELS_DIR_ENV)
        .env("RUST_LOG", "warn");
    c
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("start camera-app");
    eprintln!("stderr: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn stdout_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// Acceptance 2: `camera-app detect` on every image finds the reference's
/// people (and the cats stay cats), in original-image pixels.
#[test]
fn detect_matches_reference_on_every_image() {
    let reference = reference_detections();
    let mut cmd = camera_app();
    cmd.arg("detect").arg("--models-dir").arg(models_dir());
    for (name, ..) in &reference {
        cmd.arg(images_dir().join(name));
    }
    let out = run(&mut cmd);
    assert!(out.status.success(), "detect failed");
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), reference.len());
    let mut problems = Vec::new();
    for (line, (name, w, h, refs)) in lines.iter().zip(&reference) {
        assert!(
            line["image"]
                .as_str()
                .expect("image")
                .ends_with(name.as_str())
        );
        assert_eq!(line["width"], *w);
        assert_eq!(line["height"], *h);
        let got = parse_detections(&line["detections"]);
        for class in ["person", "cat"] {
            problems.extend(compare(name, class, 0.5, refs, &got));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `--score-threshold` shows what the model almost found: everything it
/// reports at the manifest's threshold, and more; out of 0..1 it is
/// refused with the flag named.
#[test]
fn detect_reports_weaker_detections_on_request() {
    let reference = reference_detections();
    let image = images_dir().join(&reference[0].0);
    let run_detect = |extra: &[&str]| {
        run(camera_app()
            .arg("detect")
            .arg("--models-dir")
            .arg(models_dir())
            .args(extra)
            .arg(&image))
    };
    let detect = |extra: &[&str]| {
        let out = run_detect(extra);
        assert!(out.status.success(), "detect {extra:?} failed");
        parse_detections(&stdout_lines(&out)[0]["detections"])
    };
    let default = detect(&[]);
    let weak = detect(&["--score-threshold", "0.1"]);
    assert!(
        weak.len() > default.len(),
        "{} at 0.1, {} at the manifest's 0.5",
        weak.len(),
        default.len()
    );
    assert!(weak.iter().any(|d| d.score < 0.5), "nothing under 0.5");
    for d in &default {
        assert!(
            weak.iter()
                .any(|w| w.class == d.class && (w.score - d.score).abs() < 1e-6),
            "{d:?} missing at 0.1"
        );
    }
    let out = run_detect(&["--nms-iou", "1.5"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--nms-iou") && err.contains("not within 0..1"),
        "{err}"
    );
}

#[test]
fn detect_names_an_unreadable_image_and_fails() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("broken.jpg");
    std::fs::write(&bad, b"\xff\xd8\xff\xe0 not really").expect("write");
    let out = run(camera_app()
        .arg("detect")
        .arg("--models-dir")
        .arg(models_dir())
        .arg(images_dir().join("coco_sample_2.jpg"))
        .arg(&bad));
    assert!(!out.status.success());
    // The good image is still reported.
    assert_eq!(stdout_lines(&out).len(), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.jpg"), "{err}");
}

/// A model file that is not the one in the manifest is refused, naming
/// both hashes.
#[test]
fn wrong_model_file_is_refused_naming_both_hashes() {
    let dir = tempfile::tempdir().expect("tmp");
    let fake = dir.path().join("fastestdet/FastestDet.onnx");
    std::fs::create_dir_all(fake.parent().expect("parent")).expect("mkdir");
    // Same size as the real file, different bytes.
    std::fs::write(&fake, vec![0u8; 998_169]).expect("write");
    let out = run(camera_app()
        .arg("detect")
        .arg("--models-dir")
        .arg(dir.path())
        .arg(images_dir().join("coco_sample_2.jpg")));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("31cb14c017fce347cb4c846ec62fdf00d76bb3beecdf4be21e7116ac67feb880"),
        "{err}"
    );
    let zeros = camera_app::model::sha256_file(&fake).expect("hash");
    assert!(err.contains(&zeros), "{err}");
}

#[test]
fn missing_model_says_how_to_fetch_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = run(camera_app()
        .arg("detect")
        .arg("--models-dir")
        .arg(dir.path())
        .arg(images_dir().join("coco_sample_2.jpg")));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("camera-app models fetch fastestdet"), "{err}");
}

#[test]
fn models_fetch_from_a_mirror_then_detect_with_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = run(camera_app()
        .args(["models", "fetch", "fastestdet", "--from"])
        .arg(models_dir())
        .env(camera_app::model::MODELS_DIR_ENV, dir.path()));
    assert!(out.status.success());
    assert!(dir.path().join("fastestdet/FastestDet.onnx").is_file());
    // The directory comes from the environment variable this time.
    let out = run(camera_app()
        .arg("detect")
        .arg(images_dir().join("coco_sample_2.jpg"))
        .env(camera_app::model::MODELS_DIR_ENV, dir.path()));
    assert!(out.status.success());
    let lines = stdout_lines(&out);
    let people = lines[0]["detections"]
        .as_array()
        .expect("detections")
        .iter()
        .filter(|d| d["class"] == "person")
        .count();
    assert_eq!(people, 3);
}

fn write_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let p = dir.join("camera.toml");
    std::fs::write(&p, body).expect("write config");
    p
}

/// Under systemd (`Type=notify`, `WatchdogSec=`): READY=1 once set up,
/// WATCHDOG=1 while frames flow, STOPPING=1 at the end, sent to the
/// socket systemd names. The test plays systemd's side of the socket.
#[test]
fn tells_systemd_it_is_ready_and_feeds_the_watchdog_while_frames_flow() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().expect("tmp");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(200)))
        .expect("timeout");
    // 3 s at 10 fps with a 0.6 s watchdog period: fed about every 0.2 s.
    let cfg = write_config(
        dir.path(),
        &format!(
            "[source]\nkind = \"synthetic\"\nwidth = 320\nheight = 240\nformat = \"nv12\"\n\
             fps = 10\nrealtime = true\nframes = 30\n\n[detector]\nmodels_dir = {:?}\n\n\
             [output]\npath = {:?}\n",
            models_dir(),
            dir.path().join("out.jsonl")
        ),
    );
    // systemd names the watchdog's process: the shell's pid, which the
    // app keeps through exec.
    // Read as systemd does, while the app runs: a datagram socket's queue
    // is short (10 by default) and a full one blocks the sender.
    let exited = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = std::thread::spawn({
        let exited = exited.clone();
        move || {
            let mut notices = Vec::new();
            let mut buf = [0u8; 256];
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => notices.push(String::from_utf8_lossy(&buf[..n]).trim().to_string()),
                    // Drained after the app exited.
                    Err(_) if exited.load(std::sync::atomic::Ordering::SeqCst) => break,
                    Err(_) => {}
                }
            }
            notices
        }
    });
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" run --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_camera-app"))
        .arg(&cfg)
        .env_remove(camera_app::model::MODELS_DIR_ENV)
        .env("RUST_LOG", "warn")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "600000");
    let out = run(&mut cmd);
    exited.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(out.status.success());
    let notices = reader.join().expect("notice reader");
    let feeds = notices.iter().filter(|n| *n == "WATCHDOG=1").count();
    assert_eq!(
        notices.first().map(String::as_str),
        Some("READY=1"),
        "{notices:?}"
    );
    assert_eq!(
        notices.last().map(String::as_str),
        Some("STOPPING=1"),
        "{notices:?}"
    );
    // About 3 s / 0.2 s = 15; at least one per watchdog period.
    assert!((5..=31).contains(&feeds), "{feeds} feeds: {notices:?}");
}

/// A corrupt or truncated JPEG frame is skipped and counted; the pipeline
/// goes on; time comes from the frames.
#[test]
fn run_skips_and_counts_broken_frames() {
    let dir = tempfile::tempdir().expect("tmp");
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).expect("mkdir");
    let good = std::fs::read(images_dir().join("coco_sample_2.jpg")).expect("image");
    std::fs::write(frames.join("0.jpg"), &good).expect("write");
    std::fs::write(frames.join("1.jpg"), &good[..good.len() / 3]).expect("write"); // truncated
    std::fs::write(frames.join("2.jpg"), b"garbage").expect("write"); // no JPEG header
    std::fs::write(frames.join("3.jpg"), &good).expect("write");
    let out_path = dir.path().join("dets.jsonl");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[source]\nkind = \"files\"\npath = {:?}\nfps = 2\nstart_us = 1000000\n\n\
             [detector]\nmodels_dir = {:?}\n\n[output]\npath = {:?}\n",
            frames,
            models_dir(),
            out_path
        ),
    );
    let out = run(camera_app().arg("run").arg("--config").arg(&cfg));
    assert!(out.status.success());
    let text = std::fs::read_to_string(&out_path).expect("output");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let seqs: Vec<u64> = lines
        .iter()
        .map(|l| l["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, vec![0, 3]);
    let times: Vec<u64> = lines
        .iter()
        .map(|l| l["timestamp_us"].as_u64().expect("time"))
        .collect();
    assert_eq!(times, vec![1_000_000, 2_500_000]);
    assert_eq!(lines[0]["detections"].as_array().expect("dets").len(), 3);
    // The summary on stderr counts one corrupt frame and one skipped file.
    let err = String::from_utf8_lossy(&out.stderr);
    let summary: serde_json::Value = err
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("summary line");
    assert_eq!(summary["processed"], 2);
    assert_eq!(summary["corrupt"], 1);
    assert_eq!(summary["source"]["skipped"], 1);
}

/// A model package as the OTA model slot holds it: the manifest and the
/// weights (real ones) in a ustar archive, in a slot file larger than it.
fn model_slot(dir: &Path, weights: &[u8]) -> std::path::PathBuf {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        (
            "fastestdet/model.toml",
            include_bytes!("../models/fastestdet/model.toml").as_slice(),
        ),
        ("fastestdet/FastestDet.onnx", weights),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).expect("append");
    }
    let mut bytes = b.into_inner().expect("tar");
    bytes.resize(bytes.len() + (1 << 20), 0x5a);
    let slot = dir.join("a.pkg");
    std::fs::write(&slot, bytes).expect("slot");
    slot
}

/// The model and its manifest come from the model slot in use (no models
/// directory at all), and the weights are still checked against the
/// package's manifest: a slot with other weights is refused by name.
#[test]
fn the_model_comes_from_the_model_slot() {
    let dir = tempfile::tempdir().expect("tmp");
    let weights = std::fs::read(models_dir().join("fastestdet/FastestDet.onnx")).expect("weights");
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).expect("mkdir");
    std::fs::copy(images_dir().join("coco_sample_2.jpg"), frames.join("0.jpg")).expect("copy");
    let out_path = dir.path().join("dets.jsonl");
    let slot = model_slot(dir.path(), &weights);
    let cfg = write_config(
        dir.path(),
        &format!(
            "[source]\nkind = \"files\"\npath = {frames:?}\nfps = 2\n\n\
             [detector]\npackage = {slot:?}\n\n[output]\npath = {out_path:?}\n"
        ),
    );
    let mut cmd = camera_app();
    cmd.arg("run")
        .arg("--config")
        .arg(&cfg)
        .env_remove(camera_app::model::MODELS_DIR_ENV)
        .env("HOME", dir.path());
    let out = run(&mut cmd);
    assert!(out.status.success());
    let text = std::fs::read_to_string(&out_path).expect("output");
    let line: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("a line")).expect("json");
    assert_eq!(
        line["detections"].as_array().expect("dets").len(),
        3,
        "{line}"
    );

    // Other weights than the package's manifest pins.
    let mut other = weights.clone();
    other[1000] ^= 1;
    model_slot(dir.path(), &other);
    let out = run(&mut cmd);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("FastestDet.onnx") && err.contains("sha256"),
        "{err}"
    );
}

#[test]
fn bad_config_is_refused_with_every_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = write_config(
        dir.path(),
        "[source]\nkind = \"synthetic\"\nfps = 0\n\n[detector]\nnms_iou = 2.0\nclasses = [\"ghost\"]\n",
    );
    let out = run(camera_app().arg("run").arg("--config").arg(&cfg));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for part in ["source.fps", "detector.nms_iou", "detector.classes[0]"] {
        assert!(err.contains(part), "{part} missing in {err}");
    }
}

#[test]
fn unknown_pixel_format_is_refused_at_start_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = write_config(
        dir.path(),
        "[source]\nkind = \"v4l2\"\ndevice = \"/dev/video0\"\nformat = \"rgb565\"\nwidth = 640\nheight = 480\nfps = 10\n",
    );
    let out = run(camera_app().arg("run").arg("--config").arg(&cfg));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rgb565"), "{err}");
}

#[test]
fn run_on_synthetic_frames_writes_one_line_per_frame() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = write_config(
        dir.path(),
        &format!(
            "[source]\nkind = \"synthetic\"\nwidth = 320\nheight = 240\nformat = \"yuyv\"\nframes = 4\n\n\
             [detector]\nmodels_dir = {:?}\n",
            models_dir()
        ),
    );
    let out = run(camera_app().arg("run").arg("--config").arg(&cfg));
    assert!(out.status.success());
    let lines = stdout_lines(&out);
    assert_eq!(lines.len(), 4);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["seq"], i as u64);
        assert_eq!(l["width"], 320);
        // A gradient with a red square holds no person.
        assert_eq!(l["detections"].as_array().expect("dets").len(), 0);
    }
}

#[test]
fn demo_shows_what_it_sees() {
    let dir = tempfile::tempdir().expect("tmp");
    let out_dir = dir.path().join("seen");
    let out = run(camera_app()
        .args(["demo", "--offline"])
        .arg("--models-dir")
        .arg(models_dir())
        .arg("--images")
        .arg(images_dir())
        .arg("--out")
        .arg(&out_dir));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    // 7 photos, 13 people in the reference.
    assert!(
        text.contains("7 frames, 0 skipped, 13 people seen"),
        "{text}"
    );
    let written = std::fs::read_dir(&out_dir).expect("out dir").count();
    assert_eq!(written, 7);
}

/// The README's first command: a shop door scene drawn from the shared
/// photos, through the whole camera against an embedded broker; bins,
/// events, health and the birth message arrive at a consumer, and the
/// camera's counts equal the scene's truth.
#[test]
fn the_demo_counts_its_scene_right_through_a_broker() {
    let out = run(camera_app()
        .arg("demo")
        .arg("--models-dir")
        .arg(models_dir())
        .args(["--health-interval", "2"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "the camera publishes under stores/demo-store/cameras/demo-cam/",
        "status: online",
        "health: ",
        "crossed the door line going in",
        "crossed the door line going out",
        "is lingering in the corner zone",
        "% of the scene played",
        "bin 00:00.0–01:00.0: in ",
        "status: offline",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    let table: Vec<&str> = text.lines().rev().take(5).collect();
    assert_eq!(
        table[0], "the camera's counts match the scene's truth",
        "{text}"
    );
    for row in ["in", "out", "passers-by"] {
        let line = table
            .iter()
            .find(|l| {
                l.trim_start().starts_with(row) && l.trim_start()[row.len()..].starts_with(' ')
            })
            .unwrap_or_else(|| panic!("no {row} row in {table:?}"));
        let n: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert_eq!(n.len(), 2, "{line}");
        assert_eq!(n[0], n[1], "{line}");
        assert!(n[1] > 0, "the scene has {row}: {line}");
    }
}

/// `run --source DIR --analytics FILE --output FILE`: a generated scene of
/// one person walking in becomes one bin with one entry and a crossing
/// event, all carrying the camera id and the config version.
#[test]
fn run_with_analytics_writes_bins_and_events() {
    let dir = tempfile::tempdir().expect("tmp");
    let scenario = scenegen::Scenario::load(&scenegen::scenarios_dir().join("single_in.toml"))
        .expect("scenario");
    let scene = dir.path().join("scene");
    scenegen::render(&scenario, &images_dir(), &scene).expect("render");
    let output = dir.path().join("bins.jsonl");
    let out = run(camera_app()
        .arg("run")
        .arg("--source")
        .arg(scene.join("frames"))
        .args(["--fps", "10", "--camera-id", "shop-7-door"])
        .arg("--analytics")
        .arg(scene.join("analytics.toml"))
        .arg("--output")
        .arg(&output)
        .arg("--models-dir")
        .arg(models_dir()));
    assert!(out.status.success());
    let text = std::fs::read_to_string(&output).expect("output");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let bins: Vec<_> = records.iter().filter(|r| r["type"] == "bin").collect();
    assert_eq!(bins.len(), 1, "{text}");
    let bin = bins[0];
    assert_eq!(bin["camera"], "shop-7-door");
    assert_eq!(bin["seq"], 0);
    assert_eq!(bin["start"], "2026-01-01T00:00:00.000000Z");
    assert_eq!(bin["entries"], 1);
    assert_eq!(bin["exits"], 0);
    let crossings: Vec<_> = records
        .iter()
        .filter(|r| r["event"] == "crossing")
        .collect();
    assert_eq!(crossings.len(), 1, "{text}");
    assert_eq!(crossings[0]["direction"], "in");
    assert_eq!(crossings[0]["line"], "door");
    assert_eq!(crossings[0]["class"], "person");
    assert!(
        records
            .iter()
            .all(|r| r["config_version"] == bin["config_version"])
    );
}

#[test]
fn a_bad_analytics_config_is_refused_with_every_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("analytics.toml");
    std::fs::write(
        &path,
        "version = 1\nbin_minutes = 7\n[[lines]]\nname = \"door\"\npoints = [[0.1, 0.5], [0.1, 0.5]]\nin_side = \"left\"\n",
    )
    .expect("write");
    let out = run(camera_app()
        .args(["run", "--analytics"])
        .arg(&path)
        .arg("--models-dir")
        .arg(models_dir()));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for part in ["bin_minutes", "lines[0].points", "analytics.toml"] {
        assert!(err.contains(part), "{part} missing in {err}");
    }
}

/// `camera-app run` over a rendered scene with its analytics, storing into
/// `outbox`.
fn run_scene_with_outbox(scene: &Path, outbox: &Path) -> Output {
    run(camera_app()
        .arg("run")
        .arg("--source")
        .arg(scene.join("frames"))
        .arg("--analytics")
        .arg(scene.join("analytics.toml"))
        .arg("--outbox")
        .arg(outbox)
        .arg("--models-dir")
        .arg(models_dir()))
}

/// With `--outbox`, bins and events are stored durably as they are written,
/// and a second run numbers its bins and events after the first run's.
#[test]
fn run_with_an_outbox_continues_sequence_numbers_across_runs() {
    let dir = tempfile::tempdir().expect("tmp");
    let scenario = scenegen::Scenario::load(&scenegen::scenarios_dir().join("single_in.toml"))
        .expect("scenario");
    let scene = dir.path().join("scene");
    scenegen::render(&scenario, &images_dir(), &scene).expect("render");
    let outbox = dir.path().join("outbox.redb");
    let run_once = || {
        let out = run_scene_with_outbox(&scene, &outbox);
        assert!(out.status.success());
        stdout_lines(&out)
    };
    let first = run_once();
    let second = run_once();
    let seqs = |lines: &[serde_json::Value], kind: &str| -> Vec<u64> {
        lines
            .iter()
            .filter(|r| r["type"] == kind)
            .map(|r| r["seq"].as_u64().expect("seq"))
            .collect()
    };
    let (b1, e1) = (seqs(&first, "bin"), seqs(&first, "event"));
    let (b2, e2) = (seqs(&second, "bin"), seqs(&second, "event"));
    assert_eq!(b1, [0]);
    assert_eq!(b2, [1], "the second run's bin follows the first's");
    assert!(!e1.is_empty());
    assert_eq!(e2[0], e1[e1.len() - 1] + 1, "{e1:?} then {e2:?}");
    // Everything written is in the outbox, in order.
    let o = camera_app::outbox::Outbox::open(&outbox, camera_app::outbox::OutboxLimits::default())
        .expect("outbox");
    let stored: Vec<serde_json::Value> = o
        .pending(usize::MAX)
        .expect("pending")
        .iter()
        .map(|e| serde_json::from_slice(&e.payload).expect("JSON payload"))
        .collect();
    let written: Vec<serde_json::Value> = first.into_iter().chain(second).collect();
    assert_eq!(stored, written);
}

/// The outbox lost or damaged between two runs: the second run never
/// numbers a bin or event as the first did (it continues past the
/// numbers reserved ahead, `sequence_store`), a damaged file is set aside,
/// and `camera-app outbox-check` (the check the release build runs in a
/// child process) tells a whole file from a damaged one.
#[test]
fn a_lost_or_damaged_outbox_never_sends_numbering_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let scenario = scenegen::Scenario::load(&scenegen::scenarios_dir().join("single_in.toml"))
        .expect("scenario");
    let scene = dir.path().join("scene");
    scenegen::render(&scenario, &images_dir(), &scene).expect("render");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let outbox = data.join("outbox.redb");
    let run_once = || {
        let out = run_scene_with_outbox(&scene, &outbox);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            stdout_lines(&out),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let events = |lines: &[serde_json::Value]| -> Vec<u64> {
        lines
            .iter()
            .filter(|r| r["type"] == "event")
            .map(|r| r["seq"].as_u64().expect("seq"))
            .collect()
    };
    let check = |path: &Path| run(camera_app().arg("outbox-check").arg(path));
    let (first, _) = run_once();
    assert!(
        check(&outbox).status.success(),
        "a whole outbox passes the check"
    );
    let e1 = events(&first);
    assert!(!e1.is_empty());
    // Deleted.
    std::fs::remove_file(&outbox).expect("rm");
    let (second, _) = run_once();
    let e2 = events(&second);
    assert!(e2[0] > e1[e1.len() - 1], "{e1:?} then {e2:?}");
    // Damaged: the header overwritten.
    let mut bytes = std::fs::read(&outbox).expect("read");
    bytes[..4096].fill(0x5a);
    std::fs::write(&outbox, bytes).expect("write");
    let out = check(&outbox);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("outbox.redb"), "{err}");
    let (third, log) = run_once();
    let e3 = events(&third);
    assert!(e3[0] > e2[e2.len() - 1], "{e2:?} then {e3:?}");
    assert!(log.contains("set aside"), "{log}");
    let kept: Vec<_> = std::fs::read_dir(&data)
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("outbox.redb.damaged-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "the damaged file is kept for support");
}

/// An analytics configuration with one shelf, `left`, watched over the
/// synthetic pattern (nobody in view), quick to reference.
const SHELF_ANALYTICS: &str = r#"version = 3
bin_minutes = 1

[shelf_check]
clear_s = 0.2
reference_frames = 2

[[shelves]]
name = "left"
polygon = [[0.05, 0.1], [0.45, 0.1], [0.45, 0.6], [0.05, 0.6]]
grid = [2, 3]
front = [[0.05, 0.7], [0.45, 0.7], [0.45, 0.95], [0.05, 0.95]]
"#;

fn shelf_camera_config(dir: &Path, source: &str, link: &str) -> std::path::PathBuf {
    let analytics = dir.join("analytics.toml");
    std::fs::write(&analytics, SHELF_ANALYTICS).expect("write analytics");
    write_config(
        dir,
        &format!(
            "analytics = {analytics:?}\n\n[source]\nkind = \"synthetic\"\nwidth = 320\nheight = 240\n\
             format = \"yuyv\"\nfps = 10\n{source}\n\n[detector]\nmodels_dir = {:?}\n\n\
             [output]\npath = {:?}\noutbox = {:?}\n\n{link}",
            models_dir(),
            dir.join("records.jsonl"),
            dir.join("outbox.redb"),
        ),
    )
}

/// Issue 7 over MQTT: a malformed request and an unknown shelf are refused
/// at once with the reason; a valid one is accepted, then taken, and the
/// reference is on flash; health stops naming the shelf. A second run
/// takes the stored reference back.
#[test]
fn shelf_reference_over_mqtt_is_taken_and_stored() {
    use common::mqtt::{Subscriber, broker, unique};
    use std::time::Duration;
    let dir = tempfile::tempdir().expect("tmp");
    let addr = broker();
    let camera = unique("shelfcam");
    let prefix = format!("stores/test/cameras/{camera}");
    let cfg = shelf_camera_config(
        dir.path(),
        "realtime = true\nframes = 300",
        &format!(
            "[camera]\nid = {camera:?}\n\n[link]\nbroker = \"127.0.0.1\"\nport = {}\nstore = \"test\"\n\
             health_interval_s = 1\ndrain_s = 1\nreconnect_min_ms = 50\nreconnect_max_s = 1\n",
            addr.port()
        ),
    );
    let sub = Subscriber::start(&format!("{prefix}/#"));
    let child = camera_app()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start camera-app");
    let status = format!("{prefix}/status");
    let results = format!("{prefix}/shelves/reference/result");
    let request = format!("{prefix}/shelves/reference/request");
    sub.wait_for("the birth message", Duration::from_secs(20), |m| {
        m.iter().any(|m| m.topic == status)
    });
    // `wait_for` holds the subscriber's lock: look only at what it hands over.
    let find = |seen: &[common::mqtt::Message], id: &str, state: &str| {
        seen.iter()
            .filter(|m| m.topic == results)
            .map(common::mqtt::Message::json)
            .find(|r| r["id"] == id && r["state"] == state)
    };
    let result_with = |id: &str, state: &str| find(&sub.messages(), id, state);
    let wait_result = |id: &str, state: &str, limit: u64| {
        sub.wait_for(
            &format!("{id} {state}"),
            Duration::from_secs(limit),
            |seen| find(seen, id, state).is_some(),
        );
        result_with(id, state).expect("seen")
    };
    sub.publish(&request, br#"{"id": "bad", "shelf": 3}"#.to_vec());
    sub.publish(&request, br#"{"id": "unknown", "shelf": "nope"}"#.to_vec());
    sub.publish(&request, br#"{"id": "r1", "shelf": "left"}"#.to_vec());

    let bad = wait_result("bad", "failed", 10);
    assert_eq!(bad["ok"], false);
    let reason = bad["reason"].as_str().expect("reason");
    assert!(
        reason.contains("malformed request: shelf: invalid type"),
        "{reason}"
    );
    let unknown = wait_result("unknown", "failed", 10);
    assert_eq!(
        unknown["reason"], r#"no shelf named "nope" (configured: left)"#,
        "{unknown}"
    );
    assert_eq!(unknown["config_version"], 3);
    let accepted = wait_result("r1", "accepted", 10);
    assert_eq!(accepted["ok"], true);
    assert_eq!(accepted["shelves"], serde_json::json!(["left"]));
    let taken = wait_result("r1", "taken", 10);
    assert_eq!(taken["ok"], true, "{taken}");
    assert_eq!(taken["shelves"], serde_json::json!(["left"]));
    assert_eq!(taken["config_version"], 3);
    assert!(result_with("r1", "failed").is_none());
    assert!(sub.on(&results).iter().all(|m| !m.retain));
    // Stored before the result went out.
    let stored = dir.path().join("shelf-references.bin");
    assert!(stored.is_file(), "{} missing", stored.display());
    let health = format!("{prefix}/health");
    sub.wait_for(
        "health without shelves lacking a reference",
        Duration::from_secs(5),
        |m| {
            m.iter()
                .filter(|m| m.topic == health)
                .any(|m| m.json()["shelves_without_reference"] == serde_json::json!([]))
        },
    );
    let first_health = sub.on(&health)[0].json();
    assert_eq!(
        first_health["shelves_without_reference"],
        serde_json::json!(["left"])
    );
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let out = child.wait_with_output().expect("camera-app exits");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");

    // The next start uses the stored reference: nothing to take.
    let cfg = shelf_camera_config(dir.path(), "frames = 3", "");
    let out = run(camera_app()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .env("RUST_LOG", "camera_app=info"));
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("shelf references restored restored=1 refused=0"),
        "{err}"
    );
}

/// `run --shelf-reference all` without a link: taken at the start and
/// stored; a corrupt stored file is logged and replaced, never fatal.
#[test]
fn shelf_reference_from_the_command_line_replaces_a_corrupt_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let stored = dir.path().join("shelf-references.bin");
    std::fs::write(&stored, b"not references").expect("write");
    let cfg = shelf_camera_config(dir.path(), "frames = 10", "");
    let out = run(camera_app()
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .args(["--shelf-reference", "all"])
        .env("RUST_LOG", "camera_app=info"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("ignoring the stored shelf references"),
        "{err}"
    );
    assert!(err.contains("not a shelf reference file"), "{err}");
    assert!(err.contains("state=Taken"), "{err}");
    let refs = camera_app::reference_store::ReferenceStore::new(dir.path())
        .load()
        .expect("a valid file now");
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].name(), "left");
    assert_eq!(refs[0].version(), 3);
}
