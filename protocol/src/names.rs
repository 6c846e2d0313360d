//! Names for logs and tools: event types, event bits per type, request and
//! return flags, and errno values. One table each, shared by the daemon's
//! debug log, `kevent-cuse --status` and the client tools.

use crate::kevent::*;

/// The errno names of Linux (asm-generic numbering, x86 and arm alike).
const ERRNO_NAMES: &[(i32, &str)] = &[
    (1, "EPERM"),
    (2, "ENOENT"),
    (3, "ESRCH"),
    (4, "EINTR"),
    (5, "EIO"),
    (6, "ENXIO"),
    (7, "E2BIG"),
    (8, "ENOEXEC"),
    (9, "EBADF"),
    (10, "ECHILD"),
    (11, "EAGAIN"),
    (12, "ENOMEM"),
    (13, "EACCES"),
    (14, "EFAULT"),
    (15, "ENOTBLK"),
    (16, "EBUSY"),
    (17, "EEXIST"),
    (18, "EXDEV"),
    (19, "ENODEV"),
    (20, "ENOTDIR"),
    (21, "EISDIR"),
    (22, "EINVAL"),
    (23, "ENFILE"),
    (24, "EMFILE"),
    (25, "ENOTTY"),
    (26, "ETXTBSY"),
    (27, "EFBIG"),
    (28, "ENOSPC"),
    (29, "ESPIPE"),
    (30, "EROFS"),
    (31, "EMLINK"),
    (32, "EPIPE"),
    (33, "EDOM"),
    (34, "ERANGE"),
    (35, "EDEADLK"),
    (36, "ENAMETOOLONG"),
    (37, "ENOLCK"),
    (38, "ENOSYS"),
    (39, "ENOTEMPTY"),
    (40, "ELOOP"),
    (42, "ENOMSG"),
    (43, "EIDRM"),
    (44, "ECHRNG"),
    (45, "EL2NSYNC"),
    (46, "EL3HLT"),
    (47, "EL3RST"),
    (48, "ELNRNG"),
    (49, "EUNATCH"),
    (50, "ENOCSI"),
    (51, "EL2HLT"),
    (52, "EBADE"),
    (53, "EBADR"),
    (54, "EXFULL"),
    (55, "ENOANO"),
    (56, "EBADRQC"),
    (57, "EBADSLT"),
    (59, "EBFONT"),
    (60, "ENOSTR"),
    (61, "ENODATA"),
    (62, "ETIME"),
    (63, "ENOSR"),
    (64, "ENONET"),
    (65, "ENOPKG"),
    (66, "EREMOTE"),
    (67, "ENOLINK"),
    (68, "EADV"),
    (69, "ESRMNT"),
    (70, "ECOMM"),
    (71, "EPROTO"),
    (72, "EMULTIHOP"),
    (73, "EDOTDOT"),
    (74, "EBADMSG"),
    (75, "EOVERFLOW"),
    (76, "ENOTUNIQ"),
    (77, "EBADFD"),
    (78, "EREMCHG"),
    (79, "ELIBACC"),
    (80, "ELIBBAD"),
    (81, "ELIBSCN"),
    (82, "ELIBMAX"),
    (83, "ELIBEXEC"),
    (84, "EILSEQ"),
    (85, "ERESTART"),
    (86, "ESTRPIPE"),
    (87, "EUSERS"),
    (88, "ENOTSOCK"),
    (89, "EDESTADDRREQ"),
    (90, "EMSGSIZE"),
    (91, "EPROTOTYPE"),
    (92, "ENOPROTOOPT"),
    (93, "EPROTONOSUPPORT"),
    (94, "ESOCKTNOSUPPORT"),
    (95, "EOPNOTSUPP"),
    (96, "EPFNOSUPPORT"),
    (97, "EAFNOSUPPORT"),
    (98, "EADDRINUSE"),
    (99, "EADDRNOTAVAIL"),
    (100, "ENETDOWN"),
    (101, "ENETUNREACH"),
    (102, "ENETRESET"),
    (103, "ECONNABORTED"),
    (104, "ECONNRESET"),
    (105, "ENOBUFS"),
    (106, "EISCONN"),
    (107, "ENOTCONN"),
    (108, "ESHUTDOWN"),
    (109, "ETOOMANYREFS"),
    (110, "ETIMEDOUT"),
    (111, "ECONNREFUSED"),
    (112, "EHOSTDOWN"),
    (113, "EHOSTUNREACH"),
    (114, "EALREADY"),
    (115, "EINPROGRESS"),
    (116, "ESTALE"),
    (117, "EUCLEAN"),
    (118, "ENOTNAM"),
    (119, "ENAVAIL"),
    (120, "EISNAM"),
    (121, "EREMOTEIO"),
    (122, "EDQUOT"),
    (123, "ENOMEDIUM"),
    (124, "EMEDIUMTYPE"),
    (125, "ECANCELED"),
    (126, "ENOKEY"),
    (127, "EKEYEXPIRED"),
    (128, "EKEYREVOKED"),
    (129, "EKEYREJECTED"),
    (130, "EOWNERDEAD"),
    (131, "ENOTRECOVERABLE"),
    (132, "ERFKILL"),
    (133, "EHWPOISON"),
];

/// `EPERM` for 1, ..., `None` for a number Linux does not define.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    ERRNO_NAMES
        .binary_search_by_key(&errno, |&(n, _)| n)
        .ok()
        .map(|i| ERRNO_NAMES[i].1)
}

/// The number of an errno name (`"EAGAIN"` -> 11; `EWOULDBLOCK` and
/// `EDEADLOCK` are accepted as aliases).
pub fn errno_from_name(name: &str) -> Option<i32> {
    match name {
        "EWOULDBLOCK" => return Some(11),
        "EDEADLOCK" => return Some(35),
        _ => {}
    }
    ERRNO_NAMES
        .iter()
        .find(|&&(_, n)| n == name)
        .map(|&(v, _)| v)
}

/// `EPERM`, or the number when it has no name (`errno 4242`).
pub fn errno_display(errno: i32) -> String {
    match errno_name(errno) {
        Some(n) => n.to_string(),
        None => format!("errno {errno}"),
    }
}

/// Lower-case type names, indexed by `KEVENT_*` type number.
pub const TYPE_NAMES: [&str; KEVENT_MAX as usize] =
    ["socket", "inode", "timer", "poll", "naio", "aio"];

/// `timer` for [`KEVENT_TIMER`], ..., `None` past [`KEVENT_MAX`].
pub fn type_name(ty: u32) -> Option<&'static str> {
    TYPE_NAMES.get(ty as usize).copied()
}

/// The number of a type name (`"timer"` -> 2).
pub fn type_from_name(name: &str) -> Option<u32> {
    TYPE_NAMES.iter().position(|&n| n == name).map(|i| i as u32)
}

/// The named event bits of a type, lower-case, in bit order.
pub fn event_bits(ty: u32) -> &'static [(u32, &'static str)] {
    match ty {
        KEVENT_SOCKET => &[
            (KEVENT_SOCKET_RECV, "recv"),
            (KEVENT_SOCKET_ACCEPT, "accept"),
            (KEVENT_SOCKET_SEND, "send"),
        ],
        KEVENT_INODE => &[
            (KEVENT_INODE_CREATE, "create"),
            (KEVENT_INODE_REMOVE, "remove"),
        ],
        KEVENT_TIMER => &[(KEVENT_TIMER_FIRED, "fired")],
        KEVENT_POLL => &[
            (KEVENT_POLL_POLLIN, "pollin"),
            (KEVENT_POLL_POLLPRI, "pollpri"),
            (KEVENT_POLL_POLLOUT, "pollout"),
            (KEVENT_POLL_POLLERR, "pollerr"),
            (KEVENT_POLL_POLLHUP, "pollhup"),
            (KEVENT_POLL_POLLNVAL, "pollnval"),
            (KEVENT_POLL_POLLRDNORM, "pollrdnorm"),
            (KEVENT_POLL_POLLRDBAND, "pollrdband"),
            (KEVENT_POLL_POLLWRNORM, "pollwrnorm"),
            (KEVENT_POLL_POLLWRBAND, "pollwrband"),
            (KEVENT_POLL_POLLMSG, "pollmsg"),
            (KEVENT_POLL_POLLREMOVE, "pollremove"),
        ],
        KEVENT_NAIO | KEVENT_AIO => &[(KEVENT_AIO_BIO, "bio")],
        _ => &[],
    }
}

/// `req_flags` bits.
pub const REQ_FLAG_NAMES: &[(u32, &str)] = &[(KEVENT_REQ_ONESHOT, "oneshot")];

/// `ret_flags` bits.
pub const RET_FLAG_NAMES: &[(u32, &str)] =
    &[(KEVENT_RET_BROKEN, "broken"), (KEVENT_RET_DONE, "done")];

/// `a|b|0x40`: the named bits of `bits` joined by `|`, unnamed ones as one
/// hex number, `0` when none is set.
pub fn bits_display(bits: u32, names: &[(u32, &str)]) -> String {
    let mut parts = Vec::new();
    let mut rest = bits;
    for &(b, n) in names {
        if bits & b != 0 {
            parts.push(n.to_string());
            rest &= !b;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join("|")
    }
}

/// One line for a ukevent: `timer id=100,0 event=fired req=oneshot
/// ret=done data=1,1 user=7,0`.
pub fn ukevent_display(uk: &Ukevent) -> String {
    let ty = match type_name(uk.type_) {
        Some(n) => n.to_string(),
        None => format!("type{}", uk.type_),
    };
    format!(
        "{ty} id={},{} event={} req={} ret={} data={},{} user={},{}",
        uk.id[0],
        uk.id[1],
        bits_display(uk.event, event_bits(uk.type_)),
        bits_display(uk.req_flags, REQ_FLAG_NAMES),
        bits_display(uk.ret_flags, RET_FLAG_NAMES),
        uk.ret_data[0],
        uk.ret_data[1],
        uk.user[0],
        uk.user[1]
    )
}

/// `add`, `remove`, `modify`, `wait`, `init` for a `KEVENT_CTL_*` command.
pub fn ctl_name(cmd: u32) -> Option<&'static str> {
    match cmd {
        KEVENT_CTL_ADD => Some("add"),
        KEVENT_CTL_REMOVE => Some("remove"),
        KEVENT_CTL_MODIFY => Some("modify"),
        KEVENT_CTL_WAIT => Some("wait"),
        KEVENT_CTL_INIT => Some("init"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_table_is_sorted_and_matches_the_kernel_numbers() {
        assert!(ERRNO_NAMES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(errno_name(1), Some("EPERM"));
        assert_eq!(errno_name(9), Some("EBADF"));
        assert_eq!(errno_name(22), Some("EINVAL"));
        assert_eq!(errno_name(23), Some("ENFILE"));
        assert_eq!(errno_name(24), Some("EMFILE"));
        assert_eq!(errno_name(95), Some("EOPNOTSUPP"));
        assert_eq!(errno_name(41), None);
        assert_eq!(errno_name(0), None);
        assert_eq!(errno_name(-1), None);
        assert_eq!(errno_from_name("ENODEV"), Some(19));
        assert_eq!(errno_from_name("EWOULDBLOCK"), Some(11));
        assert_eq!(errno_from_name("ENOPE"), None);
        assert_eq!(errno_display(4242), "errno 4242");
    }

    #[test]
    fn ukevents_are_named() {
        let uk = Ukevent {
            id: [100, 0],
            type_: KEVENT_SOCKET,
            event: KEVENT_SOCKET_RECV | KEVENT_SOCKET_SEND | 0x100,
            req_flags: KEVENT_REQ_ONESHOT,
            ret_flags: KEVENT_RET_BROKEN | KEVENT_RET_DONE,
            ret_data: [1, 2],
            user: [3, 4],
        };
        assert_eq!(
            ukevent_display(&uk),
            "socket id=100,0 event=recv|send|0x100 req=oneshot ret=broken|done data=1,2 user=3,4"
        );
        let odd = Ukevent {
            type_: 9,
            event: 5,
            ..Default::default()
        };
        assert_eq!(
            ukevent_display(&odd),
            "type9 id=0,0 event=0x5 req=0 ret=0 data=0,0 user=0,0"
        );
        assert_eq!(type_from_name("poll"), Some(KEVENT_POLL));
        assert_eq!(ctl_name(KEVENT_CTL_WAIT), Some("wait"));
    }
}
