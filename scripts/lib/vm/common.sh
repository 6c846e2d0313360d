# shellcheck shell=bash
# Shared helpers for scripts/vm-test and scripts/build-static (bash, sourced).

# Prefix every message so it stands out from cargo/make/qemu output in CI logs.
vm_log() { printf '%s: %s\n' "${VM_PROG:-vm}" "$*" >&2; }
vm_die() { printf '%s: error: %s\n' "${VM_PROG:-vm}" "$*" >&2; exit 1; }

# Run a command as root: apt and the default cache dir need it. CI runs as root;
# on a workstation fall back to sudo.
vm_as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        vm_die "need root for: $*"
    fi
}

# apt-get update at most once per script run: it is the slow part.
VM_APT_UPDATED=0
vm_apt_update() {
    if [ "$VM_APT_UPDATED" -eq 0 ]; then
        vm_log "apt-get update"
        vm_as_root apt-get update -qq || vm_die "apt-get update failed"
        VM_APT_UPDATED=1
    fi
}

# vm_ensure_cmds CMD:PACKAGE ...
# Install the packages whose command is missing; apt is not touched at all
# when everything is already there (fast, and works offline).
vm_ensure_cmds() {
    local pair cmd pkg missing=()
    for pair in "$@"; do
        cmd=${pair%%:*}
        pkg=${pair#*:}
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    vm_log "installing missing packages: ${missing[*]}"
    vm_apt_update
    vm_as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# True if the ELF file needs no dynamic loader. Rust's +crt-static gives a
# static-pie ("static-pie linked"), gcc -static a plain static executable.
vm_is_static() {
    file -bL "$1" | grep -Eq 'statically linked|static-pie linked'
}

# True for an ELF executable (not an object file or library that a Makefile
# may leave next to the programs).
vm_is_elf_exec() {
    case $(file -bL "$1") in
    ELF*executable*) return 0 ;;
    *) return 1 ;;
    esac
}
