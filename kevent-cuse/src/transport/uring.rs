//! The `uring` serving mode of the FUSE file: FUSE-over-io_uring (kernel
//! 6.14+, `CONFIG_FUSE_IO_URING`, fuse module parameter `enable_uring`).
//!
//! * INIT stays on /dev/fuse; the reply asks for `FUSE_OVER_IO_URING` when
//!   the kernel offers it (see [`crate::transport::fuse_file`]).
//! * One queue per possible CPU (the kernel picks the queue by the CPU the
//!   caller runs on), each with its own ring and a ring thread pinned to
//!   that CPU. Each queue has [`Options::depth`] entries: a parked WAIT holds
//!   its entry until answered, so the depth bounds the WAITs parked from one
//!   CPU before a further request of that CPU waits for an entry.
//! * The kernel fills an entry in the task that last submitted it, so only
//!   the ring thread submits: replies from any thread are queued on the
//!   queue's commit list and the ring thread is woken through an eventfd
//!   that is read by the ring itself.
//! * A request is served on the ring thread when the handler says it cannot
//!   block ([`Handler::inline_ok`]); anything else (an INODE ADD resolving a
//!   path, which may re-enter the daemon's own mount and so need this very
//!   queue, or an access to a caller's memory that may stall) goes to the
//!   queue's worker thread, pinned to the same CPU.
//! * INTERRUPT, FORGET and poll notifications stay on /dev/fuse.
//! * The rings are registered before anyone is served (the kernel holds
//!   every request until each queue has an entry); if any queue fails, the
//!   caller falls back to another mode instead of limping on.

use crate::sys::fuse_uring::{Completion, FuseRing, Slot, WAKE_USER_DATA};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tracing::{debug, info, warn};

/// Where the answer to one request goes; one `send` is one complete
/// message (out-header + arguments), as written to /dev/fuse.
pub trait ReplySink: Send + Sync {
    /// Writes one complete reply.
    fn send(&self, msg: &[u8]);
}

/// A shared sink.
pub type Sink = Arc<dyn ReplySink>;

/// What serves the requests arriving on the rings.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request (the bytes read() on /dev/fuse would return);
    /// the answer goes to `sink`, now or later from any thread.
    fn handle(&self, req: &[u8], sink: &Sink);
    /// True if `req` can be served on the ring thread: it neither touches a
    /// caller's memory or descriptors nor resolves a path (nothing that can
    /// block or re-enter the daemon's own mount).
    fn inline_ok(&self, req: &[u8]) -> bool {
        let _ = req;
        false
    }
}

/// The module parameter that allows FUSE-over-io_uring at mount time.
pub const ENABLE_URING_PARAM: &str = "/sys/module/fuse/parameters/enable_uring";

/// Ring settings.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Entries per queue (parked WAITs from one CPU plus one in flight).
    pub depth: u32,
    /// Payload bytes per entry (at least the kernel's max payload).
    pub payload: usize,
    /// How long to wait for every queue to register.
    pub register_timeout: Duration,
}

/// Number of possible CPUs (`/sys/devices/system/cpu/possible`, e.g.
/// "0-3"): the kernel creates that many queues.
pub fn possible_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| parse_cpu_list(s.trim()))
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// Highest CPU number + 1 of a list like "0-3,5".
fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut max = None;
    for part in s.split(',') {
        let last = part.rsplit('-').next()?.trim().parse::<usize>().ok()?;
        max = Some(max.map_or(last, |m: usize| m.max(last)));
    }
    max.map(|m| m + 1)
}

/// One queue: its entries' buffers, who holds which request, and the
/// replies waiting to be committed by the ring thread.
struct Queue {
    qid: u16,
    slots: Vec<Mutex<Slot>>,
    /// Per entry: the unique id of the request it holds (0 = none).
    holds: Vec<AtomicU64>,
    /// Replies written into their slots, to be committed: (entry, unique).
    commits: Mutex<Vec<(u32, u64)>>,
    /// Wakes the ring thread (read by the ring).
    wake: OwnedFd,
    stop: AtomicBool,
    /// Stop even with requests held (their callers get ECONNABORTED when
    /// the connection closes).
    give_up: AtomicBool,
}

thread_local! {
    /// The queue whose ring thread this is (None on other threads).
    static RING_OF: std::cell::Cell<Option<u16>> = const { std::cell::Cell::new(None) };
}

impl Queue {
    fn kick(&self) {
        if RING_OF.with(|r| r.get()) == Some(self.qid) {
            return; // the ring thread commits before it sleeps again
        }
        self.kick_any();
    }

    fn kick_any(&self) {
        if let Err(e) = rustix::io::write(&self.wake, &1u64.to_ne_bytes()) {
            if e != rustix::io::Errno::AGAIN {
                warn!("uring queue {}: waking the ring thread: {e}", self.qid);
            }
        }
    }
}

/// The reply sink of one entry.
struct EntrySink {
    q: Arc<Queue>,
    idx: u32,
}

impl ReplySink for EntrySink {
    fn send(&self, msg: &[u8]) {
        if msg.len() < 16 {
            warn!("uring queue {}: short reply dropped", self.q.qid);
            return;
        }
        let unique = u64::from_le_bytes(msg[8..16].try_into().expect("8 bytes"));
        // Exactly one answer per request held by this entry.
        if self.q.holds[self.idx as usize]
            .compare_exchange(unique, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
            || unique == 0
        {
            warn!(
                "uring queue {} entry {}: reply to u={unique} it does not hold; dropped",
                self.q.qid, self.idx
            );
            return;
        }
        {
            let mut slot = self.q.slots[self.idx as usize]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if !slot.put_reply(msg) {
                warn!(
                    "uring queue {}: u={unique}: reply of {} bytes does not fit the entry; EIO",
                    self.q.qid,
                    msg.len()
                );
                let eio = kevent_protocol::fuse::reply_error(unique, libc::EIO);
                slot.put_reply(&eio);
            }
        }
        self.q
            .commits
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((self.idx, unique));
        self.q.kick();
    }
}

/// The running rings of one FUSE connection.
pub struct UringServer {
    queues: Vec<Arc<Queue>>,
    pools: Vec<Arc<Pool>>,
    threads: Vec<JoinHandle<()>>,
}

/// Why the rings could not be set up (the caller falls back).
#[derive(Debug, thiserror::Error)]
pub enum UringError {
    /// A queue failed to create its ring or to register an entry.
    #[error("queue {qid}: {what}: {source}")]
    Queue {
        /// The queue.
        qid: u16,
        /// What failed.
        what: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A queue did not report in time.
    #[error("the io_uring queues did not register within {0:?}")]
    Timeout(Duration),
}

type Ready = mpsc::Sender<(u16, Result<(), (&'static str, io::Error)>)>;

impl UringServer {
    /// Starts one pinned ring thread (and worker) per possible CPU on
    /// `fuse` (whose INIT agreed on io_uring) and returns once every queue
    /// has registered all its entries.
    ///
    /// On error every ring thread is stopped again and the connection is
    /// left to /dev/fuse: a failed REGISTER makes the kernel drop io_uring
    /// for the connection (and release the requests it holds); where a
    /// queue failed before registering anything, a REGISTER for a queue
    /// that does not exist is sent on purpose to get the same. The caller
    /// then serves the connection another way.
    pub fn start<F>(
        fuse: Arc<F>,
        handler: Arc<dyn Handler>,
        opts: Options,
    ) -> Result<Self, UringError>
    where
        F: AsFd + Send + Sync + 'static,
    {
        let n = possible_cpus();
        let mut server = UringServer {
            queues: Vec::with_capacity(n),
            pools: Vec::with_capacity(n),
            threads: Vec::new(),
        };
        let result = server.spawn_all(&fuse, &handler, opts, n);
        if let Err(e) = result {
            let registered = matches!(
                e,
                UringError::Queue {
                    what: "REGISTER",
                    ..
                }
            );
            server.abandon();
            if !registered {
                poison(fuse.as_fd(), opts.payload);
            }
            return Err(e);
        }
        info!(
            "FUSE-over-io_uring: {n} queue(s) of {} entries registered, one pinned ring thread per CPU",
            opts.depth
        );
        Ok(server)
    }

    fn spawn_all<F>(
        &mut self,
        fuse: &Arc<F>,
        handler: &Arc<dyn Handler>,
        opts: Options,
        n: usize,
    ) -> Result<(), UringError>
    where
        F: AsFd + Send + Sync + 'static,
    {
        let server = self;
        let (tx, rx) = mpsc::channel();
        for cpu in 0..n {
            let qid = cpu as u16;
            let wake = rustix::event::eventfd(
                0,
                rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
            )
            .map_err(|e| UringError::Queue {
                qid,
                what: "eventfd",
                source: e.into(),
            })?;
            let q = Arc::new(Queue {
                qid,
                slots: Slot::many(opts.depth as usize, opts.payload)
                    .map_err(|e| UringError::Queue {
                        qid,
                        what: "mapping the entry buffers",
                        source: e,
                    })?
                    .into_iter()
                    .map(Mutex::new)
                    .collect(),
                holds: (0..opts.depth).map(|_| AtomicU64::new(0)).collect(),
                commits: Mutex::new(Vec::new()),
                wake,
                stop: AtomicBool::new(false),
                give_up: AtomicBool::new(false),
            });
            server.queues.push(q.clone());
            let sinks: Arc<Vec<Sink>> = Arc::new(
                (0..opts.depth)
                    .map(|idx| Arc::new(EntrySink { q: q.clone(), idx }) as Sink)
                    .collect(),
            );
            let pool = Arc::new(Pool {
                cpu,
                jobs: Mutex::new(std::collections::VecDeque::new()),
                cond: std::sync::Condvar::new(),
                idle: AtomicUsize::new(0),
                workers: AtomicUsize::new(0),
                max: opts.depth as usize,
                handler: handler.clone(),
                sinks: sinks.clone(),
                stop: AtomicBool::new(false),
            });
            server.pools.push(pool.clone());
            pool.spawn().map_err(|e| UringError::Queue {
                qid,
                what: "spawning the worker thread",
                source: e,
            })?;
            let fuse = fuse.clone();
            let handler = handler.clone();
            let tx = tx.clone();
            let t = std::thread::Builder::new()
                .name(format!("uring-{cpu}"))
                .spawn(move || ring_thread(cpu, q, fuse, handler, sinks, pool, tx))
                .map_err(|e| UringError::Queue {
                    qid,
                    what: "spawning the ring thread",
                    source: e,
                })?;
            server.threads.push(t);
        }
        drop(tx);
        // Every queue reports; the first failure (a REGISTER failure first:
        // it decides how the kernel is left) is what counts.
        let deadline = std::time::Instant::now() + opts.register_timeout;
        let mut failure: Option<UringError> = None;
        for _ in 0..n {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok((_, Ok(()))) => {}
                Ok((qid, Err((what, source)))) => {
                    let e = UringError::Queue { qid, what, source };
                    if what == "REGISTER" || failure.is_none() {
                        failure = Some(e);
                    }
                }
                Err(_) => {
                    return Err(failure.unwrap_or(UringError::Timeout(opts.register_timeout)));
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Stops every ring thread at once, requests held or not.
    fn abandon(&mut self) {
        for q in &self.queues {
            q.give_up.store(true, Ordering::Release);
        }
        self.stop();
    }

    /// Asks every ring thread to stop once the requests its entries hold
    /// are answered. Ring threads also end by themselves when the
    /// connection goes away (every entry completes with ENOTCONN).
    pub fn stop(&mut self) {
        for q in &self.queues {
            q.stop.store(true, Ordering::Release);
            q.kick_any();
        }
        for p in &self.pools {
            p.stop();
        }
    }

    /// Stops and waits for the ring threads, at most `grace` for requests
    /// still being answered. Worker threads are not waited for (one may be
    /// stuck in a caller's memory); they end with the process.
    pub fn join(mut self, grace: Duration) {
        self.stop();
        let deadline = std::time::Instant::now() + grace;
        let mut give_up = false;
        for t in self.threads.drain(..) {
            if t.thread()
                .name()
                .is_some_and(|n| n.starts_with("uring-work"))
            {
                continue;
            }
            while !t.is_finished() {
                if !give_up && std::time::Instant::now() >= deadline {
                    give_up = true;
                    warn!(
                        "uring: requests still held at shutdown after {grace:?}; abandoning them"
                    );
                    for q in &self.queues {
                        q.give_up.store(true, Ordering::Release);
                        q.kick_any();
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = t.join();
        }
    }
}

/// Sends a REGISTER for a queue that does not exist, which makes the kernel
/// drop io_uring for the connection and release the requests it holds
/// waiting for the rings (used when a queue failed before registering).
fn poison(fd: BorrowedFd<'_>, payload: usize) {
    let r = (|| -> io::Result<i32> {
        let slots = Slot::many(1, payload)?;
        let mut ring = FuseRing::new(fd, u16::MAX, 1)?;
        ring.register(0, &slots[0])?;
        ring.submit_and_wait(1)?;
        let mut done = Vec::new();
        ring.completions(&mut done);
        Ok(done.first().map_or(0, |c| c.result))
    })();
    match r {
        Ok(res) if res < 0 => debug!(
            "uring: io_uring dropped for the connection ({})",
            io::Error::from_raw_os_error(-res)
        ),
        Ok(_) => warn!("uring: the kernel accepted a REGISTER for no queue"),
        Err(e) => warn!("uring: could not make the kernel drop io_uring for the connection: {e}"),
    }
}

fn pin_to(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    let pinned = set
        .set(cpu)
        .and_then(|_| nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set));
    if let Err(e) = pinned {
        // An offline CPU: its queue is served from wherever we run.
        debug!("pinning to CPU {cpu}: {e}");
    }
}

/// The worker threads of one queue, for requests that may block. One at
/// start; another is started whenever a request finds none idle (one stuck
/// in a caller's memory must not hold up the others of its CPU), up to the
/// queue's depth.
struct Pool {
    cpu: usize,
    jobs: Mutex<std::collections::VecDeque<(Vec<u8>, u32)>>,
    cond: std::sync::Condvar,
    idle: AtomicUsize,
    workers: AtomicUsize,
    max: usize,
    handler: Arc<dyn Handler>,
    sinks: Arc<Vec<Sink>>,
    /// Idle workers end (one busy in a caller's memory ends when it returns).
    stop: AtomicBool,
}

impl Pool {
    fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let _guard = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        self.cond.notify_all();
    }

    fn spawn(self: &Arc<Self>) -> io::Result<()> {
        let n = self.workers.fetch_add(1, Ordering::AcqRel);
        let me = self.clone();
        let r = std::thread::Builder::new()
            .name(format!("uring-work-{}", self.cpu))
            .spawn(move || me.run());
        if r.is_err() {
            self.workers.fetch_sub(1, Ordering::AcqRel);
        } else if n > 0 {
            debug!("uring queue {}: worker {} started", self.cpu, n + 1);
        }
        r.map(drop)
    }

    /// Hands a request to a worker (a new one if none is idle).
    fn push(self: &Arc<Self>, req: Vec<u8>, idx: u32) {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back((req, idx));
        if self.idle.load(Ordering::Acquire) == 0 && self.workers.load(Ordering::Acquire) < self.max
        {
            if let Err(e) = self.spawn() {
                warn!("uring queue {}: starting a worker: {e}", self.cpu);
            }
        }
        self.cond.notify_one();
    }

    fn run(&self) {
        pin_to(self.cpu);
        loop {
            let job = {
                let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(j) = jobs.pop_front() {
                        break j;
                    }
                    if self.stop.load(Ordering::Acquire) {
                        return;
                    }
                    self.idle.fetch_add(1, Ordering::AcqRel);
                    jobs = self.cond.wait(jobs).unwrap_or_else(|e| e.into_inner());
                    self.idle.fetch_sub(1, Ordering::AcqRel);
                }
            };
            self.handler.handle(&job.0, &self.sinks[job.1 as usize]);
        }
    }
}

fn ring_thread<F: AsFd>(
    cpu: usize,
    q: Arc<Queue>,
    fuse: Arc<F>,
    handler: Arc<dyn Handler>,
    sinks: Arc<Vec<Sink>>,
    pool: Arc<Pool>,
    ready: Ready,
) {
    pin_to(cpu);
    RING_OF.with(|r| r.set(Some(q.qid)));
    let depth = q.slots.len() as u32;
    let mut ring = match setup(&q, fuse.as_fd(), depth) {
        Ok(r) => r,
        Err((what, e)) => {
            let _ = ready.send((q.qid, Err((what, e))));
            return;
        }
    };
    let _ = ready.send((q.qid, Ok(())));
    drop(ready);
    serve(&q, &mut ring, &*handler, &sinks, &pool);
    debug!("uring queue {}: ring thread done", q.qid);
}

/// Creates the ring and registers every entry; an error names the step.
fn setup(q: &Queue, fd: BorrowedFd<'_>, depth: u32) -> Result<FuseRing, (&'static str, io::Error)> {
    let mut ring = FuseRing::new(fd, q.qid, depth).map_err(|e| ("creating the io_uring", e))?;
    ring.arm_wake(q.wake.as_fd())
        .map_err(|e| ("queueing the wake-up read", e))?;
    for (idx, slot) in q.slots.iter().enumerate() {
        let slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        ring.register(idx as u64, &slot)
            .map_err(|e| ("queueing REGISTER", e))?;
    }
    ring.submit_and_wait(0)
        .map_err(|e| ("submitting REGISTER", e))?;
    // A REGISTER that fails completes at once; a good one only when a
    // request arrives.
    let mut done = Vec::new();
    ring.completions(&mut done);
    for c in &done {
        if c.user_data != WAKE_USER_DATA && c.result < 0 {
            return Err(("REGISTER", io::Error::from_raw_os_error(-c.result)));
        }
    }
    if !done.is_empty() {
        // Completions of a successful REGISTER are requests: cannot happen
        // before the rings are ready, but never lose one.
        warn!("uring queue {}: completion during registration", q.qid);
    }
    Ok(ring)
}

fn serve(q: &Queue, ring: &mut FuseRing, handler: &dyn Handler, sinks: &[Sink], pool: &Arc<Pool>) {
    let depth = q.slots.len();
    let mut dead = vec![false; depth];
    let mut ndead = 0;
    let mut cqes: Vec<Completion> = Vec::with_capacity(depth + 1);
    let mut commits: Vec<(u32, u64)> = Vec::new();
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        std::mem::swap(
            &mut commits,
            &mut q.commits.lock().unwrap_or_else(|e| e.into_inner()),
        );
        for &(idx, unique) in &commits {
            if let Err(e) = ring.commit(idx as u64, unique) {
                warn!("uring queue {}: queueing a commit: {e}", q.qid);
            }
        }
        commits.clear();
        if ndead == depth {
            return;
        }
        if q.stop.load(Ordering::Acquire) {
            // Shutting down: hand in the last answers, then leave once no
            // entry holds a request (or the caller gave up waiting). Dropping
            // the ring cancels the entries still registered.
            if !any_held(q) || q.give_up.load(Ordering::Acquire) {
                if let Err(e) = ring.submit_and_wait(0) {
                    debug!("uring queue {}: last submit: {e}", q.qid);
                }
                return;
            }
        }
        if let Err(e) = ring.submit_and_wait(1) {
            warn!(
                "uring queue {}: io_uring_enter: {e}; ring thread stops",
                q.qid
            );
            return;
        }
        ring.completions(&mut cqes);
        for c in &cqes {
            if c.user_data == WAKE_USER_DATA {
                if let Err(e) = ring.arm_wake(q.wake.as_fd()) {
                    warn!("uring queue {}: re-arming the wake-up: {e}", q.qid);
                }
                continue;
            }
            let idx = c.user_data as usize;
            if idx >= depth {
                continue;
            }
            if c.result < 0 {
                if !dead[idx] {
                    dead[idx] = true;
                    ndead += 1;
                }
                if c.result != -libc::ENOTCONN && c.result != -libc::ECANCELED {
                    warn!(
                        "uring queue {} entry {idx}: {}",
                        q.qid,
                        io::Error::from_raw_os_error(-c.result)
                    );
                }
                continue;
            }
            let unique = {
                let slot = q.slots[idx].lock().unwrap_or_else(|e| e.into_inner());
                slot.request_bytes(&mut buf)
            };
            let Some(unique) = unique else {
                warn!(
                    "uring queue {} entry {idx}: undecodable request; entry dropped",
                    q.qid
                );
                continue;
            };
            q.holds[idx].store(unique, Ordering::Release);
            if handler.inline_ok(&buf) {
                handler.handle(&buf, &sinks[idx]);
            } else {
                pool.push(buf.clone(), idx as u32);
            }
        }
    }
}

fn any_held(q: &Queue) -> bool {
    q.holds.iter().any(|h| h.load(Ordering::Acquire) != 0)
}

/// The `enable_uring` module parameter around a mount: switched on if it
/// was off (and allowed to), and put back as it was by [`restore`](Self::restore)
/// or on drop. The kernel only reads it when a connection is set up: once
/// INIT agreed on io_uring, the connection keeps it after the restore.
#[derive(Debug)]
pub struct EnableUring {
    path: std::path::PathBuf,
    /// Some(old value) when we changed it.
    saved: Option<String>,
}

impl EnableUring {
    /// Makes sure the parameter is on. `switch`: may write it. Err names why
    /// FUSE-over-io_uring cannot be used.
    pub fn prepare(switch: bool) -> Result<Self, String> {
        Self::prepare_at(std::path::Path::new(ENABLE_URING_PARAM), switch)
    }

    fn prepare_at(path: &std::path::Path, switch: bool) -> Result<Self, String> {
        let cur = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "no {} ({e}): the kernel has no FUSE-over-io_uring (needs 6.14+ with CONFIG_FUSE_IO_URING)",
                path.display()
            )
        })?;
        let cur = cur.trim().to_string();
        if cur == "Y" || cur == "1" {
            return Ok(EnableUring {
                path: path.to_path_buf(),
                saved: None,
            });
        }
        if !switch {
            return Err(format!(
                "{} is {cur} and --uring-param keep forbids switching it",
                path.display()
            ));
        }
        std::fs::write(path, "Y")
            .map_err(|e| format!("{} is {cur} and cannot be switched on: {e}", path.display()))?;
        info!(
            "switched {} on (was {cur}) to set up FUSE-over-io_uring; it is put back once the rings are registered",
            path.display()
        );
        Ok(EnableUring {
            path: path.to_path_buf(),
            saved: Some(cur),
        })
    }

    /// Checks that this process can create io_uring rings at all (before
    /// anything is mounted: a mount that agreed on io_uring holds every
    /// request until the rings exist).
    pub fn probe_rings() -> Result<(), String> {
        FuseRing::probe().map_err(|e| format!("io_uring is not available to the daemon: {e}"))
    }

    /// Puts the parameter back if we changed it.
    pub fn restore(&mut self) {
        if let Some(old) = self.saved.take() {
            match std::fs::write(&self.path, &old) {
                Ok(()) => info!("restored {} to {old}", self.path.display()),
                Err(e) => warn!("restoring {} to {old}: {e}", self.path.display()),
            }
        }
    }
}

impl Drop for EnableUring {
    fn drop(&mut self) {
        self.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_cpu_list, EnableUring};

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-1"), Some(2));
        assert_eq!(parse_cpu_list("0-3,5"), Some(6));
        assert_eq!(parse_cpu_list("0,2-7"), Some(8));
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn parameter_switched_and_restored() {
        let dir = std::env::temp_dir().join(format!("kevent-uring-param-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("enable_uring");
        std::fs::write(&p, "N\n").unwrap();
        let e = EnableUring::prepare_at(&p, false).unwrap_err();
        assert!(e.contains("keep"), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "N\n");
        {
            let _g = EnableUring::prepare_at(&p, true).unwrap();
            assert_eq!(std::fs::read_to_string(&p).unwrap(), "Y");
        }
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "N");
        std::fs::write(&p, "Y\n").unwrap();
        drop(EnableUring::prepare_at(&p, false).unwrap());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "Y\n");
        let missing = EnableUring::prepare_at(&dir.join("absent"), true).unwrap_err();
        assert!(missing.contains("6.14"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
