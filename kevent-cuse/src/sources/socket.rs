//! KEVENT_SOCKET (docs/ABI.md §4, §5 item 1): `id.raw[0]` is a socket fd
//! of the caller; `event` is RECV (data to read, or the peer shut down),
//! ACCEPT (accept() would succeed; `ret_data[1]` = the accept queue length)
//! and/or SEND (writable). Watching must not keep the socket open.
//!
//! # Implementation notes
//! * **One epoll set for all sockets.** ADD copies the caller's descriptor
//!   with `pidfd_getfd` ([`crate::sys::pidfd`]) and puts the socket into
//!   this source's one epoll set (edge-triggered, interest: the union of
//!   the masks of the kevents on that socket, data: the socket's inode
//!   number), then closes the copy at once. epoll keeps no reference to
//!   the files it watches, so the caller's close() is the last one: the
//!   peer sees the FIN or RST as promptly as without the daemon, and the
//!   kernel drops the epoll item with the file. Kevents of several queues
//!   on one socket share its epoll item.
//! * **One key for every epoll item.** epoll names an item by (file, fd
//!   number). Every item is added, modified and deleted through one
//!   reserved descriptor number: the copy is `dup3`'d onto it for the call
//!   and the placeholder put back after. So a socket has at most one item
//!   here whatever fd numbers the copies got, and an item left behind (its
//!   last kevent went while the caller's descriptor could not be fetched)
//!   is found again (EEXIST -> MOD) when the socket is watched again; it
//!   disappears with the socket.
//! * **Closed sockets.** The epoll item vanishes silently with the file, so
//!   each watched socket also has an inotify watch on its inode (added
//!   through the copy's `/proc/self/fd/N` magic link, which resolves in
//!   memory). The release of a socket file produces `IN_CLOSE_WRITE`
//!   (or `_NOWRITE`) on that inode, and only its last close releases it:
//!   the kevents of a socket whose file is gone are delivered BROKEN|DONE
//!   (then unregistered by the core) as soon as the event thread reads the
//!   record. Nothing runs while nothing closes: no sweep. Only if the
//!   inotify queue overflows (more than `fs.inotify.max_queued_events`
//!   closes at once) is the epoll set's fdinfo read once to find which
//!   sockets are gone. Each watched socket costs one inotify watch
//!   (`fs.inotify.max_user_watches`, per user: root); sockets added once
//!   none is left are found closed by a sweep of that fdinfo every
//!   [`SWEEP`], which runs only while such sockets are watched.
//! * **fd reuse.** Events come from the epoll item, i.e. from the socket
//!   file that was registered, never from whatever file later gets the same
//!   fd number; the old kevent ends as BROKEN|DONE when its socket goes.
//!   MODIFY, which must fetch the fd again, compares st_ino with the
//!   registered socket and fails (BROKEN, ENODEV) on another file.
//! * **Readiness at ADD.** As 2006 ran its callback at enqueue time, ADD
//!   polls the socket once: ready means written back DONE and not
//!   registered (docs/ABI.md §3). So SEND on a writable socket, or RECV with data
//!   buffered or the peer gone, is ready at once. MODIFY re-checks the same
//!   way and widens the epoll interest when the new mask needs it (never a
//!   new epoll set); a readiness MODIFY reports itself is not reported a
//!   second time by the item the widening re-queued.
//! * **Event bits.** POLLIN is ACCEPT on a listening socket and RECV on any
//!   other; POLLRDHUP is RECV; POLLOUT is SEND; POLLERR/POLLHUP (RST,
//!   shutdown both ways) make every requested bit ready, since every
//!   operation would then return at once. "Listening" is sampled at ADD and
//!   MODIFY (FIONREAD fails with EINVAL only on a listener).
//! * **Accept queue.** Read from the caller's `/proc/PID/net` tables by
//!   inode ([`backlog`]) on the event thread when the listener reports a
//!   new connection, and kept: a WAIT delivers the length as of the latest
//!   connection. Only an ADD or MODIFY that finds connections already
//!   waiting reads the table on the request path.
//! * **Visibility.** A caller outside the daemon's pid namespace (header
//!   pid 0) cannot be reached: its SOCKET kevents fail with EPERM. A fetched
//!   descriptor that is not a socket gives EINVAL; it may be this daemon's
//!   own device, so it is closed by the POLL source's offload thread.
//! * **Residual windows.** ADD and MODIFY hold the copy for the few
//!   microseconds of the call; if the caller's last close() races exactly
//!   with them, the socket is released at the daemon's close instead, which
//!   the inotify watch (added before) reports.

pub mod backlog;

use super::poll::offload::Disposer;
use super::poll::poll_now;
use super::{Notice, Outcome, Source, SourceCtx};
use crate::core::{Caller, Errno, RegId};
use crate::sys::epoll_drain::ready_now;
use crate::sys::inotify::{parse_events, Inotify, IN_IGNORED, IN_Q_OVERFLOW};
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
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often sockets without an inotify watch are checked for a close.
pub const SWEEP: Duration = Duration::from_millis(400);

const IN: u32 = EventFlags::IN.bits();
const OUT: u32 = EventFlags::OUT.bits();
const ERR_HUP: u32 = EventFlags::ERR.bits() | EventFlags::HUP.bits();
const RDHUP: u32 = EventFlags::RDHUP.bits();
const ALL: u32 = KEVENT_SOCKET_RECV | KEVENT_SOCKET_ACCEPT | KEVENT_SOCKET_SEND;
/// The epoll data of the inotify instance inside the shared set.
const TOKEN_CLOSES: u64 = u64::MAX;
/// inotify bits that mean "the socket file was released".
const IN_CLOSE: u32 = libc::IN_CLOSE_WRITE | libc::IN_CLOSE_NOWRITE;

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

/// One kevent.
struct Watch {
    process: Arc<CallerProcess>,
    /// The caller's fd number (`id.raw[0]`).
    fd: u32,
    /// The registrant's uid (whose offload worker closes odd files).
    uid: u32,
    /// The socket's inode number (key of [`SocketSource::sockets`]).
    ino: u64,
    event: u32,
    /// The next report of the epoll item is the readiness MODIFY already
    /// returned: skip it once.
    skip_once: bool,
}

/// One watched socket file (shared by the kevents on it).
struct Sock {
    regs: Vec<RegId>,
    /// inotify watch descriptor of its inode; `None` when the inotify
    /// watch limit was reached (then the fallback sweep looks after it).
    wd: Option<i32>,
    /// The epoll interest currently set (the union of the kevents' masks
    /// when it was last set).
    interest: EventFlags,
    listening: bool,
    /// Accept queue length as of the latest connection.
    backlog: Cell<u32>,
    /// A process holding it, for the accept queue's /proc table.
    process: Arc<CallerProcess>,
    table: Cell<Option<Table>>,
}

/// The SOCKET source.
pub struct SocketSource {
    epoll: OwnedFd,
    closes: Inotify,
    /// The reserved descriptor number every epoll item is keyed by, and
    /// what it holds between calls.
    slot: OwnedFd,
    placeholder: OwnedFd,
    watches: HashMap<RegId, Watch>,
    /// By inode number.
    sockets: HashMap<u64, Sock>,
    wds: HashMap<i32, u64>,
    /// Sockets without an inotify watch, and when they are next checked.
    unguarded: usize,
    next_sweep: Instant,
    procs: ProcCache,
    /// The process of the current ioctl: (request, tid, process). Weak:
    /// only watches keep a caller's pidfd open.
    last: Option<(u64, u32, Weak<CallerProcess>)>,
    own: OwnDevice,
    disposer: Disposer,
}

impl SocketSource {
    /// Creates the source. `own` identifies the device this daemon serves;
    /// `disposer` closes fetched files that may be that device.
    pub fn new(own: OwnDevice, disposer: Disposer) -> std::io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let closes = Inotify::new()?;
        epoll::add(
            &epoll,
            &closes,
            epoll::EventData::new_u64(TOKEN_CLOSES),
            EventFlags::IN,
        )?;
        let placeholder = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC)?;
        let slot = rustix::io::fcntl_dupfd_cloexec(&placeholder, 0)?;
        Ok(SocketSource {
            epoll,
            closes,
            slot,
            placeholder,
            watches: HashMap::new(),
            sockets: HashMap::new(),
            wds: HashMap::new(),
            unguarded: 0,
            next_sweep: Instant::now(),
            procs: ProcCache::default(),
            last: None,
            own,
            disposer,
        })
    }

    /// The caller's process, looked up once per ioctl: the ukevents of one
    /// request come from one blocked thread, which cannot change process
    /// meanwhile.
    fn process_of(&mut self, caller: &Caller) -> Result<Arc<CallerProcess>, Errno> {
        if let Some((req, tid, p)) = &self.last {
            if caller.request != 0 && *req == caller.request && *tid == caller.tid {
                if let Some(p) = p.upgrade() {
                    return Ok(p);
                }
            }
        }
        let p = self.procs.get(caller.tid)?;
        self.last = Some((caller.request, caller.tid, Arc::downgrade(&p)));
        Ok(p)
    }

    /// Fetches the caller's socket: (descriptor, st_ino). The descriptor
    /// is looked up in the table of `thread`, the caller of the ADD or
    /// MODIFY being served (sys::pidfd, "The descriptor rule").
    fn fetch(&self, thread: &CallerThread, uid: u32, fd: u32) -> Result<(OwnedFd, u64), Errno> {
        let file = thread.fetch(fd)?;
        self.check_socket(file, thread.tid(), uid)
    }

    /// `file` if it is a socket, with its st_ino; anything else is closed
    /// (by the offload worker of `uid` when a userspace server may answer).
    fn check_socket(&self, file: OwnedFd, tid: u32, uid: u32) -> Result<(OwnedFd, u64), Errno> {
        match examine(&file, &self.own, tid) {
            Ok(f) if f.kind == FileKind::Socket => Ok((file, f.ino)),
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

    /// epoll_ctl on the shared set for `sock`, through the reserved slot.
    fn ctl(&mut self, sock: &OwnedFd, op: Ctl, ino: u64, flags: EventFlags) -> Result<(), Errno> {
        rustix::io::dup3(sock, &mut self.slot, rustix::io::DupFlags::CLOEXEC)?;
        let data = epoll::EventData::new_u64(ino);
        let r = match op {
            Ctl::Add => match epoll::add(&self.epoll, &self.slot, data, flags) {
                Err(rustix::io::Errno::EXIST) => {
                    epoll::modify(&self.epoll, &self.slot, data, flags)
                }
                r => r,
            },
            Ctl::Modify => match epoll::modify(&self.epoll, &self.slot, data, flags) {
                Err(rustix::io::Errno::NOENT) => epoll::add(&self.epoll, &self.slot, data, flags),
                r => r,
            },
            Ctl::Delete => epoll::delete(&self.epoll, &self.slot),
        };
        // Put the placeholder back: the slot never keeps a caller's file.
        if let Err(e) = rustix::io::dup3(
            &self.placeholder,
            &mut self.slot,
            rustix::io::DupFlags::CLOEXEC,
        ) {
            tracing::error!("socket slot restore: {e}");
        }
        Ok(r?)
    }

    fn accept_queue(s: &Sock, ino: u64) -> Option<u32> {
        let hint = s.table.get();
        for t in hint.into_iter().chain(Table::ALL) {
            if let Some(n) = s
                .process
                .read_proc(t.path())
                .and_then(|text| t.backlog(&text, ino))
            {
                s.table.set(Some(t));
                return Some(n);
            }
        }
        None
    }

    /// Starts watching the socket file `sock` (inode `ino`) if it is not
    /// yet, with at least the interest of `event`.
    fn watch_socket(
        &mut self,
        sock: &OwnedFd,
        ino: u64,
        event: u32,
        listening: bool,
        process: &Arc<CallerProcess>,
    ) -> Result<bool, Errno> {
        if let Some(s) = self.sockets.get(&ino) {
            let want = s.interest | interest(event);
            if want == s.interest && s.listening == listening {
                return Ok(false);
            }
            self.ctl(sock, Ctl::Modify, ino, want)?;
            let s = self.sockets.get_mut(&ino).expect("looked up above");
            s.interest = want;
            s.listening = listening;
            return Ok(true);
        }
        let path = format!("/proc/self/fd/{}", sock.as_raw_fd());
        let wd = match self.closes.add_watch(&path, IN_CLOSE) {
            Ok(wd) => Some(wd),
            Err(rustix::io::Errno::NOSPC) => {
                if self.unguarded == 0 {
                    tracing::warn!(
                        "SOCKET: fs.inotify.max_user_watches reached: closes of further \
                         sockets are found by a sweep every {} ms",
                        SWEEP.as_millis()
                    );
                    self.next_sweep = Instant::now() + SWEEP;
                }
                None
            }
            Err(e) => return Err(e.into()),
        };
        let flags = interest(event);
        if let Err(e) = self.ctl(sock, Ctl::Add, ino, flags) {
            if let Some(wd) = wd {
                let _ = self.closes.remove_watch(wd);
            }
            return Err(e);
        }
        match wd {
            Some(wd) => {
                self.wds.insert(wd, ino);
            }
            None => self.unguarded += 1,
        }
        self.sockets.insert(
            ino,
            Sock {
                regs: Vec::new(),
                wd,
                interest: flags,
                listening,
                backlog: Cell::new(0),
                process: process.clone(),
                table: Cell::new(None),
            },
        );
        Ok(false)
    }

    fn register_socket(
        &mut self,
        reg: RegId,
        uk: &Ukevent,
        caller: &Caller,
    ) -> Result<Outcome, Errno> {
        let thread = CallerThread::open(caller.tid)?;
        let (sock, ino) = self.fetch(&thread, caller.uid, uk.id[0])?;
        // The registrant's process: for its network namespace's
        // /proc/PID/net tables (the accept queue) and to find the socket
        // again when its last kevent goes.
        let process = self.process_of(caller)?;
        let listening = is_listening(&sock);
        let ready = socket_bits(poll_now(sock.as_fd(), 0xffff), listening) & uk.event;
        if ready != 0 {
            return Ok(Outcome::Ready(self.ready_data(&process, ino, ready)));
        }
        self.watch_socket(&sock, ino, uk.event, listening, &process)?;
        self.sockets
            .get_mut(&ino)
            .expect("watched above")
            .regs
            .push(reg);
        self.watches.insert(
            reg,
            Watch {
                process,
                fd: uk.id[0],
                uid: caller.uid,
                ino,
                event: uk.event,
                skip_once: false,
            },
        );
        // The copy closes here, after the inotify watch is in place.
        drop(sock);
        Ok(Outcome::Queued)
    }

    /// ret_data of a readiness found on the request path (ADD, MODIFY).
    fn ready_data(&self, process: &Arc<CallerProcess>, ino: u64, bits: u32) -> [u32; 2] {
        if bits & KEVENT_SOCKET_ACCEPT == 0 {
            return [0, 0];
        }
        let probe = Sock {
            regs: Vec::new(),
            wd: None,
            interest: EventFlags::empty(),
            listening: true,
            backlog: Cell::new(0),
            process: process.clone(),
            table: Cell::new(self.sockets.get(&ino).and_then(|s| s.table.get())),
        };
        [0, Self::accept_queue(&probe, ino).unwrap_or(1)]
    }

    /// Drops a socket's inotify watch (or its place in the sweep).
    fn forget_wd(&mut self, wd: Option<i32>) {
        match wd {
            Some(wd) => {
                self.wds.remove(&wd);
                let _ = self.closes.remove_watch(wd);
            }
            None => self.unguarded -= 1,
        }
    }

    /// The fallback for sockets without an inotify watch: those whose epoll
    /// item is gone were closed.
    fn sweep_unguarded(&mut self, out: &mut Vec<Notice>) {
        let Some(live) = epoll_targets(self.epoll.as_fd()) else {
            return;
        };
        let gone: Vec<u64> = self
            .sockets
            .iter()
            .filter(|(ino, s)| s.wd.is_none() && !live.contains(ino))
            .map(|(ino, _)| *ino)
            .collect();
        for ino in gone {
            self.closed(ino, out);
        }
    }

    /// Every kevent of a released socket: BROKEN.
    fn closed(&mut self, ino: u64, out: &mut Vec<Notice>) {
        let Some(s) = self.sockets.remove(&ino) else {
            return;
        };
        self.forget_wd(s.wd);
        for reg in s.regs {
            tracing::debug!("SOCKET {reg:?}: its socket was closed");
            out.push(Notice { reg, broken: true });
        }
    }

    /// Reads the close records.
    fn read_closes(&mut self, out: &mut Vec<Notice>) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match self.closes.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("socket inotify read: {e}");
                    return;
                }
            };
            for ev in parse_events(&buf[..n]) {
                if ev.mask & IN_Q_OVERFLOW != 0 {
                    self.recover_overflow(out);
                } else if ev.mask & (IN_CLOSE | IN_IGNORED) != 0 {
                    if let Some(ino) = self.wds.get(&ev.wd).copied() {
                        self.closed(ino, out);
                    }
                }
            }
        }
    }

    /// Close records were lost: every socket without an epoll item in the
    /// shared set is gone.
    fn recover_overflow(&mut self, out: &mut Vec<Notice>) {
        tracing::warn!("socket close records overflowed: checking every watched socket");
        let Some(live) = epoll_targets(self.epoll.as_fd()) else {
            return;
        };
        let gone: Vec<u64> = self
            .sockets
            .keys()
            .filter(|ino| !live.contains(ino))
            .copied()
            .collect();
        for ino in gone {
            self.closed(ino, out);
        }
    }

    /// The readiness `revents` of socket `ino`: notices for its kevents.
    fn ready(&mut self, ino: u64, revents: u32, out: &mut Vec<Notice>) {
        let Some(s) = self.sockets.get(&ino) else {
            return;
        };
        let bits = socket_bits(revents, s.listening);
        let mut any_accept = false;
        for reg in &s.regs {
            let Some(w) = self.watches.get_mut(reg) else {
                continue;
            };
            if std::mem::take(&mut w.skip_once) {
                continue;
            }
            if bits & w.event != 0 {
                any_accept |= bits & w.event & KEVENT_SOCKET_ACCEPT != 0;
                out.push(Notice {
                    reg: *reg,
                    broken: false,
                });
            }
        }
        if any_accept {
            // The event thread, not the request path, reads the table.
            s.backlog.set(Self::accept_queue(s, ino).unwrap_or(1));
        }
    }
}

#[derive(Clone, Copy)]
enum Ctl {
    Add,
    Modify,
    Delete,
}

/// The data (inode numbers) of every item of an epoll set, from its
/// fdinfo (`tfd: N events: E data: D pos: ...`); `None` if unreadable.
fn epoll_targets(ep: BorrowedFd<'_>) -> Option<std::collections::HashSet<u64>> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", ep.as_raw_fd())).ok()?;
    Some(
        text.lines()
            .filter(|l| l.starts_with("tfd:"))
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                it.find(|w| *w == "data:")?;
                u64::from_str_radix(it.next()?, 16).ok()
            })
            .filter(|d| *d != TOKEN_CLOSES)
            .collect(),
    )
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
        self.register_socket(reg, uk, caller)
            .unwrap_or_else(Outcome::Failed)
    }

    fn modify(&mut self, reg: RegId, uk: &Ukevent, caller: &Caller) -> Outcome {
        let Some(w) = self.watches.get(&reg) else {
            return Outcome::Queued;
        };
        let (process, fd, ino) = (w.process.clone(), w.fd, w.ino);
        if !self.sockets.contains_key(&ino) {
            // Its socket is gone; the BROKEN delivery is on its way.
            return Outcome::Queued;
        }
        // Resolved in the MODIFY caller's table, never the registrant's.
        let fetched = CallerThread::open(caller.tid).and_then(|t| self.fetch(&t, caller.uid, fd));
        let (sock, now_ino) = match fetched {
            Ok(s) => s,
            Err(e) => return Outcome::Failed(e),
        };
        if now_ino != ino {
            // The fd number now names another socket.
            return Outcome::Failed(Errno::ENODEV);
        }
        let listening = is_listening(&sock);
        let requeued = match self.watch_socket(&sock, ino, uk.event, listening, &process) {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(e),
        };
        let ready = socket_bits(poll_now(sock.as_fd(), 0xffff), listening) & uk.event;
        drop(sock);
        let w = self.watches.get_mut(&reg).expect("looked up above");
        w.event = uk.event;
        w.skip_once = ready != 0 && requeued;
        if ready != 0 {
            return Outcome::Ready(self.ready_data(&process, ino, ready));
        }
        Outcome::Queued
    }

    fn unregister(&mut self, reg: RegId) {
        let Some(w) = self.watches.remove(&reg) else {
            return;
        };
        let Some(s) = self.sockets.get_mut(&w.ino) else {
            return;
        };
        s.regs.retain(|r| *r != reg);
        if !s.regs.is_empty() {
            return;
        }
        // The last kevent on this socket: take its item out of the set if
        // the caller still has the socket at that number; otherwise the
        // item stays until the socket goes (or is watched again).
        // (Only to delete the item: the registrant's table, and nothing
        // but the same socket is used.)
        let again = w
            .process
            .fetch(w.fd)
            .and_then(|f| self.check_socket(f, w.process.tgid(), w.uid));
        if let Ok((sock, ino)) = again {
            if ino == w.ino
                && self
                    .ctl(&sock, Ctl::Delete, ino, EventFlags::empty())
                    .is_ok()
            {
                let s = self.sockets.remove(&ino).expect("looked up above");
                self.forget_wd(s.wd);
            }
        }
    }

    fn ret_data(&self, reg: RegId) -> [u32; 2] {
        let Some(w) = self.watches.get(&reg) else {
            return [0, 0];
        };
        match self.sockets.get(&w.ino) {
            Some(s) if w.event & KEVENT_SOCKET_ACCEPT != 0 && s.listening => [0, s.backlog.get()],
            _ => [0, 0],
        }
    }

    fn delivered(&mut self, _reg: RegId) {}

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.epoll.as_fd())
    }

    fn next_deadline(&self) -> Option<Instant> {
        (self.unguarded > 0).then_some(self.next_sweep)
    }

    fn process(&mut self, now: Instant, out: &mut Vec<Notice>) {
        if self.unguarded > 0 && now >= self.next_sweep {
            self.sweep_unguarded(out);
            self.next_sweep = now + SWEEP;
        }
        for (data, flags) in ready_now(&self.epoll, "socket") {
            if data == TOKEN_CLOSES {
                self.read_closes(out);
            } else {
                self.ready(data, flags.bits(), out);
            }
        }
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

    fn me() -> Caller {
        Caller {
            tid: std::process::id(),
            ..Default::default()
        }
    }

    fn recv(fd: i32, user: u32) -> Ukevent {
        Ukevent {
            id: [fd as u32, 0],
            type_: KEVENT_SOCKET,
            event: KEVENT_SOCKET_RECV,
            user: [user, 0],
            ..Default::default()
        }
    }

    fn source() -> SocketSource {
        let offload = super::super::poll::offload::Offload::start().unwrap();
        SocketSource::new(Default::default(), offload.disposer()).unwrap()
    }

    /// Processes until `want` notices arrived or 5 s passed (0.3 s when
    /// none is wanted).
    fn collect(s: &mut SocketSource, want: usize) -> Vec<Notice> {
        let mut out = Vec::new();
        let t0 = Instant::now();
        let limit = if want == 0 { 300 } else { 5000 };
        while (want == 0 || out.len() < want) && t0.elapsed().as_millis() < limit {
            let mut fds = [rustix::event::PollFd::new(
                &s.epoll,
                rustix::event::PollFlags::IN,
            )];
            let _ = rustix::event::poll(
                &mut fds,
                Some(&rustix::time::Timespec {
                    tv_sec: 0,
                    tv_nsec: 50_000_000,
                }),
            );
            s.process(Instant::now(), &mut out);
        }
        out
    }

    #[test]
    fn watching_keeps_nothing_open_and_the_close_is_reported() {
        use std::io::{Read, Write};
        let mut s = source();
        let (a, mut b) = UnixStream::pair().unwrap();
        assert_eq!(
            s.register(RegId(7), &recv(a.as_raw_fd(), 1), &me()),
            Outcome::Queued
        );
        b.write_all(b"x").unwrap();
        assert_eq!(
            collect(&mut s, 1),
            [Notice {
                reg: RegId(7),
                broken: false
            }]
        );

        // The caller's close is the last one: the peer sees it at once.
        drop(a);
        b.set_nonblocking(true).unwrap();
        // (ECONNRESET rather than EOF: `a` had unread data.)
        let closed = b.read(&mut [0u8; 4]);
        assert!(
            matches!(&closed, Ok(0))
                || closed.unwrap_err().raw_os_error() == Some(libc::ECONNRESET)
        );
        assert_eq!(
            collect(&mut s, 1),
            [Notice {
                reg: RegId(7),
                broken: true
            }]
        );
        assert!(s.sockets.is_empty() && s.wds.is_empty());
        s.unregister(RegId(7));
        assert!(s.watches.is_empty());
    }

    #[test]
    fn kevents_on_one_socket_share_one_item_and_only_its_close_breaks_them() {
        let mut s = source();
        let (a, b) = UnixStream::pair().unwrap();
        let (c, _d) = UnixStream::pair().unwrap();
        let a2 = a.try_clone().unwrap();
        assert_eq!(
            s.register(RegId(1), &recv(a.as_raw_fd(), 1), &me()),
            Outcome::Queued
        );
        assert_eq!(
            s.register(RegId(2), &recv(a2.as_raw_fd(), 2), &me()),
            Outcome::Queued
        );
        assert_eq!(
            s.register(RegId(3), &recv(c.as_raw_fd(), 3), &me()),
            Outcome::Queued
        );
        assert_eq!(s.sockets.len(), 2);
        assert_eq!(epoll_targets(s.epoll.as_fd()).unwrap().len(), 2);
        // One of two descriptors closed: the file lives on.
        drop(a);
        assert!(collect(&mut s, 0).is_empty());
        drop(a2);
        let mut got = collect(&mut s, 2);
        got.sort_by_key(|n| n.reg);
        assert_eq!(
            got,
            [
                Notice {
                    reg: RegId(1),
                    broken: true
                },
                Notice {
                    reg: RegId(2),
                    broken: true
                }
            ]
        );
        // REMOVE of the last kevent takes the item out of the set.
        s.unregister(RegId(3));
        assert!(s.sockets.is_empty());
        assert_eq!(epoll_targets(s.epoll.as_fd()).unwrap().len(), 0);
        drop(b);
    }

    #[test]
    fn a_socket_without_an_inotify_watch_is_found_by_the_sweep() {
        let mut s = source();
        let (a, _b) = UnixStream::pair().unwrap();
        s.register(RegId(1), &recv(a.as_raw_fd(), 1), &me());
        // As if the inotify watch limit had been reached for it.
        let sock = s.sockets.values_mut().next().unwrap();
        let wd = sock.wd.take().unwrap();
        s.wds.remove(&wd);
        s.closes.remove_watch(wd).unwrap();
        s.unguarded += 1;
        assert!(s.next_deadline().is_some());
        drop(a);
        let mut out = Vec::new();
        s.process(Instant::now() + SWEEP, &mut out);
        assert_eq!(
            out,
            [Notice {
                reg: RegId(1),
                broken: true
            }]
        );
        assert_eq!(s.next_deadline(), None, "nothing left to sweep");
    }

    #[test]
    fn overflow_recovery_finds_the_closed_sockets() {
        let mut s = source();
        let (a, _b) = UnixStream::pair().unwrap();
        let (c, _d) = UnixStream::pair().unwrap();
        s.register(RegId(1), &recv(a.as_raw_fd(), 1), &me());
        s.register(RegId(2), &recv(c.as_raw_fd(), 2), &me());
        drop(a);
        // Pretend the close record was lost.
        let mut out = Vec::new();
        s.recover_overflow(&mut out);
        assert_eq!(
            out,
            [Notice {
                reg: RegId(1),
                broken: true
            }]
        );
        assert_eq!(s.sockets.len(), 1);
    }

    #[test]
    fn an_invisible_caller_gets_eperm() {
        let mut s = source();
        let out = s.register(RegId(1), &recv(0, 0), &Caller::default());
        assert_eq!(out, Outcome::Failed(Errno::EPERM));
        assert!(s.sockets.is_empty());
    }
}
