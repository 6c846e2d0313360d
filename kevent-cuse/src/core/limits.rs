//! Per-user limits: queues, registered kevents and the daemon descriptors
//! held on a user's behalf (issue 8 item 5). Pure bookkeeping, consulted by
//! [`super::Core::open_for`] and [`super::Core::add`].
//!
//! * Every non-root uid has its own budget of each; uid 0 is unlimited.
//! * At a user's limit that user's ukevent (or open) fails with EMFILE and
//!   the daemon warns once per uid; other users are unaffected.
//! * Descriptors also have a daemon-wide budget for all non-root users
//!   together: the daemon's descriptor limit minus a reserve. The per-user
//!   descriptor limit is clamped to half of that budget at start, so one
//!   user at its limit always leaves room for another; only when the whole
//!   budget is used (by several users) does an ADD fail with ENFILE.

use super::Errno;
use kevent_protocol::kevent::{KEVENT_MAX, KEVENT_TIMER};
use std::collections::{HashMap, HashSet};
use tracing::warn;

/// The configured limits (0 means unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open queues per uid.
    pub queues: u32,
    /// Registered kevents per uid (all its queues).
    pub kevents: u32,
    /// Daemon descriptors held for one uid's kevents.
    pub descriptors: u32,
    /// Daemon descriptors for all non-root users together (0: unlimited).
    pub descriptors_total: u64,
}

impl Limits {
    /// Default queues per uid.
    pub const DEFAULT_QUEUES: u32 = 1024;
    /// Default kevents per uid.
    pub const DEFAULT_KEVENTS: u32 = 65536;
    /// Default daemon descriptors per uid.
    pub const DEFAULT_DESCRIPTORS: u32 = 4096;

    /// No limit at all (tests, and a core built without options).
    pub const fn unlimited() -> Self {
        Limits {
            queues: 0,
            kevents: 0,
            descriptors: 0,
            descriptors_total: 0,
        }
    }

    /// The defaults, with the descriptor budget taken from the daemon's
    /// descriptor limit `nofile`: a reserve of max(256, nofile/8) stays for
    /// the daemon itself and root, and one user gets at most half of the
    /// rest.
    pub fn for_nofile(queues: u32, kevents: u32, descriptors: u32, nofile: u64) -> Self {
        let reserve = (nofile / 8).max(256);
        let total = nofile.saturating_sub(reserve).max(2);
        let per_user_cap = (total / 2).min(u32::MAX as u64) as u32;
        let descriptors = match descriptors {
            0 => per_user_cap,
            d => d.min(per_user_cap),
        };
        Limits {
            queues,
            kevents,
            descriptors,
            descriptors_total: total,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::unlimited()
    }
}

/// Daemon descriptors one registered kevent of type `ty` holds: TIMER a
/// timerfd, SOCKET and POLL a copy of the caller's descriptor, INODE an
/// O_PATH pin, NAIO/AIO the caller's file. An upper bound per kevent;
/// shared descriptors of a source (its epoll set) are not charged.
pub fn descriptors_per_kevent(ty: u32) -> u32 {
    match ty {
        KEVENT_TIMER => 1,
        t if t < KEVENT_MAX => 1,
        _ => 0,
    }
}

/// What one uid uses now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Open queues.
    pub queues: u32,
    /// Registered kevents.
    pub kevents: u32,
    /// Daemon descriptors held for its kevents.
    pub descriptors: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Resource {
    Queues,
    Kevents,
    Descriptors,
    DescriptorsTotal,
}

/// Usage per uid against [`Limits`].
#[derive(Debug, Default)]
pub struct Accounting {
    limits: Limits,
    users: HashMap<u32, Usage>,
    /// Descriptors of all non-root users.
    descriptors_total: u64,
    /// Users warned about already (once per uid for the daemon's life).
    warned: HashSet<u32>,
}

impl Accounting {
    /// Accounting against `limits`.
    pub fn new(limits: Limits) -> Self {
        Accounting {
            limits,
            ..Default::default()
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Usage of every uid that holds something, by uid.
    pub fn usage(&self) -> Vec<(u32, Usage)> {
        let mut v: Vec<_> = self
            .users
            .iter()
            .filter(|(_, u)| **u != Usage::default())
            .map(|(&uid, &u)| (uid, u))
            .collect();
        v.sort_unstable_by_key(|&(uid, _)| uid);
        v
    }

    /// Usage of one uid.
    pub fn user(&self, uid: u32) -> Usage {
        self.users.get(&uid).copied().unwrap_or_default()
    }

    fn refuse(&mut self, uid: u32, what: Resource, limit: u64) -> Errno {
        if self.warned.insert(uid) {
            let name = match what {
                Resource::Queues => "queues",
                Resource::Kevents => "kevents",
                Resource::Descriptors => "daemon descriptors",
                Resource::DescriptorsTotal => "daemon descriptors (all users together)",
            };
            warn!(
                "uid {uid} reached the limit of {limit} {name}: requests over its limits fail with {} (warned once per user)",
                if what == Resource::DescriptorsTotal { "ENFILE" } else { "EMFILE" }
            );
        }
        if what == Resource::DescriptorsTotal {
            Errno::ENFILE
        } else {
            Errno::EMFILE
        }
    }

    /// One more queue for `uid`, or EMFILE.
    pub fn open_queue(&mut self, uid: u32) -> Result<(), Errno> {
        let u = self.users.entry(uid).or_default();
        if uid != 0 && self.limits.queues != 0 && u.queues >= self.limits.queues {
            return Err(self.refuse(uid, Resource::Queues, self.limits.queues as u64));
        }
        u.queues += 1;
        Ok(())
    }

    /// A queue of `uid` is gone.
    pub fn close_queue(&mut self, uid: u32) {
        if let Some(u) = self.users.get_mut(&uid) {
            u.queues = u.queues.saturating_sub(1);
        }
        self.tidy(uid);
    }

    /// One more kevent of type `ty` for `uid`, or EMFILE (ENFILE when the
    /// daemon-wide descriptor budget is used up).
    pub fn add_kevent(&mut self, uid: u32, ty: u32) -> Result<(), Errno> {
        let fds = descriptors_per_kevent(ty);
        let l = self.limits;
        let u = self.users.entry(uid).or_default();
        if uid != 0 {
            if l.kevents != 0 && u.kevents >= l.kevents {
                return Err(self.refuse(uid, Resource::Kevents, l.kevents as u64));
            }
            if fds > 0 && l.descriptors != 0 && u.descriptors + fds > l.descriptors {
                return Err(self.refuse(uid, Resource::Descriptors, l.descriptors as u64));
            }
            if fds > 0
                && l.descriptors_total != 0
                && self.descriptors_total + fds as u64 > l.descriptors_total
            {
                return Err(self.refuse(uid, Resource::DescriptorsTotal, l.descriptors_total));
            }
            self.descriptors_total += fds as u64;
        }
        let u = self.users.entry(uid).or_default();
        u.kevents += 1;
        u.descriptors += fds;
        Ok(())
    }

    /// A kevent of type `ty` of `uid` is gone (or was never kept).
    pub fn remove_kevent(&mut self, uid: u32, ty: u32) {
        let fds = descriptors_per_kevent(ty);
        if let Some(u) = self.users.get_mut(&uid) {
            u.kevents = u.kevents.saturating_sub(1);
            u.descriptors = u.descriptors.saturating_sub(fds);
            if uid != 0 {
                self.descriptors_total = self.descriptors_total.saturating_sub(fds as u64);
            }
        }
        self.tidy(uid);
    }

    fn tidy(&mut self, uid: u32) {
        if self.users.get(&uid).is_some_and(|u| *u == Usage::default()) {
            self.users.remove(&uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kevent_protocol::kevent::{KEVENT_INODE, KEVENT_POLL};

    fn small() -> Limits {
        Limits {
            queues: 2,
            kevents: 3,
            descriptors: 2,
            descriptors_total: 3,
        }
    }

    #[test]
    fn queues_are_limited_per_uid_and_root_is_not() {
        let mut a = Accounting::new(small());
        assert_eq!(a.open_queue(1000), Ok(()));
        assert_eq!(a.open_queue(1000), Ok(()));
        assert_eq!(a.open_queue(1000), Err(Errno::EMFILE));
        assert_eq!(a.open_queue(1001), Ok(()));
        for _ in 0..10 {
            assert_eq!(a.open_queue(0), Ok(()));
        }
        a.close_queue(1000);
        assert_eq!(a.open_queue(1000), Ok(()));
        assert_eq!(a.user(1000).queues, 2);
    }

    #[test]
    fn kevents_and_descriptors_are_limited_and_refunded() {
        let mut a = Accounting::new(Limits {
            descriptors_total: 0,
            ..small()
        });
        assert_eq!(a.add_kevent(1000, KEVENT_TIMER), Ok(()));
        assert_eq!(a.add_kevent(1000, KEVENT_INODE), Ok(()));
        // Two descriptors used: the third descriptor-holding kevent fails.
        assert_eq!(a.add_kevent(1000, KEVENT_POLL), Err(Errno::EMFILE));
        // A type with no descriptor still counts as a kevent.
        assert_eq!(a.add_kevent(1000, 77), Ok(()));
        assert_eq!(a.add_kevent(1000, 77), Err(Errno::EMFILE));
        assert_eq!(
            a.user(1000),
            Usage {
                queues: 0,
                kevents: 3,
                descriptors: 2
            }
        );
        a.remove_kevent(1000, KEVENT_TIMER);
        assert_eq!(a.add_kevent(1000, KEVENT_POLL), Ok(()));
        // Another user is untouched.
        assert_eq!(a.add_kevent(1001, KEVENT_POLL), Ok(()));
        for _ in 0..100 {
            assert_eq!(a.add_kevent(0, KEVENT_TIMER), Ok(()));
        }
    }

    #[test]
    fn the_shared_budget_gives_enfile() {
        let mut a = Accounting::new(small());
        assert_eq!(a.add_kevent(1000, KEVENT_TIMER), Ok(()));
        assert_eq!(a.add_kevent(1000, KEVENT_TIMER), Ok(()));
        assert_eq!(a.add_kevent(1001, KEVENT_TIMER), Ok(()));
        assert_eq!(a.add_kevent(1001, KEVENT_TIMER), Err(Errno::ENFILE));
        // Root does not count against it.
        assert_eq!(a.add_kevent(0, KEVENT_TIMER), Ok(()));
        a.remove_kevent(1000, KEVENT_TIMER);
        assert_eq!(a.add_kevent(1001, KEVENT_TIMER), Ok(()));
        assert_eq!(
            a.usage(),
            vec![
                (
                    0,
                    Usage {
                        queues: 0,
                        kevents: 1,
                        descriptors: 1
                    }
                ),
                (
                    1000,
                    Usage {
                        queues: 0,
                        kevents: 1,
                        descriptors: 1
                    }
                ),
                (
                    1001,
                    Usage {
                        queues: 0,
                        kevents: 2,
                        descriptors: 2
                    }
                ),
            ]
        );
    }

    #[test]
    fn one_user_never_takes_more_than_half_of_the_budget() {
        let l = Limits::for_nofile(1024, 65536, 4096, 1024);
        // 1024 - 256 reserve = 768 for users; one user at most 384.
        assert_eq!(l.descriptors_total, 768);
        assert_eq!(l.descriptors, 384);
        let l = Limits::for_nofile(1024, 65536, 4096, 1 << 20);
        assert_eq!(l.descriptors, 4096);
        assert_eq!(l.descriptors_total, (1 << 20) - (1 << 17));
    }
}
