#!/bin/bash
# Death (issue 8 items 6 and 7), on the FUSE-file transport:
#   * every process of one user SIGKILLed (queues polling each other and
#     themselves, timers, a SOCKET, a POLL on a pipe) -> the daemon's
#     descriptor count is back to its baseline (the daemon never holds a
#     file of its own device, so no cycle outlives its owners);
#   * the daemon SIGKILLed while holding POLL kevents on its own device ->
#     it dies (no hang in exit), a client blocked in WAIT gets ENOTCONN or
#     ECONNABORTED, and a new daemon on the same path serves;
#   * the kill storm of tests/c/test_soak with the daemon's descriptor
#     count checked.
# Bounds are generous (5 s where the goal is 1 s): the CI machine is loaded.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/host/lib.sh
dir=$(mktemp -d /tmp/kevent-death.XXXXXX)
chmod 755 "$dir"
DAEMON_LOG=$dir/daemon.log
dev=$dir/kevent
upgid=""
trap '[ -n "$upgid" ] && kill -KILL -- "-$upgid" 2>/dev/null; stop_daemon; umount -l "$dev" 2>/dev/null; [ "$T_FAIL" -eq 0 ] && rm -rf "$dir"' EXIT

client=$dir/death_client
if ! gcc -O2 -Wall -Werror -Iclient-c/include -o "$client" tests/host/death_client.c; then
    not_ok "build death_client"
    finish
    exit 1
fi
chmod 755 "$client"

fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# wait_line FILE PATTERN SECONDS: until a line of FILE matches.
wait_line() { wait_until "$3" grep -q "$2" "$1"; }

# --- all of a user's processes SIGKILLed ---------------------------------
check "daemon starts" start_daemon "$dev"
base=$(fds "$DAEMON_PID")
"$client" user "$dev" 20 >"$dir/user.out" 2>&1 &
upgid=$!
if wait_line "$dir/user.out" "^ready 20" 20; then
    ok "20 processes of nobody hold queues polling each other"
else
    not_ok "20 processes of nobody hold queues polling each other" "$(cat "$dir/user.out")"
fi
during=$(fds "$DAEMON_PID")
echo "# daemon descriptors: $base at start, $during with the user's kevents"
check "the user's kevents cost the daemon descriptors" test "$during" -gt "$base"
kill -KILL -- "-$upgid"
wait "$upgid" 2>/dev/null
upgid=""
t0=$(now_ms)
back() { [ "$(fds "$DAEMON_PID")" -le "$base" ]; }
if wait_until 5 back; then
    echo "# back to $base descriptors in $(($(now_ms) - t0)) ms"
    ok "all of the user's processes killed: descriptor count back to baseline"
else
    not_ok "all of the user's processes killed: descriptor count back to baseline" \
        "$(fds "$DAEMON_PID") descriptors, baseline $base"
fi
check "the daemon still serves" sh -c "\"$KEVENT_CTL\" -d \"$dev\" --strict -c 'add timer id=10000' >/dev/null"

# --- the kill storm, descriptor count checked ---------------------------------
make -s -C tests/c >/dev/null 2>&1
if [ -x tests/c/build/test_soak ]; then
    if KEVENT_DAEMON_PID=$DAEMON_PID KEVENT_TRANSPORT=fuse tests/c/build/test_soak "$dev" --storm-only >"$dir/storm.out" 2>&1; then
        ok "kill storm: clients reaped, daemon serves, descriptors back to baseline"
    else
        not_ok "kill storm: clients reaped, daemon serves, descriptors back to baseline" "$(grep -v '^ok' "$dir/storm.out" | tail -5)"
    fi
    grep '^# storm' "$dir/storm.out"
else
    not_ok "kill storm" "tests/c/build/test_soak was not built"
fi

# --- daemon SIGKILLed while holding POLL kevents on its own device ---------
"$client" hold "$dev" >"$dir/hold.out" 2>&1 &
hold=$!
check "a client polls queue A from B and B from A, and WAITs" wait_line "$dir/hold.out" "^ready" 10
sleep 0.2 # the client is in its WAIT (a condition that cannot be polled from here)
t0=$(now_ms)
kill -KILL "$DAEMON_PID"
dead() { ! kill -0 "$DAEMON_PID" 2>/dev/null || grep -q '^State:.*Z' "/proc/$DAEMON_PID/status" 2>/dev/null; }
if wait_until 5 dead; then
    ok "the SIGKILLed daemon dies (no hang in exit on its own device)"
    wait "$DAEMON_PID" 2>/dev/null
else
    not_ok "the SIGKILLed daemon dies (no hang in exit on its own device)" \
        "state $(grep State "/proc/$DAEMON_PID/status")"
    echo 1 >"/sys/fs/fuse/connections/$(stat -c %d "$dev" 2>/dev/null)/abort" 2>/dev/null
fi
DAEMON_PID=""
if wait_line "$dir/hold.out" "^err" 5; then
    echo "# the client's WAIT failed after $(($(now_ms) - t0)) ms: $(grep '^err' "$dir/hold.out")"
    case $(grep '^err' "$dir/hold.out") in
    "err ENOTCONN" | "err ECONNABORTED") ok "the blocked client gets ENOTCONN/ECONNABORTED" ;;
    *) not_ok "the blocked client gets ENOTCONN/ECONNABORTED" "$(cat "$dir/hold.out")" ;;
    esac
else
    not_ok "the blocked client's WAIT fails at once" "$(cat "$dir/hold.out")"
fi
kill -KILL "$hold" 2>/dev/null
wait "$hold" 2>/dev/null
t0=$(now_ms)
if start_daemon "$dev"; then
    echo "# restarted and serving in $(($(now_ms) - t0)) ms"
    ok "a new daemon on the same path serves"
else
    not_ok "a new daemon on the same path serves" "$(tail -3 "$DAEMON_LOG")"
fi
check "and answers an ADD" sh -c "\"$KEVENT_CTL\" -d \"$dev\" --strict -c 'add timer id=10000' >/dev/null"
check "SIGTERM exits with status 0" stop_daemon

finish
