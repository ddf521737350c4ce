"""Entry point: ``python -m bench {step,memory,family,train,glm,distributed,profile,moments,all} [suite options]``."""
import importlib
import sys

SUITES = {"step": "bench.step_time", "memory": "bench.memory", "family": "bench.family", "train": "bench.train",
          "glm": "bench.glm", "distributed": "bench.distributed", "profile": "bench.profile",
          "moments": "bench.moments"}


def main(argv):
    if not argv or argv[0] not in (*SUITES, "all"):
        print(f"usage: python -m bench {{{','.join(SUITES)},all}} [options]  (--help after a suite name)")
        return 2
    names = list(SUITES) if argv[0] == "all" else [argv[0]]
    for name in names:
        importlib.import_module(SUITES[name]).main(argv[1:] if argv[0] != "all" else [])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
