use super::*;

fn inputs() -> HealthInputs {
    HealthInputs {
        time_us: 1_718_000_010_000_000,
        started_us: 1_718_000_000_000_000,
        config_version: Some(3),
        frames_skipped: 0,
        frames_unclocked: 0,
        source_errors: 0,
        frames_captured: 100,
        frames_processed: 93,
        frames_corrupt: 3,
        frames_failed: 4,
        tracks_active: 2,
        outbox_depth: 12,
        outbox_oldest_us: Some(1_718_000_005_500_000),
        outbox_evictions: 1,
    }
}

#[test]
fn the_report_is_assembled_from_plain_inputs() {
    let mut lat = LatencyWindow::new(64);
    for ms in [40u64, 42, 41, 90, 43] {
        lat.record_us(ms * 1000);
    }
    let system = SystemSnapshot {
        cpu_temp_c: Some(61.5),
        mem_total_bytes: Some(512 << 20),
        mem_available_bytes: Some(200 << 20),
        process_rss_bytes: Some(40 << 20),
        uptime_s: Some(12_345.5),
        clock: ClockSync::Unsynced {
            est_error_us: 16_000_000,
            max_error_us: 16_000_000,
        },
    };
    let tamper = TamperStatus {
        enabled: true,
        covered: true,
        ..TamperStatus::default()
    };
    let r = HealthReport::build(&inputs(), &lat, &system, &tamper, &Releases::default());
    assert_eq!(r.frames_dropped, 7);
    assert_eq!(r.app_uptime_s, 10.0);
    assert_eq!(r.outbox_oldest_age_s, Some(4.5));
    assert_eq!(r.inference_ms_p50, Some(42.0));
    assert_eq!(r.inference_ms_p95, Some(90.0));
    assert_eq!(r.inference_samples, 5);
    assert_eq!(r.firmware_version, env!("CARGO_PKG_VERSION"));

    let json: serde_json::Value =
        serde_json::from_slice(&r.to_json().expect("json")).expect("parse");
    // The documented shape: every key, with units in the names.
    let keys: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "schema",
        "time_us",
        "firmware_version",
        "releases",
        "config_version",
        "app_uptime_s",
        "frames_captured",
        "frames_processed",
        "frames_dropped",
        "frames_corrupt",
        "frames_failed",
        "frames_skipped",
        "frames_unclocked",
        "source_errors",
        "inference_ms_p50",
        "inference_ms_p95",
        "inference_samples",
        "tracks_active",
        "outbox_depth",
        "outbox_oldest_age_s",
        "outbox_evictions",
        "cpu_temp_c",
        "mem_total_bytes",
        "mem_available_bytes",
        "process_rss_bytes",
        "uptime_s",
        "clock",
        "tamper",
    ];
    let mut got = keys.clone();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(json["schema"], 1);
    assert_eq!(json["cpu_temp_c"], 61.5);
    assert_eq!(json["clock"]["state"], "unsynced");
    assert_eq!(json["clock"]["est_error_us"], 16_000_000);
    assert_eq!(json["tamper"]["covered"], true);
    assert_eq!(json["tamper"]["moved"], false);
    assert_eq!(json["tamper"]["measures"], serde_json::Value::Null);
}

#[test]
fn unknowns_are_null_and_a_clock_step_back_is_no_huge_age() {
    let mut i = inputs();
    i.outbox_oldest_us = Some(i.time_us + 5_000_000);
    i.started_us = i.time_us + 1;
    let r = HealthReport::build(
        &i,
        &LatencyWindow::new(8),
        &SystemSnapshot::default(),
        &TamperStatus::default(),
        &Releases::default(),
    );
    assert_eq!(r.outbox_oldest_age_s, Some(0.0));
    assert_eq!(r.app_uptime_s, 0.0);
    let json = serde_json::to_value(&r).expect("json");
    for k in [
        "inference_ms_p50",
        "inference_ms_p95",
        "cpu_temp_c",
        "mem_total_bytes",
        "process_rss_bytes",
        "uptime_s",
    ] {
        assert_eq!(json[k], serde_json::Value::Null, "{k}");
    }
    assert_eq!(json["inference_samples"], 0);
    assert_eq!(json["clock"], serde_json::json!({"state": "unknown"}));
}

/// The versions `ota select` recorded for the slots in use are reported;
/// the firmware's is the rootfs release; a factory slot is null; a record
/// that is not a version is left out, never published.
#[test]
fn releases_come_from_the_records_of_the_running_slots() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("rootfs.version"), "1.5.0\n").expect("write");
    std::fs::write(dir.path().join("app.version"), "bad\u{1b}[2J\n").expect("write");
    let r = Releases::read(dir.path());
    assert_eq!(r.rootfs.as_deref(), Some("1.5.0"));
    assert_eq!(r.app, None);
    assert_eq!(r.model, None);
    let report = HealthReport::build(
        &inputs(),
        &LatencyWindow::new(8),
        &SystemSnapshot::default(),
        &TamperStatus::default(),
        &r,
    );
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["firmware_version"], "1.5.0");
    assert_eq!(
        json["releases"],
        serde_json::json!({"rootfs": "1.5.0", "app": null, "model": null})
    );
    // No records at all (a developer's machine): this build's version.
    let none = Releases::read(&dir.path().join("missing"));
    assert_eq!(none.firmware_version(), env!("CARGO_PKG_VERSION"));
}
