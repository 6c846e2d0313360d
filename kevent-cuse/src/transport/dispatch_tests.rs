//! The dispatcher against a fake transport (a reply buffer), fake caller
//! memory and a fake source: exact reply bytes for each ioctl path.

use super::*;
use crate::sources::{Notice, Outcome, Source};
use kevent_protocol::bytes::Writer;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

const TID: u32 = 4242;
const ARG: u64 = 0x10_0000;

/// One caller's memory: `len` bytes at ARG; reads or writes outside fault.
#[derive(Clone)]
struct FakeMem {
    mem: Rc<RefCell<Vec<u8>>>,
    readonly: bool,
    reachable: bool,
}

impl CallerMemory for FakeMem {
    fn read(&self, tid: u32, addr: u64, len: usize) -> Result<Vec<u8>, MemError> {
        if !self.reachable || tid != TID {
            return Err(MemError::Denied);
        }
        let m = self.mem.borrow();
        let off = addr.checked_sub(ARG).ok_or(MemError::Fault)? as usize;
        m.get(off..off + len)
            .map(<[u8]>::to_vec)
            .ok_or(MemError::Fault)
    }
    fn write(&self, tid: u32, addr: u64, data: &[u8]) -> Result<(), MemError> {
        if !self.reachable || tid != TID {
            return Err(MemError::Denied);
        }
        if self.readonly {
            return Err(MemError::Fault);
        }
        let mut m = self.mem.borrow_mut();
        let off = addr.checked_sub(ARG).ok_or(MemError::Fault)? as usize;
        m.get_mut(off..off + data.len())
            .ok_or(MemError::Fault)?
            .copy_from_slice(data);
        Ok(())
    }
}

#[derive(Clone, Default)]
struct Sink(Rc<RefCell<Vec<Vec<u8>>>>);
impl ReplySink for Sink {
    fn send(&mut self, msg: &[u8]) {
        self.0.borrow_mut().push(msg.to_vec());
    }
}

/// Queued unless id.raw[0] == 1 (ready at once); fires on demand.
#[derive(Default)]
struct FakeSrc(Arc<Mutex<Vec<Notice>>>, Arc<Mutex<Vec<RegId>>>);
use crate::core::RegId;
impl Source for FakeSrc {
    fn name(&self) -> &'static str {
        "fake"
    }
    fn register(&mut self, reg: RegId, uk: &Ukevent, _: &Caller) -> Outcome {
        if uk.id[0] == 1 {
            return Outcome::Ready([3, 4]);
        }
        self.1.lock().unwrap().push(reg);
        Outcome::Queued
    }
    fn modify(&mut self, _: RegId, _: &Ukevent, _: &Caller) -> Outcome {
        Outcome::Queued
    }
    fn unregister(&mut self, reg: RegId) {
        self.1.lock().unwrap().retain(|r| *r != reg);
    }
    fn ret_data(&self, _: RegId) -> [u32; 2] {
        [7, 1]
    }
    fn delivered(&mut self, _: RegId) {}
    fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
    fn process(&mut self, _: Instant, out: &mut Vec<Notice>) {
        out.append(&mut self.0.lock().unwrap());
    }
}

struct Rig {
    d: Dispatcher,
    mem: FakeMem,
    sink: Sink,
    notices: Arc<Mutex<Vec<Notice>>>,
    live: Arc<Mutex<Vec<RegId>>>,
    unique: u64,
    fh: u64,
}

fn rig(transport: TransportKind) -> Rig {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let live = Arc::new(Mutex::new(Vec::new()));
    let mut core = Core::new(1023);
    core.set_source(
        KEVENT_TIMER,
        Box::new(FakeSrc(notices.clone(), live.clone())),
    );
    let mem = FakeMem {
        mem: Rc::new(RefCell::new(vec![0; 4096])),
        readonly: false,
        reachable: true,
    };
    let sink = Sink::default();
    let d = Dispatcher::new(
        Config {
            transport,
            max_kevents: 1023,
            file_mode: 0o666,
            access: Default::default(),
        },
        core,
        Box::new(mem.clone()),
        Box::new(sink.clone()),
    );
    let mut r = Rig {
        d,
        mem,
        sink,
        notices,
        live,
        unique: 100,
        fh: 0,
    };
    r.fh = r.open(0);
    r
}

fn request(opcode: u32, unique: u64, pid: u32, body: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32((40 + body.len()) as u32)
        .u32(opcode)
        .u64(unique)
        .u64(1) // nodeid
        .u32(0) // uid
        .u32(0) // gid
        .u32(pid)
        .u16(0)
        .u16(0)
        .bytes(body);
    w.into_vec()
}

fn timer(id0: u32, user0: u32) -> Ukevent {
    Ukevent {
        id: [id0, 0],
        type_: KEVENT_TIMER,
        event: KEVENT_TIMER_FIRED,
        user: [user0, 0],
        ..Default::default()
    }
}

/// A parsed reply: (unique, error, body).
fn parse(msg: &[u8]) -> (u64, i32, Vec<u8>) {
    assert_eq!(
        u32::from_ne_bytes(msg[0..4].try_into().unwrap()) as usize,
        msg.len()
    );
    (
        u64::from_ne_bytes(msg[8..16].try_into().unwrap()),
        i32::from_ne_bytes(msg[4..8].try_into().unwrap()),
        msg[16..].to_vec(),
    )
}

fn ioctl_result(body: &[u8]) -> (i32, u32, Vec<u8>) {
    (
        i32::from_ne_bytes(body[0..4].try_into().unwrap()),
        u32::from_ne_bytes(body[4..8].try_into().unwrap()),
        body[16..].to_vec(),
    )
}

impl Rig {
    fn next(&mut self) -> u64 {
        self.unique += 2;
        self.unique
    }
    fn replies(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.sink.0.borrow_mut())
    }
    fn open(&mut self, flags: u32) -> u64 {
        let u = self.next();
        self.d.handle(
            &request(
                opcode::FUSE_OPEN,
                u,
                TID,
                &[flags.to_ne_bytes(), [0; 4]].concat(),
            ),
            Instant::now(),
        );
        let r = self.replies();
        let (uu, err, body) = parse(&r[0]);
        assert_eq!((uu, err), (u, 0));
        u64::from_ne_bytes(body[0..8].try_into().unwrap())
    }
    fn put_arg(&self, hdr: KeventUserControl, evs: &[Ukevent]) {
        let mut m = self.mem.mem.borrow_mut();
        m[..12].copy_from_slice(&hdr.encode());
        let a = Ukevent::encode_array(evs);
        m[12..12 + a.len()].copy_from_slice(&a);
    }
    fn hdr(&self) -> KeventUserControl {
        KeventUserControl::decode(&self.mem.mem.borrow()[..12]).unwrap()
    }
    fn ev(&self, i: usize) -> Ukevent {
        Ukevent::decode(&self.mem.mem.borrow()[12 + 40 * i..]).unwrap()
    }
    /// Sends an ioctl; returns its unique.
    fn ioctl(&mut self, flags: u32, cmd: u32, data: &[u8], out_size: u32, pid: u32) -> u64 {
        let u = self.next();
        let mut b = Writer::default();
        b.u64(self.fh)
            .u32(flags)
            .u32(cmd)
            .u64(ARG)
            .u32(data.len() as u32)
            .u32(out_size)
            .bytes(data);
        self.d.handle(
            &request(opcode::FUSE_IOCTL, u, pid, &b.into_vec()),
            Instant::now(),
        );
        u
    }
    fn cuse_ioctl(&mut self, cmd: u32) -> u64 {
        self.ioctl(ioctl_flags::FUSE_IOCTL_UNRESTRICTED, cmd, &[], 0, TID)
    }
    fn fire_all(&mut self) {
        let regs = self.live.lock().unwrap().clone();
        self.notices
            .lock()
            .unwrap()
            .extend(regs.into_iter().map(|reg| Notice { reg, broken: false }));
        self.d.source_ready(KEVENT_TIMER, Instant::now());
    }
}

fn ctl(cmd: u32, num: u32, timeout: u32) -> KeventUserControl {
    KeventUserControl { cmd, num, timeout }
}

#[test]
fn cuse_fast_path_add_is_one_round_trip() {
    let mut r = rig(TransportKind::Cuse);
    r.put_arg(ctl(KEVENT_CTL_ADD, 2, 0), &[timer(100, 1), timer(1, 2)]);
    let u = r.cuse_ioctl(KEVENT_USER_CTL);
    let replies = r.replies();
    assert_eq!(replies.len(), 1);
    let (uu, err, body) = parse(&replies[0]);
    assert_eq!((uu, err), (u, 0));
    assert_eq!(
        ioctl_result(&body),
        (1, 0, vec![]),
        "last ready at once -> 1, no data"
    );
    assert_eq!(r.hdr().num, 1);
    let e = r.ev(0);
    assert_eq!(e.user[0], 2);
    assert_eq!(e.ret_flags, KEVENT_RET_DONE);
    assert_eq!(e.ret_data, [3, 4]);
}

#[test]
fn cuse_retry_path_gathers_header_then_array() {
    let mut r = rig(TransportKind::Cuse);
    r.mem.reachable = false;
    r.d.mem = Box::new(r.mem.clone());
    let hdr = ctl(KEVENT_CTL_ADD, 1, 0);
    let ev = timer(1, 9);
    // leg 1: no data -> RETRY for the 12-byte header only
    let u1 = r.cuse_ioctl(KEVENT_USER_CTL);
    let (uu, err, body) = parse(&r.replies()[0]);
    assert_eq!((uu, err), (u1, 0));
    let mut want = Writer::default();
    want.i32(0)
        .u32(ioctl_flags::FUSE_IOCTL_RETRY)
        .u32(1)
        .u32(0)
        .u64(ARG)
        .u64(12);
    assert_eq!(body, want.into_vec());
    // leg 2: header only -> RETRY for header+array in and out
    let flags = ioctl_flags::FUSE_IOCTL_UNRESTRICTED;
    r.ioctl(flags, KEVENT_USER_CTL, &hdr.encode(), 0, TID);
    let (_, _, body) = parse(&r.replies()[0]);
    let mut want = Writer::default();
    want.i32(0).u32(ioctl_flags::FUSE_IOCTL_RETRY).u32(1).u32(1);
    want.u64(ARG).u64(52).u64(ARG).u64(52);
    assert_eq!(body, want.into_vec());
    // leg 3: everything -> result with the written-back bytes as data
    let data = [hdr.encode().to_vec(), ev.encode().to_vec()].concat();
    let u3 = r.ioctl(flags, KEVENT_USER_CTL, &data, 52, TID);
    let (uu, err, body) = parse(&r.replies()[0]);
    assert_eq!((uu, err), (u3, 0));
    let (result, oflags, out) = ioctl_result(&body);
    assert_eq!((result, oflags), (1, 0));
    assert_eq!(out.len(), 52);
    assert_eq!(KeventUserControl::decode(&out).unwrap().num, 1);
    let back = Ukevent::decode(&out[12..]).unwrap();
    assert_eq!(back.ret_flags, KEVENT_RET_DONE);
    assert_eq!(back.user[0], 9);
}

#[test]
fn retry_leg_with_stale_sizes_asks_again() {
    let mut r = rig(TransportKind::Cuse);
    r.mem.reachable = false;
    r.d.mem = Box::new(r.mem.clone());
    // The header now says num=2 but the kernel gathered room for one.
    let data = [
        ctl(KEVENT_CTL_ADD, 2, 0).encode().to_vec(),
        timer(100, 0).encode().to_vec(),
    ]
    .concat();
    r.ioctl(
        ioctl_flags::FUSE_IOCTL_UNRESTRICTED,
        KEVENT_USER_CTL,
        &data,
        52,
        TID,
    );
    let (_, _, body) = parse(&r.replies()[0]);
    let (_, oflags, iovs) = ioctl_result(&body);
    assert_eq!(oflags, ioctl_flags::FUSE_IOCTL_RETRY);
    assert_eq!(&iovs[8..16], &92u64.to_ne_bytes());
    assert_eq!(r.d.core().registration_count(), 0, "nothing registered");
}

#[test]
fn fuse_restricted_ioctl_uses_the_kernels_header_copy() {
    let mut r = rig(TransportKind::FuseFile);
    let hdr = ctl(KEVENT_CTL_ADD, 1, 0);
    r.put_arg(ctl(99, 99, 99), &[timer(100, 5)]); // memory header is stale
    let u = r.ioctl(0, KEVENT_USER_CTL, &hdr.encode(), 12, TID);
    let (uu, err, body) = parse(&r.replies()[0]);
    assert_eq!((uu, err), (u, 0));
    assert_eq!(ioctl_result(&body), (0, 0, vec![]));
    assert_eq!(r.hdr().num, 0, "num rewritten in the caller's memory");
    assert_eq!(r.d.core().registration_count(), 1);
}

#[test]
fn fuse_caller_out_of_reach_is_eperm_not_retry() {
    let mut r = rig(TransportKind::FuseFile);
    let u = r.ioctl(
        0,
        KEVENT_USER_CTL,
        &ctl(KEVENT_CTL_ADD, 1, 0).encode(),
        12,
        0,
    );
    assert_eq!(parse(&r.replies()[0]), (u, -libc::EPERM, vec![]));
}

#[test]
fn unknown_ioctl_is_enodev_and_bad_cmd_is_einval() {
    let mut r = rig(TransportKind::Cuse);
    let u = r.cuse_ioctl(0x1234);
    assert_eq!(parse(&r.replies()[0]), (u, -libc::ENODEV, vec![]));
    for cmd in [KEVENT_CTL_INIT, 99] {
        r.put_arg(ctl(cmd, 0, 0), &[]);
        let u = r.cuse_ioctl(KEVENT_USER_CTL);
        assert_eq!(parse(&r.replies()[0]), (u, -libc::EINVAL, vec![]));
    }
}

#[test]
fn unreadable_array_is_einval_and_registers_nothing() {
    let mut r = rig(TransportKind::Cuse);
    r.put_arg(ctl(KEVENT_CTL_ADD, 200, 0), &[]); // 200*40 > 4096 bytes mapped
    let u = r.cuse_ioctl(KEVENT_USER_CTL);
    assert_eq!(parse(&r.replies()[0]), (u, -libc::EINVAL, vec![]));
    assert_eq!(r.d.core().registration_count(), 0);
}

#[test]
fn unwritable_argument_is_einval_and_registers_nothing() {
    let mut r = rig(TransportKind::Cuse);
    r.put_arg(ctl(KEVENT_CTL_ADD, 1, 0), &[timer(100, 0)]);
    r.mem.readonly = true;
    r.d.mem = Box::new(r.mem.clone());
    let u = r.cuse_ioctl(KEVENT_USER_CTL);
    assert_eq!(parse(&r.replies()[0]), (u, -libc::EINVAL, vec![]));
    assert_eq!(r.d.core().registration_count(), 0);
}

#[test]
fn enfile_touches_nothing() {
    let mut r = rig(TransportKind::Cuse);
    r.put_arg(ctl(KEVENT_CTL_ADD, 1024, 0), &[]);
    let u = r.cuse_ioctl(KEVENT_USER_CTL);
    assert_eq!(parse(&r.replies()[0]), (u, -libc::ENFILE, vec![]));
    assert_eq!(r.hdr().num, 1024);
}

#[test]
fn wait_parks_and_an_interrupt_answers_with_zero() {
    let mut r = rig(TransportKind::Cuse);
    r.put_arg(ctl(KEVENT_CTL_WAIT, 4, 5000), &[]);
    let u = r.cuse_ioctl(KEVENT_USER_WAIT);
    assert!(r.replies().is_empty(), "parked");
    assert_eq!(r.d.parked_count(), 1);
    let i = r.next();
    r.d.handle(
        &request(opcode::FUSE_INTERRUPT, i | 1, TID, &u.to_ne_bytes()),
        Instant::now(),
    );
    let (uu, err, body) = parse(&r.replies()[0]);
    assert_eq!((uu, err), (u, 0));
    assert_eq!(ioctl_result(&body).0, 0);
    assert_eq!(r.hdr().num, 0);
}

#[test]
fn wait_with_timeout_zero_wakes_on_first_event_and_writes_whole_ukevents() {
    let mut r = rig(TransportKind::Cuse);
    r.put_arg(ctl(KEVENT_CTL_ADD, 2, 0), &[timer(100, 1), timer(200, 2)]);
    r.cuse_ioctl(KEVENT_USER_CTL);
    r.replies();
    r.put_arg(ctl(KEVENT_CTL_WAIT, 8, 0), &[]);
    let u = r.cuse_ioctl(KEVENT_USER_CTL);
    assert!(r.replies().is_empty());
    r.fire_all();
    let replies = r.replies();
    assert_eq!(replies.len(), 1);
    let (uu, _, body) = parse(&replies[0]);
    assert_eq!(uu, u);
    assert_eq!(ioctl_result(&body).0, 2);
    assert_eq!(r.hdr().num, 2);
    let e = r.ev(1);
    assert_eq!(
        (e.id, e.type_, e.event, e.ret_flags, e.ret_data, e.user),
        (
            [200, 0],
            KEVENT_TIMER,
            KEVENT_TIMER_FIRED,
            KEVENT_RET_DONE,
            [7, 1],
            [2, 0]
        )
    );
}

#[test]
fn wait_with_timeout_needs_num_events_or_the_deadline() {
    let mut r = rig(TransportKind::Cuse);
    r.put_arg(ctl(KEVENT_CTL_ADD, 1, 0), &[timer(100, 1)]);
    r.cuse_ioctl(KEVENT_USER_CTL);
    r.replies();
    r.put_arg(ctl(KEVENT_CTL_WAIT, 2, 300), &[]);
    let u = r.cuse_ioctl(KEVENT_USER_WAIT);
    r.fire_all();
    assert!(r.replies().is_empty(), "1 of 2 ready: still asleep");
    r.d.tick(Instant::now() + Duration::from_millis(301));
    let (uu, _, body) = parse(&r.replies()[0]);
    assert_eq!((uu, ioctl_result(&body).0), (u, 1));
}

#[test]
fn nonblocking_queue_never_parks() {
    let mut r = rig(TransportKind::FuseFile);
    r.fh = r.open(libc::O_NONBLOCK as u32);
    let u = r.ioctl(0, KEVENT_USER_WAIT, &ctl(0, 4, 0).encode(), 12, TID);
    let (uu, err, body) = parse(&r.replies()[0]);
    assert_eq!((uu, err, ioctl_result(&body).0), (u, 0, 0));
}

#[test]
fn wait_into_readonly_memory_keeps_the_events() {
    let mut r = rig(TransportKind::Cuse);
    r.put_arg(ctl(KEVENT_CTL_ADD, 1, 0), &[timer(100, 1)]);
    r.cuse_ioctl(KEVENT_USER_CTL);
    r.fire_all();
    r.replies();
    r.put_arg(ctl(KEVENT_CTL_WAIT, 1, 0), &[]);
    r.mem.readonly = true;
    r.d.mem = Box::new(r.mem.clone());
    let u = r.cuse_ioctl(KEVENT_USER_WAIT);
    assert_eq!(parse(&r.replies()[0]), (u, -libc::EINVAL, vec![]));
    assert_eq!(r.d.core().ready_len(r.fh), 1);
}

#[test]
fn poll_reports_readable_and_notifies_on_new_events() {
    let mut r = rig(TransportKind::Cuse);
    r.put_arg(ctl(KEVENT_CTL_ADD, 1, 0), &[timer(100, 1)]);
    r.cuse_ioctl(KEVENT_USER_CTL);
    r.replies();
    let poll = |r: &mut Rig| {
        let u = r.next();
        let mut b = Writer::default();
        b.u64(r.fh)
            .u64(0xabc)
            .u32(fuse::FUSE_POLL_SCHEDULE_NOTIFY)
            .u32(1);
        r.d.handle(
            &request(opcode::FUSE_POLL, u, TID, &b.into_vec()),
            Instant::now(),
        );
        let (_, _, body) = parse(&r.replies()[0]);
        u32::from_ne_bytes(body[0..4].try_into().unwrap())
    };
    assert_eq!(poll(&mut r), 0);
    r.fire_all();
    assert_eq!(r.replies(), vec![fuse::encode_notify_poll(0xabc)]);
    assert_eq!(poll(&mut r), (libc::POLLIN | libc::POLLRDNORM) as u32);
}

#[test]
fn release_frees_the_queue_and_answers_nothing_twice() {
    let mut r = rig(TransportKind::FuseFile);
    r.put_arg(ctl(KEVENT_CTL_ADD, 1, 0), &[timer(100, 1)]);
    r.ioctl(
        0,
        KEVENT_USER_CTL,
        &ctl(KEVENT_CTL_ADD, 1, 0).encode(),
        12,
        TID,
    );
    r.replies();
    let u = r.next();
    let mut b = Writer::default();
    b.u64(r.fh).u32(0).u32(0).u64(0);
    r.d.handle(
        &request(opcode::FUSE_RELEASE, u, 0, &b.into_vec()),
        Instant::now(),
    );
    assert_eq!(parse(&r.replies()[0]), (u, 0, vec![]));
    assert!(r.live.lock().unwrap().is_empty());
    let u = r.ioctl(
        0,
        KEVENT_USER_CTL,
        &ctl(KEVENT_CTL_ADD, 0, 0).encode(),
        12,
        TID,
    );
    assert_eq!(parse(&r.replies()[0]), (u, -libc::EBADF, vec![]));
}

#[test]
fn garbage_requests_get_an_error_not_a_panic() {
    let mut r = rig(TransportKind::Cuse);
    let mut req = request(opcode::FUSE_IOCTL, 77, TID, &[0u8; 8]);
    r.d.handle(&req, Instant::now());
    assert_eq!(parse(&r.replies()[0]), (77, -libc::EIO, vec![]));
    req.truncate(20);
    r.d.handle(&req, Instant::now());
    assert_eq!(parse(&r.replies()[0]).0, 77);
    r.d.handle(&[1, 2, 3], Instant::now());
    assert!(r.replies().is_empty());
}

/// Hostile input: thousands of random requests (random opcodes, bodies,
/// ioctl numbers and headers in caller memory) never panic the dispatcher,
/// and every reply it writes is well-formed and answers a request it read.
#[test]
fn random_requests_never_panic_and_replies_are_well_formed() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for transport in [TransportKind::Cuse, TransportKind::FuseFile] {
        let mut r = rig(transport);
        let opcodes = [
            opcode::FUSE_IOCTL,
            opcode::FUSE_POLL,
            opcode::FUSE_OPEN,
            opcode::FUSE_RELEASE,
            opcode::FUSE_INTERRUPT,
            opcode::FUSE_FLUSH,
            opcode::FUSE_GETATTR,
            opcode::FUSE_READ,
            9999,
        ];
        let mut asked = std::collections::HashSet::new();
        let mut answered = std::collections::HashSet::new();
        for i in 0..5000u64 {
            // Random caller memory: a header and some ukevents.
            {
                let mut m = r.mem.mem.borrow_mut();
                for b in m.iter_mut().take(12 + 40 * 4) {
                    *b = rnd() as u8;
                }
                let cmd = (rnd() % 6) as u32;
                m[0..4].copy_from_slice(&cmd.to_ne_bytes());
                let num = (rnd() % 8) as u32;
                m[4..8].copy_from_slice(&num.to_ne_bytes());
                let timeout = (rnd() % 3) as u32;
                m[8..12].copy_from_slice(&timeout.to_ne_bytes());
            }
            let op = opcodes[(rnd() % opcodes.len() as u64) as usize];
            let unique = 1000 + 2 * i;
            asked.insert(unique);
            let mut body = Writer::default();
            match op {
                opcode::FUSE_IOCTL => {
                    let cmds = [KEVENT_USER_CTL, KEVENT_USER_WAIT, rnd() as u32];
                    let data: Vec<u8> = (0..(rnd() % 3) * 12).map(|_| rnd() as u8).collect();
                    body.u64(if rnd() % 4 == 0 { rnd() } else { r.fh })
                        .u32(rnd() as u32 & 0x3f)
                        .u32(cmds[(rnd() % 3) as usize])
                        .u64(if rnd() % 8 == 0 { rnd() } else { ARG })
                        .u32(data.len() as u32)
                        .u32((rnd() % 200) as u32)
                        .bytes(&data);
                }
                opcode::FUSE_INTERRUPT => {
                    body.u64(1000 + 2 * (rnd() % (i + 1)));
                }
                _ => {
                    let n = (rnd() % 40) as usize;
                    for _ in 0..n {
                        body.bytes(&[rnd() as u8]);
                    }
                }
            }
            let pid = if rnd() % 5 == 0 { 0 } else { TID };
            r.d.handle(&request(op, unique, pid, &body.into_vec()), Instant::now());
            if rnd() % 16 == 0 {
                r.fire_all();
            }
            if rnd() % 32 == 0 {
                r.d.tick(Instant::now() + Duration::from_secs(2));
            }
            for msg in r.replies() {
                let (u, err, _) = parse(&msg);
                assert!(err <= 0 || u == 0, "positive error only in notifications");
                assert!(err > -4096, "errno in range");
                assert!(
                    u == 0 || asked.contains(&u),
                    "reply to a request never made: {u}"
                );
            }
        }
        r.d.shutdown();
        for msg in r.replies() {
            let (u, _, _) = parse(&msg);
            assert!(u == 0 || answered.insert(u), "request {u} answered twice");
        }
        assert_eq!(r.d.parked_count(), 0, "shutdown answers every parked WAIT");
    }
}
