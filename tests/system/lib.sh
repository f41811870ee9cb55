# Shared by build-image.sh and boot.sh (sourced, not run).
# Host tools for the system test, caches outside the clone.

SYSTEM_TEST_CACHE=${SYSTEM_TEST_CACHE:-$HOME/.cache/camera-system-test}
SUITE=${SYSTEM_TEST_SUITE:-bookworm}
MIRROR=${SYSTEM_TEST_MIRROR:-http://deb.debian.org/debian}
UBOOT_BIN=/usr/lib/u-boot/qemu_arm64/u-boot.bin

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "$1 needs root (mmdebstrap --mode=root, binfmt_misc, apt-get)"
}

# apt_need PKG... : install the Debian packages that are missing. Refuses
# an install that would remove packages (apt-get -s shows "Remv").
apt_need() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
            || missing+=("$p")
    done
    [ ${#missing[@]} = 0 ] && return 0
    need_root "installing ${missing[*]}"
    log "apt-get install ${missing[*]}"
    if apt-get install -s --no-install-recommends "${missing[@]}" 2>&1 | grep -q '^Remv'; then
        apt-get install -s --no-install-recommends "${missing[@]}" | grep '^Remv' >&2
        die "installing ${missing[*]} would remove the packages above; not doing that"
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
        || die "apt-get install ${missing[*]} failed"
}

# Debian packages extracted (dpkg-deb -x) into the cache, for tools whose
# install would remove something on this host (here: qemu-system-arm 7.2
# against the installed qemu-utils 10.0 backport, which Breaks it).
extract_debs() { # DIR PKG...
    local dir=$1; shift
    local debs="$SYSTEM_TEST_CACHE/host/debs" p f
    mkdir -p "$debs" "$dir"
    for p in "$@"; do
        f=$(ls "$debs"/"${p}"_*.deb 2>/dev/null | head -n1 || true)
        if [ -z "$f" ]; then
            (cd "$debs" && apt-get download "$p" >&2) || die "apt-get download $p failed"
            f=$(ls "$debs"/"${p}"_*.deb | head -n1)
        fi
        dpkg-deb -x "$f" "$dir"
    done
}

# Sets QEMU_SYSTEM (and QEMU_DATADIR for -L) to a qemu-system-aarch64.
find_qemu_system() {
    if command -v qemu-system-aarch64 >/dev/null; then
        QEMU_SYSTEM=$(command -v qemu-system-aarch64)
        QEMU_DATADIR=
        return
    fi
    local dir="$SYSTEM_TEST_CACHE/host/qemu-system"
    if [ ! -x "$dir/usr/bin/qemu-system-aarch64" ]; then
        if apt-get install -s --no-install-recommends qemu-system-arm 2>&1 | grep -q '^Remv'; then
            log "qemu-system-arm would remove packages here; extracting it into $dir"
            local deb=qemu-system-arm libs l missing=()
            extract_debs "$dir" qemu-system-arm qemu-system-data
            libs=$(dpkg-deb -f "$SYSTEM_TEST_CACHE"/host/debs/qemu-system-arm_*.deb Depends \
                | tr ',' '\n' | sed 's/(.*//; s/|.*//; s/ //g' | grep -v '^qemu' || true)
            apt_need $libs
        else
            apt_need qemu-system-arm
            QEMU_SYSTEM=$(command -v qemu-system-aarch64)
            QEMU_DATADIR=
            return
        fi
    fi
    QEMU_SYSTEM="$dir/usr/bin/qemu-system-aarch64"
    QEMU_DATADIR="$dir/usr/share/qemu"
    "$QEMU_SYSTEM" --version >/dev/null || die "$QEMU_SYSTEM does not run"
}

# Makes arm64 binaries executable (mmdebstrap runs arm64 maintainer
# scripts): binfmt_misc with qemu-aarch64-static, F flag (the interpreter
# is opened now, so it needs not exist inside the chroot). Registers only
# when no aarch64 handler is there; the entry stays (it is needed by every
# base build, and harmless).
ensure_binfmt_arm64() {
    need_root "binfmt_misc"
    if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
        mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
            || die "cannot mount binfmt_misc"
    fi
    local e
    for e in /proc/sys/fs/binfmt_misc/*; do
        if grep -q '^enabled' "$e" 2>/dev/null && grep -q '^magic 7f454c460201010000000000000000000200b700' "$e"; then
            grep -q '^flags:.*F' "$e" && return 0
        fi
    done
    local dir="$SYSTEM_TEST_CACHE/host/qemu-user-static"
    [ -x "$dir/usr/bin/qemu-aarch64-static" ] || extract_debs "$dir" qemu-user-static
    local conf
    conf=$(sed -n '1p' "$dir/usr/lib/binfmt.d/qemu-aarch64.conf")
    # :name:M::magic:mask:interpreter:flags with our interpreter path. The
    # name stays qemu-aarch64: mmdebstrap looks for the F flag in
    # /proc/sys/fs/binfmt_misc/qemu-aarch64 (else it wants
    # /usr/bin/qemu-aarch64-static to copy into the chroot).
    [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] \
        || die "binfmt_misc has a qemu-aarch64 entry without the F flag; install qemu-user-static or remove it"
    conf=$(printf '%s' "$conf" | awk -F: -v OFS=: -v i="$dir/usr/libexec/qemu-binfmt/aarch64-binfmt-P" \
        '{ $7 = i; print }')
    log "registering binfmt_misc qemu-aarch64 -> $dir/usr/bin/qemu-aarch64-static"
    printf '%s' "$conf" > /proc/sys/fs/binfmt_misc/register || die "binfmt_misc registration failed"
}
