"""Benchmarks: what isolation costs, as ratios (``python -m tests.perf.bench``)."""
