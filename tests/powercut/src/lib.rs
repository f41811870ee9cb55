//! A filesystem for tests that loses, at a simulated power cut, every
//! write that was not made durable.
//!
//! Why: a store that says "on flash" must have called `fsync` (or
//! `fdatasync`) on the right file and directory at the right moment. A
//! killed process does not show whether it did, because the kernel keeps
//! its writes in the page cache; only a power cut does. [`PowerCutFs`]
//! mounts an in-memory FUSE filesystem on which [`Mounted::cut`] throws
//! away everything not yet synced, so that the outbox, the config store
//! and the OTA agent (journal, download, slots and boot environment:
//! `tests/ota.rs`, a cut at every write of an update) are tested for
//! durability rather than assumed durable. `docs/outbox.md` has the
//! figures it produced for the outbox.
//!
//! # The model: what survives a cut
//!
//! What `fsync(2)` promises and no more; ext4 and UBIFS give at least this
//! (in practice often more, e.g. ext4 commits a new file's name with its
//! data):
//!
//! - A file's contents and size survive as they were at its last
//!   `fsync`/`fdatasync` (both are treated alike). Writes and truncations
//!   after it are lost. Closing a file (flush, release) makes nothing
//!   durable, and neither does `sync_file_range`.
//! - A directory's entries (create, mkdir, unlink, rmdir, rename in or out
//!   of it) survive as they were at its last `fsync` on the directory
//!   itself. Fsyncing a new file does not make its name durable: a file
//!   whose name was never synced is gone after a cut, whatever was synced
//!   into it. A rename between two directories needs both synced (with
//!   one only, the file ends up under both names or neither).
//! - Attributes other than the size (mode, times) are not modelled.
//!
//! Not modelled either: a real cut may keep *some* unsynced writes, in any
//! order, or tear a page; here all of them go, atomically. So the harness
//! shows whether what a store reports durable was synced, not that its
//! recovery copes with every partial state (redb and sled checksum their
//! commits for that).
//!
//! # The tripwire: a cut at the n-th write
//!
//! [`Mounted::cut`] cuts between two requests the test chose. To cut at
//! *every* point of a store's work, [`Mounted::cut_after`]`(n)` arms a cut
//! at the n-th mutating request from the call on (`n = 1`: the next one).
//! Mutating requests are write, setattr (truncate), create, mknod, mkdir,
//! unlink, rmdir, rename, fsync and fsyncdir, each counted once. When the
//! n-th arrives, the cut happens under the same lock, right before that
//! request would have been served, so it is not served: it and every later
//! request, reads and lookups included, fail with `EIO`, as on a device
//! whose power is gone, until [`Mounted::power_on`]. [`Mounted::ops`] counts
//! the mutating requests served so far (the tripping one included), so an
//! uncut run tells how many cut points a piece of work has; in any run
//! [`Mounted::is_off`] tells whether the tripwire fired:
//!
//! ```no_run
//! # fn work(_: &std::path::Path) -> std::io::Result<()> { Ok(()) }
//! # let m = powercut::PowerCutFs::mount(std::path::Path::new("/mnt/pc")).unwrap();
//! let start = m.ops();
//! work(m.path()).unwrap();
//! let n = m.ops() - start;
//! for k in 1..=n {
//!     // (a fresh mount and starting state per k)
//!     m.cut_after(k);
//!     let _ = work(m.path()); // fails with EIO at request k
//!     assert!(m.is_off());
//!     m.power_on();
//!     // check what survived; recover
//! }
//! ```
//!
//! [`Mounted::set_trace`] records what each counted request was (`"write
//! /ota/journal.json"`), so that a test can say where each cut fell.
//!
//! Which request is the n-th is decided by the kernel's requests, not the
//! program's calls: one `write(2)` may arrive as several requests (above
//! the kernel's `max_write`), `File::create` on an existing file adds a
//! setattr (the truncation), and closing sends flush and release, which are
//! not counted. Concurrent writers make the order, and so the op at a given
//! n, vary between runs.
//!
//! # A full or failing flash
//!
//! [`Mounted::set_capacity`] makes it a small filesystem: a write or
//! truncation that would grow the files past it fails with `ENOSPC`, and
//! `statfs` reports the space left, so a store sees a full flash as it
//! would on a loop-mounted image, without root's loop devices.
//! [`Mounted::fail_writes`] makes every mutating request fail with a given
//! error (`EIO` for a worn flash) until it is cleared; nothing is undone.
//!
//! # The page cache
//!
//! Every open is answered with `FOPEN_DIRECT_IO` and every entry and
//! attribute with a zero time-to-live, so the kernel caches neither data
//! nor names: after a cut, even a file descriptor opened before it reads
//! what survived (tested in `tests/harness.rs`).
//!
//! # Requirements
//!
//! `/dev/fuse`, and root (`CAP_SYS_ADMIN`) for the `mount(2)` the `fuser`
//! crate makes itself; no libfuse. Without root, `fuser` falls back to the
//! `fusermount3` helper (Debian package `fuse3`). [`PowerCutFs::mount`]
//! fails with the cause and the remedy when neither works.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use fuser::{
    BackgroundSession, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
    WriteFlags,
};

pub mod protocol;

/// Granularity of the dirty-data bookkeeping; only dirty pages are copied
/// at an fsync, so a store's fsync costs what it wrote, not the file size.
const PAGE: usize = 4096;
/// Nothing is cached by the kernel: a cut must be visible at once.
const TTL: Duration = Duration::ZERO;
const ROOT: u64 = 1;

#[derive(Debug, Default)]
struct FileNode {
    /// What readers see now.
    data: Vec<u8>,
    /// What survives a cut: `data` as of the last fsync.
    durable: Vec<u8>,
    /// Pages of `data` that differ (or may differ) from `durable`.
    dirty: BTreeSet<usize>,
}

impl FileNode {
    fn mark(&mut self, from: usize, to: usize) {
        if to > from {
            self.dirty.extend(from / PAGE..to.div_ceil(PAGE));
        }
    }

    fn write(&mut self, offset: usize, bytes: &[u8]) {
        let end = offset + bytes.len();
        let old_len = self.data.len();
        if end > old_len {
            self.data.resize(end, 0);
        }
        self.data[offset..end].copy_from_slice(bytes);
        // A write past the end also zero-fills the gap.
        self.mark(offset.min(old_len), end);
    }

    fn set_len(&mut self, len: usize) {
        let old = self.data.len();
        self.data.resize(len, 0);
        // Shrinking then growing again must not resurrect old bytes at the
        // next fsync: every page between the two lengths is dirty.
        self.mark(len.min(old), len.max(old));
    }

    fn sync(&mut self) {
        self.durable.resize(self.data.len(), 0);
        let len = self.data.len();
        for page in std::mem::take(&mut self.dirty) {
            let (a, b) = (page * PAGE, ((page + 1) * PAGE).min(len));
            if a < b {
                self.durable[a..b].copy_from_slice(&self.data[a..b]);
            }
        }
    }

    fn is_synced(&self) -> bool {
        self.dirty.is_empty() && self.durable.len() == self.data.len()
    }
}

#[derive(Debug, Default)]
struct DirNode {
    entries: BTreeMap<OsString, u64>,
    /// `entries` as of the last fsync of this directory.
    durable: BTreeMap<OsString, u64>,
}

#[derive(Debug)]
enum Node {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Debug)]
struct State {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    /// Counted for tests that want to see the store sync at all.
    fsyncs: u64,
    /// Mutating requests counted (see [`Mounted::ops`]).
    ops: u64,
    /// The value of `ops` at which the tripwire cuts, when armed.
    trip_at: Option<u64>,
    /// The power is off: every request fails with `EIO`.
    off: bool,
    /// Each counted mutating request, described, while tracing.
    trace: Option<Vec<String>>,
    /// Owner of every node: whoever mounted.
    uid: u32,
    gid: u32,
    /// Bytes all files may hold together (a small filesystem): a request
    /// that would grow them past it fails with `ENOSPC`.
    capacity: Option<u64>,
    /// Every mutating request fails with this error while set (a worn or
    /// failing flash); reads still work.
    failing: Option<Errno>,
}

impl State {
    fn new() -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(ROOT, Node::Dir(DirNode::default()));
        Self {
            nodes,
            next_ino: ROOT + 1,
            fsyncs: 0,
            ops: 0,
            trip_at: None,
            off: false,
            trace: None,
            // SAFETY: getuid and getgid cannot fail and touch no memory.
            uid: unsafe { libc::getuid() },
            // SAFETY: as above.
            gid: unsafe { libc::getgid() },
            capacity: None,
            failing: None,
        }
    }

    /// A node's path for the trace (a linear search: tests only), `?`
    /// when no current entry names it.
    fn name_of(&self, ino: u64) -> String {
        let mut parts = Vec::new();
        let mut cur = ino;
        while cur != ROOT {
            let found = self.nodes.iter().find_map(|(&dir, node)| match node {
                Node::Dir(d) => d
                    .entries
                    .iter()
                    .find(|&(_, &child)| child == cur)
                    .map(|(name, _)| (dir, name.to_string_lossy().into_owned())),
                Node::File(_) => None,
            });
            let Some((parent, name)) = found else {
                parts.push("?".to_string());
                break;
            };
            parts.push(name);
            cur = parent;
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// Any request: refused while the power is off.
    fn alive(&self) -> Result<(), Errno> {
        if self.off { Err(Errno::EIO) } else { Ok(()) }
    }

    /// A mutating request `op` on `ino` (or on `name` in directory `ino`):
    /// counted, traced, and the tripwire's cut happens here, before the
    /// request is served (it is not).
    fn mutating(&mut self, op: &str, ino: u64, name: Option<&OsStr>) -> Result<(), Errno> {
        self.alive()?;
        if self.trace.is_some() {
            let mut what = format!("{op} {}", self.name_of(ino));
            if let Some(name) = name {
                if ino != ROOT {
                    what.push('/');
                }
                what.push_str(&name.to_string_lossy());
            }
            if let Some(t) = &mut self.trace {
                t.push(what);
            }
        }
        self.ops += 1;
        if self.trip_at == Some(self.ops) {
            self.trip_at = None;
            self.cut();
            self.off = true;
            return Err(Errno::EIO);
        }
        match self.failing {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Bytes held by the files a name reaches now (an unlinked file's
    /// space is free at once, as on a disk where nothing holds it open).
    fn used(&self) -> u64 {
        let mut used = 0;
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            match self.nodes.get(&ino) {
                Some(Node::Dir(d)) => stack.extend(d.entries.values().copied()),
                Some(Node::File(f)) => used += f.data.len() as u64,
                None => {}
            }
        }
        used
    }

    /// Whether file `ino` may become `new_len` bytes long.
    fn room_for(&self, ino: u64, new_len: u64) -> Result<(), Errno> {
        let Some(capacity) = self.capacity else {
            return Ok(());
        };
        let old_len = match self.nodes.get(&ino) {
            Some(Node::File(f)) => f.data.len() as u64,
            _ => 0,
        };
        if new_len > old_len && self.used() + (new_len - old_len) > capacity {
            Err(Errno::ENOSPC)
        } else {
            Ok(())
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let node = self.nodes.get(&ino)?;
        let (kind, size, perm, nlink) = match node {
            Node::File(f) => (FileType::RegularFile, f.data.len() as u64, 0o644, 1),
            Node::Dir(_) => (FileType::Directory, 0, 0o755, 2),
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: SystemTime::UNIX_EPOCH,
            mtime: SystemTime::UNIX_EPOCH,
            ctime: SystemTime::UNIX_EPOCH,
            crtime: SystemTime::UNIX_EPOCH,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: PAGE as u32,
            flags: 0,
        })
    }

    fn dir(&self, ino: u64) -> Result<&DirNode, Errno> {
        match self.nodes.get(&ino) {
            Some(Node::Dir(d)) => Ok(d),
            Some(Node::File(_)) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> Result<&mut DirNode, Errno> {
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir(d)) => Ok(d),
            Some(Node::File(_)) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Result<&mut FileNode, Errno> {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => Ok(f),
            Some(Node::Dir(_)) => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn lookup(&self, parent: u64, name: &OsStr) -> Result<u64, Errno> {
        self.dir(parent)?
            .entries
            .get(name)
            .copied()
            .ok_or(Errno::ENOENT)
    }

    fn add(&mut self, parent: u64, name: &OsStr, node: Node) -> Result<u64, Errno> {
        if self.dir(parent)?.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        self.dir_mut(parent)?.entries.insert(name.to_owned(), ino);
        Ok(ino)
    }

    fn remove(&mut self, parent: u64, name: &OsStr, want_dir: bool) -> Result<(), Errno> {
        let ino = self.lookup(parent, name)?;
        match (self.nodes.get(&ino), want_dir) {
            (Some(Node::Dir(_)), false) => return Err(Errno::EISDIR),
            (Some(Node::File(_)), true) => return Err(Errno::ENOTDIR),
            (Some(Node::Dir(d)), true) if !d.entries.is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        // The node itself stays until the next cut: an open descriptor may
        // still use it, and a durable entry may still name it.
        self.dir_mut(parent)?.entries.remove(name);
        Ok(())
    }

    fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        if flags.contains(RenameFlags::RENAME_EXCHANGE)
            || flags.contains(RenameFlags::RENAME_WHITEOUT)
        {
            return Err(Errno::EINVAL);
        }
        let ino = self.lookup(parent, name)?;
        if let Ok(target) = self.lookup(new_parent, new_name) {
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            if target == ino {
                return Ok(());
            }
            let moving_dir = matches!(self.nodes.get(&ino), Some(Node::Dir(_)));
            match self.nodes.get(&target) {
                Some(Node::Dir(d)) if !moving_dir => {
                    return Err(if d.entries.is_empty() {
                        Errno::EISDIR
                    } else {
                        Errno::ENOTEMPTY
                    });
                }
                Some(Node::Dir(d)) if !d.entries.is_empty() => return Err(Errno::ENOTEMPTY),
                Some(Node::File(_)) if moving_dir => return Err(Errno::ENOTDIR),
                _ => {}
            }
        }
        self.dir_mut(new_parent)?;
        self.dir_mut(parent)?.entries.remove(name);
        self.dir_mut(new_parent)?
            .entries
            .insert(new_name.to_owned(), ino);
        Ok(())
    }

    fn sync(&mut self, ino: u64) -> Result<(), Errno> {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(f)) => f.sync(),
            Some(Node::Dir(d)) => d.durable = d.entries.clone(),
            None => return Err(Errno::ENOENT),
        }
        self.fsyncs += 1;
        Ok(())
    }

    fn cut(&mut self) -> Cut {
        let mut cut = Cut::default();
        for node in self.nodes.values_mut() {
            match node {
                Node::File(f) => {
                    if !f.is_synced() {
                        cut.files_reverted += 1;
                    }
                    f.data = f.durable.clone();
                    f.dirty.clear();
                }
                Node::Dir(d) => {
                    if d.entries != d.durable {
                        cut.dirs_reverted += 1;
                    }
                    d.entries = d.durable.clone();
                }
            }
        }
        // Whatever no durable name reaches is gone for good.
        let mut reachable = HashSet::from([ROOT]);
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            if let Some(Node::Dir(d)) = self.nodes.get(&ino) {
                for &child in d.entries.values() {
                    if reachable.insert(child) {
                        stack.push(child);
                    }
                }
            }
        }
        let before = self.nodes.len();
        self.nodes.retain(|ino, _| reachable.contains(ino));
        cut.inodes_dropped = before - self.nodes.len();
        cut
    }
}

/// What a cut threw away (for test messages: a cut that found nothing to
/// drop tests little).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Files whose contents or size went back to their last fsync.
    pub files_reverted: usize,
    /// Directories whose entries went back to their last fsync.
    pub dirs_reverted: usize,
    /// Files and directories that no durable name reached any more.
    pub inodes_dropped: usize,
}

/// The FUSE side: every request under one lock, shared with [`Mounted`].
#[derive(Debug)]
struct Fs {
    state: Arc<Mutex<State>>,
}

impl Fs {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic in a request handler leaves the maps consistent enough for a
    // test to report; do not cascade it.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn reply_entry(state: &State, ino: u64, reply: ReplyEntry) {
    match state.attr(ino) {
        Some(attr) => reply.entry(&TTL, &attr, Generation(0)),
        None => reply.error(Errno::ENOENT),
    }
}

impl Filesystem for Fs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let state = self.state();
        match state.alive().and_then(|()| state.lookup(parent.0, name)) {
            Ok(ino) => reply_entry(&state, ino, reply),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let state = self.state();
        if let Err(e) = state.alive() {
            return reply.error(e);
        }
        match state.attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut state = self.state();
        if let Err(e) = state.mutating("setattr", ino.0, None) {
            return reply.error(e);
        }
        if let Some(size) = size {
            if let Err(e) = state.room_for(ino.0, size) {
                return reply.error(e);
            }
            match state.file_mut(ino.0) {
                Ok(f) => f.set_len(size as usize),
                Err(e) => return reply.error(e),
            }
        }
        match state.attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let mut state = self.state();
        let made = state
            .mutating("mkdir", parent.0, Some(name))
            .and_then(|()| state.add(parent.0, name, Node::Dir(DirNode::default())));
        match made {
            Ok(ino) => reply_entry(&state, ino, reply),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.state();
        match state
            .mutating("unlink", parent.0, Some(name))
            .and_then(|()| state.remove(parent.0, name, false))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut state = self.state();
        match state
            .mutating("rmdir", parent.0, Some(name))
            .and_then(|()| state.remove(parent.0, name, true))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut state = self.state();
        match state
            .mutating("rename", parent.0, Some(name))
            .and_then(|()| state.rename(parent.0, name, newparent.0, newname, flags))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let state = self.state();
        if let Err(e) = state.alive() {
            return reply.error(e);
        }
        match state.nodes.get(&ino.0) {
            Some(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut state = self.state();
        let created = state
            .mutating("create", parent.0, Some(name))
            .and_then(|()| state.add(parent.0, name, Node::File(FileNode::default())))
            .and_then(|ino| state.attr(ino).ok_or(Errno::ENOENT));
        match created {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let mut state = self.state();
        if let Err(e) = state.alive() {
            return reply.error(e);
        }
        match state.file_mut(ino.0) {
            Ok(f) => {
                let start = (offset as usize).min(f.data.len());
                let end = (start + size as usize).min(f.data.len());
                reply.data(&f.data[start..end]);
            }
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut state = self.state();
        if let Err(e) = state
            .mutating("write", ino.0, None)
            .and_then(|()| state.room_for(ino.0, offset + data.len() as u64))
        {
            return reply.error(e);
        }
        match state.file_mut(ino.0) {
            Ok(f) => {
                f.write(offset as usize, data);
                reply.written(data.len() as u32);
            }
            Err(e) => reply.error(e),
        }
    }

    // Closing is not syncing: flush (each close) and release (the last)
    // keep nothing.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        match self.state().alive() {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut state = self.state();
        match state
            .mutating("fsync", ino.0, None)
            .and_then(|()| state.sync(ino.0))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.state().alive() {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    /// Regular files only (the kernel uses `create` for those anyway).
    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let mut state = self.state();
        let made = state
            .mutating("mknod", parent.0, Some(name))
            .and_then(|()| {
                if mode & libc::S_IFMT != libc::S_IFREG {
                    return Err(Errno::EPERM);
                }
                state.add(parent.0, name, Node::File(FileNode::default()))
            });
        match made {
            Ok(ino) => reply_entry(&state, ino, reply),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let state = self.state();
        let dir = match state.alive().and_then(|()| state.dir(ino.0)) {
            Ok(d) => d,
            Err(e) => return reply.error(e),
        };
        // The kernel resolves ".." itself; its inode number here is unused.
        let dots = [
            (ino.0, FileType::Directory, OsStr::new(".")),
            (ino.0, FileType::Directory, OsStr::new("..")),
        ];
        let entries = dir.entries.iter().map(|(name, &child)| {
            let kind = match state.nodes.get(&child) {
                Some(Node::Dir(_)) => FileType::Directory,
                _ => FileType::RegularFile,
            };
            (child, kind, name.as_os_str())
        });
        for (i, (child, kind, name)) in dots
            .into_iter()
            .chain(entries)
            .enumerate()
            .skip(offset as usize)
        {
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut state = self.state();
        match state
            .mutating("fsyncdir", ino.0, None)
            .and_then(|()| state.sync(ino.0))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let state = self.state();
        if let Err(e) = state.alive() {
            return reply.error(e);
        }
        // Without a capacity, plenty of room: the stores must not take a
        // full disk for a cut.
        let (blocks, free) = match state.capacity {
            Some(c) => (
                c.div_ceil(PAGE as u64),
                c.saturating_sub(state.used()) / PAGE as u64,
            ),
            None => (1 << 24, 1 << 24),
        };
        reply.statfs(
            blocks,
            free,
            free,
            1 << 20,
            1 << 20,
            PAGE as u32,
            255,
            PAGE as u32,
        );
    }
}

/// Why the filesystem could not be mounted, with what to do about it.
#[derive(Debug)]
pub struct MountError(String);

impl std::fmt::Display for MountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MountError {}

/// The power-cut filesystem; see the crate docs for what survives a cut.
#[derive(Debug)]
pub struct PowerCutFs;

impl PowerCutFs {
    /// Mount an empty filesystem at `mountpoint` (an existing, empty
    /// directory). It is unmounted when the returned [`Mounted`] is dropped.
    pub fn mount(mountpoint: &Path) -> Result<Mounted, MountError> {
        // Check the device first: fuser's own error for it is a bare errno.
        if let Err(e) = OpenOptions::new().read(true).write(true).open("/dev/fuse") {
            return Err(MountError(format!(
                "cannot open /dev/fuse: {e}. The power-cut tests need FUSE: load the module \
                 (`modprobe fuse`), run as root (or give this user read-write access to \
                 /dev/fuse), and in a container pass `--device /dev/fuse --cap-add SYS_ADMIN`"
            )));
        }
        let state = Arc::new(Mutex::new(State::new()));
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            MountOption::FSName("powercut".to_string()),
            MountOption::Subtype("powercut".to_string()),
        ];
        let fs = Fs {
            state: Arc::clone(&state),
        };
        let session = fuser::spawn_mount(fs, mountpoint, &config).map_err(|e| {
            MountError(format!(
                "cannot mount the power-cut filesystem at {}: {e}. Mounting needs root \
                 (CAP_SYS_ADMIN) for the direct mount(2), or, for other users, the \
                 fusermount3 helper (Debian package `fuse3`) on PATH",
                mountpoint.display()
            ))
        })?;
        let mounted = Mounted {
            session: Some(session),
            state,
            path: mountpoint.to_path_buf(),
        };
        // A mount that silently did not happen would test the disk below.
        let below = mountpoint
            .parent()
            .and_then(|p| p.metadata().ok())
            .map(|m| m.dev());
        match mountpoint.metadata() {
            Ok(m) if Some(m.dev()) != below => Ok(mounted),
            Ok(_) => Err(MountError(format!(
                "{} is not a mount point after mounting the power-cut filesystem",
                mountpoint.display()
            ))),
            Err(e) => Err(MountError(format!(
                "the power-cut filesystem at {} does not answer: {e}",
                mountpoint.display()
            ))),
        }
    }
}

/// A mounted [`PowerCutFs`].
#[derive(Debug)]
pub struct Mounted {
    session: Option<BackgroundSession>,
    state: Arc<Mutex<State>>,
    path: PathBuf,
}

impl Mounted {
    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The power goes: every write, truncation and directory change not
    /// made durable (see the crate docs) is undone, at once and between
    /// two requests. Kill the processes writing first, as the power would.
    pub fn cut(&self) -> Cut {
        lock(&self.state).cut()
    }

    /// fsync and fsyncdir requests served so far.
    pub fn fsyncs(&self) -> u64 {
        lock(&self.state).fsyncs
    }

    /// Arm the tripwire (see the crate docs): the power goes at the `n`-th
    /// mutating request from now on (`n = 1`: the next), right before it
    /// is served, and stays off until [`Mounted::power_on`]. Re-arming
    /// replaces an armed tripwire; `n = 0` cuts at once.
    pub fn cut_after(&self, n: u64) {
        let mut state = lock(&self.state);
        if n == 0 {
            state.trip_at = None;
            state.cut();
            state.off = true;
        } else {
            state.trip_at = Some(state.ops + n);
        }
    }

    /// The power is back: requests are served again, on what the cut
    /// left. An armed tripwire that has not fired is disarmed. Stop the
    /// writers of before the cut first: their open descriptors may name
    /// files the cut dropped.
    pub fn power_on(&self) {
        let mut state = lock(&self.state);
        state.off = false;
        state.trip_at = None;
    }

    /// Whether the power is off (the tripwire fired and no
    /// [`Mounted::power_on`] since).
    pub fn is_off(&self) -> bool {
        lock(&self.state).off
    }

    /// Start (or, with `false`, stop and clear) recording each counted
    /// mutating request as `"<op> <path>"` (`"write /ota/journal.json"`,
    /// `"rename /ota/.journal.json.tmp"`: the path a node has when the
    /// request arrives), to tell what the n-th request of a run was.
    pub fn set_trace(&self, on: bool) {
        lock(&self.state).trace = on.then(Vec::new);
    }

    /// The requests recorded since [`Mounted::set_trace`]`(true)`, in
    /// order: entry `i` is request `ops` at the start + `i` + 1.
    pub fn trace(&self) -> Vec<String> {
        lock(&self.state).trace.clone().unwrap_or_default()
    }

    /// Make it a filesystem of `bytes` (`None`: unbounded, the default):
    /// a write or truncation that would make all files together larger
    /// fails with `ENOSPC`, and `statfs` reports what is left. Set it to
    /// [`Mounted::used`] for a full one.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        lock(&self.state).capacity = bytes;
    }

    /// Bytes all files hold now.
    pub fn used(&self) -> u64 {
        lock(&self.state).used()
    }

    /// While `Some(errno)`, every mutating request (see [`Mounted::ops`])
    /// fails with it, as on a failing flash (`EIO`) or a full one
    /// (`ENOSPC`); reads and lookups still work and nothing is undone.
    pub fn fail_writes(&self, errno: Option<i32>) {
        lock(&self.state).failing = errno.map(Errno::from_i32);
    }

    /// Mutating requests counted so far (write, setattr, create, mknod,
    /// mkdir, unlink, rmdir, rename, fsync, fsyncdir), the one that
    /// tripped a cut included; requests refused while the power is off
    /// are not counted.
    pub fn ops(&self) -> u64 {
        lock(&self.state).ops
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if let Err(e) = session.umount_and_join() {
            // Busy (a descriptor still open): detach it so that no stale
            // mount outlives the test.
            eprintln!(
                "powercut: unmounting {} failed ({e}); detaching it",
                self.path.display()
            );
            if let Ok(c) = std::ffi::CString::new(self.path.as_os_str().as_bytes()) {
                // SAFETY: `c` is a valid NUL-terminated path for the call's
                // duration; umount2 reads nothing else of ours.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

/// fsync every file and directory under `root` (itself included): what a
/// clean shutdown would leave on flash. Tests use it to give each store a
/// durable starting point.
pub fn sync_tree(root: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(root)? {
        let path = entry?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path)?.sync_all()?;
        }
    }
    std::fs::File::open(root)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_keeps_synced_pages_and_drops_the_rest() {
        let mut s = State::new();
        let ino = s
            .add(ROOT, OsStr::new("f"), Node::File(FileNode::default()))
            .expect("create");
        s.sync(ROOT).expect("sync root");
        let f = s.file_mut(ino).expect("file");
        f.write(0, &[1; 3 * PAGE]);
        f.sync();
        f.write(PAGE + 10, b"late");
        f.set_len(2 * PAGE);
        let cut = s.cut();
        assert_eq!(cut.files_reverted, 1);
        assert_eq!(s.file_mut(ino).expect("file").data, vec![1; 3 * PAGE]);
    }

    #[test]
    fn shrinking_then_growing_syncs_zeros() {
        let mut f = FileNode::default();
        f.write(0, &[7; 2 * PAGE]);
        f.sync();
        f.set_len(0);
        f.set_len(2 * PAGE);
        f.sync();
        assert_eq!(f.durable, vec![0; 2 * PAGE]);
    }

    #[test]
    fn the_tripwire_refuses_the_nth_mutation_and_all_after() {
        let mut s = State::new();
        let ino = s
            .add(ROOT, OsStr::new("f"), Node::File(FileNode::default()))
            .expect("create");
        s.sync(ROOT).expect("sync root");
        s.trip_at = Some(s.ops + 2);
        s.trace = Some(Vec::new());
        assert_eq!(s.mutating("write", ino, None), Ok(()));
        s.file_mut(ino).expect("file").write(0, b"lost");
        assert_eq!(
            s.mutating("fsync", ino, None),
            Err(Errno::EIO),
            "the 2nd request trips"
        );
        assert_eq!(
            s.trace.as_deref(),
            Some(&["write /f".to_string(), "fsync /f".to_string()][..])
        );
        assert!(s.off && s.trip_at.is_none());
        assert!(s.file_mut(ino).expect("file").data.is_empty(), "cut");
        assert_eq!(
            (s.mutating("write", ino, None), s.alive()),
            (Err(Errno::EIO), Err(Errno::EIO))
        );
        assert_eq!(s.ops, 2, "refused requests are not counted");
    }

    #[test]
    fn names_need_a_directory_sync() {
        let mut s = State::new();
        let dir = s
            .add(ROOT, OsStr::new("d"), Node::Dir(DirNode::default()))
            .expect("mkdir");
        s.sync(ROOT).expect("sync root");
        let file = s
            .add(dir, OsStr::new("f"), Node::File(FileNode::default()))
            .expect("create");
        s.file_mut(file).expect("file").write(0, b"data");
        s.sync(file).expect("sync file");
        let cut = s.cut();
        assert_eq!(s.lookup(dir, OsStr::new("f")), Err(Errno::ENOENT));
        assert_eq!(cut.inodes_dropped, 1);
        assert!(s.lookup(ROOT, OsStr::new("d")).is_ok());
    }
}
