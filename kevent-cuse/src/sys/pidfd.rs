//! A caller's descriptors, reached from the daemon (docs/ABI.md §4:
//! `id.raw[0]` of SOCKET, POLL and INODE is a descriptor of the caller;
//! docs/WIRE.md, "Watching a caller's descriptor without keeping it alive").
//!
//! # The descriptor rule
//! A descriptor number means something only in one descriptor table, and
//! the table that counts is the one of the thread making the call, at the
//! moment of the call: a fork child has its own table, a thread made with
//! clone() without CLONE_FILES has its own table while sharing its
//! process's pid, and a registrant may since have exec'd a setuid program.
//! [`CallerThread::open`] therefore opens a pidfd of the calling *thread*
//! (the request header's pid is the caller's thread id) with
//! `PIDFD_THREAD` (Linux 6.9+); [`CallerThread::fetch`] copies one of its
//! descriptors with `pidfd_getfd`, which reads the table of the task the
//! pidfd names. The pidfd is opened per call and closed after it: nothing
//! is cached, so a descriptor is never looked up in a process other than
//! the caller (a MODIFY from a fork child resolves in the child, never in
//! the registering parent).
//!
//! On kernels without `PIDFD_THREAD` (6.1 of Debian bookworm), pidfd_open
//! accepts only a thread-group leader. The daemon then opens the caller's
//! process (the `Tgid:` of `/proc/TID/status`) and, when the caller is not
//! the leader, checks that the descriptor the leader's table yields is the
//! file `/proc/TID/fd/N` names in the caller's own table (same device and
//! inode, found with a stat that opens nothing): a thread that shares its
//! process's table passes; a thread with a table of its own (clone without
//! CLONE_FILES, not the leader) is refused with EOPNOTSUPP for that
//! ukevent, because its table cannot be reached on that kernel.
//!
//! A caller that cannot be resolved gets a per-ukevent errno: EPERM when
//! it is not visible (another pid namespace: header pid 0, or gone),
//! ENODEV when the descriptor does not exist in its table, EOPNOTSUPP as
//! above. Only pidfds of callers are opened, and only while serving their
//! request (the caller is blocked in it, so its thread id names it).
//!
//! # Own device and other userspace-served files
//! Polling or closing a file served by a FUSE or CUSE server makes the
//! kernel send that server a request and wait for its answer. When the
//! server is this daemon, doing so on the request loop deadlocks it
//! (docs/WIRE.md, "Ordering pitfalls"). [`examine`] tells such files apart
//! without sending any request: `statx` with `AT_STATX_DONT_SYNC` (never a
//! GETATTR), the st_rdev of the CUSE node or the st_dev of the FUSE mount
//! ([`OwnDevice`]), the mount's type in mountinfo, the sysfs class of a
//! character device, and `readlink` of `/proc/self/fd/N` for epoll
//! instances (polling one polls what it contains). Nothing in this module
//! polls or closes a caller's file itself.

use crate::core::Errno;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{statx, AtFlags, StatxFlags};
use rustix::process::{pidfd_getfd, pidfd_open, Pid, PidfdFlags, PidfdGetfdFlags};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Weak};

/// `Tgid:` of a `/proc/PID/status` text.
pub fn parse_tgid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The process (thread group) of thread `tid`.
pub fn tgid_of(tid: u32) -> io::Result<u32> {
    let s = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
    parse_tgid(&s).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Tgid line"))
}

/// A caller process, pinned by a pidfd (a pidfd never refers to a later
/// process that reuses the number).
#[derive(Debug)]
pub struct CallerProcess {
    pidfd: OwnedFd,
    tgid: u32,
}

/// Errors of pidfd_open / pidfd_getfd as the per-ukevent errno of docs/ABI.md §4.
fn getfd_errno(e: rustix::io::Errno) -> Errno {
    match e {
        // "An fd that does not exist gives BROKEN|DONE (ENODEV in 2006)."
        rustix::io::Errno::BADF => Errno::ENODEV,
        // Not ours to see: no ptrace rights, or the process is gone.
        rustix::io::Errno::PERM | rustix::io::Errno::ACCESS | rustix::io::Errno::SRCH => {
            Errno::EPERM
        }
        rustix::io::Errno::MFILE | rustix::io::Errno::NFILE | rustix::io::Errno::NOMEM => {
            Errno::ENOMEM
        }
        e => e.into(),
    }
}

impl CallerProcess {
    /// Opens process `tgid`.
    pub fn open(tgid: u32) -> Result<Self, Errno> {
        let pid = i32::try_from(tgid)
            .ok()
            .and_then(Pid::from_raw)
            .ok_or(Errno::EPERM)?;
        let pidfd = pidfd_open(pid, PidfdFlags::empty()).map_err(getfd_errno)?;
        Ok(CallerProcess { pidfd, tgid })
    }

    /// Its pid in the daemon's namespace.
    pub fn tgid(&self) -> u32 {
        self.tgid
    }

    /// False once the process has exited (its pidfd turns readable).
    pub fn alive(&self) -> bool {
        let mut fds = [PollFd::new(&self.pidfd, PollFlags::IN)];
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(poll(&mut fds, Some(&zero)), Ok(0))
    }

    /// The daemon's own descriptor (O_CLOEXEC) of the caller's `fd`.
    pub fn fetch(&self, fd: u32) -> Result<OwnedFd, Errno> {
        let raw = i32::try_from(fd).map_err(|_| Errno::ENODEV)?;
        pidfd_getfd(&self.pidfd, raw, PidfdGetfdFlags::empty()).map_err(getfd_errno)
    }

    /// Reads `/proc/TGID/<rel>` of this process (its network namespace for
    /// `net/tcp`...), or `None` if the process is gone. The pid cannot have
    /// been reused while the pidfd says the process is alive before and
    /// after the read.
    pub fn read_proc(&self, rel: &str) -> Option<String> {
        if !self.alive() {
            return None;
        }
        let text = std::fs::read_to_string(format!("/proc/{}/{rel}", self.tgid)).ok()?;
        self.alive().then_some(text)
    }
}

/// `PIDFD_THREAD` (= `O_EXCL`): a pidfd of one thread (Linux 6.9+).
const PIDFD_THREAD: u32 = 0o200;

/// The calling thread of one request, pinned by a pidfd for the duration
/// of the call (see "The descriptor rule" in the module doc).
#[derive(Debug)]
pub struct CallerThread {
    pidfd: OwnedFd,
    tid: u32,
    /// Fallback (no `PIDFD_THREAD`): the pidfd is the process's and the
    /// caller is not its leader; each fetch is checked against the
    /// caller's own table.
    via_leader: bool,
}

/// Whether this kernel knows `PIDFD_THREAD` (probed once, on ourselves).
pub fn have_pidfd_thread() -> bool {
    static HAVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAVE.get_or_init(|| {
        let me = Pid::from_raw(nix::unistd::gettid().as_raw());
        me.is_some_and(|me| pidfd_open(me, PidfdFlags::from_bits_retain(PIDFD_THREAD)).is_ok())
    })
}

impl CallerThread {
    /// Opens thread `tid` (the request header's pid; 0 = not visible).
    pub fn open(tid: u32) -> Result<Self, Errno> {
        let pid = i32::try_from(tid)
            .ok()
            .and_then(Pid::from_raw)
            .ok_or(Errno::EPERM)?;
        if have_pidfd_thread() {
            let pidfd =
                pidfd_open(pid, PidfdFlags::from_bits_retain(PIDFD_THREAD)).map_err(getfd_errno)?;
            return Ok(CallerThread {
                pidfd,
                tid,
                via_leader: false,
            });
        }
        let tgid = tgid_of(tid).map_err(|_| Errno::EPERM)?;
        let p = CallerProcess::open(tgid)?;
        Ok(CallerThread {
            pidfd: p.pidfd,
            tid,
            via_leader: tgid != tid,
        })
    }

    /// Its thread id in the daemon's namespace.
    pub fn tid(&self) -> u32 {
        self.tid
    }

    /// The daemon's own descriptor (O_CLOEXEC) of the caller's `fd`, from
    /// the calling thread's table.
    pub fn fetch(&self, fd: u32) -> Result<OwnedFd, Errno> {
        let raw = i32::try_from(fd).map_err(|_| Errno::ENODEV)?;
        let file = pidfd_getfd(&self.pidfd, raw, PidfdGetfdFlags::empty()).map_err(getfd_errno)?;
        if self.via_leader && !same_file(&file, self.tid, fd) {
            // The leader's table, not the caller's: never use it. The copy
            // is handed back to be closed where closing is safe.
            return Err(Errno::EOPNOTSUPP).inspect_err(|_| drop_later(file));
        }
        Ok(file)
    }
}

/// Whether `file` is the file of `/proc/TID/fd/N` (a stat through the
/// magic link: nothing is opened, no FUSE request is sent).
fn same_file(file: &OwnedFd, tid: u32, fd: u32) -> bool {
    let flags = AtFlags::STATX_DONT_SYNC;
    let mine = statx(file, "", flags | AtFlags::EMPTY_PATH, StatxFlags::INO);
    let theirs = statx(
        rustix::fs::CWD,
        format!("/proc/{tid}/fd/{fd}"),
        flags,
        StatxFlags::INO,
    );
    match (mine, theirs) {
        (Ok(a), Ok(b)) => {
            (a.stx_dev_major, a.stx_dev_minor, a.stx_ino)
                == (b.stx_dev_major, b.stx_dev_minor, b.stx_ino)
        }
        _ => false,
    }
}

/// A file fetched for nothing (the fallback's mismatch): closing it may
/// need a FUSE server's answer, so it is closed on a short-lived thread of
/// its own, never on a serving thread.
fn drop_later(file: OwnedFd) {
    let _ = std::thread::Builder::new()
        .name("kevent-close".into())
        .spawn(move || drop(file));
}

/// Pidfds of the callers with live watches, by process. Entries are weak:
/// a pidfd is closed as soon as no watch needs it.
#[derive(Debug, Default)]
pub struct ProcCache {
    map: HashMap<u32, Weak<CallerProcess>>,
}

impl ProcCache {
    /// The process of thread `tid` (the request header's pid). Thread id 0
    /// means the caller is outside the daemon's pid namespace: EPERM.
    pub fn get(&mut self, tid: u32) -> Result<Arc<CallerProcess>, Errno> {
        if tid == 0 {
            return Err(Errno::EPERM);
        }
        let tgid = tgid_of(tid).map_err(|_| Errno::EPERM)?;
        if let Some(p) = self.map.get(&tgid).and_then(Weak::upgrade) {
            // A live process keeps its pid: the entry is still that process.
            if p.alive() {
                return Ok(p);
            }
        }
        let p = Arc::new(CallerProcess::open(tgid)?);
        if self.map.len() >= 64 {
            self.map.retain(|_, w| w.strong_count() > 0);
        }
        self.map.insert(tgid, Arc::downgrade(&p));
        Ok(p)
    }
}

/// Identity of the device this daemon serves, to recognise it among a
/// caller's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OwnDevice {
    /// The CUSE character device: its st_rdev (major, minor).
    CharDevice(u32, u32),
    /// The FUSE mount on a file: its st_dev (major, minor).
    Mount(u32, u32),
    /// Unknown (not yet set, or tests): only the generic rules apply.
    #[default]
    Unknown,
}

impl OwnDevice {
    /// The CUSE node `/dev/NAME`.
    pub fn of_char_device(node: &Path) -> io::Result<Self> {
        let st = statx(rustix::fs::CWD, node, AtFlags::empty(), StatxFlags::TYPE)?;
        Ok(OwnDevice::CharDevice(st.stx_rdev_major, st.stx_rdev_minor))
    }

    /// The FUSE-mounted file. `AT_STATX_DONT_SYNC`: the daemon must not ask
    /// itself for attributes before its loop runs.
    pub fn of_mount(node: &Path) -> io::Result<Self> {
        let st = statx(
            rustix::fs::CWD,
            node,
            AtFlags::STATX_DONT_SYNC,
            StatxFlags::TYPE,
        )?;
        Ok(OwnDevice::Mount(st.stx_dev_major, st.stx_dev_minor))
    }

    /// The served node, after setup: `/dev/NAME` under CUSE, the mounted
    /// file otherwise. Unknown (with a warning) if it cannot be examined;
    /// the generic rules of [`examine`] still keep the device off the
    /// request loop then (class `cuse`, filesystem type `fuse.*`).
    pub fn of_served(cuse: bool, node: &Path) -> Self {
        let id = if cuse {
            Self::of_char_device(node)
        } else {
            Self::of_mount(node)
        };
        id.unwrap_or_else(|e| {
            tracing::warn!("cannot identify {}: {e}", node.display());
            OwnDevice::Unknown
        })
    }

    fn matches(&self, f: &FileFacts) -> bool {
        match *self {
            OwnDevice::CharDevice(ma, mi) => f.kind == FileKind::Char && f.rdev == (ma, mi),
            OwnDevice::Mount(ma, mi) => f.dev == (ma, mi),
            OwnDevice::Unknown => false,
        }
    }
}

/// The type bits of a file, as far as the sources care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// S_IFSOCK.
    Socket,
    /// S_IFIFO.
    Fifo,
    /// S_IFCHR.
    Char,
    /// S_IFREG, S_IFDIR, S_IFBLK, S_IFLNK.
    Other,
    /// No type bits: an anonymous inode (eventfd, epoll, timerfd...).
    Anon,
}

impl FileKind {
    fn of_mode(mode: u32) -> Self {
        match mode & libc::S_IFMT {
            libc::S_IFSOCK => FileKind::Socket,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFCHR => FileKind::Char,
            0 => FileKind::Anon,
            _ => FileKind::Other,
        }
    }
}

/// Who answers when a file is polled or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The kernel alone: safe on the request loop.
    Kernel,
    /// Possibly a FUSE or CUSE server — this daemon included: only the
    /// offload thread may poll, epoll or close it.
    Userspace,
}

/// What the daemon learnt about a fetched file without asking any server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFacts {
    /// Its type.
    pub kind: FileKind,
    /// st_dev (major, minor).
    pub dev: (u32, u32),
    /// st_rdev (major, minor).
    pub rdev: (u32, u32),
    /// st_ino.
    pub ino: u64,
    /// Who answers its poll and close.
    pub reach: Reach,
    /// It is this daemon's own device (a kevent queue it serves): the
    /// daemon must never keep such a file open (README "Security model").
    pub own: bool,
}

/// The decision of [`examine`], apart from the system calls.
pub fn reach_of(
    kind: FileKind,
    own: bool,
    eventpoll: bool,
    fuse_mount: impl FnOnce() -> bool,
    cuse_char: impl FnOnce() -> bool,
) -> Reach {
    let userspace = own
        || match kind {
            FileKind::Socket | FileKind::Fifo => false,
            FileKind::Anon => eventpoll,
            FileKind::Char => cuse_char(),
            FileKind::Other => fuse_mount(),
        };
    if userspace {
        Reach::Userspace
    } else {
        Reach::Kernel
    }
}

/// Examines a fetched descriptor of a caller (thread `tid`) without
/// sending any FUSE request (see the module doc).
pub fn examine(fd: &OwnedFd, own: &OwnDevice, tid: u32) -> io::Result<FileFacts> {
    let st = statx(
        fd,
        "",
        AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC,
        StatxFlags::TYPE | StatxFlags::INO | StatxFlags::MNT_ID,
    )?;
    let kind = FileKind::of_mode(u32::from(st.stx_mode));
    let mut facts = FileFacts {
        kind,
        dev: (st.stx_dev_major, st.stx_dev_minor),
        rdev: (st.stx_rdev_major, st.stx_rdev_minor),
        ino: st.stx_ino,
        reach: Reach::Kernel,
        own: false,
    };
    facts.own = own.matches(&facts);
    let eventpoll = kind == FileKind::Anon && is_eventpoll(fd);
    facts.reach = reach_of(
        kind,
        facts.own,
        eventpoll,
        || is_fuse_mount(st.stx_mnt_id, tid),
        || is_cuse_char(facts.rdev),
    );
    Ok(facts)
}

fn is_eventpoll(fd: &OwnedFd) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
        .is_ok_and(|p| p.as_os_str() == "anon_inode:[eventpoll]")
}

/// The filesystem type of mount `mnt_id` in a mountinfo text.
pub fn mount_fstype(mountinfo: &str, mnt_id: u64) -> Option<&str> {
    mountinfo.lines().find_map(|l| {
        let id: u64 = l.split(' ').next()?.parse().ok()?;
        if id != mnt_id {
            return None;
        }
        let (_, rest) = l.split_once(" - ")?;
        rest.split(' ').next()
    })
}

/// A file on a FUSE mount (`fuse`, `fuseblk`, `fuse.*`), looked up in the
/// daemon's and then the caller's mount namespace. Unknown counts as FUSE:
/// the safe side.
fn is_fuse_mount(mnt_id: u64, tgid: u32) -> bool {
    for path in [
        "/proc/self/mountinfo".to_string(),
        format!("/proc/{tgid}/mountinfo"),
    ] {
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Some(t) = mount_fstype(&text, mnt_id) {
                return t == "fuse" || t == "fuseblk" || t.starts_with("fuse.");
            }
        }
    }
    true
}

/// A character device created by some CUSE server (class `cuse` in sysfs).
fn is_cuse_char((major, minor): (u32, u32)) -> bool {
    std::fs::read_link(format!("/sys/dev/char/{major}:{minor}"))
        .is_ok_and(|p| p.to_string_lossy().contains("/cuse/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tgid_is_read_from_status() {
        let s = "Name:\tx\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4250\n";
        assert_eq!(parse_tgid(s), Some(4242));
        assert_eq!(parse_tgid("Name:\tx\n"), None);
    }

    #[test]
    fn own_tgid_is_found() {
        let me = std::process::id();
        assert_eq!(tgid_of(me).unwrap(), me);
    }

    #[test]
    fn thread_id_zero_is_refused_with_eperm() {
        assert_eq!(ProcCache::default().get(0).unwrap_err(), Errno::EPERM);
    }

    #[test]
    fn mount_type_is_found_by_id() {
        let mi = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                  91 27 0:55 / /tmp/x/kevent rw,nosuid,nodev - fuse.kevent kevent rw,user_id=0\n";
        assert_eq!(mount_fstype(mi, 91), Some("fuse.kevent"));
        assert_eq!(mount_fstype(mi, 22), Some("proc"));
        assert_eq!(mount_fstype(mi, 9), None);
    }

    #[test]
    fn only_userspace_served_files_leave_the_request_loop() {
        let never = || panic!("not consulted");
        assert_eq!(
            reach_of(FileKind::Socket, false, false, never, never),
            Reach::Kernel
        );
        assert_eq!(
            reach_of(FileKind::Fifo, false, false, never, never),
            Reach::Kernel
        );
        assert_eq!(
            reach_of(FileKind::Anon, false, false, never, never),
            Reach::Kernel
        );
        assert_eq!(
            reach_of(FileKind::Anon, false, true, never, never),
            Reach::Userspace
        );
        assert_eq!(
            reach_of(FileKind::Char, true, false, never, never),
            Reach::Userspace
        );
        assert_eq!(
            reach_of(FileKind::Char, false, false, never, || true),
            Reach::Userspace
        );
        assert_eq!(
            reach_of(FileKind::Char, false, false, never, || false),
            Reach::Kernel
        );
        assert_eq!(
            reach_of(FileKind::Other, false, false, || true, never),
            Reach::Userspace
        );
        assert_eq!(
            reach_of(FileKind::Other, false, false, || false, never),
            Reach::Kernel
        );
    }
}
