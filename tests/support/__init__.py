"""Shared helpers for the acmefleet test suite and benchmarks."""
