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
TIMEOUT=${SYSTEM_TEST_TIMEOUT:-2700}
RUN=${SYSTEM_TEST_RUN:-$SYSTEM_TEST_CACHE/run}
LOG=${SYSTEM_TEST_LOG:-$RUN/serial.log}
PORT=${SYSTEM_TEST_PORT:-$((20000 + $$ % 20000))}
TLS_PORT=$((PORT + 1))
# make-factory.sh's output: the host's client certificate.
FACTORY=${SYSTEM_TEST_FACTORY:-$SYSTEM_TEST_CACHE/factory}
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

# The console appends: QEMU is started again after each power cut.
qemu=("$QEMU_SYSTEM" -M virt -cpu "$CPU" -smp "$SMP" -m "$MEM"
      -bios "$UBOOT_BIN" ${QEMU_DATADIR:+-L "$QEMU_DATADIR"}
      -display none -monitor none
      -chardev "file,id=console,path=$LOG,append=on" -serial chardev:console
      -drive "if=none,id=disk,$drive" -device virtio-blk-pci,drive=disk
      -netdev "user,id=net,restrict=on,hostfwd=tcp:127.0.0.1:$PORT-:1883,hostfwd=tcp:127.0.0.1:$TLS_PORT-:8883"
      -device virtio-net-pci,netdev=net,romfile=
      -device i6300esb)
# Power cuts: QEMU killed (SIGKILL, nothing flushed by the guest) when the
# console shows each pattern in turn, then started again on the same disk.
# Default: during the first boot's provisioning and slot set-up (when
# systemd starts ota-select.service). (The cut during the app install is
# the guest's own, timed on the agent's writes: guest/run.)
IFS=';' read -ra cuts <<< "${SYSTEM_TEST_POWER_CUTS-Starting .*ota-select}"
cut_i=0
cut_seen=0
log "${qemu[*]}"
t0=$(date +%s.%N)
: > "$RUN/qemu.out"
start_qemu() {
    "${qemu[@]}" >> "$RUN/qemu.out" 2>&1 &
    QPID=$!
}
start_qemu
power_cut() {
    [ "$cut_i" -lt "${#cuts[@]}" ] || return 0
    local pat=${cuts[cut_i]} n
    n=$(grep -Eac -- "$pat" "$LOG" || true)
    [ "$n" -gt "$cut_seen" ] || return 0
    kill -KILL "$QPID" 2>/dev/null || true
    wait "$QPID" 2>/dev/null || true
    printf '%7.1fs  POWER CUT %d: QEMU killed at /%s/\n' "$(echo "$(date +%s.%N) - $t0" | bc)" $((cut_i + 1)) "$pat" >&2
    echo "CAMTEST-HOST: power cut $((cut_i + 1)) at /$pat/" >> "$LOG"
    cut_i=$((cut_i + 1))
    # The next pattern counts only what comes after this cut.
    if [ "$cut_i" -lt "${#cuts[@]}" ]; then cut_seen=$(grep -Eac -- "${cuts[cut_i]}" "$LOG" || true); fi
    sleep 1
    start_qemu
}
SUBPID=
cleanup() {
    [ -z "$SUBPID" ] || kill "$SUBPID" 2>/dev/null || true
    kill "$QPID" 2>/dev/null || true; wait "$QPID" 2>/dev/null || true
}
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

# The host's side of stage 1: from the start of stage 1 (the broker is up),
# subscribe to the camera's topics through hostfwd with the host's own
# client certificate (mutual TLS, the broker's name checked: 127.0.0.1 is
# in its certificate); once the guest asks and bins, health and status
# have arrived, say so on camtest/host-saw. (Subscribing only when asked
# waited most of a bin period for the next bin.)
TLS=(-h 127.0.0.1 -p "$TLS_PORT" --cafile "$FACTORY/host/ca.pem"
     --cert "$FACTORY/host/host.pem" --key "$FACTORY/host/host.key")
HOSTLOG=$RUN/host-mqtt.log
host_state=idle
host_tries=0
host_step() {
    case $host_state in
    idle)
        grep -aq 'CAMTEST: stage 1' "$LOG" || return 0
        [ -f "$FACTORY/host/host.pem" ] || { log "no $FACTORY/host/host.pem: cannot read the camera"; host_state=done; return 0; }
        : > "$HOSTLOG"
        timeout 900 mosquitto_sub "${TLS[@]}" -i camtest-host -t 'stores/+/cameras/+/#' -v >> "$HOSTLOG" 2>&1 &
        SUBPID=$!
        host_tries=$((host_tries + 1))
        host_state=reading
        log "reading the camera's topics through 127.0.0.1:$TLS_PORT (TLS)"
        ;;
    reading)
        local bins health status
        bins=$(grep -a '/bins {' "$HOSTLOG" | grep -c '"type":"bin"' || true)
        health=$(grep -ac '/health {' "$HOSTLOG" || true)
        status=$(grep -a '/status {' "$HOSTLOG" | grep -c '"state":"online"' || true)
        if [ "$bins" -gt 0 ] && [ "$health" -gt 0 ] && [ "$status" -gt 0 ] \
            && grep -aq 'CAMTEST: waiting for the host' "$LOG"; then
            if mosquitto_pub "${TLS[@]}" -i camtest-host-pub -q 1 -t camtest/host-saw \
                -m "bins=$bins health=$health status=$status" 2>>"$RUN/qemu.out"; then
                log "the host read bins=$bins health=$health status=$status through hostfwd"
                kill "$SUBPID" 2>/dev/null || true; SUBPID=
                host_state=done
            fi
        elif ! kill -0 "$SUBPID" 2>/dev/null; then
            log "the host's subscriber ended: $(tail -n 3 "$HOSTLOG" | tr '\n' ' ')"
            # Again, a few times: the broker may not have been listening yet.
            if [ "$host_tries" -lt 5 ]; then host_state=idle; sleep 5; else host_state=done; fi
        fi
        ;;
    esac
}

verdict=
deadline=$(( $(date +%s) + TIMEOUT ))
while :; do
    report
    power_cut
    if ! kill -0 "$QPID" 2>/dev/null; then
        break
    fi
    host_step
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
