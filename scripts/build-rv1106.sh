#!/usr/bin/env bash
# Release build of camera-app for RV1106 / RV1103 (Luckfox Pico class).
#
# The RV1106 NPU runtime (librknnmrt.so) exists only for armhf uClibc, so
# the binary is built for the tier-3 target armv7-unknown-linux-uclibceabihf:
# nightly Rust with -Zbuild-std (no prebuilt std for that target) and
# Rockchip's uClibc GCC from the Luckfox Pico SDK. See docs/rv1106.md.
#
#   RV1106_TOOLCHAIN=~/luckfox-pico/tools/linux/toolchain/arm-rockchip830-linux-uclibcgnueabihf \
#     scripts/build-rv1106.sh
#
# Environment:
#   RV1106_TOOLCHAIN   the toolchain directory (holding bin/arm-rockchip830-linux-uclibcgnueabihf-gcc);
#                      or put that bin/ directory on PATH
#   RV1106_NIGHTLY     the nightly toolchain to use (default "nightly"; pin a
#                      dated one, e.g. nightly-2026-05-19, for repeatable builds)
#   RV1106_FEATURES    camera-app features (default "rknn")
#   CARGO_TARGET_DIR   as usual
# Extra arguments go to cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

target=armv7-unknown-linux-uclibceabihf
prefix=arm-rockchip830-linux-uclibcgnueabihf
nightly="${RV1106_NIGHTLY:-nightly}"
features="${RV1106_FEATURES:-rknn}"

die() { echo "error: $*" >&2; exit 1; }

# 1. Rockchip's uClibc cross compiler.
if [ -n "${RV1106_TOOLCHAIN:-}" ]; then
  [ -d "$RV1106_TOOLCHAIN" ] || die "RV1106_TOOLCHAIN=$RV1106_TOOLCHAIN is not a directory"
  cc="$RV1106_TOOLCHAIN/bin/$prefix-gcc"
  [ -x "$cc" ] || die "RV1106_TOOLCHAIN=$RV1106_TOOLCHAIN has no bin/$prefix-gcc"
else
  cc="$(command -v "$prefix-gcc" || true)"
  [ -n "$cc" ] || die "the RV1106 toolchain ($prefix-gcc) was not found.
  It comes with the Luckfox Pico SDK (github.com/LuckfoxTECH/luckfox-pico),
  in tools/linux/toolchain/$prefix/; Rockchip's RV1106 SDK has the same.
  Set RV1106_TOOLCHAIN to that directory, or put its bin/ on PATH."
fi
bindir="$(dirname "$cc")"
for tool in g++ ar strip; do
  [ -x "$bindir/$prefix-$tool" ] || die "$bindir has $prefix-gcc but no $prefix-$tool"
done
sysroot="$("$cc" -print-sysroot)"
[ -d "$sysroot" ] || die "$cc -print-sysroot gave '$sysroot', not a directory"
"$cc" -dumpmachine | grep -q uclibc || die "$cc does not target uClibc ($("$cc" -dumpmachine))"

# 2. camera-app must have the feature (the NPU backend).
if [ -n "$features" ]; then
  have="$(cargo metadata --no-deps --format-version 1 --locked |
    python3 -c 'import json,sys
m = [p for p in json.load(sys.stdin)["packages"] if p["name"] == "camera-app"]
print(" ".join(sorted(m[0]["features"])) if m else "")')"
  for f in ${features//,/ }; do
    case " $have " in
      *" $f "*) ;;
      *) die "camera-app has no feature '$f' (it has: ${have:-none}); set RV1106_FEATURES" ;;
    esac
  done
fi

# 3. Nightly with rust-src (for -Zbuild-std), installed if missing.
command -v rustup >/dev/null || die "rustup not found (https://rustup.rs)"
if ! rustup run "$nightly" rustc --version >/dev/null 2>&1; then
  echo "installing Rust $nightly (minimal profile)" >&2
  rustup toolchain install "$nightly" --profile minimal
fi
if ! rustup component list --installed --toolchain "$nightly" | grep -q '^rust-src'; then
  echo "adding rust-src to $nightly" >&2
  rustup component add rust-src --toolchain "$nightly"
fi
rustup run "$nightly" rustc --print target-list | grep -qx "$target" ||
  die "Rust $nightly has no target $target"

# 4. Build.
env_target="${target//-/_}"                 # armv7_unknown_linux_uclibceabihf
env_target_uc="$(echo "$env_target" | tr a-z A-Z)"
export "CARGO_TARGET_${env_target_uc}_LINKER=$cc"
export "CC_${env_target}=$cc"
export "CXX_${env_target}=$bindir/$prefix-g++"
export "AR_${env_target}=$bindir/$prefix-ar"
export "BINDGEN_EXTRA_CLANG_ARGS_${env_target}=--sysroot=$sysroot"

feature_args=(--no-default-features)
[ -n "$features" ] && feature_args+=(--features "$features")
set -x
cargo "+$nightly" build --locked --release -p camera-app "${feature_args[@]}" \
  --target "$target" -Zbuild-std=std,panic_abort "$@"
{ set +x; } 2>/dev/null

out="${CARGO_TARGET_DIR:-target}/$target/release/camera-app"
"$bindir/$prefix-strip" -o "$out.stripped" "$out"
echo "built $out ($(stat -c %s "$out") bytes; stripped: $out.stripped, $(stat -c %s "$out.stripped") bytes)"
