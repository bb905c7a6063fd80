"""Seeded traffic of every kind for the UI's query tests, kept as ``core`` values so each
test computes its expected figures from them without going through the code under test."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import numpy as np

from core import (
    ErrorKind,
    Exchange,
    Observation,
    Role,
    RolloutMode,
    Route,
    RoutingDecision,
    Usage,
)
from storage.database import Database
from storage.inserts import insert_exchanges

CANDIDATE = "vllm-llama"
PRIMARY = "openai"
OTHER_CANDIDATE = "tgi-mistral"
# On an hour boundary, so hour-long buckets start where the test expects.
T0 = datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)
SPAN_S = 3 * 3600
ANSWERS = ("The capital is Paris.", "Use a hash map.", "50% OFF_sale", "Écoute, c'est ça.")


class Kind(StrEnum):
    SHADOW = "shadow"  # the primary serves, the candidate is mirrored
    SPLIT_CANDIDATE = "split_candidate"  # the candidate serves
    SPLIT_PRIMARY = "split_primary"  # split mode, the primary serves, nothing mirrored
    FALLBACK = "fallback"  # the candidate was chosen, failed, the primary answered
    REVERSE = "reverse"  # the candidate serves, the primary is mirrored
    OTHER = "other"  # another candidate's shadow pair: outside every window of CANDIDATE


@dataclass(frozen=True, slots=True)
class Mix:
    shadow: float = 0.6
    split_candidate: float = 0.1
    split_primary: float = 0.1
    fallback: float = 0.08
    reverse: float = 0.07
    other: float = 0.05

    def kinds(self) -> tuple[list[Kind], list[float]]:
        weights = [self.shadow, self.split_candidate, self.split_primary]
        weights += [self.fallback, self.reverse, self.other]
        return list(Kind), weights


def _arm(
    rng: np.random.Generator, upstream: str, role: Role, *, scale_ms: float, fail_p: float
) -> Observation:
    model = "gpt-4o-mini-2024-07-18" if upstream == PRIMARY else "llama-3.1-8b"
    if rng.random() < fail_p:
        kind = ErrorKind.TIMEOUT if rng.random() < 0.5 else ErrorKind.HTTP_STATUS
        status = 500 if kind is ErrorKind.HTTP_STATUS else None
        return Observation(upstream, role, model, status, 30_000.0, None, error_kind=kind)
    latency = float(scale_ms * np.exp(0.6 * rng.standard_normal()))
    ttft = latency * float(rng.uniform(0.1, 0.5)) if rng.random() < 0.8 else None
    prompt = int(rng.integers(10, 400))
    cached = int(rng.integers(0, prompt)) if rng.random() < 0.3 else None
    usage = Usage(prompt, int(rng.integers(5, 300)), cached) if rng.random() < 0.9 else Usage()
    text = ANSWERS[int(rng.integers(len(ANSWERS)))]
    return Observation(upstream, role, model, 200, latency, ttft, usage=usage, text=text)


def _decision(kind: Kind, rng: np.random.Generator) -> RoutingDecision:
    candidate_serves = kind in (Kind.SPLIT_CANDIDATE, Kind.FALLBACK, Kind.REVERSE)
    split = kind is not Kind.SHADOW and kind is not Kind.OTHER
    shadow = {Kind.SHADOW: CANDIDATE, Kind.OTHER: OTHER_CANDIDATE}.get(kind)
    return RoutingDecision(
        served=CANDIDATE if candidate_serves else PRIMARY,
        served_is_candidate=candidate_serves,
        shadow=shadow,
        noise=kind is Kind.SHADOW and rng.random() < 0.2,
        mode=RolloutMode.SPLIT if split else RolloutMode.SHADOW,
        percent=25.0 if split else 0.0,
        flag_version=3,
        bucket=int(rng.integers(10_000)),
        reverse_shadow=kind is Kind.REVERSE,
    )


def _observations(kind: Kind, rng: np.random.Generator, noise: bool) -> tuple[Observation, ...]:
    def primary(role: Role) -> Observation:
        return _arm(rng, PRIMARY, role, scale_ms=600.0, fail_p=0.04)

    def candidate(role: Role, upstream: str = CANDIDATE) -> Observation:
        return _arm(rng, upstream, role, scale_ms=900.0, fail_p=0.1)

    if kind is Kind.SHADOW:
        arms = [primary(Role.SERVED), candidate(Role.SHADOW)]
        return (*arms, primary(Role.NOISE)) if noise else tuple(arms)
    if kind is Kind.OTHER:
        return primary(Role.SERVED), candidate(Role.SHADOW, OTHER_CANDIDATE)
    if kind is Kind.SPLIT_CANDIDATE:
        return (candidate(Role.SERVED),)
    if kind is Kind.SPLIT_PRIMARY:
        return (primary(Role.SERVED),)
    if kind is Kind.FALLBACK:
        failed = Observation(
            CANDIDATE, Role.FAILED_OVER, "llama-3.1-8b", None, 12.0, None,
            error_kind=ErrorKind.CONNECT,
        )  # fmt: skip
        return failed, primary(Role.SERVED)
    return candidate(Role.SERVED), primary(Role.REVERSE_SHADOW)


def build_traffic(
    n: int, *, seed: int = 1, mix: Mix = Mix(), span_s: float = SPAN_S
) -> list[Exchange]:
    """``n`` exchanges spread evenly over ``span_s`` seconds from ``T0``, oldest first."""
    rng = np.random.default_rng(seed)
    names, weights = mix.kinds()
    p = np.array(weights) / sum(weights)
    exchanges = []
    for i in range(n):
        kind = Kind(names[int(rng.choice(len(names), p=p))])
        decision = _decision(kind, rng)
        observations = _observations(kind, rng, decision.noise)
        served = next(o for o in observations if o.role is Role.SERVED)
        exchanges.append(
            Exchange(
                id=uuid.UUID(int=int(rng.integers(2**62)) << 64 | i),
                created_at=T0 + timedelta(seconds=span_s * i / n),
                route=Route.CHAT if rng.random() < 0.8 else Route.COMPLETIONS,
                requested_model="gpt-4o-mini" if rng.random() < 0.7 else "gpt-4o",
                subject_hash=f"{int(rng.integers(50)):04x}",
                stream=True,
                decision=decision,
                served_by=served.upstream,
                fallback=kind is Kind.FALLBACK,
                request={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                observations=observations,
            )
        )
    return exchanges


async def store(db: Database, exchanges: Sequence[Exchange]) -> None:
    async with db.engine.begin() as conn:
        await insert_exchanges(conn, exchanges)


def is_pair(exchange: Exchange, candidate: str = CANDIDATE) -> bool:
    """A shadow pair of ``candidate``: its served primary arm and its shadow arm."""
    roles = {(o.role, o.upstream == candidate) for o in exchange.observations}
    return (Role.SERVED, False) in roles and (Role.SHADOW, True) in roles


def candidate_of_window(exchange: Exchange, candidate: str = CANDIDATE) -> bool:
    """In the overview's window of ``candidate``: names it, or names no candidate at all."""
    d = exchange.decision
    named = d.served if d.served_is_candidate else d.shadow
    return named is None or named == candidate
