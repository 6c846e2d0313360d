//! Reading a source's own epoll set without blocking: the reactor calls a
//! source when that set is readable, and the source takes one batch of
//! ready entries. One batch, not "until empty": level-triggered entries
//! that stay ready would come back forever; if more remain, the set is
//! still readable and the reactor calls the source again on its next turn,
//! after serving the channel.

use rustix::event::epoll;
use rustix::time::Timespec;
use std::os::fd::AsFd;

/// Entries fetched per epoll_wait call.
const BATCH: usize = 256;

/// Up to one batch of ready entries, as (data, flags); `what` names the set
/// in logs.
pub fn ready_now(ep: impl AsFd, what: &str) -> Vec<(u64, epoll::EventFlags)> {
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let mut events = Vec::with_capacity(BATCH);
    loop {
        match epoll::wait(
            ep.as_fd(),
            rustix::buffer::spare_capacity(&mut events),
            Some(&zero),
        ) {
            Ok(_) => {
                return events
                    .iter()
                    .map(|ev| (ev.data.u64(), { ev.flags }))
                    .collect()
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                tracing::error!("{what} epoll_wait: {e}");
                return Vec::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_one_batch_and_leaves_the_rest_readable() {
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
        let fds: Vec<_> = (0..BATCH + 3)
            .map(|_| rustix::event::eventfd(1, rustix::event::EventfdFlags::CLOEXEC).unwrap())
            .collect();
        for (i, fd) in fds.iter().enumerate() {
            epoll::add(
                &ep,
                fd,
                epoll::EventData::new_u64(i as u64),
                epoll::EventFlags::IN,
            )
            .unwrap();
        }
        // Level-triggered and never drained: each call must still return.
        assert_eq!(ready_now(&ep, "test").len(), BATCH);
        assert_eq!(ready_now(&ep, "test").len(), BATCH);
        // The rotation reaches every entry eventually.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 {
            seen.extend(ready_now(&ep, "test").into_iter().map(|(d, _)| d));
        }
        assert_eq!(seen.len(), BATCH + 3);
    }
}
