//! The 2006 `/dev/kevent` ABI, byte for byte (docs/ABI.md section 1).
//!
//! Names keep the C spelling of `include/linux/kevent.h` from the take1 patch
//! so they grep against the C header in `client-c/include/kevent.h`.

use crate::bytes::{Cursor, Writer};

/// `req_flags`: deliver once, then unregister.
pub const KEVENT_REQ_ONESHOT: u32 = 0x1;
/// `ret_flags`: the kevent is broken (registration failed or source gone).
pub const KEVENT_RET_BROKEN: u32 = 0x1;
/// `ret_flags`: the kevent was processed.
pub const KEVENT_RET_DONE: u32 = 0x2;

/// Event type: socket readiness.
pub const KEVENT_SOCKET: u32 = 0;
/// Event type: inode create/remove.
pub const KEVENT_INODE: u32 = 1;
/// Event type: periodic timer.
pub const KEVENT_TIMER: u32 = 2;
/// Event type: generic poll() readiness.
pub const KEVENT_POLL: u32 = 3;
/// Event type: network AIO.
pub const KEVENT_NAIO: u32 = 4;
/// Event type: file-to-socket AIO.
pub const KEVENT_AIO: u32 = 5;
/// One past the last event type.
pub const KEVENT_MAX: u32 = 6;

/// TIMER event bit.
pub const KEVENT_TIMER_FIRED: u32 = 0x1;
/// SOCKET event bit: data to read.
pub const KEVENT_SOCKET_RECV: u32 = 0x1;
/// SOCKET event bit: a connection to accept.
pub const KEVENT_SOCKET_ACCEPT: u32 = 0x2;
/// SOCKET event bit: writable.
pub const KEVENT_SOCKET_SEND: u32 = 0x4;
/// INODE event bit: entry created.
pub const KEVENT_INODE_CREATE: u32 = 0x1;
/// INODE event bit: entry removed.
pub const KEVENT_INODE_REMOVE: u32 = 0x2;

/// POLL event bit (= POLLIN).
pub const KEVENT_POLL_POLLIN: u32 = 0x1;
/// POLL event bit (= POLLPRI).
pub const KEVENT_POLL_POLLPRI: u32 = 0x2;
/// POLL event bit (= POLLOUT).
pub const KEVENT_POLL_POLLOUT: u32 = 0x4;
/// POLL event bit (= POLLERR).
pub const KEVENT_POLL_POLLERR: u32 = 0x8;
/// POLL event bit (= POLLHUP).
pub const KEVENT_POLL_POLLHUP: u32 = 0x10;
/// POLL event bit (= POLLNVAL).
pub const KEVENT_POLL_POLLNVAL: u32 = 0x20;
/// POLL event bit (= POLLRDNORM).
pub const KEVENT_POLL_POLLRDNORM: u32 = 0x40;
/// POLL event bit (= POLLRDBAND).
pub const KEVENT_POLL_POLLRDBAND: u32 = 0x80;
/// POLL event bit (= POLLWRNORM).
pub const KEVENT_POLL_POLLWRNORM: u32 = 0x100;
/// POLL event bit (= POLLWRBAND).
pub const KEVENT_POLL_POLLWRBAND: u32 = 0x200;
/// POLL event bit (= POLLMSG).
pub const KEVENT_POLL_POLLMSG: u32 = 0x400;
/// POLL event bit (= POLLREMOVE).
pub const KEVENT_POLL_POLLREMOVE: u32 = 0x1000;

/// AIO event bit.
pub const KEVENT_AIO_BIO: u32 = 0x1;
/// Every event bit.
pub const KEVENT_MASK_ALL: u32 = 0xffff_ffff;
/// No event bit.
pub const KEVENT_MASK_EMPTY: u32 = 0;

/// `kevent_user_control.cmd`: register.
pub const KEVENT_CTL_ADD: u32 = 0;
/// `kevent_user_control.cmd`: unregister.
pub const KEVENT_CTL_REMOVE: u32 = 1;
/// `kevent_user_control.cmd`: change mask and flags.
pub const KEVENT_CTL_MODIFY: u32 = 2;
/// `kevent_user_control.cmd`: wait for ready events.
pub const KEVENT_CTL_WAIT: u32 = 3;
/// `kevent_user_control.cmd`: open a queue (syscall only; EINVAL by ioctl).
pub const KEVENT_CTL_INIT: u32 = 4;

/// The ioctl magic.
pub const KEVENT_USER_SYMBOL: u8 = b'K';

const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

/// `_IOC(dir, type, nr, size)` as in `<asm-generic/ioctl.h>`.
pub const fn ioc(dir: u32, ty: u8, nr: u8, size: u32) -> u32 {
    (dir << 30) | (size << 16) | ((ty as u32) << 8) | nr as u32
}

/// `_IOC_SIZE(cmd)`.
pub const fn ioc_size(cmd: u32) -> u32 {
    (cmd >> 16) & 0x3fff
}

/// `_IOWR('K', 0, struct kevent_user_control)`.
pub const KEVENT_USER_CTL: u32 = ioc(
    IOC_READ | IOC_WRITE,
    KEVENT_USER_SYMBOL,
    0,
    KeventUserControl::SIZE as u32,
);
/// `_IOWR('K', 1, struct kevent_user_control)`.
pub const KEVENT_USER_WAIT: u32 = ioc(
    IOC_READ | IOC_WRITE,
    KEVENT_USER_SYMBOL,
    1,
    KeventUserControl::SIZE as u32,
);

/// The default (2006) limit of registered kevents per queue.
pub const KEVENT_MAX_EVENTS: u32 = 1023;

/// `struct kevent_user_control { unsigned cmd, num, timeout; }`: 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeventUserControl {
    /// One of `KEVENT_CTL_*`.
    pub cmd: u32,
    /// Number of ukevents following the header (or most to return for WAIT).
    pub num: u32,
    /// WAIT timeout in milliseconds; 0 means "at least one, up to 1 s".
    pub timeout: u32,
}

impl KeventUserControl {
    /// Size on the wire.
    pub const SIZE: usize = 12;
    /// Byte offset of `num` (rewritten by ADD and WAIT).
    pub const OFFSET_NUM: usize = 4;

    /// Decodes the first 12 bytes.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let mut c = Cursor::new(b);
        Some(KeventUserControl {
            cmd: c.u32()?,
            num: c.u32()?,
            timeout: c.u32()?,
        })
    }

    /// Encodes to 12 bytes.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        out[0..4].copy_from_slice(&self.cmd.to_ne_bytes());
        out[4..8].copy_from_slice(&self.num.to_ne_bytes());
        out[8..12].copy_from_slice(&self.timeout.to_ne_bytes());
        out
    }
}

/// `struct ukevent`: 40 bytes, identical on i386 and x86-64.
///
/// The trailing union `{ u32 user[2]; void *ptr; }` is kept as its 8 raw
/// bytes in `user`, so a pointer round-trips whatever the caller's ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ukevent {
    /// `id.raw[0]` and `id.raw[1]`.
    pub id: [u32; 2],
    /// One of `KEVENT_SOCKET`..`KEVENT_AIO`.
    pub type_: u32,
    /// Requested event bits.
    pub event: u32,
    /// `KEVENT_REQ_*`.
    pub req_flags: u32,
    /// `KEVENT_RET_*`.
    pub ret_flags: u32,
    /// Type-specific results.
    pub ret_data: [u32; 2],
    /// `user[0]`, `user[1]` (or the bytes of `ptr`).
    pub user: [u32; 2],
}

/// Byte offsets of the `ukevent` fields (docs/ABI.md section 1).
pub mod ukevent_offset {
    /// `id.raw[0]`.
    pub const ID: usize = 0;
    /// `type`.
    pub const TYPE: usize = 8;
    /// `event`.
    pub const EVENT: usize = 12;
    /// `req_flags`.
    pub const REQ_FLAGS: usize = 16;
    /// `ret_flags`.
    pub const RET_FLAGS: usize = 20;
    /// `ret_data[0]`.
    pub const RET_DATA: usize = 24;
    /// `user[0]` / `ptr`.
    pub const USER: usize = 32;
}

impl Ukevent {
    /// Size on the wire.
    pub const SIZE: usize = 40;

    /// Decodes one ukevent from the first 40 bytes.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let mut c = Cursor::new(b);
        Some(Ukevent {
            id: [c.u32()?, c.u32()?],
            type_: c.u32()?,
            event: c.u32()?,
            req_flags: c.u32()?,
            ret_flags: c.u32()?,
            ret_data: [c.u32()?, c.u32()?],
            user: [c.u32()?, c.u32()?],
        })
    }

    /// Encodes to 40 bytes.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut w = Writer::with_capacity(Self::SIZE);
        w.u32(self.id[0])
            .u32(self.id[1])
            .u32(self.type_)
            .u32(self.event)
            .u32(self.req_flags)
            .u32(self.ret_flags)
            .u32(self.ret_data[0])
            .u32(self.ret_data[1])
            .u32(self.user[0])
            .u32(self.user[1]);
        w.into_vec().try_into().expect("40 bytes")
    }

    /// The key REMOVE and MODIFY match on: id.raw[0], id.raw[1], user[0],
    /// user[1] (docs/ABI.md section 3; type and event are not part of it).
    pub fn key(&self) -> KeventKey {
        KeventKey {
            id: self.id,
            user: self.user,
        }
    }

    /// Decodes `n` consecutive ukevents; `None` if `b` is too short.
    pub fn decode_array(b: &[u8], n: usize) -> Option<Vec<Ukevent>> {
        if b.len() < n.checked_mul(Self::SIZE)? {
            return None;
        }
        b.chunks_exact(Self::SIZE)
            .take(n)
            .map(Ukevent::decode)
            .collect()
    }

    /// Encodes a slice of ukevents back to back.
    pub fn encode_array(evs: &[Ukevent]) -> Vec<u8> {
        let mut out = Vec::with_capacity(evs.len() * Self::SIZE);
        for e in evs {
            out.extend_from_slice(&e.encode());
        }
        out
    }
}

/// What identifies a registered kevent for REMOVE and MODIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeventKey {
    /// `id.raw`.
    pub id: [u32; 2],
    /// `user`.
    pub user: [u32; 2],
}

/// Human-readable name of an ioctl command number, for logs.
pub fn ioctl_name(cmd: u32) -> &'static str {
    match cmd {
        KEVENT_USER_CTL => "KEVENT_USER_CTL",
        KEVENT_USER_WAIT => "KEVENT_USER_WAIT",
        _ => "unknown",
    }
}

/// Human-readable name of a `kevent_user_control.cmd`, for logs.
pub fn ctl_name(cmd: u32) -> &'static str {
    match cmd {
        KEVENT_CTL_ADD => "ADD",
        KEVENT_CTL_REMOVE => "REMOVE",
        KEVENT_CTL_MODIFY => "MODIFY",
        KEVENT_CTL_WAIT => "WAIT",
        KEVENT_CTL_INIT => "INIT",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_2006() {
        assert_eq!(KEVENT_USER_CTL, 0xC00C_4B00);
        assert_eq!(KEVENT_USER_WAIT, 0xC00C_4B01);
        assert_eq!(ioc_size(KEVENT_USER_CTL), 12);
    }

    #[test]
    fn ukevent_round_trips_with_exact_offsets() {
        let u = Ukevent {
            id: [0x0102_0304, 0x0506_0708],
            type_: KEVENT_TIMER,
            event: 9,
            req_flags: KEVENT_REQ_ONESHOT,
            ret_flags: KEVENT_RET_DONE,
            ret_data: [11, 12],
            user: [0xdead_beef, 0xcafe_f00d],
        };
        let b = u.encode();
        assert_eq!(b.len(), 40);
        assert_eq!(&b[0..4], &0x0102_0304u32.to_ne_bytes());
        assert_eq!(&b[ukevent_offset::TYPE..][..4], &2u32.to_ne_bytes());
        assert_eq!(&b[ukevent_offset::RET_FLAGS..][..4], &2u32.to_ne_bytes());
        assert_eq!(
            &b[ukevent_offset::USER + 4..][..4],
            &0xcafe_f00du32.to_ne_bytes()
        );
        assert_eq!(Ukevent::decode(&b), Some(u));
    }

    #[test]
    fn short_input_is_none_not_a_panic() {
        assert_eq!(Ukevent::decode(&[0u8; 39]), None);
        assert_eq!(KeventUserControl::decode(&[0u8; 11]), None);
        assert_eq!(Ukevent::decode_array(&[0u8; 79], 2), None);
        assert_eq!(
            Ukevent::decode_array(&[0u8; 80], 2).map(|v| v.len()),
            Some(2)
        );
    }

    #[test]
    fn header_round_trips() {
        let h = KeventUserControl {
            cmd: KEVENT_CTL_WAIT,
            num: 7,
            timeout: 1000,
        };
        assert_eq!(KeventUserControl::decode(&h.encode()), Some(h));
        assert_eq!(
            &h.encode()[KeventUserControl::OFFSET_NUM..][..4],
            &7u32.to_ne_bytes()
        );
    }
}
