//! kevent-client against a live daemon. These tests are `#[ignore]`d in a
//! plain `cargo test`: tests/host/ctl.sh starts a daemon and runs them with
//! `KEVENT_TEST_DEVICE=PATH cargo test -p kevent-client --all-features
//! --test live -- --ignored`. The daemon runs with `--max-kevents 64`.

use kevent_client::*;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn path() -> String {
    std::env::var("KEVENT_TEST_DEVICE").expect("KEVENT_TEST_DEVICE: the device the daemon serves")
}

fn dev() -> Device {
    Device::open(path()).expect("open the device")
}

/// A connected pair with data waiting on `.0` (POLL IN ready at once).
fn ready_pair() -> (UnixStream, UnixStream) {
    let (a, mut b) = UnixStream::pair().unwrap();
    b.write_all(b"x").unwrap();
    (a, b)
}

#[test]
#[ignore = "needs a daemon: tests/host/ctl.sh"]
fn add_queued_writes_nothing_back() {
    let d = dev();
    let mut evs = [Ukevent::timer(60_000).with_user([1, 2])];
    let before = evs;
    let a = d.add(&mut evs).unwrap();
    assert_eq!(a.ret, 0);
    assert!(a.written_back.is_empty());
    assert_eq!(evs, before, "a queued ukevent is not written back");
}

#[test]
#[ignore = "needs a daemon: tests/host/ctl.sh"]
fn add_ready_at_once_is_returned_and_written_into_the_slice() {
    let d = dev();
    let (a, _b) = ready_pair();
    let mut evs = [Ukevent::poll(&a, PollEvents::IN).with_user([3, 0])];
    let r = d.add(&mut evs).unwrap();
    assert_eq!(r.ret, 1);
    assert_eq!(r.written_back.len(), 1);
    assert_eq!(r.written_back[0].status, AddStatus::Ready);
    assert_eq!(r.written_back[0].event.ret(), RetFlags::DONE);
    assert_eq!(evs[0], r.written_back[0].event);
    assert_eq!(r.ready().count(), 1);
    // Not registered: no WAIT reports it.
    assert!(d.wait(4, 100).unwrap().is_empty());
}

#[test]
#[ignore = "needs a daemon: tests/host/ctl.sh"]
fn add_last_failing_keeps_the_ready_one_and_names_the_errno() {
    let d = dev();
    let (a, _b) = ready_pair();
    let mut evs = [
        Ukevent::poll(&a, PollEvents::IN).with_user([4, 0]),
        Ukevent::raw(KEVENT_POLL, [99_999, 0], KEVENT_POLL_POLLIN).with_user([5, 0]),
    ];
    let r = d.add(&mut evs).unwrap();
    assert_eq!(r.ret, -1);
    let st: Vec<_> = r.written_back.iter().map(|w| w.status).collect();
    assert_eq!(
        st,
        [AddStatus::Ready, AddStatus::Failed(Some(Errno::ENODEV))]
    );
    assert_eq!(evs[0].user, [4, 0]);
    assert_eq!(evs[0].ret(), RetFlags::DONE);
    assert_eq!(evs[1].user, [5, 0]);
    assert_eq!(evs[1].ret(), RetFlags::BROKEN | RetFlags::DONE);
    let failed: Vec<_> = r.failed().map(|(u, e)| (u.user[0], e)).collect();
    assert_eq!(failed, [(5, Some(Errno::ENODEV))]);
}

#[test]
#[ignore = "needs a daemon: tests/host/ctl.sh"]
fn add_failure_in_the_middle_has_no_errno_and_ret_counts() {
    let d = dev();
    let mut evs = [
        Ukevent::timer(60_000).with_user([6, 0]),
        Ukevent::raw(KEVENT_SOCKET, [99_998, 0], KEVENT_SOCKET_RECV).with_user([7, 0]),
        Ukevent::timer(60_000).with_user([8, 0]),
    ];
    let r = d.add(&mut evs).unwrap();
    assert_eq!(r.ret, 1, "last queued: the count of written-back ukevents");
    assert_eq!(r.written_back.len(), 1);
    assert_eq!(r.written_back[0].status, AddStatus::Failed(None));
    assert_eq!(evs[0].user, [7, 0], "packed at the start of the slice");
    assert_eq!(
        evs[1].user,
        [7, 0],
        "the rest of the slice is left as it was"
    );
    assert_eq!(evs[2].user, [8, 0]);
}

#[test]
#[ignore = "needs a daemon: tests/host/ctl.sh"]
fn add_unknown_type_is_unknown_type_with_e2big() {
    let d = dev();
    let mut evs = [Ukevent::raw(9, [1, 0], 1)];
    let r = d.add(&mut evs).unwrap();
    assert_eq!(r.ret, -1);
    assert_eq!(r.written_back[0].status, AddStatus::UnknownType);
    assert_eq!(
        r.written_back[0].event.ret_flags, 0,
        "written back unchanged"
    );
    assert_eq!(r.failed().next().unwrap().1, Some(Errno::E2BIG));
}

#[test]
#[ignore = "needs a daemon: tests/host/ctl.sh"]
fn add_over_the_limit_is_an_error_and_changes_nothing() {
    let d = dev();
    let mut evs: Vec<Ukevent> = (0..65)
        .map(|i| Ukevent::timer(60_000).with_user([i, 9]))
        .collect();
    let before = evs.clone();
    let e = d.add(&mut evs).unwrap_err();
    assert_eq!(e.errno(), Some(Errno::ENFILE));
    assert_eq!(evs, before);
}

#[test]
#[ignore = "needs a daemon: tests/host/ctl.sh"]
fn remove_and_modify_write_back_in_place() {
    let d = dev();
    d.add(&mut [Ukevent::timer(60_000).with_user([10, 0])])
        .unwrap();
    let mut m = [Ukevent::timer(60_000).with_user([10, 0]).oneshot()];
    d.modify(&mut m).unwrap();
    assert_eq!(m[0].ret(), RetFlags::DONE);
    let mut r = [
        Ukevent::timer(60_000).with_user([10, 0]),
        Ukevent::timer(60_000).with_user([11, 0]),
    ];
    d.remove(&mut r).unwrap();
    assert_eq!(r[0].ret(), RetFlags::DONE);
    assert_eq!(r[1].ret(), RetFlags::BROKEN | RetFlags::DONE, "no match");
}

#[test]
#[ignore = "needs a daemon: tests/host/ctl.sh"]
fn wait_into_fills_the_slice() {
    let d = dev();
    d.add(&mut [Ukevent::timer(20).oneshot().with_user([12, 0])])
        .unwrap();
    let mut out = [Ukevent::default(); 4];
    let n = d.wait_into(&mut out, 5000).unwrap();
    assert!(n >= 1);
    assert_eq!(out[0].user, [12, 0]);
    assert_eq!(out[0].kind(), Some(EventType::Timer));
    assert!(out[0].is_done() && !out[0].is_broken());
}

#[test]
#[ignore = "needs a daemon: tests/host/ctl.sh"]
fn checked_ioctl_refuses_short_buffers_and_other_numbers() {
    let d = dev();
    let hdr = KeventUserControl {
        cmd: KEVENT_CTL_WAIT,
        num: 5,
        timeout: 0,
    };
    let mut buf = hdr.encode().to_vec();
    buf.resize(12 + 40, 0);
    assert!(matches!(
        d.ioctl(KEVENT_USER_WAIT, &mut buf),
        Err(Error::Buffer(_))
    ));
    assert!(matches!(d.ioctl(0x1234, &mut buf), Err(Error::Buffer(_))));
    let mut short = [0u8; 8];
    assert!(matches!(
        d.ioctl(KEVENT_USER_CTL, &mut short),
        Err(Error::Buffer(_))
    ));
    // INIT through the ioctl: EINVAL from the device.
    let mut init = KeventUserControl {
        cmd: KEVENT_CTL_INIT,
        num: 0,
        timeout: 0,
    }
    .encode();
    let e = d.ioctl(KEVENT_USER_CTL, &mut init).unwrap_err();
    assert_eq!(e.errno(), Some(Errno::EINVAL));
}

#[test]
#[ignore = "needs a daemon: tests/host/ctl.sh"]
fn from_owned_fd_and_back() {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path())
        .unwrap();
    let d = Device::from(OwnedFd::from(f));
    assert!(d.as_raw_fd() >= 0);
    assert_eq!(d.add(&mut [Ukevent::timer(60_000)]).unwrap().ret, 0);
    let fd: OwnedFd = d.into();
    let d = Device::from(fd);
    assert!(d.wait(1, 1).unwrap().is_empty());
}

#[test]
#[ignore = "needs a daemon: tests/host/ctl.sh"]
fn nonblocking_wait_returns_at_once() {
    let d = Device::open_nonblocking(path()).unwrap();
    assert!(d.is_nonblocking());
    d.add(&mut [Ukevent::timer(60_000)]).unwrap();
    let t = Instant::now();
    assert!(d.wait(1, 30_000).unwrap().is_empty());
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs a daemon: tests/host/ctl.sh"]
async fn tokio_async_device_wakes_on_readiness() {
    let d = AsyncDevice::open(path()).unwrap();
    // Nothing ready: the reactor reports no readiness.
    let idle = tokio::time::timeout(Duration::from_millis(200), d.wait(4)).await;
    assert!(
        idle.is_err(),
        "wait returned with nothing registered: {idle:?}"
    );
    let t = Instant::now();
    d.get_ref()
        .add(&mut [Ukevent::timer(300).oneshot().with_user([13, 0])])
        .unwrap();
    let evs = tokio::time::timeout(Duration::from_secs(20), d.wait(4))
        .await
        .expect("the timer woke the reactor")
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "woke before the timer: {:?}",
        t.elapsed()
    );
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].user, [13, 0]);
    // Readiness is gone once collected.
    let again = tokio::time::timeout(Duration::from_millis(200), d.wait(4)).await;
    assert!(again.is_err());
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs a daemon: tests/host/ctl.sh"]
async fn tokio_async_device_refuses_a_blocking_queue() {
    assert!(AsyncDevice::new(dev()).is_err());
}

#[test]
#[ignore = "needs a daemon: tests/host/ctl.sh"]
fn mio_source_reports_readable() {
    use mio::{Events, Interest, Poll, Token};
    let mut d = Device::open_nonblocking(path()).unwrap();
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(&mut d, Token(7), Interest::READABLE)
        .unwrap();
    let mut events = Events::with_capacity(4);
    poll.poll(&mut events, Some(Duration::from_millis(100)))
        .unwrap();
    assert!(events.is_empty(), "readable with nothing ready");
    d.add(&mut [Ukevent::timer(50).oneshot().with_user([14, 0])])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        poll.poll(&mut events, Some(Duration::from_secs(1)))
            .unwrap();
        if events
            .iter()
            .any(|e| e.token() == Token(7) && e.is_readable())
        {
            break;
        }
        assert!(Instant::now() < deadline, "never readable");
    }
    let evs = d.wait(4, 0).unwrap();
    assert_eq!(evs[0].user, [14, 0]);
    poll.registry().deregister(&mut d).unwrap();
}
