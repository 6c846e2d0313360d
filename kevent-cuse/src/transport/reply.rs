//! The answer to one request, as a value: built from the request's unique
//! id and the sink it must go back through, consumed by sending it. A
//! request is therefore answered at most once by construction, and one
//! that is dropped unanswered (a bug, a panic unwinding a serving thread)
//! still gets EIO and a log line instead of leaving its caller blocked.

use crate::core::Errno;
use kevent_protocol::fuse;
use std::sync::Arc;
use tracing::warn;

/// Where replies go: the channel fd (or the clone of it that read the
/// request), an io_uring entry, or a buffer in tests. Implementations are
/// shared by threads; one `send` is one complete message.
pub trait ReplySink: Send + Sync {
    /// Writes one complete reply or notification.
    fn send(&self, msg: &[u8]);
}

/// A shared sink.
pub type Sink = Arc<dyn ReplySink>;

/// The pending answer to request `unique`.
#[must_use = "a request must be answered: send a reply or an error"]
pub struct Reply {
    unique: u64,
    sink: Option<Sink>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reply(u={})", self.unique)
    }
}

impl Reply {
    /// The answer to `unique`, to be sent through `sink`.
    pub fn new(unique: u64, sink: Sink) -> Self {
        Reply {
            unique,
            sink: Some(sink),
        }
    }

    /// The request's unique id.
    pub fn unique(&self) -> u64 {
        self.unique
    }

    /// Success with `body` (may be empty).
    pub fn ok(self, body: &[u8]) {
        let msg = fuse::reply(self.unique, body);
        self.raw(&msg);
    }

    /// Failure with errno `e`.
    pub fn error(self, e: Errno) {
        let msg = fuse::reply_error(self.unique, e.0);
        self.raw(&msg);
    }

    /// A request that takes no answer (FORGET, INTERRUPT).
    pub fn none(mut self) {
        self.sink = None;
    }

    fn raw(mut self, msg: &[u8]) {
        if let Some(sink) = self.sink.take() {
            sink.send(msg);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            warn!(
                "u={}: request dropped without an answer; answering EIO",
                self.unique
            );
            sink.send(&fuse::reply_error(self.unique, libc::EIO));
        }
    }
}
