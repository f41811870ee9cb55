//! The outbox keeps every record whose push returned, when the process
//! writing it is killed (SIGKILL) at a random moment: a real process, a
//! real file, several rounds on the same file.
//!
//! The test runs its own binary again as the writer (selected by an
//! environment variable), reads the ids the writer reports as pushed, kills
//! it, reopens the outbox and checks that each reported id is there.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use camera_app::outbox::{Outbox, OutboxLimits};

const CHILD: &str = "CAMERA_OUTBOX_CRASH_WRITER";
const TEST_NAME: &str = "pushes_reported_before_a_kill_are_kept";

/// The writer: push forever, report each id once `push` returned.
fn writer(path: &Path) -> ! {
    let mut o = Outbox::open(path, OutboxLimits::default()).expect("open outbox");
    let mut n = 0u64;
    loop {
        let payload = format!("{{\"type\":\"event\",\"seq\":{n}}}");
        let id = o
            .push("stores/1/cameras/door/events", payload.as_bytes(), n)
            .expect("push");
        println!("pushed {id}");
        n += 1;
    }
}

#[test]
fn pushes_reported_before_a_kill_are_kept() {
    if let Some(path) = std::env::var_os(CHILD) {
        writer(Path::new(&path));
    }
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("outbox.redb");
    let exe = std::env::current_exe().expect("test binary");
    let mut reported = Vec::new();
    // Kill after a different number of pushes each round.
    for (round, stop_after) in [37usize, 5, 120, 64, 1].into_iter().enumerate() {
        let mut child = Command::new(&exe)
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the writer");
        let stdout = child.stdout.take().expect("stdout");
        let mut seen = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("read");
            if let Some(id) = line.strip_prefix("pushed ") {
                reported.push(id.parse::<u64>().expect("id"));
                seen += 1;
                if seen == stop_after {
                    break;
                }
            }
        }
        // SIGKILL: no destructors, no flush, mid-write for all we know.
        child.kill().expect("kill");
        child.wait().expect("wait");
        let o = Outbox::open(&path, OutboxLimits::default()).expect("reopen after a kill");
        let kept: Vec<u64> = o
            .pending(usize::MAX)
            .expect("pending")
            .iter()
            .map(|e| e.id)
            .collect();
        for id in &reported {
            assert!(
                kept.contains(id),
                "round {round}: id {id} was reported pushed but is gone"
            );
        }
        // Ids keep increasing across the kills: none is reused.
        assert!(
            kept.windows(2).all(|w| w[0] < w[1]),
            "round {round}: {kept:?}"
        );
        drop(o);
    }
    assert_eq!(reported.len(), 37 + 5 + 120 + 64 + 1);
}
