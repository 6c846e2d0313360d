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
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use tracing::{debug, warn};

/// A request to the offload thread.
#[derive(Debug)]
enum Cmd {
    /// Watch `fd` for `reg` (edge-triggered) and hold it until `Remove`.
    Add {
        reg: RegId,
        fd: OwnedFd,
        interest: epoll::EventFlags,
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

    /// Watch `fd` for `reg`; readiness comes back as a [`Report`].
    pub fn add(&self, reg: RegId, fd: OwnedFd, interest: epoll::EventFlags) {
        self.cmds.send(Cmd::Add { reg, fd, interest });
    }

    /// New interest for `reg`, re-checked at once by the kernel.
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
    files: HashMap<RegId, OwnedFd>,
}

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
                    r => out.push(Report::Fired {
                        reg: RegId(r),
                        revents: { ev.flags }.bits(),
                    }),
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
            Cmd::Add { reg, fd, interest } => {
                let data = epoll::EventData::new_u64(reg.0);
                match epoll::add(&self.ep, &fd, data, interest | epoll::EventFlags::ET) {
                    Ok(()) => {
                        self.files.insert(reg, fd);
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
                if let Some(fd) = self.files.get(&reg) {
                    let data = epoll::EventData::new_u64(reg.0);
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
            Cmd::Remove { reg } => {
                if let Some(fd) = self.files.remove(&reg) {
                    let _ = epoll::delete(&self.ep, &fd);
                    drop(fd);
                }
            }
            Cmd::Dispose(fd) => drop(fd),
            Cmd::Quit => unreachable!("handled by run"),
        }
    }

    fn quit(self) {
        // See "Shutdown" in the module doc: close nothing that may need the
        // (stopped) request loop to answer.
        let Worker { files, cmds, .. } = self;
        for (_, fd) in files {
            std::mem::forget(fd);
        }
        for cmd in cmds.try_iter() {
            std::mem::forget(cmd);
        }
    }
}
