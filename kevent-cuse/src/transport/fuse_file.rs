//! The FUSE-file fallback for kernels without CUSE: FUSE mounted directly
//! on a regular file at the device path (docs/WIRE.md "FUSE-file
//! fallback"). Ioctls arrive restricted: the kernel copies the 12-byte
//! header itself, and the ukevent array is reached in the caller's memory.

use super::access::NodeAttrs;
use super::{decode_init, Channel, Served, SetupError, TransportKind};
use kevent_protocol::fuse::{
    self, init_flags, InitOptions, Request, FUSE_KERNEL_MINOR_VERSION, FUSE_KERNEL_VERSION,
};
use rustix::mount::{MountFlags, UnmountFlags};
use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;
use tracing::{info, warn};

/// The filesystem type shown in /proc/mounts (`fuse.kevent`).
pub const FS_SUBTYPE: &str = "kevent";

/// Mounts FUSE on `path` (created as an empty regular file if missing).
/// `attrs` are reported by GETATTR and enforced by the daemon at OPEN
/// (transport/access.rs), not with `default_permissions`: that option makes
/// every permission check on the file a GETATTR round trip to the daemon
/// (attributes are never cached, so a dead daemon shows at once), including
/// the checks the daemon itself triggers when it watches its own file for
/// an INODE kevent, and the daemon would wait for itself.
/// `attrs` may be a bare mode (root:root).
pub fn serve(path: &Path, attrs: impl Into<NodeAttrs>) -> Result<Served, SetupError> {
    serve_with(path, attrs, false)
}

/// [`serve`], asking at INIT for FUSE-over-io_uring when `want_uring` and
/// the kernel offers it; [`Served::io_uring`] tells whether it was agreed.
pub fn serve_with(
    path: &Path,
    attrs: impl Into<NodeAttrs>,
    want_uring: bool,
) -> Result<Served, SetupError> {
    let attrs: NodeAttrs = attrs.into();
    let mode = attrs.mode;
    let path = absolute(path)?;
    clean_stale(&path)?;
    let created_file = match std::fs::symlink_metadata(&path) {
        Ok(md) if md.file_type().is_file() => false,
        Ok(_) => {
            return Err(SetupError::NameTaken(
                path,
                "it exists and is not a regular file".into(),
            ))
        }
        Err(_) => {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&path)
                .map_err(|e| SetupError::io(format!("creating {}", path.display()), e))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| SetupError::io(format!("chmod {}", path.display()), e))?;
            true
        }
    };
    let result = mount_and_init(&path, mode, want_uring);
    if result.is_err() && created_file {
        remove_placeholder(&path);
    }
    let (ch, io_uring) = result?;
    info!(
        "FUSE file: serving {} (owner {} group {} mode {mode:o})",
        path.display(),
        attrs.uid,
        attrs.gid
    );
    Ok(Served {
        kind: TransportKind::FuseFile,
        channel: Rc::new(ch),
        node: path,
        created_file,
        io_uring,
    })
}

/// Pages per request asked for with io_uring: ring entries are sized by
/// the kernel's largest payload, and 16 KiB covers any restricted ioctl
/// (_IOC_SIZE is 14 bits).
pub const URING_MAX_PAGES: u16 = 4;
/// max_write with io_uring (the file serves no write()).
pub const URING_MAX_WRITE: u32 = 16384;

fn mount_and_init(path: &Path, mode: u32, want_uring: bool) -> Result<(Channel, bool), SetupError> {
    let fd = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open("/dev/fuse")
        .map_err(|e| SetupError::io("opening /dev/fuse", e))?;
    let opts = format!(
        "fd={},rootmode={:o},user_id=0,group_id=0,allow_other",
        fd.as_raw_fd(),
        libc::S_IFREG | (mode & 0o7777)
    );
    let opts = CString::new(opts).expect("no NUL");
    rustix::mount::mount(
        FS_SUBTYPE,
        path,
        format!("fuse.{FS_SUBTYPE}"),
        MountFlags::NOSUID | MountFlags::NODEV,
        Some(opts.as_c_str()),
    )
    .map_err(|e| SetupError::io(format!("mounting FUSE on {}", path.display()), e))?;
    let ch = Channel::new(fd.into());
    let init = (|| {
        let buf = ch.read_init(Duration::from_secs(5))?;
        let msg = decode_init(&buf)?;
        let Request::Init {
            major,
            minor,
            max_readahead,
            flags,
            flags2,
        } = msg.request
        else {
            return Err(SetupError::Handshake(format!("expected INIT, got {msg}")));
        };
        if major != FUSE_KERNEL_VERSION {
            return Err(SetupError::Handshake(format!(
                "kernel speaks FUSE {major}.{minor}, need 7.x"
            )));
        }
        let minor = minor.min(FUSE_KERNEL_MINOR_VERSION);
        let offered = flags & init_flags::FUSE_INIT_EXT != 0
            && flags2 & init_flags::FUSE_OVER_IO_URING_FLAGS2 != 0;
        let uring = want_uring && offered;
        if want_uring && !offered {
            info!("the kernel did not offer FUSE-over-io_uring at INIT (enable_uring off when mounting, or no CONFIG_FUSE_IO_URING)");
        }
        let body = if uring {
            fuse::encode_init_out_with(
                minor,
                max_readahead,
                URING_MAX_WRITE,
                InitOptions {
                    io_uring: true,
                    max_pages: URING_MAX_PAGES,
                },
            )
        } else {
            fuse::encode_init_out(minor, max_readahead, 65536)
        };
        ch.send(&fuse::reply(msg.header.unique, &body));
        Ok(uring)
    })();
    match init {
        Ok(uring) => Ok((ch, uring)),
        Err(e) => {
            unmount(path);
            Err(e)
        }
    }
}

/// Makes `path` absolute without resolving the last component (a stale
/// mount there cannot be resolved).
fn absolute(path: &Path) -> Result<PathBuf, SetupError> {
    let name = path.file_name().ok_or_else(|| {
        SetupError::io(
            format!("{}", path.display()),
            std::io::Error::from_raw_os_error(libc::EINVAL),
        )
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let parent = parent
        .canonicalize()
        .map_err(|e| SetupError::io(format!("directory of {}", path.display()), e))?;
    Ok(parent.join(name))
}

/// The filesystem type mounted exactly at `path`, if any (the last mount).
fn mounted_type(path: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.to_str()?;
    info.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mountpoint = unescape(left.split(' ').nth(4)?);
        let fstype = right.split(' ').next()?.to_string();
        (mountpoint == want).then_some(fstype)
    })
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes a stale mount left at `path` by a crashed daemon; refuses a live
/// one or a foreign filesystem.
pub fn clean_stale(path: &Path) -> Result<(), SetupError> {
    let Some(fstype) = mounted_type(path) else {
        return Ok(());
    };
    if fstype != format!("fuse.{FS_SUBTYPE}") {
        return Err(SetupError::NameTaken(
            path.to_path_buf(),
            format!("a {fstype} filesystem is mounted there"),
        ));
    }
    // A live daemon answers stat(); a dead one leaves ENOTCONN.
    match std::fs::metadata(path) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            warn!(
                "removing stale mount at {} from an earlier run",
                path.display()
            );
            rustix::mount::unmount(path, UnmountFlags::DETACH)
                .map_err(|e| SetupError::io(format!("unmounting stale {}", path.display()), e))?;
            Ok(())
        }
        _ => Err(SetupError::NameTaken(
            path.to_path_buf(),
            "another kevent-cuse is serving it".into(),
        )),
    }
}

/// Detaches the mount (callers that still hold it open get errors).
pub fn unmount(path: &Path) {
    if let Err(e) = rustix::mount::unmount(path, UnmountFlags::DETACH) {
        warn!("unmounting {}: {e}", path.display());
    }
}

/// Removes the empty placeholder file we created.
pub fn remove_placeholder(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(md) if md.file_type().is_file() && md.len() == 0 => {
            if let Err(e) = std::fs::remove_file(path) {
                warn!("removing {}: {e}", path.display());
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/x\134y"), r"/x\y");
    }
}
