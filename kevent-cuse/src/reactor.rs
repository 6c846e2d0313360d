//! The event thread: one poll() over the signalfd, the dispatcher's kick
//! eventfd and each source's fd. Requests are served by the serving threads
//! (transport::readers), not here; this thread turns source activity and
//! passing time into ready events and answers the parked WAITs they wake.
//!
//! poll(), not epoll: an epoll set holding the sources' own epoll sets would
//! make every epoll_ctl of the request path take the kernel's epoll nesting
//! lock, and a caller's epoll set that polls this daemon's device could then
//! deadlock the daemon with one ADD (issue 8 item 1).

use crate::transport::dispatch::Dispatcher;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::time::Timespec;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;
use tracing::{debug, info};

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM, SIGINT or SIGHUP.
    Signal,
    /// The kernel closed the connection (unmounted, aborted) or sent DESTROY.
    Disconnected,
}

/// Runs until a signal or disconnection.
pub fn run(signals: BorrowedFd<'_>, d: &Dispatcher) -> std::io::Result<Exit> {
    let sources: Vec<(u32, BorrowedFd<'_>)> = d.source_fds().collect();
    let kick = d.kick_fd();
    loop {
        if d.destroyed() {
            return Ok(Exit::Disconnected);
        }
        let timeout = d.next_deadline().map(|dl| {
            let left = dl.saturating_duration_since(Instant::now());
            Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            }
        });
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(2 + sources.len());
        fds.push(PollFd::new(&signals, PollFlags::IN));
        fds.push(PollFd::new(&kick, PollFlags::IN));
        for (_, fd) in &sources {
            fds.push(PollFd::new(fd, PollFlags::IN));
        }
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        drop(fds);
        if ready[0] {
            let mut si = [0u8; 128];
            let _ = rustix::io::read(signals.as_fd(), &mut si);
            let signo = u32::from_ne_bytes(si[0..4].try_into().expect("4 bytes"));
            info!("signal {signo}: shutting down");
            return Ok(Exit::Signal);
        }
        if ready[1] {
            d.drain_kick();
        }
        for (i, (ty, _)) in sources.iter().enumerate() {
            if ready[2 + i] {
                debug!("source {ty} ready");
                d.source_ready(*ty, Instant::now());
            }
        }
        d.tick(Instant::now());
        if crate::transport::stall::abandoned() {
            // Replaced while stuck in a caller's memory: the replacement
            // event thread carries on.
            return Ok(Exit::Disconnected);
        }
    }
}
