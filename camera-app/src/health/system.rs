//! What the operating system says about the device: CPU temperature,
//! memory, uptime and clock synchronisation.
//!
//! Reads a handful of small files under a root directory (`/` on the
//! camera, a fake tree in tests). A file that is missing or unreadable
//! leaves its field `None`: a health report always goes out.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// Whether the kernel considers the system clock disciplined (by NTP,
/// chrony or PTP), from `adjtimex`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum ClockSync {
    /// Synchronised; the kernel's estimated and maximum error.
    Synced {
        est_error_us: u64,
        max_error_us: u64,
    },
    /// Free-running: wall-clock bins may drift.
    Unsynced {
        est_error_us: u64,
        max_error_us: u64,
    },
    /// `adjtimex` failed or this platform has none.
    #[default]
    Unknown,
}

/// One reading of the system; every field may be missing.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct SystemSnapshot {
    /// Hottest thermal zone, °C.
    pub cpu_temp_c: Option<f32>,
    pub mem_total_bytes: Option<u64>,
    pub mem_available_bytes: Option<u64>,
    /// This process's resident set.
    pub process_rss_bytes: Option<u64>,
    /// Time since the system booted.
    pub uptime_s: Option<f64>,
    pub clock: ClockSync,
}

/// Reads a [`SystemSnapshot`] from the files under `root`.
#[derive(Debug, Clone)]
pub struct SystemProbe {
    root: PathBuf,
    clock: fn() -> ClockSync,
}

impl Default for SystemProbe {
    /// The real system: `/` and the kernel's clock state.
    fn default() -> Self {
        Self::new("/")
    }
}

impl SystemProbe {
    /// Read `root/sys/class/thermal`, `root/proc/meminfo`,
    /// `root/proc/self/status` and `root/proc/uptime`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            clock: kernel_clock,
        }
    }

    /// Replace the clock query (tests; platforms without `adjtimex`).
    #[must_use]
    pub fn with_clock(mut self, clock: fn() -> ClockSync) -> Self {
        self.clock = clock;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Read everything once. Never fails: what cannot be read is `None`.
    pub fn probe(&self) -> SystemSnapshot {
        let read = |rel: &str| std::fs::read_to_string(self.root.join(rel)).ok();
        let (mem_total_bytes, mem_available_bytes) = read("proc/meminfo")
            .map(|t| parse_meminfo(&t))
            .unwrap_or_default();
        SystemSnapshot {
            cpu_temp_c: self.cpu_temp_c(),
            mem_total_bytes,
            mem_available_bytes,
            process_rss_bytes: read("proc/self/status").and_then(|t| parse_status_rss(&t)),
            uptime_s: read("proc/uptime").and_then(|t| parse_uptime(&t)),
            clock: (self.clock)(),
        }
    }

    /// The maximum over `thermal_zone*/temp`: the hottest sensor is the
    /// one that throttles.
    fn cpu_temp_c(&self) -> Option<f32> {
        let dir = std::fs::read_dir(self.root.join("sys/class/thermal")).ok()?;
        dir.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("thermal_zone"))
            .filter_map(|e| std::fs::read_to_string(e.path().join("temp")).ok())
            .filter_map(|t| parse_millidegrees(&t))
            .reduce(f32::max)
    }
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo(text: &str) -> (Option<u64>, Option<u64>) {
    (
        kib_field(text, "MemTotal:"),
        kib_field(text, "MemAvailable:"),
    )
}

/// `VmRSS` of `/proc/self/status`, in bytes.
pub fn parse_status_rss(text: &str) -> Option<u64> {
    kib_field(text, "VmRSS:")
}

/// A `Name:   1234 kB` line, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let rest = text.lines().find_map(|l| l.strip_prefix(name))?;
    let mut words = rest.split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => kib.checked_mul(1024),
        Some(_) => None,
    }
}

/// The first field of `/proc/uptime`, seconds.
pub fn parse_uptime(text: &str) -> Option<f64> {
    let s: f64 = text.split_whitespace().next()?.parse().ok()?;
    (s.is_finite() && s >= 0.0).then_some(s)
}

/// A thermal zone's `temp` (millidegrees C). Zones with no sensor report
/// nonsense such as -273000; anything outside -40..150 °C is ignored.
pub fn parse_millidegrees(text: &str) -> Option<f32> {
    let milli: i64 = text.trim().parse().ok()?;
    let c = milli as f32 / 1000.0;
    (-40.0..=150.0).contains(&c).then_some(c)
}

/// Interpret `adjtimex`'s return value (the clock state, or -1), its
/// `status` bits and error estimates (µs).
pub fn clock_from_timex(ret: i32, status: i32, est_error_us: i64, max_error_us: i64) -> ClockSync {
    const TIME_ERROR: i32 = 5;
    const STA_UNSYNC: i32 = 0x0040;
    if ret < 0 {
        return ClockSync::Unknown;
    }
    let est_error_us = u64::try_from(est_error_us).unwrap_or(0);
    let max_error_us = u64::try_from(max_error_us).unwrap_or(0);
    if ret == TIME_ERROR || status & STA_UNSYNC != 0 {
        ClockSync::Unsynced {
            est_error_us,
            max_error_us,
        }
    } else {
        ClockSync::Synced {
            est_error_us,
            max_error_us,
        }
    }
}

/// The kernel's view, with a read-only `adjtimex` (modes = 0 needs no
/// privilege).
// The libc crate binds `adjtimex` for glibc and musl only (not uClibc).
#[cfg(all(target_os = "linux", any(target_env = "gnu", target_env = "musl")))]
pub fn kernel_clock() -> ClockSync {
    /// `c_long` is `i32` or `i64` by target; a generic conversion keeps
    /// clippy from calling it useless on either.
    fn to_i64<T: TryInto<i64>>(v: T) -> i64 {
        v.try_into().unwrap_or(i64::MAX)
    }
    // SAFETY: `timex` is a plain C struct for which all-zero bytes are a
    // valid value (modes = 0: query only).
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, exclusively borrowed `timex` for the call.
    let ret = unsafe { libc::adjtimex(&mut tx) };
    clock_from_timex(ret, tx.status, to_i64(tx.esterror), to_i64(tx.maxerror))
}

#[cfg(not(all(target_os = "linux", any(target_env = "gnu", target_env = "musl"))))]
pub fn kernel_clock() -> ClockSync {
    ClockSync::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    fn synced() -> ClockSync {
        ClockSync::Synced {
            est_error_us: 120,
            max_error_us: 5_000,
        }
    }

    #[test]
    fn a_fake_tree_is_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "sys/class/thermal/thermal_zone0/temp", "48250\n");
        write(root, "sys/class/thermal/thermal_zone1/temp", "61500\n");
        // A zone without a sensor, and a cooling device that is no zone.
        write(root, "sys/class/thermal/thermal_zone2/temp", "-273000\n");
        write(root, "sys/class/thermal/cooling_device0/temp", "99000\n");
        write(
            root,
            "proc/meminfo",
            "MemTotal:         499780 kB\nMemFree:           10000 kB\nMemAvailable:     251234 kB\n",
        );
        write(
            root,
            "proc/self/status",
            "Name:\tcamera-app\nVmPeak:\t  90000 kB\nVmRSS:\t   41236 kB\nThreads:\t4\n",
        );
        write(root, "proc/uptime", "12345.67 23456.78\n");
        let s = SystemProbe::new(root).with_clock(synced).probe();
        assert_eq!(s.cpu_temp_c, Some(61.5));
        assert_eq!(s.mem_total_bytes, Some(499_780 * 1024));
        assert_eq!(s.mem_available_bytes, Some(251_234 * 1024));
        assert_eq!(s.process_rss_bytes, Some(41_236 * 1024));
        assert_eq!(s.uptime_s, Some(12_345.67));
        assert_eq!(s.clock, synced());
    }

    #[test]
    fn missing_or_garbled_files_leave_fields_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "proc/meminfo", "MemTotal: lots\n");
        write(root, "proc/uptime", "\n");
        write(root, "sys/class/thermal/thermal_zone0/temp", "hot\n");
        let s = SystemProbe::new(root)
            .with_clock(|| ClockSync::Unknown)
            .probe();
        assert_eq!(
            s,
            SystemSnapshot {
                clock: ClockSync::Unknown,
                ..SystemSnapshot::default()
            }
        );
        let empty = SystemProbe::new(root.join("nowhere")).probe();
        assert_eq!(empty.cpu_temp_c, None);
        assert_eq!(empty.uptime_s, None);
    }

    #[test]
    fn clock_state_comes_from_the_status_bits() {
        assert_eq!(clock_from_timex(-1, 0, 0, 0), ClockSync::Unknown);
        assert_eq!(
            clock_from_timex(0, 0x2001, 80, 900),
            ClockSync::Synced {
                est_error_us: 80,
                max_error_us: 900
            }
        );
        assert_eq!(
            clock_from_timex(0, 0x0040, 16_000_000, 16_000_000),
            ClockSync::Unsynced {
                est_error_us: 16_000_000,
                max_error_us: 16_000_000
            }
        );
        assert!(matches!(
            clock_from_timex(5, 0, 1, 1),
            ClockSync::Unsynced { .. }
        ));
        let json = serde_json::to_value(synced()).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"state": "synced", "est_error_us": 120, "max_error_us": 5000})
        );
    }

    /// The real system: memory is always readable on Linux. The clock
    /// state depends on the host (containers may refuse `adjtimex`), so
    /// it is only printed.
    #[test]
    fn the_real_system_is_read() {
        let real = SystemProbe::default().probe();
        println!("{real:?}");
        if cfg!(target_os = "linux") {
            assert!(real.mem_total_bytes.is_some_and(|b| b > 0));
            assert!(real.process_rss_bytes.is_some_and(|b| b > 0));
            assert!(real.uptime_s.is_some_and(|s| s > 0.0));
        }
    }
}
