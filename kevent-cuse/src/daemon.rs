//! Start-up and shutdown around the reactor: privileges, descriptor limits,
//! signals, choosing the transport, readiness notification.

use crate::core::{Core, Limits};
use crate::reactor::{self, Exit};
use crate::sources::{build_all, SourceCtx};
use crate::sys::pidfd::OwnDevice;
use crate::sys::remote_mem::ProcessVm;
use crate::transport::access::{Access, NodeAttrs};
use crate::transport::dispatch::{Config, Dispatcher};
use crate::transport::readers::{Readers, ServeMode};
use crate::transport::stall;
use crate::transport::uring::{self, UringServer};
use crate::transport::{cuse, fuse_file, Served, SetupError, TransportKind};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::Duration;
use tracing::{info, warn};

/// Which transport to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// CUSE when `/dev/cuse` opens (after `modprobe cuse`), else the FUSE file.
    Auto,
    /// CUSE only.
    Cuse,
    /// The FUSE file only.
    Fuse,
}

/// How requests are served (`--serve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeChoice {
    /// percpu on the FUSE file, single under CUSE.
    Auto,
    /// One reader thread.
    Single,
    /// One pinned reader per CPU on cloned /dev/fuse fds (FUSE file only).
    Percpu,
    /// FUSE-over-io_uring, one pinned ring per possible CPU (FUSE file
    /// only); percpu where the kernel or the parameter does not allow it.
    Uring,
}

/// Daemon settings (from the command line).
#[derive(Debug, Clone)]
pub struct Options {
    /// Transport choice.
    pub transport: Choice,
    /// Device name (`/dev/NAME` under CUSE).
    pub name: String,
    /// FUSE mount file (default `/dev/NAME`).
    pub path: Option<PathBuf>,
    /// Permission bits of the node.
    pub mode: u32,
    /// Per-queue limit of registered kevents.
    pub max_kevents: u32,
    /// Serving mode.
    pub serve: ServeChoice,
    /// How long a reader spins on non-blocking reads before it sleeps.
    pub spin: Duration,
    /// `uring`: may switch the fuse module parameter `enable_uring` on.
    pub uring_switch: bool,
    /// `uring`: entries per queue (WAITs parked from one CPU at once).
    pub uring_depth: u32,
    /// A caller-memory access older than this is abandoned.
    pub stall: Duration,
    /// Stuck accesses allowed per uid before its requests get EAGAIN.
    pub max_stalled: usize,
    /// Owner uid of the node.
    pub owner: u32,
    /// Group gid of the node.
    pub group: u32,
    /// Queues per uid (0: unlimited).
    pub user_queues: u32,
    /// Registered kevents per uid (0: unlimited).
    pub user_kevents: u32,
    /// Daemon descriptors per uid (0: as many as the descriptor budget
    /// allows one user).
    pub user_descriptors: u32,
}

impl Options {
    /// Defaults for everything but the transport choice.
    pub fn new(transport: Choice) -> Self {
        Options {
            transport,
            name: "kevent".into(),
            path: None,
            mode: 0o666,
            max_kevents: 1023,
            owner: 0,
            group: 0,
            user_queues: Limits::DEFAULT_QUEUES,
            user_kevents: Limits::DEFAULT_KEVENTS,
            user_descriptors: Limits::DEFAULT_DESCRIPTORS,
            serve: ServeChoice::Auto,
            spin: Duration::from_micros(50),
            uring_switch: true,
            uring_depth: 256,
            stall: Duration::from_millis(200),
            max_stalled: 4,
        }
    }

    fn attrs(&self) -> NodeAttrs {
        NodeAttrs {
            mode: self.mode,
            uid: self.owner,
            gid: self.group,
        }
    }
}

/// Why the daemon refused to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Not root.
    #[error("kevent-cuse must run as root: it creates the device (CUSE or a FUSE mount) and reads and writes its callers' memory (process_vm_readv); effective uid is {0}")]
    NotRoot(u32),
    /// Bad option.
    #[error("{0}")]
    BadOption(String),
    /// CUSE was demanded but is not available.
    #[error("CUSE is not available: opening /dev/cuse failed ({0}); the kernel needs CONFIG_CUSE (try `modprobe cuse`) or use --transport fuse")]
    NoCuse(std::io::Error),
    /// Device setup failed.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// A source could not be set up.
    #[error("{0} source: {1}")]
    Source(&'static str, std::io::Error),
    /// Other system errors.
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
}

fn validate(opts: &Options) -> Result<(), StartError> {
    if opts.name.is_empty() || opts.name.contains('/') || opts.name == "." || opts.name == ".." {
        return Err(StartError::BadOption(format!(
            "--name {:?}: a device name is one path component",
            opts.name
        )));
    }
    if opts.mode > 0o777 {
        return Err(StartError::BadOption(format!(
            "--mode {:o}: only permission bits (at most 0777) are allowed",
            opts.mode
        )));
    }
    if opts.max_kevents == 0 {
        return Err(StartError::BadOption(
            "--max-kevents must be at least 1".into(),
        ));
    }
    if opts.serve == ServeChoice::Uring && opts.transport == Choice::Cuse {
        return Err(StartError::BadOption(
            "--serve uring needs the FUSE-file transport (a CUSE connection does not negotiate io_uring)"
                .into(),
        ));
    }
    if opts.uring_depth == 0 {
        return Err(StartError::BadOption(
            "--uring-depth must be at least 1".into(),
        ));
    }
    Ok(())
}

/// Raises the descriptor limit as far as the kernel allows (fs.nr_open;
/// root may raise the hard limit too): kevents hold daemon descriptors on
/// their users' behalf. Returns the soft limit in force.
fn raise_nofile() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let target = nr_open.map_or(hard, |n| n.max(hard));
    let mut now = soft;
    for want in [target, hard] {
        if want <= now {
            break;
        }
        match setrlimit(Resource::RLIMIT_NOFILE, want, want.max(hard)) {
            Ok(()) => {
                now = want;
                break;
            }
            Err(e) => info!("cannot raise RLIMIT_NOFILE to {want}: {e}"),
        }
    }
    info!(
        "descriptor limit: {now} (was soft {soft}, hard {hard}; fs.nr_open {})",
        nr_open.map_or("unknown".into(), |n| n.to_string())
    );
    now
}

fn show_limit(n: u32) -> String {
    if n == 0 {
        "unlimited".into()
    } else {
        n.to_string()
    }
}

fn setup_transport(opts: &Options, want_uring: bool) -> Result<Served, StartError> {
    let fuse_path = || {
        opts.path
            .clone()
            .unwrap_or_else(|| PathBuf::from("/dev").join(&opts.name))
    };
    match opts.transport {
        Choice::Fuse => Ok(fuse_file::serve_with(
            &fuse_path(),
            opts.attrs(),
            want_uring,
        )?),
        Choice::Cuse => {
            let fd = cuse::open_channel().or_else(|_| {
                modprobe_cuse();
                cuse::open_channel()
            });
            Ok(cuse::serve(
                fd.map_err(StartError::NoCuse)?,
                &opts.name,
                opts.attrs(),
            )?)
        }
        Choice::Auto => {
            let fd = cuse::open_channel().or_else(|_| {
                modprobe_cuse();
                cuse::open_channel()
            });
            match fd {
                Ok(fd) => Ok(cuse::serve(fd, &opts.name, opts.attrs())?),
                Err(e) => {
                    info!("no CUSE ({e}); using the FUSE-file transport");
                    Ok(fuse_file::serve_with(
                        &fuse_path(),
                        opts.attrs(),
                        want_uring,
                    )?)
                }
            }
        }
    }
}

fn modprobe_cuse() {
    // Best effort: the module may be built in, absent, or modprobe missing.
    let _ = std::process::Command::new("modprobe")
        .arg("cuse")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// Tells systemd (Type=notify) that the device is ready.
fn notify_ready(served: &Served) {
    let Some(sock) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let sock = sock.to_string_lossy().into_owned();
    let addr = if let Some(name) = sock.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(name.as_bytes())
    } else {
        SocketAddr::from_pathname(&sock)
    };
    let msg = format!(
        "READY=1\nSTATUS=serving {} over {}",
        served.node.display(),
        served.kind
    );
    let sent = addr.and_then(|a| UnixDatagram::unbound()?.send_to_addr(msg.as_bytes(), &a));
    if let Err(e) = sent {
        warn!("sd_notify to {sock}: {e}");
    }
}

/// The event thread (reactor): replaced like a serving thread if the stall
/// watchdog finds it stuck in a caller's memory; the live one reports the
/// exit reason.
fn spawn_event_thread(
    sigfd: Arc<SignalFd>,
    d: Arc<Dispatcher>,
    tx: mpsc::Sender<std::io::Result<Exit>>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("kevent-events".into())
        .spawn(move || {
            let (s2, d2, tx2) = (sigfd.clone(), d.clone(), tx.clone());
            stall::set_role(Arc::new(move || {
                if let Err(e) = spawn_event_thread(s2.clone(), d2.clone(), tx2.clone()) {
                    warn!("starting a replacement event thread: {e}");
                }
            }));
            let r = reactor::run(sigfd.as_fd(), &d);
            if !stall::abandoned() {
                let _ = tx.send(r);
            }
        })?;
    Ok(())
}

/// Starts the serving threads of the chosen mode (and the rings in `uring`
/// mode, where the readers are the one /dev/fuse reader for INTERRUPT and
/// FORGET). `uring_unusable`: why `uring` falls back to percpu.
fn start_serving(
    opts: &Options,
    served: &Served,
    d: &Arc<Dispatcher>,
    uring_unusable: Option<String>,
) -> Result<(Readers, Option<UringServer>), StartError> {
    let cuse = served.kind == TransportKind::Cuse;
    if opts.serve == ServeChoice::Uring {
        if cuse {
            return Err(StartError::BadOption(
                "--serve uring needs the FUSE-file transport (a CUSE connection does not negotiate io_uring)"
                    .into(),
            ));
        }
        let io = |e| StartError::Io("starting the serving threads", e);
        let why = match uring_unusable {
            Some(why) => why,
            None if !served.io_uring => {
                "the kernel did not offer FUSE-over-io_uring at INIT".to_string()
            }
            None => match start_uring(opts, served, d) {
                Ok(pair) => return Ok(pair),
                Err(e) => format!("setting up the rings failed: {e}"),
            },
        };
        warn!("cannot serve over FUSE-over-io_uring ({why}); falling back to percpu");
        return start_percpu(opts, served, d).map(|r| (r, None)).map_err(io);
    }
    let mode =
        match opts.serve {
            ServeChoice::Uring => unreachable!("handled above"),
            ServeChoice::Single => ServeMode::Single,
            ServeChoice::Auto if cuse => ServeMode::Single,
            ServeChoice::Auto => ServeMode::Percpu,
            ServeChoice::Percpu if cuse => return Err(StartError::BadOption(
                "--serve percpu needs the FUSE-file transport (a CUSE channel cannot be cloned)"
                    .into(),
            )),
            ServeChoice::Percpu => ServeMode::Percpu,
        };
    let io = |e| StartError::Io("starting the serving threads", e);
    match mode {
        ServeMode::Percpu => match start_percpu(opts, served, d) {
            Ok(r) => return Ok((r, None)),
            Err(e) if opts.serve == ServeChoice::Auto => {
                warn!("percpu serving unavailable ({e}); serving with one reader")
            }
            Err(e) => return Err(io(e)),
        },
        ServeMode::Single | ServeMode::Uring => {}
    }
    let mut readers = Readers::new(ServeMode::Single).map_err(io)?;
    readers
        .spawn_reader(
            "kevent-reader".into(),
            d.clone(),
            served.channel.clone(),
            None,
            opts.spin,
        )
        .map_err(io)?;
    Ok((readers, None))
}

/// uring: the rings, plus one reader on /dev/fuse for INTERRUPT and FORGET.
fn start_uring(
    opts: &Options,
    served: &Served,
    d: &Arc<Dispatcher>,
) -> Result<(Readers, Option<UringServer>), String> {
    let ropts = uring::Options {
        depth: opts.uring_depth,
        payload: (fuse_file::URING_MAX_PAGES as usize * 4096)
            .max(fuse_file::URING_MAX_WRITE as usize),
        register_timeout: Duration::from_secs(10),
    };
    let server =
        UringServer::start(served.channel.clone(), d.clone(), ropts).map_err(|e| e.to_string())?;
    let mut readers = Readers::new(ServeMode::Uring).map_err(|e| e.to_string())?;
    readers
        .spawn_reader(
            "kevent-fuse-dev".into(),
            d.clone(),
            served.channel.clone(),
            None,
            Duration::ZERO,
        )
        .map_err(|e| e.to_string())?;
    Ok((readers, Some(server)))
}

/// percpu: one clone of the channel per CPU the daemon may run on, each
/// read by a thread pinned to that CPU.
fn start_percpu(opts: &Options, served: &Served, d: &Arc<Dispatcher>) -> std::io::Result<Readers> {
    let mut readers = Readers::new(ServeMode::Percpu)?;
    for cpu in crate::transport::readers::usable_cpus() {
        let fd = crate::sys::fuse_dev::clone_session(&*served.channel)?;
        let ch = Arc::new(crate::transport::Channel::new(fd));
        readers.spawn_reader(
            format!("kevent-cpu{cpu}"),
            d.clone(),
            ch,
            Some(cpu),
            opts.spin,
        )?;
    }
    Ok(readers)
}

/// Runs the daemon until SIGTERM/SIGINT or disconnection (SIGHUP is logged
/// and ignored).
pub fn run(opts: Options) -> Result<(), StartError> {
    validate(&opts)?;
    let euid = nix::unistd::geteuid().as_raw();
    if euid != 0 {
        return Err(StartError::NotRoot(euid));
    }
    let nofile = raise_nofile();
    let limits = Limits::for_nofile(
        opts.user_queues,
        opts.user_kevents,
        opts.user_descriptors,
        nofile,
    );
    if opts.user_descriptors != 0 && limits.descriptors < opts.user_descriptors {
        warn!(
            "--max-descriptors-per-user {} lowered to {}: one user may hold at most half of the {} descriptors left for users",
            opts.user_descriptors, limits.descriptors, limits.descriptors_total
        );
    }
    info!(
        "per-user limits (uid 0 unlimited): {} queues, {} kevents, {} daemon descriptors; {} descriptors for all users together",
        show_limit(limits.queues),
        show_limit(limits.kevents),
        show_limit(limits.descriptors),
        limits.descriptors_total
    );
    // Timer slack 1 ns (inherited by every thread created from here): the
    // event loop's timed waits (a WAIT's deadline) end on time, not up to
    // the default 50 us late.
    if let Err(e) = nix::sys::prctl::set_timerslack(1) {
        warn!("PR_SET_TIMERSLACK: {e}");
    }
    // Signals become readable events; blocked before any thread exists.
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    let mut blocked = mask;
    blocked.add(Signal::SIGHUP);
    blocked
        .thread_block()
        .map_err(|e| StartError::Io("blocking signals", e.into()))?;
    crate::logging::ignore_sighup().map_err(|e| StartError::Io("SIGHUP thread", e))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| StartError::Io("signalfd", e.into()))?;

    // uring: the module parameter and io_uring itself are checked before
    // mounting (a mount that agreed on io_uring holds every request until
    // the rings exist).
    let mut uring_param: Option<uring::EnableUring> = None;
    let mut uring_unusable: Option<String> = None;
    if opts.serve == ServeChoice::Uring {
        match uring::EnableUring::probe_rings()
            .and_then(|()| uring::EnableUring::prepare(opts.uring_switch))
        {
            Ok(p) => uring_param = Some(p),
            Err(why) => uring_unusable = Some(why),
        }
    }
    let served = setup_transport(&opts, uring_param.is_some())?;
    // The sources are built once the device exists: SOCKET and POLL must
    // tell it apart among a caller's files (never poll or close it on a
    // serving thread). Nothing reads requests before the loop runs.
    let cuse = served.kind == TransportKind::Cuse;
    let mut core = Core::new(opts.max_kevents);
    core.set_limits(limits);
    let built = SourceCtx::new(OwnDevice::of_served(cuse, &served.node))
        .map_err(|e| ("poll offload", e))
        .and_then(|ctx| build_all(&ctx, &mut core));
    if let Err((what, e)) = built {
        served.teardown();
        return Err(StartError::Source(what, e));
    }
    let cfg = Config {
        transport: served.kind,
        max_kevents: opts.max_kevents,
        file_mode: opts.mode,
        access: match served.kind {
            TransportKind::Cuse => Access::Node(served.node.clone()),
            TransportKind::FuseFile => Access::Fixed(opts.attrs()),
        },
        stall: opts.stall,
        max_stalled: opts.max_stalled,
    };
    let d = Arc::new(
        Dispatcher::new(cfg, core, Box::new(ProcessVm), served.channel.clone())
            .map_err(|e| StartError::Io("dispatcher", e))?,
    );
    d.watchdog()
        .start()
        .map_err(|e| StartError::Io("watchdog thread", e))?;
    // `kevent-cuse --status`: the status thread holds only a weak reference.
    let status = {
        let weak = Arc::downgrade(&d);
        let header = crate::status::Header {
            node: served.node.clone(),
            transport: served.kind.to_string(),
        };
        crate::status::StatusServer::start(header, move || {
            weak.upgrade().map(|d| d.snapshot()).unwrap_or_default()
        })
    };
    let started = start_serving(&opts, &served, &d, uring_unusable);
    // Registered (or given up): the connection keeps io_uring without it.
    if let Some(mut p) = uring_param.take() {
        p.restore();
    }
    let (readers, rings) = match started {
        Ok(pair) => pair,
        Err(e) => {
            served.teardown();
            return Err(e);
        }
    };
    // If this process is killed, a watcher aborts the connection it leaves.
    let watcher = match served.kind {
        TransportKind::FuseFile => crate::deathwatch::Watcher::spawn(&served.node)
            .map_err(|e| warn!("no connection watcher: {e}"))
            .ok(),
        TransportKind::Cuse => None,
    };
    info!(
        "ready: {} over {}, serving mode {} ({} thread(s), spin {} us; max {} kevents per queue)",
        served.node.display(),
        served.kind,
        readers.mode,
        readers.threads(),
        opts.spin.as_micros(),
        opts.max_kevents
    );
    notify_ready(&served);
    let (tx, rx) = mpsc::channel();
    spawn_event_thread(Arc::new(sigfd), d.clone(), tx)
        .map_err(|e| StartError::Io("event thread", e))?;
    let exit = rx.recv().unwrap_or(Ok(Exit::Disconnected));
    // No new requests; then every parked WAIT is answered. Both bounded: a
    // thread stuck in a caller's memory is left behind (exit ends it).
    readers.stop(Duration::from_millis(150));
    let (done_tx, done_rx) = mpsc::channel();
    let d2 = d.clone();
    let _ = std::thread::Builder::new()
        .name("kevent-shutdown".into())
        .spawn(move || {
            d2.shutdown();
            let _ = done_tx.send(());
        });
    if done_rx.recv_timeout(Duration::from_millis(150)).is_err() {
        warn!("some parked WAITs could not be answered in 150 ms (stuck caller memory)");
    }
    // uring: the rings hand in those answers, then stop.
    if let Some(rings) = rings {
        rings.join(Duration::from_secs(1));
    }
    d.watchdog().stop();
    drop(status);
    drop(d);
    drop(watcher);
    let node = served.node.clone();
    let kind = served.kind;
    served.teardown();
    match exit {
        Ok(Exit::Signal) => info!("{} removed; bye", node.display()),
        Ok(Exit::Disconnected) => warn!("the kernel closed the {kind} connection"),
        Err(e) => return Err(StartError::Io("event loop", e)),
    }
    if kind == TransportKind::Cuse {
        // The node goes away when the channel closes; say so if it lingers.
        std::thread::sleep(std::time::Duration::from_millis(50));
        if node.exists() {
            warn!("{} still exists after shutdown", node.display());
        }
    }
    Ok(())
}
