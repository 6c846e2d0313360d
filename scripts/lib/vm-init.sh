#!/bin/sh
# /init of the test VM (PID 1, busybox sh). Built into the initramfs by
# scripts/vm-test. It loads fuse/cuse, starts the daemon on /dev/kevent,
# runs the C tests, stops the daemon and powers off. The last line it prints
# is always "KEVENT-VM-RESULT: <status>" (0 = everything passed); the host
# side takes its exit status from that line.
#
# Parameters, from the kernel command line (set by scripts/vm-test):
#   kevent_slack=MS           KEVENT_SLACK_MS for the tests (default 1500:
#                             TCG is slow, timing checks need a wide margin)
#   kevent_rust_log=FILTER    RUST_LOG of the daemon (default info)
#   kevent_daemon_log=MODE    "file": daemon output into /tmp/kevent-cuse.log,
#                             printed if something fails (default);
#                             "console": straight to the console, interleaved
#   kevent_tests_timeout=S    kill the tests after S seconds, with a dump of
#                             the blocked tasks first (default 0 = no limit)
#   kevent_dev_timeout=S      how long to wait for /dev/kevent (default 30)

export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root TMPDIR=/tmp

# PID 1 has nowhere to inherit stdio from if the initramfs lacks a console
# node: take the console from devtmpfs as soon as it is mounted.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

status=0
fail() { echo "VM: FAIL: $*"; status=1; }
uptime_s() { cut -d' ' -f1 /proc/uptime; }
say() { echo "VM [$(uptime_s)s]: $*"; }

# The rest of a normal system that test programs may expect.
mkdir -p /dev/pts /dev/shm /tmp /run /root
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
hostname kevent-vm
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up

slack=1500
rust_log=info
daemon_log="file"
tests_timeout=0
dev_timeout=30
# shellcheck disable=SC2013 # words, not lines
for w in $(cat /proc/cmdline); do
    case $w in
    kevent_slack=*) slack=${w#*=} ;;
    kevent_rust_log=*) rust_log=${w#*=} ;;
    kevent_daemon_log=*) daemon_log=${w#*=} ;;
    kevent_tests_timeout=*) tests_timeout=${w#*=} ;;
    kevent_dev_timeout=*) dev_timeout=${w#*=} ;;
    esac
done

say "kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) cpu(s), slack ${slack} ms"

# A child that has exited but was not reaped yet still answers kill -0:
# look at its state instead.
alive() {
    [ -r "/proc/$1/stat" ] || return 1
    # shellcheck disable=SC2046 # split the fields after "(comm) ": $1 = state
    set -- $(sed 's/.*) //' "/proc/$1/stat")
    [ "$1" != Z ]
}

mode_is() { # FILE LS-MODE, e.g. crw-rw-rw-
    m=$(ls -l "$1" 2>/dev/null)
    [ "${m%% *}" = "$2" ]
}

# Everything we know about a stuck system, for the CI log: every thread of
# every user process with its state and kernel stack (a caller parked in the
# driver sleeps in state S, which the sysrq dump below does not show), then
# the kernel's dump of the tasks in D state.
diagnose() {
    echo "VM: --- user threads: pid/tid [state] command, kernel stack ---"
    for p in /proc/[0-9]*; do
        cmd=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)
        [ -n "$cmd" ] || continue # kernel thread
        for t in "$p"/task/[0-9]*; do
            # shellcheck disable=SC2046 # split the fields: $1 = state
            set -- $(sed 's/.*) //' "$t/stat" 2>/dev/null)
            echo "VM: ${p#/proc/}/${t##*/} [$1] $cmd"
            sed 's/^/VM:     /' "$t/stack" 2>/dev/null
        done
    done
    echo w >/proc/sysrq-trigger 2>/dev/null
    sleep 1
}

dlog=/tmp/kevent-cuse.log
print_daemon_log() {
    [ "$daemon_log" = file ] && [ -s "$dlog" ] || return 0
    echo "VM: --- daemon log (last 300 lines of $dlog) ---"
    tail -n 300 "$dlog"
    echo "VM: --- end of daemon log ---"
}

# Bounded waits: busybox `wait` has no timeout, so a background subshell
# kills the target (a pid, or -pgid) after SECONDS and leaves FLAG behind, to
# tell its kill apart from a real exit status 137. Its pid is left in $wd.
watchdog() { # SECONDS TARGET FLAG [diagnose]
    (
        sleep "$1"
        : >"$3"
        [ "${4:-}" = diagnose ] && diagnose
        kill -KILL "$2" 2>/dev/null
    ) &
    wd=$!
}

# run_ctests LABEL FLAGFILE [VAR=VALUE...]: runs /ctests/run.sh against
# /dev/kevent under the tests watchdog, with the extra environment given.
# In a session of its own so the watchdog can kill run.sh and every test it
# started at once (env and setsid exec directly: $! is the group id).
run_ctests() {
    label=$1
    flag=$2
    shift 2
    cd /ctests || { fail "${label}no /ctests"; return 1; }
    env KEVENT_TRANSPORT=cuse KEVENT_SLACK_MS="$slack" "$@" setsid sh /ctests/run.sh /dev/kevent &
    tpid=$!
    wd=
    if [ "$tests_timeout" -gt 0 ]; then
        watchdog "$tests_timeout" "-$tpid" "$flag" diagnose
    fi
    wait "$tpid"
    trc=$?
    [ -n "$wd" ] && kill "$wd" 2>/dev/null
    cd /
    if [ -e "$flag" ]; then
        fail "${label}C tests killed after ${tests_timeout} s"
    elif [ "$trc" -ne 0 ]; then
        fail "${label}run.sh exited with status $trc"
    else
        say "${label}run.sh passed"
    fi
    return 0
}

run() {
    # --- modules ----------------------------------------------------------
    # fuse first: cuse needs its symbols. A module may be missing because the
    # kernel has it built in; /dev/cuse below is what counts.
    for m in fuse cuse; do
        if [ -f "/lib/modules/$m.ko" ]; then
            insmod "/lib/modules/$m.ko" || { fail "insmod $m.ko"; return; }
        fi
    done
    [ -c /dev/cuse ] || { fail "/dev/cuse missing after loading the modules"; return; }
    say "fuse and cuse loaded, /dev/cuse present"

    # --- daemon -----------------------------------------------------------
    if [ "$daemon_log" = console ]; then
        RUST_LOG=$rust_log RUST_BACKTRACE=1 \
            /bin/kevent-cuse --transport cuse --name kevent --mode 0666 &
    else
        RUST_LOG=$rust_log RUST_BACKTRACE=1 \
            /bin/kevent-cuse --transport cuse --name kevent --mode 0666 >"$dlog" 2>&1 &
    fi
    dpid=$!
    i=0
    while [ ! -e /dev/kevent ] && [ "$i" -lt $((dev_timeout * 10)) ] && alive "$dpid"; do
        sleep 0.1
        i=$((i + 1))
    done
    if [ ! -e /dev/kevent ]; then
        if alive "$dpid"; then
            fail "/dev/kevent did not appear within ${dev_timeout} s"
        else
            wait "$dpid"
            fail "the daemon exited with status $? before /dev/kevent appeared"
        fi
        return
    fi
    if [ -c /dev/kevent ]; then
        echo "VM: /dev/kevent is a character device"
    else
        fail "/dev/kevent is not a character device"
        return
    fi
    # devtmpfs creates the node 0600; the daemon then applies --mode. Give
    # it a moment, since the node appearing is the only readiness signal.
    i=0
    while ! mode_is /dev/kevent crw-rw-rw- && [ "$i" -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    mode_is /dev/kevent crw-rw-rw- || fail "/dev/kevent did not get mode 0666 (--mode 0666)"
    say "daemon up: $(ls -l /dev/kevent)"

    # --- tests ------------------------------------------------------------
    say "running /ctests/run.sh"
    # test_aio: smaller big transfers under TCG; its descriptor checks
    # need the daemon's pid.
    run_ctests "" /tmp/.tests-timeout KEVENT_AIO_DAEMON_PID="$dpid" KEVENT_AIO_SMALL=1 || return

    # --- kevent-ctl (static) drives the CUSE device -------------------------
    if [ -x /ctests/kevent-ctl ]; then
        out=$(/ctests/kevent-ctl -d /dev/kevent -c "add timer id=20 user=4 flags=oneshot" \
            -c "expect timer user=4 timeout=20000" 2>&1)
        case $out in
        "add ret=0 num=0
expect ok"*) say "kevent-ctl on the CUSE device: ok" ;;
        *) fail "kevent-ctl on the CUSE device: $out" ;;
        esac
    fi

    # --- the name is taken while the daemon runs ---------------------------
    out=$(/bin/kevent-cuse --transport cuse --name kevent 2>&1)
    rc=$?
    case "$rc:$out" in
    0:*) fail "a second daemon with the same --name started" ;;
    *"already taken"*) say "a second daemon for the same name is refused: ok" ;;
    *) fail "a second daemon failed without naming the taken name: $out" ;;
    esac

    # --- shutdown ---------------------------------------------------------
    if ! alive "$dpid"; then
        wait "$dpid"
        fail "the daemon died during the tests (status $?)"
        return
    fi
    say "sending SIGTERM to the daemon"
    kill -TERM "$dpid"
    watchdog 10 "$dpid" /tmp/.daemon-timeout
    wait "$dpid"
    drc=$?
    kill "$wd" 2>/dev/null
    if [ -e /tmp/.daemon-timeout ]; then
        fail "the daemon did not exit within 10 s of SIGTERM (killed)"
    elif [ "$drc" -ne 0 ]; then
        fail "the daemon exited with status $drc after SIGTERM (a clean shutdown exits 0)"
    else
        say "daemon exited with status $drc"
    fi
    # Removal is synchronous with the channel's release, but allow a moment.
    i=0
    while [ -e /dev/kevent ] && [ "$i" -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if [ -e /dev/kevent ]; then
        fail "/dev/kevent still exists after the daemon exited"
    else
        say "/dev/kevent removed"
    fi
    retry_phase
}

# The CUSE RETRY exchange, for callers whose memory the daemon cannot reach:
# a daemon in a pid namespace of its own sees every caller as pid 0, so each
# ioctl goes through the kernel's gather/scatter legs instead of
# process_vm_readv. The programs whose subject is caller memory faults or
# caller descriptors are left out: there the kernel, not the daemon, copies
# (EFAULT), and fd-based types refuse invisible callers by design, which
# test_socket_hidden checks (it runs only with KEVENT_CALLER_HIDDEN=1).
# The _m32 twins take the same exchange through the kernel's compat ioctl.
retry_tests="test_add test_remove_modify test_wait test_timer test_poll test_sharing test_threads test_signals test_limits test_kill test_libkevent test_socket_hidden test_add_m32 test_wait_m32 test_remove_modify_m32"
retry_phase() {
    say "RETRY phase: daemon in its own pid namespace"
    RUST_LOG=$rust_log unshare -p -f /bin/kevent-cuse --transport cuse --name kevent --mode 0666 >"$dlog" 2>&1 &
    upid=$!
    i=0
    while ! mode_is /dev/kevent crw-rw-rw- && [ "$i" -lt $((dev_timeout * 10)) ]; do
        sleep 0.1
        i=$((i + 1))
    done
    mode_is /dev/kevent crw-rw-rw- || { fail "RETRY phase: /dev/kevent did not appear"; return; }
    run_ctests "RETRY phase: " /tmp/.retry-timeout KEVENT_CALLER_HIDDEN=1 "KEVENT_TESTS=$retry_tests"
    # Proof that the calls really took the RETRY path.
    if grep -q "using the CUSE RETRY exchange" "$dlog"; then
        say "RETRY phase: the daemon used the RETRY exchange: ok"
    else
        fail "RETRY phase: the daemon never used the RETRY exchange"
    fi
    # The daemon is pid 1 of its namespace; signal it directly.
    for p in $(pidof kevent-cuse); do kill -TERM "$p"; done
    watchdog 10 "$upid" /tmp/.retry-daemon-timeout
    wait "$upid"
    kill "$wd" 2>/dev/null
    [ -e /tmp/.retry-daemon-timeout ] && fail "RETRY phase: the daemon ignored SIGTERM"
    i=0
    while [ -e /dev/kevent ] && [ "$i" -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ -e /dev/kevent ] && fail "RETRY phase: /dev/kevent still exists after SIGTERM"
    say "RETRY phase done"
    inode_phase
}

# INODE on ext4 (a loop-mounted image), the initramfs root and tmpfs, once
# with fanotify forced and once with inotify forced: each run must pass, use
# only its mechanism, and both must observe exactly the same (transcripts).
inode_phase() {
    dirs="/tmp /"
    if [ -f /lib/modules/loop.ko ]; then insmod /lib/modules/loop.ko || fail "insmod loop.ko"; fi
    mkdir -p /mnt/ext4
    if mount -o loop -t ext4 /ext4.img /mnt/ext4; then
        dirs="/tmp /mnt/ext4 /"
        say "INODE phase: ext4 image mounted on /mnt/ext4"
    else
        fail "INODE phase: cannot loop-mount the ext4 image"
    fi
    for b in fanotify inotify; do
        KEVENT_INODE_BACKEND=$b RUST_LOG=info /bin/kevent-cuse --transport cuse --name kevent --mode 0666 >"/tmp/inode-$b.log" 2>&1 &
        ipid=$!
        i=0
        while ! mode_is /dev/kevent crw-rw-rw- && [ "$i" -lt $((dev_timeout * 10)) ]; do
            sleep 0.1
            i=$((i + 1))
        done
        mode_is /dev/kevent crw-rw-rw- || { fail "INODE phase ($b): /dev/kevent did not appear"; return; }
        say "INODE phase: test_inode with KEVENT_INODE_BACKEND=$b on $dirs"
        KEVENT_TRANSPORT=cuse KEVENT_SLACK_MS=$slack KEVENT_DAEMON_PID=$ipid KEVENT_INODE_BACKEND=$b \
            KEVENT_INODE_DIRS="$dirs" KEVENT_INODE_TRANSCRIPT=/tmp/inode-$b.txt \
            /ctests/test_inode /dev/kevent </dev/null
        rc=$?
        [ "$rc" -eq 0 ] || fail "INODE phase ($b): test_inode exited $rc"
        fan=$(grep -c 'with fanotify' "/tmp/inode-$b.log")
        ino=$(grep -c 'with inotify' "/tmp/inode-$b.log")
        say "INODE phase ($b): $fan watch(es) with fanotify, $ino with inotify"
        case $b in
        fanotify) [ "$fan" -gt 0 ] && [ "$ino" -eq 0 ] || fail "INODE phase: forced fanotify used inotify" ;;
        inotify) [ "$ino" -gt 0 ] && [ "$fan" -eq 0 ] || fail "INODE phase: forced inotify used fanotify" ;;
        esac
        kill -TERM "$ipid"
        wait "$ipid" || fail "INODE phase ($b): the daemon exited non-zero after SIGTERM"
        i=0
        while [ -e /dev/kevent ] && [ "$i" -lt 50 ]; do
            sleep 0.1
            i=$((i + 1))
        done
    done
    if cmp -s /tmp/inode-fanotify.txt /tmp/inode-inotify.txt; then
        say "INODE phase: fanotify and inotify give the same results ($(wc -l </tmp/inode-inotify.txt) observations): ok"
    else
        fail "INODE phase: fanotify and inotify results differ"
        diff /tmp/inode-fanotify.txt /tmp/inode-inotify.txt | head -40
    fi
    # One "fsN" section per directory tested, none skipped.
    n=0
    for d in $dirs; do
        n=$((n + 1))
        grep -q "^fs$n " /tmp/inode-inotify.txt || fail "INODE phase: nothing observed on $d"
    done
    grep -q skipped /tmp/inode-inotify.txt && fail "INODE phase: a filesystem was skipped"
    umount /mnt/ext4 2>/dev/null
}

run

# Kernel-side trouble (a BUG or a task hung in the driver) fails the run even
# when every test reported success.
if dmesg | grep -E 'BUG:|Oops:|WARNING: CPU:|blocked for more than|general protection fault'; then
    fail "the kernel log shows the problems above"
fi

if [ "$status" -ne 0 ]; then
    print_daemon_log
    # Only what happened after boot: the boot messages are noise here.
    echo "VM: --- kernel log since /init started (last 60 lines) ---"
    dmesg | sed '1,/Run \/init as init process/d' | tail -n 60
fi
say "done"
echo "KEVENT-VM-RESULT: $status"
sync
poweroff -f
