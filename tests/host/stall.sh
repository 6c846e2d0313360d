#!/bin/bash
# No caller can stall another (README, "No caller can stall another").
#
# A test FUSE filesystem (tests/host/hangfs.c) whose file pages never
# arrive; clients whose ioctl argument lies on such a page (the 12-byte
# header on an ordinary page just before it) make a serving thread of the
# daemon block in process_vm_readv. Checked:
#  * the stuck thread is abandoned and replaced: meanwhile another client
#    completes 1000 ADD/WAIT round trips with exact results;
#  * the stuck accesses are capped per uid (--max-stalled 2): a third
#    request of that uid gets EAGAIN, root is unaffected;
#  * (root) a userfaultfd page nobody serves stalls likewise and is released;
#  * the stuck clients are released (EINVAL) when the FUSE server goes away;
#  * SIGTERM with a stuck access: the device is gone and the daemon's main
#    thread has finished within 1 s (the process is reaped once the stuck
#    FUSE read ends: the kernel waits uninterruptibly for a FUSE request that
#    its server has read);
# for each serving mode of KEVENT_SERVE_MODES (default "single percpu").
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/host/lib.sh
modes=${KEVENT_SERVE_MODES:-single percpu}
dir=$(mktemp -d /tmp/kevent-stall.XXXXXX)
chmod 755 "$dir"
dev=$dir/kevent
HANG_PIDS=""
cleanup() {
    stop_daemon
    for p in $HANG_PIDS; do kill -KILL "$p" 2>/dev/null; done
    for m in "$dir"/mnt*; do umount -l "$m" 2>/dev/null; done
    umount -l "$dev" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

if ! gcc -Wall -Wextra -Werror -O2 -o "$dir/hangfs" tests/host/hangfs.c ||
    ! gcc -Wall -Wextra -Werror -O2 -pthread -Iclient-c/include -o "$dir/client" tests/host/stall_client.c; then
    not_ok "build hangfs and stall_client"
    finish
    exit 1
fi
NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"

# start_hangfs NAME: mounts $dir/NAME, sets HANG_PID.
start_hangfs() {
    mkdir -p "$dir/$1"
    "$dir/hangfs" "$dir/$1" >"$dir/$1.out" 2>&1 &
    HANG_PID=$!
    HANG_PIDS="$HANG_PIDS $HANG_PID"
    wait_until 10 grep -q ready "$dir/$1.out" && wait_until 10 test -e "$dir/$1/f"
}

stuck_count() { grep -c "abandoned and replaced" "$DAEMON_LOG"; }

for mode in $modes; do
    DAEMON_LOG=$dir/daemon-$mode.log
    : >"$DAEMON_LOG"
    if ! start_hangfs "mnt-$mode"; then
        not_ok "[$mode] hangfs mounts"
        continue
    fi
    hang=$HANG_PID
    f=$dir/mnt-$mode/f
    if ! start_daemon "$dev" --serve "$mode" --stall-ms 200 --max-stalled 2; then
        not_ok "[$mode] daemon starts"
        continue
    fi
    # Two stuck clients of uid 65534.
    $NOBODY "$dir/client" stuck "$dev" "$f" >"$dir/s1.out" 2>&1 &
    s1=$!
    $NOBODY "$dir/client" stuck "$dev" "$f" >"$dir/s2.out" 2>&1 &
    s2=$!
    check "[$mode] two stuck accesses are abandoned and replaced" \
        wait_until 20 sh -c "[ \$(grep -c 'abandoned and replaced' '$DAEMON_LOG') -ge 2 ]"
    out=$(timeout 120 "$dir/client" rt "$dev" 1000 2>&1)
    expect_eq "[$mode] meanwhile another client completes 1000 exact ADD/WAIT round trips" "rt OK 1000" "$out"
    out=$(timeout 60 $NOBODY "$dir/client" add "$dev" 2>&1)
    expect_eq "[$mode] uid 65534 at its cap of stuck accesses gets EAGAIN" "result -1 errno 11" "$out"
    out=$(timeout 60 "$dir/client" add "$dev" 2>&1)
    expect_eq "[$mode] root is unaffected by uid 65534's cap" "result 0 errno 0" "$out"
    # userfaultfd (root): released by the client itself after 3 s.
    before=$(stuck_count)
    timeout 60 "$dir/client" uffd "$dev" 3 >"$dir/u.out" 2>&1 &
    u=$!
    if wait_until 20 sh -c "[ \$(grep -c 'abandoned and replaced' '$DAEMON_LOG') -gt $before ]"; then
        ok "[$mode] a userfaultfd page nobody serves is abandoned likewise"
        out=$(timeout 60 "$dir/client" rt "$dev" 100 2>&1)
        expect_eq "[$mode] ... while others are served" "rt OK 100" "$out"
        wait "$u"
        check "[$mode] ... and the uffd client is answered once its page resolves" grep -q "^result" "$dir/u.out"
    else
        wait "$u"
        if grep -q "refused" "$dir/u.out"; then
            echo "# SKIP [$mode] userfaultfd: $(cat "$dir/u.out")"
        else
            not_ok "[$mode] a userfaultfd page nobody serves is abandoned likewise" "$(cat "$dir/u.out")"
        fi
    fi
    # The FUSE server goes away: the stuck clients get their answer.
    kill -KILL "$hang"
    wait "$hang" 2>/dev/null
    wait_until 20 sh -c "grep -q result '$dir/s1.out' && grep -q result '$dir/s2.out'"
    expect_eq "[$mode] stuck client 1 released with EINVAL when the FUSE server goes away" "result -1 errno 22" "$(grep result "$dir/s1.out")"
    expect_eq "[$mode] stuck client 2 released with EINVAL" "result -1 errno 22" "$(grep result "$dir/s2.out")"
    wait "$s1" "$s2" 2>/dev/null
    out=$(timeout 60 $NOBODY "$dir/client" add "$dev" 2>&1)
    expect_eq "[$mode] uid 65534 is served again once its accesses returned" "result 0 errno 0" "$out"
    umount -l "$dir/mnt-$mode" 2>/dev/null

    # SIGTERM with a stuck access.
    if start_hangfs "mnt2-$mode"; then
        hang=$HANG_PID
        before=$(stuck_count)
        $NOBODY "$dir/client" stuck "$dev" "$dir/mnt2-$mode/f" >"$dir/s3.out" 2>&1 &
        s3=$!
        wait_until 20 sh -c "[ \$(grep -c 'abandoned and replaced' '$DAEMON_LOG') -gt $before ]"
        t0=$(date +%s%N)
        kill -TERM "$DAEMON_PID"
        # Finished: the device is gone and the main thread has exited
        # (process gone, or a zombie whose stuck thread waits for hangfs).
        wait_until 10 sh -c "! grep -q ' $dev ' /proc/self/mounts && { ! kill -0 $DAEMON_PID 2>/dev/null || grep -q '^State:.*Z' /proc/$DAEMON_PID/status; }"
        t1=$(date +%s%N)
        ms=$(((t1 - t0) / 1000000))
        echo "# [$mode] SIGTERM with a stuck access: finished after $ms ms"
        limit=$((1000 + ${KEVENT_SLACK_MS:-300}))
        check "[$mode] SIGTERM with a stuck access: device removed and main thread done within 1 s (+slack)" test "$ms" -le "$limit"
        check "[$mode] the daemon logged its goodbye" grep -q "removed; bye" "$DAEMON_LOG"
        kill -KILL "$hang"
        wait "$hang" 2>/dev/null
        check "[$mode] once the FUSE server is gone the daemon's last thread ends" \
            wait_until 20 sh -c "[ \$(ls /proc/$DAEMON_PID/task 2>/dev/null | wc -l) -le 1 ]"
        wait "$DAEMON_PID" 2>/dev/null
        DAEMON_PID=""
        check "[$mode] ... and the last stuck client is released" wait_until 20 grep -q result "$dir/s3.out"
        wait "$s3" 2>/dev/null
        umount -l "$dir/mnt2-$mode" 2>/dev/null
    else
        not_ok "[$mode] second hangfs mounts"
    fi
    stop_daemon
done
finish
