//! kevent-cuse: the 2006 `/dev/kevent` ABI served from userspace.
//!
//! Data flows one way each: `protocol` (bytes) -> [`transport`] (the kernel
//! channel and the caller's memory) -> [`core`] (queues, ready lists) ->
//! [`sources`] (one module per event type), and back.
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
