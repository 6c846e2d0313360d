//! The transfer thread shared in shape by NAIO and AIO: one thread per
//! source, one io_uring ([`crate::sys::uring`]) in it, any number of
//! transfers in flight, each with at most one operation in the ring.
//!
//! * NAIO receive: `recv` on the daemon's copy of the caller's socket into a
//!   [`CHUNK`] daemon buffer, then `process_vm_writev` into the caller's
//!   buffer; send: `process_vm_readv` of one chunk, then `send`
//!   (MSG_NOSIGNAL). A transfer never holds more than one chunk, so a
//!   64 MiB transfer costs 64 KiB of daemon memory.
//! * AIO: `splice` from the file (at an offset, the caller's file position
//!   is untouched) into a pipe of the transfer, then from the pipe to the
//!   socket: the data never passes through user memory.
//! * A socket in O_NONBLOCK mode makes an operation fail with EAGAIN: the
//!   transfer then polls the socket in the ring and retries.
//!
//! Cancellation: [`Engine::cancel`] (REMOVE, close of the queue) first marks
//! the transfer dead under its [`Guard`] — the thread holds that lock
//! across every access to the caller's memory, so once `cancel` returns no
//! byte of that transfer is written or read any more — then asks the ring
//! to cancel the operation in flight; the buffer and the descriptors are
//! freed when its completion arrives. While transfers run, a sweep every
//! [`SWEEP`] ends those whose caller exited (pidfd) or no longer has the
//! socket under its number (`/proc/PID/fd/N` no longer names the same
//! socket inode): they are reported BROKEN with ESRCH or EBADF. Before
//! every access the thread also checks that the caller's process is alive
//! (its pidfd), so nothing is written into a process that has exited.

use super::poll::offload::Disposer;
use crate::core::{Errno, RegId};
use crate::sys::pidfd::{examine, CallerProcess, CallerThread, FileKind, OwnDevice, Reach};
use crate::sys::remote_mem::{read_into, write_from, MemError};
use crate::sys::uring::{Completion, Ring};
use rustix::event::{eventfd, EventfdFlags};
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{debug, warn};

/// The daemon buffer of one NAIO transfer (and the most moved per step).
pub const CHUNK: usize = 64 * 1024;

/// How often running transfers are checked for a vanished caller or socket.
pub const SWEEP: Duration = Duration::from_millis(250);

/// How long [`Engine::cancel`] waits for an access to the caller's memory
/// in progress before giving up on it (it is then the last one).
const CANCEL_WAIT: Duration = Duration::from_millis(200);

/// What a transfer moves.
#[derive(Debug)]
pub enum Kind {
    /// Socket -> the caller's buffer at `addr`, `len` bytes in all.
    Recv {
        /// The caller's buffer.
        addr: u64,
        /// Its size.
        len: u64,
    },
    /// The caller's buffer -> socket.
    Send {
        /// The caller's buffer.
        addr: u64,
        /// Its size.
        len: u64,
    },
    /// A file -> socket, `size` bytes from offset 0, `chunk` bytes per splice.
    SendFile {
        /// The daemon's copy of the caller's file.
        file: OwnedFd,
        /// Bytes to send.
        size: u64,
        /// Bytes per splice.
        chunk: usize,
    },
}

/// Serialises the thread's accesses to a caller's memory with cancellation.
#[derive(Debug, Default)]
pub struct Guard {
    /// Held by the thread across each access; `true` once cancelled.
    dead: Mutex<bool>,
    /// Set first by [`Guard::kill`], so no new access starts while it waits.
    killed: AtomicBool,
}

impl Guard {
    /// Runs `f` unless the transfer is cancelled.
    fn with<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        let g = self.dead.lock().unwrap_or_else(|e| e.into_inner());
        if *g || self.killed.load(Ordering::Acquire) {
            return None;
        }
        Some(f())
    }

    /// Marks the transfer dead; waits (bounded) for an access in progress.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        let start = Instant::now();
        loop {
            match self.dead.try_lock() {
                Ok(mut g) => {
                    *g = true;
                    return;
                }
                Err(std::sync::TryLockError::Poisoned(p)) => {
                    *p.into_inner() = true;
                    return;
                }
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
            if start.elapsed() > CANCEL_WAIT {
                warn!("a cancelled transfer is stuck in its caller's memory; leaving it");
                return;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

/// One transfer handed to the thread.
#[derive(Debug)]
pub struct Job {
    /// The registration it completes.
    pub reg: RegId,
    /// What to move.
    pub kind: Kind,
    /// The daemon's copy of the caller's socket.
    pub sock: OwnedFd,
    /// The caller's process (pidfd).
    pub process: Arc<CallerProcess>,
    /// The socket's number in the caller and its inode: close detection.
    pub sock_fd: u32,
    /// st_ino of the socket.
    pub sock_ino: u64,
    /// Bytes already moved (by ADD).
    pub moved: u64,
    /// Cancellation guard, shared with the source.
    pub guard: Arc<Guard>,
}

/// A transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// Its registration.
    pub reg: RegId,
    /// Bytes moved in all (ADD's included).
    pub moved: u64,
    /// `None`: complete. Otherwise why it broke.
    pub error: Option<Errno>,
}

enum Cmd {
    Start(Box<Job>),
    Cancel(RegId),
}

/// The source's handle on its transfer thread.
pub struct Engine {
    cmds: Sender<Cmd>,
    wake: Arc<OwnedFd>,
    done: Arc<OwnedFd>,
    finished: Mutex<Receiver<Finished>>,
    quit: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts the thread (named `name`) and its ring.
    pub fn start(name: &str) -> std::io::Result<Engine> {
        let flags = EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK;
        let wake = Arc::new(eventfd(0, flags)?);
        let done = Arc::new(eventfd(0, flags)?);
        let ring = Ring::new(256)?;
        let (tx, rx) = channel();
        let (ftx, frx) = channel();
        let quit = Arc::new(AtomicBool::new(false));
        let mut worker = Worker {
            ring,
            wake: wake.clone(),
            done: done.clone(),
            cmds: rx,
            finished: ftx,
            quit: quit.clone(),
            jobs: HashMap::new(),
            by_reg: HashMap::new(),
            next_id: 1,
            spare: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || worker.run())?;
        Ok(Engine {
            cmds: tx,
            wake,
            done,
            finished: Mutex::new(frx),
            quit,
            thread: Some(thread),
        })
    }

    fn send(&self, cmd: Cmd) {
        if self.cmds.send(cmd).is_ok() {
            let _ = rustix::io::write(&*self.wake, &1u64.to_ne_bytes());
        }
    }

    /// Hands a transfer to the thread.
    pub fn start_job(&self, job: Job) {
        self.send(Cmd::Start(Box::new(job)));
    }

    /// Cancels the transfer of `reg`: when this returns, no byte of it is
    /// written or read in the caller's memory any more (see [`Guard`]).
    pub fn cancel(&self, reg: RegId, guard: &Guard) {
        guard.kill();
        self.send(Cmd::Cancel(reg));
    }

    /// Readable while finished transfers wait in [`Engine::drain`].
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.done.as_fd()
    }

    /// Every transfer that ended since the last call.
    pub fn drain(&self) -> Vec<Finished> {
        let mut b = [0u8; 8];
        let _ = rustix::io::read(&*self.done, &mut b);
        let rx = self.finished.lock().unwrap_or_else(|e| e.into_inner());
        rx.try_iter().collect()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::Release);
        let _ = rustix::io::write(&*self.wake, &1u64.to_ne_bytes());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// --- the thread ------------------------------------------------------------

/// Key layout: job id << 4 | operation tag. Job id 0 is the wake poll.
const TAG_OP: u64 = 1;
const TAG_CANCEL: u64 = 2;
const KEY_WAKE: u64 = 0;

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Receiving into the buffer.
    Recv,
    /// Sending buffer[off..end].
    Send,
    /// Splicing file -> pipe.
    SpliceIn,
    /// Splicing pipe -> socket.
    SpliceOut,
}

struct Active {
    job: Job,
    step: Step,
    /// The step waits for the socket (poll in flight) after EAGAIN.
    polling: bool,
    /// The chunk buffer (NAIO), `None` while the ring holds it.
    buf: Option<Box<[u8]>>,
    /// Send: bytes of `buf` not yet sent.
    off: usize,
    end: usize,
    /// AIO: its pipe, file offset, bytes in the pipe.
    pipe: Option<(OwnedFd, OwnedFd)>,
    file_off: u64,
    in_pipe: u64,
    /// An operation is in the ring.
    busy: bool,
    /// Being cancelled: `Some(report)` (None = nobody to tell).
    ending: Option<Option<Errno>>,
}

struct Worker {
    ring: Ring,
    wake: Arc<OwnedFd>,
    done: Arc<OwnedFd>,
    cmds: Receiver<Cmd>,
    finished: Sender<Finished>,
    quit: Arc<AtomicBool>,
    jobs: HashMap<u64, Active>,
    by_reg: HashMap<RegId, u64>,
    next_id: u64,
    /// One spare chunk buffer, reused by the next transfer.
    spare: Vec<Box<[u8]>>,
}

enum Next {
    /// Submit the step's operation.
    Go,
    /// Done (complete, or broken with this errno).
    Finish(Option<Errno>),
}

impl Worker {
    fn run(&mut self) {
        if let Err(e) = self
            .ring
            .poll(KEY_WAKE, self.wake.as_fd(), libc::POLLIN as u32)
        {
            warn!("transfer thread: cannot poll its wake fd: {e}");
            return;
        }
        let mut out: Vec<Completion> = Vec::new();
        let mut next_sweep = Instant::now() + SWEEP;
        loop {
            let timeout = if self.jobs.is_empty() {
                None
            } else {
                Some(next_sweep.saturating_duration_since(Instant::now()))
            };
            out.clear();
            if let Err(e) = self.ring.wait(timeout, &mut out) {
                warn!("transfer thread: io_uring wait: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            for c in out.drain(..) {
                self.completed(c);
            }
            self.commands();
            if self.quit.load(Ordering::Acquire) {
                return; // the Ring's drop cancels what is in flight
            }
            if self.jobs.is_empty() {
                next_sweep = Instant::now() + SWEEP;
            } else if Instant::now() >= next_sweep {
                self.sweep();
                next_sweep = Instant::now() + SWEEP;
            }
        }
    }

    fn commands(&mut self) {
        while let Ok(cmd) = self.cmds.try_recv() {
            match cmd {
                Cmd::Start(job) => self.start(*job),
                Cmd::Cancel(reg) => {
                    if let Some(id) = self.by_reg.get(&reg).copied() {
                        self.end(id, None);
                    }
                }
            }
        }
    }

    fn start(&mut self, job: Job) {
        let id = self.next_id;
        self.next_id += 1;
        let reg = job.reg;
        let (step, pipe) = match &job.kind {
            Kind::Recv { .. } => (Step::Recv, None),
            Kind::Send { .. } => (Step::Send, None),
            Kind::SendFile { .. } => {
                match rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) {
                    Ok(p) => (Step::SpliceIn, Some(p)),
                    Err(e) => {
                        self.report(reg, job.moved, Some(e.into()));
                        return;
                    }
                }
            }
        };
        let buf = match step {
            Step::Recv | Step::Send => Some(
                self.spare
                    .pop()
                    .unwrap_or_else(|| vec![0u8; CHUNK].into_boxed_slice()),
            ),
            _ => None,
        };
        let a = Active {
            step,
            polling: false,
            buf,
            off: 0,
            end: 0,
            pipe,
            file_off: job.moved,
            in_pipe: 0,
            busy: false,
            ending: None,
            job,
        };
        self.jobs.insert(id, a);
        self.by_reg.insert(reg, id);
        debug!("transfer {reg:?} started");
        let next = self.prepare(id);
        self.go(id, next);
    }

    /// Readies the current step (for Send: fills the buffer).
    fn prepare(&mut self, id: u64) -> Next {
        let a = self.jobs.get_mut(&id).expect("live job");
        match (&a.job.kind, a.step) {
            (Kind::Recv { len, .. }, _) => {
                if a.job.moved >= *len {
                    return Next::Finish(None);
                }
                Next::Go
            }
            (Kind::Send { addr, len }, _) => {
                if a.off < a.end {
                    return Next::Go;
                }
                if a.job.moved >= *len {
                    return Next::Finish(None);
                }
                let want = ((*len - a.job.moved) as usize).min(CHUNK);
                let at = addr.wrapping_add(a.job.moved);
                let buf = a.buf.as_mut().expect("send buffer is home");
                let process = a.job.process.clone();
                let r = a.job.guard.with(|| {
                    if !process.alive() {
                        return Err(Errno::ESRCH);
                    }
                    read_into(process.tgid(), at, &mut buf[..want]).map_err(mem_errno)
                });
                match r {
                    None => Next::Finish(Some(Errno::ECANCELED)),
                    Some(Err(e)) => Next::Finish(Some(e)),
                    Some(Ok(n)) => {
                        a.off = 0;
                        a.end = n;
                        Next::Go
                    }
                }
            }
            (Kind::SendFile { size, .. }, Step::SpliceIn) => {
                if a.file_off >= *size {
                    return Next::Finish(None);
                }
                Next::Go
            }
            (Kind::SendFile { .. }, _) => Next::Go,
        }
    }

    /// Submits the current step, or finishes.
    fn go(&mut self, id: u64, next: Next) {
        if let Next::Finish(err) = next {
            self.finish(id, err);
            return;
        }
        let key = id << 4 | TAG_OP;
        let a = self.jobs.get_mut(&id).expect("live job");
        let sock = a.job.sock.as_fd();
        let r = if a.polling {
            let ev = if a.step == Step::Recv {
                libc::POLLIN
            } else {
                libc::POLLOUT
            };
            self.ring.poll(key, sock, ev as u32)
        } else {
            match (&a.job.kind, a.step) {
                (Kind::Recv { len, .. }, _) => {
                    let want = ((*len - a.job.moved) as usize).min(CHUNK);
                    let buf = a.buf.take().expect("recv buffer is home");
                    self.ring.recv(key, sock, buf, want)
                }
                (Kind::Send { .. }, _) => {
                    let buf = a.buf.take().expect("send buffer is home");
                    self.ring.send(key, sock, buf, a.off, a.end)
                }
                (Kind::SendFile { file, size, chunk }, Step::SpliceIn) => {
                    let (_, w) = a.pipe.as_ref().expect("pipe");
                    let want = ((*size - a.file_off) as usize).min(*chunk);
                    self.ring
                        .splice(key, file.as_fd(), Some(a.file_off), w.as_fd(), want)
                }
                (Kind::SendFile { .. }, _) => {
                    let (r, _) = a.pipe.as_ref().expect("pipe");
                    let want = usize::try_from(a.in_pipe).unwrap_or(usize::MAX);
                    self.ring.splice(key, r.as_fd(), None, sock, want)
                }
            }
        };
        match r {
            Ok(()) => a.busy = true,
            Err(e) => {
                warn!("transfer {:?}: io_uring submission: {e}", a.job.reg);
                self.finish(id, Some(Errno::from_io(&e)));
            }
        }
    }

    fn completed(&mut self, c: Completion) {
        if c.key == KEY_WAKE {
            let mut b = [0u8; 8];
            let _ = rustix::io::read(&*self.wake, &mut b);
            if let Err(e) = self
                .ring
                .poll(KEY_WAKE, self.wake.as_fd(), libc::POLLIN as u32)
            {
                warn!("transfer thread: re-arming its wake poll: {e}");
            }
            return;
        }
        let id = c.key >> 4;
        if c.key & 0xf == TAG_CANCEL {
            return; // the cancelled operation reports itself
        }
        let Some(a) = self.jobs.get_mut(&id) else {
            return;
        };
        a.busy = false;
        if let Some(b) = c.buf {
            a.buf = Some(b);
        }
        if let Some(report) = a.ending {
            self.finish(id, report.or(Some(Errno::ECANCELED)));
            return;
        }
        let res = c.result;
        if res == -libc::EAGAIN || res == -libc::EWOULDBLOCK {
            a.polling = true;
            self.go(id, Next::Go);
            return;
        }
        if res == -libc::EINTR {
            self.go(id, Next::Go);
            return;
        }
        if a.polling {
            a.polling = false;
            if res < 0 {
                self.finish(id, Some(Errno(-res)));
            } else {
                self.go(id, Next::Go);
            }
            return;
        }
        if res < 0 {
            self.finish(id, Some(Errno(-res)));
            return;
        }
        let n = res as u64;
        let next = match (&a.job.kind, a.step) {
            (Kind::Recv { addr, .. }, _) => {
                if n == 0 {
                    // End of file before the whole size came.
                    Next::Finish(Some(Errno::ENODATA))
                } else {
                    let at = addr.wrapping_add(a.job.moved);
                    let buf = a.buf.as_ref().expect("recv buffer came back");
                    let process = a.job.process.clone();
                    let r = a.job.guard.with(|| {
                        if !process.alive() {
                            return Err(Errno::ESRCH);
                        }
                        write_from(process.tgid(), at, &buf[..n as usize]).map_err(mem_errno)
                    });
                    match r {
                        None => Next::Finish(Some(Errno::ECANCELED)),
                        Some(Err(e)) => Next::Finish(Some(e)),
                        Some(Ok(w)) => {
                            a.job.moved += w as u64;
                            if (w as u64) < n {
                                // Ran into memory that cannot be written.
                                Next::Finish(Some(Errno::EFAULT))
                            } else {
                                Next::Go
                            }
                        }
                    }
                }
            }
            (Kind::Send { .. }, _) => {
                a.job.moved += n;
                a.off += n as usize;
                Next::Go
            }
            (Kind::SendFile { .. }, Step::SpliceIn) => {
                if n == 0 {
                    // The file shrank: what it has now was sent.
                    Next::Finish(None)
                } else {
                    a.file_off += n;
                    a.in_pipe = n;
                    a.step = Step::SpliceOut;
                    Next::Go
                }
            }
            (Kind::SendFile { .. }, _) => {
                if n == 0 {
                    Next::Finish(Some(Errno::EPIPE))
                } else {
                    a.job.moved += n;
                    a.in_pipe -= n.min(a.in_pipe);
                    if a.in_pipe == 0 {
                        a.step = Step::SpliceIn;
                    }
                    Next::Go
                }
            }
        };
        let next = match next {
            Next::Go => self.prepare(id),
            f => f,
        };
        self.go(id, next);
    }

    /// Ends a transfer from outside (cancel, sweep): at once when nothing
    /// is in the ring, else when the cancelled operation completes.
    fn end(&mut self, id: u64, report: Option<Errno>) {
        let Some(a) = self.jobs.get_mut(&id) else {
            return;
        };
        if a.ending.is_some() {
            if report.is_none() {
                a.ending = Some(None); // the source is gone: tell nobody
            }
            return;
        }
        a.ending = Some(report);
        if !a.busy {
            self.finish(id, report);
            return;
        }
        let key = id << 4 | TAG_CANCEL;
        if !self.ring.is_in_flight(key) {
            if let Err(e) = self.ring.cancel(key, id << 4 | TAG_OP) {
                warn!("transfer {:?}: cancel: {e}", a.job.reg);
            }
        }
    }

    /// Drops the transfer and tells the source, unless it asked for the end.
    fn finish(&mut self, id: u64, error: Option<Errno>) {
        let Some(mut a) = self.jobs.remove(&id) else {
            return;
        };
        debug_assert!(!a.busy, "finished with an operation in flight");
        self.by_reg.remove(&a.job.reg);
        if let Some(b) = a.buf.take() {
            if self.spare.is_empty() {
                self.spare.push(b);
            }
        }
        let silent = matches!(a.ending, Some(None));
        if !silent {
            self.report(a.job.reg, a.job.moved, error);
        }
        debug!("transfer {:?} ended: {:?}", a.job.reg, error);
        // The socket copy, file copy and pipe close here.
    }

    fn report(&self, reg: RegId, moved: u64, error: Option<Errno>) {
        if self.finished.send(Finished { reg, moved, error }).is_ok() {
            let _ = rustix::io::write(&*self.done, &1u64.to_ne_bytes());
        }
    }

    /// Ends transfers whose caller exited or closed the socket.
    fn sweep(&mut self) {
        let mut gone = Vec::new();
        for (&id, a) in &self.jobs {
            if a.ending.is_some() {
                continue;
            }
            if !a.job.process.alive() {
                gone.push((id, Errno::ESRCH));
            } else if !still_has_socket(&a.job) {
                gone.push((id, Errno::EBADF));
            }
        }
        for (id, e) in gone {
            debug!("transfer job {id}: caller or socket gone ({e:?})");
            self.end(id, Some(e));
        }
    }
}

fn mem_errno(e: MemError) -> Errno {
    match e {
        MemError::Fault => Errno::EFAULT,
        MemError::Denied => Errno::ESRCH,
    }
}

/// Whether the caller's descriptor `sock_fd` still names the socket.
fn still_has_socket(job: &Job) -> bool {
    let link = std::fs::read_link(format!("/proc/{}/fd/{}", job.process.tgid(), job.sock_fd));
    match link {
        Ok(p) => p.as_os_str().to_string_lossy() == format!("socket:[{}]", job.sock_ino),
        // A vanished number means a closed socket; anything else (no
        // permission, /proc missing) must not end a transfer.
        Err(e) => e.kind() != std::io::ErrorKind::NotFound,
    }
}

/// Pages the buffer `[addr, addr + len)` spans (ret_data[0] of NAIO).
pub fn pages_spanned(addr: u64, len: u64) -> u32 {
    if len == 0 {
        return 0;
    }
    let page = rustix::param::page_size() as u64;
    let first = addr / page;
    let last = addr.saturating_add(len - 1) / page;
    u32::try_from(last - first + 1).unwrap_or(u32::MAX)
}

/// Fetches the calling thread's descriptor `fd` (from that thread's own
/// table) and checks that it is a stream socket: (the daemon's copy,
/// st_ino). Another kind of file is EINVAL (and, since it may be this
/// daemon's own device, closed by the offload thread).
pub fn fetch_stream_socket(
    thread: &CallerThread,
    tgid: u32,
    fd: u32,
    own: &OwnDevice,
    disposer: &Disposer,
) -> Result<(OwnedFd, u64), Errno> {
    let file = thread.fetch(fd)?;
    let facts = match examine(&file, own, tgid) {
        Ok(f) => f,
        Err(e) => {
            disposer.dispose(file);
            return Err(Errno::from_io(&e));
        }
    };
    if facts.kind != FileKind::Socket {
        if facts.reach == Reach::Userspace {
            disposer.dispose(file);
        }
        return Err(Errno::EINVAL);
    }
    match rustix::net::sockopt::socket_type(&file) {
        Ok(t) if t == rustix::net::SocketType::STREAM => Ok((file, facts.ino)),
        _ => Err(Errno::EINVAL),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_spanned_counts_partial_pages() {
        let p = rustix::param::page_size() as u64;
        assert_eq!(pages_spanned(0, 0), 0);
        assert_eq!(pages_spanned(0, 1), 1);
        assert_eq!(pages_spanned(0, p), 1);
        assert_eq!(pages_spanned(1, p), 2);
        assert_eq!(pages_spanned(p - 1, 2), 2);
        assert_eq!(
            pages_spanned(3 * p, 64 * 1024 * 1024),
            (64 * 1024 * 1024 / p) as u32
        );
    }

    #[test]
    fn a_killed_guard_runs_nothing() {
        let g = Guard::default();
        assert_eq!(g.with(|| 1), Some(1));
        g.kill();
        assert_eq!(g.with(|| 2), None);
    }
}
