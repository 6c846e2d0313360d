//! fanotify(7) with a FID-reporting group (`FAN_REPORT_FID`): directory
//! entry events (create, delete, move) carry the file handle of the marked
//! directory, and self events carry the handle of the marked inode. The group
//! and its marks come from nix; the event records are parsed here from plain
//! bytes, as nix only reads the fixed metadata and not the info records.
//!
//! A mark is named to the daemon by `(fsid, file handle)`, the same identity
//! the events carry. The handle of a new mark comes from name_to_handle_at(2)
//! on the watched file ([`super::handle`]); only where that fails is it read
//! back from `/proc/self/fdinfo/<group fd>`, where the kernel prints each
//! inode mark as `fanotify ino:<hex> sdev:<hex> ... fhandle-bytes:<hex>
//! fhandle-type:<hex> f_handle:<hex bytes>` using the same encoder as for
//! events (that read grows with the number of marks).
//!
//! # References
//! fanotify(7), fanotify_init(2), fanotify_mark(2); fs/notify/fdinfo.c.

use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

/// `FAN_ATTRIB`.
pub const FAN_ATTRIB: u64 = libc::FAN_ATTRIB;
/// `FAN_MOVED_FROM`.
pub const FAN_MOVED_FROM: u64 = libc::FAN_MOVED_FROM;
/// `FAN_MOVED_TO`.
pub const FAN_MOVED_TO: u64 = libc::FAN_MOVED_TO;
/// `FAN_CREATE`.
pub const FAN_CREATE: u64 = libc::FAN_CREATE;
/// `FAN_DELETE`.
pub const FAN_DELETE: u64 = libc::FAN_DELETE;
/// `FAN_DELETE_SELF`.
pub const FAN_DELETE_SELF: u64 = libc::FAN_DELETE_SELF;
/// `FAN_Q_OVERFLOW`: events were lost.
pub const FAN_Q_OVERFLOW: u64 = libc::FAN_Q_OVERFLOW;
/// `FAN_ONDIR`: also report events on/for directories.
pub const FAN_ONDIR: u64 = libc::FAN_ONDIR;

/// `FANOTIFY_METADATA_VERSION` this parser understands.
const METADATA_VERSION: u8 = 3;
/// `sizeof(struct fanotify_event_metadata)`.
const METADATA_LEN: usize = 24;
/// Info record types that carry `{fsid, file_handle}`: FID, DFID_NAME, DFID.
const INFO_FID_TYPES: [u8; 3] = [1, 2, 3];
/// `MINORBITS` of the kernel's internal dev_t (as printed in fdinfo).
const KERNEL_MINORBITS: u32 = 20;

/// A `struct file_handle` as the kernel encodes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileHandle {
    /// `handle_type` (filesystem specific, e.g. 1 = FILEID_INO32_GEN).
    pub handle_type: i32,
    /// `f_handle[handle_bytes]`.
    pub bytes: Vec<u8>,
}

/// Filesystem id and handle: what identifies an inode in a FID event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fid {
    /// `__kernel_fsid_t` as `val[0] | val[1] << 32`, the same value as
    /// `statvfs.f_fsid` from rustix.
    pub fsid: u64,
    /// The inode's handle.
    pub handle: FileHandle,
}

/// One event of a FID group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanEvent {
    /// `FAN_*` bits (several when the kernel merged events).
    pub mask: u64,
    /// Process (tgid) that caused the event, in the reader's pid namespace;
    /// 0 when not visible there.
    pub pid: i32,
    /// `fd` of the metadata: always `FAN_NOFD` (-1) in a FID group.
    pub fd: i32,
    /// The first `{fsid, handle}` record, absent on `FAN_Q_OVERFLOW`.
    pub fid: Option<Fid>,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_ne_bytes(b[o..o + 2].try_into().expect("2 bytes"))
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// Parses the `{fsid, file_handle}` body of an info record (after its
/// 4-byte header). None when it does not fit.
fn parse_fid(rec: &[u8]) -> Option<Fid> {
    // fsid val[0], val[1] | handle_bytes | handle_type | f_handle[]
    if rec.len() < 16 {
        return None;
    }
    let fsid = u64::from(u32_at(rec, 0)) | (u64::from(u32_at(rec, 4)) << 32);
    let hlen = u32_at(rec, 8) as usize;
    let handle_type = u32_at(rec, 12) as i32;
    let bytes = rec.get(16..16usize.checked_add(hlen)?)?.to_vec();
    Some(Fid {
        fsid,
        handle: FileHandle { handle_type, bytes },
    })
}

/// Parses the events of one read(2) of a fanotify fd. Records are walked by
/// their own lengths; anything inconsistent (wrong version, lengths that do
/// not fit) ends the walk, since the rest cannot be framed.
pub fn parse_events(buf: &[u8]) -> Vec<FanEvent> {
    let mut out = Vec::new();
    let mut off = 0;
    while buf.len() - off >= METADATA_LEN {
        let ev = &buf[off..];
        let event_len = u32_at(ev, 0) as usize;
        let version = ev[4];
        let meta_len = u16_at(ev, 6) as usize;
        if version != METADATA_VERSION
            || meta_len < METADATA_LEN
            || event_len < meta_len
            || event_len > ev.len()
        {
            break;
        }
        let mut fid = None;
        let mut i = meta_len;
        while event_len - i >= 4 {
            let info_type = ev[i];
            let len = u16_at(ev, i + 2) as usize;
            if len < 4 || len > event_len - i {
                break;
            }
            if fid.is_none() && INFO_FID_TYPES.contains(&info_type) {
                fid = parse_fid(&ev[i + 4..i + len]);
            }
            i += len;
        }
        out.push(FanEvent {
            mask: u64_at(ev, 8),
            fd: u32_at(ev, 16) as i32,
            pid: u32_at(ev, 20) as i32,
            fid,
        });
        off += event_len;
    }
    out
}

/// Finds the handle the kernel shows for the inode mark on (`dev_major`,
/// `dev_minor`, `ino`) in the text of `/proc/self/fdinfo/<group fd>`.
pub fn parse_fdinfo_handle(
    text: &str,
    dev_major: u32,
    dev_minor: u32,
    ino: u64,
) -> Option<FileHandle> {
    let sdev = (u64::from(dev_major) << KERNEL_MINORBITS) | u64::from(dev_minor);
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("fanotify ino:") else {
            continue;
        };
        let field = |name: &str| {
            rest.split_whitespace()
                .find_map(|f| f.strip_prefix(name))
                .map(str::to_owned)
        };
        let hex = |s: Option<String>| s.and_then(|v| u64::from_str_radix(&v, 16).ok());
        let line_ino = hex(rest.split_whitespace().next().map(str::to_owned));
        if line_ino != Some(ino) || hex(field("sdev:")) != Some(sdev) {
            continue;
        }
        let handle_type = hex(field("fhandle-type:"))? as i32;
        let nbytes = hex(field("fhandle-bytes:"))? as usize;
        let digits = field("f_handle:")?;
        if digits.len() != nbytes * 2 {
            return None;
        }
        let bytes = (0..nbytes)
            .map(|k| u8::from_str_radix(&digits[2 * k..2 * k + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        return Some(FileHandle { handle_type, bytes });
    }
    None
}

/// A notification-class fanotify group reporting FIDs, non-blocking and
/// close-on-exec.
#[derive(Debug)]
pub struct FanotifyGroup {
    inner: Fanotify,
}

fn mark_mask(mask: u64) -> MaskFlags {
    MaskFlags::from_bits_retain(mask)
}

impl FanotifyGroup {
    /// fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_FID | FAN_NONBLOCK |
    /// FAN_CLOEXEC). Fails with EINVAL before Linux 5.1 (no FID groups) and
    /// EPERM without CAP_SYS_ADMIN on kernels before 5.13.
    pub fn new_fid() -> std::io::Result<Self> {
        let flags = InitFlags::FAN_CLASS_NOTIF
            | InitFlags::FAN_NONBLOCK
            | InitFlags::FAN_CLOEXEC
            | InitFlags::from_bits_retain(libc::FAN_REPORT_FID);
        let ev_flags = EventFFlags::from_bits_retain((libc::O_RDONLY | libc::O_CLOEXEC) as u32);
        Ok(FanotifyGroup {
            inner: Fanotify::init(flags, ev_flags)?,
        })
    }

    /// Adds `mask` to the inode mark of `path` (an absolute path; a trailing
    /// symlink, such as `/proc/self/fd/N`, is followed).
    pub fn mark(&self, path: &str, mask: u64) -> std::io::Result<()> {
        let flags = MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_INODE;
        Ok(self
            .inner
            .mark(flags, mark_mask(mask), rustix::fs::CWD, Some(path))?)
    }

    /// Removes the inode mark of `path` (all of `mask`).
    pub fn unmark(&self, path: &str, mask: u64) -> std::io::Result<()> {
        let flags = MarkFlags::FAN_MARK_REMOVE | MarkFlags::FAN_MARK_INODE;
        Ok(self
            .inner
            .mark(flags, mark_mask(mask), rustix::fs::CWD, Some(path))?)
    }

    /// The handle of this group's mark on (`dev_major`, `dev_minor`, `ino`),
    /// read back from procfs; None if the kernel shows none.
    pub fn mark_handle(
        &self,
        dev_major: u32,
        dev_minor: u32,
        ino: u64,
    ) -> std::io::Result<Option<FileHandle>> {
        let path = format!("/proc/self/fdinfo/{}", self.inner.as_raw_fd());
        let text = std::fs::read_to_string(path)?;
        Ok(parse_fdinfo_handle(&text, dev_major, dev_minor, ino))
    }

    /// One non-blocking read into `buf` (at least 4 KiB): `Ok(0)` when
    /// nothing is pending.
    pub fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match rustix::io::read(&self.inner, &mut *buf) {
                Ok(n) => return Ok(n),
                Err(rustix::io::Errno::AGAIN) => return Ok(0),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsFd for FanotifyGroup {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One event: metadata followed by the given info records.
    fn event(mask: u64, pid: i32, infos: &[Vec<u8>]) -> Vec<u8> {
        let info_len: usize = infos.iter().map(Vec::len).sum();
        let mut b = Vec::new();
        b.extend_from_slice(&((METADATA_LEN + info_len) as u32).to_ne_bytes()); // event_len
        b.push(METADATA_VERSION); // vers
        b.push(0); // reserved
        b.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes()); // metadata_len
        b.extend_from_slice(&mask.to_ne_bytes()); // mask
        b.extend_from_slice(&(-1i32).to_ne_bytes()); // fd = FAN_NOFD
        b.extend_from_slice(&pid.to_ne_bytes()); // pid
        for i in infos {
            b.extend_from_slice(i);
        }
        b
    }

    /// A `fanotify_event_info_fid` record.
    fn fid_info(info_type: u8, fsid: [u32; 2], htype: i32, handle: &[u8]) -> Vec<u8> {
        let mut b = vec![info_type, 0]; // info_type, pad
        b.extend_from_slice(&((4 + 8 + 8 + handle.len()) as u16).to_ne_bytes()); // len
        b.extend_from_slice(&fsid[0].to_ne_bytes()); // fsid.val[0]
        b.extend_from_slice(&fsid[1].to_ne_bytes()); // fsid.val[1]
        b.extend_from_slice(&(handle.len() as u32).to_ne_bytes()); // handle_bytes
        b.extend_from_slice(&htype.to_ne_bytes()); // handle_type
        b.extend_from_slice(handle); // f_handle
        b
    }

    #[test]
    fn parses_the_bytes_a_kernel_produced() {
        // Read on Linux 6.18 after creating and unlinking a file in a
        // marked ext4 directory: one merged CREATE|DELETE event.
        let hex = concat!(
            "34000000", // event_len 52
            "03",
            "00",
            "1800",             // vers 3, reserved, metadata_len 24
            "0003000000000000", // mask FAN_CREATE | FAN_DELETE
            "ffffffff",
            "cb520000", // fd FAN_NOFD, pid 21195
            "01",
            "00",
            "1c00",             // info_type FID, pad, len 28
            "ff11505e24dc20dc", // fsid
            "08000000",
            "01000000",         // handle_bytes 8, handle_type 1
            "0de09800ef869a66", // f_handle
        );
        let buf: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let ev = parse_events(&buf);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].mask, FAN_CREATE | FAN_DELETE);
        assert_eq!(ev[0].fd, -1);
        assert_eq!(ev[0].pid, 21195);
        let fid = ev[0].fid.as_ref().unwrap();
        assert_eq!(fid.fsid, 0xdc20_dc24_5e50_11ff);
        assert_eq!(fid.handle.handle_type, 1);
        assert_eq!(
            fid.handle.bytes,
            [0x0d, 0xe0, 0x98, 0x00, 0xef, 0x86, 0x9a, 0x66]
        );
    }

    #[test]
    fn walks_several_events_and_overflow() {
        let mut buf = event(
            FAN_CREATE | FAN_ONDIR,
            7,
            &[fid_info(1, [1, 2], 1, &[9; 8])],
        );
        buf.extend(event(FAN_Q_OVERFLOW, 0, &[]));
        buf.extend(event(
            FAN_DELETE_SELF,
            8,
            &[fid_info(1, [3, 0], 0x81, &[1; 12])],
        ));
        let ev = parse_events(&buf);
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[0].fid.as_ref().unwrap().fsid, 1 | 2 << 32);
        assert_eq!(ev[1].mask, FAN_Q_OVERFLOW);
        assert_eq!(ev[1].fid, None);
        assert_eq!(ev[2].fid.as_ref().unwrap().handle.handle_type, 0x81);
        assert_eq!(ev[2].fid.as_ref().unwrap().handle.bytes.len(), 12);
    }

    #[test]
    fn skips_unknown_info_records() {
        let pidfd_info = vec![4, 0, 8, 0, 5, 0, 0, 0]; // type PIDFD, len 8, pidfd 5
        let buf = event(
            FAN_MOVED_TO,
            1,
            &[pidfd_info, fid_info(1, [4, 4], 1, &[2; 8])],
        );
        let ev = parse_events(&buf);
        assert_eq!(ev[0].fid.as_ref().unwrap().fsid, 4 | 4 << 32);
    }

    #[test]
    fn inconsistent_lengths_end_the_walk() {
        let good = event(FAN_CREATE, 1, &[fid_info(1, [1, 1], 1, &[1; 8])]);
        // Wrong version.
        let mut bad = good.clone();
        bad[4] = 2;
        assert!(parse_events(&bad).is_empty());
        // event_len beyond the buffer.
        assert!(parse_events(&good[..good.len() - 1]).is_empty());
        // event_len shorter than the metadata.
        let mut bad = good.clone();
        bad[0..4].copy_from_slice(&10u32.to_ne_bytes());
        assert!(parse_events(&bad).is_empty());
        // A handle longer than its record: the event stays, without a FID.
        let mut bad = good.clone();
        bad[METADATA_LEN + 12..METADATA_LEN + 16].copy_from_slice(&100u32.to_ne_bytes());
        let ev = parse_events(&bad);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].fid, None);
        // An info record of length 0 does not loop.
        let mut bad = good;
        bad[METADATA_LEN + 2..METADATA_LEN + 4].copy_from_slice(&0u16.to_ne_bytes());
        assert_eq!(parse_events(&bad)[0].fid, None);
    }

    #[test]
    fn finds_the_mark_handle_in_fdinfo() {
        let text = "pos:\t0\nflags:\t02004002\nmnt_id:\t17\nino:\t1039\n\
                    fanotify flags:203 event-flags:8000\n\
                    fanotify ino:2 sdev:29 mflags:0 mask:400007c0 ignored_mask:0 fhandle-bytes:c fhandle-type:1 f_handle:0768c4220200000000000000\n\
                    fanotify ino:98e00d sdev:fe00000 mflags:0 mask:400007c0 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:0de09800ef869a66\n";
        let h = parse_fdinfo_handle(text, 254, 0, 0x98e00d).unwrap();
        assert_eq!(h.handle_type, 1);
        assert_eq!(h.bytes, [0x0d, 0xe0, 0x98, 0x00, 0xef, 0x86, 0x9a, 0x66]);
        let h = parse_fdinfo_handle(text, 0, 41, 2).unwrap();
        assert_eq!(h.bytes.len(), 12);
        // Same inode number on another device, or no such mark.
        assert_eq!(parse_fdinfo_handle(text, 254, 1, 0x98e00d), None);
        assert_eq!(parse_fdinfo_handle(text, 254, 0, 5), None);
    }

    #[test]
    fn fdinfo_without_a_handle_gives_none() {
        let text = "fanotify ino:5 sdev:800001 mflags:0 mask:400 ignored_mask:0\n";
        assert_eq!(parse_fdinfo_handle(text, 8, 1, 5), None);
        let text = "fanotify ino:5 sdev:800001 mflags:0 mask:400 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:0102\n";
        assert_eq!(parse_fdinfo_handle(text, 8, 1, 5), None);
    }
}
