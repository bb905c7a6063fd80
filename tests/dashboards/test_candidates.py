"""The candidates page at ``/ui/candidates`` on a real server: every candidate against the
primary and the ranking, as ``understudy report`` computes them on the same data.

The expected rows are ``compare_candidates``' on the seeded database, worded by the
report's own ``evaluation.lineup`` functions: the page must show the report's figures,
whatever they are.
"""

from __future__ import annotations

import asyncio
import html
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from markupsafe import escape

from core import ErrorKind, Exchange, Observation, Role, RolloutMode, Usage
from core.outcome import PairOutcome
from dashboards.config import UI
from dashboards.pages.lineup_builds import BuiltLineup, LineupBuilds
from evaluation.lineup import Lineup, ranking_caption, ranking_rows, summary_rows
from storage.judgments import Judgment, add_judgments
from tests.dashboards.conftest import RigFactory, UiRig, store_pairs
from tests.storage.factories import decision, full_exchange, served_arm, shadow_arm
from understudy.lineup_report import compare_candidates
from understudy.reporting import ReportRequest

CANDIDATE = "local"  # the rollout's
SHADOW = "gemma"  # a shadow candidate mirrored beside it
HOSTILE = '<script>alert("x")</script>&"><img src=x onerror=alert(1)>'
PAIRS = 30
URL = "http://127.0.0.1:9/v1"


def _arm(name: str, k: int, *, slow_ms: float, fail_every: int) -> Observation:
    failed = k % fail_every == fail_every - 1
    return shadow_arm(
        upstream=name,
        role=Role.SHADOW,
        model=f"{name}-model",
        status=500 if failed else 200,
        error_kind=ErrorKind.HTTP_STATUS if failed else None,
        latency_ms=slow_ms + 15 * k,
        ttft_ms=None if failed else 40.0 + k,
        usage=Usage() if failed else Usage(90 + k, 20 + k),
        text=None if failed else f"{name} answers question {k}.",
    )


def _pair(k: int, now: datetime, shadows: tuple[str, ...], own: str = CANDIDATE) -> Exchange:
    """Pair ``k`` served by the primary, mirrored to ``own`` (the exchange's candidate) and
    to the other names in ``shadows``, each with its own latency and error rate."""
    slow = {CANDIDATE: 400.0, SHADOW: 250.0}
    fails = {CANDIDATE: 5, SHADOW: 7}
    return full_exchange(
        id=uuid.uuid4(),
        created_at=now - timedelta(minutes=40) + timedelta(minutes=k),
        decision=decision(shadow=own, noise=False, mode=RolloutMode.SHADOW),
        fallback=False,
        observations=(
            served_arm(
                latency_ms=300.0 + 10 * k,
                ttft_ms=80.0,
                usage=Usage(90 + k, 25 + k),
                text=f"The primary answers question {k}.",
                tool_calls=(),
            ),
            *(
                _arm(name, k, slow_ms=slow.get(name, 350.0), fail_every=fails.get(name, 6))
                for name in shadows
            ),
        ),
    )


# Judge verdicts from each candidate's side: C its answer preferred, P the primary's, T a tie.
# The shadow candidate wins every judged pair: its rating is +inf, as the text report says.
VERDICTS = {CANDIDATE: "CPPTCPCPTP", SHADOW: "CCCCCC"}
CODES = {"C": PairOutcome.CANDIDATE, "P": PairOutcome.PRIMARY, "T": PairOutcome.TIE}


async def _judge(rig: UiRig, pairs: list[Exchange], verdicts: dict[str, str]) -> None:
    now = datetime.now(UTC)
    await add_judgments(
        rig.db,
        [
            Judgment(e.id, name, "judge-1", "v1", CODES[code], created_at=now)
            for name, codes in verdicts.items()
            for e, code in zip(pairs, codes, strict=False)
        ],
    )


def _ui_app(rig: UiRig) -> web.Application:
    for resource in rig.site.runner.app.router.resources():
        info = resource.get_info()
        if info.get("prefix") == "/ui":
            found: web.Application = info["app"]
            return found
    raise AssertionError("the UI is not mounted at /ui")


def _builds(rig: UiRig) -> LineupBuilds:
    return _ui_app(rig)[UI].lineup_builds


async def _rig(make_ui_rig: RigFactory, *, shadow: bool = True) -> UiRig:
    rollout: dict[str, Any] = {
        "mode": "shadow",
        "candidate": CANDIDATE,
        "controller": {"enabled": False},
        "shadow_candidates": [{"name": SHADOW, "rate": 1.0}] if shadow else [],
    }
    candidates = [{"name": n, "base_url": URL} for n in (CANDIDATE, SHADOW)]
    rig = await make_ui_rig(rollout=rollout, candidates=candidates)
    # Pages wait for their lineup, however busy the machine: the figures are the point here.
    _builds(rig).builds.wait_s = 60.0
    return rig


async def _get(client: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with client.get(url, allow_redirects=False) as response:
        return response.status, await response.text()


def _rows(page: str, table_id: str) -> list[list[str]]:
    """The body rows of a table, each cell's text unescaped."""
    found = re.search(rf'<table class="grid" id="{table_id}">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert found is not None, f"no table {table_id}"
    return [
        [html.unescape(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", found.group(1), re.S)
    ]


def _caption(page: str) -> str:
    found = re.search(r'<p id="ranking-caption">(.*?)</p>', page, re.S)
    assert found is not None, "no ranking caption"
    return html.unescape(found.group(1)).strip()


def _as_lists(rows: list[tuple[str, ...]]) -> list[list[str]]:
    return [list(row) for row in rows]


async def _expected(rig: UiRig, *, at_least: int = 2) -> Lineup:
    found = await compare_candidates(rig.db, ReportRequest(), rig.settings, {}, at_least=at_least)
    assert found is not None
    return found


@pytest.mark.parametrize(
    "ui_backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_the_page_shows_the_reports_lineup_and_ranking(make_ui_rig: RigFactory) -> None:
    rig = await _rig(make_ui_rig)
    now = datetime.now(UTC)
    pairs = [_pair(k, now, (CANDIDATE, SHADOW)) for k in range(PAIRS)]
    await store_pairs(rig.db, pairs)
    await _judge(rig, pairs, VERDICTS)
    expected = await _expected(rig)  # as ``understudy report`` computes it on the same data
    assert [c.name for c in expected.candidates] == [CANDIDATE, SHADOW]
    shadow_rating = next(s for s in expected.ranking.systems if s.name == SHADOW)
    assert shadow_rating.rating == float("inf")  # the page must word it as the report does

    admin = await rig.admin()
    # Everything recorded is the report's own window; the last hour holds all of it too.
    for query in ("?range=all", "?range=1h", ""):
        status, page = await _get(admin, rig.url + "/ui/candidates" + query)
        assert status == 200, page
        assert 'id="counting"' not in page and "http-equiv" not in page
        assert _rows(page, "lineup") == _as_lists(summary_rows(expected)[1]), query
        assert _rows(page, "ranking") == _as_lists(ranking_rows(expected.ranking)[1]), query
        assert _caption(page) == ranking_caption(expected.ranking) + "."
        assert 'id="one-candidate"' not in page
    shown = _rows(page, "ranking")
    assert shown[0][1] == SHADOW and shown[0][2] == "+inf"  # rank 1: it won every pair
    assert any(row[1] == "openai (primary)" and row[2:4] == ["0", "reference"] for row in shown)
    assert "Bradley–Terry ratings in Elo points, openai at 0" in page
    assert '<a href="/ui/candidates">Candidates</a>' in page  # the admin's nav
    assert '<a href="/ui/candidates?range=1h" title="last hour">1h</a>' in page


async def test_a_lineup_still_being_built_says_so_and_is_kept_a_while(
    make_ui_rig: RigFactory,
) -> None:
    rig = await _rig(make_ui_rig)
    now = datetime.now(UTC)
    pairs = [_pair(k, now, (CANDIDATE, SHADOW)) for k in range(PAIRS)]
    await store_pairs(rig.db, pairs)
    await _judge(rig, pairs, VERDICTS)
    builds = _builds(rig)
    # As on a large database, where the build outlasts the page's wait.
    builds.builds.wait_s = 0.0
    admin = await rig.admin()
    status, page = await _get(admin, rig.url + "/ui/candidates?range=7d")
    assert status == 200 and 'id="counting"' in page and "Counting…" in page
    assert '<meta http-equiv="refresh" content="3">' in page
    assert 'id="lineup"' not in page and 'id="ranking"' not in page
    # A second page meanwhile shares the build instead of starting another.
    status, page = await _get(admin, rig.url + "/ui/candidates?range=7d")
    assert status == 200 and 'id="counting"' in page
    assert builds.running <= 1

    builds.builds.wait_s = 60.0
    for _ in range(100):  # the reload finds the build done and shows the lineup
        status, page = await _get(admin, rig.url + "/ui/candidates?range=7d")
        if 'id="counting"' not in page:
            break
        await asyncio.sleep(0.1)
    assert status == 200 and 'id="counting"' not in page
    expected = await _expected(rig)
    assert _rows(page, "lineup") == _as_lists(summary_rows(expected)[1])
    assert builds.running == 0
    built_at = re.search(r"Built at ([^;]+);", page)
    assert built_at is not None

    # More pairs within the minute: the page still shows the lineup it kept.
    extra = [_pair(PAIRS + k, now, (CANDIDATE, SHADOW)) for k in range(3)]
    await store_pairs(rig.db, extra)
    status, again = await _get(admin, rig.url + "/ui/candidates?range=7d")
    assert status == 200 and f"Built at {built_at.group(1)};" in again
    assert _rows(again, "lineup") == _rows(page, "lineup")


async def test_one_candidate_is_shown_alone_and_said_to_have_no_one_to_rank_with(
    make_ui_rig: RigFactory,
) -> None:
    rig = await _rig(make_ui_rig, shadow=False)
    now = datetime.now(UTC)
    pairs = [_pair(k, now, (CANDIDATE,)) for k in range(PAIRS)]
    await store_pairs(rig.db, pairs)
    await _judge(rig, pairs, {CANDIDATE: VERDICTS[CANDIDATE]})
    # The report adds no lineup for one candidate; the page shows its row and says why.
    assert await compare_candidates(rig.db, ReportRequest(), rig.settings, {}) is None
    alone = await _expected(rig, at_least=1)
    admin = await rig.admin()
    status, page = await _get(admin, rig.url + "/ui/candidates")
    assert status == 200, page
    assert 'id="one-candidate"' in page
    said = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert f"Only one candidate, {CANDIDATE}, has shadow pairs in the last 24 hours" in said
    assert _rows(page, "lineup") == _as_lists(summary_rows(alone)[1])
    assert len(_rows(page, "lineup")) == 1
    assert 'id="ranking"' not in page and 'id="ranking-caption"' not in page


async def test_no_shadow_pairs_is_said_plainly(make_ui_rig: RigFactory) -> None:
    rig = await _rig(make_ui_rig)
    admin = await rig.admin()
    for query in ("", "?range=1h", "?range=all"):
        status, page = await _get(admin, rig.url + "/ui/candidates" + query)
        assert status == 200, page
        assert 'id="no-candidates"' in page and 'id="lineup"' not in page
    status, page = await _get(admin, rig.url + "/ui/candidates?range=forever")
    assert status == 400 and "Unknown time range" in page


async def test_hostile_candidate_names_are_escaped(make_ui_rig: RigFactory) -> None:
    rig = await _rig(make_ui_rig, shadow=False)
    now = datetime.now(UTC)
    # Two candidates the exchanges name, one of them with a hostile name; nothing judged.
    pairs = [_pair(k, now, (CANDIDATE,)) for k in range(PAIRS)]
    pairs += [_pair(k, now, (HOSTILE,), own=HOSTILE) for k in range(PAIRS // 2)]
    await store_pairs(rig.db, pairs)
    expected = await _expected(rig)
    assert {c.name for c in expected.candidates} == {CANDIDATE, HOSTILE}
    admin = await rig.admin()
    status, page = await _get(admin, rig.url + "/ui/candidates?range=all")
    assert status == 200, page
    assert "<script>alert" not in page and "<img src=x" not in page
    assert str(escape(HOSTILE)) in page  # in its row and in the caption's unrated names
    assert _rows(page, "lineup") == _as_lists(summary_rows(expected)[1])
    assert HOSTILE in _caption(page) and 'id="no-ranking"' in page


async def test_reviewers_are_refused_and_strangers_sent_to_sign_in(
    make_ui_rig: RigFactory,
) -> None:
    rig = await _rig(make_ui_rig)
    reviewer = await rig.reviewer("rita")
    status, page = await _get(reviewer, rig.url + "/ui/candidates")
    assert status == 403 and 'id="lineup"' not in page
    status, page = await _get(reviewer, rig.url + "/ui/review")
    assert 'href="/ui/candidates"' not in page  # no link in their menu
    stranger = rig.client()
    async with stranger.get(rig.url + "/ui/candidates?range=1h", allow_redirects=False) as r:
        assert r.status == 303
        assert r.headers["Location"] == "/ui/signin?next=%2Fui%2Fcandidates%3Frange%3D1h"
    assert _builds(rig).running == 0  # nobody allowed: nothing built


async def test_builds_are_shared_kept_a_while_and_cancelled_on_close() -> None:
    clock = [0.0]
    builds = LineupBuilds(keep_s=60.0, wait_s=0.05, clock=lambda: clock[0])
    started: list[int] = []
    release = asyncio.Event()
    at = datetime(2026, 1, 1, tzinfo=UTC)

    async def slow() -> BuiltLineup:
        started.append(1)
        await release.wait()
        return BuiltLineup(None, at + timedelta(seconds=len(started)), None)

    assert await builds.within("24h", slow) is None  # still building
    assert await builds.within("24h", slow) is None  # shared, not started again
    assert started == [1] and builds.running == 1
    release.set()
    await asyncio.sleep(0)
    first = await builds.within("24h", slow)
    assert first is not None and first.built_at == at + timedelta(seconds=1)
    clock[0] = 59.0
    assert await builds.within("24h", slow) is first  # kept: not built again
    assert started == [1]
    clock[0] = 61.0
    fresh = await builds.within("24h", slow)  # too old: built afresh
    assert fresh is not None and fresh.built_at == at + timedelta(seconds=2)
    assert await builds.within("1h", slow) is not None and len(started) == 3  # its own range

    async def failing() -> BuiltLineup:
        await asyncio.sleep(0.1)
        raise OSError("the database went away")

    assert await builds.within("7d", failing) is None
    await asyncio.sleep(0.2)
    with pytest.raises(OSError, match="went away"):
        await builds.within("7d", failing)  # the next page sees the failure

    never = asyncio.Event()

    async def hung() -> BuiltLineup:
        await never.wait()
        raise AssertionError("cancelled before")

    assert await builds.within("all", hung) is None
    await builds.close()
    assert builds.running == 0
