"""Memory safety of the C/C++ side: the ctest suite under AddressSanitizer + UBSan, and the C
example under valgrind (no leaks, no invalid accesses)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run


def test_ctest_under_asan_and_ubsan(tmp_path):
    build = tmp_path / "asan"
    prefix = subprocess.check_output([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     text=True).strip()
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    run("cmake", "-S", ROOT, "-B", build, *gen, "-DADAPPROX_CUDA=OFF", "-DADAPPROX_SANITIZE=ON",
        "-DCMAKE_BUILD_TYPE=RelWithDebInfo", f"-DCMAKE_PREFIX_PATH={prefix}", f"-DPython3_EXECUTABLE={sys.executable}")
    run("cmake", "--build", build, "--parallel", "2")
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1", UBSAN_OPTIONS="print_stacktrace=1")
    out = subprocess.run(["ctest", "--test-dir", str(build), "--output-on-failure"], env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-2000:]
    assert "runtime error" not in out.stdout and "AddressSanitizer" not in out.stdout


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
