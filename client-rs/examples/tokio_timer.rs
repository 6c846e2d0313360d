//! The queue in tokio's reactor: await a one-shot timer.
//!
//!     cargo run -p kevent-client --features tokio --example tokio_timer [-- /dev/kevent]

use kevent_client::{AsyncDevice, Ukevent, UkeventExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/dev/kevent".into());
    let dev = AsyncDevice::open(&path)?;
    dev.get_ref().add(&mut [Ukevent::timer(50).oneshot()])?;
    let evs = dev.wait(8).await?;
    println!(
        "timer fired at {} ms ({} expirations)",
        evs[0].ret_data[0], evs[0].ret_data[1]
    );
    Ok(())
}
