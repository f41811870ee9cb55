SUMMARY = "Mounts the retail camera's data partition at /data"
DESCRIPTION = "A systemd mount unit for the data partition (outbox, \
configuration, OTA journal, app and model slots), the only writable \
storage next to the read-only rootfs, and systemd's hardware watchdog \
setting."
HOMEPAGE = "https://example.invalid/retail-camera"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

SRC_URI = "file://data.mount file://camera-watchdog.conf"
S = "${UNPACKDIR}"

inherit systemd retail_camera_board

# The device differs per board.
PACKAGE_ARCH = "${MACHINE_ARCH}"

do_install() {
    install -d ${D}/data
    install -D -m 0644 ${UNPACKDIR}/data.mount ${D}${systemd_system_unitdir}/data.mount
    sed -i -e 's,@DATA@,${RETAIL_CAMERA_DATA},g' ${D}${systemd_system_unitdir}/data.mount
    # systemd drives the hardware watchdog.
    install -D -m 0644 ${UNPACKDIR}/camera-watchdog.conf ${D}${systemd_unitdir}/system.conf.d/camera-watchdog.conf
}

SYSTEMD_SERVICE:${PN} = "data.mount"
FILES:${PN} += "/data ${systemd_unitdir}/system.conf.d/camera-watchdog.conf"
