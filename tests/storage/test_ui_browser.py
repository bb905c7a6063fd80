"""The exchange browser: filters, keyset pages and the scan cap, against lists made here."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from core import Exchange, Observation, Role, Route
from core.outcome import PairOutcome, ReviewOutcome
from storage.database import Database
from storage.judgments import Judgment, add_judgments
from storage.models import ReviewerRow, ReviewRow
from storage.reviewers import add_reviewer
from storage.ui_browser import BrowserFilter, BrowserPage, Cursor, browse, exchange_detail
from tests.storage.ui_data import (
    CANDIDATE,
    OTHER_CANDIDATE,
    PRIMARY,
    T0,
    build_traffic,
    is_pair,
    store,
)


def _traffic() -> list[Exchange]:
    exchanges = build_traffic(300, seed=11)
    # Several exchanges in one instant: the id orders them.
    same = T0 + timedelta(minutes=30)
    return [
        dataclasses.replace(e, created_at=same) if 100 <= i < 106 else e
        for i, e in enumerate(exchanges)
    ]


def _newest_first(exchanges: Sequence[Exchange]) -> list[uuid.UUID]:
    ordered = sorted(exchanges, key=lambda e: (e.created_at, e.id.int), reverse=True)
    return [e.id for e in ordered]


async def _all_pages(
    db: Database, f: BrowserFilter, **kw: int
) -> tuple[list[uuid.UUID], list[BrowserPage]]:
    ids: list[uuid.UUID] = []
    pages: list[BrowserPage] = []
    after = None
    while True:
        page = await browse(db, f, after=after, **kw)
        pages.append(page)
        ids += [row.id for row in page.rows]
        if page.next_cursor is None:
            return ids, pages
        after = page.next_cursor
        assert len(pages) < 1_000


def _answers(e: Exchange) -> list[str]:
    return [o.text.lower() for o in e.observations if o.text]


FILTERS: list[tuple[BrowserFilter, Callable[[Exchange], bool]]] = [
    (BrowserFilter(route=Route.COMPLETIONS), lambda e: e.route is Route.COMPLETIONS),
    (BrowserFilter(model="gpt-4o"), lambda e: e.requested_model == "gpt-4o"),
    (
        BrowserFilter(model="llama-3.1-8b"),
        lambda e: any(o.model == "llama-3.1-8b" for o in e.observations),
    ),
    (BrowserFilter(served_by=CANDIDATE), lambda e: e.served_by == CANDIDATE),
    (BrowserFilter(status=500), lambda e: any(o.status == 500 for o in e.observations)),
    (
        BrowserFilter(error_kind="timeout"),
        lambda e: any(o.error_kind == "timeout" for o in e.observations),
    ),
    (BrowserFilter(fallback=True), lambda e: e.fallback),
    (BrowserFilter(fallback=False), lambda e: not e.fallback),
    # LIKE's wildcards in the search are plain characters; case does not matter.
    (BrowserFilter(text="50% off_"), lambda e: any("50% off_" in t for t in _answers(e))),
    (BrowserFilter(text="PARIS"), lambda e: any("paris" in t for t in _answers(e))),
    (
        BrowserFilter(
            since=T0 + timedelta(minutes=20),
            until=T0 + timedelta(hours=2),
            route=Route.CHAT,
            served_by=PRIMARY,
        ),
        lambda e: (
            T0 + timedelta(minutes=20) <= e.created_at < T0 + timedelta(hours=2)
            and e.route is Route.CHAT
            and e.served_by == PRIMARY
        ),
    ),
]


async def test_pages_without_filters_walk_every_exchange_newest_first(database: Database) -> None:
    exchanges = _traffic()
    await store(database, exchanges)
    ids, pages = await _all_pages(database, BrowserFilter(), page_size=40)
    assert ids == _newest_first(exchanges)
    assert [len(p.rows) for p in pages] == [40] * 7 + [20]
    assert not any(p.more_may_exist for p in pages)
    with pytest.raises(ValueError, match="scan cap"):
        await browse(database, BrowserFilter(), page_size=10, scan_cap=5)
    first = pages[0].rows[0]
    newest = max(exchanges, key=lambda e: (e.created_at, e.id.int))
    assert (first.created_at, first.route, first.served_by) == (
        newest.created_at,
        newest.route.value,
        newest.served_by,
    )
    assert [a.role for a in first.arms] == [o.role.value for o in newest.observations]
    assert [a.latency_ms for a in first.arms] == [o.latency_ms for o in newest.observations]


@pytest.mark.parametrize(("f", "keep"), FILTERS, ids=lambda v: "" if callable(v) else None)
async def test_each_filter_keeps_exactly_the_matching_exchanges(
    database: Database, f: BrowserFilter, keep: Callable[[Exchange], bool]
) -> None:
    exchanges = _traffic()
    await store(database, exchanges)
    expected = _newest_first([e for e in exchanges if keep(e)])
    ids, pages = await _all_pages(database, f, page_size=25, scan_cap=10_000)
    assert ids == expected
    assert 0 < len(expected) < len(exchanges)
    assert not any(p.more_may_exist for p in pages)


async def test_a_capped_scan_says_more_may_exist_and_its_cursor_finds_the_rest(
    database: Database,
) -> None:
    exchanges = _traffic()
    await store(database, exchanges)
    f = BrowserFilter(text="paris")
    expected = _newest_first([e for e in exchanges if any("paris" in t for t in _answers(e))])
    ids, pages = await _all_pages(database, f, page_size=20, scan_cap=40)
    assert ids == expected
    capped = [p for p in pages if p.more_may_exist]
    assert capped, "a 40-exchange cap must stop some page of a 300-exchange table"
    for page in capped:
        assert page.scanned == 40 and len(page.rows) < 20 and page.next_cursor is not None
    assert pages[-1].next_cursor is None and pages[-1].scanned < 40


def test_cursors_round_trip_and_bad_ones_are_refused() -> None:
    cursor = Cursor(T0 + timedelta(microseconds=7), uuid.uuid4())
    assert Cursor.decode(cursor.encode()) == cursor
    for bad in (
        "",
        "nonsense",
        "2025-01-15T12:00:00_zz",
        f"2025-01-15T12:00:00_{uuid.uuid4().hex}",
    ):
        with pytest.raises(ValueError):
            Cursor.decode(bad)


async def test_detail_names_the_pair_and_its_verdicts(database: Database) -> None:
    exchanges = _traffic()
    await store(database, exchanges)
    pair = next(e for e in exchanges if is_pair(e) and len(e.observations) == 3)  # with noise
    alone = next(
        e for e in exchanges if e.decision.shadow is None and not e.decision.served_is_candidate
    )
    verdicts = [
        Judgment(pair.id, CANDIDATE, "judge-1", "v1", PairOutcome.TIE, created_at=T0),
        Judgment(
            pair.id, CANDIDATE, "judge-2", "v1", PairOutcome.PRIMARY, created_at=T0 + timedelta(1)
        ),
    ]
    await add_judgments(database, verdicts)
    await add_reviewer(database, "ana", "hash-ana", T0, T0 + timedelta(days=1))
    await add_reviewer(database, "ben", "hash-ben", T0, T0 + timedelta(days=1))
    async with database.engine.begin() as conn:
        ids = dict((await conn.execute(select(ReviewerRow.name, ReviewerRow.id))).all())
        await conn.execute(
            insert(ReviewRow),
            [
                _review(ids["ben"], pair, ReviewOutcome.BOTH_BAD, 2, "both wrong"),
                _review(ids["ana"], pair, ReviewOutcome.CANDIDATE, 1, None),
                _review(ids["ana"], alone, None, 3, None),  # shown, never decided
            ],
        )

    detail = await exchange_detail(database, pair.id)
    assert detail is not None
    assert detail.exchange == pair
    assert detail.primary_position is not None and detail.candidate_position is not None
    assert pair.observations[detail.primary_position].role is Role.SERVED
    assert pair.observations[detail.candidate_position].upstream == CANDIDATE
    assert [j.outcome for j in detail.judgments] == [PairOutcome.TIE, PairOutcome.PRIMARY]
    assert [(r.reviewer, r.outcome, r.note) for r in detail.reviews] == [
        ("ana", "candidate", None),
        ("ben", "both_bad", "both wrong"),
    ]

    lone = await exchange_detail(database, alone.id)
    assert lone is not None and lone.exchange == alone
    assert (lone.primary_position, lone.candidate_position, lone.judgments) == (None, None, ())
    assert lone.reviews == ()
    assert await exchange_detail(database, uuid.uuid4()) is None


def _review(
    reviewer: int, e: Exchange, outcome: ReviewOutcome | None, minute: int, note: str | None
) -> dict[str, object]:
    at = T0 + timedelta(days=1, minutes=minute)
    return {
        "id": uuid.uuid4(),
        "item_token": f"token-{reviewer}-{minute}",
        "reviewer_id": reviewer,
        "exchange_id": e.id,
        "candidate": CANDIDATE,
        "route": e.route.value,
        "shown_order": "primary_first",
        "outcome": None if outcome is None else outcome.value,
        "time_taken_ms": 900.0,
        "note": note,
        "shown_at": at,
        "decided_at": None if outcome is None else at,
        "created_at": at,
    }


async def test_a_shadow_candidate_beside_the_named_one_has_its_own_pair(
    database: Database,
) -> None:
    exchanges = _traffic()
    base = next(e for e in exchanges if is_pair(e) and len(e.observations) == 2)
    extra = Observation(OTHER_CANDIDATE, Role.SHADOW, "mistral", 200, 700.0, 90.0, text="Hi.")
    both = dataclasses.replace(base, observations=(*base.observations, extra))
    await store(database, [both])
    await add_judgments(
        database,
        [
            Judgment(both.id, CANDIDATE, "judge-1", "v1", PairOutcome.TIE, created_at=T0),
            Judgment(both.id, OTHER_CANDIDATE, "judge-1", "v1", PairOutcome.PRIMARY, created_at=T0),
        ],
    )
    await add_reviewer(database, "ana", "hash-ana", T0, T0 + timedelta(days=1))
    async with database.engine.begin() as conn:
        ana = (await conn.execute(select(ReviewerRow.id))).scalar_one()
        review = _review(ana, both, ReviewOutcome.PRIMARY, 1, "the other one")
        await conn.execute(insert(ReviewRow), [review | {"candidate": OTHER_CANDIDATE}])

    named = await exchange_detail(database, both.id)
    other = await exchange_detail(database, both.id, candidate=OTHER_CANDIDATE)
    assert named is not None and other is not None
    assert (named.candidate, other.candidate) == (CANDIDATE, OTHER_CANDIDATE)
    assert named.primary_position == other.primary_position == 0
    assert (named.candidate_position, other.candidate_position) == (1, 2)
    assert [j.outcome for j in named.judgments] == [PairOutcome.TIE]
    assert [j.outcome for j in other.judgments] == [PairOutcome.PRIMARY]
    assert named.reviews == () and [r.note for r in other.reviews] == ["the other one"]
