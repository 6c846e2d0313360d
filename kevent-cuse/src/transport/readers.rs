//! Serving threads: each reads requests from its fd and dispatches them
//! itself, against the shared [`Dispatcher`].
//!
//! * `single`: one reader on the channel (the only choice under CUSE, whose
//!   channel can be neither cloned nor put on io_uring). After a request it
//!   spins for at most `--spin-us` on non-blocking reads before it sleeps in
//!   poll(), so a caller that sends its next request at once skips a wakeup;
//!   idle, it costs no CPU.
//! * `percpu` (FUSE file): one clone of /dev/fuse per CPU
//!   (FUSE_DEV_IOC_CLONE), each read by a thread pinned to that CPU; a reply
//!   goes to the clone that read its request.
//! * `uring`: see `transport::uring` (a mode that hands each request's bytes
//!   to [`Dispatcher::handle`] with a [`crate::transport::reply::ReplySink`]
//!   of its own that sends through the ring).

use super::dispatch::Dispatcher;
use super::reply::Sink;
use super::stall;
use super::{Channel, READ_BUFFER};
use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};
use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// How requests are served (`--serve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeMode {
    /// One reader thread, spinning briefly before it sleeps.
    Single,
    /// One pinned reader per CPU on cloned /dev/fuse fds (FUSE file only).
    Percpu,
    /// FUSE-over-io_uring, one pinned ring per CPU (FUSE file only).
    Uring,
}

impl fmt::Display for ServeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServeMode::Single => "single",
            ServeMode::Percpu => "percpu",
            ServeMode::Uring => "uring",
        })
    }
}

/// What every serving thread shares: the stop flag and the eventfd that
/// wakes sleeping readers to see it.
#[derive(Clone)]
pub struct Stopper {
    flag: Arc<AtomicBool>,
    wake: Arc<OwnedFd>,
}

impl Stopper {
    /// A new, unset stopper.
    pub fn new() -> io::Result<Self> {
        Ok(Stopper {
            flag: Arc::new(AtomicBool::new(false)),
            wake: Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?),
        })
    }

    /// True once stopping.
    pub fn stopped(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }

    /// Tells every thread to stop (the eventfd stays readable).
    pub fn stop(&self) {
        self.flag.store(true, Ordering::Release);
        let _ = rustix::io::write(&*self.wake, &1u64.to_ne_bytes());
    }
}

/// The running serving threads.
pub struct Readers {
    stopper: Stopper,
    handles: Vec<JoinHandle<()>>,
    /// The mode, for the start-up line.
    pub mode: ServeMode,
}

impl Readers {
    /// An empty set (threads are added with [`Readers::spawn`]).
    pub fn new(mode: ServeMode) -> io::Result<Self> {
        Ok(Readers {
            stopper: Stopper::new()?,
            handles: Vec::new(),
            mode,
        })
    }

    /// Number of serving threads started.
    pub fn threads(&self) -> usize {
        self.handles.len()
    }

    /// The stopper shared by the threads.
    pub fn stopper(&self) -> &Stopper {
        &self.stopper
    }

    /// Starts a named thread running `f` (a serving thread of some mode).
    pub fn spawn(&mut self, name: String, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
        let h = std::thread::Builder::new().name(name).spawn(f)?;
        self.handles.push(h);
        Ok(())
    }

    /// Starts one reader on `channel` (the `single` mode).
    pub fn spawn_reader(
        &mut self,
        name: String,
        d: Arc<Dispatcher>,
        channel: Arc<Channel>,
        cpu: Option<usize>,
        spin: Duration,
    ) -> io::Result<()> {
        let h = spawn_reader_thread(ReaderArgs {
            name,
            d,
            channel,
            cpu,
            spin,
            stop: self.stopper.clone(),
        })?;
        self.handles.push(h);
        Ok(())
    }

    /// Stops the threads and waits at most `grace` for them; a thread stuck
    /// in a caller's memory is left behind (process exit ends it).
    pub fn stop(self, grace: Duration) {
        self.stopper.stop();
        let until = Instant::now() + grace;
        while Instant::now() < until && !self.handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(2));
        }
        let stuck = self.handles.iter().filter(|h| !h.is_finished()).count();
        if stuck > 0 {
            warn!("{stuck} serving thread(s) did not stop in {grace:?}; leaving them");
        }
        for h in self.handles {
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
}

/// Everything a reader thread needs (and its replacement, if the stall
/// watchdog abandons it).
#[derive(Clone)]
struct ReaderArgs {
    name: String,
    d: Arc<Dispatcher>,
    channel: Arc<Channel>,
    cpu: Option<usize>,
    spin: Duration,
    stop: Stopper,
}

fn spawn_reader_thread(args: ReaderArgs) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(args.name.clone())
        .spawn(move || {
            let again = args.clone();
            stall::set_role(Arc::new(move || {
                if let Err(e) = spawn_reader_thread(again.clone()) {
                    warn!("starting a replacement reader: {e}");
                }
            }));
            if let Some(cpu) = args.cpu {
                pin_to(cpu);
            }
            serve(&args.d, args.channel, args.spin, &args.stop)
        })
}

/// The CPUs this process may run on (its affinity mask), in order.
pub fn usable_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&c| set.is_set(c))
            .collect(),
        Err(_) => (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

/// Pins the calling thread to `cpu` (best effort).
pub fn pin_to(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
        debug!("pinning to CPU {cpu}: {e}");
    }
}

/// One reader's loop: read, dispatch, reply to the same fd; spin briefly,
/// then sleep in poll() until a request or the stopper.
pub fn serve(d: &Dispatcher, channel: Arc<Channel>, spin: Duration, stop: &Stopper) {
    let sink: Sink = channel.clone();
    let mut buf = vec![0u8; READ_BUFFER];
    let mut spin_until: Option<Instant> = None;
    while !stop.stopped() {
        match channel.read_request(&mut buf) {
            Ok(Some(n)) => {
                d.handle(&buf[..n], &sink, Instant::now());
                if d.destroyed() || stall::abandoned() {
                    return;
                }
                if !spin.is_zero() {
                    spin_until = Some(Instant::now() + spin);
                }
            }
            Ok(None) => {
                if spin_until.is_some_and(|t| Instant::now() < t) {
                    std::hint::spin_loop();
                    continue;
                }
                spin_until = None;
                let mut fds = [
                    PollFd::new(&*channel, PollFlags::IN),
                    PollFd::new(&*stop.wake, PollFlags::IN),
                ];
                match poll(&mut fds, None) {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(e) => {
                        warn!("poll on the channel: {e}");
                        d.disconnected();
                        return;
                    }
                }
            }
            Err(e) => {
                info!("channel closed: {e}");
                d.disconnected();
                return;
            }
        }
    }
}
