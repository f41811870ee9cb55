SUMMARY = "Signed A/B updates for the retail camera: agent and boot-contract tools"
DESCRIPTION = "ota verifies signed bundles while they stream into the \
inactive slots, keeps the U-Boot boot-count contract for the app and \
model slots (ota select) and runs the MQTT update agent that commits \
only a healthy camera. The vendor's tools (ota-vendor) are not part of it."

require recipes-camera/common/retail-camera-src.inc
require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates systemd retail_camera_board

# agent.toml is per board (files/<board>/agent.toml, generated from
# boards/<board>.toml by yocto/scripts/check-boards.py --write).
SRC_URI += "file://ota-agent.service \
            file://ota-select.service \
            file://camera-provision.service \
            file://ota-slots \
            file://${RETAIL_CAMERA_BOARD}/agent.toml \
            "

# Only the camera's binary. The vendor's tools (keys, roots, signing,
# rollouts: the ota-vendor package of the same workspace) never ship on a
# camera.
CARGO_BUILD_FLAGS += "-p ota --bin ota"

# The vendor's factory public keys (ota-vendor keygen: the .pub files, one
# per line): the camera installs only factory bundles they signed. A
# vendor setting, like the signing keys it pairs with.
RETAIL_CAMERA_FACTORY_KEYS ??= ""

do_install:append() {
    # cargo_do_install installs every executable it finds in the target
    # directory, whatever built it (externalsrc keeps one between builds).
    if [ -e ${D}${bindir}/ota-vendor ]; then
        bbfatal "ota-vendor is the vendor's tool and must not be installed on a camera"
    fi
    install -D -m 0644 ${UNPACKDIR}/${RETAIL_CAMERA_BOARD}/agent.toml ${D}${sysconfdir}/ota/agent.toml
    install -D -m 0644 ${UNPACKDIR}/ota-agent.service ${D}${systemd_system_unitdir}/ota-agent.service
    install -D -m 0644 ${UNPACKDIR}/ota-select.service ${D}${systemd_system_unitdir}/ota-select.service
    install -D -m 0755 ${UNPACKDIR}/ota-slots ${D}${libexecdir}/ota-slots
    sed -i -e 's,@LIBEXECDIR@,${libexecdir},g' ${D}${systemd_system_unitdir}/ota-select.service
    install -D -m 0644 ${UNPACKDIR}/camera-provision.service ${D}${systemd_system_unitdir}/camera-provision.service
    if [ -z "${RETAIL_CAMERA_FACTORY_KEYS}" ]; then
        bbfatal "set RETAIL_CAMERA_FACTORY_KEYS to the vendor's factory public keys file: without it no camera of this image can be provisioned"
    fi
    install -D -m 0644 ${RETAIL_CAMERA_FACTORY_KEYS} ${D}${sysconfdir}/ota/factory-keys
}

SYSTEMD_SERVICE:${PN} = "camera-provision.service ota-select.service ota-agent.service"

FILES:${PN} += "${libexecdir}/ota-slots"
# fallocate, mountpoint, mount (squashfs app slots).
RDEPENDS:${PN} += "util-linux-fallocate util-linux-mount util-linux-mountpoint"

CONFFILES:${PN} = "${sysconfdir}/ota/agent.toml"
