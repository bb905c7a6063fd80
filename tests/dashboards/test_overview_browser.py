"""The overview in Chromium (Debian's, driven by Playwright): every plot draws, nothing is
refused by the Content-Security-Policy, and the verdict arrives by htmx."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from tests.dashboards.conftest import ADMIN_TOKEN, RigFactory
from tests.dashboards.test_overview import seeded_rig
from tests.faults.serve import REPO

playwright_async = pytest.importorskip("playwright.async_api")

ARTIFACTS = REPO / "test-artifacts" / "ui"
PLOTS = ("latency", "ttft", "quantiles", "rates", "rollout", "outcomes")
# Collected before any page script runs; CSP refusals also reach the console.
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective));
"""


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("Debian's chromium is not installed (scripts/test.sh installs it)")
    return found


@pytest.mark.slow
async def test_the_overview_draws_every_plot_in_chromium(make_ui_rig: RigFactory) -> None:
    rig, _ = await seeded_rig(make_ui_rig)
    async with playwright_async.async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=_chromium(),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.add_init_script(WATCH_CSP)
            problems: list[str] = []

            def console(message: Any) -> None:
                # A refused load is checked by its response below (Chromium asks for
                # /favicon.ico, which the UI does not serve).
                if message.type == "error" and "Failed to load resource" not in message.text:
                    problems.append(message.text)

            def response(answer: Any) -> None:
                if answer.status >= 400 and "/ui/" in answer.url:
                    problems.append(f"{answer.status} {answer.url}")

            page.on("console", console)
            page.on("response", response)
            page.on("pageerror", lambda error: problems.append(str(error)))
            await page.goto(f"{rig.url}/ui/signin")
            await page.fill('input[name="token"]', ADMIN_TOKEN)
            async with page.expect_navigation():
                await page.click("#admin-signin")
            assert page.url == f"{rig.url}/ui/"
            await page.wait_for_selector("#decision")  # the verdict, swapped in by htmx
            for name in PLOTS:
                canvas = page.locator(f"#plot-{name} canvas")
                assert await canvas.count() == 1, name
                box = await canvas.bounding_box()
                assert box is not None and box["width"] > 100 and box["height"] > 100, name
            # The rollout plot marks each transition: one legend value per hovered point.
            assert await page.locator("#plot-rollout .u-legend").count() == 1
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "overview.png"
            await page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            assert await page.evaluate("() => window.__csp") == []
            assert problems == []
            # Another range is a plain link; the hour has the same plots.
            async with page.expect_navigation():
                await page.click('#ranges a[href="/ui/?range=1h"]')
            assert await page.locator("#plot-latency canvas").count() == 1
            assert await page.locator('#ranges a.on[href="/ui/?range=1h"]').count() == 1
            await page.screenshot(path=str(ARTIFACTS / "overview-1h.png"), full_page=True)
            assert await page.evaluate("() => window.__csp") == []
            assert problems == []
        finally:
            await browser.close()
