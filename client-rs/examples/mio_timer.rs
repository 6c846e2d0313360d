//! The queue as a mio event source: poll until a one-shot timer is ready.
//!
//!     cargo run -p kevent-client --features mio --example mio_timer [-- /dev/kevent]

use kevent_client::{Device, Ukevent, UkeventExt};
use mio::{Events, Interest, Poll, Token};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/dev/kevent".into());
    let mut dev = Device::open_nonblocking(&path)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut dev, Token(0), Interest::READABLE)?;
    dev.add(&mut [Ukevent::timer(50).oneshot()])?;
    let mut events = Events::with_capacity(4);
    loop {
        poll.poll(&mut events, None)?;
        let ready = dev.wait(8, 0)?;
        if !ready.is_empty() {
            println!("timer fired at {} ms", ready[0].ret_data[0]);
            return Ok(());
        }
    }
}
