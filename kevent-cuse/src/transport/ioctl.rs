//! Reaching an ioctl's argument: the 12-byte header at `arg` and the ukevent
//! array at `arg + 12` (docs/WIRE.md "IOCTL").
//!
//! Three ways, chosen per request:
//! * **Remote** (the fast path, both transports): the caller's memory is read
//!   and written with process_vm_readv/writev; one round trip. Under the
//!   FUSE file the kernel already copied the header in (restricted ioctl)
//!   and we use that copy; the reply carries no data, so the kernel copies
//!   nothing back over what we wrote.
//! * **Gathered** (CUSE fallback when the caller's memory is refused): the
//!   RETRY exchange made the kernel gather the bytes; writes go into an out
//!   buffer that the reply carries back.
//! * **Retry needed**: tell the kernel which ranges to gather.

use crate::sys::remote_mem::{CallerMemory, MemError};
use kevent_protocol::fuse::IoctlIovec;
use kevent_protocol::kevent::{KeventUserControl, Ukevent};

/// Where an ioctl's argument bytes live.
#[derive(Debug, Clone)]
pub struct ArgMem {
    tid: u32,
    base: u64,
    /// Bytes gathered by the kernel from `base` (RETRY leg), if any.
    gathered: Option<Vec<u8>>,
    /// The reply's out data (RETRY leg), if any.
    out: Option<Vec<u8>>,
}

impl ArgMem {
    /// Caller memory reached directly.
    pub fn remote(tid: u32, base: u64) -> Self {
        ArgMem {
            tid,
            base,
            gathered: None,
            out: None,
        }
    }

    /// Caller memory gathered by the kernel; writes go to a buffer of
    /// `out_len` bytes that starts as a copy of the input.
    pub fn gathered(base: u64, data: &[u8], out_len: usize) -> Self {
        let mut out = data.to_vec();
        out.resize(out_len, 0);
        ArgMem {
            tid: 0,
            base,
            gathered: Some(data.to_vec()),
            out: Some(out),
        }
    }

    /// True on the RETRY path (errors travel with data in the reply).
    pub fn is_gathered(&self) -> bool {
        self.gathered.is_some()
    }

    /// Reads `len` bytes at `arg + off`.
    pub fn read(
        &self,
        mem: &dyn CallerMemory,
        off: usize,
        len: usize,
    ) -> Result<Vec<u8>, MemError> {
        match &self.gathered {
            Some(g) => g
                .get(off..off.checked_add(len).ok_or(MemError::Fault)?)
                .map(<[u8]>::to_vec)
                .ok_or(MemError::Fault),
            None => mem.read(self.tid, self.base.wrapping_add(off as u64), len),
        }
    }

    /// Writes `data` at `arg + off`.
    pub fn write(
        &mut self,
        mem: &dyn CallerMemory,
        off: usize,
        data: &[u8],
    ) -> Result<(), MemError> {
        match &mut self.out {
            Some(out) => {
                let end = off.checked_add(data.len()).ok_or(MemError::Fault)?;
                out.get_mut(off..end)
                    .ok_or(MemError::Fault)?
                    .copy_from_slice(data);
                Ok(())
            }
            None => mem.write(self.tid, self.base.wrapping_add(off as u64), data),
        }
    }

    /// The data the reply must carry: the out buffer cut to `len` bytes on
    /// the RETRY path, nothing otherwise.
    pub fn reply_data(&self, len: usize) -> &[u8] {
        match &self.out {
            Some(out) => &out[..len.min(out.len())],
            None => &[],
        }
    }

    /// Writes back `hdr.num` (ADD and WAIT rewrite it).
    pub fn write_num(&mut self, mem: &dyn CallerMemory, num: u32) -> Result<(), MemError> {
        self.write(mem, KeventUserControl::OFFSET_NUM, &num.to_ne_bytes())
    }

    /// Writes ukevents packed from the start of the array.
    pub fn write_events(
        &mut self,
        mem: &dyn CallerMemory,
        evs: &[Ukevent],
    ) -> Result<(), MemError> {
        self.write(mem, KeventUserControl::SIZE, &Ukevent::encode_array(evs))
    }
}

/// The RETRY reply asking for the header only.
pub fn retry_for_header(arg: u64) -> (Vec<IoctlIovec>, Vec<IoctlIovec>) {
    (
        vec![IoctlIovec {
            base: arg,
            len: KeventUserControl::SIZE as u64,
        }],
        Vec::new(),
    )
}

/// The RETRY reply asking for `in_len` bytes in and `out_len` bytes out.
pub fn retry_for(arg: u64, in_len: u64, out_len: u64) -> (Vec<IoctlIovec>, Vec<IoctlIovec>) {
    (
        vec![IoctlIovec {
            base: arg,
            len: in_len,
        }],
        vec![IoctlIovec {
            base: arg,
            len: out_len,
        }],
    )
}
