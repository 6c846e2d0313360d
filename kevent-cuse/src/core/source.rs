//! The extension point: one kevent type is one [`Source`].
//!
//! Modelled on libkqueue's filters: the core owns keys, the ready FIFO,
//! ONESHOT and write-backs; a source only starts and stops watching one
//! registration and reports when it fired. A source never sees a ukevent
//! array. Each source exposes at most one pollable fd (its own epoll, timer
//! or eventfd) that the reactor watches; when it is readable the reactor
//! calls [`Source::process`].
//!
//! Sources are built at start-up by one constructor each over a shared
//! context and listed in one table (`crate::sources::TABLE`): a new event
//! type is one module plus one row there.

use super::{Caller, Errno, RegId};
use kevent_protocol::kevent::Ukevent;
use std::os::fd::BorrowedFd;
use std::time::Instant;

/// What happened when a kevent was registered or modified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Watching; an event will follow.
    Queued,
    /// Already ready: written back with DONE and not registered (ABI §3).
    Ready([u32; 2]),
    /// Could not be registered: BROKEN|DONE and this errno.
    Failed(Errno),
}

/// A source's report about one registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    /// Which registration.
    pub reg: RegId,
    /// The watched object is gone: deliver BROKEN|DONE, then unregister.
    pub broken: bool,
}

/// One kevent type. `Send`: the core may be shared by serving threads
/// behind a mutex.
pub trait Source: Send {
    /// Name for logs.
    fn name(&self) -> &'static str;

    /// Starts watching for `uk` on behalf of `caller`. On `Queued` the source
    /// keeps state for `reg` until [`Source::unregister`].
    fn register(&mut self, reg: RegId, uk: &Ukevent, caller: &Caller) -> Outcome;

    /// `uk` has a new event mask and req_flags: re-check readiness at once.
    /// `caller` is whoever made the MODIFY (not necessarily the registrant).
    /// `Ready` puts the kevent on the ready list (it stays registered);
    /// `Failed` leaves it registered and is reported as BROKEN.
    fn modify(&mut self, reg: RegId, uk: &Ukevent, caller: &Caller) -> Outcome;

    /// Stops watching `reg` and frees everything held for it.
    fn unregister(&mut self, reg: RegId);

    /// `ret_data` for a delivery of `reg` now (no state change).
    fn ret_data(&self, reg: RegId) -> [u32; 2];

    /// `reg` was delivered by a WAIT: reset per-delivery counters.
    fn delivered(&mut self, reg: RegId);

    /// The fd the reactor watches for this source, if any.
    fn fd(&self) -> Option<BorrowedFd<'_>>;

    /// The fd is readable (or a deadline passed): push what fired.
    fn process(&mut self, now: Instant, out: &mut Vec<Notice>);

    /// When [`Source::process`] must run even without fd activity.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }

    /// The `id` to write back for a delivery of `reg` (NAIO rewrites
    /// `id.raw[1]` to the bytes still to go); `None` keeps the registered one.
    /// The key REMOVE and MODIFY match stays the registered one.
    fn id(&self, _reg: RegId) -> Option<[u32; 2]> {
        None
    }

    /// Right after [`Source::register`] answered `Ready` or `Failed` for
    /// `reg`: the `id` and `ret_data` to write back instead of the input's
    /// (NAIO: progress of a transfer that ended inside ADD). `None`: the
    /// input's id, and `Ready`'s ret_data or the input's ret_data.
    fn settled(&mut self, _reg: RegId) -> Option<([u32; 2], [u32; 2])> {
        None
    }

    /// Whether `reg` has nothing more to report after its delivery, so it is
    /// unregistered even without ONESHOT (a finished transfer).
    fn finished(&self, _reg: RegId) -> bool {
        false
    }
}
