"""Shared fixtures: one CMake build of the C/C++ side per test session."""
import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*cmd, env=None):
    done = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="session")
def cpp_build(tmp_path_factory):
    """Configure and build the C++ tests, examples and libadapprox (no Python module)."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.fail("cmake is required to build the C++ tests (pip install cmake)")
    build = tmp_path_factory.mktemp("cpp") / "build"
    prefix = subprocess.check_output([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     text=True).strip()
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    env = dict(os.environ)
    run(cmake, "-S", ROOT, "-B", build, *gen, "-DADAPPROX_CUDA=OFF", f"-DCMAKE_PREFIX_PATH={prefix}",
        f"-DPython3_EXECUTABLE={sys.executable}", env=env)
    run(cmake, "--build", build, "--parallel", "2", env=env)
    return build


@contextlib.contextmanager
def native_threads(n):
    """Run the block with the native core on n threads, restoring the count afterwards."""
    import adapprox
    before = adapprox.num_threads()
    adapprox.set_num_threads(n)
    try:
        yield
    finally:
        adapprox.set_num_threads(before)
