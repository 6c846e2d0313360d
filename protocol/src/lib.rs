//! Pure data for kevent-cuse: no I/O happens in this crate.
//!
//! * [`kevent`] is the 2006 `/dev/kevent` ABI (docs/ABI.md section 1):
//!   constants, the 40-byte `ukevent`, the 12-byte `kevent_user_control`
//!   header and the two ioctl numbers, with encode/decode from raw bytes.
//! * [`fuse`] is the subset of the FUSE/CUSE wire protocol the daemon speaks
//!   (`include/uapi/linux/fuse.h`, docs/WIRE.md), with C field names so the
//!   structs grep against the kernel header.
//! * [`names`] names event types, bits, flags and errno values for logs
//!   and tools.
//!
//! Everything is decoded from byte slices with explicit offsets, never cast,
//! because the ukevent array at `arg + 12` is only 4-byte aligned and kernel
//! input must never be trusted.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod bytes;
pub mod fuse;
pub mod kevent;
pub mod names;
