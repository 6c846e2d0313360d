//! The stall watchdog: no caller can stall another.
//!
//! Reading or writing a caller's memory can block for as long as the
//! caller likes: its argument may lie on a page of a file whose FUSE server
//! never answers, or on a userfaultfd page. Every such access is announced
//! with [`Watchdog::enter`] (which gives an [`Access`] guard). A watchdog
//! thread notices an access older than `--stall-ms`: that thread is
//! *abandoned* (it finishes its one request whenever the access returns,
//! then exits) and a replacement for its role (a reader of the same fd, or
//! the event thread) is started at once, so everybody else keeps full
//! service. Stuck accesses are counted per uid: at `--max-stalled`, that
//! uid's new requests fail with EAGAIN before touching its memory; other
//! users are unaffected. Idle, the watchdog sleeps without a timeout.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Starts a replacement for the calling thread's role.
pub type Respawn = Arc<dyn Fn() + Send + Sync>;

thread_local! {
    static ROLE: RefCell<Option<Respawn>> = const { RefCell::new(None) };
    static ABANDONED: Cell<bool> = const { Cell::new(false) };
}

/// Declares how to replace the calling thread if it gets stuck.
pub fn set_role(respawn: Respawn) {
    ROLE.with(|r| *r.borrow_mut() = Some(respawn));
}

/// True once the calling thread was replaced: it must exit after the
/// request it is serving.
pub fn abandoned() -> bool {
    ABANDONED.with(|a| a.get())
}

struct Slot {
    uid: u32,
    since: Instant,
    stuck: bool,
    respawn: Option<Respawn>,
}

#[derive(Default)]
struct State {
    slots: HashMap<u64, Slot>,
    next: u64,
    stuck_by_uid: HashMap<u32, usize>,
    /// The watchdog thread waits without a timeout.
    idle: bool,
    stopping: bool,
}

/// Watches caller-memory accesses (see the module documentation).
pub struct Watchdog {
    stall: Duration,
    max_stalled: usize,
    state: Mutex<State>,
    cv: Condvar,
}

/// Too many stuck accesses for this uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// One announced access; dropping it ends the access.
pub struct Access<'a> {
    wd: &'a Watchdog,
    id: u64,
}

impl Watchdog {
    /// A watchdog abandoning accesses older than `stall`, at most
    /// `max_stalled` stuck per uid (uid 0 included: root's own callers are
    /// as able to hang as anybody's).
    pub fn new(stall: Duration, max_stalled: usize) -> Arc<Self> {
        Arc::new(Watchdog {
            stall,
            max_stalled: max_stalled.max(1),
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses `uid` while it has `--max-stalled` stuck accesses.
    pub fn admit(&self, uid: u32) -> Result<(), Busy> {
        let st = self.lock();
        if st.stuck_by_uid.get(&uid).copied().unwrap_or(0) >= self.max_stalled {
            return Err(Busy);
        }
        Ok(())
    }

    /// Announces an access to the memory of a process of `uid`.
    pub fn enter(&self, uid: u32) -> Result<Access<'_>, Busy> {
        let respawn = ROLE.with(|r| r.borrow().clone());
        let mut st = self.lock();
        if st.stuck_by_uid.get(&uid).copied().unwrap_or(0) >= self.max_stalled {
            return Err(Busy);
        }
        let id = st.next;
        st.next += 1;
        st.slots.insert(
            id,
            Slot {
                uid,
                since: Instant::now(),
                stuck: false,
                respawn,
            },
        );
        if st.idle {
            st.idle = false;
            self.cv.notify_one();
        }
        Ok(Access { wd: self, id })
    }

    fn leave(&self, id: u64) {
        let mut st = self.lock();
        if let Some(slot) = st.slots.remove(&id) {
            if slot.stuck {
                if let Some(n) = st.stuck_by_uid.get_mut(&slot.uid) {
                    *n -= 1;
                    if *n == 0 {
                        st.stuck_by_uid.remove(&slot.uid);
                    }
                }
                info!(
                    "uid {}: a stuck access returned after {} ms",
                    slot.uid,
                    slot.since.elapsed().as_millis()
                );
                ABANDONED.with(|a| a.set(true));
            }
        }
    }

    /// Number of stuck accesses now (all uids).
    pub fn stuck(&self) -> usize {
        self.lock().stuck_by_uid.values().sum()
    }

    /// Starts the watchdog thread.
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let wd = self.clone();
        std::thread::Builder::new()
            .name("kevent-watchdog".into())
            .spawn(move || wd.run())?;
        Ok(())
    }

    /// Stops the watchdog thread.
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.cv.notify_one();
    }

    fn run(&self) {
        let mut st = self.lock();
        loop {
            if st.stopping {
                return;
            }
            let now = Instant::now();
            let mut respawn = Vec::new();
            for slot in st.slots.values_mut() {
                if !slot.stuck && now.saturating_duration_since(slot.since) >= self.stall {
                    slot.stuck = true;
                    respawn.push((slot.uid, slot.respawn.clone()));
                }
            }
            for (uid, _) in &respawn {
                *st.stuck_by_uid.entry(*uid).or_default() += 1;
            }
            if !respawn.is_empty() {
                drop(st);
                for (uid, r) in respawn {
                    warn!(
                        "a serving thread is stuck in the memory of a process of uid {uid} for more than {} ms: abandoned and replaced",
                        self.stall.as_millis()
                    );
                    if let Some(r) = r {
                        r();
                    }
                }
                st = self.lock();
                continue;
            }
            let next = st
                .slots
                .values()
                .filter(|s| !s.stuck)
                .map(|s| s.since + self.stall)
                .min();
            st = match next {
                None => {
                    st.idle = true;
                    self.cv.wait(st).unwrap_or_else(|e| e.into_inner())
                }
                Some(t) => {
                    let left = t.saturating_duration_since(Instant::now());
                    self.cv
                        .wait_timeout(st, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}

impl Drop for Access<'_> {
    fn drop(&mut self) {
        self.wd.leave(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_stuck_access_is_replaced_and_counted_per_uid() {
        let wd = Watchdog::new(Duration::from_millis(20), 2);
        wd.start().unwrap();
        let spawned = Arc::new(AtomicUsize::new(0));
        let s2 = spawned.clone();
        set_role(Arc::new(move || {
            s2.fetch_add(1, Ordering::SeqCst);
        }));
        let a = wd.enter(1000).unwrap();
        let t0 = Instant::now();
        while spawned.load(Ordering::SeqCst) == 0 && t0.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(spawned.load(Ordering::SeqCst), 1, "replacement started");
        assert_eq!(wd.stuck(), 1);
        let b = wd.enter(1000).unwrap();
        while wd.stuck() < 2 && t0.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(wd.stuck(), 2);
        assert!(wd.enter(1000).is_err(), "uid 1000 at its cap: EAGAIN");
        assert!(wd.admit(1000).is_err());
        assert!(wd.enter(1001).is_ok(), "another uid is unaffected");
        assert!(!abandoned());
        drop(a);
        assert!(abandoned(), "the returning thread learns it was replaced");
        assert!(wd.admit(1000).is_ok(), "below the cap again");
        drop(b);
        assert_eq!(wd.stuck(), 0);
        wd.stop();
    }
}
