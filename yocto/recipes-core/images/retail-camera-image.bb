SUMMARY = "Retail camera firmware image (systemd, read-only A/B rootfs, /data)"
DESCRIPTION = "camera-app and the ota agent on a read-only rootfs; A/B \
rootfs slots chosen by the U-Boot boot-count script; writable state on \
the data partition mounted at /data."
LICENSE = "MIT"

inherit core-image retail_camera_board

IMAGE_FEATURES += "read-only-rootfs"
IMAGE_LINGUAS = ""

IMAGE_INSTALL = " \
    packagegroup-core-boot \
    camera-app \
    ota \
    retail-camera-data \
    libubootenv-bin \
    kernel-image \
    ${@'kernel-devicetree' if d.getVar('KERNEL_DEVICETREE') else ''} \
    ${CORE_IMAGE_EXTRA_INSTALL} \
"
# qemuarm64's camera: the vivid module (linux-yocto bbappend)
IMAGE_INSTALL:append:qemuarm64 = " kernel-module-vivid"

IMAGE_ROOTFS_MAXSIZE ?= "1048576"

# Disk image: wks files live in files/wic/ (the wrynose search path).
WKS_FILE = "${RETAIL_CAMERA_WKS}"
WICVARS:append = " RETAIL_CAMERA_ROOTFS_SIZE RETAIL_CAMERA_DATA_SIZE"
# ext4: the update payload for a rootfs slot; wic: the factory image.
# RV1106 boots from SPI NAND: its flash image comes from the vendor BSP.
IMAGE_FSTYPES = "ext4 wic wic.bmap"
IMAGE_FSTYPES:rv1106-camera = "ext4"
# (wic depends on the do_deploy of WKS_FILE_DEPENDS: boot.scr)
WKS_FILE_DEPENDS:append = " retail-camera-bootscript"
IMAGE_BOOT_FILES = "boot.scr"
