//! The power-cut filesystem bites: what was not synced is gone after a
//! cut, what was synced stays, and no kernel cache hides the difference.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use powercut::PowerCutFs;

fn sync_dir(dir: &Path) {
    File::open(dir)
        .expect("open dir")
        .sync_all()
        .expect("fsync dir");
}

fn write(path: &Path, bytes: &[u8], sync: bool) {
    let mut f = File::create(path).expect("create");
    f.write_all(bytes).expect("write");
    if sync {
        f.sync_all().expect("fsync");
    }
}

#[test]
fn unsynced_data_and_names_are_gone_after_a_cut() {
    let m = common::mount();
    let root = m.fs.path();
    // Synced data under a synced name: survives.
    write(&root.join("kept"), b"kept", true);
    // A name synced, its data not: the file survives, empty.
    write(&root.join("empty"), b"never synced", false);
    sync_dir(root);
    // Data synced, its name not: gone.
    write(&root.join("nameless"), b"synced data", true);
    // Synced, then overwritten, extended and truncated without a sync.
    let mut f = OpenOptions::new()
        .write(true)
        .open(root.join("kept"))
        .expect("open");
    f.write_all(b"KEPT and then some").expect("overwrite");
    drop(f);
    assert_eq!(
        fs::read(root.join("kept")).expect("read"),
        b"KEPT and then some"
    );

    let cut = m.fs.cut();
    assert_eq!(fs::read(root.join("kept")).expect("kept"), b"kept");
    assert_eq!(fs::read(root.join("empty")).expect("empty"), b"");
    assert!(
        !root.join("nameless").exists(),
        "a name never synced survived"
    );
    assert_eq!(
        (cut.files_reverted, cut.dirs_reverted, cut.inodes_dropped),
        (2, 1, 1),
        "{cut:?}"
    );
    // Nothing left to drop.
    assert_eq!(m.fs.cut(), powercut::Cut::default());
}

#[test]
fn a_rename_is_undone_without_a_directory_sync() {
    let m = common::mount();
    let root = m.fs.path();
    let sub = root.join("state");
    fs::create_dir(&sub).expect("mkdir");
    sync_dir(root);
    write(&sub.join("config.json"), b"old", true);
    sync_dir(&sub);

    // Write a temporary, sync it, rename it over: no directory sync.
    write(&sub.join("config.json.tmp"), b"new", true);
    fs::rename(sub.join("config.json.tmp"), sub.join("config.json")).expect("rename");
    assert_eq!(fs::read(sub.join("config.json")).expect("read"), b"new");
    m.fs.cut();
    assert_eq!(fs::read(sub.join("config.json")).expect("read"), b"old");
    assert!(!sub.join("config.json.tmp").exists());

    // The same with the directory synced: the rename stays.
    write(&sub.join("config.json.tmp"), b"new", true);
    fs::rename(sub.join("config.json.tmp"), sub.join("config.json")).expect("rename");
    sync_dir(&sub);
    m.fs.cut();
    assert_eq!(fs::read(sub.join("config.json")).expect("read"), b"new");
    assert!(!sub.join("config.json.tmp").exists());

    // An unlink without a directory sync comes back too.
    fs::remove_file(sub.join("config.json")).expect("unlink");
    m.fs.cut();
    assert_eq!(fs::read(sub.join("config.json")).expect("read"), b"new");
}

/// A descriptor opened before the cut reads what survived: the kernel's
/// page cache does not serve the lost bytes. (Same size before and after,
/// and no read past the end: either would make the kernel refetch the
/// attributes and drop its cache, hiding a missing `FOPEN_DIRECT_IO`.)
#[test]
fn the_page_cache_cannot_hide_a_cut() {
    let m = common::mount();
    let path = m.fs.path().join("f");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("create");
    sync_dir(m.fs.path());
    f.write_all_at(b"durable!", 0).expect("write");
    f.sync_data().expect("fdatasync");
    f.write_all_at(b"LOSTLOST", 0).expect("overwrite");
    let mut buf = [0u8; 8];
    f.read_exact_at(&mut buf, 0).expect("read");
    assert_eq!(&buf, b"LOSTLOST");

    m.fs.cut();
    f.read_exact_at(&mut buf, 0).expect("read after the cut");
    assert_eq!(&buf, b"durable!", "the kernel served bytes the cut dropped");
    assert_eq!(fs::read(&path).expect("reopen"), b"durable!");
    // A size change shows too.
    f.write_all_at(b" and more", 8).expect("extend");
    m.fs.cut();
    assert_eq!(f.metadata().expect("fstat").len(), 8);
}

/// `cut_after(n)` cuts right before the n-th mutating request, which
/// fails with everything after it, and counts each request once.
#[test]
fn the_tripwire_cuts_at_exactly_the_nth_mutating_request() {
    let m = common::mount();
    let root = m.fs.path();
    // The work: write, fsync, write, fsync (four mutating requests, on a
    // descriptor opened before, so no open or close is among them).
    let work = |f: &File| -> std::io::Result<()> {
        f.write_all_at(b"AAAA", 0)?;
        f.sync_data()?;
        f.write_all_at(b"BBBB", 4)?;
        f.sync_data()
    };
    let expect: [&[u8]; 6] = [b"base", b"base", b"base", b"AAAA", b"AAAA", b"AAAABBBB"];
    for n in 1..=5u64 {
        let path = root.join(format!("f{n}"));
        write(&path, b"base", true);
        sync_dir(root);
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("open");
        let start = m.fs.ops();
        m.fs.cut_after(n);
        let result = work(&f);
        if n <= 4 {
            let e = result.expect_err("the tripwire fired");
            assert_eq!(e.raw_os_error(), Some(libc::EIO), "n={n}: {e}");
            assert!(m.fs.is_off());
            assert_eq!(m.fs.ops() - start, n, "counted up to the tripping request");
            // The power is gone: reads and lookups fail, and refused
            // requests are not counted.
            let e = fs::read(&path).expect_err("read while off");
            assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
            assert!(f.sync_data().is_err());
            assert_eq!(m.fs.ops() - start, n);
            m.fs.power_on();
        } else {
            result.expect("n beyond the work: no cut");
            assert!(!m.fs.is_off());
            assert_eq!(m.fs.ops() - start, 4);
            m.fs.power_on(); // disarms
        }
        assert_eq!(
            fs::read(&path).expect("read after power on"),
            expect[n as usize],
            "n={n}"
        );
    }
    // The cut at the tripwire was a real one: an earlier unsynced name is
    // gone too.
    write(&root.join("unnamed"), b"x", true);
    m.fs.cut_after(1);
    assert!(File::create(root.join("g")).is_err());
    m.fs.power_on();
    assert!(!root.join("unnamed").exists() && !root.join("g").exists());
    // n = 0 cuts at once.
    m.fs.cut_after(0);
    assert!(m.fs.is_off() && fs::metadata(root.join("f1")).is_err());
    m.fs.power_on();
    assert_eq!(fs::read(root.join("f1")).expect("read"), b"base");
}

#[test]
fn mounting_where_it_cannot_says_where_and_why() {
    let dir = tempfile::tempdir().expect("tmp");
    let err = PowerCutFs::mount(&dir.path().join("missing")).expect_err("no such directory");
    let msg = err.to_string();
    assert!(
        msg.contains("missing") && msg.contains("cannot mount"),
        "{msg}"
    );
}

#[test]
fn a_small_filesystem_fills_up_and_a_failing_one_refuses_writes() {
    let m = common::mount();
    let root = m.fs.path();
    write(&root.join("a"), &[1u8; 10_000], true);
    m.fs.set_capacity(Some(m.fs.used() + 5_000));
    let free = statvfs_free(root);
    assert!((4_096..=5_000).contains(&free), "statfs free {free}");
    // Growing past the capacity: ENOSPC, and the file keeps what fitted.
    let mut f = OpenOptions::new()
        .append(true)
        .open(root.join("a"))
        .expect("open");
    f.write_all(&[2u8; 4_000]).expect("within the capacity");
    let err = f.write_all(&[3u8; 4_000]).expect_err("past the capacity");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    drop(f);
    // Overwriting in place needs no room (not through O_APPEND, where
    // Linux appends whatever the offset).
    OpenOptions::new()
        .write(true)
        .open(root.join("a"))
        .and_then(|f| f.write_at(&[4u8; 100], 0))
        .expect("overwrite in place");
    assert_eq!(fs::metadata(root.join("a")).expect("stat").len(), 14_000);
    // Space comes back when a file goes.
    fs::remove_file(root.join("a")).expect("unlink");
    write(&root.join("b"), &[5u8; 8_000], false);

    // A failing flash: every change refused with the error, reads work.
    m.fs.set_capacity(None);
    m.fs.fail_writes(Some(libc::EIO));
    let err = File::create(root.join("c")).expect_err("create on a failing flash");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let err = OpenOptions::new()
        .write(true)
        .open(root.join("b"))
        .and_then(|f| f.write_at(b"x", 0))
        .expect_err("write on a failing flash");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    assert_eq!(fs::read(root.join("b")).expect("read").len(), 8_000);
    m.fs.fail_writes(None);
    write(&root.join("c"), b"back", true);
    assert_eq!(fs::read(root.join("c")).expect("read"), b"back");
}

/// Free bytes as `statvfs` reports them.
fn statvfs_free(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: `c` is a valid NUL-terminated path; `s` is written by the call.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    assert_eq!(rc, 0, "statvfs {}", path.display());
    s.f_bavail * s.f_frsize
}
