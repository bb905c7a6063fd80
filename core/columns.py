"""Columns of measurements: numpy arrays per field, one row per exchange, in arrival order.

Reports over millions of exchanges are read straight from SQL into these
arrays (storage fills them, evaluation reads them); no Python object is built
per row. Text is a separate capped sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]


def _floats(values: ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class ArmColumns:
    """One arm's measurements. Unknown numbers are NaN."""

    latency_ms: FloatArray
    ttft_ms: FloatArray
    failed: BoolArray
    prompt_tokens: FloatArray
    cached_tokens: FloatArray
    completion_tokens: FloatArray

    def __post_init__(self) -> None:
        n = self.latency_ms.shape[0]
        for name in ("ttft_ms", "failed", "prompt_tokens", "cached_tokens", "completion_tokens"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name} must have {n} rows like latency_ms")

    @classmethod
    def build(
        cls,
        latency_ms: ArrayLike,
        ttft_ms: ArrayLike,
        failed: ArrayLike,
        prompt_tokens: ArrayLike | None = None,
        cached_tokens: ArrayLike | None = None,
        completion_tokens: ArrayLike | None = None,
    ) -> ArmColumns:
        """Convert array-likes, filling absent token columns with NaN."""
        latency = _floats(latency_ms)
        missing = np.full(latency.shape, np.nan)
        return cls(
            latency_ms=latency,
            ttft_ms=_floats(ttft_ms),
            failed=np.asarray(failed, dtype=np.bool_),
            prompt_tokens=missing if prompt_tokens is None else _floats(prompt_tokens),
            cached_tokens=missing if cached_tokens is None else _floats(cached_tokens),
            completion_tokens=missing if completion_tokens is None else _floats(completion_tokens),
        )

    def __len__(self) -> int:
        return int(self.latency_ms.shape[0])

    def head(self, n: int) -> ArmColumns:
        """The first ``n`` rows (views, no copy)."""
        return ArmColumns(
            self.latency_ms[:n],
            self.ttft_ms[:n],
            self.failed[:n],
            self.prompt_tokens[:n],
            self.cached_tokens[:n],
            self.completion_tokens[:n],
        )

    def select(self, mask: BoolArray) -> ArmColumns:
        return ArmColumns(
            self.latency_ms[mask],
            self.ttft_ms[mask],
            self.failed[mask],
            self.prompt_tokens[mask],
            self.cached_tokens[mask],
            self.completion_tokens[mask],
        )


@dataclass(frozen=True, slots=True)
class ShadowColumns:
    """Paired rows: row i of both arms is the same request."""

    primary: ArmColumns
    candidate: ArmColumns
    time_s: FloatArray  # arrival time, seconds since the epoch

    def __post_init__(self) -> None:
        if not len(self.primary) == len(self.candidate) == self.time_s.shape[0]:
            raise ValueError("both arms and time_s must have the same number of rows")

    def __len__(self) -> int:
        return len(self.primary)

    def head(self, n: int) -> ShadowColumns:
        return ShadowColumns(self.primary.head(n), self.candidate.head(n), self.time_s[:n])


@dataclass(frozen=True, slots=True)
class SplitColumns:
    """Unpaired rows: each exchange was served by one arm, chosen stickily per user."""

    served: ArmColumns  # the serving arm's measurements
    is_candidate: BoolArray
    user: IntArray  # an integer code per user (e.g. a hash bucket or a dense id)
    time_s: FloatArray

    def __post_init__(self) -> None:
        n = len(self.served)
        if not self.is_candidate.shape == self.user.shape == self.time_s.shape == (n,):
            raise ValueError("is_candidate, user and time_s must have one value per row")

    def __len__(self) -> int:
        return len(self.served)

    def head(self, n: int) -> SplitColumns:
        return SplitColumns(
            self.served.head(n), self.is_candidate[:n], self.user[:n], self.time_s[:n]
        )

    @property
    def candidate(self) -> ArmColumns:
        return self.served.select(self.is_candidate)

    @property
    def primary(self) -> ArmColumns:
        return self.served.select(~self.is_candidate)


def _empty_floats() -> FloatArray:
    return np.empty(0, dtype=np.float64)


def _empty_ints() -> IntArray:
    return np.empty(0, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class Series:
    """Values that arrive over the stage, each tagged with the row it belongs to.

    Used for judgments and noise-floor gaps: ``rows`` is non-decreasing, so the
    data "as of row n" is a prefix.
    """

    values: FloatArray = field(default_factory=_empty_floats)
    rows: IntArray = field(default_factory=_empty_ints)

    def __post_init__(self) -> None:
        if self.values.shape != self.rows.shape:
            raise ValueError("values and rows must be equally long")

    @classmethod
    def build(cls, values: ArrayLike, rows: ArrayLike | None = None) -> Series:
        vals = _floats(values)
        tags = np.arange(vals.size) if rows is None else np.asarray(rows, dtype=np.int64)
        if tags.size > 1 and np.any(np.diff(tags) < 0):
            raise ValueError("rows must be non-decreasing (arrival order)")
        return cls(vals, tags.astype(np.int64))

    def __len__(self) -> int:
        return int(self.values.size)

    def head(self, n_rows: int) -> Series:
        cut = int(np.searchsorted(self.rows, n_rows, side="left"))
        return Series(self.values[:cut], self.rows[:cut])
