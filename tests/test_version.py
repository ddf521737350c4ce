"""One version number: pyproject.toml's, seen identically by Python and by the C ABI."""
import ctypes
import re
from pathlib import Path

import adapprox
from conftest import ROOT


def pyproject_version():
    text = (Path(ROOT) / "pyproject.toml").read_text()
    return re.search(r'^version = "([0-9]+\.[0-9]+\.[0-9]+)"', text, re.M).group(1)


def test_python_reports_the_pyproject_version():
    assert adapprox.__version__ == pyproject_version()


def test_c_abi_reports_the_pyproject_version(cpp_build):
    lib = next(Path(cpp_build).rglob("libadapprox.so*"))
    dll = ctypes.CDLL(str(lib))
    dll.adx_version.restype = ctypes.c_char_p
    assert dll.adx_version().decode() == pyproject_version()
