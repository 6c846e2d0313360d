//! Event sources: one module per kevent type, each implementing
//! [`Source`] (defined in [`crate::core::source`]) and built by one
//! constructor over the shared [`SourceCtx`]. [`TABLE`] lists them: a new
//! event type is one module and one row there.

pub mod aio;
pub mod inode;
pub mod naio;
pub mod poll;
pub mod socket;
pub mod timer;
pub mod transfer;

pub use crate::core::source::{Notice, Outcome, Source};

use crate::core::Core;
use crate::sys::pidfd::OwnDevice;
use kevent_protocol::kevent::{
    KEVENT_AIO, KEVENT_INODE, KEVENT_NAIO, KEVENT_POLL, KEVENT_SOCKET, KEVENT_TIMER,
};
use poll::offload::Offload;
use std::io;
use std::sync::Arc;

/// What the sources need from start-up, built once after the transport
/// exists. New fields here are how new needs plug in.
#[derive(Debug, Clone)]
pub struct SourceCtx {
    /// The device this daemon serves (POLL and SOCKET must tell it apart
    /// among a caller's files and never poll or close it on a serving
    /// thread).
    pub own: OwnDevice,
    /// The POLL offload thread: polls and closes files a FUSE or CUSE server
    /// answers for.
    pub offload: Arc<Offload>,
}

impl SourceCtx {
    /// Starts what the sources share (the offload thread).
    pub fn new(own: OwnDevice) -> io::Result<Self> {
        Ok(SourceCtx {
            own,
            offload: Arc::new(Offload::start()?),
        })
    }
}

/// The constructor every source has.
pub type Builder = fn(&SourceCtx) -> io::Result<Box<dyn Source>>;

/// Every served event type: (type number, name, constructor).
pub const TABLE: &[(u32, &str, Builder)] = &[
    (KEVENT_SOCKET, "socket", socket::build),
    (KEVENT_INODE, "inode", inode::build),
    (KEVENT_TIMER, "timer", timer::build),
    (KEVENT_POLL, "poll", poll::build),
    (KEVENT_NAIO, "naio", naio::build),
    (KEVENT_AIO, "aio", aio::build),
];

/// Builds every source of [`TABLE`] into `core`. The error names the
/// source that failed.
pub fn build_all(ctx: &SourceCtx, core: &mut Core) -> Result<(), (&'static str, io::Error)> {
    for &(ty, name, build) in TABLE {
        core.set_source(ty, build(ctx).map_err(|e| (name, e))?);
    }
    Ok(())
}
