"""The exchange browser over HTTP: filters narrow to the ids computed here, "Next page" visits
every exchange once, bad values get a 400 page, the scan cap is said, reviewers are refused."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlencode

import aiohttp
import pytest

from core import Exchange, Route
from storage.ui_browser import PAGE_SIZE, SCAN_CAP
from tests.dashboards.conftest import UiRig
from tests.storage.ui_data import CANDIDATE, PRIMARY, T0, build_traffic, store

ROW = re.compile(r'<tr data-id="([0-9a-f-]{36})">')
NEXT = re.compile(r'<a href="([^"]+)" id="next-page"')
TRAFFIC = 130  # three pages


def _newest_first(exchanges: list[Exchange]) -> list[uuid.UUID]:
    ordered = sorted(exchanges, key=lambda e: (e.created_at, e.id.int), reverse=True)
    return [e.id for e in ordered]


async def _walk(
    rig: UiRig, client: aiohttp.ClientSession, params: dict[str, str]
) -> tuple[list[uuid.UUID], list[str]]:
    """Every id the pages list, following "Next page" from the first; and each page's HTML."""
    path: str | None = "/ui/exchanges" + (f"?{urlencode(params)}" if params else "")
    ids: list[uuid.UUID] = []
    pages: list[str] = []
    while path is not None:
        async with client.get(rig.url + path, allow_redirects=False) as response:
            assert response.status == 200, (path, await response.text())
            page = await response.text()
        pages.append(page)
        ids += [uuid.UUID(found) for found in ROW.findall(page)]
        link = NEXT.search(page)
        path = html.unescape(link.group(1)) if link else None
        assert len(pages) < 100
    return ids, pages


def _text_of(e: Exchange) -> str:
    return " ".join(o.text.lower() for o in e.observations if o.text)


FILTERS: list[tuple[dict[str, str], Callable[[Exchange], bool]]] = [
    ({"route": "completions"}, lambda e: e.route is Route.COMPLETIONS),
    ({"model": "gpt-4o"}, lambda e: e.requested_model == "gpt-4o"),
    ({"served_by": CANDIDATE}, lambda e: e.served_by == CANDIDATE),
    ({"status": "500"}, lambda e: any(o.status == 500 for o in e.observations)),
    (
        {"error_kind": "timeout"},
        lambda e: any(o.error_kind == "timeout" for o in e.observations),
    ),
    ({"fallback": "yes"}, lambda e: e.fallback),
    ({"fallback": "no"}, lambda e: not e.fallback),
    ({"text": "PARIS"}, lambda e: "paris" in _text_of(e)),
    (
        {
            # A form's datetime-local value (UTC) and an ISO time with its zone.
            "since": (T0 + timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M"),
            "until": (T0 + timedelta(hours=2)).isoformat(),
            "route": "chat.completions",
            "served_by": PRIMARY,
            "text": "",  # an empty field does not narrow
        },
        lambda e: (
            T0 + timedelta(minutes=20) <= e.created_at < T0 + timedelta(hours=2)
            and e.route is Route.CHAT
            and e.served_by == PRIMARY
        ),
    ),
]


@pytest.mark.parametrize(
    "ui_backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)], indirect=True
)
async def test_pages_visit_every_exchange_once_and_filters_keep_the_matching_ones(
    make_ui_rig,
) -> None:
    rig: UiRig = await make_ui_rig()
    exchanges = build_traffic(TRAFFIC, seed=5)
    await store(rig.db, exchanges)
    admin = await rig.admin()

    ids, pages = await _walk(rig, admin, {})
    assert ids == _newest_first(exchanges)  # each once, newest first
    assert [len(ROW.findall(p)) for p in pages] == [PAGE_SIZE, PAGE_SIZE, TRAFFIC - 2 * PAGE_SIZE]
    assert 'id="first-page"' not in pages[0] and 'id="first-page"' in pages[1]
    assert not any('id="more-may-exist"' in p for p in pages)

    for params, keep in FILTERS:
        expected = _newest_first([e for e in exchanges if keep(e)])
        assert 0 < len(expected) < len(exchanges), params
        found, pages = await _walk(rig, admin, params)
        assert found == expected, params
        # The form shows the filter it applied, and "Next page" keeps it.
        for name, value in params.items():
            if name in ("route", "fallback", "error_kind"):
                assert f'<option value="{value}" selected>' in pages[0], name


BAD = [
    ({"status": "abc"}, "status: &#39;abc&#39; is not an HTTP status"),
    ({"status": "700"}, "status: &#39;700&#39; is not an HTTP status"),
    ({"route": "nope"}, "route: &#39;nope&#39; is not one of"),
    ({"error_kind": "oops"}, "error_kind: &#39;oops&#39; is not one of"),
    ({"fallback": "maybe"}, "fallback: &#39;maybe&#39; is not one of yes, no"),
    ({"since": "yesterday"}, "since: &#39;yesterday&#39; is not a time"),
    ({"since": "2025-01-02T00:00", "until": "2025-01-01T00:00"}, "since: must be earlier"),
    ({"after": "bm90IGEgY3Vyc29y"}, "after: this page link is damaged"),
    ({"after": "%%%"}, "after: this page link is damaged"),
    ({"text": "x" * 201}, "text: longer than 200 characters"),
    ({"model": '"><script>alert(1)</script>'}, None),  # fine as a filter: matches nothing
]


async def test_bad_filter_values_get_a_400_page_that_says_which(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig()
    await store(rig.db, build_traffic(20, seed=6))
    admin = await rig.admin()
    for params, message in BAD:
        async with admin.get(f"{rig.url}/ui/exchanges?{urlencode(params)}") as response:
            page = await response.text()
            assert response.status == (400 if message else 200), params
        assert "<script>alert(1)</script>" not in page
        if message is None:
            assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page  # refilled, escaped
            assert "No exchange matches" in page
            continue
        assert 'id="filter-problem"' in page and message in page, (params, page)
        assert 'id="filters"' in page and not ROW.search(page)  # the form, no table


async def test_reviewers_are_refused_and_strangers_sent_to_sign_in(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig()
    exchanges = build_traffic(5, seed=7)
    await store(rig.db, exchanges)
    reviewer = await rig.reviewer("alice")
    stranger = rig.client()
    for path in ("/ui/exchanges", f"/ui/exchanges/{exchanges[0].id}"):
        async with reviewer.get(rig.url + path, allow_redirects=False) as response:
            assert response.status == 403, path
            page = await response.text()
        assert str(exchanges[0].id) not in page and PRIMARY not in page
        async with stranger.get(rig.url + path, allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"].startswith("/ui/signin?next=")
    async with reviewer.get(rig.url + "/ui/review") as response:
        assert 'href="/ui/exchanges"' not in await response.text()  # no link in their menu
    admin = await rig.admin()
    async with admin.get(rig.url + "/ui/reviewers") as response:
        assert '<a href="/ui/exchanges">Exchanges</a>' in await response.text()


@pytest.mark.slow
async def test_a_page_that_reads_the_scan_cap_says_more_may_exist(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig()
    exchanges = build_traffic(SCAN_CAP + 30, seed=8)
    await store(rig.db, exchanges)
    admin = await rig.admin()
    wanted = "Paris"
    oldest = set(_newest_first(exchanges)[SCAN_CAP:])
    # Only the 30 oldest exchanges can match: the first page reads the cap and finds none.
    await _keep_text_only_in(rig, oldest, wanted)
    answered = [e for e in exchanges if e.id in oldest and any(o.text for o in e.observations)]
    expected = _newest_first(answered)
    assert expected
    ids, pages = await _walk(rig, admin, {"text": wanted})
    assert ids == expected
    assert 'id="more-may-exist"' in pages[0] and not ROW.search(pages[0])
    assert f"read {SCAN_CAP:,} exchanges" in pages[0]
    assert 'id="more-may-exist"' not in pages[-1]


async def _keep_text_only_in(rig: UiRig, keep: set[uuid.UUID], word: str) -> None:
    """Take ``word`` out of every answer outside ``keep``."""
    from sqlalchemy import update

    from storage.models import ObservationRow

    async with rig.db.engine.begin() as conn:
        await conn.execute(
            update(ObservationRow)
            .where(ObservationRow.exchange_id.not_in(list(keep)))
            .values(text="Something else.")
        )
        await conn.execute(
            update(ObservationRow)
            .where(ObservationRow.exchange_id.in_(list(keep)))
            .where(ObservationRow.text.is_not(None))
            .values(text=f"The capital is {word}.")
        )
