#!/usr/bin/env bash
# Developer loop without installing: build the extension into build/<name> and stage a runnable
# package at build/<name>/stage (source files symlinked, the fresh _core module copied in).
#   tools/stage.sh mine && PYTHONPATH=build/mine/stage python -m pytest -q tests/test_sgd.py
# Separate names give separate build trees, so several builds can run side by side.
set -euo pipefail
name=${1:-dev}
root=$(cd "$(dirname "$0")/.." && pwd)
b="$root/build/$name"
py=$(command -v python3)
cmake -S "$root" -B "$b" -G Ninja -DADAPPROX_PYTHON=ON -DADAPPROX_BUILD_TESTS=OFF -DADAPPROX_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$py" -Dpybind11_DIR="$("$py" -m pybind11 --cmakedir)" >/dev/null
cmake --build "$b" >/dev/null
stage="$b/stage/adapprox"
rm -rf "$b/stage"
mkdir -p "$stage"
for f in "$root"/python/adapprox/*; do ln -s "$f" "$stage/"; done
cp "$b"/python/bindings/_core*.so "$stage/"
echo "staged: PYTHONPATH=$b/stage"
