"""The soak: Understudy shadowing and recording at a steady rate for minutes, watched for growth.

Every 10 s it samples the server's resident memory and open files (its whole process
tree), the files split into connections the load generator made to it, connections it
made to its upstreams, and the rest. Growth is judged on the second half of the run,
after warm-up: a leak keeps climbing there, a cache fills and stops. The load generator
pools its connections as the openai SDK does (bench/load.py), so connections from it
stay open only while it needs them.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from typing import Any

from scipy.stats import theilslopes

from bench import peers

SAMPLE_EVERY_S = 10.0


def _slope_per_minute(times: list[float], values: list[float]) -> float:
    """The trend, by Theil-Sen (the median of the pairwise slopes): a burst that is under
    way at one sample, such as the last, does not pass for growth as it would in a
    least-squares line."""
    if len(times) < 2:
        return 0.0
    return float(theilslopes(values, times).slope) * 60


def soak(rate: float, seconds: float) -> dict[str, Any]:
    samples: list[dict[str, float]] = []
    with (
        peers.mock() as (mock, _),
        tempfile.TemporaryDirectory() as db_dir,
        peers.understudy(mock, mock, db_dir) as (url, pid),
    ):
        generator = subprocess.Popen(
            [peers.PY, "-m", "bench.load", url, "--open", str(rate), "--duration", str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        started = time.monotonic()
        port = int(url.rsplit(":", 1)[1])
        while generator.poll() is None:
            kinds = peers.open_files_by_kind(pid, port)
            samples.append(
                {
                    "t_s": time.monotonic() - started,
                    "rss_mb": peers.rss_bytes(pid) / 2**20,
                    "open_files": float(sum(kinds.values())),
                    **{f"open_files_{kind}": float(n) for kind, n in kinds.items()},
                    "cpu_s": peers.cpu_seconds(pid),
                }
            )
            time.sleep(SAMPLE_EVERY_S)
        stdout, _ = generator.communicate()

    load = json.loads(stdout)
    late = [s for s in samples if s["t_s"] >= seconds / 2]
    times = [s["t_s"] for s in late]
    rss_growth = _slope_per_minute(times, [s["rss_mb"] for s in late])
    files_growth = _slope_per_minute(times, [s["open_files"] for s in late])
    growth_by_kind = {
        kind: _slope_per_minute(times, [s[f"open_files_{kind}"] for s in late])
        for kind in ("clients", "upstreams", "other")
    }
    by_kind = ", ".join(
        f"{kind} {samples[0][f'open_files_{kind}']:.0f} -> {samples[-1][f'open_files_{kind}']:.0f}"
        f" ({growth_by_kind[kind]:+.2f} per minute)"
        for kind in ("clients", "upstreams", "other")
    )
    report = (
        f"soak: {rate:g} req/s for {seconds:g} s, {load['requests']} requests, "
        f"{load['errors']} errors, p50 {load['p50_ms']:.2f} ms, p99 {load['p99_ms']:.2f} ms\n"
        f"RSS {samples[0]['rss_mb']:.1f} MB at start, {samples[-1]['rss_mb']:.1f} MB at the end, "
        f"{max(s['rss_mb'] for s in samples):.1f} MB at most; second half: "
        f"{rss_growth:+.2f} MB per minute\n"
        f"open files {samples[0]['open_files']:.0f} at start, {samples[-1]['open_files']:.0f} at "
        f"the end; second half: {files_growth:+.2f} per minute\n"
        f"  by kind, start -> end (second half): {by_kind}"
    )
    return {
        "rate": rate,
        "seconds": seconds,
        "load": load,
        "samples": samples,
        "rss_mb_per_minute_second_half": rss_growth,
        "open_files_per_minute_second_half": files_growth,
        "open_files_per_minute_second_half_by_kind": growth_by_kind,
        "report": report,
    }
