//! The errno values the ABI gives back, in one place (docs/ABI.md).
//!
//! A newtype, not an enum: any kernel errno can pass through unchanged.

use std::fmt;

/// A positive errno value (its Debug form is the name: `EINVAL`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// docs/ABI.md §2: unknown `cmd` (INIT or other), every copy fault; §4: wrong
    /// kind of fd.
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    /// docs/ABI.md §2: unknown ioctl number; §4: an fd that does not exist.
    pub const ENODEV: Errno = Errno(libc::ENODEV);
    /// docs/ABI.md §2: the per-queue limit of registered kevents.
    pub const ENFILE: Errno = Errno(libc::ENFILE);
    /// docs/ABI.md §3: unknown event type on ADD.
    pub const E2BIG: Errno = Errno(libc::E2BIG);
    /// The daemon may not reach the caller (no pid, another namespace).
    pub const EPERM: Errno = Errno(libc::EPERM);
    /// Where the ABI is silent and something failed inside the daemon.
    pub const EIO: Errno = Errno(libc::EIO);
    /// Out of memory or descriptors inside the daemon.
    pub const ENOMEM: Errno = Errno(libc::ENOMEM);
    /// Reply for operations the device does not have (FUSE only: the
    /// kernel turns an ioctl's ENOSYS into ENOTTY, so never for ioctls).
    pub const ENOSYS: Errno = Errno(libc::ENOSYS);
    /// An event type this daemon does not serve.
    pub const EOPNOTSUPP: Errno = Errno(libc::EOPNOTSUPP);
    /// Reply for LOOKUP on the single-file FUSE mount.
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    /// A bad file descriptor.
    pub const EBADF: Errno = Errno(libc::EBADF);
    /// NAIO/AIO: the caller's buffer is not mapped (or read-only for a
    /// receive).
    pub const EFAULT: Errno = Errno(libc::EFAULT);
    /// NAIO: the peer closed before the whole size moved.
    pub const ENODATA: Errno = Errno(libc::ENODATA);
    /// NAIO/AIO: the caller exited during the transfer.
    pub const ESRCH: Errno = Errno(libc::ESRCH);
    /// NAIO/AIO: the transfer was cancelled.
    pub const ECANCELED: Errno = Errno(libc::ECANCELED);
    /// AIO: the socket stopped taking data.
    pub const EPIPE: Errno = Errno(libc::EPIPE);
    /// A per-user limit of the daemon (queues, kevents, descriptors).
    pub const EMFILE: Errno = Errno(libc::EMFILE);
    /// Open refused by the node's owner, group and mode.
    pub const EACCES: Errno = Errno(libc::EACCES);

    /// From an `std::io::Error`, EIO when it carries no errno.
    pub fn from_io(e: &std::io::Error) -> Errno {
        Errno(e.raw_os_error().unwrap_or(libc::EIO))
    }
}

impl From<rustix::io::Errno> for Errno {
    fn from(e: rustix::io::Errno) -> Self {
        Errno(e.raw_os_error())
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&kevent_protocol::names::errno_display(self.0))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}
