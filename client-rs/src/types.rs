//! Typed views of the raw `u32` fields: event types, event bits and flags.
//!
//! The raw fields of [`Ukevent`] stay public; everything here converts to
//! and from them, so typed and raw code mix freely.

use kevent_protocol::kevent::*;
use std::fmt;
use std::os::fd::{AsRawFd, RawFd};

/// The `type` of a ukevent.
///
/// ```
/// use kevent_client::EventType;
/// assert_eq!(EventType::from_raw(2), Some(EventType::Timer));
/// assert_eq!("socket".parse::<EventType>(), Ok(EventType::Socket));
/// assert_eq!(EventType::Poll.name(), "poll");
/// assert_eq!(EventType::from_raw(6), None); // KEVENT_MAX
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// `KEVENT_SOCKET` (0).
    Socket,
    /// `KEVENT_INODE` (1).
    Inode,
    /// `KEVENT_TIMER` (2).
    Timer,
    /// `KEVENT_POLL` (3).
    Poll,
    /// `KEVENT_NAIO` (4).
    Naio,
    /// `KEVENT_AIO` (5).
    Aio,
}

impl EventType {
    /// Every type, in number order.
    pub const ALL: [EventType; 6] = [
        EventType::Socket,
        EventType::Inode,
        EventType::Timer,
        EventType::Poll,
        EventType::Naio,
        EventType::Aio,
    ];

    /// The type of a raw `type` field; `None` from `KEVENT_MAX` on.
    pub fn from_raw(raw: u32) -> Option<EventType> {
        Self::ALL.get(raw as usize).copied()
    }

    /// The raw `type` value.
    pub fn raw(self) -> u32 {
        self as u32
    }

    /// The lower-case name (`"socket"`, ..., `"aio"`).
    pub fn name(self) -> &'static str {
        ["socket", "inode", "timer", "poll", "naio", "aio"][self as usize]
    }

    /// The names of the event bits of this type, with their values.
    pub fn event_names(self) -> &'static [(&'static str, u32)] {
        match self {
            EventType::Socket | EventType::Naio => &[
                ("recv", KEVENT_SOCKET_RECV),
                ("accept", KEVENT_SOCKET_ACCEPT),
                ("send", KEVENT_SOCKET_SEND),
            ],
            EventType::Inode => &[
                ("create", KEVENT_INODE_CREATE),
                ("remove", KEVENT_INODE_REMOVE),
            ],
            EventType::Timer => &[("fired", KEVENT_TIMER_FIRED)],
            EventType::Poll => &[
                ("pollin", KEVENT_POLL_POLLIN),
                ("pollpri", KEVENT_POLL_POLLPRI),
                ("pollout", KEVENT_POLL_POLLOUT),
                ("pollerr", KEVENT_POLL_POLLERR),
                ("pollhup", KEVENT_POLL_POLLHUP),
                ("pollnval", KEVENT_POLL_POLLNVAL),
                ("pollrdnorm", KEVENT_POLL_POLLRDNORM),
                ("pollrdband", KEVENT_POLL_POLLRDBAND),
                ("pollwrnorm", KEVENT_POLL_POLLWRNORM),
                ("pollwrband", KEVENT_POLL_POLLWRBAND),
                ("pollmsg", KEVENT_POLL_POLLMSG),
                ("pollremove", KEVENT_POLL_POLLREMOVE),
            ],
            EventType::Aio => &[("bio", KEVENT_AIO_BIO)],
        }
    }

    /// Parses event bits written as names joined by `|` (`"recv|send"`),
    /// case-insensitive; POLL names may drop their `poll` prefix (`"in"`).
    /// Numbers (`5`, `0x5`) and `all` are accepted in any position.
    ///
    /// ```
    /// use kevent_client::EventType;
    /// assert_eq!(EventType::Socket.parse_events("recv|send"), Ok(0x5));
    /// assert_eq!(EventType::Poll.parse_events("in|pollout"), Ok(0x5));
    /// assert_eq!(EventType::Timer.parse_events("0x1"), Ok(1));
    /// assert!(EventType::Inode.parse_events("recv").is_err());
    /// ```
    pub fn parse_events(self, s: &str) -> Result<u32, String> {
        let mut bits = 0u32;
        for word in s.split('|').map(str::trim) {
            bits |= if word.eq_ignore_ascii_case("all") {
                KEVENT_MASK_ALL
            } else if let Some(n) = parse_u32(word) {
                n
            } else {
                let lower = word.to_ascii_lowercase();
                self.event_names()
                    .iter()
                    .find(|(n, _)| *n == lower || (self == EventType::Poll && n[4..] == *lower))
                    .map(|(_, v)| *v)
                    .ok_or_else(|| {
                        let names: Vec<&str> = self.event_names().iter().map(|(n, _)| *n).collect();
                        format!(
                            "{word:?} is not a {} event (one of {}, a number, or all)",
                            self.name(),
                            names.join(", ")
                        )
                    })?
            };
        }
        Ok(bits)
    }

    /// Names the bits of `event` joined by `|`; bits without a name are
    /// appended in hex; 0 is `"0"`.
    ///
    /// ```
    /// use kevent_client::EventType;
    /// assert_eq!(EventType::Socket.format_events(0x5), "recv|send");
    /// assert_eq!(EventType::Timer.format_events(0x3), "fired|0x2");
    /// ```
    pub fn format_events(self, event: u32) -> String {
        format_bits(event, self.event_names())
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.name() == lower)
            .ok_or_else(|| {
                format!("unknown event type {s:?} (socket, inode, timer, poll, naio, aio)")
            })
    }
}

/// Parses `17`, `0x11` (decimal or hex).
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

fn format_bits(bits: u32, names: &[(&str, u32)]) -> String {
    let mut out = Vec::new();
    let mut rest = bits;
    for (n, v) in names {
        if bits & v == *v && *v != 0 {
            out.push(n.to_string());
            rest &= !v;
        }
    }
    if rest != 0 {
        out.push(format!("{rest:#x}"));
    }
    if out.is_empty() {
        "0".into()
    } else {
        out.join("|")
    }
}

bitflags::bitflags! {
    /// `req_flags`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct ReqFlags: u32 {
        /// `KEVENT_REQ_ONESHOT`: unregister when delivered.
        const ONESHOT = KEVENT_REQ_ONESHOT;
        /// Bits this crate does not name are kept.
        const _ = !0;
    }

    /// `ret_flags`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct RetFlags: u32 {
        /// `KEVENT_RET_BROKEN`: failed, or its object went away.
        const BROKEN = KEVENT_RET_BROKEN;
        /// `KEVENT_RET_DONE`: ready, removed, modified or failed.
        const DONE = KEVENT_RET_DONE;
        /// Bits this crate does not name are kept.
        const _ = !0;
    }

    /// Event bits of SOCKET (and NAIO) kevents.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct SocketEvents: u32 {
        /// `KEVENT_SOCKET_RECV`: data to read, or the peer shut down.
        const RECV = KEVENT_SOCKET_RECV;
        /// `KEVENT_SOCKET_ACCEPT`: a connection waits.
        const ACCEPT = KEVENT_SOCKET_ACCEPT;
        /// `KEVENT_SOCKET_SEND`: writable.
        const SEND = KEVENT_SOCKET_SEND;
        /// Bits this crate does not name are kept.
        const _ = !0;
    }

    /// Event bits of INODE kevents.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct InodeEvents: u32 {
        /// `KEVENT_INODE_CREATE`: an entry was created (or renamed in).
        const CREATE = KEVENT_INODE_CREATE;
        /// `KEVENT_INODE_REMOVE`: an entry was removed (or renamed out).
        const REMOVE = KEVENT_INODE_REMOVE;
        /// Bits this crate does not name are kept.
        const _ = !0;
    }

    /// Event bits of TIMER kevents.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct TimerEvents: u32 {
        /// `KEVENT_TIMER_FIRED`.
        const FIRED = KEVENT_TIMER_FIRED;
        /// Bits this crate does not name are kept.
        const _ = !0;
    }

    /// Event bits of POLL kevents (the values of `POLL*`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct PollEvents: u32 {
        /// `KEVENT_POLL_POLLIN`.
        const IN = KEVENT_POLL_POLLIN;
        /// `KEVENT_POLL_POLLPRI`.
        const PRI = KEVENT_POLL_POLLPRI;
        /// `KEVENT_POLL_POLLOUT`.
        const OUT = KEVENT_POLL_POLLOUT;
        /// `KEVENT_POLL_POLLERR`.
        const ERR = KEVENT_POLL_POLLERR;
        /// `KEVENT_POLL_POLLHUP`.
        const HUP = KEVENT_POLL_POLLHUP;
        /// `KEVENT_POLL_POLLNVAL`.
        const NVAL = KEVENT_POLL_POLLNVAL;
        /// `KEVENT_POLL_POLLRDNORM`.
        const RDNORM = KEVENT_POLL_POLLRDNORM;
        /// `KEVENT_POLL_POLLRDBAND`.
        const RDBAND = KEVENT_POLL_POLLRDBAND;
        /// `KEVENT_POLL_POLLWRNORM`.
        const WRNORM = KEVENT_POLL_POLLWRNORM;
        /// `KEVENT_POLL_POLLWRBAND`.
        const WRBAND = KEVENT_POLL_POLLWRBAND;
        /// `KEVENT_POLL_POLLMSG`.
        const MSG = KEVENT_POLL_POLLMSG;
        /// `KEVENT_POLL_POLLREMOVE`.
        const REMOVE = KEVENT_POLL_POLLREMOVE;
        /// Bits this crate does not name are kept.
        const _ = !0;
    }

    /// Event bits of AIO kevents.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct AioEvents: u32 {
        /// `KEVENT_AIO_BIO`.
        const BIO = KEVENT_AIO_BIO;
        /// Bits this crate does not name are kept.
        const _ = !0;
    }
}

/// Typed constructors and accessors for [`Ukevent`]; the raw fields stay
/// available.
///
/// ```
/// use kevent_client::{Ukevent, UkeventExt, EventType, ReqFlags, RetFlags, KEVENT_TIMER};
/// let uk = Ukevent::timer(100).oneshot().with_user([7, 0]);
/// assert_eq!(uk.type_, KEVENT_TIMER);
/// assert_eq!(uk.id, [100, 0]);
/// assert_eq!(uk.kind(), Some(EventType::Timer));
/// assert_eq!(uk.req(), ReqFlags::ONESHOT);
/// assert!(uk.ret().is_empty());
/// let done = Ukevent { ret_flags: 3, ..uk };
/// assert_eq!(done.ret(), RetFlags::BROKEN | RetFlags::DONE);
/// assert!(done.is_broken());
/// ```
pub trait UkeventExt: Sized {
    /// A TIMER kevent with a period of `period_ms` (event FIRED).
    fn timer(period_ms: u32) -> Self;
    /// A SOCKET kevent on a socket of this process.
    fn socket(fd: &impl AsRawFd, events: SocketEvents) -> Self;
    /// A POLL kevent on any pollable descriptor of this process.
    fn poll(fd: &impl AsRawFd, events: PollEvents) -> Self;
    /// An INODE kevent on an open directory (or file) of this process.
    fn inode(fd: &impl AsRawFd, events: InodeEvents) -> Self;
    /// A kevent of any type from raw parts.
    fn raw(type_: u32, id: [u32; 2], event: u32) -> Self;
    /// Sets `req_flags` ONESHOT.
    fn oneshot(self) -> Self;
    /// Sets `user` (part of the key REMOVE and MODIFY match on).
    fn with_user(self, user: [u32; 2]) -> Self;
    /// The type, `None` for a number from `KEVENT_MAX` on.
    fn kind(&self) -> Option<EventType>;
    /// `req_flags`, typed.
    fn req(&self) -> ReqFlags;
    /// `ret_flags`, typed.
    fn ret(&self) -> RetFlags;
    /// `ret_flags` has BROKEN.
    fn is_broken(&self) -> bool {
        self.ret().contains(RetFlags::BROKEN)
    }
    /// `ret_flags` has DONE.
    fn is_done(&self) -> bool {
        self.ret().contains(RetFlags::DONE)
    }
}

fn fd_u32(fd: RawFd) -> u32 {
    fd as u32
}

impl UkeventExt for Ukevent {
    fn timer(period_ms: u32) -> Self {
        Self::raw(KEVENT_TIMER, [period_ms, 0], KEVENT_TIMER_FIRED)
    }
    fn socket(fd: &impl AsRawFd, events: SocketEvents) -> Self {
        Self::raw(KEVENT_SOCKET, [fd_u32(fd.as_raw_fd()), 0], events.bits())
    }
    fn poll(fd: &impl AsRawFd, events: PollEvents) -> Self {
        Self::raw(KEVENT_POLL, [fd_u32(fd.as_raw_fd()), 0], events.bits())
    }
    fn inode(fd: &impl AsRawFd, events: InodeEvents) -> Self {
        Self::raw(KEVENT_INODE, [fd_u32(fd.as_raw_fd()), 0], events.bits())
    }
    fn raw(type_: u32, id: [u32; 2], event: u32) -> Self {
        Ukevent {
            id,
            type_,
            event,
            ..Default::default()
        }
    }
    fn oneshot(mut self) -> Self {
        self.req_flags |= KEVENT_REQ_ONESHOT;
        self
    }
    fn with_user(mut self, user: [u32; 2]) -> Self {
        self.user = user;
        self
    }
    fn kind(&self) -> Option<EventType> {
        EventType::from_raw(self.type_)
    }
    fn req(&self) -> ReqFlags {
        ReqFlags::from_bits_retain(self.req_flags)
    }
    fn ret(&self) -> RetFlags {
        RetFlags::from_bits_retain(self.ret_flags)
    }
}
