"""Benchmarks (``make bench``): every figure is a ratio against a same-run baseline."""
