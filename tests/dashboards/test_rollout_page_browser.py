"""The rollout page in Chromium (Debian's, driven by Playwright) against a real ``understudy serve``.

An admin signs in, moves the percent with a reason, confirms it on the second page, and
sees the new percent and the change at the top of the audit timeline. The pages are
saved as screenshots under test-artifacts/ui/.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import migrations
from storage.database import Database
from storage.flags import audit_entries, current_flags
from tests.dashboards.test_browser import ARTIFACTS, _chromium
from tests.faults.fake_process import FakeProcess
from tests.faults.serve import Proxy, start_proxy

playwright_sync = pytest.importorskip("playwright.sync_api")

ADMIN_TOKEN = "browser-rollout-admin-token-7d1e"
REASON = "the 5% stage looked <fine> & steady"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Proxy, str]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    asyncio.run(migrations.upgrade(url))
    with FakeProcess(persona="openai") as primary, FakeProcess(persona="candidate") as candidate:
        proxy = start_proxy(
            tmp_path,
            url,
            (primary.base_url, candidate.base_url),
            env={"UNDERSTUDY_ADMIN_TOKENS": json.dumps({"ops": ADMIN_TOKEN})},
        )
        try:
            yield proxy, url
        finally:
            assert proxy.terminate() == 0
    assert ADMIN_TOKEN not in proxy.log.read_text()


async def _stored(url: str) -> tuple[float, tuple[str, str, str | None]]:
    async with Database(url) as db:
        row = (await current_flags(db))[None]
        newest = (await audit_entries(db, limit=1))[0]
    return row.percent, (newest.actor, newest.action, newest.reason)


def _shot(page: object, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
    assert path.stat().st_size > 1000


@pytest.mark.slow
def test_an_admin_moves_the_percent_on_the_rollout_page(served: tuple[Proxy, str]) -> None:
    proxy, url = served
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_context().new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.goto(f"{proxy.url}/ui/rollout")
            assert page.url.startswith(f"{proxy.url}/ui/signin?next=")
            page.fill('input[name="token"]', ADMIN_TOKEN)
            with page.expect_navigation():
                page.click("#admin-signin")
            page.wait_for_url(f"{proxy.url}/ui/rollout")
            assert (
                page.locator("#rollout-routes tbody tr").first.locator(".percent").inner_text()
                == "0 %"
            )
            assert (
                page.locator('#stages tr[aria-current="step"] td')
                .first.inner_text()
                .startswith("shadow")
            )

            page.fill("#percent", "5")
            page.fill("#reason", REASON)
            with page.expect_navigation():
                page.click("#do-set")
            assert page.url == f"{proxy.url}/ui/rollout/confirm"
            assert page.locator("#confirm-percent").inner_text() == "5 %"
            assert page.locator("#confirm-reason").inner_text() == REASON
            _shot(page, "rollout-confirm")
            with page.expect_navigation():
                page.click("#confirm")

            assert page.url.startswith(f"{proxy.url}/ui/rollout?done=set&version=")
            assert page.locator("#rollout-done").inner_text().startswith("Done: set percent")
            chat = page.locator("#rollout-routes tbody tr").first
            assert chat.locator("td").first.inner_text() == "chat.completions"
            assert chat.locator(".percent").inner_text() == "5 %"
            assert (
                page.locator('#stages tr[aria-current="step"] td')
                .first.inner_text()
                .startswith("5%")
            )
            newest = page.locator("#timeline li").first
            assert newest.locator(".actor").inner_text() == "ui:ops"
            assert newest.locator(".action").inner_text() == "set"
            assert newest.locator(".reason").inner_text() == f"Reason: {REASON}"
            assert "percent 0.0 -> 5.0" in newest.locator(".changed").inner_text()
            _shot(page, "rollout")
            assert not [m for m in console if "Content Security Policy" in m or "Refused" in m]
        finally:
            browser.close()

    percent, newest = asyncio.run(_stored(url))
    assert percent == 5.0
    assert newest == ("ui:ops", "set", REASON)
