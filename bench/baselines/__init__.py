"""Frozen baselines the benchmarks measure against (never imported by the service)."""
