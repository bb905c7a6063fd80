"""Admins: the rollout now, its stage plan and audit log, and changing it with a reason.

A change takes two steps: the form on ``/ui/rollout`` sends it to a confirmation page,
and only the confirmed post makes it. The change itself is the admin API's
(``RolloutApi.apply``): the same rules, the same audit entry, with ``ui:<admin>`` as
the actor, and a refusal says what the API would say, with the API's status.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from admin.app import REFUSED, refusal
from admin.payloads import BadInput, ChangeRequest, change_request, percent
from admin.rollout_api import RolloutApi
from dashboards.access import admins, see_other, session_of
from dashboards.config import UI
from dashboards.render import render
from rollout.changes import NewValues, RolloutAction
from rollout.plan import Stage
from rollout.views import ROUTES, differences, duration_text, verdict_lines
from storage.flags import AuditEntry

routes = web.RouteTableDef()

ACTOR_PREFIX = "ui:"  # the audit log's actor: "ui:" and the signed-in admin's name
TIMELINE_ENTRIES = 50
CATCH_UP_S = 2.0  # how long the page after a change waits for this replica to follow it
CATCH_UP_POLL_S = 0.05
CONFIRMED = "yes"


@dataclass(frozen=True, slots=True)
class Offer:
    """A change the page offers: its button and what the confirmation says it does."""

    button: str
    does: str


OFFERS: dict[RolloutAction, Offer] = {
    RolloutAction.SET: Offer("Set percent", "set the share of users the candidate serves"),
    RolloutAction.PROMOTE: Offer("Promote", "move to the plan's next stage"),
    RolloutAction.ROLLBACK: Offer(
        "Roll back", "send everyone to the primary: back to the plan's shadow stage, paused"
    ),
    RolloutAction.PAUSE: Offer("Pause", "stop the controller from moving the rollout"),
    RolloutAction.RESUME: Offer("Resume", "let the controller move the rollout again"),
    RolloutAction.KILL: Offer(
        "Kill", "send every request to the primary only, at once, until the kill is lifted"
    ),
    RolloutAction.UNKILL: Offer("Lift the kill", "end the kill: the rollout serves as set again"),
}


@dataclass(frozen=True, slots=True)
class Asked:
    """A change as the form asked for it, checked by the admin API's own rules."""

    action: RolloutAction
    change: ChangeRequest
    values: NewValues | None
    form: dict[str, str]  # the fields to carry to the next step


def _api(request: web.Request) -> RolloutApi:
    api = request.app[UI].rollout
    if api is None:  # only a UI built without the admin API; serve never builds one
        raise web.HTTPServiceUnavailable(text="the rollout controls are not available here")
    return api


def _actor(request: web.Request) -> str:
    return ACTOR_PREFIX + session_of(request).name


def _field(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _number(text: str) -> Any:
    """A form's text as a number when it is one; otherwise as given, for the API's check
    to refuse with its own words."""
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def _asked(form: Mapping[str, Any]) -> Asked:
    """The change a form asks for; raises ``BadInput`` naming the field at fault."""
    name = _field(form, "action")
    action = next((a for a in OFFERS if a.value == name), None)
    if action is None:
        raise BadInput("action", f"must be one of {', '.join(a.value for a in OFFERS)}")
    body: dict[str, Any] = {"reason": _field(form, "reason")}
    if version := _field(form, "if_version"):
        body["if_version"] = int(version) if version.isdigit() else version
    if route := _field(form, "route"):
        body["route"] = route
    values = None
    if action is RolloutAction.SET:
        body["percent"] = _number(_field(form, "percent"))
        values = NewValues(percent=percent(body))
    change = change_request(body, frozenset({"percent"}))
    carried = {k: _field(form, k) for k in ("action", "reason", "if_version", "route", "percent")}
    return Asked(action, change, values, carried)


def _elapsed(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _stage_rows(api: RolloutApi, current: str | None) -> list[dict[str, Any]]:
    def row(s: Stage) -> dict[str, Any]:
        return {
            "name": s.name,
            "mode": s.mode.value,
            "percent": f"{s.percent:g}",
            "min_units": f"{s.min_units:,}" if s.min_units else "the verdict's minimum",
            "min_time": duration_text(s.min_duration_s),
            "max_time": duration_text(s.max_duration_s),
            "promotion": s.promotion.value,
            "gates": ", ".join(s.gates) or "every metric",
            "current": s.name == current,
        }

    return [row(s) for s in api.plan.stages]


def _timeline(entries: list[AuditEntry]) -> list[dict[str, Any]]:
    return [
        {
            "at": e.at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "actor": e.actor,
            "action": e.action,
            "scope": e.route or "every route",
            "version": e.flag_version,
            "changed": differences(e.before, e.after) or "-",
            "reason": e.reason or "-",
            "decision": (e.verdict or {}).get("decision"),
            "verdict": verdict_lines(e.verdict),
        }
        for e in entries
    ]


async def _state_at_least(api: RolloutApi, version: int | None) -> dict[str, Any]:
    """The rollout as this replica serves it, once it has followed ``version`` (or given up)."""
    state = await api.state()
    deadline = time.monotonic() + CATCH_UP_S
    while version is not None and state["version"] < version and time.monotonic() < deadline:
        await asyncio.sleep(CATCH_UP_POLL_S)
        state = await api.state()
    return state


def _done(query: Mapping[str, str]) -> str | None:
    """The line that says what the last change did, from the redirect after it."""
    action = next((a for a in OFFERS if a.value == query.get("done")), None)
    if action is None:
        return None
    version = query.get("version", "")
    if version.isdigit():
        return f"Done: {OFFERS[action].button.lower()}, the rollout is at version {version}."
    return (
        f"Done: {OFFERS[action].button.lower()} is in force on this server now, "
        "and stored when the database answers."
    )


async def _page(
    request: web.Request,
    *,
    error: str | None = None,
    status: int = 200,
    form: Mapping[str, str] | None = None,
) -> web.Response:
    api = _api(request)
    shown = request.query.get("version", "")
    state = await _state_at_least(api, int(shown) if shown.isdigit() else None)
    history_error = None
    try:
        entries = await api.audit_log(TIMELINE_ENTRIES)
    except REFUSED as exc:
        entries, history_error = [], refusal(exc).message
    gate = state["next_gate"]
    context = {
        "state": state,
        "routes": state["routes"],
        "time_in_stage": _elapsed(state["time_in_stage_s"]),
        "waits_for": gate["waits_for"] if gate else [],
        "next_stage": gate["to"] if gate else None,
        "stages": _stage_rows(api, state["stage"]),
        "timeline": _timeline(entries),
        "history_error": history_error,
        "offers": {a.value: o for a, o in OFFERS.items()},
        "scopes": sorted(ROUTES),
        "error": error,
        "done": _done(request.query) if error is None else None,
        "form": dict(form or {}),
    }
    return render("rollout.html", request, context, status=status)


@routes.get("/rollout")
@admins
async def rollout_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


async def _stage_step(api: RolloutApi, asked: Asked) -> str | None:
    """Where a promote or rollback of every route would go from the stage shown now."""
    if asked.change.route is not None or asked.action not in (
        RolloutAction.PROMOTE,
        RolloutAction.ROLLBACK,
    ):
        return None
    state = await api.state()
    gate = state["next_gate"]
    to = api.plan.first.name if asked.action is RolloutAction.ROLLBACK else gate and gate["to"]
    return f"{state['stage'] or 'off the plan'} -> {to}" if to else None


async def _confirm_page(
    request: web.Request, asked: Asked, *, error: str | None = None, status: int = 200
) -> web.Response:
    route = asked.change.route
    context = {
        "step": await _stage_step(_api(request), asked),
        "offer": OFFERS[asked.action],
        "action": asked.action.value,
        "percent": asked.values.percent if asked.values else None,
        "scope": route.value if route else "every route",
        "reason": asked.change.reason,
        "if_version": asked.change.if_version,
        "fields": asked.form,
        "error": error,
    }
    return render("rollout_confirm.html", request, context, status=status)


@routes.post("/rollout/confirm")
@admins
async def confirm(request: web.Request) -> web.StreamResponse:
    """The first step: check the change as the API would, then ask to confirm it."""
    form = await request.post()
    try:
        asked = _asked(form)
    except BadInput as exc:
        return await _page(request, error=exc.message, status=400, form=_carried(form))
    return await _confirm_page(request, asked)


def _carried(form: Mapping[str, Any]) -> dict[str, str]:
    return {k: _field(form, k) for k in ("reason", "route", "percent")}


@routes.post("/rollout/change")
@admins
async def change(request: web.Request) -> web.StreamResponse:
    """The second step: a confirmed change, made as the signed-in admin."""
    form = await request.post()
    try:
        asked = _asked(form)
    except BadInput as exc:
        return await _page(request, error=exc.message, status=400, form=_carried(form))
    if _field(form, "confirm") != CONFIRMED:
        message = "confirm: this change was not confirmed; press Confirm to make it"
        return await _confirm_page(request, asked, error=message, status=400)
    try:
        done = await _api(request).apply(
            asked.action, asked.change, actor=_actor(request), values=asked.values
        )
    except REFUSED as exc:
        said = refusal(exc)
        return await _page(request, error=said.message, status=said.status, form=_carried(form))
    version = str(done.version) if done is not None else "pending"
    return see_other(f"/ui/rollout?done={asked.action.value}&version={version}")
