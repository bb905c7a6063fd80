"""Evidence for one decision metric: an estimate and an interval valid under monitoring.

Two shapes of metric exist:

* ``SequenceMetric`` — a mean of a stream of values, covered by a confidence
  sequence, so it may be recomputed after every new row.
* ``LookMetric`` — anything else (quantiles, user-clustered estimates),
  computed only at the planned O'Brien–Fleming looks. Between looks the last
  look's result stands, so checking it after every row changes nothing.

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
from evaluation.confseq import CSPath, betting_cs, normal_mixture_cs, normal_mixture_last
from evaluation.groupseq import LookSchedule

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
    final: bool = False  # no further data in this stage can change it


@dataclass(frozen=True, slots=True)
class EvidenceContext:
    alpha: float  # error allowed at each end of the interval (a one-sided level)
    schedule: LookSchedule
    burn_in: int
    cs_target_n: int
    replicates: int
    seed: int


@dataclass(frozen=True, slots=True)
class EvidencePath:
    """Evidence after each of rows 1..T: arrays of length T."""

    estimate: FloatArray
    lower: FloatArray
    upper: FloatArray
    n: IntArray
    final: NDArray[np.bool_]


def _identity(x: FloatArray) -> FloatArray:
    return x


@dataclass(frozen=True, slots=True)
class SequenceMetric:
    """The mean of ``series(data)``; bounded values get an exact betting confidence sequence."""

    subject: str
    unit: str
    noun: str
    series: Callable[[VerdictInput], Series]
    bounds: tuple[float, float] | None = None  # None: unbounded, asymptotic CS after burn-in
    transform: Callable[[FloatArray], FloatArray] = _identity  # e.g. exp for log ratios

    def _scalar(self, x: float) -> float:
        return float(self.transform(np.asarray([x]))[0])

    def evidence(self, data: VerdictInput, ctx: EvidenceContext) -> Evidence:
        values = self.series(data).values
        n = int(values.size)
        base = Evidence(NAN, NAN, NAN, n, self.unit, self.subject, self.noun)
        if n == 0:
            return replace(base, note=f"no {self.noun} yet")
        if self.bounds is not None:
            est, lo, hi = betting_cs(values, ctx.alpha, lo=self.bounds[0], hi=self.bounds[1]).last()
        elif n < ctx.burn_in:
            est = float(np.mean(values))
            note = f"interval after {ctx.burn_in} {self.noun}"
            return replace(base, estimate=self._scalar(est), note=note)
        else:
            est, lo, hi = normal_mixture_last(values, ctx.alpha, target_n=ctx.cs_target_n)
        return replace(
            base, estimate=self._scalar(est), lower=self._scalar(lo), upper=self._scalar(hi)
        )

    def path(self, data: VerdictInput, ctx: EvidenceContext) -> EvidencePath:
        series = self.series(data)
        rows = data.n
        # How many values had arrived once row t (1-based) was in.
        counts = np.searchsorted(series.rows, np.arange(1, rows + 1), side="left").astype(np.int64)
        est = np.full(rows, NAN)
        lower = np.full(rows, NAN)
        upper = np.full(rows, NAN)
        if series.values.size:
            cs: CSPath
            if self.bounds is not None:
                cs = betting_cs(series.values, ctx.alpha, lo=self.bounds[0], hi=self.bounds[1])
            else:
                cs = normal_mixture_cs(series.values, ctx.alpha, target_n=ctx.cs_target_n)
            have = counts > 0
            idx = counts[have] - 1
            est[have] = self.transform(cs.estimate[idx])
            lower[have] = self.transform(cs.lower[idx])
            upper[have] = self.transform(cs.upper[idx])
            if self.bounds is None:
                early = counts < ctx.burn_in
                lower[early] = upper[early] = NAN
        return EvidencePath(est, lower, upper, counts, np.zeros(rows, dtype=np.bool_))


LookFunction = Callable[[VerdictInput, float, np.random.Generator], tuple[float, float, float, int]]


@dataclass(frozen=True, slots=True)
class LookMetric:
    """Computed at each planned look k, with O'Brien–Fleming z bound b_k, on the data up
    to the n_k-th unit (pair, or candidate request in split mode).

    ``at_look(data, z, rng)`` returns (estimate, lower, upper, n) for the look's
    rows. ``running(data)`` is a plain estimate to show before the first look,
    and ``usable(data)`` marks the rows that count as observations.
    """

    subject: str
    unit: str
    noun: str
    at_look: LookFunction
    running: Callable[[VerdictInput], float]
    usable: Callable[[VerdictInput], NDArray[np.bool_]]

    def evidence(self, data: VerdictInput, ctx: EvidenceContext) -> Evidence:
        schedule = ctx.schedule
        k = schedule.reached(data.units)
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
                note=f"first look at {schedule.sizes[0]} {data.unit_noun}",
            )
        size = schedule.sizes[k - 1]
        z = schedule.bounds(ctx.alpha)[k - 1]
        # Seeded per look, so the same data always gives the same verdict.
        rng = np.random.default_rng([ctx.seed, k])
        est, lo, hi, n = self.at_look(data.head_units(size), z, rng)
        return Evidence(
            est,
            lo,
            hi,
            n,
            self.unit,
            self.subject,
            self.noun,
            note=f"look {k} of {schedule.looks} (first {size} {data.unit_noun})",
            final=k == schedule.looks,
        )

    def path(self, data: VerdictInput, ctx: EvidenceContext) -> EvidencePath:
        rows = data.n
        est = np.full(rows, NAN)
        lower = np.full(rows, NAN)
        upper = np.full(rows, NAN)
        # Before the first look only "has data or not" matters for the label.
        n = np.cumsum(self.usable(data), dtype=np.int64)
        final = np.zeros(rows, dtype=np.bool_)
        units = data.units_per_row()
        # Row index at which each look's unit count is first reached.
        starts = np.searchsorted(units, ctx.schedule.sizes, side="left").tolist()
        for k, start in enumerate(starts):
            if start >= rows:
                break
            ev = self.evidence(data.head(start + 1), ctx)
            stop = starts[k + 1] if k + 1 < len(starts) else rows
            span = slice(start, stop)
            est[span], lower[span], upper[span], n[span] = ev.estimate, ev.lower, ev.upper, ev.n
            final[span] = ev.final
        return EvidencePath(est, lower, upper, n, final)
