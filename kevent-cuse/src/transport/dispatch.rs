//! Requests to the core and back (docs/ABI.md §2-3, docs/WIRE.md).
//!
//! The dispatcher never blocks: a WAIT that must sleep is parked by its
//! request id and answered later, when enough events are ready, its timeout
//! passes, an INTERRUPT for it arrives (a signal to the caller), or the
//! daemon shuts down. Parking costs no thread, and other requests — an ADD
//! from another thread of the same caller — go on being served meanwhile.

use super::ioctl::{retry_for, retry_for_header, ArgMem};
use super::TransportKind;
use crate::core::{Caller, Core, CtlOutput, Errno, QueueId};
use crate::sys::remote_mem::{CallerMemory, MemError};
use kevent_protocol::fuse::{self, ioctl_flags, opcode, InHeader, IoctlIn, Request};
use kevent_protocol::kevent::*;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Where replies go (the channel fd, or a buffer in tests).
pub trait ReplySink {
    /// Writes one complete reply or notification.
    fn send(&mut self, msg: &[u8]);
}

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
}

/// REMOVE and MODIFY batches above this size are refused with EINVAL: the
/// daemon reads the whole batch at once and will not allocate without bound.
pub const MAX_BATCH: u64 = 65536;

/// `POLLIN | POLLRDNORM`: the kevent fd is readable while events are ready.
const POLL_READABLE: u32 = (libc::POLLIN | libc::POLLRDNORM) as u32;

/// Timeout 0 means "at least one event, or 1 second" (docs/ABI.md §3).
const DEFAULT_WAIT: Duration = Duration::from_millis(1000);

struct ParkedWait {
    unique: u64,
    queue: QueueId,
    arg: ArgMem,
    /// Most events to return.
    num: u32,
    /// Wake once this many are ready.
    min: u32,
    deadline: Instant,
}

/// The daemon's request handling, independent of the transport's fd.
pub struct Dispatcher {
    cfg: Config,
    core: Core,
    mem: Box<dyn CallerMemory>,
    sink: Box<dyn ReplySink>,
    parked: Vec<ParkedWait>,
    pollers: HashMap<QueueId, BTreeSet<u64>>,
    destroyed: bool,
    /// The RETRY fallback was used (logged once at info level).
    used_retry: bool,
}

enum Ctl {
    Add,
    Remove,
    Modify,
    Wait,
}

impl Dispatcher {
    /// A dispatcher over `core`, replying through `sink`.
    pub fn new(
        cfg: Config,
        core: Core,
        mem: Box<dyn CallerMemory>,
        sink: Box<dyn ReplySink>,
    ) -> Self {
        Dispatcher {
            cfg,
            core,
            mem,
            sink,
            parked: Vec::new(),
            pollers: HashMap::new(),
            destroyed: false,
            used_retry: false,
        }
    }

    /// The core (for the reactor's source fds and deadlines).
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// True once the kernel sent DESTROY (the FUSE file was unmounted).
    pub fn destroyed(&self) -> bool {
        self.destroyed
    }

    /// Number of parked WAITs.
    pub fn parked_count(&self) -> usize {
        self.parked.len()
    }

    /// The earliest time something must happen without fd activity.
    pub fn next_deadline(&self) -> Option<Instant> {
        let waits = self.parked.iter().map(|p| p.deadline).min();
        match (waits, self.core.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles one request as read from the channel.
    pub fn handle(&mut self, buf: &[u8], now: Instant) {
        let msg = match fuse::decode(buf) {
            Ok(m) => m,
            Err(e) => {
                warn!("undecodable request: {e}");
                if let Some(u) = buf.get(8..16) {
                    let unique = u64::from_ne_bytes(u.try_into().expect("8 bytes"));
                    self.sink.send(&fuse::reply_error(unique, libc::EIO));
                }
                return;
            }
        };
        debug!("{msg}");
        let h = msg.header;
        let unique = h.unique;
        match msg.request {
            Request::Init { .. } | Request::CuseInit { .. } => {
                warn!("second INIT ignored");
                self.error(unique, Errno::EIO);
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
                    .and_then(|()| self.core.open_for(nonblock, owner));
                let q = match opened {
                    Ok(q) => q,
                    Err(e) => return self.error(unique, e),
                };
                debug!("queue {q} opened (nonblock={nonblock})");
                let body = fuse::encode_open_out(q, fuse::FOPEN_DIRECT_IO | fuse::FOPEN_STREAM);
                self.sink.send(&fuse::reply(unique, &body));
            }
            Request::Release { fh } => {
                self.release(fh, now);
                self.sink.send(&fuse::reply(unique, &[]));
            }
            Request::Flush { .. } => self.sink.send(&fuse::reply(unique, &[])),
            Request::Getattr => match self.cfg.transport {
                TransportKind::FuseFile => {
                    let secs = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let mode = libc::S_IFREG | (self.cfg.file_mode & 0o7777);
                    let (uid, gid) = self.cfg.access.attrs().map_or((0, 0), |a| (a.uid, a.gid));
                    let body = fuse::encode_attr_out(1, mode, uid, gid, secs);
                    self.sink.send(&fuse::reply(unique, &body));
                }
                TransportKind::Cuse => self.error(unique, Errno::ENOSYS),
            },
            Request::Interrupt { unique: target } => self.interrupt(target, now),
            Request::Ioctl(io) => self.ioctl(&h, &io, now),
            Request::Poll { fh, kh, flags, .. } => {
                let revents = if self.core.ready_len(fh) > 0 {
                    POLL_READABLE
                } else {
                    0
                };
                if flags & fuse::FUSE_POLL_SCHEDULE_NOTIFY != 0 && self.core.queue(fh).is_some() {
                    self.pollers.entry(fh).or_default().insert(kh);
                }
                self.sink
                    .send(&fuse::reply(unique, &fuse::encode_poll_out(revents)));
            }
            Request::Destroy => {
                self.destroyed = true;
                self.sink.send(&fuse::reply(unique, &[]));
            }
            Request::Forget => {}
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
                self.error(unique, e);
            }
        }
    }

    fn error(&mut self, unique: u64, e: Errno) {
        self.sink.send(&fuse::reply_error(unique, e.0));
    }

    fn retry(&mut self, unique: u64, ins_outs: (Vec<fuse::IoctlIovec>, Vec<fuse::IoctlIovec>)) {
        let (ins, outs) = ins_outs;
        debug!("u={unique} RETRY in={ins:?} out={outs:?}");
        self.sink
            .send(&fuse::reply(unique, &fuse::encode_ioctl_retry(&ins, &outs)));
    }

    /// The caller's memory is out of reach: gather it with RETRY when the
    /// transport allows, otherwise refuse.
    fn unreachable(
        &mut self,
        unique: u64,
        can_retry: bool,
        retry: (Vec<fuse::IoctlIovec>, Vec<fuse::IoctlIovec>),
    ) {
        if can_retry {
            if !self.used_retry {
                self.used_retry = true;
                info!("u={unique}: caller memory out of reach; using the CUSE RETRY exchange (logged once)");
            }
            self.retry(unique, retry);
        } else {
            warn!("u={unique}: the caller's memory is out of the daemon's reach");
            self.error(unique, Errno::EPERM);
        }
    }

    fn ioctl(&mut self, h: &InHeader, io: &IoctlIn<'_>, now: Instant) {
        let unique = h.unique;
        let wait_ioctl = match io.cmd {
            KEVENT_USER_CTL => false,
            KEVENT_USER_WAIT => true,
            // docs/ABI.md §2: "Any other ioctl number: -1/ENODEV".
            _ => return self.error(unique, Errno::ENODEV),
        };
        let Some(queue) = self.core.queue(io.fh) else {
            return self.error(unique, Errno::EBADF);
        };
        let registered = queue.len() as u64;
        let unrestricted = io.flags & ioctl_flags::FUSE_IOCTL_UNRESTRICTED != 0;
        let can_retry = unrestricted && self.cfg.transport == TransportKind::Cuse;

        // The header: the kernel's copy (restricted ioctl, or a RETRY leg),
        // else the caller's memory.
        let hdr_bytes = if !io.data.is_empty() {
            io.data.to_vec()
        } else {
            match self.mem.read(h.pid, io.arg, KeventUserControl::SIZE) {
                Ok(b) => b,
                Err(MemError::Fault) => return self.error(unique, Errno::EINVAL),
                Err(MemError::Denied) => {
                    return self.unreachable(unique, can_retry, retry_for_header(io.arg))
                }
            }
        };
        let Some(hdr) = KeventUserControl::decode(&hdr_bytes) else {
            return self.error(unique, Errno::EINVAL);
        };
        let ctl = match (wait_ioctl, hdr.cmd) {
            (true, _) | (false, KEVENT_CTL_WAIT) => Ctl::Wait,
            (false, KEVENT_CTL_ADD) => Ctl::Add,
            (false, KEVENT_CTL_REMOVE) => Ctl::Remove,
            (false, KEVENT_CTL_MODIFY) => Ctl::Modify,
            // INIT through the ioctl and anything else (docs/ABI.md §2, §5.3).
            _ => return self.error(unique, Errno::EINVAL),
        };
        let num = hdr.num as u64;
        let array = num * Ukevent::SIZE as u64;
        match ctl {
            Ctl::Add if registered + num > self.cfg.max_kevents as u64 => {
                return self.error(unique, Errno::ENFILE)
            }
            Ctl::Remove | Ctl::Modify if num > MAX_BATCH => {
                return self.error(unique, Errno::EINVAL)
            }
            _ => {}
        }
        let hsize = KeventUserControl::SIZE as u64;
        let (in_len, out_len) = match ctl {
            Ctl::Wait => (
                hsize,
                hsize + num.min(self.cfg.max_kevents as u64) * Ukevent::SIZE as u64,
            ),
            _ => (hsize + array, hsize + array),
        };
        let mut arg = if unrestricted && !io.data.is_empty() {
            if io.in_size as u64 == in_len && io.out_size as u64 == out_len {
                ArgMem::gathered(io.arg, io.data, out_len as usize)
            } else {
                return self.retry(unique, retry_for(io.arg, in_len, out_len));
            }
        } else {
            ArgMem::remote(h.pid, io.arg)
        };
        let full_retry = retry_for(io.arg, in_len, out_len);

        if let Ctl::Wait = ctl {
            // Fail now, not after the sleep, when the header is unwritable.
            if !arg.is_gathered() {
                match self.mem.write(h.pid, io.arg, &hdr_bytes[..12]) {
                    Ok(()) => {}
                    Err(MemError::Fault) => return self.error(unique, Errno::EINVAL),
                    Err(MemError::Denied) => {
                        return self.unreachable(unique, can_retry, full_retry)
                    }
                }
            }
            return self.wait(unique, io.fh, arg, hdr, now);
        }

        let body = match arg.read(self.mem.as_ref(), KeventUserControl::SIZE, array as usize) {
            Ok(b) => b,
            Err(MemError::Fault) => return self.error(unique, Errno::EINVAL),
            Err(MemError::Denied) => return self.unreachable(unique, can_retry, full_retry),
        };
        if !arg.is_gathered() {
            // Probe: write the same bytes back, so that an unwritable
            // argument fails with EINVAL before anything is registered.
            let mut all = hdr_bytes[..12].to_vec();
            all.extend_from_slice(&body);
            match self.mem.write(h.pid, io.arg, &all) {
                Ok(()) => {}
                Err(MemError::Fault) => return self.error(unique, Errno::EINVAL),
                Err(MemError::Denied) => return self.unreachable(unique, can_retry, full_retry),
            }
        }
        let input = Ukevent::decode_array(&body, num as usize).expect("read num*40 bytes");
        let caller = Caller {
            tid: h.pid,
            uid: h.uid,
            gid: h.gid,
            request: unique,
        };
        let (out, woke) = match ctl {
            Ctl::Add => (self.core.add(io.fh, &input, &caller), false),
            Ctl::Remove => (self.core.remove(io.fh, &input), false),
            Ctl::Modify => self.core.modify(io.fh, &input, &caller),
            Ctl::Wait => unreachable!("handled above"),
        };
        debug!(
            "u={unique} {} num={num} -> {:?} ({} written back)",
            ctl_name(hdr.cmd),
            out.result,
            out.events.len()
        );
        self.finish_ctl(unique, &mut arg, out, out_len as usize);
        if woke {
            self.after_ready(&[io.fh], now);
        }
    }

    fn finish_ctl(&mut self, unique: u64, arg: &mut ArgMem, out: CtlOutput, out_len: usize) {
        let mem = self.mem.as_ref();
        let written = arg
            .write_events(mem, &out.events)
            .and_then(|()| out.num.map_or(Ok(()), |n| arg.write_num(mem, n)));
        if let Err(e) = written {
            // Only possible if the caller changed its mappings meanwhile.
            warn!("u={unique}: write-back failed: {e}");
            return self.error(unique, Errno::EINVAL);
        }
        let data = arg.reply_data(out_len).to_vec();
        match out.result {
            Ok(n) => self.sink.send(&fuse::reply(
                unique,
                &fuse::encode_ioctl_out(n as i32, &data),
            )),
            // Data travels only on the RETRY path; there a negative result
            // with header error 0 still reaches the caller as -1/errno.
            Err(e) if arg.is_gathered() => self
                .sink
                .send(&fuse::reply(unique, &fuse::encode_ioctl_out(-e.0, &data))),
            Err(e) => self.error(unique, e),
        }
    }

    fn wait(&mut self, unique: u64, q: QueueId, arg: ArgMem, hdr: KeventUserControl, now: Instant) {
        let timeout = match hdr.timeout {
            0 => DEFAULT_WAIT,
            ms => Duration::from_millis(ms as u64),
        };
        let pw = ParkedWait {
            unique,
            queue: q,
            arg,
            num: hdr.num,
            min: if hdr.timeout == 0 { 1 } else { hdr.num },
            deadline: now + timeout,
        };
        let nonblock = self.core.queue(q).is_some_and(|x| x.nonblock);
        if pw.num == 0 || nonblock || self.core.ready_len(q) >= pw.min as usize {
            self.complete(pw);
        } else {
            debug!("u={unique} WAIT parked (num={} min={})", pw.num, pw.min);
            self.parked.push(pw);
        }
    }

    /// Answers a WAIT with what is ready now (possibly nothing).
    fn complete(&mut self, mut pw: ParkedWait) {
        let cap = (pw.num as usize).min(self.cfg.max_kevents as usize);
        let evs = self.core.peek_ready(pw.queue, cap);
        let mem = self.mem.as_ref();
        let written = pw
            .arg
            .write_events(mem, &evs)
            .and_then(|()| pw.arg.write_num(mem, evs.len() as u32));
        if let Err(e) = written {
            // The events stay on the ready list for the next WAIT.
            debug!("u={} WAIT write-back failed: {e}", pw.unique);
            return self.error(pw.unique, Errno::EINVAL);
        }
        self.core.commit_delivered(pw.queue, evs.len());
        let data = pw
            .arg
            .reply_data(KeventUserControl::SIZE + evs.len() * Ukevent::SIZE)
            .to_vec();
        debug!("u={} WAIT -> {}", pw.unique, evs.len());
        self.sink.send(&fuse::reply(
            pw.unique,
            &fuse::encode_ioctl_out(evs.len() as i32, &data),
        ));
    }

    /// Queues whose ready list grew: wake pollers and parked WAITs.
    pub fn after_ready(&mut self, queues: &[QueueId], _now: Instant) {
        for &q in queues {
            if let Some(khs) = self.pollers.get(&q) {
                let msgs: Vec<Vec<u8>> =
                    khs.iter().map(|&kh| fuse::encode_notify_poll(kh)).collect();
                for m in msgs {
                    self.sink.send(&m);
                }
            }
            // FIFO among the WAITs parked on this queue.
            while let Some(i) = self.parked.iter().position(|p| p.queue == q) {
                if self.core.ready_len(q) < self.parked[i].min as usize {
                    break;
                }
                let pw = self.parked.remove(i);
                self.complete(pw);
            }
        }
    }

    /// Source fd `ty` is readable.
    pub fn source_ready(&mut self, ty: u32, now: Instant) {
        let woke = self.core.process_source(ty, now);
        self.after_ready(&woke, now);
    }

    /// Time passed: expire WAITs and run source deadlines.
    pub fn tick(&mut self, now: Instant) {
        let woke = self.core.process_deadlines(now);
        self.after_ready(&woke, now);
        while let Some(i) = self.parked.iter().position(|p| p.deadline <= now) {
            let pw = self.parked.remove(i);
            self.complete(pw);
        }
    }

    fn interrupt(&mut self, target: u64, _now: Instant) {
        // A signal ends the sleep: answer with what is ready (docs/ABI.md §3).
        if let Some(i) = self.parked.iter().position(|p| p.unique == target) {
            debug!("u={target} WAIT interrupted");
            let pw = self.parked.remove(i);
            self.complete(pw);
        }
    }

    fn release(&mut self, q: QueueId, _now: Instant) {
        while let Some(i) = self.parked.iter().position(|p| p.queue == q) {
            let pw = self.parked.remove(i);
            self.complete(pw);
        }
        self.pollers.remove(&q);
        self.core.release(q);
        debug!("queue {q} released");
    }

    /// Shutdown: every parked WAIT is answered so no caller stays blocked.
    pub fn shutdown(&mut self) {
        let parked = std::mem::take(&mut self.parked);
        if !parked.is_empty() {
            info!("answering {} parked WAIT(s) before exit", parked.len());
        }
        for pw in parked {
            self.complete(pw);
        }
    }
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;
