//! name_to_handle_at(2) of an open file: the file handle fanotify's FID
//! events carry for its inode, so a new fanotify mark is named in constant
//! time (no read of the whole group's fdinfo). No safe crate offers this
//! call; this module is the one place it is made.
//!
//! `AT_HANDLE_FID` (Linux 6.5) asks for exactly the encoding fanotify uses
//! (`EXPORT_FH_FID`); older kernels refuse the flag with EINVAL and get the
//! plain call, which gives the same bytes on every filesystem that can
//! export handles at all.

#![allow(unsafe_code)]

use super::fanotify::FileHandle;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `MAX_HANDLE_SZ`.
const MAX_HANDLE_SZ: usize = 128;

/// `struct file_handle` with room for the largest handle.
#[repr(C)]
struct HandleBuf {
    handle_bytes: libc::c_uint,
    handle_type: libc::c_int,
    f_handle: [u8; MAX_HANDLE_SZ],
}

fn call(fd: BorrowedFd<'_>, flags: libc::c_int) -> std::io::Result<FileHandle> {
    let mut buf = HandleBuf {
        handle_bytes: MAX_HANDLE_SZ as libc::c_uint,
        handle_type: 0,
        f_handle: [0; MAX_HANDLE_SZ],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: the path is a NUL-terminated empty string, `buf` is a
    // `struct file_handle` whose handle_bytes says how much room follows
    // it, and `mount_id` is a valid int; the kernel writes only within them.
    let r = unsafe {
        libc::name_to_handle_at(
            fd.as_raw_fd(),
            c"".as_ptr(),
            (&mut buf as *mut HandleBuf).cast::<libc::file_handle>(),
            &mut mount_id,
            libc::AT_EMPTY_PATH | flags,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = (buf.handle_bytes as usize).min(MAX_HANDLE_SZ);
    Ok(FileHandle {
        handle_type: buf.handle_type,
        bytes: buf.f_handle[..n].to_vec(),
    })
}

/// The FID handle of the inode `fd` refers to (an `O_PATH` fd works).
pub fn fid_handle(fd: BorrowedFd<'_>) -> std::io::Result<FileHandle> {
    match call(fd, libc::AT_HANDLE_FID) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => call(fd, 0),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_file_has_a_stable_handle_and_another_file_another() {
        let dir = std::env::temp_dir();
        let a = std::fs::File::open(&dir).unwrap();
        let b = std::fs::File::open(&dir).unwrap();
        let ha = fid_handle(a.as_fd()).unwrap();
        assert!(!ha.bytes.is_empty());
        assert_eq!(ha, fid_handle(b.as_fd()).unwrap());
        let root = std::fs::File::open("/").unwrap();
        assert_ne!(ha, fid_handle(root.as_fd()).unwrap());
    }

    #[test]
    fn it_is_the_handle_fanotify_names_the_mark_by() {
        use std::os::unix::fs::MetadataExt;
        let Ok(g) = super::super::fanotify::FanotifyGroup::new_fid() else {
            eprintln!("SKIP: no fanotify FID group here");
            return;
        };
        let dir = std::env::temp_dir();
        let f = std::fs::File::open(&dir).unwrap();
        let path = format!("/proc/self/fd/{}", f.as_raw_fd());
        if g.mark(&path, super::super::fanotify::FAN_CREATE).is_err() {
            eprintln!("SKIP: fanotify refuses {}", dir.display());
            return;
        }
        let md = f.metadata().unwrap();
        let (major, minor) = (libc::major(md.dev()), libc::minor(md.dev()));
        let from_fdinfo = g.mark_handle(major, minor, md.ino()).unwrap();
        assert_eq!(from_fdinfo, Some(fid_handle(f.as_fd()).unwrap()));
    }
}
