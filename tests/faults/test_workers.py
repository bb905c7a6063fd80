"""``understudy serve --workers 2``: two proxy processes on one port, one recorder, one /metrics.

The kernel spreads connections between the workers (SO_REUSEPORT); each hands its
exchanges to the one recorder; any worker's ``/metrics`` is the host's; SIGTERM
drains every worker and then the recorder.
"""

from __future__ import annotations

import asyncio
import signal
import urllib.request
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

import migrations
from tests.faults.checks import assert_log_is_json
from tests.faults.fake_process import FakeProcess
from tests.faults.load import Load, drive
from tests.faults.serve import Proxy, start_proxy
from tests.faults.stored import id_counts

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

WORKERS = 2
SLOW_PRIMARY_S = 0.5  # so that requests are still in flight when SIGTERM comes


def primary_requests(text: str) -> float:
    """Requests answered to clients (all by the primary in shadow mode)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "understudy_requests_total" and sample.labels.get("arm") == "served"
    )


async def worker_metrics(proxy: Proxy) -> dict[int, str]:
    """Each worker's own metrics, read from its socket in the folder the workers share."""
    own = {}
    for argv in proxy.children("understudy.worker").values():
        index = int(argv[argv.index("--index") + 1])
        socket = Path(argv[argv.index("--folder") + 1]) / f"worker-{index}.sock"
        async with (
            aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket))) as session,
            session.get("http://worker/metrics") as response,
        ):
            own[index] = await response.text()
    return own


def scrape(proxy: Proxy) -> str:
    with urllib.request.urlopen(f"{proxy.url}/metrics", timeout=10) as response:
        body: bytes = response.read()
    return body.decode()


async def test_two_workers_share_the_port_one_recorder_and_one_metrics_page(
    tmp_path: Path, figure: Callable[[str], None]
) -> None:
    db = tmp_path / "understudy.db"
    db_url = f"sqlite+aiosqlite:///{db}"
    await migrations.upgrade(db_url)
    load, draining = Load(), Load()
    with (
        FakeProcess(persona="openai", first_byte_delay_s=SLOW_PRIMARY_S) as primary,
        FakeProcess(persona="candidate", first_byte_delay_s=0.05) as candidate,
    ):
        proxy = await asyncio.to_thread(
            start_proxy,
            tmp_path,
            db_url,
            (primary.base_url, candidate.base_url),
            args=["--workers", str(WORKERS)],
            log_level="info",
        )
        try:
            workers = await asyncio.to_thread(proxy.children, "understudy.worker")
            recorders = await asyncio.to_thread(proxy.children, "understudy.recorder")
            await drive(proxy.url, 4.0, load, rate=100)
            own = await worker_metrics(proxy)
            # Any worker answers /metrics for the host: every scrape sums both.
            merged = [await asyncio.to_thread(scrape, proxy) for _ in range(6)]
            # SIGTERM once 20 requests are sent and none answered: each worker finishes its own.
            in_flight = asyncio.create_task(drive(proxy.url, 0.2, draining, rate=100))
            await asyncio.sleep(0.3)
            proxy.process.send_signal(signal.SIGTERM)
            await in_flight
            exit_code = await asyncio.to_thread(proxy.process.wait, 60)
        finally:
            if proxy.process.poll() is None:
                await asyncio.to_thread(proxy.kill)
    assert exit_code == 0, proxy.log.read_text()[-3000:]

    per_worker = {i: primary_requests(text) for i, text in sorted(own.items())}
    totals = {primary_requests(text) for text in merged}
    figure(
        f"{WORKERS} workers (pids {sorted(workers)}), {len(recorders)} recorder: "
        f"{len(load.answered)} of {load.sent} answered; primary requests per worker "
        f"{per_worker}; every scrape of /metrics: {sorted(totals)}; SIGTERM with "
        f"{draining.sent} requests in flight: {len(draining.answered)} answered"
    )
    assert len(workers) == WORKERS and len(recorders) == 1
    assert load.failed == 0 and len(load.answered) == load.sent
    # The kernel gave both workers connections, and the page adds them up.
    assert all(count > 0 for count in per_worker.values()), per_worker
    assert totals == {float(load.sent)}, totals
    # One recorder stored everything, once; the drained requests too.
    ids = id_counts(db)
    assert set(ids) == load.answered | draining.answered
    assert all(n == 1 for n in ids.values())
    assert draining.failed == 0 and len(draining.answered) == draining.sent == 20
    # One controller leads among the workers (the database's leader lock).
    leaders = {
        sample.value
        for text in merged
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "understudy_rollout_controller_leader"
    }
    assert leaders == {1.0}, leaders
    assert_log_is_json(proxy)
