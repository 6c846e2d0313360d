//! Thin wrappers over the system calls the daemon needs, built on `rustix`
//! and `nix` safe APIs. The rest of the crate calls these instead of raw
//! libc, so there is no `unsafe` outside this module tree (and inside it only
//! in modules that say so: `fuse_uring`, `handle`).

pub mod epoll_drain;
pub mod fanotify;
pub mod fuse_dev;
pub mod fuse_uring;
pub mod handle;
pub mod inotify;
pub mod pidfd;
pub mod remote_mem;
pub mod uring;

/// CLOCK_MONOTONIC in milliseconds, truncated to u32 ("jiffies at HZ=1000").
pub fn monotonic_ms() -> u32 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (ts.tv_sec as u64)
        .wrapping_mul(1000)
        .wrapping_add(ts.tv_nsec as u64 / 1_000_000) as u32
}
