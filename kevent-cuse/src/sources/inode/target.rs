//! The inode behind a caller's descriptor (docs/ABI.md §4: INODE `id.raw[0]`).
//!
//! The daemon needs the inode, not the caller's open file, so it opens
//! `/proc/<tid>/fd/<n>` with `O_PATH`: a new file of the same inode, never a
//! duplicate of the caller's open file description. That matters:
//! * closing an `O_PATH` file never calls the filesystem's `->flush`, while
//!   closing a pidfd_getfd(2) duplicate of a FUSE file sends FLUSH to its
//!   server — with the FUSE-file transport, the daemon's own device, which
//!   would deadlock the single-threaded daemon;
//! * opening `O_PATH` calls no `->open` and sends nothing to FUSE;
//! * `/proc/<tid>` works with the thread id of the request header as it is.
//!
//! Access to `/proc/<tid>/fd` needs ptrace read rights over the caller
//! (root has them). The `O_PATH` file pins the dentry and the mount while the
//! inode is watched; the inode source relies on that (sources/inode.rs).

use crate::core::Errno;
use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// An inode, as `statx` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InodeKey {
    /// Device major of the filesystem.
    pub major: u32,
    /// Device minor of the filesystem.
    pub minor: u32,
    /// Inode number.
    pub ino: u64,
}

impl std::fmt::Display for InodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} ino {}", self.major, self.minor, self.ino)
    }
}

/// A watchable inode reached through a caller's descriptor.
#[derive(Debug)]
pub struct Target {
    /// Our `O_PATH` file of it.
    pub path: OwnedFd,
    /// Its identity.
    pub key: InodeKey,
    /// A directory (entry events) or another file (deletion only).
    pub is_dir: bool,
    /// Link count now (0: already deleted).
    pub nlink: u32,
    /// Its mount's id, if statx gave one.
    mnt_id: Option<u64>,
    /// The caller, whose mountinfo is consulted second.
    tid: u32,
}

impl Target {
    /// Filesystem type from mountinfo (`ext4`, `tmpfs`, `fuse.kevent`...),
    /// None when its mount is not listed. Read only for new marks.
    pub fn fstype(&self) -> Option<String> {
        fstype_of(self.mnt_id?, self.tid)
    }
}

/// Opens the inode behind descriptor `fd` of thread `tid`.
///
/// Errors (docs/ABI.md §4): EPERM when the caller cannot be seen (tid 0, another
/// pid namespace, no ptrace rights); ENODEV when the descriptor does not
/// exist; EINVAL for sockets, pipes, FIFOs, symlinks and anonymous inodes.
pub fn open(tid: u32, fd: u32) -> Result<Target, Errno> {
    if tid == 0 {
        return Err(Errno::EPERM);
    }
    let Ok(fd) = i32::try_from(fd) else {
        return Err(Errno::ENODEV);
    };
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fds =
        rustix::fs::open(format!("/proc/{tid}/fd"), dir_flags, Mode::empty()).map_err(|e| {
            tracing::debug!("INODE: /proc/{tid}/fd: {e}");
            Errno::EPERM
        })?;
    let path = rustix::fs::openat(
        &fds,
        fd.to_string(),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::NOENT => Errno::ENODEV,
        rustix::io::Errno::ACCESS | rustix::io::Errno::PERM => Errno::EPERM,
        e => e.into(),
    })?;
    let want = StatxFlags::TYPE | StatxFlags::INO | StatxFlags::NLINK | StatxFlags::MNT_ID;
    let st = stat(path.as_fd(), want)?;
    let is_dir = classify(u32::from(st.stx_mode))?;
    let mnt_id = (st.stx_mask & StatxFlags::MNT_ID.bits() != 0).then_some(st.stx_mnt_id);
    Ok(Target {
        path,
        key: InodeKey {
            major: st.stx_dev_major,
            minor: st.stx_dev_minor,
            ino: st.stx_ino,
        },
        is_dir,
        nlink: st.stx_nlink,
        mnt_id,
        tid,
    })
}

/// statx(2) on an fd from cached attributes (`AT_STATX_DONT_SYNC`): a FUSE
/// or network filesystem is never asked, so this cannot block on a server
/// (or on this daemon, for its own FUSE file).
fn stat(fd: BorrowedFd<'_>, want: StatxFlags) -> Result<rustix::fs::Statx, Errno> {
    rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC, want)
        .map_err(Errno::from)
}

/// The link count of a watched inode (0 once it is deleted).
pub fn links(fd: BorrowedFd<'_>) -> Option<u32> {
    stat(fd, StatxFlags::NLINK).ok().map(|st| st.stx_nlink)
}

/// Directories watch entries; regular files and device nodes only their own
/// deletion; the rest has no inode one can usefully watch: EINVAL.
pub fn classify(mode: u32) -> Result<bool, Errno> {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => Ok(true),
        libc::S_IFREG | libc::S_IFCHR | libc::S_IFBLK => Ok(false),
        _ => Err(Errno::EINVAL),
    }
}

/// The filesystem type of mount `mnt_id`, from the daemon's mountinfo, else
/// from the caller's (a caller in another mount namespace).
fn fstype_of(mnt_id: u64, tid: u32) -> Option<String> {
    [
        "/proc/self/mountinfo".to_string(),
        format!("/proc/{tid}/mountinfo"),
    ]
    .iter()
    .find_map(|p| {
        let text = std::fs::read_to_string(p).ok()?;
        mountinfo_fstype(&text, mnt_id).map(str::to_owned)
    })
}

/// Finds the filesystem type of mount `mnt_id` in mountinfo text: the
/// first field is the mount id, the type follows the ` - ` separator.
pub fn mountinfo_fstype(text: &str, mnt_id: u64) -> Option<&str> {
    text.lines().find_map(|line| {
        let mut fields = line.split(' ');
        if fields.next()?.parse::<u64>().ok()? != mnt_id {
            return None;
        }
        fields.skip_while(|f| *f != "-").nth(1)
    })
}

/// Whether fanotify may mark an inode of this filesystem type. Marking
/// with a FID group calls statfs on the filesystem: a FUSE server would be
/// asked (and if it is this daemon's own FUSE file, the daemon would wait
/// for itself), a network filesystem would wait for its server. inotify
/// asks the filesystem nothing.
pub fn fanotify_may_mark(fstype: Option<&str>) -> Result<(), &'static str> {
    const NETWORK: [&str; 9] = [
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "ceph", "afs", "lustre",
    ];
    match fstype {
        None => Err("its mount is not in mountinfo"),
        Some(t) if t == "fuse" || t == "fuseblk" || t == "virtiofs" || t.starts_with("fuse.") => {
            Err("FUSE would be asked for statfs")
        }
        Some(t) if NETWORK.contains(&t) => Err("a network filesystem would be asked for statfs"),
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
25 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
41 22 0:41 / /tmp/inode\\040test/tmpfs rw,relatime shared:20 - tmpfs none rw
77 22 0:55 / /tmp/inode-test/kevent rw,nosuid,nodev,relatime shared:30 - fuse.kevent kevent rw,user_id=0,group_id=0,allow_other
78 22 0:56 / /mnt/x rw,relatime master:3 propagate_from:2 - nfs4 srv:/x rw,vers=4.2
";

    #[test]
    fn finds_the_type_of_a_mount() {
        assert_eq!(mountinfo_fstype(MOUNTINFO, 22), Some("ext4"));
        assert_eq!(mountinfo_fstype(MOUNTINFO, 41), Some("tmpfs"));
        assert_eq!(mountinfo_fstype(MOUNTINFO, 77), Some("fuse.kevent"));
        assert_eq!(mountinfo_fstype(MOUNTINFO, 78), Some("nfs4"));
        assert_eq!(mountinfo_fstype(MOUNTINFO, 2), None);
        assert_eq!(mountinfo_fstype("garbage\n\n", 1), None);
    }

    #[test]
    fn fanotify_never_marks_fuse_or_network_filesystems() {
        assert!(fanotify_may_mark(Some("ext4")).is_ok());
        assert!(fanotify_may_mark(Some("tmpfs")).is_ok());
        assert!(fanotify_may_mark(Some("fuse.kevent")).is_err());
        assert!(fanotify_may_mark(Some("fuse")).is_err());
        assert!(fanotify_may_mark(Some("fuseblk")).is_err());
        assert!(fanotify_may_mark(Some("virtiofs")).is_err());
        assert!(fanotify_may_mark(Some("nfs4")).is_err());
        assert!(fanotify_may_mark(None).is_err());
    }

    #[test]
    fn only_directories_files_and_devices_are_watchable() {
        assert_eq!(classify(libc::S_IFDIR | 0o755), Ok(true));
        assert_eq!(classify(libc::S_IFREG | 0o644), Ok(false));
        assert_eq!(classify(libc::S_IFCHR | 0o666), Ok(false));
        assert_eq!(classify(libc::S_IFBLK | 0o660), Ok(false));
        assert_eq!(classify(libc::S_IFSOCK | 0o777), Err(Errno::EINVAL));
        assert_eq!(classify(libc::S_IFIFO | 0o600), Err(Errno::EINVAL));
        assert_eq!(classify(libc::S_IFLNK | 0o777), Err(Errno::EINVAL));
        assert_eq!(classify(0o600), Err(Errno::EINVAL)); // anonymous inode
    }

    #[test]
    fn caller_zero_is_refused_with_eperm() {
        assert_eq!(open(0, 0).unwrap_err(), Errno::EPERM);
    }

    #[test]
    fn own_descriptors_resolve() {
        use std::os::fd::AsRawFd;
        // The process id names the same descriptor table as any of its threads.
        let tid = std::process::id();
        let dir = std::fs::File::open("/").unwrap();
        let t = open(tid, dir.as_raw_fd() as u32).unwrap();
        assert!(t.is_dir);
        assert!(t.nlink > 0);
        assert!(t.fstype().is_some());
        // A descriptor that does not exist.
        assert_eq!(open(tid, 999_999).unwrap_err(), Errno::ENODEV);
        assert_eq!(open(tid, u32::MAX).unwrap_err(), Errno::ENODEV);
        // A pipe has no inode to watch.
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert_eq!(open(tid, r.as_raw_fd() as u32).unwrap_err(), Errno::EINVAL);
    }
}
