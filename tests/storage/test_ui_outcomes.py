"""The overview's judge tally, cost inputs and rollout history against figures computed here."""

from __future__ import annotations

import dataclasses
import itertools
import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import insert, select

from core import Exchange, Role
from core.outcome import PairOutcome, ReviewOutcome
from evaluation.columns import ComparisonMode
from evaluation.cost import (
    CostSummary,
    SelfHosted,
    TokenMeans,
    cost_from_means,
    load_price_table,
    observed_rate,
)
from evaluation.report import CostInput, ReportInput, build_report
from storage.database import Database
from storage.flags import AuditNote, FlagRecord, append_flag, seed_flags
from storage.judgments import Judgment, add_judgments
from storage.models import ReviewerRow, ReviewRow
from storage.report_queries import load_shadow_columns
from storage.reviewers import add_reviewer
from storage.ui_outcomes import (
    ArmTokenMeans,
    PairTokenMeans,
    judge_tally,
    pair_token_sums,
    review_tally,
    rollout_history,
)
from storage.window import ExchangeWindow
from tests.storage.ui_data import (
    CANDIDATE,
    OTHER_CANDIDATE,
    PRIMARY,
    T0,
    Mix,
    build_traffic,
    is_pair,
    store,
)

# No reverse-shadow traffic: which pairs those make is the report's pair join's to say.
PAIRS_MIX = Mix(reverse=0.0)


def _judgment(exchange: Exchange, outcome: PairOutcome, minutes: int, **kw: str) -> Judgment:
    return Judgment(
        exchange_id=exchange.id,
        candidate=kw.get("candidate", CANDIDATE),
        judge_model=kw.get("judge_model", "judge-1"),
        prompt_version="v1",
        outcome=outcome,
        created_at=T0 + timedelta(days=1, minutes=minutes),
    )


async def test_judge_tally_counts_each_pairs_newest_verdict_in_the_window(
    database: Database,
) -> None:
    exchanges = build_traffic(400, seed=7, mix=PAIRS_MIX)
    await store(database, exchanges)
    rng = np.random.default_rng(8)
    outcomes = list(PairOutcome)
    judgments, newest = [], {}
    pairs = [e for e in exchanges if is_pair(e)]
    for e in pairs[:150]:
        first = outcomes[int(rng.integers(3))]
        judgments.append(_judgment(e, first, 0))
        newest[e.id] = first
        if rng.random() < 0.3:  # judged again later by another judge: that verdict counts
            again = outcomes[int(rng.integers(3))]
            judgments.append(_judgment(e, again, 5, judge_model="judge-2"))
            newest[e.id] = again
    others = [e for e in exchanges if not is_pair(e)]
    # A verdict on no pair of the candidate, and one about another candidate, count nowhere.
    judgments.append(_judgment(others[0], PairOutcome.CANDIDATE, 9))
    judgments.append(_judgment(pairs[0], PairOutcome.CANDIDATE, 9, candidate=OTHER_CANDIDATE))
    await add_judgments(database, judgments)

    tally = await judge_tally(database, ExchangeWindow(candidate=CANDIDATE))
    counted = list(newest.values())
    assert (tally.wins, tally.losses, tally.ties) == (
        counted.count(PairOutcome.CANDIDATE),
        counted.count(PairOutcome.PRIMARY),
        counted.count(PairOutcome.TIE),
    )
    assert tally.n == 150

    since = T0 + timedelta(hours=1)
    late = await judge_tally(database, ExchangeWindow(candidate=CANDIDATE, since=since))
    kept = [o for e in pairs[:150] if e.created_at >= since for o in [newest[e.id]]]
    assert late.wins == kept.count(PairOutcome.CANDIDATE)
    assert late.n == len(kept) < 150


def _expected_means(
    exchanges: Sequence[Exchange], *, candidate_prompt_needed: bool
) -> PairTokenMeans:
    """The token means computed here, pair by pair, from the seeded values."""
    pairs = [e for e in exchanges if is_pair(e)]
    rows: dict[str, list[list[float]]] = {"primary": [], "candidate": []}
    for e in pairs:
        p = next(o for o in e.observations if o.role is Role.SERVED)
        c = next(o for o in e.observations if o.role is Role.SHADOW)
        known = p.usage.prompt_tokens is not None and p.usage.completion_tokens is not None
        known = known and c.usage.completion_tokens is not None
        if candidate_prompt_needed:
            known = known and c.usage.prompt_tokens is not None
        if not known:
            continue
        for name, arm in (("primary", p), ("candidate", c)):
            prompt = arm.usage.prompt_tokens or 0
            cached = arm.usage.cached_tokens or 0
            rows[name].append(
                [prompt, cached, max(prompt - cached, 0), arm.usage.completion_tokens or 0]
            )
    means = {name: np.array(v, dtype=float).mean(axis=0) for name, v in rows.items()}
    times = [e.created_at.timestamp() for e in pairs]
    return PairTokenMeans(
        pairs=len(pairs),
        first_s=min(times),
        last_s=max(times),
        n=len(rows["primary"]),
        primary=ArmTokenMeans(*(float(x) for x in means["primary"])),
        candidate=ArmTokenMeans(*(float(x) for x in means["candidate"])),
    )


def _summary_from_means(means: PairTokenMeans, self_hosted: SelfHosted | None) -> CostSummary:
    """What the overview shows: the evaluation's cost of the SQL token means."""
    prices = load_price_table()
    primary_price, candidate_price = prices.price_for("gpt-4o-mini"), prices.price_for("gpt-4o")
    assert primary_price is not None and candidate_price is not None

    def tokens(arm: ArmTokenMeans) -> TokenMeans:
        return TokenMeans(arm.prompt, arm.cached_prompt, arm.uncached_prompt, arm.completion)

    return cost_from_means(
        n=means.n,
        requests_per_s=observed_rate(means.pairs, means.first_s, means.last_s),
        primary=tokens(means.primary),
        candidate=tokens(means.candidate),
        primary_price=primary_price,
        candidate_price=candidate_price if self_hosted is None else self_hosted,
        prices_as_of=prices.as_of,
    )


HOSTED = SelfHosted(gpu_usd_per_hour=2.5, output_tokens_per_s=900.0, prompt_tokens_per_s=9000.0)


@pytest.mark.parametrize("self_hosted", [None, HOSTED], ids=["api-priced", "self-hosted"])
async def test_cost_from_sql_means_is_the_reports_cost(
    database: Database, self_hosted: SelfHosted | None
) -> None:
    exchanges = build_traffic(500, seed=9, mix=PAIRS_MIX)
    await store(database, exchanges)
    window = ExchangeWindow(candidate=CANDIDATE)
    needed = self_hosted is None
    means = (await pair_token_sums(database, window, candidate_prompt_needed=needed)).means()

    expected = _expected_means(exchanges, candidate_prompt_needed=needed)
    assert (means.pairs, means.n) == (expected.pairs, expected.n)
    assert 0 < means.n < means.pairs
    for got, want in ((means.primary, expected.primary), (means.candidate, expected.candidate)):
        assert dataclasses.astuple(got) == pytest.approx(dataclasses.astuple(want), rel=1e-12)
    assert (means.first_s, means.last_s) == pytest.approx(
        (expected.first_s, expected.last_s), abs=1e-3
    )

    loaded = await load_shadow_columns(database, window)
    report = build_report(
        ReportInput(
            primary=PRIMARY,
            candidate=CANDIDATE,
            mode=ComparisonMode.SHADOW,
            shadow=loaded.columns,
            cost=CostInput("gpt-4o-mini", "gpt-4o", self_hosted=self_hosted),
        )
    )
    assert report.cost is not None
    shown = _summary_from_means(means, self_hosted)
    _assert_same_cost(shown, report.cost)


def _assert_same_cost(got: CostSummary, want: CostSummary) -> None:
    got_fields: Mapping[str, object] = dataclasses.asdict(got)
    for name, value in dataclasses.asdict(want).items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(float(got_fields[name])), name  # type: ignore[arg-type]
        elif isinstance(value, float):
            assert got_fields[name] == pytest.approx(value, rel=1e-6), name
        else:
            assert got_fields[name] == value, name


async def test_an_empty_window_has_no_cost_inputs(database: Database) -> None:
    sums = await pair_token_sums(
        database, ExchangeWindow(candidate=CANDIDATE), candidate_prompt_needed=True
    )
    means = sums.means()
    assert (means.pairs, means.n) == (0, 0)
    assert math.isnan(means.primary.completion) and math.isnan(means.first_s)


def _set(percent: float, route: str | None = None):  # type: ignore[no-untyped-def]
    def change(rows: Mapping[str | None, FlagRecord]) -> tuple[FlagRecord, FlagRecord]:
        before = rows.get(route) or rows[None]
        return before, dataclasses.replace(before, percent=percent, route=route)

    return change


async def test_rollout_history_lists_every_transition_with_its_audit_entry(
    database: Database,
) -> None:
    start = FlagRecord(None, "split", CANDIDATE, 0.0, 0.0, 0.0, stage="shadow")
    await seed_flags(database, start, AuditNote("settings", "seed"))
    moves = [(5.0, None, "alice"), (25.0, None, "controller"), (10.0, "embeddings", "bob")]
    moves += [(50.0, None, "carol")]
    for percent, route, actor in moves:
        await append_flag(
            database, route, _set(percent, route), AuditNote(actor, "set", f"to {percent}")
        )

    history = await rollout_history(database)
    assert [(p.percent, p.route, p.actor) for p in history] == [(0.0, None, "settings"), *moves]
    assert [p.version for p in history] == [1, 2, 3, 4, 5]
    assert history[1].reason == "to 5.0" and history[0].action == "seed"
    assert all(a.at <= b.at for a, b in itertools.pairwise(history))

    since = history[3].at  # the embeddings route's first row
    later = await rollout_history(database, since=since)
    # The plot starts from the state each route was in: the default's 25 %.
    assert [p.version for p in later] == [3, 4, 5]
    assert [p.version for p in await rollout_history(database, until=since)] == [1, 2, 3]
    after_all = await rollout_history(database, since=history[-1].at + timedelta(seconds=1))
    assert [p.version for p in after_all] == [4, 5]  # each route's state, nothing new


async def test_review_tally_counts_each_persons_decided_review_in_the_window(
    database: Database,
) -> None:
    exchanges = build_traffic(200, seed=31, mix=PAIRS_MIX)
    await store(database, exchanges)
    for name in ("ana", "ben", "cy"):
        await add_reviewer(database, name, f"hash-{name}", T0, T0 + timedelta(days=1))
    async with database.engine.connect() as conn:
        reviewer_ids = list((await conn.execute(select(ReviewerRow.id))).scalars())
    rng = np.random.default_rng(32)
    outcomes = [*list(ReviewOutcome), None]  # None: shown, not decided yet
    rows, counted = [], []
    pairs = [e for e in exchanges if is_pair(e)]
    for k, e in enumerate(pairs[:60]):
        for reviewer in reviewer_ids[: 1 + k % 3]:
            outcome = outcomes[int(rng.integers(len(outcomes)))]
            rows.append(_review(reviewer, e, CANDIDATE, outcome, len(rows)))
            if outcome not in (None, ReviewOutcome.SKIPPED):
                counted.append((e.created_at, outcome))
    # About another candidate: counted nowhere here.
    rows.append(_review(reviewer_ids[0], pairs[61], OTHER_CANDIDATE, ReviewOutcome.TIE, len(rows)))
    async with database.engine.begin() as conn:
        await conn.execute(insert(ReviewRow), rows)

    since = T0 + timedelta(hours=1)
    for window in (
        ExchangeWindow(candidate=CANDIDATE),
        ExchangeWindow(candidate=CANDIDATE, since=since),
    ):
        kept = [o for at, o in counted if window.since is None or at >= window.since]
        tally = await review_tally(database, window)
        assert (tally.wins, tally.losses, tally.ties, tally.both_bad) == (
            kept.count(ReviewOutcome.CANDIDATE),
            kept.count(ReviewOutcome.PRIMARY),
            kept.count(ReviewOutcome.TIE),
            kept.count(ReviewOutcome.BOTH_BAD),
        )
        assert tally.n == len(kept) > 5


def _review(
    reviewer: int, e: Exchange, candidate: str, outcome: ReviewOutcome | None, k: int
) -> dict[str, object]:
    decided = None if outcome is None else T0 + timedelta(days=1, seconds=k)
    return {
        "id": uuid.uuid4(),
        "item_token": f"token-{k}",
        "reviewer_id": reviewer,
        "exchange_id": e.id,
        "candidate": candidate,
        "route": e.route.value,
        "shown_order": "candidate_first" if k % 2 else "primary_first",
        "outcome": None if outcome is None else outcome.value,
        "time_taken_ms": 1500.0,
        "note": None,
        "shown_at": T0 + timedelta(days=1),
        "decided_at": decided,
        "created_at": T0 + timedelta(days=1),
    }
