//! Logging that never stops the daemon.
//!
//! Log lines go to stderr through one writer thread fed by a bounded
//! channel: a serving thread never blocks on a slow or stuck log reader, and
//! a write error (the pipe's reader is gone, the disk is full) drops the
//! line instead of panicking. ANSI colours only when stderr is a terminal.
//! When lines had to be dropped, the next line that gets through says how
//! many.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tracing_subscriber::fmt::MakeWriter;

/// Lines kept while the writer thread is behind.
const BACKLOG: usize = 4096;

enum Item {
    Line(Vec<u8>),
    /// Acknowledged once every earlier line was written.
    Flush(SyncSender<()>),
}

struct Shared {
    tx: SyncSender<Item>,
    dropped: Arc<AtomicU64>,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

fn shared() -> &'static Shared {
    SHARED.get_or_init(|| {
        let (tx, rx) = sync_channel::<Item>(BACKLOG);
        let dropped = Arc::new(AtomicU64::new(0));
        let d = dropped.clone();
        // The writer thread never takes a signal: the daemon reads SIGTERM
        // and SIGINT through a signalfd, which needs them blocked in every
        // thread, and this one may start before the daemon blocks them.
        let old = nix::sys::signal::SigSet::all()
            .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK);
        let spawned = std::thread::Builder::new()
            .name("log".into())
            .spawn(move || {
                let mut err = std::io::stderr();
                for item in rx {
                    let line = match item {
                        Item::Line(l) => l,
                        Item::Flush(ack) => {
                            let _ = ack.try_send(());
                            continue;
                        }
                    };
                    let lost = d.swap(0, Ordering::Relaxed);
                    if lost > 0 {
                        let _ = writeln!(err, "({lost} log line(s) dropped: stderr was too slow)");
                    }
                    // Errors (EPIPE, ENOSPC, EIO) drop the line.
                    let _ = err.write_all(&line);
                }
            });
        if let Ok(old) = old {
            let _ = old.thread_set_mask();
        }
        // Without the thread every line counts as dropped (the channel
        // fills): logging is lost, serving is not.
        drop(spawned);
        Shared { tx, dropped }
    })
}

/// One event's bytes, sent as one line when dropped.
pub struct LineWriter {
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let s = shared();
        match s.tx.try_send(Item::Line(std::mem::take(&mut self.buf))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                s.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The [`MakeWriter`] of the daemon's subscriber.
#[derive(Clone, Copy, Default)]
pub struct SafeStderr;

impl<'a> MakeWriter<'a> for SafeStderr {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter { buf: Vec::new() }
    }
}

/// Installs the global subscriber: RUST_LOG (default `info`), stderr through
/// [`SafeStderr`], colours only on a terminal, internal write errors never
/// reported through stderr (that would panic when it is closed).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(SafeStderr)
        .log_internal_errors(false)
        .init();
}

/// Waits until every line queued so far has been handed to stderr, at most
/// half a second (a stuck reader must not hold up the exit): called before
/// the daemon exits so its last lines are not lost.
pub fn flush() {
    let Some(s) = SHARED.get() else { return };
    let deadline = Instant::now() + Duration::from_millis(500);
    let (ack_tx, ack_rx) = sync_channel(1);
    let mut item = Item::Flush(ack_tx);
    loop {
        match s.tx.try_send(item) {
            Ok(()) => break,
            Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                item = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return,
        }
    }
    let _ = ack_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
}

/// SIGHUP is logged and otherwise ignored: the daemon has no configuration
/// file to reload and logs to stderr, which it never reopens. The signal
/// must already be blocked in every thread (the daemon blocks it before
/// starting any); one small thread takes it with sigwait.
pub fn ignore_sighup() -> std::io::Result<()> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGHUP);
    std::thread::Builder::new()
        .name("sighup".into())
        .spawn(move || loop {
            if let Ok(sig) = set.wait() {
                tracing::info!(
                    "{sig} received and ignored: kevent-cuse has no configuration to reload and logs to stderr (restart it to change options)"
                );
            }
        })
        .map(drop)
}
