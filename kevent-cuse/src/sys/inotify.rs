//! inotify(7): one non-blocking, close-on-exec instance, and its event
//! records parsed from plain bytes (so the parser is testable and needs no
//! pointer casts).
//!
//! Used by the INODE source where fanotify cannot serve (sources/inode.rs).
//! inotify never asks the watched filesystem anything after the watch is
//! added, and cannot tell which process caused an event.
//!
//! # References
//! inotify(7), inotify_add_watch(2), inotify_rm_watch(2).

use rustix::fs::inotify;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// `IN_ATTRIB`: metadata changed (also: the link count).
pub const IN_ATTRIB: u32 = libc::IN_ATTRIB;
/// `IN_MOVED_FROM`: an entry was renamed out of the watched directory.
pub const IN_MOVED_FROM: u32 = libc::IN_MOVED_FROM;
/// `IN_MOVED_TO`: an entry was renamed into the watched directory.
pub const IN_MOVED_TO: u32 = libc::IN_MOVED_TO;
/// `IN_CREATE`: an entry was created in the watched directory.
pub const IN_CREATE: u32 = libc::IN_CREATE;
/// `IN_DELETE`: an entry was deleted from the watched directory.
pub const IN_DELETE: u32 = libc::IN_DELETE;
/// `IN_DELETE_SELF`: the watched inode was deleted.
pub const IN_DELETE_SELF: u32 = libc::IN_DELETE_SELF;
/// `IN_UNMOUNT`: the filesystem of the watched inode was unmounted.
pub const IN_UNMOUNT: u32 = libc::IN_UNMOUNT;
/// `IN_Q_OVERFLOW`: events were lost (wd is -1).
pub const IN_Q_OVERFLOW: u32 = libc::IN_Q_OVERFLOW;
/// `IN_IGNORED`: the watch was removed (by inotify_rm_watch or the kernel).
pub const IN_IGNORED: u32 = libc::IN_IGNORED;

/// Size of `struct inotify_event` without its name.
const HEADER: usize = 16;

/// One event record: `struct inotify_event` without the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InotifyEvent {
    /// Watch descriptor (-1 for `IN_Q_OVERFLOW`).
    pub wd: i32,
    /// `IN_*` bits.
    pub mask: u32,
    /// Links the two halves of a rename.
    pub cookie: u32,
}

/// Parses the records of one read(2) of an inotify fd. The kernel never
/// splits a record; a truncated tail (which would be a kernel bug) is
/// ignored.
pub fn parse_events(buf: &[u8]) -> Vec<InotifyEvent> {
    let u32_at = |o: usize| u32::from_ne_bytes(buf[o..o + 4].try_into().expect("4 bytes"));
    let mut out = Vec::new();
    let mut off = 0;
    while buf.len() - off >= HEADER {
        let name_len = u32_at(off + 12) as usize;
        let Some(end) = (off + HEADER).checked_add(name_len) else {
            break;
        };
        if end > buf.len() {
            break;
        }
        out.push(InotifyEvent {
            wd: u32_at(off) as i32,
            mask: u32_at(off + 4),
            cookie: u32_at(off + 8),
        });
        off = end;
    }
    out
}

/// An inotify instance (`IN_NONBLOCK | IN_CLOEXEC`).
#[derive(Debug)]
pub struct Inotify {
    fd: OwnedFd,
}

impl Inotify {
    /// inotify_init1(IN_NONBLOCK | IN_CLOEXEC).
    pub fn new() -> rustix::io::Result<Self> {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
        Ok(Inotify { fd })
    }

    /// inotify_add_watch(2) on `path` (followed if it is a symlink, so a
    /// `/proc/self/fd/N` magic link names the file behind it). Returns the
    /// watch descriptor; the same inode always gets the same one.
    pub fn add_watch(&self, path: &str, mask: u32) -> rustix::io::Result<i32> {
        inotify::add_watch(&self.fd, path, inotify::WatchFlags::from_bits_retain(mask))
    }

    /// inotify_rm_watch(2). An `IN_IGNORED` record for `wd` follows.
    pub fn remove_watch(&self, wd: i32) -> rustix::io::Result<()> {
        inotify::remove_watch(&self.fd, wd)
    }

    /// One non-blocking read into `buf`: `Ok(0)` when nothing is pending.
    /// `buf` must hold at least one record with a NAME_MAX name (272 bytes).
    pub fn read(&self, buf: &mut [u8]) -> rustix::io::Result<usize> {
        loop {
            match rustix::io::read(&self.fd, &mut *buf) {
                Ok(n) => return Ok(n),
                Err(rustix::io::Errno::AGAIN) => return Ok(0),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsFd for Inotify {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(wd: i32, mask: u32, cookie: u32, name: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&wd.to_ne_bytes()); // wd
        b.extend_from_slice(&mask.to_ne_bytes()); // mask
        b.extend_from_slice(&cookie.to_ne_bytes()); // cookie
        b.extend_from_slice(&(name.len() as u32).to_ne_bytes()); // len (padded name)
        b.extend_from_slice(name); // name, NUL-padded
        b
    }

    #[test]
    fn parses_records_with_and_without_names() {
        let mut buf = record(3, IN_CREATE, 0, b"file\0\0\0\0\0\0\0\0\0\0\0\0");
        buf.extend(record(
            3,
            IN_MOVED_FROM,
            77,
            b"x\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        ));
        buf.extend(record(5, IN_DELETE_SELF, 0, b""));
        buf.extend(record(5, IN_IGNORED, 0, b""));
        let ev = parse_events(&buf);
        assert_eq!(
            ev,
            vec![
                InotifyEvent {
                    wd: 3,
                    mask: IN_CREATE,
                    cookie: 0
                },
                InotifyEvent {
                    wd: 3,
                    mask: IN_MOVED_FROM,
                    cookie: 77
                },
                InotifyEvent {
                    wd: 5,
                    mask: IN_DELETE_SELF,
                    cookie: 0
                },
                InotifyEvent {
                    wd: 5,
                    mask: IN_IGNORED,
                    cookie: 0
                },
            ]
        );
    }

    #[test]
    fn overflow_record_has_wd_minus_one() {
        let ev = parse_events(&record(-1, IN_Q_OVERFLOW, 0, b""));
        assert_eq!(
            ev,
            vec![InotifyEvent {
                wd: -1,
                mask: IN_Q_OVERFLOW,
                cookie: 0
            }]
        );
    }

    #[test]
    fn truncated_tail_is_ignored() {
        let mut buf = record(1, IN_CREATE, 0, b"a\0\0\0");
        let full = buf.len();
        buf.extend(record(1, IN_DELETE, 0, b"b\0\0\0"));
        assert_eq!(parse_events(&buf[..full + 10]).len(), 1); // half a header
        assert_eq!(parse_events(&buf[..buf.len() - 1]).len(), 1); // name cut short
        assert!(parse_events(&[]).is_empty());
    }

    #[test]
    fn huge_name_length_does_not_overflow() {
        let mut buf = record(1, IN_CREATE, 0, b"");
        buf[12..16].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(parse_events(&buf).is_empty());
    }
}
