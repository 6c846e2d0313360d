//! The queues: registrations, the ready FIFO and the ADD/REMOVE/MODIFY rules
//! of docs/ABI.md sections 2 and 3. Pure bookkeeping: no syscalls here; the
//! sources do the watching and the transport does the caller's memory.
//!
//! One open of the device is one [`Queue`]; dup() and fork() share it because
//! the kernel hands every request on that open file description the same
//! file handle.

mod errno;
pub mod limits;
mod queue;
pub mod snapshot;
pub mod source;

pub use errno::Errno;
pub use limits::{Limits, Usage};
pub use queue::{Owner, Queue, QueueStats};
pub use snapshot::{CoreSnapshot, QueueSnapshot};

use kevent_protocol::kevent::{
    KeventKey, Ukevent, KEVENT_MAX, KEVENT_REQ_ONESHOT, KEVENT_RET_BROKEN, KEVENT_RET_DONE,
};
use kevent_protocol::names::{errno_display, ukevent_display};
pub use source::{Notice, Outcome, Source};
use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::time::Instant;
use tracing::debug;

/// Identifies one queue (the FUSE file handle of its open).
pub type QueueId = u64;

/// Identifies one registration for the daemon's lifetime (never reused, so a
/// late notice from a source can never hit a newer registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegId(pub u64);

/// Who made a request: the thread id from the request header (0 when the
/// caller is not visible in the daemon's pid namespace) and its fs ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caller {
    /// Thread id of the caller.
    pub tid: u32,
    /// fsuid.
    pub uid: u32,
    /// fsgid.
    pub gid: u32,
    /// The request's FUSE `unique` (0: unknown). The ukevents of one ioctl
    /// share it, so a source may resolve the caller's process once per
    /// ioctl rather than once per ukevent.
    pub request: u64,
}

/// A registered kevent.
#[derive(Debug, Clone)]
struct Registration {
    queue: QueueId,
    /// Who registered it (charged against this uid's limits).
    uid: u32,
    uk: Ukevent,
    ready: bool,
    /// The source reported its object gone: unregister on delivery.
    broken: bool,
}

/// What an ADD, REMOVE or MODIFY produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtlOutput {
    /// The ukevents to write back at the start of the array, in order.
    pub events: Vec<Ukevent>,
    /// The new `hdr.num`, when the header is to be rewritten.
    pub num: Option<u32>,
    /// The ioctl's return value or errno.
    pub result: Result<u32, Errno>,
    /// Registrations this ADD made (so a failed write-back can undo them).
    pub added: Vec<RegId>,
}

/// REMOVE and MODIFY batches above this size are refused with EINVAL: the
/// daemon reads the whole batch at once and will not allocate without bound.
pub const MAX_BATCH: u64 = 65536;

/// Timeout 0 means "at least one event, or 1 second" (docs/ABI.md §3).
pub const DEFAULT_WAIT: std::time::Duration = std::time::Duration::from_millis(1000);

/// A control command, as decoded from the header (docs/ABI.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctl {
    /// KEVENT_CTL_ADD.
    Add,
    /// KEVENT_CTL_REMOVE.
    Remove,
    /// KEVENT_CTL_MODIFY.
    Modify,
    /// KEVENT_CTL_WAIT or the WAIT ioctl.
    Wait,
}

/// How a WAIT sleeps (docs/ABI.md §3): it returns at most `num` events, wakes
/// once `min` are ready, and gives up after `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPlan {
    /// Most events returned (hdr.num, capped at the per-queue limit).
    pub num: u32,
    /// Wake once this many are ready.
    pub min: u32,
    /// Sleep at most this long.
    pub timeout: std::time::Duration,
}

impl WaitPlan {
    /// The plan for a WAIT with header `num` and `timeout_ms`.
    pub fn new(num: u32, timeout_ms: u32, max_kevents: u32) -> Self {
        let (min, timeout) = match timeout_ms {
            0 => (1, DEFAULT_WAIT),
            ms => (num, std::time::Duration::from_millis(ms as u64)),
        };
        WaitPlan {
            num: num.min(max_kevents),
            min: min.min(num.min(max_kevents)),
            timeout,
        }
    }
}

/// Events taken off a ready list for one WAIT, not yet written to the
/// caller: [`Core::commit_taken`] once written, [`Core::restore_taken`] if
/// the write failed (they go back to the front of the ready list).
#[derive(Debug, Default)]
pub struct Taken {
    /// The ukevents as delivered.
    pub events: Vec<Ukevent>,
    regs: Vec<RegId>,
}

/// Every queue of the daemon and the sources that feed them.
pub struct Core {
    queues: HashMap<QueueId, Queue>,
    regs: HashMap<RegId, Registration>,
    sources: Vec<Option<Box<dyn Source>>>,
    next_queue: QueueId,
    next_reg: u64,
    max_kevents: u32,
    acct: limits::Accounting,
}

impl Core {
    /// A core with no sources and the given per-queue limit.
    pub fn new(max_kevents: u32) -> Self {
        Core {
            queues: HashMap::new(),
            regs: HashMap::new(),
            sources: (0..KEVENT_MAX).map(|_| None).collect(),
            next_queue: 1,
            next_reg: 1,
            max_kevents,
            acct: limits::Accounting::new(Limits::unlimited()),
        }
    }

    /// Sets the per-user limits (before any queue is open).
    pub fn set_limits(&mut self, limits: Limits) {
        self.acct = limits::Accounting::new(limits);
    }

    /// The per-user limits in force.
    pub fn limits(&self) -> Limits {
        self.acct.limits()
    }

    /// Plugs in the source for event type `ty`.
    pub fn set_source(&mut self, ty: u32, source: Box<dyn Source>) {
        self.sources[ty as usize] = Some(source);
    }

    /// The fds the reactor must watch, by event type.
    pub fn source_fds(&self) -> Vec<(u32, BorrowedFd<'_>)> {
        self.sources
            .iter()
            .enumerate()
            .filter_map(|(ty, s)| Some((ty as u32, s.as_ref()?.fd()?)))
            .collect()
    }

    /// The earliest deadline any source asked for.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.sources
            .iter()
            .flatten()
            .filter_map(|s| s.next_deadline())
            .min()
    }

    /// A new queue (one open of the device) owned by root.
    pub fn open(&mut self, nonblock: bool) -> QueueId {
        self.open_for(nonblock, Owner::default())
            .expect("root has no queue limit")
    }

    /// A new queue opened by `owner`, or EMFILE at its queue limit.
    pub fn open_for(&mut self, nonblock: bool, owner: Owner) -> Result<QueueId, Errno> {
        self.acct.open_queue(owner.uid)?;
        let id = self.next_queue;
        self.next_queue += 1;
        self.queues.insert(id, Queue::new(nonblock, owner));
        Ok(id)
    }

    /// The queue, if it exists.
    pub fn queue(&self, q: QueueId) -> Option<&Queue> {
        self.queues.get(&q)
    }

    /// Number of open queues.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Last close: unregisters every kevent of the queue.
    pub fn release(&mut self, q: QueueId) {
        let Some(queue) = self.queues.remove(&q) else {
            return;
        };
        self.acct.close_queue(queue.owner.uid);
        for reg in queue.all_regs() {
            if let Some(r) = self.regs.remove(&reg) {
                self.acct.remove_kevent(r.uid, r.uk.type_);
                if let Some(src) = self.sources[r.uk.type_ as usize].as_mut() {
                    src.unregister(reg);
                }
            }
        }
    }

    /// Checks a request before its argument is read (docs/ABI.md §2-3): the
    /// queue exists, an ADD stays within the per-queue limit (ENFILE, and
    /// nothing is read or written), REMOVE and MODIFY batches are bounded.
    pub fn precheck(&self, q: QueueId, ctl: Ctl, num: u32) -> Result<(), Errno> {
        let queue = self.queues.get(&q).ok_or(Errno::EBADF)?;
        match ctl {
            Ctl::Add if queue.len() as u64 + num as u64 > self.max_kevents as u64 => {
                Err(Errno::ENFILE)
            }
            Ctl::Remove | Ctl::Modify if num as u64 > MAX_BATCH => Err(Errno::EINVAL),
            _ => Ok(()),
        }
    }

    /// The per-queue limit.
    pub fn max_kevents(&self) -> u32 {
        self.max_kevents
    }

    /// Undoes the registrations of an ADD whose write-back failed.
    pub fn rollback_add(&mut self, added: &[RegId]) {
        for &reg in added {
            self.unregister(reg);
        }
    }

    /// ADD (docs/ABI.md §3).
    pub fn add(&mut self, q: QueueId, input: &[Ukevent], caller: &Caller) -> CtlOutput {
        let Some(queue) = self.queues.get(&q) else {
            return CtlOutput::error(Errno::EBADF);
        };
        // "An ADD that would reach 1024 adds nothing and fails with ENFILE."
        if queue.len() as u64 + input.len() as u64 > self.max_kevents as u64 {
            return CtlOutput::error(Errno::ENFILE);
        }
        enum Last {
            Queued,
            Ready,
            Failed(Errno),
        }
        let mut last = Last::Queued;
        let mut out = Vec::new();
        let mut added = Vec::new();
        for uk in input {
            if uk.type_ >= KEVENT_MAX {
                // Written back unchanged, not registered (docs/ABI.md §3).
                out.push(*uk);
                last = Last::Failed(Errno::E2BIG);
                continue;
            }
            let mut uk = *uk;
            uk.ret_flags = 0;
            let Some(src) = self.sources[uk.type_ as usize].as_mut() else {
                uk.ret_flags = KEVENT_RET_BROKEN | KEVENT_RET_DONE;
                out.push(uk);
                last = Last::Failed(Errno::EOPNOTSUPP);
                continue;
            };
            if let Err(e) = self.acct.add_kevent(caller.uid, uk.type_) {
                uk.ret_flags = KEVENT_RET_BROKEN | KEVENT_RET_DONE;
                debug!(
                    "q={q} uid={} add {} -> over the user's limit: {e:?}",
                    caller.uid,
                    ukevent_display(&uk)
                );
                out.push(uk);
                last = Last::Failed(e);
                continue;
            }
            let reg = RegId(self.next_reg);
            self.next_reg += 1;
            let outcome = src.register(reg, &uk, caller);
            if !matches!(outcome, Outcome::Queued) {
                self.acct.remove_kevent(caller.uid, uk.type_);
            }
            if let Some(queue) = self.queues.get_mut(&q) {
                queue.stats.total += 1;
                if matches!(outcome, Outcome::Ready(_)) {
                    queue.stats.ready_at_once += 1;
                }
            }
            debug!(
                "q={q} uid={} tid={} add {} -> {}",
                caller.uid,
                caller.tid,
                ukevent_display(&uk),
                outcome_display(&outcome)
            );
            match outcome {
                Outcome::Queued => {
                    self.regs.insert(
                        reg,
                        Registration {
                            queue: q,
                            uid: caller.uid,
                            uk,
                            ready: false,
                            broken: false,
                        },
                    );
                    self.queues
                        .get_mut(&q)
                        .expect("checked above")
                        .insert(uk.key(), reg);
                    added.push(reg);
                    last = Last::Queued;
                }
                Outcome::Ready(ret_data) => {
                    uk.ret_flags |= KEVENT_RET_DONE;
                    uk.ret_data = ret_data;
                    if let Some((id, data)) = src.settled(reg) {
                        (uk.id, uk.ret_data) = (id, data);
                    }
                    out.push(uk);
                    last = Last::Ready;
                }
                Outcome::Failed(e) => {
                    uk.ret_flags = KEVENT_RET_BROKEN | KEVENT_RET_DONE;
                    if let Some((id, data)) = src.settled(reg) {
                        (uk.id, uk.ret_data) = (id, data);
                    }
                    out.push(uk);
                    last = Last::Failed(e);
                }
            }
        }
        let n = out.len() as u32;
        let result = match last {
            _ if input.is_empty() => Ok(0),
            Last::Queued => Ok(n),
            Last::Ready => Ok(1),
            Last::Failed(e) => Err(e),
        };
        CtlOutput {
            events: out,
            num: Some(n),
            result,
            added,
        }
    }

    /// REMOVE (docs/ABI.md §3): unregisters by key; drops an uncollected event.
    pub fn remove(&mut self, q: QueueId, input: &[Ukevent]) -> CtlOutput {
        if !self.queues.contains_key(&q) {
            return CtlOutput::error(Errno::EBADF);
        }
        let events = input
            .iter()
            .map(|uk| {
                let mut uk = *uk;
                let found = self.queues[&q].find(&uk.key());
                debug!(
                    "q={q} remove {} -> {}",
                    ukevent_display(&uk),
                    if found.is_some() {
                        "removed"
                    } else {
                        "not found"
                    }
                );
                match found {
                    Some(reg) => {
                        self.unregister(reg);
                        uk.ret_flags |= KEVENT_RET_DONE;
                    }
                    None => uk.ret_flags |= KEVENT_RET_BROKEN | KEVENT_RET_DONE,
                }
                uk
            })
            .collect();
        CtlOutput {
            events,
            num: None,
            result: Ok(0),
            added: Vec::new(),
        }
    }

    /// MODIFY (docs/ABI.md §3): new event mask and req_flags, ret_flags cleared,
    /// readiness re-checked at once. A kevent already on the ready list
    /// keeps its place and its DONE/BROKEN flags. Returns the output and whether the
    /// queue's ready list grew. `caller` made the MODIFY.
    pub fn modify(&mut self, q: QueueId, input: &[Ukevent], caller: &Caller) -> (CtlOutput, bool) {
        if !self.queues.contains_key(&q) {
            return (CtlOutput::error(Errno::EBADF), false);
        }
        let mut woke = false;
        let events = input
            .iter()
            .map(|uk| {
                let mut uk = *uk;
                let Some(reg) = self.queues[&q].find(&uk.key()) else {
                    uk.ret_flags |= KEVENT_RET_BROKEN | KEVENT_RET_DONE;
                    return uk;
                };
                let r = self.regs.get_mut(&reg).expect("indexed registration");
                r.uk.event = uk.event;
                r.uk.req_flags = uk.req_flags;
                // A kevent already on the ready list stays there, in its
                // place, and keeps DONE (and BROKEN: its object is gone and
                // it is unregistered after that delivery); only the new mask
                // and req_flags apply to it (README, "MODIFY of a ready
                // kevent").
                if !r.ready {
                    r.uk.ret_flags = 0;
                }
                let current = r.uk;
                let src = self.sources[current.type_ as usize]
                    .as_mut()
                    .expect("registered with this source");
                let outcome = src.modify(reg, &current, caller);
                debug!(
                    "q={q} modify {} -> {}",
                    ukevent_display(&current),
                    outcome_display(&outcome)
                );
                match outcome {
                    Outcome::Queued => uk.ret_flags |= KEVENT_RET_DONE,
                    Outcome::Ready(_) => {
                        uk.ret_flags |= KEVENT_RET_DONE;
                        woke |= self.fire(Notice { reg, broken: false }).is_some();
                    }
                    Outcome::Failed(_) => uk.ret_flags |= KEVENT_RET_BROKEN | KEVENT_RET_DONE,
                }
                uk
            })
            .collect();
        (
            CtlOutput {
                events,
                num: None,
                result: Ok(0),
                added: Vec::new(),
            },
            woke,
        )
    }

    /// A source reports activity: the kevent goes on its queue's ready list
    /// once (coalescing). Returns the queue when its ready list grew.
    pub fn fire(&mut self, notice: Notice) -> Option<QueueId> {
        let r = self.regs.get_mut(&notice.reg)?;
        r.uk.ret_flags |= KEVENT_RET_DONE;
        if notice.broken {
            r.uk.ret_flags |= KEVENT_RET_BROKEN;
            r.broken = true;
        }
        if r.ready {
            return None;
        }
        r.ready = true;
        let q = r.queue;
        self.queues.get_mut(&q)?.push_ready(notice.reg);
        Some(q)
    }

    /// Lets source `ty` process its fd; returns the queues whose ready list
    /// grew.
    pub fn process_source(&mut self, ty: u32, now: Instant) -> Vec<QueueId> {
        let mut notices = Vec::new();
        if let Some(src) = self.sources[ty as usize].as_mut() {
            src.process(now, &mut notices);
        }
        self.fire_all(notices)
    }

    /// Lets every source with a passed deadline process.
    pub fn process_deadlines(&mut self, now: Instant) -> Vec<QueueId> {
        let mut notices = Vec::new();
        for src in self.sources.iter_mut().flatten() {
            if src.next_deadline().is_some_and(|d| d <= now) {
                src.process(now, &mut notices);
            }
        }
        self.fire_all(notices)
    }

    fn fire_all(&mut self, notices: Vec<Notice>) -> Vec<QueueId> {
        let mut woke: Vec<QueueId> = notices.into_iter().filter_map(|n| self.fire(n)).collect();
        woke.sort_unstable();
        woke.dedup();
        woke
    }

    /// How many kevents are ready on `q`.
    pub fn ready_len(&self, q: QueueId) -> usize {
        self.queues.get(&q).map_or(0, |x| x.ready_len())
    }

    /// The first `n` ready kevents of `q` as they would be delivered now,
    /// without taking them (see [`Core::commit_delivered`]).
    pub fn peek_ready(&self, q: QueueId, n: usize) -> Vec<Ukevent> {
        let Some(queue) = self.queues.get(&q) else {
            return Vec::new();
        };
        queue
            .ready_iter()
            .take(n)
            .filter_map(|reg| {
                let r = self.regs.get(&reg)?;
                let mut uk = r.uk;
                if let Some(src) = self.sources[uk.type_ as usize].as_ref() {
                    uk.ret_data = src.ret_data(reg);
                    if let Some(id) = src.id(reg) {
                        uk.id = id;
                    }
                }
                Some(uk)
            })
            .collect()
    }

    /// Takes the first `n` ready kevents of `q` off the ready list: ONESHOT
    /// and broken ones are unregistered, the others re-armed.
    /// Each call is one WAIT answered (the 2006 `wait` statistic).
    pub fn commit_delivered(&mut self, q: QueueId, n: usize) {
        if let Some(queue) = self.queues.get_mut(&q) {
            queue.stats.waits += 1;
        }
        for _ in 0..n {
            let Some(reg) = self.queues.get_mut(&q).and_then(|x| x.pop_ready()) else {
                return;
            };
            let Some(r) = self.regs.get_mut(&reg) else {
                continue;
            };
            r.ready = false;
            let mut done = r.broken || r.uk.req_flags & KEVENT_REQ_ONESHOT != 0;
            if let Some(src) = self.sources[r.uk.type_ as usize].as_mut() {
                done |= src.finished(reg);
                if tracing::enabled!(tracing::Level::DEBUG) {
                    let mut uk = r.uk;
                    uk.ret_data = src.ret_data(reg);
                    debug!("q={q} deliver {}", ukevent_display(&uk));
                }
                src.delivered(reg);
            }
            if done {
                self.unregister(reg);
            }
        }
    }

    /// Takes up to `n` ready kevents of `q` off the ready list for a WAIT
    /// whose write into the caller happens outside any lock. Re-armed
    /// kevents may fire again at once. ONESHOT and broken ones leave the key
    /// index now (a REMOVE or MODIFY racing with the delivery finds nothing,
    /// as in 2006 once a WAIT dequeued them) and are freed by
    /// [`Core::commit_taken`], or put back by [`Core::restore_taken`].
    /// Each call is one WAIT answered (the 2006 `wait` statistic).
    pub fn take_ready(&mut self, q: QueueId, n: usize) -> Taken {
        let mut taken = Taken::default();
        if let Some(queue) = self.queues.get_mut(&q) {
            queue.stats.waits += 1;
        }
        for _ in 0..n {
            let Some(reg) = self.queues.get_mut(&q).and_then(|x| x.pop_ready()) else {
                break;
            };
            let Some(r) = self.regs.get_mut(&reg) else {
                continue;
            };
            let mut uk = r.uk;
            let mut done = r.broken || r.uk.req_flags & KEVENT_REQ_ONESHOT != 0;
            if let Some(src) = self.sources[uk.type_ as usize].as_mut() {
                uk.ret_data = src.ret_data(reg);
                if let Some(id) = src.id(reg) {
                    uk.id = id;
                }
                // A finished transfer (NAIO/AIO) goes with its delivery.
                done |= src.finished(reg);
                debug!("q={q} deliver {}", ukevent_display(&uk));
                if !done {
                    r.ready = false;
                    src.delivered(reg);
                }
            }
            if done {
                let key = r.uk.key();
                if let Some(queue) = self.queues.get_mut(&q) {
                    queue.take_in_flight(&key, reg);
                }
            }
            taken.events.push(uk);
            taken.regs.push(reg);
        }
        taken
    }

    /// The taken events reached the caller: ONESHOT and broken kevents are
    /// unregistered now.
    pub fn commit_taken(&mut self, taken: Taken) {
        for reg in taken.regs {
            let Some(r) = self.regs.get(&reg) else {
                continue;
            };
            let q = r.queue;
            if self
                .queues
                .get_mut(&q)
                .is_some_and(|queue| queue.end_in_flight(reg))
            {
                // Out of the key index already: this frees the rest (the
                // source's watch, the per-user accounting).
                self.unregister(reg);
            }
        }
    }

    /// The write into the caller failed: the taken kevents that are still
    /// registered go back to the front of the ready list, in order.
    pub fn restore_taken(&mut self, q: QueueId, taken: Taken) {
        for reg in taken.regs.into_iter().rev() {
            let Some(r) = self.regs.get_mut(&reg) else {
                continue;
            };
            let Some(queue) = self.queues.get_mut(&q) else {
                continue;
            };
            if queue.end_in_flight(reg) {
                queue.insert(r.uk.key(), reg);
                queue.push_ready_front(reg);
            } else if !r.ready {
                r.ready = true;
                queue.push_ready_front(reg);
            }
        }
    }

    fn unregister(&mut self, reg: RegId) {
        let Some(r) = self.regs.remove(&reg) else {
            return;
        };
        self.acct.remove_kevent(r.uid, r.uk.type_);
        if let Some(queue) = self.queues.get_mut(&r.queue) {
            queue.forget(&r.uk.key(), reg, r.ready);
        }
        if let Some(src) = self.sources[r.uk.type_ as usize].as_mut() {
            src.unregister(reg);
        }
    }

    /// Total registrations (all queues).
    pub fn registration_count(&self) -> usize {
        self.regs.len()
    }
}

/// `queued`, `ready data=1,0` or `failed EBADF` for the debug log.
fn outcome_display(o: &Outcome) -> String {
    match o {
        Outcome::Queued => "queued".into(),
        Outcome::Ready(d) => format!("ready data={},{}", d[0], d[1]),
        Outcome::Failed(e) => format!("failed {}", errno_display(e.0)),
    }
}

impl CtlOutput {
    fn error(e: Errno) -> Self {
        CtlOutput {
            events: Vec::new(),
            num: None,
            result: Err(e),
            added: Vec::new(),
        }
    }
}

/// Keeps the key type reachable for tests and docs.
pub type Key = KeventKey;

#[cfg(test)]
mod tests;
