"""The wheel is a C/C++ SDK: build it from this checkout, pip-install it into a fresh virtualenv,
and build C and C++ consumers against what it installed, found through `python -m adapprox
--cmake-dir` (find_package, shared and static) and `--pkgconfig-dir` (pkg-config). The wheel
holds the public headers only, and its libadapprox exports only the API."""
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from conftest import ROOT, run
from test_cmake_package import (build_and_run, build_with_pkg_config, check_exports, check_headers_compile,
                                check_sdk_tree, shared_lib, write_consumer)


# The virtualenv's python sees its own site-packages only (no PYTHONPATH of a staged build).
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtualenv with this checkout's wheel installed; its python."""
    tmp = tmp_path_factory.mktemp("wheel")
    # The build requirements are the test extra's (pyproject.toml), so no isolated build env.
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", tmp / "dist",
        "-Ccmake.define.ADAPPROX_CUDA=OFF", f"-Cbuild-dir={tmp / 'build'}", ROOT)
    wheels = list((tmp / "dist").glob("adapprox-*.whl"))
    assert len(wheels) == 1, wheels
    venv.EnvBuilder(with_pip=True).create(tmp / "venv")
    python = tmp / "venv" / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheels[0], env=CLEAN_ENV)
    return python


def sdk_dir(python: Path, flag: str) -> Path:
    return Path(run(python, "-m", "adapprox", flag, env=CLEAN_ENV).stdout.strip())


def test_wheel_installs_the_sdk_and_python_m_adapprox_finds_it(installed):
    cmake_dir = sdk_dir(installed, "--cmake-dir")
    include = sdk_dir(installed, "--include-dir")
    lib = sdk_dir(installed, "--lib-dir")
    assert cmake_dir == lib / "cmake" / "adapprox" and sdk_dir(installed, "--pkgconfig-dir") == lib / "pkgconfig"
    root = include.parent
    site = Path(run(installed, "-c", "import adapprox, pathlib; print(pathlib.Path(adapprox.__file__).parent)",
                    env=CLEAN_ENV).stdout.strip())
    assert root == site.resolve()  # inside the installed package, not the checkout
    check_sdk_tree(root, include, lib)
    # One copy of the shared library: a wheel has no symlinks, so no name links are shipped.
    assert [p.name for p in lib.glob("libadapprox.so*")] == [shared_lib(lib).name]
    check_exports(shared_lib(lib))
    # The installed Python package still works beside it.
    out = run(installed, "-c", "import numpy as np, adapprox.numpy as an; p = np.ones(3, np.float32); "
                               "an.SGD([p], lr=1).step([np.ones(3, np.float32)]); print(p.tolist())",
              env=CLEAN_ENV).stdout
    assert out.strip() == "[0.0, 0.0, 0.0]"


def test_wheel_headers_compile_alone_and_as_c99(installed, tmp_path):
    check_headers_compile(sdk_dir(installed, "--include-dir"), tmp_path)


@pytest.mark.parametrize("target", ["adapprox::adapprox", "adapprox::adapprox_static"])
def test_find_package_against_the_wheel(installed, tmp_path, target):
    src = write_consumer(tmp_path / "src", "find_package(adapprox 0.1 REQUIRED)", target)
    build_and_run(src, tmp_path / "build", f"-Dadapprox_DIR={sdk_dir(installed, '--cmake-dir')}",
                  static=target.endswith("_static"))


@pytest.mark.parametrize("package", ["adapprox", "adapprox-static"])
def test_pkg_config_against_the_wheel(installed, tmp_path, package):
    build_with_pkg_config(sdk_dir(installed, "--pkgconfig-dir"), tmp_path, package)


def test_python_m_adapprox_needs_a_flag(installed):
    done = subprocess.run([installed, "-m", "adapprox"], capture_output=True, text=True, env=CLEAN_ENV)
    assert done.returncode == 2 and "--cmake-dir" in done.stderr
