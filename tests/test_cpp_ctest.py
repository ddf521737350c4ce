"""Builds the C++ core's own unit tests with CMake (no Python inside) and runs them with ctest."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ctest_suite_passes(tmp_path):
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.fail("cmake is required to build the C++ tests (pip install cmake)")
    build = tmp_path / "build"
    env = dict(os.environ)
    # Eigen from the cmeel-eigen wheel of this interpreter (or a system Eigen if present).
    prefix = subprocess.check_output([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     text=True).strip()
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    def run(*cmd):
        done = subprocess.run(list(cmd), env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    run(cmake, "-S", str(ROOT), "-B", str(build), *gen, "-DADAPPROX_CUDA=OFF", f"-DCMAKE_PREFIX_PATH={prefix}",
        f"-DPython3_EXECUTABLE={sys.executable}")
    run(cmake, "--build", str(build), "--parallel", "2")
    out = subprocess.run(["ctest", "--test-dir", str(build), "--output-on-failure"], env=env,
                         capture_output=True, text=True)
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "100% tests passed" in out.stdout
