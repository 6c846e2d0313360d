//! The kernel side: a FUSE/CUSE channel fd, set up either as a CUSE
//! character device ([`cuse`]) or as FUSE mounted on a regular file
//! ([`fuse_file`]). Both hand back the same [`Served`] shape, so the rest of
//! the daemon never learns which one is live (docs/WIRE.md).

pub mod access;
pub mod cuse;
pub mod dispatch;
pub mod fuse_file;
pub mod ioctl;
pub mod uring;

use kevent_protocol::fuse;
use rustix::event::{poll, PollFd, PollFlags};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;
use tracing::{debug, warn};

/// Which kernel interface serves the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// `/dev/cuse`: a real character device, unrestricted ioctls.
    Cuse,
    /// FUSE mounted on a regular file: restricted ioctls.
    FuseFile,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Cuse => "CUSE",
            TransportKind::FuseFile => "FUSE file",
        })
    }
}

/// Why the device could not be set up. Each message names the cause.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Something already serves or occupies the name.
    #[error("{0} is already taken: {1}")]
    NameTaken(PathBuf, String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The kernel did not complete the handshake.
    #[error("{0}")]
    Handshake(String),
}

impl SetupError {
    pub(crate) fn io(what: impl Into<String>, source: impl Into<io::Error>) -> Self {
        SetupError::Io {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Size of the read buffer: a RETRY leg may carry 128 KiB of ioctl data
/// (CUSE's limit per direction) plus headers; a request that does not fit
/// would be failed by the kernel.
pub const READ_BUFFER: usize = 128 * 1024 + 8192;

/// The channel fd (`/dev/cuse` or `/dev/fuse`), non-blocking and close-on-exec.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    pub(crate) fn new(fd: OwnedFd) -> Self {
        Channel { fd }
    }

    /// Reads one request into `buf`: `Ok(None)` when none is waiting.
    /// ENODEV means the connection is gone (unmounted or aborted).
    pub fn read_request(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match rustix::io::read(&self.fd, &mut *buf) {
                Ok(n) => return Ok(Some(n)),
                Err(rustix::io::Errno::AGAIN) => return Ok(None),
                Err(rustix::io::Errno::INTR) => continue,
                // The kernel dropped a request we had not read yet (its
                // caller was interrupted): nothing to do.
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Writes one reply or notification; one write() is one message.
    pub fn send(&self, msg: &[u8]) {
        match rustix::io::write(&self.fd, msg) {
            Ok(_) => {}
            // The request is gone (its caller was killed or interrupted and
            // the kernel dropped it): benign.
            Err(rustix::io::Errno::NOENT) => debug!("reply to a vanished request"),
            Err(e) => warn!("channel write failed: {e}"),
        }
    }

    /// Waits until a request is readable (startup handshake only).
    pub(crate) fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        let ts = rustix::time::Timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        loop {
            match poll(&mut fds, Some(&ts)) {
                Ok(n) => return Ok(n > 0),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads the first request (INIT), waiting at most `timeout`.
    pub(crate) fn read_init(&self, timeout: Duration) -> Result<Vec<u8>, SetupError> {
        let mut buf = vec![0u8; READ_BUFFER];
        if !self
            .wait_readable(timeout)
            .map_err(|e| SetupError::io("waiting for INIT", e))?
        {
            return Err(SetupError::Handshake(
                "the kernel sent no INIT request".into(),
            ));
        }
        match self
            .read_request(&mut buf)
            .map_err(|e| SetupError::io("reading INIT", e))?
        {
            Some(n) => {
                buf.truncate(n);
                Ok(buf)
            }
            None => Err(SetupError::Handshake("INIT vanished".into())),
        }
    }
}

impl AsFd for Channel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A [`dispatch::ReplySink`] writing to a shared channel.
pub struct ChannelSink(pub std::rc::Rc<Channel>);

impl dispatch::ReplySink for ChannelSink {
    fn send(&mut self, msg: &[u8]) {
        self.0.send(msg)
    }
}

/// A live device: the channel and how to take it down.
#[derive(Debug)]
pub struct Served {
    /// Which transport.
    pub kind: TransportKind,
    /// The channel.
    pub channel: std::rc::Rc<Channel>,
    /// The path users open.
    pub node: PathBuf,
    /// For the FUSE file: whether we created the placeholder file.
    created_file: bool,
    /// For the FUSE file: FUSE-over-io_uring was agreed at INIT.
    pub io_uring: bool,
}

impl Served {
    /// Removes the device: for CUSE closing the channel removes the node; for
    /// the FUSE file the mount is detached and a placeholder we created is
    /// removed.
    pub fn teardown(self) {
        match self.kind {
            TransportKind::Cuse => drop(self.channel),
            TransportKind::FuseFile => {
                fuse_file::unmount(&self.node);
                drop(self.channel);
                if self.created_file {
                    fuse_file::remove_placeholder(&self.node);
                }
            }
        }
    }
}

/// Decodes the first request of a channel (INIT or CUSE_INIT).
pub(crate) fn decode_init(buf: &[u8]) -> Result<fuse::Message<'_>, SetupError> {
    let msg = fuse::decode(buf).map_err(|e| SetupError::Handshake(format!("bad INIT: {e}")))?;
    Ok(msg)
}
