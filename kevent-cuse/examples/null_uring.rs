//! A null FUSE-file server over FUSE-over-io_uring, for `scripts/bench`
//! and `tests/host/uring.sh`: the same mount and rings as the daemon's
//! `--serve uring`, but every ioctl is answered at once with its own input
//! echoed as output (result 0). Shows what the ring transport alone costs.
//!
//! Usage: null_uring PATH [DEPTH] [inline|worker]   (root; SIGTERM/SIGINT
//! end it). `worker`: every request goes through the queue's worker thread
//! (the daemon's path for requests that may block), `inline` (default): on
//! the ring thread.
//! Prints "ready uring" (or "ready fallback: REASON" and exits 77 when the
//! kernel cannot do FUSE-over-io_uring) once the file is served.

use kevent_cuse::transport::fuse_file;
use kevent_cuse::transport::uring::{EnableUring, Handler, Options, Sink, UringServer};
use kevent_protocol::fuse::{self, Request};
use nix::sys::signal::{SigSet, Signal};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

struct Null {
    mode: u32,
    /// Serve on the ring thread (else on the queue's worker thread).
    inline: bool,
}

impl Handler for Null {
    fn handle(&self, req: &[u8], sink: &Sink) {
        let Ok(msg) = fuse::decode(req) else {
            return;
        };
        let u = msg.header.unique;
        let reply = match msg.request {
            Request::Open { .. } => fuse::reply(
                u,
                &fuse::encode_open_out(1, fuse::FOPEN_DIRECT_IO | fuse::FOPEN_STREAM),
            ),
            Request::Release { .. } | Request::Flush { .. } => fuse::reply(u, &[]),
            Request::Getattr => fuse::reply(
                u,
                &fuse::encode_attr_out(1, libc::S_IFREG | self.mode, 0, 0, 0),
            ),
            Request::Ioctl(io) => {
                let mut out = io.data.to_vec();
                out.resize(io.out_size as usize, 0);
                fuse::reply(u, &fuse::encode_ioctl_out(0, &out))
            }
            Request::Poll { .. } => fuse::reply(u, &fuse::encode_poll_out(0)),
            Request::Forget | Request::Interrupt { .. } => return,
            _ => fuse::reply_error(u, libc::ENOSYS),
        };
        sink.send(&reply);
    }

    fn inline_ok(&self, _req: &[u8]) -> bool {
        self.inline
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next().map(PathBuf::from) else {
        eprintln!("usage: null_uring PATH [DEPTH] [inline|worker]");
        std::process::exit(2);
    };
    let depth: u32 = args.next().and_then(|d| d.parse().ok()).unwrap_or(8);
    let inline = args.next().as_deref() != Some("worker");
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.thread_block().expect("blocking signals");

    let mut param = match EnableUring::prepare(true) {
        Ok(p) => p,
        Err(reason) => {
            println!("ready fallback: {reason}");
            std::process::exit(77);
        }
    };
    let served = fuse_file::serve_with(&path, 0o666, true).unwrap_or_else(|e| {
        eprintln!("null_uring: {e}");
        std::process::exit(1);
    });
    if !served.io_uring {
        served.teardown();
        println!("ready fallback: the kernel did not offer FUSE-over-io_uring");
        std::process::exit(77);
    }
    let fd = Arc::new(
        served
            .channel
            .as_fd()
            .try_clone_to_owned()
            .expect("dup /dev/fuse"),
    );
    let opts = Options {
        depth,
        payload: (fuse_file::URING_MAX_PAGES as usize * 4096)
            .max(fuse_file::URING_MAX_WRITE as usize),
        register_timeout: Duration::from_secs(10),
    };
    let server = match UringServer::start(
        fd,
        Arc::new(Null {
            mode: 0o666,
            inline,
        }),
        opts,
    ) {
        Ok(s) => s,
        Err(e) => {
            served.teardown();
            eprintln!("null_uring: {e}");
            std::process::exit(1);
        }
    };
    param.restore();
    println!("ready uring");
    let _ = mask.wait();
    server.join(Duration::from_secs(1));
    served.teardown();
}
