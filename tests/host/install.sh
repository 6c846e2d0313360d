#!/usr/bin/env bash
# `make install` / `make uninstall` (issue 10): every file where it belongs
# (the exact list), the pkg-config file, libkevent.so's soname, a C program
# including <linux/kevent.h> built with pkg-config dynamically and statically
# running against the INSTALLED daemon, the installed kevent-ctl, the systemd
# unit (parsed by systemd-analyze where present), the man pages lint clean,
# and no reference to files outside the repository.
set -u
cd "$(dirname "$0")/../.." || exit 1
repo=$(pwd)
. tests/host/lib.sh

dir=$(mktemp -d /tmp/kevent-install.XXXXXX)
trap 'stop_daemon; rm -rf "$dir"' EXIT
stage=$dir/stage
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)

# The tools of the checks (Debian packages), installed when missing.
missing=()
command -v groff >/dev/null || missing+=(groff)
command -v man >/dev/null || missing+=(man-db)
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v file >/dev/null || missing+=(file)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- make install --------------------------------------------------------------
# `make` first: install itself builds only what is missing.
if make -s >"$dir/make.log" 2>&1 && make -s install DESTDIR="$stage" >>"$dir/make.log" 2>&1; then ok "make && make install DESTDIR=..."; else
    tail -30 "$dir/make.log" | sed 's/^/# /'
    not_ok "make && make install DESTDIR=..."
    finish
    exit 1
fi
p=$stage/usr/local
expected="usr/local/bin/kevent-ctl
usr/local/include/kevent.h
usr/local/include/linux/kevent.h
usr/local/lib/libkevent.a
usr/local/lib/libkevent.so -> libkevent.so.1
usr/local/lib/libkevent.so.1 -> libkevent.so.1.0.0
usr/local/lib/libkevent.so.1.0.0
usr/local/lib/modules-load.d/kevent-cuse.conf
usr/local/lib/pkgconfig/kevent.pc
usr/local/lib/systemd/system/kevent-cuse.service
usr/local/lib/sysusers.d/kevent-cuse.conf
usr/local/lib/udev/rules.d/60-kevent.rules
usr/local/sbin/kevent-cuse
usr/local/share/doc/kevent-cuse/ABI.md
usr/local/share/doc/kevent-cuse/README.md
usr/local/share/doc/kevent-cuse/WIRE.md
usr/local/share/man/man1/kevent-ctl.1
usr/local/share/man/man3/aio_recv.3
usr/local/share/man/man3/aio_send.3
usr/local/share/man/man3/aio_sendfile.3
usr/local/share/man/man3/kevent_ctl.3
usr/local/share/man/man4/kevent.4
usr/local/share/man/man8/kevent-cuse.8"
actual=$(cd "$stage" && find . \( -type f -o -type l \) | sed 's|^\./||' | sort | while read -r f; do
    if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"; else echo "$f"; fi
done)
expect_eq "make install: exactly the expected files (default PREFIX=/usr/local)" "$expected" "$actual"
modes=$(cd "$p" && stat -c '%a %n' sbin/kevent-cuse bin/kevent-ctl lib/libkevent.so.1.0.0 lib/libkevent.a include/linux/kevent.h lib/systemd/system/kevent-cuse.service | tr '\n' ';')
expect_eq "make install: modes" "755 sbin/kevent-cuse;755 bin/kevent-ctl;755 lib/libkevent.so.1.0.0;644 lib/libkevent.a;644 include/linux/kevent.h;644 lib/systemd/system/kevent-cuse.service;" "$modes"
check "<linux/kevent.h> is the project's header" cmp -s "$p/include/linux/kevent.h" client-c/include/kevent.h
soname=$(readelf -d "$p/lib/libkevent.so.1.0.0" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
expect_eq "libkevent.so.1.0.0 has soname libkevent.so.1" "libkevent.so.1" "$soname"
syms=$(nm -D --defined-only "$p/lib/libkevent.so.1.0.0" | awk '$2 == "T" {print $3}' | grep -E '^(kevent_ctl|aio_recv|aio_send|aio_sendfile)$' | sort | tr '\n' ' ')
expect_eq "libkevent.so exports the four 2006 calls" "aio_recv aio_send aio_sendfile kevent_ctl " "$syms"

# --- kevent.pc --------------------------------------------------------------------
export PKG_CONFIG_PATH=$p/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$stage PKG_CONFIG_LIBDIR=$p/lib/pkgconfig
expect_eq "pkg-config --modversion kevent" "$version" "$(pkg-config --modversion kevent)"
expect_eq "pkg-config --cflags --libs kevent" "-I$p/include -L$p/lib -lkevent" "$(echo $(pkg-config --cflags --libs kevent))"
expect_eq "kevent.pc libdir" "/usr/local/lib" "$(grep '^libdir=' "$p/lib/pkgconfig/kevent.pc" | cut -d= -f2)"

# --- the unit and the system files ------------------------------------------------------
unit=$p/lib/systemd/system/kevent-cuse.service
expect_eq "unit: Documentation= names the man pages" "Documentation=man:kevent-cuse(8) man:kevent(4)" "$(grep '^Documentation=' "$unit")"
expect_eq "unit: ExecStart= is the installed daemon" "ExecStart=/usr/local/sbin/kevent-cuse --transport auto --mode 0660 --group kevent" "$(grep '^ExecStart=' "$unit")"
expect_eq "unit: Type=notify" "Type=notify" "$(grep '^Type=' "$unit")"
for k in CapabilityBoundingSet NoNewPrivileges RestrictNamespaces RestrictAddressFamilies MemoryDenyWriteExecute LockPersonality SystemCallArchitectures; do
    check "unit: hardened with $k=" grep -q "^$k=" "$unit"
done
for c in CAP_SYS_ADMIN CAP_SYS_PTRACE CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_CHOWN CAP_FOWNER CAP_SYS_RESOURCE; do
    check "unit: the comment says why $c is kept" grep -q "^#.*$c" "$unit"
done
if command -v systemd-analyze >/dev/null; then
    # Without a running systemd, verify also reports missing targets, the
    # not-yet-installed binary and man pages: only parse errors count here.
    bad=$(systemd-analyze verify "$unit" 2>&1 | grep -E 'Unknown (key|section)|Failed to parse|Invalid|assignment' || true)
    expect_eq "unit: systemd-analyze verify finds no unknown or invalid setting" "" "$bad"
fi
expect_eq "udev rule: CUSE node kevent, group kevent, mode 0660" 'SUBSYSTEM=="cuse", KERNEL=="kevent", GROUP="kevent", MODE="0660"' \
    "$(grep -v '^#' "$p/lib/udev/rules.d/60-kevent.rules")"
expect_eq "modules-load.d loads cuse" "cuse" "$(grep -v '^#' "$p/lib/modules-load.d/kevent-cuse.conf")"
expect_eq "sysusers.d creates group kevent" "g kevent - -" "$(grep -v '^#' "$p/lib/sysusers.d/kevent-cuse.conf")"

# --- a C program built with pkg-config, dynamically and statically -------------------------
# It includes <linux/kevent.h>, which only the staged include dir has.
src=tests/host/lib/pkgconfig_prog.c
# shellcheck disable=SC2046 # word splitting of pkg-config output is intended
if gcc -Wall -Wextra -Werror -o "$dir/prog_dyn" "$src" $(pkg-config --cflags --libs kevent) 2>"$dir/cc.log"; then
    ok "cc prog.c \$(pkg-config --cflags --libs kevent)"
else sed 's/^/# /' "$dir/cc.log"; not_ok "cc prog.c \$(pkg-config --cflags --libs kevent)"; fi
# shellcheck disable=SC2046
if gcc -Wall -Wextra -Werror -static -o "$dir/prog_static" "$src" $(pkg-config --static --cflags --libs kevent) 2>"$dir/cc.log"; then
    ok "cc -static prog.c \$(pkg-config --static --cflags --libs kevent)"
else sed 's/^/# /' "$dir/cc.log"; not_ok "cc -static prog.c \$(pkg-config --static --cflags --libs kevent)"; fi
needed=$(readelf -d "$dir/prog_dyn" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(libkevent[^]]*\)\]/\1/p')
expect_eq "the dynamic program needs libkevent.so.1" "libkevent.so.1" "$needed"
check "the static program needs no shared library" sh -c "! readelf -d '$dir/prog_static' 2>/dev/null | grep -q NEEDED"

# Against the installed daemon (FUSE-file transport on a temporary path).
dev=$dir/kevent
KEVENT_BIN=$p/sbin/kevent-cuse DAEMON_LOG=$dir/daemon.log start_daemon "$dev" || not_ok "the installed daemon starts"
for prog in prog_dyn prog_static; do
    out=$(KEVENT_DEVICE=$dev LD_LIBRARY_PATH=$p/lib timeout 60 "$dir/$prog" 2>&1)
    rc=$?
    case $out in *"5 passed, 0 failed"*) [ $rc = 0 ] && ok "$prog runs against the installed daemon" || not_ok "$prog runs against the installed daemon" "rc $rc" ;;
    *) printf '%s\n' "$out" | sed 's/^/# /'; not_ok "$prog runs against the installed daemon" "rc $rc" ;; esac
done
lib=$(KEVENT_DEVICE=$dev LD_LIBRARY_PATH=$p/lib ldd "$dir/prog_dyn" | awk '/libkevent/ {print $3}')
expect_eq "the dynamic program loads the installed libkevent.so.1" "$p/lib/libkevent.so.1" "$lib"
out=$("$p/bin/kevent-ctl" -d "$dev" -c "add timer id=20 user=4 flags=oneshot" -c "expect timer user=4 timeout=10000" 2>&1)
case $out in "add ret=0 num=0
expect ok"*) ok "the installed kevent-ctl drives the installed daemon" ;;
*) not_ok "the installed kevent-ctl drives the installed daemon" "$out" ;; esac
check "the installed daemon stops on SIGTERM" stop_daemon

# --- man pages: lint clean, each renders -------------------------------------------------
for m in $(cd "$p/share/man" && find . -type f | sed 's|^\./||' | sort); do
    w=$(cd "$p/share/man" && { groff -ww -man -z "$m" 2>&1; LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$m" 2>&1 >/dev/null; })
    expect_eq "man page $m: groff -ww and man --warnings print nothing" "" "$w"
    lines=$(cd "$p/share/man" && MANWIDTH=80 man -l "$m" 2>/dev/null | wc -l)
    check "man page $m renders ($lines lines)" test "$lines" -gt 20
done

# --- the man pages document every option the binaries accept -------------------------------
# (A new option needs its paragraph in man/man8/kevent-cuse.8 or man/man1/kevent-ctl.1.)
for pair in "kevent-cuse:man/man8/kevent-cuse.8:$p/sbin/kevent-cuse" "kevent-ctl:man/man1/kevent-ctl.1:$p/bin/kevent-ctl"; do
    IFS=: read -r name page bin <<<"$pair"
    opts=$("$bin" --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u)
    undocumented=""
    for o in $opts; do
        grep -q -- "$(printf '%s' "$o" | sed 's/-/\\\\-/g')" "$page" || undocumented="$undocumented $o"
    done
    expect_eq "$page documents every option of $name --help" "" "$undocumented"
done
unit_opts=$(grep '^ExecStart=' "$unit" | grep -o -- '--[a-z][a-z0-9-]*')
for o in $unit_opts; do
    check "the unit's $o is an option of kevent-cuse" sh -c "'$p/sbin/kevent-cuse' --help | grep -q -- '$o'"
done

# --- another prefix and libdir --------------------------------------------------------------
make -s install DESTDIR="$dir/usr-stage" PREFIX=/usr LIBDIR=/usr/lib/x86_64-linux-gnu >"$dir/make2.log" 2>&1
q=$dir/usr-stage/usr
check "PREFIX=/usr LIBDIR=...: library in the multiarch dir" test -f "$q/lib/x86_64-linux-gnu/libkevent.so.1.0.0"
check "PREFIX=/usr: the pc file there" test -f "$q/lib/x86_64-linux-gnu/pkgconfig/kevent.pc"
expect_eq "PREFIX=/usr: ExecStart=/usr/sbin/kevent-cuse" "ExecStart=/usr/sbin/kevent-cuse --transport auto --mode 0660 --group kevent" \
    "$(grep '^ExecStart=' "$q/lib/systemd/system/kevent-cuse.service")"
expect_eq "PREFIX=/usr: pc libdir" "libdir=/usr/lib/x86_64-linux-gnu" "$(grep '^libdir=' "$q/lib/x86_64-linux-gnu/pkgconfig/kevent.pc")"

# --- make uninstall removes every file ------------------------------------------------------
make -s uninstall DESTDIR="$stage" >"$dir/un.log" 2>&1
expect_eq "make uninstall DESTDIR=...: no file left" "" "$(find "$stage" \( -type f -o -type l \))"
make -s uninstall DESTDIR="$dir/usr-stage" PREFIX=/usr LIBDIR=/usr/lib/x86_64-linux-gnu >"$dir/un.log" 2>&1
expect_eq "make uninstall PREFIX=/usr: no file left" "" "$(find "$dir/usr-stage" \( -type f -o -type l \))"

# --- the crates are publishable --------------------------------------------------------
# cargo verifies kevent-client against the packaged kevent-protocol, unpacked
# once into CARGO_HOME under the same version: drop a stale unpacked copy
# first (it is never refreshed while the version stays the same).
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/kevent-protocol-*
if timeout 900 cargo package -p kevent-protocol -p kevent-client --allow-dirty >"$dir/package.log" 2>&1; then
    ok "cargo package -p kevent-protocol -p kevent-client (verified)"
else
    tail -30 "$dir/package.log" | sed 's/^/# /'
    not_ok "cargo package -p kevent-protocol -p kevent-client (verified)"
fi
list=$(cargo package --list -p kevent-client --allow-dirty 2>/dev/null)
case $list in *examples/tokio_timer.rs*src/async_fd.rs*) ok "kevent-client package: examples and the tokio module" ;;
*) not_ok "kevent-client package: examples and the tokio module" "$list" ;; esac
deps=$(cargo metadata --format-version 1 --no-deps 2>/dev/null | python3 -c 'import json,sys
m=json.load(sys.stdin)
p=[p for p in m["packages"] if p["name"]=="kevent-client"][0]
print(" ".join(sorted(d["name"] for d in p["dependencies"] if d["kind"] is None and not d["optional"])))')
expect_eq "kevent-client: no CLI dependency (clap, anyhow) in the library" "bitflags kevent-protocol libc thiserror" "$deps"

# --- the repository refers only to itself ----------------------------------------------------
pat='shar''ed/'
refs=$(cd "$repo" && git grep -n -I "$pat" -- . ':!target' 2>/dev/null || true)
expect_eq "no reference to a ${pat} directory outside the repository" "" "$refs"
refs=$(cd "$repo" && git grep -n -I -E '(^|[^/A-Za-z])(ABI|CUSE|STYLE|FUSE-URING)\.md' -- . 2>/dev/null | grep -v 'docs/ABI\.md' || true)
expect_eq "every ABI.md reference names docs/ABI.md (and no CUSE.md/STYLE.md)" "" "$refs"
for f in docs/ABI.md docs/WIRE.md; do check "$f exists" test -s "$f"; done

finish
