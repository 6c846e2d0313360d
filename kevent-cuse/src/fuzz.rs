//! Randomized checking ("fuzzing") without extra tooling: a seeded
//! generator drives
//!
//! * the wire decoders of the `protocol` crate ([`decoders`]) with random
//!   and mutated FUSE requests, ukevent arrays and control headers: no
//!   panic, and every accepted input obeys the decoder's contract (length
//!   fields agree, encode(decode(b)) == b);
//! * the [`Core`] ([`core_ops`]) with random ADD / REMOVE / MODIFY / WAIT /
//!   fire / release sequences against a fake source, checked step by step
//!   against a reference model: every write-back and return value is the
//!   model's, each kevent fired is delivered at most once per firing and
//!   accounted for exactly once, nothing is delivered after REMOVE or
//!   release, and every registration the source holds is one the core
//!   knows (no leak, no double unregister).
//!
//! A short run is a unit test (`cargo test`); `scripts/fuzz` runs
//! `examples/fuzz.rs` for as long as asked, with a new seed per round and
//! the failing seed printed so that it can be replayed.

use crate::core::{Caller, Core, Errno, QueueId, RegId};
use crate::sources::{Notice, Outcome, Source};
use kevent_protocol::fuse::{self, opcode, Request};
use kevent_protocol::kevent::{
    KeventKey, KeventUserControl, Ukevent, KEVENT_MAX, KEVENT_REQ_ONESHOT, KEVENT_RET_BROKEN,
    KEVENT_RET_DONE,
};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A small seeded generator (splitmix64): reproducible from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `num`/`den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// A u32 biased towards edge values.
    pub fn edgy_u32(&mut self) -> u32 {
        match self.below(6) {
            0 => 0,
            1 => u32::MAX,
            2 => self.below(4) as u32,
            3 => 1u32 << self.below(32),
            _ => self.next_u64() as u32,
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

// ---------------------------------------------------------------- decoders

const OPCODES: [u32; 13] = [
    opcode::FUSE_INIT,
    opcode::CUSE_INIT,
    opcode::FUSE_OPEN,
    opcode::FUSE_RELEASE,
    opcode::FUSE_FLUSH,
    opcode::FUSE_GETATTR,
    opcode::FUSE_INTERRUPT,
    opcode::FUSE_IOCTL,
    opcode::FUSE_POLL,
    opcode::FUSE_DESTROY,
    opcode::FUSE_FORGET,
    opcode::FUSE_BATCH_FORGET,
    9999,
];

/// A FUSE request of a random known opcode with a plausible body, before
/// mutation. The header's `len` is right for the result.
fn plausible_request(rng: &mut Rng) -> Vec<u8> {
    let op = OPCODES[rng.below(OPCODES.len() as u64) as usize];
    let mut body = Vec::new();
    match op {
        opcode::FUSE_IOCTL => {
            let in_size = rng.below(3 * 40 + 13) as u32;
            body.extend_from_slice(&rng.next_u64().to_ne_bytes()); // fh
            body.extend_from_slice(&rng.edgy_u32().to_ne_bytes()); // flags
            body.extend_from_slice(&rng.edgy_u32().to_ne_bytes()); // cmd
            body.extend_from_slice(&rng.next_u64().to_ne_bytes()); // arg
            body.extend_from_slice(&in_size.to_ne_bytes());
            body.extend_from_slice(&rng.edgy_u32().to_ne_bytes()); // out_size
            let data = rng.bytes(in_size as usize);
            body.extend(data);
        }
        _ => {
            let n = rng.below(48) as usize;
            body.extend(rng.bytes(n));
        }
    }
    let len = (40 + body.len()) as u32;
    let mut b = Vec::with_capacity(len as usize);
    b.extend_from_slice(&len.to_ne_bytes());
    b.extend_from_slice(&op.to_ne_bytes());
    b.extend_from_slice(&rng.next_u64().to_ne_bytes()); // unique
    b.extend_from_slice(&rng.next_u64().to_ne_bytes()); // nodeid
    for _ in 0..3 {
        b.extend_from_slice(&rng.edgy_u32().to_ne_bytes()); // uid gid pid
    }
    b.extend_from_slice(&[0; 4]); // total_extlen, padding
    b.extend(body);
    b
}

/// Flips, truncates, extends or rewrites a buffer.
fn mutate(rng: &mut Rng, b: &mut Vec<u8>) {
    for _ in 0..rng.below(4) {
        match rng.below(5) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len() as u64) as usize;
                b[i] ^= 1 << rng.below(8);
            }
            1 => b.truncate(rng.below(b.len() as u64 + 1) as usize),
            2 => {
                let n = rng.below(16) as usize;
                let extra = rng.bytes(n);
                b.extend(extra);
            }
            3 if b.len() >= 4 => {
                // A header length that agrees with the new size sometimes.
                let len = if rng.chance(1, 2) {
                    b.len() as u32
                } else {
                    rng.edgy_u32()
                };
                b[0..4].copy_from_slice(&len.to_ne_bytes());
            }
            _ => {}
        }
    }
}

fn check_fuse(buf: &[u8]) {
    let Ok(m) = fuse::decode(buf) else {
        return;
    };
    assert_eq!(
        m.header.len as usize,
        buf.len(),
        "accepted a length mismatch"
    );
    if let Request::Ioctl(io) = &m.request {
        assert_eq!(io.data.len(), io.in_size as usize, "ioctl data vs in_size");
        assert!(40 + 32 + io.data.len() <= buf.len());
    }
    // The log line of every accepted request must format.
    let _ = m.to_string();
}

fn check_ukevents(rng: &mut Rng) {
    let len = rng.below(5 * 40 + 7) as usize;
    let raw = rng.bytes(len);
    let n = match rng.below(4) {
        0 => usize::MAX,
        1 => usize::MAX / 40 + 1,
        _ => rng.below(8) as usize,
    };
    match Ukevent::decode_array(&raw, n) {
        Some(v) => {
            assert_eq!(v.len(), n, "decode_array returned a short array");
            assert!(n * 40 <= raw.len());
            assert_eq!(Ukevent::encode_array(&v), raw[..n * 40]);
        }
        None => assert!(n.checked_mul(40).is_none_or(|need| need > raw.len())),
    }
    match Ukevent::decode(&raw) {
        Some(u) => assert_eq!(u.encode()[..], raw[..40]),
        None => assert!(raw.len() < 40),
    }
    match KeventUserControl::decode(&raw) {
        Some(c) => assert_eq!(c.encode()[..], raw[..12]),
        None => assert!(raw.len() < 12),
    }
}

/// Runs `iters` rounds of the decoder checks from `seed`. Panics (with the
/// seed in the message of the caller) on a violated contract.
pub fn decoders(seed: u64, iters: u64) {
    let mut rng = Rng::new(seed);
    for _ in 0..iters {
        let mut b = if rng.chance(1, 8) {
            let n = rng.below(96) as usize;
            rng.bytes(n)
        } else {
            plausible_request(&mut rng)
        };
        if rng.chance(3, 4) {
            mutate(&mut rng, &mut b);
        }
        check_fuse(&b);
        check_ukevents(&mut rng);
    }
}

// -------------------------------------------------------------- core model

/// The fake source's side of the story, shared with the driver.
#[derive(Debug, Default)]
struct FakeState {
    /// Registrations the source holds.
    live: BTreeMap<RegId, Ukevent>,
    /// Registrations queued by `register`, oldest first, until the driver
    /// takes them.
    queued: VecDeque<RegId>,
    /// Notices handed out at the next `process`.
    pending: Vec<Notice>,
    /// `delivered` calls per registration.
    delivered: HashMap<RegId, u32>,
    /// What the next `modify` answers.
    modify_outcome: Option<Outcome>,
    /// Firings since the last delivery (ret_data[1]).
    fired: HashMap<RegId, u32>,
}

/// The outcome a fake registration gets, from `id.raw[0]`.
fn fake_outcome(uk: &Ukevent) -> Outcome {
    match uk.id[0] % 5 {
        0 => Outcome::Failed(Errno::EINVAL),
        1 => Outcome::Ready([7, uk.id[0]]),
        _ => Outcome::Queued,
    }
}

struct FakeSource(Arc<Mutex<FakeState>>);

impl FakeSource {
    fn st(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().expect("fake state")
    }
}

impl Source for FakeSource {
    fn name(&self) -> &'static str {
        "fuzz"
    }
    fn register(&mut self, reg: RegId, uk: &Ukevent, _caller: &Caller) -> Outcome {
        let out = fake_outcome(uk);
        let mut st = self.st();
        if out == Outcome::Queued {
            assert!(st.live.insert(reg, *uk).is_none(), "RegId reused");
            st.queued.push_back(reg);
        }
        out
    }
    fn modify(&mut self, reg: RegId, uk: &Ukevent, _caller: &Caller) -> Outcome {
        let mut st = self.st();
        assert!(st.live.contains_key(&reg), "modify of unknown {reg:?}");
        st.live.insert(reg, *uk);
        st.modify_outcome.take().unwrap_or(Outcome::Queued)
    }
    fn unregister(&mut self, reg: RegId) {
        let mut st = self.st();
        assert!(
            st.live.remove(&reg).is_some(),
            "unregister of unknown {reg:?}"
        );
        st.fired.remove(&reg);
    }
    fn ret_data(&self, reg: RegId) -> [u32; 2] {
        [
            reg.0 as u32,
            self.st().fired.get(&reg).copied().unwrap_or(0),
        ]
    }
    fn delivered(&mut self, reg: RegId) {
        let mut st = self.st();
        assert!(st.live.contains_key(&reg), "delivery of unknown {reg:?}");
        *st.delivered.entry(reg).or_default() += 1;
        st.fired.remove(&reg);
    }
    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
    fn process(&mut self, _now: Instant, out: &mut Vec<Notice>) {
        out.append(&mut self.st().pending);
    }
}

/// The event type the fake source serves.
const FAKE: u32 = 3;

#[derive(Debug, Clone)]
struct MReg {
    reg: RegId,
    uk: Ukevent,
    ready: bool,
    broken: bool,
    /// MODIFY hit it while it was on the ready list: its ret_flags at
    /// delivery are the MODIFY rule's business (issue 7 item 6), not
    /// checked here; its accounting still is.
    flags_free: bool,
}

#[derive(Debug, Default)]
struct MQueue {
    /// Registrations in insertion order (the oldest of a key matches).
    regs: Vec<MReg>,
    ready: VecDeque<RegId>,
}

impl MQueue {
    fn find(&self, key: &KeventKey) -> Option<usize> {
        self.regs.iter().position(|r| r.uk.key() == *key)
    }
    fn by_reg(&mut self, reg: RegId) -> Option<&mut MReg> {
        self.regs.iter_mut().find(|r| r.reg == reg)
    }
    fn drop_reg(&mut self, reg: RegId) {
        self.regs.retain(|r| r.reg != reg);
        self.ready.retain(|r| *r != reg);
    }
}

struct Driver {
    rng: Rng,
    core: Core,
    st: Arc<Mutex<FakeState>>,
    max: u32,
    model: BTreeMap<QueueId, MQueue>,
    /// Deliveries the model expects per registration (accounting).
    delivered: HashMap<RegId, u32>,
    /// Registrations that are gone: never to be delivered again.
    gone: Vec<RegId>,
}

impl Driver {
    fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let max = 1 + rng.below(12) as u32;
        let st = Arc::new(Mutex::new(FakeState::default()));
        let mut core = Core::new(max);
        core.set_source(FAKE, Box::new(FakeSource(st.clone())));
        Driver {
            rng,
            core,
            st,
            max,
            model: BTreeMap::new(),
            delivered: HashMap::new(),
            gone: Vec::new(),
        }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.st.lock().expect("fake state")
    }

    fn pick_queue(&mut self) -> Option<QueueId> {
        if self.model.is_empty() {
            return None;
        }
        let i = self.rng.below(self.model.len() as u64) as usize;
        self.model.keys().nth(i).copied()
    }

    /// A ukevent of the fake type from a small key space (collisions and
    /// duplicates are the point), now and then of another type.
    fn random_uk(&mut self) -> Ukevent {
        let type_ = match self.rng.below(20) {
            0 => KEVENT_MAX + self.rng.below(3) as u32,
            1 => 1, // a type without a source here
            _ => FAKE,
        };
        Ukevent {
            id: [self.rng.below(12) as u32, self.rng.below(2) as u32],
            type_,
            event: self.rng.edgy_u32(),
            req_flags: if self.rng.chance(1, 3) {
                KEVENT_REQ_ONESHOT
            } else {
                0
            },
            ret_flags: self.rng.edgy_u32(),
            ret_data: [self.rng.edgy_u32(), 0],
            user: [self.rng.below(3) as u32, 0],
        }
    }

    /// A key that exists on `q` most of the time.
    fn random_key_uk(&mut self, q: QueueId) -> Ukevent {
        let mut uk = self.random_uk();
        let regs = &self.model[&q].regs;
        if !regs.is_empty() && self.rng.chance(3, 4) {
            let r = &regs[self.rng.below(regs.len() as u64) as usize];
            uk.id = r.uk.id;
            uk.user = r.uk.user;
        }
        uk
    }

    fn open(&mut self) {
        let q = self.core.open(self.rng.chance(1, 2));
        assert!(self.model.insert(q, MQueue::default()).is_none());
    }

    fn release(&mut self, q: QueueId) {
        self.core.release(q);
        let mq = self.model.remove(&q).expect("model queue");
        self.gone.extend(mq.regs.iter().map(|r| r.reg));
    }

    fn add(&mut self, q: QueueId) {
        let n = self.rng.below(5) as usize;
        let input: Vec<Ukevent> = (0..n).map(|_| self.random_uk()).collect();
        let out = self.core.add(q, &input, &Caller::default());
        let mut queued = std::mem::take(&mut self.st().queued);
        let mq = self.model.get_mut(&q).expect("model queue");
        if mq.regs.len() + n > self.max as usize {
            assert_eq!(out.result, Err(Errno::ENFILE), "limit {}", self.max);
            assert!(out.events.is_empty() && out.num.is_none());
            return;
        }
        let mut expect = Vec::new();
        let mut last: Result<Option<()>, Errno> = Ok(None);
        for uk in &input {
            let mut w = *uk;
            if uk.type_ >= KEVENT_MAX {
                expect.push(w);
                last = Err(Errno::E2BIG);
                continue;
            }
            w.ret_flags = 0;
            if uk.type_ != FAKE {
                w.ret_flags = KEVENT_RET_BROKEN | KEVENT_RET_DONE;
                expect.push(w);
                last = Err(Errno::EOPNOTSUPP);
                continue;
            }
            match fake_outcome(uk) {
                Outcome::Queued => {
                    let reg = queued.pop_front();
                    let reg = reg.expect("the source saw the registration");
                    mq.regs.push(MReg {
                        reg,
                        uk: w,
                        ready: false,
                        broken: false,
                        flags_free: false,
                    });
                    last = Ok(None);
                }
                Outcome::Ready(d) => {
                    w.ret_flags = KEVENT_RET_DONE;
                    w.ret_data = d;
                    expect.push(w);
                    last = Ok(Some(()));
                }
                Outcome::Failed(e) => {
                    w.ret_flags = KEVENT_RET_BROKEN | KEVENT_RET_DONE;
                    expect.push(w);
                    last = Err(e);
                }
            }
        }
        assert!(queued.is_empty(), "the source queued more than the model");
        assert_eq!(out.events, expect, "ADD write-back");
        assert_eq!(out.num, Some(expect.len() as u32), "ADD num");
        let result = match last {
            _ if input.is_empty() => Ok(0),
            Ok(None) => Ok(expect.len() as u32),
            Ok(Some(())) => Ok(1),
            Err(e) => Err(e),
        };
        assert_eq!(out.result, result, "ADD return value");
    }

    fn remove(&mut self, q: QueueId) {
        let n = 1 + self.rng.below(3) as usize;
        let input: Vec<Ukevent> = (0..n).map(|_| self.random_key_uk(q)).collect();
        let out = self.core.remove(q, &input);
        assert_eq!(out.result, Ok(0));
        let mq = self.model.get_mut(&q).expect("model queue");
        for (uk, got) in input.iter().zip(&out.events) {
            match mq.find(&uk.key()) {
                Some(i) => {
                    let reg = mq.regs[i].reg;
                    mq.drop_reg(reg);
                    self.gone.push(reg);
                    assert_eq!(got.ret_flags, uk.ret_flags | KEVENT_RET_DONE);
                }
                None => assert_eq!(
                    got.ret_flags,
                    uk.ret_flags | KEVENT_RET_BROKEN | KEVENT_RET_DONE
                ),
            }
        }
        assert_eq!(out.events.len(), n);
    }

    fn modify(&mut self, q: QueueId) {
        let uk = self.random_key_uk(q);
        let outcome = match self.rng.below(4) {
            0 => Outcome::Ready([0, 0]),
            1 => Outcome::Failed(Errno::EINVAL),
            _ => Outcome::Queued,
        };
        self.st().modify_outcome = Some(outcome);
        let (out, _woke) = self.core.modify(q, &[uk], &Caller::default());
        self.st().modify_outcome = None;
        assert_eq!(out.result, Ok(0));
        let mq = self.model.get_mut(&q).expect("model queue");
        let got = out.events[0];
        let Some(i) = mq.find(&uk.key()) else {
            assert_eq!(
                got.ret_flags,
                uk.ret_flags | KEVENT_RET_BROKEN | KEVENT_RET_DONE
            );
            return;
        };
        let r = &mut mq.regs[i];
        r.uk.event = uk.event;
        r.uk.req_flags = uk.req_flags;
        if r.ready {
            r.flags_free = true;
        }
        let reg = r.reg;
        match outcome {
            Outcome::Failed(_) => assert_eq!(
                got.ret_flags,
                uk.ret_flags | KEVENT_RET_BROKEN | KEVENT_RET_DONE
            ),
            Outcome::Queued => assert_eq!(got.ret_flags, uk.ret_flags | KEVENT_RET_DONE),
            Outcome::Ready(_) => {
                assert_eq!(got.ret_flags, uk.ret_flags | KEVENT_RET_DONE);
                if !r.ready {
                    r.ready = true;
                    mq.ready.push_back(reg);
                }
            }
        }
    }

    /// The source reports some live registrations (and a stale one now and
    /// then, which must change nothing).
    fn fire(&mut self) {
        let live: Vec<RegId> = self.st().live.keys().copied().collect();
        let mut notices = Vec::new();
        for _ in 0..self.rng.below(4) {
            let reg = if !self.gone.is_empty() && self.rng.chance(1, 5) {
                self.gone[self.rng.below(self.gone.len() as u64) as usize]
            } else if !live.is_empty() {
                live[self.rng.below(live.len() as u64) as usize]
            } else {
                continue;
            };
            let broken = self.rng.chance(1, 8);
            notices.push(Notice { reg, broken });
        }
        {
            let mut st = self.st();
            for n in &notices {
                if st.live.contains_key(&n.reg) {
                    *st.fired.entry(n.reg).or_default() += 1;
                }
            }
            st.pending.extend(notices.iter().copied());
        }
        let woke = self.core.process_source(FAKE, Instant::now());
        let mut expect_woke = Vec::new();
        for n in notices {
            for (q, mq) in self.model.iter_mut() {
                if let Some(r) = mq.by_reg(n.reg) {
                    r.broken |= n.broken;
                    if !r.ready {
                        r.ready = true;
                        mq.ready.push_back(n.reg);
                        expect_woke.push(*q);
                    }
                }
            }
        }
        expect_woke.sort_unstable();
        expect_woke.dedup();
        assert_eq!(woke, expect_woke, "queues woken by a firing");
    }

    /// WAIT: peek, then take all, some or none (a failed write to the
    /// caller takes none).
    fn wait(&mut self, q: QueueId) {
        let n = self.rng.below(6) as usize;
        let got = self.core.peek_ready(q, n);
        let mq = self.model.get_mut(&q).expect("model queue");
        let want: Vec<RegId> = mq.ready.iter().take(n).copied().collect();
        assert_eq!(got.len(), want.len(), "WAIT count");
        assert_eq!(self.core.ready_len(q), mq.ready.len(), "ready length");
        for (ev, reg) in got.iter().zip(&want) {
            let r = mq.regs.iter().find(|r| r.reg == *reg).expect("model reg");
            assert!(!self.gone.contains(reg), "delivered after REMOVE");
            assert_eq!(ev.key(), r.uk.key(), "WAIT order");
            assert_eq!(ev.ret_data[0], reg.0 as u32, "ret_data from the source");
            if !r.flags_free {
                let flags = if r.broken {
                    KEVENT_RET_BROKEN | KEVENT_RET_DONE
                } else {
                    KEVENT_RET_DONE
                };
                assert_eq!(ev.ret_flags, flags, "ret_flags of {reg:?}");
            }
        }
        let take = match self.rng.below(4) {
            0 => 0,
            1 => self.rng.below(got.len() as u64 + 1) as usize,
            _ => got.len(),
        };
        self.core.commit_delivered(q, take);
        for reg in want.into_iter().take(take) {
            *self.delivered.entry(reg).or_default() += 1;
            let mq = self.model.get_mut(&q).expect("model queue");
            assert_eq!(mq.ready.pop_front(), Some(reg));
            let r = mq.by_reg(reg).expect("model reg");
            r.ready = false;
            r.flags_free = false;
            if r.broken || r.uk.req_flags & KEVENT_REQ_ONESHOT != 0 {
                mq.drop_reg(reg);
                self.gone.push(reg);
            }
        }
    }

    /// The source holds exactly the model's registrations, and each
    /// delivery was counted once.
    fn check_accounting(&self) {
        let st = self.st();
        let mut model: Vec<RegId> = self
            .model
            .values()
            .flat_map(|q| q.regs.iter().map(|r| r.reg))
            .collect();
        model.sort();
        let live: Vec<RegId> = st.live.keys().copied().collect();
        assert_eq!(live, model, "source registrations vs model");
        assert_eq!(self.core.registration_count(), model.len());
        for (reg, n) in &st.delivered {
            assert_eq!(self.delivered.get(reg), Some(n), "deliveries of {reg:?}");
        }
        assert_eq!(st.delivered.len(), self.delivered.len());
    }

    fn step(&mut self) {
        if self.model.is_empty() || self.rng.chance(1, 40) {
            self.open();
            return;
        }
        let q = self.pick_queue().expect("a queue");
        match self.rng.below(100) {
            0..=29 => self.add(q),
            30..=44 => self.remove(q),
            45..=59 => self.modify(q),
            60..=79 => self.fire(),
            80..=97 => self.wait(q),
            _ => self.release(q),
        }
    }
}

/// Runs `steps` random operations against the core from `seed`, checking
/// the model after each; at the end every queue is released and nothing
/// may stay registered.
pub fn core_ops(seed: u64, steps: u64) {
    let mut d = Driver::new(seed);
    for _ in 0..steps {
        d.step();
        d.check_accounting();
    }
    let queues: Vec<QueueId> = d.model.keys().copied().collect();
    for q in queues {
        d.release(q);
    }
    d.check_accounting();
    assert_eq!(d.core.queue_count(), 0);
    assert!(d.st().live.is_empty(), "registrations left after release");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CI's short run: fixed seeds, so a failure reproduces.
    #[test]
    fn decoders_survive_random_and_mutated_input() {
        for seed in 0..20 {
            decoders(seed, 2_000);
        }
    }

    #[test]
    fn random_core_sequences_match_the_model() {
        for seed in 0..40 {
            core_ops(seed, 1_500);
        }
    }

    #[test]
    fn the_generator_is_reproducible() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(9).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        let mut r = Rng::new(9);
        assert_ne!(r.next_u64(), r.next_u64());
    }
}
