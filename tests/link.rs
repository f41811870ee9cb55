//! The MQTT link against a real broker: the embedded rumqttd by default,
//! or the broker named by `CAMERA_TEST_BROKER` (CI runs these tests again
//! against Debian's mosquitto). Faults come from a TCP proxy between the
//! camera and the broker.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use camera_app::link::LinkConfig;
use camera_app::outbox::OutboxLimits;
use common::mqtt::{FakeCamera, Fixture, Proxy, Subscriber, broker, broker_name};

/// Delivered sequence numbers, checked: in order of first arrival, and a
/// repeat always carries the same payload. Returns (distinct, duplicates).
fn check_delivery(sub: &Subscriber, topic: &str) -> (Vec<u64>, usize) {
    let mut first = Vec::new();
    let mut payloads = std::collections::HashMap::new();
    let mut dups = 0;
    for m in sub.on(topic) {
        let seq = m.json()["seq"].as_u64().unwrap();
        match payloads.get(&seq) {
            Some(p) => {
                assert_eq!(
                    p, &m.payload,
                    "seq {seq} sent twice with different payloads"
                );
                dups += 1;
            }
            None => {
                payloads.insert(seq, m.payload.clone());
                first.push(seq);
            }
        }
    }
    assert!(
        first.windows(2).all(|w| w[0] < w[1]),
        "records arrived out of order: {first:?}"
    );
    (first, dups)
}

/// Wait for the camera's birth message: its subscriptions are in place
/// once it is there (SUBSCRIBE goes first on the same connection).
fn wait_online(sub: &Subscriber, prefix: &str) {
    let status = format!("{prefix}/status");
    sub.wait_for("the camera online", Duration::from_secs(20), |m| {
        m.iter()
            .any(|m| m.topic == status && m.json()["state"] == "online")
    });
}

fn outage_s() -> u64 {
    std::env::var("LINK_TEST_OUTAGE_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
}

#[test]
fn broker_outage_and_connection_resets_lose_nothing() {
    outage_run("outage test", 600, Duration::from_secs(outage_s()), |_| {});
}

/// The same with a window of three records and a health report (QoS 0)
/// every second between them: PUBACKs must still release the right
/// records while packet ids wrap round quickly.
#[test]
fn a_small_window_with_health_in_between_loses_nothing() {
    outage_run("small window", 500, Duration::from_secs(2), |c| {
        c.inflight = 3;
        c.health_interval_s = 1;
    });
}

fn outage_run(name: &str, total: u64, outage: Duration, tune: impl FnOnce(&mut LinkConfig)) {
    let fx = Fixture::new(OutboxLimits::default());
    let proxy = Proxy::start(broker());
    let sub = Subscriber::start(&format!("{}/#", fx.prefix));
    let mut config = fx.config(proxy.addr);
    tune(&mut config);
    let link = fx.start(config, FakeCamera::default(), (1, "{}"));
    // `total` records before and after the outage, and one every 100 ms
    // while the broker is away.
    let mut next = 0u64;
    let mut push = |fx: &Fixture| {
        fx.push(next);
        next += 1;
    };
    for i in 0..total {
        push(&fx);
        if i == total / 6 || i == total * 3 / 4 {
            proxy.cut();
        }
        if i == total * 5 / 12 {
            proxy.down();
            let start = Instant::now();
            let mut ticks = 0;
            while start.elapsed() < outage {
                std::thread::sleep(Duration::from_millis(100));
                push(&fx);
                ticks += 1;
                if ticks % 10 == 0 {
                    proxy.cut();
                }
            }
            assert!(
                fx.depth() > 0,
                "records wait in the outbox while the broker is down"
            );
            proxy.up();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let total = next;
    let topic = format!("{}/bins", fx.prefix);
    sub.wait_for("every record", Duration::from_secs(60), |m| {
        let seen: std::collections::HashSet<_> = m
            .iter()
            .filter(|m| m.topic == topic)
            .map(|m| m.json()["seq"].as_u64().unwrap())
            .collect();
        seen.len() as u64 == total
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while fx.depth() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (first, dups) = check_delivery(&sub, &topic);
    assert_eq!(first, (0..total).collect::<Vec<_>>(), "lost records");
    assert_eq!(
        fx.depth(),
        0,
        "acknowledged records are removed from the outbox"
    );
    let connections = link
        .stats()
        .connections
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        connections >= 3,
        "reconnected after each cut ({connections})"
    );
    println!(
        "{name} ({}): {total} records written, {} delivered, 0 lost, {dups} duplicates, \
         {connections} connections, outage {outage:?}",
        broker_name(),
        first.len()
    );
}

#[test]
fn birth_message_is_retained_and_the_will_says_offline() {
    let fx = Fixture::new(OutboxLimits::default());
    let proxy = Proxy::start(broker());
    let sub = Subscriber::start(&format!("{}/#", fx.prefix));
    let status = format!("{}/status", fx.prefix);
    let mut cfg = fx.config(proxy.addr);
    cfg.reconnect_min_ms = 2000;
    cfg.reconnect_max_s = 5;
    let link = fx.start(cfg, FakeCamera::default(), (4, r#"{"version":4}"#));
    sub.wait_for("birth", Duration::from_secs(10), |m| {
        m.iter().any(|m| m.topic == status)
    });
    let birth = sub.on(&status)[0].json();
    assert_eq!(birth["state"], "online");
    assert_eq!(birth["firmware_version"], "test-1.2.3");
    assert_eq!(birth["config_version"], 4);
    assert_eq!(birth["camera"], fx.camera_id.as_str());
    let state = format!("{}/config/state", fx.prefix);
    sub.wait_for("config state", Duration::from_secs(10), |m| {
        m.iter().any(|m| m.topic == state)
    });
    // The camera vanishes without a DISCONNECT: the broker sends the will.
    proxy.down();
    sub.wait_for("last will", Duration::from_secs(20), |m| {
        m.iter()
            .filter(|m| m.topic == status)
            .any(|m| m.json()["state"] == "offline")
    });
    // A late subscriber sees the retained status.
    proxy.up();
    sub.wait_for("online again", Duration::from_secs(20), |m| {
        m.iter().filter(|m| m.topic == status).count() >= 3
    });
    let late = Subscriber::start(&status);
    late.wait_for("retained status", Duration::from_secs(10), |m| {
        m.iter().any(|m| m.retain && m.json()["state"] == "online")
    });
    link.stop();
    late.wait_for("graceful offline", Duration::from_secs(10), |m| {
        m.iter().any(|m| m.json()["state"] == "offline")
    });
}

#[test]
fn health_is_published_every_interval() {
    let fx = Fixture::new(OutboxLimits::default());
    let sub = Subscriber::start(&format!("{}/health", fx.prefix));
    let mut cfg = fx.config(broker());
    cfg.health_interval_s = 1;
    let _link = fx.start(cfg, FakeCamera::default(), (1, "{}"));
    sub.wait_for("three health reports", Duration::from_secs(10), |m| {
        m.len() >= 3
    });
    assert_eq!(sub.messages()[0].json()["frames_processed"], 42);
}

#[test]
fn flash_full_evicts_the_oldest_and_counts_them() {
    let fx = Fixture::new(OutboxLimits {
        max_bytes: 4096,
        max_age_us: u64::MAX / 2,
    });
    let proxy = Proxy::start(broker());
    proxy.down();
    let sub = Subscriber::start(&format!("{}/bins", fx.prefix));
    let _link = fx.start(fx.config(proxy.addr), FakeCamera::default(), (1, "{}"));
    let total = 400;
    for seq in 0..total {
        fx.push(seq);
    }
    let stats = fx.outbox.lock().unwrap().stats().unwrap();
    assert!(stats.evicted > 0 && stats.bytes <= 4096, "{stats:?}");
    assert_eq!(stats.depth + stats.evicted, total);
    proxy.up();
    sub.wait_for("the records kept", Duration::from_secs(30), |m| {
        m.len() as u64 >= stats.depth
    });
    let (first, _) = check_delivery(&sub, &format!("{}/bins", fx.prefix));
    // What arrives is exactly the newest records, in order.
    assert_eq!(first, (stats.evicted..total).collect::<Vec<_>>());
    println!(
        "flash full: {total} written, {} evicted and counted, {} delivered",
        stats.evicted,
        first.len()
    );
}

fn config_result(sub: &Subscriber, prefix: &str, n: usize) -> serde_json::Value {
    let topic = format!("{prefix}/config/result");
    sub.wait_for("config result", Duration::from_secs(20), |m| {
        m.iter().filter(|m| m.topic == topic).count() >= n
    });
    sub.on(&topic)[n - 1].json()
}

#[test]
fn config_set_rejects_bad_payloads_and_accepts_a_good_one() {
    let fx = Fixture::new(OutboxLimits::default());
    let sub = Subscriber::start(&format!("{}/#", fx.prefix));
    let camera = FakeCamera::default();
    let running = r#"{"version":5}"#;
    let _link = fx.start(fx.config(broker()), camera.clone(), (5, running));
    wait_online(&sub, &fx.prefix);
    let set = format!("{}/config/set", fx.prefix);
    let line = r#"{"name": "door", "points": [[0.1, 0.5], [0.9, 0.5]], "in_side": "left"}"#;
    let cfg = |v: u64, rest: &str| format!(r#"{{"version": {v}{rest}}}"#).into_bytes();
    let mut cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json".to_vec(), "payload"),
        (b"[1, 2]".to_vec(), "not a JSON object"),
        (b"{\"version\": 9".to_vec(), "payload"),
        (vec![0xff, 0xfe], "UTF-8"),
        (cfg(9, r#", "bin_minutes": "five""#), "bin_minutes"),
        (br#"{"version": "9"}"#.to_vec(), "version"),
        (cfg(9, r#", "colour": "red""#), "unknown field `colour`"),
        (
            cfg(
                9,
                &format!(r#", "lines": [{}]"#, line.replace("in_side", "inside")),
            ),
            "lines[0]",
        ),
        (cfg(9, r#", "bin_minutes": 7"#), "bin_minutes"),
        (
            cfg(
                9,
                &format!(r#", "lines": [{}]"#, line.replace("0.9, 0.5", "1.9, 0.5")),
            ),
            "lines[0].points",
        ),
        (
            cfg(9, &format!(r#", "lines": [{line}, {line}]"#)),
            "lines[1].name",
        ),
        (
            cfg(
                9,
                r#", "zones": [{"name": "z", "polygon": [[0.1, 0.1], [0.2, 0.2]]}]"#,
            ),
            "zones[0]",
        ),
        (
            cfg(
                9,
                r#", "zones": [{"name": "z", "polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}]"#,
            ),
            "zones[0]",
        ),
        (cfg(9, r#", "passers_by": "nowhere""#), "passers_by"),
        (
            cfg(
                9,
                &format!(r#", "lines": [{}]"#, line.replace("\"left\"", "\"up\"")),
            ),
            "in_side",
        ),
        (cfg(5, ""), "not newer than the running version 5"),
        (cfg(4, ""), "not newer than the running version 5"),
        (br#"{"bin_minutes": 1}"#.to_vec(), "missing field `version`"),
        (cfg(9, r#", "lines": 3"#), "lines"),
        (b"".to_vec(), "payload"),
    ];
    let mut big = cfg(9, "");
    big.resize(10 * 1024 * 1024, b' ');
    cases.push((big, "more than the limit"));
    assert!(cases.len() >= 20);
    for (i, (payload, why)) in cases.iter().enumerate() {
        sub.publish(&set, payload.clone());
        let r = config_result(&sub, &fx.prefix, i + 1);
        assert_eq!(r["accepted"], false, "case {i}: {r}");
        assert_eq!(r["running_version"], 5, "case {i}: {r}");
        let problems = r["problems"].to_string();
        assert!(
            problems.contains(why),
            "case {i}: expected {why:?} in {problems}"
        );
    }
    assert!(
        camera.applied.lock().unwrap().is_empty(),
        "nothing applied on a rejection"
    );
    let state = format!("{}/config/state", fx.prefix);
    assert!(
        sub.on(&state)
            .iter()
            .all(|m| m.payload == running.as_bytes())
    );
    let good = cfg(6, &format!(r#", "lines": [{line}]"#));
    sub.publish(&set, good.clone());
    let r = config_result(&sub, &fx.prefix, cases.len() + 1);
    assert_eq!(r["accepted"], true, "{r}");
    assert_eq!(r["running_version"], 6);
    assert_eq!(*camera.applied.lock().unwrap(), vec![6]);
    sub.wait_for("new state", Duration::from_secs(10), |m| {
        m.iter().any(|m| m.topic == state && m.payload == good)
    });
    // Delivered again (a redelivery after a lost PUBACK): confirmed, and
    // not applied twice.
    sub.publish(&set, good);
    let r = config_result(&sub, &fx.prefix, cases.len() + 2);
    assert_eq!(r["accepted"], true, "{r}");
    assert_eq!(*camera.applied.lock().unwrap(), vec![6]);
    println!(
        "config/set ({}): {} malformed payloads rejected with their reason, running config unchanged",
        broker_name(),
        cases.len()
    );
}

#[test]
fn snapshot_requests_are_refused_when_disabled() {
    let fx = Fixture::new(OutboxLimits::default());
    let sub = Subscriber::start(&format!("{}/#", fx.prefix));
    let camera = FakeCamera::default();
    let _link = fx.start(fx.config(broker()), camera.clone(), (1, "{}"));
    wait_online(&sub, &fx.prefix);
    sub.publish(&format!("{}/snapshot/request", fx.prefix), b"{}".to_vec());
    let topic = format!("{}/snapshot/result", fx.prefix);
    sub.wait_for("snapshot refusal", Duration::from_secs(10), |m| {
        m.iter().any(|m| m.topic == topic)
    });
    assert!(
        sub.on(&topic)[0].json()["reason"]
            .as_str()
            .unwrap()
            .contains("disabled")
    );
    assert!(
        sub.on(&format!("{}/snapshot", fx.prefix)).is_empty(),
        "no image left the camera"
    );
}
