//! KEVENT_TIMER (docs/ABI.md §4): `id.raw[0]` is the period in ms, used
//! for the first expiry and every interval; the kevent re-arms until it is
//! unregistered (or delivered, with ONESHOT).
//!
//! # Implementation notes
//! One `timerfd` (CLOCK_MONOTONIC) per registration, all in this source's own
//! epoll instance, which is the one fd the reactor watches. Expirations
//! between two deliveries coalesce into one ready event; their count is
//! `ret_data[1]` (extension, docs/ABI.md §5 item 4). `ret_data[0]` is the time of
//! the latest expiry in CLOCK_MONOTONIC milliseconds truncated to u32 — the
//! "jiffies at HZ=1000" of 2006.
//!
//! A period of 0 would make 2006 fire on every jiffy; here it is refused with
//! EINVAL (BROKEN|DONE) because a timerfd with a zero interval is disarmed
//! and a busy loop helps nobody.

use super::{Notice, Outcome, Source, SourceCtx};
use crate::core::{Caller, Errno, RegId};
use crate::sys::epoll_drain::ready_now;
use crate::sys::monotonic_ms;
use kevent_protocol::kevent::Ukevent;
use rustix::event::epoll;
use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

struct Timer {
    fd: OwnedFd,
    /// Expirations since the last delivery.
    pending: u64,
    /// CLOCK_MONOTONIC ms of the latest expiry seen.
    last_ms: u32,
}

/// The TIMER source.
pub struct TimerSource {
    epoll: OwnedFd,
    timers: HashMap<RegId, Timer>,
}

impl TimerSource {
    /// Creates the source and its epoll instance.
    pub fn new() -> std::io::Result<Self> {
        Ok(TimerSource {
            epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            timers: HashMap::new(),
        })
    }

    fn arm(&self, period_ms: u32) -> rustix::io::Result<OwnedFd> {
        let fd = rustix::time::timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        let period = ms_to_timespec(period_ms);
        let spec = Itimerspec {
            it_interval: period,
            it_value: period,
        };
        rustix::time::timerfd_settime(&fd, TimerfdTimerFlags::empty(), &spec)?;
        Ok(fd)
    }
}

fn ms_to_timespec(ms: u32) -> Timespec {
    Timespec {
        tv_sec: (ms / 1000) as _,
        tv_nsec: ((ms % 1000) as i64 * 1_000_000) as _,
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
        let fd = match self.arm(period) {
            Ok(fd) => fd,
            Err(e) => return Outcome::Failed(e.into()),
        };
        if let Err(e) = epoll::add(
            &self.epoll,
            &fd,
            epoll::EventData::new_u64(reg.0),
            epoll::EventFlags::IN,
        ) {
            return Outcome::Failed(e.into());
        }
        self.timers.insert(
            reg,
            Timer {
                fd,
                pending: 0,
                last_ms: 0,
            },
        );
        Outcome::Queued
    }

    fn modify(&mut self, _reg: RegId, _uk: &Ukevent, _caller: &Caller) -> Outcome {
        // The period is part of the key and cannot change; a timer is never
        // "ready now" except through an expiry already on the ready list.
        Outcome::Queued
    }

    fn unregister(&mut self, reg: RegId) {
        // Closing the timerfd also takes it out of the epoll set.
        self.timers.remove(&reg);
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
        Some(self.epoll.as_fd())
    }

    fn process(&mut self, _now: Instant, out: &mut Vec<Notice>) {
        let ready = ready_now(&self.epoll, "timer");
        if ready.is_empty() {
            return;
        }
        let now_ms = monotonic_ms();
        for (data, _) in ready {
            let reg = RegId(data);
            let Some(t) = self.timers.get_mut(&reg) else {
                continue;
            };
            let mut buf = [0u8; 8];
            match rustix::io::read(&t.fd, &mut buf) {
                Ok(8) => {
                    t.pending += u64::from_ne_bytes(buf);
                    t.last_ms = now_ms;
                    out.push(Notice { reg, broken: false });
                }
                Ok(_) | Err(rustix::io::Errno::AGAIN) => {}
                Err(e) => tracing::warn!("timerfd read: {e}"),
            }
        }
    }
}
