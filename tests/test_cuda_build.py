"""The CUDA backend compiles without a GPU: CUDA 13's compiler from PyPI, every translation unit
of cpp/cuda built for sm_90 with the core, the C ABI, the C++ tests and the Python module. A
compile error fails this test (it never skips for want of a GPU). The CUDA build's CPU paths
are then run (ctest and a Python step), and a CUDA tensor given to it on a machine without a
driver gets a clear error.

The toolchain wheels (about 130 MB) are installed once into ~/.cache/adapprox/cuda13, or taken
from ADAPPROX_NVCC (the path of an nvcc to use instead, as on the GPU machine)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, run

TOOLCHAIN = ["nvidia-cuda-nvcc>=13,<14", "nvidia-cuda-runtime>=13,<14", "nvidia-cuda-cccl>=13,<14"]


def _nvcc() -> Path:
    if os.environ.get("ADAPPROX_NVCC"):
        return Path(os.environ["ADAPPROX_NVCC"])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "adapprox" / "cuda13"
    nvcc = cache / "nvidia" / "cu13" / "bin" / "nvcc"
    if not nvcc.exists():
        run(sys.executable, "-m", "pip", "install", "--quiet", "--target", cache, *TOOLCHAIN)
    assert nvcc.exists(), f"the CUDA toolchain wheels did not provide {nvcc}"
    return nvcc


@pytest.fixture(scope="module")
def cuda_build(tmp_path_factory):
    nvcc = _nvcc()
    build = tmp_path_factory.mktemp("cuda") / "build"
    prefix = subprocess.check_output([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     text=True).strip()
    pybind = subprocess.check_output([sys.executable, "-m", "pybind11", "--cmakedir"], text=True).strip()
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    run("cmake", "-S", ROOT, "-B", build, *gen, "-DADAPPROX_CUDA=ON", f"-DCMAKE_CUDA_COMPILER={nvcc}",
        "-DCMAKE_CUDA_ARCHITECTURES=90", "-DCMAKE_BUILD_TYPE=Release", "-DADAPPROX_BUILD_TESTS=ON",
        "-DADAPPROX_PYTHON=ON", f"-DCMAKE_PREFIX_PATH={prefix}", f"-DPython_EXECUTABLE={sys.executable}",
        f"-Dpybind11_DIR={pybind}")
    run("cmake", "--build", build, "--parallel", "2")
    return build


def test_every_cuda_translation_unit_compiles_for_sm90(cuda_build):
    sources = sorted(p.name for p in (ROOT / "cpp" / "cuda").glob("*.cu"))
    assert sources, "no CUDA sources"
    objects = {p.name for p in Path(cuda_build).rglob("*.cu.o")}
    missing = [s for s in sources if f"{s}.o" not in objects]
    assert not missing, f"not compiled: {missing}"
    dump = subprocess.run(["cuobjdump", "--list-elf", str(next(Path(cuda_build).rglob("adam.cu.o")))],
                          capture_output=True, text=True) if shutil.which("cuobjdump") else None
    if dump is not None and dump.returncode == 0:
        assert "sm_90" in dump.stdout


def test_the_cuda_build_passes_ctest(cuda_build):
    done = subprocess.run(["ctest", "--output-on-failure"], cwd=cuda_build, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]


def test_the_cuda_build_steps_on_the_cpu_and_refuses_cuda_without_a_driver(cuda_build, tmp_path):
    stage = tmp_path / "stage" / "adapprox"
    shutil.copytree(ROOT / "python" / "adapprox", stage)
    module = next(Path(cuda_build).rglob("_core*.so"))
    shutil.copy(module, stage)
    probe = textwrap.dedent(f"""
        import sys
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
        sys.path.insert(0, {str(tmp_path / "stage")!r})
        sys.path.insert(1, {str(ROOT / "tests")!r})
        import numpy as np, torch
        import adapprox, adapprox.torch as at, adapprox.numpy as anp
        from adapprox import _core
        assert adapprox.__file__.startswith({str(tmp_path)!r}), adapprox.__file__
        assert _core.cuda_built()
        p = torch.nn.Parameter(torch.ones(3)); p.grad = torch.ones(3)
        at.Adam([p], lr=0.5).step()
        assert torch.allclose(p.detach(), torch.full((3,), 0.5))
        from test_hardening import cuda_claiming_capsule

        class OnCuda:  # CPU memory that claims to live on cuda:0
            def __init__(self, a): self.a = a
            def __dlpack_device__(self): return (2, 0)
            def __dlpack__(self, **kw):
                assert kw.get("stream") is not None, "a CUDA tensor must be asked for the step's stream"
                return cuda_claiming_capsule(self.a)
        w = np.ones(4, np.float32)
        opt = anp.SGD([OnCuda(w)], lr=0.1)
        try:
            opt.step([OnCuda(np.ones(4, np.float32))])
        except ValueError as e:
            print("refused:", e)
            assert "cuda" in str(e).lower(), e
        else:
            raise AssertionError("a CUDA tensor without a driver was stepped")
        assert np.array_equal(w, np.ones(4, np.float32))
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout[-2000:] + done.stderr[-3000:]
    assert "CUDA is not usable here" in done.stdout or "does not exist" in done.stdout, done.stdout
