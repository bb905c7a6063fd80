"""Fault injection: the real ``understudy serve`` process under load, with upstreams that fail."""
