//! KEVENT_POLL (docs/ABI.md §4): `id.raw[0]` is any pollable fd of the
//! caller; the kevent is ready when the fd's poll mask intersects `event`
//! (the KEVENT_POLL_* bits, same values as POLL*). `ret_data[0]` is the
//! requested bits that fired since the last delivery (extension, docs/ABI.md §5
//! item 4). POLL holds the caller's file while registered, as 2006 did —
//! except a file of this daemon's own device, which is never held.
//!
//! # Implementation notes
//! The daemon takes its own descriptor of the caller's file with
//! `pidfd_getfd` ([`crate::sys::pidfd`]) and keeps it until the kevent is
//! unregistered: that is the reference 2006 held with `fget`.
//!
//! * Files the kernel alone serves (pipes, sockets, eventfd, timerfd, ttys,
//!   procfs...) are watched on the request loop, in this source's epoll
//!   (edge-triggered: one notice per new activity, docs/ABI.md §4). ADD adds the
//!   file first — `epoll_ctl` refusing it (EPERM: the file has no poll
//!   method, e.g. a regular file on a disk filesystem) is the EINVAL of
//!   2006 — then checks readiness with `poll()`: ready means written back
//!   DONE and not registered, as 2006 checked readiness at enqueue time.
//!   MODIFY re-checks the same way.
//! * Files a FUSE or CUSE server answers for — this daemon's own
//!   /dev/kevent (another queue, or the same one), any FUSE file, another
//!   CUSE device, and epoll instances (which poll what they contain) — go
//!   to the [`offload`] thread, because polling them on the request loop
//!   would deadlock the daemon (docs/WIRE.md, "Ordering pitfalls"). A
//!   POLL kevent on another kevent fd therefore works like any other: the
//!   offload thread's epoll_ctl makes the kernel send this daemon a POLL
//!   request, which the request loop answers from the queue's ready list,
//!   and later POLL notifications wake the offload thread. Deviation: for
//!   these files ADD and MODIFY cannot see readiness synchronously (the
//!   answer needs the very loop that is serving the ADD), so ADD returns
//!   "queued" and an already-ready file is delivered as an event a moment
//!   later.
//! * A file of this daemon's own device (a POLL kevent on another kevent
//!   queue, or on its own) is not held at all: the offload thread keeps
//!   only an epoll item (offload module doc). So a queue polling itself, or
//!   two queues polling each other, go away with their last descriptors in
//!   their owners (2006 had a reference cycle there), and the daemon never
//!   holds a file whose close needs its own answer. The kevent then stops
//!   firing once the watched queue is closed everywhere (no BROKEN: the
//!   kernel drops the item silently). MODIFY of such a kevent looks the
//!   number up again in the MODIFY caller's table (ENODEV, BROKEN, when it
//!   no longer names a kevent queue).
//! * Only the requested bits count, as in 2006 (`revents & event`): POLLHUP
//!   or POLLERR fire only when asked for.

pub mod offload;

use super::{Notice, Outcome, Source, SourceCtx};
use crate::core::{Caller, Errno, RegId};
use crate::sys::epoll_drain::ready_now;
use crate::sys::pidfd::{examine, CallerThread, OwnDevice, Reach};
use kevent_protocol::kevent::Ukevent;
use offload::{Disposer, Offload, Report};
use rustix::event::{epoll, poll, PollFd, PollFlags};
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;
use tracing::debug;

/// The KEVENT_POLL_* bits epoll can watch (POLLNVAL and POLLREMOVE cannot
/// happen on a held file).
const WATCHABLE: u32 = 0x07df;

/// The epoll interest for a KEVENT_POLL mask (same bit values).
pub fn interest(event: u32) -> epoll::EventFlags {
    epoll::EventFlags::from_bits_truncate(event & WATCHABLE)
}

/// The requested bits among the poll bits a file reported.
pub fn fired(revents: u32, event: u32) -> u32 {
    revents & event & 0xffff
}

/// The file's current poll bits (for the requested `event`), 0 on error.
pub fn poll_now(fd: BorrowedFd<'_>, event: u32) -> u32 {
    let flags = PollFlags::from_bits_truncate((event & WATCHABLE) as u16);
    let mut fds = [PollFd::from_borrowed_fd(fd, flags)];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&zero)) {
        Ok(1) => u32::from(fds[0].revents().bits()),
        _ => 0,
    }
}

const TOKEN_REPORTS: u64 = u64::MAX;

enum Lane {
    /// Held here and in this source's epoll.
    Direct(OwnedFd),
    /// Watched by the offload thread: held, or with `item_only` (the
    /// daemon's own device) not even held (offload module doc).
    Offloaded { item_only: bool },
}

struct Watch {
    event: u32,
    /// Requested bits that fired since the last delivery (ret_data[0]).
    fired: u32,
    /// MODIFY found the file ready and said so: the one event epoll queued
    /// for that same state is an echo, not new activity.
    echo: bool,
    /// The caller's descriptor number (`id.raw[0]`).
    num: u32,
    lane: Lane,
}

/// The POLL source.
pub struct PollSource {
    epoll: OwnedFd,
    watches: HashMap<RegId, Watch>,
    own: OwnDevice,
    offload: Arc<Offload>,
}

impl PollSource {
    /// Creates the source and its epoll over the shared offload thread.
    /// `own` identifies the device this daemon serves.
    pub fn new(own: OwnDevice, offload: Arc<Offload>) -> std::io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &epoll,
            offload.ready_fd(),
            epoll::EventData::new_u64(TOKEN_REPORTS),
            epoll::EventFlags::IN,
        )?;
        Ok(PollSource {
            epoll,
            watches: HashMap::new(),
            own,
            offload,
        })
    }

    /// For the SOCKET source: closes files that must not be closed on the
    /// request loop.
    pub fn disposer(&self) -> Disposer {
        self.offload.disposer()
    }

    fn register_fd(&mut self, reg: RegId, uk: &Ukevent, caller: &Caller) -> Result<Outcome, Errno> {
        // The calling thread's own table (sys::pidfd, "The descriptor rule").
        let thread = CallerThread::open(caller.tid)?;
        let fd = thread.fetch(uk.id[0])?;
        // An O_PATH descriptor cannot be polled: EINVAL like any other fd
        // without a poll method (docs/ABI.md §4), not epoll_ctl's EBADF. Closing
        // it never reaches a filesystem, so it is dropped here.
        if rustix::fs::fcntl_getfl(&fd).is_ok_and(|f| f.contains(rustix::fs::OFlags::PATH)) {
            return Err(Errno::EINVAL);
        }
        let facts = match examine(&fd, &self.own, thread.tid()) {
            Ok(f) => f,
            Err(e) => {
                self.offload.disposer().dispose_as(caller.uid, fd);
                return Err(Errno::from_io(&e));
            }
        };
        if facts.reach == Reach::Userspace {
            debug!(
                "POLL {reg:?}: fd {} is served from userspace: offloaded",
                uk.id[0]
            );
            let item_only = facts.own;
            self.offload
                .add(reg, caller.uid, fd, interest(uk.event), item_only);
            self.insert(reg, uk, Lane::Offloaded { item_only });
            return Ok(Outcome::Queued);
        }
        let data = epoll::EventData::new_u64(reg.0);
        match epoll::add(
            &self.epoll,
            &fd,
            data,
            interest(uk.event) | epoll::EventFlags::ET,
        ) {
            Ok(()) => {}
            // No poll method (docs/ABI.md §4: "an fd that cannot be polled").
            Err(rustix::io::Errno::PERM) => return Err(Errno::EINVAL),
            Err(e) => return Err(e.into()),
        }
        let now = fired(poll_now(fd.as_fd(), uk.event), uk.event);
        if now != 0 {
            let _ = epoll::delete(&self.epoll, &fd);
            return Ok(Outcome::Ready([now, 0]));
        }
        self.insert(reg, uk, Lane::Direct(fd));
        Ok(Outcome::Queued)
    }

    fn insert(&mut self, reg: RegId, uk: &Ukevent, lane: Lane) {
        self.watches.insert(
            reg,
            Watch {
                event: uk.event,
                num: uk.id[0],
                fired: 0,
                echo: false,
                lane,
            },
        );
    }

    /// The caller's descriptor `num`, which must be this daemon's device.
    fn refetch_own(&self, num: u32, caller: &Caller) -> Result<OwnedFd, Errno> {
        let thread = CallerThread::open(caller.tid)?;
        let fd = thread.fetch(num)?;
        match examine(&fd, &self.own, thread.tid()) {
            Ok(f) if f.own => Ok(fd),
            other => {
                if other.map_or(true, |f| f.reach == Reach::Userspace) {
                    self.offload.disposer().dispose_as(caller.uid, fd);
                }
                Err(Errno::ENODEV)
            }
        }
    }

    fn notice(&mut self, reg: RegId, revents: u32, out: &mut Vec<Notice>) {
        if let Some(w) = self.watches.get_mut(&reg) {
            if std::mem::take(&mut w.echo) {
                return;
            }
            let bits = fired(revents, w.event);
            if bits != 0 {
                w.fired |= bits;
                out.push(Notice { reg, broken: false });
            }
        }
    }
}

/// The POLL row of [`super::TABLE`].
pub fn build(ctx: &SourceCtx) -> std::io::Result<Box<dyn Source>> {
    Ok(Box::new(PollSource::new(ctx.own, ctx.offload.clone())?))
}

impl Source for PollSource {
    fn name(&self) -> &'static str {
        "poll"
    }

    fn register(&mut self, reg: RegId, uk: &Ukevent, caller: &Caller) -> Outcome {
        self.register_fd(reg, uk, caller)
            .unwrap_or_else(Outcome::Failed)
    }

    fn modify(&mut self, reg: RegId, uk: &Ukevent, caller: &Caller) -> Outcome {
        let Some(w) = self.watches.get_mut(&reg) else {
            return Outcome::Queued;
        };
        w.event = uk.event;
        w.fired = 0;
        w.echo = false;
        match &w.lane {
            Lane::Direct(fd) => {
                let data = epoll::EventData::new_u64(reg.0);
                let flags = interest(uk.event) | epoll::EventFlags::ET;
                if let Err(e) = epoll::modify(&self.epoll, fd, data, flags) {
                    return Outcome::Failed(e.into());
                }
                let now = fired(poll_now(fd.as_fd(), uk.event), uk.event);
                if now != 0 {
                    // epoll_ctl(MOD) queued this state once more (or it was
                    // still queued): see `Watch::echo`.
                    w.fired = now;
                    w.echo = true;
                    return Outcome::Ready([now, 0]);
                }
                Outcome::Queued
            }
            Lane::Offloaded { item_only: false } => {
                self.offload.modify(reg, interest(uk.event));
                Outcome::Queued
            }
            Lane::Offloaded { item_only: true } => {
                // Nothing is held: the file is looked up again, in the
                // MODIFY caller's table, and must still be a queue of this
                // daemon.
                let num = w.num;
                match self.refetch_own(num, caller) {
                    Ok(fd) => {
                        self.offload
                            .add(reg, caller.uid, fd, interest(uk.event), true);
                        Outcome::Queued
                    }
                    Err(e) => Outcome::Failed(e),
                }
            }
        }
    }

    fn unregister(&mut self, reg: RegId) {
        match self.watches.remove(&reg).map(|w| w.lane) {
            Some(Lane::Direct(fd)) => {
                // The file may live on in the caller: take it out of the
                // epoll set explicitly before closing our descriptor.
                let _ = epoll::delete(&self.epoll, &fd);
            }
            Some(Lane::Offloaded { .. }) => self.offload.remove(reg),
            None => {}
        }
    }

    fn ret_data(&self, reg: RegId) -> [u32; 2] {
        self.watches.get(&reg).map_or([0, 0], |w| [w.fired, 0])
    }

    fn delivered(&mut self, reg: RegId) {
        if let Some(w) = self.watches.get_mut(&reg) {
            w.fired = 0;
        }
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.epoll.as_fd())
    }

    fn process(&mut self, _now: Instant, out: &mut Vec<Notice>) {
        for (data, flags) in ready_now(&self.epoll, "poll") {
            match data {
                TOKEN_REPORTS => {
                    for r in self.offload.drain() {
                        match r {
                            Report::Fired { reg, revents } => self.notice(reg, revents, out),
                            Report::Failed { reg, errno } => {
                                debug!("POLL {reg:?}: offloaded watch failed: {errno}");
                                if self.watches.contains_key(&reg) {
                                    out.push(Notice { reg, broken: true });
                                }
                            }
                        }
                    }
                }
                r => self.notice(RegId(r), flags.bits(), out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kevent_protocol::kevent::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn poll_bits_map_one_to_one_onto_epoll() {
        assert_eq!(interest(KEVENT_POLL_POLLIN), epoll::EventFlags::IN);
        assert_eq!(interest(KEVENT_POLL_POLLOUT), epoll::EventFlags::OUT);
        assert_eq!(interest(KEVENT_POLL_POLLPRI), epoll::EventFlags::PRI);
        assert_eq!(interest(KEVENT_POLL_POLLRDNORM), epoll::EventFlags::RDNORM);
        assert_eq!(interest(KEVENT_POLL_POLLWRBAND), epoll::EventFlags::WRBAND);
        assert_eq!(interest(KEVENT_POLL_POLLMSG), epoll::EventFlags::MSG);
        // NVAL and REMOVE cannot be watched; nothing else leaks in.
        assert!(interest(KEVENT_POLL_POLLNVAL | KEVENT_POLL_POLLREMOVE).is_empty());
        assert!(!interest(KEVENT_MASK_ALL).contains(epoll::EventFlags::ET));
        assert!(!interest(KEVENT_MASK_ALL).contains(epoll::EventFlags::ONESHOT));
    }

    #[test]
    fn only_requested_bits_fire() {
        let hup_in = KEVENT_POLL_POLLIN | KEVENT_POLL_POLLHUP;
        assert_eq!(fired(hup_in, KEVENT_POLL_POLLIN), KEVENT_POLL_POLLIN);
        assert_eq!(fired(KEVENT_POLL_POLLHUP, KEVENT_POLL_POLLIN), 0);
        assert_eq!(fired(hup_in, hup_in), hup_in);
        assert_eq!(fired(KEVENT_POLL_POLLOUT, KEVENT_POLL_POLLIN), 0);
    }

    #[test]
    fn a_pipe_is_ready_only_once_written() {
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        assert_eq!(poll_now(r.as_fd(), KEVENT_POLL_POLLIN), 0);
        rustix::io::write(&w, b"x").unwrap();
        assert_eq!(
            fired(poll_now(r.as_fd(), KEVENT_POLL_POLLIN), KEVENT_POLL_POLLIN),
            KEVENT_POLL_POLLIN
        );
    }

    fn me() -> Caller {
        Caller {
            tid: std::process::id(),
            ..Default::default()
        }
    }

    fn uk_poll(fd: &impl AsRawFd, event: u32) -> Ukevent {
        Ukevent {
            id: [fd.as_raw_fd() as u32, 0],
            type_: KEVENT_POLL,
            event,
            ..Default::default()
        }
    }

    /// Runs `process` until it reports something (the offload thread
    /// answers asynchronously), at most about a second.
    fn notices(s: &mut PollSource) -> Vec<Notice> {
        let mut out = Vec::new();
        for _ in 0..100 {
            s.process(Instant::now(), &mut out);
            if !out.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        out
    }

    #[test]
    fn a_pipe_fires_with_the_bits_that_fired_and_is_held() {
        let mut s =
            PollSource::new(Default::default(), Arc::new(Offload::start().unwrap())).unwrap();
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let uk = uk_poll(&r, KEVENT_POLL_POLLIN | KEVENT_POLL_POLLPRI);
        assert_eq!(s.register(RegId(1), &uk, &me()), Outcome::Queued);
        drop(r); // held by the registration
        assert_eq!(
            rustix::io::write(&w, b"x"),
            Ok(1),
            "the reader still exists"
        );
        assert_eq!(
            notices(&mut s),
            [Notice {
                reg: RegId(1),
                broken: false
            }]
        );
        assert_eq!(s.ret_data(RegId(1)), [KEVENT_POLL_POLLIN, 0]);
        s.delivered(RegId(1));
        assert_eq!(s.ret_data(RegId(1)), [0, 0]);
        s.unregister(RegId(1));
        assert_eq!(rustix::io::write(&w, b"x"), Err(rustix::io::Errno::PIPE));
    }

    #[test]
    fn a_regular_file_cannot_be_polled() {
        let mut s =
            PollSource::new(Default::default(), Arc::new(Offload::start().unwrap())).unwrap();
        let f = std::fs::File::open("/proc/self/exe").unwrap();
        let out = s.register(RegId(1), &uk_poll(&f, KEVENT_POLL_POLLIN), &me());
        assert_eq!(out, Outcome::Failed(Errno::EINVAL));
    }

    #[test]
    fn an_epoll_fd_is_watched_by_the_offload_thread() {
        let mut s =
            PollSource::new(Default::default(), Arc::new(Offload::start().unwrap())).unwrap();
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
        epoll::add(&ep, &r, epoll::EventData::new_u64(0), epoll::EventFlags::IN).unwrap();
        let uk = uk_poll(&ep, KEVENT_POLL_POLLIN);
        assert_eq!(s.register(RegId(2), &uk, &me()), Outcome::Queued);
        assert!(matches!(
            s.watches[&RegId(2)].lane,
            Lane::Offloaded { item_only: false }
        ));
        rustix::io::write(&w, b"x").unwrap();
        assert_eq!(
            notices(&mut s),
            [Notice {
                reg: RegId(2),
                broken: false
            }]
        );
        assert_eq!(s.ret_data(RegId(2)), [KEVENT_POLL_POLLIN, 0]);
        s.unregister(RegId(2));
    }

    #[test]
    fn an_invisible_caller_gets_eperm() {
        let mut s =
            PollSource::new(Default::default(), Arc::new(Offload::start().unwrap())).unwrap();
        let uk = Ukevent {
            type_: KEVENT_POLL,
            event: KEVENT_POLL_POLLIN,
            ..Default::default()
        };
        let caller = Caller::default();
        assert_eq!(
            s.register(RegId(1), &uk, &caller),
            Outcome::Failed(Errno::EPERM)
        );
    }
}
