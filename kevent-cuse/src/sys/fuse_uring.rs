//! FUSE-over-io_uring (kernel 6.14+, `fs/fuse/dev_uring.c`): one io_uring
//! per queue whose entries are `IORING_OP_URING_CMD` commands on the
//! `/dev/fuse` fd. Each ring entry owns two buffers the kernel reads and
//! writes: a 288-byte header (`struct fuse_uring_req_header`) and a payload.
//!
//! * REGISTER (cmd_op 1) hands an entry to the kernel; its completion means
//!   a request was placed in the entry.
//! * COMMIT_AND_FETCH (cmd_op 2) hands back the answer in the same entry
//!   (out-header in `in_out`, reply arguments in the payload) and waits for
//!   the next request; again the completion means a request arrived.
//!
//! The buffers are plain heap memory shared with the kernel: this module
//! touches them only while the entry is on the daemon's side (between a
//! completion and the next submission), which the caller guarantees by
//! owning the [`Slot`] of an entry exclusively in that window.
#![allow(unsafe_code)]

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::ptr::NonNull;

/// `struct fuse_uring_req_header`: in_out[128], op_in[128], ring_ent_in_out[32].
pub const HEADER_SIZE: usize = 288;
const OP_IN_OFF: usize = 128;
const OP_IN_SIZE: usize = 128;
const ENT_IN_OUT_OFF: usize = 256;
/// `fuse_in_header` at the start of `in_out`.
const IN_HEADER_SIZE: usize = 40;
/// `fuse_out_header` at the start of `in_out`.
const OUT_HEADER_SIZE: usize = 16;

const CMD_REGISTER: u32 = 1;
const CMD_COMMIT_AND_FETCH: u32 = 2;

/// user_data of the eventfd read that wakes a ring thread.
pub const WAKE_USER_DATA: u64 = u64::MAX;

/// Anonymous memory holding the headers and payloads of a queue's entries:
/// pages are zero and cost nothing until the kernel or the daemon touches
/// them, so a deep queue is cheap.
struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory; who may touch which part is decided
// by the Slots (module comment).
unsafe impl Send for Mapping {}
// SAFETY: as above; Mapping itself is never read or written through &self.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: base/len are exactly what mmap_anonymous returned; no Slot
        // is left (each holds an Arc of the mapping), and the rings that
        // used the memory are gone before their slots.
        if let Err(e) = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) } {
            tracing::warn!("munmap of a ring queue's buffers: {e}");
        }
    }
}

/// The two buffers of one ring entry.
pub struct Slot {
    hdr: NonNull<u8>,
    payload: NonNull<u8>,
    payload_len: usize,
    /// iov[0] = header, iov[1] = payload: read by the kernel at REGISTER.
    iov: Box<[libc::iovec; 2]>,
    _mem: std::sync::Arc<Mapping>,
}

// SAFETY: a Slot's buffers are its own part of the mapping; the pointers are
// not shared with other Rust objects, only with the kernel (module comment).
unsafe impl Send for Slot {}
// SAFETY: all access goes through &mut self or happens while the caller owns
// the entry exclusively (module comment).
unsafe impl Sync for Slot {}

fn page_round(n: usize) -> usize {
    n.div_ceil(4096) * 4096
}

impl Slot {
    /// `depth` entries with a payload of `payload_len` bytes each, in one
    /// anonymous mapping.
    pub fn many(depth: usize, payload_len: usize) -> io::Result<Vec<Slot>> {
        let hdrs = page_round(depth * HEADER_SIZE);
        let stride = page_round(payload_len);
        let len = hdrs + depth * stride;
        // SAFETY: a fresh private anonymous mapping, no address hint: it
        // aliases nothing.
        let p = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::PRIVATE,
            )
        }?;
        let base = NonNull::new(p.cast::<u8>())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))?;
        let mem = std::sync::Arc::new(Mapping { base, len });
        Ok((0..depth)
            .map(|i| {
                // SAFETY: both offsets stay inside the mapping of `len` bytes
                // (headers first, then one page-rounded payload per entry).
                let (hdr, payload) = unsafe {
                    (
                        NonNull::new_unchecked(base.as_ptr().add(i * HEADER_SIZE)),
                        NonNull::new_unchecked(base.as_ptr().add(hdrs + i * stride)),
                    )
                };
                let iov = Box::new([
                    libc::iovec {
                        iov_base: hdr.as_ptr().cast(),
                        iov_len: HEADER_SIZE,
                    },
                    libc::iovec {
                        iov_base: payload.as_ptr().cast(),
                        iov_len: payload_len,
                    },
                ]);
                Slot {
                    hdr,
                    payload,
                    payload_len,
                    iov,
                    _mem: mem.clone(),
                }
            })
            .collect())
    }

    /// One entry (tests).
    #[cfg(test)]
    fn new(payload_len: usize) -> Self {
        Self::many(1, payload_len)
            .expect("mmap")
            .pop()
            .expect("one slot")
    }

    /// Payload capacity in bytes.
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }

    fn hdr(&self) -> &[u8] {
        // SAFETY: hdr points to HEADER_SIZE initialised bytes owned by self;
        // the kernel does not write them while the entry is on our side.
        unsafe { std::slice::from_raw_parts(self.hdr.as_ptr(), HEADER_SIZE) }
    }

    fn hdr_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in hdr(), and &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.hdr.as_ptr(), HEADER_SIZE) }
    }

    fn payload(&self) -> &[u8] {
        // SAFETY: payload points to payload_len initialised bytes owned by self.
        unsafe { std::slice::from_raw_parts(self.payload.as_ptr(), self.payload_len) }
    }

    fn payload_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in payload(), exclusive through &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.payload.as_ptr(), self.payload_len) }
    }

    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
    }

    fn u64_at(b: &[u8], off: usize) -> u64 {
        u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
    }

    /// The request the kernel placed in this entry, as the bytes read() on
    /// /dev/fuse would have returned (in-header, first argument, payload),
    /// appended to `out`. Returns the request's unique id, or None when the
    /// entry holds nothing consistent.
    pub fn request_bytes(&self, out: &mut Vec<u8>) -> Option<u64> {
        let h = self.hdr();
        let len = Self::u32_at(h, 0) as usize;
        let opcode = Self::u32_at(h, 4);
        let unique = Self::u64_at(h, 8);
        let payload_sz = Self::u32_at(h, ENT_IN_OUT_OFF + 16) as usize;
        if payload_sz > self.payload_len {
            return None;
        }
        // The first argument sits in op_in; its size is what the total
        // length leaves after the header and the payload.
        let arg0 = len
            .checked_sub(IN_HEADER_SIZE + payload_sz)
            .filter(|&a| a <= OP_IN_SIZE)
            .or_else(|| first_arg_size(opcode))?;
        out.clear();
        out.extend_from_slice(&h[..IN_HEADER_SIZE]);
        let total = (IN_HEADER_SIZE + arg0 + payload_sz) as u32;
        out[0..4].copy_from_slice(&total.to_le_bytes());
        out.extend_from_slice(&h[OP_IN_OFF..OP_IN_OFF + arg0]);
        out.extend_from_slice(&self.payload()[..payload_sz]);
        Some(unique)
    }

    /// The commit id the kernel gave the request in this entry.
    pub fn commit_id(&self) -> u64 {
        Self::u64_at(self.hdr(), ENT_IN_OUT_OFF + 8)
    }

    /// Writes the reply `msg` (out-header + reply arguments, as written to
    /// /dev/fuse) into the entry. False (and nothing written) when the
    /// arguments do not fit.
    pub fn put_reply(&mut self, msg: &[u8]) -> bool {
        if msg.len() < OUT_HEADER_SIZE || msg.len() - OUT_HEADER_SIZE > self.payload_len {
            return false;
        }
        let body = &msg[OUT_HEADER_SIZE..];
        self.payload_mut()[..body.len()].copy_from_slice(body);
        let h = self.hdr_mut();
        h[..OUT_HEADER_SIZE].copy_from_slice(&msg[..OUT_HEADER_SIZE]);
        h[ENT_IN_OUT_OFF + 16..ENT_IN_OUT_OFF + 20]
            .copy_from_slice(&(body.len() as u32).to_le_bytes());
        true
    }
}

/// Size of the first in-argument by opcode, for a kernel whose in-header
/// length does not account for the ring layout (fuse.h, protocol 7.31).
fn first_arg_size(opcode: u32) -> Option<usize> {
    Some(match opcode {
        14 | 34 => 8,       // OPEN, ACCESS
        18 | 25 | 40 => 24, // RELEASE, FLUSH, POLL
        39 => 32,           // IOCTL
        3 | 20 => 16,       // GETATTR, FSYNC
        _ => return None,
    })
}

fn cmd_area(qid: u16, commit_id: u64) -> [u8; 80] {
    // struct fuse_uring_cmd_req { u64 flags; u64 commit_id; u16 qid; u8 pad[6]; }
    let mut c = [0u8; 80];
    c[8..16].copy_from_slice(&commit_id.to_le_bytes());
    c[16..18].copy_from_slice(&qid.to_le_bytes());
    c
}

/// Sets `sqe->len` (byte offset 24 of the SQE), which the io-uring crate's
/// UringCmd80 builder has no setter for.
fn with_len(e: squeue::Entry128, len: u32) -> squeue::Entry128 {
    // SAFETY: Entry128 is #[repr(C)] over the 128-byte io_uring_sqe (plus its
    // command area) and has no invalid bit patterns; the bytes go back into
    // the same type.
    let mut raw: [u8; 128] = unsafe { std::mem::transmute(e) };
    raw[24..28].copy_from_slice(&len.to_le_bytes());
    // SAFETY: as above.
    unsafe { std::mem::transmute::<[u8; 128], squeue::Entry128>(raw) }
}

/// One io_uring serving queue `qid` of a FUSE connection.
pub struct FuseRing {
    ring: IoUring<squeue::Entry128, cqueue::Entry>,
    fuse_fd: RawFd,
    qid: u16,
    /// Buffer the wake eventfd is read into (stays put while queued).
    wake_buf: Box<u64>,
}

/// A completion: which entry (or the wake-up), and the result.
#[derive(Debug, Clone, Copy)]
pub struct Completion {
    /// Entry index, or [`WAKE_USER_DATA`].
    pub user_data: u64,
    /// 0 = a request arrived; -errno otherwise.
    pub result: i32,
}

impl FuseRing {
    /// A ring for `entries` commands on `fuse_fd` (which must outlive it),
    /// queue `qid`. Tries SINGLE_ISSUER + DEFER_TASKRUN first (the thread
    /// creating it must then be the only one using it), then a plain ring.
    pub fn new(fuse_fd: BorrowedFd<'_>, qid: u16, entries: u32) -> io::Result<Self> {
        let size = (entries + 2).next_power_of_two();
        let ring = IoUring::<squeue::Entry128, cqueue::Entry>::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(size * 2)
            .build(size)
            .or_else(|_| {
                IoUring::<squeue::Entry128, cqueue::Entry>::builder()
                    .setup_cqsize(size * 2)
                    .build(size)
            })?;
        Ok(FuseRing {
            ring,
            fuse_fd: fuse_fd.as_raw_fd(),
            qid,
            wake_buf: Box::new(0),
        })
    }

    /// Whether this process may create a ring of 128-byte entries at all
    /// (io_uring can be disabled by sysctl, seccomp or a container).
    pub fn probe() -> io::Result<()> {
        IoUring::<squeue::Entry128, cqueue::Entry>::builder()
            .build(2)
            .map(drop)
    }

    fn push(&mut self, e: squeue::Entry128) -> io::Result<()> {
        loop {
            // SAFETY: every buffer an entry points to (a Slot's iovecs and
            // buffers, wake_buf) lives until the ring is dropped or the
            // command completes; the caller keeps Slots alive (module doc).
            let r = unsafe { self.ring.submission().push(&e) };
            if r.is_ok() {
                return Ok(());
            }
            // Full: hand what is queued to the kernel and try again.
            self.ring.submit()?;
        }
    }

    /// Queues REGISTER of entry `idx` with buffers `slot`.
    pub fn register(&mut self, idx: u64, slot: &Slot) -> io::Result<()> {
        let e = opcode::UringCmd80::new(types::Fd(self.fuse_fd), CMD_REGISTER)
            .cmd(cmd_area(self.qid, 0))
            .addr(Some(slot.iov.as_ptr() as u64))
            .build()
            .user_data(idx);
        self.push(with_len(e, 2))
    }

    /// Queues COMMIT_AND_FETCH of entry `idx` (its reply already in the slot).
    pub fn commit(&mut self, idx: u64, commit_id: u64) -> io::Result<()> {
        let e = opcode::UringCmd80::new(types::Fd(self.fuse_fd), CMD_COMMIT_AND_FETCH)
            .cmd(cmd_area(self.qid, commit_id))
            .build()
            .user_data(idx);
        self.push(e)
    }

    /// Queues a read of the eventfd `fd` that wakes this ring's thread.
    pub fn arm_wake(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        let e = opcode::Read::new(
            types::Fd(fd.as_raw_fd()),
            (&mut *self.wake_buf as *mut u64).cast(),
            8,
        )
        .build()
        .user_data(WAKE_USER_DATA);
        self.push(e.into())
    }

    /// Submits what is queued and waits for at least `want` completions.
    pub fn submit_and_wait(&mut self, want: usize) -> io::Result<()> {
        loop {
            match self.ring.submit_and_wait(want) {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // The completion queue is full: reap first.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes the completions that are there.
    pub fn completions(&mut self, out: &mut Vec<Completion>) {
        out.clear();
        out.extend(self.ring.completion().map(|c| Completion {
            user_data: c.user_data(),
            result: c.result(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Puts an IOCTL request into a slot the way the kernel does.
    fn place(slot: &mut Slot, len_field: u32, op_in: &[u8], payload: &[u8]) {
        let h = slot.hdr_mut();
        h[0..4].copy_from_slice(&len_field.to_le_bytes());
        h[4..8].copy_from_slice(&39u32.to_le_bytes()); // IOCTL
        h[8..16].copy_from_slice(&77u64.to_le_bytes());
        h[OP_IN_OFF..OP_IN_OFF + op_in.len()].copy_from_slice(op_in);
        h[ENT_IN_OUT_OFF + 8..ENT_IN_OUT_OFF + 16].copy_from_slice(&77u64.to_le_bytes());
        h[ENT_IN_OUT_OFF + 16..ENT_IN_OUT_OFF + 20]
            .copy_from_slice(&(payload.len() as u32).to_le_bytes());
        slot.payload_mut()[..payload.len()].copy_from_slice(payload);
    }

    #[test]
    fn request_is_rebuilt_as_read_from_dev_fuse() {
        let mut slot = Slot::new(16384);
        let op_in = [5u8; 32];
        let data = [9u8; 12];
        place(&mut slot, 40 + 32 + 12, &op_in, &data);
        let mut out = Vec::new();
        assert_eq!(slot.request_bytes(&mut out), Some(77));
        assert_eq!(out.len(), 84);
        assert_eq!(&out[0..4], &84u32.to_le_bytes());
        assert_eq!(&out[40..72], &op_in);
        assert_eq!(&out[72..], &data);
        assert_eq!(slot.commit_id(), 77);
        // A header length that does not account for the ring layout: the
        // first argument's size comes from the opcode.
        place(&mut slot, 0, &op_in, &data);
        assert_eq!(slot.request_bytes(&mut out), Some(77));
        assert_eq!(out.len(), 84);
        // A payload size beyond the buffer is refused.
        let h = slot.hdr_mut();
        h[ENT_IN_OUT_OFF + 16..ENT_IN_OUT_OFF + 20].copy_from_slice(&100000u32.to_le_bytes());
        assert_eq!(slot.request_bytes(&mut out), None);
    }

    #[test]
    fn reply_goes_to_header_and_payload() {
        let mut slot = Slot::new(8192);
        let mut msg = vec![0u8; 16];
        msg[0..4].copy_from_slice(&(16u32 + 20).to_le_bytes());
        msg[8..16].copy_from_slice(&77u64.to_le_bytes());
        msg.extend_from_slice(&[3u8; 20]);
        assert!(slot.put_reply(&msg));
        assert_eq!(&slot.hdr()[..16], &msg[..16]);
        assert_eq!(&slot.payload()[..20], &[3u8; 20]);
        assert_eq!(
            &slot.hdr()[ENT_IN_OUT_OFF + 16..ENT_IN_OUT_OFF + 20],
            &20u32.to_le_bytes()
        );
        let big = vec![0u8; 16 + 8193];
        assert!(!slot.put_reply(&big));
        assert!(!slot.put_reply(&[0u8; 15]));
    }

    #[test]
    fn sqe_len_is_set() {
        let e = opcode::UringCmd80::new(types::Fd(3), CMD_REGISTER).build();
        // SAFETY: the same layout argument as in with_len.
        let raw: [u8; 128] = unsafe { std::mem::transmute(with_len(e, 2)) };
        assert_eq!(&raw[24..28], &2u32.to_le_bytes());
        assert_eq!(raw[0], 46); // IORING_OP_URING_CMD
    }
}
