//! The two kernel mechanisms behind the INODE source, behind one small
//! interface: add or remove the mark of one watched inode, and drain what
//! the kernel reported as [`Seen`] items naming the daemon's watches.
//!
//! * fanotify: one FID group for the whole daemon (groups are few: 128 per
//!   user by default), one inode mark per watched inode. Events name the
//!   marked inode by `(fsid, handle)`; events caused by the daemon's own
//!   process are dropped by their pid.
//! * inotify: one instance (unless fanotify is forced), one watch per
//!   watched inode; events name it by watch descriptor. inotify cannot tell
//!   who caused an event; the daemon changes no directory entries while it
//!   serves, so nothing of its own can show up there.
//!
//! Both fds sit in one epoll instance: the source's single fd.

use super::target::{fanotify_may_mark, Target};
use crate::core::Errno;
use crate::sys::fanotify::{self as fan, FanotifyGroup, Fid};
use crate::sys::inotify::{self as ino, Inotify};
use kevent_protocol::kevent::{KEVENT_INODE_CREATE, KEVENT_INODE_REMOVE};
use rustix::event::epoll;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use tracing::{debug, info, warn};

/// Identifies one watched inode inside the source.
pub type WatchId = u64;

/// Which mechanism serves new watches (`KEVENT_INODE_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// fanotify where it can serve, else inotify, decided per watch.
    Auto,
    /// fanotify only: a watch it cannot serve fails (for tests).
    Fanotify,
    /// inotify only.
    Inotify,
}

impl Choice {
    /// The environment variable read at start-up.
    pub const ENV: &'static str = "KEVENT_INODE_BACKEND";
    /// Test hook read at start-up: filesystem types (comma-separated) on
    /// which fanotify is treated as refused with ENODEV, as a kernel does
    /// for a filesystem with a zero fsid or no file handles, so the
    /// per-watch fallback can be tested on any kernel.
    pub const REFUSE_ENV: &'static str = "KEVENT_INODE_FANOTIFY_REFUSE";

    /// `auto`, `fanotify` or `inotify`.
    pub fn parse(s: &str) -> Option<Choice> {
        match s {
            "auto" | "" => Some(Choice::Auto),
            "fanotify" => Some(Choice::Fanotify),
            "inotify" => Some(Choice::Inotify),
            _ => None,
        }
    }

    fn from_env() -> Choice {
        let v = std::env::var(Self::ENV).unwrap_or_default();
        Choice::parse(&v).unwrap_or_else(|| {
            warn!(
                "{}={v:?} is not auto, fanotify or inotify; using auto",
                Self::ENV
            );
            Choice::Auto
        })
    }
}

/// The kernel mark of one watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mark {
    /// An inode mark of the fanotify group, named by its FID.
    Fanotify(Fid),
    /// An inotify watch descriptor.
    Inotify(i32),
}

/// What the kernel reported, in the source's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Activity on a watched inode.
    Change {
        /// The watch.
        watch: WatchId,
        /// `KEVENT_INODE_CREATE` and/or `KEVENT_INODE_REMOVE`.
        bits: u32,
        /// Its link count may have dropped (attribute change): check it.
        links: bool,
        /// The kernel says the inode is gone or its mark was dropped.
        gone: bool,
    },
    /// Events were lost: anything may have happened anywhere.
    Overflow,
}

const FAN_DIR_MASK: u64 = fan::FAN_CREATE
    | fan::FAN_DELETE
    | fan::FAN_MOVED_FROM
    | fan::FAN_MOVED_TO
    | fan::FAN_DELETE_SELF
    | fan::FAN_ONDIR;
const FAN_FILE_MASK: u64 = fan::FAN_DELETE_SELF | fan::FAN_ATTRIB;
const IN_DIR_MASK: u32 =
    ino::IN_CREATE | ino::IN_DELETE | ino::IN_MOVED_FROM | ino::IN_MOVED_TO | ino::IN_DELETE_SELF;
const IN_FILE_MASK: u32 = ino::IN_DELETE_SELF | ino::IN_ATTRIB;

const TOKEN_FANOTIFY: u64 = 1;
const TOKEN_INOTIFY: u64 = 2;

/// Entry-event bits in the kevent's terms.
fn kevent_bits(created: bool, removed: bool) -> u32 {
    (if created { KEVENT_INODE_CREATE } else { 0 })
        | (if removed { KEVENT_INODE_REMOVE } else { 0 })
}

/// A fanotify event in the source's terms, or None when it must not reach
/// any client: caused by the daemon itself, or of a mark already removed.
pub fn seen_fanotify(
    ev: &fan::FanEvent,
    own_pid: i32,
    by_fid: &HashMap<Fid, WatchId>,
) -> Option<Seen> {
    if ev.mask & fan::FAN_Q_OVERFLOW != 0 {
        return Some(Seen::Overflow);
    }
    if ev.pid == own_pid {
        return None;
    }
    let watch = *by_fid.get(ev.fid.as_ref()?)?;
    Some(Seen::Change {
        watch,
        bits: kevent_bits(
            ev.mask & (fan::FAN_CREATE | fan::FAN_MOVED_TO) != 0,
            ev.mask & (fan::FAN_DELETE | fan::FAN_MOVED_FROM) != 0,
        ),
        links: ev.mask & fan::FAN_ATTRIB != 0,
        gone: ev.mask & fan::FAN_DELETE_SELF != 0,
    })
}

/// An inotify event in the source's terms (None: a watch already removed).
pub fn seen_inotify(ev: &ino::InotifyEvent, by_wd: &HashMap<i32, WatchId>) -> Option<Seen> {
    if ev.mask & ino::IN_Q_OVERFLOW != 0 {
        return Some(Seen::Overflow);
    }
    let watch = *by_wd.get(&ev.wd)?;
    Some(Seen::Change {
        watch,
        bits: kevent_bits(
            ev.mask & (ino::IN_CREATE | ino::IN_MOVED_TO) != 0,
            ev.mask & (ino::IN_DELETE | ino::IN_MOVED_FROM) != 0,
        ),
        links: ev.mask & ino::IN_ATTRIB != 0,
        gone: ev.mask & (ino::IN_DELETE_SELF | ino::IN_UNMOUNT | ino::IN_IGNORED) != 0,
    })
}

/// The fanotify group and the inotify instance of the source.
pub struct Kernel {
    choice: Choice,
    epoll: OwnedFd,
    fan: Option<FanotifyGroup>,
    /// Why there is no fanotify group.
    fan_error: Errno,
    ino: Option<Inotify>,
    by_fid: HashMap<Fid, WatchId>,
    by_wd: HashMap<i32, WatchId>,
    own_pid: i32,
    buf: Vec<u8>,
    /// Filesystem types fanotify is made to refuse ([`Choice::REFUSE_ENV`]).
    refuse: Vec<String>,
}

/// The path through which the kernel reaches a watched inode for marking:
/// the magic link of our `O_PATH` file (fanotify_mark(2) refuses an
/// `O_PATH` fd itself, and inotify_add_watch(2) takes only paths).
fn proc_path(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_io(e)
}

impl Kernel {
    /// Reads `KEVENT_INODE_BACKEND` and sets up the fanotify group (unless
    /// inotify is forced).
    pub fn new() -> std::io::Result<Kernel> {
        let choice = Choice::from_env();
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let mut fan_error = Errno::ENODEV;
        let fan = match choice {
            Choice::Inotify => None,
            Choice::Auto | Choice::Fanotify => match FanotifyGroup::new_fid() {
                Ok(g) => {
                    epoll::add(
                        &epoll,
                        &g,
                        epoll::EventData::new_u64(TOKEN_FANOTIFY),
                        epoll::EventFlags::IN,
                    )?;
                    Some(g)
                }
                Err(e) => {
                    fan_error = io_errno(&e);
                    warn!("INODE: no fanotify FID group ({e}); every watch will use inotify");
                    None
                }
            },
        };
        info!(
            "INODE: backend {choice:?} ({}={:?})",
            Choice::ENV,
            std::env::var(Choice::ENV).unwrap_or_default()
        );
        let mut k = Kernel {
            choice,
            epoll,
            fan,
            fan_error,
            ino: None,
            by_fid: HashMap::new(),
            by_wd: HashMap::new(),
            own_pid: std::process::id() as i32,
            buf: vec![0u8; 64 * 1024],
            refuse: std::env::var(Choice::REFUSE_ENV)
                .unwrap_or_default()
                .split(',')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect(),
        };
        if !k.refuse.is_empty() {
            warn!(
                "INODE: {}: fanotify refuses {:?} (test hook)",
                Choice::REFUSE_ENV,
                k.refuse
            );
        }
        // Created up front, so the daemon's descriptors stay constant while
        // it serves; retried on first use if the per-user limit refused it.
        if choice != Choice::Fanotify {
            if let Err(e) = k.inotify() {
                warn!("INODE: no inotify instance yet ({e})");
            }
        }
        Ok(k)
    }

    /// The inotify instance, created (and put in the epoll set) if needed.
    fn inotify(&mut self) -> Result<&Inotify, Errno> {
        if self.ino.is_none() {
            let i = Inotify::new().map_err(Errno::from)?;
            epoll::add(
                &self.epoll,
                &i,
                epoll::EventData::new_u64(TOKEN_INOTIFY),
                epoll::EventFlags::IN,
            )
            .map_err(Errno::from)?;
            self.ino = Some(i);
        }
        Ok(self.ino.as_ref().expect("created above"))
    }

    /// The fd the reactor watches.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }

    /// Marks `target` for watch `id` with the chosen mechanism, and logs
    /// the choice.
    pub fn add(&mut self, id: WatchId, target: &Target) -> Result<Mark, Errno> {
        let fs = target.fstype();
        let fstype = fs.as_deref().unwrap_or("?");
        let what = if target.is_dir { "directory" } else { "file" };
        let refused = fanotify_may_mark(fs.as_deref());
        let mark = match (self.choice, refused) {
            (Choice::Inotify, _) => self.add_inotify(id, target)?,
            (Choice::Fanotify, Err(why)) => {
                warn!(
                    "INODE: {what} {} ({fstype}): fanotify forced but {why}",
                    target.key
                );
                return Err(Errno(libc::EOPNOTSUPP));
            }
            (Choice::Fanotify, Ok(())) => {
                self.add_fanotify(id, target, fstype).inspect_err(|e| {
                    warn!(
                        "INODE: {what} {} ({fstype}): fanotify refused ({e}) and is forced",
                        target.key
                    )
                })?
            }
            (Choice::Auto, Err(why)) => {
                info!(
                    "INODE: {what} {} ({fstype}): inotify, since {why}",
                    target.key
                );
                self.add_inotify(id, target)?
            }
            (Choice::Auto, Ok(())) => match self.add_fanotify(id, target, fstype) {
                Ok(m) => m,
                Err(e) => {
                    info!(
                        "INODE: {what} {} ({fstype}): fanotify refused ({e}), using inotify",
                        target.key
                    );
                    self.add_inotify(id, target)?
                }
            },
        };
        let how = match mark {
            Mark::Fanotify(_) => "fanotify",
            Mark::Inotify(_) => "inotify",
        };
        info!(
            "INODE: watching {what} {} ({fstype}) with {how}",
            target.key
        );
        Ok(mark)
    }

    fn add_fanotify(&mut self, id: WatchId, t: &Target, fstype: &str) -> Result<Mark, Errno> {
        let Some(g) = self.fan.as_ref() else {
            return Err(self.fan_error);
        };
        if self.refuse.iter().any(|f| f == fstype) {
            return Err(Errno::ENODEV);
        }
        let path = proc_path(t.path.as_fd());
        let mask = if t.is_dir {
            FAN_DIR_MASK
        } else {
            FAN_FILE_MASK
        };
        g.mark(&path, mask).map_err(|e| io_errno(&e))?;
        let fid = rustix::fs::fstatvfs(&t.path)
            .map_err(Errno::from)
            .and_then(|vfs| {
                // The handle in constant time; the group's fdinfo (all its
                // marks) only where the kernel will not encode one for us.
                let handle = match crate::sys::handle::fid_handle(t.path.as_fd()) {
                    Ok(h) => Ok(Some(h)),
                    Err(_) => g.mark_handle(t.key.major, t.key.minor, t.key.ino),
                };
                match handle.map_err(|e| io_errno(&e))? {
                    Some(handle) => Ok(Fid {
                        fsid: vfs.f_fsid,
                        handle,
                    }),
                    None => Err(Errno(libc::EOPNOTSUPP)),
                }
            });
        match fid {
            Ok(fid) => {
                self.by_fid.insert(fid.clone(), id);
                Ok(Mark::Fanotify(fid))
            }
            Err(e) => {
                debug!("INODE: no handle for the mark on {}: {e}", t.key);
                let _ = g.unmark(&path, mask);
                Err(e)
            }
        }
    }

    fn add_inotify(&mut self, id: WatchId, t: &Target) -> Result<Mark, Errno> {
        let i = self.inotify()?;
        let mask = if t.is_dir { IN_DIR_MASK } else { IN_FILE_MASK };
        let wd = i
            .add_watch(&proc_path(t.path.as_fd()), mask)
            .map_err(Errno::from)?;
        self.by_wd.insert(wd, id);
        Ok(Mark::Inotify(wd))
    }

    /// Removes a mark; `path` is the watch's `O_PATH` file, still open.
    /// Failures are harmless (the kernel may have dropped the mark itself).
    pub fn remove(&mut self, mark: &Mark, path: BorrowedFd<'_>) {
        match mark {
            Mark::Fanotify(fid) => {
                self.by_fid.remove(fid);
                if let Some(g) = &self.fan {
                    if let Err(e) = g.unmark(&proc_path(path), FAN_DIR_MASK | FAN_FILE_MASK) {
                        debug!("INODE: fanotify unmark: {e}");
                    }
                }
            }
            Mark::Inotify(wd) => {
                self.by_wd.remove(wd);
                if let Some(i) = &self.ino {
                    if let Err(e) = i.remove_watch(*wd) {
                        debug!("INODE: inotify_rm_watch({wd}): {e}");
                    }
                }
            }
        }
    }

    /// Reads everything both fds hold (never blocks).
    pub fn drain(&mut self, out: &mut Vec<Seen>) {
        let mut buf = std::mem::take(&mut self.buf);
        if let Some(g) = &self.fan {
            read_until_empty(
                "fanotify",
                &mut buf,
                |b| g.read(b),
                |bytes| {
                    for ev in fan::parse_events(bytes) {
                        if ev.fd >= 0 {
                            // Never in a FID group; it would be a descriptor leak.
                            warn!("INODE: fanotify event with fd {}", ev.fd);
                        }
                        if ev.pid == self.own_pid {
                            debug!("INODE: dropped an event the daemon caused ({:#x})", ev.mask);
                        }
                        out.extend(seen_fanotify(&ev, self.own_pid, &self.by_fid));
                    }
                },
            );
        }
        if let Some(i) = &self.ino {
            read_until_empty(
                "inotify",
                &mut buf,
                |b| i.read(b).map_err(Into::into),
                |bytes| {
                    out.extend(
                        ino::parse_events(bytes)
                            .iter()
                            .filter_map(|ev| seen_inotify(ev, &self.by_wd)),
                    )
                },
            );
        }
        self.buf = buf;
    }
}

/// Reads a non-blocking notification fd until it is empty (0 bytes or an
/// error, logged), handing each chunk of whole records to `parse`.
fn read_until_empty(
    what: &str,
    buf: &mut [u8],
    mut read: impl FnMut(&mut [u8]) -> std::io::Result<usize>,
    mut parse: impl FnMut(&[u8]),
) {
    loop {
        let n = match read(buf) {
            Ok(n) => n,
            Err(e) => {
                warn!("INODE: {what} read: {e}");
                0
            }
        };
        if n == 0 {
            return;
        }
        parse(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fanotify::{FanEvent, FileHandle};
    use crate::sys::inotify::InotifyEvent;

    /// What watch 10 is expected to report.
    fn change(bits: u32, links: bool, gone: bool) -> Option<Seen> {
        Some(Seen::Change {
            watch: 10,
            bits,
            links,
            gone,
        })
    }

    fn fid(n: u8) -> Fid {
        Fid {
            fsid: 7,
            handle: FileHandle {
                handle_type: 1,
                bytes: vec![n; 8],
            },
        }
    }

    #[test]
    fn backend_choice_parses() {
        assert_eq!(Choice::parse("auto"), Some(Choice::Auto));
        assert_eq!(Choice::parse(""), Some(Choice::Auto));
        assert_eq!(Choice::parse("fanotify"), Some(Choice::Fanotify));
        assert_eq!(Choice::parse("inotify"), Some(Choice::Inotify));
        assert_eq!(Choice::parse("dnotify"), None);
    }

    #[test]
    fn fanotify_events_map_to_kevent_bits() {
        let by_fid = HashMap::from([(fid(1), 10)]);
        let ev = |mask| FanEvent {
            mask,
            pid: 55,
            fd: -1,
            fid: Some(fid(1)),
        };
        let c = KEVENT_INODE_CREATE;
        let r = KEVENT_INODE_REMOVE;
        assert_eq!(
            seen_fanotify(&ev(fan::FAN_CREATE | fan::FAN_ONDIR), 1, &by_fid),
            change(c, false, false)
        );
        assert_eq!(
            seen_fanotify(&ev(fan::FAN_MOVED_TO), 1, &by_fid),
            change(c, false, false)
        );
        assert_eq!(
            seen_fanotify(&ev(fan::FAN_DELETE), 1, &by_fid),
            change(r, false, false)
        );
        assert_eq!(
            seen_fanotify(&ev(fan::FAN_MOVED_FROM), 1, &by_fid),
            change(r, false, false)
        );
        // Merged by the kernel: a rename inside the directory.
        assert_eq!(
            seen_fanotify(&ev(fan::FAN_MOVED_FROM | fan::FAN_MOVED_TO), 1, &by_fid),
            change(c | r, false, false)
        );
        assert_eq!(
            seen_fanotify(&ev(fan::FAN_ATTRIB), 1, &by_fid),
            change(0, true, false)
        );
        assert_eq!(
            seen_fanotify(&ev(fan::FAN_DELETE_SELF), 1, &by_fid),
            change(0, false, true)
        );
    }

    #[test]
    fn the_daemons_own_events_never_reach_clients() {
        let by_fid = HashMap::from([(fid(1), 10)]);
        let ev = FanEvent {
            mask: fan::FAN_CREATE,
            pid: 4242,
            fd: -1,
            fid: Some(fid(1)),
        };
        assert_eq!(seen_fanotify(&ev, 4242, &by_fid), None);
        assert!(seen_fanotify(&ev, 4243, &by_fid).is_some());
    }

    #[test]
    fn events_of_removed_marks_and_overflows() {
        let by_fid = HashMap::from([(fid(1), 10)]);
        let stale = FanEvent {
            mask: fan::FAN_CREATE,
            pid: 5,
            fd: -1,
            fid: Some(fid(2)),
        };
        assert_eq!(seen_fanotify(&stale, 1, &by_fid), None);
        let overflow = FanEvent {
            mask: fan::FAN_Q_OVERFLOW,
            pid: 0,
            fd: -1,
            fid: None,
        };
        assert_eq!(seen_fanotify(&overflow, 1, &by_fid), Some(Seen::Overflow));
    }

    #[test]
    fn inotify_events_map_like_fanotify_ones() {
        let by_wd = HashMap::from([(3, 10)]);
        let ev = |wd, mask| InotifyEvent {
            wd,
            mask,
            cookie: 0,
        };
        let c = KEVENT_INODE_CREATE;
        let r = KEVENT_INODE_REMOVE;
        assert_eq!(
            seen_inotify(&ev(3, ino::IN_CREATE | libc::IN_ISDIR), &by_wd),
            change(c, false, false)
        );
        assert_eq!(
            seen_inotify(&ev(3, ino::IN_MOVED_TO), &by_wd),
            change(c, false, false)
        );
        assert_eq!(
            seen_inotify(&ev(3, ino::IN_DELETE), &by_wd),
            change(r, false, false)
        );
        assert_eq!(
            seen_inotify(&ev(3, ino::IN_MOVED_FROM), &by_wd),
            change(r, false, false)
        );
        assert_eq!(
            seen_inotify(&ev(3, ino::IN_ATTRIB), &by_wd),
            change(0, true, false)
        );
        assert_eq!(
            seen_inotify(&ev(3, ino::IN_DELETE_SELF), &by_wd),
            change(0, false, true)
        );
        assert_eq!(
            seen_inotify(&ev(3, ino::IN_IGNORED), &by_wd),
            change(0, false, true)
        );
        assert_eq!(
            seen_inotify(&ev(3, ino::IN_UNMOUNT), &by_wd),
            change(0, false, true)
        );
        assert_eq!(seen_inotify(&ev(4, ino::IN_CREATE), &by_wd), None);
        assert_eq!(
            seen_inotify(&ev(-1, ino::IN_Q_OVERFLOW), &by_wd),
            Some(Seen::Overflow)
        );
    }
}
