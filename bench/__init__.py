"""Benchmarks: the proxy's added latency and throughput, as ratios to calling the upstream directly."""
