SUMMARY = "Retail camera analytics: frames in, people out"
DESCRIPTION = "camera-app captures frames (V4L2), detects and tracks people, \
turns tracks into retail figures and publishes them over MQTT through a \
durable outbox on /data."

require recipes-camera/common/retail-camera-src.inc
require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates systemd retail_camera_board

SRC_URI += "file://camera-app.service \
            file://camera-health.service \
            file://camera-health \
            file://camera-app-launch \
            file://camera.toml \
            file://analytics.toml \
            "

# One workspace member, without the embedded MQTT broker (demo and tests).
CARGO_BUILD_FLAGS += "-p camera-app --no-default-features"

# Inference backend by board (CAMERA_APP_INFERENCE in
# classes/retail_camera_board.bbclass): "rknn" on the Rockchip boards
# (the runtime library is loaded at run time and comes from the vendor
# layer: set CAMERA_APP_NPU_RUNTIME to its package), "cpu" (rten) on
# qemu-arm64.
CAMERA_APP_NPU_RUNTIME ??= ""
PACKAGECONFIG ??= "${CAMERA_APP_INFERENCE}"
PACKAGECONFIG[rknn] = "--features rknn,,,,${CAMERA_APP_NPU_RUNTIME}"
PACKAGECONFIG[cpu] = "--features cpu"

do_install:append() {
    # The camera's configuration: identity and broker from provisioning,
    # bins into the outbox on /data; seeded to /data/camera at first start.
    install -D -m 0644 ${UNPACKDIR}/camera.toml ${D}${sysconfdir}/camera/config.toml
    install -D -m 0644 ${UNPACKDIR}/analytics.toml ${D}${sysconfdir}/camera/analytics.toml
    # The board decides the inference backend (its NPU), the camera device
    # and the GPIO lines (boards/*.toml, built into camera-app).
    sed -i -e 's,^# board = "[^"]*",board = "${RETAIL_CAMERA_BOARD}",' ${D}${sysconfdir}/camera/config.toml
    grep -q '^board = "${RETAIL_CAMERA_BOARD}"' ${D}${sysconfdir}/camera/config.toml || \
        bbfatal "camera.toml has no '# board = ' line to set the board in"

    install -D -m 0644 ${UNPACKDIR}/camera-app.service ${D}${systemd_system_unitdir}/camera-app.service
    install -D -m 0644 ${UNPACKDIR}/camera-health.service ${D}${systemd_system_unitdir}/camera-health.service
    install -D -m 0755 ${UNPACKDIR}/camera-health ${D}${libexecdir}/camera-health
    install -D -m 0755 ${UNPACKDIR}/camera-app-launch ${D}${libexecdir}/camera-app-launch
    sed -i -e 's,@BINDIR@,${bindir},g' ${D}${libexecdir}/camera-app-launch
    sed -i -e 's,@LIBEXECDIR@,${libexecdir},g' -e 's,@BINDIR@,${bindir},g' \
        ${D}${systemd_system_unitdir}/camera-app.service \
        ${D}${systemd_system_unitdir}/camera-health.service
}

SYSTEMD_SERVICE:${PN} = "camera-app.service camera-health.service"

FILES:${PN} += "${libexecdir}/camera-health ${libexecdir}/camera-app-launch"
CONFFILES:${PN} = "${sysconfdir}/camera/config.toml ${sysconfdir}/camera/analytics.toml"
# ota-select.service chooses the app and model slots before the app starts.
# ota: the slots (ota-select.service); camera-model: the factory model
# package that seeds model slot A.
RDEPENDS:${PN} = "camera-model ota"
