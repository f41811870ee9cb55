#!/usr/bin/env python3
"""Keep the layer's per-board files consistent with boards/<board>.toml.

For every board profile in boards/ (the firmware's source of truth):
- yocto/files/boards/<board>/fw_env.config: the [uboot_env] device, both
  offsets and the size (libubootenv / fw_printenv format);
- yocto/recipes-camera/ota/files/<board>/agent.toml: the agent's [layout.env] and the
  rootfs slots ([partitions].rootfs);
- yocto/files/boards/<board>/uboot-env.cfg, where present: the U-Boot
  config fragment (CONFIG_ENV_OFFSET, _REDUND, _SIZE) U-Boot must be built
  with so that it and Linux share the environment;
- classes/retail_camera_board.bbclass: RETAIL_CAMERA_ROOT_A/_B/_DATA for
  the board's machine.

  check-boards.py           check, exit 1 on any difference (all reported)
  check-boards.py --write   (re)write fw_env.config and agent.toml
"""
import argparse
import os
import re
import sys
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
LAYER = os.path.dirname(HERE)
REPO = os.path.dirname(LAYER)
MACHINES = {"qemu-arm64": "qemuarm64", "rk3588": "rock-5b", "rk3568": "rock-3a",
            "rv1106": "rv1106-camera", "rv1126": "rv1126-camera"}
MTD_ERASE = 0x20000  # SPI NAND erase block (fw_env.config's 4th column on MTD)


def fw_env(board, p):
    e = p["uboot_env"]
    dev, size = e["device"], e["size"]
    mtd = dev.startswith("/dev/mtd")
    lines = [f"# U-Boot environment of the {board} board: generated from boards/{board}.toml",
             "# [uboot_env] by yocto/scripts/check-boards.py --write; do not edit.",
             "# Device name\tDevice offset\tEnv. size" + ("\tFlash sector size" if mtd else "")]
    for off in e["offsets"]:
        cols = [dev, f"0x{off:x}", f"0x{size:x}"] + ([f"0x{MTD_ERASE:x}"] if mtd else [])
        lines.append("\t".join(cols))
    return "\n".join(lines) + "\n"


def agent(board, p):
    e = p["uboot_env"]
    rootfs = p["partitions"]["rootfs"]
    copies = ", ".join(f'{{ path = "{e["device"]}", offset = 0x{o:x} }}' for o in e["offsets"])
    return f'''# ota agent configuration for the {board} board (docs/ota.md "Agent").
# Generated from boards/{board}.toml by yocto/scripts/check-boards.py --write.
# The image installs it as /etc/ota/agent.toml; the first boot copies it to
# /data/ota/agent.toml. The camera's identity, its broker (TLS with the
# provisioned certificates) and the store chain's root of trust come from
# the factory bundle that `ota provision` installed in /data/factory
# (camera-provision.service); until then the agent waits and trusts
# nothing, and the placeholders below are used by nothing.
camera_id = "unprovisioned"
store_id = "unprovisioned"
provisioning = "/data/factory"
state_dir = "/data/ota"
root_file = "/data/factory/root.json"
version = "0.1.0"
allowed_urls = ["https://updates.example.invalid/bundles/"]
max_bundle_bytes = 1073741824
utc_offset_min = 0
health_deadline_s = 300
run_dir = "/run/ota"

[broker]
host = "unprovisioned.invalid"
port = 8883

[layout]
board = "{board}"
[layout.env]
size = {e["size"]}
copies = [{copies}]
[layout.slots]
rootfs = ["{rootfs[0]}", "{rootfs[1]}"]
app = ["/data/app/a.squashfs", "/data/app/b.squashfs"]
model = ["/data/models/a.pkg", "/data/models/b.pkg"]
'''


def parse_fw_env(text):
    rows = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            cols = line.split()
            rows.append((cols[0], int(cols[1], 0), int(cols[2], 0)))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    errors = []
    cls = open(os.path.join(LAYER, "classes", "retail_camera_board.bbclass")).read()
    boards = sorted(f[:-5] for f in os.listdir(os.path.join(REPO, "boards")) if f.endswith(".toml") and f != "Cargo.toml")
    for board in boards:
        with open(os.path.join(REPO, "boards", board + ".toml"), "rb") as f:
            p = tomllib.load(f)
        d = os.path.join(LAYER, "files", "boards", board)
        e = p["uboot_env"]
        if args.write:
            os.makedirs(d, exist_ok=True)
            ad = os.path.join(LAYER, "recipes-camera", "ota", "files", board)
            os.makedirs(ad, exist_ok=True)
            for path, text in ((os.path.join(d, "fw_env.config"), fw_env(board, p)),
                               (os.path.join(ad, "agent.toml"), agent(board, p))):
                with open(path, "w") as f:
                    f.write(text)
                print(f"wrote {os.path.relpath(path, REPO)}")
            continue
        where = f"yocto/files/boards/{board}"
        # fw_env.config: compare the values, not the text.
        try:
            rows = parse_fw_env(open(os.path.join(d, "fw_env.config")).read())
            want = [(e["device"], o, e["size"]) for o in e["offsets"]]
            if rows != want:
                errors.append(f"{where}/fw_env.config has {rows}, boards/{board}.toml [uboot_env] says {want}")
        except FileNotFoundError:
            errors.append(f"{where}/fw_env.config is missing")
        # agent.toml: layout.env and rootfs slots.
        try:
            awhere = f"yocto/recipes-camera/ota/files/{board}"
            with open(os.path.join(LAYER, "recipes-camera", "ota", "files", board, "agent.toml"), "rb") as f:
                a = tomllib.load(f)
            lay = a["layout"]
            want_copies = [{"path": e["device"], "offset": o} for o in e["offsets"]]
            if lay.get("board") != board:
                errors.append(f"{awhere}/agent.toml: layout.board is {lay.get('board')!r}, not {board!r}")
            if lay["env"]["size"] != e["size"] or lay["env"]["copies"] != want_copies:
                errors.append(f"{awhere}/agent.toml: layout.env {lay['env']} differs from [uboot_env] (size {e['size']:#x}, copies {want_copies})")
            if lay["slots"]["rootfs"] != p["partitions"]["rootfs"]:
                errors.append(f"{awhere}/agent.toml: layout.slots.rootfs {lay['slots']['rootfs']} differs from [partitions].rootfs {p['partitions']['rootfs']}")
        except FileNotFoundError:
            errors.append(f"{awhere}/agent.toml is missing")
        # U-Boot config fragment, where the layer builds U-Boot's env config.
        cfg_path = os.path.join(d, "uboot-env.cfg")
        if os.path.exists(cfg_path):
            cfg = dict(re.findall(r"^(CONFIG_\w+)=(\S+)", open(cfg_path).read(), re.M))
            for key, val in (("CONFIG_ENV_OFFSET", e["offsets"][0]), ("CONFIG_ENV_OFFSET_REDUND", e["offsets"][1]),
                             ("CONFIG_ENV_SIZE", e["size"])):
                if key not in cfg or int(cfg[key], 0) != val:
                    errors.append(f"{where}/uboot-env.cfg: {key}={cfg.get(key)} but boards/{board}.toml says {val:#x}")
            if cfg.get("CONFIG_SYS_REDUNDAND_ENVIRONMENT") != "y":
                errors.append(f"{where}/uboot-env.cfg: CONFIG_SYS_REDUNDAND_ENVIRONMENT=y missing (two copies)")
        # The board class's partition devices.
        m = MACHINES.get(board)
        if m is None:
            errors.append(f"boards/{board}.toml has no MACHINE in check-boards.py / retail_camera_board.bbclass")
            continue
        parts = p["partitions"]
        for var, val in (("RETAIL_CAMERA_ROOT_A", parts["rootfs"][0]), ("RETAIL_CAMERA_ROOT_B", parts["rootfs"][1]),
                         ("RETAIL_CAMERA_DATA", parts["data"])):
            mm = re.search(rf'^{var}:{re.escape(m)} \?= "([^"]*)"', cls, re.M)
            dm = re.search(rf'^{var} \?\?= "([^"]*)"', cls, re.M)
            got = mm.group(1) if mm else (dm.group(1) if dm else None)
            if got != val:
                errors.append(f"classes/retail_camera_board.bbclass: {var} for {m} is {got!r}, boards/{board}.toml says {val!r}")
        # The boot script's own environment (boards whose U-Boot keeps it
        # elsewhere): the same offsets and size as [uboot_env].
        se = re.search(rf'^RETAIL_CAMERA_SCRIPT_ENV:{re.escape(m)} \?= "([^"]*)"', cls, re.M)
        if se:
            f = se.group(1).split()
            want = [e["offsets"][0], e["offsets"][1], e["size"]]
            if len(f) != 5 or [int(x, 0) for x in f[2:]] != want:
                errors.append(f"classes/retail_camera_board.bbclass: RETAIL_CAMERA_SCRIPT_ENV:{m} is {se.group(1)!r}, "
                              f"boards/{board}.toml [uboot_env] says offsets {e['offsets'][0]:#x} {e['offsets'][1]:#x} size {e['size']:#x}")
            if os.path.exists(cfg_path):
                errors.append(f"{where}/uboot-env.cfg and RETAIL_CAMERA_SCRIPT_ENV:{m}: one environment writer, not two")
        if not re.search(rf'^RETAIL_CAMERA_BOARD:{re.escape(m)} \?= "{re.escape(board)}"', cls, re.M):
            errors.append(f"classes/retail_camera_board.bbclass: RETAIL_CAMERA_BOARD:{m} is not {board!r}")
    if args.write:
        return 0
    for err in errors:
        print(f"error: {err}", file=sys.stderr)
    if errors:
        print(f"error: {len(errors)} board file(s) disagree with boards/*.toml", file=sys.stderr)
        return 1
    print(f"ok: fw_env.config, agent.toml, U-Boot env fragments and board class agree with boards/*.toml ({', '.join(boards)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
