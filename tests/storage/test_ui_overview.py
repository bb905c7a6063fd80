"""The overview's per-arm plots against figures computed here from the seeded exchanges."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

import migrations
from core import Exchange, Role, Route
from storage.database import Database
from storage.ui_bins import BIN_RATIO, bin_bounds, quantile_from_bins
from storage.ui_overview import Arm, Duration, arm_activity, exact_latency_quantiles
from storage.window import ExchangeWindow
from tests.storage.ui_data import CANDIDATE, T0, build_traffic, candidate_of_window, store

HOUR = 3600


def _arm_calls(
    exchanges: Sequence[Exchange], window: ExchangeWindow
) -> list[tuple[int, Arm, bool, float | None, float | None]]:
    """(hour bucket, arm, ok, latency, ttft) of every non-noise call in the window."""
    calls = []
    for e in exchanges:
        if not candidate_of_window(e):
            continue
        if window.since is not None and e.created_at < window.since:
            continue
        if window.route is not None and e.route is not window.route:
            continue
        bucket = math.floor(e.created_at.timestamp() / HOUR)
        for o in e.observations:
            if o.role is Role.NOISE:
                continue
            arm = Arm.CANDIDATE if o.upstream == CANDIDATE else Arm.PRIMARY
            calls.append((bucket, arm, o.ok, o.latency_ms, o.ttft_ms))
    return calls


def _bins(values: list[float]) -> dict[int, int]:
    found = np.floor(20 * np.log10(np.maximum(np.array(values), 1.0))).astype(int)
    return dict(Counter(int(b) for b in found))


WINDOWS = [
    pytest.param(ExchangeWindow(candidate=CANDIDATE), id="all"),
    pytest.param(
        ExchangeWindow(candidate=CANDIDATE, since=T0 + timedelta(hours=1), route=Route.CHAT),
        id="last-two-hours-chat",
    ),
]


@pytest.mark.parametrize("window", WINDOWS)
async def test_latency_bins_errors_and_fallbacks_per_arm_and_hour(
    database: Database, window: ExchangeWindow
) -> None:
    exchanges = build_traffic(900)
    await store(database, exchanges)
    activity = await arm_activity(database, window, bucket_s=HOUR)

    calls = _arm_calls(exchanges, window)
    for histogram in activity.latency:
        assert histogram.duration is Duration.LATENCY
        expected = [lat for _, arm, ok, lat, _ in calls if ok and arm is histogram.arm]
        assert histogram.counts == _bins([v for v in expected if v is not None])
        assert histogram.n == len(expected) > 50

    rates = {(p.bucket.timestamp() // HOUR, p.arm): p for p in activity.rates}
    assert len(rates) == len({(b, arm) for b, arm, *_ in calls})
    for (bucket, arm), point in rates.items():
        mine = [ok for b, a, ok, *_ in calls if b == bucket and a is arm]
        assert point.calls == len(mine)
        assert point.failed == mine.count(False)
    served_by_candidate: dict[int, list[bool]] = defaultdict(list)
    for e in exchanges:
        in_window = window.since is None or e.created_at >= window.since
        in_window = in_window and candidate_of_window(e) and window.route in (None, e.route)
        if in_window and e.decision.served_is_candidate:
            served_by_candidate[math.floor(e.created_at.timestamp() / HOUR)].append(e.fallback)
    for bucket, fallbacks in served_by_candidate.items():
        point = rates[(bucket, Arm.CANDIDATE)]
        assert (point.assigned, point.fallbacks) == (len(fallbacks), sum(fallbacks))
        assert point.fallback_rate == pytest.approx(sum(fallbacks) / len(fallbacks))
    assert sum(p.fallbacks for p in activity.rates) > 0


async def test_time_to_first_token_bins_per_arm(database: Database) -> None:
    exchanges = build_traffic(600, seed=2)
    await store(database, exchanges)
    window = ExchangeWindow(candidate=CANDIDATE)
    activity = await arm_activity(database, window, bucket_s=HOUR)
    histograms = {h.arm: h for h in activity.ttft}
    calls = _arm_calls(exchanges, window)
    for arm in Arm:
        expected = [t for _, a, ok, _, t in calls if ok and a is arm and t is not None]
        assert histograms[arm].counts == _bins(expected)
        assert histograms[arm].duration is Duration.TTFT


def _exact_quantiles(
    exchanges: Sequence[Exchange], window: ExchangeWindow
) -> dict[tuple[int, Arm], tuple[int, float, float]]:
    grouped: dict[tuple[int, Arm], list[float]] = defaultdict(list)
    for bucket, arm, ok, latency, _ in _arm_calls(exchanges, window):
        if ok and latency is not None:
            grouped[(bucket, arm)].append(latency)
    return {
        key: (len(v), float(np.quantile(v, 0.5)), float(np.quantile(v, 0.95)))
        for key, v in grouped.items()
    }


async def test_p50_and_p95_over_time_match_the_exact_quantiles_within_the_stated_resolution(
    database: Database,
) -> None:
    exchanges = build_traffic(1200, seed=3)
    await store(database, exchanges)
    window = ExchangeWindow(candidate=CANDIDATE)
    activity = await arm_activity(database, window, bucket_s=HOUR)
    found = [activity.quantiles()]
    assert found[0].resolution == pytest.approx(10 ** (1 / 20))
    if database.dialect == "postgresql":
        found.append(await exact_latency_quantiles(database, window, bucket_s=HOUR))
        assert found[1].resolution == 1.0
    else:
        with pytest.raises(ValueError, match="PostgreSQL"):
            await exact_latency_quantiles(database, window, bucket_s=HOUR)
    exact = _exact_quantiles(exchanges, window)
    for series in found:
        assert {(p.bucket.timestamp() // HOUR, p.arm) for p in series.points} == set(exact)
        for point in series.points:
            n, p50, p95 = exact[(point.bucket.timestamp() // HOUR, point.arm)]
            assert point.n == n > 40
            for got, want in ((point.p50_ms, p50), (point.p95_ms, p95)):
                assert want / series.resolution - 1e-9 <= got <= want * series.resolution + 1e-9


@pytest.mark.postgres
async def test_sqlite_binned_and_postgresql_exact_quantiles_agree_within_one_bin(
    pg_url: str, tmp_path: Path
) -> None:
    exchanges = build_traffic(1200, seed=4)
    window = ExchangeWindow(candidate=CANDIDATE)
    found = []
    for url in (f"sqlite+aiosqlite:///{tmp_path / 'ui.db'}", pg_url):
        await migrations.upgrade(url)
        db = Database(url)
        try:
            await store(db, exchanges)
            if db.dialect == "sqlite":
                found.append((await arm_activity(db, window, bucket_s=HOUR)).quantiles())
            else:
                found.append(await exact_latency_quantiles(db, window, bucket_s=HOUR))
        finally:
            await db.dispose()
    sqlite, postgresql = found
    assert len(sqlite.points) == len(postgresql.points) == 6  # 3 hours, 2 arms
    for binned, exact in zip(sqlite.points, postgresql.points, strict=True):
        assert (binned.bucket, binned.arm, binned.n) == (exact.bucket, exact.arm, exact.n)
        for got, want in ((binned.p50_ms, exact.p50_ms), (binned.p95_ms, exact.p95_ms)):
            assert abs(math.log(got / want)) <= math.log(BIN_RATIO)


def test_a_quantile_read_from_bins_lies_in_the_bin_of_its_order_statistic() -> None:
    rng = np.random.default_rng(5)
    values = np.exp(rng.normal(6.0, 1.0, 5_000))
    counts = Counter(int(b) for b in np.floor(20 * np.log10(values)))
    for q in (0.0, 0.01, 0.5, 0.95, 0.999, 1.0):
        got = quantile_from_bins(counts, q)
        order_statistic = np.sort(values)[math.floor(q * (values.size - 1))]
        low, high = bin_bounds(int(np.floor(20 * np.log10(order_statistic))))
        assert low <= got < high
        assert abs(math.log(got / np.quantile(values, q))) <= math.log(BIN_RATIO)
    assert math.isnan(quantile_from_bins({}, 0.5))
    with pytest.raises(ValueError, match="between 0 and 1"):
        quantile_from_bins(counts, 1.5)
