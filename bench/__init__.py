"""Benchmark scripts (not tests): each prints Mallard against a same-run baseline. See docs/benchmarks.md."""
