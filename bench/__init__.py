"""Adapprox CPU benchmarks: ``python -m bench <suite>`` from the repository root (see bench/README.md)."""
