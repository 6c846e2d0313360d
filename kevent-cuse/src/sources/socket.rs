//! KEVENT_SOCKET (docs/ABI.md §4, §5 item 1): `id.raw[0]` is a socket fd
//! of the caller; `event` is RECV (data to read, or the peer shut down),
//! ACCEPT (accept() would succeed; `ret_data[1]` = the accept queue length)
//! and/or SEND (writable). Watching must not keep the socket open.
//!
//! # Implementation notes
//! * **Lifetime.** ADD copies the caller's descriptor with `pidfd_getfd`
//!   ([`crate::sys::pidfd`]), adds it to a small epoll instance of its own
//!   (edge-triggered, interest from the event mask), nests that instance in
//!   this source's epoll, and closes the copy at once. epoll keeps no
//!   reference to the files it watches, so the caller's close() is the last
//!   one: the peer sees the FIN or RST as promptly as without the daemon,
//!   and the kernel drops the epoll item with the file.
//! * **Closed sockets.** Nothing reports that drop, so a sweep every
//!   [`SWEEP`] (driven by `next_deadline`) reads `/proc/self/fdinfo` of each
//!   nested instance: one without a `tfd:` line has lost its socket, and the
//!   kevent is delivered BROKEN|DONE (then unregistered by the core), well
//!   within a second. The sweep never touches the caller's sockets.
//! * **fd reuse.** Events come from the epoll item, i.e. from the socket
//!   file that was registered, never from whatever file later gets the same
//!   fd number; the old kevent ends as BROKEN|DONE when its socket goes.
//!   MODIFY, which must fetch the fd again, compares st_dev/st_ino with the
//!   registered socket and fails (BROKEN, ENODEV) on another file.
//! * **Readiness at ADD.** As 2006 ran its callback at enqueue time, ADD
//!   polls the socket once: ready means written back DONE and not
//!   registered (docs/ABI.md §3). So SEND on a writable socket, or RECV with data
//!   buffered or the peer gone, is ready at once. MODIFY re-checks the same
//!   way and rebuilds the nested instance with the new interest.
//! * **Event bits.** POLLIN is ACCEPT on a listening socket and RECV on any
//!   other; POLLRDHUP is RECV; POLLOUT is SEND; POLLERR/POLLHUP (RST,
//!   shutdown both ways) make every requested bit ready, since every
//!   operation would then return at once. "Listening" is sampled at ADD and
//!   MODIFY (FIONREAD fails with EINVAL only on a listener).
//! * **Accept queue.** Read at delivery from the caller's `/proc/PID/net`
//!   tables by inode ([`backlog`]), so it is the length when WAIT returns.
//! * **Visibility.** A caller outside the daemon's pid namespace (header
//!   pid 0) cannot be reached: its SOCKET kevents fail with EPERM. A fetched
//!   descriptor that is not a socket gives EINVAL; it may be this daemon's
//!   own device, so it is closed by the POLL source's offload thread.
//! * **Residual windows.** ADD and MODIFY hold the copy for the few
//!   microseconds of the call; if the caller's last close() races exactly
//!   with them, the socket is released at the daemon's close instead.

pub mod backlog;

use super::poll::offload::Disposer;
use super::poll::poll_now;
use super::{Notice, Outcome, Source, SourceCtx};
use crate::core::{Caller, Errno, RegId};
use crate::sys::epoll_drain::ready_now;
use crate::sys::pidfd::{
    examine, CallerProcess, CallerThread, FileKind, OwnDevice, ProcCache, Reach,
};
use backlog::Table;
use kevent_protocol::kevent::{
    Ukevent, KEVENT_SOCKET_ACCEPT, KEVENT_SOCKET_RECV, KEVENT_SOCKET_SEND,
};
use rustix::event::epoll::{self, EventFlags};
use std::cell::Cell;
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often closed sockets are looked for (BROKEN|DONE within a second).
pub const SWEEP: Duration = Duration::from_millis(400);

const IN: u32 = EventFlags::IN.bits();
const OUT: u32 = EventFlags::OUT.bits();
const ERR_HUP: u32 = EventFlags::ERR.bits() | EventFlags::HUP.bits();
const RDHUP: u32 = EventFlags::RDHUP.bits();
const ALL: u32 = KEVENT_SOCKET_RECV | KEVENT_SOCKET_ACCEPT | KEVENT_SOCKET_SEND;

/// The epoll interest for a SOCKET event mask.
pub fn interest(event: u32) -> EventFlags {
    let mut f = EventFlags::ET;
    if event & KEVENT_SOCKET_RECV != 0 {
        f |= EventFlags::IN | EventFlags::RDHUP;
    }
    if event & KEVENT_SOCKET_ACCEPT != 0 {
        f |= EventFlags::IN;
    }
    if event & KEVENT_SOCKET_SEND != 0 {
        f |= EventFlags::OUT;
    }
    f
}

/// The SOCKET bits a socket's poll bits stand for.
pub fn socket_bits(revents: u32, listening: bool) -> u32 {
    let mut b = 0;
    if revents & IN != 0 {
        b |= if listening {
            KEVENT_SOCKET_ACCEPT
        } else {
            KEVENT_SOCKET_RECV
        };
    }
    if revents & RDHUP != 0 {
        b |= KEVENT_SOCKET_RECV;
    }
    if revents & OUT != 0 {
        b |= KEVENT_SOCKET_SEND;
    }
    if revents & ERR_HUP != 0 {
        b |= ALL;
    }
    b
}

fn is_listening(fd: &OwnedFd) -> bool {
    matches!(
        rustix::io::ioctl_fionread(fd),
        Err(rustix::io::Errno::INVAL)
    )
}

struct Watch {
    process: Arc<CallerProcess>,
    /// The caller's fd number (`id.raw[0]`).
    fd: u32,
    dev: (u32, u32),
    ino: u64,
    event: u32,
    listening: bool,
    /// The nested epoll instance; `None` once the socket is gone.
    nest: Option<OwnedFd>,
    /// Where the accept queue was last found.
    table: Cell<Option<Table>>,
}

/// The SOCKET source.
pub struct SocketSource {
    epoll: OwnedFd,
    watches: HashMap<RegId, Watch>,
    procs: ProcCache,
    own: OwnDevice,
    disposer: Disposer,
    fdinfo: OwnedFd,
    /// Watches whose socket is still there (the sweep runs while any is).
    live: usize,
    next_sweep: Instant,
}

impl SocketSource {
    /// Creates the source. `own` identifies the device this daemon serves;
    /// `disposer` closes fetched files that may be that device.
    pub fn new(own: OwnDevice, disposer: Disposer) -> std::io::Result<Self> {
        Ok(SocketSource {
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            watches: HashMap::new(),
            procs: ProcCache::default(),
            own,
            disposer,
            fdinfo: open_fdinfo()?,
            live: 0,
            next_sweep: Instant::now(),
        })
    }

    /// Fetches the caller's socket: (descriptor, st_dev, st_ino).
    /// The descriptor is looked up in the table of `thread`, the caller of
    /// the ADD or MODIFY being served (sys::pidfd, "The descriptor rule").
    fn fetch(
        &self,
        thread: &CallerThread,
        uid: u32,
        fd: u32,
    ) -> Result<(OwnedFd, (u32, u32), u64), Errno> {
        let file = thread.fetch(fd)?;
        match examine(&file, &self.own, thread.tid()) {
            Ok(f) if f.kind == FileKind::Socket => Ok((file, f.dev, f.ino)),
            Ok(f) => {
                if f.reach == Reach::Userspace {
                    self.disposer.dispose_as(uid, file);
                }
                Err(Errno::EINVAL)
            }
            Err(e) => {
                self.disposer.dispose_as(uid, file);
                Err(Errno::from_io(&e))
            }
        }
    }

    /// A nested epoll instance watching `sock` for `event`.
    fn nest(&self, reg: RegId, sock: &OwnedFd, event: u32) -> Result<OwnedFd, Errno> {
        let nest = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &nest,
            sock,
            epoll::EventData::new_u64(reg.0),
            interest(event),
        )?;
        epoll::add(
            &self.epoll,
            &nest,
            epoll::EventData::new_u64(reg.0),
            EventFlags::IN,
        )?;
        Ok(nest)
    }

    fn accept_queue(&self, w: &Watch) -> Option<u32> {
        let hint = w.table.get();
        for t in hint.into_iter().chain(Table::ALL) {
            if let Some(n) = w
                .process
                .read_proc(t.path())
                .and_then(|text| t.backlog(&text, w.ino))
            {
                w.table.set(Some(t));
                return Some(n);
            }
        }
        None
    }

    fn register_socket(
        &mut self,
        reg: RegId,
        uk: &Ukevent,
        caller: &Caller,
    ) -> Result<Outcome, Errno> {
        let thread = CallerThread::open(caller.tid)?;
        let (sock, dev, ino) = self.fetch(&thread, caller.uid, uk.id[0])?;
        // The registrant's process, for its network namespace's
        // /proc/PID/net tables (the accept queue length) only.
        let process = self.procs.get(caller.tid)?;
        let mut w = Watch {
            process,
            fd: uk.id[0],
            dev,
            ino,
            event: uk.event,
            listening: is_listening(&sock),
            nest: None,
            table: Cell::new(None),
        };
        let ready = socket_bits(poll_now(sock.as_fd(), 0xffff), w.listening) & uk.event;
        if ready != 0 {
            return Ok(Outcome::Ready(self.ret_data_of(&w, ready)));
        }
        w.nest = Some(self.nest(reg, &sock, uk.event)?);
        self.watches.insert(reg, w);
        self.live += 1;
        Ok(Outcome::Queued)
    }

    fn ret_data_of(&self, w: &Watch, bits: u32) -> [u32; 2] {
        if bits & KEVENT_SOCKET_ACCEPT != 0 {
            [0, self.accept_queue(w).unwrap_or(1)]
        } else {
            [0, 0]
        }
    }

    /// Takes the new activity of `reg` from its nested instance.
    fn take(&mut self, reg: RegId, out: &mut Vec<Notice>) {
        let Some(w) = self.watches.get(&reg) else {
            return;
        };
        let Some(nest) = &w.nest else {
            return;
        };
        let revents = drain_nest(nest);
        if socket_bits(revents, w.listening) & w.event != 0 {
            out.push(Notice { reg, broken: false });
        }
    }

    /// BROKEN for every watch whose socket was closed (see the module doc).
    fn sweep(&mut self, out: &mut Vec<Notice>) {
        for (reg, w) in self.watches.iter_mut() {
            let Some(nest) = &w.nest else {
                continue;
            };
            if !nest_has_target(self.fdinfo.as_fd(), nest.as_fd()) {
                tracing::debug!("SOCKET {reg:?}: fd {} was closed", w.fd);
                w.nest = None;
                self.live -= 1;
                out.push(Notice {
                    reg: *reg,
                    broken: true,
                });
            }
        }
    }
}

/// The poll bits a nested instance reported since the last call.
fn drain_nest(nest: &OwnedFd) -> u32 {
    let mut events = Vec::with_capacity(1);
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let buf = rustix::buffer::spare_capacity(&mut events);
    match epoll::wait(nest, buf, Some(&zero)) {
        Ok(_) => events.iter().fold(0, |a, e| a | { e.flags }.bits()),
        Err(_) => 0,
    }
}

/// The daemon's `/proc/self/fdinfo` directory.
pub fn open_fdinfo() -> std::io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(rustix::fs::open("/proc/self/fdinfo", flags, Mode::empty())?)
}

/// Whether an epoll instance still watches a file (`tfd:` in its fdinfo,
/// read through `fdinfo`, the daemon's `/proc/self/fdinfo`). Unknown counts
/// as yes: a failed read must not break a kevent.
pub fn nest_has_target(fdinfo: BorrowedFd<'_>, nest: BorrowedFd<'_>) -> bool {
    use rustix::fs::{Mode, OFlags};
    let name = nest.as_raw_fd().to_string();
    let Ok(f) = rustix::fs::openat(
        fdinfo,
        name,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return true;
    };
    // "pos:", "flags:", "mnt_id:", "ino:", then one "tfd:" line per target.
    let mut buf = [0u8; 1024];
    match rustix::io::read(&f, &mut buf) {
        Ok(n) => buf[..n].windows(4).any(|w| w == b"tfd:"),
        Err(_) => true,
    }
}

/// The SOCKET row of [`super::TABLE`].
pub fn build(ctx: &SourceCtx) -> std::io::Result<Box<dyn Source>> {
    Ok(Box::new(SocketSource::new(
        ctx.own,
        ctx.offload.disposer(),
    )?))
}

impl Source for SocketSource {
    fn name(&self) -> &'static str {
        "socket"
    }

    fn register(&mut self, reg: RegId, uk: &Ukevent, caller: &Caller) -> Outcome {
        if self.live == 0 {
            self.next_sweep = Instant::now() + SWEEP;
        }
        self.register_socket(reg, uk, caller)
            .unwrap_or_else(Outcome::Failed)
    }

    fn modify(&mut self, reg: RegId, uk: &Ukevent, caller: &Caller) -> Outcome {
        let Some(w) = self.watches.get(&reg) else {
            return Outcome::Queued;
        };
        if w.nest.is_none() {
            // Its socket is gone; the BROKEN delivery is on its way.
            return Outcome::Queued;
        }
        // Resolved in the MODIFY caller's table, never the registrant's.
        let fetched = CallerThread::open(caller.tid).and_then(|t| self.fetch(&t, caller.uid, w.fd));
        let (sock, dev, ino) = match fetched {
            Ok(s) => s,
            Err(e) => return Outcome::Failed(e),
        };
        if (dev, ino) != (w.dev, w.ino) {
            // The fd number now names another socket.
            return Outcome::Failed(Errno::ENODEV);
        }
        let listening = is_listening(&sock);
        let nest = match self.nest(reg, &sock, uk.event) {
            Ok(n) => n,
            Err(e) => return Outcome::Failed(e),
        };
        let ready = socket_bits(poll_now(sock.as_fd(), 0xffff), listening) & uk.event;
        drop(sock);
        if ready != 0 {
            // The new instance reports the current state once; that is
            // this very readiness, delivered through `Ready`: consume it.
            let _ = drain_nest(&nest);
        }
        let w = self.watches.get_mut(&reg).expect("looked up above");
        w.event = uk.event;
        w.listening = listening;
        // Dropping the old instance takes it out of this source's epoll.
        w.nest = Some(nest);
        if ready != 0 {
            let w = &self.watches[&reg];
            return Outcome::Ready(self.ret_data_of(w, ready));
        }
        Outcome::Queued
    }

    fn unregister(&mut self, reg: RegId) {
        if self.watches.remove(&reg).is_some_and(|w| w.nest.is_some()) {
            self.live -= 1;
        }
    }

    fn ret_data(&self, reg: RegId) -> [u32; 2] {
        match self.watches.get(&reg) {
            Some(w) if w.nest.is_some() => self.ret_data_of(w, w.event),
            _ => [0, 0],
        }
    }

    fn delivered(&mut self, _reg: RegId) {}

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.epoll.as_fd())
    }

    fn process(&mut self, now: Instant, out: &mut Vec<Notice>) {
        for (data, _) in ready_now(&self.epoll, "socket") {
            self.take(RegId(data), out);
        }
        if now >= self.next_sweep {
            self.sweep(out);
            self.next_sweep = now + SWEEP;
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        (self.live > 0).then_some(self.next_sweep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kevent_protocol::kevent::KEVENT_SOCKET;
    use std::os::unix::net::UnixStream;

    #[test]
    fn interest_follows_the_event_mask() {
        assert_eq!(
            interest(KEVENT_SOCKET_RECV),
            EventFlags::ET | EventFlags::IN | EventFlags::RDHUP
        );
        assert_eq!(
            interest(KEVENT_SOCKET_ACCEPT),
            EventFlags::ET | EventFlags::IN
        );
        assert_eq!(
            interest(KEVENT_SOCKET_SEND),
            EventFlags::ET | EventFlags::OUT
        );
        assert_eq!(interest(0), EventFlags::ET);
    }

    #[test]
    fn pollin_is_accept_on_a_listener_and_recv_elsewhere() {
        assert_eq!(socket_bits(IN, true), KEVENT_SOCKET_ACCEPT);
        assert_eq!(socket_bits(IN, false), KEVENT_SOCKET_RECV);
        assert_eq!(socket_bits(OUT, false), KEVENT_SOCKET_SEND);
        assert_eq!(
            socket_bits(IN | OUT, false),
            KEVENT_SOCKET_RECV | KEVENT_SOCKET_SEND
        );
    }

    #[test]
    fn peer_shutdown_is_recv_and_errors_ready_everything() {
        assert_eq!(socket_bits(RDHUP, false), KEVENT_SOCKET_RECV);
        assert_eq!(socket_bits(EventFlags::ERR.bits(), false), ALL);
        assert_eq!(socket_bits(EventFlags::HUP.bits(), true), ALL);
        assert_eq!(socket_bits(0, false), 0);
    }

    #[test]
    fn a_nested_instance_loses_its_target_when_the_socket_closes() {
        let (a, b) = UnixStream::pair().unwrap();
        let nest = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
        let copy = rustix::io::dup(&a).unwrap();
        epoll::add(
            &nest,
            &copy,
            epoll::EventData::new_u64(1),
            interest(KEVENT_SOCKET_RECV),
        )
        .unwrap();
        drop(copy);
        let fdinfo = open_fdinfo().unwrap();
        assert!(
            nest_has_target(fdinfo.as_fd(), nest.as_fd()),
            "watched while a is open"
        );
        drop(a);
        assert!(
            !nest_has_target(fdinfo.as_fd(), nest.as_fd()),
            "gone with the last close"
        );
        drop(b);
    }

    #[test]
    fn watching_keeps_nothing_open_and_the_sweep_finds_the_close() {
        use std::io::{Read, Write};
        let offload = super::super::poll::offload::Offload::start().unwrap();
        let mut s = SocketSource::new(Default::default(), offload.disposer()).unwrap();
        // This test process is the caller.
        let me = Caller {
            tid: std::process::id(),
            ..Default::default()
        };
        let (a, mut b) = UnixStream::pair().unwrap();
        let uk = Ukevent {
            id: [a.as_raw_fd() as u32, 0],
            type_: KEVENT_SOCKET,
            event: KEVENT_SOCKET_RECV,
            ..Default::default()
        };
        assert_eq!(s.register(RegId(7), &uk, &me), Outcome::Queued);
        assert!(s.next_deadline().is_some(), "a live watch is swept");
        let mut out = Vec::new();
        b.write_all(b"x").unwrap();
        s.process(Instant::now(), &mut out);
        assert_eq!(
            out,
            [Notice {
                reg: RegId(7),
                broken: false
            }]
        );

        // The caller's close is the last one: the peer sees EOF at once.
        drop(a);
        b.set_nonblocking(true).unwrap();
        // (ECONNRESET rather than EOF: `a` had unread data.)
        let closed = b.read(&mut [0u8; 4]);
        assert!(
            matches!(&closed, Ok(0))
                || closed.unwrap_err().raw_os_error() == Some(libc::ECONNRESET)
        );
        out.clear();
        s.process(Instant::now() + SWEEP, &mut out);
        assert_eq!(
            out,
            [Notice {
                reg: RegId(7),
                broken: true
            }]
        );
        assert_eq!(s.next_deadline(), None, "nothing left to sweep");
        s.unregister(RegId(7));
        assert!(s.watches.is_empty());
    }

    #[test]
    fn an_invisible_caller_gets_eperm() {
        let offload = super::super::poll::offload::Offload::start().unwrap();
        let mut s = SocketSource::new(Default::default(), offload.disposer()).unwrap();
        let uk = Ukevent {
            type_: KEVENT_SOCKET,
            event: KEVENT_SOCKET_RECV,
            ..Default::default()
        };
        let out = s.register(RegId(1), &uk, &Caller::default());
        assert_eq!(out, Outcome::Failed(Errno::EPERM));
        assert_eq!(s.next_deadline(), None, "nothing to sweep");
    }
}
