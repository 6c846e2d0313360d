//! The accept queue length of a listening socket (ACCEPT `ret_data[1]`,
//! docs/ABI.md §4), found by the socket's inode number in the caller's
//! `/proc/PID/net` files, so the daemon needs no descriptor of the socket.
//!
//! * TCP (`net/tcp`, `net/tcp6`): for a socket in LISTEN (state `0A`) the
//!   `rx_queue` column is `sk_ack_backlog`, the number of connections ready
//!   for accept(). The kernel lists listening sockets first.
//! * UNIX stream (`net/unix`): a pending connection is an embryo socket with
//!   no inode (inode column 0) that shares the listener's address, so the
//!   queue length is the number of inode-0 lines with the listener's path.
//!   An accepted connection gets an inode and is no longer counted.

/// Which table a socket was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `net/tcp`.
    Tcp,
    /// `net/tcp6`.
    Tcp6,
    /// `net/unix`.
    Unix,
}

impl Table {
    /// The file under `/proc/PID/`.
    pub fn path(self) -> &'static str {
        match self {
            Table::Tcp => "net/tcp",
            Table::Tcp6 => "net/tcp6",
            Table::Unix => "net/unix",
        }
    }

    /// All tables, in lookup order.
    pub const ALL: [Table; 3] = [Table::Tcp, Table::Tcp6, Table::Unix];

    /// The accept queue length of the listener with inode `ino` in this
    /// table's text, `None` if it is not a listener there.
    pub fn backlog(self, text: &str, ino: u64) -> Option<u32> {
        match self {
            Table::Tcp | Table::Tcp6 => tcp_backlog(text, ino),
            Table::Unix => unix_backlog(text, ino),
        }
    }
}

/// `net/tcp` or `net/tcp6`: `sl local rem st tx:rx tr:when retrnsmt uid
/// timeout inode ...`.
pub fn tcp_backlog(text: &str, ino: u64) -> Option<u32> {
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().take(10).collect();
        if f.len() < 10 {
            continue;
        }
        if f[3] != "0A" {
            // Past the listening sockets.
            return None;
        }
        if f[9].parse::<u64>().ok() == Some(ino) {
            let rx = f[4].split_once(':')?.1;
            return u32::from_str_radix(rx, 16).ok();
        }
    }
    None
}

/// Splits a `net/unix` line into its inode and path (`None`: no path).
fn unix_fields(line: &str) -> Option<(u64, Option<&str>)> {
    // "Num RefCount Protocol Flags Type St Inode Path": seven blank-separated
    // fields, then the path, which may itself contain blanks.
    let mut rest = line.trim_start();
    let mut inode = None;
    for i in 0..7 {
        let end = rest.find(' ').unwrap_or(rest.len());
        if i == 6 {
            inode = rest[..end].parse::<u64>().ok();
        }
        rest = rest[end..].trim_start_matches(' ');
    }
    let path = (!rest.is_empty()).then_some(rest);
    Some((inode?, path))
}

/// `net/unix`: the listener's path, then its embryos (inode 0, same path).
pub fn unix_backlog(text: &str, ino: u64) -> Option<u32> {
    let mut path = None;
    let mut embryos: Vec<&str> = Vec::new();
    for line in text.lines().skip(1) {
        let Some((i, p)) = unix_fields(line) else {
            continue;
        };
        match (i, p) {
            (0, Some(p)) => embryos.push(p),
            (i, Some(p)) if i == ino => path = Some(p),
            _ => {}
        }
    }
    let path = path?;
    Some(embryos.iter().filter(|p| **p == path).count() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    // As printed by Linux 6.18 (python: 4 connections to 127.0.0.1:45559).
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1591 1 0000000008769f7c 100 0 0 10 0
   1: 0100007F:B1F7 00000000:0000 0A 00000000:00000004 00:00000000 00000000     0        0 32978 5 00000000686c6f02 100 0 0 10 0
   2: 0100007F:8F7A 0100007F:B1F7 01 00000000:00000000 00:00000000 00000000     0        0 32979 2 00000000fe567926 20 0 0 10 -1
   6: 0100007F:B1F7 0100007F:8F7A 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000083a64883 20 0 0 10 -1
";

    // A listener (inode 32972) with three pending connections, and one
    // accepted connection on another path.
    const UNIX: &str = "Num       RefCount Protocol Flags    Type St Inode Path
000000000b750cfc: 00000003 00000000 00000000 0001 02     0 /tmp/sock test.sock
000000008f0d5d22: 00000002 00000000 00010000 0001 01 32972 /tmp/sock test.sock
000000000f0e2283: 00000003 00000000 00000000 0001 02     0 /tmp/sock test.sock
0000000030167cfe: 00000003 00000000 00000000 0001 02     0 /tmp/sock test.sock
0000000030167cff: 00000003 00000000 00000000 0001 03     0 /tmp/other
0000000030167d00: 00000002 00000000 00010000 0001 01 40000 /tmp/other
0000000030167d01: 00000003 00000000 00000000 0001 03 40001
0000000030167d02: 00000002 00000000 00010000 0001 01 40002 @abstract
";

    #[test]
    fn tcp_listener_reports_its_accept_queue() {
        assert_eq!(tcp_backlog(TCP, 32978), Some(4));
        assert_eq!(tcp_backlog(TCP, 1591), Some(0));
    }

    #[test]
    fn tcp_connected_or_unknown_socket_is_not_a_listener() {
        assert_eq!(tcp_backlog(TCP, 32979), None);
        assert_eq!(tcp_backlog(TCP, 7), None);
    }

    #[test]
    fn unix_listener_counts_its_embryos_by_path() {
        assert_eq!(unix_backlog(UNIX, 32972), Some(3));
        assert_eq!(unix_backlog(UNIX, 40000), Some(1));
        assert_eq!(unix_backlog(UNIX, 40002), Some(0));
    }

    #[test]
    fn unix_socket_without_path_or_unknown_has_no_backlog() {
        assert_eq!(unix_backlog(UNIX, 40001), None);
        assert_eq!(unix_backlog(UNIX, 5), None);
    }

    #[test]
    fn tables_dispatch_to_their_format() {
        assert_eq!(Table::Tcp.backlog(TCP, 32978), Some(4));
        assert_eq!(Table::Unix.backlog(UNIX, 32972), Some(3));
        assert_eq!(Table::Unix.path(), "net/unix");
    }
}
