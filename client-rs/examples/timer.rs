//! A periodic timer and a POLL kevent on a socket pair, collected with WAIT.
//!
//!     cargo run -p kevent-client --example timer [-- /dev/kevent]

use kevent_client::{Device, PollEvents, Ukevent, UkeventExt};
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/dev/kevent".into());
    let dev = Device::open(&path)?;
    let (reader, mut writer) = std::os::unix::net::UnixStream::pair()?;
    let mut evs = [
        Ukevent::timer(100).with_user([1, 0]),
        Ukevent::poll(&reader, PollEvents::IN)
            .with_user([2, 0])
            .oneshot(),
    ];
    let added = dev.add(&mut evs)?;
    println!(
        "ADD returned {}, {} written back",
        added.ret,
        added.written_back.len()
    );
    writer.write_all(b"x")?;
    let mut seen = 0;
    while seen < 4 {
        for ev in dev.wait(8, 2000)? {
            println!(
                "user={} type={:?} ret={:?} data={:?}",
                ev.user[0],
                ev.kind(),
                ev.ret(),
                ev.ret_data
            );
            seen += 1;
        }
    }
    Ok(())
}
