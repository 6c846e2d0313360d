//! The FUSE/CUSE wire messages the daemon speaks (`include/uapi/linux/fuse.h`,
//! docs/WIRE.md "Framing", "IOCTL", "POLL", "INTERRUPT").
//!
//! A request goes bytes -> [`InHeader`] + [`Request`] (one borrowed view per
//! opcode); a reply is built only by the `encode_*` functions here, and one
//! function writes every out-header ([`out_header`]).

use crate::bytes::{Cursor, Writer};
use std::fmt;

/// Protocol major version (7 since 2006).
pub const FUSE_KERNEL_VERSION: u32 = 7;
/// The minor version this implementation speaks (capped at the kernel's).
pub const FUSE_KERNEL_MINOR_VERSION: u32 = 31;

/// Opcodes used here.
#[allow(missing_docs)]
pub mod opcode {
    pub const FUSE_LOOKUP: u32 = 1;
    pub const FUSE_FORGET: u32 = 2;
    pub const FUSE_GETATTR: u32 = 3;
    pub const FUSE_SETATTR: u32 = 4;
    pub const FUSE_OPEN: u32 = 14;
    pub const FUSE_READ: u32 = 15;
    pub const FUSE_WRITE: u32 = 16;
    pub const FUSE_STATFS: u32 = 17;
    pub const FUSE_RELEASE: u32 = 18;
    pub const FUSE_FSYNC: u32 = 20;
    pub const FUSE_FLUSH: u32 = 25;
    pub const FUSE_INIT: u32 = 26;
    pub const FUSE_ACCESS: u32 = 34;
    pub const FUSE_INTERRUPT: u32 = 36;
    pub const FUSE_DESTROY: u32 = 38;
    pub const FUSE_IOCTL: u32 = 39;
    pub const FUSE_POLL: u32 = 40;
    pub const FUSE_BATCH_FORGET: u32 = 42;
    pub const CUSE_INIT: u32 = 4096;
}

/// `fuse_ioctl_in.flags` / `fuse_ioctl_out.flags`.
#[allow(missing_docs)]
pub mod ioctl_flags {
    pub const FUSE_IOCTL_COMPAT: u32 = 1 << 0;
    pub const FUSE_IOCTL_UNRESTRICTED: u32 = 1 << 1;
    pub const FUSE_IOCTL_RETRY: u32 = 1 << 2;
    pub const FUSE_IOCTL_32BIT: u32 = 1 << 3;
    pub const FUSE_IOCTL_DIR: u32 = 1 << 4;
    pub const FUSE_IOCTL_COMPAT_X32: u32 = 1 << 5;
    /// At most this many iovecs in a RETRY reply, in and out together.
    pub const FUSE_IOCTL_MAX_IOV: usize = 256;
}

/// `fuse_init_in.flags` / `fuse_init_out.flags` (and `flags2`, the upper
/// 32 bits) used here.
#[allow(missing_docs)]
pub mod init_flags {
    /// The kernel may set `max_pages` from the reply.
    pub const FUSE_MAX_PAGES: u32 = 1 << 22;
    /// `flags2` is valid.
    pub const FUSE_INIT_EXT: u32 = 1 << 30;
    /// In `flags2`: requests over io_uring (`FUSE_OVER_IO_URING`, bit 41).
    pub const FUSE_OVER_IO_URING_FLAGS2: u32 = 1 << (41 - 32);
}

/// What the FUSE-file INIT reply asks for beyond the defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InitOptions {
    /// Ask for FUSE-over-io_uring (only if the kernel offered it).
    pub io_uring: bool,
    /// `max_pages` (with `FUSE_MAX_PAGES`); 0 = the kernel's default.
    pub max_pages: u16,
}

/// `cuse_init_out.flags`: unrestricted ioctls.
pub const CUSE_UNRESTRICTED_IOCTL: u32 = 1;
/// `fuse_open_out.open_flags`: bypass the page cache.
pub const FOPEN_DIRECT_IO: u32 = 1 << 0;
/// `fuse_open_out.open_flags`: the file is a stream (no file position).
pub const FOPEN_STREAM: u32 = 1 << 4;
/// `fuse_open_out.open_flags`: not seekable.
pub const FOPEN_NONSEEKABLE: u32 = 1 << 2;
/// `fuse_poll_in.flags`: the kernel wants a notification on change.
pub const FUSE_POLL_SCHEDULE_NOTIFY: u32 = 1;
/// Notification code for poll wakeups (`fuse_notify_code`).
pub const FUSE_NOTIFY_POLL: i32 = 1;

/// Size of `fuse_in_header`.
pub const IN_HEADER_SIZE: usize = 40;
/// Size of `fuse_out_header`.
pub const OUT_HEADER_SIZE: usize = 16;

/// `struct fuse_in_header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InHeader {
    /// Total length including this header.
    pub len: u32,
    /// One of [`opcode`].
    pub opcode: u32,
    /// Request id, echoed in the reply.
    pub unique: u64,
    /// Inode (1 = root for the FUSE file).
    pub nodeid: u64,
    /// Caller's fsuid.
    pub uid: u32,
    /// Caller's fsgid.
    pub gid: u32,
    /// Caller's thread id in the channel opener's pid namespace (0 = not visible).
    pub pid: u32,
}

/// Why a request could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer than 40 bytes.
    #[error("short header: {0} bytes")]
    ShortHeader(usize),
    /// `len` disagrees with what read() returned.
    #[error("header length {header} but read {read} bytes")]
    LengthMismatch {
        /// From the header.
        header: u32,
        /// From read().
        read: usize,
    },
    /// The body is shorter than the opcode's fixed part.
    #[error("short body for opcode {opcode}")]
    ShortBody {
        /// The opcode.
        opcode: u32,
    },
}

/// One decoded request: header plus a per-opcode view of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The header.
    pub header: InHeader,
    /// The body.
    pub request: Request<'a>,
}

/// Per-opcode bodies the daemon acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// `FUSE_INIT` (`fuse_init_in`: the first 16 bytes, and `flags2` when
    /// the kernel sends the 64-byte form of 7.36+).
    Init {
        /// Kernel major.
        major: u32,
        /// Kernel minor.
        minor: u32,
        /// Kernel readahead.
        max_readahead: u32,
        /// Kernel capability flags.
        flags: u32,
        /// The upper 32 capability bits (valid with [`init_flags::FUSE_INIT_EXT`]
        /// in `flags`; 0 from older kernels).
        flags2: u32,
    },
    /// `CUSE_INIT` (`cuse_init_in`).
    CuseInit {
        /// Kernel major.
        major: u32,
        /// Kernel minor.
        minor: u32,
        /// Flags.
        flags: u32,
    },
    /// `FUSE_OPEN` (`fuse_open_in`).
    Open {
        /// open(2) flags (O_NONBLOCK among them).
        flags: u32,
    },
    /// `FUSE_RELEASE` (`fuse_release_in`).
    Release {
        /// File handle from OPEN.
        fh: u64,
    },
    /// `FUSE_FLUSH` (`fuse_flush_in`).
    Flush {
        /// File handle from OPEN.
        fh: u64,
    },
    /// `FUSE_GETATTR`.
    Getattr,
    /// `FUSE_INTERRUPT` (`fuse_interrupt_in`).
    Interrupt {
        /// The request to interrupt.
        unique: u64,
    },
    /// `FUSE_IOCTL` (`fuse_ioctl_in` + `in_size` bytes).
    Ioctl(IoctlIn<'a>),
    /// `FUSE_POLL` (`fuse_poll_in`).
    Poll {
        /// File handle.
        fh: u64,
        /// Poll handle for notifications.
        kh: u64,
        /// [`FUSE_POLL_SCHEDULE_NOTIFY`].
        flags: u32,
        /// Requested events.
        events: u32,
    },
    /// `FUSE_DESTROY`.
    Destroy,
    /// `FUSE_FORGET` / `FUSE_BATCH_FORGET`: never answered.
    Forget,
    /// Anything else.
    Other(u32),
}

/// `struct fuse_ioctl_in` plus its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoctlIn<'a> {
    /// File handle.
    pub fh: u64,
    /// [`ioctl_flags`].
    pub flags: u32,
    /// The ioctl number.
    pub cmd: u32,
    /// The caller's `arg` (a user pointer).
    pub arg: u64,
    /// Bytes of input data that follow.
    pub in_size: u32,
    /// Bytes of output the kernel will accept.
    pub out_size: u32,
    /// The input data (the kernel's copy of the caller's memory).
    pub data: &'a [u8],
}

impl InHeader {
    fn decode(c: &mut Cursor<'_>) -> Option<Self> {
        let h = InHeader {
            len: c.u32()?,
            opcode: c.u32()?,
            unique: c.u64()?,
            nodeid: c.u64()?,
            uid: c.u32()?,
            gid: c.u32()?,
            pid: c.u32()?,
        };
        c.u16()?; // total_extlen
        c.u16()?; // padding
        Some(h)
    }
}

/// Decodes one request as returned by one read() of the channel.
pub fn decode(buf: &[u8]) -> Result<Message<'_>, DecodeError> {
    use opcode::*;
    let mut c = Cursor::new(buf);
    let header = InHeader::decode(&mut c).ok_or(DecodeError::ShortHeader(buf.len()))?;
    if header.len as usize != buf.len() {
        return Err(DecodeError::LengthMismatch {
            header: header.len,
            read: buf.len(),
        });
    }
    let short = DecodeError::ShortBody {
        opcode: header.opcode,
    };
    let request = (|| -> Option<Request<'_>> {
        Some(match header.opcode {
            FUSE_INIT => Request::Init {
                major: c.u32()?,
                minor: c.u32()?,
                max_readahead: c.u32()?,
                flags: c.u32()?,
                flags2: c.u32().unwrap_or(0),
            },
            CUSE_INIT => {
                let major = c.u32()?;
                let minor = c.u32()?;
                c.u32()?; // unused
                Request::CuseInit {
                    major,
                    minor,
                    flags: c.u32()?,
                }
            }
            FUSE_OPEN => Request::Open { flags: c.u32()? },
            FUSE_RELEASE => Request::Release { fh: c.u64()? },
            FUSE_FLUSH => Request::Flush { fh: c.u64()? },
            FUSE_GETATTR => Request::Getattr,
            FUSE_INTERRUPT => Request::Interrupt { unique: c.u64()? },
            FUSE_IOCTL => {
                let fh = c.u64()?;
                let flags = c.u32()?;
                let cmd = c.u32()?;
                let arg = c.u64()?;
                let in_size = c.u32()?;
                let out_size = c.u32()?;
                let data = c.take(in_size as usize)?;
                Request::Ioctl(IoctlIn {
                    fh,
                    flags,
                    cmd,
                    arg,
                    in_size,
                    out_size,
                    data,
                })
            }
            FUSE_POLL => Request::Poll {
                fh: c.u64()?,
                kh: c.u64()?,
                flags: c.u32()?,
                events: c.u32()?,
            },
            FUSE_DESTROY => Request::Destroy,
            FUSE_FORGET | FUSE_BATCH_FORGET => Request::Forget,
            op => Request::Other(op),
        })
    })()
    .ok_or(short)?;
    Ok(Message { header, request })
}

impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.header;
        write!(f, "u={} pid={} ", h.unique, h.pid)?;
        match &self.request {
            Request::Init { major, minor, .. } => write!(f, "INIT {major}.{minor}"),
            Request::CuseInit { major, minor, .. } => write!(f, "CUSE_INIT {major}.{minor}"),
            Request::Open { flags } => write!(f, "OPEN flags={flags:#o}"),
            Request::Release { fh } => write!(f, "RELEASE fh={fh}"),
            Request::Flush { fh } => write!(f, "FLUSH fh={fh}"),
            Request::Getattr => write!(f, "GETATTR"),
            Request::Interrupt { unique } => write!(f, "INTERRUPT of u={unique}"),
            Request::Ioctl(io) => write!(
                f,
                "IOCTL fh={} {} ({:#x}) arg={:#x} in={} out={} flags={}",
                io.fh,
                crate::kevent::ioctl_name(io.cmd),
                io.cmd,
                io.arg,
                io.in_size,
                io.out_size,
                ioctl_flag_names(io.flags)
            ),
            Request::Poll { fh, kh, flags, .. } => {
                write!(f, "POLL fh={fh} kh={kh} notify={}", flags & 1)
            }
            Request::Destroy => write!(f, "DESTROY"),
            Request::Forget => write!(f, "FORGET"),
            Request::Other(op) => write!(f, "opcode {op}"),
        }
    }
}

/// Ioctl flags by name, for logs.
pub fn ioctl_flag_names(flags: u32) -> String {
    use ioctl_flags::*;
    let names = [
        (FUSE_IOCTL_COMPAT, "COMPAT"),
        (FUSE_IOCTL_UNRESTRICTED, "UNRESTRICTED"),
        (FUSE_IOCTL_RETRY, "RETRY"),
        (FUSE_IOCTL_32BIT, "32BIT"),
        (FUSE_IOCTL_DIR, "DIR"),
        (FUSE_IOCTL_COMPAT_X32, "COMPAT_X32"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "0".into()
    } else {
        v.join("|")
    }
}

/// The one function that writes `fuse_out_header`: `error` is 0 or -errno
/// (unique 0 with a positive notify code for notifications).
pub fn out_header(unique: u64, error: i32, body_len: usize) -> [u8; OUT_HEADER_SIZE] {
    let mut w = Writer::with_capacity(OUT_HEADER_SIZE);
    w.u32((OUT_HEADER_SIZE + body_len) as u32)
        .i32(error)
        .u64(unique);
    w.into_vec().try_into().expect("16 bytes")
}

/// A complete reply: out-header followed by `body`.
pub fn reply(unique: u64, body: &[u8]) -> Vec<u8> {
    let mut v = out_header(unique, 0, body.len()).to_vec();
    v.extend_from_slice(body);
    v
}

/// A header-only error reply; `errno` is positive.
pub fn reply_error(unique: u64, errno: i32) -> Vec<u8> {
    out_header(unique, -errno, 0).to_vec()
}

/// `fuse_init_out` (64 bytes) for the FUSE-file transport.
pub fn encode_init_out(minor: u32, max_readahead: u32, max_write: u32) -> Vec<u8> {
    encode_init_out_with(minor, max_readahead, max_write, InitOptions::default())
}

/// `fuse_init_out` (64 bytes) asking for what `opts` says.
pub fn encode_init_out_with(
    minor: u32,
    max_readahead: u32,
    max_write: u32,
    opts: InitOptions,
) -> Vec<u8> {
    let mut flags = 0;
    let mut flags2 = 0;
    if opts.max_pages != 0 {
        flags |= init_flags::FUSE_MAX_PAGES;
    }
    if opts.io_uring {
        flags |= init_flags::FUSE_INIT_EXT;
        flags2 |= init_flags::FUSE_OVER_IO_URING_FLAGS2;
    }
    let mut w = Writer::with_capacity(64);
    w.u32(FUSE_KERNEL_VERSION)
        .u32(minor)
        .u32(max_readahead)
        .u32(flags)
        .u16(16) // max_background
        .u16(12) // congestion_threshold
        .u32(max_write)
        .u32(1) // time_gran
        .u16(opts.max_pages)
        .u16(0) // map_alignment
        .u32(flags2)
        .zeros(28);
    w.into_vec()
}

/// `cuse_init_out` (72 bytes) followed by the NUL-terminated `DEVNAME=` info.
pub fn encode_cuse_init_out(minor: u32, max_read: u32, max_write: u32, devname: &str) -> Vec<u8> {
    let mut w = Writer::with_capacity(72 + devname.len() + 9);
    w.u32(FUSE_KERNEL_VERSION)
        .u32(minor)
        .u32(0)
        .u32(CUSE_UNRESTRICTED_IOCTL)
        .u32(max_read)
        .u32(max_write)
        .u32(0) // dev_major: dynamic
        .u32(0) // dev_minor
        .zeros(40);
    w.bytes(b"DEVNAME=").bytes(devname.as_bytes()).bytes(&[0]);
    w.into_vec()
}

/// `fuse_attr_out` for a regular file with `mode` (type bits included).
pub fn encode_attr_out(ino: u64, mode: u32, uid: u32, gid: u32, now_secs: u64) -> Vec<u8> {
    let mut w = Writer::with_capacity(104);
    // attr_valid 0: every stat() reaches the daemon, so a dead daemon shows
    // as ENOTCONN at once (how a restart tells a stale mount from a live one).
    w.u64(0) // attr_valid (s)
        .u32(0)
        .u32(0)
        .u64(ino)
        .u64(0) // size
        .u64(0) // blocks
        .u64(now_secs)
        .u64(now_secs)
        .u64(now_secs)
        .u32(0)
        .u32(0)
        .u32(0)
        .u32(mode)
        .u32(1) // nlink
        .u32(uid)
        .u32(gid)
        .u32(0) // rdev
        .u32(4096) // blksize
        .u32(0); // flags
    w.into_vec()
}

/// `fuse_open_out`.
pub fn encode_open_out(fh: u64, open_flags: u32) -> Vec<u8> {
    let mut w = Writer::with_capacity(16);
    w.u64(fh).u32(open_flags).u32(0);
    w.into_vec()
}

/// `fuse_poll_out`.
pub fn encode_poll_out(revents: u32) -> Vec<u8> {
    let mut w = Writer::with_capacity(8);
    w.u32(revents).u32(0);
    w.into_vec()
}

/// `fuse_ioctl_out` followed by `data` (the bytes the kernel copies out).
pub fn encode_ioctl_out(result: i32, data: &[u8]) -> Vec<u8> {
    let mut w = Writer::with_capacity(16 + data.len());
    w.i32(result).u32(0).u32(0).u32(0).bytes(data);
    w.into_vec()
}

/// One `fuse_ioctl_iovec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoctlIovec {
    /// User address in the caller.
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
}

/// A RETRY reply: the kernel gathers `ins` from the caller and re-sends the
/// ioctl, and will copy the next reply's data out to `outs`.
pub fn encode_ioctl_retry(ins: &[IoctlIovec], outs: &[IoctlIovec]) -> Vec<u8> {
    let mut w = Writer::with_capacity(16 + 16 * (ins.len() + outs.len()));
    w.i32(0)
        .u32(ioctl_flags::FUSE_IOCTL_RETRY)
        .u32(ins.len() as u32)
        .u32(outs.len() as u32);
    for v in ins.iter().chain(outs) {
        w.u64(v.base).u64(v.len);
    }
    w.into_vec()
}

/// A poll wakeup notification for poll handle `kh` (complete message).
pub fn encode_notify_poll(kh: u64) -> Vec<u8> {
    let mut v = out_header(0, FUSE_NOTIFY_POLL, 8).to_vec();
    v.extend_from_slice(&kh.to_ne_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds an in-header followed by `body`.
    fn msg(opcode: u32, unique: u64, pid: u32, body: &[u8]) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32((40 + body.len()) as u32) // len
            .u32(opcode) // opcode
            .u64(unique) // unique
            .u64(1) // nodeid
            .u32(0) // uid
            .u32(0) // gid
            .u32(pid) // pid
            .u16(0) // total_extlen
            .u16(0) // padding
            .bytes(body);
        w.into_vec()
    }

    #[test]
    fn decodes_an_unrestricted_cuse_ioctl() {
        let mut body = Writer::default();
        body.u64(7) // fh
            .u32(ioctl_flags::FUSE_IOCTL_UNRESTRICTED) // flags
            .u32(0xC00C_4B00) // cmd
            .u64(0x7ffd_0000_1000) // arg
            .u32(0) // in_size
            .u32(0); // out_size
        let buf = msg(opcode::FUSE_IOCTL, 42, 1234, &body.into_vec());
        let m = decode(&buf).unwrap();
        assert_eq!(m.header.unique, 42);
        assert_eq!(m.header.pid, 1234);
        match m.request {
            Request::Ioctl(io) => {
                assert_eq!(io.fh, 7);
                assert_eq!(io.cmd, 0xC00C_4B00);
                assert_eq!(io.arg, 0x7ffd_0000_1000);
                assert!(io.data.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ioctl_with_restricted_data_carries_it() {
        let mut body = Writer::default();
        body.u64(1)
            .u32(0)
            .u32(0xC00C_4B01)
            .u64(0x1000)
            .u32(12)
            .u32(12);
        body.bytes(&[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);
        let buf = msg(opcode::FUSE_IOCTL, 2, 1, &body.into_vec());
        let Request::Ioctl(io) = decode(&buf).unwrap().request else {
            panic!()
        };
        assert_eq!(io.data, &[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);
    }

    #[test]
    fn short_header_is_an_error() {
        assert_eq!(decode(&[0u8; 39]), Err(DecodeError::ShortHeader(39)));
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let mut buf = msg(opcode::FUSE_GETATTR, 1, 1, &[]);
        buf.push(0);
        assert!(matches!(
            decode(&buf),
            Err(DecodeError::LengthMismatch {
                header: 40,
                read: 41
            })
        ));
    }

    #[test]
    fn short_body_is_an_error() {
        // ioctl claiming 12 bytes of data but carrying 4
        let mut body = Writer::default();
        body.u64(1).u32(0).u32(0).u64(0).u32(12).u32(0).u32(0);
        let buf = msg(opcode::FUSE_IOCTL, 3, 1, &body.into_vec());
        assert_eq!(
            decode(&buf),
            Err(DecodeError::ShortBody {
                opcode: opcode::FUSE_IOCTL
            })
        );
        let buf = msg(opcode::FUSE_POLL, 3, 1, &[0u8; 20]);
        assert!(matches!(decode(&buf), Err(DecodeError::ShortBody { .. })));
    }

    #[test]
    fn cuse_init_out_is_72_bytes_plus_devname() {
        let b = encode_cuse_init_out(31, 65536, 65536, "kevent");
        assert_eq!(b.len(), 72 + "DEVNAME=kevent\0".len());
        assert_eq!(&b[12..16], &CUSE_UNRESTRICTED_IOCTL.to_ne_bytes());
        assert_eq!(&b[72..], b"DEVNAME=kevent\0");
    }

    #[test]
    fn fixed_reply_sizes() {
        assert_eq!(encode_init_out(31, 0, 4096).len(), 64);
        let u = encode_init_out_with(
            31,
            0,
            4096,
            InitOptions {
                io_uring: true,
                max_pages: 4,
            },
        );
        assert_eq!(u.len(), 64);
        assert_eq!(
            &u[12..16],
            &(init_flags::FUSE_INIT_EXT | init_flags::FUSE_MAX_PAGES).to_le_bytes()
        );
        assert_eq!(&u[28..30], &4u16.to_le_bytes());
        assert_eq!(&u[32..36], &(1u32 << 9).to_le_bytes());
        assert_eq!(encode_attr_out(1, 0o100666, 0, 0, 0).len(), 104);
        assert_eq!(encode_open_out(1, 0).len(), 16);
        assert_eq!(encode_poll_out(1).len(), 8);
        assert_eq!(encode_ioctl_out(0, &[]).len(), 16);
    }

    #[test]
    fn error_reply_is_header_only() {
        let b = reply_error(9, 22);
        assert_eq!(b.len(), 16);
        assert_eq!(&b[0..4], &16u32.to_ne_bytes());
        assert_eq!(&b[4..8], &(-22i32).to_ne_bytes());
        assert_eq!(&b[8..16], &9u64.to_ne_bytes());
    }

    #[test]
    fn notify_poll_bytes() {
        let b = encode_notify_poll(0x55);
        assert_eq!(b.len(), 24);
        assert_eq!(&b[0..4], &24u32.to_ne_bytes());
        assert_eq!(&b[4..8], &FUSE_NOTIFY_POLL.to_ne_bytes());
        assert_eq!(&b[8..16], &0u64.to_ne_bytes());
        assert_eq!(&b[16..24], &0x55u64.to_ne_bytes());
    }

    #[test]
    fn retry_reply_lists_in_then_out_iovecs() {
        let b = encode_ioctl_retry(
            &[IoctlIovec {
                base: 0x1000,
                len: 12,
            }],
            &[IoctlIovec {
                base: 0x1000,
                len: 52,
            }],
        );
        assert_eq!(b.len(), 16 + 32);
        assert_eq!(&b[4..8], &ioctl_flags::FUSE_IOCTL_RETRY.to_ne_bytes());
        assert_eq!(&b[8..12], &1u32.to_ne_bytes());
        assert_eq!(&b[12..16], &1u32.to_ne_bytes());
        assert_eq!(&b[40..48], &52u64.to_ne_bytes());
    }
}
