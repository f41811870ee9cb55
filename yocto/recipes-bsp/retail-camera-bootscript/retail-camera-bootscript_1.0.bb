SUMMARY = "U-Boot boot script for the retail camera's A/B rootfs (boot-count contract)"
DESCRIPTION = "boot.scr implements the rootfs part of the boot contract in \
docs/ota.md: a pending slot gets its tries, then falls back to the active \
one; the chosen slot goes on the kernel command line as ota.rootfs=A|B."
HOMEPAGE = "https://example.invalid/retail-camera"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

DEPENDS = "u-boot-mkimage-native"

SRC_URI = "file://boot.cmd.in file://fill-boot-cmd"
S = "${UNPACKDIR}"
INHIBIT_DEFAULT_DEPS = "1"

inherit deploy kernel-arch retail_camera_board

PACKAGE_ARCH = "${MACHINE_ARCH}"

# First SERIAL_CONSOLES entry ("115200;ttyAMA0") as console=ttyAMA0,115200.
BOOTSCRIPT_CONSOLE ?= "${@' '.join('console=%s,%s' % (c.split(';')[1], c.split(';')[0]) for c in (d.getVar('SERIAL_CONSOLES') or '').split()[:1])}"
# The first device tree the kernel recipe installs in /boot (empty: the
# firmware's, as on QEMU).
BOOTSCRIPT_DTB ?= "${@os.path.basename((d.getVar('KERNEL_DEVICETREE') or '').split()[0]) if (d.getVar('KERNEL_DEVICETREE') or '').split() else ''}"
BOOTSCRIPT_BOOTCMD ?= "${@'booti' if d.getVar('TARGET_ARCH') == 'aarch64' else 'bootz'}"

do_configure[noexec] = "1"

do_compile() {
    # fill-boot-cmd is shared with tests/system/build-image.sh, which boots
    # the result in QEMU.
    DEV="${RETAIL_CAMERA_UBOOT_DEV}" ROOT_A="${RETAIL_CAMERA_ROOT_A}" \
    ROOT_B="${RETAIL_CAMERA_ROOT_B}" CONSOLE="${BOOTSCRIPT_CONSOLE}" \
    KERNEL="${KERNEL_IMAGETYPE}" DTB="${BOOTSCRIPT_DTB}" \
    BOOTCMD="${BOOTSCRIPT_BOOTCMD}" INITRD="${RETAIL_CAMERA_INITRD}" \
    SCRIPT_ENV="${RETAIL_CAMERA_SCRIPT_ENV}" \
        sh ${UNPACKDIR}/fill-boot-cmd ${UNPACKDIR}/boot.cmd.in ${B}/boot.cmd
    mkimage -A ${UBOOT_ARCH} -O linux -T script -C none -n "retail camera A/B boot" \
        -d ${B}/boot.cmd ${B}/boot.scr
}

do_install[noexec] = "1"
ALLOW_EMPTY:${PN} = "1"

do_deploy() {
    install -m 0644 ${B}/boot.scr ${DEPLOYDIR}/boot.scr
    install -m 0644 ${B}/boot.cmd ${DEPLOYDIR}/boot.cmd
}
addtask deploy after do_compile before do_build
