//! The CUSE transport: `/dev/cuse` creates a real character device
//! `/dev/NAME` whose ioctls arrive unrestricted (docs/WIRE.md "CUSE
//! lifecycle").

use super::access::NodeAttrs;
use super::{decode_init, Channel, Served, SetupError, TransportKind};
use kevent_protocol::fuse::{self, Request, FUSE_KERNEL_MINOR_VERSION, FUSE_KERNEL_VERSION};
use std::fs::OpenOptions;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tracing::info;

/// Opens `/dev/cuse` (close-on-exec: a child holding it could keep a parked
/// caller in D state). ENOENT/ENODEV mean the kernel has no CUSE.
pub fn open_channel() -> std::io::Result<OwnedFd> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open("/dev/cuse")?;
    Ok(f.into())
}

/// Registers `/dev/NAME` on an open `/dev/cuse` and sets its owner, group
/// and mode.
pub fn serve(fd: OwnedFd, name: &str, attrs: NodeAttrs) -> Result<Served, SetupError> {
    let mode = attrs.mode;
    let node = PathBuf::from("/dev").join(name);
    let sys = PathBuf::from("/sys/class/cuse").join(name);
    if let Ok(md) = std::fs::symlink_metadata(&node) {
        use std::os::unix::fs::FileTypeExt;
        if md.file_type().is_char_device() || sys.exists() {
            return Err(SetupError::NameTaken(
                node,
                "a device of that name exists (another kevent-cuse?)".into(),
            ));
        }
        // A leftover of the FUSE-file transport: clean it like that one does.
        super::fuse_file::clean_stale(&node)?;
    }
    let ch = Channel::new(fd);
    let buf = ch.read_init(Duration::from_secs(5))?;
    let msg = decode_init(&buf)?;
    let Request::CuseInit { major, minor, .. } = msg.request else {
        return Err(SetupError::Handshake(format!(
            "expected CUSE_INIT, got {msg}"
        )));
    };
    if major != FUSE_KERNEL_VERSION {
        return Err(SetupError::Handshake(format!(
            "kernel speaks FUSE {major}.{minor}, need 7.x"
        )));
    }
    let minor = minor.min(FUSE_KERNEL_MINOR_VERSION);
    let body = fuse::encode_cuse_init_out(minor, 65536, 65536, name);
    ch.send(&fuse::reply(msg.header.unique, &body));
    // A refused name still lets the reply succeed (docs/WIRE.md): check that the
    // device really appeared.
    wait_for(&node, Duration::from_secs(5)).map_err(|_| {
        SetupError::NameTaken(
            node.clone(),
            "CUSE refused the device name (is it in use?)".into(),
        )
    })?;
    // devtmpfs creates it root:root 0600.
    std::os::unix::fs::chown(&node, Some(attrs.uid), Some(attrs.gid))
        .map_err(|e| SetupError::io(format!("chown {}", node.display()), e))?;
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(mode))
        .map_err(|e| SetupError::io(format!("chmod {}", node.display()), e))?;
    info!(
        "CUSE {major}.{minor}: serving {} (owner {} group {} mode {mode:o})",
        node.display(),
        attrs.uid,
        attrs.gid
    );
    Ok(Served {
        kind: TransportKind::Cuse,
        channel: Rc::new(ch),
        node,
        created_file: false,
        io_uring: false,
    })
}

fn wait_for(path: &Path, timeout: Duration) -> Result<(), ()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if path.exists() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(())
}
