#!/bin/bash
# The C test programs against the FUSE-file transport on the host: one
# daemon on a temporary path serves every program; afterwards it must still
# be alive (no crash, whatever the hostile tests did), exit 0 on SIGTERM and
# leave no mount behind.
#   tests/host/c-fuse.sh [CTESTS_DIR]   (default target/ctests)
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/host/lib.sh
ctests=${1:-target/ctests}
dir=$(mktemp -d /tmp/kevent-c.XXXXXX)
DAEMON_LOG=$dir/daemon.log
dev=$dir/kevent
trap 'stop_daemon; umount -l "$dev" 2>/dev/null; rm -rf "$dir"' EXIT

if ! start_daemon "$dev"; then
    not_ok "daemon starts"
    cat "$DAEMON_LOG"
    finish
    exit 1
fi
fds_before=$(ls /proc/"$DAEMON_PID"/fd | wc -l)
echo "# C tests against $dev (FUSE file, daemon pid $DAEMON_PID, $fds_before fds)"
KEVENT_TRANSPORT=fuse KEVENT_DEVICE=$dev KEVENT_AIO_DAEMON_PID=$DAEMON_PID sh "$ctests/run.sh" "$dev"
rc=$?
echo "# C tests exit status $rc"
check "daemon survived every C test" kill -0 "$DAEMON_PID"
# Every queue was closed by now: whatever the tests registered is freed.
# Releases and the per-user offload workers' retirement are asynchronous:
# give them a bounded moment, then compare exactly.
fds_back() { [ "$(ls /proc/"$DAEMON_PID"/fd | wc -l)" -le "$fds_before" ]; }
wait_until 5 fds_back
fds_after=$(ls /proc/"$DAEMON_PID"/fd | wc -l)
expect_eq "no descriptor leaked by the daemon over the whole C run" "$fds_before" "$fds_after"
check "daemon exits 0 on SIGTERM" stop_daemon
check "no mount left after SIGTERM" sh -c "! grep -q ' $dev ' /proc/self/mounts"
if [ "$T_FAIL" -ne 0 ] || [ $rc -ne 0 ]; then
    echo "# daemon log (last 40 lines):"
    tail -n 40 "$DAEMON_LOG" | sed 's/^/#   /'
fi
# The C summary line was printed by run.sh; ours covers the daemon checks.
finish && [ $rc -eq 0 ]
