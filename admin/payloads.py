"""The bodies the admin API accepts: checked field by field, each refusal naming its field."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from core import Route
from rollout.views import ROUTES

MAX_REASON_CHARS = 1000
MAX_BODY_BYTES = 64 * 1024
COMMON_FIELDS = frozenset({"reason", "if_version", "route"})


class BadInput(Exception):
    """A request the admin API refuses with a 400; ``field`` is the one at fault."""

    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        self.message = f"{field}: {message}" if field else message
        super().__init__(self.message)


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """What every change carries: why, which version it was based on, which route."""

    reason: str
    if_version: int | None
    route: Route | None  # None: the default row, which every route without its own follows


async def read_object(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BadInput(None, f"the body is larger than {MAX_BODY_BYTES} bytes")
    raw = await request.content.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise BadInput(None, f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadInput(None, "the body is not JSON: send a JSON object") from None
    if not isinstance(body, dict):
        raise BadInput(None, "the body must be a JSON object")
    return body


def _reason(body: dict[str, Any]) -> str:
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise BadInput("reason", "give a non-empty string: why, kept in the audit log")
    if len(reason) > MAX_REASON_CHARS:
        raise BadInput("reason", f"at most {MAX_REASON_CHARS} characters")
    return reason.strip()


def _if_version(body: dict[str, Any]) -> int | None:
    value = body.get("if_version")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadInput("if_version", "must be the rollout version (an integer >= 0) you read")
    return value


def _route(body: dict[str, Any]) -> Route | None:
    """A route by its short name (as on the command line) or as stored (``chat.completions``)."""
    value = body.get("route")
    if value is None:
        return None
    if isinstance(value, str) and value in ROUTES:
        return ROUTES[value]
    if isinstance(value, str) and value in Route.__members__.values():
        return Route(value)
    names = ", ".join(sorted(ROUTES))
    raise BadInput("route", f"must be one of {names}, or absent for the default row")


def change_request(body: dict[str, Any], extra: frozenset[str] = frozenset()) -> ChangeRequest:
    """The common fields of a change; any field not in them or ``extra`` is refused."""
    for name in body:
        if name not in COMMON_FIELDS and name not in extra:
            allowed = ", ".join(sorted(COMMON_FIELDS | extra))
            raise BadInput(str(name), f"unknown field: this route accepts {allowed}")
    return ChangeRequest(reason=_reason(body), if_version=_if_version(body), route=_route(body))


def percent(body: dict[str, Any]) -> float:
    """A number; its range is the rollout's own rule (``rollout.changes``)."""
    value = body.get("percent")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadInput("percent", "give a number between 0 and 100")
    return float(value)


def history_limit(query: str | None, default: int, top: int) -> int:
    if query is None:
        return default
    try:
        limit = int(query)
    except ValueError:
        raise BadInput("limit", f"must be an integer from 1 to {top}") from None
    if not 1 <= limit <= top:
        raise BadInput("limit", f"must be an integer from 1 to {top}")
    return limit
