//! The install [`Layout`] derived from a board profile (`boards/<name>.toml`),
//! so that an agent config names its board instead of repeating the
//! profile's devices: the U-Boot environment (`[uboot_env]`: device, the
//! two copies' offsets, size) and the rootfs A/B slots
//! (`[partitions] rootfs`). App and model slots are files on the data
//! partition, chosen by the image, not the board: the config still names
//! them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::install::Layout;
use crate::manifest::Component;
use crate::slots::{EnvLocation, EnvStore};

/// The profile of board `name` built into this binary (the repository's
/// `boards/*.toml`): what a camera uses unless a directory is named.
pub fn builtin_profile(name: &str) -> Result<boards::Profile, BoardError> {
    Ok(boards::builtin(name)?)
}

/// Why no layout could be derived.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("board name {0:?}: only letters, digits, '-' and '_'")]
    BadName(String),
    #[error("board {name:?} has no profile in {}; known boards: {}", dir.display(), if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    Unknown {
        name: String,
        dir: PathBuf,
        known: Vec<String>,
    },
    #[error(transparent)]
    Profile(#[from] boards::ProfileError),
    #[error("board {board}: uboot_env.size {size} does not fit this CPU's address space")]
    EnvSize { board: String, size: u64 },
    #[error(
        "board {board}: the rootfs slots come from the profile's [partitions]; remove rootfs from [slots]"
    )]
    RootfsGiven { board: String },
}

/// The profile of board `name` in `dir`; an unknown name is refused with
/// the names of the profiles that are there.
pub fn find_profile(dir: &Path, name: &str) -> Result<boards::Profile, BoardError> {
    // The name becomes a file name: no way out of `dir`.
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(BoardError::BadName(name.to_string()));
    }
    let path = dir.join(format!("{name}.toml"));
    if !path.is_file() {
        return Err(BoardError::Unknown {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            known: known_boards(dir),
        });
    }
    Ok(boards::Profile::load(&path)?)
}

/// Names of the profiles in `dir`, sorted (the boards crate's own
/// `Cargo.toml` is not one).
pub fn known_boards(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter(|p| p.file_name() != Some("Cargo.toml".as_ref()))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

/// The layout of `profile`'s board, with `other_slots` (app, model) added
/// to its rootfs slots.
pub fn layout(
    profile: &boards::Profile,
    other_slots: &BTreeMap<Component, [PathBuf; 2]>,
) -> Result<Layout, BoardError> {
    let board = profile.name.clone();
    if other_slots.contains_key(&Component::Rootfs) {
        return Err(BoardError::RootfsGiven { board });
    }
    let env = &profile.uboot_env;
    let size = usize::try_from(env.size).map_err(|_| BoardError::EnvSize {
        board: board.clone(),
        size: env.size,
    })?;
    let copy = |offset| EnvLocation {
        path: env.device.clone(),
        offset,
    };
    let mut slots = other_slots.clone();
    slots.insert(Component::Rootfs, profile.partitions.rootfs.clone());
    Ok(Layout {
        board,
        env: EnvStore {
            copies: [copy(env.offsets[0]), copy(env.offsets[1])],
            size,
        },
        slots,
        booted: BTreeMap::new(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn shipped(name: &str) -> boards::Profile {
        find_profile(&boards::shipped_dir(), name).unwrap()
    }

    fn app_slots() -> BTreeMap<Component, [PathBuf; 2]> {
        BTreeMap::from([(
            Component::App,
            ["/data/app/a.squashfs".into(), "/data/app/b.squashfs".into()],
        )])
    }

    #[test]
    fn the_rk3588_layout_comes_from_its_profile() {
        let got = layout(&shipped("rk3588"), &app_slots()).unwrap();
        let want = Layout {
            board: "rk3588".into(),
            env: EnvStore {
                copies: [
                    EnvLocation {
                        path: "/dev/mmcblk0".into(),
                        offset: 0x3f8000,
                    },
                    EnvLocation {
                        path: "/dev/mmcblk0".into(),
                        offset: 0x3fc000,
                    },
                ],
                size: 0x4000,
            },
            slots: BTreeMap::from([
                (
                    Component::Rootfs,
                    ["/dev/mmcblk0p2".into(), "/dev/mmcblk0p3".into()],
                ),
                (
                    Component::App,
                    ["/data/app/a.squashfs".into(), "/data/app/b.squashfs".into()],
                ),
            ]),
            booted: BTreeMap::new(),
        };
        assert_eq!(got, want);
    }

    #[test]
    fn the_rv1106_layout_uses_its_mtd_devices() {
        let got = layout(&shipped("rv1106"), &BTreeMap::new()).unwrap();
        let want = Layout {
            board: "rv1106".into(),
            env: EnvStore {
                copies: [
                    EnvLocation {
                        path: "/dev/mtd1".into(),
                        offset: 0,
                    },
                    EnvLocation {
                        path: "/dev/mtd1".into(),
                        offset: 0x20000,
                    },
                ],
                size: 0x8000,
            },
            slots: BTreeMap::from([(
                Component::Rootfs,
                ["/dev/mtdblock3".into(), "/dev/mtdblock4".into()],
            )]),
            booted: BTreeMap::new(),
        };
        assert_eq!(got, want);
    }

    #[test]
    fn an_unknown_board_is_refused_naming_the_known_ones() {
        let e = find_profile(&boards::shipped_dir(), "rk3399")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"rk3399\""), "{e}");
        for known in ["qemu-arm64", "rk3568", "rk3588", "rv1106", "rv1126"] {
            assert!(e.contains(known), "{known} missing from {e}");
        }
        assert!(!e.contains("Cargo"), "{e}");

        let empty = tempfile::tempdir().unwrap();
        let e = find_profile(empty.path(), "rk3588")
            .unwrap_err()
            .to_string();
        assert!(e.contains("known boards: none"), "{e}");
    }

    #[test]
    fn a_board_name_cannot_leave_the_profiles_directory() {
        for name in ["../etc/passwd", "", "rk3588/", "rk 3588"] {
            let e = find_profile(&boards::shipped_dir(), name).unwrap_err();
            assert!(matches!(e, BoardError::BadName(_)), "{name:?}: {e:?}");
        }
    }

    #[test]
    fn rootfs_slots_in_the_config_are_refused_with_a_board() {
        let mut slots = app_slots();
        slots.insert(Component::Rootfs, ["/x".into(), "/y".into()]);
        let e = layout(&shipped("rk3588"), &slots).unwrap_err().to_string();
        assert!(e.contains("[partitions]"), "{e}");
    }

    #[test]
    fn an_invalid_profile_is_reported_not_used() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.toml"), "name = \"bad\"\n").unwrap();
        let e = find_profile(dir.path(), "bad").unwrap_err();
        assert!(matches!(e, BoardError::Profile(_)), "{e:?}");
        assert!(e.to_string().contains("bad.toml"), "{e}");
    }
}
