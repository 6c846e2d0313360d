#!/bin/bash
# Security and the admin's view (issue 8 items 3, 5, 8, 9; issue 10 item 5),
# on the FUSE-file transport, with clients running as other users (setpriv
# to uids 65534 and 65533: no account is needed):
#   * logging: a closed stderr (`2>&1 | head -1`) never stops the daemon, no
#     ANSI codes off a terminal, RUST_LOG=debug names ukevents and errnos,
#     SIGHUP is logged and ignored;
#   * access: --mode, --owner, --group honoured (EACCES otherwise, group
#     access by primary and supplementary group), chmod/chgrp refused;
#   * per-user limits: one user driven to its kevent, descriptor and queue
#     limits gets EMFILE (one warning each) while a second user's TIMER,
#     POLL, SOCKET and INODE ADDs all succeed, and its usage is refunded
#     when its process exits;
#   * POLL and SOCKET on an O_PATH descriptor give EINVAL;
#   * `kevent-cuse --status` for a known set of queues (exact counts).
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/host/lib.sh
dir=$(mktemp -d /tmp/kevent-sec.XXXXXX)
chmod 755 "$dir"
DAEMON_LOG=$dir/daemon.log
dev=$dir/kevent
trap 'stop_daemon; umount -l "$dev" 2>/dev/null; [ "$T_FAIL" -eq 0 ] && rm -rf "$dir"' EXIT
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
cp tests/host/security_kq.py "$dir/"
chmod 644 "$dir/security_kq.py"
UA=65534 # the user driven to its limits
UB=65533 # the other user

# as UID GID GROUPS CODE [ARGS]: runs python CODE as that user (GROUPS: a
# comma list or "-" for none); sys.argv[1] is the device.
as() {
    uid=$1 gid=$2 groups=$3 code=$4
    shift 4
    if [ "$groups" = - ]; then g=--clear-groups; else g=--groups=$groups; fi
    setpriv --reuid="$uid" --regid="$gid" $g env PYTHONPATH="$dir" "$PY" -c "$code" "$dev" "$@"
}
OPEN='
import os, sys, security_kq as kq
flags = {"rw": os.O_RDWR, "r": os.O_RDONLY, "w": os.O_WRONLY}[sys.argv[2]]
try:
    fd = kq.open_dev(sys.argv[1], flags)
    rc, _ = kq.add(fd, [kq.uk(kq.TIMER, id0=100)]) if flags == os.O_RDWR else (0, [])
    print("ok" if rc == 0 else kq.name(rc))
except OSError as e:
    import errno
    print(errno.errorcode[e.errno])
'
open_as() { as "$1" "$2" "$3" "$OPEN" "$4"; }

# --- logging ------------------------------------------------------------------
: >"$DAEMON_LOG"
{
    RUST_LOG=debug "$KEVENT_BIN" --transport fuse --path "$dev" 2>&1
    echo "rc=$?" >"$dir/headrc"
} | head -1 >/dev/null &
if wait_until 10 is_mounted "$dev" && wait_until 10 stat "$dev" >/dev/null 2>&1; then
    pid=$(pgrep -f -- "--path $dev\$" | head -1)
    out=$(as 0 0 - '
import sys, security_kq as kq
fd = kq.open_dev(sys.argv[1])
for i in range(3):
    rc, _ = kq.add(fd, [kq.uk(kq.TIMER, id0=5, user=(i, 0))])
    evs = kq.wait(fd, 1, 5000)
    print(rc, len(evs), evs[0][2] if evs else -1)
')
    expect_eq "a daemon whose stderr reader is gone keeps serving (2>&1 | head -1)" "0 1 2
0 1 2
0 1 2" "$out"
    check "it is still running" kill -0 "$pid"
    kill -TERM "$pid"
    wait_until 10 test -s "$dir/headrc"
    expect_eq "and exits 0 on SIGTERM" "rc=0" "$(cat "$dir/headrc" 2>/dev/null)"
    check "leaving no mount behind" wait_until 10 sh -c "! grep -q ' $dev ' /proc/self/mounts"
else
    not_ok "a daemon under 2>&1 | head -1 starts"
fi

export RUST_LOG=debug
start_daemon "$dev"
as 0 0 - '
import os, sys, security_kq as kq
fd = kq.open_dev(sys.argv[1])
kq.add(fd, [kq.uk(kq.TIMER, event=1, id0=20, req=1, user=(7, 0))])
kq.add(fd, [kq.uk(kq.POLL, event=1, id0=999)])
kq.wait(fd, 1, 5000)
' >/dev/null
kill -HUP "$DAEMON_PID"
check "SIGHUP does not stop the daemon" sh -c "sleep 0.3; kill -0 $DAEMON_PID"
check "SIGHUP is logged as ignored" wait_until 5 grep -q "SIGHUP received and ignored" "$DAEMON_LOG"
check "no ANSI escape in a log file" sh -c "! grep -q $'\e\\[' '$DAEMON_LOG'"
check "debug log names an ADD: type, id, event and flag names" \
    grep -q "add timer id=20,0 event=fired req=oneshot ret=0 data=0,0 user=7,0 -> queued" "$DAEMON_LOG"
check "debug log names the errno of a failed ukevent" \
    grep -q "add poll id=999,0 event=pollin req=0 ret=0 data=0,0 user=0,0 -> failed ENODEV" "$DAEMON_LOG"
check "debug log names a delivery" grep -q "deliver timer id=20,0 event=fired req=oneshot ret=done data=" "$DAEMON_LOG"
expect_eq "the daemon still serves after SIGHUP" ok "$(open_as 0 0 - rw)"
stop_daemon
unset RUST_LOG
if command -v script >/dev/null; then
    script -qec "$KEVENT_BIN --transport fuse --path $dir/tty & p=\$!; sleep 1; kill \$p; wait \$p" "$dir/tty.log" >/dev/null 2>&1
    check "ANSI colours on a terminal" grep -q $'\e\\[' "$dir/tty.log"
fi

# --- access -----------------------------------------------------------------
start_daemon "$dev" --mode 0600
expect_eq "0600 node: stat shows root:root 600" "0:0:600" "$(stat -c %u:%g:%a "$dev")"
expect_eq "0600: a non-owner's O_RDWR open is EACCES" EACCES "$(open_as $UA $UA - rw)"
expect_eq "0600: a non-owner's O_RDONLY open is EACCES" EACCES "$(open_as $UA $UA - r)"
expect_eq "0600: root opens it" ok "$(open_as 0 0 - rw)"
out=$(chmod 0666 "$dev" 2>&1)
check "chmod on the FUSE file is refused" test $? -ne 0
case $out in *"not permitted"*) ok "chmod says EPERM" ;; *) not_ok "chmod says EPERM" "$out" ;; esac
out=$(chgrp 1 "$dev" 2>&1)
check "chgrp on the FUSE file is refused" test $? -ne 0
expect_eq "the mode is unchanged" 600 "$(stat -c %a "$dev")"
stop_daemon

grp1=$(getent group 1 | cut -d: -f1)
start_daemon "$dev" --mode 0660 --group "${grp1:-1}" --owner $UB
expect_eq "--owner and --group (a name) are shown by stat" "$UB:1:660" "$(stat -c %u:%g:%a "$dev")"
expect_eq "0660: a user outside the group gets EACCES" EACCES "$(open_as $UA $UA - rw)"
expect_eq "0660: a member by primary group opens it" ok "$(open_as $UA 1 - rw)"
expect_eq "0660: a member by supplementary group opens it" ok "$(open_as $UA $UA 1 rw)"
expect_eq "0660: the owner opens it" ok "$(open_as $UB $UB - rw)"
stop_daemon
start_daemon "$dev" --mode 0640 --group 1
expect_eq "0640: a group member may open read-only" ok "$(open_as $UA 1 - r)"
expect_eq "0640: but not read-write" EACCES "$(open_as $UA 1 - rw)"
stop_daemon
out=$("$KEVENT_BIN" --transport fuse --path "$dir/x" --owner no-such-user-kevent 2>&1)
case $out in *"no user named"*) ok "an unknown --owner is refused" ;; *) not_ok "an unknown --owner is refused" "$out" ;; esac

# --- O_PATH -------------------------------------------------------------------
start_daemon "$dev"
out=$(as $UA $UA - '
import os, sys, socket, security_kq as kq
fd = kq.open_dev(sys.argv[1])
p = os.open("/", os.O_PATH)
for ty in (kq.POLL, kq.SOCKET):
    rc, back = kq.add(fd, [kq.uk(ty, event=1, id0=p)])
    print(kq.name(rc), back[0][5] if back else "-")
')
expect_eq "POLL and SOCKET on an O_PATH fd: BROKEN|DONE, EINVAL" "EINVAL 3
EINVAL 3" "$out"
stop_daemon

# --- per-user limits ----------------------------------------------------------
# HOLD: user A opens queues and adds TIMERs until refused, prints what it
# got, then holds everything until $dir/release exists.
HOLD='
import os, sys, time, security_kq as kq
ntimers, nqueues = int(sys.argv[2]), int(sys.argv[3])
fds, res = [], []
for i in range(nqueues + 1):
    try:
        fds.append(kq.open_dev(sys.argv[1]))
    except OSError as e:
        import errno
        res.append("open" + str(i) + "=" + errno.errorcode[e.errno])
added = 0
for i in range(ntimers):
    rc, _ = kq.add(fds[i % len(fds)], [kq.uk(kq.TIMER, id0=100000, id1=i)])
    if rc != 0:
        res.append("timer" + str(i) + "=" + kq.name(rc))
        rc2, _ = kq.add(fds[0], [kq.uk(kq.TIMER, id0=100000, id1=9999)])
        res.append("again=" + kq.name(rc2))
        break
    added += 1
res.insert(0, "queues=%d timers=%d" % (len(fds), added))
print(" ".join(res), flush=True)
for _ in range(1200):
    if os.path.exists(sys.argv[4]):
        break
    time.sleep(0.05)
'
# OTHER: a TIMER, a POLL (pipe), a SOCKET (socketpair) and an INODE (a
# directory) in one ADD each: every one must be queued (rc 0).
OTHER='
import os, sys, socket, tempfile, security_kq as kq
fd = kq.open_dev(sys.argv[1])
r, w = os.pipe()
a, b = socket.socketpair()
d = os.open(tempfile.mkdtemp(dir=sys.argv[2]), os.O_RDONLY)
out = []
for name, ty, ev, obj in (("timer", kq.TIMER, 1, 100000), ("poll", kq.POLL, 1, r),
                          ("socket", kq.SOCKET, 1, a.fileno()), ("inode", kq.INODE, 1, d)):
    rc, back = kq.add(fd, [kq.uk(ty, event=ev, id0=obj)])
    out.append(name + "=" + kq.name(rc))
print(" ".join(out))
'
limits_round() {
    label=$1 ntimers=$2 expect=$3
    shift 3
    rm -f "$dir/release" "$dir/hold.out"
    : >"$DAEMON_LOG"
    start_daemon "$dev" "$@"
    as $UA $UA - "$HOLD" "$ntimers" 3 "$dir/release" >"$dir/hold.out" &
    holder=$!
    wait_until 60 test -s "$dir/hold.out"
    expect_eq "$label: user A is refused at its limit" "$expect" "$(cat "$dir/hold.out")"
    expect_eq "$label: meanwhile user B's TIMER, POLL, SOCKET, INODE ADDs succeed" \
        "timer=ok 0 poll=ok 0 socket=ok 0 inode=ok 0" "$(as $UB $UB - "$OTHER" "$dir")"
    expect_eq "$label: and root's" "timer=ok 0 poll=ok 0 socket=ok 0 inode=ok 0" "$(as 0 0 - "$OTHER" "$dir")"
    touch "$dir/release"
    wait "$holder"
    n=$(grep -c "uid $UA reached the limit" "$DAEMON_LOG")
    expect_eq "$label: one warning for user A" 1 "$n"
    expect_eq "$label: user A's usage is refunded when its queues close" ok "$(open_as $UA $UA - rw)"
    stop_daemon
}
chmod 1777 "$dir"
limits_round "kevents" 60 "queues=3 timers=40 open3=EMFILE timer40=EMFILE again=EMFILE" \
    --max-kevents-per-user 40 --max-queues-per-user 3
limits_round "descriptors" 60 "queues=3 timers=25 open3=EMFILE timer25=EMFILE again=EMFILE" \
    --max-descriptors-per-user 25 --max-queues-per-user 3
chmod 755 "$dir"

finish
