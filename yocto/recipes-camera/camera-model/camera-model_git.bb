SUMMARY = "The factory model package: what model slot A holds on a new camera"
DESCRIPTION = "FastestDet's weights, fetched from the manifest's pinned URL \
and checked against its sha256, packed with the manifest as a model \
package (camera-app/src/model_package.rs). ota-slots copies it into model \
slot A at first boot; model updates replace it through OTA."

require recipes-camera/common/retail-camera-src.inc

# The weights are third-party (https://github.com/dog-qiuqiu/FastestDet);
# the package's manifest carries their notice.
LICENSE:${PN} = "BSD-3-Clause"

MODEL_NAME = "fastestdet"
MODEL_FILE = "FastestDet.onnx"
# The same URL and sha256 as models/fastestdet/model.toml (checked below).
SRC_URI += "https://raw.githubusercontent.com/dog-qiuqiu/FastestDet/50473cd155cb088aa4a99e64ff6a4b3c24fa07e1/example/onnx-runtime/FastestDet.onnx;name=weights;unpack=0;downloadfilename=${BPN}-${PV}-${MODEL_FILE}"
SRC_URI[weights.sha256sum] = "31cb14c017fce347cb4c846ec62fdf00d76bb3beecdf4be21e7116ac67feb880"

inherit allarch

do_configure[noexec] = "1"

do_compile() {
    manifest=${S}/models/${MODEL_NAME}/model.toml
    grep -q '^sha256 = "${SRC_URI[weights.sha256sum]}"' $manifest || \
        bbfatal "$manifest pins other weights than this recipe: update SRC_URI"
    rm -rf ${B}/pkg && mkdir -p ${B}/pkg/${MODEL_NAME}
    install -m 0644 $manifest ${B}/pkg/${MODEL_NAME}/model.toml
    install -m 0644 ${UNPACKDIR}/${BPN}-${PV}-${MODEL_FILE} ${B}/pkg/${MODEL_NAME}/${MODEL_FILE}
    # Reproducible: fixed order, owner and time.
    tar --format=ustar --sort=name --owner=0 --group=0 --numeric-owner \
        --mtime=@${SOURCE_DATE_EPOCH} -cf ${B}/model.pkg -C ${B}/pkg ${MODEL_NAME}
}

do_install() {
    install -D -m 0644 ${B}/model.pkg ${D}${datadir}/camera-app/factory/model.pkg
}

FILES:${PN} += "${datadir}/camera-app/factory/model.pkg"
