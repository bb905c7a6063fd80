"""Everything the overview counts over its window, from the storage layer's aggregates.

The per-arm activity and the cost inputs are read from the rollups
(``storage.rollups``); the judge's tally is kept until the candidate's judgments
change; people's tallies, agreement and rollout history are small and read afresh. Cost is ``evaluation.cost``'s computation on the memo's
token sums, priced by the models the window's newest pairs used, as the report
prices them; a self-hosted candidate whose settings give its GPU cost is priced
by that instead, as the report prices it too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select

from dashboards.agreement import AgreementFigures, agreement_figures
from dashboards.pages.overview_range import PageWindow
from evaluation.cost import (
    CostSummary,
    SelfHosted,
    TokenMeans,
    cost_from_means,
    load_price_table,
    observed_rate,
)
from storage.database import Database
from storage.report_sql import EXCHANGES, pair_join, pairs_where
from storage.ui_memo import JudgeTallyMemo, OverviewAggregates, overview_aggregates
from storage.ui_outcomes import (
    ArmTokenMeans,
    JudgeTally,
    ReviewTally,
    RolloutPoint,
    review_tally,
    rollout_history,
)
from storage.window import ExchangeWindow

# The newest exchanges whose pairs' models name the prices: enough to outvote a stray request.
PRICED_EXCHANGES = 200


@dataclass(frozen=True, slots=True)
class CostFigures:
    primary_model: str
    candidate_model: str
    summary: CostSummary | None  # None: a model has no list price, or no pair has tokens
    note: str | None  # why there is no summary
    self_hosted: SelfHosted | None = None  # the candidate's GPU cost, when it priced it


@dataclass(frozen=True, slots=True)
class OverviewFigures:
    window: PageWindow
    aggregates: OverviewAggregates
    judge: JudgeTally
    people: ReviewTally
    agreement: AgreementFigures
    history: list[RolloutPoint]
    cost: CostFigures


async def first_seen(db: Database) -> datetime | None:
    """When the first exchange was recorded (one seek on the created_at index)."""
    async with db.engine.connect() as conn:
        found: datetime | None = (
            await conn.execute(select(func.min(EXCHANGES.c.created_at)))
        ).scalar_one()
    return found


async def _recent_models(db: Database, window: ExchangeWindow) -> tuple[str | None, str | None]:
    """The models the primary was sent (else the one requested) and the candidate answered
    with, most common among the pairs of the window's newest exchanges."""
    # Outer, pairs kept below: SQLite then walks the created_at index from the newest
    # exchange, where an inner join scans every observation and sorts (see pair_join).
    joined, primary, candidate = pair_join(window.named_candidate, outer=True)
    query = (
        select(
            primary.c.model,
            EXCHANGES.c.requested_model,
            candidate.c.model,
            and_(primary.c.exchange_id.is_not(None), candidate.c.exchange_id.is_not(None)),
        )
        .select_from(joined)
        .where(*pairs_where(window))
        .order_by(EXCHANGES.c.created_at.desc())
        .limit(PRICED_EXCHANGES)
    )
    async with db.engine.connect() as conn:
        rows = [row for row in (await conn.execute(query)).all() if row[3]]

    def most_common(column: int) -> str | None:
        seen = Counter(str(row[column]) for row in rows if row[column])
        return seen.most_common(1)[0][0] if seen else None

    return most_common(0) or most_common(1), most_common(2)


def _token_means(arm: ArmTokenMeans) -> TokenMeans:
    return TokenMeans(arm.prompt, arm.cached_prompt, arm.uncached_prompt, arm.completion)


async def cost_figures(
    db: Database,
    window: ExchangeWindow,
    aggregates: OverviewAggregates,
    hosted: SelfHosted | None = None,
) -> CostFigures:
    """The cost per arm and the projection; ``hosted``: the candidate's GPU cost, which
    prices it instead of a list price (``aggregates`` then count pairs whose candidate
    prompt tokens are unknown too, as its cost needs only the completion tokens)."""
    seen_primary, seen_candidate = await _recent_models(db, window)
    primary_model = seen_primary or "the primary's model"
    candidate_model = seen_candidate or window.named_candidate
    prices = load_price_table()
    primary_price = prices.price_for(primary_model)
    candidate_price = hosted or prices.price_for(candidate_model)
    means = aggregates.tokens.means()

    def without(note: str) -> CostFigures:
        return CostFigures(primary_model, candidate_model, None, note, hosted)

    if means.n == 0:
        return without("no pair in this range recorded token counts on both arms")
    if primary_price is None:
        return without(f"no list price for {primary_model!r}")
    if candidate_price is None:
        return without(
            f"no list price for {candidate_model!r}, and no GPU cost in the candidate's "
            "settings (gpu_usd_per_hour, output_tokens_per_s)"
        )
    summary = cost_from_means(
        n=means.n,
        requests_per_s=observed_rate(means.pairs, means.first_s, means.last_s),
        primary=_token_means(means.primary),
        candidate=_token_means(means.candidate),
        primary_price=primary_price,
        candidate_price=candidate_price,
        prices_as_of=prices.as_of,
    )
    return CostFigures(primary_model, candidate_model, summary, None, hosted)


async def overview_figures(
    db: Database,
    memo: JudgeTallyMemo,
    window: PageWindow,
    *,
    hosted: SelfHosted | None = None,
) -> OverviewFigures:
    """``hosted``: the candidate's GPU cost, when it is self-hosted and its settings give one
    (a pair then counts toward cost without the candidate's prompt tokens)."""
    whole = window.whole
    aggregates = await overview_aggregates(
        db, whole, bucket_s=window.bucket_s, candidate_prompt_needed=hosted is None
    )
    return OverviewFigures(
        window=window,
        aggregates=aggregates,
        judge=await memo.judge_tally(db, whole),
        people=await review_tally(db, whole),
        agreement=await agreement_figures(db, whole),
        history=await rollout_history(db, since=window.since),
        cost=await cost_figures(db, whole, aggregates, hosted),
    )
