//! The one unsafe call of the client: ioctl(2) on a caller-owned buffer.
#![allow(unsafe_code)]

use std::os::fd::RawFd;

/// `ioctl(fd, request, buf)`; -1 becomes the errno.
pub fn ioctl(fd: RawFd, request: u32, buf: &mut [u8]) -> std::io::Result<i32> {
    // SAFETY: `buf` is a live, writable slice for the whole call; the kevent
    // ioctls touch at most the header plus `num` ukevents, and every caller
    // in this crate sizes `buf` for that.
    let r = unsafe { libc::ioctl(fd, request as libc::c_ulong, buf.as_mut_ptr()) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}
