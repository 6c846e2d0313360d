#!/usr/bin/env python3
"""kq.py - a /dev/kevent client in plain python3: fcntl.ioctl + struct only.

Used as a library (Queue) and as a test:
    python3 tests/host/lib/kq.py selftest DEVICE
prints "ok - NAME" / "not ok - NAME: why" per check and a last line
"# kq: N passed, M failed" (exit 1 if any failed). It drives TIMER, SOCKET
(socketpair), POLL (pipe) and INODE (directory) kevents, and the ABI's error
answers, exactly as docs/ABI.md describes them.
"""

import errno
import fcntl
import os
import socket
import struct
import sys
import tempfile
import time

# docs/ABI.md section 1.
KEVENT_USER_CTL = 0xC00C4B00
KEVENT_USER_WAIT = 0xC00C4B01
CTL_ADD, CTL_REMOVE, CTL_MODIFY, CTL_WAIT, CTL_INIT = range(5)
SOCKET, INODE, TIMER, POLL, NAIO, AIO = range(6)
ONESHOT = 0x1
BROKEN, DONE = 0x1, 0x2
TIMER_FIRED = 0x1
SOCKET_RECV, SOCKET_ACCEPT, SOCKET_SEND = 0x1, 0x2, 0x4
INODE_CREATE, INODE_REMOVE = 0x1, 0x2
POLLIN, POLLOUT = 0x1, 0x4

HDR = struct.Struct("=III")          # cmd, num, timeout: 12 bytes
UK = struct.Struct("=IIIIIIIIII")    # id[2] type event req ret data[2] user[2]: 40


class Uk:
    """One struct ukevent."""
    __slots__ = ("id", "type", "event", "req_flags", "ret_flags", "ret_data", "user")

    def __init__(self, type_, id0, id1=0, event=0xFFFFFFFF, req_flags=0, user=(0, 0),
                 ret_flags=0, ret_data=(0, 0)):
        self.id = (id0, id1)
        self.type = type_
        self.event = event
        self.req_flags = req_flags
        self.ret_flags = ret_flags
        self.ret_data = tuple(ret_data)
        self.user = tuple(user)

    def pack(self):
        return UK.pack(self.id[0], self.id[1], self.type, self.event, self.req_flags,
                       self.ret_flags, self.ret_data[0], self.ret_data[1],
                       self.user[0], self.user[1])

    @classmethod
    def unpack(cls, b):
        v = UK.unpack(b)
        return cls(v[2], v[0], v[1], v[3], v[4], (v[8], v[9]), v[5], (v[6], v[7]))

    def __repr__(self):
        return ("Uk(id=%d,%d type=%d event=%#x req=%#x ret=%#x data=%d,%d user=%d,%d)"
                % (self.id + (self.type, self.event, self.req_flags, self.ret_flags)
                   + self.ret_data + self.user))


class Queue:
    """One open of the device: one queue."""

    def __init__(self, path, nonblock=False):
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | (os.O_NONBLOCK if nonblock else 0))

    def close(self):
        os.close(self.fd)

    def call(self, request, cmd, uks, num=None, timeout=0):
        """One ioctl; returns (ret, hdr_num, [Uk] of the array). Raises OSError."""
        n = len(uks) if num is None else num
        buf = bytearray(HDR.pack(cmd, n, timeout) + b"".join(u.pack() for u in uks))
        buf.extend(bytes(HDR.size + n * UK.size - len(buf)))
        ret = fcntl.ioctl(self.fd, request, buf, True)
        return ret, HDR.unpack_from(buf)[1], buf

    def add(self, uks):
        """ADD. Returns (ret, written-back list); ret -1 with its errno when the
        last ukevent failed (the written-back ukevents are still returned)."""
        buf = bytearray(HDR.pack(CTL_ADD, len(uks), 0) + b"".join(u.pack() for u in uks))
        try:
            ret, err = fcntl.ioctl(self.fd, KEVENT_USER_CTL, buf, True), 0
        except OSError as e:
            ret, err = -1, e.errno
        num = HDR.unpack_from(buf)[1]
        back = [Uk.unpack(buf[12 + i * 40:52 + i * 40]) for i in range(min(num, len(uks)))]
        if ret == -1 and not (back and (back[-1].ret_flags & (BROKEN | DONE) or err == errno.E2BIG)):
            raise OSError(err, os.strerror(err))
        return (ret if ret >= 0 else -err), back

    def remove(self, uks):
        _, _, buf = self.call(KEVENT_USER_CTL, CTL_REMOVE, uks)
        return [Uk.unpack(buf[12 + i * 40:52 + i * 40]) for i in range(len(uks))]

    def modify(self, uks):
        _, _, buf = self.call(KEVENT_USER_CTL, CTL_MODIFY, uks)
        return [Uk.unpack(buf[12 + i * 40:52 + i * 40]) for i in range(len(uks))]

    def wait(self, num, timeout_ms, request=KEVENT_USER_WAIT):
        ret, _, buf = self.call(request, CTL_WAIT, [], num=num, timeout=timeout_ms)
        return [Uk.unpack(buf[12 + i * 40:52 + i * 40]) for i in range(ret)]


# ---------------------------------------------------------------- selftest

PASSED = 0
FAILED = 0


def check(name, cond, why=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print("ok - " + name)
    else:
        FAILED += 1
        print("not ok - %s: %s" % (name, why))
    sys.stdout.flush()


def wait_for(q, pred, limit_s=10.0):
    """WAITs (bounded) until an event matching pred arrives; returns it or None."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        for e in q.wait(8, 500):
            if pred(e):
                return e
    return None


def selftest(dev):
    q = Queue(dev)

    # TIMER: queued (0), delivered with DONE, ret_data[1] >= 1, oneshot gone.
    ret, back = q.add([Uk(TIMER, 50, event=TIMER_FIRED, req_flags=ONESHOT, user=(1, 2))])
    check("timer ADD queued: ret 0, nothing written back", ret == 0 and back == [], (ret, back))
    e = wait_for(q, lambda e: e.user == (1, 2))
    check("timer delivered: type, id, DONE, user", e is not None and e.type == TIMER
          and e.id == (50, 0) and e.ret_flags == DONE and e.req_flags == ONESHOT, e)
    check("timer ret_data[1] counts expirations", e is not None and e.ret_data[1] >= 1, e)
    gone = q.remove([Uk(TIMER, 50, user=(1, 2))])[0]
    check("oneshot timer unregistered after delivery (REMOVE: BROKEN|DONE)",
          gone.ret_flags == BROKEN | DONE, gone)
    ret, back = q.add([Uk(TIMER, 0, event=TIMER_FIRED)])
    check("timer period 0: ret -EINVAL, written back BROKEN|DONE",
          ret == -errno.EINVAL and len(back) == 1 and back[0].ret_flags == BROKEN | DONE,
          (ret, back))

    # POLL on a pipe: queued while empty, fires on write with ret_data[0] = POLLIN.
    r, w = os.pipe()
    ret, back = q.add([Uk(POLL, r, event=POLLIN, user=(3, 0))])
    check("POLL on an empty pipe: queued", ret == 0 and back == [], (ret, back))
    os.write(w, b"x")
    e = wait_for(q, lambda e: e.user == (3, 0))
    check("POLL fires on write: DONE, ret_data[0] = POLLIN",
          e is not None and e.ret_flags == DONE and e.ret_data[0] == POLLIN, e)
    ret, back = q.add([Uk(POLL, r, event=POLLIN, user=(4, 0))])
    check("POLL on a readable pipe: ready at once (ret 1, DONE)",
          ret == 1 and len(back) == 1 and back[0].ret_flags == DONE, (ret, back))
    q.remove([Uk(POLL, r, user=(3, 0))])
    os.close(r)
    os.close(w)

    # SOCKET on a socketpair: RECV fires when the peer writes.
    a, b = socket.socketpair()
    ret, back = q.add([Uk(SOCKET, a.fileno(), event=SOCKET_RECV, user=(5, 0))])
    check("SOCKET RECV with nothing to read: queued", ret == 0 and back == [], (ret, back))
    b.send(b"ping")
    e = wait_for(q, lambda e: e.user == (5, 0))
    check("SOCKET RECV fires on data", e is not None and e.type == SOCKET and e.ret_flags == DONE, e)
    ret, back = q.add([Uk(SOCKET, 99999, event=SOCKET_RECV)])
    check("SOCKET on a descriptor that does not exist: -ENODEV, BROKEN|DONE",
          ret == -errno.ENODEV and back and back[0].ret_flags == BROKEN | DONE, (ret, back))
    f = tempfile.TemporaryFile()
    ret, back = q.add([Uk(SOCKET, f.fileno(), event=SOCKET_RECV)])
    check("SOCKET on a regular file: -EINVAL", ret == -errno.EINVAL, (ret, back))
    f.close()
    q.remove([Uk(SOCKET, a.fileno(), user=(5, 0))])
    a.close()
    b.close()

    # INODE on a directory: CREATE and REMOVE.
    d = tempfile.mkdtemp(prefix="kq-inode.")
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    ret, back = q.add([Uk(INODE, dfd, event=INODE_CREATE, user=(6, 0)),
                       Uk(INODE, dfd, event=INODE_REMOVE, user=(7, 0))])
    check("INODE CREATE and REMOVE on a directory: queued in one ADD",
          ret == 0 and back == [], (ret, back))
    open(os.path.join(d, "new"), "w").close()
    e = wait_for(q, lambda e: e.user == (6, 0))
    check("INODE CREATE fires on a new entry", e is not None and e.type == INODE
          and e.ret_flags == DONE, e)
    os.unlink(os.path.join(d, "new"))
    e = wait_for(q, lambda e: e.user == (7, 0))
    check("INODE REMOVE fires on unlink", e is not None and e.ret_flags == DONE, e)
    q.remove([Uk(INODE, dfd, user=(6, 0)), Uk(INODE, dfd, user=(7, 0))])
    os.close(dfd)
    os.rmdir(d)

    # Errors of the ioctls themselves (docs/ABI.md section 2).
    try:
        q.call(KEVENT_USER_CTL, CTL_INIT, [])
        check("cmd INIT through the ioctl: EINVAL", False, "succeeded")
    except OSError as ex:
        check("cmd INIT through the ioctl: EINVAL", ex.errno == errno.EINVAL, ex)
    try:
        fcntl.ioctl(q.fd, 0x4B02, bytearray(12), True)
        check("an unknown ioctl number: ENODEV", False, "succeeded")
    except OSError as ex:
        check("an unknown ioctl number: ENODEV", ex.errno == errno.ENODEV, ex)
    ret, back = q.add([Uk(9, 1, event=1)])
    check("unknown type: -E2BIG, written back unchanged",
          ret == -errno.E2BIG and len(back) == 1 and back[0].ret_flags == 0, (ret, back))

    # WAIT through KEVENT_USER_CTL with cmd WAIT, and an empty WAIT.
    q.add([Uk(TIMER, 20, event=TIMER_FIRED, req_flags=ONESHOT, user=(8, 0))])
    e = wait_for(q, lambda e: e.user == (8, 0))
    check("WAIT through KEVENT_USER_WAIT", e is not None, e)
    q.add([Uk(TIMER, 20, event=TIMER_FIRED, req_flags=ONESHOT, user=(9, 0))])
    deadline = time.monotonic() + 10
    got = None
    while got is None and time.monotonic() < deadline:
        for e in q.wait(4, 500, request=KEVENT_USER_CTL):
            if e.user == (9, 0):
                got = e
    check("WAIT through KEVENT_USER_CTL cmd WAIT", got is not None, got)
    t0 = time.monotonic()
    evs = Queue(dev, nonblock=True).wait(4, 30000)
    check("O_NONBLOCK queue: WAIT returns 0 at once",
          evs == [] and time.monotonic() - t0 < 10, evs)
    q.close()

    print("# kq: %d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "selftest":
        sys.exit(selftest(sys.argv[2]))
    sys.stderr.write("usage: kq.py selftest DEVICE\n")
    sys.exit(2)
