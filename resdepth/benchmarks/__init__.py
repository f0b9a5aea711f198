"""Throughput benchmarks: resdepth's training loop against the textbook loop most tutorials write."""
