//! KEVENT_INODE (docs/ABI.md §4 and §5 item 4): `id.raw[0]` is the
//! caller's descriptor of a directory or file. A directory's kevent is
//! ready when an entry appears in it (CREATE: create, mkdir, symlink, mknod,
//! link, rename into it) or disappears (REMOVE: unlink, rmdir, rename out
//! of it). When the watched inode itself is deleted, its kevents are
//! delivered BROKEN|DONE; a watched regular file (or device node) reports
//! only that. Delivered kevents carry DONE and ret_data 0, as in 2006.
//! Non-oneshot kevents are edge-triggered and coalesce (the core keeps each
//! on its ready list at most once).
//!
//! # Implementation notes
//! * The caller's descriptor is reached as an `O_PATH` file through
//!   `/proc/<tid>/fd/<n>` (module `target`). Descriptors that do not exist
//!   give ENODEV, sockets/pipes/FIFOs/symlinks/anonymous inodes EINVAL, a
//!   caller the daemon cannot see EPERM, an inode already deleted ENOENT.
//! * One watch per inode ([`InodeKey`]): every kevent on the same inode, from
//!   any queue, shares one kernel mark, removed with the last kevent.
//! * The mark is a fanotify inode mark in the daemon's FID group
//!   (FAN_CREATE|FAN_DELETE|FAN_MOVED_FROM|FAN_MOVED_TO|FAN_ONDIR|
//!   FAN_DELETE_SELF for directories, FAN_DELETE_SELF|FAN_ATTRIB for files).
//!   Where fanotify is refused (no FID group: Linux < 5.1 or no
//!   CAP_SYS_ADMIN; a filesystem without file handles or with a zero fsid;
//!   the mark limit) or must not be asked (FUSE, network filesystems:
//!   marking calls their statfs), the watch uses inotify instead, chosen per
//!   watch and logged (module `kernel`). Linux 6.1 and 6.18 serve ext4,
//!   tmpfs, devtmpfs and the initramfs root with fanotify.
//!   `KEVENT_INODE_BACKEND=auto|fanotify|inotify` in the daemon's
//!   environment forces one mechanism (tests run the same program under
//!   both); `KEVENT_INODE_FANOTIFY_REFUSE=tmpfs,...` makes fanotify refuse
//!   those filesystem types, to test the fallback on kernels that would not.
//! * Events the daemon's own process caused are dropped (fanotify reports
//!   the pid; with inotify there are none, as the daemon changes no entries
//!   while serving).
//! * Deletion: the `O_PATH` file pins the dentry, so the kernel's own
//!   DELETE_SELF would only come once the daemon lets go (it also waits for
//!   the caller's descriptors: rmdir of a directory a program holds open
//!   sends nothing to the directory's mark). The daemon therefore checks the
//!   link count itself, from cached attributes: at once on an attribute
//!   event (an unlink of a file sends one to the file), and for every watch
//!   every [`SWEEP`] (an rmdir sends nothing to the removed directory).
//!   Link count 0 means deleted: BROKEN|DONE, then the mark goes.
//! * Pinning keeps the filesystem busy: umount of a filesystem with watched
//!   inodes fails with EBUSY until their kevents are removed (2006 held an
//!   inode reference instead, which the daemon cannot).
//! * Kernel events queued before a kevent was added or modified are read
//!   first and judged by the registrations as they were (see
//!   `InodeSource::stash_pending`); a lost-events overflow fires every
//!   kevent that asked for CREATE or REMOVE.

mod kernel;
mod target;

pub use kernel::Choice as Backend;
pub use target::InodeKey;

use super::{Notice, Outcome, Source, SourceCtx};
use crate::core::{Caller, Errno, RegId};
use kernel::{Kernel, Mark, Seen, WatchId};
use kevent_protocol::kevent::{Ukevent, KEVENT_INODE_CREATE, KEVENT_INODE_REMOVE};
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// How often every watched inode's link count is checked, for deletions no
/// event announces (rmdir of a directory).
pub const SWEEP: Duration = Duration::from_millis(200);

/// One watched inode and the kevents sharing its mark.
struct Watch {
    key: InodeKey,
    /// `O_PATH` file: pins the inode, names it for unmarking, and gives
    /// its link count.
    path: OwnedFd,
    mark: Mark,
    /// Every kevent on this inode.
    regs: HashSet<RegId>,
    /// The kevents not yet reported since their last delivery, by their
    /// CREATE/REMOVE bits (index `event & 3`): a change takes only those
    /// that want it, so each kevent costs O(1) per delivery however many
    /// share the inode, and REMOVE of one is O(1).
    armed: [HashSet<RegId>; 4],
}

impl Watch {
    fn disarm(&mut self, reg: RegId, event: u32) {
        self.armed[class(event)].remove(&reg);
    }
}

/// The armed set a kevent with `event` belongs to.
fn class(event: u32) -> usize {
    (event & (KEVENT_INODE_CREATE | KEVENT_INODE_REMOVE)) as usize
}

/// One registered kevent.
struct Reg {
    /// None once its inode was deleted (BROKEN already reported).
    watch: Option<WatchId>,
    /// The requested CREATE/REMOVE bits.
    event: u32,
    /// In its watch's armed set (not reported since its last delivery).
    armed: bool,
}

/// The INODE source.
pub struct InodeSource {
    kernel: Kernel,
    watches: HashMap<WatchId, Watch>,
    by_inode: HashMap<InodeKey, WatchId>,
    regs: HashMap<RegId, Reg>,
    next_watch: WatchId,
    /// Notices found while reading the kernel outside `process`.
    pending: Vec<Notice>,
    pending_since: Option<Instant>,
    next_sweep: Option<Instant>,
}

impl InodeSource {
    /// Sets up the kernel side (fanotify group unless inotify is forced by
    /// `KEVENT_INODE_BACKEND`).
    pub fn new() -> std::io::Result<Self> {
        Ok(InodeSource {
            kernel: Kernel::new()?,
            watches: HashMap::new(),
            by_inode: HashMap::new(),
            regs: HashMap::new(),
            next_watch: 1,
            pending: Vec::new(),
            pending_since: None,
            next_sweep: None,
        })
    }

    /// Number of watched inodes (kernel marks).
    pub fn watch_count(&self) -> usize {
        self.watches.len()
    }

    fn new_watch(&mut self, t: target::Target) -> Result<WatchId, Errno> {
        let id = self.next_watch;
        let mark = self.kernel.add(id, &t)?;
        self.next_watch += 1;
        self.by_inode.insert(t.key, id);
        self.watches.insert(
            id,
            Watch {
                key: t.key,
                path: t.path,
                mark,
                regs: HashSet::new(),
                armed: Default::default(),
            },
        );
        self.next_sweep
            .get_or_insert_with(|| Instant::now() + SWEEP);
        Ok(id)
    }

    /// Reads what the kernel queued so far and keeps the notices for the
    /// next `process`, so that events from before an ADD or MODIFY are
    /// judged by the registrations as they were then.
    fn stash_pending(&mut self) {
        let mut found = Vec::new();
        self.collect(&mut found);
        if !found.is_empty() {
            self.pending.extend(found);
            self.pending_since.get_or_insert_with(Instant::now);
        }
    }

    /// Reads the kernel and turns what it says into notices.
    fn collect(&mut self, out: &mut Vec<Notice>) {
        let mut seen = Vec::new();
        self.kernel.drain(&mut seen);
        for s in seen {
            match s {
                Seen::Change {
                    watch,
                    bits,
                    links,
                    gone,
                } => self.apply(watch, bits, links, gone, out),
                Seen::Overflow => {
                    warn!("INODE: the kernel lost events; firing every INODE kevent");
                    let all: Vec<WatchId> = self.watches.keys().copied().collect();
                    // (Each kevent is reported once per delivery: O(K).)
                    for w in all {
                        self.apply(
                            w,
                            KEVENT_INODE_CREATE | KEVENT_INODE_REMOVE,
                            true,
                            false,
                            out,
                        );
                    }
                }
            }
        }
    }

    fn apply(&mut self, w: WatchId, bits: u32, links: bool, gone: bool, out: &mut Vec<Notice>) {
        let Some(watch) = self.watches.get_mut(&w) else {
            return;
        };
        if bits != 0 {
            for (c, set) in watch.armed.iter_mut().enumerate() {
                if c as u32 & bits == 0 {
                    continue;
                }
                for reg in set.drain() {
                    if let Some(r) = self.regs.get_mut(&reg) {
                        r.armed = false;
                    }
                    out.push(Notice { reg, broken: false });
                }
            }
        }
        if gone || (links && target::links(watch.path.as_fd()) == Some(0)) {
            self.kill(w, out);
        }
    }

    /// The watched inode was deleted: every kevent on it is broken, and the
    /// mark goes.
    fn kill(&mut self, w: WatchId, out: &mut Vec<Notice>) {
        let Some(watch) = self.watches.remove(&w) else {
            return;
        };
        info!(
            "INODE: {} deleted; {} kevent(s) broken",
            watch.key,
            watch.regs.len()
        );
        self.by_inode.remove(&watch.key);
        self.kernel.remove(&watch.mark, watch.path.as_fd());
        for reg in watch.regs {
            if let Some(r) = self.regs.get_mut(&reg) {
                r.watch = None;
            }
            out.push(Notice { reg, broken: true });
        }
    }

    /// Checks the link count of every watched inode.
    fn sweep(&mut self, now: Instant, out: &mut Vec<Notice>) {
        let dead: Vec<WatchId> = self
            .watches
            .iter()
            .filter(|(_, w)| target::links(w.path.as_fd()) == Some(0))
            .map(|(id, _)| *id)
            .collect();
        for w in dead {
            self.kill(w, out);
        }
        self.next_sweep = (!self.watches.is_empty()).then(|| now + SWEEP);
    }
}

/// The INODE row of [`super::TABLE`].
pub fn build(_ctx: &SourceCtx) -> std::io::Result<Box<dyn Source>> {
    Ok(Box::new(InodeSource::new()?))
}

impl Source for InodeSource {
    fn name(&self) -> &'static str {
        "inode"
    }

    fn register(&mut self, reg: RegId, uk: &Ukevent, caller: &Caller) -> Outcome {
        let t = match target::open(caller.tid, uk.id[0]) {
            Ok(t) => t,
            Err(e) => {
                debug!("INODE: fd {} of tid {}: {e}", uk.id[0], caller.tid);
                return Outcome::Failed(e);
            }
        };
        if t.nlink == 0 {
            return Outcome::Failed(Errno::ENOENT);
        }
        if self.by_inode.contains_key(&t.key) {
            self.stash_pending();
        }
        let w = match self.by_inode.get(&t.key) {
            Some(&w) => w,
            None => match self.new_watch(t) {
                Ok(w) => w,
                Err(e) => return Outcome::Failed(e),
            },
        };
        let watch = self.watches.get_mut(&w).expect("indexed watch");
        watch.regs.insert(reg);
        watch.armed[class(uk.event)].insert(reg);
        self.regs.insert(
            reg,
            Reg {
                watch: Some(w),
                event: uk.event,
                armed: true,
            },
        );
        Outcome::Queued
    }

    fn modify(&mut self, reg: RegId, uk: &Ukevent, _caller: &Caller) -> Outcome {
        self.stash_pending();
        match self.regs.get_mut(&reg) {
            Some(r) if r.watch.is_some() => {
                if r.armed {
                    let watch = self
                        .watches
                        .get_mut(&r.watch.expect("checked"))
                        .expect("indexed");
                    watch.disarm(reg, r.event);
                    watch.armed[class(uk.event)].insert(reg);
                }
                r.event = uk.event;
                // Nothing is level-triggered here: never ready at once.
                Outcome::Queued
            }
            // Its inode was deleted (BROKEN already on its way).
            _ => Outcome::Failed(Errno::ENOENT),
        }
    }

    fn unregister(&mut self, reg: RegId) {
        let Some(Reg {
            watch: Some(w),
            event,
            ..
        }) = self.regs.remove(&reg)
        else {
            return;
        };
        let Some(watch) = self.watches.get_mut(&w) else {
            return;
        };
        watch.regs.remove(&reg);
        watch.disarm(reg, event);
        if watch.regs.is_empty() {
            let watch = self.watches.remove(&w).expect("present");
            debug!("INODE: last kevent on {} gone; mark removed", watch.key);
            self.by_inode.remove(&watch.key);
            self.kernel.remove(&watch.mark, watch.path.as_fd());
            if self.watches.is_empty() {
                self.next_sweep = None;
            }
        }
    }

    fn ret_data(&self, _reg: RegId) -> [u32; 2] {
        [0, 0]
    }

    fn delivered(&mut self, reg: RegId) {
        // Reported and delivered: it may be reported again.
        let Some(r) = self.regs.get_mut(&reg) else {
            return;
        };
        let Some(watch) = r.watch.and_then(|w| self.watches.get_mut(&w)) else {
            return;
        };
        if !r.armed {
            r.armed = true;
            watch.armed[class(r.event)].insert(reg);
        }
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.kernel.fd())
    }

    fn process(&mut self, now: Instant, out: &mut Vec<Notice>) {
        out.append(&mut self.pending);
        self.pending_since = None;
        self.collect(out);
        if self.next_sweep.is_some_and(|t| t <= now) {
            self.sweep(now, out);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        match (self.pending_since, self.next_sweep) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
