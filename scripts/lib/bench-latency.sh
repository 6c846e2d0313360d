#!/usr/bin/env bash
# scripts/bench latency|rtt [ITERATIONS]: p50/p99 round trip of one ioctl per
# serving mode (KEVENT_BENCH_MODES, default "single percpu"), unpinned and
# pinned, beside a null FUSE server served the same way and an eventfd
# ping-pong. Numbers only, never pass/fail.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q --release -p kevent-cuse
out=target/bench
mkdir -p "$out"
dir=$(mktemp -d /tmp/kevent-bench.XXXXXX)
pid=""
trap '[ -n "$pid" ] && kill -TERM $pid 2>/dev/null; wait 2>/dev/null; umount -l "$dir/null" 2>/dev/null; rm -rf "$dir"' EXIT

mounted() { for _ in $(seq 200); do grep -q " $1 " /proc/self/mounts && stat "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }
stop() { kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; pid=""; }

# latency / rtt
n=${1:-20000}
gcc -O2 -Wall -pthread -Iclient-c/include -o "$out/latency" tests/bench/latency.c
gcc -O2 -Wall -pthread -o "$out/nullfuse" tests/bench/nullfuse.c
modes=${KEVENT_BENCH_MODES:-single percpu}
cpu0=$(taskset -pc $$ | sed 's/.*: //; s/[-,].*//')
printf '%-8s %-10s %-22s %9s %9s\n' mode client what p50_us p99_us
row() { # MODE CLIENT then "name p50 p99" lines on stdin
    while read -r what p50 p99; do
        printf '%-8s %-10s %-22s %9s %9s\n' "$1" "$2" "$what" "$p50" "$p99"
    done
}
for mode in $modes; do
    target/release/kevent-cuse --transport fuse --path "$dir/kevent" --serve "$mode" 2>"$dir/log-$mode" &
    pid=$!
    mounted "$dir/kevent"
    "$out/latency" kevent "$dir/kevent" "$n" | sed 's/^wait /kevent_WAIT_empty /; s/^add_remove /kevent_ADD+REMOVE /' | row "$mode" unpinned
    taskset -c "$cpu0" "$out/latency" kevent "$dir/kevent" "$n" | sed 's/^wait /kevent_WAIT_empty /; s/^add_remove /kevent_ADD+REMOVE /' | row "$mode" "pinned:$cpu0"
    stop
    : >"$dir/null"
    "$out/nullfuse" "$dir/null" "$mode" >"$dir/null.out" 2>&1 &
    pid=$!
    mounted "$dir/null"
    "$out/latency" null "$dir/null" "$n" | sed 's/^null /null_FUSE_ioctl /' | row "$mode" unpinned
    taskset -c "$cpu0" "$out/latency" null "$dir/null" "$n" | sed 's/^null /null_FUSE_ioctl /' | row "$mode" "pinned:$cpu0"
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; pid=""
    umount -l "$dir/null" 2>/dev/null || true
done
"$out/latency" eventfd "$n" | sed 's/^eventfd /eventfd_ping-pong /' | row - unpinned
taskset -c "$cpu0" "$out/latency" eventfd "$n" | sed 's/^eventfd /eventfd_ping-pong /' | row - "pinned:$cpu0"
