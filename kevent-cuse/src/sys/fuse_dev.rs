//! FUSE_DEV_IOC_CLONE: a second /dev/fuse descriptor attached to the same
//! connection. Each clone has its own processing list, so a request read
//! from a clone must be answered through that clone; requests themselves
//! come from the connection's one input queue to whichever reader is first.
#![allow(unsafe_code)]

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

/// `_IOR(229, 0, uint32_t)` from <linux/fuse.h>.
const FUSE_DEV_IOC_CLONE: libc::c_ulong = 0x8004_e500;

/// Opens /dev/fuse (non-blocking, close-on-exec) and attaches it to the
/// connection of `session`.
pub fn clone_session(session: impl AsFd) -> io::Result<OwnedFd> {
    let fd: OwnedFd = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open("/dev/fuse")?
        .into();
    let src: u32 = session.as_fd().as_raw_fd() as u32;
    // SAFETY: `fd` is an open /dev/fuse descriptor we own; the ioctl reads
    // one u32 from the valid pointer `&src` and writes nothing back.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), FUSE_DEV_IOC_CLONE as _, &src as *const u32) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}
