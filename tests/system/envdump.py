#!/usr/bin/env python3
"""Decode the two redundant U-Boot environment copies of a raw disk image
the way ota/src/env.rs does (CRC32 LE over bytes 5..size, flags byte at 4).

    tests/system/envdump.py IMAGE [OFFSET_A OFFSET_B SIZE]

Defaults: boards/qemu-arm64.toml [uboot_env] (0x100000, 0x104000, 0x4000).
For a qcow2 overlay: `qemu-img convert -O raw overlay.qcow2 disk.raw` first.
"""
import struct
import sys
import zlib


def main():
    path = sys.argv[1]
    a, b, size = (int(x, 0) for x in (sys.argv[2:5] or ["0x100000", "0x104000", "0x4000"]))
    with open(path, "rb") as f:
        for name, off in (("A", a), ("B", b)):
            f.seek(off)
            img = f.read(size)
            stored = struct.unpack("<I", img[:4])[0]
            ok = stored == zlib.crc32(img[5:])
            data = img[5:].split(b"\0\0")[0]
            vars_ = [v.decode(errors="replace") for v in data.split(b"\0") if v] if ok else []
            print(f"copy {name} @{off:#x}: crc {'ok' if ok else 'BAD'} flags {img[4]} {' '.join(vars_)}")


if __name__ == "__main__":
    main()
