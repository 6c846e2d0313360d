#!/bin/bash
# The uring serving mode (--serve uring, FUSE-over-io_uring) on the host:
#   * the mode is negotiated and logged, with the module parameter
#     enable_uring switched on for the mount and put back right after;
#   * a daemon that may not switch it (--uring-param keep) falls back to
#     percpu and says why; the parameter is left alone;
#   * C programs (signals ending a WAIT, WAIT semantics) pass over the rings,
#     a WAIT parked at SIGTERM is answered at once, the daemon exits 0 and
#     leaves no mount;
#   * the null server over io_uring (examples/null_uring) echoes ioctls.
# The parameter is global: whatever it was before, it is restored at exit.
# Skipped, with the reason, only where the kernel has no FUSE-over-io_uring.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/host/lib.sh
ctests=${1:-target/ctests}
param=/sys/module/fuse/parameters/enable_uring
if [ ! -e "$param" ]; then
    echo "# SKIP: $param does not exist: this kernel has no FUSE-over-io_uring (6.14+ with CONFIG_FUSE_IO_URING)"
    finish
    exit 0
fi
saved=$(cat "$param")
if ! cargo build -q -p kevent-cuse --example null_uring; then
    not_ok "building examples/null_uring"
    finish
    exit 1
fi
dir=$(mktemp -d /tmp/kevent-uring.XXXXXX)
dev=$dir/kevent
NULL_PID=""
cleanup() {
    stop_daemon
    [ -z "$NULL_PID" ] || { kill -TERM "$NULL_PID" 2>/dev/null; wait "$NULL_PID" 2>/dev/null; }
    umount -l "$dev" 2>/dev/null
    umount -l "$dir/null" 2>/dev/null
    echo "$saved" >"$param"
    rm -rf "$dir"
}
trap cleanup EXIT
param_is() { [ "$(cat "$param")" = "$1" ]; }
show_log() { tail -n 30 "$DAEMON_LOG" | sed 's/^/#   /'; }

# --- 1. negotiated, switched on and put back ----------------------------------
echo N >"$param"
DAEMON_LOG=$dir/uring.log
if ! RUST_LOG=info,kevent_cuse::transport::dispatch=debug start_daemon "$dev" --serve uring; then
    not_ok "daemon starts with --serve uring"
    show_log
    finish
    exit 1
fi
possible=$(cat /sys/devices/system/cpu/possible) # e.g. 0-1
cpus=$((${possible##*[-,]} + 1))
check "log: enable_uring switched on" grep -q "switched $param on" "$DAEMON_LOG"
check "log: the rings are registered (one queue per possible CPU)" \
    grep -Eq "FUSE-over-io_uring: $cpus queue\(s\) of [0-9]+ entries registered" "$DAEMON_LOG"
check "log: serving mode uring" grep -q "serving mode uring" "$DAEMON_LOG"
check "enable_uring is put back to N once registered" wait_until 5 param_is N
KEVENT_SLACK_MS=${KEVENT_SLACK_MS:-1000} KEVENT_TRANSPORT=fuse KEVENT_DEVICE=$dev KEVENT_TESTS="test_add test_wait test_signals test_remove_modify" \
    sh "$ctests/run.sh" "$dev" >"$dir/ctests.out" 2>&1
rc=$?
tail -n 1 "$dir/ctests.out"
[ $rc -eq 0 ] || grep -E "^not ok|FAIL" "$dir/ctests.out" | head -20
expect_eq "C tests (WAIT interrupted by a signal among them) over io_uring" 0 "$rc"

# 200 WAITs parked from one CPU at once (each holds a ring entry of that
# CPU's queue); a further request from the same CPU is still served.
log_mark=$(wc -l <"$DAEMON_LOG")
waiters=""
for i in $(seq 200); do
    taskset -c 0 "$KEVENT_CTL" -d "$dev" -c "wait num=1 timeout=30000" >"$dir/p$i.out" 2>&1 &
    waiters="$waiters $!"
done
"$KEVENT_CTL" -d "$dev" -c "add timer id=600000" -c "wait num=1 timeout=30000" >"$dir/waiter.out" 2>&1 &
waiters="$waiters $!"
parked() { [ "$(tail -n +$((log_mark + 1)) "$DAEMON_LOG" | grep -c 'WAIT parked')" -ge 201 ]; }
check "201 WAITs parked (200 from CPU 0)" wait_until 30 parked
out=$(taskset -c 0 timeout 10 "$KEVENT_CTL" -d "$dev" -c "add timer id=5" -c "wait num=1 timeout=5000" 2>&1)
case $out in
*"wait ret=1"*"id=5,"*) ok "a request from CPU 0 is served beside its 200 parked WAITs" ;;
*) not_ok "a request from CPU 0 is served beside its 200 parked WAITs" "$out" ;;
esac
# Every parked WAIT is answered at SIGTERM, at once.
t0=$(date +%s%N)
check "daemon exits 0 on SIGTERM with 201 parked WAITs" stop_daemon
# shellcheck disable=SC2086 # pids
wait $waiters
elapsed=$((($(date +%s%N) - t0) / 1000000))
echo "# the parked WAITs returned ${elapsed} ms after SIGTERM"
check "the parked WAITs return within 2 s of SIGTERM" test "$elapsed" -lt 2000
expect_eq "each of the 200 returns what was ready: nothing" 200 "$(cat "$dir"/p*.out | grep -c '^wait ret=0$')"
cat "$dir"/p*.out | grep -v '^wait ret=0$' | sort | uniq -c | head -5 | sed 's/^/# /'
expect_eq "the other returns nothing too" "add ret=0 num=0
wait ret=0" "$(cat "$dir/waiter.out")"
check "no mount left" sh -c "! grep -q ' $dev ' /proc/self/mounts"
check "enable_uring still N after exit" param_is N
check "no warning about unanswered requests" sh -c "! grep -q 'without an answer' '$DAEMON_LOG'"

# --- 2. may not switch: falls back to percpu -----------------------------------
echo N >"$param"
DAEMON_LOG=$dir/keep.log
if start_daemon "$dev" --serve uring --uring-param keep; then
    check "log: the fallback names the reason" grep -q "enable_uring is N and --uring-param keep" "$DAEMON_LOG"
    check "log: serving mode percpu" grep -q "serving mode percpu" "$DAEMON_LOG"
    check "log: no ring registered" sh -c "! grep -q 'FUSE-over-io_uring: .* registered' '$DAEMON_LOG'"
    check "enable_uring left at N" param_is N
    KEVENT_TRANSPORT=fuse KEVENT_DEVICE=$dev KEVENT_TESTS="test_add" sh "$ctests/run.sh" "$dev" >"$dir/keep.out" 2>&1
    expect_eq "C test over the fallback" 0 "$?"
    check "fallback daemon exits 0 on SIGTERM" stop_daemon
else
    not_ok "daemon starts with --serve uring --uring-param keep"
    show_log
fi

# --- 3. already on: used as is, left on ------------------------------------------
echo Y >"$param"
DAEMON_LOG=$dir/on.log
if start_daemon "$dev" --serve uring --uring-param keep; then
    check "log: rings registered with enable_uring already on" grep -q "FUSE-over-io_uring: .* registered" "$DAEMON_LOG"
    check "log: nothing switched" sh -c "! grep -q 'switched $param' '$DAEMON_LOG'"
    check "stop" stop_daemon
    check "enable_uring left at Y" param_is Y
else
    not_ok "daemon starts with enable_uring already on"
    show_log
fi

# --- 4. the null server over io_uring -------------------------------------------
echo N >"$param"
target/debug/examples/null_uring "$dir/null" 4 >"$dir/null.out" 2>&1 &
NULL_PID=$!
if wait_until 20 grep -q "^ready" "$dir/null.out"; then
    expect_eq "null server: mode" "ready uring" "$(head -n 1 "$dir/null.out")"
    # _IOWR('k', 9, 64 bytes): the server echoes the input as output.
    out=$(python3 - "$dir/null" <<'PY' 2>&1
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
cmd = (3 << 30) | (64 << 16) | (ord("k") << 8) | 9
buf = bytearray(range(64))
fcntl.ioctl(fd, cmd, buf, True)
print("echo ok" if buf == bytearray(range(64)) else "echo differs: %r" % bytes(buf))
PY
)
    expect_eq "null server: a 64-byte _IOWR ioctl comes back echoed" "echo ok" "$out"
    check "null server: enable_uring put back" param_is N
    kill -TERM "$NULL_PID"
    wait "$NULL_PID"
    expect_eq "null server: exits 0 on SIGTERM" 0 "$?"
    NULL_PID=""
else
    not_ok "null server starts" "$(cat "$dir/null.out")"
fi

finish
