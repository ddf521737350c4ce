#!/usr/bin/env bash
# Run here, before tools/gpu_check.sh goes to the GPU machine (which has no network): copies what
# that machine lacks into build/gpu-deps, an ignored path that the device tool carries beside the
# tree (carry: ["build/gpu-deps"]). Today that is Eigen's headers and CMake config from the
# cmeel-eigen wheel (about 10 MB).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
purelib=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
src="$purelib/cmeel.prefix"
[ -f "$src/share/eigen3/cmake/Eigen3Config.cmake" ] || { echo "cmeel-eigen is not installed (pip install cmeel-eigen)" >&2; exit 1; }
dst="$root/build/gpu-deps/cmeel.prefix"
rm -rf "$root/build/gpu-deps"
mkdir -p "$dst/include" "$dst/share"
cp -r "$src/include/eigen3" "$dst/include/"
cp -r "$src/share/eigen3" "$dst/share/"
du -sh "$root/build/gpu-deps"
