//! The offload workers: the only place where the daemon polls, epolls or
//! closes a caller's file that a FUSE or CUSE server may have to answer for
//! ([`Reach::Userspace`](crate::sys::pidfd::Reach)) — above all this
//! daemon's own device (docs/WIRE.md, "Ordering pitfalls").
//!
//! # One worker per user
//! Each uid gets a worker thread of its own (started on first use), with
//! its own epoll set: a file whose server never answers (a FUSE filesystem
//! the user mounted, that ignores POLL or FLUSH) blocks that user's worker
//! and nothing else. Other users' POLL kevents on epoll sets, kevent queues
//! and FUSE files keep firing, and the serving threads never wait for any
//! worker (commands go through a channel and an eventfd). The one limit the
//! kernel sets: a FUSE request its server has already read is waited out
//! uninterruptibly, so a worker stuck that way keeps the daemon's process
//! from being reaped after SIGTERM (the mount is gone and every client was
//! answered) until that server answers or its connection is aborted.
//!
//! # Why a thread
//! `epoll_ctl(ADD)`, `epoll_wait` and `close` on such a file make the
//! kernel send a POLL, FLUSH or RELEASE request to its server and wait for
//! the answer. If the server is this daemon and the waiting thread is the
//! one that reads the channel, nobody ever answers. Here a second thread
//! waits instead, on an epoll instance of its own that the request loop
//! never touches, while the request loop goes on answering — including
//! the POLL requests this thread causes. The request loop never waits for
//! this thread: commands go through a channel and an eventfd, reports come
//! back the same way and are picked up when the report eventfd turns
//! readable in the POLL source's epoll.
//!
//! # The daemon's own device: an epoll item, never a held file
//! A file of this daemon's own device (another kevent queue, the FUSE
//! file or the CUSE node) is never kept open ([`Cmd::Add`] with
//! `item_only`): the thread puts it into its epoll set and closes its
//! descriptor at once, keeping only the epoll item, which the kernel drops
//! by itself when the caller closes its last descriptor of the file.
//! Holding it instead would make queues that poll each other keep each
//! other alive after their owners died, and would make a SIGKILLed daemon
//! hang in exit, closing a file of its own device that needs its own
//! answer. Without a descriptor the item cannot be deleted: on REMOVE it
//! lingers, its token forgotten, so that its reports are dropped; when the
//! same file comes back at the same descriptor number with no live watch
//! there, the lingering item is revived (EEXIST, then MOD with the new
//! token); with a live watch there, the file is watched under another
//! descriptor number instead. Each watch has a token of its own, so a
//! lingering item never fires for a newer watch.
//!
//! # Shutdown
//! Closing one of these files after the request loop has stopped would
//! wait for an answer that never comes. On [`Offload`]'s drop the thread
//! is told to quit; it forgets its descriptors instead of closing them and
//! is not joined. The process closes them when it exits, after the
//! transport has closed the channel, and the kernel then fails the requests
//! at once (the connection is aborted).

use crate::core::{Errno, RegId};
use rustix::event::{epoll, eventfd, EventfdFlags};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use tracing::{debug, warn};

/// A request to the offload thread.
#[derive(Debug)]
enum Cmd {
    /// Watch `fd` for `reg` (edge-triggered) and hold it until `Remove`;
    /// with `item_only` keep only the epoll item (module doc). An existing
    /// watch of `reg` is replaced.
    Add {
        reg: RegId,
        fd: OwnedFd,
        interest: epoll::EventFlags,
        item_only: bool,
    },
    /// New interest; the kernel re-checks readiness at once.
    Modify {
        reg: RegId,
        interest: epoll::EventFlags,
    },
    /// Stop watching `reg` and close its file.
    Remove { reg: RegId },
    /// Close a file the request loop must not close itself.
    Dispose(OwnedFd),
    /// Stop (shutdown): forget every file, close none.
    Quit,
}

/// What the offload thread reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// `reg`'s file reported these poll bits (new activity).
    Fired {
        /// Which registration.
        reg: RegId,
        /// The epoll bits (same values as POLL*).
        revents: u32,
    },
    /// `reg` could not be watched (asynchronous registration failure).
    Failed {
        /// Which registration.
        reg: RegId,
        /// Why.
        errno: Errno,
    },
}

/// The workers, one per uid, and what they share: the report channel and
/// the eventfd that says reports wait.
#[derive(Debug)]
struct Pool {
    workers: Mutex<HashMap<u32, Handle>>,
    /// Which uid's worker watches each registration.
    owner: Mutex<HashMap<RegId, u32>>,
    report_tx: Mutex<Sender<Report>>,
    reports: Mutex<Receiver<Report>>,
    ready: Arc<OwnedFd>,
}

/// Sends commands to one worker.
#[derive(Debug, Clone)]
struct Handle {
    tx: Sender<Cmd>,
    wake: Arc<OwnedFd>,
    /// Commands sent and not yet received (changed by senders only while
    /// holding [`Pool::workers`], see [`Worker::try_retire`]).
    queued: Arc<AtomicUsize>,
}

impl Handle {
    fn send(&self, cmd: Cmd) {
        self.queued.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self.tx.send(cmd) {
            // The thread is gone (shutdown): never close such a file here.
            std::mem::forget(e.0);
            return;
        }
        let _ = rustix::io::write(&*self.wake, &1u64.to_ne_bytes());
    }
}

/// The uid files of unknown ownership are closed for.
const NOBODY_KNOWN: u32 = u32::MAX;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    fn spawn(self: &Arc<Self>, uid: u32) -> std::io::Result<Handle> {
        let flags = EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK;
        let wake = Arc::new(eventfd(0, flags)?);
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &ep,
            &*wake,
            epoll::EventData::new_u64(TOKEN_WAKE),
            epoll::EventFlags::IN,
        )?;
        let (tx, rx) = channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            uid,
            pool: Arc::downgrade(self),
            queued: queued.clone(),
            ep,
            wake: wake.clone(),
            ready: self.ready.clone(),
            cmds: rx,
            reports: lock(&self.report_tx).clone(),
            files: HashMap::new(),
            tokens: HashMap::new(),
            next_token: 1,
            item_nums: HashMap::new(),
        };
        let name = if uid == NOBODY_KNOWN {
            "kevent-offload".to_string()
        } else {
            format!("offload-{uid}")
        };
        std::thread::Builder::new()
            .name(name)
            .spawn(move || worker.run())?;
        Ok(Handle { tx, wake, queued })
    }

    /// Sends `cmd` to the worker of `uid`, started on first use; without
    /// one, a file in it is forgotten (never closed on the calling thread).
    /// Sending happens under the lock (it never blocks) so that an idle
    /// worker can retire safely.
    fn send(self: &Arc<Self>, uid: u32, cmd: Cmd) {
        let mut workers = lock(&self.workers);
        if let Some(h) = workers.get(&uid) {
            return h.send(cmd);
        }
        match self.spawn(uid) {
            Ok(h) => {
                h.send(cmd);
                workers.insert(uid, h);
            }
            Err(e) => {
                warn!("offload: cannot start a worker for uid {uid}: {e}");
                std::mem::forget(cmd);
            }
        }
    }

    /// Sends `cmd` to the worker that watches `reg`.
    fn send_for(self: &Arc<Self>, reg: RegId, cmd: Cmd) {
        let uid = lock(&self.owner).get(&reg).copied();
        if let Some(uid) = uid {
            self.send(uid, cmd);
        }
    }
}

/// Closes files that must not be closed on a serving thread; cloneable, so
/// the SOCKET source can dispose of files too.
#[derive(Debug, Clone)]
pub struct Disposer {
    pool: Arc<Pool>,
}

impl Disposer {
    /// Hands `fd`, fetched for user `uid`, to that user's worker to be
    /// closed there (a close that hangs then stalls only that user).
    pub fn dispose_as(&self, uid: u32, fd: OwnedFd) {
        self.pool.send(uid, Cmd::Dispose(fd));
    }

    /// Hands `fd` (owner unknown) to the shared worker to be closed there.
    pub fn dispose(&self, fd: OwnedFd) {
        self.dispose_as(NOBODY_KNOWN, fd);
    }
}

/// The serving threads' side of the offload workers.
#[derive(Debug)]
pub struct Offload {
    pool: Arc<Pool>,
}

const TOKEN_WAKE: u64 = u64::MAX;

impl Offload {
    /// Prepares the workers (each started on its user's first use). Signals
    /// stay blocked in them: the daemon blocks them before any source
    /// exists.
    pub fn start() -> std::io::Result<Self> {
        let flags = EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK;
        let ready = Arc::new(eventfd(0, flags)?);
        let (rtx, rrx) = channel();
        Ok(Offload {
            pool: Arc::new(Pool {
                workers: Mutex::new(HashMap::new()),
                owner: Mutex::new(HashMap::new()),
                report_tx: Mutex::new(rtx),
                reports: Mutex::new(rrx),
                ready,
            }),
        })
    }

    /// A handle for other sources.
    pub fn disposer(&self) -> Disposer {
        Disposer {
            pool: self.pool.clone(),
        }
    }

    /// Watch `fd` for `reg` in the worker of user `uid`; readiness comes
    /// back as a [`Report`]. With `item_only` (the daemon's own device) the
    /// file is not kept open and a later MODIFY must come with the file
    /// again (another `add`, which replaces the watch).
    pub fn add(
        &self,
        reg: RegId,
        uid: u32,
        fd: OwnedFd,
        interest: epoll::EventFlags,
        item_only: bool,
    ) {
        let old = lock(&self.pool.owner).insert(reg, uid);
        if let Some(old) = old.filter(|o| *o != uid) {
            self.pool.send(old, Cmd::Remove { reg });
        }
        self.pool.send(
            uid,
            Cmd::Add {
                reg,
                fd,
                interest,
                item_only,
            },
        );
    }

    /// New interest for `reg` (a held file), re-checked at once by the
    /// kernel.
    pub fn modify(&self, reg: RegId, interest: epoll::EventFlags) {
        self.pool.send_for(reg, Cmd::Modify { reg, interest });
    }

    /// Stop watching `reg` and close its file (in its worker).
    pub fn remove(&self, reg: RegId) {
        self.pool.send_for(reg, Cmd::Remove { reg });
        lock(&self.pool.owner).remove(&reg);
    }

    /// Readable when reports wait.
    pub fn ready_fd(&self) -> BorrowedFd<'_> {
        self.pool.ready.as_fd()
    }

    /// Every report received so far.
    pub fn drain(&self) -> Vec<Report> {
        let mut b = [0u8; 8];
        let _ = rustix::io::read(&*self.pool.ready, &mut b);
        lock(&self.pool.reports).try_iter().collect()
    }
}

impl Drop for Offload {
    fn drop(&mut self) {
        for h in lock(&self.pool.workers).values() {
            h.send(Cmd::Quit);
        }
    }
}

struct Worker {
    uid: u32,
    pool: std::sync::Weak<Pool>,
    queued: Arc<AtomicUsize>,
    ep: OwnedFd,
    wake: Arc<OwnedFd>,
    ready: Arc<OwnedFd>,
    cmds: Receiver<Cmd>,
    reports: Sender<Report>,
    files: HashMap<RegId, Watched>,
    /// The epoll data of each live watch.
    tokens: HashMap<u64, RegId>,
    next_token: u64,
    /// Descriptor numbers under which live item-only watches were added.
    item_nums: HashMap<i32, usize>,
}

/// One watch of the offload thread.
struct Watched {
    token: u64,
    held: Held,
}

enum Held {
    /// The file, held until REMOVE.
    File(OwnedFd),
    /// Only the epoll item, added under this descriptor number.
    Item(i32),
}

/// A worker with nothing watched retires after this many idle milliseconds
/// (kept a moment so that a user's next POLL does not start a thread).
const IDLE_MS: i64 = 300;

/// At most this many descriptor numbers are tried for one item.
const ITEM_TRIES: usize = 16;

impl Worker {
    fn run(mut self) {
        let mut events = Vec::with_capacity(64);
        let idle = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: IDLE_MS * 1_000_000,
        };
        loop {
            events.clear();
            // With nothing watched, wake up after a while to retire.
            let timeout = self.files.is_empty().then_some(&idle);
            match epoll::wait(
                &self.ep,
                rustix::buffer::spare_capacity(&mut events),
                timeout,
            ) {
                Ok(0) if self.files.is_empty() && self.try_retire() => return self.quit(),
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    warn!("offload epoll_wait: {e}; the offload thread stops");
                    return self.quit();
                }
            }
            let mut out = Vec::new();
            let mut woken = false;
            for ev in &events {
                match ev.data.u64() {
                    TOKEN_WAKE => woken = true,
                    // A lingering item of a removed watch: dropped.
                    t => {
                        if let Some(&reg) = self.tokens.get(&t) {
                            out.push(Report::Fired {
                                reg,
                                revents: { ev.flags }.bits(),
                            });
                        }
                    }
                }
            }
            if woken {
                let mut b = [0u8; 8];
                let _ = rustix::io::read(&*self.wake, &mut b);
                loop {
                    match self.cmds.try_recv() {
                        Ok(cmd) => {
                            self.queued.fetch_sub(1, Ordering::SeqCst);
                            if matches!(cmd, Cmd::Quit) {
                                return self.quit();
                            }
                            self.command(cmd, &mut out);
                        }
                        Err(TryRecvError::Disconnected) => return self.quit(),
                        Err(TryRecvError::Empty) => break,
                    }
                }
            }
            if !out.is_empty() {
                for r in out {
                    if self.reports.send(r).is_err() {
                        return self.quit();
                    }
                }
                let _ = rustix::io::write(&*self.ready, &1u64.to_ne_bytes());
            }
        }
    }

    /// An idle worker (no watch for a moment, no command on its way) leaves the pool and
    /// ends, closing its epoll set and eventfd: the daemon's descriptors go
    /// back to what they were once a user has nothing watched. Senders only
    /// count a command in while holding the pool's lock, so none can slip
    /// in between the check and the removal.
    fn try_retire(&self) -> bool {
        let Some(pool) = self.pool.upgrade() else {
            return true;
        };
        let mut workers = lock(&pool.workers);
        if self.queued.load(Ordering::SeqCst) != 0 {
            return false;
        }
        workers.remove(&self.uid);
        true
    }

    fn command(&mut self, cmd: Cmd, out: &mut Vec<Report>) {
        match cmd {
            Cmd::Add {
                reg,
                fd,
                interest,
                item_only,
            } => {
                self.remove(reg);
                let token = self.next_token;
                self.next_token += 1;
                let flags = interest | epoll::EventFlags::ET;
                let added = if item_only {
                    self.add_item(fd, token, flags).map(Held::Item)
                } else {
                    let data = epoll::EventData::new_u64(token);
                    epoll::add(&self.ep, &fd, data, flags).map(|()| Held::File(fd))
                };
                match added {
                    Ok(held) => {
                        if let Held::Item(num) = held {
                            *self.item_nums.entry(num).or_default() += 1;
                        }
                        self.tokens.insert(token, reg);
                        self.files.insert(reg, Watched { token, held });
                    }
                    Err(e) => {
                        debug!("offload: watching {reg:?}: {e}");
                        // EPERM: the file has no poll method (docs/ABI.md §4: EINVAL).
                        let errno = match e {
                            rustix::io::Errno::PERM => Errno::EINVAL,
                            e => e.into(),
                        };
                        out.push(Report::Failed { reg, errno });
                    }
                }
            }
            Cmd::Modify { reg, interest } => {
                if let Some(Watched {
                    token,
                    held: Held::File(fd),
                }) = self.files.get(&reg)
                {
                    let data = epoll::EventData::new_u64(*token);
                    if let Err(e) =
                        epoll::modify(&self.ep, fd, data, interest | epoll::EventFlags::ET)
                    {
                        out.push(Report::Failed {
                            reg,
                            errno: e.into(),
                        });
                    }
                }
            }
            Cmd::Remove { reg } => self.remove(reg),
            Cmd::Dispose(fd) => drop(fd),
            Cmd::Quit => unreachable!("handled by run"),
        }
    }

    /// Forgets the watch of `reg`: a held file is taken out of the set and
    /// closed; an item lingers with its token forgotten (module doc).
    fn remove(&mut self, reg: RegId) {
        let Some(w) = self.files.remove(&reg) else {
            return;
        };
        self.tokens.remove(&w.token);
        match w.held {
            Held::File(fd) => {
                let _ = epoll::delete(&self.ep, &fd);
            }
            Held::Item(num) => {
                if let Some(n) = self.item_nums.get_mut(&num) {
                    *n -= 1;
                    if *n == 0 {
                        self.item_nums.remove(&num);
                    }
                }
            }
        }
    }

    /// Adds an epoll item for `fd` and closes every descriptor of it;
    /// returns the descriptor number the item is keyed under.
    fn add_item(
        &mut self,
        fd: OwnedFd,
        token: u64,
        flags: epoll::EventFlags,
    ) -> rustix::io::Result<i32> {
        let data = epoll::EventData::new_u64(token);
        let mut spare = Vec::new();
        let mut cur = fd;
        let mut result = Err(rustix::io::Errno::EXIST);
        for _ in 0..ITEM_TRIES {
            let num = cur.as_raw_fd();
            match epoll::add(&self.ep, &cur, data, flags) {
                Ok(()) => {
                    result = Ok(num);
                    break;
                }
                // A lingering item of this very file under this number.
                Err(rustix::io::Errno::EXIST) if !self.item_nums.contains_key(&num) => {
                    result = epoll::modify(&self.ep, &cur, data, flags).map(|()| num);
                    break;
                }
                Err(rustix::io::Errno::EXIST) => {
                    // A live watch may own that item: another number.
                    match rustix::io::fcntl_dupfd_cloexec(&cur, num + 1) {
                        Ok(next) => spare.push(std::mem::replace(&mut cur, next)),
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Closing sends FLUSH to the device's server (this daemon, whose
        // serving threads answer it); the item stays.
        drop(cur);
        drop(spare);
        result
    }

    fn quit(self) {
        // See "Shutdown" in the module doc: close nothing that may need the
        // (stopped) request loop to answer.
        let Worker { files, cmds, .. } = self;
        for (_, w) in files {
            if let Held::File(fd) = w.held {
                std::mem::forget(fd);
            }
        }
        for cmd in cmds.try_iter() {
            std::mem::forget(cmd);
        }
    }
}
