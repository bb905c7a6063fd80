"""Two ``understudy serve`` processes on one PostgreSQL follow the rollout within a second;
with PostgreSQL stopped, the kill file still sends both to the primary within a second."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

import migrations
from storage.database import Database
from storage.flags import current_flags
from tests.faults.fake_process import FakeProcess
from tests.faults.serve import REPO, Proxy, start_proxy
from tests.pg import PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

DEADLINE_S = 1.0
SERVED_BY = "x-understudy-served-by"
CANDIDATES = json.dumps([{"name": "local", "base_url": "http://unused.invalid/v1"}])


def rollout_cli(url: str, *args: str) -> str:
    """``understudy rollout ...`` as an operator runs it: its own process, no server involved."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "UNDERSTUDY_DATABASE_URL": url,
        "UNDERSTUDY_CANDIDATES": CANDIDATES,
        "UNDERSTUDY_ROLLOUT__MODE": "shadow",
    }
    done = subprocess.run(
        [sys.executable, "-m", "understudy.cli", "rollout", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class Prober:
    """Sends one chat request after another to a proxy and notes who served each."""

    def __init__(self, session: aiohttp.ClientSession, proxy: Proxy, name: str) -> None:
        self.session = session
        self.proxy = proxy
        self.name = name
        self.served: list[tuple[float, int, str]] = []  # wall time answered, status, server

    async def one(self, i: int) -> tuple[int, str]:
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"q{i}"}]}
        headers = {"Authorization": "Bearer sk-client-e2e", "x-understudy-subject": f"u{i}"}
        async with self.session.post(
            f"{self.proxy.url}/v1/chat/completions", json=body, headers=headers
        ) as response:
            await response.read()
            result = (response.status, response.headers.get(SERVED_BY, ""))
        self.served.append((time.time(), *result))
        return result

    async def until(self, server: str, limit_s: float = 10.0) -> float:
        """Wall time of the first answer from ``server``; every answer must be a 200."""
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < limit_s:
            status, by = await self.one(i)
            assert status == 200, (self.name, status)
            if by == server:
                return self.served[-1][0]
            i += 1
        raise AssertionError(f"{self.name}: no answer from {server} within {limit_s} s")


async def test_two_replicas_follow_the_cli_and_the_kill_file_without_the_database(
    pg_server: PostgresServer,
    pg_url: str,
    tmp_path: Path,
    figure: Callable[[str], None],
) -> None:
    await migrations.upgrade(pg_url)
    kill_file = tmp_path / "kill"
    with (
        FakeProcess(persona="openai", first_byte_delay_s=0.005) as primary,
        FakeProcess(persona="candidate", first_byte_delay_s=0.005) as candidate,
    ):
        proxies: list[Proxy] = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            proxies.append(
                await asyncio.to_thread(
                    start_proxy,
                    tmp_path / name,
                    pg_url,
                    (primary.base_url, candidate.base_url),
                    env={"UNDERSTUDY_KILL_FILE": str(kill_file)},
                )
            )
        try:
            async with aiohttp.ClientSession() as session:
                probers = [Prober(session, p, n) for p, n in zip(proxies, "ab", strict=True)]
                for prober in probers:  # shadow, as the settings seeded it
                    assert (await prober.one(0)) == (200, "openai")

                # Probing runs while the CLI runs: the lag is from the commit, not the exit.
                watching = asyncio.gather(*(p.until("local", limit_s=30) for p in probers))
                out = await asyncio.to_thread(
                    rollout_cli, pg_url, "set", "--percent", "100", "--reason", "all users"
                )
                assert "rollout now at version 2" in out
                seen = await watching
                async with Database(pg_url) as db:
                    changed_at = (await current_flags(db))[None].changed_at
                assert changed_at is not None  # stamped before the commit: lags are upper bounds
                lags = [t - changed_at.timestamp() for t in seen]

                pg_server.stop("immediate")
                try:
                    await asyncio.sleep(1.5)  # both replicas notice: stale, state kept
                    for prober in probers:
                        assert (await prober.one(1)) == (200, "local")
                    stale = [
                        p.metrics()["understudy_rollout_flag_staleness_seconds"] for p in proxies
                    ]
                    killed_at = datetime.now(UTC).timestamp()
                    kill_file.touch()
                    seen = await asyncio.gather(*(p.until("openai") for p in probers))
                    kill_lags = [t - killed_at for t in seen]
                    calls_before = len(await asyncio.to_thread(candidate.questions))
                    for prober in probers:  # and they keep serving, the primary alone
                        for i in range(20):
                            assert (await prober.one(100 + i)) == (200, "openai")
                    calls_after = len(await asyncio.to_thread(candidate.questions))
                    for proxy in proxies:
                        metrics = proxy.metrics()
                        assert metrics["understudy_rollout_kill_file_present"] == 1
                        assert metrics["understudy_rollout_flag_version"] == 2
                finally:
                    pg_server.start()
        finally:
            codes = [await asyncio.to_thread(p.terminate) for p in proxies]
    figure(
        f"CLI change served by both replicas {lags[0]:.3f} s and {lags[1]:.3f} s after its "
        f"commit; database down: staleness {stale[0]:.2f} s / {stale[1]:.2f} s, kill file obeyed "
        f"after {kill_lags[0]:.3f} s and {kill_lags[1]:.3f} s"
    )
    assert max(lags) < DEADLINE_S, lags
    assert max(kill_lags) < DEADLINE_S, kill_lags
    assert min(stale) > 1.0
    assert calls_after == calls_before  # killed: no shadow, no split to the candidate
    assert codes == [0, 0]
