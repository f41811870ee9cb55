# The retail camera's U-Boot environment: fw_env.config for Linux (where
# ota and fw_printenv find the two copies) and, where the layer has one,
# a config fragment that puts U-Boot's redundant environment at the same
# offsets (files/boards/<board>/, checked against boards/<board>.toml).
RETAIL_CAMERA_BOARD_REQUIRED = "0"
inherit retail_camera_board

FILESEXTRAPATHS:prepend := "${RETAIL_CAMERA_BOARD_FILES}:"

SRC_URI:append = " ${@'file://fw_env.config' if d.getVar('RETAIL_CAMERA_BOARD') else ''}"
SRC_URI:append:rock-5b = " file://uboot-env.cfg"
SRC_URI:append:rock-3a = " file://uboot-env.cfg"
