//! The one unsafe call of the client: ioctl(2) on a caller-provided buffer.
#![allow(unsafe_code)]

use std::os::fd::RawFd;

/// `ioctl(fd, request, arg)`; -1 becomes the errno.
///
/// # Safety
///
/// `arg` must be valid for reads and writes of every byte the ioctl
/// `request` on `fd` may touch, for the whole call.
pub unsafe fn ioctl(fd: RawFd, request: u32, arg: *mut u8) -> std::io::Result<i32> {
    // SAFETY: the caller guarantees `arg` covers what the ioctl touches.
    let r = unsafe { libc::ioctl(fd, request as libc::c_ulong, arg) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Whether the open file description of `fd` has O_NONBLOCK.
pub fn is_nonblocking(fd: RawFd) -> bool {
    // SAFETY: F_GETFL reads no memory; an invalid fd gives -1.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    fl >= 0 && fl & libc::O_NONBLOCK != 0
}
