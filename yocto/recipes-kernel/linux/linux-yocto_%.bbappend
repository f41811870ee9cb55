# qemuarm64's camera is the kernel's vivid test driver
# (boards/qemu-arm64.toml [capture] device = /dev/video0): built as a
# module and loaded at boot, so camera-app captures through real V4L2 in
# QEMU as it does on a board (tests/system boots Debian's kernel, which
# ships vivid, the same way).
FILESEXTRAPATHS:prepend := "${THISDIR}/files:"
SRC_URI:append:qemuarm64 = " file://vivid.cfg"
KERNEL_MODULE_AUTOLOAD:append:qemuarm64 = " vivid"
