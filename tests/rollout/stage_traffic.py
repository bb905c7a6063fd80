"""Seeded exchanges for one rollout stage, tagged with the stage's flag version."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import timedelta

from core import Exchange, RolloutMode, Usage
from rollout.plan import Stage
from storage.database import Database
from storage.inserts import insert_exchanges
from tests.storage.factories import T0, decision, full_exchange, served_arm, shadow_arm

CANDIDATE = "local"
PRIMARY = "openai"
ANSWER = "Paris is the capital of France."
TOKENS = Usage(prompt_tokens=40, completion_tokens=30, cached_tokens=0)


@dataclass(frozen=True)
class Candidate:
    slowdown: float = 1.0  # multiplies the candidate's latency
    arm_sd: float = 0.05  # log-sd of each arm's own run-to-run noise


def _arm_ms(base: float, factor: float, sd: float, rng: random.Random) -> float:
    return base * factor * rng.lognormvariate(0.0, sd)


def shadow_pair(i: int, version: int, who: Candidate, rng: random.Random) -> Exchange:
    base = rng.lognormvariate(math.log(500.0), 0.4)
    primary_ms = _arm_ms(base, 1.0, who.arm_sd, rng)
    candidate_ms = _arm_ms(base, who.slowdown, who.arm_sd, rng)
    arms = (
        served_arm(
            latency_ms=primary_ms,
            ttft_ms=primary_ms / 5,
            usage=TOKENS,
            text=ANSWER,
            tool_calls=(),
            finish_reason="stop",
            truncated=False,
        ),
        shadow_arm(
            upstream=CANDIDATE,
            status=200,
            error_kind=None,
            latency_ms=candidate_ms,
            ttft_ms=candidate_ms / 5,
            usage=TOKENS,
            text=ANSWER,
        ),
    )
    return full_exchange(
        created_at=T0 + timedelta(seconds=i),
        decision=decision(shadow=CANDIDATE, noise=False, flag_version=version, percent=0.0),
        fallback=False,
        observations=arms,
    )


def split_exchange(
    i: int, version: int, stage: Stage, who: Candidate, rng: random.Random
) -> Exchange:
    """User ``i % 200`` is on the candidate when the stage's share covers it."""
    user = i % 200
    on_candidate = stage.mode is RolloutMode.CUTOVER or user % 100 < stage.percent
    base = rng.lognormvariate(math.log(500.0), 0.3)
    latency = _arm_ms(base, who.slowdown if on_candidate else 1.0, who.arm_sd, rng)
    upstream = CANDIDATE if on_candidate else PRIMARY
    return full_exchange(
        created_at=T0 + timedelta(seconds=i),
        subject_hash=f"user-{user}",
        decision=decision(
            served=upstream,
            served_is_candidate=on_candidate,
            shadow=None,
            noise=False,
            mode=stage.mode,
            percent=stage.percent,
            flag_version=version,
        ),
        served_by=upstream,
        fallback=False,
        observations=(
            served_arm(
                upstream=upstream,
                latency_ms=latency,
                ttft_ms=latency / 5,
                usage=TOKENS,
                tool_calls=(),
                text=ANSWER,
            ),
        ),
    )


async def seed_stage(
    db: Database, stage: Stage, version: int, who: Candidate, n: int, rng: random.Random
) -> None:
    """``n`` exchanges of ``stage`` recorded at flag ``version``."""
    if stage.mode is RolloutMode.SHADOW:
        exchanges = [shadow_pair(i, version, who, rng) for i in range(n)]
    else:
        exchanges = [split_exchange(i, version, stage, who, rng) for i in range(n)]
    async with db.engine.begin() as conn:
        await insert_exchanges(conn, exchanges)
