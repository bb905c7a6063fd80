"""The web UI in Chromium (Debian's, driven by Playwright) against a real ``understudy serve``.

A reviewer signs in through an invite and reviews 10 pairs by keyboard, blind; answers
that carry script run nothing; the reviews land in the database and in the report's
quality metric. Admins see the reviewers page, reviewers get 403 there, strangers are
sent to sign in, and forged posts get 403. Each page is saved as a screenshot under
test-artifacts/ui/.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from sqlalchemy import text

import migrations
from storage.database import Database
from tests.faults.fake_process import FakeProcess
from tests.faults.serve import REPO, Proxy, start_proxy

playwright_sync = pytest.importorskip("playwright.sync_api")

ADMIN_TOKEN = "browser-admin-token-5f0c2a7e9b14"
PASSWORD = "a long enough password"
ARTIFACTS = REPO / "test-artifacts" / "ui"
PAIRS = 12
PRIMARY_REPLY = "Paris is the capital of France (reply {digest})."
# Every candidate answer tries to run script three ways; none may run.
HOSTILE_REPLY = (
    "Here it is <script>window.__pwned = 1</script> "
    '<img src="x" onerror="window.__pwned = 2"> '
    "[details](javascript:window.__pwned=3) and `code` ({digest})"
)
# Nothing on the review page may name or measure an arm.
ARM_WORDS = re.compile(
    r"openai|local\b|candidate|primary|gpt-|llama|latency|ttft|tokens|usage|\d+(\.\d+)?\s?ms\b",
    re.I,
)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it)")
    return found


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "understudy.cli", *args],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def _count(url: str, sql: str) -> int:
    async with Database(url) as db, db.engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


def _wait_for_pairs(url: str, wanted: int, timeout_s: float = 30.0) -> None:
    sql = "SELECT count(*) FROM observations WHERE role = 'shadow' AND text IS NOT NULL"
    deadline = time.monotonic() + timeout_s
    while asyncio.run(_count(url, sql)) < wanted:
        assert time.monotonic() < deadline, "pairs were not recorded in time"
        time.sleep(0.2)


def _quality(env: dict[str, str]) -> dict[str, Any] | None:
    done = _cli(env, "report", "--format", "json")
    assert done.returncode == 0, done.stderr
    quality: dict[str, Any] | None = json.loads(done.stdout)["quality"]
    return quality


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Proxy, dict[str, str]]]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'understudy.db'}"
    asyncio.run(migrations.upgrade(url))
    with (
        FakeProcess(persona="openai", reply_template=PRIMARY_REPLY) as primary,
        FakeProcess(persona="candidate", reply_template=HOSTILE_REPLY) as candidate,
    ):
        proxy = start_proxy(
            tmp_path,
            url,
            (primary.base_url, candidate.base_url),
            env={"UNDERSTUDY_ADMIN_TOKENS": json.dumps({"ops": ADMIN_TOKEN})},
        )
        try:
            client = OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-browser-test-client")
            for n in range(PAIRS):
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"What is the capital of France? ({n})"}],
                )
            _wait_for_pairs(url, PAIRS)
            env = {
                "UNDERSTUDY_DATABASE_URL": url,
                "UNDERSTUDY_PORT": proxy.url.rsplit(":", 1)[1],
                "UNDERSTUDY_CANDIDATES": json.dumps(
                    [{"name": "local", "base_url": candidate.base_url}]
                ),
                "UNDERSTUDY_PRIMARY__BASE_URL": primary.base_url,
            }
            yield proxy, env
        finally:
            assert proxy.terminate() == 0
    assert ADMIN_TOKEN not in proxy.log.read_text()
    assert not proxy.non_json_lines()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert (ARTIFACTS / f"{name}.png").stat().st_size > 1000


def _assert_blind(page: Any) -> None:
    html = page.content()
    assert not ARM_WORDS.search(page.url)
    found = ARM_WORDS.search(re.sub(r'name="csrf" value="[^"]*"', "", html))
    assert found is None, f"the review page shows {found.group(0)!r}"
    answer = page.request.get(page.url.replace("/ui/review", "/ui/api/review/current"))
    assert answer.status == 200
    assert not ARM_WORDS.search(answer.text())


def _assert_nothing_ran(page: Any, dialogs: list[str]) -> None:
    assert page.evaluate("() => window.__pwned === undefined")
    assert dialogs == []
    assert page.locator(".md script, .md img, .md [onerror]").count() == 0
    assert page.locator('a[href^="javascript:"]').count() == 0
    shown = " ".join(page.locator(".md").all_inner_texts())
    assert "<script>window.__pwned = 1</script>" in shown  # shown as text, not run


@pytest.mark.slow
def test_a_reviewer_reviews_ten_pairs_blind_by_keyboard(
    served: tuple[Proxy, dict[str, str]],
) -> None:
    proxy, env = served
    assert _quality(env) is None  # no judge, no reviews yet
    added = _cli(env, "reviewers", "add", "alice")
    assert added.returncode == 0, added.stderr
    invite = added.stdout.strip().splitlines()[-1]
    assert invite.startswith(f"{proxy.url}/ui/invite/")

    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            _review_as_alice(browser, invite, proxy)
            _admin_and_strangers(browser, proxy)
        finally:
            browser.close()

    orders = asyncio.run(
        _count(
            env["UNDERSTUDY_DATABASE_URL"],
            "SELECT count(DISTINCT shown_order) FROM reviews WHERE outcome IS NOT NULL",
        )
    )
    assert orders == 2  # both A/B orders were drawn over the pairs
    decided = asyncio.run(
        _count(
            env["UNDERSTUDY_DATABASE_URL"],
            "SELECT count(*) FROM reviews WHERE outcome IN "
            "('candidate', 'primary', 'tie', 'both_bad')",
        )
    )
    assert decided == 10
    quality = _quality(env)
    assert quality is not None
    tally = quality["tally"]
    assert tally["wins"] + tally["losses"] + tally["ties"] == 10


KEYS = ["1", "2", "1", "3", "2", "4", "1", "2", "2", "1"]


def _review_as_alice(browser: Any, invite: str, proxy: Proxy) -> None:
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto(invite)
    _shot(page, "invite")
    page.fill('input[name="password"]', PASSWORD)
    page.fill('input[name="confirm"]', PASSWORD)
    with page.expect_navigation():
        page.click("#set-password")
    assert page.url == f"{proxy.url}/ui/review", page.content()
    _shot(page, "review")

    # One key, then undo: the same pair comes back and nothing is counted.
    first = page.locator('input[name="item"]').get_attribute("value")
    with page.expect_navigation():
        page.keyboard.press("1")
    assert page.locator("#progress").inner_text() == f"1 reviewed · {PAIRS - 2} waiting"
    with page.expect_navigation():
        page.keyboard.press("u")
    assert page.locator("#progress").inner_text() == f"0 reviewed · {PAIRS - 2} waiting"
    assert page.locator('input[name="item"]').get_attribute("value") == first

    for done, key in enumerate(KEYS):
        _assert_blind(page)
        _assert_nothing_ran(page, dialogs)
        with page.expect_navigation():
            page.keyboard.press(key)
        assert page.locator("#progress").inner_text().startswith(f"{done + 1} reviewed · ")
    with page.expect_navigation():
        page.keyboard.press("s")  # a skip is not a review
    assert page.locator("#progress").inner_text() == "10 reviewed · 0 waiting"

    # Forged posts from this signed-in browser: no token, or another site's Origin.
    undo = f"{proxy.url}/ui/review/undo"
    assert page.request.post(undo, headers={"Origin": proxy.url}).status == 403
    token = page.locator('input[name="csrf"]').first.get_attribute("value")
    forged = page.request.post(
        undo, form={"csrf": token or ""}, headers={"Origin": "https://evil.example"}
    )
    assert forged.status == 403
    assert page.locator("#progress").inner_text() == "10 reviewed · 0 waiting"

    # Every script and style the pages use loaded and passed the CSP: nothing was blocked.
    assert not [m for m in console if "Content Security Policy" in m or "Refused" in m]
    assert not [url for url in missing if "/ui/" in url]  # (Chromium asks for /favicon.ico)
    response = page.goto(f"{proxy.url}/ui/reviewers")
    assert response is not None and response.status == 403
    _shot(page, "reviewer-refused-admin-page")
    context.close()


def _admin_and_strangers(browser: Any, proxy: Proxy) -> None:
    stranger = browser.new_context()
    page = stranger.new_page()
    for path in ("/ui/", "/ui/review", "/ui/reviewers"):
        page.goto(f"{proxy.url}{path}")
        assert page.url.startswith(f"{proxy.url}/ui/signin?next=")
    api = page.request.get(f"{proxy.url}/ui/api/review/current")
    assert api.status == 401
    _shot(page, "signin")
    page.fill('input[name="token"]', ADMIN_TOKEN)
    with page.expect_navigation():
        page.click("#admin-signin")
    page.wait_for_url(f"{proxy.url}/ui/reviewers")
    row = page.locator("#reviewers tbody tr").first
    assert row.locator("td").nth(0).inner_text() == "alice"
    assert row.locator("td").nth(2).inner_text() == "10"
    assert ADMIN_TOKEN not in page.content()
    _shot(page, "reviewers")
    stranger.close()
