"""Log-scale bins for durations, counted in SQL, and quantiles read back from the counts.

A bin is ``floor(BINS_PER_DECADE * log10(max(ms, 1)))``: twenty bins per factor of
ten, so each spans a factor of ``BIN_RATIO`` (about 12 %) and a quantile read from the
counts lies within one bin of the exact one. Everything under 1 ms shares bin 0, and
everything from ``LONGEST_MS`` on (an infinite or NaN duration too) shares ``LAST_BIN``.
SQLite (3.35+, built with its math functions, as Python's is) and PostgreSQL both
have ``log10`` and ``floor``, so both count the same bins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, Integer, case, cast, func

BINS_PER_DECADE = 20
BIN_RATIO = 10.0 ** (1.0 / BINS_PER_DECADE)
LONGEST_MS = 1e9  # eleven days: no call lasts longer, but a stored float may be infinite
LAST_BIN = 9 * BINS_PER_DECADE


def bin_of(ms: float) -> int:
    """The bin of one duration, as the SQL expression computes it."""
    if not ms < LONGEST_MS:
        return LAST_BIN
    return math.floor(BINS_PER_DECADE * math.log10(max(ms, 1.0)))


def bin_bounds(index: int) -> tuple[float, float]:
    """The milliseconds a bin covers: lower bound inclusive, upper exclusive."""
    if index <= 0:
        return 0.0, BIN_RATIO
    return 10.0 ** (index / BINS_PER_DECADE), 10.0 ** ((index + 1) / BINS_PER_DECADE)


def bin_middle(index: int) -> float:
    """The geometric middle of a bin: within half a bin's factor of any value in it."""
    if index <= 0:
        return 1.0
    middle: float = 10.0 ** ((index + 0.5) / BINS_PER_DECADE)
    return middle


def bin_expression(dialect: str, ms: ColumnElement[Any]) -> ColumnElement[int]:
    at_least_one = func.max(ms, 1.0) if dialect == "sqlite" else func.greatest(ms, 1.0)
    scaled = BINS_PER_DECADE * func.log10(cast(at_least_one, Float))
    # SQLAlchemy gives SQLite a ``floor`` written in Python, which raises on NULL and on
    # infinity: a duration not recorded has no bin, one too long (PostgreSQL's NaN too,
    # which it orders above every number) has the last, and CASE never calls it on either.
    return case(
        (ms.is_(None), None),
        (ms < LONGEST_MS, cast(func.floor(scaled), Integer)),
        else_=LAST_BIN,
    )


def period_expression(
    dialect: str, at: ColumnElement[Any], width_s: int | ColumnElement[int]
) -> ColumnElement[int]:
    """The time period a row falls in: ``floor(epoch / width)``, periods aligned to the epoch.

    Exact arithmetic on both: a float epoch (julianday on SQLite) puts a row stamped
    on a period's first instant in the period before.
    """
    if dialect == "sqlite":
        whole_seconds = cast(func.strftime("%s", at), Integer)
        return whole_seconds // width_s
    return cast(func.floor(func.extract("epoch", at) / width_s), Integer)


def bucket_start(index: int, width_s: int) -> datetime:
    return datetime.fromtimestamp(index * width_s, UTC)


def quantile_from_bins(counts: Mapping[int, int], q: float) -> float:
    """The ``q`` quantile (as ``numpy.quantile``'s default would place it) read from bin counts.

    The order statistic at rank ``floor(q * (n - 1))`` lies in the bin found here; its
    geometric middle is returned, so the answer is within one ``BIN_RATIO`` of the exact
    quantile unless the two order statistics it interpolates between lie bins apart.
    NaN when there are no counts.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"a quantile is between 0 and 1, not {q}")
    total = sum(counts.values())
    if total == 0:
        return math.nan
    rank = math.floor(q * (total - 1))
    seen = 0
    for index in sorted(counts):
        seen += counts[index]
        if seen > rank:
            return bin_middle(index)
    raise AssertionError("unreachable: the ranks end inside the last bin")
