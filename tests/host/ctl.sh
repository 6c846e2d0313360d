#!/usr/bin/env bash
# The clients against a live daemon (FUSE-file transport on a temporary path):
#   * kevent-client (Rust): the add() cases, AsyncDevice (tokio readiness),
#     the mio Source - client-rs/tests/live.rs, run with --ignored;
#   * kevent-ctl: malformed lines, --json field by field, a coprocess session,
#     expect (match and timeout), exit statuses, --help against what it accepts;
#     TIMER, SOCKET, POLL (pipe) and INODE (directory) kevents driven through
#     it as a coprocess holding the shell's descriptors;
#   * tests/host/lib/kq.py: the same four types through python3 with
#     fcntl.ioctl and struct only.
set -u
cd "$(dirname "$0")/../.." || exit 1
. tests/host/lib.sh

dir=$(mktemp -d /tmp/kevent-ctl.XXXXXX)
dev=$dir/kevent
cleanup() {
    [ -n "${ctl_pid:-}" ] && kill "$ctl_pid" 2>/dev/null
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null
    stop_daemon
    rm -rf "$dir"
}
trap cleanup EXIT
C=$KEVENT_CTL
DAEMON_LOG=$dir/daemon.log start_daemon "$dev" --max-kevents 64 || { not_ok "daemon started"; finish; exit 1; }

# --- kevent-client against the daemon -----------------------------------------
if KEVENT_TEST_DEVICE=$dev timeout 900 cargo test -q -p kevent-client --all-features --test live \
    -- --ignored --test-threads=2 >"$dir/live.log" 2>&1; then
    ok "kevent-client live tests ($(grep -o '[0-9]* passed' "$dir/live.log" | tail -1))"
else
    sed 's/^/# /' "$dir/live.log" | tail -40
    not_ok "kevent-client live tests"
fi

# --- kevent-ctl: malformed lines ------------------------------------------------
# Each malformed line gives exactly one "parse error" line on stdout (so a
# coprocess reader always gets an answer), the next lines still run, exit 2.
out=$("$C" -d "$dev" -c "frob" -c "add" -c "add timer id=x" -c "add timer bogus" \
    -c "add timer id=1 id=2" -c "add timer color=3" -c "add socket event=fired" \
    -c "wait via=foo" -c "wait num=" -c "ioctl" -c "sleep" -c "expect" -c "add 0x2 id=10,1 + " \
    -c "add timer id=100 user=1" 2>&1)
rc=$?
expected='parse error line=1: unknown command "frob" (add, remove, modify, wait, expect, ioctl, sleep)
parse error line=2: missing event type (socket, inode, timer, poll, naio, aio)
parse error line=3: "x" is not a number
parse error line=4: "bogus": expected key=value (id, event, flags, user, data)
parse error line=5: id= given twice
parse error line=6: unknown field "color" (expected id, event, flags, user, data)
parse error line=7: "fired" is not a socket event (one of recv, accept, send, a number, or all)
parse error line=8: via= takes wait or ctl, not "foo"
parse error line=9: num= needs a value
parse error line=10: ioctl takes exactly one number
parse error line=11: sleep takes exactly one number of milliseconds
parse error line=12: expect needs an event type
parse error line=13: missing event type (socket, inode, timer, poll, naio, aio)
add ret=0 num=0'
expect_eq "kevent-ctl: one parse error line per malformed line, the rest runs" "$expected" "$out"
expect_eq "kevent-ctl: exit 2 after a malformed line" 2 "$rc"
out=$("$C" -d "$dev" -c "add timer id=5 flags=sometimes" 2>&1)
expect_eq "kevent-ctl: an unknown flag name" 'parse error line=1: flags: "sometimes" is not oneshot or a number' "$out"
out=$("$C" -d "$dev" -c "add timer id=99999999999" 2>&1)
expect_eq "kevent-ctl: a number beyond 32 bits" 'parse error line=1: "99999999999" is not a number' "$out"

# --- exit statuses ---------------------------------------------------------------
"$C" -d "$dev" -c "add timer id=100" -c "wait num=1 timeout=10" >/dev/null 2>&1
expect_eq "kevent-ctl: exit 0 when every ioctl succeeded" 0 $?
"$C" -d "$dev" -c "ioctl 0x1234" -c "add timer id=100" >"$dir/o" 2>&1
expect_eq "kevent-ctl: exit 1 after a failing ioctl" 1 $?
expect_eq "kevent-ctl: the lines after a failing ioctl still run" 2 "$(wc -l <"$dir/o")"
"$C" -d "$dev" --errors-ok -c "ioctl 0x1234" >/dev/null 2>&1
expect_eq "kevent-ctl --errors-ok: exit 0 after a failing ioctl" 0 $?
out=$("$C" -d "$dev" --stop-on-error -c "add timer id=0" -c "add timer id=100" 2>&1)
expect_eq "kevent-ctl --stop-on-error: exit 1 at the first failure" 1 $?
case $out in *"add ret="*) not_ok "kevent-ctl --stop-on-error: nothing after the failure" "$out" ;;
*) ok "kevent-ctl --stop-on-error: nothing after the failure" ;; esac
"$C" -d "$dir/nonexistent" -c "wait" >/dev/null 2>&1
expect_eq "kevent-ctl: exit 1 when the device does not open" 1 $?
"$C" -d "$dev" --no-such-option >/dev/null 2>&1
expect_eq "kevent-ctl: exit 2 on a bad option" 2 $?

# --- names, batch ADD, errno names ----------------------------------------------
out=$("$C" -d "$dev" -c "add timer id=100 user=1 + poll id=99999 event=in|out user=2 + timer id=0 user=3" \
    -c "add 9 id=1" -c "remove timer id=100 user=1 + timer id=100 user=42" 2>&1)
expected='add error=EINVAL errno=22 (ADD: Invalid argument (os error 22))
  ev id=99999,0 type=poll event=0x5 req=0x0 ret=BROKEN|DONE data=0,0 user=2,0
  ev id=0,0 type=timer event=0x1 req=0x0 ret=BROKEN|DONE data=0,0 user=3,0 errno=EINVAL
add error=E2BIG errno=7 (ADD: Argument list too long (os error 7))
  ev id=1,0 type=9 event=0xffffffff req=0x0 ret=0 data=0,0 user=0,0 errno=E2BIG
remove ret=0
  ev id=100,0 type=timer event=0x1 req=0x0 ret=DONE data=0,0 user=1,0
  ev id=100,0 type=timer event=0x1 req=0x0 ret=BROKEN|DONE data=0,0 user=42,0'
expect_eq "kevent-ctl: batch ADD in one ioctl, names, written-back failures with errno names" "$expected" "$out"
# (descriptor 99999 does not exist: each is written back, showing its mask)
out=$("$C" -d "$dev" -c "add socket id=99999 event=recv|accept|send" -c "add inode id=99999 event=create|REMOVE" \
    -c "add poll id=99999 event=pollin|out|hup" -c "add aio id=99999 event=bio" -c "add naio id=99999 event=send" 2>&1 | grep -o 'event=0x[0-9a-f]*')
expect_eq "kevent-ctl: event names of every type" "event=0x7
event=0x3
event=0x15
event=0x1
event=0x4" "$out"

# --- --json, field by field --------------------------------------------------------
"$C" -d "$dev" --json -c "add timer id=30 user=7,8 flags=oneshot + timer id=0 user=9" \
    -c "wait num=4 timeout=5000" -c "ioctl 0x1234" -c "frob" -c "sleep 1" >"$dir/json.out" 2>&1
rc=$?
if python3 - "$dir/json.out" >"$dir/json.check" 2>&1 <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert len(lines) == 5, lines
add, wait, ioctl, frob, sleep = (json.loads(l) for l in lines)
ev = {"id": [0, 0], "type": "timer", "type_num": 2, "event": 1, "events": ["fired"],
      "req_flags": 0, "req": [], "ret_flags": 3, "ret": ["broken", "done"],
      "ret_data": [0, 0], "user": [9, 0], "status": "failed", "errno": "EINVAL"}
assert add == {"cmd": "add", "ok": False, "ret": -1, "num": 1, "errno": 22, "error": "EINVAL",
               "events": [ev]}, add
assert wait["cmd"] == "wait" and wait["ok"] is True and wait["ret"] == 1, wait
(w,) = wait["events"]
assert set(w) == {"id", "type", "type_num", "event", "events", "req_flags", "req", "ret_flags",
                  "ret", "ret_data", "user"}, w
assert w["id"] == [30, 0] and w["type"] == "timer" and w["type_num"] == 2, w
assert w["event"] == 1 and w["events"] == ["fired"], w
assert w["req_flags"] == 1 and w["req"] == ["oneshot"], w
assert w["ret_flags"] == 2 and w["ret"] == ["done"], w
assert w["user"] == [7, 8] and w["ret_data"][1] >= 1, w
assert ioctl == {"cmd": "ioctl", "ok": False, "errno": 19, "error": "ENODEV",
                 "message": "No such device"}, ioctl
assert frob["cmd"] == "frob" and frob["ok"] is False and frob["error"] == "parse" \
    and frob["line"] == 4 and "unknown command" in frob["message"], frob
assert sleep == {"cmd": "sleep", "ok": True, "ms": 1}, sleep
print("json ok")
PY
then ok "kevent-ctl --json: every field of add (failed), wait, ioctl error, parse error, sleep"
else
    sed 's/^/# /' "$dir/json.check" "$dir/json.out"
    not_ok "kevent-ctl --json: every field of add (failed), wait, ioctl error, parse error, sleep"
fi
expect_eq "kevent-ctl --json: exit 2 (a malformed line)" 2 "$rc"

# --- expect --------------------------------------------------------------------------
t0=$(date +%s%N)
out=$("$C" -d "$dev" -c "add timer id=60000 user=1" -c "expect timer user=1 timeout=400" -c "add timer id=100" 2>&1)
rc=$?
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
expect_eq "kevent-ctl expect: timeout output, nothing after it" "add ret=0 num=0
expect timeout after 400 ms" "$out"
expect_eq "kevent-ctl expect: exit 3 on timeout" 3 "$rc"
check "kevent-ctl expect: waited at least its timeout ($ms ms)" test "$ms" -ge 400
check "kevent-ctl expect: and returned (bounded: $ms ms < 20 s)" test "$ms" -lt 20000
out=$("$C" -d "$dev" -c "add timer id=50 user=2 flags=oneshot + timer id=20 user=3" \
    -c "expect timer user=2 ret=done timeout=10000" 2>&1 | sed 's/data=[0-9]*,[0-9]*/data=T/')
rc=$?
case $out in "add ret=0 num=0
expect ok"*"  ev id=50,0 type=timer event=0x1 req=0x1 ret=DONE data=T user=2,0") ok "kevent-ctl expect: finds the named event, prints others as skipped" ;;
*) not_ok "kevent-ctl expect: finds the named event, prints others as skipped" "$out" ;; esac
expect_eq "kevent-ctl expect: exit 0 when it came" 0 "$rc"

# --- --help matches what it accepts --------------------------------------------------
help=$("$C" --help)
case $help in *"--json"*"--stop-on-error"*"--errors-ok"*) ok "kevent-ctl --help lists the options" ;;
*) not_ok "kevent-ctl --help lists the options" "$help" ;; esac
cmds=$(printf '%s\n' "$help" | sed -n '/^Commands/,/^SPEC/p' | awk '/^  [a-z]/ {print $1}' | sort -u | tr '\n' ' ')
expect_eq "kevent-ctl --help names exactly the commands it runs" "add expect ioctl modify remove sleep wait " "$cmds"
# Every key the help shows is accepted where it says.
out=$("$C" -d "$dev" -c "add timer id=100,1 event=fired flags=oneshot user=1,2 data=3,4" \
    -c "modify timer id=100,1 event=all flags=0 user=1,2" -c "remove timer id=100,1 user=1,2" \
    -c "wait num=1 timeout=1 via=ctl" -c "wait num=1 timeout=1 via=wait" \
    -c "add timer id=20 user=5" -c "expect timer id=20 event=fired user=5 ret=done timeout=5000" \
    -c "sleep 1" -c "ioctl 0x1234" 2>&1)
case $out in *"parse error"*) not_ok "kevent-ctl accepts every key its help shows" "$out" ;;
*) ok "kevent-ctl accepts every key its help shows" ;; esac

# --- a coprocess session: each line answered before the next is written -----------
# The shell's descriptors are inherited by kevent-ctl, so its kevents can watch
# a FIFO (POLL), a directory (INODE) and a TCP socket (SOCKET) of the shell.
mkfifo "$dir/fifo"
exec 7<>"$dir/fifo"
mkdir "$dir/watched"
exec 6<"$dir/watched"
python3 - "$dir/port" <<'PY' &
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
try:
    c, _ = s.accept()
    c.settimeout(30)
    data = c.recv(100)
    c.sendall(b"pong:" + data)
    c.recv(100)
except OSError:
    pass
PY
server=$!
wait_until 10 test -s "$dir/port"
exec 8<>"/dev/tcp/127.0.0.1/$(cat "$dir/port")"
coproc CTL { exec "$C" -d "$dev" --json; }
ctl_pid=$CTL_PID
# ask LINE: writes one command, reads its one-line JSON answer (bounded).
ask() {
    printf '%s\n' "$1" >&"${CTL[1]}"
    reply=""
    IFS= read -r -t 20 reply <&"${CTL[0]}"
}
# field JSON KEY.PATH: prints one field of a JSON object.
field() { python3 -c 'import json,sys
v=json.loads(sys.argv[1])
for k in sys.argv[2].split("."): v=v[int(k)] if k.isdigit() else v[k]
print(json.dumps(v))' "$1" "$2"; }

ask "add timer id=100 user=1 flags=oneshot"
expect_eq "coprocess: ADD answered while stdin stays open" '{"cmd":"add","ok":true,"ret":0,"num":0,"events":[]}' "$reply"
ask "wait num=1 timeout=5000"
expect_eq "coprocess: WAIT answered with the timer" "[100, 0] [1, 0]" "$(field "$reply" events.0.id) $(field "$reply" events.0.user)"

ask "add poll id=7 event=in user=7"
expect_eq "coprocess POLL: an empty FIFO is queued" '0 0' "$(field "$reply" ret) $(field "$reply" num)"
echo x >&7
ask "expect poll user=7 timeout=10000"
expect_eq "coprocess POLL: fires after the shell writes (ret_data[0] = POLLIN)" 'true [1, 0]' \
    "$(field "$reply" ok) $(field "$reply" event.ret_data)"
ask "add poll id=7 event=in user=8"
expect_eq "coprocess POLL: a readable FIFO is ready at once" '1 ["done"]' "$(field "$reply" ret) $(field "$reply" events.0.ret)"

ask "add inode id=6 event=create user=6 + inode id=6 event=remove user=66"
expect_eq "coprocess INODE: a directory, two kevents in one ADD" '0' "$(field "$reply" ret)"
touch "$dir/watched/new"
ask "expect inode user=6 event=create timeout=10000"
expect_eq "coprocess INODE: CREATE after touch" 'true ["create"]' "$(field "$reply" ok) $(field "$reply" event.events)"
rm "$dir/watched/new"
ask "expect inode user=66 event=remove timeout=10000"
expect_eq "coprocess INODE: REMOVE after rm" 'true ["remove"]' "$(field "$reply" ok) $(field "$reply" event.events)"

ask "add socket id=8 event=recv user=8 flags=oneshot"
expect_eq "coprocess SOCKET: nothing to read yet, queued" '0' "$(field "$reply" ret)"
printf 'ping' >&8
ask "expect socket user=8 event=recv timeout=10000"
expect_eq "coprocess SOCKET: RECV when the peer answers" 'true "socket" ["done"]' \
    "$(field "$reply" ok) $(field "$reply" event.type) $(field "$reply" event.ret)"
ask "add socket id=8 event=send user=9"
expect_eq "coprocess SOCKET: SEND on a writable socket is ready at once" '1' "$(field "$reply" ret)"
ask "add socket id=7 event=recv"
expect_eq "coprocess SOCKET: on a FIFO, EINVAL" '"EINVAL" -1' "$(field "$reply" error) $(field "$reply" ret)"
ask "expect timer id=12345 timeout=300"
expect_eq "coprocess: expect timing out is answered" '{"cmd":"expect","ok":false,"error":"timeout","timeout_ms":300,"skipped":[]}' "$reply"
wait "$ctl_pid" 2>/dev/null
expect_eq "coprocess: kevent-ctl stopped with 3 at the timeout" 3 $?
ctl_pid=""
exec 6<&- 7>&- 8>&-
kill "$server" 2>/dev/null
wait "$server" 2>/dev/null
server=""

# --- python3 with fcntl.ioctl and struct only ---------------------------------------
timeout 300 python3 tests/host/lib/kq.py selftest "$dev" >"$dir/kq.out" 2>&1
grep '^ok - \|^not ok - ' "$dir/kq.out" | sed 's/^\(not \)\{0,1\}ok - /&kq.py: /'
kp=$(grep -c '^ok - ' "$dir/kq.out")
kf=$(grep -c '^not ok - ' "$dir/kq.out")
T_PASS=$((T_PASS + kp))
T_FAIL=$((T_FAIL + kf))
if ! grep -q '^# kq: [0-9]* passed, 0 failed' "$dir/kq.out"; then
    sed 's/^/# /' "$dir/kq.out" | tail -20
    not_ok "kq.py ran to its end"
fi

check "the daemon stops cleanly" stop_daemon
finish
