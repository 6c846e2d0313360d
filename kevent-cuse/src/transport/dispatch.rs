//! Requests to the core and back (docs/ABI.md §2-3, docs/WIRE.md), shared
//! by every serving thread; the ABI's rules themselves live in
//! [`crate::core`].
//!
//! One [`Dispatcher`] is shared by all serving threads and the event
//! thread. Its state (the core, parked WAITs, pollers) sits behind one
//! mutex that is held only for bookkeeping: never across a read or write of
//! a caller's memory, never across a reply. A WAIT that must sleep is
//! parked with its [`Reply`] and answered later, when enough events are
//! ready, its timeout passes, an INTERRUPT for it arrives (a signal to the
//! caller), or the daemon shuts down. Parking costs no thread.
//!
//! Each reply is one write into the caller (the ukevents and `hdr.num` as
//! one contiguous range) and one message to the kernel. An ADD whose
//! write-back fails is rolled back; a WAIT whose write-back fails puts its
//! events back at the front of the ready list.

use super::ioctl::{retry_for, retry_for_header, ArgMem};
use super::reply::{Reply, Sink};
use super::stall::Watchdog;
use super::TransportKind;
use crate::core::{Caller, Core, Ctl, CtlOutput, Errno, QueueId, Taken, WaitPlan};
use crate::sys::remote_mem::{CallerMemory, MemError};
use kevent_protocol::fuse::{self, ioctl_flags, opcode, InHeader, IoctlIn, Request};
use kevent_protocol::kevent::*;
use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};
use std::collections::{BTreeSet, HashMap};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tracing::{debug, info, warn};

pub use super::reply::ReplySink;
pub use crate::core::MAX_BATCH;

/// Fixed settings of a dispatcher.
#[derive(Debug, Clone)]
pub struct Config {
    /// CUSE (unrestricted ioctls, RETRY possible) or the FUSE file.
    pub transport: TransportKind,
    /// Per-queue limit (docs/ABI.md §2; 1023 by default).
    pub max_kevents: u32,
    /// Permission bits of the FUSE file (GETATTR).
    pub file_mode: u32,
    /// Who may open the node (checked at OPEN; owner and group for GETATTR).
    pub access: super::access::Access,
    /// A caller-memory access older than this is abandoned (`--stall-ms`).
    pub stall: std::time::Duration,
    /// Stuck accesses allowed per uid before EAGAIN (`--max-stalled`).
    pub max_stalled: usize,
}

/// `POLLIN | POLLRDNORM`: the kevent fd is readable while events are ready.
const POLL_READABLE: u32 = (libc::POLLIN | libc::POLLRDNORM) as u32;

/// INTERRUPTs that found no parked WAIT are remembered this long: with
/// several serving threads one may arrive before its WAIT is parked.
const EARLY_INTERRUPT_TTL: std::time::Duration = std::time::Duration::from_secs(5);

struct ParkedWait {
    reply: Reply,
    uid: u32,
    queue: QueueId,
    arg: ArgMem,
    hdr: KeventUserControl,
    plan: WaitPlan,
    deadline: Instant,
}

/// A WAIT being answered: its events are taken off the ready list; the
/// write into the caller and the reply happen outside the lock.
struct Completion {
    reply: Reply,
    uid: u32,
    queue: QueueId,
    arg: ArgMem,
    hdr: KeventUserControl,
    taken: Taken,
}

/// What the state lock hands out to do after it is released.
#[derive(Default)]
struct Work {
    completions: Vec<Completion>,
    notify: Vec<Vec<u8>>,
}

struct State {
    core: Core,
    parked: Vec<ParkedWait>,
    pollers: HashMap<QueueId, BTreeSet<u64>>,
    /// INTERRUPTs that came before their WAIT was parked.
    early_interrupts: HashMap<u64, Instant>,
    /// The deadline the event thread sleeps towards (None: no timeout).
    armed: Option<Instant>,
}

/// The daemon's request handling, shared by threads.
pub struct Dispatcher {
    cfg: Config,
    mem: Box<dyn CallerMemory + Send + Sync>,
    /// Where poll notifications go (any fd of the connection).
    notify: Sink,
    state: Mutex<State>,
    destroyed: AtomicBool,
    /// The RETRY fallback was used (logged once at info level).
    used_retry: AtomicBool,
    /// Written to wake the event thread when its timeout must shrink.
    kick: OwnedFd,
    /// Copies of the sources' fds (same open files), by event type.
    sources: Vec<(u32, OwnedFd)>,
    /// Abandons serving threads stuck in a caller's memory.
    watchdog: Arc<Watchdog>,
}

/// Caller memory behind the stall watchdog: every access is announced
/// (and refused with [`MemError::Busy`] for a uid at its stuck cap).
struct Guarded<'a> {
    mem: &'a dyn CallerMemory,
    wd: &'a Watchdog,
    uid: u32,
}

impl CallerMemory for Guarded<'_> {
    fn read(&self, tid: u32, addr: u64, len: usize) -> Result<Vec<u8>, MemError> {
        let _a = self.wd.enter(self.uid).map_err(|_| MemError::Busy)?;
        self.mem.read(tid, addr, len)
    }
    fn write(&self, tid: u32, addr: u64, data: &[u8]) -> Result<(), MemError> {
        let _a = self.wd.enter(self.uid).map_err(|_| MemError::Busy)?;
        self.mem.write(tid, addr, data)
    }
}

impl State {
    fn queue_nonblock(&self, q: QueueId) -> bool {
        self.core.queue(q).is_some_and(|x| x.nonblock)
    }

    /// Takes the events for `pw` now.
    fn complete(&mut self, pw: ParkedWait) -> Completion {
        let taken = self.core.take_ready(pw.queue, pw.plan.num as usize);
        Completion {
            reply: pw.reply,
            uid: pw.uid,
            queue: pw.queue,
            arg: pw.arg,
            hdr: pw.hdr,
            taken,
        }
    }

    /// Queues whose ready list grew: pollers to notify, parked WAITs to
    /// answer (FIFO among the WAITs parked on one queue).
    fn after_ready(&mut self, queues: &[QueueId], work: &mut Work) {
        for &q in queues {
            if let Some(khs) = self.pollers.get(&q) {
                work.notify
                    .extend(khs.iter().map(|&kh| fuse::encode_notify_poll(kh)));
            }
            while let Some(i) = self.parked.iter().position(|p| p.queue == q) {
                if self.core.ready_len(q) < self.parked[i].plan.min as usize {
                    break;
                }
                let pw = self.parked.remove(i);
                work.completions.push(self.complete(pw));
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let waits = self.parked.iter().map(|p| p.deadline).min();
        match (waits, self.core.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True when the event thread sleeps past the current deadline.
    fn needs_kick(&self) -> bool {
        match (self.next_deadline(), self.armed) {
            (Some(d), Some(a)) => d < a,
            (Some(_), None) => true,
            _ => false,
        }
    }
}

impl Dispatcher {
    /// A dispatcher over `core`; poll notifications go to `notify`.
    pub fn new(
        cfg: Config,
        core: Core,
        mem: Box<dyn CallerMemory + Send + Sync>,
        notify: Sink,
    ) -> std::io::Result<Self> {
        let kick = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        let sources = core
            .source_fds()
            .into_iter()
            .map(|(ty, fd)| Ok((ty, fd.try_clone_to_owned()?)))
            .collect::<std::io::Result<_>>()?;
        Ok(Dispatcher {
            mem,
            notify,
            state: Mutex::new(State {
                core,
                parked: Vec::new(),
                pollers: HashMap::new(),
                early_interrupts: HashMap::new(),
                armed: None,
            }),
            destroyed: AtomicBool::new(false),
            used_retry: AtomicBool::new(false),
            kick,
            sources,
            watchdog: Watchdog::new(cfg.stall, cfg.max_stalled),
            cfg,
        })
    }

    /// The status picture (`kevent-cuse --status`): the core's snapshot
    /// with the parked WAITs per queue, taken under the state lock.
    pub fn snapshot(&self) -> crate::core::CoreSnapshot {
        let st = self.lock();
        let mut s = st.core.snapshot();
        for q in &mut s.queues {
            q.parked = st.parked.iter().filter(|p| p.queue == q.id).count();
        }
        s
    }

    /// The stall watchdog (the daemon starts its thread).
    pub fn watchdog(&self) -> &Arc<Watchdog> {
        &self.watchdog
    }

    fn mem(&self, uid: u32) -> Guarded<'_> {
        Guarded {
            mem: self.mem.as_ref(),
            wd: &self.watchdog,
            uid,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic under the lock leaves consistent bookkeeping (no lock is
        // held across anything that can fail halfway): keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the core (start-up, status, tests).
    pub fn with_core<R>(&self, f: impl FnOnce(&mut Core) -> R) -> R {
        f(&mut self.lock().core)
    }

    /// The fd the event thread polls to learn that its timeout changed.
    pub fn kick_fd(&self) -> BorrowedFd<'_> {
        self.kick.as_fd()
    }

    /// The sources' fds by event type (the event thread polls them).
    pub fn source_fds(&self) -> impl Iterator<Item = (u32, BorrowedFd<'_>)> {
        self.sources.iter().map(|(ty, fd)| (*ty, fd.as_fd()))
    }

    /// Processes whatever the sources have pending right now, so that a
    /// WAIT or POLL sees every event that happened before it was sent (the
    /// 2006 kernel queued events synchronously). Never blocks: poll() with
    /// a zero timeout, then the sources' non-blocking reads.
    fn settle(&self, now: Instant) {
        let mut fds: Vec<PollFd<'_>> = self
            .sources
            .iter()
            .map(|(_, fd)| PollFd::new(fd, PollFlags::IN))
            .collect();
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        if !matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0) {
            return;
        }
        let ready: Vec<u32> = fds
            .iter()
            .zip(&self.sources)
            .filter(|(f, _)| !f.revents().is_empty())
            .map(|(_, (ty, _))| *ty)
            .collect();
        drop(fds);
        for ty in ready {
            self.source_ready(ty, now);
        }
    }

    /// Empties the kick eventfd (the event thread, after waking).
    pub fn drain_kick(&self) {
        let mut b = [0u8; 8];
        let _ = rustix::io::read(&self.kick, &mut b);
    }

    /// Wakes the event thread.
    pub fn kick(&self) {
        let _ = rustix::io::write(&self.kick, &1u64.to_ne_bytes());
    }

    /// True once the kernel sent DESTROY or a reader saw the connection go.
    pub fn destroyed(&self) -> bool {
        self.destroyed.load(Ordering::Acquire)
    }

    /// A serving thread saw the connection end: the event thread stops.
    pub fn disconnected(&self) {
        self.destroyed.store(true, Ordering::Release);
        self.kick();
    }

    /// Number of parked WAITs.
    pub fn parked_count(&self) -> usize {
        self.lock().parked.len()
    }

    /// The earliest time something must happen without fd activity; the
    /// event thread sleeps until then (a later, earlier deadline kicks it).
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut st = self.lock();
        let d = st.next_deadline();
        st.armed = d;
        d
    }

    /// True for a request that is answered without touching the caller's
    /// memory beyond the header the kernel itself just read, and without
    /// resolving a path or a caller's descriptor (nothing that can wait on
    /// another filesystem or re-enter the daemon's own mount): the `uring`
    /// mode serves these on the ring thread itself. A WAIT qualifies while
    /// its queue has nothing ready (it then answers at once with 0 or
    /// parks); ADD, MODIFY and REMOVE read the caller's array, RELEASE
    /// closes what a queue held: those go to a worker thread.
    pub fn answers_inline(&self, buf: &[u8]) -> bool {
        let Ok(msg) = fuse::decode(buf) else {
            return true; // answered EIO at once
        };
        match msg.request {
            Request::Ioctl(io) => {
                let wait = match io.cmd {
                    KEVENT_USER_WAIT => true,
                    KEVENT_USER_CTL => {
                        KeventUserControl::decode(io.data).is_some_and(|h| h.cmd == KEVENT_CTL_WAIT)
                    }
                    _ => return true, // ENODEV
                };
                wait && !io.data.is_empty() && self.lock().core.ready_len(io.fh) == 0
            }
            Request::Release { .. } | Request::Interrupt { .. } | Request::Forget => false,
            _ => true,
        }
    }

    /// Handles one request as read from the channel; replies go to `sink`
    /// (the fd that read it).
    pub fn handle(&self, buf: &[u8], sink: &Sink, now: Instant) {
        let msg = match fuse::decode(buf) {
            Ok(m) => m,
            Err(e) => {
                warn!("undecodable request: {e}");
                if let Some(u) = buf.get(8..16) {
                    let unique = u64::from_ne_bytes(u.try_into().expect("8 bytes"));
                    Reply::new(unique, sink.clone()).error(Errno::EIO);
                }
                return;
            }
        };
        debug!("{msg}");
        let h = msg.header;
        let reply = Reply::new(h.unique, sink.clone());
        match msg.request {
            Request::Init { .. } | Request::CuseInit { .. } => {
                warn!("second INIT ignored");
                reply.error(Errno::EIO);
            }
            Request::Open { .. } if self.watchdog.admit(h.uid).is_err() => {
                reply.error(Errno::EAGAIN)
            }
            Request::Open { flags } => {
                let nonblock = flags & libc::O_NONBLOCK as u32 != 0;
                let owner = crate::core::Owner {
                    pid: h.pid,
                    uid: h.uid,
                };
                let opened = self
                    .cfg
                    .access
                    .check_open(h.pid, h.uid, h.gid, flags)
                    .and_then(|()| self.lock().core.open_for(nonblock, owner));
                let q = match opened {
                    Ok(q) => q,
                    Err(e) => return reply.error(e),
                };
                debug!("queue {q} opened (nonblock={nonblock})");
                let body = fuse::encode_open_out(q, fuse::FOPEN_DIRECT_IO | fuse::FOPEN_STREAM);
                reply.ok(&body);
            }
            Request::Release { fh } => {
                self.release(fh);
                reply.ok(&[]);
            }
            Request::Flush { .. } => reply.ok(&[]),
            Request::Getattr => match self.cfg.transport {
                TransportKind::FuseFile => {
                    let secs = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let mode = libc::S_IFREG | (self.cfg.file_mode & 0o7777);
                    let (uid, gid) = self.cfg.access.attrs().map_or((0, 0), |a| (a.uid, a.gid));
                    reply.ok(&fuse::encode_attr_out(1, mode, uid, gid, secs));
                }
                _ => reply.error(Errno::ENOSYS),
            },
            Request::Interrupt { unique: target } => {
                reply.none();
                self.interrupt(target, now);
            }
            Request::Ioctl(io) => self.ioctl(reply, &h, &io, now),
            Request::Poll { fh, kh, flags, .. } => {
                self.settle(now);
                let revents = {
                    let mut st = self.lock();
                    if flags & fuse::FUSE_POLL_SCHEDULE_NOTIFY != 0 && st.core.queue(fh).is_some() {
                        st.pollers.entry(fh).or_default().insert(kh);
                    }
                    if st.core.ready_len(fh) > 0 {
                        POLL_READABLE
                    } else {
                        0
                    }
                };
                reply.ok(&fuse::encode_poll_out(revents));
            }
            Request::Destroy => {
                reply.ok(&[]);
                self.disconnected();
            }
            Request::Forget => reply.none(),
            Request::Other(op) => {
                let e = match op {
                    // The 2006 device had no read or write.
                    opcode::FUSE_READ | opcode::FUSE_WRITE => Errno::EINVAL,
                    // The FUSE mount is a single file: nothing to look up.
                    opcode::FUSE_LOOKUP => Errno::ENOENT,
                    opcode::FUSE_SETATTR => Errno::EPERM,
                    // ENOSYS here only disables that operation (fsync,
                    // xattrs, statfs, access...), with no other effect.
                    _ => Errno::ENOSYS,
                };
                reply.error(e);
            }
        }
    }

    fn retry(&self, reply: Reply, ins_outs: (Vec<fuse::IoctlIovec>, Vec<fuse::IoctlIovec>)) {
        let (ins, outs) = ins_outs;
        debug!("u={} RETRY in={ins:?} out={outs:?}", reply.unique());
        reply.ok(&fuse::encode_ioctl_retry(&ins, &outs));
    }

    /// The caller's memory is out of reach: gather it with RETRY when the
    /// transport allows, otherwise refuse.
    fn unreachable(
        &self,
        reply: Reply,
        can_retry: bool,
        retry: (Vec<fuse::IoctlIovec>, Vec<fuse::IoctlIovec>),
    ) {
        if can_retry {
            if !self.used_retry.swap(true, Ordering::Relaxed) {
                info!(
                    "u={}: caller memory out of reach; using the CUSE RETRY exchange (logged once)",
                    reply.unique()
                );
            }
            self.retry(reply, retry);
        } else {
            warn!(
                "u={}: the caller's memory is out of the daemon's reach",
                reply.unique()
            );
            reply.error(Errno::EPERM);
        }
    }

    fn ioctl(&self, reply: Reply, h: &InHeader, io: &IoctlIn<'_>, now: Instant) {
        let wait_ioctl = match io.cmd {
            KEVENT_USER_CTL => false,
            KEVENT_USER_WAIT => true,
            // docs/ABI.md §2: "Any other ioctl number: -1/ENODEV".
            _ => return reply.error(Errno::ENODEV),
        };
        if self.lock().core.queue(io.fh).is_none() {
            return reply.error(Errno::EBADF);
        }
        let unrestricted = io.flags & ioctl_flags::FUSE_IOCTL_UNRESTRICTED != 0;
        let can_retry = unrestricted && self.cfg.transport == TransportKind::Cuse;

        // The header: the kernel's copy (restricted ioctl, or a RETRY leg),
        // else the caller's memory.
        let hdr_bytes = if !io.data.is_empty() {
            io.data.to_vec()
        } else {
            match self.mem(h.uid).read(h.pid, io.arg, KeventUserControl::SIZE) {
                Ok(b) => b,
                Err(MemError::Fault) => return reply.error(Errno::EINVAL),
                Err(MemError::Busy) => return reply.error(Errno::EAGAIN),
                Err(MemError::Denied) => {
                    return self.unreachable(reply, can_retry, retry_for_header(io.arg))
                }
            }
        };
        let Some(hdr) = KeventUserControl::decode(&hdr_bytes) else {
            return reply.error(Errno::EINVAL);
        };
        let ctl = match (wait_ioctl, hdr.cmd) {
            (true, _) | (false, KEVENT_CTL_WAIT) => Ctl::Wait,
            (false, KEVENT_CTL_ADD) => Ctl::Add,
            (false, KEVENT_CTL_REMOVE) => Ctl::Remove,
            (false, KEVENT_CTL_MODIFY) => Ctl::Modify,
            // INIT through the ioctl and anything else (docs/ABI.md §2, §5.3).
            _ => return reply.error(Errno::EINVAL),
        };
        if let Err(e) = self.lock().core.precheck(io.fh, ctl, hdr.num) {
            return reply.error(e);
        }
        let num = hdr.num as u64;
        let array = num * Ukevent::SIZE as u64;
        let hsize = KeventUserControl::SIZE as u64;
        let (in_len, out_len) = match ctl {
            Ctl::Wait => (
                hsize,
                hsize + num.min(self.cfg.max_kevents as u64) * Ukevent::SIZE as u64,
            ),
            _ => (hsize + array, hsize + array),
        };
        let arg = if unrestricted && !io.data.is_empty() {
            if io.in_size as u64 == in_len && io.out_size as u64 == out_len {
                ArgMem::gathered(io.arg, io.data, out_len as usize)
            } else {
                return self.retry(reply, retry_for(io.arg, in_len, out_len));
            }
        } else if !unrestricted && io.out_size as usize == KeventUserControl::SIZE {
            ArgMem::remote(h.pid, io.arg).with_header_in_reply()
        } else {
            ArgMem::remote(h.pid, io.arg)
        };
        let full_retry = retry_for(io.arg, in_len, out_len);
        if !arg.is_gathered() && h.pid == 0 {
            // The caller is not visible in the daemon's pid namespace.
            return self.unreachable(reply, can_retry, full_retry);
        }
        if ctl == Ctl::Wait {
            return self.wait(reply, h.uid, io.fh, arg, hdr, now);
        }
        if self.watchdog.admit(h.uid).is_err() {
            return reply.error(Errno::EAGAIN);
        }
        let body = match arg.read(&self.mem(h.uid), KeventUserControl::SIZE, array as usize) {
            Ok(b) => b,
            Err(MemError::Fault) => return reply.error(Errno::EINVAL),
            Err(MemError::Busy) => return reply.error(Errno::EAGAIN),
            Err(MemError::Denied) => return self.unreachable(reply, can_retry, full_retry),
        };
        let input = Ukevent::decode_array(&body, num as usize).expect("read num*40 bytes");
        let caller = Caller {
            tid: h.pid,
            uid: h.uid,
            gid: h.gid,
            request: h.unique,
        };
        let mut work = Work::default();
        let (out, kick) = {
            let mut st = self.lock();
            let out = match ctl {
                Ctl::Add => st.core.add(io.fh, &input, &caller),
                Ctl::Remove => st.core.remove(io.fh, &input),
                Ctl::Modify => {
                    let (out, woke) = st.core.modify(io.fh, &input, &caller);
                    if woke {
                        st.after_ready(&[io.fh], &mut work);
                    }
                    out
                }
                Ctl::Wait => unreachable!("handled above"),
            };
            (out, st.needs_kick())
        };
        if kick {
            self.kick();
        }
        debug!(
            "u={} {} num={num} -> {:?} ({} written back)",
            reply.unique(),
            ctl_name(hdr.cmd),
            out.result,
            out.events.len()
        );
        self.finish_ctl(reply, h.uid, arg, hdr, out, out_len as usize);
        self.run(work);
    }

    fn finish_ctl(
        &self,
        reply: Reply,
        uid: u32,
        mut arg: ArgMem,
        hdr: KeventUserControl,
        out: CtlOutput,
        out_len: usize,
    ) {
        let header = out.num.map(|n| (n, hdr.timeout));
        if let Err(e) = arg.write_back(&self.mem(uid), header, &out.events) {
            // Nothing reached the caller: an ADD is undone (a REMOVE or
            // MODIFY has taken effect; the caller gets EINVAL all the same).
            warn!("u={}: write-back failed: {e}", reply.unique());
            if !out.added.is_empty() {
                self.lock().core.rollback_add(&out.added);
            }
            return reply.error(match e {
                MemError::Busy => Errno::EAGAIN,
                _ => Errno::EINVAL,
            });
        }
        let data = arg.reply_data(out_len);
        match out.result {
            Ok(n) => reply.ok(&fuse::encode_ioctl_out(n as i32, data)),
            // Data travels only on the RETRY path; there a negative result
            // with header error 0 still reaches the caller as -1/errno.
            Err(e) if arg.is_gathered() => reply.ok(&fuse::encode_ioctl_out(-e.0, data)),
            Err(e) => reply.error(e),
        }
    }

    fn wait(
        &self,
        reply: Reply,
        uid: u32,
        q: QueueId,
        arg: ArgMem,
        hdr: KeventUserControl,
        now: Instant,
    ) {
        self.settle(now);
        let plan = WaitPlan::new(hdr.num, hdr.timeout, self.cfg.max_kevents);
        let pw = ParkedWait {
            reply,
            uid,
            queue: q,
            arg,
            hdr,
            plan,
            deadline: now + plan.timeout,
        };
        let (done, kick) = {
            let mut st = self.lock();
            let interrupted = st.early_interrupts.remove(&pw.reply.unique()).is_some();
            if pw.plan.num == 0
                || interrupted
                || st.queue_nonblock(q)
                || st.core.ready_len(q) >= pw.plan.min as usize
            {
                (Some(st.complete(pw)), false)
            } else {
                debug!(
                    "u={} WAIT parked (num={} min={})",
                    pw.reply.unique(),
                    pw.plan.num,
                    pw.plan.min
                );
                st.parked.push(pw);
                (None, st.needs_kick())
            }
        };
        if kick {
            self.kick();
        }
        if let Some(c) = done {
            self.deliver(c);
        }
    }

    /// Writes a WAIT's events into the caller (one write) and answers it.
    fn deliver(&self, mut c: Completion) {
        let n = c.taken.events.len();
        if n == 0 && c.arg.header_in_reply() {
            // Nothing to deliver on the FUSE file: the header (num 0) goes
            // back in the reply, which the kernel copies over the caller's
            // header; the caller's memory is not touched here at all.
            self.lock().core.commit_taken(c.taken);
            let mut hdr = c.hdr;
            hdr.num = 0;
            debug!("u={} WAIT -> 0", c.reply.unique());
            return c.reply.ok(&fuse::encode_ioctl_out(0, &hdr.encode()));
        }
        let written = c.arg.write_back(
            &self.mem(c.uid),
            Some((n as u32, c.hdr.timeout)),
            &c.taken.events,
        );
        if let Err(e) = written {
            // The events stay on the ready list for the next WAIT.
            debug!("u={} WAIT write-back failed: {e}", c.reply.unique());
            self.lock().core.restore_taken(c.queue, c.taken);
            return c.reply.error(match e {
                MemError::Fault => Errno::EINVAL,
                MemError::Denied => Errno::EPERM,
                MemError::Busy => Errno::EAGAIN,
            });
        }
        self.lock().core.commit_taken(c.taken);
        let data = c
            .arg
            .reply_data(KeventUserControl::SIZE + n * Ukevent::SIZE);
        debug!("u={} WAIT -> {n}", c.reply.unique());
        c.reply.ok(&fuse::encode_ioctl_out(n as i32, data));
    }

    /// Does what the lock handed out: notifications, then WAIT answers.
    fn run(&self, work: Work) {
        for m in &work.notify {
            self.notify.send(m);
        }
        for c in work.completions {
            self.deliver(c);
        }
    }

    /// Source fd `ty` is readable (event thread).
    pub fn source_ready(&self, ty: u32, now: Instant) {
        let mut work = Work::default();
        {
            let mut st = self.lock();
            let woke = st.core.process_source(ty, now);
            st.after_ready(&woke, &mut work);
        }
        self.run(work);
    }

    /// Time passed: expire WAITs and run source deadlines (event thread).
    pub fn tick(&self, now: Instant) {
        let mut work = Work::default();
        {
            let mut st = self.lock();
            let woke = st.core.process_deadlines(now);
            st.after_ready(&woke, &mut work);
            while let Some(i) = st.parked.iter().position(|p| p.deadline <= now) {
                let pw = st.parked.remove(i);
                let c = st.complete(pw);
                work.completions.push(c);
            }
            st.early_interrupts
                .retain(|_, t| now.saturating_duration_since(*t) < EARLY_INTERRUPT_TTL);
        }
        self.run(work);
    }

    fn interrupt(&self, target: u64, now: Instant) {
        // A signal ends the sleep: answer with what is ready (docs/ABI.md §3).
        let c = {
            let mut st = self.lock();
            match st.parked.iter().position(|p| p.reply.unique() == target) {
                Some(i) => {
                    let pw = st.parked.remove(i);
                    Some(st.complete(pw))
                }
                None => {
                    // Not parked (yet): a serving thread may be about to
                    // park it. Remembered for a while, bounded.
                    if st.early_interrupts.len() >= 4096 {
                        st.early_interrupts
                            .retain(|_, t| now.saturating_duration_since(*t) < EARLY_INTERRUPT_TTL);
                    }
                    if st.early_interrupts.len() < 4096 {
                        st.early_interrupts.insert(target, now);
                    }
                    None
                }
            }
        };
        if let Some(c) = c {
            debug!("u={target} WAIT interrupted");
            self.deliver(c);
        }
    }

    fn release(&self, q: QueueId) {
        let mut work = Work::default();
        {
            let mut st = self.lock();
            while let Some(i) = st.parked.iter().position(|p| p.queue == q) {
                let pw = st.parked.remove(i);
                let c = st.complete(pw);
                work.completions.push(c);
            }
            st.pollers.remove(&q);
            st.core.release(q);
        }
        debug!("queue {q} released");
        self.run(work);
    }

    /// Shutdown: every parked WAIT is answered so no caller stays blocked.
    pub fn shutdown(&self) {
        let mut work = Work::default();
        {
            let mut st = self.lock();
            let parked = std::mem::take(&mut st.parked);
            if !parked.is_empty() {
                info!("answering {} parked WAIT(s) before exit", parked.len());
            }
            for pw in parked {
                let c = st.complete(pw);
                work.completions.push(c);
            }
        }
        self.run(work);
    }
}

/// The uring mode hands each request's bytes to the dispatcher; the reply
/// goes through the ring entry that carried it.
impl super::uring::Handler for Dispatcher {
    fn handle(&self, req: &[u8], sink: &Sink) {
        Dispatcher::handle(self, req, sink, Instant::now())
    }

    fn inline_ok(&self, req: &[u8]) -> bool {
        self.answers_inline(req)
    }
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;
