"""Evidence for one decision metric: an estimate and an interval valid under monitoring.

Every interval here is a confidence sequence, so it may be checked after any
row without inflating error rates. Its two ends answer different questions
and carry their own alpha: the end on the "better" side is the promotion test
(inside the margin?), the end on the "worse" side is the harm test (beyond
the harm limit?).

Two shapes of metric exist:

* ``MeanMetric`` — a mean of a stream of values; recomputed after every row.
* ``LookMetric`` — anything else (quantiles, user-clustered estimates),
  recomputed every ``look_every`` units. Its interval is time-uniform too, so
  looking only at those times is valid, and between them the last stands.

Both can also produce their whole history (``path``), which is what the
sequential simulations replay.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from evaluation.columns import Series, VerdictInput
from evaluation.confseq import betting_cs, count_betting_bounds, normal_mixture_cs
from evaluation.planning import planned_count_size, planned_size, planning_distance

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

NAN = math.nan


@dataclass(frozen=True, slots=True)
class Evidence:
    estimate: float  # NaN when there is nothing to estimate
    lower: float  # NaN while no valid interval exists yet (burn-in, before the first look)
    upper: float
    n: int  # observations behind the estimate (pairs, judgments, rows)
    unit: str
    subject: str  # what is measured, in words
    noun: str  # what n counts
    note: str = ""
    planned_n: int | None = None  # observations for the configured power at promotion


@dataclass(frozen=True, slots=True)
class EvidenceContext:
    alpha_lower: float  # error allowed for the lower end (a one-sided level)
    alpha_upper: float
    margin: float  # promotion limit, on the metric's scale
    worse_is_higher: bool
    burn_in: int
    target_n: int  # where normal-mixture sequences are tightest
    look_every: int  # units between recomputations of look metrics
    power: float | None  # for planned sizes; None skips planning (replays)

    @property
    def promote_alpha(self) -> float:
        return self.alpha_upper if self.worse_is_higher else self.alpha_lower


@dataclass(frozen=True, slots=True)
class EvidencePath:
    """Evidence after each of rows 1..T: arrays of length T."""

    estimate: FloatArray
    lower: FloatArray
    upper: FloatArray
    n: IntArray


def _identity(x: FloatArray) -> FloatArray:
    return x


def _same(x: float) -> float:
    return x


@dataclass(frozen=True, slots=True)
class MeanMetric:
    """The mean of ``series(data)``.

    ``support``: values lie on these few points (exact betting bounds from counts);
    ``bounds``: values lie in this range (exact betting bounds);
    neither: unbounded, an asymptotic normal-mixture sequence after burn-in.
    ``neutral`` is the "as good as the primary" value, on the series' scale.
    """

    subject: str
    unit: str
    noun: str
    series: Callable[[VerdictInput], Series]
    neutral: float = 0.0
    support: tuple[float, ...] | None = None
    bounds: tuple[float, float] | None = None
    transform: Callable[[FloatArray], FloatArray] = _identity  # e.g. exp for log ratios
    inverse: Callable[[float], float] = _same  # the margin onto the series' scale

    def _bounds_path(self, values: FloatArray, ctx: EvidenceContext) -> tuple[FloatArray, ...]:
        t = np.arange(1, values.size + 1, dtype=np.float64)
        mean = np.cumsum(values) / t
        if self.support is not None:
            points = np.asarray(self.support)
            counts = np.cumsum(values[:, None] == points[None, :], axis=0)
            if not np.all(counts[-1].sum() == values.size):
                raise ValueError(f"values must be one of {self.support}")
            lo, hi = self.support[0], self.support[-1]
            lower, upper = count_betting_bounds(
                counts, self.support, lo, hi, ctx.alpha_lower, ctx.alpha_upper
            )
            return mean, lower, upper
        if self.bounds is not None:
            lo, hi = self.bounds
            lower = betting_cs(values, ctx.alpha_lower, lo=lo, hi=hi).lower
            upper = betting_cs(values, ctx.alpha_upper, lo=lo, hi=hi).upper
            return mean, lower, upper
        cs = normal_mixture_cs(
            values, ctx.alpha_lower, target_n=ctx.target_n, alpha_upper=ctx.alpha_upper
        )
        early = np.arange(1, values.size + 1) < ctx.burn_in
        lower, upper = cs.lower.copy(), cs.upper.copy()
        lower[early] = upper[early] = NAN
        return cs.estimate, lower, upper

    def _planned(self, values: FloatArray, ctx: EvidenceContext, promote_end: float) -> int | None:
        margin = self.inverse(ctx.margin)
        if self.support is not None:
            distance = abs(margin - self.neutral)
            shares = tuple(float(np.mean(values == p)) for p in self.support)
            return planned_count_size(
                shares,
                self.support,
                self.neutral,
                distance,
                ctx.promote_alpha,
                ctx.power,
                ctx.worse_is_higher,
            )
        if values.size < 2:
            return None
        distance = planning_distance(margin, self.neutral, promote_end, ctx.worse_is_higher)
        spread = float(np.std(values, ddof=1))
        return planned_size(distance, spread, ctx.promote_alpha, ctx.target_n, ctx.power)

    def evidence(self, data: VerdictInput, ctx: EvidenceContext) -> Evidence:
        values = self.series(data).values
        n = int(values.size)
        base = Evidence(NAN, NAN, NAN, n, self.unit, self.subject, self.noun)
        if n == 0:
            return replace(base, note=f"no {self.noun} yet")
        est, lower, upper = (float(a[-1]) for a in self._bounds_path(values, ctx))
        promote_end = upper if ctx.worse_is_higher else lower
        note = f"interval after {ctx.burn_in} {self.noun}" if math.isnan(lower) else ""
        scale = self.transform
        return replace(
            base,
            estimate=float(scale(np.asarray([est]))[0]),
            lower=float(scale(np.asarray([lower]))[0]),
            upper=float(scale(np.asarray([upper]))[0]),
            note=note,
            planned_n=self._planned(values, ctx, promote_end),
        )

    def path(self, data: VerdictInput, ctx: EvidenceContext) -> EvidencePath:
        series = self.series(data)
        rows = data.n
        # How many values had arrived once row t (1-based) was in.
        counts = np.searchsorted(series.rows, np.arange(1, rows + 1), side="left").astype(np.int64)
        est, lower, upper = np.full(rows, NAN), np.full(rows, NAN), np.full(rows, NAN)
        if series.values.size:
            mean, lo, hi = self._bounds_path(series.values, ctx)
            have = counts > 0
            idx = counts[have] - 1
            est[have] = self.transform(mean[idx])
            lower[have] = self.transform(lo[idx])
            upper[have] = self.transform(hi[idx])
        return EvidencePath(est, lower, upper, counts)


@dataclass(frozen=True, slots=True)
class LookResult:
    estimate: float
    lower: float
    upper: float
    n: int
    planned_n: int | None = None


LookFunction = Callable[[VerdictInput, EvidenceContext], LookResult]


@dataclass(frozen=True, slots=True)
class LookMetric:
    """Recomputed on the data up to each multiple of ``ctx.look_every`` units.

    ``at_look(data, ctx)`` gives the look's result; ``running(data)`` is
    a plain estimate to show before the first look, and ``usable(data)`` marks
    the rows that count as observations.
    """

    subject: str
    unit: str
    noun: str
    at_look: LookFunction
    running: Callable[[VerdictInput], float]
    usable: Callable[[VerdictInput], NDArray[np.bool_]]

    def evidence(self, data: VerdictInput, ctx: EvidenceContext) -> Evidence:
        k = data.units // ctx.look_every
        if k == 0:
            n = int(np.count_nonzero(self.usable(data)))
            return Evidence(
                self.running(data) if n else NAN,
                NAN,
                NAN,
                n,
                self.unit,
                self.subject,
                self.noun,
                note=f"first interval at {ctx.look_every} {data.unit_noun}",
            )
        size = k * ctx.look_every
        result = self.at_look(data.head_units(size), ctx)
        return Evidence(
            result.estimate,
            result.lower,
            result.upper,
            result.n,
            self.unit,
            self.subject,
            self.noun,
            note=f"as of the first {size:,} {data.unit_noun}" if size < data.units else "",
            planned_n=result.planned_n,
        )

    def path(self, data: VerdictInput, ctx: EvidenceContext) -> EvidencePath:
        rows = data.n
        est, lower, upper = np.full(rows, NAN), np.full(rows, NAN), np.full(rows, NAN)
        # Before the first look only "has data or not" matters for the label.
        n = np.cumsum(self.usable(data), dtype=np.int64)
        units = data.units_per_row()
        sizes = np.arange(ctx.look_every, int(units[-1]) + 1 if rows else 0, ctx.look_every)
        # Row index at which each look's unit count is first reached.
        starts = np.searchsorted(units, sizes, side="left").tolist()
        for k, start in enumerate(starts):
            ev = self.evidence(data.head(start + 1), ctx)
            stop = starts[k + 1] if k + 1 < len(starts) else rows
            span = slice(start, stop)
            est[span], lower[span], upper[span], n[span] = ev.estimate, ev.lower, ev.upper, ev.n
        return EvidencePath(est, lower, upper, n)


def log_or_nan(x: float) -> float:
    """A ratio's margin on the log scale its series uses."""
    return math.log(x) if x > 0 else NAN
