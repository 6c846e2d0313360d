//! Who may open the device (issue 8 item 3).
//!
//! The node has an owner, a group and permission bits (`--owner`, `--group`,
//! `--mode`). Under CUSE the kernel checks them first (a real device node,
//! chowned and chmodded after creation). The FUSE file reports them in
//! GETATTR but is mounted without `default_permissions` (see
//! [`super::fuse_file::serve`]: with it the daemon could wait for itself),
//! so there the daemon's check is the enforcement. The daemon checks at
//! every OPEN against the caller's credentials, read from
//! `/proc/PID/status` at open time (fsuid, fsgid and the supplementary
//! groups), with the kernel's rule. Under CUSE the daemon reads
//! the node's current attributes at each open, so `chmod`/`chgrp` by an
//! administrator take effect for the next open; the FUSE file refuses them
//! (EPERM): its attributes are the daemon's options.

use crate::core::Errno;
use std::path::PathBuf;
use tracing::debug;

/// Owner, group and permission bits of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAttrs {
    /// Permission bits (at most 0777).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
}

impl Default for NodeAttrs {
    fn default() -> Self {
        NodeAttrs {
            mode: 0o666,
            uid: 0,
            gid: 0,
        }
    }
}

/// A bare mode: owned by root:root.
impl From<u32> for NodeAttrs {
    fn from(mode: u32) -> Self {
        NodeAttrs {
            mode,
            uid: 0,
            gid: 0,
        }
    }
}

/// Where the attributes checked at OPEN come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Fixed by the options (the FUSE file; tests).
    Fixed(NodeAttrs),
    /// The node's current attributes (CUSE: a real device node).
    Node(PathBuf),
}

impl Default for Access {
    fn default() -> Self {
        Access::Fixed(NodeAttrs::default())
    }
}

/// The credentials the kernel would check: fsuid, fsgid, supplementary
/// groups.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Creds {
    /// fsuid.
    pub uid: u32,
    /// fsgid.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

impl Creds {
    /// Reads `/proc/TID/status` of the opener. The request header's fsuid
    /// and fsgid are authoritative: when the file is unreadable (the caller
    /// is not visible in the daemon's pid namespace, `tid` 0) or does not
    /// match them (the thread is gone and its id reused), the header's ids
    /// are used without supplementary groups.
    pub fn of_caller(tid: u32, uid: u32, gid: u32) -> Creds {
        let header = Creds {
            uid,
            gid,
            groups: Vec::new(),
        };
        if tid == 0 {
            return header;
        }
        let Ok(text) = std::fs::read_to_string(format!("/proc/{tid}/status")) else {
            return header;
        };
        match parse_status(&text) {
            Some(c) if c.uid == uid && c.gid == gid => c,
            _ => header,
        }
    }
}

/// fsuid, fsgid (the fourth field of `Uid:` and `Gid:`) and `Groups:`.
pub fn parse_status(text: &str) -> Option<Creds> {
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name));
    let fourth = |s: &str| s.split_whitespace().nth(3)?.parse::<u32>().ok();
    let uid = fourth(field("Uid:")?)?;
    let gid = fourth(field("Gid:")?)?;
    let groups = field("Groups:")
        .unwrap_or("")
        .split_whitespace()
        .filter_map(|g| g.parse().ok())
        .collect();
    Some(Creds { uid, gid, groups })
}

/// The access an open asks for: `r` for O_RDONLY, `w` for O_WRONLY, both
/// for O_RDWR (and for the invalid access mode 3, as the kernel does).
pub fn wanted(open_flags: u32) -> u32 {
    match open_flags & libc::O_ACCMODE as u32 {
        x if x == libc::O_RDONLY as u32 => 0o4,
        x if x == libc::O_WRONLY as u32 => 0o2,
        _ => 0o6,
    }
}

/// The kernel's rule (generic_permission without ACLs): root passes; else
/// the owner bits if the fsuid owns the node, else the group bits if the
/// fsgid or a supplementary group is the node's group, else the other bits.
pub fn permits(attrs: &NodeAttrs, creds: &Creds, want: u32) -> bool {
    if creds.uid == 0 {
        return true;
    }
    let bits = if creds.uid == attrs.uid {
        attrs.mode >> 6
    } else if creds.gid == attrs.gid || creds.groups.contains(&attrs.gid) {
        attrs.mode >> 3
    } else {
        attrs.mode
    } & 0o7;
    bits & want == want
}

impl Access {
    /// The attributes in force now.
    pub fn attrs(&self) -> std::io::Result<NodeAttrs> {
        match self {
            Access::Fixed(a) => Ok(*a),
            Access::Node(p) => {
                use std::os::unix::fs::MetadataExt;
                let md = std::fs::metadata(p)?;
                Ok(NodeAttrs {
                    mode: md.mode() & 0o777,
                    uid: md.uid(),
                    gid: md.gid(),
                })
            }
        }
    }

    /// OPEN: may the caller (thread `tid`, fsuid `uid`, fsgid `gid` from the
    /// request header) open the node with `open_flags`? EACCES if not.
    /// Reads /proc and may stat the node: call it without holding a lock.
    pub fn check_open(&self, tid: u32, uid: u32, gid: u32, open_flags: u32) -> Result<(), Errno> {
        if uid == 0 {
            return Ok(());
        }
        let attrs = self.attrs().map_err(|e| Errno::from_io(&e))?;
        let creds = Creds::of_caller(tid, uid, gid);
        let want = wanted(open_flags);
        if permits(&attrs, &creds, want) {
            Ok(())
        } else {
            debug!(
                "open by tid {tid} uid {uid} gid {gid} groups {:?} refused: node {}:{} mode {:o}, wants {want:o}",
                creds.groups, attrs.uid, attrs.gid, attrs.mode
            );
            Err(Errno::EACCES)
        }
    }
}

/// A user name or number (`--owner`).
pub fn resolve_user(s: &str) -> Result<u32, String> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    match nix::unistd::User::from_name(s) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        Ok(None) => Err(format!("no user named {s:?}")),
        Err(e) => Err(format!("looking up user {s:?}: {e}")),
    }
}

/// A group name or number (`--group`).
pub fn resolve_group(s: &str) -> Result<u32, String> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    match nix::unistd::Group::from_name(s) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("no group named {s:?}")),
        Err(e) => Err(format!("looking up group {s:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tcat\nUmask:\t0022\nState:\tR (running)\nTgid:\t5\nUid:\t1000\t1001\t1002\t1003\nGid:\t2000\t2001\t2002\t2003\nFDSize:\t64\nGroups:\t4 24 27 \n";

    #[test]
    fn status_gives_fs_ids_and_groups() {
        assert_eq!(
            parse_status(STATUS),
            Some(Creds {
                uid: 1003,
                gid: 2003,
                groups: vec![4, 24, 27]
            })
        );
        let none = STATUS.replace("Groups:\t4 24 27 \n", "Groups:\t\n");
        assert_eq!(parse_status(&none).unwrap().groups, Vec::<u32>::new());
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn permission_bits_follow_the_kernel_rule() {
        let node = |mode| NodeAttrs {
            mode,
            uid: 0,
            gid: 50,
        };
        let user = |uid, gid, groups: &[u32]| Creds {
            uid,
            gid,
            groups: groups.to_vec(),
        };
        let rw = wanted(libc::O_RDWR as u32);
        assert_eq!(rw, 0o6);
        assert_eq!(wanted(libc::O_RDONLY as u32), 0o4);
        assert_eq!(wanted(libc::O_WRONLY as u32 | libc::O_NONBLOCK as u32), 0o2);
        // 0600 root's: nobody else.
        assert!(!permits(&node(0o600), &user(1000, 1000, &[]), rw));
        assert!(permits(&node(0o000), &user(0, 0, &[]), rw));
        // 0660 group 50: by primary or supplementary group only.
        assert!(!permits(&node(0o660), &user(1000, 1000, &[]), rw));
        assert!(permits(&node(0o660), &user(1000, 50, &[]), rw));
        assert!(permits(&node(0o660), &user(1000, 1000, &[7, 50]), rw));
        // Read-only group access does not allow O_RDWR.
        assert!(!permits(&node(0o640), &user(1000, 50, &[]), rw));
        assert!(permits(&node(0o640), &user(1000, 50, &[]), 0o4));
        // The owner class wins even when it grants less than others.
        let owned = NodeAttrs {
            mode: 0o066,
            uid: 1000,
            gid: 50,
        };
        assert!(!permits(&owned, &user(1000, 50, &[]), rw));
        assert!(permits(&node(0o666), &user(1000, 1000, &[]), rw));
    }

    #[test]
    fn names_and_numbers_resolve() {
        assert_eq!(resolve_user("0"), Ok(0));
        assert_eq!(resolve_user("root"), Ok(0));
        assert_eq!(resolve_group("root"), Ok(0));
        assert_eq!(resolve_group("4242"), Ok(4242));
        assert!(resolve_user("no-such-user-kevent").is_err());
    }
}
