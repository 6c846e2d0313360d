//! A small owning wrapper over one io_uring instance (the `io-uring` crate)
//! for the NAIO and AIO transfer threads.
//!
//! The only unsafe of the transfers lives here: pushing a submission entry
//! whose buffer the kernel will use later. [`Ring`] makes that safe by
//! owning every buffer from submission until its completion has been
//! reaped (the buffer comes back in [`Completion::buf`]), and by never
//! freeing a buffer the kernel may still write: on drop it cancels what is
//! in flight, waits (bounded) for the completions, and leaks whatever did
//! not complete rather than free it.
//!
//! Descriptors are passed as numbers: the caller keeps each one open until
//! the completion of every operation that names it (the kernel may look a
//! splice's input up only when an io-wq worker runs it).
#![allow(unsafe_code)]

use io_uring::{opcode, squeue, types, IoUring};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

/// One reaped completion.
#[derive(Debug)]
pub struct Completion {
    /// The key given at submission.
    pub key: u64,
    /// The operation's result: bytes, or a negated errno.
    pub result: i32,
    /// The buffer lent with the operation, back to its owner.
    pub buf: Option<Box<[u8]>>,
}

/// An io_uring with the buffers of its in-flight operations.
pub struct Ring {
    ring: IoUring,
    /// Key -> the buffer the kernel may be using (None: no buffer).
    inflight: HashMap<u64, Option<Box<[u8]>>>,
}

/// How long [`Drop`] waits for cancelled operations to complete.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

impl Ring {
    /// A ring with `entries` submission slots (and twice as many for
    /// completions).
    pub fn new(entries: u32) -> io::Result<Ring> {
        let ring = IoUring::builder()
            .setup_cqsize(entries * 2)
            .setup_clamp()
            .build(entries)?;
        Ok(Ring {
            ring,
            inflight: HashMap::new(),
        })
    }

    /// Operations submitted and not yet reaped.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Whether `key` is in flight.
    pub fn is_in_flight(&self, key: u64) -> bool {
        self.inflight.contains_key(&key)
    }

    fn push(&mut self, key: u64, entry: squeue::Entry, buf: Option<Box<[u8]>>) -> io::Result<()> {
        assert!(
            !self.inflight.contains_key(&key),
            "io_uring key {key:#x} used twice"
        );
        let entry = entry.user_data(key);
        loop {
            // SAFETY: every pointer in `entry` points into `buf`, which is
            // stored in `self.inflight` below and only handed back (or
            // leaked) after the kernel has posted this key's completion;
            // descriptors are numbers the caller keeps open until then.
            let pushed = unsafe { self.ring.submission().push(&entry) };
            if pushed.is_ok() {
                break;
            }
            // Full: hand what is queued to the kernel and retry.
            self.ring.submit()?;
        }
        self.inflight.insert(key, buf);
        self.ring.submit()?;
        Ok(())
    }

    fn len32(len: usize) -> u32 {
        u32::try_from(len).unwrap_or(u32::MAX)
    }

    /// recv(fd, buf[..len], flags). The ring owns `buf` until the completion.
    pub fn recv(
        &mut self,
        key: u64,
        fd: BorrowedFd<'_>,
        mut buf: Box<[u8]>,
        len: usize,
    ) -> io::Result<()> {
        let len = len.min(buf.len());
        let e = opcode::Recv::new(
            types::Fd(fd.as_raw_fd()),
            buf.as_mut_ptr(),
            Self::len32(len),
        )
        .build();
        self.push(key, e, Some(buf))
    }

    /// send(fd, buf[start..end], MSG_NOSIGNAL). The ring owns `buf` until the
    /// completion.
    pub fn send(
        &mut self,
        key: u64,
        fd: BorrowedFd<'_>,
        buf: Box<[u8]>,
        start: usize,
        end: usize,
    ) -> io::Result<()> {
        let end = end.min(buf.len());
        let start = start.min(end);
        let ptr = buf[start..end].as_ptr();
        let e = opcode::Send::new(types::Fd(fd.as_raw_fd()), ptr, Self::len32(end - start))
            .flags(libc::MSG_NOSIGNAL)
            .build();
        self.push(key, e, Some(buf))
    }

    /// splice(fd_in at off_in (None: its position, for pipes), fd_out, len).
    pub fn splice(
        &mut self,
        key: u64,
        fd_in: BorrowedFd<'_>,
        off_in: Option<u64>,
        fd_out: BorrowedFd<'_>,
        len: usize,
    ) -> io::Result<()> {
        let off = off_in.map_or(-1, |o| i64::try_from(o).unwrap_or(i64::MAX));
        let e = opcode::Splice::new(
            types::Fd(fd_in.as_raw_fd()),
            off,
            types::Fd(fd_out.as_raw_fd()),
            -1,
            Self::len32(len),
        )
        .build();
        self.push(key, e, None)
    }

    /// One-shot poll of `fd` for `events` (POLLIN, POLLOUT...).
    pub fn poll(&mut self, key: u64, fd: BorrowedFd<'_>, events: u32) -> io::Result<()> {
        let e = opcode::PollAdd::new(types::Fd(fd.as_raw_fd()), events).build();
        self.push(key, e, None)
    }

    /// Asks the kernel to cancel the operation submitted as `target`; the
    /// cancel request itself completes under `key`.
    pub fn cancel(&mut self, key: u64, target: u64) -> io::Result<()> {
        let e = opcode::AsyncCancel::new(target).build();
        self.push(key, e, None)
    }

    /// Waits until at least one completion is there (or `timeout` passes)
    /// and appends every completion to `out`.
    pub fn wait(&mut self, timeout: Option<Duration>, out: &mut Vec<Completion>) -> io::Result<()> {
        if self.ring.completion().is_empty() {
            let r = match timeout {
                None => self.ring.submit_and_wait(1),
                Some(t) => {
                    let ts = types::Timespec::new()
                        .sec(t.as_secs())
                        .nsec(t.subsec_nanos());
                    let args = types::SubmitArgs::new().timespec(&ts);
                    self.ring.submitter().submit_with_args(1, &args)
                }
            };
            match r {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        self.reap(out);
        Ok(())
    }

    fn reap(&mut self, out: &mut Vec<Completion>) {
        let mut cq = self.ring.completion();
        cq.sync();
        for cqe in &mut cq {
            let key = cqe.user_data();
            // Multishot operations are not used: every completion is final.
            let buf = self.inflight.remove(&key).flatten();
            out.push(Completion {
                key,
                result: cqe.result(),
                buf,
            });
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        if self.inflight.is_empty() {
            return;
        }
        let keys: Vec<u64> = self.inflight.keys().copied().collect();
        for (i, target) in keys.into_iter().enumerate() {
            let e = opcode::AsyncCancel::new(target)
                .build()
                .user_data(u64::MAX - i as u64);
            // SAFETY: a cancel request carries no buffer.
            if unsafe { self.ring.submission().push(&e) }.is_err() {
                let _ = self.ring.submit();
            }
        }
        let _ = self.ring.submit();
        let deadline = Instant::now() + DRAIN_LIMIT;
        let mut done = Vec::new();
        while !self.inflight.is_empty() && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            done.clear();
            if self
                .wait(Some(left.min(Duration::from_millis(100))), &mut done)
                .is_err()
            {
                break;
            }
        }
        // Buffers the kernel may still write are never freed.
        for (_, buf) in self.inflight.drain() {
            if let Some(b) = buf {
                Box::leak(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn recv_and_send_move_bytes_and_return_the_buffer() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut ring = Ring::new(8).unwrap();
        ring.recv(1, a.as_fd(), vec![0u8; 16].into(), 16).unwrap();
        b.write_all(b"hello").unwrap();
        let mut out = Vec::new();
        while out.is_empty() {
            ring.wait(Some(Duration::from_secs(5)), &mut out).unwrap();
        }
        assert_eq!(out[0].key, 1);
        assert_eq!(out[0].result, 5);
        assert_eq!(&out[0].buf.as_ref().unwrap()[..5], b"hello");
        let buf = out.pop().unwrap().buf.unwrap();
        ring.send(2, a.as_fd(), buf, 1, 4).unwrap();
        out.clear();
        while out.is_empty() {
            ring.wait(Some(Duration::from_secs(5)), &mut out).unwrap();
        }
        assert_eq!((out[0].key, out[0].result), (2, 3));
        let mut got = [0u8; 3];
        std::io::Read::read_exact(&mut b, &mut got).unwrap();
        assert_eq!(&got, b"ell");
        assert_eq!(ring.in_flight(), 0);
    }

    #[test]
    fn a_cancelled_recv_completes_with_ecanceled() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mut ring = Ring::new(8).unwrap();
        ring.recv(7, a.as_fd(), vec![0u8; 16].into(), 16).unwrap();
        ring.cancel(8, 7).unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while out.len() < 2 && Instant::now() < deadline {
            ring.wait(Some(Duration::from_millis(500)), &mut out)
                .unwrap();
        }
        let r = out.iter().find(|c| c.key == 7).expect("recv completion");
        assert_eq!(r.result, -libc::ECANCELED);
        assert!(r.buf.is_some());
        assert_eq!(ring.in_flight(), 0);
    }

    #[test]
    fn dropping_with_work_in_flight_cancels_it() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mut ring = Ring::new(8).unwrap();
        ring.recv(1, a.as_fd(), vec![0u8; 16].into(), 16).unwrap();
        ring.poll(2, a.as_fd(), libc::POLLIN as u32).unwrap();
        // Must neither hang nor free a buffer the kernel still holds.
        drop(ring);
    }

    #[test]
    fn wait_times_out() {
        let mut ring = Ring::new(4).unwrap();
        let mut out = Vec::new();
        ring.wait(Some(Duration::from_millis(20)), &mut out)
            .unwrap();
        assert!(out.is_empty());
    }
}
