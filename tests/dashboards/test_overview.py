"""The overview at ``/ui/`` on a real server: figures checked against the seeded values.

Pairs, judgments, reviews and rollout transitions are stored with known values; each
figure the page shows is computed here from those values, not through the code that
draws the page.
"""

from __future__ import annotations

import asyncio
import html
import json
import math
import re
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import insert, select

from core import ErrorKind, Exchange, Role, RolloutMode, Usage
from core.outcome import PairOutcome
from evaluation.cost import SECONDS_PER_MONTH
from evaluation.wording import fmt
from storage.database import Database
from storage.flags import AuditNote, FlagRecord, append_flag
from storage.judgments import Judgment, add_judgments
from storage.models import ReviewerRow, ReviewRow
from storage.reviewers import add_reviewer
from tests.dashboards.conftest import ADMIN_TOKEN, RigFactory, UiRig, store_pairs
from tests.storage.factories import decision, full_exchange, served_arm, shadow_arm

CANDIDATE = "local"
PRIMARY_MODEL = "gpt-4o-mini-2024-07-18"  # billed as gpt-4o-mini: $0.15 / $0.075 / $0.60
CANDIDATE_MODEL = "gpt-4.1-nano"  # $0.10 / $0.025 / $0.40 per million tokens
PRICES = {PRIMARY_MODEL: (0.15, 0.075, 0.60), CANDIDATE_MODEL: (0.10, 0.025, 0.40)}
PAIRS = 40
DATA = re.compile(r"id=\"overview-data\" data-plots='([^']*)'")


def _usage(k: int, scale: int) -> Usage:
    prompt = 100 + 7 * k * scale
    return Usage(prompt, 20 + 3 * k, cached_tokens=(k % 3) * 10 if k % 2 else None)


def _pair(k: int, now: datetime) -> Exchange:
    """Pair ``k``: every fifth candidate call fails; the rest answer with known tokens."""
    failed = k % 5 == 4
    candidate = shadow_arm(
        upstream=CANDIDATE,
        role=Role.SHADOW,
        model=CANDIDATE_MODEL,
        status=500 if failed else 200,
        error_kind=ErrorKind.HTTP_STATUS if failed else None,
        latency_ms=200.0 + 40 * k,
        ttft_ms=None if failed else 50.0 + k,
        usage=Usage() if failed else _usage(k, 2),
        text=None if failed else f"candidate answer {k}",
    )
    primary = served_arm(
        model=PRIMARY_MODEL, latency_ms=300.0 + 10 * k, ttft_ms=80.0, usage=_usage(k, 1)
    )
    # Every third request is also mirrored to a shadow candidate the rollout is not about.
    watched = shadow_arm(
        upstream="gemma", role=Role.SHADOW, model="gemma-2", status=200, error_kind=None,
        latency_ms=5.0, ttft_ms=1.0, usage=_usage(k, 3), text="another answer",
    )  # fmt: skip
    return full_exchange(
        id=uuid.uuid4(),
        created_at=now - timedelta(minutes=50) + timedelta(minutes=k),
        decision=decision(shadow=CANDIDATE, noise=False, mode=RolloutMode.SHADOW),
        fallback=False,
        observations=(primary, candidate, watched) if k % 3 == 0 else (primary, candidate),
    )


def _usd(usage: Usage, model: str) -> float:
    price_in, price_cached, price_out = PRICES[model]
    assert usage.prompt_tokens is not None and usage.completion_tokens is not None
    cached = usage.cached_tokens or 0
    uncached = max(usage.prompt_tokens - cached, 0)
    return (uncached * price_in + cached * price_cached + usage.completion_tokens * price_out) / 1e6


@dataclass(frozen=True)
class Expected:
    primary_per_1k: str
    candidate_per_1k: str
    savings: str
    judge: tuple[int, int, int]
    people: tuple[int, int, int, int]
    judge_people_agree: str
    judge_people_kappa: str
    candidate_ok: int
    served_shares: list[float]
    candidate_error_percent: dict[float, float]  # per 15-minute bucket (its start, epoch s)


def _expected_cost(pairs: list[Exchange]) -> tuple[str, str, str]:
    priced = [e for e in pairs if e.observations[1].status == 200]
    primary = [_usd(e.observations[0].usage, PRIMARY_MODEL) for e in priced]
    candidate = [_usd(e.observations[1].usage, CANDIDATE_MODEL) for e in priced]
    p_mean, c_mean = sum(primary) / len(primary), sum(candidate) / len(candidate)
    span = (pairs[-1].created_at - pairs[0].created_at).total_seconds()
    per_month = len(pairs) / span * SECONDS_PER_MONTH
    return (
        fmt(1000 * p_mean, "usd"),
        fmt(1000 * c_mean, "usd"),
        fmt(per_month * (p_mean - c_mean), "usd"),
    )


# Judge and one reviewer on the same eight pairs: they agree on six.
JUDGE = "CCPPTCPC"
PERSON = "CCPPTPCC"
CODES = {"C": "candidate", "P": "primary", "T": "tie"}


def _kappa(a: str, b: str) -> float:
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    chance = sum((a.count(c) / n) * (b.count(c) / n) for c in "CPT")
    return (observed - chance) / (1 - chance)


async def _seed_outcomes(db: Database, pairs: list[Exchange], now: datetime) -> None:
    judged = [
        Judgment(e.id, CANDIDATE, "judge-1", "v1", PairOutcome(CODES[code]), created_at=now)
        for e, code in zip(pairs[:8], JUDGE, strict=True)
    ]
    await add_judgments(db, judged)
    for name in ("ana", "ben"):
        await add_reviewer(db, name, f"hash-{name}", now, now + timedelta(days=1))
    async with db.engine.connect() as conn:
        ana, ben = (await conn.execute(select(ReviewerRow.id).order_by(ReviewerRow.id))).scalars()
    rows = [
        _review(ana, e, CODES[code], k)
        for k, (e, code) in enumerate(zip(pairs[:8], PERSON, strict=True))
    ]
    # Ana calls two more pairs both bad, and Ben agrees with her on the first four.
    rows += [_review(ana, e, "both_bad", 10 + k) for k, e in enumerate(pairs[8:10])]
    rows += [
        _review(ben, e, CODES[code], 20 + k)
        for k, (e, code) in enumerate(zip(pairs[:4], PERSON[:4], strict=True))
    ]
    rows.append(_review(ben, pairs[12], "skipped", 30))  # a skip is no verdict
    async with db.engine.begin() as conn:
        await conn.execute(insert(ReviewRow), rows)


def _review(reviewer: int, e: Exchange, outcome: str, k: int) -> dict[str, object]:
    at = e.created_at + timedelta(minutes=1)
    return {
        "id": uuid.uuid4(),
        "item_token": f"token-{k}",
        "reviewer_id": reviewer,
        "exchange_id": e.id,
        "candidate": CANDIDATE,
        "route": e.route.value,
        "shown_order": "candidate_first" if k % 2 else "primary_first",
        "outcome": outcome,
        "time_taken_ms": 1500.0,
        "note": None,
        "shown_at": at,
        "decided_at": at,
        "created_at": at,
    }


# Transitions after the seed (shadow): 5 %, 25 %, killed, kill lifted.
STEPS: list[tuple[str, dict[str, Any], float]] = [
    ("set", {"mode": "split", "percent": 5.0, "stage": "5%"}, 5.0),
    ("set", {"percent": 25.0, "stage": "25%"}, 25.0),
    ("kill", {"killed": True}, 0.0),
    ("unkill", {"killed": False}, 25.0),
]


async def _seed_transitions(db: Database) -> None:
    for action, values, _ in STEPS:

        def change(rows: Any, values: dict[str, Any] = values) -> tuple[FlagRecord, FlagRecord]:
            before: FlagRecord = rows[None]
            return before, replace(before, **values)

        await append_flag(db, None, change, AuditNote("ops", action, f"step {action}"))


async def seeded_rig(make_ui_rig: RigFactory) -> tuple[UiRig, Expected]:
    # No controller: it would act on the seeded stage and add transitions of its own.
    rollout = {"mode": "shadow", "candidate": CANDIDATE, "controller": {"enabled": False}}
    rig = await make_ui_rig(rollout=rollout)
    now = datetime.now(UTC)
    pairs = [_pair(k, now) for k in range(PAIRS)]
    await store_pairs(rig.db, pairs)
    await _seed_outcomes(rig.db, pairs, now)
    await _seed_transitions(rig.db)
    people = PERSON + "BB" + PERSON[:4]
    primary, candidate, savings = _expected_cost(pairs)
    agree = sum(x == y for x, y in zip(JUDGE, PERSON, strict=True)) / len(JUDGE)
    return rig, Expected(
        primary_per_1k=primary,
        candidate_per_1k=candidate,
        savings=savings,
        judge=(JUDGE.count("C"), JUDGE.count("P"), JUDGE.count("T")),
        people=(people.count("C"), people.count("P"), people.count("T"), people.count("B")),
        judge_people_agree=f"{100 * agree:.0f} %",
        judge_people_kappa=f"{_kappa(JUDGE, PERSON):.2f}",
        candidate_ok=sum(1 for e in pairs if e.observations[1].status == 200),
        served_shares=[0.0, *(share for _, _, share in STEPS)],
        candidate_error_percent=_error_percent(pairs, 900),
    )


def _error_percent(pairs: list[Exchange], bucket_s: int) -> dict[float, float]:
    calls: dict[float, list[int]] = {}
    for e in pairs:
        start = float(int(e.created_at.timestamp()) // bucket_s * bucket_s)
        counts = calls.setdefault(start, [0, 0])
        counts[0] += 1
        counts[1] += e.observations[1].status != 200
    return {start: 100.0 * failed / n for start, (n, failed) in calls.items()}


def _cells(page: str, row_id: str) -> list[str]:
    found = re.search(rf'<tr id="{row_id}">(.*?)</tr>', page, re.S)
    assert found is not None, f"no row {row_id}"
    return [
        html.unescape(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", found.group(1), re.S)
    ]


async def _serving_version(client: aiohttp.ClientSession, url: str, version: int) -> None:
    """Wait until the server serves with flag ``version`` (it follows the database)."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for _ in range(100):
        async with client.get(url + "/admin/api/v1/rollout", headers=headers) as response:
            if (await response.json())["version"] == version:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the server never served with flag version {version}")


async def _get(client: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with client.get(url, allow_redirects=False) as response:
        return response.status, await response.text()


@pytest.mark.parametrize(
    "ui_backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_the_overview_shows_the_seeded_figures(make_ui_rig: RigFactory) -> None:
    rig, expected = await seeded_rig(make_ui_rig)
    admin = await rig.admin()
    await _serving_version(admin, rig.url, 1 + len(STEPS))
    status, page = await _get(admin, rig.url + "/ui/")
    assert status == 200, page

    # The rollout now: the stage the last transition names, and the flags this server
    # serves with (the default row's, on every route it covers).
    assert re.search(r'<b id="stage">(.*?)</b>', page).group(1) == "25%"  # type: ignore[union-attr]
    assert f"flag version {1 + len(STEPS)}." in page
    routes = re.search(r'id="routes">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert routes is not None
    rows = {
        cells[0]: cells[1:]
        for row in re.findall(r"<tr>(.*?)</tr>", routes.group(1), re.S)
        for cells in [[html.unescape(c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]]
    }
    assert rows["chat.completions"] == ["split", CANDIDATE, "25 %", "25 %", "no", "no"]
    assert re.search(r"Next stage: <b>(.*?)</b>", page).group(1) == "50%"  # type: ignore[union-attr]

    assert _cells(page, "outcomes-judge")[1:4] == [str(n) for n in expected.judge]
    assert _cells(page, "outcomes-people")[1:5] == [str(n) for n in expected.people]
    agreement = re.search(r"LLM judge vs people</td>(.*?)</tr>", page, re.S)
    assert agreement is not None
    kappa, agree, compared = re.findall(r"<td[^>]*>(.*?)</td>", agreement.group(1))
    assert (kappa, html.unescape(agree), compared) == (
        expected.judge_people_kappa,
        expected.judge_people_agree,
        str(len(JUDGE)),
    )

    assert _cells(page, "cost-primary")[1:3] == [PRIMARY_MODEL, expected.primary_per_1k]
    assert _cells(page, "cost-candidate")[1:3] == [CANDIDATE_MODEL, expected.candidate_per_1k]
    assert f"<b>{expected.savings}</b>" in page

    found = DATA.search(page)
    assert found is not None
    plots = json.loads(found.group(1))
    assert plots["latency"]["candidate_n"] == expected.candidate_ok
    assert plots["latency"]["primary_n"] == PAIRS
    assert plots["latency"]["candidate"][-1] == pytest.approx(1.0)
    # Every transition in the window, then the last share held to now.
    assert plots["rollout"]["percent"] == [*expected.served_shares, expected.served_shares[-1]]
    assert plots["rollout"]["marks"][:2] == ["v1 seed by settings", "v2 set by ops"]
    rates = plots["rates"]
    shown = dict(zip(rates["x"], rates["candidate_errors"], strict=True))
    assert shown == pytest.approx(expected.candidate_error_percent)
    assert set(rates["primary_errors"]) == {0.0}
    assert page.count("step kill") == 1  # the transitions table gives each reason

    # The verdict fragment words the admin API's report, metric by metric.
    status, fragment = await _get(admin, rig.url + "/ui/overview/verdict")
    assert status == 200
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with admin.get(rig.url + "/admin/api/v1/rollout/report", headers=headers) as response:
        body = await response.json()
    assert body["status"] == "ready", body
    worded = html.unescape(fragment)
    verdict = body["report"]["verdict"]
    assert f"DECISION: {verdict['decision'].upper()}" in worded
    for metric in verdict["metrics"]:
        assert metric["reason"] in worded
        assert f"<b>{metric['label'].upper()}</b>" in worded


# A self-hosted candidate: its model has no list price, its settings give its GPU cost.
HOSTED_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
GPU = {"gpu_usd_per_hour": 2.5, "output_tokens_per_s": 400.0, "gpus": 2}


def _hosted_pair(k: int, now: datetime) -> Exchange:
    """Pair ``k`` answered by the self-hosted model; every fourth answer has no prompt count,
    which a GPU cost does not need."""
    pair = _pair(k, now)
    primary, candidate, *rest = pair.observations
    usage = candidate.usage
    if k % 4 == 1 and candidate.status == 200:
        usage = Usage(None, usage.completion_tokens)
    hosted = replace(candidate, model=HOSTED_MODEL, usage=usage)
    return replace(pair, observations=(primary, hosted, *rest))


def _expected_hosted_cost(pairs: list[Exchange]) -> tuple[str, str, str, str, int, float]:
    """Per 1,000 requests per arm, monthly savings, the candidate's monthly bill, replicas,
    and the traffic (requests/s) at which one replica costs what the primary does."""
    priced = [e for e in pairs if e.observations[1].usage.completion_tokens is not None]
    p_mean = sum(_usd(e.observations[0].usage, PRIMARY_MODEL) for e in priced) / len(priced)
    completion = [e.observations[1].usage.completion_tokens or 0 for e in priced]
    busy_s = sum(completion) / len(completion) / GPU["output_tokens_per_s"]
    usd_per_s = GPU["gpu_usd_per_hour"] * GPU["gpus"] / 3600
    span = (pairs[-1].created_at - pairs[0].created_at).total_seconds()
    rate = len(pairs) / span
    replicas = max(1, math.ceil(rate * busy_s))
    candidate_month = replicas * usd_per_s * SECONDS_PER_MONTH
    return (
        fmt(1000 * p_mean, "usd"),
        fmt(1000 * busy_s * usd_per_s, "usd"),
        fmt(rate * SECONDS_PER_MONTH * p_mean - candidate_month, "usd"),
        fmt(candidate_month, "usd"),
        replicas,
        usd_per_s / p_mean,
    )


async def test_a_self_hosted_candidate_is_priced_by_its_gpu_settings(
    make_ui_rig: RigFactory,
) -> None:
    rollout = {"mode": "shadow", "candidate": CANDIDATE, "controller": {"enabled": False}}
    candidates = [{"name": CANDIDATE, "base_url": "http://127.0.0.1:9/v1", "kind": "vllm", **GPU}]
    rig = await make_ui_rig(rollout=rollout, candidates=candidates)
    now = datetime.now(UTC)
    pairs = [_hosted_pair(k, now) for k in range(PAIRS)]
    await store_pairs(rig.db, pairs)
    primary, candidate, savings, monthly, replicas, break_even = _expected_hosted_cost(pairs)

    admin = await rig.admin()
    status, page = await _get(admin, rig.url + "/ui/")
    assert status == 200, page
    assert 'id="cost-note"' not in page
    assert _cells(page, "cost-primary")[1:3] == [PRIMARY_MODEL, primary]
    assert _cells(page, "cost-candidate")[1:4] == [HOSTED_MODEL, candidate, monthly]
    assert f"<b>{savings}</b>" in page
    gpu = re.search(r'<p id="cost-gpu">(.*?)</p>', page, re.S)
    assert gpu is not None
    said = html.unescape(gpu.group(1))
    assert "2 GPUs per replica at $2.50 an hour each, 400 output tokens/s per replica" in said
    assert (
        f"({replicas} needed," in said and f"breaks even above {break_even:.3g} requests/s" in said
    )

    # The admin API's report prices the candidate from the same settings.
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with admin.get(rig.url + "/admin/api/v1/rollout/report", headers=headers) as response:
        body = await response.json()
    assert body["status"] == "ready", body
    cost = body["report"]["cost"]
    assert fmt(1000 * cost["candidate_usd_per_request"], "usd") == candidate
    assert cost["replicas_needed"] == replicas


async def test_an_empty_database_says_there_is_no_traffic(make_ui_rig: RigFactory) -> None:
    rig = await make_ui_rig()
    admin = await rig.admin()
    for query in ("", "?range=1h", "?range=7d", "?range=all"):
        status, page = await _get(admin, rig.url + "/ui/" + query)
        assert status == 200, page
        assert 'id="no-traffic"' in page and "No traffic yet" in page
        assert "overview-data" not in page
    status, fragment = await _get(admin, rig.url + "/ui/overview/verdict")
    assert status == 200 and "No report" in fragment
    status, page = await _get(admin, rig.url + "/ui/?range=forever")
    assert status == 400 and "Unknown time range" in page


async def test_reviewers_are_sent_to_review_and_strangers_to_sign_in(
    make_ui_rig: RigFactory,
) -> None:
    rig = await make_ui_rig()
    reviewer = await rig.reviewer("rita")
    async with reviewer.get(rig.url + "/ui/", allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"] == "/ui/review"
    status, _ = await _get(reviewer, rig.url + "/ui/overview/verdict")
    assert status == 403
    stranger = rig.client()
    for path in ("/ui/?range=1h", "/ui/overview/verdict"):
        async with stranger.get(rig.url + path, allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"].startswith("/ui/signin?next=")


def _ui_app(rig: UiRig) -> web.Application:
    for resource in rig.site.runner.app.router.resources():
        info = resource.get_info()
        if info.get("prefix") == "/ui":
            found: web.Application = info["app"]
            return found
    raise AssertionError("the UI is not mounted at /ui")
