//! KEVENT_AIO (docs/ABI.md §4): `aio_sendfile`. `id.raw[0]` is a regular
//! file of the caller, `id.raw[1]` the pages per chunk (1..8, 0 = 8),
//! `ret_data[0]` (an input) a stream socket of the caller. The kevent is
//! ready when the whole file was sent to the socket.
//!
//! # Rules (also in the README, "AIO")
//! * The file is sent from offset 0 to its size at ADD; the caller's file
//!   position is not used or moved. An empty file is done inside ADD
//!   (written back DONE, ADD returns 1); any other is queued (ADD returns 0)
//!   and sent by the source's transfer thread: io_uring `splice` from the
//!   file into a pipe and from the pipe to the socket, `raw[1]` pages per
//!   splice, no copy through user memory.
//! * On delivery `ret_data[0]` is the socket (as given) and `ret_data[1]`
//!   the bytes sent. A transfer that failed is delivered BROKEN|DONE with
//!   its errno in `ret_data[1]` (EPIPE, ECONNRESET... from the socket; ESRCH
//!   when the caller exited, EBADF when it closed the socket).
//! * Wrong kinds: `raw[0]` not a regular file, or a file served from
//!   userspace (FUSE, this daemon's own node), `ret_data[0]` not a stream
//!   socket, or `raw[1]` above 8: EINVAL. A descriptor that does not exist:
//!   ENODEV.
//! * A finished transfer is unregistered when delivered, ONESHOT or not
//!   (2006's aio_sendfile kevent was not ONESHOT); REMOVE or closing the
//!   queue cancels it.

use super::poll::offload::Disposer;
use super::transfer::{fetch_stream_socket, Engine, Guard, Job, Kind};
use super::{Notice, Outcome, Source, SourceCtx};
use crate::core::{Caller, Errno, RegId};
use crate::sys::pidfd::{examine, CallerThread, FileKind, OwnDevice, ProcCache, Reach};
use kevent_protocol::kevent::Ukevent;
use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::Instant;

struct Transfer {
    socket: u32,
    sent: u64,
    error: Option<Errno>,
    guard: Arc<Guard>,
}

/// The AIO source.
pub struct AioSource {
    engine: Engine,
    transfers: HashMap<RegId, Transfer>,
    procs: ProcCache,
    own: OwnDevice,
    disposer: Disposer,
}

/// The AIO row of [`super::TABLE`].
pub fn build(ctx: &SourceCtx) -> std::io::Result<Box<dyn Source>> {
    Ok(Box::new(AioSource {
        engine: Engine::start("kevent-aio")?,
        transfers: HashMap::new(),
        procs: ProcCache::default(),
        own: ctx.own,
        disposer: ctx.offload.disposer(),
    }))
}

/// Bytes per splice for `raw[1]` pages per chunk (0 = 8; above 8: None).
pub fn chunk_bytes(pages: u32) -> Option<usize> {
    let pages = if pages == 0 { 8 } else { pages };
    (pages <= 8).then(|| pages as usize * rustix::param::page_size())
}

impl AioSource {
    fn start(&mut self, reg: RegId, uk: &Ukevent, caller: &Caller) -> Result<Outcome, Errno> {
        let chunk = chunk_bytes(uk.id[1]).ok_or(Errno::EINVAL)?;
        let process = self.procs.get(caller.tid)?;
        let thread = CallerThread::open(caller.tid)?;
        let file = thread.fetch(uk.id[0])?;
        let facts = match examine(&file, &self.own, process.tgid()) {
            Ok(f) => f,
            Err(e) => {
                self.disposer.dispose(file);
                return Err(Errno::from_io(&e));
            }
        };
        if facts.reach == Reach::Userspace {
            // Reading it could wait on a FUSE server (this daemon included).
            self.disposer.dispose(file);
            return Err(Errno::EINVAL);
        }
        let st = rustix::fs::fstat(&file).map_err(Errno::from)?;
        let regular =
            facts.kind == FileKind::Other && (st.st_mode as u32 & libc::S_IFMT) == libc::S_IFREG;
        if !regular {
            return Err(Errno::EINVAL);
        }
        let socket = uk.ret_data[0];
        let (sock, ino) =
            fetch_stream_socket(&thread, process.tgid(), socket, &self.own, &self.disposer)?;
        let size = st.st_size as u64;
        if size == 0 {
            return Ok(Outcome::Ready([socket, 0]));
        }
        let guard = Arc::new(Guard::default());
        self.engine.start_job(Job {
            reg,
            kind: Kind::SendFile { file, size, chunk },
            sock,
            process,
            sock_fd: socket,
            sock_ino: ino,
            moved: 0,
            guard: guard.clone(),
        });
        self.transfers.insert(
            reg,
            Transfer {
                socket,
                sent: 0,
                error: None,
                guard,
            },
        );
        Ok(Outcome::Queued)
    }
}

impl Source for AioSource {
    fn name(&self) -> &'static str {
        "aio"
    }

    fn register(&mut self, reg: RegId, uk: &Ukevent, caller: &Caller) -> Outcome {
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
            Some(t) => [t.socket, t.error.map_or(t.sent as u32, |e| e.0 as u32)],
            None => [0, 0],
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
                t.sent = f.moved;
                t.error = f.error;
                out.push(Notice {
                    reg: f.reg,
                    broken: f.error.is_some(),
                });
            }
        }
    }
}
