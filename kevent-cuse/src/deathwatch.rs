//! A watcher process that aborts the daemon's FUSE connection if the daemon
//! dies without tearing it down (SIGKILL, a crash).
//!
//! Why: a POLL kevent on a queue of the daemon's own device is watched by
//! polling that file, and polling it is a FUSE POLL request to the daemon
//! itself. If the daemon is killed while one of its threads waits for such
//! an answer, that thread can never finish, so the process never ends, its
//! /dev/fuse descriptor is never closed, and every client of the mount hangs
//! until someone aborts the connection by hand. The watcher is that someone:
//! it is told of the daemon's death by the kernel (the parent-death signal
//! of the thread that started it, the daemon's main thread) and writes to
//! `/sys/fs/fuse/connections/N/abort`, but only while the daemon's mount is
//! still in place (a clean exit kills the watcher first and unmounts).
//!
//! Under CUSE there is no fusectl entry to abort; the daemon's own
//! precautions (never holding a file of its own device) are all there is.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The hidden command-line option that turns the binary into the watcher.
pub const OPTION: &str = "--watch-connection";

/// The running watcher; dropping it (a clean exit) kills it first.
pub struct Watcher(Child);

impl Watcher {
    /// Starts the watcher for the FUSE mount at `node`. Must be called on
    /// the thread that lives as long as the daemon (the main thread): the
    /// parent-death signal follows that thread.
    pub fn spawn(node: &Path) -> io::Result<Watcher> {
        let conn = connection_of(node)?;
        let spec = format!("{}:{}:{}", conn, std::process::id(), node.display());
        let child = Command::new("/proc/self/exe")
            .arg(OPTION)
            .arg(spec)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?;
        Ok(Watcher(child))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The FUSE connection number of the `fuse.kevent` mount at `node` (the
/// minor of its device), read from mountinfo: a stat() of the node would be
/// a request to this very daemon.
pub fn connection_of(node: &Path) -> io::Result<u32> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    find_connection(&info, node).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no fuse.kevent mount at {}", node.display()),
        )
    })
}

fn find_connection(mountinfo: &str, node: &Path) -> Option<u32> {
    let want = node.to_str()?;
    mountinfo.lines().rev().find_map(|line| {
        let f: Vec<&str> = line.split(' ').collect();
        let sep = f.iter().position(|x| *x == "-")?;
        let fstype = f.get(sep + 1)?;
        if f.get(4)? != &want || *fstype != "fuse.kevent" {
            return None;
        }
        let (major, minor) = f.get(2)?.split_once(':')?;
        (major == "0").then(|| minor.parse().ok()).flatten()
    })
}

/// The watcher's body: waits for the daemon's death, then aborts the
/// connection if the daemon left its mount behind. `spec` is
/// `CONNECTION:PID:PATH`.
pub fn watch(spec: &str) -> std::process::ExitCode {
    use nix::sys::signal::{SigSet, Signal};
    let mut parts = spec.splitn(3, ':');
    let (Some(conn), Some(pid), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
        return std::process::ExitCode::from(2);
    };
    let (Ok(conn), Ok(pid)) = (conn.parse::<u32>(), pid.parse::<i32>()) else {
        return std::process::ExitCode::from(2);
    };
    let node = PathBuf::from(path);
    // Signals meant for the daemon (a terminal's ^C, systemd's stop) must
    // not make the watcher act: only the parent-death signal does.
    let mut all = SigSet::empty();
    for s in [
        Signal::SIGUSR1,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        all.add(s);
    }
    if all.thread_block().is_err()
        || rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::USR1))
            .is_err()
    {
        return std::process::ExitCode::from(1);
    }
    let mut death = SigSet::empty();
    death.add(Signal::SIGUSR1);
    // The daemon may have died before the parent-death signal was set.
    while rustix::process::getppid().map(|p| p.as_raw_nonzero().get()) == Some(pid) {
        if death.wait() == Ok(Signal::SIGUSR1) {
            break;
        }
    }
    let still_mounted = connection_of(&node).is_ok_and(|c| c == conn);
    if still_mounted {
        let dir = Path::new("/sys/fs/fuse/connections");
        if !dir.join(conn.to_string()).exists() {
            let _ = nix::mount::mount(
                Some("fusectl"),
                dir,
                Some("fusectl"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            );
        }
        let done = std::fs::write(dir.join(conn.to_string()).join("abort"), "1").is_ok();
        let _ = writeln!(
            io::stderr(),
            "kevent-cuse watcher: the daemon died with {} mounted; FUSE connection {conn} {}",
            node.display(),
            if done {
                "aborted"
            } else {
                "could not be aborted"
            }
        );
    }
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 0:21 / / rw - ext4 /dev/vda rw
47 27 0:42 / /tmp/x/kevent rw,nosuid - fuse.kevent kevent rw,user_id=0
48 27 0:43 / /tmp/y/kevent rw,nosuid - fuse.other other rw
49 27 0:45 / /tmp/x/kevent rw,nosuid - fuse.kevent kevent rw,user_id=0
";

    #[test]
    fn finds_the_topmost_kevent_mount_of_the_path() {
        assert_eq!(find_connection(INFO, Path::new("/tmp/x/kevent")), Some(45));
        assert_eq!(find_connection(INFO, Path::new("/tmp/y/kevent")), None);
        assert_eq!(find_connection(INFO, Path::new("/tmp/z")), None);
    }
}
