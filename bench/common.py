"""Shared helpers: GPT-2 parameter shapes, machine info, JSON results, plain-text tables."""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

# BENCH_RESULTS_DIR redirects every suite's JSON and PNGs (the smoke tests write to a temporary folder).
RESULTS_DIR = Path(os.environ.get("BENCH_RESULTS_DIR") or Path(__file__).resolve().parent / "results")
REPO_ROOT = Path(__file__).resolve().parent.parent


def gpt2_shapes(layers: int, width: int, vocab: int = 50257, ctx: int = 1024):
    """(name, shape) of a GPT-2 with tied embeddings (wte counted once); Conv1D weights are (in, out)."""
    shapes = [("wte", (vocab, width)), ("wpe", (ctx, width))]
    for i in range(layers):
        h = f"h{i}."
        shapes += [
            (h + "ln_1.weight", (width,)), (h + "ln_1.bias", (width,)),
            (h + "attn.c_attn.weight", (width, 3 * width)), (h + "attn.c_attn.bias", (3 * width,)),
            (h + "attn.c_proj.weight", (width, width)), (h + "attn.c_proj.bias", (width,)),
            (h + "ln_2.weight", (width,)), (h + "ln_2.bias", (width,)),
            (h + "mlp.c_fc.weight", (width, 4 * width)), (h + "mlp.c_fc.bias", (4 * width,)),
            (h + "mlp.c_proj.weight", (4 * width, width)), (h + "mlp.c_proj.bias", (width,)),
        ]
    shapes += [("ln_f.weight", (width,)), ("ln_f.bias", (width,))]
    return shapes


def _git_commit():
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip(), bool(dirty)
    except (OSError, subprocess.CalledProcessError):
        return None, None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions():
    """Versions of the optional packages the suites use (None when absent)."""
    out = {}
    for mod, name in (("matplotlib", "matplotlib"), ("sklearn", "scikit-learn"), ("came_pytorch", "came-pytorch"),
                      ("pytorch_optimizer", "pytorch-optimizer")):
        try:
            from importlib import metadata
            out[name] = metadata.version(name)
        except Exception:  # noqa: BLE001 - absent or unreadable metadata
            out[name] = None
    return out


def _gpu():
    import torch

    if not torch.cuda.is_available():
        return None
    return dict(name=torch.cuda.get_device_name(0), cuda=torch.version.cuda, count=torch.cuda.device_count())


def machine_info():
    import numpy
    import torch

    import adapprox

    commit, dirty = _git_commit()
    return dict(platform=platform.platform(), cpu_model=_cpu_model(), gpu=_gpu(), packages=_versions(),
                python=sys.version.split()[0], cpu_count=os.cpu_count(), torch=torch.__version__,
                numpy=numpy.__version__, adapprox=adapprox.__version__, torch_threads=torch.get_num_threads(),
                adapprox_threads=adapprox.num_threads(), git_commit=commit, git_dirty=dirty,
                command="python -m bench " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("__main__.py")
                else " ".join(sys.argv), time=time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def write_results(suite: str, results: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{suite}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(suite=suite, machine=machine_info(), **results), indent=2) + "\n")
    tmp.replace(path)
    return path


def resolve_device(name: str):
    """torch.device for --device; refuses clearly when CUDA is asked for and not available."""
    import torch

    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {name}: CUDA is not available here (torch {torch.__version__}, "
                             f"torch.cuda.is_available() is False); run without --device or on a CUDA machine")
        return torch.device(name)
    raise SystemExit(f"--device {name}: expected cpu or cuda[:N]")


def synchronize(device) -> None:
    """Wait for the device's queued work (a no-op on CPU), so that wall-clock timing is honest."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def state_bytes(opt) -> int:
    """Optimizer-state bytes: ``memory_report()`` for adapprox optimizers (native state), else
    every non-scalar tensor in ``opt.state`` (scalar step counters left out, as in memory_report)."""
    import torch

    if hasattr(opt, "memory_report"):
        return int(opt.memory_report()["total_bytes"])
    return sum(t.numel() * t.element_size() for st in opt.state.values() for t in st.values()
               if torch.is_tensor(t) and t.dim() > 0)


def pyplot():
    """matplotlib.pyplot with a file-only backend, or None (plots are then skipped, and said so)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(fig, name: str, dpi: int = 80):
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.png"
    fig.savefig(path, dpi=dpi)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return path


def sig(x, digits=4):
    """x rounded to `digits` significant digits (keeps the result files small)."""
    return float(f"{x:.{digits}g}")


def table(headers, rows) -> str:
    cells = [list(map(str, headers))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])


def quartiles(xs):
    """(q1, median, q3) of a list of numbers (inclusive method)."""
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[1], q[2]


def round_robin(steps: dict, warmup: int, reps: int, max_other: float, max_time: float):
    """Times each callable of ``steps`` (name -> callable) once per repetition, in a rotating order.

    The first ``warmup`` repetitions are not kept. A repetition during which other processes used
    more than ``max_other`` of the CPUs (``OtherLoad``) is dropped and run again, until ``reps``
    are kept; after ``max_time`` seconds every repetition is kept, however loaded. Returns
    ``(times, cpu, repetitions, contended)``: per name the kept wall and process times in seconds,
    each repetition's load and fate, and whether any kept repetition was loaded."""
    names = list(steps)
    times, cpu = {n: [] for n in names}, {n: [] for n in names}
    meter, log, start = OtherLoad(), [], time.monotonic()
    while sum(r["accepted"] for r in log) < reps:
        meter.start()
        sample = {}
        for i in range(len(names)):
            name = names[(len(log) + i) % len(names)]
            t0, c0 = time.perf_counter(), time.process_time()
            steps[name]()
            sample[name] = (time.perf_counter() - t0, time.process_time() - c0)
        other = meter.stop()
        warm = len(log) < warmup
        late = time.monotonic() - start > max_time
        accepted = not warm and (other is None or other <= max_other or late)
        log.append(dict(other_load=other, warmup=warm, accepted=accepted))
        print(f"  rep {len(log):2d}: other processes {'n/a' if other is None else f'{100 * other:.0f}%'} of CPUs"
              f" -> {'warm-up' if warm else 'kept' if accepted else 'dropped'}", flush=True)
        if accepted:
            for name, (dt, dc) in sample.items():
                times[name].append(dt)
                cpu[name].append(dc)
    contended = any(r["accepted"] and r["other_load"] is not None and r["other_load"] > max_other for r in log)
    if contended:
        print(f"WARNING: ran out of time (--max-time); some kept repetitions had other load > {max_other:.0%}")
    return times, cpu, log, contended



class OtherLoad:
    """Share of the machine's CPUs used by *other* processes between start() and stop():
    /proc/stat busy time minus this process's CPU time, over wall time x CPU count (None off Linux)."""

    def __init__(self):
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.cpus = os.cpu_count() or 1

    def _read(self):
        try:
            with open("/proc/stat") as f:
                vals = [int(x) for x in f.readline().split()[1:]]
        except OSError:
            return None
        return (sum(vals) - vals[3] - vals[4]) / self.tick  # busy seconds, all CPUs

    def start(self):
        self._t0, self._c0, self._b0 = time.perf_counter(), time.process_time(), self._read()

    def stop(self):
        wall, own, busy = time.perf_counter() - self._t0, time.process_time() - self._c0, self._read()
        if busy is None or self._b0 is None or wall <= 0:
            return None
        return max(0.0, (busy - self._b0 - own) / (wall * self.cpus))
