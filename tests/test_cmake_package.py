"""The C/C++ SDK as `cmake --install` lays it out: public headers only, libadapprox shared (only
the API exported, SONAME by the version rule) and static, the CMake package and adapprox.pc.
Consumers find it with find_package(adapprox) (CMAKE_PREFIX_PATH = that prefix alone: no Eigen,
no Python), with pkg-config, or build it from source with add_subdirectory(<repo>) as a static
library. Each consumer builds a C program (adx_create/adx_step/adx_destroy) and a C++ one
(adapprox::Optimizer) and runs them. tests/test_wheel_sdk.py does the same against the wheel."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run

MAIN_C = r"""
#include <stdio.h>
#include <string.h>
#include <adapprox/adapprox.h>

#if !defined(ADAPPROX_VERSION) || ADAPPROX_VERSION < ADAPPROX_MAKE_VERSION(0, 1, 0)
#error "version.h's macros are missing"
#endif

int main(void) {
  if (strcmp(adx_version(), ADAPPROX_VERSION_STRING) != 0 || adx_abi_version() != ADAPPROX_ABI_VERSION) return 4;
  if (adx_set_num_threads(0) != ADX_ERR_VALUE || strcmp(adx_status_string(ADX_ERR_VALUE), "ADX_ERR_VALUE") != 0)
    return 5;
  if (adx_set_num_threads(2) != ADX_OK || adx_num_threads() != 2) return 6;
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


PUBLIC_HEADERS = {"adapprox.h", "communicator.hpp", "dlpack.h", "export.h", "interrupt.hpp", "optimizer.hpp",
                  "tensor.hpp", "version.h"}


def write_consumer(folder: Path, how: str, target: str = "adapprox::adapprox") -> Path:
    folder.mkdir(parents=True)
    (folder / "main.c").write_text(MAIN_C)
    (folder / "main.cpp").write_text(MAIN_CPP)
    (folder / "CMakeLists.txt").write_text(f"""cmake_minimum_required(VERSION 3.18)
project(adapprox_consumer LANGUAGES C CXX)
{how}
add_executable(app main.c)
target_link_libraries(app PRIVATE {target})
add_executable(app_cpp main.cpp)
target_link_libraries(app_cpp PRIVATE {target})
""")
    return folder


def needed_libs(exe: Path) -> str:
    """The DT_NEEDED entries of an executable (which shared libraries it loads)."""
    return run("readelf", "-d", exe).stdout


def build_and_run(src: Path, build: Path, *defines, static=False):
    cmake = cmake_exe()
    run(cmake, "-S", src, "-B", build, *generator(), *defines)
    run(cmake, "--build", build, "--parallel", "2")
    out_c = run(build / "app").stdout
    out_cpp = run(build / "app_cpp").stdout
    assert out_c.startswith("c ok 0.1.0 1"), out_c
    assert out_cpp.startswith("cpp ok adapprox:"), out_cpp
    for exe in ("app", "app_cpp"):  # linked statically, or against the shared library
        assert ("libadapprox.so" in needed_libs(build / exe)) != static, needed_libs(build / exe)


def check_sdk_tree(root: Path, include: Path, lib: Path):
    """The SDK's files under root: public headers only, both libraries, the package and the .pc."""
    assert {p.name for p in (include / "adapprox").iterdir()} == PUBLIC_HEADERS
    assert (lib / "libadapprox.a").is_file() and shared_lib(lib).is_file()
    cmake_dir = lib / "cmake" / "adapprox"
    assert (cmake_dir / "adapproxConfig.cmake").is_file() and (cmake_dir / "adapproxConfigVersion.cmake").is_file()
    assert (lib / "pkgconfig" / "adapprox.pc").is_file() and (lib / "pkgconfig" / "adapprox-static.pc").is_file()
    files = [p.relative_to(root).as_posix() for p in root.rglob("*")]
    assert not any("adapprox_core" in f or "Eigen" in f or "internal" in f for f in files), files
    # The exported targets need no Eigen and no static core; Threads only for the static library.
    targets = "".join(p.read_text() for p in cmake_dir.glob("adapproxTargets*.cmake"))
    assert "adapprox::adapprox" in targets and "adapprox::adapprox_static" in targets
    for leak in ("adapprox_core", "Eigen"):
        assert leak not in targets, leak


def shared_lib(lib: Path) -> Path:
    """libadapprox.so.MAJOR.MINOR... (a wheel holds that one file; an install adds its links)."""
    found = sorted(p for p in lib.glob("libadapprox.so*") if not p.is_symlink())
    assert len(found) == 1, found
    return found[0]


def check_exports(so: Path):
    """Only the C ABI and the C++ API leave the shared library: every adx_ function of
    adapprox.h, names in namespace adapprox (with their typeinfo and vtables), nothing else: no
    Eigen, no standard-library instances, no STB_GNU_UNIQUE symbols (which stop dlclose)."""
    raw = run("nm", "-D", "--defined-only", so).stdout.splitlines()
    demangled = run("nm", "-D", "--defined-only", "-C", so).stdout.splitlines()
    assert len(raw) == len(demangled) and raw
    kinds = {line.split(" ", 2)[1] for line in raw}
    assert "u" not in kinds, [line for line in raw if line.split(" ", 2)[1] == "u"]
    names = [line.split(" ", 2)[2] for line in demangled]
    api = ("adx_", "adapprox::", "typeinfo for adapprox::", "typeinfo name for adapprox::", "vtable for adapprox::")
    strays = [n for n in names if not n.startswith(api)]
    assert not strays, strays
    assert not [n for n in names if "Eigen" in n]
    header = (ROOT / "cpp" / "include" / "adapprox" / "adapprox.h").read_text()
    declared = set(re.findall(r"ADAPPROX_API [^;(]*?\b(adx_\w+)\(", header))
    assert {"adx_create", "adx_status_string", "adx_set_num_threads", "adx_state_load_ex"} <= declared
    assert declared == {n for n in names if n.startswith("adx_")}
    major, minor = (int(x) for x in adapprox_version().split(".")[:2])
    soname = re.search(r"SONAME\)\s+Library soname: \[(.*)\]", run("readelf", "-d", so).stdout).group(1)
    assert soname == (f"libadapprox.so.0.{minor}" if major == 0 else f"libadapprox.so.{major}")


def adapprox_version() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    return re.search(r'^version = "([0-9.]+)"', text, re.M).group(1)


def check_headers_compile(include: Path, tmp: Path):
    """Every installed header compiles on its own; the C ones as strict C99."""
    for name in sorted(PUBLIC_HEADERS):
        src = tmp / f"use_{name.replace('.', '_')}.cpp"
        src.write_text(f"#include <adapprox/{name}>\nint main() {{ return 0; }}\n")
        run(shutil.which("c++") or "g++", "-std=c++17", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only",
            f"-I{include}", src)
        if name.endswith(".h"):
            src_c = src.with_suffix(".c")
            src_c.write_text(f"#include <adapprox/{name}>\nint main(void) {{ return 0; }}\n")
            run(shutil.which("cc") or "gcc", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror", "-fsyntax-only",
                f"-I{include}", src_c)


def pkg_config_exe():
    exe = shutil.which("pkg-config") or shutil.which("pkgconf")
    if exe is None:
        pytest.fail("pkg-config is required (apt install pkg-config, or pip install pkgconf)")
    return exe


def build_with_pkg_config(pc_dir: Path, tmp: Path, package: str = "adapprox"):
    """Builds and runs the C consumer with `pkg-config --cflags --libs package` alone (plus an
    rpath for the shared library); adapprox-static links the archive (no libadapprox.so needed)."""
    env = dict(os.environ, PKG_CONFIG_PATH=str(pc_dir))
    flags = run(pkg_config_exe(), "--cflags", "--libs", package, env=env).stdout.split()
    libdir = run(pkg_config_exe(), "--variable=libdir", package, env=env).stdout.strip()
    (tmp / "main.c").write_text(MAIN_C)
    exe = tmp / f"app_{package}"
    run(shutil.which("cc") or "gcc", "-std=c99", tmp / "main.c", "-o", exe, *flags, f"-Wl,-rpath,{libdir}")
    assert run(exe).stdout.startswith("c ok 0.1.0 1")
    static = package.endswith("-static")
    assert ("libadapprox.so" in needed_libs(exe)) != static, needed_libs(exe)
    if static:
        assert "-DADAPPROX_STATIC" in flags


@pytest.fixture(scope="module")
def prefix(cpp_build, tmp_path_factory):
    prefix = tmp_path_factory.mktemp("prefix")
    run(cmake_exe(), "--install", cpp_build, "--prefix", prefix)
    return prefix


def lib_dir(prefix: Path) -> Path:
    return next(p.parent for p in prefix.rglob("libadapprox.a"))


def test_install_tree_holds_public_headers_libraries_and_packages(prefix):
    check_sdk_tree(prefix, prefix / "include", lib_dir(prefix))


def test_shared_library_exports_only_the_api(prefix):
    check_exports(shared_lib(lib_dir(prefix)))


def test_installed_headers_compile_alone_and_as_c99(prefix, tmp_path):
    check_headers_compile(prefix / "include", tmp_path)


@pytest.mark.parametrize("target", ["adapprox::adapprox", "adapprox::adapprox_static"])
def test_find_package_consumer(prefix, tmp_path, target):
    src = write_consumer(tmp_path / "src", "find_package(adapprox 0.1 REQUIRED)", target)
    build_and_run(src, tmp_path / "build", f"-DCMAKE_PREFIX_PATH={prefix}", static=target.endswith("_static"))


@pytest.mark.parametrize("wanted", ["0.2", "2.0", "0.0"])
def test_find_package_refuses_an_incompatible_version(prefix, tmp_path, wanted):
    # At major version 0 every minor version may break the ABI: only 0.1.x satisfies 0.1.
    src = write_consumer(tmp_path / "src", f"find_package(adapprox {wanted} REQUIRED)")
    done = subprocess.run([cmake_exe(), "-S", src, "-B", tmp_path / "build", *generator(),
                           f"-DCMAKE_PREFIX_PATH={prefix}"], capture_output=True, text=True)
    assert done.returncode != 0 and "adapprox" in done.stderr


@pytest.mark.parametrize("package", ["adapprox", "adapprox-static"])
def test_pkg_config_consumer(prefix, tmp_path, package):
    build_with_pkg_config(lib_dir(prefix) / "pkgconfig", tmp_path, package)


def test_add_subdirectory_consumer_builds_a_static_library(tmp_path):
    src = write_consumer(tmp_path / "src", f'add_subdirectory("{ROOT.as_posix()}" adapprox_build)')
    build = tmp_path / "build"
    build_and_run(src, build, "-DADAPPROX_CUDA=OFF", "-DBUILD_SHARED_LIBS=OFF", f"-DCMAKE_PREFIX_PATH={purelib()}",
                  f"-DPython3_EXECUTABLE={sys.executable}", static=True)
    # BUILD_SHARED_LIBS=OFF: libadapprox is an archive, and no shared one is built.
    assert list(build.rglob("libadapprox.a")) and not list(build.rglob("libadapprox.so*"))
    # As a subproject adapprox builds its libraries only: no tests, examples or install rules.
    assert not list(build.rglob("test_core")) and not list(build.rglob("train_least_squares_c"))
    inst = tmp_path / "inst"
    run(cmake_exe(), "--install", build, "--prefix", inst)
    assert not inst.exists() or not any(inst.rglob("*")), sorted(inst.rglob("*"))
