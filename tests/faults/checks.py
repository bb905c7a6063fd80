"""Checks every fault-injection test makes on what the proxy process left behind."""

from __future__ import annotations

from tests.faults.serve import Proxy

MAX_SHOWN = 10


def assert_log_is_json(proxy: Proxy) -> int:
    """Every line the proxy wrote must be one JSON object; the offending lines are shown.
    Returns how many lines were checked (there must be some, or nothing was checked)."""
    lines = proxy.log.read_text(errors="replace").splitlines()
    bad = proxy.non_json_lines()
    shown = "\n".join(line[:300] for line in bad[:MAX_SHOWN])
    assert not bad, f"{len(bad)} of {len(lines)} log lines are not JSON, e.g.:\n{shown}"
    assert lines, "the proxy wrote no log line at all"
    return len(lines)
