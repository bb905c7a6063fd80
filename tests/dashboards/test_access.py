"""Who may open what: sign-in, roles, sessions, CSRF and Origin, cookies, headers, rate limits."""

from __future__ import annotations

import re

import pytest

from dashboards.security import CONTENT_SECURITY_POLICY
from tests.dashboards.conftest import ADMIN_TOKEN, CSRF, PASSWORD, UiRig, pair, store_pairs

PAGES = ["/ui/", "/ui/review", "/ui/reviewers"]
JSON_ENDPOINTS = ["/ui/api/review/current"]
POSTS = ["/ui/review/decide", "/ui/review/undo", "/ui/signout"]


async def test_without_a_session_pages_redirect_json_says_401_and_posts_are_refused(
    make_ui_rig,
) -> None:
    rig: UiRig = await make_ui_rig()
    client = rig.client()
    for path in PAGES:
        async with client.get(rig.url + path, allow_redirects=False) as response:
            assert response.status == 303, path
            assert response.headers["Location"].startswith("/ui/signin?next=")
    for path in JSON_ENDPOINTS:
        async with client.get(rig.url + path) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "not_signed_in"
    for path in POSTS:
        response = await rig.post(client, path, {"csrf": "x"})
        assert response.status == 401, path


async def test_reviewers_get_403_on_admin_pages_and_admins_see_them(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig()
    reviewer = await rig.reviewer("alice")
    async with reviewer.get(rig.url + "/ui/reviewers") as response:
        assert response.status == 403
        assert "may not open this page" in await response.text()
    admin = await rig.admin()
    async with admin.get(rig.url + "/ui/reviewers") as response:
        assert response.status == 200
        page = await response.text()
    assert re.search(r"<td>alice</td>\s*<td>active</td>", page)
    async with admin.get(rig.url + "/ui/api/review/current") as response:
        assert response.status == 403  # reviewing is for reviewers


async def test_csrf_token_and_origin_are_required_on_every_post(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig()
    await store_pairs(rig.db, [pair(1), pair(2)])
    client = await rig.reviewer("alice")
    csrf = await rig.form_token(client, "/ui/review")
    assert (await rig.post(client, "/ui/review/undo", {})).status == 403
    assert (await rig.post(client, "/ui/review/undo", {"csrf": "forged"})).status == 403
    evil = await rig.post(client, "/ui/review/undo", {"csrf": csrf}, origin="https://evil.example")
    assert evil.status == 403
    assert (await rig.post(client, "/ui/review/undo", {"csrf": csrf}, origin=None)).status == 403
    assert (await rig.post(client, "/ui/review/undo", {"csrf": csrf})).status == 303
    # Before sign-in too: the sign-in form's token comes from the visitor's own cookie.
    stranger = rig.client()
    signin = {"name": "alice", "password": PASSWORD}
    assert (await rig.post(stranger, "/ui/signin/reviewer", signin)).status == 403
    token = await rig.form_token(stranger, "/ui/signin")
    assert (await rig.post(stranger, "/ui/signin/reviewer", signin | {"csrf": token})).status == 303


async def test_session_cookie_is_httponly_strict_and_secure_when_configured(make_ui_rig) -> None:
    for secure in (False, True):
        rig: UiRig = await make_ui_rig(ui={"secure_cookies": secure})
        client = rig.client()
        async with client.get(rig.url + "/ui/signin") as page:
            csrf = CSRF.search(await page.text())
            pre_session = page.headers["Set-Cookie"]
        assert csrf is not None
        # A Secure cookie never comes back over plain HTTP, so it is sent here by hand.
        response = await client.post(
            rig.url + "/ui/signin/admin",
            data={"csrf": csrf.group(1), "token": ADMIN_TOKEN},
            headers={"Origin": rig.url, "Cookie": f"understudy_csrf={csrf.group(1)}"},
            allow_redirects=False,
        )
        assert response.status == 303
        session = next(
            v for v in response.headers.getall("Set-Cookie") if "understudy_session=" in v
        )
        for cookie in (pre_session, session):
            assert "HttpOnly" in cookie
            assert "SameSite=Strict" in cookie
            assert "Path=/ui" in cookie
            assert ("Secure" in cookie) is secure


async def test_every_page_has_the_csp_and_no_inline_script(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig()
    await store_pairs(rig.db, [pair(1)])
    reviewer, admin = await rig.reviewer("alice"), await rig.admin()
    seen = 0
    for client, path in [
        (rig.client(), "/ui/signin"),
        (reviewer, "/ui/review"),
        (admin, "/ui/reviewers"),
        (reviewer, "/ui/reviewers"),
        (rig.client(), "/ui/invite/not-a-real-invite"),
    ]:
        async with client.get(rig.url + path) as response:
            assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert response.headers["X-Frame-Options"] == "DENY"
            page = await response.text()
        assert "script-src 'self'" in CONTENT_SECURITY_POLICY
        assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
        # Every script element loads a file of ours; none has a body or an on* handler.
        for tag in re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S):
            assert tag.strip() == ""
        assert not re.search(r"\son[a-z]+=", page)
        assert "http://" not in page and "https://" not in page  # nothing from elsewhere
        seen += 1
    assert seen == 5


async def test_sign_in_attempts_are_rate_limited_with_retry_after(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig(ui={"signin_attempts_per_minute": 5})
    client = rig.client()
    csrf = await rig.form_token(client, "/ui/signin")
    statuses = []
    for _ in range(7):
        response = await rig.post(
            client, "/ui/signin/admin", {"csrf": csrf, "token": "wrong-token-123456789"}
        )
        statuses.append(response.status)
        if response.status == 429:
            assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert statuses == [401] * 5 + [429] * 2
    # The right token is refused too while the address is over its limit.
    right = await rig.post(client, "/ui/signin/admin", {"csrf": csrf, "token": ADMIN_TOKEN})
    assert right.status == 429


async def test_an_invite_works_once_and_wants_a_real_password(make_ui_rig) -> None:
    rig: UiRig = await make_ui_rig()
    link = await rig.invite("bob")
    client = rig.client()
    csrf = await rig.form_token(client, link)
    short = await rig.post(client, link, {"csrf": csrf, "password": "short", "confirm": "short"})
    assert short.status == 400
    ok = await rig.post(client, link, {"csrf": csrf, "password": PASSWORD, "confirm": PASSWORD})
    assert ok.status == 303 and ok.headers["Location"] == "/ui/review"
    again = await rig.post(
        rig.client(), link, {"csrf": csrf, "password": PASSWORD, "confirm": PASSWORD}
    )
    assert again.status in (403, 404)  # another visitor's token, or a used invite
    async with rig.client().get(rig.url + link) as response:
        assert response.status == 404


async def test_signing_out_and_removal_end_the_session(make_ui_rig) -> None:
    from datetime import UTC, datetime

    from storage.reviewers import remove_reviewer

    rig: UiRig = await make_ui_rig()
    alice = await rig.reviewer("alice")
    csrf = await rig.form_token(alice, "/ui/review")
    assert (await rig.post(alice, "/ui/signout", {"csrf": csrf})).status == 303
    async with alice.get(rig.url + "/ui/review", allow_redirects=False) as response:
        assert response.status == 303
    bob = await rig.reviewer("bob")
    assert await remove_reviewer(rig.db, "bob", datetime.now(UTC))
    async with bob.get(rig.url + "/ui/api/review/current") as response:
        assert response.status == 401


@pytest.mark.parametrize("path", ["/ui/review", "/ui/reviewers", "/ui/signin"])
async def test_no_secret_reaches_a_page(make_ui_rig, path: str) -> None:
    rig: UiRig = await make_ui_rig(
        primary={"base_url": "http://127.0.0.1:9/v1", "api_key": "sk-primary-secret-0123456789"}
    )
    await store_pairs(rig.db, [pair(1)])
    client = await rig.admin() if path == "/ui/reviewers" else await rig.reviewer("carol")
    async with client.get(rig.url + path) as response:
        page = await response.text()
    assert ADMIN_TOKEN not in page
    assert "sk-primary-secret" not in page
    assert "Authorization" not in page and "Bearer" not in page


async def test_with_an_admin_port_the_ui_is_served_there_only(make_ui_rig) -> None:
    from understudy.admin_wiring import ADMIN_APP
    from understudy.server import start_site

    rig: UiRig = await make_ui_rig(admin_port=0)
    admin_site = await start_site(rig.site.runner.app[ADMIN_APP], "127.0.0.1", 0)
    try:
        client = rig.client()
        async with client.get(rig.url + "/ui/signin") as response:
            assert response.status == 404  # not on the port apps talk to
        async with client.get(admin_site.url + "/ui/signin") as response:
            assert response.status == 200
            assert "Admin token" in await response.text()
    finally:
        await admin_site.stop()


async def test_a_database_without_the_schema_is_a_503_not_a_500(make_ui_rig, tmp_path) -> None:
    empty = f"sqlite+aiosqlite:///{tmp_path / 'never-migrated.db'}"
    rig: UiRig = await make_ui_rig(storage={"enabled": False}, database_url=empty)
    client = rig.client()
    csrf = await rig.form_token(client, "/ui/signin")  # the page itself needs no database
    response = await rig.post(client, "/ui/signin/admin", {"csrf": csrf, "token": ADMIN_TOKEN})
    assert response.status == 503
    assert response.headers["Retry-After"] == "5"
    async with client.get(rig.url + "/ui/review", cookies={"understudy_session": "x"}) as page:
        assert page.status == 503


async def test_an_outage_on_an_invite_logs_the_route_not_the_token(
    make_ui_rig, tmp_path, capsys
) -> None:
    from dashboards.accounts import new_token

    link = f"/ui/invite/{new_token()}"
    empty = f"sqlite+aiosqlite:///{tmp_path / 'never-migrated.db'}"
    broken: UiRig = await make_ui_rig(storage={"enabled": False}, database_url=empty)
    async with broken.client().get(broken.url + link) as response:
        assert response.status == 503
    logged = capsys.readouterr()
    assert "ui_database_unavailable" in logged.out + logged.err
    assert link.rsplit("/", 1)[1] not in logged.out + logged.err
