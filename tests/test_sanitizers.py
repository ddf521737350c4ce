"""Memory and thread safety: the ctest suite and the Python extension under AddressSanitizer +
UBSan, the shared-handle contract under ThreadSanitizer, and the C example under valgrind (no
leaks, no invalid accesses)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run


SANITIZED_PYTESTS = ["tests/test_dlpack.py", "tests/test_hardening.py", "tests/test_torch_contract.py"]
STRIP_EDITABLE = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path "
                  "if 'editable' not in type(f).__module__.lower()]; ")


def test_ctest_and_the_extension_under_asan_and_ubsan(tmp_path):
    """One AddressSanitizer + UBSan (float-cast-overflow included) build of the core, the C/C++
    tests and the Python extension: ctest, then a pytest subset (the DLPack importer, the fronts,
    the loaders, the hostile-input cases) and a replay of the state fuzzer with the extension
    itself instrumented (libasan preloaded into an uninstrumented Python)."""
    build = tmp_path / "asan"
    prefix = subprocess.check_output([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     text=True).strip()
    pybind = subprocess.check_output([sys.executable, "-m", "pybind11", "--cmakedir"], text=True).strip()
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    run("cmake", "-S", ROOT, "-B", build, *gen, "-DADAPPROX_CUDA=OFF", "-DADAPPROX_SANITIZE=ON", "-DADAPPROX_PYTHON=ON",
        "-DCMAKE_BUILD_TYPE=RelWithDebInfo", f"-DCMAKE_PREFIX_PATH={prefix}", f"-DPython_EXECUTABLE={sys.executable}",
        f"-Dpybind11_DIR={pybind}")
    run("cmake", "--build", build, "--parallel", "2")
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1", UBSAN_OPTIONS="print_stacktrace=1")
    out = subprocess.run(["ctest", "--test-dir", str(build), "--output-on-failure"], env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]
    assert "runtime error" not in out.stdout and "AddressSanitizer" not in out.stdout

    stage = tmp_path / "stage" / "adapprox"  # the package with the instrumented _core
    stage.mkdir(parents=True)
    for f in (Path(ROOT) / "python" / "adapprox").iterdir():
        (stage / f.name).symlink_to(f)
    shutil.copy(next(build.rglob("_core*.so")), stage)
    # libasan first, and libstdc++ with it: python itself does not link libstdc++, and ASan must
    # find __cxa_throw when it starts or the first C++ exception aborts
    preload = " ".join(subprocess.check_output(["gcc", f"-print-file-name={lib}"], text=True).strip()
                       for lib in ("libasan.so", "libstdc++.so"))
    env = dict(os.environ, LD_PRELOAD=preload, PYTHONPATH=str(stage.parent),
               # Python and torch are not instrumented: their own leaks and allocator pairs are not ours
               ASAN_OPTIONS="detect_leaks=0:alloc_dealloc_mismatch=0:detect_odr_violation=0:abort_on_error=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    code = (STRIP_EDITABLE + "import adapprox, pytest; assert '" + str(stage) + "' in adapprox.__file__; "
            "sys.exit(pytest.main(['-q', '-x', '-p', 'no:cacheprovider', '-k', "
            "'not c_abi and not c_spec and not c_step and not cannot_start and not locale and not workspace'] + sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, *SANITIZED_PYTESTS], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=1500)
    report = out.stdout[-6000:] + out.stderr[-6000:]
    assert out.returncode == 0, report
    assert "runtime error" not in report and "AddressSanitizer" not in report, report
    code = STRIP_EDITABLE + "import runpy; sys.argv = ['replay.py', 'state', '1500']; " \
        "runpy.run_path('fuzz/replay.py', run_name='__main__')"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    report = out.stdout[-3000:] + out.stderr[-6000:]
    assert out.returncode == 0 and "replayed" in out.stdout, report
    assert "runtime error" not in report and "AddressSanitizer" not in report, report


def test_shared_handle_under_thread_sanitizer(tmp_path):
    """The thread-safety contract (one handle from four threads, serialised; separate handles side
    by side) under ThreadSanitizer: no data race is reported."""
    build = tmp_path / "tsan"
    prefix = subprocess.check_output([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     text=True).strip()
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    run("cmake", "-S", ROOT, "-B", build, *gen, "-DADAPPROX_CUDA=OFF", "-DADAPPROX_TSAN=ON",
        "-DCMAKE_BUILD_TYPE=RelWithDebInfo", f"-DCMAKE_PREFIX_PATH={prefix}", f"-DPython3_EXECUTABLE={sys.executable}")
    run("cmake", "--build", build, "--parallel", "2", "--target", "test_shared_handle")
    exe = next(build.rglob("test_shared_handle"))
    env = dict(os.environ, TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1")
    out = subprocess.run([str(exe)], env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-6000:]
    assert "ThreadSanitizer" not in out.stderr and "0 failed" in out.stdout, out.stderr[-6000:]


def test_c_example_under_valgrind(cpp_build):
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        pytest.fail("valgrind is required (apt-get install valgrind)")
    exe = next(Path(cpp_build).rglob("train_least_squares_c"))
    out = subprocess.run([valgrind, "--leak-check=full", "--show-leak-kinds=definite,indirect,possible",
                          "--errors-for-leak-kinds=definite,indirect,possible", "--error-exitcode=99", str(exe)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-4000:]
    assert "ERROR SUMMARY: 0 errors" in out.stderr
