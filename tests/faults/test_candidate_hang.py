"""A candidate that hangs for a minute must not move the primary's latency nor grow the proxy.

The DESIGN rule "the primary always wins in shadow mode", measured on the real
``understudy serve`` process: the same load runs against a healthy candidate,
then for 60 s against one that never answers, then against a healthy one again.
The client's p99 latency of the primary's answers while the candidate hangs is
compared with the healthy phases before and after it, which together cancel a
drift in the machine's load over the test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

import migrations
from core import Role
from tests.fakes import Fault
from tests.faults.checks import assert_log_is_json
from tests.faults.fake_process import FakeProcess
from tests.faults.load import Load, drive, percentile
from tests.faults.serve import Proxy, start_proxy
from tests.faults.stored import timed_out_latencies_ms

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

RATE = 50  # requests per second, every one shadowed
WARM_UP_S = 3.0  # connection pools, first imports: not measured
HEALTHY_S = 15.0  # before the hang, and again after it
HANG_S = 60.0
PRIMARY_DELAY_S = 0.2
# A short candidate timeout turns the hang into churn: the 64 shadows the candidate's
# cap admits time out after 5 s, are recorded, and 64 more hang in their place.
CANDIDATE_TIMEOUT_S = 5.0
P99_RATIO = 1.10
# Timed-out shadows end at their deadline, not at the next whole second: their
# recorded latency exceeds the timeout by the loop's delay only.
TIMEOUT_OVERSHOOT_S = 0.25
RSS_GROWTH_LIMIT = 50 * 1024 * 1024
RSS_SAMPLE_S = 5.0


async def sample_rss(proxy: Proxy, samples: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append(proxy.rss_bytes())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RSS_SAMPLE_S)


async def test_hung_candidate_moves_neither_primary_p99_nor_memory(
    tmp_path: Path, figure: Callable[[str], None]
) -> None:
    db = tmp_path / "understudy.db"
    db_url = f"sqlite+aiosqlite:///{db}"
    await migrations.upgrade(db_url)
    candidates = [{"name": "local", "base_url": "", "timeout_s": CANDIDATE_TIMEOUT_S}]
    with (
        FakeProcess(persona="openai", first_byte_delay_s=PRIMARY_DELAY_S) as primary,
        FakeProcess(persona="candidate", first_byte_delay_s=PRIMARY_DELAY_S) as candidate,
    ):
        candidates[0]["base_url"] = candidate.base_url
        env = {
            "UNDERSTUDY_CANDIDATES": json.dumps(candidates),
            "UNDERSTUDY_ROLLOUT__SHADOW_RATE": "1.0",
            # The hang must churn for its whole minute: an open breaker would stop the
            # shadows after the first timeouts (tests/proxy/test_breaker.py covers that).
            "UNDERSTUDY_BREAKER__ENABLED": "false",
        }
        proxy = await asyncio.to_thread(
            start_proxy,
            tmp_path,
            db_url,
            (primary.base_url, candidate.base_url),
            env=env,
            log_level="info",
        )
        try:
            warm_up, before, after = Load(), Load(), Load()
            await drive(proxy.url, WARM_UP_S, warm_up, rate=RATE)
            await drive(proxy.url, HEALTHY_S, before, rate=RATE)
            shadowed = len(await asyncio.to_thread(candidate.questions))

            await asyncio.to_thread(candidate.set_fault, Fault.HANG)
            rss: list[int] = []
            stop = asyncio.Event()
            sampler = asyncio.create_task(sample_rss(proxy, rss, stop), name="rss-sampler")
            hung = Load()
            await drive(proxy.url, HANG_S, hung, rate=RATE)
            stop.set()
            await sampler
            rss.append(proxy.rss_bytes())
            metrics = await asyncio.to_thread(proxy.metrics)

            await asyncio.to_thread(candidate.set_fault, None)
            await asyncio.sleep(CANDIDATE_TIMEOUT_S)  # the calls still hanging expire
            await drive(proxy.url, HEALTHY_S, after, rate=RATE)
        finally:
            exit_code = await asyncio.to_thread(proxy.terminate)
    assert exit_code == 0, proxy.log.read_text()[-3000:]

    healthy = before.latencies_s() + after.latencies_s()
    base_p99 = percentile(healthy, 99)
    hung_p99 = percentile(hung.latencies_s(), 99)
    allowed = base_p99 * P99_RATIO
    growth = rss[-1] - rss[0]
    figure(
        f"primary {PRIMARY_DELAY_S * 1000:.0f} ms; p99 healthy {base_p99 * 1000:.1f} ms "
        f"({len(healthy)} req; before {percentile(before.latencies_s(), 99) * 1000:.1f}, "
        f"after {percentile(after.latencies_s(), 99) * 1000:.1f}), hung candidate "
        f"{hung_p99 * 1000:.1f} ms ({len(hung.outcomes)} req): ratio "
        f"{hung_p99 / base_p99:.3f}, allowed {P99_RATIO}; p50 "
        f"{percentile(healthy, 50) * 1000:.1f} -> {percentile(hung.latencies_s(), 50) * 1000:.1f} ms"
    )
    figure(
        f"proxy RSS {rss[0] / 2**20:.1f} -> {rss[-1] / 2**20:.1f} MiB over {HANG_S:g} s "
        f"(growth {growth / 2**20:+.1f} MiB, peak {max(rss) / 2**20:.1f} MiB); "
        f"shadows skipped {metrics.get('understudy_shadows_skipped_total', 0):.0f}, "
        f"failed {metrics.get('understudy_shadows_failed_total', 0):.0f}"
    )
    # Every request before the hang was shadowed.
    assert shadowed == warm_up.sent + before.sent, (shadowed, warm_up.sent + before.sent)
    # Every request answered, in every phase.
    failed = (before.failed, hung.failed, after.failed)
    assert failed == (0, 0, 0), failed
    assert len(hung.outcomes) >= 0.95 * RATE * HANG_S
    assert hung_p99 <= allowed, f"p99 ratio {hung_p99 / base_p99:.3f}"
    assert growth < RSS_GROWTH_LIMIT
    # The candidate really hung: shadows were cut by its timeout or skipped at its cap.
    assert metrics.get("understudy_shadows_skipped_total", 0) > 0
    timed_out = timed_out_latencies_ms(db, Role.SHADOW)
    overshoot_s = percentile(timed_out, 50) / 1000 - CANDIDATE_TIMEOUT_S
    figure(
        f"{len(timed_out)} shadows timed out, median {overshoot_s * 1000:+.0f} ms past the deadline"
    )
    assert timed_out and overshoot_s < TIMEOUT_OVERSHOOT_S
    figure(f"{assert_log_is_json(proxy)} log lines, every one JSON")
