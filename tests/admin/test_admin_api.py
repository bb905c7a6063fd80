"""Every admin route: tokens, the API switched off, stale versions, bad input and the audit."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from storage.database import Database
from storage.flags import audit_entries
from tests.admin.conftest import ALICE, BOB, AdminRig, RigFactory

REASON = {"reason": "testing"}
# Every route with a body it accepts.
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/rollout", None),
    ("GET", "/rollout/history", None),
    ("POST", "/rollout/percent", {"percent": 5, **REASON}),
    ("POST", "/rollout/pause", REASON),
    ("POST", "/rollout/resume", REASON),
    ("POST", "/rollout/kill", REASON),
    ("POST", "/rollout/unkill", REASON),
    ("POST", "/rollout/promote", REASON),
    ("POST", "/rollout/rollback", REASON),
]
CHANGES = [r for r in ROUTES if r[0] == "POST"]


async def audit(rig: AdminRig) -> list[tuple[str, str, str | None]]:
    async with Database(rig.settings.database_url) as db:
        entries = await audit_entries(db)
    return [(e.actor, e.action, e.reason) for e in reversed(entries)]


async def test_without_a_valid_token_every_route_is_401(make_admin_rig: RigFactory) -> None:
    rig = await make_admin_rig()
    for method, path, body in ROUTES:
        for token in (None, "", "not-a-token-at-all-000", ALICE[:-1], ALICE + "x"):
            status, answer = await rig.call(method, path, token=token, json=body)
            assert status == 401, (method, path, token)
            assert answer["error"]["code"] == "invalid_admin_token"
            assert ALICE not in str(answer)
        async with rig.session.request(
            method, rig.admin_url + path, headers={"Authorization": f"Basic {ALICE}"}, json=body
        ) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await audit(rig) == [("settings", "seed", "initial settings")]


async def test_without_tokens_configured_the_api_is_off(make_admin_rig: RigFactory) -> None:
    rig = await make_admin_rig(admin_tokens={})
    for method, path, body in ROUTES:
        for token in (None, ALICE):
            status, answer = await rig.call(method, path, token=token, json=body)
            assert status == 403, (method, path)
            assert answer["error"]["code"] == "admin_api_off"
            assert "UNDERSTUDY_ADMIN_TOKEN" in answer["error"]["message"]


async def test_each_change_is_audited_under_its_token_holder(make_admin_rig: RigFactory) -> None:
    rig = await make_admin_rig(admin_token="the-single-admin-token-42", admin_tokens={"bob": BOB})
    steps = [
        ("/rollout/percent", {"percent": 25, "reason": "first users"}, "admin"),
        ("/rollout/pause", {"reason": "weekend"}, "bob"),
        ("/rollout/resume", {"reason": "monday"}, "admin"),
        ("/rollout/kill", {"reason": "pager", "route": "chat"}, "bob"),
        ("/rollout/unkill", {"reason": "fixed", "route": "chat"}, "bob"),
    ]
    versions = []
    for path, body, who in steps:
        token = BOB if who == "bob" else "the-single-admin-token-42"
        status, answer = await rig.call("POST", path, token=token, json=body)
        assert status == 200, answer
        assert answer["stored"] is True
        versions.append(answer["version"])
    assert versions == sorted(versions) and len(set(versions)) == len(steps)
    assert await audit(rig) == [
        ("settings", "seed", "initial settings"),
        ("admin", "set", "first users"),
        ("bob", "pause", "weekend"),
        ("admin", "resume", "monday"),
        ("bob", "kill", "pager"),
        ("bob", "unkill", "fixed"),
    ]
    status, history = await rig.call("GET", "/rollout/history", token=BOB, params={"limit": "2"})
    assert status == 200
    assert [(e["actor"], e["action"]) for e in history["data"]] == [
        ("bob", "unkill"),
        ("bob", "kill"),
    ]
    assert history["data"][1]["route"] == "chat.completions"
    await asyncio.sleep(0.5)  # the replica reads the store back
    status, state = await rig.call("GET", "/rollout", token=BOB)
    assert status == 200 and state["version"] == versions[-1]
    assert state["routes"]["chat.completions"]["served_percent"] == 25
    assert state["routes"]["embeddings"]["served_percent"] == 0  # embeddings stay in shadow
    assert state["killed_here"] == []
    # 25 % set by hand is the plan's 25% stage: it began with that change, not with the pause.
    assert state["stage"] == "25%" and 0 <= state["time_in_stage_s"] < 30
    gate = state["next_gate"]
    assert gate["to"] == "50%" and gate["promotion"] == "auto"
    assert gate["min_duration_s"] == 3600
    assert any(w.endswith("s more in the stage") for w in gate["waits_for"])
    assert any(w.startswith("a verdict that allows promotion") for w in gate["waits_for"])


@pytest.mark.parametrize(("method", "path", "body"), CHANGES)
async def test_a_stale_if_version_is_409_and_changes_nothing(
    make_admin_rig: RigFactory, method: str, path: str, body: dict[str, Any]
) -> None:
    rig = await make_admin_rig()
    status, answer = await rig.call("POST", "/rollout/percent", json={"percent": 1, **REASON})
    assert status == 200
    current = answer["version"]
    before = await audit(rig)
    status, answer = await rig.call(method, path, json={**body, "if_version": current - 1})
    assert status == 409, answer
    assert answer["error"]["param"] == "if_version"
    assert f"version {current}" in answer["error"]["message"]
    assert await audit(rig) == before
    assert await rig.served_by() == "openai" or path != "/rollout/kill"
    status, answer = await rig.call(method, path, json={**body, "if_version": current})
    assert status == 200, answer
    assert answer["version"] == current + 1


BAD_INPUT: list[tuple[str, dict[str, Any] | str, str | None]] = [
    ("/rollout/percent", {"percent": 150, **REASON}, "percent"),
    ("/rollout/percent", {"percent": -1, **REASON}, "percent"),
    ("/rollout/percent", {"percent": "50", **REASON}, "percent"),
    ("/rollout/percent", {"percent": True, **REASON}, "percent"),
    ("/rollout/percent", {"reason": "no percent"}, "percent"),
    ("/rollout/percent", {"percent": 50, "route": "embeddings", **REASON}, "mode"),
    ("/rollout/percent", {"percent": 50, "candidate": "nobody", **REASON}, "candidate"),
    ("/rollout/pause", {}, "reason"),
    ("/rollout/pause", {"reason": "   "}, "reason"),
    ("/rollout/pause", {"reason": 7}, "reason"),
    ("/rollout/pause", {"reason": "x" * 1001}, "reason"),
    ("/rollout/resume", {"if_version": "3", **REASON}, "if_version"),
    ("/rollout/resume", {"if_version": -1, **REASON}, "if_version"),
    ("/rollout/resume", {"if_version": 1.5, **REASON}, "if_version"),
    ("/rollout/kill", {"route": "images", **REASON}, "route"),
    ("/rollout/unkill", {"percent": 5, **REASON}, "percent"),
    ("/rollout/kill", "not json", None),
    ("/rollout/kill", "[1, 2]", None),
]


async def test_bad_input_is_400_naming_the_field(make_admin_rig: RigFactory) -> None:
    rig = await make_admin_rig()
    for path, body, field in BAD_INPUT:
        kw: dict[str, Any] = {"data": body} if isinstance(body, str) else {"json": body}
        status, answer = await rig.call("POST", path, **kw)
        assert status == 400, (path, body, answer)
        error = answer["error"]
        assert error["param"] == field, (path, body, error)
        assert error["type"] == "invalid_request_error"
        if field is not None:
            assert field in error["message"] or field == "mode", error
    for limit in ("0", "1001", "ten"):
        status, answer = await rig.call("GET", "/rollout/history", params={"limit": limit})
        assert status == 400 and answer["error"]["param"] == "limit"
    assert await audit(rig) == [("settings", "seed", "initial settings")]
    assert await rig.served_by() == "openai"  # no refused kill was held either


async def test_promote_and_rollback_move_along_the_plan_like_the_cli(
    make_admin_rig: RigFactory,
) -> None:
    rig = await make_admin_rig()
    status, answer = await rig.call("POST", "/rollout/promote", json={"reason": "reviewed"})
    assert status == 200, answer
    assert answer["after"]["stage"] == "5%" and answer["after"]["percent"] == 5
    status, answer = await rig.call("POST", "/rollout/rollback", json={"reason": "p95 up"})
    assert status == 200, answer
    after = answer["after"]
    assert (after["stage"], after["mode"], after["percent"], after["paused"]) == (
        "shadow",
        "shadow",
        0,
        True,
    )
    # Every user on the candidate already: no stage of the plan sends it more.
    status, answer = await rig.call("POST", "/rollout/percent", json={"percent": 100, **REASON})
    assert status == 200
    before = await audit(rig)
    status, answer = await rig.call("POST", "/rollout/promote", json=REASON)
    assert status == 400 and answer["error"]["param"] == "stage", answer
    assert await audit(rig) == before
    assert "no stage to promote to" in answer["error"]["message"]
    actions = [(actor, action) for actor, action, _ in await audit(rig)]
    assert actions[1:3] == [("alice", "promote"), ("alice", "rollback")]


async def test_the_admin_kill_is_at_once_and_unkill_restores(make_admin_rig: RigFactory) -> None:
    rig = await make_admin_rig(rollout={"mode": "cutover", "poll_interval_s": 1.0})
    assert await rig.served_by() == "local"
    start = time.monotonic()
    status, answer = await rig.call("POST", "/rollout/kill", json={"reason": "now"})
    assert status == 200 and answer["stored"] is True
    assert await rig.served_by() == "openai"  # before any poll of the store
    kill_s = time.monotonic() - start
    assert kill_s < 0.5, kill_s
    killed = rig.registry.get_sample_value("understudy_rollout_killed", {"route": "embeddings"})
    assert killed == 1
    status, _ = await rig.call("POST", "/rollout/unkill", json={"reason": "ok"})
    assert status == 200
    unkilled = time.monotonic()
    while await rig.served_by() != "local":  # followed from the store, within its poll
        assert time.monotonic() - unkilled < 1.5, "the unkill was not followed"
        await asyncio.sleep(0.02)


async def test_an_admin_port_of_its_own_keeps_the_api_off_the_app_port(
    make_admin_rig: RigFactory,
) -> None:
    rig = await make_admin_rig(admin_port=0)
    assert rig.admin_site is not None and rig.admin_site.url != rig.site.url
    async with rig.session.get(
        f"{rig.site.url}/admin/api/v1/rollout", headers={"Authorization": f"Bearer {ALICE}"}
    ) as response:
        assert response.status == 404
        assert "error" in await response.json()
    status, state = await rig.call("GET", "/rollout")
    assert status == 200 and state["object"] == "rollout"
    status, _ = await rig.call("POST", "/rollout/pause", json=REASON)
    assert status == 200
    assert (await audit(rig))[-1] == ("alice", "pause", "testing")


async def test_without_a_flag_store_changes_are_refused_and_reading_works(
    make_admin_rig: RigFactory,
) -> None:
    rig = await make_admin_rig(storage={"enabled": False})
    status, state = await rig.call("GET", "/rollout")
    assert status == 200 and state["routes"]["chat.completions"]["mode"] == "shadow"
    for method, path, body in [*CHANGES, ("GET", "/rollout/history", None)]:
        status, answer = await rig.call(method, path, json=body)
        assert status == 503, (path, answer)
        assert answer["error"]["code"] == "flag_store_unavailable"
        assert "UNDERSTUDY_STORAGE__ENABLED" in answer["error"]["message"]
    assert await rig.served_by() == "openai"  # shadow, as the settings say
