#!/usr/bin/env bash
# Build the qemu-arm64 disk image for the system test.
#
#   tests/system/build-image.sh [BIN_DIR [FACTORY_DIR [OUT_IMAGE]]]
#   tests/system/build-image.sh --base
#
# --base: only what needs no project binary (the cached base root
# filesystem, U-Boot and the host's qemu-system-aarch64), so that CI can
# prepare it in the background while the binaries build.
#
# BIN_DIR: aarch64 binaries camera-app and ota (whichever are there; none
# when BIN_DIR is not given or "-"). FACTORY_DIR: make-factory.sh's output
# (the factory keys, model package and test broker's certificates go into
# the image, the factory bundle and the test's material onto /data).
# OUT_IMAGE: default $SYSTEM_TEST_CACHE/out/disk.img.
#
# The layout is boards/qemu-arm64.toml's, from the Yocto layer's own files
# (files/wic/retail-camera.wks.in, boot.cmd.in, fw_env.config, the units):
# GPT, partitions from 16 MiB: 1 boot vfat (boot.scr), 2 rootfs A ext4
# (with /boot/Image and /boot/initrd.img), 3 rootfs B ext4 (empty), 4 data
# ext4; the redundant U-Boot environment at the disk offsets of
# [uboot_env]. The root filesystem is Debian (mmdebstrap, arm64) with
# Debian's kernel; U-Boot is Debian's u-boot-qemu (boot.sh).
#
# Needs root (mmdebstrap --mode=root, binfmt_misc for the arm64 maintainer
# scripts, apt-get for missing host tools). Caches under
# ${SYSTEM_TEST_CACHE:-$HOME/.cache/camera-system-test}: the base root
# filesystem tarball (rebuilt when its package list or hooks change), the
# downloaded .debs, and the work directory. See README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

BASE_ONLY=0
if [ "${1:-}" = --base ]; then BASE_ONLY=1; shift; fi
BIN_DIR=${1:--}
FACTORY=${2:--}
OUT=${3:-$SYSTEM_TEST_CACHE/out/disk.img}
BOARD=qemu-arm64
# Slot sizes: classes/retail_camera_board.bbclass (RETAIL_CAMERA_ROOTFS_SIZE,
# RETAIL_CAMERA_DATA_SIZE), the boot partition: retail-camera.wks.in.
# /data is 512 MiB on qemuarm64; here 1 GiB, as it holds the rootfs
# update's bundle twice (on the test's bundle server, then as the agent
# downloads it), and the Debian stand-in's rootfs is several times the
# layer's.
ROOTFS_MIB=${SYSTEM_TEST_ROOTFS_MIB:-1024}
DATA_MIB=${SYSTEM_TEST_DATA_MIB:-1024}
BOOT_MIB=64
FIRST_MIB=16

LAYER=$REPO/yocto
PROFILE=$REPO/boards/$BOARD.toml
WORK=$SYSTEM_TEST_CACHE/work
[ -f "$PROFILE" ] || die "no $PROFILE"

need_root "build-image.sh"
# arch-test: mmdebstrap (a Recommends, not installed here) needs it to
# check that arm64 programs run through binfmt_misc; a new machine lacks it.
apt_need mmdebstrap arch-test u-boot-tools mtools dosfstools gdisk e2fsprogs zstd cpio file
export MTOOLS_SKIP_CHECK=1
T0=$(date +%s)

# --- the profile's values ---------------------------------------------------
toml() { # KEY (a line "KEY = VALUE" in the profile's [uboot_env])
    sed -n '/^\[uboot_env\]/,/^\[/p' "$PROFILE" | sed -n "s/^$1 *= *//p" | head -n1
}
ENV_DEVICE=$(toml device | tr -d '"')
ENV_SIZE=$(toml size)
read -r ENV_OFF_A ENV_OFF_B < <(toml offsets | tr -d '[],' )
[ "$ENV_DEVICE" = /dev/vda ] || die "[uboot_env] device is $ENV_DEVICE, this script knows /dev/vda"
[ -n "$ENV_SIZE" ] && [ -n "$ENV_OFF_A" ] && [ -n "$ENV_OFF_B" ] || die "cannot read [uboot_env] of $PROFILE"
ENV_SIZE=$((ENV_SIZE)); ENV_OFF_A=$((ENV_OFF_A)); ENV_OFF_B=$((ENV_OFF_B))
for o in $ENV_OFF_A $ENV_OFF_B; do
    [ $((o + ENV_SIZE)) -le $((FIRST_MIB << 20)) ] || die "environment at $o is not below the first partition"
    [ $((o % 512)) = 0 ] || die "environment offset $o is not a multiple of 512"
done
# fw_env.config of the layer must say the same (check-boards.py generates it).
grep -Eq "^/dev/vda[[:space:]]+$(printf '0x%x' $ENV_OFF_A)[[:space:]]+$(printf '0x%x' $ENV_SIZE)" \
    "$LAYER/files/boards/$BOARD/fw_env.config" || die "fw_env.config disagrees with $PROFILE"

# --- 1. the base root filesystem (cached) -------------------------------------
PKGS=(systemd systemd-sysv udev dbus kmod initramfs-tools zstd linux-image-arm64
      mosquitto mosquitto-clients libubootenv-tool iproute2 procps v4l-utils
      busybox adjtimex)
INITRAMFS_MODULES=$HERE/guest/initramfs-modules
# MODULES=list: only the listed modules and their dependencies. MODULES=most
# took over 10 minutes under qemu-user here (one emulated realpath/modprobe
# per module, ~1500 modules) and was abandoned; MODULES=dep cannot work in
# a chroot (it looks at the running system).
INITRAMFS_MODE=list
key=$( { echo "$SUITE ${PKGS[*]} $INITRAMFS_MODE"; cat "$INITRAMFS_MODULES"; echo v1; } | sha256sum | cut -c1-12)
BASE=${SYSTEM_TEST_BASE_TAR:-$SYSTEM_TEST_CACHE/base/$SUITE-arm64-$key.tar}
if [ ! -s "$BASE" ]; then
    ensure_binfmt_arm64
    mkdir -p "$SYSTEM_TEST_CACHE/base" "$SYSTEM_TEST_CACHE/debs-arm64"
    log "mmdebstrap $SUITE arm64 -> $BASE"
    t=$(date +%s)
    # The initramfs module list is in place before linux-image-arm64's
    # postinst runs update-initramfs (essential hook: after Essential,
    # before the --include packages; modules.d, not the conffile
    # /etc/initramfs-tools/modules). MODULES=dep cannot work in a chroot.
    mmdebstrap --mode=root --format=tar --variant=minbase --architectures=arm64 \
        --include="$(IFS=,; echo "${PKGS[*]}")" \
        --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/usr/share/initramfs-tools/modules.d"' \
        --essential-hook="printf 'MODULES=$INITRAMFS_MODE\n' > \"\$1/etc/initramfs-tools/conf.d/camtest\"" \
        --essential-hook="upload $INITRAMFS_MODULES /usr/share/initramfs-tools/modules.d/camtest" \
        --skip=essential/unlink \
        --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
        --setup-hook="sync-in $SYSTEM_TEST_CACHE/debs-arm64 /var/cache/apt/archives/" \
        --customize-hook="sync-out /var/cache/apt/archives $SYSTEM_TEST_CACHE/debs-arm64" \
        "$SUITE" "$BASE.tmp" "$MIRROR" >&2 || die "mmdebstrap failed"
    mv "$BASE.tmp" "$BASE"
    log "base built in $(( $(date +%s) - t ))s: $(du -h "$BASE" | cut -f1)"
fi

if [ "$BASE_ONLY" = 1 ]; then
    # What boot.sh needs on the host, ready before it runs.
    apt_need u-boot-qemu qemu-utils mosquitto-clients bc
    find_qemu_system
    log "base ready: $BASE; $QEMU_SYSTEM; $(( $(date +%s) - T0 ))s"
    exit 0
fi

# --- 2. the rootfs A tree: base + the layer's files + the project's binaries --
ROOT=$WORK/rootfs
rm -rf "$WORK"
mkdir -p "$ROOT" "$WORK/data"
tar -C "$ROOT" --numeric-owner -xpf "$BASE"

KVER=$(ls "$ROOT/lib/modules" | sort -V | tail -n1)
[ -f "$ROOT/boot/vmlinuz-$KVER" ] && [ -f "$ROOT/boot/initrd.img-$KVER" ] \
    || die "no kernel or initrd for $KVER in the base"
# The boot script loads /boot/@KERNEL@ (KERNEL_IMAGETYPE, "Image" on
# qemuarm64) and /boot/@INITRD@ from the slot. Debian's arm64 vmlinuz is
# an uncompressed Image (booti takes it as it is).
ln -f "$ROOT/boot/vmlinuz-$KVER" "$ROOT/boot/Image"
ln -f "$ROOT/boot/initrd.img-$KVER" "$ROOT/boot/initrd.img"
zstdcat "$ROOT/boot/initrd.img" | cpio -t --quiet > "$WORK/initrd.list" 2>/dev/null \
    || die "cannot list initrd.img-$KVER"
for m in virtio_blk virtio_pci ext4; do
    grep -q "/$m.ko\$" "$WORK/initrd.list" || die "initrd.img-$KVER has no $m.ko"
done

# The Debian base trimmed towards the layer's image, which carries the
# modules its machine uses and no documentation. This tree is also the
# store chain's rootfs update (stage 5), a bundle downloaded to /data:
# 667 MB as Debian installs it, of which 296 MB are kernel modules.
MODDIR=$ROOT/lib/modules/$KVER
python3 - "$MODDIR" "$HERE/guest/rootfs-modules" > "$WORK/modules.keep" <<'PY' || die "rootfs-modules: see above"
import os, sys
moddir, seeds = sys.argv[1], sys.argv[2]
norm = lambda n: n.replace("-", "_")
deps = {}
for line in open(os.path.join(moddir, "modules.dep")):
    path, _, rest = line.partition(":")
    deps[path] = rest.split()
by_name = {norm(os.path.basename(p).split(".ko")[0]): p for p in deps}
builtin = {norm(os.path.basename(l.strip()).split(".ko")[0]) for l in open(os.path.join(moddir, "modules.builtin"))}
keep, todo, unknown = set(), [], []
for line in open(seeds):
    name = line.split("#")[0].strip()
    if not name:
        continue
    if norm(name) in by_name:
        todo.append(by_name[norm(name)])
    elif norm(name) not in builtin:
        unknown.append(name)
if unknown:
    sys.exit(f"{seeds}: the kernel has no module {', '.join(unknown)} (neither built in nor in modules.dep)")
while todo:
    p = todo.pop()
    if p not in keep:
        keep.add(p)
        todo.extend(deps[p])
print("\n".join(sorted(keep)))
PY
(cd "$MODDIR" && find kernel -name '*.ko*' | grep -vxFf "$WORK/modules.keep" | xargs rm -f)
find "$MODDIR/kernel" -type d -empty -delete
ensure_binfmt_arm64
chroot "$ROOT" /sbin/depmod -a "$KVER" || die "depmod $KVER in the rootfs failed"
# Documentation, translations, and the device trees Debian installs for
# other boards (QEMU passes its own: the boot script loads none on
# qemuarm64).
rm -rf "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
    "$ROOT"/usr/share/locale/* "$ROOT/usr/lib/linux-image-$KVER"
log "rootfs trimmed: $(wc -l < "$WORK/modules.keep") kernel modules kept ($(du -sm "$MODDIR" | cut -f1) MB), $(du -sm "$ROOT" | cut -f1) MB in all"

install_unit() { # SRC
    install -D -m 0644 "$1" "$ROOT/etc/systemd/system/$(basename "$1")"
    sed -i -e 's,@BINDIR@,/usr/bin,g' -e 's,@LIBEXECDIR@,/usr/libexec,g' \
        -e "s,@DATA@,/dev/vda4,g" "$ROOT/etc/systemd/system/$(basename "$1")"
}
enable=()
# retail-camera-data: /data
install -d "$ROOT/data"
install_unit "$LAYER/recipes-core/retail-camera-data/files/data.mount"
enable+=(data.mount)
# libubootenv (fw_printenv/fw_setenv) with the layer's fw_env.config
install -m 0644 "$LAYER/files/boards/$BOARD/fw_env.config" "$ROOT/etc/fw_env.config"
# The project's binaries (stripped: debug builds carry their symbols).
install_bin() { # NAME
    file -b "$BIN_DIR/$1" | grep -q 'ARM aarch64' || die "$BIN_DIR/$1 is not aarch64"
    install -D -m 0755 "$BIN_DIR/$1" "$ROOT/usr/bin/$1"
    if command -v aarch64-linux-gnu-strip >/dev/null; then aarch64-linux-gnu-strip "$ROOT/usr/bin/$1"; fi
}
CA=$LAYER/recipes-camera/camera-app/files
OTA=$LAYER/recipes-camera/ota/files
# camera-app, as camera-app_git.bb installs it
if [ -x "$BIN_DIR/camera-app" ]; then
    install_bin camera-app
    install -D -m 0644 "$CA/camera.toml" "$ROOT/etc/camera/config.toml"
    install -D -m 0644 "$CA/analytics.toml" "$ROOT/etc/camera/analytics.toml"
    sed -i -e "s,^# board = \"[^\"]*\",board = \"$BOARD\"," "$ROOT/etc/camera/config.toml"
    grep -q "^board = \"$BOARD\"" "$ROOT/etc/camera/config.toml" || die "camera.toml has no '# board = ' line"
    install_unit "$CA/camera-app.service"
    install_unit "$CA/camera-health.service"
    install -D -m 0755 "$CA/camera-health" "$ROOT/usr/libexec/camera-health"
    install -D -m 0755 "$CA/camera-app-launch" "$ROOT/usr/libexec/camera-app-launch"
    sed -i -e 's,@BINDIR@,/usr/bin,g' "$ROOT/usr/libexec/camera-app-launch"
    enable+=(camera-app.service camera-health.service)
    log "camera-app from $BIN_DIR"
else
    log "no $BIN_DIR/camera-app: image without camera-app"
fi
# ota, as ota_git.bb installs it
if [ -x "$BIN_DIR/ota" ]; then
    install_bin ota
    install -D -m 0644 "$OTA/$BOARD/agent.toml" "$ROOT/etc/ota/agent.toml"
    install_unit "$OTA/ota-select.service"
    install_unit "$OTA/ota-agent.service"
    install_unit "$OTA/camera-provision.service"
    install -D -m 0755 "$OTA/ota-slots" "$ROOT/usr/libexec/ota-slots"
    enable+=(ota-select.service ota-agent.service camera-provision.service)
    log "ota from $BIN_DIR"
else
    log "no $BIN_DIR/ota: image without ota (ota-select, ota-agent, provisioning)"
fi
# The vendor's and the factory's part (make-factory.sh): into the image the
# factory public keys (RETAIL_CAMERA_FACTORY_KEYS), the factory model
# package (camera-model recipe) and the test broker's certificates; onto
# /data what the factory station writes after flashing (the camera's
# bundle) and the test's material.
if [ "$FACTORY" != - ]; then
    [ -f "$FACTORY/rootfs/etc/ota/factory-keys" ] && [ -f "$FACTORY/data/provision/bundle.json" ] \
        || die "$FACTORY is not make-factory.sh's output"
    cp -a "$FACTORY/rootfs/." "$ROOT/"
    cp -a "$FACTORY/data/." "$WORK/data/"
    log "factory material from $FACTORY"
fi
# the test's own pieces
G=$HERE/guest
install -m 0644 "$G/fstab" "$ROOT/etc/fstab"
# mount points must exist on the read-only root (a missing one fails
# local-fs.target: emergency mode)
awk '!/^#/ && NF >= 2 { print $2 }' "$G/fstab" | while read -r mp; do install -d "$ROOT$mp"; done
install -m 0644 "$G/mosquitto.conf" "$ROOT/etc/mosquitto/mosquitto.conf"
install -D -m 0644 "$G/10-virtio-net.network" "$ROOT/etc/systemd/network/10-virtio-net.network"
# retail-camera-data: systemd drives the hardware watchdog
install -D -m 0644 "$LAYER/recipes-core/retail-camera-data/files/camera-watchdog.conf" \
    "$ROOT/usr/lib/systemd/system.conf.d/camera-watchdog.conf"
# The board's camera: vivid at boot (the layer: KERNEL_MODULE_AUTOLOAD on
# qemuarm64), one single- and one multi-planar instance.
install -D -m 0644 /dev/null "$ROOT/etc/modules-load.d/vivid.conf"
echo vivid > "$ROOT/etc/modules-load.d/vivid.conf"
install -D -m 0644 /dev/null "$ROOT/etc/modprobe.d/vivid.conf"
echo 'options vivid n_devs=2 multiplanar=1,2' > "$ROOT/etc/modprobe.d/vivid.conf"
install -D -m 0755 "$G/run" "$ROOT/usr/libexec/camtest/run"
install_unit "$G/camtest.service"
install_unit "$G/camtest-record.service"
install_unit "$G/camtest-httpd.service"
install_unit "$G/camtest-journal.service"
install_unit "$G/camtest-env.service"
enable+=(camtest.service camtest-record.service camtest-httpd.service camtest-journal.service camtest-env.service
         systemd-networkd.service)
echo camera-qemu > "$ROOT/etc/hostname"
# mmdebstrap's minbase writes no /etc/hosts (Yocto's base-files does):
# without it "localhost", the broker's name in the factory bundle, does
# not resolve.
[ -s "$ROOT/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tcamera-qemu\n' > "$ROOT/etc/hosts"
# root without a password on the serial console (a test VM on loopback)
if [ -f "$ROOT/etc/shadow" ]; then sed -i 's/^root:[^:]*:/root::/' "$ROOT/etc/shadow"
else log "no /etc/shadow in the base: root login stays as it is"; fi
# read-only root: systemd makes a transient machine id when this is empty
: > "$ROOT/etc/machine-id"
# enable: offline, symlinks only (no arm64 code runs)
systemctl --root="$ROOT" enable "${enable[@]}" >&2
# Units of Debian's base that the layer's image does not have (apt and
# dpkg timers, e2scrub, fstrim, device mapper, DRM, pstore, debugfs, a
# getty on a screen there is none of): masked, as each costs seconds of
# emulated CPU at every boot (systemd-analyze blame under TCG, first
# boot: modprobe@dm_mod 14.8 s, udev trigger 7.8 s, boot finished 63 s).
systemctl --root="$ROOT" mask apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer modprobe@dm_mod.service \
    modprobe@drm.service modprobe@efi_pstore.service systemd-pstore.service \
    sys-kernel-debug.mount sys-kernel-tracing.mount dev-hugepages.mount getty@tty1.service >&2
# camera-health holds boot-complete.target (and so the agent) until
# camera-app has stayed up for its settle time: 30 s on a camera; 10 s
# here, where the test boots the image about ten times.
install -D -m 0644 /dev/null "$ROOT/etc/systemd/system/camera-health.service.d/camtest.conf"
printf '[Service]\nEnvironment=CAMERA_HEALTH_SETTLE=10\n' > "$ROOT/etc/systemd/system/camera-health.service.d/camtest.conf"

# --- 3. partitions --------------------------------------------------------------
P=$WORK/parts
mkdir -p "$P"
# boot.scr: the layer's boot.cmd.in filled in by the layer's fill-boot-cmd
# with the values retail_camera_board.bbclass and the bootscript recipe give
# qemuarm64 (check-boards.py checks RETAIL_CAMERA_SCRIPT_ENV against the
# profile), plus the initramfs Debian's kernel needs.
BS=$LAYER/recipes-bsp/retail-camera-bootscript/files
DEV="virtio 0" ROOT_A=/dev/vda2 ROOT_B=/dev/vda3 CONSOLE="console=ttyAMA0,115200" \
    KERNEL=Image DTB= BOOTCMD=booti INITRD=initrd.img \
    SCRIPT_ENV="virtio 0 $ENV_OFF_A $ENV_OFF_B $ENV_SIZE" \
    sh "$BS/fill-boot-cmd" "$BS/boot.cmd.in" "$P/boot.cmd" || die "fill-boot-cmd failed"
mkimage -A arm64 -O linux -T script -C none -n "retail camera A/B boot" \
    -d "$P/boot.cmd" "$P/boot.scr" >/dev/null
rm -f "$P/boot.vfat"
mkfs.vfat -n BOOT -C "$P/boot.vfat" $((BOOT_MIB * 1024)) >/dev/null
mcopy -i "$P/boot.vfat" "$P/boot.scr" "$P/boot.cmd" ::/

# ext4 without loop mounts: mke2fs -d copies a directory in.
mkfs() { # IMG MIB LABEL [DIR]
    rm -f "$1"
    mke2fs -q -F -t ext4 -L "$3" ${4:+-d "$4"} "$1" "${2}M"
}
mkfs "$P/rootfsA.ext4" "$ROOTFS_MIB" rootfsA "$ROOT"
mkfs "$P/rootfsB.ext4" "$ROOTFS_MIB" rootfsB
# The store chain's rootfs update (guest/run, stage 5): this very tree as
# release 2.0.0, in an ext4 image of its own size (what a rootfs bundle
# carries), signed and announced with make-factory.sh's keys, served by
# the bundle server on /data.
if [ "$FACTORY" != - ]; then
    VENDOR=$FACTORY/host/ota-vendor
    [ -x "$VENDOR" ] || die "$VENDOR missing: make-factory.sh's output is older than this script"
    files=$(find "$ROOT" | wc -l)
    mib=$(( $(du -sm "$ROOT" | cut -f1) * 115 / 100 + 16 ))
    rm -f "$P/rootfs-2.0.0.ext4"
    mke2fs -q -F -t ext4 -L rootfs -N $((files * 12 / 10 + 1024)) -d "$ROOT" "$P/rootfs-2.0.0.ext4" "${mib}M"
    # Shrunk to its content: the root is mounted read-only.
    e2fsck -fy "$P/rootfs-2.0.0.ext4" >/dev/null 2>&1 || true
    resize2fs -M "$P/rootfs-2.0.0.ext4" >/dev/null 2>&1 || die "resize2fs -M of the rootfs update failed"
    truncate -s "$(dumpe2fs -h "$P/rootfs-2.0.0.ext4" 2>/dev/null \
        | awk -F: '/^Block count/ { n = $2 } /^Block size/ { b = $2 } END { print n * b }')" "$P/rootfs-2.0.0.ext4"
    "$VENDOR" sign --key "$FACTORY/secrets/signer.key" --version 2.0.0 --counter 4 --board "$BOARD" \
        --boards-dir "$REPO/boards" --rootfs "$P/rootfs-2.0.0.ext4" \
        -o "$WORK/data/camtest/bundles/2.0.0.bundle" >/dev/null || die "ota-vendor sign (rootfs 2.0.0) failed"
    "$VENDOR" announce --key "$FACTORY/secrets/announcer.key" --campaign rootfs-2.0.0 \
        --url "http://127.0.0.1:8080/2.0.0.bundle" --bundle "$WORK/data/camtest/bundles/2.0.0.bundle" \
        -o "$WORK/data/camtest/announce-rootfs-2.0.0.json" >/dev/null || die "ota-vendor announce (rootfs 2.0.0) failed"
    rm -f "$P/rootfs-2.0.0.ext4"
    log "rootfs update 2.0.0: $(du -m "$WORK/data/camtest/bundles/2.0.0.bundle" | cut -f1) MB bundle"
fi
mkfs "$P/data.ext4" "$DATA_MIB" data "$WORK/data"

# The factory environment: both copies, flags 1 (mkenvimage -r), zero
# padding as ota's env.rs writes it.
printf 'ota_rootfs_active=A\nota_app_active=A\nota_model_active=A\n' > "$P/env.txt"
mkenvimage -r -p 0 -s "$ENV_SIZE" -o "$P/env.bin" "$P/env.txt"

# --- 4. the disk ------------------------------------------------------------
mkdir -p "$(dirname "$OUT")"
rm -f "$OUT.tmp"
total_mib=$((FIRST_MIB + BOOT_MIB + 2 * ROOTFS_MIB + DATA_MIB + 1))
truncate -s "${total_mib}M" "$OUT.tmp"
s=$((FIRST_MIB * 2048))              # sectors of 512 B
b=$((BOOT_MIB * 2048)); r=$((ROOTFS_MIB * 2048)); d=$((DATA_MIB * 2048))
# GPT as wic writes it for retail-camera.wks.in (names, and --active: the
# legacy BIOS bootable attribute, which U-Boot's distro boot looks for).
sgdisk -Z "$OUT.tmp" >/dev/null 2>&1 || true
sgdisk -a 2048 \
    -n 1:$s:+$b                  -t 1:0700 -c 1:boot    -A 1:set:2 \
    -n 2:$((s + b)):+$r          -t 2:8300 -c 2:rootfsA \
    -n 3:$((s + b + r)):+$r      -t 3:8300 -c 3:rootfsB \
    -n 4:$((s + b + 2 * r)):+$d  -t 4:8300 -c 4:data \
    "$OUT.tmp" >/dev/null
put() { dd if="$1" of="$OUT.tmp" bs=1M seek="$2" conv=notrunc,sparse status=none; }
put "$P/boot.vfat" "$FIRST_MIB"
put "$P/rootfsA.ext4" $((FIRST_MIB + BOOT_MIB))
put "$P/rootfsB.ext4" $((FIRST_MIB + BOOT_MIB + ROOTFS_MIB))
put "$P/data.ext4" $((FIRST_MIB + BOOT_MIB + 2 * ROOTFS_MIB))
for o in $ENV_OFF_A $ENV_OFF_B; do
    dd if="$P/env.bin" of="$OUT.tmp" bs=512 seek=$((o / 512)) conv=notrunc status=none
done
sgdisk -v "$OUT.tmp" >/dev/null || die "sgdisk -v: bad GPT"
mv "$OUT.tmp" "$OUT"
cp "$P/boot.cmd" "$(dirname "$OUT")/boot.cmd"
log "image $OUT: $(du -h --apparent-size "$OUT" | cut -f1) ($(du -h "$OUT" | cut -f1) allocated), kernel $KVER, $(( $(date +%s) - T0 ))s"
echo "$OUT"
