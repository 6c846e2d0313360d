//! The device in tokio's reactor (feature `tokio`).
//!
//! [`AsyncDevice`] wraps a [`Device`] opened with O_NONBLOCK in a
//! [`tokio::io::unix::AsyncFd`]: its `wait` sleeps in the reactor until the
//! queue descriptor is readable (an event is ready), then collects the
//! events with a WAIT that never sleeps in the daemon.
//!
//! ```no_run
//! # async fn run() -> Result<(), kevent_client::Error> {
//! use kevent_client::{AsyncDevice, Ukevent, UkeventExt};
//! let dev = AsyncDevice::open("/dev/kevent")?;
//! dev.get_ref().add(&mut [Ukevent::timer(50).oneshot()])?;
//! let evs = dev.wait(8).await?;
//! assert_eq!(evs[0].id[0], 50);
//! # Ok(()) }
//! ```

use crate::{Device, Error, Ukevent};
use std::path::Path;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A queue registered with tokio's reactor.
#[derive(Debug)]
pub struct AsyncDevice {
    inner: AsyncFd<Device>,
}

impl AsyncDevice {
    /// Opens the device with O_NONBLOCK and registers it with the current
    /// tokio runtime (must be called inside one).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Self::new(Device::open_nonblocking(path)?)
    }

    /// Registers an already open queue. It must have been opened with
    /// O_NONBLOCK ([`Device::open_nonblocking`]): the daemon sees that flag
    /// only at open, and a queue without it would sleep in WAIT.
    pub fn new(dev: Device) -> Result<Self, Error> {
        if !dev.is_nonblocking() {
            return Err(Error::Buffer(
                "AsyncDevice needs a queue opened with O_NONBLOCK (Device::open_nonblocking)"
                    .into(),
            ));
        }
        // SAFETY: the Device owns its descriptor and never replaces it; the
        // AsyncFd owns the Device, and this type hands out only `&Device`
        // and `&AsyncFd` (no `get_mut`), so the descriptor stays open and
        // the same until the AsyncFd is dropped or `into_inner` returns.
        #[allow(unsafe_code)]
        let inner =
            unsafe { AsyncFd::register_with_interest(dev, Interest::READABLE) }.map_err(|e| {
                Error::Ioctl {
                    op: "AsyncFd::register",
                    source: e.into_parts().1,
                }
            })?;
        Ok(AsyncDevice { inner })
    }

    /// The device, for ADD, REMOVE and MODIFY (they never sleep).
    pub fn get_ref(&self) -> &Device {
        self.inner.get_ref()
    }

    /// The `AsyncFd` itself, for custom readiness handling.
    pub fn async_fd(&self) -> &AsyncFd<Device> {
        &self.inner
    }

    /// Unregisters from the reactor and returns the device.
    pub fn into_inner(self) -> Device {
        self.inner.into_inner()
    }

    /// Waits (asynchronously) until at least one event is ready and returns
    /// up to `max` of them.
    pub async fn wait(&self, max: u32) -> Result<Vec<Ukevent>, Error> {
        loop {
            let mut guard = self
                .inner
                .readable()
                .await
                .map_err(|source| Error::Ioctl { op: "WAIT", source })?;
            match guard.try_io(|d| match d.get_ref().wait(max, 0) {
                Ok(evs) if evs.is_empty() => Err(std::io::ErrorKind::WouldBlock.into()),
                Ok(evs) => Ok(evs),
                Err(e) => Err(e.into()),
            }) {
                Ok(Ok(evs)) => return Ok(evs),
                Ok(Err(source)) => return Err(Error::Ioctl { op: "WAIT", source }),
                Err(_would_block) => continue,
            }
        }
    }
}
