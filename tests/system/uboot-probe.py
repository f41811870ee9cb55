#!/usr/bin/env python3
"""Ask Debian's qemu_arm64 U-Boot a few questions (NOTES.md, question 1).

    tests/system/uboot-probe.py QEMU_SYSTEM_AARCH64 [QEMU_DATADIR]

Boots U-Boot alone (-bios, no disk) with a 64 MiB file as the second pflash
bank, stops autoboot, runs the commands below, and then reads the flash
file: where `saveenv` wrote, and in which format. Prints the console.
"""
import os
import struct
import subprocess
import sys
import tempfile
import time
import zlib

UBOOT = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"
COMMANDS = [
    "printenv kernel_addr_r ramdisk_addr_r fdtcontroladdr scriptaddr",
    "setenv camtest_probe 42",
    "saveenv",
    # crc32's third argument: an address (no '*', no variable: without
    # CONFIG_CRC32_VERIFY it is always an address); byte order there
    "mw.b 0x50000000 0x61 3",
    "crc32 0x50000000 3 probecrc",
    "printenv probecrc",
    "crc32 0x50000000 3 0x50000100",
    "md.b 0x50000100 4",
    # the boot script's byte-reversed compare, in a hush for loop
    "setexpr ota_c 0x50000100; setexpr ota_x 0x50000300",
    "mw.b 0x50000300 0x2d; mw.b 0x50000301 0x73; mw.b 0x50000302 0x07; mw.b 0x50000303 0xf0",
    "setenv ok 1; for ota_i in 0 1 2 3; do setexpr ota_s ${ota_x} + ${ota_i}; setexpr ota_t ${ota_c} + 3; setexpr ota_t ${ota_t} - ${ota_i}; if itest.b *${ota_s} -ne *${ota_t}; then setenv ok 0; fi; done; echo crc-compare-ok=${ok}",
    "mw.b 0x50000303 0xf1",
    "setenv ok 1; for ota_i in 0 1 2 3; do setexpr ota_s ${ota_x} + ${ota_i}; setexpr ota_t ${ota_c} + 3; setexpr ota_t ${ota_t} - ${ota_i}; if itest.b *${ota_s} -ne *${ota_t}; then setenv ok 0; fi; done; echo crc-compare-bad=${ok}",
    "for ota_i in 0 1 2 3; do setexpr ota_s ${ota_c} + 3; setexpr ota_s ${ota_s} - ${ota_i}; setexpr ota_t 0x50000400 + ${ota_i}; cp.b ${ota_s} ${ota_t} 1; done; md.b 0x50000400 4",
    # env export -b of a list holding a missing name, zero-padded to -s
    "mw.b 0x50001000 0xee 0x40",
    "env export -b -s 0x30 0x50001000 camtest_probe no_such_var",
    "md.b 0x50001000 0x40",
    "env import -b 0x50001000 0x30",
    # more than CONFIG_SYS_MAXARGS=16 words; filesize after export -b
    "env export -b -s 0x30 0x50001000 a b c d e f g h i j k",
    "setenv a1 x; setenv a2 yy; mw.b 0x50002000 0 0x40",
    "env export -b -s 0x30 0x50002000 a1; printenv filesize",
    "env export -b 0x50002000 a1; printenv filesize",
    "setexpr probe2 0x50002000 + ${filesize}; setexpr probe2 ${probe2} - 1; env export -b ${probe2} a2; printenv filesize; md.b 0x50002000 0x10",
    "env import -b 0x50002000 0x30; printenv a1 a2",
    # hush locals (not in the environment) and an env round trip with import -d
    "ota_x=5; echo local=${ota_x}; printenv ota_x",
    "setenv k1 v1; mw.b 0x50003000 0 0x100; env export -b 0x50003000",
    "mw.b 0x50004000 0 0x40; mw.b 0x50004000 0x7a; mw.b 0x50004001 0x3d; mw.b 0x50004002 0x31",
    "env import -d -b 0x50004000 0x40; printenv; echo local-after=${ota_x}",
    "mw.b 0x50005000 0 0x40; env export -b -s 0x40 0x50005000; md.b 0x50005000 0x10",
    "env import -d -b 0x50003000 0x40000; printenv k1 z kernel_addr_r",
    # hush locals inside an if block, across import -d
    "setenv kk 0x123; if true; then otq_a=${kk}; echo in-if=${otq_a}; env import -d -b 0x50004000 0x40; echo after-import=${otq_a}; fi; echo outside=${otq_a}",
    "env import -d -b 0x50003000 0x40000; printenv kernel_addr_r",
    "if true; then otq_b=7; echo b=${otq_b}; fi",
    "setenv tscript 'if true; then otr_a=${kernel_addr_r}; echo r=${otr_a}; fi; echo r2=${otr_a}'; run tscript",
    "setenv tscript2 'otr_b=${kernel_addr_r}; echo rb=${otr_b}'; run tscript2",
    # hush: itest on hex strings, && in an if, setexpr.b
    "if itest.b ff -gt 1; then echo itest-hex-ok; fi",
    "if itest.b 0 -eq 0 && itest.b 1 -gt 0; then echo andand-ok; fi",
    "setexpr.b probeb *0x50000000; printenv probeb",
    "setexpr probenf ff + 1; printenv probenf",
    "mw.b 0x50000200 ${probenf}; md.b 0x50000200 1",
    "virtio scan; virtio info",
]


def main():
    qemu = sys.argv[1]
    datadir = sys.argv[2] if len(sys.argv) > 2 else None
    with tempfile.TemporaryDirectory() as tmp:
        flash = os.path.join(tmp, "flash1.img")
        with open(flash, "wb") as f:
            f.truncate(64 << 20)
        cmd = [qemu, "-M", "virt", "-cpu", "cortex-a53", "-m", "512",
               "-bios", UBOOT, "-display", "none", "-monitor", "none",
               "-serial", "stdio", "-nodefaults",
               "-drive", f"if=pflash,unit=1,format=raw,file={flash}"]
        if datadir:
            cmd += ["-L", datadir]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        os.set_blocking(p.stdout.fileno(), False)
        out = b""

        def read_until(token, timeout):
            nonlocal out
            end = time.time() + timeout
            while time.time() < end:
                chunk = p.stdout.read()
                if chunk:
                    out += chunk
                    if token in out:
                        return True
                time.sleep(0.05)
            return False

        if not read_until(b"Hit any key", 60):
            print(out.decode(errors="replace"))
            sys.exit("no autoboot prompt")
        p.stdin.write(b"\n")
        p.stdin.flush()
        read_until(b"=> ", 10)
        for c in COMMANDS:
            prompts = out.count(b"=> ")
            p.stdin.write(c.encode() + b"\n")
            p.stdin.flush()
            end = time.time() + 30
            while out.count(b"=> ") <= prompts and time.time() < end:
                read_until(b"=> ", 1)
        p.kill()
        p.wait()
        print(out.decode(errors="replace"))
        with open(flash, "rb") as f:
            data = f.read()
        nz = [i for i in range(0, len(data), 4096) if any(data[i:i + 4096])]
        print("--- flash1.img: non-zero 4 KiB blocks at", [hex(i) for i in nz[:16]])
        env = data[:0x40000]
        stored = struct.unpack("<I", env[:4])[0]
        print("non-redundant CRC (bytes 4..0x40000) ok:", stored == zlib.crc32(env[4:]))
        print("redundant CRC (bytes 5..0x40000) ok:", stored == zlib.crc32(env[5:]))
        print("first bytes:", env[:32].hex())


if __name__ == "__main__":
    main()
