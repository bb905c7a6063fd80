"""Every candidate compared in a window, and each one's pairwise outcomes against the primary.

A candidate takes part either as the exchange's own (the rollout's shadow or split
candidate) or as a shadow candidate mirrored beside it. Outcomes are the quality
metric's: the judge's newest verdict and people's summed preference per pair, one
outcome per pair, merged by ``review_codes.merge_quality``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select

from core import Role
from core.outcome import QualitySource
from storage.database import Database
from storage.report_samples import JudgmentCodes, candidates_in
from storage.report_sql import EXCHANGES, OBSERVATIONS
from storage.review_codes import judge_labels, merge_quality, pair_preferences, review_labels
from storage.window import ExchangeWindow


async def compared_candidates(
    db: Database, window: ExchangeWindow, listed: Sequence[str] | None = None
) -> list[str]:
    """The exchanges' own candidates, most frequent first, then the shadow candidates.

    ``listed`` names the shadow candidates; None finds them in the window's shadow
    arms, which reads every one of them (seconds on a million exchanges).
    """
    own = await candidates_in(db, window)
    if listed is None:
        o, e = OBSERVATIONS.c, EXCHANGES.c
        query = (
            select(o.upstream)
            .distinct()
            .select_from(OBSERVATIONS.join(EXCHANGES, e.id == o.exchange_id))
            .where(o.role == Role.SHADOW.value, *window.conditions())
            .order_by(o.upstream)
        )
        async with db.engine.connect() as conn:
            listed = [str(name) for (name,) in (await conn.execute(query)).all()]
    return own + [name for name in listed if name not in own]


async def pair_outcomes(
    db: Database,
    window: ExchangeWindow,
    candidates: Sequence[str],
    *,
    prefer: QualitySource,
) -> dict[str, NDArray[np.int64]]:
    """Each candidate's outcomes against the primary (+1 candidate preferred, 0 tie,
    -1 primary), one per judged or reviewed pair in the window, in no set order."""
    out: dict[str, NDArray[np.int64]] = {}
    for name in candidates:
        own = replace(window, candidate=name)
        judged = {key: outcome.code for key, outcome in (await judge_labels(db, own)).items()}
        reviewed = pair_preferences(await review_labels(db, own))
        row_of = {key: row for row, key in enumerate(sorted(judged.keys() | reviewed.keys()))}
        merged = merge_quality(_codes(judged, row_of), _codes(reviewed, row_of), prefer)
        out[name] = merged.codes.astype(np.int64)
    return out


def _codes(by_pair: dict[str, int], row_of: dict[str, int]) -> JudgmentCodes:
    rows = sorted(row_of[key] for key in by_pair)
    keys = sorted(by_pair, key=row_of.__getitem__)
    return JudgmentCodes(
        np.array(rows, dtype=np.int64), np.array([by_pair[k] for k in keys], dtype=np.float64)
    )
