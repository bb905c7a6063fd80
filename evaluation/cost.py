"""What each arm costs: API list prices for OpenAI, GPU hours for a self-hosted candidate.

Self-hosted cost is mostly fixed (GPUs bill by the hour whether busy or not),
so it is reported two ways: the marginal cost of a request at full
utilisation, and the monthly bill at the observed traffic, with the traffic
at which self-hosting breaks even.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

from core import ConfigError

FloatArray = NDArray[np.float64]

_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")
SECONDS_PER_MONTH = 365.25 / 12 * 86_400
PER_MILLION = 1_000_000.0


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """US dollars per 1M tokens."""

    input: float
    cached_input: float
    output: float


@dataclass(frozen=True, slots=True)
class PriceTable:
    as_of: date
    currency: str
    models: Mapping[str, ModelPrice]

    def price_for(self, model: str) -> ModelPrice | None:
        """The listed price for ``model`` or a dated snapshot of it ("gpt-4o-2024-08-06")."""
        return self.models.get(_SNAPSHOT.sub("", model))


def load_price_table(path: Path | None = None) -> PriceTable:
    """Read a price table; by default the one shipped next to this module."""
    source = "evaluation/prices.toml" if path is None else str(path)
    try:
        if path is None:
            text = resources.files("evaluation").joinpath("prices.toml").read_text("utf-8")
        else:
            text = path.read_text("utf-8")
        raw = tomllib.loads(text)
        as_of = raw["as_of"]
        if not isinstance(as_of, date):
            raise TypeError("as_of must be a TOML date")
        models = {
            name: ModelPrice(
                float(entry["input"]), float(entry["cached_input"]), float(entry["output"])
            )
            for name, entry in raw["models"].items()
        }
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(source, f"unusable price table: {exc}") from exc
    return PriceTable(as_of, str(raw.get("currency", "USD")), MappingProxyType(models))


def api_cost(
    prompt_tokens: FloatArray,
    cached_tokens: FloatArray,
    completion_tokens: FloatArray,
    price: ModelPrice,
) -> FloatArray:
    """Dollars per request; NaN where prompt or completion tokens are unknown."""
    cached = np.nan_to_num(cached_tokens, nan=0.0)
    uncached = np.maximum(prompt_tokens - cached, 0.0)
    cost: FloatArray = (
        uncached * price.input + cached * price.cached_input + completion_tokens * price.output
    ) / PER_MILLION
    return cost


@dataclass(frozen=True, slots=True)
class SelfHosted:
    """A self-hosted replica: what its GPUs cost and how many tokens it serves per second.

    Throughputs are measured aggregate rates at saturation (all concurrent
    requests together), e.g. from a load test of the candidate server.
    """

    gpu_usd_per_hour: float
    output_tokens_per_s: float
    gpus: int = 1
    prompt_tokens_per_s: float | None = None  # prefill; None treats it as free

    def __post_init__(self) -> None:
        if self.gpu_usd_per_hour < 0 or self.output_tokens_per_s <= 0 or self.gpus < 1:
            raise ConfigError("self_hosted", "need a price >= 0, a throughput > 0 and >= 1 GPU")

    @property
    def usd_per_second(self) -> float:
        return self.gpu_usd_per_hour * self.gpus / 3600.0

    def busy_seconds(self, prompt_tokens: FloatArray, completion_tokens: FloatArray) -> FloatArray:
        """Replica-seconds each request occupies at saturation."""
        seconds: FloatArray = completion_tokens / self.output_tokens_per_s
        if self.prompt_tokens_per_s is not None:
            seconds = seconds + np.nan_to_num(prompt_tokens, nan=0.0) / self.prompt_tokens_per_s
        return seconds

    def request_cost(self, prompt_tokens: FloatArray, completion_tokens: FloatArray) -> FloatArray:
        """Marginal dollars per request when the replica is fully used."""
        cost: FloatArray = self.busy_seconds(prompt_tokens, completion_tokens) * self.usd_per_second
        return cost


@dataclass(frozen=True, slots=True)
class CostSummary:
    n: int  # requests with known token counts on both arms
    requests_per_s: float  # observed traffic over the recorded time span
    primary_usd_per_request: float
    candidate_usd_per_request: float  # self-hosted: at full utilisation
    primary_monthly_usd: float
    candidate_monthly_usd: float  # self-hosted: whole replicas needed for the traffic
    monthly_savings_usd: float
    savings_share: float  # savings as a share of the primary's monthly cost
    break_even_requests_per_s: float  # self-hosted only: where one replica pays for itself
    replica_capacity_requests_per_s: float  # self-hosted only
    replicas_needed: int  # self-hosted only
    prices_as_of: date


@dataclass(frozen=True, slots=True)
class PairCostMeans:
    """Per-request means over the pairs with known token counts on both arms.

    What ``project_cost`` needs: a SQL aggregate can give these without
    reading the pairs one by one, since every per-request cost is linear in
    the token counts.
    """

    n: int  # requests with known token counts on both arms
    requests_per_s: float  # observed traffic over the recorded time span
    primary_usd: float
    candidate_usd: float  # self-hosted: at full utilisation
    candidate_busy_seconds: float = math.nan  # self-hosted only


def observed_rate(count: int, first_s: float, last_s: float) -> float:
    """Requests per second: ``count`` requests seen between two epoch times."""
    if count < 2:
        return math.nan
    span = last_s - first_s
    return count / span if span > 0 else math.nan


def _observed_rate(time_s: FloatArray) -> float:
    finite = time_s[np.isfinite(time_s)]
    if finite.size < 2:
        return math.nan
    return observed_rate(int(finite.size), float(finite.min()), float(finite.max()))


def compare_cost(
    *,
    primary_usd: FloatArray,
    candidate_usd: FloatArray,
    time_s: FloatArray,
    prices_as_of: date,
    self_hosted: SelfHosted | None = None,
    candidate_busy_seconds: FloatArray | None = None,
) -> CostSummary:
    """Cost per request per arm on the same requests, and the monthly projection.

    ``candidate_usd`` is the marginal cost (API price, or self-hosted at full
    utilisation); with ``self_hosted`` the monthly figure counts whole replicas.
    """
    both = np.isfinite(primary_usd) & np.isfinite(candidate_usd)
    n = int(np.count_nonzero(both))
    busy = math.nan
    if candidate_busy_seconds is not None and n:
        busy = float(candidate_busy_seconds[both].mean())
    means = PairCostMeans(
        n=n,
        requests_per_s=_observed_rate(time_s),
        primary_usd=float(primary_usd[both].mean()) if n else math.nan,
        candidate_usd=float(candidate_usd[both].mean()) if n else math.nan,
        candidate_busy_seconds=busy,
    )
    return project_cost(means, prices_as_of=prices_as_of, self_hosted=self_hosted)


def project_cost(
    means: PairCostMeans, *, prices_as_of: date, self_hosted: SelfHosted | None = None
) -> CostSummary:
    """The monthly projection from per-request means; with ``self_hosted`` (and a busy
    time) the candidate's monthly figure counts whole replicas."""
    n, rate = means.n, means.requests_per_s
    p_mean, c_mean = means.primary_usd, means.candidate_usd
    p_month = rate * SECONDS_PER_MONTH * p_mean
    break_even = capacity = math.nan
    replicas = 0
    if self_hosted is not None and not math.isnan(means.candidate_busy_seconds) and n:
        busy = means.candidate_busy_seconds
        capacity = 1.0 / busy if busy > 0 else math.inf
        replicas = max(1, math.ceil(rate / capacity)) if math.isfinite(rate) else 1
        c_month = replicas * self_hosted.usd_per_second * SECONDS_PER_MONTH
        break_even = self_hosted.usd_per_second / p_mean if p_mean > 0 else math.inf
    else:
        c_month = rate * SECONDS_PER_MONTH * c_mean
    savings = p_month - c_month
    return CostSummary(
        n=n,
        requests_per_s=rate,
        primary_usd_per_request=p_mean,
        candidate_usd_per_request=c_mean,
        primary_monthly_usd=p_month,
        candidate_monthly_usd=c_month,
        monthly_savings_usd=savings,
        savings_share=savings / p_month if p_month > 0 else math.nan,
        break_even_requests_per_s=break_even,
        replica_capacity_requests_per_s=capacity,
        replicas_needed=replicas,
        prices_as_of=prices_as_of,
    )


@dataclass(frozen=True, slots=True)
class TokenMeans:
    """One arm's mean tokens per request over the pairs whose cost is known."""

    prompt: float  # unknown counted as 0, as a replica's busy time takes it
    cached: float  # unknown counted as 0
    uncached: float  # the mean of max(prompt - cached, 0): what list prices bill
    completion: float


def cost_from_means(
    *,
    n: int,
    requests_per_s: float,
    primary: TokenMeans,
    candidate: TokenMeans,
    primary_price: ModelPrice,
    candidate_price: ModelPrice | SelfHosted,
    prices_as_of: date,
) -> CostSummary:
    """``compare_cost`` from token means (SQL aggregates) instead of one row per request.

    Every per-request cost is linear in the token counts, so the cost of the mean
    request is the mean cost: the same functions price it.
    """

    def one(value: float) -> FloatArray:
        return np.array([value])

    def priced(arm: TokenMeans, price: ModelPrice) -> float:
        # prompt = uncached + cached, so api_cost bills the per-request uncached mean.
        prompt = one(arm.uncached + arm.cached)
        return float(api_cost(prompt, one(arm.cached), one(arm.completion), price)[0])

    hosted, busy = None, math.nan
    if isinstance(candidate_price, SelfHosted):
        hosted = candidate_price
        tokens = one(candidate.prompt), one(candidate.completion)
        candidate_usd = float(hosted.request_cost(*tokens)[0])
        busy = float(hosted.busy_seconds(*tokens)[0])
    else:
        candidate_usd = priced(candidate, candidate_price)
    means = PairCostMeans(n, requests_per_s, priced(primary, primary_price), candidate_usd, busy)
    return project_cost(means, prices_as_of=prices_as_of, self_hosted=hosted)
