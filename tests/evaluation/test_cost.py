"""Prices, per-request cost per arm, monthly projections and break-even."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from core import ConfigError
from evaluation.cost import (
    SECONDS_PER_MONTH,
    ModelPrice,
    SelfHosted,
    api_cost,
    compare_cost,
    load_price_table,
)

LISTED = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3", "o4-mini")


def test_shipped_price_table_lists_the_models_with_a_date() -> None:
    table = load_price_table()
    assert isinstance(table.as_of, date)
    assert set(LISTED) <= set(table.models)
    for name in LISTED:
        price = table.models[name]
        assert 0 < price.cached_input <= price.input < price.output


def test_dated_snapshots_use_their_models_price() -> None:
    table = load_price_table()
    assert table.price_for("gpt-4o-2024-08-06") == table.models["gpt-4o"]
    assert table.price_for("gpt-4o-mini-2024-07-18") == table.models["gpt-4o-mini"]
    assert table.price_for("o3-mini") is None  # a different model, not o3
    assert table.price_for("llama-3.1-70b") is None


def test_an_edited_table_loads_and_a_broken_one_is_a_config_error(tmp_path: Path) -> None:
    good = tmp_path / "prices.toml"
    good.write_text(
        'as_of = 2030-01-31\n[models."m"]\ninput = 1.0\ncached_input = 0.5\noutput = 4.0\n'
    )
    table = load_price_table(good)
    assert table.as_of == date(2030, 1, 31)
    assert table.models["m"] == ModelPrice(1.0, 0.5, 4.0)
    bad = tmp_path / "bad.toml"
    bad.write_text('as_of = "soon"\n[models."m"]\ninput = 1.0\n')
    with pytest.raises(ConfigError):
        load_price_table(bad)


def test_api_cost_bills_cached_input_at_its_own_price() -> None:
    price = ModelPrice(input=2.5, cached_input=1.25, output=10.0)
    cost = api_cost(
        np.array([1000.0, 1000.0, np.nan]),
        np.array([200.0, np.nan, 0.0]),
        np.array([500.0, 500.0, 10.0]),
        price,
    )
    assert cost[0] == pytest.approx((800 * 2.5 + 200 * 1.25 + 500 * 10.0) / 1e6)
    assert cost[1] == pytest.approx((1000 * 2.5 + 500 * 10.0) / 1e6)  # unknown cache: none
    assert math.isnan(cost[2])


def test_self_hosted_cost_from_gpu_price_and_throughput() -> None:
    hosted = SelfHosted(gpu_usd_per_hour=2.0, output_tokens_per_s=1000.0, gpus=2)
    assert hosted.usd_per_second == pytest.approx(4.0 / 3600)
    cost = hosted.request_cost(np.array([300.0]), np.array([500.0]))
    assert cost[0] == pytest.approx(0.5 * 4.0 / 3600)
    with_prefill = SelfHosted(2.0, 1000.0, gpus=2, prompt_tokens_per_s=10_000.0)
    assert with_prefill.busy_seconds(np.array([300.0]), np.array([500.0]))[0] == pytest.approx(0.53)
    with pytest.raises(ConfigError):
        SelfHosted(gpu_usd_per_hour=2.0, output_tokens_per_s=0.0)


def test_monthly_projection_and_break_even() -> None:
    n = 1000
    time_s = np.linspace(0.0, 999.0, n)  # about one request per second
    primary = np.full(n, 0.004)
    hosted = SelfHosted(gpu_usd_per_hour=3.6, output_tokens_per_s=2000.0)  # $0.001 per second
    completion = np.full(n, 400.0)
    summary = compare_cost(
        primary_usd=primary,
        candidate_usd=hosted.request_cost(np.zeros(n), completion),
        time_s=time_s,
        prices_as_of=date(2025, 6, 15),
        self_hosted=hosted,
        candidate_busy_seconds=hosted.busy_seconds(np.zeros(n), completion),
    )
    rate = n / 999.0
    assert summary.requests_per_s == pytest.approx(rate)
    assert summary.primary_monthly_usd == pytest.approx(rate * SECONDS_PER_MONTH * 0.004)
    assert summary.candidate_usd_per_request == pytest.approx(0.2 * 0.001)
    assert summary.replica_capacity_requests_per_s == pytest.approx(5.0)
    assert summary.replicas_needed == 1
    assert summary.candidate_monthly_usd == pytest.approx(0.001 * SECONDS_PER_MONTH)
    # One replica costs $0.001/s; each request saves $0.004 -> breaks even at 0.25 requests/s.
    assert summary.break_even_requests_per_s == pytest.approx(0.25)
    assert summary.monthly_savings_usd == pytest.approx(
        summary.primary_monthly_usd - summary.candidate_monthly_usd
    )


def test_api_priced_candidate_scales_with_traffic() -> None:
    n = 100
    summary = compare_cost(
        primary_usd=np.full(n, 0.01),
        candidate_usd=np.full(n, 0.001),
        time_s=np.arange(n, dtype=float) * 10.0,
        prices_as_of=date(2025, 6, 15),
    )
    assert summary.savings_share == pytest.approx(0.9)
    assert math.isnan(summary.break_even_requests_per_s)
