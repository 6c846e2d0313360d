//! One queue: its registrations by key and its ready FIFO (docs/ABI.md §2-3).

use super::RegId;
use kevent_protocol::kevent::KeventKey;
use std::collections::{HashMap, VecDeque};

/// Who opened a queue (for limits and `kevent-cuse --status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owner {
    /// Process (thread) id of the opener, 0 when not visible.
    pub pid: u32,
    /// fsuid of the opener: charged for the queue.
    pub uid: u32,
}

/// The 2006 `KEVENT_USER_STAT` counters of one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// WAIT calls answered.
    pub waits: u64,
    /// ukevents that were ready at once at ADD.
    pub ready_at_once: u64,
    /// ukevents handed to a source by ADD (registered or ready at once).
    pub total: u64,
}

/// One open of the device.
#[derive(Debug, Default)]
pub struct Queue {
    /// Opened with O_NONBLOCK: WAIT never sleeps (docs/ABI.md §3, §5 item 6).
    pub nonblock: bool,
    /// Who opened it.
    pub owner: Owner,
    /// KEVENT_USER_STAT counters.
    pub stats: QueueStats,
    /// Registrations by key, oldest first: duplicates are allowed and the
    /// oldest matches first.
    by_key: HashMap<KeventKey, Vec<RegId>>,
    count: usize,
    /// Each registration at most once (coalescing).
    ready: VecDeque<RegId>,
}

impl Queue {
    pub(super) fn new(nonblock: bool, owner: Owner) -> Self {
        Queue {
            nonblock,
            owner,
            ..Default::default()
        }
    }

    /// Registered kevents.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Ready, undelivered kevents.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    pub(super) fn insert(&mut self, key: KeventKey, reg: RegId) {
        self.by_key.entry(key).or_default().push(reg);
        self.count += 1;
    }

    pub(super) fn find(&self, key: &KeventKey) -> Option<RegId> {
        self.by_key.get(key).and_then(|v| v.first().copied())
    }

    /// Drops `reg` from the index and, when it was ready, from the FIFO.
    pub(super) fn forget(&mut self, key: &KeventKey, reg: RegId, was_ready: bool) {
        if let Some(v) = self.by_key.get_mut(key) {
            if let Some(i) = v.iter().position(|r| *r == reg) {
                v.remove(i);
                self.count -= 1;
            }
            if v.is_empty() {
                self.by_key.remove(key);
            }
        }
        if was_ready {
            self.ready.retain(|r| *r != reg);
        }
    }

    pub(super) fn push_ready(&mut self, reg: RegId) {
        self.ready.push_back(reg);
    }

    pub(super) fn pop_ready(&mut self) -> Option<RegId> {
        self.ready.pop_front()
    }

    pub(super) fn ready_iter(&self) -> impl Iterator<Item = RegId> + '_ {
        self.ready.iter().copied()
    }

    pub(super) fn all_regs(&self) -> Vec<RegId> {
        self.by_key.values().flatten().copied().collect()
    }
}
