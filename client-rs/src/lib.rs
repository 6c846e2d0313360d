//! A Rust client for `/dev/kevent`, the 2006 kevent ioctl ABI served by
//! kevent-cuse (see kevent(4) and docs/ABI.md in the kevent-cuse sources).
//!
//! One [`Device`] is one open of the device: one queue. Kevents are
//! [`Ukevent`]s (the raw 40-byte `struct ukevent`, every field public); the
//! [`UkeventExt`] trait adds typed constructors and accessors, and
//! [`EventType`], [`SocketEvents`], [`PollEvents`], [`InodeEvents`],
//! [`TimerEvents`], [`ReqFlags`] and [`RetFlags`] type the raw `u32` fields.
//!
//! ```no_run
//! use kevent_client::{Device, Ukevent, UkeventExt};
//! let dev = Device::open("/dev/kevent")?;
//! let mut evs = [Ukevent::timer(100).with_user([1, 0])];
//! let added = dev.add(&mut evs)?;
//! assert!(added.written_back.is_empty()); // queued, not ready yet
//! for ev in dev.wait(8, 1000)? {
//!     println!("timer {} fired at {} ms", ev.id[0], ev.ret_data[0]);
//! }
//! # Ok::<(), kevent_client::Error>(())
//! ```
//!
//! Features:
//! * `tokio`: [`AsyncDevice`] (module [`async_fd`]), the device in tokio's reactor
//!   (`AsyncFd`), with an async `wait`.
//! * `mio`: `Device` implements `mio::event::Source`.
//!
//! The `kevent-ctl` command-line tool is a separate crate of the same
//! repository, so this library pulls in no CLI dependencies.
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod errno;
mod sys;
mod types;

#[cfg(feature = "tokio")]
pub mod async_fd;
#[cfg(feature = "mio")]
mod mio_source;
#[cfg(feature = "tokio")]
pub use async_fd::AsyncDevice;

pub use errno::Errno;
pub use kevent_protocol::kevent::*;
pub use types::{
    AioEvents, EventType, InodeEvents, PollEvents, ReqFlags, RetFlags, SocketEvents, TimerEvents,
    UkeventExt,
};

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;

/// What a call on the device can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// open() failed.
    #[error("opening {path}: {source}")]
    Open {
        /// The device path.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The ioctl failed as a whole (nothing was written back); `errno` as
    /// docs/ABI.md section 2 defines it.
    #[error("{op}: {source}")]
    Ioctl {
        /// Which command.
        op: &'static str,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
    /// A buffer given to [`Device::ioctl`] does not hold what its header
    /// announces.
    #[error("{0}")]
    Buffer(String),
}

impl Error {
    /// The errno of the failure, if it has one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Open { source, .. } | Error::Ioctl { source, .. } => Errno::from_io(source),
            Error::Buffer(_) => None,
        }
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Open { source, .. } | Error::Ioctl { source, .. } => source,
            Error::Buffer(m) => std::io::Error::new(std::io::ErrorKind::InvalidInput, m),
        }
    }
}

/// What happened to one written-back ukevent of an ADD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddStatus {
    /// Ready at once: written back with DONE and not registered (the event
    /// itself; no WAIT will report it).
    Ready,
    /// Registration failed: written back with BROKEN|DONE, not registered.
    /// The ABI reports the errno only for the last ukevent of an ADD (as
    /// the ioctl's errno); for earlier ones it is `None`. Use one ADD per
    /// ukevent when every errno matters.
    Failed(Option<Errno>),
    /// Unknown type (>= `KEVENT_MAX`): written back unchanged, not
    /// registered (errno E2BIG).
    UnknownType,
}

/// One ukevent an ADD wrote back, with what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenBack {
    /// The ukevent as the device wrote it.
    pub event: Ukevent,
    /// Ready, failed or unknown type.
    pub status: AddStatus,
}

/// The result of an ADD (docs/ABI.md section 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The ioctl's value as 2006 defines it: the count of written-back
    /// ukevents when the last was queued, 1 when it was ready at once, -1
    /// when it failed (its errno is in its [`AddStatus::Failed`]).
    pub ret: i32,
    /// Every written-back ukevent, in order: those ready at once and those
    /// that failed. Queued ukevents are not in it.
    pub written_back: Vec<WrittenBack>,
}

impl Added {
    /// The ukevents that were ready at once.
    pub fn ready(&self) -> impl Iterator<Item = &Ukevent> {
        self.written_back
            .iter()
            .filter(|w| w.status == AddStatus::Ready)
            .map(|w| &w.event)
    }

    /// The ukevents that were not registered because they failed (or had an
    /// unknown type), with their errno where the ABI gives it.
    pub fn failed(&self) -> impl Iterator<Item = (&Ukevent, Option<Errno>)> {
        self.written_back.iter().filter_map(|w| match w.status {
            AddStatus::Ready => None,
            AddStatus::Failed(e) => Some((&w.event, e)),
            AddStatus::UnknownType => Some((&w.event, Some(Errno::E2BIG))),
        })
    }
}

/// One open of the device: one queue.
///
/// It owns its descriptor ([`AsFd`], [`AsRawFd`], [`From<OwnedFd>`],
/// [`Into<OwnedFd>`]), so it can be polled (the descriptor is readable while
/// events are ready) or handed to an event loop.
#[derive(Debug)]
pub struct Device {
    fd: OwnedFd,
}

impl Device {
    /// Opens the device read-write (with O_CLOEXEC).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(path, 0)
    }

    /// Opens the device with O_NONBLOCK: WAIT never sleeps. The device sees
    /// O_NONBLOCK only at open (docs/ABI.md section 5 item 6), so this is
    /// the way to get a non-blocking queue; `fcntl` later has no effect.
    pub fn open_nonblocking(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(path, libc::O_NONBLOCK)
    }

    fn open_with(path: impl AsRef<Path>, flags: i32) -> Result<Self, Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = path.as_ref();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(flags | libc::O_CLOEXEC)
            .open(path)
            .map_err(|source| Error::Open {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Device { fd: file.into() })
    }

    /// Whether the queue was opened with O_NONBLOCK (as far as the open
    /// file description says).
    pub fn is_nonblocking(&self) -> bool {
        sys::is_nonblocking(self.fd.as_raw_fd())
    }

    /// Runs `request` on a buffer laid out as docs/ABI.md section 2 says: a
    /// 12-byte header followed by `num` ukevents. Safe: only
    /// `KEVENT_USER_CTL` and `KEVENT_USER_WAIT` are accepted, and only when
    /// `buf` holds the header plus `num` ukevents.
    pub fn ioctl(&self, request: u32, buf: &mut [u8]) -> Result<i32, Error> {
        if request != KEVENT_USER_CTL && request != KEVENT_USER_WAIT {
            return Err(Error::Buffer(format!(
                "ioctl {request:#x} is not KEVENT_USER_CTL or KEVENT_USER_WAIT"
            )));
        }
        let hdr = KeventUserControl::decode(buf)
            .ok_or_else(|| Error::Buffer(format!("{} bytes: no 12-byte header", buf.len())))?;
        let need = (hdr.num as usize)
            .checked_mul(Ukevent::SIZE)
            .and_then(|n| n.checked_add(KeventUserControl::SIZE));
        if !matches!(need, Some(n) if buf.len() >= n) {
            return Err(Error::Buffer(format!(
                "{} bytes cannot hold the header and {} ukevents",
                buf.len(),
                hdr.num
            )));
        }
        // SAFETY (of the call below, see `raw_ioctl`): the kevent ioctls
        // touch the header and `num` ukevents, all inside `buf` (checked).
        #[allow(unsafe_code)]
        let r = unsafe { self.raw_ioctl(request, buf.as_mut_ptr()) };
        r.map_err(|source| Error::Ioctl {
            op: ioctl_name(request),
            source,
        })
    }

    /// Runs any ioctl on the descriptor with a raw argument pointer and
    /// returns its value.
    ///
    /// # Safety
    ///
    /// `arg` must be valid for reads and writes of every byte the ioctl
    /// may touch, for the whole call. For `KEVENT_USER_CTL` and
    /// `KEVENT_USER_WAIT` that is the 12-byte header plus `num` ukevents of
    /// 40 bytes, where `num` is the header's value when the call starts
    /// (prefer the checked [`Device::ioctl`]). For other numbers it depends
    /// on what serves the descriptor: the kevent-cuse daemon answers them
    /// with ENODEV without touching memory, but a descriptor made with
    /// [`From<OwnedFd>`] may be anything.
    #[allow(unsafe_code)]
    pub unsafe fn raw_ioctl(&self, request: u32, arg: *mut u8) -> std::io::Result<i32> {
        // SAFETY: forwarded to the caller's contract above.
        unsafe { sys::ioctl(self.fd.as_raw_fd(), request, arg) }
    }

    fn run(
        &self,
        op: &'static str,
        request: u32,
        hdr: KeventUserControl,
        evs: &[Ukevent],
        room: usize,
    ) -> (std::io::Result<i32>, Vec<u8>) {
        let mut buf = hdr.encode().to_vec();
        buf.extend_from_slice(&Ukevent::encode_array(evs));
        let want = KeventUserControl::SIZE + room * Ukevent::SIZE;
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let r = self.ioctl(request, &mut buf).map_err(|e| match e {
            Error::Ioctl { source, .. } => source,
            other => std::io::Error::other(format!("{op}: {other}")),
        });
        (r, buf)
    }

    /// ADD: registers `evs` in one ioctl.
    ///
    /// Like the device, it writes the written-back ukevents (ready at once,
    /// failed, unknown type) into the start of `evs`, packed and in order,
    /// and returns them with their meaning; `evs[written_back.len()..]` is
    /// left as it was. A ukevent that failed is reported in the result,
    /// not as an `Err`, even when it was the last one (the ioctl then
    /// returned -1 with its errno). `Err` means that the ioctl failed as a
    /// whole and nothing was registered or written back (ENFILE at the
    /// queue limit, EINVAL, EPERM, ...).
    ///
    /// ```no_run
    /// use kevent_client::{AddStatus, Device, Errno, Ukevent, UkeventExt};
    /// let dev = Device::open("/dev/kevent")?;
    /// // A timer (queued) and a POLL kevent on descriptor 9999 (no such fd).
    /// let mut evs = [Ukevent::timer(1000), Ukevent::raw(3, [9999, 0], 1)];
    /// let added = dev.add(&mut evs)?;
    /// assert_eq!(added.ret, -1);
    /// assert_eq!(added.written_back.len(), 1);
    /// assert_eq!(added.written_back[0].status, AddStatus::Failed(Some(Errno::ENODEV)));
    /// assert_eq!(evs[0].id, [9999, 0]); // written back into the slice
    /// # Ok::<(), kevent_client::Error>(())
    /// ```
    pub fn add(&self, evs: &mut [Ukevent]) -> Result<Added, Error> {
        let n = evs.len();
        let num = u32::try_from(n).map_err(|_| Error::Buffer("too many ukevents".into()))?;
        // ret_flags start at 0 for ADD (docs/ABI.md section 3): clearing them
        // in the request tells an untouched array from a written-back one.
        let input: Vec<Ukevent> = evs.iter().map(|u| Ukevent { ret_flags: 0, ..*u }).collect();
        let hdr = KeventUserControl {
            cmd: KEVENT_CTL_ADD,
            num,
            timeout: 0,
        };
        let (r, buf) = self.run("ADD", KEVENT_USER_CTL, hdr, &input, n);
        let out_hdr = KeventUserControl::decode(&buf).unwrap_or_default();
        let count = (out_hdr.num as usize).min(n);
        let back =
            Ukevent::decode_array(&buf[KeventUserControl::SIZE..], count).unwrap_or_default();
        let last_errno = match &r {
            Ok(_) => None,
            Err(e) => {
                // A per-ukevent failure of the last ukevent writes it back
                // (BROKEN|DONE, or unchanged with E2BIG for an unknown type);
                // a failure of the whole call writes nothing back.
                let errno = Errno::from_io(e);
                let last_back = back.last().is_some_and(|u| {
                    (u.ret_flags & (KEVENT_RET_BROKEN | KEVENT_RET_DONE)
                        == (KEVENT_RET_BROKEN | KEVENT_RET_DONE))
                        || (errno == Some(Errno::E2BIG) && u.type_ >= KEVENT_MAX)
                });
                if !last_back || count == 0 {
                    return Err(Error::Ioctl {
                        op: "ADD",
                        source: r.unwrap_err(),
                    });
                }
                errno
            }
        };
        let written_back: Vec<WrittenBack> = back
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let status = if u.type_ >= KEVENT_MAX && u.ret_flags & KEVENT_RET_DONE == 0 {
                    AddStatus::UnknownType
                } else if u.ret_flags & KEVENT_RET_BROKEN != 0 {
                    AddStatus::Failed(if i + 1 == count { last_errno } else { None })
                } else {
                    AddStatus::Ready
                };
                WrittenBack { event: *u, status }
            })
            .collect();
        evs[..count].copy_from_slice(&back);
        Ok(Added {
            ret: r.unwrap_or(-1),
            written_back,
        })
    }

    /// REMOVE: unregisters the kevents whose key (id, user) matches. Each
    /// ukevent of `evs` is written back in place: ret_flags DONE, plus
    /// BROKEN when nothing matched.
    pub fn remove(&self, evs: &mut [Ukevent]) -> Result<(), Error> {
        self.in_place("REMOVE", KEVENT_CTL_REMOVE, evs)
    }

    /// MODIFY: new event mask and req_flags for the kevents whose key
    /// matches; written back in place as for [`Device::remove`].
    pub fn modify(&self, evs: &mut [Ukevent]) -> Result<(), Error> {
        self.in_place("MODIFY", KEVENT_CTL_MODIFY, evs)
    }

    fn in_place(&self, op: &'static str, cmd: u32, evs: &mut [Ukevent]) -> Result<(), Error> {
        let n = evs.len();
        let num = u32::try_from(n).map_err(|_| Error::Buffer("too many ukevents".into()))?;
        let hdr = KeventUserControl {
            cmd,
            num,
            timeout: 0,
        };
        let (r, buf) = self.run(op, KEVENT_USER_CTL, hdr, evs, n);
        r.map_err(|source| Error::Ioctl { op, source })?;
        let back = Ukevent::decode_array(&buf[KeventUserControl::SIZE..], n).unwrap_or_default();
        evs[..back.len()].copy_from_slice(&back);
        Ok(())
    }

    /// WAIT through `KEVENT_USER_WAIT`: up to `max` ready events, in FIFO
    /// order. `timeout_ms` 0 means "at least one, or 1 second"; a queue
    /// opened with O_NONBLOCK never sleeps.
    pub fn wait(&self, max: u32, timeout_ms: u32) -> Result<Vec<Ukevent>, Error> {
        let mut out = vec![Ukevent::default(); max as usize];
        let n = self.wait_into(&mut out, timeout_ms)?;
        out.truncate(n);
        Ok(out)
    }

    /// WAIT into `out` (at most `out.len()` events); returns the count.
    pub fn wait_into(&self, out: &mut [Ukevent], timeout_ms: u32) -> Result<usize, Error> {
        let max =
            u32::try_from(out.len()).map_err(|_| Error::Buffer("too many ukevents".into()))?;
        let hdr = KeventUserControl {
            cmd: KEVENT_CTL_WAIT,
            num: max,
            timeout: timeout_ms,
        };
        let (r, buf) = self.run("WAIT", KEVENT_USER_WAIT, hdr, &[], out.len());
        let n = r.map_err(|source| Error::Ioctl { op: "WAIT", source })?;
        let n = (n.max(0) as usize).min(out.len());
        let evs = Ukevent::decode_array(&buf[KeventUserControl::SIZE..], n).unwrap_or_default();
        out[..evs.len()].copy_from_slice(&evs);
        Ok(evs.len())
    }
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for Device {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl From<OwnedFd> for Device {
    /// Adopts an open descriptor of the device (for example one made by
    /// libkevent's `kevent_ctl(INIT)` or inherited from a parent).
    fn from(fd: OwnedFd) -> Self {
        Device { fd }
    }
}

impl From<Device> for OwnedFd {
    fn from(d: Device) -> OwnedFd {
        d.fd
    }
}

impl IntoRawFd for Device {
    fn into_raw_fd(self) -> RawFd {
        self.fd.into_raw_fd()
    }
}

impl FromRawFd for Device {
    /// # Safety
    ///
    /// `fd` must be an open descriptor that nothing else owns.
    #[allow(unsafe_code)]
    unsafe fn from_raw_fd(fd: RawFd) -> Self {
        // SAFETY: the caller hands over sole ownership of an open fd.
        Device {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        }
    }
}
