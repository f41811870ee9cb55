//! The A/B boot contract, as pure functions over the U-Boot environment.
//!
//! Each component (rootfs, app, model) has two slots and four variables;
//! `docs/ota.md` is the contract the U-Boot script (rootfs) and `ota
//! select` (app, model) implement, and this module is its reference:
//!
//! | variable | meaning |
//! |---|---|
//! | `ota_<c>_active` | `A` or `B`: the committed, last good slot |
//! | `ota_<c>_pending` | `A` or `B` while an update is on trial, else unset |
//! | `ota_<c>_tries` | boots left for the pending slot |
//! | `ota_<c>_result` | why the last trial ended without a commit |
//! | `ota_counter` | the highest committed security counter |
//!
//! Lessons built in (see `../shared/notes/ota.md`):
//! - the counter only runs while an update is pending, so quick power
//!   cycles never drop a committed slot (rauc#490);
//! - exhausted tries fall back to the active slot, which is always
//!   bootable: no state leaves both slots unbootable (rauc#683);
//! - a normal boot writes nothing, and every change is one environment
//!   write ([`crate::env::next_write`]).

use crate::env::Vars;
use crate::manifest::Component;

/// Boots a pending slot gets before it falls back.
pub const TRIES: u32 = 3;
// The U-Boot script (yocto/…/boot.cmd.in) counts tries down without
// arithmetic, for 1..9 only.
const _: () = assert!(TRIES >= 1 && TRIES <= 9);

/// The security counter variable.
pub const COUNTER: &str = "ota_counter";

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "A",
            Slot::B => "B",
        }
    }

    pub fn parse(s: &str) -> Option<Slot> {
        // Upper case only, as ota writes them: the U-Boot script compares
        // the same strings, and both must read an environment alike.
        match s {
            "A" => Some(Slot::A),
            "B" => Some(Slot::B),
            _ => None,
        }
    }

    pub fn index(self) -> usize {
        match self {
            Slot::A => 0,
            Slot::B => 1,
        }
    }
}

impl std::fmt::Display for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

pub fn var(c: Component, what: &str) -> String {
    format!("ota_{}_{what}", c.name())
}

/// A component's slot state as the environment says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotState {
    pub active: Slot,
    pub pending: Option<Slot>,
    pub tries: u32,
}

/// Read a component's state; a missing or garbled `active` means `fallback`
/// (the last good slot recorded on the data partition) or A.
pub fn state(vars: &Vars, c: Component, fallback: Option<Slot>) -> SlotState {
    let active = vars
        .get(&var(c, "active"))
        .and_then(|s| Slot::parse(s))
        .or(fallback)
        .unwrap_or(Slot::A);
    let pending = vars
        .get(&var(c, "pending"))
        .and_then(|s| Slot::parse(s))
        .filter(|p| *p != active);
    let tries = vars
        .get(&var(c, "tries"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    SlotState {
        active,
        pending,
        tries,
    }
}

/// Why a slot was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The committed slot; nothing written.
    Committed,
    /// The pending slot, with this many tries left after this boot.
    Trial { tries_left: u32 },
    /// The pending slot ran out of tries: back to the committed one.
    FellBack { from: Slot },
    /// Neither environment copy could be read: the last good slot from
    /// the data partition (or A).
    EnvLost,
}

/// What the bootloader (or `ota select` for app and model) does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub slot: Slot,
    pub choice: Choice,
    /// The environment to write before booting, if it changes.
    pub write: Option<Vars>,
}

/// The boot decision for one component.
pub fn select(vars: Option<&Vars>, c: Component, fallback: Option<Slot>) -> Selection {
    let Some(vars) = vars else {
        return Selection {
            slot: fallback.unwrap_or(Slot::A),
            choice: Choice::EnvLost,
            write: None,
        };
    };
    let st = state(vars, c, fallback);
    match st.pending {
        Some(p) if st.tries > 0 => {
            let mut w = vars.clone();
            w.insert(var(c, "tries"), (st.tries - 1).to_string());
            Selection {
                slot: p,
                choice: Choice::Trial {
                    tries_left: st.tries - 1,
                },
                write: Some(w),
            }
        }
        Some(p) => {
            let mut w = vars.clone();
            w.remove(&var(c, "pending"));
            w.remove(&var(c, "tries"));
            w.insert(var(c, "result"), format!("boot-failed:{p}"));
            Selection {
                slot: st.active,
                choice: Choice::FellBack { from: p },
                write: Some(w),
            }
        }
        None => Selection {
            slot: st.active,
            choice: Choice::Committed,
            write: None,
        },
    }
}

/// What the running system learns about itself after boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootStatus {
    /// Running the committed slot, no trial.
    Committed,
    /// Running a pending slot: commit it once healthy, or roll back.
    Trial { slot: Slot },
    /// Running the committed slot because a trial ended without a commit;
    /// `reason` is the recorded result.
    FellBack { reason: String },
}

pub fn status(vars: &Vars, c: Component, booted: Slot) -> BootStatus {
    let st = state(vars, c, None);
    if st.pending == Some(booted) {
        return BootStatus::Trial { slot: booted };
    }
    match vars.get(&var(c, "result")) {
        Some(r) if booted == st.active && !r.is_empty() => {
            BootStatus::FellBack { reason: r.clone() }
        }
        _ => BootStatus::Committed,
    }
}

/// Make `target` the pending slot of `c` (after its image was written and
/// read back).
pub fn set_pending(vars: &Vars, c: Component, target: Slot) -> Vars {
    let mut w = vars.clone();
    let active = state(vars, c, None).active;
    // Keep the committed slot explicit, so the script never guesses.
    w.insert(var(c, "active"), active.to_string());
    w.insert(var(c, "pending"), target.to_string());
    w.insert(var(c, "tries"), TRIES.to_string());
    w.remove(&var(c, "result"));
    w
}

/// Forget a pending slot (before its bytes are overwritten by a new
/// install, so a half-written slot is never tried).
pub fn clear_pending(vars: &Vars, c: Component) -> Vars {
    let mut w = vars.clone();
    w.remove(&var(c, "pending"));
    w.remove(&var(c, "tries"));
    w
}

/// Commit `slot`: it becomes the good slot, and the security counter rises
/// to `counter` (never falls).
pub fn commit(vars: &Vars, c: Component, slot: Slot, counter: u64) -> Vars {
    let mut w = vars.clone();
    w.insert(var(c, "active"), slot.to_string());
    w.remove(&var(c, "pending"));
    w.remove(&var(c, "tries"));
    w.remove(&var(c, "result"));
    let old = security_counter(vars);
    w.insert(COUNTER.into(), old.max(counter).to_string());
    w
}

/// End a trial without committing: the next boot takes the active slot.
pub fn rollback(vars: &Vars, c: Component, reason: &str) -> Vars {
    let mut w = clear_pending(vars, c);
    w.insert(var(c, "result"), format!("rolled-back:{reason}"));
    w
}

/// Clear the recorded result once it has been reported.
pub fn clear_result(vars: &Vars, c: Component) -> Vars {
    let mut w = vars.clone();
    w.remove(&var(c, "result"));
    w
}

/// The variable holding the release version (from the signed manifest)
/// of what slot `slot` of `c` holds: `ota_app_version_B`. Written in the
/// same environment write that marks the slot pending, removed before the
/// slot is overwritten; a slot without one holds the factory image.
pub fn version_var(c: Component, slot: Slot) -> String {
    var(c, &format!("version_{slot}"))
}

/// The release version recorded for `slot` of `c`, if any.
pub fn version(vars: &Vars, c: Component, slot: Slot) -> Option<&str> {
    vars.get(&version_var(c, slot))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// Record (or, with `None`, forget) the version that `slot` of `c` holds.
pub fn set_version(vars: &Vars, c: Component, slot: Slot, version: Option<&str>) -> Vars {
    let mut w = vars.clone();
    match version {
        Some(v) => w.insert(version_var(c, slot), v.to_string()),
        None => w.remove(&version_var(c, slot)),
    };
    w
}

/// A component running its pending slot: a trial not yet committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trial {
    pub component: Component,
    pub slot: Slot,
    /// Boots the slot has left after this one.
    pub tries_left: u32,
}

impl std::fmt::Display for Trial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} slot {} ({} boots left)",
            self.component, self.slot, self.tries_left
        )
    }
}

/// The components whose booted slot (`booted`: the kernel command line or
/// `ota select`'s record; unknown means the active one) is on trial.
pub fn trials(vars: &Vars, booted: impl Fn(Component) -> Option<Slot>) -> Vec<Trial> {
    Component::ALL
        .into_iter()
        .filter_map(|c| {
            let st = state(vars, c, None);
            let slot = booted(c).unwrap_or(st.active);
            matches!(status(vars, c, slot), BootStatus::Trial { .. }).then_some(Trial {
                component: c,
                slot,
                tries_left: st.tries,
            })
        })
        .collect()
}

/// What the camera does when a service it needs (camera-app, the agent)
/// stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterStop {
    /// A clean stop, or a failure on committed slots: systemd restarts a
    /// failed unit (and gives up after its start limit), as it always has.
    Nothing,
    /// A failure during a trial: reboot, so that the boot count ends a
    /// trial whose slot keeps failing (a camera-app that hangs and is
    /// killed by its watchdog, or crashes) and the committed slots come
    /// back, instead of the trial failing in place until someone
    /// power-cycles the camera.
    Reboot(Vec<Trial>),
}

/// The decision after a service stopped with `result` (systemd's
/// `$SERVICE_RESULT`: `success`, `exit-code`, `signal`, `core-dump`,
/// `watchdog`, `timeout`, ...) while `trials` run.
pub fn after_stop(result: &str, trials: Vec<Trial>) -> AfterStop {
    if result == "success" || trials.is_empty() {
        AfterStop::Nothing
    } else {
        AfterStop::Reboot(trials)
    }
}

pub fn security_counter(vars: &Vars) -> u64 {
    vars.get(COUNTER).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const C: Component = Component::Rootfs;

    fn boot(vars: &mut Vars) -> Selection {
        let s = select(Some(vars), C, None);
        if let Some(w) = &s.write {
            *vars = w.clone();
        }
        s
    }

    #[test]
    fn a_failure_reboots_only_during_a_trial() {
        use Component::{App, Model, Rootfs};
        let committed = commit(&commit(&Vars::new(), App, Slot::B, 1), Rootfs, Slot::A, 1);
        let app_on_trial = set_pending(&committed, App, Slot::B.other());
        let ran = |app: Slot| move |c: Component| (c == App).then_some(app);

        // Committed slots: nothing on trial, whatever the result.
        assert!(trials(&committed, ran(Slot::B)).is_empty());
        assert_eq!(
            after_stop("watchdog", trials(&committed, ran(Slot::B))),
            AfterStop::Nothing
        );

        // The app's pending slot runs: a watchdog kill or a crash reboots,
        // a clean stop does not.
        let on = trials(&app_on_trial, ran(Slot::A));
        assert_eq!(
            on,
            vec![Trial {
                component: App,
                slot: Slot::A,
                tries_left: TRIES
            }]
        );
        for result in ["watchdog", "exit-code", "signal", "core-dump", "timeout"] {
            assert_eq!(
                after_stop(result, on.clone()),
                AfterStop::Reboot(on.clone()),
                "{result}"
            );
        }
        assert_eq!(after_stop("success", on), AfterStop::Nothing);

        // Pending but not what runs (the committed slot was chosen, e.g.
        // the trial's tries are spent and ota select fell back): no trial.
        assert!(trials(&app_on_trial, ran(Slot::B)).is_empty());

        // A rootfs trial (booted from the command line) counts too, with
        // its tries as U-Boot left them.
        let mut v = set_pending(&committed, Rootfs, Slot::B);
        v.insert(var(Rootfs, "tries"), "1".into());
        let booted = |c: Component| match c {
            Rootfs => Some(Slot::B),
            App => Some(Slot::B),
            Model => None,
        };
        assert_eq!(
            trials(&v, booted),
            vec![Trial {
                component: Rootfs,
                slot: Slot::B,
                tries_left: 1
            }]
        );
    }

    #[test]
    fn committed_slot_survives_any_number_of_quick_power_cycles() {
        let mut v = commit(&Vars::new(), C, Slot::B, 1);
        for _ in 0..50 {
            let s = boot(&mut v);
            assert_eq!(
                (s.slot, s.choice, s.write),
                (Slot::B, Choice::Committed, None)
            );
        }
    }

    #[test]
    fn pending_slot_gets_its_tries_then_falls_back() {
        let mut v = set_pending(&commit(&Vars::new(), C, Slot::A, 1), C, Slot::B);
        for left in (0..TRIES).rev() {
            let s = boot(&mut v);
            assert_eq!(s.slot, Slot::B);
            assert_eq!(s.choice, Choice::Trial { tries_left: left });
            assert_eq!(status(&v, C, Slot::B), BootStatus::Trial { slot: Slot::B });
        }
        let s = boot(&mut v);
        assert_eq!(
            (s.slot, s.choice),
            (Slot::A, Choice::FellBack { from: Slot::B })
        );
        assert_eq!(
            status(&v, C, Slot::A),
            BootStatus::FellBack {
                reason: "boot-failed:B".into()
            }
        );
        // And stays there.
        for _ in 0..10 {
            assert_eq!(boot(&mut v).slot, Slot::A);
        }
    }

    #[test]
    fn commit_during_trial_stops_the_counting() {
        let mut v = set_pending(&Vars::new(), C, Slot::B);
        boot(&mut v);
        v = commit(&v, C, Slot::B, 4);
        for _ in 0..10 {
            assert_eq!(boot(&mut v).slot, Slot::B);
        }
        assert_eq!(security_counter(&v), 4);
        // The counter never falls.
        assert_eq!(security_counter(&commit(&v, C, Slot::A, 2)), 4);
    }

    #[test]
    fn rollback_boots_the_active_slot_and_records_why() {
        let mut v = set_pending(&commit(&Vars::new(), C, Slot::A, 0), C, Slot::B);
        boot(&mut v);
        v = rollback(&v, C, "health");
        let s = boot(&mut v);
        assert_eq!(s.slot, Slot::A);
        assert_eq!(
            status(&v, C, Slot::A),
            BootStatus::FellBack {
                reason: "rolled-back:health".into()
            }
        );
    }

    #[test]
    fn lost_or_garbled_environment_boots_the_last_good_slot() {
        assert_eq!(select(None, C, Some(Slot::B)).slot, Slot::B);
        assert_eq!(select(None, C, None).slot, Slot::A);
        let mut v = Vars::new();
        v.insert(var(C, "active"), "Z".into());
        v.insert(var(C, "pending"), "nonsense".into());
        assert_eq!(select(Some(&v), C, Some(Slot::B)).slot, Slot::B);
        // Pending equal to active is no trial.
        let mut v = commit(&Vars::new(), C, Slot::A, 0);
        v.insert(var(C, "pending"), "A".into());
        v.insert(var(C, "tries"), "3".into());
        assert_eq!(select(Some(&v), C, None).choice, Choice::Committed);
    }

    #[test]
    fn components_are_independent() {
        let v = set_pending(&Vars::new(), Component::Model, Slot::B);
        assert_eq!(
            select(Some(&v), Component::Rootfs, None).choice,
            Choice::Committed
        );
        assert_eq!(select(Some(&v), Component::Model, None).slot, Slot::B);
    }
}
