//! Every camctl subcommand against a real broker and real camera-app
//! processes playing a generated door scene at its own pace, and the bad
//! input an installer meets, each with its message.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "../../tests/common/tls.rs"]
mod tls;

use std::io::Write as _;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Camera, STORE, broker, camctl, run, scene, text, unique};
use serde_json::Value;

const SCENE: &str = "sequential_in_out";

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// Publish one message with a plain MQTT client (what a camera would).
fn publish(topic: &str, payload: &str, retain: bool) {
    let b = broker();
    let mut o = rumqttc::MqttOptions::new(unique("pub"), b.ip().to_string(), b.port());
    o.set_keep_alive(Duration::from_secs(5));
    let (client, mut conn) = rumqttc::Client::new(o, 10);
    client
        .publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload.as_bytes())
        .unwrap();
    for ev in conn.iter() {
        if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) = ev {
            break;
        }
        ev.unwrap();
    }
    let _ = client.disconnect();
}

/// When the camera played its scene's first frame (µs since the epoch),
/// from its health reports: in real time, frame i is shown i / fps after
/// the first.
fn first_frame_us(camera: &str, fps: u32) -> u64 {
    let b = broker();
    let mut o = rumqttc::MqttOptions::new(unique("health"), b.ip().to_string(), b.port());
    o.set_keep_alive(Duration::from_secs(5));
    let (client, mut conn) = rumqttc::Client::new(o, 10);
    client
        .subscribe(
            format!("stores/{STORE}/cameras/{camera}/health"),
            rumqttc::QoS::AtMostOnce,
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for ev in conn.iter() {
        assert!(Instant::now() < deadline, "no health from {camera}");
        if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = ev {
            let v: Value = serde_json::from_slice(&p.payload).unwrap();
            let n = v["frames_captured"].as_u64().unwrap();
            if n > 0 {
                let _ = client.disconnect();
                return v["time_us"].as_u64().unwrap() - (n - 1) * 1_000_000 / u64::from(fps);
            }
        }
    }
    panic!("health subscription ended")
}

#[test]
fn cameras_config_snapshot_and_watch_against_a_running_camera() {
    let sc = scene(SCENE);
    let cam = Camera::start(&sc, &sc.analytics, true, true);
    let listed = cam.wait_until_counting(Duration::from_secs(90));
    assert_eq!(listed["config_version"], 1, "{listed}");
    // synced or unsynced, as this machine's kernel says.
    assert!(listed["clock"].is_string(), "{listed}");
    assert!(listed["firmware_version"].is_string(), "{listed}");
    // At most the scene's 10 fps (the first report averages over the
    // app's start, model loading included).
    let fps = listed["fps"].as_f64().unwrap();
    assert!(fps > 0.0 && fps <= 11.0, "a 10 fps scene: {listed}");
    // The table for people.
    let out = run(camctl().args(["cameras", "--wait", "1.5"]));
    let table = text(&out.stdout);
    assert!(table.starts_with("CAMERA"), "{table}");
    let row = table.lines().find(|l| l.starts_with(&cam.id)).unwrap();
    assert!(row.contains("online"), "{row}");

    // The configuration in force, then a new one with the next version.
    let out = run(camctl().args(["config", "get", &cam.id]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["version"], 1);
    assert_eq!(got["lines"][0]["name"], "door");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("door.toml");
    // The installer's file has no version: camctl sends the next one.
    let mut doc: toml::Table = toml::from_str(&sc.analytics).unwrap();
    assert!(doc.remove("version").is_some());
    std::fs::write(&file, toml::to_string(&doc).unwrap()).unwrap();
    let out = run(camctl().args(["config", "set", &cam.id]).arg(&file));
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}\n{}", cam.log());
    assert!(err.contains("accepted version 2 and runs it"), "{err}");
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["accepted"], true);
    assert_eq!(result["running_version"], 2);
    let out = run(camctl().args(["config", "get", &cam.id]));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["version"], 2);

    // One the camera rejects: a zone that crosses itself, with the
    // camera's reason; the running version stays.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"bin_minutes": 1, "lines": [{"name": "door", "points": [[0.15, 0.55], [0.85, 0.55]], "in_side": "left"}],
            "zones": [{"name": "till", "kind": "area", "polygon": [[0.2, 0.2], [0.6, 0.6], [0.6, 0.2], [0.2, 0.6]]}]}"#,
    )
    .unwrap();
    let out = run(camctl().args(["config", "set", &cam.id]).arg(&bad));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("rejected version 3"), "{err}");
    assert!(
        err.contains("zones[0].polygon: edges 0 and 2 cross"),
        "{err}"
    );
    let out = run(camctl().args(["config", "get", &cam.id]));
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["version"], 2, "the rejected config changed nothing");
    // The same file checked offline gives the same reason.
    let out = run(camctl().args(["config", "check"]).arg(&bad));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("zones[0].polygon: edges 0 and 2 cross"));

    // A snapshot: a JPEG of the scene's size.
    let jpeg = dir.path().join("view.jpg");
    let out = run(camctl().args(["snapshot", &cam.id, "--out"]).arg(&jpeg));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bytes = std::fs::read(&jpeg).unwrap();
    assert_eq!(&bytes[..2], [0xff, 0xd8], "a JPEG");
    let size = image_size(&bytes);
    assert_eq!(size, (sc.truth.width, sc.truth.height));

    // Watching: crossings and bins as JSON lines (a loop of the scene has
    // four crossings every 19 s; bins close every minute).
    let out = run(camctl().args(["watch", &cam.id, "--for", "21"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let crossings = records.iter().filter(|r| r["event"] == "crossing").count();
    assert!(crossings >= 3, "{records:?}");
    assert!(
        records
            .iter()
            .filter(|r| r["event"] == "crossing")
            .all(|r| r["camera"] == cam.id.as_str() && r["config_version"] == 2)
    );
}

/// The size in a JPEG's SOF0/SOF2 header.
fn image_size(jpeg: &[u8]) -> (u32, u32) {
    let mut i = 2;
    while i + 9 < jpeg.len() {
        assert_eq!(jpeg[i], 0xff, "JPEG marker at {i}");
        let marker = jpeg[i + 1];
        let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
        if (0xc0..=0xc2).contains(&marker) {
            let h = u16::from_be_bytes([jpeg[i + 5], jpeg[i + 6]]);
            let w = u16::from_be_bytes([jpeg[i + 7], jpeg[i + 8]]);
            return (u32::from(w), u32::from(h));
        }
        i += 2 + len;
    }
    panic!("no frame header in the JPEG")
}

/// A scripted installer taps each true crossing of the scene as it
/// happens, 0.4 s late, into `camctl audit` for `secs`, from the moment
/// camctl asks for taps; returns camctl's output and the number of taps.
fn audit_with_taps(
    cam: &Camera,
    truth: &scenegen::Truth,
    secs: u64,
    out_dir: &std::path::Path,
) -> std::thread::JoinHandle<(std::process::Output, usize)> {
    use std::io::BufRead as _;
    let first = first_frame_us(&cam.id, truth.fps);
    let period_us = truth.frames as u64 * 1_000_000 / u64::from(truth.fps);
    let mut child = camctl()
        .args([
            "audit",
            &cam.id,
            "--for",
            &secs.to_string(),
            "--line",
            "door",
            "--out",
        ])
        .arg(out_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let crossings: Vec<(f64, &'static str)> = truth.crossings["door"]
        .iter()
        .map(|c| {
            let word = match c.direction {
                scenegen::truth::Direction::In => "in",
                scenegen::truth::Direction::Out => "out",
            };
            (c.t, word)
        })
        .collect();
    std::thread::spawn(move || {
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut prompt = String::new();
        while !prompt.contains("type in, out or passer") {
            prompt.clear();
            assert!(
                stderr.read_line(&mut prompt).unwrap() > 0,
                "camctl ended before asking for taps"
            );
        }
        let start = now_us();
        let end = start + secs * 1_000_000;
        let drain = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
            rest
        });
        let mut taps: Vec<(u64, &'static str)> = Vec::new();
        for k in 0.. {
            let base = first + k * period_us;
            if base > end {
                break;
            }
            for &(t, word) in &crossings {
                let at = base + (t * 1e6) as u64 + 400_000;
                if at > start + 500_000 && at + 1_000_000 < end {
                    taps.push((at, word));
                }
            }
        }
        taps.sort_unstable();
        let mut stdin = child.stdin.take().unwrap();
        for &(t, word) in &taps {
            let now = now_us();
            if t > now {
                std::thread::sleep(Duration::from_micros(t - now));
            }
            writeln!(stdin, "{word}").unwrap();
        }
        drop(stdin);
        let mut out = child.wait_with_output().unwrap();
        out.stderr = format!("{prompt}{}", drain.join().unwrap()).into_bytes();
        (out, taps.len())
    })
}

#[test]
fn an_audit_in_step_with_the_scene_passes_and_a_misplaced_line_fails_with_its_misses() {
    let sc = scene(SCENE);
    let good = Camera::start(&sc, &sc.analytics, true, false);
    // The line drawn above the door, where nobody walks.
    let mut doc: toml::Table = toml::from_str(&sc.analytics).unwrap();
    doc["lines"][0]["points"] = toml::Value::try_from([[0.15, 0.12], [0.85, 0.12]]).unwrap();
    let wrong_analytics = toml::to_string(&doc).unwrap();
    let wrong = Camera::start(&sc, &wrong_analytics, true, false);
    good.wait_until_counting(Duration::from_secs(90));
    wrong.wait_until_counting(Duration::from_secs(90));
    let dir = tempfile::tempdir().unwrap();
    let a = audit_with_taps(&good, &sc.truth, 30, &dir.path().join("good"));
    let b = audit_with_taps(&wrong, &sc.truth, 30, &dir.path().join("wrong"));
    let (out, taps) = a.join().unwrap();
    let report = text(&out.stdout);
    println!("audit, line where the scene's door is ({taps} taps):\n{report}");
    assert!(taps >= 4, "{taps} taps");
    assert!(
        out.status.success(),
        "{report}\n{}\ncamera log:\n{}",
        text(&out.stderr),
        good.log()
    );
    assert!(report.contains("pass: 100.0 % accurate"), "{report}");
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("good/report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["pass"], true);
    let tapped: u64 = json["directions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["truth"].as_u64().unwrap())
        .sum();
    assert_eq!(tapped, taps as u64);
    let html = std::fs::read_to_string(dir.path().join("good/report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("class=\"verdict pass\""));
    for f in ["tally.txt", "records.jsonl"] {
        assert!(dir.path().join("good").join(f).is_file(), "{f}");
    }

    let (out, taps) = b.join().unwrap();
    let report = text(&out.stdout);
    println!("audit, line drawn where nobody walks ({taps} taps):\n{report}");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{report}\n{}",
        text(&out.stderr)
    );
    assert!(report.contains("fail: below 95 %"), "{report}");
    let missed = report
        .lines()
        .filter(|l| l.trim_start().starts_with("missed "))
        .count();
    assert_eq!(missed, taps, "every tap listed as missed:\n{report}");

    // The tally kept with the report audits the recorded events again,
    // after the fact, with the same verdict.
    let again = dir.path().join("again");
    let out = run(camctl()
        .args(["audit", "--line", "door", "--tally"])
        .arg(dir.path().join("good/tally.txt"))
        .arg("--records")
        .arg(dir.path().join("good/records.jsonl"))
        .arg("--out")
        .arg(&again));
    assert!(out.status.success(), "{}", text(&out.stdout));
    let json2: Value =
        serde_json::from_str(&std::fs::read_to_string(again.join("report.json")).unwrap()).unwrap();
    assert_eq!(json2["directions"], json["directions"]);
}

#[test]
fn a_wrong_broker_address_or_password_is_named() {
    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = run(
        std::process::Command::new(env!("CARGO_BIN_EXE_camctl")).args([
            "--broker",
            &free.to_string(),
            "cameras",
        ]),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("cannot reach the broker at {free}")),
        "{err}"
    );

    // A broker that wants a password camctl does not have.
    let users = std::collections::HashMap::from([("installer".to_string(), "s3cret".to_string())]);
    let guarded = camera_app::broker::start_with_users(0, 1 << 20, Some(users)).unwrap();
    let out = run(
        std::process::Command::new(env!("CARGO_BIN_EXE_camctl")).args([
            "--broker",
            &guarded.to_string(),
            "--username",
            "installer",
            "--password",
            "wrong",
            "cameras",
        ]),
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("--username") && err.contains("--password"),
        "{err}"
    );
    assert!(err.contains(&guarded.to_string()), "{err}");
    // With the right one, it connects (and finds no cameras there).
    let out = run(
        std::process::Command::new(env!("CARGO_BIN_EXE_camctl")).args([
            "--broker",
            &guarded.to_string(),
            "--username",
            "installer",
            "--password",
            "s3cret",
            "cameras",
            "--wait",
            "0.5",
        ]),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no cameras in store"));
}

#[test]
fn offline_unknown_and_silent_cameras_are_named() {
    let gone = unique("gone");
    publish(
        &format!("stores/{STORE}/cameras/{gone}/status"),
        &format!(r#"{{"state": "offline", "camera": "{gone}"}}"#),
        true,
    );
    let out = run(camctl().args(["snapshot", &gone, "--out", "/dev/null"]));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(&format!("camera {gone} is offline")), "{err}");

    let out = run(camctl().args(["config", "get", "no-such-camera"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("publishes no configuration state"),
        "{}",
        text(&out.stderr)
    );
    let out = run(camctl().args(["snapshot", "no-such-camera", "--out", "/dev/null"]));
    let err = text(&out.stderr);
    assert!(
        err.contains("no camera \"no-such-camera\" in store"),
        "{err}"
    );
    assert!(err.contains(&gone), "the known cameras are listed: {err}");

    // Says it is online, never answers: the snapshot times out.
    let silent = unique("silent");
    publish(
        &format!("stores/{STORE}/cameras/{silent}/status"),
        &format!(r#"{{"state": "online", "camera": "{silent}"}}"#),
        true,
    );
    let t = Instant::now();
    let out = run(camctl().args(["snapshot", &silent, "--out", "/dev/null", "--timeout", "2"]));
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("camera {silent} sent no snapshot within 2 s")),
        "{err}"
    );
    assert!(t.elapsed() >= Duration::from_secs(2));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "bin_minutes = 1\n").unwrap();
    let out = run(camctl()
        .args(["config", "set", &silent])
        .arg(&file)
        .args(["--timeout", "2"]));
    assert!(
        text(&out.stderr).contains(&format!(
            "camera {silent} did not answer configuration version 1 within 2 s"
        )),
        "{}",
        text(&out.stderr)
    );
    // Clear the retained statuses.
    publish(&format!("stores/{STORE}/cameras/{gone}/status"), "", true);
    publish(&format!("stores/{STORE}/cameras/{silent}/status"), "", true);
}

#[test]
fn a_snapshot_refused_by_the_camera_says_why() {
    let sc = scene(SCENE);
    let cam = Camera::start(&sc, &sc.analytics, true, false);
    cam.wait_until_counting(Duration::from_secs(90));
    let out = run(camctl().args(["snapshot", &cam.id, "--out", "/dev/null"]));
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("camera {} refused the snapshot", cam.id))
            && err.contains("snapshot"),
        "{err}"
    );
}

#[test]
fn bad_files_are_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let tally = dir.path().join("tally.txt");
    std::fs::write(
        &tally,
        "start 2026-12-05T10:00:00Z\nin +3\ninn +4\nend +60\n",
    )
    .unwrap();
    let records = dir.path().join("records.jsonl");
    std::fs::write(&records, "").unwrap();
    let audit_after_the_fact = || {
        let mut c = camctl();
        c.args(["audit", "--tally"])
            .arg(&tally)
            .arg("--records")
            .arg(&records)
            .arg("--out")
            .arg(dir.path().join("r"));
        c
    };
    let out = run(&mut audit_after_the_fact());
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("line 3: unknown kind \"inn\" (expected in, out, passer, start or end)"),
        "{err}"
    );
    assert!(err.contains("tally.txt"), "{err}");
    // No window: an audit after the fact needs start and end.
    std::fs::write(&tally, "in +3\n").unwrap();
    let out = run(&mut audit_after_the_fact());
    assert!(
        text(&out.stderr).contains("needs \"start"),
        "{}",
        text(&out.stderr)
    );
    // A configuration file that is neither TOML nor JSON.
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "lines = [[[").unwrap();
    let out = run(camctl().args(["config", "check"]).arg(&cfg));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not TOML or JSON"),
        "{}",
        text(&out.stderr)
    );
}

/// Through TLS with the store's CA and a client certificate, as the
/// cameras connect; a broker whose certificate another CA signed is
/// refused, naming the flags to check.
#[test]
fn tls_with_the_stores_ca_and_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = tls::Ca::new("store CA");
    let proxy = tls::TlsProxy::start(broker(), &ca.server(&["127.0.0.1", "localhost"]), Some(&ca));
    let ca_file = ca.write(dir.path(), "ca.pem");
    let (cert, key) = ca.client("installer").write(dir.path(), "installer");
    let gone = unique("tls");
    publish(
        &format!("stores/{STORE}/cameras/{gone}/status"),
        &format!(r#"{{"state": "online", "camera": "{gone}"}}"#),
        true,
    );
    let through_tls = |ca: &std::path::Path| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_camctl"));
        c.args([
            "--broker",
            &proxy.addr.to_string(),
            "--store",
            STORE,
            "--ca",
        ])
        .arg(ca)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key);
        c
    };
    let out = run(through_tls(&ca_file).args(["cameras", "--json", "--wait", "0.5"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&gone), "{}", text(&out.stdout));
    assert!(
        proxy.client_certs() >= 1,
        "the client certificate was presented"
    );

    let other = tls::Ca::new("some other CA").write(dir.path(), "other.pem");
    let out = run(through_tls(&other).arg("cameras"));
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("TLS with the broker at") && err.contains("--ca"),
        "{err}"
    );
    publish(&format!("stores/{STORE}/cameras/{gone}/status"), "", true);
}

/// The configurator listens on loopback only, and answers only requests
/// addressed to a loopback name.
#[test]
fn serve_stays_on_loopback() {
    use std::io::Read as _;
    let out = run(camctl().args(["serve", "--listen", "0.0.0.0:0"]));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("listens on loopback only"),
        "{}",
        text(&out.stderr)
    );
    let serve = common::Serve::start();
    let addr = serve.addr.clone();
    let get = |host: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET /api/cameras HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        reply
    };
    let ok = get(&addr);
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let refused = get("cameras.attacker.example");
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(
        refused.contains("answers only http://127.0.0.1"),
        "{refused}"
    );
    drop(serve);
}
