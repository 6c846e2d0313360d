//! KEVENT_NAIO (docs/ABI.md §4): network AIO. `id.raw[0]` is a stream
//! socket of the caller (TCP v4/v6, UNIX stream), `id.raw[1]` the size,
//! `ptr` the caller's buffer, `event` RECV (socket -> buffer) or SEND
//! (buffer -> socket). The kevent is ready when all `size` bytes moved.
//!
//! # Rules (also in the README, "AIO")
//! * On delivery `id.raw[1]` is rewritten to the bytes still to go (0 when
//!   complete), `ret_data[0]` is the number of pages the buffer spans and
//!   `ret_data[1]` the bytes moved.
//! * End of file before `size` bytes came, or an error, ends the transfer
//!   BROKEN|DONE; its errno is then in `ret_data[0]` (instead of the page
//!   count): ENODATA for end of file, EFAULT for a buffer that is not
//!   mapped (or read-only for RECV), the socket's own error (EPIPE,
//!   ECONNRESET...), ESRCH when the caller exited, EBADF when it closed the
//!   socket during the transfer.
//! * ADD first moves what it can without waiting (at most [`SYNC_LIMIT`]
//!   bytes, MSG_DONTWAIT): a transfer complete inside ADD is written back
//!   DONE, ADD returns 1 and no event follows. A failure inside ADD (wrong
//!   kind of fd, a buffer whose first or last byte is not accessible, end
//!   of file) is written back BROKEN|DONE and ADD fails with its errno.
//! * The rest is moved by the source's transfer thread on io_uring
//!   ([`super::transfer`]); the request path never waits for the socket.
//! * A finished transfer has nothing more to report: it is unregistered
//!   when delivered, ONESHOT or not. MODIFY changes only the mask the queue
//!   keeps; the transfer goes on.

use super::poll::offload::Disposer;
use super::transfer::{fetch_stream_socket, pages_spanned, Engine, Guard, Job, Kind, CHUNK};
use super::{Notice, Outcome, Source, SourceCtx};
use crate::core::{Caller, Errno, RegId};
use crate::sys::pidfd::{CallerProcess, CallerThread, OwnDevice, ProcCache};
use crate::sys::remote_mem::{read_into, write_from, MemError};
use kevent_protocol::kevent::{Ukevent, KEVENT_SOCKET_RECV, KEVENT_SOCKET_SEND};
use rustix::net::{RecvFlags, SendFlags};
use std::collections::HashMap;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::time::Instant;

/// The most ADD moves itself before handing a transfer to the thread.
pub const SYNC_LIMIT: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Recv,
    Send,
}

struct Transfer {
    raw0: u32,
    size: u64,
    pages: u32,
    moved: u64,
    /// Set when it ended broken.
    error: Option<Errno>,
    guard: Arc<Guard>,
}

/// The NAIO source.
pub struct NaioSource {
    engine: Engine,
    transfers: HashMap<RegId, Transfer>,
    procs: ProcCache,
    own: OwnDevice,
    disposer: Disposer,
    /// ADD's own chunk buffer.
    buf: Box<[u8]>,
    /// The last transfer that ended inside ADD: (reg, id, ret_data).
    settled: Option<(RegId, [u32; 2], [u32; 2])>,
}

/// The NAIO row of [`super::TABLE`].
pub fn build(ctx: &SourceCtx) -> std::io::Result<Box<dyn Source>> {
    Ok(Box::new(NaioSource {
        engine: Engine::start("kevent-naio")?,
        transfers: HashMap::new(),
        procs: ProcCache::default(),
        own: ctx.own,
        disposer: ctx.offload.disposer(),
        buf: vec![0u8; CHUNK].into_boxed_slice(),
        settled: None,
    }))
}

/// The caller's buffer address: the 8 bytes of the `ptr` union.
pub fn ptr_of(uk: &Ukevent) -> u64 {
    u64::from(uk.user[0]) | u64::from(uk.user[1]) << 32
}

fn mem_errno(e: MemError) -> Errno {
    match e {
        MemError::Fault => Errno::EFAULT,
        MemError::Denied => Errno::EPERM,
    }
}

/// Checks that the first and last byte of the buffer can be read (and, for
/// a receive, written: the byte read is written back unchanged).
fn probe(pid: u32, addr: u64, len: u64, dir: Dir) -> Result<(), Errno> {
    if len == 0 {
        return Ok(());
    }
    addr.checked_add(len - 1).ok_or(Errno::EFAULT)?;
    for at in [addr, addr + len - 1] {
        let mut b = [0u8; 1];
        read_into(pid, at, &mut b).map_err(mem_errno)?;
        if dir == Dir::Recv {
            write_from(pid, at, &b).map_err(mem_errno)?;
        }
    }
    Ok(())
}

/// What ADD's own attempt came to.
enum Sync {
    /// Everything moved.
    Complete,
    /// The socket would block: the thread takes over.
    Pending,
    /// Broken with this errno.
    Broken(Errno),
}

impl NaioSource {
    /// Moves what can move now, without waiting, up to [`SYNC_LIMIT`].
    fn attempt(
        &mut self,
        sock: &OwnedFd,
        pid: u32,
        addr: u64,
        size: u64,
        dir: Dir,
        moved: &mut u64,
    ) -> Sync {
        let limit = (*moved + SYNC_LIMIT).min(size);
        while *moved < limit {
            let want = ((limit - *moved) as usize).min(CHUNK);
            let at = addr.wrapping_add(*moved);
            match dir {
                Dir::Recv => {
                    let n =
                        match rustix::net::recv(sock, &mut self.buf[..want], RecvFlags::DONTWAIT) {
                            Ok((n, _)) => n,
                            Err(rustix::io::Errno::AGAIN) => return Sync::Pending,
                            Err(rustix::io::Errno::INTR) => continue,
                            Err(e) => return Sync::Broken(e.into()),
                        };
                    if n == 0 {
                        return Sync::Broken(Errno::ENODATA);
                    }
                    match write_from(pid, at, &self.buf[..n]) {
                        Ok(w) => {
                            *moved += w as u64;
                            if w < n {
                                return Sync::Broken(Errno::EFAULT);
                            }
                        }
                        Err(e) => return Sync::Broken(mem_errno(e)),
                    }
                }
                Dir::Send => {
                    let got = match read_into(pid, at, &mut self.buf[..want]) {
                        Ok(n) => n,
                        Err(e) => return Sync::Broken(mem_errno(e)),
                    };
                    let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
                    match rustix::net::send(sock, &self.buf[..got], flags) {
                        Ok(n) => *moved += n as u64,
                        Err(rustix::io::Errno::AGAIN) => return Sync::Pending,
                        Err(rustix::io::Errno::INTR) => continue,
                        Err(e) => return Sync::Broken(e.into()),
                    }
                }
            }
        }
        if *moved >= size {
            Sync::Complete
        } else {
            Sync::Pending
        }
    }

    fn start(&mut self, reg: RegId, uk: &Ukevent, caller: &Caller) -> Result<Outcome, Errno> {
        let dir = match uk.event {
            KEVENT_SOCKET_RECV => Dir::Recv,
            KEVENT_SOCKET_SEND => Dir::Send,
            _ => return Err(Errno::EINVAL),
        };
        let process: Arc<CallerProcess> = self.procs.get(caller.tid)?;
        let thread = CallerThread::open(caller.tid)?;
        let (sock, ino) =
            fetch_stream_socket(&thread, process.tgid(), uk.id[0], &self.own, &self.disposer)?;
        let size = u64::from(uk.id[1]);
        let addr = ptr_of(uk);
        let pages = pages_spanned(addr, size);
        let pid = process.tgid();
        probe(pid, addr, size, dir)?;
        let mut moved = 0;
        let settle = |moved: u64, data0: u32| {
            (
                reg,
                [uk.id[0], (size - moved) as u32],
                [data0, moved as u32],
            )
        };
        match self.attempt(&sock, pid, addr, size, dir, &mut moved) {
            Sync::Complete => {
                self.settled = Some(settle(moved, pages));
                Ok(Outcome::Ready([pages, moved as u32]))
            }
            Sync::Broken(e) => {
                self.settled = Some(settle(moved, e.0 as u32));
                Err(e)
            }
            Sync::Pending => {
                let guard = Arc::new(Guard::default());
                let kind = match dir {
                    Dir::Recv => Kind::Recv { addr, len: size },
                    Dir::Send => Kind::Send { addr, len: size },
                };
                self.engine.start_job(Job {
                    reg,
                    kind,
                    sock,
                    process,
                    sock_fd: uk.id[0],
                    sock_ino: ino,
                    moved,
                    guard: guard.clone(),
                });
                self.transfers.insert(
                    reg,
                    Transfer {
                        raw0: uk.id[0],
                        size,
                        pages,
                        moved,
                        error: None,
                        guard,
                    },
                );
                Ok(Outcome::Queued)
            }
        }
    }
}

impl Source for NaioSource {
    fn name(&self) -> &'static str {
        "naio"
    }

    fn register(&mut self, reg: RegId, uk: &Ukevent, caller: &Caller) -> Outcome {
        self.settled = None;
        self.start(reg, uk, caller).unwrap_or_else(Outcome::Failed)
    }

    fn modify(&mut self, _reg: RegId, _uk: &Ukevent, _caller: &Caller) -> Outcome {
        Outcome::Queued
    }

    fn unregister(&mut self, reg: RegId) {
        if let Some(t) = self.transfers.remove(&reg) {
            self.engine.cancel(reg, &t.guard);
        }
    }

    fn ret_data(&self, reg: RegId) -> [u32; 2] {
        match self.transfers.get(&reg) {
            Some(t) => match t.error {
                Some(e) => [e.0 as u32, t.moved as u32],
                None => [t.pages, t.moved as u32],
            },
            None => [0, 0],
        }
    }

    fn id(&self, reg: RegId) -> Option<[u32; 2]> {
        let t = self.transfers.get(&reg)?;
        Some([t.raw0, (t.size - t.moved.min(t.size)) as u32])
    }

    fn settled(&mut self, reg: RegId) -> Option<([u32; 2], [u32; 2])> {
        match self.settled.take() {
            Some((r, id, data)) if r == reg => Some((id, data)),
            _ => None,
        }
    }

    fn finished(&self, reg: RegId) -> bool {
        self.transfers.contains_key(&reg)
    }

    fn delivered(&mut self, _reg: RegId) {}

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.engine.fd())
    }

    fn process(&mut self, _now: Instant, out: &mut Vec<Notice>) {
        for f in self.engine.drain() {
            if let Some(t) = self.transfers.get_mut(&f.reg) {
                t.moved = f.moved;
                t.error = f.error;
                out.push(Notice {
                    reg: f.reg,
                    broken: f.error.is_some(),
                });
            }
        }
    }
}
