#!/bin/bash
# The C test programs against the FUSE-file transport on the host, once per
# serving mode (KEVENT_SERVE_MODES, default "single percpu uring"): for each mode
# one daemon on a temporary path serves every program; afterwards it must
# still be alive (no crash, whatever the hostile tests did), hold no more
# descriptors than before, exit 0 on SIGTERM and leave no mount behind.
#   tests/host/c-fuse.sh [CTESTS_DIR]   (default target/ctests)
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/host/lib.sh
ctests=${1:-target/ctests}
modes=${KEVENT_SERVE_MODES:-single percpu uring}
dir=$(mktemp -d /tmp/kevent-c.XXXXXX)
dev=$dir/kevent
# uring switches the global fuse parameter enable_uring on for its mount and
# puts it back itself; put it back here too should the daemon die first.
param=/sys/module/fuse/parameters/enable_uring
saved_param=$(cat "$param" 2>/dev/null)
restore_param() { [ -z "$saved_param" ] || echo "$saved_param" >"$param"; }
trap 'stop_daemon; umount -l "$dev" 2>/dev/null; restore_param; rm -rf "$dir"' EXIT

all_rc=0
for mode in $modes; do
    if [ "$mode" = uring ] && [ ! -e "$param" ]; then
        echo "# SKIP [uring]: $param does not exist: this kernel has no FUSE-over-io_uring (6.14+ with CONFIG_FUSE_IO_URING)"
        continue
    fi
    DAEMON_LOG=$dir/daemon-$mode.log
    if ! start_daemon "$dev" --serve "$mode"; then
        not_ok "[$mode] daemon starts"
        cat "$DAEMON_LOG"
        all_rc=1
        continue
    fi
    check "[$mode] the start-up line names the serving mode" \
        wait_until 10 grep -q "serving mode $mode" "$DAEMON_LOG"
    fds_before=$(ls /proc/"$DAEMON_PID"/fd | wc -l)
    echo "# C tests against $dev (FUSE file, --serve $mode, daemon pid $DAEMON_PID, $fds_before fds)"
    KEVENT_TRANSPORT=fuse KEVENT_SERVE=$mode KEVENT_DEVICE=$dev KEVENT_AIO_DAEMON_PID=$DAEMON_PID \
        KEVENT_STORM_N=${KEVENT_STORM_N:-300} sh "$ctests/run.sh" "$dev"
    rc=$?
    echo "# [$mode] C tests exit status $rc"
    [ $rc -eq 0 ] || all_rc=1
    check "[$mode] daemon survived every C test" kill -0 "$DAEMON_PID"
    # Every queue was closed by now: whatever the tests registered is freed.
    # Releases and the per-user offload workers' retirement are asynchronous:
    # give them a bounded moment, then compare exactly.
    fds_back() { [ "$(ls /proc/"$DAEMON_PID"/fd | wc -l)" -le "$fds_before" ]; }
    wait_until 5 fds_back
    fds_after=$(ls /proc/"$DAEMON_PID"/fd | wc -l)
    expect_eq "[$mode] no descriptor leaked by the daemon over the whole C run" "$fds_before" "$fds_after"
    # A WAIT parked at SIGTERM is answered (with nothing) at once.
    "$KEVENT_CTL" -d "$dev" -c "add timer id=600000" -c "wait num=1 timeout=30000" >"$dir/waiter.out" 2>&1 &
    waiter=$!
    # The ADD's answer is printed before the WAIT is sent: then give the WAIT
    # a moment to park (if it has not, SIGTERM answers it all the same).
    wait_until 10 grep -q "^add" "$dir/waiter.out"
    sleep 0.3
    check "[$mode] daemon exits 0 on SIGTERM" stop_daemon
    check "[$mode] a WAIT parked at SIGTERM returns (bounded)" wait_until 10 sh -c "! kill -0 $waiter 2>/dev/null"
    wait "$waiter" 2>/dev/null
    check "[$mode] ... with nothing ready: wait ret=0" grep -q "^wait ret=0" "$dir/waiter.out"
    check "[$mode] no mount left after SIGTERM" sh -c "! grep -q ' $dev ' /proc/self/mounts"
    if [ "$T_FAIL" -ne 0 ] || [ $rc -ne 0 ]; then
        echo "# [$mode] daemon log (last 40 lines):"
        tail -n 40 "$DAEMON_LOG" | sed 's/^/#   /'
    fi
done
# The C summary lines were printed by run.sh; ours covers the daemon checks.
finish && [ $all_rc -eq 0 ]
