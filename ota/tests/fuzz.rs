//! A structure-aware mutation fuzzer for the OTA parsers, run as a normal
//! test (stable Rust, no cargo-fuzz, no coverage feedback).
//!
//! Each target starts from valid inputs built with the library (U-Boot env
//! images, a signed manifest and bundle, a signed announcement, a root and
//! a trust state), mutates them (bit flips, interesting bytes, range
//! insert/delete/duplicate, truncation, splices, and JSON-aware edits for
//! the JSON targets) and checks an oracle beyond "no panic". Inputs that
//! parse are sometimes kept, so mutations stack.
//!
//! - `OTA_FUZZ_SECS`: total seconds, split evenly over the targets
//!   (default 5, for CI). The long run:
//!   `OTA_FUZZ_SECS=600 cargo test -p ota --release --test fuzz -- --nocapture`
//! - `OTA_FUZZ_SEED`: base seed (decimal or 0x-hex) to reproduce a run.
//! - `OTA_FUZZ_TARGET`: run only the targets whose name contains this.
//!
//! A failing input is printed as hex and written under
//! `CARGO_TARGET_TMPDIR` before the test fails.
#![allow(clippy::unwrap_used)]

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use fastrand::Rng;
use ota::announce::{Announcement, Window};
use ota::bundle::{self, MAGIC, Release};
use ota::env::{self, EnvCopy, Vars};
use ota::install;
use ota::manifest::{Component, Manifest};
use ota::trust::{Delegation, Role, Root, SecretKey, Signed, Trust, sign};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const DEFAULT_SEED: u64 = 0x5EED_07A0_F022_0001;
/// Signing time of the fixtures, and "now" for verification.
const NOW: u64 = 1_795_651_200;
const DAY: u64 = 86_400;
/// Inputs kept per target (seeds included).
const CORPUS_CAP: usize = 512;

// ---------------------------------------------------------------- harness

/// What a check says about an input it did not fail: whether the parser
/// accepted it (accepted inputs may join the corpus).
type Check<'a> = dyn Fn(&[u8]) -> Result<bool, String> + 'a;
type Mutate<'a> = dyn Fn(&mut Rng, &[Vec<u8>]) -> Vec<u8> + 'a;

struct Target<'a> {
    name: &'static str,
    /// How the input bytes are laid out, for whoever reads a failure.
    format: &'static str,
    seeds: Vec<Vec<u8>>,
    mutate: Box<Mutate<'a>>,
    check: Box<Check<'a>>,
}

fn env_secs() -> f64 {
    std::env::var("OTA_FUZZ_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(5.0)
}

fn env_seed() -> u64 {
    let Ok(s) = std::env::var("OTA_FUZZ_SEED") else {
        return DEFAULT_SEED;
    };
    let s = s.trim();
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => s.replace('_', "").parse(),
    };
    parsed.unwrap_or_else(|e| panic!("OTA_FUZZ_SEED {s:?}: {e}"))
}

fn fail(t: &Target<'_>, seed: u64, n: u64, input: &[u8], why: &str) -> ! {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let file = dir.join(format!("fuzz-{}-{seed:#018x}-{n}.bin", t.name));
    let saved = std::fs::write(&file, input)
        .map(|()| file.display().to_string())
        .unwrap_or_else(|e| format!("(not saved: {e})"));
    const SHOWN: usize = 4 << 10;
    let shown = &input[..input.len().min(SHOWN)];
    eprintln!(
        "\nFUZZ FAILURE in target {} (target seed {seed:#018x}, input #{n}, {} bytes; format: {})\n\
         {why}\ninput hex{}:\n{}\nsaved to {saved}\n",
        t.name,
        input.len(),
        t.format,
        if shown.len() < input.len() {
            format!(" (first {SHOWN} bytes; the file holds all)")
        } else {
            String::new()
        },
        hex::encode(shown),
    );
    panic!(
        "fuzz target {} failed on input #{n} (seed {seed:#018x}): {why}; input saved to {saved}",
        t.name
    );
}

/// Runs one target for `budget`; returns the inputs executed and how
/// many of them the parser accepted.
fn run(t: &Target<'_>, seed: u64, budget: Duration) -> (u64, u64) {
    let mut rng = Rng::with_seed(seed);
    let mut corpus = t.seeds.clone();
    // The seeds themselves must pass.
    for (i, s) in t.seeds.iter().enumerate() {
        match panic::catch_unwind(AssertUnwindSafe(|| (t.check)(s))) {
            Ok(Ok(_)) => {}
            Ok(Err(why)) => fail(t, seed, i as u64, s, &format!("seed input: {why}")),
            Err(p) => fail(
                t,
                seed,
                i as u64,
                s,
                &format!("seed panicked: {}", msg(&*p)),
            ),
        }
    }
    let start = Instant::now();
    let (mut n, mut ok) = (0u64, 0u64);
    while start.elapsed() < budget {
        let input = (t.mutate)(&mut rng, &corpus);
        n += 1;
        match panic::catch_unwind(AssertUnwindSafe(|| (t.check)(&input))) {
            Ok(Ok(accepted)) => {
                ok += u64::from(accepted);
                // Keep some accepted mutants so that mutations stack.
                if accepted && rng.u8(..8) == 0 && !corpus.contains(&input) {
                    if corpus.len() < CORPUS_CAP {
                        corpus.push(input);
                    } else {
                        let i = rng.usize(t.seeds.len()..corpus.len());
                        corpus[i] = input;
                    }
                }
            }
            Ok(Err(why)) => fail(t, seed, n, &input, &why),
            Err(p) => fail(t, seed, n, &input, &format!("panicked: {}", msg(&*p))),
        }
    }
    (n, ok)
}

fn msg(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic)".into())
}

// -------------------------------------------------------------- mutations

const INTERESTING: &[u8] = &[
    0, 0xff, b'=', b'"', b'{', b'}', b'[', b']', b',', b':', b'\\', b'0', b'1', b'7', b'9', b'-',
    b'+', b'.', b'e', b'E', b' ', b'\n', b'\t', 0x7f, 0x80, 0xc3, 0xe2, 0xf0, b'a', b'A', b'/',
];

/// A position, biased to `focus` three times in four.
fn pos(rng: &mut Rng, len: usize, focus: &std::ops::Range<usize>) -> usize {
    let f = focus.start.min(len)..focus.end.min(len);
    if !f.is_empty() && rng.u8(..4) != 0 {
        rng.usize(f)
    } else {
        rng.usize(..=len)
    }
}

/// One byte-level mutation of `d`; `other` is a second corpus item for
/// splices.
fn mutate_bytes(rng: &mut Rng, d: &mut Vec<u8>, other: &[u8], focus: &std::ops::Range<usize>) {
    let len = d.len();
    match rng.u8(..12) {
        // Bit flip.
        0 | 1 if len > 0 => {
            let p = pos(rng, len - 1, focus);
            d[p] ^= 1 << rng.u8(..8);
        }
        // An interesting byte.
        2 | 3 if len > 0 => {
            let p = pos(rng, len - 1, focus);
            d[p] = INTERESTING[rng.usize(..INTERESTING.len())];
        }
        // A random byte, or a small add.
        4 if len > 0 => {
            let p = pos(rng, len - 1, focus);
            d[p] = if rng.bool() {
                rng.u8(..)
            } else {
                d[p].wrapping_add(rng.u8(1..8)).wrapping_sub(4)
            };
        }
        // Insert interesting or random bytes.
        5 => {
            let p = pos(rng, len, focus);
            let n = rng.usize(1..=16);
            let ins: Vec<u8> = (0..n)
                .map(|_| {
                    if rng.bool() {
                        INTERESTING[rng.usize(..INTERESTING.len())]
                    } else {
                        rng.u8(..)
                    }
                })
                .collect();
            d.splice(p..p, ins);
        }
        // Delete a range.
        6 if len > 0 => {
            let p = pos(rng, len - 1, focus);
            let n = rng.usize(1..=(len - p).min(64));
            d.drain(p..p + n);
        }
        // Duplicate a range elsewhere.
        7 if len > 0 => {
            let p = rng.usize(..len);
            let n = rng.usize(1..=(len - p).min(64));
            let chunk = d[p..p + n].to_vec();
            let at = pos(rng, len, focus);
            d.splice(at..at, chunk);
        }
        // Truncate.
        8 if len > 0 => d.truncate(pos(rng, len - 1, focus)),
        // Splice: our prefix, the other's suffix.
        9 if !other.is_empty() => {
            let a = pos(rng, len, focus);
            let b = rng.usize(..other.len());
            d.truncate(a);
            d.extend_from_slice(&other[b..]);
        }
        // Overwrite with a chunk of the other input.
        10 if !other.is_empty() && len > 0 => {
            let b = rng.usize(..other.len());
            let n = rng.usize(1..=(other.len() - b).min(32));
            let p = pos(rng, len - 1, focus);
            for (i, &x) in other[b..b + n].iter().enumerate() {
                if let Some(slot) = d.get_mut(p + i) {
                    *slot = x;
                }
            }
        }
        // An interesting little-endian u32.
        _ if len >= 4 => {
            let p = pos(rng, len - 4, focus);
            let v: u32 = match rng.u8(..6) {
                0 => 0,
                1 => u32::MAX,
                2 => i32::MAX as u32,
                3 => len as u32,
                4 => rng.u32(..),
                _ => u32::from_le_bytes(d[p..p + 4].try_into().unwrap()).wrapping_add(1),
            };
            d[p..p + 4].copy_from_slice(&v.to_le_bytes());
        }
        _ => d.push(rng.u8(..)),
    }
}

fn pick<'c>(rng: &mut Rng, corpus: &'c [Vec<u8>]) -> &'c [u8] {
    &corpus[rng.usize(..corpus.len())]
}

/// JSON pointers of every node of `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let key = k.replace('~', "~0").replace('/', "~1");
                pointers(x, format!("{at}/{key}"), out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// Replaced by a raw token after serialising (numbers serde_json cannot
/// hold: 2^64, 1e999, -0, leading zeros…).
const SENTINEL: u64 = 9_876_543_210_123_456_789;
const RAW_NUMBERS: &[&str] = &[
    "18446744073709551616",
    "1e999",
    "-1e999",
    "-0",
    "00",
    "01",
    "1E2",
    "1.0",
    "0.5",
    "-1",
    "-9223372036854775809",
    "340282366920938463463374607431768211456",
    "1e-999",
];

fn long_or_odd_string(rng: &mut Rng, max_len: usize) -> String {
    const ODD: &[&str] = &[
        "",
        "é",
        "日本語",
        "\u{202e}evil",
        "\u{0}",
        "a\u{0}b",
        "\u{1F600}",
        "\u{FFFD}",
        "\u{7f}",
        "\n",
        "\t",
        ".",
        "..",
        "../x",
        "a/b",
        "a=b",
        "RK3588",
        "rk3588",
        "manifest",
        "announcement",
        "root",
        "rootfs",
        "app",
        "model",
        "00:00-00:01",
        "23:59-00:00",
    ];
    match rng.u8(..6) {
        0 => {
            let sizes = [63, 64, 65, 255, 4096, 16 * 1024 + 1, 70_000, (1 << 20) + 1];
            // The big ones rarely: they are slow and the limits stop them.
            let upto = if rng.u8(..16) == 0 { 8 } else { 5 };
            let n = sizes[rng.usize(..upto)].min(max_len + 1);
            let c = ['a', 'é', '0', '\u{1F600}', 'A'][rng.usize(..5)];
            std::iter::repeat_n(c, n).collect()
        }
        1 => {
            let hex = if rng.bool() { "0" } else { "f" };
            let mut s = hex.repeat(64);
            match rng.u8(..3) {
                0 => s.make_ascii_uppercase(),
                1 => s.push('0'),
                _ => s.replace_range(..1, "g"),
            }
            s
        }
        _ => ODD[rng.usize(..ODD.len())].to_string(),
    }
}

fn any_value(rng: &mut Rng, max_len: usize) -> Value {
    match rng.u8(..9) {
        0 => Value::Null,
        1 => Value::Bool(rng.bool()),
        2 => Value::Array(vec![]),
        3 => Value::Object(Default::default()),
        4 => Value::String(long_or_odd_string(rng, max_len)),
        5 => Value::from(u64::MAX),
        6 => Value::from(-1),
        7 => Value::from(0.5),
        _ => Value::Array(vec![Value::from(1), Value::String("x".into())]),
    }
}

/// One JSON-aware edit of `text`; `None` when it is not JSON.
fn mutate_json(rng: &mut Rng, text: &[u8], max_len: usize) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(text).ok()?;
    let mut ptrs = Vec::new();
    pointers(&v, String::new(), &mut ptrs);
    let p = ptrs[rng.usize(..ptrs.len())].clone();
    let donor = {
        let q = &ptrs[rng.usize(..ptrs.len())];
        v.pointer(q).cloned().unwrap_or(Value::Null)
    };
    let mut raw_number = None;
    let mut dup_key = None;
    let node = v.pointer_mut(&p)?;
    match rng.u8(..11) {
        // Numbers: huge, negative, float, or a raw token.
        0 | 1 => {
            *node = match rng.u8(..10) {
                0 => Value::from(u64::MAX),
                1 => Value::from(i64::MIN),
                2 => Value::from(-1),
                3 => Value::from(0),
                4 => Value::from(1.5),
                5 => Value::from(1e308),
                6 => Value::from(u64::from(u32::MAX) + 1),
                7 => match node.as_u64() {
                    Some(n) => Value::from(
                        n.wrapping_add(rng.u64(..3)).wrapping_sub(1) ^ (rng.u64(..2) << 63),
                    ),
                    None => Value::from((1u64 << 53) + 1),
                },
                _ => {
                    raw_number = Some(RAW_NUMBERS[rng.usize(..RAW_NUMBERS.len())]);
                    Value::from(SENTINEL)
                }
            };
        }
        // Strings: very long, unicode, control characters, near-miss hex.
        2 | 3 => *node = Value::String(long_or_odd_string(rng, max_len)),
        // Tweak a string in place.
        4 => {
            if let Value::String(s) = node {
                let mut b = s.clone().into_bytes();
                let focus = 0..b.len();
                mutate_bytes(rng, &mut b, &[], &focus);
                *s = String::from_utf8_lossy(&b).into_owned();
            } else {
                *node = any_value(rng, max_len);
            }
        }
        // Another type altogether, or another node of the document.
        5 => *node = any_value(rng, max_len),
        6 => *node = donor,
        // Objects: drop, duplicate or add a key.
        7..=9 => match node {
            Value::Object(m) if !m.is_empty() => {
                let keys: Vec<String> = m.keys().cloned().collect();
                let k = keys[rng.usize(..keys.len())].clone();
                match rng.u8(..3) {
                    0 => {
                        m.remove(&k);
                    }
                    1 => {
                        let val = if rng.bool() {
                            m[&k].clone()
                        } else {
                            any_value(rng, max_len)
                        };
                        dup_key = Some((k, serde_json::to_string(&val).unwrap()));
                    }
                    _ => {
                        let name = ["extra", "type", "payload", "", "\u{0}"][rng.usize(..5)];
                        m.insert(name.to_string(), any_value(rng, max_len));
                    }
                }
            }
            Value::Array(a) if !a.is_empty() => {
                let i = rng.usize(..a.len());
                match rng.u8(..3) {
                    0 => {
                        a.remove(i);
                    }
                    1 => {
                        let x = a[i].clone();
                        a.insert(i, x);
                    }
                    _ => a.clear(),
                }
            }
            _ => *node = any_value(rng, max_len),
        },
        // Only re-serialise (whitespace and key order change).
        _ => {}
    }
    let mut out = if rng.bool() {
        serde_json::to_string(&v).unwrap()
    } else {
        serde_json::to_string_pretty(&v).unwrap()
    };
    if let Some(tok) = raw_number {
        out = out.replacen(&SENTINEL.to_string(), tok, 1);
    }
    if let Some((k, val)) = dup_key {
        let needle = format!("{}:", serde_json::to_string(&k).unwrap());
        if let Some(at) = out.find(&needle) {
            out.insert_str(at, &format!("{needle}{val},"));
        }
    }
    Some(out.into_bytes())
}

/// A JSON text mutant: JSON-aware edits half the time, byte edits else,
/// stacked 1–3 deep.
fn mutate_text(rng: &mut Rng, corpus: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    let mut d = pick(rng, corpus).to_vec();
    for _ in 0..rng.usize(1..=3) {
        if rng.bool()
            && let Some(m) = mutate_json(rng, &d, max_len)
        {
            d = m;
            continue;
        }
        let other = pick(rng, corpus);
        let focus = 0..d.len();
        mutate_bytes(rng, &mut d, other, &focus);
    }
    d
}

/// A JSON-aware edit of the JSON text held in the string found by
/// following the object keys `path` (e.g. the root document's payload).
fn mutate_nested(rng: &mut Rng, outer: &[u8], path: &[&str], max_len: usize) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(outer).ok()?;
    let mut cur = &v;
    for k in path {
        cur = cur.get(*k)?;
    }
    let inner = cur.as_str()?.as_bytes().to_vec();
    let inner = match mutate_json(rng, &inner, max_len) {
        Some(m) if rng.u8(..4) != 0 => m,
        _ => {
            let mut b = inner;
            let focus = 0..b.len();
            mutate_bytes(rng, &mut b, &[], &focus);
            b
        }
    };
    let mut slot = &mut v;
    for k in path {
        slot = slot.get_mut(*k)?;
    }
    *slot = Value::String(String::from_utf8_lossy(&inner).into_owned());
    Some(serde_json::to_vec(&v).unwrap())
}

// --------------------------------------------------------------- fixtures

struct Keys {
    root: SecretKey,
    signer: SecretKey,
    announcer: SecretKey,
    stranger: SecretKey,
}

fn keys() -> Keys {
    Keys {
        root: SecretKey::from_bytes(&[1; 32]),
        signer: SecretKey::from_bytes(&[2; 32]),
        announcer: SecretKey::from_bytes(&[3; 32]),
        stranger: SecretKey::from_bytes(&[9; 32]),
    }
}

fn root_doc(k: &Keys) -> Root {
    let delegate = |key: &SecretKey, role: Role| Delegation {
        key: key.public_key(),
        roles: vec![role],
        expires: NOW + 365 * DAY,
        note: Some("fuzz".into()),
    };
    let mut root = Root::new_v1(
        vec![k.root.public_key(), k.stranger.public_key()],
        1,
        vec![
            delegate(&k.signer, Role::Manifest),
            delegate(&k.announcer, Role::Announcement),
        ],
        NOW + 3650 * DAY,
        NOW - DAY,
    )
    .unwrap();
    root.revoked = vec![SecretKey::from_bytes(&[7; 32]).key_id()];
    root.validate().unwrap();
    root
}

fn env_vars() -> Vec<Vars> {
    let v = |pairs: &[(&str, &str)]| -> Vars {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    };
    vec![
        v(&[
            ("rootfs_active", "A"),
            ("rootfs_pending", "B"),
            ("rootfs_tries", "3"),
            ("app_active", "B"),
            ("security_counter", "5"),
            ("bootcmd", "run ota_boot; echo a=b"),
            ("bootargs", "console=ttyS2,1500000 root=PARTLABEL=rootfs_a"),
        ]),
        v(&[("a", "1"), ("empty", ""), ("ü", "日本")]),
        Vars::new(),
    ]
}

/// Two valid bundles' worth of bytes: a rootfs image of two chunks and a
/// small app image, signed by the manifest signer.
struct BundleFixture {
    bytes: Vec<u8>,
    manifest: Manifest,
    payload_text: String,
    payload_bytes: Vec<u8>,
}

fn bundle_fixture(k: &Keys) -> BundleFixture {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::with_seed(42);
    let rootfs = dir.path().join("rootfs.img");
    let app = dir.path().join("app.img");
    let mut data = vec![0u8; 70_000];
    rng.fill(&mut data);
    std::fs::write(&rootfs, &data).unwrap();
    let mut small = vec![0u8; 500];
    rng.fill(&mut small);
    std::fs::write(&app, &small).unwrap();
    let out = dir.path().join("b.bundle");
    let release = Release {
        version: "2.0.0".into(),
        security_counter: 5,
        issued: NOW,
        compatible: vec!["rk3588".into(), "rk3568".into()],
        chunk_size: 64 << 10,
    };
    let manifest = bundle::create(
        &out,
        &release,
        &[(Component::Rootfs, &rootfs), (Component::App, &app)],
        &[&k.signer],
    )
    .unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let (signed, payload_bytes) = split(&bytes).unwrap();
    let (payload_text, payload_bytes) = (signed.payload, payload_bytes.to_vec());
    BundleFixture {
        bytes,
        manifest,
        payload_text,
        payload_bytes,
    }
}

/// A bundle's header and payload, when the framing holds.
fn split(bytes: &[u8]) -> Option<(Signed, &[u8])> {
    let len = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?) as usize;
    let header = bytes.get(12..12usize.checked_add(len)?)?;
    Some((serde_json::from_slice(header).ok()?, &bytes[12 + len..]))
}

fn join(header: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(payload);
    out
}

// ---------------------------------------------------------------- targets

/// `[mode][image]`: mode bit 0 = redundant.
fn env_decode_target<'a>() -> Target<'a> {
    let mut seeds = Vec::new();
    for vars in env_vars() {
        for (size, flags) in [(64, None), (256, Some(0)), (512, Some(255)), (4096, None)] {
            if let Ok(img) = env::encode(&vars, size, flags) {
                let mut s = vec![u8::from(flags.is_some())];
                s.extend_from_slice(&img);
                seeds.push(s);
            }
        }
    }
    Target {
        name: "env_decode",
        format: "byte 0: 1 = redundant copy; then the env image",
        seeds,
        mutate: Box::new(|rng, corpus| {
            let item = pick(rng, corpus);
            let mut mode = item[0];
            let mut img = item[1..].to_vec();
            let other = &pick(rng, corpus)[1..];
            for _ in 0..rng.usize(1..=4) {
                let focus = 5..img.len().min(200);
                mutate_bytes(rng, &mut img, other, &focus);
            }
            if rng.u8(..16) == 0 {
                mode ^= 1;
            }
            // Mostly with a fixed-up CRC, so the entry parser is reached.
            let head = if mode & 1 == 1 { 5 } else { 4 };
            if img.len() > head && rng.u8(..4) != 0 {
                let crc = crc32fast::hash(&img[head..]);
                img[..4].copy_from_slice(&crc.to_le_bytes());
            }
            let mut out = vec![mode];
            out.extend_from_slice(&img);
            out
        }),
        check: Box::new(|input| {
            let Some((&mode, img)) = input.split_first() else {
                return Ok(false);
            };
            let redundant = mode & 1 == 1;
            let Ok((vars, flags)) = env::decode(img, redundant) else {
                return Ok(false);
            };
            if flags.is_some() != redundant {
                return Err(format!("flags {flags:?} for redundant={redundant}"));
            }
            let again = env::encode(&vars, img.len(), flags)
                .map_err(|e| format!("decoded {vars:?} but cannot re-encode it: {e}"))?;
            let back = env::decode(&again, redundant)
                .map_err(|e| format!("re-encoded image does not decode: {e}"))?;
            if back != (vars.clone(), flags) {
                return Err(format!("round trip changed {vars:?} to {back:?}"));
            }
            Ok(true)
        }),
    }
}

/// `[side][u32 LE length of the original][original][mutant]`: side 0
/// puts the mutant in copy A, 1 in copy B.
fn env_redundant_target<'a>() -> Target<'a> {
    let mut seeds = Vec::new();
    let all = env_vars();
    for (i, vars) in all.iter().enumerate() {
        let partner = &all[(i + 1) % all.len()];
        for (size, f) in [(192usize, 0u8), (256, 254), (1024, 255), (320, 7)] {
            let orig = env::encode(vars, size, Some(f)).unwrap();
            let other = env::encode(partner, size, Some(f.wrapping_add(1))).unwrap();
            for side in [0u8, 1] {
                let mut s = vec![side];
                s.extend_from_slice(&(orig.len() as u32).to_le_bytes());
                s.extend_from_slice(&orig);
                s.extend_from_slice(&other);
                seeds.push(s);
            }
        }
    }
    fn parts(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&side, rest) = input.split_first()?;
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let orig = rest.get(4..4 + len)?;
        Some((side & 1, orig, &rest[4 + len..]))
    }
    Target {
        name: "env_redundant",
        format: "byte 0: side of the mutant (0 = A); u32 LE original length; original; mutant",
        seeds,
        mutate: Box::new(|rng, corpus| {
            let (side, orig, mutant) = parts(pick(rng, corpus)).unwrap();
            let mut m = if rng.u8(..8) == 0 {
                orig.to_vec()
            } else {
                mutant.to_vec()
            };
            let other = parts(pick(rng, corpus)).unwrap().2;
            for _ in 0..rng.usize(1..=3) {
                let focus = 0..m.len().min(160);
                mutate_bytes(rng, &mut m, other, &focus);
            }
            if m.len() > 5 && rng.bool() {
                let crc = crc32fast::hash(&m[5..]);
                m[..4].copy_from_slice(&crc.to_le_bytes());
            }
            let side = if rng.u8(..8) == 0 { side ^ 1 } else { side };
            let mut out = vec![side];
            out.extend_from_slice(&(orig.len() as u32).to_le_bytes());
            out.extend_from_slice(orig);
            out.extend_from_slice(&m);
            out
        }),
        check: Box::new(|input| {
            let (side, orig, mutant) = parts(input).ok_or("malformed fuzz input")?;
            let (a, b) = if side == 0 {
                (mutant, orig)
            } else {
                (orig, mutant)
            };
            let (orig_copy, mutant_copy) = if side == 0 {
                (EnvCopy::B, EnvCopy::A)
            } else {
                (EnvCopy::A, EnvCopy::B)
            };
            let (ov, of) = env::decode(orig, true).map_err(|e| format!("original: {e}"))?;
            let cur = env::read_redundant(a, b)
                .map_err(|e| format!("refused although one copy is the valid original: {e}"))?;
            let chosen = if cur.copy == orig_copy { orig } else { mutant };
            match env::decode(mutant, true) {
                Err(_) => {
                    if (cur.copy, &cur.vars, Some(cur.flags)) != (orig_copy, &ov, of) {
                        return Err(format!(
                            "mutant copy is invalid, yet {:?} (flags {}) was returned instead of \
                             the original {orig_copy:?}",
                            cur.copy, cur.flags
                        ));
                    }
                }
                Ok((mv, mf)) => {
                    let (fo, fm) = (of.unwrap(), mf.unwrap());
                    // U-Boot's rule, written out independently.
                    let mutant_newer = match (fm, fo) {
                        (0, 255) => true,
                        (255, 0) => false,
                        _ => fm > fo,
                    };
                    let tie_to_a = fm == fo;
                    let want = if tie_to_a {
                        EnvCopy::A
                    } else if mutant_newer {
                        mutant_copy
                    } else {
                        orig_copy
                    };
                    let want_vars = if want == mutant_copy { &mv } else { &ov };
                    if cur.copy != want || &cur.vars != want_vars {
                        return Err(format!(
                            "flags original {fo} mutant {fm}: got {:?}, want {want:?}",
                            cur.copy
                        ));
                    }
                }
            }
            // The next write goes to the other copy and wins.
            let (target, img) = env::next_write(&cur, &cur.vars, chosen.len())
                .map_err(|e| format!("next_write of the current vars: {e}"))?;
            if target == cur.copy {
                return Err("next_write targets the current copy".into());
            }
            let after = if target == EnvCopy::A {
                env::read_redundant(&img, chosen)
            } else {
                env::read_redundant(chosen, &img)
            }
            .map_err(|e| format!("after next_write: {e}"))?;
            if after.copy != target
                || after.vars != cur.vars
                || after.flags != cur.flags.wrapping_add(1)
            {
                return Err(format!(
                    "after next_write to {target:?} (flags {}), {:?} with flags {} is current",
                    cur.flags.wrapping_add(1),
                    after.copy,
                    after.flags
                ));
            }
            Ok(true)
        }),
    }
}

fn manifest_target(fx: &BundleFixture) -> Target<'_> {
    let mut small = fx.manifest.clone();
    small.images.truncate(1);
    small.images[0].component = Component::Model;
    let seeds = vec![
        fx.payload_text.clone().into_bytes(),
        small.to_payload().into_bytes(),
        serde_json::to_string_pretty(&fx.manifest)
            .unwrap()
            .into_bytes(),
    ];
    Target {
        name: "manifest",
        format: "manifest JSON text (lossy UTF-8)",
        seeds,
        mutate: Box::new(|rng, corpus| mutate_text(rng, corpus, ota::manifest::MAX_MANIFEST_BYTES)),
        check: Box::new(|input| {
            let text = String::from_utf8_lossy(input);
            let Ok(m) = Manifest::parse(&text) else {
                return Ok(false);
            };
            let p = m.problems();
            if !p.is_empty() {
                return Err(format!("accepted with problems {p:?}"));
            }
            let again = Manifest::parse(&m.to_payload())
                .map_err(|e| format!("re-serialised manifest is refused: {e}"))?;
            if again != m {
                return Err(format!("round trip changed {m:?} to {again:?}"));
            }
            Ok(true)
        }),
    }
}

/// Announcement payloads, and signed envelopes around them.
fn announcement_target<'a>(k: &'a Keys, trust: &'a Trust) -> Target<'a> {
    let ann = Announcement {
        kind: "announcement".into(),
        campaign: "spring-2027".into(),
        seq: 3,
        issued: NOW,
        expires: NOW + 30 * DAY,
        url: "https://updates.example/b/2.0.0.bundle".into(),
        version: "2.0.0".into(),
        security_counter: 5,
        size: 70_500,
        boards: vec!["rk3588".into(), "rk3568".into()],
        percent: 25,
        window: Window::parse("22:00-04:00"),
        halted: false,
    };
    let text = ann.to_payload();
    let signed = sign(text.clone(), Role::Announcement, &[&k.announcer]);
    let seeds = vec![
        text.clone().into_bytes(),
        serde_json::to_vec(&signed).unwrap(),
        Announcement {
            window: None,
            halted: true,
            ..ann
        }
        .to_payload()
        .into_bytes(),
    ];
    Target {
        name: "announcement",
        format: "announcement JSON text, or a signed envelope around one",
        seeds,
        mutate: Box::new(|rng, corpus| {
            if rng.u8(..4) == 0 {
                let item = pick(rng, corpus);
                if let Some(m) = mutate_nested(rng, item, &["payload"], 20_000) {
                    return m;
                }
            }
            mutate_text(rng, corpus, ota::announce::MAX_ANNOUNCEMENT_BYTES)
        }),
        check: Box::new(move |input| {
            let text = String::from_utf8_lossy(input);
            let mut accepted = false;
            if let Ok(a) = Announcement::parse(&text) {
                accepted = true;
                let again = Announcement::parse(&a.to_payload())
                    .map_err(|e| format!("re-serialised announcement is refused: {e}"))?;
                if again != a {
                    return Err(format!("round trip changed {a:?} to {again:?}"));
                }
            }
            if let Ok(s) = serde_json::from_str::<Signed>(&text) {
                accepted = true;
                if let Ok(v) = trust.verify(&s, Role::Announcement, NOW) {
                    if v.payload != text_of(&signed) {
                        return Err("a changed announcement payload verified".into());
                    }
                    Announcement::parse(v.payload)
                        .map_err(|e| format!("the signed announcement is refused: {e}"))?;
                }
            }
            Ok(accepted)
        }),
    }
}

fn text_of(s: &Signed) -> &str {
    &s.payload
}

fn window_target<'a>() -> Target<'a> {
    let seeds = [
        "22:00-04:00",
        "02:00-05:00",
        "00:00-23:59",
        "23:59-00:00",
        "9:5-10:07",
        " 01:00 - 02:00 ",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    Target {
        name: "window",
        format: "window text HH:MM-HH:MM (lossy UTF-8)",
        seeds,
        mutate: Box::new(|rng, corpus| {
            let mut d = pick(rng, corpus).to_vec();
            for _ in 0..rng.usize(1..=3) {
                let other = pick(rng, corpus);
                let focus = 0..d.len();
                mutate_bytes(rng, &mut d, other, &focus);
            }
            d
        }),
        check: Box::new(|input| {
            let text = String::from_utf8_lossy(input);
            let Some(w) = Window::parse(&text) else {
                return Ok(false);
            };
            if w.start_min >= 24 * 60 || w.end_min >= 24 * 60 || w.start_min == w.end_min {
                return Err(format!("accepted {w:?}"));
            }
            let shown = serde_json::to_value(w).unwrap();
            let again = Window::parse(shown.as_str().unwrap());
            if again != Some(w) {
                return Err(format!("{w:?} shown as {shown} parses as {again:?}"));
            }
            let mut inside = 0;
            for now in (0..24 * 60).map(|m| 86_400 * 20_000 + m * 60) {
                inside += u32::from(w.contains(now, 0));
            }
            // Any clock and any offset: no panic.
            for now in [0, 1, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX] {
                for off in [i32::MIN, -720, 0, 840, i32::MAX] {
                    let _ = w.contains(now, off);
                }
            }
            let len = (i32::from(w.end_min) - i32::from(w.start_min)).rem_euclid(24 * 60);
            if inside as i32 != len {
                return Err(format!("{w:?} contains {inside} minutes a day, not {len}"));
            }
            Ok(true)
        }),
    }
}

fn root_target(k: &Keys) -> Target<'_> {
    let root = root_doc(k);
    let mut bare = root.clone();
    bare.signers.truncate(1);
    bare.revoked.clear();
    let seeds = vec![
        root.to_payload().into_bytes(),
        bare.to_payload().into_bytes(),
    ];
    Target {
        name: "root",
        format: "root payload JSON text (lossy UTF-8)",
        seeds,
        mutate: Box::new(|rng, corpus| mutate_text(rng, corpus, 1 << 16)),
        check: Box::new(|input| {
            let text = String::from_utf8_lossy(input);
            let Ok(r) = Root::parse(&text) else {
                return Ok(false);
            };
            r.validate()
                .map_err(|e| format!("parsed but does not validate: {e}"))?;
            let again = Root::parse(&r.to_payload())
                .map_err(|e| format!("re-serialised root is refused: {e}"))?;
            if again != r {
                return Err(format!("round trip changed {r:?} to {again:?}"));
            }
            Ok(true)
        }),
    }
}

fn trust_target<'a>(k: &'a Keys, trust: &'a Trust, fx: &'a BundleFixture) -> Target<'a> {
    let mut rotated = trust.clone();
    let mut next = rotated.root().next();
    next.issued = NOW;
    let next_signed = sign(next.to_payload(), Role::Root, &[&k.root]);
    rotated.update_root(&next_signed, NOW).unwrap();
    rotated.observe_signed_time(NOW + DAY).unwrap();
    let seeds = vec![trust.to_json().into_bytes(), rotated.to_json().into_bytes()];
    let header = split(&fx.bytes).unwrap().0;
    Target {
        name: "trust_json",
        format: "trust state JSON text (lossy UTF-8)",
        seeds,
        mutate: Box::new(|rng, corpus| {
            if rng.u8(..3) == 0 {
                let item = pick(rng, corpus);
                if let Some(m) = mutate_nested(rng, item, &["root", "payload"], 1 << 16) {
                    return m;
                }
            }
            mutate_text(rng, corpus, 1 << 16)
        }),
        check: Box::new(move |input| {
            let text = String::from_utf8_lossy(input);
            let Ok(t) = Trust::from_json(&text) else {
                return Ok(false);
            };
            let again = Trust::from_json(&t.to_json())
                .map_err(|e| format!("saved trust state does not reload: {e}"))?;
            if again != t {
                return Err("trust state changed over save and reload".into());
            }
            // Whatever the state, verifying must not panic, and the real
            // bundle header still verifies only with the fixture root.
            let _ = t.verify(&header, Role::Manifest, NOW);
            let _ = t.verify(&header, Role::Announcement, 0);
            let _ = t.verify(&header, Role::Root, u64::MAX);
            Ok(true)
        }),
    }
}

fn bundle_target<'a>(k: &'a Keys, trust: &'a Trust, fx: &'a BundleFixture) -> Target<'a> {
    // A second seed: the same bundle with a pretty-printed header, which
    // verifies too (whitespace is outside the signed payload).
    let (signed, payload) = split(&fx.bytes).unwrap();
    let pretty = join(&serde_json::to_vec_pretty(&signed).unwrap(), payload);
    Target {
        name: "bundle",
        format: "a whole bundle file",
        seeds: vec![fx.bytes.clone(), pretty],
        mutate: Box::new(move |rng, corpus| {
            let item = pick(rng, corpus);
            let Some((hdr, payload)) = split(item) else {
                let mut d = item.to_vec();
                let focus = 0..d.len().min(64);
                mutate_bytes(rng, &mut d, &fx.bytes, &focus);
                return d;
            };
            let header_len = item.len() - payload.len();
            let header_json = &item[12..header_len];
            match rng.u8(..10) {
                // Raw bytes, mostly in the magic, length and header.
                0..=2 => {
                    let mut d = item.to_vec();
                    for _ in 0..rng.usize(1..=3) {
                        let focus = 0..header_len;
                        mutate_bytes(rng, &mut d, &fx.bytes, &focus);
                    }
                    d
                }
                // The header JSON, framed with its new length.
                3 | 4 => {
                    let h = mutate_json(rng, header_json, 1 << 16).unwrap_or_else(|| {
                        let mut h = header_json.to_vec();
                        let focus = 0..h.len();
                        mutate_bytes(rng, &mut h, &[], &focus);
                        h
                    });
                    join(&h, payload)
                }
                // The manifest inside the header, with the old signature.
                5 => match mutate_nested(rng, header_json, &["payload"], 1 << 16) {
                    Some(h) => join(&h, payload),
                    None => item.to_vec(),
                },
                // The manifest inside the header, re-signed by the real
                // signer (reaches streaming with hostile manifests) or by
                // a key that may not sign manifests.
                6 | 7 => {
                    let text = mutate_text(rng, &[hdr.payload.into_bytes()], 1 << 16);
                    let text = String::from_utf8_lossy(&text).into_owned();
                    let key = match rng.u8(..8) {
                        0 => &k.root,
                        1 => &k.announcer,
                        2 => &k.stranger,
                        _ => &k.signer,
                    };
                    let role = if rng.u8(..8) == 0 {
                        Role::Announcement
                    } else {
                        Role::Manifest
                    };
                    let s = sign(text, role, &[key]);
                    join(&serde_json::to_vec(&s).unwrap(), payload)
                }
                // The images.
                _ => {
                    let mut p = payload.to_vec();
                    let other = &fx.payload_bytes;
                    let focus = 0..p.len();
                    mutate_bytes(rng, &mut p, other, &focus);
                    let mut d = item[..header_len].to_vec();
                    d.extend_from_slice(&p);
                    d
                }
            }
        }),
        check: Box::new(move |input| {
            let _ = bundle::read_header(&mut &input[..]);
            let mut r: &[u8] = input;
            let Ok((m, signers)) = install::verify(&mut r, trust, NOW) else {
                return Ok(false);
            };
            let (s, payload) = split(input).ok_or("verified, but the framing does not hold")?;
            if signers != [k.signer.key_id().to_string()] {
                return Err(format!("verified with signers {signers:?}"));
            }
            if m != Manifest::parse(&s.payload).map_err(|e| e.to_string())? {
                return Err("the returned manifest is not the signed one".into());
            }
            if s.payload == fx.payload_text {
                // Only the envelope's JSON framing may differ.
                if m != fx.manifest {
                    return Err("the original payload gave another manifest".into());
                }
                if payload != fx.payload_bytes.as_slice() {
                    return Err("changed image bytes verified".into());
                }
                return Ok(true);
            }
            // Another payload verified: it must carry a genuine signature
            // of the manifest signer over exactly that payload (ed25519
            // signatures are deterministic), and the images must be what
            // it says, chunk by chunk, with nothing after them.
            let genuine = sign(s.payload.clone(), Role::Manifest, &[&k.signer]).signatures;
            if !s.signatures.iter().any(|e| genuine.contains(e)) {
                return Err("a changed manifest verified without the signer's signature".into());
            }
            if payload.len() as u64 != m.payload_len() {
                return Err(format!(
                    "{} payload bytes verified, the manifest describes {}",
                    payload.len(),
                    m.payload_len()
                ));
            }
            let mut at = 0usize;
            for img in &m.images {
                let data = &payload[at..at + img.length as usize];
                for (c, want) in data.chunks(img.chunk_size as usize).zip(&img.chunks) {
                    if Sha256::digest(c).as_slice() != want.0 {
                        return Err(format!("image {} verified with a wrong chunk", img.name));
                    }
                }
                at += img.length as usize;
            }
            Ok(true)
        }),
    }
}

// ------------------------------------------------------------------- test

#[test]
fn fuzz_ota_parsers() {
    let secs = env_secs();
    let seed = env_seed();
    let only = std::env::var("OTA_FUZZ_TARGET").unwrap_or_default();

    let k = keys();
    let root_signed = sign(root_doc(&k).to_payload(), Role::Root, &[&k.root]);
    let trust = Trust::from_initial_root(&root_signed).unwrap();
    let fx = bundle_fixture(&k);
    {
        // The fixture bundle verifies.
        let mut r: &[u8] = &fx.bytes;
        let (m, _) = install::verify(&mut r, &trust, NOW).unwrap();
        assert_eq!(m, fx.manifest);
    }

    let targets: Vec<Target<'_>> = vec![
        env_decode_target(),
        env_redundant_target(),
        manifest_target(&fx),
        announcement_target(&k, &trust),
        window_target(),
        root_target(&k),
        trust_target(&k, &trust, &fx),
        bundle_target(&k, &trust, &fx),
    ]
    .into_iter()
    .filter(|t| t.name.contains(only.as_str()))
    .collect();
    assert!(!targets.is_empty(), "no target matches {only:?}");
    let budget = Duration::from_secs_f64(secs / targets.len() as f64);
    println!(
        "ota fuzz: {secs} s over {} targets, base seed {seed:#018x} (OTA_FUZZ_SEED to reproduce)",
        targets.len()
    );
    let mut total = 0;
    for t in &targets {
        // From the name, so that OTA_FUZZ_TARGET does not change it.
        let tseed = t.name.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let (n, ok) = run(t, tseed, budget);
        total += n;
        println!(
            "ota fuzz: target {:<14} {n:>10} inputs ({ok} accepted) in {:.1} s, seed {seed:#018x} (target seed {tseed:#018x}), no failure",
            t.name,
            budget.as_secs_f64()
        );
    }
    println!("ota fuzz: {total} inputs in all");
}
