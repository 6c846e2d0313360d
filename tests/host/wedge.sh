#!/bin/bash
# A user's own FUSE filesystem that never answers must stall only that user
# (issue 8 item 2). The test's FUSE server (tests/host/wedge_fuse.c, run by
# root with allow_other: the CI-safe stand-in for a FUSE mount an
# unprivileged user makes in a user namespace) never answers POLL or FLUSH.
# User nobody asks for POLL on its file; the daemon's worker for nobody
# blocks in that request. Meanwhile root and a third user get their POLL
# kevents on an epoll set and on another kevent queue (both served by the
# same offload machinery) fired; SIGTERM still answers and unmounts at once.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/host/lib.sh
dir=$(mktemp -d /tmp/kevent-wedge.XXXXXX)
chmod 755 "$dir"
DAEMON_LOG=$dir/daemon.log
dev=$dir/kevent
mnt=$dir/mnt
mkdir "$mnt"
wpid=""
vpid=""
cleanup() {
    [ -n "$vpid" ] && kill -KILL "$vpid" 2>/dev/null
    [ -n "$wpid" ] && kill -TERM "$wpid" 2>/dev/null
    [ -n "$wpid" ] && wait "$wpid" 2>/dev/null
    umount -l "$mnt" 2>/dev/null
    stop_daemon
    umount -l "$dev" 2>/dev/null
    [ "$T_FAIL" -eq 0 ] && rm -rf "$dir"
}
trap cleanup EXIT

for p in death_client wedge_fuse; do
    if ! gcc -O2 -Wall -Werror -Iclient-c/include -o "$dir/$p" "tests/host/$p.c"; then
        not_ok "build $p"
        finish
        exit 1
    fi
done
chmod 755 "$dir/death_client"

check "daemon starts" start_daemon "$dev"
"$dir/wedge_fuse" "$mnt" >"$dir/wedge.out" 2>&1 &
wpid=$!
check "the wedged FUSE server is mounted" wait_until 10 grep -q "^ready" "$dir/wedge.out"
check "its file answers stat" stat "$mnt/f" >/dev/null

"$dir/death_client" victim "$dev" "$mnt/f" >"$dir/victim.out" 2>&1 &
vpid=$!
if wait_until 10 grep -q "^ready 0" "$dir/victim.out"; then
    ok "nobody's POLL ADD on the wedged file returns at once (queued)"
else
    not_ok "nobody's POLL ADD on the wedged file returns at once (queued)" "$(cat "$dir/victim.out")"
fi
stuck() {
    for t in /proc/"$DAEMON_PID"/task/*; do
        [ "$(cat "$t/comm" 2>/dev/null)" = offload-65534 ] &&
            grep -q fuse "$t/stack" 2>/dev/null && return 0
    done
    return 1
}
check "nobody's offload worker is blocked in the wedged server" wait_until 10 stuck

for who in "" 65532; do
    out=$(timeout 20 "$dir/death_client" other "$dev" $who 2>&1)
    expect_eq "user ${who:-root}: POLL on an epoll set and on a kevent queue both fire" "fired 2" "$out"
done

t0=$(($(date +%s%N) / 1000000))
kill -TERM "$DAEMON_PID"
gone() { ! grep -q " $dev fuse" /proc/self/mounts; }
if wait_until 5 gone; then
    echo "# SIGTERM: mount gone after $(($(date +%s%N) / 1000000 - t0)) ms"
    ok "SIGTERM: the daemon answers and unmounts while a user's worker is wedged"
else
    not_ok "SIGTERM: the daemon answers and unmounts while a user's worker is wedged"
fi
# Known limit (README "Security model"): a FUSE request its server has
# read is waited out uninterruptibly by the kernel, so the wedged user's
# worker thread outlives SIGTERM until that server answers or goes away;
# every other thread of the daemon must be gone.
only_wedged() {
    grep -q '^State:.*Z' "/proc/$DAEMON_PID/status" 2>/dev/null || return 1
    for t in /proc/"$DAEMON_PID"/task/*; do
        [ "${t##*/}" = "$DAEMON_PID" ] && continue
        [ "$(cat "$t/comm" 2>/dev/null)" = offload-65534 ] || return 1
    done
}
if wait_until 5 only_wedged; then
    ok "SIGTERM: every thread but the wedged user's worker has exited"
else
    not_ok "SIGTERM: every thread but the wedged user's worker has exited" \
        "$(for t in /proc/"$DAEMON_PID"/task/*; do cat "$t/comm"; done | tr '\n' ' ')"
fi
kill -TERM "$wpid"
wait "$wpid" 2>/dev/null
wpid=""
reaped() { ! kill -0 "$DAEMON_PID" 2>/dev/null; }
check "the daemon is gone once the wedged server is" wait_until 10 reaped
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=""
finish
