//! What the writer programs (`src/bin/`) and the tests say to each other.
//!
//! A writer is started as `WRITER MODE PATH TAG`:
//! - `create`: open (create) the store and exit;
//! - `write`: store records forever, printing `ok ID PAYLOAD` once the
//!   store has reported each one durable (the test kills it);
//! - `check`: print `have ID PAYLOAD` for every record found, then store
//!   one more and print its `ok` line (ids must keep increasing).
//!
//! A writer that cannot open or read its store prints the error on stderr
//! and exits with status 2. Payloads carry no spaces or newlines.

use std::path::PathBuf;

/// What a writer is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Write,
    Check,
}

/// A writer's command line.
#[derive(Debug)]
pub struct Args {
    pub mode: Mode,
    pub path: PathBuf,
    /// Distinguishes the payloads of one run from another's.
    pub tag: u64,
}

impl Args {
    /// Parse `MODE PATH TAG` from the process arguments.
    pub fn from_env() -> Result<Self, String> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let [mode, path, tag] = args.as_slice() else {
            return Err("usage: WRITER create|write|check PATH TAG".to_string());
        };
        let mode = match mode.as_str() {
            "create" => Mode::Create,
            "write" => Mode::Write,
            "check" => Mode::Check,
            other => return Err(format!("unknown mode {other:?}")),
        };
        let tag = tag.parse().map_err(|e| format!("tag {tag:?}: {e}"))?;
        Ok(Self {
            mode,
            path: PathBuf::from(path),
            tag,
        })
    }
}

/// The payload of record `seq` of run `tag`: 0 to 299 filler characters,
/// so that records straddle pages and a torn or misplaced one shows.
pub fn payload(tag: u64, seq: u64) -> String {
    let mut x = tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seq.wrapping_add(1);
    let mut next = || {
        // xorshift: cheap, deterministic, good enough to vary bytes.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let len = (next() % 300) as usize;
    let filler: String = (0..len)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[(next() % 36) as usize]))
        .collect();
    format!("r{tag}.s{seq}.{filler}")
}

/// One line a writer printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// The store reported this record durable.
    Ok { id: u64, payload: String },
    /// The store holds this record (check mode).
    Have { id: u64, payload: String },
}

impl Line {
    /// Parse a complete line (without its newline); `None` for anything
    /// else.
    pub fn parse(line: &str) -> Option<Self> {
        let mut parts = line.splitn(3, ' ');
        let kind = parts.next()?;
        let id = parts.next()?.parse().ok()?;
        let payload = parts.next().unwrap_or_default().to_string();
        match kind {
            "ok" => Some(Self::Ok { id, payload }),
            "have" => Some(Self::Have { id, payload }),
            _ => None,
        }
    }
}

/// The line for a record the store reported durable.
pub fn ok_line(id: u64, payload: &str) -> String {
    format!("ok {id} {payload}")
}

/// The line for a record found in the store.
pub fn have_line(id: u64, payload: &str) -> String {
    format!("have {id} {payload}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let p = payload(3, 4);
        assert!(!p.contains(' ') && p.starts_with("r3.s4."));
        assert_eq!(
            Line::parse(&ok_line(7, &p)),
            Some(Line::Ok { id: 7, payload: p })
        );
        assert_eq!(Line::parse("ok seven x"), None);
        assert_ne!(payload(1, 2), payload(2, 1));
    }
}
