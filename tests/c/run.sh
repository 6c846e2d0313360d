#!/bin/sh
# run.sh DEVPATH - run every C test program next to this script.
#
# POSIX sh only (busybox sh and bash).  Each test_* program gets DEVPATH as
# argv[1] (and KEVENT_DEVICE=DEVPATH for libkevent) and prints its own
# "ok - ..." / "not ok - ..." lines.  A program passes with exit 0, fails
# with anything else but 77, which means skipped.  Programs are counted, and
# the last line is exactly "N passed, N failed" (", N skipped" appended when
# some were skipped).  Exit 0 only if none failed.
#
# Environment passed through: KEVENT_SLACK_MS, KEVENT_TRANSPORT.
# KEVENT_TESTS="test_a test_b", when set, runs only the programs named.

dev=${1:-/dev/kevent}
KEVENT_DEVICE=$dev
export KEVENT_DEVICE

case $0 in
*/*) here=${0%/*} ;;
*) here=. ;;
esac

has_tests() {
	for f in "$1"/test_*; do
		[ -f "$f" ] && [ -x "$f" ] && return 0
	done
	return 1
}

# Run from the source tree: fall back to the default build directory.
if ! has_tests "$here" && has_tests "$here/build"; then
	here=$here/build
fi

pass=0
fail=0
skip=0
failed=

for t in "$here"/test_*; do
	[ -f "$t" ] && [ -x "$t" ] || continue
	name=${t##*/}
	if [ -n "${KEVENT_TESTS:-}" ]; then
		case " $KEVENT_TESTS " in
		*" $name "*) ;;
		*) continue ;;
		esac
	fi
	echo "# ---- $name"
	"$t" "$dev"
	rc=$?
	case $rc in
	0)
		pass=$((pass + 1))
		echo "# PASS $name"
		;;
	77)
		skip=$((skip + 1))
		echo "# SKIP $name"
		;;
	*)
		fail=$((fail + 1))
		failed="$failed $name"
		echo "# FAIL $name (exit $rc)"
		;;
	esac
done

if [ $((pass + fail + skip)) -eq 0 ]; then
	echo "not ok - no test programs (test_*) found in $here"
	fail=1
fi

[ -n "$failed" ] && echo "# failed:$failed"
if [ "$skip" -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ]
