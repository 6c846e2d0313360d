//! The caller's memory, reached with process_vm_readv / process_vm_writev
//! (docs/WIRE.md, "The fast path"): one ioctl costs one round trip.
//!
//! The request header carries the caller's thread id; these calls accept a
//! tid as well as a pid, and act on that thread's address space. Permission
//! follows ptrace rules (PTRACE_MODE_ATTACH_REALCREDS), so a root daemon can
//! reach every caller it can see, and no other process is ever touched: the
//! address and the tid both come from the caller's own request.

use nix::sys::uio::{process_vm_readv, process_vm_writev, RemoteIoVec};
use nix::unistd::Pid;
use std::io::{IoSlice, IoSliceMut};

/// Why the caller's memory could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MemError {
    /// The range is not mapped or lacks the permission (ABI: EINVAL).
    #[error("bad address in the caller")]
    Fault,
    /// The daemon may not reach this caller at all (pid 0, another pid
    /// namespace, no ptrace rights): use another path (RETRY) or refuse.
    #[error("caller memory not reachable")]
    Denied,
}

/// Reads and writes a caller's memory. A trait so that tests can use a fake.
pub trait CallerMemory {
    /// Reads `len` bytes at `addr` in thread `tid`'s address space.
    fn read(&self, tid: u32, addr: u64, len: usize) -> Result<Vec<u8>, MemError>;
    /// Writes `data` at `addr` in thread `tid`'s address space.
    fn write(&self, tid: u32, addr: u64, data: &[u8]) -> Result<(), MemError>;
}

/// The real thing: process_vm_readv / process_vm_writev.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessVm;

fn classify(e: nix::Error) -> MemError {
    match e {
        nix::Error::EFAULT | nix::Error::EINVAL | nix::Error::ENOMEM => MemError::Fault,
        _ => MemError::Denied,
    }
}

fn remote(addr: u64, len: usize) -> Result<RemoteIoVec, MemError> {
    let base = usize::try_from(addr).map_err(|_| MemError::Fault)?;
    base.checked_add(len).ok_or(MemError::Fault)?;
    Ok(RemoteIoVec { base, len })
}

impl CallerMemory for ProcessVm {
    fn read(&self, tid: u32, addr: u64, len: usize) -> Result<Vec<u8>, MemError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        if tid == 0 {
            return Err(MemError::Denied);
        }
        let mut buf = vec![0u8; len];
        let rv = remote(addr, len)?;
        let n = process_vm_readv(
            Pid::from_raw(tid as i32),
            &mut [IoSliceMut::new(&mut buf)],
            &[rv],
        )
        .map_err(classify)?;
        // A short transfer means part of the range is not mapped.
        if n != len {
            return Err(MemError::Fault);
        }
        Ok(buf)
    }

    fn write(&self, tid: u32, addr: u64, data: &[u8]) -> Result<(), MemError> {
        if data.is_empty() {
            return Ok(());
        }
        if tid == 0 {
            return Err(MemError::Denied);
        }
        let rv = remote(addr, data.len())?;
        let n = process_vm_writev(Pid::from_raw(tid as i32), &[IoSlice::new(data)], &[rv])
            .map_err(classify)?;
        if n != data.len() {
            return Err(MemError::Fault);
        }
        Ok(())
    }
}

/// Reads up to `buf.len()` bytes at `addr` of process `pid` into `buf`;
/// returns how many came (fewer when the range runs into unmapped memory).
/// `Err(Fault)` when not even the first byte could be read.
pub fn read_into(pid: u32, addr: u64, buf: &mut [u8]) -> Result<usize, MemError> {
    if buf.is_empty() {
        return Ok(0);
    }
    let rv = remote(addr, buf.len())?;
    let n = process_vm_readv(
        Pid::from_raw(pid as i32),
        &mut [IoSliceMut::new(buf)],
        &[rv],
    )
    .map_err(classify)?;
    if n == 0 {
        return Err(MemError::Fault);
    }
    Ok(n)
}

/// Writes `data` at `addr` of process `pid`; returns how many bytes went
/// (fewer when the range runs into unmapped or read-only memory).
/// `Err(Fault)` when not even the first byte could be written.
pub fn write_from(pid: u32, addr: u64, data: &[u8]) -> Result<usize, MemError> {
    if data.is_empty() {
        return Ok(0);
    }
    let rv = remote(addr, data.len())?;
    let n = process_vm_writev(Pid::from_raw(pid as i32), &[IoSlice::new(data)], &[rv])
        .map_err(classify)?;
    if n == 0 {
        return Err(MemError::Fault);
    }
    Ok(n)
}
