#!/bin/bash
# 32-bit callers (docs/ABI.md section 5 item 7): the C header gives i386 exactly
# the x86-64 layout (only the alignment of struct ukevent differs: 4, not 8),
# so the daemon serves 32-bit programs unchanged. The 32-bit twins of the C
# tests (test_*_m32) run with the others in c-fuse.sh and in the VM; this
# script checks the layout itself.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/host/lib.sh
out=$(mktemp -d /tmp/kevent-m32.XXXXXX)
trap 'rm -rf "$out"' EXIT
if ! gcc -m32 -Iclient-c/include -o "$out/layout32" tests/c/layout.c 2>"$out/err"; then
    not_ok "layout.c builds with gcc -m32" "$(cat "$out/err") (scripts/test installs gcc-multilib)"
    finish
    exit 1
fi
gcc -Iclient-c/include -o "$out/layout64" tests/c/layout.c
"$out/layout32" >"$out/32"
"$out/layout64" >"$out/64"
expect_eq "i386: struct ukevent aligned to 4" "alignof_ukevent 4" "$(grep '^alignof_ukevent ' "$out/32")"
expect_eq "x86-64: struct ukevent aligned to 8" "alignof_ukevent 8" "$(grep '^alignof_ukevent ' "$out/64")"
expect_eq "i386 and x86-64 agree on every size, offset, constant and ioctl number" \
    "$(grep -v '^alignof_ukevent ' "$out/64")" "$(grep -v '^alignof_ukevent ' "$out/32")"
check "the 32-bit twins were built" test -x target/ctests/test_add_m32
finish
