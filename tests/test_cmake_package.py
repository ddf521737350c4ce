"""The CMake package of the C/C++ library: `cmake --install` into a prefix, then a consumer
project that finds it with find_package(adapprox) (CMAKE_PREFIX_PATH = that prefix alone: no
Eigen, no Python), and one that builds it from source with add_subdirectory(<repo>). Each
consumer builds a C program (adx_create/adx_step/adx_destroy) and a C++ one (adapprox::Optimizer)
and runs them."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run

MAIN_C = r"""
#include <stdio.h>
#include <adapprox/adapprox.h>

int main(void) {
  float w[6] = {1, 1, 1, 1, 1, 1}, g[6] = {0.5f, -0.5f, 0.25f, 1, -1, 0.75f};
  int64_t shape[2] = {3, 2};
  adx_DLTensor p = {w, {1, 0}, 2, {2, 32, 1}, shape, NULL, 0};
  adx_DLTensor gt = {g, {1, 0}, 2, {2, 32, 1}, shape, NULL, 0};
  adx_optimizer* opt = NULL;
  if (adx_create("adafactor:lr=0.01", &opt) != ADX_OK) {
    fprintf(stderr, "create: %s\n", adx_last_error());
    return 1;
  }
  for (int i = 0; i < 3; ++i)
    if (adx_step(opt, &p, &gt, 1, -1.0) != ADX_OK) {
      fprintf(stderr, "step: %s\n", adx_last_error());
      return 2;
    }
  adx_destroy(opt);
  if (!(w[0] < 1 && w[1] > 1)) return 3;
  printf("c ok %s %d\n", adx_version(), adx_abi_version());
  return 0;
}
"""

MAIN_CPP = r"""
#include <adapprox/optimizer.hpp>
#include <cstdio>
#include <vector>

int main() {
  std::vector<float> w(12, 1.0f), g(12, 0.5f);
  auto opt = adapprox::Optimizer::create("adapprox:lr=0.1,rank=1");
  adapprox::TensorRef p{w.data(), adapprox::DType::f32, {4, 3}}, gr{g.data(), adapprox::DType::f32, {4, 3}};
  opt->step({p}, {gr});
  try {
    adapprox::Optimizer::create("adam:nosuch=1");
    return 1;
  } catch (const adapprox::Error& e) {  // the library's exceptions cross into the consumer
    if (e.kind() != adapprox::ErrorKind::spec) return 2;
  }
  if (!(w[0] < 1)) return 3;
  std::printf("cpp ok %s\n", opt->spec().c_str());
  return 0;
}
"""


def cmake_exe():
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.fail("cmake is required (pip install cmake)")
    return cmake


def generator():
    return ["-G", "Ninja"] if shutil.which("ninja") else []


def purelib():
    return subprocess.check_output([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   text=True).strip()


def write_consumer(folder: Path, how: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "main.c").write_text(MAIN_C)
    (folder / "main.cpp").write_text(MAIN_CPP)
    (folder / "CMakeLists.txt").write_text(f"""cmake_minimum_required(VERSION 3.18)
project(adapprox_consumer LANGUAGES C CXX)
{how}
add_executable(app main.c)
target_link_libraries(app PRIVATE adapprox::adapprox)
add_executable(app_cpp main.cpp)
target_link_libraries(app_cpp PRIVATE adapprox::adapprox)
""")
    return folder


def build_and_run(src: Path, build: Path, *defines):
    cmake = cmake_exe()
    run(cmake, "-S", src, "-B", build, *generator(), *defines)
    run(cmake, "--build", build, "--parallel", "2")
    out_c = run(build / "app").stdout
    out_cpp = run(build / "app_cpp").stdout
    assert out_c.startswith("c ok 0.1.0 1"), out_c
    assert out_cpp.startswith("cpp ok adapprox:"), out_cpp


@pytest.fixture(scope="module")
def prefix(cpp_build, tmp_path_factory):
    prefix = tmp_path_factory.mktemp("prefix")
    run(cmake_exe(), "--install", cpp_build, "--prefix", prefix)
    return prefix


def test_install_tree_holds_the_library_headers_and_package(prefix):
    files = {p.relative_to(prefix).as_posix() for p in prefix.rglob("*") if p.is_file() or p.is_symlink()}
    assert "include/adapprox/adapprox.h" in files and "include/adapprox/optimizer.hpp" in files
    assert any(f.endswith("/libadapprox.so") or f.endswith("/libadapprox.dylib") for f in files), files
    config = [f for f in files if f.endswith("cmake/adapprox/adapproxConfig.cmake")]
    assert len(config) == 1 and any(f.endswith("cmake/adapprox/adapproxConfigVersion.cmake") for f in files)
    assert not any("adapprox_core" in f or f.endswith(".a") for f in files), files
    # The exported interface is the shared library alone: no static core, Eigen or Threads.
    targets = "".join(p.read_text() for p in (prefix / Path(config[0]).parent).glob("adapproxTargets*.cmake"))
    assert "adapprox::adapprox" in targets
    for leak in ("adapprox_core", "Eigen", "Threads", "INTERFACE_LINK_LIBRARIES"):
        assert leak not in targets, leak


def test_find_package_consumer(prefix, tmp_path):
    src = write_consumer(tmp_path / "src", "find_package(adapprox 0.1 REQUIRED)")
    build_and_run(src, tmp_path / "build", f"-DCMAKE_PREFIX_PATH={prefix}")


def test_find_package_refuses_an_incompatible_version(prefix, tmp_path):
    src = write_consumer(tmp_path / "src", "find_package(adapprox 2.0 REQUIRED)")
    done = subprocess.run([cmake_exe(), "-S", src, "-B", tmp_path / "build", *generator(),
                           f"-DCMAKE_PREFIX_PATH={prefix}"], capture_output=True, text=True)
    assert done.returncode != 0 and "adapprox" in done.stderr


def test_add_subdirectory_consumer(tmp_path):
    src = write_consumer(tmp_path / "src", f'add_subdirectory("{ROOT.as_posix()}" adapprox_build)')
    build = tmp_path / "build"
    build_and_run(src, build, "-DADAPPROX_CUDA=OFF", f"-DCMAKE_PREFIX_PATH={purelib()}",
                  f"-DPython3_EXECUTABLE={sys.executable}")
    # As a subproject adapprox builds its libraries only: no tests, examples or install rules.
    assert not list(build.rglob("test_core")) and not list(build.rglob("train_least_squares_c"))
    inst = tmp_path / "inst"
    run(cmake_exe(), "--install", build, "--prefix", inst)
    assert not inst.exists() or not any(inst.rglob("*")), sorted(inst.rglob("*"))
