#!/usr/bin/env bash
# Boot the system-test image in QEMU (TCG) and wait for the guest's verdict.
#
#   tests/system/boot.sh [IMAGE]
#
# IMAGE defaults to $SYSTEM_TEST_CACHE/out/disk.img (build-image.sh). The
# image stays untouched: QEMU writes to a qcow2 overlay next to the log
# (SYSTEM_TEST_IN_PLACE=1 boots the image itself).
#
# Machine: -M virt, Debian's U-Boot (u-boot-qemu, -bios), virtio disk and
# network (user mode, restrict=on, the guest's broker forwarded to
# 127.0.0.1:$SYSTEM_TEST_PORT), i6300esb watchdog. Serial console to
# $SYSTEM_TEST_LOG (default $SYSTEM_TEST_CACHE/run/serial.log).
#
# The guest (guest/run, camtest.service) prints "CAMTEST: ..." lines and
# finally "CAMTEST-DONE: PASS|FAIL", then powers off. Exit status: 0 on
# PASS, 1 on FAIL, 2 on timeout (SYSTEM_TEST_TIMEOUT seconds, default 1200)
# or when QEMU ends without a verdict.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

IMAGE=${1:-$SYSTEM_TEST_CACHE/out/disk.img}
TIMEOUT=${SYSTEM_TEST_TIMEOUT:-1200}
RUN=${SYSTEM_TEST_RUN:-$SYSTEM_TEST_CACHE/run}
LOG=${SYSTEM_TEST_LOG:-$RUN/serial.log}
PORT=${SYSTEM_TEST_PORT:-$((20000 + $$ % 20000))}
CPU=${SYSTEM_TEST_CPU:-cortex-a53}
SMP=${SYSTEM_TEST_SMP:-2}
MEM=${SYSTEM_TEST_MEM:-1024}

[ -f "$IMAGE" ] || die "no image $IMAGE (tests/system/build-image.sh)"
[ -f "$UBOOT_BIN" ] || apt_need u-boot-qemu
find_qemu_system
command -v mosquitto_pub >/dev/null || apt_need mosquitto-clients

mkdir -p "$RUN" "$(dirname "$LOG")"
if [ "${SYSTEM_TEST_IN_PLACE:-0}" = 1 ]; then
    drive="file=$IMAGE,format=raw"
else
    command -v qemu-img >/dev/null || apt_need qemu-utils
    rm -f "$RUN/overlay.qcow2"
    qemu-img create -q -f qcow2 -b "$(realpath "$IMAGE")" -F raw "$RUN/overlay.qcow2"
    drive="file=$RUN/overlay.qcow2,format=qcow2"
fi
: > "$LOG"

qemu=("$QEMU_SYSTEM" -M virt -cpu "$CPU" -smp "$SMP" -m "$MEM"
      -bios "$UBOOT_BIN" ${QEMU_DATADIR:+-L "$QEMU_DATADIR"}
      -display none -monitor none -serial "file:$LOG"
      -drive "if=none,id=disk,$drive" -device virtio-blk-pci,drive=disk
      -netdev "user,id=net,restrict=on,hostfwd=tcp:127.0.0.1:$PORT-:1883"
      -device virtio-net-pci,netdev=net,romfile=
      -device i6300esb)
log "${qemu[*]}"
t0=$(date +%s.%N)
"${qemu[@]}" > "$RUN/qemu.out" 2>&1 &
QPID=$!
cleanup() { kill "$QPID" 2>/dev/null || true; wait "$QPID" 2>/dev/null || true; }
trap cleanup EXIT

# Milestones, reported with the seconds since QEMU started (each once per
# occurrence count, so reboots show up again).
declare -A seen=()
milestones=(
    'U-Boot 2023'                       'U-Boot starts'
    'ota: environment copy'             'boot script read the disk environment'
    'ota: rootfs . on trial'            'boot script: trial boot'
    'ota: rootfs . out of tries'        'boot script: out of tries, fallback'
    'ota: environment written'          'boot script wrote the disk environment'
    'ota: cannot boot'                  'boot script: no kernel in slot, reset'
    'Starting kernel'                   'U-Boot starts the kernel'
    'Run /init as init process'         'initramfs'
    'Reached target .*Multi-User System' 'multi-user.target'
    'CAMTEST: boot:'                    'test driver: boot finished'
    'CAMTEST: stage'                    'test driver stage'
)
report() {
    local i pat name n now
    now=$(date +%s.%N)
    for ((i = 0; i < ${#milestones[@]}; i += 2)); do
        pat=${milestones[i]}; name=${milestones[i + 1]}
        n=$(grep -Eac -- "$pat" "$LOG" || true)
        while [ "${seen[$pat]:-0}" -lt "$n" ]; do
            seen[$pat]=$(( ${seen[$pat]:-0} + 1 ))
            printf '%7.1fs  %s (%s)\n' "$(echo "$now - $t0" | bc)" "$name" \
                "$(grep -Ea -- "$pat" "$LOG" | sed -n "${seen[$pat]}p" | tr -d '\r' | cut -c1-100)" >&2
        done
    done
}

published=0
verdict=
deadline=$(( $(date +%s) + TIMEOUT ))
while :; do
    report
    if ! kill -0 "$QPID" 2>/dev/null; then
        break
    fi
    if [ $published = 0 ] && grep -aq 'CAMTEST: waiting for the host' "$LOG"; then
        # Host -> guest broker through hostfwd (retained: the guest's
        # subscriber may start after this).
        if mosquitto_pub -h 127.0.0.1 -p "$PORT" -t camtest/ping -m "from host" -r 2>>"$RUN/qemu.out"; then
            published=1
            log "published camtest/ping to 127.0.0.1:$PORT"
        fi
    fi
    if grep -aq 'CAMTEST-DONE:' "$LOG"; then
        verdict=$(grep -a 'CAMTEST-DONE:' "$LOG" | tail -n1 | tr -d '\r' | sed 's/.*CAMTEST-DONE: *//')
        # Let the guest power off.
        for _ in $(seq 60); do kill -0 "$QPID" 2>/dev/null || break; sleep 1; done
        break
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        log "timeout after ${TIMEOUT}s"
        break
    fi
    sleep 1
done
report
elapsed=$(echo "$(date +%s.%N) - $t0" | bc)
grep -a 'CAMTEST' "$LOG" | tr -d '\r' >&2 || true
log "serial log: $LOG; QEMU output: $RUN/qemu.out; ${elapsed%.*}s"
case "$verdict" in
    PASS*) log "PASS"; exit 0 ;;
    FAIL*) log "FAIL"; exit 1 ;;
    *)     log "no verdict"; exit 2 ;;
esac
