# Reproduces the environment round trip of the boot script's write with a
# virtio-net NIC present (ethaddr set). Seen: `env export -b ADDR` (no -s)
# then `env import -d -b ADDR 0x40000` returns 0 and leaves the environment
# empty; `env export -b -s 0x10000 ADDR` then `env import -b ADDR 0x10000`
# (no -d) brings back all but ethaddr and stdin/stdout/stderr. Which of the
# two changes matters was not separated. Paths are this machine's cache.
import sys
sys.path.insert(0, '/work/wt-system/tests/system')
import importlib.util
spec = importlib.util.spec_from_file_location("p", "/work/wt-system/tests/system/uboot-probe.py")
p = importlib.util.module_from_spec(spec); spec.loader.exec_module(p)
p.COMMANDS[:] = [
 "printenv ethaddr",
 "mw.b 0x40414000 0 0x4000; env export -b -s 0x3ffb 0x40414000 kernel_addr_r",
 "md.b 0x40414000 0x20",
 "setenv ota_dd 0x40414000; setexpr ota_w ${kernel_addr_r} + 0x8000; setexpr ota_d ${ota_w} + 5; setexpr ota_u ${kernel_addr_r} + 0x20000",
 "otw_d=${ota_d}; otw_u=${ota_u}; otw_dd=${ota_dd}; echo ${otw_d} ${otw_u} ${otw_dd}",
 "mw.b ${ota_w} 0 0x4000; env export -b ${otw_u}; echo exported-rc=$?; md.b ${otw_u} 0x20; env export -b -s 0x10000 0x40430000; md.b 0x40430000 0x20",
 "env import -d -b ${otw_dd} 0x3ffb; echo import1-rc=$?; printenv",
 "setenv ota_rootfs_tries 1; env export -b -s 0x3ffb ${otw_d}; echo export2-rc=$?",
 "env import -b 0x40430000 0x10000; echo import2-rc=$?; printenv kernel_addr_r ethaddr ota_rootfs_tries stdout",
]
sys.argv = ['x', '/root/.cache/camera-system-test/host/qemu-system/usr/bin/qemu-system-aarch64', '/root/.cache/camera-system-test/host/qemu-system/usr/share/qemu']
orig = p.subprocess.Popen
def popen(cmd, **kw):
    cmd = [c for c in cmd if c != '-nodefaults'] + ['-netdev', 'user,id=n,restrict=on', '-device', 'virtio-net-pci,netdev=n,romfile=']
    return orig(cmd, **kw)
p.subprocess.Popen = popen
p.main()
