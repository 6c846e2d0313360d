# Shared helpers of the host integration tests (sourced, POSIX sh + bash).
#
#   check NAME CMD...        runs CMD; prints "ok - NAME" or "not ok - NAME"
#   start_daemon PATH [ARGS] starts kevent-cuse --transport fuse on PATH and
#                            waits (bounded) until the mount answers
#   stop_daemon              SIGTERM, bounded wait for exit
#   finish                   prints "N passed, N failed", returns 1 on failure

: "${KEVENT_BIN:=target/debug/kevent-cuse}"
: "${KEVENT_CTL:=target/debug/kevent-ctl}"
T_PASS=0
T_FAIL=0
DAEMON_PID=""

ok() { T_PASS=$((T_PASS + 1)); echo "ok - $1"; }
not_ok() { T_FAIL=$((T_FAIL + 1)); echo "not ok - $1${2:+: $2}"; }

check() {
    name=$1
    shift
    if "$@"; then ok "$name"; else not_ok "$name" "command failed: $*"; fi
}

# expect_eq NAME EXPECTED ACTUAL
expect_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else
        not_ok "$1" "expected [$2] got [$3]"
    fi
}

is_mounted() { grep -q " $1 fuse.kevent " /proc/self/mounts; }

# wait_until SECONDS CMD...: polls CMD every 50 ms.
wait_until() {
    limit=$(($1 * 20))
    shift
    i=0
    while [ $i -lt $limit ]; do
        if "$@"; then return 0; fi
        sleep 0.05
        i=$((i + 1))
    done
    return 1
}

start_daemon() {
    path=$1
    shift
    "$KEVENT_BIN" --transport fuse --path "$path" "$@" 2>>"${DAEMON_LOG:-/dev/null}" &
    DAEMON_PID=$!
    # Mounted and answering, in one check: a stale mount left by a killed
    # daemon is mounted but fails stat (ENOTCONN), and once the new daemon
    # has removed it the bare file answers stat but is not mounted.
    if ! wait_until 20 mounted_and_answering "$path"; then
        echo "# daemon did not mount $path"
        return 1
    fi
}

mounted_and_answering() { is_mounted "$1" && stat "$1" >/dev/null 2>&1 && is_mounted "$1"; }

stop_daemon() {
    [ -n "$DAEMON_PID" ] || return 0
    kill -TERM "$DAEMON_PID" 2>/dev/null
    i=0
    while kill -0 "$DAEMON_PID" 2>/dev/null && [ $i -lt 200 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    if kill -0 "$DAEMON_PID" 2>/dev/null; then
        echo "# daemon ignored SIGTERM for 10 s; killing it"
        kill -KILL "$DAEMON_PID"
        wait "$DAEMON_PID" 2>/dev/null
        DAEMON_PID=""
        return 1
    fi
    wait "$DAEMON_PID"
    rc=$?
    DAEMON_PID=""
    return $rc
}

finish() {
    echo "$T_PASS passed, $T_FAIL failed"
    [ "$T_FAIL" -eq 0 ]
}
