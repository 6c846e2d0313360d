//! The docs/ABI.md §2-3 rules against a fake source: no syscalls.

use super::*;
use crate::sources::{Notice, Outcome, Source};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// A fake source: `id.raw[0]` decides the outcome (0 = fail EINVAL,
/// 1 = ready at once, anything else = queued); fires on demand.
#[derive(Default)]
struct FakeState {
    live: HashSet<RegId>,
    pending: Vec<Notice>,
    delivered: Vec<RegId>,
    modify_ready: bool,
}

struct Fake(Arc<Mutex<FakeState>>);

impl Source for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn register(&mut self, reg: RegId, uk: &Ukevent, _c: &Caller) -> Outcome {
        match uk.id[0] {
            0 => Outcome::Failed(Errno::EINVAL),
            1 => Outcome::Ready([11, 22]),
            _ => {
                self.0.lock().unwrap().live.insert(reg);
                Outcome::Queued
            }
        }
    }
    fn modify(&mut self, _reg: RegId, _uk: &Ukevent, _c: &Caller) -> Outcome {
        if self.0.lock().unwrap().modify_ready {
            Outcome::Ready([0, 0])
        } else {
            Outcome::Queued
        }
    }
    fn unregister(&mut self, reg: RegId) {
        assert!(
            self.0.lock().unwrap().live.remove(&reg),
            "unregister of unknown {reg:?}"
        );
    }
    fn ret_data(&self, reg: RegId) -> [u32; 2] {
        [reg.0 as u32, 5]
    }
    fn delivered(&mut self, reg: RegId) {
        self.0.lock().unwrap().delivered.push(reg);
    }
    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
    fn process(&mut self, _now: Instant, out: &mut Vec<Notice>) {
        out.append(&mut self.0.lock().unwrap().pending);
    }
}

const FAKE: u32 = 2;

fn setup(max: u32) -> (Core, Arc<Mutex<FakeState>>, QueueId) {
    let st = Arc::new(Mutex::new(FakeState::default()));
    let mut core = Core::new(max);
    core.set_source(FAKE, Box::new(Fake(st.clone())));
    let q = core.open(false);
    (core, st, q)
}

fn uk(id0: u32, user0: u32) -> Ukevent {
    Ukevent {
        id: [id0, 0],
        type_: FAKE,
        event: 1,
        user: [user0, 0],
        ..Default::default()
    }
}

/// Fires every live registration of the fake source.
fn fire_all(core: &mut Core, st: &Arc<Mutex<FakeState>>) -> Vec<QueueId> {
    let mut regs: Vec<RegId> = st.lock().unwrap().live.iter().copied().collect();
    regs.sort();
    st.lock()
        .unwrap()
        .pending
        .extend(regs.into_iter().map(|reg| Notice { reg, broken: false }));
    core.process_source(FAKE, Instant::now())
}

fn take(core: &mut Core, q: QueueId, n: usize) -> Vec<Ukevent> {
    let v = core.peek_ready(q, n);
    core.commit_delivered(q, v.len());
    v
}

#[test]
fn add_queued_writes_nothing_back_and_returns_zero() {
    let (mut core, _, q) = setup(1023);
    let out = core.add(q, &[uk(100, 1), uk(200, 2)], &Caller::default());
    assert_eq!(out.events, vec![]);
    assert_eq!(out.num, Some(0));
    assert_eq!(out.result, Ok(0));
    assert_eq!(core.queue(q).unwrap().len(), 2);
}

#[test]
fn add_ready_at_once_is_written_back_done_and_not_registered() {
    let (mut core, _, q) = setup(1023);
    let out = core.add(q, &[uk(1, 9)], &Caller::default());
    assert_eq!(out.result, Ok(1));
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].ret_flags, KEVENT_RET_DONE);
    assert_eq!(out.events[0].ret_data, [11, 22]);
    assert_eq!(core.queue(q).unwrap().len(), 0);
}

#[test]
fn add_return_value_follows_the_last_ukevent() {
    let (mut core, _, q) = setup(1023);
    // ready, failed, queued: last queued -> count of written back (2)
    let out = core.add(q, &[uk(1, 0), uk(0, 0), uk(100, 0)], &Caller::default());
    assert_eq!(out.result, Ok(2));
    assert_eq!(out.num, Some(2));
    assert_eq!(out.events[0].ret_flags, KEVENT_RET_DONE);
    assert_eq!(out.events[1].ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE);
    // queued, failed: -1/EINVAL
    let out = core.add(q, &[uk(100, 1), uk(0, 0)], &Caller::default());
    assert_eq!(out.result, Err(Errno::EINVAL));
    assert_eq!(out.num, Some(1));
    // queued, ready: 1
    let out = core.add(q, &[uk(100, 2), uk(1, 0)], &Caller::default());
    assert_eq!(out.result, Ok(1));
}

#[test]
fn unknown_type_is_written_back_unchanged_with_e2big() {
    let (mut core, _, q) = setup(1023);
    let mut bad = uk(100, 0);
    bad.type_ = KEVENT_MAX;
    bad.ret_flags = 0x40;
    let out = core.add(q, &[bad], &Caller::default());
    assert_eq!(out.result, Err(Errno::E2BIG));
    assert_eq!(out.events, vec![bad]);
}

#[test]
fn type_without_a_source_fails_eopnotsupp() {
    let (mut core, _, q) = setup(1023);
    let mut u = uk(100, 0);
    u.type_ = 0;
    let out = core.add(q, &[u], &Caller::default());
    assert_eq!(out.result, Err(Errno::EOPNOTSUPP));
    assert_eq!(out.events[0].ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE);
}

#[test]
fn add_past_the_limit_adds_nothing_with_enfile() {
    let (mut core, _, q) = setup(3);
    assert_eq!(
        core.add(q, &[uk(100, 1), uk(100, 2)], &Caller::default())
            .result,
        Ok(0)
    );
    let out = core.add(q, &[uk(100, 3), uk(100, 4)], &Caller::default());
    assert_eq!(out.result, Err(Errno::ENFILE));
    assert_eq!(out.num, None);
    assert_eq!(core.queue(q).unwrap().len(), 2);
    assert_eq!(core.add(q, &[uk(100, 3)], &Caller::default()).result, Ok(0));
}

#[test]
fn remove_matches_on_id_and_user_only() {
    let (mut core, st, q) = setup(1023);
    core.add(q, &[uk(100, 7)], &Caller::default());
    let mut other_type = uk(100, 7);
    other_type.type_ = 5;
    other_type.event = 0xff;
    let out = core.remove(q, &[uk(100, 8), other_type]);
    assert_eq!(out.result, Ok(0));
    assert_eq!(out.num, None);
    assert_eq!(out.events[0].ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE);
    assert_eq!(out.events[1].ret_flags, KEVENT_RET_DONE);
    assert_eq!(out.events[1].type_, 5, "written back in place, as given");
    assert!(st.lock().unwrap().live.is_empty());
}

#[test]
fn remove_drops_an_uncollected_ready_event() {
    let (mut core, _st, q) = setup(1023);
    core.add(q, &[uk(100, 7)], &Caller::default());
    let st = _st;
    assert_eq!(fire_all(&mut core, &st), vec![q]);
    assert_eq!(core.ready_len(q), 1);
    core.remove(q, &[uk(100, 7)]);
    assert_eq!(core.ready_len(q), 0);
    assert!(take(&mut core, q, 10).is_empty());
}

#[test]
fn firing_coalesces_and_is_fifo() {
    let (mut core, st, q) = setup(1023);
    core.add(q, &[uk(100, 1), uk(100, 2)], &Caller::default());
    fire_all(&mut core, &st);
    assert_eq!(
        fire_all(&mut core, &st),
        Vec::<QueueId>::new(),
        "already ready"
    );
    assert_eq!(core.ready_len(q), 2);
    let got = take(&mut core, q, 10);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|u| u.ret_flags == KEVENT_RET_DONE));
    assert_eq!(got[0].ret_data[1], 5);
}

#[test]
fn oneshot_is_unregistered_on_delivery_periodic_stays() {
    let (mut core, st, q) = setup(1023);
    let mut one = uk(100, 1);
    one.req_flags = KEVENT_REQ_ONESHOT;
    core.add(q, &[one, uk(100, 2)], &Caller::default());
    fire_all(&mut core, &st);
    assert_eq!(take(&mut core, q, 1)[0].user[0], 1);
    assert_eq!(core.queue(q).unwrap().len(), 1);
    assert_eq!(take(&mut core, q, 1)[0].user[0], 2);
    assert_eq!(core.queue(q).unwrap().len(), 1);
    assert_eq!(st.lock().unwrap().delivered.len(), 2);
}

#[test]
fn wait_max_is_respected_and_rest_stays_ready() {
    let (mut core, st, q) = setup(1023);
    core.add(q, &[uk(100, 1), uk(100, 2), uk(100, 3)], &Caller::default());
    fire_all(&mut core, &st);
    assert_eq!(take(&mut core, q, 2).len(), 2);
    assert_eq!(core.ready_len(q), 1);
}

#[test]
fn peek_without_commit_loses_nothing() {
    let (mut core, st, q) = setup(1023);
    let mut one = uk(100, 1);
    one.req_flags = KEVENT_REQ_ONESHOT;
    core.add(q, &[one], &Caller::default());
    fire_all(&mut core, &st);
    assert_eq!(core.peek_ready(q, 5).len(), 1);
    assert_eq!(core.ready_len(q), 1);
    assert_eq!(core.queue(q).unwrap().len(), 1);
}

#[test]
fn modify_replaces_mask_and_flags_and_rechecks() {
    let (mut core, st, q) = setup(1023);
    core.add(q, &[uk(100, 1)], &Caller::default());
    let mut m = uk(100, 1);
    m.event = 0x30;
    m.req_flags = KEVENT_REQ_ONESHOT;
    let (out, woke) = core.modify(q, &[m, uk(555, 0)], &Caller::default());
    assert!(!woke);
    assert_eq!(out.events[0].ret_flags, KEVENT_RET_DONE);
    assert_eq!(out.events[1].ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE);
    st.lock().unwrap().modify_ready = true;
    let (_, woke) = core.modify(q, &[m], &Caller::default());
    assert!(woke);
    let got = take(&mut core, q, 5);
    assert_eq!(got[0].event, 0x30);
    assert_eq!(got[0].req_flags, KEVENT_REQ_ONESHOT);
    assert_eq!(
        core.queue(q).unwrap().len(),
        0,
        "now oneshot: gone after delivery"
    );
}

#[test]
fn broken_notice_delivers_broken_done_then_unregisters() {
    let (mut core, st, q) = setup(1023);
    core.add(q, &[uk(100, 1)], &Caller::default());
    let reg = *st.lock().unwrap().live.iter().next().unwrap();
    st.lock()
        .unwrap()
        .pending
        .push(Notice { reg, broken: true });
    core.process_source(FAKE, Instant::now());
    let got = take(&mut core, q, 5);
    assert_eq!(got[0].ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE);
    assert_eq!(core.queue(q).unwrap().len(), 0);
}

#[test]
fn queues_are_independent_and_release_frees_everything() {
    let (mut core, st, q1) = setup(1023);
    let q2 = core.open(true);
    core.add(q1, &[uk(100, 1)], &Caller::default());
    core.add(q2, &[uk(100, 1)], &Caller::default());
    assert_eq!(
        core.remove(q2, &[uk(100, 1)]).events[0].ret_flags,
        KEVENT_RET_DONE
    );
    assert_eq!(core.queue(q1).unwrap().len(), 1);
    core.release(q1);
    assert!(st.lock().unwrap().live.is_empty());
    assert_eq!(core.registration_count(), 0);
    assert!(core.queue(q2).unwrap().nonblock);
}

#[test]
fn duplicate_keys_are_not_detected_and_remove_takes_the_oldest() {
    let (mut core, _, q) = setup(1023);
    let mut a = uk(100, 1);
    a.event = 1;
    let mut b = uk(100, 1);
    b.event = 2;
    core.add(q, &[a, b], &Caller::default());
    assert_eq!(core.queue(q).unwrap().len(), 2);
    core.remove(q, &[uk(100, 1)]);
    assert_eq!(core.queue(q).unwrap().len(), 1);
    let (out, _) = core.modify(q, &[uk(100, 1)], &Caller::default());
    assert_eq!(out.events[0].ret_flags, KEVENT_RET_DONE);
}

#[test]
fn modify_of_a_ready_kevent_keeps_done_and_its_place() {
    let (mut core, st, q) = setup(1023);
    core.add(q, &[uk(100, 1), uk(200, 2)], &Caller::default());
    fire_all(&mut core, &st);
    let mut m = uk(100, 1);
    m.event = 0x30;
    let (out, woke) = core.modify(q, &[m], &Caller::default());
    assert!(!woke, "already on the ready list: it did not grow");
    assert_eq!(out.events[0].ret_flags, KEVENT_RET_DONE);
    assert_eq!(core.ready_len(q), 2, "still ready, once");
    let got = take(&mut core, q, 5);
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].user[0], got[0].event),
        (1, 0x30),
        "same place, new mask"
    );
    assert_eq!(got[0].ret_flags, KEVENT_RET_DONE, "DONE kept");
    assert_eq!(
        core.queue(q).unwrap().len(),
        2,
        "re-armed, not unregistered"
    );
}

#[test]
fn modify_of_a_broken_ready_kevent_keeps_broken() {
    let (mut core, st, q) = setup(1023);
    core.add(q, &[uk(100, 1)], &Caller::default());
    let reg = *st.lock().unwrap().live.iter().next().unwrap();
    st.lock()
        .unwrap()
        .pending
        .push(Notice { reg, broken: true });
    core.process_source(FAKE, Instant::now());
    core.modify(q, &[uk(100, 1)], &Caller::default());
    let got = take(&mut core, q, 5);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE);
    assert_eq!(
        core.queue(q).unwrap().len(),
        0,
        "unregistered after delivery"
    );
}

// --- per-user limits and the status snapshot (issue 8 item 5, issue 10 item 5)

fn user(uid: u32) -> Caller {
    Caller {
        tid: 4000 + uid,
        uid,
        gid: uid,
        ..Default::default()
    }
}

#[test]
fn a_user_at_its_kevent_limit_gets_emfile_per_ukevent_and_others_do_not() {
    let (mut core, st, _) = setup(1023);
    core.set_limits(Limits {
        queues: 2,
        kevents: 3,
        descriptors: 100,
        descriptors_total: 0,
    });
    let a = core.open_for(false, Owner { pid: 1, uid: 1000 }).unwrap();
    let b = core.open_for(false, Owner { pid: 2, uid: 1001 }).unwrap();
    let out = core.add(
        a,
        &[uk(10, 0), uk(11, 0), uk(12, 0), uk(13, 0), uk(14, 0)],
        &user(1000),
    );
    // The first three are registered, the last two refused one by one.
    assert_eq!(out.result, Err(Errno::EMFILE));
    assert_eq!(out.events.len(), 2);
    assert_eq!(out.events[0].id[0], 13);
    assert_eq!(out.events[0].ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE);
    assert_eq!(core.queue(a).unwrap().len(), 3);
    // Another queue of the same user: still over.
    let a2 = core.open_for(false, Owner { pid: 1, uid: 1000 }).unwrap();
    assert_eq!(
        core.add(a2, &[uk(20, 0)], &user(1000)).result,
        Err(Errno::EMFILE)
    );
    // A third queue is over the queue limit.
    assert_eq!(
        core.open_for(false, Owner { pid: 1, uid: 1000 }),
        Err(Errno::EMFILE)
    );
    // Another user and root are unaffected.
    assert_eq!(
        core.add(b, &[uk(30, 0), uk(31, 0)], &user(1001)).result,
        Ok(0)
    );
    assert_eq!(core.add(b, &[uk(32, 0)], &user(0)).result, Ok(0));
    // A ready-at-once ukevent is not kept, so it is not charged.
    core.release(a2);
    let a2 = core.open_for(false, Owner { pid: 1, uid: 1000 }).unwrap();
    // Release refunds everything.
    core.release(a);
    assert_eq!(
        core.add(a2, &[uk(40, 0), uk(41, 0), uk(1, 0)], &user(1000))
            .result,
        Ok(1)
    );
    assert_eq!(
        core.snapshot()
            .users
            .iter()
            .find(|u| u.0 == 1000)
            .unwrap()
            .1
            .kevents,
        2
    );
    // Delivery of a ONESHOT refunds too.
    let mut one = uk(50, 0);
    one.req_flags = KEVENT_REQ_ONESHOT;
    assert_eq!(core.add(a2, &[one], &user(1000)).result, Ok(0));
    assert_eq!(
        core.add(a2, &[uk(51, 0)], &user(1000)).result,
        Err(Errno::EMFILE)
    );
    fire_all(&mut core, &st);
    let got = take(&mut core, a2, 10);
    assert_eq!(got.len(), 3);
    assert_eq!(core.add(a2, &[uk(51, 0)], &user(1000)).result, Ok(0));
}

#[test]
fn the_snapshot_counts_queues_kevents_ready_and_the_2006_statistics() {
    let (mut core, st, q0) = setup(1023);
    let q = core.open_for(true, Owner { pid: 77, uid: 1000 }).unwrap();
    core.add(q, &[uk(10, 0), uk(11, 0), uk(1, 0)], &user(1000));
    let mut other = uk(12, 0);
    other.type_ = 4; // no source: refused, not counted
    core.add(q, &[other], &user(1000));
    fire_all(&mut core, &st);
    take(&mut core, q, 1);
    take(&mut core, q, 0);
    let s = core.snapshot();
    assert_eq!(s.queues.len(), 2);
    assert_eq!(s.queues[0].id, q0);
    assert_eq!(s.queues[0].owner, Owner::default());
    let x = &s.queues[1];
    assert_eq!(x.id, q);
    assert_eq!(x.owner, Owner { pid: 77, uid: 1000 });
    assert!(x.nonblock);
    assert_eq!(x.kevents, [0, 0, 2, 0, 0, 0]);
    assert_eq!(x.ready, 1);
    assert_eq!(
        x.stats,
        QueueStats {
            waits: 2,
            ready_at_once: 1,
            total: 3
        }
    );
    assert_eq!(
        s.users,
        vec![
            (
                0,
                Usage {
                    queues: 1,
                    kevents: 0,
                    descriptors: 0
                }
            ),
            (
                1000,
                Usage {
                    queues: 1,
                    kevents: 2,
                    descriptors: 2
                }
            )
        ]
    );
}
