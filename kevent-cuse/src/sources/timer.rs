//! KEVENT_TIMER (docs/ABI.md §4): `id.raw[0]` is the period in ms, used for the
//! first expiry and every interval; the kevent re-arms until it is
//! unregistered (or delivered, with ONESHOT).
//!
//! # Implementation notes
//! * **One descriptor for all timers.** Every registration's next expiry
//!   (CLOCK_MONOTONIC nanoseconds) sits in one binary min-heap; a single
//!   `timerfd` is armed with `TFD_TIMER_ABSTIME` at the earliest one, and
//!   that timerfd is the fd the reactor watches. ADD and REMOVE are
//!   O(log K) and cost no system call unless the earliest expiry changes;
//!   100,000 timers cost one descriptor and ~100 bytes each.
//! * **Removal is lazy.** REMOVE drops the registration from the map; its
//!   heap entry is skipped when it surfaces (it no longer matches). When
//!   stale entries outnumber live ones the heap is rebuilt, so an
//!   ADD/REMOVE loop cannot grow it without bound.
//! * **Expiry.** When the timerfd fires, every entry due by now is popped;
//!   a timer that missed several periods (the daemon was descheduled)
//!   counts them all and its next expiry stays on the original grid
//!   (`start + n * period`), as a periodic timerfd does. Expirations
//!   between two deliveries coalesce into one ready event; their count is
//!   `ret_data[1]` (extension, docs/ABI.md §5 item 4). `ret_data[0]` is the time
//!   of the latest expiry seen in CLOCK_MONOTONIC milliseconds truncated to
//!   u32 — the "jiffies at HZ=1000" of 2006.
//! * A period of 0 would make 2006 fire on every jiffy; here it is refused
//!   with EINVAL (BROKEN|DONE): a busy loop helps nobody.

use super::{Notice, Outcome, Source, SourceCtx};
use crate::core::{Caller, Errno, RegId};
use kevent_protocol::kevent::Ukevent;
use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

const NS_PER_MS: u64 = 1_000_000;

struct Timer {
    period_ns: u64,
    /// Absolute CLOCK_MONOTONIC ns of the next expiry (the heap key).
    next_ns: u64,
    /// Expirations since the last delivery.
    pending: u64,
    /// CLOCK_MONOTONIC ms of the latest expiry seen.
    last_ms: u32,
}

/// The TIMER source.
pub struct TimerSource {
    tfd: OwnedFd,
    timers: HashMap<RegId, Timer>,
    /// (next expiry ns, registration); entries that no longer match
    /// `timers` are stale and skipped.
    heap: BinaryHeap<Reverse<(u64, RegId)>>,
    /// The absolute expiry the timerfd is armed for (0: disarmed).
    armed_ns: u64,
}

/// CLOCK_MONOTONIC now, in ns.
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn ns_to_timespec(ns: u64) -> Timespec {
    Timespec {
        tv_sec: (ns / 1_000_000_000) as _,
        tv_nsec: (ns % 1_000_000_000) as _,
    }
}

impl TimerSource {
    /// Creates the source and its one timerfd.
    pub fn new() -> std::io::Result<Self> {
        let tfd = rustix::time::timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        Ok(TimerSource {
            tfd,
            timers: HashMap::new(),
            heap: BinaryHeap::new(),
            armed_ns: 0,
        })
    }

    /// Arms (or disarms) the timerfd for the earliest live expiry.
    fn rearm(&mut self) {
        // Drop stale tops so the timerfd is armed for a live timer.
        while let Some(Reverse((at, reg))) = self.heap.peek().copied() {
            if self.timers.get(&reg).is_some_and(|t| t.next_ns == at) {
                break;
            }
            self.heap.pop();
        }
        let want = self.heap.peek().map_or(0, |Reverse((at, _))| *at);
        if want == self.armed_ns {
            return;
        }
        let spec = Itimerspec {
            it_interval: ns_to_timespec(0),
            it_value: ns_to_timespec(want),
        };
        match rustix::time::timerfd_settime(&self.tfd, TimerfdTimerFlags::ABSTIME, &spec) {
            Ok(_) => self.armed_ns = want,
            Err(e) => tracing::error!("timerfd_settime: {e}"),
        }
    }

    /// Rebuilds the heap from the live timers once stale entries dominate.
    fn compact(&mut self) {
        if self.heap.len() > 2 * self.timers.len() + 64 {
            self.heap = self
                .timers
                .iter()
                .map(|(reg, t)| Reverse((t.next_ns, *reg)))
                .collect();
        }
    }

    /// Number of live timers (tests, benchmarks).
    pub fn len(&self) -> usize {
        self.timers.len()
    }

    /// Whether no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.timers.is_empty()
    }

    /// Pops every timer due at `now_ns` into `out`.
    fn expire(&mut self, now_ns: u64, out: &mut Vec<Notice>) {
        let now_ms = (now_ns / NS_PER_MS) as u32;
        while let Some(Reverse((at, reg))) = self.heap.peek().copied() {
            if at > now_ns {
                break;
            }
            self.heap.pop();
            let Some(t) = self.timers.get_mut(&reg) else {
                continue;
            };
            if t.next_ns != at {
                continue;
            }
            let n = (now_ns - at) / t.period_ns + 1;
            t.pending += n;
            t.next_ns = at + n * t.period_ns;
            t.last_ms = now_ms;
            self.heap.push(Reverse((t.next_ns, reg)));
            out.push(Notice { reg, broken: false });
        }
    }
}

/// The TIMER row of [`super::TABLE`].
pub fn build(_ctx: &SourceCtx) -> std::io::Result<Box<dyn Source>> {
    Ok(Box::new(TimerSource::new()?))
}

impl Source for TimerSource {
    fn name(&self) -> &'static str {
        "timer"
    }

    fn register(&mut self, reg: RegId, uk: &Ukevent, _caller: &Caller) -> Outcome {
        let period = uk.id[0];
        if period == 0 {
            return Outcome::Failed(Errno::EINVAL);
        }
        let period_ns = u64::from(period) * NS_PER_MS;
        let next_ns = monotonic_ns() + period_ns;
        self.timers.insert(
            reg,
            Timer {
                period_ns,
                next_ns,
                pending: 0,
                last_ms: 0,
            },
        );
        self.heap.push(Reverse((next_ns, reg)));
        if self.armed_ns == 0 || next_ns < self.armed_ns {
            self.rearm();
        }
        Outcome::Queued
    }

    fn modify(&mut self, _reg: RegId, _uk: &Ukevent, _caller: &Caller) -> Outcome {
        // The period is part of the key and cannot change; a timer is never
        // "ready now" except through an expiry already on the ready list.
        Outcome::Queued
    }

    fn unregister(&mut self, reg: RegId) {
        self.timers.remove(&reg);
        self.compact();
        if self.timers.is_empty() && self.armed_ns != 0 {
            self.heap.clear();
            self.rearm();
        }
    }

    fn ret_data(&self, reg: RegId) -> [u32; 2] {
        self.timers.get(&reg).map_or([0, 0], |t| {
            [t.last_ms, u32::try_from(t.pending).unwrap_or(u32::MAX)]
        })
    }

    fn delivered(&mut self, reg: RegId) {
        if let Some(t) = self.timers.get_mut(&reg) {
            t.pending = 0;
        }
    }

    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.tfd.as_fd())
    }

    fn process(&mut self, _now: Instant, out: &mut Vec<Notice>) {
        // Clear the timerfd's readability; the heap says what is due.
        let mut buf = [0u8; 8];
        match rustix::io::read(&self.tfd, &mut buf) {
            Ok(_) | Err(rustix::io::Errno::AGAIN) => {}
            Err(e) => tracing::warn!("timerfd read: {e}"),
        }
        self.expire(monotonic_ns(), out);
        // The read disarmed a one-shot timerfd: arm it for the next one.
        self.armed_ns = 0;
        self.rearm();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kevent_protocol::kevent::KEVENT_TIMER;

    fn uk(ms: u32) -> Ukevent {
        Ukevent {
            id: [ms, 0],
            type_: KEVENT_TIMER,
            ..Default::default()
        }
    }

    #[test]
    fn zero_period_is_einval() {
        let mut s = TimerSource::new().unwrap();
        assert_eq!(
            s.register(RegId(1), &uk(0), &Caller::default()),
            Outcome::Failed(Errno::EINVAL)
        );
        assert!(s.is_empty());
    }

    #[test]
    fn due_timers_fire_in_order_and_count_missed_periods() {
        let mut s = TimerSource::new().unwrap();
        let c = Caller::default();
        assert_eq!(s.register(RegId(1), &uk(10), &c), Outcome::Queued);
        assert_eq!(s.register(RegId(2), &uk(1000), &c), Outcome::Queued);
        let t1 = s.timers[&RegId(1)].next_ns;
        let mut out = Vec::new();
        // 35 ms after the first expiry: 4 periods of timer 1, none of 2.
        s.expire(t1 + 35 * NS_PER_MS, &mut out);
        assert_eq!(
            out,
            [Notice {
                reg: RegId(1),
                broken: false
            }]
        );
        assert_eq!(s.ret_data(RegId(1))[1], 4);
        assert_eq!(s.timers[&RegId(1)].next_ns, t1 + 40 * NS_PER_MS);
        s.delivered(RegId(1));
        assert_eq!(s.ret_data(RegId(1))[1], 0);
        assert_eq!(s.ret_data(RegId(2)), [0, 0]);
    }

    #[test]
    fn removed_timers_never_fire_and_the_heap_stays_bounded() {
        let mut s = TimerSource::new().unwrap();
        let c = Caller::default();
        s.register(RegId(1), &uk(50), &c);
        for i in 2..10_000 {
            s.register(RegId(i), &uk(50), &c);
            s.unregister(RegId(i));
        }
        assert!(s.heap.len() <= 2 * s.timers.len() + 65, "{}", s.heap.len());
        let mut out = Vec::new();
        s.expire(u64::MAX / 2, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].reg, RegId(1));
        s.unregister(RegId(1));
        assert_eq!(s.armed_ns, 0, "disarmed once empty");
    }

    #[test]
    fn the_timerfd_fires_for_the_earliest_timer() {
        let mut s = TimerSource::new().unwrap();
        let c = Caller::default();
        s.register(RegId(1), &uk(60_000), &c);
        s.register(RegId(2), &uk(5), &c);
        let t0 = Instant::now();
        let mut out = Vec::new();
        while out.is_empty() && t0.elapsed().as_secs() < 10 {
            let mut fds = [rustix::event::PollFd::new(
                &s.tfd,
                rustix::event::PollFlags::IN,
            )];
            rustix::event::poll(&mut fds, None).unwrap();
            s.process(Instant::now(), &mut out);
        }
        assert_eq!(out[0].reg, RegId(2));
        assert!(s.ret_data(RegId(2))[1] >= 1);
        assert_eq!(s.ret_data(RegId(1))[1], 0);
    }
}
