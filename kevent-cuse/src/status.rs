//! The admin's view (`kevent-cuse --status`): the daemon serves a text
//! report on a unix socket that only root can reach, and the same binary
//! reads it.
//!
//! The socket is `/run/kevent-cuse/<escaped node path>.sock` (the path
//! escaped as `systemd-escape --path` does: `/dev/kevent` ->
//! `dev-kevent`), in a directory of mode 0700, itself 0600; the daemon also
//! checks that the peer is uid 0 (SO_PEERCRED). One thread accepts and
//! answers one client at a time with a bounded write; the report is taken
//! from a snapshot of the core under the request lock and formatted
//! outside it.
//!
//! The report is line-based, one record per line, `key=value` fields:
//!
//! ```text
//! kevent-cuse pid=123 node=/dev/kevent transport=CUSE
//! limits queues=1024 kevents=65536 descriptors=4096 descriptors_all_users=917504
//! queue id=1 pid=4242 uid=1000 nonblock=0 socket=0 inode=0 timer=2 poll=0 naio=0 aio=0 ready=1 parked=0 waits=2 ready_at_once=1 total=3
//! user uid=1000 queues=1 kevents=2 descriptors=2
//! total queues=1 kevents=2 ready=1 parked=0
//! ```
//!
//! `waits`, `ready_at_once` and `total` are the 2006 `KEVENT_USER_STAT`
//! counters of a queue: WAIT calls answered, ukevents ready at once at ADD,
//! and ukevents handed to a source by ADD. A limit of 0 means unlimited.

use crate::core::CoreSnapshot;
use kevent_protocol::names::TYPE_NAMES;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::{debug, info, warn};

/// Where status sockets live.
pub const STATUS_DIR: &str = "/run/kevent-cuse";

/// `systemd-escape --path`: `/dev/kevent` -> `dev-kevent`; bytes other than
/// ASCII letters, digits, `:`, `_` and `.` (and a leading `.`) become
/// `\xNN`.
pub fn escape_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let raw = path.as_os_str().as_bytes();
    let trimmed: Vec<&[u8]> = raw
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect();
    if trimmed.is_empty() {
        return "-".into();
    }
    let mut out = String::new();
    for (i, comp) in trimmed.iter().enumerate() {
        if i > 0 {
            out.push('-');
        }
        for (j, &b) in comp.iter().enumerate() {
            let plain = b.is_ascii_alphanumeric()
                || b == b':'
                || b == b'_'
                || (b == b'.' && !(i == 0 && j == 0));
            if plain {
                out.push(b as char);
            } else {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

/// The status socket of the device at `node` (absolute path).
pub fn socket_path(node: &Path) -> PathBuf {
    Path::new(STATUS_DIR).join(format!("{}.sock", escape_path(node)))
}

/// What the report says about the daemon itself.
#[derive(Debug, Clone)]
pub struct Header {
    /// The served node.
    pub node: PathBuf,
    /// `CUSE` or `FUSE file`.
    pub transport: String,
}

/// Formats a report (see the module documentation).
pub fn format_report(h: &Header, s: &CoreSnapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kevent-cuse pid={} node={} transport={}",
        std::process::id(),
        h.node.display(),
        h.transport.replace(' ', "-")
    );
    let l = &s.limits;
    let _ = writeln!(
        out,
        "limits queues={} kevents={} descriptors={} descriptors_all_users={}",
        l.queues, l.kevents, l.descriptors, l.descriptors_total
    );
    let (mut kevents, mut ready, mut parked) = (0u64, 0u64, 0u64);
    for q in &s.queues {
        let _ = write!(
            out,
            "queue id={} pid={} uid={} nonblock={}",
            q.id, q.owner.pid, q.owner.uid, q.nonblock as u8
        );
        for (ty, n) in q.kevents.iter().enumerate() {
            let _ = write!(out, " {}={n}", TYPE_NAMES[ty]);
            kevents += *n as u64;
        }
        let _ = writeln!(
            out,
            " ready={} parked={} waits={} ready_at_once={} total={}",
            q.ready, q.parked, q.stats.waits, q.stats.ready_at_once, q.stats.total
        );
        ready += q.ready as u64;
        parked += q.parked as u64;
    }
    for (uid, u) in &s.users {
        let _ = writeln!(
            out,
            "user uid={uid} queues={} kevents={} descriptors={}",
            u.queues, u.kevents, u.descriptors
        );
    }
    let _ = writeln!(
        out,
        "total queues={} kevents={kevents} ready={ready} parked={parked}",
        s.queues.len()
    );
    out
}

/// The daemon's side: a bound socket and its thread.
pub struct StatusServer {
    path: PathBuf,
}

impl StatusServer {
    /// Binds the status socket of `h.node` and answers each client with
    /// `report()` on a thread of its own. A failure here is logged and the
    /// daemon serves without a status socket.
    pub fn start(
        h: Header,
        snapshot: impl Fn() -> CoreSnapshot + Send + 'static,
    ) -> Option<StatusServer> {
        let path = socket_path(&h.node);
        match bind(&path) {
            Ok(listener) => {
                let spawned = std::thread::Builder::new()
                    .name("status".into())
                    .spawn(move || accept_loop(listener, h, snapshot));
                match spawned {
                    Ok(_) => {
                        info!("status: `kevent-cuse --status` reads {}", path.display());
                        Some(StatusServer { path })
                    }
                    Err(e) => {
                        warn!("status thread: {e}; no status socket");
                        let _ = std::fs::remove_file(&path);
                        None
                    }
                }
            }
            Err(e) => {
                warn!("status socket {}: {e}; serving without it", path.display());
                None
            }
        }
    }
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn bind(path: &Path) -> io::Result<UnixListener> {
    let dir = path.parent().expect("under STATUS_DIR");
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    // The device name is ours now (the transport refused a live one), so a
    // socket left here is from a daemon that died.
    match std::fs::remove_file(path) {
        Ok(()) => debug!("removed a stale {}", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

fn accept_loop(l: UnixListener, h: Header, snapshot: impl Fn() -> CoreSnapshot) {
    for conn in l.incoming() {
        let Ok(mut c) = conn else { continue };
        let peer = rustix::net::sockopt::socket_peercred(&c);
        match peer {
            Ok(cred) if cred.uid.is_root() => {}
            Ok(cred) => {
                warn!("status: refused a client of uid {}", cred.uid.as_raw());
                let _ = c.write_all(b"error: the status of kevent-cuse is for root only\n");
                continue;
            }
            Err(e) => {
                debug!("status: peer credentials: {e}");
                continue;
            }
        }
        let report = format_report(&h, &snapshot());
        let _ = c.set_write_timeout(Some(Duration::from_secs(5)));
        let _ = c.write_all(report.as_bytes());
    }
}

/// The client's side (`kevent-cuse --status`): the report of the daemon
/// serving `node`.
pub fn query(node: &Path) -> io::Result<String> {
    let path = socket_path(node);
    let mut c = UnixStream::connect(&path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "connecting to {} (is a kevent-cuse serving {} and are you root?): {e}",
                path.display(),
                node.display()
            ),
        )
    })?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut s = String::new();
    c.read_to_string(&mut s)?;
    if let Some(msg) = s.strip_prefix("error: ") {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            msg.trim().to_string(),
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Limits, Owner, QueueSnapshot, QueueStats, Usage};

    #[test]
    fn paths_are_escaped_like_systemd_escape() {
        assert_eq!(escape_path(Path::new("/dev/kevent")), "dev-kevent");
        assert_eq!(
            escape_path(Path::new("/tmp/a b/.k-1")),
            "tmp-a\\x20b-.k\\x2d1"
        );
        assert_eq!(escape_path(Path::new("/.hidden//x/")), "\\x2ehidden-x");
        assert_eq!(escape_path(Path::new("/")), "-");
        assert_eq!(
            socket_path(Path::new("/dev/kevent")),
            Path::new("/run/kevent-cuse/dev-kevent.sock")
        );
    }

    #[test]
    fn the_report_has_one_line_per_queue_and_user() {
        let s = CoreSnapshot {
            queues: vec![QueueSnapshot {
                id: 3,
                owner: Owner { pid: 77, uid: 1000 },
                nonblock: false,
                kevents: [1, 0, 2, 0, 0, 0],
                ready: 1,
                parked: 1,
                stats: QueueStats {
                    waits: 4,
                    ready_at_once: 1,
                    total: 5,
                },
            }],
            users: vec![(
                1000,
                Usage {
                    queues: 1,
                    kevents: 3,
                    descriptors: 3,
                },
            )],
            limits: Limits {
                queues: 8,
                kevents: 9,
                descriptors: 10,
                descriptors_total: 11,
            },
        };
        let h = Header {
            node: "/dev/kevent".into(),
            transport: "FUSE file".into(),
        };
        let r = format_report(&h, &s);
        let lines: Vec<&str> = r.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].starts_with("kevent-cuse pid="));
        assert!(lines[0].ends_with(" node=/dev/kevent transport=FUSE-file"));
        assert_eq!(
            lines[1],
            "limits queues=8 kevents=9 descriptors=10 descriptors_all_users=11"
        );
        assert_eq!(lines[2], "queue id=3 pid=77 uid=1000 nonblock=0 socket=1 inode=0 timer=2 poll=0 naio=0 aio=0 ready=1 parked=1 waits=4 ready_at_once=1 total=5");
        assert_eq!(lines[3], "user uid=1000 queues=1 kevents=3 descriptors=3");
        assert_eq!(
            lines[4],
            "total queues=1 kevents=3 ready=1 parked=0".replace("parked=0", "parked=1")
        );
    }
}
