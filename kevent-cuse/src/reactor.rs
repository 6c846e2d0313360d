//! The one loop: a single epoll over the channel, the signalfd and each
//! source's fd. Nothing in it blocks except epoll_wait itself; sleeping
//! WAITs are parked requests with deadlines, so the epoll timeout is the
//! nearest deadline.

use crate::transport::dispatch::Dispatcher;
use crate::transport::{Channel, READ_BUFFER};
use rustix::event::epoll;
use rustix::time::Timespec;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;
use tracing::{debug, info};

const TOKEN_CHANNEL: u64 = 1;
const TOKEN_SIGNAL: u64 = 2;
/// Source fds use `TOKEN_SOURCE + event type`.
const TOKEN_SOURCE: u64 = 100;

/// Requests handled before the loop looks at its other fds again, so a
/// flood of requests cannot starve timers.
const BATCH: usize = 64;

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM, SIGINT or SIGHUP.
    Signal,
    /// The kernel closed the connection (unmounted, aborted) or sent DESTROY.
    Disconnected,
}

/// Runs until a signal or disconnection.
pub fn run(
    channel: &Channel,
    signals: BorrowedFd<'_>,
    d: &mut Dispatcher,
) -> std::io::Result<Exit> {
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    epoll::add(
        &ep,
        channel,
        epoll::EventData::new_u64(TOKEN_CHANNEL),
        epoll::EventFlags::IN,
    )?;
    epoll::add(
        &ep,
        signals,
        epoll::EventData::new_u64(TOKEN_SIGNAL),
        epoll::EventFlags::IN,
    )?;
    for (ty, fd) in d.core().source_fds() {
        epoll::add(
            &ep,
            fd,
            epoll::EventData::new_u64(TOKEN_SOURCE + ty as u64),
            epoll::EventFlags::IN,
        )?;
    }
    let mut buf = vec![0u8; READ_BUFFER];
    let mut events = Vec::with_capacity(16);
    loop {
        let timeout = d.next_deadline().map(|dl| {
            let left = dl.saturating_duration_since(Instant::now());
            Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            }
        });
        events.clear();
        match epoll::wait(
            &ep,
            rustix::buffer::spare_capacity(&mut events),
            timeout.as_ref(),
        ) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        for ev in &events {
            match ev.data.u64() {
                TOKEN_CHANNEL => {
                    for _ in 0..BATCH {
                        match channel.read_request(&mut buf) {
                            Ok(Some(n)) => d.handle(&buf[..n], Instant::now()),
                            Ok(None) => break,
                            Err(e) => {
                                info!("channel closed: {e}");
                                return Ok(Exit::Disconnected);
                            }
                        }
                        if d.destroyed() {
                            return Ok(Exit::Disconnected);
                        }
                    }
                }
                TOKEN_SIGNAL => {
                    let mut si = [0u8; 128];
                    let _ = rustix::io::read(signals.as_fd(), &mut si);
                    let signo = u32::from_ne_bytes(si[0..4].try_into().expect("4 bytes"));
                    info!("signal {signo}: shutting down");
                    return Ok(Exit::Signal);
                }
                t if t >= TOKEN_SOURCE => {
                    debug!("source {} ready", t - TOKEN_SOURCE);
                    d.source_ready((t - TOKEN_SOURCE) as u32, Instant::now())
                }
                _ => {}
            }
        }
        d.tick(Instant::now());
    }
}
