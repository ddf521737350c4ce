"""Every public optimizer class documents every constructor argument in an ``Args:`` section,
and every public function its arguments."""
from __future__ import annotations

import inspect
import re

import pytest

import adapprox.numpy as an
import adapprox.torch as at

CLASSES = [(f"{mod.__name__}.{name}", getattr(mod, name)) for mod in (at, an) for name in mod.__all__]
try:  # adapprox.jax's factories (with the jax extra)
    import adapprox.jax as aj
    CLASSES += [(f"adapprox.jax.{name}", getattr(aj, name)) for name in aj.__all__
                if inspect.isfunction(getattr(aj, name)) and name not in ("memory_report", "rank_capacity")]
except ImportError:
    pass


def _args_section(doc: str) -> dict[str, str]:
    """name -> text of the entries under 'Args:' (8-space indented 'name: text' lines)."""
    _, _, tail = doc.partition("\n    Args:\n")
    entries = {}
    for line in tail.splitlines():
        m = re.match(r"^        (\w+): (.+)$", line)
        if m:
            entries[m.group(1)] = m.group(2)
        elif line.strip() and not line.startswith("         "):
            break
    return entries


@pytest.mark.parametrize("qualname,cls", CLASSES, ids=[q for q, _ in CLASSES])
def test_every_constructor_argument_is_documented(qualname, cls):
    doc = inspect.getdoc(cls) and cls.__doc__
    assert doc and "\n    Args:\n" in doc, f"{qualname} has no Args section"
    documented = _args_section(doc)
    signature = inspect.signature(cls.__init__ if inspect.isclass(cls) else cls)
    wanted = [p for p in signature.parameters if p != "self"]
    missing = [p for p in wanted if p not in documented]
    assert not missing, f"{qualname}: Args does not describe {missing}"
    extra = [p for p in documented if p not in wanted]
    assert not extra, f"{qualname}: Args describes arguments the constructor does not take: {extra}"
    assert all(len(text) > 10 for text in documented.values())


def test_adapprox_rank_control_arguments_are_explained():
    doc = _args_section(at.Adapprox.__doc__)
    for name in ("tol", "oversample", "power_iters", "cosine_guidance", "seed"):
        assert len(doc[name]) > 40, (name, doc[name])
