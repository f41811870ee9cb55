#!/usr/bin/env bash
# What the vendor and the store chain make on their own machines for the
# system test's camera, with the project's own tools:
#
#   tests/system/make-factory.sh HOST_BIN_DIR ARM_BIN_DIR OUT_DIR
#
# HOST_BIN_DIR: x86-64 ota-vendor and scenegen. ARM_BIN_DIR: aarch64
# camera-app (built with the cpu backend: qemu-arm64 has no NPU). OUT_DIR
# (emptied) gets:
#   rootfs/   files the image carries: the vendor's factory public key
#             (/etc/ota/factory-keys, RETAIL_CAMERA_FACTORY_KEYS), the
#             factory model package (as the camera-model recipe packs it),
#             the test broker's certificates
#   data/     what the factory station writes to /data after flashing: the
#             camera's factory bundle (/data/provision/bundle.json); and
#             the test's own material under /data/camtest: the installer's
#             configuration, a generated door scene, signed update bundles
#             and announcements (served in the VM, published by the driver)
#   host/     the host's client certificate, to read the camera's topics
#             through hostfwd; ota-vendor, which build-image.sh signs the
#             rootfs update with
#   secrets/  the vendor's and store chain's keys (never in the image)
#
# Keys and certificates are made afresh each run (openssl, ota-vendor
# keygen): nothing secret is committed or cached.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

[ $# = 3 ] || die "usage: make-factory.sh HOST_BIN_DIR ARM_BIN_DIR OUT_DIR"
HOST_BIN=$1 ARM_BIN=$2 OUT=$3
VENDOR=$HOST_BIN/ota-vendor
SCENEGEN=$HOST_BIN/scenegen
for b in "$VENDOR" "$SCENEGEN" "$ARM_BIN/camera-app"; do
    [ -x "$b" ] || die "no $b (cargo build, and the aarch64 build of camera-app)"
done
SHARED=${CAMERA_SHARED_DIR:-$REPO/../shared}
WEIGHTS=$SHARED/models/fastestdet/FastestDet.onnx
[ -f "$WEIGHTS" ] || die "no $WEIGHTS (the shared test data: ../shared beside the clone, or CAMERA_SHARED_DIR)"
command -v openssl >/dev/null || apt_need openssl
command -v mksquashfs >/dev/null || apt_need squashfs-tools
command -v python3 >/dev/null || apt_need python3
STRIP=aarch64-linux-gnu-strip
command -v $STRIP >/dev/null || apt_need binutils-aarch64-linux-gnu

# The camera's identity, as the factory station gives it.
CAMERA_ID=${SYSTEM_TEST_CAMERA_ID:-cam-qemu-1}
STORE_ID=${SYSTEM_TEST_STORE_ID:-store-qemu}
BOARD=qemu-arm64
# The broker runs in the VM; the camera reaches it as localhost, the host
# through hostfwd on 127.0.0.1 (both in the broker's certificate).
BROKER_HOST=localhost
# Where the VM's bundle server (busybox httpd, guest/run) serves
# /data/camtest/bundles.
BUNDLE_URL=http://127.0.0.1:8080

rm -rf "$OUT"
S=$OUT/secrets R=$OUT/rootfs D=$OUT/data H=$OUT/host
mkdir -p "$S" "$R/etc/ota" "$R/etc/mosquitto/certs" "$R/usr/share/camera-app/factory" \
    "$D/provision" "$D/camtest/bundles" "$D/camtest/tls" "$H"
T0=$(date +%s)

# --- keys: the vendor's factory key, the store chain's root and signers ----
(
    cd "$S"
    for k in factory root1 signer announcer; do "$VENDOR" keygen "$k" >/dev/null; done
    "$VENDOR" root new --key root1.pub --threshold 1 \
        --signer manifest=signer.pub --signer announcement=announcer.pub -o root.json >/dev/null
    "$VENDOR" root sign root.json --key root1.key >/dev/null
)
# The image trusts the vendor's factory key (RETAIL_CAMERA_FACTORY_KEYS).
{ echo "# the vendor's factory public keys (system test, made by make-factory.sh)"; cat "$S/factory.pub"; } \
    > "$R/etc/ota/factory-keys"

# --- PKI: the broker's CA, the broker, the camera, the test's tools -------
pki() { # NAME SUBJECT_CN [SAN]
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$S/$1.key" -subj "/CN=$2" -out "$S/$1.csr" 2>/dev/null
    local ext="$S/$1.ext"
    { echo "basicConstraints=CA:FALSE"; echo "keyUsage=digitalSignature"
      if [ -n "${3:-}" ]; then echo "subjectAltName=$3"; echo "extendedKeyUsage=serverAuth"
      else echo "extendedKeyUsage=clientAuth"; fi; } > "$ext"
    openssl x509 -req -in "$S/$1.csr" -CA "$S/ca.pem" -CAkey "$S/ca.key" -CAcreateserial \
        -days 30 -sha256 -extfile "$ext" -out "$S/$1.pem" 2>/dev/null
}
openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$S/ca.key" -subj "/CN=camtest broker CA" -days 30 -out "$S/ca.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
pki broker "$BROKER_HOST" "DNS:$BROKER_HOST,IP:127.0.0.1"
pki camera "$CAMERA_ID"
pki tools camtest-tools
pki host camtest-host
# The broker in the VM (a store's broker, here beside the camera; its key
# readable by the mosquitto user: a test broker).
install -m 0644 "$S/ca.pem" "$S/broker.pem" "$S/broker.key" "$R/etc/mosquitto/certs/"
# The driver's own tools in the VM and the host: clients like any other.
install -m 0644 "$S/ca.pem" "$S/tools.pem" "$D/camtest/tls/"
install -m 0600 "$S/tools.key" "$D/camtest/tls/"
install -m 0644 "$S/ca.pem" "$S/host.pem" "$H/"
install -m 0600 "$S/host.key" "$H/"
# The vendor's tool, for the rootfs update build-image.sh signs (its
# bundle is the image's own tree).
install -m 0755 "$VENDOR" "$H/ota-vendor"

# --- the factory bundle (ota-vendor provision, as the station does) --------
"$VENDOR" provision --factory-key "$S/factory.key" --camera-id "$CAMERA_ID" \
    --store-id "$STORE_ID" --broker-host "$BROKER_HOST" --broker-port 8883 \
    --ca "$S/ca.pem" --cert "$S/camera.pem" --key "$S/camera.key" \
    --root "$S/root.json" --out "$D/provision/bundle.json" >/dev/null

# --- the factory model package (yocto camera-model recipe's do_compile) ----
model_pkg() { # OUT_FILE MANIFEST
    local p; p=$(mktemp -d)
    mkdir -p "$p/fastestdet"
    install -m 0644 "$2" "$p/fastestdet/model.toml"
    install -m 0644 "$WEIGHTS" "$p/fastestdet/FastestDet.onnx"
    tar --format=ustar --sort=name --owner=0 --group=0 --numeric-owner \
        --mtime=@1767225600 -cf "$1" -C "$p" fastestdet
    rm -rf "$p"
}
manifest=$REPO/models/fastestdet/model.toml
want=$(sed -n 's/^sha256 = "\(.*\)"/\1/p' "$manifest")
[ "$(sha256sum "$WEIGHTS" | cut -d' ' -f1)" = "$want" ] || die "$WEIGHTS is not the weights $manifest pins"
model_pkg "$R/usr/share/camera-app/factory/model.pkg" "$manifest"

# --- updates the store chain rolls out (signed bundles, announcements) -----
W=$OUT/work
mkdir -p "$W/app"
# app 1.1.0: camera-app alone, in a squashfs (what ota-slots mounts).
install -m 0755 "$ARM_BIN/camera-app" "$W/app/camera-app"
$STRIP "$W/app/camera-app"
# Incompressible filler, so that installing the app lasts long enough (a
# few seconds under TCG) for the test's power cut to land in the middle
# of it rather than after it (guest/run, stage 1).
head -c $((40 << 20)) /dev/urandom > "$W/app/filler.bin"
mksquashfs "$W/app" "$W/app.squashfs" -noappend -all-root -quiet >/dev/null
# model 1.2.0: the same weights, repackaged (the version is what shows).
model_pkg "$W/model.pkg" "$manifest"
sign() { # VERSION COUNTER --component FILE
    "$VENDOR" sign --key "$S/signer.key" --version "$1" --counter "$2" --board "$BOARD" \
        --boards-dir "$REPO/boards" "$3" "$4" -o "$D/camtest/bundles/$1.bundle" >/dev/null
}
announce() { # CAMPAIGN VERSION
    "$VENDOR" announce --key "$S/announcer.key" --campaign "$1" \
        --url "$BUNDLE_URL/$2.bundle" --bundle "$D/camtest/bundles/$2.bundle" \
        -o "$D/camtest/announce-$1.json" >/dev/null
}
# app 1.3.0, a release that hangs: under it the camera never delivers a
# frame (it tells vivid to drop every buffer), so camera-app, blocked on
# its capture, stops feeding systemd's watchdog (guest/run, stage 4: it is
# killed, the trial reboots, the boot count ends it).
mkdir -p "$W/hang"
cat > "$W/hang/camera-app" <<'HANG'
#!/bin/sh
v4l2-ctl -d /dev/video0 --set-ctrl percentage_of_dropped_buffers=100 >&2 &&
    echo "camtest app 1.3.0: /dev/video0 now drops every buffer" >&2
exec /usr/bin/camera-app "$@"
HANG
chmod 0755 "$W/hang/camera-app"
mksquashfs "$W/hang" "$W/hang.squashfs" -noappend -all-root -quiet >/dev/null
sign 1.1.0 1 --app "$W/app.squashfs"
announce app-1.1.0 1.1.0
sign 1.2.0 2 --model "$W/model.pkg"
announce model-1.2.0 1.2.0
sign 1.3.0 3 --app "$W/hang.squashfs"
announce app-1.3.0 1.3.0

# --- the installer's door: a generated scene and its lines ---------------
# Two people crossing the door at the same moment, one each way: 110
# frames (inference is ~1.6 s a frame under TCG, so the scene is short).
SCENE=${SYSTEM_TEST_SCENE:-opposite_directions}
"$SCENEGEN" render "$REPO/tests/scenes/$SCENE.toml" --images "$SHARED/images" \
    --out "$W/scene" >/dev/null
mkdir -p "$D/camtest/scene"
cp -r "$W/scene/frames" "$D/camtest/scene/"
cp "$W/scene/truth.json" "$W/scene/analytics.toml" "$D/camtest/scene/"
# What the camera must count at its line: "IN OUT" from the truth.
python3 -c 'import json, sys; c = json.load(open(sys.argv[1]))["counts"]; [(l, n)] = c.items(); print(n["in"], n["out"], l)' \
    "$W/scene/truth.json" > "$D/camtest/scene/expect"
# config/set takes the analytics TOML as JSON.
python3 -c 'import json, sys, tomllib; print(json.dumps(tomllib.load(open(sys.argv[1], "rb"))))' \
    "$W/scene/analytics.toml" > "$D/camtest/scene/analytics.json"
echo "$CAMERA_ID $STORE_ID" > "$D/camtest/identity"
rm -rf "$W"
log "factory material in $OUT ($(( $(date +%s) - T0 ))s): camera $CAMERA_ID, store $STORE_ID; $(du -sh "$D" | cut -f1) for /data"
