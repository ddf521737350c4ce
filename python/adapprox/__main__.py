"""``python -m adapprox --cmake-dir`` and friends: where the wheel's C/C++ SDK lies.

The wheel carries libadapprox (the C ABI of adapprox.h and the C++ API of optimizer.hpp), its
public headers, its CMake package and a pkg-config file, under ``site-packages/adapprox/``::

    cmake -S . -B build -Dadapprox_DIR="$(python -m adapprox --cmake-dir)"
    PKG_CONFIG_PATH="$(python -m adapprox --pkgconfig-dir)" pkg-config --cflags --libs adapprox
"""
import argparse
import sys
from pathlib import Path


def sdk_root() -> Path:
    """The directory holding the SDK: the one ``adapprox._core`` was loaded from (also in an
    editable install, where that is the build's install tree, not the source tree)."""
    from . import _core

    return Path(_core.__file__).resolve().parent


def _locations() -> dict:
    root = sdk_root()
    return {
        "cmake_dir": root / "lib" / "cmake" / "adapprox",
        "include_dir": root / "include",
        "lib_dir": root / "lib",
        "pkgconfig_dir": root / "lib" / "pkgconfig",
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapprox", description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--cmake-dir", action="store_true", help="the CMake package directory (adapprox_DIR)")
    group.add_argument("--include-dir", action="store_true", help="the public headers' directory")
    group.add_argument("--lib-dir", action="store_true", help="the directory of libadapprox")
    group.add_argument("--pkgconfig-dir", action="store_true", help="the directory of adapprox.pc")
    group.add_argument("--version", action="store_true", help="the version")
    args = parser.parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    key = next(k for k in ("cmake_dir", "include_dir", "lib_dir", "pkgconfig_dir") if getattr(args, k))
    path = _locations()[key]
    if not path.is_dir():
        print(f"python -m adapprox: {path} does not exist; this adapprox was not installed from its wheel "
              "(a staged development build has no SDK; pip install it, or cmake --install the C++ build)",
              file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
