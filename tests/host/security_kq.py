"""A minimal /dev/kevent client for tests/host/security.sh: python3 with
fcntl.ioctl and struct only, so it runs as any user.

    import security_kq as kq
    fd = kq.open_dev(path)              # OSError on refusal
    rc, back = kq.add(fd, [kq.uk(kq.TIMER, id0=100)])
    evs = kq.wait(fd, num=1, timeout_ms=2000)
"""
import errno
import fcntl
import os
import struct

SOCKET, INODE, TIMER, POLL = 0, 1, 2, 3
CTL_ADD, CTL_REMOVE, CTL_MODIFY, CTL_WAIT = 0, 1, 2, 3
KEVENT_USER_CTL = 0xC00C4B00
KEVENT_USER_WAIT = 0xC00C4B01
RET_BROKEN, RET_DONE = 1, 2
UK = struct.Struct("=10I")  # id[2] type event req_flags ret_flags ret_data[2] user[2]


def uk(ty, event=1, id0=0, id1=0, req=0, user=(0, 0)):
    return (id0, id1, ty, event, req, 0, 0, 0, user[0], user[1])


def open_dev(path, flags=os.O_RDWR):
    return os.open(path, flags | os.O_CLOEXEC)


def _call(fd, req, cmd, num, timeout, evs):
    buf = bytearray(struct.pack("=3I", cmd, num, timeout))
    for e in evs:
        buf += UK.pack(*e)
    try:
        rc = fcntl.ioctl(fd, req, buf, True)
    except OSError as e:
        rc = -e.errno
    hdr = struct.unpack_from("=3I", buf, 0)
    back = [UK.unpack_from(buf, 12 + i * UK.size) for i in range(len(evs))]
    return rc, hdr, back


def add(fd, evs):
    """(rc, written-back ukevents): rc is the ioctl's value or -errno."""
    rc, hdr, back = _call(fd, KEVENT_USER_CTL, CTL_ADD, len(evs), 0, evs)
    n = hdr[1] if rc >= 0 or hdr[1] <= len(evs) else 0
    return rc, back[:n]


def wait(fd, num, timeout_ms):
    rc, hdr, back = _call(fd, KEVENT_USER_WAIT, CTL_WAIT, num, timeout_ms, [uk(0)] * num)
    return back[: max(rc, 0)] if rc >= 0 else rc


def name(rc):
    """'ok N' for rc >= 0, else the errno name."""
    return "ok %d" % rc if rc >= 0 else errno.errorcode.get(-rc, str(-rc))
