"""Benchmarks: scripts that measure vitc and write committed reports under results/."""
