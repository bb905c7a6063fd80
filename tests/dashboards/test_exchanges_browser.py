"""The exchange browser in Chromium (Debian's, driven by Playwright) against a real
``understudy serve``: an admin pages through the exchanges, filters them, and opens one
whose candidate answer carries script; the diff, timing bars and metrics render, nothing
runs, no key shows, and the CSP blocks nothing the pages need. Screenshots go under
test-artifacts/ui/.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

import migrations
from evaluation.metrics.registry import DEFAULT_METRICS
from storage.database import Database
from storage.ui_browser import PAGE_SIZE
from tests.dashboards.test_browser import ARTIFACTS, _chromium, _wait_for_pairs
from tests.faults.fake_process import FakeProcess
from tests.faults.serve import Proxy, start_proxy
from tests.storage.ui_data import build_traffic, store

playwright_sync = pytest.importorskip("playwright.sync_api")

ADMIN_TOKEN = "browser-exchanges-admin-token-3b9d"
CLIENT_KEY = "sk-exchanges-browser-client-key-0042"
LIVE = 6  # requests sent through the proxy
STORED = 60  # older exchanges stored directly, so the list has two pages
PRIMARY_REPLY = "Lyon is a fine city in France (reply {digest})."
CANDIDATE_REPLY = (
    "Lyon is a city <script>window.__pwned = 1</script> in France "
    '"><img src="x" onerror="window.__pwned = 2"> ({digest})'
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Proxy]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    asyncio.run(migrations.upgrade(url))
    asyncio.run(_store_older(url))
    with (
        FakeProcess(persona="openai", reply_template=PRIMARY_REPLY) as primary,
        FakeProcess(persona="candidate", reply_template=CANDIDATE_REPLY) as candidate,
    ):
        proxy = start_proxy(
            tmp_path,
            url,
            (primary.base_url, candidate.base_url),
            env={"UNDERSTUDY_ADMIN_TOKENS": json.dumps({"ops": ADMIN_TOKEN})},
        )
        try:
            client = OpenAI(base_url=f"{proxy.url}/v1", api_key=CLIENT_KEY)
            for n in range(LIVE):
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"Name a city in France ({n})"}],
                )
            _wait_for_pairs(url, LIVE)
            yield proxy
        finally:
            assert proxy.terminate() == 0
    assert ADMIN_TOKEN not in proxy.log.read_text()


async def _store_older(url: str) -> None:
    async with Database(url) as db:
        await store(db, build_traffic(STORED, seed=3))


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000


@pytest.mark.slow
def test_an_admin_pages_filters_and_opens_an_exchange(served: Proxy) -> None:
    proxy = served
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_context().new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(f"{proxy.url}/ui/exchanges")
            assert page.url.startswith(f"{proxy.url}/ui/signin?next=")
            page.fill('input[name="token"]', ADMIN_TOKEN)
            with page.expect_navigation():
                page.click("#admin-signin")
            page.wait_for_url(f"{proxy.url}/ui/exchanges")

            rows = page.locator("#exchanges tbody tr[data-id]")
            assert rows.count() == PAGE_SIZE
            first_page = set(rows.evaluate_all("rows => rows.map(r => r.dataset.id)"))
            with page.expect_navigation():
                page.click("#next-page")
            assert rows.count() == LIVE + STORED - PAGE_SIZE
            assert page.locator("#next-page").count() == 0
            second_page = set(rows.evaluate_all("rows => rows.map(r => r.dataset.id)"))
            assert not first_page & second_page

            page.fill('input[name="text"]', "lyon")
            page.select_option('select[name="route"]', "chat.completions")
            with page.expect_navigation():
                page.click("#apply-filters")
            assert rows.count() == LIVE
            assert "text=lyon" in page.url and "route=chat.completions" in page.url
            _shot(page, "exchanges")

            with page.expect_navigation():
                rows.first.locator("a").click()
            assert page.locator(".diff-candidate ins").count() > 0
            assert "window.__pwned = 1" in page.locator(".diff-candidate").inner_text()
            arms = page.locator("#arms tbody tr").count()
            assert arms == 2
            assert page.locator("#timings rect").count() == 2 * arms
            assert page.locator(".metrics tbody tr").count() == len(DEFAULT_METRICS)
            assert page.locator(".metrics .vs-rerun").count() == 0  # no second primary answer
            assert page.evaluate("() => window.__pwned === undefined") and dialogs == []
            assert page.locator("main script, main img, main [onerror]").count() == 0
            content = page.content()
            assert CLIENT_KEY not in content and ADMIN_TOKEN not in content
            _shot(page, "exchange")
            assert not [m for m in console if "Content Security Policy" in m or "Refused" in m]
        finally:
            browser.close()
