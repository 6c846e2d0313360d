//! kevent-cuse: the 2006 `/dev/kevent` ABI served from userspace.
//!
//! Data flows one way each: `protocol` (bytes) -> [`transport`] (the kernel
//! channel and the caller's memory) -> [`core`] (queues, ready lists) ->
//! [`sources`] (one module per event type), and back.
// Unsafe only in the few modules under `sys/` that allow it, each block
// with a SAFETY line.
#![deny(unsafe_code)]

pub mod core;
pub mod daemon;
pub mod fuzz;
pub mod logging;
pub mod reactor;
pub mod sources;
pub mod status;
pub mod sys;
pub mod transport;
