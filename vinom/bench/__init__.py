"""Benchmarks: `python -m vinom.bench <scenario>`."""
