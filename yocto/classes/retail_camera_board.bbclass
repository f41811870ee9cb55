# Board data for the retail camera recipes, by MACHINE.
#
# The board names are the profiles in the firmware repository
# (boards/<board>.toml); yocto/scripts/check-boards.py checks that the
# values below, files/boards/<board>/fw_env.config and agent.toml agree
# with those profiles.
#
#   MACHINE          board        BSP
#   qemuarm64        qemu-arm64   OE-core
#   rock-5b          rk3588       meta-rockchip (yoctoproject)
#   rock-3a          rk3568       meta-rockchip (yoctoproject)
#   rv1106-camera    rv1106       vendor BSP needed (conf/machine/rv1106-camera.conf)
#   rv1126-camera    rv1126       vendor BSP needed (conf/machine/rv1126-camera.conf)
#
# Another board: set RETAIL_CAMERA_BOARD (and the variables below) in the
# machine conf or local.conf, and add boards/<board>.toml and
# files/boards/<board>/ in this layer.

RETAIL_CAMERA_BOARD ??= ""
RETAIL_CAMERA_BOARD:qemuarm64 ?= "qemu-arm64"
RETAIL_CAMERA_BOARD:rock-5b ?= "rk3588"
RETAIL_CAMERA_BOARD:rock-3a ?= "rk3568"
RETAIL_CAMERA_BOARD:rv1106-camera ?= "rv1106"
RETAIL_CAMERA_BOARD:rv1126-camera ?= "rv1126"

# Inference backend compiled into camera-app (its cargo features):
# "rknn" (Rockchip NPU, runtime loaded at run time) or "cpu" (rten).
CAMERA_APP_INFERENCE ??= "cpu"
CAMERA_APP_INFERENCE:rock-5b ?= "rknn"
CAMERA_APP_INFERENCE:rock-3a ?= "rknn"
CAMERA_APP_INFERENCE:rv1106-camera ?= "rknn"
# RV1126 (non-B): Toolkit1 runtime, another ABI (boards/rv1126.toml).
CAMERA_APP_INFERENCE:rv1126-camera ?= "cpu"

# Where U-Boot reads the kernel (the boot script's `load` interface and
# device number) and the Linux names of the rootfs slots and the data
# partition (boards/<board>.toml [partitions]). Partition numbers are the
# same on every board: 1 boot, 2 rootfs A, 3 rootfs B, 4 data.
RETAIL_CAMERA_UBOOT_DEV ??= "mmc 0"
RETAIL_CAMERA_UBOOT_DEV:qemuarm64 ?= "virtio 0"
RETAIL_CAMERA_ROOT_A ??= "/dev/mmcblk0p2"
RETAIL_CAMERA_ROOT_B ??= "/dev/mmcblk0p3"
RETAIL_CAMERA_DATA ??= "/dev/mmcblk0p4"
RETAIL_CAMERA_ROOT_A:qemuarm64 ?= "/dev/vda2"
RETAIL_CAMERA_ROOT_B:qemuarm64 ?= "/dev/vda3"
RETAIL_CAMERA_DATA:qemuarm64 ?= "/dev/vda4"
# RV1106 boards boot from SPI NAND (MTD): no wic image, no ext4 load in
# U-Boot; the vendor BSP provides the flash layout (docs/yocto.md).
RETAIL_CAMERA_ROOT_A:rv1106-camera ?= "/dev/mtdblock3"
RETAIL_CAMERA_ROOT_B:rv1106-camera ?= "/dev/mtdblock4"
RETAIL_CAMERA_DATA:rv1106-camera ?= "/dev/mtdblock5"

# Where the boot script keeps the redundant U-Boot environment itself:
# "<interface> <device> <offset A> <offset B> <size>" in bytes, the
# [uboot_env] of boards/<board>.toml. For boards whose U-Boot keeps its own
# environment elsewhere: QEMU virt's U-Boot has it in pflash, one copy that
# Linux cannot reach, and its saveenv fails on QEMU (tests/system/README.md).
# Empty: U-Boot's own environment and saveenv (uboot-env.cfg puts it at the
# same offsets).
RETAIL_CAMERA_SCRIPT_ENV ??= ""
RETAIL_CAMERA_SCRIPT_ENV:qemuarm64 ?= "virtio 0 0x100000 0x104000 0x4000"
# An initramfs the boot script loads from the slot's /boot with the kernel
# (empty: none; the layer's kernels have the root device built in).
RETAIL_CAMERA_INITRD ??= ""

# Disk image (files/wic/; boards with their loader on the disk have their own).
RETAIL_CAMERA_WKS ??= "retail-camera.wks.in"
RETAIL_CAMERA_WKS:rock-5b ?= "retail-camera-rockchip.wks.in"
RETAIL_CAMERA_WKS:rock-3a ?= "retail-camera-rockchip.wks.in"
# Slot sizes (both rootfs slots the same size: ota writes whole slots).
RETAIL_CAMERA_ROOTFS_SIZE ??= "1024M"
RETAIL_CAMERA_DATA_SIZE ??= "512M"

RETAIL_CAMERA_BOARD_FILES = "${RETAIL_CAMERA_LAYERDIR}/files/boards/${RETAIL_CAMERA_BOARD}"

# Recipes that only make sense for a camera board skip other machines;
# bbappends to shared recipes (u-boot) set this to "0".
RETAIL_CAMERA_BOARD_REQUIRED ??= "1"

python () {
    if d.getVar('RETAIL_CAMERA_BOARD_REQUIRED') == '1' and not d.getVar('RETAIL_CAMERA_BOARD'):
        raise bb.parse.SkipRecipe("no RETAIL_CAMERA_BOARD for MACHINE %s (see classes/retail_camera_board.bbclass)" % d.getVar('MACHINE'))
}
