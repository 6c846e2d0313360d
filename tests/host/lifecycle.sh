#!/bin/bash
# Daemon lifecycle on the host (FUSE-file transport): start-up refusals that
# name their cause, SIGTERM leaving nothing behind, a stale mount from a
# crashed run cleaned at start, and the kevent-ctl CLI against a live queue.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/host/lib.sh
dir=$(mktemp -d /tmp/kevent-life.XXXXXX)
DAEMON_LOG=$dir/daemon.log
dev=$dir/kevent
trap 'stop_daemon; umount -l "$dev" 2>/dev/null; [ "$T_FAIL" -eq 0 ] && rm -rf "$dir"' EXIT

# --- start, serve, SIGTERM --------------------------------------------------
check "daemon starts on a fresh path" start_daemon "$dev"
check "the node is a regular file with mode 0666" test "$(stat -c %F:%a "$dev")" = "regular empty file:666"
check "SIGTERM exits with status 0" stop_daemon
check "SIGTERM leaves no mount behind" sh -c "! grep -q ' $dev ' /proc/self/mounts"
check "SIGTERM removes the placeholder it created" test ! -e "$dev"

# --- an existing file is used and kept ---------------------------------------
: >"$dev"
check "daemon starts on an existing empty file" start_daemon "$dev" --mode 0640
check "--mode applies to the served node" test "$(stat -c %a "$dev")" = 640
stop_daemon
check "a file that existed before is kept" test -f "$dev"
rm -f "$dev"

# --- refusals name the cause --------------------------------------------------
start_daemon "$dev"
out=$(RUST_BACKTRACE=0 "$KEVENT_BIN" --transport fuse --path "$dev" 2>&1)
rc=$?
check "a second daemon on the same path is refused" test $rc -ne 0
case $out in *"already taken"*"another kevent-cuse"*) ok "the refusal names the live daemon" ;;
*) not_ok "the refusal names the live daemon" "$out" ;; esac
check "the first daemon still serves" sh -c "\"$KEVENT_CTL\" -d \"$dev\" --strict -c \"add timer id=10000\" >/dev/null"

# SIGKILL leaves a stale mount; a new daemon cleans it.
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=""
check "SIGKILL leaves a stale mount (precondition)" is_mounted "$dev"
check "a new daemon starts over the stale mount" start_daemon "$dev"
check "the stale mount was replaced, not stacked" test "$(grep -c " $dev fuse.kevent " /proc/self/mounts)" = 1
stop_daemon
check "no mount left after the restart" sh -c "! grep -q ' $dev ' /proc/self/mounts"

out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$KEVENT_BIN" --transport fuse --path "$dir/x" 2>&1)
rc=$?
case "$rc:$out" in 1:*"must run as root"*) ok "non-root is refused with a message naming root" ;;
*) not_ok "non-root is refused with a message naming root" "rc=$rc $out" ;; esac

out=$("$KEVENT_BIN" --transport fuse --path "$dir/x" --mode 0999 2>&1)
case $out in *"not an octal mode"*) ok "a bad --mode is refused" ;; *) not_ok "a bad --mode is refused" "$out" ;; esac
out=$("$KEVENT_BIN" --transport fuse --path "$dir/x" --max-kevents 0 2>&1)
check "--max-kevents 0 is refused" test $? -ne 0
out=$("$KEVENT_BIN" --transport fuse --path "$dir/nodir/kevent" 2>&1)
case $out in *"directory of"*) ok "a missing directory is named" ;; *) not_ok "a missing directory is named" "$out" ;; esac
mkdir "$dir/adir"
out=$("$KEVENT_BIN" --transport fuse --path "$dir/adir" 2>&1)
case $out in *"not a regular file"*) ok "a directory path is refused" ;; *) not_ok "a directory path is refused" "$out" ;; esac
if [ ! -e /dev/cuse ] && ! modprobe cuse 2>/dev/null; then
    out=$("$KEVENT_BIN" --transport cuse --name kevent-test 2>&1)
    case $out in *"CUSE is not available"*) ok "--transport cuse without CUSE says so" ;;
    *) not_ok "--transport cuse without CUSE says so" "$out" ;; esac
fi

# --- --transport auto falls back to the FUSE file without CUSE ------------------
if [ ! -e /dev/cuse ]; then
    "$KEVENT_BIN" --transport auto --path "$dev" 2>"$dir/auto.log" &
    DAEMON_PID=$!
    if wait_until 10 is_mounted "$dev"; then ok "auto without CUSE serves the FUSE file"; else not_ok "auto without CUSE serves the FUSE file"; fi
    stop_daemon
    case $(cat "$dir/auto.log") in *"no CUSE"*"FUSE-file"*) ok "auto logs why it chose the FUSE file" ;;
    *) not_ok "auto logs why it chose the FUSE file" "$(cat "$dir/auto.log")" ;; esac
fi

# --- systemd readiness (Type=notify) ------------------------------------------
python3 - "$dir/notify.sock" >"$dir/notify.out" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); s.settimeout(10)
try:
    print(s.recv(4096).decode())
except socket.timeout:
    print("TIMEOUT")
PY
listener=$!
wait_until 5 test -S "$dir/notify.sock"
NOTIFY_SOCKET=$dir/notify.sock start_daemon "$dev"
wait "$listener"
case $(cat "$dir/notify.out") in "READY=1"*"STATUS=serving $dev over FUSE file"*) ok "READY=1 sent to NOTIFY_SOCKET" ;;
*) not_ok "READY=1 sent to NOTIFY_SOCKET" "$(cat "$dir/notify.out")" ;; esac
stop_daemon

# --- a daemon in another pid namespace cannot reach its callers -----------------
unshare --pid --fork --kill-child=SIGTERM "$KEVENT_BIN" --transport fuse --path "$dev" 2>"$dir/ns.log" &
DAEMON_PID=$!
wait_until 10 is_mounted "$dev" && wait_until 10 stat "$dev" >/dev/null 2>&1
out=$("$KEVENT_CTL" -d "$dev" -c "add timer id=100" -c "wait num=1 timeout=10" 2>&1)
expected="add error=EPERM errno=1 (ADD: Operation not permitted (os error 1))
wait error=EPERM errno=1 (WAIT: Operation not permitted (os error 1))"
expect_eq "a caller invisible to the daemon gets EPERM, not a hang" "$expected" "$out"
# unshare ignores SIGTERM while it waits: signal the daemon (pid 1 inside).
kill -TERM "$(pgrep -P "$DAEMON_PID")"
wait "$DAEMON_PID"
DAEMON_PID=""
wait_until 5 sh -c "! grep -q ' $dev ' /proc/self/mounts"
check "the namespaced daemon unmounted on SIGTERM" sh -c "! grep -q ' $dev ' /proc/self/mounts"

# --- the CLI against a live queue ---------------------------------------------
start_daemon "$dev" --max-kevents 2
out=$("$KEVENT_CTL" -d "$dev" -c "add timer id=30 user=7 flags=oneshot" -c "add timer id=0" \
    -c "add timer id=500000" -c "add timer id=500001" -c "wait num=1 timeout=2000" \
    -c "remove timer id=30 user=7" -c "ioctl 0x1234" 2>&1 | sed 's/data=[0-9]*,/data=T,/')
expected="add ret=0 num=0
add error=EINVAL errno=22 (ADD: Invalid argument (os error 22))
  ev id=0,0 type=timer event=0x1 req=0x0 ret=BROKEN|DONE data=T,0 user=0,0 errno=EINVAL
add ret=0 num=0
add error=ENFILE errno=23 (ADD: Too many open files in system (os error 23))
wait ret=1
  ev id=30,0 type=timer event=0x1 req=0x1 ret=DONE data=T,1 user=7,0
remove ret=0
  ev id=30,0 type=timer event=0x1 req=0x0 ret=BROKEN|DONE data=T,0 user=7,0
ioctl error=ENODEV errno=19 (ioctl: No such device (os error 19))"
expect_eq "kevent-ctl script output (oneshot, EINVAL, --max-kevents, ENODEV)" "$expected" "$out"
out=$("$KEVENT_CTL" -d "$dev" -c "frobnicate" 2>&1)
case $out in *"unknown command"*) ok "kevent-ctl names an unknown command" ;; *) not_ok "kevent-ctl names an unknown command" "$out" ;; esac
check "SIGTERM with a client still open" stop_daemon

# --- SIGTERM answers a sleeping WAIT at once ------------------------------------
start_daemon "$dev"
"$KEVENT_CTL" -d "$dev" -c "add timer id=600000" -c "wait num=1 timeout=30000" >"$dir/waiter.out" 2>&1 &
waiter=$!
sleep 0.3
t0=$(date +%s%N)
stop_daemon
wait "$waiter"
t1=$(date +%s%N)
elapsed=$(((t1 - t0) / 1000000))
echo "# the sleeping WAIT returned ${elapsed} ms after SIGTERM"
check "a WAIT sleeping at SIGTERM returns within 2 s, not after its 30 s" test "$elapsed" -lt 2000
expect_eq "it returns what was ready: nothing" "add ret=0 num=0
wait ret=0" "$(cat "$dir/waiter.out")"

finish
