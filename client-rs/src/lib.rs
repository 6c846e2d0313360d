//! A safe Rust client for `/dev/kevent` (the 2006 kevent ioctl ABI served
//! by kevent-cuse).
//!
//! ```no_run
//! use kevent_client::{Device, Ukevent, KEVENT_TIMER, KEVENT_TIMER_FIRED};
//! let dev = Device::open("/dev/kevent")?;
//! let mut t = [Ukevent { id: [100, 0], type_: KEVENT_TIMER, event: KEVENT_TIMER_FIRED, ..Default::default() }];
//! dev.add(&mut t)?;
//! for ev in dev.wait(8, 1000)? {
//!     println!("timer {} fired at {} ms", ev.id[0], ev.ret_data[0]);
//! }
//! # Ok::<(), kevent_client::Error>(())
//! ```
#![deny(missing_docs)]
#![deny(unsafe_code)]

mod sys;

pub use kevent_protocol::kevent::*;
use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
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
    /// The ioctl returned -1; `errno` as the ABI defines it.
    #[error("{op}: {source}")]
    Ioctl {
        /// Which command.
        op: &'static str,
        /// The errno.
        #[source]
        source: std::io::Error,
    },
}

/// The result of an ADD (docs/ABI.md §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The ioctl's return value: count of written-back ukevents when the
    /// last was queued, 1 when it was ready at once.
    pub ret: i32,
    /// The written-back ukevents (ready at once, failed, unknown type).
    pub written_back: Vec<Ukevent>,
}

/// One open of the device: one queue.
#[derive(Debug)]
pub struct Device {
    file: File,
}

impl Device {
    /// Opens the device read-write.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(path, 0)
    }

    /// Opens the device with O_NONBLOCK: WAIT never sleeps.
    pub fn open_nonblocking(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open_with(path, libc::O_NONBLOCK)
    }

    fn open_with(path: impl AsRef<Path>, flags: i32) -> Result<Self, Error> {
        let path = path.as_ref();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(flags)
            .open(path)
            .map_err(|source| Error::Open {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Device { file })
    }

    /// Runs one raw ioctl on an argument buffer laid out as the ABI says
    /// (12-byte header, then ukevents). Returns the ioctl's value.
    pub fn raw_ioctl(&self, request: u32, buf: &mut [u8]) -> std::io::Result<i32> {
        sys::ioctl(self.file.as_raw_fd(), request, buf)
    }

    fn run(
        &self,
        op: &'static str,
        request: u32,
        cmd: u32,
        num: u32,
        timeout: u32,
        evs: &[Ukevent],
    ) -> Result<(i32, Vec<u8>), (Error, Vec<u8>)> {
        let hdr = KeventUserControl { cmd, num, timeout };
        let mut buf = hdr.encode().to_vec();
        buf.extend_from_slice(&Ukevent::encode_array(evs));
        let room = KeventUserControl::SIZE + num as usize * Ukevent::SIZE;
        if buf.len() < room {
            buf.resize(room, 0);
        }
        match self.raw_ioctl(request, &mut buf) {
            Ok(r) => Ok((r, buf)),
            Err(source) => Err((Error::Ioctl { op, source }, buf)),
        }
    }

    /// ADD: registers `evs`. On success returns the written-back ukevents.
    /// An error means the LAST ukevent failed; earlier ones may be queued.
    pub fn add(&self, evs: &mut [Ukevent]) -> Result<Added, Error> {
        let n = evs.len() as u32;
        let (ret, buf) = self
            .run("ADD", KEVENT_USER_CTL, KEVENT_CTL_ADD, n, 0, evs)
            .map_err(|(e, _)| e)?;
        let hdr = KeventUserControl::decode(&buf).expect("12 bytes");
        let count = (hdr.num as usize).min(evs.len());
        let written_back = Ukevent::decode_array(&buf[12..], count).unwrap_or_default();
        Ok(Added { ret, written_back })
    }

    /// REMOVE: unregisters by key; returns each ukevent written back
    /// (ret_flags DONE, plus BROKEN when nothing matched).
    pub fn remove(&self, evs: &[Ukevent]) -> Result<Vec<Ukevent>, Error> {
        self.in_place("REMOVE", KEVENT_CTL_REMOVE, evs)
    }

    /// MODIFY: new event mask and req_flags for the matching kevents.
    pub fn modify(&self, evs: &[Ukevent]) -> Result<Vec<Ukevent>, Error> {
        self.in_place("MODIFY", KEVENT_CTL_MODIFY, evs)
    }

    fn in_place(&self, op: &'static str, cmd: u32, evs: &[Ukevent]) -> Result<Vec<Ukevent>, Error> {
        let (_, buf) = self
            .run(op, KEVENT_USER_CTL, cmd, evs.len() as u32, 0, evs)
            .map_err(|(e, _)| e)?;
        Ok(Ukevent::decode_array(&buf[12..], evs.len()).unwrap_or_default())
    }

    /// WAIT through KEVENT_USER_WAIT: up to `max` ready events; `timeout_ms`
    /// 0 means "at least one, or 1 second".
    pub fn wait(&self, max: u32, timeout_ms: u32) -> Result<Vec<Ukevent>, Error> {
        let (ret, buf) = self
            .run(
                "WAIT",
                KEVENT_USER_WAIT,
                KEVENT_CTL_WAIT,
                max,
                timeout_ms,
                &[],
            )
            .map_err(|(e, _)| e)?;
        Ok(Ukevent::decode_array(&buf[12..], ret.max(0) as usize).unwrap_or_default())
    }
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
