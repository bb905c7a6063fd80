"""The exchange browser's address: GET parameters to a filter and a cursor, and back.

Every parameter is optional and an empty one is unset, as a form sends it. Times
without a zone are UTC, as the page shows them. The cursor travels as URL-safe
base64 of ``Cursor.encode``: opaque to people, and refused with a clear message
when edited by hand.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlencode

from core import ErrorKind, Route
from storage.ui_browser import BrowserFilter, Cursor

MAX_FIELD_CHARS = 200
FIELDS = ("since", "until", "route", "model", "served_by", "status", "error_kind", "fallback")
TEXT_FIELD = "text"
CURSOR_FIELD = "after"
FALLBACK_CHOICES = {"yes": True, "no": False}
ROUTES = tuple(r.value for r in Route)
ERROR_KINDS = tuple(k.value for k in ErrorKind)


class FilterError(ValueError):
    """A parameter the browser cannot use; the message names it and says why."""


@dataclass(frozen=True, slots=True)
class BrowserQuery:
    """What the page was asked for: the filter, where to continue, and the form's values."""

    filter: BrowserFilter
    after: Cursor | None
    values: Mapping[str, str]  # the non-empty filter parameters as given, to refill the form


def _time(name: str, value: str) -> datetime:
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        raise FilterError(f"{name}: {value!r} is not a time like 2025-01-31T14:05") from None
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise FilterError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _status(value: str) -> int:
    if not value.isdigit() or not 100 <= int(value) <= 599:
        raise FilterError(f"status: {value!r} is not an HTTP status from 100 to 599")
    return int(value)


def decode_cursor(value: str) -> Cursor:
    try:
        text = base64.urlsafe_b64decode(value.encode("ascii") + b"==").decode("ascii")
        return Cursor.decode(text)
    except (ValueError, binascii.Error):  # UnicodeError is a ValueError
        message = "after: this page link is damaged; start again from the first page"
        raise FilterError(message) from None


def encode_cursor(cursor: Cursor) -> str:
    return base64.urlsafe_b64encode(cursor.encode().encode("ascii")).decode("ascii").rstrip("=")


def parse_query(params: Mapping[str, str]) -> BrowserQuery:
    """Raises FilterError on the first parameter that cannot be used."""
    values = {k: params[k].strip() for k in (*FIELDS, TEXT_FIELD) if params.get(k, "").strip()}
    for name, value in values.items():
        if len(value) > MAX_FIELD_CHARS:
            raise FilterError(f"{name}: longer than {MAX_FIELD_CHARS} characters")
    since = _time("since", values["since"]) if "since" in values else None
    until = _time("until", values["until"]) if "until" in values else None
    if since is not None and until is not None and since >= until:
        raise FilterError("since: must be earlier than until")
    for name, at in (("since", since), ("until", until)):
        if at is not None:  # as the form's field shows it: UTC, without a zone
            values[name] = at.replace(tzinfo=None).isoformat()
    fallback = values.get("fallback")
    route = values.get("route")
    error_kind = values.get("error_kind")
    found = BrowserFilter(
        since=since,
        until=until,
        route=Route(_choice("route", route, ROUTES)) if route else None,
        model=values.get("model"),
        served_by=values.get("served_by"),
        status=_status(values["status"]) if "status" in values else None,
        error_kind=_choice("error_kind", error_kind, ERROR_KINDS) if error_kind else None,
        fallback=FALLBACK_CHOICES[_choice("fallback", fallback, tuple(FALLBACK_CHOICES))]
        if fallback
        else None,
        text=values.get(TEXT_FIELD),
    )
    after = params.get(CURSOR_FIELD, "").strip()
    return BrowserQuery(found, decode_cursor(after) if after else None, values)


def page_link(values: Mapping[str, str], after: Cursor | None = None) -> str:
    """The browser's address for these filter values, from ``after`` on (the first page: None)."""
    params = dict(values)
    if after is not None:
        params[CURSOR_FIELD] = encode_cursor(after)
    return "/ui/exchanges" + (f"?{urlencode(params)}" if params else "")
