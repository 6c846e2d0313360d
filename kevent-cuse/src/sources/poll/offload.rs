//! The offload thread: the only place where the daemon polls, epolls or
//! closes a caller's file that a FUSE or CUSE server may have to answer for
//! ([`Reach::Userspace`](crate::sys::pidfd::Reach)) — above all this
//! daemon's own device (docs/WIRE.md, "Ordering pitfalls").
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

/// Sends commands; cloneable, so the SOCKET source can dispose of files too.
#[derive(Debug, Clone)]
pub struct Disposer {
    tx: Sender<Cmd>,
    wake: Arc<OwnedFd>,
}

impl Disposer {
    fn send(&self, cmd: Cmd) {
        if let Err(e) = self.tx.send(cmd) {
            // The thread is gone (shutdown): never close such a file here.
            std::mem::forget(e.0);
            return;
        }
        let _ = rustix::io::write(&*self.wake, &1u64.to_ne_bytes());
    }

    /// Hands `fd` to the offload thread to be closed there.
    pub fn dispose(&self, fd: OwnedFd) {
        self.send(Cmd::Dispose(fd));
    }
}

/// The request loop's side of the offload thread.
#[derive(Debug)]
pub struct Offload {
    cmds: Disposer,
    reports: Mutex<Receiver<Report>>,
    ready: Arc<OwnedFd>,
}

const TOKEN_WAKE: u64 = u64::MAX;

impl Offload {
    /// Starts the thread. Signals stay blocked in it: the daemon blocks them
    /// before any source exists.
    pub fn start() -> std::io::Result<Self> {
        let flags = EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK;
        let wake = Arc::new(eventfd(0, flags)?);
        let ready = Arc::new(eventfd(0, flags)?);
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        epoll::add(
            &ep,
            &*wake,
            epoll::EventData::new_u64(TOKEN_WAKE),
            epoll::EventFlags::IN,
        )?;
        let (tx, rx) = channel();
        let (rtx, rrx) = channel();
        let worker = Worker {
            ep,
            wake: wake.clone(),
            ready: ready.clone(),
            cmds: rx,
            reports: rtx,
            files: HashMap::new(),
            tokens: HashMap::new(),
            next_token: 1,
            item_nums: HashMap::new(),
        };
        std::thread::Builder::new()
            .name("kevent-offload".into())
            .spawn(move || worker.run())?;
        Ok(Offload {
            cmds: Disposer { tx, wake },
            reports: Mutex::new(rrx),
            ready,
        })
    }

    /// A handle for other sources.
    pub fn disposer(&self) -> Disposer {
        self.cmds.clone()
    }

    /// Watch `fd` for `reg`; readiness comes back as a [`Report`]. With
    /// `item_only` (the daemon's own device) the file is not kept open and
    /// a later MODIFY must come with the file again (another `add`).
    pub fn add(&self, reg: RegId, fd: OwnedFd, interest: epoll::EventFlags, item_only: bool) {
        self.cmds.send(Cmd::Add {
            reg,
            fd,
            interest,
            item_only,
        });
    }

    /// New interest for `reg` (a held file), re-checked at once by the
    /// kernel.
    pub fn modify(&self, reg: RegId, interest: epoll::EventFlags) {
        self.cmds.send(Cmd::Modify { reg, interest });
    }

    /// Stop watching `reg` and close its file (in the thread).
    pub fn remove(&self, reg: RegId) {
        self.cmds.send(Cmd::Remove { reg });
    }

    /// Readable when reports wait.
    pub fn ready_fd(&self) -> BorrowedFd<'_> {
        self.ready.as_fd()
    }

    /// Every report received so far.
    pub fn drain(&self) -> Vec<Report> {
        let mut b = [0u8; 8];
        let _ = rustix::io::read(&*self.ready, &mut b);
        let rx = self.reports.lock().unwrap_or_else(|e| e.into_inner());
        rx.try_iter().collect()
    }
}

impl Drop for Offload {
    fn drop(&mut self) {
        self.cmds.send(Cmd::Quit);
    }
}

struct Worker {
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

/// At most this many descriptor numbers are tried for one item.
const ITEM_TRIES: usize = 16;

impl Worker {
    fn run(mut self) {
        let mut events = Vec::with_capacity(64);
        loop {
            events.clear();
            match epoll::wait(&self.ep, rustix::buffer::spare_capacity(&mut events), None) {
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
                        Ok(Cmd::Quit) | Err(TryRecvError::Disconnected) => return self.quit(),
                        Ok(cmd) => self.command(cmd, &mut out),
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
