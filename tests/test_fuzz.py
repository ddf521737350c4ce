"""The atheris fuzz targets (fuzz/fuzz_spec.py, fuzz/fuzz_state.py), each run for a bounded time
(ADAPPROX_FUZZ_SECONDS, 15 s by default) over its seed corpus as a subprocess, with this test's
adapprox on the path, in a temporary working directory; plus the seeds themselves and the
regressions the fuzzers have found, as plain tests."""
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

import adapprox
from adapprox import _core

FUZZ = ROOT / "fuzz"
SECONDS = int(os.environ.get("ADAPPROX_FUZZ_SECONDS", "15"))
ARTIFACTS = ("crash-", "leak-", "timeout-", "oom-", "slow-unit-")


def require_atheris():
    try:
        import atheris  # noqa: F401
    except ImportError:
        if platform.system() != "Linux" or platform.machine() != "x86_64":
            pytest.skip("atheris wheels are for Linux x86-64 only")
        pytest.fail("atheris is required for the fuzz targets (pip install atheris; it is in the test extra)")


def listing(folder: Path):
    return sorted((str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*")
                  if "__pycache__" not in p.parts)


@pytest.mark.parametrize("target", ["spec", "state"])
def test_fuzz_target_runs_clean(tmp_path, target):
    require_atheris()
    seeds = FUZZ / "corpus" / target
    before = listing(FUZZ)
    found, artifacts = tmp_path / "found", tmp_path / "artifacts"
    found.mkdir()
    artifacts.mkdir()
    package = str(Path(adapprox.__file__).parent.parent)  # staged or installed, as imported here
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package, os.environ.get("PYTHONPATH")])),
               PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, str(FUZZ / f"fuzz_{target}.py"), f"-max_total_time={SECONDS}", "-timeout=20",
           "-rss_limit_mb=2048", f"-artifact_prefix={artifacts}{os.sep}", str(found), str(seeds)]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SECONDS + 180)
    crashes = sorted(p for p in tmp_path.rglob("*") if p.name.startswith(ARTIFACTS))
    report = "\n".join(f"{p.name}: {p.read_bytes()[:2000]!r}" for p in crashes)
    assert done.returncode == 0 and not crashes, f"{report}\n{done.stderr[-6000:]}"
    assert "Done" in done.stderr, done.stderr[-3000:]
    assert listing(FUZZ) == before, "the fuzz run changed fuzz/ (corpus or artifacts)"


def test_state_seeds_load():
    seeds = sorted((FUZZ / "corpus" / "state").iterdir())
    assert len(seeds) >= 4 and all(p.stat().st_size < 8192 for p in seeds)
    names = set()
    for p in seeds:
        if p.stem == "fullmatrixadagrad_wide":  # made to be refused: its extent disagrees with its sum
            with pytest.raises(ValueError, match="sum"):
                _core.load_state_check(p.read_bytes())
            continue
        spec = _core.load_state_check(p.read_bytes())
        names.add(spec.split(":")[0])
        assert _core.canonical_spec(spec) == spec
    assert {"adapprox", "adam", "sgd", "adafactor"} <= names


def test_spec_seeds_parse_or_are_refused_cleanly():
    seeds = sorted((FUZZ / "corpus" / "spec").iterdir())
    assert len(seeds) >= 12
    created = 0
    for p in seeds:
        try:
            created += bool(_core.canonical_spec(p.read_text()))
        except ValueError:
            pass
    assert created >= 12


# Regressions found by the fuzzers.

def test_spec_values_that_underflow_are_numbers():
    # strtod reports underflow with ERANGE; a subnormal is finite and must round-trip through spec()
    spec = _core.canonical_spec("adam:eps=2.5e-318,lr=1e-400")
    assert _core.parse_spec(spec)[1]["eps"] == 2.5e-318 and _core.parse_spec(spec)[1]["lr"] == 0.0
    for bad in ("adam:lr=1e400", "adam:lr=-1e999", "adam:lr=nan", "adam:lr=inf"):
        with pytest.raises(ValueError, match="finite"):
            _core.parse_spec(bad)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_state_with_a_non_finite_hyperparameter_is_refused(value):
    # decode_state takes any double; a loaded optimizer's spec() must stay parseable
    hyper = dict(_core.spec_defaults("sgd"), lr=value)
    data = _core.encode_state("sgd", hyper, [None])
    assert _core.decode_state(data)[0] == "sgd"
    with pytest.raises(ValueError, match="finite"):
        _core.load_state_check(data)


def test_integer_keys_must_be_whole_numbers_in_range():
    for bad in ("adapprox:rank=1e300", "adapprox:rank=2.5", "adapprox:seed=-1", "adapprox:oversample=3e9"):
        with pytest.raises(ValueError, match="whole number"):
            _core.canonical_spec(bad)
