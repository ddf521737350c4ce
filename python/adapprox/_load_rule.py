"""One rule for the hyperparameters that travel with native state (``save_native_state``), the
same in C (``adx_state_load``), C++ (``Optimizer::load``) and Python, and torch's own
(``load_state_dict`` restores ``param_groups``): loading restores the saved hyperparameters;
``keep_hyperparameters=True`` (C: ``ADX_LOAD_KEEP_HYPERPARAMETERS``) keeps the live ones.

The bytes hold the C++ API's spec keys (``lr``, ``beta1``, ``eps1_auto``, ...); a group holds the
front's own keys (``betas``, ``eps=(None, 1e-3)``, ``max_rank=None``). ``group_from_spec`` maps
the one onto the other and proves the mapping by mapping back: the group it returns gives exactly
the saved spec, or it raises."""
from __future__ import annotations

from . import _core
from ._adafactor_state import PAPER_EPS1
from ._precision import NAMES as PRECISION_NAMES


def _like(old, value: float):
    """value in the type the group holds for this key (bool, int, float, a tensor)."""
    if isinstance(old, bool):
        return bool(value)
    if isinstance(old, int) and float(value).is_integer():
        return int(value)
    if hasattr(old, "new_tensor"):  # a tensor lr stays a tensor
        return old.new_tensor(value)
    return float(value)


def group_from_spec(algorithm: str, group: dict, saved: dict, to_spec) -> dict:
    """A copy of ``group`` holding the saved hyperparameters ``saved`` (spec keys); ``to_spec``
    is the front's group -> spec mapping. ValueError if no group gives exactly ``saved``."""
    g = dict(group)
    want = _core.check_hyper(algorithm, saved)  # keys the bytes lack (older files) take their defaults
    for key, value in want.items():
        if key in ("beta1", "beta2") and "betas" in g and key not in g:
            betas = list(g["betas"])
            i = 0 if key == "beta1" else 1
            betas[i] = _like(betas[i], value)
            g["betas"] = tuple(betas)
        elif key == "state_precision":
            g[key] = PRECISION_NAMES[int(value)]
        elif key == "stochastic_rounding":
            g[key] = bool(value)
        elif key in g:
            g[key] = _like(g[key], value)
    saved = want
    if algorithm == "adapprox" and saved.get("max_rank") == 0:
        g["max_rank"] = None  # 0 in a spec is "no cap"
    if algorithm == "adafactor":  # mode and eps are spelled differently in a group
        paper = bool(saved.get("mode", 0))
        g["mode"] = "paper" if paper else "torch"
        eps1 = None if saved.get("eps1_auto") else saved.get("eps1")
        if paper and eps1 == PAPER_EPS1 and (group.get("eps") or (None,))[0] is None:
            eps1 = None
        g["eps"] = (eps1, saved.get("eps2"))
        g["beta1"] = saved["beta1"] if paper and saved.get("beta1") else None
    got = _core.check_hyper(algorithm, to_spec(g))
    if got != want:
        differ = sorted(k for k in want if got.get(k) != want[k])
        raise ValueError(f"the saved hyperparameters ({', '.join(f'{k}={want[k]!r}' for k in differ)}) cannot be "
                         f"expressed as a {algorithm} parameter group; load with keep_hyperparameters=True to keep "
                         "this optimizer's own")
    return g
