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

// --- A damaged outbox -------------------------------------------------------
//
// The camera's start, as `runtime::setup` does it (open the outbox, where
// numbering continues from, the record store), after each kind of damage
// to the file: never a panic, never a damaged record handed out, numbers
// never reused, and the damage reported.

#[allow(clippy::unwrap_used)]
mod damage {
    use std::fs;
    use std::path::Path;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use camera_app::outbox::{Outbox, OutboxLimits, default_path};
    use camera_app::runtime::effects::stored_sequences;
    use camera_app::runtime::storage::RecordStore;
    use camera_app::sequence_store::SequenceStore;
    use camera_core::camera::{Output, TamperRecord};
    use camera_core::tamper::TamperKind;

    const RECORDS: u64 = 60;
    const PUBLISHED: usize = 10;

    fn record(seq: u64) -> Output {
        Output::Tamper(TamperRecord {
            kind: "tamper",
            camera: "cam-damage".into(),
            seq,
            time_us: 1_700_000_000_000_000 + seq,
            tamper: TamperKind::Moved,
            raised: true,
        })
    }

    fn payload(seq: u64) -> Vec<u8> {
        serde_json::to_vec(&record(seq)).unwrap()
    }

    /// A camera that stored RECORDS records, of which PUBLISHED were
    /// acknowledged.
    fn fill(dir: &Path) {
        let path = default_path(dir);
        let outbox = Arc::new(Mutex::new(
            Outbox::open(&path, OutboxLimits::default()).unwrap(),
        ));
        let mut store = RecordStore::new(outbox.clone(), Some(SequenceStore::open(dir)));
        for seq in 0..RECORDS {
            assert!(store.store(&record(seq), Instant::now()));
        }
        let mut o = outbox.lock().unwrap();
        let first: Vec<u64> = o.pending(PUBLISHED).unwrap().iter().map(|e| e.id).collect();
        o.ack_many(&first).unwrap();
    }

    fn xorshift(x: &mut u64) -> u8 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        (*x >> 32) as u8
    }

    fn garbage(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..len).map(|_| xorshift(&mut x)).collect()
    }

    /// Every place the bytes of a record's payload occur (live and stale
    /// copies alike).
    fn occurrences(file: &[u8], needle: &[u8]) -> Vec<usize> {
        file.windows(needle.len())
            .enumerate()
            .filter(|(_, w)| *w == needle)
            .map(|(i, _)| i)
            .collect()
    }

    type Damage = fn(&Path);

    fn kinds() -> Vec<(&'static str, Damage)> {
        vec![
            ("header zeroed (first 512 B)", |p| {
                let mut f = fs::read(p).unwrap();
                f[..512].fill(0);
                fs::write(p, f).unwrap();
            }),
            ("header garbage (first 4 KiB)", |p| {
                let mut f = fs::read(p).unwrap();
                f[..4096].copy_from_slice(&garbage(4096, 1));
                fs::write(p, f).unwrap();
            }),
            ("tail garbage (last 4 KiB)", |p| {
                let mut f = fs::read(p).unwrap();
                let n = f.len();
                f[n - 4096..].copy_from_slice(&garbage(4096, 2));
                fs::write(p, f).unwrap();
            }),
            ("last page zeroed", |p| {
                let mut f = fs::read(p).unwrap();
                let n = f.len();
                f[n - 4096..].fill(0);
                fs::write(p, f).unwrap();
            }),
            ("one record's payload changed", |p| {
                let mut f = fs::read(p).unwrap();
                let needle = b"\"seq\":33,";
                let at = occurrences(&f, needle);
                assert!(!at.is_empty(), "record 33 not found in the file");
                for i in at {
                    f[i + 6] = b'8';
                }
                fs::write(p, f).unwrap();
            }),
            ("one bit flipped mid-file", |p| {
                let mut f = fs::read(p).unwrap();
                let n = f.len();
                f[n / 2] ^= 0x10;
                fs::write(p, f).unwrap();
            }),
            ("truncated to half", |p| {
                let n = fs::metadata(p).unwrap().len();
                fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_len(n / 2)
                    .unwrap();
            }),
            ("truncated to 4 KiB", |p| {
                fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_len(4096)
                    .unwrap();
            }),
            ("zero length", |p| {
                fs::OpenOptions::new()
                    .write(true)
                    .open(p)
                    .unwrap()
                    .set_len(0)
                    .unwrap();
            }),
            ("deleted", |p| fs::remove_file(p).unwrap()),
            ("whole file garbage", |p| {
                let n = fs::metadata(p).unwrap().len() as usize;
                fs::write(p, garbage(n, 3)).unwrap();
            }),
            ("3 random pages garbage (seed 4)", |p| random_pages(p, 4)),
            ("3 random pages garbage (seed 5)", |p| random_pages(p, 5)),
            ("3 random pages zeroed (seed 6)", |p| {
                let mut f = fs::read(p).unwrap();
                let pages = f.len() / 4096;
                let mut x = 6u64;
                for _ in 0..3 {
                    let page = usize::from(xorshift(&mut x)) % pages;
                    f[page * 4096..(page + 1) * 4096].fill(0);
                }
                fs::write(p, f).unwrap();
            }),
        ]
    }

    fn random_pages(p: &Path, seed: u64) {
        let mut f = fs::read(p).unwrap();
        let pages = f.len() / 4096;
        let mut x = seed;
        for k in 0..3 {
            let page = usize::from(xorshift(&mut x)) % pages;
            f[page * 4096..(page + 1) * 4096].copy_from_slice(&garbage(4096, seed * 10 + k));
        }
        fs::write(p, f).unwrap();
    }

    /// What the camera saw when it started again.
    struct Outcome {
        handed_out: usize,
        next_seq: u64,
        report: String,
    }

    fn restart(dir: &Path) -> Outcome {
        let path = default_path(dir);
        let mut o = Outbox::open(&path, OutboxLimits::default()).expect("the outbox opens");
        let seqs = SequenceStore::open(dir).start(stored_sequences(&o).unwrap(), o.is_new());
        // Everything handed out is a record as it was stored, unpublished,
        // each once.
        let pending = o.pending(usize::MAX).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for e in &pending {
            let v: serde_json::Value = serde_json::from_slice(&e.payload)
                .unwrap_or_else(|_| panic!("non-JSON handed out: {:?}", e.payload));
            let seq = v["seq"].as_u64().expect("a seq");
            assert!(
                seq < RECORDS && seen.insert(seq),
                "seq {seq} handed out wrongly"
            );
            assert_eq!(e.payload, payload(seq), "record {seq} handed out altered");
            assert!(
                seq >= PUBLISHED as u64,
                "record {seq} was acknowledged already"
            );
        }
        // The camera goes on storing.
        o.push("tamper", &payload(seqs.next_tamper), 2_000_000_000_000_000)
            .expect("a push after the damage");
        let stats = o.stats().unwrap();
        let report = if let Some(kept) = &stats.set_aside {
            format!(
                "set aside as {}",
                Path::new(kept).file_name().unwrap().to_string_lossy()
            )
        } else if stats.damaged > 0 {
            format!("{} damaged records removed", stats.damaged)
        } else if o.is_new() {
            "new outbox".to_string()
        } else {
            "no damage seen".to_string()
        };
        Outcome {
            handed_out: pending.len(),
            next_seq: seqs.next_tamper,
            report,
        }
    }

    #[test]
    fn every_kind_of_damage_leaves_a_working_outbox_honest_records_and_numbers_that_go_on() {
        let mut failures = Vec::new();
        println!(
            "| damage | records handed out (of {}) | next seq | reported |",
            RECORDS - PUBLISHED as u64
        );
        println!("|---|---|---|---|");
        for (name, damage) in kinds() {
            let dir = tempfile::tempdir().unwrap();
            fill(dir.path());
            damage(&default_path(dir.path()));
            match std::panic::catch_unwind(|| restart(dir.path())) {
                Ok(out) => {
                    println!(
                        "| {name} | {} | {} | {} |",
                        out.handed_out, out.next_seq, out.report
                    );
                    if out.next_seq < RECORDS {
                        failures.push(format!("{name}: numbering went back to {}", out.next_seq));
                    }
                    let intact = out.handed_out == RECORDS as usize - PUBLISHED;
                    if !intact && out.report == "no damage seen" {
                        failures.push(format!("{name}: records lost without a report"));
                    }
                }
                Err(_) => {
                    println!("| {name} | PANIC | | |");
                    failures.push(format!("{name}: panicked"));
                }
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
