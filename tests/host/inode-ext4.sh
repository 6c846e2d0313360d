#!/bin/bash
# INODE kevents (docs/ABI.md section 4) on ext4 and tmpfs under both mechanisms of
# the daemon. Makes a small ext4 image, loop-mounts it, mounts a tmpfs, and
# runs the same C program (tests/c/test_inode.c) against three daemons on
# the FUSE-file transport: KEVENT_INODE_BACKEND=fanotify, =inotify, =auto,
# and auto with fanotify made to refuse tmpfs (KEVENT_INODE_FANOTIFY_REFUSE,
# as Linux < 6.7 does: a zero fsid), so each watch picks its mechanism. Each
# run must pass on its own and must have used the mechanism(s) expected, and
# the transcripts (one line per observation) must be identical byte for byte.
#   tests/host/inode-ext4.sh [CTESTS_DIR]   (default target/ctests)
# Needs root, loop devices and mkfs.ext4 (installs e2fsprogs if missing).
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/host/lib.sh
ctests=$(realpath -m "${1:-target/ctests}")
dir=$(mktemp -d /tmp/kevent-inode.XXXXXX)
cleanup() {
    stop_daemon
    for m in "$dir"/kevent-* "$dir/ext4" "$dir/tmpfs"; do
        grep -q " $m " /proc/self/mounts && umount -l "$m"
    done
    [ "$T_FAIL" -eq 0 ] && rm -rf "$dir"
}
trap cleanup EXIT

if [ "$(id -u)" != 0 ]; then
    not_ok "run as root (mount, mkfs, the daemon)"
    finish
    exit 1
fi
if ! command -v mkfs.ext4 >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends e2fsprogs
fi
check "test_inode builds" make -s -C tests/c OUT="$ctests" "$ctests/test_inode"

mkdir -p "$dir/ext4" "$dir/tmpfs"
dirs=""
if truncate -s 64M "$dir/ext4.img" && mkfs.ext4 -q -F "$dir/ext4.img" &&
    mount -o loop "$dir/ext4.img" "$dir/ext4"; then
    ok "ext4 image made and loop-mounted"
    dirs="$dir/ext4"
else
    not_ok "ext4 image made and loop-mounted" "no loop devices or no mkfs.ext4?"
fi
if mount -t tmpfs -o size=64m,mode=0755 kevent-inode "$dir/tmpfs"; then
    ok "tmpfs mounted"
    dirs="$dirs $dir/tmpfs"
else
    not_ok "tmpfs mounted"
fi

for b in fanotify inotify auto fallback; do
    DAEMON_LOG=$dir/daemon-$b.log
    dev=$dir/kevent-$b
    if [ $b = fallback ]; then
        export KEVENT_INODE_BACKEND=auto KEVENT_INODE_FANOTIFY_REFUSE=tmpfs
    else
        export KEVENT_INODE_BACKEND=$b
    fi
    if ! start_daemon "$dev"; then
        not_ok "$b: daemon starts"
        continue
    fi
    echo "# ---- test_inode, daemon pid $DAEMON_PID, KEVENT_INODE_BACKEND=$b"
    KEVENT_TRANSPORT=fuse KEVENT_DAEMON_PID=$DAEMON_PID KEVENT_INODE_DIRS="$dirs" \
        KEVENT_INODE_TRANSCRIPT=$dir/$b.txt "$ctests/test_inode" "$dev" </dev/null
    expect_eq "$b: test_inode passes on ext4 and tmpfs" 0 $?
    fan=$(grep -c 'with fanotify' "$DAEMON_LOG")
    ino=$(grep -c 'with inotify' "$DAEMON_LOG")
    echo "# $b: $fan watch(es) with fanotify, $ino with inotify"
    case $b in
    fanotify) check "$b: every watch used fanotify" test "$fan" -gt 0 -a "$ino" -eq 0 ;;
    inotify) check "$b: every watch used inotify" test "$ino" -gt 0 -a "$fan" -eq 0 ;;
    fallback)
        check "$b: ext4 watches used fanotify" grep -q '(ext4) with fanotify' "$DAEMON_LOG"
        check "$b: tmpfs watches fell back to inotify, logged" \
            grep -q '(tmpfs): fanotify refused (No such device' "$DAEMON_LOG"
        check "$b: no tmpfs watch used fanotify" sh -c "! grep -q '(tmpfs) with fanotify' '$DAEMON_LOG'"
        ;;
    esac
    check "$b: daemon alive after the run" kill -0 "$DAEMON_PID"
    check "$b: daemon exits 0 on SIGTERM" stop_daemon
    unset KEVENT_INODE_BACKEND KEVENT_INODE_FANOTIFY_REFUSE
done

for f in fanotify inotify auto fallback; do
    check "$f: transcript covers both filesystems" \
        sh -c "grep -q '^fs1 ' '$dir/$f.txt' && grep -q '^fs2 ' '$dir/$f.txt' && ! grep -q skipped '$dir/$f.txt'"
done
for pair in "fanotify inotify" "auto inotify" "fallback inotify"; do
    set -- $pair
    if cmp -s "$dir/$1.txt" "$dir/$2.txt"; then
        ok "$1 and $2 give the same results ($(wc -l <"$dir/$1.txt") observations)"
    else
        not_ok "$1 and $2 give the same results"
        diff -u "$dir/$1.txt" "$dir/$2.txt" 2>&1 | head -40 | sed 's/^/#   /'
    fi
done
if [ "$T_FAIL" -ne 0 ]; then
    echo "# logs and transcripts kept in $dir"
fi
finish
