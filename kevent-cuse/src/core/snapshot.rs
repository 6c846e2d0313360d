//! A plain-data picture of the core for `kevent-cuse --status`: taken under
//! the same lock as any request, formatted outside it.

use super::{Core, Limits, Owner, QueueId, QueueStats, Usage};
use kevent_protocol::kevent::KEVENT_MAX;

/// One queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// Queue id (the FUSE file handle).
    pub id: QueueId,
    /// Who opened it.
    pub owner: Owner,
    /// Opened with O_NONBLOCK.
    pub nonblock: bool,
    /// Registered kevents by type.
    pub kevents: [u32; KEVENT_MAX as usize],
    /// Ready, undelivered kevents.
    pub ready: usize,
    /// WAITs sleeping on it (filled in by the dispatcher).
    pub parked: usize,
    /// KEVENT_USER_STAT counters.
    pub stats: QueueStats,
}

/// Every queue, and usage per uid against the limits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CoreSnapshot {
    /// Queues by id.
    pub queues: Vec<QueueSnapshot>,
    /// Usage per uid, by uid.
    pub users: Vec<(u32, Usage)>,
    /// The limits in force.
    pub limits: Limits,
}

impl Core {
    /// The picture of every queue now (O(queues + kevents)).
    pub fn snapshot(&self) -> CoreSnapshot {
        let mut queues: Vec<QueueSnapshot> = self
            .queues
            .iter()
            .map(|(&id, q)| QueueSnapshot {
                id,
                owner: q.owner,
                nonblock: q.nonblock,
                kevents: [0; KEVENT_MAX as usize],
                ready: q.ready_len(),
                parked: 0,
                stats: q.stats,
            })
            .collect();
        queues.sort_unstable_by_key(|q| q.id);
        for r in self.regs.values() {
            if let Ok(i) = queues.binary_search_by_key(&r.queue, |q| q.id) {
                if let Some(n) = queues[i].kevents.get_mut(r.uk.type_ as usize) {
                    *n += 1;
                }
            }
        }
        CoreSnapshot {
            queues,
            users: self.acct.usage(),
            limits: self.acct.limits(),
        }
    }
}
