"""The rollout page: each change through it, its confirmation step, and its refusals.

A real server as ``serve`` builds it, on real SQLite: every change made on the page is
read back from the flag store and the audit log, named after the signed-in admin.
"""

from __future__ import annotations

import html
import re
from typing import Any

import aiohttp
import pytest

from rollout.changes import NewValues, RolloutAction
from storage.flags import audit_entries, current_flags
from tests.dashboards.conftest import ADMIN_TOKEN, CSRF, UiRig
from understudy.wiring import rollout_store

ROLLOUT = {"mode": "shadow", "candidate": "local", "poll_interval_s": 0.25}
VERSION = re.compile(r'name="if_version" value="(\d+)"')
ERROR = re.compile(r'<p class="error[^"]*"[^>]*role="alert">(.*?)</p>', re.S)
HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


async def _page(rig: UiRig, client: aiohttp.ClientSession) -> tuple[int, str]:
    async with client.get(rig.url + "/ui/rollout", allow_redirects=False) as response:
        return response.status, await response.text()


async def _form(rig: UiRig, client: aiohttp.ClientSession) -> dict[str, str]:
    """The change form's hidden fields as the page gives them: token and version."""
    status, page = await _page(rig, client)
    assert status == 200, page
    token, version = CSRF.search(page), VERSION.search(page)
    assert token is not None and version is not None
    return {"csrf": token.group(1), "if_version": version.group(1)}


async def _ask(
    rig: UiRig, client: aiohttp.ClientSession, fields: dict[str, str]
) -> tuple[int, str]:
    """The first step: post the form, get the confirmation page (or a refusal)."""
    response = await rig.post(client, "/ui/rollout/confirm", fields)
    return response.status, await response.text()


async def _confirmed(
    rig: UiRig, client: aiohttp.ClientSession, page: str
) -> aiohttp.ClientResponse:
    """The second step: press Confirm on a confirmation page, as a browser would."""
    fields = {name: html.unescape(value) for name, value in HIDDEN.findall(page)}
    return await rig.post(client, "/ui/rollout/change", {**fields, "confirm": "yes"})


async def change(
    rig: UiRig, client: aiohttp.ClientSession, action: str, reason: str, **extra: str
) -> aiohttp.ClientResponse:
    status, page = await _ask(rig, client, {**await _form(rig, client), "action": action,
                                            "reason": reason, **extra})  # fmt: skip
    assert status == 200, page
    assert "Confirm" in page and html.escape(reason) in page
    done = await _confirmed(rig, client, page)
    if done.status == 303:  # the page after a change, as a browser follows it there
        async with client.get(rig.url + done.headers["Location"]) as response:
            assert response.status == 200
    return done


def said(page: str) -> str:
    """The error the page shows, as text."""
    found = ERROR.search(page)
    assert found is not None, page
    return html.unescape(found.group(1))


async def _audit(rig: UiRig) -> list[tuple[str, str, str | None]]:
    return [(e.actor, e.action, e.reason) for e in reversed(await audit_entries(rig.db))]


async def _default_row(rig: UiRig) -> Any:
    return (await current_flags(rig.db))[None]


# The flag store's writes are SQL of their own: both databases take the page's changes.
@pytest.mark.parametrize(
    "ui_backend",
    ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
    indirect=True,
)
async def test_each_change_on_the_page_is_stored_and_audited_as_the_admin(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig(rollout=ROLLOUT)
    admin = await rig.admin()

    done = await change(rig, admin, "set", "p95 looks fine", percent="25")
    assert done.status == 303
    assert done.headers["Location"].startswith("/ui/rollout?done=set&version=")
    row = await _default_row(rig)
    assert (row.mode, row.percent) == ("split", 25.0)
    async with admin.get(rig.url + done.headers["Location"]) as response:
        page = await response.text()
    assert "Done: set percent, the rollout is at version" in page
    assert re.search(r'class="num percent">25 %', page)

    steps = [
        ("promote", "reviewed the 25% stage", lambda r: (r.stage, r.percent) == ("50%", 50.0)),
        ("pause", "holiday freeze", lambda r: r.paused),
        ("resume", "back at work", lambda r: not r.paused),
        ("kill", "pager at 3 am", lambda r: r.killed),
        ("unkill", "fixed the driver", lambda r: not r.killed),
        (
            "rollback",
            "users complain <b>loudly</b>",
            lambda r: (r.stage, r.mode, r.percent, r.paused) == ("shadow", "shadow", 0.0, True),
        ),
    ]
    for action, reason, holds in steps:
        done = await change(rig, admin, action, reason)
        assert done.status == 303, (action, await done.text())
        assert holds(await _default_row(rig)), action

    audit = await _audit(rig)
    assert audit[0] == ("settings", "seed", "initial settings")
    assert audit[1:] == [
        ("ui:ops", "set", "p95 looks fine"),
        *(("ui:ops", action, reason) for action, reason, _ in steps),
    ]
    # The timeline, newest first, with actor, action, what changed and why, escaped.
    status, page = await _page(rig, admin)
    assert status == 200
    timeline = page.split('id="timeline"', 1)[1]
    reasons = re.findall(r'<div class="reason">Reason: (.*?)</div>', timeline)
    assert reasons[0] == "users complain &lt;b&gt;loudly&lt;/b&gt;"
    assert reasons[-1] == "initial settings" and len(reasons) == len(audit)
    assert '<span class="actor">ui:ops</span> <span class="action">rollback</span>' in timeline
    assert "stage 50% -&gt; shadow" in timeline and "paused False -&gt; True" in timeline
    assert ADMIN_TOKEN not in page


async def test_the_page_shows_the_rollout_the_plan_and_the_verdict_behind_a_change(
    make_ui_rig,
) -> None:
    rig: UiRig = await make_ui_rig(rollout=ROLLOUT)
    store = rollout_store(rig.settings, rig.db)
    verdict = {
        "decision": "promote",
        "n": 412,
        "metrics": [
            {"name": "latency_total", "label": "pass", "estimate": 0.71, "lower": 0.66,
             "upper": 0.77, "margin": 1.1, "n": 412},
        ],
    }  # fmt: skip
    await store.change(
        RolloutAction.SET,
        actor="controller",
        reason="promote: every gate passed",
        values=NewValues(percent=5),
        verdict=verdict,
    )
    admin = await rig.admin()
    status, page = await _page(rig, admin)
    assert status == 200
    assert '<a href="/ui/rollout">Rollout</a>' in page  # the admin's nav
    assert re.search(r'<tr class="current" aria-current="step">\s*<td>5% <span', page)
    assert page.count('aria-current="step"') == 1
    for stage in ("shadow", "5%", "25%", "50%", "75%", "95%", "100%"):
        assert f"<td>{stage}" in page
    assert "Verdict: promote" in page
    assert "latency_total: pass, 0.71 (interval 0.66 to 0.77, margin 1.1, 412 pairs)" in page
    waits = page.split('id="waits-for"', 1)[1].split("</ul>", 1)[0]
    assert "a verdict that allows promotion on every metric" in waits

    # The confirmation says where a stage move goes, before anything moves.
    for action, step in (("promote", "5% -&gt; 25%"), ("rollback", "5% -&gt; shadow")):
        fields = {**await _form(rig, admin), "action": action, "reason": "look first"}
        status, confirm = await _ask(rig, admin, fields)
        assert status == 200 and f'id="confirm-step">{step}</dd>' in confirm, confirm
    assert (await _default_row(rig)).stage is None  # set by hand, nothing moved since


async def test_a_change_without_a_reason_or_a_confirmation_is_refused_and_not_made(
    make_ui_rig,
) -> None:
    rig: UiRig = await make_ui_rig(rollout=ROLLOUT)
    admin = await rig.admin()
    before = await _audit(rig)

    for reason in ("", "   "):
        form = {**await _form(rig, admin), "action": "pause", "reason": reason}
        status, page = await _ask(rig, admin, form)
        assert status == 400
        assert said(page) == "reason: give a non-empty string: why, kept in the audit log"
        # Straight to the second step, confirmed, without a reason: refused the same way.
        response = await rig.post(admin, "/ui/rollout/change", {**form, "confirm": "yes"})
        assert response.status == 400
        assert said(await response.text()).startswith("reason: give a non-empty string")

    form = {**await _form(rig, admin), "action": "kill", "reason": "testing"}
    for confirm in ({}, {"confirm": "no"}):
        response = await rig.post(admin, "/ui/rollout/change", {**form, **confirm})
        assert response.status == 400
        page = await response.text()
        assert said(page) == "confirm: this change was not confirmed; press Confirm to make it"
        assert 'id="confirm"' in page
    for bad in ("lots", "", "nan"):
        fields = {**await _form(rig, admin), "action": "set", "reason": "r", "percent": bad}
        status, page = await _ask(rig, admin, fields)
        assert status == 400
        assert said(page) == "percent: give a number between 0 and 100"
    status, page = await _ask(rig, admin, {**await _form(rig, admin), "action": "seed",
                                           "reason": "r"})  # fmt: skip
    assert status == 400 and said(page).startswith("action: must be one of set, promote")
    assert await _audit(rig) == before
    assert not (await _default_row(rig)).killed


async def test_the_rules_refuse_with_the_admin_apis_words_and_status(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig(rollout=ROLLOUT)
    admin = await rig.admin()
    api = rig.client()
    bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def api_says(path: str, body: dict[str, Any]) -> tuple[int, str]:
        async with api.post(f"{rig.url}/admin/api/v1{path}", json=body, headers=bearer) as r:
            return r.status, (await r.json())["error"]["message"]

    # Past the plan's last stage.
    assert (await change(rig, admin, "set", "all in", percent="100")).status == 303
    done = await change(rig, admin, "promote", "further")
    expected = await api_says("/rollout/promote", {"reason": "further"})
    assert expected[0] == 400 and "no stage to promote to" in expected[1]
    assert done.status == 400
    assert said(await done.text()) == expected[1]

    # A percent the rules refuse: the page's confirmation, then the API's refusal.
    done = await change(rig, admin, "set", "too much", percent="150")
    expected = await api_says("/rollout/percent", {"percent": 150, "reason": "too much"})
    assert (done.status, expected[0]) == (400, 400)
    assert expected[1] == "percent: must be between 0 and 100, got 150"
    assert said(await done.text()) == expected[1]

    # A version conflict: someone changed the rollout between the page and the confirmation.
    form = {**await _form(rig, admin), "action": "pause", "reason": "stale"}
    status, confirm_page = await _ask(rig, admin, form)
    assert status == 200
    async with api.post(
        f"{rig.url}/admin/api/v1/rollout/percent",
        json={"percent": 30, "reason": "meanwhile"},
        headers=bearer,
    ) as r:
        assert r.status == 200
        latest = (await r.json())["version"]
    done = await _confirmed(rig, admin, confirm_page)
    assert done.status == 409
    stale = f"the rollout is at version {latest}, not {form['if_version']}: read it again"
    assert said(await done.text()) == stale
    assert not (await _default_row(rig)).paused
    actors = [actor for actor, _, _ in await _audit(rig)]
    assert actors[1:] == ["ui:ops", "ops"]  # the UI's set, then the API's


async def test_forged_and_foreign_posts_and_reviewers_are_refused(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig(rollout=ROLLOUT)
    admin = await rig.admin()
    form = {**await _form(rig, admin), "action": "kill", "reason": "forged", "confirm": "yes"}
    before = await _audit(rig)
    for path in ("/ui/rollout/confirm", "/ui/rollout/change"):
        assert (await rig.post(admin, path, {**form, "csrf": "forged"})).status == 403
        assert (
            await rig.post(admin, path, {k: v for k, v in form.items() if k != "csrf"})
        ).status == 403
        assert (await rig.post(admin, path, form, origin="https://evil.example")).status == 403
        assert (await rig.post(admin, path, form, origin=None)).status == 403

    reviewer = await rig.reviewer("alice")
    async with reviewer.get(rig.url + "/ui/rollout", allow_redirects=False) as response:
        assert response.status == 403
    token = await rig.form_token(reviewer, "/ui/review")
    for path in ("/ui/rollout/confirm", "/ui/rollout/change"):
        assert (await rig.post(reviewer, path, {**form, "csrf": token})).status == 403

    stranger = rig.client()
    status, _ = await _page(rig, stranger)
    assert status == 303
    for path in ("/ui/rollout/confirm", "/ui/rollout/change"):
        assert (await rig.post(stranger, path, form)).status == 401
    assert await _audit(rig) == before
    assert not (await _default_row(rig)).killed
