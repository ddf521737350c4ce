#!/usr/bin/env bash
# The one prepared GPU check (issue: GPU backend). On the GPU machine, from the repository root,
# after tools/gpu_prepare.sh ran on the CPU machine and build/gpu-deps travelled with the tree:
#   bash tools/gpu_check.sh            # writes $OUT/gpu_report.txt (or build/gpu_report.txt)
# Builds with CUDA (sm_90) without network, runs ctest, the GPU tests with ADAPPROX_EXPECT_GPU=1
# (every CUDA path against the CPU path, and against torch.optim on CUDA), compute-sanitizer
# memcheck on a short GPU test, and `python -m bench step --device cuda` at GPT-2 117M and 345M.
# Every stage runs under a time limit and the script goes on after a failure, so one visit
# reports everything; the exit status is the number of failed stages. Well inside 8 minutes on
# 16 cores. GPU_CHECK_NVCC overrides the compiler (a rehearsal on a CPU machine uses the PyPI wheel).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build}
mkdir -p "$out"
report="$out/gpu_report.txt"
: > "$report"
failed=0
py=$(command -v python3)
say() { echo "$*" | tee -a "$report"; }
stage() {  # stage NAME LIMIT_S CMD...
  local name=$1 limit=$2
  shift 2
  say "=== $name ($(date -u +%H:%M:%S), limit ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@" >> "$report" 2>&1
  local rc=$?
  say "--- $name: rc=$rc in $((SECONDS - t0)) s"
  [ $rc -eq 0 ] || failed=$((failed + 1))
}

say "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >> "$report" 2>&1
nvcc=${GPU_CHECK_NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
"$nvcc" --version | tail -1 >> "$report" 2>&1
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" >> "$report" 2>&1

b=build/gpu
stage configure 120 cmake -S . -B "$b" -G Ninja -DADAPPROX_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_BUILD_TYPE=Release -DADAPPROX_PYTHON=ON -DADAPPROX_BUILD_TESTS=ON \
  -DEigen3_DIR="$PWD/build/gpu-deps/cmeel.prefix/share/eigen3/cmake" -DPython_EXECUTABLE="$py" -Dpybind11_DIR="$("$py" -m pybind11 --cmakedir)"
stage build 300 cmake --build "$b" --parallel "$(nproc)"
stage ctest 120 ctest --test-dir "$b" --output-on-failure

# The package, staged from the sources with the fresh module (nothing installed).
rm -rf "$b/stage" && mkdir -p "$b/stage/adapprox"
for f in python/adapprox/*; do ln -s "$PWD/$f" "$b/stage/adapprox/"; done
cp "$b"/python/bindings/_core*.so "$b/stage/adapprox/" 2>> "$report"
export PYTHONPATH="$PWD/$b/stage" ADAPPROX_EXPECT_GPU=1 ADAPPROX_LIB="$PWD/$b/cpp/libadapprox.so"
stage gpu-tests 240 "$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py
stage memcheck 180 compute-sanitizer --tool memcheck --error-exitcode 1 "$py" -m pytest -q -p no:cacheprovider \
  tests/test_cuda.py -k short
stage bench-step 300 "$py" -m bench step --device cuda --models 117M,345M --warmup 3 --reps 10 --max-other 1
cp bench/results/step.json "$out/step_cuda.json" 2>/dev/null
say "failed stages: $failed"
exit "$failed"
